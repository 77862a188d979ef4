/*
 * build-queue.h - builds that wait, as `nib daemon status` shows them.
 *
 * A process whose builds must wait (for a job token because max-jobs builds
 * run already, for another process that builds the same outputs, for a
 * free UID slot) lists them in <state-dir>/jobs/queued/<pid>, a file it
 * holds an exclusive lock on from creation to removal.  The lock dies with
 * the process, so a reader recognises the file of a process that crashed
 * (nobody holds its lock) and skips it; a reader allowed to removes it.
 * Creating the file costs nothing to builds that never wait.
 *
 * File format: one line per waiting derivation,
 *     <since (seconds since the epoch)> TAB <reason name> TAB <.drv path>
 * rewritten in place (truncated first, so a reader sees a prefix of the new
 * list, never a mix; it ignores a last line without its newline).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct settings;

enum build_wait {
	BUILD_WAIT_NONE,
	BUILD_WAIT_JOB,	 /* for a job token / its turn: max-jobs builds run */
	BUILD_WAIT_LOCK, /* another process builds the same outputs */
	BUILD_WAIT_SLOT, /* every UID slot is busy or held */
	_BUILD_WAIT_MAX
};

/* "max-jobs", "same-derivation", "slot" ("none" for NONE); NULL when unknown. */
const char *build_wait_name(enum build_wait w);
/* "waiting for a free job (max-jobs)", ...: for people. */
const char *build_wait_describe(enum build_wait w);

struct build_queue_entry {
	char *drv_path;
	enum build_wait wait;
	int64_t since; /* seconds since the epoch */
	pid_t pid;     /* the waiting process (build_queue_list only) */
};
void build_queue_entries_free(struct build_queue_entry *e, size_t n);

/* This process's list (created on first use). */
struct build_queue;

/*
 * Replace this process's list with the n entries (pid ignored).  *q is
 * created (file made, lock taken) on the first call with n > 0; a call
 * that changes nothing writes nothing.
 */
int build_queue_publish(struct build_queue **q, const struct settings *s,
			const struct build_queue_entry *entries, size_t n, struct nib_error **err);

/* Remove the file and drop the lock; NULL is fine. */
void build_queue_close(struct build_queue *q);

/*
 * Every waiting build of the live processes, sorted by since, then pid.
 * Files nobody holds are skipped (and removed when the caller may).
 * A missing directory is an empty list.
 */
int build_queue_list(const struct settings *s, struct build_queue_entry **ret, size_t *ret_n,
		     struct nib_error **err);

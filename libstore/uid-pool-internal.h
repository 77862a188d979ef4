/*
 * uid-pool-internal.h - pieces of uid-pool.c exposed for the unit tests.
 * Not part of the library's interface.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct uid_pool;

/* One process as read from /proc/<pid>/status. */
struct uid_pool_proc {
	pid_t pid;
	char state;	  /* 'R', 'S', 'D', 'Z', ... */
	uint32_t threads; /* the Threads: line */
	uint64_t ids[8];  /* Uid: real, effective, saved, fs; then Gid: the same */
};

/*
 * List the live processes under procfd (a /proc directory, or a fake one in
 * tests) with any of their eight IDs in [lo, lo + count).  A zombie with no
 * thread left counts as dead; a zombie group leader whose other threads
 * still run counts as live.  Processes that vanish while being read are
 * skipped.  *ret is the caller's (free()).
 */
int uid_pool_scan_procs(int procfd, uint64_t lo, uint64_t count, struct uid_pool_proc **ret,
			size_t *ret_n, struct nib_error **err);

/* Parse the text of one status file; false if it has no Uid:/Gid: lines. */
bool uid_pool_parse_status(const char *text, struct uid_pool_proc *ret);

/*
 * Test hooks: read processes from another directory than /proc (fd is
 * duplicated), and shorten the bounded kill loop (rounds of SIGKILL with a
 * growing pause; defaults 40 rounds, pauses capped at 100 ms).
 */
int uid_pool_set_proc_dir(struct uid_pool *p, int procfd, struct nib_error **err);
void uid_pool_set_kill_rounds(struct uid_pool *p, unsigned rounds);

/*
 * Test hook: keep the host-wide registry of UID ranges (see claim_range in
 * uid-pool.c) in dir rather than in UID_POOL_RANGE_REGISTRY.  Before the
 * pool's first acquire, reclaim or release of a held slot.
 */
void uid_pool_set_range_registry(struct uid_pool *p, const char *dir);

/*
 * build.h - build derivations: the scheduler and one sandboxed build.
 *
 * build_derivations() takes a set of .drv paths and makes every one of their
 * outputs valid: derivations whose outputs are valid already are skipped
 * (their inputs are not even looked at); the others are built, inputs
 * first, up to max-jobs at once, each in its own sandbox (sandbox.h) with
 * its own UID slot (uid-pool.h) and cgroup (cgroup.h).  It is a library
 * function with no output of its own: log lines, messages, progress and
 * results reach the caller through callbacks, so the CLI and the daemon
 * present them as they like.
 *
 * Before anything runs, every derivation that would be built is checked:
 * its system and requiredSystemFeatures against the settings `system` and
 * `system-features`, uid-range against auto-allocate-uids, use-cgroups and
 * the sandbox, and the sandbox itself (sandbox_check_available, whose
 * success is remembered for the running boot in <build-dir>/.sandbox-checked):
 * a build never runs unsandboxed by accident.
 *
 * Without a sandbox: with `sandbox = false` every derivation, with `sandbox
 * = relaxed` those with __noChroot = "1" (fixed-output ones stay sandboxed,
 * unlike Nix), run on the host as the slot's first UID/GID (see
 * sandbox.h, "Without a sandbox": a private mount namespace with the store
 * as an overlay and the account named nixbld in private copies of
 * /etc/passwd and /etc/group; classic build users keep their own accounts).
 * `sandbox = true` refuses __noChroot; uid-range derivations and relocated
 * stores (store-root) refuse to build unsandboxed.  Such a build gets
 * NIX_BUILD_TOP and friends set to its real build directory (whose top is
 * then 0711, so the builder can reach it), stale files at its output paths
 * are removed before it starts, its processes are killed by UID (besides
 * the cgroup) before its outputs, taken from the overlay's upper layer,
 * are checked, and its build record says it was not sandboxed.
 *
 * One build: lock the outputs (path locks, so two processes never build the
 * same outputs at once), acquire a slot (waiting, and saying so, when all
 * are busy), take temporary roots on the outputs, create
 *     <build-dir>/nib-build-<slot>/build   (the top 0700 root, the inner
 *                                           directory the builder's: /build)
 *     <real store>/.nib-builds/<slot>      (the store directory the builder
 *                                           sees, on the store's filesystem)
 * and a cgroup "nib-build-<first UID>" (use-cgroups; build-memory-max and
 * build-pids-max as limits, which must be enforceable), bind the input
 * closure and sandbox-paths read-only, and start the builder with Nix's
 * environment (with what build-env.h adds: structured attributes,
 * exportReferencesGraph, impureEnvVars).  Its stdout and stderr go through
 * one pipe: streamed to the log callback line by line and stored
 * bzip2-compressed under
 * <log-dir>/drvs/<2 chars>/<rest of the .drv base name>.bz2
 * (keep-build-log; compress-build-log = false stores plain text without
 * ".bz2").  timeout, max-silent-time and max-build-log-size kill it.
 *
 * Afterwards the cgroup is killed and found empty, then every declared
 * output must exist; files owned by IDs outside the slot's mapped range, or
 * that are not regular files, directories or symlinks, are rejected; outputs
 * are canonicalised, hashed and scanned for references (input closure plus
 * the derivation's own outputs) in one pass per output, fixed-output hashes
 * checked, the output checks applied (build-env.h: allowed and disallowed
 * references and requisites, outputChecks), moved into the store and
 * registered in one transaction with their deriver.  A build record (slot, UID range, times, status, CPU,
 * peak memory, log path, sandboxed or not) is written when the build
 * ends.  Finally the cgroup, the build directory (unless keep-failed
 * keeps a failed one) and the output directory are removed and the slot is
 * released; if any of that fails the slot is held with the reason.
 *
 * The caller must be root and single-threaded (sandbox_spawn clones).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct store;
struct settings;

enum build_status {
	BUILD_VALID,		 /* the outputs were valid already; nothing ran */
	BUILD_BUILT,		 /* built and registered now */
	BUILD_FAILED,		 /* the builder failed, or its outputs were rejected */
	BUILD_TIMED_OUT,	 /* timeout or max-silent-time */
	BUILD_LOG_LIMIT,	 /* killed for writing more than max-build-log-size */
	BUILD_HASH_MISMATCH,	 /* a fixed-output derivation produced another hash */
	BUILD_UNSUPPORTED,	 /* cannot be built here (system, features, kind) */
	BUILD_DEP_FAILED,	 /* an input derivation failed; not attempted */
	BUILD_CANCELLED,	 /* interrupted through cancel_fd */
	BUILD_NOT_DETERMINISTIC, /* check: the rebuilt outputs differ from the registered ones */
	_BUILD_STATUS_MAX
};

/* "valid", "built", "failed", "timed-out", "log-limit", "hash-mismatch",
 * "unsupported", "dependency-failed", "cancelled", "not-deterministic". */
const char *build_status_name(enum build_status s);

/* The outcome of one derivation, valid during the result callback only. */
struct build_result {
	const char *drv_path;
	const char *name; /* the derivation's name ("hello") */
	enum build_status status;
	const char *error; /* why, for every status but VALID and BUILT; else NULL */
	size_t n_outputs;
	char *const *output_names; /* sorted; output_paths[i] belongs to output_names[i] */
	char *const *output_paths;
	int64_t start_usec, stop_usec; /* realtime; 0 when nothing ran */
	int64_t cpu_user_usec;	       /* -1 when unknown (nothing ran) */
	int64_t cpu_system_usec;       /* -1 when unknown */
	int64_t peak_memory;	       /* bytes, -1 when unknown */
	int wait_status;	       /* the builder's wait status, -1 when it did not exit */
	int64_t slot;		       /* UID-pool slot, -1 when none */
	int64_t uid_start, uid_count;  /* the slot's IDs; -1 / 0 when none */
	int sandboxed;		       /* 1 ran in a sandbox, 0 without one, -1 did not run */
	const char *log_path;	       /* the stored log, or NULL */
	const char *kept_build_dir;    /* keep-failed: the kept directory, else NULL */
	char *const *log_tail;	       /* the last log-lines lines, for failures; may be NULL */
	size_t n_log_tail;
};

struct build_progress {
	size_t total;	/* derivations this call builds (not counting valid ones) */
	size_t done;	/* built */
	size_t failed;	/* failed, dependency-failed, unsupported */
	size_t running; /* builders running now */
	size_t waiting; /* not started yet */
	/* Names of the running derivations, in start order. */
	const char *const *running_names;
	/* Their .drv paths, parallel to running_names. */
	const char *const *running_drv_paths;
};

struct build_callbacks {
	/*
	 * One line of a builder's output, without its newline; a line longer
	 * than 64 KiB arrives in pieces.  name is the derivation's name.
	 */
	void (*log_line)(void *userdata, const char *drv_path, const char *name, const char *line,
			 size_t len);
	/* Something to tell the user ("waiting for a free build slot"); drv_path may be NULL. */
	void (*message)(void *userdata, const char *drv_path, const char *msg);
	/* After every change of state. */
	void (*progress)(void *userdata, const struct build_progress *p);
	/* Once per derivation (requested or needed as an input), when it is decided. */
	void (*result)(void *userdata, const struct build_result *r);
	void *userdata;
};

struct build_options {
	int64_t max_jobs; /* builds at once; <= 0: the setting max-jobs (at least 1) */
	bool keep_going;  /* after a failure, build what does not depend on it */
	/*
	 * When this descriptor becomes readable (a signal's self-pipe, a
	 * closed client connection), every running build is killed and cleaned
	 * up and build_derivations returns NIB_E_BUILD_FAILED "interrupted".
	 * -1: none.  The caller drains it.
	 */
	int cancel_fd;
	/*
	 * Check mode (`nib build --check`): build the requested derivations
	 * again although their outputs are valid (one whose outputs are not
	 * all valid cannot be checked and fails), compare each new output's NAR
	 * hash with the registered one and register nothing.  A difference
	 * fails the derivation with BUILD_NOT_DETERMINISTIC; equal outputs
	 * report BUILD_BUILT.  Their inputs are built as usual when missing.
	 */
	bool check;
};

/* max_jobs 0, keep_going false, cancel_fd -1, check false. */
void build_options_init(struct build_options *o);

/*
 * Start making, in a thread of its own, what builds with these settings
 * will need and that depends on nothing else: the system call filter and
 * the cgroup hierarchy (a few hundred microseconds).  A caller about to
 * open the store and read its arguments calls it first, so that it is
 * ready by the time the first build starts; the builds collect it (or make
 * it themselves when it was not started).  Harmless when nothing is built.
 */
void build_prepare(const struct settings *settings);

/*
 * The same, made now: for a process that forks the processes that build
 * (the daemon, before its connection processes), so that they inherit it
 * instead of each making its own.  Fails when the filter cannot be made.
 */
int build_prepare_now(const struct settings *settings, struct nib_error **err);

/*
 * Build the n derivations drv_paths (valid .drv paths of store, which must
 * be a local store).  callbacks may be NULL, and so may each member.
 * Returns 0 when every output of every requested derivation is valid.  On
 * failure returns -1 with NIB_E_BUILD_FAILED ("build of '…' failed: …", or
 * "N derivations failed") or the error that stopped the scheduler; the
 * result callback has reported each derivation already.
 */
int build_derivations(struct store *store, const struct settings *settings, char *const *drv_paths,
		      size_t n, const struct build_options *opts, const struct build_callbacks *cb,
		      struct nib_error **err);

struct derivation;

/*
 * Build one derivation given in memory rather than read from the store
 * (the worker protocol's BuildDerivation).  drv must have no input
 * derivations: they were resolved into input sources, which must be valid.
 * drv_path names it (the stored log, the build record, the outputs'
 * deriver) and need not be valid; the derivation's name comes from it.
 * Its output paths are checked as a stored derivation's are
 * (derivation_check_outputs) unless trust_outputs: the input-addressed
 * paths of a derivation whose inputs were resolved cannot be recomputed,
 * and the caller vouches for them.  Otherwise as build_derivations().
 */
int build_derivation_inline(struct store *store, const struct settings *settings,
			    const char *drv_path, const struct derivation *drv, bool trust_outputs,
			    const struct build_options *opts, const struct build_callbacks *cb,
			    struct nib_error **err);

/*
 * Where the log of drv_path is stored: <log-dir>/drvs/<2>/<rest>.bz2 (or
 * without ".bz2" when compressed is false).  Caller frees.
 */
char *build_log_path(const struct settings *settings, const char *drv_path, bool compressed);

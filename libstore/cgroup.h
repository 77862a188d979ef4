/*
 * cgroup.h - one cgroup per build: placement, limits, accounting, killing.
 *
 * Hierarchies are discovered from /proc/self/mountinfo and /proc/self/cgroup,
 * never assumed.  A build gets a leaf in the cgroup v2 hierarchy, below the
 * calling process's own v2 cgroup or below a configured parent directory.
 * That leaf is what kills the build (cgroup.kill, or SIGKILL to every member
 * on kernels before 5.14) and what measures its CPU time (cpu.stat).
 *
 * Limits (build-memory-max, build-pids-max) use the v2 memory/pids
 * controllers when the parent offers them; on hybrid hosts, where those
 * controllers sit in v1 hierarchies, the build also gets a group in the v1
 * memory and/or pids hierarchy, below the caller's own group there.  A limit
 * that cannot be enforced is an error, never ignored.
 *
 * Without a v2 hierarchy (a pure v1 host), the build is tracked in a v1
 * pids or memory hierarchy when one is mounted; when nothing is usable,
 * cgroup_build_create fails with NIB_E_UNSUPPORTED and the caller must kill
 * the build by UID range instead.
 *
 * Not thread-safe; every function may block briefly on cgroupfs.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cleanup.h"
#include "error.h"

struct cgroup_root;
struct cgroup_build;

/*
 * Discover the hierarchies of the calling process.  v2_parent, when not NULL,
 * is an absolute directory inside the v2 hierarchy under which build cgroups
 * are created (it must exist); NULL means the caller's own v2 cgroup.  A host
 * without any cgroup is not an error: the result then says so
 * (cgroup_root_has_v2() false, cgroup_build_create() NIB_E_UNSUPPORTED).
 * Errors: unreadable /proc files, a v2_parent outside the v2 mount.
 */
int cgroup_root_discover(const char *v2_parent, struct cgroup_root **ret, struct nib_error **err);

/*
 * Same, from the given texts of /proc/self/mountinfo and /proc/self/cgroup
 * (for tests).  No file is touched.
 */
int cgroup_root_parse(const char *mountinfo, const char *self_cgroup, const char *v2_parent,
		      struct cgroup_root **ret, struct nib_error **err);

bool cgroup_root_has_v2(const struct cgroup_root *root);
/* Directory build cgroups are created in (v2), or NULL without v2. */
const char *cgroup_root_v2_parent(const struct cgroup_root *root);
/* The caller's own group directory in the v1 hierarchy of `controller`
 * ("memory", "pids"), or NULL when that hierarchy is not mounted. */
const char *cgroup_root_v1_dir(const struct cgroup_root *root, const char *controller);
void cgroup_root_free(struct cgroup_root *root);

struct cgroup_limits {
	uint64_t memory_max; /* bytes; 0 = no limit */
	uint64_t pids_max;   /* processes and threads; 0 = no limit */
};

/*
 * Create the cgroup(s) of one build, named `name` ([A-Za-z0-9_.-], not
 * starting with '.', at most 200 bytes; e.g. "nib-build-7").  A leftover
 * group of that name (from a crash) is killed and removed first.  limits may
 * be NULL.  Errors: NIB_E_UNSUPPORTED when no usable hierarchy exists or a
 * limit cannot be enforced; NIB_E_INVALID for a bad name; system errors.
 * On failure nothing is left behind.
 */
int cgroup_build_create(struct cgroup_root *root, const char *name,
			const struct cgroup_limits *limits, struct cgroup_build **ret,
			struct nib_error **err);

/*
 * Kill and remove a leftover build cgroup of that name, if any (for slot
 * reclaim at daemon start).  Returns 1 when something was removed, 0 when
 * nothing existed.
 */
int cgroup_build_remove_leftover(struct cgroup_root *root, const char *name,
				 struct nib_error **err);

/* Directory fd of the v2 leaf (for clone3 CLONE_INTO_CGROUP), or -1 without v2.
 * Owned by cg. */
int cgroup_build_v2_fd(const struct cgroup_build *cg);
/* Absolute path of the v2 leaf, or NULL without v2. */
const char *cgroup_build_v2_path(const struct cgroup_build *cg);

/*
 * Move process `pid` into the build's groups: the v2 leaf (unless
 * in_v2_already, i.e. the process was cloned into it) and each v1 group.
 * Must be called before the process can fork.
 */
int cgroup_build_attach(struct cgroup_build *cg, pid_t pid, bool in_v2_already,
			struct nib_error **err);

/*
 * Delegate the v2 leaf to uid/gid (the build's root in uid-range builds): the
 * directory and the files a delegatee needs (cgroup.procs, cgroup.threads,
 * cgroup.subtree_control and those in /sys/kernel/cgroup/delegate) change
 * owner.  The build can then create child cgroups and move its processes.
 * NIB_E_UNSUPPORTED without v2.
 */
int cgroup_build_delegate(struct cgroup_build *cg, uid_t uid, gid_t gid, struct nib_error **err);

struct cgroup_stats {
	bool have_cpu;		  /* cpu_* are valid (v2 cpu.stat) */
	uint64_t cpu_user_usec;	  /* user CPU time of everything that ran in the build */
	uint64_t cpu_system_usec; /* system CPU time */
	bool have_memory_peak;	  /* memory_peak is valid */
	uint64_t memory_peak;	  /* bytes: v2 memory.peak or v1 memory.max_usage_in_bytes */
	uint64_t oom_kills;	  /* processes killed for exceeding the memory limit */
	uint64_t pids_max_hits;	  /* forks refused by the pids limit */
};

/*
 * Read the build's accounting.  Fields the host cannot provide stay false/0
 * (the caller falls back to getrusage() for peak memory).
 */
int cgroup_build_stats(struct cgroup_build *cg, struct cgroup_stats *ret, struct nib_error **err);

/*
 * Kill every process in the build's groups, including child cgroups a
 * uid-range build created, and wait (bounded, about 10 s) until none is left.
 * A process that is a zombie waiting for the caller to reap it does not count.
 * Errors: processes that survive (NIB_E_BUSY), system errors.
 */
int cgroup_build_kill(struct cgroup_build *cg, struct nib_error **err);

/*
 * Kill (as above), then remove the groups bottom-up, retrying EBUSY with a
 * bounded backoff.  On success the build's groups are gone; cg must still be
 * freed.  On failure the caller should hold the slot and report the error.
 */
int cgroup_build_destroy(struct cgroup_build *cg, struct nib_error **err);

/* Free the handle (closes fds); it does not kill or remove anything. NULL is fine. */
void cgroup_build_free(struct cgroup_build *cg);

DEFINE_CLEANUP_FUNC(struct cgroup_root, cgroup_root_free)
DEFINE_CLEANUP_FUNC(struct cgroup_build, cgroup_build_free)
#define cleanup_cgroup_root __attribute__((cleanup(cgroup_root_freep)))
#define cleanup_cgroup_build __attribute__((cleanup(cgroup_build_freep)))

/*
 * uid-pool.h - dynamic UID allocation: slots, held slots, reclaim, and the
 * classic build-users-group mode.
 *
 * Auto mode (setting auto-allocate-uids = true).  The pool is id-count IDs
 * starting at start-id, cut into id-count / ids-per-build *slots*.  Slot i
 * owns the UIDs and the GIDs
 *     [start-id + i * ids-per-build, start-id + (i + 1) * ids-per-build).
 * Classic mode (auto-allocate-uids = false).  Each member of the group named
 * by build-users-group is one slot owning exactly its own UID; the GID is the
 * group's and the supplementary groups are the member's (getgrouplist).
 *
 * On disk, under <state-dir>/userpool (mode 0700, owned by the caller):
 *   slot-<i> / classic-<uid>   the lock file of one slot.  Whoever holds an
 *                  exclusive flock() on it owns the slot; the kernel drops the
 *                  lock when the holder dies, so a crash never leaves a slot
 *                  taken.  While held, the file is the slot's *record*:
 *                  "key=value" lines, at least pid, derivation and since
 *                  (seconds since the epoch), plus whatever the build adds
 *                  with uid_pool_slot_set_info() (build-dir, cgroup).  A clean
 *                  release empties it, so a non-empty record on an unlocked
 *                  slot is the trace of a holder that died (*stale*).
 *   held/<name>    a slot whose cleanup failed: reason, since, and the holder
 *                  that failed.  Acquisition skips it; only
 *                  uid_pool_release_held() (`nib slots release N`) frees it,
 *                  and only once its cleanup succeeds.
 *   slot-hints, classic-hints   shared bitmaps (busy, held) that let an
 *                  acquirer go straight to a probably-free slot.  Only hints:
 *                  the locks and held records decide, and a full scan runs
 *                  whenever the hints find nothing.
 *
 * Waiting.  When no slot is free, uid_pool_acquire() waits on inotify for
 * IN_CLOSE_WRITE in the userpool directory and for deletions in held/.
 * Every process that unlocks a slot it had locked afterwards closes a
 * writable descriptor of that slot file (its record), which is the wake-up;
 * a holder that dies closes its descriptors in the same way.  Attempts on
 * busy slots use read-only descriptors, so waiters scanning do not wake each
 * other.  Because the kernel may report a dying holder's close a moment
 * before it drops the lock, a failed rescan after an event is repeated once
 * 50 ms later; and a rescan every 10 s covers anything inotify cannot see
 * (another host on a network file system, a held record edited by hand).
 * Without inotify the wait falls back to that 10 s rescan alone.
 *
 * A slot is released only after its cleanup succeeded: the caller's hook
 * (e.g. kill and remove the build's cgroup), then no process with any UID or
 * GID (real, effective, saved, filesystem) of the slot's range may be left
 * (found by scanning /proc, killed with SIGKILL, bounded), and the recorded
 * build-dir must be gone (removed only if it lies under build-dir).  When
 * that fails the slot becomes held.
 *
 * Ownership and processes.  A pool and its slots belong to one process and
 * one thread; nib is single-threaded per process.  After fork() the child
 * holds no slot: it may use the pool to acquire its own, but releasing a
 * slot its parent acquired is refused (the lock is shared with the parent).
 * Every descriptor is O_CLOEXEC, so builders never inherit a slot lock; but
 * a child forked while a slot is held shares the lock until it execs or
 * exits, so a holder that dies keeps its slot locked (and out of reclaim's
 * reach) while such a child lives.  Close or exec promptly after fork().
 *
 * One range per store on a host.  Slot locks live under one state directory,
 * but UIDs, the processes that use them and the build cgroups named after
 * them are host-wide: two stores whose ranges overlap would hand out the
 * same IDs, and each one's reclaim would kill the other's builders.  So a
 * root process registers its pool's range before it first acquires a slot,
 * reclaims, or releases a held slot: a file under UID_POOL_RANGE_REGISTRY
 * named "<first ID>-<last ID>-<device>-<inode>" (the device and inode of
 * the userpool directory, which identify the store) holding the state
 * directory's path, on which it keeps a shared flock() for the pool's life.
 * A live registration of another store whose range overlaps is an error
 * that names that store; one nobody holds (whatever its range) is a
 * leftover and is removed.
 * The last holder removes its own file when it closes the pool.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct settings;
struct uid_pool;

/* Largest number of slots a pool may have (id-count / ids-per-build). */
#define UID_POOL_MAX_SLOTS 65536
/* The largest valid UID/GID; (uid_t)-1 means "no change" to the kernel. */
#define UID_POOL_MAX_ID 4294967294ULL

/* The host-wide registry of pools' ranges (see "One range per store" above). */
#define UID_POOL_RANGE_REGISTRY "/run/nib/uid-ranges"

/* Record keys the pool itself understands. */
#define UID_POOL_KEY_PID "pid"
#define UID_POOL_KEY_DERIVATION "derivation"
#define UID_POOL_KEY_SINCE "since"
#define UID_POOL_KEY_BUILD_DIR "build-dir" /* removed by cleanup */
#define UID_POOL_KEY_CGROUP "cgroup"	   /* for the caller's cleanup hook */

/*
 * The account databases checked by validation and used by classic mode.
 * A NULL path means the system's: passwd and group through NSS
 * (getpwent/getgrent, getpwnam, getgrouplist), subuid/subgid from
 * /etc/subuid and /etc/subgid.  A file path is read directly in the
 * passwd(5) / group(5) / subuid(5) formats (tests use this).  A missing
 * subuid/subgid file means no subordinate ranges; a missing passwd or group
 * file is an error.
 */
struct uid_pool_db {
	const char *passwd;
	const char *group;
	const char *subuid;
	const char *subgid;
};

/*
 * Check the pool settings against each other and against the system, the
 * way the daemon must before it hands out any ID.  Auto mode: start-id > 0,
 * start-id and id-count multiples of ids-per-build, the range ending at or
 * below UID_POOL_MAX_ID, at most UID_POOL_MAX_SLOTS slots, and no UID or GID
 * of the whole range used by an account (its uid or primary gid), a group,
 * or a subordinate range in subuid/subgid.  Classic mode: build-users-group
 * names an existing group with members, every member exists, and none is
 * root or the caller's own uid.  Returns 0, or -1 with a NIB_E_CONFIG error
 * naming the setting, its value and the conflicting account or range
 * (NIB_E_SYS when a database cannot be read).  db may be NULL (system).
 * With the system databases, an auto-mode success is remembered in
 * <state-dir>/userpool/validated and trusted for up to ten minutes while
 * the settings and the account files (/etc/passwd, group, subuid, subgid,
 * nsswitch.conf) are unchanged, so that each `nib build` does not walk
 * every account through NSS again.
 */
int uid_pool_validate(const struct settings *s, const struct uid_pool_db *db,
		      struct nib_error **err);

/*
 * Open the pool described by s (auto or classic mode), after
 * uid_pool_validate().  Creates <state-dir>/userpool and held/ when missing
 * and refuses a userpool directory not owned by the caller or writable by
 * others.  Copies what it needs from s and db.  NULL on failure.
 */
struct uid_pool *uid_pool_open(const struct settings *s, const struct uid_pool_db *db,
			       struct nib_error **err);

/*
 * Drop the caller's reference.  Slots still held keep the pool alive until
 * they are released.  NULL is fine.
 */
void uid_pool_close(struct uid_pool *p);

static inline void uid_pool_closep(struct uid_pool **p)
{
	uid_pool_close(*p);
}
#define cleanup_uid_pool __attribute__((cleanup(uid_pool_closep)))

/* Number of slots; true when the pool is in auto mode. */
unsigned uid_pool_size(const struct uid_pool *p);
bool uid_pool_is_auto(const struct uid_pool *p);

/*
 * One slot held by this process (from uid_pool_acquire), or a description
 * of someone else's slot handed to a cleanup hook.  The public fields are
 * read-only for callers.
 */
struct uid_pool_slot {
	unsigned index;	     /* slot number */
	const char *name;    /* "slot-3", "classic-30001" */
	uid_t first_uid;     /* the IDs are first_uid .. first_uid + nr_ids - 1 */
	gid_t first_gid;     /* auto: == first_uid; classic: the build group's GID */
	uint32_t nr_ids;     /* auto: ids-per-build; classic: 1 */
	const char *user;    /* classic: the member's name; auto: NULL */
	const gid_t *groups; /* supplementary groups to setgroups(); auto: none */
	size_t n_groups;
	/* private */
	struct uid_pool_slot_priv *priv;
};

typedef void (*uid_pool_wait_fn)(void *userdata, unsigned n_slots, unsigned n_busy,
				 unsigned n_held);

/*
 * The caller's part of a slot's cleanup, run before the pool's own steps
 * (process scan, build directory).  It sees the slot and its record (see
 * uid_pool_slot_get_info) and returns 0, or -1 with an error that becomes
 * the held reason.  It must not release or free the slot.
 */
typedef int (*uid_pool_cleanup_fn)(const struct uid_pool_slot *slot, void *userdata,
				   struct nib_error **err);

enum uid_pool_cleanup_flags {
	/*
	 * The hook has killed every process of the build and proved it (the
	 * build's cgroup was killed and found empty); skip the /proc scan.  A
	 * build cannot leave its cgroup, so that proof covers the whole range.
	 */
	UID_POOL_CLEANUP_PROCS_VERIFIED = 1 << 0,
};

struct uid_pool_cleanup {
	uid_pool_cleanup_fn fn; /* may be NULL */
	void *userdata;
	unsigned flags; /* enum uid_pool_cleanup_flags */
};

struct uid_pool_acquire_opts {
	const char *derivation; /* recorded for `nib slots`; may be NULL */
	bool no_wait;		/* when nothing is free: NIB_E_BUSY at once */
	uint64_t timeout_usec;	/* when waiting: NIB_E_TIMEOUT after this; 0 = forever */
	/* Called once when the call starts to wait (all slots busy or held). */
	uid_pool_wait_fn on_wait;
	void *userdata;
	/* Cleanup for a slot found stale (its last holder died); NULL: the pool's own steps. */
	const struct uid_pool_cleanup *stale_cleanup;
};

/*
 * Acquire a free slot: never one this process holds, never a held one,
 * starting where the previous search of this process ended.  The record is
 * written (pid, derivation, since) before it returns.  A stale slot is
 * cleaned first (and held if that fails).  opts may be NULL (wait forever).
 * Returns 0 and *ret_slot (owned by the caller until uid_pool_release), or
 * -1: NIB_E_BUSY (no_wait), NIB_E_TIMEOUT, or a system error.
 */
int uid_pool_acquire(struct uid_pool *p, const struct uid_pool_acquire_opts *opts,
		     struct uid_pool_slot **ret_slot, struct nib_error **err);

/*
 * Add, replace (value != NULL) or remove (value == NULL) a record entry of a
 * slot this process holds, and rewrite the slot file.  key is [a-z0-9-]+ and
 * not pid/since; value has no newline and at most 4096 bytes.  Record
 * build-dir and cgroup *before* creating them, so that a crash in between
 * still leaves a trace that reclaim follows.
 */
int uid_pool_slot_set_info(struct uid_pool_slot *slot, const char *key, const char *value,
			   struct nib_error **err);

/*
 * The same for n entries at once (keys[i] gets values[i]), with one write
 * of the slot file.  Invalid keys or values are refused before any is set.
 */
int uid_pool_slot_set_infos(struct uid_pool_slot *slot, const char *const *keys,
			    const char *const *values, size_t n, struct nib_error **err);

/* A record entry, or NULL.  The string belongs to the slot. */
const char *uid_pool_slot_get_info(const struct uid_pool_slot *slot, const char *key);

/*
 * Apply the slot's identity to the calling process, for a build that runs
 * directly as the slot's first UID (classic mode, or no user namespace):
 * setgroups(groups), then setresgid(first_gid), then setresuid(first_uid),
 * and check the result.  Needs privilege; meant for a forked child.
 */
int uid_pool_slot_drop_privileges(const struct uid_pool_slot *slot, struct nib_error **err);

/*
 * Kill every process with any UID or GID of the slot's range (the /proc scan
 * of the release, bounded), for a build that ran without a PID namespace or
 * cgroup to end it.  *ret_killed (may be NULL) gets the number of processes
 * signalled.  Errors: processes that survive, an unreadable /proc.
 */
int uid_pool_slot_kill_procs(struct uid_pool_slot *slot, unsigned *ret_killed,
			     struct nib_error **err);

/*
 * Clean up and release a slot this process acquired.  Runs the cleanup
 * (cleanup may be NULL: the pool's own steps only); on success empties the
 * record and drops the lock.  On failure the slot is recorded as held, the
 * lock is dropped and -1 is returned with the reason ("slot 3 is now held:
 * …").  If even the held record cannot be written, the lock is kept until
 * this process exits, so the slot cannot be reused uncleaned.  The slot is
 * freed in every case.  NULL is fine (returns 0).
 */
int uid_pool_release(struct uid_pool_slot *slot, const struct uid_pool_cleanup *cleanup,
		     struct nib_error **err);

/*
 * `nib slots release N`: re-run the cleanup of held slot `index` and free it
 * when that succeeds.  The caller checks that the user may do this.
 * -1 with NIB_E_NOT_FOUND (no such slot, or not held), NIB_E_BUSY (someone
 * holds its lock), or the cleanup's error (the held record is updated).
 */
int uid_pool_release_held(struct uid_pool *p, unsigned index,
			  const struct uid_pool_cleanup *cleanup, struct nib_error **err);

enum uid_pool_reclaim_outcome {
	UID_POOL_RECLAIM_CLEANED,    /* leftovers found and removed; the slot is free */
	UID_POOL_RECLAIM_HELD,	     /* cleanup failed now; the slot is held */
	UID_POOL_RECLAIM_STILL_HELD, /* was held before; left alone */
	_UID_POOL_RECLAIM_MAX
};

/* detail: what was done or why it failed. */
typedef void (*uid_pool_reclaim_fn)(void *userdata, const struct uid_pool_slot *slot,
				    enum uid_pool_reclaim_outcome outcome, const char *detail);

struct uid_pool_reclaim_result {
	unsigned n_cleaned, n_held, n_busy;
};

/*
 * Register the pool's range in the host-wide registry (see "One range per
 * store" above), failing when another store in use has an overlapping one.
 * Acquire, reclaim and release of a held slot do it themselves; a daemon
 * calls it at start to refuse to run rather than to fail each build.  Does
 * nothing when not root, or when done already.
 */
int uid_pool_claim(struct uid_pool *p, struct nib_error **err);

/* Another store in use whose registered range overlaps this pool's. */
struct uid_pool_conflict {
	char *state_dir;    /* as it registered itself */
	char *registration; /* the file in UID_POOL_RANGE_REGISTRY */
	uint64_t first, last;
};

/*
 * The live registrations of other stores that overlap this pool's range
 * (`nib slots` shows them), changing nothing; anyone may ask.  *ret is
 * NULL when there are none.
 */
int uid_pool_conflicts(struct uid_pool *p, struct uid_pool_conflict **ret, size_t *ret_n,
		       struct nib_error **err);
void uid_pool_conflicts_free(struct uid_pool_conflict *v, size_t n);

/*
 * Daemon start and `nib slots reclaim`: every slot that no live process
 * holds and that has a stale record or processes in its range is cleaned
 * like a release (with cleanup, which may be NULL), or held if that fails.
 * Held slots are reported and left alone.  on_slot (may be NULL) hears
 * about every slot that was cleaned or held.  Returns 0 and fills
 * *ret_result (may be NULL) even when some slots ended up held; -1 only
 * when the pool could not be examined at all.
 */
int uid_pool_reclaim(struct uid_pool *p, const struct uid_pool_cleanup *cleanup,
		     uid_pool_reclaim_fn on_slot, void *userdata,
		     struct uid_pool_reclaim_result *ret_result, struct nib_error **err);

enum uid_pool_state {
	UID_POOL_FREE,	/* unlocked, empty record */
	UID_POOL_STALE, /* unlocked, but a record left by a holder that died */
	UID_POOL_BUSY,	/* locked by a live process */
	UID_POOL_HELD,	/* cleanup failed; waiting for `nib slots release` */
	_UID_POOL_STATE_MAX
};

/* "free", "stale", "busy", "held". */
const char *uid_pool_state_name(enum uid_pool_state s);

struct uid_pool_entry {
	unsigned index;
	char *name;
	uint64_t first_uid, first_gid;
	uint32_t nr_ids;
	char *user; /* classic mode */
	enum uid_pool_state state;
	bool locked; /* a live process holds the lock (also possible while held) */
	/* From the record (busy/stale/held); 0 / NULL when unknown. */
	pid_t pid;
	char *derivation;
	int64_t since;
	char *build_dir;
	char *cgroup;
	/* From the held record. */
	char *reason;
	int64_t held_since;
};

/*
 * The state of every slot, in slot order.  "busy" is decided by trying the
 * lock without blocking and undoing it at once (waking any waiter that
 * missed the slot meanwhile), so a stale record is never reported busy.
 * The array is the caller's; free it with uid_pool_entries_free().
 */
int uid_pool_list(struct uid_pool *p, struct uid_pool_entry **ret_entries, size_t *ret_n,
		  struct nib_error **err);
void uid_pool_entries_free(struct uid_pool_entry *entries, size_t n);

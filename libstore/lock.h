/*
 * lock.h - file locks: the store's global locks and per-path locks.
 *
 * All locks are Linux open-file-description locks (fcntl F_OFD_SETLK*):
 * they belong to the open file, not to the process, so two opens in one
 * process exclude each other (unlike classic POSIX record locks), and they
 * die when the last descriptor for the file closes, in particular when the
 * holder is killed.  Descriptors are opened O_CLOEXEC; a child that inherits
 * one over fork() shares the lock, which is deliberate (a forked worker keeps
 * its parent's temporary roots alive).
 */
#pragma once

#include <stdbool.h>

#include "error.h"

enum lock_type {
	LOCK_UNLOCK,
	LOCK_SHARED,
	LOCK_EXCLUSIVE,
};

/*
 * Lock (or unlock, or convert) the whole of fd.  With wait, block until the
 * lock is granted (retrying on EINTR).  Returns 1 when granted, 0 when
 * !wait and someone else holds a conflicting lock, -1 on error.
 */
int lock_fd(int fd, enum lock_type type, bool wait, struct nib_error **err);

/*
 * Open (creating with mode 0600 if needed) the lock file at path and lock it.
 * Returns 1 and sets *ret_fd when granted, 0 when !wait and it is held
 * elsewhere (*ret_fd untouched), -1 on error.
 */
int lock_file_open(const char *path, enum lock_type type, bool wait, int *ret_fd,
		   struct nib_error **err);

/*
 * A lock on one store path: an exclusive OFD lock on one byte (picked by a
 * hash of the path's name) of the file PATH_LOCKS_FILE in the path's
 * directory, through an open of its own, so that two locks of one process
 * conflict as two processes' do.  The file stays (empty); nothing is made
 * or deleted per path.  (Nix, and nib before, used a file "<path>.lock"
 * per path, made and deleted every time: on ext4 without a journal each
 * new inode then skips every recently deleted one, which was a fifth of
 * the CPU time of many builds in a row.  The collector still removes such
 * files left behind: path_lock_remove_stale.)
 */
#define PATH_LOCKS_FILE ".nib-path-locks"
struct path_lock;

/*
 * Lock real_path (a physical path in the store directory).  With !wait,
 * returns 0 and leaves *ret untouched when the path is locked elsewhere.
 * Returns 1 with *ret set (free with path_lock_release) when granted.
 */
int path_lock_acquire(const char *real_path, bool wait, struct path_lock **ret,
		      struct nib_error **err);

/* Drop the lock; NULL is fine. */
void path_lock_release(struct path_lock *l);

static inline void path_lock_releasep(struct path_lock **l)
{
	path_lock_release(*l);
}
#define cleanup_path_lock __attribute__((cleanup(path_lock_releasep)))

/*
 * Try to remove a stale "<path>.lock" file (one nobody holds, left by
 * Nix or an older nib): lock it without
 * waiting and delete it while holding the lock.  Returns 1 when removed,
 * 0 when it is held (left alone), -1 on error.  Used by the collector.
 */
int path_lock_remove_stale(int dirfd, const char *name, struct nib_error **err);

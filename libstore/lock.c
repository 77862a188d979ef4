#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "lock.h"
#include "util.h"
#include "banned.h"

struct path_lock {
	char *path; /* the lock file */
	int fd;
};

int lock_fd(int fd, enum lock_type type, bool wait, struct nib_error **err)
{
	struct flock fl = {
		.l_whence = SEEK_SET,
		.l_start = 0,
		.l_len = 0, /* whole file */
		.l_pid = 0, /* required by F_OFD_* */
	};

	switch (type) {
	case LOCK_UNLOCK:
		fl.l_type = F_UNLCK;
		break;
	case LOCK_SHARED:
		fl.l_type = F_RDLCK;
		break;
	case LOCK_EXCLUSIVE:
		fl.l_type = F_WRLCK;
		break;
	}
	for (;;) {
		if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (!wait && (errno == EAGAIN || errno == EACCES))
			return 0;
		return nib_error_errno(err, "cannot lock file");
	}
}

int lock_file_open(const char *path, enum lock_type type, bool wait, int *ret_fd,
		   struct nib_error **err)
{
	cleanup_close int fd = -1;
	int r;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return nib_error_errno(err, "cannot open lock file '%s'", path);
	r = lock_fd(fd, type, wait, err);
	if (r < 0)
		return nib_error_prefix(err, "'%s'", path);
	if (r == 0)
		return 0;
	*ret_fd = TAKE_FD(fd);
	return 1;
}

int path_lock_acquire(const char *real_path, bool wait, struct path_lock **ret,
		      struct nib_error **err)
{
	cleanup_free char *lp = xasprintf("%s.lock", real_path);

	/*
	 * The previous holder deletes the file before unlocking.  If we opened
	 * the old inode and then got its lock, nobody else can see that inode
	 * any more, so the lock protects nothing: start again with a new file.
	 */
	for (int attempt = 0; attempt < 1000; attempt++) {
		cleanup_close int fd = -1;
		struct stat st;
		int r = lock_file_open(lp, LOCK_EXCLUSIVE, wait, &fd, err);

		if (r <= 0)
			return r;
		if (fstat(fd, &st) < 0)
			return nib_error_errno(err, "cannot stat lock file '%s'", lp);
		if (st.st_nlink == 0)
			continue;
		*ret = xmalloc(sizeof(**ret));
		(*ret)->path = TAKE_PTR(lp);
		(*ret)->fd = TAKE_FD(fd);
		return 1;
	}
	return nib_error_set(err, NIB_E_BUSY, 0, "cannot lock '%s': lock file keeps disappearing",
			     real_path);
}

void path_lock_release(struct path_lock *l)
{
	if (l == NULL)
		return;
	/* Unlink while still holding the lock: see path_lock_acquire. */
	(void)unlink(l->path);
	close(l->fd);
	free(l->path);
	free(l);
}

int path_lock_remove_stale(int dirfd, const char *name, struct nib_error **err)
{
	cleanup_close int fd = -1;
	struct stat st;
	int r;

	fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot open lock file '%s'", name);
	}
	r = lock_fd(fd, LOCK_EXCLUSIVE, false, err);
	if (r <= 0)
		return r < 0 ? nib_error_prefix(err, "'%s'", name) : 0;
	if (fstat(fd, &st) < 0)
		return nib_error_errno(err, "cannot stat lock file '%s'", name);
	if (st.st_nlink == 0 || !S_ISREG(st.st_mode))
		return 0;
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return nib_error_errno(err, "cannot remove lock file '%s'", name);
	return 1;
}

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "lock.h"
#include "util.h"
#include "banned.h"

struct path_lock {
	int fd; /* its own open of PATH_LOCKS_FILE, holding one byte */
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

/*
 * Byte of PATH_LOCKS_FILE that stands for the name: FNV-1a of the name,
 * below 2^62.  Store path names start with 32 characters of hash, so
 * different paths share a byte only by a 2^-62 chance (which would only
 * make one wait for the other).
 */
static off_t name_offset(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return (off_t)(h >> 2);
}

int path_lock_acquire(const char *real_path, bool wait, struct path_lock **ret,
		      struct nib_error **err)
{
	const char *slash = strrchr(real_path, '/');
	const char *name = slash != NULL ? slash + 1 : real_path;
	cleanup_free char *lp = slash != NULL ? xasprintf("%.*s/" PATH_LOCKS_FILE,
							  (int)(slash - real_path), real_path)
					      : xstrdup(PATH_LOCKS_FILE);
	cleanup_close int fd = -1;
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = name_offset(name),
		.l_len = 1,
		.l_pid = 0, /* required by F_OFD_* */
	};

	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return nib_error_errno(err, "cannot open lock file '%s'", lp);
	for (;;) {
		if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (!wait && (errno == EAGAIN || errno == EACCES))
			return 0;
		return nib_error_errno(err, "cannot lock '%s' (in '%s')", real_path, lp);
	}
	*ret = xmalloc(sizeof(**ret));
	(*ret)->fd = TAKE_FD(fd);
	return 1;
}

void path_lock_release(struct path_lock *l)
{
	if (l == NULL)
		return;
	close(l->fd); /* the lock belongs to this open file description alone */
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

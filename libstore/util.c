#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "banned.h"

static void oom(void)
{
	static const char msg[] = "nib: out of memory\n";
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom();
	return q;
}

void *xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		oom();
	return xrealloc(p, nmemb * size);
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		oom();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		oom();
	return p;
}

void *xmemdup(const void *p, size_t n)
{
	void *q = xmalloc(n);
	memcpy(q, p, n);
	return q;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

int parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end = NULL;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || end == s || *end != '\0')
		return -EINVAL;
	*ret = (uint64_t)v;
	return 0;
}

int parse_i64(const char *s, int64_t *ret)
{
	long long v;
	char *end = NULL;

	if (s == NULL || *s == '\0' || *s == ' ' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || end == s || *end != '\0')
		return -EINVAL;
	*ret = (int64_t)v;
	return 0;
}

void strv_push_words(char ***v, const char *s)
{
	while (s != NULL && *s) {
		size_t n;

		s += strspn(s, " \t\r\n");
		n = strcspn(s, " \t\r\n");
		if (n > 0) {
			cleanup_free char *w = xstrndup(s, n);
			strv_push(v, w);
		}
		s += n;
	}
}

int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t strv_length(char *const *v)
{
	size_t n = 0;
	if (v != NULL)
		while (v[n] != NULL)
			n++;
	return n;
}

void strv_free(char **v)
{
	strv_freep(&v);
}

void strv_push(char ***v, const char *s)
{
	size_t n = strv_length(*v);
	*v = xreallocarray(*v, n + 2, sizeof(char *));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

char **strv_copy(char *const *v)
{
	size_t n = strv_length(v);
	char **c = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

bool strv_contains(char *const *v, const char *s)
{
	for (; v != NULL && *v != NULL; v++)
		if (STREQ(*v, s))
			return true;
	return false;
}

ssize_t read_upto(int fd, void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, (char *)buf + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int read_full(int fd, void *buf, size_t n, struct nib_error **err)
{
	ssize_t r = read_upto(fd, buf, n);

	if (r < 0)
		return nib_error_errno(err, "read failed");
	if ((size_t)r != n)
		return nib_error_set(err, NIB_E_INVALID, 0, "unexpected end of input");
	return 0;
}

int write_full(int fd, const void *buf, size_t n, struct nib_error **err)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "write failed");
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int read_fd_all(int fd, size_t max, char **ret_buf, size_t *ret_len, struct nib_error **err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0, alloc = 0;

	for (;;) {
		ssize_t r;
		if (len + 4096 + 1 > alloc) {
			alloc = alloc ? alloc * 2 : 8192;
			buf = xrealloc(buf, alloc);
		}
		r = read(fd, buf + len, alloc - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "read failed");
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "larger than the limit of %zu bytes", max);
	}
	if (buf == NULL)
		buf = xmalloc(1);
	buf[len] = '\0';
	*ret_buf = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int read_file_at(int dirfd, const char *path, size_t max, char **ret_buf, size_t *ret_len,
		 struct nib_error **err)
{
	cleanup_close int fd = -1;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s'", path);
	if (read_fd_all(fd, max, ret_buf, ret_len, err) < 0)
		return nib_error_prefix(err, "'%s'", path);
	return 0;
}

int write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode,
			 bool do_fsync, struct nib_error **err)
{
	cleanup_free char *tmp = xasprintf("%s.tmp-%ld-%lu", path, (long)getpid(),
					   (unsigned long)(now_monotonic_usec() & 0xffffff));
	cleanup_close int fd = -1;

	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return nib_error_errno(err, "cannot create '%s'", tmp);
	if (write_full(fd, data, len, err) < 0 ||
	    (fchmod(fd, mode) < 0 && nib_error_errno(err, "cannot chmod '%s'", tmp)) ||
	    (do_fsync && fsync(fd) < 0 && nib_error_errno(err, "cannot fsync '%s'", tmp))) {
		unlinkat(dirfd, tmp, 0);
		return nib_error_prefix(err, "writing '%s'", path);
	}
	if (renameat(dirfd, tmp, dirfd, path) < 0) {
		int saved = errno;
		unlinkat(dirfd, tmp, 0);
		return nib_error_set(err, NIB_E_SYS, saved, "cannot rename '%s' to '%s'", tmp,
				     path);
	}
	return 0;
}

int mkdir_p(const char *path, mode_t mode, struct nib_error **err)
{
	cleanup_free char *p = xstrdup(path);
	size_t len = strlen(p);

	if (len == 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "empty directory path");
	{
		/* Mostly it is there already: one stat instead of a mkdir per component. */
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
	}
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return nib_error_errno(err, "cannot create directory '%s'", p);
		if (i < len)
			p[i] = '/';
	}
	{
		struct stat st;
		if (stat(path, &st) < 0)
			return nib_error_errno(err, "cannot stat '%s'", path);
		if (!S_ISDIR(st.st_mode))
			return nib_error_set(err, NIB_E_INVALID, ENOTDIR, "'%s' is not a directory",
					     path);
	}
	return 0;
}

/*
 * Let us list and empty a directory (best effort).  Only when it needs it:
 * a chmod is a journaled inode update, which waits behind a running fsync.
 */
static void make_traversable(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || (st.st_mode & 0700) != 0700)
		(void)fchmod(fd, 0700);
}

static int rm_rf_children(int dfd, const char *what, int depth, struct nib_error **err)
{
	cleanup_dir DIR *d = NULL;
	struct dirent *de;

	if (depth > 4096)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply", what);
	d = opendir_dup(dfd);
	if (d == NULL)
		return nib_error_errno(err, "cannot read directory '%s'", what);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			continue;
		if (errno == ENOENT)
			continue;
		if (errno == EISDIR || errno == EPERM) {
			int unlink_errno = errno;
			cleanup_close int sub = -1;

			/* An empty directory goes at once (no chmod, open or listing). */
			if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) == 0 || errno == ENOENT)
				continue;
			sub = openat(dfd, de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				/* Not a directory after all: unlinkat's errno is the reason. */
				if (errno == ENOTDIR || errno == ELOOP)
					return nib_error_set(err, NIB_E_SYS, unlink_errno,
							     "cannot remove '%s/%s'", what,
							     de->d_name);
				/* Unreadable directory: make it usable, then retry. */
				if (fchmodat(dfd, de->d_name, 0700, AT_SYMLINK_NOFOLLOW) < 0 &&
				    fchmodat(dfd, de->d_name, 0700, 0) < 0)
					return nib_error_errno(err, "cannot open '%s/%s'", what,
							       de->d_name);
				sub = openat(dfd, de->d_name,
					     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub < 0)
					return nib_error_errno(err, "cannot open '%s/%s'", what,
							       de->d_name);
			}
			make_traversable(sub);
			if (rm_rf_children(sub, what, depth + 1, err) < 0)
				return -1;
			if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
				return nib_error_errno(err, "cannot remove directory '%s/%s'", what,
						       de->d_name);
			continue;
		}
		return nib_error_errno(err, "cannot remove '%s/%s'", what, de->d_name);
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot read directory '%s'", what);
	return 0;
}

int rm_rf_at(int dirfd, const char *path, struct nib_error **err)
{
	cleanup_close int fd = -1;

	if (unlinkat(dirfd, path, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return nib_error_errno(err, "cannot remove '%s'", path);
	/* An empty directory goes at once: no chmod, which is a journaled write. */
	if (unlinkat(dirfd, path, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (fchmodat(dirfd, path, 0700, 0) < 0)
			return nib_error_errno(err, "cannot open '%s'", path);
		fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return nib_error_errno(err, "cannot open '%s'", path);
	}
	make_traversable(fd);
	if (rm_rf_children(fd, path, 0, err) < 0)
		return -1;
	if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return nib_error_errno(err, "cannot remove directory '%s'", path);
	return 0;
}

bool thread_start(pthread_t *ret, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	bool ok;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ok = pthread_create(ret, NULL, fn, arg) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ok;
}

int rm_rf_contents(const char *dir, struct nib_error **err)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot open '%s'", dir);
	}
	return rm_rf_children(fd, dir, 0, err);
}

char *read_link_abs(const char *link)
{
	cleanup_free char *buf = xmalloc(PATH_MAX + 1);
	ssize_t n = readlink(link, buf, PATH_MAX + 1);
	const char *slash;

	if (n < 0 || n > PATH_MAX)
		return NULL;
	buf[n] = '\0';
	if (buf[0] == '/')
		return TAKE_PTR(buf);
	slash = strrchr(link, '/');
	if (slash == NULL)
		return TAKE_PTR(buf);
	return xasprintf("%.*s/%s", (int)(slash - link), link, buf);
}

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	if (la == 1 && a[0] == '/')
		return xasprintf("/%s", b);
	return xasprintf("%.*s/%s", (int)la, a, b);
}

static uint64_t clock_usec(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

uint64_t now_monotonic_usec(void)
{
	return clock_usec(CLOCK_MONOTONIC);
}

uint64_t now_realtime_usec(void)
{
	return clock_usec(CLOCK_REALTIME);
}

static DIR *fdopendir_or_close(int fd)
{
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (d == NULL) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

DIR *opendir_at(int dirfd, const char *name)
{
	return fdopendir_or_close(
		openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

DIR *opendir_dup(int fd)
{
	return fdopendir_or_close(fd_dup_cloexec(fd));
}

int fd_dup_cloexec(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int fd_set_cloexec(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0)
		return -errno;
	flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
	if (fcntl(fd, F_SETFD, flags) < 0)
		return -errno;
	return 0;
}

char *format_bytes(uint64_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024)
		return xasprintf("%llu B", (unsigned long long)n);
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	return xasprintf("%.1f %s", v, units[u]);
}

int parse_size(const char *s, uint64_t *ret)
{
	cleanup_free char *num = NULL;
	size_t len;
	uint64_t v, mult = 1;
	int r;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	len = strlen(s);
	switch (s[len - 1]) {
	case 'K':
	case 'k':
		mult = 1ULL << 10;
		break;
	case 'M':
	case 'm':
		mult = 1ULL << 20;
		break;
	case 'G':
	case 'g':
		mult = 1ULL << 30;
		break;
	case 'T':
	case 't':
		mult = 1ULL << 40;
		break;
	default:
		break;
	}
	num = xstrndup(s, mult == 1 ? len : len - 1);
	r = parse_u64(num, &v);
	if (r < 0)
		return r;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret = v * mult;
	return 0;
}

/* build-queue.c - builds that wait, for `nib daemon status` (see build-queue.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-queue.h"
#include "cleanup.h"
#include "lock.h"
#include "settings.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

/* Bound on one list file (a process waiting for thousands of builds stays far below). */
#define QUEUE_FILE_MAX ((size_t)16 << 20)

struct build_queue {
	char *path;
	int fd;
	char *last; /* what the file holds now */
};

static const char *const wait_names[_BUILD_WAIT_MAX] = {
	[BUILD_WAIT_NONE] = "none",
	[BUILD_WAIT_JOB] = "max-jobs",
	[BUILD_WAIT_LOCK] = "same-derivation",
	[BUILD_WAIT_SLOT] = "slot",
};

static const char *const wait_texts[_BUILD_WAIT_MAX] = {
	[BUILD_WAIT_NONE] = "not waiting",
	[BUILD_WAIT_JOB] = "waiting for a free job (max-jobs)",
	[BUILD_WAIT_LOCK] = "waiting for another build of the same derivation",
	[BUILD_WAIT_SLOT] = "waiting for a free build slot",
};

const char *build_wait_name(enum build_wait w)
{
	return (unsigned)w < _BUILD_WAIT_MAX ? wait_names[w] : NULL;
}

const char *build_wait_describe(enum build_wait w)
{
	return (unsigned)w < _BUILD_WAIT_MAX ? wait_texts[w] : "waiting";
}

void build_queue_entries_free(struct build_queue_entry *e, size_t n)
{
	for (size_t i = 0; e != NULL && i < n; i++)
		free(e[i].drv_path);
	free(e);
}

static char *queue_dir(const struct settings *s)
{
	return xasprintf("%s/jobs/queued", s->state_dir);
}

/*
 * Create and lock <dir>/<pid>.  A reader may remove a file it found
 * unlocked between our open() and our lock; then the inode we locked is no
 * longer at the path and we start again.
 */
static int queue_open(const struct settings *s, struct build_queue **ret, struct nib_error **err)
{
	cleanup_free char *dir = queue_dir(s);
	cleanup_free char *path = xasprintf("%s/%d", dir, (int)getpid());

	if (mkdir_p(dir, 0755, err) < 0)
		return -1;
	for (int attempt = 0; attempt < 100; attempt++) {
		cleanup_close int fd = -1;
		struct stat a, b;
		struct build_queue *q;

		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
		if (fd < 0)
			return nib_error_errno(err, "cannot open '%s'", path);
		if (lock_fd(fd, LOCK_EXCLUSIVE, true, err) < 0)
			return nib_error_prefix(err, "'%s'", path);
		if (fstat(fd, &a) < 0)
			return nib_error_errno(err, "cannot stat '%s'", path);
		if (stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
			continue;
		if (ftruncate(fd, 0) < 0)
			return nib_error_errno(err, "cannot truncate '%s'", path);
		q = xcalloc(1, sizeof(*q));
		q->path = TAKE_PTR(path);
		q->fd = TAKE_FD(fd);
		q->last = xstrdup("");
		*ret = q;
		return 0;
	}
	return nib_error_set(err, NIB_E_BUSY, 0, "cannot keep '%s' in place", path);
}

int build_queue_publish(struct build_queue **q, const struct settings *s,
			const struct build_queue_entry *entries, size_t n, struct nib_error **err)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;

	if (*q == NULL && n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&sb, "%lld\t%s\t%s\n", (long long)entries[i].since,
			    build_wait_name(entries[i].wait), entries[i].drv_path);
	if (*q != NULL && STREQ((*q)->last, sb.buf))
		return 0;
	if (*q == NULL && queue_open(s, q, err) < 0)
		return -1;
	/* Truncate first: a reader sees a prefix of the new list, never old lines after it. */
	if (ftruncate((*q)->fd, 0) < 0)
		return nib_error_errno(err, "cannot truncate '%s'", (*q)->path);
	if (sb.len > 0 && pwrite((*q)->fd, sb.buf, sb.len, 0) != (ssize_t)sb.len)
		return nib_error_errno(err, "cannot write '%s'", (*q)->path);
	free((*q)->last);
	(*q)->last = xstrdup(sb.buf);
	return 0;
}

void build_queue_close(struct build_queue *q)
{
	if (q == NULL)
		return;
	/* Removed while locked, so that no reader takes it for a stale file of ours. */
	unlink(q->path);
	close(q->fd);
	free(q->path);
	free(q->last);
	free(q);
}

/* Remove a file whose holder is gone, if we may (the caller found it unlocked). */
static void remove_stale(int dfd, const char *name)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_close int fd = openat(dfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

	if (fd < 0 || lock_fd(fd, LOCK_EXCLUSIVE, false, &e) != 1)
		return;
	unlinkat(dfd, name, 0);
}

static enum build_wait wait_parse(const char *s)
{
	for (int w = BUILD_WAIT_JOB; w < _BUILD_WAIT_MAX; w++)
		if (STREQ(s, wait_names[w]))
			return (enum build_wait)w;
	return BUILD_WAIT_NONE;
}

/* Append the complete, well-formed lines of text to the list. */
static void parse_lines(char *text, pid_t pid, struct build_queue_entry **v, size_t *n,
			size_t *alloc)
{
	char *line = text, *nl;

	while ((nl = strchr(line, '\n')) != NULL) {
		char *tab1, *tab2;
		int64_t since;
		enum build_wait w;

		*nl = '\0';
		tab1 = strchr(line, '\t');
		tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
		if (tab2 != NULL) {
			*tab1 = *tab2 = '\0';
			w = wait_parse(tab1 + 1);
			if (parse_i64(line, &since) == 0 && w != BUILD_WAIT_NONE &&
			    tab2[1] == '/') {
				ALLOC_GROW(*v, *n + 1, *alloc);
				(*v)[(*n)++] =
					(struct build_queue_entry){ .drv_path = xstrdup(tab2 + 1),
								    .wait = w,
								    .since = since,
								    .pid = pid };
			}
		}
		line = nl + 1;
	}
}

static int entry_cmp(const void *a, const void *b)
{
	const struct build_queue_entry *x = a, *y = b;

	if (x->since != y->since)
		return x->since < y->since ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return strcmp(x->drv_path, y->drv_path);
}

int build_queue_list(const struct settings *s, struct build_queue_entry **ret, size_t *ret_n,
		     struct nib_error **err)
{
	cleanup_free char *dir = queue_dir(s);
	cleanup_dir DIR *d = opendir_at(AT_FDCWD, dir);
	struct build_queue_entry *v = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;

	if (d == NULL) {
		if (errno != ENOENT)
			return nib_error_errno(err, "cannot read '%s'", dir);
		*ret = xcalloc(1, sizeof(**ret));
		*ret_n = 0;
		return 0;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		cleanup_error struct nib_error *e = NULL;
		cleanup_close int fd = -1;
		cleanup_free char *text = NULL;
		uint64_t pid;
		int r;

		if (parse_u64(de->d_name, &pid) < 0 || pid == 0 || pid > INT32_MAX)
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0)
			continue; /* removed meanwhile */
		/* A shared lock is granted only when the writer is gone. */
		r = lock_fd(fd, LOCK_SHARED, false, &e);
		if (r != 0) {
			if (r == 1) {
				close(TAKE_FD(fd));
				remove_stale(dirfd(d), de->d_name);
			}
			continue;
		}
		if (read_fd_all(fd, QUEUE_FILE_MAX, &text, NULL, &e) < 0)
			continue;
		parse_lines(text, (pid_t)pid, &v, &n, &alloc);
	}
	if (errno != 0) {
		build_queue_entries_free(v, n);
		return nib_error_errno(err, "cannot read '%s'", dir);
	}
	sort_array(v, n, sizeof(*v), entry_cmp);
	*ret = v != NULL ? v : xcalloc(1, sizeof(*v));
	*ret_n = n;
	return 0;
}

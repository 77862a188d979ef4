#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

#define PROC_FILE_MAX (4U << 20) /* mountinfo of a busy host stays far below this */
#define CG_FILE_MAX (1U << 20)	 /* cgroup.procs of a fork bomb under pids.max */
#define CG_NAME_MAX 200
#define CG_MAX_DEPTH 64		   /* nesting a uid-range build may create */
#define KILL_TIMEOUT_USEC 10000000 /* give up waiting for a killed build after 10 s */
#define RMDIR_TIMEOUT_USEC 5000000

struct cgroup_root {
	char *v2_mount;	 /* mountpoint of the v2 hierarchy, or NULL */
	char *v2_parent; /* where build cgroups go, or NULL */
	char *v1_memory; /* our own group in the v1 memory hierarchy, or NULL */
	char *v1_pids;	 /* our own group in the v1 pids hierarchy, or NULL */
};

struct cgroup_build {
	char *name;
	char *v2_path; /* NULL without v2 */
	int v2_fd;
	bool v2_memory; /* memory controller enabled in the leaf */
	bool has_kill;	/* cgroup.kill exists */
	char *v1_memory_path;
	char *v1_pids_path;
};

/* ---- discovery ---------------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for space, ...) in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0';) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Is `word` one of the comma-separated tokens of `list`? */
static bool list_has(const char *list, const char *word, char sep)
{
	size_t wl = strlen(word);

	for (const char *p = list; p != NULL && *p != '\0';) {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == wl && memcmp(p, word, wl) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

struct mount_line {
	char *root, *mountpoint, *fstype, *superopts;
};

/* Split one mountinfo line in place; returns false for a malformed line. */
static bool split_mountinfo(char *line, struct mount_line *m)
{
	char *fields[6] = { 0 };
	char *save = NULL, *tok, *sep;
	int n = 0;

	sep = strstr(line, " - ");
	if (sep == NULL)
		return false;
	*sep = '\0';
	for (tok = strtok_r(line, " ", &save); tok != NULL && n < 6;
	     tok = strtok_r(NULL, " ", &save))
		fields[n++] = tok;
	if (n < 6)
		return false;
	m->root = fields[3];
	m->mountpoint = fields[4];
	save = NULL;
	m->fstype = strtok_r(sep + 3, " ", &save);
	if (m->fstype == NULL || strtok_r(NULL, " ", &save) == NULL)
		return false;
	m->superopts = strtok_r(NULL, " ", &save);
	if (m->superopts == NULL)
		m->superopts = (char *)"";
	unescape_octal(m->root);
	unescape_octal(m->mountpoint);
	return true;
}

/*
 * The directory of cgroup `path` (as in /proc/self/cgroup, relative to our
 * cgroup namespace) under a mount whose root is `root`; NULL when that mount
 * does not show it.
 */
static char *resolve_in_mount(const char *mountpoint, const char *root, const char *path)
{
	size_t rl = strlen(root);

	if (STREQ(root, "/"))
		return STREQ(path, "/") ? xstrdup(mountpoint) : path_join(mountpoint, path);
	if (strncmp(path, root, rl) != 0 || (path[rl] != '\0' && path[rl] != '/'))
		return NULL;
	return path[rl] == '\0' ? xstrdup(mountpoint) : path_join(mountpoint, path + rl);
}

/* Our cgroup path for hierarchy `controller` ("" for v2) from /proc/self/cgroup. */
static char *self_cgroup_path(const char *self_cgroup, const char *controller)
{
	cleanup_free char *copy = xstrdup(self_cgroup);
	char *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2;
		if (c1 == NULL)
			continue;
		c2 = strchr(c1 + 1, ':');
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		if (controller[0] == '\0' ? (c1[1] == '\0' && strncmp(line, "0:", 2) == 0)
					  : list_has(c1 + 1, controller, ','))
			return xstrdup(c2 + 1);
	}
	return NULL;
}

static char *find_v1_dir(const char *mountinfo, const char *self_cgroup, const char *controller)
{
	cleanup_free char *copy = xstrdup(mountinfo);
	cleanup_free char *path = self_cgroup_path(self_cgroup, controller);
	char *save = NULL;

	if (path == NULL)
		return NULL;
	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct mount_line m;
		char *dir;
		if (!split_mountinfo(line, &m) || !STREQ(m.fstype, "cgroup") ||
		    !list_has(m.superopts, controller, ','))
			continue;
		dir = resolve_in_mount(m.mountpoint, m.root, path);
		if (dir != NULL)
			return dir;
	}
	return NULL;
}

int cgroup_root_parse(const char *mountinfo, const char *self_cgroup, const char *v2_parent,
		      struct cgroup_root **ret, struct nib_error **err)
{
	cleanup_free char *copy = xstrdup(mountinfo);
	cleanup_free char *v2_path = self_cgroup_path(self_cgroup, "");
	cleanup_free char *v2_mount = NULL, *v2_own = NULL;
	struct cgroup_root *root;
	char *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line != NULL && v2_own == NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct mount_line m;
		if (!split_mountinfo(line, &m) || !STREQ(m.fstype, "cgroup2"))
			continue;
		if (v2_path != NULL)
			v2_own = resolve_in_mount(m.mountpoint, m.root, v2_path);
		if (v2_own != NULL || v2_mount == NULL) {
			free(v2_mount);
			v2_mount = xstrdup(m.mountpoint);
		}
	}
	if (v2_parent != NULL) {
		size_t ml = v2_mount ? strlen(v2_mount) : 0;
		if (v2_parent[0] != '/')
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "cgroup parent '%s' is not an absolute path",
					     v2_parent);
		if (v2_mount == NULL)
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "cgroup parent '%s' given but no cgroup v2 hierarchy "
					     "is mounted",
					     v2_parent);
		if (strncmp(v2_parent, v2_mount, ml) != 0 ||
		    (v2_parent[ml] != '/' && v2_parent[ml] != '\0' && !STREQ(v2_mount, "/")))
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "cgroup parent '%s' is not inside the cgroup v2 "
					     "mount '%s'",
					     v2_parent, v2_mount);
		free(v2_own);
		v2_own = xstrdup(v2_parent);
	}
	root = xcalloc(1, sizeof(*root));
	if (v2_own != NULL) {
		root->v2_mount = TAKE_PTR(v2_mount);
		root->v2_parent = TAKE_PTR(v2_own);
	}
	root->v1_memory = find_v1_dir(mountinfo, self_cgroup, "memory");
	root->v1_pids = find_v1_dir(mountinfo, self_cgroup, "pids");
	*ret = root;
	return 0;
}

int cgroup_root_discover(const char *v2_parent, struct cgroup_root **ret, struct nib_error **err)
{
	cleanup_free char *mountinfo = NULL, *self = NULL;

	if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", PROC_FILE_MAX, &mountinfo, NULL, err) <
		    0 ||
	    read_file_at(AT_FDCWD, "/proc/self/cgroup", PROC_FILE_MAX, &self, NULL, err) < 0)
		return nib_error_prefix(err, "discovering cgroups");
	return cgroup_root_parse(mountinfo, self, v2_parent, ret, err);
}

bool cgroup_root_has_v2(const struct cgroup_root *root)
{
	return root->v2_parent != NULL;
}

const char *cgroup_root_v2_parent(const struct cgroup_root *root)
{
	return root->v2_parent;
}

const char *cgroup_root_v1_dir(const struct cgroup_root *root, const char *controller)
{
	if (STREQ(controller, "memory"))
		return root->v1_memory;
	if (STREQ(controller, "pids"))
		return root->v1_pids;
	return NULL;
}

void cgroup_root_free(struct cgroup_root *root)
{
	if (root == NULL)
		return;
	free(root->v2_mount);
	free(root->v2_parent);
	free(root->v1_memory);
	free(root->v1_pids);
	free(root);
}

/* ---- small file helpers ------------------------------------------------- */

static int cg_write(int dirfd, const char *dir, const char *file, const char *value,
		    struct nib_error **err)
{
	cleanup_close int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = strlen(value);
	ssize_t w;

	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s/%s'", dir, file);
	w = write(fd, value, len);
	if (w < 0)
		return nib_error_errno(err, "cannot write '%s' to '%s/%s'", value, dir, file);
	if ((size_t)w != len)
		return nib_error_set(err, NIB_E_SYS, EIO, "short write to '%s/%s'", dir, file);
	return 0;
}

static int cg_read(int dirfd, const char *dir, const char *file, char **ret, struct nib_error **err)
{
	if (read_file_at(dirfd, file, CG_FILE_MAX, ret, NULL, err) < 0)
		return nib_error_prefix(err, "reading cgroup '%s'", dir);
	return 0;
}

/* Value of "key N" in a flat-keyed file (cpu.stat, memory.events). */
static bool keyed_value(const char *text, const char *key, uint64_t *ret)
{
	size_t kl = strlen(key);

	for (const char *p = text; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			char num[32];
			size_t len = (nl ? (size_t)(nl - p) : strlen(p)) - kl - 1;
			if (len == 0 || len >= sizeof(num))
				return false;
			memcpy(num, p + kl + 1, len);
			num[len] = '\0';
			return parse_u64(num, ret) == 0;
		}
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

static bool file_exists_at(int dirfd, const char *file)
{
	return faccessat(dirfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static void sleep_usec(uint64_t usec)
{
	struct timespec ts = { .tv_sec = (time_t)(usec / 1000000),
			       .tv_nsec = (long)(usec % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- killing and removal ------------------------------------------------ */

/*
 * SIGKILL every member of the group at dirfd and of its descendants; adds
 * the number of members seen to *count.
 */
static int sigkill_tree(int dirfd, const char *path, int depth, size_t *count,
			struct nib_error **err)
{
	cleanup_free char *procs = NULL;
	cleanup_dir DIR *d = NULL;
	struct dirent *de;

	if (depth > CG_MAX_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "cgroup '%s' is nested too deeply",
				     path);
	if (read_file_at(dirfd, "cgroup.procs", CG_FILE_MAX, &procs, NULL, err) < 0) {
		if ((*err)->sys_errno == ENOENT || (*err)->sys_errno == ENODEV) {
			nib_error_clear(err); /* removed meanwhile */
			return 0;
		}
		return nib_error_prefix(err, "reading cgroup '%s'", path);
	}
	for (char *p = procs, *nl; p != NULL && *p != '\0'; p = nl ? nl + 1 : NULL) {
		uint64_t pid;
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (parse_u64(p, &pid) < 0 || pid == 0 || pid > INT32_MAX)
			continue;
		(*count)++;
		if (kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH)
			return nib_error_errno(err, "cannot kill process %llu of cgroup '%s'",
					       (unsigned long long)pid, path);
	}
	d = opendir_dup(dirfd);
	if (d == NULL)
		return nib_error_errno(err, "cannot list cgroup '%s'", path);
	while ((errno = 0, de = readdir(d)) != NULL) {
		cleanup_close int sub = -1;
		cleanup_free char *subpath = NULL;
		if (de->d_type != DT_DIR || STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (errno == ENOENT)
				continue;
			return nib_error_errno(err, "cannot open cgroup '%s/%s'", path, de->d_name);
		}
		subpath = path_join(path, de->d_name);
		if (sigkill_tree(sub, subpath, depth + 1, count, err) < 0)
			return -1;
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot list cgroup '%s'", path);
	return 0;
}

/* Is any process left in the v2 subtree?  cgroup.events is recursive. */
static int v2_populated(int dirfd, const char *path, bool *ret, struct nib_error **err)
{
	cleanup_free char *events = NULL;
	uint64_t v;

	if (cg_read(dirfd, path, "cgroup.events", &events, err) < 0)
		return -1;
	if (!keyed_value(events, "populated", &v))
		return nib_error_set(err, NIB_E_INVALID, 0, "cannot parse '%s/cgroup.events'",
				     path);
	*ret = v != 0;
	return 0;
}

static int open_dir(const char *path, struct nib_error **err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nib_error_errno(err, "cannot open cgroup '%s'", path);
	return fd;
}

int cgroup_build_kill(struct cgroup_build *cg, struct nib_error **err)
{
	uint64_t start = now_monotonic_usec(), delay = 500;
	const char *v1[2] = { cg->v1_memory_path, cg->v1_pids_path };
	bool used_kill = false;

	if (cg->v2_path != NULL && cg->has_kill) {
		/* Atomic with respect to forks: nothing escapes. */
		if (cg_write(cg->v2_fd, cg->v2_path, "cgroup.kill", "1", err) < 0)
			return -1;
		used_kill = true;
	}
	for (unsigned round = 0;; round++) {
		size_t left = 0;
		bool populated = false;

		if (cg->v2_path != NULL) {
			if (!used_kill || round > 0) {
				if (sigkill_tree(cg->v2_fd, cg->v2_path, 0, &left, err) < 0)
					return -1;
			}
			if (v2_populated(cg->v2_fd, cg->v2_path, &populated, err) < 0)
				return -1;
		} else {
			populated = false;
		}
		/* v1 groups count too: without v2 they are all we have. */
		for (size_t i = 0; i < 2; i++) {
			cleanup_close int fd = -1;
			size_t n = 0;
			if (v1[i] == NULL)
				continue;
			fd = open(v1[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				if (errno == ENOENT)
					continue;
				return nib_error_errno(err, "cannot open cgroup '%s'", v1[i]);
			}
			if (sigkill_tree(fd, v1[i], 0, &n, err) < 0)
				return -1;
			if (n > 0)
				populated = true;
		}
		if (!populated)
			return 0;
		if (now_monotonic_usec() - start > KILL_TIMEOUT_USEC)
			return nib_error_set(err, NIB_E_BUSY, 0,
					     "cannot kill every process of build cgroup '%s'",
					     cg->name);
		sleep_usec(delay);
		if (delay < 64000)
			delay *= 2;
	}
}

/* Remove the directory `name` under dirfd and everything below, bottom-up. */
static int rmdir_tree(int dirfd, const char *name, const char *path, int depth,
		      struct nib_error **err)
{
	cleanup_close int fd = -1;
	cleanup_dir DIR *d = NULL;
	uint64_t start, delay = 500;
	struct dirent *de;

	if (depth > CG_MAX_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "cgroup '%s' is nested too deeply",
				     path);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot open cgroup '%s'", path);
	}
	d = opendir_dup(fd);
	if (d == NULL)
		return nib_error_errno(err, "cannot list cgroup '%s'", path);
	while ((errno = 0, de = readdir(d)) != NULL) {
		cleanup_free char *sub = NULL;
		if (de->d_type != DT_DIR || STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		sub = path_join(path, de->d_name);
		if (rmdir_tree(fd, de->d_name, sub, depth + 1, err) < 0)
			return -1;
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot list cgroup '%s'", path);
	/* A killed group stays busy until its last task has left the kernel. */
	start = now_monotonic_usec();
	while (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || now_monotonic_usec() - start > RMDIR_TIMEOUT_USEC)
			return nib_error_errno(err, "cannot remove cgroup '%s'", path);
		sleep_usec(delay);
		if (delay < 64000)
			delay *= 2;
	}
	return 0;
}

static int rmdir_path(const char *path, struct nib_error **err)
{
	cleanup_free char *parent = xstrdup(path);
	cleanup_close int pfd = -1;
	char *slash = strrchr(parent, '/');

	if (slash == NULL || slash == parent)
		return nib_error_set(err, NIB_E_INVALID, 0, "refusing to remove cgroup '%s'", path);
	*slash = '\0';
	pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return nib_error_errno(err, "cannot open cgroup '%s'", parent);
	return rmdir_tree(pfd, slash + 1, path, 0, err);
}

int cgroup_build_destroy(struct cgroup_build *cg, struct nib_error **err)
{
	const char *v1[2] = { cg->v1_memory_path, cg->v1_pids_path };

	if (cgroup_build_kill(cg, err) < 0)
		return -1;
	if (cg->v2_path != NULL && rmdir_path(cg->v2_path, err) < 0)
		return -1;
	for (size_t i = 0; i < 2; i++)
		if (v1[i] != NULL && rmdir_path(v1[i], err) < 0)
			return -1;
	return 0;
}

void cgroup_build_free(struct cgroup_build *cg)
{
	if (cg == NULL)
		return;
	if (cg->v2_fd >= 0)
		close(cg->v2_fd);
	free(cg->name);
	free(cg->v2_path);
	free(cg->v1_memory_path);
	free(cg->v1_pids_path);
	free(cg);
}

/* ---- creation ----------------------------------------------------------- */

static int validate_name(const char *name, struct nib_error **err)
{
	size_t len = strlen(name);

	if (len == 0 || len > CG_NAME_MAX || name[0] == '.')
		return nib_error_set(err, NIB_E_INVALID, 0, "invalid cgroup name '%s'", name);
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			return nib_error_set(err, NIB_E_INVALID, 0, "invalid cgroup name '%s'",
					     name);
	return 0;
}

/* Make sure `controller` is enabled for the children of the v2 parent. */
static int enable_controller(const char *parent, const char *controller, struct nib_error **err)
{
	cleanup_close int pfd = open_dir(parent, err);
	cleanup_free char *enabled = NULL, *add = NULL;
	char *nl;

	if (pfd < 0 || cg_read(pfd, parent, "cgroup.subtree_control", &enabled, err) < 0)
		return -1;
	nl = strchr(enabled, '\n');
	if (nl)
		*nl = '\0';
	if (list_has(enabled, controller, ' '))
		return 0;
	add = xasprintf("+%s", controller);
	if (cg_write(pfd, parent, "cgroup.subtree_control", add, err) < 0) {
		if ((*err)->sys_errno == EBUSY)
			nib_error_prefix(err, "the cgroup holds processes itself; run the daemon "
					      "in a child cgroup or configure a cgroup parent");
		return nib_error_prefix(err, "cannot enable the %s controller for build cgroups",
					controller);
	}
	return 0;
}

/*
 * Make a fresh group `name` in `dir`, removing a leftover of the same name;
 * returns an O_DIRECTORY fd of it.
 */
static int make_group(const char *dir, const char *name, char **ret_path, struct nib_error **err)
{
	cleanup_free char *path = path_join(dir, name);
	int fd;

	if (mkdir(path, 0755) < 0) {
		if (errno != EEXIST)
			return nib_error_errno(err, "cannot create cgroup '%s'", path);
		/* Leftover from a crashed build: kill what is in it, then start afresh. */
		{
			cleanup_close int old = open_dir(path, err);
			size_t n = 0;
			if (old < 0 || sigkill_tree(old, path, 0, &n, err) < 0 ||
			    rmdir_path(path, err) < 0)
				return nib_error_prefix(err, "removing leftover cgroup");
		}
		if (mkdir(path, 0755) < 0)
			return nib_error_errno(err, "cannot create cgroup '%s'", path);
	}
	fd = open_dir(path, err);
	if (fd < 0)
		return -1;
	*ret_path = TAKE_PTR(path);
	return fd;
}

static int create_groups(struct cgroup_root *root, struct cgroup_build *cg,
			 const struct cgroup_limits *lim, struct nib_error **err)
{
	bool want_mem = lim && lim->memory_max, want_pids = lim && lim->pids_max;
	bool mem_v2 = false, pids_v2 = false, v1_mem, v1_pids;
	char num[32];

	if (root->v2_parent != NULL) {
		cleanup_close int pfd = open_dir(root->v2_parent, err);
		cleanup_free char *controllers = NULL;
		char *nl;
		if (pfd < 0 ||
		    cg_read(pfd, root->v2_parent, "cgroup.controllers", &controllers, err) < 0)
			return -1;
		nl = strchr(controllers, '\n');
		if (nl)
			*nl = '\0';
		mem_v2 = want_mem && list_has(controllers, "memory", ' ');
		pids_v2 = want_pids && list_has(controllers, "pids", ' ');
		if ((mem_v2 && enable_controller(root->v2_parent, "memory", err) < 0) ||
		    (pids_v2 && enable_controller(root->v2_parent, "pids", err) < 0))
			return -1;
	}
	v1_mem = want_mem && !mem_v2;
	v1_pids = want_pids && !pids_v2;
	if (v1_mem && root->v1_memory == NULL)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "cannot enforce build-memory-max: no memory controller in "
				     "cgroup v2 and no v1 memory hierarchy");
	if (v1_pids && root->v1_pids == NULL)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "cannot enforce build-pids-max: no pids controller in "
				     "cgroup v2 and no v1 pids hierarchy");
	if (root->v2_parent == NULL && !v1_mem && !v1_pids) {
		/* Pure v1 host: track the build in a v1 hierarchy to be able to kill it. */
		if (root->v1_pids != NULL)
			v1_pids = true;
		else if (root->v1_memory != NULL)
			v1_mem = true;
		else
			return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
					     "no usable cgroup hierarchy (no cgroup v2, no v1 "
					     "pids or memory hierarchy)");
	}

	if (root->v2_parent != NULL) {
		cg->v2_fd = make_group(root->v2_parent, cg->name, &cg->v2_path, err);
		if (cg->v2_fd < 0)
			return -1;
		cg->has_kill = file_exists_at(cg->v2_fd, "cgroup.kill");
		cg->v2_memory = mem_v2;
		if (mem_v2) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)lim->memory_max);
			if (cg_write(cg->v2_fd, cg->v2_path, "memory.max", num, err) < 0)
				return -1;
			/* A limit the build could escape by swapping is no limit. */
			if (file_exists_at(cg->v2_fd, "memory.swap.max") &&
			    cg_write(cg->v2_fd, cg->v2_path, "memory.swap.max", "0", err) < 0)
				return -1;
			if (file_exists_at(cg->v2_fd, "memory.oom.group") &&
			    cg_write(cg->v2_fd, cg->v2_path, "memory.oom.group", "1", err) < 0)
				return -1;
		}
		if (pids_v2) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)lim->pids_max);
			if (cg_write(cg->v2_fd, cg->v2_path, "pids.max", num, err) < 0)
				return -1;
		}
	}
	if (v1_mem) {
		cleanup_close int fd =
			make_group(root->v1_memory, cg->name, &cg->v1_memory_path, err);
		if (fd < 0)
			return -1;
		if (want_mem) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)lim->memory_max);
			if (cg_write(fd, cg->v1_memory_path, "memory.limit_in_bytes", num, err) <
				    0 ||
			    (file_exists_at(fd, "memory.memsw.limit_in_bytes") &&
			     cg_write(fd, cg->v1_memory_path, "memory.memsw.limit_in_bytes", num,
				      err) < 0))
				return -1;
		}
	}
	if (v1_pids) {
		cleanup_close int fd = make_group(root->v1_pids, cg->name, &cg->v1_pids_path, err);
		if (fd < 0)
			return -1;
		if (want_pids) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)lim->pids_max);
			if (cg_write(fd, cg->v1_pids_path, "pids.max", num, err) < 0)
				return -1;
		}
	}
	return 0;
}

int cgroup_build_create(struct cgroup_root *root, const char *name,
			const struct cgroup_limits *limits, struct cgroup_build **ret,
			struct nib_error **err)
{
	cleanup_cgroup_build struct cgroup_build *cg = NULL;

	if (validate_name(name, err) < 0)
		return -1;
	cg = xcalloc(1, sizeof(*cg));
	cg->v2_fd = -1;
	cg->name = xstrdup(name);
	if (create_groups(root, cg, limits, err) < 0) {
		cleanup_error struct nib_error *ignored = NULL;
		cgroup_build_destroy(cg, &ignored);
		return nib_error_prefix(err, "creating build cgroup '%s'", name);
	}
	*ret = TAKE_PTR(cg);
	return 0;
}

int cgroup_build_remove_leftover(struct cgroup_root *root, const char *name, struct nib_error **err)
{
	const char *dirs[3] = { root->v2_parent, root->v1_memory, root->v1_pids };
	int found = 0;

	if (validate_name(name, err) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		cleanup_free char *path = NULL;
		cleanup_close int fd = -1;
		size_t n = 0;
		if (dirs[i] == NULL)
			continue;
		path = path_join(dirs[i], name);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return nib_error_errno(err, "cannot open cgroup '%s'", path);
		}
		found = 1;
		if (i == 0 && file_exists_at(fd, "cgroup.kill") &&
		    cg_write(fd, path, "cgroup.kill", "1", err) < 0)
			return -1;
		if (sigkill_tree(fd, path, 0, &n, err) < 0 || rmdir_path(path, err) < 0)
			return nib_error_prefix(err, "removing leftover cgroup");
	}
	return found;
}

int cgroup_build_v2_fd(const struct cgroup_build *cg)
{
	return cg->v2_fd;
}

const char *cgroup_build_v2_path(const struct cgroup_build *cg)
{
	return cg->v2_path;
}

int cgroup_build_attach(struct cgroup_build *cg, pid_t pid, bool in_v2_already,
			struct nib_error **err)
{
	const char *v1[2] = { cg->v1_memory_path, cg->v1_pids_path };
	char num[32];

	snprintf(num, sizeof(num), "%ld", (long)pid);
	if (cg->v2_path != NULL && !in_v2_already &&
	    cg_write(cg->v2_fd, cg->v2_path, "cgroup.procs", num, err) < 0)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		cleanup_close int fd = -1;
		if (v1[i] == NULL)
			continue;
		fd = open_dir(v1[i], err);
		if (fd < 0 || cg_write(fd, v1[i], "cgroup.procs", num, err) < 0)
			return -1;
	}
	return 0;
}

int cgroup_build_delegate(struct cgroup_build *cg, uid_t uid, gid_t gid, struct nib_error **err)
{
	static const char *const base[] = { "cgroup.procs", "cgroup.threads",
					    "cgroup.subtree_control" };
	cleanup_free char *extra = NULL;
	cleanup_error struct nib_error *ignored = NULL;

	if (cg->v2_path == NULL)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "cannot delegate a cgroup without cgroup v2");
	if (fchown(cg->v2_fd, uid, gid) < 0)
		return nib_error_errno(err, "cannot delegate cgroup '%s'", cg->v2_path);
	for (size_t i = 0; i < ARRAY_SIZE(base); i++)
		if (fchownat(cg->v2_fd, base[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			return nib_error_errno(err, "cannot delegate '%s/%s'", cg->v2_path,
					       base[i]);
	/* The kernel lists the other files a delegatee may own (5.x and later). */
	if (read_file_at(AT_FDCWD, "/sys/kernel/cgroup/delegate", 4096, &extra, NULL, &ignored) ==
	    0) {
		char *save = NULL;
		for (char *f = strtok_r(extra, "\n", &save); f != NULL;
		     f = strtok_r(NULL, "\n", &save)) {
			if (strchr(f, '/') != NULL || !file_exists_at(cg->v2_fd, f))
				continue;
			if (fchownat(cg->v2_fd, f, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
				return nib_error_errno(err, "cannot delegate '%s/%s'", cg->v2_path,
						       f);
		}
	}
	return 0;
}

int cgroup_build_stats(struct cgroup_build *cg, struct cgroup_stats *ret, struct nib_error **err)
{
	struct cgroup_stats st = { 0 };
	cleanup_error struct nib_error *ignored = NULL;

	if (cg->v2_path != NULL) {
		cleanup_free char *cpu = NULL, *events = NULL, *pids = NULL;
		if (cg_read(cg->v2_fd, cg->v2_path, "cpu.stat", &cpu, err) < 0)
			return -1;
		st.have_cpu = keyed_value(cpu, "user_usec", &st.cpu_user_usec) &&
			      keyed_value(cpu, "system_usec", &st.cpu_system_usec);
		if (cg->v2_memory) {
			cleanup_free char *peak = NULL;
			char *nl;
			if (read_file_at(cg->v2_fd, "memory.peak", 64, &peak, NULL, &ignored) ==
			    0) {
				nl = strchr(peak, '\n');
				if (nl)
					*nl = '\0';
				st.have_memory_peak = parse_u64(peak, &st.memory_peak) == 0;
			}
			nib_error_clear(&ignored);
			if (read_file_at(cg->v2_fd, "memory.events", 4096, &events, NULL,
					 &ignored) == 0)
				keyed_value(events, "oom_kill", &st.oom_kills);
			nib_error_clear(&ignored);
		}
		if (read_file_at(cg->v2_fd, "pids.events", 4096, &pids, NULL, &ignored) == 0)
			keyed_value(pids, "max", &st.pids_max_hits);
		nib_error_clear(&ignored);
	}
	if (cg->v1_memory_path != NULL) {
		cleanup_close int fd = open_dir(cg->v1_memory_path, err);
		cleanup_free char *peak = NULL, *oom = NULL;
		char *nl;
		if (fd < 0 ||
		    cg_read(fd, cg->v1_memory_path, "memory.max_usage_in_bytes", &peak, err) < 0)
			return -1;
		nl = strchr(peak, '\n');
		if (nl)
			*nl = '\0';
		st.have_memory_peak = parse_u64(peak, &st.memory_peak) == 0;
		if (read_file_at(fd, "memory.oom_control", 4096, &oom, NULL, &ignored) == 0)
			keyed_value(oom, "oom_kill", &st.oom_kills);
		nib_error_clear(&ignored);
	}
	if (cg->v1_pids_path != NULL) {
		cleanup_close int fd = open_dir(cg->v1_pids_path, err);
		cleanup_free char *pids = NULL;
		if (fd < 0)
			return -1;
		if (read_file_at(fd, "pids.events", 4096, &pids, NULL, &ignored) == 0)
			keyed_value(pids, "max", &st.pids_max_hits);
	}
	*ret = st;
	return 0;
}

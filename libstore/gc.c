/*
 * gc.c - garbage-collector roots and the collector.
 *
 * The locking protocol (the same one Nix uses, with OFD locks):
 *  - A process that wants temporary roots creates "temproots/<pid>" while
 *    holding gc.lock shared, locks that file exclusively, empties it, and
 *    then holds it shared for as long as it lives.  To add a root it
 *    upgrades to exclusive, appends "<path>\0", and goes back to shared.
 *  - The collector holds gc.lock exclusively for its whole run, so no new
 *    temproots file appears.  For each file it tries an exclusive lock
 *    without waiting: granted means the owner is dead (remove the file);
 *    otherwise it takes a shared lock (waiting for an append in progress to
 *    finish), reads the roots and keeps the lock until it is done, so that
 *    a live process cannot add a root in the middle of a collection: it
 *    waits instead, and the path it is about to use is not deleted under
 *    it because it roots the path before relying on it.
 *  - Writers root a path (and the temporary name they write it under)
 *    before creating it, so nothing half-written is collected either.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "hash.h"
#include "hashset.h"
#include "local-store-internal.h"
#include "lock.h"
#include "log.h"
#include "path.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

#define MAX_TEMPROOTS_FILE (64u << 20)
#define MAX_ROOT_DEPTH 64

/* Temporary roots. */

void local_temproots_close(struct local_store *ls)
{
	if (ls->temproots_fd < 0)
		return;
	/* A forked child shares the parent's file: only its creator removes it. */
	if (ls->pid == getpid() && ls->temproots_path != NULL)
		(void)unlink(ls->temproots_path);
	close(ls->temproots_fd);
	ls->temproots_fd = -1;
	strset_free(ls->temproots_seen);
	ls->temproots_seen = NULL;
}

static int temproots_open(struct local_store *ls, struct nib_error **err)
{
	cleanup_free char *gc_lock = NULL;
	cleanup_close int gcfd = -1;

	if (ls->temproots_fd >= 0 && ls->pid == getpid())
		return 0;
	if (ls->temproots_fd >= 0) {
		/* We are a forked child: start our own file. */
		close(ls->temproots_fd);
		ls->temproots_fd = -1;
		strset_free(ls->temproots_seen);
		ls->temproots_seen = NULL;
	}
	if (local_check_writable(ls, "add temporary roots", err) < 0)
		return -1;
	ls->pid = getpid();
	free(ls->temproots_path);
	ls->temproots_path = xasprintf("%s/temproots/%ld", ls->state_dir, (long)ls->pid);
	gc_lock = path_join(ls->state_dir, "gc.lock");
	/* No collector may run while the file exists but is not locked yet. */
	if (lock_file_open(gc_lock, LOCK_SHARED, true, &gcfd, err) < 0)
		return -1;
	for (int attempt = 0;; attempt++) {
		cleanup_close int fd = -1;
		struct stat st;

		fd = open(ls->temproots_path,
			  O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
		if (fd < 0)
			return nib_error_errno(err, "cannot create '%s'", ls->temproots_path);
		if (lock_fd(fd, LOCK_EXCLUSIVE, true, err) < 0)
			return nib_error_prefix(err, "'%s'", ls->temproots_path);
		if (fstat(fd, &st) < 0)
			return nib_error_errno(err, "cannot stat '%s'", ls->temproots_path);
		if (st.st_nlink == 0 && attempt < 100)
			continue;
		/*
		 * A file left by a dead process with our pid: its roots are dead
		 * too.  Only truncated when not empty: ext4 flushes a file that
		 * was truncated and written again when it is closed (its
		 * auto_da_alloc heuristic), a third of a millisecond per process.
		 */
		if (st.st_size > 0 && ftruncate(fd, 0) < 0)
			return nib_error_errno(err, "cannot truncate '%s'", ls->temproots_path);
		if (lock_fd(fd, LOCK_SHARED, true, err) < 0)
			return nib_error_prefix(err, "'%s'", ls->temproots_path);
		ls->temproots_fd = TAKE_FD(fd);
		ls->temproots_seen = strset_new();
		return 0;
	}
}

int local_add_temp_root(struct store *s, const char *path, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_error struct nib_error *e = NULL;
	int r;

	if (temproots_open(ls, err) < 0)
		return -1;
	if (strset_contains(ls->temproots_seen, path))
		return 0;
	/* Waits while a collector is reading our roots. */
	if (lock_fd(ls->temproots_fd, LOCK_EXCLUSIVE, true, err) < 0)
		return nib_error_prefix(err, "'%s'", ls->temproots_path);
	r = write_full(ls->temproots_fd, path, strlen(path) + 1, &e);
	if (lock_fd(ls->temproots_fd, LOCK_SHARED, true, err) < 0)
		return nib_error_prefix(err, "'%s'", ls->temproots_path);
	if (r < 0) {
		nib_error_move(err, &e);
		return nib_error_prefix(err, "adding a temporary root to '%s'", ls->temproots_path);
	}
	strset_add(ls->temproots_seen, path);
	return 0;
}

/* Parse a temproots file's contents ("path\0path\0...") into roots. */
static void parse_temproots(const char *buf, size_t len, struct strset *roots)
{
	size_t i = 0;

	while (i < len) {
		const char *p = buf + i;
		size_t n = strnlen(p, len - i);
		if (n == len - i)
			break; /* an unterminated tail is an append in progress: ignore */
		if (n > 0)
			strset_add(roots, p);
		i += n + 1;
	}
}

struct fdlist {
	int *v;
	size_t n, alloc;
};

static void fdlist_release(struct fdlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		close(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

/*
 * Read every live process's temporary roots.  When hold is given, keep each
 * file locked (the descriptors go into hold) and remove dead processes'
 * files (unless dry_run), counting them in *removed.  Without hold, only
 * report roots of processes that are alive, changing nothing.
 */
static int read_temproots(struct local_store *ls, struct strset *roots, struct fdlist *hold,
			  bool dry_run, uint64_t *removed, struct strset *owners,
			  struct nib_error **err)
{
	cleanup_free char *dir = path_join(ls->state_dir, "temproots");
	cleanup_dir DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot open '%s'", dir);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		cleanup_close int fd = -1;
		cleanup_free char *buf = NULL;
		uint64_t pid;
		size_t len;
		int r;

		if (parse_u64(de->d_name, &pid) < 0)
			continue;
		fd = openat(dirfd(d), de->d_name,
			    (ls->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return nib_error_errno(err, "cannot open '%s/%s'", dir, de->d_name);
		}
		if (!ls->readonly) {
			r = lock_fd(fd, LOCK_EXCLUSIVE, false, err);
			if (r < 0)
				return -1;
			if (r > 0) {
				/* Nobody holds it: its process is gone. */
				if (hold != NULL && !dry_run) {
					if (unlinkat(dirfd(d), de->d_name, 0) < 0 &&
					    errno != ENOENT)
						return nib_error_errno(err, "cannot remove '%s/%s'",
								       dir, de->d_name);
					(*removed)++;
				}
				continue;
			}
			if (lock_fd(fd, LOCK_SHARED, true, err) < 0)
				return -1;
		}
		if (read_fd_all(fd, MAX_TEMPROOTS_FILE, &buf, &len, err) < 0)
			return nib_error_prefix(err, "reading '%s/%s'", dir, de->d_name);
		if (owners != NULL) {
			/* Listing: remember which process each root belongs to. */
			cleanup_strset struct strset *mine = strset_new();
			cleanup_strv char **v = NULL;
			parse_temproots(buf, len, mine);
			v = strset_to_sorted_strv(mine);
			for (char **p = v; *p; p++) {
				cleanup_free char *key = xasprintf("%s\n%s", de->d_name, *p);
				strset_add(owners, key);
			}
		}
		parse_temproots(buf, len, roots);
		if (hold != NULL) {
			ALLOC_GROW(hold->v, hold->n + 1, hold->alloc);
			hold->v[hold->n++] = TAKE_FD(fd);
		}
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot read '%s'", dir);
	return 0;
}

/* Permanent roots. */

int local_add_indirect_root(struct store *s, const char *link, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_free char *name = NULL, *root = NULL, *tmp = NULL;
	struct hash h;

	if (local_check_writable(ls, "add roots", err) < 0)
		return -1;
	hash_string(HASH_SHA1, link, &h);
	name = hash_to_string(&h, HASH_ENC_BASE32, false);
	root = xasprintf("%s/gcroots/auto/%s", ls->state_dir, name);
	tmp = xasprintf("%s.tmp-%ld", root, (long)getpid());
	(void)unlink(tmp);
	if (symlink(link, tmp) < 0)
		return nib_error_errno(err, "cannot create symlink '%s'", tmp);
	if (rename(tmp, root) < 0) {
		int saved = errno;
		(void)unlink(tmp);
		return nib_error_set(err, NIB_E_SYS, saved, "cannot create root '%s'", root);
	}
	return 0;
}

struct rootlist {
	struct store_root *v;
	size_t n, alloc;
};

static void rootlist_add(struct rootlist *l, const char *link, const char *path)
{
	ALLOC_GROW(l->v, l->n + 1, l->alloc);
	l->v[l->n].link = xstrdup(link);
	l->v[l->n].path = xstrdup(path);
	l->n++;
}

/* The store path that target lies in, if it lies in the store. */
static char *store_path_of(struct local_store *ls, const char *target)
{
	struct store_path sp;
	cleanup_error struct nib_error *e = NULL;
	size_t n = strlen(ls->base.store_dir);

	if (strncmp(target, ls->base.store_dir, n) != 0 || target[n] != '/')
		return NULL;
	if (store_path_parse(ls->base.store_dir, target, true, &sp, &e) < 0)
		return NULL;
	return store_path_to_string(ls->base.store_dir, &sp);
}

static int find_perm_roots(struct local_store *ls, const char *dir, bool in_auto, int depth,
			   struct rootlist *out, struct nib_error **err)
{
	cleanup_dir DIR *d = NULL;
	struct dirent *de;

	if (depth > MAX_ROOT_DEPTH)
		return 0;
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return nib_error_errno(err, "cannot open '%s'", dir);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		cleanup_free char *full = NULL, *target = NULL, *sp = NULL;
		struct stat st;

		if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		full = path_join(dir, de->d_name);
		if (lstat(full, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (find_perm_roots(ls, full,
					    in_auto || (depth == 0 && STREQ(de->d_name, "auto")),
					    depth + 1, out, err) < 0)
				return -1;
			continue;
		}
		if (S_ISREG(st.st_mode)) {
			/* A plain file named like a store path roots that path. */
			cleanup_free char *p = path_join(ls->base.store_dir, de->d_name);
			sp = store_path_of(ls, p);
			if (sp != NULL)
				rootlist_add(out, full, sp);
			continue;
		}
		if (!S_ISLNK(st.st_mode))
			continue;
		target = read_link_abs(full);
		if (target == NULL)
			continue;
		sp = store_path_of(ls, target);
		if (sp != NULL) {
			rootlist_add(out, full, sp);
			continue;
		}
		/* An indirect root: a link to a link into the store. */
		if (lstat(target, &st) < 0) {
			if (errno == ENOENT && in_auto && !ls->readonly) {
				log_debug("removing stale indirect root '%s'", full);
				(void)unlink(full);
			}
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			cleanup_free char *t2 = read_link_abs(target);
			if (t2 != NULL && (sp = store_path_of(ls, t2)) != NULL)
				rootlist_add(out, target, sp);
		}
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot read '%s'", dir);
	return 0;
}

static int cmp_root(const void *a, const void *b)
{
	const struct store_root *x = a, *y = b;
	int c = strcmp(x->link, y->link);
	return c ? c : strcmp(x->path, y->path);
}

/* Permanent roots whose paths are valid. */
static int perm_roots(struct local_store *ls, struct rootlist *out, struct nib_error **err)
{
	cleanup_free char *gcroots = path_join(ls->state_dir, "gcroots");
	struct rootlist all = { 0 };
	int r = find_perm_roots(ls, gcroots, false, 0, &all, err);

	for (size_t i = 0; i < all.n; i++) {
		int64_t id;
		int v = r < 0 ? 0 : db_path_id(ls->db, all.v[i].path, &id, err);
		if (v < 0)
			r = -1;
		if (v > 0) {
			ALLOC_GROW(out->v, out->n + 1, out->alloc);
			out->v[out->n++] = all.v[i];
		} else {
			if (v == 0 && r == 0)
				log_debug("skipping invalid root '%s' -> '%s'", all.v[i].link,
					  all.v[i].path);
			free(all.v[i].link);
			free(all.v[i].path);
		}
	}
	free(all.v);
	return r;
}

int local_find_roots(struct store *s, bool include_temp, struct store_root **ret, size_t *ret_n,
		     struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	struct rootlist out = { 0 };

	if (perm_roots(ls, &out, err) < 0) {
		store_roots_free(out.v, out.n);
		return -1;
	}
	if (include_temp) {
		cleanup_strset struct strset *roots = strset_new();
		cleanup_strset struct strset *owners = strset_new();
		cleanup_strv char **v = NULL;

		if (read_temproots(ls, roots, NULL, true, NULL, owners, err) < 0) {
			store_roots_free(out.v, out.n);
			return -1;
		}
		v = strset_to_sorted_strv(owners);
		for (char **p = v; *p; p++) {
			char *nl = strchr(*p, '\n');
			cleanup_free char *link = xasprintf("{temp:%.*s}", (int)(nl - *p), *p);
			cleanup_free char *sp = store_path_of(ls, nl + 1);
			int64_t id;
			int r;

			if (sp == NULL || !STREQ(sp, nl + 1))
				continue; /* a temporary name, not a store path */
			r = db_path_id(ls->db, sp, &id, err);
			if (r < 0) {
				store_roots_free(out.v, out.n);
				return -1;
			}
			if (r > 0)
				rootlist_add(&out, link, sp);
		}
	}
	sort_array(out.v, out.n, sizeof(*out.v), cmp_root);
	*ret = out.v;
	*ret_n = out.n;
	return 0;
}

/* The collector. */

/* Everything reachable from roots (which are added too). */
static int compute_live(struct local_store *ls, struct strset *roots, struct strset *live,
			struct nib_error **err)
{
	cleanup_strv char **queue = xcalloc(1, sizeof(char *));
	cleanup_strv char **start = strset_to_sorted_strv(roots);
	size_t qn = 0, qalloc = 1;

#define ENQUEUE(p)                                         \
	do {                                               \
		if (strset_add(live, (p))) {               \
			ALLOC_GROW(queue, qn + 2, qalloc); \
			queue[qn++] = xstrdup(p);          \
			queue[qn] = NULL;                  \
		}                                          \
	} while (0)

	for (char **p = start; *p; p++)
		ENQUEUE(*p);
	for (size_t qi = 0; qi < qn; qi++) {
		cleanup_path_row struct db_path_row row = { 0 };
		cleanup_strv char **refs = NULL;
		int r = db_path_query(ls->db, queue[qi], &row, err);

		if (r < 0)
			return -1;
		if (r == 0)
			continue; /* not valid: the name itself is protected, nothing more */
		if (db_references(ls->db, row.id, &refs, err) < 0)
			return -1;
		for (char **ref = refs; *ref; ref++)
			ENQUEUE(*ref);
		if (ls->keep_derivations && row.deriver != NULL &&
		    !strset_contains(live, row.deriver)) {
			int64_t did;
			r = db_path_id(ls->db, row.deriver, &did, err);
			if (r < 0)
				return -1;
			if (r > 0)
				ENQUEUE(row.deriver);
		}
		if (ls->keep_outputs && ends_with(row.path, ".drv")) {
			cleanup_strv char **names = NULL, **outs = NULL;
			if (db_drv_outputs(ls->db, row.id, &names, &outs, err) < 0)
				return -1;
			for (char **o = outs; *o; o++) {
				int64_t oid;
				r = db_path_id(ls->db, *o, &oid, err);
				if (r < 0)
					return -1;
				if (r > 0)
					ENQUEUE(*o);
			}
		}
	}
#undef ENQUEUE
	return 0;
}

/* Bytes held by a tree: regular files not linked elsewhere, and symlinks. */
static uint64_t tree_size_at(int pfd, const char *name, int depth)
{
	struct stat st;
	uint64_t total = 0;

	if (depth > MAX_TREE_DEPTH || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return st.st_nlink == 1 ? (uint64_t)st.st_size : 0;
	if (S_ISLNK(st.st_mode))
		return (uint64_t)st.st_size;
	if (S_ISDIR(st.st_mode)) {
		cleanup_dir DIR *d = NULL;
		struct dirent *de;

		d = opendir_at(pfd, name);
		if (d == NULL)
			return 0;
		while ((de = readdir(d)) != NULL)
			if (!STREQ(de->d_name, ".") && !STREQ(de->d_name, ".."))
				total += tree_size_at(dirfd(d), de->d_name, depth + 1);
	}
	return total;
}

struct gc_state {
	struct local_store *ls;
	const struct store_gc_options *opts;
	struct store_gc_result *res;
	struct strset *live;
	struct strset *done;
	bool stop; /* max_freed reached */
};

/* Invalidate (if valid) and delete one dead path whose referrers are gone. */
static int delete_one(struct gc_state *g, const char *path, struct nib_error **err)
{
	struct local_store *ls = g->ls;
	cleanup_free char *real = local_store_real_path(&ls->base, path);
	const char *name = strrchr(real, '/') + 1;
	cleanup_close int dirfd = open(ls->real_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cleanup_path_row struct db_path_row row = { 0 };
	uint64_t bytes;
	int r;

	if (dirfd < 0)
		return nib_error_errno(err, "cannot open '%s'", ls->real_dir);
	r = db_path_query(ls->db, path, &row, err);
	if (r < 0)
		return -1;
	if (g->opts->dry_run) {
		bytes = r > 0 ? (uint64_t)row.nar_size : tree_size_at(dirfd, name, 0);
	} else {
		if (r > 0) {
			cleanup_txn struct db_txn *t = NULL;
			cleanup_error struct nib_error *e = NULL;

			/* The database first: a crash now leaves an invalid leftover, never a
			 * valid path with its contents gone. */
			if (db_txn_begin(ls->db, true, &t, err) < 0)
				return -1;
			if (db_path_delete(ls->db, row.id, &e) < 0) {
				if (e->code != NIB_E_DENIED)
					return nib_error_move(err, &e);
				log_debug("not deleting '%s': a new path refers to it", path);
				return 0;
			}
			if (db_txn_commit(TAKE_PTR(t), err) < 0)
				return -1;
		}
		bytes = tree_size_at(dirfd, name, 0);
		if (rm_rf_at(dirfd, name, err) < 0)
			return nib_error_prefix(err, "deleting '%s'", path);
	}
	g->res->paths++;
	g->res->bytes += bytes;
	if (g->opts->on_path != NULL)
		g->opts->on_path(g->opts->userdata, path, bytes);
	if (g->opts->max_freed != 0 && g->res->bytes >= g->opts->max_freed)
		g->stop = true;
	return 0;
}

/*
 * Delete path after every path that refers to it (all dead, since the live
 * set is closed under references).  Iterative: reference chains can be long.
 */
static int delete_with_referrers(struct gc_state *g, const char *path, struct nib_error **err)
{
	cleanup_strv char **stack = xcalloc(1, sizeof(char *));
	cleanup_strset struct strset *visiting = strset_new();
	size_t n = 0, alloc = 1;

	ALLOC_GROW(stack, n + 2, alloc);
	stack[n++] = xstrdup(path);
	stack[n] = NULL;
	while (n > 0 && !g->stop) {
		const char *top = stack[n - 1];
		cleanup_strv char **referrers = NULL;
		bool pushed = false, blocked = false;
		int64_t id;
		int r;

		if (strset_contains(g->done, top)) {
			free(stack[--n]);
			stack[n] = NULL;
			continue;
		}
		strset_add(visiting, top);
		r = db_path_id(g->ls->db, top, &id, err);
		if (r < 0)
			return -1;
		if (r > 0 && db_referrers(g->ls->db, id, &referrers, err) < 0)
			return -1;
		for (char **q = referrers; q && *q; q++) {
			if (STREQ(*q, top) || strset_contains(g->done, *q))
				continue;
			if (strset_contains(g->live, *q) || strset_contains(visiting, *q)) {
				/* Registered after we looked at the roots, or a cycle. */
				log_debug("keeping '%s': '%s' refers to it", top, *q);
				blocked = true;
				break;
			}
			ALLOC_GROW(stack, n + 2, alloc);
			stack[n++] = xstrdup(*q);
			stack[n] = NULL;
			pushed = true;
		}
		if (pushed && !blocked)
			continue;
		/* Everything above top is settled; a blocked path stays, and so do its refs. */
		strset_add(g->done, top);
		if (blocked) {
			strset_add(g->live, top);
		} else if (delete_one(g, top, err) < 0) {
			return -1;
		}
		free(stack[--n]);
		stack[n] = NULL;
	}
	return 0;
}

/* Dead store paths and stale files in the store directory (sorted). */
static int scan_store(struct gc_state *g, char ***ret, struct nib_error **err)
{
	struct local_store *ls = g->ls;
	cleanup_dir DIR *d = opendir(ls->real_dir);
	cleanup_strv char **dead = xcalloc(1, sizeof(char *));
	size_t n = 0, alloc = 1;
	struct dirent *de;

	if (d == NULL)
		return nib_error_errno(err, "cannot open '%s'", ls->real_dir);
	while ((errno = 0, de = readdir(d)) != NULL) {
		cleanup_free char *logical = NULL;
		struct store_path sp;
		cleanup_error struct nib_error *e = NULL;
		size_t len = strlen(de->d_name);

		if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
			continue;
		if (len > 5 && STREQ(de->d_name + len - 5, ".lock")) {
			int r;
			if (g->opts->dry_run)
				continue;
			r = path_lock_remove_stale(dirfd(d), de->d_name, &e);
			if (r < 0)
				log_debug("cannot remove '%s': %s", de->d_name, e->msg);
			if (r > 0)
				g->res->temp_files++;
			continue;
		}
		logical = path_join(ls->base.store_dir, de->d_name);
		if (STARTS_WITH(de->d_name, LOCAL_TMP_PREFIX)) {
			if (strset_contains(g->live, logical) || g->opts->dry_run)
				continue;
			if (rm_rf_at(dirfd(d), de->d_name, &e) < 0)
				log_debug("cannot remove '%s': %s", de->d_name, e->msg);
			else
				g->res->temp_files++;
			continue;
		}
		if (store_path_parse_base(de->d_name, &sp, &e) < 0)
			continue; /* not ours to judge */
		if (strset_contains(g->live, logical))
			continue;
		ALLOC_GROW(dead, n + 2, alloc);
		dead[n++] = TAKE_PTR(logical);
		dead[n] = NULL;
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot read '%s'", ls->real_dir);
	sort_array(dead, n, sizeof(char *), strp_cmp);
	*ret = TAKE_PTR(dead);
	return 0;
}

int local_collect_garbage(struct store *s, const struct store_gc_options *opts,
			  struct store_gc_result *ret, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	struct store_gc_result res = { 0 };
	struct fdlist hold = { 0 };
	cleanup_free char *gc_lock = path_join(ls->state_dir, "gc.lock");
	cleanup_close int gcfd = -1;
	cleanup_strset struct strset *roots = strset_new();
	cleanup_strset struct strset *live = strset_new();
	cleanup_strset struct strset *done = strset_new();
	cleanup_strv char **dead = NULL;
	struct rootlist perm = { 0 };
	struct gc_state g = { ls, opts, &res, live, done, false };
	int r = -1;

	if (!opts->dry_run && local_begin_write(ls, "collect garbage", err) < 0)
		return -1;
	if (!ls->readonly && lock_file_open(gc_lock, LOCK_EXCLUSIVE, true, &gcfd, err) < 0)
		return -1;
	if (read_temproots(ls, roots, &hold, opts->dry_run, &res.temp_files, NULL, err) < 0)
		goto out;
	if (perm_roots(ls, &perm, err) < 0)
		goto out;
	for (size_t i = 0; i < perm.n; i++)
		strset_add(roots, perm.v[i].path);
	if (compute_live(ls, roots, live, err) < 0)
		goto out;
	log_debug("%zu roots, %zu live paths", strset_count(roots), strset_count(live));

	if (opts->paths != NULL) {
		for (size_t i = 0; opts->paths[i] != NULL; i++)
			if (strset_contains(live, opts->paths[i])) {
				nib_error_set(err, NIB_E_DENIED, 0,
					      "cannot delete '%s': it is still alive (reachable "
					      "from a root)",
					      opts->paths[i]);
				goto out;
			}
		dead = strv_copy(opts->paths);
	} else if (scan_store(&g, &dead, err) < 0) {
		goto out;
	}
	for (char **p = dead; *p && !g.stop; p++)
		if (delete_with_referrers(&g, *p, err) < 0)
			goto out;
	r = 0;
out:
	store_roots_free(perm.v, perm.n);
	fdlist_release(&hold);
	if (r == 0)
		*ret = res;
	return r;
}

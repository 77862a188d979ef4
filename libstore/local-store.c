#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "db.h"
#include "derivation.h"
#include "hash.h"
#include "hashset.h"
#include "local-store-internal.h"
#include "lock.h"
#include "log.h"
#include "nar.h"
#include "path.h"
#include "settings.h"
#include "store-derivation.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

/* Registered files get this modification time (Nix's choice: 1 second past the epoch). */
#define STORE_MTIME 1
/* Largest .drv or text file store_add_text accepts. */
#define MAX_TEXT_SIZE (64u << 20)

static const struct store_ops local_ops;
static void checkpoint_join(struct local_store *ls, bool block);

bool store_is_local(const struct store *store)
{
	return store != NULL && store->ops == &local_ops;
}

int local_check_writable(struct local_store *ls, const char *what, struct nib_error **err)
{
	if (ls->readonly)
		return nib_error_set(err, NIB_E_DENIED, 0, "cannot %s: the store is open read-only",
				     what);
	return 0;
}

int local_begin_write(struct local_store *ls, const char *what, struct nib_error **err)
{
	if (local_check_writable(ls, what, err) < 0)
		return -1;
	return local_store_settle(&ls->base, err);
}

const char *local_store_real_dir(struct store *store)
{
	return LOCAL(store)->real_dir;
}

char *local_store_real_path(struct store *store, const char *path)
{
	struct local_store *ls = LOCAL(store);
	size_t n = strlen(store->store_dir);

	if (strncmp(path, store->store_dir, n) == 0 && (path[n] == '/' || path[n] == '\0'))
		return xasprintf("%s%s", ls->real_dir, path + n);
	return xstrdup(path);
}

/* The base name of a full store path (everything after the last '/'). */
static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Opening and layout. */

static int read_schema_version(struct local_store *ls, int *ret, struct nib_error **err)
{
	cleanup_free char *path = path_join(ls->db_dir, "schema");
	cleanup_free char *buf = NULL;
	cleanup_error struct nib_error *e = NULL;
	int64_t v;
	size_t len;

	if (read_file_at(AT_FDCWD, path, 64, &buf, &len, &e) < 0) {
		if (e->sys_errno == ENOENT) {
			*ret = 0;
			return 0;
		}
		return nib_error_move(err, &e);
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (parse_i64(buf, &v) < 0 || v < 0 || v > 1000000)
		return nib_error_set(err, NIB_E_DB, 0, "schema file '%s' is damaged: '%s'", path,
				     buf);
	*ret = (int)v;
	return 0;
}

static int make_dir(const char *path, mode_t mode, struct nib_error **err)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return nib_error_errno(err, "cannot create directory '%s'", path);
	return 0;
}

static int create_layout(struct local_store *ls, struct nib_error **err)
{
	struct stat st;
	cleanup_free char *gcroots = path_join(ls->state_dir, "gcroots");
	cleanup_free char *auto_dir = path_join(gcroots, "auto");
	cleanup_free char *temproots = path_join(ls->state_dir, "temproots");

	if (lstat(ls->real_dir, &st) < 0) {
		if (errno != ENOENT)
			return nib_error_errno(err, "cannot stat store directory '%s'",
					       ls->real_dir);
		if (mkdir_p(ls->real_dir, 0755, err) < 0)
			return -1;
		/* Like /tmp: members of the group may add, nobody deletes others' files. */
		if (chmod(ls->real_dir, 01775) < 0)
			return nib_error_errno(err, "cannot set permissions of '%s'", ls->real_dir);
	} else if (!S_ISDIR(st.st_mode)) {
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "store directory '%s' is not a directory", ls->real_dir);
	}
	if (mkdir_p(ls->db_dir, 0755, err) < 0 || make_dir(gcroots, 0755, err) < 0 ||
	    make_dir(auto_dir, 0755, err) < 0 || make_dir(temproots, 0755, err) < 0)
		return -1;
	return 0;
}

/*
 * Create or migrate the schema.  Runs with the global lock held exclusively,
 * so no other process has the database open through nib while it changes.
 */
static int init_schema(struct local_store *ls, struct nib_error **err)
{
	cleanup_free char *schema = path_join(ls->db_dir, "schema");
	char text[16];
	int version = 0, r;

	if (lock_fd(ls->big_lock_fd, LOCK_UNLOCK, true, err) < 0 ||
	    lock_fd(ls->big_lock_fd, LOCK_EXCLUSIVE, true, err) < 0)
		return nib_error_prefix(err, "global lock of '%s'", ls->db_dir);
	/* Someone else may have done it while we waited. */
	if (read_schema_version(ls, &version, err) < 0)
		return -1;
	r = version == DB_NIX_SCHEMA_VERSION ? db_schema_check(ls->db, err) : 0;
	if (r < 0)
		return -1;
	if (r == 0) {
		log_debug("creating or migrating the schema in '%s'", ls->db_dir);
		if (db_schema_init(ls->db, version, err) < 0)
			return -1;
		snprintf(text, sizeof(text), "%d", DB_NIX_SCHEMA_VERSION);
		if (write_file_atomic_at(AT_FDCWD, schema, text, strlen(text), 0644, ls->fsync,
					 err) < 0)
			return -1;
	}
	if (lock_fd(ls->big_lock_fd, LOCK_SHARED, true, err) < 0)
		return nib_error_prefix(err, "global lock of '%s'", ls->db_dir);
	return 0;
}

/* Undo what other processes can see of this handle: an open batch, the temporary roots. */
static void release_shared(struct store *s)
{
	struct local_store *ls = LOCAL(s);

	checkpoint_join(ls, true);
	if (ls->pending != NULL) {
		/* What the caller was told is added stays added, if it can be. */
		cleanup_error struct nib_error *e = NULL;
		if (local_store_settle(s, &e) < 0)
			log_warning("%s", e->msg);
	}
	if (ls->batch != NULL) {
		cleanup_error struct nib_error *e = NULL;
		(void)local_store_batch_end(s, false, &e);
	}
	local_temproots_close(ls);
}

static void local_close(struct store *s)
{
	struct local_store *ls = LOCAL(s);

	release_shared(s);
	drv_hasher_free(ls->hasher);
	db_close(ls->db);
	if (ls->big_lock_fd >= 0)
		close(ls->big_lock_fd);
	free(ls->real_dir);
	free(ls->state_dir);
	free(ls->db_dir);
	free(ls->temproots_path);
	free(s->store_dir);
	free(ls);
}

void local_store_close_for_exit(struct store *s)
{
	if (s == NULL || !store_is_local(s))
		store_close(s);
	else
		release_shared(s);
}

int local_store_open(const struct settings *settings, unsigned flags, struct store **ret,
		     struct nib_error **err)
{
	struct local_store *ls = xcalloc(1, sizeof(*ls));
	cleanup_store struct store *s = &ls->base;
	cleanup_free char *db_path = NULL, *big_lock = NULL;
	int version = 0, r;

	s->ops = &local_ops;
	s->store_dir = xstrdup(settings->store_dir);
	ls->real_dir = settings_real_store_dir(settings);
	ls->state_dir = xstrdup(settings->state_dir);
	ls->db_dir = path_join(ls->state_dir, "db");
	ls->fsync = settings->fsync_metadata;
	ls->readonly = (flags & LOCAL_STORE_READONLY) != 0;
	ls->keep_outputs = settings->keep_outputs;
	ls->keep_derivations = settings->keep_derivations;
	ls->big_lock_fd = -1;
	ls->temproots_fd = -1;
	ls->uid = geteuid();
	ls->gid = getegid();
	ls->pid = getpid();

	if (s->store_dir[0] != '/')
		return nib_error_set(err, NIB_E_CONFIG, 0, "store directory '%s' is not absolute",
				     s->store_dir);
	if (!ls->readonly && create_layout(ls, err) < 0)
		return nib_error_prefix(err, "opening the store");

	{
		/* Whoever owns the store directory owns what is in it. */
		struct stat st;
		ls->owner_uid = stat(ls->real_dir, &st) == 0 ? st.st_uid : ls->uid;
	}
	big_lock = path_join(ls->db_dir, "big-lock");
	if (ls->readonly) {
		/* Without write access there may be no lock file to open: go without. */
		int fd = open(big_lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && lock_fd(fd, LOCK_SHARED, true, err) < 0) {
			close(fd);
			return -1;
		}
		ls->big_lock_fd = fd;
	} else if (lock_file_open(big_lock, LOCK_SHARED, true, &ls->big_lock_fd, err) < 0) {
		return nib_error_prefix(err, "opening the store");
	} else {
		/* Readers who may not write the store share the lock too. */
		(void)fchmod(ls->big_lock_fd, 0644);
	}

	if (read_schema_version(ls, &version, err) < 0)
		return -1;
	if (version > DB_NIX_SCHEMA_VERSION)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "the store database in '%s' has schema version %d, newer than "
				     "version %d which this nib supports",
				     ls->db_dir, version, DB_NIX_SCHEMA_VERSION);

	db_path = path_join(ls->db_dir, "db.sqlite");
	if (ls->readonly && access(db_path, F_OK) < 0)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "no store database at '%s'", db_path);
	if (db_open(db_path,
		    (ls->readonly ? DB_OPEN_READONLY : DB_OPEN_CREATE) |
			    (ls->fsync ? 0 : DB_OPEN_NO_FSYNC),
		    &ls->db, err) < 0)
		return -1;
	r = version == DB_NIX_SCHEMA_VERSION ? db_schema_check(ls->db, err) : 0;
	if (r < 0)
		return -1;
	if (r == 0) {
		if (ls->readonly)
			return nib_error_set(err, NIB_E_DENIED, 0,
					     "the store database '%s' needs to be created or "
					     "migrated, which a read-only store cannot do",
					     db_path);
		if (init_schema(ls, err) < 0)
			return nib_error_prefix(err, "setting up '%s'", db_path);
	}
	{
		struct stat st;
		if (stat(db_path, &st) == 0) {
			ls->db_dev = st.st_dev;
			ls->db_ino = st.st_ino;
		}
	}
	*ret = TAKE_PTR(s);
	return 0;
}

int local_store_prepare(struct store *s, struct nib_error **err)
{
	return db_prepare_all(LOCAL(s)->db, err);
}

int local_store_check_reuse(struct store *s, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_free char *db_path = path_join(ls->db_dir, "db.sqlite");
	struct stat st;
	int version = 0, r;

	if (stat(db_path, &st) < 0 || st.st_dev != ls->db_dev || st.st_ino != ls->db_ino)
		return nib_error_set(err, NIB_E_DB, 0,
				     "'%s' is not the database file opened before", db_path);
	if (read_schema_version(ls, &version, err) < 0)
		return -1;
	r = version == DB_NIX_SCHEMA_VERSION ? db_schema_check(ls->db, err) : 0;
	if (r < 0)
		return -1;
	if (r == 0)
		return nib_error_set(err, NIB_E_DB, 0,
				     "the store database '%s' has changed its schema version",
				     db_path);
	return 0;
}

/* Canonicalisation. */

static int canon_fd(struct local_store *ls, int fd, const struct stat *st, mode_t mode,
		    const char *what, bool sync, struct nib_error **err)
{
	const struct timespec times[2] = { { 0, UTIME_OMIT }, { STORE_MTIME, 0 } };
	char names[4096];
	ssize_t n;

	/*
	 * Extended attributes are not part of a NAR, so they must not be part
	 * of a store path either.  SELinux labels are the kernel's business.
	 */
	n = flistxattr(fd, names, sizeof(names));
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(names + i) + 1) {
		if (STREQ(names + i, "security.selinux") || STREQ(names + i, "system.nfs4_acl"))
			continue;
		if (fremovexattr(fd, names + i) < 0 && errno != ENODATA)
			return nib_error_errno(err, "cannot remove attribute '%s' of '%s'",
					       names + i, what);
	}
	if ((st->st_uid != ls->uid || st->st_gid != ls->gid) && fchown(fd, ls->uid, ls->gid) < 0)
		return nib_error_errno(err, "cannot change owner of '%s'", what);
	/* Always set: chown may have cleared setuid bits, and we drop them anyway. */
	if ((st->st_mode & 07777) != mode && fchmod(fd, mode) < 0)
		return nib_error_errno(err, "cannot change permissions of '%s'", what);
	if ((st->st_mtim.tv_sec != STORE_MTIME || st->st_mtim.tv_nsec != 0) &&
	    futimens(fd, times) < 0)
		return nib_error_errno(err, "cannot set the time of '%s'", what);
	if (sync && fsync(fd) < 0)
		return nib_error_errno(err, "cannot sync '%s'", what);
	return 0;
}

static int canon_at(struct local_store *ls, int dirfd, const char *name, struct strbuf *what,
		    int depth, bool sync, struct nib_error **err)
{
	cleanup_close int fd = -1;
	struct stat st;

	if (depth > MAX_TREE_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply", what->buf);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return nib_error_errno(err, "cannot stat '%s'", what->buf);
	if (S_ISLNK(st.st_mode)) {
		const struct timespec times[2] = { { 0, UTIME_OMIT }, { STORE_MTIME, 0 } };
		if ((st.st_uid != ls->uid || st.st_gid != ls->gid) &&
		    fchownat(dirfd, name, ls->uid, ls->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return nib_error_errno(err, "cannot change owner of '%s'", what->buf);
		if (utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
			return nib_error_errno(err, "cannot set the time of '%s'", what->buf);
		return 0;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "'%s' is not a regular file, directory or symlink", what->buf);
	/* Work on a descriptor: a name could be swapped for a symlink under us. */
	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
			    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s'", what->buf);
	if (fstat(fd, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", what->buf);
	if (S_ISREG(st.st_mode))
		return canon_fd(ls, fd, &st, (st.st_mode & S_IXUSR) ? 0555 : 0444, what->buf, sync,
				err);
	if (!S_ISDIR(st.st_mode))
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' changed type", what->buf);
	{
		cleanup_dir DIR *d = NULL;
		struct dirent *de;
		size_t len = what->len;

		d = opendir_dup(fd);
		if (d == NULL)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
		while ((errno = 0, de = readdir(d)) != NULL) {
			if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
				continue;
			strbuf_addf(what, "/%s", de->d_name);
			if (canon_at(ls, fd, de->d_name, what, depth + 1, sync, err) < 0)
				return -1;
			strbuf_setlen(what, len);
		}
		if (errno != 0)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
	}
	return canon_fd(ls, fd, &st, 0555, what->buf, sync, err);
}

/* Open the parent of real_path; *ret_name points into real_path. */
static int open_parent(const char *real_path, int *ret_fd, const char **ret_name,
		       struct nib_error **err)
{
	cleanup_free char *parent = NULL;
	const char *slash = strrchr(real_path, '/');
	int fd;

	if (slash == NULL || slash[1] == '\0')
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is not an absolute file name",
				     real_path);
	parent = slash == real_path ? xstrdup("/")
				    : xstrndup(real_path, (size_t)(slash - real_path));
	fd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nib_error_errno(err, "cannot open directory '%s'", parent);
	*ret_fd = fd;
	*ret_name = slash + 1;
	return 0;
}

static int canonicalise(struct store *store, const char *real_path, bool sync,
			struct nib_error **err)
{
	cleanup_close int dirfd = -1;
	cleanup_strbuf struct strbuf what = STRBUF_INIT;
	const char *name;

	if (open_parent(real_path, &dirfd, &name, err) < 0)
		return -1;
	strbuf_addstr(&what, real_path);
	if (canon_at(LOCAL(store), dirfd, name, &what, 0, sync, err) < 0)
		return nib_error_prefix(err, "canonicalising '%s'", real_path);
	return 0;
}

int local_store_canonicalise(struct store *store, const char *real_path, struct nib_error **err)
{
	return canonicalise(store, real_path, LOCAL(store)->fsync, err);
}

int local_store_canonicalise_unsynced(struct store *store, const char *real_path,
				      struct nib_error **err)
{
	return canonicalise(store, real_path, false, err);
}

/* fsync the tree at dirfd/name, children before their directory; symlinks are left alone. */
static int sync_at(int dirfd, const char *name, struct strbuf *what, int depth,
		   struct nib_error **err)
{
	cleanup_close int fd = -1;
	struct stat st;

	if (depth > MAX_TREE_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply", what->buf);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return nib_error_errno(err, "cannot stat '%s'", what->buf);
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return 0;
	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
			    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s'", what->buf);
	if (S_ISDIR(st.st_mode)) {
		cleanup_dir DIR *d = opendir_dup(fd);
		struct dirent *de;
		size_t len = what->len;

		if (d == NULL)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
		while ((errno = 0, de = readdir(d)) != NULL) {
			if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
				continue;
			strbuf_addf(what, "/%s", de->d_name);
			if (sync_at(fd, de->d_name, what, depth + 1, err) < 0)
				return -1;
			strbuf_setlen(what, len);
		}
		if (errno != 0)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
	}
	if (fsync(fd) < 0)
		return nib_error_errno(err, "cannot sync '%s'", what->buf);
	return 0;
}

int local_store_sync_tree(struct store *store, const char *real_path, bool sync_parent,
			  struct nib_error **err)
{
	cleanup_close int dirfd = -1, pfd = -1;
	cleanup_strbuf struct strbuf what = STRBUF_INIT;
	const char *name;

	if (!LOCAL(store)->fsync)
		return 0;
	if (open_parent(real_path, &dirfd, &name, err) < 0)
		return -1;
	strbuf_addstr(&what, real_path);
	if (sync_at(dirfd, name, &what, 0, err) < 0)
		return -1;
	if (!sync_parent)
		return 0;
	/* The parent was opened with O_PATH, which cannot be synced. */
	pfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0 || fsync(pfd) < 0)
		return nib_error_errno(err, "cannot sync the directory of '%s'", real_path);
	return 0;
}

static int check_canon_at(struct local_store *ls, int pfd, const char *name, struct strbuf *what,
			  int depth, char **ret, struct nib_error **err)
{
	struct stat st;

	if (depth > MAX_TREE_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply", what->buf);
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return nib_error_errno(err, "cannot stat '%s'", what->buf);
	if (st.st_uid != ls->owner_uid) {
		*ret = xasprintf("'%s' is owned by user %u, not by the store's owner %u", what->buf,
				 (unsigned)st.st_uid, (unsigned)ls->owner_uid);
		return 1;
	}
	if (S_ISLNK(st.st_mode))
		return 0;
	if (st.st_mtim.tv_sec != STORE_MTIME) {
		*ret = xasprintf("'%s' has modification time %lld", what->buf,
				 (long long)st.st_mtim.tv_sec);
		return 1;
	}
	if (S_ISREG(st.st_mode)) {
		mode_t want = (st.st_mode & S_IXUSR) ? 0555 : 0444;
		if ((st.st_mode & 07777) != want) {
			*ret = xasprintf("'%s' has mode %04o", what->buf,
					 (unsigned)(st.st_mode & 07777));
			return 1;
		}
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		*ret = xasprintf("'%s' is not a regular file, directory or symlink", what->buf);
		return 1;
	}
	if ((st.st_mode & 07777) != 0555) {
		*ret = xasprintf("'%s' has mode %04o", what->buf, (unsigned)(st.st_mode & 07777));
		return 1;
	}
	{
		cleanup_dir DIR *d = NULL;
		struct dirent *de;
		size_t len = what->len;

		d = opendir_at(pfd, name);
		if (d == NULL)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
		while ((errno = 0, de = readdir(d)) != NULL) {
			int r;
			if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
				continue;
			strbuf_addf(what, "/%s", de->d_name);
			r = check_canon_at(ls, dirfd(d), de->d_name, what, depth + 1, ret, err);
			if (r != 0)
				return r;
			strbuf_setlen(what, len);
		}
		if (errno != 0)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
	}
	return 0;
}

int local_check_canonical(struct local_store *ls, const char *real_path, char **ret_problem,
			  struct nib_error **err)
{
	cleanup_close int dirfd = -1;
	cleanup_strbuf struct strbuf what = STRBUF_INIT;
	const char *name;

	if (open_parent(real_path, &dirfd, &name, err) < 0)
		return -1;
	strbuf_addstr(&what, real_path);
	return check_canon_at(ls, dirfd, name, &what, 0, ret_problem, err);
}

/* Copying a tree in (nib add). */

static int copy_file_fd(int in, int out, const char *what, struct nib_error **err)
{
	char buf[65536];

	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n > 0)
			continue;
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP &&
		    errno != EBADF)
			return nib_error_errno(err, "cannot copy '%s'", what);
		break;
	}
	/* Fallback for file systems without copy_file_range. */
	for (;;) {
		ssize_t n = read_upto(in, buf, sizeof(buf));
		if (n < 0)
			return nib_error_errno(err, "cannot read '%s'", what);
		if (n == 0)
			return 0;
		if (write_full(out, buf, (size_t)n, err) < 0)
			return nib_error_prefix(err, "copying '%s'", what);
	}
}

static int copy_at(int sdir, const char *sname, int ddir, const char *dname, struct strbuf *what,
		   int depth, struct nib_error **err)
{
	struct stat st;

	if (depth > MAX_TREE_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply", what->buf);
	if (fstatat(sdir, sname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return nib_error_errno(err, "cannot stat '%s'", what->buf);
	if (S_ISLNK(st.st_mode)) {
		cleanup_free char *target = xmalloc(PATH_MAX + 1);
		ssize_t n = readlinkat(sdir, sname, target, PATH_MAX + 1);
		if (n < 0)
			return nib_error_errno(err, "cannot read symlink '%s'", what->buf);
		if (n > PATH_MAX)
			return nib_error_set(err, NIB_E_INVALID, 0, "symlink '%s' is too long",
					     what->buf);
		target[n] = '\0';
		if (symlinkat(target, ddir, dname) < 0)
			return nib_error_errno(err, "cannot create symlink for '%s'", what->buf);
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		cleanup_close int in = -1, out = -1;
		struct stat st2;

		in = openat(sdir, sname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (in < 0)
			return nib_error_errno(err, "cannot open '%s'", what->buf);
		if (fstat(in, &st2) < 0)
			return nib_error_errno(err, "cannot stat '%s'", what->buf);
		if (!S_ISREG(st2.st_mode))
			return nib_error_set(err, NIB_E_INVALID, 0, "'%s' changed type", what->buf);
		out = openat(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     (st2.st_mode & S_IXUSR) ? 0700 : 0600);
		if (out < 0)
			return nib_error_errno(err, "cannot create a copy of '%s'", what->buf);
		return copy_file_fd(in, out, what->buf, err);
	}
	if (S_ISDIR(st.st_mode)) {
		cleanup_close int in = -1, out = -1;
		cleanup_dir DIR *d = NULL;
		struct dirent *de;
		size_t len = what->len;

		in = openat(sdir, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0)
			return nib_error_errno(err, "cannot open '%s'", what->buf);
		if (mkdirat(ddir, dname, 0700) < 0)
			return nib_error_errno(err, "cannot create a copy of '%s'", what->buf);
		out = openat(ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (out < 0)
			return nib_error_errno(err, "cannot open the copy of '%s'", what->buf);
		d = opendir_dup(in);
		if (d == NULL)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
		while ((errno = 0, de = readdir(d)) != NULL) {
			if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
				continue;
			strbuf_addf(what, "/%s", de->d_name);
			if (copy_at(in, de->d_name, out, de->d_name, what, depth + 1, err) < 0)
				return -1;
			strbuf_setlen(what, len);
		}
		if (errno != 0)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
		return 0;
	}
	return nib_error_set(err, NIB_E_INVALID, 0,
			     "'%s' is not a regular file, directory or symlink", what->buf);
}

/* Adding and registering. */

/*
 * A fresh temporary name in the store directory, protected by a temporary
 * root from before it exists.
 */
static int temp_name(struct local_store *ls, char **ret_name, struct nib_error **err)
{
	cleanup_free char *name =
		xasprintf(LOCAL_TMP_PREFIX "%ld-%lu-%lx", (long)getpid(), ++ls->tmp_counter,
			  (unsigned long)(now_realtime_usec() & 0xfffff));
	cleanup_free char *logical = path_join(ls->base.store_dir, name);

	if (local_add_temp_root(&ls->base, logical, err) < 0)
		return -1;
	*ret_name = TAKE_PTR(name);
	return 0;
}

static void remove_quietly(struct local_store *ls, const char *name)
{
	cleanup_free char *real = path_join(ls->real_dir, name);
	cleanup_error struct nib_error *e = NULL;

	if (rm_rf_at(AT_FDCWD, real, &e) < 0)
		log_debug("cannot remove '%s': %s", real, e->msg);
}

static char *nar_hash_text(const struct hash *h)
{
	return hash_to_string(h, HASH_ENC_BASE16, true);
}

static char *join_sigs(char *const *sigs)
{
	struct strbuf sb = STRBUF_INIT;

	if (sigs == NULL || sigs[0] == NULL)
		return NULL;
	for (size_t i = 0; sigs[i] != NULL; i++)
		strbuf_addf(&sb, "%s%s", i ? " " : "", sigs[i]);
	return strbuf_detach(&sb, NULL);
}

/*
 * Record the outputs of a .drv being registered, so that queries for
 * derivation outputs and the collector's keep-outputs work.
 */
static struct derivation *resolve_input(void *userdata, const char *drv_path,
					struct nib_error **err)
{
	return store_read_derivation(userdata, drv_path, err);
}

static int register_drv_outputs(struct local_store *ls, int64_t id, const char *path,
				struct nib_error **err)
{
	/* Its row is in the open transaction, so it reads as valid. */
	cleanup_derivation struct derivation *d = store_read_derivation(&ls->base, path, err);

	if (d == NULL)
		return -1;
	/* As Nix does: a .drv whose output paths are wrong is not registered. */
	if (ls->hasher == NULL)
		ls->hasher = drv_hasher_new(ls->base.store_dir, resolve_input, &ls->base);
	if (derivation_check_outputs(ls->hasher, d, err) < 0)
		return -1;
	for (size_t i = 0; i < d->n_outputs; i++)
		if (d->outputs[i].path != NULL &&
		    db_drv_output_insert(ls->db, id, d->outputs[i].name, d->outputs[i].path, err) <
			    0)
			return -1;
	return 0;
}

/* Register infos in one transaction (the database half of registration). */
static int register_paths(struct local_store *ls, const struct store_path_info *infos, size_t n,
			  struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;
	cleanup_free int64_t *ids = xcalloc(n + 1, sizeof(int64_t));
	int64_t now = (int64_t)time(NULL);

	if (local_begin_write(ls, "register paths", err) < 0)
		return -1;
	if (db_txn_begin(ls->db, true, &t, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct store_path_info *info = &infos[i];
		cleanup_free char *hash = NULL, *sigs = NULL;
		struct db_path_row row = { 0 };
		int r;

		if (info->nar_hash.algo != HASH_SHA256)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "cannot register '%s': NAR hash is not SHA-256",
					     info->path);
		hash = nar_hash_text(&info->nar_hash);
		sigs = join_sigs(info->sigs);
		row.path = info->path;
		row.hash = hash;
		row.registration_time = info->registration_time ? info->registration_time : now;
		row.deriver = info->deriver;
		row.nar_size = (int64_t)info->nar_size;
		row.ultimate = info->ultimate;
		row.sigs = sigs;
		row.ca = info->ca;
		r = db_path_id(ls->db, info->path, &ids[i], err);
		if (r < 0)
			return -1;
		if (r > 0) {
			if (db_path_update(ls->db, &row, err) < 0 ||
			    db_refs_clear(ls->db, ids[i], err) < 0)
				return -1;
		} else if (db_path_insert(ls->db, &row, &ids[i], err) < 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		for (char **ref = infos[i].references; ref && *ref; ref++) {
			int64_t rid = 0;
			int r = db_path_id(ls->db, *ref, &rid, err);
			if (r < 0)
				return -1;
			if (r == 0)
				return nib_error_set(err, NIB_E_NOT_FOUND, 0,
						     "cannot register '%s': its reference '%s' is "
						     "not valid",
						     infos[i].path, *ref);
			if (db_ref_insert(ls->db, ids[i], rid, err) < 0)
				return -1;
		}
		if (ends_with(infos[i].path, ".drv") &&
		    register_drv_outputs(ls, ids[i], infos[i].path, err) < 0)
			return nib_error_prefix(err, "registering '%s'", infos[i].path);
	}
	return db_txn_commit(TAKE_PTR(t), err);
}

int local_store_register_valid_paths(struct store *store, const struct store_path_info *infos,
				     size_t n, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);

	for (size_t i = 0; i < n; i++) {
		cleanup_free char *p = NULL, *real = NULL;
		struct stat st;

		if (store_parse_path(store, infos[i].path, false, &p, err) < 0)
			return -1;
		if (!STREQ(p, infos[i].path))
			return nib_error_set(err, NIB_E_INVALID, 0, "path '%s' is not normalised",
					     infos[i].path);
		real = local_store_real_path(store, p);
		if (lstat(real, &st) < 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, errno,
					     "cannot register '%s': its contents are missing", p);
	}
	return register_paths(ls, infos, n, err);
}

int local_store_register_build(struct store *store, const struct store_path_info *infos, size_t n,
			       struct build_record *rec, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);
	cleanup_txn struct db_txn *t = NULL;
	int64_t id;

	if (local_begin_write(ls, "register paths", err) < 0 ||
	    db_txn_begin(ls->db, true, &t, err) < 0 ||
	    local_store_register_valid_paths(store, infos, n, err) < 0 ||
	    db_build_record_insert(ls->db, rec, &id, err) < 0 ||
	    db_txn_commit(TAKE_PTR(t), err) < 0)
		return -1;
	rec->id = id;
	return 0;
}

/* ---- batches of adds (see local_store_batch_begin) ---- */

#define BATCH_MAX 256

struct local_batch {
	struct db_txn *txn;	  /* open from begin to end; NULL after a failed commit */
	struct local_sync *sync;  /* the background sync of a pending batch */
	struct path_lock **locks; /* of the paths below, held until they are committed */
	char **reals;		  /* what was moved into place: synced at the end */
	struct strset *paths;	  /* their store paths */
	size_t n, alloc;
};

/* Release the batch's locks, first removing its contents when they were not committed. */
static void batch_clear(struct local_batch *b, bool remove)
{
	for (size_t i = 0; i < b->n; i++) {
		cleanup_error struct nib_error *e = NULL;
		if (remove && rm_rf_at(AT_FDCWD, b->reals[i], &e) < 0)
			log_debug("cannot remove '%s': %s", b->reals[i], e->msg);
		path_lock_release(b->locks[i]);
		free(b->reals[i]);
	}
	b->n = 0;
	strset_free(b->paths);
	b->paths = strset_new();
}

static void batch_free(struct local_batch *b)
{
	/* Roll back before removing: nothing registered may lose its contents. */
	if (b->txn != NULL)
		db_txn_rollback(b->txn);
	b->txn = NULL;
	batch_clear(b, true);
	strset_free(b->paths);
	free(b->locks);
	free(b->reals);
	free(b);
}

/* Commit the batch, whose contents are synced, and release its locks. */
static int batch_commit_synced(struct local_batch *b, struct nib_error **err)
{
	if (db_txn_commit(TAKE_PTR(b->txn), err) < 0)
		return -1;
	batch_clear(b, false);
	return 0;
}

/* local_store_sync_tree of each of reals, with sync_parent the directory of the last one too. */
static int sync_trees(struct store *store, char *const *reals, size_t n, bool sync_parent,
		      struct nib_error **err)
{
	for (size_t i = 0; i < n; i++)
		if (local_store_sync_tree(store, reals[i], sync_parent && i + 1 == n, err) < 0)
			return -1;
	return 0;
}

/* Sync what the batch moved into place, then commit it. */
static int batch_commit(struct local_store *ls, struct local_batch *b, struct nib_error **err)
{
	if (sync_trees(&ls->base, b->reals, b->n, true, err) < 0)
		return -1;
	return batch_commit_synced(b, err);
}

int local_store_batch_begin(struct store *store, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);
	struct local_batch *b;

	if (ls->batch != NULL)
		abort(); /* batches do not nest: a programmer error */
	if (local_begin_write(ls, "add paths", err) < 0)
		return -1;
	b = xcalloc(1, sizeof(*b));
	if (db_txn_begin(ls->db, true, &b->txn, err) < 0) {
		free(b);
		return -1;
	}
	b->paths = strset_new();
	ls->batch = b;
	return 0;
}

int local_store_batch_end(struct store *store, bool commit, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);
	struct local_batch *b = ls->batch;
	int r = 0;

	if (b == NULL)
		return 0;
	ls->batch = NULL;
	if (commit)
		r = batch_commit(ls, b, err);
	batch_free(b);
	return r;
}

int local_store_batch_end_async(struct store *store, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);
	struct local_batch *b = ls->batch;

	if (b == NULL || b->n == 0 || !ls->fsync)
		return local_store_batch_end(store, true, err);
	ls->batch = NULL;
	b->sync = local_store_sync_start(store, b->reals, b->n, true);
	ls->pending = b;
	return 0;
}

int local_store_settle(struct store *store, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);
	struct local_batch *b = ls->pending;
	int r;

	if (b == NULL)
		return 0;
	ls->pending = NULL;
	r = local_store_sync_finish(TAKE_PTR(b->sync), err);
	if (r == 0)
		r = batch_commit_synced(b, err);
	/* After a failure: rolled back, and what it moved into place removed. */
	batch_free(b);
	return r;
}

/* ---- syncing in the background ---- */

struct local_sync {
	struct store *store;
	char **reals;
	size_t n;
	bool sync_parent;
	bool threaded;
	pthread_t thread;
	struct nib_error *err; /* the first failure */
};

static void *sync_main(void *arg)
{
	struct local_sync *s = arg;

	(void)sync_trees(s->store, s->reals, s->n, s->sync_parent, &s->err);
	return NULL;
}

struct local_sync *local_store_sync_start(struct store *store, char *const *reals, size_t n,
					  bool sync_parent)
{
	struct local_sync *s = xcalloc(1, sizeof(*s));

	s->store = store;
	s->reals = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		s->reals[i] = xstrdup(reals[i]);
	s->n = n;
	s->sync_parent = sync_parent;
	if (!LOCAL(store)->fsync || n == 0)
		return s;
	/*
	 * The thread only opens, reads directories and fsyncs: it shares
	 * nothing with the caller but the paths and the result.  Without a
	 * thread the same syncs run here and now.
	 */
	s->threaded = thread_start(&s->thread, sync_main, s);
	if (!s->threaded)
		sync_main(s);
	return s;
}

int local_store_sync_finish(struct local_sync *s, struct nib_error **err)
{
	int r = 0;

	if (s == NULL)
		return 0;
	if (s->threaded)
		pthread_join(s->thread, NULL);
	if (s->err != NULL) {
		nib_error_move(err, &s->err);
		r = -1;
	}
	strv_free(s->reals);
	free(s);
	return r;
}

/* ---- checkpoints in the background ---- */

/* Start a background checkpoint once the WAL is this long (see db.c's WAL_CHECKPOINT_PAGES). */
#define BACKGROUND_CHECKPOINT_PAGES 32

struct local_checkpoint {
	pthread_t thread;
	char *path;
	bool done; /* set by the thread when it ends */
};

static void *checkpoint_main(void *arg)
{
	struct local_checkpoint *k = arg;
	cleanup_error struct nib_error *e = NULL;

	if (db_checkpoint(k->path, &e) < 0)
		log_debug("%s", e->msg);
	__atomic_store_n(&k->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Wait for the background checkpoint, if any (block = false: only if it is over). */
static void checkpoint_join(struct local_store *ls, bool block)
{
	struct local_checkpoint *k = ls->checkpoint;

	if (k == NULL || (!block && !__atomic_load_n(&k->done, __ATOMIC_ACQUIRE)))
		return;
	pthread_join(k->thread, NULL);
	free(k->path);
	free(k);
	ls->checkpoint = NULL;
}

void local_store_checkpoint_background(struct store *store)
{
	struct local_store *ls = LOCAL(store);
	struct local_checkpoint *k;

	checkpoint_join(ls, false);
	if (ls->checkpoint != NULL || ls->readonly ||
	    db_wal_frames(ls->db) < BACKGROUND_CHECKPOINT_PAGES)
		return;
	k = xcalloc(1, sizeof(*k));
	k->path = path_join(ls->db_dir, "db.sqlite");
	if (!thread_start(&k->thread, checkpoint_main, k)) {
		/* No thread: the commits' own checkpoints (WAL_CHECKPOINT_PAGES) remain. */
		free(k->path);
		free(k);
		return;
	}
	ls->checkpoint = k;
}

/* Keep a path moved into place and registered (uncommitted) until the batch ends. */
static int batch_keep(struct local_store *ls, struct path_lock *lock, const char *real,
		      const char *path, struct nib_error **err)
{
	struct local_batch *b = ls->batch;

	ALLOC_GROW(b->locks, b->n + 1, b->alloc);
	b->reals = xrealloc(b->reals, b->alloc * sizeof(*b->reals));
	b->locks[b->n] = lock;
	b->reals[b->n] = xstrdup(real);
	b->n++;
	strset_add(b->paths, path);
	if (b->n < BATCH_MAX)
		return 0;
	/* Long batches commit as they go, so that the lock count stays bounded. */
	if (batch_commit(ls, b, err) < 0 || db_txn_begin(ls->db, true, &b->txn, err) < 0) {
		ls->batch = NULL;
		batch_free(b);
		return -1;
	}
	return 0;
}

/*
 * Move the finished temporary tmp_name into place as info->path and
 * register it.  tmp_name is canonical (not necessarily synced: finalize
 * syncs it at its final name, with the store directory).  Runs under the
 * path's lock; if the path became valid meanwhile (another process won the
 * race), the temporary copy is dropped and that is success.
 */
static int finalize(struct local_store *ls, const char *tmp_name,
		    const struct store_path_info *info, unsigned flags, struct nib_error **err)
{
	cleanup_path_lock struct path_lock *lock = NULL;
	cleanup_free char *real = local_store_real_path(&ls->base, info->path);
	cleanup_free char *tmp_real = path_join(ls->real_dir, tmp_name);
	bool replaced = false;
	struct stat st;
	int64_t id;
	int r;

	if (local_add_temp_root(&ls->base, info->path, err) < 0)
		return -1;
	/* Added earlier in this batch, whose lock we hold: it is there already. */
	if (ls->batch != NULL && strset_contains(ls->batch->paths, info->path)) {
		remove_quietly(ls, tmp_name);
		return 0;
	}
	if (path_lock_acquire(real, true, &lock, err) < 0)
		return -1;
	r = db_path_id(ls->db, info->path, &id, err);
	if (r < 0)
		return -1;
	if (r > 0 && !(flags & STORE_ADD_REPAIR)) {
		remove_quietly(ls, tmp_name);
		return 0;
	}
	if (r > 0) {
		/* Repair: swap atomically so the valid path never disappears. */
		if (renameat2(AT_FDCWD, tmp_real, AT_FDCWD, real, RENAME_EXCHANGE) == 0) {
			replaced = true;
		} else if (errno != ENOENT) {
			return nib_error_errno(err, "cannot replace '%s'", real);
		}
	} else if (lstat(real, &st) == 0) {
		/* Invalid leftover of a crashed writer: ours to remove under the lock. */
		log_debug("removing invalid leftover '%s'", real);
		if (rm_rf_at(AT_FDCWD, real, err) < 0)
			return -1;
	}
	if (!replaced && rename(tmp_real, real) < 0)
		return nib_error_errno(err, "cannot move '%s' into place", info->path);
	if (ls->batch != NULL && !replaced) {
		/* Synced and committed with the rest of the batch. */
		if (register_paths(ls, info, 1, err) < 0) {
			cleanup_error struct nib_error *e = NULL;
			if (rm_rf_at(AT_FDCWD, real, &e) < 0)
				log_debug("cannot remove '%s': %s", real, e->msg);
			return -1;
		}
		return batch_keep(ls, TAKE_PTR(lock), real, info->path, err);
	}
	/* Durable under its final name before the registration is. */
	if (local_store_sync_tree(&ls->base, real, true, err) < 0 ||
	    register_paths(ls, info, 1, err) < 0) {
		/* Never leave unregistered contents at a valid-looking name if we can help it. */
		if (!replaced) {
			cleanup_error struct nib_error *e = NULL;
			if (rm_rf_at(AT_FDCWD, real, &e) < 0)
				log_debug("cannot remove '%s': %s", real, e->msg);
		}
		return -1;
	}
	if (replaced)
		remove_quietly(ls, tmp_name);
	return 0;
}

static int local_add_path(struct store *s, const char *src, const char *name, char **ret_path,
			  struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_free char *tmp = NULL, *tmp_real = NULL, *srcdup = NULL, *ca = NULL;
	cleanup_free char *b32 = NULL;
	cleanup_strbuf struct strbuf what = STRBUF_INIT;
	cleanup_close int srcdir = -1, dstdir = -1;
	struct store_path_info info = { 0 };
	struct store_path sp;
	const char *srcname;
	size_t len;
	int r;

	if (local_begin_write(ls, "add paths", err) < 0)
		return -1;
	srcdup = xstrdup(src);
	len = strlen(srcdup);
	while (len > 1 && srcdup[len - 1] == '/')
		srcdup[--len] = '\0';
	if (name == NULL)
		name = base_name(srcdup);
	if (!store_path_name_valid(name, strlen(name)))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "cannot add '%s': '%s' is not a valid store path name", src,
				     name);
	if (srcdup[0] == '/' && strchr(srcdup + 1, '/') == NULL) {
		srcdir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		srcname = srcdup + 1;
	} else if (strchr(srcdup, '/') == NULL) {
		srcdir = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		srcname = srcdup;
	} else {
		cleanup_free char *parent =
			xstrndup(srcdup, (size_t)(strrchr(srcdup, '/') - srcdup));
		srcdir = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
		srcname = strrchr(srcdup, '/') + 1;
	}
	if (srcdir < 0)
		return nib_error_errno(err, "cannot add '%s'", src);
	if (STREQ(srcname, "") || STREQ(srcname, ".") || STREQ(srcname, ".."))
		return nib_error_set(err, NIB_E_INVALID, 0, "cannot add '%s': give it by name",
				     src);

	dstdir = open(ls->real_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dstdir < 0)
		return nib_error_errno(err, "cannot open store directory '%s'", ls->real_dir);
	if (temp_name(ls, &tmp, err) < 0)
		return -1;
	tmp_real = path_join(ls->real_dir, tmp);
	strbuf_addstr(&what, src);
	if (copy_at(srcdir, srcname, dstdir, tmp, &what, 0, err) < 0 ||
	    local_store_canonicalise_unsynced(s, tmp_real, err) < 0 ||
	    nar_hash_path(tmp_real, &info.nar_hash, &info.nar_size, err) < 0 ||
	    store_path_make_source(s->store_dir, name, &info.nar_hash, NULL, false, &sp, err) < 0) {
		remove_quietly(ls, tmp);
		return nib_error_prefix(err, "cannot add '%s'", src);
	}
	b32 = hash_to_string(&info.nar_hash, HASH_ENC_BASE32, false);
	ca = xasprintf("fixed:r:sha256:%s", b32);
	info.path = store_path_to_string(s->store_dir, &sp);
	info.ultimate = true;
	info.ca = ca;
	r = finalize(ls, tmp, &info, 0, err);
	info.ca = NULL;
	if (r < 0) {
		remove_quietly(ls, tmp);
		store_path_info_release(&info);
		return nib_error_prefix(err, "cannot add '%s'", src);
	}
	*ret_path = TAKE_PTR(info.path);
	return 0;
}

static int refs_valid(struct local_store *ls, char *const *refs, const char *self,
		      struct nib_error **err)
{
	for (size_t i = 0; refs != NULL && refs[i] != NULL; i++) {
		int64_t id;
		int r;

		if (self != NULL && STREQ(refs[i], self))
			continue;
		r = db_path_id(ls->db, refs[i], &id, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0, "reference '%s' is not valid",
					     refs[i]);
	}
	return 0;
}

/* A sorted, duplicate-free copy of refs. */
static char **sorted_refs(char *const *refs)
{
	char **v = refs ? strv_copy(refs) : xcalloc(1, sizeof(char *));
	size_t n = strv_length(v), k = 0;

	sort_array(v, n, sizeof(char *), strp_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && STREQ(v[k - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	v[k] = NULL;
	return v;
}

static int local_add_text(struct store *s, const char *name, const void *data, size_t len,
			  char *const *refs, char **ret_path, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_strv char **srefs = sorted_refs(refs);
	cleanup_free char *path = NULL, *tmp = NULL, *tmp_real = NULL, *b32 = NULL;
	cleanup_close int fd = -1;
	struct store_path_info info = { 0 };
	struct store_path sp;
	struct hash h;
	int64_t id;
	int r;

	if (local_begin_write(ls, "add text", err) < 0)
		return -1;
	if (len > MAX_TEXT_SIZE)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "text for '%s' is too large (%zu bytes)", name, len);
	hash_buffer(HASH_SHA256, data, len, &h);
	if (store_path_make_text(s->store_dir, name, &h, srefs, &sp, err) < 0)
		return -1;
	path = store_path_to_string(s->store_dir, &sp);
	if (local_add_temp_root(s, path, err) < 0)
		return -1;
	r = db_path_id(ls->db, path, &id, err);
	if (r < 0)
		return -1;
	if (r > 0) {
		*ret_path = TAKE_PTR(path);
		return 0;
	}
	if (refs_valid(ls, srefs, NULL, err) < 0)
		return nib_error_prefix(err, "cannot add '%s'", path);

	if (temp_name(ls, &tmp, err) < 0)
		return -1;
	tmp_real = path_join(ls->real_dir, tmp);
	fd = open(tmp_real, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return nib_error_errno(err, "cannot create '%s'", tmp_real);
	if (write_full(fd, data, len, err) < 0 ||
	    local_store_canonicalise_unsynced(s, tmp_real, err) < 0 ||
	    nar_hash_path(tmp_real, &info.nar_hash, &info.nar_size, err) < 0) {
		remove_quietly(ls, tmp);
		return nib_error_prefix(err, "cannot add '%s'", path);
	}
	b32 = hash_to_string(&h, HASH_ENC_BASE32, false);
	info.path = path;
	info.references = srefs;
	info.ultimate = true;
	info.ca = xasprintf("text:sha256:%s", b32);
	r = finalize(ls, tmp, &info, 0, err);
	free(info.ca);
	if (r < 0) {
		remove_quietly(ls, tmp);
		return nib_error_prefix(err, "cannot add '%s'", path);
	}
	*ret_path = TAKE_PTR(path);
	return 0;
}

/* Hash and count the NAR bytes as nar_restore_at reads them. */
struct nar_tally {
	struct hash_ctx *ctx;
	uint64_t size;
};

static int tally_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct nar_tally *t = userdata;

	(void)err;
	hash_ctx_update(t->ctx, data, len);
	t->size += len;
	return 0;
}

static int local_add_nar(struct store *s, const struct store_path_info *info, nar_source_fn src,
			 void *userdata, unsigned flags, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_hash_ctx struct hash_ctx *ctx = hash_ctx_new(HASH_SHA256);
	cleanup_free char *tmp = NULL, *tmp_real = NULL;
	cleanup_close int dirfd = -1;
	struct nar_tally hs = { .ctx = ctx };
	struct nar_restore_opts opts = { .exact = true, .tee = tally_sink, .tee_data = &hs };
	struct hash got;

	if (local_begin_write(ls, "add paths", err) < 0)
		return -1;
	if (info->nar_hash.algo != HASH_SHA256)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "cannot add '%s': NAR hash is not SHA-256", info->path);
	dirfd = open(ls->real_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return nib_error_errno(err, "cannot open store directory '%s'", ls->real_dir);
	/* Root first: from here on the collector leaves the path alone. */
	if (local_add_temp_root(s, info->path, err) < 0 || temp_name(ls, &tmp, err) < 0)
		return -1;
	tmp_real = path_join(ls->real_dir, tmp);
	/*
	 * Read exactly the archive (it may be embedded in a longer stream) and
	 * never more than the sender declared.  The contents are restored even
	 * when the path is valid already: the stream has to be consumed anyway,
	 * and that is also when a damaged copy gets repaired.
	 */
	opts.limits.max_bytes = info->nar_size;
	if (nar_restore_at(dirfd, tmp, src, userdata, &opts, err) < 0) {
		remove_quietly(ls, tmp);
		return nib_error_prefix(err, "cannot add '%s'", info->path);
	}
	hash_ctx_final(ctx, &got);
	if (hs.size != info->nar_size || !hash_equal(&got, &info->nar_hash)) {
		cleanup_free char *want_s = hash_to_string(&info->nar_hash, HASH_ENC_BASE32, true);
		cleanup_free char *got_s = hash_to_string(&got, HASH_ENC_BASE32, true);
		remove_quietly(ls, tmp);
		if (hs.size != info->nar_size)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "cannot add '%s': NAR size %llu differs from the "
					     "declared %llu",
					     info->path, (unsigned long long)hs.size,
					     (unsigned long long)info->nar_size);
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "cannot add '%s': NAR hash mismatch: declared %s, got %s",
				     info->path, want_s, got_s);
	}
	if (refs_valid(ls, info->references, info->path, err) < 0 ||
	    local_store_canonicalise_unsynced(s, tmp_real, err) < 0 ||
	    finalize(ls, tmp, info, flags, err) < 0) {
		remove_quietly(ls, tmp);
		return nib_error_prefix(err, "cannot add '%s'", info->path);
	}
	return 0;
}

int local_store_invalidate_path(struct store *store, const char *path, struct nib_error **err)
{
	struct local_store *ls = LOCAL(store);
	cleanup_txn struct db_txn *t = NULL;
	cleanup_free char *p = NULL;
	int64_t id;
	int r;

	if (store_parse_path(store, path, false, &p, err) < 0 ||
	    local_begin_write(ls, "invalidate paths", err) < 0)
		return -1;
	if (db_txn_begin(ls->db, true, &t, err) < 0)
		return -1;
	r = db_path_id(ls->db, p, &id, err);
	if (r <= 0)
		return r;
	if (db_path_delete(ls->db, id, err) < 0) {
		if ((*err)->code == NIB_E_DENIED) {
			cleanup_strv char **referrers = NULL;
			cleanup_error struct nib_error *e = NULL;
			const char *other = "another path";
			if (db_referrers(ls->db, id, &referrers, &e) == 0)
				for (char **q = referrers; *q; q++)
					if (!STREQ(*q, p)) {
						other = *q;
						break;
					}
			nib_error_clear(err);
			return nib_error_set(err, NIB_E_DENIED, 0,
					     "cannot invalidate '%s': '%s' still refers to it", p,
					     other);
		}
		return nib_error_prefix(err, "invalidating '%s'", p);
	}
	return db_txn_commit(TAKE_PTR(t), err);
}

/* Queries. */

/* The space-separated signatures of a row as a vector, or NULL when there are none. */
static char **split_sigs(const char *text)
{
	cleanup_free char *copy = NULL;
	char **v, *save = NULL, *tok;

	if (text == NULL || text[0] == '\0')
		return NULL;
	copy = xstrdup(text);
	v = xcalloc(1, sizeof(char *));
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		strv_push(&v, tok);
	return v;
}

static int local_query_path_info(struct store *s, const char *path, struct store_path_info *ret,
				 struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_path_row struct db_path_row row = { 0 };
	struct store_path_info info = { 0 };
	char **refs = NULL;
	int r = db_path_query_refs(ls->db, path, &row, &refs, err);

	if (r <= 0)
		return r;
	if (hash_parse(row.hash, HASH_SHA256, &info.nar_hash, err) < 0) {
		nib_error_prefix(err, "database entry of '%s'", row.path);
		strv_free(refs);
		return -1;
	}
	info.path = TAKE_PTR(row.path);
	info.references = refs;
	info.nar_size = row.nar_size > 0 ? (uint64_t)row.nar_size : 0;
	info.deriver = TAKE_PTR(row.deriver);
	info.registration_time = row.registration_time;
	info.ultimate = row.ultimate;
	info.sigs = split_sigs(row.sigs);
	info.ca = TAKE_PTR(row.ca);
	*ret = info;
	return 1;
}

static int local_query_path_infos(struct store *s, char *const *paths, size_t n,
				  struct store_path_info *ret, struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;

	/* One read transaction: SQLite locks once instead of once per path. */
	if (db_txn_begin(LOCAL(s)->db, false, &t, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (local_query_path_info(s, paths[i], &ret[i], err) < 0)
			return -1;
	return 0;
}

static int local_query_valid(struct store *s, char *const *paths, size_t n, bool *ret_valid,
			     struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_txn struct db_txn *t = NULL;
	cleanup_free bool *valid = xcalloc(n + 1, sizeof(bool));

	/* One read transaction: one consistent snapshot, and much faster. */
	if (n > 1 && db_txn_begin(ls->db, false, &t, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int64_t id;
		int r = db_path_id(ls->db, paths[i], &id, err);
		if (r < 0)
			return -1;
		valid[i] = r > 0;
	}
	memcpy(ret_valid, valid, n * sizeof(bool));
	return 0;
}

/* db_path_foreach callback: collect the paths (ud: struct path_list). */
struct path_list {
	char **v;
	size_t n, alloc;
};

static int collect_path(void *ud, const struct db_path_row *r, struct nib_error **err)
{
	struct path_list *l = ud;

	(void)err;
	ALLOC_GROW(l->v, l->n + 2, l->alloc);
	l->v[l->n++] = xstrdup(r->path);
	l->v[l->n] = NULL;
	return 0;
}

static int local_query_all_valid(struct store *s, char ***ret, struct nib_error **err)
{
	struct path_list l = { 0 };

	if (db_path_foreach(LOCAL(s)->db, collect_path, &l, err) < 0) {
		strv_free(l.v);
		return -1;
	}
	*ret = l.v != NULL ? l.v : xcalloc(1, sizeof(char *));
	return 0;
}

static int local_query_referrers(struct store *s, const char *path, char ***ret,
				 struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	int64_t id;
	int r = db_path_id(ls->db, path, &id, err);

	if (r < 0)
		return -1;
	if (r == 0) {
		*ret = xcalloc(1, sizeof(char *));
		return 0;
	}
	return db_referrers(ls->db, id, ret, err);
}

static int local_query_valid_derivers(struct store *s, const char *path, char ***ret,
				      struct nib_error **err)
{
	return db_valid_derivers(LOCAL(s)->db, path, ret, err);
}

static int local_query_derivation_outputs(struct store *s, const char *drv_path, char ***ret_names,
					  char ***ret_paths, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	int64_t id;
	int r = db_path_id(ls->db, drv_path, &id, err);

	if (r < 0)
		return -1;
	if (r == 0)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid", drv_path);
	return db_drv_outputs(ls->db, id, ret_names, ret_paths, err);
}

static int local_query_path_from_hash_part(struct store *s, const char *hash_part, char **ret_path,
					   struct nib_error **err)
{
	cleanup_free char *prefix = xasprintf("%s/%s-", s->store_dir, hash_part);

	return db_path_with_prefix(LOCAL(s)->db, prefix, ret_path, err);
}

static int local_query_closure(struct store *s, char *const *paths, size_t n, unsigned flags,
			       char ***ret, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	cleanup_txn struct db_txn *t = NULL;
	cleanup_idset struct idset *seen = idset_new();
	cleanup_free int64_t *queue = NULL;
	cleanup_strv char **out = NULL;
	size_t qn = 0, qalloc = 0;

	if (flags != 0) /* derivers and outputs need whole rows */
		return store_closure_generic(s, paths, n, flags, ret, err);
	if (db_txn_begin(ls->db, false, &t, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int64_t id;
		int r = db_path_id(ls->db, paths[i], &id, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid",
					     paths[i]);
		if (idset_add(seen, id)) {
			ALLOC_GROW(queue, qn + 1, qalloc);
			queue[qn++] = id;
		}
	}
	for (size_t qi = 0; qi < qn; qi++) {
		cleanup_free int64_t *refs = NULL;
		size_t nrefs = 0;
		if (db_reference_ids(ls->db, queue[qi], &refs, &nrefs, err) < 0)
			return -1;
		for (size_t k = 0; k < nrefs; k++)
			if (idset_add(seen, refs[k])) {
				ALLOC_GROW(queue, qn + 1, qalloc);
				queue[qn++] = refs[k];
			}
	}
	out = xcalloc(qn + 1, sizeof(char *));
	for (size_t i = 0; i < qn; i++) {
		int r = db_path_by_id(ls->db, queue[i], &out[i], err);
		if (r < 0)
			return -1;
		if (r == 0)
			return nib_error_set(err, NIB_E_DB, 0,
					     "database references a missing row %lld",
					     (long long)queue[i]);
	}
	sort_array(out, qn, sizeof(char *), strp_cmp);
	*ret = TAKE_PTR(out);
	return 0;
}

static int local_build_record_add(struct store *s, struct build_record *r, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	int64_t id;

	if (local_begin_write(ls, "record builds", err) < 0 ||
	    db_build_record_insert(ls->db, r, &id, err) < 0)
		return -1;
	r->id = id;
	return 0;
}

static int local_build_record_update(struct store *s, const struct build_record *r,
				     struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);

	if (local_begin_write(ls, "record builds", err) < 0)
		return -1;
	return db_build_record_update(ls->db, r, err);
}

static int local_build_records(struct store *s, const char *drv, size_t limit,
			       struct build_record **ret, size_t *ret_n, struct nib_error **err)
{
	return db_build_records_query(LOCAL(s)->db, drv, limit, ret, ret_n, err);
}

static const struct store_ops local_ops = {
	.name = "local",
	.close = local_close,
	.query_valid = local_query_valid,
	.query_path_info = local_query_path_info,
	.query_path_infos = local_query_path_infos,
	.query_all_valid = local_query_all_valid,
	.query_referrers = local_query_referrers,
	.query_valid_derivers = local_query_valid_derivers,
	.query_derivation_outputs = local_query_derivation_outputs,
	.query_path_from_hash_part = local_query_path_from_hash_part,
	.query_closure = local_query_closure,
	.add_path = local_add_path,
	.add_text = local_add_text,
	.add_nar = local_add_nar,
	.add_temp_root = local_add_temp_root,
	.add_indirect_root = local_add_indirect_root,
	.find_roots = local_find_roots,
	.collect_garbage = local_collect_garbage,
	.verify = local_verify,
	.build_record_add = local_build_record_add,
	.build_record_update = local_build_record_update,
	.build_records = local_build_records,
};

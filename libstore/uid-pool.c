/*
 * uid-pool.c - dynamic UID allocation (see uid-pool.h for the model).
 *
 * Lock discipline, which the wake-up of waiters depends on:
 *  - a slot is tried through a read-only descriptor (flock() does not need
 *    write access), so a failed attempt closes nothing writable and raises
 *    no IN_CLOSE_WRITE;
 *  - whoever obtained a slot's lock opens a read-write descriptor for the
 *    record, and closes it only after unlocking: that close is the wake-up.
 * The hint bitmaps are changed only by the lock holder (busy set after
 * locking, cleared before unlocking) or by whoever holds the lock while it
 * repairs them, so they are exact except after a crash, and a full scan
 * corrects that.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "settings.h"
#include "strbuf.h"
#include "uid-pool.h"
#include "uid-pool-internal.h"
#include "util.h"
#include "banned.h"

#define RECORD_MAX ((size_t)64 * 1024)
#define INFO_VALUE_MAX ((size_t)4096)
#define HINT_WORDS ((size_t)UID_POOL_MAX_SLOTS / 64)
#define HINTS_SIZE (2 * HINT_WORDS * sizeof(uint64_t))
#define STATUS_MAX ((size_t)16384)
#define WAIT_SAFETY_MS 10000
#define WAIT_RECHECK_MS 50
#define WAIT_NO_INOTIFY_MS 1000
#define KILL_ROUNDS_DEFAULT 40
#define KILL_PAUSE_MAX_USEC 100000

/* ---- records: "key=value" lines ---- */

struct kv {
	char *key;
	char *value;
};

struct record {
	struct kv *v;
	size_t n, alloc;
};

static void record_clear(struct record *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].key);
		free(r->v[i].value);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static const char *record_get(const struct record *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (STREQ(r->v[i].key, key))
			return r->v[i].value;
	return NULL;
}

static void record_set(struct record *r, const char *key, const char *value)
{
	for (size_t i = 0; i < r->n; i++) {
		if (!STREQ(r->v[i].key, key))
			continue;
		if (value != NULL) {
			free(r->v[i].value);
			r->v[i].value = xstrdup(value);
		} else {
			free(r->v[i].key);
			free(r->v[i].value);
			memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(r->v[0]));
			r->n--;
		}
		return;
	}
	if (value == NULL)
		return;
	ALLOC_GROW(r->v, r->n + 1, r->alloc);
	r->v[r->n].key = xstrdup(key);
	r->v[r->n].value = xstrdup(value);
	r->n++;
}

static bool valid_key(const char *k)
{
	if (*k == '\0' || strlen(k) > 64)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '-'))
			return false;
	return true;
}

/* Lines that are not "key=value" with a valid key are ignored. */
static void record_parse(struct record *r, const char *text)
{
	const char *line = text;

	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *eq = memchr(line, '=', len);

		if (eq != NULL) {
			cleanup_free char *key = xstrndup(line, (size_t)(eq - line));
			cleanup_free char *value = xstrndup(eq + 1, len - (size_t)(eq - line) - 1);
			if (valid_key(key))
				record_set(r, key, value);
		}
		line += len + (nl ? 1 : 0);
	}
}

static void record_format(const struct record *r, struct strbuf *sb)
{
	for (size_t i = 0; i < r->n; i++)
		strbuf_addf(sb, "%s=%s\n", r->v[i].key, r->v[i].value);
}

static bool text_is_blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\n' && *s != '\t')
			return false;
	return true;
}

/* Read a whole small file from offset 0 of fd, which stays open. */
static int pread_all(int fd, char **ret, struct nib_error **err)
{
	cleanup_free char *buf = xmalloc(RECORD_MAX + 1);
	size_t len = 0;

	for (;;) {
		ssize_t r = pread(fd, buf + len, RECORD_MAX + 1 - len, (off_t)len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "cannot read slot record");
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > RECORD_MAX)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "slot record larger than %zu bytes", RECORD_MAX);
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

/* Replace the contents of fd with the record: write, then cut what is left over. */
static int record_write(int fd, const struct record *r, struct nib_error **err)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	size_t off = 0;
	struct stat st;

	record_format(r, &sb);
	while (off < sb.len) {
		ssize_t w = pwrite(fd, sb.buf + off, sb.len - off, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "cannot write slot record");
		}
		off += (size_t)w;
	}
	/*
	 * Only when the record shrank: records mostly grow (keys are added while
	 * a build sets up), and on a journaling file system every truncate is a
	 * metadata update that can wait behind another process's fsync.
	 */
	if (fstat(fd, &st) < 0)
		return nib_error_errno(err, "cannot stat slot record");
	if (st.st_size > (off_t)sb.len && ftruncate(fd, (off_t)sb.len) < 0)
		return nib_error_errno(err, "cannot truncate slot record");
	return 0;
}

static int64_t parse_i64_or(const char *s, int64_t dflt)
{
	int64_t v;

	if (s == NULL || parse_i64(s, &v) < 0)
		return dflt;
	return v;
}

/* ---- the process-wide registry of slots this process holds ---- */

struct registry {
	struct registry *next;
	dev_t dev;
	ino_t ino;
	bool auto_mode;
	unsigned n;
	unsigned refs; /* pools using it; with none open, this process holds no slot */
	pid_t pid;     /* the process the bits belong to */
	uint64_t bits[HINT_WORDS];
};

static struct registry *registry_list;

static struct registry *registry_get(dev_t dev, ino_t ino, bool auto_mode, unsigned n)
{
	struct registry *r;

	for (r = registry_list; r != NULL; r = r->next)
		if (r->dev == dev && r->ino == ino && r->auto_mode == auto_mode && r->n == n) {
			r->refs++;
			return r;
		}
	r = xcalloc(1, sizeof(*r));
	r->dev = dev;
	r->ino = ino;
	r->auto_mode = auto_mode;
	r->n = n;
	r->pid = getpid();
	r->refs = 1;
	r->next = registry_list;
	registry_list = r;
	return r;
}

static void registry_put(struct registry *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	for (struct registry **pp = &registry_list; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r);
}

/* ---- the pool ---- */

struct member {
	uid_t uid;
	char *user;
	gid_t *groups;
	size_t n_groups;
};

static void members_free(struct member *m, size_t n)
{
	for (size_t i = 0; m != NULL && i < n; i++) {
		free(m[i].user);
		free(m[i].groups);
	}
	free(m);
}

struct uid_pool {
	unsigned refs;
	bool auto_mode;
	uint64_t start_id;
	uint32_t ids_per_build;
	unsigned n;
	struct member *members; /* classic mode: n entries */
	gid_t build_gid;	/* classic mode */
	char *dir;		/* <state-dir>/userpool */
	char *build_dir;	/* the only tree recorded build directories may be in */
	int dirfd, heldfd, procfd;
	uint64_t *hints; /* mmap: busy words, then held words; NULL without hints */
	struct registry *mine;
	unsigned next;
	unsigned kill_rounds;
	char *state_dir;  /* for the range registry's messages */
	char *ranges;	  /* the range registry (UID_POOL_RANGE_REGISTRY, or a test's) */
	int range_fd;	  /* our registration, share-locked; -1 before claim_range */
	pid_t range_pid;  /* the process that made it */
	char *range_name; /* its name in the registry */
};

/*
 * Descriptors of slots whose cleanup failed and whose held record could not
 * be written: kept open, so locked, for the rest of the process.
 */
static int *stuck_fds;
static size_t n_stuck, alloc_stuck;

struct uid_pool_slot_priv {
	struct uid_pool *pool;
	int lock_fd;
	int rec_fd;
	pid_t owner; /* 0: a description for hooks, not a lock this process owns */
	struct record rec;
	char name[32];
};

unsigned uid_pool_size(const struct uid_pool *p)
{
	return p->n;
}

bool uid_pool_is_auto(const struct uid_pool *p)
{
	return p->auto_mode;
}

static void slot_name(const struct uid_pool *p, unsigned i, char buf[32])
{
	if (p->auto_mode)
		snprintf(buf, 32, "slot-%u", i);
	else
		snprintf(buf, 32, "classic-%lu", (unsigned long)p->members[i].uid);
}

static uint64_t slot_first_id(const struct uid_pool *p, unsigned i)
{
	return p->auto_mode ? p->start_id + (uint64_t)i * p->ids_per_build : p->members[i].uid;
}

static uint32_t slot_nr_ids(const struct uid_pool *p)
{
	return p->auto_mode ? p->ids_per_build : 1;
}

static bool bit_get(const uint64_t *words, unsigned i)
{
	return (__atomic_load_n(&words[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

static void bit_put(uint64_t *words, unsigned i, bool on)
{
	uint64_t m = 1ULL << (i % 64);

	if (on)
		__atomic_fetch_or(&words[i / 64], m, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&words[i / 64], ~m, __ATOMIC_RELAXED);
}

static bool hint_busy(const struct uid_pool *p, unsigned i)
{
	return p->hints != NULL && bit_get(p->hints, i);
}

static bool hint_held(const struct uid_pool *p, unsigned i)
{
	return p->hints != NULL && bit_get(p->hints + HINT_WORDS, i);
}

static void hint_set(struct uid_pool *p, unsigned i, bool busy, bool held)
{
	if (p->hints == NULL)
		return;
	bit_put(p->hints, i, busy);
	bit_put(p->hints + HINT_WORDS, i, held);
}

/* After fork() the child holds none of its parent's slots. */
static void check_fork(struct uid_pool *p)
{
	pid_t self = getpid();

	if (p->mine->pid != self) {
		memset(p->mine->bits, 0, sizeof(p->mine->bits));
		p->mine->pid = self;
	}
}

static bool is_mine(const struct uid_pool *p, unsigned i)
{
	return bit_get(p->mine->bits, i);
}

static void release_range(struct uid_pool *p);

static void pool_free(struct uid_pool *p)
{
	release_range(p);
	members_free(p->members, p->members ? p->n : 0);
	registry_put(p->mine);
	if (p->hints != NULL)
		munmap(p->hints, HINTS_SIZE);
	if (p->dirfd >= 0)
		close(p->dirfd);
	if (p->heldfd >= 0)
		close(p->heldfd);
	if (p->procfd >= 0)
		close(p->procfd);
	free(p->dir);
	free(p->build_dir);
	free(p->state_dir);
	free(p->ranges);
	free(p->range_name);
	free(p);
}

static void pool_unref(struct uid_pool *p)
{
	if (p != NULL && --p->refs == 0)
		pool_free(p);
}

void uid_pool_close(struct uid_pool *p)
{
	pool_unref(p);
}

/* ---- account databases ---- */

static const char *db_label(const char *path, const char *what)
{
	return path != NULL ? path : what;
}

/* fn returns < 0 (error), 0 (go on) or > 0 (stop). */
typedef int (*walk_pw_fn)(const struct passwd *pw, void *ud, struct nib_error **err);
typedef int (*walk_gr_fn)(const struct group *gr, void *ud, struct nib_error **err);

static int walk_passwd(const struct uid_pool_db *db, walk_pw_fn fn, void *ud,
		       struct nib_error **err)
{
	const char *path = db ? db->passwd : NULL;
	struct passwd *pw;
	int r = 0;

	if (path != NULL) {
		cleanup_fclose FILE *f = fopen(path, "re");
		if (f == NULL)
			return nib_error_errno(err, "cannot open passwd database '%s'", path);
		while (r == 0 && (pw = fgetpwent(f)) != NULL)
			r = fn(pw, ud, err);
		return r < 0 ? -1 : 0;
	}
	setpwent();
	while (r == 0 && (pw = getpwent()) != NULL)
		r = fn(pw, ud, err);
	endpwent();
	return r < 0 ? -1 : 0;
}

static int walk_group(const struct uid_pool_db *db, walk_gr_fn fn, void *ud, struct nib_error **err)
{
	const char *path = db ? db->group : NULL;
	struct group *gr;
	int r = 0;

	if (path != NULL) {
		cleanup_fclose FILE *f = fopen(path, "re");
		if (f == NULL)
			return nib_error_errno(err, "cannot open group database '%s'", path);
		while (r == 0 && (gr = fgetgrent(f)) != NULL)
			r = fn(gr, ud, err);
		return r < 0 ? -1 : 0;
	}
	setgrent();
	while (r == 0 && (gr = getgrent()) != NULL)
		r = fn(gr, ud, err);
	endgrent();
	return r < 0 ? -1 : 0;
}

struct found_user {
	const char *name;
	bool found;
	uid_t uid;
	gid_t gid;
};

static int find_user_cb(const struct passwd *pw, void *ud, struct nib_error **err)
{
	struct found_user *f = ud;

	(void)err;
	if (!STREQ(pw->pw_name, f->name))
		return 0;
	f->found = true;
	f->uid = pw->pw_uid;
	f->gid = pw->pw_gid;
	return 1;
}

/* 1 and the user's IDs when found, 0 when not, -1 on error. */
static int lookup_user(const struct uid_pool_db *db, const char *name, uid_t *ret_uid,
		       struct nib_error **err)
{
	struct found_user f = { .name = name };

	if (db == NULL || db->passwd == NULL) {
		struct passwd *pw;
		errno = 0;
		pw = getpwnam(name);
		if (pw == NULL) {
			if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF &&
			    errno != EPERM)
				return nib_error_errno(err, "cannot look up user '%s'", name);
			return 0;
		}
		*ret_uid = pw->pw_uid;
		return 1;
	}
	if (walk_passwd(db, find_user_cb, &f, err) < 0)
		return -1;
	if (f.found)
		*ret_uid = f.uid;
	return f.found ? 1 : 0;
}

struct found_group {
	const char *name;
	bool found;
	gid_t gid;
	char **members;
};

static int find_group_cb(const struct group *gr, void *ud, struct nib_error **err)
{
	struct found_group *f = ud;

	(void)err;
	if (!STREQ(gr->gr_name, f->name))
		return 0;
	f->found = true;
	f->gid = gr->gr_gid;
	for (char **m = gr->gr_mem; m && *m; m++)
		if (**m != '\0')
			strv_push(&f->members, *m);
	return 1;
}

/* Fills f (members are the caller's); 0 or -1. */
static int lookup_group(const struct uid_pool_db *db, struct found_group *f, struct nib_error **err)
{
	if (db == NULL || db->group == NULL) {
		struct group *gr;
		errno = 0;
		gr = getgrnam(f->name);
		if (gr == NULL) {
			if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF &&
			    errno != EPERM)
				return nib_error_errno(err, "cannot look up group '%s'", f->name);
			return 0;
		}
		return find_group_cb(gr, f, err) < 0 ? -1 : 0;
	}
	return walk_group(db, find_group_cb, f, err);
}

struct grouplist {
	const char *user;
	gid_t *gids;
	size_t n, alloc;
};

static void gid_add(struct grouplist *g, gid_t gid)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->gids[i] == gid)
			return;
	ALLOC_GROW(g->gids, g->n + 1, g->alloc);
	g->gids[g->n++] = gid;
}

static int grouplist_cb(const struct group *gr, void *ud, struct nib_error **err)
{
	struct grouplist *g = ud;

	(void)err;
	for (char **m = gr->gr_mem; m && *m; m++)
		if (STREQ(*m, g->user))
			gid_add(g, gr->gr_gid);
	return 0;
}

/* The supplementary groups of user: base_gid plus every group listing the user. */
static int user_groups(const struct uid_pool_db *db, const char *user, gid_t base_gid, gid_t **ret,
		       size_t *ret_n, struct nib_error **err)
{
	struct grouplist g = { .user = user };

	if (db == NULL || db->group == NULL) {
		int ngroups = 16;
		for (;;) {
			int want = ngroups;
			cleanup_free gid_t *buf = xreallocarray(NULL, (size_t)want, sizeof(gid_t));
			if (getgrouplist(user, base_gid, buf, &ngroups) >= 0) {
				for (int i = 0; i < ngroups; i++)
					gid_add(&g, buf[i]);
				break;
			}
			if (ngroups <= want) {
				if (ngroups > 65536)
					return nib_error_set(err, NIB_E_INVALID, 0,
							     "user '%s' has too many groups", user);
				ngroups = want * 2;
			}
		}
	} else {
		gid_add(&g, base_gid);
		if (walk_group(db, grouplist_cb, &g, err) < 0) {
			free(g.gids);
			return -1;
		}
	}
	*ret = g.gids;
	*ret_n = g.n;
	return 0;
}

/* ---- validation ---- */

struct range_check {
	uint64_t lo, hi; /* inclusive */
	const struct settings *s;
	const char *db;
};

static int range_error(const struct range_check *c, struct nib_error **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int range_error(const struct range_check *c, struct nib_error **err, const char *fmt, ...)
{
	cleanup_free char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	return nib_error_set(err, NIB_E_CONFIG, 0,
			     "UID/GID pool %llu-%llu (settings 'start-id' = %lld, 'id-count' = "
			     "%lld) %s",
			     (unsigned long long)c->lo, (unsigned long long)c->hi,
			     (long long)c->s->start_id, (long long)c->s->id_count, what);
}

static int check_pw_cb(const struct passwd *pw, void *ud, struct nib_error **err)
{
	const struct range_check *c = ud;

	if (pw->pw_uid >= c->lo && pw->pw_uid <= c->hi)
		return range_error(c, err, "contains UID %lu of user '%s' (%s)",
				   (unsigned long)pw->pw_uid, pw->pw_name, c->db);
	if (pw->pw_gid >= c->lo && pw->pw_gid <= c->hi)
		return range_error(c, err, "contains GID %lu, the primary group of user '%s' (%s)",
				   (unsigned long)pw->pw_gid, pw->pw_name, c->db);
	return 0;
}

static int check_gr_cb(const struct group *gr, void *ud, struct nib_error **err)
{
	const struct range_check *c = ud;

	if (gr->gr_gid >= c->lo && gr->gr_gid <= c->hi)
		return range_error(c, err, "contains GID %lu of group '%s' (%s)",
				   (unsigned long)gr->gr_gid, gr->gr_name, c->db);
	return 0;
}

/* subuid(5): "owner:start:count" lines; malformed lines grant nothing and are skipped. */
static int check_subid_file(const struct range_check *c, const char *path, const char *kind,
			    struct nib_error **err)
{
	cleanup_fclose FILE *f = fopen(path, "re");
	cleanup_free char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;

	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot open '%s'", path);
	}
	while (getline(&line, &cap, f) >= 0) {
		char *owner = line, *a, *b, *nl;
		uint64_t start, count, end;

		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		a = strchr(owner, ':');
		if (a == NULL)
			continue;
		*a++ = '\0';
		b = strchr(a, ':');
		if (b == NULL)
			continue;
		*b++ = '\0';
		if (parse_u64(a, &start) < 0 || parse_u64(b, &count) < 0 || count == 0)
			continue;
		end = start + count - 1;
		if (end < start)
			end = UINT64_MAX;
		if (start <= c->hi && end >= c->lo)
			return range_error(c, err,
					   "overlaps the subordinate %s range %llu-%llu of '%s' "
					   "('%s' line %u)",
					   kind, (unsigned long long)start, (unsigned long long)end,
					   owner, path, lineno);
	}
	return 0;
}

/*
 * Check classic mode's settings; with ret_members, also resolve every
 * member (UID, supplementary groups).
 */
static int validate_classic(const struct settings *s, const struct uid_pool_db *db,
			    struct member **ret_members, unsigned *ret_n, gid_t *ret_gid,
			    struct nib_error **err)
{
	struct found_group g = { .name = s->build_users_group };
	cleanup_strv char **members = NULL;
	cleanup_free uid_t *uids = NULL;
	struct member *out = NULL;
	uid_t self = geteuid();
	size_t n;
	int r;

	if (s->build_users_group == NULL || s->build_users_group[0] == '\0')
		return nib_error_set(
			err, NIB_E_CONFIG, 0,
			"setting 'build-users-group' is empty, but 'auto-allocate-uids' "
			"is false: name the group whose members run builds");
	r = lookup_group(db, &g, err);
	members = g.members;
	if (r < 0)
		return -1;
	if (!g.found)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "group '%s' (setting 'build-users-group') does not exist",
				     g.name);
	n = strv_length(members);
	if (members == NULL || n == 0)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "group '%s' (setting 'build-users-group') has no members",
				     g.name);
	if (n > UID_POOL_MAX_SLOTS)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "group '%s' (setting 'build-users-group') has %zu members; at "
				     "most %d are supported",
				     g.name, n, UID_POOL_MAX_SLOTS);
	uids = xcalloc(n, sizeof(*uids));
	for (size_t i = 0; i < n; i++) {
		r = lookup_user(db, members[i], &uids[i], err);
		if (r < 0)
			return -1;
		if (r == 0)
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "user '%s', a member of group '%s' (setting "
					     "'build-users-group'), does not exist",
					     members[i], g.name);
		if (uids[i] == 0)
			return nib_error_set(
				err, NIB_E_CONFIG, 0,
				"build user '%s' of group '%s' (setting "
				"'build-users-group') is root; builds must not run as root",
				members[i], g.name);
		if (uids[i] == self)
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "build user '%s' of group '%s' (setting "
					     "'build-users-group') has UID %lu, the daemon's own",
					     members[i], g.name, (unsigned long)self);
		for (size_t k = 0; k < i; k++)
			if (uids[k] == uids[i])
				return nib_error_set(err, NIB_E_CONFIG, 0,
						     "build users '%s' and '%s' of group '%s' "
						     "(setting 'build-users-group') share UID %lu",
						     members[k], members[i], g.name,
						     (unsigned long)uids[i]);
	}
	if (ret_members == NULL)
		return 0;
	out = xcalloc(n, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		out[i].uid = uids[i];
		out[i].user = xstrdup(members[i]);
		if (user_groups(db, members[i], g.gid, &out[i].groups, &out[i].n_groups, err) < 0) {
			members_free(out, n);
			return -1;
		}
	}
	*ret_members = out;
	*ret_n = (unsigned)n;
	*ret_gid = g.gid;
	return 0;
}

/*
 * Checking the range against the system's accounts walks every user and
 * group through NSS (with systemd's NSS module, a dozen file lookups per
 * entry): most of a millisecond that every `nib build` would pay.  So a
 * success with the system databases is remembered in
 * <state-dir>/userpool/validated, under a key made of the pool settings and
 * the identity (device, inode, size, modification and change times) of
 * every file the check reads or that says where accounts come from.  The
 * verdict is used only while the key is unchanged and for at most
 * VALIDATED_MAX_AGE seconds, so accounts from sources that change no file
 * (LDAP, systemd's dynamic users) are checked again soon.  Failures are
 * never remembered, and the cache is only read from and written to a
 * userpool directory that is private to the caller (as uid_pool_open
 * requires), so nobody else can plant a verdict.
 */
#define VALIDATED_FILE "validated"
#define VALIDATED_MAX_AGE 600

static const char *const validated_inputs[] = {
	"/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid", "/etc/nsswitch.conf",
};

static char *validated_key(const struct settings *s)
{
	struct strbuf key = STRBUF_INIT;

	strbuf_addf(&key, "v1 start-id=%lld id-count=%lld ids-per-build=%lld\n",
		    (long long)s->start_id, (long long)s->id_count, (long long)s->ids_per_build);
	for (size_t i = 0; i < ARRAY_SIZE(validated_inputs); i++) {
		struct stat st;

		if (stat(validated_inputs[i], &st) < 0) {
			strbuf_addf(&key, "%s errno=%d\n", validated_inputs[i], errno);
			continue;
		}
		strbuf_addf(&key, "%s %llu %llu %lld %lld.%09ld %lld.%09ld\n", validated_inputs[i],
			    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			    (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			    (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	}
	return strbuf_detach(&key, NULL);
}

/* <state-dir>/userpool if it exists and is private to us (see open_private_dir), else -1. */
static int open_validated_dir(const struct settings *s)
{
	cleanup_free char *dir = path_join(s->state_dir, "userpool");
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022) != 0)
		return -1;
	return TAKE_FD(fd);
}

static bool validated_recently(const struct settings *s, const char *key)
{
	cleanup_close int dfd = open_validated_dir(s);
	cleanup_close int fd = -1;
	cleanup_free char *buf = NULL;
	cleanup_error struct nib_error *e = NULL;
	time_t now = time(NULL);
	struct stat st;
	size_t len = 0;

	if (dfd < 0)
		return false;
	fd = openat(dfd, VALIDATED_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return false;
	if (st.st_mtime > now || now - st.st_mtime >= VALIDATED_MAX_AGE)
		return false;
	if (read_fd_all(fd, 4096, &buf, &len, &e) < 0)
		return false;
	return len == strlen(key) && memcmp(buf, key, len) == 0;
}

static void remember_validated(const struct settings *s, const char *key)
{
	cleanup_close int dfd = open_validated_dir(s);
	cleanup_error struct nib_error *e = NULL;

	/* Losing it costs one more check, so it is not synced. */
	if (dfd >= 0 &&
	    write_file_atomic_at(dfd, VALIDATED_FILE, key, strlen(key), 0600, false, &e) < 0)
		log_debug("uid pool: cannot remember the validation: %s", e->msg);
}

int uid_pool_validate(const struct settings *s, const struct uid_pool_db *db,
		      struct nib_error **err)
{
	struct range_check c = { .s = s };
	cleanup_free char *key = NULL;
	uint64_t slots;

	if (!s->auto_allocate_uids)
		return validate_classic(s, db, NULL, NULL, NULL, err);

	if (settings_validate_id_range(s, err) < 0)
		return -1;
	slots = (uint64_t)s->id_count / (uint64_t)s->ids_per_build;
	if (slots > UID_POOL_MAX_SLOTS)
		return nib_error_set(
			err, NIB_E_CONFIG, 0,
			"settings 'id-count' = %lld and 'ids-per-build' = %lld make %llu "
			"slots; at most %d are supported",
			(long long)s->id_count, (long long)s->ids_per_build,
			(unsigned long long)slots, UID_POOL_MAX_SLOTS);
	c.lo = (uint64_t)s->start_id;
	c.hi = c.lo + (uint64_t)s->id_count - 1;

	/* The key is made before the check, so a change during the check is seen next time. */
	if (db == NULL) {
		key = validated_key(s);
		if (validated_recently(s, key))
			return 0;
	}
	c.db = db_label(db ? db->passwd : NULL, "system passwd database");
	if (walk_passwd(db, check_pw_cb, &c, err) < 0)
		return -1;
	c.db = db_label(db ? db->group : NULL, "system group database");
	if (walk_group(db, check_gr_cb, &c, err) < 0)
		return -1;
	if (check_subid_file(&c, db && db->subuid ? db->subuid : "/etc/subuid", "UID", err) < 0)
		return -1;
	if (check_subid_file(&c, db && db->subgid ? db->subgid : "/etc/subgid", "GID", err) < 0)
		return -1;
	if (key != NULL)
		remember_validated(s, key);
	return 0;
}

/* ---- opening ---- */

static void map_hints(struct uid_pool *p)
{
	const char *file = p->auto_mode ? "slot-hints" : "classic-hints";
	cleanup_close int fd = -1;
	struct stat st;
	void *m;

	fd = openat(p->dirfd, file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_debug("uid pool: no slot hints ('%s'): %m", file);
		return;
	}
	if (st.st_size < (off_t)HINTS_SIZE && ftruncate(fd, (off_t)HINTS_SIZE) < 0) {
		log_debug("uid pool: cannot size slot hints: %m");
		return;
	}
	m = mmap(NULL, HINTS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		log_debug("uid pool: cannot map slot hints: %m");
		return;
	}
	p->hints = m;
}

static int open_private_dir(int parentfd, const char *path, const char *name,
			    struct nib_error **err)
{
	cleanup_close int fd = -1;
	struct stat st;

	if (mkdirat(parentfd, name, 0700) < 0 && errno != EEXIST)
		return nib_error_errno(err, "cannot create directory '%s'", path);
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return nib_error_errno(err, "cannot open directory '%s'", path);
	if (fstat(fd, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", path);
	/* Anyone else able to plant files here could fake locks or held records. */
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "'%s' must be owned by UID %lu and not writable by group or "
				     "others (owner %lu, mode %04o)",
				     path, (unsigned long)geteuid(), (unsigned long)st.st_uid,
				     (unsigned)(st.st_mode & 07777));
	return TAKE_FD(fd);
}

struct uid_pool *uid_pool_open(const struct settings *s, const struct uid_pool_db *db,
			       struct nib_error **err)
{
	struct uid_pool *p;
	cleanup_free char *held = NULL;
	struct stat st;
	unsigned seed = 0;

	if (uid_pool_validate(s, db, err) < 0)
		return NULL;

	p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	p->dirfd = p->heldfd = p->procfd = p->range_fd = -1;
	p->kill_rounds = KILL_ROUNDS_DEFAULT;
	p->state_dir = xstrdup(s->state_dir);
	p->ranges = xstrdup(UID_POOL_RANGE_REGISTRY);
	p->auto_mode = s->auto_allocate_uids;
	if (p->auto_mode) {
		p->start_id = (uint64_t)s->start_id;
		p->ids_per_build = (uint32_t)s->ids_per_build;
		p->n = (unsigned)((uint64_t)s->id_count / (uint64_t)s->ids_per_build);
	} else if (validate_classic(s, db, &p->members, &p->n, &p->build_gid, err) < 0) {
		pool_free(p);
		return NULL;
	}
	p->dir = path_join(s->state_dir, "userpool");
	p->build_dir =
		s->build_dir[0] != '\0' ? xstrdup(s->build_dir) : path_join(s->state_dir, "builds");
	held = path_join(p->dir, "held");

	if (mkdir_p(s->state_dir, 0755, err) < 0)
		goto fail;
	p->dirfd = open_private_dir(AT_FDCWD, p->dir, p->dir, err);
	if (p->dirfd < 0)
		goto fail;
	p->heldfd = open_private_dir(p->dirfd, held, "held", err);
	if (p->heldfd < 0)
		goto fail;
	p->procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->procfd < 0) {
		nib_error_errno(err, "cannot open '/proc'");
		goto fail;
	}
	if (fstat(p->dirfd, &st) < 0) {
		nib_error_errno(err, "cannot stat '%s'", p->dir);
		goto fail;
	}
	p->mine = registry_get(st.st_dev, st.st_ino, p->auto_mode, p->n);
	map_hints(p);
	/* A random first slot spreads concurrent searches over the pool. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (unsigned)getpid() ^ (unsigned)now_monotonic_usec();
	p->next = seed % p->n;
	return p;

fail:
	nib_error_prefix(err, "opening the UID pool");
	pool_free(p);
	return NULL;
}

int uid_pool_set_proc_dir(struct uid_pool *p, int procfd, struct nib_error **err)
{
	int fd = fcntl(procfd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return nib_error_errno(err, "cannot duplicate descriptor");
	if (p->procfd >= 0)
		close(p->procfd);
	p->procfd = fd;
	return 0;
}

void uid_pool_set_kill_rounds(struct uid_pool *p, unsigned rounds)
{
	p->kill_rounds = rounds ? rounds : 1;
}

void uid_pool_set_range_registry(struct uid_pool *p, const char *dir)
{
	free(p->ranges);
	p->ranges = xstrdup(dir);
}

/* ---- the host-wide registry of ranges (see uid-pool.h) ---- */

/* The first and last ID the pool hands out. */
static void pool_span(const struct uid_pool *p, uint64_t *lo, uint64_t *hi)
{
	if (p->auto_mode) {
		*lo = p->start_id;
		*hi = p->start_id + (uint64_t)p->n * p->ids_per_build - 1;
		return;
	}
	*lo = UINT64_MAX;
	*hi = 0;
	for (unsigned i = 0; i < p->n; i++) {
		if (p->members[i].uid < *lo)
			*lo = p->members[i].uid;
		if (p->members[i].uid > *hi)
			*hi = p->members[i].uid;
	}
}

void uid_pool_conflicts_free(struct uid_pool_conflict *v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++) {
		free(v[i].state_dir);
		free(v[i].registration);
	}
	free(v);
}

/*
 * Go through the other stores' registrations in the registry rfd: remove
 * those nobody holds (their processes died without closing their pools)
 * when clean, whatever their range, so that leftovers do not pile up; and
 * list in *ret the live ones whose range overlaps [lo, hi].  Our own
 * store's is (dev, ino).
 */
static int scan_registry(const struct uid_pool *p, int rfd, uint64_t dev, uint64_t ino, uint64_t lo,
			 uint64_t hi, bool clean, struct uid_pool_conflict **ret, size_t *ret_n,
			 struct nib_error **err)
{
	struct uid_pool_conflict *v = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *d = opendir_dup(rfd);

	if (d == NULL)
		return nib_error_errno(err, "cannot read '%s'", p->ranges);
	while ((de = readdir(d)) != NULL) {
		unsigned long long a, b, dv, in;
		char other[PATH_MAX] = "";
		int end = 0, fd;
		ssize_t r;

		if (sscanf(de->d_name, "%llu-%llu-%llx-%llx%n", &a, &b, &dv, &in, &end) != 4 ||
		    de->d_name[end] != '\0' || (dv == dev && in == ino))
			continue;
		fd = openat(rfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0)
			continue; /* gone meanwhile */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			/* Nobody holds it; under our lock, nobody can be joining it. */
			if (clean)
				(void)unlinkat(rfd, de->d_name, 0);
			close(fd);
			continue;
		}
		if (!(a <= hi && lo <= b)) {
			close(fd);
			continue;
		}
		r = pread(fd, other, sizeof(other) - 1, 0);
		close(fd);
		other[r > 0 ? r : 0] = '\0';
		other[strcspn(other, "\n")] = '\0';
		ALLOC_GROW(v, n + 1, alloc);
		v[n].state_dir = xstrdup(other[0] != '\0' ? other : "unknown");
		v[n].registration = path_join(p->ranges, de->d_name);
		v[n].first = a;
		v[n].last = b;
		n++;
	}
	closedir(d);
	*ret = v;
	*ret_n = n;
	return 0;
}

int uid_pool_conflicts(struct uid_pool *p, struct uid_pool_conflict **ret, size_t *ret_n,
		       struct nib_error **err)
{
	cleanup_close int rfd = -1;
	struct stat st;
	uint64_t lo, hi;

	*ret = NULL;
	*ret_n = 0;
	if (p->n == 0)
		return 0;
	if (fstat(p->dirfd, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", p->dir);
	pool_span(p, &lo, &hi);
	rfd = open(p->ranges, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0)
		return errno == ENOENT ? 0 : nib_error_errno(err, "cannot open '%s'", p->ranges);
	return scan_registry(p, rfd, st.st_dev, st.st_ino, lo, hi, false, ret, ret_n, err);
}

/*
 * Register the pool's range (once per pool; a forked child shares its
 * parent's registration) and check it against the others.  Only for root:
 * nobody else can use ranges of other users' IDs, or kill their processes.
 * What root does here is safe for the same reason: the registry is made
 * by root, mode 0755, so only root adds or removes files in it; files are
 * opened O_NOFOLLOW, only names of the registration form are looked at,
 * and one is removed only under an exclusive lock no live user holds.
 * Their contents (a state directory's path) are only ever quoted in a
 * message, bounded by PATH_MAX.
 */
static int claim_range(struct uid_pool *p, struct nib_error **err)
{
	cleanup_close int rfd = -1;
	cleanup_free char *text = NULL;
	struct uid_pool_conflict *cv = NULL;
	size_t ncv = 0;
	struct stat st;
	uint64_t lo, hi;

	if (p->range_fd >= 0 || geteuid() != 0 || p->n == 0)
		return 0;
	if (fstat(p->dirfd, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", p->dir);
	pool_span(p, &lo, &hi);
	/* Made by the first claim after boot (/run is a tmpfs). */
	rfd = open(p->ranges, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0 && errno == ENOENT) {
		if (mkdir_p(p->ranges, 0755, err) < 0)
			return nib_error_prefix(err, "registering the UID range");
		rfd = open(p->ranges, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (rfd < 0)
		return nib_error_errno(err, "registering the UID range: cannot open '%s'",
				       p->ranges);
	free(p->range_name);
	p->range_name =
		xasprintf("%llu-%llu-%llx-%llx", (unsigned long long)lo, (unsigned long long)hi,
			  (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	text = xasprintf("%s\n", p->state_dir);
	for (int attempt = 0;; attempt++) {
		cleanup_close int fd =
			openat(rfd, p->range_name,
			       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
		struct stat fst;

		if (fd < 0)
			return nib_error_errno(err, "cannot create '%s/%s'", p->ranges,
					       p->range_name);
		/* Blocks only while a leaver or a cleaner holds it exclusively, briefly. */
		if (flock(fd, LOCK_SH) < 0)
			return nib_error_errno(err, "cannot lock '%s/%s'", p->ranges,
					       p->range_name);
		if (fstat(fd, &fst) < 0)
			return nib_error_errno(err, "cannot stat '%s/%s'", p->ranges,
					       p->range_name);
		if (fst.st_nlink == 0 && attempt < 100)
			continue; /* removed meanwhile by its last holder: make it again */
		if (fst.st_size == 0 && pwrite(fd, text, strlen(text), 0) < 0)
			return nib_error_errno(err, "cannot write '%s/%s'", p->ranges,
					       p->range_name);
		p->range_fd = TAKE_FD(fd);
		p->range_pid = getpid();
		break;
	}
	if (scan_registry(p, rfd, st.st_dev, st.st_ino, lo, hi, true, &cv, &ncv, err) < 0) {
		release_range(p);
		return -1;
	}
	if (ncv > 0) {
		nib_error_set(err, NIB_E_CONFIG, 0,
			      "the UIDs %llu-%llu of this store (state directory '%s') overlap "
			      "those of another nib store in use (registered as '%s', state "
			      "directory '%s'): two stores would give builds the same IDs and "
			      "kill each other's builders; give each its own 'start-id' and "
			      "'id-count'",
			      (unsigned long long)lo, (unsigned long long)hi, p->state_dir,
			      cv[0].registration, cv[0].state_dir);
		uid_pool_conflicts_free(cv, ncv);
		release_range(p);
		return -1;
	}
	return 0;
}

int uid_pool_claim(struct uid_pool *p, struct nib_error **err)
{
	return claim_range(p, err);
}

/*
 * Drop the registration; the last holder removes the file.  Only the
 * process that made it: a forked child shares its lock, and taking it
 * exclusively would succeed while the parent still counts on it.
 */
static void release_range(struct uid_pool *p)
{
	if (p->range_fd < 0)
		return;
	if (p->range_pid == getpid() && flock(p->range_fd, LOCK_EX | LOCK_NB) == 0) {
		cleanup_free char *path = path_join(p->ranges, p->range_name);
		(void)unlink(path);
	}
	close(p->range_fd);
	p->range_fd = -1;
}

/* ---- processes ---- */

static bool parse_ids(const char *s, uint64_t out[4])
{
	for (int i = 0; i < 4; i++) {
		char *end;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s < '0' || *s > '9')
			return false;
		errno = 0;
		out[i] = strtoull(s, &end, 10);
		if (errno != 0)
			return false;
		s = end;
	}
	return true;
}

bool uid_pool_parse_status(const char *text, struct uid_pool_proc *ret)
{
	bool have_uid = false, have_gid = false;
	const char *line = text;

	ret->state = '?';
	ret->threads = 1;
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		if (STARTS_WITH(line, "Uid:"))
			have_uid = parse_ids(line + 4, ret->ids);
		else if (STARTS_WITH(line, "Gid:"))
			have_gid = parse_ids(line + 4, ret->ids + 4);
		else if (STARTS_WITH(line, "State:")) {
			const char *v = line + 6;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v != '\0' && *v != '\n')
				ret->state = *v;
		} else if (STARTS_WITH(line, "Threads:")) {
			uint64_t t;
			char num[24];
			const char *v = line + 8;
			size_t k = 0;
			while (*v == ' ' || *v == '\t')
				v++;
			while (k + 1 < sizeof(num) && v[k] >= '0' && v[k] <= '9') {
				num[k] = v[k];
				k++;
			}
			num[k] = '\0';
			if (parse_u64(num, &t) == 0 && t <= UINT32_MAX)
				ret->threads = (uint32_t)t;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return have_uid && have_gid;
}

/* 1 and *ret when the process could be read, 0 when it is gone. */
static int read_status(int procfd, pid_t pid, struct uid_pool_proc *ret, struct nib_error **err)
{
	char path[32], buf[STATUS_MAX];
	cleanup_close int fd = -1;
	size_t len = 0;

	memset(ret, 0, sizeof(*ret));
	snprintf(path, sizeof(path), "%ld/status", (long)pid);
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ESRCH)
			return 0;
		return nib_error_errno(err, "cannot open '/proc/%s'", path);
	}
	while (len < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ESRCH)
				return 0;
			return nib_error_errno(err, "cannot read '/proc/%s'", path);
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	memset(ret, 0, sizeof(*ret));
	ret->pid = pid;
	if (!uid_pool_parse_status(buf, ret))
		return nib_error_set(err, NIB_E_INVALID, 0, "cannot parse '/proc/%s'", path);
	return 1;
}

static bool proc_dead(const struct uid_pool_proc *pr)
{
	/* A zombie group leader whose other threads still run is alive. */
	return pr->state == 'X' || (pr->state == 'Z' && pr->threads <= 1);
}

typedef bool (*proc_match_fn)(const struct uid_pool_proc *pr, const void *ud);

static int scan_procs(int procfd, proc_match_fn match, const void *ud, struct uid_pool_proc **ret,
		      size_t *ret_n, struct nib_error **err)
{
	cleanup_dir DIR *d = NULL;
	cleanup_free struct uid_pool_proc *v = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	int fd;

	fd = openat(procfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nib_error_errno(err, "cannot open '/proc'");
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return nib_error_errno(err, "cannot read '/proc'");
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct uid_pool_proc pr;
		uint64_t pid;
		int r;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' || parse_u64(de->d_name, &pid) < 0 ||
		    pid > INT_MAX)
			continue;
		r = read_status(procfd, (pid_t)pid, &pr, err);
		if (r < 0)
			return -1;
		if (r == 0 || proc_dead(&pr) || !match(&pr, ud))
			continue;
		ALLOC_GROW(v, n + 1, alloc);
		v[n++] = pr;
	}
	if (errno != 0)
		return nib_error_errno(err, "cannot read '/proc'");
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

struct id_range {
	uint64_t lo, count;
	bool gids; /* GIDs belong to the range too (auto mode) */
};

static bool match_range(const struct uid_pool_proc *pr, const void *ud)
{
	const struct id_range *r = ud;

	for (int i = 0; i < (r->gids ? 8 : 4); i++)
		if (pr->ids[i] >= r->lo && pr->ids[i] - r->lo < r->count)
			return true;
	return false;
}

int uid_pool_scan_procs(int procfd, uint64_t lo, uint64_t count, struct uid_pool_proc **ret,
			size_t *ret_n, struct nib_error **err)
{
	struct id_range r = { .lo = lo, .count = count, .gids = true };

	return scan_procs(procfd, match_range, &r, ret, ret_n, err);
}

static struct id_range slot_range(const struct uid_pool *p, unsigned i)
{
	/* Classic builds share the build group's GID: only UIDs are theirs. */
	struct id_range r = { .lo = slot_first_id(p, i),
			      .count = slot_nr_ids(p),
			      .gids = p->auto_mode };
	return r;
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/*
 * SIGKILL one process, but only if it still has an ID in the range: the pid
 * is pinned with a pidfd and checked again, so a pid reused since the scan
 * is never hit.  0 killed or gone, -errno otherwise.
 */
static int kill_checked(int procfd, const struct uid_pool_proc *seen, const struct id_range *range)
{
	cleanup_close int pfd = pidfd_open_(seen->pid);
	cleanup_error struct nib_error *e = NULL;
	struct uid_pool_proc now;
	int r;

	if (pfd < 0) {
		if (errno == ESRCH)
			return 0;
		if (errno != ENOSYS)
			return -errno;
		/* FIXME: drop once the baseline kernel has pidfd_open (5.3) */
		return kill(seen->pid, SIGKILL) < 0 && errno != ESRCH ? -errno : 0;
	}
	r = read_status(procfd, seen->pid, &now, &e);
	if (r < 0)
		return -(e->sys_errno ? e->sys_errno : EIO);
	if (r == 0 || proc_dead(&now) || !match_range(&now, range))
		return 0;
#ifdef SYS_pidfd_send_signal
	if (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		return -errno;
#else
	if (kill(seen->pid, SIGKILL) < 0 && errno != ESRCH)
		return -errno;
#endif
	return 0;
}

/* Kill every process of the slot's range until none is left, in bounded rounds. */
static int kill_slot_procs(struct uid_pool *p, unsigned i, unsigned *ret_killed,
			   struct nib_error **err)
{
	struct id_range range = slot_range(p, i);
	cleanup_free pid_t *hit = NULL; /* distinct pids signalled, for the count */
	size_t n_hit = 0, alloc_hit = 0;
	uint64_t pause = 1000;
	pid_t self = getpid();

	for (unsigned round = 0;; round++) {
		cleanup_free struct uid_pool_proc *v = NULL;
		size_t n = 0;
		int last_errno = 0;
		pid_t last_pid = 0;
		char last_state = '?';

		if (scan_procs(p->procfd, match_range, &range, &v, &n, err) < 0)
			return -1;
		if (n == 0) {
			*ret_killed = (unsigned)n_hit;
			return 0;
		}
		for (size_t k = 0; k < n; k++) {
			int r;
			if (v[k].pid == self)
				return nib_error_set(
					err, NIB_E_INVALID, 0,
					"this process (pid %ld) itself has an ID in %llu-%llu",
					(long)self, (unsigned long long)range.lo,
					(unsigned long long)(range.lo + range.count - 1));
			r = kill_checked(p->procfd, &v[k], &range);
			if (r < 0) {
				last_errno = -r;
			} else {
				/* A killed process may still show in the next scan: count it once. */
				size_t h = 0;
				while (h < n_hit && hit[h] != v[k].pid)
					h++;
				if (h == n_hit) {
					ALLOC_GROW(hit, n_hit + 1, alloc_hit);
					hit[n_hit++] = v[k].pid;
				}
			}
			last_pid = v[k].pid;
			last_state = v[k].state;
		}
		if (round + 1 >= p->kill_rounds)
			return nib_error_set(
				err, NIB_E_SYS, last_errno,
				"%zu process(es) with IDs in %llu-%llu survive SIGKILL "
				"(e.g. pid %ld, state %c)",
				n, (unsigned long long)range.lo,
				(unsigned long long)(range.lo + range.count - 1), (long)last_pid,
				last_state);
		{
			struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)pause * 1000 };
			nanosleep(&ts, NULL);
		}
		pause = pause * 2 > KILL_PAUSE_MAX_USEC ? KILL_PAUSE_MAX_USEC : pause * 2;
	}
}

/* ---- build directories ---- */

/* The part of path below root, or NULL when path is not strictly inside root. */
static const char *path_below(const char *path, const char *root)
{
	size_t rl = strlen(root);
	const char *rest, *c;

	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	if (strncmp(path, root, rl) != 0 || path[rl] != '/')
		return NULL;
	rest = path + rl + 1;
	if (*rest == '\0')
		return NULL;
	/* Only plain components: no "", ".", "..". */
	for (c = rest; *c != '\0';) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return NULL;
		c += len + (slash ? 1 : 0);
		if (slash && *c == '\0')
			return NULL;
	}
	return rest;
}

/*
 * Remove a recorded build directory.  The path must lie under build_dir and
 * is walked from there without following any symbolic link.  A path that
 * does not exist is fine.  *ret_removed tells whether anything was there.
 */
static int remove_build_dir(const struct uid_pool *p, const char *path, bool *ret_removed,
			    struct nib_error **err)
{
	cleanup_close int cur = -1;
	cleanup_free char *rel = NULL;
	const char *below;
	char *comp, *slash;
	struct stat st;

	*ret_removed = false;
	if (path == NULL || *path == '\0')
		return 0;
	if (lstat(path, &st) < 0 && errno == ENOENT)
		return 0;
	below = path_below(path, p->build_dir);
	if (below == NULL)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "recorded build directory '%s' is not inside build-dir '%s'; "
				     "not removing it (remove it by hand)",
				     path, p->build_dir);
	cur = open(p->build_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot open build-dir '%s'", p->build_dir);
	}
	rel = xstrdup(below);
	comp = rel;
	while ((slash = strchr(comp, '/')) != NULL) {
		int next;
		*slash = '\0';
		next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			if (errno == ENOENT)
				return 0;
			return nib_error_errno(err,
					       "cannot open '%s' in recorded build directory '%s' "
					       "without following links",
					       comp, path);
		}
		close(cur);
		cur = next;
		comp = slash + 1;
	}
	if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return nib_error_errno(err, "cannot stat build directory '%s'", path);
	}
	if (rm_rf_at(cur, comp, err) < 0)
		return nib_error_prefix(err, "cannot remove build directory '%s'", path);
	if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return nib_error_set(err, NIB_E_SYS, 0, "build directory '%s' still exists", path);
	*ret_removed = true;
	return 0;
}

/* ---- slots ---- */

static struct uid_pool_slot *slot_new(struct uid_pool *p, unsigned i)
{
	struct uid_pool_slot *s = xcalloc(1, sizeof(*s));
	struct uid_pool_slot_priv *v = xcalloc(1, sizeof(*v));

	v->pool = p;
	p->refs++;
	v->lock_fd = v->rec_fd = -1;
	slot_name(p, i, v->name);
	s->priv = v;
	s->index = i;
	s->name = v->name;
	s->first_uid = (uid_t)slot_first_id(p, i);
	s->first_gid = p->auto_mode ? (gid_t)s->first_uid : p->build_gid;
	s->nr_ids = slot_nr_ids(p);
	if (!p->auto_mode) {
		s->user = p->members[i].user;
		s->groups = p->members[i].groups;
		s->n_groups = p->members[i].n_groups;
	}
	return s;
}

/* Free the object; closes what it still owns without unlocking anything. */
static void slot_free(struct uid_pool_slot *s)
{
	struct uid_pool_slot_priv *v;

	if (s == NULL)
		return;
	v = s->priv;
	if (v->lock_fd >= 0)
		close(v->lock_fd);
	if (v->rec_fd >= 0)
		close(v->rec_fd);
	record_clear(&v->rec);
	pool_unref(v->pool);
	free(v);
	free(s);
}

DEFINE_CLEANUP_FUNC(struct uid_pool_slot, slot_free)
#define cleanup_slot __attribute__((cleanup(slot_freep)))

const char *uid_pool_slot_get_info(const struct uid_pool_slot *slot, const char *key)
{
	return record_get(&slot->priv->rec, key);
}

/*
 * Drop the lock, then close the record descriptor: the order makes the
 * IN_CLOSE_WRITE that wakes waiters come after the slot is really free.
 */
static void slot_unlock(struct uid_pool_slot_priv *v)
{
	if (v->lock_fd >= 0) {
		flock(v->lock_fd, LOCK_UN);
		close(v->lock_fd);
		v->lock_fd = -1;
	}
	if (v->rec_fd >= 0) {
		close(v->rec_fd);
		v->rec_fd = -1;
	}
}

static bool held_exists(const struct uid_pool *p, const char *name)
{
	return faccessat(p->heldfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

static int write_held(struct uid_pool *p, const struct uid_pool_slot *s, const char *reason,
		      struct nib_error **err)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	const struct record *rec = &s->priv->rec;
	const char *v;

	strbuf_addstr(&sb, "reason=");
	for (const char *c = reason; *c; c++)
		strbuf_addch(&sb, *c == '\n' ? ' ' : *c);
	strbuf_addf(&sb, "\nsince=%lld\n", (long long)(now_realtime_usec() / 1000000));
	if ((v = record_get(rec, UID_POOL_KEY_PID)) != NULL)
		strbuf_addf(&sb, "holder=%s\n", v);
	if ((v = record_get(rec, UID_POOL_KEY_DERIVATION)) != NULL)
		strbuf_addf(&sb, "derivation=%s\n", v);
	if (write_file_atomic_at(p->heldfd, s->name, sb.buf, sb.len, 0600, true, err) < 0)
		return nib_error_prefix(err, "recording slot %u as held", s->index);
	return 0;
}

/* Keep a slot locked for the rest of this process (see uid_pool_release). */
static void keep_stuck(struct uid_pool_slot_priv *v)
{
	ALLOC_GROW(stuck_fds, n_stuck + 2, alloc_stuck);
	stuck_fds[n_stuck++] = TAKE_FD(v->lock_fd);
	if (v->rec_fd >= 0)
		stuck_fds[n_stuck++] = TAKE_FD(v->rec_fd);
}

/*
 * The cleanup steps: the caller's hook, the process scan, the build
 * directory.  All run even when one fails; the first error is returned.
 * detail (may be NULL) collects what was done.
 */
static int run_cleanup(struct uid_pool *p, const struct uid_pool_slot *s,
		       const struct uid_pool_cleanup *c, struct strbuf *detail,
		       struct nib_error **err)
{
	cleanup_error struct nib_error *first = NULL;
	struct nib_error *e = NULL;
	bool hook_ok = true, removed = false;
	unsigned killed = 0;
	const char *bd;

	if (c != NULL && c->fn != NULL && c->fn(s, c->userdata, &e) < 0) {
		hook_ok = false;
		if (e == NULL)
			nib_error_set(&e, NIB_E_SYS, 0, "cleanup hook failed");
		nib_error_move(&first, &e);
	}
	if (!(c != NULL && (c->flags & UID_POOL_CLEANUP_PROCS_VERIFIED) && hook_ok)) {
		if (kill_slot_procs(p, s->index, &killed, &e) < 0) {
			if (first == NULL)
				nib_error_move(&first, &e);
			nib_error_clear(&e);
		} else if (killed > 0 && detail != NULL) {
			strbuf_addf(detail, "%skilled %u process(es)", detail->len ? ", " : "",
				    killed);
		}
	}
	bd = record_get(&s->priv->rec, UID_POOL_KEY_BUILD_DIR);
	if (remove_build_dir(p, bd, &removed, &e) < 0) {
		if (first == NULL)
			nib_error_move(&first, &e);
		nib_error_clear(&e);
	} else if (removed && detail != NULL) {
		strbuf_addf(detail, "%sremoved build directory '%s'", detail->len ? ", " : "", bd);
	}
	if (first != NULL)
		return nib_error_move(err, &first);
	return 0;
}

/* Open the record descriptor of a slot whose lock we hold, and read the record. */
static int slot_load_record(struct uid_pool *p, struct uid_pool_slot_priv *v, char **ret_text,
			    struct nib_error **err)
{
	v->rec_fd = openat(p->dirfd, v->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (v->rec_fd < 0)
		return nib_error_errno(err, "cannot open slot file '%s/%s'", p->dir, v->name);
	if (pread_all(v->rec_fd, ret_text, err) < 0)
		return nib_error_prefix(err, "'%s/%s'", p->dir, v->name);
	record_parse(&v->rec, *ret_text);
	return 0;
}

/*
 * Clean a locked slot that carries leftovers.  On failure mark it held
 * (keeping the lock for good when even that fails).  Returns 0 cleaned,
 * -1 held; *err says why.
 */
static int clean_or_hold(struct uid_pool *p, struct uid_pool_slot *s,
			 const struct uid_pool_cleanup *c, struct strbuf *detail,
			 struct nib_error **err)
{
	struct uid_pool_slot_priv *v = s->priv;
	cleanup_error struct nib_error *ce = NULL;

	if (run_cleanup(p, s, c, detail, &ce) == 0) {
		if (ftruncate(v->rec_fd, 0) < 0)
			log_debug("uid pool: cannot empty '%s': %m", v->name);
		record_clear(&v->rec);
		return 0;
	}
	if (write_held(p, s, ce->msg, err) < 0) {
		nib_error_prefix(err,
				 "cleanup of slot %u failed (%s) and it cannot be marked held, so "
				 "it stays locked until this process exits",
				 s->index, ce->msg);
		keep_stuck(v);
		bit_put(p->mine->bits, s->index, true);
		return -1;
	}
	hint_set(p, s->index, false, true);
	return nib_error_move(err, &ce);
}

enum try_result {
	TRY_BUSY,
	TRY_HELD,
	TRY_GOT
};

static int try_slot(struct uid_pool *p, unsigned i, const struct uid_pool_acquire_opts *o,
		    struct uid_pool_slot **ret, struct nib_error **err)
{
	cleanup_slot struct uid_pool_slot *s = slot_new(p, i);
	struct uid_pool_slot_priv *v = s->priv;
	cleanup_free char *text = NULL;
	char num[32];

	v->lock_fd = openat(p->dirfd, v->name,
			    O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (v->lock_fd < 0)
		return nib_error_errno(err, "cannot open slot file '%s/%s'", p->dir, v->name);
	if (flock(v->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK || errno == EINTR)
			return TRY_BUSY;
		return nib_error_errno(err, "cannot lock '%s/%s'", p->dir, v->name);
	}
	if (held_exists(p, v->name)) {
		hint_set(p, i, false, true);
		slot_unlock(v);
		return TRY_HELD;
	}
	if (slot_load_record(p, v, &text, err) < 0) {
		slot_unlock(v);
		return -1;
	}
	if (!text_is_blank(text)) {
		cleanup_error struct nib_error *ce = NULL;
		/* The previous holder died without releasing: clean up after it first. */
		log_debug("uid pool: slot %u was left by pid %s, cleaning it", i,
			  record_get(&v->rec, UID_POOL_KEY_PID) ?: "?");
		if (clean_or_hold(p, s, o->stale_cleanup, NULL, &ce) < 0) {
			log_debug("uid pool: slot %u: %s", i, ce->msg);
			slot_unlock(v);
			return TRY_HELD;
		}
	}
	record_clear(&v->rec);
	snprintf(num, sizeof(num), "%ld", (long)getpid());
	record_set(&v->rec, UID_POOL_KEY_PID, num);
	record_set(&v->rec, UID_POOL_KEY_DERIVATION, o->derivation ? o->derivation : "");
	snprintf(num, sizeof(num), "%lld", (long long)(now_realtime_usec() / 1000000));
	record_set(&v->rec, UID_POOL_KEY_SINCE, num);
	if (record_write(v->rec_fd, &v->rec, err) < 0) {
		if (ftruncate(v->rec_fd, 0) < 0)
			log_debug("uid pool: cannot empty '%s': %m", v->name);
		slot_unlock(v);
		return nib_error_prefix(err, "'%s/%s'", p->dir, v->name);
	}
	v->owner = getpid();
	hint_set(p, i, true, false);
	bit_put(p->mine->bits, i, true);
	*ret = TAKE_PTR(s);
	return TRY_GOT;
}

/*
 * The first offset k' >= k from start whose slot neither this process holds
 * nor the hints call busy or held; p->n when there is none.
 */
static unsigned hinted_free(const struct uid_pool *p, unsigned start, unsigned k)
{
	while (k < p->n) {
		unsigned i = (start + k) % p->n;
		if (i % 64 == 0 && i + 64 <= p->n && k + 64 <= p->n) {
			uint64_t taken = p->mine->bits[i / 64];
			if (p->hints != NULL)
				taken |= __atomic_load_n(&p->hints[i / 64], __ATOMIC_RELAXED) |
					 __atomic_load_n(&p->hints[HINT_WORDS + i / 64],
							 __ATOMIC_RELAXED);
			if (taken == UINT64_MAX) {
				k += 64;
				continue;
			}
		}
		if (!is_mine(p, i) && !hint_busy(p, i) && !hint_held(p, i))
			return k;
		k++;
	}
	return p->n;
}

/* 1 with *ret, 0 when nothing is free (counts filled), -1 on error. */
static int try_all(struct uid_pool *p, const struct uid_pool_acquire_opts *o,
		   struct uid_pool_slot **ret, unsigned *ret_busy, unsigned *ret_held,
		   struct nib_error **err)
{
	unsigned busy = 0, held = 0, start = p->next % p->n;

	/* First the slots the hints call free, each at most once. */
	for (unsigned k = 0; (k = hinted_free(p, start, k)) < p->n; k++) {
		unsigned i = (start + k) % p->n;
		int r = try_slot(p, i, o, ret, err);
		if (r < 0)
			return -1;
		if (r == TRY_GOT) {
			p->next = (i + 1) % p->n;
			return 1;
		}
	}
	/* Then every slot: hints go stale when a holder dies. */
	for (unsigned k = 0; k < p->n; k++) {
		unsigned i = (start + k) % p->n;
		int r;
		if (is_mine(p, i)) {
			busy++;
			continue;
		}
		r = try_slot(p, i, o, ret, err);
		if (r < 0)
			return -1;
		if (r == TRY_GOT) {
			p->next = (i + 1) % p->n;
			return 1;
		}
		if (r == TRY_HELD)
			held++;
		else
			busy++;
	}
	*ret_busy = busy;
	*ret_held = held;
	return 0;
}

static int watch_pool(const struct uid_pool *p)
{
	cleanup_close int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	cleanup_free char *held = path_join(p->dir, "held");

	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, p->dir, IN_CLOSE_WRITE) < 0)
		return -1;
	if (inotify_add_watch(fd, held, IN_DELETE | IN_MOVED_FROM) < 0)
		return -1;
	return TAKE_FD(fd);
}

/* Read and drop every queued event. */
static void drain(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int uid_pool_acquire(struct uid_pool *p, const struct uid_pool_acquire_opts *opts,
		     struct uid_pool_slot **ret_slot, struct nib_error **err)
{
	static const struct uid_pool_acquire_opts defaults = { 0 };
	const struct uid_pool_acquire_opts *o = opts ? opts : &defaults;
	cleanup_close int ifd = -1;
	uint64_t start = now_monotonic_usec();
	uint64_t deadline = o->timeout_usec ? start + o->timeout_usec : 0;
	bool watching = false, waited = false, recheck = false;

	check_fork(p);
	if (claim_range(p, err) < 0)
		return nib_error_prefix(err, "acquiring a UID slot");
	for (;;) {
		struct uid_pool_slot *s = NULL;
		unsigned busy = 0, held = 0;
		uint64_t now;
		int r, ms;

		r = try_all(p, o, &s, &busy, &held, err);
		if (r < 0)
			return nib_error_prefix(err, "acquiring a UID slot");
		if (r > 0) {
			*ret_slot = s;
			return 0;
		}
		if (o->no_wait)
			return nib_error_set(err, NIB_E_BUSY, 0,
					     "no free UID slot: %u busy, %u held, of %u", busy,
					     held, p->n);
		if (!watching) {
			/* Watch first, then scan again: no release can fall in between. */
			watching = true;
			ifd = watch_pool(p);
			if (ifd < 0)
				log_debug("uid pool: no inotify (%m), rescanning every %d ms",
					  WAIT_NO_INOTIFY_MS);
			continue;
		}
		if (!waited && o->on_wait != NULL)
			o->on_wait(o->userdata, p->n, busy, held);
		waited = true;
		now = now_monotonic_usec();
		if (deadline != 0 && now >= deadline)
			return nib_error_set(err, NIB_E_TIMEOUT, 0,
					     "no UID slot became free within %.1f s (%u busy, %u "
					     "held, of %u)",
					     (double)o->timeout_usec / 1e6, busy, held, p->n);
		ms = ifd < 0 ? WAIT_NO_INOTIFY_MS : recheck ? WAIT_RECHECK_MS : WAIT_SAFETY_MS;
		if (deadline != 0 && (deadline - now) / 1000 + 1 < (uint64_t)ms)
			ms = (int)((deadline - now) / 1000 + 1);
		if (ifd < 0) {
			poll(NULL, 0, ms);
			continue;
		}
		{
			struct pollfd pfd = { .fd = ifd, .events = POLLIN };
			r = poll(&pfd, 1, ms);
		}
		if (r < 0 && errno != EINTR)
			return nib_error_errno(err, "cannot wait for a UID slot");
		if (r > 0) {
			drain(ifd);
			/* A dying holder's close can come just before its lock goes. */
			recheck = true;
		} else {
			recheck = false;
		}
	}
}

int uid_pool_slot_set_infos(struct uid_pool_slot *slot, const char *const *keys,
			    const char *const *values, size_t n, struct nib_error **err)
{
	struct uid_pool_slot_priv *v = slot->priv;

	if (v->owner != getpid() || v->rec_fd < 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "slot %u is not held by this process",
				     slot->index);
	for (size_t i = 0; i < n; i++) {
		const char *key = keys[i], *value = values[i];

		if (!valid_key(key) || STREQ(key, UID_POOL_KEY_PID) ||
		    STREQ(key, UID_POOL_KEY_SINCE))
			return nib_error_set(err, NIB_E_INVALID, 0, "invalid slot record key '%s'",
					     key);
		if (value != NULL &&
		    (strchr(value, '\n') != NULL || strlen(value) > INFO_VALUE_MAX))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "invalid value for slot record key '%s': newline or "
					     "longer than %zu bytes",
					     key, INFO_VALUE_MAX);
	}
	for (size_t i = 0; i < n; i++)
		record_set(&v->rec, keys[i], values[i]);
	if (record_write(v->rec_fd, &v->rec, err) < 0)
		return nib_error_prefix(err, "'%s/%s'", v->pool->dir, v->name);
	return 0;
}

int uid_pool_slot_set_info(struct uid_pool_slot *slot, const char *key, const char *value,
			   struct nib_error **err)
{
	return uid_pool_slot_set_infos(slot, &key, &value, 1, err);
}

int uid_pool_slot_drop_privileges(const struct uid_pool_slot *slot, struct nib_error **err)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int n;

	/* Groups first: after setresuid() we could no longer change them. */
	if (setgroups(slot->n_groups, slot->groups) < 0)
		return nib_error_errno(err, "cannot set the supplementary groups of slot %u",
				       slot->index);
	if (setresgid(slot->first_gid, slot->first_gid, slot->first_gid) < 0)
		return nib_error_errno(err, "cannot switch to GID %lu",
				       (unsigned long)slot->first_gid);
	if (setresuid(slot->first_uid, slot->first_uid, slot->first_uid) < 0)
		return nib_error_errno(err, "cannot switch to UID %lu",
				       (unsigned long)slot->first_uid);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return nib_error_errno(err, "cannot read back the credentials");
	n = getgroups(0, NULL);
	if (ru != slot->first_uid || eu != slot->first_uid || su != slot->first_uid ||
	    rg != slot->first_gid || eg != slot->first_gid || sg != slot->first_gid ||
	    n != (int)slot->n_groups)
		return nib_error_set(err, NIB_E_SYS, 0,
				     "credentials of slot %u did not take effect", slot->index);
	return 0;
}

int uid_pool_slot_kill_procs(struct uid_pool_slot *slot, unsigned *ret_killed,
			     struct nib_error **err)
{
	unsigned killed = 0;

	if (kill_slot_procs(slot->priv->pool, slot->index, &killed, err) < 0)
		return -1;
	if (ret_killed != NULL)
		*ret_killed = killed;
	return 0;
}

int uid_pool_release(struct uid_pool_slot *slot, const struct uid_pool_cleanup *cleanup,
		     struct nib_error **err)
{
	cleanup_slot struct uid_pool_slot *s = slot;
	struct uid_pool_slot_priv *v;
	struct uid_pool *p;

	if (s == NULL)
		return 0;
	v = s->priv;
	p = v->pool;
	if (v->owner != getpid())
		/* The lock is shared with the process that acquired it; leave it alone. */
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "slot %u was acquired by process %ld, not by this one",
				     s->index, (long)v->owner);
	if (clean_or_hold(p, s, cleanup, NULL, err) < 0) {
		if (v->lock_fd < 0) /* kept locked for good */
			return -1;
		bit_put(p->mine->bits, s->index, false);
		slot_unlock(v);
		return nib_error_prefix(err, "slot %u is now held", s->index);
	}
	hint_set(p, s->index, false, false);
	bit_put(p->mine->bits, s->index, false);
	slot_unlock(v);
	return 0;
}

int uid_pool_release_held(struct uid_pool *p, unsigned index,
			  const struct uid_pool_cleanup *cleanup, struct nib_error **err)
{
	cleanup_slot struct uid_pool_slot *s = NULL;
	struct uid_pool_slot_priv *v;
	cleanup_free char *text = NULL;
	cleanup_error struct nib_error *ce = NULL;

	check_fork(p);
	if (index >= p->n)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "no slot %u (the pool has %u)", index,
				     p->n);
	if (claim_range(p, err) < 0)
		return nib_error_prefix(err, "releasing slot %u", index);
	s = slot_new(p, index);
	v = s->priv;
	if (!held_exists(p, v->name))
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "slot %u is not held", index);
	if (is_mine(p, index))
		return nib_error_set(err, NIB_E_BUSY, 0, "slot %u is held by this process", index);
	v->lock_fd = openat(p->dirfd, v->name,
			    O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (v->lock_fd < 0)
		return nib_error_errno(err, "cannot open slot file '%s/%s'", p->dir, v->name);
	if (flock(v->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return nib_error_set(err, NIB_E_BUSY, 0,
					     "slot %u is locked by a running process; try again "
					     "when it has finished",
					     index);
		return nib_error_errno(err, "cannot lock '%s/%s'", p->dir, v->name);
	}
	if (!held_exists(p, v->name)) {
		slot_unlock(v);
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "slot %u is not held", index);
	}
	if (slot_load_record(p, v, &text, err) < 0) {
		slot_unlock(v);
		return -1;
	}
	if (run_cleanup(p, s, cleanup, NULL, &ce) < 0) {
		cleanup_error struct nib_error *we = NULL;
		if (write_held(p, s, ce->msg, &we) < 0)
			log_debug("uid pool: %s", we->msg);
		slot_unlock(v);
		nib_error_move(err, &ce);
		return nib_error_prefix(err, "slot %u stays held", index);
	}
	if (unlinkat(p->heldfd, v->name, 0) < 0 && errno != ENOENT) {
		nib_error_errno(err, "cannot remove '%s/held/%s'", p->dir, v->name);
		slot_unlock(v);
		return -1;
	}
	if (ftruncate(v->rec_fd, 0) < 0)
		log_debug("uid pool: cannot empty '%s': %m", v->name);
	hint_set(p, index, false, false);
	slot_unlock(v);
	return 0;
}

struct pool_procs {
	const struct uid_pool *p;
	struct uid_pool_proc *v;
	size_t n;
};

static bool match_pool(const struct uid_pool_proc *pr, const void *ud)
{
	const struct uid_pool *p = ud;

	if (p->auto_mode) {
		struct id_range r = { .lo = p->start_id,
				      .count = (uint64_t)p->n * p->ids_per_build,
				      .gids = true };
		return match_range(pr, &r);
	}
	for (unsigned i = 0; i < p->n; i++) {
		struct id_range r = slot_range(p, i);
		if (match_range(pr, &r))
			return true;
	}
	return false;
}

static bool slot_has_procs(const struct uid_pool *p, unsigned i, const struct uid_pool_proc *v,
			   size_t n)
{
	struct id_range r = slot_range(p, i);

	for (size_t k = 0; k < n; k++)
		if (match_range(&v[k], &r))
			return true;
	return false;
}

int uid_pool_reclaim(struct uid_pool *p, const struct uid_pool_cleanup *cleanup,
		     uid_pool_reclaim_fn on_slot, void *userdata,
		     struct uid_pool_reclaim_result *ret_result, struct nib_error **err)
{
	struct uid_pool_reclaim_result res = { 0 };
	cleanup_free struct uid_pool_proc *procs = NULL;
	size_t nprocs = 0;

	check_fork(p);
	if (claim_range(p, err) < 0)
		return nib_error_prefix(err, "reclaiming UID slots");
	if (scan_procs(p->procfd, match_pool, p, &procs, &nprocs, err) < 0)
		return nib_error_prefix(err, "reclaiming UID slots");

	for (unsigned i = 0; i < p->n; i++) {
		cleanup_slot struct uid_pool_slot *s = NULL;
		cleanup_free char *text = NULL;
		cleanup_strbuf struct strbuf detail = STRBUF_INIT;
		cleanup_error struct nib_error *e = NULL;
		struct uid_pool_slot_priv *v;
		bool procs_left;

		if (is_mine(p, i)) {
			res.n_busy++;
			continue;
		}
		procs_left = slot_has_procs(p, i, procs, nprocs);
		s = slot_new(p, i);
		v = s->priv;
		v->lock_fd = openat(p->dirfd, v->name,
				    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
					    (procs_left ? O_CREAT : 0),
				    0600);
		if (v->lock_fd < 0) {
			if (errno == ENOENT)
				continue; /* never used, nothing running */
			return nib_error_errno(err, "cannot open slot file '%s/%s'", p->dir,
					       v->name);
		}
		if (flock(v->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				return nib_error_errno(err, "cannot lock '%s/%s'", p->dir, v->name);
			res.n_busy++;
			continue;
		}
		if (held_exists(p, v->name)) {
			cleanup_free char *held = NULL;
			struct record hr = { 0 };
			if (read_file_at(p->heldfd, v->name, RECORD_MAX, &held, NULL, &e) == 0)
				record_parse(&hr, held);
			hint_set(p, i, false, true);
			res.n_held++;
			if (on_slot != NULL)
				on_slot(userdata, s, UID_POOL_RECLAIM_STILL_HELD,
					record_get(&hr, "reason") ?: "unknown reason");
			record_clear(&hr);
			slot_unlock(v);
			continue;
		}
		if (slot_load_record(p, v, &text, err) < 0) {
			slot_unlock(v);
			return -1;
		}
		if (text_is_blank(text) && !procs_left) {
			hint_set(p, i, false, false); /* repair a dead holder's busy hint */
			slot_unlock(v);
			continue;
		}
		if (clean_or_hold(p, s, cleanup, &detail, &e) == 0) {
			res.n_cleaned++;
			hint_set(p, i, false, false);
			if (on_slot != NULL)
				on_slot(userdata, s, UID_POOL_RECLAIM_CLEANED,
					detail.len ? detail.buf : "emptied a stale record");
		} else {
			res.n_held++;
			if (on_slot != NULL)
				on_slot(userdata, s, UID_POOL_RECLAIM_HELD, e->msg);
		}
		slot_unlock(v);
	}
	if (ret_result != NULL)
		*ret_result = res;
	return 0;
}

const char *uid_pool_state_name(enum uid_pool_state s)
{
	switch (s) {
	case UID_POOL_FREE:
		return "free";
	case UID_POOL_STALE:
		return "stale";
	case UID_POOL_BUSY:
		return "busy";
	case UID_POOL_HELD:
		return "held";
	case _UID_POOL_STATE_MAX:
		break;
	}
	return "?";
}

static char *dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

int uid_pool_list(struct uid_pool *p, struct uid_pool_entry **ret_entries, size_t *ret_n,
		  struct nib_error **err)
{
	struct uid_pool_entry *v = xcalloc(p->n, sizeof(*v));

	check_fork(p);
	for (unsigned i = 0; i < p->n; i++) {
		struct uid_pool_entry *en = &v[i];
		cleanup_close int fd = -1;
		cleanup_free char *text = NULL, *held = NULL;
		cleanup_error struct nib_error *e = NULL;
		struct record rec = { 0 }, hr = { 0 };
		char name[32];
		bool got = false;

		slot_name(p, i, name);
		en->index = i;
		en->name = xstrdup(name);
		en->first_uid = slot_first_id(p, i);
		en->first_gid = p->auto_mode ? en->first_uid : p->build_gid;
		en->nr_ids = slot_nr_ids(p);
		en->user = p->auto_mode ? NULL : xstrdup(p->members[i].user);
		if (read_file_at(p->heldfd, name, RECORD_MAX, &held, NULL, &e) == 0) {
			record_parse(&hr, held);
			en->state = UID_POOL_HELD;
			en->reason = xstrdup(record_get(&hr, "reason") ?: "unknown reason");
			en->held_since = parse_i64_or(record_get(&hr, "since"), 0);
		} else if (e->sys_errno != ENOENT) {
			uid_pool_entries_free(v, i + 1);
			return nib_error_move(err, &e);
		} else {
			nib_error_clear(&e);
		}
		fd = openat(p->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0 && errno != ENOENT) {
			nib_error_errno(err, "cannot open slot file '%s/%s'", p->dir, name);
			uid_pool_entries_free(v, i + 1);
			record_clear(&hr);
			return -1;
		}
		if (fd >= 0) {
			/* Our own slots would conflict with our new descriptor: do not try. */
			got = !is_mine(p, i) && flock(fd, LOCK_EX | LOCK_NB) == 0;
			en->locked = !got;
			/* With the lock taken the record is stable; otherwise it may be mid-write. */
			if (pread_all(fd, &text, &e) == 0 && text != NULL)
				record_parse(&rec, text);
			if (got) {
				int w;
				flock(fd, LOCK_UN);
				/* Wake any waiter that skipped this slot while we held it. */
				w = openat(p->dirfd, name,
					   O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
				if (w >= 0)
					close(w);
			}
		}
		if (en->state != UID_POOL_HELD) {
			if (en->locked)
				en->state = UID_POOL_BUSY;
			else if (text != NULL && !text_is_blank(text))
				en->state = UID_POOL_STALE;
			else
				en->state = UID_POOL_FREE;
		}
		if (rec.n > 0) {
			en->pid = (pid_t)parse_i64_or(record_get(&rec, UID_POOL_KEY_PID), 0);
			en->derivation = dup_or_null(record_get(&rec, UID_POOL_KEY_DERIVATION));
			en->since = parse_i64_or(record_get(&rec, UID_POOL_KEY_SINCE), 0);
			en->build_dir = dup_or_null(record_get(&rec, UID_POOL_KEY_BUILD_DIR));
			en->cgroup = dup_or_null(record_get(&rec, UID_POOL_KEY_CGROUP));
		} else if (en->state == UID_POOL_HELD) {
			en->pid = (pid_t)parse_i64_or(record_get(&hr, "holder"), 0);
			en->derivation = dup_or_null(record_get(&hr, "derivation"));
		}
		record_clear(&rec);
		record_clear(&hr);
	}
	*ret_entries = v;
	*ret_n = p->n;
	return 0;
}

void uid_pool_entries_free(struct uid_pool_entry *entries, size_t n)
{
	if (entries == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(entries[i].name);
		free(entries[i].user);
		free(entries[i].derivation);
		free(entries[i].build_dir);
		free(entries[i].cgroup);
		free(entries[i].reason);
	}
	free(entries);
}

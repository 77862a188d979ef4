/* verify.c - check (and where it is safe, repair) the local store. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "hash.h"
#include "local-store-internal.h"
#include "log.h"
#include "nar.h"
#include "path.h"
#include "util.h"
#include "banned.h"

struct row {
	int64_t id;
	char *path;
	char *hash;
	int64_t nar_size;
};

struct rows {
	struct row *v;
	size_t n, alloc;
};

static int collect_row(void *ud, const struct db_path_row *r, struct nib_error **err)
{
	struct rows *rows = ud;

	(void)err;
	ALLOC_GROW(rows->v, rows->n + 1, rows->alloc);
	rows->v[rows->n].id = r->id;
	rows->v[rows->n].path = xstrdup(r->path);
	rows->v[rows->n].hash = xstrdup(r->hash ? r->hash : "");
	rows->v[rows->n].nar_size = r->nar_size;
	rows->n++;
	return 0;
}

static void rows_release(struct rows *rows)
{
	for (size_t i = 0; i < rows->n; i++) {
		free(rows->v[i].path);
		free(rows->v[i].hash);
	}
	free(rows->v);
}

struct verifier {
	struct local_store *ls;
	unsigned flags;
	void (*fn)(void *userdata, const struct store_verify_problem *p);
	void *userdata;
	struct store_verify_result res;
};

static void report(struct verifier *v, const char *path, const char *kind, bool repaired,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(struct verifier *v, const char *path, const char *kind, bool repaired,
		   const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	struct store_verify_problem p = { path, kind, NULL, repaired };
	va_list ap;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	p.message = msg;
	v->res.problems++;
	if (repaired)
		v->res.repaired++;
	if (v->fn != NULL)
		v->fn(v->userdata, &p);
}

/* Invalidate a path whose contents are gone, if nothing else refers to it. */
static int repair_missing(struct verifier *v, const struct row *row, char **ret_blocker,
			  struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;
	cleanup_strv char **referrers = NULL;

	if (db_txn_begin(v->ls->db, true, &t, err) < 0 ||
	    db_referrers(v->ls->db, row->id, &referrers, err) < 0)
		return -1;
	for (char **q = referrers; *q; q++)
		if (!STREQ(*q, row->path)) {
			*ret_blocker = xstrdup(*q);
			return 0;
		}
	if (db_path_delete(v->ls->db, row->id, err) < 0)
		return -1;
	if (db_txn_commit(TAKE_PTR(t), err) < 0)
		return -1;
	return 1;
}

static int check_path(struct verifier *v, const struct row *row, struct nib_error **err)
{
	struct local_store *ls = v->ls;
	bool repair = (v->flags & STORE_VERIFY_REPAIR) != 0;
	cleanup_free char *real = NULL, *problem = NULL;
	cleanup_error struct nib_error *e = NULL;
	struct store_path sp;
	struct stat st;
	int r;

	v->res.checked++;
	if (store_path_parse(ls->base.store_dir, row->path, false, &sp, &e) < 0) {
		report(v, row->path, "bad-name", false, "%s", e->msg);
		return 0;
	}
	real = local_store_real_path(&ls->base, row->path);
	if (lstat(real, &st) < 0) {
		cleanup_free char *blocker = NULL;
		if (errno != ENOENT) {
			report(v, row->path, "unreadable", false, "cannot stat '%s': %s", real,
			       strerror(errno));
			return 0;
		}
		if (!repair) {
			report(v, row->path, "missing", false,
			       "path '%s' is registered but missing", row->path);
			return 0;
		}
		r = repair_missing(v, row, &blocker, err);
		if (r < 0)
			return -1;
		if (r > 0)
			report(v, row->path, "missing", true,
			       "path '%s' was missing and has been invalidated", row->path);
		else
			report(v, row->path, "missing", false,
			       "path '%s' is missing and cannot be invalidated: '%s' refers to it",
			       row->path, blocker);
		return 0;
	}

	r = local_check_canonical(ls, real, &problem, &e);
	if (r < 0) {
		report(v, row->path, "unreadable", false, "%s", e->msg);
		return 0;
	}
	if (r > 0) {
		nib_error_clear(&e);
		if (repair && local_store_canonicalise(&ls->base, real, &e) == 0)
			report(v, row->path, "not-canonical", true, "%s (fixed)", problem);
		else
			report(v, row->path, "not-canonical", false, "%s%s%s", problem,
			       e ? ": " : "", e ? e->msg : "");
		nib_error_clear(&e);
	}

	if (v->flags & STORE_VERIFY_CONTENTS) {
		struct hash want, got;
		uint64_t size = 0;

		if (hash_parse(row->hash, HASH_SHA256, &want, &e) < 0) {
			report(v, row->path, "hash-mismatch", false,
			       "path '%s' has an unreadable hash in the database: %s", row->path,
			       e->msg);
			return 0;
		}
		if (nar_hash_path(real, &got, &size, &e) < 0) {
			report(v, row->path, "unreadable", false, "%s", e->msg);
			return 0;
		}
		if (!hash_equal(&want, &got)) {
			cleanup_free char *ws = hash_to_string(&want, HASH_ENC_BASE32, true);
			cleanup_free char *gs = hash_to_string(&got, HASH_ENC_BASE32, true);
			report(v, row->path, "hash-mismatch", false,
			       "path '%s' was modified: expected hash %s, got %s", row->path, ws,
			       gs);
			return 0;
		}
		if ((uint64_t)row->nar_size != size) {
			bool fixed = false;
			if (repair) {
				cleanup_path_row struct db_path_row dbrow = { 0 };
				r = db_path_query(ls->db, row->path, &dbrow, err);
				if (r < 0)
					return -1;
				if (r > 0) {
					dbrow.nar_size = (int64_t)size;
					if (db_path_update(ls->db, &dbrow, err) < 0)
						return -1;
					fixed = true;
				}
			}
			report(v, row->path, "size-mismatch", fixed,
			       "path '%s' has NAR size %llu in the database but %llu on disk%s",
			       row->path, (unsigned long long)row->nar_size,
			       (unsigned long long)size, fixed ? " (fixed)" : "");
		}
	}
	return 0;
}

int local_verify(struct store *s, unsigned flags,
		 void (*fn)(void *userdata, const struct store_verify_problem *p), void *userdata,
		 struct store_verify_result *ret, struct nib_error **err)
{
	struct local_store *ls = LOCAL(s);
	struct verifier v = { ls, flags, fn, userdata, { 0 } };
	struct rows rows = { 0 };
	cleanup_free char *damage = NULL;
	cleanup_free int64_t *dangling = NULL;
	size_t ndangling = 0;
	int r;

	if ((flags & STORE_VERIFY_REPAIR) && local_begin_write(ls, "repair", err) < 0)
		return -1;
	r = db_quick_check(ls->db, &damage, err);
	if (r < 0)
		return -1;
	if (r == 0)
		report(&v, NULL, "database", false, "the database is damaged: %s", damage);

	if (db_dangling_refs(ls->db, &dangling, &ndangling, err) < 0)
		return -1;
	for (size_t i = 0; i < ndangling; i++) {
		cleanup_free char *from = NULL;
		cleanup_error struct nib_error *e = NULL;
		if (db_path_by_id(ls->db, dangling[2 * i], &from, &e) <= 0)
			from = NULL;
		report(&v, from, "dangling-reference", false,
		       "reference from row %lld to row %lld, which is not a valid path",
		       (long long)dangling[2 * i], (long long)dangling[2 * i + 1]);
	}

	if (db_path_foreach(ls->db, collect_row, &rows, err) < 0) {
		rows_release(&rows);
		return -1;
	}
	for (size_t i = 0; i < rows.n; i++)
		if (check_path(&v, &rows.v[i], err) < 0) {
			rows_release(&rows);
			return -1;
		}
	rows_release(&rows);
	*ret = v.res;
	return 0;
}

#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cunit-run.h"
#include "build-record.h"
#include "cleanup.h"
#include "db.h"
#include "lock.h"
#include "util.h"

static char *dir;
static char *dbpath;

static void setup(void)
{
	dir = test_mkdtemp();
	dbpath = xasprintf("%s/db.sqlite", dir);
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
	free(dbpath);
	dir = dbpath = NULL;
}

/* A fresh database with the schema in place, or NULL. */
static struct db *fresh_db(void)
{
	struct db *db = NULL;
	cleanup_error struct nib_error *e = NULL;

	if (db_open(dbpath, DB_OPEN_CREATE | DB_OPEN_NO_FSYNC, &db, &e) < 0 ||
	    db_schema_init(db, 0, &e) < 0) {
		fprintf(stderr, "fresh_db: %s\n", e->msg);
		db_close(db);
		return NULL;
	}
	return db;
}

static int64_t add_path(struct db *db, const char *path)
{
	cleanup_error struct nib_error *e = NULL;
	struct db_path_row row = { 0 };
	int64_t id = -1;

	row.path = (char *)path;
	row.hash =
		(char *)"sha256:0000000000000000000000000000000000000000000000000000000000000000";
	row.registration_time = 1234;
	row.nar_size = 120;
	row.ultimate = true;
	if (db_path_insert(db, &row, &id, &e) < 0)
		fprintf(stderr, "add_path: %s\n", e->msg);
	return id;
}

static void test_schema_matches_nix(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_PTR_NOT_NULL(db);
	if (db == NULL)
		return;
	CU_ASSERT_EQUAL(db_schema_check(db, &e), 1);
	db_close(TAKE_PTR(db));
	/* Inspect the file with a second connection through the sqlite3 shell-less way:
	 * re-open and check that init is idempotent. */
	CU_ASSERT_EQUAL(db_open(dbpath, 0, &db, &e), 0);
	CU_ASSERT_EQUAL(db_schema_check(db, &e), 1);
	CU_ASSERT_EQUAL(db_schema_init(db, DB_NIX_SCHEMA_VERSION, &e), 0);
	CU_ASSERT_PTR_NULL(e);
}

static void test_paths_and_refs(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strv char **refs = NULL, **referrers = NULL;
	struct db_path_row row = { 0 };
	int64_t a, b, c, id = 0;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	a = add_path(db, "/s/aaaa-a");
	b = add_path(db, "/s/bbbb-b");
	c = add_path(db, "/s/cccc-c");
	CU_ASSERT(a > 0 && b > 0 && c > 0);
	CU_ASSERT_EQUAL(db_ref_insert(db, a, b, &e), 0);
	CU_ASSERT_EQUAL(db_ref_insert(db, a, c, &e), 0);
	CU_ASSERT_EQUAL(db_ref_insert(db, a, a, &e), 0);
	CU_ASSERT_EQUAL(db_ref_insert(db, a, b, &e), 0); /* duplicate is fine */
	CU_ASSERT_EQUAL(db_references(db, a, &refs, &e), 0);
	CU_ASSERT_EQUAL(strv_length(refs), 3);
	if (strv_length(refs) == 3) {
		CU_ASSERT_STRING_EQUAL(refs[0], "/s/aaaa-a");
		CU_ASSERT_STRING_EQUAL(refs[1], "/s/bbbb-b");
		CU_ASSERT_STRING_EQUAL(refs[2], "/s/cccc-c");
	}
	CU_ASSERT_EQUAL(db_referrers(db, c, &referrers, &e), 0);
	CU_ASSERT_EQUAL(strv_length(referrers), 1);

	CU_ASSERT_EQUAL(db_path_id(db, "/s/bbbb-b", &id, &e), 1);
	CU_ASSERT_EQUAL(id, b);
	CU_ASSERT_EQUAL(db_path_id(db, "/s/none", &id, &e), 0);
	CU_ASSERT_EQUAL(db_path_query(db, "/s/aaaa-a", &row, &e), 1);
	CU_ASSERT_EQUAL(row.nar_size, 120);
	CU_ASSERT_EQUAL(row.registration_time, 1234);
	CU_ASSERT(row.ultimate);
	CU_ASSERT_PTR_NULL(row.deriver);
	CU_ASSERT_PTR_NULL(row.ca);
	db_path_row_release(&row);

	/* b is referenced by a: restrict. */
	CU_ASSERT_EQUAL(db_path_delete(db, b, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_DENIED);
	nib_error_clear(&e);
	/* a refers to itself only besides b and c: deleting it works (trigger). */
	CU_ASSERT_EQUAL(db_path_delete(db, a, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(db_path_delete(db, b, &e), 0);
	CU_ASSERT_EQUAL(db_path_id(db, "/s/aaaa-a", &id, &e), 0);
}

static void test_update_and_prefix(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *found = NULL;
	struct db_path_row row = { 0 };
	uint64_t count = 0;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	add_path(db, "/s/aaaa-a");
	add_path(db, "/s/abab-b");
	CU_ASSERT_EQUAL(db_path_with_prefix(db, "/s/abab-", &found, &e), 1);
	if (found)
		CU_ASSERT_STRING_EQUAL(found, "/s/abab-b");
	CU_ASSERT_EQUAL(db_path_with_prefix(db, "/s/abac-", &found, &e), 0);
	CU_ASSERT_EQUAL(db_path_with_prefix(db, "/s/zzzz-", &found, &e), 0);

	row.path = (char *)"/s/aaaa-a";
	row.hash =
		(char *)"sha256:1111111111111111111111111111111111111111111111111111111111111111";
	row.nar_size = 999;
	row.ca = (char *)"fixed:r:sha256:xyz";
	row.sigs = (char *)"k:1 k:2";
	CU_ASSERT_EQUAL(db_path_update(db, &row, &e), 0);
	memset(&row, 0, sizeof(row));
	CU_ASSERT_EQUAL(db_path_query(db, "/s/aaaa-a", &row, &e), 1);
	CU_ASSERT_EQUAL(row.nar_size, 999);
	CU_ASSERT_STRING_EQUAL(row.ca, "fixed:r:sha256:xyz");
	CU_ASSERT_STRING_EQUAL(row.sigs, "k:1 k:2");
	CU_ASSERT_EQUAL(row.registration_time, 1234); /* unchanged, as in Nix */
	db_path_row_release(&row);
	CU_ASSERT_EQUAL(db_path_count(db, &count, &e), 0);
	CU_ASSERT_EQUAL(count, 2);
}

static void test_drv_outputs(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strv char **names = NULL, **paths = NULL, **derivers = NULL;
	int64_t drv;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	drv = add_path(db, "/s/dddd-x.drv");
	CU_ASSERT_EQUAL(db_drv_output_insert(db, drv, "out", "/s/oooo-x", &e), 0);
	CU_ASSERT_EQUAL(db_drv_output_insert(db, drv, "dev", "/s/eeee-x-dev", &e), 0);
	CU_ASSERT_EQUAL(db_drv_outputs(db, drv, &names, &paths, &e), 0);
	CU_ASSERT_EQUAL(strv_length(names), 2);
	if (strv_length(names) == 2) {
		CU_ASSERT_STRING_EQUAL(names[0], "dev");
		CU_ASSERT_STRING_EQUAL(paths[1], "/s/oooo-x");
	}
	CU_ASSERT_EQUAL(db_valid_derivers(db, "/s/oooo-x", &derivers, &e), 0);
	CU_ASSERT_EQUAL(strv_length(derivers), 1);
	/* Deleting the drv cascades to its outputs. */
	CU_ASSERT_EQUAL(db_path_delete(db, drv, &e), 0);
	strv_free(derivers);
	derivers = NULL;
	CU_ASSERT_EQUAL(db_valid_derivers(db, "/s/oooo-x", &derivers, &e), 0);
	CU_ASSERT_EQUAL(strv_length(derivers), 0);
}

static void test_txn_rollback_by_cleanup(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	int64_t id;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	{
		cleanup_txn struct db_txn *t = NULL;
		CU_ASSERT_EQUAL(db_txn_begin(db, true, &t, &e), 0);
		add_path(db, "/s/rolled-back");
		/* leaving the scope without commit rolls back */
	}
	CU_ASSERT_EQUAL(db_path_id(db, "/s/rolled-back", &id, &e), 0);
	{
		cleanup_txn struct db_txn *t = NULL;
		CU_ASSERT_EQUAL(db_txn_begin(db, true, &t, &e), 0);
		add_path(db, "/s/kept");
		{
			cleanup_txn struct db_txn *inner = NULL;
			CU_ASSERT_EQUAL(db_txn_begin(db, true, &inner, &e), 0);
			add_path(db, "/s/inner-dropped");
		}
		{
			cleanup_txn struct db_txn *inner = NULL;
			CU_ASSERT_EQUAL(db_txn_begin(db, true, &inner, &e), 0);
			add_path(db, "/s/inner-kept");
			CU_ASSERT_EQUAL(db_txn_commit(TAKE_PTR(inner), &e), 0);
		}
		CU_ASSERT_EQUAL(db_txn_commit(TAKE_PTR(t), &e), 0);
	}
	CU_ASSERT_EQUAL(db_path_id(db, "/s/kept", &id, &e), 1);
	CU_ASSERT_EQUAL(db_path_id(db, "/s/inner-kept", &id, &e), 1);
	CU_ASSERT_EQUAL(db_path_id(db, "/s/inner-dropped", &id, &e), 0);
	CU_ASSERT_PTR_NULL(e);
}

static void test_newer_schema_refused(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	struct db_path_row row = { 0 };
	int64_t id;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	CU_ASSERT_EQUAL(db_schema_init(db, 11, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_UNSUPPORTED && strstr(e->msg, "newer"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(db_schema_init(db, 5, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "too old"));
	nib_error_clear(&e);

	/* Pretend a future nib wrote the file: a NibMeta version we do not know. */
	row.path = (char *)"/s/x";
	row.hash = (char *)"sha256:00";
	CU_ASSERT_EQUAL(db_path_insert(db, &row, &id, &e), 0);
	db_close(TAKE_PTR(db));
	{
		/* Write through a raw second connection: our API has no setter, on purpose. */
		cleanup_free char *cmd = xasprintf(
			"sqlite3 '%s' \"update NibMeta set value = '99' where key = 'nib-schema'\" "
			">/dev/null 2>&1",
			dbpath);
		if (system(cmd) != 0) {
			fprintf(stderr, "no sqlite3 shell: skipping the NibMeta part\n");
			return;
		}
	}
	CU_ASSERT_EQUAL(db_open(dbpath, 0, &db, &e), 0);
	CU_ASSERT_EQUAL(db_schema_check(db, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "newer nib"));
}

static void test_migrate_from_nix7(void)
{
	cleanup_db struct db *db = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *cmd = xasprintf(
		"sqlite3 '%s' 'create table ValidPaths (id integer primary key autoincrement not "
		"null, path text unique not null, hash text not null, registrationTime integer not "
		"null, deriver text, narSize integer); create table FailedPaths (path text "
		"primary key not null, time integer not null); insert into ValidPaths (path, "
		"hash, registrationTime) values (\"/s/old\", \"sha256:00\", 1)' >/dev/null 2>&1",
		dbpath);
	struct db_path_row row = { 0 };

	if (system(cmd) != 0) {
		fprintf(stderr, "no sqlite3 shell: skipping\n");
		return;
	}
	CU_ASSERT_EQUAL(db_open(dbpath, 0, &db, &e), 0);
	CU_ASSERT_EQUAL(db_schema_check(db, &e), 0);
	CU_ASSERT_EQUAL(db_schema_init(db, 7, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT_EQUAL(db_schema_check(db, &e), 1);
	CU_ASSERT_EQUAL(db_path_query(db, "/s/old", &row, &e), 1);
	CU_ASSERT_PTR_NULL(row.ca);
	CU_ASSERT_FALSE(row.ultimate);
	db_path_row_release(&row);
}

static void test_corrupt_file(void)
{
	cleanup_db struct db *db = NULL;
	cleanup_error struct nib_error *e = NULL;
	char junk[4096];

	memset(junk, 'x', sizeof(junk));
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, dbpath, junk, sizeof(junk), 0644, false, &e),
			0);
	CU_ASSERT_EQUAL(db_open(dbpath, 0, &db, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "damaged") && strstr(e->msg, dbpath));
	CU_ASSERT_PTR_NULL(db);
}

static void test_busy_wait_and_deadline(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	int ready[2];
	pid_t pid;
	char c;

	if (db == NULL || pipe(ready) < 0) {
		CU_FAIL("setup");
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct db *db2 = NULL;
		struct db_txn *t = NULL;
		struct nib_error *e2 = NULL;
		struct timespec ts = { 0, 400 * 1000000L };

		if (db_open(dbpath, 0, &db2, &e2) < 0 || db_txn_begin(db2, true, &t, &e2) < 0)
			_exit(1);
		add_path(db2, "/s/from-child");
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		nanosleep(&ts, NULL);
		_exit(db_txn_commit(t, &e2) < 0 ? 1 : 0);
	}
	close(ready[1]);
	CU_ASSERT_EQUAL(read(ready[0], &c, 1), 1);
	close(ready[0]);
	{
		/* A short deadline fails with "busy" while the child holds the write lock. */
		struct db_txn *t = NULL;
		db_set_busy_deadline(db, 50);
		CU_ASSERT_EQUAL(db_txn_begin(db, true, &t, &e), -1);
		CU_ASSERT(e && e->code == NIB_E_BUSY);
		nib_error_clear(&e);
	}
	{
		/* A long one waits for the child's commit. */
		cleanup_txn struct db_txn *t = NULL;
		int64_t id;
		db_set_busy_deadline(db, 10000);
		CU_ASSERT_EQUAL(db_txn_begin(db, true, &t, &e), 0);
		CU_ASSERT_EQUAL(db_path_id(db, "/s/from-child", &id, &e), 1);
	}
	{
		int status = 0;
		waitpid(pid, &status, 0);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

/* nib schema 1 had no BuildRecords.sandboxed: opening such a file adds it. */
static void test_migrate_nib1(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *cmd = NULL;
	struct build_record r, *got = NULL;
	size_t n = 0;
	int64_t id = 0;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	build_record_init(&r);
	r.drv = xstrdup("/s/old.drv");
	r.start_usec = 1;
	CU_ASSERT_EQUAL(db_build_record_insert(db, &r, &id, &e), 0);
	build_record_release(&r);
	db_close(TAKE_PTR(db));
	cmd = xasprintf("sqlite3 '%s' \"alter table BuildRecords drop column sandboxed; update "
			"NibMeta set value = '1' where key = 'nib-schema'\" >/dev/null 2>&1",
			dbpath);
	if (system(cmd) != 0) {
		fprintf(stderr, "no sqlite3 shell (3.35+): skipping\n");
		return;
	}
	CU_ASSERT_EQUAL(db_open(dbpath, 0, &db, &e), 0);
	if (db == NULL)
		return;
	CU_ASSERT_EQUAL(db_schema_check(db, &e), 0); /* needs the migration */
	CU_ASSERT_EQUAL(db_schema_init(db, DB_NIX_SCHEMA_VERSION, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT_EQUAL(db_schema_check(db, &e), 1);
	build_record_init(&r);
	r.drv = xstrdup("/s/new.drv");
	r.sandboxed = 1;
	CU_ASSERT_EQUAL(db_build_record_insert(db, &r, &id, &e), 0);
	build_record_release(&r);
	CU_ASSERT_EQUAL(db_build_records_query(db, NULL, 0, &got, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		CU_ASSERT_EQUAL(got[0].sandboxed, 1);
		CU_ASSERT_EQUAL(got[1].sandboxed, -1);
		CU_ASSERT_STRING_EQUAL(got[1].drv, "/s/old.drv");
	}
	build_records_free(got, n);
}

static void test_build_records(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	struct build_record r, *got = NULL;
	size_t n = 0;
	int64_t id = 0;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	build_record_init(&r);
	r.drv = xstrdup("/s/dddd-x.drv");
	r.slot = 3;
	r.uid_start = 872415232 + 3 * 262144;
	r.uid_count = 262144;
	r.start_usec = 1000;
	r.status = xstrdup("running");
	CU_ASSERT_EQUAL(db_build_record_insert(db, &r, &id, &e), 0);
	CU_ASSERT(id > 0);
	r.id = id;
	r.end_usec = 5000;
	free(r.status);
	r.status = xstrdup("built");
	r.exit_status = 0;
	r.cpu_user_usec = 1200;
	r.cpu_system_usec = 300;
	r.peak_memory = 1 << 20;
	r.log_path = xstrdup("/log/x");
	strv_push(&r.output_names, "out");
	strv_push(&r.output_paths, "/s/oooo-x");
	CU_ASSERT_EQUAL(db_build_record_update(db, &r, &e), 0);
	build_record_release(&r);

	build_record_init(&r);
	r.drv = xstrdup("/s/other.drv");
	r.start_usec = 2000;
	CU_ASSERT_EQUAL(db_build_record_insert(db, &r, &id, &e), 0);
	build_record_release(&r);

	CU_ASSERT_EQUAL(db_build_records_query(db, NULL, 0, &got, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2)
		CU_ASSERT_STRING_EQUAL(got[0].drv, "/s/other.drv"); /* newest first */
	build_records_free(got, n);

	CU_ASSERT_EQUAL(db_build_records_query(db, "/s/dddd-x.drv", 10, &got, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 1);
	if (n == 1) {
		CU_ASSERT_EQUAL(got[0].slot, 3);
		CU_ASSERT_EQUAL(got[0].uid_count, 262144);
		CU_ASSERT_EQUAL(got[0].end_usec, 5000);
		CU_ASSERT_EQUAL(got[0].exit_status, 0);
		CU_ASSERT_EQUAL(got[0].cpu_user_usec, 1200);
		CU_ASSERT_EQUAL(got[0].peak_memory, 1 << 20);
		CU_ASSERT_STRING_EQUAL(got[0].status, "built");
		CU_ASSERT_STRING_EQUAL(got[0].log_path, "/log/x");
		CU_ASSERT_EQUAL(strv_length(got[0].output_names), 1);
		CU_ASSERT_STRING_EQUAL(got[0].output_paths[0], "/s/oooo-x");
	}
	build_records_free(got, n);

	build_record_init(&r);
	r.drv = xstrdup("/s/nosandbox.drv");
	r.sandboxed = 0;
	CU_ASSERT_EQUAL(db_build_record_insert(db, &r, &id, &e), 0);
	build_record_release(&r);
	CU_ASSERT_EQUAL(db_build_records_query(db, "/s/nosandbox.drv", 0, &got, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 1);
	if (n == 1)
		CU_ASSERT_EQUAL(got[0].sandboxed, 0);
	build_records_free(got, n);
	CU_ASSERT_EQUAL(db_build_records_query(db, "/s/other.drv", 0, &got, &n, &e), 0);
	if (n == 1)
		CU_ASSERT_EQUAL(got[0].sandboxed, -1); /* not known */
	build_records_free(got, n);

	build_record_init(&r);
	r.id = 12345;
	r.drv = xstrdup("/s/x.drv");
	CU_ASSERT_EQUAL(db_build_record_update(db, &r, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND);
	build_record_release(&r);
}

static void test_quick_check_and_dangling(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *msg = NULL;
	cleanup_free int64_t *pairs = NULL;
	size_t n = 99;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	CU_ASSERT_EQUAL(db_quick_check(db, &msg, &e), 1);
	CU_ASSERT_EQUAL(db_dangling_refs(db, &pairs, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
}

/*
 * The WAL's length is known after each commit; a checkpoint through a
 * connection of its own lets the next commit start the WAL over.
 */
static void test_wal_and_checkpoint(void)
{
	cleanup_db struct db *db = fresh_db();
	cleanup_error struct nib_error *e = NULL;
	char path[32];
	unsigned before;

	if (db == NULL) {
		CU_FAIL("no db");
		return;
	}
	for (int i = 0; i < 20; i++) {
		snprintf(path, sizeof(path), "/s/%04d-w", i);
		CU_ASSERT(add_path(db, path) > 0);
	}
	before = db_wal_frames(db);
	CU_ASSERT(before >= 20);
	CU_ASSERT_EQUAL(db_checkpoint(dbpath, &e), 0);
	CU_ASSERT(add_path(db, "/s/9999-after") > 0);
	CU_ASSERT(db_wal_frames(db) > 0 && db_wal_frames(db) < 8);
	CU_ASSERT_EQUAL(db_checkpoint("/nonexistent/nib-test.sqlite", &e), -1);
	CU_ASSERT(e && strstr(e->msg, "cannot checkpoint '/nonexistent/nib-test.sqlite'"));
}

/*
 * Processes that each open the database, commit once and exit: each is the
 * first connection, whose recovery forgets what was checkpointed, so only
 * a checkpoint that empties the WAL keeps it from growing for ever.
 */
static void test_wal_bounded_across_processes(void)
{
	cleanup_db struct db *first = fresh_db();
	cleanup_free char *wal = xasprintf("%s-wal", dbpath);
	struct stat st;

	if (first == NULL) {
		CU_FAIL("no db");
		return;
	}
	db_close(TAKE_PTR(first));
	for (int i = 0; i < 600; i++) {
		cleanup_error struct nib_error *e = NULL;
		struct db *db = NULL;
		char path[32];

		snprintf(path, sizeof(path), "/s/%04d-p", i);
		if (db_open(dbpath, DB_OPEN_NO_FSYNC, &db, &e) < 0) {
			CU_FAIL("open");
			return;
		}
		CU_ASSERT(add_path(db, path) > 0);
		db_close(db);
	}
	CU_ASSERT_EQUAL(stat(wal, &st), 0);
	/* At most 256 pages of 4 KiB, each with its 24-byte frame header. */
	CU_ASSERT(st.st_size <= 32 + 256 * (4096 + 24));
}

static void test_locks(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *lp = xasprintf("%s/l", dir);
	cleanup_free char *target = xasprintf("%s/p", dir), *other = xasprintf("%s/q", dir);
	cleanup_free char *target_lock = xasprintf("%s/p.lock", dir);
	cleanup_free char *shared = xasprintf("%s/" PATH_LOCKS_FILE, dir);
	cleanup_close int a = -1, b = -1;
	struct path_lock *pl = NULL, *pl2 = NULL, *pl3 = NULL;

	/* OFD locks: two opens in one process conflict. */
	CU_ASSERT_EQUAL(lock_file_open(lp, LOCK_SHARED, false, &a, &e), 1);
	CU_ASSERT_EQUAL(lock_file_open(lp, LOCK_SHARED, false, &b, &e), 1);
	CU_ASSERT_EQUAL(lock_fd(b, LOCK_EXCLUSIVE, false, &e), 0);
	CU_ASSERT_EQUAL(lock_fd(a, LOCK_UNLOCK, false, &e), 1);
	CU_ASSERT_EQUAL(lock_fd(b, LOCK_EXCLUSIVE, false, &e), 1);

	CU_ASSERT_EQUAL(path_lock_acquire(target, false, &pl, &e), 1);
	CU_ASSERT_EQUAL(path_lock_acquire(target, false, &pl2, &e), 0);
	CU_ASSERT_PTR_NULL(pl2);
	/* Another path of the same directory is independent. */
	CU_ASSERT_EQUAL(path_lock_acquire(other, false, &pl3, &e), 1);
	path_lock_release(pl3);
	path_lock_release(pl);
	CU_ASSERT_EQUAL(path_lock_acquire(target, false, &pl2, &e), 1);
	/* Nothing is made per path: one file for the directory, which stays. */
	CU_ASSERT_EQUAL(access(target, F_OK), -1);
	CU_ASSERT_EQUAL(access(target_lock, F_OK), -1);
	CU_ASSERT_EQUAL(access(shared, F_OK), 0);
	/* Another process sees the lock, and gets it once it is released. */
	{
		int fds[2], status = -1;
		char byte = 0;
		pid_t pid;

		CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			struct path_lock *c = NULL;
			int held;

			/* Not the parent's lock (its open, inherited, would hold it for us too). */
			for (int fd = 3; fd < 1024; fd++)
				if (fd != fds[1])
					close(fd);
			held = path_lock_acquire(target, false, &c, NULL) == 0;
			(void)!write(fds[1], held ? "h" : "x", 1);
			_exit(path_lock_acquire(target, true, &c, NULL) == 1 && held ? 0 : 1);
		}
		CU_ASSERT_EQUAL(read(fds[0], &byte, 1), 1);
		CU_ASSERT_EQUAL(byte, 'h');
		path_lock_release(TAKE_PTR(pl2));
		CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		close(fds[0]);
		close(fds[1]);
	}
	CU_ASSERT_PTR_NULL(e);
}

static CU_TestInfo tests[] = {
	{ "schema created and checked", test_schema_matches_nix },
	{ "paths and references", test_paths_and_refs },
	{ "update and hash-part prefix", test_update_and_prefix },
	{ "derivation outputs", test_drv_outputs },
	{ "transactions roll back unless committed", test_txn_rollback_by_cleanup },
	{ "newer schema refused", test_newer_schema_refused },
	{ "migration from Nix schema 7", test_migrate_from_nix7 },
	{ "migration from nib schema 1", test_migrate_nib1 },
	{ "corrupt database file", test_corrupt_file },
	{ "busy: wait and deadline", test_busy_wait_and_deadline },
	{ "build records", test_build_records },
	{ "quick check and dangling references", test_quick_check_and_dangling },
	{ "OFD locks and path locks", test_locks },
	{ "WAL length and checkpoints", test_wal_and_checkpoint },
	{ "the WAL stays bounded across one-commit processes", test_wal_bounded_across_processes },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "db", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

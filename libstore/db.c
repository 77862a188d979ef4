#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "build-record.h"
#include "cleanup.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

/*
 * Nix's schema version 10, table for table (ValidPaths, Refs, the two
 * indexes on Refs, the self-reference trigger, DerivationOutputs and its
 * index).  Nix 2.8 prepares statements against exactly these names, so they
 * must not change.
 */
static const char nix_schema_sql[] =
	"create table if not exists ValidPaths ("
	" id integer primary key autoincrement not null,"
	" path text unique not null,"
	" hash text not null,"
	" registrationTime integer not null,"
	" deriver text,"
	" narSize integer,"
	" ultimate integer,"
	" sigs text,"
	" ca text"
	");"
	"create table if not exists Refs ("
	" referrer integer not null,"
	" reference integer not null,"
	" primary key (referrer, reference),"
	" foreign key (referrer) references ValidPaths(id) on delete cascade,"
	" foreign key (reference) references ValidPaths(id) on delete restrict"
	");"
	"create index if not exists IndexReferrer on Refs(referrer);"
	"create index if not exists IndexReference on Refs(reference);"
	"create trigger if not exists DeleteSelfRefs before delete on ValidPaths"
	" begin"
	" delete from Refs where referrer = old.id and reference = old.id;"
	" end;"
	"create table if not exists DerivationOutputs ("
	" drv integer not null,"
	" id text not null,"
	" path text not null,"
	" primary key (drv, id),"
	" foreign key (drv) references ValidPaths(id) on delete cascade"
	");"
	"create index if not exists IndexDerivationOutputs on DerivationOutputs(path);";

/*
 * nib's own tables.  Build records deliberately do not reference
 * ValidPaths: a record outlives the garbage collection of its outputs.
 */
static const char nib_schema_sql[] =
	"create table if not exists NibMeta ("
	" key text primary key not null,"
	" value text not null"
	");"
	"create table if not exists BuildRecords ("
	" id integer primary key autoincrement not null,"
	" drv text not null,"
	" slot integer,"
	" uidStart integer,"
	" uidCount integer,"
	" startTime integer not null," /* microseconds since the epoch */
	" endTime integer,"
	" status text,"
	" exitStatus integer,"
	" cpuUser integer," /* microseconds */
	" cpuSystem integer,"
	" peakMemory integer," /* bytes */
	" logPath text,"
	" sandboxed integer" /* 1 in a sandbox, 0 without (nib schema 2) */
	");"
	"create index if not exists IndexBuildRecordsDrv on BuildRecords(drv);"
	"create table if not exists BuildRecordOutputs ("
	" record integer not null,"
	" name text not null,"
	" path text not null,"
	" primary key (record, name),"
	" foreign key (record) references BuildRecords(id) on delete cascade"
	");";

enum stmt_id {
	ST_PATH_ID,
	ST_PATH_QUERY,
	ST_PATH_QUERY_REFS,
	ST_PATH_INSERT,
	ST_PATH_UPDATE,
	ST_PATH_DELETE,
	ST_PATH_REFERRED,
	ST_REF_INSERT,
	ST_REFS_CLEAR,
	ST_REF_DELETE,
	ST_REFERENCES,
	ST_REFERENCE_IDS,
	ST_REFERRERS,
	ST_PATH_BY_ID,
	ST_DRV_OUTPUT_INSERT,
	ST_DRV_OUTPUTS,
	ST_VALID_DERIVERS,
	ST_PATH_PREFIX,
	ST_PATH_ALL,
	ST_PATH_COUNT,
	ST_DANGLING,
	ST_BR_INSERT,
	ST_BR_UPDATE,
	ST_BRO_DELETE,
	ST_BRO_INSERT,
	ST_BR_QUERY_ALL,
	ST_BR_QUERY_DRV,
	ST_BRO_QUERY,
	ST_NIB_SCHEMA,
	_ST_MAX
};

#define PATH_COLUMNS "id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca"
#define BR_COLUMNS                                                                             \
	"id, drv, slot, uidStart, uidCount, startTime, endTime, status, exitStatus, cpuUser, " \
	"cpuSystem, peakMemory, logPath, sandboxed"

static const char *const stmt_sql[_ST_MAX] = {
	[ST_PATH_ID] = "select id from ValidPaths where path = ?1",
	[ST_PATH_QUERY] = "select " PATH_COLUMNS " from ValidPaths where path = ?1",
	/* The row and its references in one statement (one read transaction). */
	[ST_PATH_QUERY_REFS] = "select " PATH_COLUMNS ", (select group_concat(v.path, ' ')"
			       " from Refs r join ValidPaths v on r.reference = v.id"
			       " where r.referrer = p.id) from ValidPaths p where path = ?1",
	[ST_PATH_INSERT] = "insert into ValidPaths (path, hash, registrationTime, deriver, narSize,"
			   " ultimate, sigs, ca) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_PATH_UPDATE] = "update ValidPaths set narSize = ?1, hash = ?2, ultimate = ?3,"
			   " sigs = ?4, ca = ?5 where path = ?6",
	[ST_PATH_DELETE] = "delete from ValidPaths where id = ?1",
	[ST_PATH_REFERRED] = "select 1 from Refs where reference = ?1 and referrer != ?1 limit 1",
	[ST_REF_INSERT] = "insert or ignore into Refs (referrer, reference) values (?1, ?2)",
	[ST_REFS_CLEAR] = "delete from Refs where referrer = ?1",
	[ST_REF_DELETE] = "delete from Refs where referrer = ?1 and reference = ?2",
	[ST_REFERENCES] = "select v.path from Refs r join ValidPaths v on r.reference = v.id"
			  " where r.referrer = ?1 order by v.path",
	[ST_REFERENCE_IDS] = "select reference from Refs where referrer = ?1",
	[ST_REFERRERS] = "select v.path from Refs r join ValidPaths v on r.referrer = v.id"
			 " where r.reference = ?1 order by v.path",
	[ST_PATH_BY_ID] = "select path from ValidPaths where id = ?1",
	[ST_DRV_OUTPUT_INSERT] = "insert or replace into DerivationOutputs (drv, id, path)"
				 " values (?1, ?2, ?3)",
	[ST_DRV_OUTPUTS] = "select id, path from DerivationOutputs where drv = ?1 order by id",
	[ST_VALID_DERIVERS] = "select v.path from DerivationOutputs d join ValidPaths v"
			      " on d.drv = v.id where d.path = ?1 order by v.path",
	[ST_PATH_PREFIX] = "select path from ValidPaths where path >= ?1 order by path limit 1",
	[ST_PATH_ALL] = "select " PATH_COLUMNS " from ValidPaths order by path",
	[ST_PATH_COUNT] = "select count(*) from ValidPaths",
	[ST_DANGLING] = "select referrer, reference from Refs"
			" where referrer not in (select id from ValidPaths)"
			" or reference not in (select id from ValidPaths)",
	[ST_BR_INSERT] = "insert into BuildRecords (drv, slot, uidStart, uidCount, startTime,"
			 " endTime, status, exitStatus, cpuUser, cpuSystem, peakMemory, logPath,"
			 " sandboxed)"
			 " values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?14)",
	[ST_BR_UPDATE] = "update BuildRecords set drv = ?1, slot = ?2, uidStart = ?3,"
			 " uidCount = ?4, startTime = ?5, endTime = ?6, status = ?7,"
			 " exitStatus = ?8, cpuUser = ?9, cpuSystem = ?10, peakMemory = ?11,"
			 " logPath = ?12, sandboxed = ?14 where id = ?13",
	[ST_BRO_DELETE] = "delete from BuildRecordOutputs where record = ?1",
	[ST_BRO_INSERT] = "insert or replace into BuildRecordOutputs (record, name, path)"
			  " values (?1, ?2, ?3)",
	[ST_BR_QUERY_ALL] = "select " BR_COLUMNS " from BuildRecords order by id desc limit ?1",
	[ST_BR_QUERY_DRV] = "select " BR_COLUMNS " from BuildRecords where drv = ?2"
			    " order by id desc limit ?1",
	[ST_BRO_QUERY] = "select name, path from BuildRecordOutputs where record = ?1"
			 " order by name",
	/* db_schema_check's usual answer: compiles only when both tables exist. */
	[ST_NIB_SCHEMA] = "select (select cast(value as integer) from NibMeta"
			  " where key = 'nib-schema'), (select 1 from ValidPaths where 0)",
};

struct db {
	sqlite3 *conn;
	char *path;
	unsigned flags;
	unsigned busy_deadline_ms;
	int depth;	/* open transaction nesting */
	int wal_frames; /* the WAL's length after our last commit */
	sqlite3_stmt *stmts[_ST_MAX];
};

struct db_txn {
	struct db *db;
	int depth; /* 1 for the outermost */
};

/* Internal slice of a busy wait: SQLite's own handler sleeps this long. */
#define BUSY_SLICE_MS 100

/*
 * Checkpoint the WAL once a commit leaves it this many pages long (SQLite's
 * default is 1000).  Every process that opens the database first (no other
 * connection is open) rebuilds the WAL index by reading every frame of the
 * WAL, about 2.5 us per page: a short WAL keeps that cheap, and since
 * connections do not checkpoint when they close (see db_open), this is what
 * bounds it.
 */
#define WAL_CHECKPOINT_PAGES 256

/*
 * After each commit: remember the WAL's length (db_wal_frames) and
 * checkpoint it past WAL_CHECKPOINT_PAGES, as sqlite3_wal_autocheckpoint
 * would (a hook of our own replaces that one).
 */
static int wal_hook(void *userdata, sqlite3 *conn, const char *name, int frames)
{
	struct db *db = userdata;

	db->wal_frames = frames;
	if (frames >= WAL_CHECKPOINT_PAGES) {
		/*
		 * TRUNCATE without waiting for anyone.  With no other connection
		 * using the WAL it is emptied, so the next process to open the
		 * database has nothing to read back: only a later commit through
		 * the same shared memory starts a checkpointed WAL over, which a
		 * process that exits after its one commit never makes (the next
		 * one's recovery forgets what was checkpointed, and the WAL only
		 * grew).  Otherwise what can be copied is, as PASSIVE would.
		 */
		sqlite3_busy_timeout(conn, 0);
		(void)sqlite3_wal_checkpoint_v2(conn, name, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		sqlite3_busy_timeout(conn, BUSY_SLICE_MS);
	}
	return SQLITE_OK;
}

unsigned db_wal_frames(const struct db *db)
{
	return db->wal_frames > 0 ? (unsigned)db->wal_frames : 0;
}

static int db_fail(struct db *db, struct nib_error **err, int rc, const char *what)
{
	int ext = sqlite3_extended_errcode(db->conn);
	int sys = sqlite3_system_errno(db->conn);
	const char *msg = sqlite3_errmsg(db->conn);
	enum nib_errc code = NIB_E_DB;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = NIB_E_BUSY;
		break;
	case SQLITE_CONSTRAINT:
		code = ext == SQLITE_CONSTRAINT_FOREIGNKEY ? NIB_E_DENIED : NIB_E_INVALID;
		break;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return nib_error_set(err, NIB_E_DB, 0, "%s: database '%s' is damaged: %s", what,
				     db->path, msg);
	case SQLITE_READONLY:
		code = NIB_E_DENIED;
		break;
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		/* The errno behind it says more than SQLite's generic text. */
		if (sys != 0)
			return nib_error_set(err, NIB_E_SYS, sys, "%s: database '%s': %s", what,
					     db->path, msg);
		break;
	default:
		break;
	}
	return nib_error_set(err, code, 0, "%s: database '%s': %s", what, db->path, msg);
}

static bool is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* Back off a little, with jitter so that waiting writers do not march in step. */
static void busy_pause(unsigned attempt)
{
	struct timespec ts = { 0, (long)(1 + (rand() % (attempt < 10 ? 4 : 20))) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool busy_retry(struct db *db, uint64_t start_usec, unsigned attempt)
{
	if (now_monotonic_usec() - start_usec >= (uint64_t)db->busy_deadline_ms * 1000)
		return false;
	log_debug("database '%s' is busy, retrying", db->path);
	busy_pause(attempt);
	return true;
}

/* Run SQL text without results, retrying while busy. */
static int db_exec(struct db *db, const char *sql, const char *what, struct nib_error **err)
{
	uint64_t start = now_monotonic_usec();

	for (unsigned attempt = 0;; attempt++) {
		int rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if (is_busy(rc) && busy_retry(db, start, attempt))
			continue;
		return db_fail(db, err, rc, what);
	}
}

static sqlite3_stmt *stmt_get(struct db *db, enum stmt_id id, struct nib_error **err)
{
	if (db->stmts[id] == NULL) {
		int rc = sqlite3_prepare_v3(db->conn, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &db->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			db->stmts[id] = NULL;
			db_fail(db, err, rc, "cannot prepare statement");
			return NULL;
		}
	}
	return db->stmts[id];
}

int db_prepare_all(struct db *db, struct nib_error **err)
{
	for (size_t i = 0; i < _ST_MAX; i++)
		if (stmt_get(db, (enum stmt_id)i, err) == NULL)
			return -1;
	return 0;
}

/* Reset a cached statement at scope exit so it holds no read snapshot. */
static inline void stmt_resetp(sqlite3_stmt **s)
{
	if (*s != NULL) {
		sqlite3_reset(*s);
		sqlite3_clear_bindings(*s);
	}
}
#define cleanup_stmt_reset __attribute__((cleanup(stmt_resetp)))

/*
 * Step a statement.  SQLITE_BUSY before the first row is retried (reset and
 * step again) until the deadline; once rows came, a busy error is final.
 * Returns SQLITE_ROW, SQLITE_DONE, or -1 with *err set.
 */
static int step(struct db *db, sqlite3_stmt *s, bool first, const char *what,
		struct nib_error **err)
{
	uint64_t start = 0;

	for (unsigned attempt = 0;; attempt++) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW || rc == SQLITE_DONE)
			return rc;
		if (first && is_busy(rc)) {
			if (start == 0)
				start = now_monotonic_usec();
			if (busy_retry(db, start, attempt)) {
				sqlite3_reset(s);
				continue;
			}
		}
		/* sqlite3_reset returns the real error code of a failed step. */
		rc = sqlite3_reset(s);
		return db_fail(db, err, rc, what);
	}
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* -1 (unknown) is stored as NULL. */
static void bind_i64_or_null(sqlite3_stmt *s, int i, int64_t v, int64_t null_value)
{
	if (v == null_value)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, v);
}

static char *column_strdup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static int64_t column_i64_or(sqlite3_stmt *s, int i, int64_t null_value)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? null_value : sqlite3_column_int64(s, i);
}

int db_open(const char *path, unsigned flags, struct db **ret, struct nib_error **err)
{
	static bool configured;
	struct db *db = xcalloc(1, sizeof(*db));
	int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int rc;

	if (!configured) {
		/*
		 * Memory statistics take a global mutex on every allocation; nib
		 * does not read them.  Only possible before SQLite initialises,
		 * so a failure (someone else initialised it) is fine.
		 */
		(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
		/*
		 * No bulk allocation of page-cache pages at a connection's first
		 * read: it writes a header into each of ~20 pages at once, page
		 * faults that a short-lived daemon connection process pays in
		 * full for the two or three pages a query reads.
		 */
		(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
		configured = true;
	}
	db->path = xstrdup(path);
	db->flags = flags;
	db->busy_deadline_ms = 600000;
	if (flags & DB_OPEN_READONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |=
			SQLITE_OPEN_READWRITE | ((flags & DB_OPEN_CREATE) ? SQLITE_OPEN_CREATE : 0);

	rc = sqlite3_open_v2(path, &db->conn, oflags, NULL);
	if (rc != SQLITE_OK) {
		if (db->conn == NULL)
			abort(); /* SQLite could not allocate its handle */
		db_fail(db, err, rc, "cannot open");
		db_close(db);
		return -1;
	}
	sqlite3_extended_result_codes(db->conn, 1);
	sqlite3_busy_timeout(db->conn, BUSY_SLICE_MS);

	/* The first statement reads the file: a non-database fails here. */
	if (db_exec(db, "pragma foreign_keys = on", "cannot set up", err) < 0)
		goto fail;
	if (!(flags & DB_OPEN_READONLY)) {
		sqlite3_stmt *s = NULL;
		const unsigned char *mode;
		uint64_t start = now_monotonic_usec();

		for (unsigned attempt = 0;; attempt++) {
			rc = sqlite3_prepare_v2(db->conn, "pragma journal_mode = wal", -1, &s,
						NULL);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(s);
			if (rc == SQLITE_ROW)
				break;
			if (s != NULL)
				rc = sqlite3_finalize(s);
			s = NULL;
			if (is_busy(rc) && busy_retry(db, start, attempt))
				continue;
			db_fail(db, err, rc, "cannot enable WAL");
			goto fail;
		}
		mode = sqlite3_column_text(s, 0);
		if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
			nib_error_set(err, NIB_E_DB, 0,
				      "cannot enable WAL on database '%s' (mode %s)", path,
				      mode ? (const char *)mode : "unknown");
			sqlite3_finalize(s);
			goto fail;
		}
		sqlite3_finalize(s);
		{
			/*
			 * Keep the -wal and -shm files when the last writer closes:
			 * without them, a user who may not write the directory cannot
			 * open the database even read-only.
			 */
			int one = 1;
			sqlite3_file_control(db->conn, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
		}
		/*
		 * No checkpoint when the last connection closes: it synced the WAL
		 * and the database file every time a short-lived `nib` exited (a
		 * millisecond or more per build).  Checkpoints only come from
		 * WAL_CHECKPOINT_PAGES, in whichever process commits; any process
		 * may run them, and a WAL left behind is read back by the next
		 * opener, so nothing depends on who closes last.  Committed
		 * transactions are in the WAL either way; with synchronous=NORMAL
		 * the ones since the last WAL sync can be lost on power failure
		 * (never the database's consistency), as for the daemon, whose
		 * own connection already kept the WAL from being checkpointed.
		 */
		sqlite3_db_config(db->conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		sqlite3_wal_hook(db->conn, wal_hook, db);
		/* After a checkpoint, a WAL file longer than 4 MiB is cut back. */
		if (db_exec(db, "pragma journal_size_limit = 4194304", "cannot set up", err) < 0)
			goto fail;
	}
	/*
	 * In WAL mode NORMAL only loses the last transactions on power loss,
	 * never consistency (Nix's choice too); OFF follows fsync-metadata.
	 */
	if (db_exec(db,
		    (flags & DB_OPEN_NO_FSYNC) ? "pragma synchronous = off"
					       : "pragma synchronous = normal",
		    "cannot set up", err) < 0)
		goto fail;
	/*
	 * A 32 MiB page cache: path-info queries are the hot path of a daemon.
	 * (A memory map was tried and measured slower: SQLite re-checks the
	 * file size on every read transaction.)
	 */
	if (db_exec(db, "pragma cache_size = -32768", "cannot set up", err) < 0)
		goto fail;
	*ret = db;
	return 0;
fail:
	db_close(db);
	return -1;
}

int db_checkpoint(const char *path, struct nib_error **err)
{
	sqlite3 *conn = NULL;
	int rc, one = 1;

	rc = sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		/* Neither may this connection's close checkpoint again or drop the WAL. */
		sqlite3_db_config(conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		sqlite3_file_control(conn, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
		/* A connection finds the WAL when it first reads the database. */
		rc = sqlite3_exec(conn, "pragma schema_version", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_wal_checkpoint_v2(conn, "main", SQLITE_CHECKPOINT_PASSIVE,
						       NULL, NULL);
		if (rc == SQLITE_BUSY)
			rc = SQLITE_OK; /* another connection is checkpointing */
	}
	if (rc != SQLITE_OK)
		nib_error_set(err, NIB_E_DB, 0, "cannot checkpoint '%s': %s", path,
			      conn != NULL ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
	sqlite3_close_v2(conn);
	return rc == SQLITE_OK ? 0 : -1;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < _ST_MAX; i++)
		sqlite3_finalize(db->stmts[i]);
	if (db->conn != NULL) {
		if (!sqlite3_get_autocommit(db->conn))
			sqlite3_exec(db->conn, "rollback", NULL, NULL, NULL);
		sqlite3_close_v2(db->conn);
	}
	free(db->path);
	free(db);
}

void db_set_busy_deadline(struct db *db, unsigned ms)
{
	db->busy_deadline_ms = ms;
}

/* Run a one-column integer query; 1 with *ret, or 0 when it returns no row. */
static int query_int(struct db *db, const char *sql, int64_t *ret, struct nib_error **err)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db->conn, sql, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return db_fail(db, err, rc, "cannot read schema");
	rc = step(db, s, true, "cannot read schema", err);
	if (rc < 0) {
		sqlite3_finalize(s);
		return -1;
	}
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW;
}

static int table_exists(struct db *db, const char *name, struct nib_error **err)
{
	cleanup_free char *sql = xasprintf(
		"select count(*) from sqlite_master where type = 'table' and name = '%s'", name);
	int64_t n = 0;

	if (query_int(db, sql, &n, err) < 0)
		return -1;
	return n > 0;
}

static int nib_version(struct db *db, int64_t *ret, struct nib_error **err)
{
	int r = table_exists(db, "NibMeta", err);

	if (r <= 0) {
		if (r == 0)
			*ret = 0;
		return r < 0 ? -1 : 0;
	}
	r = query_int(db, "select cast(value as integer) from NibMeta where key = 'nib-schema'",
		      ret, err);
	if (r == 0)
		*ret = 0;
	return r < 0 ? -1 : 0;
}

int db_schema_check(struct db *db, struct nib_error **err)
{
	int64_t v = 0;
	int r;

	/*
	 * The usual answer in one statement (one read transaction: this runs at
	 * every store open, and in every daemon connection process).  It only
	 * compiles when both tables exist; anything unusual takes the long way.
	 * It is kept prepared, as the other statements are (db_prepare_all
	 * prepares it in advance).
	 */
	if (db->stmts[ST_NIB_SCHEMA] == NULL) {
		int rc = sqlite3_prepare_v3(db->conn, stmt_sql[ST_NIB_SCHEMA], -1,
					    SQLITE_PREPARE_PERSISTENT, &db->stmts[ST_NIB_SCHEMA],
					    NULL);
		if (rc != SQLITE_OK) {
			db->stmts[ST_NIB_SCHEMA] = NULL;
			/* SQLITE_ERROR: a table is missing, the long way below. */
			if ((rc & 0xff) != SQLITE_ERROR)
				return db_fail(db, err, rc, "cannot read schema");
		}
	}
	if (db->stmts[ST_NIB_SCHEMA] != NULL) {
		cleanup_stmt_reset sqlite3_stmt *s = db->stmts[ST_NIB_SCHEMA];
		int rc = step(db, s, true, "cannot read schema", err);
		if (rc < 0)
			return -1;
		if (rc == SQLITE_ROW && column_i64_or(s, 0, 0) == DB_NIB_SCHEMA_VERSION)
			return 1;
	}
	if (nib_version(db, &v, err) < 0)
		return -1;
	if (v > DB_NIB_SCHEMA_VERSION)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "database '%s' was written by a newer nib (nib schema %lld, "
				     "this nib knows up to %d)",
				     db->path, (long long)v, DB_NIB_SCHEMA_VERSION);
	if (v < DB_NIB_SCHEMA_VERSION)
		return 0;
	r = table_exists(db, "ValidPaths", err);
	return r;
}

/* Nix's own upgrades from schema 7, 8 and 9 (columns added, a table dropped). */
static int migrate_nix(struct db *db, int from, struct nib_error **err)
{
	if (from < 8 && (db_exec(db, "alter table ValidPaths add column ultimate integer",
				 "cannot migrate schema", err) < 0 ||
			 db_exec(db, "alter table ValidPaths add column sigs text",
				 "cannot migrate schema", err) < 0))
		return -1;
	if (from < 9 &&
	    db_exec(db, "drop table if exists FailedPaths", "cannot migrate schema", err) < 0)
		return -1;
	if (from < 10 && db_exec(db, "alter table ValidPaths add column ca text",
				 "cannot migrate schema", err) < 0)
		return -1;
	return 0;
}

int db_schema_init(struct db *db, int nix_version, struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;
	cleanup_free char *meta = NULL;
	int64_t v = 0;

	if (nix_version > DB_NIX_SCHEMA_VERSION)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "database '%s' has Nix schema version %d, newer than %d which "
				     "nib supports",
				     db->path, nix_version, DB_NIX_SCHEMA_VERSION);
	if (nix_version != 0 && nix_version < 7)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "database '%s' has Nix schema version %d, too old to migrate",
				     db->path, nix_version);
	if (db_txn_begin(db, true, &t, err) < 0)
		return -1;
	if (nix_version != 0 && nix_version < DB_NIX_SCHEMA_VERSION) {
		log_debug("migrating '%s' from Nix schema %d", db->path, nix_version);
		if (migrate_nix(db, nix_version, err) < 0)
			return -1;
	}
	if (db_exec(db, nix_schema_sql, "cannot create schema", err) < 0)
		return -1;
	if (nib_version(db, &v, err) < 0)
		return -1;
	if (v > DB_NIB_SCHEMA_VERSION)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "database '%s' was written by a newer nib (nib schema %lld)",
				     db->path, (long long)v);
	/* nib's own migrations, keyed on v (0: nothing of ours yet). */
	if (v == 1 && db_exec(db, "alter table BuildRecords add column sandboxed integer",
			      "cannot migrate schema", err) < 0)
		return -1;
	if (db_exec(db, nib_schema_sql, "cannot create schema", err) < 0)
		return -1;
	meta = xasprintf("insert or replace into NibMeta (key, value) values ('nib-schema', '%d')",
			 DB_NIB_SCHEMA_VERSION);
	if (db_exec(db, meta, "cannot create schema", err) < 0)
		return -1;
	return db_txn_commit(TAKE_PTR(t), err);
}

int db_txn_begin(struct db *db, bool write, struct db_txn **ret, struct nib_error **err)
{
	struct db_txn *t;

	if (db->depth == 0) {
		if (db_exec(db, write ? "begin immediate" : "begin", "cannot begin transaction",
			    err) < 0)
			return -1;
	} else {
		char sql[64];
		snprintf(sql, sizeof(sql), "savepoint nib%d", db->depth);
		if (db_exec(db, sql, "cannot begin transaction", err) < 0)
			return -1;
	}
	t = xmalloc(sizeof(*t));
	t->db = db;
	t->depth = ++db->depth;
	*ret = t;
	return 0;
}

static void txn_end(struct db_txn *t)
{
	t->db->depth = t->depth - 1;
	free(t);
}

int db_txn_commit(struct db_txn *t, struct nib_error **err)
{
	struct db *db = t->db;
	char sql[64];

	if (t->depth != db->depth)
		abort(); /* inner transaction left open: a programmer error */
	if (t->depth == 1)
		snprintf(sql, sizeof(sql), "commit");
	else
		snprintf(sql, sizeof(sql), "release nib%d", t->depth - 1);
	if (db_exec(db, sql, "cannot commit transaction", err) < 0) {
		db_txn_rollback(t);
		return -1;
	}
	txn_end(t);
	return 0;
}

void db_txn_rollback(struct db_txn *t)
{
	struct db *db;
	char sql[96];

	if (t == NULL)
		return;
	db = t->db;
	if (t->depth == 1)
		snprintf(sql, sizeof(sql), "rollback");
	else
		snprintf(sql, sizeof(sql), "rollback to nib%d; release nib%d", t->depth - 1,
			 t->depth - 1);
	/* A rollback only fails when there is nothing left to roll back. */
	if (sqlite3_exec(db->conn, sql, NULL, NULL, NULL) != SQLITE_OK)
		log_debug("rollback on '%s': %s", db->path, sqlite3_errmsg(db->conn));
	txn_end(t);
}

void db_path_row_release(struct db_path_row *r)
{
	if (r == NULL)
		return;
	free(r->path);
	free(r->hash);
	free(r->deriver);
	free(r->sigs);
	free(r->ca);
	memset(r, 0, sizeof(*r));
}

static void read_path_row(sqlite3_stmt *s, struct db_path_row *r)
{
	r->id = sqlite3_column_int64(s, 0);
	r->path = column_strdup(s, 1);
	r->hash = column_strdup(s, 2);
	r->registration_time = sqlite3_column_int64(s, 3);
	r->deriver = column_strdup(s, 4);
	r->nar_size = column_i64_or(s, 5, 0);
	r->ultimate = column_i64_or(s, 6, 0) != 0;
	r->sigs = column_strdup(s, 7);
	r->ca = column_strdup(s, 8);
}

int db_path_id(struct db *db, const char *path, int64_t *ret_id, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_ID, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
	rc = step(db, s, true, "cannot query path", err);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 0;
	*ret_id = sqlite3_column_int64(s, 0);
	return 1;
}

int db_path_query(struct db *db, const char *path, struct db_path_row *ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_QUERY, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
	rc = step(db, s, true, "cannot query path", err);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 0;
	read_path_row(s, ret);
	return 1;
}

int db_path_query_refs(struct db *db, const char *path, struct db_path_row *ret, char ***ret_refs,
		       struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_QUERY_REFS, err);
	char **refs = NULL;
	const char *list;
	size_t n = 0;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
	rc = step(db, s, true, "cannot query path", err);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 0;
	/* Store paths never contain spaces, so the list splits unambiguously. */
	list = (const char *)sqlite3_column_text(s, 9);
	for (const char *p = list; p && *p; p++)
		n += *p == ' ';
	refs = xcalloc(list && *list ? n + 2 : 1, sizeof(char *));
	n = 0;
	for (const char *p = list; p && *p;) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);
		refs[n++] = xstrndup(p, len);
		p += len + (sp != NULL);
	}
	sort_array(refs, n, sizeof(char *), strp_cmp);
	read_path_row(s, ret);
	*ret_refs = refs;
	return 1;
}

static int exec_done(struct db *db, sqlite3_stmt *s, const char *what, struct nib_error **err)
{
	int rc = step(db, s, true, what, err);

	if (rc < 0)
		return -1;
	return 0;
}

int db_path_insert(struct db *db, const struct db_path_row *row, int64_t *ret_id,
		   struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_INSERT, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, row->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, row->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, row->registration_time);
	bind_text_or_null(s, 4, row->deriver);
	bind_i64_or_null(s, 5, row->nar_size, 0);
	sqlite3_bind_int(s, 6, row->ultimate ? 1 : 0);
	bind_text_or_null(s, 7, row->sigs != NULL && row->sigs[0] ? row->sigs : NULL);
	bind_text_or_null(s, 8, row->ca != NULL && row->ca[0] ? row->ca : NULL);
	if (exec_done(db, s, "cannot register path", err) < 0)
		return nib_error_prefix(err, "'%s'", row->path);
	*ret_id = sqlite3_last_insert_rowid(db->conn);
	return 0;
}

int db_path_update(struct db *db, const struct db_path_row *row, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_UPDATE, err);

	if (s == NULL)
		return -1;
	bind_i64_or_null(s, 1, row->nar_size, 0);
	sqlite3_bind_text(s, 2, row->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, row->ultimate ? 1 : 0);
	bind_text_or_null(s, 4, row->sigs != NULL && row->sigs[0] ? row->sigs : NULL);
	bind_text_or_null(s, 5, row->ca != NULL && row->ca[0] ? row->ca : NULL);
	sqlite3_bind_text(s, 6, row->path, -1, SQLITE_STATIC);
	if (exec_done(db, s, "cannot update path", err) < 0)
		return nib_error_prefix(err, "'%s'", row->path);
	return 0;
}

int db_path_delete(struct db *db, int64_t id, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *q = stmt_get(db, ST_PATH_REFERRED, err);
	sqlite3_stmt *s = NULL;
	int rc;

	if (q == NULL)
		return -1;
	/* Check first: SQLite's restrict error does not say which path. */
	sqlite3_bind_int64(q, 1, id);
	rc = step(db, q, true, "cannot query referrers", err);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_ROW)
		return nib_error_set(err, NIB_E_DENIED, 0, "path is still referenced");
	sqlite3_reset(q);
	if (db_refs_clear(db, id, err) < 0)
		return -1;
	s = stmt_get(db, ST_PATH_DELETE, err);
	if (s == NULL)
		return -1;
	{
		cleanup_stmt_reset sqlite3_stmt *d = s;
		sqlite3_bind_int64(d, 1, id);
		return exec_done(db, d, "cannot invalidate path", err);
	}
}

int db_ref_insert(struct db *db, int64_t referrer, int64_t reference, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_REF_INSERT, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, referrer);
	sqlite3_bind_int64(s, 2, reference);
	return exec_done(db, s, "cannot add reference", err);
}

int db_refs_clear(struct db *db, int64_t referrer, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_REFS_CLEAR, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, referrer);
	return exec_done(db, s, "cannot clear references", err);
}

int db_ref_delete(struct db *db, int64_t referrer, int64_t reference, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_REF_DELETE, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, referrer);
	sqlite3_bind_int64(s, 2, reference);
	return exec_done(db, s, "cannot delete reference", err);
}

/* Collect column 0 of every row into a NULL-terminated vector. */
static int collect_strings(struct db *db, sqlite3_stmt *s, const char *what, char ***ret,
			   struct nib_error **err)
{
	cleanup_strv char **v = xcalloc(1, sizeof(char *));
	size_t n = 0, alloc = 1;

	for (bool first = true;; first = false) {
		int rc = step(db, s, first, what, err);
		if (rc < 0)
			return -1;
		if (rc == SQLITE_DONE)
			break;
		ALLOC_GROW(v, n + 2, alloc);
		v[n++] = column_strdup(s, 0);
		v[n] = NULL;
	}
	*ret = TAKE_PTR(v);
	return 0;
}

int db_references(struct db *db, int64_t id, char ***ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_REFERENCES, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	return collect_strings(db, s, "cannot query references", ret, err);
}

int db_reference_ids(struct db *db, int64_t id, int64_t **ret, size_t *ret_n,
		     struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_REFERENCE_IDS, err);
	cleanup_free int64_t *v = NULL;
	size_t n = 0, alloc = 0;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	for (bool first = true;; first = false) {
		int rc = step(db, s, first, "cannot query references", err);
		if (rc < 0)
			return -1;
		if (rc == SQLITE_DONE)
			break;
		ALLOC_GROW(v, n + 1, alloc);
		v[n++] = sqlite3_column_int64(s, 0);
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

int db_referrers(struct db *db, int64_t id, char ***ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_REFERRERS, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	return collect_strings(db, s, "cannot query referrers", ret, err);
}

int db_path_by_id(struct db *db, int64_t id, char **ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_BY_ID, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	rc = step(db, s, true, "cannot query path", err);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 0;
	*ret = column_strdup(s, 0);
	return 1;
}

int db_drv_output_insert(struct db *db, int64_t drv_id, const char *name, const char *path,
			 struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_DRV_OUTPUT_INSERT, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, drv_id);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, path, -1, SQLITE_STATIC);
	return exec_done(db, s, "cannot record derivation output", err);
}

int db_drv_outputs(struct db *db, int64_t drv_id, char ***ret_names, char ***ret_paths,
		   struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_DRV_OUTPUTS, err);
	cleanup_strv char **names = xcalloc(1, sizeof(char *));
	cleanup_strv char **paths = xcalloc(1, sizeof(char *));
	size_t n = 0, an = 1, ap = 1;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, drv_id);
	for (bool first = true;; first = false) {
		int rc = step(db, s, first, "cannot query derivation outputs", err);
		if (rc < 0)
			return -1;
		if (rc == SQLITE_DONE)
			break;
		ALLOC_GROW(names, n + 2, an);
		ALLOC_GROW(paths, n + 2, ap);
		names[n] = column_strdup(s, 0);
		paths[n] = column_strdup(s, 1);
		n++;
		names[n] = paths[n] = NULL;
	}
	*ret_names = TAKE_PTR(names);
	*ret_paths = TAKE_PTR(paths);
	return 0;
}

int db_valid_derivers(struct db *db, const char *path, char ***ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_VALID_DERIVERS, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
	return collect_strings(db, s, "cannot query derivers", ret, err);
}

int db_path_with_prefix(struct db *db, const char *prefix, char **ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_PREFIX, err);
	const char *p;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
	rc = step(db, s, true, "cannot query path", err);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 0;
	p = (const char *)sqlite3_column_text(s, 0);
	if (p == NULL || strncmp(p, prefix, strlen(prefix)) != 0)
		return 0;
	*ret = xstrdup(p);
	return 1;
}

int db_path_foreach(struct db *db,
		    int (*fn)(void *ud, const struct db_path_row *r, struct nib_error **err),
		    void *ud, struct nib_error **err)
{
	/*
	 * A private statement: fn may call back into the database, which
	 * would reuse (and reset) a cached one.
	 */
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db->conn, stmt_sql[ST_PATH_ALL], -1, &s, NULL);

	if (rc != SQLITE_OK)
		return db_fail(db, err, rc, "cannot list paths");
	for (bool first = true;; first = false) {
		struct db_path_row row = { 0 };
		int r;

		rc = step(db, s, first, "cannot list paths", err);
		if (rc < 0) {
			sqlite3_finalize(s);
			return -1;
		}
		if (rc == SQLITE_DONE)
			break;
		read_path_row(s, &row);
		r = fn(ud, &row, err);
		db_path_row_release(&row);
		if (r < 0) {
			sqlite3_finalize(s);
			return r;
		}
	}
	sqlite3_finalize(s);
	return 0;
}

int db_path_count(struct db *db, uint64_t *ret, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_PATH_COUNT, err);
	int rc;

	if (s == NULL)
		return -1;
	rc = step(db, s, true, "cannot count paths", err);
	if (rc < 0)
		return -1;
	*ret = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	return 0;
}

int db_dangling_refs(struct db *db, int64_t **ret, size_t *ret_n, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_DANGLING, err);
	cleanup_free int64_t *v = NULL;
	size_t n = 0, alloc = 0;

	if (s == NULL)
		return -1;
	for (bool first = true;; first = false) {
		int rc = step(db, s, first, "cannot check references", err);
		if (rc < 0)
			return -1;
		if (rc == SQLITE_DONE)
			break;
		ALLOC_GROW(v, 2 * n + 2, alloc);
		v[2 * n] = sqlite3_column_int64(s, 0);
		v[2 * n + 1] = sqlite3_column_int64(s, 1);
		n++;
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

int db_quick_check(struct db *db, char **ret_msg, struct nib_error **err)
{
	sqlite3_stmt *s = NULL;
	struct strbuf sb = STRBUF_INIT;
	int rc = sqlite3_prepare_v2(db->conn, "pragma quick_check", -1, &s, NULL);
	bool ok = true;

	if (rc != SQLITE_OK)
		return db_fail(db, err, rc, "cannot check");
	for (bool first = true;; first = false) {
		const char *line;

		rc = step(db, s, first, "cannot check", err);
		if (rc < 0) {
			sqlite3_finalize(s);
			strbuf_release(&sb);
			return -1;
		}
		if (rc == SQLITE_DONE)
			break;
		line = (const char *)sqlite3_column_text(s, 0);
		if (line != NULL && strcmp(line, "ok") == 0)
			continue;
		ok = false;
		if (sb.len < 4096)
			strbuf_addf(&sb, "%s%s", sb.len ? "; " : "", line ? line : "?");
	}
	sqlite3_finalize(s);
	if (ok) {
		strbuf_release(&sb);
		return 1;
	}
	*ret_msg = strbuf_detach(&sb, NULL);
	return 0;
}

void build_record_init(struct build_record *r)
{
	memset(r, 0, sizeof(*r));
	r->slot = r->uid_start = -1;
	r->exit_status = r->cpu_user_usec = r->cpu_system_usec = r->peak_memory = -1;
	r->sandboxed = -1;
}

void build_record_release(struct build_record *r)
{
	if (r == NULL)
		return;
	free(r->drv);
	strv_free(r->output_names);
	strv_free(r->output_paths);
	free(r->status);
	free(r->log_path);
	build_record_init(r);
}

void build_records_free(struct build_record *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		build_record_release(&v[i]);
	free(v);
}

static void bind_record(sqlite3_stmt *s, const struct build_record *r)
{
	sqlite3_bind_text(s, 1, r->drv, -1, SQLITE_STATIC);
	bind_i64_or_null(s, 2, r->slot, -1);
	bind_i64_or_null(s, 3, r->uid_start, -1);
	sqlite3_bind_int64(s, 4, r->uid_count);
	sqlite3_bind_int64(s, 5, r->start_usec);
	bind_i64_or_null(s, 6, r->end_usec, 0);
	bind_text_or_null(s, 7, r->status);
	bind_i64_or_null(s, 8, r->exit_status, -1);
	bind_i64_or_null(s, 9, r->cpu_user_usec, -1);
	bind_i64_or_null(s, 10, r->cpu_system_usec, -1);
	bind_i64_or_null(s, 11, r->peak_memory, -1);
	bind_text_or_null(s, 12, r->log_path);
	bind_i64_or_null(s, 14, r->sandboxed, -1);
}

static int record_outputs_write(struct db *db, int64_t id, const struct build_record *r,
				struct nib_error **err)
{
	size_t n = strv_length(r->output_names);

	if (n != strv_length(r->output_paths))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "build record has %zu output names but %zu paths", n,
				     strv_length(r->output_paths));
	{
		cleanup_stmt_reset sqlite3_stmt *d = stmt_get(db, ST_BRO_DELETE, err);
		if (d == NULL)
			return -1;
		sqlite3_bind_int64(d, 1, id);
		if (exec_done(db, d, "cannot write build record", err) < 0)
			return -1;
	}
	for (size_t i = 0; i < n; i++) {
		cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_BRO_INSERT, err);
		if (s == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_text(s, 2, r->output_names[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, r->output_paths[i], -1, SQLITE_STATIC);
		if (exec_done(db, s, "cannot write build record", err) < 0)
			return -1;
	}
	return 0;
}

int db_build_record_insert(struct db *db, const struct build_record *r, int64_t *ret_id,
			   struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;
	int64_t id;

	if (r->drv == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0, "build record without a derivation");
	if (db_txn_begin(db, true, &t, err) < 0)
		return -1;
	{
		cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_BR_INSERT, err);
		if (s == NULL)
			return -1;
		bind_record(s, r);
		if (exec_done(db, s, "cannot write build record", err) < 0)
			return -1;
		id = sqlite3_last_insert_rowid(db->conn);
	}
	if (record_outputs_write(db, id, r, err) < 0 || db_txn_commit(TAKE_PTR(t), err) < 0)
		return -1;
	*ret_id = id;
	return 0;
}

int db_build_record_update(struct db *db, const struct build_record *r, struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;

	if (r->drv == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0, "build record without a derivation");
	if (db_txn_begin(db, true, &t, err) < 0)
		return -1;
	{
		cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_BR_UPDATE, err);
		if (s == NULL)
			return -1;
		bind_record(s, r);
		sqlite3_bind_int64(s, 13, r->id);
		if (exec_done(db, s, "cannot write build record", err) < 0)
			return -1;
		if (sqlite3_changes(db->conn) == 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0, "no build record %lld",
					     (long long)r->id);
	}
	if (record_outputs_write(db, r->id, r, err) < 0)
		return -1;
	return db_txn_commit(TAKE_PTR(t), err);
}

static int record_outputs_read(struct db *db, struct build_record *r, struct nib_error **err)
{
	cleanup_stmt_reset sqlite3_stmt *s = stmt_get(db, ST_BRO_QUERY, err);

	if (s == NULL)
		return -1;
	r->output_names = xcalloc(1, sizeof(char *));
	r->output_paths = xcalloc(1, sizeof(char *));
	sqlite3_bind_int64(s, 1, r->id);
	for (bool first = true;; first = false) {
		int rc = step(db, s, first, "cannot read build record", err);
		if (rc < 0)
			return -1;
		if (rc == SQLITE_DONE)
			return 0;
		strv_push(&r->output_names, (const char *)sqlite3_column_text(s, 0));
		strv_push(&r->output_paths, (const char *)sqlite3_column_text(s, 1));
	}
}

int db_build_records_query(struct db *db, const char *drv, size_t limit, struct build_record **ret,
			   size_t *ret_n, struct nib_error **err)
{
	cleanup_txn struct db_txn *t = NULL;
	struct build_record *v = NULL;
	size_t n = 0, alloc = 0;

	if (db_txn_begin(db, false, &t, err) < 0)
		return -1;
	{
		cleanup_stmt_reset sqlite3_stmt *s =
			stmt_get(db, drv ? ST_BR_QUERY_DRV : ST_BR_QUERY_ALL, err);
		if (s == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, limit == 0 ? -1 : (int64_t)limit);
		if (drv != NULL)
			sqlite3_bind_text(s, 2, drv, -1, SQLITE_STATIC);
		for (bool first = true;; first = false) {
			struct build_record *r;
			int rc = step(db, s, first, "cannot read build records", err);
			if (rc < 0) {
				build_records_free(v, n);
				return -1;
			}
			if (rc == SQLITE_DONE)
				break;
			ALLOC_GROW(v, n + 1, alloc);
			r = &v[n++];
			build_record_init(r);
			r->id = sqlite3_column_int64(s, 0);
			r->drv = column_strdup(s, 1);
			r->slot = column_i64_or(s, 2, -1);
			r->uid_start = column_i64_or(s, 3, -1);
			r->uid_count = column_i64_or(s, 4, 0);
			r->start_usec = sqlite3_column_int64(s, 5);
			r->end_usec = column_i64_or(s, 6, 0);
			r->status = column_strdup(s, 7);
			r->exit_status = column_i64_or(s, 8, -1);
			r->cpu_user_usec = column_i64_or(s, 9, -1);
			r->cpu_system_usec = column_i64_or(s, 10, -1);
			r->peak_memory = column_i64_or(s, 11, -1);
			r->log_path = column_strdup(s, 12);
			r->sandboxed = column_i64_or(s, 13, -1);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (record_outputs_read(db, &v[i], err) < 0) {
			build_records_free(v, n);
			return -1;
		}
	db_txn_rollback(TAKE_PTR(t)); /* read-only: nothing to commit */
	*ret = v;
	*ret_n = n;
	return 0;
}

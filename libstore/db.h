/*
 * db.h - the store database.  The only module that includes <sqlite3.h>.
 *
 * The schema is Nix's version 10 (ValidPaths, Refs, DerivationOutputs with
 * their indexes and trigger) so that Nix 2.8 can read a nib store, plus
 * nib's own tables beside it (NibMeta, BuildRecords, BuildRecordOutputs).
 * Paths are stored as full logical store paths; the hash column holds
 * "sha256:<base16>" of the NAR, as Nix writes it.
 *
 * Connections use WAL, foreign keys, a busy timeout, and retry on
 * SQLITE_BUSY until a deadline.  They do not checkpoint when they close
 * (checkpoints come with commits once the WAL is long enough), so the
 * latest transactions may live only in the -wal file: the database is
 * db.sqlite together with db.sqlite-wal, and a copy must take both.  Statements are prepared once per
 * connection and reused.  Write transactions are BEGIN IMMEDIATE, so they
 * never fail half-way on a lock upgrade.  A transaction is a value:
 *
 *     cleanup_txn struct db_txn *t = NULL;
 *     if (db_txn_begin(db, true, &t, err) < 0) return -1;
 *     ... on any early return the transaction rolls back ...
 *     return db_txn_commit(TAKE_PTR(t), err);
 *
 * Transactions nest (inner ones are savepoints).  A struct db is used by one
 * thread at a time.  Schema creation and migration (db_schema_init) must run
 * under the store's exclusive global lock; local-store.c takes it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build-record.h"
#include "error.h"

/* The Nix schema version nib writes and reads ("<state>/db/schema"). */
#define DB_NIX_SCHEMA_VERSION 10
/* Version of nib's own tables (NibMeta key "nib-schema"). */
#define DB_NIB_SCHEMA_VERSION 2

struct db;
struct db_txn;

enum db_open_flags {
	DB_OPEN_CREATE = 1 << 0,   /* create the file if missing */
	DB_OPEN_READONLY = 1 << 1, /* no writes at all */
	DB_OPEN_NO_FSYNC = 1 << 2, /* synchronous=OFF (fsync-metadata = false) */
};

/*
 * Open the database file at path.  Sets WAL mode (unless read-only),
 * synchronous=NORMAL (or OFF with DB_OPEN_NO_FSYNC), foreign keys, and the
 * busy handling.  Does not touch the schema.  A file that is not a SQLite
 * database is an error naming it.
 */
int db_open(const char *path, unsigned flags, struct db **ret, struct nib_error **err);
void db_close(struct db *db); /* NULL-safe; rolls back an open transaction */

/* Length of the WAL, in pages, after this connection's last commit (0 before any). */
unsigned db_wal_frames(const struct db *db);

/*
 * A passive checkpoint of the database at path through a connection of its
 * own, which may be used from another thread than the one using the
 * process's db handle (another connection to the same file).  It copies the
 * committed pages of the WAL into the database file and syncs it, so that
 * the next writer can start the WAL over: short WALs are what keep opening
 * the database cheap (see WAL_CHECKPOINT_PAGES in db.c).
 */
int db_checkpoint(const char *path, struct nib_error **err);

static inline void db_closep(struct db **db)
{
	db_close(*db);
}
#define cleanup_db __attribute__((cleanup(db_closep)))

/*
 * Give up retrying a busy database after this many milliseconds (default
 * 600000).  0 means: fail at the first SQLITE_BUSY.
 */
void db_set_busy_deadline(struct db *db, unsigned ms);

/*
 * Prepare every statement of this module now instead of at its first use:
 * for a handle that processes forked later use, which would otherwise each
 * prepare the statements they need again.  A prepared statement stays
 * usable when the schema changes (SQLite prepares it again then).
 */
int db_prepare_all(struct db *db, struct nib_error **err);

/*
 * Is the schema in place?  Returns 1 when nib's tables exist at the current
 * version, 0 when they must be created or migrated (db_schema_init), -1 on
 * error; a database written by a newer nib is an error that says so.
 */
int db_schema_check(struct db *db, struct nib_error **err);

/*
 * Create or migrate the schema in one transaction.  nix_version is what the
 * schema file said (0 = new database).  Nix versions 7 to 9 are migrated to
 * 10 as Nix does; anything newer than 10 is refused.  Call it under the
 * exclusive global lock.
 */
int db_schema_init(struct db *db, int nix_version, struct nib_error **err);

/* Transactions (see the top of this file).  write selects BEGIN IMMEDIATE. */
int db_txn_begin(struct db *db, bool write, struct db_txn **ret, struct nib_error **err);
/* Commit and free t (also on failure, after rolling back). */
int db_txn_commit(struct db_txn *t, struct nib_error **err);
/* Roll back and free t; NULL is fine. */
void db_txn_rollback(struct db_txn *t);

static inline void db_txn_rollbackp(struct db_txn **t)
{
	db_txn_rollback(*t);
}
#define cleanup_txn __attribute__((cleanup(db_txn_rollbackp)))

/* One row of ValidPaths.  Strings owned; NULL for SQL NULL. */
struct db_path_row {
	int64_t id;
	char *path;
	char *hash; /* "sha256:<base16>" */
	int64_t registration_time;
	char *deriver;
	int64_t nar_size; /* 0 when NULL */
	bool ultimate;
	char *sigs; /* space-separated */
	char *ca;
};

void db_path_row_release(struct db_path_row *r); /* frees strings; NULL-safe */
/* Releases a struct db_path_row (initialised to { 0 }) at scope exit. */
#define cleanup_path_row __attribute__((cleanup(db_path_row_release)))

/* The id of a valid path: 1 and *ret_id, or 0 when not valid. */
int db_path_id(struct db *db, const char *path, int64_t *ret_id, struct nib_error **err);

/* The row of a valid path: 1 and *ret filled (caller releases), or 0. */
int db_path_query(struct db *db, const char *path, struct db_path_row *ret, struct nib_error **err);

/* db_path_query plus the row's references (sorted, caller frees) in one statement. */
int db_path_query_refs(struct db *db, const char *path, struct db_path_row *ret, char ***ret_refs,
		       struct nib_error **err);

/* Insert a new row (row->id ignored); sets *ret_id. Path must not be valid. */
int db_path_insert(struct db *db, const struct db_path_row *row, int64_t *ret_id,
		   struct nib_error **err);

/*
 * Update the row of row->path: hash, narSize, ultimate, sigs, ca (Nix does
 * not change deriver or registration time of a path that stays valid).
 */
int db_path_update(struct db *db, const struct db_path_row *row, struct nib_error **err);

/*
 * Delete a row.  Its own references go too; it fails (NIB_E_DENIED) when
 * another valid path still refers to it (the schema's "on delete restrict").
 */
int db_path_delete(struct db *db, int64_t id, struct nib_error **err);

/* Add a reference (no error if it exists already). */
int db_ref_insert(struct db *db, int64_t referrer, int64_t reference, struct nib_error **err);

/* Remove every reference from referrer. */
int db_refs_clear(struct db *db, int64_t referrer, struct nib_error **err);

/* Paths referenced by id, sorted; a NULL-terminated vector (caller frees). */
int db_references(struct db *db, int64_t id, char ***ret, struct nib_error **err);

/* Ids referenced by id (for graph walks without string lookups). */
int db_reference_ids(struct db *db, int64_t id, int64_t **ret, size_t *ret_n,
		     struct nib_error **err);

/* Paths that refer to id (including id itself for a self-reference), sorted. */
int db_referrers(struct db *db, int64_t id, char ***ret, struct nib_error **err);

/* Map an id back to its path (1 found, 0 not). */
int db_path_by_id(struct db *db, int64_t id, char **ret, struct nib_error **err);

/* Record output `name` of derivation drv_id (replacing an existing row). */
int db_drv_output_insert(struct db *db, int64_t drv_id, const char *name, const char *path,
			 struct nib_error **err);

/* Outputs of a derivation: parallel NULL-terminated vectors sorted by name. */
int db_drv_outputs(struct db *db, int64_t drv_id, char ***ret_names, char ***ret_paths,
		   struct nib_error **err);

/* Valid derivations that list path as an output, sorted. */
int db_valid_derivers(struct db *db, const char *path, char ***ret, struct nib_error **err);

/*
 * The first valid path whose text starts with prefix (path-from-hash-part):
 * 1 and *ret (caller frees), or 0.
 */
int db_path_with_prefix(struct db *db, const char *prefix, char **ret, struct nib_error **err);

/*
 * Call fn for every valid path in path order.  fn returns < 0 to stop
 * (that value is returned), >= 0 to go on.  The row is only valid during
 * the call.
 */
int db_path_foreach(struct db *db,
		    int (*fn)(void *ud, const struct db_path_row *r, struct nib_error **err),
		    void *ud, struct nib_error **err);

/* Number of valid paths. */
int db_path_count(struct db *db, uint64_t *ret, struct nib_error **err);

/*
 * References whose referrer or reference id has no ValidPaths row (a
 * damaged database): pairs of ids in *ret (2 * *ret_n entries).
 */
int db_dangling_refs(struct db *db, int64_t **ret, size_t *ret_n, struct nib_error **err);

/* Delete the references of referrer to reference (verify --repair). */
int db_ref_delete(struct db *db, int64_t referrer, int64_t reference, struct nib_error **err);

/*
 * SQLite's quick_check: returns 1 when the file is sound, 0 with *ret_msg
 * (caller frees) describing the damage, -1 on error.
 */
int db_quick_check(struct db *db, char **ret_msg, struct nib_error **err);

/* Build records (struct build_record in build-record.h). */

/* Insert r (its id is ignored) with its outputs; sets *ret_id. */
int db_build_record_insert(struct db *db, const struct build_record *r, int64_t *ret_id,
			   struct nib_error **err);

/* Overwrite record r->id (e.g. when the build ends), outputs included. */
int db_build_record_update(struct db *db, const struct build_record *r, struct nib_error **err);

/*
 * Records for derivation drv (or all when drv is NULL), newest first, at
 * most limit (0 = no limit).  *ret is an array of *ret_n records (free with
 * build_records_free).
 */
int db_build_records_query(struct db *db, const char *drv, size_t limit, struct build_record **ret,
			   size_t *ret_n, struct nib_error **err);

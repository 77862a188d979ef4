/*
 * local-store.h - the local store: a store directory plus a state directory
 * holding the SQLite database, GC roots and locks.
 *
 * Layout (all from settings):
 *   <store-root><store-dir>/        the store (created 1775); store-root is a
 *                                   physical prefix, "" = none
 *   <store>/<hash>-<name>.lock      per-path locks, present while held
 *   <store>/.tmp-*                  contents being written (temporary roots)
 *   <state-dir>/db/db.sqlite        the database (Nix schema 10 + nib tables)
 *   <state-dir>/db/schema           "10"
 *   <state-dir>/db/big-lock         global lock: shared while a store is open,
 *                                   exclusive while the schema is created or
 *                                   migrated
 *   <state-dir>/gc.lock             exclusive while the collector runs
 *   <state-dir>/gcroots/            permanent roots (symlinks); auto/ holds
 *                                   indirect roots
 *   <state-dir>/temproots/<pid>     temporary roots of a live process
 *
 * Registered paths are canonical: owned by the store's owner (the user that
 * writes it, normally root, who also owns the store directory), files 0444 or
 * 0555, directories 0555, mtime 1, no setuid or setgid bits, no extended
 * attributes.
 *
 * All locks are OFD locks (lock.h).  Operations of the store interface are
 * in store.h; this header adds what only a local store can do.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "store.h"

struct settings;

enum local_store_open_flags {
	/* Queries only: nothing is created, the schema must exist already. */
	LOCAL_STORE_READONLY = 1 << 0,
};

/*
 * Open the local store described by settings (store-dir, store-root,
 * state-dir, fsync-metadata, keep-outputs, keep-derivations).  Creates the
 * layout and the database on first use.  A database whose schema is newer
 * than this nib knows is refused with an error that says so.
 */
int local_store_open(const struct settings *settings, unsigned flags, struct store **ret,
		     struct nib_error **err);

/*
 * For a process about to _exit(): undo what other processes could see (an
 * open batch is rolled back, the temporary-roots file removed) and leave
 * the rest - the database connection, memory - to the exit, which is
 * cheaper than tidying up (a daemon connection process ends this way).
 * The database stays consistent: to SQLite this is a process that ended
 * with no transaction open.  store must not be used afterwards; NULL or a
 * remote store is closed normally.
 */
void local_store_close_for_exit(struct store *store);

/*
 * May a process forked from the one that opened store go on using the
 * handle (a daemon's connection processes use their parent's)?  Checks what
 * local_store_open() would find differently now: 0 when the database file
 * is still the one opened and its schema still the version this nib uses
 * (as local_store_open() checks it); -1 with an error when the child should
 * open the store itself instead, which then reports, creates or migrates
 * what changed.  The opener must keep the handle open and unused - no
 * transaction, no batch, no temporary roots - while children use it.
 */
int local_store_check_reuse(struct store *store, struct nib_error **err);

/*
 * Prepare the database statements of store now instead of at their first
 * use (db_prepare_all): for a handle that forked processes reuse.
 */
int local_store_prepare(struct store *store, struct nib_error **err);

/* Is store a local store? */
bool store_is_local(const struct store *store);

/* Physical directory of the store (store-root + store-dir); owned by the store. */
const char *local_store_real_dir(struct store *store);

/* The physical path of a logical store path (or subpath); caller frees. */
char *local_store_real_path(struct store *store, const char *path);

/*
 * Register paths whose contents are already in place in the store
 * directory (e.g. build outputs), atomically: all become valid or none.
 * Each info needs path, nar_hash, nar_size; references must be valid or
 * among infos.  Paths already valid get their metadata updated.  A path
 * whose contents are missing is an error.  The caller makes the contents
 * canonical first (local_store_canonicalise) and holds temporary roots for
 * the paths from before it created them.
 */
int local_store_register_valid_paths(struct store *store, const struct store_path_info *infos,
				     size_t n, struct nib_error **err);

/*
 * local_store_register_valid_paths and store_build_record_add(rec) in one
 * transaction: a build's outputs and its record are committed together
 * (one commit less per build), or neither is.  Sets rec->id.
 */
int local_store_register_build(struct store *store, const struct store_path_info *infos, size_t n,
			       struct build_record *rec, struct nib_error **err);

/*
 * Add many paths at the price of a few: from local_store_batch_begin to
 * local_store_batch_end, store_add_text and store_add_path (and what is
 * built on them, such as adding derivations) move each path into place and
 * register it in one open write transaction, which this process sees at
 * once (later adds may refer to earlier ones), while the contents, the
 * store directory and the transaction are synced and committed once, at the
 * end: durable contents before durable registrations, as for a single add.
 * The paths' locks are held until then, so that no other process takes the
 * not yet committed contents for leftovers; other writers wait for the end,
 * so keep batches short (a batch commits on its own every 256 paths).
 * local_store_batch_end(commit = false), or an error in the final sync or
 * commit, rolls the batch back and removes what it moved into place.
 * Batches do not nest.
 */
int local_store_batch_begin(struct store *store, struct nib_error **err);
int local_store_batch_end(struct store *store, bool commit, struct nib_error **err);

/*
 * local_store_batch_end(commit = true) in two halves, so that the syncs run
 * while the caller goes on (`nib build` starts its first builder meanwhile):
 * a background thread syncs the batch's contents and the store directory,
 * and local_store_settle waits for it and commits.  Until then the batch's
 * paths look valid to this process (its open transaction) and stay locked,
 * and other processes' writes wait: settle soon.  Every write of this store
 * settles first, and so does closing it.  local_store_settle reports a
 * failed sync or commit, after rolling the batch back and removing what it
 * moved into place; without a pending batch it does nothing.
 */
int local_store_batch_end_async(struct store *store, struct nib_error **err);
int local_store_settle(struct store *store, struct nib_error **err);

/*
 * When this process's commits have made the WAL long enough to be worth
 * it, checkpoint it in a background thread (through a connection of its
 * own), so that the WAL stays short: every process that opens the store
 * first reads all of it.  For a process that has other work to wait for,
 * such as a builder running; at most one at a time; closing the store
 * waits for it.  Failures are only logged (the commits' own checkpoints
 * remain the backstop).
 */
void local_store_checkpoint_background(struct store *store);

/*
 * local_store_sync_tree of each of reals (and with sync_parent, the
 * directory of the last one) in a background thread, for a caller that has
 * other work to do before it registers them; without fsync-metadata, or
 * when no thread can be started, the syncs are done (or skipped) at once.
 * The paths are copied.  local_store_sync_finish waits for the thread,
 * reports the first failure and frees the handle (NULL: nothing to do).
 * The thread shares nothing else with the caller; a process that clones
 * meanwhile must not allocate in the child before it execs (the sandbox's
 * children do not).
 */
struct local_sync;
struct local_sync *local_store_sync_start(struct store *store, char *const *reals, size_t n,
					  bool sync_parent);
int local_store_sync_finish(struct local_sync *s, struct nib_error **err);

/*
 * Make the tree at real_path canonical (see the top of this file), without
 * following symlinks; fsync every file and directory when fsync-metadata is
 * set.  Anything but regular files, directories and symlinks is an error.
 */
int local_store_canonicalise(struct store *store, const char *real_path, struct nib_error **err);

/*
 * local_store_canonicalise without the fsyncs, for contents that are then
 * moved to their final name and synced there with local_store_sync_tree.
 */
int local_store_canonicalise_unsynced(struct store *store, const char *real_path,
				      struct nib_error **err);

/*
 * When fsync-metadata is set: fsync every file and directory of the tree at
 * real_path (symlinks are not followed) and then, with sync_parent, the
 * directory that contains it.  Contents must be durable under their final
 * name before they are registered; syncing after the rename instead of
 * before it lets a journaling file system commit the new name together with
 * the first file, so that the directory's own fsync finds little left to do.
 */
int local_store_sync_tree(struct store *store, const char *real_path, bool sync_parent,
			  struct nib_error **err);

/*
 * Make path invalid (the database only; the collector removes the
 * contents).  Refused with NIB_E_DENIED while another valid path refers to
 * it.  A path that is not valid is not an error.
 */
int local_store_invalidate_path(struct store *store, const char *path, struct nib_error **err);

/*
 * local-store-internal.h - shared by local-store.c, gc.c and verify.c.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "db.h"
#include "derivation.h"
#include "hashset.h"
#include "local-store.h"
#include "store-internal.h"

/* Deepest directory nesting the store's tree walks accept (as NAR restore's default). */
#define MAX_TREE_DEPTH 1024

/* Prefix of temporary names in the store directory (never a store path). */
#define LOCAL_TMP_PREFIX ".tmp-"

struct local_store {
	struct store base; /* first: a struct store * is a struct local_store * */
	char *real_dir;	   /* physical store directory */
	char *state_dir;
	char *db_dir;
	bool fsync;
	bool readonly;
	bool keep_outputs;
	bool keep_derivations;
	struct db *db;
	int big_lock_fd;
	int temproots_fd; /* -1 until the first temporary root */
	char *temproots_path;
	struct strset *temproots_seen; /* roots already written by this process */
	struct drv_hasher *hasher;     /* memo of derivation hashes (immutable per path) */
	unsigned long tmp_counter;
	uid_t uid; /* the user that opened the store: new files get its uid and gid */
	gid_t gid;
	uid_t owner_uid; /* owner of the store directory: registered files must be its */
	pid_t pid;
	dev_t db_dev; /* the database file this handle has open (local_store_check_reuse) */
	ino_t db_ino;
	struct local_batch *batch;	     /* local_store_batch_begin .. _end, else NULL */
	struct local_batch *pending;	     /* local_store_batch_end_async .. local_store_settle */
	struct local_checkpoint *checkpoint; /* local_store_checkpoint_background's thread */
};

static inline struct local_store *LOCAL(struct store *s)
{
	return (struct local_store *)s;
}

/* Fail with NIB_E_DENIED when the store was opened read-only. */
int local_check_writable(struct local_store *ls, const char *what, struct nib_error **err);

/*
 * local_check_writable, then commit a batch that is still being synced in
 * the background (local_store_batch_end_async): every write of the store
 * starts with this, so that nothing is written into that batch's open
 * transaction and no lock of its paths is waited for by ourselves.
 */
int local_begin_write(struct local_store *ls, const char *what, struct nib_error **err);

/* gc.c */
int local_add_temp_root(struct store *s, const char *path, struct nib_error **err);
int local_add_indirect_root(struct store *s, const char *link, struct nib_error **err);
int local_find_roots(struct store *s, bool include_temp, struct store_root **ret, size_t *ret_n,
		     struct nib_error **err);
int local_collect_garbage(struct store *s, const struct store_gc_options *opts,
			  struct store_gc_result *ret, struct nib_error **err);
/* Drop this process's temporary roots (on close). */
void local_temproots_close(struct local_store *ls);

/* verify.c */
int local_verify(struct store *s, unsigned flags,
		 void (*fn)(void *userdata, const struct store_verify_problem *p), void *userdata,
		 struct store_verify_result *ret, struct nib_error **err);

/*
 * Walk the tree at real_path and report the first way it is not canonical
 * (1 and *ret_problem, caller frees), or 0 when it is.
 */
int local_check_canonical(struct local_store *ls, const char *real_path, char **ret_problem,
			  struct nib_error **err);

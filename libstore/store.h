/*
 * store.h - the store interface: the one API that the CLI, the daemon's
 * connection loop and the builder use.
 *
 * A struct store is opaque.  Today there is one implementation, the local
 * store (local-store.h: a store directory plus a SQLite database); a
 * client for the daemon can implement the same operations (store-internal.h
 * holds the table of operations).  Every path given to or returned by these
 * functions is a full *logical* store path ("/nib/store/<hash>-<name>"),
 * even when the store physically lives under a store root.
 *
 * Errors: every function takes struct nib_error **err last.  A path that is
 * not in the store or is malformed is NIB_E_INVALID; a path that is not
 * valid where a valid one is required is NIB_E_NOT_FOUND.  ret_* out
 * parameters are untouched on failure.  A struct store is used by one
 * thread at a time; a forked child must open its own.
 *
 * Concurrency and crashes: any number of processes may use one store.  Two
 * that add the same path end with one valid copy and no error.  Contents
 * are written under a temporary name, made read-only, synced (setting
 * fsync-metadata), renamed into place and only then registered, so a crash
 * at any point leaves either the old or the new state and never a
 * registered path with missing or partial contents.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build-record.h"
#include "error.h"
#include "hash.h"
#include "nar.h"

struct store;

/* Metadata of a valid path (Nix's ValidPathInfo). */
struct store_path_info {
	char *path;		   /* full logical store path */
	struct hash nar_hash;	   /* SHA-256 of the NAR serialisation */
	uint64_t nar_size;	   /* bytes of the NAR serialisation */
	char **references;	   /* NULL-terminated, sorted; may include path itself */
	char *deriver;		   /* the .drv that produced it, or NULL */
	int64_t registration_time; /* seconds since the epoch; 0 = now, when registering */
	bool ultimate;		   /* built or added here, not copied from elsewhere */
	char **sigs;		   /* NULL-terminated signatures, or NULL */
	char *ca; /* content address ("fixed:r:sha256:…", "text:sha256:…") or NULL */
};

/* Free the fields and zero the struct; NULL is fine. */
void store_path_info_release(struct store_path_info *info);
/* Deep copy. */
void store_path_info_copy(struct store_path_info *dst, const struct store_path_info *src);

/* Close the store: drops its temporary roots and locks.  NULL is fine. */
void store_close(struct store *store);

static inline void store_closep(struct store **s)
{
	store_close(*s);
}
#define cleanup_store __attribute__((cleanup(store_closep)))

/* The logical store directory ("/nib/store"); owned by the store. */
const char *store_dir(const struct store *store);

/*
 * Check that path is a store path of this store and return it normalised
 * (newly allocated).  With allow_subpath, "<store>/<hash>-<name>/a/b" is
 * accepted and the top-level store path is returned.
 */
int store_parse_path(struct store *store, const char *path, bool allow_subpath, char **ret_path,
		     struct nib_error **err);

/* Queries.  Paths must be well-formed store paths of this store. */

/* Is path valid?  1 yes, 0 no. */
int store_is_valid(struct store *store, const char *path, struct nib_error **err);

/* Validity of n paths at once: ret_valid[i] for paths[i] (ret_valid has n entries). */
int store_query_valid(struct store *store, char *const *paths, size_t n, bool *ret_valid,
		      struct nib_error **err);

/*
 * Metadata of a valid path: 1 and *ret filled (release with
 * store_path_info_release), or 0 when the path is not valid.
 */
int store_query_path_info(struct store *store, const char *path, struct store_path_info *ret,
			  struct nib_error **err);

/*
 * Metadata of n paths at once, from one consistent snapshot (and much
 * faster than n single queries).  ret has n entries; an entry whose path is
 * not valid is left zeroed (ret[i].path == NULL).  Release each entry.
 */
int store_query_path_infos(struct store *store, char *const *paths, size_t n,
			   struct store_path_info *ret, struct nib_error **err);

/* Every valid path of the store, sorted (NULL-terminated, caller frees). */
int store_query_all_valid(struct store *store, char ***ret, struct nib_error **err);

/* References of a valid path (NULL-terminated, sorted, caller frees). */
int store_query_references(struct store *store, const char *path, char ***ret,
			   struct nib_error **err);

/* Valid paths that refer to path (which need not be valid), sorted. */
int store_query_referrers(struct store *store, const char *path, char ***ret,
			  struct nib_error **err);

/* Valid derivations that have path as an output, sorted. */
int store_query_valid_derivers(struct store *store, const char *path, char ***ret,
			       struct nib_error **err);

/*
 * Outputs of the valid derivation drv_path as recorded when it was
 * registered: parallel NULL-terminated vectors (names sorted).
 */
int store_query_derivation_outputs(struct store *store, const char *drv_path, char ***ret_names,
				   char ***ret_paths, struct nib_error **err);

/*
 * The valid path whose hash part is hash_part (32 characters): 1 and
 * *ret_path, or 0 when there is none.
 */
int store_query_path_from_hash_part(struct store *store, const char *hash_part, char **ret_path,
				    struct nib_error **err);

enum store_closure_flags {
	STORE_CLOSURE_OUTPUTS = 1 << 0,	 /* add the valid outputs of each derivation */
	STORE_CLOSURE_DERIVERS = 1 << 1, /* add the valid deriver of each path */
};

/*
 * The closure of n valid paths under references (plus what flags add):
 * every path reachable, the given ones included, sorted.
 */
int store_query_closure(struct store *store, char *const *paths, size_t n, unsigned flags,
			char ***ret, struct nib_error **err);

/* Adding paths.  Each returns the new path's logical name in *ret_path. */

/*
 * Add the file, directory or symlink at src (not following a symlink at the
 * top) as a content-addressed source path: NAR SHA-256, type "source", no
 * references, ca "fixed:r:sha256:…".  name defaults to src's base name.
 * Special files (devices, sockets, fifos) are refused.
 */
int store_add_path(struct store *store, const char *src, const char *name, char **ret_path,
		   struct nib_error **err);

/*
 * Add text (a .drv file, or any text-hashed file): type "text" with the
 * given references (which must be valid; NULL = none), ca "text:sha256:…".
 */
int store_add_text(struct store *store, const char *name, const void *data, size_t len,
		   char *const *refs, char **ret_path, struct nib_error **err);

enum store_add_flags {
	STORE_ADD_REPAIR = 1 << 0, /* replace the contents even when the path is valid */
};

/*
 * Add a path from a NAR stream with the given metadata (info->path,
 * nar_hash, nar_size, references, deriver, ca; registration_time 0 = now).
 * Exactly the archive's bytes are read from src (it may be part of a longer
 * stream), at most nar_size of them, also when the path is valid already.
 * When its hash or size differ from info, nothing changes and the error
 * says what differed.  A path that is
 * already valid is left alone unless STORE_ADD_REPAIR.
 */
int store_add_nar(struct store *store, const struct store_path_info *info, nar_source_fn src,
		  void *userdata, unsigned flags, struct nib_error **err);

/* Garbage-collector roots. */

/*
 * Protect path from the collector until this store handle is closed or the
 * process dies.  Take the root before relying on a path being valid.
 */
int store_add_temp_root(struct store *store, const char *path, struct nib_error **err);

/*
 * Register link (an absolute path outside the store, normally a symlink
 * into it) as an indirect root: it protects whatever it points to for as
 * long as it exists.
 */
int store_add_indirect_root(struct store *store, const char *link, struct nib_error **err);

/*
 * Make link a symlink to the valid path (replacing an existing symlink; any
 * other file there is an error) and register it as an indirect root.
 */
int store_add_perm_root(struct store *store, const char *path, const char *link,
			struct nib_error **err);

struct store_root {
	char *link; /* the symlink, or "{temp:<pid>}" for a temporary root */
	char *path; /* the store path it keeps alive */
};

/* Every root (temporary ones too when include_temp), sorted by link. */
int store_find_roots(struct store *store, bool include_temp, struct store_root **ret, size_t *ret_n,
		     struct nib_error **err);
void store_roots_free(struct store_root *roots, size_t n);

/* Garbage collection. */

struct store_gc_options {
	bool dry_run;	    /* find what would go, delete nothing */
	uint64_t max_freed; /* stop once this many bytes are freed; 0 = no limit */
	/*
	 * Delete only these paths (each must be dead, else an error and
	 * nothing deleted); NULL = every dead path.
	 */
	char *const *paths;
	/* Called for each deleted (dry run: each dead) path with its size. */
	void (*on_path)(void *userdata, const char *path, uint64_t bytes);
	void *userdata;
};

struct store_gc_result {
	uint64_t paths;	     /* paths deleted (dry run: dead) */
	uint64_t bytes;	     /* bytes freed (dry run: NAR size of the dead valid paths) */
	uint64_t temp_files; /* stale temporary files, lock files and root files removed */
};

/*
 * Delete every path not reachable from a root through references (plus
 * derivers of live paths with keep-derivations, outputs of live
 * derivations with keep-outputs).  Paths a running process is adding or
 * building are protected by its temporary roots.  Paths are invalidated
 * before their contents are removed, referrers before what they refer to.
 */
int store_collect_garbage(struct store *store, const struct store_gc_options *opts,
			  struct store_gc_result *ret, struct nib_error **err);

/* Verification. */

enum store_verify_flags {
	STORE_VERIFY_CONTENTS = 1 << 0, /* re-hash every path's NAR */
	STORE_VERIFY_REPAIR = 1 << 1,	/* fix what can be fixed safely */
};

struct store_verify_problem {
	const char *path; /* the path concerned, or NULL (database-wide) */
	const char *kind; /* "missing", "hash-mismatch", "size-mismatch", "dangling-reference",
			     "not-canonical", "bad-name", "database" */
	const char *message;
	bool repaired;
};

struct store_verify_result {
	uint64_t checked;  /* valid paths looked at */
	uint64_t problems; /* problems found */
	uint64_t repaired; /* of which repaired */
};

/*
 * Check every valid path exists, references are consistent, metadata is
 * canonical and (STORE_VERIFY_CONTENTS) the NAR hash and size match.  Each
 * problem is passed to fn (may be NULL).  Problems are not errors: the
 * return is 0 unless the check itself could not run.
 */
int store_verify(struct store *store, unsigned flags,
		 void (*fn)(void *userdata, const struct store_verify_problem *p), void *userdata,
		 struct store_verify_result *ret, struct nib_error **err);

/* Build records (see build-record.h). */

/* Insert r as a new record and set r->id. */
int store_build_record_add(struct store *store, struct build_record *r, struct nib_error **err);
/* Overwrite record r->id. */
int store_build_record_update(struct store *store, const struct build_record *r,
			      struct nib_error **err);
/* Records of drv (NULL = all), newest first, at most limit (0 = all). */
int store_build_records(struct store *store, const char *drv, size_t limit,
			struct build_record **ret, size_t *ret_n, struct nib_error **err);

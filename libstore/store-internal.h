/*
 * store-internal.h - what a store implementation provides.
 *
 * An implementation embeds struct store as its first member and fills a
 * struct store_ops.  store.c checks arguments that every implementation
 * would check (paths well-formed and inside the store directory) before
 * calling an operation, so operations may assume normalised paths.  An
 * operation left NULL reports NIB_E_UNSUPPORTED.
 */
#pragma once

#include "store.h"

struct store_ops {
	const char *name; /* "local", "daemon" */
	void (*close)(struct store *s);
	int (*query_valid)(struct store *s, char *const *paths, size_t n, bool *ret_valid,
			   struct nib_error **err);
	int (*query_path_info)(struct store *s, const char *path, struct store_path_info *ret,
			       struct nib_error **err);
	/* Optional: store.c loops over query_path_info without it. */
	int (*query_path_infos)(struct store *s, char *const *paths, size_t n,
				struct store_path_info *ret, struct nib_error **err);
	int (*query_all_valid)(struct store *s, char ***ret, struct nib_error **err);
	int (*query_referrers)(struct store *s, const char *path, char ***ret,
			       struct nib_error **err);
	int (*query_valid_derivers)(struct store *s, const char *path, char ***ret,
				    struct nib_error **err);
	int (*query_derivation_outputs)(struct store *s, const char *drv_path, char ***ret_names,
					char ***ret_paths, struct nib_error **err);
	int (*query_path_from_hash_part)(struct store *s, const char *hash_part, char **ret_path,
					 struct nib_error **err);
	/* Optional: store.c computes closures from query_path_info without it. */
	int (*query_closure)(struct store *s, char *const *paths, size_t n, unsigned flags,
			     char ***ret, struct nib_error **err);
	int (*add_path)(struct store *s, const char *src, const char *name, char **ret_path,
			struct nib_error **err);
	int (*add_text)(struct store *s, const char *name, const void *data, size_t len,
			char *const *refs, char **ret_path, struct nib_error **err);
	int (*add_nar)(struct store *s, const struct store_path_info *info, nar_source_fn src,
		       void *userdata, unsigned flags, struct nib_error **err);
	int (*add_temp_root)(struct store *s, const char *path, struct nib_error **err);
	int (*add_indirect_root)(struct store *s, const char *link, struct nib_error **err);
	int (*find_roots)(struct store *s, bool include_temp, struct store_root **ret,
			  size_t *ret_n, struct nib_error **err);
	int (*collect_garbage)(struct store *s, const struct store_gc_options *opts,
			       struct store_gc_result *ret, struct nib_error **err);
	int (*verify)(struct store *s, unsigned flags,
		      void (*fn)(void *userdata, const struct store_verify_problem *p),
		      void *userdata, struct store_verify_result *ret, struct nib_error **err);
	int (*build_record_add)(struct store *s, struct build_record *r, struct nib_error **err);
	int (*build_record_update)(struct store *s, const struct build_record *r,
				   struct nib_error **err);
	int (*build_records)(struct store *s, const char *drv, size_t limit,
			     struct build_record **ret, size_t *ret_n, struct nib_error **err);
};

struct store {
	const struct store_ops *ops;
	char *store_dir; /* logical, owned */
};

/*
 * Closure computed with query_path_info, query_derivation_outputs and
 * query_valid (paths normalised already).
 */
int store_closure_generic(struct store *s, char *const *paths, size_t n, unsigned flags,
			  char ***ret, struct nib_error **err);

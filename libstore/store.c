#include "config.h"

#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "hashset.h"
#include "path.h"
#include "store-internal.h"
#include "util.h"
#include "banned.h"

void store_path_info_release(struct store_path_info *info)
{
	if (info == NULL)
		return;
	free(info->path);
	strv_free(info->references);
	free(info->deriver);
	strv_free(info->sigs);
	free(info->ca);
	memset(info, 0, sizeof(*info));
}

void store_path_info_copy(struct store_path_info *dst, const struct store_path_info *src)
{
	*dst = *src;
	dst->path = src->path ? xstrdup(src->path) : NULL;
	dst->references = src->references ? strv_copy(src->references) : NULL;
	dst->deriver = src->deriver ? xstrdup(src->deriver) : NULL;
	dst->sigs = src->sigs ? strv_copy(src->sigs) : NULL;
	dst->ca = src->ca ? xstrdup(src->ca) : NULL;
}

void store_close(struct store *store)
{
	if (store == NULL)
		return;
	store->ops->close(store);
}

const char *store_dir(const struct store *store)
{
	return store->store_dir;
}

int store_parse_path(struct store *store, const char *path, bool allow_subpath, char **ret_path,
		     struct nib_error **err)
{
	struct store_path sp;

	if (path == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0, "missing store path");
	if (store_path_parse(store->store_dir, path, allow_subpath, &sp, err) < 0)
		return -1;
	*ret_path = store_path_to_string(store->store_dir, &sp);
	return 0;
}

static int unsupported(struct store *store, const char *what, struct nib_error **err)
{
	return nib_error_set(err, NIB_E_UNSUPPORTED, 0, "the %s store cannot %s", store->ops->name,
			     what);
}

#define CALL(store, op, what, err, ...)                                 \
	((store)->ops->op == NULL ? unsupported((store), (what), (err)) \
				  : (store)->ops->op((store), __VA_ARGS__, (err)))

/* Check one path; the normalised form goes to *ret. */
static int check_path(struct store *store, const char *path, char **ret, struct nib_error **err)
{
	return store_parse_path(store, path, false, ret, err);
}

int store_is_valid(struct store *store, const char *path, struct nib_error **err)
{
	bool valid = false;
	char *const paths[] = { (char *)path, NULL };

	if (store_query_valid(store, paths, 1, &valid, err) < 0)
		return -1;
	return valid ? 1 : 0;
}

int store_query_valid(struct store *store, char *const *paths, size_t n, bool *ret_valid,
		      struct nib_error **err)
{
	cleanup_strv char **norm = xcalloc(n + 1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		if (check_path(store, paths[i], &norm[i], err) < 0)
			return -1;
	return CALL(store, query_valid, "query validity", err, norm, n, ret_valid);
}

int store_query_path_info(struct store *store, const char *path, struct store_path_info *ret,
			  struct nib_error **err)
{
	cleanup_free char *p = NULL;

	if (check_path(store, path, &p, err) < 0)
		return -1;
	return CALL(store, query_path_info, "query path info", err, p, ret);
}

int store_query_path_infos(struct store *store, char *const *paths, size_t n,
			   struct store_path_info *ret, struct nib_error **err)
{
	cleanup_strv char **norm = xcalloc(n + 1, sizeof(char *));
	struct store_path_info *out = xcalloc(n + 1, sizeof(*out));
	int r = 0;

	for (size_t i = 0; i < n; i++)
		if (check_path(store, paths[i], &norm[i], err) < 0) {
			free(out);
			return -1;
		}
	if (store->ops->query_path_infos != NULL) {
		r = store->ops->query_path_infos(store, norm, n, out, err);
	} else if (store->ops->query_path_info == NULL) {
		r = unsupported(store, "query path info", err);
	} else {
		for (size_t i = 0; i < n && r >= 0; i++)
			r = store->ops->query_path_info(store, norm[i], &out[i], err);
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			store_path_info_release(&out[i]);
		free(out);
		return -1;
	}
	memcpy(ret, out, n * sizeof(*out));
	free(out);
	return 0;
}

int store_query_references(struct store *store, const char *path, char ***ret,
			   struct nib_error **err)
{
	struct store_path_info info = { 0 };
	int r = store_query_path_info(store, path, &info, err);

	if (r < 0)
		return -1;
	if (r == 0)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid", path);
	*ret = TAKE_PTR(info.references);
	if (*ret == NULL)
		*ret = xcalloc(1, sizeof(char *));
	store_path_info_release(&info);
	return 0;
}

int store_query_all_valid(struct store *store, char ***ret, struct nib_error **err)
{
	return CALL(store, query_all_valid, "list valid paths", err, ret);
}

int store_query_referrers(struct store *store, const char *path, char ***ret,
			  struct nib_error **err)
{
	cleanup_free char *p = NULL;

	if (check_path(store, path, &p, err) < 0)
		return -1;
	return CALL(store, query_referrers, "query referrers", err, p, ret);
}

int store_query_valid_derivers(struct store *store, const char *path, char ***ret,
			       struct nib_error **err)
{
	cleanup_free char *p = NULL;

	if (check_path(store, path, &p, err) < 0)
		return -1;
	return CALL(store, query_valid_derivers, "query derivers", err, p, ret);
}

int store_query_derivation_outputs(struct store *store, const char *drv_path, char ***ret_names,
				   char ***ret_paths, struct nib_error **err)
{
	cleanup_free char *p = NULL;

	if (check_path(store, drv_path, &p, err) < 0)
		return -1;
	return CALL(store, query_derivation_outputs, "query derivation outputs", err, p, ret_names,
		    ret_paths);
}

int store_query_path_from_hash_part(struct store *store, const char *hash_part, char **ret_path,
				    struct nib_error **err)
{
	size_t len = strlen(hash_part);

	if (len != STORE_PATH_HASH_LEN)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "invalid hash part '%s': must be %d characters", hash_part,
				     STORE_PATH_HASH_LEN);
	for (size_t i = 0; i < len; i++)
		if (!base32_valid_char(hash_part[i]))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "invalid hash part '%s': bad character '%c'",
					     hash_part, hash_part[i]);
	return CALL(store, query_path_from_hash_part, "query paths by hash", err, hash_part,
		    ret_path);
}

/* Closure through the generic operations (for stores without query_closure). */
int store_closure_generic(struct store *store, char *const *paths, size_t n, unsigned flags,
			  char ***ret, struct nib_error **err)
{
	cleanup_strset struct strset *seen = strset_new();
	cleanup_strv char **queue = xcalloc(1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		if (strset_add(seen, paths[i]))
			strv_push(&queue, paths[i]);
	for (size_t qi = 0; queue[qi] != NULL; qi++) {
		struct store_path_info info = { 0 };
		const char *p = queue[qi];
		int r = store->ops->query_path_info(store, p, &info, err);

		if (r < 0)
			return -1;
		if (r == 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid", p);
		for (char **ref = info.references; ref && *ref; ref++)
			if (strset_add(seen, *ref))
				strv_push(&queue, *ref);
		if ((flags & STORE_CLOSURE_DERIVERS) && info.deriver != NULL &&
		    !strset_contains(seen, info.deriver)) {
			r = store_is_valid(store, info.deriver, err);
			if (r < 0) {
				store_path_info_release(&info);
				return -1;
			}
			if (r > 0 && strset_add(seen, info.deriver))
				strv_push(&queue, info.deriver);
		}
		store_path_info_release(&info);
		if ((flags & STORE_CLOSURE_OUTPUTS) && ends_with(p, ".drv")) {
			cleanup_strv char **names = NULL, **outs = NULL;
			if (store->ops->query_derivation_outputs(store, p, &names, &outs, err) < 0)
				return -1;
			for (char **o = outs; *o; o++) {
				r = store_is_valid(store, *o, err);
				if (r < 0)
					return -1;
				if (r > 0 && strset_add(seen, *o))
					strv_push(&queue, *o);
			}
		}
	}
	*ret = strset_to_sorted_strv(seen);
	return 0;
}

int store_query_closure(struct store *store, char *const *paths, size_t n, unsigned flags,
			char ***ret, struct nib_error **err)
{
	cleanup_strv char **norm = xcalloc(n + 1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		if (check_path(store, paths[i], &norm[i], err) < 0)
			return -1;
	if (store->ops->query_closure != NULL)
		return store->ops->query_closure(store, norm, n, flags, ret, err);
	if (store->ops->query_path_info == NULL)
		return unsupported(store, "compute closures", err);
	return store_closure_generic(store, norm, n, flags, ret, err);
}

int store_add_path(struct store *store, const char *src, const char *name, char **ret_path,
		   struct nib_error **err)
{
	if (src == NULL || src[0] == '\0')
		return nib_error_set(err, NIB_E_INVALID, 0, "no file to add");
	return CALL(store, add_path, "add paths", err, src, name, ret_path);
}

int store_add_text(struct store *store, const char *name, const void *data, size_t len,
		   char *const *refs, char **ret_path, struct nib_error **err)
{
	cleanup_strv char **norm = xcalloc(strv_length(refs) + 1, sizeof(char *));

	for (size_t i = 0; refs != NULL && refs[i] != NULL; i++)
		if (check_path(store, refs[i], &norm[i], err) < 0)
			return -1;
	if (name == NULL || !store_path_name_valid(name, strlen(name)))
		return nib_error_set(err, NIB_E_INVALID, 0, "invalid store path name '%s'",
				     name ? name : "");
	return CALL(store, add_text, "add text", err, name, data, len, norm, ret_path);
}

int store_add_nar(struct store *store, const struct store_path_info *info, nar_source_fn src,
		  void *userdata, unsigned flags, struct nib_error **err)
{
	struct store_path_info norm = { 0 };
	int r;

	store_path_info_copy(&norm, info);
	free(norm.path);
	norm.path = NULL;
	if (check_path(store, info->path, &norm.path, err) < 0) {
		store_path_info_release(&norm);
		return -1;
	}
	for (char **ref = norm.references; ref && *ref; ref++) {
		char *p = NULL;
		if (check_path(store, *ref, &p, err) < 0) {
			store_path_info_release(&norm);
			return nib_error_prefix(err, "references of '%s'", info->path);
		}
		free(*ref);
		*ref = p;
	}
	if (norm.deriver != NULL) {
		char *p = NULL;
		if (check_path(store, norm.deriver, &p, err) < 0) {
			store_path_info_release(&norm);
			return nib_error_prefix(err, "deriver of '%s'", info->path);
		}
		free(norm.deriver);
		norm.deriver = p;
	}
	r = CALL(store, add_nar, "add archives", err, &norm, src, userdata, flags);
	store_path_info_release(&norm);
	return r;
}

int store_add_temp_root(struct store *store, const char *path, struct nib_error **err)
{
	cleanup_free char *p = NULL;

	if (check_path(store, path, &p, err) < 0)
		return -1;
	return CALL(store, add_temp_root, "add temporary roots", err, p);
}

int store_add_indirect_root(struct store *store, const char *link, struct nib_error **err)
{
	if (link == NULL || link[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0, "root '%s' is not an absolute path",
				     link ? link : "");
	return CALL(store, add_indirect_root, "add roots", err, link);
}

int store_add_perm_root(struct store *store, const char *path, const char *link,
			struct nib_error **err)
{
	cleanup_free char *p = NULL, *tmp = NULL;
	struct stat st;
	int r;

	if (check_path(store, path, &p, err) < 0)
		return -1;
	if (link == NULL || link[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0, "root '%s' is not an absolute path",
				     link ? link : "");
	if (STARTS_WITH(link, store->store_dir) && link[strlen(store->store_dir)] == '/')
		return nib_error_set(err, NIB_E_INVALID, 0, "root '%s' is inside the store", link);
	/* The temporary root covers the moment before the permanent one exists. */
	if (store_add_temp_root(store, p, err) < 0)
		return -1;
	r = store_is_valid(store, p, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid", p);
	if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "cannot create root '%s': it exists and is not a symlink",
				     link);
	tmp = xasprintf("%s.tmp-%ld", link, (long)getpid());
	(void)unlink(tmp);
	if (symlink(p, tmp) < 0)
		return nib_error_errno(err, "cannot create symlink '%s'", tmp);
	if (rename(tmp, link) < 0) {
		int saved = errno;
		(void)unlink(tmp);
		return nib_error_set(err, NIB_E_SYS, saved, "cannot create root '%s'", link);
	}
	return store_add_indirect_root(store, link, err);
}

int store_find_roots(struct store *store, bool include_temp, struct store_root **ret, size_t *ret_n,
		     struct nib_error **err)
{
	return CALL(store, find_roots, "list roots", err, include_temp, ret, ret_n);
}

void store_roots_free(struct store_root *roots, size_t n)
{
	if (roots == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(roots[i].link);
		free(roots[i].path);
	}
	free(roots);
}

int store_collect_garbage(struct store *store, const struct store_gc_options *opts,
			  struct store_gc_result *ret, struct nib_error **err)
{
	for (size_t i = 0; opts->paths != NULL && opts->paths[i] != NULL; i++) {
		cleanup_free char *p = NULL;
		if (check_path(store, opts->paths[i], &p, err) < 0)
			return -1;
		if (!STREQ(p, opts->paths[i]))
			return nib_error_set(err, NIB_E_INVALID, 0, "path '%s' is not normalised",
					     opts->paths[i]);
	}
	return CALL(store, collect_garbage, "collect garbage", err, opts, ret);
}

int store_verify(struct store *store, unsigned flags,
		 void (*fn)(void *userdata, const struct store_verify_problem *p), void *userdata,
		 struct store_verify_result *ret, struct nib_error **err)
{
	return CALL(store, verify, "verify", err, flags, fn, userdata, ret);
}

int store_build_record_add(struct store *store, struct build_record *r, struct nib_error **err)
{
	return CALL(store, build_record_add, "record builds", err, r);
}

int store_build_record_update(struct store *store, const struct build_record *r,
			      struct nib_error **err)
{
	return CALL(store, build_record_update, "record builds", err, r);
}

int store_build_records(struct store *store, const char *drv, size_t limit,
			struct build_record **ret, size_t *ret_n, struct nib_error **err)
{
	return CALL(store, build_records, "list builds", err, drv, limit, ret, ret_n);
}

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cleanup.h"
#include "derivation-store.h"
#include "local-store.h"
#include "path.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)
#define cleanup_cjson __attribute__((cleanup(cJSON_Deletep)))

struct derivation *store_derivation_resolver(void *userdata, const char *drv_path,
					     struct nib_error **err)
{
	return store_read_derivation(userdata, drv_path, err);
}

/* ---- derivation files with relative references ---- */

struct file_entry {
	char *real;	  /* canonical file name */
	char *drv_path;	  /* NULL while the file is being added */
	char **out_names; /* its outputs, parallel to out_paths */
	char **out_paths;
};

struct add_ctx {
	struct store *store;
	struct file_entry *files;
	size_t n, alloc;
};

static void add_ctx_release(struct add_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->files[i].real);
		free(c->files[i].drv_path);
		strv_free(c->files[i].out_names);
		strv_free(c->files[i].out_paths);
	}
	free(c->files);
}

/* What a relative reference of one derivation stands for. */
struct ref {
	char *name;	  /* as written ("./a.json") */
	char *path;	  /* source path, or the .drv path */
	char **outputs;	  /* outputs the derivation lists (NULL for a source) */
	char **out_names; /* the derivation's outputs (NULL for a source) */
	char **out_paths;
};

struct refs {
	struct ref *v;
	size_t n, alloc;
};

static void refs_release(struct refs *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].name);
		free(r->v[i].path);
		strv_free(r->v[i].outputs);
		strv_free(r->v[i].out_names);
		strv_free(r->v[i].out_paths);
	}
	free(r->v);
}

static bool is_relative_ref(const char *s)
{
	return STARTS_WITH(s, "./") || STARTS_WITH(s, "../");
}

static int add_file(struct add_ctx *c, const char *file, int depth, size_t *ret_idx,
		    struct nib_error **err);

/* The key of a store path in this JSON form: full path, or base name from version 3 on. */
static const char *json_store_path(const char *path, bool base_names)
{
	const char *slash = strrchr(path, '/');
	return base_names && slash != NULL ? slash + 1 : path;
}

/* dir/rel, for a file named inside a derivation file. */
static char *resolve_rel(const char *dir, const char *rel)
{
	return xasprintf("%s/%s", dir, rel);
}

/* Output names listed for an input derivation: ["out"] or {"outputs": [...]}. */
static char **listed_outputs(const cJSON *v)
{
	const cJSON *list = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "outputs") : v;
	char **names = xcalloc(1, sizeof(char *));
	const cJSON *e;

	if (!cJSON_IsArray(list))
		return names;
	cJSON_ArrayForEach(e, list) if (cJSON_IsString(e)) strv_push(&names, e->valuestring);
	return names;
}

static int rewrite_input_drvs(struct add_ctx *c, cJSON *drvs, const char *dir, bool base_names,
			      int depth, struct refs *refs, const char *what,
			      struct nib_error **err)
{
	cJSON *item;
	size_t n = 0;
	cleanup_free cJSON **rel = NULL;

	if (!cJSON_IsObject(drvs))
		return 0; /* the parser reports it */
	cJSON_ArrayForEach(item, drvs) n++;
	rel = xcalloc(n + 1, sizeof(cJSON *));
	n = 0;
	cJSON_ArrayForEach(item, drvs) if (item->string != NULL && is_relative_ref(item->string))
		rel[n++] = item;
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *file = resolve_rel(dir, rel[i]->string);
		const struct file_entry *fe;
		struct ref *r;
		size_t idx = 0;

		if (add_file(c, file, depth + 1, &idx, err) < 0)
			return nib_error_prefix(err, "%s '%s'", what, rel[i]->string);
		fe = &c->files[idx];
		ALLOC_GROW(refs->v, refs->n + 1, refs->alloc);
		r = &refs->v[refs->n++];
		memset(r, 0, sizeof(*r));
		r->name = xstrdup(rel[i]->string);
		r->path = xstrdup(fe->drv_path);
		r->outputs = listed_outputs(rel[i]);
		r->out_names = strv_copy(fe->out_names);
		r->out_paths = strv_copy(fe->out_paths);
		cJSON_DetachItemViaPointer(drvs, rel[i]);
		cJSON_AddItemToObject(drvs, json_store_path(fe->drv_path, base_names), rel[i]);
	}
	return 0;
}

static int rewrite_input_srcs(struct add_ctx *c, cJSON *srcs, const char *dir, bool base_names,
			      struct refs *refs, const char *what, struct nib_error **err)
{
	int i = 0;
	cJSON *e;

	if (!cJSON_IsArray(srcs))
		return 0;
	for (e = srcs->child; e != NULL; e = e->next, i++) {
		cleanup_free char *file = NULL, *path = NULL;
		cJSON *repl;
		struct ref *r;

		if (!cJSON_IsString(e) || !is_relative_ref(e->valuestring))
			continue;
		file = resolve_rel(dir, e->valuestring);
		if (store_add_path(c->store, file, NULL, &path, err) < 0)
			return nib_error_prefix(err, "%s '%s'", what, e->valuestring);
		ALLOC_GROW(refs->v, refs->n + 1, refs->alloc);
		r = &refs->v[refs->n++];
		memset(r, 0, sizeof(*r));
		r->name = xstrdup(e->valuestring);
		r->path = xstrdup(path);
		repl = cJSON_CreateString(json_store_path(path, base_names));
		if (repl == NULL)
			abort();
		cJSON_ReplaceItemViaPointer(srcs, e, repl);
		e = repl;
	}
	return 0;
}

/* The store path a string that is exactly a relative reference stands for. */
static int resolve_value(const struct refs *refs, const char *value, const char *where, char **ret,
			 struct nib_error **err)
{
	const char *bang = strrchr(value, '!');
	size_t nlen = bang != NULL ? (size_t)(bang - value) : strlen(value);
	const char *out = bang != NULL ? bang + 1 : "out";

	for (size_t i = 0; i < refs->n; i++) {
		const struct ref *r = &refs->v[i];

		if (strlen(r->name) != nlen || strncmp(r->name, value, nlen) != 0)
			continue;
		if (r->out_names == NULL) {
			if (bang != NULL)
				break; /* a source has no outputs */
			*ret = xstrdup(r->path);
			return 0;
		}
		if (!strv_contains(r->outputs, out))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "%s refers to output '%s' of '%.*s', which its "
					     "inputDrvs entry does not list",
					     where, out, (int)nlen, value);
		for (size_t j = 0; r->out_names[j] != NULL; j++)
			if (STREQ(r->out_names[j], out)) {
				*ret = xstrdup(r->out_paths[j]);
				return 0;
			}
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "%s refers to output '%s' of '%.*s', which has no such output",
				     where, out, (int)nlen, value);
	}
	return nib_error_set(err, NIB_E_INVALID, 0,
			     "%s is the relative reference '%s', which is not one of the "
			     "derivation's inputs",
			     where, value);
}

static int rewrite_string(cJSON *parent, cJSON *item, const struct refs *refs, const char *where,
			  struct nib_error **err)
{
	cleanup_free char *path = NULL;
	cJSON *repl;

	if (!cJSON_IsString(item) || !is_relative_ref(item->valuestring))
		return 0;
	if (resolve_value(refs, item->valuestring, where, &path, err) < 0)
		return -1;
	repl = cJSON_CreateString(path);
	if (repl == NULL)
		abort();
	/* In an object the replacement must carry the member's name. */
	if (cJSON_IsObject(parent))
		cJSON_ReplaceItemInObjectCaseSensitive(parent, item->string, repl);
	else
		cJSON_ReplaceItemViaPointer(parent, item, repl);
	return 0;
}

static int rewrite_uses(cJSON *obj, const struct refs *refs, struct nib_error **err)
{
	cJSON *env = cJSON_GetObjectItemCaseSensitive(obj, "env");
	cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, "args");
	cJSON *builder = cJSON_GetObjectItemCaseSensitive(obj, "builder");
	cJSON *e, *next;

	if (builder != NULL && rewrite_string(obj, builder, refs, "the builder", err) < 0)
		return -1;
	if (cJSON_IsObject(env))
		for (e = env->child; e != NULL; e = next) {
			cleanup_free char *where = xasprintf("env '%s'", e->string);
			next = e->next;
			if (rewrite_string(env, e, refs, where, err) < 0)
				return -1;
		}
	if (cJSON_IsArray(args)) {
		int i = 0;
		for (e = args->child; e != NULL; e = next, i++) {
			cleanup_free char *where = xasprintf("args[%d]", i);
			next = e->next;
			if (rewrite_string(args, e, refs, where, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* Nix's `nix show-derivation` form wraps the object: { "<drv path>": {...} }. */
static cJSON *derivation_object(cJSON *root)
{
	cJSON *k = root->child;

	if (k != NULL && k->next == NULL && cJSON_IsObject(k) && k->string != NULL &&
	    k->string[0] == '/')
		return k;
	return root;
}

static int add_json(struct add_ctx *c, const char *real, const char *text, size_t len, int depth,
		    struct derivation **ret, struct nib_error **err)
{
	cleanup_cjson cJSON *root = cJSON_ParseWithLength(text, len);
	cleanup_free char *dir = xstrdup(real), *printed = NULL;
	struct refs refs = { 0 };
	cJSON *obj, *inputs, *version;
	bool base_names;
	int r = -1;

	/* Malformed JSON: let the derivation parser say where. */
	if (root == NULL || !cJSON_IsObject(root))
		return derivation_parse_json(text, len, store_dir(c->store), NULL, ret, err);
	*strrchr(dir, '/') = '\0';
	obj = derivation_object(root);
	version = cJSON_GetObjectItemCaseSensitive(obj, "version");
	base_names = cJSON_IsNumber(version) && version->valuedouble >= 3;
	inputs = cJSON_GetObjectItemCaseSensitive(obj, "inputs");
	if (cJSON_IsObject(inputs)) {
		if (rewrite_input_drvs(c, cJSON_GetObjectItemCaseSensitive(inputs, "drvs"), dir,
				       base_names, depth, &refs, "input derivation", err) < 0 ||
		    rewrite_input_srcs(c, cJSON_GetObjectItemCaseSensitive(inputs, "srcs"), dir,
				       base_names, &refs, "input source", err) < 0)
			goto out;
	}
	if (rewrite_input_drvs(c, cJSON_GetObjectItemCaseSensitive(obj, "inputDrvs"), dir,
			       base_names, depth, &refs, "input derivation", err) < 0 ||
	    rewrite_input_srcs(c, cJSON_GetObjectItemCaseSensitive(obj, "inputSrcs"), dir,
			       base_names, &refs, "input source", err) < 0)
		goto out;
	if (refs.n == 0) {
		r = derivation_parse_json(text, len, store_dir(c->store), NULL, ret, err);
		goto out;
	}
	if (rewrite_uses(obj, &refs, err) < 0)
		goto out;
	printed = cJSON_PrintUnformatted(root);
	if (printed == NULL)
		abort();
	r = derivation_parse_json(printed, strlen(printed), store_dir(c->store), NULL, ret, err);
out:
	refs_release(&refs);
	return r;
}

static int add_file(struct add_ctx *c, const char *file, int depth, size_t *ret_idx,
		    struct nib_error **err)
{
	cleanup_free char *real = NULL, *text = NULL, *drv_path = NULL;
	cleanup_derivation struct derivation *d = NULL;
	struct file_entry *fe;
	size_t len = 0, idx, i = 0;

	if (depth > DRV_FILE_MAX_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation files refer to each other more than %d deep",
				     DRV_FILE_MAX_DEPTH);
	real = realpath(file, NULL);
	if (real == NULL)
		return nib_error_errno(err, "cannot open '%s'", file);
	for (idx = 0; idx < c->n; idx++) {
		if (!STREQ(c->files[idx].real, real))
			continue;
		if (c->files[idx].drv_path == NULL)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "'%s' refers back to itself through its inputs", real);
		*ret_idx = idx;
		return 0;
	}
	if (read_file_at(AT_FDCWD, real, DRV_MAX_TEXT, &text, &len, err) < 0)
		return -1;
	/* Entries are never removed: an error ends the whole operation. */
	ALLOC_GROW(c->files, c->n + 1, c->alloc);
	idx = c->n++;
	memset(&c->files[idx], 0, sizeof(c->files[idx]));
	c->files[idx].real = xstrdup(real);

	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && text[i] == '{') {
		if (add_json(c, real, text, len, depth, &d, err) < 0)
			return nib_error_prefix(err, "'%s'", depth ? real : file);
	} else if (derivation_parse_any(text, len, store_dir(c->store), NULL, &d, err) < 0) {
		return nib_error_prefix(err, "'%s'", depth ? real : file);
	}
	if (store_add_derivation(c->store, d, &drv_path, err) < 0)
		return nib_error_prefix(err, "'%s'", depth ? real : file);
	fe = &c->files[idx];
	fe->out_names = xcalloc(1, sizeof(char *));
	fe->out_paths = xcalloc(1, sizeof(char *));
	for (size_t j = 0; j < d->n_outputs; j++) {
		strv_push(&fe->out_names, d->outputs[j].name);
		strv_push(&fe->out_paths, d->outputs[j].path ? d->outputs[j].path : "");
	}
	fe->drv_path = TAKE_PTR(drv_path);
	*ret_idx = idx;
	return 0;
}

int store_add_derivation_file(struct store *store, const char *file, char **ret_drv_path,
			      struct nib_error **err)
{
	struct add_ctx c = { .store = store };
	size_t idx = 0;
	int r = add_file(&c, file, 0, &idx, err);

	if (r == 0)
		*ret_drv_path = xstrdup(c.files[idx].drv_path);
	add_ctx_release(&c);
	return r;
}

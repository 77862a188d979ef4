/*
 * build-env.c - structured attributes, exportReferencesGraph, impureEnvVars
 * and output checks.  See build-env.h for the contract.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "build-env.h"
#include "cleanup.h"
#include "derivation-internal.h"
#include "derivation.h"
#include "hash.h"
#include "hashset.h"
#include "path.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)
#define cleanup_cjson __attribute__((cleanup(cJSON_Deletep)))

static const char *drv_label(const struct derivation *d)
{
	return d->name != NULL ? d->name : "?";
}

/* cJSON allocates with malloc; like xmalloc, running out of memory aborts. */
static cJSON *jnew(cJSON *v)
{
	if (v == NULL)
		abort();
	return v;
}

bool build_env_is_structured(const struct derivation *d)
{
	return derivation_get_env(d, "__json") != NULL;
}

/* The parsed "__json" object of d, or NULL without structured attributes. */
static int parse_attrs(const struct derivation *d, cJSON **ret, struct nib_error **err)
{
	const char *json = derivation_get_env(d, "__json");
	cJSON *root;

	*ret = NULL;
	if (json == NULL)
		return 0;
	root = cJSON_Parse(json);
	if (root == NULL || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation '%s' has invalid structured attributes",
				     drv_label(d));
	}
	*ret = root;
	return 0;
}

/* The strings of a JSON list into *ret; error when v is not a list of strings. */
static int json_strings(const cJSON *v, const char *what, const struct derivation *d, char ***ret,
			struct nib_error **err)
{
	cleanup_strv char **out = xcalloc(1, sizeof(char *));

	if (!cJSON_IsArray(v))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "attribute '%s' of derivation '%s' must be a list of strings",
				     what, drv_label(d));
	for (const cJSON *c = v->child; c != NULL; c = c->next) {
		if (!cJSON_IsString(c))
			return nib_error_set(
				err, NIB_E_INVALID, 0,
				"attribute '%s' of derivation '%s' must be a list of strings", what,
				drv_label(d));
		strv_push(&out, c->valuestring);
	}
	*ret = TAKE_PTR(out);
	return 0;
}

/*
 * A list attribute as Nix reads it: from the structured attributes (root)
 * when there are some, else the env variable split at white space.  *ret
 * stays NULL when the attribute is absent (which differs from empty).
 */
static int attr_strings(const struct derivation *d, const cJSON *root, const char *name,
			char ***ret, struct nib_error **err)
{
	*ret = NULL;
	if (root != NULL) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
		return v != NULL ? json_strings(v, name, d, ret, err) : 0;
	}
	if (derivation_get_env(d, name) != NULL) {
		*ret = xcalloc(1, sizeof(char *));
		strv_push_words(ret, derivation_get_env(d, name));
	}
	return 0;
}

/* ---- .attrs.sh ---- */

void build_env_shell_quote(struct strbuf *out, const char *s)
{
	strbuf_addch(out, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			strbuf_addstr(out, "'\\''");
		else
			strbuf_addch(out, *s);
	}
	strbuf_addch(out, '\'');
}

static bool shell_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/*
 * A scalar bash can hold, appended to out: strings quoted, integral numbers
 * as integers, null (and a number too large for a double) as '', true as 1
 * and false as nothing.  false when v is something else (a fraction, a
 * list, an object).
 */
static bool shell_scalar(struct strbuf *out, const cJSON *v)
{
	if (cJSON_IsString(v)) {
		build_env_shell_quote(out, v->valuestring);
	} else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		double x = v->valuedouble;
		if (x != floor(x) || fabs(x) >= 9.2e18)
			return false;
		strbuf_addf(out, "%lld", (long long)x);
	} else if (cJSON_IsNull(v) || cJSON_IsNumber(v)) {
		/* An overflowing number (1e999) is null in .attrs.json too. */
		strbuf_addstr(out, "''");
	} else if (cJSON_IsBool(v)) {
		if (cJSON_IsTrue(v))
			strbuf_addch(out, '1');
	} else {
		return false;
	}
	return true;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* The members of an object, sorted by key (caller frees the array). */
static const cJSON **sorted_members(const cJSON *obj, size_t *ret_n)
{
	size_t n = 0;
	const cJSON **v;

	for (const cJSON *c = obj->child; c != NULL; c = c->next)
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	n = 0;
	for (const cJSON *c = obj->child; c != NULL; c = c->next)
		v[n++] = c;
	sort_array(v, n, sizeof(*v), cmp_member);
	*ret_n = n;
	return v;
}

static void attrs_sh(const cJSON *root, struct strbuf *out)
{
	size_t n;
	cleanup_free const cJSON **members = sorted_members(root, &n);
	cleanup_strbuf struct strbuf val = STRBUF_INIT;

	for (size_t i = 0; i < n; i++) {
		const cJSON *v = members[i];
		const char *flag = NULL;
		bool good = true;

		if (!shell_name(v->string))
			continue;
		strbuf_reset(&val);
		if (shell_scalar(&val, v)) {
			strbuf_addf(out, "declare %s=%s\n", v->string, val.buf);
			continue;
		}
		if (cJSON_IsArray(v)) {
			flag = "-a";
			for (const cJSON *c = v->child; c != NULL && good; c = c->next) {
				good = shell_scalar(&val, c);
				strbuf_addch(&val, ' ');
			}
		} else if (cJSON_IsObject(v)) {
			size_t m;
			cleanup_free const cJSON **kids = sorted_members(v, &m);

			flag = "-A";
			for (size_t k = 0; k < m && good; k++) {
				strbuf_addch(&val, '[');
				build_env_shell_quote(&val, kids[k]->string);
				strbuf_addstr(&val, "]=");
				good = shell_scalar(&val, kids[k]);
				strbuf_addch(&val, ' ');
			}
		}
		if (flag != NULL && good)
			strbuf_addf(out, "declare %s %s=(%s)\n", flag, v->string, val.buf);
	}
}

int build_env_attrs_sh(const char *json, struct strbuf *out, struct nib_error **err)
{
	cleanup_cjson cJSON *root = cJSON_Parse(json);

	if (root == NULL || !cJSON_IsObject(root))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "structured attributes are not an object");
	attrs_sh(root, out);
	return 0;
}

/* ---- .attrs.json ---- */

/* Set key in obj to v (taking it), replacing a member of that name. */
static void set_member(cJSON *obj, const char *key, cJSON *v)
{
	if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL)
		cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
	else
		cJSON_AddItemToObject(obj, key, v);
}

static cJSON *path_info_json(const struct store_path_info *info, uint64_t closure_size)
{
	cJSON *o = jnew(cJSON_CreateObject());
	cJSON *refs = jnew(cJSON_CreateArray());
	cleanup_free char *nar = hash_to_string(&info->nar_hash, HASH_ENC_BASE32, true);

	if (info->ca != NULL)
		cJSON_AddItemToObject(o, "ca", jnew(cJSON_CreateString(info->ca)));
	cJSON_AddItemToObject(o, "closureSize", jnew(cJSON_CreateNumber((double)closure_size)));
	cJSON_AddItemToObject(o, "narHash", jnew(cJSON_CreateString(nar)));
	cJSON_AddItemToObject(o, "narSize", jnew(cJSON_CreateNumber((double)info->nar_size)));
	cJSON_AddItemToObject(o, "path", jnew(cJSON_CreateString(info->path)));
	for (char **r = info->references; r != NULL && *r != NULL; r++)
		cJSON_AddItemToArray(refs, jnew(cJSON_CreateString(*r)));
	cJSON_AddItemToObject(o, "references", refs);
	cJSON_AddItemToObject(o, "valid", jnew(cJSON_CreateTrue()));
	return o;
}

int build_env_structured(const struct derivation *d, const struct build_env_graph *graphs,
			 size_t n_graphs, struct strbuf *ret_json, struct strbuf *ret_sh,
			 struct nib_error **err)
{
	cleanup_cjson cJSON *root = NULL;
	cJSON *outs;

	if (parse_attrs(d, &root, err) < 0)
		return -1;
	if (root == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation '%s' has no structured attributes", drv_label(d));
	outs = jnew(cJSON_CreateObject());
	set_member(root, "outputs", outs);
	for (size_t i = 0; i < d->n_outputs; i++) {
		if (d->outputs[i].path == NULL)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "output '%s' of derivation '%s' has no path yet",
					     d->outputs[i].name, drv_label(d));
		cJSON_AddItemToObject(outs, d->outputs[i].name,
				      jnew(cJSON_CreateString(d->outputs[i].path)));
	}
	for (size_t g = 0; g < n_graphs; g++) {
		cJSON *list;

		if (STREQ(graphs[g].key, "outputs"))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "exportReferencesGraph of derivation '%s' may not "
					     "replace 'outputs'",
					     drv_label(d));
		list = jnew(cJSON_CreateArray());
		for (size_t i = 0; i < graphs[g].n; i++)
			cJSON_AddItemToArray(list, path_info_json(&graphs[g].infos[i],
								  graphs[g].closure_sizes[i]));
		set_member(root, graphs[g].key, list);
	}
	if (drv_json_dump_sorted(root, ret_json, err) < 0)
		return nib_error_prefix(err, "structured attributes of derivation '%s'",
					drv_label(d));
	attrs_sh(root, ret_sh);
	return 0;
}

void build_env_validity_text(const struct store_path_info *infos, size_t n, struct strbuf *out)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_addf(out, "%s\n\n%zu\n", infos[i].path, strv_length(infos[i].references));
		for (char **r = infos[i].references; r != NULL && *r != NULL; r++)
			strbuf_addf(out, "%s\n", *r);
	}
}

/* ---- exportReferencesGraph ---- */

static bool sorted_contains(char *const *v, const char *s)
{
	return v != NULL && bsearch(&s, v, strv_length(v), sizeof(char *), strp_cmp) != NULL;
}

/* A closure with its path information and each path's closure size. */
struct export_set {
	char **paths; /* sorted */
	struct store_path_info *infos;
	uint64_t *sizes;
	size_t n;
};

static void export_set_release(struct export_set *x)
{
	for (size_t i = 0; i < x->n; i++)
		store_path_info_release(&x->infos[i]);
	free(x->infos);
	free(x->sizes);
	strv_free(x->paths);
	memset(x, 0, sizeof(*x));
}

/*
 * The closure of roots (store paths, possibly with subpaths), each of which
 * must lie in the input closure.  Sizes sum the NAR sizes of each path's
 * own closure, which lies within the set.
 */
static int export_closure(struct store *store, char *const *roots, char *const *closure,
			  struct export_set *ret, struct nib_error **err)
{
	cleanup_strv char **tops = xcalloc(1, sizeof(char *));
	cleanup_free bool *seen = NULL;
	cleanup_free size_t *queue = NULL;
	struct export_set x = { 0 };

	for (size_t i = 0; roots[i] != NULL; i++) {
		struct store_path sp;
		cleanup_free char *p = NULL;

		if (store_path_parse(store_dir(store), roots[i], true, &sp, err) < 0)
			return nib_error_prefix(err, "exportReferencesGraph");
		p = store_path_to_string(store_dir(store), &sp);
		if (!sorted_contains(closure, p))
			return nib_error_set(err, NIB_E_BUILD_FAILED, 0,
					     "cannot export references of path '%s' because it is "
					     "not in the input closure of the derivation",
					     p);
		strv_push(&tops, p);
	}
	if (store_query_closure(store, tops, strv_length(tops), 0, &x.paths, err) < 0)
		return -1;
	x.n = strv_length(x.paths);
	x.infos = xcalloc(x.n + 1, sizeof(*x.infos));
	x.sizes = xcalloc(x.n + 1, sizeof(*x.sizes));
	if (store_query_path_infos(store, x.paths, x.n, x.infos, err) < 0) {
		export_set_release(&x);
		return -1;
	}
	seen = xcalloc(x.n + 1, sizeof(bool));
	queue = xcalloc(x.n + 1, sizeof(size_t));
	for (size_t i = 0; i < x.n; i++) {
		size_t head = 0, tail = 0;

		memset(seen, 0, x.n * sizeof(bool));
		seen[i] = true;
		queue[tail++] = i;
		while (head < tail) {
			const struct store_path_info *in = &x.infos[queue[head++]];

			x.sizes[i] += in->nar_size;
			for (char **r = in->references; r != NULL && *r != NULL; r++) {
				char **hit = bsearch(r, x.paths, x.n, sizeof(char *), strp_cmp);
				size_t k = hit != NULL ? (size_t)(hit - x.paths) : 0;

				if (hit != NULL && !seen[k]) {
					seen[k] = true;
					queue[tail++] = k;
				}
			}
		}
	}
	*ret = x;
	return 0;
}

/* Every string of an exportReferencesGraph value: a string or (nested) lists of them. */
static int flatten_paths(const cJSON *v, char ***out, int depth, struct nib_error **err)
{
	if (cJSON_IsString(v)) {
		strv_push(out, v->valuestring);
		return 0;
	}
	if (!cJSON_IsArray(v) || depth > DRV_MAX_JSON_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "'exportReferencesGraph' value is not an array or a string");
	for (const cJSON *c = v->child; c != NULL; c = c->next)
		if (flatten_paths(c, out, depth + 1, err) < 0)
			return -1;
	return 0;
}

static int open_dir(const struct build_env_dir *dir, int *ret_fd, struct nib_error **err)
{
	int fd = open(dir->host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s'", dir->host);
	*ret_fd = fd;
	return 0;
}

/* Create name in the build directory (never through a symlink) for the builder. */
static int write_builder_file(int dfd, const struct build_env_dir *dir, const char *name,
			      const char *data, size_t len, struct nib_error **err)
{
	cleanup_close int fd =
		openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return nib_error_errno(err, "cannot create '%s/%s'", dir->host, name);
	if (write_full(fd, data, len, err) < 0)
		return nib_error_prefix(err, "writing '%s/%s'", dir->host, name);
	if (fchown(fd, dir->uid, dir->gid) < 0)
		return nib_error_errno(err, "cannot change the owner of '%s/%s'", dir->host, name);
	return 0;
}

static int prepare_structured(struct store *store, const struct derivation *d, char *const *closure,
			      const struct build_env_dir *dir, char ***vars, struct nib_error **err)
{
	cleanup_cjson cJSON *root = NULL;
	cleanup_strbuf struct strbuf json = STRBUF_INIT, sh = STRBUF_INIT;
	cleanup_free struct export_set *sets = NULL;
	cleanup_free struct build_env_graph *graphs = NULL;
	cleanup_close int dfd = -1;
	cleanup_free char *json_path = NULL, *sh_path = NULL;
	const cJSON *erg;
	size_t n = 0;
	int r = -1;

	if (parse_attrs(d, &root, err) < 0)
		return -1;
	erg = cJSON_GetObjectItemCaseSensitive(root, "exportReferencesGraph");
	/* Nix ignores a value that is not an object. */
	if (erg != NULL && cJSON_IsObject(erg))
		for (const cJSON *c = erg->child; c != NULL; c = c->next)
			n++;
	sets = xcalloc(n + 1, sizeof(*sets));
	graphs = xcalloc(n + 1, sizeof(*graphs));
	n = 0;
	if (erg != NULL && cJSON_IsObject(erg)) {
		for (const cJSON *c = erg->child; c != NULL; c = c->next, n++) {
			cleanup_strv char **roots = xcalloc(1, sizeof(char *));

			if (flatten_paths(c, &roots, 0, err) < 0 ||
			    export_closure(store, roots, closure, &sets[n], err) < 0) {
				nib_error_prefix(err,
						 "exportReferencesGraph '%s' of derivation '%s'",
						 c->string, drv_label(d));
				goto out;
			}
			graphs[n].key = c->string;
			graphs[n].infos = sets[n].infos;
			graphs[n].closure_sizes = sets[n].sizes;
			graphs[n].n = sets[n].n;
		}
	}
	if (build_env_structured(d, graphs, n, &json, &sh, err) < 0 || open_dir(dir, &dfd, err) < 0)
		goto out;
	if (write_builder_file(dfd, dir, ".attrs.json", json.buf, json.len, err) < 0 ||
	    write_builder_file(dfd, dir, ".attrs.sh", sh.buf, sh.len, err) < 0)
		goto out;
	json_path = xasprintf("%s/.attrs.json", dir->inside);
	sh_path = xasprintf("%s/.attrs.sh", dir->inside);
	strv_push(vars, "NIX_ATTRS_JSON_FILE");
	strv_push(vars, json_path);
	strv_push(vars, "NIX_ATTRS_SH_FILE");
	strv_push(vars, sh_path);
	r = 0;
out:
	for (size_t i = 0; i < n + 1; i++)
		export_set_release(&sets[i]);
	return r;
}

static bool graph_file_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

/* A path named by exportReferencesGraph must be a store path (subpaths allowed). */
static int check_graph_path(const char *store_dir, const char *p, struct nib_error **err)
{
	struct store_path sp;

	if (store_path_parse(store_dir, p, true, &sp, err) < 0)
		return nib_error_prefix(err, "exportReferencesGraph");
	return 0;
}

/* Classic exportReferencesGraph: "name1 path1 name2 path2 ..." in env, checked. */
static int classic_graph(const struct derivation *d, const char *store_dir, char ***ret,
			 struct nib_error **err)
{
	const char *spec = derivation_get_env(d, "exportReferencesGraph");
	cleanup_strv char **words = xcalloc(1, sizeof(char *));
	size_t n;

	strv_push_words(&words, spec);
	n = strv_length(words);
	if (n % 2 != 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "odd number of tokens in 'exportReferencesGraph': '%s'", spec);
	for (size_t i = 0; i < n; i += 2) {
		if (!graph_file_name(words[i]))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "invalid file name '%s' in 'exportReferencesGraph'",
					     words[i]);
		if (check_graph_path(store_dir, words[i + 1], err) < 0)
			return -1;
	}
	*ret = TAKE_PTR(words);
	return 0;
}

/* The paths of each structured exportReferencesGraph entry, checked; NULL-safe on erg. */
static int structured_graph_check(const cJSON *erg, const char *store_dir, struct nib_error **err)
{
	for (const cJSON *c = erg != NULL && cJSON_IsObject(erg) ? erg->child : NULL; c != NULL;
	     c = c->next) {
		cleanup_strv char **roots = xcalloc(1, sizeof(char *));

		if (flatten_paths(c, &roots, 0, err) < 0)
			return nib_error_prefix(err, "exportReferencesGraph '%s'", c->string);
		for (size_t i = 0; roots[i] != NULL; i++)
			if (check_graph_path(store_dir, roots[i], err) < 0)
				return -1;
	}
	return 0;
}

static int prepare_graph_files(struct store *store, const struct derivation *d,
			       char *const *closure, const struct build_env_dir *dir,
			       struct nib_error **err)
{
	cleanup_strv char **words = NULL;
	cleanup_close int dfd = -1;
	size_t n;

	if (classic_graph(d, store_dir(store), &words, err) < 0)
		return -1;
	n = strv_length(words);
	if (n == 0)
		return 0;
	if (open_dir(dir, &dfd, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		char *roots[2] = { words[i + 1], NULL };
		struct export_set x = { 0 };
		cleanup_strbuf struct strbuf text = STRBUF_INIT;
		bool later = false;
		int r;

		/* A name given again: the last one wins. */
		for (size_t k = i + 2; k < n && !later; k += 2)
			later = STREQ(words[k], words[i]);
		if (later)
			continue;
		if (export_closure(store, roots, closure, &x, err) < 0)
			return -1;
		build_env_validity_text(x.infos, x.n, &text);
		export_set_release(&x);
		r = write_builder_file(dfd, dir, words[i], text.buf, text.len, err);
		if (r < 0)
			return -1;
	}
	return 0;
}

int build_env_prepare(struct store *store, const struct derivation *d, char *const *closure,
		      const struct build_env_dir *dir, char ***vars, struct nib_error **err)
{
	if (build_env_is_structured(d))
		return prepare_structured(store, d, closure, dir, vars, err);
	return prepare_graph_files(store, d, closure, dir, err);
}

/* ---- impureEnvVars ---- */

int build_env_impure_vars(const struct derivation *d, char *const *impure_env, char ***vars,
			  struct nib_error **err)
{
	cleanup_cjson cJSON *root = NULL;
	cleanup_strv char **names = NULL;

	if (parse_attrs(d, &root, err) < 0 ||
	    attr_strings(d, root, "impureEnvVars", &names, err) < 0)
		return -1;
	for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
		const char *name = names[i], *value = NULL;
		size_t len = strlen(name);

		if (len == 0 || strchr(name, '=') != NULL)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "impureEnvVars of derivation '%s' names an invalid "
					     "variable '%s'",
					     drv_label(d), name);
		for (char *const *e = impure_env; e != NULL && *e != NULL && value == NULL; e++)
			if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
				value = *e + len + 1;
		if (value == NULL)
			value = getenv(name);
		strv_push(vars, name);
		strv_push(vars, value != NULL ? value : "");
	}
	return 0;
}

/* ---- output checks ---- */

enum check_kind {
	ALLOWED_REFS,
	ALLOWED_REQS,
	DISALLOWED_REFS,
	DISALLOWED_REQS,
	_CHECK_KIND_MAX
};

static const char *const check_names[_CHECK_KIND_MAX] = {
	[ALLOWED_REFS] = "allowedReferences",
	[ALLOWED_REQS] = "allowedRequisites",
	[DISALLOWED_REFS] = "disallowedReferences",
	[DISALLOWED_REQS] = "disallowedRequisites",
};

struct out_checks {
	bool ignore_self_refs; /* requisites leave the output itself out (without structured attrs) */
	bool has_max_size, has_max_closure;
	uint64_t max_size, max_closure;
	char **lists[_CHECK_KIND_MAX]; /* NULL: absent */
};

static void out_checks_release(struct out_checks *k)
{
	for (int i = 0; i < _CHECK_KIND_MAX; i++)
		strv_free(k->lists[i]);
	memset(k, 0, sizeof(*k));
}

static int json_size(const cJSON *o, const char *key, const char *out, const struct derivation *d,
		     bool *ret_has, uint64_t *ret, struct nib_error **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble >= 1.8e19)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "outputChecks.%s.%s of derivation '%s' must be a non-negative "
				     "integer",
				     out, key, drv_label(d));
	*ret_has = true;
	*ret = (uint64_t)v->valuedouble;
	return 0;
}

/* The checks that apply to output `out`; none (all absent) is fine. */
static int read_checks(const struct derivation *d, const cJSON *root, const char *out,
		       struct out_checks *ret, struct nib_error **err)
{
	const cJSON *all, *o;

	memset(ret, 0, sizeof(*ret));
	if (root == NULL) {
		ret->ignore_self_refs = true;
		for (int i = 0; i < _CHECK_KIND_MAX; i++)
			if (attr_strings(d, NULL, check_names[i], &ret->lists[i], err) < 0)
				return -1;
		return 0;
	}
	/* With structured attributes only outputChecks counts. */
	all = cJSON_GetObjectItemCaseSensitive(root, "outputChecks");
	if (all == NULL)
		return 0;
	if (!cJSON_IsObject(all))
		return nib_error_set(
			err, NIB_E_INVALID, 0,
			"attribute 'outputChecks' of derivation '%s' must be an object",
			drv_label(d));
	o = cJSON_GetObjectItemCaseSensitive(all, out);
	if (o == NULL)
		return 0;
	if (!cJSON_IsObject(o))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "outputChecks.%s of derivation '%s' must be an object", out,
				     drv_label(d));
	if (json_size(o, "maxSize", out, d, &ret->has_max_size, &ret->max_size, err) < 0 ||
	    json_size(o, "maxClosureSize", out, d, &ret->has_max_closure, &ret->max_closure, err) <
		    0)
		return -1;
	for (int i = 0; i < _CHECK_KIND_MAX; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, check_names[i]);
		cleanup_free char *what = xasprintf("outputChecks.%s.%s", out, check_names[i]);

		if (v != NULL && json_strings(v, what, d, &ret->lists[i], err) < 0) {
			out_checks_release(ret);
			return -1;
		}
	}
	return 0;
}

struct check_ctx {
	struct store *store;
	const char *drv_path;
	const struct derivation *d;
	const struct store_path_info *infos;
};

/* Index of the output whose path is path, or -1. */
static ssize_t output_index(const struct check_ctx *c, const char *path)
{
	for (size_t i = 0; i < c->d->n_outputs; i++)
		if (STREQ(c->infos[i].path, path))
			return (ssize_t)i;
	return -1;
}

/*
 * The closure of output k (itself included, sorted) and its size: the
 * other outputs are not valid yet, so they are followed through infos; the
 * rest through the store.
 */
static int output_closure(const struct check_ctx *c, size_t k, char ***ret, uint64_t *ret_size,
			  struct nib_error **err)
{
	size_t n_out = c->d->n_outputs, head = 0, tail = 0;
	cleanup_free size_t *queue = xcalloc(n_out + 1, sizeof(size_t));
	cleanup_free bool *seen = xcalloc(n_out + 1, sizeof(bool));
	cleanup_strset struct strset *ext = strset_new();
	cleanup_strv char **ext_v = NULL, **ext_closure = NULL, **all = xcalloc(1, sizeof(char *));
	cleanup_free struct store_path_info *ext_infos = NULL;
	uint64_t size = 0;
	size_t n_ext;

	seen[k] = true;
	queue[tail++] = k;
	while (head < tail) {
		const struct store_path_info *in = &c->infos[queue[head++]];

		size += in->nar_size;
		strv_push(&all, in->path);
		for (char **r = in->references; r != NULL && *r != NULL; r++) {
			ssize_t o = output_index(c, *r);
			if (o < 0)
				strset_add(ext, *r);
			else if (!seen[o]) {
				seen[o] = true;
				queue[tail++] = (size_t)o;
			}
		}
	}
	ext_v = strset_to_sorted_strv(ext);
	if (store_query_closure(c->store, ext_v, strv_length(ext_v), 0, &ext_closure, err) < 0)
		return -1;
	n_ext = strv_length(ext_closure);
	ext_infos = xcalloc(n_ext + 1, sizeof(*ext_infos));
	if (store_query_path_infos(c->store, ext_closure, n_ext, ext_infos, err) < 0)
		return -1;
	for (size_t i = 0; i < n_ext; i++) {
		size += ext_infos[i].nar_size;
		strv_push(&all, ext_closure[i]);
		store_path_info_release(&ext_infos[i]);
	}
	sort_array(all, strv_length(all), sizeof(char *), strp_cmp);
	*ret = TAKE_PTR(all);
	*ret_size = size;
	return 0;
}

/* Turn reference specifiers (store paths or output names) into paths. */
static int resolve_spec(const struct check_ctx *c, const char *out, char *const *spec, char ***ret,
			struct nib_error **err)
{
	cleanup_strv char **v = xcalloc(1, sizeof(char *));

	for (size_t i = 0; spec[i] != NULL; i++) {
		struct store_path sp;
		cleanup_error struct nib_error *e = NULL;
		const struct drv_output *o;

		if (store_path_parse(store_dir(c->store), spec[i], false, &sp, &e) == 0) {
			strv_push(&v, spec[i]);
			continue;
		}
		o = derivation_find_output(c->d, spec[i]);
		if (o != NULL) {
			strv_push(&v, c->infos[o - c->d->outputs].path);
			continue;
		}
		{
			cleanup_strbuf struct strbuf names = STRBUF_INIT;
			for (size_t k = 0; k < c->d->n_outputs; k++)
				strbuf_addf(&names, "%s%s", k ? ", " : "", c->d->outputs[k].name);
			return nib_error_set(
				err, NIB_E_BUILD_FAILED, 0,
				"derivation '%s' output check for '%s' contains an "
				"illegal reference specifier '%s', expected store path or "
				"output name (one of [%s])",
				c->drv_path, out, spec[i], names.buf);
		}
	}
	sort_array(v, strv_length(v), sizeof(char *), strp_cmp);
	*ret = TAKE_PTR(v);
	return 0;
}

static int check_one(const struct check_ctx *c, size_t k, const struct out_checks *ck,
		     struct nib_error **err)
{
	const struct store_path_info *info = &c->infos[k];
	const char *out = c->d->outputs[k].name;
	cleanup_strv char **closure = NULL;
	uint64_t closure_size = 0;

	if (ck->has_max_size && info->nar_size > ck->max_size)
		return nib_error_set(err, NIB_E_BUILD_FAILED, 0,
				     "path '%s' is too large at %llu bytes; limit is %llu bytes",
				     info->path, (unsigned long long)info->nar_size,
				     (unsigned long long)ck->max_size);
	if (ck->has_max_closure || ck->lists[ALLOWED_REQS] != NULL ||
	    (ck->lists[DISALLOWED_REQS] != NULL && ck->lists[DISALLOWED_REQS][0] != NULL)) {
		if (output_closure(c, k, &closure, &closure_size, err) < 0)
			return -1;
	}
	if (ck->has_max_closure && closure_size > ck->max_closure)
		return nib_error_set(err, NIB_E_BUILD_FAILED, 0,
				     "closure of path '%s' is too large at %llu bytes; limit is "
				     "%llu bytes",
				     info->path, (unsigned long long)closure_size,
				     (unsigned long long)ck->max_closure);
	for (int kind = 0; kind < _CHECK_KIND_MAX; kind++) {
		bool allowed = kind == ALLOWED_REFS || kind == ALLOWED_REQS;
		bool recursive = kind == ALLOWED_REQS || kind == DISALLOWED_REQS;
		char *const *used = recursive ? closure : info->references;
		cleanup_strv char **spec = NULL, **badv = xcalloc(1, sizeof(char *));
		cleanup_strbuf struct strbuf bad = STRBUF_INIT;

		/* An absent allow-list allows everything; an empty one nothing. */
		if (ck->lists[kind] == NULL || (!allowed && ck->lists[kind][0] == NULL))
			continue;
		if (resolve_spec(c, out, ck->lists[kind], &spec, err) < 0)
			return -1;
		for (size_t i = 0; used != NULL && used[i] != NULL; i++) {
			if (recursive && ck->ignore_self_refs && STREQ(used[i], info->path))
				continue;
			if (sorted_contains(spec, used[i]) != allowed)
				strv_push(&badv, used[i]);
		}
		/* Scanned references come in the order of the candidates, not sorted. */
		sort_array(badv, strv_length(badv), sizeof(char *), strp_cmp);
		for (size_t i = 0; badv[i] != NULL; i++)
			strbuf_addf(&bad, "\n  %s", badv[i]);
		if (bad.len > 0)
			return nib_error_set(err, NIB_E_BUILD_FAILED, 0,
					     "output '%s' is not allowed to refer to the following "
					     "paths (%s):%s",
					     info->path, check_names[kind], bad.buf);
	}
	return 0;
}

/*
 * Outputs may refer to each other, but not in a cycle (nothing could be
 * registered first).  A depth-first walk along those references, with its
 * own stack (a builder chooses how long a chain is); state 1 is on the
 * current path, 2 done.  A cycle is reported as Nix reports it: the output
 * reached again and the one it was reached from.
 */
static int check_cycles(const struct check_ctx *c, struct nib_error **err)
{
	size_t n = c->d->n_outputs;
	cleanup_free char *state = xcalloc(n + 1, 1);
	cleanup_free size_t *node = xcalloc(n + 1, sizeof(size_t));
	cleanup_free size_t *next = xcalloc(n + 1, sizeof(size_t));

	for (size_t top = 0; top < n; top++) {
		size_t depth = 0;

		if (state[top] != 0)
			continue;
		state[top] = 1;
		node[0] = top;
		next[0] = 0;
		depth = 1;
		while (depth > 0) {
			size_t k = node[depth - 1];
			char *const *refs = c->infos[k].references;
			const char *r = refs != NULL ? refs[next[depth - 1]] : NULL;
			ssize_t o;

			if (r == NULL) {
				state[k] = 2;
				depth--;
				continue;
			}
			next[depth - 1]++;
			o = output_index(c, r);
			if (o < 0 || (size_t)o == k || state[o] == 2)
				continue;
			if (state[o] == 1)
				return nib_error_set(
					err, NIB_E_BUILD_FAILED, 0,
					"cycle detected in build of '%s' in the references "
					"of output '%s' from output '%s'",
					c->drv_path, c->d->outputs[o].name, c->d->outputs[k].name);
			state[o] = 1;
			node[depth] = (size_t)o;
			next[depth] = 0;
			depth++;
		}
	}
	return 0;
}

int build_env_check_outputs(struct store *store, const char *drv_path, const struct derivation *d,
			    const struct store_path_info *infos, struct nib_error **err)
{
	struct check_ctx c = { store, drv_path, d, infos };
	cleanup_cjson cJSON *root = NULL;

	if (check_cycles(&c, err) < 0 || parse_attrs(d, &root, err) < 0)
		return -1;
	for (size_t k = 0; k < d->n_outputs; k++) {
		struct out_checks ck;
		int r;

		if (read_checks(d, root, d->outputs[k].name, &ck, err) < 0)
			return -1;
		r = check_one(&c, k, &ck, err);
		out_checks_release(&ck);
		if (r < 0)
			return -1;
	}
	return 0;
}

int build_env_validate(const struct derivation *d, const char *store_dir, struct nib_error **err)
{
	cleanup_cjson cJSON *root = NULL;
	cleanup_strv char **names = NULL, **words = NULL;

	if (parse_attrs(d, &root, err) < 0 ||
	    attr_strings(d, root, "impureEnvVars", &names, err) < 0)
		return -1;
	if (root != NULL) {
		if (structured_graph_check(
			    cJSON_GetObjectItemCaseSensitive(root, "exportReferencesGraph"),
			    store_dir, err) < 0)
			return nib_error_prefix(err, "derivation '%s'", drv_label(d));
	} else if (classic_graph(d, store_dir, &words, err) < 0) {
		return nib_error_prefix(err, "derivation '%s'", drv_label(d));
	}
	for (size_t k = 0; k < d->n_outputs; k++) {
		struct out_checks ck;

		if (read_checks(d, root, d->outputs[k].name, &ck, err) < 0)
			return -1;
		out_checks_release(&ck);
	}
	return 0;
}

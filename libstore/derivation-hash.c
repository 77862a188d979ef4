#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cleanup.h"
#include "derivation.h"
#include "derivation-internal.h"
#include "util.h"
#include "banned.h"

/* ---- classification ---- */

int derivation_type(const struct derivation *d, enum drv_type *ret, struct nib_error **err)
{
	const char *name = d->name ? d->name : "?";
	enum drv_output_kind kind;

	if (d->n_outputs == 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "derivation '%s' has no outputs", name);
	kind = d->outputs[0].kind;
	for (size_t i = 0; i < d->n_outputs; i++) {
		if ((unsigned)d->outputs[i].kind >= _DRV_OUT_KIND_MAX)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "output '%s' of derivation '%s' has an invalid kind",
					     d->outputs[i].name, name);
		if (d->outputs[i].kind != kind)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "derivation '%s' mixes output types", name);
	}
	switch (kind) {
	case DRV_OUT_INPUT_ADDRESSED:
		*ret = DRV_TYPE_INPUT_ADDRESSED;
		return 0;
	case DRV_OUT_DEFERRED:
		*ret = DRV_TYPE_DEFERRED;
		return 0;
	case DRV_OUT_CA_FIXED:
		if (d->n_outputs != 1)
			return nib_error_set(
				err, NIB_E_INVALID, 0,
				"fixed-output derivation '%s' has %zu outputs; only one "
				"is allowed",
				name, d->n_outputs);
		if (!STREQ(d->outputs[0].name, "out"))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "the output of fixed-output derivation '%s' must be "
					     "called 'out', not '%s'",
					     name, d->outputs[0].name);
		*ret = DRV_TYPE_FIXED;
		return 0;
	case DRV_OUT_CA_FLOATING:
		for (size_t i = 1; i < d->n_outputs; i++)
			if (d->outputs[i].hash.algo != d->outputs[0].hash.algo)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "floating outputs of derivation '%s' use "
						     "different hash algorithms",
						     name);
		*ret = DRV_TYPE_FLOATING;
		return 0;
	default:
		*ret = DRV_TYPE_IMPURE;
		return 0;
	}
}

static int need_name(const struct derivation *d, struct nib_error **err)
{
	if (d->name == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation has no name (no 'name' in its environment)");
	return 0;
}

/* Path of a fixed (content-addressed) output. */
static int fixed_path(const char *store_dir, const char *name, const struct drv_output *out,
		      struct store_path *ret, struct nib_error **err)
{
	switch (out->method) {
	case DRV_CA_FLAT:
	case DRV_CA_NAR:
		return store_path_make_fixed(store_dir, name, out->method == DRV_CA_NAR, &out->hash,
					     NULL, ret, err);
	case DRV_CA_TEXT:
		return store_path_make_text(store_dir, name, &out->hash, NULL, ret, err);
	case DRV_CA_GIT: {
		cleanup_free char *hex = hash_to_string(&out->hash, HASH_ENC_BASE16, true);
		cleanup_free char *s = xasprintf("fixed:out:git:%s:", hex);
		struct hash inner;

		hash_string(HASH_SHA256, s, &inner);
		return store_path_make("output:out", &inner, store_dir, name, ret, err);
	}
	default:
		return nib_error_set(err, NIB_E_INVALID, 0, "invalid content-address method");
	}
}

/* ---- the hashing context and its memo ---- */

struct memo_entry {
	struct memo_entry *next;
	char *path;
	bool done; /* false while its hash is being computed (cycle detection) */
	struct drv_modulo m;
};

struct drv_hasher {
	char *store_dir;
	drv_resolve_fn resolve;
	void *userdata;
	struct memo_entry **buckets;
	size_t n_buckets, n;
};

struct drv_hasher *drv_hasher_new(const char *store_dir, drv_resolve_fn resolve, void *userdata)
{
	struct drv_hasher *h = xcalloc(1, sizeof(*h));

	h->store_dir = xstrdup(store_dir);
	h->resolve = resolve;
	h->userdata = userdata;
	h->n_buckets = 64;
	h->buckets = xcalloc(h->n_buckets, sizeof(*h->buckets));
	return h;
}

void drv_modulo_release(struct drv_modulo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->outputs[i]);
	free(m->outputs);
	free(m->hashes);
	memset(m, 0, sizeof(*m));
}

static void entry_free(struct memo_entry *e)
{
	free(e->path);
	drv_modulo_release(&e->m);
	free(e);
}

void drv_hasher_free(struct drv_hasher *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n_buckets; i++)
		for (struct memo_entry *e = h->buckets[i], *next; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	free(h->buckets);
	free(h->store_dir);
	free(h);
}

static size_t str_hash(const char *s)
{
	uint64_t x = 1469598103934665603ULL;

	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)x;
}

static struct memo_entry *memo_find(struct drv_hasher *h, const char *path)
{
	for (struct memo_entry *e = h->buckets[str_hash(path) % h->n_buckets]; e; e = e->next)
		if (STREQ(e->path, path))
			return e;
	return NULL;
}

static struct memo_entry *memo_add(struct drv_hasher *h, const char *path)
{
	struct memo_entry *e = xcalloc(1, sizeof(*e));
	size_t b;

	if (h->n >= h->n_buckets) {
		size_t nb = h->n_buckets * 2;
		struct memo_entry **buckets = xcalloc(nb, sizeof(*buckets));

		for (size_t i = 0; i < h->n_buckets; i++)
			for (struct memo_entry *x = h->buckets[i], *next; x; x = next) {
				size_t k = str_hash(x->path) % nb;
				next = x->next;
				x->next = buckets[k];
				buckets[k] = x;
			}
		free(h->buckets);
		h->buckets = buckets;
		h->n_buckets = nb;
	}
	e->path = xstrdup(path);
	b = str_hash(path) % h->n_buckets;
	e->next = h->buckets[b];
	h->buckets[b] = e;
	h->n++;
	return e;
}

static void memo_remove(struct drv_hasher *h, struct memo_entry *e)
{
	for (struct memo_entry **p = &h->buckets[str_hash(e->path) % h->n_buckets]; *p;
	     p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			h->n--;
			entry_free(e);
			return;
		}
}

/* ---- hash modulo ---- */

static int modulo_impl(struct drv_hasher *h, const struct derivation *d, bool mask, unsigned depth,
		       struct drv_modulo *ret, struct nib_error **err);

static int memo_modulo(struct drv_hasher *h, const char *path, unsigned depth,
		       const struct drv_modulo **ret, struct nib_error **err)
{
	struct memo_entry *e = memo_find(h, path);
	cleanup_derivation struct derivation *d = NULL;
	struct store_path sp;

	if (e != NULL) {
		if (!e->done)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "derivation '%s' depends on itself", path);
		*ret = &e->m;
		return 0;
	}
	if (depth >= DRV_MAX_INPUT_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "input derivations nested more than %d deep at '%s'",
				     DRV_MAX_INPUT_DEPTH, path);
	if (h->resolve == NULL)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0,
				     "cannot hash input derivation '%s': no way to read it", path);
	if (store_path_parse(h->store_dir, path, false, &sp, err) < 0)
		return -1;
	if (!store_path_is_drv(&sp))
		return nib_error_set(err, NIB_E_INVALID, 0, "input '%s' is not a derivation", path);
	e = memo_add(h, path);
	d = h->resolve(h->userdata, path, err);
	if (d == NULL) {
		memo_remove(h, e);
		return nib_error_prefix(err, "input derivation '%s'", path);
	}
	/* Nix names a derivation read from the store after its path. */
	free(d->name);
	d->name = xstrndup(sp.name, strlen(sp.name) - 4);
	if (modulo_impl(h, d, false, depth + 1, &e->m, err) < 0) {
		memo_remove(h, e);
		return -1;
	}
	e->done = true;
	*ret = &e->m;
	return 0;
}

struct repl_pair {
	char hex[2 * 32 + 1];
	char *output;
};

static int cmp_pair(const void *a, const void *b)
{
	const struct repl_pair *x = a, *y = b;
	int c = strcmp(x->hex, y->hex);

	return c ? c : strcmp(x->output, y->output);
}

static void modulo_init(struct drv_modulo *m, const struct derivation *d, bool deferred)
{
	m->deferred = deferred;
	m->n = d->n_outputs;
	m->outputs = xcalloc(d->n_outputs + 1, sizeof(char *));
	m->hashes = xcalloc(d->n_outputs ? d->n_outputs : 1, sizeof(struct hash));
	for (size_t i = 0; i < d->n_outputs; i++)
		m->outputs[i] = xstrdup(d->outputs[i].name);
}

static const struct hash *modulo_get(const struct drv_modulo *m, const char *output)
{
	for (size_t i = 0; i < m->n; i++)
		if (STREQ(m->outputs[i], output))
			return &m->hashes[i];
	return NULL;
}

static int modulo_impl(struct drv_hasher *h, const struct derivation *d, bool mask, unsigned depth,
		       struct drv_modulo *ret, struct nib_error **err)
{
	struct drv_modulo m = { 0 };
	enum drv_type type;
	cleanup_free struct repl_pair *pairs = NULL;
	cleanup_free struct drv_input *repl = NULL;
	cleanup_free char **outs = NULL;
	cleanup_strbuf struct strbuf text = STRBUF_INIT;
	size_t n_pairs = 0, n_repl = 0;
	bool deferred;
	struct hash hash;

	if (derivation_type(d, &type, err) < 0)
		return -1;
	if (type == DRV_TYPE_FIXED) {
		const struct drv_output *out = &d->outputs[0];
		cleanup_free char *path = NULL, *s = NULL;
		char hex[2 * HASH_MAX_SIZE + 1];
		struct store_path p;

		if (need_name(d, err) < 0 || fixed_path(h->store_dir, d->name, out, &p, err) < 0)
			return -1;
		path = store_path_to_string(h->store_dir, &p);
		base16_encode(out->hash.bytes, hash_algo_size(out->hash.algo), hex);
		s = xasprintf("fixed:out:%s%s:%s:%s", drv_ca_method_prefix(out->method),
			      hash_algo_name(out->hash.algo), hex, path);
		modulo_init(&m, d, false);
		hash_string(HASH_SHA256, s, &m.hashes[0]);
		*ret = m;
		return 0;
	}
	if (type == DRV_TYPE_IMPURE) {
		modulo_init(&m, d, true);
		for (size_t i = 0; i < m.n; i++)
			hash_string(HASH_SHA256, "impure", &m.hashes[i]);
		*ret = m;
		return 0;
	}

	/* Floating CA derivations defer their dependents; input-addressed ones
	 * only when an input does. */
	deferred = type == DRV_TYPE_FLOATING;
	for (size_t i = 0; i < d->n_inputs; i++)
		n_pairs += d->inputs[i].n_outputs;
	pairs = xcalloc(n_pairs ? n_pairs : 1, sizeof(*pairs));
	n_pairs = 0;
	for (size_t i = 0; i < d->n_inputs; i++) {
		const struct drv_input *in = &d->inputs[i];
		const struct drv_modulo *im = NULL;

		if (memo_modulo(h, in->path, depth, &im, err) < 0)
			return -1;
		deferred |= im->deferred;
		for (size_t k = 0; k < in->n_outputs; k++) {
			const struct hash *oh = modulo_get(im, in->outputs[k]);
			if (oh == NULL)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "derivation '%s' has no output '%s' (wanted "
						     "by '%s')",
						     in->path, in->outputs[k],
						     d->name ? d->name : "?");
			base16_encode(oh->bytes, 32, pairs[n_pairs].hex);
			pairs[n_pairs++].output = in->outputs[k];
		}
	}
	/* Inputs become "<hex of hash modulo>" -> outputs; inputs with equal
	 * hashes (fixed outputs with the same content) merge. */
	sort_array(pairs, n_pairs, sizeof(*pairs), cmp_pair);
	repl = xcalloc(n_pairs ? n_pairs : 1, sizeof(*repl));
	outs = xcalloc(n_pairs + n_pairs + 1, sizeof(char *));
	{
		char **op = outs;
		for (size_t i = 0; i < n_pairs; i++) {
			if (i > 0 && STREQ(pairs[i - 1].hex, pairs[i].hex)) {
				if (STREQ(pairs[i - 1].output, pairs[i].output))
					continue;
				*op++ = pairs[i].output;
				repl[n_repl - 1].n_outputs++;
				continue;
			}
			if (n_repl > 0)
				*op++ = NULL;
			repl[n_repl].path = pairs[i].hex;
			repl[n_repl].outputs = op;
			repl[n_repl].n_outputs = 1;
			*op++ = pairs[i].output;
			n_repl++;
		}
	}
	drv_print_aterm_ex(d, mask, repl, n_repl, &text);
	hash_buffer(HASH_SHA256, text.buf, text.len, &hash);
	modulo_init(&m, d, deferred);
	for (size_t i = 0; i < m.n; i++)
		m.hashes[i] = hash;
	*ret = m;
	return 0;
}

int derivation_hash_modulo(struct drv_hasher *h, const struct derivation *d, bool mask,
			   struct drv_modulo *ret, struct nib_error **err)
{
	return modulo_impl(h, d, mask, 0, ret, err);
}

/* ---- output paths ---- */

void drv_paths_free(char **paths, size_t n)
{
	if (paths == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int derivation_output_paths(struct drv_hasher *h, const struct derivation *d, char ***ret,
			    struct nib_error **err)
{
	struct drv_modulo m = { 0 };
	bool have_m = false;
	enum drv_type type;
	char **paths;

	if (derivation_type(d, &type, err) < 0)
		return -1;
	if ((type == DRV_TYPE_INPUT_ADDRESSED || type == DRV_TYPE_FIXED) && need_name(d, err) < 0)
		return -1;
	paths = xcalloc(d->n_outputs + 1, sizeof(char *));
	for (size_t i = 0; i < d->n_outputs; i++) {
		const struct drv_output *out = &d->outputs[i];
		struct store_path p;
		int r = 0;

		if (out->kind == DRV_OUT_INPUT_ADDRESSED) {
			if (!have_m) {
				if (derivation_hash_modulo(h, d, true, &m, err) < 0)
					goto fail;
				have_m = true;
			}
			r = store_path_make_output(h->store_dir, d->name, out->name, &m.hashes[i],
						   &p, err);
		} else if (out->kind == DRV_OUT_CA_FIXED) {
			r = fixed_path(h->store_dir, d->name, out, &p, err);
		} else {
			continue;
		}
		if (r < 0)
			goto fail;
		paths[i] = store_path_to_string(h->store_dir, &p);
	}
	drv_modulo_release(&m);
	*ret = paths;
	return 0;
fail:
	drv_modulo_release(&m);
	drv_paths_free(paths, d->n_outputs);
	return -1;
}

int derivation_check_outputs(struct drv_hasher *h, const struct derivation *d,
			     struct nib_error **err)
{
	char **paths = NULL;
	int r = 0;

	if (derivation_output_paths(h, d, &paths, err) < 0)
		return -1;
	for (size_t i = 0; i < d->n_outputs && r == 0; i++) {
		const struct drv_output *out = &d->outputs[i];
		const char *env;

		if (paths[i] == NULL)
			continue;
		if (out->path == NULL) {
			r = nib_error_set(err, NIB_E_INVALID, 0,
					  "output '%s' of derivation '%s' has no path (expected "
					  "'%s')",
					  out->name, d->name, paths[i]);
			break;
		}
		if (!STREQ(out->path, paths[i])) {
			r = nib_error_set(err, NIB_E_INVALID, 0,
					  "output '%s' of derivation '%s' has path '%s', expected "
					  "'%s'",
					  out->name, d->name, out->path, paths[i]);
			break;
		}
		env = derivation_get_env(d, out->name);
		if (env == NULL)
			r = nib_error_set(err, NIB_E_INVALID, 0,
					  "derivation '%s' lacks environment variable '%s' (should "
					  "be '%s')",
					  d->name, out->name, paths[i]);
		else if (!STREQ(env, paths[i]))
			r = nib_error_set(err, NIB_E_INVALID, 0,
					  "derivation '%s' has environment variable '%s' set to "
					  "'%s', expected '%s'",
					  d->name, out->name, env, paths[i]);
	}
	drv_paths_free(paths, d->n_outputs);
	return r;
}

/* Set env[output] = path unless it already holds something else (checked later). */
static void fill_env(struct derivation *d, const char *output, const char *path)
{
	const char *v = derivation_get_env(d, output);

	if (v == NULL || v[0] == '\0')
		derivation_set_env(d, output, path);
}

int derivation_fill_outputs(struct drv_hasher *h, struct derivation *d, struct nib_error **err)
{
	enum drv_type type;

	if (derivation_type(d, &type, err) < 0)
		return -1;
	if (type == DRV_TYPE_FIXED && d->outputs[0].path == NULL) {
		struct store_path p;

		if (need_name(d, err) < 0 ||
		    fixed_path(h->store_dir, d->name, &d->outputs[0], &p, err) < 0)
			return -1;
		d->outputs[0].path = store_path_to_string(h->store_dir, &p);
		fill_env(d, "out", d->outputs[0].path);
	} else if (type == DRV_TYPE_DEFERRED) {
		struct drv_modulo m = { 0 };

		if (need_name(d, err) < 0)
			return -1;
		/* As Nix's derivation primop: output env vars exist (empty) while hashing. */
		for (size_t i = 0; i < d->n_outputs; i++)
			if (derivation_get_env(d, d->outputs[i].name) == NULL)
				derivation_set_env(d, d->outputs[i].name, "");
		if (derivation_hash_modulo(h, d, true, &m, err) < 0)
			return -1;
		if (!m.deferred) {
			for (size_t i = 0; i < d->n_outputs; i++) {
				struct drv_output *out = &d->outputs[i];
				struct store_path p;

				if (store_path_make_output(h->store_dir, d->name, out->name,
							   &m.hashes[i], &p, err) < 0) {
					drv_modulo_release(&m);
					return -1;
				}
				out->kind = DRV_OUT_INPUT_ADDRESSED;
				out->path = store_path_to_string(h->store_dir, &p);
				fill_env(d, out->name, out->path);
			}
		}
		drv_modulo_release(&m);
	}
	return derivation_check_outputs(h, d, err);
}

/* ---- the .drv path ---- */

char **derivation_references(const struct derivation *d)
{
	char **refs = xcalloc(d->n_srcs + d->n_inputs + 1, sizeof(char *));
	size_t n = 0;

	for (size_t i = 0; i < d->n_srcs; i++)
		refs[n++] = xstrdup(d->srcs[i]);
	for (size_t i = 0; i < d->n_inputs; i++)
		refs[n++] = xstrdup(d->inputs[i].path);
	drv_strv_sort_unique(refs, &n);
	return refs;
}

int derivation_store_path(const char *store_dir, const struct derivation *d, struct store_path *ret,
			  char **ret_aterm, size_t *ret_len, struct nib_error **err)
{
	cleanup_strbuf struct strbuf text = STRBUF_INIT;
	cleanup_free char **refs = NULL;
	cleanup_free char *name = NULL;
	struct hash h;
	size_t n = 0;

	if (need_name(d, err) < 0)
		return -1;
	name = xasprintf("%s.drv", d->name);
	derivation_print_aterm(d, &text);
	hash_buffer(HASH_SHA256, text.buf, text.len, &h);
	refs = xcalloc(d->n_srcs + d->n_inputs + 1, sizeof(char *));
	for (size_t i = 0; i < d->n_srcs; i++)
		refs[n++] = d->srcs[i];
	for (size_t i = 0; i < d->n_inputs; i++)
		refs[n++] = d->inputs[i].path;
	if (store_path_make_text(store_dir, name, &h, refs, ret, err) < 0)
		return nib_error_prefix(err, "derivation '%s'", d->name);
	if (ret_len != NULL)
		*ret_len = text.len;
	if (ret_aterm != NULL)
		*ret_aterm = strbuf_detach(&text, NULL);
	return 0;
}

/* ---- attributes ---- */

DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)

int derivation_required_features(const struct derivation *d, char ***ret, struct nib_error **err)
{
	const char *json = derivation_get_env(d, "__json");
	cleanup_strv char **v = xcalloc(1, sizeof(char *));

	if (json != NULL) {
		__attribute__((cleanup(cJSON_Deletep))) cJSON *root = cJSON_Parse(json);
		const cJSON *f;

		if (root == NULL || !cJSON_IsObject(root))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "derivation '%s' has invalid structured attributes",
					     d->name ? d->name : "?");
		f = cJSON_GetObjectItemCaseSensitive(root, "requiredSystemFeatures");
		if (f != NULL && !cJSON_IsArray(f))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "requiredSystemFeatures of '%s' is not a list",
					     d->name ? d->name : "?");
		for (const cJSON *c = f ? f->child : NULL; c; c = c->next) {
			if (!cJSON_IsString(c))
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "requiredSystemFeatures of '%s' holds a "
						     "non-string",
						     d->name ? d->name : "?");
			strv_push(&v, c->valuestring);
		}
	} else {
		strv_push_words(&v, derivation_get_env(d, "requiredSystemFeatures"));
	}
	*ret = TAKE_PTR(v);
	return 0;
}

int derivation_get_bool_attr(const struct derivation *d, const char *name, bool *ret,
			     struct nib_error **err)
{
	const char *json = derivation_get_env(d, "__json");
	const char *v;

	if (json != NULL) {
		__attribute__((cleanup(cJSON_Deletep))) cJSON *root = cJSON_Parse(json);
		const cJSON *a;

		if (root == NULL || !cJSON_IsObject(root))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "derivation '%s' has invalid structured attributes",
					     d->name ? d->name : "?");
		a = cJSON_GetObjectItemCaseSensitive(root, name);
		if (a != NULL && !cJSON_IsBool(a))
			return nib_error_set(
				err, NIB_E_INVALID, 0,
				"attribute '%s' of derivation '%s' should be a Boolean", name,
				d->name ? d->name : "?");
		*ret = a != NULL && cJSON_IsTrue(a);
		return 0;
	}
	v = derivation_get_env(d, name);
	*ret = v != NULL && STREQ(v, "1");
	return 0;
}

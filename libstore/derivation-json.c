#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cleanup.h"
#include "derivation.h"
#include "derivation-internal.h"
#include "util.h"
#include "banned.h"

DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)
#define cleanup_cjson __attribute__((cleanup(cJSON_Deletep)))

/* ---- printing: Nix 2.8's `nix show-derivation` ---- */

/* Nix 2.8's JSON string escapes: \" \\ \n \r \t, \u00XX for other controls. */
static void json_str(struct strbuf *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	strbuf_addch(o, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		strbuf_add(o, run, (size_t)(s - run));
		run = s + 1;
		strbuf_addch(o, '\\');
		switch (c) {
		case '"':
		case '\\':
			strbuf_addch(o, (char)c);
			break;
		case '\n':
			strbuf_addch(o, 'n');
			break;
		case '\r':
			strbuf_addch(o, 'r');
			break;
		case '\t':
			strbuf_addch(o, 't');
			break;
		default:
			strbuf_addstr(o, "u00");
			strbuf_addch(o, hex[c >> 4]);
			strbuf_addch(o, hex[c & 15]);
		}
	}
	strbuf_add(o, run, (size_t)(s - run));
	strbuf_addch(o, '"');
}

static void nl(struct strbuf *o, int level)
{
	strbuf_addch(o, '\n');
	for (int i = 0; i < level; i++)
		strbuf_add(o, "  ", 2);
}

/* Member separator and indentation before member i of an object/array at level. */
static void member(struct strbuf *o, size_t i, int level)
{
	if (i)
		strbuf_addch(o, ',');
	nl(o, level);
}

static void key(struct strbuf *o, size_t i, int level, const char *k)
{
	member(o, i, level);
	json_str(o, k);
	strbuf_add(o, ": ", 2);
}

static void json_strv(struct strbuf *o, char *const *v, size_t n, int level)
{
	if (n == 0) {
		strbuf_add(o, "[]", 2);
		return;
	}
	strbuf_addch(o, '[');
	for (size_t i = 0; i < n; i++) {
		member(o, i, level + 1);
		json_str(o, v[i]);
	}
	nl(o, level);
	strbuf_addch(o, ']');
}

static void json_output(struct strbuf *o, const struct drv_output *out, int level)
{
	size_t n = 0;
	char hex[2 * HASH_MAX_SIZE + 1];
	cleanup_free char *algo = NULL;

	if (out->kind != DRV_OUT_INPUT_ADDRESSED && out->kind != DRV_OUT_DEFERRED)
		algo = xasprintf("%s%s", drv_ca_method_prefix(out->method),
				 hash_algo_name(out->hash.algo));
	strbuf_addch(o, '{');
	if (out->path != NULL) {
		key(o, n++, level + 1, "path");
		json_str(o, out->path);
	}
	if (algo != NULL) {
		key(o, n++, level + 1, "hashAlgo");
		json_str(o, algo);
	}
	if (out->kind == DRV_OUT_CA_FIXED) {
		base16_encode(out->hash.bytes, hash_algo_size(out->hash.algo), hex);
		key(o, n++, level + 1, "hash");
		json_str(o, hex);
	}
	if (out->kind == DRV_OUT_IMPURE) {
		key(o, n++, level + 1, "impure");
		strbuf_addstr(o, "true");
	}
	if (n)
		nl(o, level);
	strbuf_addch(o, '}');
}

static void json_drv(struct strbuf *o, const struct derivation *d, int level)
{
	size_t n = 0;

	strbuf_addch(o, '{');
	key(o, n++, level + 1, "outputs");
	if (d->n_outputs == 0) {
		strbuf_add(o, "{}", 2);
	} else {
		strbuf_addch(o, '{');
		for (size_t i = 0; i < d->n_outputs; i++) {
			key(o, i, level + 2, d->outputs[i].name);
			json_output(o, &d->outputs[i], level + 2);
		}
		nl(o, level + 1);
		strbuf_addch(o, '}');
	}
	key(o, n++, level + 1, "inputSrcs");
	json_strv(o, d->srcs, d->n_srcs, level + 1);
	key(o, n++, level + 1, "inputDrvs");
	if (d->n_inputs == 0) {
		strbuf_add(o, "{}", 2);
	} else {
		strbuf_addch(o, '{');
		for (size_t i = 0; i < d->n_inputs; i++) {
			key(o, i, level + 2, d->inputs[i].path);
			json_strv(o, d->inputs[i].outputs, d->inputs[i].n_outputs, level + 2);
		}
		nl(o, level + 1);
		strbuf_addch(o, '}');
	}
	key(o, n++, level + 1, "system");
	json_str(o, d->system ? d->system : "");
	key(o, n++, level + 1, "builder");
	json_str(o, d->builder ? d->builder : "");
	key(o, n++, level + 1, "args");
	json_strv(o, d->args, d->n_args, level + 1);
	key(o, n++, level + 1, "env");
	if (d->n_env == 0) {
		strbuf_add(o, "{}", 2);
	} else {
		strbuf_addch(o, '{');
		for (size_t i = 0; i < d->n_env; i++) {
			key(o, i, level + 2, d->env[i].key);
			json_str(o, d->env[i].value);
		}
		nl(o, level + 1);
		strbuf_addch(o, '}');
	}
	nl(o, level);
	strbuf_addch(o, '}');
}

void derivation_print_json(const struct derivation *const *drvs, const char *const *drv_paths,
			   size_t n, struct strbuf *out)
{
	if (n == 0) {
		strbuf_addstr(out, "{}\n");
		return;
	}
	strbuf_addch(out, '{');
	for (size_t i = 0; i < n; i++) {
		key(out, i, 1, drv_paths[i]);
		json_drv(out, drvs[i], 1);
	}
	strbuf_add(out, "\n}\n", 3);
}

/* ---- compact sorted dump (structured attrs) ---- */

static void dump_str(struct strbuf *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	strbuf_addch(o, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char named = 0;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		strbuf_add(o, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
		case '\\':
			named = (char)c;
			break;
		case '\b':
			named = 'b';
			break;
		case '\f':
			named = 'f';
			break;
		case '\n':
			named = 'n';
			break;
		case '\r':
			named = 'r';
			break;
		case '\t':
			named = 't';
			break;
		}
		strbuf_addch(o, '\\');
		if (named) {
			strbuf_addch(o, named);
		} else {
			strbuf_addstr(o, "u00");
			strbuf_addch(o, hex[c >> 4]);
			strbuf_addch(o, hex[c & 15]);
		}
	}
	strbuf_add(o, run, (size_t)(s - run));
	strbuf_addch(o, '"');
}

/*
 * Numbers: integral values as integers; others in the shortest form that
 * reads back exactly, exponent when below 1e-4 (what %g and nlohmann agree
 * on).  cJSON keeps only a double, so "1.0" comes out as "1".
 */
static void dump_number(struct strbuf *o, double v)
{
	char buf[40];

	if (isfinite(v) && v == floor(v) && fabs(v) < 9.2e18) {
		strbuf_addf(o, "%lld", (long long)v);
		return;
	}
	if (!isfinite(v)) {
		strbuf_addstr(o, "null");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	strbuf_addstr(o, buf);
}

static int cmp_item_key(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

int drv_json_dump_sorted(const cJSON *v, struct strbuf *o, struct nib_error **err)
{
	if (cJSON_IsNull(v)) {
		strbuf_addstr(o, "null");
	} else if (cJSON_IsTrue(v)) {
		strbuf_addstr(o, "true");
	} else if (cJSON_IsFalse(v)) {
		strbuf_addstr(o, "false");
	} else if (cJSON_IsNumber(v)) {
		dump_number(o, v->valuedouble);
	} else if (cJSON_IsString(v)) {
		dump_str(o, v->valuestring);
	} else if (cJSON_IsArray(v)) {
		size_t i = 0;
		strbuf_addch(o, '[');
		for (const cJSON *c = v->child; c; c = c->next, i++) {
			if (i)
				strbuf_addch(o, ',');
			if (drv_json_dump_sorted(c, o, err) < 0)
				return -1;
		}
		strbuf_addch(o, ']');
	} else if (cJSON_IsObject(v)) {
		size_t n = 0;
		cleanup_free const cJSON **kids = NULL;

		for (const cJSON *c = v->child; c; c = c->next)
			n++;
		kids = xreallocarray(NULL, n ? n : 1, sizeof(*kids));
		n = 0;
		for (const cJSON *c = v->child; c; c = c->next)
			kids[n++] = c;
		sort_array(kids, n, sizeof(*kids), cmp_item_key);
		strbuf_addch(o, '{');
		for (size_t i = 0; i < n; i++) {
			if (i > 0 && STREQ(kids[i - 1]->string, kids[i]->string))
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "key '%s' appears twice", kids[i]->string);
			if (i)
				strbuf_addch(o, ',');
			dump_str(o, kids[i]->string);
			strbuf_addch(o, ':');
			if (drv_json_dump_sorted(kids[i], o, err) < 0)
				return -1;
		}
		strbuf_addch(o, '}');
	} else {
		return nib_error_set(err, NIB_E_INVALID, 0, "unsupported JSON value");
	}
	return 0;
}

char *drv_name_from_env(const struct derivation *d)
{
	const char *name = derivation_get_env(d, "name");
	const char *json = derivation_get_env(d, "__json");
	cleanup_cjson cJSON *root = NULL;
	const cJSON *n;

	if (name != NULL)
		return xstrdup(name);
	if (json == NULL || (root = cJSON_Parse(json)) == NULL)
		return NULL;
	n = cJSON_GetObjectItemCaseSensitive(root, "name");
	return cJSON_IsString(n) ? xstrdup(n->valuestring) : NULL;
}

/* ---- parsing ---- */

struct jctx {
	const char *store_dir;
	int version; /* 0: unversioned (Nix <= 2.31) */
	size_t items;
	struct nib_error **err;
};

static int jerr(struct jctx *c, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int jerr(struct jctx *c, const char *where, const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (where == NULL || where[0] == '\0')
		return nib_error_set(c->err, NIB_E_INVALID, 0, "invalid derivation JSON: %s", msg);
	return nib_error_set(c->err, NIB_E_INVALID, 0, "invalid derivation JSON at %s: %s", where,
			     msg);
}

static int syntax_error(const char *text, size_t len, size_t pos, const char *what,
			struct nib_error **err)
{
	size_t line = 1, col = 1;

	if (pos > len)
		pos = len;
	for (size_t i = 0; i < pos; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	return nib_error_set(err, NIB_E_INVALID, 0,
			     "invalid derivation JSON at byte %zu (line %zu, column %zu): %s", pos,
			     line, col, what);
}

/*
 * Before cJSON allocates anything: bound nesting depth and the number of
 * values (each costs a cJSON node), and refuse NUL bytes and \u0000, which
 * C strings cannot carry.
 */
static int prescan(const char *s, size_t len, struct nib_error **err)
{
	size_t depth = 0, items = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\0')
			return syntax_error(s, len, i, "NUL byte", err);
		if (in_str) {
			if (c == '\\') {
				if (i + 5 < len && s[i + 1] == 'u' &&
				    memcmp(s + i + 2, "0000", 4) == 0)
					return syntax_error(s, len, i, "\\u0000 in a string", err);
				i++;
			} else if (c == '"') {
				in_str = false;
			}
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > DRV_MAX_JSON_DEPTH)
				return syntax_error(s, len, i, "nested too deeply", err);
			__attribute__((fallthrough));
		case ',':
			if (++items > DRV_MAX_ITEMS)
				return syntax_error(s, len, i, "too many values", err);
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return 0;
}

static int cmp_const_item_key(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* An object whose keys are distinct. */
static int check_object(struct jctx *c, const cJSON *v, const char *where)
{
	size_t n = 0;
	cleanup_free const cJSON **kids = NULL;

	if (!cJSON_IsObject(v))
		return jerr(c, where, "expected an object");
	for (const cJSON *k = v->child; k; k = k->next)
		n++;
	if (n < 2)
		return 0;
	kids = xreallocarray(NULL, n, sizeof(*kids));
	n = 0;
	for (const cJSON *k = v->child; k; k = k->next)
		kids[n++] = k;
	sort_array(kids, n, sizeof(*kids), cmp_const_item_key);
	for (size_t i = 1; i < n; i++)
		if (STREQ(kids[i - 1]->string, kids[i]->string))
			return jerr(c, where, "key '%s' appears twice", kids[i]->string);
	return 0;
}

static char *sub(const char *where, const char *k)
{
	return where[0] ? xasprintf("%s.%s", where, k) : xstrdup(k);
}

/* A string member; absent is fine when !required (*ret stays NULL). */
static int get_str(struct jctx *c, const cJSON *obj, const char *k, const char *where,
		   bool required, const char **ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, k);

	if (v == NULL || (!required && cJSON_IsNull(v))) {
		if (required)
			return jerr(c, where, "missing '%s'", k);
		return 0;
	}
	if (!cJSON_IsString(v)) {
		cleanup_free char *w = sub(where, k);
		return jerr(c, w, "expected a string");
	}
	*ret = v->valuestring;
	return 0;
}

/* A store path given in full or (version 3 and later) as a base name. */
static int json_path(struct jctx *c, const char *s, const char *where, bool want_drv, char **ret)
{
	struct store_path p;

	if (s[0] == '/') {
		if (store_path_parse(c->store_dir, s, false, &p, c->err) < 0)
			return nib_error_prefix(c->err, "invalid derivation JSON at %s", where);
	} else if (store_path_parse_base(s, &p, c->err) < 0) {
		return nib_error_prefix(c->err, "invalid derivation JSON at %s", where);
	}
	if (want_drv && !store_path_is_drv(&p))
		return jerr(c, where, "'%s' is not a derivation (.drv)", s);
	*ret = store_path_to_string(c->store_dir, &p);
	return 0;
}

static int string_list(struct jctx *c, const cJSON *v, const char *where, bool paths,
		       bool output_names, char ***ret, size_t *ret_n)
{
	size_t n = 0;
	char **out;

	if (!cJSON_IsArray(v))
		return jerr(c, where, "expected an array");
	for (const cJSON *k = v->child; k; k = k->next)
		n++;
	out = xcalloc(n + 1, sizeof(char *));
	n = 0;
	for (const cJSON *k = v->child; k; k = k->next) {
		cleanup_free char *w = xasprintf("%s[%zu]", where, n);
		int r = 0;

		if (!cJSON_IsString(k))
			r = jerr(c, w, "expected a string");
		else if (paths)
			r = json_path(c, k->valuestring, w, false, &out[n]);
		else if (output_names && !drv_output_name_valid(k->valuestring))
			r = jerr(c, w, "invalid output name '%s'", k->valuestring);
		else
			out[n] = xstrdup(k->valuestring);
		if (r < 0) {
			for (size_t i = 0; i < n; i++)
				free(out[i]);
			free(out);
			return -1;
		}
		n++;
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

static int parse_method(struct jctx *c, const char *s, const char *where, enum drv_ca_method *ret)
{
	for (int m = DRV_CA_FLAT; m < _DRV_CA_METHOD_MAX; m++)
		if (STREQ(s, drv_ca_method_name(m))) {
			*ret = m;
			return 0;
		}
	return jerr(c, where, "unknown method '%s' (expected flat, nar, text or git)", s);
}

static int parse_hash_value(struct jctx *c, const cJSON *v, enum hash_algo algo, const char *where,
			    struct hash *ret)
{
	const char *s = NULL;

	if (cJSON_IsObject(v)) {
		const char *a = NULL, *fmt = NULL;
		enum hash_algo named;

		if (check_object(c, v, where) < 0 ||
		    get_str(c, v, "algorithm", where, true, &a) < 0 ||
		    get_str(c, v, "hash", where, true, &s) < 0 ||
		    get_str(c, v, "format", where, false, &fmt) < 0)
			return -1;
		if (hash_algo_parse(a, &named, c->err) < 0)
			return nib_error_prefix(c->err, "invalid derivation JSON at %s", where);
		if (algo != 0 && named != algo)
			return jerr(c, where, "hash algorithm '%s' contradicts hashAlgo '%s'", a,
				    hash_algo_name(algo));
		algo = named;
	} else if (cJSON_IsString(v)) {
		s = v->valuestring;
	} else {
		return jerr(c, where, "expected a string or an object");
	}
	if (hash_parse(s, algo, ret, c->err) < 0)
		return nib_error_prefix(c->err, "invalid derivation JSON at %s", where);
	return 0;
}

static int parse_output(struct jctx *c, const cJSON *v, const char *where, struct drv_output *out)
{
	const char *path = NULL, *algo = NULL, *method = NULL;
	const cJSON *hash, *impure;
	bool have_ca = false;

	if (check_object(c, v, where) < 0 || get_str(c, v, "path", where, false, &path) < 0 ||
	    get_str(c, v, "hashAlgo", where, false, &algo) < 0 ||
	    get_str(c, v, "method", where, false, &method) < 0)
		return -1;
	hash = cJSON_GetObjectItemCaseSensitive(v, "hash");
	impure = cJSON_GetObjectItemCaseSensitive(v, "impure");
	if (cJSON_IsNull(hash))
		hash = NULL;
	if (impure != NULL && !cJSON_IsBool(impure)) {
		cleanup_free char *w = sub(where, "impure");
		return jerr(c, w, "expected true or false");
	}
	if (method != NULL) {
		cleanup_free char *w = sub(where, "method");
		if (parse_method(c, method, w, &out->method) < 0)
			return -1;
		have_ca = true;
	}
	if (algo != NULL) {
		cleanup_free char *w = sub(where, "hashAlgo");
		enum drv_ca_method m;

		if (method != NULL) {
			if (hash_algo_parse(algo, &out->hash.algo, c->err) < 0)
				return nib_error_prefix(c->err, "invalid derivation JSON at %s", w);
		} else if (drv_parse_method_algo(algo, &m, &out->hash.algo) < 0) {
			return jerr(c, w, "unknown hash algorithm '%s'", algo);
		} else {
			out->method = m;
		}
		have_ca = true;
	}
	if (hash != NULL) {
		cleanup_free char *w = sub(where, "hash");
		if (!have_ca)
			return jerr(c, w, "a fixed output needs 'method' or 'hashAlgo'");
		if (parse_hash_value(c, hash, out->hash.algo, w, &out->hash) < 0)
			return -1;
	}
	if (have_ca && out->hash.algo == 0)
		return jerr(c, where, "content-addressed output lacks a hash algorithm");
	if (path != NULL && path[0] == '\0')
		path = NULL;

	if (cJSON_IsTrue(impure)) {
		if (!have_ca || hash != NULL)
			return jerr(c, where,
				    "an impure output needs a method and hash algorithm, no hash");
		out->kind = DRV_OUT_IMPURE;
	} else if (hash != NULL) {
		out->kind = DRV_OUT_CA_FIXED;
	} else if (have_ca) {
		out->kind = DRV_OUT_CA_FLOATING;
	} else {
		out->kind = path ? DRV_OUT_INPUT_ADDRESSED : DRV_OUT_DEFERRED;
	}
	if (path != NULL) {
		cleanup_free char *w = sub(where, "path");
		if (out->kind != DRV_OUT_INPUT_ADDRESSED && out->kind != DRV_OUT_CA_FIXED)
			return jerr(c, w, "a %s output cannot have a path",
				    out->kind == DRV_OUT_IMPURE ? "impure" : "floating");
		if (json_path(c, path, w, false, &out->path) < 0)
			return -1;
	}
	return 0;
}

static size_t count_members(const cJSON *v)
{
	size_t n = 0;

	for (const cJSON *k = v->child; k; k = k->next)
		n++;
	return n;
}

static int parse_input_drvs(struct jctx *c, const cJSON *v, const char *where, struct derivation *d)
{
	size_t n;

	if (check_object(c, v, where) < 0)
		return -1;
	n = count_members(v);
	d->inputs = xcalloc(n ? n : 1, sizeof(*d->inputs));
	for (const cJSON *k = v->child; k; k = k->next) {
		struct drv_input *in = &d->inputs[d->n_inputs];
		cleanup_free char *w = sub(where, k->string);
		const cJSON *outs = k;

		if (json_path(c, k->string, w, true, &in->path) < 0)
			return -1;
		d->n_inputs++;
		if (cJSON_IsObject(k)) {
			const cJSON *dyn = cJSON_GetObjectItemCaseSensitive(k, "dynamicOutputs");
			if (check_object(c, k, w) < 0)
				return -1;
			if (dyn != NULL && !(cJSON_IsObject(dyn) && dyn->child == NULL))
				return jerr(c, w, "dynamic derivation outputs are not supported");
			outs = cJSON_GetObjectItemCaseSensitive(k, "outputs");
			if (outs == NULL)
				return jerr(c, w, "missing 'outputs'");
		}
		{
			cleanup_free char *wo = outs == k ? xstrdup(w) : sub(w, "outputs");
			if (string_list(c, outs, wo, false, true, &in->outputs, &in->n_outputs) < 0)
				return -1;
			if (in->n_outputs == 0)
				return jerr(c, wo, "no outputs listed");
		}
	}
	return 0;
}

static int parse_env(struct jctx *c, const cJSON *v, struct derivation *d)
{
	size_t n;

	if (check_object(c, v, "env") < 0)
		return -1;
	n = count_members(v);
	d->env = xcalloc(n + 1, sizeof(*d->env));
	for (const cJSON *k = v->child; k; k = k->next) {
		if (!cJSON_IsString(k)) {
			cleanup_free char *w = sub("env", k->string);
			return jerr(c, w, "expected a string");
		}
		d->env[d->n_env].key = xstrdup(k->string);
		d->env[d->n_env].value = xstrdup(k->valuestring);
		d->n_env++;
	}
	return 0;
}

static int parse_drv_object(struct jctx *c, const cJSON *v, struct derivation *d)
{
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(v, "version");
	const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(v, "outputs");
	const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(v, "inputs");
	const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(v, "inputSrcs");
	const cJSON *drvs = cJSON_GetObjectItemCaseSensitive(v, "inputDrvs");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(v, "args");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(v, "env");
	const cJSON *sattrs = cJSON_GetObjectItemCaseSensitive(v, "structuredAttrs");
	const char *name = NULL, *system = NULL, *builder = NULL;
	size_t n;

	if (check_object(c, v, "") < 0)
		return -1;
	if (version != NULL) {
		double ver = cJSON_IsNumber(version) ? version->valuedouble : 0;
		if (ver != 3 && ver != 4 && ver != 5)
			return jerr(c, "version", "unsupported version (expected 3, 4 or 5)");
		c->version = version->valueint;
	}
	if (get_str(c, v, "name", "", false, &name) < 0 ||
	    get_str(c, v, "system", "", true, &system) < 0 ||
	    get_str(c, v, "builder", "", true, &builder) < 0)
		return -1;
	if (name != NULL && !store_path_name_valid(name, strlen(name)))
		return jerr(c, "name", "invalid derivation name '%s'", name);

	if (outputs == NULL)
		return jerr(c, "", "missing 'outputs'");
	if (check_object(c, outputs, "outputs") < 0)
		return -1;
	n = count_members(outputs);
	if (n == 0)
		return jerr(c, "outputs", "derivation has no outputs");
	d->outputs = xcalloc(n, sizeof(*d->outputs));
	for (const cJSON *k = outputs->child; k; k = k->next) {
		cleanup_free char *w = sub("outputs", k->string);
		struct drv_output *out = &d->outputs[d->n_outputs++];

		out->name = xstrdup(k->string);
		if (!drv_output_name_valid(k->string))
			return jerr(c, "outputs", "invalid output name '%s'", k->string);
		if (parse_output(c, k, w, out) < 0)
			return -1;
	}

	if (inputs != NULL) {
		if (srcs != NULL || drvs != NULL)
			return jerr(c, "inputs", "both 'inputs' and 'inputSrcs'/'inputDrvs' given");
		if (check_object(c, inputs, "inputs") < 0)
			return -1;
		srcs = cJSON_GetObjectItemCaseSensitive(inputs, "srcs");
		drvs = cJSON_GetObjectItemCaseSensitive(inputs, "drvs");
	}
	if (srcs != NULL) {
		free(d->srcs);
		d->srcs = NULL;
		if (string_list(c, srcs, inputs ? "inputs.srcs" : "inputSrcs", true, false,
				&d->srcs, &d->n_srcs) < 0)
			return -1;
	}
	if (drvs != NULL && parse_input_drvs(c, drvs, inputs ? "inputs.drvs" : "inputDrvs", d) < 0)
		return -1;

	d->system = xstrdup(system);
	d->builder = xstrdup(builder);
	if (args == NULL)
		return jerr(c, "", "missing 'args'");
	free(d->args);
	d->args = NULL;
	if (string_list(c, args, "args", false, false, &d->args, &d->n_args) < 0)
		return -1;
	if (env == NULL)
		return jerr(c, "", "missing 'env'");
	if (parse_env(c, env, d) < 0)
		return -1;
	if (drv_sort_maps(d, "invalid derivation JSON: ", c->err) < 0)
		return -1;
	if (sattrs != NULL && !cJSON_IsNull(sattrs)) {
		cleanup_strbuf struct strbuf js = STRBUF_INIT;

		if (check_object(c, sattrs, "structuredAttrs") < 0)
			return -1;
		if (derivation_get_env(d, "__json") != NULL)
			return jerr(c, "structuredAttrs", "env already has '__json'");
		if (drv_json_dump_sorted(sattrs, &js, c->err) < 0)
			return nib_error_prefix(c->err,
						"invalid derivation JSON at structuredAttrs");
		derivation_set_env(d, "__json", js.buf);
	}
	if (name != NULL)
		d->name = xstrdup(name);
	else
		d->name = drv_name_from_env(d);
	return 0;
}

/* One member, an object, whose key is not a member of a derivation. */
static bool is_show_form(const cJSON *root)
{
	static const char *const fields[] = { "outputs", "inputSrcs", "inputDrvs",	"inputs",
					      "system",	 "builder",   "args",		"env",
					      "name",	 "version",   "structuredAttrs" };
	const cJSON *k = root->child;

	if (k == NULL || k->next != NULL || !cJSON_IsObject(k))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (STREQ(k->string, fields[i]))
			return false;
	return true;
}

int derivation_parse_json(const char *text, size_t len, const char *store_dir, char **ret_drv_path,
			  struct derivation **ret, struct nib_error **err)
{
	cleanup_cjson cJSON *root = NULL;
	cleanup_derivation struct derivation *d = NULL;
	cleanup_free char *drv_path = NULL;
	struct jctx c = { .store_dir = store_dir, .err = err };
	const char *end = NULL;
	const cJSON *obj;

	if (len > DRV_MAX_TEXT)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation is too large (%zu bytes, at most %zu)", len,
				     DRV_MAX_TEXT);
	if (prescan(text, len, err) < 0)
		return -1;
	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (root == NULL)
		return syntax_error(text, len, end ? (size_t)(end - text) : 0, "syntax error", err);
	for (size_t i = (size_t)(end - text); i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
			return syntax_error(text, len, i, "unexpected data after the JSON value",
					    err);
	if (!cJSON_IsObject(root))
		return jerr(&c, "", "expected an object");
	obj = root;
	if (is_show_form(root)) {
		/* `nix show-derivation`: { "<drv path>": { ... } } */
		obj = root->child;
		if (json_path(&c, obj->string, obj->string, true, &drv_path) < 0)
			return -1;
	}
	d = derivation_new();
	if (parse_drv_object(&c, obj, d) < 0) {
		if (drv_path != NULL)
			nib_error_prefix(err, "in '%s'", drv_path);
		return -1;
	}
	if (ret_drv_path != NULL)
		*ret_drv_path = TAKE_PTR(drv_path);
	*ret = TAKE_PTR(d);
	return 0;
}

int derivation_parse_any(const char *text, size_t len, const char *store_dir, char **ret_drv_path,
			 struct derivation **ret, struct nib_error **err)
{
	size_t i = 0;

	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && text[i] == '{')
		return derivation_parse_json(text, len, store_dir, ret_drv_path, ret, err);
	if (i < len && text[i] == 'D') {
		if (ret_drv_path != NULL)
			*ret_drv_path = NULL;
		return derivation_parse_aterm(text + i, len - i, store_dir, ret, err);
	}
	return nib_error_set(err, NIB_E_INVALID, 0,
			     "not a derivation: expected an ATerm (\"Derive(...)\") or JSON ('{')");
}

#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "derivation.h"
#include "derivation-internal.h"
#include "util.h"
#include "banned.h"

/* ---- model ---- */

struct derivation *derivation_new(void)
{
	struct derivation *d = xcalloc(1, sizeof(*d));

	d->srcs = xcalloc(1, sizeof(char *));
	d->args = xcalloc(1, sizeof(char *));
	return d;
}

static void free_strv_n(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void derivation_free(struct derivation *d)
{
	if (d == NULL)
		return;
	free(d->name);
	for (size_t i = 0; i < d->n_outputs; i++) {
		free(d->outputs[i].name);
		free(d->outputs[i].path);
	}
	free(d->outputs);
	for (size_t i = 0; i < d->n_inputs; i++) {
		free(d->inputs[i].path);
		free_strv_n(d->inputs[i].outputs, d->inputs[i].n_outputs);
	}
	free(d->inputs);
	free_strv_n(d->srcs, d->n_srcs);
	free(d->system);
	free(d->builder);
	free_strv_n(d->args, d->n_args);
	for (size_t i = 0; i < d->n_env; i++) {
		free(d->env[i].key);
		free(d->env[i].value);
	}
	free(d->env);
	free(d);
}

static size_t env_search(const struct derivation *d, const char *key, bool *found)
{
	size_t lo = 0, hi = d->n_env;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->env[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

const char *derivation_get_env(const struct derivation *d, const char *key)
{
	bool found;
	size_t i = env_search(d, key, &found);

	return found ? d->env[i].value : NULL;
}

void derivation_set_env(struct derivation *d, const char *key, const char *value)
{
	bool found;
	size_t i = env_search(d, key, &found);

	if (found) {
		free(d->env[i].value);
		d->env[i].value = xstrdup(value);
		return;
	}
	d->env = xreallocarray(d->env, d->n_env + 1, sizeof(*d->env));
	memmove(&d->env[i + 1], &d->env[i], (d->n_env - i) * sizeof(*d->env));
	d->env[i].key = xstrdup(key);
	d->env[i].value = xstrdup(value);
	d->n_env++;
}

struct drv_output *derivation_find_output(const struct derivation *d, const char *name)
{
	for (size_t i = 0; i < d->n_outputs; i++)
		if (STREQ(d->outputs[i].name, name))
			return &d->outputs[i];
	return NULL;
}

const char *drv_ca_method_prefix(enum drv_ca_method m)
{
	switch (m) {
	case DRV_CA_NAR:
		return "r:";
	case DRV_CA_TEXT:
		return "text:";
	case DRV_CA_GIT:
		return "git:";
	default:
		return "";
	}
}

const char *drv_ca_method_name(enum drv_ca_method m)
{
	switch (m) {
	case DRV_CA_NAR:
		return "nar";
	case DRV_CA_TEXT:
		return "text";
	case DRV_CA_GIT:
		return "git";
	default:
		return "flat";
	}
}

bool drv_output_name_valid(const char *name)
{
	return store_path_name_valid(name, strlen(name));
}

static int cmp_output(const void *a, const void *b)
{
	return strcmp(((const struct drv_output *)a)->name, ((const struct drv_output *)b)->name);
}

static int cmp_input(const void *a, const void *b)
{
	return strcmp(((const struct drv_input *)a)->path, ((const struct drv_input *)b)->path);
}

static int cmp_env(const void *a, const void *b)
{
	return strcmp(((const struct drv_env *)a)->key, ((const struct drv_env *)b)->key);
}

/* Sort and drop repeated strings (a set); keeps the vector NULL-terminated. */
void drv_strv_sort_unique(char **v, size_t *n)
{
	size_t k = 0;

	if (*n > 1)
		sort_array(v, *n, sizeof(*v), strp_cmp);
	for (size_t i = 0; i < *n; i++) {
		if (k > 0 && STREQ(v[k - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	*n = k;
	v[k] = NULL;
}

int drv_sort_maps(struct derivation *d, const char *where, struct nib_error **err)
{
	if (d->n_outputs > 1)
		sort_array(d->outputs, d->n_outputs, sizeof(*d->outputs), cmp_output);
	for (size_t i = 1; i < d->n_outputs; i++)
		if (STREQ(d->outputs[i - 1].name, d->outputs[i].name))
			return nib_error_set(err, NIB_E_INVALID, 0, "%soutput '%s' appears twice",
					     where, d->outputs[i].name);
	if (d->n_inputs > 1)
		sort_array(d->inputs, d->n_inputs, sizeof(*d->inputs), cmp_input);
	for (size_t i = 1; i < d->n_inputs; i++)
		if (STREQ(d->inputs[i - 1].path, d->inputs[i].path))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "%sinput derivation '%s' appears twice", where,
					     d->inputs[i].path);
	if (d->n_env > 1)
		sort_array(d->env, d->n_env, sizeof(*d->env), cmp_env);
	for (size_t i = 1; i < d->n_env; i++)
		if (STREQ(d->env[i - 1].key, d->env[i].key))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "%senvironment variable '%s' appears twice", where,
					     d->env[i].key);
	for (size_t i = 0; i < d->n_inputs; i++)
		drv_strv_sort_unique(d->inputs[i].outputs, &d->inputs[i].n_outputs);
	drv_strv_sort_unique(d->srcs, &d->n_srcs);
	return 0;
}

int derivation_canonicalize(struct derivation *d, struct nib_error **err)
{
	if (d->system == NULL || d->builder == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0, "derivation lacks %s",
				     d->system == NULL ? "a system" : "a builder");
	for (size_t i = 0; i < d->n_outputs; i++)
		if (d->outputs[i].name == NULL || !drv_output_name_valid(d->outputs[i].name))
			return nib_error_set(err, NIB_E_INVALID, 0, "invalid output name '%s'",
					     d->outputs[i].name ? d->outputs[i].name : "");
	for (size_t i = 0; i < d->n_inputs; i++) {
		if (d->inputs[i].n_outputs == 0)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "input derivation '%s' has no outputs listed",
					     d->inputs[i].path);
		for (size_t k = 0; k < d->inputs[i].n_outputs; k++)
			if (!drv_output_name_valid(d->inputs[i].outputs[k]))
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "invalid output name '%s' of input '%s'",
						     d->inputs[i].outputs[k], d->inputs[i].path);
	}
	return drv_sort_maps(d, "", err);
}

bool derivation_is_fixed_output(const struct derivation *d)
{
	return d->n_outputs > 0 && d->outputs[0].kind == DRV_OUT_CA_FIXED;
}

/* ---- ATerm printing ---- */

static void put_str(struct strbuf *o, const char *s)
{
	const char *run = s;

	strbuf_addch(o, '"');
	for (; *s; s++) {
		char esc;
		switch (*s) {
		case '"':
			esc = '"';
			break;
		case '\\':
			esc = '\\';
			break;
		case '\n':
			esc = 'n';
			break;
		case '\r':
			esc = 'r';
			break;
		case '\t':
			esc = 't';
			break;
		default:
			continue;
		}
		strbuf_add(o, run, (size_t)(s - run));
		strbuf_addch(o, '\\');
		strbuf_addch(o, esc);
		run = s + 1;
	}
	strbuf_add(o, run, (size_t)(s - run));
	strbuf_addch(o, '"');
}

static void put_strv(struct strbuf *o, char *const *v, size_t n)
{
	strbuf_addch(o, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addch(o, ',');
		put_str(o, v[i]);
	}
	strbuf_addch(o, ']');
}

static void put_hash_algo(struct strbuf *o, const struct drv_output *out)
{
	strbuf_addch(o, '"');
	strbuf_addstr(o, drv_ca_method_prefix(out->method));
	strbuf_addstr(o, hash_algo_name(out->hash.algo));
	strbuf_addch(o, '"');
}

static bool is_output_name(const struct derivation *d, const char *key)
{
	size_t lo = 0, hi = d->n_outputs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->outputs[mid].name, key);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void drv_print_aterm_ex(const struct derivation *d, bool mask, const struct drv_input *repl,
			size_t n_repl, struct strbuf *o)
{
	const struct drv_input *inputs = repl ? repl : d->inputs;
	size_t n_inputs = repl ? n_repl : d->n_inputs;

	strbuf_addstr(o, "Derive([");
	for (size_t i = 0; i < d->n_outputs; i++) {
		const struct drv_output *out = &d->outputs[i];
		char hex[2 * HASH_MAX_SIZE + 1];

		if (i)
			strbuf_addch(o, ',');
		strbuf_addch(o, '(');
		put_str(o, out->name);
		strbuf_addch(o, ',');
		if (!mask && out->path != NULL &&
		    (out->kind == DRV_OUT_INPUT_ADDRESSED || out->kind == DRV_OUT_CA_FIXED))
			put_str(o, out->path);
		else
			strbuf_addstr(o, "\"\"");
		strbuf_addch(o, ',');
		switch (out->kind) {
		case DRV_OUT_CA_FIXED:
			put_hash_algo(o, out);
			base16_encode(out->hash.bytes, hash_algo_size(out->hash.algo), hex);
			strbuf_addf(o, ",\"%s\")", hex);
			break;
		case DRV_OUT_CA_FLOATING:
			put_hash_algo(o, out);
			strbuf_addstr(o, ",\"\")");
			break;
		case DRV_OUT_IMPURE:
			put_hash_algo(o, out);
			strbuf_addstr(o, ",\"impure\")");
			break;
		default:
			strbuf_addstr(o, "\"\",\"\")");
			break;
		}
	}
	strbuf_addstr(o, "],[");
	for (size_t i = 0; i < n_inputs; i++) {
		if (i)
			strbuf_addch(o, ',');
		strbuf_addch(o, '(');
		put_str(o, inputs[i].path);
		strbuf_addch(o, ',');
		put_strv(o, inputs[i].outputs, inputs[i].n_outputs);
		strbuf_addch(o, ')');
	}
	strbuf_addstr(o, "],");
	put_strv(o, d->srcs, d->n_srcs);
	strbuf_addch(o, ',');
	put_str(o, d->system ? d->system : "");
	strbuf_addch(o, ',');
	put_str(o, d->builder ? d->builder : "");
	strbuf_addch(o, ',');
	put_strv(o, d->args, d->n_args);
	strbuf_addstr(o, ",[");
	for (size_t i = 0; i < d->n_env; i++) {
		if (i)
			strbuf_addch(o, ',');
		strbuf_addch(o, '(');
		put_str(o, d->env[i].key);
		strbuf_addch(o, ',');
		put_str(o, mask && is_output_name(d, d->env[i].key) ? "" : d->env[i].value);
		strbuf_addch(o, ')');
	}
	strbuf_addstr(o, "])");
}

void derivation_print_aterm(const struct derivation *d, struct strbuf *out)
{
	drv_print_aterm_ex(d, false, NULL, 0, out);
}

/* ---- ATerm parsing ---- */

struct aterm {
	const char *s;
	size_t len, pos;
	size_t items;
	const char *store_dir;
	struct nib_error **err;
};

static int at_error(struct aterm *a, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int at_error(struct aterm *a, size_t pos, const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	return nib_error_set(a->err, NIB_E_INVALID, 0, "invalid derivation at byte %zu: %s", pos,
			     msg);
}

/* Describe the byte at pos for a message. */
static const char *at_found(struct aterm *a, char buf[8])
{
	unsigned char c;

	if (a->pos >= a->len)
		return "the end";
	c = (unsigned char)a->s[a->pos];
	if (c >= 0x20 && c < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", c);
	return buf;
}

static int expect(struct aterm *a, char c)
{
	char buf[8];

	if (a->pos < a->len && a->s[a->pos] == c) {
		a->pos++;
		return 0;
	}
	return at_error(a, a->pos, "expected '%c' but found %s", c, at_found(a, buf));
}

static int expect_word(struct aterm *a, const char *w)
{
	size_t n = strlen(w);

	if (a->len - a->pos >= n && memcmp(a->s + a->pos, w, n) == 0) {
		a->pos += n;
		return 0;
	}
	return at_error(a, a->pos, "expected '%s'", w);
}

/*
 * A quoted string with Nix's escapes.  Only what Nix's printer writes is
 * accepted: \" \\ \n \r \t, and no raw newline, carriage return or tab (Nix
 * would have escaped them), so printing gives back the same bytes.
 */
static int parse_string(struct aterm *a, char **ret)
{
	size_t start, n = 0;
	char *out, *p;

	if (expect(a, '"') < 0)
		return -1;
	start = a->pos;
	for (;;) {
		char c;

		if (a->pos >= a->len)
			return at_error(a, start - 1, "unterminated string");
		c = a->s[a->pos];
		if (c == '"')
			break;
		if (c == '\\') {
			char e = a->pos + 1 < a->len ? a->s[a->pos + 1] : '\0';
			if (e != '"' && e != '\\' && e != 'n' && e != 'r' && e != 't') {
				if (a->pos + 1 >= a->len)
					return at_error(a, start - 1, "unterminated string");
				if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f)
					return at_error(a, a->pos, "invalid escape '\\%c'", e);
				return at_error(a, a->pos, "invalid escape of byte 0x%02x",
						(unsigned char)e);
			}
			a->pos += 2;
			n++;
			continue;
		}
		if (c == '\0')
			return at_error(a, a->pos, "NUL byte in string");
		if (c == '\n' || c == '\r' || c == '\t')
			return at_error(a, a->pos, "unescaped %s in string",
					c == '\n'   ? "newline"
					: c == '\r' ? "carriage return"
						    : "tab");
		a->pos++;
		n++;
	}
	p = out = xmalloc(n + 1);
	for (size_t i = start; i < a->pos; i++) {
		char c = a->s[i];
		if (c == '\\') {
			c = a->s[++i];
			c = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
		}
		*p++ = c;
	}
	*p = '\0';
	a->pos++; /* closing quote */
	*ret = out;
	return 0;
}

/*
 * At an element position of a list whose '[' was read: 1 if an element
 * follows (its ',' consumed), 0 at the end (']' consumed).
 */
static int list_more(struct aterm *a, size_t n)
{
	if (a->pos < a->len && a->s[a->pos] == ']') {
		a->pos++;
		return 0;
	}
	if (n > 0 && expect(a, ',') < 0)
		return -1;
	if (++a->items > DRV_MAX_ITEMS)
		return at_error(a, a->pos, "more than %zu list entries", DRV_MAX_ITEMS);
	return 1;
}

static int parse_path(struct aterm *a, const char *what, bool want_drv, char **ret)
{
	cleanup_free char *s = NULL;
	struct store_path p;
	size_t at = a->pos;

	if (parse_string(a, &s) < 0)
		return -1;
	if (store_path_parse(a->store_dir, s, false, &p, a->err) < 0)
		return nib_error_prefix(a->err, "invalid derivation at byte %zu: %s", at, what);
	if (want_drv && !store_path_is_drv(&p))
		return at_error(a, at, "%s '%s' is not a derivation (.drv)", what, s);
	*ret = TAKE_PTR(s);
	return 0;
}

/* Parse "<prefix><algo>" of a CA output. */
int drv_parse_method_algo(const char *s, enum drv_ca_method *ret_m, enum hash_algo *ret_a)
{
	enum drv_ca_method m = DRV_CA_FLAT;

	if (STARTS_WITH(s, "r:"))
		m = DRV_CA_NAR, s += 2;
	else if (STARTS_WITH(s, "text:"))
		m = DRV_CA_TEXT, s += 5;
	else if (STARTS_WITH(s, "git:"))
		m = DRV_CA_GIT, s += 4;
	for (int h = HASH_MD5; h < _HASH_ALGO_MAX; h++)
		if (STREQ(s, hash_algo_name(h))) {
			*ret_m = m;
			*ret_a = h;
			return 0;
		}
	return -1;
}

static bool is_lower_hex(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static int parse_output(struct aterm *a, struct drv_output *out)
{
	cleanup_free char *path = NULL, *algo = NULL, *hash = NULL;
	size_t at = a->pos, at_path, at_algo, at_hash;

	if (expect(a, '(') < 0 || parse_string(a, &out->name) < 0)
		return -1;
	if (!drv_output_name_valid(out->name))
		return at_error(a, at + 1, "invalid output name '%s'", out->name);
	at_path = a->pos + 1;
	if (expect(a, ',') < 0 || parse_string(a, &path) < 0)
		return -1;
	at_algo = a->pos + 1;
	if (expect(a, ',') < 0 || parse_string(a, &algo) < 0)
		return -1;
	at_hash = a->pos + 1;
	if (expect(a, ',') < 0 || parse_string(a, &hash) < 0 || expect(a, ')') < 0)
		return -1;

	if (algo[0] == '\0') {
		if (hash[0] != '\0')
			return at_error(a, at_hash, "output '%s' has a hash but no hash algorithm",
					out->name);
		out->kind = path[0] ? DRV_OUT_INPUT_ADDRESSED : DRV_OUT_DEFERRED;
	} else {
		if (drv_parse_method_algo(algo, &out->method, &out->hash.algo) < 0)
			return at_error(a, at_algo, "output '%s' has unknown hash algorithm '%s'",
					out->name, algo);
		if (STREQ(hash, "impure")) {
			out->kind = DRV_OUT_IMPURE;
		} else if (hash[0] == '\0') {
			out->kind = DRV_OUT_CA_FLOATING;
		} else {
			size_t n = hash_algo_size(out->hash.algo);
			out->kind = DRV_OUT_CA_FIXED;
			if (strlen(hash) != 2 * n || !is_lower_hex(hash) ||
			    base16_decode(hash, 2 * n, out->hash.bytes, n) < 0)
				return at_error(
					a, at_hash,
					"output '%s' has invalid %s hash '%s' (expected %zu "
					"lowercase hex digits)",
					out->name, hash_algo_name(out->hash.algo), hash, 2 * n);
		}
		if (out->kind != DRV_OUT_CA_FIXED && path[0] != '\0')
			return at_error(a, at_path, "%s output '%s' cannot have a path",
					out->kind == DRV_OUT_IMPURE ? "impure" : "floating",
					out->name);
	}
	if (out->kind == DRV_OUT_INPUT_ADDRESSED || out->kind == DRV_OUT_CA_FIXED) {
		struct store_path p;
		if (path[0] == '\0')
			return at_error(a, at_path, "fixed output '%s' has no path", out->name);
		if (store_path_parse(a->store_dir, path, false, &p, a->err) < 0)
			return nib_error_prefix(a->err,
						"invalid derivation at byte %zu: output '%s'",
						at_path, out->name);
		out->path = TAKE_PTR(path);
	}
	return 0;
}

/* Parse a list of strings, which must be sorted and distinct when is_set. */
static int parse_strings(struct aterm *a, bool paths, const char *what, char ***ret, size_t *ret_n)
{
	char **v = xcalloc(1, sizeof(char *));
	size_t n = 0, alloc = 1;
	int r;

	if (expect(a, '[') < 0)
		goto fail;
	while ((r = list_more(a, n)) > 0) {
		size_t at = a->pos;
		char *s = NULL;

		ALLOC_GROW(v, n + 2, alloc);
		if ((paths ? parse_path(a, what, false, &s) : parse_string(a, &s)) < 0)
			goto fail;
		v[n++] = s;
		v[n] = NULL;
		if (paths && n > 1 && strcmp(v[n - 2], s) >= 0) {
			at_error(a, at, "%s '%s' is out of order or repeated", what, s);
			goto fail;
		}
	}
	if (r < 0)
		goto fail;
	*ret = v;
	*ret_n = n;
	return 0;
fail:
	free_strv_n(v, n);
	return -1;
}

static int parse_input(struct aterm *a, struct drv_input *in)
{
	if (expect(a, '(') < 0 || parse_path(a, "input derivation", true, &in->path) < 0 ||
	    expect(a, ',') < 0)
		return -1;
	{
		size_t at = a->pos;
		if (parse_strings(a, false, NULL, &in->outputs, &in->n_outputs) < 0)
			return -1;
		if (in->n_outputs == 0)
			return at_error(a, at, "input derivation '%s' lists no outputs", in->path);
		for (size_t i = 0; i < in->n_outputs; i++) {
			if (!drv_output_name_valid(in->outputs[i]))
				return at_error(a, at, "invalid output name '%s' of input '%s'",
						in->outputs[i], in->path);
			if (i > 0 && strcmp(in->outputs[i - 1], in->outputs[i]) >= 0)
				return at_error(a, at,
						"output '%s' of input '%s' is out of order or "
						"repeated",
						in->outputs[i], in->path);
		}
	}
	return expect(a, ')');
}

static int parse_aterm(struct aterm *a, struct derivation *d)
{
	size_t alloc = 0;
	int r;

	if (a->len - a->pos >= 15 && memcmp(a->s + a->pos, "DrvWithVersion(", 15) == 0)
		return at_error(a, a->pos,
				"versioned derivations (DrvWithVersion, for dynamic derivations) "
				"are not supported");
	if (expect_word(a, "Derive(") < 0 || expect(a, '[') < 0)
		return -1;
	while ((r = list_more(a, d->n_outputs)) > 0) {
		size_t at = a->pos;
		ALLOC_GROW(d->outputs, d->n_outputs + 1, alloc);
		memset(&d->outputs[d->n_outputs], 0, sizeof(*d->outputs));
		d->n_outputs++;
		if (parse_output(a, &d->outputs[d->n_outputs - 1]) < 0)
			return -1;
		if (d->n_outputs > 1 && strcmp(d->outputs[d->n_outputs - 2].name,
					       d->outputs[d->n_outputs - 1].name) >= 0)
			return at_error(a, at, "output '%s' is out of order or repeated",
					d->outputs[d->n_outputs - 1].name);
	}
	if (r < 0)
		return -1;
	if (d->n_outputs == 0)
		return at_error(a, a->pos - 1, "derivation has no outputs");

	if (expect(a, ',') < 0 || expect(a, '[') < 0)
		return -1;
	alloc = 0;
	while ((r = list_more(a, d->n_inputs)) > 0) {
		size_t at = a->pos;
		ALLOC_GROW(d->inputs, d->n_inputs + 1, alloc);
		memset(&d->inputs[d->n_inputs], 0, sizeof(*d->inputs));
		d->n_inputs++;
		if (parse_input(a, &d->inputs[d->n_inputs - 1]) < 0)
			return -1;
		if (d->n_inputs > 1 &&
		    strcmp(d->inputs[d->n_inputs - 2].path, d->inputs[d->n_inputs - 1].path) >= 0)
			return at_error(a, at, "input derivation '%s' is out of order or repeated",
					d->inputs[d->n_inputs - 1].path);
	}
	if (r < 0)
		return -1;

	free(d->srcs);
	d->srcs = NULL;
	if (expect(a, ',') < 0 || parse_strings(a, true, "input source", &d->srcs, &d->n_srcs) < 0)
		return -1;
	if (expect(a, ',') < 0 || parse_string(a, &d->system) < 0)
		return -1;
	if (expect(a, ',') < 0 || parse_string(a, &d->builder) < 0)
		return -1;
	free(d->args);
	d->args = NULL;
	if (expect(a, ',') < 0 || parse_strings(a, false, NULL, &d->args, &d->n_args) < 0)
		return -1;

	if (expect(a, ',') < 0 || expect(a, '[') < 0)
		return -1;
	alloc = 0;
	while ((r = list_more(a, d->n_env)) > 0) {
		size_t at = a->pos;
		struct drv_env *e;

		ALLOC_GROW(d->env, d->n_env + 1, alloc);
		e = &d->env[d->n_env++];
		e->key = e->value = NULL;
		if (expect(a, '(') < 0 || parse_string(a, &e->key) < 0 || expect(a, ',') < 0 ||
		    parse_string(a, &e->value) < 0 || expect(a, ')') < 0)
			return -1;
		if (d->n_env > 1 && strcmp(d->env[d->n_env - 2].key, e->key) >= 0)
			return at_error(a, at + 1,
					"environment variable '%s' is out of order or repeated",
					e->key);
	}
	if (r < 0)
		return -1;
	if (expect(a, ')') < 0)
		return -1;
	if (a->pos != a->len)
		return at_error(a, a->pos, "unexpected data after the derivation");
	return 0;
}

int derivation_parse_aterm(const char *text, size_t len, const char *store_dir,
			   struct derivation **ret, struct nib_error **err)
{
	cleanup_derivation struct derivation *d = derivation_new();
	struct aterm a = { .s = text, .len = len, .store_dir = store_dir, .err = err };
	if (len > DRV_MAX_TEXT)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation is too large (%zu bytes, at most %zu)", len,
				     DRV_MAX_TEXT);
	if (parse_aterm(&a, d) < 0)
		return -1;
	d->name = drv_name_from_env(d);
	*ret = TAKE_PTR(d);
	return 0;
}

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "path.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

/* NULL when name is valid, else a static description of what is wrong. */
static const char *name_problem(const char *name, size_t len, char *badc)
{
	if (len == 0)
		return "is empty";
	if (len > STORE_PATH_MAX_NAME)
		return "is longer than 211 characters";
	if (name[0] == '.')
		return "starts with '.'";
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok(name[i])) {
			*badc = name[i];
			return "contains an invalid character";
		}
	return NULL;
}

bool store_path_name_valid(const char *name, size_t len)
{
	char c;

	return name != NULL && name_problem(name, len, &c) == NULL;
}

static int name_error(const char *what, const char *s, const char *problem, char c,
		      struct nib_error **err)
{
	if (STREQ(problem, "contains an invalid character")) {
		if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "%s '%s' contains the invalid byte 0x%02x", what, s,
					     (unsigned char)c);
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "%s '%s' contains the invalid character '%c'", what, s, c);
	}
	return nib_error_set(err, NIB_E_INVALID, 0, "%s '%s' %s", what, s, problem);
}

static int check_name(const char *what, const char *s, const char *name, size_t len,
		      struct nib_error **err)
{
	char c = '\0';
	const char *problem = name_problem(name, len, &c);

	if (problem == NULL)
		return 0;
	return name_error(what, s, problem, c, err);
}

/* Parse base (len bytes, not necessarily NUL-terminated at len) for messages quoting whole. */
static int parse_base_n(const char *base, size_t len, const char *whole, struct store_path *ret,
			struct nib_error **err)
{
	struct store_path p;

	if (len < STORE_PATH_HASH_LEN + 2)
		return nib_error_set(err, NIB_E_INVALID, 0, "store path '%s' is too short", whole);
	for (size_t i = 0; i < STORE_PATH_HASH_LEN; i++)
		if (!base32_valid_char(base[i]))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "store path '%s' has an invalid hash part "
					     "(character %zu is not Nix base-32)",
					     whole, i + 1);
	if (base[STORE_PATH_HASH_LEN] != '-')
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "store path '%s' lacks the '-' after its hash part", whole);
	if (check_name("store path", whole, base + STORE_PATH_HASH_LEN + 1,
		       len - STORE_PATH_HASH_LEN - 1, err) < 0)
		return -1;
	memcpy(p.hash, base, STORE_PATH_HASH_LEN);
	p.hash[STORE_PATH_HASH_LEN] = '\0';
	memcpy(p.name, base + STORE_PATH_HASH_LEN + 1, len - STORE_PATH_HASH_LEN - 1);
	p.name[len - STORE_PATH_HASH_LEN - 1] = '\0';
	*ret = p;
	return 0;
}

int store_path_parse_base(const char *base, struct store_path *ret, struct nib_error **err)
{
	return parse_base_n(base, strlen(base), base, ret, err);
}

int store_path_parse(const char *store_dir, const char *full, bool allow_subpath,
		     struct store_path *ret, struct nib_error **err)
{
	size_t dlen = strlen(store_dir);
	const char *base, *slash;

	if (full[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0, "path '%s' is not absolute", full);
	if (strncmp(full, store_dir, dlen) != 0 || full[dlen] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0, "path '%s' is not in the store '%s'",
				     full, store_dir);
	base = full + dlen + 1;
	slash = strchr(base, '/');
	if (slash != NULL && !allow_subpath)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "path '%s' is inside a store path, not a store path itself",
				     full);
	return parse_base_n(base, slash ? (size_t)(slash - base) : strlen(base), full, ret, err);
}

char *store_path_base(const struct store_path *p, char *buf)
{
	snprintf(buf, STORE_PATH_BASE_MAX, "%s-%s", p->hash, p->name);
	return buf;
}

char *store_path_to_string(const char *store_dir, const struct store_path *p)
{
	return xasprintf("%s/%s-%s", store_dir, p->hash, p->name);
}

int store_path_cmp(const struct store_path *a, const struct store_path *b)
{
	/* Equal-length hash parts, so this is the order of the base names. */
	int r = strcmp(a->hash, b->hash);

	return r != 0 ? r : strcmp(a->name, b->name);
}

bool store_path_is_drv(const struct store_path *p)
{
	size_t n = strlen(p->name);

	return n >= 4 && memcmp(p->name + n - 4, ".drv", 4) == 0;
}

int store_path_make(const char *type, const struct hash *inner, const char *store_dir,
		    const char *name, struct store_path *ret, struct nib_error **err)
{
	cleanup_free char *fp = NULL;
	char hex[2 * 32 + 1];
	struct hash outer;
	unsigned char folded[20];
	struct store_path p;

	if (inner->algo != HASH_SHA256)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "store path hash must be sha256, not '%s'",
				     hash_algo_name(inner->algo));
	if (check_name("store path name", name, name, strlen(name), err) < 0)
		return -1;
	base16_encode(inner->bytes, 32, hex);
	fp = xasprintf("%s:sha256:%s:%s:%s", type, hex, store_dir, name);
	hash_string(HASH_SHA256, fp, &outer);
	hash_fold(&outer, folded, sizeof(folded));
	base32_encode(folded, sizeof(folded), p.hash);
	snprintf(p.name, sizeof(p.name), "%s", name);
	*ret = p;
	return 0;
}

static int ref_cmp(const void *a, const void *b)
{
	return store_path_cmp(a, b);
}

/* Append ":<store_dir>/<ref>" for each distinct ref in Nix's order. */
static int add_refs(struct strbuf *type, const char *store_dir, char *const *refs,
		    struct nib_error **err)
{
	size_t n = strv_length(refs);
	cleanup_free struct store_path *ps = NULL;

	if (n == 0)
		return 0;
	ps = xreallocarray(NULL, n, sizeof(*ps));
	for (size_t i = 0; i < n; i++)
		if (store_path_parse(store_dir, refs[i], false, &ps[i], err) < 0)
			return nib_error_prefix(err, "invalid reference");
	sort_array(ps, n, sizeof(*ps), ref_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && store_path_cmp(&ps[i - 1], &ps[i]) == 0)
			continue;
		strbuf_addf(type, ":%s/%s-%s", store_dir, ps[i].hash, ps[i].name);
	}
	return 0;
}

int store_path_make_text(const char *store_dir, const char *name, const struct hash *content,
			 char *const *refs, struct store_path *ret, struct nib_error **err)
{
	cleanup_strbuf struct strbuf type = STRBUF_INIT;

	strbuf_addstr(&type, "text");
	if (add_refs(&type, store_dir, refs, err) < 0)
		return -1;
	return store_path_make(type.buf, content, store_dir, name, ret, err);
}

int store_path_make_source(const char *store_dir, const char *name, const struct hash *nar,
			   char *const *refs, bool self_ref, struct store_path *ret,
			   struct nib_error **err)
{
	cleanup_strbuf struct strbuf type = STRBUF_INIT;

	strbuf_addstr(&type, "source");
	if (add_refs(&type, store_dir, refs, err) < 0)
		return -1;
	if (self_ref)
		strbuf_addstr(&type, ":self");
	return store_path_make(type.buf, nar, store_dir, name, ret, err);
}

int store_path_make_fixed(const char *store_dir, const char *name, bool recursive,
			  const struct hash *h, char *const *refs, struct store_path *ret,
			  struct nib_error **err)
{
	cleanup_free char *hex = NULL, *s = NULL;
	struct hash inner;

	if (recursive && h->algo == HASH_SHA256)
		return store_path_make_source(store_dir, name, h, refs, false, ret, err);
	if (strv_length(refs) > 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "fixed-output path '%s' cannot have references unless it is "
				     "recursive sha256",
				     name);
	if (hash_algo_size(h->algo) == 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "invalid hash algorithm for '%s'",
				     name);
	hex = hash_to_string(h, HASH_ENC_BASE16, true);
	s = xasprintf("fixed:out:%s%s:", recursive ? "r:" : "", hex);
	hash_string(HASH_SHA256, s, &inner);
	return store_path_make("output:out", &inner, store_dir, name, ret, err);
}

int store_path_make_output(const char *store_dir, const char *drv_name, const char *output,
			   const struct hash *modulo, struct store_path *ret,
			   struct nib_error **err)
{
	cleanup_free char *type = NULL, *name = NULL;

	if (output[0] == '\0')
		return nib_error_set(err, NIB_E_INVALID, 0, "output name is empty");
	type = xasprintf("output:%s", output);
	name = STREQ(output, "out") ? xstrdup(drv_name) : xasprintf("%s-%s", drv_name, output);
	return store_path_make(type, modulo, store_dir, name, ret, err);
}

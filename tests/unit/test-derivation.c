#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "derivation.h"
#include "derivation-internal.h"
#include "strbuf.h"
#include "util.h"

/*
 * Vectors: tests/data/derivations/ (made with Nix 2.8 by gen.sh; the JSON
 * forms by gen-forms.py; upstream/ from Nix's own test data).
 */
#define NIX "/nix/store"
#define NIB "/nib/store"

static const struct vset {
	const char *dir, *store;
} sets[] = {
	{ "derivations/nix-store", NIX },
	{ "derivations/nib-store", NIB },
};

static char *data_path(const char *rel)
{
	const char *d = getenv("NIB_TEST_DATA");

	return xasprintf("%s/%s", d && *d ? d : "tests/data", rel);
}

static char *read_data(const char *rel, size_t *ret_len)
{
	cleanup_free char *p = data_path(rel);
	cleanup_error struct nib_error *e = NULL;
	char *buf = NULL;
	size_t len = 0;

	if (read_file_at(AT_FDCWD, p, 8 << 20, &buf, &len, &e) < 0) {
		fprintf(stderr, "\n%s\n", e->msg);
		return NULL;
	}
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* Sorted names of the files in a data directory. */
static char **list_data(const char *rel)
{
	cleanup_free char *p = data_path(rel);
	cleanup_dir DIR *d = opendir(p);
	char **v = xcalloc(1, sizeof(char *));
	struct dirent *de;
	size_t n;

	if (d == NULL)
		return v;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			strv_push(&v, de->d_name);
	n = strv_length(v);
	drv_strv_sort_unique(v, &n);
	return v;
}

/* The expected "drv path" -> "out=path ..." line of a set. */
static char *expected_line(const struct vset *s, const char *drv_path)
{
	cleanup_free char *rel = xasprintf("%s/expected.txt", s->dir);
	cleanup_free char *text = read_data(rel, NULL);
	size_t n = strlen(drv_path);

	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, drv_path, n) == 0 && line[n] == ' ')
			return xstrdup(line + n + 1);
	}
	return NULL;
}

struct resolver {
	const char *set_dir;
	const char *store;
	unsigned calls;
};

/* Read input derivations from the vector set's drv/ directory. */
static struct derivation *resolve_from_set(void *userdata, const char *drv_path,
					   struct nib_error **err)
{
	struct resolver *r = userdata;
	cleanup_free char *rel = xasprintf("%s/drv/%s", r->set_dir, strrchr(drv_path, '/') + 1);
	cleanup_free char *p = data_path(rel);
	cleanup_free char *text = NULL;
	size_t len = 0;
	struct derivation *d = NULL;

	r->calls++;
	if (read_file_at(AT_FDCWD, p, DRV_MAX_TEXT, &text, &len, err) < 0)
		return NULL;
	if (derivation_parse_aterm(text, len, r->store, &d, err) < 0)
		return NULL;
	return d;
}

static struct derivation *load_drv(const struct vset *s, const char *file, char **ret_text,
				   size_t *ret_len)
{
	cleanup_free char *rel = xasprintf("%s/drv/%s", s->dir, file);
	cleanup_free char *text = NULL;
	cleanup_error struct nib_error *e = NULL;
	struct derivation *d = NULL;
	size_t len = 0;

	text = read_data(rel, &len);
	if (text == NULL)
		return NULL;
	if (derivation_parse_aterm(text, len, s->store, &d, &e) < 0) {
		fprintf(stderr, "\n%s: %s\n", file, e->msg);
		return NULL;
	}
	if (ret_text) {
		*ret_text = TAKE_PTR(text);
		*ret_len = len;
	}
	return d;
}

static bool report_diff(const char *what, const char *got, size_t got_len, const char *want,
			size_t want_len)
{
	if (got_len == want_len && memcmp(got, want, got_len) == 0)
		return true;
	fprintf(stderr, "\n%s differs:\n got: %.*s\nwant: %.*s\n", what, (int)got_len, got,
		(int)want_len, want);
	return false;
}

/* ATerm -> model -> ATerm is byte-identical for every vector. */
static void test_aterm_roundtrip(void)
{
	unsigned n = 0;

	for (size_t k = 0; k < ARRAY_SIZE(sets); k++) {
		cleanup_free char *rel = xasprintf("%s/drv", sets[k].dir);
		cleanup_strv char **files = list_data(rel);

		for (char **f = files; *f; f++) {
			cleanup_free char *text = NULL;
			size_t len = 0;
			cleanup_derivation struct derivation *d =
				load_drv(&sets[k], *f, &text, &len);
			cleanup_strbuf struct strbuf out = STRBUF_INIT;

			CU_ASSERT_PTR_NOT_NULL(d);
			if (d == NULL)
				continue;
			derivation_print_aterm(d, &out);
			CU_ASSERT(report_diff(*f, out.buf, out.len, text, len));
			n++;
		}
	}
	CU_ASSERT_EQUAL(n, 46);
}

/* The model prints exactly the JSON Nix 2.8's `nix show-derivation` printed. */
static void test_json_print_matches_nix(void)
{
	for (size_t k = 0; k < ARRAY_SIZE(sets); k++) {
		cleanup_free char *rel = xasprintf("%s/drv", sets[k].dir);
		cleanup_strv char **files = list_data(rel);

		for (char **f = files; *f; f++) {
			cleanup_derivation struct derivation *d = load_drv(&sets[k], *f, NULL, 0);
			cleanup_free char *jrel = xasprintf("%s/json/%.*s.json", sets[k].dir,
							    (int)strlen(*f) - 4, *f);
			size_t jlen = 0;
			cleanup_free char *want = read_data(jrel, &jlen);
			cleanup_free char *path = xasprintf("%s/%s", sets[k].store, *f);
			cleanup_strbuf struct strbuf out = STRBUF_INIT;
			const struct derivation *dv[1];
			const char *pv[1] = { path };

			CU_ASSERT_PTR_NOT_NULL(d);
			CU_ASSERT_PTR_NOT_NULL(want);
			if (d == NULL || want == NULL)
				continue;
			dv[0] = d;
			derivation_print_json(dv, pv, 1, &out);
			CU_ASSERT(report_diff(jrel, out.buf, out.len, want, jlen));
		}
	}
}

/* Nix's JSON -> model -> ATerm equals Nix's .drv; the key is the drv path. */
static void test_json_to_aterm(void)
{
	for (size_t k = 0; k < ARRAY_SIZE(sets); k++) {
		cleanup_free char *rel = xasprintf("%s/drv", sets[k].dir);
		cleanup_strv char **files = list_data(rel);

		for (char **f = files; *f; f++) {
			cleanup_free char *drel = xasprintf("%s/drv/%s", sets[k].dir, *f);
			cleanup_free char *jrel = xasprintf("%s/json/%.*s.json", sets[k].dir,
							    (int)strlen(*f) - 4, *f);
			size_t dlen = 0, jlen = 0;
			cleanup_free char *want = read_data(drel, &dlen);
			cleanup_free char *json = read_data(jrel, &jlen);
			cleanup_free char *path = xasprintf("%s/%s", sets[k].store, *f);
			cleanup_free char *key = NULL;
			cleanup_derivation struct derivation *d = NULL;
			cleanup_error struct nib_error *e = NULL;
			cleanup_strbuf struct strbuf out = STRBUF_INIT;

			if (json == NULL || want == NULL) {
				CU_FAIL("missing vector");
				continue;
			}
			if (derivation_parse_any(json, jlen, sets[k].store, &key, &d, &e) < 0) {
				fprintf(stderr, "\n%s: %s\n", jrel, e->msg);
				CU_FAIL("json parse");
				continue;
			}
			CU_ASSERT_STRING_EQUAL(key, path);
			derivation_print_aterm(d, &out);
			CU_ASSERT(report_diff(jrel, out.buf, out.len, want, dlen));
		}
	}
}

/* .drv paths and output paths computed as Nix computed them. */
static void test_paths_match_nix(void)
{
	unsigned checked = 0;

	for (size_t k = 0; k < ARRAY_SIZE(sets); k++) {
		cleanup_free char *rel = xasprintf("%s/drv", sets[k].dir);
		cleanup_strv char **files = list_data(rel);
		struct resolver r = { sets[k].dir, sets[k].store, 0 };
		cleanup_drv_hasher struct drv_hasher *h =
			drv_hasher_new(sets[k].store, resolve_from_set, &r);

		for (char **f = files; *f; f++) {
			cleanup_derivation struct derivation *d = load_drv(&sets[k], *f, NULL, 0);
			cleanup_free char *path = xasprintf("%s/%s", sets[k].store, *f);
			cleanup_free char *want = expected_line(&sets[k], path);
			cleanup_free char *name = xstrndup(*f + 33, strlen(*f) - 33 - 4);
			cleanup_error struct nib_error *e = NULL;
			cleanup_strbuf struct strbuf got = STRBUF_INIT;
			struct store_path sp;
			char **paths = NULL;

			CU_ASSERT_PTR_NOT_NULL(d);
			CU_ASSERT_PTR_NOT_NULL(want);
			if (d == NULL || want == NULL)
				continue;
			/* Structured attrs keep the name in __json: name it after the path. */
			if (d->name == NULL)
				d->name = xstrdup(name);
			CU_ASSERT_EQUAL(
				derivation_store_path(sets[k].store, d, &sp, NULL, NULL, &e), 0);
			CU_ASSERT_STRING_EQUAL(sp.name, *f + 33);
			CU_ASSERT_EQUAL(strncmp(sp.hash, *f, 32), 0);
			if (derivation_output_paths(h, d, &paths, &e) < 0) {
				fprintf(stderr, "\n%s: %s\n", *f, e->msg);
				CU_FAIL("output paths");
				continue;
			}
			for (size_t i = 0; i < d->n_outputs; i++)
				strbuf_addf(&got, "%s%s=%s", i ? " " : "", d->outputs[i].name,
					    paths[i] ? paths[i] : "");
			CU_ASSERT(report_diff(*f, got.buf, got.len, want, strlen(want)));
			drv_paths_free(paths, d->n_outputs);
			if (derivation_check_outputs(h, d, &e) < 0) {
				fprintf(stderr, "\n%s: %s\n", *f, e->msg);
				CU_FAIL("check outputs");
			}
			checked++;
		}
		/* Memoised: each input derivation was read once. */
		CU_ASSERT(r.calls > 0 && r.calls <= 8);
	}
	CU_ASSERT_EQUAL(checked, 46);
}

/*
 * Other JSON forms (version 3, version 4, a bare object without output
 * paths): parse, fill in what is missing, and get Nix's .drv.
 */
static void test_json_forms(void)
{
	static const char *const forms[] = { "v3", "v4", "bare" };
	const struct vset *s = &sets[0];
	unsigned n = 0;

	for (size_t fi = 0; fi < ARRAY_SIZE(forms); fi++) {
		cleanup_free char *rel = xasprintf("derivations/forms/%s", forms[fi]);
		cleanup_strv char **files = list_data(rel);
		struct resolver r = { s->dir, s->store, 0 };
		cleanup_drv_hasher struct drv_hasher *h =
			drv_hasher_new(s->store, resolve_from_set, &r);

		for (char **f = files; *f; f++) {
			cleanup_free char *jrel = xasprintf("%s/%s", rel, *f);
			cleanup_free char *drel =
				xasprintf("%s/drv/%.*s.drv", s->dir, (int)strlen(*f) - 5, *f);
			size_t jlen = 0, dlen = 0;
			cleanup_free char *json = read_data(jrel, &jlen);
			cleanup_free char *want = read_data(drel, &dlen);
			cleanup_free char *key = NULL;
			cleanup_derivation struct derivation *d = NULL;
			cleanup_error struct nib_error *e = NULL;
			cleanup_strbuf struct strbuf out = STRBUF_INIT;
			struct store_path sp;

			if (json == NULL || want == NULL) {
				CU_FAIL("missing vector");
				continue;
			}
			if (derivation_parse_json(json, jlen, s->store, &key, &d, &e) < 0 ||
			    derivation_fill_outputs(h, d, &e) < 0 ||
			    derivation_store_path(s->store, d, &sp, NULL, NULL, &e) < 0) {
				fprintf(stderr, "\n%s: %s\n", jrel, e->msg);
				CU_FAIL("json form");
				continue;
			}
			CU_ASSERT_PTR_NULL(key);
			derivation_print_aterm(d, &out);
			CU_ASSERT(report_diff(jrel, out.buf, out.len, want, dlen));
			CU_ASSERT_EQUAL(strncmp(sp.hash, *f, 32), 0);
			n++;
		}
	}
	CU_ASSERT_EQUAL(n, 3 * 23);
}

static struct derivation *load_upstream_json(const char *file, struct nib_error **e)
{
	cleanup_free char *rel = xasprintf("derivations/upstream/%s", file);
	size_t len = 0;
	cleanup_free char *text = read_data(rel, &len);
	struct derivation *d = NULL;

	if (text == NULL)
		return NULL;
	if (derivation_parse_json(text, len, NIX, NULL, &d, e) < 0)
		return NULL;
	return d;
}

static struct derivation *resolve_upstream(void *userdata, const char *drv_path,
					   struct nib_error **err)
{
	unsigned *calls = userdata;

	(*calls)++;
	if (strstr(drv_path, "-source.drv"))
		return load_upstream_json("source-first.json", err);
	nib_error_set(err, NIB_E_NOT_FOUND, 0, "no such vector '%s'", drv_path);
	return NULL;
}

/* Nix's newer JSON (v4, v5) and its hash-modulo vector. */
static void test_upstream_vectors(void)
{
	cleanup_error struct nib_error *e = NULL;
	unsigned calls = 0;
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new(NIX, resolve_upstream, &calls);
	cleanup_derivation struct derivation *inter =
		load_upstream_json("intermediate-first.json", &e);
	cleanup_derivation struct derivation *sattrs =
		load_upstream_json("advanced-attributes-structured-attrs.json", &e);
	cleanup_derivation struct derivation *src = load_upstream_json("source-first.json", &e);
	size_t len = 0, mlen = 0, slen = 0;
	cleanup_free char *want = read_data("derivations/upstream/intermediate-first.drv", &len);
	cleanup_free char *modulo =
		read_data("derivations/upstream/intermediate-first-modulo.drv", &mlen);
	cleanup_free char *swant =
		read_data("derivations/upstream/advanced-attributes-structured-attrs.drv", &slen);
	cleanup_strbuf struct strbuf out = STRBUF_INIT;
	struct drv_modulo m = { 0 };
	struct hash mh;
	struct store_path sp;

	CU_ASSERT_PTR_NULL(e);
	if (inter == NULL || sattrs == NULL || src == NULL || want == NULL || modulo == NULL ||
	    swant == NULL) {
		CU_FAIL("vectors");
		if (e)
			fprintf(stderr, "\n%s\n", e->msg);
		return;
	}
	derivation_print_aterm(inter, &out);
	CU_ASSERT(report_diff("intermediate-first", out.buf, out.len, want, len));
	/* The masked hash modulo is the hash of Nix's "-modulo" ATerm. */
	CU_ASSERT_EQUAL(derivation_hash_modulo(h, inter, true, &m, &e), 0);
	hash_buffer(HASH_SHA256, modulo, mlen, &mh);
	CU_ASSERT_EQUAL(m.n, 2);
	if (m.n == 2) {
		CU_ASSERT(hash_equal(&m.hashes[0], &mh));
		CU_ASSERT(hash_equal(&m.hashes[1], &mh));
		CU_ASSERT(!m.deferred);
	}
	drv_modulo_release(&m);
	/* (Its output paths are placeholders in Nix's test data, so they are
	 * not checked here; the Nix 2.8 vectors check the output rule.) */
	/* The fixed-output source is a v5 object with an SRI hash and no hashAlgo. */
	CU_ASSERT_EQUAL(src->outputs[0].kind, DRV_OUT_CA_FIXED);
	CU_ASSERT_EQUAL(src->outputs[0].method, DRV_CA_NAR);
	CU_ASSERT_EQUAL(derivation_fill_outputs(h, src, &e), 0);
	CU_ASSERT_STRING_EQUAL(src->outputs[0].path,
			       NIX "/i00sflxqsj37lfmf95m8mn0grv615hpj-source");
	CU_ASSERT_EQUAL(derivation_store_path(NIX, src, &sp, NULL, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(sp.hash, "q4mzjdlh5px6977h7v5fdsk1p33yg583");
	CU_ASSERT_EQUAL(calls, 1);

	/* structuredAttrs -> env.__json exactly as Nix writes it. */
	strbuf_reset(&out);
	derivation_print_aterm(sattrs, &out);
	CU_ASSERT(report_diff("structured attrs", out.buf, out.len, swant, slen));
	CU_ASSERT_PTR_NULL(e);
}

/*
 * Filling in deferred outputs.  With the output's env var present but empty,
 * nib computes what Nix computes.  With the env var absent, Nix (2.33+)
 * hashes without it and then adds it, which gives a derivation its own
 * check (and Nix 2.8's) rejects; nib adds the empty env var first, as the
 * derivation primop does, so the result is consistent.  Both are checked.
 */
static void test_upstream_invariants(void)
{
	static const struct {
		const char *file, *msg;
	} bad[] = {
		{ "bad-path.json",
		  "has path '/nix/store/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-wrong-name', "
		  "expected '/nix/store/" },
		{ "bad-env-var.json", "has environment variable 'out' set to "
				      "'/nix/store/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-wrong-name'" },
		{ "filled-in-deferred-no-env-var-post.json",
		  "has path "
		  "'/nix/store/wpk9qrgg77fyswhailap0gicgw98izx9-filled-in-deferred-no-env-var'"
		  ", expected "
		  "'/nix/store/fb8grlzkbsapafb0h0qvy0zhvydwbbxa-filled-in-deferred-no-env-var'" },
	};
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new(NIX, NULL, NULL);

	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_derivation struct derivation *pre =
			load_upstream_json("filled-in-deferred-empty-env-var-pre.json", &e);
		cleanup_derivation struct derivation *post =
			load_upstream_json("filled-in-deferred-empty-env-var-post.json", &e);
		cleanup_strbuf struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;

		if (pre != NULL && post != NULL) {
			CU_ASSERT_EQUAL(pre->outputs[0].kind, DRV_OUT_DEFERRED);
			CU_ASSERT_EQUAL(derivation_fill_outputs(h, pre, &e), 0);
			derivation_print_aterm(pre, &a);
			derivation_print_aterm(post, &b);
			CU_ASSERT(report_diff("filled-in-deferred-empty-env-var", a.buf, a.len,
					      b.buf, b.len));
			CU_ASSERT_EQUAL(derivation_check_outputs(h, post, &e), 0);
		} else {
			CU_FAIL("vectors");
		}
	}
	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_derivation struct derivation *pre =
			load_upstream_json("filled-in-deferred-no-env-var-pre.json", &e);

		CU_ASSERT_PTR_NOT_NULL(pre);
		if (pre != NULL) {
			CU_ASSERT_EQUAL(derivation_fill_outputs(h, pre, &e), 0);
			CU_ASSERT_STRING_EQUAL(pre->outputs[0].path,
					       NIX "/fb8grlzkbsapafb0h0qvy0zhvydwbbxa-filled-in-"
						   "deferred-no-env-var");
			CU_ASSERT_STRING_EQUAL(derivation_get_env(pre, "out"),
					       pre->outputs[0].path);
			CU_ASSERT_EQUAL(derivation_check_outputs(h, pre, &e), 0);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_error struct nib_error *e = NULL;
		cleanup_derivation struct derivation *d = load_upstream_json(bad[i].file, &e);

		CU_ASSERT_PTR_NOT_NULL(d);
		if (d == NULL)
			continue;
		CU_ASSERT_EQUAL(derivation_fill_outputs(h, d, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e);
		if (e && strstr(e->msg, bad[i].msg) == NULL)
			fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, bad[i].msg);
		CU_ASSERT(e && strstr(e->msg, bad[i].msg));
	}
}

static CU_TestInfo vector_tests[] = {
	{ "ATerm round trip", test_aterm_roundtrip },
	{ "JSON printed as Nix 2.8", test_json_print_matches_nix },
	{ "Nix 2.8 JSON to ATerm", test_json_to_aterm },
	{ "drv and output paths", test_paths_match_nix },
	{ "JSON v3, v4 and bare forms", test_json_forms },
	{ "upstream v4/v5 and modulo", test_upstream_vectors },
	{ "upstream fill-in invariants", test_upstream_invariants },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "vectors", NULL, NULL, NULL, NULL, vector_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

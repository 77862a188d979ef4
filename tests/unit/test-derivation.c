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

/* ---- rejections ---- */

#define SIMPLE_OUT NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple"
#define SIMPLE                                                                            \
	"Derive([(\"out\",\"" SIMPLE_OUT                                                  \
	"\",\"\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\","                      \
	"\"echo hello > "                                                                 \
	"$out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"simple\"),(\"out\",\"" SIMPLE_OUT \
	"\"),(\"system\",\"x86_64-linux\")])"
#define H64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DRVA NIX "/a1v0w9w51asnpsw1hfv9pcrq7g2004hn-middle.drv"
#define DRVB NIX "/hjwrvbxagpgxpxz9aiyv6jxqsai40k6h-base.drv"
#define TAIL ",[],\"s\",\"b\",[],[])"

static void expect_aterm_reject_n(const char *text, size_t len, const char *msg)
{
	cleanup_error struct nib_error *e = NULL;
	struct derivation *d = (struct derivation *)0x1;

	CU_ASSERT_EQUAL(derivation_parse_aterm(text, len, NIX, &d, &e), -1);
	CU_ASSERT_EQUAL(d, (struct derivation *)0x1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
	if (strstr(e->msg, msg) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, msg));
}

static void expect_aterm_reject(const char *text, const char *msg)
{
	expect_aterm_reject_n(text, strlen(text), msg);
}

static void test_aterm_rejects(void)
{
	static const struct {
		const char *text, *msg;
	} v[] = {
		{ "", "at byte 0: expected 'Derive('" },
		{ "Derive", "expected 'Derive('" },
		{ "derive([", "expected 'Derive('" },
		{ "DrvWithVersion(\"xp-dyn-drv\",[])", "DrvWithVersion" },
		{ "Derive([", "at byte 8: expected '(' but found the end" },
		{ "Derive([]" TAIL, "derivation has no outputs" },
		{ "Derive((", "expected '[' but found '('" },
		{ "Derive([(\"out\",\"\",\"\",\"\"),(\"dev\",\"\",\"\",\"\")],[]" TAIL,
		  "output 'dev' is out of order or repeated" },
		{ "Derive([(\"out\",\"\",\"\",\"\"),(\"out\",\"\",\"\",\"\")],[]" TAIL,
		  "output 'out' is out of order or repeated" },
		{ "Derive([(\"o u t\",\"\",\"\",\"\")],[]" TAIL, "invalid output name 'o u t'" },
		{ "Derive([(\"\",\"\",\"\",\"\")],[]" TAIL, "invalid output name ''" },
		{ "Derive([(\"out\",\"/tmp/"
		  "94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple\",\"\",\"\")],[]" TAIL,
		  "not in the store" },
		{ "Derive([(\"out\",\"" NIX "/x\",\"\",\"\")],[]" TAIL, "too short" },
		{ "Derive([(\"out\",\"" SIMPLE_OUT
		  "\",\"sha256\",\"E3B0C44298FC1C149AFBF4C8996FB924"
		  "27AE41E4649B934CA495991B7852B855\")],[]" TAIL,
		  "invalid sha256 hash" },
		{ "Derive([(\"out\",\"" SIMPLE_OUT "\",\"sha256\",\"e3b0\")],[]" TAIL,
		  "expected 64 lowercase hex digits" },
		{ "Derive([(\"out\",\"" SIMPLE_OUT "\",\"r:sha3\",\"" H64 "\")],[]" TAIL,
		  "unknown hash algorithm 'r:sha3'" },
		{ "Derive([(\"out\",\"" SIMPLE_OUT "\",\"\",\"" H64 "\")],[]" TAIL,
		  "has a hash but no hash algorithm" },
		{ "Derive([(\"out\",\"" SIMPLE_OUT "\",\"r:sha256\",\"\")],[]" TAIL,
		  "floating output 'out' cannot have a path" },
		{ "Derive([(\"out\",\"" SIMPLE_OUT "\",\"r:sha256\",\"impure\")],[]" TAIL,
		  "impure output 'out' cannot have a path" },
		{ "Derive([(\"out\",\"\",\"sha256\",\"" H64 "\")],[]" TAIL,
		  "fixed output 'out' has no path" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[(\"" SIMPLE_OUT "\",[\"out\"])]" TAIL,
		  "is not a derivation (.drv)" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[(\"" DRVA "\",[])]" TAIL,
		  "lists no outputs" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[(\"" DRVA "\",[\"out\",\"dev\"])]" TAIL,
		  "output 'dev' of input '" DRVA "' is out of order" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[(\"" DRVA "\",[\"a b\"])]" TAIL,
		  "invalid output name 'a b'" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[(\"" DRVB "\",[\"out\"]),(\"" DRVA
		  "\",[\"out\"])]" TAIL,
		  "input derivation '" DRVA "' is out of order or repeated" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[\"" DRVB "\",\"" DRVA
		  "\"],\"s\",\"b\",[],[])",
		  "input source '" DRVA "' is out of order or repeated" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[\"" DRVA "\",\"" DRVA
		  "\"],\"s\",\"b\",[],[])",
		  "is out of order or repeated" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[\"relative\"],\"s\",\"b\",[],[])",
		  "input source: path 'relative' is not absolute" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\\x\",\"b\",[],[])",
		  "invalid escape '\\x'" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\\\x01\",\"b\",[],[])",
		  "invalid escape of byte 0x01" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\n\",\"b\",[],[])",
		  "unescaped newline in string" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\t\",\"b\",[],[])", "unescaped tab" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\r\",\"b\",[],[])",
		  "unescaped carriage return" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s", "unterminated string" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\\", "unterminated string" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[],[(\"b\",\"\"),(\"a\","
		  "\"\")])",
		  "environment variable 'a' is out of order or repeated" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[],[(\"a\",\"\"),(\"a\","
		  "\"\")])",
		  "environment variable 'a' is out of order or repeated" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[],[(\"a\")])",
		  "expected ',' but found ')'" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[\"a\",],[])",
		  "expected '\"' but found ']'" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[],[]) ",
		  "unexpected data after the derivation" },
		{ "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[],[])\n",
		  "unexpected data after the derivation" },
		{ SIMPLE "x", "at byte 263: unexpected data after" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		expect_aterm_reject(v[i].text, v[i].msg);
	/* NUL inside a string, and a huge length refused before reading. */
	expect_aterm_reject_n("Derive([(\"o\0t\",\"\",\"\",\"\")]", 25, "NUL byte in string");
	expect_aterm_reject_n("Derive(", DRV_MAX_TEXT + 1, "too large");
	/* The valid base parses. */
	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_derivation struct derivation *d = NULL;
		CU_ASSERT_EQUAL(derivation_parse_aterm(SIMPLE, strlen(SIMPLE), NIX, &d, &e), 0);
		CU_ASSERT_STRING_EQUAL(d ? d->name : "", "simple");
	}
}

/* Every proper prefix of every vector is rejected (and nothing leaks or crashes). */
static void test_aterm_truncated(void)
{
	cleanup_free char *rel = xasprintf("%s/drv", sets[0].dir);
	cleanup_strv char **files = list_data(rel);
	unsigned n = 0;

	for (char **f = files; *f; f++) {
		cleanup_free char *frel = xasprintf("%s/%s", rel, *f);
		size_t len = 0;
		cleanup_free char *text = read_data(frel, &len);

		for (size_t k = 0; text && k < len; k += (len > 2000 ? 7 : 1)) {
			cleanup_error struct nib_error *e = NULL;
			struct derivation *d = NULL;

			CU_ASSERT_EQUAL(derivation_parse_aterm(text, k, NIX, &d, &e), -1);
			CU_ASSERT_PTR_NOT_NULL(e);
			n++;
		}
	}
	CU_ASSERT(n > 5000);
}

/* Limits: more than DRV_MAX_ITEMS list entries are refused. */
static void test_aterm_limits(void)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	cleanup_derivation struct derivation *d = NULL;

	strbuf_addstr(&sb, "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"s\",\"b\",[");
	for (size_t i = 0; i < DRV_MAX_ITEMS + 1; i++)
		strbuf_addstr(&sb, i ? ",\"\"" : "\"\"");
	strbuf_addstr(&sb, "],[])");
	CU_ASSERT_EQUAL(derivation_parse_aterm(sb.buf, sb.len, NIX, &d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "more than 1048576 list entries"));
}

static void expect_json_reject(const char *text, const char *msg)
{
	cleanup_error struct nib_error *e = NULL;
	struct derivation *d = (struct derivation *)0x1;
	char *key = (char *)0x1;

	CU_ASSERT_EQUAL(derivation_parse_json(text, strlen(text), NIX, &key, &d, &e), -1);
	CU_ASSERT_EQUAL(d, (struct derivation *)0x1);
	CU_ASSERT_EQUAL(key, (char *)0x1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
	if (strstr(e->msg, msg) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, msg));
}

#define JHEAD "{\"system\":\"s\",\"builder\":\"b\",\"args\":[],"
#define JOK JHEAD "\"env\":{},\"outputs\":{\"out\":{}}"

static void test_json_rejects(void)
{
	static const struct {
		const char *text, *msg;
	} v[] = {
		{ "", "at byte 0 (line 1, column 1): syntax error" },
		{ "{\n  \"outputs\": }", "at byte 15 (line 2, column 14): syntax error" },
		{ JOK "} x", "unexpected data after the JSON value" },
		{ "[]", "expected an object" },
		{ "{\"a\":{},\"b\":{}}", "missing 'system'" },
		{ "{\"a\":1}", "missing 'system'" },
		{ "{\"/nix/store/x.drv\":{}}", "too short" },
		{ "{\"" SIMPLE_OUT "\":{}}", "is not a derivation (.drv)" },
		{ "{\"" DRVA "\":" JHEAD "\"env\":{},\"outputs\":{}}}",
		  "in '" DRVA "': invalid derivation JSON at outputs: derivation has no outputs" },
		{ JOK ",\"version\":2}", "at version: unsupported version" },
		{ JOK ",\"version\":\"3\"}", "at version: unsupported version" },
		{ JOK ",\"name\":\".x\"}", "invalid derivation name '.x'" },
		{ JOK ",\"name\":7}", "at name: expected a string" },
		{ "{\"builder\":\"b\",\"args\":[],\"env\":{},\"outputs\":{\"out\":{}}}",
		  "missing 'system'" },
		{ "{\"system\":\"s\",\"args\":[],\"env\":{},\"outputs\":{\"out\":{}}}",
		  "missing 'builder'" },
		{ JHEAD "\"env\":{}}", "missing 'outputs'" },
		{ "{\"system\":\"s\",\"builder\":\"b\",\"env\":{},\"outputs\":{\"out\":{}}}",
		  "missing 'args'" },
		{ JHEAD "\"outputs\":{\"out\":{}}}", "missing 'env'" },
		{ "{\"system\":\"s\",\"builder\":\"b\",\"args\":{},\"env\":{},\"outputs\":{\"out\":"
		  "{}}}",
		  "at args: expected an array" },
		{ "{\"system\":\"s\",\"builder\":\"b\",\"args\":[1],\"env\":{},\"outputs\":{"
		  "\"out\":{}}}",
		  "at args[0]: expected a string" },
		{ JHEAD "\"env\":{\"x\":1},\"outputs\":{\"out\":{}}}",
		  "at env.x: expected a string" },
		{ JHEAD "\"env\":{\"x\":\"1\",\"x\":\"2\"},\"outputs\":{\"out\":{}}}",
		  "at env: key 'x' appears twice" },
		{ JHEAD "\"env\":[],\"outputs\":{\"out\":{}}}", "at env: expected an object" },
		{ JHEAD "\"env\":{},\"outputs\":[]}", "at outputs: expected an object" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":[]}}",
		  "at outputs.out: expected an object" },
		{ JHEAD "\"env\":{},\"outputs\":{\"o u\":{}}}", "invalid output name 'o u'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"path\":7}}}",
		  "at outputs.out.path: expected a string" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"path\":\"/tmp/x\"}}}",
		  "at outputs.out.path: path '/tmp/x' is not in the store" },
		{ JHEAD
		  "\"env\":{},\"outputs\":{\"out\":{\"method\":\"rec\",\"hashAlgo\":\"sha256\"}}}",
		  "at outputs.out.method: unknown method 'rec'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"method\":\"nar\"}}}",
		  "lacks a hash algorithm" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"method\":\"nar\",\"hashAlgo\":\"r:"
			"sha256\"}}}",
		  "unknown hash algorithm 'r:sha256'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"hashAlgo\":\"sha3\"}}}",
		  "at outputs.out.hashAlgo: unknown hash algorithm 'sha3'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"hash\":\"sha256-" H64 "\"}}}",
		  "needs 'method' or 'hashAlgo'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"hashAlgo\":\"sha1\",\"hash\":\"" H64
			"\"}}}",
		  "wrong length for hash algorithm 'sha1'" },
		{ JHEAD
		  "\"env\":{},\"outputs\":{\"out\":{\"hashAlgo\":\"sha1\",\"hash\":\"sha256:" H64
		  "\"}}}",
		  "should have type 'sha1'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"method\":\"nar\",\"hashAlgo\":\"sha1\","
			"\"hash\":{\"algorithm\":\"sha256\",\"hash\":\"" H64 "\"}}}}",
		  "contradicts hashAlgo 'sha1'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"method\":\"nar\",\"hash\":{\"hash\":"
			"\"x\"}}}}",
		  "at outputs.out.hash: missing 'algorithm'" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"method\":\"nar\",\"hash\":7}}}",
		  "expected a string or an object" },
		{ JHEAD
		  "\"env\":{},\"outputs\":{\"out\":{\"hashAlgo\":\"r:sha256\",\"impure\":1}}}",
		  "at outputs.out.impure: expected true or false" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"impure\":true}}}",
		  "an impure output needs a method and hash algorithm" },
		{ JHEAD "\"env\":{},\"outputs\":{\"out\":{\"hashAlgo\":\"r:sha256\",\"path\":"
			"\"" SIMPLE_OUT "\"}}}",
		  "a floating output cannot have a path" },
		{ JOK ",\"inputDrvs\":{\"" DRVA
		      "\":{\"outputs\":[\"out\"],\"dynamicOutputs\":{\"x\":{}}}}}",
		  "dynamic derivation outputs are not supported" },
		{ JOK ",\"inputDrvs\":{\"" DRVA "\":{\"dynamicOutputs\":{}}}}",
		  "missing 'outputs'" },
		{ JOK ",\"inputDrvs\":{\"" DRVA "\":[]}}", "no outputs listed" },
		{ JOK ",\"inputDrvs\":{\"" DRVA "\":[\"a b\"]}}", "invalid output name 'a b'" },
		{ JOK ",\"inputDrvs\":{\"" SIMPLE_OUT "\":[\"out\"]}}",
		  "is not a derivation (.drv)" },
		{ JOK ",\"inputDrvs\":[]}", "at inputDrvs: expected an object" },
		{ JOK ",\"inputSrcs\":[\"x\"]}", "at inputSrcs[0]: store path 'x' is too short" },
		{ JOK ",\"inputs\":{\"srcs\":[]},\"inputSrcs\":[]}", "both 'inputs' and" },
		{ JOK ",\"inputs\":[]}", "at inputs: expected an object" },
		{ JOK ",\"structuredAttrs\":[]}", "at structuredAttrs: expected an object" },
		{ JHEAD
		  "\"env\":{\"__json\":\"{}\"},\"outputs\":{\"out\":{}},\"structuredAttrs\":{}}",
		  "env already has '__json'" },
		{ JOK ",\"structuredAttrs\":{\"a\":{\"b\":1,\"b\":2}}}", "key 'b' appears twice" },
		{ JOK ",\"x\":\"a\\u0000b\"}", "\\u0000 in a string" },
		{ JOK ",\"outputs\":{\"out\":{}}}", "key 'outputs' appears twice" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		expect_json_reject(v[i].text, v[i].msg);
	{
		/* A raw NUL byte, and a length past the limit. */
		cleanup_error struct nib_error *e = NULL, *e2 = NULL;
		struct derivation *d = NULL;
		CU_ASSERT_EQUAL(derivation_parse_json("{\"a\0\":1}", 8, NIX, NULL, &d, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "at byte 3 (line 1, column 4): NUL byte"));
		CU_ASSERT_EQUAL(derivation_parse_json("{", DRV_MAX_TEXT + 1, NIX, NULL, &d, &e2),
				-1);
		CU_ASSERT(e2 && strstr(e2->msg, "too large"));
	}
	{
		/* Nesting beyond DRV_MAX_JSON_DEPTH is refused before cJSON runs. */
		cleanup_strbuf struct strbuf sb = STRBUF_INIT;
		strbuf_addstr(&sb, JOK ",\"structuredAttrs\":");
		for (int i = 0; i < DRV_MAX_JSON_DEPTH; i++)
			strbuf_addstr(&sb, "{\"a\":");
		strbuf_addstr(&sb, "1");
		for (int i = 0; i < DRV_MAX_JSON_DEPTH; i++)
			strbuf_addch(&sb, '}');
		strbuf_addch(&sb, '}');
		expect_json_reject(sb.buf, "nested too deeply");
	}
	{
		/* More values than DRV_MAX_ITEMS. */
		cleanup_strbuf struct strbuf sb = STRBUF_INIT;
		strbuf_addstr(&sb, JHEAD "\"env\":{},\"outputs\":{\"out\":{}},\"x\":[");
		for (size_t i = 0; i < DRV_MAX_ITEMS + 1; i++)
			strbuf_addstr(&sb, i ? ",0" : "0");
		strbuf_addstr(&sb, "]}");
		expect_json_reject(sb.buf, "too many values");
	}
	{
		/* The minimal object parses; unknown members are ignored. */
		cleanup_error struct nib_error *e = NULL;
		cleanup_derivation struct derivation *d = NULL;
		const char *ok = JOK ",\"options\":{\"x\":[1,2]},\"meta\":null}";
		CU_ASSERT_EQUAL(derivation_parse_json(ok, strlen(ok), NIX, NULL, &d, &e), 0);
		CU_ASSERT_PTR_NULL(d ? d->name : NULL);
		CU_ASSERT_EQUAL(d ? d->outputs[0].kind : 0, DRV_OUT_DEFERRED);
	}
}

static void test_parse_any(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_derivation struct derivation *a = NULL, *b = NULL;
	cleanup_free char *key = (char *)NULL;
	const char *aterm = " \n" SIMPLE;
	const char *json = "\n\t " JOK "}";

	CU_ASSERT_EQUAL(derivation_parse_any(aterm, strlen(aterm), NIX, &key, &a, &e), 0);
	CU_ASSERT_PTR_NULL(key);
	CU_ASSERT_EQUAL(derivation_parse_any(json, strlen(json), NIX, NULL, &b, &e), 0);
	CU_ASSERT_PTR_NOT_NULL(b);
	CU_ASSERT_EQUAL(derivation_parse_any("x", 1, NIX, NULL, &b, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "not a derivation"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(derivation_parse_any("", 0, NIX, NULL, &b, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "not a derivation"));
}

/* ---- model and API ---- */

static struct derivation *parse_simple(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct derivation *d = NULL;

	if (derivation_parse_aterm(SIMPLE, strlen(SIMPLE), NIX, &d, &e) < 0)
		fprintf(stderr, "\n%s\n", e->msg);
	return d;
}

static void test_env_and_outputs(void)
{
	cleanup_derivation struct derivation *d = parse_simple();
	cleanup_strbuf struct strbuf out = STRBUF_INIT;

	if (d == NULL) {
		CU_FAIL("parse");
		return;
	}
	CU_ASSERT_STRING_EQUAL(derivation_get_env(d, "builder"), "/bin/sh");
	CU_ASSERT_PTR_NULL(derivation_get_env(d, "nope"));
	CU_ASSERT_PTR_NULL(derivation_get_env(d, ""));
	derivation_set_env(d, "aaa", "1");
	derivation_set_env(d, "zzz", "2");
	derivation_set_env(d, "name", "simple");
	derivation_set_env(d, "m", "3");
	CU_ASSERT_EQUAL(d->n_env, 7);
	for (size_t i = 1; i < d->n_env; i++)
		CU_ASSERT(strcmp(d->env[i - 1].key, d->env[i].key) < 0);
	CU_ASSERT_STRING_EQUAL(derivation_get_env(d, "m"), "3");
	derivation_set_env(d, "m", "4");
	CU_ASSERT_STRING_EQUAL(derivation_get_env(d, "m"), "4");
	CU_ASSERT_EQUAL(d->n_env, 7);
	CU_ASSERT_PTR_NOT_NULL(derivation_find_output(d, "out"));
	CU_ASSERT_PTR_NULL(derivation_find_output(d, "dev"));
	CU_ASSERT(!derivation_is_fixed_output(d));
	derivation_print_aterm(d, &out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf, "(\"aaa\",\"1\"),(\"builder\""));

	CU_ASSERT_STRING_EQUAL(drv_ca_method_prefix(DRV_CA_FLAT), "");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_prefix(DRV_CA_NAR), "r:");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_prefix(DRV_CA_TEXT), "text:");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_prefix(DRV_CA_GIT), "git:");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_name(DRV_CA_FLAT), "flat");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_name(DRV_CA_NAR), "nar");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_name(DRV_CA_TEXT), "text");
	CU_ASSERT_STRING_EQUAL(drv_ca_method_name(DRV_CA_GIT), "git");
}

/* A derivation built by hand prints like the parsed one once canonical. */
static void test_canonicalize(void)
{
	cleanup_derivation struct derivation *want = parse_simple();
	cleanup_derivation struct derivation *d = derivation_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strbuf struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;

	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "lacks a system"));
	nib_error_clear(&e);
	d->system = xstrdup("x86_64-linux");
	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "lacks a builder"));
	nib_error_clear(&e);
	d->builder = xstrdup("/bin/sh");
	strv_push(&d->args, "-c");
	strv_push(&d->args, "echo hello > $out");
	d->n_args = 2;
	d->env = xcalloc(4, sizeof(*d->env));
	d->env[0] = (struct drv_env){ xstrdup("system"), xstrdup("x86_64-linux") };
	d->env[1] = (struct drv_env){ xstrdup("out"), xstrdup(SIMPLE_OUT) };
	d->env[2] = (struct drv_env){ xstrdup("name"), xstrdup("simple") };
	d->env[3] = (struct drv_env){ xstrdup("builder"), xstrdup("/bin/sh") };
	d->n_env = 4;
	d->outputs = xcalloc(1, sizeof(*d->outputs));
	d->outputs[0].name = xstrdup("out");
	d->outputs[0].kind = DRV_OUT_INPUT_ADDRESSED;
	d->outputs[0].path = xstrdup(SIMPLE_OUT);
	d->n_outputs = 1;
	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), 0);
	derivation_print_aterm(d, &a);
	derivation_print_aterm(want, &b);
	CU_ASSERT(report_diff("canonicalized", a.buf, a.len, b.buf, b.len));

	/* Repeats and bad names are refused. */
	{
		cleanup_derivation struct derivation *r = parse_simple();
		if (r != NULL) {
			free(r->env[0].key);
			r->env[0].key = xstrdup("system");
			CU_ASSERT_EQUAL(derivation_canonicalize(r, &e), -1);
			CU_ASSERT(e &&
				  strstr(e->msg, "environment variable 'system' appears twice"));
			nib_error_clear(&e);
			free(r->env[0].key);
			r->env[0].key = xstrdup("builder");
			r->outputs = xreallocarray(r->outputs, 2, sizeof(*r->outputs));
			r->outputs[1] = (struct drv_output){ .name = xstrdup("out") };
			r->n_outputs = 2;
			CU_ASSERT_EQUAL(derivation_canonicalize(r, &e), -1);
			CU_ASSERT(e && strstr(e->msg, "output 'out' appears twice"));
			nib_error_clear(&e);
		}
	}
	d->inputs = xcalloc(2, sizeof(*d->inputs));
	d->inputs[0].path = xstrdup(DRVA);
	d->inputs[0].outputs = xcalloc(1, sizeof(char *));
	d->n_inputs = 1;
	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "has no outputs listed"));
	nib_error_clear(&e);
	strv_push(&d->inputs[0].outputs, "out");
	strv_push(&d->inputs[0].outputs, "b d");
	d->inputs[0].n_outputs = 2;
	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "invalid output name 'b d'"));
	nib_error_clear(&e);
	free(d->inputs[0].outputs[1]);
	d->inputs[0].outputs[1] = xstrdup("out");
	d->inputs[1].path = xstrdup(DRVA);
	d->inputs[1].outputs = xcalloc(2, sizeof(char *));
	d->inputs[1].outputs[0] = xstrdup("dev");
	d->inputs[1].n_outputs = 1;
	d->n_inputs = 2;
	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "input derivation '" DRVA "' appears twice"));
	nib_error_clear(&e);
	d->n_inputs = 1;
	free(d->inputs[1].path);
	free(d->inputs[1].outputs[0]);
	free(d->inputs[1].outputs);
	/* Output names of an input are a set. */
	if (derivation_canonicalize(d, &e) < 0) {
		fprintf(stderr, "\n%s\n", e->msg);
		CU_FAIL("canonicalize");
		nib_error_clear(&e);
	}
	CU_ASSERT_EQUAL(d->inputs[0].n_outputs, 1);
	free(d->outputs[0].name);
	d->outputs[0].name = xstrdup(".out");
	CU_ASSERT_EQUAL(derivation_canonicalize(d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "invalid output name '.out'"));
}

static struct derivation *json_drv(const char *text)
{
	cleanup_error struct nib_error *e = NULL;
	struct derivation *d = NULL;

	if (derivation_parse_json(text, strlen(text), NIX, NULL, &d, &e) < 0)
		fprintf(stderr, "\n%s\n", e->msg);
	return d;
}

static void expect_type_error(const char *json, const char *msg)
{
	cleanup_derivation struct derivation *d = json_drv(json);
	cleanup_error struct nib_error *e = NULL;
	enum drv_type t = _DRV_TYPE_MAX;

	CU_ASSERT_PTR_NOT_NULL(d);
	if (d == NULL)
		return;
	CU_ASSERT_EQUAL(derivation_type(d, &t, &e), -1);
	CU_ASSERT_EQUAL(t, _DRV_TYPE_MAX);
	if (e && strstr(e->msg, msg) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg);
	CU_ASSERT(e && strstr(e->msg, msg));
}

#define JN JHEAD "\"name\":\"t\",\"env\":{},\"outputs\":"

static void test_types(void)
{
	static const struct {
		const char *outputs;
		enum drv_type type;
	} ok[] = {
		{ "{\"out\":{\"path\":\"" SIMPLE_OUT "\"}}", DRV_TYPE_INPUT_ADDRESSED },
		{ "{\"out\":{},\"dev\":{}}", DRV_TYPE_DEFERRED },
		{ "{\"out\":{\"hashAlgo\":\"sha256\",\"hash\":\"" H64 "\"}}", DRV_TYPE_FIXED },
		{ "{\"out\":{\"hashAlgo\":\"r:sha256\"},\"dev\":{\"hashAlgo\":\"sha256\"}}",
		  DRV_TYPE_FLOATING },
		{ "{\"out\":{\"hashAlgo\":\"r:sha256\",\"impure\":true}}", DRV_TYPE_IMPURE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		cleanup_free char *j = xasprintf(JN "%s}", ok[i].outputs);
		cleanup_derivation struct derivation *d = json_drv(j);
		cleanup_error struct nib_error *e = NULL;
		enum drv_type t;

		CU_ASSERT_PTR_NOT_NULL(d);
		if (d == NULL)
			continue;
		CU_ASSERT_EQUAL(derivation_type(d, &t, &e), 0);
		CU_ASSERT_EQUAL(t, ok[i].type);
		CU_ASSERT_EQUAL(derivation_is_fixed_output(d), ok[i].type == DRV_TYPE_FIXED);
	}
	expect_type_error(JN "{\"out\":{\"path\":\"" SIMPLE_OUT "\"},\"dev\":{}}}",
			  "mixes output types");
	expect_type_error(JN "{\"out\":{\"hashAlgo\":\"sha256\",\"hash\":\"" H64
			     "\"},\"dev\":{\"hashAlgo\":\"sha256\",\"hash\":\"" H64 "\"}}}",
			  "has 2 outputs; only one is allowed");
	expect_type_error(JN "{\"bin\":{\"hashAlgo\":\"sha256\",\"hash\":\"" H64 "\"}}}",
			  "must be called 'out', not 'bin'");
	expect_type_error(JN
			  "{\"out\":{\"hashAlgo\":\"r:sha256\"},\"dev\":{\"hashAlgo\":\"sha1\"}}}",
			  "use different hash algorithms");
	{
		cleanup_derivation struct derivation *d = derivation_new();
		cleanup_error struct nib_error *e = NULL;
		enum drv_type t;
		CU_ASSERT_EQUAL(derivation_type(d, &t, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "has no outputs"));
		nib_error_clear(&e);
		d->outputs = xcalloc(1, sizeof(*d->outputs));
		d->outputs[0].name = xstrdup("out");
		d->outputs[0].kind = (enum drv_output_kind)99;
		d->n_outputs = 1;
		CU_ASSERT_EQUAL(derivation_type(d, &t, &e), -1);
		CU_ASSERT(e &&
			  strstr(e->msg, "output 'out' of derivation '?' has an invalid kind"));
	}
}

/* Text and git content addresses (newer Nix) get their own path rules. */
static void test_fixed_methods(void)
{
	cleanup_derivation struct derivation *text =
		json_drv(JN "{\"out\":{\"method\":\"text\",\"hash\":\"sha256:" H64 "\"}}}");
	cleanup_derivation struct derivation *git =
		json_drv(JN "{\"out\":{\"method\":\"git\",\"hash\":{\"algorithm\":\"sha1\","
			    "\"format\":\"base16\","
			    "\"hash\":\"11f6ad8ec52a2984abaafd7c3b516503785c2072\"}}}}");
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new(NIX, NULL, NULL);
	cleanup_error struct nib_error *e = NULL;
	cleanup_strbuf struct strbuf out = STRBUF_INIT;
	struct store_path want;
	struct hash inner;

	if (text == NULL || git == NULL) {
		CU_FAIL("parse");
		return;
	}
	CU_ASSERT_EQUAL(derivation_fill_outputs(h, text, &e), 0);
	CU_ASSERT_EQUAL(store_path_make_text(NIX, "t", &text->outputs[0].hash, NULL, &want, &e), 0);
	{
		cleanup_free char *w = store_path_to_string(NIX, &want);
		CU_ASSERT_STRING_EQUAL(text->outputs[0].path, w);
	}
	derivation_print_aterm(text, &out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf, "\"text:sha256\",\"" H64 "\""));
	CU_ASSERT_EQUAL(derivation_fill_outputs(h, git, &e), 0);
	hash_string(HASH_SHA256,
		    "fixed:out:git:sha1:11f6ad8ec52a2984abaafd7c3b516503785c2072:", &inner);
	CU_ASSERT_EQUAL(store_path_make("output:out", &inner, NIX, "t", &want, &e), 0);
	{
		cleanup_free char *w = store_path_to_string(NIX, &want);
		CU_ASSERT_STRING_EQUAL(git->outputs[0].path, w);
	}
	strbuf_reset(&out);
	derivation_print_aterm(git, &out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf, "\"git:sha1\""));
	CU_ASSERT_PTR_NULL(e);
}

/* ---- hashing context: resolver errors, cycles, depth ---- */

static char *chain_path(unsigned i)
{
	return xasprintf(NIX "/%032u-c%u.drv", i, i);
}

/* Derivation i depends on derivation i + 1 (or on itself when self). */
static struct derivation *resolve_chain(void *userdata, const char *drv_path,
					struct nib_error **err)
{
	const char *mode = userdata;
	const char *p = strrchr(drv_path, '-');
	unsigned i = (unsigned)strtoul(p + 2, NULL, 10);
	cleanup_free char *next = chain_path(STREQ(mode, "self") ? i : i + 1);
	cleanup_free char *j = NULL;
	struct derivation *d = NULL;

	if (STREQ(mode, "fail"))
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "no file for it"), NULL;
	if (STREQ(mode, "badout"))
		j = xasprintf(JN "{\"out\":{}}}");
	else
		j = xasprintf(JN "{\"out\":{}},\"inputDrvs\":{\"%s\":[\"out\"]}}", next);
	if (derivation_parse_json(j, strlen(j), NIX, NULL, &d, err) < 0)
		return NULL;
	return d;
}

static void expect_hash_error(const char *mode, bool with_resolver, const char *msg)
{
	cleanup_drv_hasher struct drv_hasher *h =
		drv_hasher_new(NIX, with_resolver ? resolve_chain : NULL, (void *)mode);
	cleanup_free char *first = chain_path(0);
	cleanup_free char *j = xasprintf(JN "{\"out\":{}},\"inputDrvs\":{\"%s\":[\"%s\"]}}", first,
					 STREQ(mode, "badout") ? "dev" : "out");
	cleanup_derivation struct derivation *d = json_drv(j);
	cleanup_error struct nib_error *e = NULL;
	struct drv_modulo m = { 0 };

	CU_ASSERT_PTR_NOT_NULL(d);
	if (d == NULL)
		return;
	if (derivation_hash_modulo(h, d, true, &m, &e) == 0) {
		fprintf(stderr, "\nmode %s: no error\n", mode);
		CU_FAIL("expected an error");
		drv_modulo_release(&m);
		return;
	}
	if (e && strstr(e->msg, msg) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg);
	CU_ASSERT(e && strstr(e->msg, msg));
	/* The hasher stays usable after an error. */
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(derivation_hash_modulo(h, d, true, &m, &e), -1);
	CU_ASSERT(e && strstr(e->msg, msg));
}

static void test_hasher_errors(void)
{
	expect_hash_error("self", true, "depends on itself");
	expect_hash_error("chain", true, "nested more than 1024 deep");
	expect_hash_error("fail", true,
			  "input derivation '" NIX "/00000000000000000000000000000000-c0.drv': "
			  "no file for it");
	expect_hash_error("chain", false, "no way to read it");
	expect_hash_error("badout", true, "has no output 'dev'");
}

static void test_check_errors(void)
{
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new(NIX, NULL, NULL);
	cleanup_derivation struct derivation *d = parse_simple();
	cleanup_error struct nib_error *e = NULL;

	if (d == NULL) {
		CU_FAIL("parse");
		return;
	}
	CU_ASSERT_EQUAL(derivation_check_outputs(h, d, &e), 0);
	derivation_set_env(d, "out", "/nix/store/x");
	CU_ASSERT_EQUAL(derivation_check_outputs(h, d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "has environment variable 'out' set to '/nix/store/x', "
				      "expected '" SIMPLE_OUT "'"));
	nib_error_clear(&e);
	/* Removing env "out" changes the masked hash, so the path check fires first. */
	free(d->env[2].key);
	free(d->env[2].value);
	memmove(&d->env[2], &d->env[3], sizeof(d->env[0]));
	d->n_env--;
	CU_ASSERT_EQUAL(derivation_check_outputs(h, d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "output 'out' of derivation 'simple' has path '" SIMPLE_OUT
				      "', expected '"));
	nib_error_clear(&e);
	free(d->name);
	d->name = NULL;
	CU_ASSERT_EQUAL(derivation_check_outputs(h, d, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "derivation has no name"));
	nib_error_clear(&e);
	{
		struct store_path sp;
		CU_ASSERT_EQUAL(derivation_store_path(NIX, d, &sp, NULL, NULL, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "derivation has no name"));
	}
	nib_error_clear(&e);
	{
		/* A fixed output whose env var is missing. */
		cleanup_derivation struct derivation *f =
			json_drv(JN "{\"out\":{\"hashAlgo\":\"sha256\",\"hash\":\"" H64 "\"}}}");
		CU_ASSERT_EQUAL(derivation_check_outputs(h, f, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "output 'out' of derivation 't' has no path"));
		nib_error_clear(&e);
		CU_ASSERT_EQUAL(derivation_fill_outputs(h, f, &e), 0);
		CU_ASSERT_STRING_EQUAL(derivation_get_env(f, "out"), f->outputs[0].path);
		free(f->env[0].value);
		f->env[0].value = xstrdup("");
		CU_ASSERT_EQUAL(derivation_check_outputs(h, f, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "set to '', expected"));
		nib_error_clear(&e);
		free(f->env[0].key);
		free(f->env[0].value);
		f->n_env = 0;
		CU_ASSERT_EQUAL(derivation_check_outputs(h, f, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "lacks environment variable 'out'"));
	}
}

static void test_store_path_text(void)
{
	cleanup_derivation struct derivation *d = parse_simple();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *text = NULL;
	struct store_path sp;
	size_t len = 0;

	if (d == NULL) {
		CU_FAIL("parse");
		return;
	}
	CU_ASSERT_EQUAL(derivation_store_path(NIX, d, &sp, &text, &len, &e), 0);
	CU_ASSERT_STRING_EQUAL(sp.hash, "3ghsl9sd83mc26i81adpa2fzf3yw4f68");
	CU_ASSERT_STRING_EQUAL(sp.name, "simple.drv");
	CU_ASSERT_EQUAL(len, strlen(SIMPLE));
	CU_ASSERT_STRING_EQUAL(text, SIMPLE);
}

static void test_references(void)
{
	const struct vset *s = &sets[0];
	cleanup_derivation struct derivation *d =
		load_drv(s, "n1q3m0q0ps04fgavmcjbd8y01kyd68m0-chain-top.drv", NULL, 0);
	cleanup_derivation struct derivation *i =
		load_drv(s, "9lbh98jsq2nk6siaxyvmqil31z22fd3g-input-srcs.drv", NULL, 0);
	cleanup_strv char **r1 = NULL;
	cleanup_strv char **r2 = NULL;

	if (d == NULL || i == NULL) {
		CU_FAIL("vectors");
		return;
	}
	r1 = derivation_references(d);
	CU_ASSERT_EQUAL(strv_length(r1), 2);
	CU_ASSERT_STRING_EQUAL(r1[0], DRVA);
	CU_ASSERT_STRING_EQUAL(r1[1], DRVB);
	r2 = derivation_references(i);
	CU_ASSERT_EQUAL(strv_length(r2), 4);
	for (size_t k = 1; k < strv_length(r2); k++)
		CU_ASSERT(strcmp(r2[k - 1], r2[k]) < 0);
}

static void test_print_json_many(void)
{
	cleanup_derivation struct derivation *d = parse_simple();
	cleanup_strbuf struct strbuf out = STRBUF_INIT;
	const struct derivation *dv[2] = { d, d };
	const char *pv[2] = { NIX "/a.drv", NIX "/b.drv" };

	derivation_print_json(dv, pv, 0, &out);
	CU_ASSERT_STRING_EQUAL(out.buf, "{}\n");
	strbuf_reset(&out);
	derivation_print_json(dv, pv, 2, &out);
	CU_ASSERT_EQUAL(strncmp(out.buf, "{\n  \"/nix/store/a.drv\": {\n    \"outputs\": {", 40),
			0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf, "\n  },\n  \"/nix/store/b.drv\": {\n"));
	CU_ASSERT_EQUAL(strcmp(out.buf + out.len - 5, "}\n}\n}\n") == 0 ||
				strcmp(out.buf + out.len - 6, "  }\n}\n") == 0,
			true);
}

static void test_required_features(void)
{
	static const struct {
		const char *env, *json, *want, *err;
	} v[] = {
		{ "kvm big-parallel", NULL, "kvm,big-parallel,", NULL },
		{ "  kvm\t\nbig-parallel  ", NULL, "kvm,big-parallel,", NULL },
		{ "", NULL, "", NULL },
		{ NULL, NULL, "", NULL },
		{ "ignored", "{\"requiredSystemFeatures\":[\"rainbow\",\"uid-range\"]}",
		  "rainbow,uid-range,", NULL },
		{ NULL, "{}", "", NULL },
		{ NULL, "[", NULL, "invalid structured attributes" },
		{ NULL, "{\"requiredSystemFeatures\":\"kvm\"}", NULL, "is not a list" },
		{ NULL, "{\"requiredSystemFeatures\":[1]}", NULL, "holds a non-string" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		cleanup_derivation struct derivation *d = parse_simple();
		cleanup_error struct nib_error *e = NULL;
		cleanup_strv char **feat = NULL;
		cleanup_strbuf struct strbuf got = STRBUF_INIT;

		if (d == NULL)
			continue;
		if (v[i].env)
			derivation_set_env(d, "requiredSystemFeatures", v[i].env);
		if (v[i].json)
			derivation_set_env(d, "__json", v[i].json);
		if (v[i].err) {
			CU_ASSERT_EQUAL(derivation_required_features(d, &feat, &e), -1);
			CU_ASSERT(e && strstr(e->msg, v[i].err));
			continue;
		}
		CU_ASSERT_EQUAL(derivation_required_features(d, &feat, &e), 0);
		for (char **f = feat; f && *f; f++)
			strbuf_addf(&got, "%s,", *f);
		CU_ASSERT_STRING_EQUAL(got.buf, v[i].want);
	}
}

/* __noChroot and friends: "1" in env, a JSON Boolean in structured attrs. */
static void test_bool_attr(void)
{
	static const struct {
		const char *env, *json;
		int want; /* -1: an error */
	} v[] = {
		{ "1", NULL, 1 },
		{ "true", NULL, 0 },
		{ "", NULL, 0 },
		{ "0", NULL, 0 },
		{ NULL, NULL, 0 },
		{ "1", "{}", 0 }, /* with structured attrs the env is not looked at */
		{ NULL, "{\"__noChroot\":true}", 1 },
		{ NULL, "{\"__noChroot\":false}", 0 },
		{ NULL, "{\"__noChroot\":\"1\"}", -1 },
		{ NULL, "[", -1 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		cleanup_derivation struct derivation *d = parse_simple();
		cleanup_error struct nib_error *e = NULL;
		bool got = false;

		if (d == NULL)
			continue;
		if (v[i].env)
			derivation_set_env(d, "__noChroot", v[i].env);
		if (v[i].json)
			derivation_set_env(d, "__json", v[i].json);
		if (v[i].want < 0) {
			CU_ASSERT_EQUAL(derivation_get_bool_attr(d, "__noChroot", &got, &e), -1);
			CU_ASSERT(e && e->code == NIB_E_INVALID);
			continue;
		}
		CU_ASSERT_EQUAL(derivation_get_bool_attr(d, "__noChroot", &got, &e), 0);
		CU_ASSERT_EQUAL(got, v[i].want == 1);
	}
}

/* Structured attrs are written compactly, keys sorted, with nlohmann's escapes. */
static void test_structured_dump(void)
{
	cleanup_derivation struct derivation *d = json_drv(
		JOK ",\"structuredAttrs\":{\"z\":[1,-2,1.5,0.1,1e-05,1e300,true,false,null],"
		    "\"a\":\"\\b\\f\\n\\r\\t\\u0001\\u007f\\\"\\\\/"
		    "\\u00e9\",\"m\":{\"y\":{},\"x\":[]}}}");
	const char *want = "{\"a\":\"\\b\\f\\n\\r\\t\\u0001\x7f\\\"\\\\/\xc3\xa9\",\"m\":{\"x\":[],"
			   "\"y\":{}},\"z\":[1,-2,1.5,0.1,1e-05,1e+300,true,false,null]}";

	CU_ASSERT_PTR_NOT_NULL(d);
	if (d == NULL)
		return;
	CU_ASSERT_STRING_EQUAL(derivation_get_env(d, "__json"), want);
}

static CU_TestInfo api_tests[] = {
	{ "ATerm rejects", test_aterm_rejects },
	{ "ATerm truncated", test_aterm_truncated },
	{ "ATerm limits", test_aterm_limits },
	{ "JSON rejects", test_json_rejects },
	{ "parse any", test_parse_any },
	{ "env and outputs", test_env_and_outputs },
	{ "canonicalize", test_canonicalize },
	{ "types", test_types },
	{ "text and git methods", test_fixed_methods },
	{ "hasher errors", test_hasher_errors },
	{ "check errors", test_check_errors },
	{ "store path and text", test_store_path_text },
	{ "print several", test_print_json_many },
	{ "references", test_references },
	{ "required features", test_required_features },
	{ "Boolean attributes", test_bool_attr },
	{ "structured attrs dump", test_structured_dump },
	CU_TEST_INFO_NULL,
};

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
	{ "api", NULL, NULL, NULL, NULL, api_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

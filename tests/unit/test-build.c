/*
 * Unit tests of what surrounds a build without running one: log paths,
 * derivation files with relative references (derivation-store.c), and the
 * scheduler's decisions that come before any sandbox (valid outputs,
 * derivations this machine cannot build).  The store lives under a
 * temporary store root with the logical directory /nib/store.
 */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit-run.h"
#include "build.h"
#include "cleanup.h"
#include "derivation-store.h"
#include "derivation.h"
#include "local-store.h"
#include "nar.h"
#include "settings.h"
#include "store-fixture.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

static char *tmp;
static struct settings *settings;
static struct store *store;

static void setup(void)
{
	tmp = test_mkdtemp();
	settings = test_store_settings(tmp, NULL, "state");
	free(settings->system);
	settings->system = xstrdup("x86_64-linux");
	store = test_store_open(settings);
}

static void teardown(void)
{
	store_close(store);
	store = NULL;
	settings_free(settings);
	settings = NULL;
	test_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

/* Write tmp/name with the given text. */
static char *put(const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", tmp, name);
	cleanup_free char *dir = xstrdup(p);

	cleanup_error struct nib_error *e = NULL;

	*strrchr(dir, '/') = '\0';
	CU_ASSERT_EQUAL(mkdir_p(dir, 0755, &e), 0);
	CU_ASSERT_EQUAL(test_write_file(p, text), 0);
	return p;
}

static struct derivation *read_drv(const char *drv_path)
{
	cleanup_error struct nib_error *e = NULL;
	struct derivation *d = store_read_derivation(store, drv_path, &e);

	if (d == NULL)
		fprintf(stderr, "read: %s\n", e->msg);
	return d;
}

#define TRIVIAL(name, extra)                                                                \
	"{\"name\": \"" name "\", \"system\": \"x86_64-linux\", \"builder\": \"/bin/sh\", " \
	"\"args\": [\"-c\", \"echo x > $out\"], \"outputs\": {\"out\": {}}" extra "}"

static void test_log_path(void)
{
	cleanup_free char *a = build_log_path(
		settings, "/nib/store/0f2ngr3vx26lzycvv7zadginx33c7pcf-greeting.txt.drv", true);
	cleanup_free char *b = build_log_path(
		settings, "/nib/store/0f2ngr3vx26lzycvv7zadginx33c7pcf-greeting.txt.drv", false);
	cleanup_free char *want = xasprintf(
		"%s/log/drvs/0f/2ngr3vx26lzycvv7zadginx33c7pcf-greeting.txt.drv.bz2", tmp);

	CU_ASSERT_STRING_EQUAL(a, want);
	want[strlen(want) - 4] = '\0';
	CU_ASSERT_STRING_EQUAL(b, want);
}

static void test_status_names(void)
{
	CU_ASSERT_STRING_EQUAL(build_status_name(BUILD_BUILT), "built");
	CU_ASSERT_STRING_EQUAL(build_status_name(BUILD_DEP_FAILED), "dependency-failed");
	CU_ASSERT_STRING_EQUAL(build_status_name(BUILD_HASH_MISMATCH), "hash-mismatch");
	CU_ASSERT_STRING_EQUAL(build_status_name(_BUILD_STATUS_MAX), "unknown");
	for (int s = 0; s < _BUILD_STATUS_MAX; s++)
		CU_ASSERT_STRING_NOT_EQUAL(build_status_name(s), "unknown");
}

static void test_relative_references(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *a = put("dir/sub/a.json", TRIVIAL("rel-a", ", \"env\": {}"));
	cleanup_free char *src = put("dir/script.sh", "echo from a source\n");
	cleanup_free char *b = put(
		"dir/b.json",
		"{\"name\": \"rel-b\", \"system\": \"x86_64-linux\", \"builder\": \"./script.sh\", "
		"\"args\": [\"./sub/a.json\", \"./sub/a.json!out\", \"./script.sh\", \"./other\"], "
		"\"inputDrvs\": {\"./sub/a.json\": [\"out\"]}, \"inputSrcs\": [\"./script.sh\"], "
		"\"outputs\": {\"out\": {}}, \"env\": {\"dep\": \"./sub/a.json\", \"plain\": "
		"\"x\"}}");
	cleanup_free char *drv_a = NULL, *drv_b = NULL;
	cleanup_derivation struct derivation *da = NULL, *db = NULL;

	CU_ASSERT_EQUAL(store_add_derivation_file(store, b, &drv_b, &e), -1);
	CU_ASSERT(e != NULL &&
		  strstr(e->msg, "args[3] is the relative reference './other', "
				 "which is not one of the derivation's inputs") != NULL);
	nib_error_clear(&e);
	free(b);
	b = put("dir/b.json",
		"{\"name\": \"rel-b\", \"system\": \"x86_64-linux\", \"builder\": \"./script.sh\", "
		"\"args\": [\"./sub/a.json\", \"./sub/a.json!out\", \"./script.sh\"], "
		"\"inputDrvs\": {\"./sub/a.json\": [\"out\"]}, \"inputSrcs\": [\"./script.sh\"], "
		"\"outputs\": {\"out\": {}}, \"env\": {\"dep\": \"./sub/a.json\", \"plain\": "
		"\"x\"}}");
	CU_ASSERT_EQUAL(store_add_derivation_file(store, b, &drv_b, &e), 0);
	if (e != NULL)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, a, &drv_a, &e), 0);
	if (drv_a == NULL || drv_b == NULL)
		return;
	da = read_drv(drv_a);
	db = read_drv(drv_b);
	if (da == NULL || db == NULL)
		return;
	CU_ASSERT_EQUAL(db->n_inputs, 1);
	CU_ASSERT_STRING_EQUAL(db->inputs[0].path, drv_a);
	CU_ASSERT_EQUAL(db->n_srcs, 1);
	CU_ASSERT(strstr(db->srcs[0], "-script.sh") != NULL);
	CU_ASSERT_STRING_EQUAL(db->builder, db->srcs[0]);
	CU_ASSERT_STRING_EQUAL(derivation_get_env(db, "dep"), da->outputs[0].path);
	CU_ASSERT_STRING_EQUAL(derivation_get_env(db, "plain"), "x");
	CU_ASSERT_STRING_EQUAL(db->args[0], da->outputs[0].path);
	CU_ASSERT_STRING_EQUAL(db->args[1], da->outputs[0].path);
	CU_ASSERT_STRING_EQUAL(db->args[2], db->srcs[0]);
	(void)src;
}

/* Nix's versioned form (base names, inputs.drvs / inputs.srcs) takes references too. */
static void test_relative_references_v4(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *a = put("v4/a.json", TRIVIAL("v4-a", ", \"env\": {}"));
	cleanup_free char *s = put("v4/data", "data\n");
	cleanup_free char *b = put(
		"v4/b.json", "{\"name\": \"v4-b\", \"version\": 4, \"system\": \"x86_64-linux\", "
			     "\"builder\": \"/bin/sh\", \"args\": [], \"outputs\": {\"out\": {}}, "
			     "\"inputs\": {\"srcs\": [\"./data\"], \"drvs\": {\"./a.json\": "
			     "{\"outputs\": [\"out\"], \"dynamicOutputs\": {}}}}, \"env\": {\"a\": "
			     "\"./a.json\", "
			     "\"d\": \"./data\"}}");
	cleanup_free char *drv_b = NULL;
	cleanup_derivation struct derivation *db = NULL;

	CU_ASSERT_EQUAL(store_add_derivation_file(store, b, &drv_b, &e), 0);
	if (e != NULL) {
		fprintf(stderr, "%s\n", e->msg);
		return;
	}
	db = read_drv(drv_b);
	if (db == NULL)
		return;
	CU_ASSERT_EQUAL(db->n_inputs, 1);
	CU_ASSERT(STARTS_WITH(db->inputs[0].path, "/nib/store/"));
	CU_ASSERT_EQUAL(db->n_srcs, 1);
	CU_ASSERT_STRING_EQUAL(derivation_get_env(db, "d"), db->srcs[0]);
	CU_ASSERT(strstr(derivation_get_env(db, "a"), "-v4-a") != NULL);
	(void)a;
	(void)s;
}

static void test_reference_errors(void)
{
	cleanup_error struct nib_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
	cleanup_free char *c1 =
		put("err/c1.json", TRIVIAL("c1", ", \"inputDrvs\": {\"./c2.json\": [\"out\"]}"));
	cleanup_free char *c2 =
		put("err/c2.json", TRIVIAL("c2", ", \"inputDrvs\": {\"./c1.json\": [\"out\"]}"));
	cleanup_free char *m = put("err/multi.json",
				   "{\"name\": \"m\", \"system\": \"x86_64-linux\", \"builder\": "
				   "\"/bin/sh\", \"args\": [], \"outputs\": {\"out\": {}, \"dev\": "
				   "{}}, \"env\": {}}");
	cleanup_free char *o =
		put("err/o.json", TRIVIAL("o", ", \"inputDrvs\": {\"./multi.json\": [\"out\"]}, "
					       "\"env\": {\"x\": \"./multi.json!dev\"}"));
	cleanup_free char *n =
		put("err/n.json", TRIVIAL("n", ", \"inputDrvs\": {\"./multi.json\": [\"out\"]}, "
					       "\"env\": {\"x\": \"./multi.json!nope\"}"));
	cleanup_free char *missing = put(
		"err/missing.json", TRIVIAL("mi", ", \"inputDrvs\": {\"./gone.json\": [\"out\"]}"));
	char *p = NULL;

	CU_ASSERT_EQUAL(store_add_derivation_file(store, c1, &p, &e1), -1);
	CU_ASSERT(e1 != NULL && strstr(e1->msg, "refers back to itself") != NULL);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, o, &p, &e2), -1);
	CU_ASSERT(e2 != NULL && strstr(e2->msg, "env 'x' refers to output 'dev' of "
						"'./multi.json', which its inputDrvs entry does "
						"not list") != NULL);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, n, &p, &e3), -1);
	CU_ASSERT(e3 != NULL && strstr(e3->msg, "output 'nope'") != NULL);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, missing, &p, &e4), -1);
	CU_ASSERT(e4 != NULL && strstr(e4->msg, "gone.json") != NULL);
	CU_ASSERT_PTR_NULL(p);
	(void)c2;
	(void)m;
}

/* An ATerm .drv file outside the store, and Nix's show-derivation form, add the same way. */
static void test_aterm_and_show_forms(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *j =
		put("forms/h.json", TRIVIAL("forms", ", \"env\": {\"name\": \"forms\"}"));
	cleanup_free char *drv = NULL, *again = NULL, *real = NULL, *text = NULL, *copy = NULL;
	cleanup_free char *shown = NULL, *from_show = NULL;

	CU_ASSERT_EQUAL(store_add_derivation_file(store, j, &drv, &e), 0);
	if (drv == NULL)
		return;
	real = local_store_real_path(store, drv);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, real, 1 << 20, &text, NULL, &e), 0);
	if (text == NULL)
		return;
	copy = put("forms/copy.drv", text);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, copy, &again, &e), 0);
	if (e != NULL)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT(again != NULL && STREQ(again, drv));
	{
		cleanup_derivation struct derivation *d = read_drv(drv);
		struct strbuf sb = STRBUF_INIT;
		const struct derivation *v[1] = { d };
		const char *paths[1] = { drv };
		if (d == NULL)
			return;
		derivation_print_json(v, paths, 1, &sb);
		shown = put("forms/shown.json", sb.buf);
		strbuf_release(&sb);
	}
	CU_ASSERT_EQUAL(store_add_derivation_file(store, shown, &from_show, &e), 0);
	CU_ASSERT(from_show != NULL && STREQ(from_show, drv));
}

struct results {
	int n;
	enum build_status last;
	char *error;
};

static void on_result(void *userdata, const struct build_result *r)
{
	struct results *res = userdata;

	res->n++;
	res->last = r->status;
	free(res->error);
	res->error = r->error ? xstrdup(r->error) : NULL;
}

/* Refused before anything is prepared: no build directory, no slot. */
static void test_refused_before_running(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *j =
		put("ref/x.json",
		    "{\"name\": \"other\", \"system\": \"riscv64-hurd\", \"builder\": "
		    "\"/bin/sh\", \"args\": [], \"outputs\": {\"out\": {}}, \"env\": {}}");
	cleanup_free char *f = put("ref/f.json", TRIVIAL("feat", ", \"env\": "
								 "{\"requiredSystemFeatures\": "
								 "\"uid-range quantum\"}"));
	cleanup_free char *drv = NULL, *drv_f = NULL, *builds = xasprintf("%s/state/builds", tmp);
	struct results res = { 0 };
	struct build_callbacks cb = { .result = on_result, .userdata = &res };
	struct build_options opts;
	char *one[1];
	struct stat st;

	build_options_init(&opts);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, j, &drv, &e), 0);
	CU_ASSERT_EQUAL(store_add_derivation_file(store, f, &drv_f, &e), 0);
	if (drv == NULL || drv_f == NULL)
		return;
	one[0] = drv;
	CU_ASSERT_EQUAL(build_derivations(store, settings, one, 1, &opts, &cb, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_BUILD_FAILED &&
		  strstr(e->msg, "it is for system 'riscv64-hurd'") != NULL);
	CU_ASSERT_EQUAL(res.n, 1);
	CU_ASSERT_EQUAL(res.last, BUILD_UNSUPPORTED);
	CU_ASSERT_EQUAL(stat(builds, &st), -1);
	nib_error_clear(&e);

	one[0] = drv_f;
	opts.keep_going = true;
	CU_ASSERT_EQUAL(build_derivations(store, settings, one, 1, &opts, &cb, &e), -1);
	CU_ASSERT(res.error != NULL && strstr(res.error, "'quantum'") != NULL);
	CU_ASSERT_EQUAL(stat(builds, &st), -1);
	free(res.error);
}

/* Outputs valid already: reported as such, nothing prepared, success. */
static void test_valid_outputs(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *j = put("val/v.json", TRIVIAL("valid", ", \"env\": {}"));
	cleanup_free char *drv = NULL, *real = NULL, *builds = xasprintf("%s/state/builds", tmp);
	cleanup_derivation struct derivation *d = NULL;
	struct store_path_info info = { 0 };
	struct results res = { 0 };
	struct build_callbacks cb = { .result = on_result, .userdata = &res };
	char *one[1];
	struct stat st;

	CU_ASSERT_EQUAL(store_add_derivation_file(store, j, &drv, &e), 0);
	if (drv == NULL || (d = read_drv(drv)) == NULL)
		return;
	real = local_store_real_path(store, d->outputs[0].path);
	CU_ASSERT_EQUAL(test_write_file(real, "x\n"), 0);
	CU_ASSERT_EQUAL(local_store_canonicalise(store, real, &e), 0);
	info.path = d->outputs[0].path;
	info.deriver = drv;
	CU_ASSERT_EQUAL(nar_hash_path(real, &info.nar_hash, &info.nar_size, &e), 0);
	CU_ASSERT_EQUAL(local_store_register_valid_paths(store, &info, 1, &e), 0);
	one[0] = drv;
	CU_ASSERT_EQUAL(build_derivations(store, settings, one, 1, NULL, &cb, &e), 0);
	CU_ASSERT_EQUAL(res.n, 1);
	CU_ASSERT_EQUAL(res.last, BUILD_VALID);
	CU_ASSERT_EQUAL(stat(builds, &st), -1);
	free(res.error);
}

/* A .drv whose output is not the one its contents give is refused (by the store or the build). */
static void test_forged_output_path(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *j = put("forged/f.json", TRIVIAL("forged", ", \"env\": {}"));
	cleanup_free char *drv = NULL, *forged = NULL;
	cleanup_derivation struct derivation *d = NULL;
	struct strbuf aterm = STRBUF_INIT;
	const char *victim = "/nib/store/00000000000000000000000000000000-glibc";
	struct results res = { 0 };
	struct build_callbacks cb = { .result = on_result, .userdata = &res };
	char *one[1];

	CU_ASSERT_EQUAL(store_add_derivation_file(store, j, &drv, &e), 0);
	if (drv == NULL || (d = read_drv(drv)) == NULL)
		return;
	free(d->outputs[0].path);
	d->outputs[0].path = xstrdup(victim);
	derivation_set_env(d, "out", victim);
	derivation_print_aterm(d, &aterm);
	/* The store refuses to register it; if it did not, the build must refuse it. */
	if (store_add_text(store, "forged.drv", aterm.buf, aterm.len, NULL, &forged, &e) < 0) {
		CU_ASSERT(e != NULL && strstr(e->msg, victim) != NULL &&
			  strstr(e->msg, "expected") != NULL);
		strbuf_release(&aterm);
		return;
	}
	strbuf_release(&aterm);
	one[0] = forged;
	CU_ASSERT_EQUAL(build_derivations(store, settings, one, 1, NULL, &cb, &e), -1);
	CU_ASSERT_EQUAL(res.last, BUILD_UNSUPPORTED);
	CU_ASSERT(res.error != NULL && strstr(res.error, victim) != NULL &&
		  strstr(res.error, "expected") != NULL);
	free(res.error);
}

static CU_TestInfo tests[] = {
	{ "log path", test_log_path },
	{ "status names", test_status_names },
	{ "relative references", test_relative_references },
	{ "relative references, version 4", test_relative_references_v4 },
	{ "reference errors", test_reference_errors },
	{ "ATerm and show-derivation files", test_aterm_and_show_forms },
	{ "refused before running", test_refused_before_running },
	{ "valid outputs", test_valid_outputs },
	{ "forged output path", test_forged_output_path },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "build", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

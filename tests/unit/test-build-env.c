/*
 * Unit tests of build-env: the .attrs.sh generator (quoting, each JSON
 * type, what is left out), the .attrs.json rewriting, exportReferencesGraph
 * (structured and classic), impureEnvVars, the attribute checks made before
 * a build and the output checks.  The store-backed tests use a temporary
 * store (logical /nib/store) holding A and B, where B refers to A.
 */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-env.h"
#include "cleanup.h"
#include "cunit-run.h"
#include "derivation.h"
#include "local-store.h"
#include "nar.h"
#include "settings.h"
#include "store-fixture.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define P(h, n) "/nib/store/" h "-" n
#define A P("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "a")
#define B P("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "b")
#define OUT P("cccccccccccccccccccccccccccccccc", "x")
#define DEV P("dddddddddddddddddddddddddddddddd", "x-dev")
/* Writable copies for the char * members and vectors of the library's structs. */
static char pa[] = A, pb[] = B, pout[] = OUT, pdev[] = DEV;

/* ---- .attrs.sh ---- */

static void check_quote(const char *in, const char *want)
{
	cleanup_strbuf struct strbuf o = STRBUF_INIT;

	build_env_shell_quote(&o, in);
	CU_ASSERT_STRING_EQUAL(o.buf, want);
}

static void test_quote(void)
{
	check_quote("", "''");
	check_quote("abc", "'abc'");
	check_quote("it's", "'it'\\''s'");
	check_quote("''", "''\\'''\\'''");
	check_quote("$x `y` \\ \"z\"\n", "'$x `y` \\ \"z\"\n'");
}

/* The .attrs.sh of json, or "ERROR" when it is refused. */
static char *sh_of(const char *json)
{
	cleanup_strbuf struct strbuf o = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;

	if (build_env_attrs_sh(json, &o, &e) < 0)
		return xstrdup("ERROR");
	return strbuf_detach(&o, NULL);
}

static void check_sh(const char *json, const char *want)
{
	cleanup_free char *got = sh_of(json);

	CU_ASSERT_STRING_EQUAL(got, want);
	if (!STREQ(got, want))
		fprintf(stderr, "\n%s\ngave\n%s\nwanted\n%s\n", json, got, want);
}

static void test_sh_scalars(void)
{
	check_sh("{\"s\":\"a b\",\"i\":42,\"neg\":-7,\"frac\":1.5,\"whole\":2.0,"
		 "\"big\":9007199254740992,\"t\":true,\"no\":false,\"n\":null,\"e\":\"\"}",
		 "declare big=9007199254740992\n"
		 "declare e=''\n"
		 "declare i=42\n"
		 "declare n=''\n"
		 "declare neg=-7\n"
		 "declare no=\n"
		 "declare s='a b'\n"
		 "declare t=1\n"
		 "declare whole=2\n");
	check_sh("{\"q\":\"it's\\n\"}", "declare q='it'\\''s\n'\n");
	/* Too large for a double: null in .attrs.json, so '' here. */
	check_sh("{\"inf\":1e999,\"ninf\":[-1e999]}", "declare inf=''\ndeclare -a ninf=('' )\n");
}

static void test_sh_lists(void)
{
	check_sh("{\"l\":[\"a\",1,true,false,null,\"'\"],\"e\":[],\"nested\":[[1]],"
		 "\"objs\":[{\"a\":1}],\"frac\":[1,1.5]}",
		 "declare -a e=()\n"
		 "declare -a l=('a' 1 1  '' ''\\''' )\n");
}

static void test_sh_objects(void)
{
	check_sh("{\"o\":{\"z\":\"last\",\"a\":\"first\",\"q'\":1,\"t\":true},\"e\":{},"
		 "\"deep\":{\"a\":{\"b\":1}},\"mixed\":{\"a\":1,\"l\":[1]}}",
		 "declare -A e=()\n"
		 "declare -A o=(['a']='first' ['q'\\''']=1 ['t']=1 ['z']='last' )\n");
}

static void test_sh_names(void)
{
	check_sh("{\"bad-name\":1,\"1x\":1,\"_ok\":1,\"A9\":1,\"\\u00fc\":1,\"\":1,\"a.b\":1}",
		 "declare A9=1\n"
		 "declare _ok=1\n");
}

static void test_sh_refused(void)
{
	check_sh("[1]", "ERROR");
	check_sh("\"s\"", "ERROR");
	check_sh("{", "ERROR");
	check_sh("{}", "");
}

/* ---- .attrs.json ---- */

/* A derivation with outputs out (OUT) and dev (DEV) and env __json = json (unless NULL). */
static struct derivation *make_drv(const char *json)
{
	struct derivation *d = derivation_new();

	d->name = xstrdup("x");
	d->system = xstrdup("x86_64-linux");
	d->builder = xstrdup("/bin/sh");
	d->outputs = xcalloc(2, sizeof(*d->outputs));
	d->n_outputs = 2;
	d->outputs[0].name = xstrdup("dev");
	d->outputs[0].path = xstrdup(DEV);
	d->outputs[1].name = xstrdup("out");
	d->outputs[1].path = xstrdup(OUT);
	if (json != NULL)
		derivation_set_env(d, "__json", json);
	return d;
}

static void test_json_outputs(void)
{
	cleanup_derivation struct derivation *d =
		make_drv("{\"outputs\":[\"out\",\"dev\"],\"name\":\"x\",\"b\":[1,2.5]}");
	cleanup_strbuf struct strbuf j = STRBUF_INIT, sh = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT(build_env_is_structured(d));
	CU_ASSERT_EQUAL(build_env_structured(d, NULL, 0, &j, &sh, &e), 0);
	CU_ASSERT_STRING_EQUAL(j.buf, "{\"b\":[1,2.5],\"name\":\"x\",\"outputs\":{\"dev\":\"" DEV
				      "\",\"out\":\"" OUT "\"}}");
	CU_ASSERT_STRING_EQUAL(sh.buf,
			       "declare name='x'\n"
			       "declare -A outputs=(['dev']='" DEV "' ['out']='" OUT "' )\n");
}

static void test_json_outputs_added(void)
{
	cleanup_derivation struct derivation *d = make_drv("{\"z\":null}");
	cleanup_strbuf struct strbuf j = STRBUF_INIT, sh = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(build_env_structured(d, NULL, 0, &j, &sh, &e), 0);
	CU_ASSERT_STRING_EQUAL(j.buf, "{\"outputs\":{\"dev\":\"" DEV "\",\"out\":\"" OUT
				      "\"},\"z\":null}");
}

static void test_json_graphs(void)
{
	cleanup_derivation struct derivation *d =
		make_drv("{\"g\":[\"x\"],\"exportReferencesGraph\":{}}");
	cleanup_strbuf struct strbuf j = STRBUF_INIT, sh = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	char *refs_b[] = { pa, NULL };
	char ca[] = "fixed:r:sha256:x";
	struct store_path_info infos[2] = { { .path = pa, .nar_size = 120, .ca = ca },
					    { .path = pb, .nar_size = 168, .references = refs_b } };
	uint64_t sizes[2] = { 120, 288 };
	struct build_env_graph g = { "g", infos, sizes, 2 };

	infos[0].nar_hash.algo = HASH_SHA256;
	infos[1].nar_hash.algo = HASH_SHA256;
	CU_ASSERT_EQUAL(build_env_structured(d, &g, 1, &j, &sh, &e), 0);
	CU_ASSERT_STRING_EQUAL(
		j.buf,
		"{\"exportReferencesGraph\":{},\"g\":[{\"ca\":\"fixed:r:sha256:x\",\"closureSize\":"
		"120,\"narHash\":\"sha256:"
		"0000000000000000000000000000000000000000000000000000\",\"narSize\":120,"
		"\"path\":\"" A "\",\"references\":[],\"valid\":true},{\"closureSize\":288,"
		"\"narHash\":\"sha256:0000000000000000000000000000000000000000000000000000\","
		"\"narSize\":168,\"path\":\"" B "\",\"references\":[\"" A "\"],\"valid\":true}],"
		"\"outputs\":{\"dev\":\"" DEV "\",\"out\":\"" OUT "\"}}");
	/* A list of objects is nothing bash can hold. */
	CU_ASSERT_PTR_NULL(strstr(sh.buf, "declare -a g"));
}

static void test_json_errors(void)
{
	cleanup_strbuf struct strbuf j = STRBUF_INIT, sh = STRBUF_INIT;
	struct build_env_graph g = { "outputs", NULL, NULL, 0 };

	{
		cleanup_derivation struct derivation *d = make_drv("{}");
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT_EQUAL(build_env_structured(d, &g, 1, &j, &sh, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "may not replace 'outputs'") != NULL);
	}
	{
		cleanup_derivation struct derivation *d = make_drv(NULL);
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT(!build_env_is_structured(d));
		CU_ASSERT_EQUAL(build_env_structured(d, NULL, 0, &j, &sh, &e), -1);
	}
	{
		cleanup_derivation struct derivation *d = make_drv("[1]");
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT_EQUAL(build_env_structured(d, NULL, 0, &j, &sh, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "invalid structured attributes") != NULL);
	}
	{
		cleanup_derivation struct derivation *d = make_drv("{}");
		cleanup_error struct nib_error *e = NULL;
		free(d->outputs[1].path);
		d->outputs[1].path = NULL;
		CU_ASSERT_EQUAL(build_env_structured(d, NULL, 0, &j, &sh, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "output 'out'") != NULL);
	}
	{
		/* Nix reads the last of repeated keys; nib refuses them. */
		cleanup_derivation struct derivation *d = make_drv("{\"a\":1,\"a\":2}");
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT_EQUAL(build_env_structured(d, NULL, 0, &j, &sh, &e), -1);
	}
}

static void test_validity_text(void)
{
	cleanup_strbuf struct strbuf o = STRBUF_INIT;
	char *refs_b[] = { pa, pb, NULL };
	struct store_path_info infos[2] = { { .path = pa }, { .path = pb, .references = refs_b } };

	build_env_validity_text(infos, 2, &o);
	CU_ASSERT_STRING_EQUAL(o.buf, A "\n\n0\n" B "\n\n2\n" A "\n" B "\n");
}

/* ---- impureEnvVars and the checks before a build ---- */

static void test_impure_vars(void)
{
	char s1[] = "OTHER=1", s2[] = "NIB_UT_C=from setting", s3[] = "NIB_UT_A=override";
	char *setting[] = { s1, s2, s3, NULL };
	cleanup_strv char **v = xcalloc(1, sizeof(char *));
	cleanup_error struct nib_error *e = NULL;

	setenv("NIB_UT_A", "from env", 1);
	unsetenv("NIB_UT_B");
	{
		cleanup_derivation struct derivation *d = make_drv(NULL);
		derivation_set_env(d, "impureEnvVars", " NIB_UT_A\tNIB_UT_B NIB_UT_C ");
		CU_ASSERT_EQUAL(build_env_impure_vars(d, NULL, &v, &e), 0);
		CU_ASSERT_EQUAL(strv_length(v), 6);
		if (strv_length(v) == 6) {
			CU_ASSERT_STRING_EQUAL(v[0], "NIB_UT_A");
			CU_ASSERT_STRING_EQUAL(v[1], "from env");
			CU_ASSERT_STRING_EQUAL(v[2], "NIB_UT_B");
			CU_ASSERT_STRING_EQUAL(v[3], "");
			CU_ASSERT_STRING_EQUAL(v[5], "");
		}
		strv_free(v);
		v = xcalloc(1, sizeof(char *));
		CU_ASSERT_EQUAL(build_env_impure_vars(d, setting, &v, &e), 0);
		if (strv_length(v) == 6) {
			CU_ASSERT_STRING_EQUAL(v[1], "override");
			CU_ASSERT_STRING_EQUAL(v[5], "from setting");
		}
	}
	{
		cleanup_derivation struct derivation *d =
			make_drv("{\"impureEnvVars\":[\"NIB_UT_A\"]}");
		cleanup_strv char **w = xcalloc(1, sizeof(char *));
		/* With structured attributes the env variable does not count. */
		derivation_set_env(d, "impureEnvVars", "NIB_UT_B");
		CU_ASSERT_EQUAL(build_env_impure_vars(d, NULL, &w, &e), 0);
		CU_ASSERT_EQUAL(strv_length(w), 2);
		if (strv_length(w) == 2)
			CU_ASSERT_STRING_EQUAL(w[1], "from env");
	}
	{
		cleanup_derivation struct derivation *d =
			make_drv("{\"impureEnvVars\":\"NIB_UT_A\"}");
		cleanup_strv char **w = xcalloc(1, sizeof(char *));
		cleanup_error struct nib_error *e2 = NULL;
		CU_ASSERT_EQUAL(build_env_impure_vars(d, NULL, &w, &e2), -1);
		CU_ASSERT(e2 != NULL && strstr(e2->msg, "must be a list of strings") != NULL);
	}
	{
		cleanup_derivation struct derivation *d = make_drv(NULL);
		cleanup_strv char **w = xcalloc(1, sizeof(char *));
		cleanup_error struct nib_error *e2 = NULL;
		derivation_set_env(d, "impureEnvVars", "A=B");
		CU_ASSERT_EQUAL(build_env_impure_vars(d, NULL, &w, &e2), -1);
		CU_ASSERT(e2 != NULL && strstr(e2->msg, "invalid variable 'A=B'") != NULL);
	}
	unsetenv("NIB_UT_A");
}

/* build_env_validate of d with env key = value (or __json when key is NULL); NULL when fine. */
static char *validate_msg(const char *key, const char *value)
{
	cleanup_derivation struct derivation *d = make_drv(key == NULL ? value : NULL);
	cleanup_error struct nib_error *e = NULL;

	if (key != NULL)
		derivation_set_env(d, key, value);
	if (build_env_validate(d, "/nib/store", &e) == 0)
		return NULL;
	return xstrdup(e->msg);
}

static void check_validate(const char *key, const char *value, const char *want)
{
	cleanup_free char *msg = validate_msg(key, value);

	if (want == NULL) {
		CU_ASSERT_PTR_NULL(msg);
	} else {
		CU_ASSERT(msg != NULL && strstr(msg, want) != NULL);
	}
	if (msg != NULL && (want == NULL || strstr(msg, want) == NULL))
		fprintf(stderr, "\n%s = %s: %s\n", key ? key : "__json", value, msg);
}

static void test_validate(void)
{
	check_validate("exportReferencesGraph", "g " A " h " B "/sub", NULL);
	check_validate("exportReferencesGraph", "g " A " h", "odd number of tokens");
	check_validate("exportReferencesGraph", ".g " A, "invalid file name '.g'");
	check_validate("exportReferencesGraph", "a/b " A, "invalid file name 'a/b'");
	check_validate("exportReferencesGraph", "g /tmp/x", "exportReferencesGraph");
	check_validate("allowedReferences", "anything goes until the build", NULL);
	check_validate(NULL, "{\"exportReferencesGraph\":{\"g\":[[\"" A "\"],\"" B "\"]}}", NULL);
	check_validate(NULL, "{\"exportReferencesGraph\":\"ignored\"}", NULL);
	check_validate(NULL, "{\"exportReferencesGraph\":{\"g\":[1]}}",
		       "'exportReferencesGraph' value is not an array or a string");
	check_validate(NULL, "{\"exportReferencesGraph\":{\"g\":\"/elsewhere\"}}",
		       "exportReferencesGraph");
	check_validate(NULL, "{\"outputChecks\":[]}",
		       "'outputChecks' of derivation 'x' must be an object");
	check_validate(NULL, "{\"outputChecks\":{\"out\":1}}",
		       "outputChecks.out of derivation 'x'");
	check_validate(NULL, "{\"outputChecks\":{\"out\":{\"maxSize\":-1}}}",
		       "outputChecks.out.maxSize of derivation 'x' must be a non-negative integer");
	check_validate(NULL, "{\"outputChecks\":{\"dev\":{\"maxClosureSize\":1.5}}}",
		       "outputChecks.dev.maxClosureSize");
	check_validate(
		NULL, "{\"outputChecks\":{\"out\":{\"allowedReferences\":\"x\"}}}",
		"'outputChecks.out.allowedReferences' of derivation 'x' must be a list of strings");
	check_validate(NULL, "{\"outputChecks\":{\"other\":{\"maxSize\":\"x\"}}}", NULL);
	check_validate(NULL, "{\"impureEnvVars\":[1]}", "'impureEnvVars'");
	check_validate(NULL, "{\"allowedReferences\":1}", NULL);
	check_validate(NULL, "nonsense", "invalid structured attributes");
}

/* ---- with a store ---- */

static char *tmp;
static struct settings *settings;
static struct store *store;
static uint64_t size_a, size_b;

/* Put a file in the store directory and register it. */
static int reg(const char *path, const char *content, char **refs, uint64_t *ret_size)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *real = xasprintf("%s/root%s", tmp, path);
	struct store_path_info info = { 0 };

	test_write_file(real, content);
	info.path = (char *)path;
	info.references = refs;
	if (nar_hash_path(real, &info.nar_hash, &info.nar_size, &e) < 0 ||
	    local_store_canonicalise(store, real, &e) < 0 ||
	    local_store_register_valid_paths(store, &info, 1, &e) < 0) {
		fprintf(stderr, "reg %s: %s\n", path, e->msg);
		return -1;
	}
	*ret_size = info.nar_size;
	return 0;
}

static void setup(void)
{
	char *refs_b[] = { pa, NULL };

	tmp = test_mkdtemp();
	settings = test_store_settings(tmp, "/nib/store", "state");
	store = test_store_open(settings);
	if (store == NULL || reg(A, "a", NULL, &size_a) < 0 || reg(B, A, refs_b, &size_b) < 0) {
		store_close(store);
		store = NULL;
	}
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

/* Output infos: out (100 bytes) refers to B, dev and itself; dev (10 bytes) to nothing. */
static char *refs_out[] = { pdev, pb, pout, NULL }; /* unsorted, as scanned */
static const struct store_path_info out_infos[2] = {
	{ .path = pdev, .nar_size = 10 },
	{ .path = pout, .nar_size = 100, .references = refs_out },
};

/* Run the output checks of d with env key = value (or __json when key is NULL). */
static char *checks_msg(const char *key, const char *value)
{
	cleanup_derivation struct derivation *d = make_drv(key == NULL ? value : NULL);
	cleanup_error struct nib_error *e = NULL;

	if (key != NULL)
		derivation_set_env(d, key, value);
	if (build_env_check_outputs(store, "/nib/store/x.drv", d, out_infos, &e) == 0)
		return NULL;
	return xstrdup(e->msg);
}

static void check_checks(const char *key, const char *value, const char *want)
{
	cleanup_free char *msg = checks_msg(key, value);

	if (want == NULL) {
		CU_ASSERT_PTR_NULL(msg);
	} else {
		CU_ASSERT(msg != NULL && strstr(msg, want) != NULL);
	}
	if (msg != NULL && (want == NULL || strstr(msg, want) == NULL))
		fprintf(stderr, "\n%s = %s: %s\n", key ? key : "__json", value, msg);
}

static void test_checks_plain(void)
{
	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	check_checks(NULL, "{}", NULL);
	check_checks("allowedReferences", "",
		     "output '" OUT "' is not allowed to refer to the following paths "
		     "(allowedReferences):\n  " B "\n  " OUT "\n  " DEV);
	check_checks("allowedReferences", "out dev " B, NULL);
	check_checks("allowedReferences", OUT " " DEV " " B, NULL);
	check_checks("allowedReferences", "out dev", "(allowedReferences):\n  " B);
	check_checks("disallowedReferences", A, NULL);
	check_checks("disallowedReferences", "", NULL);
	check_checks("disallowedReferences", "dev", "(disallowedReferences):\n  " DEV);
	/* Requisites leave the output itself out without structured attributes. */
	check_checks("allowedRequisites", "dev " B, "(allowedRequisites):\n  " A);
	check_checks("allowedRequisites", "dev " A " " B, NULL);
	check_checks("disallowedRequisites", A, "(disallowedRequisites):\n  " A);
	check_checks("disallowedRequisites", "out", NULL);
	check_checks("allowedReferences", "nonsense",
		     "derivation '/nib/store/x.drv' output check for 'dev' contains an illegal "
		     "reference specifier 'nonsense', expected store path or output name (one of "
		     "[dev, out])");
	check_checks("allowedReferences", A "/sub", "illegal reference specifier");
}

static void test_cycles(void)
{
	char *refs_dev[] = { pout, NULL }, *refs_self[] = { pdev, NULL };
	struct store_path_info infos[2] = { { .path = pdev, .references = refs_dev },
					    { .path = pout, .references = refs_out } };
	cleanup_derivation struct derivation *d = make_drv(NULL);
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	CU_ASSERT_EQUAL(build_env_check_outputs(store, "/nib/store/x.drv", d, infos, &e), -1);
	CU_ASSERT(e != NULL && STREQ(e->msg, "cycle detected in build of '/nib/store/x.drv' in the "
					     "references of output 'dev' from output 'out'"));
	/* Self-references are no cycle. */
	nib_error_clear(&e);
	infos[0].references = refs_self;
	CU_ASSERT_EQUAL(build_env_check_outputs(store, "/nib/store/x.drv", d, infos, &e), 0);
}

static void test_checks_structured(void)
{
	cleanup_free char *closure = NULL, *limit = NULL, *msg = NULL;

	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	/* The top-level attributes have no effect with structured attributes. */
	check_checks(NULL, "{\"allowedReferences\":[]}", NULL);
	check_checks(NULL,
		     "{\"outputChecks\":{\"out\":{\"allowedRequisites\":[\"dev\",\"" A "\",\"" B
		     "\"]}}}",
		     "(allowedRequisites):\n  " OUT);
	check_checks(NULL,
		     "{\"outputChecks\":{\"out\":{\"allowedRequisites\":[\"out\",\"dev\",\"" A
		     "\",\"" B "\"]},\"dev\":{\"allowedReferences\":[]}}}",
		     NULL);
	check_checks(NULL,
		     "{\"outputChecks\":{\"dev\":{\"allowedReferences\":[\"out\"]},"
		     "\"out\":{\"disallowedReferences\":[\"dev\"]}}}",
		     "output '" OUT "' is not allowed to refer to the following paths "
		     "(disallowedReferences):\n  " DEV);
	check_checks(NULL, "{\"outputChecks\":{\"out\":{\"maxSize\":100}}}", NULL);
	check_checks(NULL, "{\"outputChecks\":{\"out\":{\"maxSize\":99}}}",
		     "path '" OUT "' is too large at 100 bytes; limit is 99 bytes");
	/* The closure of out: out, dev, B and A. */
	closure = xasprintf("%llu", (unsigned long long)(110 + size_a + size_b));
	limit = xasprintf("{\"outputChecks\":{\"out\":{\"maxClosureSize\":%llu}}}",
			  (unsigned long long)(110 + size_a + size_b));
	check_checks(NULL, limit, NULL);
	free(limit);
	limit = xasprintf("{\"outputChecks\":{\"out\":{\"maxClosureSize\":%llu}}}",
			  (unsigned long long)(109 + size_a + size_b));
	msg = checks_msg(NULL, limit);
	CU_ASSERT(msg != NULL && strstr(msg, "closure of path '" OUT "' is too large at") != NULL);
	CU_ASSERT(msg != NULL && strstr(msg, closure) != NULL);
}

/* The content of file name in dir, or NULL. */
static char *read_in(const char *dir, const char *name)
{
	cleanup_free char *p = xasprintf("%s/%s", dir, name);
	cleanup_error struct nib_error *e = NULL;
	char *buf = NULL;
	size_t len;

	if (read_file_at(AT_FDCWD, p, 1 << 20, &buf, &len, &e) < 0)
		return NULL;
	return buf;
}

static int prepare(const char *key, const char *value, char *const *closure, const char *dir,
		   char ***vars, char **ret_msg)
{
	cleanup_derivation struct derivation *d = make_drv(key == NULL ? value : NULL);
	cleanup_error struct nib_error *e = NULL;
	struct build_env_dir bd = { dir, "/build", getuid(), getgid() };

	if (key != NULL)
		derivation_set_env(d, key, value);
	if (build_env_prepare(store, d, closure, &bd, vars, &e) == 0)
		return 0;
	*ret_msg = xstrdup(e->msg);
	return -1;
}

static void test_prepare_structured(void)
{
	char *closure[] = { pa, pb, NULL };
	cleanup_free char *dir = NULL, *json = NULL, *sh = NULL, *msg = NULL, *want = NULL;
	cleanup_strv char **vars = xcalloc(1, sizeof(char *));
	struct stat st;

	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	dir = xasprintf("%s/build", tmp);
	mkdir(dir, 0700);
	CU_ASSERT_EQUAL(prepare(NULL, "{\"exportReferencesGraph\":{\"g\":\"" B "/sub\"}}", closure,
				dir, &vars, &msg),
			0);
	CU_ASSERT_EQUAL(strv_length(vars), 4);
	if (strv_length(vars) == 4) {
		CU_ASSERT_STRING_EQUAL(vars[0], "NIX_ATTRS_JSON_FILE");
		CU_ASSERT_STRING_EQUAL(vars[1], "/build/.attrs.json");
		CU_ASSERT_STRING_EQUAL(vars[2], "NIX_ATTRS_SH_FILE");
		CU_ASSERT_STRING_EQUAL(vars[3], "/build/.attrs.sh");
	}
	json = read_in(dir, ".attrs.json");
	sh = read_in(dir, ".attrs.sh");
	CU_ASSERT(json != NULL && sh != NULL);
	if (json == NULL || sh == NULL)
		return;
	want = xasprintf("\"closureSize\":%llu,", (unsigned long long)(size_a + size_b));
	CU_ASSERT_PTR_NOT_NULL(strstr(json, want));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(json, "\"path\":\"" A "\",\"references\":[],\"valid\":true}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"path\":\"" B "\",\"references\":[\"" A "\"]"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(json, "\"outputs\":{\"dev\":\"" DEV "\",\"out\":\"" OUT "\"}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sh, "declare -A outputs=("));
	CU_ASSERT(stat(dir, &st) == 0);
	{
		cleanup_free char *p = xasprintf("%s/.attrs.json", dir);
		CU_ASSERT(stat(p, &st) == 0 && (st.st_mode & 07777) == 0644 &&
			  st.st_uid == getuid());
	}
	/* Files are created, never replaced or written through a symlink. */
	free(msg);
	msg = NULL;
	CU_ASSERT_EQUAL(prepare(NULL, "{}", closure, dir, &vars, &msg), -1);
	CU_ASSERT(msg != NULL && strstr(msg, ".attrs.json") != NULL);
}

static void test_prepare_symlink(void)
{
	char *closure[] = { pa, NULL };
	cleanup_free char *dir = NULL, *link = NULL, *target = NULL, *msg = NULL, *got = NULL;
	cleanup_strv char **vars = xcalloc(1, sizeof(char *));

	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	dir = xasprintf("%s/build", tmp);
	mkdir(dir, 0700);
	target = xasprintf("%s/target", tmp);
	test_write_file(target, "keep");
	link = xasprintf("%s/.attrs.json", dir);
	CU_ASSERT_EQUAL(symlink(target, link), 0);
	CU_ASSERT_EQUAL(prepare(NULL, "{}", closure, dir, &vars, &msg), -1);
	got = read_in(tmp, "target");
	CU_ASSERT(got != NULL && STREQ(got, "keep"));
}

static void test_prepare_graph_errors(void)
{
	char *closure[] = { pa, NULL };
	cleanup_free char *dir = NULL, *msg = NULL;
	cleanup_strv char **vars = xcalloc(1, sizeof(char *));

	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	dir = xasprintf("%s/build", tmp);
	mkdir(dir, 0700);
	CU_ASSERT_EQUAL(prepare(NULL, "{\"exportReferencesGraph\":{\"g\":[\"" B "\"]}}", closure,
				dir, &vars, &msg),
			-1);
	CU_ASSERT(msg != NULL && strstr(msg, "cannot export references of path '" B
					     "' because it is not in the input closure") != NULL);
	free(msg);
	msg = NULL;
	CU_ASSERT_EQUAL(prepare("exportReferencesGraph", "g " B, closure, dir, &vars, &msg), -1);
	CU_ASSERT(msg != NULL && strstr(msg, "not in the input closure") != NULL);
	CU_ASSERT_EQUAL(strv_length(vars), 0);
}

static void test_prepare_classic(void)
{
	char *closure[] = { pa, pb, NULL };
	cleanup_free char *dir = NULL, *msg = NULL, *gb = NULL, *ga = NULL, *x = NULL;
	cleanup_strv char **vars = xcalloc(1, sizeof(char *));
	struct stat st;

	CU_ASSERT_PTR_NOT_NULL(store);
	if (store == NULL)
		return;
	dir = xasprintf("%s/build", tmp);
	mkdir(dir, 0700);
	/* Structured-attribute files are not made; a name given twice: the last wins. */
	CU_ASSERT_EQUAL(prepare("exportReferencesGraph", "gb " B " ga " A "/sub x " B " x " A,
				closure, dir, &vars, &msg),
			0);
	CU_ASSERT_EQUAL(strv_length(vars), 0);
	gb = read_in(dir, "gb");
	ga = read_in(dir, "ga");
	x = read_in(dir, "x");
	CU_ASSERT(gb != NULL && STREQ(gb, A "\n\n0\n" B "\n\n1\n" A "\n"));
	CU_ASSERT(ga != NULL && STREQ(ga, A "\n\n0\n"));
	CU_ASSERT(x != NULL && STREQ(x, A "\n\n0\n"));
	{
		cleanup_free char *p = xasprintf("%s/.attrs.json", dir);
		CU_ASSERT(stat(p, &st) < 0);
	}
	/* Nothing to do without the attribute. */
	CU_ASSERT_EQUAL(prepare("other", "x", closure, dir, &vars, &msg), 0);
}

static CU_TestInfo shell_tests[] = {
	{ "quote", test_quote },    { "scalars", test_sh_scalars },
	{ "lists", test_sh_lists }, { "objects", test_sh_objects },
	{ "names", test_sh_names }, { "refused", test_sh_refused },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo json_tests[] = {
	{ "outputs rewritten", test_json_outputs },
	{ "outputs added", test_json_outputs_added },
	{ "graphs", test_json_graphs },
	{ "errors", test_json_errors },
	{ "validity text", test_validity_text },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo attr_tests[] = {
	{ "impureEnvVars", test_impure_vars },
	{ "validate", test_validate },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo store_tests[] = {
	{ "checks without structured attrs", test_checks_plain },
	{ "outputChecks", test_checks_structured },
	{ "cycles between outputs", test_cycles },
	{ "prepare structured", test_prepare_structured },
	{ "prepare never follows a symlink", test_prepare_symlink },
	{ "prepare: paths outside the closure", test_prepare_graph_errors },
	{ "prepare classic graph files", test_prepare_classic },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "attrs.sh", NULL, NULL, NULL, NULL, shell_tests },
	{ "attrs.json", NULL, NULL, NULL, NULL, json_tests },
	{ "attributes", NULL, NULL, NULL, NULL, attr_tests },
	{ "with a store", NULL, NULL, setup, teardown, store_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

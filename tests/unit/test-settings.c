#include "config.h"

#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cunit-run.h"
#include "log.h"
#include "cleanup.h"
#include "settings.h"
#include "util.h"

static char *tmp;
static const char *fake_env[16][2];

static const char *test_getenv(const char *name)
{
	for (size_t i = 0; i < 16 && fake_env[i][0]; i++)
		if (STREQ(fake_env[i][0], name))
			return fake_env[i][1];
	return NULL;
}

static void setup(void)
{
	tmp = test_mkdtemp();
	memset(fake_env, 0, sizeof(fake_env));
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

static void test_defaults(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_STRING_EQUAL(s->store_dir, "/nib/store");
	CU_ASSERT_STRING_EQUAL(s->state_dir, "/nib/var/nib");
	CU_ASSERT_STRING_EQUAL(s->log_dir, "/nib/var/log/nib");
	CU_ASSERT_EQUAL(s->sandbox, SANDBOX_ON);
	CU_ASSERT(s->auto_allocate_uids);
	CU_ASSERT_EQUAL(s->start_id, 872415232);
	CU_ASSERT_EQUAL(s->ids_per_build, 262144);
	CU_ASSERT_EQUAL(s->id_count, 262144LL * 128);
	CU_ASSERT_EQUAL(s->max_jobs, 1);
	CU_ASSERT(strv_contains(s->system_features, "uid-range"));
	CU_ASSERT(strv_contains(s->trusted_users, "root"));
	CU_ASSERT(strv_contains(s->allowed_users, "*"));
	CU_ASSERT_EQUAL(s->origins[0], ORIGIN_DEFAULT);
	CU_ASSERT_EQUAL(settings_validate(s, &e), 0);
}

static void test_file_include_extra(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *main_conf = path_join(tmp, "nib.conf");
	cleanup_free char *inc = path_join(tmp, "more.conf");
	cleanup_free char *text = xasprintf("# comment\n"
					    "store-dir = /nix/store   # trailing comment\n"
					    "max-jobs=4\n"
					    "include more.conf\n"
					    "!include missing.conf\n"
					    "extra-trusted-users = alice @wheel\n"
					    "no-such-setting = 1\n");

	CU_ASSERT_EQUAL(test_write_file(main_conf, text), 0);
	CU_ASSERT_EQUAL(test_write_file(inc, "sandbox = relaxed\nsystem-features = a  b\n"), 0);
	CU_ASSERT_EQUAL(settings_parse_file(s, main_conf, ORIGIN_FILE, false, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT_STRING_EQUAL(s->store_dir, "/nix/store");
	CU_ASSERT_EQUAL(s->max_jobs, 4);
	CU_ASSERT_EQUAL(s->sandbox, SANDBOX_RELAXED);
	CU_ASSERT_EQUAL(strv_length(s->system_features), 2);
	CU_ASSERT_EQUAL(strv_length(s->trusted_users), 3);
	CU_ASSERT(strv_contains(s->trusted_users, "@wheel"));
	CU_ASSERT_STRING_EQUAL(s->origin_files[0], main_conf);
}

static void test_precedence(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *conf = path_join(tmp, "nib.conf");
	char *names[] = { (char *)"max-jobs", NULL };
	char *values[] = { (char *)"7", NULL };
	struct settings_load_opts lo = { .getenv_fn = test_getenv,
					 .check_owner = 0,
					 .option_names = names,
					 .option_values = values };

	CU_ASSERT_EQUAL(test_write_file(conf, "max-jobs = 2\nstate-dir = /file\ncores = 3\n"
					      "log-dir = /file-log\n"),
			0);
	fake_env[0][0] = "NIB_CONF_DIR";
	fake_env[0][1] = tmp;
	fake_env[1][0] = "NIB_CONFIG";
	fake_env[1][1] = "cores = 5\nstate-dir = /inline";
	fake_env[2][0] = "NIB_STATE_DIR";
	fake_env[2][1] = "/env/state/";
	CU_ASSERT_EQUAL(settings_load(s, &lo, &e), 0);
	CU_ASSERT_EQUAL(s->max_jobs, 7);
	CU_ASSERT_EQUAL(s->cores, 5);
	CU_ASSERT_STRING_EQUAL(s->state_dir, "/env/state");
	CU_ASSERT_STRING_EQUAL(s->log_dir, "/file-log");
	CU_ASSERT_EQUAL(s->origins[settings_find("max-jobs") - settings_table(&(size_t){ 0 })],
			ORIGIN_CMDLINE);
}

/* Set name=value and expect an error whose message contains want. */
static void expect_set_error(const char *name, const char *value, const char *want)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(settings_set(s, name, value, ORIGIN_CMDLINE, NULL, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	if (strstr(e->msg, want) == NULL)
		fprintf(stderr, "\n  message '%s' lacks '%s'\n", e->msg, want);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, want));
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
}

static void test_types(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;

	/* bool */
	CU_ASSERT_EQUAL(settings_set(s, "keep-failed", "true", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT(s->keep_failed);
	CU_ASSERT_EQUAL(settings_set(s, "keep-failed", "false", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT(!s->keep_failed);
	/* tri-state sandbox */
	CU_ASSERT_EQUAL(settings_set(s, "sandbox", "false", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(s->sandbox, SANDBOX_OFF);
	CU_ASSERT_EQUAL(settings_set(s, "sandbox", "relaxed", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(s->sandbox, SANDBOX_RELAXED);
	/* int, with its range limits inclusive, and "auto" where allowed */
	CU_ASSERT_EQUAL(settings_set(s, "max-jobs", "0", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_set(s, "max-jobs", "65536", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(s->max_jobs, 65536);
	CU_ASSERT_EQUAL(settings_set(s, "max-jobs", "auto", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(s->max_jobs, sysconf(_SC_NPROCESSORS_ONLN));
	CU_ASSERT_EQUAL(settings_set(s, "start-id", "4294967294", ORIGIN_CMDLINE, NULL, &e), 0);
	/* size */
	CU_ASSERT_EQUAL(settings_set(s, "build-memory-max", "2G", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(s->build_memory_max, 2ULL << 30);
	CU_ASSERT_EQUAL(settings_set(s, "max-build-log-size", "512", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(s->max_build_log_size, 512);
	/* string */
	CU_ASSERT_EQUAL(settings_set(s, "system", "aarch64-linux", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(s->system, "aarch64-linux");
	/* path: normalised, empty allowed for optional paths */
	CU_ASSERT_EQUAL(settings_set(s, "store-dir", "//x//y/", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(s->store_dir, "/x/y");
	CU_ASSERT_EQUAL(settings_set(s, "store-root", "", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(s->store_root, "");
	CU_ASSERT_EQUAL(settings_set(s, "store-root", "/", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(s->store_root, "/");
	/* list: replace, then extra- appends; an empty value empties it */
	CU_ASSERT_EQUAL(settings_set(s, "allowed-users", "a  b\tc", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(strv_length(s->allowed_users), 3);
	CU_ASSERT_EQUAL(settings_set(s, "extra-allowed-users", "d", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(strv_length(s->allowed_users), 4);
	CU_ASSERT_EQUAL(settings_set(s, "allowed-users", "", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(strv_length(s->allowed_users), 0);
	/* unknown: 1, not an error, nothing changed */
	CU_ASSERT_EQUAL(settings_set(s, "no-such", "1", ORIGIN_CMDLINE, NULL, &e), 1);
	CU_ASSERT_PTR_NULL(e);
}

static void test_value_errors(void)
{
	expect_set_error(
		"keep-failed", "yes",
		"invalid value 'yes' for setting 'keep-failed': expected 'true' or 'false'");
	expect_set_error("sandbox", "maybe", "expected 'true', 'false' or 'relaxed'");
	expect_set_error("cores", "x",
			 "invalid value 'x' for setting 'cores': expected an integer");
	expect_set_error("max-jobs", "many", "expected an integer or 'auto'");
	expect_set_error("cores", "auto", "expected an integer");
	expect_set_error("max-jobs", "65537", "must be between 0 and 65536");
	expect_set_error("max-jobs", "-1", "must be between 0 and 65536");
	expect_set_error("start-id", "0", "must be between 1 and 4294967294");
	expect_set_error("spare-connection-processes", "65", "must be between 0 and 64");
	expect_set_error("spare-connection-processes", "-1", "must be between 0 and 64");
	expect_set_error("timeout", "99999999999999999999", "number out of range");
	expect_set_error("build-memory-max", "lots", "expected a size in bytes");
	expect_set_error("build-memory-max", "99999999999999999G", "size out of range");
	expect_set_error("system", "a\nb", "newlines are not allowed");
	expect_set_error("state-dir", "relative/dir", "not an absolute path");
	expect_set_error("state-dir", "/a/../b", "'.' and '..' components are not allowed");
	expect_set_error("state-dir", "/a/./b", "'.' and '..' components are not allowed");
	expect_set_error("extra-max-jobs", "1", "setting 'max-jobs' is not a list");
}

static void test_value_string_and_copy(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_settings struct settings *c = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *v1 = NULL, *v2 = NULL, *v3 = NULL, *v4 = NULL, *v5 = NULL;

	settings_set(s, "trusted-users", "root alice", ORIGIN_FILE, "/etc/x.conf", &e);
	settings_set(s, "sandbox", "relaxed", ORIGIN_CMDLINE, NULL, &e);
	v1 = settings_value_string(s, settings_find("trusted-users"));
	v2 = settings_value_string(s, settings_find("sandbox"));
	v3 = settings_value_string(s, settings_find("filter-syscalls"));
	v4 = settings_value_string(s, settings_find("id-count"));
	v5 = settings_value_string(s, settings_find("build-memory-max"));
	CU_ASSERT_STRING_EQUAL(v1, "root alice");
	CU_ASSERT_STRING_EQUAL(v2, "relaxed");
	CU_ASSERT_STRING_EQUAL(v3, "true");
	CU_ASSERT_STRING_EQUAL(v4, "33554432");
	CU_ASSERT_STRING_EQUAL(v5, "0");

	c = settings_copy(s);
	settings_set(s, "trusted-users", "bob", ORIGIN_CMDLINE, NULL, &e);
	CU_ASSERT_EQUAL(strv_length(c->trusted_users), 2);
	CU_ASSERT_EQUAL(c->sandbox, SANDBOX_RELAXED);
	{
		size_t n;
		const struct setting_desc *t = settings_table(&n);
		size_t i = (size_t)(settings_find("trusted-users") - t);
		CU_ASSERT_EQUAL(c->origins[i], ORIGIN_FILE);
		CU_ASSERT_STRING_EQUAL(c->origin_files[i], "/etc/x.conf");
		CU_ASSERT_STRING_EQUAL(settings_origin_name(ORIGIN_CMDLINE), "command line");
		CU_ASSERT(n > 30);
	}
}

/* Parse text and expect an error containing want. */
static void expect_text_error(const char *text, const char *want)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = path_join(tmp, "t.conf");

	CU_ASSERT_EQUAL(test_write_file(path, text), 0);
	CU_ASSERT_EQUAL(settings_parse_file(s, path, ORIGIN_FILE, false, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	if (strstr(e->msg, want) == NULL)
		fprintf(stderr, "\n  message '%s' lacks '%s'\n", e->msg, want);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, want));
}

static void test_syntax_errors(void)
{
	expect_text_error("max-jobs = 1\nmax-jobs 2\n",
			  "t.conf:2: syntax error: expected 'name = value'");
	expect_text_error("a b = c\n", "t.conf:1: syntax error");
	expect_text_error("= c\n", "t.conf:1: syntax error");
	expect_text_error("\n\ncores = many\n",
			  "t.conf:3: invalid value 'many' for setting 'cores'");
	expect_text_error("include\n", "t.conf:1: 'include' takes exactly one file name");
	expect_text_error("include a b\n", "'include' takes exactly one file name");
	expect_text_error("include nonexistent.conf\n", "cannot open settings file");
	expect_text_error("include t.conf\n", "include loop");
}

static void test_nul_and_not_regular(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(settings_parse_text(s, "cores = 1", "x", ORIGIN_INLINE, false, &e), 0);
	CU_ASSERT_EQUAL(s->cores, 1);
	CU_ASSERT_EQUAL(settings_parse_file(s, tmp, ORIGIN_FILE, false, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "is not a regular file") : NULL);
	nib_error_clear(&e);
	{
		cleanup_free char *p = path_join(tmp, "nul.conf");
		FILE *f = fopen(p, "we");
		CU_ASSERT_PTR_NOT_NULL(f);
		if (f != NULL) {
			fwrite("cores = 1\0x\n", 1, 13, f);
			fclose(f);
		}
		CU_ASSERT_EQUAL(settings_parse_file(s, p, ORIGIN_FILE, false, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "nul.conf:1: NUL byte in line") : NULL);
		nib_error_clear(&e);
	}
	CU_ASSERT_EQUAL(settings_parse_file(s, "/nonexistent/nib.conf", ORIGIN_FILE, false, &e),
			-1);
	CU_ASSERT_EQUAL(e ? e->sys_errno : 0, ENOENT);
}

static void test_include_depth(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *first = NULL;

	/* A chain of 20 distinct files is deeper than the limit (16). */
	for (int i = 0; i < 20; i++) {
		cleanup_free char *p = xasprintf("%s/c%d.conf", tmp, i);
		cleanup_free char *t = xasprintf("include c%d.conf\n", i + 1);
		CU_ASSERT_EQUAL(test_write_file(p, t), 0);
		if (i == 0)
			first = xstrdup(p);
	}
	{
		cleanup_free char *last = xasprintf("%s/c20.conf", tmp);
		CU_ASSERT_EQUAL(test_write_file(last, "cores = 2\n"), 0);
	}
	CU_ASSERT_EQUAL(settings_parse_file(s, first, ORIGIN_FILE, false, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "includes nested deeper than 16 levels") : NULL);
}

static int warnings;
static char last_warning[512];

static void capture_sink(int level, const char *msg, void *userdata)
{
	(void)userdata;
	if (level == LOG_WARNING) {
		warnings++;
		snprintf(last_warning, sizeof(last_warning), "%s", msg);
	}
}

static void test_unknown_setting_warns(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;

	warnings = 0;
	log_set_sink(capture_sink, NULL);
	CU_ASSERT_EQUAL(settings_parse_text(s, "frobnicate = 3\ncores = 4\n", "inline.conf",
					    ORIGIN_INLINE, false, &e),
			0);
	log_set_sink(NULL, NULL);
	CU_ASSERT_EQUAL(warnings, 1);
	CU_ASSERT_STRING_EQUAL(last_warning,
			       "inline.conf:1: unknown setting 'frobnicate', ignoring");
	CU_ASSERT_EQUAL(s->cores, 4);
}

static void test_ownership_check(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = path_join(tmp, "owned.conf");
	cleanup_free char *outer = path_join(tmp, "outer.conf");

	if (geteuid() != 0) {
		/* chown needs root; the unprivileged half still runs. */
		CU_ASSERT_EQUAL(test_write_file(path, "cores = 3\n"), 0);
		CU_ASSERT_EQUAL(settings_parse_file(s, path, ORIGIN_FILE, true, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "not root") : NULL);
		return;
	}
	CU_ASSERT_EQUAL(test_write_file(path, "cores = 3\n"), 0);
	CU_ASSERT_EQUAL(chmod(path, 0644), 0);
	CU_ASSERT_EQUAL(settings_parse_file(s, path, ORIGIN_FILE, true, &e), 0);
	CU_ASSERT_EQUAL(s->cores, 3);

	CU_ASSERT_EQUAL(chmod(path, 0664), 0);
	CU_ASSERT_EQUAL(settings_parse_file(s, path, ORIGIN_FILE, true, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "writable by group or others (mode 0664)")
				 : NULL);
	CU_ASSERT_EQUAL(e ? e->code : 0, NIB_E_CONFIG);
	nib_error_clear(&e);

	CU_ASSERT_EQUAL(chmod(path, 0644), 0);
	CU_ASSERT_EQUAL(chown(path, 65534, 65534), 0);
	CU_ASSERT_EQUAL(settings_parse_file(s, path, ORIGIN_FILE, true, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "owned by uid 65534, not root") : NULL);
	nib_error_clear(&e);
	/* Without the check (an unprivileged program) the same file is fine. */
	CU_ASSERT_EQUAL(settings_parse_file(s, path, ORIGIN_FILE, false, &e), 0);

	/* An include is checked too. */
	CU_ASSERT_EQUAL(test_write_file(outer, "include owned.conf\n"), 0);
	CU_ASSERT_EQUAL(settings_parse_file(s, outer, ORIGIN_FILE, true, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "outer.conf:1: refusing settings file") : NULL);
}

static void test_load_errors(void)
{
	cleanup_error struct nib_error *e = NULL;
	char *names[] = { (char *)"bogus", NULL };
	char *values[] = { (char *)"1", NULL };
	struct settings_load_opts lo = { .getenv_fn = test_getenv,
					 .check_owner = 0,
					 .no_file = true };

	{
		cleanup_settings struct settings *s = settings_new();
		fake_env[0][0] = "NIB_STORE_DIR";
		fake_env[0][1] = "relative";
		CU_ASSERT_EQUAL(settings_load(s, &lo, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(
			e ? strstr(e->msg, "environment variable NIB_STORE_DIR: invalid value "
					   "'relative' for setting 'store-dir'")
			  : NULL);
		nib_error_clear(&e);
		fake_env[0][0] = NULL;
	}
	{
		cleanup_settings struct settings *s = settings_new();
		fake_env[0][0] = "NIB_CONFIG";
		fake_env[0][1] = "cores = -5";
		CU_ASSERT_EQUAL(settings_load(s, &lo, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "NIB_CONFIG:1: invalid value '-5'")
					 : NULL);
		nib_error_clear(&e);
		fake_env[0][0] = NULL;
	}
	{
		cleanup_settings struct settings *s = settings_new();
		lo.option_names = names;
		lo.option_values = values;
		CU_ASSERT_EQUAL(settings_load(s, &lo, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, "unknown setting 'bogus'") : NULL);
		nib_error_clear(&e);
	}
	{
		cleanup_free char *f = settings_config_file(test_getenv);
		CU_ASSERT_STRING_EQUAL(f, "/etc/nib/nib.conf");
	}
}

static void expect_invalid_config(const char *name, const char *value, const char *want)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(settings_set(s, name, value, ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_validate(s, &e), -1);
	CU_ASSERT_EQUAL(e ? e->code : 0, NIB_E_CONFIG);
	if (e && strstr(e->msg, want) == NULL)
		fprintf(stderr, "\n  message '%s' lacks '%s'\n", e->msg, want);
	CU_ASSERT_PTR_NOT_NULL(e ? strstr(e->msg, want) : NULL);
}

static void test_validate(void)
{
	expect_invalid_config("store-dir", "", "setting 'store-dir' must not be empty");
	expect_invalid_config("store-dir", "/", "setting 'store-dir' must not be '/'");
	expect_invalid_config("state-dir", "", "setting 'state-dir' must not be empty");
	expect_invalid_config("log-dir", "", "setting 'log-dir' must not be empty");
	expect_invalid_config(
		"start-id", "872415233",
		"setting 'start-id' (872415233) must be a multiple of 'ids-per-build' (262144)");
	expect_invalid_config(
		"id-count", "1000",
		"setting 'id-count' (1000) must be a multiple of 'ids-per-build' (262144)");
	expect_invalid_config("start-id", "4294705152", "past the largest valid UID 4294967294");
	expect_invalid_config("sandbox-paths", "/bin/sh=busybox",
			      "entry '/bin/sh=busybox' must be an absolute");
	expect_invalid_config("sandbox-paths", "relative", "entry 'relative' must be an absolute");
	expect_invalid_config("impure-env", "NOEQUALS",
			      "setting 'impure-env': entry 'NOEQUALS' must be NAME=VALUE");
	expect_invalid_config("impure-env", "A=1 =2", "entry '=2' must be NAME=VALUE");
}

static void test_real_store_dir(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *a = settings_real_store_dir(s);
	cleanup_free char *b = NULL;

	CU_ASSERT_STRING_EQUAL(a, "/nib/store");
	settings_set(s, "store-root", "/tmp/root", ORIGIN_CMDLINE, NULL, &e);
	settings_set(s, "store-dir", "/nix/store", ORIGIN_CMDLINE, NULL, &e);
	b = settings_real_store_dir(s);
	CU_ASSERT_STRING_EQUAL(b, "/tmp/root/nix/store");
}

static CU_TestInfo tests[] = {
	{ "defaults", test_defaults },
	{ "file, include, extra-", test_file_include_extra },
	{ "precedence of sources", test_precedence },
	{ "every type", test_types },
	{ "value errors", test_value_errors },
	{ "value strings and copy", test_value_string_and_copy },
	{ "syntax and include errors", test_syntax_errors },
	{ "NUL, missing and non-regular files", test_nul_and_not_regular },
	{ "include depth limit", test_include_depth },
	{ "unknown setting warns", test_unknown_setting_warns },
	{ "ownership check", test_ownership_check },
	{ "load errors", test_load_errors },
	{ "cross-setting validation", test_validate },
	{ "real store dir", test_real_store_dir },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "settings", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

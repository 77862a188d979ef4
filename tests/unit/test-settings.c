#include "config.h"

#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "cunit-run.h"
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

static CU_TestInfo tests[] = {
	{ "defaults", test_defaults },
	{ "file, include, extra-", test_file_include_extra },
	{ "precedence of sources", test_precedence },
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

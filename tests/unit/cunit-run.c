#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit-run.h"
#include "util.h"

int cunit_run(CU_SuiteInfo *suites)
{
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return CUNIT_EXIT_ERROR;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "cannot register suites: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return CUNIT_EXIT_ERROR;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS) {
		fprintf(stderr, "cannot run tests: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return CUNIT_EXIT_ERROR;
	}
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	if (CU_get_error() != CUE_SUCCESS)
		return CUNIT_EXIT_ERROR;
	return failures ? 1 : 0;
}

char *test_mkdtemp(void)
{
	const char *tmp = getenv("TMPDIR");
	char *t = xasprintf("%s/nib-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");

	if (mkdtemp(t) == NULL) {
		perror("mkdtemp");
		free(t);
		return NULL;
	}
	return t;
}

void test_rmtree(const char *dir)
{
	struct nib_error *e = NULL;

	if (dir == NULL)
		return;
	if (rm_rf_at(-100 /* AT_FDCWD */, dir, &e) < 0) {
		fprintf(stderr, "cannot remove '%s': %s\n", dir, e->msg);
		nib_error_free(e);
	}
}

int test_write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		return -1;
	fputs(content, f);
	return fclose(f) == 0 ? 0 : -1;
}

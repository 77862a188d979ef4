/*
 * cunit-run.h - the shared CUnit runner for nib's unit-test binaries.
 *
 *   static CU_TestInfo tests[] = { { "name", fn }, CU_TEST_INFO_NULL };
 *   static CU_SuiteInfo suites[] = {
 *           { "suite", NULL, NULL, setup, teardown, tests }, CU_SUITE_INFO_NULL };
 *   int main(void) { return cunit_run(suites); }
 *
 * Exit status follows automake: 0 pass, 1 failure, 77 skip, 99 hard error.
 * Use non-fatal CU_ASSERT_* and return early: CU_ASSERT_FATAL longjmps past
 * cleanup attributes.
 */
#pragma once

#include <CUnit/Basic.h>

#define CUNIT_EXIT_SKIP 77
#define CUNIT_EXIT_ERROR 99

int cunit_run(CU_SuiteInfo *suites);

/* A fresh private directory for a test (mkdtemp under $TMPDIR); caller frees. */
char *test_mkdtemp(void);
/* Remove a directory tree made by test_mkdtemp; NULL is fine. */
void test_rmtree(const char *dir);
/* Write a file (creating it 0644); returns 0 or -1. */
int test_write_file(const char *path, const char *content);

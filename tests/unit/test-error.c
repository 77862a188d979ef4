#include "config.h"

#include <errno.h>
#include <string.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "error.h"

static int fails_with(int code, struct nib_error **err)
{
	return nib_error_set(err, code, 0, "thing '%s' is %d", "x", 42);
}

static void test_set_and_prefix(void)
{
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(fails_with(NIB_E_INVALID, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
	CU_ASSERT_EQUAL(e->sys_errno, 0);
	CU_ASSERT_STRING_EQUAL(e->msg, "thing 'x' is 42");
	CU_ASSERT_EQUAL(nib_error_prefix(&e, "doing '%s'", "y"), -1);
	CU_ASSERT_STRING_EQUAL(e->msg, "doing 'y': thing 'x' is 42");
}

static void test_errno_appended(void)
{
	cleanup_error struct nib_error *e = NULL;

	errno = ENOENT;
	nib_error_errno(&e, "cannot open '%s'", "/nope");
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_SYS);
	CU_ASSERT_EQUAL(e->sys_errno, ENOENT);
	CU_ASSERT_STRING_EQUAL(e->msg, "cannot open '/nope': No such file or directory");
}

static void test_first_error_wins(void)
{
	cleanup_error struct nib_error *e = NULL;

	nib_error_set(&e, NIB_E_DB, 0, "first");
	nib_error_set(&e, NIB_E_SYS, EIO, "second");
	CU_ASSERT_STRING_EQUAL(e->msg, "first");
	CU_ASSERT_EQUAL(e->code, NIB_E_DB);
}

static void test_null_err_and_names(void)
{
	CU_ASSERT_EQUAL(nib_error_set(NULL, NIB_E_SYS, 0, "ignored"), -1);
	CU_ASSERT_EQUAL(nib_error_prefix(NULL, "x"), -1);
	nib_error_free(NULL);
	CU_ASSERT_STRING_EQUAL(nib_errc_name(NIB_E_NOT_FOUND), "not-found");
	CU_ASSERT_STRING_EQUAL(nib_errc_name(_NIB_E_MAX), "unknown");
	CU_ASSERT_STRING_EQUAL(nib_errc_name(0), "unknown");
}

static void test_move_and_clear(void)
{
	cleanup_error struct nib_error *a = NULL, *b = NULL;

	nib_error_set(&a, NIB_E_BUSY, 0, "busy");
	CU_ASSERT_EQUAL(nib_error_move(&b, &a), -1);
	CU_ASSERT_PTR_NULL(a);
	CU_ASSERT_PTR_NOT_NULL(b);
	nib_error_clear(&b);
	CU_ASSERT_PTR_NULL(b);
}

static CU_TestInfo tests[] = {
	{ "set and prefix", test_set_and_prefix },
	{ "errno appended", test_errno_appended },
	{ "first error wins", test_first_error_wins },
	{ "NULL err and code names", test_null_err_and_names },
	{ "move and clear", test_move_and_clear },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "error", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

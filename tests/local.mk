# Unit tests (CUnit, exit 0/1/77/99) and integration tests (TAP shell scripts).
TEST_EXTENSIONS = .sh
SH_LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
AM_TESTS_ENVIRONMENT = \
	export abs_top_builddir='$(abs_top_builddir)' abs_top_srcdir='$(abs_top_srcdir)' \
	NIB='$(abs_top_builddir)/nib' NIB_DAEMON_BIN='$(abs_top_builddir)/nib-daemon' \
	NIB_TEST_DATA='$(abs_top_srcdir)/tests/data' \
	ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}";

if HAVE_CUNIT
UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS) $(CUNIT_CFLAGS)
UNIT_LDADD = $(NIB_LIBS) $(CUNIT_LIBS)
UNIT_COMMON = %reldir%/unit/cunit-run.c %reldir%/unit/cunit-run.h

UNIT_TESTS = \
	%reldir%/unit/test-error \
	%reldir%/unit/test-util \
	%reldir%/unit/test-hash \
	%reldir%/unit/test-settings
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)

%canon_reldir%_unit_test_error_SOURCES = %reldir%/unit/test-error.c $(UNIT_COMMON)
%canon_reldir%_unit_test_error_CPPFLAGS = $(UNIT_CPPFLAGS)
%canon_reldir%_unit_test_error_LDADD = $(UNIT_LDADD)
%canon_reldir%_unit_test_util_SOURCES = %reldir%/unit/test-util.c $(UNIT_COMMON)
%canon_reldir%_unit_test_util_CPPFLAGS = $(UNIT_CPPFLAGS)
%canon_reldir%_unit_test_util_LDADD = $(UNIT_LDADD)
%canon_reldir%_unit_test_hash_SOURCES = %reldir%/unit/test-hash.c $(UNIT_COMMON)
%canon_reldir%_unit_test_hash_CPPFLAGS = $(UNIT_CPPFLAGS)
%canon_reldir%_unit_test_hash_LDADD = $(UNIT_LDADD)
%canon_reldir%_unit_test_settings_SOURCES = %reldir%/unit/test-settings.c $(UNIT_COMMON)
%canon_reldir%_unit_test_settings_CPPFLAGS = $(UNIT_CPPFLAGS)
%canon_reldir%_unit_test_settings_LDADD = $(UNIT_LDADD)
endif

INTEGRATION_TESTS = \
	%reldir%/integration/t0001-cli.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) %reldir%/integration/lib.sh

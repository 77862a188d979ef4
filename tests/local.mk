# Unit tests (CUnit, exit 0/1/77/99) and integration tests (TAP shell scripts).
TEST_EXTENSIONS = .sh
SH_LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
# Integration scripts fork and exec a lot: leak checking stays with the unit tests.
SH_LOG_COMPILER = env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 $(SHELL)
AM_TESTS_ENVIRONMENT = \
	export abs_top_builddir='$(abs_top_builddir)' abs_top_srcdir='$(abs_top_srcdir)' \
	NIB='$(abs_top_builddir)/nib' NIB_DAEMON_BIN='$(abs_top_builddir)/nib-daemon' \
	NIB_TEST_DATA='$(abs_top_srcdir)/tests/data' \
	NIB_TEST_HELPERS='$(abs_top_builddir)/tests/helpers' \
	ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}";

if HAVE_CUNIT
UNITCPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS) $(CUNIT_CFLAGS)
UNITLDADD = $(NIB_LIBS) $(CUNIT_LIBS)
UNIT_COMMON = %reldir%/unit/cunit-run.c %reldir%/unit/cunit-run.h
STORE_FIXTURE = %reldir%/unit/store-fixture.c %reldir%/unit/store-fixture.h

UNIT_TESTS = \
	%reldir%/unit/test-error \
	%reldir%/unit/test-util \
	%reldir%/unit/test-hash \
	%reldir%/unit/test-path \
	%reldir%/unit/test-derivation \
	%reldir%/unit/test-settings \
	%reldir%/unit/test-db \
	%reldir%/unit/test-store \
	%reldir%/unit/test-gc \
	%reldir%/unit/test-build-env \
	%reldir%/unit/test-nar \
	%reldir%/unit/test-refscan \
	%reldir%/unit/test-seccomp \
	%reldir%/unit/test-cgroup \
	%reldir%/unit/test-sandbox \
	%reldir%/unit/test-protocol \
	%reldir%/unit/test-serve \
	%reldir%/unit/test-peer \
	%reldir%/unit/test-uid-pool
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)

%canon_reldir%_unit_test_error_SOURCES = %reldir%/unit/test-error.c $(UNIT_COMMON)
%canon_reldir%_unit_test_error_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_error_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_util_SOURCES = %reldir%/unit/test-util.c $(UNIT_COMMON)
%canon_reldir%_unit_test_util_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_util_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_hash_SOURCES = %reldir%/unit/test-hash.c $(UNIT_COMMON)
%canon_reldir%_unit_test_hash_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_hash_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_path_SOURCES = %reldir%/unit/test-path.c $(UNIT_COMMON)
%canon_reldir%_unit_test_path_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_path_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_derivation_SOURCES = %reldir%/unit/test-derivation.c $(UNIT_COMMON)
%canon_reldir%_unit_test_derivation_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_derivation_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_settings_SOURCES = %reldir%/unit/test-settings.c $(UNIT_COMMON)
%canon_reldir%_unit_test_settings_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_settings_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_db_SOURCES = %reldir%/unit/test-db.c $(UNIT_COMMON)
%canon_reldir%_unit_test_db_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_db_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_store_SOURCES = %reldir%/unit/test-store.c $(UNIT_COMMON) $(STORE_FIXTURE)
%canon_reldir%_unit_test_store_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_store_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_gc_SOURCES = %reldir%/unit/test-gc.c $(UNIT_COMMON) $(STORE_FIXTURE)
%canon_reldir%_unit_test_gc_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_gc_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_build_env_SOURCES = %reldir%/unit/test-build-env.c $(UNIT_COMMON) $(STORE_FIXTURE)
%canon_reldir%_unit_test_build_env_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_build_env_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_nar_SOURCES = %reldir%/unit/test-nar.c $(UNIT_COMMON)
%canon_reldir%_unit_test_nar_CPPFLAGS = $(UNITCPPFLAGS) \
	-DNIB_TEST_DATA_DIR='"$(abs_top_srcdir)/tests/data"'
%canon_reldir%_unit_test_nar_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_refscan_SOURCES = %reldir%/unit/test-refscan.c $(UNIT_COMMON)
%canon_reldir%_unit_test_refscan_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_refscan_LDADD = $(UNITLDADD)

# Builds: compressed logs, the scheduler's pure parts.
check_PROGRAMS += %reldir%/unit/test-archive
TESTS += %reldir%/unit/test-archive
%canon_reldir%_unit_test_archive_SOURCES = %reldir%/unit/test-archive.c $(UNIT_COMMON)
%canon_reldir%_unit_test_archive_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_archive_LDADD = $(UNITLDADD)
check_PROGRAMS += %reldir%/unit/test-build-queue
TESTS += %reldir%/unit/test-build-queue
%canon_reldir%_unit_test_build_queue_SOURCES = %reldir%/unit/test-build-queue.c $(UNIT_COMMON)
%canon_reldir%_unit_test_build_queue_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_build_queue_LDADD = $(UNITLDADD)
check_PROGRAMS += %reldir%/unit/test-build
TESTS += %reldir%/unit/test-build
%canon_reldir%_unit_test_build_SOURCES = %reldir%/unit/test-build.c $(UNIT_COMMON) $(STORE_FIXTURE)
%canon_reldir%_unit_test_build_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_build_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_seccomp_SOURCES = %reldir%/unit/test-seccomp.c $(UNIT_COMMON)
%canon_reldir%_unit_test_seccomp_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_seccomp_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_cgroup_SOURCES = %reldir%/unit/test-cgroup.c $(UNIT_COMMON)
%canon_reldir%_unit_test_cgroup_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_cgroup_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_sandbox_SOURCES = %reldir%/unit/test-sandbox.c $(UNIT_COMMON)
%canon_reldir%_unit_test_sandbox_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_sandbox_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_protocol_SOURCES = %reldir%/unit/test-protocol.c $(UNIT_COMMON)
%canon_reldir%_unit_test_protocol_CPPFLAGS = $(UNITCPPFLAGS) -DABS_TOP_SRCDIR='"$(abs_top_srcdir)"'
%canon_reldir%_unit_test_protocol_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_serve_SOURCES = %reldir%/unit/test-serve.c $(UNIT_COMMON)
%canon_reldir%_unit_test_serve_CPPFLAGS = $(UNITCPPFLAGS) -DABS_TOP_SRCDIR='"$(abs_top_srcdir)"'
%canon_reldir%_unit_test_serve_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_peer_SOURCES = %reldir%/unit/test-peer.c daemon/peer.c $(UNIT_COMMON)
%canon_reldir%_unit_test_peer_CPPFLAGS = $(UNITCPPFLAGS) -I$(top_srcdir)/daemon
%canon_reldir%_unit_test_peer_LDADD = $(UNITLDADD)
%canon_reldir%_unit_test_uid_pool_SOURCES = %reldir%/unit/test-uid-pool.c $(UNIT_COMMON)
%canon_reldir%_unit_test_uid_pool_CPPFLAGS = $(UNITCPPFLAGS)
%canon_reldir%_unit_test_uid_pool_LDADD = $(UNITLDADD)
endif

# Test helpers the integration tests run.
check_PROGRAMS += %reldir%/helpers/sandbox-run
%canon_reldir%_helpers_sandbox_run_SOURCES = %reldir%/helpers/sandbox-run.c
%canon_reldir%_helpers_sandbox_run_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_helpers_sandbox_run_LDADD = $(NIB_LIBS)
# Runs inside sandboxes: static, without sanitizers.
check_PROGRAMS += %reldir%/helpers/syscall-probe
%canon_reldir%_helpers_syscall_probe_SOURCES = %reldir%/helpers/syscall-probe.c
%canon_reldir%_helpers_syscall_probe_CFLAGS = $(WARN_CFLAGS)
%canon_reldir%_helpers_syscall_probe_LDFLAGS = -static
# Sends a derivation inline to a daemon (BuildDerivation).
check_PROGRAMS += %reldir%/helpers/build-inline
%canon_reldir%_helpers_build_inline_SOURCES = %reldir%/helpers/build-inline.c
%canon_reldir%_helpers_build_inline_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_helpers_build_inline_LDADD = $(NIB_LIBS)
# Fakes an older kernel for the fallback tests.
check_PROGRAMS += %reldir%/helpers/enosys
%canon_reldir%_helpers_enosys_SOURCES = %reldir%/helpers/enosys.c

INTEGRATION_TESTS = \
	%reldir%/integration/t0001-cli.sh \
	%reldir%/integration/t0200-derivation.sh \
	%reldir%/integration/t0201-add.sh \
	%reldir%/integration/t0202-path-info.sh \
	%reldir%/integration/t0203-gc.sh \
	%reldir%/integration/t0204-verify.sh \
	%reldir%/integration/t0205-store-errors.sh \
	%reldir%/integration/t0206-concurrent-writers.sh \
	%reldir%/integration/t0207-crash-safety.sh \
	%reldir%/integration/t0208-derivation-add.sh \
	%reldir%/integration/t0100-nar.sh \
	%reldir%/integration/t0300-sandbox-isolation.sh \
	%reldir%/integration/t0301-sandbox-uid-range.sh \
	%reldir%/integration/t0302-sandbox-limits.sh \
	%reldir%/integration/t0303-sandbox-fallbacks.sh \
	%reldir%/integration/t0304-sandbox-network.sh \
	%reldir%/integration/t0050-slots.sh \
	%reldir%/integration/t0051-slots-crash.sh \
	%reldir%/integration/t0400-build-basic.sh \
	%reldir%/integration/t0401-build-isolation.sh \
	%reldir%/integration/t0402-build-failures.sh \
	%reldir%/integration/t0403-build-graph.sh \
	%reldir%/integration/t0404-build-uid-range.sh \
	%reldir%/integration/t0405-build-nosandbox.sh \
	%reldir%/integration/t0406-build-relaxed.sh \
	%reldir%/integration/t0410-build-attrs.sh \
	%reldir%/integration/t0500-daemon.sh \
	%reldir%/integration/t0501-daemon-build.sh \
	%reldir%/integration/t0502-daemon-shared.sh \
	%reldir%/integration/t0503-daemon-ops.sh \
	%reldir%/integration/t0504-daemon-connections.sh \
	%reldir%/integration/t0505-daemon-reuse.sh \
	%reldir%/integration/t0506-uid-ranges.sh
TESTS += $(INTEGRATION_TESTS)
# Run by hand against Debian's nix-bin (docs/interop-store.md); never by make check.
EXTRA_DIST += %reldir%/interop/store-nix.sh docs/interop-store.md
EXTRA_DIST += $(INTEGRATION_TESTS) %reldir%/integration/lib.sh %reldir%/data/nar %reldir%/data/derivations \
	%reldir%/data/attrs \
	%reldir%/integration/sandbox-lib.sh %reldir%/integration/build-lib.sh

# Helper programs the integration tests drive.
check_PROGRAMS += %reldir%/helpers/daemon-clients
%canon_reldir%_helpers_daemon_clients_SOURCES = %reldir%/helpers/daemon-clients.c
%canon_reldir%_helpers_daemon_clients_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_helpers_daemon_clients_LDADD = $(NIB_LIBS)

check_PROGRAMS += %reldir%/helpers/uidpool-holder
%canon_reldir%_helpers_uidpool_holder_SOURCES = %reldir%/helpers/uidpool-holder.c
%canon_reldir%_helpers_uidpool_holder_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_helpers_uidpool_holder_LDADD = $(NIB_LIBS)

# Fuzz targets: tests/fuzz/fuzz-NAME.c defines LLVMFuzzerTestOneInput.  With
# --enable-fuzzing they link libFuzzer; otherwise replay.c provides main() and
# run-corpora.sh replays tests/fuzz/corpus/NAME/* during `make check`.
# To add a target: append it to FUZZ_TARGETS and give it _SOURCES/_CPPFLAGS/_LDADD
# like the others, and put seed inputs in tests/fuzz/corpus/NAME/.
FUZZ_TARGETS =
if ENABLE_FUZZING
FUZZ_MAIN =
FUZZLDFLAGS = -fsanitize=fuzzer
else
FUZZ_MAIN = %reldir%/fuzz/replay.c
FUZZLDFLAGS =
endif
FUZZCPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
FUZZLDADD = $(NIB_LIBS)

include %reldir%/fuzz/local.mk

check_PROGRAMS += $(FUZZ_TARGETS)
TESTS += %reldir%/fuzz/run-corpora.sh
EXTRA_DIST += %reldir%/fuzz/run-corpora.sh %reldir%/fuzz/corpus %reldir%/fuzz/nar.dict
EXTRA_DIST += %reldir%/data/protocol

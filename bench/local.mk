# Benchmarks: programs that print figures next to a reference measured in the
# same run, and the scripts that run them (bench/*.sh).
EXTRA_DIST += %reldir%/README.md %reldir%/uidpool.sh %reldir%/store.sh
noinst_PROGRAMS += %reldir%/uidpool-bench
%canon_reldir%_uidpool_bench_SOURCES = %reldir%/uidpool-bench.c
%canon_reldir%_uidpool_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_uidpool_bench_LDADD = $(NIB_LIBS)

# Store benchmark: bench/store.sh runs it (and Nix, when installed, on the same work).
noinst_PROGRAMS += %reldir%/store-bench
%canon_reldir%_store_bench_SOURCES = %reldir%/store-bench.c
%canon_reldir%_store_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_store_bench_LDADD = $(NIB_LIBS)

# Daemon benchmark: bench/daemon.sh runs it against a nib-daemon in a temporary root.
noinst_PROGRAMS += %reldir%/daemon-bench
%canon_reldir%_daemon_bench_SOURCES = %reldir%/daemon-bench.c
%canon_reldir%_daemon_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_daemon_bench_LDADD = $(NIB_LIBS)
EXTRA_DIST += %reldir%/daemon.sh

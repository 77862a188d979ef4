# Benchmarks: programs that print figures next to a reference measured in the
# same run, and the scripts that run them (bench/*.sh).
EXTRA_DIST += %reldir%/README.md %reldir%/store.sh %reldir%/aterm.sh %reldir%/sandbox.sh %reldir%/build.sh

# Store benchmark: bench/store.sh runs it (and Nix, when installed, on the same work).
noinst_PROGRAMS += %reldir%/store-bench
%canon_reldir%_store_bench_SOURCES = %reldir%/store-bench.c
%canon_reldir%_store_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_store_bench_LDADD = $(NIB_LIBS)

# UID pool benchmark: bench/uidpool.sh runs it.
EXTRA_DIST += %reldir%/uidpool.sh
noinst_PROGRAMS += %reldir%/uidpool-bench
%canon_reldir%_uidpool_bench_SOURCES = %reldir%/uidpool-bench.c
%canon_reldir%_uidpool_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_uidpool_bench_LDADD = $(NIB_LIBS)

# Derivation benchmark: bench/aterm.sh runs it.
noinst_PROGRAMS += %reldir%/aterm-bench
%canon_reldir%_aterm_bench_SOURCES = %reldir%/aterm-bench.c
%canon_reldir%_aterm_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_aterm_bench_LDADD = $(NIB_LIBS)

# Sandbox benchmark: bench/sandbox.sh runs it (bubblewrap, when installed, in the same run).
noinst_PROGRAMS += %reldir%/sandbox-bench
%canon_reldir%_sandbox_bench_SOURCES = %reldir%/sandbox-bench.c
%canon_reldir%_sandbox_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_sandbox_bench_LDADD = $(NIB_LIBS)

# NAR throughput: bench/nar-bench.sh (against openssl dgst in the same run).
EXTRA_DIST += %reldir%/nar-bench.sh

# Daemon benchmark: bench/daemon.sh runs it against a nib-daemon in a temporary root.
noinst_PROGRAMS += %reldir%/daemon-bench
%canon_reldir%_daemon_bench_SOURCES = %reldir%/daemon-bench.c
%canon_reldir%_daemon_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_daemon_bench_LDADD = $(NIB_LIBS)
EXTRA_DIST += %reldir%/daemon.sh

# timed: how the scripts time one command (posix_spawn, not the shell's fork).
noinst_PROGRAMS += %reldir%/timed
%canon_reldir%_timed_SOURCES = %reldir%/timed.c

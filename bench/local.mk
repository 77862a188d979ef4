# Benchmarks: programs that print figures next to a reference measured in the
# same run, and the scripts that run them (bench/*.sh).
EXTRA_DIST += %reldir%/README.md %reldir%/uidpool.sh %reldir%/build.sh
noinst_PROGRAMS += %reldir%/uidpool-bench
%canon_reldir%_uidpool_bench_SOURCES = %reldir%/uidpool-bench.c
%canon_reldir%_uidpool_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_uidpool_bench_LDADD = $(NIB_LIBS)

# Benchmarks: programs and scripts that print figures next to a reference
# measured in the same run.  Not run by `make check`.
noinst_PROGRAMS += %reldir%/sandbox-bench
%canon_reldir%_sandbox_bench_SOURCES = %reldir%/sandbox-bench.c
%canon_reldir%_sandbox_bench_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_sandbox_bench_LDADD = $(NIB_LIBS)
EXTRA_DIST += %reldir%/README.md %reldir%/sandbox.sh

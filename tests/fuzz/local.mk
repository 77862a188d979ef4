# One block per fuzz target (see tests/local.mk).

FUZZ_TARGETS += tests/fuzz/fuzz-storepath
tests_fuzz_fuzz_storepath_SOURCES = tests/fuzz/fuzz-storepath.c $(FUZZ_MAIN)
tests_fuzz_fuzz_storepath_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_storepath_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_storepath_LDFLAGS = $(FUZZLDFLAGS)

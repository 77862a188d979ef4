# One block per fuzz target (see tests/local.mk).

FUZZ_TARGETS += tests/fuzz/fuzz-protocol
tests_fuzz_fuzz_protocol_SOURCES = tests/fuzz/fuzz-protocol.c $(FUZZ_MAIN)
tests_fuzz_fuzz_protocol_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_protocol_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_protocol_LDFLAGS = $(FUZZLDFLAGS)

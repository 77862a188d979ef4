# One block per fuzz target (see tests/local.mk).

FUZZ_TARGETS += tests/fuzz/fuzz-nar
tests_fuzz_fuzz_nar_SOURCES = tests/fuzz/fuzz-nar.c $(FUZZ_MAIN)
tests_fuzz_fuzz_nar_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_nar_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_nar_LDFLAGS = $(FUZZLDFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz-storepath
tests_fuzz_fuzz_storepath_SOURCES = tests/fuzz/fuzz-storepath.c $(FUZZ_MAIN)
tests_fuzz_fuzz_storepath_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_storepath_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_storepath_LDFLAGS = $(FUZZLDFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz-aterm
tests_fuzz_fuzz_aterm_SOURCES = tests/fuzz/fuzz-aterm.c $(FUZZ_MAIN)
tests_fuzz_fuzz_aterm_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_aterm_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_aterm_LDFLAGS = $(FUZZLDFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz-drvjson
tests_fuzz_fuzz_drvjson_SOURCES = tests/fuzz/fuzz-drvjson.c $(FUZZ_MAIN)
tests_fuzz_fuzz_drvjson_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_drvjson_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_drvjson_LDFLAGS = $(FUZZLDFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz-protocol
tests_fuzz_fuzz_protocol_SOURCES = tests/fuzz/fuzz-protocol.c $(FUZZ_MAIN)
tests_fuzz_fuzz_protocol_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_protocol_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_protocol_LDFLAGS = $(FUZZLDFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz-serve
tests_fuzz_fuzz_serve_SOURCES = tests/fuzz/fuzz-serve.c $(FUZZ_MAIN)
tests_fuzz_fuzz_serve_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_serve_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_serve_LDFLAGS = $(FUZZLDFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz-attrs
tests_fuzz_fuzz_attrs_SOURCES = tests/fuzz/fuzz-attrs.c $(FUZZ_MAIN)
tests_fuzz_fuzz_attrs_CPPFLAGS = $(FUZZCPPFLAGS)
tests_fuzz_fuzz_attrs_LDADD = $(FUZZLDADD)
tests_fuzz_fuzz_attrs_LDFLAGS = $(FUZZLDFLAGS)

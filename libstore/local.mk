# libstore.a: the store library. settings/local.mk adds its sources here too.
noinst_LIBRARIES += %reldir%/libstore.a
%canon_reldir%_libstore_a_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
%canon_reldir%_libstore_a_SOURCES = \
	%reldir%/banned.h \
	%reldir%/cleanup.h \
	%reldir%/error.c %reldir%/error.h \
	%reldir%/log.c %reldir%/log.h \
	%reldir%/util.c %reldir%/util.h \
	%reldir%/strbuf.c %reldir%/strbuf.h \
	%reldir%/hash.c %reldir%/hash.h \
	%reldir%/protocol.c %reldir%/protocol.h

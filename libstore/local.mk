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
	%reldir%/path.c %reldir%/path.h \
	%reldir%/derivation.c %reldir%/derivation.h %reldir%/derivation-internal.h \
	%reldir%/derivation-json.c %reldir%/derivation-hash.c \
	%reldir%/lock.c %reldir%/lock.h \
	%reldir%/build-record.h \
	%reldir%/db.c %reldir%/db.h \
	%reldir%/hashset.c %reldir%/hashset.h \
	%reldir%/store.c %reldir%/store.h %reldir%/store-internal.h \
	%reldir%/local-store.c %reldir%/local-store.h %reldir%/local-store-internal.h \
	%reldir%/gc.c %reldir%/verify.c \
	%reldir%/store-derivation.c %reldir%/store-derivation.h \
	%reldir%/nar.c %reldir%/nar.h \
	%reldir%/refscan.c %reldir%/refscan.h \
	%reldir%/seccomp.c %reldir%/seccomp.h \
	%reldir%/cgroup.c %reldir%/cgroup.h \
	%reldir%/sandbox.c %reldir%/sandbox.h \
	%reldir%/protocol.c %reldir%/protocol.h \
	%reldir%/archive.c %reldir%/archive.h \
	%reldir%/derivation-store.c %reldir%/derivation-store.h \
	%reldir%/build.c %reldir%/build.h \
	%reldir%/build-env.c %reldir%/build-env.h \
	%reldir%/build-queue.c %reldir%/build-queue.h \
	%reldir%/uid-pool.c %reldir%/uid-pool.h %reldir%/uid-pool-internal.h \
	%reldir%/serve.c %reldir%/serve.h \
	%reldir%/remote-store.c %reldir%/remote-store.h

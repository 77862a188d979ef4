bin_PROGRAMS += nib
nib_CPPFLAGS = $(AM_CPPFLAGS) $(CJSON_CFLAGS)
nib_LDADD = $(NIB_LIBS)
nib_SOURCES = \
	%reldir%/main.c %reldir%/cli.h \
	%reldir%/output.c \
	%reldir%/cmd-show-config.c \
	%reldir%/cmd-derivation.c \
	%reldir%/cmd-derivation-add.c \
	%reldir%/store.c \
	%reldir%/cmd-add.c \
	%reldir%/cmd-path-info.c \
	%reldir%/cmd-gc.c \
	%reldir%/cmd-store.c \
	%reldir%/cmd-nar.c \
	%reldir%/cmd-hash.c \
	%reldir%/cmd-slots.c \
	%reldir%/cmd-daemon.c \
	%reldir%/cmd-build.c \
	%reldir%/cmd-log.c

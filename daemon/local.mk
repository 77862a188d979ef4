bin_PROGRAMS += nib-daemon
nib_daemon_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
nib_daemon_LDADD = $(NIB_LIBS)
nib_daemon_SOURCES = \
	%reldir%/main.c \
	%reldir%/peer.c %reldir%/peer.h

bin_PROGRAMS += nib-daemon
nib_daemon_CPPFLAGS = $(AM_CPPFLAGS) $(NIB_DEPCFLAGS)
nib_daemon_LDADD = $(NIB_LIBS)
# Symbols bound once at start, not again in each connection process.
nib_daemon_LDFLAGS = $(AM_LDFLAGS) -Wl,-z,now
nib_daemon_SOURCES = \
	%reldir%/main.c \
	%reldir%/peer.c %reldir%/peer.h

# systemd units (socket activation): installed under $(systemdunitdir).
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = %reldir%/nib-daemon.service %reldir%/nib-daemon.socket
EXTRA_DIST += %reldir%/nib-daemon.service.in %reldir%/nib-daemon.socket
CLEANFILES += %reldir%/nib-daemon.service
%reldir%/nib-daemon.service: %reldir%/nib-daemon.service.in
	$(AM_V_GEN)$(MKDIR_P) %reldir% && sed 's|NIB_BINDIR|$(bindir)|g' $< >$@

# The manual page the systemd unit points to (Documentation=man:nib-daemon(8)).
dist_man8_MANS = %reldir%/nib-daemon.8

# Helpers installed in $(libexecdir)/nib.
#
# nib-container runs inside uid-range builds (bound in as a sandbox path), so it
# is linked statically and without sanitizers (which cannot link statically).
nibexecdir = $(libexecdir)/nib
nibexec_PROGRAMS = %reldir%/nib-container
%canon_reldir%_nib_container_SOURCES = %reldir%/nib-container.c
%canon_reldir%_nib_container_CFLAGS = $(WARN_CFLAGS)
%canon_reldir%_nib_container_LDFLAGS = -static

libstore_libstore_a_SOURCES += \
	%reldir%/settings.c %reldir%/settings.h

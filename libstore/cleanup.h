/*
 * cleanup.h - scope-bound resource release (GCC/Clang cleanup attribute).
 *
 * Every variable declared with one of these attributes MUST be initialised
 * where it is declared (NULL / -1).  Hand ownership out with TAKE_PTR/TAKE_FD,
 * which return the value and reset the variable so the cleanup does nothing.
 * Each destructor accepts the empty value.  Modules that own an outside
 * library (sqlite3, libarchive, libseccomp) define their own cleanup macros
 * with DEFINE_CLEANUP_FUNC so that only they include that library's header.
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

#define TAKE_PTR(p)                     \
	({                              \
		typeof(p) taken_ = (p); \
		(p) = NULL;             \
		taken_;                 \
	})

#define TAKE_FD(fd)                   \
	({                            \
		int taken_fd_ = (fd); \
		(fd) = -1;            \
		taken_fd_;            \
	})

/* Define `static inline void funcp(type **p)` calling func(*p) when *p != NULL. */
#define DEFINE_CLEANUP_FUNC(type, func)      \
	static inline void func##p(type **p) \
	{                                    \
		if (*p != NULL)              \
			func(*p);            \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}

/* close() that keeps errno, for cleanup paths. */
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
		*fd = -1;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f != NULL)
		fclose(*f);
}

static inline void closedirp(DIR **d)
{
	if (*d != NULL)
		closedir(*d);
}

static inline void nib_error_freep(struct nib_error **e)
{
	nib_error_free(*e);
}

/* Free a NULL-terminated array of strings and the array itself. */
static inline void strv_freep(char ***v)
{
	if (*v != NULL) {
		for (char **s = *v; *s != NULL; s++)
			free(*s);
		free(*v);
	}
}

#define cleanup_free __attribute__((cleanup(freep)))
#define cleanup_close __attribute__((cleanup(closep)))
#define cleanup_fclose __attribute__((cleanup(fclosep)))
#define cleanup_dir __attribute__((cleanup(closedirp)))
#define cleanup_error __attribute__((cleanup(nib_error_freep)))
#define cleanup_strv __attribute__((cleanup(strv_freep)))

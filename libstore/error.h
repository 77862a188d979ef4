/*
 * error.h - the error value every fallible nib function reports through.
 *
 * Contract (after crun's libcrun_error_t and systemd's -errno habits):
 *  - A function that can fail takes `struct nib_error **err` as its LAST
 *    parameter and returns an int (< 0 on failure) or a pointer (NULL on
 *    failure).  On entry *err is NULL.  On failure it is set exactly once; on
 *    success it is left alone.
 *  - Context is added where it means something, with nib_error_prefix():
 *    "registering '/nib/store/…': cannot open '…': No such file or directory".
 *  - Messages follow git: lowercase, no full stop, subjects in '…'.
 *  - Libraries never print or exit; cli/output.c and the daemon turn errors
 *    into text or protocol frames.
 */
#pragma once

#include <stdarg.h>

enum nib_errc {
	NIB_E_SYS = 1,	    /* a system call failed; sys_errno says why */
	NIB_E_DB,	    /* SQLite reported an error */
	NIB_E_ARCHIVE,	    /* libarchive reported an error */
	NIB_E_INVALID,	    /* bad input: syntax, value out of range, malformed data */
	NIB_E_NOT_FOUND,    /* a named thing does not exist */
	NIB_E_DENIED,	    /* the caller is not allowed to do this */
	NIB_E_BUILD_FAILED, /* a builder ran and failed */
	NIB_E_PROTOCOL,	    /* the peer broke the worker protocol */
	NIB_E_UNSUPPORTED,  /* recognised but not implemented or not possible here */
	NIB_E_TIMEOUT,	    /* a deadline passed */
	NIB_E_BUSY,	    /* a resource is held by someone else */
	NIB_E_CONFIG,	    /* the configuration is inconsistent or unsafe */
	_NIB_E_MAX
};

struct nib_error {
	enum nib_errc code;
	int sys_errno; /* errno of the failing call, or 0 */
	char *msg;     /* full message, with ": strerror" appended when sys_errno != 0 */
};

/*
 * Set *err to a new error.  When sys_errno is not 0, ": <strerror>" is
 * appended.  Always returns -1 so that `return nib_error_set(...)` works.
 * If *err is already set (a programmer error), the old error is kept and the
 * new one dropped.  err may be NULL, in which case nothing is recorded.
 */
int nib_error_set(struct nib_error **err, enum nib_errc code, int sys_errno, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int nib_error_setv(struct nib_error **err, enum nib_errc code, int sys_errno, const char *fmt,
		   va_list ap) __attribute__((format(printf, 4, 0)));

/* Shorthand for nib_error_set(err, NIB_E_SYS, errno, ...): call right after the failing syscall. */
int nib_error_errno(struct nib_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Prepend context: "<fmt>: <old message>".  Returns -1.  Does nothing (but
 * still returns -1) when err or *err is NULL.
 */
int nib_error_prefix(struct nib_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Free an error; NULL is fine. */
void nib_error_free(struct nib_error *e);

/* Free *err and set it to NULL (for callers that handle an error and go on). */
void nib_error_clear(struct nib_error **err);

/* A short stable name for a code ("invalid", "not-found", ...), for --json output. */
const char *nib_errc_name(enum nib_errc code);

/* Move *src into *dst (dst must be empty); returns -1. */
int nib_error_move(struct nib_error **dst, struct nib_error **src);

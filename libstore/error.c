#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "banned.h"

int nib_error_setv(struct nib_error **err, enum nib_errc code, int sys_errno, const char *fmt,
		   va_list ap)
{
	struct nib_error *e;
	char *msg = NULL;

	if (err == NULL || *err != NULL)
		return -1;
	msg = xvasprintf(fmt, ap);
	if (sys_errno != 0) {
		char *full = xasprintf("%s: %s", msg, strerror(sys_errno));
		free(msg);
		msg = full;
	}
	e = xcalloc(1, sizeof(*e));
	e->code = code;
	e->sys_errno = sys_errno;
	e->msg = msg;
	*err = e;
	return -1;
}

int nib_error_set(struct nib_error **err, enum nib_errc code, int sys_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nib_error_setv(err, code, sys_errno, fmt, ap);
	va_end(ap);
	return -1;
}

int nib_error_errno(struct nib_error **err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	nib_error_setv(err, NIB_E_SYS, saved, fmt, ap);
	va_end(ap);
	errno = saved;
	return -1;
}

int nib_error_prefix(struct nib_error **err, const char *fmt, ...)
{
	char *ctx, *full;
	va_list ap;

	if (err == NULL || *err == NULL)
		return -1;
	va_start(ap, fmt);
	ctx = xvasprintf(fmt, ap);
	va_end(ap);
	full = xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = full;
	return -1;
}

void nib_error_free(struct nib_error *e)
{
	if (e == NULL)
		return;
	free(e->msg);
	free(e);
}

void nib_error_clear(struct nib_error **err)
{
	if (err == NULL)
		return;
	nib_error_free(*err);
	*err = NULL;
}

int nib_error_move(struct nib_error **dst, struct nib_error **src)
{
	if (dst != NULL && *dst == NULL) {
		*dst = *src;
		*src = NULL;
	} else {
		nib_error_clear(src);
	}
	return -1;
}

const char *nib_errc_name(enum nib_errc code)
{
	static const char *const names[_NIB_E_MAX] = {
		[NIB_E_SYS] = "system",
		[NIB_E_DB] = "database",
		[NIB_E_ARCHIVE] = "archive",
		[NIB_E_INVALID] = "invalid",
		[NIB_E_NOT_FOUND] = "not-found",
		[NIB_E_DENIED] = "denied",
		[NIB_E_BUILD_FAILED] = "build-failed",
		[NIB_E_PROTOCOL] = "protocol",
		[NIB_E_UNSUPPORTED] = "unsupported",
		[NIB_E_TIMEOUT] = "timeout",
		[NIB_E_BUSY] = "busy",
		[NIB_E_CONFIG] = "config",
	};

	if ((int)code <= 0 || code >= _NIB_E_MAX || names[code] == NULL)
		return "unknown";
	return names[code];
}

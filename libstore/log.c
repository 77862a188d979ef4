#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "banned.h"

static log_sink_fn sink_fn;
static void *sink_data;
static int max_level = LOG_NOTICE;
static const char *ident = "nib";
static int level_prefix;

void log_set_sink(log_sink_fn fn, void *userdata)
{
	sink_fn = fn;
	sink_data = userdata;
}

void log_get_sink(log_sink_fn *ret_fn, void **ret_userdata)
{
	*ret_fn = sink_fn;
	*ret_userdata = sink_data;
}

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

void log_set_ident(const char *s)
{
	ident = s;
}

void log_set_level_prefix(int on)
{
	level_prefix = on;
}

void log_default_sink(int level, const char *msg, void *userdata)
{
	const char *kind = "";

	(void)userdata;
	if (level <= LOG_ERR)
		kind = "error: ";
	else if (level == LOG_WARNING)
		kind = "warning: ";
	if (level_prefix)
		fprintf(stderr, "<%d>%s: %s%s\n", level, ident, kind, msg);
	else
		fprintf(stderr, "%s: %s%s\n", ident, kind, msg);
}

void log_msgv(int level, const char *fmt, va_list ap)
{
	char *msg;
	int saved = errno;

	if (level > max_level)
		return;
	msg = xvasprintf(fmt, ap);
	if (sink_fn != NULL)
		sink_fn(level, msg, sink_data);
	else
		log_default_sink(level, msg, NULL);
	free(msg);
	errno = saved;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msgv(level, fmt, ap);
	va_end(ap);
}

int log_errno(int level, int errnum, const char *fmt, ...)
{
	char *msg;
	va_list ap;

	if (errnum < 0)
		errnum = -errnum;
	if (level > max_level)
		return -1;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	log_msg(level, "%s: %s", msg, strerror(errnum));
	free(msg);
	return -1;
}

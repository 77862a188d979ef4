/*
 * log.h - leveled logging with a pluggable sink.
 *
 * Levels are <syslog.h>'s (LOG_ERR … LOG_DEBUG).  libstore itself only logs
 * at LOG_DEBUG; the daemon and the cli decide what is worth saying (systemd's
 * rule).  The default sink writes "nib: <message>" to stderr.  Not
 * thread-safe: nib is single-threaded per process.
 */
#pragma once

#include <stdarg.h>
#include <syslog.h>

typedef void (*log_sink_fn)(int level, const char *msg, void *userdata);

/* Replace the sink; NULL restores the default stderr sink. */
void log_set_sink(log_sink_fn fn, void *userdata);
/* The current sink (NULL for the default one), for a sink that passes lines on. */
void log_get_sink(log_sink_fn *ret_fn, void **ret_userdata);
/* The default sink itself: "<ident>: <message>" on stderr (userdata unused). */
void log_default_sink(int level, const char *msg, void *userdata);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Prefix the default sink puts before each line ("nib", "nib-daemon"). */
void log_set_ident(const char *ident);
/* With the default sink, prefix lines with "<N>" (journald's stderr protocol). */
void log_set_level_prefix(int on);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_msgv(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*
 * Log "<fmt>: strerror(errnum)" and return -1, so that logging and returning
 * is one statement.  errnum may be given negative (-errno).
 */
int log_errno(int level, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)

/*
 * banned.h - calls nib code must not use (idea from git's banned.h).
 * Include it LAST in every .c file, after all system headers.  Using one of
 * these is a compile error that names the reason.
 */
#pragma once

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy) /* use memcpy with a known length, or xstrdup */
#undef strcat
#define strcat(x, y) BANNED(strcat) /* use struct strbuf */
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy) /* does not terminate; use memcpy */
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#undef vsprintf
#define sprintf(...) BANNED(sprintf) /* use snprintf or xasprintf */
#define vsprintf(...) BANNED(vsprintf)
#undef gets
#define gets(x) BANNED(gets)
#undef strtok
#define strtok(x, y) BANNED(strtok) /* not reentrant; use strtok_r or strsep */
#undef gmtime
#define gmtime(t) BANNED(gmtime) /* use gmtime_r */
#undef localtime
#define localtime(t) BANNED(localtime) /* use localtime_r */
#undef ctime
#define ctime(t) BANNED(ctime)
#undef asctime
#define asctime(t) BANNED(asctime)
#undef mktemp
#define mktemp(x) BANNED(mktemp) /* racy; use mkstemp / mkdtemp */
#undef tmpnam
#define tmpnam(x) BANNED(tmpnam)
#undef atoi
#define atoi(x) BANNED(atoi) /* no error reporting; use parse_u64 / parse_i64 */
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)
#undef qsort
#define qsort(...) BANNED(qsort) /* NULL base with n == 0 is undefined; use sort_array */
#undef dup
#define dup(fd) BANNED(dup) /* not close-on-exec; use fd_dup_cloexec */

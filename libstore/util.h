/*
 * util.h - small helpers shared by every module.
 *
 * Allocation: the x* functions abort on out-of-memory (like git's xmalloc);
 * nib does not try to recover from OOM in the middle of a store operation,
 * and an abort leaves the store consistent because every store write is a
 * transaction.  Everything else reports errors through struct nib_error.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/types.h>

#include "error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define STREQ(a, b) (strcmp((a), (b)) == 0)
#define STARTS_WITH(s, prefix) (strncmp((s), (prefix), strlen(prefix)) == 0)
/* Does s end in suffix? */
static inline bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* realloc for arrays: checks nmemb*size overflow. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Grow *arr (of elements of size `size`) so that it holds at least `need`. */
#define ALLOC_GROW(arr, need, alloc)                                              \
	do {                                                                      \
		if ((size_t)(need) > (alloc)) {                                   \
			size_t new_alloc_ = (alloc) ? (alloc)*2 : 8;              \
			while (new_alloc_ < (size_t)(need))                       \
				new_alloc_ *= 2;                                  \
			(arr) = xreallocarray((arr), new_alloc_, sizeof(*(arr))); \
			(alloc) = new_alloc_;                                     \
		}                                                                 \
	} while (0)

/*
 * Strict number parsing: the whole string must be a decimal number that fits.
 * Return 0 and set *ret, or -EINVAL / -ERANGE and leave *ret alone.
 */
int parse_u64(const char *s, uint64_t *ret);
int parse_i64(const char *s, int64_t *ret);

/*
 * qsort that accepts an empty array with a NULL base (qsort itself must not be
 * given NULL, even for n == 0; UBSan reports it).  banned.h bans qsort.
 */
static inline void sort_array(void *base, size_t n, size_t size,
			      int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

/* Comparator for sort_array over an array of char *: strcmp order. */
int strp_cmp(const void *a, const void *b);

/* NULL-terminated string vectors. */
size_t strv_length(char *const *v);
void strv_free(char **v);
/* Append a copy of s; *v may be NULL. */
void strv_push(char ***v, const char *s);
char **strv_copy(char *const *v);
bool strv_contains(char *const *v, const char *s);
/* Append each whitespace-separated word of s (NULL: none) to *v, as Nix splits attributes. */
void strv_push_words(char ***v, const char *s);

/* Read/write exactly n bytes, retrying on EINTR and short transfers. */
int read_full(int fd, void *buf, size_t n, struct nib_error **err); /* 0, or -1 (EOF = error) */
ssize_t read_upto(int fd, void *buf, size_t n);			    /* bytes read, -1 errno */
int write_full(int fd, const void *buf, size_t n, struct nib_error **err);

/* Read fd to EOF into a NUL-terminated buffer, refusing more than max bytes. */
int read_fd_all(int fd, size_t max, char **ret_buf, size_t *ret_len, struct nib_error **err);

/*
 * Read a whole file (at dirfd/path, O_CLOEXEC|O_NOCTTY) into a NUL-terminated
 * buffer, refusing files larger than max bytes.  dirfd may be AT_FDCWD.
 */
int read_file_at(int dirfd, const char *path, size_t max, char **ret_buf, size_t *ret_len,
		 struct nib_error **err);

/*
 * Write data to dirfd/path atomically: temporary file in the same directory,
 * optional fsync, rename.  mode is the final mode.
 */
int write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode,
			 bool do_fsync, struct nib_error **err);

/* mkdir -p with the given mode for created components; existing dirs are fine. */
int mkdir_p(const char *path, mode_t mode, struct nib_error **err);

/*
 * Remove a tree without following symlinks (openat/unlinkat walk).  Makes
 * read-only directories writable as needed.  ENOENT on the top is success.
 */
int rm_rf_at(int dirfd, const char *path, struct nib_error **err);

/*
 * Start a thread that takes no signal (all are blocked while it is made, so
 * it inherits that: handlers and waits for signals stay with the caller's
 * threads).  false when no thread could be made; the caller then does the
 * work itself.  The background workers of the store and the builder
 * (syncs, checkpoints, the syscall filter) share nothing else with it.
 */
bool thread_start(pthread_t *ret, void *(*fn)(void *), void *arg);

/* Remove everything in the directory dir (not following symlinks), keeping it; ENOENT is success. */
int rm_rf_contents(const char *dir, struct nib_error **err);

/* Join two path components with exactly one '/'. */
/* readlink() with a relative target resolved against the link's directory; NULL on any error. */
char *read_link_abs(const char *link);
char *path_join(const char *a, const char *b);

/* Monotonic / realtime clocks in microseconds. */
uint64_t now_monotonic_usec(void);
uint64_t now_realtime_usec(void);

/*
 * Directory streams, close-on-exec, never following a symlink at name:
 * opendir_at opens dirfd/name; opendir_dup lists the directory fd without
 * taking it over (the stream has its own duplicate).  NULL + errno on error.
 */
DIR *opendir_at(int dirfd, const char *name);
DIR *opendir_dup(int fd);

/* dup() with FD_CLOEXEC set atomically (every nib fd is close-on-exec); -1 + errno. */
int fd_dup_cloexec(int fd);

/* Set or clear FD_CLOEXEC. */
int fd_set_cloexec(int fd, bool on);

/*
 * Format a byte count for people: "1.5 MiB".  Returns a static-free,
 * caller-owned string.
 */
char *format_bytes(uint64_t n);

/* Parse "123", "4K", "2M", "1G", "1T" (powers of 1024) into bytes. */
int parse_size(const char *s, uint64_t *ret);

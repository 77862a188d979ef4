/*
 * strbuf.h - a growable byte buffer, always NUL-terminated (after git's strbuf).
 *
 *   struct strbuf sb = STRBUF_INIT;
 *   strbuf_addf(&sb, "%s-%d", name, n);
 *   use(sb.buf, sb.len);
 *   strbuf_release(&sb);
 *
 * Allocation failure aborts (see util.h: xmalloc).  buf may hold NUL bytes;
 * len is authoritative.  `cleanup_strbuf` releases at scope exit.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};

extern char strbuf_empty[];
#define STRBUF_INIT                                       \
	{                                                 \
		.buf = strbuf_empty, .len = 0, .alloc = 0 \
	}

void strbuf_init(struct strbuf *sb, size_t hint);
/* Free the buffer and reinitialise it to empty. */
void strbuf_release(struct strbuf *sb);
/* Return the buffer (caller frees; never NULL) and reinitialise sb. */
char *strbuf_detach(struct strbuf *sb, size_t *ret_len);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void strbuf_setlen(struct strbuf *sb, size_t len);
static inline void strbuf_reset(struct strbuf *sb)
{
	strbuf_setlen(sb, 0);
}

static inline void strbuf_releasep(struct strbuf *sb)
{
	strbuf_release(sb);
}
#define cleanup_strbuf __attribute__((cleanup(strbuf_releasep)))

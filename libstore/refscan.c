/*
 * refscan.c - streaming search for store path hash parts.
 *
 * A hash part is 32 characters of Nix base-32, so a match can only start
 * where 32 consecutive bytes are all base-32 characters.  The scan checks the
 * last byte of each 32-byte window first: in binary data that byte is
 * usually not base-32, and the window start then jumps past it.  Inside a
 * run of base-32 characters every window is looked up in an open-addressing
 * table of the candidates.  The last 31 bytes of the stream are kept so that
 * a hash split between two feeds is found too.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "hash.h"
#include "path.h"
#include "refscan.h"
#include "util.h"
#include "banned.h"

#define HLEN STORE_PATH_HASH_LEN
#define FILTER_BITS 16
#define filter_bit(h) ((h) >> (64 - FILTER_BITS))

struct refscan {
	size_t n;
	char (*parts)[HLEN]; /* the candidates, not NUL-terminated */
	uint32_t *canon;     /* index of the first candidate equal to each */
	bool *found;	     /* indexed by canonical index */
	size_t nfound, ndistinct;
	uint32_t *table; /* canonical index + 1; 0 = empty */
	size_t mask;
	/*
	 * One bit per value of the top bits of mix(): most windows of base-32
	 * text are ruled out here, in a bitmap that stays in L1.
	 */
	uint64_t filter[(1 << FILTER_BITS) / 64];
	unsigned char tail[HLEN - 1];
	size_t tail_len;
};

#define V(c) [c] = true
static const bool valid[256] = {
	V('0'), V('1'), V('2'), V('3'), V('4'), V('5'), V('6'), V('7'), V('8'), V('9'), V('a'),
	V('b'), V('c'), V('d'), V('f'), V('g'), V('h'), V('i'), V('j'), V('k'), V('l'), V('m'),
	V('n'), V('p'), V('q'), V('r'), V('s'), V('v'), V('w'), V('x'), V('y'), V('z'),
};
#undef V

static inline uint64_t mix(const unsigned char *s)
{
	uint64_t a, b;

	memcpy(&a, s, 8);
	memcpy(&b, s + 24, 8);
	return (a ^ (b >> 1)) * 0x9e3779b97f4a7c15ULL;
}

/* The canonical index of the candidate equal to s (whose mix is h), or -1. */
static inline long lookup(const struct refscan *rs, const unsigned char *s, uint64_t h)
{
	for (size_t i = (size_t)(h >> 20) & rs->mask;; i = (i + 1) & rs->mask) {
		uint32_t v = rs->table[i];
		if (v == 0)
			return -1;
		if (memcmp(rs->parts[v - 1], s, HLEN) == 0)
			return (long)v - 1;
	}
}

struct refscan *refscan_new(char *const *hash_parts, size_t n, struct nib_error **err)
{
	struct refscan *rs;
	size_t size = 16;

	if (n >= UINT32_MAX / 4) {
		nib_error_set(err, NIB_E_INVALID, 0, "too many reference candidates");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *p = hash_parts[i];
		size_t len = strnlen(p, HLEN + 1);
		bool ok = len == HLEN;

		for (size_t k = 0; ok && k < len; k++)
			ok = valid[(unsigned char)p[k]];
		if (!ok) {
			nib_error_set(err, NIB_E_INVALID, 0, "invalid store path hash part '%.*s'",
				      (int)(len > HLEN ? HLEN : len), p);
			return NULL;
		}
	}
	while (size < 2 * n)
		size *= 2;
	rs = xcalloc(1, sizeof(*rs));
	rs->n = n;
	rs->parts = xcalloc(n ? n : 1, sizeof(*rs->parts));
	rs->canon = xcalloc(n ? n : 1, sizeof(*rs->canon));
	rs->found = xcalloc(n ? n : 1, sizeof(*rs->found));
	rs->table = xcalloc(size, sizeof(*rs->table));
	rs->mask = size - 1;
	for (size_t i = 0; i < n; i++) {
		long c;

		const unsigned char *part = (const unsigned char *)rs->parts[i];
		uint64_t h;

		memcpy(rs->parts[i], hash_parts[i], HLEN);
		h = mix(part);
		c = lookup(rs, part, h);
		if (c >= 0) {
			rs->canon[i] = (uint32_t)c;
			continue;
		}
		rs->filter[filter_bit(h) / 64] |= (uint64_t)1 << (filter_bit(h) % 64);
		for (size_t s = (size_t)(h >> 20) & rs->mask;; s = (s + 1) & rs->mask) {
			if (rs->table[s] == 0) {
				rs->table[s] = (uint32_t)i + 1;
				break;
			}
		}
		rs->canon[i] = (uint32_t)i;
		rs->ndistinct++;
	}
	return rs;
}

static inline void hit(struct refscan *rs, const unsigned char *s)
{
	uint64_t h = mix(s);
	long c;

	if (!(rs->filter[filter_bit(h) / 64] & ((uint64_t)1 << (filter_bit(h) % 64))))
		return;
	c = lookup(rs, s, h);

	if (c >= 0 && !rs->found[c]) {
		rs->found[c] = true;
		rs->nfound++;
	}
}

/* Look up every all-base-32 window that lies wholly inside s[0..len). */
static void scan(struct refscan *rs, const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i + HLEN <= len) {
		size_t j, k;

		/* Find the last non-base-32 byte of the window, from the end. */
		for (j = HLEN; j > 0 && valid[s[i + j - 1]]; j--)
			;
		if (j > 0) {
			i += j;
			continue;
		}
		/* s[i..i+HLEN) is a run; slide along it one byte at a time. */
		hit(rs, s + i);
		for (k = i + HLEN; k < len && valid[s[k]]; k++)
			hit(rs, s + k - HLEN + 1);
		i = k + 1;
	}
}

void refscan_feed(struct refscan *rs, const void *data, size_t len)
{
	const unsigned char *d = data;

	if (len == 0 || rs->nfound == rs->ndistinct)
		return;
	if (rs->tail_len > 0) {
		/* Windows that start in the kept tail and end in the new data. */
		unsigned char join[2 * (HLEN - 1)];
		size_t take = len < HLEN - 1 ? len : HLEN - 1;

		memcpy(join, rs->tail, rs->tail_len);
		memcpy(join + rs->tail_len, d, take);
		scan(rs, join, rs->tail_len + take);
	}
	scan(rs, d, len);
	if (len >= HLEN - 1) {
		memcpy(rs->tail, d + len - (HLEN - 1), HLEN - 1);
		rs->tail_len = HLEN - 1;
	} else {
		size_t keep = rs->tail_len + len;
		size_t drop = keep > HLEN - 1 ? keep - (HLEN - 1) : 0;

		memmove(rs->tail, rs->tail + drop, rs->tail_len - drop);
		memcpy(rs->tail + rs->tail_len - drop, d, len);
		rs->tail_len = keep - drop;
	}
}

bool refscan_found(const struct refscan *rs, size_t i)
{
	return i < rs->n && rs->found[rs->canon[i]];
}

void refscan_free(struct refscan *rs)
{
	if (rs == NULL)
		return;
	free(rs->parts);
	free(rs->canon);
	free(rs->found);
	free(rs->table);
	free(rs);
}

int refscan_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	refscan_feed(userdata, data, len);
	return 0;
}

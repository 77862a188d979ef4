#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "refscan.h"
#include "util.h"

static const char alphabet[] = "0123456789abcdfghijklmnpqrsvwxyz";

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic test data. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void random_part(char out[33])
{
	for (int i = 0; i < 32; i++)
		out[i] = alphabet[rnd() % 32];
	out[32] = '\0';
}

DEFINE_CLEANUP_FUNC(struct refscan, refscan_free)
#define cleanup_refscan __attribute__((cleanup(refscan_freep)))

static int cmp32(const void *a, const void *b)
{
	return memcmp(a, *(char *const *)b, 32);
}

static int cmp_parts(const void *a, const void *b)
{
	return memcmp(*(char *const *)a, *(char *const *)b, 32);
}

/*
 * Which candidates occur in buf, by a different method: every 32-byte window
 * binary-searched in the sorted candidates.  sorted is modified (sorted).
 */
static void naive_search(const unsigned char *buf, size_t len, char **sorted, size_t n,
			 bool *ret_found)
{
	sort_array(sorted, n, sizeof(char *), cmp_parts);
	for (size_t i = 0; i + 32 <= len; i++) {
		char **hit = bsearch(buf + i, sorted, n, sizeof(char *), cmp32);
		if (hit != NULL)
			ret_found[hit - sorted] = true;
	}
}

static void test_invalid_candidates(void)
{
	const char *bad[] = {
		"0ip26j2h11n1kgkz36rl4akv694yz65",   /* 31 */
		"0ip26j2h11n1kgkz36rl4akv694yz65hh", /* 33 */
		"0ip26j2h11n1kgkz36rl4akv694yz65e",  /* 'e' is not Nix base-32 */
		"0IP26J2H11N1KGKZ36RL4AKV694YZ65H",  /* upper case */
		"",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_error struct nib_error *e = NULL;
		char *c[] = { (char *)bad[i] };
		struct refscan *rs = refscan_new(c, 1, &e);
		CU_ASSERT_PTR_NULL(rs);
		CU_ASSERT(e && e->code == NIB_E_INVALID && strstr(e->msg, "hash part"));
		refscan_free(rs);
	}
	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_refscan struct refscan *rs = refscan_new(NULL, 0, &e);
		CU_ASSERT_PTR_NOT_NULL(rs);
		if (rs) {
			refscan_feed(rs, "abc", 3);
			CU_ASSERT_FALSE(refscan_found(rs, 0));
		}
	}
}

/* Feed buf split at every point (two feeds) and also byte by byte. */
static void test_every_split_point(void)
{
	char p0[33], p1[33], p2[33], p3[33], p4[33];
	unsigned char buf[300];
	char *cands[5] = { p0, p1, p2, p3, p4 };
	size_t len;

	random_part(p0);
	random_part(p1);
	random_part(p2);
	random_part(p3);
	random_part(p4);
	/*
	 * p0 inside binary, p1 inside a longer base-32 run, p4 right after one
	 * separator following a run, p2 at the very end, p3 absent except for a
	 * 31-character prefix.
	 */
	len = 0;
	memcpy(buf + len, "\x00\xff/nib/store/", 13);
	len += 13;
	memcpy(buf + len, p0, 32);
	len += 32;
	memcpy(buf + len, "-hello\x01\x02", 8);
	len += 8;
	memcpy(buf + len, "abcd0123", 8);
	len += 8;
	memcpy(buf + len, p1, 32);
	len += 32;
	memcpy(buf + len, "zzzz99", 6);
	len += 6;
	memcpy(buf + len, "/", 1);
	len += 1;
	memcpy(buf + len, p4, 32);
	len += 32;
	memcpy(buf + len, "\n", 1);
	len += 1;
	memcpy(buf + len, p3, 31);
	len += 31;
	memcpy(buf + len, "-", 1);
	len += 1;
	memcpy(buf + len, p2, 32);
	len += 32;

	for (size_t split = 0; split <= len; split++) {
		cleanup_error struct nib_error *e = NULL;
		cleanup_refscan struct refscan *rs = refscan_new(cands, 5, &e);
		if (rs == NULL)
			return;
		refscan_feed(rs, buf, split);
		refscan_feed(rs, buf + split, len - split);
		CU_ASSERT(refscan_found(rs, 0));
		CU_ASSERT(refscan_found(rs, 1));
		CU_ASSERT(refscan_found(rs, 2));
		CU_ASSERT_FALSE(refscan_found(rs, 3));
		CU_ASSERT(refscan_found(rs, 4));
	}
	/* Three feeds: every pair of split points. */
	for (size_t a = 0; a <= len; a += 3)
		for (size_t b = a; b <= len; b += 5) {
			cleanup_error struct nib_error *e = NULL;
			cleanup_refscan struct refscan *rs = refscan_new(cands, 5, &e);
			if (rs == NULL)
				return;
			refscan_feed(rs, buf, a);
			refscan_feed(rs, buf + a, b - a);
			refscan_feed(rs, buf + b, len - b);
			CU_ASSERT(refscan_found(rs, 0) && refscan_found(rs, 1) &&
				  refscan_found(rs, 2) && !refscan_found(rs, 3) &&
				  refscan_found(rs, 4));
		}
	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_refscan struct refscan *rs = refscan_new(cands, 5, &e);
		if (rs == NULL)
			return;
		for (size_t i = 0; i < len; i++)
			refscan_feed(rs, buf + i, 1);
		CU_ASSERT(refscan_found(rs, 0) && refscan_found(rs, 1) && refscan_found(rs, 2) &&
			  !refscan_found(rs, 3) && refscan_found(rs, 4));
	}
}

static void test_duplicates_and_overlap(void)
{
	char a[33], b[33];
	cleanup_error struct nib_error *e = NULL;
	unsigned char buf[64];
	char *cands[3] = { a, b, a };
	cleanup_refscan struct refscan *rs = NULL;

	random_part(a);
	/* b is a shifted by one: both occur in a 33-character run. */
	memcpy(b, a + 1, 31);
	b[31] = '7';
	b[32] = '\0';
	memcpy(buf, a, 32);
	buf[32] = '7';
	rs = refscan_new(cands, 3, &e);
	CU_ASSERT_PTR_NOT_NULL(rs);
	if (rs == NULL)
		return;
	refscan_feed(rs, buf, 33);
	CU_ASSERT(refscan_found(rs, 0));
	CU_ASSERT(refscan_found(rs, 1));
	CU_ASSERT(refscan_found(rs, 2));
	CU_ASSERT_FALSE(refscan_found(rs, 3)); /* out of range */
}

/* Thousands of candidates in a megabyte of mixed data, against a naive search. */
static void test_many_candidates(void)
{
	enum {
		NCAND = 5000,
		LEN = 1 << 20,
		PLANT = 300
	};
	cleanup_free char(*parts)[33] = xcalloc(NCAND, sizeof(*parts));
	cleanup_free char **cands = xcalloc(NCAND, sizeof(char *));
	cleanup_free unsigned char *buf = xmalloc(LEN);
	cleanup_error struct nib_error *e = NULL;
	cleanup_refscan struct refscan *rs = NULL;
	size_t mismatches = 0, found = 0;

	for (size_t i = 0; i < NCAND; i++) {
		random_part(parts[i]);
		cands[i] = parts[i];
	}
	/* Binary noise with stretches of base-32 text, then planted hashes. */
	for (size_t i = 0; i < LEN; i++) {
		uint64_t r = rnd();
		buf[i] = (i / 4096) % 3 == 0 ? (unsigned char)alphabet[r % 32] : (unsigned char)r;
	}
	for (size_t k = 0; k < PLANT; k++) {
		size_t at = rnd() % (LEN - 32);
		memcpy(buf + at, parts[(k * 7) % NCAND], 32);
	}
	rs = refscan_new(cands, NCAND, &e);
	CU_ASSERT_PTR_NOT_NULL(rs);
	if (rs == NULL)
		return;
	/* Uneven chunks. */
	for (size_t pos = 0, step = 1; pos < LEN; step = step * 3 % 65537 + 1) {
		size_t n = LEN - pos < step ? LEN - pos : step;
		refscan_feed(rs, buf + pos, n);
		pos += n;
	}
	{
		cleanup_free char **sorted = xcalloc(NCAND, sizeof(char *));
		cleanup_free bool *hits = xcalloc(NCAND, sizeof(bool));

		memcpy(sorted, cands, NCAND * sizeof(char *));
		naive_search(buf, LEN, sorted, NCAND, hits);
		for (size_t k = 0; k < NCAND; k++) {
			size_t i = (size_t)((char(*)[33])(void *)sorted[k] - parts);
			if (hits[k] != refscan_found(rs, i))
				mismatches++;
			found += hits[k];
		}
	}
	CU_ASSERT_EQUAL(mismatches, 0);
	CU_ASSERT(found > 200);
}

static void test_sink(void)
{
	char a[33];
	char *cands[] = { a };
	cleanup_error struct nib_error *e = NULL;
	cleanup_refscan struct refscan *rs = NULL;
	cleanup_free char *text = NULL;

	random_part(a);
	text = xasprintf("/nib/store/%s-name", a);
	rs = refscan_new(cands, 1, &e);
	if (rs == NULL)
		return;
	CU_ASSERT_EQUAL(refscan_sink(rs, text, 20, &e), 0);
	CU_ASSERT_FALSE(refscan_found(rs, 0));
	CU_ASSERT_EQUAL(refscan_sink(rs, text + 20, strlen(text) - 20, &e), 0);
	CU_ASSERT(refscan_found(rs, 0));
}

static CU_TestInfo tests[] = {
	{ "invalid candidates", test_invalid_candidates },
	{ "every split point", test_every_split_point },
	{ "duplicates and overlapping hashes", test_duplicates_and_overlap },
	{ "many candidates vs naive search", test_many_candidates },
	{ "as a sink", test_sink },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "refscan", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

#include "config.h"

#include <string.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "hash.h"

static const char abc_sha256_hex[] =
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char abc_sha256_b32[] = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
static const char abc_sha256_sri[] = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";

static void test_digests(void)
{
	struct hash h;
	cleanup_free char *md5 = NULL, *sha1 = NULL, *sha512 = NULL;

	hash_string(HASH_MD5, "", &h);
	md5 = hash_to_string(&h, HASH_ENC_BASE16, false);
	CU_ASSERT_STRING_EQUAL(md5, "d41d8cd98f00b204e9800998ecf8427e");
	hash_string(HASH_SHA1, "abc", &h);
	sha1 = hash_to_string(&h, HASH_ENC_BASE16, true);
	CU_ASSERT_STRING_EQUAL(sha1, "sha1:a9993e364706816aba3e25717850c26c9cd0d89d");
	hash_string(HASH_SHA512, "abc", &h);
	sha512 = hash_to_string(&h, HASH_ENC_BASE16, false);
	CU_ASSERT_EQUAL(strncmp(sha512, "ddaf35a193617aba", 16), 0);
}

static void test_encodings(void)
{
	struct hash h;
	cleanup_free char *hex = NULL, *b32 = NULL, *sri = NULL, *b64 = NULL;

	hash_string(HASH_SHA256, "abc", &h);
	hex = hash_to_string(&h, HASH_ENC_BASE16, false);
	b32 = hash_to_string(&h, HASH_ENC_BASE32, false);
	sri = hash_to_string(&h, HASH_ENC_SRI, false);
	b64 = hash_to_string(&h, HASH_ENC_BASE64, true);
	CU_ASSERT_STRING_EQUAL(hex, abc_sha256_hex);
	CU_ASSERT_STRING_EQUAL(b32, abc_sha256_b32);
	CU_ASSERT_STRING_EQUAL(sri, abc_sha256_sri);
	CU_ASSERT_STRING_EQUAL(b64, "sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
	CU_ASSERT_EQUAL(base32_encoded_len(20), 32);
	CU_ASSERT_EQUAL(base32_encoded_len(32), 52);
	CU_ASSERT_EQUAL(base32_encoded_len(64), 103);
}

static void test_parse_forms(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct hash want, got;
	const char *forms[] = {
		"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		"sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
		"sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
	};

	hash_string(HASH_SHA256, "abc", &want);
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		memset(&got, 0, sizeof(got));
		CU_ASSERT_EQUAL(hash_parse(forms[i], 0, &got, &e), 0);
		CU_ASSERT(hash_equal(&want, &got));
		CU_ASSERT_EQUAL(hash_parse(forms[i], HASH_SHA256, &got, &e), 0);
	}
	CU_ASSERT_EQUAL(hash_parse(abc_sha256_b32, HASH_SHA256, &got, &e), 0);
	CU_ASSERT(hash_equal(&want, &got));
	CU_ASSERT_PTR_NULL(e);
}

static void expect_reject(const char *s, enum hash_algo algo, const char *msg_part)
{
	cleanup_error struct nib_error *e = NULL;
	struct hash h;

	CU_ASSERT_EQUAL(hash_parse(s, algo, &h, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e != NULL) {
		CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, msg_part));
	}
}

static void test_parse_rejects(void)
{
	expect_reject("sha256:abc", 0, "wrong length");
	expect_reject("sha257:ba7816bf", 0, "unknown hash algorithm");
	expect_reject("sha1:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		      HASH_SHA256, "should have type 'sha256'");
	expect_reject(abc_sha256_hex, 0, "does not include a type");
	/* 'e' is not in Nix's base-32 alphabet. */
	expect_reject("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5e", 0,
		      "invalid sha256 hash");
	/* Top bits beyond 256 set: the first character can be at most '1'. */
	expect_reject("sha256:zb8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", 0,
		      "invalid sha256 hash");
	expect_reject("sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 0,
		      "invalid sha256 hash");
	expect_reject("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0", 0, "invalid");
}

static void test_incremental_and_fold(void)
{
	cleanup_hash_ctx struct hash_ctx *c = hash_ctx_new(HASH_SHA256);
	struct hash a, b;
	unsigned char fold[20];

	hash_ctx_update(c, "a", 1);
	hash_ctx_update(c, "bc", 2);
	hash_ctx_final(c, &a);
	hash_string(HASH_SHA256, "abc", &b);
	CU_ASSERT(hash_equal(&a, &b));
	hash_ctx_reset(c);
	hash_ctx_update(c, "abc", 3);
	hash_ctx_final(c, &a);
	CU_ASSERT(hash_equal(&a, &b));
	hash_fold(&a, fold, sizeof(fold));
	CU_ASSERT_EQUAL(fold[0], a.bytes[0] ^ a.bytes[20]);
	CU_ASSERT_EQUAL(fold[12], a.bytes[12]);
}

static void test_base32_roundtrip(void)
{
	unsigned char in[64], out[64];
	char enc[128];

	for (size_t n = 1; n <= sizeof(in); n++) {
		for (size_t i = 0; i < n; i++)
			in[i] = (unsigned char)(i * 37 + n);
		base32_encode(in, n, enc);
		CU_ASSERT_EQUAL(strlen(enc), base32_encoded_len(n));
		CU_ASSERT_EQUAL(base32_decode(enc, strlen(enc), out, n), 0);
		CU_ASSERT_EQUAL(memcmp(in, out, n), 0);
	}
}

/*
 * Nix 2.8 normalised these outputHash values (base-32, SRI, prefixed) into
 * the hex digests of the .drv files in tests/data/derivations; both
 * directions must agree with it, for every digest size.
 */
static void test_nix_vectors(void)
{
	static const struct {
		const char *given, *hex;
		enum hash_enc_check {
			B32,
			SRI
		} back;
	} v[] = {
		{ "md5:56cxf1akjnr3sk904c4rhy9m4x", "9dd4e461268c8034f5c8564e155c67a6", B32 },
		{ "sha1:f8h5qy03cm8knz7xmamq8a9aqn7avxhi",
		  "11f6ad8ec52a2984abaafd7c3b516503785c2072", B32 },
		{ "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
		  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", B32 },
		{ "sha512:"
		  "1igw6jma2fig1c5x21kji2p42s4z47c4y4li0mhvlwcngg44qvc32r3i7d44gmlz2br4ifmni97"
		  "z4parhgkml8mh612smj9ii2d9ax4",
		  "a4abd4448c49562d828115d13a1fccea927f52b4d5459297f8b43e42da89238bc13626e43dcb38dd"
		  "b08"
		  "2488927ec904fb42057443983e88585179d50551afe62",
		  B32 },
		{ "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/"
		  "SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGl"
		  "ODJ6+SfaPg==",
		  "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0"
		  "ff8"
		  "318d2877eec2f63b931bd47417a81a538327af927da3e",
		  SRI },
		{ "sha256-LKC4zplvhl2zdhm/6RAjVZMFqtgVgEL8bdsO8dQ8W2c=",
		  "2ca0b8ce996f865db37619bfe91023559305aad8158042fc6ddb0ef1d43c5b67", SRI },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *hex = NULL, *back = NULL;
		struct hash h;

		CU_ASSERT_EQUAL(hash_parse(v[i].given, 0, &h, &e), 0);
		if (e != NULL)
			continue;
		hex = hash_to_string(&h, HASH_ENC_BASE16, false);
		CU_ASSERT_STRING_EQUAL(hex, v[i].hex);
		back = hash_to_string(&h, v[i].back == B32 ? HASH_ENC_BASE32 : HASH_ENC_SRI,
				      v[i].back == B32);
		CU_ASSERT_STRING_EQUAL(back, v[i].given);
	}
}

static CU_TestInfo tests[] = {
	{ "digests", test_digests },
	{ "encodings", test_encodings },
	{ "parse every form", test_parse_forms },
	{ "parse rejects", test_parse_rejects },
	{ "incremental and fold", test_incremental_and_fold },
	{ "base32 round trip", test_base32_roundtrip },
	{ "Nix 2.8 vectors", test_nix_vectors },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "hash", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

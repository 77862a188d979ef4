#include "config.h"

#include <stdlib.h>
#include <string.h>

/*
 * The one-shot digest functions of libcrypto, not EVP: EVP's first use loads
 * the OpenSSL configuration and initialises its providers, about 1 ms that
 * every short-lived nib process (one build, one query) would pay, and these
 * four fixed algorithms need none of it.  OpenSSL 3 marks them deprecated
 * but keeps them.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h> /* EVP_EncodeBlock/DecodeBlock: base64, no providers */
#include <openssl/md5.h>
#include <openssl/sha.h>

#include "hash.h"
#include "util.h"
#include "banned.h"

static const char base32_chars[] = "0123456789abcdfghijklmnpqrsvwxyz";

struct hash_ctx {
	enum hash_algo algo;
	union {
		MD5_CTX md5;
		SHA_CTX sha1;
		SHA256_CTX sha256;
		SHA512_CTX sha512;
	} u;
};

size_t hash_algo_size(enum hash_algo algo)
{
	switch (algo) {
	case HASH_MD5:
		return 16;
	case HASH_SHA1:
		return 20;
	case HASH_SHA256:
		return 32;
	case HASH_SHA512:
		return 64;
	default:
		return 0;
	}
}

const char *hash_algo_name(enum hash_algo algo)
{
	switch (algo) {
	case HASH_MD5:
		return "md5";
	case HASH_SHA1:
		return "sha1";
	case HASH_SHA256:
		return "sha256";
	case HASH_SHA512:
		return "sha512";
	default:
		return "unknown";
	}
}

static int algo_from_name(const char *name, size_t len, enum hash_algo *ret)
{
	for (int a = HASH_MD5; a < _HASH_ALGO_MAX; a++) {
		const char *n = hash_algo_name(a);
		if (strlen(n) == len && memcmp(n, name, len) == 0) {
			*ret = a;
			return 0;
		}
	}
	return -1;
}

int hash_algo_parse(const char *name, enum hash_algo *ret, struct nib_error **err)
{
	if (algo_from_name(name, strlen(name), ret) < 0)
		return nib_error_set(
			err, NIB_E_INVALID, 0,
			"unknown hash algorithm '%s' (expected md5, sha1, sha256 or sha512)", name);
	return 0;
}

struct hash_ctx *hash_ctx_new(enum hash_algo algo)
{
	struct hash_ctx *c;

	if (hash_algo_size(algo) == 0)
		abort();
	c = xcalloc(1, sizeof(*c));
	c->algo = algo;
	hash_ctx_reset(c);
	return c;
}

void hash_ctx_update(struct hash_ctx *ctx, const void *data, size_t len)
{
	int ok = 1;

	if (len == 0)
		return;
	switch (ctx->algo) {
	case HASH_MD5:
		ok = MD5_Update(&ctx->u.md5, data, len);
		break;
	case HASH_SHA1:
		ok = SHA1_Update(&ctx->u.sha1, data, len);
		break;
	case HASH_SHA256:
		ok = SHA256_Update(&ctx->u.sha256, data, len);
		break;
	case HASH_SHA512:
		ok = SHA512_Update(&ctx->u.sha512, data, len);
		break;
	default:
		abort();
	}
	if (ok != 1)
		abort();
}

void hash_ctx_final(struct hash_ctx *ctx, struct hash *ret)
{
	int ok = 1;

	memset(ret, 0, sizeof(*ret));
	ret->algo = ctx->algo;
	switch (ctx->algo) {
	case HASH_MD5:
		ok = MD5_Final(ret->bytes, &ctx->u.md5);
		break;
	case HASH_SHA1:
		ok = SHA1_Final(ret->bytes, &ctx->u.sha1);
		break;
	case HASH_SHA256:
		ok = SHA256_Final(ret->bytes, &ctx->u.sha256);
		break;
	case HASH_SHA512:
		ok = SHA512_Final(ret->bytes, &ctx->u.sha512);
		break;
	default:
		abort();
	}
	if (ok != 1)
		abort();
}

void hash_ctx_reset(struct hash_ctx *ctx)
{
	int ok = 1;

	switch (ctx->algo) {
	case HASH_MD5:
		ok = MD5_Init(&ctx->u.md5);
		break;
	case HASH_SHA1:
		ok = SHA1_Init(&ctx->u.sha1);
		break;
	case HASH_SHA256:
		ok = SHA256_Init(&ctx->u.sha256);
		break;
	case HASH_SHA512:
		ok = SHA512_Init(&ctx->u.sha512);
		break;
	default:
		abort();
	}
	if (ok != 1)
		abort();
}

void hash_ctx_free(struct hash_ctx *ctx)
{
	free(ctx);
}

void hash_buffer(enum hash_algo algo, const void *data, size_t len, struct hash *ret)
{
	struct hash_ctx c = { .algo = algo };

	if (hash_algo_size(algo) == 0)
		abort();
	hash_ctx_reset(&c);
	hash_ctx_update(&c, data, len);
	hash_ctx_final(&c, ret);
}

void hash_string(enum hash_algo algo, const char *s, struct hash *ret)
{
	hash_buffer(algo, s, strlen(s), ret);
}

size_t base32_encoded_len(size_t n)
{
	return n == 0 ? 0 : (n * 8 - 1) / 5 + 1;
}

bool base32_valid_char(char c)
{
	return c != '\0' && strchr(base32_chars, c) != NULL;
}

void base32_encode(const unsigned char *bytes, size_t n, char *out)
{
	size_t len = base32_encoded_len(n);
	size_t pos = 0;

	/* Nix emits the 5-bit groups from the most significant end of a
	 * little-endian bit string, so the last byte comes out first. */
	for (size_t k = len; k-- > 0;) {
		size_t b = k * 5, i = b / 8, j = b % 8;
		unsigned c = (unsigned)bytes[i] >> j;
		if (i + 1 < n)
			c |= (unsigned)bytes[i + 1] << (8 - j);
		out[pos++] = base32_chars[c & 31];
	}
	out[pos] = '\0';
}

int base32_decode(const char *s, size_t slen, unsigned char *out, size_t n)
{
	if (slen != base32_encoded_len(n))
		return -1;
	memset(out, 0, n);
	for (size_t k = 0; k < slen; k++) {
		char c = s[slen - k - 1];
		const char *p = c ? strchr(base32_chars, c) : NULL;
		unsigned digit;
		size_t b = k * 5, i = b / 8, j = b % 8;

		if (p == NULL)
			return -1;
		digit = (unsigned)(p - base32_chars);
		out[i] |= (unsigned char)(digit << j);
		if (i + 1 < n)
			out[i + 1] |= (unsigned char)(digit >> (8 - j));
		else if (digit >> (8 - j))
			return -1;
	}
	return 0;
}

void base16_encode(const unsigned char *bytes, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int base16_decode(const char *s, size_t slen, unsigned char *out, size_t n)
{
	if (slen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void base64_encode(const unsigned char *bytes, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, bytes, (int)n);
}

int base64_decode(const char *s, size_t slen, unsigned char *out, size_t n)
{
	unsigned char buf[HASH_MAX_SIZE + 3];
	size_t pad = 0;
	int r;

	if (slen != base64_encoded_len(n) || n > HASH_MAX_SIZE)
		return -1;
	for (size_t i = 0; i < slen; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=' && i >= slen - 2) {
			pad++;
			continue;
		}
		if (!ok || pad > 0)
			return -1;
	}
	r = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)slen);
	if (r < 0 || (size_t)r - pad != n)
		return -1;
	memcpy(out, buf, n);
	return 0;
}

char *hash_to_string(const struct hash *h, enum hash_encoding enc, bool with_algo)
{
	size_t n = hash_algo_size(h->algo);
	char buf[2 * HASH_MAX_SIZE + 1];

	switch (enc) {
	case HASH_ENC_BASE16:
		base16_encode(h->bytes, n, buf);
		break;
	case HASH_ENC_BASE32:
		base32_encode(h->bytes, n, buf);
		break;
	case HASH_ENC_BASE64:
	case HASH_ENC_SRI:
		base64_encode(h->bytes, n, buf);
		break;
	default:
		abort();
	}
	if (enc == HASH_ENC_SRI)
		return xasprintf("%s-%s", hash_algo_name(h->algo), buf);
	if (with_algo)
		return xasprintf("%s:%s", hash_algo_name(h->algo), buf);
	return xstrdup(buf);
}

static int parse_digest(const char *d, enum hash_algo algo, bool sri, struct hash *ret,
			const char *whole, struct nib_error **err)
{
	size_t n = hash_algo_size(algo), len = strlen(d);
	struct hash h = { .algo = algo };
	int r = -1;

	if (sri)
		r = base64_decode(d, len, h.bytes, n);
	else if (len == 2 * n)
		r = base16_decode(d, len, h.bytes, n);
	else if (len == base32_encoded_len(n))
		r = base32_decode(d, len, h.bytes, n);
	else if (len == base64_encoded_len(n))
		r = base64_decode(d, len, h.bytes, n);
	else
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "hash '%s' has wrong length for hash algorithm '%s'", whole,
				     hash_algo_name(algo));
	if (r < 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "invalid %s hash '%s'",
				     hash_algo_name(algo), whole);
	*ret = h;
	return 0;
}

int hash_parse(const char *s, enum hash_algo algo, struct hash *ret, struct nib_error **err)
{
	const char *colon = strchr(s, ':'), *dash = strchr(s, '-');
	enum hash_algo named;

	if (colon != NULL || (dash != NULL && (colon == NULL || dash < colon))) {
		bool sri = colon == NULL;
		const char *sep = sri ? dash : colon;
		if (algo_from_name(s, (size_t)(sep - s), &named) < 0)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "hash '%s' names an unknown hash algorithm", s);
		if (algo != 0 && named != algo)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "hash '%s' should have type '%s'", s,
					     hash_algo_name(algo));
		return parse_digest(sep + 1, named, sri, ret, s, err);
	}
	if (algo == 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "hash '%s' does not include a type, nor is the type otherwise "
				     "known from context",
				     s);
	return parse_digest(s, algo, false, ret, s, err);
}

bool hash_equal(const struct hash *a, const struct hash *b)
{
	return a->algo == b->algo && memcmp(a->bytes, b->bytes, hash_algo_size(a->algo)) == 0;
}

void hash_fold(const struct hash *h, unsigned char *out, size_t n)
{
	size_t len = hash_algo_size(h->algo);

	memset(out, 0, n);
	for (size_t i = 0; i < len; i++)
		out[i % n] ^= h->bytes[i];
}

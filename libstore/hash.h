/*
 * hash.h - content hashes and their text encodings.  The only module that
 * includes OpenSSL.
 *
 * Encodings are Nix's: base16 (lowercase hex), Nix base-32 (alphabet
 * "0123456789abcdfghijklmnpqrsvwxyz", bytes taken from the end), base64
 * (standard, padded), SRI ("sha256-<base64>"), and "algo:<digest>".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum hash_algo {
	HASH_MD5 = 1,
	HASH_SHA1,
	HASH_SHA256,
	HASH_SHA512,
	_HASH_ALGO_MAX
};

enum hash_encoding {
	HASH_ENC_BASE16,
	HASH_ENC_BASE32,
	HASH_ENC_BASE64,
	HASH_ENC_SRI,
	_HASH_ENC_MAX
};

#define HASH_MAX_SIZE 64

struct hash {
	enum hash_algo algo;
	unsigned char bytes[HASH_MAX_SIZE]; /* hash_algo_size(algo) bytes are used */
};

/* Digest size in bytes; 0 for an invalid algo. */
size_t hash_algo_size(enum hash_algo algo);
/* "md5", "sha1", "sha256", "sha512"; "unknown" for an invalid algo. */
const char *hash_algo_name(enum hash_algo algo);
/* Parse an algorithm name.  Returns 0, or -1 with an error naming it. */
int hash_algo_parse(const char *name, enum hash_algo *ret, struct nib_error **err);

/* Incremental hashing; a context is single-use (final frees nothing). */
struct hash_ctx;
struct hash_ctx *hash_ctx_new(enum hash_algo algo); /* aborts on OOM / invalid algo */
void hash_ctx_update(struct hash_ctx *ctx, const void *data, size_t len);
/* Finish; the context may be reused after hash_ctx_reset. */
void hash_ctx_final(struct hash_ctx *ctx, struct hash *ret);
void hash_ctx_reset(struct hash_ctx *ctx);
void hash_ctx_free(struct hash_ctx *ctx); /* NULL-safe */

static inline void hash_ctx_freep(struct hash_ctx **c)
{
	hash_ctx_free(*c);
}
#define cleanup_hash_ctx __attribute__((cleanup(hash_ctx_freep)))

/* One-shot. */
void hash_buffer(enum hash_algo algo, const void *data, size_t len, struct hash *ret);
/* Hash a NUL-terminated string. */
void hash_string(enum hash_algo algo, const char *s, struct hash *ret);

/* Length of the Nix base-32 form of n bytes (without NUL). */
size_t base32_encoded_len(size_t n);
/* Write base32_encoded_len(n) characters plus a NUL to out. */
void base32_encode(const unsigned char *bytes, size_t n, char *out);
/*
 * Decode exactly base32_encoded_len(n) characters from s into n bytes.
 * Returns 0, or -1 when a character is outside the alphabet or the encoding
 * has bits set beyond n bytes.
 */
int base32_decode(const char *s, size_t slen, unsigned char *out, size_t n);
bool base32_valid_char(char c);

void base16_encode(const unsigned char *bytes, size_t n, char *out); /* 2n chars + NUL */
int base16_decode(const char *s, size_t slen, unsigned char *out, size_t n);

size_t base64_encoded_len(size_t n);
void base64_encode(const unsigned char *bytes, size_t n, char *out);
/* Decode exactly into n bytes; padding required. */
int base64_decode(const char *s, size_t slen, unsigned char *out, size_t n);

/*
 * Render a hash.  with_algo adds "algo:" for base16/32/64 (SRI always names
 * it).  Returns a newly allocated string.
 */
char *hash_to_string(const struct hash *h, enum hash_encoding enc, bool with_algo);

/*
 * Parse any form Nix accepts: "algo:<base16|base32|base64>", SRI
 * "algo-<base64>", or a bare digest when algo is given (non-zero).  The
 * encoding of a digest is recognised by its length.  If algo is non-zero and
 * the string names a different algorithm, that is an error.
 */
int hash_parse(const char *s, enum hash_algo algo, struct hash *ret, struct nib_error **err);

/* Compare two hashes (same algo and bytes). */
bool hash_equal(const struct hash *a, const struct hash *b);

/*
 * Nix's compressHash: XOR-fold a hash into n bytes (byte i goes to i % n).
 */
void hash_fold(const struct hash *h, unsigned char *out, size_t n);

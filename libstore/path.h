/*
 * path.h - store paths: parse, validate, print, compute.  Pure code.
 *
 * A store path is "<store-dir>/<hash>-<name>": hash is 32 characters of Nix
 * base-32 (160 bits), name is 1..211 characters of [A-Za-z0-9+-._?=], not
 * starting with '.' (Nix's rules).  struct store_path holds the base name's
 * two parts by value, so it needs no allocation and no free.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "hash.h"

#define STORE_PATH_HASH_LEN 32
#define STORE_PATH_MAX_NAME 211
/* "hash-name" plus NUL. */
#define STORE_PATH_BASE_MAX (STORE_PATH_HASH_LEN + 1 + STORE_PATH_MAX_NAME + 1)

struct store_path {
	char hash[STORE_PATH_HASH_LEN + 1];
	char name[STORE_PATH_MAX_NAME + 1];
};

/* Is name a valid store path name (charset, length, no leading '.')? */
bool store_path_name_valid(const char *name, size_t len);

/* Parse a base name "hash-name".  Errors say what is wrong and quote it. */
int store_path_parse_base(const char *base, struct store_path *ret, struct nib_error **err);

/*
 * Parse a full path that must lie directly in store_dir ("a path outside the
 * store" is an error).  Trailing components ("/nib/store/h-n/bin/x") are
 * rejected unless allow_subpath, in which case they are ignored.
 */
int store_path_parse(const char *store_dir, const char *full, bool allow_subpath,
		     struct store_path *ret, struct nib_error **err);

/* "hash-name" into buf (size STORE_PATH_BASE_MAX). Returns buf. */
char *store_path_base(const struct store_path *p, char *buf);
/* "<store_dir>/hash-name", newly allocated. */
char *store_path_to_string(const char *store_dir, const struct store_path *p);
/* Order as Nix sorts paths (by base name). */
int store_path_cmp(const struct store_path *a, const struct store_path *b);
bool store_path_is_drv(const struct store_path *p); /* name ends in ".drv" */

/*
 * Nix's makeStorePath: fingerprint "<type>:sha256:<hex of inner>:<store_dir>:<name>",
 * SHA-256 it, XOR-fold to 20 bytes, base-32.  inner must be SHA-256.
 * type is e.g. "source", "text:/nib/store/a:/nib/store/b", "output:out".
 */
int store_path_make(const char *type, const struct hash *inner, const char *store_dir,
		    const char *name, struct store_path *ret, struct nib_error **err);

/*
 * Text paths (.drv files, AddTextToStore): type "text" + ":<ref>" for each
 * reference (full paths, sorted), inner = sha256 of the contents.
 */
int store_path_make_text(const char *store_dir, const char *name, const struct hash *content,
			 char *const *refs, struct store_path *ret, struct nib_error **err);

/*
 * Source paths (nib add, AddToStore recursive sha256): type "source" +
 * ":<ref>"... + (":self" if self_ref), inner = NAR sha256.
 */
int store_path_make_source(const char *store_dir, const char *name, const struct hash *nar,
			   char *const *refs, bool self_ref, struct store_path *ret,
			   struct nib_error **err);

/*
 * Fixed-output paths: recursive sha256 is a source path (with refs);
 * anything else is "output:out" over sha256("fixed:out:" + ("r:" if
 * recursive) + algo + ":" + hex + ":"), and refs must be empty.
 */
int store_path_make_fixed(const char *store_dir, const char *name, bool recursive,
			  const struct hash *h, char *const *refs, struct store_path *ret,
			  struct nib_error **err);

/*
 * Output paths of input-addressed derivations: "output:<output>" over the
 * derivation's masked hash-modulo; name is drv_name, or drv_name-<output>
 * when output is not "out".
 */
int store_path_make_output(const char *store_dir, const char *drv_name, const char *output,
			   const struct hash *modulo, struct store_path *ret,
			   struct nib_error **err);

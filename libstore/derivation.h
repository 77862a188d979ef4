/*
 * derivation.h - derivations: the in-memory model, the ATerm (.drv) and JSON
 * forms, Nix's hash modulo, output paths and the .drv path.  Pure code: no
 * I/O; input derivations are fetched through a caller's callback.
 *
 * The model is canonical, as Nix keeps it: outputs sorted by name, input
 * derivations by path (each with its sorted, distinct output names), input
 * sources sorted, env sorted by key, no duplicates anywhere.  The parsers
 * produce that form and reject input that is not in it (an ATerm that is not
 * sorted, repeats a key or escapes differently is not one Nix wrote), so
 * derivation_print_aterm(parse(x)) == x byte for byte.  Code that builds a
 * derivation by hand calls derivation_canonicalize() before printing or
 * hashing it.
 *
 * All strings are NUL-terminated and contain no NUL byte (the parsers reject
 * NUL).  Store paths are kept as full paths ("<store-dir>/<hash>-<name>")
 * and were validated against the store dir given to the parser.
 *
 * Limits: DRV_MAX_TEXT bytes of input, DRV_MAX_ITEMS list/map entries in
 * total, DRV_MAX_JSON_DEPTH levels of JSON nesting, DRV_MAX_INPUT_DEPTH
 * levels of input derivations; past them the input is rejected, so hostile
 * input cannot exhaust memory or stack.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "hash.h"
#include "path.h"
#include "strbuf.h"

#define DRV_MAX_TEXT ((size_t)64 << 20)
#define DRV_MAX_ITEMS ((size_t)1 << 20)
#define DRV_MAX_JSON_DEPTH 64
#define DRV_MAX_INPUT_DEPTH 1024

enum drv_output_kind {
	DRV_OUT_INPUT_ADDRESSED, /* path known: computed from the hash modulo */
	DRV_OUT_CA_FIXED,	 /* fixed-output: method and hash given, path follows */
	DRV_OUT_CA_FLOATING,	 /* content-addressed, hash known only after the build */
	DRV_OUT_DEFERRED,	 /* input-addressed, path not known yet */
	DRV_OUT_IMPURE,		 /* impure derivation output */
	_DRV_OUT_KIND_MAX
};

/* How a content-addressed output is hashed (ATerm prefix / JSON "method"). */
enum drv_ca_method {
	DRV_CA_FLAT, /* ""      "flat": the file's bytes */
	DRV_CA_NAR,  /* "r:"    "nar": the NAR serialisation ("recursive") */
	DRV_CA_TEXT, /* "text:" "text": a text file with references (sha256) */
	DRV_CA_GIT,  /* "git:"  "git": git blob/tree hashing */
	_DRV_CA_METHOD_MAX
};

struct drv_output {
	char *name;
	enum drv_output_kind kind;
	/* INPUT_ADDRESSED: the path.  CA_FIXED: the path as given (NULL when
	 * not given yet; see derivation_fill_outputs).  Otherwise NULL. */
	char *path;
	/* CA_FIXED, CA_FLOATING, IMPURE: the method and hash.algo; CA_FIXED
	 * also the digest in hash.bytes. */
	enum drv_ca_method method;
	struct hash hash;
};

struct drv_input {
	char *path;	/* full path of the input .drv */
	char **outputs; /* wanted outputs, sorted, distinct, NULL-terminated */
	size_t n_outputs;
};

struct drv_env {
	char *key, *value;
};

struct derivation {
	char *name; /* JSON "name", else env "name" or structured attrs' "name"; may be NULL */
	struct drv_output *outputs;
	size_t n_outputs;
	struct drv_input *inputs; /* input derivations */
	size_t n_inputs;
	char **srcs; /* input sources (NULL-terminated too) */
	size_t n_srcs;
	char *system;
	char *builder;
	char **args; /* NULL-terminated too */
	size_t n_args;
	struct drv_env *env;
	size_t n_env;
};

/* An empty derivation (all lists empty, strings NULL).  Aborts on OOM. */
struct derivation *derivation_new(void);
/* Free a derivation and everything it holds; NULL is fine. */
void derivation_free(struct derivation *d);
static inline void derivation_freep(struct derivation **d)
{
	derivation_free(*d);
}
#define cleanup_derivation __attribute__((cleanup(derivation_freep)))

/*
 * Sort every list and map the way Nix does and reject duplicates and values
 * the model cannot hold (missing system/builder, bad output names, an input
 * derivation without outputs).  Needed only after building or editing a
 * derivation by hand; the parsers already produce this form.
 */
int derivation_canonicalize(struct derivation *d, struct nib_error **err);

/* Env lookup (binary search); NULL when absent. */
const char *derivation_get_env(const struct derivation *d, const char *key);
/* Set or replace an env entry, keeping env sorted. */
void derivation_set_env(struct derivation *d, const char *key, const char *value);
/* The output called name, or NULL. */
struct drv_output *derivation_find_output(const struct derivation *d, const char *name);

/* "" / "r:" / "text:" / "git:" and "flat" / "nar" / "text" / "git". */
const char *drv_ca_method_prefix(enum drv_ca_method m);
const char *drv_ca_method_name(enum drv_ca_method m);

/*
 * Parse an ATerm .drv ("Derive([...],...)").  Paths must lie in store_dir.
 * The name is taken from env "name", or the "name" of structured attrs
 * (NULL when neither has one).  Errors name the
 * byte offset: "invalid derivation at byte 17: expected ',' but found ')'".
 * len may not exceed DRV_MAX_TEXT.  *ret is a new derivation.
 */
int derivation_parse_aterm(const char *text, size_t len, const char *store_dir,
			   struct derivation **ret, struct nib_error **err);

/*
 * Parse a JSON derivation.  Accepted forms:
 *  - Nix 2.8's `nix show-derivation` output: an object with one member,
 *    keyed by the .drv path, whose value is the derivation;
 *  - a bare derivation object (`nix derivation add`): unversioned (Nix 2.8
 *    to 2.31: full paths, "hashAlgo": "r:sha256", inputDrvs as lists or
 *    {outputs, dynamicOutputs}), version 3 (base names, "method" +
 *    "hashAlgo"), version 4 and 5 (inputs: {srcs, drvs}, hash as SRI or
 *    {algorithm, format, hash}, structuredAttrs as an object).
 * Output paths may be given, "" or absent; absent ones are left for
 * derivation_fill_outputs.  structuredAttrs becomes env "__json" (compact,
 * keys sorted, as Nix writes it).  Unknown members are ignored; dynamic
 * derivation inputs are rejected.  Errors say where: "at byte N (line L,
 * column C)" for syntax, "at outputs.out.hash" for content.
 * ret_drv_path (may be NULL) receives the key of the show-derivation form,
 * as a full path, or NULL for a bare object.
 */
int derivation_parse_json(const char *text, size_t len, const char *store_dir, char **ret_drv_path,
			  struct derivation **ret, struct nib_error **err);

/*
 * Detect the form (an ATerm starts with "Derive(", JSON with '{', leading
 * white space allowed) and parse it.  ret_drv_path as for JSON (always NULL
 * for an ATerm).
 */
int derivation_parse_any(const char *text, size_t len, const char *store_dir, char **ret_drv_path,
			 struct derivation **ret, struct nib_error **err);

/* Append the ATerm of d to out (exactly as Nix writes a .drv). */
void derivation_print_aterm(const struct derivation *d, struct strbuf *out);

/*
 * Append Nix 2.8's `nix show-derivation` JSON for n derivations (an object
 * keyed by each full .drv path, 2-space indentation, Nix's escapes) and a
 * final newline.
 */
void derivation_print_json(const struct derivation *const *drvs, const char *const *drv_paths,
			   size_t n, struct strbuf *out);

/* Is d a fixed-output derivation (its outputs are CA_FIXED)? */
bool derivation_is_fixed_output(const struct derivation *d);

/*
 * requiredSystemFeatures: from env (space separated) or, with structured
 * attrs, from the "__json" list.  A new NULL-terminated vector (possibly
 * empty); error only for unparsable __json.
 */
int derivation_required_features(const struct derivation *d, char ***ret, struct nib_error **err);

/*
 * A Boolean attribute such as __noChroot, read as Nix reads it: with
 * structured attrs the "__json" value must be a JSON Boolean (absent is
 * false); otherwise the env variable is true exactly when it is "1".
 * Errors: unparsable __json, or a non-Boolean value there (NIB_E_INVALID).
 */
int derivation_get_bool_attr(const struct derivation *d, const char *name, bool *ret,
			     struct nib_error **err);

enum drv_type {
	DRV_TYPE_INPUT_ADDRESSED, /* all outputs input-addressed */
	DRV_TYPE_DEFERRED,	  /* all outputs deferred */
	DRV_TYPE_FIXED,		  /* one CA_FIXED output called "out" */
	DRV_TYPE_FLOATING,	  /* all CA_FLOATING with one hash algorithm */
	DRV_TYPE_IMPURE,	  /* all IMPURE */
	_DRV_TYPE_MAX
};

/* Classify d, rejecting what Nix rejects (mixed kinds, several fixed outputs, ...). */
int derivation_type(const struct derivation *d, enum drv_type *ret, struct nib_error **err);

/*
 * Input derivations for hashing are fetched by a callback: given the full
 * path of a .drv, return a new derivation (the caller frees it), or NULL
 * with *err set.
 */
typedef struct derivation *(*drv_resolve_fn)(void *userdata, const char *drv_path,
					     struct nib_error **err);

/*
 * A hashing context: the store dir, the resolver and a memo of the hash
 * modulo of every input derivation seen (so a closure is hashed once).
 * resolve may be NULL when no derivation has inputs.
 */
struct drv_hasher;
struct drv_hasher *drv_hasher_new(const char *store_dir, drv_resolve_fn resolve, void *userdata);
void drv_hasher_free(struct drv_hasher *h); /* NULL-safe */
static inline void drv_hasher_freep(struct drv_hasher **h)
{
	drv_hasher_free(*h);
}
#define cleanup_drv_hasher __attribute__((cleanup(drv_hasher_freep)))

/* Nix's hashDerivationModulo: one hash per output. */
struct drv_modulo {
	bool deferred;	/* depends on floating/impure/deferred derivations */
	size_t n;	/* = number of outputs */
	char **outputs; /* output names, sorted */
	struct hash *hashes;
};
void drv_modulo_release(struct drv_modulo *m); /* frees members; NULL-safe */

/*
 * Compute the hash modulo of d.  Fixed-output: sha256("fixed:out:<method
 * prefix><algo>:<hex>:<output path>") per output.  Impure: sha256("impure")
 * per output (deferred).  Otherwise sha256 of the ATerm with each input
 * derivation replaced by the hex of its hash modulo (outputs merged per
 * hash), and, when mask is true, output paths and the env vars named after
 * outputs blanked.  Input derivations come through h's resolver and are
 * memoised by path; cycles and chains deeper than DRV_MAX_INPUT_DEPTH are
 * errors.
 */
int derivation_hash_modulo(struct drv_hasher *h, const struct derivation *d, bool mask,
			   struct drv_modulo *ret, struct nib_error **err);

/*
 * The output paths d should have: one entry per output (parallel to
 * d->outputs), a new full path for input-addressed and fixed outputs, NULL
 * for floating, deferred and impure ones.  Input-addressed paths come from
 * the masked hash modulo; deferred outputs get no path here (see
 * derivation_fill_outputs).  *ret is a new array of n_outputs entries; free
 * each entry and the array (drv_paths_free).
 */
int derivation_output_paths(struct drv_hasher *h, const struct derivation *d, char ***ret,
			    struct nib_error **err);
void drv_paths_free(char **paths, size_t n);

/*
 * Check that the given output paths are the ones Nix would compute and that
 * each such output's env var holds its path.  Errors name the output, the
 * given and the expected path: "output 'out' of derivation 'hello' has path
 * '/nib/store/…', expected '/nib/store/…'".
 */
int derivation_check_outputs(struct drv_hasher *h, const struct derivation *d,
			     struct nib_error **err);

/*
 * Complete a derivation read without output paths (what `nix derivation
 * add` takes): fixed outputs get their path; an all-deferred derivation
 * whose inputs are not deferred becomes input-addressed, with paths from the
 * masked hash modulo.  Env vars named after such outputs are set when
 * absent or empty (a different value is an error).  An absent env var is
 * hashed as present and empty, as Nix's derivation primop produces it; Nix
 * 2.33+ hashes it absent, which yields a derivation its own check rejects.
 * Then checks as derivation_check_outputs.
 *
 * For `nib derivation add`: derivation_parse_any, derivation_fill_outputs,
 * derivation_store_path (which also returns the ATerm to store) and
 * derivation_references.
 */
int derivation_fill_outputs(struct drv_hasher *h, struct derivation *d, struct nib_error **err);

/*
 * The references of the .drv itself: input sources and input derivations,
 * sorted, distinct, as a new NULL-terminated vector of full paths (caller
 * frees with strv_free).
 */
char **derivation_references(const struct derivation *d);

/*
 * The .drv store path: a text path named "<name>.drv" over the ATerm, with
 * the input sources and input derivations as references.  Needs d->name.
 * ret_aterm (may be NULL) receives the ATerm text (caller frees) and
 * ret_len its length.
 */
int derivation_store_path(const char *store_dir, const struct derivation *d, struct store_path *ret,
			  char **ret_aterm, size_t *ret_len, struct nib_error **err);

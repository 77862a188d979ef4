/*
 * derivation-internal.h - helpers shared by derivation.c (model, ATerm),
 * derivation-json.c and derivation-hash.c.  Not part of the public API;
 * unit tests may use it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "derivation.h"
#include "strbuf.h"

/* Output names follow store path name rules (they end up in output paths). */
bool drv_output_name_valid(const char *name);

/* Sort a NULL-terminated vector of n strings as a set (drops repeats). */
void drv_strv_sort_unique(char **v, size_t *n);

/*
 * Sort outputs, inputs and env; repeated output names, input paths or env
 * keys are errors (prefixed with where).  Sorts input output-name lists and
 * sources as sets.
 */
int drv_sort_maps(struct derivation *d, const char *where, struct nib_error **err);

/*
 * Print the ATerm.  mask blanks output paths and env vars named after
 * outputs; repl (when not NULL) replaces the input derivations (hash
 * modulo).
 */
void drv_print_aterm_ex(const struct derivation *d, bool mask, const struct drv_input *repl,
			size_t n_repl, struct strbuf *o);

/*
 * The derivation's name from env "name", else from the "name" of structured
 * attrs (env "__json"); NULL when neither has one.  Newly allocated.
 */
char *drv_name_from_env(const struct derivation *d);

/* "r:sha256" -> NAR + SHA256.  Returns 0, or -1 if unknown. */
int drv_parse_method_algo(const char *s, enum drv_ca_method *ret_m, enum hash_algo *ret_a);

/*
 * Compact JSON with object keys sorted, escaped as nlohmann::json::dump()
 * does: how Nix writes structured attrs into env "__json".
 */
struct cJSON;
int drv_json_dump_sorted(const struct cJSON *v, struct strbuf *o, struct nib_error **err);

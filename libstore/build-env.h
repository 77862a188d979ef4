/*
 * build-env.h - what a derivation's special attributes add to its build,
 * beyond the plain environment that build.c gives every builder:
 *
 *  - structured attributes (`__structuredAttrs = true`, env "__json"): the
 *    builder gets none of the derivation's env entries; instead the build
 *    directory holds .attrs.json (the attributes, "outputs" rewritten to
 *    a map output name -> output path, exportReferencesGraph results added)
 *    and .attrs.sh (bash `declare` statements for what bash can hold), and
 *    NIX_ATTRS_JSON_FILE / NIX_ATTRS_SH_FILE name them;
 *  - exportReferencesGraph: the closure of input paths, as JSON path
 *    information (structured) or as files in the build directory in
 *    `nix-store --register-validity` form (otherwise);
 *  - impureEnvVars: for fixed-output derivations, variables copied from the
 *    setting impure-env or from this process's environment;
 *  - output checks: allowedReferences, allowedRequisites,
 *    disallowedReferences, disallowedRequisites (from env, space separated),
 *    or with structured attributes the per-output "outputChecks" (the same
 *    four plus maxSize and maxClosureSize).
 *
 * Attributes are read as Nix reads them: with structured attributes from
 * the JSON (where the top-level reference attributes have no effect), else
 * from the env.  Malformed attributes are NIB_E_INVALID errors naming the
 * attribute; the reference checks fail with NIB_E_BUILD_FAILED naming the
 * output and the forbidden paths.
 *
 * Numbers in the JSON are held as doubles (cJSON): integers beyond 2^53
 * lose precision, and an integral float such as 2.0 is written as 2.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "strbuf.h"

struct derivation;
struct store;
struct store_path_info;

/* Does d use structured attributes (has env "__json")? */
bool build_env_is_structured(const struct derivation *d);

/* Where the files for the builder go and whom they belong to. */
struct build_env_dir {
	const char *host;   /* the build directory, as this process reaches it */
	const char *inside; /* the same directory as the builder sees it (NIX_BUILD_TOP) */
	uid_t uid;	    /* owner of the files written */
	gid_t gid;
};

/*
 * Check d's attributes before anything runs: structured attributes that
 * parse, impureEnvVars, exportReferencesGraph and outputChecks of the right
 * shapes, exportReferencesGraph naming store paths of store_dir.  Errors
 * are NIB_E_INVALID and name the attribute.
 */
int build_env_validate(const struct derivation *d, const char *store_dir, struct nib_error **err);

/*
 * Write the files d's attributes ask for into dir->host, before the
 * builder starts: with structured attributes .attrs.json and .attrs.sh,
 * otherwise one file per exportReferencesGraph entry.  closure is the
 * build's input closure (sorted, NULL-terminated): exportReferencesGraph
 * may only name paths in it.  Variables for the builder's environment are
 * appended to *vars as key, value pairs (NIX_ATTRS_JSON_FILE,
 * NIX_ATTRS_SH_FILE).  Files are created exclusively, never through a
 * symlink.
 */
int build_env_prepare(struct store *store, const struct derivation *d, char *const *closure,
		      const struct build_env_dir *dir, char ***vars, struct nib_error **err);

/*
 * The impureEnvVars of d as key, value pairs appended to *vars: each
 * variable's value from impure_env ("NAME=VALUE" words, the setting
 * impure-env; may be NULL), else from this process's environment, else "".
 * The caller asks only for fixed-output derivations.  Error: a malformed
 * attribute, or a name that is empty or holds '='.
 */
int build_env_impure_vars(const struct derivation *d, char *const *impure_env, char ***vars,
			  struct nib_error **err);

/*
 * Check d's new outputs: that they do not refer to each other in a cycle
 * (as Nix: "cycle detected in build of '…' in the references of output
 * 'dev' from output 'out'"), then d's output checks.  infos[i] describes
 * output d->outputs[i] (path, NAR size, references as scanned; not valid
 * yet).
 * Paths they refer to that are not outputs must be valid in store (their
 * closures and sizes are looked up there).  Returns 0 when every check
 * passes; otherwise NIB_E_BUILD_FAILED naming the output and the forbidden
 * paths (or NIB_E_INVALID for a malformed attribute).
 */
int build_env_check_outputs(struct store *store, const char *drv_path, const struct derivation *d,
			    const struct store_path_info *infos, struct nib_error **err);

/* ---- pure parts, for the unit tests ---- */

/* Append s quoted for sh: 'abc', each ' written as '\''. */
void build_env_shell_quote(struct strbuf *out, const char *s);

/*
 * The .attrs.sh text for a JSON object: for each member (sorted by key)
 * whose key is a shell variable name ([A-Za-z_][A-Za-z0-9_]*), a `declare`
 * of a string, integer, null (''), Boolean (1 or empty), a list of those
 * (-a) or an object of those (-A, keys sorted); other members (fractions,
 * nested lists and objects) are left out.  Error: json is not an object.
 */
int build_env_attrs_sh(const char *json, struct strbuf *out, struct nib_error **err);

/* One exportReferencesGraph entry of structured attributes, resolved. */
struct build_env_graph {
	const char *key;
	const struct store_path_info *infos; /* the closure, sorted by path */
	const uint64_t *closure_sizes;	     /* parallel to infos */
	size_t n;
};

/*
 * The .attrs.json and .attrs.sh texts of d (which has structured
 * attributes): its "__json" with "outputs" replaced by {name: path} and
 * each graph's key set to the list of its paths' information ({ca,
 * closureSize, narHash, narSize, path, references, valid}), written as
 * compact JSON with sorted keys.  Errors: invalid "__json", an output
 * without a path, a graph keyed "outputs".
 */
int build_env_structured(const struct derivation *d, const struct build_env_graph *graphs,
			 size_t n_graphs, struct strbuf *ret_json, struct strbuf *ret_sh,
			 struct nib_error **err);

/*
 * The `nix-store --register-validity` form of n paths without hashes or
 * derivers, as classic exportReferencesGraph files hold it: per path its
 * name, an empty line, the number of references and each reference.
 */
void build_env_validity_text(const struct store_path_info *infos, size_t n, struct strbuf *out);

/*
 * derivation-store.h - derivation files given on the command line, added to
 * the store (store-derivation.h reads and adds derivations themselves).
 *
 * Relative references (a nib extension for JSON derivation files, so that
 * files can refer to each other without knowing the store directory):
 *
 *   - a key of "inputDrvs" (or of "inputs.drvs") that starts with "./" or
 *     "../" names another JSON (or ATerm) derivation file, relative to the
 *     directory of the file that contains it.  That file is added first and
 *     the key becomes its .drv path;
 *   - an entry of "inputSrcs" (or "inputs.srcs") that starts with "./" or
 *     "../" names a file or directory that is added to the store as a
 *     source (like `nib add`) and replaced by its store path;
 *   - an "env" value, an "args" element or the "builder" that is exactly
 *     such a reference (one of the derivation's own inputs) becomes the store
 *     path it stands for: for a derivation file the path of its output
 *     "out", or of output OUT when written "REF!OUT" (which must be among
 *     the outputs the input lists).
 *
 * Anything else is left alone, so a file that uses no relative reference is
 * read exactly as Nix's JSON.  Files refer to each other in a DAG; cycles
 * and chains deeper than DRV_FILE_MAX_DEPTH are errors.
 *
 * Only the local store can be read today (NIB_E_UNSUPPORTED otherwise).
 */
#pragma once

#include "derivation.h"
#include "error.h"
#include "store-derivation.h"

struct store;

#define DRV_FILE_MAX_DEPTH 256

/*
 * A resolver for drv_hasher_new() that reads input derivations from the
 * store (userdata: the struct store).
 */
struct derivation *store_derivation_resolver(void *userdata, const char *drv_path,
					     struct nib_error **err);

/*
 * Add the derivation in the file at `file` (ATerm, or JSON with relative
 * references as described above, the files it refers to added first) and
 * return its .drv path.  Errors name the file.
 */
int store_add_derivation_file(struct store *store, const char *file, char **ret_drv_path,
			      struct nib_error **err);

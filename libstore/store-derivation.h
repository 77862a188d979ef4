/*
 * store-derivation.h - derivations in the store: read a valid .drv, add one.
 *
 * Adding a derivation is what `nib derivation add` and the daemon's
 * AddTextToStore of a .drv come down to: the inputs must be valid; output
 * paths that were left out are computed and the given ones are checked
 * (Nix's hash modulo, with input derivations read from the store); the ATerm
 * is stored as a text path "<name>.drv" whose references are the input
 * sources and input derivations.  Registering it records its outputs
 * (DerivationOutputs), which the collector's keep-outputs and the output
 * queries use.
 */
#pragma once

#include "error.h"

struct derivation;
struct store;

/*
 * Read and parse the valid derivation drv_path (a new derivation; its name
 * comes from the path when the ATerm does not say).  A path that is not
 * valid is NIB_E_NOT_FOUND.  Needs a local store.
 */
struct derivation *store_read_derivation(struct store *store, const char *drv_path,
					 struct nib_error **err);

/*
 * Add d: complete or check its output paths (d is updated in place), store
 * its ATerm, return the .drv path in *ret_path.  Adding a derivation that is
 * already valid returns its path.
 */
int store_add_derivation(struct store *store, struct derivation *d, char **ret_path,
			 struct nib_error **err);

/*
 * store-fixture.h - temporary local stores for the unit tests of the
 * store, the collector and the builder.
 */
#pragma once

#include "settings.h"
#include "store.h"

/*
 * Settings for a store under dir: store root <dir>/root, state directory
 * <dir>/<state_rel>, log directory <dir>/log, metadata not fsynced (the
 * tests' stores are thrown away).  store_dir replaces the logical store
 * directory unless NULL.  Caller frees with settings_free.
 */
struct settings *test_store_settings(const char *dir, const char *store_dir, const char *state_rel);

/* local_store_open, printing the error to stderr; NULL on failure. */
struct store *test_store_open(const struct settings *s);

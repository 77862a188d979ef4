/*
 * refscan.h - find which store path hash parts occur in a byte stream.
 *
 * Nix finds an output's references by scanning its NAR serialisation for the
 * 32-character hash parts of candidate paths.  The scanner is streaming:
 * feed it any chunking of the stream and a hash split across chunk
 * boundaries is still found.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct refscan;

/*
 * A scanner for n candidate hash parts (each STORE_PATH_HASH_LEN characters
 * of Nix base-32; copied).  Invalid candidates are an error.
 */
struct refscan *refscan_new(char *const *hash_parts, size_t n, struct nib_error **err);
void refscan_feed(struct refscan *rs, const void *data, size_t len);
/* Was candidate i seen? */
bool refscan_found(const struct refscan *rs, size_t i);
void refscan_free(struct refscan *rs); /* NULL-safe */

/* A nar_sink_fn that feeds a struct refscan (userdata). */
int refscan_sink(void *userdata, const void *data, size_t len, struct nib_error **err);

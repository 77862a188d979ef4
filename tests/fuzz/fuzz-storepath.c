/*
 * fuzz-storepath: store path parsing.  Whatever parses must print back to
 * the same text, and parse again to the same value; a name that parses must
 * be valid by store_path_name_valid.  The input is tried as a base name, as
 * a full path in /nix/store (with and without sub-paths) and as a name.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "path.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const struct store_path *p, const char *dir)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *full = store_path_to_string(dir, p);
	struct store_path q;
	char base[STORE_PATH_BASE_MAX];

	if (store_path_parse(dir, full, false, &q, &e) < 0 || store_path_cmp(p, &q) != 0)
		abort();
	if (store_path_parse_base(store_path_base(p, base), &q, &e) < 0 ||
	    store_path_cmp(p, &q) != 0)
		abort();
	if (!store_path_name_valid(p->name, strlen(p->name)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cleanup_free char *s = NULL;
	struct store_path p;
	struct hash h;

	if (size > 4096)
		return 0;
	s = xstrndup((const char *)data, size);
	{
		cleanup_error struct nib_error *e = NULL;
		if (store_path_parse_base(s, &p, &e) == 0) {
			char base[STORE_PATH_BASE_MAX];

			check_roundtrip(&p, "/nix/store");
			if (strcmp(store_path_base(&p, base), s) != 0)
				abort();
		} else if (e == NULL || e->msg == NULL) {
			abort();
		}
	}
	for (int sub = 0; sub < 2; sub++) {
		cleanup_error struct nib_error *e = NULL;
		if (store_path_parse("/nix/store", s, sub, &p, &e) == 0)
			check_roundtrip(&p, "/nix/store");
		else if (e == NULL)
			abort();
	}
	{
		cleanup_error struct nib_error *e = NULL;
		bool valid = store_path_name_valid(s, strlen(s));

		hash_string(HASH_SHA256, s, &h);
		if ((store_path_make("source", &h, "/nix/store", s, &p, &e) == 0) != valid)
			abort();
		if (valid)
			check_roundtrip(&p, "/nix/store");
	}
	return 0;
}

/*
 * fuzz-aterm: the ATerm parser.  The parser accepts only canonical input, so
 * whatever parses must print back byte for byte; its Nix 2.8 JSON must parse
 * back to the same ATerm; hashing and path computation must not crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "derivation.h"
#include "strbuf.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_derivation struct derivation *d = NULL;
	cleanup_derivation struct derivation *d2 = NULL;
	cleanup_strbuf struct strbuf a = STRBUF_INIT, j = STRBUF_INIT, b = STRBUF_INIT;
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new("/nix/store", NULL, NULL);
	cleanup_free char *key = NULL;
	cleanup_strv char **features = NULL;
	struct store_path sp;
	enum drv_type type;
	char **paths = NULL;
	const char *drv_path = "/nix/store/00000000000000000000000000000000-x.drv";

	if (derivation_parse_aterm((const char *)data, size, "/nix/store", &d, &e) < 0) {
		if (e == NULL || e->msg == NULL)
			abort();
		return 0;
	}
	derivation_print_aterm(d, &a);
	if (a.len != size || memcmp(a.buf, data, size) != 0)
		abort();

	if (derivation_store_path("/nix/store", d, &sp, NULL, NULL, &e) == 0) {
		key = store_path_to_string("/nix/store", &sp);
		drv_path = key;
	}
	nib_error_clear(&e);
	{
		const struct derivation *dv[1] = { d };
		const char *pv[1] = { drv_path };
		cleanup_free char *back = NULL;

		derivation_print_json(dv, pv, 1, &j);
		if (derivation_parse_json(j.buf, j.len, "/nix/store", &back, &d2, &e) < 0)
			abort();
		if (strcmp(back, drv_path) != 0)
			abort();
		derivation_print_aterm(d2, &b);
		if (b.len != a.len || memcmp(a.buf, b.buf, a.len) != 0)
			abort();
	}

	if (derivation_type(d, &type, &e) == 0 && derivation_output_paths(h, d, &paths, &e) == 0)
		drv_paths_free(paths, d->n_outputs);
	nib_error_clear(&e);
	(void)derivation_check_outputs(h, d, &e);
	nib_error_clear(&e);
	if (derivation_required_features(d, &features, &e) < 0 && e == NULL)
		abort();
	(void)derivation_is_fixed_output(d);
	return 0;
}

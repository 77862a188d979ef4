/*
 * fuzz-drvjson: the JSON derivation reader.  Whatever parses must print an
 * ATerm the ATerm parser accepts and reprints identically, and survive the
 * Nix 2.8 JSON printer and reader unchanged; filling in output paths must
 * not crash.
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
	cleanup_derivation struct derivation *d = NULL, *d2 = NULL, *d3 = NULL;
	cleanup_strbuf struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, j = STRBUF_INIT,
				     c = STRBUF_INIT;
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new("/nix/store", NULL, NULL);
	cleanup_free char *key = NULL;
	const char *pv[1] = { "/nix/store/00000000000000000000000000000000-x.drv" };
	const struct derivation *dv[1];
	bool complete = true;

	if (derivation_parse_json((const char *)data, size, "/nix/store", &key, &d, &e) < 0) {
		if (e == NULL || e->msg == NULL)
			abort();
		return 0;
	}
	derivation_print_aterm(d, &a);
	/* A fixed output read without its path has no ATerm form until filled in. */
	for (size_t i = 0; i < d->n_outputs; i++)
		complete &= !(d->outputs[i].kind == DRV_OUT_CA_FIXED && d->outputs[i].path == NULL);
	if (complete) {
		if (derivation_parse_aterm(a.buf, a.len, "/nix/store", &d2, &e) < 0)
			abort();
		derivation_print_aterm(d2, &b);
		if (a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0)
			abort();
	}

	dv[0] = d;
	derivation_print_json(dv, pv, 1, &j);
	if (derivation_parse_json(j.buf, j.len, "/nix/store", NULL, &d3, &e) < 0)
		abort();
	derivation_print_aterm(d3, &c);
	if (a.len != c.len || memcmp(a.buf, c.buf, a.len) != 0)
		abort();

	if (derivation_fill_outputs(h, d, &e) == 0) {
		struct store_path sp;
		if (derivation_check_outputs(h, d, &e) < 0)
			abort();
		(void)derivation_store_path("/nix/store", d, &sp, NULL, NULL, &e);
	}
	return 0;
}

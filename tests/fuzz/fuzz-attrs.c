/*
 * fuzz-attrs: structured attributes as the builder gets them.  The input is
 * the "__json" of a derivation with outputs out and dev.  Whatever
 * build_env_structured accepts must give a .attrs.json from which
 * build_env_attrs_sh makes the same .attrs.sh; the checks made before a
 * build and impureEnvVars must not crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build-env.h"
#include "cleanup.h"
#include "derivation.h"
#include "strbuf.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_derivation struct derivation *d = derivation_new();
	cleanup_strbuf struct strbuf j = STRBUF_INIT, sh = STRBUF_INIT, sh2 = STRBUF_INIT;
	cleanup_strv char **vars = xcalloc(1, sizeof(char *));
	cleanup_free char *json = NULL;

	if (size > 1 << 20 || memchr(data, 0, size) != NULL)
		return 0;
	json = xstrndup((const char *)data, size);
	d->name = xstrdup("x");
	d->outputs = xcalloc(2, sizeof(*d->outputs));
	d->n_outputs = 2;
	d->outputs[0].name = xstrdup("dev");
	d->outputs[0].path = xstrdup("/nib/store/dddddddddddddddddddddddddddddddd-x-dev");
	d->outputs[1].name = xstrdup("out");
	d->outputs[1].path = xstrdup("/nib/store/cccccccccccccccccccccccccccccccc-x");
	derivation_set_env(d, "__json", json);

	if (build_env_validate(d, "/nib/store", &e) < 0) {
		if (e == NULL || e->msg == NULL)
			abort();
		nib_error_clear(&e);
	}
	if (build_env_impure_vars(d, NULL, &vars, &e) < 0)
		nib_error_clear(&e);
	if (build_env_structured(d, NULL, 0, &j, &sh, &e) < 0) {
		if (e == NULL || e->msg == NULL)
			abort();
		return 0;
	}
	if (build_env_attrs_sh(j.buf, &sh2, &e) < 0)
		abort();
	if (sh.len != sh2.len || memcmp(sh.buf, sh2.buf, sh.len) != 0)
		abort();
	return 0;
}

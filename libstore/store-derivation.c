/* store-derivation.c - reading and adding derivations through the store interface. */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "derivation.h"
#include "local-store.h"
#include "path.h"
#include "store-derivation.h"
#include "store-internal.h"
#include "util.h"
#include "banned.h"

struct derivation *store_read_derivation(struct store *store, const char *drv_path,
					 struct nib_error **err)
{
	cleanup_free char *p = NULL, *real = NULL, *text = NULL;
	struct derivation *d = NULL;
	size_t len = 0;
	int r;

	if (store_parse_path(store, drv_path, false, &p, err) < 0)
		return NULL;
	r = store_is_valid(store, p, err);
	if (r < 0)
		return NULL;
	if (r == 0) {
		nib_error_set(err, NIB_E_NOT_FOUND, 0, "derivation '%s' is not valid", p);
		return NULL;
	}
	if (!store_is_local(store)) {
		nib_error_set(err, NIB_E_UNSUPPORTED, 0, "reading derivations needs a local store");
		return NULL;
	}
	real = local_store_real_path(store, p);
	if (read_file_at(AT_FDCWD, real, DRV_MAX_TEXT, &text, &len, err) < 0 ||
	    derivation_parse_aterm(text, len, store->store_dir, &d, err) < 0) {
		nib_error_prefix(err, "reading derivation '%s'", p);
		return NULL;
	}
	if (d->name == NULL) {
		/* Named after its path, "<name>.drv", as Nix does. */
		struct store_path sp;
		if (store_path_parse(store->store_dir, p, false, &sp, err) < 0) {
			derivation_free(d);
			return NULL;
		}
		d->name = xstrndup(sp.name, strlen(sp.name) - 4);
	}
	return d;
}

static struct derivation *resolve(void *userdata, const char *drv_path, struct nib_error **err)
{
	return store_read_derivation(userdata, drv_path, err);
}

/* Does d leave output paths for us to compute? */
static bool needs_fill(const struct derivation *d)
{
	for (size_t i = 0; i < d->n_outputs; i++)
		if (d->outputs[i].kind == DRV_OUT_DEFERRED ||
		    (d->outputs[i].kind == DRV_OUT_CA_FIXED && d->outputs[i].path == NULL))
			return true;
	return false;
}

int store_add_derivation(struct store *store, struct derivation *d, char **ret_path,
			 struct nib_error **err)
{
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new(store->store_dir, resolve, store);
	cleanup_free char *aterm = NULL, *want = NULL, *name = NULL, *got = NULL;
	cleanup_strv char **refs = xcalloc(1, sizeof(char *));
	struct store_path sp;
	size_t len = 0;

	if (d->name == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0, "the derivation has no name");
	/* Its inputs must be there before anything can be said about its outputs. */
	for (size_t i = 0; i < d->n_srcs; i++)
		strv_push(&refs, d->srcs[i]);
	for (size_t i = 0; i < d->n_inputs; i++)
		strv_push(&refs, d->inputs[i].path);
	for (char **r = refs; *r; r++) {
		int v = store_is_valid(store, *r, err);
		if (v < 0)
			return -1;
		if (v == 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0,
					     "input '%s' of derivation '%s' is not valid", *r,
					     d->name);
	}
	if (needs_fill(d) ? derivation_fill_outputs(h, d, err) < 0
			  : derivation_check_outputs(h, d, err) < 0)
		return -1;
	if (derivation_store_path(store->store_dir, d, &sp, &aterm, &len, err) < 0)
		return -1;
	want = store_path_to_string(store->store_dir, &sp);
	name = xstrdup(sp.name);
	if (store_add_text(store, name, aterm, len, refs, &got, err) < 0)
		return -1;
	if (!STREQ(got, want))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation '%s' was stored as '%s', expected '%s'", d->name,
				     got, want);
	*ret_path = TAKE_PTR(got);
	return 0;
}

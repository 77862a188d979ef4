#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cleanup.h"
#include "local-store.h"
#include "store-fixture.h"
#include "util.h"

#include "banned.h"

struct settings *test_store_settings(const char *dir, const char *store_dir, const char *state_rel)
{
	struct settings *s = settings_new();

	if (store_dir != NULL) {
		free(s->store_dir);
		s->store_dir = xstrdup(store_dir);
	}
	free(s->store_root);
	s->store_root = path_join(dir, "root");
	free(s->state_dir);
	s->state_dir = path_join(dir, state_rel);
	free(s->log_dir);
	s->log_dir = path_join(dir, "log");
	s->fsync_metadata = false;
	return s;
}

struct store *test_store_open(const struct settings *s)
{
	cleanup_error struct nib_error *e = NULL;
	struct store *store = NULL;

	if (local_store_open(s, 0, &store, &e) < 0) {
		fprintf(stderr, "opening the test store: %s\n", e->msg);
		return NULL;
	}
	return store;
}

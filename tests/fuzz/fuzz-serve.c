/*
 * fuzz-serve.c - arbitrary bytes as a client's whole stream into the
 * daemon's connection loop (serve_connection), as a trusted peer, against
 * a local store in a private temporary directory that lives as long as the
 * process.  Builds are disabled (peer.no_builds); everything else runs for
 * real: adds, queries, roots, GC, verify.  The corpus is the recorded Nix
 * 2.8 client sessions.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "local-store.h"
#include "log.h"
#include "protocol.h"
#include "serve.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct proto_limits limits = {
	.max_string = 1 << 20,
	.max_list = 4096,
	.max_message = 8 << 20,
};

static struct settings *settings;
static struct store *store;
static char *dir;

static void remove_tmp(void)
{
	store_close(store);
	if (dir != NULL)
		rm_rf_at(AT_FDCWD, dir, NULL);
}

static int init(void)
{
	struct nib_error *e = NULL;
	char tmpl[] = "/tmp/nib-fuzz-serve-XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	dir = xstrdup(tmpl);
	atexit(remove_tmp);
	log_set_max_level(LOG_CRIT);
	settings = settings_new();
	if (settings_set(settings, "store-dir", "/nix/store", ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "store-root", dir, ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "state-dir", dir, ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "fsync-metadata", "false", ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    local_store_open(settings, 0, &store, &e) < 0) {
		fprintf(stderr, "fuzz-serve: %s\n", e->msg);
		nib_error_free(e);
		return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = 0;
	struct nib_error *e = NULL;
	struct serve_peer peer = { .trusted = true, .tag = "fuzz", .no_builds = true };
	struct proto_conn *c;

	if (ready == 0)
		ready = init() == 0 ? 1 : -1;
	if (ready < 0)
		abort();
	c = proto_conn_new_mem(data, size);
	proto_conn_set_limits(c, &limits);
	(void)serve_connection(store, settings, c, &peer, &e);
	nib_error_free(e);
	proto_conn_free(c);
	return 0;
}

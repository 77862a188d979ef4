/*
 * build-inline - send one derivation to a daemon with BuildDerivation (the
 * derivation inline, as Nix's remote builds do), for the integration tests;
 * not installed.
 *
 *   build-inline SOCKET STORE_DIR ATERM_FILE DRV_PATH [MODE]
 *
 * ATERM_FILE holds the derivation (no input derivations); DRV_PATH is the
 * path it is sent under; MODE is 0 (normal, default), 1 (repair), 2
 * (check).  Prints "status <BuildStatus>", then "error <message>" when
 * there is one, then "output <out path base>" for each built output.
 * Exit status: 0 when the daemon answered with a build result (whatever
 * it says), 1 when it refused the request (the message is on stderr), 2
 * for usage errors.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "derivation.h"
#include "protocol.h"
#include "remote-store.h"
#include "settings.h"
#include "store.h"
#include "util.h"

int main(int argc, char **argv)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_settings struct settings *s = settings_new();
	cleanup_store struct store *store = NULL;
	cleanup_free char *text = NULL;
	cleanup_derivation struct derivation *d = NULL;
	struct proto_build_result res = { 0 };
	uint64_t mode = 0;
	size_t len = 0;

	if (argc < 5 || argc > 6 || (argc == 6 && parse_u64(argv[5], &mode) < 0)) {
		fprintf(stderr,
			"usage: build-inline SOCKET STORE_DIR ATERM_FILE DRV_PATH [MODE]\n");
		return 2;
	}
	if (settings_set(s, "store-dir", argv[2], ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    read_file_at(AT_FDCWD, argv[3], DRV_MAX_TEXT, &text, &len, &e) < 0 ||
	    derivation_parse_aterm(text, len, argv[2], &d, &e) < 0 ||
	    remote_store_open(s, argv[1], &store, &e) < 0 ||
	    remote_store_build_derivation(store, argv[4], d, mode, &res, &e) < 0) {
		fprintf(stderr, "build-inline: %s\n", e->msg);
		return 1;
	}
	printf("status %s\n", proto_build_status_name(res.status));
	if (res.error_msg != NULL && res.error_msg[0] != '\0')
		printf("error %s\n", res.error_msg);
	for (size_t i = 0; i < res.n_built_outputs; i++) {
		/* The value is a Realisation in JSON: print its outPath. */
		const char *p = strstr(res.built_outputs[i].second, "\"outPath\":\"");
		const char *end = p != NULL ? strchr(p + 11, '"') : NULL;
		if (end != NULL)
			printf("output %.*s\n", (int)(end - p - 11), p + 11);
	}
	proto_build_result_release(&res);
	return 0;
}

/*
 * daemon-bench - connections per second against a running nib-daemon: each
 * iteration connects, does the handshake, asks IsValidPath of one path and
 * hangs up (what a short query-only client does), for the given number of
 * seconds; then the same queries on one kept connection, for comparison.
 *
 *   daemon-bench SOCKET STORE_DIR SECONDS
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "remote-store.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "banned.h"

int main(int argc, char **argv)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *err = NULL;
	cleanup_free char *path = NULL;
	uint64_t secs, n = 0, start, end;

	if (argc != 4 || parse_u64(argv[3], &secs) < 0) {
		fprintf(stderr, "usage: daemon-bench SOCKET STORE_DIR SECONDS\n");
		return 2;
	}
	if (settings_set(s, "store-dir", argv[2], ORIGIN_CMDLINE, NULL, &err) < 0) {
		fprintf(stderr, "daemon-bench: %s\n", err->msg);
		return 1;
	}
	path = xasprintf("%s/00000000000000000000000000000000-x", argv[2]);
	start = now_monotonic_usec();
	end = start + secs * 1000000;
	while (now_monotonic_usec() < end) {
		struct store *st = NULL;
		if (remote_store_open(s, argv[1], &st, &err) < 0 ||
		    store_is_valid(st, path, &err) < 0) {
			fprintf(stderr, "daemon-bench: %s\n", err->msg);
			store_close(st);
			return 1;
		}
		store_close(st);
		n++;
	}
	printf("connect + handshake + IsValidPath + close: %llu in %.2f s = %.0f connections/s\n",
	       (unsigned long long)n, (double)(now_monotonic_usec() - start) / 1e6,
	       (double)n * 1e6 / (double)(now_monotonic_usec() - start));
	{
		struct store *st = NULL;
		uint64_t m = 0;

		if (remote_store_open(s, argv[1], &st, &err) < 0) {
			fprintf(stderr, "daemon-bench: %s\n", err->msg);
			return 1;
		}
		start = now_monotonic_usec();
		end = start + secs * 1000000;
		while (now_monotonic_usec() < end) {
			if (store_is_valid(st, path, &err) < 0) {
				fprintf(stderr, "daemon-bench: %s\n", err->msg);
				store_close(st);
				return 1;
			}
			m++;
		}
		printf("IsValidPath on one connection (reference): %.0f requests/s\n",
		       (double)m * 1e6 / (double)(now_monotonic_usec() - start));
		store_close(st);
	}
	return 0;
}

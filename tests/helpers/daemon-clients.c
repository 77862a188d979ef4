/*
 * daemon-clients - test helper: many short daemon connections, or one held.
 *
 *   daemon-clients COUNT PARALLEL
 *   daemon-clients --hold READY-FILE
 *
 * Settings come from the environment and settings file, as for `nib`.  The
 * first form makes COUNT connections to the daemon, PARALLEL at a time
 * (PARALLEL processes, each connecting one after the other): each does the
 * handshake, asks IsValidPath of one path and hangs up.  It prints
 * "COUNT served" and exits 0 when every one was served; otherwise it
 * prints each error and exits 1.  The second form connects, does the
 * handshake, writes "held\n" to READY-FILE and keeps the connection open
 * until killed.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "remote-store.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "banned.h"

/* Serve n connections one after the other; the number that failed. */
static uint64_t run(const struct settings *s, uint64_t n)
{
	cleanup_free char *path = xasprintf("%s/00000000000000000000000000000000-x", s->store_dir);
	uint64_t failed = 0;

	for (uint64_t i = 0; i < n; i++) {
		struct store *st = NULL;
		struct nib_error *e = NULL;

		if (remote_store_open(s, NULL, &st, &e) < 0 || store_is_valid(st, path, &e) < 0) {
			fprintf(stderr, "daemon-clients: %s\n", e->msg);
			failed++;
		}
		nib_error_free(e);
		store_close(st);
	}
	return failed;
}

static int hold(const struct settings *s, const char *ready)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *tmp = xasprintf("%s.tmp", ready);
	struct store *st = NULL;
	FILE *f;

	if (remote_store_open(s, NULL, &st, &e) < 0) {
		fprintf(stderr, "daemon-clients: %s\n", e->msg);
		return 1;
	}
	f = fopen(tmp, "we");
	if (f == NULL || fputs("held\n", f) < 0 || fclose(f) != 0 || rename(tmp, ready) < 0) {
		fprintf(stderr, "daemon-clients: cannot write '%s': %s\n", ready, strerror(errno));
		return 1;
	}
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	struct settings_load_opts lo = { .check_owner = -1 };
	uint64_t count, parallel, failed = 0;

	if (settings_load(s, &lo, &e) < 0) {
		fprintf(stderr, "daemon-clients: %s\n", e->msg);
		return 1;
	}
	if (argc == 3 && STREQ(argv[1], "--hold"))
		return hold(s, argv[2]);
	if (argc != 3 || parse_u64(argv[1], &count) < 0 || parse_u64(argv[2], &parallel) < 0 ||
	    parallel == 0 || parallel > 256) {
		fprintf(stderr, "usage: daemon-clients COUNT PARALLEL | --hold READY-FILE\n");
		return 2;
	}
	for (uint64_t p = 0; p < parallel; p++) {
		uint64_t n = count / parallel + (p < count % parallel);
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "daemon-clients: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid == 0)
			_exit(run(s, n) > 0);
	}
	for (;;) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0)
			break;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	if (failed > 0)
		return 1;
	printf("%llu served\n", (unsigned long long)count);
	return 0;
}

/*
 * uidpool-holder - test helper for the UID pool crash tests.
 *
 *   uidpool-holder [--build-dir NAME] [--child] [--derivation D] READY-FILE
 *
 * Loads the settings like `nib` does (environment, settings file), acquires
 * a slot, records and creates <build-dir>/NAME with a file in it, and with
 * --child forks a process that takes the slot's first UID + 5 (real,
 * effective and saved, so not only the first UID of the range is used) and
 * execs `sleep`.  Then it writes "SLOT UID CHILD-PID\n" to READY-FILE and
 * waits to be killed, never releasing the slot.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "settings.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

static int fail(const char *what, struct nib_error *e)
{
	fprintf(stderr, "uidpool-holder: %s: %s\n", what, e ? e->msg : strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "build-dir", required_argument, NULL, 'b' },
		{ "child", no_argument, NULL, 'c' },
		{ "derivation", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	struct settings_load_opts lo = { .check_owner = -1 };
	struct uid_pool_acquire_opts ao = {
		.derivation = "/nib/store/00000000000000000000000000000000-crash-test.drv",
		.timeout_usec = 30000000
	};
	struct uid_pool *pool;
	struct uid_pool_slot *slot = NULL;
	const char *bname = NULL;
	bool child = false;
	pid_t kid = 0;
	uid_t uid;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bname = optarg;
			break;
		case 'c':
			child = true;
			break;
		case 'd':
			ao.derivation = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: uidpool-holder [--build-dir NAME] [--child] READY-FILE\n");
		return 2;
	}
	if (settings_load(s, &lo, &e) < 0)
		return fail("settings", e);
	pool = uid_pool_open(s, NULL, &e);
	if (pool == NULL)
		return fail("open", e);
	if (uid_pool_acquire(pool, &ao, &slot, &e) < 0)
		return fail("acquire", e);
	if (bname != NULL) {
		cleanup_free char *root =
			s->build_dir[0] ? xstrdup(s->build_dir) : path_join(s->state_dir, "builds");
		cleanup_free char *dir = path_join(root, bname);
		cleanup_free char *file = path_join(dir, "file");
		FILE *f;
		/* Record first, create second: a crash in between still leaves a trace. */
		if (uid_pool_slot_set_info(slot, "build-dir", dir, &e) < 0)
			return fail("set_info", e);
		if (mkdir_p(dir, 0700, &e) < 0)
			return fail("mkdir", e);
		f = fopen(file, "we");
		if (f == NULL)
			return fail("create file", NULL);
		fputs("left behind\n", f);
		fclose(f);
	}
	uid = slot->first_uid + 5;
	if (child) {
		kid = fork();
		if (kid < 0)
			return fail("fork", NULL);
		if (kid == 0) {
			if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
			    setresuid(uid, uid, uid) < 0)
				_exit(126);
			execl("/bin/sleep", "sleep", "1000", (char *)NULL);
			_exit(127);
		}
	}
	{
		cleanup_free char *tmp = xasprintf("%s.tmp", argv[optind]);
		FILE *f = fopen(tmp, "we");
		if (f == NULL)
			return fail("ready file", NULL);
		fprintf(f, "%u %lu %ld\n", slot->index, (unsigned long)uid, (long)kid);
		if (fclose(f) != 0 || rename(tmp, argv[optind]) < 0)
			return fail("ready file", NULL);
	}
	for (;;)
		pause();
}

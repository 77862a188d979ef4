/*
 * uidpool-bench - latency of acquiring and releasing a UID slot with 0 %,
 * 50 % and 99 % of a 128-slot pool busy (the busy slots are held by a helper
 * process), next to a reference in the same run: the Nix-style search that
 * opens and flock()s slot-0, slot-1, ... until one is free.
 *
 *   uidpool-bench [ITERATIONS [SCAN-ITERATIONS]]
 *
 * "nib" releases with a cleanup hook that vouches for the processes (what
 * the build code does after killing the build's cgroup); "nib + /proc"
 * releases with the full /proc scan, whose cost grows with the number of
 * processes on the machine.  Everything lives in a temporary directory; the
 * account databases are empty fakes, so the real ones are not read.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "settings.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

#define SLOTS 128

static struct uid_pool_db db;
static struct settings *settings;
static char *pooldir;

static int die(const char *what, struct nib_error *e)
{
	fprintf(stderr, "uidpool-bench: %s: %s\n", what, e ? e->msg : strerror(errno));
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	double median, p99;
};

static struct stats summarize(uint64_t *v, size_t n)
{
	struct stats s;

	sort_array(v, n, sizeof(*v), cmp_u64);
	s.median = (double)v[n / 2] / 1000.0;
	s.p99 = (double)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
	return s;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A helper process that holds `busy` slots until told to stop. */
static pid_t hold_slots(unsigned busy, int *ret_ctl)
{
	int ready[2], ctl[2];
	pid_t pid;
	char c;

	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0)
		die("pipe", NULL);
	pid = fork();
	if (pid == 0) {
		struct nib_error *e = NULL;
		struct uid_pool *p = uid_pool_open(settings, &db, &e);
		struct uid_pool_slot **held = calloc(busy + 1, sizeof(*held));
		struct uid_pool_acquire_opts o = { .no_wait = true };
		struct uid_pool_cleanup cl = { .flags = UID_POOL_CLEANUP_PROCS_VERIFIED };
		if (p == NULL || held == NULL)
			_exit(1);
		for (unsigned i = 0; i < busy; i++)
			if (uid_pool_acquire(p, &o, &held[i], &e) < 0)
				_exit(2);
		if (write(ready[1], "R", 1) != 1 || read(ctl[0], &c, 1) < 0)
			_exit(3);
		for (unsigned i = 0; i < busy; i++)
			uid_pool_release(held[i], &cl, &e);
		_exit(0);
	}
	close(ready[1]);
	close(ctl[0]);
	if (read(ready[0], &c, 1) != 1)
		die("helper failed", NULL);
	close(ready[0]);
	*ret_ctl = ctl[1];
	return pid;
}

/* The reference: scan from slot 0 with open + flock, as Nix's AutoUserLock does. */
static uint64_t naive_cycle(void)
{
	uint64_t t0 = now_ns();
	char name[64], rec[64];
	int n;

	for (unsigned i = 0; i < SLOTS; i++) {
		int fd;
		snprintf(name, sizeof(name), "%s/slot-%u", pooldir, i);
		fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			die("open", NULL);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;
		}
		n = snprintf(rec, sizeof(rec), "pid=%ld\n", (long)getpid());
		if (pwrite(fd, rec, (size_t)n, 0) != n || ftruncate(fd, 0) < 0)
			die("write", NULL);
		flock(fd, LOCK_UN);
		close(fd);
		return now_ns() - t0;
	}
	die("naive: no free slot", NULL);
	return 0;
}

static void run(unsigned busy, size_t iters, size_t scan_iters)
{
	struct nib_error *e = NULL;
	struct uid_pool *p = uid_pool_open(settings, &db, &e);
	struct uid_pool_acquire_opts o = { .no_wait = true };
	struct uid_pool_cleanup verified = { .flags = UID_POOL_CLEANUP_PROCS_VERIFIED };
	uint64_t *acq = calloc(iters, sizeof(uint64_t));
	uint64_t *cyc = calloc(iters, sizeof(uint64_t));
	uint64_t *naive = calloc(iters, sizeof(uint64_t));
	uint64_t *scan = calloc(scan_iters, sizeof(uint64_t));
	struct stats a, c, nv, sc;
	int ctl;
	pid_t helper;

	if (p == NULL || !acq || !cyc || !naive || !scan)
		die("open", e);
	helper = hold_slots(busy, &ctl);
	for (size_t i = 0; i < iters / 10 + 10; i++) { /* warm up */
		struct uid_pool_slot *s = NULL;
		if (uid_pool_acquire(p, &o, &s, &e) < 0 || uid_pool_release(s, &verified, &e) < 0)
			die("warm-up", e);
	}
	for (size_t i = 0; i < iters; i++) {
		struct uid_pool_slot *s = NULL;
		uint64_t t0 = now_ns(), t1;
		if (uid_pool_acquire(p, &o, &s, &e) < 0)
			die("acquire", e);
		t1 = now_ns();
		if (uid_pool_release(s, &verified, &e) < 0)
			die("release", e);
		acq[i] = t1 - t0;
		cyc[i] = now_ns() - t0;
	}
	for (size_t i = 0; i < scan_iters; i++) {
		struct uid_pool_slot *s = NULL;
		uint64_t t0 = now_ns();
		if (uid_pool_acquire(p, &o, &s, &e) < 0 || uid_pool_release(s, NULL, &e) < 0)
			die("acquire/release with /proc scan", e);
		scan[i] = now_ns() - t0;
	}
	for (size_t i = 0; i < iters; i++)
		naive[i] = naive_cycle();
	if (write(ctl, "x", 1) != 1)
		die("helper", NULL);
	close(ctl);
	waitpid(helper, NULL, 0);

	a = summarize(acq, iters);
	c = summarize(cyc, iters);
	nv = summarize(naive, iters);
	sc = summarize(scan, scan_iters);
	printf("%4u%%  %8.1f %8.1f  %8.1f %8.1f  %8.1f %8.1f  %9.1f %9.1f\n",
	       (busy * 100 + SLOTS / 2) / SLOTS, a.median, a.p99, c.median, c.p99, nv.median,
	       nv.p99, sc.median, sc.p99);
	if (busy == SLOTS - 1)
		printf("\ngoal: acquire+release median <= 50 us with 99%% busy: %s (%.1f us; "
		       "%.1fx faster than the reference)\n",
		       c.median <= 50.0 ? "met" : "NOT met", c.median, nv.median / c.median);
	free(acq);
	free(cyc);
	free(naive);
	free(scan);
	uid_pool_close(p);
}

int main(int argc, char **argv)
{
	const char *tmpdir = getenv("TMPDIR");
	cleanup_free char *root =
		xasprintf("%s/nib-uidpool-bench-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	cleanup_free char *state = NULL, *passwd = NULL, *group = NULL, *none = NULL;
	struct nib_error *e = NULL;
	uint64_t iters = 2000, scan_iters = 50;
	FILE *f;

	if ((argc > 1 && (parse_u64(argv[1], &iters) < 0 || iters < 10 || iters > 1000000)) ||
	    (argc > 2 &&
	     (parse_u64(argv[2], &scan_iters) < 0 || scan_iters < 1 || scan_iters > 100000))) {
		fprintf(stderr, "usage: uidpool-bench [ITERATIONS [SCAN-ITERATIONS]]\n");
		return 2;
	}
	if (mkdtemp(root) == NULL)
		die("mkdtemp", NULL);
	state = path_join(root, "state");
	passwd = path_join(root, "passwd");
	group = path_join(root, "group");
	none = path_join(root, "none");
	if ((f = fopen(passwd, "we")) == NULL)
		die("passwd", NULL);
	fputs("root:x:0:0::/root:/bin/sh\n", f);
	fclose(f);
	if ((f = fopen(group, "we")) == NULL)
		die("group", NULL);
	fputs("root:x:0:\n", f);
	fclose(f);
	db = (struct uid_pool_db){
		.passwd = passwd, .group = group, .subuid = none, .subgid = none
	};
	settings = settings_new();
	if (settings_set(settings, "state-dir", state, ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "ids-per-build", "65536", ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "start-id", "3999989760", ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "id-count", "8388608", ORIGIN_CMDLINE, NULL, &e) < 0)
		die("settings", e);
	pooldir = path_join(state, "userpool");

	printf("UID slot acquire/release latency, %d slots, %llu iterations (/proc scan: %llu)\n"
	       "microseconds, median and p99\n\n",
	       SLOTS, (unsigned long long)iters, (unsigned long long)scan_iters);
	printf("%5s  %17s  %17s  %17s  %19s\n", "busy", "nib acquire", "nib acq+release",
	       "reference acq+rel", "nib + /proc scan");
	printf("%5s  %8s %8s  %8s %8s  %8s %8s  %9s %9s\n", "", "median", "p99", "median", "p99",
	       "median", "p99", "median", "p99");
	run(0, (size_t)iters, (size_t)scan_iters);
	run(SLOTS / 2, (size_t)iters, (size_t)scan_iters);
	run(SLOTS - 1, (size_t)iters, (size_t)scan_iters);

	{
		struct nib_error *re = NULL;
		if (rm_rf_at(AT_FDCWD, root, &re) < 0)
			fprintf(stderr, "uidpool-bench: %s\n", re->msg);
	}
	free(pooldir);
	settings_free(settings);
	return 0;
}

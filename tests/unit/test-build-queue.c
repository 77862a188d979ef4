/*
 * test-build-queue.c - the lists of waiting builds: what a process
 * publishes is listed with its pid, updates replace it, closing removes
 * it, and the list of a process that died without closing is neither shown
 * nor left behind.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-run.h"
#include "build-queue.h"
#include "cleanup.h"
#include "settings.h"
#include "util.h"

static char *tmp;
static struct settings *settings;

static void setup(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *state = NULL;

	tmp = test_mkdtemp();
	state = path_join(tmp, "state");
	settings = settings_new();
	if (settings_set(settings, "state-dir", state, ORIGIN_CMDLINE, NULL, &e) < 0)
		fprintf(stderr, "setup: %s\n", e->msg);
}

static void teardown(void)
{
	settings_free(settings);
	settings = NULL;
	test_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

#define DRV_A "/nib/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv"
#define DRV_B "/nib/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.drv"

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(build_wait_name(BUILD_WAIT_JOB), "max-jobs");
	CU_ASSERT_STRING_EQUAL(build_wait_name(BUILD_WAIT_LOCK), "same-derivation");
	CU_ASSERT_STRING_EQUAL(build_wait_name(BUILD_WAIT_SLOT), "slot");
	CU_ASSERT_PTR_NULL(build_wait_name(_BUILD_WAIT_MAX));
	CU_ASSERT(strstr(build_wait_describe(BUILD_WAIT_JOB), "max-jobs") != NULL);
}

static void test_publish_list_close(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct build_queue *q = NULL;
	struct build_queue_entry in[2] = {
		{ .drv_path = (char *)DRV_B, .wait = BUILD_WAIT_JOB, .since = 200 },
		{ .drv_path = (char *)DRV_A, .wait = BUILD_WAIT_LOCK, .since = 100 },
	};
	struct build_queue_entry *out = NULL;
	size_t n = 99;
	cleanup_free char *file = NULL;
	struct stat st;

	/* Nothing yet: no directory, empty list, and publishing nothing creates nothing. */
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
	build_queue_entries_free(out, n);
	CU_ASSERT_EQUAL(build_queue_publish(&q, settings, in, 0, &e), 0);
	CU_ASSERT_PTR_NULL(q);

	CU_ASSERT_EQUAL(build_queue_publish(&q, settings, in, 2, &e), 0);
	CU_ASSERT_PTR_NOT_NULL(q);
	file = xasprintf("%s/jobs/queued/%d", settings->state_dir, (int)getpid());
	CU_ASSERT_EQUAL(stat(file, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		/* Oldest first. */
		CU_ASSERT_STRING_EQUAL(out[0].drv_path, DRV_A);
		CU_ASSERT_EQUAL(out[0].wait, BUILD_WAIT_LOCK);
		CU_ASSERT_EQUAL(out[0].since, 100);
		CU_ASSERT_EQUAL(out[0].pid, getpid());
		CU_ASSERT_STRING_EQUAL(out[1].drv_path, DRV_B);
		CU_ASSERT_EQUAL(out[1].wait, BUILD_WAIT_JOB);
	}
	build_queue_entries_free(out, n);

	/* A shorter list replaces the longer one. */
	CU_ASSERT_EQUAL(build_queue_publish(&q, settings, in + 1, 1, &e), 0);
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT(n == 1 && STREQ(out[0].drv_path, DRV_A));
	build_queue_entries_free(out, n);

	build_queue_close(q);
	CU_ASSERT_EQUAL(stat(file, &st), -1);
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
	build_queue_entries_free(out, n);
}

static void test_dead_process(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct build_queue_entry *out = NULL;
	size_t n = 0;
	int fds[2], status;
	char c;
	pid_t pid;
	cleanup_free char *file = NULL;
	struct stat st;

	CU_ASSERT_EQUAL(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		struct build_queue *q = NULL;
		struct build_queue_entry one = { .drv_path = (char *)DRV_A,
						 .wait = BUILD_WAIT_SLOT,
						 .since = 5 };
		close(fds[0]);
		struct nib_error *ce = NULL;
		if (build_queue_publish(&q, settings, &one, 1, &ce) < 0)
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		pause(); /* killed without closing */
		_exit(0);
	}
	close(fds[1]);
	CU_ASSERT_EQUAL(read(fds[0], &c, 1), 1);
	close(fds[0]);
	file = xasprintf("%s/jobs/queued/%d", settings->state_dir, (int)pid);

	/* Alive: listed. */
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT(n == 1 && out[0].pid == pid && out[0].wait == BUILD_WAIT_SLOT);
	build_queue_entries_free(out, n);

	/* Killed: its file remains, but is not listed, and the reader removes it. */
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	CU_ASSERT_EQUAL(stat(file, &st), 0);
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
	build_queue_entries_free(out, n);
	CU_ASSERT_EQUAL(stat(file, &st), -1);
}

static void test_bad_files(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dir = xasprintf("%s/jobs/queued", settings->state_dir);
	cleanup_free char *junk = NULL;
	struct build_queue *q = NULL;
	struct build_queue_entry one = { .drv_path = (char *)DRV_B,
					 .wait = BUILD_WAIT_JOB,
					 .since = 7 };
	struct build_queue_entry *out = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL(mkdir_p(dir, 0755, &e), 0);
	/* Names that are not pids are ignored. */
	junk = path_join(dir, "notapid");
	CU_ASSERT_EQUAL(test_write_file(junk, "1\tmax-jobs\t" DRV_A "\n"), 0);
	CU_ASSERT_EQUAL(build_queue_publish(&q, settings, &one, 1, &e), 0);
	CU_ASSERT_EQUAL(build_queue_list(settings, &out, &n, &e), 0);
	CU_ASSERT(n == 1 && STREQ(out[0].drv_path, DRV_B));
	build_queue_entries_free(out, n);
	build_queue_close(q);
}

static CU_TestInfo tests[] = {
	{ "reason names", test_names },
	{ "publish, list, replace, close", test_publish_list_close },
	{ "a dead process's list", test_dead_process },
	{ "foreign files", test_bad_files },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "build-queue", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cgroup.h"
#include "cleanup.h"
#include "util.h"

/* A hybrid host like the CI machines: v2 with no controllers, memory and pids in v1. */
static const char hybrid_mountinfo[] =
	"22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char hybrid_self[] = "9:name=systemd:/\n"
				  "8:pids:/\n"
				  "4:memory:/process_api/abc\n"
				  "1:cpu:/\n"
				  "0::/\n";

static void test_parse_hybrid(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_cgroup_root struct cgroup_root *r = NULL;

	CU_ASSERT_EQUAL(cgroup_root_parse(hybrid_mountinfo, hybrid_self, NULL, &r, &e), 0);
	if (r == NULL)
		return;
	CU_ASSERT(cgroup_root_has_v2(r));
	CU_ASSERT_STRING_EQUAL(cgroup_root_v2_parent(r), "/sys/fs/cgroup/unified");
	CU_ASSERT_STRING_EQUAL(cgroup_root_v1_dir(r, "memory"),
			       "/sys/fs/cgroup/memory/process_api/abc");
	CU_ASSERT_STRING_EQUAL(cgroup_root_v1_dir(r, "pids"), "/sys/fs/cgroup/pids");
	CU_ASSERT_PTR_NULL(cgroup_root_v1_dir(r, "cpu"));
}

static void test_parse_pure_v2(void)
{
	static const char mi[] =
		"22 1 254:0 / / rw - ext4 /dev/vda rw\n"
		"30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 "
		"rw,nsdelegate\n";
	static const char self[] = "0::/system.slice/nib-daemon.service\n";
	cleanup_error struct nib_error *e = NULL;
	cleanup_cgroup_root struct cgroup_root *r = NULL, *r2 = NULL;

	CU_ASSERT_EQUAL(cgroup_root_parse(mi, self, NULL, &r, &e), 0);
	if (r == NULL)
		return;
	CU_ASSERT_STRING_EQUAL(cgroup_root_v2_parent(r),
			       "/sys/fs/cgroup/system.slice/nib-daemon.service");
	CU_ASSERT_PTR_NULL(cgroup_root_v1_dir(r, "memory"));
	/* A configured parent must lie inside the v2 mount. */
	CU_ASSERT_EQUAL(cgroup_root_parse(mi, self, "/sys/fs/cgroup/nib.slice", &r2, &e), 0);
	if (r2 != NULL)
		CU_ASSERT_STRING_EQUAL(cgroup_root_v2_parent(r2), "/sys/fs/cgroup/nib.slice");
	cgroup_root_free(TAKE_PTR(r2));
	CU_ASSERT_EQUAL(cgroup_root_parse(mi, self, "/tmp/x", &r2, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e != NULL) {
		CU_ASSERT_EQUAL(e->code, NIB_E_CONFIG);
		CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, "not inside the cgroup v2 mount"));
	}
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(cgroup_root_parse(mi, self, "relative", &r2, &e), -1);
}

/* Bind mounts of a subtree and escaped mountpoints ("\040" is a space). */
static void test_parse_subtree_mount(void)
{
	static const char mi[] = "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
				 "50 22 0:26 /ci /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
	cleanup_error struct nib_error *e = NULL;
	cleanup_cgroup_root struct cgroup_root *r = NULL, *r2 = NULL;

	CU_ASSERT_EQUAL(cgroup_root_parse(mi, "0::/ci/job7\n", NULL, &r, &e), 0);
	if (r != NULL)
		CU_ASSERT_STRING_EQUAL(cgroup_root_v2_parent(r), "/mnt/my cg/job7");
	/* A cgroup outside what the mount shows cannot be used. */
	CU_ASSERT_EQUAL(cgroup_root_parse(mi, "0::/other\n", NULL, &r2, &e), 0);
	if (r2 != NULL)
		CU_ASSERT_FALSE(cgroup_root_has_v2(r2));
}

static void test_no_cgroups(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_cgroup_root struct cgroup_root *r = NULL;
	cleanup_cgroup_build struct cgroup_build *cg = NULL;
	struct cgroup_limits lim = { .memory_max = 1 << 20 };

	CU_ASSERT_EQUAL(
		cgroup_root_parse("22 1 254:0 / / rw - ext4 /dev/vda rw\n", "", NULL, &r, &e), 0);
	if (r == NULL)
		return;
	CU_ASSERT_FALSE(cgroup_root_has_v2(r));
	CU_ASSERT_EQUAL(cgroup_build_create(r, "nib-build-1", NULL, &cg, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e != NULL)
		CU_ASSERT_EQUAL(e->code, NIB_E_UNSUPPORTED);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(cgroup_build_create(r, "nib-build-1", &lim, &cg, &e), -1);
	if (e != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, "cannot enforce build-memory-max"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(cgroup_build_create(r, "../escape", NULL, &cg, &e), -1);
	if (e != NULL)
		CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
}

/* The real hierarchy: needs root and a writable cgroup v2. */
static void test_live(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_cgroup_root struct cgroup_root *r = NULL;
	cleanup_cgroup_build struct cgroup_build *cg = NULL;
	char name[64], buf[8];
	struct cgroup_stats st;
	struct stat sb;
	int pipefd[2], status;
	pid_t pid;

	if (geteuid() != 0 || cgroup_root_discover(NULL, &r, &e) < 0 || !cgroup_root_has_v2(r)) {
		fprintf(stderr, "\n  (needs root and cgroup v2: skipped)\n");
		return;
	}
	snprintf(name, sizeof(name), "nib-unit-%ld", (long)getpid());
	CU_ASSERT_EQUAL(cgroup_build_create(r, name, NULL, &cg, &e), 0);
	if (cg == NULL) {
		fprintf(stderr, "\n  %s\n", e->msg);
		return;
	}
	CU_ASSERT(cgroup_build_v2_fd(cg) >= 0);
	CU_ASSERT_EQUAL(stat(cgroup_build_v2_path(cg), &sb), 0);

	/* A process that forks a grandchild into a new session, then both burn a little CPU. */
	CU_ASSERT_EQUAL(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		if (read(pipefd[0], buf, 1) != 1)
			_exit(1);
		if (fork() == 0) {
			setsid();
			for (;;)
				pause();
		}
		for (volatile unsigned long i = 0; i < 20000000UL; i++)
			;
		for (;;)
			pause();
	}
	close(pipefd[0]);
	CU_ASSERT_EQUAL(cgroup_build_attach(cg, pid, false, &e), 0);
	CU_ASSERT_EQUAL(write(pipefd[1], "1", 1), 1);
	close(pipefd[1]);
	usleep(100000);
	CU_ASSERT_EQUAL(cgroup_build_stats(cg, &st, &e), 0);
	CU_ASSERT(st.have_cpu);
	CU_ASSERT(st.cpu_user_usec + st.cpu_system_usec > 1000);
	CU_ASSERT_EQUAL(cgroup_build_kill(cg, &e), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CU_ASSERT_EQUAL(cgroup_build_destroy(cg, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(stat(cgroup_build_v2_path(cg), &sb), -1);
	cgroup_build_free(TAKE_PTR(cg));

	/* Leftover of a crashed build: removed, then reported absent. */
	CU_ASSERT_EQUAL(cgroup_build_create(r, name, NULL, &cg, &e), 0);
	cgroup_build_free(TAKE_PTR(cg));
	CU_ASSERT_EQUAL(cgroup_build_remove_leftover(r, name, &e), 1);
	CU_ASSERT_EQUAL(cgroup_build_remove_leftover(r, name, &e), 0);
}

/* A pure v1 host, simulated by hiding the v2 mount: tracking and limits in v1. */
static void test_live_v1_only(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_cgroup_root struct cgroup_root *r = NULL;
	cleanup_cgroup_build struct cgroup_build *cg = NULL;
	cleanup_free char *mi = NULL, *self = NULL, *v1_only = NULL, *dir = NULL;
	struct cgroup_limits lim = { .pids_max = 8 };
	struct cgroup_stats st;
	struct stat sb;
	int status;
	pid_t pid;
	size_t len = 0;

	if (geteuid() != 0 ||
	    read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 22, &mi, NULL, &e) < 0 ||
	    read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 20, &self, NULL, &e) < 0)
		return;
	v1_only = xcalloc(1, strlen(mi) + 1);
	for (char *line = mi, *nl; line != NULL && *line != '\0'; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strstr(line, " - cgroup2 ") == NULL)
			len += (size_t)snprintf(v1_only + len, strlen(line) + 2, "%s\n", line);
	}
	CU_ASSERT_EQUAL(cgroup_root_parse(v1_only, self, NULL, &r, &e), 0);
	if (r == NULL || cgroup_root_v1_dir(r, "pids") == NULL) {
		fprintf(stderr, "\n  (needs a v1 pids hierarchy: skipped)\n");
		return;
	}
	CU_ASSERT_FALSE(cgroup_root_has_v2(r));
	CU_ASSERT_EQUAL(cgroup_build_create(r, "nib-unit-v1", &lim, &cg, &e), 0);
	if (cg == NULL) {
		fprintf(stderr, "\n  %s\n", e->msg);
		return;
	}
	CU_ASSERT_EQUAL(cgroup_build_v2_fd(cg), -1);
	dir = path_join(cgroup_root_v1_dir(r, "pids"), "nib-unit-v1");
	pid = fork();
	if (pid == 0) {
		/* Wait to be moved, then fork more than the limit allows and sleep. */
		usleep(50000);
		for (int i = 0; i < 20; i++)
			if (fork() == 0) {
				setsid();
				for (;;)
					pause();
			}
		for (;;)
			pause();
	}
	CU_ASSERT_EQUAL(cgroup_build_attach(cg, pid, false, &e), 0);
	usleep(300000);
	CU_ASSERT_EQUAL(cgroup_build_stats(cg, &st, &e), 0);
	CU_ASSERT(st.pids_max_hits > 0);
	CU_ASSERT_FALSE(st.have_cpu);
	CU_ASSERT_EQUAL(cgroup_build_destroy(cg, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status));
	CU_ASSERT_EQUAL(stat(dir, &sb), -1);
}

static CU_TestInfo tests[] = {
	{ "hybrid v1/v2 host", test_parse_hybrid },
	{ "pure v2 host and configured parents", test_parse_pure_v2 },
	{ "subtree mounts and escapes", test_parse_subtree_mount },
	{ "no cgroups: clear unsupported errors", test_no_cgroups },
	{ "live: create, attach, stats, kill, destroy", test_live },
	{ "live: a v1-only host tracks, limits and kills in v1", test_live_v1_only },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "cgroup", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

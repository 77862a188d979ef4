#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "sandbox.h"
#include "seccomp.h"
#include "util.h"

/* String literals for argv/envp, which are char *const * like execve's. */
#define S(lit) ((char *)(lit))
#define BUSYBOX "/bin/busybox"
/* A test range away from the default start-id (see tests/integration/sandbox-lib.sh). */
#define FIRST_ID (0x70000000U + 123U * 262144U)

static char *dir, *root_dir, *build_dir, *out_dir;
static char *env[] = { S("PATH=/path-not-set"), S("HOME=/homeless-shelter"), NULL };
static const struct sandbox_bind busybox_bind = { .target = BUSYBOX, .source = BUSYBOX };
static int live = -1; /* -1 unknown, 0 no, 1 yes */

static void setup(void)
{
	dir = test_mkdtemp();
	if (dir == NULL)
		return;
	root_dir = path_join(dir, "root");
	build_dir = path_join(dir, "build");
	out_dir = path_join(dir, "out");
	if (mkdir(root_dir, 0700) < 0 || mkdir(build_dir, 0700) < 0 || mkdir(out_dir, 0700) < 0)
		perror("mkdir");
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
	free(root_dir);
	free(build_dir);
	free(out_dir);
	dir = root_dir = build_dir = out_dir = NULL;
}

static void base_spec(struct sandbox_spec *s, char **argv)
{
	sandbox_spec_init(s);
	s->builder = BUSYBOX;
	s->argv = argv;
	s->envp = env;
	s->host_uid = FIRST_ID;
	s->host_gid = FIRST_ID;
	s->id_count = 262144;
	s->root_dir = root_dir;
	s->build_dir = build_dir;
	s->store_dir = "/nib/store";
	s->binds = &busybox_bind;
	s->n_binds = 1;
}

/* Spawn must fail before anything runs, with code and a message fragment. */
static void expect_invalid(const struct sandbox_spec *s, enum nib_errc code, const char *frag)
{
	cleanup_error struct nib_error *e = NULL;
	struct sandbox *sb = NULL;

	CU_ASSERT_EQUAL(sandbox_spawn(s, &sb, &e), -1);
	CU_ASSERT_PTR_NULL(sb);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, code);
	if (strstr(e->msg, frag) == NULL) {
		fprintf(stderr, "\n  wanted '%s' in: %s\n", frag, e->msg);
		CU_FAIL("message");
	}
}

static void test_parse_path(void)
{
	cleanup_error struct nib_error *e = NULL;
	char *t = NULL, *s = NULL;
	unsigned f = 0;

	CU_ASSERT_EQUAL(sandbox_parse_path("/bin/sh=/usr/bin/busybox", &t, &s, &f, &e), 0);
	CU_ASSERT_STRING_EQUAL(t, "/bin/sh");
	CU_ASSERT_STRING_EQUAL(s, "/usr/bin/busybox");
	CU_ASSERT_EQUAL(f, 0);
	free(t);
	free(s);
	CU_ASSERT_EQUAL(sandbox_parse_path("/dev/kvm?", &t, &s, &f, &e), 0);
	CU_ASSERT_STRING_EQUAL(t, "/dev/kvm");
	CU_ASSERT_STRING_EQUAL(s, "/dev/kvm");
	CU_ASSERT_EQUAL(f, SANDBOX_BIND_OPTIONAL);
	free(t);
	free(s);
	CU_ASSERT_EQUAL(sandbox_parse_path("/a=/b?", &t, &s, &f, &e), 0);
	CU_ASSERT_STRING_EQUAL(s, "/b");
	CU_ASSERT_EQUAL(f, SANDBOX_BIND_OPTIONAL);
	free(t);
	free(s);
	t = s = NULL;
	CU_ASSERT_PTR_NULL(e);

	const char *bad[] = { "bin/sh", "/a/../etc=/x", "/a//b", "/a/./b", "/x=rel", "/", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CU_ASSERT_EQUAL(sandbox_parse_path(bad[i], &t, &s, &f, &e), -1);
		CU_ASSERT_PTR_NULL(t);
		if (e != NULL)
			CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
		nib_error_clear(&e);
	}
}

static void test_invalid_specs(void)
{
	char *argv[] = { S("busybox"), S("true"), NULL };
	struct sandbox_spec s;
	struct sandbox_bind b[2];

	base_spec(&s, argv);
	s.builder = NULL;
	expect_invalid(&s, NIB_E_INVALID, "no builder");
	base_spec(&s, argv);
	s.host_uid = 0;
	expect_invalid(&s, NIB_E_INVALID, "refusing to map host root");
	base_spec(&s, argv);
	s.build_dir = "relative";
	expect_invalid(&s, NIB_E_INVALID, "must be absolute");
	base_spec(&s, argv);
	s.store_dir = "/proc/store";
	expect_invalid(&s, NIB_E_INVALID, "cannot be used inside a sandbox");
	base_spec(&s, argv);
	s.flags = SANDBOX_UID_RANGE;
	s.id_count = 1000;
	expect_invalid(&s, NIB_E_INVALID, "needs at least 65536 IDs");

	base_spec(&s, argv);
	b[0] = (struct sandbox_bind){ .target = "/proc/x", .source = "/etc" };
	s.binds = b;
	expect_invalid(&s, NIB_E_INVALID, "'/proc/x' is reserved");
	b[0] = (struct sandbox_bind){ .target = "/nib", .source = "/etc" };
	expect_invalid(&s, NIB_E_INVALID, "would hide the store directory");
	b[0] = (struct sandbox_bind){ .target = "/x/../y", .source = "/etc" };
	expect_invalid(&s, NIB_E_INVALID, "not an absolute normalised path");
	b[0] = (struct sandbox_bind){ .target = "/x", .source = "/nonexistent/nib-test" };
	expect_invalid(&s, NIB_E_SYS, "cannot access sandbox path source '/nonexistent/nib-test'");
	b[0] = (struct sandbox_bind){ .target = "/x", .source = "/etc" };
	b[1] = (struct sandbox_bind){ .target = "/x", .source = "/usr" };
	s.n_binds = 2;
	expect_invalid(&s, NIB_E_INVALID, "given twice with different sources");

	/* Leftovers in the output directory could redirect mountpoint creation. */
	if (out_dir != NULL) {
		cleanup_free char *junk = path_join(out_dir, "junk");
		base_spec(&s, argv);
		s.output_dir = out_dir;
		CU_ASSERT_EQUAL(symlink("/etc", junk), 0);
		expect_invalid(&s, NIB_E_INVALID, "is not empty");
		unlink(junk);
	}
}

static bool check_live(void)
{
	cleanup_error struct nib_error *e = NULL;

	if (dir == NULL)
		return false;
	if (live < 0) {
		live = geteuid() == 0 && access(BUSYBOX, X_OK) == 0 &&
		       sandbox_check_available(&e) == 0;
		if (!live)
			fprintf(stderr,
				"\n  (live sandbox tests need root, user namespaces and %s: %s)\n",
				BUSYBOX, e ? e->msg : "skipped");
	}
	return live;
}

/* Run argv in a sandbox; returns the wait status, output in *out (may be NULL). */
static int run(struct sandbox_spec *s, char **out)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_sandbox struct sandbox *sb = NULL;
	int pipefd[2], status = -1;

	CU_ASSERT_EQUAL(pipe2(pipefd, O_CLOEXEC), 0);
	s->stdout_fd = pipefd[1];
	if (sandbox_spawn(s, &sb, &e) < 0) {
		fprintf(stderr, "\n  spawn: %s\n", e->msg);
		CU_FAIL("sandbox_spawn");
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	close(pipefd[1]);
	CU_ASSERT_EQUAL(read_fd_all(pipefd[0], 1 << 20, out, NULL, &e), 0);
	close(pipefd[0]);
	CU_ASSERT_EQUAL(sandbox_wait(sb, true, &status, NULL, &e), 1);
	return status;
}

static void test_run(void)
{
	cleanup_seccomp_bpf struct seccomp_bpf *bpf = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *out = NULL;
	char *argv[] = { S("busybox"), S("sh"), S("-c"),
			 S("id -u; id -g; pwd; hostname; echo $HOME"), NULL };
	struct sandbox_spec s;
	int status;

	if (!check_live())
		return;
	CU_ASSERT_EQUAL(seccomp_bpf_build(&bpf, &e), 0);
	base_spec(&s, argv);
	s.seccomp = bpf;
	status = run(&s, &out);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (out != NULL)
		CU_ASSERT_STRING_EQUAL(out, "1000\n100\n/build\nlocalhost\n/homeless-shelter\n");
}

/*
 * A thread that waits until its pipe is closed, standing for the store's
 * background sync (local_store_sync_start) while a builder is cloned.
 */
static void *idle_thread(void *arg)
{
	char byte;

	(void)!read(*(int *)arg, &byte, 1);
	return NULL;
}

/*
 * Run fn while the process has a second thread.  The children are cloned
 * with the bare system call, so glibc's setuid family would wait in them
 * for the parent's other threads forever: the alarm ends a hung test.
 */
static void with_second_thread(void (*fn)(void))
{
	pthread_t t;
	int fds[2];

	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, idle_thread, &fds[0]), 0);
	alarm(60);
	fn();
	alarm(0);
	close(fds[1]);
	CU_ASSERT_EQUAL(pthread_join(t, NULL), 0);
	close(fds[0]);
}

/* The groups of the calling thread go; the other threads' are none of its business. */
static void test_drop_groups(void)
{
	cleanup_error struct nib_error *e = NULL;
	gid_t g = 12345;

	if (geteuid() != 0) {
		CU_ASSERT_EQUAL(sandbox_drop_groups(&e), 0); /* nothing to do */
		return;
	}
	CU_ASSERT_EQUAL_FATAL(syscall(SYS_setgroups, 1, &g), 0);
	CU_ASSERT_EQUAL(getgroups(0, NULL), 1);
	CU_ASSERT_EQUAL(sandbox_drop_groups(&e), 0);
	CU_ASSERT_EQUAL(getgroups(0, NULL), 0);
	CU_ASSERT_PTR_NULL(e);
}

static void test_drop_groups_threaded(void)
{
	with_second_thread(test_drop_groups);
}

static void test_run_threaded(void)
{
	with_second_thread(test_run);
}

static void test_outputs(void)
{
	cleanup_free char *out = NULL, *file = path_join(out_dir, "abc-out");
	char *argv[] = { S("busybox"), S("sh"), S("-c"), S("echo built > /nib/store/abc-out"),
			 NULL };
	struct sandbox_spec s;
	struct stat st;
	int status;

	if (!check_live())
		return;
	base_spec(&s, argv);
	s.output_dir = out_dir;
	status = run(&s, &out);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(lstat(file, &st), 0);
	CU_ASSERT_EQUAL(st.st_uid, FIRST_ID);
	CU_ASSERT_EQUAL(st.st_gid, FIRST_ID);
	CU_ASSERT_EQUAL(lstat(out_dir, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 01775);
	CU_ASSERT_EQUAL(st.st_gid, FIRST_ID);
	CU_ASSERT_EQUAL(lstat(build_dir, &st), 0);
	CU_ASSERT_EQUAL(st.st_uid, FIRST_ID);
}

static void test_errors(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct sandbox *sb = NULL;
	char *argv[] = { S("busybox"), S("true"), NULL };
	struct sandbox_spec s;

	if (!check_live())
		return;
	base_spec(&s, argv);
	s.builder = "/no/such/builder";
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), -1);
	if (e != NULL) {
		CU_ASSERT_EQUAL(e->sys_errno, ENOENT);
		CU_ASSERT_STRING_EQUAL(e->msg, "cannot execute builder '/no/such/builder': No such "
					       "file or directory");
	}
	nib_error_clear(&e);

	base_spec(&s, argv);
	s.root_dir = "/nonexistent-nib-root";
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), -1);
	if (e != NULL) {
		CU_ASSERT_EQUAL(e->sys_errno, ENOENT);
		CU_ASSERT_STRING_EQUAL(e->msg,
				       "sandbox setup failed at 'mounting the root tmpfs on "
				       "/nonexistent-nib-root': No such file or directory");
	}
	CU_ASSERT_PTR_NULL(sb);
}

static void test_kill_and_wait(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_sandbox struct sandbox *sb = NULL;
	char *argv[] = { S("busybox"), S("sleep"), S("100"), NULL };
	struct sandbox_spec s;
	int status = 0;

	if (!check_live())
		return;
	base_spec(&s, argv);
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), 0);
	if (sb == NULL)
		return;
	CU_ASSERT(sandbox_pid(sb) > 0);
	CU_ASSERT(sandbox_pidfd(sb) >= 0);
	CU_ASSERT_EQUAL(sandbox_wait(sb, false, &status, NULL, &e), 0);
	CU_ASSERT_EQUAL(sandbox_kill(sb, SIGKILL, &e), 0);
	CU_ASSERT_EQUAL(sandbox_wait(sb, true, &status, NULL, &e), 1);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CU_ASSERT_EQUAL(sandbox_kill(sb, SIGKILL, &e), 0); /* reaped: a no-op */
	CU_ASSERT_EQUAL(sandbox_wait(sb, true, &status, NULL, &e), 1);

	/* Freeing a running sandbox kills and reaps it. */
	sandbox_free(TAKE_PTR(sb));
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), 0);
	if (sb != NULL) {
		pid_t pid = sandbox_pid(sb);
		sandbox_free(TAKE_PTR(sb));
		CU_ASSERT_EQUAL(kill(pid, 0), -1);
	}
}

static void test_optional_bind(void)
{
	cleanup_free char *out = NULL;
	char *argv[] = { S("busybox"), S("sh"), S("-c"), S("ls /opt 2>&1; echo rc=$?"), NULL };
	struct sandbox_bind b[2] = { busybox_bind,
				     { .target = "/opt/missing",
				       .source = "/nonexistent/nib-test",
				       .flags = SANDBOX_BIND_OPTIONAL } };
	struct sandbox_spec s;
	int status;

	if (!check_live())
		return;
	base_spec(&s, argv);
	s.binds = b;
	s.n_binds = 2;
	status = run(&s, &out);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (out != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "rc=1")); /* no /opt at all */
}

/* ---- without a sandbox ---- */

static char *store, *plain_out;

static void plain_setup(void)
{
	setup();
	if (dir == NULL)
		return;
	store = path_join(dir, "store");
	plain_out = path_join(store, ".out");
	/* The builder walks host paths: the test directory must be reachable. */
	if (chmod(dir, 0755) < 0 || mkdir(store, 0755) < 0 || mkdir(plain_out, 0700) < 0)
		perror("plain_setup");
}

static void plain_teardown(void)
{
	teardown();
	free(store);
	free(plain_out);
	store = plain_out = NULL;
}

static void plain_spec(struct sandbox_spec *s, char **argv)
{
	sandbox_spec_init(s);
	s->builder = BUSYBOX;
	s->argv = argv;
	s->envp = env;
	s->flags = SANDBOX_NONE;
	s->host_uid = FIRST_ID;
	s->host_gid = FIRST_ID;
	s->id_count = 262144;
	s->build_dir = build_dir;
	s->store_dir = store;
	s->output_dir = plain_out;
	s->user_name = "nixbld";
}

static void test_plain_invalid_specs(void)
{
	char *argv[] = { S("busybox"), S("true"), NULL };
	struct sandbox_spec s;

	if (dir == NULL)
		return;
	plain_spec(&s, argv);
	s.host_uid = 0;
	expect_invalid(&s, NIB_E_INVALID, "refusing to build as root");
	plain_spec(&s, argv);
	s.flags |= SANDBOX_UID_RANGE;
	expect_invalid(&s, NIB_E_INVALID, "uid-range build cannot run without a sandbox");
	plain_spec(&s, argv);
	s.store_dir = "/x:y/store";
	expect_invalid(&s, NIB_E_INVALID, "containing ',', ':' or '\\'");
	plain_spec(&s, argv);
	s.output_dir = NULL;
	expect_invalid(&s, NIB_E_INVALID, "must be absolute");
	plain_spec(&s, argv);
	s.user_name = "a:b";
	expect_invalid(&s, NIB_E_INVALID, "invalid user name");
	if (geteuid() == 0) {
		/* The output directory holds root's files: nobody else may reach it. */
		plain_spec(&s, argv);
		CU_ASSERT_EQUAL(chmod(plain_out, 0755), 0);
		expect_invalid(&s, NIB_E_INVALID, "must be root's, mode 0700");
	}
}

static bool check_plain_live(void)
{
	static int plain_live = -1;
	FILE *f;
	char line[256];

	if (dir == NULL)
		return false;
	if (plain_live < 0) {
		plain_live = 0;
		f = fopen("/proc/filesystems", "re");
		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			if (strstr(line, "\toverlay\n") != NULL)
				plain_live = geteuid() == 0 && access(BUSYBOX, X_OK) == 0;
		if (f != NULL)
			fclose(f);
		if (!plain_live)
			fprintf(stderr, "\n  (unsandboxed tests need root, overlayfs and %s)\n",
				BUSYBOX);
	}
	return plain_live;
}

static void test_plain_run(void)
{
	cleanup_seccomp_bpf struct seccomp_bpf *bpf = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *out = NULL, *want = NULL, *script = NULL, *in = NULL, *passwd = NULL;
	cleanup_free char *passwd_after = NULL, *upper_out = NULL, *real_out = NULL;
	char *argv[] = { S("busybox"), S("sh"), S("-c"), NULL, NULL };
	struct sandbox_spec s;
	struct stat st;
	int status;

	if (!check_plain_live())
		return;
	in = path_join(store, "aaa-in");
	CU_ASSERT_EQUAL(mkdir(in, 0555), 0);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, "/etc/passwd", 64 << 20, &passwd, NULL, &e), 0);
	script = xasprintf("B=" BUSYBOX "; $B id -u; $B id -un; $B id -G; $B pwd; "
			   "$B grep '^nixbld:' /etc/passwd; $B grep '^nixbld:' /etc/group; "
			   "echo built > %s/abc-out; $B touch %s/aaa-in/x 2>/dev/null && echo "
			   "bad; $B chmod 4755 %s/abc-out 2>/dev/null && echo setuid",
			   store, store, store);
	argv[3] = script;
	CU_ASSERT_EQUAL(seccomp_bpf_build(&bpf, &e), 0);
	plain_spec(&s, argv);
	s.seccomp = bpf;
	status = run(&s, &out);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	want = xasprintf("%u\nnixbld\n%u\n%s\n"
			 "nixbld:x:%u:%u:Nix build user:/homeless-shelter:/noshell\n"
			 "nixbld:!:%u:\n",
			 FIRST_ID, FIRST_ID, build_dir, FIRST_ID, FIRST_ID, FIRST_ID);
	if (out != NULL)
		CU_ASSERT_STRING_EQUAL(out, want);
	/* The output is in the upper layer, the real store has nothing new. */
	upper_out = xasprintf("%s/upper/abc-out", plain_out);
	real_out = path_join(store, "abc-out");
	CU_ASSERT_EQUAL(lstat(upper_out, &st), 0);
	CU_ASSERT_EQUAL(st.st_uid, FIRST_ID);
	CU_ASSERT_EQUAL(st.st_gid, FIRST_ID);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0644);
	CU_ASSERT_EQUAL(lstat(real_out, &st), -1);
	CU_ASSERT_EQUAL(lstat(build_dir, &st), 0);
	CU_ASSERT_EQUAL(st.st_uid, FIRST_ID);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, "/etc/passwd", 64 << 20, &passwd_after, NULL, &e),
			0);
	if (passwd != NULL && passwd_after != NULL)
		CU_ASSERT_STRING_EQUAL(passwd, passwd_after);
}

static void test_plain_run_threaded(void)
{
	with_second_thread(test_plain_run);
}

static void test_plain_errors(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct sandbox *sb = NULL;
	char *argv[] = { S("busybox"), S("true"), NULL };
	struct sandbox_spec s;

	if (!check_plain_live())
		return;
	plain_spec(&s, argv);
	s.builder = "/no/such/builder";
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), -1);
	if (e != NULL)
		CU_ASSERT_STRING_EQUAL(e->msg, "cannot execute builder '/no/such/builder': No such "
					       "file or directory");
	nib_error_clear(&e);
	CU_ASSERT_PTR_NULL(sb);

	/* The store directory must exist to be overlaid. */
	test_rmtree(plain_out);
	CU_ASSERT_EQUAL(mkdir(plain_out, 0700), 0);
	plain_spec(&s, argv);
	s.store_dir = "/nonexistent-nib-store";
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), -1);
	if (e != NULL)
		CU_ASSERT_STRING_EQUAL(e->msg, "setup of the unsandboxed build failed at 'mounting "
					       "the store overlay on /nonexistent-nib-store': No "
					       "such file or directory");
	CU_ASSERT_PTR_NULL(sb);
}

static void test_plain_kill(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_sandbox struct sandbox *sb = NULL;
	char *argv[] = { S("busybox"), S("sleep"), S("100"), NULL };
	struct sandbox_spec s;
	int status = 0;

	if (!check_plain_live())
		return;
	plain_spec(&s, argv);
	CU_ASSERT_EQUAL(sandbox_spawn(&s, &sb, &e), 0);
	if (sb == NULL)
		return;
	/* Its own session and process group. */
	CU_ASSERT_EQUAL(getsid(sandbox_pid(sb)), sandbox_pid(sb));
	CU_ASSERT_EQUAL(sandbox_kill(sb, SIGKILL, &e), 0);
	CU_ASSERT_EQUAL(sandbox_wait(sb, true, &status, NULL, &e), 1);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static CU_TestInfo plain_spec_tests[] = {
	{ "invalid unsandboxed specs fail before anything runs", test_plain_invalid_specs },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo plain_live_tests[] = {
	{ "runs as the slot's UID, named, writing the store through an overlay", test_plain_run },
	{ "the same from a process with a second thread", test_plain_run_threaded },
	{ "setup and exec failures are reported", test_plain_errors },
	{ "its own session, killed", test_plain_kill },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo spec_tests[] = {
	{ "sandbox-paths entries", test_parse_path },
	{ "invalid specs fail before anything runs", test_invalid_specs },
	{ "supplementary groups dropped, with a second thread", test_drop_groups_threaded },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo live_tests[] = {
	{ "builder runs as 1000/100 in /build", test_run },
	{ "the same from a process with a second thread", test_run_threaded },
	{ "outputs land in the output directory", test_outputs },
	{ "setup and exec failures are reported", test_errors },
	{ "kill, wait and free", test_kill_and_wait },
	{ "optional binds may be missing", test_optional_bind },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "sandbox-spec", NULL, NULL, setup, teardown, spec_tests },
	{ "sandbox-live", NULL, NULL, setup, teardown, live_tests },
	{ "nosandbox-spec", NULL, NULL, plain_setup, plain_teardown, plain_spec_tests },
	{ "nosandbox-live", NULL, NULL, plain_setup, plain_teardown, plain_live_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "strbuf.h"
#include "util.h"

static char *tmp;

static void setup(void)
{
	tmp = test_mkdtemp();
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

static void test_parse_numbers(void)
{
	uint64_t u = 7;
	int64_t i = 7;

	CU_ASSERT_EQUAL(parse_u64("0", &u), 0);
	CU_ASSERT_EQUAL(u, 0);
	CU_ASSERT_EQUAL(parse_u64("18446744073709551615", &u), 0);
	CU_ASSERT_EQUAL(u, UINT64_MAX);
	CU_ASSERT_EQUAL(parse_u64("18446744073709551616", &u), -ERANGE);
	CU_ASSERT_EQUAL(parse_u64("-1", &u), -EINVAL);
	CU_ASSERT_EQUAL(parse_u64("12x", &u), -EINVAL);
	CU_ASSERT_EQUAL(parse_u64("", &u), -EINVAL);
	CU_ASSERT_EQUAL(parse_u64(" 1", &u), -EINVAL);
	CU_ASSERT_EQUAL(u, UINT64_MAX);
	CU_ASSERT_EQUAL(parse_i64("-42", &i), 0);
	CU_ASSERT_EQUAL(i, -42);
	CU_ASSERT_EQUAL(parse_i64("+1", &i), -EINVAL);
	CU_ASSERT_EQUAL(parse_i64("9223372036854775808", &i), -ERANGE);
}

static void test_parse_size(void)
{
	uint64_t v = 0;

	CU_ASSERT_EQUAL(parse_size("10", &v), 0);
	CU_ASSERT_EQUAL(v, 10);
	CU_ASSERT_EQUAL(parse_size("4K", &v), 0);
	CU_ASSERT_EQUAL(v, 4096);
	CU_ASSERT_EQUAL(parse_size("2m", &v), 0);
	CU_ASSERT_EQUAL(v, 2 << 20);
	CU_ASSERT_EQUAL(parse_size("1G", &v), 0);
	CU_ASSERT_EQUAL(v, 1ULL << 30);
	CU_ASSERT_EQUAL(parse_size("1T", &v), 0);
	CU_ASSERT_EQUAL(v, 1ULL << 40);
	CU_ASSERT_EQUAL(parse_size("K", &v), -EINVAL);
	CU_ASSERT_EQUAL(parse_size("1X", &v), -EINVAL);
	CU_ASSERT_EQUAL(parse_size("99999999999999999T", &v), -ERANGE);
}

static void test_strbuf(void)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	char *d;
	size_t len;

	CU_ASSERT_STRING_EQUAL(sb.buf, "");
	strbuf_addstr(&sb, "abc");
	strbuf_addch(&sb, '-');
	strbuf_addf(&sb, "%d/%s", 12, "x");
	for (int i = 0; i < 1000; i++)
		strbuf_addch(&sb, 'z');
	CU_ASSERT_EQUAL(sb.len, 8 + 1000);
	CU_ASSERT_EQUAL(strncmp(sb.buf, "abc-12/x", 8), 0);
	strbuf_setlen(&sb, 3);
	CU_ASSERT_STRING_EQUAL(sb.buf, "abc");
	strbuf_add(&sb, "\0q", 2);
	CU_ASSERT_EQUAL(sb.len, 5);
	d = strbuf_detach(&sb, &len);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_EQUAL(d[4], 'q');
	free(d);
	CU_ASSERT_EQUAL(sb.len, 0);
}

static void test_strv(void)
{
	cleanup_strv char **v = NULL;
	cleanup_strv char **c = NULL;

	CU_ASSERT_EQUAL(strv_length(v), 0);
	strv_push(&v, "a");
	strv_push(&v, "b");
	CU_ASSERT_EQUAL(strv_length(v), 2);
	CU_ASSERT(strv_contains(v, "b"));
	CU_ASSERT(!strv_contains(v, "c"));
	c = strv_copy(v);
	CU_ASSERT_STRING_EQUAL(c[1], "b");
	CU_ASSERT_PTR_NULL(c[2]);
}

static void test_strv_push_words(void)
{
	cleanup_strv char **v = NULL;

	strv_push_words(&v, NULL);
	CU_ASSERT_PTR_NULL(v);
	strv_push_words(&v, "  kvm\tbig-parallel \n uid-range  ");
	strv_push_words(&v, "");
	CU_ASSERT_EQUAL(v ? strv_length(v) : 0, 3);
	if (v != NULL && strv_length(v) == 3) {
		CU_ASSERT_STRING_EQUAL(v[0], "kvm");
		CU_ASSERT_STRING_EQUAL(v[1], "big-parallel");
		CU_ASSERT_STRING_EQUAL(v[2], "uid-range");
	}
}

static void test_path_join(void)
{
	cleanup_free char *a = path_join("/a/", "/b");
	cleanup_free char *b = path_join("/", "x");
	cleanup_free char *c = path_join("rel", "y/z");

	CU_ASSERT_STRING_EQUAL(a, "/a/b");
	CU_ASSERT_STRING_EQUAL(b, "/x");
	CU_ASSERT_STRING_EQUAL(c, "rel/y/z");
}

static void test_files(void)
{
	cleanup_free char *f = path_join(tmp, "f");
	cleanup_free char *dir = path_join(tmp, "a/b/c");
	cleanup_free char *buf = NULL;
	cleanup_error struct nib_error *e = NULL;
	size_t len = 0;
	struct stat st;

	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, f, "hello", 5, 0640, true, &e), 0);
	CU_ASSERT_EQUAL(stat(f, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0640);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, f, 100, &buf, &len, &e), 0);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_STRING_EQUAL(buf, "hello");
	free(TAKE_PTR(buf));
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, f, 4, &buf, &len, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	CU_ASSERT_PTR_NULL(buf);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, "/nonexistent/x", 4, &buf, &len, &e), -1);
	CU_ASSERT_EQUAL(e ? e->sys_errno : 0, ENOENT);
	nib_error_clear(&e);

	CU_ASSERT_EQUAL(mkdir_p(dir, 0755, &e), 0);
	CU_ASSERT_EQUAL(mkdir_p(dir, 0755, &e), 0);
	CU_ASSERT_EQUAL(mkdir_p(f, 0755, &e), -1);
	nib_error_clear(&e);
	{
		/* Below an existing file: an error, as for the file itself. */
		cleanup_free char *below = path_join(f, "x/y");
		CU_ASSERT_EQUAL(mkdir_p(below, 0755, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e);
		nib_error_clear(&e);
	}
}

static void test_rm_rf(void)
{
	cleanup_free char *top = path_join(tmp, "tree");
	cleanup_free char *sub = path_join(tmp, "tree/ro/deep");
	cleanup_free char *file = path_join(tmp, "tree/ro/deep/file");
	cleanup_free char *outside = path_join(tmp, "outside");
	cleanup_free char *link = path_join(tmp, "tree/link");
	cleanup_free char *ro = path_join(tmp, "tree/ro");
	cleanup_error struct nib_error *e = NULL;
	struct stat st;

	CU_ASSERT_EQUAL(mkdir_p(sub, 0755, &e), 0);
	CU_ASSERT_EQUAL(test_write_file(file, "x"), 0);
	CU_ASSERT_EQUAL(mkdir_p(outside, 0755, &e), 0);
	CU_ASSERT_EQUAL(symlink(outside, link), 0);
	chmod(sub, 0555);
	chmod(ro, 0500);
	CU_ASSERT_EQUAL(rm_rf_at(AT_FDCWD, top, &e), 0);
	CU_ASSERT_EQUAL(lstat(top, &st), -1);
	/* The symlink's target survives: rm_rf never follows links. */
	CU_ASSERT_EQUAL(stat(outside, &st), 0);
	CU_ASSERT_EQUAL(rm_rf_at(AT_FDCWD, top, &e), 0);

	/* Empty directories go without being opened, read-only ones too. */
	CU_ASSERT_EQUAL(mkdir_p(sub, 0755, &e), 0);
	chmod(sub, 0);
	chmod(ro, 0500);
	CU_ASSERT_EQUAL(rm_rf_at(AT_FDCWD, top, &e), 0);
	CU_ASSERT_EQUAL(lstat(top, &st), -1);
	CU_ASSERT_EQUAL(mkdir(top, 0500), 0);
	CU_ASSERT_EQUAL(rm_rf_at(AT_FDCWD, top, &e), 0);
	CU_ASSERT_EQUAL(lstat(top, &st), -1);
	CU_ASSERT_PTR_NULL(e);
}

static void test_read_link_abs(void)
{
	cleanup_free char *abs_link = path_join(tmp, "abs");
	cleanup_free char *rel_link = path_join(tmp, "rel");
	cleanup_free char *file = path_join(tmp, "file");
	cleanup_free char *want_rel = path_join(tmp, "sub/target");
	cleanup_free char *a = NULL, *r = NULL, *f = NULL, *m = NULL;

	CU_ASSERT_EQUAL(symlink("/some/where", abs_link), 0);
	CU_ASSERT_EQUAL(symlink("sub/target", rel_link), 0);
	CU_ASSERT_EQUAL(test_write_file(file, "x"), 0);
	a = read_link_abs(abs_link);
	r = read_link_abs(rel_link);
	CU_ASSERT_STRING_EQUAL(a ? a : "", "/some/where");
	CU_ASSERT_STRING_EQUAL(r ? r : "", want_rel);
	/* Not a symlink, or missing: NULL. */
	f = read_link_abs(file);
	m = read_link_abs("/nonexistent/link");
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_PTR_NULL(m);
}

static void test_ends_with_and_strp_cmp(void)
{
	char *v[] = { (char *)"b", (char *)"a", (char *)"c", (char *)"ab" };

	CU_ASSERT(ends_with("/nib/store/x-a.drv", ".drv"));
	CU_ASSERT(ends_with(".drv", ".drv"));
	CU_ASSERT_FALSE(ends_with("drv", ".drv"));
	CU_ASSERT_FALSE(ends_with("/nib/store/x-a.drvx", ".drv"));
	CU_ASSERT(ends_with("anything", ""));
	sort_array(v, ARRAY_SIZE(v), sizeof(v[0]), strp_cmp);
	CU_ASSERT_STRING_EQUAL(v[0], "a");
	CU_ASSERT_STRING_EQUAL(v[1], "ab");
	CU_ASSERT_STRING_EQUAL(v[2], "b");
	CU_ASSERT_STRING_EQUAL(v[3], "c");
}

static void test_format_bytes(void)
{
	cleanup_free char *a = format_bytes(512);
	cleanup_free char *b = format_bytes(1536);
	cleanup_free char *c = format_bytes(3ULL << 30);

	CU_ASSERT_STRING_EQUAL(a, "512 B");
	CU_ASSERT_STRING_EQUAL(b, "1.5 KiB");
	CU_ASSERT_STRING_EQUAL(c, "3.0 GiB");
}

static void test_fd_dup_cloexec(void)
{
	int fd = fd_dup_cloexec(STDERR_FILENO);
	int flags = fd >= 0 ? fcntl(fd, F_GETFD) : -1;

	CU_ASSERT(fd >= 3);
	CU_ASSERT(flags >= 0 && (flags & FD_CLOEXEC));
	if (fd >= 0)
		close(fd);
	errno = 0;
	CU_ASSERT_EQUAL(fd_dup_cloexec(-1), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
}

static void test_opendir_helpers(void)
{
	cleanup_free char *sub = path_join(tmp, "sub");
	cleanup_free char *link = path_join(tmp, "link");
	cleanup_close int fd = -1;
	DIR *d;

	CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
	CU_ASSERT_EQUAL(symlink(sub, link), 0);
	fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CU_ASSERT(fd >= 0);

	d = opendir_at(fd, "sub");
	CU_ASSERT_PTR_NOT_NULL(d);
	if (d != NULL) {
		int flags = fcntl(dirfd(d), F_GETFD);
		CU_ASSERT(flags >= 0 && (flags & FD_CLOEXEC));
		closedir(d);
	}
	/* A symlink is never followed. */
	errno = 0;
	CU_ASSERT_PTR_NULL(opendir_at(fd, "link"));
	CU_ASSERT(errno == ELOOP || errno == ENOTDIR);
	errno = 0;
	CU_ASSERT_PTR_NULL(opendir_at(fd, "missing"));
	CU_ASSERT_EQUAL(errno, ENOENT);

	/* opendir_dup leaves the caller's fd open and usable. */
	d = opendir_dup(fd);
	CU_ASSERT_PTR_NOT_NULL(d);
	if (d != NULL)
		closedir(d);
	CU_ASSERT(fcntl(fd, F_GETFD) >= 0);
	errno = 0;
	CU_ASSERT_PTR_NULL(opendir_dup(-1));
	CU_ASSERT_EQUAL(errno, EBADF);
}

/* rm_rf_contents empties a directory, keeps it, never follows a link out of it. */
static void test_rm_rf_contents(void)
{
	cleanup_free char *top = path_join(tmp, "keep");
	cleanup_free char *file = path_join(tmp, "keep/sub/file");
	cleanup_free char *sub = path_join(tmp, "keep/sub");
	cleanup_free char *outside = path_join(tmp, "outside-kept");
	cleanup_free char *link = path_join(tmp, "keep/link");
	cleanup_free char *missing = path_join(tmp, "missing");
	cleanup_error struct nib_error *e = NULL;
	struct stat st;

	CU_ASSERT_EQUAL(mkdir_p(sub, 0755, &e), 0);
	CU_ASSERT_EQUAL(test_write_file(file, "x"), 0);
	CU_ASSERT_EQUAL(mkdir_p(outside, 0755, &e), 0);
	CU_ASSERT_EQUAL(symlink(outside, link), 0);
	CU_ASSERT_EQUAL(rm_rf_contents(top, &e), 0);
	CU_ASSERT_EQUAL(lstat(top, &st), 0);
	CU_ASSERT(S_ISDIR(st.st_mode));
	CU_ASSERT_EQUAL(lstat(sub, &st), -1);
	CU_ASSERT_EQUAL(lstat(link, &st), -1);
	CU_ASSERT_EQUAL(stat(outside, &st), 0);
	CU_ASSERT_EQUAL(rm_rf_contents(missing, &e), 0);
	/* A link in the directory's place is not followed. */
	CU_ASSERT_EQUAL(symlink(outside, missing), 0);
	CU_ASSERT_EQUAL(rm_rf_contents(missing, &e), -1);
	CU_ASSERT(e && e->sys_errno == ENOTDIR);
	CU_ASSERT_EQUAL(stat(outside, &st), 0);
}

static void *record_mask(void *arg)
{
	pthread_sigmask(SIG_SETMASK, NULL, arg);
	return NULL;
}

/* thread_start: the thread takes no signal, the caller's mask is as it was. */
static void test_thread_start(void)
{
	sigset_t in_thread, before, after;
	pthread_t t;

	sigemptyset(&in_thread);
	pthread_sigmask(SIG_SETMASK, NULL, &before);
	CU_ASSERT_FATAL(thread_start(&t, record_mask, &in_thread));
	CU_ASSERT_EQUAL(pthread_join(t, NULL), 0);
	CU_ASSERT(sigismember(&in_thread, SIGINT) == 1);
	CU_ASSERT(sigismember(&in_thread, SIGTERM) == 1);
	CU_ASSERT(sigismember(&in_thread, SIGCHLD) == 1);
	pthread_sigmask(SIG_SETMASK, NULL, &after);
	CU_ASSERT_EQUAL(sigismember(&after, SIGINT), sigismember(&before, SIGINT));
	CU_ASSERT_EQUAL(sigismember(&after, SIGTERM), sigismember(&before, SIGTERM));
}

static CU_TestInfo tests[] = {
	{ "parse numbers", test_parse_numbers },
	{ "parse sizes", test_parse_size },
	{ "strbuf", test_strbuf },
	{ "strv", test_strv },
	{ "strv_push_words", test_strv_push_words },
	{ "path_join", test_path_join },
	{ "files", test_files },
	{ "rm_rf", test_rm_rf },
	{ "read_link_abs", test_read_link_abs },
	{ "ends_with and strp_cmp", test_ends_with_and_strp_cmp },
	{ "format_bytes", test_format_bytes },
	{ "fd_dup_cloexec", test_fd_dup_cloexec },
	{ "opendir_at and opendir_dup", test_opendir_helpers },
	{ "rm_rf_contents", test_rm_rf_contents },
	{ "thread_start", test_thread_start },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "util", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

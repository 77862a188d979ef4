#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit-run.h"
#include "archive.h"
#include "cleanup.h"
#include "strbuf.h"
#include "util.h"

static char *dir;

static void setup(void)
{
	dir = test_mkdtemp();
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
	dir = NULL;
}

static int collect(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	strbuf_add(userdata, data, len);
	return 0;
}

/* Write `n` copies of a line through the writer, read it back, compare. */
static void roundtrip(bool compress, size_t n)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = xasprintf("%s/log-%zu%s", dir, n, compress ? ".bz2" : "");
	struct archive_log *w = NULL;
	cleanup_strbuf struct strbuf want = STRBUF_INIT;
	cleanup_strbuf struct strbuf got = STRBUF_INIT;

	CU_ASSERT_EQUAL(archive_log_open(path, compress, &w, &e), 0);
	if (w == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		char line[64];
		int len = snprintf(line, sizeof(line), "line %zu of the build log\n", i);
		strbuf_add(&want, line, (size_t)len);
		CU_ASSERT_EQUAL(archive_log_write(w, line, (size_t)len, &e), 0);
	}
	CU_ASSERT_EQUAL(archive_log_size(w), want.len);
	/* Nothing appears under the final name before the commit. */
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	CU_ASSERT_EQUAL(archive_log_commit(w, false, &e), 0);
	CU_ASSERT_EQUAL(archive_log_read(path, 0, collect, &got, &e), 0);
	CU_ASSERT_EQUAL(got.len, want.len);
	CU_ASSERT(got.len == want.len && memcmp(got.buf, want.buf, got.len) == 0);
}

static void test_roundtrip_bzip2(void)
{
	roundtrip(true, 0);
	roundtrip(true, 1);
	roundtrip(true, 100000); /* several bzip2 blocks */
}

static void test_roundtrip_plain(void)
{
	roundtrip(false, 0);
	roundtrip(false, 1000);
}

/* The file is a bare bzip2 stream: "BZh" magic, no tar header around it. */
static void test_raw_bzip2(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = xasprintf("%s/raw.bz2", dir);
	cleanup_free char *data = NULL;
	struct archive_log *w = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(archive_log_open(path, true, &w, &e), 0);
	if (w == NULL)
		return;
	CU_ASSERT_EQUAL(archive_log_write(w, "hello\n", 6, &e), 0);
	CU_ASSERT_EQUAL(archive_log_commit(w, true, &e), 0);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, path, 1 << 20, &data, &len, &e), 0);
	CU_ASSERT(len > 10 && memcmp(data, "BZh", 3) == 0);
}

/* A build that printed nothing: the empty stream `bzip2 -1 </dev/null` writes. */
static void test_empty_bzip2(void)
{
	static const unsigned char want[] = { 0x42, 0x5a, 0x68, 0x31, 0x17, 0x72, 0x45,
					      0x38, 0x50, 0x90, 0x00, 0x00, 0x00, 0x00 };
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = xasprintf("%s/empty.bz2", dir);
	cleanup_free char *data = NULL;
	cleanup_strbuf struct strbuf got = STRBUF_INIT;
	struct archive_log *w = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(archive_log_open(path, true, &w, &e), 0);
	if (w == NULL)
		return;
	CU_ASSERT_EQUAL(archive_log_write(w, "", 0, &e), 0);
	CU_ASSERT_EQUAL(archive_log_size(w), 0);
	CU_ASSERT_EQUAL(archive_log_commit(w, false, &e), 0);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, path, 1 << 20, &data, &len, &e), 0);
	CU_ASSERT(len == sizeof(want) && memcmp(data, want, len) == 0);
	CU_ASSERT_EQUAL(archive_log_read(path, 0, collect, &got, &e), 0);
	CU_ASSERT_EQUAL(got.len, 0);
}

static void test_abandon(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = xasprintf("%s/abandoned.bz2", dir);
	struct archive_log *w = NULL;
	struct stat st;
	cleanup_dir DIR *d = NULL;
	struct dirent *de;
	int n = 0;

	CU_ASSERT_EQUAL(archive_log_open(path, true, &w, &e), 0);
	CU_ASSERT_EQUAL(archive_log_write(w, "x", 1, &e), 0);
	archive_log_free(w);
	CU_ASSERT_EQUAL(stat(path, &st), -1);
	d = opendir(dir);
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strstr(de->d_name, "abandoned") != NULL)
			n++;
	CU_ASSERT_EQUAL(n, 0);
}

static void test_limit_and_errors(void)
{
	cleanup_error struct nib_error *e = NULL, *e2 = NULL, *e3 = NULL;
	cleanup_free char *path = xasprintf("%s/big.bz2", dir);
	cleanup_free char *bad = xasprintf("%s/bad.bz2", dir);
	cleanup_free char *missing = xasprintf("%s/missing.bz2", dir);
	cleanup_strbuf struct strbuf got = STRBUF_INIT;
	struct archive_log *w = NULL;

	CU_ASSERT_EQUAL(archive_log_open(path, true, &w, &e), 0);
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(archive_log_write(w, "0123456789", 10, &e), 0);
	CU_ASSERT_EQUAL(archive_log_commit(w, false, &e), 0);
	CU_ASSERT_EQUAL(archive_log_read(path, 25, collect, &got, &e), -1);
	CU_ASSERT_EQUAL(got.len, 25);
	CU_ASSERT(e != NULL && strstr(e->msg, "larger than 25 bytes") != NULL);

	CU_ASSERT_EQUAL(test_write_file(bad, "BZh9 this is not bzip2 data at all"), 0);
	strbuf_reset(&got);
	CU_ASSERT_EQUAL(archive_log_read(bad, 0, collect, &got, &e2), -1);
	CU_ASSERT(e2 != NULL && e2->code == NIB_E_ARCHIVE);

	CU_ASSERT_EQUAL(archive_log_read(missing, 0, collect, &got, &e3), -1);
	CU_ASSERT(e3 != NULL && e3->code == NIB_E_NOT_FOUND);
}

/* A stream cut short is an error, not a shorter log. */
static void test_truncated(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = xasprintf("%s/cut.bz2", dir);
	cleanup_free char *data = NULL;
	cleanup_strbuf struct strbuf got = STRBUF_INIT;
	struct archive_log *w = NULL;
	size_t len = 0;
	int fd;

	CU_ASSERT_EQUAL(archive_log_open(path, true, &w, &e), 0);
	for (int i = 0; i < 1000; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "%d %d\n", i, i * i);
		CU_ASSERT_EQUAL(archive_log_write(w, line, (size_t)n, &e), 0);
	}
	CU_ASSERT_EQUAL(archive_log_commit(w, false, &e), 0);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, path, 1 << 20, &data, &len, &e), 0);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CU_ASSERT(fd >= 0 && write(fd, data, len / 2) == (ssize_t)(len / 2));
	close(fd);
	CU_ASSERT_EQUAL(archive_log_read(path, 0, collect, &got, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_ARCHIVE);
}

static CU_TestInfo tests[] = {
	{ "bzip2 round trip", test_roundtrip_bzip2 },
	{ "plain round trip", test_roundtrip_plain },
	{ "raw bzip2 stream", test_raw_bzip2 },
	{ "empty bzip2 stream", test_empty_bzip2 },
	{ "abandoned log leaves nothing", test_abandon },
	{ "read limit and errors", test_limit_and_errors },
	{ "truncated stream", test_truncated },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "archive", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

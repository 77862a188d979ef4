#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "hash.h"
#include "nar.h"
#include "refscan.h"
#include "strbuf.h"
#include "util.h"

#ifndef NIB_TEST_DATA_DIR
#define NIB_TEST_DATA_DIR "tests/data"
#endif

static char *tmp;   /* per-test scratch directory */
static char *trees; /* trees built by make-trees.sh, shared by the suite */

static const char *data_dir(void)
{
	const char *d = getenv("NIB_TEST_DATA");
	return d && *d ? d : NIB_TEST_DATA_DIR;
}

static int setup_trees(void)
{
	cleanup_free char *script = xasprintf("%s/nar/make-trees.sh", data_dir());
	pid_t pid;
	int status;

	trees = test_mkdtemp();
	if (trees == NULL)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", script, trees, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "make-trees.sh failed\n");
		return -1;
	}
	return 0;
}

static int teardown_trees(void)
{
	test_rmtree(trees);
	free(trees);
	trees = NULL;
	return 0;
}

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

/* ---- helpers ---- */

static int sb_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	strbuf_add(userdata, data, len);
	return 0;
}

struct mem_src {
	const unsigned char *data;
	size_t len, pos;
	size_t chunk; /* most bytes per call; 0 = any */
	size_t asked_max;
};

static ssize_t mem_source(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	struct mem_src *m = userdata;
	size_t n = m->len - m->pos;

	(void)err;
	if (len > m->asked_max)
		m->asked_max = len;
	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int restore_mem(const char *dest, const void *data, size_t len, size_t chunk,
		       const struct nar_restore_limits *limits, struct nib_error **err)
{
	struct mem_src m = { .data = data, .len = len, .chunk = chunk };
	return nar_restore(dest, mem_source, &m, limits, err);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static size_t count_entries(const char *dir)
{
	cleanup_dir DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL)
		if (!STREQ(de->d_name, ".") && !STREQ(de->d_name, ".."))
			n++;
	return n;
}

static char *read_vector(const char *name, size_t *ret_len)
{
	cleanup_free char *p = xasprintf("%s/nar/%s.nar", data_dir(), name);
	cleanup_error struct nib_error *e = NULL;
	char *buf = NULL;

	if (read_file_at(AT_FDCWD, p, 16 << 20, &buf, ret_len, &e) < 0) {
		fprintf(stderr, "%s\n", e->msg);
		return NULL;
	}
	return buf;
}

/* NAR building blocks for hostile archives. */
static void put_u64(struct strbuf *b, uint64_t v)
{
	unsigned char x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	strbuf_add(b, x, 8);
}

static void put_str(struct strbuf *b, const void *s, size_t n)
{
	static const char zero[8];
	put_u64(b, n);
	strbuf_add(b, s, n);
	strbuf_add(b, zero, (8 - n % 8) % 8);
}

static void put(struct strbuf *b, const char *s)
{
	put_str(b, s, strlen(s));
}

/* Append several keywords; NULL ends the list. */
static void puts_(struct strbuf *b, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, b);
	while ((s = va_arg(ap, const char *)) != NULL)
		put(b, s);
	va_end(ap);
}

static void put_file(struct strbuf *b, const char *contents, bool exec)
{
	puts_(b, "(", "type", "regular", NULL);
	if (exec)
		puts_(b, "executable", "", NULL);
	put(b, "contents");
	put(b, contents);
	put(b, ")");
}

static void put_entry_start(struct strbuf *b, const void *name, size_t len)
{
	puts_(b, "entry", "(", "name", NULL);
	put_str(b, name, len);
	put(b, "node");
}

/* A small archive using every node type, with the entry names given. */
static void small_archive(struct strbuf *b)
{
	put(b, "nix-archive-1");
	puts_(b, "(", "type", "directory", NULL);
	put_entry_start(b, "bin", 3);
	puts_(b, "(", "type", "directory", NULL);
	put_entry_start(b, "run", 3);
	put_file(b, "#!/bin/sh\n", true);
	puts_(b, ")", ")", ")", NULL);
	put_entry_start(b, "data", 4);
	put_file(b, "abc", false);
	put(b, ")");
	put_entry_start(b, "link", 4);
	puts_(b, "(", "type", "symlink", "target", "bin/run", ")", ")", NULL);
	put(b, ")");
}

/* Expect restoring b to fail with a message containing want; nothing left behind. */
static void expect_reject_limits(const struct strbuf *b, const char *want,
				 const struct nar_restore_limits *limits)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dest = xasprintf("%s/out", tmp);
	size_t before = count_entries(tmp);

	CU_ASSERT_EQUAL(restore_mem(dest, b->buf, b->len, 0, limits, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e != NULL && strstr(e->msg, want) == NULL) {
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, want);
		CU_FAIL("wrong message");
	}
	CU_ASSERT_FALSE(exists(dest));
	CU_ASSERT_EQUAL(count_entries(tmp), before);
	/* nar_parse agrees without touching the disk. */
	{
		cleanup_error struct nib_error *e2 = NULL;
		struct mem_src m = { .data = (const unsigned char *)b->buf, .len = b->len };
		struct nar_restore_opts o = { 0 };
		if (limits)
			o.limits = *limits;
		CU_ASSERT_EQUAL(nar_parse(mem_source, &m, &o, &e2), -1);
	}
}

static void expect_reject(const struct strbuf *b, const char *want)
{
	expect_reject_limits(b, want, NULL);
}

/* ---- vectors ---- */

static void test_vectors_dump(void)
{
	cleanup_free char *hpath = xasprintf("%s/nar/hashes", data_dir());
	cleanup_fclose FILE *f = fopen(hpath, "re");
	char line[512];
	unsigned n = 0;

	CU_ASSERT_PTR_NOT_NULL(f);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		char name[64], nixhash[128], sha[80];
		uint64_t size, got_size = 0;
		cleanup_strbuf struct strbuf sb = STRBUF_INIT;
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *want = NULL, *path = NULL, *h32 = NULL, *h16 = NULL;
		size_t wlen = 0;
		struct hash h;

		if (sscanf(line, "%63s %127s %79s %" SCNu64, name, nixhash, sha, &size) != 4)
			continue;
		n++;
		path = path_join(trees, name);
		want = read_vector(name, &wlen);
		CU_ASSERT_PTR_NOT_NULL(want);
		CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, path, sb_sink, &sb, &e), 0);
		CU_ASSERT_PTR_NULL(e);
		CU_ASSERT_EQUAL(sb.len, wlen);
		CU_ASSERT_EQUAL(wlen, size);
		if (want == NULL || sb.len != wlen || memcmp(sb.buf, want, wlen) != 0) {
			fprintf(stderr, "\ndump of '%s' differs from Nix's\n", name);
			CU_FAIL("dump differs");
		}
		CU_ASSERT_EQUAL(nar_hash_path(path, &h, &got_size, &e), 0);
		h32 = hash_to_string(&h, HASH_ENC_BASE32, true);
		h16 = hash_to_string(&h, HASH_ENC_BASE16, false);
		CU_ASSERT_STRING_EQUAL(h32, nixhash);
		CU_ASSERT_STRING_EQUAL(h16, sha);
		CU_ASSERT_EQUAL(got_size, size);
	}
	CU_ASSERT(n >= 8);
}

static void test_vectors_round_trip(void)
{
	static const char *names[] = { "empty-file", "regular",	  "executable", "symlink",
				       "empty-dir",  "all-bytes", "big",	"tree" };
	static const size_t chunks[] = { 0, 1, 7, 4096 };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		size_t len = 0;
		cleanup_free char *nar = read_vector(names[i], &len);

		CU_ASSERT_PTR_NOT_NULL(nar);
		if (nar == NULL)
			continue;
		for (size_t c = 0; c < ARRAY_SIZE(chunks); c++) {
			cleanup_error struct nib_error *e = NULL;
			cleanup_strbuf struct strbuf sb = STRBUF_INIT;
			cleanup_free char *dest = xasprintf("%s/%s-%zu", tmp, names[i], c);

			/* Byte-at-a-time on the big file is slow and adds nothing. */
			if (chunks[c] == 1 && len > 100000)
				continue;
			CU_ASSERT_EQUAL(restore_mem(dest, nar, len, chunks[c], NULL, &e), 0);
			if (e) {
				fprintf(stderr, "\n%s: %s\n", names[i], e->msg);
				continue;
			}
			CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, dest, sb_sink, &sb, &e), 0);
			CU_ASSERT(sb.len == len && memcmp(sb.buf, nar, len) == 0);
		}
	}
}

static void test_restore_fd_and_modes(void)
{
	cleanup_free char *src = xasprintf("%s/nar/tree.nar", data_dir());
	cleanup_free char *dest = xasprintf("%s/t", tmp);
	cleanup_free char *p = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_close int fd = open(src, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char buf[64];
	ssize_t n;

	CU_ASSERT(fd >= 0);
	CU_ASSERT_EQUAL(nar_restore_fd(dest, fd, NULL, &e), 0);
	p = xasprintf("%s/user-exec", dest);
	CU_ASSERT_EQUAL(lstat(p, &st), 0);
	CU_ASSERT(st.st_mode & S_IXUSR);
	free(p);
	p = xasprintf("%s/group-exec-only", dest);
	CU_ASSERT_EQUAL(lstat(p, &st), 0);
	CU_ASSERT_FALSE(st.st_mode & 0111);
	free(p);
	p = xasprintf("%s/sub/deeper/up", dest);
	n = readlink(p, buf, sizeof(buf));
	CU_ASSERT(n == 11 && memcmp(buf, "../../len-1", 11) == 0);
}

/* ---- dumping ---- */

static void test_dump_top_symlink_not_followed(void)
{
	cleanup_free char *link = xasprintf("%s/l", tmp);
	cleanup_strbuf struct strbuf sb = STRBUF_INIT, want = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(symlink("/etc/passwd", link), 0);
	CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, link, sb_sink, &sb, &e), 0);
	put(&want, "nix-archive-1");
	puts_(&want, "(", "type", "symlink", "target", "/etc/passwd", ")", NULL);
	CU_ASSERT(sb.len == want.len && memcmp(sb.buf, want.buf, sb.len) == 0);
}

static void test_dump_errors(void)
{
	cleanup_free char *fifo = xasprintf("%s/fifo", tmp);
	cleanup_free char *dir = xasprintf("%s/d", tmp);
	cleanup_free char *inner = xasprintf("%s/d/p", tmp);
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL, *e2 = NULL, *e3 = NULL;
	struct hash h;
	uint64_t size = 7;

	CU_ASSERT_EQUAL(mkfifo(fifo, 0600), 0);
	CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, fifo, sb_sink, &sb, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "fifo") && strstr(e->msg, "fifo'"));
	CU_ASSERT_EQUAL(mkdir(dir, 0755), 0);
	CU_ASSERT_EQUAL(mkfifo(inner, 0600), 0);
	CU_ASSERT_EQUAL(nar_hash_path(dir, &h, &size, &e2), -1);
	CU_ASSERT(e2 && strstr(e2->msg, "/d/p'"));
	CU_ASSERT_EQUAL(size, 7);
	CU_ASSERT_EQUAL(nar_hash_path("/nonexistent/nib-nar-test", &h, &size, &e3), -1);
	CU_ASSERT(e3 && e3->sys_errno == ENOENT);
}

static int failing_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)userdata, (void)data, (void)len;
	return nib_error_set(err, NIB_E_SYS, EPIPE, "sink failed");
}

static void test_dump_sink_error(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *p = path_join(trees, "big");

	CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, p, failing_sink, NULL, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "sink failed"));
}

struct counting_sink {
	unsigned calls, fail_at;
	struct strbuf sb;
};

static int counting_sink_fn(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct counting_sink *c = userdata;

	if (++c->calls == c->fail_at)
		return nib_error_set(err, NIB_E_SYS, EPIPE, "sink failed at call %u", c->calls);
	strbuf_add(&c->sb, data, len);
	return 0;
}

static void fill_pattern(char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
}

static int write_bytes(const char *path, const char *data, size_t n, mode_t mode)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	cleanup_error struct nib_error *e = NULL;

	if (fd < 0)
		return -1;
	return write_full(fd, data, n, &e);
}

/* Many buffers' worth of data in a tree and in one big file, against archives built by hand. */
static void test_dump_many_buffers(void)
{
	static const size_t sizes[] = { 700001, 1, 1300000, 300000 };
	cleanup_free char *dir = xasprintf("%s/big", tmp);
	cleanup_free char *sub = xasprintf("%s/big/sub", tmp);
	cleanup_free char *single = xasprintf("%s/single", tmp);
	cleanup_strbuf struct strbuf want = STRBUF_INIT, want1 = STRBUF_INIT;
	char *data[4];
	cleanup_free char *five = xmalloc(5 << 20);
	const char *names[] = { "a", "b", "c", "d" };

	CU_ASSERT_EQUAL(mkdir(dir, 0755), 0);
	CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
	put(&want, "nix-archive-1");
	puts_(&want, "(", "type", "directory", NULL);
	for (int i = 0; i < 4; i++) {
		cleanup_free char *p =
			i == 3 ? xasprintf("%s/sub/d", dir) : xasprintf("%s/%s", dir, names[i]);
		data[i] = xmalloc(sizes[i]);
		fill_pattern(data[i], sizes[i], (unsigned)i);
		CU_ASSERT_EQUAL(write_bytes(p, data[i], sizes[i], i == 2 ? 0755 : 0644), 0);
		if (i == 3) {
			put_entry_start(&want, "sub", 3);
			puts_(&want, "(", "type", "directory", NULL);
			put_entry_start(&want, "d", 1);
		} else {
			put_entry_start(&want, names[i], 1);
		}
		puts_(&want, "(", "type", "regular", NULL);
		if (i == 2)
			puts_(&want, "executable", "", NULL);
		put(&want, "contents");
		put_str(&want, data[i], sizes[i]);
		puts_(&want, ")", ")", NULL);
		if (i == 3)
			puts_(&want, ")", ")", NULL);
		free(data[i]);
	}
	put(&want, ")");

	fill_pattern(five, 5 << 20, 9);
	CU_ASSERT_EQUAL(write_bytes(single, five, 5 << 20, 0644), 0);
	put(&want1, "nix-archive-1");
	puts_(&want1, "(", "type", "regular", "contents", NULL);
	put_str(&want1, five, 5 << 20);
	put(&want1, ")");

	for (int k = 0; k < 2; k++) {
		const char *path = k == 0 ? dir : single;
		const struct strbuf *w = k == 0 ? &want : &want1;
		cleanup_strbuf struct strbuf got = STRBUF_INIT;
		cleanup_error struct nib_error *e = NULL;
		struct hash h, hw;
		uint64_t size = 0;

		CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, path, sb_sink, &got, &e), 0);
		CU_ASSERT(got.len == w->len && memcmp(got.buf, w->buf, w->len) == 0);
		CU_ASSERT_EQUAL(nar_hash_path(path, &h, &size, &e), 0);
		hash_buffer(HASH_SHA256, w->buf, w->len, &hw);
		CU_ASSERT(hash_equal(&h, &hw));
		CU_ASSERT_EQUAL(size, w->len);
		/* A failing sink stops the walk at once and its error is the one reported. */
		for (unsigned fail_at = 1; fail_at <= 4; fail_at++) {
			cleanup_error struct nib_error *e2 = NULL;
			struct counting_sink c = { .fail_at = fail_at, .sb = STRBUF_INIT };
			cleanup_free char *msg = xasprintf("sink failed at call %u", fail_at);

			CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, path, counting_sink_fn, &c, &e2), -1);
			CU_ASSERT(e2 && strstr(e2->msg, msg) != NULL);
			CU_ASSERT_EQUAL(c.calls, fail_at);
			strbuf_release(&c.sb);
		}
	}
}

static void test_hash_at_with_refscan(void)
{
	static const char hashpart[] = "0ip26j2h11n1kgkz36rl4akv694yz65h";
	char *cands[] = { (char *)hashpart, (char *)"11111111111111111111111111111111" };
	cleanup_free char *dir = xasprintf("%s/r", tmp);
	cleanup_free char *f = xasprintf("%s/r/x", tmp);
	cleanup_error struct nib_error *e = NULL;
	struct refscan *rs = refscan_new(cands, 2, &e);
	struct hash h1, h2;
	uint64_t s1 = 0, s2 = 0;
	int dfd;

	CU_ASSERT_PTR_NOT_NULL(rs);
	CU_ASSERT_EQUAL(mkdir(dir, 0755), 0);
	CU_ASSERT_EQUAL(test_write_file(f, "ref to /nib/store/0ip26j2h11n1kgkz36rl4akv694yz65h-x"),
			0);
	dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CU_ASSERT_EQUAL(nar_hash_at(dfd, "r", refscan_sink, rs, &h1, &s1, &e), 0);
	close(dfd);
	CU_ASSERT_EQUAL(nar_hash_path(dir, &h2, &s2, &e), 0);
	CU_ASSERT(hash_equal(&h1, &h2));
	CU_ASSERT_EQUAL(s1, s2);
	CU_ASSERT(refscan_found(rs, 0));
	CU_ASSERT_FALSE(refscan_found(rs, 1));
	refscan_free(rs);
}

/* ---- hostile archives ---- */

static void bad_name_archive(struct strbuf *b, const void *name, size_t len)
{
	put(b, "nix-archive-1");
	puts_(b, "(", "type", "directory", NULL);
	put_entry_start(b, name, len);
	put_file(b, "x", false);
	puts_(b, ")", ")", NULL);
}

static void test_reject_names(void)
{
	static const struct {
		const char *name;
		size_t len;
	} bad[] = {
		{ "", 0 },  { ".", 1 },	   { "..", 2 },	  { "a/b", 3 },
		{ "/", 1 }, { "../x", 4 }, { "a\0b", 3 },
	};
	char longname[257];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_strbuf struct strbuf b = STRBUF_INIT;
		bad_name_archive(&b, bad[i].name, bad[i].len);
		expect_reject(&b, "invalid entry name");
	}
	memset(longname, 'x', sizeof(longname));
	{
		cleanup_strbuf struct strbuf b = STRBUF_INIT;
		bad_name_archive(&b, longname, 256);
		expect_reject(&b, "entry name is 256 bytes long, more than 255");
	}
	{
		/* 255 is fine. */
		cleanup_strbuf struct strbuf b = STRBUF_INIT;
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *dest = xasprintf("%s/ok", tmp);
		bad_name_archive(&b, longname, 255);
		CU_ASSERT_EQUAL(restore_mem(dest, b.buf, b.len, 0, NULL, &e), 0);
	}
}

static void two_entries(struct strbuf *b, const char *n1, const char *n2)
{
	put(b, "nix-archive-1");
	puts_(b, "(", "type", "directory", NULL);
	put_entry_start(b, n1, strlen(n1));
	put_file(b, "1", false);
	put(b, ")");
	put_entry_start(b, n2, strlen(n2));
	put_file(b, "2", false);
	puts_(b, ")", ")", NULL);
}

static void test_reject_order(void)
{
	cleanup_strbuf struct strbuf dup = STRBUF_INIT, unsorted = STRBUF_INIT,
				     prefix = STRBUF_INIT, high = STRBUF_INIT;

	two_entries(&dup, "a", "a");
	expect_reject(&dup, "duplicate entry 'a'");
	two_entries(&unsorted, "b", "a");
	expect_reject(&unsorted, "out of order");
	two_entries(&prefix, "ab", "a");
	expect_reject(&prefix, "out of order");
	/* Bytewise, unsigned: 0xff sorts after 'z'. */
	two_entries(&high, "\xff", "z");
	expect_reject(&high, "out of order");
}

static void test_reject_symlink_write_through(void)
{
	cleanup_free char *outside = xasprintf("%s/outside", tmp);
	cleanup_strbuf struct strbuf b1 = STRBUF_INIT, b2 = STRBUF_INIT, b3 = STRBUF_INIT;

	CU_ASSERT_EQUAL(mkdir(outside, 0755), 0);
	/* "a" -> outside, then "a/b": a name with '/' is refused. */
	put(&b1, "nix-archive-1");
	puts_(&b1, "(", "type", "directory", NULL);
	put_entry_start(&b1, "a", 1);
	puts_(&b1, "(", "type", "symlink", "target", NULL);
	put(&b1, outside);
	puts_(&b1, ")", ")", NULL);
	put_entry_start(&b1, "a/b", 3);
	put_file(&b1, "pwned", false);
	puts_(&b1, ")", ")", NULL);
	expect_reject(&b1, "invalid entry name 'a/b'");
	/* "a" -> outside, then a directory "a" with a file in it: a duplicate. */
	put(&b2, "nix-archive-1");
	puts_(&b2, "(", "type", "directory", NULL);
	put_entry_start(&b2, "a", 1);
	puts_(&b2, "(", "type", "symlink", "target", NULL);
	put(&b2, outside);
	puts_(&b2, ")", ")", NULL);
	put_entry_start(&b2, "a", 1);
	puts_(&b2, "(", "type", "directory", NULL);
	put_entry_start(&b2, "b", 1);
	put_file(&b2, "pwned", false);
	puts_(&b2, ")", ")", ")", ")", NULL);
	expect_reject(&b2, "duplicate entry 'a'");
	/* ".." as a name, to climb out. */
	put(&b3, "nix-archive-1");
	puts_(&b3, "(", "type", "directory", NULL);
	put_entry_start(&b3, "..", 2);
	puts_(&b3, "(", "type", "directory", NULL);
	put_entry_start(&b3, "outside", 7);
	put_file(&b3, "pwned", false);
	puts_(&b3, ")", ")", ")", ")", NULL);
	expect_reject(&b3, "invalid entry name '..'");
	CU_ASSERT_EQUAL(count_entries(outside), 0);
}

static void test_reject_structure(void)
{
	struct {
		const char *want;
		struct strbuf b;
	} c[16];
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		strbuf_init(&c[i].b, 0);

	c[n].want = "not a NAR";
	put(&c[n++].b, "nix-archive-2");
	c[n].want = "not a NAR";
	strbuf_addstr(&c[n++].b, "hello world, not an archive");
	c[n].want = "unknown node type 'fifo'";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "(", "type", "fifo", ")", NULL);
	c[n].want = "expected 'executable' or 'contents', found 'mode'";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "(", "type", "regular", "mode", "0755", NULL);
	c[n].want = "expected '', found 'yes'";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "(", "type", "regular", "executable", "yes", "contents", "", ")", NULL);
	c[n].want = "expected ')', found 'executable'";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "(", "type", "regular", "contents", "", "executable", "", ")", NULL);
	c[n].want = "expected 'entry' or ')'";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "(", "type", "directory", "name", "x", ")", NULL);
	c[n].want = "expected '('";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "[", "type", "directory", ")", NULL);
	c[n].want = "empty target";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n++].b, "(", "type", "symlink", "target", "", ")", NULL);
	c[n].want = "contains a NUL";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n].b, "(", "type", "symlink", "target", NULL);
	put_str(&c[n].b, "a\0b", 3);
	put(&c[n++].b, ")");
	c[n].want = "trailing data";
	put(&c[n].b, "nix-archive-1");
	put_file(&c[n].b, "x", false);
	strbuf_addch(&c[n++].b, 0);
	c[n].want = "expected a node type";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n].b, "(", "type", NULL);
	put(&c[n++].b, "a-very-long-node-type-name");
	c[n].want = "symlink target is 4096 bytes long, more than 4095";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n].b, "(", "type", "symlink", "target", NULL);
	{
		char t[4096];
		memset(t, 'a', sizeof(t));
		put_str(&c[n++].b, t, sizeof(t));
	}
	/* A huge name length must be refused before anything is read or allocated. */
	c[n].want = "entry name is 9223372036854775808 bytes long";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n].b, "(", "type", "directory", "entry", "(", "name", NULL);
	put_u64(&c[n++].b, (uint64_t)1 << 63);
	c[n].want = "unexpected end of archive in the contents";
	put(&c[n].b, "nix-archive-1");
	puts_(&c[n].b, "(", "type", "regular", "contents", NULL);
	put_u64(&c[n++].b, UINT64_MAX);

	for (size_t i = 0; i < n; i++) {
		expect_reject(&c[i].b, c[i].want);
	}
	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		strbuf_release(&c[i].b);
}

static void test_reject_padding(void)
{
	cleanup_strbuf struct strbuf good = STRBUF_INIT;
	size_t contents_at;

	put(&good, "nix-archive-1");
	puts_(&good, "(", "type", "regular", "contents", NULL);
	contents_at = good.len;
	put(&good, "abc");
	put(&good, ")");
	/* Every pad byte of the contents, and of the "(" keyword, when set. */
	for (size_t k = 0; k < 5; k++) {
		cleanup_strbuf struct strbuf b = STRBUF_INIT;
		strbuf_add(&b, good.buf, good.len);
		b.buf[contents_at + 8 + 3 + k] = 1;
		expect_reject(&b, "non-zero padding");
	}
	for (size_t k = 0; k < 7; k++) {
		cleanup_strbuf struct strbuf b = STRBUF_INIT;
		strbuf_add(&b, good.buf, good.len);
		b.buf[24 + 8 + 1 + k] = (char)0x80;
		expect_reject(&b, "non-zero padding");
	}
}

static void test_reject_truncated_everywhere(void)
{
	cleanup_strbuf struct strbuf b = STRBUF_INIT;
	cleanup_free char *dest = xasprintf("%s/out", tmp);

	small_archive(&b);
	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_strbuf struct strbuf sb = STRBUF_INIT;
		CU_ASSERT_EQUAL(restore_mem(dest, b.buf, b.len, 0, NULL, &e), 0);
		CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, dest, sb_sink, &sb, &e), 0);
		CU_ASSERT(sb.len == b.len && memcmp(sb.buf, b.buf, b.len) == 0);
		test_rmtree(dest);
	}
	for (size_t len = 0; len < b.len; len++) {
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT_EQUAL(restore_mem(dest, b.buf, len, 3, NULL, &e), -1);
		CU_ASSERT(e && (strstr(e->msg, "unexpected end of archive") ||
				strstr(e->msg, "not a NAR")));
		CU_ASSERT_FALSE(exists(dest));
	}
	CU_ASSERT_EQUAL(count_entries(tmp), 0);
}

static void test_limits(void)
{
	cleanup_strbuf struct strbuf b = STRBUF_INIT;
	struct nar_restore_limits l = { 0 };

	small_archive(&b);
	l.max_bytes = b.len - 1;
	expect_reject_limits(&b, "larger than the limit", &l);
	l.max_bytes = 0;
	l.max_entries = 4;
	expect_reject_limits(&b, "more than 4 entries", &l);
	l.max_entries = 0;
	l.max_depth = 1;
	expect_reject_limits(&b, "nested more than 1 deep", &l);
	{
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *dest = xasprintf("%s/ok", tmp);
		l = (struct nar_restore_limits){ .max_bytes = b.len,
						 .max_entries = 5,
						 .max_depth = 2 };
		CU_ASSERT_EQUAL(restore_mem(dest, b.buf, b.len, 0, &l, &e), 0);
	}
	{
		/* A contents length beyond the limit is refused before creating the file. */
		cleanup_strbuf struct strbuf big = STRBUF_INIT;
		put(&big, "nix-archive-1");
		puts_(&big, "(", "type", "regular", "contents", NULL);
		put_u64(&big, 1 << 20);
		l = (struct nar_restore_limits){ .max_bytes = 4096 };
		expect_reject_limits(&big, "exceed the archive limit", &l);
	}
}

static void test_dest_exists(void)
{
	cleanup_strbuf struct strbuf b = STRBUF_INIT;
	cleanup_free char *dest = xasprintf("%s/d", tmp);
	cleanup_free char *keep = xasprintf("%s/d/keep", tmp);
	cleanup_free char *outside = xasprintf("%s/outside", tmp);
	cleanup_free char *link = xasprintf("%s/link", tmp);
	cleanup_error struct nib_error *e = NULL, *e2 = NULL, *e3 = NULL;

	small_archive(&b);
	CU_ASSERT_EQUAL(mkdir(dest, 0755), 0);
	CU_ASSERT_EQUAL(test_write_file(keep, "k"), 0);
	CU_ASSERT_EQUAL(restore_mem(dest, b.buf, b.len, 0, NULL, &e), -1);
	CU_ASSERT(e && e->sys_errno == EEXIST);
	CU_ASSERT(exists(keep)); /* an existing destination is never removed */
	/* A symlink as destination is not followed. */
	CU_ASSERT_EQUAL(mkdir(outside, 0755), 0);
	CU_ASSERT_EQUAL(symlink(outside, link), 0);
	CU_ASSERT_EQUAL(restore_mem(link, b.buf, b.len, 0, NULL, &e2), -1);
	CU_ASSERT_EQUAL(count_entries(outside), 0);
	/* nar_restore_at wants a single name. */
	CU_ASSERT_EQUAL(nar_restore_at(AT_FDCWD, "a/b", mem_source, NULL, NULL, &e3), -1);
}

static int hash_tee(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	hash_ctx_update(userdata, data, len);
	return 0;
}

static void test_exact_and_tee(void)
{
	cleanup_strbuf struct strbuf b = STRBUF_INIT;
	cleanup_hash_ctx struct hash_ctx *ctx = hash_ctx_new(HASH_SHA256);
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dest = xasprintf("%s/x", tmp);
	struct nar_restore_opts o = { .exact = true, .tee = hash_tee, .tee_data = ctx };
	struct mem_src m = { 0 };
	struct hash want, got;
	size_t nar_len;
	int dfd;

	small_archive(&b);
	nar_len = b.len;
	hash_buffer(HASH_SHA256, b.buf, nar_len, &want);
	strbuf_addstr(&b, "FOLLOWING PROTOCOL DATA");
	m = (struct mem_src){ .data = (const unsigned char *)b.buf, .len = b.len };
	dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CU_ASSERT_EQUAL(nar_restore_at(dfd, "x", mem_source, &m, &o, &e), 0);
	close(dfd);
	CU_ASSERT_EQUAL(m.pos, nar_len);
	hash_ctx_final(ctx, &got);
	CU_ASSERT(hash_equal(&want, &got));
	CU_ASSERT(exists(dest));
	/* nar_parse in exact mode stops at the same place. */
	m.pos = 0;
	CU_ASSERT_EQUAL(nar_parse(mem_source, &m, &(struct nar_restore_opts){ .exact = true }, &e),
			0);
	CU_ASSERT_EQUAL(m.pos, nar_len);
	/* Without exact, the same stream is refused. */
	m.pos = 0;
	CU_ASSERT_EQUAL(nar_parse(mem_source, &m, NULL, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "trailing data"));
}

static ssize_t err_source(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	(void)userdata, (void)buf, (void)len;
	return nib_error_set(err, NIB_E_PROTOCOL, 0, "connection dropped");
}

static void test_source_error(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dest = xasprintf("%s/x", tmp);

	CU_ASSERT_EQUAL(nar_restore(dest, err_source, NULL, NULL, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "connection dropped") && e->code == NIB_E_PROTOCOL);
	CU_ASSERT_FALSE(exists(dest));
}

static CU_TestInfo vector_tests[] = {
	{ "dump matches Nix byte for byte", test_vectors_dump },
	{ "restore then dump is the identity", test_vectors_round_trip },
	{ "restore from fd keeps exec bits and symlinks", test_restore_fd_and_modes },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo dump_tests[] = {
	{ "top-level symlink is not followed", test_dump_top_symlink_not_followed },
	{ "special files and missing paths are errors", test_dump_errors },
	{ "sink errors propagate", test_dump_sink_error },
	{ "trees and big files spanning many buffers", test_dump_many_buffers },
	{ "hash plus refscan in one pass", test_hash_at_with_refscan },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo restore_tests[] = {
	{ "bad names", test_reject_names },
	{ "duplicate and unsorted entries", test_reject_order },
	{ "no write through a symlink", test_reject_symlink_write_through },
	{ "malformed structure", test_reject_structure },
	{ "non-zero padding", test_reject_padding },
	{ "truncated at every byte", test_reject_truncated_everywhere },
	{ "limits", test_limits },
	{ "existing or symlinked destination", test_dest_exists },
	{ "exact mode and tee", test_exact_and_tee },
	{ "source errors", test_source_error },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "nar-vectors", setup_trees, teardown_trees, setup, teardown, vector_tests },
	{ "nar-dump", setup_trees, teardown_trees, setup, teardown, dump_tests },
	{ "nar-restore", NULL, NULL, setup, teardown, restore_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	umask(022);
	return cunit_run(suites);
}

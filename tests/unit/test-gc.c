/*
 * Unit tests of garbage-collector roots and the collector.  Stores live
 * under a temporary store root (logical /nix/store).  Several struct store
 * handles in one process behave like separate processes here, because all
 * locks are OFD locks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "hash.h"
#include "local-store.h"
#include "nar.h"
#include "settings.h"
#include "store-fixture.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define P(h, n) "/nix/store/" h "-" n
#define R P("rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr", "root")
#define X P("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "x")
#define Y P("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", "y")
#define A P("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "a")
#define B P("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "b")
#define C P("cccccccccccccccccccccccccccccccc", "c")
/* A derivation made by Nix 2.8 (tests/data/derivations) and its output. */
#define DRV P("3ghsl9sd83mc26i81adpa2fzf3yw4f68", "simple.drv")
#define OUT P("94f9f6i31zwzwbf0kclq1naqxxi4c7v9", "simple")
#define DRV_TEXT                                                                           \
	"Derive([(\"out\",\"" OUT                                                          \
	"\",\"\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"echo "                \
	"hello > $out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"simple\"),(\"out\",\"" OUT \
	"\"),(\"system\",\"x86_64-linux\")])"

static char *tmp;
static struct settings *settings;

static void setup(void)
{
	tmp = test_mkdtemp();
	settings = test_store_settings(tmp, "/nix/store", "state");
}

static void teardown(void)
{
	settings_free(settings);
	settings = NULL;
	test_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

static struct store *open_store(void)
{
	return test_store_open(settings);
}

static char *real_of(const char *logical)
{
	return xasprintf("%s/root%s", tmp, logical);
}

static bool exists(const char *logical)
{
	cleanup_free char *r = real_of(logical);
	struct stat st;
	return lstat(r, &st) == 0;
}

/* Put a file in the store directory and register it (no temporary root). */
static int reg(struct store *s, const char *path, const char *content, const char *ref1,
	       const char *ref2, const char *deriver)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *real = real_of(path);
	char *refs[3] = { NULL, NULL, NULL };
	struct store_path_info info = { 0 };
	int n = 0;

	if (ref1)
		refs[n++] = (char *)ref1;
	if (ref2)
		refs[n++] = (char *)ref2;
	test_write_file(real, content);
	info.path = (char *)path;
	info.references = refs;
	info.deriver = (char *)deriver;
	if (nar_hash_path(real, &info.nar_hash, &info.nar_size, &e) < 0 ||
	    local_store_canonicalise(s, real, &e) < 0 ||
	    local_store_register_valid_paths(s, &info, 1, &e) < 0) {
		fprintf(stderr, "reg %s: %s\n", path, e->msg);
		return -1;
	}
	return 0;
}

static void root_link(const char *name, const char *target)
{
	cleanup_free char *link = xasprintf("%s/state/gcroots/%s", tmp, name);
	if (symlink(target, link) < 0)
		perror("symlink");
}

static void collect_list(void *userdata, const char *path, uint64_t bytes)
{
	(void)bytes;
	strbuf_addf(userdata, "%s ", path);
}

static int gc(struct store *s, bool dry_run, uint64_t max_freed, struct strbuf *list,
	      struct store_gc_result *res)
{
	cleanup_error struct nib_error *e = NULL;
	struct store_gc_options o = { .dry_run = dry_run,
				      .max_freed = max_freed,
				      .on_path = collect_list,
				      .userdata = list };
	int r = store_collect_garbage(s, &o, res, &e);

	if (r < 0)
		fprintf(stderr, "gc: %s\n", e->msg);
	return r;
}

/* The usual graph: root R -> X -> Y; garbage A -> B -> C. */
static int make_graph(struct store *s)
{
	if (reg(s, Y, "y", NULL, NULL, NULL) < 0 || reg(s, X, "x", Y, NULL, NULL) < 0 ||
	    reg(s, R, "r", X, R, NULL) < 0 || reg(s, C, "c", NULL, NULL, NULL) < 0 ||
	    reg(s, B, "b", C, NULL, NULL) < 0 || reg(s, A, "a", B, A, NULL) < 0)
		return -1;
	root_link("r", R);
	return 0;
}

static void test_collect(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	struct store_gc_result res = { 0 };
	struct store_verify_result vr = { 0 };

	if (s == NULL || make_graph(s) < 0) {
		CU_FAIL("setup");
		return;
	}
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 3);
	CU_ASSERT_EQUAL(res.bytes, 3);
	/* Referrers go first: A before B before C. */
	CU_ASSERT_STRING_EQUAL(list.buf, A " " B " " C " ");
	CU_ASSERT(exists(R) && exists(X) && exists(Y));
	CU_ASSERT(!exists(A) && !exists(B) && !exists(C));
	CU_ASSERT_EQUAL(store_is_valid(s, A, &e), 0);
	CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS, NULL, NULL, &vr, &e), 0);
	CU_ASSERT_EQUAL(vr.checked, 3);
	CU_ASSERT_EQUAL(vr.problems, 0);
	/* Nothing more to do the second time. */
	strbuf_reset(&list);
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 0);
}

static void test_dry_run(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	struct store_gc_result res = { 0 };

	if (s == NULL || make_graph(s) < 0) {
		CU_FAIL("setup");
		return;
	}
	CU_ASSERT_EQUAL(gc(s, true, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 3);
	CU_ASSERT_STRING_EQUAL(list.buf, A " " B " " C " ");
	CU_ASSERT(exists(A) && exists(B) && exists(C));
}

static void test_max_freed(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	struct store_gc_result res = { 0 };
	char big[1001];

	memset(big, 'z', 1000);
	big[1000] = '\0';
	if (s == NULL || reg(s, A, big, NULL, NULL, NULL) < 0 ||
	    reg(s, B, big, NULL, NULL, NULL) < 0 || reg(s, C, big, NULL, NULL, NULL) < 0) {
		CU_FAIL("setup");
		return;
	}
	CU_ASSERT_EQUAL(gc(s, false, 1500, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 2);
	CU_ASSERT_EQUAL(res.bytes, 2000);
	CU_ASSERT(!exists(A) && !exists(B) && exists(C));
}

static void test_temp_roots(void)
{
	cleanup_store struct store *collector = open_store();
	struct store *writer = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *src = xasprintf("%s/file", tmp), *p = NULL;
	cleanup_free char *stale = xasprintf("%s/state/temproots/999999999", tmp);
	cleanup_free char *mine = xasprintf("%s/state/temproots/%ld", tmp, (long)getpid());
	struct store_gc_result res = { 0 };
	struct store_root *roots = NULL;
	size_t n = 0;
	bool listed = false;

	if (collector == NULL || writer == NULL) {
		CU_FAIL("setup");
		store_close(writer);
		return;
	}
	test_write_file(src, "protected\n");
	CU_ASSERT_EQUAL(store_add_path(writer, src, NULL, &p, &e), 0);
	/* A dead process's file: its roots count for nothing and it goes away. */
	test_write_file(stale, p);

	CU_ASSERT_EQUAL(store_find_roots(collector, true, &roots, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		if (STREQ(roots[i].path, p) && STARTS_WITH(roots[i].link, "{temp:"))
			listed = true;
	CU_ASSERT(listed);
	store_roots_free(roots, n);

	CU_ASSERT_EQUAL(gc(collector, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 0);
	CU_ASSERT(exists(p));
	CU_ASSERT_EQUAL(access(stale, F_OK), -1);
	CU_ASSERT(res.temp_files >= 1);

	store_close(writer);
	CU_ASSERT_EQUAL(access(mine, F_OK), -1); /* closing drops the roots file */
	CU_ASSERT_EQUAL(gc(collector, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 1);
	CU_ASSERT(!exists(p));
}

static void test_indirect_root(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *link = xasprintf("%s/result", tmp);
	cleanup_free char *autodir = xasprintf("%s/state/gcroots/auto", tmp);
	struct store_gc_result res = { 0 };
	struct store_root *roots = NULL;
	size_t n = 0;

	if (s == NULL || make_graph(s) < 0) {
		CU_FAIL("setup");
		return;
	}
	CU_ASSERT_EQUAL(store_add_perm_root(s, A, link, &e), 0);
	CU_ASSERT_EQUAL(store_find_roots(s, false, &roots, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		CU_ASSERT_STRING_EQUAL(roots[0].link, link);
		CU_ASSERT_STRING_EQUAL(roots[0].path, A);
		CU_ASSERT_STRING_EQUAL(roots[1].path, R);
	}
	store_roots_free(roots, n);
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 0);

	/* A non-symlink in the way is refused. */
	{
		cleanup_free char *file = xasprintf("%s/plain", tmp);
		test_write_file(file, "x");
		CU_ASSERT_EQUAL(store_add_perm_root(s, A, file, &e), -1);
		nib_error_clear(&e);
	}

	/* Our own temporary root (taken by add_perm_root) would still protect A. */
	store_close(TAKE_PTR(s));
	s = open_store();
	unlink(link);
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 3);
	{
		/* The stale link in gcroots/auto was cleaned up. */
		cleanup_dir DIR *d = opendir(autodir);
		struct dirent *de;
		int left = 0;
		while (d && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				left++;
		CU_ASSERT_EQUAL(left, 0);
	}
}

static void test_keep_derivations(void)
{
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	struct store_gc_result res = { 0 };
	struct store *s = open_store();

	if (s == NULL || reg(s, DRV, DRV_TEXT, NULL, NULL, NULL) < 0 ||
	    reg(s, OUT, "o", NULL, NULL, DRV) < 0) {
		CU_FAIL("setup");
		store_close(s);
		return;
	}
	root_link("o", OUT);
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 0);
	CU_ASSERT(exists(DRV));
	store_close(s);

	settings->keep_derivations = false;
	s = open_store();
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 1);
	CU_ASSERT(!exists(DRV) && exists(OUT));
	store_close(s);
}

static void test_keep_outputs(void)
{
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	cleanup_strv char **names = NULL, **outs = NULL, **derivers = NULL;
	struct store_gc_result res = { 0 };
	struct store *s = open_store();

	if (s == NULL || reg(s, DRV, DRV_TEXT, NULL, NULL, NULL) < 0 ||
	    reg(s, OUT, "o", NULL, NULL, DRV) < 0) {
		CU_FAIL("setup");
		store_close(s);
		return;
	}
	/* Registering the .drv recorded its outputs. */
	CU_ASSERT_EQUAL(store_query_derivation_outputs(s, DRV, &names, &outs, &e), 0);
	CU_ASSERT(strv_length(outs) == 1 && STREQ(names[0], "out") && STREQ(outs[0], OUT));
	CU_ASSERT_EQUAL(store_query_valid_derivers(s, OUT, &derivers, &e), 0);
	CU_ASSERT(strv_length(derivers) == 1 && STREQ(derivers[0], DRV));
	root_link("d", DRV);
	store_close(s);

	settings->keep_outputs = true;
	s = open_store();
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 0);
	store_close(s);

	settings->keep_outputs = false;
	s = open_store();
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 1);
	CU_ASSERT(exists(DRV) && !exists(OUT));
	store_close(s);
}

static void test_bad_drv_refused(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *real = NULL;
	struct store_path_info info = { 0 };
	/* The output path does not belong to this derivation. */
	char text[] = DRV_TEXT;
	char *o = strstr(text, "94f9f6");

	if (s == NULL || o == NULL) {
		CU_FAIL("setup");
		return;
	}
	o[0] = '0';
	real = real_of(DRV);
	test_write_file(real, text);
	info.path = (char *)DRV;
	CU_ASSERT_EQUAL(nar_hash_path(real, &info.nar_hash, &info.nar_size, &e), 0);
	CU_ASSERT_EQUAL(local_store_register_valid_paths(s, &info, 1, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "expected"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_is_valid(s, DRV, &e), 0);
	test_write_file(real, "not a derivation");
	CU_ASSERT_EQUAL(local_store_register_valid_paths(s, &info, 1, &e), -1);
	CU_ASSERT_EQUAL(store_is_valid(s, DRV, &e), 0);
}

static void test_delete_specific(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	cleanup_error struct nib_error *e = NULL;
	struct store_gc_result res = { 0 };
	char *const live[] = { (char *)X, (char *)C, NULL };
	char *const dead[] = { (char *)B, NULL };
	struct store_gc_options o = { .paths = live, .on_path = collect_list, .userdata = &list };

	if (s == NULL || make_graph(s) < 0) {
		CU_FAIL("setup");
		return;
	}
	CU_ASSERT_EQUAL(store_collect_garbage(s, &o, &res, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_DENIED && strstr(e->msg, X));
	nib_error_clear(&e);
	CU_ASSERT(exists(C)); /* nothing deleted */
	o.paths = dead;
	CU_ASSERT_EQUAL(store_collect_garbage(s, &o, &res, &e), 0);
	CU_ASSERT_STRING_EQUAL(list.buf, A " " B " ");
	CU_ASSERT(!exists(A) && !exists(B) && exists(C));
}

static void test_stale_files(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_strbuf struct strbuf list = STRBUF_INIT;
	cleanup_free char *tmpdir = xasprintf("%s/root/nix/store/.tmp-1-1-1", tmp);
	cleanup_free char *tmpfile = xasprintf("%s/f", tmpdir);
	cleanup_free char *lock =
		xasprintf("%s/root/nix/store/%s.lock", tmp, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a");
	cleanup_free char *leftover = real_of(B);
	cleanup_free char *unknown = xasprintf("%s/root/nix/store/README", tmp);
	struct store_gc_result res = { 0 };

	if (s == NULL) {
		CU_FAIL("setup");
		return;
	}
	mkdir(tmpdir, 0755);
	test_write_file(tmpfile, "partial");
	chmod(tmpdir, 0555);
	test_write_file(lock, "");
	test_write_file(leftover, "invalid leftover of a crashed writer");
	test_write_file(unknown, "not a store path: left alone");
	CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
	CU_ASSERT_EQUAL(res.paths, 1); /* the leftover */
	CU_ASSERT_EQUAL(res.temp_files, 2);
	CU_ASSERT_EQUAL(access(tmpdir, F_OK), -1);
	CU_ASSERT_EQUAL(access(lock, F_OK), -1);
	CU_ASSERT_EQUAL(access(leftover, F_OK), -1);
	CU_ASSERT_EQUAL(access(unknown, F_OK), 0);
}

/*
 * A writer adds paths while collectors run: every path the writer added is
 * valid and complete for as long as it holds the store open.
 */
static void test_gc_races_writer(void)
{
	int go[2];
	pid_t pid;
	int status = 0;
	char c;

	{
		struct store *s = open_store();
		store_close(s);
	}
	if (pipe(go) < 0) {
		CU_FAIL("pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct store *s = open_store();
		cleanup_strv char **added = xcalloc(1, sizeof(char *));
		int bad = s == NULL;

		close(go[0]);
		if (write(go[1], "x", 1) != 1)
			_exit(2);
		for (int i = 0; i < 150 && !bad; i++) {
			cleanup_free char *src = xasprintf("%s/w%d", tmp, i);
			cleanup_free char *text = xasprintf("writer file %d\n", i);
			char *p = NULL;
			struct nib_error *e = NULL;

			test_write_file(src, text);
			if (store_add_path(s, src, NULL, &p, &e) < 0) {
				fprintf(stderr, "writer: %s\n", e->msg);
				bad = 1;
				break;
			}
			strv_push(&added, p);
			free(p);
			/* Everything added so far must still be there. */
			for (char **q = added; *q; q++) {
				cleanup_free char *real = real_of(*q);
				if (store_is_valid(s, *q, &e) != 1 || access(real, F_OK) < 0) {
					fprintf(stderr, "writer: lost '%s'\n", *q);
					bad = 1;
				}
			}
		}
		store_close(s);
		_exit(bad);
	}
	close(go[1]);
	if (read(go[0], &c, 1) != 1)
		CU_FAIL("child did not start");
	close(go[0]);
	{
		cleanup_store struct store *s = open_store();
		int rounds = 0;
		/* Collect over and over for as long as the writer runs. */
		while (waitpid(pid, &status, WNOHANG) == 0) {
			cleanup_strbuf struct strbuf list = STRBUF_INIT;
			struct store_gc_result res = { 0 };
			CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
			rounds++;
		}
		CU_ASSERT(rounds > 1);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		{
			/* Once the writer is gone, its paths are garbage. */
			cleanup_strbuf struct strbuf list = STRBUF_INIT;
			struct store_gc_result res = { 0 };
			struct store_verify_result vr = { 0 };
			cleanup_error struct nib_error *e = NULL;
			CU_ASSERT_EQUAL(gc(s, false, 0, &list, &res), 0);
			CU_ASSERT_EQUAL(store_verify(s, 0, NULL, NULL, &vr, &e), 0);
			CU_ASSERT_EQUAL(vr.checked, 0);
		}
	}
}

static CU_TestInfo tests[] = {
	{ "collect unreachable paths, referrers first", test_collect },
	{ "dry run", test_dry_run },
	{ "max freed", test_max_freed },
	{ "temporary roots", test_temp_roots },
	{ "indirect roots", test_indirect_root },
	{ "keep-derivations", test_keep_derivations },
	{ "keep-outputs and derivation outputs", test_keep_outputs },
	{ "a .drv with wrong outputs is not registered", test_bad_drv_refused },
	{ "delete specific paths", test_delete_specific },
	{ "stale temporaries, locks and leftovers", test_stale_files },
	{ "collector racing a writer", test_gc_races_writer },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "gc", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

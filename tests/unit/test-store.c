/*
 * Unit tests of the local store: layout, adding, registering, queries,
 * errors, verification and concurrent writers.  Every store lives under a
 * temporary store root with the logical directory /nix/store, so paths are
 * Nix's own (the expected ones below were made with Nix 2.8's nix-store
 * --add and builtins.toFile) and nothing touches the real /nix.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
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

/* nix-store --add of a file "f" containing "hi\n". */
#define PATH_F "/nix/store/ab3li50xq0nl4q5lxdyinb8w8y13my9s-f"
/* nix-store --add of a directory "d": a (executable, "hello\n"), l -> a. */
#define PATH_D "/nix/store/wlhx3dm3l5sjwznb9g04a1i2a747b0fm-d"
#define NARHASH_D "1ym2h2vkp7kxkg6w82a88kyjkiqn8wjqhdccgsh1n7bghbq2rsyb"
/* builtins.toFile "foo" "bar" */
#define PATH_FOO "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
/* builtins.toFile "withref" "see ${PATH_F}" */
#define PATH_WITHREF "/nix/store/3fyrs4ffgw0l83f6zkry6078cbrpvirl-withref"

static char *tmp;
static struct settings *settings;

static void setup(void)
{
	tmp = test_mkdtemp();
	settings = test_store_settings(tmp, "/nix/store", "root/nix/var/nix");
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

static char *src_path(const char *name)
{
	return xasprintf("%s/src/%s", tmp, name);
}

/* The source tree the expected paths were computed from. */
static void make_sources(void)
{
	cleanup_free char *src = xasprintf("%s/src", tmp);
	cleanup_free char *d = src_path("d"), *a = src_path("d/a"), *l = src_path("d/l");
	cleanup_free char *f = src_path("f");

	mkdir(src, 0755);
	mkdir(d, 0755);
	test_write_file(a, "hello\n");
	chmod(a, 0755);
	if (symlink("a", l) < 0)
		perror("symlink");
	test_write_file(f, "hi\n");
}

static char *real_of(const char *logical)
{
	return xasprintf("%s/root%s", tmp, logical);
}

static void test_layout(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_free char *store = xasprintf("%s/root/nix/store", tmp);
	cleanup_free char *schema = xasprintf("%s/root/nix/var/nix/db/schema", tmp);
	cleanup_free char *text = NULL;
	const char *dirs[] = { "db", "gcroots", "gcroots/auto", "temproots" };
	struct stat st;
	size_t len;
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_PTR_NOT_NULL(s);
	if (s == NULL)
		return;
	CU_ASSERT_STRING_EQUAL(store_dir(s), "/nix/store");
	CU_ASSERT_STRING_EQUAL(local_store_real_dir(s), store);
	CU_ASSERT_EQUAL(stat(store, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 01775);
	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, schema, 100, &text, &len, &e), 0);
	CU_ASSERT_STRING_EQUAL(text, "10");
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		cleanup_free char *p = xasprintf("%s/root/nix/var/nix/%s", tmp, dirs[i]);
		CU_ASSERT(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	}
	/* A second handle opens the same store without recreating anything. */
	{
		cleanup_store struct store *s2 = open_store();
		CU_ASSERT_PTR_NOT_NULL(s2);
	}
}

static void test_add_path_matches_nix(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *f = NULL, *d = NULL, *again = NULL;
	cleanup_free char *srcf = src_path("f"), *srcd = src_path("d");
	cleanup_free char *reald = real_of(PATH_D), *reala = NULL, *realf = real_of(PATH_F);
	struct store_path_info info = { 0 };
	struct stat st;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	make_sources();
	CU_ASSERT_EQUAL(store_add_path(s, srcf, NULL, &f, &e), 0);
	CU_ASSERT_EQUAL(store_add_path(s, srcd, NULL, &d, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	if (f == NULL || d == NULL)
		return;
	CU_ASSERT_STRING_EQUAL(f, PATH_F);
	CU_ASSERT_STRING_EQUAL(d, PATH_D);

	/* Canonical: read-only, mtime 1, exec bit kept. */
	CU_ASSERT_EQUAL(lstat(realf, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0444);
	CU_ASSERT_EQUAL(st.st_mtim.tv_sec, 1);
	CU_ASSERT_EQUAL(lstat(reald, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);
	reala = xasprintf("%s/a", reald);
	CU_ASSERT_EQUAL(lstat(reala, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);

	CU_ASSERT_EQUAL(store_query_path_info(s, PATH_D, &info, &e), 1);
	CU_ASSERT_EQUAL(info.nar_size, 512);
	CU_ASSERT_STRING_EQUAL(info.ca, "fixed:r:sha256:" NARHASH_D);
	CU_ASSERT(info.ultimate);
	CU_ASSERT_EQUAL(strv_length(info.references), 0);
	CU_ASSERT_PTR_NULL(info.deriver);
	{
		cleanup_free char *h = hash_to_string(&info.nar_hash, HASH_ENC_BASE32, false);
		CU_ASSERT_STRING_EQUAL(h, NARHASH_D);
	}
	store_path_info_release(&info);

	/* Adding again changes nothing and gives the same path. */
	CU_ASSERT_EQUAL(store_add_path(s, srcd, NULL, &again, &e), 0);
	CU_ASSERT_STRING_EQUAL(again, PATH_D);
	free(again);
	again = NULL;
	/* --name */
	CU_ASSERT_EQUAL(store_add_path(s, srcf, "other-name", &again, &e), 0);
	CU_ASSERT(again && strstr(again, "-other-name") != NULL);
}

static void test_add_text_and_refs(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *foo = NULL, *f = NULL, *w = NULL, *bad = NULL;
	cleanup_free char *srcf = src_path("f");
	cleanup_strv char **referrers = NULL, **refs = NULL;
	char *const refv[] = { (char *)PATH_F, NULL };
	char *const badref[] = { (char *)"/nix/store/00000000000000000000000000000000-nope", NULL };
	const char *text = "see " PATH_F;
	struct store_path_info info = { 0 };

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	make_sources();
	/* An empty store lists nothing. */
	{
		cleanup_strv char **all = NULL;
		CU_ASSERT_EQUAL(store_query_all_valid(s, &all, &e), 0);
		CU_ASSERT(all != NULL && all[0] == NULL);
	}
	CU_ASSERT_EQUAL(store_add_text(s, "foo", "bar", 3, NULL, &foo, &e), 0);
	CU_ASSERT_STRING_EQUAL(foo, PATH_FOO);

	/* A reference must be valid. */
	CU_ASSERT_EQUAL(store_add_text(s, "withref", text, strlen(text), refv, &w, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND && strstr(e->msg, PATH_F));
	nib_error_clear(&e);
	CU_ASSERT_PTR_NULL(w);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_WITHREF, &e), 0);

	CU_ASSERT_EQUAL(store_add_path(s, srcf, NULL, &f, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "withref", text, strlen(text), refv, &w, &e), 0);
	CU_ASSERT_STRING_EQUAL(w, PATH_WITHREF);
	CU_ASSERT_EQUAL(store_query_references(s, PATH_WITHREF, &refs, &e), 0);
	CU_ASSERT(strv_length(refs) == 1 && STREQ(refs[0], PATH_F));
	CU_ASSERT_EQUAL(store_query_referrers(s, PATH_F, &referrers, &e), 0);
	CU_ASSERT(strv_length(referrers) == 1 && STREQ(referrers[0], PATH_WITHREF));
	CU_ASSERT_EQUAL(store_query_path_info(s, PATH_WITHREF, &info, &e), 1);
	CU_ASSERT(info.ca && STARTS_WITH(info.ca, "text:sha256:"));
	store_path_info_release(&info);

	/* Every valid path, sorted (PATH_WITHREF < PATH_F < PATH_FOO). */
	{
		cleanup_strv char **all = NULL;
		CU_ASSERT_EQUAL(store_query_all_valid(s, &all, &e), 0);
		CU_ASSERT_EQUAL(strv_length(all), 3);
		if (strv_length(all) == 3) {
			CU_ASSERT_STRING_EQUAL(all[0], PATH_WITHREF);
			CU_ASSERT_STRING_EQUAL(all[1], PATH_F);
			CU_ASSERT_STRING_EQUAL(all[2], PATH_FOO);
		}
	}

	/* A malformed reference. */
	CU_ASSERT_EQUAL(store_add_text(s, "x", "y", 1, badref, &bad, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND);
	nib_error_clear(&e);
	/* A bad name. */
	CU_ASSERT_EQUAL(store_add_text(s, ".hidden", "y", 1, NULL, &bad, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_INVALID);
}

static int sb_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	strbuf_add(userdata, data, len);
	return 0;
}

struct mem_source {
	const char *p;
	size_t left;
};

static ssize_t mem_read(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	struct mem_source *m = userdata;
	size_t n = len < m->left ? len : m->left;

	(void)err;
	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (ssize_t)n;
}

static void test_add_nar(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strbuf struct strbuf nar = STRBUF_INIT;
	cleanup_free char *srcd = src_path("d"), *real = real_of(PATH_D);
	struct store_path_info info = { 0 };
	struct mem_source m;
	struct stat st;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	make_sources();
	CU_ASSERT_EQUAL(nar_dump_at(AT_FDCWD, srcd, sb_sink, &nar, &e), 0);
	info.path = (char *)PATH_D;
	info.nar_size = nar.len;
	hash_buffer(HASH_SHA256, nar.buf, nar.len, &info.nar_hash);

	/* A wrong hash: refused, nothing left behind. */
	info.nar_hash.bytes[0] ^= 1;
	m = (struct mem_source){ nar.buf, nar.len };
	CU_ASSERT_EQUAL(store_add_nar(s, &info, mem_read, &m, 0, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_INVALID && strstr(e->msg, "hash mismatch"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(lstat(real, &st), -1);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_D, &e), 0);
	info.nar_hash.bytes[0] ^= 1;

	/* A wrong size. */
	info.nar_size = nar.len + 8;
	m = (struct mem_source){ nar.buf, nar.len };
	CU_ASSERT_EQUAL(store_add_nar(s, &info, mem_read, &m, 0, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "size"));
	nib_error_clear(&e);
	info.nar_size = nar.len;

	/* A truncated stream. */
	m = (struct mem_source){ nar.buf, nar.len - 16 };
	CU_ASSERT_EQUAL(store_add_nar(s, &info, mem_read, &m, 0, &e), -1);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_D, &e), 0);

	/* The archive inside a longer stream: only its bytes are read. */
	strbuf_addstr(&nar, "TRAILER");
	m = (struct mem_source){ nar.buf, nar.len };
	CU_ASSERT_EQUAL(store_add_nar(s, &info, mem_read, &m, 0, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT_EQUAL(m.left, 7);
	strbuf_setlen(&nar, nar.len - 7);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_D, &e), 1);
	CU_ASSERT_EQUAL(lstat(real, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);

	/* Repair replaces damaged contents; the path stays valid throughout. */
	{
		cleanup_free char *a = xasprintf("%s/a", real);
		struct store_verify_result vr = { 0 };
		chmod(a, 0755);
		test_write_file(a, "damaged\n");
		CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS, NULL, NULL, &vr, &e), 0);
		CU_ASSERT(vr.problems >= 1);
		m = (struct mem_source){ nar.buf, nar.len };
		CU_ASSERT_EQUAL(store_add_nar(s, &info, mem_read, &m, STORE_ADD_REPAIR, &e), 0);
		CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS, NULL, NULL, &vr, &e), 0);
		CU_ASSERT_EQUAL(vr.problems, 0);
	}
	/* No temporary names are left in the store directory. */
	{
		cleanup_free char *dir = real_of("/nix/store");
		cleanup_dir DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL)
			CU_ASSERT(!STARTS_WITH(de->d_name, ".tmp-"));
	}
}

/* Make a fake build output directly in the store directory. */
static void make_output(const char *logical, const char *content)
{
	cleanup_free char *real = real_of(logical);
	test_write_file(real, content);
}

static void fill_info(struct store_path_info *info, const char *path, char **refs,
		      const char *deriver)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *real = real_of(path);

	memset(info, 0, sizeof(*info));
	info->path = (char *)path;
	info->references = refs;
	info->deriver = (char *)deriver;
	if (nar_hash_path(real, &info->nar_hash, &info->nar_size, &e) < 0)
		fprintf(stderr, "%s\n", e->msg);
}

#define OUT_A "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
#define OUT_B "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
#define OUT_C "/nix/store/cccccccccccccccccccccccccccccccc-c"
#define DRV_X "/nix/store/dddddddddddddddddddddddddddddddd-x.drv"

static void test_register_and_query(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strv char **closure = NULL, **referrers = NULL;
	cleanup_free char *found = NULL;
	char *refs_a[] = { (char *)OUT_B, (char *)OUT_A, NULL };
	char *refs_b[] = { (char *)OUT_C, NULL };
	char *refs_bad[] = { (char *)"/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-e", NULL };
	struct store_path_info infos[3], info = { 0 };
	char *const q[] = { (char *)OUT_A, (char *)OUT_C,
			    (char *)"/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-z", NULL };
	bool valid[3];

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	make_output(OUT_A, "a");
	make_output(OUT_B, "b");
	make_output(OUT_C, "c");
	fill_info(&infos[0], OUT_A, refs_a, DRV_X);
	fill_info(&infos[1], OUT_B, refs_b, NULL);
	fill_info(&infos[2], OUT_C, refs_bad, NULL);

	/* One bad reference: nothing at all is registered. */
	CU_ASSERT_EQUAL(local_store_register_valid_paths(s, infos, 3, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_query_valid(s, q, 3, valid, &e), 0);
	CU_ASSERT(!valid[0] && !valid[1] && !valid[2]);

	infos[2].references = NULL;
	CU_ASSERT_EQUAL(local_store_register_valid_paths(s, infos, 3, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	CU_ASSERT_EQUAL(store_query_valid(s, q, 3, valid, &e), 0);
	CU_ASSERT(valid[0] && valid[1] && !valid[2]);

	CU_ASSERT_EQUAL(store_query_path_info(s, OUT_A, &info, &e), 1);
	CU_ASSERT_EQUAL(strv_length(info.references), 2);
	if (strv_length(info.references) == 2) {
		CU_ASSERT_STRING_EQUAL(info.references[0], OUT_A); /* sorted, self included */
		CU_ASSERT_STRING_EQUAL(info.references[1], OUT_B);
	}
	CU_ASSERT_STRING_EQUAL(info.deriver, DRV_X);
	CU_ASSERT(info.registration_time > 0);
	store_path_info_release(&info);

	{
		struct store_path_info many[3];
		CU_ASSERT_EQUAL(store_query_path_infos(s, q, 3, many, &e), 0);
		CU_ASSERT(many[0].path && STREQ(many[0].path, OUT_A));
		CU_ASSERT_EQUAL(strv_length(many[0].references), 2);
		CU_ASSERT(many[1].path && STREQ(many[1].path, OUT_C));
		CU_ASSERT_PTR_NULL(many[2].path); /* not valid */
		for (int i = 0; i < 3; i++)
			store_path_info_release(&many[i]);
	}
	{
		char *const one[] = { (char *)OUT_A, NULL };
		CU_ASSERT_EQUAL(store_query_closure(s, one, 1, 0, &closure, &e), 0);
		CU_ASSERT_EQUAL(strv_length(closure), 3);
	}
	CU_ASSERT_EQUAL(store_query_referrers(s, OUT_C, &referrers, &e), 0);
	CU_ASSERT(strv_length(referrers) == 1 && STREQ(referrers[0], OUT_B));

	CU_ASSERT_EQUAL(
		store_query_path_from_hash_part(s, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", &found, &e),
		1);
	CU_ASSERT(found && STREQ(found, OUT_B));
	CU_ASSERT_EQUAL(
		store_query_path_from_hash_part(s, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbc", &found, &e),
		0);
	CU_ASSERT_EQUAL(store_query_path_from_hash_part(s, "short", &found, &e), -1);
	nib_error_clear(&e);

	/* Invalidation: refused while referenced, fine once the referrer went. */
	CU_ASSERT_EQUAL(local_store_invalidate_path(s, OUT_C, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_DENIED && strstr(e->msg, OUT_B));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(local_store_invalidate_path(s, OUT_A, &e), 0); /* self-reference is fine */
	CU_ASSERT_EQUAL(local_store_invalidate_path(s, OUT_B, &e), 0);
	CU_ASSERT_EQUAL(local_store_invalidate_path(s, OUT_C, &e), 0);
	CU_ASSERT_EQUAL(local_store_invalidate_path(s, OUT_C, &e), 0); /* already invalid */
	CU_ASSERT_PTR_NULL(e);

	/* Missing contents cannot be registered. */
	fill_info(&infos[0], OUT_A, NULL, NULL);
	{
		cleanup_free char *real = real_of(OUT_A);
		unlink(real);
	}
	CU_ASSERT_EQUAL(local_store_register_valid_paths(s, infos, 1, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND && strstr(e->msg, "missing"));
}

static void test_bad_paths(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *p = NULL, *missing = src_path("does-not-exist");
	struct store_path_info info = { 0 };
	cleanup_strv char **v = NULL;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	CU_ASSERT_EQUAL(store_query_path_info(s, "/tmp/x", &info, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_INVALID);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_query_path_info(s, "/nix/store/short-x", &info, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_INVALID);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_query_path_info(s, "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x",
					      &info, &e),
			-1);
	CU_ASSERT(e && e->code == NIB_E_INVALID); /* 'e' is not a Nix base-32 digit */
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_query_path_info(s, OUT_A, &info, &e), 0);
	CU_ASSERT_EQUAL(store_query_references(s, OUT_A, &v, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_add_path(s, missing, NULL, &p, &e), -1);
	CU_ASSERT(e && e->sys_errno == ENOENT && strstr(e->msg, missing));
	nib_error_clear(&e);
	make_sources();
	{
		cleanup_free char *bad = src_path("bad name");
		test_write_file(bad, "x");
		CU_ASSERT_EQUAL(store_add_path(s, bad, NULL, &p, &e), -1);
		CU_ASSERT(e && e->code == NIB_E_INVALID);
		nib_error_clear(&e);
	}
	{
		cleanup_free char *fifo = src_path("fifo"), *dir = src_path("withfifo");
		mkdir(dir, 0755);
		free(fifo);
		fifo = src_path("withfifo/p");
		CU_ASSERT_EQUAL(mkfifo(fifo, 0644), 0);
		CU_ASSERT_EQUAL(store_add_path(s, dir, NULL, &p, &e), -1);
		CU_ASSERT(e && strstr(e->msg, "not a regular file"));
		nib_error_clear(&e);
	}
	CU_ASSERT_PTR_NULL(p);
}

static void test_readonly_and_schema_errors(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *schema = xasprintf("%s/root/nix/var/nix/db/schema", tmp);
	cleanup_free char *dbfile = xasprintf("%s/root/nix/var/nix/db/db.sqlite", tmp);
	struct store *s = NULL;
	cleanup_free char *p = NULL, *srcf = src_path("f");

	/* Read-only needs an existing database. */
	CU_ASSERT_EQUAL(local_store_open(settings, LOCAL_STORE_READONLY, &s, &e), -1);
	nib_error_clear(&e);
	s = open_store();
	store_close(s);
	CU_ASSERT_EQUAL(local_store_open(settings, LOCAL_STORE_READONLY, &s, &e), 0);
	make_sources();
	CU_ASSERT_EQUAL(store_add_path(s, srcf, NULL, &p, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_DENIED);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_F, &e), 0);
	store_close(s);
	s = NULL;

	/* A newer schema version is refused, clearly. */
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, schema, "11", 2, 0644, false, &e), 0);
	CU_ASSERT_EQUAL(local_store_open(settings, 0, &s, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_UNSUPPORTED && strstr(e->msg, "newer"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, schema, "10", 2, 0644, false, &e), 0);

	/* A damaged database file (and no write-ahead log to read pages from). */
	{
		cleanup_free char *wal = xasprintf("%s-wal", dbfile),
				  *shm = xasprintf("%s-shm", dbfile);
		unlink(wal);
		unlink(shm);
	}
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, dbfile,
					     "garbage garbage garbage garbage "
					     "garbage garbage garbage garbage garbage garbage",
					     80, 0644, false, &e),
			0);
	CU_ASSERT_EQUAL(local_store_open(settings, 0, &s, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "damaged"));
	CU_ASSERT_PTR_NULL(s);
}

static void test_canonicalise(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dir = real_of(OUT_A), *file = NULL;
	struct stat st;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	mkdir(dir, 0777);
	file = xasprintf("%s/suid", dir);
	test_write_file(file, "x");
	chmod(file, 06777);
	(void)setxattr(file, "user.test", "v", 1, 0); /* may be unsupported (tmpfs) */
	CU_ASSERT_EQUAL(local_store_canonicalise(s, dir, &e), 0);
	CU_ASSERT_EQUAL(lstat(file, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);
	CU_ASSERT_EQUAL(st.st_mtim.tv_sec, 1);
	CU_ASSERT_EQUAL(getxattr(file, "user.test", NULL, 0), -1);
	CU_ASSERT_EQUAL(lstat(dir, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);
	CU_ASSERT_EQUAL(st.st_mtim.tv_sec, 1);
}

/*
 * Batches: later adds see earlier ones, other connections see nothing
 * until the end, an abandoned batch leaves nothing behind, and adding the
 * same path twice in a batch does not wait for the batch's own lock.
 */
static void test_batch(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_store struct store *other = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *f = NULL, *w = NULL, *foo = NULL, *foo2 = NULL, *q = NULL, *rq = NULL;
	cleanup_free char *srcf = src_path("f");
	char *const refv[] = { (char *)PATH_F, NULL };
	const char *text = "see " PATH_F;
	struct stat st;

	if (s == NULL || other == NULL) {
		CU_FAIL("open");
		return;
	}
	make_sources();
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_path(s, srcf, NULL, &f, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "withref", text, strlen(text), refv, &w, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "foo", "bar", 3, NULL, &foo, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "foo", "bar", 3, NULL, &foo2, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_WITHREF, &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, PATH_WITHREF, &e), 0);
	CU_ASSERT_EQUAL(local_store_batch_end(s, true, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(other, PATH_F, &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, PATH_WITHREF, &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, PATH_FOO, &e), 1);
	CU_ASSERT_EQUAL(local_store_batch_end(s, true, &e), 0); /* no batch: nothing to do */

	/* Abandoned: neither registered nor left in the store. */
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "qux", "abandoned", 9, NULL, &q, &e), 0);
	rq = q ? real_of(q) : xstrdup("/nonexistent");
	CU_ASSERT_EQUAL(lstat(rq, &st), 0);
	CU_ASSERT_EQUAL(local_store_batch_end(s, false, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(s, q, &e), 0);
	CU_ASSERT_EQUAL(lstat(rq, &st), -1);
	/* Nor when the store is closed in the middle of one. */
	free(TAKE_PTR(q));
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "qux", "abandoned", 9, NULL, &q, &e), 0);
	CU_ASSERT_EQUAL(lstat(rq, &st), 0);
	store_close(TAKE_PTR(s));
	CU_ASSERT_EQUAL(lstat(rq, &st), -1);
	CU_ASSERT_EQUAL(store_is_valid(other, q, &e), 0);
	CU_ASSERT_PTR_NULL(e);
}

/*
 * A process that ends with local_store_close_for_exit (as a daemon
 * connection process does) leaves what it committed, not what its open
 * batch held, no temporary-roots file, and a database that verifies clean.
 */
static void test_close_for_exit(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *roots = xasprintf("%s/root/nix/var/nix/temproots", tmp);
	struct store_verify_result vr = { 0 };
	struct store *s;
	int status = -1;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		struct store *c = open_store();
		char *p = NULL, *q = NULL;
		int ok = c != NULL && store_add_text(c, "foo", "bar", 3, NULL, &p, NULL) == 0 &&
			 store_add_temp_root(c, PATH_F, NULL) == 0 &&
			 local_store_batch_begin(c, NULL) == 0 &&
			 store_add_text(c, "qux", "abandoned", 9, NULL, &q, NULL) == 0;
		local_store_close_for_exit(c);
		_exit(ok ? 0 : 1);
	}
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	s = open_store();
	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_FOO, &e), 1);
	{
		/* The abandoned batch's path: neither valid nor in the store. */
		cleanup_strv char **all = NULL;
		cleanup_free char *dir = xasprintf("%s/root/nix/store", tmp);
		cleanup_dir DIR *d = opendir(dir);
		struct dirent *de;
		size_t qux = 0;

		CU_ASSERT_EQUAL(store_query_all_valid(s, &all, &e), 0);
		CU_ASSERT_EQUAL(all ? strv_length(all) : 0, 1);
		CU_ASSERT_PTR_NOT_NULL(d);
		while (d != NULL && (de = readdir(d)) != NULL)
			if (strstr(de->d_name, "-qux") != NULL)
				qux++;
		CU_ASSERT_EQUAL(qux, 0);
	}
	{
		cleanup_free char *mine = xasprintf("%s/%ld", roots, (long)pid);
		struct stat st;
		CU_ASSERT_EQUAL(lstat(mine, &st), -1);
	}
	CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS, NULL, NULL, &vr, &e), 0);
	CU_ASSERT_EQUAL(vr.problems, 0);
	CU_ASSERT_PTR_NULL(e);
	store_close(s);
}

/* A long batch commits every 256 paths (and releases their locks). */
static void test_batch_long(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_store struct store *other = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strv char **paths = xcalloc(1, sizeof(char *));

	if (s == NULL || other == NULL) {
		CU_FAIL("open");
		return;
	}
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	for (int i = 0; i < 300; i++) {
		char text[32];
		char *p = NULL;
		int n = snprintf(text, sizeof(text), "text %d", i);
		CU_ASSERT_EQUAL(store_add_text(s, "t", text, (size_t)n, NULL, &p, &e), 0);
		if (p != NULL)
			strv_push(&paths, p);
		free(p);
	}
	CU_ASSERT_EQUAL(strv_length(paths), 300);
	CU_ASSERT_EQUAL(store_is_valid(other, paths[0], &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, paths[255], &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, paths[256], &e), 0);
	CU_ASSERT_EQUAL(local_store_batch_end(s, true, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(other, paths[299], &e), 1);
	CU_ASSERT_PTR_NULL(e);
}

/* Run fn(s) in a forked child that then ends as a daemon connection process does; fn's result. */
static int in_child(struct store *s, int (*fn)(struct store *))
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		int r = fn(s);
		local_store_close_for_exit(s);
		_exit(r);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int child_reuses(struct store *s)
{
	char *p = NULL;
	uint64_t n = 0;

	if (local_store_check_reuse(s, NULL) < 0)
		return 1;
	/* Added by another handle after s was opened. */
	if (store_is_valid(s, PATH_FOO, NULL) != 1)
		return 2;
	/* The 300 texts of test_reuse_after_fork, when it added them. */
	{
		cleanup_strv char **all = NULL;
		if (store_query_all_valid(s, &all, NULL) < 0)
			return 3;
		n = strv_length(all);
	}
	if (n != 1 && n != 301 + 1)
		return 4;
	if (store_add_text(s, "child", "written by a child", 18, NULL, &p, NULL) < 0)
		return 5;
	free(p);
	return 0;
}

static int child_check_only(struct store *s)
{
	cleanup_error struct nib_error *e = NULL;

	return local_store_check_reuse(s, &e) == 0 ? 0 : 1;
}

/*
 * A daemon's connection processes use the handle their parent opened, with
 * its statements prepared (local_store_prepare, local_store_check_reuse): a
 * child sees what others committed since, also after the write-ahead log
 * was checkpointed and started again, and writes through it; it is told to
 * open the store itself once the database file or its schema changed.
 */
static void test_reuse_after_fork(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_store struct store *other = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *foo = NULL, *child = NULL;
	cleanup_free char *dir = xasprintf("%s/root/nix/var/nix/db", tmp);
	cleanup_free char *schema = path_join(dir, "schema"), *db = path_join(dir, "db.sqlite");
	cleanup_free char *moved = path_join(dir, "moved.sqlite");
	cleanup_strv char **all = NULL;

	if (s == NULL || other == NULL) {
		CU_FAIL("open");
		return;
	}
	CU_ASSERT_EQUAL(local_store_prepare(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(other, "foo", "bar", 3, NULL, &foo, &e), 0);
	CU_ASSERT_EQUAL(in_child(s, child_reuses), 0);
	CU_ASSERT_EQUAL(store_add_text(other, "child", "written by a child", 18, NULL, &child, &e),
			0);
	CU_ASSERT_EQUAL(store_is_valid(other, child, &e), 1);

	/* Enough commits for a checkpoint and a new log (256 pages). */
	for (int i = 0; i < 300; i++) {
		char text[32];
		char *p = NULL;
		int n = snprintf(text, sizeof(text), "text %d", i);
		CU_ASSERT_EQUAL(store_add_text(other, "t", text, (size_t)n, NULL, &p, &e), 0);
		free(p);
	}
	CU_ASSERT_EQUAL(in_child(s, child_reuses), 0);
	CU_ASSERT_EQUAL(store_query_all_valid(other, &all, &e), 0);
	CU_ASSERT_EQUAL(all ? strv_length(all) : 0, 302);

	/* A newer schema, then the old one again. */
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, schema, "11", 2, 0644, false, &e), 0);
	CU_ASSERT_EQUAL(in_child(s, child_check_only), 1);
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, schema, "10", 2, 0644, false, &e), 0);
	CU_ASSERT_EQUAL(in_child(s, child_check_only), 0);

	/* Another database file under the name, then the first one back. */
	CU_ASSERT_EQUAL(rename(db, moved), 0);
	CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, db, "", 0, 0644, false, &e), 0);
	CU_ASSERT_EQUAL(in_child(s, child_check_only), 1);
	CU_ASSERT_EQUAL(rename(moved, db), 0);
	CU_ASSERT_EQUAL(in_child(s, child_check_only), 0);
	CU_ASSERT_PTR_NULL(e);

	{
		struct store_verify_result vr = { 0 };
		CU_ASSERT_EQUAL(store_verify(other, STORE_VERIFY_CONTENTS, NULL, NULL, &vr, &e), 0);
		CU_ASSERT_EQUAL(vr.problems, 0);
	}
}

/* A store with fsync-metadata = true (the store keeps the value it was opened with). */
static struct store *open_store_fsync(void)
{
	struct store *s;

	settings->fsync_metadata = true;
	s = open_store();
	settings->fsync_metadata = false;
	return s;
}

/* Canonicalise without syncing, then sync the tree where it ends up (as builds do). */
static void test_canonicalise_then_sync(void)
{
	cleanup_store struct store *s = open_store_fsync();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dir = real_of(OUT_A), *sub = NULL, *file = NULL, *link = NULL;
	cleanup_free char *gone = real_of(OUT_B);
	struct stat st;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	mkdir(dir, 0777);
	sub = xasprintf("%s/sub", dir);
	mkdir(sub, 0777);
	file = xasprintf("%s/sub/f", dir);
	test_write_file(file, "x");
	chmod(file, 0755);
	link = xasprintf("%s/l", dir);
	CU_ASSERT_EQUAL(symlink("sub/f", link), 0);
	CU_ASSERT_EQUAL(local_store_canonicalise_unsynced(s, dir, &e), 0);
	CU_ASSERT_EQUAL(lstat(file, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);
	CU_ASSERT_EQUAL(st.st_mtim.tv_sec, 1);
	CU_ASSERT_EQUAL(lstat(sub, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0555);
	CU_ASSERT_EQUAL(local_store_sync_tree(s, dir, true, &e), 0);
	CU_ASSERT_EQUAL(local_store_sync_tree(s, file, false, &e), 0);
	CU_ASSERT_EQUAL(local_store_sync_tree(s, link, true, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(local_store_sync_tree(s, gone, true, &e), -1);
	CU_ASSERT(e && e->sys_errno == ENOENT);
}

/*
 * A batch ended in the background: this process sees its paths at once,
 * others only once it settles; a write of the store settles it first (so
 * does closing the store); without a pending batch settling does nothing.
 */
static void test_batch_async(void)
{
	cleanup_store struct store *s = open_store_fsync();
	cleanup_store struct store *other = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *foo = NULL, *q = NULL, *w = NULL, *rq = NULL;
	char *const refv[] = { (char *)PATH_FOO, NULL };
	const char *text = "see " PATH_FOO;
	struct stat st;

	if (s == NULL || other == NULL) {
		CU_FAIL("open");
		return;
	}
	CU_ASSERT_EQUAL(local_store_settle(s, &e), 0); /* nothing pending */
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "foo", "bar", 3, NULL, &foo, &e), 0);
	CU_ASSERT_EQUAL(local_store_batch_end_async(s, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_FOO, &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, PATH_FOO, &e), 0);
	CU_ASSERT_EQUAL(local_store_settle(s, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(other, PATH_FOO, &e), 1);
	CU_ASSERT_EQUAL(local_store_settle(s, &e), 0);

	/* The next add settles the pending batch first (it refers to its path). */
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "qux", "pending", 7, NULL, &q, &e), 0);
	CU_ASSERT_EQUAL(local_store_batch_end_async(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "withref", text, strlen(text), refv, &w, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(other, q, &e), 1);
	CU_ASSERT_EQUAL(store_is_valid(other, w, &e), 1);

	/* A failed sync: the settle says so, rolls back and removes what the batch moved. */
	{
		cleanup_free char *a = NULL, *b = NULL, *ra = NULL, *rb = NULL;
		struct stat st2;

		CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
		CU_ASSERT_EQUAL(store_add_text(s, "sync-a", "a", 1, NULL, &a, &e), 0);
		CU_ASSERT_EQUAL(store_add_text(s, "sync-b", "b", 1, NULL, &b, &e), 0);
		ra = a ? real_of(a) : xstrdup("/nonexistent");
		rb = b ? real_of(b) : xstrdup("/nonexistent");
		CU_ASSERT_EQUAL(unlink(rb), 0); /* gone before it could be synced */
		CU_ASSERT_EQUAL(local_store_batch_end_async(s, &e), 0);
		CU_ASSERT_EQUAL(local_store_settle(s, &e), -1);
		CU_ASSERT(e && e->sys_errno == ENOENT);
		nib_error_clear(&e);
		CU_ASSERT_EQUAL(store_is_valid(s, a, &e), 0);
		CU_ASSERT_EQUAL(store_is_valid(other, a, &e), 0);
		CU_ASSERT_EQUAL(lstat(ra, &st2), -1);
		CU_ASSERT_EQUAL(local_store_settle(s, &e), 0); /* nothing pending any more */
	}

	/* Closing settles too: what the caller was told is added stays. */
	free(TAKE_PTR(q));
	CU_ASSERT_EQUAL(local_store_batch_begin(s, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "qux", "closed", 6, NULL, &q, &e), 0);
	CU_ASSERT_EQUAL(local_store_batch_end_async(s, &e), 0);
	store_close(TAKE_PTR(s));
	CU_ASSERT_EQUAL(store_is_valid(other, q, &e), 1);
	rq = q ? real_of(q) : xstrdup("/nonexistent");
	CU_ASSERT_EQUAL(lstat(rq, &st), 0);
	CU_ASSERT_PTR_NULL(e);
}

/* Background syncs: done by the time they finish, failures reported, NULL is nothing. */
static void test_sync_background(void)
{
	cleanup_store struct store *s = open_store_fsync();
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dir = real_of(OUT_A), *file = NULL, *gone = real_of(OUT_B);
	char *ok[] = { dir, NULL };
	char *bad[] = { dir, gone, NULL };

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	mkdir(dir, 0755);
	file = xasprintf("%s/f", dir);
	test_write_file(file, "x");
	CU_ASSERT_EQUAL(local_store_sync_finish(local_store_sync_start(s, ok, 1, true), &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(local_store_sync_finish(local_store_sync_start(s, bad, 2, true), &e), -1);
	CU_ASSERT(e && e->sys_errno == ENOENT && strstr(e->msg, gone) != NULL);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(local_store_sync_finish(NULL, &e), 0);
}

static void on_problem(void *userdata, const struct store_verify_problem *p)
{
	strbuf_addf(userdata, "%s;", p->kind);
}

static void test_verify(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	cleanup_strbuf struct strbuf kinds = STRBUF_INIT;
	cleanup_free char *f = NULL, *d = NULL, *w = NULL, *srcf = src_path("f"),
			  *srcd = src_path("d");
	cleanup_free char *realf = real_of(PATH_F), *reald = real_of(PATH_D);
	char *const refv[] = { (char *)PATH_F, NULL };
	const char *text = "see " PATH_F;
	struct store_verify_result r = { 0 };

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	make_sources();
	CU_ASSERT_EQUAL(store_add_path(s, srcf, NULL, &f, &e), 0);
	CU_ASSERT_EQUAL(store_add_path(s, srcd, NULL, &d, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(s, "withref", text, strlen(text), refv, &w, &e), 0);
	CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS, on_problem, &kinds, &r, &e), 0);
	CU_ASSERT_EQUAL(r.checked, 3);
	CU_ASSERT_EQUAL(r.problems, 0);

	/* Metadata drift: found, and repaired. */
	chmod(reald, 0755);
	strbuf_reset(&kinds);
	CU_ASSERT_EQUAL(store_verify(s, 0, on_problem, &kinds, &r, &e), 0);
	CU_ASSERT_STRING_EQUAL(kinds.buf, "not-canonical;");
	CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_REPAIR, NULL, NULL, &r, &e), 0);
	CU_ASSERT_EQUAL(r.repaired, 1);
	CU_ASSERT_EQUAL(store_verify(s, 0, NULL, NULL, &r, &e), 0);
	CU_ASSERT_EQUAL(r.problems, 0);

	/* Changed contents: only --check-contents sees it; not repairable. */
	chmod(realf, 0644);
	test_write_file(realf, "HI\n");
	chmod(realf, 0444);
	{
		struct timespec t[2] = { { 0, UTIME_OMIT }, { 1, 0 } };
		utimensat(AT_FDCWD, realf, t, 0);
	}
	CU_ASSERT_EQUAL(store_verify(s, 0, NULL, NULL, &r, &e), 0);
	CU_ASSERT_EQUAL(r.problems, 0);
	strbuf_reset(&kinds);
	CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS | STORE_VERIFY_REPAIR, on_problem,
				     &kinds, &r, &e),
			0);
	CU_ASSERT_STRING_EQUAL(kinds.buf, "hash-mismatch;");
	CU_ASSERT_EQUAL(r.repaired, 0);

	/* A missing path still referenced cannot be invalidated; an unreferenced one can. */
	CU_ASSERT_EQUAL(rm_rf_at(AT_FDCWD, realf, &e), 0);
	CU_ASSERT_EQUAL(rm_rf_at(AT_FDCWD, reald, &e), 0);
	strbuf_reset(&kinds);
	CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_REPAIR, on_problem, &kinds, &r, &e), 0);
	CU_ASSERT_STRING_EQUAL(kinds.buf, "missing;missing;");
	CU_ASSERT_EQUAL(r.repaired, 1);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_D, &e), 0);
	CU_ASSERT_EQUAL(store_is_valid(s, PATH_F, &e), 1);
}

static void test_build_records_api(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	struct build_record r, *got = NULL;
	size_t n = 0;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	build_record_init(&r);
	r.drv = xstrdup(DRV_X);
	r.start_usec = 5;
	r.status = xstrdup("running");
	CU_ASSERT_EQUAL(store_build_record_add(s, &r, &e), 0);
	CU_ASSERT(r.id > 0);
	r.end_usec = 10;
	CU_ASSERT_EQUAL(store_build_record_update(s, &r, &e), 0);
	CU_ASSERT_EQUAL(store_build_records(s, DRV_X, 0, &got, &n, &e), 0);
	CU_ASSERT(n == 1 && got[0].end_usec == 10);
	build_records_free(got, n);
	build_record_release(&r);
}

/* A build's outputs and its record are committed together, or neither is. */
static void test_register_build(void)
{
	cleanup_store struct store *s = open_store();
	cleanup_error struct nib_error *e = NULL;
	char *refs_bad[] = { (char *)"/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-e", NULL };
	struct store_path_info info;
	struct build_record r, *got = NULL;
	size_t n = 9;

	if (s == NULL) {
		CU_FAIL("open");
		return;
	}
	make_output(OUT_A, "a");
	fill_info(&info, OUT_A, refs_bad, DRV_X);
	build_record_init(&r);
	r.drv = xstrdup(DRV_X);
	r.status = xstrdup("built");
	CU_ASSERT_EQUAL(local_store_register_build(s, &info, 1, &r, &e), -1);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(store_is_valid(s, OUT_A, &e), 0);
	CU_ASSERT_EQUAL(store_build_records(s, DRV_X, 0, &got, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
	build_records_free(got, n);

	info.references = NULL;
	CU_ASSERT_EQUAL(local_store_register_build(s, &info, 1, &r, &e), 0);
	CU_ASSERT(r.id > 0);
	CU_ASSERT_EQUAL(store_is_valid(s, OUT_A, &e), 1);
	CU_ASSERT_EQUAL(store_build_records(s, DRV_X, 0, &got, &n, &e), 0);
	CU_ASSERT(n == 1 && STREQ(got[0].status, "built"));
	build_records_free(got, n);
	build_record_release(&r);
	CU_ASSERT_PTR_NULL(e);
}

/*
 * Several processes add overlapping sets of paths at once: every add
 * succeeds, each path ends valid exactly once, nothing is left over.
 */
static void test_concurrent_writers(void)
{
	enum {
		NPROC = 6,
		NFILES = 12
	};
	cleanup_error struct nib_error *e = NULL;
	pid_t pids[NPROC];
	int failed = 0;

	make_sources();
	for (int i = 0; i < NFILES; i++) {
		cleanup_free char *p = xasprintf("%s/src/c%d", tmp, i);
		cleanup_free char *content = xasprintf("content %d\n", i);
		test_write_file(p, content);
	}
	{
		/* Create the database first so every child opens an existing store. */
		struct store *s = open_store();
		store_close(s);
	}
	for (int k = 0; k < NPROC; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			struct store *s = open_store();
			int bad = s == NULL;
			for (int round = 0; round < 3 && !bad; round++)
				for (int i = (k + round) % 3; i < NFILES; i++) {
					cleanup_free char *p = xasprintf("%s/src/c%d", tmp, i);
					char *out = NULL;
					struct nib_error *e2 = NULL;
					if (store_add_path(s, p, NULL, &out, &e2) < 0) {
						fprintf(stderr, "child %d: %s\n", k, e2->msg);
						nib_error_free(e2);
						bad = 1;
						break;
					}
					free(out);
				}
			store_close(s);
			_exit(bad);
		}
	}
	for (int k = 0; k < NPROC; k++) {
		int status = 0;
		waitpid(pids[k], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	CU_ASSERT_EQUAL(failed, 0);
	{
		cleanup_store struct store *s = open_store();
		struct store_verify_result r = { 0 };
		cleanup_free char *dir = real_of("/nix/store");
		cleanup_dir DIR *d = opendir(dir);
		struct dirent *de;
		int entries = 0;

		CU_ASSERT_EQUAL(store_verify(s, STORE_VERIFY_CONTENTS, NULL, NULL, &r, &e), 0);
		CU_ASSERT_EQUAL(r.checked, NFILES);
		CU_ASSERT_EQUAL(r.problems, 0);
		while (d && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				entries++;
		CU_ASSERT_EQUAL(entries, NFILES); /* no lock files, no temporaries */
	}
}

static CU_TestInfo tests[] = {
	{ "layout", test_layout },
	{ "add path gives Nix's paths", test_add_path_matches_nix },
	{ "add text with references", test_add_text_and_refs },
	{ "add NAR: checked, atomic, repair", test_add_nar },
	{ "register and query", test_register_and_query },
	{ "bad paths and inputs", test_bad_paths },
	{ "read-only, newer schema, damaged db", test_readonly_and_schema_errors },
	{ "canonicalise", test_canonicalise },
	{ "canonicalise, then sync in place", test_canonicalise_then_sync },
	{ "batched adds", test_batch },
	{ "close for exit", test_close_for_exit },
	{ "a forked child reuses its parent's handle", test_reuse_after_fork },
	{ "a long batch commits as it goes", test_batch_long },
	{ "a batch ended in the background", test_batch_async },
	{ "syncing in the background", test_sync_background },
	{ "verify and repair", test_verify },
	{ "build records", test_build_records_api },
	{ "outputs and their build record together", test_register_build },
	{ "concurrent writers", test_concurrent_writers },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "store", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "path.h"
#include "util.h"

/* Vectors made with Nix 2.8 (tests/data/derivations/gen.sh). */
#define NIX "/nix/store"
#define NIB "/nib/store"

static char *data_path(const char *rel)
{
	const char *d = getenv("NIB_TEST_DATA");

	return xasprintf("%s/%s", d && *d ? d : "tests/data", rel);
}

static char *read_data(const char *rel, size_t *ret_len)
{
	cleanup_free char *p = data_path(rel);
	cleanup_error struct nib_error *e = NULL;
	char *buf = NULL;

	if (read_file_at(AT_FDCWD, p, 1 << 20, &buf, ret_len, &e) < 0) {
		fprintf(stderr, "%s\n", e->msg);
		return NULL;
	}
	return buf;
}

static void expect_base_reject(const char *base, const char *msg_part)
{
	cleanup_error struct nib_error *e = NULL;
	struct store_path p;

	memset(&p, 'x', sizeof(p));
	CU_ASSERT_EQUAL(store_path_parse_base(base, &p, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
	if (strstr(e->msg, msg_part) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg_part);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, msg_part));
	/* ret is untouched on failure. */
	CU_ASSERT_EQUAL(p.hash[0], 'x');
}

static void test_name_valid(void)
{
	char name[STORE_PATH_MAX_NAME + 2];

	CU_ASSERT(store_path_name_valid("hello-2.12", 10));
	CU_ASSERT(store_path_name_valid("a+b-1.0_x?y=z", 13));
	CU_ASSERT(store_path_name_valid("A", 1));
	CU_ASSERT(store_path_name_valid("x.", 2));
	CU_ASSERT(!store_path_name_valid("", 0));
	CU_ASSERT(!store_path_name_valid(NULL, 0));
	CU_ASSERT(!store_path_name_valid(".hidden", 7));
	CU_ASSERT(!store_path_name_valid("a/b", 3));
	CU_ASSERT(!store_path_name_valid("a b", 3));
	CU_ASSERT(!store_path_name_valid("a!", 2));
	CU_ASSERT(!store_path_name_valid("gr\xc3\xbc\xc3\x9f", 6));
	CU_ASSERT(!store_path_name_valid("a\0b", 3));
	/* Only len bytes are looked at. */
	CU_ASSERT(store_path_name_valid("ab/", 2));
	memset(name, 'n', sizeof(name));
	CU_ASSERT(store_path_name_valid(name, STORE_PATH_MAX_NAME));
	CU_ASSERT(!store_path_name_valid(name, STORE_PATH_MAX_NAME + 1));
}

static void test_parse_base(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct store_path p;
	char buf[STORE_PATH_BASE_MAX];

	CU_ASSERT_EQUAL(
		store_path_parse_base("3ghsl9sd83mc26i81adpa2fzf3yw4f68-simple.drv", &p, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_STRING_EQUAL(p.hash, "3ghsl9sd83mc26i81adpa2fzf3yw4f68");
	CU_ASSERT_STRING_EQUAL(p.name, "simple.drv");
	CU_ASSERT(store_path_is_drv(&p));
	CU_ASSERT_STRING_EQUAL(store_path_base(&p, buf),
			       "3ghsl9sd83mc26i81adpa2fzf3yw4f68-simple.drv");

	CU_ASSERT_EQUAL(
		store_path_parse_base("b8cfiiqgk6mf6iyimcimiq806745nn74-a+b-1.0_x?y=z", &p, &e), 0);
	CU_ASSERT_STRING_EQUAL(p.name, "a+b-1.0_x?y=z");
	CU_ASSERT(!store_path_is_drv(&p));
	/* A name that is just ".drv" cannot exist (leading '.'); "x.drv" is a drv. */
	CU_ASSERT_EQUAL(store_path_parse_base("00000000000000000000000000000000-x.drv", &p, &e), 0);
	CU_ASSERT(store_path_is_drv(&p));
	CU_ASSERT_EQUAL(store_path_parse_base("00000000000000000000000000000000-drv", &p, &e), 0);
	CU_ASSERT(!store_path_is_drv(&p));
}

static void test_parse_base_rejects(void)
{
	char longname[32 + 1 + STORE_PATH_MAX_NAME + 2];

	expect_base_reject("", "too short");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68", "too short");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-", "too short");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f6-simple", "character 32 is not");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68xsimple", "'-' after its hash");
	/* e, o, t, u are not in the alphabet; nor are capitals. */
	expect_base_reject("eghsl9sd83mc26i81adpa2fzf3yw4f68-simple", "character 1 is not");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f6o-simple", "character 32 is not");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzt3yw4f68-simple", "invalid hash part");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4u68-simple", "invalid hash part");
	expect_base_reject("3GHSL9SD83MC26I81ADPA2FZF3YW4F68-simple", "invalid hash part");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-.hidden", "starts with '.'");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-a b", "invalid character ' '");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-a!", "invalid character '!'");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-a\x01", "invalid byte 0x01");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-gr\xc3\xbc", "invalid byte 0xc3");
	expect_base_reject("3ghsl9sd83mc26i81adpa2fzf3yw4f68-a/b", "invalid character '/'");
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memcpy(longname, "3ghsl9sd83mc26i81adpa2fzf3yw4f68-", 33);
	expect_base_reject(longname, "longer than 211");
	/* Exactly 211 is fine. */
	longname[sizeof(longname) - 2] = '\0';
	{
		cleanup_error struct nib_error *e = NULL;
		struct store_path p;
		CU_ASSERT_EQUAL(store_path_parse_base(longname, &p, &e), 0);
		CU_ASSERT_EQUAL(strlen(p.name), STORE_PATH_MAX_NAME);
	}
}

static void expect_parse(const char *dir, const char *full, bool sub, int want, const char *msg)
{
	cleanup_error struct nib_error *e = NULL;
	struct store_path p;

	CU_ASSERT_EQUAL(store_path_parse(dir, full, sub, &p, &e), want);
	if (want == 0) {
		CU_ASSERT_PTR_NULL(e);
		CU_ASSERT_STRING_EQUAL(p.hash, "94f9f6i31zwzwbf0kclq1naqxxi4c7v9");
		CU_ASSERT_STRING_EQUAL(p.name, "simple");
		return;
	}
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
	if (strstr(e->msg, msg) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, msg));
}

static void test_parse_full(void)
{
	const char *ok = NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple";
	cleanup_free char *s = NULL;
	struct store_path p;
	cleanup_error struct nib_error *e = NULL;

	expect_parse(NIX, ok, false, 0, NULL);
	expect_parse(NIX, ok, true, 0, NULL);
	expect_parse(NIX, NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple/bin/sh", true, 0, NULL);
	expect_parse(NIX, NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple/", true, 0, NULL);
	expect_parse(NIX, NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple/bin/sh", false, -1,
		     "inside a store path");
	expect_parse(NIX, NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple/", false, -1,
		     "inside a store path");
	expect_parse(NIB, ok, false, -1, "not in the store '/nib/store'");
	expect_parse(NIX, "/nix/storex/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple", false, -1,
		     "not in the store");
	expect_parse(NIX, "/nix", false, -1, "not in the store");
	expect_parse(NIX, NIX "/", false, -1, "too short");
	expect_parse(NIX, NIX "//94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple", true, -1, "too short");
	expect_parse(NIX, "nix/store/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple", false, -1,
		     "not absolute");
	expect_parse(NIX, "", false, -1, "not absolute");
	expect_parse(NIX, NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-.simple", false, -1,
		     "starts with '.'");

	CU_ASSERT_EQUAL(store_path_parse(NIX, ok, false, &p, &e), 0);
	s = store_path_to_string(NIB, &p);
	CU_ASSERT_STRING_EQUAL(s, NIB "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple");
}

static void test_cmp(void)
{
	struct store_path a = { "0000000000000000000000000000000a", "b" };
	struct store_path b = { "0000000000000000000000000000000a", "b-dev" };
	struct store_path c = { "0000000000000000000000000000000b", "a" };
	struct store_path d = { "0000000000000000000000000000000a", "B" };

	CU_ASSERT(store_path_cmp(&a, &a) == 0);
	CU_ASSERT(store_path_cmp(&a, &b) < 0);
	CU_ASSERT(store_path_cmp(&b, &c) < 0);
	CU_ASSERT(store_path_cmp(&c, &a) > 0);
	/* Byte order: capitals sort before lowercase. */
	CU_ASSERT(store_path_cmp(&d, &a) < 0);
}

static void expect_path(int r, struct nib_error *e, const struct store_path *p, const char *dir,
			const char *want)
{
	cleanup_free char *s = NULL;

	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_PTR_NULL(e);
	if (r < 0) {
		fprintf(stderr, "\nerror: %s\n", e ? e->msg : "?");
		return;
	}
	s = store_path_to_string(dir, p);
	if (!STREQ(s, want))
		fprintf(stderr, "\ngot '%s', want '%s'\n", s, want);
	CU_ASSERT_STRING_EQUAL(s, want);
}

/* .drv files are text paths: the ATerm hashed, no references here. */
static void test_make_text_drv(void)
{
	static const struct {
		const char *dir, *file, *want;
	} v[] = {
		{ NIX, "derivations/nix-store/drv/3ghsl9sd83mc26i81adpa2fzf3yw4f68-simple.drv",
		  NIX "/3ghsl9sd83mc26i81adpa2fzf3yw4f68-simple.drv" },
		{ NIB, "derivations/nib-store/drv/1y4p7xwj0r7bcr02q9rlw51v6xzy2rzy-simple.drv",
		  NIB "/1y4p7xwj0r7bcr02q9rlw51v6xzy2rzy-simple.drv" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		cleanup_error struct nib_error *e = NULL;
		size_t len = 0;
		cleanup_free char *text = read_data(v[i].file, &len);
		struct hash h;
		struct store_path p;
		int r;

		CU_ASSERT_PTR_NOT_NULL(text);
		if (text == NULL)
			continue;
		hash_buffer(HASH_SHA256, text, len, &h);
		r = store_path_make_text(v[i].dir, "simple.drv", &h, NULL, &p, &e);
		expect_path(r, e, &p, v[i].dir, v[i].want);
	}
}

/* builtins.toFile with a reference: refs are part of the type. */
static void test_make_text_refs(void)
{
	cleanup_error struct nib_error *e = NULL;
	size_t len = 0;
	cleanup_free char *text = read_data(
		"derivations/nix-store/text/jfbvj9ad2711rzb0rxjqf0sxmmsk16my-script.sh", &len);
	char *refs[] = { (char *)NIX "/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt", NULL };
	char *refs2[] = { (char *)NIX "/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt",
			  (char *)NIX "/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt", NULL };
	char *bad[] = { (char *)"/elsewhere/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt", NULL };
	struct hash h;
	struct store_path p, q;
	int r;

	CU_ASSERT_PTR_NOT_NULL(text);
	if (text == NULL)
		return;
	hash_buffer(HASH_SHA256, text, len, &h);
	r = store_path_make_text(NIX, "script.sh", &h, refs, &p, &e);
	expect_path(r, e, &p, NIX, NIX "/jfbvj9ad2711rzb0rxjqf0sxmmsk16my-script.sh");
	/* References are a set. */
	r = store_path_make_text(NIX, "script.sh", &h, refs2, &q, &e);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_EQUAL(store_path_cmp(&p, &q), 0);
	/* Without the reference the path differs. */
	r = store_path_make_text(NIX, "script.sh", &h, NULL, &q, &e);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_NOT_EQUAL(store_path_cmp(&p, &q), 0);
	r = store_path_make_text(NIX, "script.sh", &h, bad, &q, &e);
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, "invalid reference"));
}

/* Local sources: NAR sha256 (nix-store -q --hash) makes a source path. */
static void test_make_source(void)
{
	static const struct {
		const char *name, *nar, *want;
	} v[] = {
		{ "hello.txt", "sha256:0nya2hjn923syqd433mabf0rabla032jajqil5r8lm972qk07z71",
		  NIX "/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt" },
		{ "srcdir", "sha256:1nbmj4sq94qcwx4zdajw0q1zi70sacby4qhydj5bang6v5608ksf",
		  NIX "/pkbkfyxmdwv6q5sc9iim30pb5d9xj8v4-srcdir" },
		{ "named-src", "sha256:1nbmj4sq94qcwx4zdajw0q1zi70sacby4qhydj5bang6v5608ksf",
		  NIX "/asn11vz7chm2q0l09j8762m9cn3gii0r-named-src" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		cleanup_error struct nib_error *e = NULL;
		struct hash h;
		struct store_path p, q;
		int r;

		CU_ASSERT_EQUAL(hash_parse(v[i].nar, 0, &h, &e), 0);
		r = store_path_make_source(NIX, v[i].name, &h, NULL, false, &p, &e);
		expect_path(r, e, &p, NIX, v[i].want);
		/* recursive sha256 fixed outputs are source paths too */
		r = store_path_make_fixed(NIX, v[i].name, true, &h, NULL, &q, &e);
		CU_ASSERT_EQUAL(r, 0);
		CU_ASSERT_EQUAL(store_path_cmp(&p, &q), 0);
		/* self-reference changes the path */
		r = store_path_make_source(NIX, v[i].name, &h, NULL, true, &q, &e);
		CU_ASSERT_EQUAL(r, 0);
		CU_ASSERT_NOT_EQUAL(store_path_cmp(&p, &q), 0);
	}
}

/* Fixed-output derivation outputs (from the .drv files made by Nix). */
static void test_make_fixed(void)
{
	static const struct {
		const char *dir, *name;
		bool rec;
		const char *hash, *want;
	} v[] = {
		{ NIX, "fod-flat-md5", false, "md5:9dd4e461268c8034f5c8564e155c67a6",
		  NIX "/j69x5qanqpws6jagixs4r19m6rldndhn-fod-flat-md5" },
		{ NIX, "fod-flat-sha1", false, "sha1:11f6ad8ec52a2984abaafd7c3b516503785c2072",
		  NIX "/9dbzi69kq1zzp44744sa63dzggrvkvwn-fod-flat-sha1" },
		{ NIX, "fod-flat-sha256", false,
		  "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		  NIX "/jdcaqp49010pji67fl8q3x9bq3p068zy-fod-flat-sha256" },
		{ NIX, "fod-flat-sha512", false,
		  "sha512:"
		  "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d"
		  "85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
		  NIX "/zkf40dv0yj66wsp9kl6dz00wm5fmnfn2-fod-flat-sha512" },
		{ NIX, "fod-recursive-md5", true, "md5:441365ea0058332d3527921913dc8bf2",
		  NIX "/qs3wba2qd1cdr740fvsd3j4gwb7vmx5y-fod-recursive-md5" },
		{ NIX, "fod-recursive-sha1", true, "sha1:d6a2f655dd4f065a52d876d1c3ff61311302a5f6",
		  NIX "/wgjb3715iqwpw0j5qb2sv545dy2y1082-fod-recursive-sha1" },
		{ NIX, "fod-recursive-sha256", true,
		  "sha256:2ca0b8ce996f865db37619bfe91023559305aad8158042fc6ddb0ef1d43c5b67",
		  NIX "/2bqlkywir0d8zjkggp6h5bbvxia8rvs5-fod-recursive-sha256" },
		{ NIX, "fod-recursive-sha512", true,
		  "sha512:"
		  "a4abd4448c49562d828115d13a1fccea927f52b4d5459297f8b43e42da89238bc13626e43d"
		  "cb38ddb082488927ec904fb42057443983e88585179d50551afe62",
		  NIX "/8xni9523krlasvy9a3jkb21bn1zg3xah-fod-recursive-sha512" },
		{ NIB, "fod-flat-sha1", false, "sha1:11f6ad8ec52a2984abaafd7c3b516503785c2072",
		  NIB "/16xsb51j6dvgdnlpf47basy1y0a2k9ns-fod-flat-sha1" },
		{ NIB, "fod-recursive-sha256", true,
		  "sha256:2ca0b8ce996f865db37619bfe91023559305aad8158042fc6ddb0ef1d43c5b67",
		  NIB "/fggblpcc5x4l9fnnp3nsak8hyr5yivbc-fod-recursive-sha256" },
		{ NIB, "fod-recursive-md5", true, "md5:441365ea0058332d3527921913dc8bf2",
		  NIB "/7b3k1cdgjsfpszmwvb34ckp52n2rif7q-fod-recursive-md5" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		cleanup_error struct nib_error *e = NULL;
		struct hash h;
		struct store_path p;
		int r;

		CU_ASSERT_EQUAL(hash_parse(v[i].hash, 0, &h, &e), 0);
		r = store_path_make_fixed(v[i].dir, v[i].name, v[i].rec, &h, NULL, &p, &e);
		expect_path(r, e, &p, v[i].dir, v[i].want);
	}
}

/*
 * Output paths of input-addressed derivations: hash the ATerm with the output
 * paths (and env vars named after outputs) blanked.
 */
static void test_make_output(void)
{
	static const char masked[] =
		"Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\","
		"\"echo hello > $out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"simple\"),(\"out\","
		"\"\"),(\"system\",\"x86_64-linux\")])";
	cleanup_error struct nib_error *e = NULL;
	struct hash h;
	struct store_path p;
	int r;

	hash_string(HASH_SHA256, masked, &h);
	r = store_path_make_output(NIX, "simple", "out", &h, &p, &e);
	expect_path(r, e, &p, NIX, NIX "/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple");
	r = store_path_make_output(NIB, "simple", "out", &h, &p, &e);
	expect_path(r, e, &p, NIB, NIB "/b5aqxpj9im9dylj2s0dd8p3f6gy87d4n-simple");
	r = store_path_make_output(NIX, "simple", "dev", &h, &p, &e);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_STRING_EQUAL(p.name, "simple-dev");
}

static void expect_make_reject(int r, struct nib_error *e, const char *msg)
{
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_INVALID);
	if (strstr(e->msg, msg) == NULL)
		fprintf(stderr, "\nmessage '%s' lacks '%s'\n", e->msg, msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, msg));
}

static void test_make_rejects(void)
{
	char *refs[] = { (char *)NIX "/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt", NULL };
	char longname[STORE_PATH_MAX_NAME + 2];
	struct hash sha1, sha256;
	struct store_path p;

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	hash_string(HASH_SHA1, "x", &sha1);
	hash_string(HASH_SHA256, "x", &sha256);
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make("source", &sha1, NIX, "x", &p, &e);
		expect_make_reject(r, e, "must be sha256, not 'sha1'");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make("source", &sha256, NIX, ".x", &p, &e);
		expect_make_reject(r, e, "starts with '.'");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make("source", &sha256, NIX, "", &p, &e);
		expect_make_reject(r, e, "is empty");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make("source", &sha256, NIX, longname, &p, &e);
		expect_make_reject(r, e, "longer than 211");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make_text(NIX, "x", &sha1, NULL, &p, &e);
		expect_make_reject(r, e, "must be sha256");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make_fixed(NIX, "x", false, &sha256, refs, &p, &e);
		expect_make_reject(r, e, "cannot have references");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make_fixed(NIX, "x", true, &sha1, refs, &p, &e);
		expect_make_reject(r, e, "cannot have references");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		struct hash bad = { .algo = 0 };
		int r = store_path_make_fixed(NIX, "x", false, &bad, NULL, &p, &e);
		expect_make_reject(r, e, "invalid hash algorithm");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make_output(NIX, "x", "", &sha256, &p, &e);
		expect_make_reject(r, e, "output name is empty");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		/* 211-character drv name plus "-dev" is too long. */
		longname[STORE_PATH_MAX_NAME] = '\0';
		int r = store_path_make_output(NIX, longname, "dev", &sha256, &p, &e);
		expect_make_reject(r, e, "longer than 211");
	}
	{
		cleanup_error struct nib_error *e = NULL;
		int r = store_path_make_source(NIX, "x", &sha256, (char *[]){ (char *)"rel", NULL },
					       false, &p, &e);
		expect_make_reject(r, e, "invalid reference");
	}
}

static CU_TestInfo tests[] = {
	{ "name validity", test_name_valid },
	{ "parse base name", test_parse_base },
	{ "parse base name rejects", test_parse_base_rejects },
	{ "parse full path", test_parse_full },
	{ "compare", test_cmp },
	{ "text path of a .drv", test_make_text_drv },
	{ "text path with references", test_make_text_refs },
	{ "source paths", test_make_source },
	{ "fixed-output paths", test_make_fixed },
	{ "output paths", test_make_output },
	{ "make rejects", test_make_rejects },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "path", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

/*
 * test-protocol.c - the worker protocol: primitives and their limits,
 * framed data, log frames, both sides of the handshake over a socketpair,
 * every serializer at every version, and the golden files in
 * tests/data/protocol/<version>/ (1.34 is real Nix 2.8 traffic; the other
 * versions are nib's own encodings of the same messages, kept so that a
 * change shows up as a diff).  NIB_PROTOCOL_ACCEPT=1 rewrites the
 * generated files instead of comparing them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "hash.h"
#include "protocol.h"
#include "strbuf.h"
#include "util.h"

/* String literals for struct fields that are char * (never written through). */
#define S(lit) ((char *)(lit))
/* A failed check that makes the rest of the test pointless: report it and return (not longjmp). */
#define REQUIRE(cond)                                                                  \
	do {                                                                           \
		CU_BOOL ok_ = (cond) ? CU_TRUE : CU_FALSE;                             \
		CU_assertImplementation(ok_, __LINE__, #cond, __FILE__, "", CU_FALSE); \
		if (!ok_)                                                              \
			return;                                                        \
	} while (0)

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *data_file(const char *version, const char *name)
{
	const char *base = getenv("NIB_TEST_DATA");

	if (base == NULL || base[0] == '\0')
		base = ABS_TOP_SRCDIR "/tests/data";
	return xasprintf("%s/protocol/%s/%s", base, version, name);
}

static int load(const char *version, const char *name, char **ret, size_t *ret_len)
{
	cleanup_free char *p = data_file(version, name);
	cleanup_error struct nib_error *e = NULL;

	if (read_file_at(AT_FDCWD, p, 16 << 20, ret, ret_len, &e) < 0) {
		fprintf(stderr, "cannot load golden file: %s\n", e->msg);
		return -1;
	}
	return 0;
}

static bool accept_mode(void)
{
	const char *a = getenv("NIB_PROTOCOL_ACCEPT");

	return a != NULL && STREQ(a, "1");
}

/* Compare out with a golden file, or write it in accept mode. */
static void check_golden(const char *version, const char *name, const void *out, size_t len)
{
	cleanup_free char *want = NULL;
	size_t want_len = 0;

	if (accept_mode()) {
		cleanup_free char *p = data_file(version, name);
		cleanup_free char *dir = data_file(version, "");
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT_EQUAL(mkdir_p(dir, 0755, &e), 0);
		CU_ASSERT_EQUAL(write_file_atomic_at(AT_FDCWD, p, out, len, 0644, false, &e), 0);
		return;
	}
	REQUIRE(load(version, name, &want, &want_len) == 0);
	CU_ASSERT_EQUAL(len, want_len);
	CU_ASSERT(len == want_len && (len == 0 || memcmp(out, want, len) == 0));
	if (len != want_len || (len > 0 && memcmp(out, want, len) != 0))
		fprintf(stderr, "golden mismatch: %s/%s (%zu vs %zu bytes)\n", version, name, len,
			want_len);
}

static bool out_equals(struct proto_conn *c, const void *want, size_t want_len)
{
	size_t len;
	const unsigned char *out = proto_conn_output(c, &len);

	if (len != want_len || (len > 0 && memcmp(out, want, len) != 0)) {
		fprintf(stderr, "output differs: %zu bytes vs %zu expected\n", len, want_len);
		for (size_t i = 0; i < len && i < want_len; i++)
			if (out[i] != ((const unsigned char *)want)[i]) {
				fprintf(stderr, "  first difference at byte %zu\n", i);
				break;
			}
		return false;
	}
	return true;
}

static const char *version_dir(unsigned v, char *buf, size_t n)
{
	snprintf(buf, n, "%u.%u", PROTO_MAJOR(v), PROTO_MINOR(v));
	return buf;
}

#define HELLO "/nix/store/by5vg3g9wvxs4lklcmq9w74s8371s9lc-hello"
#define HELLO_DRV "/nix/store/56ng11iqlr2zybc3322kigysp7mychza-hello.drv"
#define DEP "/nix/store/4rzvbbxib0hq9vpsw9ixzmzfcxq01sl1-dep"

/* ---- primitives ------------------------------------------------------------------------------- */

static void test_u64(void)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *r = NULL;
	cleanup_error struct nib_error *e = NULL;
	const unsigned char want[] = { 8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0,
				       0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
	const unsigned char *out;
	size_t len;
	uint64_t v = 0;
	bool b = false;

	proto_write_u64(w, 0x0102030405060708ULL);
	proto_write_u64(w, 2);
	proto_write_bool(w, true);
	out = proto_conn_output(w, &len);
	CU_ASSERT_EQUAL(len, sizeof(want));
	CU_ASSERT(memcmp(out, want, sizeof(want)) == 0);

	r = proto_conn_new_mem(want, sizeof(want));
	CU_ASSERT_EQUAL(proto_read_u64(r, &v, &e), 0);
	CU_ASSERT_EQUAL(v, 0x0102030405060708ULL);
	/* Any non-zero value is true. */
	CU_ASSERT_EQUAL(proto_read_bool(r, &b, &e), 0);
	CU_ASSERT(b);
	CU_ASSERT_EQUAL(proto_read_u64_max(r, 0, "flag", &v, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, "invalid flag 1"));
	CU_ASSERT_EQUAL(proto_at_eof(r, NULL), 1);
}

static void test_string_padding(void)
{
	for (size_t n = 0; n <= 17; n++) {
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *r = NULL;
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *s = xmalloc(n + 1);
		cleanup_free char *got = NULL;
		const unsigned char *out;
		size_t len, pad = (8 - n % 8) % 8;

		memset(s, 'a' + (int)n, n);
		s[n] = '\0';
		proto_write_string(w, s);
		out = proto_conn_output(w, &len);
		CU_ASSERT_EQUAL(len, 8 + n + pad);
		CU_ASSERT_EQUAL(out[0], n);
		for (size_t i = 0; i < pad; i++)
			CU_ASSERT_EQUAL(out[8 + n + i], 0);
		r = proto_conn_new_mem(out, len);
		CU_ASSERT_EQUAL(proto_read_string(r, &got, &e), 0);
		CU_ASSERT(got != NULL && STREQ(got, s));
		CU_ASSERT_EQUAL(proto_conn_input_left(r), 0);
	}
}

static void test_string_bad_padding(void)
{
	const unsigned char in[] = { 1, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 1 };
	cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(in, sizeof(in));
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *s = NULL;

	CU_ASSERT_EQUAL(proto_read_string(r, &s, &e), -1);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT(e != NULL && e->code == NIB_E_PROTOCOL && strstr(e->msg, "padding") != NULL);
}

static void test_string_nul(void)
{
	const unsigned char in[] = { 3, 0, 0, 0, 0, 0, 0, 0, 'a', 0, 'b', 0, 0, 0, 0, 0 };
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *s = NULL;
	size_t len = 0;

	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(in, sizeof(in));
		CU_ASSERT_EQUAL(proto_read_string(r, &s, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "NUL") != NULL);
	}
	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(in, sizeof(in));
		CU_ASSERT_EQUAL(proto_read_bytes(r, &s, &len, NULL), 0);
		CU_ASSERT_EQUAL(len, 3);
		CU_ASSERT(s != NULL && memcmp(s, "a\0b", 4) == 0);
	}
}

static void test_limits(void)
{
	struct proto_limits l = { .max_string = 16, .max_list = 2, .max_message = 64 };
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	const unsigned char *out;
	size_t len;
	char *three[] = { S("a"), S("b"), S("c"), NULL };

	proto_write_string(w, "0123456789abcdef");  /* 16: allowed */
	proto_write_string(w, "0123456789abcdefg"); /* 17: too long */
	out = proto_conn_output(w, &len);
	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(out, len);
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *a = NULL, *b = NULL;
		proto_conn_set_limits(r, &l);
		CU_ASSERT_EQUAL(proto_read_string(r, &a, &e), 0);
		CU_ASSERT_EQUAL(proto_read_string(r, &b, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "exceeds the limit of 16 bytes") != NULL);
	}

	w = (proto_conn_free(w), proto_conn_new_mem(NULL, 0));
	proto_write_strings(w, three);
	out = proto_conn_output(w, &len);
	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(out, len);
		cleanup_error struct nib_error *e = NULL;
		cleanup_strv char **v = NULL;
		proto_conn_set_limits(r, &l);
		CU_ASSERT_EQUAL(proto_read_strings(r, &v, &e), -1);
		CU_ASSERT(e != NULL &&
			  strstr(e->msg, "list of 3 items exceeds the limit of 2") != NULL);
	}
	{
		/* Without the limit the same bytes are fine. */
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(out, len);
		cleanup_strv char **v = NULL;
		CU_ASSERT_EQUAL(proto_read_strings(r, &v, NULL), 0);
		CU_ASSERT_EQUAL(strv_length(v), 3);
	}

	/* The message budget: 5 strings of 16 bytes need 5 * 24 > 64 bytes. */
	w = (proto_conn_free(w), proto_conn_new_mem(NULL, 0));
	for (int i = 0; i < 5; i++)
		proto_write_string(w, "0123456789abcdef");
	out = proto_conn_output(w, &len);
	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(out, len);
		cleanup_error struct nib_error *e = NULL;
		int fails = 0;
		proto_conn_set_limits(r, &l);
		proto_begin_message(r);
		for (int i = 0; i < 5 && fails == 0; i++) {
			cleanup_free char *s = NULL;
			if (proto_read_string(r, &s, &e) < 0)
				fails = i + 1;
		}
		CU_ASSERT_EQUAL(fails, 3);
		CU_ASSERT(e != NULL &&
			  strstr(e->msg, "message exceeds the limit of 64 bytes") != NULL);
	}

	/* A huge claimed length fails cleanly before anything is allocated for it. */
	{
		const unsigned char huge[] = { 0, 0, 0, 0, 0, 0, 0, 0x80 };
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(huge, sizeof(huge));
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *s = NULL;
		CU_ASSERT_EQUAL(proto_read_bytes(r, &s, NULL, &e), -1);
		CU_ASSERT_PTR_NOT_NULL(e);
	}
	/* Default limits: a string of 64 MiB + 1 is refused. */
	{
		const unsigned char big[] = { 1, 0, 0, 4, 0, 0, 0, 0 };
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(big, sizeof(big));
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *s = NULL;
		CU_ASSERT_EQUAL(proto_read_bytes(r, &s, NULL, &e), -1);
		CU_ASSERT(e != NULL &&
			  strstr(e->msg, "exceeds the limit of 67108864 bytes") != NULL);
	}
}

static void test_pairs_sorted(void)
{
	struct proto_pair unsorted[] = { { S("b"), S("1") }, { S("a"), S("2") } };
	struct proto_pair dup[] = { { S("a"), S("1") }, { S("a"), S("2") } };
	struct proto_pair *got = NULL;
	size_t n = 0;

	for (int i = 0; i < 2; i++) {
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *r = NULL;
		cleanup_error struct nib_error *e = NULL;
		const unsigned char *out;
		size_t len;

		proto_write_pairs(w, i == 0 ? unsorted : dup, 2);
		out = proto_conn_output(w, &len);
		r = proto_conn_new_mem(out, len);
		CU_ASSERT_EQUAL(proto_read_pairs(r, true, &got, &n, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "out of order or repeated") != NULL);
		proto_conn_free(r);
		r = proto_conn_new_mem(out, len);
		CU_ASSERT_EQUAL(proto_read_pairs(r, false, &got, &n, NULL), 0);
		CU_ASSERT_EQUAL(n, 2);
		proto_pairs_free(got, n);
	}
}

/* ---- framed data ------------------------------------------------------------------------------ */

static void test_framed(void)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *r = NULL;
	cleanup_error struct nib_error *e = NULL;
	struct proto_framed_source src;
	const unsigned char *out;
	char buf[64];
	size_t len, got = 0;
	uint64_t after = 0;
	ssize_t n;

	CU_ASSERT_EQUAL(proto_framed_write(w, "hello", 5, &e), 0);
	CU_ASSERT_EQUAL(proto_framed_write(w, "", 0, &e), 0); /* no chunk */
	CU_ASSERT_EQUAL(proto_framed_write(w, "world!!!", 8, &e), 0);
	proto_framed_end(w);
	proto_write_u64(w, 42);
	out = proto_conn_output(w, &len);
	/* 8 + 5 (no padding) + 8 + 8 + 8 + 8 */
	CU_ASSERT_EQUAL(len, 45);

	r = proto_conn_new_mem(out, len);
	proto_framed_source_init(&src, r, 0);
	while ((n = proto_framed_read(&src, buf + got, 3, &e)) > 0)
		got += (size_t)n;
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(got, 13);
	CU_ASSERT(memcmp(buf, "helloworld!!!", 13) == 0);
	CU_ASSERT_EQUAL(src.total, 13);
	CU_ASSERT_EQUAL(proto_framed_read(&src, buf, 3, &e), 0); /* stays at the end */
	CU_ASSERT_EQUAL(proto_read_u64(r, &after, &e), 0);
	CU_ASSERT_EQUAL(after, 42);

	/* Drain skips the rest. */
	proto_conn_free(r);
	r = proto_conn_new_mem(out, len);
	proto_framed_source_init(&src, r, 0);
	CU_ASSERT_EQUAL(proto_framed_read(&src, buf, 2, &e), 2);
	CU_ASSERT_EQUAL(proto_framed_drain(&src, &e), 0);
	CU_ASSERT_EQUAL(proto_read_u64(r, &after, &e), 0);
	CU_ASSERT_EQUAL(after, 42);

	/* max_total */
	proto_conn_free(r);
	r = proto_conn_new_mem(out, len);
	proto_framed_source_init(&src, r, 10);
	CU_ASSERT_EQUAL(proto_framed_drain(&src, &e), -1);
	CU_ASSERT(e != NULL && strstr(e->msg, "exceeds the limit of 10 bytes") != NULL);

	/* Truncated anywhere: an error, never a short success. */
	for (size_t cut = 0; cut < 37; cut++) {
		cleanup_proto_conn struct proto_conn *t = proto_conn_new_mem(out, cut);
		cleanup_error struct nib_error *te = NULL;
		proto_framed_source_init(&src, t, 0);
		CU_ASSERT_EQUAL(proto_framed_drain(&src, &te), -1);
		CU_ASSERT_PTR_NOT_NULL(te);
	}
}

static void test_stream_conn(void)
{
	/* Messages inside framed data, as AddMultipleToStore sends them. */
	cleanup_proto_conn struct proto_conn *outer = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *r = NULL;
	cleanup_error struct nib_error *e = NULL;
	char *v[] = { S("x"), S("yy"), NULL };
	const unsigned char *out;
	size_t len;

	{
		cleanup_proto_conn struct proto_conn *inner =
			proto_conn_new_stream(NULL, NULL, proto_framed_write, outer);
		proto_write_u64(inner, 7);
		proto_write_strings(inner, v);
		proto_write_raw(inner, "raw", 3);
		CU_ASSERT_EQUAL(proto_flush(inner, &e), 0);
		/* Reading is an error on a write-only stream. */
		CU_ASSERT_EQUAL(proto_at_eof(inner, &e), 1);
	}
	proto_framed_end(outer);
	out = proto_conn_output(outer, &len);
	r = proto_conn_new_mem(out, len);
	{
		struct proto_framed_source src;
		cleanup_proto_conn struct proto_conn *inner = NULL;
		cleanup_strv char **got = NULL;
		uint64_t seven = 0;
		char raw[3];

		proto_framed_source_init(&src, r, 0);
		inner = proto_conn_new_stream(proto_framed_read, &src, NULL, NULL);
		CU_ASSERT_EQUAL(proto_read_u64(inner, &seven, &e), 0);
		CU_ASSERT_EQUAL(seven, 7);
		CU_ASSERT_EQUAL(proto_read_strings(inner, &got, &e), 0);
		CU_ASSERT(got != NULL && strv_length(got) == 2 && STREQ(got[1], "yy"));
		CU_ASSERT_EQUAL(proto_raw_read(inner, raw, 3, &e), 3);
		CU_ASSERT(memcmp(raw, "raw", 3) == 0);
		CU_ASSERT_EQUAL(proto_at_eof(inner, &e), 1);
		CU_ASSERT(src.eof);
		/* Writing to a read-only stream fails at flush. */
		proto_write_u64(inner, 1);
		CU_ASSERT_EQUAL(proto_flush(inner, &e), -1);
	}
	CU_ASSERT_EQUAL(proto_conn_input_left(r), 0);
}

static void test_tunnel_read(void)
{
	/* The client's answers to two STDERR_READs. */
	cleanup_proto_conn struct proto_conn *in = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *c = NULL;
	cleanup_error struct nib_error *e = NULL;
	const unsigned char *data, *out;
	size_t len, olen;
	char buf[16];

	proto_write_bytes(in, "abc", 3);
	proto_write_bytes(in, "", 0);
	data = proto_conn_output(in, &len);
	c = proto_conn_new_mem(data, len);
	CU_ASSERT_EQUAL(proto_tunnel_read(c, buf, sizeof(buf), &e), 3);
	CU_ASSERT(memcmp(buf, "abc", 3) == 0);
	CU_ASSERT_EQUAL(proto_tunnel_read(c, buf, sizeof(buf), &e), -1);
	CU_ASSERT(e != NULL && strstr(e->msg, "no data") != NULL);
	out = proto_conn_output(c, &olen);
	CU_ASSERT_EQUAL(olen, 32);
	if (olen == 32) {
		uint64_t code = 0, n = 0;
		cleanup_proto_conn struct proto_conn *o = proto_conn_new_mem(out, olen);
		CU_ASSERT_EQUAL(proto_read_u64(o, &code, NULL), 0);
		CU_ASSERT_EQUAL(code, PROTO_STDERR_READ);
		CU_ASSERT_EQUAL(proto_read_u64(o, &n, NULL), 0);
		CU_ASSERT_EQUAL(n, sizeof(buf));
	}
}

/* ---- log frames ------------------------------------------------------------------------------- */

static struct proto_field sample_fields[] = {
	{ .type = PROTO_FIELD_STRING, .s = S(HELLO_DRV), .len = sizeof(HELLO_DRV) - 1 },
	{ .type = PROTO_FIELD_STRING, .s = S(""), .len = 0 },
	{ .type = PROTO_FIELD_INT, .i = 1 },
	{ .type = PROTO_FIELD_INT, .i = 1 },
};

static void write_sample_frames(struct proto_conn *c)
{
	struct proto_activity act = { .id = 77,
				      .level = PROTO_LVL_INFO,
				      .type = PROTO_ACT_BUILD,
				      .text = S("building 'x'"),
				      .fields = sample_fields,
				      .n_fields = 4,
				      .parent = 5 };
	struct proto_activity quiet = { .id = 78, .type = PROTO_ACT_REALISE, .text = S("") };
	struct proto_field line = { .type = PROTO_FIELD_STRING, .s = S("a\0b"), .len = 3 };
	char *traces[] = { S("while doing x"), NULL };
	struct proto_error err = {
		.level = 0, .msg = S("it failed"), .traces = traces, .exit_status = 101
	};

	proto_write_next(c, "hello\n", 6);
	proto_write_start_activity(c, &act);
	proto_write_start_activity(c, &quiet);
	proto_write_result(c, 77, PROTO_RES_BUILD_LOG_LINE, &line, 1);
	proto_write_stop_activity(c, 77);
	proto_write_error(c, &err);
}

static void test_frames_roundtrip(void)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *r = NULL;
	cleanup_proto_conn struct proto_conn *w2 = proto_conn_new_mem(NULL, 0);
	cleanup_error struct nib_error *e = NULL;
	const unsigned char *out;
	size_t len;
	struct proto_frame f;
	int n = 0;

	proto_conn_set_version(w, PROTO_VERSION_NIX_2_8);
	proto_conn_set_version(w2, PROTO_VERSION_NIX_2_8);
	write_sample_frames(w);
	out = proto_conn_output(w, &len);
	r = proto_conn_new_mem(out, len);
	proto_conn_set_version(r, PROTO_VERSION_NIX_2_8);
	while (proto_conn_input_left(r) > 0) {
		if (proto_read_frame(r, &f, &e) < 0) {
			CU_FAIL("reading a frame");
			break;
		}
		switch (n) {
		case 0:
			CU_ASSERT_EQUAL(f.code, PROTO_STDERR_NEXT);
			CU_ASSERT(f.msg_len == 6 && memcmp(f.msg, "hello\n", 6) == 0);
			break;
		case 1:
			CU_ASSERT_EQUAL(f.code, PROTO_STDERR_START_ACTIVITY);
			CU_ASSERT_EQUAL(f.act.id, 77);
			CU_ASSERT_EQUAL(f.act.type, PROTO_ACT_BUILD);
			CU_ASSERT_STRING_EQUAL(f.act.text, "building 'x'");
			CU_ASSERT_EQUAL(f.act.n_fields, 4);
			CU_ASSERT(f.act.n_fields == 4 && STREQ(f.act.fields[0].s, HELLO_DRV) &&
				  f.act.fields[3].i == 1);
			CU_ASSERT_EQUAL(f.act.parent, 5);
			break;
		case 3:
			CU_ASSERT_EQUAL(f.code, PROTO_STDERR_RESULT);
			CU_ASSERT_EQUAL(f.result_type, PROTO_RES_BUILD_LOG_LINE);
			CU_ASSERT(f.act.n_fields == 1 && f.act.fields[0].len == 3);
			break;
		case 4:
			CU_ASSERT_EQUAL(f.code, PROTO_STDERR_STOP_ACTIVITY);
			CU_ASSERT_EQUAL(f.act.id, 77);
			break;
		case 5:
			CU_ASSERT_EQUAL(f.code, PROTO_STDERR_ERROR);
			CU_ASSERT_STRING_EQUAL(f.error.msg, "it failed");
			CU_ASSERT_STRING_EQUAL(f.error.name, "Error");
			CU_ASSERT(f.error.traces != NULL &&
				  STREQ(f.error.traces[0], "while doing x"));
			break;
		}
		proto_write_frame(w2, &f);
		proto_frame_release(&f);
		n++;
	}
	CU_ASSERT_EQUAL(n, 6);
	CU_ASSERT(out_equals(w2, out, len));
}

static void test_frames_old_versions(void)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *r = NULL;
	cleanup_error struct nib_error *e = NULL;
	const unsigned char *out;
	size_t len;
	struct proto_frame f;

	/* 1.19: activities become "<text>...\n" lines, results vanish; the error is (msg, status). */
	proto_conn_set_version(w, PROTO_VERSION(1, 19));
	write_sample_frames(w);
	out = proto_conn_output(w, &len);
	r = proto_conn_new_mem(out, len);
	proto_conn_set_version(r, PROTO_VERSION(1, 19));
	CU_ASSERT_EQUAL(proto_read_frame(r, &f, &e), 0);
	CU_ASSERT(f.code == PROTO_STDERR_NEXT && f.msg_len == 6);
	proto_frame_release(&f);
	CU_ASSERT_EQUAL(proto_read_frame(r, &f, &e), 0);
	CU_ASSERT(f.code == PROTO_STDERR_NEXT && f.msg != NULL &&
		  STREQ(f.msg, "building 'x'...\n"));
	proto_frame_release(&f);
	CU_ASSERT_EQUAL(proto_read_frame(r, &f, &e), 0);
	CU_ASSERT_EQUAL(f.code, PROTO_STDERR_ERROR);
	CU_ASSERT(f.error.msg != NULL && STREQ(f.error.msg, "it failed"));
	CU_ASSERT_EQUAL(f.error.exit_status, 101);
	CU_ASSERT_PTR_NULL(f.error.name);
	proto_frame_release(&f);
	CU_ASSERT_EQUAL(proto_conn_input_left(r), 0);

	/* 1.25 vs 1.26: the error frame changes form. */
	for (unsigned v = PROTO_VERSION(1, 25); v <= PROTO_VERSION(1, 26); v++) {
		cleanup_proto_conn struct proto_conn *ew = proto_conn_new_mem(NULL, 0);
		size_t elen;
		proto_conn_set_version(ew, v);
		proto_write_error_msg(ew, "boom");
		proto_conn_output(ew, &elen);
		/* code + "boom" + status, or code + "Error" + level + "Error" + "boom" + pos + traces */
		CU_ASSERT_EQUAL(elen, v == PROTO_VERSION(1, 25) ? 8 + 16 + 8
								: 8 + 16 + 8 + 16 + 16 + 8 + 8);
	}
}

static void test_frames_bad(void)
{
	const unsigned char unknown[] = { 1, 2, 3, 4, 0, 0, 0, 0 };
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	const unsigned char *out;
	size_t len;

	{
		cleanup_proto_conn struct proto_conn *r =
			proto_conn_new_mem(unknown, sizeof(unknown));
		cleanup_error struct nib_error *e = NULL;
		struct proto_frame f;
		CU_ASSERT_EQUAL(proto_read_frame(r, &f, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "unknown log frame 0x4030201") != NULL);
	}
	/* An error with a position (Nix never sends one) is refused. */
	proto_write_u64(w, PROTO_STDERR_ERROR);
	proto_write_string(w, "Error");
	proto_write_u64(w, 0);
	proto_write_string(w, "Error");
	proto_write_string(w, "msg");
	proto_write_u64(w, 1);
	out = proto_conn_output(w, &len);
	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(out, len);
		cleanup_error struct nib_error *e = NULL;
		struct proto_frame f;
		proto_conn_set_version(r, PROTO_VERSION_NIX_2_8);
		CU_ASSERT_EQUAL(proto_read_frame(r, &f, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "positions") != NULL);
	}
	/* Unknown field type. */
	w = (proto_conn_free(w), proto_conn_new_mem(NULL, 0));
	proto_write_u64(w, PROTO_STDERR_RESULT);
	proto_write_u64(w, 1);
	proto_write_u64(w, 101);
	proto_write_u64(w, 1);
	proto_write_u64(w, 7);
	out = proto_conn_output(w, &len);
	{
		cleanup_proto_conn struct proto_conn *r = proto_conn_new_mem(out, len);
		cleanup_error struct nib_error *e = NULL;
		struct proto_frame f;
		proto_conn_set_version(r, PROTO_VERSION_NIX_2_8);
		CU_ASSERT_EQUAL(proto_read_frame(r, &f, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "unknown log field type 7") != NULL);
	}
}

struct counts {
	int next, start, stop, result;
	struct strbuf log;
	uint64_t last_id;
};

static void h_next(void *ud, const char *msg, size_t len)
{
	struct counts *c = ud;
	c->next++;
	strbuf_add(&c->log, msg, len);
}
static void h_start(void *ud, const struct proto_activity *act)
{
	struct counts *c = ud;
	c->start++;
	c->last_id = act->id;
}
static void h_stop(void *ud, uint64_t id)
{
	struct counts *c = ud;
	c->stop++;
	c->last_id = id;
}
static void h_result(void *ud, uint64_t id, uint64_t type, const struct proto_field *fields,
		     size_t n)
{
	struct counts *c = ud;
	c->result++;
	if (type == PROTO_RES_BUILD_LOG_LINE && n == 1 && fields[0].type == PROTO_FIELD_STRING) {
		strbuf_add(&c->log, fields[0].s, fields[0].len);
		strbuf_addch(&c->log, '\n');
	}
}

static ssize_t give_data(void *ud, void *buf, size_t len, struct nib_error **err)
{
	int *calls = ud;
	(*calls)++;
	memcpy(buf, "xyz", len < 3 ? len : 3);
	return len < 3 ? (ssize_t)len : 3;
}

static void test_read_stderr(void)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *r = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_proto_error struct proto_error *remote = NULL;
	struct counts cnt = { .log = STRBUF_INIT };
	int reads = 0;
	struct proto_log_handlers h = { .userdata = &cnt,
					.next = h_next,
					.start_activity = h_start,
					.stop_activity = h_stop,
					.result = h_result,
					.read_source = give_data,
					.read_data = &reads };
	const unsigned char *out, *answer;
	size_t len, alen;

	proto_conn_set_version(w, PROTO_VERSION_NIX_2_8);
	write_sample_frames(w);
	proto_write_u64(w, PROTO_STDERR_READ);
	proto_write_u64(w, 2);
	proto_write_last(w);
	out = proto_conn_output(w, &len);
	r = proto_conn_new_mem(out, len);
	proto_conn_set_version(r, PROTO_VERSION_NIX_2_8);
	CU_ASSERT_EQUAL(proto_read_stderr(r, &h, &remote, &e), 1);
	CU_ASSERT(remote != NULL && STREQ(remote->msg, "it failed"));
	CU_ASSERT_EQUAL(cnt.next, 1);
	CU_ASSERT_EQUAL(cnt.start, 2);
	CU_ASSERT_EQUAL(cnt.stop, 1);
	CU_ASSERT_EQUAL(cnt.result, 1);
	CU_ASSERT_EQUAL(cnt.last_id, 77);
	/* The connection is still usable after a remote error. */
	CU_ASSERT_EQUAL(proto_read_stderr(r, &h, &remote, &e), 0);
	CU_ASSERT_EQUAL(reads, 1);
	answer = proto_conn_output(r, &alen);
	CU_ASSERT(alen == 16 && answer[0] == 2 && memcmp(answer + 8, "xy", 2) == 0);
	/* Without a source, STDERR_READ is an error. */
	{
		cleanup_proto_conn struct proto_conn *r2 = proto_conn_new_mem(out, len);
		struct proto_error *re = NULL;
		proto_conn_set_version(r2, PROTO_VERSION_NIX_2_8);
		CU_ASSERT_EQUAL(proto_read_stderr(r2, NULL, &re, &e), 1);
		proto_error_free(re);
		CU_ASSERT_EQUAL(proto_read_stderr(r2, NULL, &re, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "asked for data") != NULL);
	}
	strbuf_release(&cnt.log);
}

/* ---- handshake ------------------------------------------------------------------------------- */

struct hs_server {
	int fd;
	bool refuse;
	int rc;
	unsigned version;
	char msg[256];
};

static void *server_thread(void *p)
{
	struct hs_server *s = p;
	struct proto_conn *c = proto_conn_new_fd(s->fd, s->fd, false);
	struct nib_error *e = NULL;

	s->rc = proto_server_handshake(c, "nib test", PROTO_TRUST_TRUSTED, &e);
	if (s->rc == 0) {
		if (s->refuse)
			proto_write_error_msg(c, "too many connections");
		else
			proto_write_last(c);
		s->rc = proto_flush(c, &e);
	}
	s->version = proto_conn_version(c);
	if (e != NULL)
		snprintf(s->msg, sizeof(s->msg), "%s", e->msg);
	nib_error_free(e);
	proto_conn_free(c);
	/* Hang up like a daemon that gives up, so that the client sees end of input. */
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

/* Run a server handshake against a client offering `version`; returns the client's rc. */
static int run_handshake(unsigned version, bool refuse, struct hs_server *srv,
			 struct proto_server_info *info, unsigned *client_version,
			 struct nib_error **err)
{
	int sv[2];
	pthread_t t;
	int rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	memset(srv, 0, sizeof(*srv));
	srv->fd = sv[1];
	srv->refuse = refuse;
	pthread_create(&t, NULL, server_thread, srv);
	{
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_fd(sv[0], sv[0], true);
		rc = proto_client_handshake(c, version, NULL, info, err);
		*client_version = proto_conn_version(c);
	}
	pthread_join(t, NULL);
	close(sv[1]);
	return rc;
}

static void test_handshake_versions(void)
{
	static const struct {
		unsigned offered, negotiated;
	} cases[] = {
		{ PROTO_VERSION(1, 37), PROTO_VERSION(1, 37) },
		{ PROTO_VERSION(1, 34), PROTO_VERSION(1, 34) }, /* Debian's Nix 2.8 */
		{ PROTO_VERSION(1, 35), PROTO_VERSION(1, 35) },
		{ PROTO_VERSION(1, 33), PROTO_VERSION(1, 33) },
		{ PROTO_VERSION(1, 21), PROTO_VERSION(1, 21) }, /* Nix 2.3 */
		{ PROTO_VERSION(1, 20), PROTO_VERSION(1, 20) }, /* Nix 2.0 */
		{ PROTO_VERSION(1, 14), PROTO_VERSION(1, 14) },
		{ PROTO_VERSION(1, 11), PROTO_VERSION(1, 11) },
		{ PROTO_VERSION(1, 10), PROTO_VERSION(1, 10) },
		{ PROTO_VERSION(1, 39), PROTO_VERSION(1, 37) }, /* newer Nix negotiates down */
		{ PROTO_VERSION(2, 0), PROTO_VERSION(1, 37) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct hs_server srv;
		struct proto_server_info info = { 0 };
		cleanup_error struct nib_error *e = NULL;
		unsigned cv = 0;
		unsigned v = cases[i].negotiated;
		int rc = run_handshake(cases[i].offered, false, &srv, &info, &cv, &e);

		CU_ASSERT_EQUAL(rc, 0);
		if (rc < 0)
			fprintf(stderr, "handshake at 0x%x: %s\n", cases[i].offered,
				e ? e->msg : "?");
		CU_ASSERT_EQUAL(srv.rc, 0);
		CU_ASSERT_EQUAL(srv.version, v);
		CU_ASSERT_EQUAL(cv, v);
		CU_ASSERT_EQUAL(info.daemon_version, PROTO_VERSION_MAX);
		if (v >= PROTO_VERSION(1, 33)) {
			CU_ASSERT(info.nix_version != NULL && STREQ(info.nix_version, "nib test"));
		} else {
			CU_ASSERT_PTR_NULL(info.nix_version);
		}
		CU_ASSERT_EQUAL(info.trust, v >= PROTO_VERSION(1, 35) ? PROTO_TRUST_TRUSTED
								      : PROTO_TRUST_UNKNOWN);
		proto_server_info_release(&info);
	}
}

static void test_handshake_refused(void)
{
	struct hs_server srv;
	cleanup_error struct nib_error *e = NULL;
	unsigned cv;

	/* A client too old for us. */
	CU_ASSERT_EQUAL(run_handshake(PROTO_VERSION(1, 9), false, &srv, NULL, &cv, &e), -1);
	CU_ASSERT_EQUAL(srv.rc, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(srv.msg, "client's protocol version 1.9 is too old"));
	CU_ASSERT(e != NULL && e->code == NIB_E_PROTOCOL);

	/* The daemon refuses after the greeting: the client reports its message. */
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(run_handshake(PROTO_VERSION_MAX, true, &srv, NULL, &cv, &e), -1);
	CU_ASSERT_EQUAL(srv.rc, 0);
	CU_ASSERT(e != NULL && e->code == NIB_E_DENIED &&
		  strstr(e->msg, "refused the connection: too many connections") != NULL);
}

static void test_handshake_garbage(void)
{
	int sv[2];
	pthread_t t;
	struct hs_server srv = { 0 };
	const char garbage[] = "GET / HTTP/1.1\r\n\r\n";

	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	srv.fd = sv[1];
	pthread_create(&t, NULL, server_thread, &srv);
	CU_ASSERT_EQUAL(write(sv[0], garbage, sizeof(garbage) - 1), (ssize_t)sizeof(garbage) - 1);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(srv.rc, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(srv.msg, "protocol mismatch"));
	/* Nothing was sent back. */
	{
		char buf[8];
		CU_ASSERT_EQUAL(read(sv[0], buf, sizeof(buf)), 0);
	}
	close(sv[0]);
	close(sv[1]);

	/* A client talking to something that is not a daemon, or a daemon too old. */
	{
		const unsigned char not_daemon[16] = "HTTP/1.1 400 Ba";
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(not_daemon, 16);
		cleanup_error struct nib_error *e = NULL;
		CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_MAX, NULL, NULL, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "not a Nix worker daemon") != NULL);
	}
	{
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *c = NULL;
		cleanup_error struct nib_error *e = NULL;
		const unsigned char *out;
		size_t len;
		proto_write_u64(w, PROTO_WORKER_MAGIC_2);
		proto_write_u64(w, PROTO_VERSION(1, 9));
		out = proto_conn_output(w, &len);
		c = proto_conn_new_mem(out, len);
		CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_MAX, NULL, NULL, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "too old") != NULL);
	}
}

/* The exact bytes of the handshake with Nix 2.8's client, both directions. */
static void test_handshake_golden(void)
{
	cleanup_free char *client = NULL, *server = NULL;
	size_t clen, slen;
	cleanup_error struct nib_error *e = NULL;

	REQUIRE(load("1.34", "handshake-client.bin", &client, &clen) == 0);
	REQUIRE(load("1.34", "handshake-server.bin", &server, &slen) == 0);
	{
		/* nib's client offering 1.34 sends what Nix 2.8 sends. */
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(server, slen);
		struct proto_server_info info = { 0 };
		CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_NIX_2_8, NULL, &info, &e),
				0);
		CU_ASSERT(out_equals(c, client, clen));
		CU_ASSERT_EQUAL(info.daemon_version, PROTO_VERSION_NIX_2_8);
		CU_ASSERT(info.nix_version != NULL && STREQ(info.nix_version, "2.8.0"));
		CU_ASSERT_EQUAL(proto_conn_input_left(c), 0);
		proto_server_info_release(&info);
	}
	{
		/* nib's daemon answers like Nix 2.8's, except that it offers 1.37. */
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(client, clen);
		cleanup_free char *want = xmemdup(server, slen);
		want[8] = (char)PROTO_MINOR(PROTO_VERSION_MAX);
		CU_ASSERT_EQUAL(proto_server_handshake(c, "2.8.0", PROTO_TRUST_UNKNOWN, &e), 0);
		proto_write_last(c);
		CU_ASSERT_EQUAL(proto_conn_version(c), PROTO_VERSION_NIX_2_8);
		CU_ASSERT(out_equals(c, want, slen));
		CU_ASSERT_EQUAL(proto_conn_input_left(c), 0);
	}
	/* Truncated greetings fail on both sides. */
	for (size_t cut = 0; cut < clen; cut++) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(client, cut);
		cleanup_error struct nib_error *te = NULL;
		CU_ASSERT_EQUAL(proto_server_handshake(c, "x", PROTO_TRUST_UNKNOWN, &te), -1);
	}
	for (size_t cut = 0; cut < slen; cut++) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(server, cut);
		cleanup_error struct nib_error *te = NULL;
		CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_NIX_2_8, NULL, NULL, &te),
				-1);
	}
}

/*
 * Offering 1.14 or more, nib's client sends the obsolete fields with its
 * greeting, before it reads anything (one round trip less), and so refuses
 * a daemon older than 1.14; offering less, it waits for the daemon's
 * version as before.
 */
static void test_handshake_eager(void)
{
	static const struct {
		unsigned offered;
		size_t sent; /* bytes written before anything is read */
	} cases[] = {
		{ PROTO_VERSION_MAX, 32 },
		{ PROTO_VERSION(1, 14), 32 },
		{ PROTO_VERSION(1, 13), 16 },
		{ PROTO_VERSION(1, 10), 16 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(NULL, 0);
		cleanup_error struct nib_error *e = NULL;
		size_t len = 0;
		CU_ASSERT_EQUAL(proto_client_handshake(c, cases[i].offered, NULL, NULL, &e), -1);
		(void)proto_conn_output(c, &len);
		CU_ASSERT_EQUAL(len, cases[i].sent);
	}
	for (unsigned minor = 10; minor <= 14; minor++) {
		/* A daemon of 1.<minor>: only 1.14 is new enough for an eager client. */
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *c = NULL;
		cleanup_error struct nib_error *e = NULL;
		const unsigned char *out;
		size_t len;

		proto_write_u64(w, PROTO_WORKER_MAGIC_2);
		proto_write_u64(w, PROTO_VERSION(1, minor));
		proto_write_last(w);
		out = proto_conn_output(w, &len);
		c = proto_conn_new_mem(out, len);
		CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_MAX, NULL, NULL, &e),
				minor >= 14 ? 0 : -1);
		CU_ASSERT(minor >= 14 || (e != NULL && strstr(e->msg, "too old") != NULL));
	}
}

/*
 * The daemon can answer the greeting on its own first (proto_server_hello)
 * and finish the handshake later: the bytes are the same.
 */
static void test_server_hello(void)
{
	{
		cleanup_free char *client = NULL, *server = NULL;
		size_t clen, slen, len1, len2;
		cleanup_error struct nib_error *e = NULL;
		cleanup_proto_conn struct proto_conn *whole = NULL, *split = NULL, *bad = NULL;
		const unsigned char *out1, *out2;

		REQUIRE(load("1.34", "handshake-client.bin", &client, &clen) == 0);
		REQUIRE(load("1.34", "handshake-server.bin", &server, &slen) == 0);
		whole = proto_conn_new_mem(client, clen);
		split = proto_conn_new_mem(client, clen);
		CU_ASSERT_EQUAL(proto_server_handshake(whole, "2.8.0", PROTO_TRUST_UNKNOWN, &e), 0);
		CU_ASSERT_EQUAL(proto_server_hello(split, &e), 0);
		(void)proto_conn_output(split, &len1);
		CU_ASSERT_EQUAL(len1, 16); /* the greeting only */
		CU_ASSERT_EQUAL(proto_server_handshake(split, "2.8.0", PROTO_TRUST_UNKNOWN, &e), 0);
		out1 = proto_conn_output(whole, &len1);
		out2 = proto_conn_output(split, &len2);
		CU_ASSERT(len1 == len2 && memcmp(out1, out2, len1) == 0);
		CU_ASSERT_EQUAL(proto_conn_version(split), PROTO_VERSION_NIX_2_8);
		CU_ASSERT_EQUAL(proto_conn_input_left(split), 0);
		/* A bad greeting: an error, and nothing sent. */
		bad = proto_conn_new_mem((const unsigned char *)"GET / HTTP/1.1\r\n\r\n", 18);
		CU_ASSERT_EQUAL(proto_server_hello(bad, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "protocol mismatch") != NULL);
		(void)proto_conn_output(bad, &len1);
		CU_ASSERT_EQUAL(len1, 0);
	}
}

/* A CPU affinity flag that is set is followed by the CPU number (old clients). */
static void test_handshake_affinity(void)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *c = NULL;
	cleanup_error struct nib_error *e = NULL;
	const unsigned char *in;
	size_t len;
	uint64_t op = 0;

	proto_write_u64(w, PROTO_WORKER_MAGIC_1);
	proto_write_u64(w, PROTO_VERSION(1, 14));
	proto_write_u64(w, 1); /* affinity set */
	proto_write_u64(w, 3); /* CPU 3 */
	proto_write_u64(w, 0); /* reserveSpace */
	proto_write_u64(w, PROTO_OP_SYNC_WITH_GC);
	in = proto_conn_output(w, &len);
	c = proto_conn_new_mem(in, len);
	CU_ASSERT_EQUAL(proto_server_handshake(c, "x", PROTO_TRUST_UNKNOWN, &e), 0);
	CU_ASSERT_EQUAL(proto_read_u64(c, &op, &e), 0);
	CU_ASSERT_EQUAL(op, PROTO_OP_SYNC_WITH_GC);
}

/* ---- derived paths ---------------------------------------------------------------------------- */

static void test_derived_paths(void)
{
	static const struct {
		const char *in;
		unsigned version;
		bool ok, built, all;
		const char *outputs; /* comma-joined, sorted */
		const char *printed; /* NULL: same as in */
	} cases[] = {
		{ HELLO, PROTO_VERSION(1, 34), true, false, false, NULL, NULL },
		{ HELLO_DRV, PROTO_VERSION(1, 34), true, false, false, NULL, NULL },
		{ HELLO_DRV "!*", PROTO_VERSION(1, 34), true, true, true, NULL, NULL },
		{ HELLO_DRV "!out", PROTO_VERSION(1, 34), true, true, false, "out", NULL },
		{ HELLO_DRV "!out,doc", PROTO_VERSION(1, 34), true, true, false, "doc,out",
		  HELLO_DRV "!doc,out" },
		{ HELLO_DRV "!out,out", PROTO_VERSION(1, 34), true, true, false, "out",
		  HELLO_DRV "!out" },
		{ HELLO_DRV "!", PROTO_VERSION(1, 34), false, false, false, NULL, NULL },
		{ HELLO_DRV "!a,,b", PROTO_VERSION(1, 34), false, false, false, NULL, NULL },
		{ "!out", PROTO_VERSION(1, 34), false, false, false, NULL, NULL },
		{ "", PROTO_VERSION(1, 34), false, false, false, NULL, NULL },
		/* StorePathWithOutputs before 1.30: a bare .drv means all outputs. */
		{ HELLO_DRV, PROTO_VERSION(1, 29), true, true, true, NULL, NULL },
		{ HELLO, PROTO_VERSION(1, 29), true, false, false, NULL, NULL },
		{ HELLO_DRV "!out", PROTO_VERSION(1, 21), true, true, false, "out", NULL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct proto_derived_path p = { 0 };
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *printed = NULL;
		int rc = proto_derived_path_parse(cases[i].in, cases[i].version, &p, &e);

		CU_ASSERT_EQUAL(rc, cases[i].ok ? 0 : -1);
		if (rc < 0) {
			CU_ASSERT_PTR_NOT_NULL(e);
			continue;
		}
		CU_ASSERT_EQUAL(p.built, cases[i].built);
		CU_ASSERT_EQUAL(p.all_outputs, cases[i].all);
		if (cases[i].outputs != NULL) {
			struct strbuf sb = STRBUF_INIT;
			for (size_t j = 0; p.outputs && p.outputs[j]; j++)
				strbuf_addf(&sb, "%s%s", j ? "," : "", p.outputs[j]);
			CU_ASSERT_STRING_EQUAL(sb.buf, cases[i].outputs);
			strbuf_release(&sb);
		}
		printed = proto_derived_path_to_string(&p, cases[i].version, &e);
		CU_ASSERT(printed != NULL &&
			  STREQ(printed, cases[i].printed ? cases[i].printed : cases[i].in));
		proto_derived_path_release(&p);
	}

	/* Printing for old daemons. */
	{
		struct proto_derived_path all = { .path = S(HELLO_DRV),
						  .built = true,
						  .all_outputs = true };
		struct proto_derived_path opaque_drv = { .path = S(HELLO_DRV) };
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *s1 =
			proto_derived_path_to_string(&all, PROTO_VERSION(1, 21), &e);
		cleanup_free char *s2 =
			proto_derived_path_to_string(&all, PROTO_VERSION(1, 30), &e);
		cleanup_free char *s3 =
			proto_derived_path_to_string(&opaque_drv, PROTO_VERSION(1, 29), &e);
		CU_ASSERT(s1 != NULL && STREQ(s1, HELLO_DRV));
		CU_ASSERT(s2 != NULL && STREQ(s2, HELLO_DRV "!*"));
		CU_ASSERT_PTR_NULL(s3);
		CU_ASSERT(e != NULL && e->code == NIB_E_UNSUPPORTED);
	}
}

/* ---- every serializer at every version --------------------------------------------------------- */

static char s_hello[] = HELLO, s_hello_drv[] = HELLO_DRV, s_dep[] = DEP;
static char s_empty[] = "", s_tree[] = "tree", s_cam[] = "fixed:r:sha256", s_sha256[] = "sha256";
static char s_text_name[] = "x.drv", s_text[] = "Derive(a\0b)", s_out[] = "out", s_doc[] = "doc";
static char s_sig[] = "cache.example.org-1:c2lnbmF0dXJl";
static char s_ca[] = "fixed:r:sha256:0famhjvd3571h0qin6b0qnjkcbaqwxm7y4kkz6bf99ya1aj3aqrg";
static char s_root[] = "/tmp/roots/result", s_id[] = "sha256:b80a!out";
static char s_realisation[] = "{\"id\":\"x\"}", s_platform[] = "x86_64-linux";
static char s_builder[] = "/bin/sh", s_arg1[] = "-c", s_arg2[] = "echo hi > $out";
static char s_k1[] = "builder", s_k2[] = "name", s_k3[] = "out", s_v2[] = "hello";
static char s_setting[] = "builders", s_msg[] = "builder failed\nwith \x1b[31mcolour\x1b[0m";

static char *v_two[] = { s_dep, s_hello, NULL };
static char *v_one[] = { s_dep, NULL };
static char *v_sigs[] = { s_sig, NULL };
static char *v_args[] = { s_arg1, s_arg2, NULL };
static char *v_outputs[] = { s_doc, s_out, NULL };

static struct proto_pair p_env[] = { { s_k1, s_builder }, { s_k2, s_v2 }, { s_k3, s_hello } };
static struct proto_pair p_outmap[] = { { s_doc, s_dep }, { s_out, s_hello } };
static struct proto_pair p_override[] = { { s_setting, s_empty } };
static struct proto_pair p_subst[] = { { s_hello, s_empty } };
static struct proto_drv_output drv_outputs[] = { { s_out, s_hello, s_empty, s_empty } };
static struct proto_derived_path d_paths[] = {
	{ .path = s_hello },
	{ .path = s_hello_drv, .built = true, .all_outputs = true },
	{ .path = s_hello_drv, .built = true, .outputs = v_outputs },
};

static void sample_path_info(struct proto_path_info *i, bool keyed)
{
	memset(i, 0, sizeof(*i));
	i->path = keyed ? s_hello : NULL;
	i->deriver = s_hello_drv;
	hash_string(HASH_SHA256, "nar", &i->nar_hash);
	i->references = v_one;
	i->registration_time = 1700000000;
	i->nar_size = 520;
	i->ultimate = true;
	i->sigs = v_sigs;
	i->ca = s_ca;
}

static void sample_build_result(struct proto_build_result *r)
{
	memset(r, 0, sizeof(*r));
	r->status = PROTO_BUILD_PERMANENT_FAILURE;
	r->error_msg = s_msg;
	r->times_built = 2;
	r->is_non_deterministic = true;
	r->start_time = 1700000000;
	r->stop_time = 1700000009;
	r->has_cpu_user = true;
	r->cpu_user_usec = 1234567;
	r->has_cpu_system = false;
	r->built_outputs = p_outmap;
	r->n_built_outputs = 2;
}

static void sample_request(uint64_t op, struct proto_request *r)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	switch (op) {
	case PROTO_OP_SYNC_WITH_GC:
	case PROTO_OP_FIND_ROOTS:
	case PROTO_OP_QUERY_ALL_VALID_PATHS:
	case PROTO_OP_OPTIMISE_STORE:
	case PROTO_OP_IMPORT_PATHS:
		break;
	case PROTO_OP_ADD_TO_STORE:
		r->add_to_store.name = s_tree;
		r->add_to_store.cam = s_cam;
		r->add_to_store.refs = v_one;
		r->add_to_store.repair = true;
		r->add_to_store.fixed = true;
		r->add_to_store.recursive = 1;
		r->add_to_store.hash_algo = s_sha256;
		break;
	case PROTO_OP_ADD_TEXT_TO_STORE:
		r->add_text_to_store.name = s_text_name;
		r->add_text_to_store.text = s_text;
		r->add_text_to_store.text_len = sizeof(s_text) - 1;
		r->add_text_to_store.refs = v_two;
		break;
	case PROTO_OP_BUILD_PATHS:
	case PROTO_OP_BUILD_PATHS_WITH_RESULTS:
	case PROTO_OP_QUERY_MISSING:
		r->build_paths.paths = d_paths;
		r->build_paths.n_paths = ARRAY_SIZE(d_paths);
		r->build_paths.mode = op == PROTO_OP_BUILD_PATHS_WITH_RESULTS
					      ? PROTO_BUILD_MODE_CHECK
					      : PROTO_BUILD_MODE_NORMAL;
		break;
	case PROTO_OP_SET_OPTIONS:
		r->set_options.keep_going = true;
		r->set_options.verbosity = PROTO_LVL_INFO;
		r->set_options.max_build_jobs = 4;
		r->set_options.use_build_hook = 1;
		r->set_options.build_verbosity = PROTO_LVL_VOMIT;
		r->set_options.build_cores = 2;
		r->set_options.use_substitutes = true;
		r->set_options.overrides = p_override;
		r->set_options.n_overrides = 1;
		break;
	case PROTO_OP_COLLECT_GARBAGE:
		r->collect_garbage.action = PROTO_GC_DELETE_SPECIFIC;
		r->collect_garbage.paths_to_delete = v_two;
		r->collect_garbage.max_freed = UINT64_MAX;
		break;
	case PROTO_OP_QUERY_VALID_PATHS:
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATHS:
		r->paths.paths = v_two;
		r->paths.substitute = op == PROTO_OP_QUERY_VALID_PATHS;
		break;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS:
		r->query_substitutable_path_infos.paths = p_subst;
		r->query_substitutable_path_infos.n_paths = 1;
		break;
	case PROTO_OP_VERIFY_STORE:
		r->verify_store.check_contents = true;
		break;
	case PROTO_OP_BUILD_DERIVATION:
		r->build_derivation.drv_path = s_hello_drv;
		r->build_derivation.drv.outputs = drv_outputs;
		r->build_derivation.drv.n_outputs = 1;
		r->build_derivation.drv.input_srcs = v_one;
		r->build_derivation.drv.platform = s_platform;
		r->build_derivation.drv.builder = s_builder;
		r->build_derivation.drv.args = v_args;
		r->build_derivation.drv.env = p_env;
		r->build_derivation.drv.n_env = ARRAY_SIZE(p_env);
		r->build_derivation.mode = PROTO_BUILD_MODE_REPAIR;
		break;
	case PROTO_OP_ADD_SIGNATURES:
		r->add_signatures.path = s_hello;
		r->add_signatures.sigs = v_sigs;
		break;
	case PROTO_OP_ADD_TO_STORE_NAR:
		sample_path_info(&r->add_to_store_nar.info, true);
		r->add_to_store_nar.dont_check_sigs = true;
		break;
	case PROTO_OP_ADD_MULTIPLE_TO_STORE:
		r->add_multiple_to_store.repair = true;
		break;
	case PROTO_OP_REGISTER_DRV_OUTPUT:
		r->register_drv_output.id = s_id;
		r->register_drv_output.out_path = s_hello;
		r->register_drv_output.realisation = s_realisation;
		break;
	case PROTO_OP_ADD_PERM_ROOT:
		r->add_perm_root.path = s_hello;
		r->add_perm_root.gc_root = s_root;
		break;
	case PROTO_OP_EXPORT_PATH:
		r->export_path.path = s_hello;
		r->export_path.sign = 0;
		break;
	case PROTO_OP_ADD_INDIRECT_ROOT:
		r->path = s_root;
		break;
	default:
		r->path = s_hello;
		break;
	}
}

static bool request_roundtrip(unsigned v, const struct proto_request *r)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *w2 = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *rd = NULL;
	cleanup_error struct nib_error *e = NULL;
	struct proto_request got;
	const unsigned char *out;
	size_t len;
	bool ok = true;

	proto_conn_set_version(w, v);
	proto_conn_set_version(w2, v);
	if (proto_write_request(w, r, &e) < 0) {
		fprintf(stderr, "writing %s at 1.%u: %s\n", proto_op_name(r->op), PROTO_MINOR(v),
			e->msg);
		return false;
	}
	out = proto_conn_output(w, &len);
	rd = proto_conn_new_mem(out, len);
	proto_conn_set_version(rd, v);
	if (proto_read_request(rd, &got, &e) != 1) {
		fprintf(stderr, "reading %s at 1.%u: %s\n", proto_op_name(r->op), PROTO_MINOR(v),
			e ? e->msg : "eof");
		return false;
	}
	ok = got.op == r->op && proto_conn_input_left(rd) == 0 &&
	     proto_write_request(w2, &got, &e) == 0 && out_equals(w2, out, len);
	/* Every prefix is an error (a request cut short never decodes). */
	for (size_t cut = 0; ok && cut < len; cut++) {
		cleanup_proto_conn struct proto_conn *t = proto_conn_new_mem(out, cut);
		cleanup_error struct nib_error *te = NULL;
		struct proto_request tr;
		int rc;
		proto_conn_set_version(t, v);
		rc = proto_read_request(t, &tr, &te);
		if (rc == 1)
			proto_request_release(&tr);
		if (cut == 0 ? rc != 0 : rc != -1) {
			fprintf(stderr, "%s at 1.%u: prefix of %zu bytes gave %d\n",
				proto_op_name(r->op), PROTO_MINOR(v), cut, rc);
			ok = false;
		}
	}
	if (!ok)
		fprintf(stderr, "round trip of %s at 1.%u failed\n", proto_op_name(r->op),
			PROTO_MINOR(v));
	proto_request_release(&got);
	return ok;
}

static void test_requests_all_versions(void)
{
	for (unsigned v = PROTO_VERSION_MIN; v <= PROTO_VERSION_MAX; v++) {
		for (uint64_t op = 1; op < _PROTO_OP_MAX; op++) {
			struct proto_request r;
			if (proto_op_name(op) == NULL || op == PROTO_OP_QUERY_FAILED_PATHS ||
			    op == PROTO_OP_CLEAR_FAILED_PATHS)
				continue;
			sample_request(op, &r);
			CU_ASSERT(request_roundtrip(v, &r));
		}
	}
}

static void test_requests_versioned_fields(void)
{
	struct proto_request r;
	cleanup_error struct nib_error *e = NULL;

	/* A build mode needs 1.15; an opaque .drv needs 1.30. */
	sample_request(PROTO_OP_BUILD_PATHS, &r);
	r.build_paths.mode = PROTO_BUILD_MODE_REPAIR;
	{
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		proto_conn_set_version(w, PROTO_VERSION(1, 14));
		CU_ASSERT_EQUAL(proto_write_request(w, &r, &e), -1);
		CU_ASSERT(e != NULL && e->code == NIB_E_UNSUPPORTED);
	}
	{
		struct proto_derived_path drv = { .path = s_hello_drv };
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		nib_error_clear(&e);
		r.build_paths.paths = &drv;
		r.build_paths.n_paths = 1;
		proto_conn_set_version(w, PROTO_VERSION(1, 29));
		CU_ASSERT_EQUAL(proto_write_request(w, &r, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "older than 1.30") != NULL);
	}
	/* Unknown and removed ops. */
	for (uint64_t op = 0; op < 60; op++) {
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *rd = NULL;
		cleanup_error struct nib_error *oe = NULL;
		struct proto_request got;
		const unsigned char *out;
		size_t len;
		bool known = proto_op_name(op) != NULL && op != PROTO_OP_QUERY_FAILED_PATHS &&
			     op != PROTO_OP_CLEAR_FAILED_PATHS;
		if (known)
			continue;
		proto_write_u64(w, op);
		out = proto_conn_output(w, &len);
		rd = proto_conn_new_mem(out, len);
		proto_conn_set_version(rd, PROTO_VERSION_MAX);
		CU_ASSERT_EQUAL(proto_read_request(rd, &got, &oe), -1);
		CU_ASSERT(oe != NULL && oe->code == NIB_E_PROTOCOL &&
			  strstr(oe->msg, "invalid operation") != NULL);
	}
	/* Nothing at all: the client hung up between requests. */
	{
		cleanup_proto_conn struct proto_conn *rd = proto_conn_new_mem(NULL, 0);
		struct proto_request got;
		CU_ASSERT_EQUAL(proto_read_request(rd, &got, &e), 0);
		CU_ASSERT_EQUAL(got.op, 0);
	}
	/* BasicDerivation: unsorted env or outputs are refused. */
	{
		struct proto_pair bad_env[] = { { s_k2, s_v2 }, { s_k1, s_builder } };
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *rd = NULL;
		cleanup_error struct nib_error *de = NULL;
		struct proto_request got;
		const unsigned char *out;
		size_t len;
		sample_request(PROTO_OP_BUILD_DERIVATION, &r);
		r.build_derivation.drv.env = bad_env;
		r.build_derivation.drv.n_env = 2;
		proto_conn_set_version(w, PROTO_VERSION_MAX);
		CU_ASSERT_EQUAL(proto_write_request(w, &r, &de), 0);
		out = proto_conn_output(w, &len);
		rd = proto_conn_new_mem(out, len);
		proto_conn_set_version(rd, PROTO_VERSION_MAX);
		CU_ASSERT_EQUAL(proto_read_request(rd, &got, &de), -1);
		CU_ASSERT(de != NULL && strstr(de->msg, "out of order") != NULL &&
			  strstr(de->msg, "BuildDerivation") != NULL);
	}
}

static void sample_reply(uint64_t op, unsigned v, struct proto_reply *r,
			 struct proto_keyed_build_result *keyed, struct proto_substitutable *subs)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->kind = proto_reply_kind(op, v);
	switch (r->kind) {
	case PROTO_REPLY_U64:
		r->u64 = 1;
		break;
	case PROTO_REPLY_STRING:
		r->string = s_hello;
		break;
	case PROTO_REPLY_STRINGS:
		r->strings = v_two;
		break;
	case PROTO_REPLY_PATH_INFO:
	case PROTO_REPLY_KEYED_PATH_INFO:
		r->path_info.valid = true;
		sample_path_info(&r->path_info.info, r->kind == PROTO_REPLY_KEYED_PATH_INFO);
		if (v < PROTO_VERSION(1, 16)) {
			/* These fields do not exist yet: what a read gives back. */
			r->path_info.info.ultimate = false;
			r->path_info.info.sigs = NULL;
			r->path_info.info.ca = NULL;
		}
		break;
	case PROTO_REPLY_PAIRS:
		r->pairs.pairs = p_outmap;
		r->pairs.n = 2;
		break;
	case PROTO_REPLY_BUILD_RESULT:
		sample_build_result(&r->build_result);
		break;
	case PROTO_REPLY_KEYED_BUILD_RESULTS:
		for (int i = 0; i < 2; i++) {
			memset(&keyed[i], 0, sizeof(keyed[i]));
			keyed[i].path = d_paths[i + 1];
			sample_build_result(&keyed[i].result);
		}
		keyed[1].result.status = PROTO_BUILD_BUILT;
		keyed[1].result.error_msg = s_empty;
		r->keyed_build_results.results = keyed;
		r->keyed_build_results.n = 2;
		break;
	case PROTO_REPLY_MISSING:
		r->missing.will_build = v_one;
		r->missing.will_substitute = v_two;
		r->missing.unknown = NULL;
		r->missing.download_size = 10;
		r->missing.nar_size = 20;
		break;
	case PROTO_REPLY_GC_RESULT:
		r->gc_result.paths = v_two;
		r->gc_result.bytes_freed = 4096;
		break;
	case PROTO_REPLY_SUBSTITUTABLE:
	case PROTO_REPLY_SUBSTITUTABLES:
		for (int i = 0; i < 2; i++) {
			subs[i].path = r->kind == PROTO_REPLY_SUBSTITUTABLES ? v_two[i] : NULL;
			subs[i].deriver = i ? s_hello_drv : NULL;
			subs[i].references = i ? v_one : NULL;
			subs[i].download_size = 100u + (unsigned)i;
			subs[i].nar_size = 200u + (unsigned)i;
		}
		r->substitutable.found = true;
		r->substitutable.items = subs;
		r->substitutable.n = r->kind == PROTO_REPLY_SUBSTITUTABLES ? 2 : 1;
		break;
	case PROTO_REPLY_NONE:
	case PROTO_REPLY_STREAM:
		break;
	}
}

static bool reply_roundtrip(unsigned v, const struct proto_reply *r)
{
	cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *w2 = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *rd = NULL;
	cleanup_error struct nib_error *e = NULL;
	struct proto_reply got;
	const unsigned char *out;
	size_t len;
	bool ok;

	proto_conn_set_version(w, v);
	proto_conn_set_version(w2, v);
	proto_write_reply(w, r);
	out = proto_conn_output(w, &len);
	rd = proto_conn_new_mem(out, len);
	proto_conn_set_version(rd, v);
	if (proto_read_reply(rd, r->op, &got, &e) < 0) {
		fprintf(stderr, "reading the reply to %s at 1.%u: %s\n", proto_op_name(r->op),
			PROTO_MINOR(v), e->msg);
		return false;
	}
	proto_write_reply(w2, &got);
	ok = got.kind == r->kind && proto_conn_input_left(rd) == 0 && out_equals(w2, out, len);
	for (size_t cut = 0; ok && cut < len; cut++) {
		cleanup_proto_conn struct proto_conn *t = proto_conn_new_mem(out, cut);
		cleanup_error struct nib_error *te = NULL;
		struct proto_reply tr;
		proto_conn_set_version(t, v);
		if (proto_read_reply(t, r->op, &tr, &te) == 0) {
			proto_reply_release(&tr);
			fprintf(stderr, "reply to %s at 1.%u: a prefix of %zu bytes decoded\n",
				proto_op_name(r->op), PROTO_MINOR(v), cut);
			ok = false;
		}
	}
	if (!ok)
		fprintf(stderr, "round trip of the reply to %s at 1.%u failed\n",
			proto_op_name(r->op), PROTO_MINOR(v));
	proto_reply_release(&got);
	return ok;
}

static void test_replies_all_versions(void)
{
	for (unsigned v = PROTO_VERSION_MIN; v <= PROTO_VERSION_MAX; v++) {
		for (uint64_t op = 1; op < _PROTO_OP_MAX; op++) {
			struct proto_reply r;
			struct proto_keyed_build_result keyed[2];
			struct proto_substitutable subs[2];
			if (proto_op_name(op) == NULL)
				continue;
			sample_reply(op, v, &r, keyed, subs);
			CU_ASSERT(reply_roundtrip(v, &r));
			/* QueryPathInfo of an invalid path (>= 1.17), nothing found. */
			if (r.kind == PROTO_REPLY_PATH_INFO && v >= PROTO_VERSION(1, 17)) {
				r.path_info.valid = false;
				CU_ASSERT(reply_roundtrip(v, &r));
			}
			if (r.kind == PROTO_REPLY_SUBSTITUTABLE) {
				r.substitutable.found = false;
				r.substitutable.n = 0;
				CU_ASSERT(reply_roundtrip(v, &r));
			}
		}
	}
}

static void test_build_result_fields(void)
{
	struct proto_build_result r;
	const unsigned char *out;
	size_t len;

	sample_build_result(&r);
	/* Size by version: 1.27 status+msg; 1.28 +map; 1.29 +4 numbers; 1.37 +cpu times. */
	for (unsigned v = PROTO_VERSION(1, 27); v <= PROTO_VERSION(1, 37); v++) {
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		size_t base = 8 + 8 + 40; /* status, msg */
		proto_conn_set_version(w, v);
		proto_write_build_result(w, &r);
		proto_conn_output(w, &len);
		if (v == PROTO_VERSION(1, 27))
			CU_ASSERT_EQUAL(len, base);
		if (v == PROTO_VERSION(1, 29) || v == PROTO_VERSION(1, 36)) {
			cleanup_proto_conn struct proto_conn *w28 = proto_conn_new_mem(NULL, 0);
			size_t len28;
			proto_conn_set_version(w28, PROTO_VERSION(1, 28));
			proto_write_build_result(w28, &r);
			proto_conn_output(w28, &len28);
			CU_ASSERT_EQUAL(len, len28 + 32);
		}
		if (v == PROTO_VERSION(1, 37)) {
			cleanup_proto_conn struct proto_conn *w36 = proto_conn_new_mem(NULL, 0);
			size_t len36;
			proto_conn_set_version(w36, PROTO_VERSION(1, 36));
			proto_write_build_result(w36, &r);
			proto_conn_output(w36, &len36);
			CU_ASSERT_EQUAL(len, len36 + 16 + 8); /* (1, usec) and (0) */
		}
	}
	/* A bad optional tag is refused. */
	{
		cleanup_proto_conn struct proto_conn *w = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *rd = NULL;
		cleanup_error struct nib_error *e = NULL;
		struct proto_build_result got;
		proto_write_u64(w, 0);
		proto_write_string(w, "");
		for (int i = 0; i < 4; i++)
			proto_write_u64(w, 0);
		proto_write_u64(w, 2); /* tag */
		out = proto_conn_output(w, &len);
		rd = proto_conn_new_mem(out, len);
		proto_conn_set_version(rd, PROTO_VERSION(1, 37));
		CU_ASSERT_EQUAL(proto_read_build_result(rd, &got, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "optional tag") != NULL);
	}
}

static void test_realisation_json(void)
{
	cleanup_free char *j = proto_realisation_json(
		"sha256:aa93796f9a4dcbff7d0cbaf44174b474b98285d506235a81430d990138074176!out",
		"7l6sbbgg6gc1bzdkcqmiqzwf91nhm86x-fixed2.txt");

	/* Byte for byte what Nix 2.8 sent (reply-BuildDerivation.bin). */
	CU_ASSERT_STRING_EQUAL(
		j,
		"{\"dependentRealisations\":{},\"id\":\"sha256:"
		"aa93796f9a4dcbff7d0cbaf44174b474b98285d506235a81430d990138074176!out\","
		"\"outPath\":\"7l6sbbgg6gc1bzdkcqmiqzwf91nhm86x-fixed2.txt\",\"signatures\":[]}");
}

/* ---- golden files ----------------------------------------------------------------------------- */

/* Skip one NAR read through the connection (test helper; the NAR module owns the format). */
static int nar_token(struct proto_conn *c, char **ret)
{
	return proto_read_bytes(c, ret, NULL, NULL);
}

static int expect_token(struct proto_conn *c, const char *want)
{
	cleanup_free char *t = NULL;

	if (nar_token(c, &t) < 0)
		return -1;
	return STREQ(t, want) ? 0 : -1;
}

static int skip_nar_node(struct proto_conn *c, int depth)
{
	cleanup_free char *type = NULL;

	if (depth > 64 || expect_token(c, "(") < 0 || expect_token(c, "type") < 0 ||
	    nar_token(c, &type) < 0)
		return -1;
	if (STREQ(type, "regular")) {
		cleanup_free char *k = NULL, *contents = NULL;
		if (nar_token(c, &k) < 0)
			return -1;
		if (STREQ(k, "executable")) {
			if (expect_token(c, "") < 0 || expect_token(c, "contents") < 0)
				return -1;
		} else if (!STREQ(k, "contents")) {
			return -1;
		}
		return nar_token(c, &contents) < 0 ? -1 : expect_token(c, ")");
	}
	if (STREQ(type, "symlink")) {
		cleanup_free char *target = NULL;
		if (expect_token(c, "target") < 0 || nar_token(c, &target) < 0)
			return -1;
		return expect_token(c, ")");
	}
	if (!STREQ(type, "directory"))
		return -1;
	for (;;) {
		cleanup_free char *k = NULL, *name = NULL;
		if (nar_token(c, &k) < 0)
			return -1;
		if (STREQ(k, ")"))
			return 0;
		if (!STREQ(k, "entry") || expect_token(c, "(") < 0 || expect_token(c, "name") < 0 ||
		    nar_token(c, &name) < 0 || expect_token(c, "node") < 0 ||
		    skip_nar_node(c, depth + 1) < 0 || expect_token(c, ")") < 0)
			return -1;
	}
}

static int skip_nar(struct proto_conn *c, uint64_t *ret_size)
{
	uint64_t start = proto_conn_bytes_read(c);

	if (expect_token(c, "nix-archive-1") < 0 || skip_nar_node(c, 0) < 0)
		return -1;
	*ret_size = proto_conn_bytes_read(c) - start;
	return 0;
}

enum gkind {
	G_REQ,
	G_REPLY,
	G_STDERR,
};

struct golden {
	const char *name;
	enum gkind kind;
	uint64_t op;	    /* replies: which op they answer */
	unsigned generated; /* also generated for the versions >= this one (0: 1.34 only) */
};

#define V(minor) PROTO_VERSION(1, minor)
static const struct golden goldens[] = {
	{ "req-SetOptions.bin", G_REQ, 0, V(10) },
	{ "req-SetOptions-builders.bin", G_REQ, 0, V(10) },
	{ "req-SetOptions-hook.bin", G_REQ, 0, 0 },
	{ "req-IsValidPath.bin", G_REQ, 0, 0 },
	{ "reply-IsValidPath.bin", G_REPLY, PROTO_OP_IS_VALID_PATH, 0 },
	{ "req-QueryPathInfo.bin", G_REQ, 0, 0 },
	{ "reply-QueryPathInfo.bin", G_REPLY, PROTO_OP_QUERY_PATH_INFO, V(10) },
	{ "reply-QueryPathInfo-ca.bin", G_REPLY, PROTO_OP_QUERY_PATH_INFO, V(10) },
	{ "reply-QueryPathInfo-invalid.bin", G_REPLY, PROTO_OP_QUERY_PATH_INFO, V(17) },
	{ "req-QueryReferrers.bin", G_REQ, 0, 0 },
	{ "reply-QueryReferrers.bin", G_REPLY, PROTO_OP_QUERY_REFERRERS, 0 },
	{ "req-AddToStore.bin", G_REQ, 0, V(37) },
	{ "reply-AddToStore.bin", G_REPLY, PROTO_OP_ADD_TO_STORE, V(37) },
	{ "req-AddToStore-text.bin", G_REQ, 0, 0 },
	{ "reply-AddToStore-text.bin", G_REPLY, PROTO_OP_ADD_TO_STORE, 0 },
	{ "req-AddToStoreNar.bin", G_REQ, 0, V(37) },
	{ "req-AddToStoreNar-import.bin", G_REQ, 0, 0 },
	{ "req-AddMultipleToStore.bin", G_REQ, 0, V(37) },
	{ "req-QueryValidPaths.bin", G_REQ, 0, V(21) },
	{ "reply-QueryValidPaths.bin", G_REPLY, PROTO_OP_QUERY_VALID_PATHS, 0 },
	{ "req-QueryMissing.bin", G_REQ, 0, V(21) },
	{ "reply-QueryMissing.bin", G_REPLY, PROTO_OP_QUERY_MISSING, V(21) },
	{ "req-BuildPaths.bin", G_REQ, 0, V(10) },
	{ "reply-BuildPaths.bin", G_REPLY, PROTO_OP_BUILD_PATHS, 0 },
	{ "stderr-BuildPaths.bin", G_STDERR, 0, V(10) },
	{ "stderr-BuildPaths-error.bin", G_STDERR, 0, V(10) },
	{ "req-BuildPathsWithResults.bin", G_REQ, 0, V(37) },
	{ "reply-BuildPathsWithResults.bin", G_REPLY, PROTO_OP_BUILD_PATHS_WITH_RESULTS, V(37) },
	{ "reply-BuildPathsWithResults-failure.bin", G_REPLY, PROTO_OP_BUILD_PATHS_WITH_RESULTS,
	  V(37) },
	{ "req-BuildDerivation.bin", G_REQ, 0, V(10) },
	{ "reply-BuildDerivation.bin", G_REPLY, PROTO_OP_BUILD_DERIVATION, V(10) },
	{ "reply-BuildDerivation-failure.bin", G_REPLY, PROTO_OP_BUILD_DERIVATION, V(10) },
	{ "req-QueryDerivationOutputMap.bin", G_REQ, 0, 0 },
	{ "reply-QueryDerivationOutputMap.bin", G_REPLY, PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP, 0 },
	{ "req-EnsurePath.bin", G_REQ, 0, 0 },
	{ "reply-EnsurePath.bin", G_REPLY, PROTO_OP_ENSURE_PATH, 0 },
	{ "req-AddTempRoot.bin", G_REQ, 0, 0 },
	{ "req-AddIndirectRoot.bin", G_REQ, 0, 0 },
	{ "req-FindRoots.bin", G_REQ, 0, 0 },
	{ "reply-FindRoots.bin", G_REPLY, PROTO_OP_FIND_ROOTS, 0 },
	{ "req-CollectGarbage.bin", G_REQ, 0, V(10) },
	{ "reply-CollectGarbage.bin", G_REPLY, PROTO_OP_COLLECT_GARBAGE, V(10) },
	{ "stderr-CollectGarbage.bin", G_STDERR, 0, 0 },
	{ "req-CollectGarbage-max-freed.bin", G_REQ, 0, 0 },
	{ "reply-CollectGarbage-max-freed.bin", G_REPLY, PROTO_OP_COLLECT_GARBAGE, 0 },
	{ "req-VerifyStore.bin", G_REQ, 0, 0 },
	{ "reply-VerifyStore.bin", G_REPLY, PROTO_OP_VERIFY_STORE, 0 },
	{ "req-NarFromPath.bin", G_REQ, 0, 0 },
	{ "reply-NarFromPath.bin", G_REPLY, PROTO_OP_NAR_FROM_PATH, 0 },
};
#undef V

static const unsigned generated_versions[] = { PROTO_VERSION(1, 10), PROTO_VERSION(1, 21),
					       PROTO_VERSION(1, 37) };

static bool has_framed_data(uint64_t op, unsigned v)
{
	return (op == PROTO_OP_ADD_TO_STORE && v >= PROTO_VERSION(1, 25)) ||
	       (op == PROTO_OP_ADD_TO_STORE_NAR && v >= PROTO_VERSION(1, 23)) ||
	       op == PROTO_OP_ADD_MULTIPLE_TO_STORE || op == PROTO_OP_ADD_BUILD_LOG;
}

/* Copy framed data chunk for chunk (Nix's chunks are at most 32 KiB). */
static int copy_framed(struct proto_conn *in, struct proto_conn *out, uint64_t *ret_total,
		       struct nib_error **err)
{
	struct proto_framed_source src;
	cleanup_free char *buf = xmalloc(1 << 16);

	proto_framed_source_init(&src, in, 0);
	for (;;) {
		ssize_t n = proto_framed_read(&src, buf, 1 << 16, err);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (out != NULL && proto_framed_write(out, buf, (size_t)n, err) < 0)
			return -1;
	}
	if (out != NULL)
		proto_framed_end(out);
	*ret_total = src.total;
	return 0;
}

/* A decoded golden message, ready to be written at any version. */
struct decoded {
	enum gkind kind;
	struct proto_request req;
	struct proto_reply reply;
	struct proto_frame *frames;
	size_t n_frames;
	unsigned char *framed; /* request data following the request */
	size_t framed_len;
};

static void decoded_release(struct decoded *d)
{
	proto_request_release(&d->req);
	proto_reply_release(&d->reply);
	for (size_t i = 0; i < d->n_frames; i++)
		proto_frame_release(&d->frames[i]);
	free(d->frames);
	free(d->framed);
	memset(d, 0, sizeof(*d));
}

static int decode(const struct golden *g, unsigned v, const void *data, size_t len,
		  struct decoded *d, struct nib_error **err)
{
	cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);

	memset(d, 0, sizeof(*d));
	d->kind = g->kind;
	proto_conn_set_version(c, v);
	switch (g->kind) {
	case G_REQ:
		if (proto_read_request(c, &d->req, err) != 1)
			return -1;
		if (has_framed_data(d->req.op, v)) {
			cleanup_proto_conn struct proto_conn *copy = proto_conn_new_mem(NULL, 0);
			uint64_t total;
			const unsigned char *out;
			if (copy_framed(c, copy, &total, err) < 0)
				return -1;
			out = proto_conn_output(copy, &d->framed_len);
			d->framed = xmemdup(out, d->framed_len);
		}
		break;
	case G_REPLY:
		if (proto_read_reply(c, g->op, &d->reply, err) < 0)
			return -1;
		if (d->reply.kind == PROTO_REPLY_STREAM) {
			uint64_t size;
			if (skip_nar(c, &size) < 0)
				return nib_error_set(err, NIB_E_INVALID, 0, "bad NAR in %s",
						     g->name);
			d->framed = xmemdup((const char *)data + (len - size), (size_t)size);
			d->framed_len = (size_t)size;
		}
		break;
	case G_STDERR:
		for (;;) {
			struct proto_frame f;
			if (proto_read_frame(c, &f, err) < 0)
				return -1;
			d->frames = xreallocarray(d->frames, d->n_frames + 1, sizeof(f));
			d->frames[d->n_frames++] = f;
			if (f.code == PROTO_STDERR_LAST || f.code == PROTO_STDERR_ERROR)
				break;
		}
		break;
	}
	if (proto_conn_input_left(c) != 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "%zu bytes left over in %s",
				     proto_conn_input_left(c), g->name);
	return 0;
}

static int encode(const struct decoded *d, unsigned v, struct proto_conn *out,
		  struct nib_error **err)
{
	proto_conn_set_version(out, v);
	switch (d->kind) {
	case G_REQ:
		if (proto_write_request(out, &d->req, err) < 0)
			return -1;
		/* Framed data is only re-framed where the version frames it. */
		if (d->framed != NULL && has_framed_data(d->req.op, v))
			proto_write_raw(out, d->framed, d->framed_len);
		return 0;
	case G_REPLY:
		proto_write_reply(out, &d->reply);
		if (d->framed != NULL)
			proto_write_raw(out, d->framed, d->framed_len);
		return 0;
	case G_STDERR:
		for (size_t i = 0; i < d->n_frames; i++)
			proto_write_frame(out, &d->frames[i]);
		return 0;
	}
	return 0;
}

static void test_golden_real(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(goldens); i++) {
		const struct golden *g = &goldens[i];
		cleanup_free char *data = NULL;
		cleanup_error struct nib_error *e = NULL;
		cleanup_proto_conn struct proto_conn *out = proto_conn_new_mem(NULL, 0);
		struct decoded d;
		size_t len;

		if (load("1.34", g->name, &data, &len) < 0) {
			CU_FAIL("loading a golden file");
			continue;
		}
		if (decode(g, PROTO_VERSION_NIX_2_8, data, len, &d, &e) < 0) {
			fprintf(stderr, "%s: %s\n", g->name, e->msg);
			CU_FAIL("decoding a golden file");
			decoded_release(&d);
			continue;
		}
		CU_ASSERT_EQUAL(encode(&d, PROTO_VERSION_NIX_2_8, out, &e), 0);
		if (!out_equals(out, data, len)) {
			fprintf(stderr, "  in %s\n", g->name);
			CU_FAIL("re-encoding a golden file");
		}
		/* Any prefix of a message is an error, never a different message. */
		for (size_t cut = 0; cut < len; cut += (len > 512 ? 7 : 1)) {
			struct decoded t;
			cleanup_error struct nib_error *te = NULL;
			if (g->kind == G_REPLY && g->op == PROTO_OP_NAR_FROM_PATH)
				break;
			if (decode(g, PROTO_VERSION_NIX_2_8, data, cut, &t, &te) == 0 &&
			    !(g->kind == G_REQ && cut == 0)) {
				fprintf(stderr, "%s: a prefix of %zu bytes decoded\n", g->name,
					cut);
				CU_FAIL("a truncated message decoded");
			}
			decoded_release(&t);
		}
		decoded_release(&d);
	}
}

static void test_golden_generated(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(goldens); i++) {
		const struct golden *g = &goldens[i];
		cleanup_free char *data = NULL;
		cleanup_error struct nib_error *e = NULL;
		struct decoded d;
		size_t len;

		if (g->generated == 0)
			continue;
		if (load("1.34", g->name, &data, &len) < 0) {
			CU_FAIL("loading a golden file");
			continue;
		}
		if (decode(g, PROTO_VERSION_NIX_2_8, data, len, &d, &e) < 0) {
			CU_FAIL("decoding a golden file");
			decoded_release(&d);
			continue;
		}
		for (size_t k = 0; k < ARRAY_SIZE(generated_versions); k++) {
			unsigned v = generated_versions[k];
			cleanup_proto_conn struct proto_conn *out = proto_conn_new_mem(NULL, 0);
			cleanup_proto_conn struct proto_conn *again = proto_conn_new_mem(NULL, 0);
			cleanup_free char *file = NULL;
			struct decoded d2;
			const unsigned char *bytes;
			size_t blen, flen;
			char vbuf[16];

			if (v < g->generated)
				continue;
			CU_ASSERT_EQUAL(encode(&d, v, out, &e), 0);
			bytes = proto_conn_output(out, &blen);
			check_golden(version_dir(v, vbuf, sizeof(vbuf)), g->name, bytes, blen);
			/* The file decodes at its version and encodes back to itself. */
			if (load(vbuf, g->name, &file, &flen) < 0)
				continue;
			if (decode(g, v, file, flen, &d2, &e) < 0) {
				fprintf(stderr, "%s/%s: %s\n", vbuf, g->name, e->msg);
				CU_FAIL("decoding a generated golden file");
				nib_error_clear(&e);
			} else {
				CU_ASSERT_EQUAL(encode(&d2, v, again, &e), 0);
				CU_ASSERT(out_equals(again, file, flen));
			}
			decoded_release(&d2);
		}
		decoded_release(&d);
	}
	/* Handshakes at the generated versions: the client's greeting, and nib's answer to it. */
	for (size_t k = 0; k < ARRAY_SIZE(generated_versions); k++) {
		unsigned v = generated_versions[k];
		cleanup_proto_conn struct proto_conn *daemon = proto_conn_new_mem(NULL, 0);
		cleanup_proto_conn struct proto_conn *client = NULL;
		cleanup_proto_conn struct proto_conn *server = NULL;
		cleanup_error struct nib_error *e = NULL;
		const unsigned char *greet, *cbytes, *sbytes;
		size_t glen, clen, slen;
		char vbuf[16];

		version_dir(v, vbuf, sizeof(vbuf));
		proto_write_u64(daemon, PROTO_WORKER_MAGIC_2);
		proto_write_u64(daemon, v);
		proto_conn_set_version(daemon, v);
		if (v >= PROTO_VERSION(1, 33))
			proto_write_string(daemon, "nib");
		if (v >= PROTO_VERSION(1, 35))
			proto_write_u64(daemon, PROTO_TRUST_NOT_TRUSTED);
		proto_write_last(daemon);
		greet = proto_conn_output(daemon, &glen);
		client = proto_conn_new_mem(greet, glen);
		/* A client of that version (an old Nix), and nib's daemon answering it. */
		CU_ASSERT_EQUAL(proto_client_handshake(client, v, NULL, NULL, &e), 0);
		cbytes = proto_conn_output(client, &clen);
		check_golden(vbuf, "handshake-client.bin", cbytes, clen);
		server = proto_conn_new_mem(cbytes, clen);
		CU_ASSERT_EQUAL(proto_server_handshake(server, "nib", PROTO_TRUST_NOT_TRUSTED, &e),
				0);
		proto_write_last(server);
		sbytes = proto_conn_output(server, &slen);
		check_golden(vbuf, "handshake-server.bin", sbytes, slen);
	}
}

/* What Nix 2.8 said in the recorded sessions, read through nib's decoders. */
static void test_golden_meaning(void)
{
	cleanup_free char *data = NULL;
	size_t len;
	cleanup_error struct nib_error *e = NULL;
	unsigned v = PROTO_VERSION_NIX_2_8;

	/* QueryPathInfo of hello: `nix-store -q --hash` printed this hash. */
	if (load("1.34", "reply-QueryPathInfo.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_reply r;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_reply(c, PROTO_OP_QUERY_PATH_INFO, &r, &e) == 0);
		CU_ASSERT(r.path_info.valid);
		CU_ASSERT_STRING_EQUAL(r.path_info.info.deriver, HELLO_DRV);
		{
			cleanup_free char *h =
				hash_to_string(&r.path_info.info.nar_hash, HASH_ENC_BASE32, true);
			CU_ASSERT_STRING_EQUAL(
				h, "sha256:1n13ixwgsvfl6xspjpaj4vfq2i2ic35r2h817fkbanqz71h90clj");
		}
		CU_ASSERT(strv_length(r.path_info.info.references) == 1 &&
			  STREQ(r.path_info.info.references[0], DEP));
		CU_ASSERT_EQUAL(r.path_info.info.nar_size, 520);
		CU_ASSERT(r.path_info.info.ultimate);
		CU_ASSERT_PTR_NULL(r.path_info.info.ca);
		proto_reply_release(&r);
	}
	free(TAKE_PTR(data));
	if (load("1.34", "reply-QueryPathInfo-invalid.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_reply r;
		proto_conn_set_version(c, v);
		CU_ASSERT_EQUAL(proto_read_reply(c, PROTO_OP_QUERY_PATH_INFO, &r, &e), 0);
		CU_ASSERT(!r.path_info.valid);
		proto_reply_release(&r);
	}
	free(TAKE_PTR(data));
	/* AddToStore of a directory: the framed NAR is as long as the narSize of the reply. */
	if (load("1.34", "req-AddToStore.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_request r;
		uint64_t total = 0;
		proto_conn_set_version(c, v);
		CU_ASSERT_EQUAL(proto_read_request(c, &r, &e), 1);
		CU_ASSERT_STRING_EQUAL(r.add_to_store.name, "tree");
		CU_ASSERT_STRING_EQUAL(r.add_to_store.cam, "fixed:r:sha256");
		CU_ASSERT_EQUAL(strv_length(r.add_to_store.refs), 0);
		CU_ASSERT_EQUAL(copy_framed(c, NULL, &total, &e), 0);
		CU_ASSERT_EQUAL(total, 896);
		proto_request_release(&r);
	}
	free(TAKE_PTR(data));
	if (load("1.34", "reply-AddToStore.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_reply r;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_reply(c, PROTO_OP_ADD_TO_STORE, &r, &e) == 0);
		CU_ASSERT_EQUAL(r.kind, PROTO_REPLY_KEYED_PATH_INFO);
		CU_ASSERT_STRING_EQUAL(r.path_info.info.path,
				       "/nix/store/j63xa9hfa6g8zjnn37nwccr6lkwlx0az-tree");
		CU_ASSERT_EQUAL(r.path_info.info.nar_size, 896);
		CU_ASSERT(r.path_info.info.ca != NULL &&
			  STARTS_WITH(r.path_info.info.ca, "fixed:r:sha256:"));
		proto_reply_release(&r);
	}
	free(TAKE_PTR(data));
	/* AddMultipleToStore: count, then (keyed full path info, NAR) per path, inside frames. */
	if (load("1.34", "req-AddMultipleToStore.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_framed_source src;
		cleanup_proto_conn struct proto_conn *in = NULL;
		struct proto_request r;
		uint64_t count = 0;
		const char *want[] = { DEP, HELLO };
		proto_conn_set_version(c, v);
		CU_ASSERT_EQUAL(proto_read_request(c, &r, &e), 1);
		CU_ASSERT(r.add_multiple_to_store.dont_check_sigs);
		proto_framed_source_init(&src, c, 0);
		in = proto_conn_new_stream(proto_framed_read, &src, NULL, NULL);
		proto_conn_set_version(in, PROTO_VERSION(1, 16));
		CU_ASSERT_EQUAL(proto_read_u64(in, &count, &e), 0);
		CU_ASSERT_EQUAL(count, 2);
		for (uint64_t i = 0; i < count && i < 2; i++) {
			struct proto_path_info info;
			uint64_t size = 0;
			if (proto_read_path_info(in, true, &info, &e) < 0) {
				CU_FAIL("reading a path info");
				break;
			}
			CU_ASSERT_STRING_EQUAL(info.path, want[i]);
			CU_ASSERT_EQUAL(skip_nar(in, &size), 0);
			CU_ASSERT_EQUAL(size, info.nar_size);
			proto_path_info_release(&info);
		}
		CU_ASSERT_EQUAL(proto_at_eof(in, &e), 1);
		CU_ASSERT_EQUAL(proto_conn_input_left(c), 0);
		proto_request_release(&r);
	}
	free(TAKE_PTR(data));
	/* BuildPathsWithResults: the Realisation JSON nib would write is the one Nix wrote. */
	if (load("1.34", "reply-BuildPathsWithResults.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_reply r;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_reply(c, PROTO_OP_BUILD_PATHS_WITH_RESULTS, &r, &e) == 0);
		CU_ASSERT_EQUAL(r.keyed_build_results.n, 1);
		if (r.keyed_build_results.n == 1) {
			struct proto_keyed_build_result *k = &r.keyed_build_results.results[0];
			CU_ASSERT_STRING_EQUAL(k->path.path, HELLO_DRV);
			CU_ASSERT(strv_length(k->path.outputs) == 2);
			CU_ASSERT_EQUAL(k->result.status, PROTO_BUILD_BUILT);
			CU_ASSERT_EQUAL(k->result.times_built, 1);
			CU_ASSERT_EQUAL(k->result.n_built_outputs, 2);
			if (k->result.n_built_outputs == 2) {
				const struct proto_pair *o = &k->result.built_outputs[1];
				cleanup_free char *j = proto_realisation_json(
					o->first, "by5vg3g9wvxs4lklcmq9w74s8371s9lc-hello");
				CU_ASSERT(STARTS_WITH(o->first, "sha256:") &&
					  strstr(o->first, "!out") != NULL);
				CU_ASSERT_STRING_EQUAL(o->second, j);
			}
		}
		proto_reply_release(&r);
	}
	free(TAKE_PTR(data));
	if (load("1.34", "reply-BuildDerivation-failure.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_reply r;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_reply(c, PROTO_OP_BUILD_DERIVATION, &r, &e) == 0);
		CU_ASSERT_EQUAL(r.build_result.status, PROTO_BUILD_OUTPUT_REJECTED);
		CU_ASSERT_STRING_EQUAL(proto_build_status_name(r.build_result.status),
				       "OutputRejected");
		CU_ASSERT_PTR_NOT_NULL(strstr(r.build_result.error_msg, "hash mismatch"));
		proto_reply_release(&r);
	}
	free(TAKE_PTR(data));
	if (load("1.34", "req-BuildDerivation.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_request r;
		bool has_out = false;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_request(c, &r, &e) == 1);
		CU_ASSERT_EQUAL(r.build_derivation.drv.n_outputs, 1);
		CU_ASSERT(r.build_derivation.drv.n_outputs == 1 &&
			  STREQ(r.build_derivation.drv.outputs[0].name, "out") &&
			  STREQ(r.build_derivation.drv.outputs[0].hash_algo, "r:sha256"));
		CU_ASSERT_STRING_EQUAL(r.build_derivation.drv.builder, "/bin/sh");
		CU_ASSERT_STRING_EQUAL(r.build_derivation.drv.platform, "x86_64-linux");
		for (size_t i = 0; i < r.build_derivation.drv.n_env; i++)
			if (STREQ(r.build_derivation.drv.env[i].first, "out"))
				has_out = true;
		CU_ASSERT(has_out);
		CU_ASSERT_EQUAL(r.build_derivation.mode, PROTO_BUILD_MODE_NORMAL);
		proto_request_release(&r);
	}
	free(TAKE_PTR(data));
	if (load("1.34", "req-SetOptions.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_request r;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_request(c, &r, &e) == 1);
		CU_ASSERT_EQUAL(r.set_options.verbosity, PROTO_LVL_INFO);
		CU_ASSERT_EQUAL(r.set_options.max_build_jobs, 1);
		CU_ASSERT_EQUAL(r.set_options.build_cores, 2);
		CU_ASSERT(r.set_options.use_substitutes);
		CU_ASSERT_EQUAL(r.set_options.n_overrides, 0);
		proto_request_release(&r);
	}
	free(TAKE_PTR(data));
	if (load("1.34", "req-CollectGarbage.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		struct proto_request r;
		proto_conn_set_version(c, v);
		REQUIRE(proto_read_request(c, &r, &e) == 1);
		CU_ASSERT_EQUAL(r.collect_garbage.action, PROTO_GC_DELETE_SPECIFIC);
		CU_ASSERT_EQUAL(strv_length(r.collect_garbage.paths_to_delete), 2);
		CU_ASSERT_EQUAL(r.collect_garbage.max_freed, UINT64_MAX);
		proto_request_release(&r);
	}
	free(TAKE_PTR(data));
	/* A failed build: log lines as RESULT frames, then the error. */
	if (load("1.34", "stderr-BuildPaths-error.bin", &data, &len) == 0) {
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_mem(data, len);
		cleanup_proto_error struct proto_error *remote = NULL;
		struct counts cnt = { .log = STRBUF_INIT };
		struct proto_log_handlers h = { .userdata = &cnt,
						.next = h_next,
						.start_activity = h_start,
						.stop_activity = h_stop,
						.result = h_result };
		proto_conn_set_version(c, v);
		CU_ASSERT_EQUAL(proto_read_stderr(c, &h, &remote, &e), 1);
		CU_ASSERT(remote != NULL && strstr(remote->msg, "failed with exit code 3") != NULL);
		CU_ASSERT_PTR_NOT_NULL(strstr(cnt.log.buf, "about to fail\noops\n"));
		CU_ASSERT_EQUAL(cnt.start, cnt.stop);
		strbuf_release(&cnt.log);
	}
}

static void test_write_to_closed_peer(void)
{
	int sv[2];
	cleanup_error struct nib_error *e = NULL;

	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	close(sv[1]);
	{
		/* No SIGPIPE (it would kill this test): an EPIPE error, reported at every flush. */
		cleanup_proto_conn struct proto_conn *c = proto_conn_new_fd(sv[0], sv[0], true);
		proto_write_u64(c, 1);
		CU_ASSERT_EQUAL(proto_flush(c, &e), -1);
		CU_ASSERT(e != NULL && e->sys_errno == EPIPE);
		nib_error_clear(&e);
		proto_write_u64(c, 2);
		CU_ASSERT_EQUAL(proto_flush(c, &e), -1);
		CU_ASSERT(e != NULL && e->sys_errno == EPIPE &&
			  strstr(e->msg, "Broken pipe") != NULL);
		CU_ASSERT_EQUAL(proto_raw_write(c, "x", 1, NULL), -1);
	}
	/* A pipe is not a socket: write() is used (and SIGPIPE is the caller's business). */
	{
		int p[2];
		char buf[16];
		REQUIRE(pipe2(p, O_CLOEXEC) == 0);
		{
			cleanup_proto_conn struct proto_conn *c =
				proto_conn_new_fd(p[0], p[1], true);
			proto_write_string(c, "pipe");
			CU_ASSERT_EQUAL(proto_flush(c, &e), 0);
			CU_ASSERT_EQUAL(read(p[0], buf, sizeof(buf)), 16);
		}
	}
}

static void test_client_call(void)
{
	cleanup_proto_conn struct proto_conn *daemon = proto_conn_new_mem(NULL, 0);
	cleanup_proto_conn struct proto_conn *c = NULL;
	cleanup_error struct nib_error *e = NULL;
	struct proto_request req = { .op = PROTO_OP_IS_VALID_PATH, .path = S(HELLO) };
	struct proto_reply reply;
	struct proto_error *remote = NULL;
	const unsigned char *in;
	size_t len;

	proto_conn_set_version(daemon, PROTO_VERSION_MAX);
	proto_write_next(daemon, "checking\n", 9);
	proto_write_last(daemon);
	proto_write_u64(daemon, 1);
	proto_write_error_msg(daemon, "path is not valid");
	in = proto_conn_output(daemon, &len);
	c = proto_conn_new_mem(in, len);
	proto_conn_set_version(c, PROTO_VERSION_MAX);
	CU_ASSERT_EQUAL(proto_client_call(c, &req, NULL, &reply, &remote, &e), 0);
	CU_ASSERT(reply.kind == PROTO_REPLY_U64 && reply.u64 == 1);
	proto_reply_release(&reply);
	CU_ASSERT_EQUAL(proto_client_call(c, &req, NULL, &reply, &remote, &e), 1);
	CU_ASSERT(remote != NULL && STREQ(remote->msg, "path is not valid"));
	proto_error_free(remote);
	CU_ASSERT_EQUAL(proto_client_call(c, &req, NULL, &reply, &remote, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	/* What the client sent: the op and the path, three times. */
	proto_conn_output(c, &len);
	CU_ASSERT_EQUAL(len, 3 * (8 + 8 + 56));
}

static CU_TestInfo primitive_tests[] = {
	{ "u64 and bool", test_u64 },
	{ "string padding", test_string_padding },
	{ "string with bad padding", test_string_bad_padding },
	{ "NUL in strings", test_string_nul },
	{ "limits", test_limits },
	{ "sorted maps", test_pairs_sorted },
	{ "framed data", test_framed },
	{ "stream connection", test_stream_conn },
	{ "tunnel source", test_tunnel_read },
	{ "write to a closed peer", test_write_to_closed_peer },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo frame_tests[] = {
	{ "round trip", test_frames_roundtrip }, { "old versions", test_frames_old_versions },
	{ "bad frames", test_frames_bad },	 { "client dispatch", test_read_stderr },
	{ "client call", test_client_call },	 CU_TEST_INFO_NULL,
};

static CU_TestInfo handshake_tests[] = {
	{ "version negotiation", test_handshake_versions },
	{ "refused", test_handshake_refused },
	{ "garbage", test_handshake_garbage },
	{ "golden (Nix 2.8)", test_handshake_golden },
	{ "cpu affinity", test_handshake_affinity },
	{ "daemon greeting first", test_server_hello },
	{ "eager client greeting", test_handshake_eager },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo message_tests[] = {
	{ "derived paths", test_derived_paths },
	{ "requests at every version", test_requests_all_versions },
	{ "version-dependent requests", test_requests_versioned_fields },
	{ "replies at every version", test_replies_all_versions },
	{ "build result fields", test_build_result_fields },
	{ "realisation json", test_realisation_json },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo golden_tests[] = {
	{ "Nix 2.8 traffic (1.34)", test_golden_real },
	{ "generated versions", test_golden_generated },
	{ "meaning", test_golden_meaning },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "primitives", NULL, NULL, NULL, NULL, primitive_tests },
	{ "log frames", NULL, NULL, NULL, NULL, frame_tests },
	{ "handshake", NULL, NULL, NULL, NULL, handshake_tests },
	{ "messages", NULL, NULL, NULL, NULL, message_tests },
	{ "golden", NULL, NULL, NULL, NULL, golden_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

/*
 * test-serve.c - the daemon's connection loop, over a socketpair(): a server process
 * runs serve_connection() on one end of a socketpair() against a local
 * store in a temporary directory; the test drives the other end through
 * the remote store (remote-store.h) or raw protocol calls.  Also replays
 * the Nix 2.8 client sessions recorded in tests/data/protocol/sessions/
 * and checks that nib computes the same store paths as Nix's daemon did.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "derivation.h"
#include "local-store.h"
#include "log.h"
#include "nar.h"
#include "path.h"
#include "protocol.h"
#include "remote-store.h"
#include "serve.h"
#include "settings.h"
#include "store-derivation.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

#define S(lit) ((char *)(lit))

static char *dir;
static struct settings *settings;

static void setup(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *sd = NULL;
	cleanup_free char *st = NULL;

	dir = test_mkdtemp();
	settings = settings_new();
	sd = path_join(dir, "store");
	st = path_join(dir, "state");
	if (settings_set(settings, "store-dir", sd, ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "state-dir", st, ORIGIN_CMDLINE, NULL, &e) < 0 ||
	    settings_set(settings, "sandbox", "false", ORIGIN_CMDLINE, NULL, &e) < 0)
		fprintf(stderr, "setup: %s\n", e->msg);
}

static void teardown(void)
{
	settings_free(settings);
	settings = NULL;
	test_rmtree(dir);
	free(dir);
	dir = NULL;
}

struct server {
	pid_t pid;
	int fd;
	bool trusted;
	bool no_builds;
	int result;
	char *errmsg;
	struct settings *settings;
};

static void *server_main(void *arg)
{
	struct server *sv = arg;
	cleanup_error struct nib_error *e = NULL;
	cleanup_store struct store *store = NULL;
	cleanup_proto_conn struct proto_conn *conn = proto_conn_new_fd(sv->fd, sv->fd, true);
	struct serve_peer peer = {
		.uid = 1000, .trusted = sv->trusted, .tag = "test", .no_builds = sv->no_builds
	};

	sv->result = -1;
	if (local_store_open(sv->settings, 0, &store, &e) < 0) {
		sv->errmsg = xstrdup(e->msg);
		return NULL;
	}
	sv->result = serve_connection(store, sv->settings, conn, &peer, &e);
	if (e != NULL)
		sv->errmsg = xstrdup(e->msg);
	return NULL;
}

/* Start a server process (no_builds: refuse to run builders); returns the client's fd. */
static int server_start_opts(struct server *sv, bool trusted, bool no_builds)
{
	int sp[2];

	memset(sv, 0, sizeof(*sv));
	sv->no_builds = no_builds;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	sv->fd = sp[1];
	sv->trusted = trusted;
	sv->settings = settings_copy(settings);
	sv->pid = fork();
	if (sv->pid < 0)
		return -1;
	if (sv->pid == 0) {
		close(sp[0]);
		server_main(sv);
		if (sv->errmsg != NULL)
			fprintf(stderr, "server: %s\n", sv->errmsg);
		_exit(sv->result == 0 ? 0 : 3);
	}
	close(sp[1]);
	return sp[0];
}

static int server_start(struct server *sv, bool trusted)
{
	return server_start_opts(sv, trusted, false);
}

static int server_join(struct server *sv)
{
	int status = 0;

	waitpid(sv->pid, &status, 0);
	settings_free(sv->settings);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		return -1;
	return -2; /* crashed */
}

static struct store *local(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct store *s = NULL;

	if (local_store_open(settings, 0, &s, &e) < 0)
		fprintf(stderr, "%s\n", e->msg);
	return s;
}

/* ---- through the remote store ---- */

static void test_queries_and_adds(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_store struct store *loc = local();
	struct store *rem = NULL;
	struct server sv;
	int fd = server_start(&sv, true);
	cleanup_free char *p_text = NULL;
	cleanup_free char *p_text_local = NULL;
	cleanup_free char *p_tree = NULL;
	cleanup_free char *p_tree_local = NULL;
	cleanup_free char *tree = path_join(dir, "tree");
	cleanup_free char *f = path_join(dir, "tree/a");
	cleanup_free char *hp = NULL;
	struct store_path_info ri = { 0 }, li = { 0 };
	cleanup_strv char **referrers = NULL;
	char *one[2] = { NULL, NULL };

	CU_ASSERT_PTR_NOT_NULL(loc);
	CU_ASSERT(fd >= 0);
	CU_ASSERT_EQUAL(remote_store_open_fd(settings, fd, fd, &rem, &e), 0);
	if (rem == NULL || loc == NULL)
		goto out;
	CU_ASSERT(store_is_remote(rem));

	/* Text through the daemon == text added locally. */
	CU_ASSERT_EQUAL(store_add_text(rem, "hello.txt", "hello\n", 6, NULL, &p_text, &e), 0);
	CU_ASSERT_EQUAL(store_add_text(loc, "hello.txt", "hello\n", 6, NULL, &p_text_local, &e), 0);
	CU_ASSERT_STRING_EQUAL(p_text, p_text_local);
	CU_ASSERT_EQUAL(store_is_valid(rem, p_text, &e), 1);

	/* A tree through the daemon (framed NAR) == added locally. */
	CU_ASSERT_EQUAL(mkdir(tree, 0755), 0);
	CU_ASSERT_EQUAL(test_write_file(f, "contents of a\n"), 0);
	CU_ASSERT_EQUAL(store_add_path(rem, tree, "tree", &p_tree, &e), 0);
	CU_ASSERT_EQUAL(store_add_path(loc, tree, "tree", &p_tree_local, &e), 0);
	if (p_tree == NULL || p_tree_local == NULL)
		goto out;
	CU_ASSERT_STRING_EQUAL(p_tree, p_tree_local);

	/* A .drv-like text referring to the tree: references and referrers. */
	one[0] = p_tree;
	{
		cleanup_free char *p = NULL;
		CU_ASSERT_EQUAL(store_add_text(rem, "x.txt", "x", 1, one, &p, &e), 0);
		CU_ASSERT_EQUAL(store_query_referrers(rem, p_tree, &referrers, &e), 0);
		CU_ASSERT(referrers != NULL && p != NULL && strv_contains(referrers, p));
	}

	/* Path info equal both ways. */
	CU_ASSERT_EQUAL(store_query_path_info(rem, p_tree, &ri, &e), 1);
	CU_ASSERT_EQUAL(store_query_path_info(loc, p_tree, &li, &e), 1);
	CU_ASSERT(hash_equal(&ri.nar_hash, &li.nar_hash));
	CU_ASSERT_EQUAL(ri.nar_size, li.nar_size);
	CU_ASSERT_STRING_EQUAL(ri.ca, li.ca);
	CU_ASSERT(ri.ultimate);
	store_path_info_release(&ri);
	store_path_info_release(&li);

	/* QueryAllValidPaths: the same list both ways. */
	{
		cleanup_strv char **all_r = NULL;
		cleanup_strv char **all_l = NULL;
		CU_ASSERT_EQUAL(store_query_all_valid(rem, &all_r, &e), 0);
		CU_ASSERT_EQUAL(store_query_all_valid(loc, &all_l, &e), 0);
		CU_ASSERT_EQUAL(strv_length(all_r), 3);
		CU_ASSERT_EQUAL(strv_length(all_r), strv_length(all_l));
		for (size_t i = 0; all_r != NULL && all_l != NULL && all_r[i] != NULL; i++)
			CU_ASSERT_STRING_EQUAL(all_r[i], all_l[i]);
		CU_ASSERT(all_r != NULL && strv_contains(all_r, p_tree));
	}

	/* Not valid. */
	{
		cleanup_free char *missing =
			xasprintf("%s/00000000000000000000000000000000-nope", store_dir(rem));
		CU_ASSERT_EQUAL(store_query_path_info(rem, missing, &ri, &e), 0);
		CU_ASSERT_EQUAL(store_is_valid(rem, missing, &e), 0);
	}

	/* Hash part. */
	{
		const char *base = strrchr(p_tree, '/') + 1;
		char h[33];
		memcpy(h, base, 32);
		h[32] = '\0';
		CU_ASSERT_EQUAL(store_query_path_from_hash_part(rem, h, &hp, &e), 1);
		CU_ASSERT(hp != NULL && STREQ(hp, p_tree));
	}

	/* Roots, GC (dry run), verify. */
	{
		struct store_root *roots = NULL;
		size_t n = 0;
		struct store_gc_options go = { .dry_run = true };
		struct store_gc_result gr = { 0 };
		struct store_verify_result vr = { 0 };

		CU_ASSERT_EQUAL(store_add_temp_root(rem, p_tree, &e), 0);
		CU_ASSERT_EQUAL(store_find_roots(rem, true, &roots, &n, &e), 0);
		CU_ASSERT(n >= 1);
		store_roots_free(roots, n);
		CU_ASSERT_EQUAL(store_collect_garbage(rem, &go, &gr, &e), 0);
		CU_ASSERT_EQUAL(store_verify(rem, STORE_VERIFY_CONTENTS, NULL, NULL, &vr, &e), 0);
		CU_ASSERT_EQUAL(vr.problems, 0);
	}
out:
	if (e != NULL)
		fprintf(stderr, "error: %s\n", e->msg);
	store_close(rem);
	CU_ASSERT_EQUAL(server_join(&sv), 0);
}

static int fd_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	return write_full(*(int *)userdata, data, len, err);
}

static int make_nar(const char *contents, struct hash *ret_hash, uint64_t *ret_size)
{
	cleanup_free char *f = path_join(dir, "narsrc");
	cleanup_free char *nf = path_join(dir, "nar");
	cleanup_error struct nib_error *e = NULL;
	cleanup_close int out = -1;

	unlink(f);
	if (test_write_file(f, contents) < 0 || nar_hash_path(f, ret_hash, ret_size, &e) < 0)
		return -1;
	out = open(nf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0 || nar_dump_at(AT_FDCWD, f, fd_sink, &out, &e) < 0)
		return -1;
	return open(nf, O_RDONLY | O_CLOEXEC);
}

static void test_add_nar_trust(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct store *rem = NULL;
	struct server sv;
	struct store_path_info info = { 0 };
	cleanup_free char *p = NULL;
	int fd, nfd;

	for (int trusted = 0; trusted <= 1; trusted++) {
		fd = server_start(&sv, trusted);
		CU_ASSERT_EQUAL(remote_store_open_fd(settings, fd, fd, &rem, &e), 0);
		if (rem == NULL)
			return;
		free(p);
		p = xasprintf("%s/0000000000000000000000000000000%d-nar", store_dir(rem), trusted);
		nfd = make_nar(trusted ? "trusted\n" : "untrusted\n", &info.nar_hash,
			       &info.nar_size);
		CU_ASSERT(nfd >= 0);
		info.path = p;
		if (trusted) {
			CU_ASSERT_EQUAL(store_add_nar(rem, &info, nar_fd_source, &nfd, 0, &e), 0);
			if (e != NULL)
				fprintf(stderr, "add_nar: %s\n", e->msg);
			CU_ASSERT_EQUAL(store_is_valid(rem, p, &e), 1);
		} else {
			CU_ASSERT_EQUAL(store_add_nar(rem, &info, nar_fd_source, &nfd, 0, &e), -1);
			CU_ASSERT(e != NULL && e->code == NIB_E_DENIED);
			nib_error_clear(&e);
			/* The connection stays usable, and nothing was added. */
			CU_ASSERT_EQUAL(store_is_valid(rem, p, &e), 0);
		}
		close(nfd);
		store_close(rem);
		rem = NULL;
		CU_ASSERT_EQUAL(server_join(&sv), 0);
	}
}

/* ---- raw protocol ---- */

struct captured {
	struct strbuf text;
};

static void capture_next(void *userdata, const char *msg, size_t len)
{
	struct captured *c = userdata;
	strbuf_add(&c->text, msg, len);
}

static void test_set_options_untrusted(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct server sv;
	int fd = server_start(&sv, false);
	cleanup_proto_conn struct proto_conn *c = proto_conn_new_fd(fd, fd, true);
	struct captured cap = { STRBUF_INIT };
	struct proto_log_handlers h = { .userdata = &cap, .next = capture_next };
	struct proto_request req = { .op = PROTO_OP_SET_OPTIONS };
	struct proto_reply rep = { 0 };
	struct proto_error *derr = NULL;
	struct proto_pair ov[] = { { S("max-silent-time"), S("5") }, { S("sandbox"), S("false") } };

	CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_NIX_2_8, NULL, NULL, &e), 0);
	req.set_options.verbosity = 3;
	req.set_options.max_build_jobs = 1;
	req.set_options.use_build_hook = 1;
	req.set_options.overrides = ov;
	req.set_options.n_overrides = 2;
	CU_ASSERT_EQUAL(proto_client_call(c, &req, &h, &rep, &derr, &e), 0);
	CU_ASSERT(cap.text.buf != NULL && strstr(cap.text.buf, "'sandbox'") != NULL);
	CU_ASSERT(cap.text.buf != NULL && strstr(cap.text.buf, "max-silent-time") == NULL);
	proto_reply_release(&rep);

	/* Repair is refused for untrusted clients; the connection survives. */
	{
		struct proto_request vr = { .op = PROTO_OP_VERIFY_STORE };
		vr.verify_store.repair = true;
		CU_ASSERT_EQUAL(proto_client_call(c, &vr, NULL, &rep, &derr, &e), 1);
		CU_ASSERT(derr != NULL && strstr(derr->msg, "not privileged") != NULL);
		proto_error_free(derr);
		derr = NULL;
	}
	/* Unknown op: an error frame, then the server gives up. */
	proto_write_u64(c, 99);
	CU_ASSERT_EQUAL(proto_read_stderr(c, NULL, &derr, &e), 1);
	proto_error_free(derr);
	strbuf_release(&cap.text);
	proto_conn_free(TAKE_PTR(c));
	CU_ASSERT_EQUAL(server_join(&sv), -1);
}

/* nib's client side of SetOptions: only what the user chose is sent; the daemon's answers. */
static void test_set_options_client(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_settings struct settings *mine = settings_new();
	struct captured cap = { STRBUF_INIT };
	struct proto_log_handlers h = { .userdata = &cap, .next = capture_next };
	struct store *rem = NULL;
	struct server sv;
	int fd = server_start(&sv, false);

	CU_ASSERT_EQUAL(remote_store_open_fd(settings, fd, fd, &rem, &e), 0);
	if (rem == NULL)
		return;
	remote_store_set_log_handlers(rem, &h);
	CU_ASSERT_EQUAL(
		settings_set(mine, "store-dir", settings->store_dir, ORIGIN_CMDLINE, NULL, &e), 0);
	/* Nothing chosen (locations aside): nothing sent, no warning. */
	CU_ASSERT_EQUAL(remote_store_set_options(rem, mine, PROTO_LVL_INFO, &e), 0);
	CU_ASSERT_EQUAL(cap.text.len, 0);
	/* From the settings file: not the user's choice for this invocation, not sent. */
	CU_ASSERT_EQUAL(settings_set(mine, "filter-syscalls", "false", ORIGIN_FILE, NULL, &e), 0);
	/* Location settings are the client's own business: not sent. */
	CU_ASSERT_EQUAL(settings_set(mine, "state-dir", "/elsewhere", ORIGIN_CMDLINE, NULL, &e), 0);
	/* Chosen now: sent; the daemon ignores the restricted one and says so. */
	CU_ASSERT_EQUAL(settings_set(mine, "sandbox", "false", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_set(mine, "timeout", "7", ORIGIN_INLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_set(mine, "max-build-log-size", "1M", ORIGIN_CMDLINE, NULL, &e),
			0);
	CU_ASSERT_EQUAL(remote_store_set_options(rem, mine, PROTO_LVL_TALKATIVE, &e), 0);
	CU_ASSERT(cap.text.buf != NULL &&
		  strstr(cap.text.buf, "ignoring the client-specified setting 'sandbox'") != NULL);
	CU_ASSERT(cap.text.buf != NULL && strstr(cap.text.buf, "filter-syscalls") == NULL);
	CU_ASSERT(cap.text.buf != NULL && strstr(cap.text.buf, "state-dir") == NULL);
	CU_ASSERT(cap.text.buf != NULL && strstr(cap.text.buf, "'timeout'") == NULL);
	/* The daemon has no log limit; a client may lower it (0 = none is the highest). */
	CU_ASSERT(cap.text.buf != NULL && strstr(cap.text.buf, "max-build-log-size") == NULL);
	/* Raising it back to "no limit" is refused. */
	strbuf_reset(&cap.text);
	CU_ASSERT_EQUAL(settings_set(mine, "max-build-log-size", "0", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(remote_store_set_options(rem, mine, PROTO_LVL_INFO, &e), 0);
	CU_ASSERT(cap.text.buf != NULL &&
		  strstr(cap.text.buf, "'max-build-log-size', because it raises") != NULL);
	strbuf_release(&cap.text);
	store_close(rem);
	CU_ASSERT_EQUAL(server_join(&sv), 0);
}

static void test_old_client_invalid_path(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct server sv;
	int fd = server_start(&sv, true);
	cleanup_proto_conn struct proto_conn *c = proto_conn_new_fd(fd, fd, true);
	struct proto_request req = { .op = PROTO_OP_QUERY_PATH_INFO };
	struct proto_reply rep = { 0 };
	struct proto_error *derr = NULL;
	cleanup_free char *missing =
		xasprintf("%s/00000000000000000000000000000000-nope", settings->store_dir);

	CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION(1, 16), NULL, NULL, &e), 0);
	req.path = missing;
	CU_ASSERT_EQUAL(proto_client_call(c, &req, NULL, &rep, &derr, &e), 1);
	CU_ASSERT(derr != NULL && strstr(derr->msg, "is not valid") != NULL);
	proto_error_free(derr);
	/* A path outside the store is an error too, not a crash. */
	req.path = S("/etc/passwd");
	derr = NULL;
	CU_ASSERT_EQUAL(proto_client_call(c, &req, NULL, &rep, &derr, &e), 1);
	proto_error_free(derr);
	proto_conn_free(TAKE_PTR(c));
	CU_ASSERT_EQUAL(server_join(&sv), 0);
}

/* ---- recorded Nix 2.8 sessions ---- */

static char *session_file(const char *name, const char *ext)
{
	const char *base = getenv("NIB_TEST_DATA");

	if (base == NULL || base[0] == '\0')
		base = ABS_TOP_SRCDIR "/tests/data";
	return xasprintf("%s/protocol/sessions/%s.%s", base, name, ext);
}

/* Does hay contain needle (binary)? */
static bool contains(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

/*
 * Replay one recorded client session against a /nix/store store (physically
 * under the test directory).  With check_paths, every store path the
 * recorded daemon sent ("/nix/store/<32>-<name>" strings) must appear in
 * nib's answer too.
 */
static size_t replay(struct settings *st, const char *name, bool check_paths)
{
	cleanup_free char *cf = session_file(name, "c2s");
	cleanup_free char *sf = session_file(name, "s2c");
	cleanup_free char *in = NULL;
	cleanup_free char *recorded = NULL;
	size_t in_len = 0, rec_len = 0, out_len = 0;
	cleanup_error struct nib_error *e = NULL;
	cleanup_store struct store *store = NULL;
	cleanup_proto_conn struct proto_conn *c = NULL;
	struct serve_peer peer = { .trusted = true, .tag = name };
	const unsigned char *out;
	size_t checked = 0;

	if (read_file_at(AT_FDCWD, cf, 16 << 20, &in, &in_len, &e) < 0 ||
	    read_file_at(AT_FDCWD, sf, 16 << 20, &recorded, &rec_len, &e) < 0) {
		CU_FAIL("cannot read a session");
		return 0;
	}
	if (local_store_open(st, 0, &store, &e) < 0) {
		CU_FAIL("cannot open the store");
		return 0;
	}
	c = proto_conn_new_mem(in, in_len);
	if (serve_connection(store, st, c, &peer, &e) < 0 && getenv("NIB_TEST_VERBOSE") != NULL)
		fprintf(stderr, "session %s: %s\n", name, e->msg);
	out = proto_conn_output(c, &out_len);
	if (!check_paths)
		return 0;
	for (size_t i = 0; i + 11 + 33 < rec_len; i++) {
		char path[512];
		size_t j = i;

		if (memcmp(recorded + i, "/nix/store/", 11) != 0)
			continue;
		while (j < rec_len && j - i < sizeof(path) - 1 && recorded[j] != '\0' &&
		       (unsigned char)recorded[j] > ' ' && recorded[j] != '"')
			j++;
		memcpy(path, recorded + i, j - i);
		path[j - i] = '\0';
		if (!contains((const char *)out, out_len, path)) {
			fprintf(stderr, "session %s: nib did not answer with %s\n", name, path);
			CU_FAIL("a recorded path is missing from nib's answer");
		}
		checked++;
		i = j;
	}
	return checked;
}

static void test_sessions(void)
{
	cleanup_settings struct settings *st = settings_copy(settings);
	cleanup_error struct nib_error *e = NULL;
	static const char *const adds[] = { "add-recursive", "add-fixed-flat", "instantiate-hello",
					    "instantiate-all2", "import" };
	static const char *const others[] = {
		"q-invalid",	  "check-validity", "q-references",   "q-referrers",
		"q-hash",	  "q-deriver",	    "q-requisites",   "q-outputs",
		"path-info-json", "store-ping",	    "gc-print-roots", "gc-print-dead",
		"verify",	  "realise-single", "build-hello",    "copy-from-other",
		"builder-ok",	  "nar-from-path",  "copy-ssh-ng",    "delete",
		"gc-max-freed",
	};

	if (getenv("NIB_TEST_VERBOSE") != NULL)
		log_set_max_level(LOG_INFO);
	CU_ASSERT_EQUAL(settings_set(st, "store-dir", "/nix/store", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_set(st, "store-root", dir, ORIGIN_CMDLINE, NULL, &e), 0);
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		size_t n = replay(st, adds[i], !STREQ(adds[i], "import"));
		if (!STREQ(adds[i], "import") && !STREQ(adds[i], "add-fixed-flat")) {
			CU_ASSERT(n > 0);
		}
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		replay(st, others[i], false);
}

/* AddToStore "fixed:sha256" (flat) and "fixed:r:sha1" over the raw protocol. */
static void test_add_fixed_flat(void)
{
	cleanup_error struct nib_error *e = NULL;
	struct server sv;
	int fd = server_start(&sv, true);
	cleanup_proto_conn struct proto_conn *c = proto_conn_new_fd(fd, fd, true);
	static const char content[] = "flat file contents\n";
	cleanup_strv char **norefs = xcalloc(1, sizeof(char *));
	struct proto_request req = { .op = PROTO_OP_ADD_TO_STORE };
	struct proto_reply rep = { 0 };
	struct proto_error *derr = NULL;
	struct hash h;
	struct store_path sp;
	cleanup_free char *want = NULL;
	cleanup_free char *f = path_join(dir, "flat");
	struct hash nar;
	uint64_t nar_size;

	CU_ASSERT_EQUAL(proto_client_handshake(c, PROTO_VERSION_NIX_2_8, NULL, NULL, &e), 0);
	req.add_to_store.name = S("flat.txt");
	req.add_to_store.cam = S("fixed:sha256");
	req.add_to_store.refs = norefs;
	CU_ASSERT_EQUAL(proto_write_request(c, &req, &e), 0);
	CU_ASSERT_EQUAL(proto_framed_write(c, content, sizeof(content) - 1, &e), 0);
	proto_framed_end(c);
	CU_ASSERT_EQUAL(proto_client_finish(c, PROTO_OP_ADD_TO_STORE, NULL, &rep, &derr, &e), 0);
	hash_buffer(HASH_SHA256, content, sizeof(content) - 1, &h);
	CU_ASSERT_EQUAL(
		store_path_make_fixed(settings->store_dir, "flat.txt", false, &h, NULL, &sp, &e),
		0);
	want = store_path_to_string(settings->store_dir, &sp);
	CU_ASSERT(rep.path_info.info.path != NULL && STREQ(rep.path_info.info.path, want));
	/* The NAR recorded is the NAR of a regular file with those contents. */
	CU_ASSERT_EQUAL(test_write_file(f, content), 0);
	CU_ASSERT_EQUAL(nar_hash_path(f, &nar, &nar_size, &e), 0);
	CU_ASSERT(hash_equal(&nar, &rep.path_info.info.nar_hash));
	CU_ASSERT_EQUAL(nar_size, rep.path_info.info.nar_size);
	CU_ASSERT(rep.path_info.info.ca != NULL &&
		  strncmp(rep.path_info.info.ca, "fixed:sha256:", 13) == 0);
	proto_reply_release(&rep);

	/* A bad content-address method: an error, and the connection goes on. */
	req.add_to_store.cam = S("fixed:md7");
	CU_ASSERT_EQUAL(proto_write_request(c, &req, &e), 0);
	CU_ASSERT_EQUAL(proto_framed_write(c, content, sizeof(content) - 1, &e), 0);
	proto_framed_end(c);
	CU_ASSERT_EQUAL(proto_client_finish(c, PROTO_OP_ADD_TO_STORE, NULL, &rep, &derr, &e), 1);
	proto_error_free(derr);
	derr = NULL;
	{
		struct proto_request q = { .op = PROTO_OP_IS_VALID_PATH };
		q.path = want;
		CU_ASSERT_EQUAL(proto_client_call(c, &q, NULL, &rep, &derr, &e), 0);
		CU_ASSERT_EQUAL(rep.u64, 1);
		proto_reply_release(&rep);
	}
	proto_conn_free(TAKE_PTR(c));
	CU_ASSERT_EQUAL(server_join(&sv), 0);
}

/* A derivation from JSON, its output paths filled in; *ret_drv_path its .drv path. */
static struct derivation *make_drv(const char *json, char **ret_drv_path)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_drv_hasher struct drv_hasher *h = drv_hasher_new(settings->store_dir, NULL, NULL);
	struct derivation *d = NULL;
	struct store_path sp;

	if (derivation_parse_json(json, strlen(json), settings->store_dir, NULL, &d, &e) < 0 ||
	    derivation_fill_outputs(h, d, &e) < 0 ||
	    derivation_store_path(settings->store_dir, d, &sp, NULL, NULL, &e) < 0) {
		fprintf(stderr, "make_drv: %s\n", e->msg);
		derivation_free(d);
		return NULL;
	}
	*ret_drv_path = store_path_to_string(settings->store_dir, &sp);
	return d;
}

#define FOD_JSON                                                                        \
	"{\"name\": \"fod\", \"system\": \"x86_64-linux\", \"builder\": \"/bin/sh\", "  \
	"\"args\": [\"-c\", \"echo x > $out\"], \"outputs\": {\"out\": {\"hashAlgo\": " \
	"\"r:sha256\", \"hash\": "                                                      \
	"\"ecb6c3c3b5ad697c989147f794ae3f5cf9d27f6e0358773280180f00828a6b42\"}}, \"env\": {}}"
#define IA_JSON                                                                       \
	"{\"name\": \"ia\", \"system\": \"x86_64-linux\", \"builder\": \"/bin/sh\", " \
	"\"args\": [\"-c\", \"echo y > $out\"], \"outputs\": {\"out\": {}}, \"env\": {}}"

#define IA2_JSON                                                                       \
	"{\"name\": \"ia2\", \"system\": \"x86_64-linux\", \"builder\": \"/bin/sh\", " \
	"\"args\": [\"-c\", \"echo z > $out\"], \"outputs\": {\"out\": {}}, \"env\": {}}"

/* BuildDerivation: who may send what, and what is checked before anything builds. */
static void test_build_derivation(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *fod_path = NULL, *ia_path = NULL;
	cleanup_derivation struct derivation *fod = make_drv(FOD_JSON, &fod_path);
	cleanup_derivation struct derivation *ia = make_drv(IA_JSON, &ia_path);
	struct proto_build_result res = { 0 };
	struct store *rem = NULL;
	struct server sv;
	int fd;

	if (fod == NULL || ia == NULL) {
		CU_FAIL("derivations");
		return;
	}

	/* Untrusted. */
	fd = server_start(&sv, false);
	CU_ASSERT_EQUAL(remote_store_open_fd(settings, fd, fd, &rem, &e), 0);
	if (rem == NULL)
		return;
	/* Input-addressed: refused, and the connection goes on. */
	CU_ASSERT_EQUAL(remote_store_build_derivation(rem, ia_path, ia, 0, &res, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_DENIED &&
		  strstr(e->msg, "not privileged to build input-addressed") != NULL);
	nib_error_clear(&e);
	/* Fixed-output with an output path that is not its own: refused. */
	{
		cleanup_free char *good = fod->outputs[0].path;
		fod->outputs[0].path = xstrdup(ia->outputs[0].path);
		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, fod_path, fod, 0, &res, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "output 'out'") != NULL);
		nib_error_clear(&e);
		free(fod->outputs[0].path);
		fod->outputs[0].path = TAKE_PTR(good);
	}
	/* Repair needs trust. */
	CU_ASSERT_EQUAL(remote_store_build_derivation(rem, fod_path, fod, PROTO_BUILD_MODE_REPAIR,
						      &res, &e),
			-1);
	CU_ASSERT(e != NULL && e->code == NIB_E_DENIED);
	nib_error_clear(&e);
	/* Fixed-output, sent under a made-up .drv path: accepted, written to the store
	 * under its own path, then built (here: refused, builds are disabled). */
	{
		cleanup_free char *fake = xasprintf("%s/00000000000000000000000000000000-fod.drv",
						    settings->store_dir);
		store_close(rem);
		CU_ASSERT_EQUAL(server_join(&sv), 0);
		fd = server_start_opts(&sv, false, true);
		rem = NULL;
		CU_ASSERT_EQUAL(remote_store_open_fd(settings, fd, fd, &rem, &e), 0);
		if (rem == NULL)
			return;
		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, fake, fod, 0, &res, &e), 0);
		CU_ASSERT_EQUAL(res.status, PROTO_BUILD_MISC_FAILURE);
		CU_ASSERT(res.error_msg != NULL && strstr(res.error_msg, "disabled") != NULL);
		proto_build_result_release(&res);
		CU_ASSERT_EQUAL(store_is_valid(rem, fod_path, &e), 1);
		CU_ASSERT_EQUAL(store_is_valid(rem, fake, &e), 0);
	}
	store_close(rem);
	rem = NULL;
	CU_ASSERT_EQUAL(server_join(&sv), 0);

	/* Trusted. */
	fd = server_start_opts(&sv, true, true);
	CU_ASSERT_EQUAL(remote_store_open_fd(settings, fd, fd, &rem, &e), 0);
	if (rem == NULL)
		return;
	/* Input-addressed, not in the store: taken as given, on to the build. */
	CU_ASSERT_EQUAL(remote_store_build_derivation(rem, ia_path, ia, 0, &res, &e), 0);
	CU_ASSERT_EQUAL(res.status, PROTO_BUILD_MISC_FAILURE);
	CU_ASSERT(res.error_msg != NULL && strstr(res.error_msg, "disabled") != NULL);
	proto_build_result_release(&res);
	/* A path that is not a .drv: refused. */
	{
		cleanup_free char *notdrv = xstrndup(ia_path, strlen(ia_path) - 4);

		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, notdrv, ia, 0, &res, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "is not a derivation path") != NULL);
		nib_error_clear(&e);
	}
	/* Input-addressed and in the store: its outputs must be the stored ones. */
	{
		cleanup_store struct store *loc = local();
		cleanup_free char *p2 = NULL, *stored = NULL;
		cleanup_derivation struct derivation *d2 = make_drv(IA2_JSON, &p2);
		char *good;

		CU_ASSERT_EQUAL(store_add_derivation(loc, d2, &stored, &e), 0);
		CU_ASSERT(stored != NULL && STREQ(stored, p2));
		good = d2->outputs[0].path;
		d2->outputs[0].path = xstrdup(ia->outputs[0].path);
		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, p2, d2, 0, &res, &e), -1);
		CU_ASSERT(e != NULL && e->code == NIB_E_INVALID &&
			  strstr(e->msg, "output 'out' of the derivation given inline is") != NULL);
		nib_error_clear(&e);
		free(d2->outputs[0].path);
		d2->outputs[0].path = good;
		/* An output the stored derivation does not have. */
		free(d2->outputs[0].name);
		d2->outputs[0].name = xstrdup("dev");
		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, p2, d2, 0, &res, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "has an output 'dev'") != NULL);
		nib_error_clear(&e);
	}
	/* An input source that is not valid: a failed result, nothing built. */
	{
		cleanup_free char *p2 = NULL;
		cleanup_derivation struct derivation *d2 = make_drv(IA_JSON, &p2);
		char *missing =
			xasprintf("%s/11111111111111111111111111111111-src", settings->store_dir);

		strv_free(d2->srcs);
		d2->srcs = xcalloc(2, sizeof(char *));
		d2->srcs[0] = missing;
		d2->n_srcs = 1;
		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, p2, d2, 0, &res, &e), 0);
		CU_ASSERT_EQUAL(res.status, PROTO_BUILD_MISC_FAILURE);
		CU_ASSERT(res.error_msg != NULL && strstr(res.error_msg, "is not valid") != NULL);
		proto_build_result_release(&res);
	}
	/* Repair: not implemented. */
	CU_ASSERT_EQUAL(remote_store_build_derivation(rem, fod_path, fod, PROTO_BUILD_MODE_REPAIR,
						      &res, &e),
			-1);
	CU_ASSERT(e != NULL && e->code == NIB_E_UNSUPPORTED);
	nib_error_clear(&e);
	/* Outputs valid already: AlreadyValid with builtOutputs. */
	{
		cleanup_store struct store *loc = local();
		cleanup_free char *p = NULL;
		cleanup_free char *base = NULL;
		/* The fixed output: a file "x\n", whose NAR hash FOD_JSON declares. */
		cleanup_free char *src = path_join(dir, "x");

		CU_ASSERT_EQUAL(test_write_file(src, "x\n"), 0);
		CU_ASSERT_EQUAL(store_add_path(loc, src, "fod", &p, &e), 0);
		CU_ASSERT(p != NULL && STREQ(p, fod->outputs[0].path));
		CU_ASSERT_EQUAL(remote_store_build_derivation(rem, fod_path, fod, 0, &res, &e), 0);
		CU_ASSERT_EQUAL(res.status, PROTO_BUILD_ALREADY_VALID);
		CU_ASSERT_EQUAL(res.n_built_outputs, 1);
		base = xstrdup(strrchr(fod->outputs[0].path, '/') + 1);
		CU_ASSERT(res.n_built_outputs == 1 &&
			  strstr(res.built_outputs[0].second, base) != NULL &&
			  strstr(res.built_outputs[0].first, "!out") != NULL);
		proto_build_result_release(&res);
	}
	store_close(rem);
	CU_ASSERT_EQUAL(server_join(&sv), 0);
}

static CU_TestInfo tests[] = {
	{ "AddToStore flat and bad methods", test_add_fixed_flat },
	{ "queries and adds through the remote store", test_queries_and_adds },
	{ "AddToStoreNar needs trust", test_add_nar_trust },
	{ "untrusted SetOptions, repair, unknown op", test_set_options_untrusted },
	{ "old client: invalid path is an error", test_old_client_invalid_path },
	{ "SetOptions from nib's client", test_set_options_client },
	{ "BuildDerivation: trust, checks, results", test_build_derivation },
	{ "recorded Nix 2.8 sessions", test_sessions },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "serve", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

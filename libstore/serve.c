/* serve.c - the daemon's connection loop (see serve.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "build.h"
#include "cleanup.h"
#include "derivation-store.h"
#include "derivation.h"
#include "hash.h"
#include "local-store.h"
#include "log.h"
#include "nar.h"
#include "path.h"
#include "protocol.h"
#include "serve.h"
#include "settings.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

/* Bound on text added with AddTextToStore / AddToStore "text:" (Nix keeps it in memory too). */
#define SERVE_MAX_TEXT ((size_t)64 << 20)
/* Bound on a stored log replayed to a client that waited for another's build. */
#define SERVE_MAX_REPLAYED_LOG ((uint64_t)16 << 20)

struct serve_ctx {
	struct store *store;
	struct settings *settings;
	struct proto_conn *conn;
	const struct serve_peer *peer;
	unsigned version;
	uint64_t verbosity; /* SetOptions: Nix's level (PROTO_LVL_INFO until set) */
	bool keep_going;    /* SetOptions */
};

/* What a handler returns. */
enum {
	H_REPLY = 0,   /* send STDERR_LAST and the reply */
	H_FAILED = -1, /* the op failed: send err as STDERR_ERROR, go on */
	H_FATAL = -2,  /* the connection is unusable: send err if possible, stop */
	H_DONE = 1,    /* the handler wrote everything itself */
};

static const char *tag(const struct serve_ctx *sc)
{
	return sc->peer->tag != NULL ? sc->peer->tag : "conn";
}

/* Normalise a store path from the wire (must be a top-level path of this store). */
static int wire_path(struct serve_ctx *sc, const char *p, char **ret, struct nib_error **err)
{
	return store_parse_path(sc->store, p, false, ret, err);
}

static int wire_paths(struct serve_ctx *sc, char *const *in, char ***ret, struct nib_error **err)
{
	cleanup_strv char **out = xcalloc(strv_length(in) + 1, sizeof(char *));

	for (size_t i = 0; in != NULL && in[i] != NULL; i++)
		if (wire_path(sc, in[i], &out[i], err) < 0)
			return -1;
	*ret = TAKE_PTR(out);
	return 0;
}

static void info_to_proto(const struct store_path_info *in, struct proto_path_info *out)
{
	memset(out, 0, sizeof(*out));
	out->path = in->path;
	out->deriver = in->deriver;
	out->nar_hash = in->nar_hash;
	out->references = in->references;
	out->registration_time = in->registration_time > 0 ? (uint64_t)in->registration_time : 0;
	out->nar_size = in->nar_size;
	out->ultimate = in->ultimate;
	out->sigs = in->sigs;
	out->ca = in->ca;
}

/* ---- queries ---- */

static int op_is_valid_path(struct serve_ctx *sc, struct proto_request *req,
			    struct proto_reply *rep, struct nib_error **err)
{
	cleanup_free char *p = NULL;
	int r;

	if (wire_path(sc, req->path, &p, err) < 0)
		return H_FAILED;
	r = store_is_valid(sc->store, p, err);
	if (r < 0)
		return H_FAILED;
	rep->u64 = (uint64_t)r;
	return H_REPLY;
}

static int op_query_valid_paths(struct serve_ctx *sc, struct proto_request *req,
				struct proto_reply *rep, struct nib_error **err)
{
	cleanup_strv char **paths = NULL;
	cleanup_free bool *valid = NULL;
	cleanup_strv char **out = NULL;
	size_t n, k = 0;

	if (wire_paths(sc, req->paths.paths, &paths, err) < 0)
		return H_FAILED;
	n = strv_length(paths);
	valid = xcalloc(n + 1, sizeof(bool));
	if (n > 0 && store_query_valid(sc->store, paths, n, valid, err) < 0)
		return H_FAILED;
	out = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (valid[i])
			out[k++] = xstrdup(paths[i]);
	rep->strings = TAKE_PTR(out);
	return H_REPLY;
}

static int op_query_all_valid_paths(struct serve_ctx *sc, struct proto_request *req,
				    struct proto_reply *rep, struct nib_error **err)
{
	(void)req;
	if (store_query_all_valid(sc->store, &rep->strings, err) < 0)
		return H_FAILED;
	return H_REPLY;
}

static int op_query_path_info(struct serve_ctx *sc, struct proto_request *req,
			      struct proto_reply *rep, struct nib_error **err)
{
	cleanup_free char *p = NULL;
	struct store_path_info info = { 0 };
	struct proto_path_info pi;
	int r;

	if (wire_path(sc, req->path, &p, err) < 0)
		return H_FAILED;
	r = store_query_path_info(sc->store, p, &info, err);
	if (r < 0)
		return H_FAILED;
	if (r == 0) {
		/* Before 1.17 the reply cannot say "not valid": only an error can. */
		if (sc->version < PROTO_VERSION(1, 17))
			return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid", p),
			       H_FAILED;
		rep->path_info.valid = false;
		return H_REPLY;
	}
	info_to_proto(&info, &pi);
	rep->path_info.valid = true;
	/* Deep copies for the reply (released with it). */
	rep->path_info.info.deriver = pi.deriver != NULL ? xstrdup(pi.deriver) : NULL;
	rep->path_info.info.nar_hash = pi.nar_hash;
	rep->path_info.info.references = strv_copy(pi.references);
	rep->path_info.info.registration_time = pi.registration_time;
	rep->path_info.info.nar_size = pi.nar_size;
	rep->path_info.info.ultimate = pi.ultimate;
	rep->path_info.info.sigs =
		pi.sigs != NULL ? strv_copy(pi.sigs) : xcalloc(1, sizeof(char *));
	rep->path_info.info.ca = pi.ca != NULL ? xstrdup(pi.ca) : NULL;
	store_path_info_release(&info);
	return H_REPLY;
}

static int op_query_referrers(struct serve_ctx *sc, struct proto_request *req,
			      struct proto_reply *rep, struct nib_error **err)
{
	cleanup_free char *p = NULL;
	char **v = NULL;
	int r;

	if (wire_path(sc, req->path, &p, err) < 0)
		return H_FAILED;
	if (req->op == PROTO_OP_QUERY_REFERRERS)
		r = store_query_referrers(sc->store, p, &v, err);
	else
		r = store_query_valid_derivers(sc->store, p, &v, err);
	if (r < 0)
		return H_FAILED;
	rep->strings = v;
	return H_REPLY;
}

static int op_query_output_map(struct serve_ctx *sc, struct proto_request *req,
			       struct proto_reply *rep, struct nib_error **err)
{
	cleanup_free char *p = NULL;
	cleanup_strv char **names = NULL;
	cleanup_strv char **paths = NULL;
	size_t n;

	if (wire_path(sc, req->path, &p, err) < 0)
		return H_FAILED;
	if (store_query_derivation_outputs(sc->store, p, &names, &paths, err) < 0)
		return H_FAILED;
	n = strv_length(names);
	rep->pairs.pairs = xcalloc(n + 1, sizeof(struct proto_pair));
	rep->pairs.n = n;
	for (size_t i = 0; i < n; i++) {
		rep->pairs.pairs[i].first = xstrdup(names[i]);
		rep->pairs.pairs[i].second = xstrdup(paths[i]);
	}
	return H_REPLY;
}

static int op_query_from_hash_part(struct serve_ctx *sc, struct proto_request *req,
				   struct proto_reply *rep, struct nib_error **err)
{
	char *p = NULL;
	int r;

	if (strlen(req->path) != STORE_PATH_HASH_LEN) {
		rep->string = xstrdup("");
		return H_REPLY;
	}
	r = store_query_path_from_hash_part(sc->store, req->path, &p, err);
	if (r < 0)
		return H_FAILED;
	rep->string = r > 0 ? p : xstrdup("");
	return H_REPLY;
}

/* ---- roots, GC, verify ---- */

static int op_add_temp_root(struct serve_ctx *sc, struct proto_request *req,
			    struct proto_reply *rep, struct nib_error **err)
{
	cleanup_free char *p = NULL;

	if (req->op == PROTO_OP_ADD_INDIRECT_ROOT) {
		if (req->path[0] != '/')
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "indirect root '%s' is not an absolute path",
					     req->path),
			       H_FAILED;
		if (store_add_indirect_root(sc->store, req->path, err) < 0)
			return H_FAILED;
	} else {
		if (wire_path(sc, req->path, &p, err) < 0)
			return H_FAILED;
		if (store_add_temp_root(sc->store, p, err) < 0)
			return H_FAILED;
	}
	rep->u64 = 1;
	return H_REPLY;
}

static int op_find_roots(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			 struct nib_error **err)
{
	struct store_root *roots = NULL;
	size_t n = 0;

	(void)req;
	if (store_find_roots(sc->store, true, &roots, &n, err) < 0)
		return H_FAILED;
	rep->pairs.pairs = xcalloc(n + 1, sizeof(struct proto_pair));
	rep->pairs.n = n;
	for (size_t i = 0; i < n; i++) {
		rep->pairs.pairs[i].first = TAKE_PTR(roots[i].link);
		rep->pairs.pairs[i].second = TAKE_PTR(roots[i].path);
	}
	store_roots_free(roots, n);
	return H_REPLY;
}

static void gc_collect_path(void *userdata, const char *path, uint64_t bytes)
{
	(void)bytes;
	strv_push(userdata, path);
}

static int op_collect_garbage(struct serve_ctx *sc, struct proto_request *req,
			      struct proto_reply *rep, struct nib_error **err)
{
	struct proto_gc_options *o = &req->collect_garbage;
	cleanup_strv char **specific = NULL;
	cleanup_strv char **deleted = xcalloc(1, sizeof(char *));
	struct store_gc_options opts = { 0 };
	struct store_gc_result res = { 0 };

	if (o->ignore_liveness)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "ignoring liveness is not allowed through the daemon"),
		       H_FAILED;
	switch (o->action) {
	case PROTO_GC_RETURN_DEAD:
		opts.dry_run = true;
		break;
	case PROTO_GC_DELETE_DEAD:
		break;
	case PROTO_GC_DELETE_SPECIFIC:
		if (wire_paths(sc, o->paths_to_delete, &specific, err) < 0)
			return H_FAILED;
		opts.paths = specific;
		break;
	default:
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "listing live paths is not supported by nib"),
		       H_FAILED;
	}
	opts.max_freed = o->max_freed == UINT64_MAX ? 0 : o->max_freed;
	opts.on_path = gc_collect_path;
	opts.userdata = &deleted;
	if (store_collect_garbage(sc->store, &opts, &res, err) < 0)
		return H_FAILED;
	rep->gc_result.paths = TAKE_PTR(deleted);
	/* A dry run reports what would be freed (Nix clients ignore it then). */
	rep->gc_result.bytes_freed = res.bytes;
	return H_REPLY;
}

struct verify_log {
	struct serve_ctx *sc;
};

static void verify_problem(void *userdata, const struct store_verify_problem *p)
{
	struct verify_log *vl = userdata;
	cleanup_free char *msg = NULL;

	/* "<kind>: <message>[ (repaired)]", then a tab and the path for nib's client. */
	msg = xasprintf("%s: %s%s%s%s\n", p->kind, p->message, p->repaired ? " (repaired)" : "",
			p->path != NULL ? "\t" : "", p->path != NULL ? p->path : "");
	proto_write_next(vl->sc->conn, msg, strlen(msg));
}

static int op_verify_store(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			   struct nib_error **err)
{
	struct verify_log vl = { sc };
	struct store_verify_result res = { 0 };
	unsigned flags = 0;

	if (req->verify_store.repair && !sc->peer->trusted)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "you are not privileged to repair paths"),
		       H_FAILED;
	if (req->verify_store.check_contents)
		flags |= STORE_VERIFY_CONTENTS;
	if (req->verify_store.repair)
		flags |= STORE_VERIFY_REPAIR;
	if (store_verify(sc->store, flags, verify_problem, &vl, &res, err) < 0)
		return H_FAILED;
	/* The count, for nib's client (the reply is only a flag); harmless for Nix's. */
	{
		cleanup_free char *m =
			xasprintf("checked %llu paths\n", (unsigned long long)res.checked);
		proto_write_next(sc->conn, m, strlen(m));
	}
	rep->u64 = res.problems > res.repaired;
	return H_REPLY;
}

/* ---- settings ---- */

static void warn_client(struct serve_ctx *sc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warn_client(struct serve_ctx *sc, const char *fmt, ...)
{
	cleanup_free char *body = NULL;
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	body = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xasprintf("warning: %s\n", body);
	proto_write_next(sc->conn, msg, strlen(msg));
}

/* Is value (a number) above the current one, where 0 means "no limit"? */
static bool raises_limit(const char *value, uint64_t current)
{
	uint64_t v;

	if (parse_u64(value, &v) < 0)
		return false; /* not a plain number: settings_set judges it */
	return current != 0 && (v == 0 || v > current);
}

static void apply_setting(struct serve_ctx *sc, const char *name, const char *value)
{
	cleanup_error struct nib_error *e = NULL;
	const char *base = strncmp(name, "extra-", 6) == 0 ? name + 6 : name;
	const struct setting_desc *d = settings_find(base);
	int r;

	if (d == NULL) {
		/* Nix clients send settings nib does not have (substituters, ...). */
		log_debug("%s: ignoring unknown client setting '%s'", tag(sc), name);
		return;
	}
	if (!d->client_safe && !sc->peer->trusted) {
		warn_client(sc,
			    "ignoring the client-specified setting '%s', because it is a "
			    "restricted setting and you are not a trusted user",
			    name);
		return;
	}
	if (STREQ(base, "max-jobs")) {
		/* Job tokens are global: a client may lower its share, never raise it. */
		uint64_t v;
		if (parse_u64(value, &v) == 0 && (int64_t)v > sc->settings->max_jobs) {
			log_debug("%s: ignoring max-jobs %s above the daemon's", tag(sc), value);
			return;
		}
	}
	if (STREQ(base, "max-build-log-size") && !sc->peer->trusted &&
	    raises_limit(value, sc->settings->max_build_log_size)) {
		/* Logs take the daemon's disk: an untrusted client may only lower the limit. */
		warn_client(sc,
			    "ignoring the client-specified setting 'max-build-log-size', because "
			    "it raises the daemon's limit and you are not a trusted user");
		return;
	}
	r = settings_set(sc->settings, name, value, ORIGIN_CLIENT, NULL, &e);
	if (r < 0)
		warn_client(sc, "%s", e->msg);
}

/*
 * A fixed SetOptions field carries the client's value whether or not its
 * user chose it.  Nix's client sends what its configuration says, nib's
 * sends the built-in defaults and puts what its user chose among the
 * overrides.  A value equal to the daemon's or to the built-in default is
 * therefore not applied: a client that did not choose does not override
 * the daemon's configuration (nor is an untrusted one warned about it).
 */
static void apply_fixed(struct serve_ctx *sc, const char *name, const char *value)
{
	const struct setting_desc *d = settings_find(name);
	cleanup_free char *current = d != NULL ? settings_value_string(sc->settings, d) : NULL;

	if (d == NULL || STREQ(value, d->def) || (current != NULL && STREQ(value, current)))
		return;
	apply_setting(sc, name, value);
}

static int op_set_options(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			  struct nib_error **err)
{
	struct proto_client_settings *cs = &req->set_options;
	char num[32];

	(void)rep;
	(void)err;
	/* Verbosity only decides what this connection sends: anyone may set it. */
	sc->verbosity = cs->verbosity > PROTO_LVL_VOMIT ? PROTO_LVL_VOMIT : cs->verbosity;
	sc->keep_going = cs->keep_going;
	apply_fixed(sc, "keep-failed", cs->keep_failed ? "true" : "false");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cs->max_build_jobs);
	apply_fixed(sc, "max-jobs", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cs->max_silent_time);
	apply_fixed(sc, "max-silent-time", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cs->build_cores);
	apply_fixed(sc, "cores", num);
	for (size_t i = 0; i < cs->n_overrides; i++)
		apply_setting(sc, cs->overrides[i].first, cs->overrides[i].second);
	return H_REPLY;
}

/* ---- adding ---- */

/* A sink that writes to an fd and feeds up to two hash contexts. */
struct spool {
	int fd;
	struct hash_ctx *nar_sha256; /* may be NULL */
	struct hash_ctx *content;    /* may be NULL */
	uint64_t size;
	uint64_t max;
};

static int spool_write(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct spool *s = userdata;

	if (s->max != 0 && s->size + len > s->max)
		return nib_error_set(err, NIB_E_INVALID, 0, "upload larger than %llu bytes",
				     (unsigned long long)s->max);
	if (s->nar_sha256 != NULL)
		hash_ctx_update(s->nar_sha256, data, len);
	if (s->content != NULL)
		hash_ctx_update(s->content, data, len);
	s->size += len;
	return write_full(s->fd, data, len, err);
}

/* An anonymous temporary file in the state directory. */
static int spool_open(struct serve_ctx *sc, struct nib_error **err)
{
	int fd = open(sc->settings->state_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0)
		return nib_error_errno(err, "cannot create a temporary file in '%s'",
				       sc->settings->state_dir);
	return fd;
}

/* Copy the source to the end, through the sink. */
static int pump(nar_source_fn src, void *src_data, nar_sink_fn sink, void *sink_data,
		struct nib_error **err)
{
	cleanup_free char *buf = xmalloc(65536);

	for (;;) {
		ssize_t n = src(src_data, buf, 65536, err);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (sink(sink_data, buf, (size_t)n, err) < 0)
			return -1;
	}
}

static void nar_str(struct strbuf *sb, const char *s, size_t len)
{
	static const char zero[8] = { 0 };
	uint64_t n = len;
	unsigned char le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(n >> (8 * i));
	strbuf_add(sb, le, 8);
	strbuf_add(sb, s, len);
	if (len % 8 != 0)
		strbuf_add(sb, zero, 8 - len % 8);
}

/*
 * Add a path whose content is the spooled data in fd: a NAR (recursive)
 * or a flat file's bytes.  content_hash is the hash of that data in the
 * content-address algorithm (for recursive: of the NAR).
 */
static int add_fixed_from_spool(struct serve_ctx *sc, int fd, uint64_t size, bool recursive,
				const struct hash *content_hash, const struct hash *nar_sha256,
				const char *name, char *const *refs, bool repair, char **ret_path,
				struct nib_error **err)
{
	struct store_path sp;
	cleanup_free char *path = NULL;
	cleanup_free char *hstr = NULL;
	cleanup_free char *ca = NULL;
	struct store_path_info info = { 0 };
	struct hash nar_hash;
	uint64_t nar_size;
	int nar_fd = fd;
	cleanup_close int flat_fd = -1;

	if (store_path_make_fixed(store_dir(sc->store), name, recursive, content_hash, refs, &sp,
				  err) < 0)
		return -1;
	path = store_path_to_string(store_dir(sc->store), &sp);
	hstr = hash_to_string(content_hash, HASH_ENC_BASE32, false);
	ca = xasprintf("fixed:%s%s:%s", recursive ? "r:" : "", hash_algo_name(content_hash->algo),
		       hstr);
	if (recursive) {
		nar_hash = *nar_sha256;
		nar_size = size;
	} else {
		/* Wrap the file's bytes in a NAR of one regular file. */
		cleanup_strbuf struct strbuf head = STRBUF_INIT;
		cleanup_strbuf struct strbuf tail = STRBUF_INIT;
		cleanup_hash_ctx struct hash_ctx *h = hash_ctx_new(HASH_SHA256);
		struct spool out;
		static const char zero[8] = { 0 };
		unsigned char le[8];

		flat_fd = spool_open(sc, err);
		if (flat_fd < 0)
			return -1;
		nar_str(&head, "nix-archive-1", 13);
		nar_str(&head, "(", 1);
		nar_str(&head, "type", 4);
		nar_str(&head, "regular", 7);
		nar_str(&head, "contents", 8);
		for (int i = 0; i < 8; i++)
			le[i] = (unsigned char)(size >> (8 * i));
		strbuf_add(&head, le, 8);
		if (size % 8 != 0)
			strbuf_add(&tail, zero, 8 - size % 8);
		nar_str(&tail, ")", 1);
		out = (struct spool){ .fd = flat_fd, .nar_sha256 = h };
		if (spool_write(&out, head.buf, head.len, err) < 0)
			return -1;
		if (lseek(fd, 0, SEEK_SET) < 0)
			return nib_error_errno(err, "cannot rewind the upload");
		if (pump(nar_fd_source, &fd, spool_write, &out, err) < 0)
			return -1;
		if (spool_write(&out, tail.buf, tail.len, err) < 0)
			return -1;
		hash_ctx_final(h, &nar_hash);
		nar_size = out.size;
		nar_fd = flat_fd;
	}
	if (lseek(nar_fd, 0, SEEK_SET) < 0)
		return nib_error_errno(err, "cannot rewind the upload");
	info.path = path;
	info.nar_hash = nar_hash;
	info.nar_size = nar_size;
	info.references = (char **)refs;
	info.ultimate = true;
	info.ca = ca;
	if (store_add_nar(sc->store, &info, nar_fd_source, &nar_fd, repair ? STORE_ADD_REPAIR : 0,
			  err) < 0)
		return -1;
	*ret_path = TAKE_PTR(path);
	return 0;
}

static int reply_keyed_info(struct serve_ctx *sc, const char *path, struct proto_reply *rep,
			    struct nib_error **err)
{
	struct store_path_info info = { 0 };
	int r = store_query_path_info(sc->store, path, &info, err);

	if (r <= 0) {
		if (r == 0)
			nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' vanished", path);
		return H_FAILED;
	}
	rep->path_info.info.path = TAKE_PTR(info.path);
	rep->path_info.info.deriver = TAKE_PTR(info.deriver);
	rep->path_info.info.nar_hash = info.nar_hash;
	rep->path_info.info.references = TAKE_PTR(info.references);
	rep->path_info.info.registration_time =
		info.registration_time > 0 ? (uint64_t)info.registration_time : 0;
	rep->path_info.info.nar_size = info.nar_size;
	rep->path_info.info.ultimate = info.ultimate;
	rep->path_info.info.sigs =
		info.sigs != NULL ? TAKE_PTR(info.sigs) : xcalloc(1, sizeof(char *));
	rep->path_info.info.ca = TAKE_PTR(info.ca);
	store_path_info_release(&info);
	return H_REPLY;
}

/* Parse a content-address method: "text:sha256", "fixed:r:sha256", "fixed:sha1"... */
static int parse_cam(const char *cam, bool *ret_text, bool *ret_recursive, enum hash_algo *ret_algo,
		     struct nib_error **err)
{
	const char *a;

	if (strncmp(cam, "text:", 5) == 0) {
		*ret_text = true;
		*ret_recursive = false;
		a = cam + 5;
	} else if (strncmp(cam, "fixed:r:", 8) == 0) {
		*ret_text = false;
		*ret_recursive = true;
		a = cam + 8;
	} else if (strncmp(cam, "fixed:", 6) == 0) {
		*ret_text = false;
		*ret_recursive = false;
		a = cam + 6;
	} else {
		return nib_error_set(err, NIB_E_INVALID, 0, "unknown content-address method '%s'",
				     cam);
	}
	if (hash_algo_parse(a, ret_algo, err) < 0)
		return -1;
	if (*ret_text && *ret_algo != HASH_SHA256)
		return nib_error_set(err, NIB_E_INVALID, 0, "text paths must use sha256, not '%s'",
				     a);
	return 0;
}

/* Read framed data into memory (bounded). */
static int read_framed_all(struct proto_framed_source *src, size_t max, char **ret, size_t *ret_len,
			   struct nib_error **err)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	char buf[65536];

	for (;;) {
		ssize_t n = proto_framed_read(src, buf, sizeof(buf), err);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (sb.len + (size_t)n > max)
			return nib_error_set(err, NIB_E_INVALID, 0, "text larger than %zu bytes",
					     max);
		strbuf_add(&sb, buf, (size_t)n);
	}
	*ret = strbuf_detach(&sb, ret_len);
	return 0;
}

/*
 * Receive the data of a content-addressed add into a spool: framed
 * (>= 1.25) or an inline NAR (older).  For an inline NAR of a flat file,
 * the spool gets the file's bytes.  On failure, *fatal tells whether the
 * connection's position is lost.
 */
struct ca_upload {
	int fd;
	uint64_t size;
	struct hash content;
	struct hash nar_sha256;
};

static int receive_fixed(struct serve_ctx *sc, bool framed, bool recursive, enum hash_algo algo,
			 struct ca_upload *up, bool *fatal, struct nib_error **err)
{
	cleanup_hash_ctx struct hash_ctx *nh = hash_ctx_new(HASH_SHA256);
	cleanup_hash_ctx struct hash_ctx *ch = hash_ctx_new(algo);
	struct spool sp = { .nar_sha256 = recursive ? nh : NULL, .content = ch };
	cleanup_close int fd = spool_open(sc, err);

	*fatal = false;
	if (fd < 0) {
		*fatal = true; /* the data is still on the wire */
		return -1;
	}
	sp.fd = fd;
	if (framed) {
		struct proto_framed_source src;

		proto_framed_source_init(&src, sc->conn, 0);
		if (recursive) {
			struct nar_restore_opts o = { .tee = spool_write, .tee_data = &sp };
			if (nar_parse(proto_framed_read, &src, &o, err) < 0) {
				if (!src.eof && proto_framed_drain(&src, NULL) < 0)
					*fatal = true;
				return -1;
			}
		} else if (pump(proto_framed_read, &src, spool_write, &sp, err) < 0) {
			if (!src.eof && proto_framed_drain(&src, NULL) < 0)
				*fatal = true;
			return -1;
		}
	} else {
		struct nar_restore_opts o = { .exact = true };

		if (recursive) {
			o.tee = spool_write;
			o.tee_data = &sp;
			if (nar_parse(proto_raw_read, sc->conn, &o, err) < 0) {
				*fatal = true;
				return -1;
			}
		} else {
			/* A NAR of one regular file: restore it, then spool its bytes. */
			cleanup_free char *dir =
				xasprintf("%s/.serve-XXXXXX", sc->settings->state_dir);
			cleanup_close int dfd = -1;
			cleanup_close int ffd = -1;
			int r;

			if (mkdtemp(dir) == NULL) {
				*fatal = true;
				return nib_error_errno(err, "cannot create a temporary directory");
			}
			dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
			r = dfd < 0 ? nib_error_errno(err, "cannot open '%s'", dir)
				    : nar_restore_at(dfd, "f", proto_raw_read, sc->conn, &o, err);
			if (r < 0) {
				*fatal = true;
			} else {
				struct stat st;
				ffd = openat(dfd, "f", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
				if (ffd < 0 || fstat(ffd, &st) < 0 || !S_ISREG(st.st_mode))
					r = nib_error_set(err, NIB_E_INVALID, 0,
							  "flat content must be a regular file");
				else
					r = pump(nar_fd_source, &ffd, spool_write, &sp, err);
			}
			rm_rf_at(AT_FDCWD, dir, NULL);
			if (r < 0)
				return -1;
		}
	}
	hash_ctx_final(ch, &up->content);
	if (recursive)
		hash_ctx_final(nh, &up->nar_sha256);
	up->size = sp.size;
	up->fd = TAKE_FD(fd);
	return 0;
}

static int op_add_to_store(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			   struct nib_error **err)
{
	bool framed = sc->version >= PROTO_VERSION(1, 25);
	bool text = false, recursive = false, fatal = false;
	enum hash_algo algo = HASH_SHA256;
	cleanup_free char *path = NULL;
	cleanup_strv char **refs = NULL;
	struct ca_upload up = { .fd = -1 };
	const char *name = req->add_to_store.name;
	int r;

	if (framed) {
		struct nib_error *perr = NULL;
		if (parse_cam(req->add_to_store.cam, &text, &recursive, &algo, &perr) < 0 ||
		    wire_paths(sc, req->add_to_store.refs, &refs, &perr) < 0 ||
		    (req->add_to_store.repair && !sc->peer->trusted &&
		     nib_error_set(&perr, NIB_E_DENIED, 0,
				   "you are not privileged to repair paths") < 0)) {
			struct proto_framed_source src;
			proto_framed_source_init(&src, sc->conn, 0);
			nib_error_move(err, &perr);
			return proto_framed_drain(&src, NULL) < 0 ? H_FATAL : H_FAILED;
		}
	} else {
		recursive = req->add_to_store.recursive != 0;
		if (hash_algo_parse(req->add_to_store.hash_algo, &algo, err) < 0)
			return H_FATAL; /* the NAR that follows cannot be skipped */
		if (!req->add_to_store.fixed && !(recursive && algo == HASH_SHA256))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "non-fixed AddToStore must be recursive sha256"),
			       H_FATAL;
	}
	if (!store_path_name_valid(name, strlen(name))) {
		nib_error_set(err, NIB_E_INVALID, 0, "invalid store path name '%s'", name);
		if (framed) {
			struct proto_framed_source src;
			proto_framed_source_init(&src, sc->conn, 0);
			return proto_framed_drain(&src, NULL) < 0 ? H_FATAL : H_FAILED;
		}
		return H_FATAL;
	}
	if (text) {
		struct proto_framed_source src;
		cleanup_free char *data = NULL;
		size_t len = 0;

		proto_framed_source_init(&src, sc->conn, 0);
		if (read_framed_all(&src, SERVE_MAX_TEXT, &data, &len, err) < 0)
			return proto_framed_drain(&src, NULL) < 0 ? H_FATAL : H_FAILED;
		if (store_add_text(sc->store, name, data, len, refs, &path, err) < 0)
			return H_FAILED;
	} else {
		if (receive_fixed(sc, framed, recursive, algo, &up, &fatal, err) < 0)
			return fatal ? H_FATAL : H_FAILED;
		r = add_fixed_from_spool(sc, up.fd, up.size, recursive, &up.content, &up.nar_sha256,
					 name, refs, req->add_to_store.repair, &path, err);
		close(up.fd);
		if (r < 0)
			return H_FAILED;
	}
	if (!framed) {
		rep->string = TAKE_PTR(path);
		return H_REPLY;
	}
	return reply_keyed_info(sc, path, rep, err);
}

static int op_add_text_to_store(struct serve_ctx *sc, struct proto_request *req,
				struct proto_reply *rep, struct nib_error **err)
{
	cleanup_strv char **refs = NULL;
	char *path = NULL;

	if (!store_path_name_valid(req->add_text_to_store.name,
				   strlen(req->add_text_to_store.name)))
		return nib_error_set(err, NIB_E_INVALID, 0, "invalid store path name '%s'",
				     req->add_text_to_store.name),
		       H_FAILED;
	if (wire_paths(sc, req->add_text_to_store.refs, &refs, err) < 0)
		return H_FAILED;
	if (store_add_text(sc->store, req->add_text_to_store.name, req->add_text_to_store.text,
			   req->add_text_to_store.text_len, refs, &path, err) < 0)
		return H_FAILED;
	rep->string = path;
	return H_REPLY;
}

/* Metadata of a NAR from the wire, checked, as a store_path_info (owning). */
static int wire_info(struct serve_ctx *sc, const struct proto_path_info *pi,
		     struct store_path_info *ret, struct nib_error **err)
{
	struct store_path_info info = { 0 };

	if (wire_path(sc, pi->path, &info.path, err) < 0)
		goto fail;
	if (pi->deriver != NULL && wire_path(sc, pi->deriver, &info.deriver, err) < 0)
		goto fail;
	if (wire_paths(sc, pi->references, &info.references, err) < 0)
		goto fail;
	if (pi->nar_hash.algo != HASH_SHA256) {
		nib_error_set(err, NIB_E_INVALID, 0, "NAR hash of '%s' is not SHA-256", pi->path);
		goto fail;
	}
	info.nar_hash = pi->nar_hash;
	info.nar_size = pi->nar_size;
	info.registration_time = 0;
	info.ultimate = false;
	info.sigs = pi->sigs != NULL ? strv_copy(pi->sigs) : NULL;
	info.ca = pi->ca != NULL ? xstrdup(pi->ca) : NULL;
	*ret = info;
	return 0;
fail:
	store_path_info_release(&info);
	return -1;
}

/* Spool an inline NAR (exact), then add it. */
static int add_inline_nar(struct serve_ctx *sc, const struct store_path_info *info,
			  nar_source_fn src, void *src_data, unsigned flags, bool *fatal,
			  struct nib_error **err)
{
	struct spool sp = { .fd = -1 };
	struct nar_restore_opts o = { .exact = true, .tee = spool_write, .tee_data = &sp };
	cleanup_close int fd = spool_open(sc, err);

	*fatal = true;
	if (fd < 0)
		return -1;
	sp.fd = fd;
	if (nar_parse(src, src_data, &o, err) < 0)
		return -1;
	*fatal = false;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return nib_error_errno(err, "cannot rewind the upload");
	return store_add_nar(sc->store, info, nar_fd_source, &fd, flags, err);
}

static int op_add_to_store_nar(struct serve_ctx *sc, struct proto_request *req,
			       struct proto_reply *rep, struct nib_error **err)
{
	struct store_path_info info = { 0 };
	struct nib_error *perr = NULL;
	unsigned flags = req->add_to_store_nar.repair ? STORE_ADD_REPAIR : 0;
	bool fatal = false;
	int r;

	(void)rep;
	if (!sc->peer->trusted)
		nib_error_set(&perr, NIB_E_DENIED, 0,
			      "cannot add path '%s': unsigned NARs are only accepted from "
			      "trusted users",
			      req->add_to_store_nar.info.path);
	else
		wire_info(sc, &req->add_to_store_nar.info, &info, &perr);
	if (perr != NULL) {
		nib_error_move(err, &perr);
		if (sc->version >= PROTO_VERSION(1, 23)) {
			struct proto_framed_source src;
			proto_framed_source_init(&src, sc->conn, 0);
			return proto_framed_drain(&src, NULL) < 0 ? H_FATAL : H_FAILED;
		}
		return H_FATAL;
	}
	if (sc->version >= PROTO_VERSION(1, 23)) {
		struct proto_framed_source src;
		proto_framed_source_init(&src, sc->conn, 0);
		r = store_add_nar(sc->store, &info, proto_framed_read, &src, flags, err);
		/* The store may stop at the NAR's end: the frames' terminator is still ours to read. */
		if (!src.eof && proto_framed_drain(&src, r < 0 ? NULL : err) < 0) {
			fatal = true;
			r = -1;
		}
	} else if (sc->version >= PROTO_VERSION(1, 21)) {
		r = add_inline_nar(sc, &info, proto_tunnel_read, sc->conn, flags, &fatal, err);
	} else {
		r = add_inline_nar(sc, &info, proto_raw_read, sc->conn, flags, &fatal, err);
	}
	store_path_info_release(&info);
	if (r < 0)
		return fatal ? H_FATAL : H_FAILED;
	return H_REPLY;
}

static int op_add_multiple(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			   struct nib_error **err)
{
	struct proto_framed_source src;
	cleanup_proto_conn struct proto_conn *in = NULL;
	unsigned flags = req->add_multiple_to_store.repair ? STORE_ADD_REPAIR : 0;
	uint64_t count;
	bool fatal = false;

	(void)rep;
	proto_framed_source_init(&src, sc->conn, 0);
	if (!sc->peer->trusted) {
		nib_error_set(err, NIB_E_DENIED, 0,
			      "unsigned NARs are only accepted from trusted users");
		return proto_framed_drain(&src, NULL) < 0 ? H_FATAL : H_FAILED;
	}
	in = proto_conn_new_stream(proto_framed_read, &src, NULL, NULL);
	proto_conn_set_version(in, sc->version);
	if (proto_read_u64(in, &count, err) < 0)
		goto fail;
	for (uint64_t i = 0; i < count; i++) {
		struct proto_path_info pi = { 0 };
		struct store_path_info info = { 0 };
		int r;

		if (proto_read_path_info(in, true, &pi, err) < 0)
			goto fail;
		r = wire_info(sc, &pi, &info, err);
		proto_path_info_release(&pi);
		if (r < 0)
			goto fail;
		r = add_inline_nar(sc, &info, proto_raw_read, in, flags, &fatal, err);
		store_path_info_release(&info);
		if (r < 0)
			goto fail;
	}
	if (proto_framed_drain(&src, err) < 0)
		return H_FATAL;
	return H_REPLY;
fail:
	return proto_framed_drain(&src, NULL) < 0 ? H_FATAL : H_FAILED;
}

static int op_nar_from_path(struct serve_ctx *sc, struct proto_request *req,
			    struct proto_reply *rep, struct nib_error **err)
{
	cleanup_free char *p = NULL;
	cleanup_free char *real = NULL;
	struct nib_error *derr = NULL;
	int r;

	(void)rep;
	if (wire_path(sc, req->path, &p, err) < 0)
		return H_FAILED;
	r = store_is_valid(sc->store, p, err);
	if (r < 0)
		return H_FAILED;
	if (r == 0)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid", p),
		       H_FAILED;
	if (store_add_temp_root(sc->store, p, err) < 0)
		return H_FAILED;
	if (!store_is_local(sc->store))
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0, "NarFromPath needs a local store"),
		       H_FAILED;
	real = local_store_real_path(sc->store, p);
	proto_write_last(sc->conn);
	if (nar_dump_at(AT_FDCWD, real, proto_raw_write, sc->conn, &derr) < 0) {
		/* Half a NAR was sent: the client cannot recover; end the connection. */
		nib_error_move(err, &derr);
		return H_FATAL;
	}
	return H_DONE;
}

/* ---- builds ---- */

/* Are the requested outputs of a derived path all valid?  1 yes, 0 no. */
static int derived_valid(struct serve_ctx *sc, const struct proto_derived_path *dp,
			 struct nib_error **err)
{
	cleanup_free char *p = NULL;
	cleanup_strv char **names = NULL;
	cleanup_strv char **paths = NULL;

	if (wire_path(sc, dp->path, &p, err) < 0)
		return -1;
	if (!dp->built)
		return store_is_valid(sc->store, p, err);
	if (store_is_valid(sc->store, p, err) != 1)
		return 0;
	if (store_query_derivation_outputs(sc->store, p, &names, &paths, err) < 0)
		return -1;
	for (size_t i = 0; names[i] != NULL; i++) {
		int v;
		if (!dp->all_outputs && !strv_contains(dp->outputs, names[i]))
			continue;
		v = store_is_valid(sc->store, paths[i], err);
		if (v <= 0)
			return v;
	}
	return 1;
}

/* What one build_derivations() call reports, per derivation. */
struct drv_outcome {
	char *drv_path;
	enum build_status status;
	char *error;
	int64_t start_usec, stop_usec;
	int64_t cpu_user_usec, cpu_system_usec;
	uint64_t activity; /* 0 = none started */
};

struct build_session {
	struct serve_ctx *sc;
	bool check;		/* check mode (set by the caller) */
	char *const *requested; /* the .drv paths this request asked to build */
	struct drv_outcome *out;
	size_t n_out;
	uint64_t top_activity;
	uint64_t next_activity;
};

static struct drv_outcome *outcome_for(struct build_session *bs, const char *drv_path)
{
	for (size_t i = 0; i < bs->n_out; i++)
		if (STREQ(bs->out[i].drv_path, drv_path))
			return &bs->out[i];
	bs->out = xreallocarray(bs->out, bs->n_out + 1, sizeof(*bs->out));
	bs->out[bs->n_out] = (struct drv_outcome){ .drv_path = xstrdup(drv_path),
						   .status = BUILD_FAILED,
						   .cpu_user_usec = -1,
						   .cpu_system_usec = -1 };
	return &bs->out[bs->n_out++];
}

/* The build activity of drv_path, started on first use. */
static uint64_t build_activity(struct build_session *bs, const char *drv_path, const char *name)
{
	struct drv_outcome *o = outcome_for(bs, drv_path);
	struct proto_field f[4] = { 0 };
	cleanup_free char *text = NULL;
	struct proto_activity act = { 0 };

	if (o->activity != 0)
		return o->activity;
	o->activity = bs->next_activity++;
	text = xasprintf("building '%s'", drv_path);
	f[0] = (struct proto_field){ .type = PROTO_FIELD_STRING,
				     .s = o->drv_path,
				     .len = strlen(o->drv_path) };
	f[1] = (struct proto_field){ .type = PROTO_FIELD_STRING, .s = (char *)"", .len = 0 };
	f[2] = (struct proto_field){ .type = PROTO_FIELD_INT, .i = 1 };
	f[3] = (struct proto_field){ .type = PROTO_FIELD_INT, .i = 1 };
	act.id = o->activity;
	act.level = PROTO_LVL_INFO;
	act.type = PROTO_ACT_BUILD;
	act.text = text;
	act.fields = f;
	act.n_fields = 4;
	act.parent = bs->top_activity;
	(void)name;
	proto_write_start_activity(bs->sc->conn, &act);
	return o->activity;
}

static void bs_log_line(void *userdata, const char *drv_path, const char *name, const char *line,
			size_t len)
{
	struct build_session *bs = userdata;
	uint64_t id = build_activity(bs, drv_path, name);
	struct proto_field f = { .type = PROTO_FIELD_STRING, .s = (char *)line, .len = len };

	if (bs->sc->version < PROTO_VERSION(1, 20)) {
		cleanup_free char *m = xasprintf("%.*s\n", (int)len, line);
		proto_write_next(bs->sc->conn, m, strlen(m));
	} else {
		proto_write_result(bs->sc->conn, id, PROTO_RES_BUILD_LOG_LINE, &f, 1);
	}
	proto_flush(bs->sc->conn, NULL);
}

static void bs_message(void *userdata, const char *drv_path, const char *msg)
{
	struct build_session *bs = userdata;
	cleanup_free char *m = xasprintf("%s\n", msg);

	(void)drv_path;
	proto_write_next(bs->sc->conn, m, strlen(m));
	proto_flush(bs->sc->conn, NULL);
}

static void bs_progress(void *userdata, const struct build_progress *p)
{
	struct build_session *bs = userdata;
	struct proto_field f[4] = {
		{ .type = PROTO_FIELD_INT, .i = p->done },
		{ .type = PROTO_FIELD_INT, .i = p->total },
		{ .type = PROTO_FIELD_INT, .i = p->running },
		{ .type = PROTO_FIELD_INT, .i = p->failed },
	};

	/* A build's activity starts when it does (clients show what runs). */
	for (size_t i = 0; p->running_drv_paths != NULL && p->running_drv_paths[i] != NULL; i++)
		build_activity(bs, p->running_drv_paths[i], p->running_names[i]);
	proto_write_result(bs->sc->conn, bs->top_activity, PROTO_RES_PROGRESS, f, 4);
	proto_flush(bs->sc->conn, NULL);
}

/* Log replay: split the stored log into lines for bs_log_line. */
struct log_replay {
	struct build_session *bs;
	const char *drv_path;
	const char *name;
	struct strbuf line;
};

static int replay_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct log_replay *lr = userdata;
	const char *p = data;

	(void)err;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n') {
			strbuf_addch(&lr->line, p[i]);
			continue;
		}
		bs_log_line(lr->bs, lr->drv_path, lr->name, lr->line.buf ? lr->line.buf : "",
			    lr->line.len);
		strbuf_reset(&lr->line);
	}
	return 0;
}

/*
 * A requested derivation that another process built while this one waited
 * for its output locks: show this client the builder's log from the
 * stored file, as if it had watched the build.
 */
static void replay_log(struct build_session *bs, const struct build_result *r)
{
	struct log_replay lr = { bs, r->drv_path, r->name, STRBUF_INIT };

	for (int compressed = 1; compressed >= 0; compressed--) {
		cleanup_free char *path = build_log_path(bs->sc->settings, r->drv_path, compressed);
		cleanup_error struct nib_error *e = NULL;

		if (access(path, F_OK) < 0)
			continue;
		archive_log_read(path, SERVE_MAX_REPLAYED_LOG, replay_sink, &lr, &e);
		if (lr.line.len > 0)
			bs_log_line(bs, r->drv_path, r->name, lr.line.buf, lr.line.len);
		break;
	}
	strbuf_release(&lr.line);
}

static void bs_result(void *userdata, const struct build_result *r)
{
	struct build_session *bs = userdata;
	struct drv_outcome *o = outcome_for(bs, r->drv_path);

	if (r->status == BUILD_VALID && strv_contains(bs->requested, r->drv_path))
		replay_log(bs, r);

	o->status = r->status;
	free(o->error);
	o->error = r->error != NULL ? xstrdup(r->error) : NULL;
	o->start_usec = r->start_usec;
	o->stop_usec = r->stop_usec;
	o->cpu_user_usec = r->cpu_user_usec;
	o->cpu_system_usec = r->cpu_system_usec;
	if (o->activity != 0) {
		proto_write_stop_activity(bs->sc->conn, o->activity);
		proto_flush(bs->sc->conn, NULL);
	}
}

static void build_session_release(struct build_session *bs)
{
	for (size_t i = 0; i < bs->n_out; i++) {
		free(bs->out[i].drv_path);
		free(bs->out[i].error);
	}
	free(bs->out);
}

/*
 * While builds run, what this process logs reaches the client too, as far
 * as the verbosity it asked for goes (nib -v, -vv); the daemon's own log
 * keeps its level.  Only then: between other requests' frames (uploads, a
 * NAR being streamed) a log frame would corrupt the stream.
 */
struct log_forward {
	struct serve_ctx *sc;
	log_sink_fn prev;
	void *prev_data;
	int prev_max;
};

static void forward_sink(int level, const char *msg, void *userdata)
{
	struct log_forward *f = userdata;

	if (level <= f->prev_max) {
		if (f->prev != NULL)
			f->prev(level, msg, f->prev_data);
		else
			log_default_sink(level, msg, NULL);
	}
	if (proto_verbosity_of(level) <= f->sc->verbosity) {
		cleanup_free char *m = xasprintf("%s\n", msg);
		proto_write_next(f->sc->conn, m, strlen(m));
		proto_flush(f->sc->conn, NULL);
	}
}

static void forward_start(struct serve_ctx *sc, struct log_forward *f)
{
	int want = proto_log_level_of(sc->verbosity);

	f->sc = sc;
	f->prev_max = log_get_max_level();
	log_get_sink(&f->prev, &f->prev_data);
	log_set_sink(forward_sink, f);
	if (want > f->prev_max)
		log_set_max_level(want);
}

static void forward_stop(struct log_forward *f)
{
	log_set_sink(f->prev, f->prev_data);
	log_set_max_level(f->prev_max);
}

/*
 * Build the derivations among paths (each must be a valid .drv), with the
 * client's connection as the cancel signal: a client that hangs up
 * cancels its builds.  Log lines go to the client as results of one
 * build activity per derivation.
 */
static int run_builds(struct serve_ctx *sc, char *const *drvs, const struct derivation *inline_drv,
		      bool trust_outputs, struct build_session *bs, struct nib_error **err)
{
	struct build_callbacks cb = { .log_line = bs_log_line,
				      .message = bs_message,
				      .progress = bs_progress,
				      .result = bs_result,
				      .userdata = bs };
	struct build_options opts;
	struct proto_activity top = { 0 };
	struct log_forward fwd;
	size_t n = strv_length(drvs);
	int r;

	bs->sc = sc;
	bs->requested = drvs;
	bs->next_activity = ((uint64_t)getpid() << 32) + 1;
	bs->top_activity = bs->next_activity++;
	build_options_init(&opts);
	opts.max_jobs = sc->settings->max_jobs;
	opts.keep_going = sc->keep_going;
	opts.check = bs->check;
	opts.cancel_fd = proto_conn_fd(sc->conn);
	if (n == 0)
		return 0;
	if (sc->peer->no_builds)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0, "builds are disabled here");
	top.id = bs->top_activity;
	top.level = PROTO_LVL_INFO;
	top.type = PROTO_ACT_BUILDS;
	top.text = (char *)"";
	proto_write_start_activity(sc->conn, &top);
	proto_flush(sc->conn, NULL);
	forward_start(sc, &fwd);
	log_info("%s: building %zu derivation%s%s%s", tag(sc), n, n == 1 ? "" : "s",
		 n == 1 ? ": " : "", n == 1 ? drvs[0] : "");
	if (inline_drv != NULL)
		r = build_derivation_inline(sc->store, sc->settings, drvs[0], inline_drv,
					    trust_outputs, &opts, &cb, err);
	else
		r = build_derivations(sc->store, sc->settings, drvs, n, &opts, &cb, err);
	forward_stop(&fwd);
	proto_write_stop_activity(sc->conn, top.id);
	return r;
}

static uint64_t proto_status_of(enum build_status s)
{
	switch (s) {
	case BUILD_VALID:
		return PROTO_BUILD_ALREADY_VALID;
	case BUILD_BUILT:
		return PROTO_BUILD_BUILT;
	case BUILD_TIMED_OUT:
		return PROTO_BUILD_TIMED_OUT;
	case BUILD_LOG_LIMIT:
		return PROTO_BUILD_LOG_LIMIT_EXCEEDED;
	case BUILD_HASH_MISMATCH:
		return PROTO_BUILD_OUTPUT_REJECTED;
	case BUILD_DEP_FAILED:
		return PROTO_BUILD_DEPENDENCY_FAILED;
	case BUILD_NOT_DETERMINISTIC:
		return PROTO_BUILD_NOT_DETERMINISTIC;
	case BUILD_UNSUPPORTED:
	case BUILD_CANCELLED:
		return PROTO_BUILD_MISC_FAILURE;
	case BUILD_FAILED:
	default:
		return PROTO_BUILD_PERMANENT_FAILURE;
	}
}

/*
 * builtOutputs of a derivation (>= 1.28): "sha256:<hex of the masked hash
 * modulo>!<output>" -> Realisation JSON, for the requested outputs.  given
 * is the derivation when it came inline (else it is read from the store).
 */
static void fill_built_outputs(struct serve_ctx *sc, const struct proto_derived_path *dp,
			       const struct derivation *given, struct proto_build_result *res)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_derivation struct derivation *stored = NULL;
	const struct derivation *d = given;
	cleanup_drv_hasher struct drv_hasher *h = NULL;
	cleanup_free char *drv = NULL;
	cleanup_strv char **names = NULL;
	cleanup_strv char **paths = NULL;
	struct drv_modulo m = { 0 };

	if (wire_path(sc, dp->path, &drv, &e) < 0)
		return;
	if (given != NULL) {
		names = xcalloc(given->n_outputs + 1, sizeof(char *));
		paths = xcalloc(given->n_outputs + 1, sizeof(char *));
		for (size_t i = 0; i < given->n_outputs; i++) {
			names[i] = xstrdup(given->outputs[i].name);
			paths[i] = xstrdup(given->outputs[i].path != NULL ? given->outputs[i].path
									  : "");
		}
	} else {
		d = stored = store_read_derivation(sc->store, drv, &e);
		if (d == NULL ||
		    store_query_derivation_outputs(sc->store, drv, &names, &paths, &e) < 0)
			return;
	}
	h = drv_hasher_new(store_dir(sc->store), store_derivation_resolver, sc->store);
	if (derivation_hash_modulo(h, d, true, &m, &e) < 0)
		return;
	for (size_t i = 0; names[i] != NULL; i++) {
		cleanup_free char *hex = NULL;
		cleanup_free char *id = NULL;
		const struct hash *hm = NULL;

		if (!dp->all_outputs && !strv_contains(dp->outputs, names[i]))
			continue;
		for (size_t j = 0; j < m.n; j++)
			if (STREQ(m.outputs[j], names[i]))
				hm = &m.hashes[j];
		if (hm == NULL || strrchr(paths[i], '/') == NULL)
			continue;
		hex = hash_to_string(hm, HASH_ENC_BASE16, false);
		id = xasprintf("sha256:%s!%s", hex, names[i]);
		res->built_outputs = xreallocarray(res->built_outputs, res->n_built_outputs + 1,
						   sizeof(struct proto_pair));
		res->built_outputs[res->n_built_outputs].first = xstrdup(id);
		res->built_outputs[res->n_built_outputs].second =
			proto_realisation_json(id, strrchr(paths[i], '/') + 1);
		res->n_built_outputs++;
	}
	/* Ascending ids (names are sorted, but the hash differs per output). */
	for (size_t i = 1; i < res->n_built_outputs; i++)
		for (size_t j = i; j > 0 && strcmp(res->built_outputs[j - 1].first,
						   res->built_outputs[j].first) > 0;
		     j--) {
			struct proto_pair t = res->built_outputs[j];
			res->built_outputs[j] = res->built_outputs[j - 1];
			res->built_outputs[j - 1] = t;
		}
	drv_modulo_release(&m);
}

static void fill_result(struct serve_ctx *sc, struct build_session *bs,
			const struct proto_derived_path *dp, const char *drv, int valid_before,
			const struct derivation *given, struct proto_build_result *res)
{
	struct drv_outcome *o = NULL;

	for (size_t i = 0; drv != NULL && i < bs->n_out; i++)
		if (STREQ(bs->out[i].drv_path, drv))
			o = &bs->out[i];
	if (valid_before == 1 || o == NULL) {
		res->status =
			valid_before == 1 ? PROTO_BUILD_ALREADY_VALID : PROTO_BUILD_MISC_FAILURE;
		res->error_msg = xstrdup(valid_before == 1 ? "" : "not built");
	} else {
		res->status = proto_status_of(o->status);
		res->error_msg = xstrdup(o->error != NULL ? o->error : "");
		res->times_built = o->status == BUILD_BUILT ? 1 : 0;
		res->is_non_deterministic = o->status == BUILD_NOT_DETERMINISTIC;
		res->start_time = o->start_usec > 0 ? (uint64_t)o->start_usec / 1000000 : 0;
		res->stop_time = o->stop_usec > 0 ? (uint64_t)o->stop_usec / 1000000 : 0;
		if (o->cpu_user_usec >= 0) {
			res->has_cpu_user = true;
			res->cpu_user_usec = o->cpu_user_usec;
		}
		if (o->cpu_system_usec >= 0) {
			res->has_cpu_system = true;
			res->cpu_system_usec = o->cpu_system_usec;
		}
	}
	if (dp->built &&
	    (res->status == PROTO_BUILD_BUILT || res->status == PROTO_BUILD_ALREADY_VALID))
		fill_built_outputs(sc, dp, given, res);
}

/* Build modes: repair is for trusted clients and not implemented; check is for anyone. */
static int check_build_mode(struct serve_ctx *sc, uint64_t mode, struct nib_error **err)
{
	if (mode == PROTO_BUILD_MODE_REPAIR && !sc->peer->trusted)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "repairing is not allowed because you are not in "
				     "'trusted-users'");
	if (mode == PROTO_BUILD_MODE_REPAIR)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "repairing builds is not supported by nib (use 'nib store "
				     "verify --repair' for the paths' metadata)");
	if (mode != PROTO_BUILD_MODE_NORMAL && mode != PROTO_BUILD_MODE_CHECK)
		return nib_error_set(err, NIB_E_INVALID, 0, "unknown build mode %llu",
				     (unsigned long long)mode);
	return 0;
}

static int op_build_paths(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			  struct nib_error **err)
{
	size_t n = req->build_paths.n_paths;
	cleanup_strv char **drvs = xcalloc(n + 1, sizeof(char *));
	cleanup_strv char **drv_of = xcalloc(n + 1, sizeof(char *));
	cleanup_free int *valid = xcalloc(n + 1, sizeof(int));
	struct build_session bs = { 0 };
	cleanup_error struct nib_error *berr = NULL;
	size_t k = 0;
	int r = 0;

	if (check_build_mode(sc, req->build_paths.mode, err) < 0)
		return H_FAILED;
	bs.check = req->build_paths.mode == PROTO_BUILD_MODE_CHECK;
	for (size_t i = 0; i < n; i++) {
		struct proto_derived_path *dp = &req->build_paths.paths[i];
		cleanup_free char *p = NULL;

		valid[i] = derived_valid(sc, dp, err);
		if (valid[i] < 0)
			return H_FAILED;
		if (valid[i] == 1 && !(bs.check && dp->built))
			continue;
		if (valid[i] == 1)
			valid[i] = 0; /* checked: built again */
		if (!dp->built) {
			if (req->op == PROTO_OP_BUILD_PATHS)
				return nib_error_set(err, NIB_E_NOT_FOUND, 0,
						     "path '%s' is not valid and nib has no "
						     "substituters",
						     dp->path),
				       H_FAILED;
			continue;
		}
		if (wire_path(sc, dp->path, &p, err) < 0)
			return H_FAILED;
		drv_of[i] = xstrdup(p);
		if (!strv_contains(drvs, p))
			drvs[k++] = TAKE_PTR(p);
	}
	if (k > 0)
		r = run_builds(sc, drvs, NULL, false, &bs, &berr);
	if (req->op == PROTO_OP_BUILD_PATHS) {
		build_session_release(&bs);
		if (r < 0)
			return nib_error_move(err, &berr), H_FAILED;
		rep->u64 = 1;
		return H_REPLY;
	}
	rep->keyed_build_results.results = xcalloc(n + 1, sizeof(struct proto_keyed_build_result));
	rep->keyed_build_results.n = n;
	for (size_t i = 0; i < n; i++) {
		struct proto_derived_path *dp = &req->build_paths.paths[i];
		struct proto_keyed_build_result *kr = &rep->keyed_build_results.results[i];
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *s = proto_derived_path_to_string(dp, sc->version, &e);

		if (s == NULL || proto_derived_path_parse(s, sc->version, &kr->path, &e) < 0) {
			build_session_release(&bs);
			return nib_error_move(err, &e), H_FAILED;
		}
		if (!dp->built && valid[i] != 1) {
			kr->result.status = PROTO_BUILD_MISC_FAILURE;
			kr->result.error_msg = xasprintf(
				"path '%s' is not valid and nib has no substituters", dp->path);
			continue;
		}
		fill_result(sc, &bs, dp, drv_of[i], valid[i], NULL, &kr->result);
	}
	build_session_release(&bs);
	return H_REPLY;
}

static int op_ensure_path(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			  struct nib_error **err)
{
	cleanup_free char *p = NULL;
	int v;

	if (wire_path(sc, req->path, &p, err) < 0)
		return H_FAILED;
	v = store_is_valid(sc->store, p, err);
	if (v < 0)
		return H_FAILED;
	if (v == 0)
		return nib_error_set(err, NIB_E_NOT_FOUND, 0,
				     "path '%s' is not valid and nib has no substituters", p),
		       H_FAILED;
	if (store_add_temp_root(sc->store, p, err) < 0)
		return H_FAILED;
	rep->u64 = 1;
	return H_REPLY;
}

/* A string in ATerm form (Nix's escapes). */
static void aterm_string(struct strbuf *sb, const char *str)
{
	strbuf_addch(sb, '"');
	for (const char *c = str; *c != '\0'; c++) {
		switch (*c) {
		case '"':
			strbuf_addstr(sb, "\\\"");
			break;
		case '\\':
			strbuf_addstr(sb, "\\\\");
			break;
		case '\n':
			strbuf_addstr(sb, "\\n");
			break;
		case '\r':
			strbuf_addstr(sb, "\\r");
			break;
		case '\t':
			strbuf_addstr(sb, "\\t");
			break;
		default:
			strbuf_addch(sb, *c);
		}
	}
	strbuf_addch(sb, '"');
}

static void aterm_strings(struct strbuf *sb, char *const *v)
{
	strbuf_addch(sb, '[');
	for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
		if (i > 0)
			strbuf_addch(sb, ',');
		aterm_string(sb, v[i]);
	}
	strbuf_addch(sb, ']');
}

/*
 * A BasicDerivation from the wire as a derivation without input
 * derivations: written as the ATerm it stands for and parsed, so that it
 * is checked like any .drv (store paths, hashes, order).  It is named
 * after drv_path.
 */
static int basic_derivation_parse(struct serve_ctx *sc, const struct proto_basic_derivation *b,
				  const char *drv_path, struct derivation **ret,
				  struct nib_error **err)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	struct derivation *d = NULL;
	const char *base = strrchr(drv_path, '/') + 1;
	size_t len = strlen(base);

	strbuf_addstr(&sb, "Derive([");
	for (size_t i = 0; i < b->n_outputs; i++) {
		strbuf_addstr(&sb, i > 0 ? ",(" : "(");
		aterm_string(&sb, b->outputs[i].name);
		strbuf_addch(&sb, ',');
		aterm_string(&sb, b->outputs[i].path);
		strbuf_addch(&sb, ',');
		aterm_string(&sb, b->outputs[i].hash_algo);
		strbuf_addch(&sb, ',');
		aterm_string(&sb, b->outputs[i].hash);
		strbuf_addch(&sb, ')');
	}
	strbuf_addstr(&sb, "],[],");
	aterm_strings(&sb, b->input_srcs);
	strbuf_addch(&sb, ',');
	aterm_string(&sb, b->platform);
	strbuf_addch(&sb, ',');
	aterm_string(&sb, b->builder);
	strbuf_addch(&sb, ',');
	aterm_strings(&sb, b->args);
	strbuf_addstr(&sb, ",[");
	for (size_t i = 0; i < b->n_env; i++) {
		strbuf_addstr(&sb, i > 0 ? ",(" : "(");
		aterm_string(&sb, b->env[i].first);
		strbuf_addch(&sb, ',');
		aterm_string(&sb, b->env[i].second);
		strbuf_addch(&sb, ')');
	}
	strbuf_addstr(&sb, "])");
	if (sb.len > DRV_MAX_TEXT)
		return nib_error_set(err, NIB_E_INVALID, 0, "derivation '%s' is too large",
				     drv_path);
	if (derivation_parse_aterm(sb.buf, sb.len, store_dir(sc->store), &d, err) < 0)
		return nib_error_prefix(err, "derivation '%s' given inline", drv_path);
	free(d->name);
	d->name = len > 37 ? xstrndup(base + 33, len - 37) : xstrdup(base);
	*ret = d;
	return 0;
}

/*
 * A trusted client's input-addressed derivation: its output paths cannot be
 * recomputed (its inputs were resolved), so they are taken as given, as
 * Nix does, unless the .drv is in the store: then they must be the stored
 * one's.
 */
static int check_against_stored(struct serve_ctx *sc, const char *drv_path,
				const struct derivation *d, struct nib_error **err)
{
	cleanup_derivation struct derivation *stored = NULL;
	int v = store_is_valid(sc->store, drv_path, err);

	if (v <= 0)
		return v;
	stored = store_read_derivation(sc->store, drv_path, err);
	if (stored == NULL)
		return -1;
	for (size_t i = 0; i < d->n_outputs; i++) {
		const struct drv_output *o = &d->outputs[i];
		const struct drv_output *so = derivation_find_output(stored, o->name);

		if (so == NULL)
			return nib_error_set(
				err, NIB_E_INVALID, 0,
				"the derivation given inline has an output '%s', which "
				"'%s' does not have",
				o->name, drv_path);
		if (so->path == NULL || o->path == NULL || !STREQ(so->path, o->path))
			return nib_error_set(
				err, NIB_E_INVALID, 0,
				"output '%s' of the derivation given inline is '%s', but "
				"'%s' says '%s'",
				o->name, o->path != NULL ? o->path : "", drv_path,
				so->path != NULL ? so->path : "");
	}
	if (stored->n_outputs != d->n_outputs)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "the derivation given inline has %zu outputs, '%s' has %zu",
				     d->n_outputs, drv_path, stored->n_outputs);
	return 1;
}

/*
 * BuildDerivation: a derivation sent inline (inputs resolved into input
 * sources), built without its .drv having to be in the store.  An untrusted
 * client may only send fixed-output ones, whose outputs are checked against
 * their hashes; its derivation is then written to the store and built
 * under the path that gives (as Nix does: the path it sent proves
 * nothing).  A trusted client's input-addressed derivation keeps its
 * output paths (see check_against_stored).
 */
static int op_build_derivation(struct serve_ctx *sc, struct proto_request *req,
			       struct proto_reply *rep, struct nib_error **err)
{
	struct proto_build_result *res = &rep->build_result;
	cleanup_derivation struct derivation *d = NULL;
	cleanup_free char *drv = NULL;
	cleanup_free bool *valid = NULL;
	cleanup_strv char **outs = NULL;
	char *drvs[2] = { NULL, NULL };
	struct build_session bs = { 0 };
	cleanup_error struct nib_error *berr = NULL;
	struct proto_derived_path dp = { .built = true, .all_outputs = true };
	uint64_t mode = req->build_derivation.mode;
	enum drv_type type;
	bool all_valid = true;
	int v;

	if (wire_path(sc, req->build_derivation.drv_path, &drv, err) < 0)
		return H_FAILED;
	if (!ends_with(drv, ".drv"))
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is not a derivation path", drv),
		       H_FAILED;
	if (basic_derivation_parse(sc, &req->build_derivation.drv, drv, &d, err) < 0 ||
	    derivation_type(d, &type, err) < 0)
		return H_FAILED;
	if (!sc->peer->trusted && type != DRV_TYPE_FIXED)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "you are not privileged to build input-addressed "
				     "derivations given inline"),
		       H_FAILED;
	if (check_build_mode(sc, mode, err) < 0)
		return H_FAILED;
	bs.check = mode == PROTO_BUILD_MODE_CHECK;
	if (type == DRV_TYPE_FIXED) {
		cleanup_drv_hasher struct drv_hasher *h =
			drv_hasher_new(store_dir(sc->store), NULL, NULL);
		if (derivation_check_outputs(h, d, err) < 0)
			return nib_error_prefix(err, "derivation '%s' given inline", drv), H_FAILED;
	} else if (type == DRV_TYPE_INPUT_ADDRESSED) {
		if (check_against_stored(sc, drv, d, err) < 0)
			return H_FAILED;
	}
	if (!sc->peer->trusted) {
		/* The path the client sent proves nothing: the one its contents give. */
		cleanup_strv char **refs = derivation_references(d);
		cleanup_free char *aterm = NULL;
		struct store_path sp;
		size_t len;
		char *name;

		if (derivation_store_path(store_dir(sc->store), d, &sp, &aterm, &len, err) < 0)
			return H_FAILED;
		name = xasprintf("%s.drv", d->name);
		free(drv);
		drv = NULL;
		v = store_add_text(sc->store, name, aterm, len, refs, &drv, err);
		free(name);
		if (v < 0)
			return H_FAILED;
	}
	dp.path = drv;

	/* Its inputs must be here: nib has nothing to fetch them from. */
	valid = xcalloc(d->n_srcs + d->n_outputs + 1, sizeof(bool));
	if (d->n_srcs > 0 && store_query_valid(sc->store, d->srcs, d->n_srcs, valid, err) < 0)
		return H_FAILED;
	for (size_t i = 0; i < d->n_srcs; i++)
		if (!valid[i]) {
			res->status = PROTO_BUILD_MISC_FAILURE;
			res->error_msg = xasprintf("cannot build '%s': its input '%s' is not valid",
						   drv, d->srcs[i]);
			return H_REPLY;
		}
	outs = xcalloc(d->n_outputs + 1, sizeof(char *));
	for (size_t i = 0; i < d->n_outputs; i++)
		outs[i] = xstrdup(d->outputs[i].path != NULL ? d->outputs[i].path : "");
	if (store_query_valid(sc->store, outs, d->n_outputs, valid, err) < 0)
		return H_FAILED;
	for (size_t i = 0; i < d->n_outputs; i++)
		all_valid = all_valid && valid[i];
	if (!all_valid || bs.check) {
		drvs[0] = drv;
		run_builds(sc, drvs, d, sc->peer->trusted && type == DRV_TYPE_INPUT_ADDRESSED, &bs,
			   &berr);
	}
	if ((!all_valid || bs.check) && bs.n_out == 0 && berr != NULL) {
		/* Stopped before the derivation was decided. */
		res->status = PROTO_BUILD_MISC_FAILURE;
		res->error_msg = xstrdup(berr->msg);
	} else {
		fill_result(sc, &bs, &dp, drv, all_valid && !bs.check ? 1 : 0, d, res);
	}
	build_session_release(&bs);
	return H_REPLY;
}

static int op_query_missing(struct serve_ctx *sc, struct proto_request *req,
			    struct proto_reply *rep, struct nib_error **err)
{
	rep->missing.will_build = xcalloc(1, sizeof(char *));
	rep->missing.will_substitute = xcalloc(1, sizeof(char *));
	rep->missing.unknown = xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < req->build_paths.n_paths; i++) {
		struct proto_derived_path *dp = &req->build_paths.paths[i];
		int v = derived_valid(sc, dp, err);

		if (v < 0)
			return H_FAILED;
		if (v)
			continue;
		if (dp->built)
			strv_push(&rep->missing.will_build, dp->path);
		else
			strv_push(&rep->missing.unknown, dp->path);
	}
	return H_REPLY;
}

/* ---- the loop ---- */

typedef int (*handler_fn)(struct serve_ctx *sc, struct proto_request *req, struct proto_reply *rep,
			  struct nib_error **err);

static handler_fn find_handler(uint64_t op)
{
	switch (op) {
	case PROTO_OP_IS_VALID_PATH:
		return op_is_valid_path;
	case PROTO_OP_QUERY_VALID_PATHS:
		return op_query_valid_paths;
	case PROTO_OP_QUERY_PATH_INFO:
		return op_query_path_info;
	case PROTO_OP_QUERY_ALL_VALID_PATHS:
		return op_query_all_valid_paths;
	case PROTO_OP_QUERY_REFERRERS:
	case PROTO_OP_QUERY_VALID_DERIVERS:
		return op_query_referrers;
	case PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP:
		return op_query_output_map;
	case PROTO_OP_QUERY_PATH_FROM_HASH_PART:
		return op_query_from_hash_part;
	case PROTO_OP_ADD_TEMP_ROOT:
	case PROTO_OP_ADD_INDIRECT_ROOT:
		return op_add_temp_root;
	case PROTO_OP_FIND_ROOTS:
		return op_find_roots;
	case PROTO_OP_COLLECT_GARBAGE:
		return op_collect_garbage;
	case PROTO_OP_VERIFY_STORE:
		return op_verify_store;
	case PROTO_OP_SET_OPTIONS:
		return op_set_options;
	case PROTO_OP_ADD_TO_STORE:
		return op_add_to_store;
	case PROTO_OP_ADD_TEXT_TO_STORE:
		return op_add_text_to_store;
	case PROTO_OP_ADD_TO_STORE_NAR:
		return op_add_to_store_nar;
	case PROTO_OP_ADD_MULTIPLE_TO_STORE:
		return op_add_multiple;
	case PROTO_OP_NAR_FROM_PATH:
		return op_nar_from_path;
	case PROTO_OP_BUILD_PATHS:
	case PROTO_OP_BUILD_PATHS_WITH_RESULTS:
		return op_build_paths;
	case PROTO_OP_ENSURE_PATH:
		return op_ensure_path;
	case PROTO_OP_BUILD_DERIVATION:
		return op_build_derivation;
	case PROTO_OP_QUERY_MISSING:
		return op_query_missing;
	default:
		return NULL;
	}
}

/* Data following ops nib does not implement: skip it so that the connection stays usable. */
static int skip_unhandled_data(struct serve_ctx *sc, uint64_t op)
{
	if (op == PROTO_OP_ADD_BUILD_LOG) {
		struct proto_framed_source src;
		proto_framed_source_init(&src, sc->conn, 0);
		return proto_framed_drain(&src, NULL);
	}
	return 0;
}

int serve_refuse(struct proto_conn *conn, enum proto_trust trust, const char *msg,
		 struct nib_error **err)
{
	if (proto_server_handshake(conn, SERVE_NIX_VERSION, trust, err) < 0)
		return -1;
	proto_write_error_msg(conn, msg);
	return proto_flush(conn, err);
}

int serve_connection(struct store *store, struct settings *settings, struct proto_conn *conn,
		     const struct serve_peer *peer, struct nib_error **err)
{
	struct serve_ctx sc = { .store = store,
				.settings = settings,
				.conn = conn,
				.peer = peer,
				.verbosity = PROTO_LVL_INFO };

	if (proto_server_handshake(conn, SERVE_NIX_VERSION,
				   peer->trusted ? PROTO_TRUST_TRUSTED : PROTO_TRUST_NOT_TRUSTED,
				   err) < 0)
		return -1;
	sc.version = proto_conn_version(conn);
	proto_write_last(conn);
	if (proto_flush(conn, err) < 0)
		return -1;
	log_debug("%s: client speaks %u.%u", tag(&sc), PROTO_MAJOR(sc.version),
		  PROTO_MINOR(sc.version));

	for (;;) {
		struct proto_request req = { 0 };
		struct proto_reply rep = { 0 };
		cleanup_error struct nib_error *e = NULL;
		handler_fn fn;
		uint64_t op;
		int r;

		r = proto_read_request(conn, &req, &e);
		if (r == 0) {
			proto_request_release(&req);
			return 0;
		}
		if (r < 0) {
			proto_request_release(&req);
			log_info("%s: %s", tag(&sc), e->msg);
			proto_write_error_msg(conn, e->msg);
			proto_flush(conn, NULL);
			return nib_error_move(err, &e);
		}
		op = req.op;
		log_debug("%s: %s", tag(&sc), proto_op_name(op));
		fn = find_handler(req.op);
		if (fn == NULL) {
			if (skip_unhandled_data(&sc, req.op) < 0) {
				proto_request_release(&req);
				return nib_error_set(err, NIB_E_PROTOCOL, 0,
						     "lost the stream skipping %s data",
						     proto_op_name(req.op));
			}
			nib_error_set(&e, NIB_E_UNSUPPORTED, 0,
				      "operation %s is not supported by nib",
				      proto_op_name(req.op));
			r = H_FAILED;
		} else {
			rep.op = req.op;
			rep.kind = proto_reply_kind(req.op, sc.version);
			r = fn(&sc, &req, &rep, &e);
		}
		proto_request_release(&req);
		if (r == H_REPLY) {
			proto_write_last(conn);
			proto_write_reply(conn, &rep);
		} else if (r == H_FAILED || r == H_FATAL) {
			log_info("%s: %s failed: %s", tag(&sc), proto_op_name(op),
				 e != NULL ? e->msg : "unknown error");
			proto_write_error_msg(conn, e != NULL ? e->msg : "unknown error");
		}
		proto_reply_release(&rep);
		if (proto_flush(conn, err) < 0)
			return -1;
		if (r == H_FATAL)
			return nib_error_move(err, &e);
	}
}

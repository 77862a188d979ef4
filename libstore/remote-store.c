/* remote-store.c - the store interface over the daemon socket (see remote-store.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "build.h"
#include "cleanup.h"
#include "derivation.h"
#include "log.h"
#include "protocol.h"
#include "remote-store.h"
#include "settings.h"
#include "store-internal.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

struct remote_store {
	struct store base;
	struct proto_conn *conn;
	bool broken;
	struct proto_log_handlers h;
	uint64_t verbosity; /* as last sent with SetOptions */
};

#define REMOTE(s) ((struct remote_store *)(s))

static void default_next(void *userdata, const char *msg, size_t len)
{
	(void)userdata;
	while (len > 0 && msg[len - 1] == '\n')
		len--;
	log_notice("%.*s", (int)len, msg);
}

static const struct proto_log_handlers default_handlers = { .next = default_next };

static void remote_close(struct store *s)
{
	struct remote_store *rs = REMOTE(s);

	proto_conn_free(rs->conn);
	free(s->store_dir);
	free(rs);
}

int remote_store_check(struct store *s, int r, struct proto_error *derr, struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);

	if (r == 0)
		return 0;
	if (r < 0) {
		rs->broken = true;
		return nib_error_prefix(err, "talking to the nib daemon");
	}
	{
		const char *m = derr->msg != NULL ? derr->msg : "unknown error";
		enum nib_errc code = NIB_E_INVALID;
		if (strstr(m, "is not valid") != NULL)
			code = NIB_E_NOT_FOUND;
		else if (strstr(m, "not privileged") != NULL || strstr(m, "not allowed") != NULL ||
			 strstr(m, "only accepted from trusted") != NULL)
			code = NIB_E_DENIED;
		else if (strstr(m, "not supported") != NULL || strstr(m, "not available") != NULL)
			code = NIB_E_UNSUPPORTED;
		nib_error_set(err, code, 0, "%s", m);
		proto_error_free(derr);
		return -1;
	}
}

static int check_usable(struct remote_store *rs, struct nib_error **err)
{
	if (rs->broken)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "the connection to the nib daemon was lost");
	return 0;
}

/* One request without data, its reply in *rep (release it). */
static int call(struct store *s, struct proto_request *req, struct proto_reply *rep,
		struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);
	struct proto_error *derr = NULL;
	int r;

	if (check_usable(rs, err) < 0)
		return -1;
	r = proto_client_call(rs->conn, req, &rs->h, rep, &derr, err);
	return remote_store_check(s, r, derr, err);
}

/* One request without data whose reply carries nothing the caller needs. */
static int call_only(struct store *s, struct proto_request *req, struct nib_error **err)
{
	struct proto_reply rep = { 0 };

	if (call(s, req, &rep, err) < 0)
		return -1;
	proto_reply_release(&rep);
	return 0;
}

static int finish(struct store *s, uint64_t op, struct proto_reply *rep, struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);
	struct proto_error *derr = NULL;
	int r = proto_client_finish(rs->conn, op, &rs->h, rep, &derr, err);

	return remote_store_check(s, r, derr, err);
}

static int remote_query_valid(struct store *s, char *const *paths, size_t n, bool *ret_valid,
			      struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_QUERY_VALID_PATHS };
	struct proto_reply rep = { 0 };

	req.paths.paths = (char **)paths;
	if (call(s, &req, &rep, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		ret_valid[i] = strv_contains(rep.strings, paths[i]);
	proto_reply_release(&rep);
	return 0;
}

static int remote_query_path_info(struct store *s, const char *path, struct store_path_info *ret,
				  struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_QUERY_PATH_INFO };
	struct proto_reply rep = { 0 };
	struct proto_path_info *pi;

	req.path = (char *)path;
	if (call(s, &req, &rep, err) < 0)
		return -1;
	if (!rep.path_info.valid) {
		proto_reply_release(&rep);
		return 0;
	}
	pi = &rep.path_info.info;
	memset(ret, 0, sizeof(*ret));
	ret->path = xstrdup(path);
	ret->nar_hash = pi->nar_hash;
	ret->nar_size = pi->nar_size;
	ret->references = TAKE_PTR(pi->references);
	ret->deriver = TAKE_PTR(pi->deriver);
	ret->registration_time = (int64_t)pi->registration_time;
	ret->ultimate = pi->ultimate;
	ret->sigs = TAKE_PTR(pi->sigs);
	if (ret->sigs != NULL && ret->sigs[0] == NULL) {
		free(ret->sigs);
		ret->sigs = NULL;
	}
	ret->ca = TAKE_PTR(pi->ca);
	proto_reply_release(&rep);
	return 1;
}

static int strings_call(struct store *s, uint64_t op, const char *path, char ***ret,
			struct nib_error **err)
{
	struct proto_request req = { .op = op };
	struct proto_reply rep = { 0 };

	req.path = (char *)path;
	if (call(s, &req, &rep, err) < 0)
		return -1;
	*ret = rep.strings != NULL ? TAKE_PTR(rep.strings) : xcalloc(1, sizeof(char *));
	proto_reply_release(&rep);
	return 0;
}

static int remote_query_all_valid(struct store *s, char ***ret, struct nib_error **err)
{
	return strings_call(s, PROTO_OP_QUERY_ALL_VALID_PATHS, NULL, ret, err);
}

static int remote_query_referrers(struct store *s, const char *path, char ***ret,
				  struct nib_error **err)
{
	return strings_call(s, PROTO_OP_QUERY_REFERRERS, path, ret, err);
}

static int remote_query_valid_derivers(struct store *s, const char *path, char ***ret,
				       struct nib_error **err)
{
	return strings_call(s, PROTO_OP_QUERY_VALID_DERIVERS, path, ret, err);
}

static int remote_query_derivation_outputs(struct store *s, const char *drv_path, char ***ret_names,
					   char ***ret_paths, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP };
	struct proto_reply rep = { 0 };
	char **names, **paths;

	req.path = (char *)drv_path;
	if (call(s, &req, &rep, err) < 0)
		return -1;
	names = xcalloc(rep.pairs.n + 1, sizeof(char *));
	paths = xcalloc(rep.pairs.n + 1, sizeof(char *));
	for (size_t i = 0; i < rep.pairs.n; i++) {
		names[i] = TAKE_PTR(rep.pairs.pairs[i].first);
		paths[i] = TAKE_PTR(rep.pairs.pairs[i].second);
	}
	proto_reply_release(&rep);
	*ret_names = names;
	*ret_paths = paths;
	return 0;
}

static int remote_query_path_from_hash_part(struct store *s, const char *hash_part, char **ret_path,
					    struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_QUERY_PATH_FROM_HASH_PART };
	struct proto_reply rep = { 0 };
	int found;

	req.path = (char *)hash_part;
	if (call(s, &req, &rep, err) < 0)
		return -1;
	found = rep.string != NULL && rep.string[0] != '\0';
	if (found)
		*ret_path = TAKE_PTR(rep.string);
	proto_reply_release(&rep);
	return found;
}

/* Send AddToStore (>= 1.25 form) with the framed data produced by fn. */
static int add_ca(struct store *s, const char *name, const char *cam, char *const *refs,
		  int (*fn)(void *data, struct proto_conn *c, struct nib_error **err), void *data,
		  char **ret_path, struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);
	struct proto_request req = { .op = PROTO_OP_ADD_TO_STORE };
	struct proto_reply rep = { 0 };
	cleanup_strv char **norefs = xcalloc(1, sizeof(char *));

	if (check_usable(rs, err) < 0)
		return -1;
	if (proto_conn_version(rs->conn) < PROTO_VERSION(1, 25))
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "the daemon's protocol is too old for adding paths");
	req.add_to_store.name = (char *)name;
	req.add_to_store.cam = (char *)cam;
	req.add_to_store.refs = refs != NULL ? (char **)refs : norefs;
	if (proto_write_request(rs->conn, &req, err) < 0)
		return -1;
	if (fn(data, rs->conn, err) < 0) {
		/* The stream is now inconsistent: the store cannot be used further. */
		rs->broken = true;
		return -1;
	}
	proto_framed_end(rs->conn);
	if (finish(s, PROTO_OP_ADD_TO_STORE, &rep, err) < 0)
		return -1;
	*ret_path = TAKE_PTR(rep.path_info.info.path);
	proto_reply_release(&rep);
	return 0;
}

static int dump_path(void *data, struct proto_conn *c, struct nib_error **err)
{
	return nar_dump_at(AT_FDCWD, data, proto_framed_write, c, err);
}

static int remote_add_path(struct store *s, const char *src, const char *name, char **ret_path,
			   struct nib_error **err)
{
	cleanup_free char *base = NULL;

	if (name == NULL) {
		const char *slash = strrchr(src, '/');
		base = xstrdup(slash != NULL && slash[1] != '\0' ? slash + 1 : src);
		name = base;
	}
	return add_ca(s, name, "fixed:r:sha256", NULL, dump_path, (void *)src, ret_path, err);
}

struct text_data {
	const void *data;
	size_t len;
};

static int send_text(void *data, struct proto_conn *c, struct nib_error **err)
{
	struct text_data *t = data;
	const char *p = t->data;

	for (size_t off = 0; off < t->len;) {
		size_t n = t->len - off > 65536 ? 65536 : t->len - off;
		if (proto_framed_write(c, p + off, n, err) < 0)
			return -1;
		off += n;
	}
	return 0;
}

static int remote_add_text(struct store *s, const char *name, const void *data, size_t len,
			   char *const *refs, char **ret_path, struct nib_error **err)
{
	struct text_data t = { data, len };

	return add_ca(s, name, "text:sha256", refs, send_text, &t, ret_path, err);
}

static int remote_add_nar(struct store *s, const struct store_path_info *info, nar_source_fn src,
			  void *userdata, unsigned flags, struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);
	struct proto_request req = { .op = PROTO_OP_ADD_TO_STORE_NAR };
	struct proto_reply rep = { 0 };
	struct proto_path_info *pi = &req.add_to_store_nar.info;
	cleanup_strv char **none = xcalloc(1, sizeof(char *));
	cleanup_free char *buf = xmalloc(65536);

	if (check_usable(rs, err) < 0)
		return -1;
	if (proto_conn_version(rs->conn) < PROTO_VERSION(1, 23))
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "the daemon's protocol is too old for adding NARs");
	pi->path = info->path;
	pi->deriver = info->deriver;
	pi->nar_hash = info->nar_hash;
	pi->references = info->references != NULL ? info->references : none;
	pi->registration_time = info->registration_time > 0 ? (uint64_t)info->registration_time : 0;
	pi->nar_size = info->nar_size;
	pi->ultimate = info->ultimate;
	pi->sigs = info->sigs != NULL ? info->sigs : none;
	pi->ca = info->ca;
	req.add_to_store_nar.repair = (flags & STORE_ADD_REPAIR) != 0;
	req.add_to_store_nar.dont_check_sigs = true;
	if (proto_write_request(rs->conn, &req, err) < 0)
		return -1;
	for (;;) {
		ssize_t n = src(userdata, buf, 65536, err);
		if (n < 0) {
			rs->broken = true;
			return -1;
		}
		if (n == 0)
			break;
		if (proto_framed_write(rs->conn, buf, (size_t)n, err) < 0) {
			rs->broken = true;
			return -1;
		}
	}
	proto_framed_end(rs->conn);
	if (finish(s, PROTO_OP_ADD_TO_STORE_NAR, &rep, err) < 0)
		return -1;
	proto_reply_release(&rep);
	return 0;
}

static int remote_add_temp_root(struct store *s, const char *path, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_ADD_TEMP_ROOT, .path = (char *)path };

	return call_only(s, &req, err);
}

static int remote_add_indirect_root(struct store *s, const char *link, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_ADD_INDIRECT_ROOT, .path = (char *)link };

	return call_only(s, &req, err);
}

static int remote_find_roots(struct store *s, bool include_temp, struct store_root **ret,
			     size_t *ret_n, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_FIND_ROOTS };
	struct proto_reply rep = { 0 };
	struct store_root *roots;
	size_t k = 0;

	if (call(s, &req, &rep, err) < 0)
		return -1;
	roots = xcalloc(rep.pairs.n + 1, sizeof(*roots));
	for (size_t i = 0; i < rep.pairs.n; i++) {
		if (!include_temp && strncmp(rep.pairs.pairs[i].first, "{temp:", 6) == 0)
			continue;
		roots[k].link = TAKE_PTR(rep.pairs.pairs[i].first);
		roots[k].path = TAKE_PTR(rep.pairs.pairs[i].second);
		k++;
	}
	proto_reply_release(&rep);
	*ret = roots;
	*ret_n = k;
	return 0;
}

static int remote_collect_garbage(struct store *s, const struct store_gc_options *opts,
				  struct store_gc_result *ret, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_COLLECT_GARBAGE };
	struct proto_reply rep = { 0 };
	cleanup_strv char **none = xcalloc(1, sizeof(char *));
	struct store_gc_result res = { 0 };

	if (opts->paths != NULL)
		req.collect_garbage.action = PROTO_GC_DELETE_SPECIFIC;
	else if (opts->dry_run)
		req.collect_garbage.action = PROTO_GC_RETURN_DEAD;
	else
		req.collect_garbage.action = PROTO_GC_DELETE_DEAD;
	req.collect_garbage.paths_to_delete = opts->paths != NULL ? (char **)opts->paths : none;
	req.collect_garbage.max_freed = opts->max_freed == 0 ? UINT64_MAX : opts->max_freed;
	if (call(s, &req, &rep, err) < 0)
		return -1;
	for (size_t i = 0; rep.gc_result.paths != NULL && rep.gc_result.paths[i] != NULL; i++) {
		res.paths++;
		if (opts->on_path != NULL)
			opts->on_path(opts->userdata, rep.gc_result.paths[i], 0);
	}
	res.bytes = rep.gc_result.bytes_freed;
	proto_reply_release(&rep);
	*ret = res;
	return 0;
}

struct verify_relay {
	void (*fn)(void *userdata, const struct store_verify_problem *p);
	void *userdata;
	uint64_t n;
	uint64_t checked;
	uint64_t repaired;
};

static void verify_next(void *userdata, const char *msg, size_t len)
{
	struct verify_relay *vr = userdata;
	cleanup_free char *m = xstrndup(msg, len);
	cleanup_free char *path = NULL;
	cleanup_free char *kind = NULL;
	struct store_verify_problem p = { .kind = "daemon", .message = m };
	char *sep, *tab;

	while (len > 0 && m[len - 1] == '\n')
		m[--len] = '\0';
	if (strncmp(m, "warning: ", 9) == 0) {
		log_warning("%s", m + 9);
		return;
	}
	/* nib-daemon's closing line: "checked N paths". */
	if (strncmp(m, "checked ", 8) == 0 && len > 14 && STREQ(m + len - 6, " paths")) {
		cleanup_free char *num = xstrndup(m + 8, len - 14);
		uint64_t v;
		if (parse_u64(num, &v) == 0) {
			vr->checked = v;
			return;
		}
	}
	/* "<kind>: <message>[ (repaired)][\t<path>]" from nib-daemon; anything else as is. */
	tab = strchr(m, '\t');
	if (tab != NULL) {
		*tab = '\0';
		path = xstrdup(tab + 1);
		p.path = path;
	}
	sep = strstr(m, ": ");
	if (sep != NULL && (size_t)(sep - m) < 32 && memchr(m, ' ', (size_t)(sep - m)) == NULL) {
		kind = xstrndup(m, (size_t)(sep - m));
		p.kind = kind;
		p.message = sep + 2;
	}
	{
		size_t ml = strlen(p.message);
		if (ml > 11 && STREQ(p.message + ml - 11, " (repaired)")) {
			((char *)p.message)[ml - 11] = '\0';
			p.repaired = true;
		}
	}
	vr->n++;
	vr->repaired += p.repaired;
	if (vr->fn != NULL)
		vr->fn(vr->userdata, &p);
}

static int remote_verify(struct store *s, unsigned flags,
			 void (*fn)(void *userdata, const struct store_verify_problem *p),
			 void *userdata, struct store_verify_result *ret, struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);
	struct proto_request req = { .op = PROTO_OP_VERIFY_STORE };
	struct proto_reply rep = { 0 };
	struct verify_relay vr = { fn, userdata, 0, 0, 0 };
	struct proto_log_handlers saved = rs->h;
	struct store_verify_result res = { 0 };
	int r;

	req.verify_store.check_contents = (flags & STORE_VERIFY_CONTENTS) != 0;
	req.verify_store.repair = (flags & STORE_VERIFY_REPAIR) != 0;
	rs->h.next = verify_next;
	rs->h.userdata = &vr;
	r = call(s, &req, &rep, err);
	rs->h = saved;
	if (r < 0)
		return -1;
	res.problems = vr.n;
	res.checked = vr.checked;
	res.repaired = vr.repaired;
	proto_reply_release(&rep);
	*ret = res;
	return 0;
}

/* Settings that choose the store and the daemon: the client's own business. */
static bool is_location_setting(const char *name)
{
	static const char *const names[] = { "store-dir", "store-root", "state-dir", "log-dir",
					     "daemon-socket" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (STREQ(name, names[i]))
			return true;
	return false;
}

static int cmp_pair_key(const void *a, const void *b)
{
	return strcmp(((const struct proto_pair *)a)->first, ((const struct proto_pair *)b)->first);
}

/* SetOptions with neutral fixed fields (nib's built-in defaults) and the given overrides. */
static int send_options(struct store *s, uint64_t verbosity, bool keep_going,
			struct proto_pair *overrides, size_t n, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_SET_OPTIONS };
	struct proto_client_settings *cs = &req.set_options;

	cs->keep_going = keep_going;
	cs->verbosity = verbosity;
	cs->max_build_jobs = 1;
	cs->use_build_hook = 1;
	cs->build_verbosity = PROTO_LVL_ERROR; /* "verbose build": nib shows build logs */
	cs->overrides = overrides;
	cs->n_overrides = n;
	if (call_only(s, &req, err) < 0)
		return nib_error_prefix(err, "sending settings to the daemon");
	REMOTE(s)->verbosity = verbosity;
	return 0;
}

int remote_store_set_options(struct store *s, const struct settings *settings, uint64_t verbosity,
			     struct nib_error **err)
{
	size_t n_desc, n = 0;
	const struct setting_desc *table = settings_table(&n_desc);
	struct proto_pair *ov = xcalloc(n_desc + 1, sizeof(*ov));
	int r = 0;

	/* Settings go as a sorted map: the table is in documentation order. */
	for (size_t i = 0; i < n_desc; i++) {
		enum setting_origin o = settings->origins[i];
		if ((o != ORIGIN_CMDLINE && o != ORIGIN_INLINE) ||
		    is_location_setting(table[i].name))
			continue;
		ov[n].first = xstrdup(table[i].name);
		ov[n].second = settings_value_string(settings, &table[i]);
		n++;
	}
	sort_array(ov, n, sizeof(*ov), cmp_pair_key);
	if (n > 0 || verbosity != PROTO_LVL_INFO)
		r = send_options(s, verbosity, false, ov, n, err);
	proto_pairs_free(ov, n);
	return r;
}

static const struct store_ops remote_ops = {
	.name = "daemon",
	.close = remote_close,
	.query_valid = remote_query_valid,
	.query_path_info = remote_query_path_info,
	.query_all_valid = remote_query_all_valid,
	.query_referrers = remote_query_referrers,
	.query_valid_derivers = remote_query_valid_derivers,
	.query_derivation_outputs = remote_query_derivation_outputs,
	.query_path_from_hash_part = remote_query_path_from_hash_part,
	.add_path = remote_add_path,
	.add_text = remote_add_text,
	.add_nar = remote_add_nar,
	.add_temp_root = remote_add_temp_root,
	.add_indirect_root = remote_add_indirect_root,
	.find_roots = remote_find_roots,
	.collect_garbage = remote_collect_garbage,
	.verify = remote_verify,
};

bool store_is_remote(const struct store *store)
{
	return store != NULL && store->ops == &remote_ops;
}

struct proto_conn *remote_store_conn(struct store *store)
{
	return REMOTE(store)->conn;
}

void remote_store_set_log_handlers(struct store *store, const struct proto_log_handlers *h)
{
	REMOTE(store)->h = h != NULL ? *h : default_handlers;
}

int remote_store_open_fd(const struct settings *settings, int in_fd, int out_fd, struct store **ret,
			 struct nib_error **err)
{
	cleanup_proto_conn struct proto_conn *conn = proto_conn_new_fd(in_fd, out_fd, true);
	struct remote_store *rs;

	if (proto_client_handshake(conn, PROTO_VERSION_MAX, &default_handlers, NULL, err) < 0)
		return -1;
	rs = xcalloc(1, sizeof(*rs));
	rs->base.ops = &remote_ops;
	rs->base.store_dir = xstrdup(settings->store_dir);
	rs->conn = TAKE_PTR(conn);
	rs->h = default_handlers;
	rs->verbosity = PROTO_LVL_INFO;
	*ret = &rs->base;
	return 0;
}

int remote_store_open(const struct settings *settings, const char *socket_path, struct store **ret,
		      struct nib_error **err)
{
	cleanup_free char *def = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (socket_path == NULL) {
		def = settings_daemon_socket_path(settings);
		socket_path = def;
	}
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return nib_error_set(err, NIB_E_INVALID, 0, "socket path '%s' is too long",
				     socket_path);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nib_error_errno(err, "cannot create a socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return nib_error_errno(err, "cannot connect to the nib daemon at '%s'",
				       socket_path);
	if (remote_store_open_fd(settings, fd, fd, ret, err) < 0) {
		TAKE_FD(fd); /* closed with the connection */
		return nib_error_prefix(err, "nib daemon at '%s'", socket_path);
	}
	TAKE_FD(fd);
	return 0;
}

/* ---- builds through the daemon ---- */

struct rbuild_act {
	uint64_t id;
	char *drv_path;
	char *name;
	bool stopped;
};

struct rbuild {
	const struct build_callbacks *cb;
	struct rbuild_act *acts;
	size_t n_acts;
	uint64_t builds_act;
};

static char *drv_name_of(const char *drv_path)
{
	const char *base = strrchr(drv_path, '/');
	const char *dash;
	size_t len;

	base = base != NULL ? base + 1 : drv_path;
	dash = strchr(base, '-');
	base = dash != NULL ? dash + 1 : base;
	len = strlen(base);
	if (len > 4 && ends_with(base, ".drv"))
		len -= 4;
	return xstrndup(base, len);
}

static void rb_start(void *userdata, const struct proto_activity *act)
{
	struct rbuild *rb = userdata;

	if (act->type == PROTO_ACT_BUILDS && rb->builds_act == 0)
		rb->builds_act = act->id;
	if (act->type != PROTO_ACT_BUILD || act->n_fields < 1 ||
	    act->fields[0].type != PROTO_FIELD_STRING)
		return;
	rb->acts = xreallocarray(rb->acts, rb->n_acts + 1, sizeof(*rb->acts));
	rb->acts[rb->n_acts].id = act->id;
	rb->acts[rb->n_acts].drv_path = xstrdup(act->fields[0].s);
	rb->acts[rb->n_acts].name = drv_name_of(act->fields[0].s);
	rb->acts[rb->n_acts].stopped = false;
	rb->n_acts++;
}

static void rb_stop(void *userdata, uint64_t id)
{
	struct rbuild *rb = userdata;

	for (size_t i = 0; i < rb->n_acts; i++)
		if (rb->acts[i].id == id)
			rb->acts[i].stopped = true;
}

static void rb_next(void *userdata, const char *msg, size_t len)
{
	struct rbuild *rb = userdata;
	cleanup_free char *m = NULL;

	while (len > 0 && msg[len - 1] == '\n')
		len--;
	m = xstrndup(msg, len);
	if (rb->cb != NULL && rb->cb->message != NULL)
		rb->cb->message(rb->cb->userdata, NULL, m);
}

static void rb_result(void *userdata, uint64_t id, uint64_t type, const struct proto_field *fields,
		      size_t n_fields)
{
	struct rbuild *rb = userdata;

	if (rb->cb == NULL)
		return;
	if (type == PROTO_RES_BUILD_LOG_LINE && n_fields >= 1 &&
	    fields[0].type == PROTO_FIELD_STRING && rb->cb->log_line != NULL) {
		for (size_t i = 0; i < rb->n_acts; i++)
			if (rb->acts[i].id == id)
				rb->cb->log_line(rb->cb->userdata, rb->acts[i].drv_path,
						 rb->acts[i].name, fields[0].s, fields[0].len);
	} else if (type == PROTO_RES_PROGRESS && n_fields >= 4 && rb->cb->progress != NULL) {
		/* What runs: the build activities started and not stopped, in start order. */
		cleanup_free const char **names = xcalloc(rb->n_acts + 1, sizeof(char *));
		cleanup_free const char **drvs = xcalloc(rb->n_acts + 1, sizeof(char *));
		size_t k = 0;
		struct build_progress p = { .done = fields[0].i,
					    .total = fields[1].i,
					    .running = fields[2].i,
					    .failed = fields[3].i,
					    .running_names = names,
					    .running_drv_paths = drvs };

		for (size_t i = 0; i < rb->n_acts; i++)
			if (!rb->acts[i].stopped) {
				names[k] = rb->acts[i].name;
				drvs[k++] = rb->acts[i].drv_path;
			}
		p.waiting = p.total > p.done + p.running + p.failed
				    ? p.total - p.done - p.running - p.failed
				    : 0;
		rb->cb->progress(rb->cb->userdata, &p);
	}
}

static enum build_status status_from_proto(uint64_t s)
{
	switch (s) {
	case PROTO_BUILD_BUILT:
		return BUILD_BUILT;
	case PROTO_BUILD_ALREADY_VALID:
	case PROTO_BUILD_SUBSTITUTED:
		return BUILD_VALID;
	case PROTO_BUILD_TIMED_OUT:
		return BUILD_TIMED_OUT;
	case PROTO_BUILD_LOG_LIMIT_EXCEEDED:
		return BUILD_LOG_LIMIT;
	case PROTO_BUILD_OUTPUT_REJECTED:
		return BUILD_HASH_MISMATCH;
	case PROTO_BUILD_DEPENDENCY_FAILED:
		return BUILD_DEP_FAILED;
	case PROTO_BUILD_NOT_DETERMINISTIC:
		return BUILD_NOT_DETERMINISTIC;
	default:
		return BUILD_FAILED;
	}
}

int remote_store_build(struct store *s, char *const *drv_paths, size_t n,
		       const struct build_options *opts, const struct build_callbacks *cb,
		       struct nib_error **err)
{
	struct remote_store *rs = REMOTE(s);
	struct proto_request req = { .op = PROTO_OP_BUILD_PATHS_WITH_RESULTS };
	struct proto_reply rep = { 0 };
	struct proto_error *derr = NULL;
	struct rbuild rb = { .cb = cb };
	struct proto_log_handlers h = {
		.userdata = &rb,
		.next = rb_next,
		.start_activity = rb_start,
		.stop_activity = rb_stop,
		.result = rb_result,
	};
	struct proto_derived_path *dps = xcalloc(n + 1, sizeof(*dps));
	size_t failed = 0;
	int r;

	if (check_usable(rs, err) < 0 || (opts != NULL && opts->keep_going &&
					  send_options(s, rs->verbosity, true, NULL, 0, err) < 0)) {
		free(dps);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		dps[i].path = drv_paths[i];
		dps[i].built = true;
		dps[i].all_outputs = true;
	}
	req.build_paths.paths = dps;
	req.build_paths.n_paths = n;
	req.build_paths.mode =
		opts != NULL && opts->check ? PROTO_BUILD_MODE_CHECK : PROTO_BUILD_MODE_NORMAL;
	r = proto_client_call(rs->conn, &req, &h, &rep, &derr, err);
	free(dps);
	for (size_t i = 0; i < rb.n_acts; i++) {
		free(rb.acts[i].drv_path);
		free(rb.acts[i].name);
	}
	free(rb.acts);
	if (remote_store_check(s, r, derr, err) < 0)
		return -1;
	for (size_t i = 0; i < rep.keyed_build_results.n; i++) {
		struct proto_keyed_build_result *kr = &rep.keyed_build_results.results[i];
		cleanup_strv char **names = NULL;
		cleanup_strv char **paths = NULL;
		cleanup_free char *name = drv_name_of(kr->path.path);
		struct build_result br = {
			.drv_path = kr->path.path,
			.name = name,
			.status = status_from_proto(kr->result.status),
			.cpu_user_usec = kr->result.has_cpu_user ? kr->result.cpu_user_usec : -1,
			.cpu_system_usec =
				kr->result.has_cpu_system ? kr->result.cpu_system_usec : -1,
			.peak_memory = -1,
			.wait_status = -1,
			.slot = -1,
			.uid_start = -1,
			.sandboxed = -1
		};
		cleanup_error struct nib_error *e = NULL;

		if (br.status != BUILD_VALID && br.status != BUILD_BUILT) {
			failed++;
			br.error = kr->result.error_msg != NULL && kr->result.error_msg[0]
					   ? kr->result.error_msg
					   : "build failed";
		} else if (store_query_derivation_outputs(s, kr->path.path, &names, &paths, &e) ==
			   0) {
			br.n_outputs = strv_length(names);
			br.output_names = names;
			br.output_paths = paths;
		}
		br.start_usec = (int64_t)kr->result.start_time * 1000000;
		br.stop_usec = (int64_t)kr->result.stop_time * 1000000;
		if (cb != NULL && cb->result != NULL)
			cb->result(cb->userdata, &br);
		if (failed == 1 && br.error != NULL && n == 1)
			nib_error_set(err, NIB_E_BUILD_FAILED, 0, "%s", br.error);
	}
	proto_reply_release(&rep);
	if (failed > 0) {
		if (*err == NULL)
			nib_error_set(err, NIB_E_BUILD_FAILED, 0, "%zu derivations failed", failed);
		return -1;
	}
	return 0;
}

int remote_store_build_derivation(struct store *s, const char *drv_path,
				  const struct derivation *drv, uint64_t mode,
				  struct proto_build_result *ret, struct nib_error **err)
{
	struct proto_request req = { .op = PROTO_OP_BUILD_DERIVATION };
	struct proto_basic_derivation *b = &req.build_derivation.drv;
	struct proto_reply rep = { 0 };
	int r;

	if (drv->n_inputs > 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation '%s' has input derivations: resolve them first",
				     drv_path);
	req.build_derivation.drv_path = (char *)drv_path;
	req.build_derivation.mode = mode;
	b->n_outputs = drv->n_outputs;
	b->outputs = xcalloc(drv->n_outputs + 1, sizeof(*b->outputs));
	for (size_t i = 0; i < drv->n_outputs; i++) {
		const struct drv_output *o = &drv->outputs[i];
		bool ca = o->kind == DRV_OUT_CA_FIXED || o->kind == DRV_OUT_CA_FLOATING ||
			  o->kind == DRV_OUT_IMPURE;

		b->outputs[i].name = xstrdup(o->name);
		b->outputs[i].path = xstrdup(o->path != NULL ? o->path : "");
		b->outputs[i].hash_algo = ca ? xasprintf("%s%s", drv_ca_method_prefix(o->method),
							 hash_algo_name(o->hash.algo))
					     : xstrdup("");
		b->outputs[i].hash = o->kind == DRV_OUT_CA_FIXED
					     ? hash_to_string(&o->hash, HASH_ENC_BASE16, false)
					     : xstrdup("");
	}
	b->input_srcs = strv_copy(drv->srcs);
	b->platform = xstrdup(drv->system);
	b->builder = xstrdup(drv->builder);
	b->args = strv_copy(drv->args);
	b->n_env = drv->n_env;
	b->env = xcalloc(drv->n_env + 1, sizeof(*b->env));
	for (size_t i = 0; i < drv->n_env; i++) {
		b->env[i].first = xstrdup(drv->env[i].key);
		b->env[i].second = xstrdup(drv->env[i].value);
	}
	r = call(s, &req, &rep, err);
	proto_basic_derivation_release(b);
	if (r < 0)
		return -1;
	*ret = rep.build_result;
	memset(&rep.build_result, 0, sizeof(rep.build_result));
	proto_reply_release(&rep);
	return 0;
}

/*
 * protocol.c - the Nix worker protocol (see protocol.h for the contract).
 *
 * Layout: the connection and its buffers; primitives; framed/raw/tunnel
 * sources; log frames; handshake; messages; requests; replies.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "cleanup.h"
#include "protocol.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

#define IO_BUF_SIZE ((size_t)64 << 10)
/* Strings are read in pieces of at most this size, so that a bogus length does not allocate. */
#define STRING_CHUNK ((size_t)1 << 20)

enum conn_kind {
	CONN_FD,
	CONN_MEM,
	CONN_STREAM,
};

struct proto_conn {
	enum conn_kind kind;
	int in_fd;
	int out_fd;
	bool own_fds;
	bool out_not_socket; /* send() said ENOTSOCK: use write() */
	nar_source_fn src;
	void *src_data;
	nar_sink_fn sink;
	void *sink_data;

	unsigned version;
	bool hello_sent; /* daemon side: proto_server_hello() done */
	struct proto_limits limits;

	/* Input window: in[in_pos..in_len) is buffered and not consumed yet. */
	const unsigned char *in;
	size_t in_pos;
	size_t in_len;
	unsigned char *rbuf;
	bool in_eof;
	uint64_t bytes_read;
	uint64_t msg_start;

	/* Output: wbuf[0..wlen) not yet handed to the fd or sink (memory: everything). */
	unsigned char *wbuf;
	size_t wlen;
	size_t wcap;
	uint64_t bytes_written;
	struct nib_error *write_err; /* sticky */
};

static void limits_fill(struct proto_limits *l)
{
	if (l->max_string == 0)
		l->max_string = PROTO_DEFAULT_MAX_STRING;
	if (l->max_list == 0)
		l->max_list = PROTO_DEFAULT_MAX_LIST;
	if (l->max_message == 0)
		l->max_message = PROTO_DEFAULT_MAX_MESSAGE;
}

static struct proto_conn *conn_alloc(enum conn_kind kind)
{
	struct proto_conn *c = xcalloc(1, sizeof(*c));

	c->kind = kind;
	c->in_fd = -1;
	c->out_fd = -1;
	limits_fill(&c->limits);
	return c;
}

struct proto_conn *proto_conn_new_fd(int in_fd, int out_fd, bool own_fds)
{
	struct proto_conn *c = conn_alloc(CONN_FD);

	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->own_fds = own_fds;
	c->rbuf = xmalloc(IO_BUF_SIZE);
	c->in = c->rbuf;
	c->wcap = IO_BUF_SIZE;
	c->wbuf = xmalloc(c->wcap);
	return c;
}

struct proto_conn *proto_conn_new_mem(const void *in, size_t len)
{
	struct proto_conn *c = conn_alloc(CONN_MEM);

	c->in = in;
	c->in_len = len;
	c->in_eof = true;
	return c;
}

struct proto_conn *proto_conn_new_stream(nar_source_fn src, void *src_data, nar_sink_fn sink,
					 void *sink_data)
{
	struct proto_conn *c = conn_alloc(CONN_STREAM);

	c->src = src;
	c->src_data = src_data;
	c->sink = sink;
	c->sink_data = sink_data;
	c->rbuf = xmalloc(IO_BUF_SIZE);
	c->in = c->rbuf;
	c->in_eof = src == NULL;
	c->wcap = IO_BUF_SIZE;
	c->wbuf = xmalloc(c->wcap);
	return c;
}

void proto_conn_free(struct proto_conn *c)
{
	if (c == NULL)
		return;
	if (c->own_fds) {
		if (c->in_fd >= 0)
			close(c->in_fd);
		if (c->out_fd >= 0 && c->out_fd != c->in_fd)
			close(c->out_fd);
	}
	free(c->rbuf);
	free(c->wbuf);
	nib_error_free(c->write_err);
	free(c);
}

unsigned proto_conn_version(const struct proto_conn *c)
{
	return c->version;
}

void proto_conn_set_version(struct proto_conn *c, unsigned version)
{
	c->version = version;
}

void proto_conn_set_limits(struct proto_conn *c, const struct proto_limits *limits)
{
	c->limits = *limits;
	limits_fill(&c->limits);
}

int proto_conn_fd(const struct proto_conn *c)
{
	return c->kind == CONN_FD ? c->in_fd : -1;
}

uint64_t proto_conn_bytes_read(const struct proto_conn *c)
{
	return c->bytes_read;
}

uint64_t proto_conn_bytes_written(const struct proto_conn *c)
{
	return c->bytes_written;
}

const unsigned char *proto_conn_output(struct proto_conn *c, size_t *ret_len)
{
	*ret_len = c->wlen;
	return c->wbuf;
}

size_t proto_conn_input_left(const struct proto_conn *c)
{
	return c->in_len - c->in_pos;
}

void proto_begin_message(struct proto_conn *c)
{
	c->msg_start = c->bytes_read;
}

static void out_emit(struct proto_conn *c, const void *data, size_t n);

/* ---- input ----------------------------------------------------------------------------------- */

/* Make at least one byte available.  0: data, 1: end of input, -1: error. */
static int in_fill(struct proto_conn *c, struct nib_error **err)
{
	ssize_t n;

	if (c->in_pos < c->in_len)
		return 0;
	if (c->in_eof)
		return 1;
	c->in_pos = c->in_len = 0;
	if (c->kind == CONN_FD) {
		/*
		 * Never block on the peer while our own words are still in the
		 * buffer: both sides would wait forever.  Write errors stay sticky.
		 */
		if (c->wlen > 0) {
			out_emit(c, c->wbuf, c->wlen);
			c->wlen = 0;
		}
		do
			n = read(c->in_fd, c->rbuf, IO_BUF_SIZE);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return nib_error_errno(err, "cannot read from the peer");
	} else {
		n = c->src(c->src_data, c->rbuf, IO_BUF_SIZE, err);
		if (n < 0)
			return -1;
	}
	if (n == 0) {
		c->in_eof = true;
		return 1;
	}
	c->in_len = (size_t)n;
	return 0;
}

static int in_read(struct proto_conn *c, void *buf, size_t n, struct nib_error **err)
{
	unsigned char *p = buf;

	while (n > 0) {
		size_t avail;
		int r = in_fill(c, err);

		if (r < 0)
			return -1;
		if (r > 0)
			return nib_error_set(err, NIB_E_PROTOCOL, 0,
					     "unexpected end of input from the peer");
		avail = c->in_len - c->in_pos;
		if (avail > n)
			avail = n;
		memcpy(p, c->in + c->in_pos, avail);
		c->in_pos += avail;
		c->bytes_read += avail;
		p += avail;
		n -= avail;
	}
	return 0;
}

int proto_at_eof(struct proto_conn *c, struct nib_error **err)
{
	int r = in_fill(c, err);

	return r < 0 ? -1 : r;
}

/* ---- output ---------------------------------------------------------------------------------- */

static void out_fail(struct proto_conn *c, struct nib_error **e)
{
	if (c->write_err == NULL)
		c->write_err = TAKE_PTR(*e);
	nib_error_clear(e);
}

/*
 * Write to the output fd.  Sockets get send(MSG_NOSIGNAL): a peer that hung
 * up must be an EPIPE error here, not a SIGPIPE that kills the daemon.
 */
static int fd_write_all(struct proto_conn *c, const unsigned char *p, size_t n,
			struct nib_error **err)
{
	while (n > 0) {
		ssize_t w;

		if (!c->out_not_socket) {
			w = send(c->out_fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == ENOTSOCK) {
				c->out_not_socket = true;
				continue;
			}
		} else {
			w = write(c->out_fd, p, n);
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "cannot write to the peer");
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Hand n bytes to the fd or the sink. */
static void out_emit(struct proto_conn *c, const void *data, size_t n)
{
	cleanup_error struct nib_error *e = NULL;

	if (n == 0 || c->write_err != NULL)
		return;
	if (c->kind == CONN_FD) {
		if (fd_write_all(c, data, n, &e) < 0)
			out_fail(c, &e);
	} else if (c->sink == NULL) {
		nib_error_set(&e, NIB_E_PROTOCOL, 0, "this connection cannot be written to");
		out_fail(c, &e);
	} else if (c->sink(c->sink_data, data, n, &e) < 0) {
		out_fail(c, &e);
	}
}

static void out_put(struct proto_conn *c, const void *data, size_t n)
{
	if (n == 0)
		return;
	c->bytes_written += n;
	if (c->kind == CONN_MEM) {
		if (c->wlen + n > c->wcap) {
			size_t cap = c->wcap ? c->wcap : 256;
			while (cap < c->wlen + n)
				cap *= 2;
			c->wbuf = xrealloc(c->wbuf, cap);
			c->wcap = cap;
		}
		memcpy(c->wbuf + c->wlen, data, n);
		c->wlen += n;
		return;
	}
	if (c->write_err != NULL)
		return;
	if (c->wlen + n > c->wcap) {
		out_emit(c, c->wbuf, c->wlen);
		c->wlen = 0;
	}
	if (n >= c->wcap) {
		out_emit(c, data, n);
		return;
	}
	memcpy(c->wbuf + c->wlen, data, n);
	c->wlen += n;
}

/* Report the remembered write error (again): same code, message and errno. */
static int sticky_error(struct proto_conn *c, struct nib_error **err)
{
	nib_error_set(err, c->write_err->code, 0, "%s", c->write_err->msg);
	if (err != NULL && *err != NULL)
		(*err)->sys_errno = c->write_err->sys_errno;
	return -1;
}

int proto_flush(struct proto_conn *c, struct nib_error **err)
{
	if (c->kind != CONN_MEM && c->wlen > 0) {
		out_emit(c, c->wbuf, c->wlen);
		c->wlen = 0;
	}
	if (c->write_err != NULL)
		return sticky_error(c, err);
	return 0;
}

/* ---- primitives ------------------------------------------------------------------------------ */

static const unsigned char zeros[8];

int proto_read_u64(struct proto_conn *c, uint64_t *ret, struct nib_error **err)
{
	unsigned char b[8];
	uint64_t v = 0;

	if (in_read(c, b, 8, err) < 0)
		return -1;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	*ret = v;
	return 0;
}

int proto_read_u64_max(struct proto_conn *c, uint64_t max, const char *what, uint64_t *ret,
		       struct nib_error **err)
{
	uint64_t v = 0;

	if (proto_read_u64(c, &v, err) < 0)
		return -1;
	if (v > max)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "invalid %s %" PRIu64 " (at most %" PRIu64 ")", what, v, max);
	*ret = v;
	return 0;
}

int proto_read_bool(struct proto_conn *c, bool *ret, struct nib_error **err)
{
	uint64_t v = 0;

	if (proto_read_u64(c, &v, err) < 0)
		return -1;
	*ret = v != 0;
	return 0;
}

int proto_read_raw(struct proto_conn *c, void *buf, size_t n, struct nib_error **err)
{
	return in_read(c, buf, n, err);
}

static int check_padding(struct proto_conn *c, uint64_t len, struct nib_error **err)
{
	unsigned char pad[8];
	size_t n = (8 - len % 8) % 8;

	if (in_read(c, pad, n, err) < 0)
		return -1;
	if (memcmp(pad, zeros, n) != 0)
		return nib_error_set(err, NIB_E_PROTOCOL, 0, "non-zero padding after a string");
	return 0;
}

int proto_read_bytes(struct proto_conn *c, char **ret, size_t *ret_len, struct nib_error **err)
{
	uint64_t len = 0;
	size_t have = 0, cap;
	cleanup_free char *buf = NULL;

	if (proto_read_u64(c, &len, err) < 0)
		return -1;
	if (len > c->limits.max_string)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "string of %" PRIu64 " bytes exceeds the limit of %zu bytes",
				     len, c->limits.max_string);
	if (c->bytes_read - c->msg_start + len > c->limits.max_message)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "message exceeds the limit of %" PRIu64 " bytes",
				     c->limits.max_message);
	/*
	 * Grow as the bytes arrive: a peer claiming a huge length must send
	 * the bytes before we allocate for them.
	 */
	cap = len < STRING_CHUNK ? (size_t)len : STRING_CHUNK;
	buf = xmalloc(cap + 1);
	while (have < len) {
		size_t n = len - have;
		if (n > STRING_CHUNK)
			n = STRING_CHUNK;
		if (have + n > cap) {
			cap = have + n;
			buf = xrealloc(buf, cap + 1);
		}
		if (in_read(c, buf + have, n, err) < 0)
			return -1;
		have += n;
	}
	buf[len] = '\0';
	if (check_padding(c, len, err) < 0)
		return -1;
	if (ret_len != NULL)
		*ret_len = (size_t)len;
	*ret = TAKE_PTR(buf);
	return 0;
}

int proto_read_string(struct proto_conn *c, char **ret, struct nib_error **err)
{
	cleanup_free char *s = NULL;
	size_t len;

	if (proto_read_bytes(c, &s, &len, err) < 0)
		return -1;
	if (memchr(s, '\0', len) != NULL)
		return nib_error_set(err, NIB_E_PROTOCOL, 0, "unexpected NUL byte in a string");
	*ret = TAKE_PTR(s);
	return 0;
}

int proto_read_string_opt(struct proto_conn *c, char **ret, struct nib_error **err)
{
	cleanup_free char *s = NULL;

	if (proto_read_string(c, &s, err) < 0)
		return -1;
	if (s[0] == '\0')
		*ret = NULL;
	else
		*ret = TAKE_PTR(s);
	return 0;
}

/*
 * Free-form text (error messages, activity descriptions): any bytes are
 * accepted, NULs become '?' so that the result is a usable C string.
 */
static int read_text(struct proto_conn *c, char **ret, struct nib_error **err)
{
	char *s;
	size_t len;

	if (proto_read_bytes(c, &s, &len, err) < 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\0')
			s[i] = '?';
	*ret = s;
	return 0;
}

static int read_count(struct proto_conn *c, const char *what, uint64_t *ret, struct nib_error **err)
{
	uint64_t n = 0;

	if (proto_read_u64(c, &n, err) < 0)
		return -1;
	if (n > c->limits.max_list)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "%s of %" PRIu64 " items exceeds the limit of %zu", what, n,
				     c->limits.max_list);
	*ret = n;
	return 0;
}

int proto_read_strings(struct proto_conn *c, char ***ret, struct nib_error **err)
{
	uint64_t n = 0;
	size_t alloc = 0;
	cleanup_strv char **v = NULL;

	if (read_count(c, "list", &n, err) < 0)
		return -1;
	v = xcalloc(1, sizeof(*v));
	alloc = 1;
	for (uint64_t i = 0; i < n; i++) {
		char *s;
		if (proto_read_string(c, &s, err) < 0)
			return -1;
		ALLOC_GROW(v, i + 2, alloc);
		v[i] = s;
		v[i + 1] = NULL;
	}
	*ret = TAKE_PTR(v);
	return 0;
}

void proto_write_u64(struct proto_conn *c, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	out_put(c, b, 8);
}

void proto_write_bool(struct proto_conn *c, bool v)
{
	proto_write_u64(c, v ? 1 : 0);
}

void proto_write_raw(struct proto_conn *c, const void *data, size_t len)
{
	out_put(c, data, len);
}

void proto_write_bytes(struct proto_conn *c, const void *data, size_t len)
{
	proto_write_u64(c, len);
	out_put(c, data, len);
	out_put(c, zeros, (8 - len % 8) % 8);
}

void proto_write_string(struct proto_conn *c, const char *s)
{
	if (s == NULL)
		s = "";
	proto_write_bytes(c, s, strlen(s));
}

void proto_write_strings(struct proto_conn *c, char *const *v)
{
	size_t n = v == NULL ? 0 : strv_length(v);

	proto_write_u64(c, n);
	for (size_t i = 0; i < n; i++)
		proto_write_string(c, v[i]);
}

void proto_pairs_free(struct proto_pair *pairs, size_t n)
{
	if (pairs == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].first);
		free(pairs[i].second);
	}
	free(pairs);
}

int proto_read_pairs(struct proto_conn *c, bool sorted, struct proto_pair **ret, size_t *ret_n,
		     struct nib_error **err)
{
	uint64_t n = 0;
	size_t alloc = 0;
	struct proto_pair *v = NULL;

	if (read_count(c, "map", &n, err) < 0)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct proto_pair p = { NULL, NULL };
		if (proto_read_string(c, &p.first, err) < 0 ||
		    proto_read_string(c, &p.second, err) < 0) {
			free(p.first);
			proto_pairs_free(v, (size_t)i);
			return -1;
		}
		if (sorted && i > 0 && strcmp(v[i - 1].first, p.first) >= 0) {
			nib_error_set(err, NIB_E_PROTOCOL, 0,
				      "map key '%s' is out of order or repeated", p.first);
			free(p.first);
			free(p.second);
			proto_pairs_free(v, (size_t)i);
			return -1;
		}
		ALLOC_GROW(v, i + 1, alloc);
		v[i] = p;
	}
	*ret = v;
	*ret_n = (size_t)n;
	return 0;
}

void proto_write_pairs(struct proto_conn *c, const struct proto_pair *pairs, size_t n)
{
	proto_write_u64(c, n);
	for (size_t i = 0; i < n; i++) {
		proto_write_string(c, pairs[i].first);
		proto_write_string(c, pairs[i].second);
	}
}

/* ---- framed, raw and tunnelled data ------------------------------------------------------------ */

void proto_framed_source_init(struct proto_framed_source *src, struct proto_conn *c,
			      uint64_t max_total)
{
	memset(src, 0, sizeof(*src));
	src->conn = c;
	src->max_total = max_total;
}

ssize_t proto_framed_read(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	struct proto_framed_source *src = userdata;
	size_t n;

	if (src->eof || len == 0)
		return 0;
	if (src->chunk_left == 0) {
		uint64_t next;
		if (proto_read_u64(src->conn, &next, err) < 0)
			return nib_error_prefix(err, "reading framed data");
		if (next == 0) {
			src->eof = true;
			return 0;
		}
		if (src->max_total > 0 && next > src->max_total - src->total)
			return nib_error_set(err, NIB_E_PROTOCOL, 0,
					     "framed data exceeds the limit of %" PRIu64 " bytes",
					     src->max_total);
		src->chunk_left = next;
	}
	n = len;
	if (n > src->chunk_left)
		n = (size_t)src->chunk_left;
	if (n > (size_t)SSIZE_MAX)
		n = (size_t)SSIZE_MAX;
	if (in_read(src->conn, buf, n, err) < 0)
		return nib_error_prefix(err, "reading framed data");
	src->chunk_left -= n;
	src->total += n;
	return (ssize_t)n;
}

int proto_framed_drain(struct proto_framed_source *src, struct nib_error **err)
{
	unsigned char buf[4096];

	for (;;) {
		ssize_t n = proto_framed_read(src, buf, sizeof(buf), err);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
	}
}

int proto_framed_write(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct proto_conn *c = userdata;

	if (len == 0)
		return 0;
	proto_write_u64(c, len);
	proto_write_raw(c, data, len);
	return c->write_err != NULL ? sticky_error(c, err) : 0;
}

int proto_raw_write(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct proto_conn *c = userdata;

	proto_write_raw(c, data, len);
	return c->write_err != NULL ? sticky_error(c, err) : 0;
}

void proto_framed_end(struct proto_conn *c)
{
	proto_write_u64(c, 0);
}

ssize_t proto_raw_read(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	struct proto_conn *c = userdata;
	size_t n;
	int r;

	if (len == 0)
		return 0;
	r = in_fill(c, err);
	if (r < 0)
		return -1;
	if (r > 0)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "unexpected end of input from the peer");
	n = c->in_len - c->in_pos;
	if (n > len)
		n = len;
	if (n > (size_t)SSIZE_MAX)
		n = (size_t)SSIZE_MAX;
	memcpy(buf, c->in + c->in_pos, n);
	c->in_pos += n;
	c->bytes_read += n;
	return (ssize_t)n;
}

ssize_t proto_tunnel_read(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	struct proto_conn *c = userdata;
	cleanup_free char *s = NULL;
	size_t n;

	if (len == 0)
		return 0;
	if (len > c->limits.max_string)
		len = c->limits.max_string;
	proto_write_u64(c, PROTO_STDERR_READ);
	proto_write_u64(c, len);
	if (proto_flush(c, err) < 0)
		return -1;
	if (proto_read_bytes(c, &s, &n, err) < 0)
		return -1;
	if (n == 0)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "the client sent no data for STDERR_READ");
	if (n > len)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "the client sent %zu bytes for a STDERR_READ of %zu", n, len);
	memcpy(buf, s, n);
	return (ssize_t)n;
}

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const op_names[_PROTO_OP_MAX] = {
	[PROTO_OP_IS_VALID_PATH] = "IsValidPath",
	[PROTO_OP_HAS_SUBSTITUTES] = "HasSubstitutes",
	[PROTO_OP_QUERY_PATH_HASH] = "QueryPathHash",
	[PROTO_OP_QUERY_REFERENCES] = "QueryReferences",
	[PROTO_OP_QUERY_REFERRERS] = "QueryReferrers",
	[PROTO_OP_ADD_TO_STORE] = "AddToStore",
	[PROTO_OP_ADD_TEXT_TO_STORE] = "AddTextToStore",
	[PROTO_OP_BUILD_PATHS] = "BuildPaths",
	[PROTO_OP_ENSURE_PATH] = "EnsurePath",
	[PROTO_OP_ADD_TEMP_ROOT] = "AddTempRoot",
	[PROTO_OP_ADD_INDIRECT_ROOT] = "AddIndirectRoot",
	[PROTO_OP_SYNC_WITH_GC] = "SyncWithGC",
	[PROTO_OP_FIND_ROOTS] = "FindRoots",
	[PROTO_OP_EXPORT_PATH] = "ExportPath",
	[PROTO_OP_QUERY_DERIVER] = "QueryDeriver",
	[PROTO_OP_SET_OPTIONS] = "SetOptions",
	[PROTO_OP_COLLECT_GARBAGE] = "CollectGarbage",
	[PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFO] = "QuerySubstitutablePathInfo",
	[PROTO_OP_QUERY_DERIVATION_OUTPUTS] = "QueryDerivationOutputs",
	[PROTO_OP_QUERY_ALL_VALID_PATHS] = "QueryAllValidPaths",
	[PROTO_OP_QUERY_FAILED_PATHS] = "QueryFailedPaths",
	[PROTO_OP_CLEAR_FAILED_PATHS] = "ClearFailedPaths",
	[PROTO_OP_QUERY_PATH_INFO] = "QueryPathInfo",
	[PROTO_OP_IMPORT_PATHS] = "ImportPaths",
	[PROTO_OP_QUERY_DERIVATION_OUTPUT_NAMES] = "QueryDerivationOutputNames",
	[PROTO_OP_QUERY_PATH_FROM_HASH_PART] = "QueryPathFromHashPart",
	[PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS] = "QuerySubstitutablePathInfos",
	[PROTO_OP_QUERY_VALID_PATHS] = "QueryValidPaths",
	[PROTO_OP_QUERY_SUBSTITUTABLE_PATHS] = "QuerySubstitutablePaths",
	[PROTO_OP_QUERY_VALID_DERIVERS] = "QueryValidDerivers",
	[PROTO_OP_OPTIMISE_STORE] = "OptimiseStore",
	[PROTO_OP_VERIFY_STORE] = "VerifyStore",
	[PROTO_OP_BUILD_DERIVATION] = "BuildDerivation",
	[PROTO_OP_ADD_SIGNATURES] = "AddSignatures",
	[PROTO_OP_NAR_FROM_PATH] = "NarFromPath",
	[PROTO_OP_ADD_TO_STORE_NAR] = "AddToStoreNar",
	[PROTO_OP_QUERY_MISSING] = "QueryMissing",
	[PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP] = "QueryDerivationOutputMap",
	[PROTO_OP_REGISTER_DRV_OUTPUT] = "RegisterDrvOutput",
	[PROTO_OP_QUERY_REALISATION] = "QueryRealisation",
	[PROTO_OP_ADD_MULTIPLE_TO_STORE] = "AddMultipleToStore",
	[PROTO_OP_ADD_BUILD_LOG] = "AddBuildLog",
	[PROTO_OP_BUILD_PATHS_WITH_RESULTS] = "BuildPathsWithResults",
	[PROTO_OP_ADD_PERM_ROOT] = "AddPermRoot",
};

uint64_t proto_verbosity_of(int log_level)
{
	if (log_level <= LOG_ERR)
		return PROTO_LVL_ERROR;
	if (log_level == LOG_WARNING)
		return PROTO_LVL_WARN;
	if (log_level == LOG_NOTICE)
		return PROTO_LVL_INFO;
	if (log_level == LOG_INFO)
		return PROTO_LVL_TALKATIVE;
	return PROTO_LVL_DEBUG;
}

int proto_log_level_of(uint64_t verbosity)
{
	if (verbosity == PROTO_LVL_ERROR)
		return LOG_ERR;
	if (verbosity < PROTO_LVL_INFO)
		return LOG_WARNING;
	if (verbosity < PROTO_LVL_TALKATIVE)
		return LOG_NOTICE;
	if (verbosity < PROTO_LVL_DEBUG)
		return LOG_INFO;
	return LOG_DEBUG;
}

const char *proto_op_name(uint64_t op)
{
	return op < _PROTO_OP_MAX ? op_names[op] : NULL;
}

static const char *const status_names[_PROTO_BUILD_STATUS_MAX] = {
	[PROTO_BUILD_BUILT] = "Built",
	[PROTO_BUILD_SUBSTITUTED] = "Substituted",
	[PROTO_BUILD_ALREADY_VALID] = "AlreadyValid",
	[PROTO_BUILD_PERMANENT_FAILURE] = "PermanentFailure",
	[PROTO_BUILD_INPUT_REJECTED] = "InputRejected",
	[PROTO_BUILD_OUTPUT_REJECTED] = "OutputRejected",
	[PROTO_BUILD_TRANSIENT_FAILURE] = "TransientFailure",
	[PROTO_BUILD_CACHED_FAILURE] = "CachedFailure",
	[PROTO_BUILD_TIMED_OUT] = "TimedOut",
	[PROTO_BUILD_MISC_FAILURE] = "MiscFailure",
	[PROTO_BUILD_DEPENDENCY_FAILED] = "DependencyFailed",
	[PROTO_BUILD_LOG_LIMIT_EXCEEDED] = "LogLimitExceeded",
	[PROTO_BUILD_NOT_DETERMINISTIC] = "NotDeterministic",
	[PROTO_BUILD_RESOLVES_TO_ALREADY_VALID] = "ResolvesToAlreadyValid",
	[PROTO_BUILD_NO_SUBSTITUTERS] = "NoSubstituters",
};

const char *proto_build_status_name(uint64_t status)
{
	return status < _PROTO_BUILD_STATUS_MAX ? status_names[status] : NULL;
}

/* ---- log frames ------------------------------------------------------------------------------ */

void proto_fields_free(struct proto_field *fields, size_t n)
{
	if (fields == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(fields[i].s);
	free(fields);
}

static void activity_release(struct proto_activity *a)
{
	free(a->text);
	proto_fields_free(a->fields, a->n_fields);
	memset(a, 0, sizeof(*a));
}

void proto_error_release(struct proto_error *e)
{
	if (e == NULL)
		return;
	free(e->name);
	free(e->msg);
	strv_free(e->traces);
	memset(e, 0, sizeof(*e));
}

void proto_error_free(struct proto_error *e)
{
	if (e == NULL)
		return;
	proto_error_release(e);
	free(e);
}

void proto_frame_release(struct proto_frame *f)
{
	free(f->msg);
	activity_release(&f->act);
	proto_error_release(&f->error);
	memset(f, 0, sizeof(*f));
}

static int read_fields(struct proto_conn *c, struct proto_field **ret, size_t *ret_n,
		       struct nib_error **err)
{
	uint64_t n = 0;
	size_t alloc = 0;
	struct proto_field *v = NULL;

	if (read_count(c, "field list", &n, err) < 0)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct proto_field f = { 0 };
		int r;
		if (proto_read_u64(c, &f.type, err) < 0) {
			proto_fields_free(v, (size_t)i);
			return -1;
		}
		if (f.type == PROTO_FIELD_INT)
			r = proto_read_u64(c, &f.i, err);
		else if (f.type == PROTO_FIELD_STRING)
			r = proto_read_bytes(c, &f.s, &f.len, err);
		else
			r = nib_error_set(err, NIB_E_PROTOCOL, 0, "unknown log field type %" PRIu64,
					  f.type);
		if (r < 0) {
			proto_fields_free(v, (size_t)i);
			return -1;
		}
		ALLOC_GROW(v, i + 1, alloc);
		v[i] = f;
	}
	*ret = v;
	*ret_n = (size_t)n;
	return 0;
}

static void write_fields(struct proto_conn *c, const struct proto_field *fields, size_t n)
{
	proto_write_u64(c, n);
	for (size_t i = 0; i < n; i++) {
		proto_write_u64(c, fields[i].type);
		if (fields[i].type == PROTO_FIELD_STRING)
			proto_write_bytes(c, fields[i].s, fields[i].len);
		else
			proto_write_u64(c, fields[i].i);
	}
}

void proto_write_next(struct proto_conn *c, const char *msg, size_t len)
{
	proto_write_u64(c, PROTO_STDERR_NEXT);
	proto_write_bytes(c, msg, len);
}

void proto_write_start_activity(struct proto_conn *c, const struct proto_activity *act)
{
	if (c->version < PROTO_VERSION(1, 20)) {
		/* Old clients know no activities: Nix logs the text instead. */
		if (act->text != NULL && act->text[0] != '\0') {
			cleanup_free char *line = xasprintf("%s...\n", act->text);
			proto_write_next(c, line, strlen(line));
		}
		return;
	}
	proto_write_u64(c, PROTO_STDERR_START_ACTIVITY);
	proto_write_u64(c, act->id);
	proto_write_u64(c, act->level);
	proto_write_u64(c, act->type);
	proto_write_string(c, act->text);
	write_fields(c, act->fields, act->n_fields);
	proto_write_u64(c, act->parent);
}

void proto_write_stop_activity(struct proto_conn *c, uint64_t id)
{
	if (c->version < PROTO_VERSION(1, 20))
		return;
	proto_write_u64(c, PROTO_STDERR_STOP_ACTIVITY);
	proto_write_u64(c, id);
}

void proto_write_result(struct proto_conn *c, uint64_t id, uint64_t type,
			const struct proto_field *fields, size_t n_fields)
{
	if (c->version < PROTO_VERSION(1, 20))
		return;
	proto_write_u64(c, PROTO_STDERR_RESULT);
	proto_write_u64(c, id);
	proto_write_u64(c, type);
	write_fields(c, fields, n_fields);
}

void proto_write_last(struct proto_conn *c)
{
	proto_write_u64(c, PROTO_STDERR_LAST);
}

void proto_write_error(struct proto_conn *c, const struct proto_error *e)
{
	proto_write_u64(c, PROTO_STDERR_ERROR);
	if (c->version >= PROTO_VERSION(1, 26)) {
		size_t n = e->traces == NULL ? 0 : strv_length(e->traces);
		proto_write_string(c, "Error");
		proto_write_u64(c, e->level);
		proto_write_string(c, e->name != NULL ? e->name : "Error");
		proto_write_string(c, e->msg);
		proto_write_u64(c, 0); /* no position */
		proto_write_u64(c, n);
		for (size_t i = 0; i < n; i++) {
			proto_write_u64(c, 0); /* no position */
			proto_write_string(c, e->traces[i]);
		}
	} else {
		proto_write_string(c, e->msg);
		proto_write_u64(c, e->exit_status);
	}
}

void proto_write_error_msg(struct proto_conn *c, const char *msg)
{
	struct proto_error e = { .level = PROTO_LVL_ERROR, .msg = (char *)msg, .exit_status = 1 };

	proto_write_error(c, &e);
}

static int read_error(struct proto_conn *c, struct proto_error *e, struct nib_error **err)
{
	if (c->version >= PROTO_VERSION(1, 26)) {
		cleanup_free char *type = NULL;
		uint64_t pos = 0, n = 0;
		size_t alloc = 0;

		if (proto_read_string(c, &type, err) < 0)
			return -1;
		if (!STREQ(type, "Error"))
			return nib_error_set(err, NIB_E_PROTOCOL, 0, "unknown error type '%s'",
					     type);
		if (proto_read_u64(c, &e->level, err) < 0 || read_text(c, &e->name, err) < 0 ||
		    read_text(c, &e->msg, err) < 0 || proto_read_u64(c, &pos, err) < 0)
			return -1;
		if (pos != 0)
			return nib_error_set(err, NIB_E_PROTOCOL, 0,
					     "error positions are not supported");
		if (read_count(c, "trace list", &n, err) < 0)
			return -1;
		e->traces = xcalloc(1, sizeof(char *));
		alloc = 1;
		for (uint64_t i = 0; i < n; i++) {
			char *t;
			if (proto_read_u64(c, &pos, err) < 0)
				return -1;
			if (pos != 0)
				return nib_error_set(err, NIB_E_PROTOCOL, 0,
						     "error positions are not supported");
			if (read_text(c, &t, err) < 0)
				return -1;
			ALLOC_GROW(e->traces, i + 2, alloc);
			e->traces[i] = t;
			e->traces[i + 1] = NULL;
		}
		e->exit_status = 1;
		return 0;
	}
	if (read_text(c, &e->msg, err) < 0 || proto_read_u64(c, &e->exit_status, err) < 0)
		return -1;
	return 0;
}

int proto_read_frame(struct proto_conn *c, struct proto_frame *ret, struct nib_error **err)
{
	struct proto_frame f = { 0 };
	int r = 0;

	proto_begin_message(c);
	if (proto_read_u64(c, &f.code, err) < 0)
		return -1;
	switch (f.code) {
	case PROTO_STDERR_NEXT:
	case PROTO_STDERR_WRITE:
		r = proto_read_bytes(c, &f.msg, &f.msg_len, err);
		break;
	case PROTO_STDERR_READ:
		r = proto_read_u64(c, &f.read_len, err);
		break;
	case PROTO_STDERR_LAST:
		break;
	case PROTO_STDERR_ERROR:
		r = read_error(c, &f.error, err);
		break;
	case PROTO_STDERR_START_ACTIVITY:
		if (proto_read_u64(c, &f.act.id, err) < 0 ||
		    proto_read_u64(c, &f.act.level, err) < 0 ||
		    proto_read_u64(c, &f.act.type, err) < 0 || read_text(c, &f.act.text, err) < 0 ||
		    read_fields(c, &f.act.fields, &f.act.n_fields, err) < 0 ||
		    proto_read_u64(c, &f.act.parent, err) < 0)
			r = -1;
		break;
	case PROTO_STDERR_STOP_ACTIVITY:
		r = proto_read_u64(c, &f.act.id, err);
		break;
	case PROTO_STDERR_RESULT:
		if (proto_read_u64(c, &f.act.id, err) < 0 ||
		    proto_read_u64(c, &f.result_type, err) < 0 ||
		    read_fields(c, &f.act.fields, &f.act.n_fields, err) < 0)
			r = -1;
		break;
	default:
		r = nib_error_set(err, NIB_E_PROTOCOL, 0, "unknown log frame 0x%" PRIx64, f.code);
	}
	if (r < 0) {
		proto_frame_release(&f);
		return -1;
	}
	*ret = f;
	return 0;
}

void proto_write_frame(struct proto_conn *c, const struct proto_frame *f)
{
	switch (f->code) {
	case PROTO_STDERR_NEXT:
		proto_write_next(c, f->msg, f->msg_len);
		break;
	case PROTO_STDERR_WRITE:
		proto_write_u64(c, PROTO_STDERR_WRITE);
		proto_write_bytes(c, f->msg, f->msg_len);
		break;
	case PROTO_STDERR_READ:
		proto_write_u64(c, PROTO_STDERR_READ);
		proto_write_u64(c, f->read_len);
		break;
	case PROTO_STDERR_LAST:
		proto_write_last(c);
		break;
	case PROTO_STDERR_ERROR:
		proto_write_error(c, &f->error);
		break;
	case PROTO_STDERR_START_ACTIVITY:
		proto_write_start_activity(c, &f->act);
		break;
	case PROTO_STDERR_STOP_ACTIVITY:
		proto_write_stop_activity(c, f->act.id);
		break;
	case PROTO_STDERR_RESULT:
		proto_write_result(c, f->act.id, f->result_type, f->act.fields, f->act.n_fields);
		break;
	default:
		abort();
	}
}

static int answer_read(struct proto_conn *c, const struct proto_log_handlers *h, uint64_t len,
		       struct nib_error **err)
{
	cleanup_free char *buf = NULL;
	ssize_t n;

	if (h == NULL || h->read_source == NULL)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "the daemon asked for data where none was expected");
	if (len > c->limits.max_string)
		len = c->limits.max_string;
	buf = xmalloc(len > 0 ? (size_t)len : 1);
	n = h->read_source(h->read_data, buf, (size_t)len, err);
	if (n < 0)
		return -1;
	proto_write_bytes(c, buf, (size_t)n);
	return proto_flush(c, err);
}

int proto_read_stderr(struct proto_conn *c, const struct proto_log_handlers *h,
		      struct proto_error **ret_error, struct nib_error **err)
{
	if (proto_flush(c, err) < 0)
		return -1;
	for (;;) {
		struct proto_frame f;
		int r = 0;

		if (proto_read_frame(c, &f, err) < 0)
			return -1;
		switch (f.code) {
		case PROTO_STDERR_LAST:
			proto_frame_release(&f);
			return 0;
		case PROTO_STDERR_ERROR: {
			struct proto_error *e = xmalloc(sizeof(*e));
			*e = f.error;
			memset(&f.error, 0, sizeof(f.error));
			proto_frame_release(&f);
			*ret_error = e;
			return 1;
		}
		case PROTO_STDERR_NEXT:
			if (h != NULL && h->next != NULL)
				h->next(h->userdata, f.msg, f.msg_len);
			break;
		case PROTO_STDERR_WRITE:
			if (h != NULL && h->write_sink != NULL)
				r = h->write_sink(h->write_data, f.msg, f.msg_len, err);
			break;
		case PROTO_STDERR_READ:
			r = answer_read(c, h, f.read_len, err);
			break;
		case PROTO_STDERR_START_ACTIVITY:
			if (h != NULL && h->start_activity != NULL)
				h->start_activity(h->userdata, &f.act);
			break;
		case PROTO_STDERR_STOP_ACTIVITY:
			if (h != NULL && h->stop_activity != NULL)
				h->stop_activity(h->userdata, f.act.id);
			break;
		case PROTO_STDERR_RESULT:
			if (h != NULL && h->result != NULL)
				h->result(h->userdata, f.act.id, f.result_type, f.act.fields,
					  f.act.n_fields);
			break;
		}
		proto_frame_release(&f);
		if (r < 0)
			return -1;
	}
}

/* ---- handshake ------------------------------------------------------------------------------- */

int proto_server_hello(struct proto_conn *c, struct nib_error **err)
{
	uint64_t magic = 0;

	proto_begin_message(c);
	if (proto_read_u64(c, &magic, err) < 0)
		return nib_error_prefix(err, "reading the client's greeting");
	if (magic != PROTO_WORKER_MAGIC_1)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "protocol mismatch: the client did not send the worker magic "
				     "number (got 0x%" PRIx64 ")",
				     magic);
	proto_write_u64(c, PROTO_WORKER_MAGIC_2);
	proto_write_u64(c, PROTO_VERSION_MAX);
	if (proto_flush(c, err) < 0)
		return -1;
	c->hello_sent = true;
	return 0;
}

int proto_server_handshake(struct proto_conn *c, const char *nix_version, enum proto_trust trust,
			   struct nib_error **err)
{
	uint64_t client = 0, v, affinity = 0, reserve = 0;

	if (!c->hello_sent && proto_server_hello(c, err) < 0)
		return -1;
	if (proto_read_u64(c, &client, err) < 0)
		return nib_error_prefix(err, "reading the client's protocol version");
	if (client < PROTO_VERSION_MIN)
		return nib_error_set(
			err, NIB_E_PROTOCOL, 0,
			"the client's protocol version %u.%u is too old (at least %u.%u is needed)",
			(unsigned)PROTO_MAJOR(client), (unsigned)PROTO_MINOR(client),
			PROTO_MAJOR(PROTO_VERSION_MIN), PROTO_MINOR(PROTO_VERSION_MIN));
	v = client < PROTO_VERSION_MAX ? client : PROTO_VERSION_MAX;
	c->version = (unsigned)v;
	if (v >= PROTO_VERSION(1, 14)) {
		/* Obsolete CPU affinity: a flag, and the CPU when it is set. */
		if (proto_read_u64(c, &affinity, err) < 0)
			return -1;
		if (affinity != 0 && proto_read_u64(c, &affinity, err) < 0)
			return -1;
	}
	if (v >= PROTO_VERSION(1, 11) && proto_read_u64(c, &reserve, err) < 0) /* reserveSpace */
		return -1;
	if (v >= PROTO_VERSION(1, 33))
		proto_write_string(c, nix_version);
	if (v >= PROTO_VERSION(1, 35))
		proto_write_u64(c, trust);
	return 0;
}

void proto_server_info_release(struct proto_server_info *info)
{
	free(info->nix_version);
	memset(info, 0, sizeof(*info));
}

int proto_client_handshake(struct proto_conn *c, unsigned version,
			   const struct proto_log_handlers *h, struct proto_server_info *ret,
			   struct nib_error **err)
{
	uint64_t magic = 0, daemon = 0, v, trust = PROTO_TRUST_UNKNOWN;
	cleanup_free char *nix_version = NULL;
	cleanup_proto_error struct proto_error *refused = NULL;
	/*
	 * The obsolete fields depend on the version both sides speak, so a
	 * client could wait for the daemon's version before sending them.
	 * Every daemon since protocol 1.14 reads both (Nix 2.0 speaks 1.20):
	 * offering 1.14 or more, send them with the greeting, which saves a
	 * round trip, and refuse an older daemon below.
	 */
	bool eager = version >= PROTO_VERSION(1, 14);
	int r;

	proto_write_u64(c, PROTO_WORKER_MAGIC_1);
	proto_write_u64(c, version);
	if (eager) {
		proto_write_u64(c, 0); /* no CPU affinity */
		proto_write_u64(c, 0); /* reserveSpace */
	}
	if (proto_flush(c, err) < 0)
		return -1;
	proto_begin_message(c);
	if (proto_read_u64(c, &magic, err) < 0)
		return nib_error_prefix(err, "reading the daemon's greeting");
	if (magic != PROTO_WORKER_MAGIC_2)
		return nib_error_set(
			err, NIB_E_PROTOCOL, 0,
			"protocol mismatch: the peer is not a Nix worker daemon (got 0x%" PRIx64
			")",
			magic);
	if (proto_read_u64(c, &daemon, err) < 0)
		return -1;
	if (PROTO_MAJOR(daemon) != 1 || daemon > 0xffff)
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "unsupported daemon protocol version 0x%" PRIx64, daemon);
	if (daemon < (eager ? PROTO_VERSION(1, 14) : PROTO_VERSION_MIN))
		return nib_error_set(err, NIB_E_PROTOCOL, 0,
				     "the daemon's protocol version 1.%u is too old",
				     (unsigned)PROTO_MINOR(daemon));
	v = daemon < version ? daemon : version;
	c->version = (unsigned)v;
	if (!eager) {
		if (v >= PROTO_VERSION(1, 11))
			proto_write_u64(c, 0); /* reserveSpace */
		if (proto_flush(c, err) < 0)
			return -1;
	}
	if (v >= PROTO_VERSION(1, 33) && proto_read_string(c, &nix_version, err) < 0)
		return -1;
	if (v >= PROTO_VERSION(1, 35) &&
	    proto_read_u64_max(c, PROTO_TRUST_NOT_TRUSTED, "trust flag", &trust, err) < 0)
		return -1;
	r = proto_read_stderr(c, h, &refused, err);
	if (r < 0)
		return -1;
	if (r > 0)
		return nib_error_set(err, NIB_E_DENIED, 0, "the daemon refused the connection: %s",
				     refused->msg);
	if (ret != NULL) {
		ret->daemon_version = (unsigned)daemon;
		ret->nix_version = TAKE_PTR(nix_version);
		ret->trust = (enum proto_trust)trust;
	}
	return 0;
}

/* ---- path info ------------------------------------------------------------------------------- */

void proto_path_info_release(struct proto_path_info *info)
{
	free(info->path);
	free(info->deriver);
	strv_free(info->references);
	strv_free(info->sigs);
	free(info->ca);
	memset(info, 0, sizeof(*info));
}

/* full: ultimate, sigs and ca regardless of the version (AddToStoreNar, AddMultipleToStore). */
static int read_path_info(struct proto_conn *c, bool keyed, bool full, struct proto_path_info *ret,
			  struct nib_error **err)
{
	struct proto_path_info info = { 0 };
	cleanup_free char *hash = NULL;
	int r = -1;

	if (keyed && proto_read_string(c, &info.path, err) < 0)
		goto out;
	if (proto_read_string_opt(c, &info.deriver, err) < 0 ||
	    proto_read_string(c, &hash, err) < 0)
		goto out;
	if (hash_parse(hash, HASH_SHA256, &info.nar_hash, err) < 0) {
		nib_error_prefix(err, "invalid narHash");
		goto out;
	}
	if (proto_read_strings(c, &info.references, err) < 0 ||
	    proto_read_u64(c, &info.registration_time, err) < 0 ||
	    proto_read_u64(c, &info.nar_size, err) < 0)
		goto out;
	if (full || c->version >= PROTO_VERSION(1, 16)) {
		if (proto_read_bool(c, &info.ultimate, err) < 0 ||
		    proto_read_strings(c, &info.sigs, err) < 0 ||
		    proto_read_string_opt(c, &info.ca, err) < 0)
			goto out;
	} else {
		info.sigs = xcalloc(1, sizeof(char *));
	}
	*ret = info;
	memset(&info, 0, sizeof(info));
	r = 0;
out:
	proto_path_info_release(&info);
	return r;
}

static void write_path_info(struct proto_conn *c, bool keyed, bool full,
			    const struct proto_path_info *info)
{
	cleanup_free char *hash = hash_to_string(&info->nar_hash, HASH_ENC_BASE16, false);

	if (keyed)
		proto_write_string(c, info->path);
	proto_write_string(c, info->deriver);
	proto_write_string(c, hash);
	proto_write_strings(c, info->references);
	proto_write_u64(c, info->registration_time);
	proto_write_u64(c, info->nar_size);
	if (full || c->version >= PROTO_VERSION(1, 16)) {
		proto_write_bool(c, info->ultimate);
		proto_write_strings(c, info->sigs);
		proto_write_string(c, info->ca);
	}
}

int proto_read_path_info(struct proto_conn *c, bool keyed, struct proto_path_info *ret,
			 struct nib_error **err)
{
	return read_path_info(c, keyed, false, ret, err);
}

void proto_write_path_info(struct proto_conn *c, bool keyed, const struct proto_path_info *info)
{
	write_path_info(c, keyed, false, info);
}

/* ---- derived paths --------------------------------------------------------------------------- */

void proto_derived_path_release(struct proto_derived_path *p)
{
	free(p->path);
	strv_free(p->outputs);
	memset(p, 0, sizeof(*p));
}

void proto_derived_paths_free(struct proto_derived_path *p, size_t n)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		proto_derived_path_release(&p[i]);
	free(p);
}

int proto_derived_path_parse(const char *s, unsigned version, struct proto_derived_path *ret,
			     struct nib_error **err)
{
	struct proto_derived_path p = { 0 };
	const char *bang = strchr(s, '!');
	size_t n = 0;

	if (s[0] == '\0' || bang == s)
		return nib_error_set(err, NIB_E_PROTOCOL, 0, "invalid derived path '%s'", s);
	if (bang == NULL) {
		p.path = xstrdup(s);
		/* Before 1.30 a bare derivation means "all its outputs". */
		p.built = version < PROTO_VERSION(1, 30) && ends_with(s, ".drv");
		p.all_outputs = p.built;
		*ret = p;
		return 0;
	}
	if (STREQ(bang + 1, "*")) {
		p.path = xstrndup(s, (size_t)(bang - s));
		p.built = true;
		p.all_outputs = true;
		*ret = p;
		return 0;
	}
	for (const char *o = bang + 1;;) {
		const char *end = strchr(o, ',');
		size_t len = end != NULL ? (size_t)(end - o) : strlen(o);
		if (len == 0) {
			strv_free(p.outputs);
			return nib_error_set(err, NIB_E_PROTOCOL, 0,
					     "invalid derived path '%s': empty output name", s);
		}
		p.outputs = xreallocarray(p.outputs, n + 2, sizeof(char *));
		p.outputs[n++] = xstrndup(o, len);
		p.outputs[n] = NULL;
		if (end == NULL)
			break;
		o = end + 1;
	}
	sort_array(p.outputs, n, sizeof(char *), strp_cmp);
	/* A set: drop repeated names. */
	for (size_t i = 1, j = 1; i <= n; i++) {
		if (i == n) {
			p.outputs[j] = NULL;
			break;
		}
		if (STREQ(p.outputs[i], p.outputs[j - 1]))
			free(p.outputs[i]);
		else
			p.outputs[j++] = p.outputs[i];
	}
	p.path = xstrndup(s, (size_t)(bang - s));
	p.built = true;
	*ret = p;
	return 0;
}

char *proto_derived_path_to_string(const struct proto_derived_path *p, unsigned version,
				   struct nib_error **err)
{
	struct strbuf sb = STRBUF_INIT;

	if (!p->built) {
		if (version < PROTO_VERSION(1, 30) && ends_with(p->path, ".drv")) {
			nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				      "cannot ask for the derivation '%s' itself: protocol 1.%u is "
				      "older than 1.30",
				      p->path, PROTO_MINOR(version));
			return NULL;
		}
		return xstrdup(p->path);
	}
	strbuf_addstr(&sb, p->path);
	if (p->all_outputs) {
		if (version >= PROTO_VERSION(1, 30))
			strbuf_addstr(&sb, "!*");
		return strbuf_detach(&sb, NULL);
	}
	for (size_t i = 0; p->outputs != NULL && p->outputs[i] != NULL; i++) {
		strbuf_addch(&sb, i == 0 ? '!' : ',');
		strbuf_addstr(&sb, p->outputs[i]);
	}
	return strbuf_detach(&sb, NULL);
}

int proto_read_derived_path(struct proto_conn *c, struct proto_derived_path *ret,
			    struct nib_error **err)
{
	cleanup_free char *s = NULL;

	if (proto_read_string(c, &s, err) < 0)
		return -1;
	return proto_derived_path_parse(s, c->version, ret, err);
}

int proto_write_derived_path(struct proto_conn *c, const struct proto_derived_path *p,
			     struct nib_error **err)
{
	cleanup_free char *s = proto_derived_path_to_string(p, c->version, err);

	if (s == NULL)
		return -1;
	proto_write_string(c, s);
	return 0;
}

static int read_derived_paths(struct proto_conn *c, struct proto_derived_path **ret, size_t *ret_n,
			      struct nib_error **err)
{
	uint64_t n = 0;
	size_t alloc = 0;
	struct proto_derived_path *v = NULL;

	if (read_count(c, "list", &n, err) < 0)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		ALLOC_GROW(v, i + 1, alloc);
		if (proto_read_derived_path(c, &v[i], err) < 0) {
			proto_derived_paths_free(v, (size_t)i);
			return -1;
		}
	}
	*ret = v;
	*ret_n = (size_t)n;
	return 0;
}

static int write_derived_paths(struct proto_conn *c, const struct proto_derived_path *v, size_t n,
			       struct nib_error **err)
{
	proto_write_u64(c, n);
	for (size_t i = 0; i < n; i++)
		if (proto_write_derived_path(c, &v[i], err) < 0)
			return -1;
	return 0;
}

/* ---- build results --------------------------------------------------------------------------- */

void proto_build_result_release(struct proto_build_result *r)
{
	free(r->error_msg);
	proto_pairs_free(r->built_outputs, r->n_built_outputs);
	memset(r, 0, sizeof(*r));
}

static int read_opt_usec(struct proto_conn *c, bool *ret_has, int64_t *ret, struct nib_error **err)
{
	uint64_t tag = 0, v = 0;

	if (proto_read_u64_max(c, 1, "optional tag", &tag, err) < 0)
		return -1;
	*ret_has = tag == 1;
	*ret = 0;
	if (tag == 0)
		return 0;
	if (proto_read_u64_max(c, INT64_MAX, "duration", &v, err) < 0)
		return -1;
	*ret = (int64_t)v;
	return 0;
}

static void write_opt_usec(struct proto_conn *c, bool has, int64_t v)
{
	proto_write_u64(c, has ? 1 : 0);
	if (has)
		proto_write_u64(c, (uint64_t)(v < 0 ? 0 : v));
}

int proto_read_build_result(struct proto_conn *c, struct proto_build_result *ret,
			    struct nib_error **err)
{
	struct proto_build_result r = { 0 };
	int rc = -1;

	if (proto_read_u64_max(c, 255, "build status", &r.status, err) < 0 ||
	    read_text(c, &r.error_msg, err) < 0)
		goto out;
	if (c->version >= PROTO_VERSION(1, 29)) {
		if (proto_read_u64(c, &r.times_built, err) < 0 ||
		    proto_read_bool(c, &r.is_non_deterministic, err) < 0 ||
		    proto_read_u64(c, &r.start_time, err) < 0 ||
		    proto_read_u64(c, &r.stop_time, err) < 0)
			goto out;
	}
	if (c->version >= PROTO_VERSION(1, 37)) {
		if (read_opt_usec(c, &r.has_cpu_user, &r.cpu_user_usec, err) < 0 ||
		    read_opt_usec(c, &r.has_cpu_system, &r.cpu_system_usec, err) < 0)
			goto out;
	}
	if (c->version >= PROTO_VERSION(1, 28) &&
	    proto_read_pairs(c, true, &r.built_outputs, &r.n_built_outputs, err) < 0)
		goto out;
	*ret = r;
	memset(&r, 0, sizeof(r));
	rc = 0;
out:
	proto_build_result_release(&r);
	return rc;
}

void proto_write_build_result(struct proto_conn *c, const struct proto_build_result *r)
{
	proto_write_u64(c, r->status);
	proto_write_string(c, r->error_msg);
	if (c->version >= PROTO_VERSION(1, 29)) {
		proto_write_u64(c, r->times_built);
		proto_write_bool(c, r->is_non_deterministic);
		proto_write_u64(c, r->start_time);
		proto_write_u64(c, r->stop_time);
	}
	if (c->version >= PROTO_VERSION(1, 37)) {
		write_opt_usec(c, r->has_cpu_user, r->cpu_user_usec);
		write_opt_usec(c, r->has_cpu_system, r->cpu_system_usec);
	}
	if (c->version >= PROTO_VERSION(1, 28))
		proto_write_pairs(c, r->built_outputs, r->n_built_outputs);
}

static void json_string(struct strbuf *sb, const char *s)
{
	strbuf_addch(sb, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			strbuf_addch(sb, '\\');
			strbuf_addch(sb, (char)*p);
		} else if (*p < 0x20) {
			strbuf_addf(sb, "\\u%04x", *p);
		} else {
			strbuf_addch(sb, (char)*p);
		}
	}
	strbuf_addch(sb, '"');
}

char *proto_realisation_json(const char *id, const char *out_path_base)
{
	struct strbuf sb = STRBUF_INIT;

	/* Keys in the order Nix's JSON library prints them (sorted). */
	strbuf_addstr(&sb, "{\"dependentRealisations\":{},\"id\":");
	json_string(&sb, id);
	strbuf_addstr(&sb, ",\"outPath\":");
	json_string(&sb, out_path_base);
	strbuf_addstr(&sb, ",\"signatures\":[]}");
	return strbuf_detach(&sb, NULL);
}

void proto_keyed_build_result_release(struct proto_keyed_build_result *r)
{
	proto_derived_path_release(&r->path);
	proto_build_result_release(&r->result);
}

static void keyed_build_results_free(struct proto_keyed_build_result *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		proto_keyed_build_result_release(&v[i]);
	free(v);
}

/* ---- derivations ----------------------------------------------------------------------------- */

void proto_basic_derivation_release(struct proto_basic_derivation *d)
{
	for (size_t i = 0; d->outputs != NULL && i < d->n_outputs; i++) {
		free(d->outputs[i].name);
		free(d->outputs[i].path);
		free(d->outputs[i].hash_algo);
		free(d->outputs[i].hash);
	}
	free(d->outputs);
	strv_free(d->input_srcs);
	free(d->platform);
	free(d->builder);
	strv_free(d->args);
	proto_pairs_free(d->env, d->n_env);
	memset(d, 0, sizeof(*d));
}

int proto_read_basic_derivation(struct proto_conn *c, struct proto_basic_derivation *ret,
				struct nib_error **err)
{
	struct proto_basic_derivation d = { 0 };
	uint64_t n = 0;
	size_t alloc = 0;
	int rc = -1;

	if (read_count(c, "output list", &n, err) < 0)
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		struct proto_drv_output *o;
		ALLOC_GROW(d.outputs, i + 1, alloc);
		o = &d.outputs[i];
		memset(o, 0, sizeof(*o));
		d.n_outputs = (size_t)i + 1;
		if (proto_read_string(c, &o->name, err) < 0 ||
		    proto_read_string(c, &o->path, err) < 0 ||
		    proto_read_string(c, &o->hash_algo, err) < 0 ||
		    proto_read_string(c, &o->hash, err) < 0)
			goto out;
		if (i > 0 && strcmp(d.outputs[i - 1].name, o->name) >= 0) {
			nib_error_set(err, NIB_E_PROTOCOL, 0,
				      "derivation output '%s' is out of order or repeated",
				      o->name);
			goto out;
		}
	}
	if (proto_read_strings(c, &d.input_srcs, err) < 0 ||
	    proto_read_string(c, &d.platform, err) < 0 ||
	    proto_read_string(c, &d.builder, err) < 0 || proto_read_strings(c, &d.args, err) < 0)
		goto out;
	if (proto_read_pairs(c, true, &d.env, &d.n_env, err) < 0) {
		nib_error_prefix(err, "reading the environment");
		goto out;
	}
	*ret = d;
	memset(&d, 0, sizeof(d));
	rc = 0;
out:
	proto_basic_derivation_release(&d);
	return rc;
}

void proto_write_basic_derivation(struct proto_conn *c, const struct proto_basic_derivation *d)
{
	proto_write_u64(c, d->n_outputs);
	for (size_t i = 0; i < d->n_outputs; i++) {
		proto_write_string(c, d->outputs[i].name);
		proto_write_string(c, d->outputs[i].path);
		proto_write_string(c, d->outputs[i].hash_algo);
		proto_write_string(c, d->outputs[i].hash);
	}
	proto_write_strings(c, d->input_srcs);
	proto_write_string(c, d->platform);
	proto_write_string(c, d->builder);
	proto_write_strings(c, d->args);
	proto_write_pairs(c, d->env, d->n_env);
}

/* ---- settings, GC, missing, substitutables -------------------------------------------------- */

void proto_client_settings_release(struct proto_client_settings *s)
{
	proto_pairs_free(s->overrides, s->n_overrides);
	memset(s, 0, sizeof(*s));
}

static int read_client_settings(struct proto_conn *c, struct proto_client_settings *s,
				struct nib_error **err)
{
	if (proto_read_bool(c, &s->keep_failed, err) < 0 ||
	    proto_read_bool(c, &s->keep_going, err) < 0 ||
	    proto_read_bool(c, &s->try_fallback, err) < 0 ||
	    proto_read_u64(c, &s->verbosity, err) < 0 ||
	    proto_read_u64(c, &s->max_build_jobs, err) < 0 ||
	    proto_read_u64(c, &s->max_silent_time, err) < 0 ||
	    proto_read_u64(c, &s->use_build_hook, err) < 0 ||
	    proto_read_u64(c, &s->build_verbosity, err) < 0 ||
	    proto_read_u64(c, &s->log_type, err) < 0 ||
	    proto_read_u64(c, &s->print_build_trace, err) < 0 ||
	    proto_read_u64(c, &s->build_cores, err) < 0 ||
	    proto_read_bool(c, &s->use_substitutes, err) < 0)
		return -1;
	if (c->version >= PROTO_VERSION(1, 12) &&
	    proto_read_pairs(c, false, &s->overrides, &s->n_overrides, err) < 0)
		return nib_error_prefix(err, "reading the settings overrides");
	return 0;
}

static void write_client_settings(struct proto_conn *c, const struct proto_client_settings *s)
{
	proto_write_bool(c, s->keep_failed);
	proto_write_bool(c, s->keep_going);
	proto_write_bool(c, s->try_fallback);
	proto_write_u64(c, s->verbosity);
	proto_write_u64(c, s->max_build_jobs);
	proto_write_u64(c, s->max_silent_time);
	proto_write_u64(c, s->use_build_hook);
	proto_write_u64(c, s->build_verbosity);
	proto_write_u64(c, s->log_type);
	proto_write_u64(c, s->print_build_trace);
	proto_write_u64(c, s->build_cores);
	proto_write_bool(c, s->use_substitutes);
	if (c->version >= PROTO_VERSION(1, 12))
		proto_write_pairs(c, s->overrides, s->n_overrides);
}

void proto_gc_options_release(struct proto_gc_options *o)
{
	strv_free(o->paths_to_delete);
	memset(o, 0, sizeof(*o));
}

void proto_gc_result_release(struct proto_gc_result *r)
{
	strv_free(r->paths);
	memset(r, 0, sizeof(*r));
}

void proto_missing_release(struct proto_missing *m)
{
	strv_free(m->will_build);
	strv_free(m->will_substitute);
	strv_free(m->unknown);
	memset(m, 0, sizeof(*m));
}

void proto_substitutables_free(struct proto_substitutable *s, size_t n)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(s[i].path);
		free(s[i].deriver);
		strv_free(s[i].references);
	}
	free(s);
}

static int read_substitutable(struct proto_conn *c, bool with_path, struct proto_substitutable *s,
			      struct nib_error **err)
{
	if (with_path && proto_read_string(c, &s->path, err) < 0)
		return -1;
	if (proto_read_string_opt(c, &s->deriver, err) < 0 ||
	    proto_read_strings(c, &s->references, err) < 0 ||
	    proto_read_u64(c, &s->download_size, err) < 0 ||
	    proto_read_u64(c, &s->nar_size, err) < 0)
		return -1;
	return 0;
}

static void write_substitutable(struct proto_conn *c, bool with_path,
				const struct proto_substitutable *s)
{
	if (with_path)
		proto_write_string(c, s->path);
	proto_write_string(c, s->deriver);
	proto_write_strings(c, s->references);
	proto_write_u64(c, s->download_size);
	proto_write_u64(c, s->nar_size);
}

/* ---- requests -------------------------------------------------------------------------------- */

/* The ops whose only argument is one string. */
static bool op_takes_path(uint64_t op)
{
	switch (op) {
	case PROTO_OP_IS_VALID_PATH:
	case PROTO_OP_HAS_SUBSTITUTES:
	case PROTO_OP_QUERY_PATH_HASH:
	case PROTO_OP_QUERY_REFERENCES:
	case PROTO_OP_QUERY_REFERRERS:
	case PROTO_OP_ENSURE_PATH:
	case PROTO_OP_ADD_TEMP_ROOT:
	case PROTO_OP_ADD_INDIRECT_ROOT:
	case PROTO_OP_QUERY_DERIVER:
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFO:
	case PROTO_OP_QUERY_DERIVATION_OUTPUTS:
	case PROTO_OP_QUERY_PATH_INFO:
	case PROTO_OP_QUERY_DERIVATION_OUTPUT_NAMES:
	case PROTO_OP_QUERY_PATH_FROM_HASH_PART:
	case PROTO_OP_QUERY_VALID_DERIVERS:
	case PROTO_OP_NAR_FROM_PATH:
	case PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP:
	case PROTO_OP_QUERY_REALISATION:
	case PROTO_OP_ADD_BUILD_LOG:
		return true;
	default:
		return false;
	}
}

void proto_request_release(struct proto_request *r)
{
	switch (r->op) {
	case PROTO_OP_ADD_TO_STORE:
		free(r->add_to_store.name);
		free(r->add_to_store.cam);
		strv_free(r->add_to_store.refs);
		free(r->add_to_store.hash_algo);
		break;
	case PROTO_OP_ADD_TEXT_TO_STORE:
		free(r->add_text_to_store.name);
		free(r->add_text_to_store.text);
		strv_free(r->add_text_to_store.refs);
		break;
	case PROTO_OP_BUILD_PATHS:
	case PROTO_OP_BUILD_PATHS_WITH_RESULTS:
	case PROTO_OP_QUERY_MISSING:
		proto_derived_paths_free(r->build_paths.paths, r->build_paths.n_paths);
		break;
	case PROTO_OP_SET_OPTIONS:
		proto_client_settings_release(&r->set_options);
		break;
	case PROTO_OP_COLLECT_GARBAGE:
		proto_gc_options_release(&r->collect_garbage);
		break;
	case PROTO_OP_QUERY_VALID_PATHS:
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATHS:
		strv_free(r->paths.paths);
		break;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS:
		proto_pairs_free(r->query_substitutable_path_infos.paths,
				 r->query_substitutable_path_infos.n_paths);
		break;
	case PROTO_OP_BUILD_DERIVATION:
		free(r->build_derivation.drv_path);
		proto_basic_derivation_release(&r->build_derivation.drv);
		break;
	case PROTO_OP_ADD_SIGNATURES:
		free(r->add_signatures.path);
		strv_free(r->add_signatures.sigs);
		break;
	case PROTO_OP_ADD_TO_STORE_NAR:
		proto_path_info_release(&r->add_to_store_nar.info);
		break;
	case PROTO_OP_REGISTER_DRV_OUTPUT:
		free(r->register_drv_output.id);
		free(r->register_drv_output.out_path);
		free(r->register_drv_output.realisation);
		break;
	case PROTO_OP_ADD_PERM_ROOT:
		free(r->add_perm_root.path);
		free(r->add_perm_root.gc_root);
		break;
	case PROTO_OP_EXPORT_PATH:
		free(r->export_path.path);
		break;
	default:
		if (op_takes_path(r->op))
			free(r->path);
		break;
	}
	memset(r, 0, sizeof(*r));
}

static int read_request_args(struct proto_conn *c, struct proto_request *r, struct nib_error **err)
{
	unsigned v = c->version;

	if (op_takes_path(r->op))
		return proto_read_string(c, &r->path, err);

	switch (r->op) {
	case PROTO_OP_SYNC_WITH_GC:
	case PROTO_OP_FIND_ROOTS:
	case PROTO_OP_QUERY_ALL_VALID_PATHS:
	case PROTO_OP_OPTIMISE_STORE:
	case PROTO_OP_IMPORT_PATHS:
		return 0;
	case PROTO_OP_ADD_TO_STORE:
		if (v >= PROTO_VERSION(1, 25))
			return proto_read_string(c, &r->add_to_store.name, err) < 0 ||
					       proto_read_string(c, &r->add_to_store.cam, err) <
						       0 ||
					       proto_read_strings(c, &r->add_to_store.refs, err) <
						       0 ||
					       proto_read_bool(c, &r->add_to_store.repair, err) < 0
				       ? -1
				       : 0;
		return proto_read_string(c, &r->add_to_store.name, err) < 0 ||
				       proto_read_bool(c, &r->add_to_store.fixed, err) < 0 ||
				       proto_read_u64_max(c, 1, "file ingestion method",
							  &r->add_to_store.recursive, err) < 0 ||
				       proto_read_string(c, &r->add_to_store.hash_algo, err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_ADD_TEXT_TO_STORE:
		return proto_read_string(c, &r->add_text_to_store.name, err) < 0 ||
				       proto_read_bytes(c, &r->add_text_to_store.text,
							&r->add_text_to_store.text_len, err) < 0 ||
				       proto_read_strings(c, &r->add_text_to_store.refs, err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_BUILD_PATHS:
	case PROTO_OP_BUILD_PATHS_WITH_RESULTS:
	case PROTO_OP_QUERY_MISSING:
		if (read_derived_paths(c, &r->build_paths.paths, &r->build_paths.n_paths, err) < 0)
			return -1;
		if (r->op == PROTO_OP_QUERY_MISSING ||
		    (r->op == PROTO_OP_BUILD_PATHS && v < PROTO_VERSION(1, 15)))
			return 0;
		return proto_read_u64_max(c, PROTO_BUILD_MODE_CHECK, "build mode",
					  &r->build_paths.mode, err);
	case PROTO_OP_SET_OPTIONS:
		return read_client_settings(c, &r->set_options, err);
	case PROTO_OP_COLLECT_GARBAGE: {
		struct proto_gc_options *o = &r->collect_garbage;
		return proto_read_u64_max(c, PROTO_GC_DELETE_SPECIFIC, "garbage collector action",
					  &o->action, err) < 0 ||
				       proto_read_strings(c, &o->paths_to_delete, err) < 0 ||
				       proto_read_bool(c, &o->ignore_liveness, err) < 0 ||
				       proto_read_u64(c, &o->max_freed, err) < 0 ||
				       proto_read_u64(c, &o->obsolete[0], err) < 0 ||
				       proto_read_u64(c, &o->obsolete[1], err) < 0 ||
				       proto_read_u64(c, &o->obsolete[2], err) < 0
			       ? -1
			       : 0;
	}
	case PROTO_OP_QUERY_VALID_PATHS:
		if (proto_read_strings(c, &r->paths.paths, err) < 0)
			return -1;
		if (v >= PROTO_VERSION(1, 27))
			return proto_read_bool(c, &r->paths.substitute, err);
		return 0;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATHS:
		return proto_read_strings(c, &r->paths.paths, err);
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS: {
		cleanup_strv char **paths = NULL;
		size_t n;
		if (v >= PROTO_VERSION(1, 22))
			return proto_read_pairs(c, true, &r->query_substitutable_path_infos.paths,
						&r->query_substitutable_path_infos.n_paths, err);
		if (proto_read_strings(c, &paths, err) < 0)
			return -1;
		n = strv_length(paths);
		r->query_substitutable_path_infos.paths =
			xcalloc(n ? n : 1, sizeof(struct proto_pair));
		r->query_substitutable_path_infos.n_paths = n;
		for (size_t i = 0; i < n; i++)
			r->query_substitutable_path_infos.paths[i].first = TAKE_PTR(paths[i]);
		return 0;
	}
	case PROTO_OP_VERIFY_STORE:
		return proto_read_bool(c, &r->verify_store.check_contents, err) < 0 ||
				       proto_read_bool(c, &r->verify_store.repair, err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_BUILD_DERIVATION:
		return proto_read_string(c, &r->build_derivation.drv_path, err) < 0 ||
				       proto_read_basic_derivation(c, &r->build_derivation.drv,
								   err) < 0 ||
				       proto_read_u64_max(c, PROTO_BUILD_MODE_CHECK, "build mode",
							  &r->build_derivation.mode, err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_ADD_SIGNATURES:
		return proto_read_string(c, &r->add_signatures.path, err) < 0 ||
				       proto_read_strings(c, &r->add_signatures.sigs, err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_ADD_TO_STORE_NAR:
		return read_path_info(c, true, true, &r->add_to_store_nar.info, err) < 0 ||
				       proto_read_bool(c, &r->add_to_store_nar.repair, err) < 0 ||
				       proto_read_bool(c, &r->add_to_store_nar.dont_check_sigs,
						       err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_ADD_MULTIPLE_TO_STORE:
		return proto_read_bool(c, &r->add_multiple_to_store.repair, err) < 0 ||
				       proto_read_bool(c, &r->add_multiple_to_store.dont_check_sigs,
						       err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_REGISTER_DRV_OUTPUT:
		if (v >= PROTO_VERSION(1, 31))
			return proto_read_string(c, &r->register_drv_output.realisation, err);
		return proto_read_string(c, &r->register_drv_output.id, err) < 0 ||
				       proto_read_string(c, &r->register_drv_output.out_path, err) <
					       0
			       ? -1
			       : 0;
	case PROTO_OP_ADD_PERM_ROOT:
		return proto_read_string(c, &r->add_perm_root.path, err) < 0 ||
				       proto_read_string(c, &r->add_perm_root.gc_root, err) < 0
			       ? -1
			       : 0;
	case PROTO_OP_EXPORT_PATH:
		return proto_read_string(c, &r->export_path.path, err) < 0 ||
				       proto_read_u64(c, &r->export_path.sign, err) < 0
			       ? -1
			       : 0;
	default:
		return nib_error_set(err, NIB_E_PROTOCOL, 0, "invalid operation %" PRIu64, r->op);
	}
}

int proto_read_request(struct proto_conn *c, struct proto_request *ret, struct nib_error **err)
{
	struct proto_request r = { 0 };
	uint64_t op = 0;
	int eof;

	memset(ret, 0, sizeof(*ret));
	eof = proto_at_eof(c, err);
	if (eof < 0)
		return -1;
	if (eof > 0)
		return 0;
	proto_begin_message(c);
	if (proto_read_u64(c, &op, err) < 0)
		return -1;
	if (op == PROTO_OP_QUERY_FAILED_PATHS || op == PROTO_OP_CLEAR_FAILED_PATHS ||
	    proto_op_name(op) == NULL)
		return nib_error_set(err, NIB_E_PROTOCOL, 0, "invalid operation %" PRIu64, op);
	r.op = op;
	if (read_request_args(c, &r, err) < 0) {
		nib_error_prefix(err, "reading the arguments of %s", proto_op_name(op));
		proto_request_release(&r);
		return -1;
	}
	*ret = r;
	return 1;
}

int proto_write_request(struct proto_conn *c, const struct proto_request *r, struct nib_error **err)
{
	unsigned v = c->version;

	if (proto_op_name(r->op) == NULL || r->op == PROTO_OP_QUERY_FAILED_PATHS ||
	    r->op == PROTO_OP_CLEAR_FAILED_PATHS)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0, "invalid operation %" PRIu64,
				     r->op);
	proto_write_u64(c, r->op);
	if (op_takes_path(r->op)) {
		proto_write_string(c, r->path);
		return 0;
	}
	switch (r->op) {
	case PROTO_OP_ADD_TO_STORE:
		proto_write_string(c, r->add_to_store.name);
		if (v >= PROTO_VERSION(1, 25)) {
			proto_write_string(c, r->add_to_store.cam);
			proto_write_strings(c, r->add_to_store.refs);
			proto_write_bool(c, r->add_to_store.repair);
		} else {
			proto_write_bool(c, r->add_to_store.fixed);
			proto_write_u64(c, r->add_to_store.recursive);
			proto_write_string(c, r->add_to_store.hash_algo);
		}
		return 0;
	case PROTO_OP_ADD_TEXT_TO_STORE:
		proto_write_string(c, r->add_text_to_store.name);
		proto_write_bytes(c, r->add_text_to_store.text, r->add_text_to_store.text_len);
		proto_write_strings(c, r->add_text_to_store.refs);
		return 0;
	case PROTO_OP_BUILD_PATHS:
	case PROTO_OP_BUILD_PATHS_WITH_RESULTS:
	case PROTO_OP_QUERY_MISSING:
		if (write_derived_paths(c, r->build_paths.paths, r->build_paths.n_paths, err) < 0)
			return -1;
		if (r->op == PROTO_OP_QUERY_MISSING)
			return 0;
		if (r->op == PROTO_OP_BUILD_PATHS && v < PROTO_VERSION(1, 15)) {
			if (r->build_paths.mode != PROTO_BUILD_MODE_NORMAL)
				return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
						     "protocol 1.%u has no build modes",
						     PROTO_MINOR(v));
			return 0;
		}
		proto_write_u64(c, r->build_paths.mode);
		return 0;
	case PROTO_OP_SET_OPTIONS:
		write_client_settings(c, &r->set_options);
		return 0;
	case PROTO_OP_COLLECT_GARBAGE: {
		const struct proto_gc_options *o = &r->collect_garbage;
		proto_write_u64(c, o->action);
		proto_write_strings(c, o->paths_to_delete);
		proto_write_bool(c, o->ignore_liveness);
		proto_write_u64(c, o->max_freed);
		for (int i = 0; i < 3; i++)
			proto_write_u64(c, o->obsolete[i]);
		return 0;
	}
	case PROTO_OP_QUERY_VALID_PATHS:
		proto_write_strings(c, r->paths.paths);
		if (v >= PROTO_VERSION(1, 27))
			proto_write_bool(c, r->paths.substitute);
		return 0;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATHS:
		proto_write_strings(c, r->paths.paths);
		return 0;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS: {
		const struct proto_pair *p = r->query_substitutable_path_infos.paths;
		size_t n = r->query_substitutable_path_infos.n_paths;
		if (v >= PROTO_VERSION(1, 22)) {
			proto_write_u64(c, n);
			for (size_t i = 0; i < n; i++) {
				proto_write_string(c, p[i].first);
				proto_write_string(c, p[i].second);
			}
			return 0;
		}
		proto_write_u64(c, n);
		for (size_t i = 0; i < n; i++)
			proto_write_string(c, p[i].first);
		return 0;
	}
	case PROTO_OP_VERIFY_STORE:
		proto_write_bool(c, r->verify_store.check_contents);
		proto_write_bool(c, r->verify_store.repair);
		return 0;
	case PROTO_OP_BUILD_DERIVATION:
		proto_write_string(c, r->build_derivation.drv_path);
		proto_write_basic_derivation(c, &r->build_derivation.drv);
		proto_write_u64(c, r->build_derivation.mode);
		return 0;
	case PROTO_OP_ADD_SIGNATURES:
		proto_write_string(c, r->add_signatures.path);
		proto_write_strings(c, r->add_signatures.sigs);
		return 0;
	case PROTO_OP_ADD_TO_STORE_NAR:
		write_path_info(c, true, true, &r->add_to_store_nar.info);
		proto_write_bool(c, r->add_to_store_nar.repair);
		proto_write_bool(c, r->add_to_store_nar.dont_check_sigs);
		return 0;
	case PROTO_OP_ADD_MULTIPLE_TO_STORE:
		proto_write_bool(c, r->add_multiple_to_store.repair);
		proto_write_bool(c, r->add_multiple_to_store.dont_check_sigs);
		return 0;
	case PROTO_OP_REGISTER_DRV_OUTPUT:
		if (v >= PROTO_VERSION(1, 31)) {
			proto_write_string(c, r->register_drv_output.realisation);
		} else {
			proto_write_string(c, r->register_drv_output.id);
			proto_write_string(c, r->register_drv_output.out_path);
		}
		return 0;
	case PROTO_OP_ADD_PERM_ROOT:
		proto_write_string(c, r->add_perm_root.path);
		proto_write_string(c, r->add_perm_root.gc_root);
		return 0;
	case PROTO_OP_EXPORT_PATH:
		proto_write_string(c, r->export_path.path);
		proto_write_u64(c, r->export_path.sign);
		return 0;
	default:
		/* SyncWithGC, FindRoots, QueryAllValidPaths, OptimiseStore, ImportPaths */
		return 0;
	}
}

/* ---- replies --------------------------------------------------------------------------------- */

enum proto_reply_kind proto_reply_kind(uint64_t op, unsigned version)
{
	switch (op) {
	case PROTO_OP_IS_VALID_PATH:
	case PROTO_OP_HAS_SUBSTITUTES:
	case PROTO_OP_BUILD_PATHS:
	case PROTO_OP_ENSURE_PATH:
	case PROTO_OP_ADD_TEMP_ROOT:
	case PROTO_OP_ADD_INDIRECT_ROOT:
	case PROTO_OP_SYNC_WITH_GC:
	case PROTO_OP_EXPORT_PATH:
	case PROTO_OP_OPTIMISE_STORE:
	case PROTO_OP_VERIFY_STORE:
	case PROTO_OP_ADD_SIGNATURES:
	case PROTO_OP_ADD_BUILD_LOG:
		return PROTO_REPLY_U64;
	case PROTO_OP_QUERY_PATH_HASH:
	case PROTO_OP_ADD_TEXT_TO_STORE:
	case PROTO_OP_QUERY_DERIVER:
	case PROTO_OP_QUERY_PATH_FROM_HASH_PART:
	case PROTO_OP_ADD_PERM_ROOT:
		return PROTO_REPLY_STRING;
	case PROTO_OP_ADD_TO_STORE:
		return version >= PROTO_VERSION(1, 25) ? PROTO_REPLY_KEYED_PATH_INFO
						       : PROTO_REPLY_STRING;
	case PROTO_OP_QUERY_REFERENCES:
	case PROTO_OP_QUERY_REFERRERS:
	case PROTO_OP_QUERY_DERIVATION_OUTPUTS:
	case PROTO_OP_QUERY_ALL_VALID_PATHS:
	case PROTO_OP_IMPORT_PATHS:
	case PROTO_OP_QUERY_DERIVATION_OUTPUT_NAMES:
	case PROTO_OP_QUERY_VALID_PATHS:
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATHS:
	case PROTO_OP_QUERY_VALID_DERIVERS:
	case PROTO_OP_QUERY_REALISATION:
		return PROTO_REPLY_STRINGS;
	case PROTO_OP_QUERY_PATH_INFO:
		return PROTO_REPLY_PATH_INFO;
	case PROTO_OP_FIND_ROOTS:
	case PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP:
		return PROTO_REPLY_PAIRS;
	case PROTO_OP_BUILD_DERIVATION:
		return PROTO_REPLY_BUILD_RESULT;
	case PROTO_OP_BUILD_PATHS_WITH_RESULTS:
		return PROTO_REPLY_KEYED_BUILD_RESULTS;
	case PROTO_OP_QUERY_MISSING:
		return PROTO_REPLY_MISSING;
	case PROTO_OP_COLLECT_GARBAGE:
		return PROTO_REPLY_GC_RESULT;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFO:
		return PROTO_REPLY_SUBSTITUTABLE;
	case PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS:
		return PROTO_REPLY_SUBSTITUTABLES;
	case PROTO_OP_NAR_FROM_PATH:
		return PROTO_REPLY_STREAM;
	default:
		/* SetOptions, AddToStoreNar, AddMultipleToStore, RegisterDrvOutput, unknown ops */
		return PROTO_REPLY_NONE;
	}
}

void proto_reply_release(struct proto_reply *r)
{
	switch (r->kind) {
	case PROTO_REPLY_STRING:
		free(r->string);
		break;
	case PROTO_REPLY_STRINGS:
		strv_free(r->strings);
		break;
	case PROTO_REPLY_PATH_INFO:
	case PROTO_REPLY_KEYED_PATH_INFO:
		proto_path_info_release(&r->path_info.info);
		break;
	case PROTO_REPLY_PAIRS:
		proto_pairs_free(r->pairs.pairs, r->pairs.n);
		break;
	case PROTO_REPLY_BUILD_RESULT:
		proto_build_result_release(&r->build_result);
		break;
	case PROTO_REPLY_KEYED_BUILD_RESULTS:
		keyed_build_results_free(r->keyed_build_results.results, r->keyed_build_results.n);
		break;
	case PROTO_REPLY_MISSING:
		proto_missing_release(&r->missing);
		break;
	case PROTO_REPLY_GC_RESULT:
		proto_gc_result_release(&r->gc_result);
		break;
	case PROTO_REPLY_SUBSTITUTABLE:
	case PROTO_REPLY_SUBSTITUTABLES:
		proto_substitutables_free(r->substitutable.items, r->substitutable.n);
		break;
	default:
		break;
	}
	memset(r, 0, sizeof(*r));
}

static int read_reply_body(struct proto_conn *c, struct proto_reply *r, struct nib_error **err)
{
	switch (r->kind) {
	case PROTO_REPLY_NONE:
	case PROTO_REPLY_STREAM:
		return 0;
	case PROTO_REPLY_U64:
		return proto_read_u64(c, &r->u64, err);
	case PROTO_REPLY_STRING:
		return proto_read_string(c, &r->string, err);
	case PROTO_REPLY_STRINGS:
		return proto_read_strings(c, &r->strings, err);
	case PROTO_REPLY_PATH_INFO:
		r->path_info.valid = true;
		if (c->version >= PROTO_VERSION(1, 17) &&
		    proto_read_bool(c, &r->path_info.valid, err) < 0)
			return -1;
		if (!r->path_info.valid)
			return 0;
		return proto_read_path_info(c, false, &r->path_info.info, err);
	case PROTO_REPLY_KEYED_PATH_INFO:
		r->path_info.valid = true;
		return proto_read_path_info(c, true, &r->path_info.info, err);
	case PROTO_REPLY_PAIRS:
		/* FindRoots is grouped by target, not sorted by link; output maps are sorted. */
		return proto_read_pairs(c, r->op == PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP,
					&r->pairs.pairs, &r->pairs.n, err);
	case PROTO_REPLY_BUILD_RESULT:
		return proto_read_build_result(c, &r->build_result, err);
	case PROTO_REPLY_KEYED_BUILD_RESULTS: {
		uint64_t n = 0;
		size_t alloc = 0;
		struct proto_keyed_build_result *v = NULL;
		if (read_count(c, "result list", &n, err) < 0)
			return -1;
		for (uint64_t i = 0; i < n; i++) {
			ALLOC_GROW(v, i + 1, alloc);
			memset(&v[i], 0, sizeof(v[i]));
			r->keyed_build_results.results = v;
			r->keyed_build_results.n = (size_t)i + 1;
			if (proto_read_derived_path(c, &v[i].path, err) < 0 ||
			    proto_read_build_result(c, &v[i].result, err) < 0)
				return -1;
		}
		r->keyed_build_results.results = v;
		r->keyed_build_results.n = (size_t)n;
		return 0;
	}
	case PROTO_REPLY_MISSING:
		return proto_read_strings(c, &r->missing.will_build, err) < 0 ||
				       proto_read_strings(c, &r->missing.will_substitute, err) <
					       0 ||
				       proto_read_strings(c, &r->missing.unknown, err) < 0 ||
				       proto_read_u64(c, &r->missing.download_size, err) < 0 ||
				       proto_read_u64(c, &r->missing.nar_size, err) < 0
			       ? -1
			       : 0;
	case PROTO_REPLY_GC_RESULT:
		return proto_read_strings(c, &r->gc_result.paths, err) < 0 ||
				       proto_read_u64(c, &r->gc_result.bytes_freed, err) < 0 ||
				       proto_read_u64(c, &r->gc_result.obsolete, err) < 0
			       ? -1
			       : 0;
	case PROTO_REPLY_SUBSTITUTABLE:
		if (proto_read_bool(c, &r->substitutable.found, err) < 0)
			return -1;
		if (!r->substitutable.found)
			return 0;
		r->substitutable.items = xcalloc(1, sizeof(struct proto_substitutable));
		r->substitutable.n = 1;
		return read_substitutable(c, false, &r->substitutable.items[0], err);
	case PROTO_REPLY_SUBSTITUTABLES: {
		uint64_t n = 0;
		size_t alloc = 0;
		if (read_count(c, "list", &n, err) < 0)
			return -1;
		r->substitutable.found = true;
		for (uint64_t i = 0; i < n; i++) {
			ALLOC_GROW(r->substitutable.items, i + 1, alloc);
			memset(&r->substitutable.items[i], 0, sizeof(struct proto_substitutable));
			r->substitutable.n = (size_t)i + 1;
			if (read_substitutable(c, true, &r->substitutable.items[i], err) < 0)
				return -1;
		}
		return 0;
	}
	}
	return 0;
}

int proto_read_reply(struct proto_conn *c, uint64_t op, struct proto_reply *ret,
		     struct nib_error **err)
{
	struct proto_reply r = { 0 };

	r.op = op;
	r.kind = proto_reply_kind(op, c->version);
	proto_begin_message(c);
	if (read_reply_body(c, &r, err) < 0) {
		nib_error_prefix(err, "reading the reply to %s",
				 proto_op_name(op) != NULL ? proto_op_name(op)
							   : "an unknown operation");
		proto_reply_release(&r);
		return -1;
	}
	*ret = r;
	return 0;
}

void proto_write_reply(struct proto_conn *c, const struct proto_reply *r)
{
	if (r->kind != proto_reply_kind(r->op, c->version))
		abort();
	switch (r->kind) {
	case PROTO_REPLY_NONE:
	case PROTO_REPLY_STREAM:
		break;
	case PROTO_REPLY_U64:
		proto_write_u64(c, r->u64);
		break;
	case PROTO_REPLY_STRING:
		proto_write_string(c, r->string);
		break;
	case PROTO_REPLY_STRINGS:
		proto_write_strings(c, r->strings);
		break;
	case PROTO_REPLY_PATH_INFO:
		if (c->version >= PROTO_VERSION(1, 17))
			proto_write_bool(c, r->path_info.valid);
		else if (!r->path_info.valid)
			abort(); /* before 1.17 the daemon must send an error instead */
		if (r->path_info.valid)
			proto_write_path_info(c, false, &r->path_info.info);
		break;
	case PROTO_REPLY_KEYED_PATH_INFO:
		proto_write_path_info(c, true, &r->path_info.info);
		break;
	case PROTO_REPLY_PAIRS:
		proto_write_pairs(c, r->pairs.pairs, r->pairs.n);
		break;
	case PROTO_REPLY_BUILD_RESULT:
		proto_write_build_result(c, &r->build_result);
		break;
	case PROTO_REPLY_KEYED_BUILD_RESULTS:
		proto_write_u64(c, r->keyed_build_results.n);
		for (size_t i = 0; i < r->keyed_build_results.n; i++) {
			const struct proto_keyed_build_result *k =
				&r->keyed_build_results.results[i];
			cleanup_free char *s =
				proto_derived_path_to_string(&k->path, c->version, NULL);
			/* A result names what was asked for, which the version could express. */
			proto_write_string(c, s != NULL ? s : k->path.path);
			proto_write_build_result(c, &k->result);
		}
		break;
	case PROTO_REPLY_MISSING:
		proto_write_strings(c, r->missing.will_build);
		proto_write_strings(c, r->missing.will_substitute);
		proto_write_strings(c, r->missing.unknown);
		proto_write_u64(c, r->missing.download_size);
		proto_write_u64(c, r->missing.nar_size);
		break;
	case PROTO_REPLY_GC_RESULT:
		proto_write_strings(c, r->gc_result.paths);
		proto_write_u64(c, r->gc_result.bytes_freed);
		proto_write_u64(c, r->gc_result.obsolete);
		break;
	case PROTO_REPLY_SUBSTITUTABLE:
		proto_write_bool(c, r->substitutable.found && r->substitutable.n > 0);
		if (r->substitutable.found && r->substitutable.n > 0)
			write_substitutable(c, false, &r->substitutable.items[0]);
		break;
	case PROTO_REPLY_SUBSTITUTABLES:
		proto_write_u64(c, r->substitutable.n);
		for (size_t i = 0; i < r->substitutable.n; i++)
			write_substitutable(c, true, &r->substitutable.items[i]);
		break;
	}
}

/* ---- client calls ---------------------------------------------------------------------------- */

int proto_client_finish(struct proto_conn *c, uint64_t op, const struct proto_log_handlers *h,
			struct proto_reply *ret_reply, struct proto_error **ret_error,
			struct nib_error **err)
{
	struct proto_error *remote = NULL;
	int r = proto_read_stderr(c, h, &remote, err);

	if (r < 0)
		return -1;
	if (r > 0) {
		*ret_error = remote;
		return 1;
	}
	return proto_read_reply(c, op, ret_reply, err);
}

int proto_client_call(struct proto_conn *c, const struct proto_request *req,
		      const struct proto_log_handlers *h, struct proto_reply *ret_reply,
		      struct proto_error **ret_error, struct nib_error **err)
{
	if (proto_write_request(c, req, err) < 0)
		return -1;
	return proto_client_finish(c, req->op, h, ret_reply, ret_error, err);
}

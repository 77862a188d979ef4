/*
 * nar.c - NAR dump, hash and restore.
 *
 * Dumping writes into one large buffer and hands it to the sink when full;
 * file contents are read straight into that buffer, so each byte is copied
 * once (kernel to buffer) and then hashed or written in large blocks.
 *
 * Restoring parses strictly: only the canonical serialisation is accepted,
 * so an archive that restores without error dumps back to the same bytes.
 * Every node is created relative to its parent's directory fd with
 * O_EXCL/O_NOFOLLOW semantics and names are single components, so nothing
 * in the archive can make a write land outside the destination.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "nar.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

#define NAR_MAGIC "nix-archive-1"
/* Large enough to amortise syscalls and hash calls, small enough for L2. */
#define NAR_BUF_SIZE ((size_t)256 * 1024)
#define NAR_DENTS_SIZE ((size_t)32 * 1024)
#define NAR_DUMP_MAX_DEPTH 4096
#define NAR_DEFAULT_MAX_DEPTH 1024
/* Longest keyword of the format ("nix-archive-1", "executable"). */
#define NAR_TOKEN_MAX 16

static const unsigned char zeros[8];

static inline size_t pad_len(uint64_t n)
{
	return (size_t)((8 - (n & 7)) & 7);
}

/* ------------------------------------------------------------------ */
/* Writing */

struct writer {
	nar_sink_fn sink;
	void *userdata;
	unsigned char *buf;
	size_t len;
	size_t cap;
};

static int w_flush(struct writer *w, struct nib_error **err)
{
	size_t n = w->len;

	if (n == 0)
		return 0;
	w->len = 0;
	return w->sink(w->userdata, w->buf, n, err);
}

static int w_add(struct writer *w, const void *data, size_t n, struct nib_error **err)
{
	if (n > w->cap - w->len) {
		if (w_flush(w, err) < 0)
			return -1;
		if (n >= w->cap)
			return w->sink(w->userdata, data, n, err);
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	return 0;
}

static int w_u64(struct writer *w, uint64_t v, struct nib_error **err)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return w_add(w, b, sizeof(b), err);
}

static int w_str(struct writer *w, const void *s, size_t n, struct nib_error **err)
{
	if (w_u64(w, n, err) < 0 || w_add(w, s, n, err) < 0)
		return -1;
	return w_add(w, zeros, pad_len(n), err);
}

#define w_tok(w, lit, err) w_str((w), (lit), sizeof(lit) - 1, (err))

/* ------------------------------------------------------------------ */
/* Dumping */

struct dumper {
	struct writer w;
	struct strbuf path; /* the node being dumped, for messages */
	unsigned char *dents;
};

struct dent {
	const char *name;
	unsigned char type;
};

static int dump_node(struct dumper *d, int dirfd, const char *name, unsigned char dtype,
		     unsigned depth, struct nib_error **err);

static int dump_regular(struct dumper *d, int fd, const struct stat *st, struct nib_error **err)
{
	struct writer *w = &d->w;
	uint64_t size = (uint64_t)st->st_size, remaining = size;

	if (w_tok(w, "(", err) < 0 || w_tok(w, "type", err) < 0 || w_tok(w, "regular", err) < 0)
		return -1;
	if ((st->st_mode & S_IXUSR) && (w_tok(w, "executable", err) < 0 || w_tok(w, "", err) < 0))
		return -1;
	if (w_tok(w, "contents", err) < 0 || w_u64(w, size, err) < 0)
		return -1;
	if (size > NAR_BUF_SIZE)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (remaining > 0) {
		size_t want;
		ssize_t n;

		if (w->len == w->cap && w_flush(w, err) < 0)
			return -1;
		want = w->cap - w->len;
		if (want > remaining)
			want = (size_t)remaining;
		n = read(fd, w->buf + w->len, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "cannot read '%s'", d->path.buf);
		}
		if (n == 0)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "'%s' shrank while it was being archived",
					     d->path.buf);
		w->len += (size_t)n;
		remaining -= (uint64_t)n;
	}
	if (w_add(w, zeros, pad_len(size), err) < 0)
		return -1;
	return w_tok(w, ")", err);
}

static int dump_symlink(struct dumper *d, int dirfd, const char *name, struct nib_error **err)
{
	struct writer *w = &d->w;
	char target[NAR_TARGET_MAX + 1];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target));

	if (n < 0)
		return nib_error_errno(err, "cannot read symlink '%s'", d->path.buf);
	if ((size_t)n > NAR_TARGET_MAX)
		return nib_error_set(err, NIB_E_INVALID, 0, "target of symlink '%s' is too long",
				     d->path.buf);
	if (w_tok(w, "(", err) < 0 || w_tok(w, "type", err) < 0 || w_tok(w, "symlink", err) < 0 ||
	    w_tok(w, "target", err) < 0 || w_str(w, target, (size_t)n, err) < 0)
		return -1;
	return w_tok(w, ")", err);
}

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

/* Read every entry of fd except "." and "..", sorted bytewise by name. */
static int read_dir(struct dumper *d, int fd, struct strbuf *names, struct dent **ret,
		    size_t *ret_n, struct nib_error **err)
{
	cleanup_free size_t *offs = NULL;
	cleanup_free unsigned char *types = NULL;
	struct dent *ents;
	size_t n = 0, alloc = 0, alloc_t = 0;

	for (;;) {
		ssize_t got = getdents64(fd, d->dents, NAR_DENTS_SIZE);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "cannot read directory '%s'", d->path.buf);
		}
		if (got == 0)
			break;
		for (size_t pos = 0; pos < (size_t)got;) {
			struct dirent64 *de = (struct dirent64 *)(void *)(d->dents + pos);
			const char *nm = de->d_name;

			pos += de->d_reclen;
			if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
				continue;
			ALLOC_GROW(offs, n + 1, alloc);
			ALLOC_GROW(types, n + 1, alloc_t);
			offs[n] = names->len;
			types[n] = de->d_type;
			strbuf_add(names, nm, strlen(nm) + 1);
			n++;
		}
	}
	ents = xcalloc(n ? n : 1, sizeof(*ents));
	for (size_t i = 0; i < n; i++) {
		ents[i].name = names->buf + offs[i];
		ents[i].type = types[i];
	}
	sort_array(ents, n, sizeof(*ents), dent_cmp);
	*ret = ents;
	*ret_n = n;
	return 0;
}

static int dump_directory(struct dumper *d, int dirfd, const char *name, unsigned depth,
			  struct nib_error **err)
{
	struct writer *w = &d->w;
	cleanup_strbuf struct strbuf names = STRBUF_INIT;
	cleanup_free struct dent *ents = NULL;
	cleanup_close int fd = -1;
	size_t n = 0, plen = d->path.len;

	if (depth >= NAR_DUMP_MAX_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply",
				     d->path.buf);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return nib_error_errno(err, "cannot open directory '%s'", d->path.buf);
	if (read_dir(d, fd, &names, &ents, &n, err) < 0)
		return -1;
	if (w_tok(w, "(", err) < 0 || w_tok(w, "type", err) < 0 || w_tok(w, "directory", err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t nlen = strlen(ents[i].name);
		int r;

		if (nlen > NAR_NAME_MAX)
			return nib_error_set(err, NIB_E_INVALID, 0, "name of '%s/%s' is too long",
					     d->path.buf, ents[i].name);
		if (w_tok(w, "entry", err) < 0 || w_tok(w, "(", err) < 0 ||
		    w_tok(w, "name", err) < 0 || w_str(w, ents[i].name, nlen, err) < 0 ||
		    w_tok(w, "node", err) < 0)
			return -1;
		if (plen != 1 || d->path.buf[0] != '/')
			strbuf_addch(&d->path, '/');
		strbuf_add(&d->path, ents[i].name, nlen);
		r = dump_node(d, fd, ents[i].name, ents[i].type, depth + 1, err);
		strbuf_setlen(&d->path, plen);
		if (r < 0 || w_tok(w, ")", err) < 0)
			return -1;
	}
	return w_tok(w, ")", err);
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	default:
		return "unknown";
	}
}

static int dump_node(struct dumper *d, int dirfd, const char *name, unsigned char dtype,
		     unsigned depth, struct nib_error **err)
{
	struct stat st;

	/* d_type saves a stat per entry; anything unclear is looked at again. */
	if (dtype != DT_REG && dtype != DT_DIR && dtype != DT_LNK) {
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return nib_error_errno(err, "cannot stat '%s'", d->path.buf);
		if (S_ISREG(st.st_mode))
			dtype = DT_REG;
		else if (S_ISDIR(st.st_mode))
			dtype = DT_DIR;
		else if (S_ISLNK(st.st_mode))
			dtype = DT_LNK;
		else
			return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
					     "'%s' is a %s, which a NAR cannot hold", d->path.buf,
					     type_name(st.st_mode));
	}
	switch (dtype) {
	case DT_REG: {
		/*
		 * O_NOFOLLOW: never read through a symlink swapped in since the
		 * directory was read; O_NONBLOCK: never hang on a swapped-in
		 * fifo.  What counts is the fstat of the fd actually read.
		 */
		cleanup_close int fd = openat(
			dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return nib_error_errno(err, "cannot open '%s'", d->path.buf);
		if (fstat(fd, &st) < 0)
			return nib_error_errno(err, "cannot stat '%s'", d->path.buf);
		if (!S_ISREG(st.st_mode))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "'%s' changed while it was being archived",
					     d->path.buf);
		return dump_regular(d, fd, &st, err);
	}
	case DT_LNK:
		return dump_symlink(d, dirfd, name, err);
	default:
		return dump_directory(d, dirfd, name, depth, err);
	}
}

int nar_dump_at(int dirfd, const char *path, nar_sink_fn sink, void *userdata,
		struct nib_error **err)
{
	cleanup_free unsigned char *buf = xmalloc(NAR_BUF_SIZE);
	cleanup_free unsigned char *dents = xmalloc(NAR_DENTS_SIZE);
	struct dumper d = {
		.w = { .sink = sink, .userdata = userdata, .buf = buf, .cap = NAR_BUF_SIZE },
		.path = STRBUF_INIT,
		.dents = dents,
	};
	int r;

	strbuf_addstr(&d.path, path);
	r = w_tok(&d.w, NAR_MAGIC, err);
	if (r == 0)
		r = dump_node(&d, dirfd, path, DT_UNKNOWN, 0, err);
	if (r == 0)
		r = w_flush(&d.w, err);
	strbuf_release(&d.path);
	return r;
}

struct hash_sink {
	struct hash_ctx *ctx;
	uint64_t size;
	nar_sink_fn also;
	void *also_data;
};

static int hash_sink_fn(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	struct hash_sink *h = userdata;

	hash_ctx_update(h->ctx, data, len);
	h->size += len;
	return h->also ? h->also(h->also_data, data, len, err) : 0;
}

int nar_hash_at(int dirfd, const char *path, nar_sink_fn also, void *also_data,
		struct hash *ret_hash, uint64_t *ret_size, struct nib_error **err)
{
	cleanup_hash_ctx struct hash_ctx *ctx = hash_ctx_new(HASH_SHA256);
	struct hash_sink h = { .ctx = ctx, .also = also, .also_data = also_data };

	if (nar_dump_at(dirfd, path, hash_sink_fn, &h, err) < 0)
		return -1;
	hash_ctx_final(ctx, ret_hash);
	if (ret_size != NULL)
		*ret_size = h.size;
	return 0;
}

int nar_hash_path(const char *path, struct hash *ret_hash, uint64_t *ret_size,
		  struct nib_error **err)
{
	struct hash h;
	uint64_t size = 0;

	if (nar_hash_at(AT_FDCWD, path, NULL, NULL, &h, &size, err) < 0)
		return -1;
	*ret_hash = h;
	*ret_size = size;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reading */

struct reader {
	nar_source_fn src;
	void *userdata;
	unsigned char *buf;
	size_t pos, len, cap;
	uint64_t off;	/* archive offset of buf[pos] */
	uint64_t total; /* bytes obtained from the source */
	uint64_t max_bytes;
	bool exact;
	nar_sink_fn tee;
	void *tee_data;
};

static int bad(struct reader *r, struct nib_error **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct reader *r, struct nib_error **err, const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	return nib_error_set(err, NIB_E_INVALID, 0, "invalid archive at byte %" PRIu64 ": %s",
			     r->off, msg);
}

/*
 * Refill the empty buffer.  want is how many bytes the archive must still
 * hold at least; exact mode asks for no more.  Returns the number of bytes
 * now available, 0 at the end of the source, -1 on error.
 */
static ssize_t r_fill(struct reader *r, uint64_t want, struct nib_error **err)
{
	size_t ask = r->cap;
	ssize_t n;

	if (r->exact && want < ask)
		ask = (size_t)want;
	/* Ask for one byte past the limit at most, to notice exceeding it. */
	if (r->max_bytes && r->max_bytes - r->total + 1 < ask)
		ask = (size_t)(r->max_bytes - r->total + 1);
	if (ask == 0)
		ask = 1;
	n = r->src(r->userdata, r->buf, ask, err);
	if (n < 0) {
		if (err != NULL && *err == NULL)
			nib_error_set(err, NIB_E_SYS, 0, "cannot read archive");
		return -1;
	}
	if ((size_t)n > ask)
		abort(); /* the source broke its contract */
	r->pos = 0;
	r->len = (size_t)n;
	r->total += (uint64_t)n;
	if (r->max_bytes && r->total > r->max_bytes)
		return bad(r, err, "archive is larger than the limit of %" PRIu64 " bytes",
			   r->max_bytes);
	if (n > 0 && r->tee && r->tee(r->tee_data, r->buf, (size_t)n, err) < 0)
		return -1;
	return n;
}

/* Read exactly n bytes into out (out may be NULL to discard). */
static int r_read(struct reader *r, void *out, size_t n, struct nib_error **err)
{
	unsigned char *o = out;

	while (n > 0) {
		size_t k;

		if (r->pos == r->len) {
			ssize_t got = r_fill(r, n, err);
			if (got < 0)
				return -1;
			if (got == 0)
				return bad(r, err, "unexpected end of archive");
		}
		k = r->len - r->pos;
		if (k > n)
			k = n;
		if (o != NULL) {
			memcpy(o, r->buf + r->pos, k);
			o += k;
		}
		r->pos += k;
		r->off += k;
		n -= k;
	}
	return 0;
}

static int r_u64(struct reader *r, uint64_t *ret, struct nib_error **err)
{
	unsigned char b[8];
	uint64_t v = 0;

	if (r_read(r, b, sizeof(b), err) < 0)
		return -1;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	*ret = v;
	return 0;
}

static int r_pad(struct reader *r, uint64_t len, struct nib_error **err)
{
	unsigned char b[8];
	size_t n = pad_len(len);

	if (r_read(r, b, n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return bad(r, err, "non-zero padding");
	return 0;
}

/*
 * Read a string of at most max bytes into out (max + 1 bytes, NUL added).
 * what names it for the message when it is longer.
 */
static int r_string(struct reader *r, char *out, size_t max, size_t *ret_len, const char *what,
		    struct nib_error **err)
{
	uint64_t len;

	if (r_u64(r, &len, err) < 0)
		return -1;
	if (len > max)
		return bad(r, err, "%s is %" PRIu64 " bytes long, more than %zu", what, len, max);
	if (r_read(r, out, (size_t)len, err) < 0 || r_pad(r, len, err) < 0)
		return -1;
	out[len] = '\0';
	*ret_len = (size_t)len;
	return 0;
}

/* Quote a short keyword for a message: printable ASCII as is, the rest as \xNN. */
static const char *show(const char *s, size_t len, char out[NAR_TOKEN_MAX * 4 + 1])
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	out[o] = '\0';
	return out;
}

/* Read a keyword; expect describes what was allowed here, for the message. */
static int r_token(struct reader *r, char tok[NAR_TOKEN_MAX + 1], size_t *ret_len,
		   const char *expect, struct nib_error **err)
{
	uint64_t len;

	if (r_u64(r, &len, err) < 0)
		return -1;
	if (len > NAR_TOKEN_MAX)
		return bad(r, err, "expected %s, found a %" PRIu64 "-byte string", expect, len);
	if (r_read(r, tok, (size_t)len, err) < 0 || r_pad(r, len, err) < 0)
		return -1;
	tok[len] = '\0';
	*ret_len = (size_t)len;
	return 0;
}

static bool tok_is(const char *tok, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(tok, lit, len) == 0;
}

static int r_expect(struct reader *r, const char *lit, struct nib_error **err)
{
	char tok[NAR_TOKEN_MAX + 1], shown[NAR_TOKEN_MAX * 4 + 1];
	cleanup_free char *want = xasprintf("'%s'", lit);
	size_t len;

	if (r_token(r, tok, &len, want, err) < 0)
		return -1;
	if (!tok_is(tok, len, lit))
		return bad(r, err, "expected %s, found '%s'", want, show(tok, len, shown));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Restoring */

struct restorer {
	struct reader r;
	uint64_t max_entries, entries;
	unsigned max_depth;
	bool dry;	  /* parse only */
	bool created_top; /* the top node exists and must go on failure */
	struct strbuf path;
};

static int restore_node(struct restorer *x, int dirfd, const char *name, unsigned depth,
			struct nib_error **err);

static const char *where(struct restorer *x)
{
	return x->path.len ? x->path.buf : "/";
}

static void note_created(struct restorer *x, unsigned depth)
{
	if (depth == 0)
		x->created_top = true;
}

/* Stream n content bytes from the archive to fd (or nowhere when fd < 0). */
static int restore_contents(struct restorer *x, int fd, uint64_t n, struct nib_error **err)
{
	struct reader *r = &x->r;

	while (n > 0) {
		size_t k;

		if (r->pos == r->len) {
			ssize_t got = r_fill(r, n, err);
			if (got < 0)
				return -1;
			if (got == 0)
				return bad(r, err,
					   "unexpected end of archive in the contents of '%s'",
					   where(x));
		}
		k = r->len - r->pos;
		if (k > n)
			k = (size_t)n;
		if (fd >= 0 && write_full(fd, r->buf + r->pos, k, err) < 0)
			return nib_error_prefix(err, "writing '%s'", where(x));
		r->pos += k;
		r->off += k;
		n -= k;
	}
	return 0;
}

static int restore_regular(struct restorer *x, int dirfd, const char *name, unsigned depth,
			   struct nib_error **err)
{
	struct reader *r = &x->r;
	char tok[NAR_TOKEN_MAX + 1], shown[NAR_TOKEN_MAX * 4 + 1];
	cleanup_close int fd = -1;
	bool exec = false;
	uint64_t size;
	size_t len;

	if (r_token(r, tok, &len, "'executable' or 'contents'", err) < 0)
		return -1;
	if (tok_is(tok, len, "executable")) {
		if (r_expect(r, "", err) < 0 || r_expect(r, "contents", err) < 0)
			return -1;
		exec = true;
	} else if (!tok_is(tok, len, "contents")) {
		return bad(r, err, "expected 'executable' or 'contents', found '%s'",
			   show(tok, len, shown));
	}
	if (r_u64(r, &size, err) < 0)
		return -1;
	if (r->max_bytes && size > r->max_bytes - r->off)
		return bad(r, err,
			   "contents of '%s' (%" PRIu64
			   " bytes) exceed the archive limit of %" PRIu64 " bytes",
			   where(x), size, r->max_bytes);
	if (!x->dry) {
		fd = openat(dirfd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
			    exec ? 0755 : 0644);
		if (fd < 0)
			return nib_error_errno(err, "cannot create '%s'", where(x));
		note_created(x, depth);
	}
	if (restore_contents(x, fd, size, err) < 0 || r_pad(r, size, err) < 0 ||
	    r_expect(r, ")", err) < 0)
		return -1;
	if (fd >= 0 && close(TAKE_FD(fd)) < 0)
		return nib_error_errno(err, "cannot write '%s'", where(x));
	return 0;
}

static int restore_symlink(struct restorer *x, int dirfd, const char *name, unsigned depth,
			   struct nib_error **err)
{
	struct reader *r = &x->r;
	char target[NAR_TARGET_MAX + 1];
	size_t len;

	if (r_expect(r, "target", err) < 0 ||
	    r_string(r, target, NAR_TARGET_MAX, &len, "symlink target", err) < 0)
		return -1;
	if (len == 0)
		return bad(r, err, "symlink '%s' has an empty target", where(x));
	if (memchr(target, '\0', len) != NULL)
		return bad(r, err, "target of symlink '%s' contains a NUL byte", where(x));
	if (r_expect(r, ")", err) < 0)
		return -1;
	if (!x->dry) {
		if (symlinkat(target, dirfd, name) < 0)
			return nib_error_errno(err, "cannot create symlink '%s'", where(x));
		note_created(x, depth);
	}
	return 0;
}

static bool name_valid(const char *name, size_t len)
{
	if (len == 0 || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

static int restore_directory(struct restorer *x, int dirfd, const char *name, unsigned depth,
			     struct nib_error **err)
{
	struct reader *r = &x->r;
	char bufa[NAR_NAME_MAX + 1], bufb[NAR_NAME_MAX + 1];
	char *cur = bufa, *prev = bufb;
	char tok[NAR_TOKEN_MAX + 1], shown[NAR_TOKEN_MAX * 4 + 1];
	cleanup_close int fd = -1;
	size_t plen = x->path.len, len, prev_len = 0;
	bool have_prev = false;

	if (!x->dry) {
		if (mkdirat(dirfd, name, 0755) < 0)
			return nib_error_errno(err, "cannot create directory '%s'", where(x));
		note_created(x, depth);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return nib_error_errno(err, "cannot open directory '%s'", where(x));
	}
	for (;;) {
		int c;

		if (r_token(r, tok, &len, "'entry' or ')'", err) < 0)
			return -1;
		if (tok_is(tok, len, ")"))
			return 0;
		if (!tok_is(tok, len, "entry"))
			return bad(r, err, "expected 'entry' or ')' in directory '%s', found '%s'",
				   where(x), show(tok, len, shown));
		if (depth + 1 > x->max_depth)
			return bad(r, err, "directories nested more than %u deep", x->max_depth);
		if (r_expect(r, "(", err) < 0 || r_expect(r, "name", err) < 0 ||
		    r_string(r, cur, NAR_NAME_MAX, &len, "entry name", err) < 0)
			return -1;
		if (!name_valid(cur, len))
			return bad(r, err, "invalid entry name '%s' in directory '%s'",
				   memchr(cur, '\0', len) ? "(contains NUL)" : cur, where(x));
		if (have_prev) {
			c = memcmp(prev, cur, len < prev_len ? len : prev_len);
			if (c == 0)
				c = prev_len < len ? -1 : prev_len > len ? 1 : 0;
			if (c == 0)
				return bad(r, err, "duplicate entry '%s' in directory '%s'", cur,
					   where(x));
			if (c > 0)
				return bad(r, err, "entry '%s' is out of order after '%s' in '%s'",
					   cur, prev, where(x));
		}
		if (r_expect(r, "node", err) < 0)
			return -1;
		strbuf_addch(&x->path, '/');
		strbuf_add(&x->path, cur, len);
		c = restore_node(x, fd, cur, depth + 1, err);
		strbuf_setlen(&x->path, plen);
		if (c < 0 || r_expect(r, ")", err) < 0)
			return -1;
		{
			char *t = prev;
			prev = cur;
			cur = t;
		}
		prev_len = len;
		have_prev = true;
	}
}

static int restore_node(struct restorer *x, int dirfd, const char *name, unsigned depth,
			struct nib_error **err)
{
	struct reader *r = &x->r;
	char tok[NAR_TOKEN_MAX + 1], shown[NAR_TOKEN_MAX * 4 + 1];
	size_t len;

	if (x->max_entries && ++x->entries > x->max_entries)
		return bad(r, err, "more than %" PRIu64 " entries", x->max_entries);
	if (r_expect(r, "(", err) < 0 || r_expect(r, "type", err) < 0 ||
	    r_token(r, tok, &len, "a node type", err) < 0)
		return -1;
	if (tok_is(tok, len, "regular"))
		return restore_regular(x, dirfd, name, depth, err);
	if (tok_is(tok, len, "symlink"))
		return restore_symlink(x, dirfd, name, depth, err);
	if (tok_is(tok, len, "directory"))
		return restore_directory(x, dirfd, name, depth, err);
	return bad(r, err, "unknown node type '%s' for '%s'", show(tok, len, shown), where(x));
}

static int run_restore(int dirfd, const char *name, bool dry, nar_source_fn src, void *userdata,
		       const struct nar_restore_opts *opts, struct nib_error **err)
{
	static const struct nar_restore_opts no_opts;
	cleanup_free unsigned char *buf = NULL;
	struct restorer x = { .dry = dry, .path = STRBUF_INIT };
	struct reader *r = &x.r;
	int ret;

	if (opts == NULL)
		opts = &no_opts;
	buf = xmalloc(NAR_BUF_SIZE);
	*r = (struct reader){
		.src = src,
		.userdata = userdata,
		.buf = buf,
		.cap = NAR_BUF_SIZE,
		.max_bytes = opts->limits.max_bytes,
		.exact = opts->exact,
		.tee = opts->tee,
		.tee_data = opts->tee_data,
	};
	/* Messages name nodes as name/sub/path (or /sub/path when parsing only). */
	if (!dry)
		strbuf_addstr(&x.path, name);
	x.max_entries = opts->limits.max_entries;
	x.max_depth = opts->limits.max_depth ? opts->limits.max_depth : NAR_DEFAULT_MAX_DEPTH;

	ret = r_expect(r, NAR_MAGIC, err);
	if (ret < 0)
		nib_error_prefix(err, "not a NAR");
	if (ret == 0)
		ret = restore_node(&x, dirfd, name, 0, err);
	if (ret == 0 && !r->exact) {
		ssize_t more = r->pos < r->len ? 1 : r_fill(r, 1, err);
		if (more > 0)
			ret = bad(r, err, "trailing data after the end of the archive");
		else if (more < 0)
			ret = -1;
	}
	strbuf_release(&x.path);
	if (ret < 0 && x.created_top) {
		cleanup_error struct nib_error *e2 = NULL;
		/* Best effort: the first error is the one worth reporting. */
		(void)rm_rf_at(dirfd, name, &e2);
	}
	return ret;
}

int nar_restore_at(int dirfd, const char *name, nar_source_fn src, void *userdata,
		   const struct nar_restore_opts *opts, struct nib_error **err)
{
	if (!name_valid(name, strlen(name)))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "cannot restore to '%s': not a single file name", name);
	return run_restore(dirfd, name, false, src, userdata, opts, err);
}

int nar_parse(nar_source_fn src, void *userdata, const struct nar_restore_opts *opts,
	      struct nib_error **err)
{
	return run_restore(-1, "-", true, src, userdata, opts, err);
}

int nar_restore(const char *dest, nar_source_fn src, void *userdata,
		const struct nar_restore_limits *limits, struct nib_error **err)
{
	cleanup_free char *copy = xstrdup(dest);
	cleanup_close int dfd = -1;
	struct nar_restore_opts opts = { 0 };
	char *slash, *base;
	size_t n = strlen(copy);

	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	slash = strrchr(copy, '/');
	if (slash == NULL) {
		base = copy;
		dfd = openat(AT_FDCWD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		base = slash + 1;
		*slash = '\0';
		dfd = openat(AT_FDCWD, slash == copy ? "/" : copy,
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (!name_valid(base, strlen(base)))
		return nib_error_set(err, NIB_E_INVALID, 0, "cannot restore to '%s'", dest);
	if (dfd < 0)
		return nib_error_errno(err, "cannot open the parent directory of '%s'", dest);
	if (limits != NULL)
		opts.limits = *limits;
	if (run_restore(dfd, base, false, src, userdata, &opts, err) < 0)
		return nib_error_prefix(err, "restoring '%s'", dest);
	return 0;
}

ssize_t nar_fd_source(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	int fd = *(int *)userdata;

	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return nib_error_errno(err, "cannot read archive");
	}
}

int nar_restore_fd(const char *dest, int fd, const struct nar_restore_limits *limits,
		   struct nib_error **err)
{
	return nar_restore(dest, nar_fd_source, &fd, limits, err);
}

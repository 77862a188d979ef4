#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "archive.h"
#include "cleanup.h"
#include "util.h"
#include "banned.h"

DEFINE_CLEANUP_FUNC(struct archive, archive_read_free)
#define cleanup_archive_read __attribute__((cleanup(archive_read_freep)))

struct archive_log {
	char *path;	/* final name */
	char *tmp_path; /* what is being written */
	int fd;
	bool compress;
	struct archive *a; /* the compressor, started by the first byte (NULL until then) */
	uint64_t size;
};

/*
 * What bzip2 writes for no data at all (block size 1, as below): the
 * stream header and its end-of-stream marker with a zero CRC.
 */
static const unsigned char empty_bzip2[] = { 'B',  'Z',	 'h',  '1',  0x17, 0x72, 0x45,
					     0x38, 0x50, 0x90, 0x00, 0x00, 0x00, 0x00 };

static int archive_fail(struct nib_error **err, struct archive *a, const char *what,
			const char *path)
{
	int e = archive_errno(a);
	const char *msg = archive_error_string(a);

	return nib_error_set(err, NIB_E_ARCHIVE, 0, "%s '%s': %s%s%s", what, path,
			     msg != NULL ? msg : "unknown libarchive error", e > 0 ? ": " : "",
			     e > 0 ? strerror(e) : "");
}

void archive_log_free(struct archive_log *w)
{
	if (w == NULL)
		return;
	/*
	 * Freeing closes the stream (a flush into the temporary file, which is
	 * removed below); archive_write_fail first would skip the filters'
	 * close and leak the compressor.
	 */
	if (w->a != NULL)
		archive_write_free(w->a);
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path != NULL)
		(void)unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->path);
	free(w);
}

int archive_log_open(const char *path, bool compress, struct archive_log **ret,
		     struct nib_error **err)
{
	cleanup_archive_log struct archive_log *w = xcalloc(1, sizeof(*w));

	w->fd = -1;
	w->path = xstrdup(path);
	w->tmp_path = xasprintf("%s.tmp-%ld-XXXXXX", path, (long)getpid());
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0) {
		int e = errno;
		free(w->tmp_path);
		w->tmp_path = NULL;
		errno = e;
		return nib_error_errno(err, "cannot create a log file next to '%s'", path);
	}
	if (fchmod(w->fd, 0644) < 0)
		return nib_error_errno(err, "cannot set the mode of '%s'", w->tmp_path);
	/*
	 * The compressor starts with the first byte: bzip2 sets up about a
	 * megabyte of tables (a few hundred microseconds to map, touch and
	 * unmap), which a build that prints nothing does not need.
	 */
	w->compress = compress;
	*ret = TAKE_PTR(w);
	return 0;
}

static int start_compressor(struct archive_log *w, struct nib_error **err)
{
	struct archive_entry *entry;

	w->a = archive_write_new();
	if (w->a == NULL)
		return nib_error_set(err, NIB_E_ARCHIVE, ENOMEM, "cannot start a log archive");
	if (archive_write_add_filter_bzip2(w->a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(w->a, "bzip2", "compression-level", "1") !=
		    ARCHIVE_OK ||
	    archive_write_set_format_raw(w->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(w->a, w->fd) != ARCHIVE_OK)
		return archive_fail(err, w->a, "cannot write", w->tmp_path);
	/* The raw format stores one regular file's data and nothing else. */
	entry = archive_entry_new();
	if (entry == NULL)
		return nib_error_set(err, NIB_E_ARCHIVE, ENOMEM, "cannot start a log archive");
	archive_entry_set_filetype(entry, AE_IFREG);
	archive_entry_set_pathname(entry, "log");
	if (archive_write_header(w->a, entry) != ARCHIVE_OK) {
		archive_entry_free(entry);
		return archive_fail(err, w->a, "cannot write", w->tmp_path);
	}
	archive_entry_free(entry);
	return 0;
}

int archive_log_write(struct archive_log *w, const void *data, size_t len, struct nib_error **err)
{
	if (len == 0)
		return 0;
	if (w->compress && w->a == NULL && start_compressor(w, err) < 0)
		return -1;
	if (w->a == NULL) {
		if (write_full(w->fd, data, len, err) < 0)
			return nib_error_prefix(err, "writing '%s'", w->tmp_path);
	} else {
		const char *p = data;
		while (len > 0) {
			la_ssize_t n = archive_write_data(w->a, p, len);
			if (n <= 0)
				return archive_fail(err, w->a, "cannot write", w->tmp_path);
			p += n;
			len -= (size_t)n;
			w->size += (uint64_t)n;
		}
		return 0;
	}
	w->size += len;
	return 0;
}

uint64_t archive_log_size(const struct archive_log *w)
{
	return w->size;
}

int archive_log_commit(struct archive_log *w, bool do_fsync, struct nib_error **err)
{
	/* Frees w on every return: commit consumes the writer. */
	cleanup_archive_log __attribute__((unused)) struct archive_log *owned = w;

	if (w->a != NULL) {
		if (archive_write_close(w->a) != ARCHIVE_OK)
			return archive_fail(err, w->a, "cannot finish", w->tmp_path);
		archive_write_free(w->a);
		w->a = NULL;
	} else if (w->compress && write_full(w->fd, empty_bzip2, sizeof(empty_bzip2), err) < 0) {
		return nib_error_prefix(err, "writing '%s'", w->tmp_path);
	}
	if (do_fsync && fsync(w->fd) < 0)
		return nib_error_errno(err, "cannot sync '%s'", w->tmp_path);
	if (close(w->fd) < 0) {
		w->fd = -1;
		return nib_error_errno(err, "cannot close '%s'", w->tmp_path);
	}
	w->fd = -1;
	if (rename(w->tmp_path, w->path) < 0)
		return nib_error_errno(err, "cannot rename '%s' to '%s'", w->tmp_path, w->path);
	free(w->tmp_path);
	w->tmp_path = NULL;
	return 0;
}

/* Deliver at most the remaining budget; past it, stop with an error. */
static int deliver(const char *path, uint64_t max_bytes, uint64_t *done, const void *buf,
		   size_t len, archive_log_sink_fn sink, void *userdata, struct nib_error **err)
{
	bool over = false;

	if (max_bytes != 0 && *done + len > max_bytes) {
		len = (size_t)(max_bytes - *done);
		over = true;
	}
	if (len > 0 && sink(userdata, buf, len, err) < 0)
		return -1;
	*done += len;
	if (over)
		return nib_error_set(err, NIB_E_INVALID, 0, "log '%s' is larger than %llu bytes",
				     path, (unsigned long long)max_bytes);
	return 0;
}

int archive_log_read(const char *path, uint64_t max_bytes, archive_log_sink_fn sink, void *userdata,
		     struct nib_error **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	cleanup_free char *buf = NULL;
	cleanup_archive_read struct archive *a = NULL;
	struct archive_entry *entry;
	uint64_t done = 0;
	int r;

	if (fd < 0) {
		if (errno == ENOENT)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0, "no build log at '%s'", path);
		return nib_error_errno(err, "cannot open '%s'", path);
	}
	buf = xmalloc(1 << 16);
	if (!ends_with(path, ".bz2")) {
		for (;;) {
			ssize_t n = read_upto(fd, buf, 1 << 16);
			if (n < 0)
				return nib_error_errno(err, "cannot read '%s'", path);
			if (n == 0)
				return 0;
			if (deliver(path, max_bytes, &done, buf, (size_t)n, sink, userdata, err) <
			    0)
				return -1;
		}
	}

	/*
	 * The stream of an empty log is "BZh9" and the end-of-stream marker,
	 * which libarchive neither detects as bzip2 nor reads as raw data.
	 */
	{
		static const unsigned char eos[] = { 0x17, 0x72, 0x45, 0x38, 0x50, 0x90 };
		unsigned char head[16];
		ssize_t n = pread(fd, head, sizeof(head), 0);
		if (n == 14 && memcmp(head, "BZh", 3) == 0 && memcmp(head + 4, eos, 6) == 0)
			return 0;
	}
	a = archive_read_new();
	if (a == NULL)
		return nib_error_set(err, NIB_E_ARCHIVE, ENOMEM, "cannot read '%s'", path);
	if (archive_read_support_filter_bzip2(a) != ARCHIVE_OK ||
	    archive_read_support_format_raw(a) != ARCHIVE_OK ||
	    archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
		return archive_fail(err, a, "cannot read", path);
	r = archive_read_next_header(a, &entry);
	if (r == ARCHIVE_EOF)
		return 0;
	if (r != ARCHIVE_OK)
		return archive_fail(err, a, "cannot read", path);
	/* Without a recognised bzip2 header libarchive would pass the bytes through. */
	if (archive_filter_code(a, 0) != ARCHIVE_FILTER_BZIP2)
		return nib_error_set(err, NIB_E_ARCHIVE, 0, "cannot read '%s': not a bzip2 stream",
				     path);
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, 1 << 16);
		if (n < 0)
			return archive_fail(err, a, "cannot read", path);
		if (n == 0)
			return 0;
		if (deliver(path, max_bytes, &done, buf, (size_t)n, sink, userdata, err) < 0)
			return -1;
	}
}

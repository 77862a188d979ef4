/*
 * fuzz-nar.c - restore arbitrary bytes as a NAR into a scratch directory.
 *
 * Beyond "no crash": an accepted archive must dump back to exactly the input
 * (restore accepts only the canonical form), nar_parse must agree with
 * nar_restore, a rejected archive must leave nothing behind, and parsing in
 * exact mode must stop at the archive's end.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "nar.h"
#include "strbuf.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *scratch;
static int scratch_fd = -1;

static void remove_scratch(void)
{
	struct nib_error *e = NULL;

	if (scratch != NULL && rm_rf_at(AT_FDCWD, scratch, &e) < 0)
		nib_error_free(e);
}

struct mem {
	const uint8_t *data;
	size_t len, pos;
};

static ssize_t mem_source(void *userdata, void *buf, size_t len, struct nib_error **err)
{
	struct mem *m = userdata;
	size_t n = m->len - m->pos;

	(void)err;
	if (n > len)
		n = len;
	/* Odd chunking exercises the reader's refills. */
	if (n > 1000)
		n = 1000;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int sb_sink(void *userdata, const void *d, size_t len, struct nib_error **err)
{
	(void)err;
	strbuf_add(userdata, d, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nar_restore_opts opts = {
		.limits = { .max_bytes = 16 << 20, .max_entries = 10000, .max_depth = 64 },
	};
	struct mem m = { .data = data, .len = size };
	struct nib_error *e = NULL;
	struct stat st;
	int restored, parsed, exact;

	if (scratch == NULL) {
		const char *t = getenv("TMPDIR");
		scratch = xasprintf("%s/nib-fuzz-nar-XXXXXX", t && *t ? t : "/tmp");
		if (mkdtemp(scratch) == NULL)
			abort();
		scratch_fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (scratch_fd < 0)
			abort();
		umask(022);
		atexit(remove_scratch);
	}

	restored = nar_restore_at(scratch_fd, "out", mem_source, &m, &opts, &e);
	nib_error_clear(&e);
	if (restored == 0) {
		struct strbuf sb = STRBUF_INIT;
		if (nar_dump_at(scratch_fd, "out", sb_sink, &sb, &e) < 0)
			abort();
		if (sb.len != size || memcmp(sb.buf, data, size) != 0)
			abort(); /* accepted a non-canonical archive */
		strbuf_release(&sb);
		if (rm_rf_at(scratch_fd, "out", &e) < 0)
			abort();
	} else if (fstatat(scratch_fd, "out", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		abort(); /* a failed restore left something behind */
	}

	m.pos = 0;
	parsed = nar_parse(mem_source, &m, &opts, &e);
	nib_error_clear(&e);
	if (parsed != restored)
		abort();

	m.pos = 0;
	opts.exact = true;
	exact = nar_parse(mem_source, &m, &opts, &e);
	nib_error_clear(&e);
	if (parsed == 0 && (exact != 0 || m.pos != size))
		abort();
	return 0;
}

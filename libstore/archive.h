/*
 * archive.h - compressed build logs through libarchive.  The only module of
 * nib that includes <archive.h>.
 *
 * A build log is stored as a bare bzip2 stream (libarchive's "raw" format
 * with the bzip2 filter: no tar header, exactly what `bzip2 < log` writes),
 * so `bzcat` reads it, and Nix's logs (also raw bzip2) read back the same
 * way.  Uncompressed logs are plain files.
 *
 * Writing is streamed: memory use does not grow with the log.  The file is
 * written under a temporary name in the same directory and renamed into
 * place by archive_log_commit, so a reader never sees half a log and a
 * crashed build leaves only a temporary file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "error.h"

struct archive_log;

/*
 * Start writing the log that will become `path` (its directory must exist).
 * With compress, the bytes are bzip2-compressed; otherwise stored as they
 * come.  On success *ret owns the writer: finish it with archive_log_commit
 * or throw it away with archive_log_free.
 */
int archive_log_open(const char *path, bool compress, struct archive_log **ret,
		     struct nib_error **err);

/* Append len bytes. */
int archive_log_write(struct archive_log *w, const void *data, size_t len, struct nib_error **err);

/* Bytes given to archive_log_write so far (uncompressed). */
uint64_t archive_log_size(const struct archive_log *w);

/*
 * Finish the stream, optionally fsync it, and rename it to its final path
 * (replacing an older log of the same derivation).  The writer is freed in
 * every case.
 */
int archive_log_commit(struct archive_log *w, bool do_fsync, struct nib_error **err);

/* Abandon a log: the temporary file is removed.  NULL is fine. */
void archive_log_free(struct archive_log *w);

DEFINE_CLEANUP_FUNC(struct archive_log, archive_log_free)
#define cleanup_archive_log __attribute__((cleanup(archive_log_freep)))

/* Receives decompressed log bytes; returns 0, or -1 with *err set to stop. */
typedef int (*archive_log_sink_fn)(void *userdata, const void *data, size_t len,
				   struct nib_error **err);

/*
 * Read the log at path, decompressing bzip2 (or any filter libarchive
 * recognises) or passing a plain file through, and hand its bytes to sink.
 * At most max_bytes of decompressed output are produced (0 = no limit); a
 * longer log is an error after max_bytes were delivered.  Errors: missing
 * file (NIB_E_NOT_FOUND), corrupt data (NIB_E_ARCHIVE).
 */
int archive_log_read(const char *path, uint64_t max_bytes, archive_log_sink_fn sink, void *userdata,
		     struct nib_error **err);

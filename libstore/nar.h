/*
 * nar.h - Nix ARchive serialisation: dump, restore, hash.  Own code (NAR is
 * not a libarchive format).
 *
 * Format: str("nix-archive-1") node, where str(s) = u64le(len) s pad-to-8
 * and a node is "(" "type" ("regular" ["executable" ""] "contents" bytes |
 * "symlink" "target" t | "directory" {"entry" "(" "name" n "node" node ")"})
 * ")".  Directory entries are sorted bytewise.  Only the executable bit,
 * symlink targets and contents are recorded.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "hash.h"

/* Consumes NAR bytes; returns 0 or -1 with *err set. */
typedef int (*nar_sink_fn)(void *userdata, const void *data, size_t len, struct nib_error **err);

/*
 * Produces NAR bytes: fill buf with up to len bytes and return how many
 * (0 = end of input), or -1 with *err set.
 */
typedef ssize_t (*nar_source_fn)(void *userdata, void *buf, size_t len, struct nib_error **err);

/*
 * Serialise dirfd/path (AT_FDCWD allowed; path may be absolute) to sink.
 * Never follows symlinks; anything but a regular file, directory or symlink
 * is an error naming it.  Streams: memory use does not grow with file size
 * (one 256 KiB buffer, plus the names of one directory per level).  sink
 * receives blocks of up to 256 KiB; when it fails, the dump stops and
 * returns its error.
 */
int nar_dump_at(int dirfd, const char *path, nar_sink_fn sink, void *userdata,
		struct nib_error **err);

/* Dump path and return the SHA-256 of the NAR and its size. */
int nar_hash_path(const char *path, struct hash *ret_hash, uint64_t *ret_size,
		  struct nib_error **err);

/*
 * Like nar_hash_path for dirfd/path (as nar_dump_at), and when also is not
 * NULL, pass every NAR byte to it too (e.g. refscan_sink), so that hashing
 * and reference scanning take one pass over the tree.  ret_size may be NULL.
 */
int nar_hash_at(int dirfd, const char *path, nar_sink_fn also, void *also_data,
		struct hash *ret_hash, uint64_t *ret_size, struct nib_error **err);

/* Longest entry name and symlink target nib writes or accepts. */
#define NAR_NAME_MAX 255
#define NAR_TARGET_MAX 4095

struct nar_restore_limits {
	uint64_t max_bytes;   /* whole archive; 0 = no limit */
	uint64_t max_entries; /* nodes; 0 = no limit */
	unsigned max_depth;   /* directory nesting; 0 = default (1024) */
};

/*
 * Restore a NAR read from src into dest, which must not exist.  Rejects
 * names that are empty, ".", "..", contain '/' or NUL; duplicate or
 * unsorted entries; unknown node types or fields; truncated input; trailing
 * garbage.  Never follows a symlink while restoring.  On failure everything
 * created is removed and dest does not exist.  limits may be NULL.
 */
int nar_restore(const char *dest, nar_source_fn src, void *userdata,
		const struct nar_restore_limits *limits, struct nib_error **err);

/* nar_restore from a file descriptor. */
int nar_restore_fd(const char *dest, int fd, const struct nar_restore_limits *limits,
		   struct nib_error **err);

/* A nar_source_fn reading a file descriptor (userdata: pointer to the int fd). */
ssize_t nar_fd_source(void *userdata, void *buf, size_t len, struct nib_error **err);

struct nar_restore_opts {
	struct nar_restore_limits limits;
	/*
	 * Read exactly the archive's bytes from the source and never beyond its
	 * end (for a NAR embedded in a longer stream, as in the worker
	 * protocol); what follows is the caller's.  The source is then asked
	 * for small amounts, so it should be buffered.  Without it, anything
	 * after the archive is an error ("trailing data").
	 */
	bool exact;
	/*
	 * If set, receives every byte read from the source, in order, as it is
	 * read: hash or copy the archive while restoring it.  Without exact, a
	 * failing restore may have passed it bytes beyond the archive's end.
	 */
	nar_sink_fn tee;
	void *tee_data;
};

/*
 * nar_restore with more control: create the archive's top node as name (one
 * path component, no '/') in the directory dirfd (AT_FDCWD allowed).  The
 * same checks and the same all-or-nothing result as nar_restore.  opts may
 * be NULL.
 */
int nar_restore_at(int dirfd, const char *name, nar_source_fn src, void *userdata,
		   const struct nar_restore_opts *opts, struct nib_error **err);

/*
 * Read and check a NAR from src exactly as nar_restore_at would, without
 * writing anything (validate, or with opts->tee copy or hash it, or with
 * opts->exact find the end of a NAR inside a stream).  opts may be NULL.
 */
int nar_parse(nar_source_fn src, void *userdata, const struct nar_restore_opts *opts,
	      struct nib_error **err);

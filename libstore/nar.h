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
 * is an error naming it.  Streams: memory use does not grow with file size.
 */
int nar_dump_at(int dirfd, const char *path, nar_sink_fn sink, void *userdata,
		struct nib_error **err);

/* Dump path and return the SHA-256 of the NAR and its size. */
int nar_hash_path(const char *path, struct hash *ret_hash, uint64_t *ret_size,
		  struct nib_error **err);

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

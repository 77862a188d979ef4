/*
 * build-record.h - one build attempt, as recorded in nib's BuildRecords
 * table (beside Nix's schema in the store database).
 *
 * Times are microseconds since the Unix epoch; 0 means "not known yet" (a
 * build that has started but not ended has end_usec == 0).  Numbers that are
 * not known are -1.  Strings are owned by the record; NULL means absent.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct build_record {
	int64_t id;	       /* assigned by the database; 0 before insertion */
	char *drv;	       /* derivation path (required) */
	char **output_names;   /* NULL-terminated; parallel to output_paths */
	char **output_paths;   /* NULL-terminated; same length as output_names */
	int64_t slot;	       /* UID-pool slot, -1 when none */
	int64_t uid_start;     /* first UID of the range, -1 when none */
	int64_t uid_count;     /* number of UIDs, 0 when none */
	int64_t start_usec;    /* realtime */
	int64_t end_usec;      /* realtime, 0 while running */
	char *status;	       /* "running", "built", "failed", "timed-out", ... */
	int64_t exit_status;   /* wait status of the builder, -1 unknown */
	int64_t cpu_user_usec; /* -1 unknown */
	int64_t cpu_system_usec;
	int64_t peak_memory; /* bytes, -1 unknown */
	char *log_path;
	int64_t sandboxed; /* 1 built in a sandbox, 0 without one, -1 unknown */
};

/* Set every field to its "unknown" value (ids 0, numbers -1, strings NULL). */
void build_record_init(struct build_record *r);
/* Free the strings and vectors and re-init; NULL-safe. */
void build_record_release(struct build_record *r);
/* Release an array of n records and free the array. */
void build_records_free(struct build_record *v, size_t n);

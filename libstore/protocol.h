/*
 * protocol.h - the Nix worker protocol: wire primitives, handshake, log
 * frames and the messages of every operation, for both ends of a
 * connection (nib-daemon serving, nib's remote store as a client).
 *
 * Wire format (Nix's, facts only): every integer is a u64 in little
 * endian; a bool is a u64 (any non-zero value is true, 1 is written); a
 * string is u64 length, the bytes, then zero bytes up to a multiple of 8;
 * a list or set is a u64 count followed by the items.  Framed data (the
 * body of AddToStore >= 1.25, AddToStoreNar >= 1.23, AddMultipleToStore,
 * AddBuildLog) is a sequence of chunks "u64 n, n bytes" (no padding),
 * ended by a chunk of length 0.
 *
 * Versions are (major << 8 | minor).  nib speaks 1.10 ... 1.37 and always
 * offers 1.37; the negotiated version is the smaller of the two sides'
 * and every version-dependent field follows it exactly.  Debian's Nix 2.8
 * speaks 1.34; Nix 2.0 spoke 1.20, Nix 2.3 1.21, Nix 2.15-2.19 1.35,
 * Nix 2.20+ 1.37 or later (a newer client simply negotiates down to
 * 1.37; 1.38 added a feature exchange nib does not implement).
 *
 * Reading: every read function takes `struct nib_error **err` and returns
 * < 0 on failure (truncated input, a length or count over the connection's
 * limits, non-zero padding, a value out of range, a NUL byte inside a
 * string that must be a C string...).  A failed read leaves the connection
 * at an undefined position: the caller should give up on it.  Decoded
 * strings are NUL-terminated and owned by the caller (or by the struct
 * that holds them; each struct has a _release function that frees its
 * contents and is safe on a zeroed or half-filled struct).
 *
 * Writing: write functions buffer in the connection and never fail on
 * their own; an I/O error is remembered ("sticky") and reported by the
 * next proto_flush() (which callers must check).  A read that has to wait
 * for the peer flushes pending output first, so forgetting a flush costs
 * a system call, never a deadlock.  Functions that can
 * refuse a value (one the negotiated version cannot express) return int.
 *
 * Store paths travel as full path strings ("/nix/store/<hash>-<name>");
 * this layer checks only that they are NUL-free and within the limits.
 * Checking that they are valid store paths of the right store is the
 * caller's job (serve.c parses them with store_path_parse()).
 *
 * Not thread-safe: a connection belongs to one thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "hash.h"
#include "nar.h"

/* ---- versions, magic numbers, codes ------------------------------------------------------- */

#define PROTO_VERSION(major, minor) ((unsigned)(((major) << 8) | (minor)))
#define PROTO_MAJOR(v) (((v) >> 8) & 0xff)
#define PROTO_MINOR(v) ((v)&0xff)
/* Oldest version accepted from a peer (Nix 1.0 era; every Nix 2.x speaks more). */
#define PROTO_VERSION_MIN PROTO_VERSION(1, 10)
/* Newest version nib implements and offers. */
#define PROTO_VERSION_MAX PROTO_VERSION(1, 37)
/* The version Debian's Nix 2.8 client and daemon speak. */
#define PROTO_VERSION_NIX_2_8 PROTO_VERSION(1, 34)

#define PROTO_WORKER_MAGIC_1 0x6e697863ULL /* client -> daemon */
#define PROTO_WORKER_MAGIC_2 0x6478696fULL /* daemon -> client */

/* Operation codes: Nix's numbers, append-only.  Gaps were removed in Nix. */
enum proto_op {
	PROTO_OP_IS_VALID_PATH = 1,
	PROTO_OP_HAS_SUBSTITUTES = 3,  /* obsolete */
	PROTO_OP_QUERY_PATH_HASH = 4,  /* obsolete */
	PROTO_OP_QUERY_REFERENCES = 5, /* obsolete */
	PROTO_OP_QUERY_REFERRERS = 6,
	PROTO_OP_ADD_TO_STORE = 7,
	PROTO_OP_ADD_TEXT_TO_STORE = 8, /* obsolete since 1.25 */
	PROTO_OP_BUILD_PATHS = 9,
	PROTO_OP_ENSURE_PATH = 10,
	PROTO_OP_ADD_TEMP_ROOT = 11,
	PROTO_OP_ADD_INDIRECT_ROOT = 12,
	PROTO_OP_SYNC_WITH_GC = 13,
	PROTO_OP_FIND_ROOTS = 14,
	PROTO_OP_EXPORT_PATH = 16,   /* obsolete */
	PROTO_OP_QUERY_DERIVER = 18, /* obsolete */
	PROTO_OP_SET_OPTIONS = 19,
	PROTO_OP_COLLECT_GARBAGE = 20,
	PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFO = 21,
	PROTO_OP_QUERY_DERIVATION_OUTPUTS = 22, /* obsolete */
	PROTO_OP_QUERY_ALL_VALID_PATHS = 23,
	PROTO_OP_QUERY_FAILED_PATHS = 24, /* removed */
	PROTO_OP_CLEAR_FAILED_PATHS = 25, /* removed */
	PROTO_OP_QUERY_PATH_INFO = 26,
	PROTO_OP_IMPORT_PATHS = 27,		     /* obsolete */
	PROTO_OP_QUERY_DERIVATION_OUTPUT_NAMES = 28, /* obsolete */
	PROTO_OP_QUERY_PATH_FROM_HASH_PART = 29,
	PROTO_OP_QUERY_SUBSTITUTABLE_PATH_INFOS = 30,
	PROTO_OP_QUERY_VALID_PATHS = 31,
	PROTO_OP_QUERY_SUBSTITUTABLE_PATHS = 32,
	PROTO_OP_QUERY_VALID_DERIVERS = 33,
	PROTO_OP_OPTIMISE_STORE = 34,
	PROTO_OP_VERIFY_STORE = 35,
	PROTO_OP_BUILD_DERIVATION = 36,
	PROTO_OP_ADD_SIGNATURES = 37,
	PROTO_OP_NAR_FROM_PATH = 38,
	PROTO_OP_ADD_TO_STORE_NAR = 39,
	PROTO_OP_QUERY_MISSING = 40,
	PROTO_OP_QUERY_DERIVATION_OUTPUT_MAP = 41,
	PROTO_OP_REGISTER_DRV_OUTPUT = 42,
	PROTO_OP_QUERY_REALISATION = 43,
	PROTO_OP_ADD_MULTIPLE_TO_STORE = 44,
	PROTO_OP_ADD_BUILD_LOG = 45,
	PROTO_OP_BUILD_PATHS_WITH_RESULTS = 46,
	PROTO_OP_ADD_PERM_ROOT = 47,
	_PROTO_OP_MAX
};

/* "IsValidPath", ...; NULL for a number that is not an op. */
const char *proto_op_name(uint64_t op);

/* Log frame codes (daemon -> client, between a request and its reply). */
#define PROTO_STDERR_NEXT 0x6f6c6d67ULL	 /* a log line */
#define PROTO_STDERR_READ 0x64617461ULL	 /* daemon asks for data (AddToStoreNar 1.21-1.22) */
#define PROTO_STDERR_WRITE 0x64617416ULL /* data for the client (obsolete ExportPath) */
#define PROTO_STDERR_LAST 0x616c7473ULL	 /* the reply follows */
#define PROTO_STDERR_ERROR 0x63787470ULL /* the operation failed */
#define PROTO_STDERR_START_ACTIVITY 0x53545254ULL /* >= 1.20 */
#define PROTO_STDERR_STOP_ACTIVITY 0x53544f50ULL  /* >= 1.20 */
#define PROTO_STDERR_RESULT 0x52534c54ULL	  /* >= 1.20 */

/* Nix's verbosity levels (log frames, SetOptions). */
enum proto_verbosity {
	PROTO_LVL_ERROR = 0,
	PROTO_LVL_WARN = 1,
	PROTO_LVL_NOTICE = 2,
	PROTO_LVL_INFO = 3,
	PROTO_LVL_TALKATIVE = 4,
	PROTO_LVL_CHATTY = 5,
	PROTO_LVL_DEBUG = 6,
	PROTO_LVL_VOMIT = 7,
};

/*
 * Verbosity and log.h (syslog) levels: LOG_ERR and worse are lvlError,
 * LOG_WARNING lvlWarn, LOG_NOTICE (what nib shows by default) lvlInfo
 * (Nix's default), LOG_INFO lvlTalkative (-v), LOG_DEBUG lvlDebug (-vv).
 * proto_log_level_of() goes back: the most verbose log.h level a client
 * with that verbosity wants to see.
 */
uint64_t proto_verbosity_of(int log_level);
int proto_log_level_of(uint64_t verbosity);

/* Activity types (START_ACTIVITY). */
enum proto_activity_type {
	PROTO_ACT_UNKNOWN = 0,
	PROTO_ACT_COPY_PATH = 100,
	PROTO_ACT_FILE_TRANSFER = 101,
	PROTO_ACT_REALISE = 102,
	PROTO_ACT_COPY_PATHS = 103,
	PROTO_ACT_BUILDS = 104,
	PROTO_ACT_BUILD = 105, /* fields: drv path, machine, round, nr rounds */
	PROTO_ACT_OPTIMISE_STORE = 106,
	PROTO_ACT_VERIFY_PATHS = 107,
	PROTO_ACT_SUBSTITUTE = 108,
	PROTO_ACT_QUERY_PATH_INFO = 109,
	PROTO_ACT_POST_BUILD_HOOK = 110,
	PROTO_ACT_BUILD_WAITING = 111,
};

/* Result types (RESULT). */
enum proto_result_type {
	PROTO_RES_FILE_LINKED = 100,
	PROTO_RES_BUILD_LOG_LINE = 101, /* fields: line */
	PROTO_RES_UNTRUSTED_PATH = 102,
	PROTO_RES_CORRUPTED_PATH = 103,
	PROTO_RES_SET_PHASE = 104,    /* fields: phase name */
	PROTO_RES_PROGRESS = 105,     /* fields: done, expected, running, failed */
	PROTO_RES_SET_EXPECTED = 106, /* fields: activity type, expected */
	PROTO_RES_POST_BUILD_LOG_LINE = 107,
};

/* BuildResult status codes. */
enum proto_build_status {
	PROTO_BUILD_BUILT = 0,
	PROTO_BUILD_SUBSTITUTED = 1,
	PROTO_BUILD_ALREADY_VALID = 2,
	PROTO_BUILD_PERMANENT_FAILURE = 3,
	PROTO_BUILD_INPUT_REJECTED = 4,
	PROTO_BUILD_OUTPUT_REJECTED = 5,
	PROTO_BUILD_TRANSIENT_FAILURE = 6,
	PROTO_BUILD_CACHED_FAILURE = 7,
	PROTO_BUILD_TIMED_OUT = 8,
	PROTO_BUILD_MISC_FAILURE = 9,
	PROTO_BUILD_DEPENDENCY_FAILED = 10,
	PROTO_BUILD_LOG_LIMIT_EXCEEDED = 11,
	PROTO_BUILD_NOT_DETERMINISTIC = 12,
	PROTO_BUILD_RESOLVES_TO_ALREADY_VALID = 13,
	PROTO_BUILD_NO_SUBSTITUTERS = 14,
	_PROTO_BUILD_STATUS_MAX
};
/* "Built", "PermanentFailure", ...; NULL when unknown. */
const char *proto_build_status_name(uint64_t status);

/* Build modes (BuildPaths >= 1.15, BuildPathsWithResults, BuildDerivation). */
enum proto_build_mode {
	PROTO_BUILD_MODE_NORMAL = 0,
	PROTO_BUILD_MODE_REPAIR = 1,
	PROTO_BUILD_MODE_CHECK = 2,
};

/* CollectGarbage actions. */
enum proto_gc_action {
	PROTO_GC_RETURN_LIVE = 0,
	PROTO_GC_RETURN_DEAD = 1,
	PROTO_GC_DELETE_DEAD = 2,
	PROTO_GC_DELETE_SPECIFIC = 3,
};

/* Trusted flag of the handshake (>= 1.35). */
enum proto_trust {
	PROTO_TRUST_UNKNOWN = 0,
	PROTO_TRUST_TRUSTED = 1,
	PROTO_TRUST_NOT_TRUSTED = 2,
};

/* ---- connection ----------------------------------------------------------------------------- */

/*
 * Limits on what a peer may make us allocate.  A string longer than
 * max_string, a list or map with more than max_list items, or a single
 * request/reply that makes us read more than max_message bytes is an error
 * (NIB_E_PROTOCOL) before anything large is allocated.  Zero means the
 * default.  Framed and NAR data are streamed, not counted here; their
 * consumers (NAR restore) have their own limits.
 */
struct proto_limits {
	size_t max_string;    /* default 64 MiB */
	size_t max_list;      /* default 1 Mi items */
	uint64_t max_message; /* default 256 MiB */
};
#define PROTO_DEFAULT_MAX_STRING ((size_t)64 << 20)
#define PROTO_DEFAULT_MAX_LIST ((size_t)1 << 20)
#define PROTO_DEFAULT_MAX_MESSAGE ((uint64_t)256 << 20)

struct proto_conn;

/*
 * A connection over file descriptors (the same fd twice for a socket).
 * With own_fds the fds are closed by proto_conn_free().  The version is 0
 * until a handshake (or proto_conn_set_version()) sets it.  Never NULL.
 */
struct proto_conn *proto_conn_new_fd(int in_fd, int out_fd, bool own_fds);

/*
 * A connection reading from a memory buffer (borrowed: it must outlive the
 * connection) and writing into an internal buffer (proto_conn_output()).
 * Used by tests, golden files and the fuzz targets.  in may be NULL when
 * len is 0.
 */
struct proto_conn *proto_conn_new_mem(const void *in, size_t len);

/*
 * A connection reading from a source and/or writing to a sink (either may
 * be NULL: reading or writing is then an error).  Used to decode the items
 * inside framed data (AddMultipleToStore), see proto_framed_source.
 */
struct proto_conn *proto_conn_new_stream(nar_source_fn src, void *src_data, nar_sink_fn sink,
					 void *sink_data);

/* Close (if owned) and free; NULL is fine.  Unflushed output is dropped. */
void proto_conn_free(struct proto_conn *c);
static inline void proto_conn_freep(struct proto_conn **c)
{
	proto_conn_free(*c);
}
#define cleanup_proto_conn __attribute__((cleanup(proto_conn_freep)))

unsigned proto_conn_version(const struct proto_conn *c);
void proto_conn_set_version(struct proto_conn *c, unsigned version);
/* Replace the limits (zero fields take the defaults). */
void proto_conn_set_limits(struct proto_conn *c, const struct proto_limits *limits);
/* The input fd (for poll(): hang-up detection), or -1 for other kinds. */
int proto_conn_fd(const struct proto_conn *c);
/* Bytes consumed from / produced to the peer so far (including buffered output). */
uint64_t proto_conn_bytes_read(const struct proto_conn *c);
uint64_t proto_conn_bytes_written(const struct proto_conn *c);
/* Everything written to a memory connection (flushed or not).  Borrowed. */
const unsigned char *proto_conn_output(struct proto_conn *c, size_t *ret_len);
/* Bytes of input not consumed yet (memory connections; others: what is buffered). */
size_t proto_conn_input_left(const struct proto_conn *c);
/*
 * Is there nothing more to read?  Blocks on an fd connection until one
 * byte is available or the peer closed.  Returns 1 at a clean end of
 * input, 0 when data follows, -1 on a read error.
 */
int proto_at_eof(struct proto_conn *c, struct nib_error **err);

/*
 * Start of a message: the per-message byte budget (max_message) counts
 * from here.  proto_read_request/reply call it themselves.
 */
void proto_begin_message(struct proto_conn *c);

/* Write out buffered output.  Returns the sticky write error, if any. */
int proto_flush(struct proto_conn *c, struct nib_error **err);

/* ---- primitives ------------------------------------------------------------------------------ */

int proto_read_u64(struct proto_conn *c, uint64_t *ret, struct nib_error **err);
/* A u64 that must be <= max (enums, flags); `what` names it in the error. */
int proto_read_u64_max(struct proto_conn *c, uint64_t max, const char *what, uint64_t *ret,
		       struct nib_error **err);
int proto_read_bool(struct proto_conn *c, bool *ret, struct nib_error **err);
/*
 * A string of arbitrary bytes (NUL allowed).  *ret is NUL-terminated
 * anyway; ret_len may be NULL.
 */
int proto_read_bytes(struct proto_conn *c, char **ret, size_t *ret_len, struct nib_error **err);
/* A string that must not contain a NUL byte. */
int proto_read_string(struct proto_conn *c, char **ret, struct nib_error **err);
/* Like proto_read_string, but "" becomes NULL (optional paths, content addresses). */
int proto_read_string_opt(struct proto_conn *c, char **ret, struct nib_error **err);
/* A list/set of NUL-free strings as a NULL-terminated vector (never NULL on success). */
int proto_read_strings(struct proto_conn *c, char ***ret, struct nib_error **err);
/* Read n raw bytes (no length, no padding). */
int proto_read_raw(struct proto_conn *c, void *buf, size_t n, struct nib_error **err);

void proto_write_u64(struct proto_conn *c, uint64_t v);
void proto_write_bool(struct proto_conn *c, bool v);
void proto_write_bytes(struct proto_conn *c, const void *data, size_t len);
/* s NULL writes "" (the encoding of an absent optional). */
void proto_write_string(struct proto_conn *c, const char *s);
/* NULL v writes an empty list. */
void proto_write_strings(struct proto_conn *c, char *const *v);
void proto_write_raw(struct proto_conn *c, const void *data, size_t len);

/* A string pair: map entries (env, settings overrides, output maps, roots). */
struct proto_pair {
	char *first;
	char *second;
};
/* Free each pair's strings and the array. */
void proto_pairs_free(struct proto_pair *pairs, size_t n);
/*
 * A map of NUL-free strings: u64 count, then key and value of each entry.
 * With sorted, keys must arrive in strictly ascending byte order (Nix
 * sends std::map contents; this also rejects duplicate keys).
 */
int proto_read_pairs(struct proto_conn *c, bool sorted, struct proto_pair **ret, size_t *ret_n,
		     struct nib_error **err);
void proto_write_pairs(struct proto_conn *c, const struct proto_pair *pairs, size_t n);

/* ---- framed data ----------------------------------------------------------------------------- */

/*
 * Reads the logical stream of framed data.  proto_framed_read has the
 * nar_source_fn signature: pass the source as its userdata.  It returns 0
 * once the terminating empty chunk was read.  max_total (0 = none) bounds
 * the whole stream.  A framed source must be read to its end, or drained
 * with proto_framed_drain(), before the connection is used again.
 */
struct proto_framed_source {
	struct proto_conn *conn;
	uint64_t chunk_left; /* bytes left in the current chunk */
	uint64_t total;	     /* logical bytes delivered so far */
	uint64_t max_total;
	bool eof;
};
void proto_framed_source_init(struct proto_framed_source *src, struct proto_conn *c,
			      uint64_t max_total);
ssize_t proto_framed_read(void *src, void *buf, size_t len, struct nib_error **err);
/* Skip the rest of the stream up to and including its terminator. */
int proto_framed_drain(struct proto_framed_source *src, struct nib_error **err);

/*
 * Writes framed data: proto_framed_write has the nar_sink_fn signature
 * (userdata = the struct proto_conn), each call with len > 0 makes one
 * chunk.  proto_framed_end writes the terminator.  Callers that want fewer
 * chunks put a buffering sink in front (nar_dump already writes in blocks).
 */
int proto_framed_write(void *conn, const void *data, size_t len, struct nib_error **err);
void proto_framed_end(struct proto_conn *c);

/*
 * A nar_source_fn reading the connection's bytes as they come (userdata =
 * the struct proto_conn): for NAR data sent inline, as AddToStore < 1.25,
 * AddToStoreNar < 1.21 and the items of AddMultipleToStore do.  It never
 * returns 0 (the NAR reader must know where its data ends).
 */
ssize_t proto_raw_read(void *conn, void *buf, size_t len, struct nib_error **err);

/*
 * A nar_sink_fn writing the bytes as they are (userdata = the struct
 * proto_conn): NarFromPath replies, NARs inside AddMultipleToStore.  Fails
 * only with the connection's sticky write error.
 */
int proto_raw_write(void *conn, const void *data, size_t len, struct nib_error **err);

/*
 * A nar_source_fn for AddToStoreNar 1.21-1.22: each read sends
 * STDERR_READ <len> to the client, flushes, and reads back one string of
 * at most len bytes (an empty string is an error).
 */
ssize_t proto_tunnel_read(void *conn, void *buf, size_t len, struct nib_error **err);

/* ---- log frames ------------------------------------------------------------------------------ */

enum proto_field_type {
	PROTO_FIELD_INT = 0,
	PROTO_FIELD_STRING = 1,
};

struct proto_field {
	uint64_t type; /* enum proto_field_type */
	uint64_t i;
	char *s; /* PROTO_FIELD_STRING: NUL-terminated, may hold NULs (see len) */
	size_t len;
};
void proto_fields_free(struct proto_field *fields, size_t n);

struct proto_activity {
	uint64_t id;
	uint64_t level;
	uint64_t type; /* enum proto_activity_type */
	char *text;
	struct proto_field *fields;
	size_t n_fields;
	uint64_t parent;
};

/*
 * An error as sent in STDERR_ERROR.  >= 1.26: level, name (Nix always
 * sends "Error"), msg and traces; < 1.26: msg and exit_status only.
 */
struct proto_error {
	uint64_t level;
	char *name;
	char *msg;
	char **traces; /* NULL-terminated; NULL = none */
	uint64_t exit_status;
};
void proto_error_release(struct proto_error *e);
void proto_error_free(struct proto_error *e);
static inline void proto_error_freep(struct proto_error **e)
{
	proto_error_free(*e);
}
#define cleanup_proto_error __attribute__((cleanup(proto_error_freep)))

/*
 * Daemon side.  STDERR_NEXT carries one log message; Nix's clients expect
 * it to end in "\n" (this function does not add one).  Before 1.20 there
 * are no activities: start_activity sends "<text>...\n" as STDERR_NEXT
 * (nothing when text is empty), stop and result send nothing.
 */
void proto_write_next(struct proto_conn *c, const char *msg, size_t len);
void proto_write_start_activity(struct proto_conn *c, const struct proto_activity *act);
void proto_write_stop_activity(struct proto_conn *c, uint64_t id);
void proto_write_result(struct proto_conn *c, uint64_t id, uint64_t type,
			const struct proto_field *fields, size_t n_fields);
void proto_write_last(struct proto_conn *c);
/* STDERR_ERROR in the form of the negotiated version; e->name NULL sends "Error". */
void proto_write_error(struct proto_conn *c, const struct proto_error *e);
/* Shorthand: level 0, name "Error", no traces, exit status 1. */
void proto_write_error_msg(struct proto_conn *c, const char *msg);

/*
 * Client side: callbacks for the frames between a request and its reply.
 * Any callback may be NULL (the frame is then read and dropped).  The
 * pointers they get are only valid during the call.  read_source answers
 * STDERR_READ (without it a STDERR_READ is an error); write_sink receives
 * STDERR_WRITE data (dropped when NULL).
 */
struct proto_log_handlers {
	void *userdata;
	void (*next)(void *userdata, const char *msg, size_t len);
	void (*start_activity)(void *userdata, const struct proto_activity *act);
	void (*stop_activity)(void *userdata, uint64_t id);
	void (*result)(void *userdata, uint64_t id, uint64_t type, const struct proto_field *fields,
		       size_t n_fields);
	nar_source_fn read_source;
	void *read_data;
	nar_sink_fn write_sink;
	void *write_data;
};

/*
 * Read and dispatch log frames until STDERR_LAST (returns 0: the reply
 * follows) or STDERR_ERROR (returns 1 and sets *ret_error, which the
 * caller frees: the daemon reported a failure and the connection is still
 * usable).  -1 with err on I/O or protocol errors.  h may be NULL.
 * Flushes pending output first.
 */
int proto_read_stderr(struct proto_conn *c, const struct proto_log_handlers *h,
		      struct proto_error **ret_error, struct nib_error **err);

/* Low level: read one frame.  *ret_code is the frame code. */
struct proto_frame {
	uint64_t code;
	char *msg; /* NEXT (msg_len bytes); WRITE data */
	size_t msg_len;
	struct proto_activity act; /* START_ACTIVITY; act.id also for STOP and RESULT */
	uint64_t result_type;	   /* RESULT; fields in act.fields */
	uint64_t read_len;	   /* READ */
	struct proto_error error;  /* ERROR */
};
void proto_frame_release(struct proto_frame *f);
int proto_read_frame(struct proto_conn *c, struct proto_frame *ret, struct nib_error **err);
/* Write one frame as read by proto_read_frame (in the negotiated version's form). */
void proto_write_frame(struct proto_conn *c, const struct proto_frame *f);

/* ---- handshake ------------------------------------------------------------------------------- */

/*
 * Daemon side: read WORKER_MAGIC_1, send WORKER_MAGIC_2 and
 * PROTO_VERSION_MAX, read the client's version and negotiate, read the
 * obsolete CPU affinity (>= 1.14) and reserveSpace (>= 1.11) fields, send
 * nix_version (>= 1.33) and trust (>= 1.35).  Sets the connection's
 * version.  The caller then sends startup messages if any and MUST end the
 * handshake with proto_write_last() (or refuse with proto_write_error())
 * and proto_flush().  A bad magic or a client older than
 * PROTO_VERSION_MIN is an error (nothing more is sent).
 */
int proto_server_handshake(struct proto_conn *c, const char *nix_version, enum proto_trust trust,
			   struct nib_error **err);

/*
 * The first step of proto_server_handshake() on its own: read
 * WORKER_MAGIC_1, send WORKER_MAGIC_2 and PROTO_VERSION_MAX (flushed).  The
 * answer depends on nothing about the peer, so a daemon can send it before
 * it decides whether to serve the peer and decide while the client reads
 * it; proto_server_handshake() then goes on from there.  A bad magic is an
 * error (nothing is sent).
 */
int proto_server_hello(struct proto_conn *c, struct nib_error **err);

struct proto_server_info {
	unsigned daemon_version; /* as offered by the daemon */
	char *nix_version;	 /* >= 1.33, else NULL; caller frees */
	enum proto_trust trust;	 /* >= 1.35, else PROTO_TRUST_UNKNOWN */
};

/*
 * Client side: offer `version` (PROTO_VERSION_MAX unless testing),
 * negotiate, send the obsolete fields (offering 1.14 or more: at once with
 * the greeting, which then needs a daemon of 1.14 or more), read the
 * daemon's Nix version and trust, then the startup log frames up to
 * STDERR_LAST (through h, which may be NULL).  A startup STDERR_ERROR (the daemon refused us) becomes an
 * error with the daemon's message.  ret may be NULL.
 */
int proto_client_handshake(struct proto_conn *c, unsigned version,
			   const struct proto_log_handlers *h, struct proto_server_info *ret,
			   struct nib_error **err);
void proto_server_info_release(struct proto_server_info *info);

/* ---- messages -------------------------------------------------------------------------------- */

/*
 * ValidPathInfo.  The QueryPathInfo reply sends it without the path
 * ("unkeyed"); AddToStore >= 1.25 replies and AddMultipleToStore items
 * carry the path first ("keyed").  ultimate, sigs and ca exist from 1.16.
 * narHash travels as base16 SHA-256 without the "sha256:" prefix (Nix
 * accepts other encodings when reading; so does nib).
 */
struct proto_path_info {
	char *path;    /* keyed form only, else NULL */
	char *deriver; /* NULL = none */
	struct hash nar_hash;
	char **references; /* NULL-terminated, never NULL after a read */
	uint64_t registration_time;
	uint64_t nar_size;
	bool ultimate;
	char **sigs; /* never NULL after a read */
	char *ca;    /* NULL = not content-addressed */
};
void proto_path_info_release(struct proto_path_info *info);
int proto_read_path_info(struct proto_conn *c, bool keyed, struct proto_path_info *ret,
			 struct nib_error **err);
/* keyed writes info->path first (which must not be NULL then). */
void proto_write_path_info(struct proto_conn *c, bool keyed, const struct proto_path_info *info);

/*
 * DerivedPath: an opaque store path, or outputs of a derivation.
 * >= 1.30: "path", "drv!*", "drv!out1,out2".  < 1.30 (Nix's
 * StorePathWithOutputs): "path", "drv" (all outputs), "drv!out1,out2"; an
 * opaque .drv path cannot be expressed there and is refused when writing.
 * Reading sorts the output names and drops duplicates (they are a set).
 */
struct proto_derived_path {
	char *path;
	bool built;	  /* false: opaque path */
	bool all_outputs; /* built: "*" */
	char **outputs;	  /* built && !all_outputs: sorted names, NULL-terminated */
};
void proto_derived_path_release(struct proto_derived_path *p);
void proto_derived_paths_free(struct proto_derived_path *p, size_t n);
/* Parse/print one DerivedPath string in the form of `version`. */
int proto_derived_path_parse(const char *s, unsigned version, struct proto_derived_path *ret,
			     struct nib_error **err);
char *proto_derived_path_to_string(const struct proto_derived_path *p, unsigned version,
				   struct nib_error **err);
int proto_read_derived_path(struct proto_conn *c, struct proto_derived_path *ret,
			    struct nib_error **err);
int proto_write_derived_path(struct proto_conn *c, const struct proto_derived_path *p,
			     struct nib_error **err);

/*
 * BuildResult.  timesBuilt, isNonDeterministic, startTime and stopTime
 * exist from 1.29; cpuUser/cpuSystem (optional microseconds) from 1.37;
 * builtOutputs from 1.28 as a map from DrvOutput id ("sha256:<hex>!<out>")
 * to a Realisation in JSON (see proto_realisation_json()).
 */
struct proto_build_result {
	uint64_t status; /* enum proto_build_status */
	char *error_msg; /* never NULL after a read ("" for none) */
	uint64_t times_built;
	bool is_non_deterministic;
	uint64_t start_time; /* seconds since the epoch */
	uint64_t stop_time;
	bool has_cpu_user;
	int64_t cpu_user_usec;
	bool has_cpu_system;
	int64_t cpu_system_usec;
	struct proto_pair *built_outputs; /* id -> realisation JSON, ascending ids */
	size_t n_built_outputs;
};
void proto_build_result_release(struct proto_build_result *r);
int proto_read_build_result(struct proto_conn *c, struct proto_build_result *ret,
			    struct nib_error **err);
void proto_write_build_result(struct proto_conn *c, const struct proto_build_result *r);

/*
 * The Realisation JSON Nix 2.8 sends in builtOutputs:
 * {"dependentRealisations":{},"id":"<id>","outPath":"<hash-name>","signatures":[]}.
 * id is "sha256:<hex>!<output>", out_path_base the output's base name.
 */
char *proto_realisation_json(const char *id, const char *out_path_base);

/* KeyedBuildResult (BuildPathsWithResults): the DerivedPath, then the BuildResult. */
struct proto_keyed_build_result {
	struct proto_derived_path path;
	struct proto_build_result result;
};
void proto_keyed_build_result_release(struct proto_keyed_build_result *r);

/*
 * BasicDerivation (BuildDerivation): outputs as (name, path, hashAlgo,
 * hash) with "" for absent parts, exactly the strings of the ATerm form;
 * inputSrcs; platform; builder; args; env.  Reading requires outputs and
 * env in strictly ascending key order (what Nix sends), which also rules
 * out duplicates.  The name of the derivation is not on the wire: it is
 * the drv path's name without ".drv".
 */
struct proto_drv_output {
	char *name;
	char *path;
	char *hash_algo;
	char *hash;
};
struct proto_basic_derivation {
	struct proto_drv_output *outputs;
	size_t n_outputs;
	char **input_srcs;
	char *platform;
	char *builder;
	char **args;
	struct proto_pair *env;
	size_t n_env;
};
void proto_basic_derivation_release(struct proto_basic_derivation *d);
int proto_read_basic_derivation(struct proto_conn *c, struct proto_basic_derivation *ret,
				struct nib_error **err);
void proto_write_basic_derivation(struct proto_conn *c, const struct proto_basic_derivation *d);

/*
 * SetOptions.  Every field is kept as sent so that it can be written back
 * unchanged; overrides exist from 1.12 (Nix sends only changed settings,
 * in ascending order).  build_verbosity is the obsolete "verboseBuild"
 * slot: Nix sends 0 (lvlError) for verbose builds, 7 otherwise.
 */
struct proto_client_settings {
	bool keep_failed;
	bool keep_going;
	bool try_fallback;
	uint64_t verbosity;
	uint64_t max_build_jobs;
	uint64_t max_silent_time;
	uint64_t use_build_hook; /* obsolete, Nix sends 1 */
	uint64_t build_verbosity;
	uint64_t log_type;	    /* obsolete, 0 */
	uint64_t print_build_trace; /* obsolete, 0 */
	uint64_t build_cores;
	bool use_substitutes;
	struct proto_pair *overrides;
	size_t n_overrides;
};
void proto_client_settings_release(struct proto_client_settings *s);

/* CollectGarbage request and reply. */
struct proto_gc_options {
	uint64_t action; /* enum proto_gc_action */
	char **paths_to_delete;
	bool ignore_liveness;
	uint64_t max_freed;   /* UINT64_MAX = no limit */
	uint64_t obsolete[3]; /* sent as 0 */
};
void proto_gc_options_release(struct proto_gc_options *o);
struct proto_gc_result {
	char **paths;
	uint64_t bytes_freed;
	uint64_t obsolete; /* sent as 0 */
};
void proto_gc_result_release(struct proto_gc_result *r);

/* QueryMissing reply. */
struct proto_missing {
	char **will_build;
	char **will_substitute;
	char **unknown;
	uint64_t download_size;
	uint64_t nar_size;
};
void proto_missing_release(struct proto_missing *m);

/* QuerySubstitutablePathInfo(s) reply items. */
struct proto_substitutable {
	char *path; /* QuerySubstitutablePathInfos only */
	char *deriver;
	char **references;
	uint64_t download_size;
	uint64_t nar_size;
};
void proto_substitutables_free(struct proto_substitutable *s, size_t n);

/* ---- requests -------------------------------------------------------------------------------- */

/*
 * The arguments of every operation, as read by the daemon after the op
 * code.  Data that follows some requests is not part of it: AddToStore
 * (>= 1.25 framed, older an inline NAR), AddToStoreNar (>= 1.23 framed,
 * 1.21-1.22 tunnelled with STDERR_READ, older inline NAR),
 * AddMultipleToStore and AddBuildLog (framed).  The caller streams it
 * with the matching source after the request was read.
 */
struct proto_request {
	uint64_t op;
	union {
		/*
		 * IsValidPath, HasSubstitutes, QueryPathHash, QueryReferences,
		 * QueryReferrers, EnsurePath, AddTempRoot, AddIndirectRoot
		 * (a symlink path, not a store path), QueryDeriver,
		 * QuerySubstitutablePathInfo, QueryDerivationOutputs,
		 * QueryPathInfo, QueryDerivationOutputNames,
		 * QueryPathFromHashPart (the hash part), QueryValidDerivers,
		 * NarFromPath, QueryDerivationOutputMap, QueryRealisation
		 * (a DrvOutput id), AddBuildLog.
		 */
		char *path;
		struct {
			/* >= 1.25 */
			char *name;
			char *cam; /* content-address method: "fixed:r:sha256", "text:sha256", ... */
			char **refs;
			bool repair;
			/* < 1.25 (an inline NAR follows) */
			bool fixed;
			uint64_t recursive;
			char *hash_algo;
		} add_to_store;
		struct {
			char *name;
			char *text; /* text_len bytes */
			size_t text_len;
			char **refs;
		} add_text_to_store;
		struct {
			/* BuildPaths (mode from 1.15), BuildPathsWithResults, QueryMissing (no mode) */
			struct proto_derived_path *paths;
			size_t n_paths;
			uint64_t mode;
		} build_paths;
		struct proto_client_settings set_options;
		struct proto_gc_options collect_garbage;
		struct {
			/* QueryValidPaths (substitute from 1.27), QuerySubstitutablePaths */
			char **paths;
			bool substitute;
		} paths;
		struct {
			/* >= 1.22: path -> content address ("" for none); older: paths (second NULL) */
			struct proto_pair *paths;
			size_t n_paths;
		} query_substitutable_path_infos;
		struct {
			bool check_contents;
			bool repair;
		} verify_store;
		struct {
			char *drv_path;
			struct proto_basic_derivation drv;
			uint64_t mode;
		} build_derivation;
		struct {
			char *path;
			char **sigs;
		} add_signatures;
		struct {
			struct proto_path_info info; /* keyed, full form */
			bool repair;
			bool dont_check_sigs;
		} add_to_store_nar;
		struct {
			bool repair;
			bool dont_check_sigs;
		} add_multiple_to_store;
		struct {
			/* < 1.31: id and out_path; >= 1.31: realisation (JSON) */
			char *id;
			char *out_path;
			char *realisation;
		} register_drv_output;
		struct {
			char *path;
			char *gc_root;
		} add_perm_root;
		struct {
			char *path;
			uint64_t sign; /* obsolete */
		} export_path;
	};
};
void proto_request_release(struct proto_request *r);

/*
 * Read the op code and the arguments of one request, in the form of the
 * negotiated version.  At a clean end of input before the op code,
 * returns 0 with ret->op == 0 (the client hung up between requests).
 * Returns 1 when a request was read.  An op that does not exist, or that
 * the negotiated version does not have, is an error (NIB_E_PROTOCOL, the
 * message names it); the connection cannot be used after that.
 */
int proto_read_request(struct proto_conn *c, struct proto_request *ret, struct nib_error **err);
/* Client side: write the op code and the arguments.  Fails for values the version cannot carry. */
int proto_write_request(struct proto_conn *c, const struct proto_request *r,
			struct nib_error **err);

/* ---- replies --------------------------------------------------------------------------------- */

enum proto_reply_kind {
	PROTO_REPLY_NONE,		 /* nothing after STDERR_LAST */
	PROTO_REPLY_U64,		 /* a number or bool */
	PROTO_REPLY_STRING,		 /* one string ("" = none for optional paths) */
	PROTO_REPLY_STRINGS,		 /* a path set */
	PROTO_REPLY_PATH_INFO,		 /* QueryPathInfo: valid flag (>= 1.17) + unkeyed info */
	PROTO_REPLY_KEYED_PATH_INFO,	 /* AddToStore >= 1.25 */
	PROTO_REPLY_PAIRS,		 /* FindRoots (link -> path), QueryDerivationOutputMap */
	PROTO_REPLY_BUILD_RESULT,	 /* BuildDerivation */
	PROTO_REPLY_KEYED_BUILD_RESULTS, /* BuildPathsWithResults */
	PROTO_REPLY_MISSING,		 /* QueryMissing */
	PROTO_REPLY_GC_RESULT,		 /* CollectGarbage */
	PROTO_REPLY_SUBSTITUTABLE,	 /* QuerySubstitutablePathInfo */
	PROTO_REPLY_SUBSTITUTABLES,	 /* QuerySubstitutablePathInfos */
	PROTO_REPLY_STREAM,		 /* NarFromPath: a NAR follows, no struct */
};

/* What an op's reply is in the given version (PROTO_REPLY_NONE for unknown ops too). */
enum proto_reply_kind proto_reply_kind(uint64_t op, unsigned version);

struct proto_reply {
	uint64_t op;
	enum proto_reply_kind kind;
	union {
		uint64_t u64;
		char *string;
		char **strings;
		struct {
			bool valid; /* QueryPathInfo: false = no info follows */
			struct proto_path_info info;
		} path_info;
		struct {
			struct proto_pair *pairs;
			size_t n;
		} pairs;
		struct proto_build_result build_result;
		struct {
			struct proto_keyed_build_result *results;
			size_t n;
		} keyed_build_results;
		struct proto_missing missing;
		struct proto_gc_result gc_result;
		struct {
			bool found; /* QuerySubstitutablePathInfo: false = nothing follows */
			struct proto_substitutable *items;
			size_t n;
		} substitutable;
	};
};
void proto_reply_release(struct proto_reply *r);

/*
 * Read/write the reply to `op` (after STDERR_LAST) in the form of the
 * negotiated version; sets ret->op and ret->kind.  PROTO_REPLY_STREAM and
 * PROTO_REPLY_NONE read nothing.  Writing checks that r->kind is the
 * kind of r->op (a programmer error aborts).
 */
int proto_read_reply(struct proto_conn *c, uint64_t op, struct proto_reply *ret,
		     struct nib_error **err);
void proto_write_reply(struct proto_conn *c, const struct proto_reply *r);

/* ---- client calls ---------------------------------------------------------------------------- */

/*
 * Client side, after a request (and the data that follows it, if any) was
 * written: flush, read the log frames through h (may be NULL), then the
 * reply.  Returns 0 with *ret_reply set (release it), 1 with *ret_error
 * set when the daemon reported a failure (free it; the connection stays
 * usable), -1 on I/O or protocol errors (the connection is unusable).
 * For NarFromPath the NAR follows: read it with proto_raw_read().
 */
int proto_client_finish(struct proto_conn *c, uint64_t op, const struct proto_log_handlers *h,
			struct proto_reply *ret_reply, struct proto_error **ret_error,
			struct nib_error **err);

/* proto_write_request() then proto_client_finish(): for requests without data. */
int proto_client_call(struct proto_conn *c, const struct proto_request *req,
		      const struct proto_log_handlers *h, struct proto_reply *ret_reply,
		      struct proto_error **ret_error, struct nib_error **err);

/*
 * Serving one request (what serve.c does; Nix's daemon does the same):
 *
 *   proto_read_request(c, &req, err)        0: the client hung up, stop
 *   read the data that follows, if any       framed: proto_framed_source (drain it on error)
 *   do the work, sending proto_write_next / _start_activity / _stop_activity /
 *     _result as it goes (flush now and then so that the client sees progress)
 *   proto_write_last(c) then proto_write_reply(c, &reply), or on failure
 *     proto_write_error(c, ...) and no reply
 *   proto_flush(c, err)
 *
 * A failure to decode a request cannot be answered reliably (the stream
 * position is lost): send an error frame, flush and close.  NarFromPath
 * answers STDERR_LAST and then the NAR itself (proto_write_raw as a sink).
 */

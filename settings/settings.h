/*
 * settings.h - nib's configuration: one descriptor table drives parsing,
 * validation, defaults, help text and `nib show-config`.
 *
 * File format is nix.conf's: `key = value`, `#` comments, list values split
 * on whitespace, `include FILE` (error if missing) and `!include FILE`
 * (silently skipped if missing), `extra-KEY = …` appends to a list setting.
 *
 * Sources, later ones win: built-in defaults, $NIB_CONF_DIR/nib.conf
 * (default /etc/nib/nib.conf), $NIB_CONFIG (inline text), the path
 * environment variables (NIB_STORE_DIR, NIB_STATE_DIR, NIB_LOG_DIR,
 * NIB_DAEMON_SOCKET), then --option NAME VALUE.  Each value remembers where
 * it came from.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum setting_type {
	SETTING_BOOL,
	SETTING_INT,  /* int64 with [min, max] */
	SETTING_SIZE, /* uint64 bytes, accepts K/M/G/T suffixes; 0 = unlimited */
	SETTING_STRING,
	SETTING_PATH,	 /* absolute path, normalised (no trailing slash) */
	SETTING_LIST,	 /* whitespace-separated words */
	SETTING_SANDBOX, /* true | false | relaxed */
	_SETTING_TYPE_MAX
};

enum setting_origin {
	ORIGIN_DEFAULT,
	ORIGIN_FILE,
	ORIGIN_INLINE, /* $NIB_CONFIG */
	ORIGIN_ENV,
	ORIGIN_CMDLINE, /* --option / dedicated flags */
	ORIGIN_CLIENT,	/* a daemon client's SetOptions */
	_ORIGIN_MAX
};

enum sandbox_mode {
	SANDBOX_OFF = 0,
	SANDBOX_ON = 1,
	SANDBOX_RELAXED = 2,
};

/* Every field is owned by the struct; lists are NULL-terminated string vectors. */
struct settings {
	char *store_dir;
	char *store_root;
	char *state_dir;
	char *log_dir;
	char *daemon_socket;
	char *build_dir;

	int sandbox; /* enum sandbox_mode */
	char **sandbox_paths;
	char **impure_env; /* NAME=VALUE words for impureEnvVars */
	bool filter_syscalls;
	bool use_cgroups;
	uint64_t build_memory_max;
	int64_t build_pids_max;

	char *build_users_group;
	bool auto_allocate_uids;
	int64_t start_id;
	int64_t ids_per_build;
	int64_t id_count;

	int64_t max_jobs;
	int64_t cores;
	int64_t max_silent_time;
	int64_t timeout;
	uint64_t max_build_log_size;
	bool keep_failed;
	bool keep_build_log;
	bool compress_build_log;
	int64_t log_lines;

	char *system;
	char **system_features;

	char **trusted_users;
	char **allowed_users;
	int64_t max_connections;
	int64_t spare_connection_processes;

	bool fsync_metadata;
	bool keep_outputs;
	bool keep_derivations;

	/* Where each value came from, indexed like the descriptor table. */
	enum setting_origin *origins;
	/* For ORIGIN_FILE: the file that set it (owned), indexed like origins. */
	char **origin_files;
};

struct setting_desc {
	const char *name;
	enum setting_type type;
	size_t offset;	  /* into struct settings */
	const char *def;  /* default, in file syntax */
	int64_t min, max; /* SETTING_INT range */
	bool client_safe; /* an untrusted daemon client may set it */
	const char *help;
};

/* The table and its length; entries are in documentation order. */
const struct setting_desc *settings_table(size_t *ret_n);
/* Look a setting up by name (without "extra-"); NULL if unknown. */
const struct setting_desc *settings_find(const char *name);

/* A new settings object holding the built-in defaults. */
struct settings *settings_new(void);
void settings_free(struct settings *s); /* NULL-safe */

static inline void settings_freep(struct settings **s)
{
	settings_free(*s);
}
#define cleanup_settings __attribute__((cleanup(settings_freep)))

/*
 * Set one setting from its text form.  name may carry an "extra-" prefix
 * (lists only: appends).  file is the source file for messages (may be NULL).
 * Unknown names: returns 1 (not an error; the caller warns), leaving s alone.
 * Bad values: -1 with an error naming the setting and the value.
 */
int settings_set(struct settings *s, const char *name, const char *value,
		 enum setting_origin origin, const char *file, struct nib_error **err);

/*
 * Parse text in nib.conf syntax.  path names the text for messages and is the
 * base for relative includes.  Unknown settings are reported through the
 * log at warning level.  Errors carry "file:line: ".
 */
int settings_parse_text(struct settings *s, const char *text, const char *path,
			enum setting_origin origin, bool check_owner, struct nib_error **err);

/*
 * Parse a settings file.  With check_owner (a privileged program), a file
 * not owned by root or writable by group/others is refused: an unprivileged
 * user must not be able to steer a root daemon.  Includes are checked too.
 */
int settings_parse_file(struct settings *s, const char *path, enum setting_origin origin,
			bool check_owner, struct nib_error **err);

struct settings_load_opts {
	/* NULL: use getenv().  Tests pass their own lookup. */
	const char *(*getenv_fn)(const char *name);
	/* Refuse files not owned by root or group/world writable (default: geteuid()==0). */
	int check_owner; /* -1 = auto, 0 = no, 1 = yes */
	/* --option pairs, applied last: names[i] = values[i]. */
	char *const *option_names;
	char *const *option_values;
	/* Skip the settings file (e.g. --no-config); env and options still apply. */
	bool no_file;
};

/*
 * Load every source in order (see the top of this file) into s, then
 * validate the result.  s normally comes fresh from settings_new().
 */
int settings_load(struct settings *s, const struct settings_load_opts *opts,
		  struct nib_error **err);

/* Cross-setting checks (numeric ranges of the UID pool, paths, ...). */
int settings_validate(const struct settings *s, struct nib_error **err);

/*
 * The numeric checks of the UID pool settings alone: start-id > 0, start-id
 * and id-count multiples of ids-per-build, the range ending at or below the
 * largest valid UID 4294967294.  Part of settings_validate(); the UID pool
 * runs it again before its checks against the account databases.
 */
int settings_validate_id_range(const struct settings *s, struct nib_error **err);

/* The value of a setting in file syntax (lists space-separated); caller frees. */
char *settings_value_string(const struct settings *s, const struct setting_desc *d);

/* "default", "file", "inline", "env", "command line", "client". */
const char *settings_origin_name(enum setting_origin o);

/* The path of the settings file that settings_load reads. */
char *settings_config_file(const char *(*getenv_fn)(const char *name));

/* Deep copy (the daemon gives each connection its own). */
struct settings *settings_copy(const struct settings *s);

/* The daemon's socket: daemon-socket, or <state-dir>/daemon-socket/socket when empty; caller frees. */
char *settings_daemon_socket_path(const struct settings *s);

/* Physical directory of the store: store_root + store_dir; caller frees. */
char *settings_real_store_dir(const struct settings *s);

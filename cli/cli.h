/*
 * cli.h - the `nib` command: shared context, the command table, output.
 *
 * Each subcommand lives in cli/cmd-*.c as
 *     int cmd_NAME(struct cli_ctx *ctx, int argc, char **argv);
 * argv[0] is the command's name ("derivation show"); options are parsed with
 * getopt_long.  A command returns an exit code: EXIT_OK, EXIT_FAILURE_NIB
 * (the operation failed), EXIT_USAGE (bad command line).  Only this
 * directory prints; cli/output.c turns nib_error into text or JSON.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cleanup.h"
#include "error.h"
#include "settings.h"

enum {
	EXIT_OK = 0,
	EXIT_FAILURE_NIB = 1,
	EXIT_USAGE = 2,
};

enum cli_store_mode {
	CLI_STORE_AUTO,
	CLI_STORE_LOCAL,
	CLI_STORE_DAEMON,
};

struct cli_ctx {
	struct settings *settings;
	bool json;     /* --json: machine-readable output on stdout */
	int verbosity; /* 0 normal, >0 more (-v), <0 quieter (--quiet) */
	enum cli_store_mode store_mode;
	const char *argv0;
};

struct cli_command {
	const char *name; /* "build", "derivation show", ... */
	int (*fn)(struct cli_ctx *ctx, int argc, char **argv);
	const char *args; /* synopsis of arguments, for help */
	const char *summary;
};

/* Print the usage of one command (from the table) plus its option lines. */
void cli_command_help(FILE *out, const char *name, const char *options_text);

/* Report an error: "nib: error: <msg>" on stderr (or a JSON object with --json). */
int cli_report_error(struct cli_ctx *ctx, const struct nib_error *e);
/* Print "nib: <fmt>" plus a hint to use --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Parse the options of a command whose only options are -h/--help and
 * --json.  Returns -1 when the command goes on (optind is at its first
 * argument), else the exit code to return: EXIT_OK after printing --help,
 * EXIT_USAGE for an unknown option.
 */
int cli_parse_json_only(struct cli_ctx *ctx, int argc, char **argv, const char *name,
			const char *options_help);
/* The same for a command that takes -h/--help only: --json is a usage error unless allow_json. */
int cli_parse_simple(struct cli_ctx *ctx, int argc, char **argv, const char *name,
		     const char *options_help, bool allow_json);
/* Print a JSON value to stdout followed by a newline; frees nothing. */
void cli_print_json(const cJSON *v);

DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)
#define cleanup_json __attribute__((cleanup(cJSON_Deletep)))

/*
 * Standard help handling inside a command's getopt loop: every command
 * accepts -h/--help.  CLI_COMMON_LONGOPTS goes into each option table.
 */
#define CLI_COMMON_LONGOPTS                    \
	{                                      \
		"help", no_argument, NULL, 'h' \
	}

struct store;

/*
 * Open the store selected by the settings and --store (the local store or
 * the daemon, see cli_use_daemon).  query_only: fall back to opening it read-only when it cannot be
 * written.  Reports the error itself; returns EXIT_OK or EXIT_FAILURE_NIB.
 */
int cli_open_store(struct cli_ctx *ctx, bool query_only, struct store **ret);

/*
 * Does this invocation talk to the daemon?  --store daemon / NIB_REMOTE=daemon
 * yes, --store local no; otherwise yes when the daemon socket exists and the
 * caller is not root.
 */
bool cli_use_daemon(struct cli_ctx *ctx);

/*
 * Turn a command-line argument into a store path: a store path, a path
 * inside one, its physical path under the store root, or a chain of
 * symlinks leading there.  *ret is newly allocated.
 */
int cli_resolve_store_path(struct store *store, const char *arg, char **ret,
			   struct nib_error **err);

int cmd_show_config(struct cli_ctx *ctx, int argc, char **argv);
int cmd_derivation_show(struct cli_ctx *ctx, int argc, char **argv);
int cmd_derivation_paths(struct cli_ctx *ctx, int argc, char **argv);
int cmd_add(struct cli_ctx *ctx, int argc, char **argv);
int cmd_path_info(struct cli_ctx *ctx, int argc, char **argv);
int cmd_gc(struct cli_ctx *ctx, int argc, char **argv);
int cmd_store_verify(struct cli_ctx *ctx, int argc, char **argv);
int cmd_store_roots(struct cli_ctx *ctx, int argc, char **argv);
int cmd_store_delete(struct cli_ctx *ctx, int argc, char **argv);
int cmd_store_register(struct cli_ctx *ctx, int argc, char **argv);
int cmd_derivation_add(struct cli_ctx *ctx, int argc, char **argv);
int cmd_nar_dump(struct cli_ctx *ctx, int argc, char **argv);
int cmd_nar_restore(struct cli_ctx *ctx, int argc, char **argv);
int cmd_nar_hash(struct cli_ctx *ctx, int argc, char **argv);
int cmd_hash_file(struct cli_ctx *ctx, int argc, char **argv);
int cmd_hash_path(struct cli_ctx *ctx, int argc, char **argv);
int cmd_build(struct cli_ctx *ctx, int argc, char **argv);
int cmd_log(struct cli_ctx *ctx, int argc, char **argv);
int cmd_slots(struct cli_ctx *ctx, int argc, char **argv);
int cmd_daemon_status(struct cli_ctx *ctx, int argc, char **argv);
int cmd_slots_release(struct cli_ctx *ctx, int argc, char **argv);
int cmd_slots_reclaim(struct cli_ctx *ctx, int argc, char **argv);

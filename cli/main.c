/*
 * nib - the command-line client.
 *
 * Global options may appear anywhere before a "--"; they are removed from
 * argv before the subcommand parses the rest.  Exit codes: 0 success,
 * 1 the operation failed, 2 the command line was wrong.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "util.h"
#include "banned.h"

static const struct cli_command commands[] = {
	{ "build", cmd_build, "[-j N] [--keep-going] [--keep-failed] [--check] [--json] ARG...",
	  "build derivations in sandboxes and print their output paths" },
	{ "log", cmd_log, "PATH", "print the stored build log of a derivation or an output" },
	{ "add", cmd_add,
	  "[--name NAME] [--add-root LINK] [--text [--ref PATH]...] [--json] PATH...",
	  "copy files or directories into the store and print their store paths" },
	{ "path-info", cmd_path_info,
	  "[--json] [-r] [--size] [--closure-size] [--references|--referrers|--deriver] "
	  "PATH...|--all",
	  "show metadata of valid store paths" },
	{ "gc", cmd_gc, "[--dry-run] [--max-freed SIZE] [--json]",
	  "delete store paths that no garbage-collector root reaches" },
	{ "store verify", cmd_store_verify, "[--check-contents] [--repair] [--json]",
	  "check that registered paths exist, are intact and consistent" },
	{ "store roots", cmd_store_roots, "[--json]", "list the garbage-collector roots" },
	{ "store delete", cmd_store_delete, "[--json] PATH...",
	  "delete dead store paths (and the dead paths that refer to them)" },
	{ "store register", cmd_store_register, "[--hash-given] < LIST",
	  "register paths already in the store directory (nix-store --register-validity)" },
	{ "show-config", cmd_show_config, "[--json] [NAME...]",
	  "print every setting with its effective value and where it came from" },
	{ "derivation add", cmd_derivation_add, "[--json] [FILE|-]",
	  "store a derivation (ATerm or JSON), computing or checking its output paths" },
	{ "derivation show", cmd_derivation_show, "[--aterm] [--inputs DIR] FILE...",
	  "print derivations as Nix 2.8's JSON (or as ATerm)" },
	{ "derivation paths", cmd_derivation_paths, "[--json] [--inputs DIR] FILE...",
	  "compute the output paths and the .drv path of derivations" },
	{ "nar dump", cmd_nar_dump, "PATH",
	  "write the NAR serialisation of PATH to standard output" },
	{ "nar restore", cmd_nar_restore, "[--max-size SIZE] DIR",
	  "unpack a NAR read from standard input into DIR, which must not exist" },
	{ "nar hash", cmd_nar_hash, "[--json] PATH...",
	  "print the SHA-256 of the NAR of each PATH as sha256:<base-32>" },
	{ "hash file", cmd_hash_file,
	  "[--type ALGO] [--sri|--base16|--base32|--base64] [--json] PATH...",
	  "print the hash of the contents of each file (default: SHA-256, SRI)" },
	{ "hash path", cmd_hash_path,
	  "[--type ALGO] [--sri|--base16|--base32|--base64] [--json] PATH...",
	  "print the hash of the NAR of each PATH (default: SHA-256, SRI)" },
	{ "daemon status", cmd_daemon_status, "[--json]",
	  "show what nib-daemon is doing: connections, running and queued builds, held slots" },
	{ "slots", cmd_slots, "[--json]",
	  "list the UID slots in use, held or stale, with a summary of the pool" },
	{ "slots release", cmd_slots_release, "N",
	  "clean up held slot N again and free it (root or a trusted user)" },
	{ "slots reclaim", cmd_slots_reclaim, "[--json]",
	  "clean every slot left behind by a holder that died (root or a trusted user)" },
};

static const struct cli_command *find_command(int argc, char **argv, int *ret_words)
{
	/* Two-word commands ("derivation show") take precedence. */
	if (argc >= 2) {
		cleanup_free char *two = xasprintf("%s %s", argv[0], argv[1]);
		for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
			if (STREQ(commands[i].name, two)) {
				*ret_words = 2;
				return &commands[i];
			}
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (STREQ(commands[i].name, argv[0])) {
			*ret_words = 1;
			return &commands[i];
		}
	return NULL;
}

static bool is_group(const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strncmp(commands[i].name, word, n) == 0 && commands[i].name[n] == ' ')
			return true;
	return false;
}

void cli_command_help(FILE *out, const char *name, const char *options_text)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (!STREQ(commands[i].name, name))
			continue;
		fprintf(out, "Usage: nib %s %s\n\n%c%s.\n\nOptions:\n%s", commands[i].name,
			commands[i].args, commands[i].summary[0] - ('a' - 'A'),
			commands[i].summary + 1, options_text);
		fputs("\nGlobal options (see 'nib --help') are accepted too.\n", out);
		return;
	}
}

static void usage(FILE *out, const char *group)
{
	fprintf(out, "Usage: nib [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
		     "nib builds derivations in sandboxes with per-build UID ranges and keeps\n"
		     "their outputs in a content-addressed store.\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (group && !(STARTS_WITH(commands[i].name, group) &&
			       commands[i].name[strlen(group)] == ' '))
			continue;
		fprintf(out, "  %-20s %s\n", commands[i].name, commands[i].summary);
	}
	fprintf(out,
		"\nGlobal options:\n"
		"  -h, --help              show this help (or 'nib COMMAND --help')\n"
		"      --version           print the version\n"
		"      --json              machine-readable output where a command prints data\n"
		"  -v, --verbose           more output (repeatable)\n"
		"      --quiet             less output\n"
		"      --option NAME VALUE set a setting (see 'nib show-config')\n"
		"      --store-dir DIR     logical store directory (setting store-dir)\n"
		"      --store-root DIR    physical prefix of the store (setting store-root)\n"
		"      --state-dir DIR     state directory (setting state-dir)\n"
		"      --store local|daemon  use the local store or the daemon (default: daemon\n"
		"                          when not root and its socket exists)\n"
		"      --no-config         do not read the settings file\n"
		"\nExit status: 0 success, 1 failure, 2 usage error.\n"
		"Environment: NIB_CONF_DIR, NIB_CONFIG, NIB_STORE_DIR, NIB_STORE_ROOT,\n"
		"NIB_STATE_DIR, NIB_LOG_DIR, NIB_DAEMON_SOCKET, NIB_REMOTE.\n");
}

int main(int argc, char **argv)
{
	cleanup_settings struct settings *settings = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_strv char **opt_names = xcalloc(1, sizeof(char *));
	cleanup_strv char **opt_values = xcalloc(1, sizeof(char *));
	cleanup_free char **rest = xcalloc((size_t)argc + 1, sizeof(char *));
	struct cli_ctx ctx = { .argv0 = argv[0] };
	struct settings_load_opts lo = { .check_owner = -1 };
	const struct cli_command *cmd;
	const char *remote = getenv("NIB_REMOTE");
	int nrest = 0, words = 0;
	bool want_help = false, seen_dashdash = false;

	log_set_ident("nib");
	if (remote != NULL && STREQ(remote, "daemon"))
		ctx.store_mode = CLI_STORE_DAEMON;
	else if (remote != NULL && STREQ(remote, "local"))
		ctx.store_mode = CLI_STORE_LOCAL;

	/* Pull global options out of argv, wherever they are (until "--"). */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *setting = NULL;

		if (seen_dashdash || a[0] != '-') {
			rest[nrest++] = argv[i];
			continue;
		}
		if (STREQ(a, "--")) {
			seen_dashdash = true;
			rest[nrest++] = argv[i];
		} else if (STREQ(a, "--version")) {
			printf("nib %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		} else if (STREQ(a, "--json")) {
			ctx.json = true;
		} else if (STREQ(a, "-v") || STREQ(a, "--verbose")) {
			ctx.verbosity++;
		} else if (STREQ(a, "--quiet")) {
			ctx.verbosity--;
		} else if (STREQ(a, "--no-config")) {
			lo.no_file = true;
		} else if (STREQ(a, "--option")) {
			if (i + 2 >= argc)
				return cli_usage_error(NULL, "'--option' needs NAME and VALUE");
			strv_push(&opt_names, argv[i + 1]);
			strv_push(&opt_values, argv[i + 2]);
			i += 2;
		} else if (STREQ(a, "--store-dir") || STREQ(a, "--store-root") ||
			   STREQ(a, "--state-dir")) {
			setting = a + 2;
		} else if (STREQ(a, "--store")) {
			if (i + 1 >= argc)
				return cli_usage_error(NULL, "'--store' needs 'local' or 'daemon'");
			if (STREQ(argv[i + 1], "local"))
				ctx.store_mode = CLI_STORE_LOCAL;
			else if (STREQ(argv[i + 1], "daemon"))
				ctx.store_mode = CLI_STORE_DAEMON;
			else
				return cli_usage_error(
					NULL, "'--store' takes 'local' or 'daemon', not '%s'",
					argv[i + 1]);
			i++;
		} else if ((STREQ(a, "-h") || STREQ(a, "--help")) && nrest == 0) {
			want_help = true;
		} else {
			rest[nrest++] = argv[i];
		}
		if (setting != NULL) {
			if (i + 1 >= argc)
				return cli_usage_error(NULL, "'%s' needs a value", a);
			strv_push(&opt_names, setting);
			strv_push(&opt_values, argv[++i]);
		}
	}

	if (want_help || nrest == 0) {
		usage(want_help ? stdout : stderr, NULL);
		return want_help ? EXIT_OK : EXIT_USAGE;
	}
	if (STREQ(rest[0], "help")) {
		if (nrest > 1) {
			char *hargv[] = { rest[1], (char *)"--help", NULL };
			cmd = find_command(nrest - 1, rest + 1, &words);
			if (cmd == NULL && !is_group(rest[1]))
				return cli_usage_error(NULL, "unknown command '%s'", rest[1]);
			if (cmd == NULL) {
				usage(stdout, rest[1]);
				return EXIT_OK;
			}
			optind = 1;
			return cmd->fn(&ctx, 2, hargv);
		}
		usage(stdout, NULL);
		return EXIT_OK;
	}

	cmd = find_command(nrest, rest, &words);
	if (cmd == NULL) {
		if (is_group(rest[0])) {
			if (nrest > 1 && !STREQ(rest[1], "--help") && !STREQ(rest[1], "-h"))
				return cli_usage_error(NULL, "unknown command 'nib %s %s'", rest[0],
						       rest[1]);
			usage(nrest > 1 ? stdout : stderr, rest[0]);
			return nrest > 1 ? EXIT_OK : EXIT_USAGE;
		}
		return cli_usage_error(NULL, "unknown command '%s'", rest[0]);
	}

	log_set_max_level(LOG_NOTICE + ctx.verbosity);
	lo.option_names = opt_names;
	lo.option_values = opt_values;
	settings = settings_new();
	if (settings_load(settings, &lo, &err) < 0)
		return cli_report_error(&ctx, err);
	ctx.settings = settings;

	{
		/* argv for the command: its name as argv[0], then its arguments. */
		int cargc = nrest - words + 1;
		char **cargv = rest + words - 1;
		char *saved = cargv[0];
		int r;

		cargv[0] = (char *)cmd->name;
		optind = 1;
		opterr = 1;
		r = cmd->fn(&ctx, cargc, cargv);
		cargv[0] = saved;
		fflush(stdout);
		if (ferror(stdout)) {
			fprintf(stderr, "nib: error: cannot write to standard output\n");
			return EXIT_FAILURE_NIB;
		}
		return r;
	}
}

/*
 * cmd-nar.c - nib nar dump | restore | hash: NAR serialisation of local
 * paths (no store involved).
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hash.h"
#include "nar.h"
#include "util.h"
#include "banned.h"

static int stdout_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)userdata;
	if (write_full(STDOUT_FILENO, data, len, err) < 0)
		return nib_error_prefix(err, "writing standard output");
	return 0;
}

int cmd_nar_dump(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char help[] = "  -h, --help     show this help\n"
				   "  PATH           a file, symlink (not followed) or directory\n";
	cleanup_error struct nib_error *err = NULL;
	int r = cli_parse_simple(ctx, argc, argv, "nar dump", help, false);

	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return cli_usage_error("nar dump", "expected exactly one PATH");
	if (isatty(STDOUT_FILENO))
		return cli_usage_error("nar dump", "refusing to write a NAR to a terminal");
	if (nar_dump_at(AT_FDCWD, argv[optind], stdout_sink, NULL, &err) < 0)
		return cli_report_error(ctx, err);
	return EXIT_OK;
}

int cmd_nar_restore(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char help[] =
		"  -h, --help            show this help\n"
		"      --max-size SIZE   refuse archives larger than SIZE bytes (K/M/G/T "
		"suffixes)\n"
		"  DIR                   where to unpack; must not exist (nothing is left there\n"
		"                        if the archive is invalid)\n";
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "max-size", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct nar_restore_limits limits = { 0 };
	cleanup_error struct nib_error *err = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "nar restore", help);
			return EXIT_OK;
		case 's':
			if (parse_size(optarg, &limits.max_bytes) < 0 || limits.max_bytes == 0)
				return cli_usage_error("nar restore", "invalid size '%s'", optarg);
			break;
		default:
			return cli_usage_error("nar restore", "invalid option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("nar restore", "expected exactly one DIR");
	if (isatty(STDIN_FILENO))
		return cli_usage_error("nar restore", "refusing to read a NAR from a terminal");
	if (nar_restore_fd(argv[optind], STDIN_FILENO, &limits, &err) < 0)
		return cli_report_error(ctx, err);
	return EXIT_OK;
}

int cmd_nar_hash(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char help[] =
		"  -h, --help     show this help\n"
		"      --json     print [{\"path\", \"narHash\", \"narSize\"}]\n"
		"  PATH...        files, symlinks (not followed) or directories\n"
		"\nPrints sha256:<nix-base-32> per PATH, as 'nix-store -q --hash' does.\n"
		"See 'nib hash path' for other algorithms and encodings.\n";
	cleanup_json cJSON *arr = NULL;
	int r = cli_parse_simple(ctx, argc, argv, "nar hash", help, true);

	if (r >= 0)
		return r;
	if (optind >= argc)
		return cli_usage_error("nar hash", "expected at least one PATH");
	if (ctx->json)
		arr = cJSON_CreateArray();
	for (int i = optind; i < argc; i++) {
		cleanup_error struct nib_error *err = NULL;
		cleanup_free char *s = NULL;
		struct hash h;
		uint64_t size = 0;

		if (nar_hash_path(argv[i], &h, &size, &err) < 0)
			return cli_report_error(ctx, err);
		s = hash_to_string(&h, HASH_ENC_BASE32, true);
		if (arr != NULL) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "path", argv[i]);
			cJSON_AddStringToObject(o, "narHash", s);
			cJSON_AddNumberToObject(o, "narSize", (double)size);
			cJSON_AddItemToArray(arr, o);
		} else {
			printf("%s\n", s);
		}
	}
	if (arr != NULL)
		cli_print_json(arr);
	return EXIT_OK;
}

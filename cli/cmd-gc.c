/* nib gc: delete unreachable store paths. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help            show this help\n"
	"      --dry-run         print what would be deleted, delete nothing\n"
	"      --max-freed SIZE  stop after freeing SIZE bytes (suffixes K, M, G, T)\n"
	"      --json            print {\"deleted\": [...], \"bytesFreed\", \"dryRun\"}\n"
	"Each deleted path is printed on its own line; a summary goes to standard error.\n";

struct gc_print {
	struct cli_ctx *ctx;
	cJSON *list;
};

static void on_path(void *userdata, const char *path, uint64_t bytes)
{
	struct gc_print *p = userdata;

	(void)bytes;
	if (p->ctx->json)
		cJSON_AddItemToArray(p->list, cJSON_CreateString(path));
	else
		printf("%s\n", path);
}

int cmd_gc(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "dry-run", no_argument, NULL, 'n' },
		{ "max-freed", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_json cJSON *list = cJSON_CreateArray();
	struct gc_print pr = { ctx, list };
	struct store_gc_options opts = { .on_path = on_path, .userdata = &pr };
	struct store_gc_result res = { 0 };
	cleanup_free char *freed = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "gc", options_help);
			return EXIT_OK;
		case 'n':
			opts.dry_run = true;
			break;
		case 'm':
			if (parse_size(optarg, &opts.max_freed) < 0)
				return cli_usage_error("gc", "invalid size '%s'", optarg);
			break;
		case 'j':
			ctx->json = true;
			break;
		default:
			return cli_usage_error("gc", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage_error("gc", "unexpected argument '%s'", argv[optind]);

	r = cli_open_store(ctx, opts.dry_run, &store);
	if (r != EXIT_OK)
		return r;
	if (store_collect_garbage(store, &opts, &res, &err) < 0)
		return cli_report_error(ctx, err);
	freed = format_bytes(res.bytes);
	if (ctx->json) {
		cleanup_json cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "deleted", TAKE_PTR(list));
		cJSON_AddNumberToObject(o, "bytesFreed", (double)res.bytes);
		cJSON_AddBoolToObject(o, "dryRun", opts.dry_run);
		cJSON_AddNumberToObject(o, "tempFilesRemoved", (double)res.temp_files);
		cli_print_json(o);
	} else if (ctx->verbosity >= 0) {
		fflush(stdout);
		if (opts.dry_run)
			fprintf(stderr, "%llu store paths would be deleted, %s would be freed\n",
				(unsigned long long)res.paths, freed);
		else
			fprintf(stderr, "%llu store paths deleted, %s freed\n",
				(unsigned long long)res.paths, freed);
	}
	return EXIT_OK;
}

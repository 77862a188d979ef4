/* nib derivation add: store a derivation (ATerm or JSON) and register it. */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "derivation.h"
#include "path.h"
#include "store-derivation.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help     show this help\n"
	"      --json     print {\"path\": ...}\n"
	"  FILE           an ATerm (.drv) or JSON derivation (Nix 2.8's 'nix show-derivation'\n"
	"                 form, or a bare object as 'nix derivation add' takes); '-' or\n"
	"                 nothing reads standard input\n"
	"\nInput sources and input derivations must be valid.  Output paths left out of\n"
	"JSON are computed; given ones are checked.  The .drv path is printed.\n";

int cmd_derivation_add(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_derivation struct derivation *d = NULL;
	cleanup_free char *text = NULL, *key = NULL, *path = NULL;
	const char *file = "-";
	size_t len = 0;
	int r;

	r = cli_parse_json_only(ctx, argc, argv, "derivation add", options_help);
	if (r >= 0)
		return r;
	if (argc - optind > 1)
		return cli_usage_error("derivation add", "one derivation at a time");
	if (optind < argc)
		file = argv[optind];

	r = STREQ(file, "-") ? read_fd_all(STDIN_FILENO, DRV_MAX_TEXT, &text, &len, &err)
			     : read_file_at(AT_FDCWD, file, DRV_MAX_TEXT, &text, &len, &err);
	if (r < 0)
		return cli_report_error(ctx, err);
	if (derivation_parse_any(text, len, ctx->settings->store_dir, &key, &d, &err) < 0) {
		nib_error_prefix(&err, "'%s'", STREQ(file, "-") ? "standard input" : file);
		return cli_report_error(ctx, err);
	}
	if (d->name == NULL && key != NULL) {
		/* A show-derivation object is keyed by "<name>.drv". */
		struct store_path sp;
		if (store_path_parse(ctx->settings->store_dir, key, false, &sp, &err) < 0)
			return cli_report_error(ctx, err);
		d->name = xstrndup(sp.name, strlen(sp.name) - 4);
	}
	r = cli_open_store(ctx, false, &store);
	if (r != EXIT_OK)
		return r;
	if (store_add_derivation(store, d, &path, &err) < 0)
		return cli_report_error(ctx, err);
	if (key != NULL && !STREQ(key, path)) {
		nib_error_set(&err, NIB_E_INVALID, 0,
			      "'%s' does not match its contents, which belong at '%s'", key, path);
		return cli_report_error(ctx, err);
	}
	if (ctx->json) {
		cleanup_json cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "path", path);
		cli_print_json(o);
	} else {
		printf("%s\n", path);
	}
	return EXIT_OK;
}

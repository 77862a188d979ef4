/* nib log: print the stored build log of a derivation or of one of its outputs. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "build.h"
#include "cli.h"
#include "path.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help     show this help\n"
	"  PATH           a .drv path, or an output path (its deriver's log is shown)\n";

static int to_stdout(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)userdata;
	if (fwrite(data, 1, len, stdout) != len)
		return nib_error_errno(err, "cannot write to standard output");
	return 0;
}

/* Print the log of drv if one is stored: 1 printed, 0 none, -1 error. */
static int print_log(const struct settings *s, const char *drv, struct nib_error **err)
{
	for (int compressed = 1; compressed >= 0; compressed--) {
		cleanup_free char *path = build_log_path(s, drv, compressed);
		cleanup_error struct nib_error *e = NULL;

		if (access(path, F_OK) < 0)
			continue;
		if (archive_log_read(path, 0, to_stdout, NULL, &e) < 0)
			return nib_error_move(err, &e);
		return 1;
	}
	return 0;
}

int cmd_log(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_free char *path = NULL;
	cleanup_strv char **drvs = xcalloc(1, sizeof(char *));
	struct store_path sp;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "log", options_help);
			return EXIT_OK;
		default:
			return cli_usage_error("log", "invalid option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("log", "expected one path");
	r = cli_open_store(ctx, true, &store);
	if (r != EXIT_OK)
		return r;
	if (cli_resolve_store_path(store, argv[optind], &path, &err) < 0 ||
	    store_path_parse(store_dir(store), path, false, &sp, &err) < 0)
		return cli_report_error(ctx, err);

	if (store_path_is_drv(&sp)) {
		strv_push(&drvs, path);
	} else {
		cleanup_strv char **derivers = NULL;
		struct store_path_info info = { 0 };

		if (store_query_valid_derivers(store, path, &derivers, &err) < 0)
			return cli_report_error(ctx, err);
		for (char **d = derivers; *d != NULL; d++)
			strv_push(&drvs, *d);
		r = store_query_path_info(store, path, &info, &err);
		if (r < 0)
			return cli_report_error(ctx, err);
		if (r > 0 && info.deriver != NULL && !strv_contains(drvs, info.deriver))
			strv_push(&drvs, info.deriver);
		store_path_info_release(&info);
	}
	for (char **d = drvs; *d != NULL; d++) {
		r = print_log(ctx->settings, *d, &err);
		if (r < 0)
			return cli_report_error(ctx, err);
		if (r > 0)
			return EXIT_OK;
	}
	nib_error_set(&err, NIB_E_NOT_FOUND, 0, "no build log of '%s' is stored", path);
	return cli_report_error(ctx, err);
}

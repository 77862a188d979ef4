#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "util.h"
#include "banned.h"

int cli_report_error(struct cli_ctx *ctx, const struct nib_error *e)
{
	const char *msg = e != NULL ? e->msg : "unknown error";

	if (ctx != NULL && ctx->json) {
		cleanup_json cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "error", msg);
		cJSON_AddStringToObject(o, "kind", e ? nib_errc_name(e->code) : "unknown");
		if (e != NULL && e->sys_errno)
			cJSON_AddNumberToObject(o, "errno", e->sys_errno);
		cli_print_json(o);
	}
	fprintf(stderr, "nib: error: %s\n", msg);
	return EXIT_FAILURE_NIB;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("nib: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd != NULL)
		fprintf(stderr, "\nTry 'nib %s --help' for more information.\n", cmd);
	else
		fputs("\nTry 'nib --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

void cli_print_json(const cJSON *v)
{
	cleanup_free char *s = cJSON_PrintUnformatted(v);

	if (s == NULL)
		abort();
	fputs(s, stdout);
	fputc('\n', stdout);
}

int cli_parse_simple(struct cli_ctx *ctx, int argc, char **argv, const char *name,
		     const char *options_help, bool allow_json)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, name, options_help);
			return EXIT_OK;
		case 'j':
			if (!allow_json)
				return cli_usage_error(name, "'--json' is not supported here");
			ctx->json = true;
			break;
		default:
			return cli_usage_error(name, "invalid option");
		}
	}
	return -1;
}

int cli_parse_json_only(struct cli_ctx *ctx, int argc, char **argv, const char *name,
			const char *options_help)
{
	return cli_parse_simple(ctx, argc, argv, name, options_help, true);
}

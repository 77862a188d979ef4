#include "config.h"

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
	fprintf(stderr, "\nTry 'nib %s--help' for more information.\n", cmd ? "" : "");
	if (cmd != NULL)
		fprintf(stderr, "(or 'nib %s --help')\n", cmd);
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

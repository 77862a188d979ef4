#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help     show this help\n"
	"      --json     print a JSON object: {name: {value, origin, file?, description}}\n"
	"  NAME...        show only these settings (value only, one per line)\n";

int cmd_show_config(struct cli_ctx *ctx, int argc, char **argv)
{
	const struct setting_desc *table;
	size_t n;
	int r;

	r = cli_parse_json_only(ctx, argc, argv, "show-config", options_help);
	if (r >= 0)
		return r;

	table = settings_table(&n);
	for (int i = optind; i < argc; i++)
		if (settings_find(argv[i]) == NULL)
			return cli_usage_error("show-config", "unknown setting '%s'", argv[i]);

	if (ctx->json) {
		cleanup_json cJSON *root = cJSON_CreateObject();
		for (size_t i = 0; i < n; i++) {
			const struct setting_desc *d = &table[i];
			cleanup_free char *v = NULL;
			cJSON *o;
			bool wanted = optind >= argc;

			for (int k = optind; k < argc; k++)
				wanted |= STREQ(argv[k], d->name);
			if (!wanted)
				continue;
			v = settings_value_string(ctx->settings, d);
			o = cJSON_AddObjectToObject(root, d->name);
			if (d->type == SETTING_LIST) {
				cJSON *arr = cJSON_AddArrayToObject(o, "value");
				for (char **w = *(char ***)((char *)ctx->settings + d->offset);
				     w && *w; w++)
					cJSON_AddItemToArray(arr, cJSON_CreateString(*w));
			} else if (d->type == SETTING_BOOL) {
				cJSON_AddBoolToObject(o, "value", STREQ(v, "true"));
			} else if (d->type == SETTING_INT || d->type == SETTING_SIZE) {
				cJSON_AddNumberToObject(o, "value", strtod(v, NULL));
			} else {
				cJSON_AddStringToObject(o, "value", v);
			}
			cJSON_AddStringToObject(o, "origin",
						settings_origin_name(ctx->settings->origins[i]));
			if (ctx->settings->origin_files[i])
				cJSON_AddStringToObject(o, "file", ctx->settings->origin_files[i]);
			cJSON_AddStringToObject(o, "description", d->help);
		}
		cli_print_json(root);
		return EXIT_OK;
	}

	if (optind < argc) {
		for (int k = optind; k < argc; k++) {
			cleanup_free char *v =
				settings_value_string(ctx->settings, settings_find(argv[k]));
			printf("%s\n", v);
		}
		return EXIT_OK;
	}

	for (size_t i = 0; i < n; i++) {
		cleanup_free char *v = settings_value_string(ctx->settings, &table[i]);
		enum setting_origin o = ctx->settings->origins[i];

		printf("%s = %s", table[i].name, v);
		if (o == ORIGIN_FILE && ctx->settings->origin_files[i])
			printf("  # from %s", ctx->settings->origin_files[i]);
		else if (o != ORIGIN_DEFAULT)
			printf("  # from %s", settings_origin_name(o));
		putchar('\n');
	}
	return EXIT_OK;
}

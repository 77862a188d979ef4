/* nib add: copy files or directories into the store as source paths. */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help             show this help\n"
	"  -n, --name NAME        store path name (default: the file's base name; one PATH only)\n"
	"      --add-root LINK    make LINK a symlink to the result and a GC root (one PATH only)\n"
	"      --text             add each file's contents as a text path (like\n"
	"                         builtins.toFile) instead of a source path\n"
	"      --ref PATH         with --text: a store path the text refers to (repeatable)\n"
	"      --json             print [{\"source\", \"path\"}]\n"
	"  PATH...                files, directories or symlinks to add (symlinks are not\n"
	"                         followed); the store paths are printed one per line\n";

#define MAX_TEXT_FILE (64u << 20)

static int add_text(struct store *store, const char *file, const char *name, char **refs,
		    char **ret_path, struct nib_error **err)
{
	cleanup_free char *data = NULL, *copy = xstrdup(file);
	size_t len = 0;
	char *slash;

	if (read_file_at(AT_FDCWD, file, MAX_TEXT_FILE, &data, &len, err) < 0)
		return nib_error_prefix(err, "cannot add '%s'", file);
	if (name == NULL) {
		slash = strrchr(copy, '/');
		name = slash ? slash + 1 : copy;
	}
	if (store_add_text(store, name, data, len, refs, ret_path, err) < 0)
		return nib_error_prefix(err, "cannot add '%s'", file);
	return 0;
}

int cmd_add(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "name", required_argument, NULL, 'n' },
		{ "add-root", required_argument, NULL, 'r' },
		{ "text", no_argument, NULL, 't' },
		{ "ref", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_json cJSON *out = NULL;
	cleanup_strv char **refs = xcalloc(1, sizeof(char *));
	const char *name = NULL, *root = NULL;
	bool text = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "hn:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "add", options_help);
			return EXIT_OK;
		case 'n':
			name = optarg;
			break;
		case 'r':
			root = optarg;
			break;
		case 't':
			text = true;
			break;
		case 'R':
			strv_push(&refs, optarg);
			break;
		case 'j':
			ctx->json = true;
			break;
		default:
			return cli_usage_error("add", "invalid option");
		}
	}
	if (optind >= argc)
		return cli_usage_error("add", "nothing to add");
	if ((name != NULL || root != NULL) && argc - optind > 1)
		return cli_usage_error("add", "'--name' and '--add-root' take a single PATH");
	if (refs[0] != NULL && !text)
		return cli_usage_error("add", "'--ref' needs '--text'");
	if (root != NULL && root[0] != '/')
		return cli_usage_error("add", "'--add-root' needs an absolute path");

	r = cli_open_store(ctx, false, &store);
	if (r != EXIT_OK)
		return r;
	out = cJSON_CreateArray();
	for (int i = optind; i < argc; i++) {
		cleanup_error struct nib_error *err = NULL;
		cleanup_free char *path = NULL;

		if ((text ? add_text(store, argv[i], name, refs, &path, &err)
			  : store_add_path(store, argv[i], name, &path, &err)) < 0 ||
		    (root != NULL && store_add_perm_root(store, path, root, &err) < 0))
			return cli_report_error(ctx, err);
		if (ctx->json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "source", argv[i]);
			cJSON_AddStringToObject(o, "path", path);
			cJSON_AddItemToArray(out, o);
		} else {
			printf("%s\n", path);
		}
	}
	if (ctx->json)
		cli_print_json(out);
	return EXIT_OK;
}

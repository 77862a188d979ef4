/* nib path-info: metadata of valid store paths. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hash.h"
#include "hashset.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help            show this help\n"
	"      --json            print an array of objects like 'nix path-info --json'\n"
	"  -r, --recursive       show the closure of the paths\n"
	"      --all             show every valid path of the store (no PATH arguments)\n"
	"  -s, --size            show the NAR size\n"
	"  -S, --closure-size    show the total NAR size of the closure\n"
	"      --references      print the references of the paths instead (sorted, unique)\n"
	"      --referrers       print the valid paths that refer to them instead\n"
	"      --deriver         print each path's deriver instead ('unknown-deriver' if none)\n"
	"  PATH...               store paths (or symlinks into the store, or paths inside\n"
	"                        store paths)\n"
	"With --json, --referrers adds a \"referrers\" list to each object.\n";

/* An array of path infos, released at scope exit. */
struct info_array {
	struct store_path_info *v;
	size_t n;
};

static void info_array_releasep(struct info_array *a)
{
	for (size_t i = 0; a->v != NULL && i < a->n; i++)
		store_path_info_release(&a->v[i]);
	free(a->v);
}
#define cleanup_info_array __attribute__((cleanup(info_array_releasep)))

/* The total NAR size of the closure of path (paths that are not valid count 0). */
static int closure_size(struct store *store, const char *path, uint64_t *ret,
			struct nib_error **err)
{
	cleanup_strv char **closure = NULL;
	cleanup_info_array struct info_array infos = { NULL, 0 };
	char *const one[] = { (char *)path, NULL };
	uint64_t total = 0;

	if (store_query_closure(store, one, 1, 0, &closure, err) < 0)
		return -1;
	/* One batch query: the local store answers it from one snapshot. */
	infos.n = strv_length(closure);
	infos.v = xcalloc(infos.n + 1, sizeof(*infos.v));
	if (store_query_path_infos(store, closure, infos.n, infos.v, err) < 0)
		return -1;
	for (size_t i = 0; i < infos.n; i++)
		total += infos.v[i].nar_size;
	*ret = total;
	return 0;
}

static cJSON *info_json(const struct store_path_info *info)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *refs = NULL;
	cleanup_free char *nar_hash = hash_to_string(&info->nar_hash, HASH_ENC_SRI, true);

	cJSON_AddStringToObject(o, "path", info->path);
	cJSON_AddStringToObject(o, "narHash", nar_hash);
	cJSON_AddNumberToObject(o, "narSize", (double)info->nar_size);
	refs = cJSON_AddArrayToObject(o, "references");
	for (char **r = info->references; r && *r; r++)
		cJSON_AddItemToArray(refs, cJSON_CreateString(*r));
	if (info->ca != NULL)
		cJSON_AddStringToObject(o, "ca", info->ca);
	if (info->deriver != NULL)
		cJSON_AddStringToObject(o, "deriver", info->deriver);
	cJSON_AddNumberToObject(o, "registrationTime", (double)info->registration_time);
	if (info->ultimate)
		cJSON_AddBoolToObject(o, "ultimate", true);
	if (info->sigs != NULL && info->sigs[0] != NULL) {
		cJSON *sigs = cJSON_AddArrayToObject(o, "signatures");
		for (char **s = info->sigs; *s; s++)
			cJSON_AddItemToArray(sigs, cJSON_CreateString(*s));
	}
	return o;
}

int cmd_path_info(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, 'j' },
		{ "recursive", no_argument, NULL, 'r' },
		{ "size", no_argument, NULL, 's' },
		{ "closure-size", no_argument, NULL, 'S' },
		{ "references", no_argument, NULL, 'F' },
		{ "referrers", no_argument, NULL, 'R' },
		{ "deriver", no_argument, NULL, 'D' },
		{ "all", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_strv char **paths = xcalloc(1, sizeof(char *));
	cleanup_json cJSON *out = cJSON_CreateArray();
	cleanup_info_array struct info_array infos = { NULL, 0 };
	cleanup_strset struct strset *listed = strset_new();
	bool recursive = false, size = false, csize = false, invalid = false, all = false;
	int c, r, query = 0;

	while ((c = getopt_long(argc, argv, "hrsS", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "path-info", options_help);
			return EXIT_OK;
		case 'j':
			ctx->json = true;
			break;
		case 'r':
			recursive = true;
			break;
		case 's':
			size = true;
			break;
		case 'A':
			all = true;
			break;
		case 'S':
			csize = true;
			break;
		case 'F':
		case 'R':
		case 'D':
			if (query != 0 && query != c)
				return cli_usage_error("path-info",
						       "choose one of '--references', "
						       "'--referrers' and '--deriver'");
			query = c;
			break;
		default:
			return cli_usage_error("path-info", "invalid option");
		}
	}
	if (all && optind < argc)
		return cli_usage_error("path-info", "'--all' takes no paths");
	if (!all && optind >= argc)
		return cli_usage_error("path-info", "no paths given");

	r = cli_open_store(ctx, true, &store);
	if (r != EXIT_OK)
		return r;
	if (all) {
		strv_free(paths);
		paths = NULL;
		if (store_query_all_valid(store, &paths, &err) < 0)
			return cli_report_error(ctx, err);
	}
	for (int i = optind; i < argc; i++) {
		cleanup_free char *p = NULL;
		if (cli_resolve_store_path(store, argv[i], &p, &err) < 0)
			return cli_report_error(ctx, err);
		strv_push(&paths, p);
	}
	if (recursive) {
		char **closure = NULL;
		if (store_query_closure(store, paths, strv_length(paths), 0, &closure, &err) < 0)
			return cli_report_error(ctx, err);
		strv_free(paths);
		paths = closure;
	}

	infos.n = strv_length(paths);
	infos.v = xcalloc(infos.n + 1, sizeof(*infos.v));
	if (store_query_path_infos(store, paths, infos.n, infos.v, &err) < 0)
		return cli_report_error(ctx, err);
	for (size_t i = 0; i < infos.n; i++) {
		struct store_path_info *info = &infos.v[i];
		cleanup_strv char **referrers = NULL;
		uint64_t cs = 0;

		if (info->path == NULL) {
			cJSON *o;
			if (!ctx->json) {
				nib_error_set(&err, NIB_E_NOT_FOUND, 0, "path '%s' is not valid",
					      paths[i]);
				return cli_report_error(ctx, err);
			}
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "path", paths[i]);
			cJSON_AddBoolToObject(o, "valid", false);
			cJSON_AddItemToArray(out, o);
			invalid = true;
			continue;
		}
		if (csize && closure_size(store, info->path, &cs, &err) < 0)
			return cli_report_error(ctx, err);
		if (query == 'R' && store_query_referrers(store, info->path, &referrers, &err) < 0)
			return cli_report_error(ctx, err);
		if (ctx->json) {
			cJSON *o = info_json(info);
			if (csize)
				cJSON_AddNumberToObject(o, "closureSize", (double)cs);
			if (query == 'R') {
				cJSON *a = cJSON_AddArrayToObject(o, "referrers");
				for (char **q = referrers; *q; q++)
					cJSON_AddItemToArray(a, cJSON_CreateString(*q));
			}
			cJSON_AddItemToArray(out, o);
		} else if (query == 'F' || query == 'R') {
			/* Like nix-store -q: the union over all paths, each once. */
			for (char **q = query == 'F' ? info->references : referrers; q && *q; q++)
				strset_add(listed, *q);
		} else if (query == 'D') {
			printf("%s\n", info->deriver ? info->deriver : "unknown-deriver");
		} else {
			printf("%s", info->path);
			if (size)
				printf("\t%" PRIu64, info->nar_size);
			if (csize)
				printf("\t%" PRIu64, cs);
			putchar('\n');
		}
	}
	if (ctx->json) {
		cli_print_json(out);
	} else if (query == 'F' || query == 'R') {
		cleanup_strv char **v = strset_to_sorted_strv(listed);
		for (char **q = v; *q; q++)
			printf("%s\n", *q);
	}
	if (invalid) {
		fprintf(stderr, "nib: error: some paths are not valid\n");
		return EXIT_FAILURE_NIB;
	}
	return EXIT_OK;
}

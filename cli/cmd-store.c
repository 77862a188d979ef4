/* nib store verify | roots | delete | register: store maintenance. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hash.h"
#include "local-store.h"
#include "nar.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char verify_help[] =
	"  -h, --help            show this help\n"
	"      --check-contents  re-hash every path and compare with its registered NAR hash\n"
	"      --repair          fix what can be fixed safely (metadata, missing paths nothing\n"
	"                        refers to); report the rest\n"
	"      --json            print {\"checked\", \"problems\": [...], \"repaired\"}\n"
	"Exit status 1 when a problem remains.\n";

struct verify_print {
	struct cli_ctx *ctx;
	cJSON *list;
};

static void on_problem(void *userdata, const struct store_verify_problem *p)
{
	struct verify_print *vp = userdata;

	if (vp->ctx->json) {
		cJSON *o = cJSON_CreateObject();
		if (p->path != NULL)
			cJSON_AddStringToObject(o, "path", p->path);
		cJSON_AddStringToObject(o, "kind", p->kind);
		cJSON_AddStringToObject(o, "message", p->message);
		cJSON_AddBoolToObject(o, "repaired", p->repaired);
		cJSON_AddItemToArray(vp->list, o);
	} else {
		printf("%s: %s%s\n", p->kind, p->message, p->repaired ? " [repaired]" : "");
	}
}

int cmd_store_verify(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "check-contents", no_argument, NULL, 'c' },
		{ "repair", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_json cJSON *list = cJSON_CreateArray();
	struct verify_print vp = { ctx, list };
	struct store_verify_result res = { 0 };
	unsigned flags = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "store verify", verify_help);
			return EXIT_OK;
		case 'c':
			flags |= STORE_VERIFY_CONTENTS;
			break;
		case 'r':
			flags |= STORE_VERIFY_REPAIR;
			break;
		case 'j':
			ctx->json = true;
			break;
		default:
			return cli_usage_error("store verify", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage_error("store verify", "unexpected argument '%s'", argv[optind]);
	r = cli_open_store(ctx, !(flags & STORE_VERIFY_REPAIR), &store);
	if (r != EXIT_OK)
		return r;
	if (store_verify(store, flags, on_problem, &vp, &res, &err) < 0)
		return cli_report_error(ctx, err);
	if (ctx->json) {
		cleanup_json cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "checked", (double)res.checked);
		cJSON_AddItemToObject(o, "problems", TAKE_PTR(list));
		cJSON_AddNumberToObject(o, "repaired", (double)res.repaired);
		cli_print_json(o);
	} else if (ctx->verbosity >= 0) {
		fflush(stdout);
		fprintf(stderr, "checked %llu paths: %llu problems, %llu repaired\n",
			(unsigned long long)res.checked, (unsigned long long)res.problems,
			(unsigned long long)res.repaired);
	}
	return res.problems > res.repaired ? EXIT_FAILURE_NIB : EXIT_OK;
}

static const char roots_help[] =
	"  -h, --help     show this help\n"
	"      --json     print [{\"link\", \"path\"}]\n"
	"Prints 'LINK -> PATH' for each root; temporary roots of running processes\n"
	"appear as '{temp:PID}'.\n";

int cmd_store_roots(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	struct store_root *roots = NULL;
	size_t n = 0;
	int r;

	r = cli_parse_json_only(ctx, argc, argv, "store roots", roots_help);
	if (r >= 0)
		return r;
	if (optind < argc)
		return cli_usage_error("store roots", "unexpected argument '%s'", argv[optind]);
	r = cli_open_store(ctx, true, &store);
	if (r != EXIT_OK)
		return r;
	if (store_find_roots(store, true, &roots, &n, &err) < 0)
		return cli_report_error(ctx, err);
	if (ctx->json) {
		cleanup_json cJSON *a = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "link", roots[i].link);
			cJSON_AddStringToObject(o, "path", roots[i].path);
			cJSON_AddItemToArray(a, o);
		}
		cli_print_json(a);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s -> %s\n", roots[i].link, roots[i].path);
	}
	store_roots_free(roots, n);
	return EXIT_OK;
}

static const char delete_help[] =
	"  -h, --help     show this help\n"
	"      --json     print {\"deleted\": [...], \"bytesFreed\"}\n"
	"  PATH...        store paths to delete; each must be dead (not reachable from a\n"
	"                 root), and dead paths that refer to them are deleted first\n";

static void on_deleted(void *userdata, const char *path, uint64_t bytes)
{
	struct verify_print *vp = userdata;

	(void)bytes;
	if (vp->ctx->json)
		cJSON_AddItemToArray(vp->list, cJSON_CreateString(path));
	else
		printf("%s\n", path);
}

int cmd_store_delete(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_strv char **paths = xcalloc(1, sizeof(char *));
	cleanup_json cJSON *list = cJSON_CreateArray();
	struct verify_print vp = { ctx, list };
	struct store_gc_options opts = { .on_path = on_deleted, .userdata = &vp };
	struct store_gc_result res = { 0 };
	int r;

	r = cli_parse_json_only(ctx, argc, argv, "store delete", delete_help);
	if (r >= 0)
		return r;
	if (optind >= argc)
		return cli_usage_error("store delete", "no paths given");
	r = cli_open_store(ctx, false, &store);
	if (r != EXIT_OK)
		return r;
	for (int i = optind; i < argc; i++) {
		cleanup_free char *p = NULL;
		if (cli_resolve_store_path(store, argv[i], &p, &err) < 0)
			return cli_report_error(ctx, err);
		strv_push(&paths, p);
	}
	opts.paths = paths;
	if (store_collect_garbage(store, &opts, &res, &err) < 0)
		return cli_report_error(ctx, err);
	if (ctx->json) {
		cleanup_json cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "deleted", TAKE_PTR(list));
		cJSON_AddNumberToObject(o, "bytesFreed", (double)res.bytes);
		cli_print_json(o);
	}
	return EXIT_OK;
}

static const char register_help[] =
	"  -h, --help         show this help\n"
	"      --hash-given   each entry carries its NAR hash and size\n"
	"Reads 'nix-store --register-validity' input from standard input: for each path,\n"
	"a line with the path, (with --hash-given: a line with the SHA-256 NAR hash and one\n"
	"with the NAR size,) a line with the deriver or an empty line, a line with the\n"
	"number of references, and one line per reference; an empty line ends the input.\n"
	"The contents must already be in the store directory.  They are made canonical and\n"
	"all paths are registered in one transaction.\n";

#define MAX_REGISTER_INPUT (256u << 20)

/* The next line of buf (NUL-terminated in place), or NULL at the end. */
static char *next_line(char **cursor)
{
	char *s = *cursor, *nl;

	if (s == NULL || *s == '\0')
		return NULL;
	nl = strchr(s, '\n');
	if (nl != NULL) {
		*nl = '\0';
		*cursor = nl + 1;
	} else {
		*cursor = s + strlen(s);
	}
	return s;
}

struct info_list {
	struct store_path_info *v;
	size_t n, alloc;
};

static void info_list_releasep(struct info_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		store_path_info_release(&l->v[i]);
	free(l->v);
}

static int parse_register_input(struct store *store, char *buf, bool hash_given,
				struct info_list *out, struct nib_error **err)
{
	char *cursor = buf, *line;

	while ((line = next_line(&cursor)) != NULL && *line != '\0') {
		struct store_path_info *info;
		uint64_t nrefs;
		char *deriver;

		ALLOC_GROW(out->v, out->n + 1, out->alloc);
		info = &out->v[out->n++];
		memset(info, 0, sizeof(*info));
		if (store_parse_path(store, line, false, &info->path, err) < 0)
			return -1;
		if (hash_given) {
			char *h = next_line(&cursor), *sz = h ? next_line(&cursor) : NULL;
			if (sz == NULL)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "input ends inside the entry of '%s'",
						     info->path);
			if (hash_parse(h, HASH_SHA256, &info->nar_hash, err) < 0 ||
			    (parse_u64(sz, &info->nar_size) < 0 &&
			     nib_error_set(err, NIB_E_INVALID, 0, "invalid NAR size '%s'", sz)))
				return nib_error_prefix(err, "entry of '%s'", info->path);
		}
		deriver = next_line(&cursor);
		line = deriver ? next_line(&cursor) : NULL;
		if (line == NULL)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "input ends inside the entry of '%s'", info->path);
		if (*deriver != '\0' &&
		    store_parse_path(store, deriver, false, &info->deriver, err) < 0)
			return nib_error_prefix(err, "deriver of '%s'", info->path);
		if (parse_u64(line, &nrefs) < 0 || nrefs > 1000000)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "invalid reference count '%s' for '%s'", line,
					     info->path);
		info->references = xcalloc(nrefs + 1, sizeof(char *));
		for (uint64_t i = 0; i < nrefs; i++) {
			line = next_line(&cursor);
			if (line == NULL)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "input ends inside the references of '%s'",
						     info->path);
			if (store_parse_path(store, line, false, &info->references[i], err) < 0)
				return nib_error_prefix(err, "references of '%s'", info->path);
		}
	}
	return 0;
}

int cmd_store_register(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "hash-given", no_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_free char *buf = NULL;
	struct info_list list __attribute__((cleanup(info_list_releasep))) = { 0 };
	bool hash_given = false;
	size_t len;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "store register", register_help);
			return EXIT_OK;
		case 'g':
			hash_given = true;
			break;
		default:
			return cli_usage_error("store register", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage_error("store register", "unexpected argument '%s'", argv[optind]);
	r = cli_open_store(ctx, false, &store);
	if (r != EXIT_OK)
		return r;
	if (!store_is_local(store)) {
		nib_error_set(&err, NIB_E_UNSUPPORTED, 0, "only a local store can register paths");
		return cli_report_error(ctx, err);
	}
	if (read_fd_all(STDIN_FILENO, MAX_REGISTER_INPUT, &buf, &len, &err) < 0 ||
	    parse_register_input(store, buf, hash_given, &list, &err) < 0)
		return cli_report_error(ctx, err);
	for (size_t i = 0; i < list.n; i++) {
		struct store_path_info *info = &list.v[i];
		cleanup_free char *real = local_store_real_path(store, info->path);

		if (store_add_temp_root(store, info->path, &err) < 0 ||
		    local_store_canonicalise(store, real, &err) < 0 ||
		    (!hash_given &&
		     nar_hash_path(real, &info->nar_hash, &info->nar_size, &err) < 0))
			return cli_report_error(ctx, err);
	}
	if (local_store_register_valid_paths(store, list.v, list.n, &err) < 0)
		return cli_report_error(ctx, err);
	return EXIT_OK;
}

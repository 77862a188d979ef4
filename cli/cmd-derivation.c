/*
 * nib derivation show | paths: print derivations (Nix 2.8 JSON or ATerm)
 * and compute their output and .drv paths.  Pure file work: nothing is
 * added to the store (that is `nib derivation add`, with the store).
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "derivation.h"
#include "path.h"
#include "util.h"
#include "banned.h"

struct drv_files {
	const char *store_dir;
	char *real_store_dir;	   /* where the store's files are (store-root + store-dir) */
	char *inputs_dir;	   /* where input .drv files are looked up by base name */
	struct drv_hasher *hasher; /* resolves inputs through this struct (resolve_input) */
};

static void drv_files_release(struct drv_files *f)
{
	drv_hasher_free(f->hasher);
	free(f->inputs_dir);
	free(f->real_store_dir);
}
#define cleanup_drv_files __attribute__((cleanup(drv_files_release)))

/* A FILE argument: "-" is stdin; a path in the store is read from the real store dir. */
static int read_input(const struct drv_files *f, const char *file, char **ret_key, char **ret_text,
		      size_t *ret_len, struct nib_error **err)
{
	struct store_path sp;
	cleanup_error struct nib_error *ignored = NULL;

	*ret_key = NULL;
	if (STREQ(file, "-"))
		return read_fd_all(STDIN_FILENO, DRV_MAX_TEXT, ret_text, ret_len, err) < 0
			       ? nib_error_prefix(err, "reading standard input")
			       : 0;
	if (store_path_parse(f->store_dir, file, false, &sp, &ignored) == 0) {
		char base[STORE_PATH_BASE_MAX];
		cleanup_free char *real = NULL;

		if (!store_path_is_drv(&sp))
			return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is not a derivation",
					     file);
		real = path_join(f->real_store_dir, store_path_base(&sp, base));
		if (read_file_at(AT_FDCWD, real, DRV_MAX_TEXT, ret_text, ret_len, err) < 0)
			return -1;
		*ret_key = xstrdup(file);
		return 0;
	}
	return read_file_at(AT_FDCWD, file, DRV_MAX_TEXT, ret_text, ret_len, err);
}

static struct derivation *resolve_input(void *userdata, const char *drv_path,
					struct nib_error **err)
{
	const struct drv_files *f = userdata;
	cleanup_free char *file = path_join(f->inputs_dir, strrchr(drv_path, '/') + 1);
	cleanup_free char *text = NULL;
	struct derivation *d = NULL;
	size_t len = 0;

	if (read_file_at(AT_FDCWD, file, DRV_MAX_TEXT, &text, &len, err) < 0)
		return NULL;
	if (derivation_parse_any(text, len, f->store_dir, NULL, &d, err) < 0) {
		nib_error_prefix(err, "'%s'", file);
		return NULL;
	}
	return d;
}

/* Does a JSON derivation leave output paths to compute? */
static bool needs_fill(const struct derivation *d)
{
	for (size_t i = 0; i < d->n_outputs; i++)
		if (d->outputs[i].kind == DRV_OUT_DEFERRED ||
		    (d->outputs[i].kind == DRV_OUT_CA_FIXED && d->outputs[i].path == NULL))
			return true;
	return false;
}

/*
 * Read and parse FILE; complete output paths a JSON derivation left out;
 * return the derivation and its .drv path (the store path given, the key of
 * a show-derivation object, or computed).
 */
static int load(const struct drv_files *f, const char *file, bool check_key,
		struct derivation **ret, char **ret_path, struct nib_error **err)
{
	cleanup_free char *key = NULL, *text = NULL, *json_key = NULL;
	cleanup_derivation struct derivation *d = NULL;
	struct store_path computed;
	size_t len = 0, i = 0;
	bool is_json;

	if (read_input(f, file, &key, &text, &len, err) < 0)
		return -1;
	while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
		i++;
	is_json = i < len && text[i] == '{';
	if (derivation_parse_any(text, len, f->store_dir, &json_key, &d, err) < 0)
		return nib_error_prefix(err, "'%s'", file);
	if (key == NULL)
		key = TAKE_PTR(json_key);
	if (d->name == NULL && key != NULL) {
		/* Nix names a derivation after its path ("<name>.drv"). */
		struct store_path sp;
		if (store_path_parse(f->store_dir, key, false, &sp, err) < 0)
			return -1;
		d->name = xstrndup(sp.name, strlen(sp.name) - 4);
	}
	if (is_json && (check_key || needs_fill(d)) &&
	    derivation_fill_outputs(f->hasher, d, err) < 0)
		return nib_error_prefix(err, "'%s'", file);
	if (key == NULL || check_key) {
		if (derivation_store_path(f->store_dir, d, &computed, NULL, NULL, err) < 0)
			return nib_error_prefix(err, "'%s'", file);
		if (key == NULL) {
			key = store_path_to_string(f->store_dir, &computed);
		} else {
			cleanup_free char *c = store_path_to_string(f->store_dir, &computed);
			if (!STREQ(c, key))
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "'%s' does not match its contents, which "
						     "belong at '%s'",
						     key, c);
		}
	}
	*ret = TAKE_PTR(d);
	*ret_path = TAKE_PTR(key);
	return 0;
}

/*
 * The options of both commands: -h, --inputs DIR, --json and, when aterm is
 * not NULL, --aterm.  Returns -1 when the command goes on, with optind at its
 * first FILE (there is one) and f set up; else the exit code to return.
 */
static int start(struct cli_ctx *ctx, int argc, char **argv, const char *name,
		 const char *options_help, bool *aterm, struct drv_files *f)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "aterm", no_argument, NULL, 'a' },
		{ "inputs", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *inputs = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, name, options_help);
			return EXIT_OK;
		case 'a':
			if (aterm == NULL)
				return cli_usage_error(name, "'--aterm' is not supported here");
			*aterm = true;
			break;
		case 'i':
			inputs = optarg;
			break;
		case 'j':
			ctx->json = true;
			break;
		default:
			return cli_usage_error(name, "invalid option");
		}
	}
	if (optind >= argc)
		return cli_usage_error(name, "no derivation given");
	if (aterm != NULL && *aterm && ctx->json)
		return cli_usage_error(name, "'--aterm' and '--json' conflict");
	f->store_dir = ctx->settings->store_dir;
	f->real_store_dir = settings_real_store_dir(ctx->settings);
	f->inputs_dir = xstrdup(inputs ? inputs : f->real_store_dir);
	f->hasher = drv_hasher_new(f->store_dir, resolve_input, f);
	return -1;
}

static const char show_help[] =
	"  -h, --help          show this help\n"
	"      --aterm         print the ATerm (.drv) form instead of JSON, exactly as a\n"
	"                      .drv file holds it (no final newline; one per line)\n"
	"      --inputs DIR    read input derivations (<hash>-<name>.drv) from DIR to\n"
	"                      compute missing output paths (default: the store)\n"
	"  FILE...             a .drv (ATerm) or JSON derivation file, a store path, or -\n"
	"                      for standard input\n"
	"\nJSON output is Nix 2.8's 'nix show-derivation' form: an object keyed by\n"
	".drv path (the store path given, or the one computed from the contents).\n";

int cmd_derivation_show(struct cli_ctx *ctx, int argc, char **argv)
{
	bool aterm = false;
	cleanup_drv_files struct drv_files f = { 0 };
	cleanup_free struct derivation **drvs = NULL;
	cleanup_free char **paths = NULL;
	cleanup_strbuf struct strbuf out = STRBUF_INIT;
	size_t n = 0;
	int r;

	r = start(ctx, argc, argv, "derivation show", show_help, &aterm, &f);
	if (r >= 0)
		return r;
	r = EXIT_OK;
	drvs = xcalloc((size_t)(argc - optind), sizeof(*drvs));
	paths = xcalloc((size_t)(argc - optind), sizeof(*paths));
	for (int i = optind; i < argc; i++, n++) {
		cleanup_error struct nib_error *err = NULL;

		if (load(&f, argv[i], false, &drvs[n], &paths[n], &err) < 0) {
			r = cli_report_error(ctx, err);
			break;
		}
	}
	if (r == EXIT_OK) {
		if (aterm) {
			for (size_t i = 0; i < n; i++) {
				if (i)
					strbuf_addch(&out, '\n');
				derivation_print_aterm(drvs[i], &out);
			}
		} else {
			derivation_print_json((const struct derivation *const *)drvs,
					      (const char *const *)paths, n, &out);
		}
		fwrite(out.buf, 1, out.len, stdout);
	}
	for (size_t i = 0; i < n; i++) {
		derivation_free(drvs[i]);
		free(paths[i]);
	}
	return r;
}

static const char paths_help[] =
	"  -h, --help          show this help\n"
	"      --inputs DIR    read input derivations (<hash>-<name>.drv) from DIR for\n"
	"                      the hash modulo (default: the store)\n"
	"      --json          print {\"<drv path>\": {\"<output>\": path or null}}\n"
	"  FILE...             a .drv (ATerm) or JSON derivation file, a store path, or -\n"
	"\nPrints one line per output, \"<output> <path>\" (\"-\" when the path is not\n"
	"known before the build), then \"drv <path of the .drv>\".  Output paths a\n"
	"file gives are checked against the computed ones; a .drv given by store path\n"
	"must hash to that path.\n";

int cmd_derivation_paths(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_drv_files struct drv_files f = { 0 };
	cleanup_json cJSON *root = NULL;
	int r;

	r = start(ctx, argc, argv, "derivation paths", paths_help, NULL, &f);
	if (r >= 0)
		return r;
	r = EXIT_OK;
	root = cJSON_CreateObject();
	for (int i = optind; i < argc && r == EXIT_OK; i++) {
		cleanup_error struct nib_error *err = NULL;
		cleanup_derivation struct derivation *d = NULL;
		cleanup_free char *drv_path = NULL;
		char **out_paths = NULL;

		if (load(&f, argv[i], true, &d, &drv_path, &err) < 0 ||
		    derivation_check_outputs(f.hasher, d, &err) < 0 ||
		    derivation_output_paths(f.hasher, d, &out_paths, &err) < 0) {
			r = cli_report_error(ctx, err);
			break;
		}
		if (ctx->json) {
			cJSON *o = cJSON_AddObjectToObject(root, drv_path);
			for (size_t k = 0; k < d->n_outputs; k++) {
				if (out_paths[k])
					cJSON_AddStringToObject(o, d->outputs[k].name,
								out_paths[k]);
				else
					cJSON_AddNullToObject(o, d->outputs[k].name);
			}
		} else {
			for (size_t k = 0; k < d->n_outputs; k++)
				printf("%s %s\n", d->outputs[k].name,
				       out_paths[k] ? out_paths[k] : "-");
			printf("drv %s\n", drv_path);
		}
		drv_paths_free(out_paths, d->n_outputs);
	}
	if (r == EXIT_OK && ctx->json)
		cli_print_json(root);
	return r;
}

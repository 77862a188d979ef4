/*
 * cmd-hash.c - nib hash file | path: like `nix hash file` / `nix hash path`.
 *
 * Defaults follow modern Nix: SHA-256, printed in SRI form
 * ("sha256-<base64>").  --base16/--base32/--base64 print the bare digest.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hash.h"
#include "nar.h"
#include "util.h"
#include "banned.h"

#define READ_CHUNK ((size_t)256 * 1024)

static const char options_help[] =
	"  -h, --help         show this help\n"
	"      --type ALGO    md5, sha1, sha256 (default) or sha512\n"
	"      --sri          print ALGO-<base64> (default)\n"
	"      --base16       print the digest in lowercase hex\n"
	"      --base32       print the digest in Nix base-32\n"
	"      --base64       print the digest in base64\n"
	"      --json         print [{\"path\", \"hash\"}] (hash in the chosen encoding)\n";

static int hash_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	hash_ctx_update(userdata, data, len);
	return 0;
}

static int hash_file_contents(const char *path, struct hash_ctx *ctx, struct nib_error **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	cleanup_free unsigned char *buf = NULL;

	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s'", path);
	buf = xmalloc(READ_CHUNK);
	for (;;) {
		ssize_t n = read(fd, buf, READ_CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return nib_error_errno(err, "cannot read '%s'", path);
		}
		if (n == 0)
			return 0;
		hash_ctx_update(ctx, buf, (size_t)n);
	}
}

static int run(struct cli_ctx *ctx, int argc, char **argv, const char *name, bool nar)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "type", required_argument, NULL, 't' },
		{ "sri", no_argument, NULL, HASH_ENC_SRI + 256 },
		{ "base16", no_argument, NULL, HASH_ENC_BASE16 + 256 },
		{ "base32", no_argument, NULL, HASH_ENC_BASE32 + 256 },
		{ "base64", no_argument, NULL, HASH_ENC_BASE64 + 256 },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	enum hash_algo algo = HASH_SHA256;
	enum hash_encoding enc = HASH_ENC_SRI;
	cleanup_json cJSON *arr = NULL;
	bool enc_given = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, name, options_help);
			return EXIT_OK;
		case 't': {
			cleanup_error struct nib_error *err = NULL;
			if (hash_algo_parse(optarg, &algo, &err) < 0)
				return cli_usage_error(name, "%s", err->msg);
			break;
		}
		case 'j':
			ctx->json = true;
			break;
		case HASH_ENC_SRI + 256:
		case HASH_ENC_BASE16 + 256:
		case HASH_ENC_BASE32 + 256:
		case HASH_ENC_BASE64 + 256:
			if (enc_given && enc != (enum hash_encoding)(c - 256))
				return cli_usage_error(name, "choose one of --sri, --base16, "
							     "--base32 and --base64");
			enc = (enum hash_encoding)(c - 256);
			enc_given = true;
			break;
		default:
			return cli_usage_error(name, "invalid option");
		}
	}
	if (optind >= argc)
		return cli_usage_error(name, "expected at least one PATH");
	if (ctx->json)
		arr = cJSON_CreateArray();
	for (int i = optind; i < argc; i++) {
		cleanup_error struct nib_error *err = NULL;
		cleanup_hash_ctx struct hash_ctx *hc = hash_ctx_new(algo);
		cleanup_free char *s = NULL;
		struct hash h;
		int r;

		if (nar)
			r = nar_dump_at(AT_FDCWD, argv[i], hash_sink, hc, &err);
		else
			r = hash_file_contents(argv[i], hc, &err);
		if (r < 0)
			return cli_report_error(ctx, err);
		hash_ctx_final(hc, &h);
		s = hash_to_string(&h, enc, false);
		if (arr != NULL) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "path", argv[i]);
			cJSON_AddStringToObject(o, "hash", s);
			cJSON_AddItemToArray(arr, o);
		} else {
			printf("%s\n", s);
		}
	}
	if (arr != NULL)
		cli_print_json(arr);
	return EXIT_OK;
}

int cmd_hash_file(struct cli_ctx *ctx, int argc, char **argv)
{
	return run(ctx, argc, argv, "hash file", false);
}

int cmd_hash_path(struct cli_ctx *ctx, int argc, char **argv)
{
	return run(ctx, argc, argv, "hash path", true);
}

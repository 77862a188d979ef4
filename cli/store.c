/* store.c - opening the store and turning arguments into store paths. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "local-store.h"
#include "log.h"
#include "protocol.h"
#include "remote-store.h"
#include "store.h"
#include "util.h"
#include "banned.h"

bool cli_use_daemon(struct cli_ctx *ctx)
{
	cleanup_free char *sock = NULL;
	struct stat st;

	if (ctx->store_mode != CLI_STORE_AUTO)
		return ctx->store_mode == CLI_STORE_DAEMON;
	if (geteuid() == 0)
		return false;
	sock = settings_daemon_socket_path(ctx->settings);
	return stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

int cli_open_store(struct cli_ctx *ctx, bool query_only, struct store **ret)
{
	cleanup_error struct nib_error *err = NULL;
	int r;

	if (cli_use_daemon(ctx)) {
		if (remote_store_open(ctx->settings, NULL, ret, &err) < 0)
			return cli_report_error(ctx, err);
		/* What the user chose for this invocation applies in the daemon too. */
		if (remote_store_set_options(*ret, ctx->settings,
					     proto_verbosity_of(log_get_max_level()), &err) < 0) {
			store_close(TAKE_PTR(*ret));
			return cli_report_error(ctx, err);
		}
		return EXIT_OK;
	}
	r = local_store_open(ctx->settings, 0, ret, &err);
	/* Someone who may not write the store can still look at it. */
	if (r < 0 && query_only &&
	    (err->sys_errno == EACCES || err->sys_errno == EROFS || err->sys_errno == EPERM)) {
		nib_error_clear(&err);
		r = local_store_open(ctx->settings, LOCAL_STORE_READONLY, ret, &err);
	}
	if (r < 0)
		return cli_report_error(ctx, err);
	return EXIT_OK;
}

/* If p lies in dir ("dir/..."), return the part from the '/' on, else NULL. */
static const char *under(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (strncmp(p, dir, n) == 0 && p[n] == '/')
		return p + n;
	return NULL;
}

int cli_resolve_store_path(struct store *store, const char *arg, char **ret, struct nib_error **err)
{
	const char *sdir = store_dir(store);
	const char *real = store_is_local(store) ? local_store_real_dir(store) : sdir;
	cleanup_free char *cur = xstrdup(arg);

	for (int hops = 0; hops < 40; hops++) {
		cleanup_free char *next = NULL;
		const char *rest;
		struct stat st;

		if (under(cur, sdir) != NULL)
			return store_parse_path(store, cur, true, ret, err);
		if ((rest = under(cur, real)) != NULL) {
			cleanup_free char *logical = xasprintf("%s%s", sdir, rest);
			return store_parse_path(store, logical, true, ret, err);
		}
		if (lstat(cur, &st) < 0 || !S_ISLNK(st.st_mode))
			break;
		next = read_link_abs(cur);
		if (next == NULL)
			break;
		free(cur);
		cur = TAKE_PTR(next);
	}
	return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is not in the store '%s'", arg, sdir);
}

/* nib build: build derivations and print their output paths. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "cli.h"
#include "remote-store.h"
#include "derivation-store.h"
#include "local-store.h"
#include "path.h"
#include "store.h"
#include "util.h"
#include "banned.h"

static const char options_help[] =
	"  -h, --help             show this help\n"
	"  -j, --max-jobs N       build at most N derivations at once (default: setting "
	"max-jobs)\n"
	"  -k, --keep-going       after a failure, build everything that does not depend on "
	"it\n"
	"  -K, --keep-failed      keep the build directory of failed builds\n"
	"      --check            build derivations whose outputs are valid again and compare\n"
	"                         the results with them (\"may not be deterministic\" when\n"
	"                         they differ); registers nothing\n"
	"      --json             print one result object per derivation: drvPath, outputs,\n"
	"                         status, startTime, stopTime, cpuUser, cpuSystem, peakMemory,\n"
	"                         slot, uidRange, sandboxed, logPath\n"
	"  ARG...                 a .drv store path, a .drv file, or a JSON derivation file\n"
	"                         (added to the store first; see README, \"Building\")\n"
	"\n"
	"Output paths are printed one per line.  Build logs stream to standard error, each\n"
	"line prefixed with the derivation's name; on a terminal a one-line progress display\n"
	"is shown instead.  'nib log DRV' prints a stored log.\n";

/* The self-pipe SIGINT and SIGTERM write to; the scheduler polls its read end. */
static int cancel_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (write(cancel_pipe[1], &c, 1) < 0) {
		/* Full pipe: a cancellation is pending already. */
	}
	errno = saved;
}

struct build_ui {
	struct cli_ctx *ctx;
	bool tty;	  /* one-line progress display on stderr */
	bool line_shown;  /* the progress line is on screen */
	cJSON *results;	  /* --json */
	char **requested; /* .drv paths, in argument order */
	char **out_drvs;  /* results of requested derivations, for printing paths */
	char **out_lines; /* their output paths, '\n'-separated */
	size_t n_errors;  /* failures reported so far */
	unsigned columns;
};

static void clear_line(struct build_ui *ui)
{
	if (ui->tty && ui->line_shown) {
		fputs("\r\033[K", stderr);
		ui->line_shown = false;
	}
}

static void ui_log_line(void *userdata, const char *drv_path, const char *name, const char *line,
			size_t len)
{
	struct build_ui *ui = userdata;

	(void)drv_path;
	if (ui->tty)
		return; /* the progress line replaces the log; failures show its tail */
	fprintf(stderr, "%s> %.*s\n", name, (int)len, line);
}

static void ui_message(void *userdata, const char *drv_path, const char *msg)
{
	struct build_ui *ui = userdata;

	(void)drv_path;
	clear_line(ui);
	fprintf(stderr, "nib: %s\n", msg);
}

static void ui_progress(void *userdata, const struct build_progress *p)
{
	struct build_ui *ui = userdata;
	struct strbuf sb = STRBUF_INIT;

	if (!ui->tty)
		return;
	strbuf_addf(&sb, "[%zu/%zu built", p->done, p->total);
	if (p->failed)
		strbuf_addf(&sb, ", %zu failed", p->failed);
	strbuf_addf(&sb, ", %zu running, %zu waiting]", p->running, p->waiting);
	for (size_t i = 0; p->running_names[i] != NULL; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : " building ", p->running_names[i]);
	if (ui->columns > 4 && sb.len >= ui->columns)
		strbuf_setlen(&sb, ui->columns - 1);
	fprintf(stderr, "\r\033[K%s", sb.buf);
	fflush(stderr);
	ui->line_shown = true;
	strbuf_release(&sb);
}

static bool is_failure(enum build_status s)
{
	return s != BUILD_VALID && s != BUILD_BUILT;
}

static cJSON *result_json(const struct build_result *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *outs;

	cJSON_AddStringToObject(o, "drvPath", r->drv_path);
	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddStringToObject(o, "status", build_status_name(r->status));
	if (r->error != NULL)
		cJSON_AddStringToObject(o, "error", r->error);
	outs = cJSON_AddObjectToObject(o, "outputs");
	for (size_t i = 0; i < r->n_outputs; i++)
		cJSON_AddStringToObject(outs, r->output_names[i], r->output_paths[i]);
	if (r->start_usec > 0) {
		cJSON_AddNumberToObject(o, "startTime", (double)r->start_usec / 1e6);
		cJSON_AddNumberToObject(o, "stopTime", (double)r->stop_usec / 1e6);
	}
	if (r->cpu_user_usec >= 0) {
		cJSON_AddNumberToObject(o, "cpuUser", (double)r->cpu_user_usec / 1e6);
		cJSON_AddNumberToObject(o, "cpuSystem", (double)r->cpu_system_usec / 1e6);
	}
	if (r->peak_memory >= 0)
		cJSON_AddNumberToObject(o, "peakMemory", (double)r->peak_memory);
	if (r->wait_status >= 0)
		cJSON_AddNumberToObject(o, "waitStatus", r->wait_status);
	if (r->slot >= 0) {
		cJSON *u = cJSON_AddObjectToObject(o, "uidRange");
		cJSON_AddNumberToObject(o, "slot", (double)r->slot);
		cJSON_AddNumberToObject(u, "first", (double)r->uid_start);
		cJSON_AddNumberToObject(u, "count", (double)r->uid_count);
	}
	if (r->sandboxed >= 0)
		cJSON_AddBoolToObject(o, "sandboxed", r->sandboxed != 0);
	if (r->log_path != NULL)
		cJSON_AddStringToObject(o, "logPath", r->log_path);
	if (r->kept_build_dir != NULL)
		cJSON_AddStringToObject(o, "keptBuildDir", r->kept_build_dir);
	return o;
}

static void ui_result(void *userdata, const struct build_result *r)
{
	struct build_ui *ui = userdata;

	if (ui->results != NULL)
		cJSON_AddItemToArray(ui->results, result_json(r));
	if (strv_contains(ui->requested, r->drv_path) && !is_failure(r->status)) {
		struct strbuf sb = STRBUF_INIT;
		for (size_t i = 0; i < r->n_outputs; i++)
			strbuf_addf(&sb, "%s\n", r->output_paths[i]);
		strv_push(&ui->out_drvs, r->drv_path);
		strv_push(&ui->out_lines, sb.buf);
		strbuf_release(&sb);
	}
	if (!is_failure(r->status) || r->status == BUILD_CANCELLED)
		return;
	clear_line(ui);
	if (r->status != BUILD_DEP_FAILED)
		ui->n_errors++;
	fprintf(stderr, "nib: error: %s", r->error ? r->error : "build failed");
	if (r->n_log_tail > 0) {
		fprintf(stderr, ";\n       last %zu log lines:\n", r->n_log_tail);
		for (size_t i = 0; i < r->n_log_tail; i++)
			fprintf(stderr, "       > %s\n", r->log_tail[i]);
		if (r->log_path != NULL)
			fprintf(stderr, "       For full logs, run 'nib log %s'.", r->drv_path);
	}
	fputc('\n', stderr);
}

/* A command-line argument as a valid .drv path, adding derivation files to the store. */
static int resolve_arg(struct store *store, const char *arg, char **ret, struct nib_error **err)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *path = NULL;
	struct store_path sp;
	struct stat st;

	if (cli_resolve_store_path(store, arg, &path, &e) == 0) {
		int valid;
		if (store_path_parse(store_dir(store), path, false, &sp, err) < 0)
			return -1;
		if (!store_path_is_drv(&sp))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "'%s' is not a derivation (a .drv path or file)", arg);
		valid = store_is_valid(store, path, err);
		if (valid < 0)
			return -1;
		if (valid == 0)
			return nib_error_set(err, NIB_E_NOT_FOUND, 0,
					     "derivation '%s' is not valid in the store", path);
		*ret = TAKE_PTR(path);
		return 0;
	}
	if (stat(arg, &st) < 0)
		return nib_error_errno(err, "cannot open '%s'", arg);
	return store_add_derivation_file(store, arg, ret, err);
}

static int parse_jobs(const char *s, int64_t *ret)
{
	uint64_t v;

	if (STREQ(s, "auto")) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		*ret = n > 0 ? n : 1;
		return 0;
	}
	if (parse_u64(s, &v) < 0 || v < 1 || v > 65536)
		return -1;
	*ret = (int64_t)v;
	return 0;
}

/* A setting chosen by an option of this command (valid by construction). */
static void set_cmdline(struct cli_ctx *ctx, const char *name, const char *value)
{
	cleanup_error struct nib_error *e = NULL;

	if (settings_set(ctx->settings, name, value, ORIGIN_CMDLINE, NULL, &e) < 0)
		abort();
}

int cmd_build(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "max-jobs", required_argument, NULL, 'j' },
		{ "keep-going", no_argument, NULL, 'k' },
		{ "keep-failed", no_argument, NULL, 'K' },
		{ "json", no_argument, NULL, 'J' },
		{ "check", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_store struct store *store = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_strv char **drvs = xcalloc(1, sizeof(char *));
	cleanup_json cJSON *results = NULL;
	struct build_options opts;
	struct build_ui ui = { .ctx = ctx };
	struct build_callbacks cb = { ui_log_line, ui_message, ui_progress, ui_result, &ui };
	struct sigaction sa, old_int, old_term;
	struct winsize ws;
	int c, r;

	build_options_init(&opts);
	while ((c = getopt_long(argc, argv, "hj:kK", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_command_help(stdout, "build", options_help);
			return EXIT_OK;
		case 'j': {
			char num[32];
			if (parse_jobs(optarg, &opts.max_jobs) < 0)
				return cli_usage_error("build", "invalid number of jobs '%s'",
						       optarg);
			/* As a setting too, so that the daemon hears of it. */
			snprintf(num, sizeof(num), "%lld", (long long)opts.max_jobs);
			set_cmdline(ctx, "max-jobs", num);
			break;
		}
		case 'k':
			opts.keep_going = true;
			break;
		case 'K':
			set_cmdline(ctx, "keep-failed", "true");
			break;
		case 'J':
			ctx->json = true;
			break;
		case 'C':
			opts.check = true;
			break;
		default:
			return cli_usage_error("build", "invalid option");
		}
	}
	if (optind >= argc)
		return cli_usage_error("build", "nothing to build");

	/* The filter and the cgroup hierarchy are made while the store opens. */
	if (!cli_use_daemon(ctx))
		build_prepare(ctx->settings);
	r = cli_open_store(ctx, false, &store);
	if (r != EXIT_OK)
		return r;
	/* Derivation files are added together: one sync of the store and one commit. */
	if (store_is_local(store) && local_store_batch_begin(store, &err) < 0)
		return cli_report_error(ctx, err);
	for (int i = optind; i < argc && err == NULL; i++) {
		cleanup_free char *drv = NULL;
		if (resolve_arg(store, argv[i], &drv, &err) == 0 && !strv_contains(drvs, drv))
			strv_push(&drvs, drv);
	}
	if (store_is_local(store)) {
		/*
		 * Also after a failure: what was added before it stays, as it did
		 * one by one.  Synced in the background while the build starts;
		 * the build commits them before it waits for its first builder.
		 */
		cleanup_error struct nib_error *e = NULL;
		if ((err == NULL ? local_store_batch_end_async(store, &e)
				 : local_store_batch_end(store, true, &e)) < 0 &&
		    err == NULL)
			err = TAKE_PTR(e);
	}
	if (err != NULL) {
		struct cli_ctx plain = *ctx;
		plain.json = false;
		return cli_report_error(&plain, err);
	}

	ui.tty = isatty(STDERR_FILENO) && getenv("NIB_NO_PROGRESS") == NULL;
	ui.columns = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 80;
	ui.requested = drvs;
	ui.out_drvs = xcalloc(1, sizeof(char *));
	ui.out_lines = xcalloc(1, sizeof(char *));
	if (ctx->json)
		ui.results = results = cJSON_CreateArray();

	if (store_is_remote(store)) {
		/* The daemon builds; leaving (SIGINT) cancels there. */
		r = remote_store_build(store, drvs, strv_length(drvs), &opts, &cb, &err);
		goto done;
	}
	if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		nib_error_errno(&err, "cannot create a pipe");
		return cli_report_error(ctx, err);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	opts.cancel_fd = cancel_pipe[0];

	r = build_derivations(store, ctx->settings, drvs, strv_length(drvs), &opts, &cb, &err);

	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	close(cancel_pipe[0]);
	close(cancel_pipe[1]);
	cancel_pipe[0] = cancel_pipe[1] = -1;
done:
	clear_line(&ui);

	if (ctx->json) {
		cli_print_json(results);
	} else {
		/* Output paths in the order the derivations were asked for. */
		for (size_t i = 0; drvs[i] != NULL; i++)
			for (size_t k = 0; ui.out_drvs[k] != NULL; k++)
				if (STREQ(ui.out_drvs[k], drvs[i]))
					fputs(ui.out_lines[k], stdout);
	}
	strv_free(ui.out_drvs);
	strv_free(ui.out_lines);
	if (r < 0) {
		/* A single failure was reported with its log already. */
		if (ui.n_errors != 1 || err->code != NIB_E_BUILD_FAILED)
			fprintf(stderr, "nib: error: %s\n", err->msg);
		return EXIT_FAILURE_NIB;
	}
	return EXIT_OK;
}

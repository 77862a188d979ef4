/*
 * nib daemon status [--json]: what the running nib-daemon is doing.
 *
 * Reads <state-dir>/daemon/status.json, which the daemon rewrites whenever
 * a connection starts or ends (pid, start time, connections with their
 * peers), and the UID pool (running builds are the busy slots, with their
 * derivation; held slots with the reason), the job tokens
 * (<state-dir>/jobs/token-<i>, one per running build) and the lists of
 * waiting builds (<state-dir>/jobs/queued/<pid>, see build-queue.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "build-queue.h"
#include "cli.h"
#include "lock.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

static const char status_help[] =
	"  -h, --help     show this help\n"
	"      --json     print {daemon, connections, running, queued, held, jobTokensHeld}\n"
	"\nRunning builds and held slots come from the UID pool; reading it needs root.\n";

static void fmt_age(char *buf, size_t n, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 3600)
		snprintf(buf, n, "%lldh %02lldm", (long long)(secs / 3600),
			 (long long)(secs % 3600 / 60));
	else if (secs >= 60)
		snprintf(buf, n, "%lldm %02llds", (long long)(secs / 60), (long long)(secs % 60));
	else
		snprintf(buf, n, "%llds", (long long)secs);
}

static const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd pw, *pwp = NULL;
	char tmp[4096];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &pwp) == 0 && pwp != NULL)
		snprintf(buf, n, "%s", pw.pw_name);
	else
		snprintf(buf, n, "%u", (unsigned)uid);
	return buf;
}

/* The id of the connection served by process pid, or -1 (a local `nib build`). */
static int64_t conn_of_pid(const cJSON *conns, pid_t pid)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, conns)
	{
		const cJSON *id = cJSON_GetObjectItem(c, "id"), *cp = cJSON_GetObjectItem(c, "pid");
		if (cJSON_IsNumber(id) && cJSON_IsNumber(cp) && (pid_t)cp->valuedouble == pid)
			return (int64_t)id->valuedouble;
	}
	return -1;
}

/* Job tokens held by someone: -1 when they cannot be checked (not root). */
static int64_t tokens_held(const struct settings *s)
{
	int64_t held = 0;
	int64_t n = s->max_jobs > 0 ? s->max_jobs : 1;

	for (int64_t i = 0; i < n; i++) {
		cleanup_free char *path =
			xasprintf("%s/jobs/token-%lld", s->state_dir, (long long)i);
		cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC);
		cleanup_error struct nib_error *e = NULL;
		int r;

		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		r = lock_fd(fd, LOCK_EXCLUSIVE, false, &e);
		if (r < 0)
			return -1;
		if (r == 0)
			held++;
	}
	return held;
}

int cmd_daemon_status(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_error struct nib_error *err = NULL;
	cleanup_free char *path = path_join(ctx->settings->state_dir, "daemon/status.json");
	cleanup_free char *text = NULL;
	cleanup_json cJSON *st = NULL;
	cleanup_json cJSON *out = NULL;
	struct uid_pool *pool = NULL;
	struct uid_pool_entry *ents = NULL;
	size_t n_ents = 0;
	struct build_queue_entry *queued = NULL;
	size_t n_queued = 0;
	const cJSON *pid, *started, *conns, *c;
	int64_t now = (int64_t)(now_realtime_usec() / 1000000), tokens;
	char age[32], name[256];
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			cli_command_help(stdout, "daemon status", status_help);
			return EXIT_OK;
		case 'j':
			ctx->json = true;
			break;
		default:
			return cli_usage_error("daemon status", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage_error("daemon status", "unexpected argument '%s'", argv[optind]);

	if (read_file_at(AT_FDCWD, path, 1 << 20, &text, NULL, &err) < 0) {
		nib_error_clear(&err);
		nib_error_set(&err, NIB_E_NOT_FOUND, 0, "nib-daemon is not running (no '%s')",
			      path);
		return cli_report_error(ctx, err);
	}
	st = cJSON_Parse(text);
	pid = cJSON_GetObjectItemCaseSensitive(st, "pid");
	started = cJSON_GetObjectItemCaseSensitive(st, "started");
	conns = cJSON_GetObjectItemCaseSensitive(st, "connections");
	if (!cJSON_IsNumber(pid) || !cJSON_IsNumber(started) || !cJSON_IsArray(conns)) {
		nib_error_set(&err, NIB_E_INVALID, 0, "cannot parse '%s'", path);
		return cli_report_error(ctx, err);
	}
	if (kill((pid_t)pid->valuedouble, 0) < 0 && errno == ESRCH) {
		nib_error_set(&err, NIB_E_NOT_FOUND, 0,
			      "nib-daemon is not running (pid %d in '%s' is gone)",
			      (int)pid->valuedouble, path);
		return cli_report_error(ctx, err);
	}
	pool = uid_pool_open(ctx->settings, NULL, &err);
	if (pool == NULL || uid_pool_list(pool, &ents, &n_ents, &err) < 0) {
		nib_error_clear(&err);
		ents = NULL;
		n_ents = 0;
	}
	tokens = tokens_held(ctx->settings);
	if (build_queue_list(ctx->settings, &queued, &n_queued, &err) < 0) {
		/* Not fatal: say so and show the rest. */
		fprintf(stderr, "nib: warning: %s\n", err->msg);
		nib_error_clear(&err);
	}

	if (ctx->json) {
		cJSON *running = cJSON_CreateArray(), *held = cJSON_CreateArray();

		out = cJSON_CreateObject();
		cJSON_AddItemToObject(out, "daemon", cJSON_Duplicate(st, false));
		cJSON_AddNumberToObject(cJSON_GetObjectItem(out, "daemon"), "uptime",
					(double)(now - (int64_t)started->valuedouble));
		cJSON_AddItemToObject(out, "connections", cJSON_Duplicate(conns, true));
		for (size_t i = 0; i < n_ents; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "slot", ents[i].index);
			cJSON_AddNumberToObject(o, "firstUid", (double)ents[i].first_uid);
			if (ents[i].derivation != NULL)
				cJSON_AddStringToObject(o, "derivation", ents[i].derivation);
			cJSON_AddNumberToObject(o, "pid", ents[i].pid);
			cJSON_AddNumberToObject(o, "since", (double)ents[i].since);
			if (ents[i].state == UID_POOL_BUSY) {
				cJSON_AddItemToArray(running, o);
			} else if (ents[i].state == UID_POOL_HELD) {
				cJSON_AddStringToObject(o, "reason",
							ents[i].reason ? ents[i].reason : "");
				cJSON_AddItemToArray(held, o);
			} else {
				cJSON_Delete(o);
			}
		}
		cJSON_AddItemToObject(out, "running", running);
		{
			cJSON *q = cJSON_AddArrayToObject(out, "queued");
			for (size_t i = 0; i < n_queued; i++) {
				cJSON *o = cJSON_CreateObject();
				int64_t conn = conn_of_pid(conns, queued[i].pid);
				cJSON_AddStringToObject(o, "derivation", queued[i].drv_path);
				cJSON_AddStringToObject(o, "reason",
							build_wait_name(queued[i].wait));
				cJSON_AddNumberToObject(o, "pid", queued[i].pid);
				if (conn >= 0)
					cJSON_AddNumberToObject(o, "connection", (double)conn);
				else
					cJSON_AddNullToObject(o, "connection");
				cJSON_AddNumberToObject(o, "since", (double)queued[i].since);
				cJSON_AddItemToArray(q, o);
			}
		}
		cJSON_AddItemToObject(out, "held", held);
		if (tokens >= 0)
			cJSON_AddNumberToObject(out, "jobTokensHeld", (double)tokens);
		else
			cJSON_AddNullToObject(out, "jobTokensHeld");
		cli_print_json(out);
	} else {
		size_t n_run = 0, n_held = 0;

		fmt_age(age, sizeof(age), now - (int64_t)started->valuedouble);
		printf("nib-daemon pid %d, up %s\n", (int)pid->valuedouble, age);
		printf("connections: %d open\n", cJSON_GetArraySize(conns));
		cJSON_ArrayForEach(c, conns)
		{
			const cJSON *id = cJSON_GetObjectItem(c, "id"),
				    *cp = cJSON_GetObjectItem(c, "pid"),
				    *uid = cJSON_GetObjectItem(c, "uid"),
				    *since = cJSON_GetObjectItem(c, "since");
			if (!cJSON_IsNumber(id) || !cJSON_IsNumber(cp) || !cJSON_IsNumber(uid) ||
			    !cJSON_IsNumber(since))
				continue;
			fmt_age(age, sizeof(age), now - (int64_t)since->valuedouble);
			printf("  conn %d  user %s  pid %d  for %s\n", (int)id->valuedouble,
			       user_name((uid_t)uid->valuedouble, name, sizeof(name)),
			       (int)cp->valuedouble, age);
		}
		for (size_t i = 0; i < n_ents; i++)
			n_run += ents[i].state == UID_POOL_BUSY,
				n_held += ents[i].state == UID_POOL_HELD;
		if (pool == NULL)
			printf("builds: unknown (reading the UID pool needs root)\n");
		else
			printf("builds running: %zu (max-jobs %lld)\n", n_run,
			       (long long)ctx->settings->max_jobs);
		for (size_t i = 0; i < n_ents; i++) {
			if (ents[i].state != UID_POOL_BUSY)
				continue;
			fmt_age(age, sizeof(age), now - ents[i].since);
			printf("  slot %u  %s  pid %d  for %s\n", ents[i].index,
			       ents[i].derivation ? ents[i].derivation : "?", (int)ents[i].pid,
			       age);
		}
		printf("builds queued: %zu\n", n_queued);
		for (size_t i = 0; i < n_queued; i++) {
			int64_t conn = conn_of_pid(conns, queued[i].pid);
			char who[64];

			if (conn >= 0)
				snprintf(who, sizeof(who), "conn %lld", (long long)conn);
			else
				snprintf(who, sizeof(who), "pid %d", (int)queued[i].pid);
			fmt_age(age, sizeof(age), now - queued[i].since);
			printf("  %s  %s  %s  for %s\n", queued[i].drv_path,
			       build_wait_describe(queued[i].wait), who, age);
		}
		if (pool != NULL)
			printf("held slots: %zu\n", n_held);
		for (size_t i = 0; i < n_ents; i++)
			if (ents[i].state == UID_POOL_HELD)
				printf("  slot %u  %s\n", ents[i].index,
				       ents[i].reason ? ents[i].reason : "");
	}
	uid_pool_entries_free(ents, n_ents);
	build_queue_entries_free(queued, n_queued);
	uid_pool_close(pool);
	return EXIT_OK;
}

/*
 * nib slots [--json]          the UID slots in use, held or stale, and a summary
 * nib slots release N         re-run the cleanup of held slot N and free it
 * nib slots reclaim           clean every slot a dead holder left behind
 */
#include "config.h"

#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "strbuf.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

static const char list_help[] =
	"  -h, --help     show this help\n"
	"      --json     print {mode, total, busy, held, stale, free, slots: [...],\n"
	"                 conflicts: [...]}\n"
	"\nStates: busy (a live build holds it), held (its cleanup failed; see the reason;\n"
	"free it with 'nib slots release N'), stale (its holder died; it is cleaned\n"
	"before reuse, or now by 'nib slots reclaim').  Free slots are only counted.\n"
	"Conflicts: other nib stores in use whose UID range overlaps this one (see\n"
	"/run/nib/uid-ranges); while one runs, builds of this store are refused.\n";

static const char release_help[] =
	"  -h, --help     show this help\n"
	"  N              the slot number shown by 'nib slots' (or its name, slot-N)\n"
	"\nKills what is left in the slot's UID range and removes its build directory;\n"
	"the slot is freed only if that succeeds.  Needs root or a trusted user.\n";

static const char reclaim_help[] =
	"  -h, --help     show this help\n"
	"      --json     print {cleaned, held, busy, slots: [...]}\n"
	"\nCleans every slot that no live process holds but that still has processes in\n"
	"its range or a record left by a holder that died (what a killed daemon leaves\n"
	"behind).  Held slots are listed and left alone.  Needs root or a trusted user.\n";

/* Root, or a user listed in trusted-users (by name, "@group" or "*"). */
static bool caller_trusted(const struct settings *s)
{
	uid_t uid = geteuid();
	struct passwd *pw;

	if (uid == 0)
		return true;
	pw = getpwuid(uid);
	for (char **t = s->trusted_users; t && *t; t++) {
		if (STREQ(*t, "*") || (pw && STREQ(*t, pw->pw_name)))
			return true;
		if ((*t)[0] == '@' && pw != NULL) {
			struct group *gr = getgrnam(*t + 1);
			int n = 64;
			gid_t gids[64];
			if (gr == NULL)
				continue;
			if (getgrouplist(pw->pw_name, pw->pw_gid, gids, &n) < 0)
				n = 64;
			for (int i = 0; i < n; i++)
				if (gids[i] == gr->gr_gid)
					return true;
		}
	}
	return false;
}

static struct uid_pool *open_pool(struct cli_ctx *ctx, int *ret_code)
{
	cleanup_error struct nib_error *err = NULL;
	struct uid_pool *p = uid_pool_open(ctx->settings, NULL, &err);

	if (p == NULL)
		*ret_code = cli_report_error(ctx, err);
	return p;
}

static void format_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "-");
}

static char *format_ids(const struct uid_pool_entry *e)
{
	if (e->user != NULL)
		return xasprintf("%llu (%s)", (unsigned long long)e->first_uid, e->user);
	return xasprintf("%llu-%llu", (unsigned long long)e->first_uid,
			 (unsigned long long)(e->first_uid + e->nr_ids - 1));
}

static cJSON *entry_json(const struct uid_pool_entry *e)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "slot", e->index);
	cJSON_AddStringToObject(o, "name", e->name);
	cJSON_AddNumberToObject(o, "first_uid", (double)e->first_uid);
	cJSON_AddNumberToObject(o, "last_uid", (double)(e->first_uid + e->nr_ids - 1));
	cJSON_AddNumberToObject(o, "first_gid", (double)e->first_gid);
	cJSON_AddNumberToObject(o, "count", e->nr_ids);
	if (e->user)
		cJSON_AddStringToObject(o, "user", e->user);
	cJSON_AddStringToObject(o, "state", uid_pool_state_name(e->state));
	cJSON_AddBoolToObject(o, "locked", e->locked);
	if (e->pid > 0)
		cJSON_AddNumberToObject(o, "pid", e->pid);
	if (e->derivation)
		cJSON_AddStringToObject(o, "derivation", e->derivation);
	if (e->since > 0)
		cJSON_AddNumberToObject(o, "since", (double)e->since);
	if (e->build_dir)
		cJSON_AddStringToObject(o, "build_dir", e->build_dir);
	if (e->cgroup)
		cJSON_AddStringToObject(o, "cgroup", e->cgroup);
	if (e->reason)
		cJSON_AddStringToObject(o, "reason", e->reason);
	if (e->held_since > 0)
		cJSON_AddNumberToObject(o, "held_since", (double)e->held_since);
	return o;
}

static int slots_list(struct cli_ctx *ctx, struct uid_pool *p)
{
	cleanup_error struct nib_error *err = NULL;
	struct uid_pool_entry *v = NULL;
	struct uid_pool_conflict *cv = NULL;
	size_t n = 0, shown = 0, ncv = 0;
	unsigned busy = 0, held = 0, stale = 0;
	int w_slot = 4, w_ids = 4, w_state = 5, w_pid = 3;

	if (uid_pool_list(p, &v, &n, &err) < 0)
		return cli_report_error(ctx, err);
	/* Not fatal: the slots are worth showing anyway. */
	if (uid_pool_conflicts(p, &cv, &ncv, &err) < 0) {
		fprintf(stderr, "nib: warning: %s\n", err->msg);
		nib_error_clear(&err);
	}
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *ids = format_ids(&v[i]);
		char num[32];
		int len;

		busy += v[i].state == UID_POOL_BUSY;
		held += v[i].state == UID_POOL_HELD;
		stale += v[i].state == UID_POOL_STALE;
		if (v[i].state == UID_POOL_FREE)
			continue;
		shown++;
		len = (int)strlen(ids);
		w_ids = len > w_ids ? len : w_ids;
		len = snprintf(num, sizeof(num), "%u", v[i].index);
		w_slot = len > w_slot ? len : w_slot;
		len = snprintf(num, sizeof(num), "%ld", (long)v[i].pid);
		w_pid = len > w_pid ? len : w_pid;
	}

	if (ctx->json) {
		cleanup_json cJSON *root = cJSON_CreateObject();
		cJSON *arr;
		cJSON_AddStringToObject(root, "mode", uid_pool_is_auto(p) ? "auto" : "classic");
		cJSON_AddNumberToObject(root, "total", (double)n);
		cJSON_AddNumberToObject(root, "busy", busy);
		cJSON_AddNumberToObject(root, "held", held);
		cJSON_AddNumberToObject(root, "stale", stale);
		cJSON_AddNumberToObject(root, "free", (double)(n - busy - held));
		arr = cJSON_AddArrayToObject(root, "slots");
		for (size_t i = 0; i < n; i++)
			if (v[i].state != UID_POOL_FREE)
				cJSON_AddItemToArray(arr, entry_json(&v[i]));
		arr = cJSON_AddArrayToObject(root, "conflicts");
		for (size_t i = 0; i < ncv; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "stateDir", cv[i].state_dir);
			cJSON_AddNumberToObject(o, "firstId", (double)cv[i].first);
			cJSON_AddNumberToObject(o, "lastId", (double)cv[i].last);
			cJSON_AddStringToObject(o, "registration", cv[i].registration);
			cJSON_AddItemToArray(arr, o);
		}
		cli_print_json(root);
		uid_pool_entries_free(v, n);
		uid_pool_conflicts_free(cv, ncv);
		return EXIT_OK;
	}

	if (shown == 0) {
		printf("No slot is in use or held.\n");
	} else {
		printf("%-*s  %-*s  %-*s  %*s  %-19s  %s\n", w_slot, "SLOT", w_ids,
		       uid_pool_is_auto(p) ? "UIDS/GIDS" : "UID", w_state, "STATE", w_pid, "PID",
		       "SINCE", "DERIVATION");
		for (size_t i = 0; i < n; i++) {
			const struct uid_pool_entry *e = &v[i];
			cleanup_free char *ids = NULL;
			char since[64], pid[24];
			if (e->state == UID_POOL_FREE)
				continue;
			ids = format_ids(e);
			format_time(e->since, since, sizeof(since));
			if (e->pid > 0)
				snprintf(pid, sizeof(pid), "%ld", (long)e->pid);
			else
				snprintf(pid, sizeof(pid), "-");
			printf("%*u  %-*s  %-*s  %*s  %-19s  %s\n", w_slot, e->index, w_ids, ids,
			       w_state, uid_pool_state_name(e->state), w_pid, pid, since,
			       e->derivation ? e->derivation : "-");
			if (e->state == UID_POOL_HELD) {
				char hs[64];
				format_time(e->held_since, hs, sizeof(hs));
				printf("%*s  held since %s: %s\n", w_slot, "", hs, e->reason);
				if (e->locked)
					printf("%*s  (its lock is taken right now)\n", w_slot, "");
			} else if (e->state == UID_POOL_STALE) {
				printf("%*s  its holder died; cleaned before reuse or by 'nib "
				       "slots "
				       "reclaim'\n",
				       w_slot, "");
			}
			if (e->build_dir && e->state != UID_POOL_BUSY)
				printf("%*s  build directory: %s\n", w_slot, "", e->build_dir);
		}
	}
	printf("\n%zu slots", n);
	if (uid_pool_is_auto(p) && n > 0)
		printf(" of %lu IDs", (unsigned long)v[0].nr_ids);
	printf(": %u busy, %u held, %zu free", busy, held, n - busy - held);
	if (stale > 0)
		printf(" (%u of them stale)", stale);
	printf("\n");
	for (size_t i = 0; i < ncv; i++)
		printf("Conflict: another nib store in use (state directory '%s') has registered "
		       "UIDs %llu-%llu, which overlap this pool's: builds here are refused until "
		       "it stops; give each store its own 'start-id' and 'id-count'.\n",
		       cv[i].state_dir, (unsigned long long)cv[i].first,
		       (unsigned long long)cv[i].last);
	uid_pool_entries_free(v, n);
	uid_pool_conflicts_free(cv, ncv);
	return EXIT_OK;
}

int cmd_slots(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_uid_pool struct uid_pool *p = NULL;
	int r = cli_parse_json_only(ctx, argc, argv, "slots", list_help);

	if (r >= 0)
		return r;
	if (optind < argc)
		return cli_usage_error("slots", "unknown subcommand '%s'", argv[optind]);
	p = open_pool(ctx, &r);
	if (p == NULL)
		return r;
	return slots_list(ctx, p);
}

static int parse_slot(const char *s, unsigned *ret)
{
	uint64_t v;

	if (STARTS_WITH(s, "slot-"))
		s += 5;
	if (parse_u64(s, &v) < 0 || v >= UID_POOL_MAX_SLOTS)
		return -1;
	*ret = (unsigned)v;
	return 0;
}

int cmd_slots_release(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_uid_pool struct uid_pool *p = NULL;
	cleanup_error struct nib_error *err = NULL;
	unsigned idx;
	int r = cli_parse_json_only(ctx, argc, argv, "slots release", release_help);

	if (r >= 0)
		return r;
	if (optind + 1 != argc)
		return cli_usage_error("slots release", "expected exactly one slot number");
	if (parse_slot(argv[optind], &idx) < 0)
		return cli_usage_error("slots release", "invalid slot number '%s'", argv[optind]);
	if (!caller_trusted(ctx->settings)) {
		nib_error_set(&err, NIB_E_DENIED, 0,
			      "only root or a trusted user (setting 'trusted-users') may release "
			      "a slot");
		return cli_report_error(ctx, err);
	}
	p = open_pool(ctx, &r);
	if (p == NULL)
		return r;
	if (uid_pool_release_held(p, idx, NULL, &err) < 0)
		return cli_report_error(ctx, err);
	if (ctx->json) {
		cleanup_json cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "released", idx);
		cli_print_json(o);
	} else {
		printf("slot %u released\n", idx);
	}
	return EXIT_OK;
}

struct reclaim_out {
	struct cli_ctx *ctx;
	cJSON *arr;
	unsigned newly_held;
};

static void on_slot(void *ud, const struct uid_pool_slot *slot,
		    enum uid_pool_reclaim_outcome outcome, const char *detail)
{
	struct reclaim_out *o = ud;
	static const char *const names[] = {
		[UID_POOL_RECLAIM_CLEANED] = "cleaned",
		[UID_POOL_RECLAIM_HELD] = "held",
		[UID_POOL_RECLAIM_STILL_HELD] = "still held",
	};

	if (outcome == UID_POOL_RECLAIM_HELD)
		o->newly_held++;
	if (o->arr != NULL) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "slot", slot->index);
		cJSON_AddStringToObject(e, "outcome", names[outcome]);
		cJSON_AddStringToObject(e, "detail", detail);
		cJSON_AddItemToArray(o->arr, e);
		return;
	}
	printf("slot %u: %s: %s\n", slot->index, names[outcome], detail);
}

int cmd_slots_reclaim(struct cli_ctx *ctx, int argc, char **argv)
{
	cleanup_uid_pool struct uid_pool *p = NULL;
	cleanup_error struct nib_error *err = NULL;
	cleanup_json cJSON *root = NULL;
	struct uid_pool_reclaim_result res;
	struct reclaim_out out = { .ctx = ctx };
	int r = cli_parse_json_only(ctx, argc, argv, "slots reclaim", reclaim_help);

	if (r >= 0)
		return r;
	if (optind < argc)
		return cli_usage_error("slots reclaim", "unexpected argument '%s'", argv[optind]);
	if (!caller_trusted(ctx->settings)) {
		nib_error_set(&err, NIB_E_DENIED, 0,
			      "only root or a trusted user (setting 'trusted-users') may reclaim "
			      "slots");
		return cli_report_error(ctx, err);
	}
	p = open_pool(ctx, &r);
	if (p == NULL)
		return r;
	if (ctx->json) {
		root = cJSON_CreateObject();
		out.arr = cJSON_AddArrayToObject(root, "slots");
	}
	if (uid_pool_reclaim(p, NULL, on_slot, &out, &res, &err) < 0)
		return cli_report_error(ctx, err);
	if (root != NULL) {
		cJSON_AddNumberToObject(root, "cleaned", res.n_cleaned);
		cJSON_AddNumberToObject(root, "held", res.n_held);
		cJSON_AddNumberToObject(root, "busy", res.n_busy);
		cli_print_json(root);
	} else {
		printf("reclaim: %u cleaned, %u held, %u busy (left alone)\n", res.n_cleaned,
		       res.n_held, res.n_busy);
	}
	/* A cleanup that failed just now is a failure of this command. */
	return out.newly_held > 0 ? EXIT_FAILURE_NIB : EXIT_OK;
}

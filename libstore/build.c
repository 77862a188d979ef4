/*
 * build.c - the scheduler (goals, their states, the table of running
 * builds) and the life of one build.  See build.h for the contract.
 *
 * The scheduler is one poll() loop: each running build contributes its log
 * pipe and its pidfd, the caller its cancel descriptor, and the nearest
 * deadline (timeout, max-silent-time, a retry for a busy slot) bounds the
 * wait.  Nothing blocks for long outside poll(), except waiting for a slot
 * when no build of ours is running (then nothing else could happen).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive.h"
#include "build-env.h"
#include "build-queue.h"
#include "build.h"
#include "cgroup.h"
#include "cleanup.h"
#include "derivation-store.h"
#include "derivation.h"
#include "hash.h"
#include "local-store.h"
#include "lock.h"
#include "log.h"
#include "nar.h"
#include "path.h"
#include "refscan.h"
#include "sandbox.h"
#include "seccomp.h"
#include "settings.h"
#include "store.h"
#include "strbuf.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

/* A line longer than this reaches the log callback in pieces. */
#define LOG_LINE_MAX (64 * 1024)
/* How often a build waiting for a busy slot or a locked output retries. */
#define RETRY_USEC (100 * 1000)
/* Slot-record keys of our own, for reclaiming what a crashed build left. */
#define SLOT_KEY_OUTPUT_DIR "output-dir"

static const char *const status_names[_BUILD_STATUS_MAX] = {
	[BUILD_VALID] = "valid",
	[BUILD_BUILT] = "built",
	[BUILD_FAILED] = "failed",
	[BUILD_TIMED_OUT] = "timed-out",
	[BUILD_LOG_LIMIT] = "log-limit",
	[BUILD_HASH_MISMATCH] = "hash-mismatch",
	[BUILD_UNSUPPORTED] = "unsupported",
	[BUILD_DEP_FAILED] = "dependency-failed",
	[BUILD_CANCELLED] = "cancelled",
	[BUILD_NOT_DETERMINISTIC] = "not-deterministic",
};

const char *build_status_name(enum build_status s)
{
	return (unsigned)s < _BUILD_STATUS_MAX ? status_names[s] : "unknown";
}

void build_options_init(struct build_options *o)
{
	memset(o, 0, sizeof(*o));
	o->cancel_fd = -1;
}

char *build_log_path(const struct settings *settings, const char *drv_path, bool compressed)
{
	const char *slash = strrchr(drv_path, '/');
	const char *base = slash != NULL ? slash + 1 : drv_path;

	return xasprintf("%s/drvs/%.2s/%s%s", settings->log_dir, base,
			 base[0] && base[1] ? base + 2 : "", compressed ? ".bz2" : "");
}

/* ---- per-process state: decided once, reused by every call ---- */

/*
 * The seccomp program and the sandbox probe cost a few hundred
 * microseconds each; a daemon worker builds many derivations.  They are
 * kept for the life of the process (reachable, so not leaks).
 */
static struct seccomp_bpf *process_bpf;
static int sandbox_checked; /* 0 not yet, 1 available */
static struct cgroup_root *process_cgroot;

/*
 * Both are made by a thread of their own (prep_start) while the build is
 * planned and its first slot taken, or earlier (build_prepare: `nib build`
 * starts it before it opens the store), a quarter of a millisecond that a
 * one-build `nib build` would otherwise wait for; prep_join collects them
 * before anything uses them.  The thread shares nothing with the rest:
 * libseccomp and the cgroup discovery run in it alone.
 */
static struct {
	pthread_t thread;
	bool running;
	bool want_bpf, want_cgroot;
	struct seccomp_bpf *bpf;
	struct cgroup_root *cgroot;
	struct nib_error *err;
} prep;

static void *prep_main(void *arg)
{
	(void)arg;
	if (prep.want_bpf && seccomp_bpf_build(&prep.bpf, &prep.err) < 0) {
		nib_error_prefix(&prep.err, "building the system call filter");
		return NULL;
	}
	if (prep.want_cgroot)
		(void)cgroup_root_discover(NULL, &prep.cgroot, &prep.err);
	return NULL;
}

static void prep_start(const struct settings *s)
{
	if (prep.running)
		return;
	prep.want_bpf = s->filter_syscalls && process_bpf == NULL;
	prep.want_cgroot = s->use_cgroups && process_cgroot == NULL;
	if (!prep.want_bpf && !prep.want_cgroot)
		return;
	/* Without a thread, prep_join does the work itself. */
	prep.running = thread_start(&prep.thread, prep_main, NULL);
}

void build_prepare(const struct settings *settings)
{
	prep_start(settings);
}

/* The syscall filter and the cgroup hierarchy the settings ask for, made at the latest now. */
static int prep_join(const struct settings *s, struct nib_error **err)
{
	if (prep.running) {
		pthread_join(prep.thread, NULL);
		prep.running = false;
		if (process_bpf == NULL)
			process_bpf = TAKE_PTR(prep.bpf);
		if (process_cgroot == NULL)
			process_cgroot = TAKE_PTR(prep.cgroot);
		seccomp_bpf_free(TAKE_PTR(prep.bpf));
		cgroup_root_free(TAKE_PTR(prep.cgroot));
		if (prep.err != NULL)
			return nib_error_move(err, &prep.err);
	}
	if (s->filter_syscalls && process_bpf == NULL && seccomp_bpf_build(&process_bpf, err) < 0)
		return nib_error_prefix(err, "building the system call filter");
	if (s->use_cgroups && process_cgroot == NULL &&
	    cgroup_root_discover(NULL, &process_cgroot, err) < 0)
		return -1;
	return 0;
}

int build_prepare_now(const struct settings *settings, struct nib_error **err)
{
	return prep_join(settings, err);
}

/* ---- goals ---- */

enum goal_state {
	GOAL_WAITING, /* inputs not built yet */
	GOAL_READY,   /* may start */
	GOAL_RUNNING,
	GOAL_DONE,
};

struct job;

struct goal {
	char *drv_path;
	char *name;
	struct derivation *drv;
	bool requested;
	bool build;	    /* must be built (else its outputs were valid) */
	char **input_paths; /* srcs and the wanted outputs of the input derivations */
	size_t *deps, n_deps, alloc_deps;
	size_t *rdeps, n_rdeps, alloc_rdeps;
	size_t pending; /* deps not built yet */
	enum goal_state state;
	enum build_status status;
	char *error;
	struct job *job;
	bool uid_range, fixed;
	bool unsandboxed;     /* sandbox = false, or relaxed and __noChroot */
	bool trust_outputs;   /* given inline by a trusted caller: outputs not recomputed */
	bool check;	      /* check mode: rebuilt and compared, not registered */
	enum build_wait wait; /* why a ready goal has not started (see build-queue.h) */
	int64_t wait_since;   /* seconds since the epoch */
};

/* Open addressing: drv path -> goal index + 1 (0 = empty). */
struct goal_map {
	size_t *slots;
	size_t cap;
};

static size_t str_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct build_ctx {
	struct store *store;
	const struct settings *s;
	struct drv_hasher *hasher; /* hash modulo of the derivations checked, memoised */
	const struct build_options *opts;
	const struct build_callbacks *cb;
	struct goal *goals;
	size_t n_goals, alloc_goals;
	struct goal_map map;
	struct uid_pool *pool;
	int64_t max_jobs;
	size_t running;
	size_t n_built, n_failed, n_to_build;
	bool stop;			  /* a failure without keep-going: start nothing more */
	bool cancelled;			  /* cancel_fd fired */
	bool retry_pending;		  /* a ready goal waits for a slot or a lock */
	bool said_waiting;		  /* "waiting for a free build slot" was said */
	char *build_dir;		  /* build-dir or <state-dir>/builds */
	char *root_dir;			  /* shared mountpoint of the sandboxes' private roots */
	char *outputs_dir;		  /* <real store>/.nib-builds, 0700 */
	struct sandbox_bind *extra_binds; /* sandbox-paths and their store closures */
	size_t n_extra_binds;
	char **extra_strings; /* storage of extra_binds' strings */
	char **extra_closure; /* store paths among sandbox-paths, with their closure */
	struct job **jobs;    /* running, in start order */
	size_t n_jobs, alloc_jobs;
	unsigned long cores;
	struct build_queue *queue;    /* our waiting goals, for `nib daemon status` */
	bool any_wait;		      /* some goal had to wait: keep the queue file current */
	uint64_t queue_sig;	      /* fingerprint of what the queue file lists */
	size_t acquiring;	      /* the goal job_get_slot works for */
	struct nib_error *settle_err; /* local_store_settle failed: nothing may go on */
	int *kept_tokens; /* job tokens of ended jobs, for the next ones (tokens_keep) */
	size_t n_kept_tokens, alloc_kept_tokens;
};

static struct goal *goal_lookup(struct build_ctx *c, const char *drv_path)
{
	size_t i;

	if (c->map.cap == 0)
		return NULL;
	for (i = str_hash(drv_path) & (c->map.cap - 1); c->map.slots[i];
	     i = (i + 1) & (c->map.cap - 1))
		if (STREQ(c->goals[c->map.slots[i] - 1].drv_path, drv_path))
			return &c->goals[c->map.slots[i] - 1];
	return NULL;
}

static void map_insert(struct goal_map *m, const struct goal *goals, size_t idx)
{
	size_t i = str_hash(goals[idx].drv_path) & (m->cap - 1);

	while (m->slots[i])
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = idx + 1;
}

static size_t goal_add(struct build_ctx *c, const char *drv_path)
{
	size_t idx = c->n_goals;

	ALLOC_GROW(c->goals, c->n_goals + 1, c->alloc_goals);
	memset(&c->goals[idx], 0, sizeof(c->goals[idx]));
	c->goals[idx].drv_path = xstrdup(drv_path);
	c->n_goals++;
	if (c->n_goals * 2 > c->map.cap) {
		size_t cap = c->map.cap ? c->map.cap * 2 : 64;
		free(c->map.slots);
		c->map.slots = xcalloc(cap, sizeof(size_t));
		c->map.cap = cap;
		for (size_t i = 0; i < c->n_goals; i++)
			map_insert(&c->map, c->goals, i);
	} else {
		map_insert(&c->map, c->goals, idx);
	}
	return idx;
}

static void push_index(size_t **v, size_t *n, size_t *alloc, size_t x)
{
	ALLOC_GROW(*v, *n + 1, *alloc);
	(*v)[(*n)++] = x;
}

/* Goal idx could not start for reason w (kept from the first reason on). */
static void goal_wait(struct build_ctx *c, size_t idx, enum build_wait w)
{
	struct goal *g = &c->goals[idx];

	if (g->wait == BUILD_WAIT_NONE)
		g->wait_since = (int64_t)(now_realtime_usec() / 1000000);
	g->wait = w;
	c->any_wait = true;
}

/* Publish the ready goals that wait (nothing to do until one had to). */
static void queue_sync(struct build_ctx *c)
{
	cleanup_free struct build_queue_entry *v = NULL;
	cleanup_error struct nib_error *e = NULL;
	uint64_t sig = 1;
	size_t n = 0;

	if (!c->any_wait)
		return;
	/* Called after every event: format and write only when the list changed. */
	for (size_t i = 0; i < c->n_goals && !c->stop && !c->cancelled; i++)
		if (c->goals[i].state == GOAL_READY && c->goals[i].wait != BUILD_WAIT_NONE)
			sig = sig * 1000003 + i * _BUILD_WAIT_MAX + c->goals[i].wait;
	if (sig == c->queue_sig)
		return;
	c->queue_sig = sig;
	v = xcalloc(c->n_goals + 1, sizeof(*v));
	for (size_t i = 0; i < c->n_goals && !c->stop && !c->cancelled; i++) {
		const struct goal *g = &c->goals[i];
		if (g->state == GOAL_READY && g->wait != BUILD_WAIT_NONE)
			v[n++] = (struct build_queue_entry){ .drv_path = g->drv_path,
							     .wait = g->wait,
							     .since = g->wait_since };
	}
	if (build_queue_publish(&c->queue, c->s, v, n, &e) < 0) {
		log_debug("cannot list the waiting builds: %s", e->msg);
		c->any_wait = false;
	}
}

/* ---- callbacks ---- */

static size_t job_goal(const struct job *j);

static void say(struct build_ctx *c, const char *drv_path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct build_ctx *c, const char *drv_path, const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	if (c->cb == NULL || c->cb->message == NULL)
		return;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	c->cb->message(c->cb->userdata, drv_path, msg);
}

static void report_progress(struct build_ctx *c)
{
	cleanup_free const char **names = NULL;
	cleanup_free const char **drvs = NULL;
	struct build_progress p = { 0 };

	if (c->cb == NULL || c->cb->progress == NULL)
		return;
	names = xcalloc(c->n_jobs + 1, sizeof(char *));
	drvs = xcalloc(c->n_jobs + 1, sizeof(char *));
	for (size_t i = 0; i < c->n_goals; i++) {
		const struct goal *g = &c->goals[i];
		if (!g->build)
			continue;
		p.total++;
		if (g->state == GOAL_WAITING || g->state == GOAL_READY)
			p.waiting++;
	}
	p.done = c->n_built;
	p.failed = c->n_failed;
	p.running = c->running;
	for (size_t i = 0; i < c->n_jobs; i++) {
		names[i] = c->goals[job_goal(c->jobs[i])].name;
		drvs[i] = c->goals[job_goal(c->jobs[i])].drv_path;
	}
	p.running_names = names;
	p.running_drv_paths = drvs;
	c->cb->progress(c->cb->userdata, &p);
}

/* A result for a goal that never ran (valid, unsupported, dependency failed, cancelled). */
static void report_simple(struct build_ctx *c, const struct goal *g)
{
	cleanup_strv char **names = xcalloc(1, sizeof(char *));
	cleanup_strv char **paths = xcalloc(1, sizeof(char *));
	struct build_result r = { 0 };

	if (c->cb == NULL || c->cb->result == NULL)
		return;
	for (size_t i = 0; g->drv != NULL && i < g->drv->n_outputs; i++) {
		strv_push(&names, g->drv->outputs[i].name);
		strv_push(&paths, g->drv->outputs[i].path ? g->drv->outputs[i].path : "");
	}
	r.drv_path = g->drv_path;
	r.name = g->name;
	r.status = g->status;
	r.error = g->error;
	r.n_outputs = strv_length(names);
	r.output_names = names;
	r.output_paths = paths;
	r.cpu_user_usec = r.cpu_system_usec = r.peak_memory = -1;
	r.wait_status = -1;
	r.slot = r.uid_start = -1;
	r.sandboxed = -1;
	c->cb->result(c->cb->userdata, &r);
}

/* ---- loading the graph ---- */

static int goal_load(struct build_ctx *c, const char *drv_path, size_t *ret_idx,
		     struct nib_error **err)
{
	const struct goal *found = goal_lookup(c, drv_path);
	struct derivation *d = NULL;
	const char *slash;
	size_t idx;

	if (found != NULL) {
		*ret_idx = (size_t)(found - c->goals);
		return 0;
	}
	d = store_read_derivation(c->store, drv_path, err);
	if (d == NULL)
		return -1;
	idx = goal_add(c, drv_path);
	c->goals[idx].drv = d;
	slash = strrchr(drv_path, '/');
	if (d->name == NULL) {
		/* No env "name": the .drv path's "<hash>-<name>.drv" has it (as Nix reads it). */
		const char *base = slash ? slash + 1 : drv_path;
		size_t len = strlen(base);
		d->name = len > 37 ? xstrndup(base + 33, len - 37) : xstrdup(base);
	}
	c->goals[idx].name = xstrdup(d->name);
	c->goals[idx].state = GOAL_DONE;
	c->goals[idx].status = BUILD_VALID;
	*ret_idx = idx;
	return 0;
}

/* The goal of a derivation given in memory (build_derivation_inline): a copy of it. */
static int goal_load_inline(struct build_ctx *c, const char *drv_path, const struct derivation *drv,
			    bool trust_outputs, size_t *ret_idx, struct nib_error **err)
{
	cleanup_strbuf struct strbuf aterm = STRBUF_INIT;
	struct derivation *d = NULL;
	const char *base = strrchr(drv_path, '/') + 1;
	size_t idx, len = strlen(base);

	if (drv->n_inputs > 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation '%s' given inline has input derivations (they "
				     "must be resolved into input sources)",
				     drv_path);
	derivation_print_aterm(drv, &aterm);
	if (derivation_parse_aterm(aterm.buf, aterm.len, store_dir(c->store), &d, err) < 0)
		return nib_error_prefix(err, "derivation '%s'", drv_path);
	/* Named after its .drv path, "<hash>-<name>.drv", as Nix names an inline derivation. */
	free(d->name);
	d->name = len > 37 ? xstrndup(base + 33, len - 37) : xstrdup(base);
	idx = goal_add(c, drv_path);
	c->goals[idx].drv = d;
	c->goals[idx].name = xstrdup(d->name);
	c->goals[idx].state = GOAL_DONE;
	c->goals[idx].status = BUILD_VALID;
	c->goals[idx].trust_outputs = trust_outputs;
	*ret_idx = idx;
	return 0;
}

/*
 * Are the outputs `wanted` (NULL: all) of goal idx valid?  Their paths are
 * appended to *paths when paths is not NULL.
 */
static int outputs_valid(struct build_ctx *c, size_t idx, char *const *wanted, char ***paths,
			 bool *ret, struct nib_error **err)
{
	const struct derivation *d = c->goals[idx].drv;
	cleanup_free char **v = xcalloc(d->n_outputs + 1, sizeof(char *));
	cleanup_free bool *valid = NULL;
	size_t n = 0;

	for (size_t i = 0; i < d->n_outputs; i++) {
		const struct drv_output *o = &d->outputs[i];
		if (wanted != NULL && !strv_contains(wanted, o->name))
			continue;
		if (o->path == NULL)
			return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
					     "output '%s' of '%s' has no known path "
					     "(content-addressed derivations are not supported)",
					     o->name, c->goals[idx].drv_path);
		v[n++] = o->path;
	}
	if (wanted != NULL)
		for (size_t i = 0; wanted[i] != NULL; i++)
			if (derivation_find_output(d, wanted[i]) == NULL)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "derivation '%s' has no output '%s'",
						     c->goals[idx].drv_path, wanted[i]);
	valid = xcalloc(n + 1, sizeof(bool));
	if (n > 0 && store_query_valid(c->store, v, n, valid, err) < 0)
		return -1;
	*ret = true;
	for (size_t i = 0; i < n; i++) {
		if (!valid[i])
			*ret = false;
		if (paths != NULL)
			strv_push(paths, v[i]);
	}
	return 0;
}

static bool has_feature(char *const *features, const char *f)
{
	return features != NULL && strv_contains(features, f);
}

/* Can goal idx be built here at all?  0 yes, 1 no (status and error set), -1 error. */
static int check_buildable(struct build_ctx *c, size_t idx, struct nib_error **err)
{
	struct goal *g = &c->goals[idx];
	const struct settings *s = c->s;
	cleanup_strv char **features = NULL;
	enum drv_type type;
	bool no_chroot = false;
	cleanup_error struct nib_error *e = NULL;
	cleanup_strbuf struct strbuf missing = STRBUF_INIT;

	if (derivation_type(g->drv, &type, &e) < 0) {
		g->error = xasprintf("cannot build '%s': %s", g->drv_path, e->msg);
		return 1;
	}
	if (type != DRV_TYPE_INPUT_ADDRESSED && type != DRV_TYPE_FIXED) {
		g->error = xasprintf("cannot build '%s': content-addressed, deferred and impure "
				     "derivations are not supported",
				     g->drv_path);
		return 1;
	}
	g->fixed = type == DRV_TYPE_FIXED;
	/*
	 * A .drv written by someone else could claim the output path of
	 * another derivation; its outputs must be the ones its contents give.
	 */
	if (c->hasher == NULL)
		c->hasher =
			drv_hasher_new(store_dir(c->store), store_derivation_resolver, c->store);
	if (!g->trust_outputs && derivation_check_outputs(c->hasher, g->drv, &e) < 0) {
		g->error = xasprintf("cannot build '%s': %s", g->drv_path, e->msg);
		return 1;
	}
	if (derivation_required_features(g->drv, &features, err) < 0)
		return nib_error_prefix(err, "'%s'", g->drv_path);
	g->uid_range = has_feature(features, "uid-range");
	for (size_t i = 0; features[i] != NULL; i++)
		if (!has_feature(s->system_features, features[i]))
			strbuf_addf(&missing, "%s'%s'", missing.len ? ", " : "", features[i]);
	if (!STREQ(g->drv->system, s->system) || missing.len > 0) {
		cleanup_strbuf struct strbuf have = STRBUF_INIT;
		for (size_t i = 0; s->system_features && s->system_features[i]; i++)
			strbuf_addf(&have, "%s%s", i ? ", " : "", s->system_features[i]);
		if (!STREQ(g->drv->system, s->system))
			g->error = xasprintf("cannot build '%s': it is for system '%s', but this "
					     "machine builds for '%s' (setting 'system')",
					     g->drv_path, g->drv->system, s->system);
		else
			g->error = xasprintf("cannot build '%s': it requires the system feature%s "
					     "%s, but this machine offers only {%s} (setting "
					     "'system-features')",
					     g->drv_path, strchr(missing.buf, ',') ? "s" : "",
					     missing.buf, have.buf);
		return 1;
	}
	if (derivation_get_bool_attr(g->drv, "__noChroot", &no_chroot, &e) < 0) {
		g->error = xasprintf("cannot build '%s': %s", g->drv_path, e->msg);
		return 1;
	}
	if (no_chroot && s->sandbox == SANDBOX_ON) {
		g->error = xasprintf("cannot build '%s': it has '__noChroot' set, but that is not "
				     "allowed when 'sandbox' is 'true' (set 'sandbox = relaxed' to "
				     "build such derivations without a sandbox)",
				     g->drv_path);
		return 1;
	}
	if (build_env_validate(g->drv, store_dir(c->store), &e) < 0) {
		g->error = xasprintf("cannot build '%s': %s", g->drv_path, e->msg);
		return 1;
	}
	/*
	 * Unlike Nix, relaxed keeps fixed-output derivations sandboxed: nib's
	 * sandbox gives them the network already.
	 */
	g->unsandboxed = s->sandbox == SANDBOX_OFF || (s->sandbox == SANDBOX_RELAXED && no_chroot);
	if (g->uid_range && !s->auto_allocate_uids) {
		g->error = xasprintf("cannot build '%s': feature 'uid-range' requires the setting "
				     "'auto-allocate-uids' to be enabled",
				     g->drv_path);
		return 1;
	}
	/*
	 * uid-range needs the sandbox's user namespace.  And an unsandboxed
	 * builder sees the store through an overlay whose lower layer would
	 * show it the registered outputs, so job_start() removes whatever is
	 * at their places: in check mode, the valid outputs themselves.
	 */
	if (g->unsandboxed && (g->uid_range || g->check)) {
		const char *why = s->sandbox == SANDBOX_OFF ? "setting 'sandbox' is false"
							    : "it has '__noChroot' set";
		g->error = g->uid_range
				   ? xasprintf("cannot build '%s': feature 'uid-range' is only "
					       "supported in sandboxed builds (%s)",
					       g->drv_path, why)
				   : xasprintf("cannot check '%s': checking is only supported in "
					       "sandboxed builds (%s)",
					       g->drv_path, why);
		return 1;
	}
	if (g->uid_range && !s->use_cgroups) {
		g->error = xasprintf("cannot build '%s': feature 'uid-range' requires the setting "
				     "'use-cgroups' to be enabled (its cgroup is delegated to it)",
				     g->drv_path);
		return 1;
	}
	if (g->uid_range && s->ids_per_build < SANDBOX_UID_RANGE_MIN) {
		g->error =
			xasprintf("cannot build '%s': feature 'uid-range' needs at least %u IDs "
				  "per build, but 'ids-per-build' is %lld",
				  g->drv_path, SANDBOX_UID_RANGE_MIN, (long long)s->ids_per_build);
		return 1;
	}
	if (g->unsandboxed && !STREQ(store_dir(c->store), local_store_real_dir(c->store))) {
		/* Nix sandboxes such builds silently; nib says so instead. */
		g->error = xasprintf("cannot build '%s' without a sandbox (%s): the store '%s' is "
				     "relocated to '%s' (setting 'store-root'), which only a "
				     "sandbox can show at its logical path; unset 'store-root' or "
				     "set 'sandbox = true'",
				     g->drv_path,
				     s->sandbox == SANDBOX_OFF ? "setting 'sandbox' is false"
							       : "it has '__noChroot' set",
				     store_dir(c->store), local_store_real_dir(c->store));
		return 1;
	}
	return 0;
}

static int goal_require(struct build_ctx *c, size_t idx, int depth, struct nib_error **err)
{
	int r;

	if (c->goals[idx].build)
		return 0;
	if (depth > DRV_MAX_INPUT_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "derivation '%s' has inputs nested more than %d deep",
				     c->goals[idx].drv_path, DRV_MAX_INPUT_DEPTH);
	c->goals[idx].build = true;
	c->goals[idx].state = GOAL_WAITING;
	c->n_to_build++;
	c->goals[idx].input_paths = xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < c->goals[idx].drv->n_srcs; i++)
		strv_push(&c->goals[idx].input_paths, c->goals[idx].drv->srcs[i]);

	r = check_buildable(c, idx, err);
	if (r < 0)
		return -1;
	if (r > 0) {
		c->goals[idx].state = GOAL_DONE;
		c->goals[idx].status = BUILD_UNSUPPORTED;
		return 0;
	}
	for (size_t i = 0; i < c->goals[idx].drv->n_inputs; i++) {
		const struct drv_input *in = &c->goals[idx].drv->inputs[i];
		size_t j;
		bool valid;

		if (goal_load(c, in->path, &j, err) < 0)
			return nib_error_prefix(err, "input of '%s'", c->goals[idx].drv_path);
		if (outputs_valid(c, j, in->outputs, &c->goals[idx].input_paths, &valid, err) < 0)
			return -1;
		if (valid)
			continue;
		if (goal_require(c, j, depth + 1, err) < 0)
			return -1;
		push_index(&c->goals[idx].deps, &c->goals[idx].n_deps, &c->goals[idx].alloc_deps,
			   j);
		push_index(&c->goals[j].rdeps, &c->goals[j].n_rdeps, &c->goals[j].alloc_rdeps, idx);
	}
	return 0;
}

/* Mark everything that depends on goal idx (transitively) as failed because of it. */
static void fail_dependents(struct build_ctx *c, size_t idx)
{
	for (size_t k = 0; k < c->goals[idx].n_rdeps; k++) {
		size_t r = c->goals[idx].rdeps[k];
		struct goal *g = &c->goals[r];

		if (g->state == GOAL_DONE || g->state == GOAL_RUNNING)
			continue;
		g->state = GOAL_DONE;
		g->status = BUILD_DEP_FAILED;
		g->error = xasprintf("cannot build '%s': its input '%s' failed", g->drv_path,
				     c->goals[idx].drv_path);
		c->n_failed++;
		report_simple(c, g);
		fail_dependents(c, r);
	}
}

/* Goal idx finished (built or failed): update its dependents. */
static void goal_finished(struct build_ctx *c, size_t idx)
{
	struct goal *g = &c->goals[idx];

	if (g->status == BUILD_BUILT || g->status == BUILD_VALID) {
		for (size_t k = 0; k < g->n_rdeps; k++) {
			struct goal *d = &c->goals[g->rdeps[k]];
			if (d->state == GOAL_WAITING && --d->pending == 0)
				d->state = GOAL_READY;
		}
		return;
	}
	fail_dependents(c, idx);
	if (!c->opts->keep_going)
		c->stop = true;
}

/* ---- one build ---- */

struct job {
	size_t goal;
	struct build_ctx *c;
	int token_fd; /* the job token (<state>/jobs/token-<i>) held while it runs; -1 = none */
	struct uid_pool_slot *slot;
	struct path_lock **locks;
	size_t n_locks;
	struct cgroup_build *cg;
	struct sandbox *sb;
	int log_fd; /* read end of the builder's stdout/stderr pipe; -1 at EOF */
	struct archive_log *log;
	char *log_path;
	char *top_dir;	  /* <build-dir>/nib-build-<slot>, 0700 root */
	char *build_dir;  /* top_dir/build: /build inside */
	char *output_dir; /* <real store>/.nib-builds/<slot>: the store inside */
	char *kept_dir;	  /* keep-failed: where top_dir went */
	char **closure;	  /* input closure, sorted */
	uint64_t start_mono, last_output_mono;
	int64_t start_real, stop_real;
	uint64_t log_bytes;
	struct strbuf line;
	char **tail; /* ring of the last log-lines lines */
	size_t tail_len, tail_pos;
	struct build_record rec;
	enum build_status kill_status; /* set when we killed it */
	char *kill_reason;
	bool exited;
	int wait_status;
	struct rusage ru;
	struct cgroup_stats stats;
	bool have_stats;
	enum build_status status;
	char *error;
	char *setup_error; /* the sandbox could not be set up (after the spawn started) */
	/* Outputs moved into place, being synced, not registered yet (job_commit_outputs). */
	struct store_path_info *out_infos;
	char **out_dsts;
	size_t n_out;
	struct local_sync *out_sync;
};

static size_t job_goal(const struct job *j)
{
	return j->goal;
}

/* What job_move_outputs fills in each output's info (the rest points elsewhere). */
static void output_infos_release(struct store_path_info *infos, size_t n)
{
	for (size_t i = 0; infos != NULL && i < n; i++) {
		strv_free(infos[i].references);
		free(infos[i].ca);
	}
}

/* Forget the outputs job_move_outputs left for job_commit_outputs (their contents stay). */
static void job_drop_pending_outputs(struct job *j)
{
	cleanup_error struct nib_error *e = NULL;

	(void)local_store_sync_finish(TAKE_PTR(j->out_sync), &e);
	output_infos_release(j->out_infos, j->n_out);
	free(j->out_infos);
	j->out_infos = NULL;
	strv_free(j->out_dsts);
	j->out_dsts = NULL;
	j->n_out = 0;
}

/*
 * Job tokens of jobs that ended are kept for the jobs this process starts
 * next (job_get_token) and closed after that round (tokens_flush): a token
 * given back is not free at once for its own process otherwise, because
 * every builder forked meanwhile shares the parent's descriptors - their
 * locks with them - until it closes them first thing (close_inherited_fds),
 * and a builder that has not run yet has not.  Taking a token again then
 * failed, and the next job waited ("max-jobs is reached by other builds")
 * for the next event.  One lock less to take per job, too.
 */
static void tokens_keep(struct build_ctx *c, int fd)
{
	ALLOC_GROW(c->kept_tokens, c->n_kept_tokens + 1, c->alloc_kept_tokens);
	c->kept_tokens[c->n_kept_tokens++] = fd;
}

/* Give back the tokens no job took: other processes may be waiting for them. */
static void tokens_flush(struct build_ctx *c)
{
	while (c->n_kept_tokens > 0)
		close(c->kept_tokens[--c->n_kept_tokens]);
}

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	job_drop_pending_outputs(j);
	if (j->token_fd >= 0)
		tokens_keep(j->c, j->token_fd);
	for (size_t i = 0; i < j->n_locks; i++)
		path_lock_release(j->locks[i]);
	free(j->locks);
	sandbox_free(j->sb);
	cgroup_build_free(j->cg);
	if (j->log_fd >= 0)
		close(j->log_fd);
	archive_log_free(j->log);
	free(j->log_path);
	free(j->top_dir);
	free(j->build_dir);
	free(j->output_dir);
	free(j->kept_dir);
	strv_free(j->closure);
	strbuf_release(&j->line);
	for (size_t i = 0; j->tail != NULL && i < j->tail_len; i++)
		free(j->tail[i]);
	free(j->tail);
	build_record_release(&j->rec);
	free(j->kill_reason);
	free(j->error);
	free(j->setup_error);
	free(j);
}

static void tail_push(struct job *j, const char *line, size_t len)
{
	size_t max = (size_t)j->c->s->log_lines;

	if (max == 0)
		return;
	if (j->tail == NULL)
		j->tail = xcalloc(max, sizeof(char *));
	if (j->tail_len < max) {
		j->tail[j->tail_len++] = xstrndup(line, len);
		return;
	}
	free(j->tail[j->tail_pos]);
	j->tail[j->tail_pos] = xstrndup(line, len);
	j->tail_pos = (j->tail_pos + 1) % max;
}

/* The tail in order, as a NULL-terminated vector (caller frees). */
static char **tail_lines(const struct job *j)
{
	char **v = xcalloc(j->tail_len + 1, sizeof(char *));

	for (size_t i = 0; i < j->tail_len; i++)
		v[i] = xstrdup(j->tail[(j->tail_pos + i) % j->tail_len]);
	return v;
}

static void emit_line(struct job *j, const char *line, size_t len)
{
	const struct build_callbacks *cb = j->c->cb;
	const struct goal *g = &j->c->goals[j->goal];

	tail_push(j, line, len);
	if (cb != NULL && cb->log_line != NULL)
		cb->log_line(cb->userdata, g->drv_path, g->name, line, len);
}

/* Take builder output: store it, split it into lines. */
static void log_data(struct job *j, const char *data, size_t len)
{
	cleanup_error struct nib_error *e = NULL;

	if (j->log != NULL && archive_log_write(j->log, data, len, &e) < 0) {
		log_debug("dropping the build log: %s", e->msg);
		archive_log_free(j->log);
		j->log = NULL;
	}
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;

		if (j->line.len + take > LOG_LINE_MAX)
			take = LOG_LINE_MAX - j->line.len;
		strbuf_add(&j->line, data, take);
		data += take;
		len -= take;
		if (j->line.len >= LOG_LINE_MAX || (len > 0 && *data == '\n')) {
			emit_line(j, j->line.buf, j->line.len);
			strbuf_reset(&j->line);
			if (len > 0 && *data == '\n') {
				data++;
				len--;
			}
		}
	}
}

static void job_kill(struct job *j, enum build_status status, char *reason)
{
	cleanup_error struct nib_error *e = NULL;

	if (j->kill_reason == NULL) {
		j->kill_status = status;
		j->kill_reason = reason;
	} else {
		free(reason);
	}
	if (j->sb != NULL && sandbox_kill(j->sb, SIGKILL, &e) < 0)
		log_debug("cannot kill the builder of '%s': %s", j->c->goals[j->goal].drv_path,
			  e->msg);
	nib_error_clear(&e);
	if (j->cg != NULL && cgroup_build_kill(j->cg, &e) < 0)
		log_debug("cannot kill the cgroup of '%s': %s", j->c->goals[j->goal].drv_path,
			  e->msg);
	nib_error_clear(&e);
	/* No PID namespace takes the builder's descendants along: find them by UID. */
	if (j->c->goals[j->goal].unsandboxed && j->cg == NULL && j->slot != NULL &&
	    uid_pool_slot_kill_procs(j->slot, NULL, &e) < 0)
		log_debug("cannot kill the processes of '%s': %s", j->c->goals[j->goal].drv_path,
			  e->msg);
}

/* Read what the builder wrote; returns false at EOF. */
static bool job_read_log(struct job *j)
{
	char buf[16384];
	uint64_t max = j->c->s->max_build_log_size;

	while (j->log_fd >= 0) {
		ssize_t n = read(j->log_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			close(j->log_fd);
			j->log_fd = -1;
			break;
		}
		j->last_output_mono = now_monotonic_usec();
		if (j->kill_reason != NULL)
			continue; /* dying: discard */
		if (max != 0 && j->log_bytes + (uint64_t)n > max) {
			n = (ssize_t)(max - j->log_bytes);
			log_data(j, buf, (size_t)n);
			j->log_bytes = max;
			job_kill(
				j, BUILD_LOG_LIMIT,
				xasprintf("killed after writing more than %llu bytes of log output",
					  (unsigned long long)max));
			continue;
		}
		j->log_bytes += (uint64_t)n;
		log_data(j, buf, (size_t)n);
	}
	return false;
}

static void env_set(char ***env, const char *key, const char *value)
{
	size_t klen = strlen(key);
	cleanup_free char *kv = xasprintf("%s=%s", key, value);

	for (char **e = *env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, key, klen) == 0 && (*e)[klen] == '=') {
			free(*e);
			*e = TAKE_PTR(kv);
			return;
		}
	strv_push(env, kv);
}

/* env_set for each key, value pair of vars. */
static void env_set_pairs(char ***env, char *const *vars)
{
	for (size_t i = 0; vars[i] != NULL && vars[i + 1] != NULL; i += 2)
		env_set(env, vars[i], vars[i + 1]);
}

/*
 * The builder's environment, in Nix's order: a few defaults the derivation
 * may override, the derivation's own variables (passAsFile ones written to
 * files in the build directory instead), then what it may not override.
 */
static int make_env(struct job *j, char ***ret, struct nib_error **err)
{
	const struct build_ctx *c = j->c;
	const struct goal *g = &c->goals[j->goal];
	const struct derivation *d = g->drv;
	const char *paf = derivation_get_env(d, "passAsFile");
	cleanup_strv char **env = xcalloc(1, sizeof(char *));
	cleanup_strv char **pass = xcalloc(1, sizeof(char *));
	cleanup_strv char **vars = xcalloc(1, sizeof(char *)),
			  **impure = xcalloc(1, sizeof(char *));
	/* With structured attributes the env entries reach the builder as files only. */
	const bool structured = build_env_is_structured(d);
	char cores[32];
	static const char *const build_vars[] = { "NIX_BUILD_TOP", "TMPDIR", "TEMPDIR",
						  "TMP",	   "TEMP",   "PWD" };
	/* Without a sandbox the builder sees the build directory where it is. */
	const char *top = g->unsandboxed ? j->build_dir : "/build";

	snprintf(cores, sizeof(cores), "%lu", c->cores);
	env_set(&env, "PATH", "/path-not-set");
	env_set(&env, "HOME", "/homeless-shelter");
	env_set(&env, "NIX_STORE", store_dir(c->store));
	env_set(&env, "NIX_BUILD_CORES", cores);
	if (paf != NULL) {
		cleanup_free char *copy = xstrdup(paf);
		char *save = NULL;
		for (char *w = strtok_r(copy, " \t\n\r", &save); w != NULL;
		     w = strtok_r(NULL, " \t\n\r", &save))
			strv_push(&pass, w);
	}
	for (size_t i = 0; !structured && i < d->n_env; i++) {
		const struct drv_env *e = &d->env[i];
		struct hash h;
		char b32[64];
		cleanup_free char *file = NULL, *var = NULL, *inside = NULL;
		cleanup_close int fd = -1;

		if (!strv_contains(pass, e->key)) {
			env_set(&env, e->key, e->value);
			continue;
		}
		hash_string(HASH_SHA256, e->key, &h);
		base32_encode(h.bytes, hash_algo_size(HASH_SHA256), b32);
		file = xasprintf("%s/.attr-%s", j->build_dir, b32);
		fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return nib_error_errno(err, "cannot create '%s'", file);
		if (write_full(fd, e->value, strlen(e->value), err) < 0)
			return -1;
		if (fchown(fd, j->slot->first_uid, j->slot->first_gid) < 0)
			return nib_error_errno(err, "cannot change the owner of '%s'", file);
		var = xasprintf("%sPath", e->key);
		inside = xasprintf("%s/.attr-%s", top, b32);
		env_set(&env, var, inside);
	}
	{
		struct build_env_dir dir = { j->build_dir, top, j->slot->first_uid,
					     j->slot->first_gid };
		if (build_env_prepare(c->store, d, j->closure, &dir, &vars, err) < 0)
			return -1;
	}
	env_set_pairs(&env, vars);
	for (size_t i = 0; i < ARRAY_SIZE(build_vars); i++)
		env_set(&env, build_vars[i], top);
	if (g->fixed)
		env_set(&env, "NIX_OUTPUT_CHECKED", "1");
	if (g->fixed && build_env_impure_vars(d, c->s->impure_env, &impure, err) < 0)
		return -1;
	env_set_pairs(&env, impure);
	env_set(&env, "NIX_LOG_FD", "2");
	env_set(&env, "TERM", "xterm-256color");
	*ret = TAKE_PTR(env);
	return 0;
}

/* Slot-record cleanup of a slot whose last holder died: its cgroup and output directory. */
static int stale_slot_cleanup(const struct uid_pool_slot *slot, void *userdata,
			      struct nib_error **err)
{
	const char *cg = uid_pool_slot_get_info(slot, UID_POOL_KEY_CGROUP);
	const char *out = uid_pool_slot_get_info(slot, SLOT_KEY_OUTPUT_DIR);
	struct build_ctx *c = userdata;

	if (cg != NULL && process_cgroot != NULL &&
	    cgroup_build_remove_leftover(process_cgroot, cg, err) < 0)
		return -1;
	/* Only ever our own directory in the store: never follow a record elsewhere. */
	if (out != NULL && c->outputs_dir != NULL && STARTS_WITH(out, c->outputs_dir) &&
	    out[strlen(c->outputs_dir)] == '/' &&
	    strchr(out + strlen(c->outputs_dir) + 1, '/') == NULL &&
	    rm_rf_at(AT_FDCWD, out, err) < 0)
		return -1;
	return 0;
}

/* The release hook of our own slots: the build's cgroup and output directory. */
static int job_slot_cleanup(const struct uid_pool_slot *slot, void *userdata,
			    struct nib_error **err)
{
	struct job *j = userdata;

	(void)slot;
	if (j->cg != NULL && cgroup_build_destroy(j->cg, err) < 0)
		return -1;
	/* Emptied, kept for the slot's next build (see slot_dir). */
	if (j->output_dir != NULL && rm_rf_contents(j->output_dir, err) < 0)
		return -1;
	return 0;
}

static void on_slot_wait(void *userdata, unsigned n_slots, unsigned n_busy, unsigned n_held)
{
	struct build_ctx *c = userdata;

	if (!c->said_waiting)
		say(c, NULL, "waiting for a free build slot (%u slots: %u busy, %u held)", n_slots,
		    n_busy, n_held);
	c->said_waiting = true;
	goal_wait(c, c->acquiring, BUILD_WAIT_SLOT);
	queue_sync(c);
}

static bool cancel_requested(struct build_ctx *c)
{
	struct pollfd p = { .fd = c->opts->cancel_fd, .events = POLLIN };

	if (c->cancelled)
		return true;
	if (c->opts->cancel_fd < 0)
		return false;
	if (poll(&p, 1, 0) > 0)
		c->cancelled = true;
	return c->cancelled;
}

/*
 * Get a slot.  Returns 1 with j->slot, 0 when all are busy and builds of
 * ours are running (retry later), -1 on error or cancel.
 */
static int job_get_slot(struct job *j, struct nib_error **err)
{
	struct build_ctx *c = j->c;
	const struct goal *g = &c->goals[j->goal];
	struct uid_pool_cleanup stale = { stale_slot_cleanup, c, 0 };
	struct uid_pool_acquire_opts o = {
		.derivation = g->drv_path,
		.no_wait = c->running > 0,
		.timeout_usec = 500 * 1000,
		.on_wait = on_slot_wait,
		.userdata = c,
		.stale_cleanup = &stale,
	};

	c->acquiring = j->goal;
	for (;;) {
		cleanup_error struct nib_error *e = NULL;

		if (uid_pool_acquire(c->pool, &o, &j->slot, &e) == 0)
			return 1;
		if (e->code == NIB_E_BUSY && o.no_wait) {
			if (!c->said_waiting)
				say(c, NULL,
				    "waiting for a free build slot (all %u are busy or held; "
				    "%zu of ours are running)",
				    uid_pool_size(c->pool), c->running);
			c->said_waiting = true;
			return 0;
		}
		if (e->code != NIB_E_TIMEOUT)
			return nib_error_move(err, &e);
		if (cancel_requested(c))
			return nib_error_set(err, NIB_E_BUILD_FAILED, 0, "interrupted");
	}
}

/*
 * Take a job token: max-jobs is a limit across every process building in
 * this state directory (all daemon connections, local `nib build`); a
 * caller with a higher max-jobs than others may use more of the tokens.  The
 * tokens are the lock files <state-dir>/jobs/token-<i>, i < max-jobs, taken
 * without waiting; a crashed holder's lock goes with it.  1 taken, 0 all
 * held (retry later), -1 on error.
 */
static int job_get_token(struct job *j, struct nib_error **err)
{
	const struct settings *s = j->c->s;
	cleanup_free char *dir = path_join(s->state_dir, "jobs");
	/* The caller's effective max-jobs (--max-jobs, or the daemon's, which clients can only lower). */
	int64_t n = j->c->max_jobs > 0 ? j->c->max_jobs : 1;

	if (j->c->n_kept_tokens > 0) {
		j->token_fd = j->c->kept_tokens[--j->c->n_kept_tokens];
		return 1;
	}
	if (mkdir_p(dir, 0755, err) < 0)
		return -1;
	for (int64_t i = 0; i < n; i++) {
		cleanup_free char *path = xasprintf("%s/token-%lld", dir, (long long)i);
		int r = lock_file_open(path, LOCK_EXCLUSIVE, false, &j->token_fd, err);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Lock every output.  1 locked, 0 someone else holds one (retry later). */
static int job_lock_outputs(struct job *j, struct nib_error **err)
{
	const struct derivation *d = j->c->goals[j->goal].drv;

	j->locks = xcalloc(d->n_outputs + 1, sizeof(*j->locks));
	for (size_t i = 0; i < d->n_outputs; i++) {
		cleanup_free char *real = local_store_real_path(j->c->store, d->outputs[i].path);
		int r = path_lock_acquire(real, false, &j->locks[j->n_locks], err);

		if (r < 0)
			return -1;
		if (r == 0) {
			for (size_t k = 0; k < j->n_locks; k++)
				path_lock_release(j->locks[k]);
			j->n_locks = 0;
			return 0;
		}
		j->n_locks++;
	}
	return 1;
}

static int make_fresh_dir(const char *path, mode_t mode, struct nib_error **err)
{
	struct stat st;

	if (rm_rf_at(AT_FDCWD, path, err) < 0)
		return nib_error_prefix(err, "removing the leftover '%s'", path);
	if (mkdir(path, mode) < 0)
		return nib_error_errno(err, "cannot create '%s'", path);
	/* Only if the umask took bits away: a chmod is one more journaled write. */
	if (lstat(path, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", path);
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return nib_error_errno(err, "cannot set the mode of '%s'", path);
	return 0;
}

/*
 * A slot's own directory (its workspace under build-dir, its staging
 * directory in the store): made once and kept, empty, between builds.
 * Creating and removing directories was a good part of what a trivial
 * build cost on ext4 (about 0.15 ms each way, three of them per build).
 * Whatever is in it is removed (a crashed holder's leftovers; nothing
 * when the last build released the slot); anything but a directory of
 * ours is replaced.  The slot is ours, so no other process uses it.
 */
static int slot_dir(const char *path, mode_t mode, struct nib_error **err)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return make_fresh_dir(path, mode, err);
	if (rm_rf_contents(path, err) < 0)
		return nib_error_prefix(err, "removing the leftovers in '%s'", path);
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return nib_error_errno(err, "cannot set the mode of '%s'", path);
	return 0;
}

static int job_open_log(struct job *j, struct nib_error **err)
{
	const struct settings *s = j->c->s;
	cleanup_free char *dir = NULL;

	if (!s->keep_build_log)
		return 0;
	j->log_path = build_log_path(s, j->c->goals[j->goal].drv_path, s->compress_build_log);
	dir = xstrdup(j->log_path);
	*strrchr(dir, '/') = '\0';
	if (mkdir_p(dir, 0755, err) < 0)
		return -1;
	return archive_log_open(j->log_path, s->compress_build_log, &j->log, err);
}

/* Everything the builder gets to see of the store, and the sandbox-paths. */
static int job_binds(struct job *j, struct sandbox_bind **ret, size_t *ret_n,
		     struct nib_error **err)
{
	struct build_ctx *c = j->c;
	const struct goal *g = &c->goals[j->goal];
	size_t n, alloc;
	struct sandbox_bind *b;

	if (store_query_closure(c->store, g->input_paths, strv_length(g->input_paths), 0,
				&j->closure, err) < 0)
		return nib_error_prefix(err, "the inputs of '%s'", g->drv_path);
	n = strv_length(j->closure);
	alloc = n + c->n_extra_binds + 1;
	b = xcalloc(alloc, sizeof(*b));
	for (size_t i = 0; i < n; i++) {
		b[i].target = j->closure[i];
		b[i].source = NULL; /* filled by the caller from the real paths */
	}
	for (size_t i = 0; i < c->n_extra_binds; i++)
		b[n + i] = c->extra_binds[i];
	*ret = b;
	*ret_n = n + c->n_extra_binds;
	return 0;
}

static int job_release(struct job *j, struct nib_error **err);

/*
 * Set up and start the build of goal idx.  Returns 1 when it runs, 0 when
 * it must wait (slot or output lock busy; *ret_job untouched), 2 when it is
 * decided without running (outputs valid meanwhile: goal status set), -1
 * with *err when setup failed (the caller fails the goal; everything taken
 * was given back).
 */
static int job_start(struct build_ctx *c, size_t idx, struct job **ret_job, struct nib_error **err)
{
	const struct settings *s = c->s;
	struct job *j = xcalloc(1, sizeof(*j));
	cleanup_strv char **env = NULL, **argv = NULL, **sources = NULL;
	cleanup_free struct sandbox_bind *binds = NULL;
	cleanup_free char *cg_name = NULL;
	struct sandbox_spec spec;
	const struct goal *g;
	size_t n_binds = 0;
	bool valid = false;
	int fds[2], r;

	j->goal = idx;
	j->c = c;
	j->log_fd = -1;
	j->token_fd = -1;
	j->line = (struct strbuf)STRBUF_INIT;
	build_record_init(&j->rec);
	g = &c->goals[idx];

	r = job_lock_outputs(j, err);
	if (r == 0)
		goal_wait(c, idx, BUILD_WAIT_LOCK);
	if (r <= 0)
		goto out_free;
	/* Another process may have built them while we waited for the locks. */
	if (outputs_valid(c, idx, NULL, NULL, &valid, err) < 0) {
		r = -1;
		goto out_free;
	}
	if (valid && !g->check) {
		c->goals[idx].status = BUILD_VALID;
		r = 2;
		goto out_free;
	}
	if (store_add_temp_root(c->store, g->drv_path, err) < 0)
		goto fail_early;
	for (size_t i = 0; i < g->drv->n_outputs; i++)
		if (store_add_temp_root(c->store, g->drv->outputs[i].path, err) < 0)
			goto fail_early;
	r = job_get_token(j, err);
	if (r == 0)
		goal_wait(c, idx, BUILD_WAIT_JOB);
	if (r <= 0) {
		if (r == 0 && !c->said_waiting) {
			say(c, g->drv_path,
			    "waiting for a free job (max-jobs is reached by other builds)");
			c->said_waiting = true;
		}
		goto out_free;
	}
	/* Stale slots' cleanup needs the cgroup hierarchy, the builder the filter. */
	if (prep_join(c->s, err) < 0)
		goto fail_early;
	r = job_get_slot(j, err);
	if (r == 0)
		goal_wait(c, idx, BUILD_WAIT_SLOT);
	if (r <= 0)
		goto out_free;
	g = &c->goals[idx];

	j->start_real = (int64_t)now_realtime_usec();
	j->start_mono = j->last_output_mono = now_monotonic_usec();
	j->top_dir = xasprintf("%s/nib-build-%s", c->build_dir, j->slot->name);
	j->build_dir = xasprintf("%s/build", j->top_dir);
	j->output_dir = xasprintf("%s/%s", c->outputs_dir, j->slot->name);
	/* Named by the UID range: unique on the host even across state directories. */
	if (s->use_cgroups)
		cg_name = xasprintf("nib-build-%u", (unsigned)j->slot->first_uid);
	/*
	 * Recorded before they exist (in one write), so that a crash in
	 * between leaves a trace.  The build directory is what is removed at
	 * release; top_dir and output_dir stay, emptied (see slot_dir).
	 */
	{
		const char *keys[] = { UID_POOL_KEY_BUILD_DIR, SLOT_KEY_OUTPUT_DIR,
				       UID_POOL_KEY_CGROUP };
		const char *values[] = { j->build_dir, j->output_dir, cg_name };

		if (uid_pool_slot_set_infos(j->slot, keys, values, cg_name != NULL ? 3 : 2, err) <
		    0)
			goto fail;
	}
	/* An unsandboxed builder reaches its build directory through top_dir. */
	if (slot_dir(j->top_dir, g->unsandboxed ? 0711 : 0700, err) < 0 ||
	    make_fresh_dir(j->build_dir, 0700, err) < 0 || slot_dir(j->output_dir, 0700, err) < 0)
		goto fail;
	/*
	 * The overlay would show an unsandboxed builder whatever is at its
	 * outputs' places; the outputs are locked and invalid, so it is garbage.
	 */
	for (size_t i = 0; g->unsandboxed && i < g->drv->n_outputs; i++) {
		cleanup_free char *real = local_store_real_path(c->store, g->drv->outputs[i].path);
		if (rm_rf_at(AT_FDCWD, real, err) < 0)
			goto fail;
	}
	if (s->use_cgroups) {
		struct cgroup_limits lim = { .memory_max = s->build_memory_max,
					     .pids_max = (uint64_t)s->build_pids_max };
		if (cgroup_build_create(process_cgroot, cg_name, &lim, &j->cg, err) < 0) {
			nib_error_prefix(err, "cannot create the build's cgroup");
			goto fail;
		}
	}
	if (job_binds(j, &binds, &n_binds, err) < 0)
		goto fail;
	sources = xcalloc(strv_length(j->closure) + 1, sizeof(char *));
	for (size_t i = 0; j->closure[i] != NULL; i++) {
		sources[i] = local_store_real_path(c->store, j->closure[i]);
		binds[i].source = sources[i];
	}
	if (make_env(j, &env, err) < 0)
		goto fail;
	argv = xcalloc(1, sizeof(char *));
	{
		const char *slash = strrchr(g->drv->builder, '/');
		strv_push(&argv, slash ? slash + 1 : g->drv->builder);
	}
	for (size_t i = 0; i < g->drv->n_args; i++)
		strv_push(&argv, g->drv->args[i]);

	if (pipe2(fds, O_CLOEXEC) < 0) {
		nib_error_errno(err, "cannot create a pipe");
		goto fail;
	}
	j->log_fd = fds[0];
	sandbox_spec_init(&spec);
	spec.builder = g->drv->builder;
	spec.argv = argv;
	spec.envp = env;
	spec.host_uid = j->slot->first_uid;
	spec.host_gid = j->slot->first_gid;
	spec.id_count = j->slot->nr_ids;
	spec.flags = (g->uid_range ? SANDBOX_UID_RANGE : 0) | (g->fixed ? SANDBOX_NETWORK : 0);
	spec.root_dir = c->root_dir;
	spec.build_dir = j->build_dir;
	spec.store_dir = store_dir(c->store);
	spec.output_dir = j->output_dir;
	spec.binds = binds;
	spec.n_binds = n_binds;
	if (g->unsandboxed) {
		spec.flags = SANDBOX_NONE;
		spec.binds = NULL;
		spec.n_binds = 0;
		/* Classic build users have accounts; a slot's UID gets one in a private copy. */
		spec.user_name = j->slot->user != NULL ? NULL : "nixbld";
		spec.groups = j->slot->groups;
		spec.n_groups = j->slot->n_groups;
	}
	spec.cgroup = j->cg;
	spec.seccomp = s->filter_syscalls ? process_bpf : NULL;
	spec.stdout_fd = fds[1];
	spec.stderr_fd = fds[1];
	/* The child sets its sandbox up while we go on; see job_spawned(). */
	r = sandbox_spawn_start(&spec, &j->sb, err);
	close(fds[1]);
	if (r < 0) {
		nib_error_prefix(err, "cannot start the builder of '%s'", g->drv_path);
		goto fail;
	}
	if (fcntl(j->log_fd, F_SETFL, O_NONBLOCK) < 0) {
		nib_error_errno(err, "cannot make the log pipe non-blocking");
		job_kill(j, BUILD_FAILED, xstrdup("setup failed"));
		goto fail;
	}
	/* While the child sets its sandbox up: the log is only read once we return. */
	if (job_open_log(j, err) < 0) {
		job_kill(j, BUILD_FAILED, xstrdup("setup failed"));
		goto fail;
	}

	j->rec.drv = xstrdup(g->drv_path);
	j->rec.slot = j->slot->index;
	j->rec.uid_start = j->slot->first_uid;
	j->rec.uid_count = j->slot->nr_ids;
	j->rec.start_usec = j->start_real;
	j->rec.sandboxed = !g->unsandboxed;
	/*
	 * The record is written once, when the build ends (one database
	 * transaction less per build); while it runs, the slot's record says
	 * who holds it.
	 */
	*ret_job = j;
	return 1;

fail : {
	/* Give back what was taken; the caller reports err as the build's failure. */
	cleanup_error struct nib_error *e = NULL;
	if (j->sb != NULL) {
		sandbox_kill(j->sb, SIGKILL, &e);
		nib_error_clear(&e);
		sandbox_wait(j->sb, true, NULL, NULL, &e);
		nib_error_clear(&e);
	}
	if (job_release(j, &e) < 0)
		say(c, g->drv_path, "%s", e->msg);
	job_free(j);
	return -1;
}
fail_early:
	job_free(j);
	return -1;
out_free:
	job_free(j);
	return r;
}

static int job_release(struct job *j, struct nib_error **err)
{
	struct uid_pool_cleanup cl = { job_slot_cleanup, j, 0 };
	int r;

	if (j->slot == NULL) {
		/* No slot was acquired, so no cgroup or directory was made either. */
		return 0;
	}
	/*
	 * An empty cgroup proves that no process of the build is left, unless
	 * the builder ran on the host, where its UID could start processes
	 * outside the cgroup (through a service, say).
	 */
	if (j->cg != NULL && !j->c->goals[j->goal].unsandboxed)
		cl.flags |= UID_POOL_CLEANUP_PROCS_VERIFIED;
	r = uid_pool_release(j->slot, &cl, err);
	j->slot = NULL;
	return r;
}

/* ---- checking and registering outputs ---- */

#define MAX_OUTPUT_DEPTH 1024

struct id_range {
	uid_t uid;
	gid_t gid;
	uint32_t n;
};

/*
 * Every file of an output must be a regular file, directory or symlink
 * owned by an ID the build had: anything else was not made by the build
 * (or cannot be stored).  lstat only: nothing is followed.
 */
static int check_tree(int pfd, const char *name, struct strbuf *what, const struct id_range *ids,
		      int depth, struct nib_error **err)
{
	struct stat st;

	if (depth > MAX_OUTPUT_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0, "'%s' is nested too deeply", what->buf);
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return nib_error_errno(err, "cannot stat '%s'", what->buf);
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "'%s' is not a regular file, directory or symlink", what->buf);
	if (st.st_uid - ids->uid >= ids->n || st.st_gid - ids->gid >= ids->n)
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "invalid ownership on file '%s': owned by %u:%u, outside the "
				     "build's IDs %u-%u",
				     what->buf, (unsigned)st.st_uid, (unsigned)st.st_gid,
				     (unsigned)ids->uid, (unsigned)(ids->uid + ids->n - 1));
	if (S_ISDIR(st.st_mode)) {
		cleanup_dir DIR *d = NULL;
		struct dirent *de;
		size_t len = what->len;

		d = opendir_at(pfd, name);
		if (d == NULL)
			return nib_error_errno(err, "cannot read directory '%s'", what->buf);
		while ((errno = 0, de = readdir(d)) != NULL) {
			if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
				continue;
			strbuf_addf(what, "/%s", de->d_name);
			if (check_tree(dirfd(d), de->d_name, what, ids, depth + 1, err) < 0)
				return -1;
			strbuf_setlen(what, len);
		}
		if (errno != 0)
			return nib_error_errno(err, "cannot read '%s'", what->buf);
	}
	return 0;
}

static int hash_sink(void *userdata, const void *data, size_t len, struct nib_error **err)
{
	(void)err;
	hash_ctx_update(userdata, data, len);
	return 0;
}

/* The hash a fixed output really has, by its method and algorithm. */
static int fixed_output_hash(const struct drv_output *o, const char *real, const struct hash *nar,
			     struct hash *ret, struct nib_error **err)
{
	cleanup_hash_ctx struct hash_ctx *ctx = NULL;

	if (o->method == DRV_CA_NAR) {
		if (o->hash.algo == HASH_SHA256) {
			*ret = *nar;
			return 0;
		}
		ctx = hash_ctx_new(o->hash.algo);
		if (nar_dump_at(AT_FDCWD, real, hash_sink, ctx, err) < 0)
			return -1;
		hash_ctx_final(ctx, ret);
		return 0;
	}
	if (o->method == DRV_CA_FLAT || o->method == DRV_CA_TEXT) {
		cleanup_close int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		struct stat st;
		char buf[65536];
		ssize_t n;

		if (fd < 0 && (errno == ELOOP || errno == EISDIR))
			goto not_flat;
		if (fd < 0)
			return nib_error_errno(err, "cannot open '%s'", real);
		if (fstat(fd, &st) < 0)
			return nib_error_errno(err, "cannot stat '%s'", real);
		if (!S_ISREG(st.st_mode) || (st.st_mode & S_IXUSR))
			goto not_flat;
		ctx = hash_ctx_new(o->hash.algo);
		while ((n = read_upto(fd, buf, sizeof(buf))) > 0)
			hash_ctx_update(ctx, buf, (size_t)n);
		if (n < 0)
			return nib_error_errno(err, "cannot read '%s'", real);
		hash_ctx_final(ctx, ret);
		return 0;
	}
	return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
			     "fixed outputs hashed with method '%s' are not supported",
			     drv_ca_method_name(o->method));
not_flat:
	return nib_error_set(err, NIB_E_INVALID, 0,
			     "output '%s' should be a non-executable regular file, since its hash "
			     "is flat (outputHashMode is not 'recursive')",
			     o->path);
}

/* Outputs moved into place but not registered: invalid and locked by us, nobody else saw them. */
static void remove_outputs(char *const *dsts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cleanup_error struct nib_error *e = NULL;
		if (rm_rf_at(AT_FDCWD, dsts[i], &e) < 0)
			log_debug("cannot remove '%s': %s", dsts[i], e->msg);
	}
}

/*
 * Check, canonicalise, hash and scan the outputs and move them into place;
 * their sync starts in the background and job_commit_outputs registers
 * them.  In check mode nothing is moved or left pending.
 */
static int job_move_outputs(struct job *j, enum build_status *ret_status, struct nib_error **err)
{
	struct build_ctx *c = j->c;
	const struct goal *g = &c->goals[j->goal];
	const struct derivation *d = g->drv;
	struct id_range ids = { j->slot->first_uid, j->slot->first_gid,
				g->uid_range ? j->slot->nr_ids : 1 };
	size_t n_cand = strv_length(j->closure), n_out = d->n_outputs, moved = 0;
	cleanup_free char **cand = xcalloc(n_cand + n_out + 1, sizeof(char *));
	cleanup_free char **parts = xcalloc(n_cand + n_out + 1, sizeof(char *));
	cleanup_free struct store_path_info *infos = xcalloc(n_out + 1, sizeof(*infos));
	cleanup_strv char **srcs = xcalloc(n_out + 1, sizeof(char *));
	cleanup_strv char **dsts = xcalloc(n_out + 1, sizeof(char *));
	size_t sdlen = strlen(store_dir(c->store)) + 1;
	/* Without a sandbox, what the builder made is in the overlay's upper layer. */
	cleanup_free char *src_dir =
		g->unsandboxed ? xasprintf("%s/upper", j->output_dir) : xstrdup(j->output_dir);
	cleanup_close int dfd = -1;
	int r = -1;

	*ret_status = BUILD_FAILED;
	for (size_t i = 0; i < n_cand; i++)
		cand[i] = j->closure[i];
	for (size_t i = 0; i < n_out; i++)
		cand[n_cand + i] = d->outputs[i].path;
	for (size_t i = 0; i < n_cand + n_out; i++)
		parts[i] = xstrndup(cand[i] + sdlen, STORE_PATH_HASH_LEN);

	dfd = open(src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		nib_error_errno(err, "cannot open '%s'", src_dir);
		goto out;
	}
	for (size_t i = 0; i < n_out; i++) {
		const struct drv_output *o = &d->outputs[i];
		const char *base = o->path + sdlen;
		cleanup_strbuf struct strbuf what = STRBUF_INIT;
		struct stat st;

		srcs[i] = xasprintf("%s/%s", src_dir, base);
		dsts[i] = local_store_real_path(c->store, o->path);
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				nib_error_set(err, NIB_E_BUILD_FAILED, 0,
					      "builder for '%s' failed to produce output path for "
					      "output '%s' at '%s'",
					      g->drv_path, o->name, o->path);
			else
				nib_error_errno(err, "cannot stat '%s'", srcs[i]);
			goto out;
		}
		strbuf_addstr(&what, o->path);
		if (check_tree(dfd, base, &what, &ids, 0, err) < 0) {
			nib_error_prefix(err, "output '%s' of '%s' is rejected", o->name,
					 g->drv_path);
			goto out;
		}
	}
	for (size_t i = 0; i < n_out; i++) {
		const struct drv_output *o = &d->outputs[i];
		struct store_path_info *info = &infos[i];
		cleanup_free char **refs = xcalloc(n_cand + n_out + 1, sizeof(char *));
		struct refscan *rs;
		size_t nrefs = 0;

		/* Synced below, once it has its final name. */
		if (local_store_canonicalise_unsynced(c->store, srcs[i], err) < 0)
			goto out;
		rs = refscan_new(parts, n_cand + n_out, err);
		if (rs == NULL)
			goto out;
		if (nar_hash_at(AT_FDCWD, srcs[i], refscan_sink, rs, &info->nar_hash,
				&info->nar_size, err) < 0) {
			refscan_free(rs);
			goto out;
		}
		for (size_t k = 0; k < n_cand + n_out; k++)
			if (refscan_found(rs, k))
				refs[nrefs++] = cand[k];
		refscan_free(rs);
		info->path = o->path;
		info->deriver = g->drv_path;
		info->ultimate = true;
		info->references = strv_copy(refs);
		if (g->fixed) {
			struct hash got;
			cleanup_free char *b32 = NULL;

			if (nrefs > 0) {
				nib_error_set(err, NIB_E_BUILD_FAILED, 0,
					      "illegal path references in fixed-output derivation "
					      "'%s': '%s'",
					      g->drv_path, refs[0]);
				goto out;
			}
			if (fixed_output_hash(o, srcs[i], &info->nar_hash, &got, err) < 0)
				goto out;
			if (!hash_equal(&got, &o->hash)) {
				cleanup_free char *want_s =
					hash_to_string(&o->hash, HASH_ENC_SRI, true);
				cleanup_free char *got_s = hash_to_string(&got, HASH_ENC_SRI, true);
				*ret_status = BUILD_HASH_MISMATCH;
				nib_error_set(err, NIB_E_BUILD_FAILED, 0,
					      "hash mismatch in fixed-output derivation '%s':\n"
					      "  specified: %s\n"
					      "     got:    %s",
					      g->drv_path, want_s, got_s);
				goto out;
			}
			b32 = hash_to_string(&got, HASH_ENC_BASE32, false);
			info->ca = xasprintf("fixed:%s%s:%s", o->method == DRV_CA_NAR ? "r:" : "",
					     hash_algo_name(got.algo), b32);
		}
	}
	if (g->check) {
		/* Compare with what is registered; keep nothing of the rebuild. */
		for (size_t i = 0; i < n_out; i++) {
			struct store_path_info reg = { 0 };
			int v = store_query_path_info(c->store, d->outputs[i].path, &reg, err);
			bool same = v > 0 && hash_equal(&reg.nar_hash, &infos[i].nar_hash) &&
				    reg.nar_size == infos[i].nar_size;

			store_path_info_release(&reg);
			if (v < 0)
				goto out;
			if (!same) {
				*ret_status = BUILD_NOT_DETERMINISTIC;
				nib_error_set(
					err, NIB_E_BUILD_FAILED, 0,
					"derivation '%s' may not be deterministic: output '%s' "
					"differs",
					g->drv_path, d->outputs[i].path);
				goto out;
			}
		}
		r = 0;
		goto out;
	}
	if (build_env_check_outputs(c->store, g->drv_path, d, infos, err) < 0)
		goto out;
	/* The outputs were locked and invalid: whatever is at their place is garbage. */
	for (moved = 0; moved < n_out; moved++) {
		if (rm_rf_at(AT_FDCWD, dsts[moved], err) < 0)
			goto out;
		if (rename(srcs[moved], dsts[moved]) < 0) {
			nib_error_errno(err, "cannot move '%s' to '%s'", srcs[moved], dsts[moved]);
			goto out;
		}
	}
	/*
	 * Contents and names durable before the registration is, the store
	 * directory once: synced while the caller releases the slot.
	 */
	j->out_sync = local_store_sync_start(c->store, dsts, n_out, true);
	j->out_infos = TAKE_PTR(infos);
	j->out_dsts = TAKE_PTR(dsts);
	j->n_out = n_out;
	r = 0;
out:
	if (r < 0)
		remove_outputs(dsts, moved);
	for (size_t i = 0; i < n_cand + n_out; i++)
		free(parts[i]);
	output_infos_release(infos, n_out);
	return r;
}

/*
 * Register the outputs job_move_outputs moved into place, once they are
 * synced, together with the build's record (filled in for success).
 */
static int job_commit_outputs(struct job *j, struct nib_error **err)
{
	int r = local_store_sync_finish(TAKE_PTR(j->out_sync), err);

	if (r == 0)
		r = local_store_register_build(j->c->store, j->out_infos, j->n_out, &j->rec, err);
	if (r < 0)
		remove_outputs(j->out_dsts, j->n_out);
	job_drop_pending_outputs(j);
	return r;
}

/* ---- finishing a build ---- */

/* Read the sandbox's setup report if that has not happened yet (blocks until it is there). */
static void job_spawned(struct job *j)
{
	cleanup_error struct nib_error *e = NULL;

	if (sandbox_report_fd(j->sb) < 0)
		return;
	if (sandbox_spawn_finish(j->sb, &e) < 0)
		j->setup_error = xstrdup(e->msg);
}

static void drain_log(struct job *j)
{
	uint64_t deadline = now_monotonic_usec() + 5 * 1000 * 1000;

	/* Every writer is dead by now, so EOF comes; the deadline is only a guard. */
	while (job_read_log(j)) {
		struct pollfd p = { .fd = j->log_fd, .events = POLLIN };
		uint64_t now = now_monotonic_usec();
		if (now >= deadline) {
			close(j->log_fd);
			j->log_fd = -1;
			break;
		}
		(void)poll(&p, 1, (int)((deadline - now) / 1000) + 1);
	}
	if (j->line.len > 0) {
		emit_line(j, j->line.buf, j->line.len);
		strbuf_reset(&j->line);
	}
}

static char *describe_exit(const char *drv_path, int status)
{
	if (WIFEXITED(status))
		return xasprintf("builder for '%s' failed with exit code %d", drv_path,
				 WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return xasprintf("builder for '%s' failed due to signal %d (%s)", drv_path,
				 WTERMSIG(status), strsignal(WTERMSIG(status)));
	return xasprintf("builder for '%s' failed with wait status %d", drv_path, status);
}

static void report_job(struct build_ctx *c, struct job *j)
{
	const struct goal *g = &c->goals[j->goal];
	const struct derivation *d = g->drv;
	cleanup_strv char **names = xcalloc(1, sizeof(char *));
	cleanup_strv char **paths = xcalloc(1, sizeof(char *));
	cleanup_strv char **tail = NULL;
	struct build_result r = { 0 };

	if (c->cb == NULL || c->cb->result == NULL)
		return;
	for (size_t i = 0; i < d->n_outputs; i++) {
		strv_push(&names, d->outputs[i].name);
		strv_push(&paths, d->outputs[i].path);
	}
	r.drv_path = g->drv_path;
	r.name = g->name;
	r.status = j->status;
	r.error = j->error;
	r.n_outputs = d->n_outputs;
	r.output_names = names;
	r.output_paths = paths;
	r.start_usec = j->start_real;
	r.stop_usec = j->stop_real;
	r.cpu_user_usec = j->rec.cpu_user_usec;
	r.cpu_system_usec = j->rec.cpu_system_usec;
	r.peak_memory = j->rec.peak_memory;
	r.wait_status = j->exited ? j->wait_status : -1;
	r.slot = j->rec.slot;
	r.uid_start = j->rec.uid_start;
	r.uid_count = j->rec.uid_count;
	r.sandboxed = (int)j->rec.sandboxed;
	r.log_path = j->log_path;
	r.kept_build_dir = j->kept_dir;
	if (j->status != BUILD_BUILT) {
		tail = tail_lines(j);
		r.log_tail = tail;
		r.n_log_tail = strv_length(tail);
	}
	c->cb->result(c->cb->userdata, &r);
}

/* keep-failed: move the build directory out of the slot's way and say where. */
static void keep_build_dir(struct job *j)
{
	struct build_ctx *c = j->c;
	const struct goal *g = &c->goals[j->goal];
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *kept = xasprintf("%s/nib-failed-%s-XXXXXX", c->build_dir, g->name);

	if (mkdtemp(kept) == NULL) {
		log_debug("cannot keep the build directory of '%s': %s", g->drv_path,
			  strerror(errno));
		return;
	}
	if (rename(j->top_dir, kept) < 0) {
		log_debug("cannot keep the build directory of '%s': %s", g->drv_path,
			  strerror(errno));
		rmdir(kept);
		return;
	}
	if (uid_pool_slot_set_info(j->slot, UID_POOL_KEY_BUILD_DIR, NULL, &e) < 0)
		log_debug("cannot update the slot record: %s", e->msg);
	j->kept_dir = xasprintf("%s/build", kept);
	say(c, g->drv_path, "keeping build directory '%s'", j->kept_dir);
}

/* The build record as the build ended (status from j->status). */
static void job_fill_record(struct job *j)
{
	const struct goal *g = &j->c->goals[j->goal];

	free(j->rec.status);
	j->rec.status = xstrdup(build_status_name(j->status));
	j->rec.end_usec = j->stop_real;
	j->rec.exit_status = j->exited ? j->wait_status : -1;
	strv_free(j->rec.output_names);
	strv_free(j->rec.output_paths);
	j->rec.output_names = xcalloc(1, sizeof(char *));
	j->rec.output_paths = xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < g->drv->n_outputs; i++) {
		strv_push(&j->rec.output_names, g->drv->outputs[i].name);
		strv_push(&j->rec.output_paths, g->drv->outputs[i].path);
	}
	free(j->rec.log_path);
	j->rec.log_path = j->log_path ? xstrdup(j->log_path) : NULL;
}

static void job_finish(struct build_ctx *c, struct job *j)
{
	const struct goal *g = &c->goals[j->goal];
	cleanup_error struct nib_error *e = NULL;
	cleanup_error struct nib_error *cleanup_err = NULL;
	size_t idx = j->goal;
	bool recorded = false;

	job_spawned(j);
	if (j->setup_error == NULL && !j->exited &&
	    sandbox_wait(j->sb, true, &j->wait_status, &j->ru, &e) > 0)
		j->exited = true;
	nib_error_clear(&e);
	j->stop_real = (int64_t)now_realtime_usec();
	if (j->cg != NULL) {
		if (cgroup_build_stats(j->cg, &j->stats, &e) == 0)
			j->have_stats = true;
		nib_error_clear(&e);
		/* Nothing of the build may run on while its outputs are inspected. */
		if (cgroup_build_kill(j->cg, &cleanup_err) < 0)
			nib_error_prefix(&cleanup_err, "cleaning up after '%s'", g->drv_path);
	}
	/* Without a PID namespace, the builder's descendants outlive it: kill them by UID. */
	if (g->unsandboxed && cleanup_err == NULL &&
	    uid_pool_slot_kill_procs(j->slot, NULL, &cleanup_err) < 0)
		nib_error_prefix(&cleanup_err, "cleaning up after '%s'", g->drv_path);
	drain_log(j);

	j->rec.cpu_user_usec =
		j->have_stats && j->stats.have_cpu
			? (int64_t)j->stats.cpu_user_usec
			: (int64_t)j->ru.ru_utime.tv_sec * 1000000 + j->ru.ru_utime.tv_usec;
	j->rec.cpu_system_usec =
		j->have_stats && j->stats.have_cpu
			? (int64_t)j->stats.cpu_system_usec
			: (int64_t)j->ru.ru_stime.tv_sec * 1000000 + j->ru.ru_stime.tv_usec;
	j->rec.peak_memory = j->have_stats && j->stats.have_memory_peak
				     ? (int64_t)j->stats.memory_peak
				     : (int64_t)j->ru.ru_maxrss * 1024;

	if (j->setup_error != NULL) {
		j->status = BUILD_FAILED;
		j->error = xasprintf("cannot start the builder of '%s': %s", g->drv_path,
				     j->setup_error);
	} else if (j->kill_reason != NULL) {
		j->status = j->kill_status;
		j->error = xasprintf("building '%s' %s", g->drv_path, j->kill_reason);
	} else if (!j->exited) {
		j->status = BUILD_FAILED;
		j->error = xasprintf("cannot collect the builder of '%s'", g->drv_path);
	} else if (!WIFEXITED(j->wait_status) || WEXITSTATUS(j->wait_status) != 0) {
		j->status = BUILD_FAILED;
		j->error = describe_exit(g->drv_path, j->wait_status);
		if (j->have_stats && j->stats.oom_kills > 0) {
			char *more =
				xasprintf("%s (out of memory: build-memory-max is %llu bytes)",
					  j->error, (unsigned long long)c->s->build_memory_max);
			free(j->error);
			j->error = more;
		}
	} else if (cleanup_err != NULL) {
		/* Something of the build survived: its outputs cannot be trusted. */
		j->status = BUILD_FAILED;
		j->error = xstrdup(cleanup_err->msg);
	} else {
		enum build_status st;
		if (job_move_outputs(j, &st, &e) < 0) {
			j->status = st;
			j->error = xstrdup(e->msg);
			nib_error_clear(&e);
		} else {
			j->status = BUILD_BUILT;
		}
	}

	if (j->log != NULL) {
		struct archive_log *log = j->log;
		j->log = NULL;
		/* Logs are not synced (nor are Nix's): losing one to a crash is harmless. */
		if (archive_log_commit(log, false, &e) < 0) {
			log_debug("cannot store the log of '%s': %s", g->drv_path, e->msg);
			nib_error_clear(&e);
			free(j->log_path);
			j->log_path = NULL;
		}
	} else if (j->log_path != NULL) {
		free(j->log_path);
		j->log_path = NULL;
	}

	/*
	 * While the outputs are synced: the log was stored above, and the slot is released first (its
	 * directories removed, its cgroup destroyed), unless keep-failed may
	 * still want the build directory should the registration fail.
	 */
	if (j->out_sync != NULL && !c->s->keep_failed) {
		if (job_release(j, &e) < 0)
			say(c, g->drv_path, "%s", e->msg);
		nib_error_clear(&e);
	}
	if (j->out_infos != NULL) {
		job_fill_record(j);
		if (job_commit_outputs(j, &e) < 0) {
			j->status = BUILD_FAILED;
			j->error = xstrdup(e->msg);
			nib_error_clear(&e);
		} else {
			recorded = true;
		}
	}
	if (!recorded) {
		job_fill_record(j);
		if (store_build_record_add(c->store, &j->rec, &e) < 0)
			log_debug("cannot record the build of '%s': %s", g->drv_path, e->msg);
		nib_error_clear(&e);
	}

	if (j->status != BUILD_BUILT && c->s->keep_failed)
		keep_build_dir(j);
	if (job_release(j, &e) < 0)
		say(c, g->drv_path, "%s", e->msg);
	nib_error_clear(&e);

	c->goals[idx].status = j->status;
	c->goals[idx].state = GOAL_DONE;
	if (j->error != NULL)
		c->goals[idx].error = xstrdup(j->error);
	if (j->status == BUILD_BUILT)
		c->n_built++;
	else
		c->n_failed++;
	report_job(c, j);
	goal_finished(c, idx);
}

/* ---- the scheduler ---- */

static void jobs_remove(struct build_ctx *c, size_t i)
{
	memmove(&c->jobs[i], &c->jobs[i + 1], (c->n_jobs - i - 1) * sizeof(*c->jobs));
	c->n_jobs--;
	c->running--;
}

static void goal_failed_to_start(struct build_ctx *c, size_t idx, struct nib_error *e)
{
	struct goal *g = &c->goals[idx];

	g->state = GOAL_DONE;
	g->status = BUILD_FAILED;
	g->error = xstrdup(e->msg);
	c->n_failed++;
	report_simple(c, g);
	goal_finished(c, idx);
}

static void start_ready(struct build_ctx *c)
{
	c->retry_pending = false;
	for (size_t i = 0; i < c->n_goals && !c->stop && !c->cancelled; i++) {
		cleanup_error struct nib_error *e = NULL;
		struct job *j = NULL;
		int r;

		if (c->goals[i].state != GOAL_READY)
			continue;
		if ((int64_t)c->n_jobs >= c->max_jobs)
			break;
		r = job_start(c, i, &j, &e);
		if (r == 0) {
			c->retry_pending = true;
			break;
		}
		if (r == 2) {
			c->goals[i].state = GOAL_DONE;
			if (c->goals[i].requested)
				report_simple(c, &c->goals[i]);
			c->n_built++;
			goal_finished(c, i);
			continue;
		}
		if (r < 0) {
			if (cancel_requested(c))
				break;
			goal_failed_to_start(c, i, e);
			continue;
		}
		c->goals[i].state = GOAL_RUNNING;
		c->goals[i].job = j;
		ALLOC_GROW(c->jobs, c->n_jobs + 1, c->alloc_jobs);
		c->jobs[c->n_jobs++] = j;
		c->running++;
		c->said_waiting = false;
		report_progress(c);
	}
	/* Ready goals not tried now wait for their turn (max-jobs, or a retry). */
	for (size_t i = 0; i < c->n_goals; i++)
		if (c->goals[i].state == GOAL_READY && c->goals[i].wait == BUILD_WAIT_NONE)
			goal_wait(c, i, BUILD_WAIT_JOB);
	queue_sync(c);
}

/* Kill builds that ran out of time; return the nearest deadline (0 = none). */
static uint64_t check_deadlines(struct build_ctx *c, uint64_t now)
{
	const struct settings *s = c->s;
	uint64_t next = 0;

	for (size_t i = 0; i < c->n_jobs; i++) {
		struct job *j = c->jobs[i];
		uint64_t t;

		if (j->kill_reason != NULL)
			continue;
		if (s->timeout > 0) {
			t = j->start_mono + (uint64_t)s->timeout * 1000000;
			if (now >= t) {
				job_kill(j, BUILD_TIMED_OUT,
					 xasprintf("timed out after %lld seconds",
						   (long long)s->timeout));
				continue;
			}
			if (next == 0 || t < next)
				next = t;
		}
		if (s->max_silent_time > 0) {
			t = j->last_output_mono + (uint64_t)s->max_silent_time * 1000000;
			if (now >= t) {
				job_kill(j, BUILD_TIMED_OUT,
					 xasprintf("timed out after %lld seconds of silence",
						   (long long)s->max_silent_time));
				continue;
			}
			if (next == 0 || t < next)
				next = t;
		}
	}
	return next;
}

static void finish_job_at(struct build_ctx *c, size_t i)
{
	struct job *j = c->jobs[i];

	jobs_remove(c, i);
	c->goals[j->goal].job = NULL;
	job_finish(c, j);
	job_free(j);
	report_progress(c);
}

/* One round of waiting: logs, exits, deadlines, cancellation. */
static void wait_events(struct build_ctx *c)
{
	cleanup_free struct pollfd *pfds = xcalloc(3 * c->n_jobs + 1, sizeof(*pfds));
	cleanup_free int *owner = xcalloc(3 * c->n_jobs + 1, sizeof(int));
	uint64_t now = now_monotonic_usec(), next = check_deadlines(c, now);
	int timeout = -1, n = 0;
	bool polling_exit = false;

	if (c->opts->cancel_fd >= 0) {
		pfds[n].fd = c->opts->cancel_fd;
		pfds[n].events = POLLIN;
		owner[n++] = -1;
	}
	for (size_t i = 0; i < c->n_jobs; i++) {
		struct job *j = c->jobs[i];
		int pidfd = sandbox_pidfd(j->sb);

		if (sandbox_report_fd(j->sb) >= 0) {
			pfds[n].fd = sandbox_report_fd(j->sb);
			pfds[n].events = POLLIN;
			owner[n++] = (int)i;
		}
		if (j->log_fd >= 0) {
			pfds[n].fd = j->log_fd;
			pfds[n].events = POLLIN;
			owner[n++] = (int)i;
		}
		if (pidfd >= 0) {
			pfds[n].fd = pidfd;
			pfds[n].events = POLLIN;
			owner[n++] = (int)i;
		} else {
			polling_exit = true;
		}
	}
	if (next != 0)
		timeout = next > now ? (int)((next - now + 999) / 1000) : 0;
	if (polling_exit && (timeout < 0 || timeout > 20))
		timeout = 20;
	if (c->retry_pending && (timeout < 0 || timeout > RETRY_USEC / 1000))
		timeout = RETRY_USEC / 1000;
	if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR)
		log_debug("poll failed: %s", strerror(errno));

	for (int k = 0; k < n; k++) {
		if (pfds[k].revents == 0)
			continue;
		if (owner[k] < 0) {
			c->cancelled = true;
			continue;
		}
		if (pfds[k].fd == c->jobs[owner[k]]->log_fd)
			job_read_log(c->jobs[owner[k]]);
		else if (pfds[k].fd == sandbox_report_fd(c->jobs[owner[k]]->sb))
			job_spawned(c->jobs[owner[k]]);
	}
	/* Exits, newest last: removing an entry shifts the ones after it. */
	for (size_t i = c->n_jobs; i-- > 0;) {
		struct job *j = c->jobs[i];
		cleanup_error struct nib_error *e = NULL;

		if (j->setup_error != NULL) {
			finish_job_at(c, i);
			continue;
		}
		/* Not before its setup report: a child that failed setup is reaped by that. */
		if (sandbox_report_fd(j->sb) >= 0 ||
		    sandbox_wait(j->sb, false, &j->wait_status, &j->ru, &e) == 0)
			continue;
		j->exited = e == NULL;
		finish_job_at(c, i);
	}
	check_deadlines(c, now_monotonic_usec());
}

static void cancel_all(struct build_ctx *c)
{
	for (size_t i = 0; i < c->n_jobs; i++)
		job_kill(c->jobs[i], BUILD_CANCELLED, xstrdup("was interrupted"));
	while (c->n_jobs > 0) {
		struct job *j = c->jobs[c->n_jobs - 1];
		cleanup_error struct nib_error *e = NULL;
		job_spawned(j);
		if (j->setup_error == NULL &&
		    sandbox_wait(j->sb, true, &j->wait_status, &j->ru, &e) > 0)
			j->exited = true;
		finish_job_at(c, c->n_jobs - 1);
	}
}

static bool any_ready(const struct build_ctx *c)
{
	for (size_t i = 0; i < c->n_goals; i++)
		if (c->goals[i].state == GOAL_READY)
			return true;
	return false;
}

static void run_loop(struct build_ctx *c)
{
	for (;;) {
		if (cancel_requested(c)) {
			cancel_all(c);
			return;
		}
		if (!c->stop)
			start_ready(c);
		tokens_flush(c);
		/*
		 * The derivations this process added last (local_store_batch_end_async)
		 * are committed once the first builders run, before anything waits.
		 * If that fails they are not in the store after all: stop everything.
		 */
		if (local_store_settle(c->store, &c->settle_err) < 0) {
			c->stop = true;
			cancel_all(c);
			return;
		}
		/* While the builders run: keep the WAL short for the next process to open the store. */
		if (c->n_jobs > 0)
			local_store_checkpoint_background(c->store);
		if (c->cancelled)
			continue;
		if (c->n_jobs == 0 && (c->stop || !any_ready(c)))
			return;
		wait_events(c);
	}
}

/* ---- setting up ---- */

/* sandbox-paths, parsed once per call, with the closures of the store paths among them. */
static int setup_extra_binds(struct build_ctx *c, struct nib_error **err)
{
	const char *real_store = local_store_real_dir(c->store);
	size_t rlen = strlen(real_store), alloc = 0;
	cleanup_strv char **roots = xcalloc(1, sizeof(char *));

	c->extra_strings = xcalloc(1, sizeof(char *));
	for (char **e = c->s->sandbox_paths; e != NULL && *e != NULL; e++) {
		cleanup_free char *target = NULL, *source = NULL;
		unsigned flags = 0;

		if (sandbox_parse_path(*e, &target, &source, &flags, err) < 0)
			return nib_error_prefix(err, "setting 'sandbox-paths'");
		/* A store path as a source: its closure must be visible too. */
		if (strncmp(source, real_store, rlen) == 0 && source[rlen] == '/') {
			cleanup_free char *logical =
				xasprintf("%s%s", store_dir(c->store), source + rlen);
			cleanup_free char *top = NULL;
			cleanup_error struct nib_error *e2 = NULL;
			if (store_parse_path(c->store, logical, true, &top, &e2) == 0)
				strv_push(&roots, top);
		}
		ALLOC_GROW(c->extra_binds, c->n_extra_binds + 1, alloc);
		strv_push(&c->extra_strings, target);
		strv_push(&c->extra_strings, source);
		c->extra_binds[c->n_extra_binds].flags = flags;
		c->n_extra_binds++;
	}
	if (roots[0] != NULL) {
		if (store_query_closure(c->store, roots, strv_length(roots), 0, &c->extra_closure,
					err) < 0)
			return nib_error_prefix(err, "setting 'sandbox-paths'");
		for (char **p = c->extra_closure; *p != NULL; p++) {
			cleanup_free char *real = local_store_real_path(c->store, *p);
			ALLOC_GROW(c->extra_binds, c->n_extra_binds + 1, alloc);
			strv_push(&c->extra_strings, *p);
			strv_push(&c->extra_strings, real);
			c->extra_binds[c->n_extra_binds].flags = 0;
			c->n_extra_binds++;
		}
	}
	/* The strings are in place now (the vector no longer moves). */
	for (size_t i = 0; i < c->n_extra_binds; i++) {
		c->extra_binds[i].target = c->extra_strings[2 * i];
		c->extra_binds[i].source = c->extra_strings[2 * i + 1];
	}
	return 0;
}

static int ensure_dir(const char *path, mode_t mode, bool exact, struct nib_error **err)
{
	struct stat st;

	if (mkdir_p(path, mode, err) < 0)
		return -1;
	if (lstat(path, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0)
		return nib_error_set(err, NIB_E_CONFIG, 0, "'%s' must be a directory owned by root",
				     path);
	if (exact && (st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return nib_error_errno(err, "cannot set the mode of '%s'", path);
	if (!exact && (st.st_mode & S_IWOTH))
		return nib_error_set(err, NIB_E_CONFIG, 0, "'%s' must not be world-writable", path);
	return 0;
}

/*
 * sandbox_check_available() clones a probe into new namespaces (about a
 * millisecond, most of it the network namespace), which every `nib build`
 * process would pay.  Its verdict holds until the kernel's configuration
 * changes, so a success is remembered for the running boot in
 * <build-dir>/.sandbox-checked (the boot id); the cheap sysctl is read again
 * every time.  A sandbox that stops working later still fails in
 * sandbox_spawn with its own error: the remembered verdict never lets a
 * build run unsandboxed.
 */
static int check_sandbox(struct build_ctx *c, struct nib_error **err)
{
	cleanup_free char *marker = xasprintf("%s/.sandbox-checked", c->build_dir);
	cleanup_free char *boot = NULL, *seen = NULL, *max = NULL;
	cleanup_error struct nib_error *e = NULL;

	if (sandbox_checked)
		return 0;
	if (read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 64, &boot, NULL, &e) == 0 &&
	    read_file_at(AT_FDCWD, marker, 64, &seen, NULL, &e) == 0 && STREQ(boot, seen) &&
	    read_file_at(AT_FDCWD, "/proc/sys/user/max_user_namespaces", 64, &max, NULL, &e) == 0 &&
	    !STARTS_WITH(max, "0\n") && sandbox_drop_groups(NULL) == 0) {
		sandbox_checked = 1;
		return 0;
	}
	if (sandbox_check_available(err) < 0)
		return -1;
	sandbox_checked = 1;
	nib_error_clear(&e);
	if (boot != NULL &&
	    write_file_atomic_at(AT_FDCWD, marker, boot, strlen(boot), 0644, false, &e) < 0)
		log_debug("cannot remember the sandbox check: %s", e->msg);
	return 0;
}

static int setup(struct build_ctx *c, bool need_sandbox, struct nib_error **err)
{
	const struct settings *s = c->s;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	/* Made meanwhile by prep_main; collected before the first slot is taken. */
	prep_start(s);
	c->cores = s->cores > 0 ? (unsigned long)s->cores : (ncpu > 0 ? (unsigned long)ncpu : 1);
	c->build_dir = s->build_dir != NULL && s->build_dir[0] != '\0'
			       ? xstrdup(s->build_dir)
			       : xasprintf("%s/builds", s->state_dir);
	c->root_dir = xasprintf("%s/.sandbox-root", c->build_dir);
	c->outputs_dir = xasprintf("%s/.nib-builds", local_store_real_dir(c->store));

	/* Temporary directories must not be reachable by the builders of other slots. */
	if (ensure_dir(c->build_dir, 0755, false, err) < 0 ||
	    ensure_dir(c->root_dir, 0755, true, err) < 0 ||
	    ensure_dir(c->outputs_dir, 0700, true, err) < 0)
		return -1;
	/* Unsandboxed builds only unshare a mount namespace, and say so if they cannot. */
	if (need_sandbox && check_sandbox(c, err) < 0)
		return -1;
	if (setup_extra_binds(c, err) < 0)
		return -1;
	c->pool = uid_pool_open(s, NULL, err);
	if (c->pool == NULL)
		return -1;
	return 0;
}

static void ctx_release(struct build_ctx *c)
{
	for (size_t i = 0; i < c->n_goals; i++) {
		struct goal *g = &c->goals[i];
		free(g->drv_path);
		free(g->name);
		derivation_free(g->drv);
		strv_free(g->input_paths);
		free(g->deps);
		free(g->rdeps);
		free(g->error);
	}
	free(c->goals);
	free(c->map.slots);
	drv_hasher_free(c->hasher);
	free(c->jobs);
	tokens_flush(c);
	free(c->kept_tokens);
	uid_pool_close(c->pool);
	free(c->build_dir);
	free(c->root_dir);
	free(c->outputs_dir);
	build_queue_close(c->queue);
	free(c->extra_binds);
	strv_free(c->extra_strings);
	strv_free(c->extra_closure);
}

static bool failed_itself(enum build_status s)
{
	return s == BUILD_FAILED || s == BUILD_TIMED_OUT || s == BUILD_LOG_LIMIT ||
	       s == BUILD_HASH_MISMATCH || s == BUILD_UNSUPPORTED || s == BUILD_NOT_DETERMINISTIC;
}

/* After the loop: what never ran, and the overall outcome. */
static int conclude(struct build_ctx *c, struct nib_error **err)
{
	size_t n_direct = 0, first = 0;

	for (size_t i = 0; i < c->n_goals; i++) {
		struct goal *g = &c->goals[i];
		if (g->build && g->state != GOAL_DONE) {
			g->state = GOAL_DONE;
			g->status = BUILD_CANCELLED;
			g->error =
				c->cancelled
					? xasprintf("building '%s' was interrupted", g->drv_path)
					: xasprintf("'%s' was not built because another build "
						    "failed (use --keep-going to build the rest)",
						    g->drv_path);
			report_simple(c, g);
		}
		if (failed_itself(g->status) && n_direct++ == 0)
			first = i;
	}
	if (c->cancelled)
		return nib_error_set(err, NIB_E_BUILD_FAILED, 0, "interrupted");
	if (n_direct == 1)
		return nib_error_set(err, NIB_E_BUILD_FAILED, 0, "%s", c->goals[first].error);
	if (n_direct > 1)
		return nib_error_set(err, NIB_E_BUILD_FAILED, 0, "%zu derivations failed to build",
				     n_direct);
	for (size_t i = 0; i < c->n_goals; i++)
		if (c->goals[i].requested && c->goals[i].status != BUILD_BUILT &&
		    c->goals[i].status != BUILD_VALID)
			return nib_error_set(err, NIB_E_BUILD_FAILED, 0, "%s",
					     c->goals[i].error ? c->goals[i].error
							       : "build failed");
	return 0;
}

/* build_derivations, or with inline_drv the build of that one derivation (drv_paths[0]). */
static int build_common(struct store *store, const struct settings *settings,
			char *const *drv_paths, size_t n, const struct derivation *inline_drv,
			bool trust_outputs, const struct build_options *opts,
			const struct build_callbacks *cb, struct nib_error **err)
{
	struct build_options defaults;
	struct build_ctx c = { 0 };
	int r = -1;

	if (opts == NULL) {
		build_options_init(&defaults);
		opts = &defaults;
	}
	if (!store_is_local(store))
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0, "building needs the local store");
	c.store = store;
	c.s = settings;
	c.opts = opts;
	c.cb = cb;
	c.max_jobs = opts->max_jobs > 0 ? opts->max_jobs : settings->max_jobs;
	if (c.max_jobs < 1)
		c.max_jobs = 1;

	for (size_t i = 0; i < n; i++) {
		cleanup_free char *p = NULL;
		size_t idx;
		bool valid;

		if (store_parse_path(store, drv_paths[i], false, &p, err) < 0)
			goto out;
		if ((inline_drv != NULL
			     ? goal_load_inline(&c, p, inline_drv, trust_outputs, &idx, err)
			     : goal_load(&c, p, &idx, err)) < 0)
			goto out;
		c.goals[idx].requested = true;
		if (outputs_valid(&c, idx, NULL, NULL, &valid, err) < 0)
			goto out;
		if (opts->check && !valid && !c.goals[idx].build) {
			/* Nothing to compare with: refused like a derivation this machine cannot build. */
			struct goal *g = &c.goals[idx];
			g->build = true;
			g->status = BUILD_UNSUPPORTED;
			g->error = xasprintf("some outputs of '%s' are not valid, so checking is "
					     "not possible",
					     g->drv_path);
			c.n_to_build++;
			continue;
		}
		/* (Not valid but needed by an earlier one: built, not checked.) */
		c.goals[idx].check = opts->check && valid;
		if ((!valid || opts->check) && goal_require(&c, idx, 0, err) < 0)
			goto out;
	}

	/* Nothing is prepared when nothing will run: all valid, or refused before anything runs. */
	{
		size_t runnable = 0, refused = 0;
		bool need_sandbox = false;
		for (size_t i = 0; i < c.n_goals; i++) {
			if (c.goals[i].build && c.goals[i].status == BUILD_UNSUPPORTED)
				refused++;
			else if (c.goals[i].build)
				runnable++;
			if (c.goals[i].build && c.goals[i].status != BUILD_UNSUPPORTED &&
			    !c.goals[i].unsandboxed)
				need_sandbox = true;
		}
		if (runnable > 0 && (refused == 0 || opts->keep_going)) {
			if (geteuid() != 0) {
				nib_error_set(err, NIB_E_DENIED, 0,
					      "building needs root privileges (run as root, or "
					      "through the daemon)");
				goto out;
			}
			if (setup(&c, need_sandbox, err) < 0)
				goto out;
		}
	}

	/* Counts, readiness, and what cannot be built at all. */
	for (size_t i = 0; i < c.n_goals; i++) {
		struct goal *g = &c.goals[i];
		if (!g->build || g->state != GOAL_WAITING)
			continue;
		g->pending = g->n_deps;
		if (g->pending == 0)
			g->state = GOAL_READY;
	}
	for (size_t i = 0; i < c.n_goals; i++) {
		if (c.goals[i].status == BUILD_UNSUPPORTED) {
			c.n_failed++;
			report_simple(&c, &c.goals[i]);
			fail_dependents(&c, i);
			if (!opts->keep_going)
				c.stop = true;
		}
	}
	for (size_t i = 0; i < c.n_goals; i++)
		if (c.goals[i].requested && !c.goals[i].build)
			report_simple(&c, &c.goals[i]);
	report_progress(&c);

	if (!c.stop)
		run_loop(&c);
	r = conclude(&c, err);
out:
	if (prep.running) {
		/* Nothing was started (a failure, a cancel): collect the thread all the same. */
		cleanup_error struct nib_error *e = NULL;
		(void)prep_join(settings, &e);
	}
	/* Also when nothing ran: what was added is committed, or we say why not. */
	if (c.settle_err == NULL)
		(void)local_store_settle(store, &c.settle_err);
	if (c.settle_err != NULL) {
		/* Reported instead of what it caused (builds cancelled). */
		nib_error_clear(err);
		nib_error_move(err, &c.settle_err);
		r = -1;
	}
	ctx_release(&c);
	return r;
}

int build_derivations(struct store *store, const struct settings *settings, char *const *drv_paths,
		      size_t n, const struct build_options *opts, const struct build_callbacks *cb,
		      struct nib_error **err)
{
	return build_common(store, settings, drv_paths, n, NULL, false, opts, cb, err);
}

int build_derivation_inline(struct store *store, const struct settings *settings,
			    const char *drv_path, const struct derivation *drv, bool trust_outputs,
			    const struct build_options *opts, const struct build_callbacks *cb,
			    struct nib_error **err)
{
	char *const one[] = { (char *)drv_path, NULL };

	return build_common(store, settings, one, 1, drv, trust_outputs, opts, cb, err);
}

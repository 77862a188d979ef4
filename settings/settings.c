#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "settings.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

#ifndef SANDBOX_SHELL
#define SANDBOX_SHELL "/bin/busybox"
#endif

#define MAX_INCLUDE_DEPTH 16
#define MAX_SETTINGS_FILE_SIZE (1024 * 1024)

#define OFF(field) offsetof(struct settings, field)
#define I64MAX INT64_MAX

/*
 * The table.  Defaults are written in file syntax and parsed by the same code
 * as user input, so a default can never be a value the parser would reject.
 * "@system@" and "@features@" are filled in from the running machine.
 */
static const struct setting_desc table[] = {
	{ "store-dir", SETTING_PATH, OFF(store_dir), "/nib/store", 0, 0, false,
	  "Logical store directory: the prefix of every store path (use /nix/store for Nix's "
	  "paths)." },
	{ "store-root", SETTING_PATH, OFF(store_root), "", 0, 0, false,
	  "Physical prefix under which the store directory really lives (like Nix's local?root=); "
	  "empty for none." },
	{ "state-dir", SETTING_PATH, OFF(state_dir), "/nib/var/nib", 0, 0, false,
	  "Directory for the database, GC roots, UID slot locks and the daemon socket." },
	{ "log-dir", SETTING_PATH, OFF(log_dir), "/nib/var/log/nib", 0, 0, false,
	  "Directory where build logs are stored." },
	{ "daemon-socket", SETTING_PATH, OFF(daemon_socket), "", 0, 0, false,
	  "Path of the daemon's Unix socket; empty means <state-dir>/daemon-socket/socket." },
	{ "build-dir", SETTING_PATH, OFF(build_dir), "", 0, 0, false,
	  "Directory holding per-build temporary directories; empty means <state-dir>/builds." },
	{ "sandbox", SETTING_SANDBOX, OFF(sandbox), "true", 0, 0, false,
	  "true: every build in a sandbox (a derivation with __noChroot is refused); false: "
	  "builds run on the host as the slot's first UID (named nixbld in a private "
	  "/etc/passwd), writing the store through a private overlay; relaxed: only "
	  "derivations with __noChroot = \"1\" run as with false." },
	{ "sandbox-paths", SETTING_LIST, OFF(sandbox_paths), "/bin/sh=" SANDBOX_SHELL, 0, 0, false,
	  "Host paths made visible in every sandbox, as PATH or TARGET=SOURCE (SOURCE? when "
	  "optional)." },
	{ "impure-env", SETTING_LIST, OFF(impure_env), "", 0, 0, false,
	  "NAME=VALUE words: the value a fixed-output derivation gets for a variable NAME it lists "
	  "in impureEnvVars (else the value in the environment of the process that builds)." },
	{ "filter-syscalls", SETTING_BOOL, OFF(filter_syscalls), "true", 0, 0, false,
	  "Load the seccomp filter into builders (no setuid/setgid files, no extended "
	  "attributes)." },
	{ "use-cgroups", SETTING_BOOL, OFF(use_cgroups), "true", 0, 0, false,
	  "Give every build its own cgroup for accounting, limits and reliable killing." },
	{ "build-memory-max", SETTING_SIZE, OFF(build_memory_max), "0", 0, 0, false,
	  "Memory limit of one build (bytes, K/M/G suffixes); 0 for none." },
	{ "build-pids-max", SETTING_INT, OFF(build_pids_max), "0", 0, I64MAX, false,
	  "Maximum number of processes of one build; 0 for none." },
	{ "build-users-group", SETTING_STRING, OFF(build_users_group), "", 0, 0, false,
	  "Group whose members run builds when auto-allocate-uids is false." },
	{ "auto-allocate-uids", SETTING_BOOL, OFF(auto_allocate_uids), "true", 0, 0, false,
	  "Allocate a private range of UIDs/GIDs per build from the slot pool." },
	{ "start-id", SETTING_INT, OFF(start_id), "872415232", 1, 4294967294LL, false,
	  "First UID/GID of the slot pool." },
	{ "ids-per-build", SETTING_INT, OFF(ids_per_build), "262144", 1, 4294967294LL, false,
	  "UIDs/GIDs in one slot (2^18 lets uid-range builds run nested containers)." },
	{ "id-count", SETTING_INT, OFF(id_count), "33554432", 1, 4294967294LL, false,
	  "UIDs/GIDs in the whole pool; id-count / ids-per-build is the number of slots." },
	{ "max-jobs", SETTING_INT, OFF(max_jobs), "1", 0, 65536, true,
	  "Builds run at once (across all daemon clients); 'auto' for the number of CPUs." },
	{ "cores", SETTING_INT, OFF(cores), "0", 0, 65536, true,
	  "Value of NIX_BUILD_CORES for builders; 0 for the number of CPUs." },
	{ "max-silent-time", SETTING_INT, OFF(max_silent_time), "0", 0, I64MAX, true,
	  "Seconds a builder may go without output before it is killed; 0 for no limit." },
	{ "timeout", SETTING_INT, OFF(timeout), "0", 0, I64MAX, true,
	  "Seconds a build may run before it is killed; 0 for no limit." },
	{ "max-build-log-size", SETTING_SIZE, OFF(max_build_log_size), "0", 0, 0, true,
	  "Bytes of log a build may write before it is killed; 0 for no limit." },
	{ "keep-failed", SETTING_BOOL, OFF(keep_failed), "false", 0, 0, true,
	  "Keep the build directory of failed builds." },
	{ "keep-build-log", SETTING_BOOL, OFF(keep_build_log), "true", 0, 0, false,
	  "Store build logs under log-dir." },
	{ "compress-build-log", SETTING_BOOL, OFF(compress_build_log), "true", 0, 0, false,
	  "Compress stored build logs with bzip2." },
	{ "log-lines", SETTING_INT, OFF(log_lines), "25", 0, 100000, true,
	  "Lines of a failed build's log to show." },
	{ "system", SETTING_STRING, OFF(system), "@system@", 0, 0, false,
	  "The system type this machine builds for (e.g. x86_64-linux)." },
	{ "system-features", SETTING_LIST, OFF(system_features), "@features@", 0, 0, false,
	  "Features this machine offers to derivations' requiredSystemFeatures." },
	{ "trusted-users", SETTING_LIST, OFF(trusted_users), "root", 0, 0, false,
	  "Users (or @group) the daemon trusts: they may change any setting and release held "
	  "slots." },
	{ "allowed-users", SETTING_LIST, OFF(allowed_users), "*", 0, 0, false,
	  "Users (or @group, or *) allowed to connect to the daemon." },
	{ "max-connections", SETTING_INT, OFF(max_connections), "256", 1, 65536, false,
	  "Concurrent daemon connections; more are refused with an error." },
	{ "spare-connection-processes", SETTING_INT, OFF(spare_connection_processes), "2", 0, 64,
	  false,
	  "Connection processes nib-daemon keeps forked, with the store open, for the next "
	  "connections; 0 forks one when a connection arrives." },
	{ "fsync-metadata", SETTING_BOOL, OFF(fsync_metadata), "true", 0, 0, false,
	  "fsync store files and the database before registering paths." },
	{ "keep-outputs", SETTING_BOOL, OFF(keep_outputs), "false", 0, 0, false,
	  "The garbage collector keeps the outputs of live derivations." },
	{ "keep-derivations", SETTING_BOOL, OFF(keep_derivations), "true", 0, 0, false,
	  "The garbage collector keeps the derivations that produced live paths." },
};

#define N_SETTINGS ARRAY_SIZE(table)

/* Settings whose INT form also accepts the word "auto" (= online CPUs). */
static bool accepts_auto(const struct setting_desc *d)
{
	return d->offset == OFF(max_jobs);
}

const struct setting_desc *settings_table(size_t *ret_n)
{
	*ret_n = N_SETTINGS;
	return table;
}

const struct setting_desc *settings_find(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (STREQ(table[i].name, name))
			return &table[i];
	return NULL;
}

const char *settings_origin_name(enum setting_origin o)
{
	switch (o) {
	case ORIGIN_DEFAULT:
		return "default";
	case ORIGIN_FILE:
		return "file";
	case ORIGIN_INLINE:
		return "NIB_CONFIG";
	case ORIGIN_ENV:
		return "environment";
	case ORIGIN_CMDLINE:
		return "command line";
	case ORIGIN_CLIENT:
		return "client";
	default:
		return "unknown";
	}
}

static char *default_system(void)
{
	struct utsname u;
	const char *arch = "unknown";

	if (uname(&u) == 0)
		arch = u.machine;
	if (STREQ(arch, "i686") || STREQ(arch, "i586") || STREQ(arch, "i386"))
		arch = "i686";
	else if (STREQ(arch, "arm64"))
		arch = "aarch64";
	return xasprintf("%s-linux", arch);
}

static char *default_features(void)
{
	/* uid-range is always offered on Linux, as in Nix; kvm when usable. */
	if (access("/dev/kvm", R_OK | W_OK) == 0)
		return xstrdup("benchmark big-parallel uid-range kvm");
	return xstrdup("benchmark big-parallel uid-range");
}

static void *field(struct settings *s, const struct setting_desc *d)
{
	return (char *)s + d->offset;
}

static const void *cfield(const struct settings *s, const struct setting_desc *d)
{
	return (const char *)s + d->offset;
}

static char **split_words(const char *value)
{
	cleanup_free char *copy = xstrdup(value);
	char **v = xcalloc(1, sizeof(char *));
	char *save = NULL;

	for (char *w = strtok_r(copy, " \t\r\n", &save); w != NULL;
	     w = strtok_r(NULL, " \t\r\n", &save))
		strv_push(&v, w);
	return v;
}

static int bad_value(struct nib_error **err, const struct setting_desc *d, const char *value,
		     const char *why)
{
	return nib_error_set(err, NIB_E_INVALID, 0, "invalid value '%s' for setting '%s': %s",
			     value, d->name, why);
}

static int normalise_path(const struct setting_desc *d, const char *value, char **ret,
			  struct nib_error **err)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = value;

	if (*value == '\0') {
		*ret = xstrdup("");
		return 0;
	}
	if (*value != '/')
		return bad_value(err, d, value, "not an absolute path");
	while (*p != '\0') {
		const char *q;
		size_t n;
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		q = strchr(p, '/');
		n = q ? (size_t)(q - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			strbuf_release(&sb);
			return bad_value(err, d, value, "'.' and '..' components are not allowed");
		}
		strbuf_addch(&sb, '/');
		strbuf_add(&sb, p, n);
		p += n;
	}
	if (sb.len == 0)
		strbuf_addch(&sb, '/');
	if (sb.len >= PATH_MAX) {
		strbuf_release(&sb);
		return bad_value(err, d, value, "path too long");
	}
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Parse value for d into s.  append: "extra-" form. */
static int set_value(struct settings *s, const struct setting_desc *d, const char *value,
		     bool append, struct nib_error **err)
{
	void *f = field(s, d);

	if (append && d->type != SETTING_LIST)
		return nib_error_set(
			err, NIB_E_INVALID, 0,
			"setting '%s' is not a list, so 'extra-%s' cannot append to it", d->name,
			d->name);

	switch (d->type) {
	case SETTING_BOOL:
		if (STREQ(value, "true"))
			*(bool *)f = true;
		else if (STREQ(value, "false"))
			*(bool *)f = false;
		else
			return bad_value(err, d, value, "expected 'true' or 'false'");
		return 0;
	case SETTING_SANDBOX:
		if (STREQ(value, "true"))
			*(int *)f = SANDBOX_ON;
		else if (STREQ(value, "false"))
			*(int *)f = SANDBOX_OFF;
		else if (STREQ(value, "relaxed"))
			*(int *)f = SANDBOX_RELAXED;
		else
			return bad_value(err, d, value, "expected 'true', 'false' or 'relaxed'");
		return 0;
	case SETTING_INT: {
		int64_t v;
		int r;
		if (accepts_auto(d) && STREQ(value, "auto")) {
			*(int64_t *)f = online_cpus();
			return 0;
		}
		r = parse_i64(value, &v);
		if (r == -ERANGE)
			return bad_value(err, d, value, "number out of range");
		if (r < 0)
			return bad_value(err, d, value,
					 accepts_auto(d) ? "expected an integer or 'auto'"
							 : "expected an integer");
		if (v < d->min || v > d->max) {
			char why[96];
			snprintf(why, sizeof(why), "must be between %lld and %lld",
				 (long long)d->min, (long long)d->max);
			return bad_value(err, d, value, why);
		}
		*(int64_t *)f = v;
		return 0;
	}
	case SETTING_SIZE: {
		uint64_t v;
		int r = parse_size(value, &v);
		if (r == -ERANGE)
			return bad_value(err, d, value, "size out of range");
		if (r < 0)
			return bad_value(
				err, d, value,
				"expected a size in bytes, with an optional K, M, G or T suffix");
		*(uint64_t *)f = v;
		return 0;
	}
	case SETTING_STRING:
		if (strchr(value, '\n') != NULL)
			return bad_value(err, d, value, "newlines are not allowed");
		free(*(char **)f);
		*(char **)f = xstrdup(value);
		return 0;
	case SETTING_PATH: {
		char *p = NULL;
		if (normalise_path(d, value, &p, err) < 0)
			return -1;
		free(*(char **)f);
		*(char **)f = p;
		return 0;
	}
	case SETTING_LIST: {
		char **words = split_words(value);
		char ***cur = f;
		if (append) {
			for (char **w = words; *w != NULL; w++)
				strv_push(cur, *w);
			strv_free(words);
		} else {
			strv_free(*cur);
			*cur = words;
		}
		return 0;
	}
	default:
		abort();
	}
}

static void set_origin(struct settings *s, const struct setting_desc *d, enum setting_origin o,
		       const char *file)
{
	size_t i = (size_t)(d - table);

	s->origins[i] = o;
	free(s->origin_files[i]);
	s->origin_files[i] = file != NULL ? xstrdup(file) : NULL;
}

int settings_set(struct settings *s, const char *name, const char *value,
		 enum setting_origin origin, const char *file, struct nib_error **err)
{
	const struct setting_desc *d;
	bool append = false;

	if (STARTS_WITH(name, "extra-")) {
		append = true;
		name += strlen("extra-");
	}
	d = settings_find(name);
	if (d == NULL)
		return 1;
	if (set_value(s, d, value, append, err) < 0)
		return -1;
	set_origin(s, d, origin, file);
	return 0;
}

struct settings *settings_new(void)
{
	struct settings *s = xcalloc(1, sizeof(*s));
	cleanup_free char *sys = default_system();
	cleanup_free char *feat = default_features();

	s->origins = xcalloc(N_SETTINGS, sizeof(*s->origins));
	s->origin_files = xcalloc(N_SETTINGS, sizeof(*s->origin_files));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting_desc *d = &table[i];
		const char *def = d->def;
		cleanup_error struct nib_error *e = NULL;

		if (STREQ(def, "@system@"))
			def = sys;
		else if (STREQ(def, "@features@"))
			def = feat;
		if (set_value(s, d, def, false, &e) < 0)
			abort(); /* a default the parser rejects is a programmer error */
	}
	return s;
}

struct settings *settings_copy(const struct settings *src)
{
	struct settings *s = xcalloc(1, sizeof(*s));

	memcpy(s, src, sizeof(*s));
	s->origins = xmemdup(src->origins, N_SETTINGS * sizeof(*s->origins));
	s->origin_files = xcalloc(N_SETTINGS, sizeof(*s->origin_files));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting_desc *d = &table[i];
		if (src->origin_files[i])
			s->origin_files[i] = xstrdup(src->origin_files[i]);
		if (d->type == SETTING_STRING || d->type == SETTING_PATH)
			*(char **)field(s, d) = xstrdup(*(char *const *)cfield(src, d));
		else if (d->type == SETTING_LIST)
			*(char ***)field(s, d) = strv_copy(*(char **const *)cfield(src, d));
	}
	return s;
}

void settings_free(struct settings *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting_desc *d = &table[i];
		if (d->type == SETTING_STRING || d->type == SETTING_PATH)
			free(*(char **)field(s, d));
		else if (d->type == SETTING_LIST)
			strv_free(*(char ***)field(s, d));
		if (s->origin_files)
			free(s->origin_files[i]);
	}
	free(s->origins);
	free(s->origin_files);
	free(s);
}

char *settings_value_string(const struct settings *s, const struct setting_desc *d)
{
	const void *f = cfield(s, d);

	switch (d->type) {
	case SETTING_BOOL:
		return xstrdup(*(const bool *)f ? "true" : "false");
	case SETTING_SANDBOX:
		switch (*(const int *)f) {
		case SANDBOX_OFF:
			return xstrdup("false");
		case SANDBOX_RELAXED:
			return xstrdup("relaxed");
		default:
			return xstrdup("true");
		}
	case SETTING_INT:
		return xasprintf("%lld", (long long)*(const int64_t *)f);
	case SETTING_SIZE:
		return xasprintf("%llu", (unsigned long long)*(const uint64_t *)f);
	case SETTING_STRING:
	case SETTING_PATH:
		return xstrdup(*(char *const *)f);
	case SETTING_LIST: {
		struct strbuf sb = STRBUF_INIT;
		for (char *const *w = *(char **const *)f; w && *w; w++) {
			if (sb.len)
				strbuf_addch(&sb, ' ');
			strbuf_addstr(&sb, *w);
		}
		return strbuf_detach(&sb, NULL);
	}
	default:
		abort();
	}
}

/* Include handling: a stack of the files being read, to detect loops. */
struct parse_ctx {
	const char *stack[MAX_INCLUDE_DEPTH + 1];
	size_t depth;
	bool check_owner;
	enum setting_origin origin;
};

static int parse_file_ctx(struct settings *s, const char *path, bool ignore_missing,
			  struct parse_ctx *ctx, struct nib_error **err);

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static int parse_text_ctx(struct settings *s, const char *text, const char *path,
			  struct parse_ctx *ctx, struct nib_error **err)
{
	const char *p = text;
	unsigned lineno = 0;

	while (*p != '\0') {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		cleanup_free char *line = xstrndup(p, n);
		cleanup_strv char **tok = NULL;
		char *hash;
		size_t ntok;

		p += n + (eol ? 1 : 0);
		lineno++;
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		tok = split_words(line);
		ntok = strv_length(tok);
		if (ntok == 0)
			continue;

		if (STREQ(tok[0], "include") || STREQ(tok[0], "!include")) {
			cleanup_free char *dir = NULL, *inc = NULL;
			if (ntok != 2)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "%s:%u: '%s' takes exactly one file name",
						     path, lineno, tok[0]);
			dir = dir_of(path);
			inc = tok[1][0] == '/' ? xstrdup(tok[1]) : path_join(dir, tok[1]);
			if (parse_file_ctx(s, inc, tok[0][0] == '!', ctx, err) < 0)
				return nib_error_prefix(err, "%s:%u", path, lineno);
			continue;
		}

		{
			/* Accept "key = value" (Nix) and also "key=value". */
			cleanup_free char *name = NULL;
			struct strbuf val = STRBUF_INIT;
			char *eq = strchr(line, '=');
			cleanup_error struct nib_error *e = NULL;
			int r;

			if (eq == NULL)
				return nib_error_set(err, NIB_E_INVALID, 0,
						     "%s:%u: syntax error: expected 'name = value'",
						     path, lineno);
			*eq = '\0';
			{
				cleanup_strv char **lhs = split_words(line);
				cleanup_strv char **rhs = split_words(eq + 1);
				if (strv_length(lhs) != 1)
					return nib_error_set(
						err, NIB_E_INVALID, 0,
						"%s:%u: syntax error: expected 'name = value'",
						path, lineno);
				name = xstrdup(lhs[0]);
				for (char **w = rhs; *w; w++) {
					if (val.len)
						strbuf_addch(&val, ' ');
					strbuf_addstr(&val, *w);
				}
			}
			r = settings_set(s, name, val.buf, ctx->origin,
					 ctx->origin == ORIGIN_FILE ? path : NULL, &e);
			strbuf_release(&val);
			if (r < 0) {
				nib_error_move(err, &e);
				return nib_error_prefix(err, "%s:%u", path, lineno);
			}
			if (r > 0)
				log_warning("%s:%u: unknown setting '%s', ignoring", path, lineno,
					    name);
		}
	}
	return 0;
}

static int check_file_owner(int fd, const char *path, struct nib_error **err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", path);
	if (st.st_uid != 0)
		return nib_error_set(
			err, NIB_E_CONFIG, 0,
			"refusing settings file '%s': it is owned by uid %u, not root, and a "
			"privileged program must not be steered by another user",
			path, (unsigned)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return nib_error_set(
			err, NIB_E_CONFIG,
			0, "refusing settings file '%s': it is writable by group or others (mode %04o)",
			path, (unsigned)(st.st_mode & 07777));
	return 0;
}

static int parse_file_ctx(struct settings *s, const char *path, bool ignore_missing,
			  struct parse_ctx *ctx, struct nib_error **err)
{
	cleanup_close int fd = -1;
	cleanup_free char *text = NULL;
	cleanup_free char *real = NULL;
	const char *nul;
	struct stat st;
	size_t len = 0;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT && ignore_missing)
			return 0;
		return nib_error_errno(err, "cannot open settings file '%s'", path);
	}
	if (fstat(fd, &st) < 0)
		return nib_error_errno(err, "cannot stat '%s'", path);
	if (!S_ISREG(st.st_mode))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "settings file '%s' is not a regular file", path);
	if (ctx->check_owner && check_file_owner(fd, path, err) < 0)
		return -1;
	real = realpath(path, NULL);
	if (real == NULL)
		real = xstrdup(path);
	for (size_t i = 0; i < ctx->depth; i++)
		if (STREQ(ctx->stack[i], real))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "include loop: '%s' includes itself", path);
	if (ctx->depth >= MAX_INCLUDE_DEPTH)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "includes nested deeper than %d levels at '%s'",
				     MAX_INCLUDE_DEPTH, path);
	if (read_fd_all(fd, MAX_SETTINGS_FILE_SIZE, &text, &len, err) < 0)
		return nib_error_prefix(err, "settings file '%s'", path);
	nul = memchr(text, '\0', len);
	if (nul != NULL) {
		unsigned line = 1;
		for (const char *q = text; q < nul; q++)
			line += *q == '\n';
		return nib_error_set(err, NIB_E_INVALID, 0, "%s:%u: NUL byte in line", path, line);
	}
	ctx->stack[ctx->depth++] = real;
	r = parse_text_ctx(s, text, path, ctx, err);
	ctx->depth--;
	return r;
}

int settings_parse_text(struct settings *s, const char *text, const char *path,
			enum setting_origin origin, bool check_owner, struct nib_error **err)
{
	struct parse_ctx ctx = { .check_owner = check_owner, .origin = origin };

	return parse_text_ctx(s, text, path, &ctx, err);
}

int settings_parse_file(struct settings *s, const char *path, enum setting_origin origin,
			bool check_owner, struct nib_error **err)
{
	struct parse_ctx ctx = { .check_owner = check_owner, .origin = origin };

	return parse_file_ctx(s, path, false, &ctx, err);
}

static const char *real_getenv(const char *name)
{
	return getenv(name);
}

char *settings_config_file(const char *(*getenv_fn)(const char *name))
{
	const char *dir;

	if (getenv_fn == NULL)
		getenv_fn = real_getenv;
	dir = getenv_fn("NIB_CONF_DIR");
	if (dir == NULL || *dir == '\0')
		dir = "/etc/nib";
	return path_join(dir, "nib.conf");
}

static const struct {
	const char *env;
	const char *setting;
} env_paths[] = {
	{ "NIB_STORE_DIR", "store-dir" },	  { "NIB_STORE_ROOT", "store-root" },
	{ "NIB_STATE_DIR", "state-dir" },	  { "NIB_LOG_DIR", "log-dir" },
	{ "NIB_DAEMON_SOCKET", "daemon-socket" },
};

int settings_load(struct settings *s, const struct settings_load_opts *opts, struct nib_error **err)
{
	const char *(*env)(const char *) = real_getenv;
	bool check_owner = geteuid() == 0;
	const char *inl;

	if (opts != NULL && opts->getenv_fn != NULL)
		env = opts->getenv_fn;
	if (opts != NULL && opts->check_owner >= 0)
		check_owner = opts->check_owner != 0;

	if (opts == NULL || !opts->no_file) {
		cleanup_free char *file = settings_config_file(env);
		struct parse_ctx ctx = { .check_owner = check_owner, .origin = ORIGIN_FILE };
		if (parse_file_ctx(s, file, true, &ctx, err) < 0)
			return -1;
	}

	inl = env("NIB_CONFIG");
	if (inl != NULL && *inl != '\0' &&
	    settings_parse_text(s, inl, "NIB_CONFIG", ORIGIN_INLINE, check_owner, err) < 0)
		return -1;

	for (size_t i = 0; i < ARRAY_SIZE(env_paths); i++) {
		const char *v = env(env_paths[i].env);
		if (v == NULL || *v == '\0')
			continue;
		if (settings_set(s, env_paths[i].setting, v, ORIGIN_ENV, NULL, err) < 0)
			return nib_error_prefix(err, "environment variable %s", env_paths[i].env);
	}

	for (size_t i = 0; opts != NULL && opts->option_names && opts->option_names[i]; i++) {
		int r = settings_set(s, opts->option_names[i], opts->option_values[i],
				     ORIGIN_CMDLINE, NULL, err);
		if (r < 0)
			return nib_error_prefix(err, "--option");
		if (r > 0)
			return nib_error_set(err, NIB_E_INVALID, 0, "unknown setting '%s'",
					     opts->option_names[i]);
	}

	return settings_validate(s, err);
}

int settings_validate_id_range(const struct settings *s, struct nib_error **err)
{
	uint64_t end;

	if (s->start_id <= 0)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "setting 'start-id' (%lld) must be greater than 0",
				     (long long)s->start_id);
	if (s->ids_per_build <= 0 || s->start_id % s->ids_per_build != 0)
		return nib_error_set(
			err, NIB_E_CONFIG, 0,
			"setting 'start-id' (%lld) must be a multiple of 'ids-per-build' (%lld)",
			(long long)s->start_id, (long long)s->ids_per_build);
	if (s->id_count % s->ids_per_build != 0)
		return nib_error_set(
			err, NIB_E_CONFIG, 0,
			"setting 'id-count' (%lld) must be a multiple of 'ids-per-build' (%lld)",
			(long long)s->id_count, (long long)s->ids_per_build);
	end = (uint64_t)s->start_id + (uint64_t)s->id_count - 1;
	if (end > 4294967294ULL)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "settings 'start-id' (%lld) + 'id-count' (%lld) end at %llu, "
				     "past the largest valid UID 4294967294",
				     (long long)s->start_id, (long long)s->id_count,
				     (unsigned long long)end);
	return 0;
}

int settings_validate(const struct settings *s, struct nib_error **err)
{
	if (s->store_dir[0] == '\0')
		return nib_error_set(err, NIB_E_CONFIG, 0, "setting 'store-dir' must not be empty");
	if (STREQ(s->store_dir, "/"))
		return nib_error_set(err, NIB_E_CONFIG, 0, "setting 'store-dir' must not be '/'");
	if (s->state_dir[0] == '\0')
		return nib_error_set(err, NIB_E_CONFIG, 0, "setting 'state-dir' must not be empty");
	if (s->log_dir[0] == '\0')
		return nib_error_set(err, NIB_E_CONFIG, 0, "setting 'log-dir' must not be empty");
	if (settings_validate_id_range(s, err) < 0)
		return -1;
	for (char **p = s->sandbox_paths; p && *p; p++) {
		const char *v = *p, *eq = strchr(v, '=');
		const char *src = eq ? eq + 1 : v;
		if (*v != '/' || *src != '/')
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "setting 'sandbox-paths': entry '%s' must be an "
					     "absolute PATH or TARGET=SOURCE",
					     v);
	}
	for (char **p = s->impure_env; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		if (eq == NULL || eq == *p)
			return nib_error_set(err, NIB_E_CONFIG, 0,
					     "setting 'impure-env': entry '%s' must be NAME=VALUE",
					     *p);
	}
	return 0;
}

char *settings_real_store_dir(const struct settings *s)
{
	if (s->store_root[0] == '\0' || STREQ(s->store_root, "/"))
		return xstrdup(s->store_dir);
	return path_join(s->store_root, s->store_dir);
}

char *settings_daemon_socket_path(const struct settings *s)
{
	if (s->daemon_socket != NULL && s->daemon_socket[0] != '\0')
		return xstrdup(s->daemon_socket);
	return path_join(s->state_dir, "daemon-socket/socket");
}

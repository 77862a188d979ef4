/*
 * sandbox-run - run one command in nib's build sandbox (test and benchmark
 * driver for libstore/sandbox.c; not installed).
 *
 *   sandbox-run [OPTIONS] [--] BUILDER [ARG...]
 *
 * The builder's stdout/stderr are ours.  Exit status: the builder's, 128+N
 * when it died of signal N, 125 when the sandbox could not be set up (the
 * message is on stderr), 124 when --check-leftovers found a survivor.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "sandbox.h"
#include "seccomp.h"
#include "util.h"
#include "banned.h"

#define EXIT_SETUP 125
#define EXIT_LEFTOVER 124

static const char usage[] =
	"Usage: sandbox-run [OPTIONS] [--] BUILDER [ARG...]\n"
	"  --bind TARGET=SOURCE[?]  make SOURCE visible read-only at TARGET (sandbox-paths "
	"syntax)\n"
	"  --rw-bind TARGET=SOURCE  the same, writable\n"
	"  --root-dir DIR           mountpoint of the private root (default: a temporary dir)\n"
	"  --build-dir DIR          host directory for /build (default: a temporary dir)\n"
	"  --output-dir DIR         host directory that becomes the store directory\n"
	"  --store-dir PATH         store directory inside (default /nib/store)\n"
	"  --uid N, --gid N         first host ID of the slot (default 0x70000000 + 120 * 2^18)\n"
	"  --count N                IDs in the slot (default 262144)\n"
	"  --uid-range              run as root with the whole range (uid-range builds)\n"
	"  --network                keep the host network (fixed-output builds)\n"
	"  --cgroup NAME            run in a new build cgroup NAME (removed afterwards)\n"
	"  --memory-max BYTES, --pids-max N   cgroup limits\n"
	"  --no-seccomp             do not load the syscall filter\n"
	"  --env NAME=VALUE         add to the builder environment (Nix's defaults are set)\n"
	"  --stats                  print CPU time and peak memory to stderr\n"
	"  --check-leftovers        fail if a process of the ID range survives the build\n"
	"  --repeat N               run the builder N times (benchmarks), print the median\n"
	"  --timeout SEC            kill the build after SEC seconds (exit 128+9)\n";

/* Processes whose real UID lies in [first, first+count). */
static size_t count_range_processes(uid_t first, uint32_t count)
{
	cleanup_dir DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[300];
		cleanup_free char *status = NULL;
		cleanup_error struct nib_error *e = NULL;
		const char *line;
		unsigned long uid;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
		if (read_file_at(AT_FDCWD, path, 1 << 16, &status, NULL, &e) < 0)
			continue;
		line = strstr(status, "\nUid:");
		if (line == NULL || sscanf(line + 5, "%lu", &uid) != 1)
			continue;
		if (uid >= first && uid - first < count) {
			fprintf(stderr, "sandbox-run: leftover process %s (uid %lu)\n", de->d_name,
				uid);
			n++;
		}
	}
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int parse_uint(const char *opt, const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	if (parse_size(s, &v) < 0 || v > max) {
		fprintf(stderr, "sandbox-run: invalid value '%s' for %s\n", s, opt);
		return -1;
	}
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_BIND = 256,
		OPT_RW_BIND,
		OPT_ROOT,
		OPT_BUILD,
		OPT_OUTPUT,
		OPT_STORE,
		OPT_UID,
		OPT_GID,
		OPT_COUNT,
		OPT_UID_RANGE,
		OPT_NETWORK,
		OPT_CGROUP,
		OPT_MEM,
		OPT_PIDS,
		OPT_NO_SECCOMP,
		OPT_ENV,
		OPT_STATS,
		OPT_LEFTOVERS,
		OPT_REPEAT,
		OPT_TIMEOUT,
	};
	static const struct option longopts[] = {
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "rw-bind", required_argument, NULL, OPT_RW_BIND },
		{ "root-dir", required_argument, NULL, OPT_ROOT },
		{ "build-dir", required_argument, NULL, OPT_BUILD },
		{ "output-dir", required_argument, NULL, OPT_OUTPUT },
		{ "store-dir", required_argument, NULL, OPT_STORE },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "gid", required_argument, NULL, OPT_GID },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "uid-range", no_argument, NULL, OPT_UID_RANGE },
		{ "network", no_argument, NULL, OPT_NETWORK },
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "memory-max", required_argument, NULL, OPT_MEM },
		{ "pids-max", required_argument, NULL, OPT_PIDS },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "check-leftovers", no_argument, NULL, OPT_LEFTOVERS },
		{ "repeat", required_argument, NULL, OPT_REPEAT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_error struct nib_error *err = NULL;
	cleanup_seccomp_bpf struct seccomp_bpf *bpf = NULL;
	cleanup_cgroup_root struct cgroup_root *cgroot = NULL;
	cleanup_free struct sandbox_bind *binds = NULL;
	cleanup_strv char **bind_strings = NULL, **env = NULL;
	cleanup_free char *tmp_root = NULL, *tmp_build = NULL;
	cleanup_free uint64_t *times = NULL;
	const char *root_dir = NULL, *build_dir = NULL, *output_dir = NULL;
	const char *store_dir = "/nib/store", *cgroup_name = NULL;
	/* Away from the default start-id, so that tests never meet real builds. */
	uint64_t uid = 0x70000000ULL + 120ULL * 262144ULL, gid = 0, count = 262144;
	uint64_t memory_max = 0, pids_max = 0, repeat = 1, timeout = 0;
	bool uid_range = false, network = false, seccomp = true, stats = false, leftovers = false;
	size_t n_binds = 0, alloc_binds = 0;
	struct sandbox_spec spec;
	const char *tmpdir = getenv("TMPDIR");
	int status = 0, c, rc = 0;

	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_BIND:
		case OPT_RW_BIND: {
			char *t = NULL, *s = NULL;
			unsigned flags = 0;
			if (sandbox_parse_path(optarg, &t, &s, &flags, &err) < 0) {
				fprintf(stderr, "sandbox-run: %s\n", err->msg);
				return 2;
			}
			strv_push(&bind_strings, t);
			strv_push(&bind_strings, s);
			free(t);
			free(s);
			ALLOC_GROW(binds, n_binds + 1, alloc_binds);
			binds[n_binds++].flags =
				flags | (c == OPT_RW_BIND ? SANDBOX_BIND_WRITABLE : 0);
			break;
		}
		case OPT_ROOT:
			root_dir = optarg;
			break;
		case OPT_BUILD:
			build_dir = optarg;
			break;
		case OPT_OUTPUT:
			output_dir = optarg;
			break;
		case OPT_STORE:
			store_dir = optarg;
			break;
		case OPT_UID:
			if (parse_uint("--uid", optarg, UINT32_MAX - 1, &uid) < 0)
				return 2;
			break;
		case OPT_GID:
			if (parse_uint("--gid", optarg, UINT32_MAX - 1, &gid) < 0)
				return 2;
			break;
		case OPT_COUNT:
			if (parse_uint("--count", optarg, UINT32_MAX, &count) < 0)
				return 2;
			break;
		case OPT_UID_RANGE:
			uid_range = true;
			break;
		case OPT_NETWORK:
			network = true;
			break;
		case OPT_CGROUP:
			cgroup_name = optarg;
			break;
		case OPT_MEM:
			if (parse_uint("--memory-max", optarg, UINT64_MAX, &memory_max) < 0)
				return 2;
			break;
		case OPT_PIDS:
			if (parse_uint("--pids-max", optarg, UINT32_MAX, &pids_max) < 0)
				return 2;
			break;
		case OPT_NO_SECCOMP:
			seccomp = false;
			break;
		case OPT_ENV:
			strv_push(&env, optarg);
			break;
		case OPT_STATS:
			stats = true;
			break;
		case OPT_LEFTOVERS:
			leftovers = true;
			break;
		case OPT_REPEAT:
			if (parse_uint("--repeat", optarg, 100000, &repeat) < 0 || repeat == 0)
				return 2;
			break;
		case OPT_TIMEOUT:
			if (parse_uint("--timeout", optarg, 86400, &timeout) < 0)
				return 2;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (gid == 0)
		gid = uid;
	for (size_t i = 0; i < n_binds; i++) {
		binds[i].target = bind_strings[2 * i];
		binds[i].source = bind_strings[2 * i + 1];
	}
	{
		const char *defaults[] = { "PATH=/path-not-set",   "HOME=/homeless-shelter",
					   "NIX_BUILD_TOP=/build", "TMPDIR=/build",
					   "TEMPDIR=/build",	   "TMP=/build",
					   "TEMP=/build",	   "PWD=/build",
					   "NIX_LOG_FD=2",	   "NIX_BUILD_CORES=1",
					   "TERM=xterm-256color" };
		cleanup_free char *store_env = xasprintf("NIX_STORE=%s", store_dir);
		cleanup_strv char **user = env;
		env = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
			strv_push(&env, defaults[i]);
		strv_push(&env, store_env);
		for (char **e = user; e != NULL && *e != NULL; e++)
			strv_push(&env, *e);
	}

	if (sandbox_check_available(&err) < 0 || (seccomp && seccomp_bpf_build(&bpf, &err) < 0)) {
		fprintf(stderr, "sandbox-run: %s\n", err->msg);
		return EXIT_SETUP;
	}
	if (root_dir == NULL) {
		tmp_root = xasprintf("%s/sandbox-root-XXXXXX", tmpdir);
		if (mkdtemp(tmp_root) == NULL) {
			perror("sandbox-run: mkdtemp");
			return EXIT_SETUP;
		}
		root_dir = tmp_root;
	}
	if (build_dir == NULL) {
		tmp_build = xasprintf("%s/sandbox-build-XXXXXX", tmpdir);
		if (mkdtemp(tmp_build) == NULL) {
			perror("sandbox-run: mkdtemp");
			rc = EXIT_SETUP;
			goto out;
		}
		build_dir = tmp_build;
	}
	if (cgroup_name != NULL && cgroup_root_discover(NULL, &cgroot, &err) < 0) {
		fprintf(stderr, "sandbox-run: %s\n", err->msg);
		rc = EXIT_SETUP;
		goto out;
	}

	times = xcalloc(repeat, sizeof(*times));
	for (uint64_t i = 0; i < repeat; i++) {
		cleanup_cgroup_build struct cgroup_build *cg = NULL;
		cleanup_sandbox struct sandbox *sb = NULL;
		struct cgroup_limits lim = { .memory_max = memory_max, .pids_max = pids_max };
		struct rusage ru;
		uint64_t start = now_monotonic_usec();

		if (cgroup_name != NULL &&
		    cgroup_build_create(cgroot, cgroup_name, &lim, &cg, &err) < 0) {
			fprintf(stderr, "sandbox-run: %s\n", err->msg);
			rc = EXIT_SETUP;
			goto out;
		}
		sandbox_spec_init(&spec);
		spec.builder = argv[optind];
		spec.argv = argv + optind;
		spec.envp = env;
		spec.host_uid = (uid_t)uid;
		spec.host_gid = (gid_t)gid;
		spec.id_count = (uint32_t)count;
		spec.flags = (uid_range ? SANDBOX_UID_RANGE : 0) | (network ? SANDBOX_NETWORK : 0);
		spec.root_dir = root_dir;
		spec.build_dir = build_dir;
		spec.store_dir = store_dir;
		spec.output_dir = output_dir;
		spec.binds = binds;
		spec.n_binds = n_binds;
		spec.cgroup = cg;
		spec.seccomp = bpf;
		spec.stdout_fd = 1;
		spec.stderr_fd = 2;
		if (sandbox_spawn(&spec, &sb, &err) < 0) {
			fprintf(stderr, "sandbox-run: %s\n", err->msg);
			if (cg != NULL) {
				cleanup_error struct nib_error *e2 = NULL;
				cgroup_build_destroy(cg, &e2);
			}
			rc = EXIT_SETUP;
			goto out;
		}
		if (timeout > 0) {
			/* The pidfd turns readable when the builder exits. */
			struct pollfd pfd = { .fd = sandbox_pidfd(sb), .events = POLLIN };
			int r;
			do
				r = poll(&pfd, 1, (int)timeout * 1000);
			while (r < 0 && errno == EINTR);
			if (r == 0) {
				fprintf(stderr, "sandbox-run: timed out after %llu s\n",
					(unsigned long long)timeout);
				if (sandbox_kill(sb, SIGKILL, &err) < 0) {
					fprintf(stderr, "sandbox-run: %s\n", err->msg);
					nib_error_clear(&err);
				}
			}
		}
		if (sandbox_wait(sb, true, &status, &ru, &err) < 0) {
			fprintf(stderr, "sandbox-run: %s\n", err->msg);
			rc = EXIT_SETUP;
			goto out;
		}
		if (cg != NULL) {
			struct cgroup_stats st;
			if (stats && cgroup_build_stats(cg, &st, &err) == 0)
				fprintf(stderr,
					"stats: cpu-user-usec=%llu cpu-system-usec=%llu "
					"memory-peak=%llu oom-kills=%llu pids-max-hits=%llu\n",
					(unsigned long long)st.cpu_user_usec,
					(unsigned long long)st.cpu_system_usec,
					(unsigned long long)st.memory_peak,
					(unsigned long long)st.oom_kills,
					(unsigned long long)st.pids_max_hits);
			nib_error_clear(&err);
			if (cgroup_build_destroy(cg, &err) < 0) {
				fprintf(stderr, "sandbox-run: %s\n", err->msg);
				rc = EXIT_SETUP;
				goto out;
			}
		}
		times[i] = now_monotonic_usec() - start;
		if (stats)
			fprintf(stderr, "stats: maxrss-kib=%ld wall-usec=%llu\n", ru.ru_maxrss,
				(unsigned long long)times[i]);
	}
	if (repeat > 1) {
		sort_array(times, repeat, sizeof(*times), cmp_u64);
		printf("median-usec %llu\n", (unsigned long long)times[repeat / 2]);
	}
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		rc = 128 + WTERMSIG(status);
	if (leftovers && count_range_processes((uid_t)uid, (uint32_t)count) > 0)
		rc = EXIT_LEFTOVER;
out:
	if (tmp_root != NULL)
		rmdir(tmp_root);
	if (tmp_build != NULL) {
		cleanup_error struct nib_error *e = NULL;
		rm_rf_at(AT_FDCWD, tmp_build, &e);
	}
	return rc;
}

/*
 * sandbox-bench - what one sandboxed builder start costs, next to the
 * bare-kernel floor and bubblewrap, measured in the same run.
 *
 *   sandbox-bench [--iterations N] [--busybox PATH] [--bwrap PATH] [--dir DIR]
 *
 * Each figure is the median (and 90th percentile) wall time of start + wait:
 *   floor        clone() into user+mount+PID+IPC+UTS+net namespaces, child exits
 *   nib          sandbox_spawn of "/bin/sh -c true" (busybox) with 10 read-only
 *                inputs, seccomp, private tmpfs root, the output directory
 *                (with its input mountpoints) made and removed in --dir
 *   nib+cgroup   the same plus creating and destroying the build's cgroup
 *   bwrap        bwrap with the same binds, tmpfs root, proc, dev, unshared
 *                namespaces (when installed)
 * Needs root (user namespaces with a mapped slot, cgroups).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "sandbox.h"
#include "seccomp.h"
#include "util.h"
#include "banned.h"

#define N_INPUTS 10
#define FIRST_ID (0x70000000U + 127U * 262144U)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *t, size_t n, const char *what)
{
	sort_array(t, n, sizeof(*t), cmp_u64);
	printf("%-12s median %6.2f ms   p90 %6.2f ms   (n=%zu)  %s\n", name, t[n / 2] / 1000.0,
	       t[n * 9 / 10] / 1000.0, n, what);
}

static int floor_once(void)
{
	int status;
	pid_t pid = (pid_t)syscall(SYS_clone,
				   CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
					   CLONE_NEWUTS | CLONE_NEWNET | SIGCHLD,
				   NULL, NULL, NULL, NULL);
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int run_cmd(char **argv)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "iterations", required_argument, NULL, 'n' },
		{ "busybox", required_argument, NULL, 'b' },
		{ "bwrap", required_argument, NULL, 'w' },
		{ "dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_error struct nib_error *err = NULL;
	cleanup_seccomp_bpf struct seccomp_bpf *bpf = NULL;
	cleanup_cgroup_root struct cgroup_root *cgroot = NULL;
	cleanup_free uint64_t *t = NULL, *t_spawn = NULL, *t_wait = NULL, *t_clean = NULL;
	cleanup_free char *work = NULL, *root = NULL, *build = NULL, *out = NULL, *store = NULL;
	cleanup_strv char **bw = NULL;
	struct sandbox_bind binds[N_INPUTS + 1];
	char *targets[N_INPUTS], *sources[N_INPUTS];
	const char *busybox = "/bin/busybox", *bwrap = NULL, *tmpdir = getenv("TMPDIR");
	char *sh_argv[] = { (char *)"sh", (char *)"-c", (char *)"true", NULL };
	char *envp[] = { (char *)"PATH=/path-not-set", (char *)"HOME=/homeless-shelter", NULL };
	uint64_t n = 200;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, &n) < 0 || n < 10 || n > 100000) {
				fprintf(stderr, "sandbox-bench: bad --iterations '%s'\n", optarg);
				return 2;
			}
			break;
		case 'b':
			busybox = optarg;
			break;
		case 'w':
			bwrap = optarg;
			break;
		case 'd':
			tmpdir = optarg;
			break;
		default:
			return 2;
		}
	}
	if (bwrap == NULL && access("/usr/bin/bwrap", X_OK) == 0)
		bwrap = "/usr/bin/bwrap";
	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	if (sandbox_check_available(&err) < 0 || seccomp_bpf_build(&bpf, &err) < 0 ||
	    cgroup_root_discover(NULL, &cgroot, &err) < 0) {
		fprintf(stderr, "sandbox-bench: %s\n", err->msg);
		return 1;
	}

	work = xasprintf("%s/nib-sandbox-bench-XXXXXX", tmpdir);
	if (mkdtemp(work) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	root = path_join(work, "root");
	build = path_join(work, "build");
	out = path_join(work, "out");
	store = path_join(work, "store");
	if (mkdir(root, 0700) < 0 || mkdir(build, 0700) < 0 || mkdir(store, 0755) < 0) {
		perror("mkdir");
		return 1;
	}
	for (int i = 0; i < N_INPUTS; i++) {
		cleanup_free char *f = NULL;
		sources[i] = xasprintf("%s/%032d-input-%d", store, i, i);
		targets[i] = xasprintf("/nib/store/%032d-input-%d", i, i);
		f = path_join(sources[i], "file");
		if (mkdir(sources[i], 0755) < 0 || (close(open(f, O_CREAT | O_WRONLY, 0644)), 0)) {
			perror("mkdir");
			return 1;
		}
		binds[i] = (struct sandbox_bind){ .target = targets[i], .source = sources[i] };
	}
	binds[N_INPUTS] = (struct sandbox_bind){ .target = "/bin/sh", .source = busybox };
	t = xcalloc(n, sizeof(*t));
	t_spawn = xcalloc(n, sizeof(*t));
	t_wait = xcalloc(n, sizeof(*t));
	t_clean = xcalloc(n, sizeof(*t));

	printf("sandbox start+wait of a trivial builder, %llu iterations each, --dir %s\n",
	       (unsigned long long)n, tmpdir);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t s = now_monotonic_usec();
		if (floor_once() < 0) {
			perror("sandbox-bench: floor clone");
			return 1;
		}
		t[i] = now_monotonic_usec() - s;
	}
	report("floor", t, n, "clone(user,mnt,pid,ipc,uts,net) + exit");

	for (int with_cgroup = 0; with_cgroup < 2; with_cgroup++) {
		for (uint64_t i = 0; i < n; i++) {
			cleanup_cgroup_build struct cgroup_build *cg = NULL;
			cleanup_sandbox struct sandbox *sb = NULL;
			struct sandbox_spec spec;
			int status = 0;
			uint64_t s = now_monotonic_usec();

			if (mkdir(out, 0755) < 0) {
				perror("mkdir");
				return 1;
			}
			if (with_cgroup &&
			    cgroup_build_create(cgroot, "nib-bench", NULL, &cg, &err) < 0) {
				fprintf(stderr, "sandbox-bench: %s\n", err->msg);
				return 1;
			}
			sandbox_spec_init(&spec);
			spec.builder = "/bin/sh";
			spec.argv = sh_argv;
			spec.envp = envp;
			spec.host_uid = FIRST_ID;
			spec.host_gid = FIRST_ID;
			spec.id_count = 262144;
			spec.root_dir = root;
			spec.build_dir = build;
			spec.store_dir = "/nib/store";
			spec.output_dir = out;
			spec.binds = binds;
			spec.n_binds = N_INPUTS + 1;
			spec.cgroup = cg;
			spec.seccomp = bpf;
			if (sandbox_spawn(&spec, &sb, &err) < 0)
				goto fail;
			t_spawn[i] = now_monotonic_usec();
			if (sandbox_wait(sb, true, &status, NULL, &err) < 0)
				goto fail;
			t_wait[i] = now_monotonic_usec();
			if (cg != NULL && cgroup_build_destroy(cg, &err) < 0)
				goto fail;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "sandbox-bench: builder failed (status %d)\n",
					status);
				return 1;
			}
			/* The caller removes the output directory with its mountpoints. */
			if (rm_rf_at(AT_FDCWD, out, &err) < 0) {
				fprintf(stderr, "sandbox-bench: %s\n", err->msg);
				return 1;
			}
			t[i] = now_monotonic_usec() - s;
			t_clean[i] = s + t[i] - t_wait[i];
			t_wait[i] -= t_spawn[i];
			t_spawn[i] -= s;
		}
		sort_array(t_spawn, n, sizeof(*t), cmp_u64);
		sort_array(t_wait, n, sizeof(*t), cmp_u64);
		sort_array(t_clean, n, sizeof(*t), cmp_u64);
		if (with_cgroup)
			report("nib+cgroup", t, n,
			       "the same + create/kill/remove the build cgroup");
		else
			report("nib", t, n,
			       "sh -c true, 10 ro inputs, seccomp, tmpfs root, outputs staged in "
			       "--dir");
		printf("%-12s   spawn until exec %.2f ms, run and reap %.2f ms, cleanup %.2f ms\n",
		       "", t_spawn[n / 2] / 1000.0, t_wait[n / 2] / 1000.0,
		       t_clean[n / 2] / 1000.0);
	}

	if (bwrap != NULL) {
		/* bwrap maps only the caller's ID: it gets a /build it can use. */
		cleanup_free char *bw_build = path_join(work, "bwrap-build");
		if (mkdir(bw_build, 0700) < 0) {
			perror("mkdir");
			return 1;
		}
		strv_push(&bw, bwrap);
		for (const char *const *a = (const char *const[]){ "--unshare-all",
								   "--uid",
								   "1000",
								   "--gid",
								   "100",
								   "--tmpfs",
								   "/",
								   "--proc",
								   "/proc",
								   "--dev",
								   "/dev",
								   "--tmpfs",
								   "/tmp",
								   "--bind",
								   bw_build,
								   "/build",
								   "--ro-bind",
								   busybox,
								   "/bin/sh",
								   "--chdir",
								   "/build",
								   "--hostname",
								   "localhost",
								   "--die-with-parent",
								   NULL };
		     *a != NULL; a++)
			strv_push(&bw, *a);
		for (int i = 0; i < N_INPUTS; i++) {
			strv_push(&bw, "--ro-bind");
			strv_push(&bw, sources[i]);
			strv_push(&bw, targets[i]);
		}
		strv_push(&bw, "/bin/sh");
		strv_push(&bw, "-c");
		strv_push(&bw, "true");
		for (uint64_t i = 0; i < n; i++) {
			uint64_t s = now_monotonic_usec();
			if (run_cmd(bw) < 0) {
				fprintf(stderr, "sandbox-bench: bwrap failed:");
				for (char **a = bw; *a != NULL; a++)
					fprintf(stderr, " %s", *a);
				fputc('\n', stderr);
				break;
			}
			t[i] = now_monotonic_usec() - s;
			if (i + 1 == n)
				report("bwrap", t, n,
				       "bubblewrap with the same binds (no seccomp)");
		}
	} else {
		printf("%-12s not installed (apt-get install bubblewrap to compare)\n", "bwrap");
	}

	for (int i = 0; i < N_INPUTS; i++) {
		free(sources[i]);
		free(targets[i]);
	}
	rm_rf_at(AT_FDCWD, work, &err);
	return 0;
fail:
	fprintf(stderr, "sandbox-bench: %s\n", err->msg);
	return 1;
}

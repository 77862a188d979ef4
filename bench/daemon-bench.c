/*
 * daemon-bench - connections per second against a running nib-daemon: each
 * iteration connects, does the handshake, asks IsValidPath of one path and
 * hangs up (what a short query-only client does), for the given number of
 * seconds; then the same queries on one kept connection, for comparison.
 * Given the daemon's pid, it also prints the CPU time per connection of the
 * daemon (its own and that of its reaped connection processes, from
 * /proc/PID/stat) and of this client.
 *
 *   daemon-bench SOCKET STORE_DIR SECONDS [DAEMON_PID]
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cleanup.h"
#include "remote-store.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "banned.h"

/*
 * CPU seconds of process pid: its own (utime + stime) and its reaped
 * children's (cutime + cstime); false when unreadable.
 */
static bool proc_cpu(uint64_t pid, double *ret_self, double *ret_children)
{
	cleanup_free char *path = xasprintf("/proc/%llu/stat", (unsigned long long)pid);
	cleanup_free char *text = NULL;
	unsigned long long f[4];
	const char *p;
	double tick = (double)sysconf(_SC_CLK_TCK);

	if (read_file_at(AT_FDCWD, path, 4096, &text, NULL, NULL) < 0)
		return false;
	/* After "pid (comm) ": state is field 3; utime..cstime are 14 to 17. */
	p = strrchr(text, ')');
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &f[0],
		   &f[1], &f[2], &f[3]) != 4)
		return false;
	*ret_self = (double)(f[0] + f[1]) / tick;
	*ret_children = (double)(f[2] + f[3]) / tick;
	return true;
}

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *err = NULL;
	cleanup_free char *path = NULL;
	uint64_t secs, n = 0, start, end, dpid = 0;
	double d_self0 = 0, d_kids0 = 0, c0 = self_cpu();
	bool have_daemon = false;

	if ((argc != 4 && argc != 5) || parse_u64(argv[3], &secs) < 0 ||
	    (argc == 5 && parse_u64(argv[4], &dpid) < 0)) {
		fprintf(stderr, "usage: daemon-bench SOCKET STORE_DIR SECONDS [DAEMON_PID]\n");
		return 2;
	}
	if (dpid != 0)
		have_daemon = proc_cpu(dpid, &d_self0, &d_kids0);
	if (settings_set(s, "store-dir", argv[2], ORIGIN_CMDLINE, NULL, &err) < 0) {
		fprintf(stderr, "daemon-bench: %s\n", err->msg);
		return 1;
	}
	path = xasprintf("%s/00000000000000000000000000000000-x", argv[2]);
	start = now_monotonic_usec();
	end = start + secs * 1000000;
	while (now_monotonic_usec() < end) {
		struct store *st = NULL;
		if (remote_store_open(s, argv[1], &st, &err) < 0 ||
		    store_is_valid(st, path, &err) < 0) {
			fprintf(stderr, "daemon-bench: %s\n", err->msg);
			store_close(st);
			return 1;
		}
		store_close(st);
		n++;
	}
	printf("connect + handshake + IsValidPath + close: %llu in %.2f s = %.0f connections/s\n",
	       (unsigned long long)n, (double)(now_monotonic_usec() - start) / 1e6,
	       (double)n * 1e6 / (double)(now_monotonic_usec() - start));
	if (n > 0) {
		double d_self, d_kids, c = (self_cpu() - c0) * 1e6 / (double)n;

		if (have_daemon && proc_cpu(dpid, &d_self, &d_kids))
			printf("CPU per connection: daemon %.0f us (parent %.0f, connection "
			       "processes "
			       "%.0f), client %.0f us\n",
			       (d_self - d_self0 + d_kids - d_kids0) * 1e6 / (double)n,
			       (d_self - d_self0) * 1e6 / (double)n,
			       (d_kids - d_kids0) * 1e6 / (double)n, c);
		else
			printf("CPU per connection: client %.0f us\n", c);
	}
	{
		struct store *st = NULL;
		uint64_t m = 0;

		if (remote_store_open(s, argv[1], &st, &err) < 0) {
			fprintf(stderr, "daemon-bench: %s\n", err->msg);
			return 1;
		}
		start = now_monotonic_usec();
		end = start + secs * 1000000;
		while (now_monotonic_usec() < end) {
			if (store_is_valid(st, path, &err) < 0) {
				fprintf(stderr, "daemon-bench: %s\n", err->msg);
				store_close(st);
				return 1;
			}
			m++;
		}
		printf("IsValidPath on one connection (reference): %.0f requests/s\n",
		       (double)m * 1e6 / (double)(now_monotonic_usec() - start));
		store_close(st);
	}
	return 0;
}

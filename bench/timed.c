/*
 * timed - run a command and append its wall time, in nanoseconds, to a file.
 *
 *   timed FILE COMMAND [ARG...]
 *
 * The benchmark scripts time single commands with it rather than with the
 * shell's clock around a command: bash starts a command by forking itself,
 * which on the 2-CPU machines here costs about a millisecond of its own
 * (bash's address space is copied), and that millisecond is the shell's,
 * not the command's.  The command is started with posix_spawn (a vfork:
 * nothing is copied) between two readings of the monotonic clock, and waited
 * for; its standard streams are this program's.  The exit status is the
 * command's (127 when it could not be started, 128 + N when killed by
 * signal N); the time is appended either way.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	unsigned long long t0, t1;
	char line[32];
	pid_t pid;
	int status = 0, fd, r, n;

	if (argc < 3) {
		fprintf(stderr, "usage: timed FILE COMMAND [ARG...]\n");
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "timed: cannot open '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	t0 = now_ns();
	r = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
	if (r == 0) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	t1 = now_ns();
	n = snprintf(line, sizeof(line), "%llu\n", t1 - t0);
	if (write(fd, line, (size_t)n) != n) {
		fprintf(stderr, "timed: cannot write to '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	close(fd);
	if (r != 0) {
		fprintf(stderr, "timed: cannot run '%s': %s\n", argv[2], strerror(r));
		return 127;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

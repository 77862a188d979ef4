/*
 * syscall-probe - try one system call and say how it went (test helper, run
 * inside sandboxes, hence static).
 *
 *   syscall-probe CALL ARG...
 *
 * Prints "ok" and exits 0 when the call succeeded, else prints the errno
 * name ("EPERM") and exits 1.  Usage errors exit 2.
 *
 *   syscall-probe fds -
 *
 * prints the open descriptors of the probe itself ("0 1 2"), which are those
 * the builder exec'ing it had (all of them survive exec unless CLOEXEC).
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "banned.h"

/* Unified numbers (x86_64, aarch64, ...); the filter must catch them by number. */
#define NR_FCHMODAT2 452
#define NR_SETXATTRAT 463
#define NR_GETXATTRAT 464
#define NR_LISTXATTRAT 465
#define NR_REMOVEXATTRAT 466

static int report(long r)
{
	if (r >= 0) {
		puts("ok");
		return 0;
	}
	puts(strerrorname_np(errno) ? strerrorname_np(errno) : "unknown");
	return 1;
}

int main(int argc, char **argv)
{
	const char *call = argc > 1 ? argv[1] : "";
	const char *path = argc > 2 ? argv[2] : "";
	char buf[256];
	long mode = argc > 3 ? strtol(argv[3], NULL, 8) : 0;

	if (argc < 3) {
		fputs("usage: syscall-probe CALL PATH [MODE|PORT]\n", stderr);
		return 2;
	}
	if (strcmp(call, "fds") == 0) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		const char *sep = "";
		if (d == NULL)
			return report(-1);
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' || strtol(de->d_name, NULL, 10) == dirfd(d))
				continue;
			printf("%s%s", sep, de->d_name);
			sep = " ";
		}
		putchar('\n');
		closedir(d);
		return 0;
	}
	if (strcmp(call, "chmod") == 0)
		return report(chmod(path, (mode_t)mode));
	if (strcmp(call, "fchmodat2") == 0)
		return report(syscall(NR_FCHMODAT2, AT_FDCWD, path, (mode_t)mode, 0));
	if (strcmp(call, "setxattr") == 0)
		return report(setxattr(path, "user.nib", "x", 1, 0));
	if (strcmp(call, "getxattr") == 0)
		return report(getxattr(path, "user.nib", buf, sizeof(buf)));
	if (strcmp(call, "listxattr") == 0)
		return report(listxattr(path, buf, sizeof(buf)));
	if (strcmp(call, "removexattr") == 0)
		return report(removexattr(path, "user.nib"));
	if (strcmp(call, "setxattrat") == 0)
		return report(syscall(NR_SETXATTRAT, AT_FDCWD, path, 0, "user.nib", NULL, 0));
	if (strcmp(call, "getxattrat") == 0)
		return report(syscall(NR_GETXATTRAT, AT_FDCWD, path, 0, "user.nib", NULL, 0));
	if (strcmp(call, "listxattrat") == 0)
		return report(syscall(NR_LISTXATTRAT, AT_FDCWD, path, 0, buf, sizeof(buf)));
	if (strcmp(call, "removexattrat") == 0)
		return report(syscall(NR_REMOVEXATTRAT, AT_FDCWD, path, 0, "user.nib"));
	if (strcmp(call, "connect") == 0) {
		/* connect 127.0.0.1 PORT */
		struct sockaddr_in sa = { .sin_family = AF_INET };
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0 || argc < 4 || inet_pton(AF_INET, path, &sa.sin_addr) != 1)
			return report(-1);
		sa.sin_port = htons((unsigned short)strtol(argv[3], NULL, 10));
		return report(connect(s, (struct sockaddr *)&sa, sizeof(sa)));
	}
	fprintf(stderr, "syscall-probe: unknown call '%s'\n", call);
	return 2;
}

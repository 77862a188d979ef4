/*
 * enosys - run a command with chosen system calls failing with ENOSYS, as on
 * an older kernel, to exercise nib's fallback paths (idea from crun's
 * tests/no_openat2.c).
 *
 *   enosys SYSCALL[,SYSCALL...] COMMAND [ARG...]
 *
 * Known names: clone3, open_tree, move_mount, mount_setattr, close_range,
 * openat2, pidfd_send_signal, unshare.  The filter is a hand-written BPF program for
 * the native ABI (so this helper does not need libseccomp); it is inherited
 * by every child, sandboxes included.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "banned.h"

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "enosys: add the audit arch of this architecture"
#endif

static const struct {
	const char *name;
	long nr;
} known[] = {
	{ "clone3", 435 },
	{ "open_tree", 428 },
	{ "move_mount", 429 },
	{ "mount_setattr", 442 },
	{ "close_range", 436 },
	{ "openat2", 437 },
	{ "pidfd_send_signal", 424 },
	{ "unshare", SYS_unshare },
};

#define MAX_CALLS 16

int main(int argc, char **argv)
{
	struct sock_filter f[5 + 2 * MAX_CALLS];
	struct sock_fprog prog;
	long nrs[MAX_CALLS];
	size_t n = 0, len = 0;
	char *list, *save = NULL;

	if (argc < 3) {
		fputs("usage: enosys SYSCALL[,SYSCALL...] COMMAND [ARG...]\n", stderr);
		return 2;
	}
	list = argv[1];
	for (char *name = strtok_r(list, ",", &save); name != NULL;
	     name = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(known[i].name, name) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0]) || n == MAX_CALLS) {
			fprintf(stderr, "enosys: unknown or too many syscalls: '%s'\n", name);
			return 2;
		}
		nrs[n++] = known[i].nr;
	}
	/* Other ABIs pass through: we only fake an older native kernel. */
	f[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						offsetof(struct seccomp_data, arch));
	f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < n; i++) {
		f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nrs[i],
							0, 1);
		f[len++] =
			(struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	}
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)len;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
		perror("enosys: cannot install the filter");
		return 1;
	}
	execvp(argv[2], argv + 2);
	fprintf(stderr, "enosys: cannot execute '%s': %s\n", argv[2], strerror(errno));
	return 127;
}

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "seccomp.h"
#include "util.h"

/*
 * Each check runs a call in a child under the filter and records -errno (or
 * 0) in shared memory; the parent asserts.  A call the kernel does not know
 * gives ENOSYS when the filter lets it through, so "allowed" means "not the
 * filter's errno".
 */
enum {
	R_CHMOD_SUID,
	R_CHMOD_SGID,
	R_CHMOD_PLAIN,
	R_FCHMOD_SUID,
	R_FCHMODAT_SGID,
	R_FCHMODAT2_SUID,
	R_FCHMODAT2_PLAIN,
	R_SETXATTR,
	R_LGETXATTR,
	R_FLISTXATTR,
	R_REMOVEXATTR,
	R_SETXATTRAT,
	R_GETXATTRAT,
	R_LISTXATTRAT,
	R_REMOVEXATTRAT,
	R_X32_CHMOD_SUID,
	R_X32_SETXATTRAT,
	R_I386_AVAILABLE,
	R_I386_CHMOD_SUID,
	R_I386_CHMOD_PLAIN,
	R_I386_SETXATTR,
	R_I386_FCHMODAT2_SGID,
	R_I386_GETXATTRAT,
	R_DONE,
	R_MAX
};

static char *dir;

static void setup(void)
{
	dir = test_mkdtemp();
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
	dir = NULL;
}

static long rv(long r)
{
	return r < 0 ? -errno : r;
}

#if defined(__x86_64__)
/* A system call through the i386 entry (int $0x80); pointers must be below 4 GiB. */
static long int80(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}
#endif

static void run_checks(const char *file, long *res)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	char buf[64];

	res[R_CHMOD_SUID] = rv(chmod(file, 04755));
	res[R_CHMOD_SGID] = rv(chmod(file, 02755));
	res[R_CHMOD_PLAIN] = rv(chmod(file, 0755));
	res[R_FCHMOD_SUID] = rv(fchmod(fd, 04700));
	res[R_FCHMODAT_SGID] = rv(fchmodat(AT_FDCWD, file, 02700, 0));
	res[R_FCHMODAT2_SUID] = rv(syscall(452, AT_FDCWD, file, 04755, 0));
	res[R_FCHMODAT2_PLAIN] = rv(syscall(452, AT_FDCWD, file, 0644, 0));
	res[R_SETXATTR] = rv(setxattr(file, "user.a", "x", 1, 0));
	res[R_LGETXATTR] = rv(lgetxattr(file, "user.a", buf, sizeof(buf)));
	res[R_FLISTXATTR] = rv(flistxattr(fd, buf, sizeof(buf)));
	res[R_REMOVEXATTR] = rv(removexattr(file, "user.a"));
	res[R_SETXATTRAT] = rv(syscall(463, AT_FDCWD, file, 0, "user.a", NULL, 0));
	res[R_GETXATTRAT] = rv(syscall(464, AT_FDCWD, file, 0, "user.a", NULL, 0));
	res[R_LISTXATTRAT] = rv(syscall(465, AT_FDCWD, file, 0, buf, sizeof(buf)));
	res[R_REMOVEXATTRAT] = rv(syscall(466, AT_FDCWD, file, 0, "user.a"));
#if defined(__x86_64__)
	/* x32 numbers carry bit 30; the filter must see them whether or not the kernel has x32. */
	res[R_X32_CHMOD_SUID] = rv(syscall(0x40000000L | 90, file, 04755));
	res[R_X32_SETXATTRAT] =
		rv(syscall(0x40000000L | 463, AT_FDCWD, file, 0, "user.a", NULL, 0));
	{
		char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
		if (low != MAP_FAILED && strlen(file) < 4000) {
			long a = (long)(uintptr_t)low;
			memcpy(low, file, strlen(file) + 1);
			/* i386 getpid is 20: a positive answer means the ABI is there. */
			res[R_I386_AVAILABLE] = int80(20, 0, 0, 0) > 0;
			if (res[R_I386_AVAILABLE]) {
				res[R_I386_CHMOD_SUID] = int80(15, a, 04755, 0);
				res[R_I386_CHMOD_PLAIN] = int80(15, a, 0755, 0);
				res[R_I386_SETXATTR] = int80(226, a, a, a);
				res[R_I386_FCHMODAT2_SGID] = int80(452, AT_FDCWD, a, 02755);
				res[R_I386_GETXATTRAT] = int80(464, AT_FDCWD, a, 0);
			}
		}
	}
#endif
	res[R_DONE] = 1;
	if (fd >= 0)
		close(fd);
}

static void test_filter(void)
{
	cleanup_error struct nib_error *e = NULL;
	cleanup_seccomp_bpf struct seccomp_bpf *bpf = NULL;
	cleanup_free char *file = NULL;
	long *res;
	pid_t pid;
	int status;

	CU_ASSERT_PTR_NOT_NULL(dir);
	CU_ASSERT_EQUAL(seccomp_bpf_build(&bpf, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	if (bpf == NULL || dir == NULL)
		return;
	file = path_join(dir, "f");
	CU_ASSERT(seccomp_bpf_length(bpf) > 20);
	CU_ASSERT(seccomp_bpf_length(bpf) < 400);
	CU_ASSERT_EQUAL(test_write_file(file, "x"), 0);

	res = mmap(NULL, sizeof(long) * R_MAX, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	CU_ASSERT_NOT_EQUAL(res, MAP_FAILED);
	if (res == MAP_FAILED)
		return;
	memset(res, 0, sizeof(long) * R_MAX);
	pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_bpf_install(bpf) < 0)
			_exit(3);
		run_checks(file, res);
		_exit(0);
	}
	CU_ASSERT(pid > 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(res[R_DONE], 1);

	CU_ASSERT_EQUAL(res[R_CHMOD_SUID], -EPERM);
	CU_ASSERT_EQUAL(res[R_CHMOD_SGID], -EPERM);
	CU_ASSERT_EQUAL(res[R_CHMOD_PLAIN], 0);
	CU_ASSERT_EQUAL(res[R_FCHMOD_SUID], -EPERM);
	CU_ASSERT_EQUAL(res[R_FCHMODAT_SGID], -EPERM);
	CU_ASSERT_EQUAL(res[R_FCHMODAT2_SUID], -EPERM);
	CU_ASSERT(res[R_FCHMODAT2_PLAIN] == 0 || res[R_FCHMODAT2_PLAIN] == -ENOSYS);
	CU_ASSERT_EQUAL(res[R_SETXATTR], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_LGETXATTR], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_FLISTXATTR], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_REMOVEXATTR], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_SETXATTRAT], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_GETXATTRAT], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_LISTXATTRAT], -ENOTSUP);
	CU_ASSERT_EQUAL(res[R_REMOVEXATTRAT], -ENOTSUP);
#if defined(__x86_64__)
	CU_ASSERT_EQUAL(res[R_X32_CHMOD_SUID], -EPERM);
	CU_ASSERT_EQUAL(res[R_X32_SETXATTRAT], -ENOTSUP);
	if (res[R_I386_AVAILABLE]) {
		CU_ASSERT_EQUAL(res[R_I386_CHMOD_SUID], -EPERM);
		CU_ASSERT_EQUAL(res[R_I386_CHMOD_PLAIN], 0);
		CU_ASSERT_EQUAL(res[R_I386_SETXATTR], -ENOTSUP);
		CU_ASSERT_EQUAL(res[R_I386_FCHMODAT2_SGID], -EPERM);
		CU_ASSERT_EQUAL(res[R_I386_GETXATTRAT], -ENOTSUP);
	} else {
		fprintf(stderr, "\n  (no i386 ABI in this kernel: i386 checks skipped)\n");
	}
#endif
	munmap(res, sizeof(long) * R_MAX);
}

/* Without the filter the same file accepts setuid bits: the tests above test the filter. */
static void test_unfiltered(void)
{
	cleanup_free char *file = NULL;
	struct stat st;

	CU_ASSERT_PTR_NOT_NULL(dir);
	if (dir == NULL)
		return;
	file = path_join(dir, "g");
	CU_ASSERT_EQUAL(test_write_file(file, "x"), 0);
	CU_ASSERT_EQUAL(chmod(file, 04755), 0);
	CU_ASSERT_EQUAL(stat(file, &st), 0);
	CU_ASSERT(st.st_mode & S_ISUID);
}

static CU_TestInfo tests[] = {
	{ "filter denies setid modes and xattrs on every ABI", test_filter },
	{ "the calls work without the filter", test_unfiltered },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "seccomp", NULL, NULL, setup, teardown, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include "cgroup.h"
#include "cleanup.h"
#include "sandbox.h"
#include "seccomp.h"
#include "strbuf.h"
#include "util.h"
#include "banned.h"

/* ---- kernel interfaces glibc 2.36 may lack -------------------------------- */

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#define NIB_CLONE_INTO_CGROUP 0x200000000ULL

/* struct clone_args of <linux/sched.h>, under our own name to avoid clashes. */
struct nib_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* struct mount_attr, likewise. */
struct nib_mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};

/* Largest /etc/passwd or /etc/group copied for a build without a sandbox. */
#define ACCOUNT_FILE_MAX (64 << 20)

/* ---- the plan: everything the child needs, computed by the parent -------- */

enum node_kind {
	NODE_DIR,
	NODE_FILE,
	NODE_SYMLINK
};

enum mnt_kind {
	MNT_BIND,    /* bind the host source (opened by the child) */
	MNT_SELF,    /* bind the target onto itself so it stays writable */
	MNT_SYMLINK, /* no mount: a symlink recreated from the source */
};

struct mnt {
	enum mnt_kind kind;
	enum node_kind node;
	char *target;  /* relative to the new root */
	char *source;  /* host path (MNT_BIND) */
	char *link;    /* symlink contents (MNT_SYMLINK) */
	unsigned attr; /* MOUNT_ATTR_* to set */
	int fd;	       /* O_PATH fd of the source, opened in the child */
};

struct plan {
	uid_t uid, gid; /* the builder's IDs inside */
	bool uid_range, network, cgroupns, mount_cgroup2;
	const char *root_dir;
	char *root_opts; /* tmpfs options of the private root */
	char *store_rel; /* store_dir without the leading '/' */
	struct mnt *mnts;
	size_t n_mnts;
	char *passwd, *group, *hosts, *nsswitch;
	const char *builder;
	char *const *argv, *const *envp;
	const struct seccomp_bpf *seccomp;
	int stdout_fd, stderr_fd;
	int sync_fd;   /* child reads the release byte here */
	int report_fd; /* child writes a struct report here on failure */

	/* SANDBOX_NONE */
	bool none;
	const char *store_dir, *build_dir;
	char *overlay_opts;
	char *passwd_path, *group_path; /* NULL: no private account files */
	gid_t *groups;
	size_t n_groups;
};

/* What a child that failed before exec tells its parent. */
struct report {
	int32_t err;
	char step[500]; /* stays below PIPE_BUF with err: written atomically */
};

struct sandbox {
	pid_t pid;
	int pidfd;
	int report_fd; /* until the setup report is read; -1 after */
	int sync_fd;   /* the release pipe, kept open until then: its hangup means we died */
	char *builder; /* for the report's message */
	bool none;     /* SANDBOX_NONE */
	bool reaped;
	int status;
	struct rusage usage;
};

static void plan_free(struct plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_mnts; i++) {
		free(p->mnts[i].target);
		free(p->mnts[i].source);
		free(p->mnts[i].link);
	}
	free(p->mnts);
	free(p->root_opts);
	free(p->store_rel);
	free(p->passwd);
	free(p->group);
	free(p->hosts);
	free(p->nsswitch);
	free(p->overlay_opts);
	free(p->passwd_path);
	free(p->group_path);
	free(p->groups);
	free(p);
}
DEFINE_CLEANUP_FUNC(struct plan, plan_free)
#define cleanup_plan __attribute__((cleanup(plan_freep)))

/* ---- syscall wrappers ----------------------------------------------------- */

static int sys_open_tree(int dfd, const char *path, unsigned flags)
{
#ifdef SYS_open_tree
	return (int)syscall(SYS_open_tree, dfd, path, flags);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to,
			  unsigned flags)
{
#ifdef SYS_move_mount
	return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int sys_mount_setattr(int dfd, const char *path, unsigned flags, struct nib_mount_attr *a)
{
#ifdef SYS_mount_setattr
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, a, sizeof(*a));
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int sys_pivot_root(const char *new_root, const char *put_old)
{
	return (int)syscall(SYS_pivot_root, new_root, put_old);
}

static int sys_close_range(unsigned first, unsigned last, unsigned flags)
{
#ifdef SYS_close_range
	return (int)syscall(SYS_close_range, first, last, flags);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/*
 * The children are made with the raw clone3/clone system call, not fork(),
 * so glibc's view of the process's threads is the parent's: its
 * setgroups()/setresuid()/setresgid() would signal the parent's other
 * threads (the store's background sync, local_store_sync_start) to change
 * their IDs too, and wait forever for threads this process does not have.
 * A child has one thread: the bare system calls are exactly right.
 * (sandbox_drop_groups uses the bare setgroups in the parent, for the
 * thread that clones the builders: see sandbox.h.)
 */
static int sys_setgroups(size_t n, const gid_t *groups)
{
	return (int)syscall(SYS_setgroups, n, groups);
}

static int sys_setresgid(gid_t gid)
{
	return (int)syscall(SYS_setresgid, gid, gid, gid);
}

static int sys_setresuid(uid_t uid)
{
	return (int)syscall(SYS_setresuid, uid, uid, uid);
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* ---- the child ------------------------------------------------------------ */

/*
 * Everything from here to run_child() runs in the freshly cloned child.  The
 * parent is single-threaded, so the child may call anything, but it keeps to
 * plain system calls on memory the parent prepared: no allocation, no stdio.
 */

struct child {
	const struct plan *p;
	const char *step; /* what is being done, for the report */
	const char *subject;
	bool mount_api; /* open_tree/move_mount work; cleared on ENOSYS */
	bool setattr_api;
};

static __attribute__((noreturn)) void child_fail(struct child *c, int err)
{
	struct report r = { .err = err };
	ssize_t w;

	if (c->subject != NULL)
		snprintf(r.step, sizeof(r.step), "%s %s", c->step, c->subject);
	else
		snprintf(r.step, sizeof(r.step), "%s", c->step);
	w = write(c->p->report_fd, &r, sizeof(r));
	(void)w;
	_exit(127);
}

#define STEP(c, s, subj)               \
	do {                           \
		(c)->step = (s);       \
		(c)->subject = (subj); \
	} while (0)
#define CHECK(c, expr)                          \
	do {                                    \
		if ((expr) < 0)                 \
			child_fail((c), errno); \
	} while (0)

static int write_file(const char *path, const char *data, mode_t mode)
{
	size_t len = strlen(data);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, data, len);
	if (w < 0 || (size_t)w != len) {
		int e = w < 0 ? errno : EIO;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* mkdir -p of the directories leading to `rel` (relative to the cwd). */
static int make_parents(const char *rel)
{
	char buf[PATH_MAX];
	size_t len = strlen(rel);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, len + 1);
	for (char *s = strchr(buf, '/'); s != NULL; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return 0;
}

static int make_node(const struct mnt *m)
{
	int fd;

	switch (m->node) {
	case NODE_DIR:
		if (mkdir(m->target, 0755) < 0 && errno != EEXIST)
			return -1;
		return 0;
	case NODE_FILE:
		fd = open(m->target, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return -1;
		return close(fd);
	case NODE_SYMLINK:
		return symlink(m->link, m->target);
	}
	errno = EINVAL;
	return -1;
}

static unsigned long attr_to_msflags(unsigned attr)
{
	return ((attr & MOUNT_ATTR_RDONLY) ? MS_RDONLY : 0) |
	       ((attr & MOUNT_ATTR_NOSUID) ? MS_NOSUID : 0) |
	       ((attr & MOUNT_ATTR_NODEV) ? MS_NODEV : 0) |
	       ((attr & MOUNT_ATTR_NOEXEC) ? MS_NOEXEC : 0);
}

/*
 * Old-API fallback for changing the flags of the bind at `target`.  The flags
 * the source mount already had (nosuid, nodev, noexec, rdonly) must be kept:
 * they are locked when the mount came from a more privileged namespace, and
 * a remount that drops them fails with EPERM.
 */
static int remount_bind(const char *target, unsigned attr)
{
	struct statvfs sv;
	unsigned long keep = 0;

	if (statvfs(target, &sv) < 0)
		return -1;
	keep |= (sv.f_flag & ST_RDONLY) ? MS_RDONLY : 0;
	keep |= (sv.f_flag & ST_NOSUID) ? MS_NOSUID : 0;
	keep |= (sv.f_flag & ST_NODEV) ? MS_NODEV : 0;
	keep |= (sv.f_flag & ST_NOEXEC) ? MS_NOEXEC : 0;
	return mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | keep | attr_to_msflags(attr), NULL);
}

/* Bind the source open at fd (an O_PATH fd, no path walk) on `target`. */
static int attach(struct child *c, int fd, const char *target, unsigned attr)
{
	char proc_path[64];

	if (c->mount_api) {
		int tree =
			sys_open_tree(fd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (tree >= 0) {
			struct nib_mount_attr ma = { .attr_set = attr };
			bool set_later = false;
			if (attr != 0 && c->setattr_api &&
			    sys_mount_setattr(tree, "", AT_EMPTY_PATH, &ma) < 0) {
				if (errno != ENOSYS) {
					close(tree);
					return -1;
				}
				c->setattr_api = false;
			}
			set_later = attr != 0 && !c->setattr_api;
			if (sys_move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) <
			    0) {
				int e = errno;
				close(tree);
				errno = e;
				return -1;
			}
			close(tree);
			return set_later ? remount_bind(target, attr) : 0;
		}
		if (errno != ENOSYS)
			return -1;
		/* FIXME: drop once the baseline kernel has open_tree (5.2). */
		c->mount_api = false;
	}
	snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
	if (mount(proc_path, target, NULL, MS_BIND, NULL) < 0)
		return -1;
	return attr != 0 ? remount_bind(target, attr) : 0;
}

static int loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int r = -1;

	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	if (r < 0) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	return close(s);
}

static int drop_capabilities(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	return (int)syscall(SYS_capset, &h, d);
}

/* Close every descriptor from 3 up at exec, keeping the report pipe until then. */
static int close_other_fds(int keep)
{
	struct rlimit rl;

	if (sys_close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0; /* the report pipe is CLOEXEC anyway */
	/* FIXME: drop the fallbacks once the baseline kernel has close_range (5.11). */
	if (keep > 3 && sys_close_range(3, (unsigned)keep - 1, 0) == 0 &&
	    sys_close_range((unsigned)keep + 1, ~0U, 0) == 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	for (rlim_t fd = 3; fd < rl.rlim_cur && fd < (1U << 20); fd++)
		if ((int)fd != keep)
			close((int)fd);
	return 0;
}

/*
 * First thing in the child: close every descriptor it inherited but does
 * not use.  Descriptors are CLOEXEC and would go at execve anyway, but until
 * then the child shares the parent's open files, and with them their locks:
 * a slot, job token or output lock that the parent releases meanwhile (a
 * build of its own that ends while this one sets up) would stay taken until
 * this child execs.  Best effort: without close_range, exec still closes
 * them.
 */
static void close_inherited_fds(const struct plan *p)
{
	int keep[] = { p->sync_fd, p->report_fd, p->stdout_fd, p->stderr_fd };
	unsigned next = 3;

	/* Sorted by hand: no library call that might allocate, after clone. */
	for (size_t i = 1; i < ARRAY_SIZE(keep); i++)
		for (size_t k = i; k > 0 && keep[k - 1] > keep[k]; k--) {
			int t = keep[k];
			keep[k] = keep[k - 1];
			keep[k - 1] = t;
		}
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		if (keep[i] < (int)next)
			continue;
		if ((unsigned)keep[i] > next && sys_close_range(next, (unsigned)keep[i] - 1, 0) < 0)
			return;
		next = (unsigned)keep[i] + 1;
	}
	(void)sys_close_range(next, ~0U, 0);
}

static void reset_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL); /* EINVAL for glibc's internal signals */
}

/* Put stdin on /dev/null and stdout/stderr on the given fds (-1: /dev/null). */
static int setup_stdio(const struct plan *p)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out, err, in;

	if (null < 0)
		return -1;
	/* Copies above 2 first, so that none of the dup2s below clobbers a source. */
	in = fcntl(null, F_DUPFD_CLOEXEC, 3);
	out = fcntl(p->stdout_fd >= 0 ? p->stdout_fd : null, F_DUPFD_CLOEXEC, 3);
	err = fcntl(p->stderr_fd >= 0 ? p->stderr_fd : null, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0 || err < 0)
		return -1;
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		return -1;
	return 0;
}

static void build_root(struct child *c)
{
	const struct plan *p = c->p;

	STEP(c, "mounting the root tmpfs on", p->root_dir);
	CHECK(c, mount("tmpfs", p->root_dir, "tmpfs", MS_NOSUID | MS_NODEV, p->root_opts));
	STEP(c, "entering", p->root_dir);
	CHECK(c, chdir(p->root_dir));

	/*
	 * From here on files are created as the build user: on the private
	 * tmpfs (owned by the new user namespace) the host root we still are is
	 * not mapped, and creating files as an unmapped ID fails (EOVERFLOW).
	 * Sources were opened above, while we could still walk host paths.
	 */
	STEP(c, "switching filesystem IDs", NULL);
	setfsgid(p->gid);
	setfsuid(p->uid);
	if ((gid_t)setfsgid(p->gid) != p->gid || (uid_t)setfsuid(p->uid) != p->uid)
		child_fail(c, EPERM);

	STEP(c, "creating the root skeleton", NULL);
	CHECK(c, mkdir("etc", 0755));
	CHECK(c, mkdir("dev", 0755));
	CHECK(c, mkdir("dev/pts", 0755));
	CHECK(c, mkdir("dev/shm", 0755));
	CHECK(c, mkdir("proc", 0555));
	CHECK(c, mkdir("tmp", 01777));
	if (p->uid_range)
		CHECK(c, mkdir("sys", 0555));
	CHECK(c, symlink("/proc/self/fd", "dev/fd"));
	CHECK(c, symlink("/proc/self/fd/0", "dev/stdin"));
	CHECK(c, symlink("/proc/self/fd/1", "dev/stdout"));
	CHECK(c, symlink("/proc/self/fd/2", "dev/stderr"));
	CHECK(c, symlink("pts/ptmx", "dev/ptmx"));
	STEP(c, "creating the store directory", p->store_rel);
	CHECK(c, make_parents(p->store_rel));
	CHECK(c, mkdir(p->store_rel, 01775));
	STEP(c, "writing", "/etc/passwd");
	CHECK(c, write_file("etc/passwd", p->passwd, 0644));
	STEP(c, "writing", "/etc/group");
	CHECK(c, write_file("etc/group", p->group, 0644));
	if (p->hosts != NULL) {
		STEP(c, "writing", "/etc/hosts");
		CHECK(c, write_file("etc/hosts", p->hosts, 0644));
	}
	if (p->nsswitch != NULL) {
		STEP(c, "writing", "/etc/nsswitch.conf");
		CHECK(c, write_file("etc/nsswitch.conf", p->nsswitch, 0644));
	}

	/* Sorted by target: a directory is mounted before anything inside it. */
	for (size_t i = 0; i < p->n_mnts; i++) {
		const struct mnt *m = &p->mnts[i];
		STEP(c, "creating the mountpoint", m->target);
		if (m->kind != MNT_SELF) {
			CHECK(c, make_parents(m->target));
			CHECK(c, make_node(m));
		}
		STEP(c, "binding", m->target);
		if (m->kind == MNT_BIND)
			CHECK(c, attach(c, m->fd, m->target, m->attr));
		else if (m->kind == MNT_SELF)
			CHECK(c, mount(m->target, m->target, NULL, MS_BIND, NULL));
	}

	/* A fresh proc needs the host's /proc still visible: before pivot_root. */
	STEP(c, "mounting", "/proc");
	CHECK(c, mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
	STEP(c, "mounting", "/dev/pts");
	CHECK(c, mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		       "newinstance,ptmxmode=0666,mode=0620"));
	STEP(c, "mounting", "/dev/shm");
	CHECK(c, mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"));
	if (p->uid_range) {
		STEP(c, "mounting", "/sys");
		if (mount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			CHECK(c, mount("sysfs", "sys", "sysfs",
				       MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL));
		if (p->mount_cgroup2) {
			STEP(c, "mounting", "/sys/fs/cgroup");
			CHECK(c, mount("cgroup2", "sys/fs/cgroup", "cgroup2",
				       MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
		}
	} else {
		/*
		 * The skeleton belongs to the build user; a read-only root keeps
		 * it from changing /etc or anything else that is not an output.
		 */
		STEP(c, "making the root read-only", NULL);
		CHECK(c, mount(NULL, ".", NULL,
			       MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL));
	}

	/* pivot_root(".", ".") stacks the old root on the new one; detach it. */
	STEP(c, "pivot_root into", p->root_dir);
	CHECK(c, sys_pivot_root(".", "."));
	STEP(c, "detaching the old root", NULL);
	CHECK(c, umount2(".", MNT_DETACH));
	CHECK(c, chdir("/"));
}

/*
 * The end of every child, sandboxed or not, once it runs as the build
 * user: the parent-death signal (set after setuid, which clears it; then
 * make sure the parent is still there), no-new-privileges, the syscall
 * filter, signals unblocked, exec.
 */
static __attribute__((noreturn)) void exec_builder(struct child *c, const struct plan *p)
{
	sigset_t none;

	STEP(c, "setting the parent-death signal", NULL);
	CHECK(c, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
	{
		struct pollfd pfd = { .fd = p->sync_fd, .events = POLLIN };
		if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
			_exit(127);
	}
	STEP(c, "setting no-new-privileges", NULL);
	CHECK(c, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	if (p->seccomp != NULL) {
		int r;
		STEP(c, "loading the syscall filter", NULL);
		r = seccomp_bpf_install(p->seccomp);
		if (r < 0)
			child_fail(c, -r);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	STEP(c, "executing", p->builder);
	execve(p->builder, p->argv, p->envp);
	child_fail(c, errno);
}

static __attribute__((noreturn)) void run_child(const struct plan *p)
{
	struct child c = { .p = p, .mount_api = true, .setattr_api = true };
	struct rlimit nofile, core = { 0, 0 };
	char byte;
	ssize_t n;

	close_inherited_fds(p);
	reset_signals();
	/* The skeleton's modes are the ones given, whatever the caller's umask. */
	umask(0);

	STEP(&c, "waiting for the parent", NULL);
	do
		n = read(p->sync_fd, &byte, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(127); /* the parent gave up; it reports why */

	if (!p->network) {
		/*
		 * Unshared here rather than at clone: making a network namespace
		 * is most of the cost of the clone (half a millisecond), which the
		 * parent would pay in series with everything else it does, while
		 * here it runs beside the parent, which goes on with other builds.
		 * It belongs to the new user namespace either way, and nothing ran
		 * in the host's network namespace but the lines above.
		 */
		STEP(&c, "creating the network namespace", NULL);
		CHECK(&c, unshare(CLONE_NEWNET));
	}
	if (p->uid_range) {
		STEP(&c, "dropping supplementary groups", NULL);
		CHECK(&c, sys_setgroups(0, NULL));
	}
	if (p->cgroupns) {
		/* Now that we are in the build's cgroup, it becomes our cgroup root. */
		STEP(&c, "creating the cgroup namespace", NULL);
		CHECK(&c, unshare(CLONE_NEWCGROUP));
	}
	STEP(&c, "making / private", NULL);
	CHECK(&c, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	if (!p->network) {
		STEP(&c, "bringing up the loopback interface", NULL);
		CHECK(&c, loopback_up());
	}
	STEP(&c, "setting the hostname", NULL);
	CHECK(&c, sethostname("localhost", 9));
	CHECK(&c, setdomainname("(none)", 6));

	/* One descriptor per bind: raise the soft limit for large closures. */
	STEP(&c, "raising the open-file limit", NULL);
	CHECK(&c, getrlimit(RLIMIT_NOFILE, &nofile));
	if (p->n_mnts + 64 > nofile.rlim_cur) {
		struct rlimit more = nofile;
		more.rlim_cur = nofile.rlim_max;
		if (p->n_mnts + 64 > more.rlim_cur)
			child_fail(&c, EMFILE);
		CHECK(&c, setrlimit(RLIMIT_NOFILE, &more));
	}
	for (size_t i = 0; i < p->n_mnts; i++) {
		struct mnt *m = &p->mnts[i];
		if (m->kind != MNT_BIND)
			continue;
		STEP(&c, "opening", m->source);
		m->fd = open(m->source, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (m->fd < 0)
			child_fail(&c, errno);
	}

	build_root(&c);

	STEP(&c, "setting up stdin, stdout and stderr", NULL);
	CHECK(&c, setup_stdio(p));
	STEP(&c, "closing inherited descriptors", NULL);
	CHECK(&c, close_other_fds(p->report_fd));
	STEP(&c, "setting resource limits", NULL);
	CHECK(&c, setrlimit(RLIMIT_NOFILE, &nofile));
	CHECK(&c, setrlimit(RLIMIT_CORE, &core));
	umask(022);
	STEP(&c, "entering", "/build");
	CHECK(&c, chdir("/build"));

	STEP(&c, "switching to the build user", NULL);
	CHECK(&c, sys_setresgid(p->gid));
	CHECK(&c, sys_setresuid(p->uid));
	if (!p->uid_range) {
		/*
		 * The host root we were is not root of this namespace, so
		 * setuid() kept our capabilities: drop them explicitly.
		 */
		STEP(&c, "dropping capabilities", NULL);
		CHECK(&c, drop_capabilities());
	}
	exec_builder(&c, p);
}

/*
 * The builder without a sandbox (SANDBOX_NONE).  Still root here, in a new
 * mount namespace only: everything done before the switch to the build user
 * is seen by this process and its descendants alone.
 */
#define NSCD_SOCKET "/var/run/nscd/socket"

static int bind_file_ro(const char *source, const char *target)
{
	if (mount(source, target, NULL, MS_BIND, NULL) < 0)
		return -1;
	return mount(NULL, target, NULL,
		     MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static __attribute__((noreturn)) void run_plain_child(const struct plan *p)
{
	struct child c = { .p = p };
	struct rlimit core = { 0, 0 };
	const gid_t *groups = p->n_groups > 0 ? p->groups : &p->gid;
	size_t n_groups = p->n_groups > 0 ? p->n_groups : 1;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	struct stat st;
	char byte;
	ssize_t n;

	close_inherited_fds(p);
	reset_signals();
	STEP(&c, "waiting for the parent", NULL);
	do
		n = read(p->sync_fd, &byte, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(127); /* the parent gave up; it reports why */

	/* Its own session: no terminal's signals, and the caller can kill the group. */
	STEP(&c, "creating a session", NULL);
	CHECK(&c, setsid());
	STEP(&c, "making / private", NULL);
	CHECK(&c, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	/* The account files first: they live below the store, which the overlay then hides. */
	if (p->passwd_path != NULL) {
		STEP(&c, "binding the private", "/etc/passwd");
		CHECK(&c, bind_file_ro(p->passwd_path, "/etc/passwd"));
		STEP(&c, "binding the private", "/etc/group");
		CHECK(&c, bind_file_ro(p->group_path, "/etc/group"));
		/*
		 * glibc asks nscd first, which answers from the host's files
		 * ("no such user"); connecting to a socket path that is not a
		 * socket fails at once, and glibc then reads our files.
		 */
		if (lstat(NSCD_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode)) {
			STEP(&c, "hiding", NSCD_SOCKET);
			CHECK(&c, mount("/dev/null", NSCD_SOCKET, NULL, MS_BIND, NULL));
		}
	}
	/*
	 * Seen only in this mount namespace.  The real store is the read-only
	 * lower layer: the builder's writes land in upper, below the output
	 * directory that prepare_plain_dirs() checked is root's with mode
	 * 0700, so no other user can reach or swap it.  nosuid and nodev: a
	 * set-user-ID file or device node made by the builder grants nothing.
	 */
	STEP(&c, "mounting the store overlay on", p->store_dir);
	CHECK(&c, mount("overlay", p->store_dir, "overlay", MS_NOSUID | MS_NODEV, p->overlay_opts));

	STEP(&c, "setting up stdin, stdout and stderr", NULL);
	CHECK(&c, setup_stdio(p));
	STEP(&c, "closing inherited descriptors", NULL);
	CHECK(&c, close_other_fds(p->report_fd));
	STEP(&c, "setting resource limits", NULL);
	CHECK(&c, setrlimit(RLIMIT_CORE, &core));
	umask(022);
	STEP(&c, "entering", p->build_dir);
	CHECK(&c, chdir(p->build_dir));

	/* Groups first: after setresuid() they can no longer change. */
	STEP(&c, "switching to the build user", NULL);
	CHECK(&c, sys_setgroups(n_groups, groups));
	CHECK(&c, sys_setresgid(p->gid));
	CHECK(&c, sys_setresuid(p->uid));
	STEP(&c, "checking the build user's credentials", NULL);
	CHECK(&c, getresuid(&ru, &eu, &su));
	CHECK(&c, getresgid(&rg, &eg, &sg));
	if (ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid ||
	    sg != p->gid || getgroups(0, NULL) != (int)n_groups)
		child_fail(&c, EPERM);
	/* setresuid() away from root cleared them already; make sure of it. */
	STEP(&c, "dropping capabilities", NULL);
	CHECK(&c, drop_capabilities());
	exec_builder(&c, p);
}

/* ---- the parent ----------------------------------------------------------- */

void sandbox_spec_init(struct sandbox_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->stdout_fd = -1;
	spec->stderr_fd = -1;
}

/* Absolute, no empty, "." or ".." component, no trailing slash, not "/". */
static bool path_is_normal(const char *p)
{
	if (p == NULL || p[0] != '/' || p[1] == '\0' || strlen(p) >= PATH_MAX - 256)
		return false;
	for (const char *s = p; *s != '\0';) {
		const char *comp = s + 1, *end = strchr(comp, '/');
		size_t len = end ? (size_t)(end - comp) : strlen(comp);
		if (len == 0 || (len == 1 && comp[0] == '.') ||
		    (len == 2 && comp[0] == '.' && comp[1] == '.'))
			return false;
		if (end == NULL)
			break;
		s = end;
	}
	return true;
}

static bool is_under(const char *path, const char *dir)
{
	size_t dl = strlen(dir);
	return strncmp(path, dir, dl) == 0 && (path[dl] == '\0' || path[dl] == '/');
}

int sandbox_parse_path(const char *entry, char **ret_target, char **ret_source, unsigned *ret_flags,
		       struct nib_error **err)
{
	cleanup_free char *copy = xstrdup(entry);
	size_t len = strlen(copy);
	unsigned flags = 0;
	char *eq, *target, *source;

	if (len > 0 && copy[len - 1] == '?') {
		copy[--len] = '\0';
		flags |= SANDBOX_BIND_OPTIONAL;
	}
	eq = strchr(copy, '=');
	if (eq != NULL) {
		*eq = '\0';
		target = copy;
		source = eq + 1;
	} else {
		target = source = copy;
	}
	if (!path_is_normal(target))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "invalid sandbox path '%s': the target must be an absolute "
				     "normalised path",
				     entry);
	if (source[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "invalid sandbox path '%s': the source must be absolute",
				     entry);
	*ret_target = xstrdup(target);
	*ret_source = xstrdup(source);
	*ret_flags = flags;
	return 0;
}

static struct mnt *add_mnt(struct plan *p, size_t *alloc, enum mnt_kind kind, const char *target)
{
	struct mnt *m;

	ALLOC_GROW(p->mnts, p->n_mnts + 1, *alloc);
	m = &p->mnts[p->n_mnts++];
	memset(m, 0, sizeof(*m));
	m->kind = kind;
	m->target = xstrdup(target[0] == '/' ? target + 1 : target);
	m->fd = -1;
	return m;
}

/*
 * Add a bind of a host path.  The source is examined here, in the parent:
 * its type decides the mountpoint, a symlink is recreated instead of bound,
 * and a device keeps dev access.  Returns 0, or 1 when an optional source is
 * missing.
 */
static int add_host_bind(struct plan *p, size_t *alloc, const char *target, const char *source,
			 unsigned bind_flags, unsigned attr, bool follow, struct nib_error **err)
{
	cleanup_free char *resolved = NULL;
	struct stat st;
	struct mnt *m;

	if (follow) {
		resolved = realpath(source, NULL);
		if (resolved == NULL) {
			if (errno == ENOENT && (bind_flags & SANDBOX_BIND_OPTIONAL))
				return 1;
			return nib_error_errno(err, "cannot resolve '%s'", source);
		}
		source = resolved;
	}
	if (lstat(source, &st) < 0) {
		if (errno == ENOENT && (bind_flags & SANDBOX_BIND_OPTIONAL))
			return 1;
		return nib_error_errno(err, "cannot access sandbox path source '%s'", source);
	}
	if (S_ISLNK(st.st_mode)) {
		char buf[PATH_MAX];
		ssize_t n = readlink(source, buf, sizeof(buf) - 1);
		if (n < 0)
			return nib_error_errno(err, "cannot read symlink '%s'", source);
		buf[n] = '\0';
		m = add_mnt(p, alloc, MNT_SYMLINK, target);
		m->node = NODE_SYMLINK;
		m->link = xstrdup(buf);
		return 0;
	}
	m = add_mnt(p, alloc, MNT_BIND, target);
	m->source = xstrdup(source);
	m->node = S_ISDIR(st.st_mode) ? NODE_DIR : NODE_FILE;
	m->attr = attr;
	if (bind_flags & SANDBOX_BIND_WRITABLE)
		m->attr &= ~(unsigned)MOUNT_ATTR_RDONLY;
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		m->attr &= ~(unsigned)MOUNT_ATTR_NODEV;
	return 0;
}

static int cmp_mnt(const void *a, const void *b)
{
	return strcmp(((const struct mnt *)a)->target, ((const struct mnt *)b)->target);
}

static int check_user_target(const struct sandbox_spec *spec, const char *t, struct nib_error **err)
{
	static const char *const reserved_trees[] = { "/proc", "/build", "/dev/pts", "/dev/shm" };
	static const char *const reserved[] = { "/dev", "/etc", "/tmp" };

	if (!path_is_normal(t))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox path target '%s' is not an absolute normalised path",
				     t);
	for (size_t i = 0; i < ARRAY_SIZE(reserved_trees); i++)
		if (is_under(t, reserved_trees[i]))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "sandbox path target '%s' is reserved", t);
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (STREQ(t, reserved[i]))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "sandbox path target '%s' is reserved", t);
	if (STREQ(t, spec->store_dir) || is_under(spec->store_dir, t))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox path target '%s' would hide the store directory", t);
	if ((spec->flags & SANDBOX_UID_RANGE) && is_under(t, "/sys"))
		return nib_error_set(err, NIB_E_INVALID, 0, "sandbox path target '%s' is reserved",
				     t);
	return 0;
}

/* What every child gets from the spec, sandboxed or not. */
static void plan_common(struct plan *p, const struct sandbox_spec *spec)
{
	p->builder = spec->builder;
	p->argv = spec->argv;
	p->envp = spec->envp;
	p->seccomp = spec->seccomp;
	p->stdout_fd = spec->stdout_fd;
	p->stderr_fd = spec->stderr_fd;
	p->sync_fd = p->report_fd = -1;
}

static int make_plan(const struct sandbox_spec *spec, struct plan **ret, struct nib_error **err)
{
	static const char *const devices[] = { "/dev/full", "/dev/null",    "/dev/random",
					       "/dev/tty",  "/dev/urandom", "/dev/zero" };
	static const char *const uid_range_devices[] = { "/dev/net/tun", "/dev/fuse" };
	static const char *const network_files[] = { "/etc/hosts", "/etc/resolv.conf",
						     "/etc/services" };
	cleanup_plan struct plan *p = xcalloc(1, sizeof(*p));
	bool uid_range = spec->flags & SANDBOX_UID_RANGE;
	const unsigned ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
	const unsigned rw = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
	size_t alloc = 0;

	p->uid_range = uid_range;
	p->network = spec->flags & SANDBOX_NETWORK;
	p->uid = uid_range ? 0 : SANDBOX_BUILD_UID;
	p->gid = uid_range ? 0 : SANDBOX_BUILD_GID;
	p->cgroupns =
		uid_range && spec->cgroup != NULL && cgroup_build_v2_path(spec->cgroup) != NULL;
	p->mount_cgroup2 = p->cgroupns;
	p->root_dir = spec->root_dir;
	p->root_opts = xasprintf("mode=0755,uid=%u,gid=%u", (unsigned)p->uid, (unsigned)p->gid);
	p->store_rel = xstrdup(spec->store_dir + 1);
	plan_common(p, spec);

	/* Nix's files, so that `id` and `whoami` say the same as under Nix. */
	p->passwd = xasprintf("root:x:0:0:Nix build user:/build:/noshell\n"
			      "nixbld:x:%u:%u:Nix build user:/build:/noshell\n"
			      "nobody:x:65534:65534:Nobody:/:/noshell\n",
			      (unsigned)p->uid, (unsigned)p->gid);
	p->group = xasprintf("root:x:0:\n"
			     "nixbld:!:%u:\n"
			     "nogroup:x:65534:\n",
			     (unsigned)p->gid);
	if (p->network) {
		p->nsswitch = xstrdup("hosts: files dns\nservices: files\n");
		for (size_t i = 0; i < ARRAY_SIZE(network_files); i++)
			if (add_host_bind(p, &alloc, network_files[i], network_files[i],
					  SANDBOX_BIND_OPTIONAL, ro, true, err) < 0)
				return -1;
	} else {
		p->hosts = xstrdup("127.0.0.1 localhost\n::1 localhost\n");
	}

	if (spec->output_dir != NULL) {
		struct mnt *m = add_mnt(p, &alloc, MNT_BIND, spec->store_dir);
		m->source = xstrdup(spec->output_dir);
		m->node = NODE_DIR;
		m->attr = rw;
	} else if (!uid_range) {
		add_mnt(p, &alloc, MNT_SELF, spec->store_dir)->node = NODE_DIR;
	}
	if (!uid_range)
		add_mnt(p, &alloc, MNT_SELF, "/tmp")->node = NODE_DIR;
	{
		struct mnt *m = add_mnt(p, &alloc, MNT_BIND, "/build");
		m->source = xstrdup(spec->build_dir);
		m->node = NODE_DIR;
		m->attr = rw;
	}
	for (size_t i = 0; i < ARRAY_SIZE(devices); i++)
		if (add_host_bind(p, &alloc, devices[i], devices[i], 0, MOUNT_ATTR_NOSUID, false,
				  err) < 0)
			return -1;
	if (uid_range)
		for (size_t i = 0; i < ARRAY_SIZE(uid_range_devices); i++)
			if (add_host_bind(p, &alloc, uid_range_devices[i], uid_range_devices[i],
					  SANDBOX_BIND_OPTIONAL, MOUNT_ATTR_NOSUID, false, err) < 0)
				return -1;
	for (size_t i = 0; i < spec->n_binds; i++) {
		const struct sandbox_bind *b = &spec->binds[i];
		if (check_user_target(spec, b->target, err) < 0)
			return -1;
		if (b->source == NULL || b->source[0] != '/')
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "source of sandbox path '%s' is not absolute",
					     b->target);
		if (add_host_bind(p, &alloc, b->target, b->source, b->flags, ro, false, err) < 0)
			return -1;
	}
	sort_array(p->mnts, p->n_mnts, sizeof(*p->mnts), cmp_mnt);
	/* The same target twice: fine when it is the same thing, an error otherwise. */
	for (size_t i = 1; i < p->n_mnts; i++) {
		struct mnt *a = &p->mnts[i - 1], *b = &p->mnts[i];
		if (!STREQ(a->target, b->target))
			continue;
		if (a->kind != b->kind || a->kind == MNT_SELF ||
		    !STREQ(a->source ? a->source : a->link, b->source ? b->source : b->link))
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "sandbox path '/%s' is given twice with different "
					     "sources",
					     a->target);
		free(b->target);
		free(b->source);
		free(b->link);
		memmove(b, b + 1, (p->n_mnts - i - 1) * sizeof(*b));
		p->n_mnts--;
		i--;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

/* ---- without a sandbox: the parent's side ---------------------------------- */

/* overlayfs splits its options at ',' and its layers at ':', and unescapes '\'. */
static bool overlay_safe(const char *path)
{
	return path != NULL && strpbrk(path, ",:\\") == NULL;
}

static int validate_plain_spec(const struct sandbox_spec *spec, struct nib_error **err)
{
	if (spec->flags & SANDBOX_UID_RANGE)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox: a uid-range build cannot run without a sandbox");
	if (spec->build_dir == NULL || spec->build_dir[0] != '/' || spec->output_dir == NULL ||
	    spec->output_dir[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox: build and output directories must be absolute");
	if (!path_is_normal(spec->store_dir))
		return nib_error_set(
			err, NIB_E_INVALID, 0,
			"sandbox: store directory '%s' is not a normalised absolute path",
			spec->store_dir ? spec->store_dir : "");
	if (!overlay_safe(spec->store_dir) || !overlay_safe(spec->output_dir))
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "cannot build without a sandbox in store '%s' with output "
				     "directory '%s': an overlay cannot be mounted on paths "
				     "containing ',', ':' or '\\'",
				     spec->store_dir, spec->output_dir);
	if (spec->host_uid == 0 || spec->host_gid == 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "sandbox: refusing to build as root");
	if (spec->user_name != NULL &&
	    (spec->user_name[0] == '\0' || strpbrk(spec->user_name, ":\n") != NULL))
		return nib_error_set(err, NIB_E_INVALID, 0, "sandbox: invalid user name '%s'",
				     spec->user_name);
	return 0;
}

static int make_plain_plan(const struct sandbox_spec *spec, struct plan **ret,
			   struct nib_error **err)
{
	cleanup_plan struct plan *p = xcalloc(1, sizeof(*p));

	(void)err;
	p->none = true;
	p->uid = spec->host_uid;
	p->gid = spec->host_gid;
	p->store_dir = spec->store_dir;
	p->build_dir = spec->build_dir;
	plan_common(p, spec);
	/*
	 * metacopy and redirect_dir off: every file in upper holds its own
	 * data and no entry there points into the lower layer, so what is
	 * taken from upper is complete.
	 */
	p->overlay_opts = xasprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work,"
				    "redirect_dir=off,index=off,metacopy=off",
				    spec->store_dir, spec->output_dir, spec->output_dir);
	if (spec->user_name != NULL) {
		p->passwd_path = xasprintf("%s/passwd", spec->output_dir);
		p->group_path = xasprintf("%s/group", spec->output_dir);
	}
	if (spec->n_groups > 0) {
		p->groups = xmemdup(spec->groups, spec->n_groups * sizeof(gid_t));
		p->n_groups = spec->n_groups;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

/* A copy of the host's account file `host` without entries called `name`, plus `line`. */
static int account_file(const char *host, const char *name, const char *line, int dfd,
			const char *file, struct nib_error **err)
{
	cleanup_free char *text = NULL;
	cleanup_strbuf struct strbuf out = STRBUF_INIT;
	cleanup_close int fd = -1;
	size_t nlen = strlen(name);

	if (read_file_at(AT_FDCWD, host, ACCOUNT_FILE_MAX, &text, NULL, err) < 0)
		return nib_error_prefix(err, "cannot add the build user to a copy of '%s'", host);
	for (const char *l = text; *l != '\0';) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		if (!(len > nlen && strncmp(l, name, nlen) == 0 && l[nlen] == ':'))
			strbuf_addf(&out, "%.*s\n", (int)len, l);
		l += len + (nl ? 1 : 0);
	}
	strbuf_addstr(&out, line);
	fd = openat(dfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return nib_error_errno(err, "cannot create the private copy of '%s'", host);
	if (write_full(fd, out.buf, out.len, err) < 0)
		return -1;
	if (fchmod(fd, 0644) < 0)
		return nib_error_errno(err, "cannot set the mode of the private copy of '%s'",
				       host);
	return 0;
}

/*
 * The builder's part of the build directory, and in the root-only output
 * directory: the overlay's upper and work directories and the account files.
 */
static int prepare_plain_dirs(const struct sandbox_spec *spec, int ofd, struct nib_error **err)
{
	cleanup_free char *pw = NULL, *gr = NULL;
	struct stat st;

	if (fstat(ofd, &st) < 0)
		return nib_error_errno(err, "cannot stat output directory '%s'", spec->output_dir);
	if (st.st_uid != 0 || (st.st_mode & 077) != 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "output directory '%s' must be root's, mode 0700",
				     spec->output_dir);
	if (mkdirat(ofd, "upper", 0700) < 0 || mkdirat(ofd, "work", 0700) < 0)
		return nib_error_errno(err, "cannot create the overlay directories in '%s'",
				       spec->output_dir);
	/* The store's top level as Nix gives it to build users: group-writable, sticky. */
	if (fchownat(ofd, "upper", 0, spec->host_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(ofd, "upper", 01775, 0) < 0)
		return nib_error_errno(err, "cannot prepare '%s/upper'", spec->output_dir);
	if (spec->user_name == NULL)
		return 0;
	pw = xasprintf("%s:x:%u:%u:Nix build user:/homeless-shelter:/noshell\n", spec->user_name,
		       (unsigned)spec->host_uid, (unsigned)spec->host_gid);
	gr = xasprintf("%s:!:%u:\n", spec->user_name, (unsigned)spec->host_gid);
	if (account_file("/etc/passwd", spec->user_name, pw, ofd, "passwd", err) < 0 ||
	    account_file("/etc/group", spec->user_name, gr, ofd, "group", err) < 0)
		return -1;
	return 0;
}

static int validate_spec(const struct sandbox_spec *spec, struct nib_error **err)
{
	if (spec->builder == NULL || spec->builder[0] == '\0')
		return nib_error_set(err, NIB_E_INVALID, 0, "sandbox: no builder given");
	if (spec->argv == NULL || spec->argv[0] == NULL || spec->envp == NULL)
		return nib_error_set(err, NIB_E_INVALID, 0, "sandbox: argv and envp are required");
	if (spec->flags & SANDBOX_NONE)
		return validate_plain_spec(spec, err);
	if (spec->root_dir == NULL || spec->root_dir[0] != '/' || spec->build_dir == NULL ||
	    spec->build_dir[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox: root and build directories must be absolute");
	if (spec->output_dir != NULL && spec->output_dir[0] != '/')
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox: the output directory must be absolute");
	if (!path_is_normal(spec->store_dir) || is_under(spec->store_dir, "/proc") ||
	    is_under(spec->store_dir, "/dev") || is_under(spec->store_dir, "/build") ||
	    is_under(spec->store_dir, "/etc") || is_under(spec->store_dir, "/tmp") ||
	    is_under(spec->store_dir, "/sys"))
		return nib_error_set(
			err, NIB_E_INVALID, 0,
			"sandbox: store directory '%s' cannot be used inside a sandbox: it "
			"must be a normalised absolute path outside /proc, /dev, /build, "
			"/etc, /tmp and /sys (to keep a store under /tmp, set 'store-root' "
			"and leave 'store-dir' alone)",
			spec->store_dir ? spec->store_dir : "");
	if (spec->host_uid == 0 || spec->host_gid == 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "sandbox: refusing to map host root into a build");
	if (spec->flags & SANDBOX_UID_RANGE) {
		if (spec->id_count < SANDBOX_UID_RANGE_MIN)
			return nib_error_set(err, NIB_E_INVALID, 0,
					     "sandbox: a uid-range build needs at least %u IDs, "
					     "the slot has %u",
					     SANDBOX_UID_RANGE_MIN, spec->id_count);
		if ((uint64_t)spec->host_uid + spec->id_count > UINT32_MAX ||
		    (uint64_t)spec->host_gid + spec->id_count > UINT32_MAX)
			return nib_error_set(err, NIB_E_INVALID, 0, "sandbox: ID range overflows");
	}
	return 0;
}

static int dir_is_empty(int fd)
{
	cleanup_dir DIR *d = NULL;
	struct dirent *de;

	d = opendir_dup(fd);
	if (d == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL)
		if (!STREQ(de->d_name, ".") && !STREQ(de->d_name, ".."))
			return 0;
	return errno != 0 ? -1 : 1;
}

/*
 * Check the host directories and give them the owners the builder needs
 * (when we are root; a rootless caller owns them already).  The output
 * directory must be empty: the child creates mountpoints in it before the
 * builder runs, and leftovers of an earlier build (a symlink named like an
 * input) must not be able to redirect that.
 */
static int prepare_host_dirs(const struct sandbox_spec *spec, struct nib_error **err)
{
	cleanup_close int bfd = -1, ofd = -1;
	bool root = geteuid() == 0;
	int r;

	bfd = open(spec->build_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd < 0)
		return nib_error_errno(err, "cannot open build directory '%s'", spec->build_dir);
	if (root && (fchown(bfd, spec->host_uid, spec->host_gid) < 0 || fchmod(bfd, 0700) < 0))
		return nib_error_errno(err, "cannot hand build directory '%s' to the builder",
				       spec->build_dir);
	if (spec->output_dir == NULL)
		return 0;
	ofd = open(spec->output_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		return nib_error_errno(err, "cannot open output directory '%s'", spec->output_dir);
	r = dir_is_empty(ofd);
	if (r < 0)
		return nib_error_errno(err, "cannot read output directory '%s'", spec->output_dir);
	if (r == 0)
		return nib_error_set(err, NIB_E_INVALID, 0, "output directory '%s' is not empty",
				     spec->output_dir);
	if (spec->flags & SANDBOX_NONE)
		return prepare_plain_dirs(spec, ofd, err);
	if (root && (fchown(ofd, 0, spec->host_gid) < 0 || fchmod(ofd, 01775) < 0))
		return nib_error_errno(err, "cannot prepare output directory '%s'",
				       spec->output_dir);
	return 0;
}

static int write_proc_file(pid_t pid, const char *file, const char *data, struct nib_error **err)
{
	char path[64];
	cleanup_close int fd = -1;
	size_t len = strlen(data);
	ssize_t w;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return nib_error_errno(err, "cannot open '%s'", path);
	w = write(fd, data, len);
	if (w < 0)
		return nib_error_errno(err, "cannot write '%s'", path);
	if ((size_t)w != len)
		return nib_error_set(err, NIB_E_SYS, EIO, "short write to '%s'", path);
	return 0;
}

static int write_id_maps(const struct sandbox_spec *spec, pid_t pid, struct nib_error **err)
{
	char map[96];

	if (spec->flags & SANDBOX_UID_RANGE) {
		snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)spec->host_uid, spec->id_count);
		if (write_proc_file(pid, "uid_map", map, err) < 0)
			return -1;
		snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)spec->host_gid, spec->id_count);
		return write_proc_file(pid, "gid_map", map, err);
	}
	snprintf(map, sizeof(map), "%u %u 1\n", SANDBOX_BUILD_UID, (unsigned)spec->host_uid);
	if (write_proc_file(pid, "uid_map", map, err) < 0)
		return -1;
	/* Without setgroups the builder cannot shed its one group to bypass group-denied
	 * permissions; it must be denied before gid_map is written. */
	if (write_proc_file(pid, "setgroups", "deny", err) < 0)
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", SANDBOX_BUILD_GID, (unsigned)spec->host_gid);
	return write_proc_file(pid, "gid_map", map, err);
}

/*
 * Clone the child: clone3 straight into the cgroup when possible, else the
 * classic clone (the caller then moves it into the cgroup).  Returns the pid
 * (0 in the child) and sets *pidfd (-1 when unavailable) and *in_cgroup.
 */
static pid_t clone_child(uint64_t flags, int cgroup_fd, int *pidfd, bool *in_cgroup)
{
	struct nib_clone_args args;
	long r;

	*pidfd = -1;
	*in_cgroup = false;
	memset(&args, 0, sizeof(args));
	args.flags = flags | CLONE_PIDFD;
	args.pidfd = (uint64_t)(uintptr_t)pidfd;
	args.exit_signal = SIGCHLD;
	if (cgroup_fd >= 0) {
		args.flags |= NIB_CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgroup_fd;
	}
#ifdef SYS_clone3
	r = syscall(SYS_clone3, &args, sizeof(args));
	if (r >= 0) {
		*in_cgroup = cgroup_fd >= 0;
		return (pid_t)r;
	}
	if (cgroup_fd >= 0 && (errno == EINVAL || errno == E2BIG || errno == EOPNOTSUPP)) {
		/* FIXME: drop once the baseline kernel has CLONE_INTO_CGROUP (5.7). */
		args.flags &= ~NIB_CLONE_INTO_CGROUP;
		args.cgroup = 0;
		r = syscall(SYS_clone3, &args, sizeof(args));
		if (r >= 0)
			return (pid_t)r;
	}
	if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
		return -1;
#endif
	/* FIXME: drop once the baseline kernel has clone3 (5.3).  x86 argument order. */
	*pidfd = -1;
	r = syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD) | SIGCHLD, NULL, pidfd, NULL,
		    NULL);
	if (r < 0 && errno == EINVAL)
		r = syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
	return (pid_t)r;
}

static void kill_and_reap(pid_t pid, int pidfd)
{
	int status;

	if (pidfd < 0 || sys_pidfd_send_signal(pidfd, SIGKILL) < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

int sandbox_spawn_start(const struct sandbox_spec *spec, struct sandbox **ret,
			struct nib_error **err)
{
	cleanup_plan struct plan *p = NULL;
	cleanup_close int sync_r = -1, sync_w = -1, rep_r = -1, rep_w = -1, pidfd = -1;
	uint64_t flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
	bool none = spec->flags & SANDBOX_NONE;
	sigset_t all, old;
	struct sandbox *sb;
	bool in_cgroup = false;
	pid_t pid;
	int fds[2];

	if (validate_spec(spec, err) < 0 ||
	    (none ? make_plain_plan(spec, &p, err) : make_plan(spec, &p, err)) < 0)
		return -1;
	if (none && geteuid() != 0)
		return nib_error_set(err, NIB_E_DENIED, 0, "building without a sandbox needs root");
	if (!none && geteuid() == 0 && getgroups(0, NULL) > 0)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "sandbox: the daemon still has supplementary groups "
				     "(call sandbox_check_available at start)");
	if (prepare_host_dirs(spec, err) < 0)
		return -1;
	/* The network namespace is not made here but by the child: see run_child. */
	if (none)
		flags = CLONE_NEWNS;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return nib_error_errno(err, "cannot create a pipe");
	sync_r = fds[0];
	sync_w = fds[1];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return nib_error_errno(err, "cannot create a pipe");
	rep_r = fds[0];
	rep_w = fds[1];
	p->sync_fd = sync_r;
	p->report_fd = rep_w;

	/* No handler of ours may run in the child before it resets them. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = clone_child(flags, spec->cgroup ? cgroup_build_v2_fd(spec->cgroup) : -1, &pidfd,
			  &in_cgroup);
	if (pid == 0 && none)
		run_plain_child(p);
	if (pid == 0)
		run_child(p);
	if (pid < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return nib_error_set(err, NIB_E_SYS, e, "cannot clone the builder process");
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	closep(&sync_r);
	closep(&rep_w);

	if ((spec->cgroup != NULL && cgroup_build_attach(spec->cgroup, pid, in_cgroup, err) < 0) ||
	    ((spec->flags & SANDBOX_UID_RANGE) && spec->cgroup != NULL &&
	     cgroup_build_v2_path(spec->cgroup) != NULL &&
	     cgroup_build_delegate(spec->cgroup, spec->host_uid, spec->host_gid, err) < 0) ||
	    (!none && write_id_maps(spec, pid, err) < 0)) {
		kill_and_reap(pid, pidfd);
		return nib_error_prefix(err, "setting up the sandbox");
	}
	if (write(sync_w, "1", 1) != 1) {
		int e = errno;
		kill_and_reap(pid, pidfd);
		return nib_error_set(err, NIB_E_SYS, e, "cannot release the builder process");
	}
	sb = xcalloc(1, sizeof(*sb));
	sb->pid = pid;
	sb->pidfd = TAKE_FD(pidfd);
	sb->report_fd = TAKE_FD(rep_r);
	sb->sync_fd = TAKE_FD(sync_w);
	sb->builder = xstrdup(spec->builder);
	sb->none = none;
	*ret = sb;
	return 0;
}

int sandbox_report_fd(const struct sandbox *sb)
{
	return sb->report_fd;
}

int sandbox_spawn_finish(struct sandbox *sb, struct nib_error **err)
{
	struct report rep;
	ssize_t n;

	if (sb->report_fd < 0)
		return 0;
	/* EOF: the report pipe was closed by a successful execve. */
	n = read_upto(sb->report_fd, &rep, sizeof(rep));
	close(sb->report_fd);
	sb->report_fd = -1;
	closep(&sb->sync_fd);
	if (n == 0)
		return 0;
	{
		int e = errno;
		if (!sb->reaped) {
			kill_and_reap(sb->pid, sb->pidfd);
			sb->reaped = true;
		}
		if (n < 0)
			return nib_error_set(err, NIB_E_SYS, e,
					     "cannot read the builder's setup report");
		if ((size_t)n != sizeof(rep))
			return nib_error_set(err, NIB_E_SYS, EIO,
					     "truncated setup report from the builder");
		rep.step[sizeof(rep.step) - 1] = '\0';
		if (STARTS_WITH(rep.step, "executing"))
			return nib_error_set(err, NIB_E_SYS, rep.err, "cannot execute builder '%s'",
					     sb->builder);
		return nib_error_set(err, NIB_E_SYS, rep.err, "%s failed at '%s'",
				     sb->none ? "setup of the unsandboxed build" : "sandbox setup",
				     rep.step);
	}
}

int sandbox_spawn(const struct sandbox_spec *spec, struct sandbox **ret, struct nib_error **err)
{
	struct sandbox *sb = NULL;

	if (sandbox_spawn_start(spec, &sb, err) < 0)
		return -1;
	if (sandbox_spawn_finish(sb, err) < 0) {
		sandbox_free(sb);
		return -1;
	}
	*ret = sb;
	return 0;
}

pid_t sandbox_pid(const struct sandbox *sb)
{
	return sb->pid;
}

int sandbox_pidfd(const struct sandbox *sb)
{
	return sb->pidfd;
}

int sandbox_kill(struct sandbox *sb, int sig, struct nib_error **err)
{
	if (sb->reaped)
		return 0;
	/* Without a PID namespace, the builder's session is what its death does not take along. */
	if (sb->none && kill(-sb->pid, sig) < 0 && errno != ESRCH)
		return nib_error_errno(err, "cannot signal the process group of builder %ld",
				       (long)sb->pid);
	if (sb->pidfd >= 0) {
		if (sys_pidfd_send_signal(sb->pidfd, sig) == 0 || errno == ESRCH)
			return 0;
		if (errno != ENOSYS)
			return nib_error_errno(err, "cannot signal builder %ld", (long)sb->pid);
	}
	if (kill(sb->pid, sig) < 0 && errno != ESRCH)
		return nib_error_errno(err, "cannot signal builder %ld", (long)sb->pid);
	return 0;
}

int sandbox_wait(struct sandbox *sb, bool block, int *ret_status, struct rusage *ret_usage,
		 struct nib_error **err)
{
	if (!sb->reaped) {
		pid_t r;
		do
			r = wait4(sb->pid, &sb->status, block ? 0 : WNOHANG, &sb->usage);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return nib_error_errno(err, "cannot wait for builder %ld", (long)sb->pid);
		if (r == 0)
			return 0;
		sb->reaped = true;
	}
	if (ret_status)
		*ret_status = sb->status;
	if (ret_usage)
		*ret_usage = sb->usage;
	return 1;
}

void sandbox_free(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	if (!sb->reaped)
		kill_and_reap(sb->pid, sb->pidfd);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	if (sb->report_fd >= 0)
		close(sb->report_fd);
	if (sb->sync_fd >= 0)
		close(sb->sync_fd);
	free(sb->builder);
	free(sb);
}

/* ---- the up-front probe ---------------------------------------------------- */

enum probe_step {
	PROBE_PRIVATE = 1,
	PROBE_PROC
};

int sandbox_drop_groups(struct nib_error **err)
{
	if (geteuid() == 0 && sys_setgroups(0, NULL) < 0)
		return nib_error_errno(err, "cannot drop supplementary groups");
	return 0;
}

int sandbox_check_available(struct nib_error **err)
{
	cleanup_free char *max = NULL;
	cleanup_error struct nib_error *ignored = NULL;
	cleanup_close int rep_r = -1, rep_w = -1;
	int fds[2], status, pidfd = -1;
	int32_t rep[2];
	bool in_cgroup;
	pid_t pid;
	ssize_t n;

	if (sandbox_drop_groups(err) < 0)
		return -1;
	if (access("/proc/self/ns/user", F_OK) < 0)
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "cannot build in a sandbox: the kernel has no user "
				     "namespaces");
	if (read_file_at(AT_FDCWD, "/proc/sys/user/max_user_namespaces", 64, &max, NULL,
			 &ignored) == 0 &&
	    STARTS_WITH(max, "0\n"))
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "cannot build in a sandbox: user namespaces are disabled "
				     "(/proc/sys/user/max_user_namespaces is 0)");
	if (pipe2(fds, O_CLOEXEC) < 0)
		return nib_error_errno(err, "cannot create a pipe");
	rep_r = fds[0];
	rep_w = fds[1];
	pid = clone_child(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
				  CLONE_NEWNET,
			  -1, &pidfd, &in_cgroup);
	if (pid == 0) {
		int32_t r[2] = { PROBE_PRIVATE, 0 };
		ssize_t w;
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0) {
			r[0] = PROBE_PROC;
			if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				  NULL) == 0)
				_exit(0);
		}
		r[1] = errno;
		w = write(rep_w, r, sizeof(r));
		(void)w;
		_exit(1);
	}
	if (pid < 0)
		return nib_error_errno(err, "cannot build in a sandbox: cannot create user, "
					    "mount, PID, IPC, UTS and network namespaces");
	closep(&rep_w);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pidfd >= 0)
		close(pidfd);
	n = read_upto(rep_r, rep, sizeof(rep));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (n != (ssize_t)sizeof(rep))
		return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
				     "cannot build in a sandbox: the namespace test failed");
	if (rep[0] == PROBE_PRIVATE)
		return nib_error_set(err, NIB_E_UNSUPPORTED, rep[1],
				     "cannot build in a sandbox: cannot make '/' private in a "
				     "new mount namespace");
	return nib_error_set(err, NIB_E_UNSUPPORTED, rep[1],
			     "cannot build in a sandbox: cannot mount a fresh /proc in a new "
			     "PID namespace (is /proc over-mounted?)");
}

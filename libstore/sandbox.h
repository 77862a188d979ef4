/*
 * sandbox.h - start a builder in its own namespaces (the only module of nib
 * that knows about namespaces, mounts and credentials).
 *
 * A builder is cloned into new user, mount, PID, IPC and UTS namespaces, and
 * a new network namespace unless SANDBOX_NETWORK is set (fixed-output
 * derivations; the child unshares that one itself, first thing once
 * released).  The parent maps the IDs (see below) and releases the child,
 * which builds a private root and execs the builder:
 *
 *   /                 a private tmpfs, mounted over spec->root_dir in the
 *                     child's own mount namespace: nothing is created on the
 *                     host, nothing needs cleaning, concurrent builds can share
 *                     root_dir.  Read-only for ordinary builds (after the
 *                     skeleton is made), writable and owned by the build's root
 *                     for uid-range builds.
 *   <store_dir>       spec->output_dir bound read-write (the builder creates
 *                     its outputs there; see "Outputs"), or a directory of the
 *                     private root when output_dir is NULL.
 *   <store paths>     every bind (inputs, sandbox-paths), read-only, nosuid,
 *                     and nodev unless the source is a device.
 *   /build            spec->build_dir, read-write; sandbox_spawn makes it
 *                     host_uid:host_gid mode 0700 (files the caller puts
 *                     there beforehand should be readable by that user).
 *   /tmp              writable, mode 1777, part of the private tmpfs.
 *   /proc             fresh, for the build's PID namespace.
 *   /dev              null zero full random urandom tty bound from the host,
 *                     pts (new instance, ptmx mode 0666), shm (tmpfs 1777),
 *                     fd stdin stdout stderr ptmx links; net/tun and fuse too
 *                     in uid-range builds when the host has them.
 *   /etc              passwd, group (Nix's contents), hosts (127.0.0.1 and ::1
 *                     localhost); with SANDBOX_NETWORK the host's hosts,
 *                     resolv.conf, services and an nsswitch.conf instead.
 *   /sys              uid-range builds only: sysfs (read-only if the kernel
 *                     refuses read-write), and cgroup2 at /sys/fs/cgroup when
 *                     the build has a v2 cgroup (delegated, own namespace).
 *                     sysfs needs the build's own network namespace, so a
 *                     uid-range build with SANDBOX_NETWORK fails ("sandbox
 *                     setup failed at 'mounting /sys'").
 *
 * then pivot_root (never chroot: it would forbid nested user namespaces),
 * hostname "localhost", loopback up, supplementary groups dropped,
 * PR_SET_NO_NEW_PRIVS, the seccomp program, all other descriptors closed,
 * signals reset, RLIMIT_CORE 0, umask 022, cwd /build, setgid/setuid to the
 * build user, parent-death signal SIGKILL, execve.
 *
 * IDs.  Ordinary builds: the builder is uid 1000 / gid 100 inside, mapped to
 * host_uid / host_gid (one ID each), setgroups denied.  uid-range builds
 * (SANDBOX_UID_RANGE): root inside, "0 host_uid id_count" mapped (id_count >=
 * 65536), setgroups allowed, a cgroup namespace, the cgroup delegated.  In both
 * modes files the builder creates are owned by host_uid/host_gid (or higher
 * IDs of the range in uid-range builds) on the host.
 *
 * Outputs.  output_dir must be an empty directory on the same filesystem as
 * the real store (so outputs can be renamed into place) inside a directory
 * only root can traverse; sandbox_spawn sets it to root:host_gid mode 1775.
 * The builder creates <store_dir>/<name> there.  Mountpoints for binds under
 * store_dir are created in output_dir too (empty files/directories owned by
 * the build user, one per input, as in Nix); after the build the caller
 * renames the declared outputs out and removes the whole output_dir, which
 * it may do later, off the build's critical path (on a slow disk, removing
 * the mountpoints of a large closure takes milliseconds per input).
 *
 * Read-only inputs.  Ordinary builds cannot change any mount (no
 * capabilities; in a nested user namespace the mounts are locked).  A
 * uid-range build is root of the namespace that made the mounts and could
 * remount an input read-write, as under Nix; store files stay protected by
 * their owner and mode (root, which is not mapped, 0444/0555).
 *
 * Failures inside the child before exec are sent to the parent and returned
 * by sandbox_spawn: "sandbox setup failed at 'mounting /proc': Permission
 * denied", or "cannot execute builder '/bin/x': No such file or directory"
 * (NIB_E_SYS, sys_errno set).  A sandbox is never silently weakened.
 *
 * Without a sandbox (SANDBOX_NONE: `sandbox = false`, or `relaxed` and
 * __noChroot).  The builder runs directly as host_uid / host_gid, in the
 * host's user, PID, network, IPC and UTS namespaces, seeing the host's
 * files; sandbox-paths and binds do not apply.  It only gets a private
 * mount namespace (/ made recursively private first, so nothing propagates
 * to the host) in which
 *
 *   <store_dir>       is an overlayfs: the real store (store_dir itself)
 *                     as the lower layer, output_dir/upper as the upper
 *                     one (root:host_gid 1775, like Nix's store for build
 *                     users).  The builder can create new entries but not
 *                     change existing store paths (root's, read-only); what
 *                     it creates or deletes lands in output_dir/upper only,
 *                     never in the real store.  Deleting a store path in its
 *                     view leaves a whiteout (a 0/0 character device) in
 *                     upper: the caller takes only the declared outputs.
 *   /etc/passwd,      with user_name set: copies of the host's files (minus
 *   /etc/group        entries already called user_name) plus
 *                     "user_name:x:host_uid:host_gid:Nix build user:
 *                     /homeless-shelter:/noshell" and "user_name:!:host_gid:",
 *                     bound over the host's files, read-only; the builder
 *                     never runs as a UID without a name.  Only this mount
 *                     namespace sees them.  The nscd socket, when there is
 *                     one, is hidden so that lookups read the files.
 *
 * and then: new session, stdio, other descriptors closed, RLIMIT_CORE 0,
 * umask 022, cwd build_dir (its host path), setgroups(groups, or host_gid
 * alone), setresgid/setresuid checked with getres[ug]id, capabilities
 * dropped, parent-death signal, PR_SET_NO_NEW_PRIVS, the seccomp program,
 * execve.  output_dir must be an empty directory only root can reach, on
 * the same mount as the store so outputs can be renamed into place (inside
 * the store directory is fine: overlayfs accepts an upper layer below its
 * lower one and refuses lookups that would reach it); sandbox_spawn creates
 * upper/, work/, passwd and group there.  The caller must make sure that
 * nothing exists in the real store at the output paths (the overlay would
 * show it to the builder), kill every process of host_uid after the builder
 * exits (no PID namespace does it), and take the declared outputs from
 * output_dir/upper.  Store paths containing ',', ':' or '\' are refused
 * (overlayfs options cannot hold them unescaped).  A failure to set any of
 * this up is an error ("setup of the unsandboxed build failed at 'mounting
 * the store overlay on /nib/store': …"), never a weaker build.
 *
 * The calling process must be single-threaded when it calls sandbox_spawn
 * (the child is created with a raw clone).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "cleanup.h"
#include "error.h"

struct cgroup_build;
struct seccomp_bpf;

/* IDs of the build user inside an ordinary (single-ID) sandbox. */
#define SANDBOX_BUILD_UID 1000
#define SANDBOX_BUILD_GID 100
/* Smallest range a uid-range build accepts (Nix's requirement). */
#define SANDBOX_UID_RANGE_MIN 65536

enum sandbox_flags {
	SANDBOX_UID_RANGE = 1 << 0, /* root inside with the whole range (uid-range feature) */
	SANDBOX_NETWORK = 1 << 1,   /* share the host's network (fixed-output derivations) */
	SANDBOX_NONE = 1 << 2,	    /* no sandbox: see "Without a sandbox" above */
};

enum sandbox_bind_flags {
	SANDBOX_BIND_OPTIONAL = 1 << 0, /* skip when the source does not exist ("path?") */
	SANDBOX_BIND_WRITABLE = 1 << 1, /* do not make the bind read-only */
};

/*
 * A host path made visible inside.  A source that is a symlink is recreated
 * as the same symlink (symlinks cannot be bound); any other source is bound
 * at target, non-recursively (mounts below the source are not visible).
 */
struct sandbox_bind {
	const char *target; /* absolute path inside, normalised (no ., .., //) */
	const char *source; /* absolute host path */
	unsigned flags;	    /* enum sandbox_bind_flags */
};

struct sandbox_spec {
	const char *builder; /* path inside the sandbox */
	char *const *argv;   /* NULL-terminated; argv[0] included */
	char *const *envp;   /* NULL-terminated; the complete environment */

	uid_t host_uid;	   /* first host UID of the slot */
	gid_t host_gid;	   /* first host GID of the slot */
	uint32_t id_count; /* IDs in the slot (mapped only with SANDBOX_UID_RANGE) */
	unsigned flags;	   /* enum sandbox_flags */

	const char *root_dir;	/* existing empty host directory, used as mountpoint only */
	const char *build_dir;	/* host directory that becomes /build */
	const char *store_dir;	/* logical store directory inside, e.g. "/nib/store" */
	const char *output_dir; /* host directory that becomes store_dir; NULL: private */

	const struct sandbox_bind *binds; /* inputs and sandbox-paths, in any order */
	size_t n_binds;

	struct cgroup_build *cgroup;	   /* NULL: no cgroup (the caller kills by UID) */
	const struct seccomp_bpf *seccomp; /* NULL only with filter-syscalls = false */

	int stdout_fd; /* builder's stdout, e.g. the log pipe; -1: /dev/null */
	int stderr_fd; /* builder's stderr; -1: /dev/null */

	/* SANDBOX_NONE only. */
	const char *user_name; /* the account added for host_uid; NULL: it has one */
	const gid_t *groups;   /* supplementary groups; NULL: host_gid alone */
	size_t n_groups;
};

/* Fill spec with empty values (fds -1, no flags). */
void sandbox_spec_init(struct sandbox_spec *spec);

/*
 * Decide up front whether sandboxed builds can run here, so a build fails
 * before anything is allocated rather than running unsandboxed: user
 * namespaces enabled, a test child can create user+mount+PID namespaces, make
 * / private and mount a fresh /proc.  When the caller is root it also drops
 * the process's supplementary groups (a sandboxed builder would otherwise
 * inherit them, and setgroups is denied inside); call it once at start.
 * Errors name what is missing ("user namespaces are disabled
 * (/proc/sys/user/max_user_namespaces is 0)").
 */
int sandbox_check_available(struct nib_error **err);

/*
 * When the caller is root, drop the supplementary groups of the calling
 * thread, the one that will clone the builders (sandbox_check_available
 * does this first).  This thread only: glibc's setgroups() signals every
 * other thread of the process and waits until each has complied - with
 * the store's background sync running (local_store_sync_start), a wait
 * for its fsync.  Those threads only sync, checkpoint or build the
 * filter; no builder is ever cloned from them.
 */
int sandbox_drop_groups(struct nib_error **err);

/*
 * Parse one sandbox-paths entry: "PATH", "TARGET=SOURCE", either with a
 * trailing '?' (optional).  *ret_target and *ret_source are new strings
 * owned by the caller; *ret_flags gets SANDBOX_BIND_OPTIONAL or 0.
 * Errors: relative or unnormalised paths (NIB_E_INVALID).
 */
int sandbox_parse_path(const char *entry, char **ret_target, char **ret_source, unsigned *ret_flags,
		       struct nib_error **err);

struct sandbox;

/*
 * Start the builder.  Returns once the builder has been exec'd (or setup
 * failed).  On success *ret owns the running sandbox: wait for it with
 * sandbox_wait and free it with sandbox_free.  spec and everything it points
 * to may be freed once this returns.  Errors: invalid specs (NIB_E_INVALID),
 * setup failures in the child (NIB_E_SYS with the child's errno, message
 * naming the step), clone failures.  A failed spawn leaves no process behind.
 */
int sandbox_spawn(const struct sandbox_spec *spec, struct sandbox **ret, struct nib_error **err);

/*
 * sandbox_spawn in two steps, for a caller that runs several builds and
 * should not sit idle while a child sets its sandbox up (a few
 * milliseconds of mounts): sandbox_spawn_start returns once the child has
 * been created, mapped and released, with *ret owning it; the setup goes on
 * in the child.  sandbox_report_fd then becomes readable (EOF when the
 * builder was exec'd, a report when setup failed); call
 * sandbox_spawn_finish, which returns 0, or -1 with the error sandbox_spawn
 * would have returned (the child is then killed and reaped).  Do not call
 * sandbox_wait before sandbox_spawn_finish.  Errors of
 * sandbox_spawn_start are sandbox_spawn's, and leave nothing behind.
 */
int sandbox_spawn_start(const struct sandbox_spec *spec, struct sandbox **ret,
			struct nib_error **err);
/* The setup report's descriptor, or -1 once sandbox_spawn_finish has run. Owned by sb. */
int sandbox_report_fd(const struct sandbox *sb);
int sandbox_spawn_finish(struct sandbox *sb, struct nib_error **err);

/* PID of the builder (PID 1 of its namespace) in the caller's namespace. */
pid_t sandbox_pid(const struct sandbox *sb);

/* A pidfd of the builder (readable in poll() once it exits), or -1 on kernels
 * without pidfds.  Owned by sb. */
int sandbox_pidfd(const struct sandbox *sb);

/*
 * Send sig to the builder.  SIGKILL to PID 1 ends the whole PID namespace;
 * use cgroup_build_kill to also catch what left it (nothing can, but belt and
 * braces).  Sending to an exited builder is not an error.
 */
int sandbox_kill(struct sandbox *sb, int sig, struct nib_error **err);

/*
 * Reap the builder.  With block false, returns 0 when it is still running.
 * Returns 1 once it has exited, with *ret_status (wait status, as
 * waitpid's) and *ret_usage (its resource usage, including reaped
 * descendants: ru_maxrss is the peak memory fallback); either may be NULL.
 * Calling it again after that returns 1 with the same values.
 */
int sandbox_wait(struct sandbox *sb, bool block, int *ret_status, struct rusage *ret_usage,
		 struct nib_error **err);

/* Free the handle.  A builder still running is killed and reaped first. NULL is fine. */
void sandbox_free(struct sandbox *sb);

DEFINE_CLEANUP_FUNC(struct sandbox, sandbox_free)
#define cleanup_sandbox __attribute__((cleanup(sandbox_freep)))

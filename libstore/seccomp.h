/*
 * seccomp.h - the system-call filter every builder runs under.
 *
 * The filter is a deny list with the default action "allow" (Nix's policy):
 *  - chmod, fchmod, fchmodat, fchmodat2 with S_ISUID or S_ISGID in the mode
 *    fail with EPERM, so a build cannot create setuid/setgid files;
 *  - the extended-attribute calls (set/get/list/remove, their l- and f-
 *    variants and the newer *xattrat calls) fail with ENOTSUP, because a NAR
 *    cannot represent extended attributes.
 * On x86_64 the filter covers the x86_64, x32 and i386 system-call ABIs, on
 * aarch64 also the 32-bit arm ABI.  A call made through an ABI the filter does
 * not know kills the caller.
 *
 * The program is compiled once (seccomp_bpf_build) in the parent and
 * installed in each sandbox child with seccomp_bpf_install, which performs no
 * allocation.  This is the only file of nib that includes <seccomp.h>.
 */
#pragma once

#include <stddef.h>

#include "cleanup.h"
#include "error.h"

struct seccomp_bpf;

/*
 * Compile the builder filter into a BPF program.  On success *ret owns a new
 * program (free it with seccomp_bpf_free).  Errors: libseccomp failures
 * (reported with their errno), an architecture nib has no syscall numbers for.
 */
int seccomp_bpf_build(struct seccomp_bpf **ret, struct nib_error **err);

/*
 * Install the program for the calling thread.  The caller must have set
 * PR_SET_NO_NEW_PRIVS (or hold CAP_SYS_ADMIN).  Async-signal-safe: meant for
 * a freshly cloned child.  Returns 0 or -errno.
 */
int seccomp_bpf_install(const struct seccomp_bpf *bpf);

/* Number of BPF instructions (for tests and diagnostics). */
size_t seccomp_bpf_length(const struct seccomp_bpf *bpf);

/* Free a program; NULL is fine. */
void seccomp_bpf_free(struct seccomp_bpf *bpf);

DEFINE_CLEANUP_FUNC(struct seccomp_bpf, seccomp_bpf_free)
#define cleanup_seccomp_bpf __attribute__((cleanup(seccomp_bpf_freep)))

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "cleanup.h"
#include "seccomp.h"
#include "util.h"
#include "banned.h"

/* The kernel's limit (BPF_MAXINSNS); a program of ours is far smaller. */
#define MAX_INSNS 4096
#define X32_SYSCALL_BIT 0x40000000U
#define SETID_BITS (S_ISUID | S_ISGID)

struct seccomp_bpf {
	struct sock_fprog prog;
};

DEFINE_CLEANUP_FUNC(void, seccomp_release)
#define cleanup_scmp __attribute__((cleanup(seccomp_releasep)))

/* Calls that libseccomp translates for every ABI of the filter. */
static const char *const xattr_calls[] = {
	"setxattr",  "lsetxattr",  "fsetxattr",	 "getxattr",	"lgetxattr",	"fgetxattr",
	"listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
};

static const struct {
	const char *name;
	unsigned mode_arg;
} chmod_calls[] = {
	{ "chmod", 1 },
	{ "fchmod", 1 },
	{ "fchmodat", 2 },
};

/*
 * Calls newer than the libseccomp nib may be built with (Debian 12 ships
 * 2.5.4, which cannot name the *xattrat family, and whose name-based
 * translation makes it impossible to add them for the compat ABIs).  They are
 * matched by a hand-written prologue instead.  Their numbers come from the
 * unified numbering every architecture below shares since Linux 5.1.
 */
enum newer_kind {
	NEWER_ENOTSUP,
	NEWER_SETID_MODE
};
static const struct {
	unsigned nr;
	enum newer_kind kind;
	unsigned mode_arg;
} newer_calls[] = {
	{ 452, NEWER_SETID_MODE, 2 }, /* fchmodat2 */
	{ 463, NEWER_ENOTSUP, 0 },    /* setxattrat */
	{ 464, NEWER_ENOTSUP, 0 },    /* getxattrat */
	{ 465, NEWER_ENOTSUP, 0 },    /* listxattrat */
	{ 466, NEWER_ENOTSUP, 0 },    /* removexattrat */
};

struct abi {
	uint32_t audit_arch;
	bool x32_bit; /* the x32 ABI shares AUDIT_ARCH_X86_64 and tags numbers with bit 30 */
};

#if defined(__x86_64__)
static const uint32_t extra_scmp_arches[] = { SCMP_ARCH_X86, SCMP_ARCH_X32 };
static const struct abi prologue_abis[] = { { AUDIT_ARCH_X86_64, true },
					    { AUDIT_ARCH_I386, false } };
#elif defined(__aarch64__)
static const uint32_t extra_scmp_arches[] = { SCMP_ARCH_ARM };
static const struct abi prologue_abis[] = { { AUDIT_ARCH_AARCH64, false },
					    { AUDIT_ARCH_ARM, false } };
#elif defined(__i386__)
static const uint32_t extra_scmp_arches[] = {};
static const struct abi prologue_abis[] = { { AUDIT_ARCH_I386, false } };
#elif defined(__riscv) && __riscv_xlen == 64
static const uint32_t extra_scmp_arches[] = {};
static const struct abi prologue_abis[] = { { AUDIT_ARCH_RISCV64, false } };
#else
#define NO_PROLOGUE_ABIS 1
#endif

/*
 * A tiny assembler for the prologue: forward jumps name a label, resolved in
 * a second pass.  Labels are small integers; label_pos[] holds where each one
 * landed.
 */
enum {
	LBL_NONE = -1,
	LBL_CHECK = 0,
	LBL_DONE,
	LBL_ENOTSUP,
	LBL_EPERM,
	LBL_ABI0
};
#define MAX_LABELS (LBL_ABI0 + 8 + ARRAY_SIZE(newer_calls))

struct asm_insn {
	struct sock_filter f;
	int jt, jf; /* labels for conditional jumps; jt alone for BPF_JA */
};

struct bpf_asm {
	struct asm_insn insn[128];
	size_t n;
	int label_pos[MAX_LABELS];
};

static void emit(struct bpf_asm *a, uint16_t code, uint32_t k, int jt, int jf)
{
	if (a->n >= ARRAY_SIZE(a->insn))
		abort(); /* the prologue has a fixed, small size */
	a->insn[a->n].f = (struct sock_filter){ .code = code, .k = k };
	a->insn[a->n].jt = jt;
	a->insn[a->n].jf = jf;
	a->n++;
}

static void label(struct bpf_asm *a, int l)
{
	a->label_pos[l] = (int)a->n;
}

static int resolve(struct bpf_asm *a, struct nib_error **err)
{
	for (size_t i = 0; i < a->n; i++) {
		struct asm_insn *in = &a->insn[i];
		bool is_ja = BPF_CLASS(in->f.code) == BPF_JMP && BPF_OP(in->f.code) == BPF_JA;
		int targets[2] = { in->jt, in->jf };

		for (int t = 0; t < 2; t++) {
			int off;
			if (targets[t] == LBL_NONE)
				continue;
			off = a->label_pos[targets[t]] - (int)i - 1;
			if (a->label_pos[targets[t]] < 0 || off < 0 || (!is_ja && off > 255))
				return nib_error_set(
					err, NIB_E_INVALID, 0,
					"internal error assembling the syscall filter");
			if (is_ja)
				in->f.k = (uint32_t)off;
			else if (t == 0)
				in->f.jt = (uint8_t)off;
			else
				in->f.jf = (uint8_t)off;
		}
	}
	return 0;
}

#ifndef NO_PROLOGUE_ABIS
/*
 * The prologue: for each ABI, load the call number (without the x32 tag),
 * then compare it with newer_calls.  Anything else falls through to the
 * libseccomp program that follows.
 */
static int build_prologue(struct bpf_asm *a, struct nib_error **err)
{
	const uint32_t arch_off = offsetof(struct seccomp_data, arch);
	const uint32_t nr_off = offsetof(struct seccomp_data, nr);
	size_t nabi = ARRAY_SIZE(prologue_abis);

	for (size_t i = 0; i < MAX_LABELS; i++)
		a->label_pos[i] = -1;
	emit(a, BPF_LD | BPF_W | BPF_ABS, arch_off, LBL_NONE, LBL_NONE);
	for (size_t i = 0; i < nabi; i++)
		emit(a, BPF_JMP | BPF_JEQ | BPF_K, prologue_abis[i].audit_arch, LBL_ABI0 + (int)i,
		     i + 1 < nabi ? LBL_NONE : LBL_DONE);
	for (size_t i = 0; i < nabi; i++) {
		label(a, LBL_ABI0 + (int)i);
		emit(a, BPF_LD | BPF_W | BPF_ABS, nr_off, LBL_NONE, LBL_NONE);
		if (prologue_abis[i].x32_bit)
			emit(a, BPF_ALU | BPF_AND | BPF_K, ~X32_SYSCALL_BIT, LBL_NONE, LBL_NONE);
		emit(a, BPF_JMP | BPF_JA, 0, LBL_CHECK, LBL_NONE);
	}
	label(a, LBL_CHECK);
	for (size_t i = 0; i < ARRAY_SIZE(newer_calls); i++) {
		int target = newer_calls[i].kind == NEWER_ENOTSUP
				     ? LBL_ENOTSUP
				     : LBL_ABI0 + (int)nabi + (int)i; /* its mode check */
		emit(a, BPF_JMP | BPF_JEQ | BPF_K, newer_calls[i].nr, target, LBL_NONE);
	}
	emit(a, BPF_JMP | BPF_JA, 0, LBL_DONE, LBL_NONE);
	for (size_t i = 0; i < ARRAY_SIZE(newer_calls); i++) {
		/* The low 32 bits of the argument (every supported ABI is little-endian). */
		uint32_t arg_off = (uint32_t)offsetof(struct seccomp_data, args) +
				   8U * newer_calls[i].mode_arg;
		if (newer_calls[i].kind != NEWER_SETID_MODE)
			continue;
		label(a, LBL_ABI0 + (int)nabi + (int)i);
		emit(a, BPF_LD | BPF_W | BPF_ABS, arg_off, LBL_NONE, LBL_NONE);
		emit(a, BPF_JMP | BPF_JSET | BPF_K, SETID_BITS, LBL_EPERM, LBL_DONE);
	}
	label(a, LBL_ENOTSUP);
	emit(a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOTSUP & SECCOMP_RET_DATA), LBL_NONE,
	     LBL_NONE);
	label(a, LBL_EPERM);
	emit(a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA), LBL_NONE,
	     LBL_NONE);
	label(a, LBL_DONE);
	return resolve(a, err);
}
#endif

static int add_rules(scmp_filter_ctx ctx, struct nib_error **err)
{
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(extra_scmp_arches); i++) {
		r = seccomp_arch_add(ctx, extra_scmp_arches[i]);
		if (r < 0 && r != -EEXIST)
			return nib_error_set(err, NIB_E_SYS, -r,
					     "cannot add architecture %#x to the syscall filter",
					     extra_scmp_arches[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(chmod_calls); i++) {
		int nr = seccomp_syscall_resolve_name(chmod_calls[i].name);
		unsigned a = chmod_calls[i].mode_arg;
		if (nr == __NR_SCMP_ERROR)
			return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
					     "libseccomp does not know '%s'", chmod_calls[i].name);
		for (mode_t bit = S_ISGID; bit <= S_ISUID; bit <<= 1) {
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
					     SCMP_CMP(a, SCMP_CMP_MASKED_EQ, bit, bit));
			if (r < 0)
				return nib_error_set(err, NIB_E_SYS, -r,
						     "cannot add a filter rule for '%s'",
						     chmod_calls[i].name);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(xattr_calls); i++) {
		int nr = seccomp_syscall_resolve_name(xattr_calls[i]);
		if (nr == __NR_SCMP_ERROR)
			return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
					     "libseccomp does not know '%s'", xattr_calls[i]);
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTSUP), nr, 0);
		if (r < 0)
			return nib_error_set(err, NIB_E_SYS, -r,
					     "cannot add a filter rule for '%s'", xattr_calls[i]);
	}
	return 0;
}

/* libseccomp 2.5 exports only to a file descriptor: go through a memfd. */
static int export_bpf(scmp_filter_ctx ctx, char **ret_buf, size_t *ret_len, struct nib_error **err)
{
	cleanup_close int fd = memfd_create("nib-seccomp", MFD_CLOEXEC);
	int r;

	if (fd < 0)
		return nib_error_errno(err, "cannot create a memfd for the syscall filter");
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return nib_error_set(err, NIB_E_SYS, -r, "cannot export the syscall filter");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return nib_error_errno(err, "cannot rewind the syscall filter");
	if (read_fd_all(fd, MAX_INSNS * sizeof(struct sock_filter), ret_buf, ret_len, err) < 0)
		return nib_error_prefix(err, "reading the syscall filter");
	return 0;
}

int seccomp_bpf_build(struct seccomp_bpf **ret, struct nib_error **err)
{
#ifdef NO_PROLOGUE_ABIS
	return nib_error_set(err, NIB_E_UNSUPPORTED, 0,
			     "no syscall filter is defined for this architecture");
#else
	cleanup_scmp scmp_filter_ctx ctx = NULL;
	cleanup_free char *body = NULL;
	cleanup_free struct bpf_asm *pro = xcalloc(1, sizeof(*pro));
	struct seccomp_bpf *bpf;
	struct sock_filter *insns;
	size_t body_len = 0, n;

	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL)
		return nib_error_set(err, NIB_E_SYS, ENOMEM, "cannot create a syscall filter");
	if (add_rules(ctx, err) < 0 || export_bpf(ctx, &body, &body_len, err) < 0 ||
	    build_prologue(pro, err) < 0)
		return -1;
	if (body_len == 0 || body_len % sizeof(struct sock_filter) != 0)
		return nib_error_set(err, NIB_E_INVALID, 0,
				     "libseccomp produced a malformed program (%zu bytes)",
				     body_len);
	n = pro->n + body_len / sizeof(struct sock_filter);
	if (n > MAX_INSNS)
		return nib_error_set(err, NIB_E_INVALID, 0, "the syscall filter is too long");
	insns = xcalloc(n, sizeof(*insns));
	for (size_t i = 0; i < pro->n; i++)
		insns[i] = pro->insn[i].f;
	memcpy(insns + pro->n, body, body_len);
	bpf = xcalloc(1, sizeof(*bpf));
	bpf->prog.len = (unsigned short)n;
	bpf->prog.filter = insns;
	*ret = bpf;
	return 0;
#endif
}

int seccomp_bpf_install(const struct seccomp_bpf *bpf)
{
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &bpf->prog, 0, 0) < 0)
		return -errno;
	return 0;
}

size_t seccomp_bpf_length(const struct seccomp_bpf *bpf)
{
	return bpf->prog.len;
}

void seccomp_bpf_free(struct seccomp_bpf *bpf)
{
	if (bpf == NULL)
		return;
	free(bpf->prog.filter);
	free(bpf);
}

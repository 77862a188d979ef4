#!/usr/bin/env bash
# The sandbox on "older kernels": clone3, the new mount API, close_range and
# pidfd_send_signal made to fail with ENOSYS (tests/helpers/enosys); and no
# descriptor of the parent leaks into a builder either way.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sandbox-lib.sh"

require_sandbox
plan 14

SLOT=105
ENOSYS="$abs_top_builddir/tests/helpers/enosys"
OLD=clone3,open_tree,move_mount,mount_setattr,close_range,pidfd_send_signal
mkdir -p "$TEST_ROOT/store/aaa-input"
echo data >"$TEST_ROOT/store/aaa-input/file"
IN=(--bind /nib/store/aaa-input="$TEST_ROOT/store/aaa-input")
PROBE_FDS='exec /bin/probe fds -'

# fd 7 is open without close-on-exec in sandbox-run: the builder must not get it.
run_ok "descriptors of the parent do not leak" sb $SLOT -- /bin/sh -c "$PROBE_FDS" 7</etc/hostname
is "only stdin, stdout and stderr" "$OUT" "0 1 2"

run_ok "old kernel: a build runs" "$ENOSYS" $OLD bash -c ". '$(dirname "$0")/sandbox-lib.sh'; TEST_ROOT='$TEST_ROOT'; sb $SLOT ${IN[*]} -- /bin/sh -c 'id -u; cat /nib/store/aaa-input/file; $PROBE_FDS' 7</etc/hostname"
is "as the build user, with its input, without leaked descriptors" "$(echo $OUT)" "1000 data 0 1 2"
run_fails "old kernel: inputs are still read-only" 1 "$ENOSYS" $OLD bash -c ". '$(dirname "$0")/sandbox-lib.sh'; TEST_ROOT='$TEST_ROOT'; sb $SLOT ${IN[*]} -- /bin/sh -c 'echo x >/nib/store/aaa-input/file'"
like "with EROFS" "$ERR" "Read-only file system"
run_ok "old kernel: the filter still holds" "$ENOSYS" $OLD bash -c ". '$(dirname "$0")/sandbox-lib.sh'; TEST_ROOT='$TEST_ROOT'; sb $SLOT -- /bin/sh -c 'touch f; /bin/probe chmod f 4755; /bin/probe setxattr f; true'"
is "EPERM and ENOTSUP" "$(echo $OUT)" "EPERM EOPNOTSUPP"
run_ok "old kernel: uid-range" "$ENOSYS" $OLD bash -c ". '$(dirname "$0")/sandbox-lib.sh'; TEST_ROOT='$TEST_ROOT'; sb $SLOT --uid-range -- /bin/sh -c 'id -u; test -d /sys/kernel && echo sys'"
is "root with /sys" "$(echo $OUT)" "0 sys"

if [ -n "$(host_v2_cgroup_dir)" ]; then
	CG=nib-t0303-$$
	run_ok "old kernel: the builder joins its cgroup without CLONE_INTO_CGROUP" "$ENOSYS" $OLD bash -c ". '$(dirname "$0")/sandbox-lib.sh'; TEST_ROOT='$TEST_ROOT'; sb $SLOT --cgroup $CG --check-leftovers -- /bin/sh -c 'grep ^0:: /proc/self/cgroup; setsid sleep 1000 & true'"
	own=$(sed -n 's/^0:://p' /proc/self/cgroup)
	is "it is in the build cgroup" "$OUT" "0::${own%/}/$CG"
	run_fails "old kernel: a timeout kills through kill(2)" 137 "$ENOSYS" $OLD bash -c ". '$(dirname "$0")/sandbox-lib.sh'; TEST_ROOT='$TEST_ROOT'; sb $SLOT --cgroup $CG --timeout 1 -- /bin/sh -c 'sleep 1000'"
	is "the cgroup is gone" "$(ls "$(host_v2_cgroup_dir)" | grep -c "^$CG\$")" "0"
else
	for _ in 1 2 3 4; do ok "# SKIP no cgroup v2"; done
fi

done_testing

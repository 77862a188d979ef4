# sandbox-lib.sh - helpers for the sandbox tests; source after lib.sh.
#
# The tests drive tests/helpers/sandbox-run (the sandbox engine without a
# store) with /bin/busybox as the builder's /bin/sh.  Each test file uses its
# own slot of a test ID range (0x70000000 up, away from the default start-id
# that the UID pool, the daemon and other tests use) so that parallel tests
# never share IDs and the leftover checks only see our own processes.

: "${abs_top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
SANDBOX_RUN="$abs_top_builddir/tests/helpers/sandbox-run"
PROBE="$abs_top_builddir/tests/helpers/syscall-probe"
NIB_CONTAINER="$abs_top_builddir/libexec/nib-container"
BUSYBOX=/bin/busybox
START_ID=1879048192
IDS_PER_SLOT=262144

slot_first_id() { echo $((START_ID + $1 * IDS_PER_SLOT)); }

require_sandbox() {
	require_root
	[ -x "$BUSYBOX" ] || skip_all "needs $BUSYBOX (busybox-static)"
	[ -x "$SANDBOX_RUN" ] || skip_all "sandbox-run not built"
	mkdir -p "$TEST_ROOT/sandbox-root" "$TEST_ROOT/build"
	if ! "$SANDBOX_RUN" --root-dir "$TEST_ROOT/sandbox-root" --build-dir "$TEST_ROOT/build" \
		--bind /bin/sh="$BUSYBOX" -- /bin/sh -c true 2>"$TEST_ROOT/.probe"; then
		skip_all "no sandbox here: $(cat "$TEST_ROOT/.probe")"
	fi
}

# sb SLOT [SANDBOX-RUN OPTIONS] -- BUILDER ARGS: run in the sandbox with the IDs
# of SLOT, busybox as /bin/sh (Debian's busybox-static runs its applets without
# PATH), the probe at /bin/probe and a fresh /build.  Runs may be concurrent.
sb() {
	local slot=$1 build; shift
	build=$(mktemp -d "$TEST_ROOT/build.XXXXXX")
	"$SANDBOX_RUN" --timeout 120 --uid "$(slot_first_id "$slot")" --root-dir "$TEST_ROOT/sandbox-root" \
		--build-dir "$build" --bind /bin/sh="$BUSYBOX" --bind /bin/probe="$PROBE" "$@"
}

# The host directory of this process's cgroup v2, or nothing.
host_v2_cgroup_dir() {
	local mnt path
	mnt=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
		/proc/self/mountinfo)
	path=$(sed -n 's/^0:://p' /proc/self/cgroup)
	[ -n "$mnt" ] && [ -n "$path" ] && echo "$mnt${path%/}"
}

#!/usr/bin/env bash
# sandbox = false: the builder runs on the host as the slot's first UID, named
# in a private /etc/passwd only it sees, and writes its outputs through an
# overlay on the store: nothing else reaches the real store, the host's
# account files never change, and nothing of the build is left behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

require_root
grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null ||
	skip_all "no overlayfs"
id_range_lock 41
# A store at its logical path (no store-root), reachable by the build user.
export NIB_STORE_DIR="$TEST_ROOT/store"
STORE=$NIB_STORE_DIR
chmod 755 "$TEST_ROOT"
cat >"$NIB_CONF_DIR/nib.conf" <<CONF
start-id = $FIRST_ID
id-count = $((4 * IDS_PER_SLOT))
ids-per-build = $IDS_PER_SLOT
sandbox = false
fsync-metadata = false
CONF
chmod 644 "$NIB_CONF_DIR/nib.conf"
SYSTEM=$("$NIB" show-config system)
P='export PATH=/usr/sbin:/usr/bin:/sbin:/bin; '
mkdrv "$TEST_ROOT/probe.json" probe "$P"'echo ok > $out'
if ! "$NIB" build "$TEST_ROOT/probe.json" >/dev/null 2>"$TEST_ROOT/.probe"; then
	grep -q "overlay" "$TEST_ROOT/.probe" && skip_all "cannot mount an overlay: $(cat "$TEST_ROOT/.probe")"
	echo "Bail out! a trivial unsandboxed build fails: $(cat "$TEST_ROOT/.probe")"
	exit 1
fi
plan 75

# Orphans of an unsandboxed builder are reaped by the host's init, which may
# take a moment (no PID namespace reaps them): a zombie is dead, skip it.
range_processes() {
	local first=$1 count=$2 f pid
	for f in /proc/[0-9]*/status; do
		pid=${f#/proc/}
		pid=${pid%/status}
		awk -v lo="$first" -v hi=$((first + count)) -v pid="$pid" '
			/^State:/ && $2 == "Z" { exit }
			/^Uid:/ { for (i = 2; i <= 5; i++) if ($i >= lo && $i < hi) { print pid; exit } }' \
			"$f" 2>/dev/null
	done
}
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"; }

# --- who the builder is
mkdrv "$TEST_ROOT/who.json" who "$P"'
mkdir $out
id -u > $out/uid; id -g > $out/gid; id -G > $out/groups; id -un > $out/name
getent passwd "$(id -u)" > $out/passwd
getent group "$(id -g)" > $out/group
echo "$NIX_BUILD_TOP $TMPDIR $PWD $(pwd) $HOME" > $out/dirs
grep -E "^Cap(Prm|Eff|Amb)|^NoNewPrivs" /proc/self/status | tr -s "\t " " " > $out/caps
grep " $NIX_STORE " /proc/self/mountinfo | grep -c overlay > $out/overlay
cp "$bigPath" $out/big; echo "$bigPath" > $out/bigpath' --env passAsFile=big --env big=passed
run_ok "an unsandboxed build" "$NIB" build --json "$TEST_ROOT/who.json"
json=$OUT
out=$(sed -n 's/.*"outputs":{"out":"\([^"]*\)".*/\1/p' <<<"$json")
first=$(sed -n 's/.*"uidRange":{"first":\([0-9]*\).*/\1/p' <<<"$json")
like "the result says it was not sandboxed" "$json" '"sandboxed":false'
like "the first ID is one of the test's slots" "$first" "^[0-9]+$"
ok_range=$([ "$first" -ge "$FIRST_ID" ] && [ "$first" -lt $((FIRST_ID + 4 * IDS_PER_SLOT)) ] && echo yes)
is "within the configured pool" "$ok_range" yes
is "the builder's uid is the slot's first UID" "$(cat "$out/uid")" "$first"
is "its gid is the slot's first GID" "$(cat "$out/gid")" "$first"
is "its only group is that GID" "$(cat "$out/groups")" "$first"
is "its name is nixbld" "$(cat "$out/name")" nixbld
is "getent passwd finds it in the private copy" "$(cat "$out/passwd")" \
	"nixbld:x:$first:$first:Nix build user:/homeless-shelter:/noshell"
is "getent group too" "$(cat "$out/group")" "nixbld:!:$first:"
bd="$NIB_STATE_DIR/builds/nib-build-slot-"
like "NIX_BUILD_TOP, TMPDIR and the cwd are the real build directory" "$(cat "$out/dirs")" \
	"^(${bd}[0-9]+/build) \\1 \\1 \\1 /homeless-shelter$"
is "no capabilities, no new privileges" "$(cat "$out/caps")" \
	"$(printf 'CapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapAmb: 0000000000000000\nNoNewPrivs: 1')"
is "the store is an overlay in the builder's view" "$(cat "$out/overlay")" 1
is "but not on the host" "$(grep -c " $STORE " /proc/self/mountinfo)" 0
run_fails "the host has no account for that UID" 2 getent passwd "$first"
is "passAsFile files are in the real build directory" \
	"$(cat "$out/big") $(grep -c "^${bd}[0-9]*/build/\.attr-" "$out/bigpath")" "passed 1"

# --- the host's account files while a build runs
mkdir -m 1777 "$TEST_ROOT/sig"
sum_before=$(cat /etc/passwd /etc/group | sha256sum)
mkdrv "$TEST_ROOT/slow.json" slow "$P"'
id -un > '"$TEST_ROOT"'/sig/started
n=0; while [ ! -e '"$TEST_ROOT"'/sig/go ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
echo done > $out'
"$NIB" build --json "$TEST_ROOT/slow.json" >"$TEST_ROOT/slow.out" 2>"$TEST_ROOT/slow.err" &
bg=$!
for i in $(seq 1 100); do [ -s "$TEST_ROOT/sig/started" ] && break; sleep 0.1; done
is "the running builder sees its name" "$(cat "$TEST_ROOT/sig/started" 2>/dev/null)" nixbld
uid=$(stat -c %u "$TEST_ROOT/sig/started" 2>/dev/null)
like "it is a UID of the pool" "$uid" "^[0-9]+$"
is "meanwhile the host's /etc/passwd and /etc/group are unchanged" \
	"$(cat /etc/passwd /etc/group | sha256sum)" "$sum_before"
is "and name nothing with that UID" "$(getent passwd "$uid"; grep -c "^[^:]*:[^:]*:$uid:" /etc/passwd)" 0
touch "$TEST_ROOT/sig/go"
wait $bg
is "the slow build succeeds" "$?" 0
is "afterwards too" "$(cat /etc/passwd /etc/group | sha256sum)" "$sum_before"

# --- outputs: files, directories, several outputs, references
mkdrv "$TEST_ROOT/dep.json" dep "$P"'mkdir $out; echo data > $out/file'
mkdrv "$TEST_ROOT/multi.json" multi "$P"'
mkdir -p $out/sub; echo in-out > $out/sub/f; ln -s sub/f $out/link
echo "uses $in0" > $dev' --out out --out dev --input ./dep.json
run_ok "directory, file and several outputs" "$NIB" build --json "$TEST_ROOT/multi.json"
mout=$(json_field out "$OUT")
mdev=$(json_field dev "$OUT")
dep=$(ls -d "$STORE"/*-dep)
is "the directory output" "$(cat "$mout/sub/f") $(readlink "$mout/link")" "in-out sub/f"
is "the file output" "$(cat "$mdev")" "uses $dep"
is "they are root's and read-only" "$(stat -c '%u %a' "$mout" "$mout/sub/f" "$mdev" | tr '\n' ' ')" \
	"0 555 0 444 0 444 "
run_ok "they are registered" "$NIB" path-info "$mout" "$mdev"
run_ok "with their references" "$NIB" path-info --references "$mdev"
is "dev refers to the input" "$OUT" "$dep"

# --- the store is not the builder's
mkdrv "$TEST_ROOT/attack.json" attack "$P"'
touch $in0/new 2>/dev/null && { echo wrote into an input; exit 1; }
echo x >> $in0/file 2>/dev/null && { echo appended to an input; exit 1; }
chmod 777 $in0 2>/dev/null && { echo chmod of an input; exit 1; }
rm -rf $in0 2>/dev/null; [ -e $in0/file ] || { echo removed an input; exit 1; }
mv $in0 $NIX_STORE/moved 2>/dev/null && { echo renamed an input; exit 1; }
echo junk > $NIX_STORE/unrelated-name || exit 1
mkdir $NIX_STORE/00000000000000000000000000000000-fake || exit 1
touch $NIX_BUILD_TOP/f
chmod u+s $NIX_BUILD_TOP/f 2>/dev/null && { echo setuid allowed; exit 1; }
chmod g+s $NIX_BUILD_TOP/f 2>/dev/null && { echo setgid allowed; exit 1; }
echo ok > $out' --input ./dep.json
run_ok "inputs cannot be changed; chmod u+s fails" "$NIB" build "$TEST_ROOT/attack.json"
is "the input is intact" "$(cat "$dep/file"; stat -c %a "$dep")" "$(printf 'data\n555')"
is "names the builder made in the store are not in the real store" \
	"$(ls -a "$STORE" | grep -c -e unrelated-name -e fake -e moved)" 0

# --- failures register nothing
mkdrv "$TEST_ROOT/fail.json" fails "$P"'mkdir $out; echo partial > $out/f; exit 3'
run_fails "a failing builder" 1 "$NIB" build --json "$TEST_ROOT/fail.json"
fout=$(json_field out "$OUT")
like "fails with its exit code" "$ERR" "failed with exit code 3"
run_fails "its output is not valid" 1 "$NIB" path-info "$fout"
run_fails "and not in the store" 1 test -e "$fout"
mkdrv "$TEST_ROOT/missing.json" missing "$P"'echo no output'
run_fails "a builder that makes no output" 1 "$NIB" build "$TEST_ROOT/missing.json"
like "says so" "$ERR" "failed to produce output path for output 'out'"
mkdrv "$TEST_ROOT/garbage.json" garbage "$P"'[ -e $out ] && { echo stale output visible; exit 1; }; echo fresh > $out'
gout=$("$NIB" derivation show "$TEST_ROOT/garbage.json" 2>/dev/null |
	sed -n 's/.*"path": *"\([^"]*-garbage\)".*/\1/p' | head -1)
if [ -n "$gout" ]; then
	mkdir "$gout" && echo stale >"$gout/x"
	run_ok "garbage at an output's place is not shown to the builder" "$NIB" build "$TEST_ROOT/garbage.json"
	is "and is replaced" "$(cat "$gout")" fresh
else
	ok "# SKIP cannot compute the output path"
	ok "# SKIP cannot compute the output path"
fi
check_no_leftovers "after the failures"

# --- processes left behind
mkdrv "$TEST_ROOT/daemon.json" daemon "$P"'
setsid sh -c "sleep 1000" </dev/null >/dev/null 2>&1 &
( setsid sh -c "sleep 1000 & exec sleep 1000" & )
sleep 0.2
echo left daemons > $out'
run_ok "a builder that leaves double-forked daemons" "$NIB" build "$TEST_ROOT/daemon.json"
check_no_leftovers "after the daemon builder"
mkdrv "$TEST_ROOT/daemon2.json" daemon-nocg "$P"'
( setsid sh -c "sleep 1000 & exec sleep 1000" & )
echo x > $out'
run_ok "the same without cgroups" "$NIB" --option use-cgroups false build "$TEST_ROOT/daemon2.json"
is "no process of the range is left" "$(range_processes "$FIRST_ID" $((4 * IDS_PER_SLOT)))" ""
mkdrv "$TEST_ROOT/slow2.json" slow2 "$P"'( setsid sleep 1000 & ); sleep 60; echo x > $out'
run_fails "a timeout without cgroups" 1 "$NIB" --option use-cgroups false --option timeout 1 build "$TEST_ROOT/slow2.json"
like "times out" "$ERR" "timed out after 1 seconds"
is "kills everything of the range" "$(range_processes "$FIRST_ID" $((4 * IDS_PER_SLOT)))" ""

# --- what stays refused
mkdrv "$TEST_ROOT/ur.json" ur "$P"'echo x > $out' --feature uid-range
run_fails "uid-range needs the sandbox" 1 "$NIB" --option system-features uid-range build "$TEST_ROOT/ur.json"
like "says so" "$ERR" "feature 'uid-range' is only supported in sandboxed builds \(setting 'sandbox' is false\)"
mkdrv "$TEST_ROOT/det.json" det "$P"'echo same > $out'
run_ok "a build to check" "$NIB" build "$TEST_ROOT/det.json"
dout=$OUT
run_fails "--check needs the sandbox" 1 "$NIB" build --check "$TEST_ROOT/det.json"
like "says so" "$ERR" "cannot check '.*-det.drv': checking is only supported in sandboxed builds \(setting 'sandbox' is false\)"
is "and leaves the checked output alone" "$(cat "$dout" 2>/dev/null)" same
mkdir -p "$TEST_ROOT/root"
run_fails "a relocated store" 1 env NIB_STORE_DIR=/nib/store NIB_STORE_ROOT="$TEST_ROOT/root" \
	NIB_STATE_DIR="$TEST_ROOT/state2" "$NIB" build "$TEST_ROOT/probe.json"
like "is refused, naming the settings" "$ERR" \
	"without a sandbox \(setting 'sandbox' is false\): the store '/nib/store' is relocated to '$TEST_ROOT/root/nib/store' \(setting 'store-root'\).*unset 'store-root' or set 'sandbox = true'"

# --- through the daemon
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
start_daemon && ok "daemon started" || not_ok "daemon started"
mkdrv "$TEST_ROOT/viad.json" via-daemon "$P"'id -un > $out'
run_ok "an unsandboxed build through the daemon" "$NIB" --store daemon build "$TEST_ROOT/viad.json"
is "runs as nixbld too" "$(cat "$OUT" 2>/dev/null)" nixbld
stop_daemon

check_no_leftovers "at the end"
done_testing

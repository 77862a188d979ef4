#!/usr/bin/env bash
# Builds through nib-daemon: an unprivileged user's `nib build` runs in the
# daemon, with the same output as locally; logs reach the client; a client
# that goes away cancels its build and frees its slot.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 29
command -v useradd >/dev/null && command -v setpriv >/dev/null ||
	skip_all "needs useradd and setpriv"
U1=nibb$$
useradd -M -N -s /bin/false "$U1" 2>/dev/null || skip_all "cannot create users"
at_exit "userdel $U1"
as() {
	local u=$1; shift
	: >"$TEST_ROOT/slow.err"
setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups "$@"
}
chmod 755 "$TEST_ROOT"
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
export NIB_NO_PROGRESS=1

plan 22

start_daemon && ok "daemon started" || not_ok "daemon started"

mkdir -p "$TEST_ROOT/d"
mkdrv "$TEST_ROOT/d/one.json" one 'echo building one; echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
run_ok "user builds through the daemon" as "$U1" "$NIB" build "$TEST_ROOT/d/one.json"
ONE=$OUT
like "prints the output path" "$ONE" "^/nib/store/[0-9a-z]{32}-one$"
like "the builder's log reached the client" "$ERR" "^one> building one$"
is "the output is root's" "$(stat -c %U "$TEST_ROOT/root$ONE")" "root"
run_ok "root builds the same locally" "$NIB" --store local build "$TEST_ROOT/d/one.json"
is "same path, nothing rebuilt" "$OUT" "$ONE"
run_ok "building again through the daemon" as "$U1" "$NIB" build "$TEST_ROOT/d/one.json"
is "same path again" "$OUT" "$ONE"

mkdrv "$TEST_ROOT/d/fail.json" fail 'echo about to fail; exit 3'
chmod -R a+rX "$TEST_ROOT/d"
run_fails "a failing build fails through the daemon" 1 as "$U1" "$NIB" build "$TEST_ROOT/d/fail.json"
like "the error says why" "$ERR" "fail"

# A client killed mid-build: its build is cancelled and its slot freed.
# The sleep length is this test's own: the leftover check below greps the
# process list, and other tests run at the same time under make -j.
mkdrv "$TEST_ROOT/d/slow.json" slow 'echo started; sleep 6501; echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
: >"$TEST_ROOT/slow.err"
setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
	"$NIB" build "$TEST_ROOT/d/slow.json" >/dev/null 2>"$TEST_ROOT/slow.err" &
CPID=$!
for i in $(seq 1 100); do grep -q started "$TEST_ROOT/slow.err" && break; sleep 0.1; done
like "the slow build started" "$(cat "$TEST_ROOT/slow.err")" "slow> started"
run_ok "nib daemon status" "$NIB" daemon status
like "shows the running build and its slot" "$OUT" "slot [0-9]+  /nib/store/[0-9a-z]{32}-slow.drv"
like "shows the client's connection" "$OUT" "user $U1"
run_ok "nib daemon status --json" "$NIB" daemon status --json
like "json lists the build" "$OUT" '"running":\[\{"slot":[0-9]+,"firstUid":[0-9]+,"derivation":"/nib/store/[0-9a-z]{32}-slow.drv"'
kill -KILL $CPID; wait $CPID 2>/dev/null
for i in $(seq 1 100); do
	pgrep -f "sleep 6501" >/dev/null || break
	sleep 0.1
done
pgrep -f "sleep 6501" >/dev/null && not_ok "the builder is gone" || ok "the builder is gone"
busy=$("$NIB" --store local slots --json 2>/dev/null | grep -o '"state":"[a-z]*"' | grep -vc '"free"')
is "no slot is taken" "$busy" "0"

stop_daemon
ok "daemon stopped"
run_fails "status when the daemon is not running" 1 "$NIB" daemon status
like "says so" "$ERR" "not running"
done_testing

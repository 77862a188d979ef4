#!/usr/bin/env bash
# A holder SIGKILLed with a live process in its range: reclaim kills the process
# and frees the slot.  A cleanup that cannot succeed holds the slot; `nib slots`
# shows why; `nib slots release` frees it once the cause is gone.
. "$(dirname "$0")/lib.sh"

require_root
HOLDER="$NIB_TEST_HELPERS/uidpool-holder"
[ -x "$HOLDER" ] || skip_all "no uidpool-holder helper"

plan 31

# The range below t0050's: the two may run at the same time, and each one's
# reclaim would kill the other's processes.
cat >"$NIB_CONF_DIR/nib.conf" <<CONF
ids-per-build = 65536
start-id = 3999465472
id-count = 524288
build-dir = $TEST_ROOT/builds
CONF
chmod 644 "$NIB_CONF_DIR/nib.conf"

pids=()
at_exit 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done'

# start_holder NAME: a holder with build dir NAME and a child in its range.
start_holder() {
	"$HOLDER" --build-dir "$1" --child "$TEST_ROOT/ready-$1" 2>"$TEST_ROOT/holder-$1.err" &
	holder=$!
	pids+=("$holder")
	for _ in $(seq 100); do
		[ -e "$TEST_ROOT/ready-$1" ] && break
		sleep 0.1
	done
	read -r slot uid child <"$TEST_ROOT/ready-$1" || { cat "$TEST_ROOT/holder-$1.err" >&2; return 1; }
	pids+=("$child")
}

# gone PID: the process no longer runs (exited, or a zombie nobody reaped yet).
gone() {
	local i
	for i in $(seq 50); do
		if [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

start_holder b1
ok "holder 1 has slot $slot, child $child as UID $uid"
run_ok "nib slots with a live holder" "$NIB" slots
like "busy row" "$OUT" "^ *$slot  [0-9]+-[0-9]+  busy   *$holder  [0-9-]+ [0-9:]+  /nib/store/0+-crash-test\.drv$"
like "summary counts it" "$OUT" "^8 slots of 65536 IDs: 1 busy, 0 held, 7 free$"
run_ok "nib slots --json" "$NIB" slots --json
like "json row" "$OUT" "\"slot\":$slot,.*\"state\":\"busy\",\"locked\":true,\"pid\":$holder"

kill -9 "$holder"
wait "$holder" 2>/dev/null
is "child still runs as UID $uid" "$(awk '/^Uid:/ { print $2 }' "/proc/$child/status")" "$uid"
run_ok "nib slots after the crash" "$NIB" slots
like "stale, not busy" "$OUT" "^ *$slot  [0-9]+-[0-9]+  stale"
like "stale record names the build dir" "$OUT" "build directory: $TEST_ROOT/builds/b1"
run_ok "nib slots reclaim" "$NIB" slots reclaim
like "reclaim reports" "$OUT" "^slot $slot: cleaned: killed 1 process\(es\), removed build directory '$TEST_ROOT/builds/b1'$"
if gone "$child"; then ok "child killed"; else not_ok "child killed"; fi
if [ ! -e "$TEST_ROOT/builds/b1" ]; then ok "build dir removed"; else not_ok "build dir removed"; fi
run_ok "nib slots after reclaim" "$NIB" slots
like "pool idle again" "$OUT" "^No slot is in use or held\.$"

# Now a cleanup that cannot succeed: an immutable file in the build directory.
start_holder b2
ok "holder 2 has slot $slot"
if ! chattr +i "$TEST_ROOT/builds/b2/file" 2>/dev/null; then
	for _ in $(seq 14); do ok "# SKIP chattr +i not supported here"; done
	done_testing
fi
at_exit "chattr -i '$TEST_ROOT/builds/b2/file' 2>/dev/null"
kill -9 "$holder"
wait "$holder" 2>/dev/null
run_fails "reclaim fails to clean" 1 "$NIB" slots reclaim
like "and says the slot is held" "$OUT" "^slot $slot: held: cannot remove build directory '$TEST_ROOT/builds/b2': cannot remove '.*file': Operation not permitted$"
if gone "$child"; then ok "its child was killed all the same"; else not_ok "its child was killed all the same"; fi
run_ok "nib slots shows it" "$NIB" slots
like "held row" "$OUT" "^ *$slot  [0-9]+-[0-9]+  held "
like "with its reason" "$OUT" "held since [0-9-]+ [0-9:]+: cannot remove build directory '$TEST_ROOT/builds/b2'"
like "summary counts it" "$OUT" "^8 slots of 65536 IDs: 0 busy, 1 held, 7 free$"
run_fails "release while the cause remains" 1 "$NIB" slots release "$slot"
like "stays held" "$ERR" "slot $slot stays held: cannot remove build directory"
chattr -i "$TEST_ROOT/builds/b2/file"
run_ok "release once the cause is gone" "$NIB" slots release "$slot"
is "release says so" "$OUT" "slot $slot released"
if [ ! -e "$TEST_ROOT/builds/b2" ]; then ok "build dir removed"; else not_ok "build dir removed"; fi
run_ok "nib slots at the end" "$NIB" slots --json
like "nothing busy or held" "$OUT" '"busy":0,"held":0,"stale":0,"free":8,"slots":\[\]'

done_testing

#!/usr/bin/env bash
# One range of UIDs per store on a host: a second store (another state
# directory) whose range overlaps one in use can neither start a daemon nor
# build, with an error naming the store in use (`nib slots` shows the
# conflict), and it harms nothing of the first; once the first is stopped,
# it can; disjoint ranges live side by side.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 506
export NIB_DAEMON_SOCKET="$TEST_ROOT/socket"
export NIB_NO_PROGRESS=1
REG=/run/nib/uid-ranges

# The second store: its own state directory and store root, the same range.
B="$TEST_ROOT/b"
mkdir -p "$B/etc"
cp "$NIB_CONF_DIR/nib.conf" "$B/etc/nib.conf"
as_b() {
	NIB_CONF_DIR="$B/etc" NIB_STATE_DIR="$B/state" NIB_STORE_ROOT="$B/root" \
		NIB_LOG_DIR="$B/log" NIB_DAEMON_SOCKET="$B/socket" "$@"
}

plan 15

start_daemon && ok "the first store's daemon started" || not_ok "the first store's daemon started"
is "its range is registered with its state directory" \
	"$(grep -lx "$NIB_STATE_DIR" "$REG"/* 2>/dev/null | sed 's|.*/||; s|-[0-9a-f]*-[0-9a-f]*$||')" \
	"$FIRST_ID-$((FIRST_ID + 4 * IDS_PER_SLOT - 1))"

mkdrv "$TEST_ROOT/slow.json" slow 'sleep 2; echo done > $out'
"$NIB" --store daemon build "$TEST_ROOT/slow.json" >"$TEST_ROOT/slow.out" 2>"$TEST_ROOT/slow.err" &
slow=$!
for i in $(seq 1 100); do grep -q "building\|slow>" "$TEST_ROOT/slow.err" 2>/dev/null && break; sleep 0.05; done

run_fails "a daemon of a second store with the same range does not start" 1 \
	as_b timeout 20 "$NIB_DAEMON_BIN"
like "it names the store in use" "$ERR" \
	"overlap those of another nib store in use .*state directory '$NIB_STATE_DIR'"
mkdrv "$TEST_ROOT/b.json" bside 'echo b > $out'
run_fails "nor does a local build of the second store" 1 as_b "$NIB" build "$TEST_ROOT/b.json"
like "with the same error" "$ERR" "give each its own 'start-id' and 'id-count'"
like "nib slots of the second store shows the conflict" "$(as_b "$NIB" slots 2>&1)" \
	"^Conflict: another nib store in use \(state directory '$NIB_STATE_DIR'\) has registered UIDs $FIRST_ID-"
like "and so does its --json" "$(as_b "$NIB" slots --json 2>&1)" \
	"\"conflicts\":\[\{\"stateDir\":\"$NIB_STATE_DIR\",\"firstId\":$FIRST_ID,"
is "the first store's own nib slots shows none" "$("$NIB" slots --json | grep -o '"conflicts":\[\]')" '"conflicts":[]'

wait "$slow"
is "the first store's build was not disturbed" "$?" 0
is "and built its output" "$(cat "$TEST_ROOT/root$(cat "$TEST_ROOT/slow.out")" 2>/dev/null)" done

stop_daemon
is "once the first store stops, its registration is gone" \
	"$(grep -lx "$NIB_STATE_DIR" "$REG"/* 2>/dev/null)" ""
out=$(as_b "$NIB" build "$TEST_ROOT/b.json" 2>"$TEST_ROOT/b.err")
is "and the second store builds" "$(cat "$B/root$out" 2>/dev/null)" b
# Disjoint ranges: the two halves of this test's block of 4 slots (the
# blocks around it may be other tests').
sed -i 's/^id-count = .*/id-count = 524288/' "$NIB_CONF_DIR/nib.conf"
sed -i "s/^start-id = .*/start-id = $((FIRST_ID + 524288))/; s/^id-count = .*/id-count = 524288/" "$B/etc/nib.conf"
start_daemon && ok "the first store's daemon runs again on the lower half" ||
	not_ok "the first store's daemon runs again on the lower half"
mkdrv "$TEST_ROOT/b2.json" bside2 'echo b2 > $out'
out=$(as_b "$NIB" build "$TEST_ROOT/b2.json" 2>"$TEST_ROOT/b2.err")
is "disjoint ranges of two stores build side by side" "$(cat "$B/root$out" 2>/dev/null)" b2

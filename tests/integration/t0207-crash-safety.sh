#!/usr/bin/env bash
# Kill writers with SIGKILL at random moments, over and over: the store never
# ends up with a registered path whose contents are missing or partial, and
# the collector clears what the dead writers left behind.
. "$(dirname "$0")/lib.sh"

ROUNDS=${NIB_CRASH_ROUNDS:-30}

plan $((ROUNDS + 4))

mkdir -p "$TEST_ROOT/src"
for i in $(seq 1 12); do
	mkdir -p "$TEST_ROOT/src/t$i"
	for j in $(seq 1 25); do
		head -c $(((i * j * 97) % 20000 + 1)) /dev/urandom >"$TEST_ROOT/src/t$i/f$j"
	done
done
"$NIB" store verify 2>/dev/null

killed=0
for r in $(seq 1 "$ROUNDS"); do
	# Fresh contents each round so that there is always real work to interrupt.
	for i in $(seq 1 12); do echo "round $r" >"$TEST_ROOT/src/t$i/round"; done
	"$NIB" add "$TEST_ROOT"/src/t* >/dev/null 2>&1 &
	pid=$!
	# Anywhere between "just started" and "nearly done" (a full add takes
	# a few hundred milliseconds with fsync on).
	sleep "$(printf '0.%03d' $((RANDOM % 400)))"
	kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
	wait "$pid" 2>/dev/null
	if "$NIB" store verify --check-contents >"$TEST_ROOT/v.out" 2>&1; then
		ok "round $r: store consistent"
	else
		not_ok "round $r: store consistent"
		diag "$(cat "$TEST_ROOT/v.out")"
	fi
done

diag "$killed of $ROUNDS writers were killed mid-way"
run_ok "gc clears leftovers" "$NIB" gc
is "no temporaries left" "$(ls -A "$NIB_STORE_DIR" | grep -c '^\.tmp-')" "0"
is "no lock files left" "$(ls -A "$NIB_STORE_DIR" | grep -c '\.lock$')" "0"
run_ok "still consistent" "$NIB" store verify --check-contents

done_testing

#!/usr/bin/env bash
# Several nib processes add overlapping paths at the same time: all succeed,
# each path is valid once, nothing is left over.
. "$(dirname "$0")/lib.sh"

NPROC=8
NFILES=20

plan 5

mkdir -p "$TEST_ROOT/src"
for i in $(seq 1 $NFILES); do
	mkdir -p "$TEST_ROOT/src/p$i/sub"
	echo "file $i" >"$TEST_ROOT/src/p$i/sub/f"
	head -c $((i * 3000)) /dev/urandom >"$TEST_ROOT/src/p$i/data"
done
"$NIB" store verify 2>/dev/null # create the store first

pids=()
for k in $(seq 1 $NPROC); do
	# Each process adds an overlapping, differently ordered selection.
	args=()
	for i in $(seq 1 $NFILES | shuf --random-source=<(yes $k)); do
		[ $(((i + k) % 3)) != 0 ] && args+=("$TEST_ROOT/src/p$i")
	done
	"$NIB" add "${args[@]}" >"$TEST_ROOT/out.$k" 2>"$TEST_ROOT/err.$k" &
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
is "every writer succeeded" "$failed" "0"
[ "$failed" = 0 ] || cat "$TEST_ROOT"/err.* | sed 's/^/# /'

all=$(cat "$TEST_ROOT"/out.* | sort -u | wc -l)
is "every file became one store path" "$all" "$NFILES"
is "one entry per path in the store (and the path-lock file)" \
	"$(ls -A "$NIB_STORE_DIR" | grep -vc '^\.nib-path-locks$')" "$NFILES"
run_ok "verify --check-contents" "$NIB" store verify --check-contents
like "all checked" "$ERR" "checked $NFILES paths: 0 problems"

done_testing

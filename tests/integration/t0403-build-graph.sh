#!/usr/bin/env bash
# A graph of 50 derivations with diamonds, built with -j 2: dependency order,
# never more than two at once, every node sees exactly its ancestors;
# --keep-going after a failure; and a job token no job of ours can use is
# given back at once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 3
plan 29

N=50
G="$TEST_ROOT/graph"
mkdir -p "$G"
declare -A deps
for i in $(seq 1 $N); do
	d=()
	if [ "$i" -gt 1 ]; then
		a=$((i / 2))
		b=$(((i + 1) / 3))
		d+=("$a")
		[ "$b" -ge 1 ] && [ "$b" != "$a" ] && d+=("$b")
	fi
	deps[$i]="${d[*]}"
	opts=()
	script='sleep 0.05; : > /build/acc'
	k=0
	for x in "${d[@]}"; do
		opts+=(--input "./g$x.json")
		script+="; cat \$in$k >> /build/acc"
		k=$((k + 1))
	done
	script+="; echo g$i >> /build/acc; sort -u /build/acc > \$out"
	mkdrv "$G/g$i.json" "g$i" "$script" "${opts[@]}"
done

ancestors() {
	local i=$1 x
	echo "g$i"
	for x in ${deps[$i]}; do ancestors "$x"; done
}

all=()
for i in $(seq $N -1 1); do all+=("$G/g$i.json"); done
run_ok "50 derivations with diamonds, -j 2" "$NIB" build -j 2 --json "${all[@]}"
json=$OUT
is "every derivation was built" "$(grep -o '"status":"built"' <<<"$json" | wc -l)" $N
out50=$(sed -n 's/.*"name":"g50","status":"built","outputs":{"out":"\([^"]*\)".*/\1/p' <<<"${json//\},\{/$'}\n{'}")
is "the last node saw exactly its ancestors" "$(cat "$TEST_ROOT/root$out50")" "$(ancestors $N | sort -u)"

# One line per derivation: name start stop.
times=$(sed 's/},{"drvPath"/}\n{"drvPath"/g' <<<"$json" |
	sed -n 's/.*"name":"\(g[0-9]*\)".*"startTime":\([0-9.]*\),"stopTime":\([0-9.]*\).*/\1 \2 \3/p')
is "times for all" "$(wc -l <<<"$times")" $N
bad=""
for i in $(seq 2 $N); do
	start=$(awk -v n="g$i" '$1 == n { print $2 }' <<<"$times")
	for x in ${deps[$i]}; do
		stop=$(awk -v n="g$x" '$1 == n { print $3 }' <<<"$times")
		if awk -v a="$stop" -v b="$start" 'BEGIN { exit !(a > b) }'; then
			bad+=" g$x->g$i"
		fi
	done
done
is "each derivation started after its inputs had finished" "$bad" ""
maxpar=$(awk '{ print $2, 1; print $3, -1 }' <<<"$times" | sort -k1,1n -k2,2n |
	awk '{ n += $2; if (n > m) m = n } END { print m }')
is "never more than two at once" "$([ "$maxpar" -le 2 ] && echo yes)" yes
is "two at once did happen" "$maxpar" 2
run_ok "building it again" "$NIB" build -j 2 "${all[@]}"
is "prints the outputs, in argument order" "$(head -1 <<<"$OUT")" "$out50"

# --keep-going
K="$TEST_ROOT/kg"
mkdir -p "$K"
mkdrv "$K/fail.json" fails 'echo no; exit 1'
mkdrv "$K/after.json" after-fail 'echo x > $out' --input ./fail.json
mkdrv "$K/ind1.json" ind1 'echo x > $out'
mkdrv "$K/ind2.json" ind2 'echo x > $out'
run_fails "without --keep-going nib stops at the failure" 1 "$NIB" build -j 1 --json \
	"$K/fail.json" "$K/after.json" "$K/ind1.json" "$K/ind2.json"
is "nothing else was built" "$(grep -o '"status":"built"' <<<"$OUT" | wc -l)" 0
like "the rest is reported as not built" "$OUT" "\"name\":\"ind1\",\"status\":\"cancelled\",\"error\":\"[^\"]*use --keep-going"
run_fails "with --keep-going" 1 "$NIB" build -j 1 --keep-going --json \
	"$K/fail.json" "$K/after.json" "$K/ind1.json" "$K/ind2.json"
is "the independent derivations were built" "$(grep -o '"name":"ind[12]","status":"built"' <<<"$OUT" | wc -l)" 2
like "the dependent one was not" "$OUT" '"name":"after-fail","status":"dependency-failed"'
# Every slot busy: nib build waits, says so, and goes on when one is free.
HOLDER="$abs_top_builddir/tests/helpers/uidpool-holder"
if [ -x "$HOLDER" ]; then
	holders=()
	for k in 1 2 3 4; do
		"$HOLDER" "$TEST_ROOT/held$k" &
		holders+=($!)
	done
	for k in 1 2 3 4; do
		for i in $(seq 100); do [ -s "$TEST_ROOT/held$k" ] && break; sleep 0.05; done
	done
	mkdrv "$TEST_ROOT/waits.json" waits 'echo x > $out'
	"$NIB" build "$TEST_ROOT/waits.json" >"$TEST_ROOT/waits.out" 2>"$TEST_ROOT/waits.err" &
	pid=$!
	for i in $(seq 100); do grep -q waiting "$TEST_ROOT/waits.err" && break; sleep 0.05; done
	like "with every slot busy, nib build says it waits" "$(cat "$TEST_ROOT/waits.err")" \
		"waiting for a free build slot \(4 slots: 4 busy, 0 held\)"
	running=no
	kill -0 $pid 2>/dev/null && running=yes
	is "and is still waiting" "$running" yes
	kill "${holders[0]}"
	wait "${holders[0]}" 2>/dev/null
	wait $pid
	is "it builds once a slot is free" "$?" 0
	like "and prints the output" "$(cat "$TEST_ROOT/waits.out")" "^/nib/store/[0-9a-z]{32}-waits$"
	for h in "${holders[@]:1}"; do kill "$h"; wait "$h" 2>/dev/null; done
	"$NIB" slots reclaim >/dev/null 2>&1
else
	for k in 1 2 3 4; do ok "# SKIP uidpool-holder not built"; done
fi
# A job token given back is free for other processes as soon as nothing of
# ours can use it: with one slow build left and what remains waiting for
# it, another nib build gets the second token at once.
T="$TEST_ROOT/tok"
mkdir -p "$T"
mkdrv "$T/slow.json" tok-slow 'sleep 4; echo s > $out'
mkdrv "$T/fast.json" tok-fast 'echo fast ran; echo f > $out'
mkdrv "$T/dep.json" tok-dep 'echo d > $out' --input ./slow.json
mkdrv "$T/other.json" tok-other 'echo o > $out'
"$NIB" build -j 2 "$T/slow.json" "$T/fast.json" "$T/dep.json" >/dev/null 2>"$T/a.err" &
a=$!
for i in $(seq 200); do grep -q "fast ran" "$T/a.err" && break; sleep 0.05; done
sleep 0.5
run_ok "another nib build meanwhile" timeout 60 "$NIB" build -j 2 "$T/other.json"
a_running=no
kill -0 $a 2>/dev/null && a_running=yes
is "finishes while the first still runs its slow build (no token kept idle)" "$a_running" yes
is "without waiting for a job" "$(grep -c 'waiting for a free job' <<<"$ERR")" 0
wait $a
is "and the first finishes too" "$?" 0
check_no_leftovers "after the graph"
done_testing

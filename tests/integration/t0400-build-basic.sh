#!/usr/bin/env bash
# nib build: the examples, outputs and references, logs, JSON results, derivation
# files with relative references, and the checks made before anything runs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 0
plan 70

# --- the examples a new user builds first
run_ok "build examples/hello.json" "$NIB" build "$EXAMPLES/hello.json"
hello=$OUT
like "prints the output path" "$hello" "^/nib/store/[0-9a-z]{32}-hello$"
is "the output holds what the builder wrote" "$(cat "$TEST_ROOT/root$hello")" "hello, world"
like "the log streams to stderr with the name" "$ERR" "^hello> Hello from a nib sandbox!$"
is "outputs are read-only and owned by root" "$(stat -c '%a %u %g %Y' "$TEST_ROOT/root$hello")" "444 0 0 1"
run_ok "building again" "$NIB" build "$EXAMPLES/hello.json"
is "prints the same path" "$OUT" "$hello"
is "and runs nothing" "$ERR" ""
run_ok "nib log of the output" "$NIB" log "$hello"
is "shows the stored log" "$OUT" "Hello from a nib sandbox!"
drv=$("$NIB" path-info --json "$hello" | sed -n 's/.*"deriver":"\([^"]*\)".*/\1/p')
like "the output's deriver is recorded" "$drv" "^/nib/store/[0-9a-z]{32}-hello\.drv$"
run_ok "nib log of the derivation" "$NIB" log "$drv"
is "same log" "$OUT" "Hello from a nib sandbox!"
base=${drv#/nib/store/}
log="$NIB_LOG_DIR/drvs/${base:0:2}/${base:2}.bz2"
ok_file=no
[ -f "$log" ] && [ "$(head -c 3 "$log")" = BZh ] && ok_file=yes
is "the log is bzip2 under drvs/xx/rest.bz2" "$ok_file" yes
run_ok "building the .drv store path" "$NIB" build "$drv"
is "same output" "$OUT" "$hello"
run_ok "building the physical .drv file" "$NIB" build "$TEST_ROOT/root$drv"
is "same output again" "$OUT" "$hello"

run_ok "build the chain" "$NIB" build "$EXAMPLES/chain/three.json"
is "the chain counted to 3" "$(cat "$TEST_ROOT/root$OUT/value")" 3
like "each link said what it read" "$ERR" "chain-three> step: /nib/store/[0-9a-z]{32}-chain-two holds 2"
refs=$("$NIB" path-info --json "$OUT")
like "chain-three refers to chain-two (found by scanning)" "$refs" '"references":\["/nib/store/[0-9a-z]{32}-chain-two"\]'

run_ok "build the multi-output example" "$NIB" build "$EXAMPLES/multi-output.json"
is "three outputs printed" "$(wc -l <<<"$OUT")" 3
dev=$(grep -- '-multi-dev$' <<<"$OUT")
out=$(grep -- '-multi$' <<<"$OUT")
is "dev output's file" "$(cat "$TEST_ROOT/root$dev/include/multi.h")" "#define MULTI 1"
is "executable stays executable" "$(stat -c %a "$TEST_ROOT/root$out/bin/hi")" 555
like "dev refers to out" "$("$NIB" path-info --json "$dev")" "\"references\":\[\"$out\"\]"
is "out refers to nothing" "$("$NIB" path-info --json "$out" | sed -n 's/.*"references":\(\[[^]]*\]\).*/\1/p')" "[]"

run_ok "build the fixed-output example" "$NIB" build "$EXAMPLES/fixed-output.json"
like "its path" "$OUT" "^/nib/store/[0-9a-z]{32}-greeting\.txt$"
like "content address recorded" "$("$NIB" path-info --json "$OUT")" '"ca":"fixed:sha256:[0-9a-z]{52}"'

# --- --json results
mkdrv "$TEST_ROOT/j.json" json-result 'echo hi; echo x > $out'
run_ok "--json" "$NIB" build --json "$TEST_ROOT/j.json"
like "drvPath, status and outputs" "$OUT" '^\[\{"drvPath":"/nib/store/[^"]*-json-result\.drv","name":"json-result","status":"built","outputs":\{"out":"/nib/store/[^"]*-json-result"\}'
like "times, CPU and memory" "$OUT" '"startTime":[0-9.]+,"stopTime":[0-9.]+,"cpuUser":[0-9.e-]+,"cpuSystem":[0-9.e-]+,"peakMemory":[0-9]+'
like "slot, UID range, sandboxed and log" "$OUT" '"uidRange":\{"first":[0-9]+,"count":262144\},"slot":[0-3],"sandboxed":true,"logPath":"[^"]*\.bz2"'
slot=$(sed -n 's/.*"slot":\([0-9]*\).*/\1/p' <<<"$OUT")
first=$(sed -n 's/.*"uidRange":{"first":\([0-9]*\).*/\1/p' <<<"$OUT")
is "the range is the slot's" "$first" $((FIRST_ID + slot * IDS_PER_SLOT))
run_ok "--json when already valid" "$NIB" build --json "$TEST_ROOT/j.json"
like "status valid" "$OUT" '"status":"valid"'

# --- relative references (nib's extension) and their errors
mkdir -p "$TEST_ROOT/rel/sub"
echo 'payload' >"$TEST_ROOT/rel/sub/data.txt"
mkdrv "$TEST_ROOT/rel/sub/a.json" rel-a 'cat $src > $out' --src ./data.txt --env src=./data.txt
mkdrv "$TEST_ROOT/rel/b.json" rel-b 'cat $in0 $in0 > $out' --input ./sub/a.json
run_ok "a file referring to another file and a source" "$NIB" build "$TEST_ROOT/rel/b.json"
is "the input's output was read" "$(cat "$TEST_ROOT/root$OUT")" "payload
payload"
mkdrv "$TEST_ROOT/rel/c1.json" rel-c1 'true' --input ./c2.json
mkdrv "$TEST_ROOT/rel/c2.json" rel-c2 'true' --input ./c1.json
run_fails "a cycle of files" 1 "$NIB" build "$TEST_ROOT/rel/c1.json"
like "is named" "$ERR" "refers back to itself"
mkdrv "$TEST_ROOT/rel/m.json" rel-m 'true' --input ./missing.json
run_fails "a missing input file" 1 "$NIB" build "$TEST_ROOT/rel/m.json"
like "names the file" "$ERR" "missing\.json.*No such file"
mkdrv "$TEST_ROOT/rel/o.json" rel-o 'true' --input ./sub/a.json --env bad=./sub/a.json!dev
run_fails "an output the input does not list" 1 "$NIB" build "$TEST_ROOT/rel/o.json"
like "says which" "$ERR" "env 'bad' refers to output 'dev'"

# --- checked before anything runs
mkdrv "$TEST_ROOT/sys.json" other-system 'echo x > $out' --system riscv64-hurd
run_fails "another system" 1 "$NIB" build "$TEST_ROOT/sys.json"
like "says so clearly" "$ERR" "it is for system 'riscv64-hurd', but this machine builds for '$SYSTEM'"
mkdrv "$TEST_ROOT/feat.json" needs-kvm 'echo x > $out' --feature kvm-on-mars
run_fails "a missing system feature" 1 "$NIB" build "$TEST_ROOT/feat.json"
like "names the feature" "$ERR" "requires the system feature 'kvm-on-mars'"
run_ok "the feature when offered" "$NIB" --option extra-system-features kvm-on-mars build "$TEST_ROOT/feat.json"
mkdrv "$TEST_ROOT/j2.json" no-sandbox 'echo x > $out'
run_fails "sandbox = false with a relocated store is refused" 1 "$NIB" --option sandbox false build "$TEST_ROOT/j2.json"
like "with an explanation" "$ERR" "without a sandbox \(setting 'sandbox' is false\): the store '/nib/store' is relocated"
run_fails "nothing to build" 2 "$NIB" build
run_fails "not a derivation" 1 "$NIB" build "$hello"
like "says so" "$ERR" "is not a derivation"
run_fails "a missing file" 1 "$NIB" build "$TEST_ROOT/nope.json"
run_ok "build --help" "$NIB" build --help
like "help mentions --keep-going" "$OUT" "keep-going"

# --- a slot keeps its two directories, emptied, between builds: whatever a
# crashed holder left in them goes, and a link in their place is not followed
mkdir -p "$TEST_ROOT/victim" && touch "$TEST_ROOT/victim/keep"
for i in 0 1 2 3; do
	rm -rf "$NIB_STATE_DIR/builds/nib-build-slot-$i" "$STORE/.nib-builds/slot-$i"
	ln -s "$TEST_ROOT/victim" "$NIB_STATE_DIR/builds/nib-build-slot-$i"
	mkdir -p "$STORE/.nib-builds/slot-$i/junk"
done
mkdrv "$TEST_ROOT/left.json" leftovers 'echo x > $out'
run_ok "a build in a slot with leftovers" "$NIB" build --json "$TEST_ROOT/left.json"
slot=$(printf '%s' "$OUT" | sed -n 's/.*"slot":\([0-9]*\).*/\1/p')
is "the link's target is untouched" "$(ls "$TEST_ROOT/victim")" keep
if [ -n "$slot" ] && [ -d "$NIB_STATE_DIR/builds/nib-build-slot-$slot" ] &&
	[ ! -L "$NIB_STATE_DIR/builds/nib-build-slot-$slot" ]; then
	ok "the slot's workspace is a directory again"
else
	not_ok "the slot's workspace is a directory again (slot '$slot')"
fi
is "and empty" "$(ls -A "$NIB_STATE_DIR/builds/nib-build-slot-$slot" 2>&1)" ""
is "the staging directory is emptied" "$(ls -A "$STORE/.nib-builds/slot-$slot" 2>&1)" ""
for i in 0 1 2 3; do
	[ "$i" = "$slot" ] && continue
	rm -rf "$NIB_STATE_DIR/builds/nib-build-slot-$i" "$STORE/.nib-builds/slot-$i"
done

check_no_leftovers "after the basic builds"
done_testing

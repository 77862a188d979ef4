#!/usr/bin/env bash
# nib derivation add: derivations made by Nix 2.8 (tests/data/derivations)
# are stored at Nix's .drv paths, in ATerm, show-derivation JSON and bare JSON
# without output paths; inputs must be valid; wrong outputs are refused.
. "$(dirname "$0")/lib.sh"

export NIB_STORE_DIR=/nix/store NIB_STORE_ROOT="$TEST_ROOT/root" NIB_STATE_DIR="$TEST_ROOT/state"
V="$NIB_TEST_DATA/derivations"
S="$V/nix-store"
ndrv=$(ls "$S/drv" | wc -l)

plan 20

# The input sources, at the paths Nix gave them.
run_ok "add a source file" "$NIB" add "$V/src/hello.txt"
HELLO=$OUT
grep -q "^$HELLO " "$S/sources.txt" && ok "hello.txt at Nix's path" || not_ok "hello.txt at Nix's path"
run_ok "add a source directory, twice with a name" "$NIB" add "$V/src/srcdir"
run_ok "named" "$NIB" add --name named-src "$V/src/srcdir"
SCRIPT=$(ls "$S/text")
run_ok "add a text file with a reference" "$NIB" add --text --name script.sh --ref "$HELLO" "$S/text/$SCRIPT"
is "script.sh at Nix's path" "$OUT" "/nix/store/$SCRIPT"
missing=0
while read -r p _; do "$NIB" path-info "$p" >/dev/null 2>&1 || missing=$((missing + 1)); done <"$S/sources.txt"
is "every input source is valid" "$missing" "0"

# A derivation whose inputs are not there yet is refused.
top=$(awk '$1 == "chain" { print $2 }' "$S/top.txt")
run_fails "inputs must be valid" 1 "$NIB" derivation add "$S/drv/${top#/nix/store/}"
like "error names the missing input" "$ERR" "input '/nix/store/[^']*' of derivation 'chain-top' is not valid"

# Add every ATerm, inputs first (repeat until nothing more can be added).
added=0
for pass in 1 2 3 4 5 6 7 8; do
	for f in "$S"/drv/*.drv; do
		"$NIB" path-info "/nix/store/$(basename "$f")" >/dev/null 2>&1 && continue
		"$NIB" derivation add "$f" >"$TEST_ROOT/out" 2>/dev/null || continue
		[ "$(cat "$TEST_ROOT/out")" = "/nix/store/$(basename "$f")" ] && added=$((added + 1))
	done
done
is "every ATerm stored at Nix's path" "$added" "$ndrv"
run_ok "verify" "$NIB" store verify --check-contents

same=0
for f in "$S"/json/*.json; do
	[ "$("$NIB" derivation add "$f" 2>/dev/null)" = "/nix/store/$(basename "$f" .json).drv" ] &&
		same=$((same + 1))
done
is "show-derivation JSON gives the same paths" "$same" "$ndrv"

same=0
for f in "$V"/forms/bare/*.json; do
	[ "$("$NIB" derivation add - <"$f" 2>/dev/null)" = "/nix/store/$(basename "$f" .json).drv" ] &&
		same=$((same + 1))
done
is "bare JSON without output paths: paths computed" "$same" "$(ls "$V/forms/bare" | wc -l)"

simple="$S/drv/$(ls "$S/drv" | grep -- '-simple.drv$')"
run_ok "derivation add --json" "$NIB" derivation add --json "$simple"
like "json output" "$OUT" '^\{"path":"/nix/store/[a-z0-9]{32}-simple.drv"\}$'
sed 's/94f9f6i31zwzwbf0kclq1naqxxi4c7v9/94f9f6i31zwzwbf0kclq1naqxxi4c7v8/g' "$simple" >"$TEST_ROOT/wrong.drv"
run_fails "a wrong output path is refused" 1 "$NIB" derivation add "$TEST_ROOT/wrong.drv"
like "error says what was expected" "$ERR" "expected '/nix/store/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple'"
echo 'Derive(' >"$TEST_ROOT/bad.drv"
run_fails "garbage is refused" 1 "$NIB" derivation add "$TEST_ROOT/bad.drv"
run_fails "two files is a usage error" 2 "$NIB" derivation add "$simple" "$simple"

# The chain's closure is kept by a root on its top; the rest is garbage.
ln -s "$top" "$NIB_STATE_DIR/gcroots/top"
"$NIB" gc >/dev/null 2>&1
run_ok "the rooted derivation's closure survives gc" "$NIB" path-info -r "$top"

done_testing

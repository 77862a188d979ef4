#!/usr/bin/env bash
# nib store verify: missing paths, modified contents, metadata, repair.
. "$(dirname "$0")/lib.sh"

REAL="$NIB_STORE_DIR"

plan 19

mkdir -p "$TEST_ROOT/src/d"
echo one >"$TEST_ROOT/src/one"
echo two >"$TEST_ROOT/src/d/two"
run_ok "add" "$NIB" add "$TEST_ROOT/src/one" "$TEST_ROOT/src/d"
mapfile -t P <<<"$OUT"

run_ok "a fresh store verifies" "$NIB" store verify --check-contents
like "summary" "$ERR" "checked 2 paths: 0 problems"

chmod u+w "${P[1]}" "${P[1]}/two"
echo changed >"${P[1]}/two"
run_fails "metadata problem found" 1 "$NIB" store verify
like "not canonical" "$OUT" "^not-canonical: "
run_fails "contents checked" 1 "$NIB" store verify --check-contents
like "hash mismatch reported" "$OUT" "hash-mismatch: path '${P[1]}' was modified"
run_fails "repair fixes metadata, not contents" 1 "$NIB" store verify --check-contents --repair
like "metadata repaired" "$OUT" "not-canonical: .*\[repaired\]"
like "contents not repaired" "$OUT" "hash-mismatch: "
is "mode restored" "$(stat -c %a "${P[1]}")" "555"

chmod u+w "$REAL"
rm -rf "${P[1]}"
run_fails "missing path found" 1 "$NIB" store verify
like "missing reported" "$OUT" "missing: path '${P[1]}' is registered but missing"
run_ok "repair invalidates the missing path" "$NIB" store verify --repair
like "repaired" "$OUT" "missing: .*invalidated \[repaired\]"
run_fails "it is no longer valid" 1 "$NIB" path-info "${P[1]}"
run_ok "clean again" "$NIB" store verify --check-contents --json
is "json result" "$OUT" '{"checked":1,"problems":[],"repaired":0}'
run_fails "verify takes no arguments" 2 "$NIB" store verify x

done_testing

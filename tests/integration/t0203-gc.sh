#!/usr/bin/env bash
# nib gc, nib store roots, nib store delete.
. "$(dirname "$0")/lib.sh"

REAL="$NIB_STORE_DIR"

plan 26

mkdir -p "$TEST_ROOT/src"
for i in 1 2 3 4; do head -c $((i * 1000)) /dev/zero | tr '\0' "$i" >"$TEST_ROOT/src/f$i"; done
run_ok "add four files" "$NIB" add "$TEST_ROOT/src/f1" "$TEST_ROOT/src/f2" "$TEST_ROOT/src/f3" "$TEST_ROOT/src/f4"
mapfile -t P <<<"$OUT"
ln -s "${P[0]}" "$NIB_STATE_DIR/gcroots/keep1"
run_ok "add with an indirect root" "$NIB" add --add-root "$TEST_ROOT/result" "$TEST_ROOT/src/f2"

run_ok "store roots" "$NIB" store roots
is "roots listed, sorted by link" "$OUT" "$TEST_ROOT/result -> ${P[1]}
$NIB_STATE_DIR/gcroots/keep1 -> ${P[0]}"
run_ok "store roots --json" "$NIB" store roots --json
like "json roots" "$OUT" "^\[\{\"link\":\"$TEST_ROOT/result\",\"path\":\"${P[1]}\"\},"

run_ok "gc --dry-run" "$NIB" gc --dry-run
is "dead paths listed" "$(sort <<<"$OUT")" "$(printf '%s\n' "${P[2]}" "${P[3]}" | sort)"
like "summary" "$ERR" "2 store paths would be deleted"
is "nothing deleted" "$(ls "$REAL" | wc -l)" "4"

run_ok "gc --max-freed 1" "$NIB" gc --max-freed 1
is "one path deleted" "$(wc -l <<<"$OUT")" "1"
run_ok "gc" "$NIB" gc
is "the other one deleted" "$(wc -l <<<"$OUT")" "1"
like "freed summary" "$ERR" "1 store paths deleted, [0-9.]+ KiB freed"
is "two paths left" "$(ls "$REAL" | sort)" "$(printf '%s\n' "${P[0]##*/}" "${P[1]##*/}" | sort)"
run_ok "path-info still works for roots" "$NIB" path-info "${P[0]}" "${P[1]}"

rm "$TEST_ROOT/result"
run_ok "gc --json after removing the indirect root" "$NIB" gc --json
like "json summary" "$OUT" "^\{\"deleted\":\[\"${P[1]}\"\],\"bytesFreed\":2000,\"dryRun\":false"

run_fails "store delete refuses a live path" 1 "$NIB" store delete "${P[0]}"
like "says it is alive" "$ERR" "cannot delete '${P[0]}': it is still alive"
rm "$NIB_STATE_DIR/gcroots/keep1"
run_ok "store delete a dead path" "$NIB" store delete "${P[0]}"
is "deleted path printed" "$OUT" "${P[0]}"
run_fails "gone" 1 "$NIB" path-info "${P[0]}"
run_fails "gc takes no arguments" 2 "$NIB" gc extra
run_fails "bad size" 2 "$NIB" gc --max-freed lots

done_testing

#!/usr/bin/env bash
# nib add: source paths are Nix's paths, canonical, idempotent; errors are clear.
. "$(dirname "$0")/lib.sh"

# A store whose logical directory is /nix/store, physically under TEST_ROOT.
export NIB_STORE_DIR=/nix/store NIB_STORE_ROOT="$TEST_ROOT/root" NIB_STATE_DIR="$TEST_ROOT/state"
REAL="$TEST_ROOT/root/nix/store"
# Made with Nix 2.8: nix-store --add of these exact trees.
PATH_F=/nix/store/ab3li50xq0nl4q5lxdyinb8w8y13my9s-f
PATH_D=/nix/store/wlhx3dm3l5sjwznb9g04a1i2a747b0fm-d

plan 28

mkdir -p "$TEST_ROOT/src/d"
printf 'hi\n' >"$TEST_ROOT/src/f"
printf 'hello\n' >"$TEST_ROOT/src/d/a"
chmod 755 "$TEST_ROOT/src/d/a"
ln -s a "$TEST_ROOT/src/d/l"

run_ok "add a file and a directory" "$NIB" add "$TEST_ROOT/src/f" "$TEST_ROOT/src/d"
is "paths are Nix's" "$OUT" "$PATH_F
$PATH_D"
is "store directory is 1775" "$(stat -c %a "$REAL")" "1775"
is "file is read-only" "$(stat -c %a "$REAL/${PATH_F#/nix/store/}")" "444"
is "directory is read-only" "$(stat -c %a "$REAL/${PATH_D#/nix/store/}")" "555"
is "executable stays executable" "$(stat -c %a "$REAL/${PATH_D#/nix/store/}/a")" "555"
is "mtime is 1" "$(stat -c %Y "$REAL/${PATH_D#/nix/store/}/a")" "1"
is "symlink kept" "$(readlink "$REAL/${PATH_D#/nix/store/}/l")" "a"
is "contents copied" "$(cat "$REAL/${PATH_F#/nix/store/}")" "hi"

run_ok "adding again is fine" "$NIB" add "$TEST_ROOT/src/f"
is "same path" "$OUT" "$PATH_F"
run_ok "add --json" "$NIB" add --json "$TEST_ROOT/src/f"
is "json output" "$OUT" "[{\"source\":\"$TEST_ROOT/src/f\",\"path\":\"$PATH_F\"}]"
run_ok "add --name" "$NIB" add --name renamed "$TEST_ROOT/src/f"
like "named path" "$OUT" "^/nix/store/[0-9a-z]{32}-renamed$"
run_ok "add --add-root" "$NIB" add --add-root "$TEST_ROOT/result" "$TEST_ROOT/src/d"
is "root symlink made" "$(readlink "$TEST_ROOT/result")" "$PATH_D"

run_fails "a missing file" 1 "$NIB" add "$TEST_ROOT/src/nope"
like "error names it" "$ERR" "cannot add '$TEST_ROOT/src/nope'.*No such file or directory"
run_fails "nothing to add is a usage error" 2 "$NIB" add
printf x >"$TEST_ROOT/src/bad name"
run_fails "a name that cannot be a store path" 1 "$NIB" add "$TEST_ROOT/src/bad name"
like "error says why" "$ERR" "not a valid store path name"
mkfifo "$TEST_ROOT/src/d2" 2>/dev/null || mkdir "$TEST_ROOT/src/d2"
run_fails "special files are refused" 1 "$NIB" add "$TEST_ROOT/src/d2"
like "error names the file" "$ERR" "is not a regular file, directory or symlink"
run_fails "--add-root needs one path" 2 "$NIB" add --add-root "$TEST_ROOT/r2" "$TEST_ROOT/src/f" "$TEST_ROOT/src/d"

run_ok "--store-dir/--store-root/--state-dir select the store" \
	env -u NIB_STORE_DIR -u NIB_STORE_ROOT -u NIB_STATE_DIR "$NIB" --store-dir /nix/store \
	--store-root "$TEST_ROOT/root" --state-dir "$TEST_ROOT/state" path-info "$PATH_F"
is "same store" "$OUT" "$PATH_F"

leftovers=$(find "$REAL" -maxdepth 1 -name '.tmp-*' -o -maxdepth 1 -name '*.lock' | wc -l)
is "no temporaries or lock files left" "$leftovers" "0"

done_testing

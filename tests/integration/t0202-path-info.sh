#!/usr/bin/env bash
# nib path-info: human and JSON output, closures, sizes, argument forms, errors.
. "$(dirname "$0")/lib.sh"

export NIB_STORE_DIR=/nix/store NIB_STORE_ROOT="$TEST_ROOT/root" NIB_STATE_DIR="$TEST_ROOT/state"
PATH_F=/nix/store/ab3li50xq0nl4q5lxdyinb8w8y13my9s-f
PATH_D=/nix/store/wlhx3dm3l5sjwznb9g04a1i2a747b0fm-d

plan 25

mkdir -p "$TEST_ROOT/src/d"
printf 'hi\n' >"$TEST_ROOT/src/f"
printf 'hello\n' >"$TEST_ROOT/src/d/a"
chmod 755 "$TEST_ROOT/src/d/a"
ln -s a "$TEST_ROOT/src/d/l"
"$NIB" add "$TEST_ROOT/src/f" "$TEST_ROOT/src/d" >/dev/null

run_ok "path-info" "$NIB" path-info "$PATH_D"
is "prints the path" "$OUT" "$PATH_D"
run_ok "path-info --size" "$NIB" path-info --size "$PATH_D"
is "NAR size" "$OUT" "$PATH_D	512"
run_ok "path-info -S" "$NIB" path-info -s -S "$PATH_F"
is "closure size" "$OUT" "$PATH_F	120	120"
run_ok "path-info --json" "$NIB" path-info --json "$PATH_D"
# Nix 2.8's nix path-info --json prints the same fields (narHash in SRI form).
like "json fields" "$OUT" "^\[\{\"path\":\"$PATH_D\",\"narHash\":\"sha256-y\+ss8IJvHRugfow1iCVHFscp/URICcTNm32eO7eAovo=\",\"narSize\":512,\"references\":\[\],\"ca\":\"fixed:r:sha256:1ym2h2vkp7kxkg6w82a88kyjkiqn8wjqhdccgsh1n7bghbq2rsyb\",\"registrationTime\":[0-9]+,\"ultimate\":true\}\]$"
run_ok "path-info --json -S" "$NIB" --json path-info -S "$PATH_F"
like "closureSize in json" "$OUT" "\"closureSize\":120"

run_ok "a path inside a store path" "$NIB" path-info "$PATH_D/a"
is "resolved to the store path" "$OUT" "$PATH_D"
run_ok "the physical path" "$NIB" path-info "$TEST_ROOT/root$PATH_D"
is "mapped to the logical path" "$OUT" "$PATH_D"
ln -s "$PATH_F" "$TEST_ROOT/link"
run_ok "a symlink into the store" "$NIB" path-info "$TEST_ROOT/link"
is "followed" "$OUT" "$PATH_F"
run_ok "recursive" "$NIB" path-info -r "$PATH_F" "$PATH_D"
is "closure listed sorted" "$OUT" "$PATH_F
$PATH_D"

# A path that refers to both: its closure size adds theirs.
PATH_R=/nix/store/11111111111111111111111111111111-r
printf 'refers\n' >"$TEST_ROOT/root$PATH_R"
printf '%s\n\n2\n%s\n%s\n\n' "$PATH_R" "$PATH_F" "$PATH_D" | "$NIB" store register >/dev/null
run_ok "path-info -s of a path with references" "$NIB" path-info -s "$PATH_R"
own=$(cut -f2 <<<"$OUT")
run_ok "path-info -S of a path with references" "$NIB" path-info -S "$PATH_R"
is "closure size sums the closure" "$OUT" "$PATH_R	$((own + 120 + 512))"

run_fails "a path that is not valid" 1 "$NIB" path-info /nix/store/00000000000000000000000000000000-x
like "says not valid" "$ERR" "path '/nix/store/00000000000000000000000000000000-x' is not valid"
run_fails "a path outside the store" 1 "$NIB" path-info /etc/passwd
like "says not in the store" "$ERR" "'/etc/passwd' is not in the store '/nix/store'"

done_testing

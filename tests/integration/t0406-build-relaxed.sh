#!/usr/bin/env bash
# __noChroot and `sandbox = relaxed`: only derivations with __noChroot = "1"
# run without a sandbox (fixed-output ones stay sandboxed, unlike Nix);
# `sandbox = true` refuses them; a relocated store refuses them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 42
plan 34

echo "a host file" >"$TEST_ROOT/hostfile"
chmod 755 "$TEST_ROOT"
P='export PATH=/usr/sbin:/usr/bin:/sbin:/bin; '
# Builders that fail unless they are (not) sandboxed.
mkdrv "$TEST_ROOT/plain.json" plain '
[ "$(id -u)" = 1000 ] || exit 1
[ -e '"$TEST_ROOT"'/hostfile ] && { echo sees the host; exit 1; }
echo sandboxed > $out'
mkdrv "$TEST_ROOT/nochroot.json" nochroot "$P"'
cat '"$TEST_ROOT"'/hostfile > $out; id -un >> $out' --env __noChroot=1
mkdrv "$TEST_ROOT/notone.json" notone '[ "$(id -u)" = 1000 ] && echo x > $out' --env __noChroot=true
want=$(printf 'fixed\n' | sha256sum | cut -d' ' -f1)
mkdrv "$TEST_ROOT/fod.json" fod.txt '
[ "$(id -u)" = 1000 ] || exit 1
[ -e '"$TEST_ROOT"'/hostfile ] && exit 1
echo fixed > $out' --fixed "sha256:$want"

# --- sandbox = true (the default)
run_fails "__noChroot with sandbox = true" 1 "$NIB" build "$TEST_ROOT/nochroot.json"
like "is refused, saying why" "$ERR" \
	"cannot build '/nib/store/[0-9a-z]{32}-nochroot\.drv': it has '__noChroot' set, but that is not allowed when 'sandbox' is 'true' \(set 'sandbox = relaxed'"
run_fails "--json says unsupported" 1 "$NIB" build --json "$TEST_ROOT/nochroot.json"
like "status" "$OUT" '"status":"unsupported"'
run_ok "__noChroot = \"true\" is not \"1\": sandboxed" "$NIB" build "$TEST_ROOT/notone.json"

# --- relaxed, with the tests' relocated store: nothing may leave the sandbox
echo "sandbox = relaxed" >>"$NIB_CONF_DIR/nib.conf"
run_ok "relaxed: a plain derivation" "$NIB" build --json "$TEST_ROOT/plain.json"
like "is sandboxed" "$OUT" '"sandboxed":true'
run_ok "relaxed: a fixed-output derivation" "$NIB" build --json "$TEST_ROOT/fod.json"
like "is sandboxed too" "$OUT" '"sandboxed":true'
run_fails "relaxed: __noChroot in a relocated store" 1 "$NIB" build "$TEST_ROOT/nochroot.json"
like "is refused, naming the settings" "$ERR" \
	"without a sandbox \(it has '__noChroot' set\): the store '/nib/store' is relocated to '$TEST_ROOT/root/nib/store' \(setting 'store-root'\)"
mkdrv "$TEST_ROOT/urnc.json" urnc 'echo x > $out' --feature uid-range --env __noChroot=1
run_fails "relaxed: uid-range with __noChroot" 1 "$NIB" build "$TEST_ROOT/urnc.json"
like "is refused" "$ERR" "feature 'uid-range' is only supported in sandboxed builds \(it has '__noChroot' set\)"
check_no_leftovers "relocated store"

# --- relaxed, with a store at its logical path
export NIB_STORE_DIR="$TEST_ROOT/store2" NIB_STATE_DIR="$TEST_ROOT/state2"
unset NIB_STORE_ROOT
STORE=$NIB_STORE_DIR
grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null
run_ok "relaxed: __noChroot runs unsandboxed" "$NIB" build --json "$TEST_ROOT/nochroot.json"
json=$OUT
like "the result says so" "$json" '"sandboxed":false'
out=$(sed -n 's/.*"outputs":{"out":"\([^"]*\)".*/\1/p' <<<"$json")
is "it saw the host file, as nixbld" "$(cat "$out")" "$(printf 'a host file\nnixbld')"
run_fails "relaxed: in the same store a plain derivation" 1 "$NIB" build "$TEST_ROOT/plain.json"
like "goes to the sandbox (which refuses a store under /tmp)" "$ERR" \
	"store directory '$TEST_ROOT/store2' cannot be used inside a sandbox"
mkdrv "$TEST_ROOT/nochroot2.json" nochroot2 "$P"'id -un > $out' --env __noChroot=1
run_fails "both at once with --keep-going" 1 "$NIB" build --keep-going --json \
	"$TEST_ROOT/nochroot2.json" "$TEST_ROOT/plain.json"
like "the __noChroot one is built" "$OUT" '"name":"nochroot2","status":"built"'
run_fails "relaxed becomes false: the plain derivation" 1 "$NIB" --option sandbox false build --json "$TEST_ROOT/plain.json"
like "runs unsandboxed (and fails its own check)" "$OUT" '"status":"failed".*"sandboxed":false'
check_no_leftovers "logical store"
done_testing

#!/usr/bin/env bash
# More of nib-daemon's protocol through a real daemon: queued builds in
# `nib daemon status`, the client's settings (SetOptions) and what an
# untrusted user may change, derivations given inline (BuildDerivation),
# QueryAllValidPaths, and the progress display of `nib build`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 31
command -v useradd >/dev/null && command -v setpriv >/dev/null ||
	skip_all "needs useradd and setpriv"
U1=nibo$$
useradd -M -N -s /bin/false "$U1" 2>/dev/null || skip_all "cannot create users"
at_exit "userdel $U1"
as_user() { setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups "$@"; }
chmod 755 "$TEST_ROOT"
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
export NIB_NO_PROGRESS=1
BUILD_INLINE="$abs_top_builddir/tests/helpers/build-inline"

plan 67

start_daemon && ok "daemon started" || not_ok "daemon started"
mkdir -p "$TEST_ROOT/d"

# ---- queued builds (max-jobs is 1) ----
# The sleep length is this test's own: the leftover check greps the process list.
mkdrv "$TEST_ROOT/d/slow.json" slow 'echo started; sleep 6503; echo 1 > $out'
mkdrv "$TEST_ROOT/d/other.json" other 'echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
: >"$TEST_ROOT/a.err"
# (setpriv itself in the background, not a function: $! must be the client.)
setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
	"$NIB" build "$TEST_ROOT/d/slow.json" >/dev/null 2>"$TEST_ROOT/a.err" &
APID=$!
for i in $(seq 1 100); do grep -q started "$TEST_ROOT/a.err" && break; sleep 0.1; done
like "the slow build runs" "$(cat "$TEST_ROOT/a.err")" "slow> started"
setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
	"$NIB" build "$TEST_ROOT/d/slow.json" >/dev/null 2>"$TEST_ROOT/b.err" &
BPID=$!
setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
	"$NIB" build "$TEST_ROOT/d/other.json" >/dev/null 2>"$TEST_ROOT/c.err" &
CPID=$!
for i in $(seq 1 100); do
	"$NIB" daemon status 2>/dev/null | grep -q "builds queued: 2" && break
	sleep 0.1
done
run_ok "nib daemon status" "$NIB" daemon status
like "shows the running build" "$OUT" "builds running: 1"
like "shows two queued builds" "$OUT" "builds queued: 2"
like "one waits for the same derivation" "$OUT" \
	"  /nib/store/[0-9a-z]{32}-slow.drv  waiting for another build of the same derivation  conn [0-9]+  for "
like "one waits for a job (max-jobs)" "$OUT" \
	"  /nib/store/[0-9a-z]{32}-other.drv  waiting for a free job \(max-jobs\)  conn [0-9]+  for "
run_ok "nib daemon status --json" "$NIB" daemon status --json
like "json: queued, same derivation" "$OUT" \
	'"queued":\[.*\{"derivation":"/nib/store/[0-9a-z]{32}-slow.drv","reason":"same-derivation","pid":[0-9]+,"connection":[0-9]+,"since":[0-9]+\}'
like "json: queued, max-jobs" "$OUT" \
	'\{"derivation":"/nib/store/[0-9a-z]{32}-other.drv","reason":"max-jobs","pid":[0-9]+,"connection":[0-9]+,"since":[0-9]+\}'
run_ok "a queued build is visible to a user too" as_user "$NIB" daemon status
like "(the user's view)" "$OUT" "builds queued: 2"
kill -KILL $BPID $CPID; wait $BPID $CPID 2>/dev/null
kill -KILL $APID; wait $APID 2>/dev/null
for i in $(seq 1 100); do pgrep -f "sleep 6503" >/dev/null || break; sleep 0.1; done
pgrep -f "sleep 6503" >/dev/null && not_ok "the builder is gone" || ok "the builder is gone"
for i in $(seq 1 50); do
	"$NIB" daemon status 2>/dev/null | grep -q "builds queued: 0" && break
	sleep 0.1
done
run_ok "status once the clients are gone" "$NIB" daemon status
like "nothing queued any more" "$OUT" "builds queued: 0"
is "no list is left behind" "$(ls "$NIB_STATE_DIR/jobs/queued" 2>/dev/null)" ""

# ---- the client's settings ----
mkdrv "$TEST_ROOT/d/silent.json" silent 'sleep 4; echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
run_fails "max-silent-time from the command line applies in the daemon" 1 \
	as_user "$NIB" --option max-silent-time 1 build "$TEST_ROOT/d/silent.json"
like "with the max-silent-time reason" "$ERR" "timed out after 1 seconds of silence"
run_fails "so does timeout from NIB_CONFIG" 1 \
	as_user env NIB_CONFIG="timeout = 1" "$NIB" build "$TEST_ROOT/d/silent.json"
like "with the timeout reason" "$ERR" "timed out after 1 seconds"
mkdrv "$TEST_ROOT/d/plain.json" plain 'echo plain; echo 1 > $out'
mkdrv "$TEST_ROOT/d/quiet.json" quiet 'echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
run_ok "an untrusted user's 'sandbox false' does not stop a build" \
	as_user "$NIB" --option sandbox false build "$TEST_ROOT/d/plain.json"
like "the user is told it was ignored" "$ERR" \
	"warning: ignoring the client-specified setting 'sandbox', because it is a restricted setting and you are not a trusted user"
like "the build ran (sandboxed)" "$ERR" "plain> plain"
run_ok "-v shows the daemon's own messages" as_user "$NIB" -v build "$TEST_ROOT/d/other.json"
like "(the daemon says what it builds)" "$ERR" "building 1 derivation: /nib/store/[0-9a-z]{32}-other.drv"
run_ok "without -v it does not" as_user "$NIB" build "$TEST_ROOT/d/quiet.json"
is "(nothing from the daemon)" "$(grep -c 'building 1 derivation' <<<"$ERR")" 0

# ---- QueryAllValidPaths ----
run_ok "path-info --all through the daemon" as_user "$NIB" path-info --all
ALL_D=$OUT
run_ok "path-info --all locally" "$NIB" --store local path-info --all
is "same list both ways" "$ALL_D" "$OUT"
like "it has the built outputs" "$ALL_D" "-plain$"

# ---- derivations given inline (BuildDerivation) ----
mkdrv "$TEST_ROOT/d/ia.json" inline-ia 'echo from inline; echo ia > $out'
mkdrv "$TEST_ROOT/d/fod.json" inline-fod 'printf hello > $out' \
	--fixed sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
for n in ia fod; do
	"$NIB" derivation show --aterm "$TEST_ROOT/d/$n.json" >"$TEST_ROOT/d/$n.drv"
	"$NIB" derivation paths "$TEST_ROOT/d/$n.json" >"$TEST_ROOT/d/$n.paths"
done
chmod -R a+rX "$TEST_ROOT/d"
IA_DRV=$(sed -n 's/^drv //p' "$TEST_ROOT/d/ia.paths")
IA_OUT=$(sed -n 's/^out //p' "$TEST_ROOT/d/ia.paths")
FOD_DRV=$(sed -n 's/^drv //p' "$TEST_ROOT/d/fod.paths")
FOD_OUT=$(sed -n 's/^out //p' "$TEST_ROOT/d/fod.paths")
run_fails "an untrusted user may not build an input-addressed derivation inline" 1 \
	as_user "$BUILD_INLINE" "$NIB_DAEMON_SOCKET" /nib/store "$TEST_ROOT/d/ia.drv" "$IA_DRV"
like "(refused)" "$ERR" "not privileged to build input-addressed derivations"
run_fails "(nothing was built)" 1 "$NIB" --store local path-info "$IA_OUT"
run_ok "an untrusted user builds a fixed-output derivation inline" \
	as_user "$BUILD_INLINE" "$NIB_DAEMON_SOCKET" /nib/store "$TEST_ROOT/d/fod.drv" "$FOD_DRV"
like "(built)" "$OUT" "^status Built$"
like "(its output)" "$OUT" "output ${FOD_OUT#/nib/store/}"
is "(with the right contents)" "$(cat "$TEST_ROOT/root$FOD_OUT")" "hello"
run_ok "root builds the input-addressed one inline" \
	"$BUILD_INLINE" "$NIB_DAEMON_SOCKET" /nib/store "$TEST_ROOT/d/ia.drv" "$IA_DRV"
like "(built)" "$OUT" "^status Built$"
is "(its output)" "$(cat "$TEST_ROOT/root$IA_OUT")" "ia"
run_fails "the .drv itself was never added" 1 "$NIB" --store local path-info "$IA_DRV"
run_ok "asking again: already valid" \
	"$BUILD_INLINE" "$NIB_DAEMON_SOCKET" /nib/store "$TEST_ROOT/d/ia.drv" "$IA_DRV"
like "(AlreadyValid)" "$OUT" "^status AlreadyValid$"

# ---- progress on a terminal, from the daemon's activities ----
if command -v script >/dev/null; then
	mkdrv "$TEST_ROOT/d/tty.json" tty-prog 'echo a line; sleep 0.5; echo 1 > $out'
	chmod -R a+rX "$TEST_ROOT/d"
	run_ok "nib build on a terminal, through the daemon" script -qec \
		"env -u NIB_NO_PROGRESS setpriv --reuid=$U1 --regid=$(id -g "$U1") --clear-groups $NIB build $TEST_ROOT/d/tty.json" /dev/null
	like "a one-line progress display naming the running build" "$OUT" \
		"\[0/1 built, 1 running, 0 waiting\] building tty-prog"
	is "(instead of the log lines)" "$(grep -c 'tty-prog> ' <<<"$OUT")" 0
else
	for i in 1 2 3; do ok "# SKIP needs script(1)"; done
fi

# ---- check mode (bmCheck) ----
mkdrv "$TEST_ROOT/d/det.json" det 'echo same > $out'
mkdrv "$TEST_ROOT/d/nondet.json" nondet 'cat /proc/sys/kernel/random/uuid > $out'
mkdrv "$TEST_ROOT/d/never.json" never 'echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
run_ok "a deterministic build" as_user "$NIB" build "$TEST_ROOT/d/det.json"
DET=$OUT
run_ok "--check through the daemon: the same outputs" as_user "$NIB" build --check "$TEST_ROOT/d/det.json"
is "(prints the output path)" "$OUT" "$DET"
run_ok "--check locally: the same" "$NIB" --store local build --check "$TEST_ROOT/d/det.json"
run_ok "a build that is not deterministic" as_user "$NIB" build "$TEST_ROOT/d/nondet.json"
ND=$OUT
BEFORE=$(cat "$TEST_ROOT/root$ND")
run_fails "--check through the daemon finds the difference" 1 \
	as_user "$NIB" build --check "$TEST_ROOT/d/nondet.json"
like "(says so, as Nix does)" "$ERR" \
	"error: derivation '/nib/store/[0-9a-z]{32}-nondet.drv' may not be deterministic: output '$ND' differs"
is "(the registered output is unchanged)" "$(cat "$TEST_ROOT/root$ND")" "$BEFORE"
run_fails "--check locally finds it too" 1 "$NIB" --store local build --check --json "$TEST_ROOT/d/nondet.json"
like "(status not-deterministic)" "$OUT" '"status":"not-deterministic"'
run_ok "the store still verifies" "$NIB" --store local store verify --check-contents
run_fails "--check of a derivation never built" 1 as_user "$NIB" build --check "$TEST_ROOT/d/never.json"
like "(cannot be checked)" "$ERR" "some outputs of '/nib/store/[0-9a-z]{32}-never.drv' are not valid, so checking is not possible"

stop_daemon
ok "daemon stopped"
check_no_leftovers "after the daemon"
done_testing

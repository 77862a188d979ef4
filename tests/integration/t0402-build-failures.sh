#!/usr/bin/env bash
# Failing builds and cleanup: every way a build can fail ends with a clear
# message, nothing registered, and nothing left behind (processes, cgroups,
# directories, busy slots).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 2
plan 86

elapsed() { echo $(($(date +%s) - $1)); }

# --- a builder that leaves daemons behind
mkdrv "$TEST_ROOT/daemon.json" daemon '
setsid sh -c "sleep 1000" </dev/null >/dev/null 2>&1 &
( setsid sh -c "sleep 1000 & exec sleep 1000" & )
sleep 0.2
echo left two daemons > $out'
t0=$(date +%s)
run_ok "a builder that double-forks setsid daemons" "$NIB" build "$TEST_ROOT/daemon.json"
like "finishes at once" "$(elapsed "$t0")" "^[0-5]$"
check_no_leftovers "after the daemon builder"
mkdrv "$TEST_ROOT/daemon2.json" daemon-nocg '
setsid sh -c "sleep 1000" </dev/null >/dev/null 2>&1 &
echo x > $out'
run_ok "the same without cgroups (use-cgroups = false)" "$NIB" --option use-cgroups false build --json "$TEST_ROOT/daemon2.json"
like "CPU and memory come from getrusage then" "$OUT" '"cpuUser":[0-9.e-]+,"cpuSystem":[0-9.e-]+,"peakMemory":[0-9]+'
is "no process of the range is left" "$(range_processes "$FIRST_ID" $((4 * IDS_PER_SLOT)))" ""

# --- limits
mkdrv "$TEST_ROOT/timeout.json" slow 'echo started; sleep 60; echo x > $out'
t0=$(date +%s)
run_fails "timeout" 1 "$NIB" --option timeout 1 build "$TEST_ROOT/timeout.json"
like "says it timed out" "$ERR" "building '/nib/store/[0-9a-z]{32}-slow\.drv' timed out after 1 seconds"
like "killed quickly" "$(elapsed "$t0")" "^[0-6]$"
like "shows the log" "$ERR" "> started"
mkdrv "$TEST_ROOT/silent.json" silent 'echo one line; sleep 60; echo x > $out'
run_fails "max-silent-time" 1 "$NIB" --option max-silent-time 1 build --json "$TEST_ROOT/silent.json"
like "says it was silent" "$ERR" "timed out after 1 seconds of silence"
like "status timed-out" "$OUT" '"status":"timed-out"'
mkdrv "$TEST_ROOT/chatty.json" chatty 'while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done'
run_fails "max-build-log-size" 1 "$NIB" --option max-build-log-size 10000 build "$TEST_ROOT/chatty.json"
like "says why" "$ERR" "killed after writing more than 10000 bytes of log output"
logsize=$("$NIB" log "$(ls "$STORE"/*-chatty.drv | sed "s|^$TEST_ROOT/root||")" | wc -c)
is "the stored log stops at the limit" "$logsize" 10000
check_no_leftovers "after the limits"

# --- the builder fails
mkdrv "$TEST_ROOT/exit1.json" exits 'echo first; echo second; echo third; exit 1'
run_fails "a builder that exits 1" 1 "$NIB" build "$TEST_ROOT/exit1.json"
like "exit code" "$ERR" "builder for '/nib/store/[0-9a-z]{32}-exits\.drv' failed with exit code 1"
like "last lines" "$ERR" "last 3 log lines:"
like "the log's tail" "$ERR" "       > third"
like "how to see the rest" "$ERR" "For full logs, run 'nib log /nib/store/[0-9a-z]{32}-exits\.drv'"
run_fails "log-lines limits the tail" 1 "$NIB" --option log-lines 1 build "$TEST_ROOT/exit1.json"
like "one line" "$ERR" "last 1 log lines:"
is "only the last" "$(grep -c '       > ' <<<"$ERR")" 1
run_fails "the same on a terminal-less --json run" 1 "$NIB" build --json "$TEST_ROOT/exit1.json"
like "status failed and the wait status" "$OUT" '"status":"failed","error":"builder for [^"]*exit code 1","outputs":\{[^}]*\}.*"waitStatus":256'

mkdrv "$TEST_ROOT/nobuilder.json" nobuilder 'x' --builder /no/such/builder
run_fails "a builder that does not exist" 1 "$NIB" build "$TEST_ROOT/nobuilder.json"
like "names it" "$ERR" "'/no/such/builder'.*No such file or directory"

mkdrv "$TEST_ROOT/missing.json" missing-out 'echo did nothing'
run_fails "a missing output" 1 "$NIB" build "$TEST_ROOT/missing.json"
like "names the output" "$ERR" "failed to produce output path for output 'out' at '/nib/store/[0-9a-z]{32}-missing-out'"
mkdrv "$TEST_ROOT/half.json" half 'echo x > $out' --out out --out dev
run_fails "one of two outputs missing" 1 "$NIB" build "$TEST_ROOT/half.json"
like "names dev" "$ERR" "for output 'dev'"
half_out=$(grep -o '/nib/store/[0-9a-z]*-half"' "$STORE"/*-half.drv | tr -d '"' | head -1)
run_fails "the output that was made is not registered" 1 "$NIB" path-info "$half_out"
is "and not in the store" "$(ls "$STORE" | grep -c -- '-half$')" 0

mkdrv "$TEST_ROOT/fifo.json" fifo 'mkfifo $out'
run_fails "an output that is a fifo" 1 "$NIB" build "$TEST_ROOT/fifo.json"
like "is rejected" "$ERR" "is not a regular file, directory or symlink"
mkdrv "$TEST_ROOT/fifo2.json" fifo2 'mkdir $out; mkfifo $out/pipe'
run_fails "a fifo inside an output" 1 "$NIB" build "$TEST_ROOT/fifo2.json"
like "names the file" "$ERR" "'/nib/store/[0-9a-z]{32}-fifo2/pipe' is not a regular file"

# An output the host changes to an ID outside the slot while the builder waits.
mkdrv "$TEST_ROOT/owner.json" owner 'mkdir $out; echo x > $out/f; while [ ! -e /build/go ]; do sleep 0.1; done'
"$NIB" build "$TEST_ROOT/owner.json" >"$TEST_ROOT/owner.out" 2>"$TEST_ROOT/owner.err" &
pid=$!
f=""
for i in $(seq 100); do
	f=$(ls -d "$STORE"/.nib-builds/*/*-owner/f 2>/dev/null | head -1)
	[ -n "$f" ] && break
	sleep 0.1
done
if [ -n "$f" ]; then
	chown 4242:4242 "$f"
	touch "$(ls -d "$NIB_STATE_DIR"/builds/nib-build-*/build | head -1)/go"
fi
wait $pid
is "an output file owned by an outside UID fails the build" "$?" 1
like "invalid ownership" "$(cat "$TEST_ROOT/owner.err")" "invalid ownership on file '/nib/store/[0-9a-z]{32}-owner/f': owned by 4242:4242"

# --- fixed-output hashes
sha_x=$(printf 'x\n' | sha256sum | cut -d' ' -f1)
sri_x="sha256-$(printf 'x\n' | sha256sum | cut -d' ' -f1 | "$BUSYBOX" xxd -r -p | base64)"
wrong=0000000000000000000000000000000000000000000000000000000000000000
mkdrv "$TEST_ROOT/fod-bad.json" fod-bad 'echo x > $out' --fixed "sha256:$wrong"
run_fails "a fixed-output hash mismatch" 1 "$NIB" build --json "$TEST_ROOT/fod-bad.json"
like "reports it" "$ERR" "hash mismatch in fixed-output derivation '/nib/store/[0-9a-z]{32}-fod-bad\.drv'"
like "wanted, in SRI form" "$ERR" "specified: sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
like "actual, in SRI form" "$ERR" "got:    $sri_x"
like "status hash-mismatch" "$OUT" '"status":"hash-mismatch"'
mkdrv "$TEST_ROOT/fod-ok.json" fod-ok 'echo x > $out' --fixed "sha256:$sha_x"
run_ok "a flat sha256 fixed output" "$NIB" build "$TEST_ROOT/fod-ok.json"
mkdrv "$TEST_ROOT/fod-sha1.json" fod-sha1 'echo x > $out' --fixed "sha1:$(printf 'x\n' | sha1sum | cut -d' ' -f1)"
run_ok "a flat sha1 fixed output" "$NIB" build "$TEST_ROOT/fod-sha1.json"
mkdrv "$TEST_ROOT/fod-sha512.json" fod-sha512 'echo x > $out' --fixed "sha512:$(printf 'x\n' | sha512sum | cut -d' ' -f1)"
run_ok "a flat sha512 fixed output" "$NIB" build "$TEST_ROOT/fod-sha512.json"
mkdir -p "$TEST_ROOT/tree/bin"
echo a >"$TEST_ROOT/tree/f"
printf '#!/bin/sh\n' >"$TEST_ROOT/tree/bin/run"
chmod +x "$TEST_ROOT/tree/bin/run"
nar=$("$NIB" hash path --base16 "$TEST_ROOT/tree" | sed 's/^sha256://')
mkdrv "$TEST_ROOT/fod-r.json" fod-r 'mkdir -p $out/bin; echo a > $out/f; printf "#!/bin/sh\n" > $out/bin/run; chmod +x $out/bin/run' --fixed-r "sha256:$nar"
run_ok "a recursive sha256 fixed output" "$NIB" build "$TEST_ROOT/fod-r.json"
nar512=$("$NIB" hash path --type sha512 --base16 "$TEST_ROOT/tree" | sed 's/^sha512://')
mkdrv "$TEST_ROOT/fod-r512.json" fod-r512 'mkdir -p $out/bin; echo a > $out/f; printf "#!/bin/sh\n" > $out/bin/run; chmod +x $out/bin/run' --fixed-r "sha512:$nar512"
run_ok "a recursive sha512 fixed output" "$NIB" build "$TEST_ROOT/fod-r512.json"
mkdrv "$TEST_ROOT/fod-dir.json" fod-dir 'mkdir $out' --fixed "sha256:$sha_x"
run_fails "a flat fixed output that is a directory" 1 "$NIB" build "$TEST_ROOT/fod-dir.json"
like "says it must be a regular file" "$ERR" "should be a non-executable regular file"

# --- memory limit (the cgroup's; this host may enforce it through cgroup v1)
mkdrv "$TEST_ROOT/hog.json" hog 'dd if=/dev/zero of=/dev/null bs=256M count=1 || exit 1; echo x > $out'
run_fails "a build over build-memory-max" 1 "$NIB" --option build-memory-max 64M build "$TEST_ROOT/hog.json"
like "fails, out of memory" "$ERR" "out of memory: build-memory-max is 67108864 bytes"
mkdrv "$TEST_ROOT/forks.json" forks 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait; echo x > $out'
run_fails "a build over build-pids-max" 1 "$NIB" --option build-pids-max 4 build "$TEST_ROOT/forks.json"
check_no_leftovers "after the failures"

# --- keep-failed
mkdrv "$TEST_ROOT/kept.json" kept 'echo inspect me > /build/marker; exit 3'
run_fails "--keep-failed" 1 "$NIB" build -K "$TEST_ROOT/kept.json"
like "says where" "$ERR" "keeping build directory '$NIB_STATE_DIR/builds/nib-failed-kept-[A-Za-z0-9]{6}/build'"
kept=$(sed -n "s/.*keeping build directory '\([^']*\)'.*/\1/p" <<<"$ERR")
is "the build's files are there" "$(cat "$kept/marker")" "inspect me"
is "its top directory is root's alone" "$(stat -c '%a %u' "$(dirname "$kept")")" "700 0"

# --- interrupting nib build
mkdrv "$TEST_ROOT/long.json" long 'echo running; sleep 100; echo x > $out'
mkdrv "$TEST_ROOT/long2.json" long2 'sleep 100; echo x > $out'
"$NIB" build -j 2 "$TEST_ROOT/long.json" "$TEST_ROOT/long2.json" >"$TEST_ROOT/int.out" 2>"$TEST_ROOT/int.err" &
pid=$!
for i in $(seq 100); do
	[ "$(range_processes "$FIRST_ID" $((4 * IDS_PER_SLOT)) | wc -l)" -ge 2 ] && grep -q running "$TEST_ROOT/int.err" && break
	sleep 0.1
done
t0=$(date +%s)
kill -INT $pid
wait $pid
is "SIGINT ends nib build with failure" "$?" 1
like "promptly" "$(elapsed "$t0")" "^[0-5]$"
like "says it was interrupted" "$(cat "$TEST_ROOT/int.err")" "nib: error: interrupted"
"$NIB" build "$TEST_ROOT/long.json" >/dev/null 2>"$TEST_ROOT/term.err" &
pid=$!
for i in $(seq 100); do
	[ -n "$(range_processes "$FIRST_ID" $((4 * IDS_PER_SLOT)))" ] && break
	sleep 0.1
done
kill -TERM $pid
wait $pid
is "SIGTERM too" "$?" 1
check_no_leftovers "after interrupting builds"
done_testing

#!/usr/bin/env bash
# Shared scheduling through nib-daemon: 50 clients asking for overlapping
# derivations at once with max-jobs 2 all succeed, each derivation is built
# exactly once, never more than 2 at a time; SIGKILL of the daemon mid-build
# leaves nothing behind once it is restarted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 30
command -v sqlite3 >/dev/null || skip_all "needs sqlite3"
command -v useradd >/dev/null && command -v setpriv >/dev/null ||
	skip_all "needs useradd and setpriv"
U1=nibs$$
useradd -M -N -s /bin/false "$U1" 2>/dev/null || skip_all "cannot create users"
at_exit "userdel $U1"
chmod 755 "$TEST_ROOT"
echo "max-jobs = 2" >>"$NIB_CONF_DIR/nib.conf"
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
export NIB_NO_PROGRESS=1
DB="$NIB_STATE_DIR/db/db.sqlite"

plan 15

start_daemon && ok "daemon started" || not_ok "daemon started"

mkdir -p "$TEST_ROOT/d"
for i in 0 1 2 3 4 5; do
	mkdrv "$TEST_ROOT/d/s$i.json" "shared$i" "echo building shared$i; sleep 0.2; echo $i > \$out"
done
chmod -R a+rX "$TEST_ROOT/d"

pids=()
for k in $(seq 0 49); do
	a=$((k % 6)) b=$(((k + 1) % 6)) c=$(((k + 3) % 6))
	setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
		"$NIB" build "$TEST_ROOT/d/s$a.json" "$TEST_ROOT/d/s$b.json" "$TEST_ROOT/d/s$c.json" \
		>"$TEST_ROOT/c$k.out" 2>"$TEST_ROOT/c$k.err" &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
is "all 50 clients succeeded" "$fails" 0
[ "$fails" = 0 ] || diag "$(cat "$TEST_ROOT"/c*.err | sort | uniq -c | head -20)"
is "each client got its 3 paths" "$(cat "$TEST_ROOT"/c*.out | wc -l)" 150
is "6 derivations built" "$(sqlite3 "$DB" "select count(distinct drv) from BuildRecords where status = 'built' and drv like '%-shared%'")" 6
is "each exactly once" "$(sqlite3 "$DB" "select count(*) from BuildRecords where drv like '%-shared%'")" 6
# Highest number of builds running at once, from the records' start and end times.
maxpar=$(sqlite3 "$DB" "select startTime, 1 from BuildRecords where drv like '%-shared%' union all select endTime, -1 from BuildRecords where drv like '%-shared%'" |
	sort -t'|' -k1,1n -k2,2n | awk -F'|' '{ n += $2; if (n > m) m = n } END { print m }')
ok_par=no
[ "$maxpar" -le 2 ] && ok_par=yes
is "never more than 2 builds at a time (saw $maxpar)" "$ok_par" yes

# Two clients, one derivation: the second waits for the first's build and
# is shown its log from the stored file.
mkdrv "$TEST_ROOT/d/once.json" once 'echo step one; sleep 1; echo step two; echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
: >"$TEST_ROOT/a.err"
setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
	"$NIB" build "$TEST_ROOT/d/once.json" >"$TEST_ROOT/a.out" 2>"$TEST_ROOT/a.err" &
APID=$!
for i in $(seq 1 100); do grep -q "step one" "$TEST_ROOT/a.err" && break; sleep 0.05; done
run_ok "a second client asks for the same derivation" \
	setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups "$NIB" build "$TEST_ROOT/d/once.json"
wait $APID
is "both get the same output" "$OUT" "$(cat "$TEST_ROOT/a.out")"
is "the second saw the first's log" "$(grep '^once>' <<<"$ERR")" "once> step one
once> step two"
is "built once" "$(sqlite3 "$DB" "select count(*) from BuildRecords where drv like '%-once.drv'")" 1

# SIGKILL of the daemon in the middle of a build.
# The sleep length is this test's own: the leftover check below greps the
# process list, and other tests run at the same time under make -j.
mkdrv "$TEST_ROOT/d/long.json" long 'echo started; sleep 6502; echo 1 > $out'
chmod -R a+rX "$TEST_ROOT/d"
: >"$TEST_ROOT/long.err"
setpriv --reuid="$U1" --regid="$(id -g "$U1")" --clear-groups \
	"$NIB" build "$TEST_ROOT/d/long.json" >/dev/null 2>"$TEST_ROOT/long.err" &
CPID=$!
for i in $(seq 1 100); do grep -q started "$TEST_ROOT/long.err" && break; sleep 0.1; done
like "the long build started" "$(cat "$TEST_ROOT/long.err")" "long> started"
stop_daemon KILL
wait $CPID 2>/dev/null
start_daemon && ok "daemon restarted" || not_ok "daemon restarted"
for i in $(seq 1 100); do pgrep -f "sleep 6502" >/dev/null || break; sleep 0.1; done
pgrep -f "sleep 6502" >/dev/null && not_ok "no builder is left" || ok "no builder is left"
busy=$("$NIB" --store local slots --json 2>/dev/null | grep -o '"state":"[a-z]*"' | grep -vc '"free"')
is "no slot is taken" "$busy" "0"
stop_daemon
run_ok "the store verifies clean" "$NIB" --store local store verify
done_testing

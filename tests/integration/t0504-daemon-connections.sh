#!/usr/bin/env bash
# nib-daemon's connection processes: spares forked in advance serve many
# sequential and concurrent connections, one each; max-connections still
# refuses with a clear error; a connection process that crashes, or a
# spare that is killed, harms neither the daemon nor other connections;
# SIGTERM with idle spares stops at once; and all of it without spares.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

CLIENTS="$NIB_TEST_HELPERS/daemon-clients"
[ -x "$CLIENTS" ] || skip_all "needs tests/helpers/daemon-clients"
export NIB_DAEMON_SOCKET="$TEST_ROOT/socket"
id_range_conf 504 >"$NIB_CONF_DIR/nib.conf"
echo "sandbox = false" >>"$NIB_CONF_DIR/nib.conf"

# children: the daemon's child processes, one pid a line.
children() { pgrep -P "$DAEMON_PID" | sort; }
# wait_children N: until the daemon has N children (up to 5 s).
wait_children() {
	local i
	for i in $(seq 1 100); do
		[ "$(children | wc -l)" = "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
# open_conns: how many connections `nib daemon status` lists.
open_conns() { "$NIB" daemon status | sed -n 's/^connections: \([0-9]*\) open$/\1/p'; }
# hold NAME: a connection kept open in the background (handshake done); HOLD_NAME=pid.
hold() {
	local i
	rm -f "$TEST_ROOT/$1.ready"
	"$CLIENTS" --hold "$TEST_ROOT/$1.ready" 2>"$TEST_ROOT/$1.err" &
	eval "HOLD_$1=$!"
	for i in $(seq 1 100); do [ -e "$TEST_ROOT/$1.ready" ] && return 0; sleep 0.05; done
	return 1
}
unhold() {
	local v="HOLD_$1"
	kill "${!v}" 2>/dev/null
	wait "${!v}" 2>/dev/null
}
at_exit 'kill $(jobs -p) 2>/dev/null'

plan 34

start_daemon && ok "daemon started" || not_ok "daemon started"
wait_children 2 && ok "two spare connection processes wait" ||
	not_ok "two spare connection processes wait (children: $(children | tr '\n' ' '))"
is "spares are not connections" "$(open_conns)" "0"

run_ok "300 connections one after the other" "$CLIENTS" 300 1
is "all served" "$OUT" "300 served"
run_ok "300 connections, 30 at a time" "$CLIENTS" 300 30
is "all served" "$OUT" "300 served"
is "each was logged with its number" \
	"$(grep -c '^nib-daemon: conn [0-9]* uid=[0-9]*: connected (user' "$TEST_ROOT/daemon.log")" "600"
like "numbered up to 600" "$(cat "$TEST_ROOT/daemon.log")" "conn 600 uid=$(id -u): connected"
wait_children 2 && ok "back to two spares, all connection processes reaped" ||
	not_ok "back to two spares (children: $(children | tr '\n' ' '))"

hold a && hold b && ok "two connections held" || not_ok "two connections held"
is "status counts them" "$(open_conns)" "2"
STATUS=$("$NIB" daemon status)
PID_A=$(awk '$1 == "conn" && $5 == "pid" { print $6; exit }' <<<"$STATUS")
[ -n "$PID_A" ] && kill -SEGV "$PID_A" && ok "a connection process is killed with SIGSEGV" ||
	not_ok "a connection process is killed with SIGSEGV (status: $STATUS)"
for i in $(seq 1 100); do [ "$(open_conns)" = "1" ] && break; sleep 0.05; done
is "the other connection is still open" "$(open_conns)" "1"
# (11, or 6 under AddressSanitizer, which turns the SIGSEGV into an abort)
like "the daemon logs the crash" "$(cat "$TEST_ROOT/daemon.log")" \
	"connection process $PID_A killed by signal (11|6)"
run_ok "new connections are served" "$CLIENTS" 20 4
kill -0 "$DAEMON_PID" && ok "the daemon is alive" || not_ok "the daemon is alive"
unhold a
unhold b

wait_children 2
SPARE=$(children | head -n 1)
kill -KILL "$SPARE"
for i in $(seq 1 100); do grep -q "exited without a connection" "$TEST_ROOT/daemon.log" && break; sleep 0.05; done
like "a killed spare is noticed" "$(cat "$TEST_ROOT/daemon.log")" \
	"1 spare connection process exited without a connection"
run_ok "connections are served meanwhile" "$CLIENTS" 20 2
wait_children 2 && ok "the spares are replaced" || not_ok "the spares are replaced"

SPARES=$(children)
start=$(date +%s%N)
stop_daemon
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 3000 ] && ok "SIGTERM with idle spares stops at once" ||
	not_ok "SIGTERM with idle spares stops at once (took $ms ms)"
left=0
for p in $SPARES; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
is "no spare is left behind" "$left" "0"

# max-connections with spares: the third of two allowed is refused politely.
start_daemon --option max-connections 2 && ok "daemon restarted with max-connections 2" ||
	not_ok "daemon restarted with max-connections 2"
hold a && hold b && ok "two connections held" || not_ok "two connections held"
run_fails "a third is refused" 1 "$CLIENTS" 1 1
like "with a clear error" "$ERR" "too many connections \(max-connections\)"
is "status still counts two" "$(open_conns)" "2"
unhold a
# (A connection counts until its process has exited and been reaped.)
for i in $(seq 1 100); do [ "$(open_conns)" = "1" ] && break; sleep 0.05; done
run_ok "once one is gone, a client gets in again" "$CLIENTS" 1 1
unhold b
stop_daemon

# Without spares: a process is forked for each connection.
start_daemon --option spare-connection-processes 0 && ok "daemon restarted without spares" ||
	not_ok "daemon restarted without spares"
sleep 0.2
is "no spare is forked" "$(children | wc -l)" "0"
run_ok "connections are served" "$CLIENTS" 100 5
is "all of them" "$OUT" "100 served"
stop_daemon
start_daemon --option spare-connection-processes 0 --option max-connections 1
hold a || true
run_fails "past max-connections, refused" 1 "$CLIENTS" 1 1
like "with the same error" "$ERR" "too many connections"
unhold a
stop_daemon

done_testing

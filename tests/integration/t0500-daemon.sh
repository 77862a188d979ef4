#!/usr/bin/env bash
# nib-daemon: a real daemon in a temporary root, driven by `nib` as
# unprivileged users; same answers as the local store; peer authorisation.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

require_root
command -v useradd >/dev/null && command -v setpriv >/dev/null ||
	skip_all "needs useradd and setpriv"

U1=nibd$$a U2=nibd$$b
useradd -M -N -s /bin/false "$U1" 2>/dev/null || skip_all "cannot create users"
at_exit "userdel $U1"
useradd -M -N -s /bin/false "$U2" 2>/dev/null || skip_all "cannot create users"
at_exit "userdel $U2"

chmod 755 "$TEST_ROOT"
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
id_range_conf 500 >"$NIB_CONF_DIR/nib.conf"
cat >>"$NIB_CONF_DIR/nib.conf" <<CONF
allowed-users = root $U1
sandbox = false
CONF

# as USER CMD...: run CMD as USER (same environment).
as() {
	local u=$1; shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups "$@"
}

plan 38

start_daemon && ok "daemon started" || not_ok "daemon started"
is "socket is 0666" "$(stat -c %a "$NIB_DAEMON_SOCKET")" "666"
is "socket directory is 0755" "$(stat -c %a "$TEST_ROOT/sock")" "755"

mkdir -p "$TEST_ROOT/src/d"
printf 'hello\n' >"$TEST_ROOT/src/f"
printf 'a\n' >"$TEST_ROOT/src/d/a"
chmod -R a+rX "$TEST_ROOT/src"

run_ok "user adds a file through the daemon" as "$U1" "$NIB" add "$TEST_ROOT/src/f" "$TEST_ROOT/src/d"
P_DAEMON=$OUT
run_ok "root adds the same locally" "$NIB" --store local add "$TEST_ROOT/src/f" "$TEST_ROOT/src/d"
is "same paths both ways" "$P_DAEMON" "$OUT"
PF=$(head -n1 <<<"$P_DAEMON")
is "the store path belongs to root" "$(stat -c %U "$PF")" "root"

run_ok "path-info through the daemon" as "$U1" "$NIB" path-info --json "$PF"
J_DAEMON=$OUT
run_ok "path-info locally" "$NIB" --store local path-info --json "$PF"
is "same path-info" "$J_DAEMON" "$OUT"

run_ok "NIB_REMOTE=daemon works for root too" env NIB_REMOTE=daemon "$NIB" path-info "$PF"
is "root's answer" "$OUT" "$PF"

run_ok "verify through the daemon" as "$U1" "$NIB" store verify --json
V_DAEMON=$OUT
run_ok "verify locally" "$NIB" --store local store verify --json
is "same verify output" "$V_DAEMON" "$OUT"
run_ok "gc --dry-run through the daemon" as "$U1" "$NIB" gc --dry-run
G_DAEMON=$OUT
run_ok "gc --dry-run locally" "$NIB" --store local gc --dry-run
is "same gc --dry-run output" "$G_DAEMON" "$OUT"
run_ok "gc through the daemon" as "$U1" "$NIB" gc
run_fails "collected paths are gone" 1 "$NIB" --store local path-info "$PF"

run_fails "a user not in allowed-users is refused" 1 as "$U2" "$NIB" path-info "$PF"
like "refusal names the user" "$ERR" "not allowed to connect"
like "the daemon logs the refusal" "$(cat "$TEST_ROOT/daemon.log")" "refused: user '$U2'"

run_fails "an untrusted user cannot release slots" 1 as "$U1" "$NIB" slots release 0

run_ok "nib daemon status" "$NIB" daemon status
like "status shows the daemon" "$OUT" "^nib-daemon pid $DAEMON_PID, up "

stop_daemon
ok "daemon stopped on SIGTERM"
[ ! -e "$NIB_DAEMON_SOCKET" ] && ok "socket removed" || not_ok "socket removed"

# nib-daemon --stdio serves one connection on stdin/stdout (here behind socat).
if command -v socat >/dev/null; then
	socat UNIX-LISTEN:"$TEST_ROOT/stdio.sock",fork EXEC:"$NIB_DAEMON_BIN --stdio" 2>/dev/null &
	SOCAT=$!
	for i in $(seq 1 50); do [ -S "$TEST_ROOT/stdio.sock" ] && break; sleep 0.05; done
	run_ok "--stdio: add through it" env NIB_DAEMON_SOCKET="$TEST_ROOT/stdio.sock" "$NIB" --store daemon add "$TEST_ROOT/src/f"
	is "--stdio: same path" "$OUT" "$PF"
	kill $SOCAT 2>/dev/null; wait $SOCAT 2>/dev/null
else
	ok "# SKIP needs socat"; ok "# SKIP needs socat"
	"$NIB" --store local add "$TEST_ROOT/src/f" >/dev/null
fi

# max-connections: past the cap a client gets a clear error.
start_daemon --option max-connections 1 && ok "daemon restarted with max-connections 1" ||
	not_ok "daemon restarted with max-connections 1"
command -v python3 >/dev/null || { for i in 1 2 3 4; do ok "# SKIP needs python3"; done; stop_daemon; done_testing; }
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(3)' "$NIB_DAEMON_SOCKET" &
HOLD=$!
for i in $(seq 1 100); do "$NIB" daemon status | grep -q "^connections: 1 open" && break; sleep 0.05; done
run_fails "a second connection is refused" 1 as "$U1" "$NIB" path-info "$PF"
like "with a clear error" "$ERR" "too many connections"
kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null
sleep 0.2
run_ok "once the first is gone, a client gets in again" as "$U1" "$NIB" path-info "$PF"
is "and gets an answer" "$OUT" "$PF"
stop_daemon

# Socket activation: the socket comes from systemd (LISTEN_FDS/LISTEN_PID).
if command -v systemd-socket-activate >/dev/null; then
	envs=()
	for v in NIB_CONF_DIR NIB_STORE_DIR NIB_STATE_DIR NIB_LOG_DIR; do envs+=(-E "$v=${!v}"); done
	systemd-socket-activate -l "$TEST_ROOT/act.sock" "${envs[@]}" "$NIB_DAEMON_BIN" \
		2>>"$TEST_ROOT/daemon.log" &
	ACT=$!
	for i in $(seq 1 50); do [ -S "$TEST_ROOT/act.sock" ] && break; sleep 0.05; done
	run_ok "socket activation: a query" env NIB_DAEMON_SOCKET="$TEST_ROOT/act.sock" \
		"$NIB" --store daemon path-info "$PF"
	is "socket activation: the answer" "$OUT" "$PF"
	like "the daemon used the socket from systemd" "$(cat "$TEST_ROOT/daemon.log")" "socket \(from systemd\)"
	kill $ACT 2>/dev/null; wait $ACT 2>/dev/null
else
	for i in 1 2 3; do ok "# SKIP needs systemd-socket-activate"; done
fi

done_testing

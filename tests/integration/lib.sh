# lib.sh - shared helpers for nib's integration tests (TAP output).
#
# Each test sources this file, calls plan N (or skip_all REASON), then ok /
# not_ok / is / run_ok.  TEST_ROOT is a private temporary directory holding the
# store, state, logs and settings; it is removed on exit.  Tests never touch
# /nib, /nix, $HOME or /tmp outside TEST_ROOT.

set -u

: "${NIB:=nib}"
: "${NIB_DAEMON_BIN:=nib-daemon}"

TEST_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/nib-it-XXXXXX")
export NIB_CONF_DIR="$TEST_ROOT/etc"
export NIB_STORE_DIR="$TEST_ROOT/store"
export NIB_STATE_DIR="$TEST_ROOT/state"
export NIB_LOG_DIR="$TEST_ROOT/log"
unset NIB_CONFIG NIB_DAEMON_SOCKET NIB_STORE_ROOT NIB_REMOTE
mkdir -p "$NIB_CONF_DIR"

_tap_n=0
_tap_failed=0
_cleanup_hooks=()

at_exit() { _cleanup_hooks+=("$*"); }

_lib_cleanup() {
	local h
	for h in "${_cleanup_hooks[@]}"; do eval "$h" || true; done
	chmod -R u+w "$TEST_ROOT" 2>/dev/null || true
	rm -rf "$TEST_ROOT"
}
trap _lib_cleanup EXIT

plan() { echo "1..$1"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
diag() { sed 's/^/# /' <<<"$*"; }

ok() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $*"
}

not_ok() {
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $*"
}

# run_ok DESC CMD...: the command must exit 0.  Output is kept in $OUT / $ERR.
run_ok() {
	local desc=$1; shift
	if "$@" >"$TEST_ROOT/.out" 2>"$TEST_ROOT/.err"; then ok "$desc"; else
		not_ok "$desc (exit $?)"; diag "$(cat "$TEST_ROOT/.err")"; fi
	OUT=$(cat "$TEST_ROOT/.out"); ERR=$(cat "$TEST_ROOT/.err")
}

# run_fails DESC STATUS CMD...: the command must exit with STATUS.
run_fails() {
	local desc=$1 want=$2 got; shift 2
	"$@" >"$TEST_ROOT/.out" 2>"$TEST_ROOT/.err"; got=$?
	OUT=$(cat "$TEST_ROOT/.out"); ERR=$(cat "$TEST_ROOT/.err")
	if [ "$got" = "$want" ]; then ok "$desc"; else
		not_ok "$desc (exit $got, wanted $want)"; diag "$ERR"; fi
}

# is DESC GOT WANT
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else
		not_ok "$1"; diag "got:  $2"; diag "want: $3"; fi
}

# like DESC TEXT REGEX
like() {
	if grep -Eq -- "$3" <<<"$2"; then ok "$1"; else
		not_ok "$1"; diag "no match for /$3/ in:"; diag "$2"; fi
}

require_root() { [ "$(id -u)" = 0 ] || skip_all "needs root"; }

# start_daemon [ARGS...]: run $NIB_DAEMON_BIN in the background with the test's
# settings and wait (up to 10 s) for it to report readiness on --ready-fd.
# Its log goes to $TEST_ROOT/daemon.log and is printed as '# ' lines when a
# test failed.  DAEMON_PID is set.
start_daemon() {
	local i
	rm -f "$TEST_ROOT/daemon.ready"
	"$NIB_DAEMON_BIN" --ready-fd 3 "$@" 3>"$TEST_ROOT/daemon.ready" \
		2>>"$TEST_ROOT/daemon.log" &
	DAEMON_PID=$!
	for i in $(seq 1 200); do
		grep -q READY=1 "$TEST_ROOT/daemon.ready" 2>/dev/null && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	diag "nib-daemon did not become ready"
	diag "$(cat "$TEST_ROOT/daemon.log")"
	return 1
}

# stop_daemon [SIGNAL]: stop the daemon started by start_daemon (SIGTERM by default).
stop_daemon() {
	[ -n "${DAEMON_PID:-}" ] || return 0
	kill "-${1:-TERM}" "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

_daemon_cleanup() {
	stop_daemon KILL
	if [ "$_tap_failed" -gt 0 ] && [ -s "$TEST_ROOT/daemon.log" ]; then
		diag "daemon log:"
		diag "$(cat "$TEST_ROOT/daemon.log")"
	fi
}
_cleanup_hooks+=("_daemon_cleanup")

done_testing() { exit $((_tap_failed > 0)); }

#!/usr/bin/env bash
# nib-daemon's connection processes serve with a copy of the store handle
# the daemon opened at start: what other processes commit later is seen
# (also after the write-ahead log was checkpointed and begun again), what
# they commit is seen by others, and a schema changed under the running
# daemon is noticed as a fresh open would notice it.  Users and groups are
# looked up for every connection: a new member of an allowed group is let
# in at once, a removed one refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

require_root
command -v sqlite3 >/dev/null || skip_all "needs sqlite3"
command -v useradd >/dev/null && command -v groupadd >/dev/null &&
	command -v gpasswd >/dev/null && command -v setpriv >/dev/null ||
	skip_all "needs useradd, groupadd, gpasswd and setpriv"

U=nibr$$u G=nibr$$g
groupadd "$G" 2>/dev/null || skip_all "cannot create groups"
at_exit "groupdel $G"
useradd -M -N -s /bin/false "$U" 2>/dev/null || skip_all "cannot create users"
at_exit "userdel $U"

chmod 755 "$TEST_ROOT"
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
id_range_conf 505 >"$NIB_CONF_DIR/nib.conf"
cat >>"$NIB_CONF_DIR/nib.conf" <<CONF
allowed-users = root @$G
sandbox = false
CONF
DB="$NIB_STATE_DIR/db/db.sqlite"

# as USER CMD...: run CMD as USER (same environment).
as() {
	local u=$1; shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups "$@"
}
# count_valid STORE: how many valid paths STORE lists.
count_valid() { "$NIB" --store "$1" path-info --all | wc -l; }

plan 21

start_daemon && ok "daemon started" || not_ok "daemon started"
mkdir -p "$TEST_ROOT/src"
chmod a+rx "$TEST_ROOT/src"

# Added locally after the daemon opened the store: each of more
# connections than there are spare processes sees them.
seen=0
for i in 1 2 3 4 5; do
	printf 'local %s\n' "$i" >"$TEST_ROOT/src/l$i"
	P=$("$NIB" --store local add "$TEST_ROOT/src/l$i")
	"$NIB" --store daemon path-info "$P" >/dev/null && seen=$((seen + 1))
done
is "paths added locally since the daemon started are seen through it" "$seen" 5

# The write-ahead log checkpointed and cut to nothing: what is committed
# next begins a new log, which the daemon's processes must read as such.
for i in $(seq 1 20); do printf 'many %s\n' "$i" >"$TEST_ROOT/src/m$i"; done
for i in $(seq 1 10); do "$NIB" --store local add "$TEST_ROOT/src/m$i" >/dev/null || break; done
salt() { od -An -tx1 -j16 -N8 "$DB-wal" | tr -d ' \n'; }
SALT=$(salt)
run_ok "checkpoint and truncate the log" sqlite3 "$DB" "pragma wal_checkpoint(truncate)"
for i in $(seq 11 20); do "$NIB" --store local add "$TEST_ROOT/src/m$i" >/dev/null || break; done
ok_if() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }
ok_if "a new log was begun" '[ "$(salt)" != "$SALT" ]'
is "20 more paths added locally" "$(count_valid local)" 25
is "the daemon sees all of them" "$(count_valid daemon)" 25
is "and again (another connection process)" "$(count_valid daemon)" 25

printf 'through the daemon\n' >"$TEST_ROOT/src/d"
run_ok "add through the daemon" "$NIB" --store daemon add "$TEST_ROOT/src/d"
PD=$OUT
run_ok "seen locally" "$NIB" --store local path-info "$PD"
is "valid paths agree" "$(count_valid daemon)" "$(count_valid local)"
run_ok "the store verifies clean" "$NIB" --store local store verify

# A newer nib migrated the database: connections served by processes
# made after that refuse, as a fresh open of the store does.
sqlite3 "$DB" "update NibMeta set value = '99' where key = 'nib-schema'"
fails=0 last=0
for i in 1 2 3 4; do
	if "$NIB" --store daemon path-info "$PD" >/dev/null 2>"$TEST_ROOT/newer.err"; then
		last=0
	else
		fails=$((fails + 1)) last=1
	fi
done
ok_if "a database of a newer nib is refused (at the latest by the third process)" \
	'[ "$fails" -ge 2 ] && [ "$last" = 1 ]'
like "with the reason" "$(cat "$TEST_ROOT/newer.err")" "written by a newer nib"
sqlite3 "$DB" "update NibMeta set value = '2' where key = 'nib-schema'"
run_ok "served again once it is back" "$NIB" --store daemon path-info "$PD"
run_ok "and by the next process" "$NIB" --store daemon path-info "$PD"

# Group membership is looked up for each connection.
run_fails "a user outside the allowed group is refused" 1 as "$U" "$NIB" path-info "$PD"
like "refusal names the user" "$ERR" "not allowed to connect"
gpasswd -a "$U" "$G" >/dev/null
run_ok "once added to the group, let in" as "$U" "$NIB" path-info "$PD"
is "with the answer" "$OUT" "$PD"
gpasswd -d "$U" "$G" >/dev/null
run_fails "once removed from it, refused again" 1 as "$U" "$NIB" path-info "$PD"
stop_daemon
ok "daemon stopped"

done_testing

#!/usr/bin/env bash
# nib slots: listing an idle pool, usage errors, and the pool's validation at open.
. "$(dirname "$0")/lib.sh"

plan 22

me=$(id -un)
cat >"$NIB_CONF_DIR/nib.conf" <<CONF
ids-per-build = 65536
start-id = 3999989760
id-count = 524288
trusted-users = root $me
CONF
chmod 644 "$NIB_CONF_DIR/nib.conf"

run_ok "nib slots on a fresh pool" "$NIB" slots
like "nothing in use" "$OUT" "^No slot is in use or held\.$"
like "summary" "$OUT" "^8 slots of 65536 IDs: 0 busy, 0 held, 8 free$"
run_ok "nib slots --json" "$NIB" slots --json
is "json summary" "$OUT" '{"mode":"auto","total":8,"busy":0,"held":0,"stale":0,"free":8,"slots":[],"conflicts":[]}'
run_ok "nib slots --help" "$NIB" slots --help
like "help names the states" "$OUT" "held \(its cleanup failed"
like "userpool is private" "$(stat -c %a "$NIB_STATE_DIR/userpool")" "^700$"

run_fails "release needs a slot number" 2 "$NIB" slots release
run_fails "release rejects a bad number" 2 "$NIB" slots release x7
run_fails "unknown word after slots" 2 "$NIB" slots bogus
run_fails "release of a slot that is not held" 1 "$NIB" slots release 3
like "says it is not held" "$ERR" "slot 3 is not held"
run_fails "release of a slot that does not exist" 1 "$NIB" slots release 8
like "names the pool size" "$ERR" "no slot 8 \(the pool has 8\)"
run_ok "reclaim of a clean pool" "$NIB" slots reclaim
like "reclaim summary" "$OUT" "^reclaim: 0 cleaned, 0 held, 0 busy"

run_fails "classic mode without a group" 1 "$NIB" --option auto-allocate-uids false slots
like "names the setting" "$ERR" "setting 'build-users-group' is empty, but 'auto-allocate-uids' is false"
run_fails "classic mode with a missing group" 1 \
	"$NIB" --option auto-allocate-uids false --option build-users-group nib-no-such-group slots
like "names the group" "$ERR" "group 'nib-no-such-group' \(setting 'build-users-group'\) does not exist"

# A pool that covers an existing account is refused when it is opened.
acct=$(getent passwd | awk -F: '$3 > 0 && $3 < 4294967294 { print $1 ":" $3; exit }')
if [ -n "$acct" ]; then
	name=${acct%%:*} uid=${acct##*:}
	"$NIB" --option ids-per-build 1 --option start-id "$uid" --option id-count 1 slots \
		>"$TEST_ROOT/.out" 2>"$TEST_ROOT/.err"
	like "pool over account '$name' refused" "$(cat "$TEST_ROOT/.err")" \
		"UID/GID pool $uid-$uid \(settings 'start-id' = $uid, 'id-count' = 1\) contains UID $uid of user '$name' \(system passwd database\)"
else
	ok "# SKIP no account with a non-zero UID"
fi

done_testing

#!/usr/bin/env bash
# Store errors: damaged database, newer schema, read-only store, full disk.
. "$(dirname "$0")/lib.sh"

plan 23

mkdir -p "$TEST_ROOT/src"
echo hello >"$TEST_ROOT/src/hello"
run_ok "add" "$NIB" add "$TEST_ROOT/src/hello"
P=$OUT

# A schema version from the future.
echo 11 >"$NIB_STATE_DIR/db/schema"
run_fails "a newer schema is refused" 1 "$NIB" path-info "$P"
like "error says so" "$ERR" "schema version 11, newer than version 10"
echo 10 >"$NIB_STATE_DIR/db/schema"
run_ok "back to 10" "$NIB" path-info "$P"

# A damaged database file.  The database is db.sqlite with its WAL (the
# latest transactions may not have been checkpointed into db.sqlite yet).
cp "$NIB_STATE_DIR/db/db.sqlite" "$TEST_ROOT/db.good"
cp "$NIB_STATE_DIR/db/db.sqlite-wal" "$TEST_ROOT/db.good-wal"
rm -f "$NIB_STATE_DIR/db/db.sqlite-wal" "$NIB_STATE_DIR/db/db.sqlite-shm"
head -c 8192 /dev/urandom >"$NIB_STATE_DIR/db/db.sqlite"
run_fails "a damaged database is an error" 1 "$NIB" path-info "$P"
like "error names the file" "$ERR" "database '$NIB_STATE_DIR/db/db.sqlite' is damaged"
cp "$TEST_ROOT/db.good" "$NIB_STATE_DIR/db/db.sqlite"
cp "$TEST_ROOT/db.good-wal" "$NIB_STATE_DIR/db/db.sqlite-wal"
run_ok "restored" "$NIB" path-info "$P"

# Another user may look but not write.
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	for i in 1 2 3 4; do ok "# SKIP another user: needs root and setpriv"; done
else
	chmod 755 "$TEST_ROOT"
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	run_ok "another user can query" as_nobody "$NIB" path-info "$P"
	run_ok "and verify" as_nobody "$NIB" store verify --check-contents
	run_fails "but not add" 1 as_nobody "$NIB" add "$TEST_ROOT/src/hello"
	like "permission denied" "$ERR" "Permission denied"
fi

if [ "$(id -u)" != 0 ] || ! mount --bind "$NIB_STORE_DIR" "$NIB_STORE_DIR" 2>/dev/null; then
	for i in 1 2 3 4 5 6; do ok "# SKIP read-only store: needs root and mount"; done
else
	at_exit "umount '$NIB_STORE_DIR' 2>/dev/null"
	mount -o remount,ro,bind "$NIB_STORE_DIR"
	echo other >"$TEST_ROOT/src/other"
	run_fails "adding to a read-only store fails" 1 "$NIB" add "$TEST_ROOT/src/other"
	like "error says why" "$ERR" "Read-only file system"
	run_ok "queries still work" "$NIB" path-info "$P"
	run_ok "the store still verifies" "$NIB" store verify
	is "the failed add left nothing behind" "$(ls -A "$NIB_STORE_DIR" | grep -vc '^\.nib-path-locks$')" "1"
	umount "$NIB_STORE_DIR"
	ok "unmounted"
fi

if [ "$(id -u)" != 0 ] || ! mkdir -p "$TEST_ROOT/small" ||
	! mount -t tmpfs -o size=512k tmpfs "$TEST_ROOT/small" 2>/dev/null; then
	for i in 1 2 3 4 5 6; do ok "# SKIP full disk: needs root and tmpfs"; done
else
	at_exit "umount '$TEST_ROOT/small' 2>/dev/null"
	export NIB_STORE_DIR="$TEST_ROOT/small/store" NIB_STATE_DIR="$TEST_ROOT/small/state"
	head -c $((1024 * 1024)) /dev/urandom >"$TEST_ROOT/src/big"
	echo small >"$TEST_ROOT/src/small"
	run_ok "a small add fits" "$NIB" add "$TEST_ROOT/src/small"
	run_fails "a large add fails" 1 "$NIB" add "$TEST_ROOT/src/big"
	like "no space" "$ERR" "No space left on device"
	is "nothing left behind" "$(find "$NIB_STORE_DIR" -mindepth 1 -maxdepth 1 ! -name .nib-path-locks | wc -l)" "1"
	run_ok "store verifies" "$NIB" store verify --check-contents
	run_ok "adds work again" "$NIB" add "$TEST_ROOT/src/hello"
fi

done_testing

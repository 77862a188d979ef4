#!/usr/bin/env bash
# nib nar dump/restore/hash and nib hash file/path against the Nix 2.8 vectors.
. "$(dirname "$0")/lib.sh"

data=${NIB_TEST_DATA:-$(cd "$(dirname "$0")/../data" && pwd)}/nar
trees=$TEST_ROOT/trees
mkdir -p "$trees"
sh "$data/make-trees.sh" "$trees" || skip_all "cannot build the test trees"

plan $((5 * $(wc -l <"$data/hashes") + 36))

# Dump and hash every vector.
while read -r name nixhash hex size; do
	if "$NIB" nar dump "$trees/$name" >"$TEST_ROOT/$name.nar" &&
		cmp -s "$TEST_ROOT/$name.nar" "$data/$name.nar"; then
		ok "nar dump $name matches Nix"
	else
		not_ok "nar dump $name matches Nix"
	fi
	run_ok "nar hash $name" "$NIB" nar hash "$trees/$name"
	is "nar hash $name is nix-store -q --hash's" "$OUT" "$nixhash"
	run_ok "hash path --base16 $name" "$NIB" hash path --base16 "$trees/$name"
	is "hash path --base16 $name" "$OUT" "$hex"
done <"$data/hashes"

run_ok "hash path default is SRI sha256" "$NIB" hash path "$trees/regular"
is "SRI form (as nix hash path)" "$OUT" "sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM="
run_ok "hash path --base32" "$NIB" hash path --base32 "$trees/tree"
is "base32 form" "$OUT" "$(awk '$1 == "tree" { sub("sha256:", "", $2); print $2 }' "$data/hashes")"
run_ok "hash file --type md5 --base16" "$NIB" hash file --type md5 --base16 "$trees/big"
is "md5 as md5sum" "$OUT" "$(md5sum <"$trees/big" | cut -d' ' -f1)"
run_ok "hash file --type sha512 --base16 (two files)" "$NIB" hash file --type sha512 --base16 \
	"$trees/all-bytes" "$trees/regular"
is "sha512 as sha512sum" "$OUT" "$(sha512sum "$trees/all-bytes" "$trees/regular" | cut -d' ' -f1)"
run_ok "hash file --json" "$NIB" hash file --json --type sha1 --sri "$trees/regular"
like "json hash" "$OUT" '^\[\{"path":"[^"]*/regular","hash":"sha1-[A-Za-z0-9+/]+=*"\}\]$'
run_ok "nar hash --json" "$NIB" --json nar hash "$trees/empty-dir"
like "json narHash and narSize" "$OUT" '"narHash":"sha256:0sjjj9z1dhilhpc8pq4154czrb79z9cm044jvn75kxcjv6v5l2m5","narSize":96'

# Restore.
run_ok "nar restore tree" sh -c '"$1" nar restore "$2" <"$3"' - "$NIB" "$TEST_ROOT/r" "$data/tree.nar"
"$NIB" nar dump "$TEST_ROOT/r" | cmp -s - "$data/tree.nar" && ok "restored tree dumps back identically" ||
	not_ok "restored tree dumps back identically"
[ -x "$TEST_ROOT/r/user-exec" ] && [ ! -x "$TEST_ROOT/r/group-exec-only" ] &&
	[ -L "$TEST_ROOT/r/dangling" ] && ok "modes and symlinks restored" || not_ok "modes and symlinks restored"
run_fails "restore onto an existing path fails" 1 sh -c '"$1" nar restore "$2" <"$3"' - "$NIB" "$TEST_ROOT/r" "$data/tree.nar"
like "existing path error" "$ERR" "^nib: error: restoring '.*/r': cannot create directory 'r': File exists"

head -c 2000 "$data/tree.nar" >"$TEST_ROOT/trunc.nar"
run_fails "truncated archive fails" 1 sh -c '"$1" nar restore "$2" <"$3"' - "$NIB" "$TEST_ROOT/t" "$TEST_ROOT/trunc.nar"
like "truncated error" "$ERR" "unexpected end of archive"
[ ! -e "$TEST_ROOT/t" ] && ok "nothing left after a failed restore" || not_ok "nothing left after a failed restore"
{ cat "$data/regular.nar"; printf x; } >"$TEST_ROOT/trail.nar"
run_fails "trailing data fails" 1 sh -c '"$1" nar restore "$2" <"$3"' - "$NIB" "$TEST_ROOT/t" "$TEST_ROOT/trail.nar"
like "trailing data error" "$ERR" "trailing data after the end of the archive"
run_fails "not a NAR" 1 sh -c 'echo hello | "$1" nar restore "$2"' - "$NIB" "$TEST_ROOT/t"
like "not a NAR error" "$ERR" "not a NAR"
run_fails "--max-size enforced" 1 sh -c '"$1" nar restore --max-size 1K "$2" <"$3"' - "$NIB" "$TEST_ROOT/t" "$data/tree.nar"
like "limit error" "$ERR" "larger than the limit of 1024 bytes"
[ ! -e "$TEST_ROOT/t" ] && ok "nothing left after the limit" || not_ok "nothing left after the limit"

# Errors and usage.
run_fails "dump of a missing path" 1 "$NIB" nar dump "$TEST_ROOT/missing"
like "missing path error" "$ERR" "^nib: error: cannot stat '.*/missing': No such file or directory$"
mkfifo "$TEST_ROOT/fifo"
run_fails "hash of a fifo" 1 "$NIB" nar hash "$TEST_ROOT/fifo"
like "fifo error" "$ERR" "is a fifo, which a NAR cannot hold"
run_fails "nar dump without PATH" 2 "$NIB" nar dump
run_fails "two encodings" 2 "$NIB" hash file --base16 --base32 "$trees/regular"
run_fails "unknown algorithm" 2 "$NIB" hash path --type sha3 "$trees/regular"
run_ok "nar restore --help" "$NIB" nar restore --help
like "restore help" "$OUT" "Usage: nib nar restore \[--max-size SIZE\] DIR"

done_testing

#!/bin/sh
# make-trees.sh DIR - build the NAR test trees under DIR (which must exist).
#
# The committed vectors (*.nar, hashes) were made from these trees with
# Nix 2.8: `nix-store --dump DIR/NAME > NAME.nar` and
# `nix-hash --type sha256 --base32 DIR/NAME` (see regen.sh).  Git cannot keep
# empty directories, modes or odd names, so the tests rebuild the trees with
# this script and compare their own dump with the committed archives.
# Deterministic: no timestamps, no randomness.  POSIX sh + coreutils only.
set -eu
umask 022
d=$1
cd "$d"

# Single nodes at the top.
: >empty-file
printf 'hello\n' >regular
printf '#!/bin/sh\necho hi\n' >executable
chmod 0755 executable
ln -s /some/absolute/target symlink
mkdir empty-dir

# Every byte value, in a file whose length needs no padding.
i=0
while [ $i -lt 256 ]; do
	printf "\\$(printf %o $i)"
	i=$((i + 1))
done >all-bytes

# A file crossing the 64/128/256 KiB buffer sizes, with a length needing padding.
seq 1 200000 | head -c 786439 >big

# A tree mixing everything: sort order, padding lengths, modes, odd names.
mkdir tree
cd tree
for n in 1 2 3 4 5 6 7 8 9 15 16 17; do
	head -c $n /dev/zero | tr '\0' 'x' >"len-$n"
done
printf 'exec\n' >user-exec
chmod 0700 user-exec
printf 'not exec for nar\n' >group-exec-only
chmod 0654 group-exec-only
# Bytewise order: 'B' < 'Z' < 'a' < 'a-b' < 'a.b' < 'aa' < '\303\251' < '\377'.
for n in a aa a.b a-b B Z; do printf '%s\n' "$n" >"$n"; done
printf 'e acute\n' >"$(printf '\303\251')"
printf 'japanese\n' >"$(printf '\346\227\245\346\234\254')"
printf 'high byte\n' >"$(printf '\377')"
long=$(printf 'n%.0s' $(seq 1 255))
printf 'long name\n' >"$long"
mkdir -p sub/deeper/deepest empty
printf 'deep\n' >sub/deeper/deepest/file
ln -s ../../len-1 sub/deeper/up
ln -s dangling-target dangling
ln -s "$(printf 't%.0s' $(seq 1 1000))" long-target
ln -s . dot-link
mkdir 'with space'
printf 'space\n' >'with space/f'
chmod 0555 sub/deeper

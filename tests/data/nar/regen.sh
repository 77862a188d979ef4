#!/bin/sh
# regen.sh - remake the committed NAR vectors with Nix (maintainers only;
# the test suite never needs Nix).  Run from anywhere; needs nix-store and
# nix-hash (Debian: apt-get install nix-bin).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
"$here/make-trees.sh" "$tmp"
: >"$here/hashes"
for name in $(cd "$tmp" && ls); do
	nix-store --dump "$tmp/$name" >"$here/$name.nar"
	h=$(nix-hash --type sha256 --base32 "$tmp/$name")
	s=$(sha256sum <"$here/$name.nar" | cut -d' ' -f1)
	n=$(wc -c <"$here/$name.nar")
	echo "$name sha256:$h $s $n" >>"$here/hashes"
done

#!/usr/bin/env bash
# Regenerate the structured-attributes vectors with Nix 2.8 (Debian's
# nix-bin), as root: the derivations of attrs.nix are instantiated and built
# by Nix in a scratch chroot store whose logical store dir is /nib/store,
# and what the builds produced is kept.  The test suite only reads the
# committed results (tests/integration/t0410-build-attrs.sh).
#
#   drv/<base>.drv          every derivation in the closures (ATerm)
#   top.txt                 "<attribute> <drv path>" per attribute of attrs.nix
#   sources.txt             "<path>" of each input source (copy-attrs.sh, hello.txt)
#   expected/<attribute>/   the files of Nix's output "out" (a file output
#                           as "out"; built with NIB_TEST_IMPURE=yes), or
#                           "error" with Nix's message when the build fails
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch"; rm -rf "$scratch"' EXIT
mkdir -p "$scratch/conf" "$scratch/home"
cat >"$scratch/conf/nix.conf" <<CONF
build-users-group =
sandbox = true
sandbox-paths = /bin/sh=/bin/busybox
substituters =
CONF
export NIX_CONF_DIR=$scratch/conf NIX_USER_CONF_FILES=$scratch/conf/nix.conf HOME=$scratch/home
store="local?root=$scratch/r&store=/nib/store"
# Nix 2.8 keeps the files of a store with another store dir in <root>/nix/store.
real() { echo "$scratch/r/nix/store/$(basename "$1")"; }

rm -rf "$here/drv" "$here/expected"
mkdir -p "$here/drv" "$here/expected"
: >"$here/top.txt"
: >"$here/sources.txt"
for a in $(nix-instantiate --eval --json -E "builtins.attrNames (import $here/attrs.nix)" |
	tr -d '[]"' | tr ',' ' '); do
	top=$(nix-instantiate --store "$store" "$here/attrs.nix" -A "$a" 2>/dev/null)
	echo "$a $top" >>"$here/top.txt"
	for p in $(nix-store --store "$store" -qR "$top"); do
		case $p in
		*.drv) cp "$(real "$p")" "$here/drv/" ;;
		*) grep -qx "$p" "$here/sources.txt" || echo "$p" >>"$here/sources.txt" ;;
		esac
	done
	mkdir "$here/expected/$a"
	if out=$(NIB_TEST_IMPURE=yes nix-store --store "$store" -r "$top" 2>"$scratch/err" |
		grep -v -- '-dev$'); then
		if [ -d "$(real "$out")" ]; then
			cp -r "$(real "$out")/." "$here/expected/$a/"
		else
			cp "$(real "$out")" "$here/expected/$a/out"
		fi
	else
		sed -n '/^error:/,$p' "$scratch/err" | grep -v '^warning:' >"$here/expected/$a/error"
	fi
done
chmod -R u+w,a+r "$here/drv" "$here/expected"

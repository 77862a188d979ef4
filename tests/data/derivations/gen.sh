#!/usr/bin/env bash
# Regenerate the derivation test vectors with Nix 2.8 (Debian's nix-bin).
# Needs root (chroot stores); touches nothing outside a scratch directory:
# the stores live under $scratch, the logical store dirs are /nix/store and
# /nib/store.  The test suite only reads the committed results.
#
#   <set>/drv/<base>.drv    every derivation in the closures (ATerm)
#   <set>/json/<base>.json  `nix show-derivation <drv>` for each of them
#   <set>/expected.txt      "<drv path> <output>=<path>..." per derivation
#   <set>/top.txt           "<expression> <drv path>" per expression
#   <set>/sources.txt       "<path> <nar hash> <references...>" per input source
#   <set>/text/<base>       contents of the builtins.toFile sources
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch"; rm -rf "$scratch"' EXIT
mkdir -p "$scratch/conf" "$scratch/home"
: >"$scratch/conf/nix.conf"
export NIX_CONF_DIR=$scratch/conf NIX_USER_CONF_FILES=$scratch/conf/nix.conf HOME=$scratch/home
xp=(--extra-experimental-features 'nix-command ca-derivations impure-derivations')

gen() {
	local set=$1 store=$2 out=$here/$1
	rm -rf "$out"
	mkdir -p "$out/drv" "$out/json" "$out/text"
	: >"$out/sources.txt"
	: >"$out/top.txt"
	declare -A seen=()
	for f in "$here"/nix/*.nix; do
		local e top
		e=$(basename "$f" .nix)
		top=$(cd "$here/nix" && nix-instantiate "${xp[@]}" --store "$store" "$f" 2>/dev/null)
		echo "$e $top" >>"$out/top.txt"
		for d in $(nix-store "${xp[@]}" --store "$store" -qR "$top" | grep '\.drv$'); do
			[ -n "${seen[$d]:-}" ] && continue
			seen[$d]=1
			local b
			b=$(basename "$d")
			nix "${xp[@]}" --store "$store" show-derivation "$d" >"$out/json/${b%.drv}.json"
			# the chroot holds the file at <root><store dir>/<base>
			cp "$(real "$store" "$d")" "$out/drv/$b"
			chmod 644 "$out/drv/$b"
		done
		for s in $(nix-store "${xp[@]}" --store "$store" -qR "$top" | grep -v '\.drv$'); do
			[ -n "${seen[$s]:-}" ] && continue
			seen[$s]=1
			echo "$s $(nix-store --store "$store" -q --hash "$s")" \
				"$(nix-store --store "$store" -q --references "$s" | tr '\n' ' ')" \
				| sed 's/ *$//' >>"$out/sources.txt"
			case $s in
			*.sh) cp "$(real "$store" "$s")" "$out/text/$(basename "$s")"
			      chmod 644 "$out/text/$(basename "$s")" ;;
			esac
		done
	done
	for d in $(ls "$out/drv" | sort); do
		local line="$d"
		line=$(python3 - "$out/json/${d%.drv}.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
(p, drv), = j.items()
print(p + "".join(" %s=%s" % (o, v.get("path", "")) for o, v in sorted(drv["outputs"].items())))
PY
)
		echo "$line" >>"$out/expected.txt"
	done
}

real() {
	case $1 in
	# Nix 2.8 keeps the files of a store with another store dir in <root>/nix/store.
	local\?*) local root=${1#*root=}; root=${root%%&*}; echo "$root/nix/store/$(basename "$2")" ;;
	*) echo "$1$2" ;;
	esac
}

gen nix-store "$scratch/r1"
gen nib-store "local?root=$scratch/r2&store=/nib/store"

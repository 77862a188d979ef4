#!/usr/bin/env bash
# Interoperability of the nib store with Nix 2.8 (Debian's nix-bin).  Not part
# of `make check`: nib never needs Nix.  See docs/interop-store.md.
#
#   NIB=_build/nib tests/interop/store-nix.sh
#
# Builds a nib store whose logical directory is /nix/store under a temporary
# store root, with source paths, a derivation (nib derivation add) and its
# output with references (including itself) and the deriver; then checks that
#   - nix-store --verify --check-contents accepts it,
#   - nix-store -q --references/--referrers/--deriver agree with nib path-info,
#   - nix path-info --json agrees on NAR hash, size, references and CA,
#   - Nix's and nib's collectors agree on what is dead,
#   - the store still verifies with nib after Nix has used it.
set -eu

NIB=${NIB:-_build/nib}
command -v nix-store >/dev/null || { echo "nix-store not installed (apt-get install nix-bin)"; exit 77; }

root=$(mktemp -d "${TMPDIR:-/tmp}/nib-interop-XXXXXX")
trap 'chmod -R u+w "$root" 2>/dev/null; rm -rf "$root"' EXIT
export NIB_STORE_DIR=/nix/store NIB_STORE_ROOT="$root" NIB_STATE_DIR="$root/nix/var/nix" \
	NIB_CONF_DIR="$root/etc"
mkdir -p "$root/src/tree/sub" "$NIB_CONF_DIR"
echo "a file" >"$root/src/file"
echo "nested" >"$root/src/tree/sub/n"
printf '#!/bin/sh\necho hi\n' >"$root/src/tree/run"
chmod +x "$root/src/tree/run"
ln -s sub/n "$root/src/tree/link"
echo "nobody keeps me" >"$root/src/garbage"

S1=$("$NIB" add "$root/src/tree")
S2=$("$NIB" add "$root/src/file")
G=$("$NIB" add "$root/src/garbage")
# A derivation (output path computed by nib) and its output, registered by
# hand as a build would: references to two sources and to itself.
D=$(printf '{"name":"demo","system":"x86_64-linux","builder":"/bin/sh","args":[],
  "env":{"builder":"/bin/sh","name":"demo","system":"x86_64-linux"},
  "inputDrvs":{},"inputSrcs":["%s"],"outputs":{"out":{}}}' "$S1" | "$NIB" derivation add)
O=$("$NIB" derivation show "$D" | jq -r '.[].outputs.out.path')
store="$root/nix/store"
mkdir "$store/${O#/nix/store/}"
printf '%s\n%s\n%s\n' "$S1" "$S2" "$O" >"$store/${O#/nix/store/}/refs"
printf '%s\n%s\n3\n%s\n%s\n%s\n\n' "$O" "$D" "$S1" "$S2" "$O" | "$NIB" store register
ln -s "$O" "$NIB_STATE_DIR/gcroots/demo"

fail=0
check() { # check WHAT GOT WANT
	if [ "$2" = "$3" ]; then echo "ok: $1"; else
		echo "FAIL: $1"; echo "  nix: $3" | head -5; echo "  nib: $2" | head -5; fail=1; fi
}

out=$(nix-store --store "$root" --verify --check-contents 2>&1) && rc=0 || rc=$?
check "nix-store --verify --check-contents exits 0" "$rc" 0
check "nix-store --verify reports no problem" \
	"$(grep -Eiv '^(reading the Nix store|checking )' <<<"$out" || true)" ""

for p in "$S1" "$S2" "$G" "$D" "$O"; do
	for q in references referrers deriver; do
		check "$q of ${p##*-}" "$("$NIB" path-info --"$q" "$p")" \
			"$(nix-store --store "$root" -q --"$q" "$p" | sort)"
	done
	# A .drv installable would mean its outputs without --derivation.
	drvflag=()
	case $p in *.drv) drvflag=(--derivation) ;; esac
	nixj=$(nix --extra-experimental-features nix-command path-info --store "$root" --json \
		"${drvflag[@]}" "$p")
	nibj=$("$NIB" path-info --json "$p")
	for field in narHash narSize references ca deriver; do
		check "path-info --json $field of ${p##*-}" \
			"$(jq -c ".[0].$field" <<<"$nibj")" "$(jq -c ".[0].$field" <<<"$nixj")"
	done
done

check "outputs of the derivation (nix-store -q --outputs)" "$O" \
	"$(nix-store --store "$root" -q --outputs "$D")"
check "dead paths (Nix's collector vs nib gc --dry-run)" \
	"$("$NIB" gc --dry-run 2>/dev/null | sort)" \
	"$(nix-store --store "$root" --gc --print-dead 2>/dev/null | sort)"
"$NIB" store verify --check-contents
check "nib still verifies the store after Nix used it" "$?" 0
exit $fail

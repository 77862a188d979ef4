#!/usr/bin/env bash
# Store benchmark: registering 100,000 small paths with references, querying
# their path info, and the closure of a 10,000-path chain (bench/store-bench.c).
# When Nix's nix-store is installed, it does the same registrations and a
# batch of queries in the same run, as the reference.
#
#   bench/store.sh [BUILD_DIR]      (default: _build; N=... to change the size)
set -eu

build=${1:-_build}
bin="$build/bench/store-bench"
N=${N:-100000}
[ -x "$bin" ] || { echo "store.sh: build first: $bin is missing" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nib-bench-XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

echo "== nib (store-bench, one core)"
"$bin" -n "$N" --nix-input "$tmp/nix-input" "$tmp/nib"

if ! command -v nix-store >/dev/null; then
	echo "== Nix: nix-store not installed, no reference figures"
	exit 0
fi
echo "== Nix $(nix-store --version | awk '{print $3}') on the same work (reference)"
# Nix 2.8 cannot register validity in a store under a root (it canonicalises
# the logical path), so it gets a store directory of its own under $tmp.
ns="$tmp/nixs/store"
export NIX_STORE_DIR="$ns" NIX_STATE_DIR="$tmp/nixs/var" NIX_LOG_DIR="$tmp/nixs/log" \
	NIX_CONF_DIR="$tmp/nixs/etc"
mkdir -p "$ns" "$NIX_CONF_DIR"
# The same (empty) files; Nix canonicalises them while registering.
find "$tmp/nib/nix/store" -maxdepth 1 -name '*-p*' -printf '%f\n' | (cd "$ns" && xargs touch)
sed "s|^/nix/store/|$ns/|" "$tmp/nix-input" >"$tmp/nix-input2"
start=$(date +%s.%N)
nix-store --register-validity --hash-given <"$tmp/nix-input2"
end=$(date +%s.%N)
awk -v n="$N" -v s="$start" -v e="$end" \
	'BEGIN { printf "register %d paths (one transaction): %.2f s, %.0f paths/s\n", n, e - s, n / (e - s) }'
Q=$((N < 20000 ? N : 20000))
ls "$ns" | grep -- '-p[0-9]*$' | head -n "$Q" | sed "s|^|$ns/|" >"$tmp/q"
start=$(date +%s.%N)
nix-store -q --references $(cat "$tmp/q") >/dev/null
end=$(date +%s.%N)
awk -v n="$Q" -v s="$start" -v e="$end" \
	'BEGIN { printf "references of %d paths (one process): %.2f s, %.0f queries/s\n", n, e - s, n / (e - s) }'

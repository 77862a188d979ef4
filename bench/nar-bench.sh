#!/usr/bin/env bash
# nar-bench.sh - NAR hashing throughput: `nib nar hash` over a tree of mixed
# file sizes against `openssl dgst -sha256` (and sha256sum) over the same
# file contents concatenated into one file.  Goal: nib/openssl >= 0.9.
#
# Usage: bench/nar-bench.sh [NIB] [SIZE_MIB]   (defaults: ./nib, 1024)
# Builds the tree and the concatenation in a temporary directory (twice
# SIZE_MIB of disk) and removes them afterwards.  Every command runs once to
# warm the page cache, then 5 times; the best wall-clock time and the best
# CPU time (user + sys) are reported.  On a shared machine the wall-clock
# figures are noisy: the load average is printed with them.
set -euo pipefail

nib=${1:-./nib}
size_mib=${2:-1024}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nib-nar-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree
mkdir -p "$tree"

# File sizes and counts for SIZE_MIB=1024 (scaled for other sizes): a few
# big files, many small ones, small files spread over directories of at most
# 256 entries so that directory reading is measured too.  ~30k files.
classes="134217728:3 4194304:96 131072:1024 16384:4096 2048:16384 100:8192"
echo "building a ${size_mib} MiB tree in $tmp ..."
for c in $classes; do
	bytes=${c%%:*}
	count=$((${c##*:} * size_mib / 1024))
	[ "$count" -gt 0 ] || continue
	i=0
	while [ "$i" -lt "$count" ]; do
		n=$((count - i < 256 ? count - i : 256))
		d=$tree/s$bytes/d$((i / 256))
		mkdir -p "$d"
		# Random contents: hashing cannot be shortcut.
		head -c $((n * bytes)) /dev/urandom | (cd "$d" && split -b "$bytes" -a 3 - f)
		i=$((i + n))
	done
done
chmod -R a-w "$tree"
nfiles=$(find "$tree" -type f | wc -l)
# The same bytes in one file, in NAR order (sorted names).
(cd "$tree" && LC_ALL=C find . -type f | LC_ALL=C sort | xargs cat) >"$tmp/concat"
bytes=$(stat -c %s "$tmp/concat")
echo "tree: $nfiles files, $bytes bytes of contents"

# best CMD...: run once to warm the cache, then 5 times; print the best wall
# time and the best CPU time (user + sys), in seconds.
best() {
	local out bw="" bc="" w c
	"$@" >/dev/null
	for _ in 1 2 3 4 5; do
		out=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null; } 2>&1)
		w=$(awk '{ print $1 }' <<<"$out")
		c=$(awk '{ print $2 + $3 }' <<<"$out")
		if [ -z "$bw" ] || awk -v a="$w" -v b="$bw" 'BEGIN { exit !(a < b) }'; then bw=$w; fi
		if [ -z "$bc" ] || awk -v a="$c" -v b="$bc" 'BEGIN { exit !(a < b) }'; then bc=$c; fi
	done
	echo "$bw $bc"
}

read -r w_nib c_nib < <(best "$nib" nar hash "$tree")
read -r w_ossl c_ossl < <(best openssl dgst -sha256 "$tmp/concat")
read -r w_sum c_sum < <(best sha256sum "$tmp/concat")

row() {
	awk -v name="$1" -v w="$2" -v c="$3" -v b="$bytes" \
		'BEGIN { printf "%-32s %7.3f %8.0f %7.3f %8.0f\n", name, w, b / w / 1e6, c, b / c / 1e6 }'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
printf '%-32s %7s %8s %7s %8s\n' "command" "wall s" "MB/s" "cpu s" "MB/s/cpu"
row "nib nar hash (tree)" "$w_nib" "$c_nib"
row "openssl dgst -sha256 (concat)" "$w_ossl" "$c_ossl"
row "sha256sum (concat)" "$w_sum" "$c_sum"
awk -v a="$w_nib" -v b="$w_ossl" -v ca="$c_nib" -v cb="$c_ossl" 'BEGIN {
	r = b / a
	printf "ratio nib/openssl, wall-clock throughput: %.2f (goal >= 0.90) %s\n", r, (r >= 0.9) ? "OK" : "BELOW GOAL"
	printf "ratio nib/openssl, per CPU second:        %.2f\n", cb / ca
}'

#!/usr/bin/env bash
# Replay every fuzz corpus through its target (TAP).  A crash, an ASan report
# or a non-zero exit fails that target.
srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${abs_top_builddir:-$srcdir}
corpora=("$srcdir"/tests/fuzz/corpus/*/)
if [ ! -d "${corpora[0]}" ]; then
	echo "1..0 # SKIP no fuzz corpora yet"
	exit 0
fi
echo "1..${#corpora[@]}"
n=0 failed=0
for dir in "${corpora[@]}"; do
	name=$(basename "$dir")
	n=$((n + 1))
	bin="$builddir/tests/fuzz/fuzz-$name"
	if [ ! -x "$bin" ]; then
		echo "not ok $n - fuzz-$name: binary missing"
		failed=1
		continue
	fi
	if out=$("$bin" "$dir" 2>&1); then
		echo "ok $n - fuzz-$name: $(tail -n1 <<<"$out")"
	else
		echo "not ok $n - fuzz-$name"
		sed 's/^/# /' <<<"$out" | tail -n 30
		failed=1
	fi
done
exit $failed

#!/usr/bin/env bash
# Daemon benchmark (run as root): in a temporary root with a nib-daemon,
#  1. trivial-build latency: N distinct one-line derivations built one at a
#     time with `nib build`, through the daemon and locally (the reference),
#     alternately, so that both see the same moments of a noisy machine:
#     the medians, and the median of the pairs' differences;
#  2. throughput: 200 trivial derivations in one `nib build`, both ways;
#  3. connections per second of a query-only client (bench/daemon-bench;
#     three rounds: the median one in full and all three rates),
#     and the same against Nix 2.8's nix-daemon in the same run when
#     Debian's nix-bin is installed (a scratch store; nothing else touched).
#
#   bench/daemon.sh [BUILD_DIR]     (default: _build; N=... builds for 1.)
set -eu

build=$(cd "${1:-_build}" && pwd)
N=${N:-31}
NIB="$build/nib"
[ -x "$build/bench/daemon-bench" ] && [ -x "$build/bench/timed" ] || { echo "daemon.sh: build first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "daemon.sh: needs root (builds)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nib-bench-XXXXXX")
export NIB_CONF_DIR="$tmp/etc" NIB_STORE_DIR=/nib/store NIB_STORE_ROOT="$tmp/root" \
	NIB_STATE_DIR="$tmp/state" NIB_LOG_DIR="$tmp/log" NIB_DAEMON_SOCKET="$tmp/socket" \
	NIB_NO_PROGRESS=1
mkdir -p "$NIB_CONF_DIR"
# 16 slots at random above 2^31, outside the default range (see bench/build.sh).
cat >"$NIB_CONF_DIR/nib.conf" <<CONF
start-id = $((2147483648 + (2800 + (RANDOM % 250) * 16) * 262144))
id-count = $((16 * 262144))
sandbox-paths = /bin/sh=/bin/busybox
fsync-metadata = false
max-jobs = 2
CONF
"$build/nib-daemon" --ready-fd 3 3>"$tmp/ready" 2>"$tmp/daemon.log" &
dpid=$!
trap 'kill $dpid 2>/dev/null; wait $dpid 2>/dev/null; chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
for i in $(seq 1 100); do grep -q READY "$tmp/ready" 2>/dev/null && break; sleep 0.05; done
system=$("$NIB" show-config system)

mkdrv() { # FILE NAME
	printf '{"name":"%s","system":"%s","builder":"/bin/sh","args":["-c","echo %s > $out"],"env":{},"outputs":{"out":{}},"inputDrvs":{},"inputSrcs":[]}\n' \
		"$2" "$system" "$2" >"$1"
}
mkdir -p "$tmp/d"
for mode in daemon local; do
	for i in $(seq 1 "$N"); do mkdrv "$tmp/d/$mode-lat-$i.json" "$mode-lat-$i"; done
	for i in $(seq 1 200); do mkdrv "$tmp/d/$mode-tp-$i.json" "$mode-tp-$i"; done
done

# One build each way in turn, so that both see the same moments of this
# (noisy) machine; medians, and the median of the pairs' differences.
"$NIB" --store daemon build "$tmp/d/daemon-lat-1.json" >/dev/null # warm-up, not timed
"$NIB" --store local build "$tmp/d/local-lat-1.json" >/dev/null
# Each build is started by bench/timed (posix_spawn; see timed.c), which
# appends its time in ns: bash's own fork would add a millisecond to both.
for i in $(seq 2 "$N"); do
	for mode in daemon local; do
		rm -f "$tmp/t"
		"$build/bench/timed" "$tmp/t" "$NIB" --store "$mode" build "$tmp/d/$mode-lat-$i.json" >/dev/null
		printf '%s %s %s\n' "$i" "$mode" $(($(cat "$tmp/t") / 1000))
	done
done >"$tmp/lat"
for mode in daemon local; do
	awk -v m="$mode" '$2 == m { print $3 }' "$tmp/lat" | sort -n |
		awk -v m="$mode" '{ v[NR] = $1 } END { printf "%-6s trivial build, one at a time: median %.1f ms (%d builds, alternating)\n", m, v[int((NR + 1) / 2)] / 1000, NR }'
done
awk '{ t[$1, $2] = $3 } $2 == "local" { print t[$1, "daemon"] - $3 }' "$tmp/lat" | sort -n |
	awk '{ v[NR] = $1 } END { printf "the daemon adds, median of the pairs: %.2f ms per build (goal <= 1 ms)\n", v[int((NR + 1) / 2)] / 1000 }'
for mode in daemon local; do
	start=$(date +%s.%N)
	"$NIB" --store "$mode" build "$tmp"/d/$mode-tp-*.json >/dev/null
	end=$(date +%s.%N)
	echo "$mode $start $end" >>"$tmp/tp"
	awk -v m="$mode" -v s="$start" -v e="$end" \
		'BEGIN { printf "%-6s 200 trivial builds in one nib build (max-jobs 2): %.2f s, %.1f builds/s\n", m, e - s, 200 / (e - s) }'
done
awk '{ d[$1] = $3 - $2 } END { printf "the daemon adds, 200 builds: %.2f ms per build (one run each way)\n", (d["daemon"] - d["local"]) * 1000 / 200 }' "$tmp/tp"
# Connections per second, three rounds of 2 s: the figures of this shared
# machine move by a quarter from one second to the next, so the round with
# the median rate is printed in full, with the range of all three.
for r in 1 2 3; do
	"$build/bench/daemon-bench" "$NIB_DAEMON_SOCKET" /nib/store 2 "$dpid" >"$tmp/conn-$r"
done
for r in 1 2 3; do
	printf '%s %s\n' "$(sed -n 's/.* = \([0-9]*\) connections\/s/\1/p' "$tmp/conn-$r")" "$r"
done | sort -n >"$tmp/conn-rates"
cat "$tmp/conn-$(sed -n '2s/.* //p' "$tmp/conn-rates")"
echo "connections/s in the three rounds: $(cut -d' ' -f1 "$tmp/conn-rates" | tr '\n' ' ')(goal >= 2,000)"
if command -v nix-daemon >/dev/null 2>&1; then
	# Nix's daemon over a scratch store and state directory of its own.
	nx="$tmp/nix"
	mkdir -p "$nx/etc" "$nx/state" "$nx/store" "$nx/log"
	printf 'build-users-group =\nsubstituters =\n' >"$nx/etc/nix.conf"
	NIX_CONF_DIR="$nx/etc" NIX_STATE_DIR="$nx/state" NIX_STORE_DIR="$nx/store" \
		NIX_LOG_DIR="$nx/log" nix-daemon >"$nx/daemon.log" 2>&1 &
	npid=$!
	for i in $(seq 1 100); do [ -S "$nx/state/daemon-socket/socket" ] && break; sleep 0.05; done
	echo "Nix 2.8's nix-daemon, same client:"
	"$build/bench/daemon-bench" "$nx/state/daemon-socket/socket" "$nx/store" 3 "$npid" | head -2
	kill "$npid" 2>/dev/null
	wait "$npid" 2>/dev/null || true
fi

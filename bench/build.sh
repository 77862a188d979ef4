#!/usr/bin/env bash
# bench/build.sh - end-to-end build latency and throughput of `nib build`,
# side by side with Nix when Debian's nix-bin is installed.
#
#   bench/build.sh [BUILD-DIR] [ITERATIONS]
#
# As root.  Three workloads, each on fresh derivations so that nothing is
# valid already:
#   single   median wall time of `nib build x.json` for one trivial derivation
#            (`echo x > $out`, a new nonce each time): parse, add the .drv,
#            sandbox, run, register, clean up, including process start; and
#            of `nib build /nib/store/…drv` with the .drv added beforehand.
#            Each command is started by bench/timed (posix_spawn) between
#            two clock readings, Nix's too; the row below it shows what
#            starting /bin/true that way costs (bash's own fork, which the
#            shell's clock around a command would add, costs ~1 ms more);
#   wide     200 independent trivial derivations in one `nib build -j 2`,
#            time per build;
#   chain    a chain of 50 derivations (each reads its input), time per build.
# nib runs with its defaults (fsync-metadata = true: every stored file and
# directory is fsynced, not only the database as in Nix) and once more with
# fsync-metadata = false.  The store lives under a scratch
# directory (store-root).  The UID pool uses 16 slots picked at random above
# 2^31, outside the default range and the 2,800 slots from 2^31 up that the
# integration tests take: a nib daemon reclaims (kills the processes of)
# every slot of its range that its own state directory does not show as
# taken, so a daemon started meanwhile on this host must not share them.
#
# Nix (Debian's nix-bin, 2.8): if nix-store and nix-instantiate are on PATH,
# the same derivations are built by Nix in a scratch chroot store
# (--store local?root=DIR) with NIX_CONF_DIR pointing at a generated nix.conf:
#     sandbox = true
#     sandbox-paths = /bin/sh=/bin/busybox
#     build-users-group =          (root builds in the sandbox's user namespace)
#     substituters =
# The derivations are instantiated first (not timed); only the realisation is
# timed, which favours Nix slightly (nib's figures include adding the .drv).
# Nothing outside the scratch directory is touched; it is removed at the end.
set -euo pipefail

builddir=${1:-_build}
iters=${2:-30}
nib=$(cd "$builddir" && pwd)/nib
timed=$(cd "$builddir" && pwd)/bench/timed
[ -x "$nib" ] && [ -x "$timed" ] || { echo "no nib or bench/timed in $builddir (build first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "needs /bin/busybox (busybox-static)" >&2; exit 1; }

scratch=$(mktemp -d /var/tmp/nib-bench-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export NIB_CONF_DIR="$scratch/etc" NIB_STORE_ROOT="$scratch/root" NIB_STATE_DIR="$scratch/state"
export NIB_LOG_DIR="$scratch/log" NIB_STORE_DIR=/nib/store
unset NIB_CONFIG NIB_REMOTE
mkdir -p "$NIB_CONF_DIR" "$scratch/d"
cat >"$NIB_CONF_DIR/nib.conf" <<CONF
start-id = $((2147483648 + (2800 + (RANDOM % 250) * 16) * 262144))
id-count = $((16 * 262144))
sandbox-paths = /bin/sh=/bin/busybox
CONF
system=$("$nib" show-config system)

# $EPOCHREALTIME (bash 5): no process is started to read the clock.
now_ns() { local t=${EPOCHREALTIME/./}; echo "${t}000"; }
# Single commands are timed by bench/timed (posix_spawn, see timed.c), not
# by the shell's clock around them: bash's own fork costs about a
# millisecond here.  run_timed FILE CMD...: appends the time in ns to FILE.
run_timed() { "$timed" "$@"; }
ms() { awk -v ns="$1" -v n="${2:-1}" 'BEGIN { printf "%.2f", ns / n / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

trivial() { # FILE NAME NONCE
	printf '{"name":"%s","system":"%s","builder":"/bin/sh","args":["-c","echo x > $out"],"outputs":{"out":{}},"env":{"nonce":"%s"}}\n' \
		"$2" "$system" "$3" >"$1"
}

nib_single() { # extra options...
	local i f times="$scratch/t-single-$RANDOM"
	for i in $(seq "$iters"); do
		f="$scratch/d/s-$RANDOM-$i.json"
		trivial "$f" single "$(now_ns)-$i"
		run_timed "$times" "$nib" "$@" build "$f" >/dev/null
	done
	median <"$times"
}

# Like Nix's figure: the .drv is in the store already (nib derivation add, not timed).
nib_single_drv() {
	local i f drv times="$scratch/t-single-drv"
	for i in $(seq "$iters"); do
		f="$scratch/d/sd-$RANDOM-$i.json"
		trivial "$f" single-drv "$(now_ns)-$i"
		drv=$("$nib" derivation add "$f")
		run_timed "$times" "$nib" build "$drv" >/dev/null
	done
	median <"$times"
}

# The floor of the method: starting and waiting for /bin/true the same way.
true_single() {
	local i times="$scratch/t-true"
	for i in $(seq "$iters"); do run_timed "$times" /bin/true; done
	median <"$times"
}

nib_wide() { # extra options...
	local i t0 t1 files=()
	for i in $(seq 200); do
		trivial "$scratch/d/w$i.json" "wide-$i" "$(now_ns)-$*"
		files+=("$scratch/d/w$i.json")
	done
	t0=$(now_ns)
	"$nib" "$@" build -j 2 "${files[@]}" >/dev/null
	t1=$(now_ns)
	echo $((t1 - t0))
}

nib_chain() { # extra options...
	local i t0 t1 nonce
	nonce=$(now_ns)
	printf '{"name":"chain-1","system":"%s","builder":"/bin/sh","args":["-c","echo 1 > $out"],"outputs":{"out":{}},"env":{"nonce":"%s"}}\n' \
		"$system" "$nonce" >"$scratch/d/c1.json"
	for i in $(seq 2 50); do
		printf '{"name":"chain-%d","system":"%s","builder":"/bin/sh","args":["-c","echo $(($(cat $prev) + 1)) > $out"],"inputDrvs":{"./c%d.json":["out"]},"outputs":{"out":{}},"env":{"prev":"./c%d.json"}}\n' \
			"$i" "$system" $((i - 1)) $((i - 1)) >"$scratch/d/c$i.json"
	done
	t0=$(now_ns)
	out=$("$nib" "$@" build -j 2 "$scratch/d/c50.json")
	t1=$(now_ns)
	[ "$(cat "$scratch/root$out")" = 50 ] || { echo "chain result wrong" >&2; exit 1; }
	echo $((t1 - t0))
}

# Warm up (creates the store, the database and the pool).
trivial "$scratch/d/warm.json" warm "$(now_ns)"
"$nib" build "$scratch/d/warm.json" >/dev/null

echo "nib build benchmark ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
n_true=$(true_single)
n_single=$(nib_single)
n_single_nofsync=$(nib_single --option fsync-metadata false)
n_single_drv=""
"$nib" derivation add --help >/dev/null 2>&1 && n_single_drv=$(nib_single_drv)
n_wide=$(nib_wide)
n_wide_nofsync=$(nib_wide --option fsync-metadata false)
n_chain=$(nib_chain)
n_chain_nofsync=$(nib_chain --option fsync-metadata false)

x_single="" x_wide="" x_chain=""
if command -v nix-store >/dev/null && command -v nix-instantiate >/dev/null; then
	nixroot="$scratch/nix"
	mkdir -p "$scratch/nixconf"
	cat >"$scratch/nixconf/nix.conf" <<CONF
sandbox = true
sandbox-paths = /bin/sh=/bin/busybox
build-users-group =
substituters =
CONF
	export NIX_CONF_DIR="$scratch/nixconf"
	store="local?root=$nixroot"
	cat >"$scratch/bench.nix" <<'NIX'
{ nonce, kind }:
let
  triv = name: n: derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo x > $out" ]; nonce = n;
  };
  link = i: if i == 1
    then derivation { name = "chain-1"; system = builtins.currentSystem; builder = "/bin/sh";
                      args = [ "-c" "echo 1 > $out" ]; inherit nonce; }
    else derivation { name = "chain-${toString i}"; system = builtins.currentSystem;
                      builder = "/bin/sh"; prev = link (i - 1);
                      args = [ "-c" "echo $(($(cat $prev) + 1)) > $out" ]; };
in
  if kind == "single" then triv "single" nonce
  else if kind == "wide" then builtins.genList (i: triv "wide-${toString i}" nonce) 200
  else link 50
NIX
	inst() { nix-instantiate --store "$store" "$scratch/bench.nix" --argstr nonce "$1" --argstr kind "$2" 2>/dev/null; }
	inst warm single | xargs nix-store --store "$store" -r >/dev/null 2>&1
	for i in $(seq "$iters"); do
		drv=$(inst "$(now_ns)-$i" single)
		run_timed "$scratch/t-nix-single" nix-store --store "$store" -r "$drv" >/dev/null 2>&1
	done
	x_single=$(median <"$scratch/t-nix-single")
	drvs=$(inst "$(now_ns)" wide)
	t0=$(now_ns)
	# shellcheck disable=SC2086
	nix-store --store "$store" -r -j 2 $drvs >/dev/null 2>&1
	t1=$(now_ns)
	x_wide=$((t1 - t0))
	drv=$(inst "$(now_ns)" chain)
	t0=$(now_ns)
	nix-store --store "$store" -r -j 2 "$drv" >/dev/null 2>&1
	t1=$(now_ns)
	x_chain=$((t1 - t0))
	chmod -R u+w "$nixroot" 2>/dev/null || true
fi

row() { # LABEL NIB NIX GOAL
	printf '%-44s %10s ms %12s %s\n' "$1" "$2" "${3:+$3 ms}" "$4"
}
printf '\n%-44s %13s %12s\n' "" "nib" "Nix 2.8"
row "one trivial build, median of $iters" "$(ms "$n_single")" "$( [ -n "$x_single" ] && ms "$x_single")" "(goal <= 10 ms)"
row "  (starting /bin/true the same way)" "$(ms "$n_true")" "" ""
row "  the same with fsync-metadata = false" "$(ms "$n_single_nofsync")" "" ""
[ -n "$n_single_drv" ] && row "  the .drv added beforehand (as for Nix)" "$(ms "$n_single_drv")" "" ""
row "200 independent builds, -j 2, per build" "$(ms "$n_wide" 200)" "$( [ -n "$x_wide" ] && ms "$x_wide" 200)" "(goal <= 5 ms)"
row "  the same with fsync-metadata = false" "$(ms "$n_wide_nofsync" 200)" "" ""
row "chain of 50, per build" "$(ms "$n_chain" 50)" "$( [ -n "$x_chain" ] && ms "$x_chain" 50)" ""
row "  the same with fsync-metadata = false" "$(ms "$n_chain_nofsync" 50)" "" ""
row "chain of 50, total" "$(ms "$n_chain")" "$( [ -n "$x_chain" ] && ms "$x_chain")" ""
[ -n "$x_single" ] || echo "(Nix not installed: apt-get install nix-bin for its figures)"

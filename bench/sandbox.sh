#!/bin/sh
# bench/sandbox.sh - cost of starting one sandboxed builder (run as root).
#
#   bench/sandbox.sh [BUILD-DIR] [ITERATIONS] [STAGING-DIR]
#
# Prints the median start+wait time of a trivial builder ("sh -c true" from
# busybox-static) in nib's full sandbox, with and without a per-build
# cgroup, next to the bare-kernel floor (clone into the same namespaces and
# exit) and bubblewrap with the same binds when it is installed
# (apt-get install bubblewrap).  It runs twice: with the output directory
# staged on a tmpfs (/dev/shm), which isolates the sandbox's own cost, and in
# STAGING-DIR (default $TMPDIR or /tmp), which should be on the filesystem of
# the store: there every input costs a mountpoint directory made and removed
# on that filesystem, as in Nix.  The machine should be otherwise idle.
set -eu
builddir=${1:-_build}
iterations=${2:-200}
staging=${3:-${TMPDIR:-/tmp}}
bench="$builddir/bench/sandbox-bench"
[ "$(id -u)" = 0 ] || { echo "bench/sandbox.sh: needs root" >&2; exit 1; }
[ -x "$bench" ] || { echo "bench/sandbox.sh: build first (make -C $builddir)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "bench/sandbox.sh: needs /bin/busybox (busybox-static)" >&2; exit 1; }
echo "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "staging filesystem: $(df -T "$staging" | awk 'NR == 2 { print $2 }') at $staging"
"$bench" --iterations "$iterations" --busybox /bin/busybox --dir /dev/shm
echo
"$bench" --iterations "$iterations" --busybox /bin/busybox --dir "$staging"

#!/bin/sh
# UID pool benchmark: acquire+release latency with 0 %, 50 % and 99 % of 128
# slots busy, against the Nix-style scan-from-slot-0 reference in the same run.
#   bench/uidpool.sh [BUILD-DIR] [ITERATIONS [SCAN-ITERATIONS]]
# BUILD-DIR defaults to ./_build; the program is built there with `make`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../_build}
[ $# -gt 0 ] && shift
make -C "$build" -s bench/uidpool-bench >/dev/null
echo "# $(uname -sr), $(nproc) CPUs, $(ls -d /proc/[0-9]* | wc -l) processes (the /proc scan reads them all)"
exec "$build/bench/uidpool-bench" "$@"

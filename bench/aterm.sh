#!/bin/sh
# Derivation benchmark: ATerm and JSON parse+print, output-path computation,
# against SHA-256 of the same bytes in the same run (goal: >= 10,000 ATerm
# parse+print per second).
#   bench/aterm.sh [BUILD-DIR] [ROUNDS]
# BUILD-DIR defaults to ./_build; the program is built there with `make`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../_build}
[ $# -gt 0 ] && shift
make -C "$build" -s bench/aterm-bench >/dev/null
exec "$build/bench/aterm-bench" "$here/../tests/data/derivations/nix-store" "$@"

#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: install dependencies, build
# with warnings as errors in _build-test/, run `make check`.  Run as root so
# that the sandbox, UID pool and daemon tests run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

.ci/install-deps --tests
[ -x configure ] || ./autogen.sh
mkdir -p _build-test
cd _build-test
[ -f Makefile ] || ../configure --enable-werror --enable-tests=yes
make -j"$(nproc)"
if ! make -j"$(nproc)" check; then
	cat test-suite.log >&2 || true
	exit 1
fi

#!/usr/bin/env bash
# Builds labloop with AddressSanitizer + UndefinedBehaviorSanitizer and warnings as errors
# (clang when present, else gcc) in build-test/, then runs every test except the
# benchmarks: unit, integration (real labsim and labloopd over real sockets and
# pseudo-terminals) and fuzz-corpus replay. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cc=gcc
command -v clang >/dev/null 2>&1 && cc=clang
builddir=${LL_TEST_BUILD_DIR:-build-test}
cmake -S . -B "$builddir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
      -DLL_SANITIZE=ON -DLL_WERROR=ON -DLL_FAILPOINTS=ON >/dev/null
cmake --build "$builddir" -j"$(nproc)" -- --no-print-directory >/dev/null
ctest --test-dir "$builddir" -LE bench -j"$(nproc)" --output-on-failure "$@"

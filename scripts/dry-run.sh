#!/usr/bin/env bash
# Dry run on the simulated lab (the embedded default).
#
# Stage reached so far: the perovskite world of labsim evaluates the 64 shared benchmark
# points with the default measurement noise and reports the best PCE and stability found.
# Each later stage (planner loop, then the full labsim + labloopd campaign) replaces this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
builddir=${LL_BUILD_DIR:-build}
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$builddir" -j"$(nproc)" -- --no-print-directory >/dev/null
cut -d, -f1-6 tests/data/perovskite_vectors.csv |
    "$builddir"/simulators/labsim world perovskite --seed 1 >"$builddir/dry-run.csv"
echo "dry run: $(($(wc -l <"$builddir/dry-run.csv") - 1)) samples evaluated by labsim's perovskite world"
echo "best PCE:       $(sort -t, -k7 -g -r "$builddir/dry-run.csv" | head -1)"
echo "best stability: $(sort -t, -k8 -g -r "$builddir/dry-run.csv" | head -1)"
echo "results in $builddir/dry-run.csv"

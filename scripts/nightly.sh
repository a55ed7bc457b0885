#!/usr/bin/env bash
# The nightly (N) runs of reliability.md's test matrix that this tree can do, too long for
# every CI run (docs/reliability-matrix.md says which rows they serve):
#   1. F1 at N: the crash test with LL_CRASH_KILLS kills (default 200) instead of 20;
#   2. B1/B7/B9/B10/B11 at N: every libFuzzer target, coverage-guided, for
#      LL_FUZZ_SECONDS each (default 3600), under ASan + UBSan, from the checked-in corpus;
#      a crash stops the script with the reproducer's path.
#   3. L4 at N: test_daemon_peers with LL_PEERS_SECONDS (default 300) of 64 stations
#      connecting and disconnecting every second instead of 30;
#   4. the whole suite once more with another seed for the deterministic mutations
#      (LL_FUZZ_SEED), the crash test's kill times (LL_CRASH_SEED) and the power-loss test's
#      damage (LL_POWERLOSS_SEED).
# Needs clang (scripts/install-deps.sh installs it). Builds in build-nightly/ (sanitizers,
# kill points) and build-nightly-fuzz/ (libFuzzer). New corpus inputs go to
# build-nightly-fuzz/corpus/NAME (not into the tree: add the interesting ones by hand).
# Exit 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${LL_CRASH_KILLS:-200}
peers_s=${LL_PEERS_SECONDS:-300}
fuzz_s=${LL_FUZZ_SECONDS:-3600}
seed=${LL_NIGHTLY_SEED:-$(date +%Y%m%d)}
scripts/install-deps.sh

echo "== build (ASan + UBSan, kill points)"
LL_TEST_BUILD_DIR=build-nightly scripts/test.sh -R '^test_common$' >/dev/null

echo "== 1. crash test with $kills kills (seed $seed)"
LL_CRASH_KILLS=$kills LL_CRASH_SEED=$seed ctest --test-dir build-nightly -R '^test_daemon_crash$' \
    --timeout $((kills * 15 + 300)) --output-on-failure

echo "== 2. libFuzzer, ${fuzz_s} s per target"
cmake -S . -B build-nightly-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DLL_FUZZ=ON -DLL_SANITIZE=ON >/dev/null
cmake --build build-nightly-fuzz -j"$(nproc)" -- --no-print-directory >/dev/null
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    corpus=${name#fuzz_}
    work=build-nightly-fuzz/corpus/$corpus
    mkdir -p "$work" build-nightly-fuzz/crashes
    echo "-- $name"
    if ! build-nightly-fuzz/tests/"$name" "$work" "tests/fuzz/corpus/$corpus" \
            -max_total_time="$fuzz_s" -print_final_stats=1 \
            -artifact_prefix=build-nightly-fuzz/crashes/"$corpus"- \
            >build-nightly-fuzz/"$name".log 2>&1; then
        echo "$name found a crash: $(ls build-nightly-fuzz/crashes/"$corpus"-* | head -n 1)" >&2
        tail -n 40 build-nightly-fuzz/"$name".log >&2
        exit 1
    fi
    grep -E 'stat::number_of_executed_units|cov:' build-nightly-fuzz/"$name".log | tail -n 2
done

echo "== 3. many peers (L4) for $peers_s s"
LL_PEERS_SECONDS=$peers_s ctest --test-dir build-nightly -R '^test_daemon_peers$' \
    --timeout $((peers_s + 300)) --output-on-failure

echo "== 4. the suite with seed $seed"
LL_FUZZ_SEED=$seed LL_CRASH_SEED=$seed LL_POWERLOSS_SEED=$seed ctest --test-dir build-nightly -LE bench -j"$(nproc)" \
    --output-on-failure
echo "== nightly: all passed"

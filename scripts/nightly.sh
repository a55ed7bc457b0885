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
#   5. the load rows against a real labloopd, full size, on a release build
#      (tests/bench/bench_load.py, BENCHMARKS.md "Load rows"): L2 (a station replays 50,000
#      spooled messages; pass: exactly once, status p99 <= 200 ms, no watchdog gap) and F16
#      (exports back to back during 10 min of L1's load; pass: WAL <= 8 MiB) must pass; L8
#      (planning under L1's load) prints its figures and verdicts but does not fail the night:
#      on a 2-core machine the planner, labloopd and the load generator share the cores, and
#      L1's p99 ack latency <= 50 ms needs about 5,000 acked/s with 256 messages in flight.
#      LL_NIGHTLY_LOAD=0 leaves step 5 out.
# Needs clang (scripts/install-deps.sh installs it). Builds in build-nightly/ (sanitizers,
# kill points), build-nightly-fuzz/ (libFuzzer) and build-nightly-rel/ (RelWithDebInfo, for
# step 5). New corpus inputs go to build-nightly-fuzz/corpus/NAME (not into the tree: add the
# interesting ones by hand). Exit 0 when everything passed.
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

if [ "${LL_NIGHTLY_LOAD:-1}" != 0 ]; then
    echo "== 5. load rows L2, F16 (must pass) and L8 (figures), full size"
    cmake -S . -B build-nightly-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build-nightly-rel -j"$(nproc)" -- --no-print-directory >/dev/null
    /usr/bin/python3 tests/bench/bench_load.py l2 --full --check --build build-nightly-rel
    /usr/bin/python3 tests/bench/bench_load.py f16 --full --check --reader --build build-nightly-rel
    /usr/bin/python3 tests/bench/bench_load.py l8 --full --build build-nightly-rel
fi
echo "== nightly: all passed"

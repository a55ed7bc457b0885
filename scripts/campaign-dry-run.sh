#!/usr/bin/env bash
# The full dry run: labsim (the embedded simulated lab) and labloopd run the perovskite
# campaign (config/perovskite.conf: 14 initial + 10 rounds of 4 = 54 experiments) over real
# sockets and pseudo-terminals at high simulated speed, then print the Pareto front and the
# hypervolume and stop both cleanly.
#
#   scripts/campaign-dry-run.sh [--speed N] [--campaign FILE] [--budget N] [--initial N]
#                               [--batch N] [--faults SPEC] [--keep]
#
# Environment: LL_BUILD_DIR (default build), LL_NO_BUILD=1 to use existing binaries,
# LL_DRY_RUN_PARETO / LL_DRY_RUN_STATUS = files to receive `labloop pareto/status --json`,
# LABSIM / LABLOOPD / LABLOOP to point at other binaries. --keep leaves the temporary
# directory (store, logs) in place and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
speed=2000
campaign=config/perovskite.conf
budget=""
initial=""
batch=""
keep=0
faults=""
while [ $# -gt 0 ]; do
    case "$1" in
    --speed) speed=$2; shift 2 ;;
    --campaign) campaign=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --initial) initial=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--speed N] [--campaign FILE] [--budget N] [--initial N] [--batch N] [--keep]" >&2; exit 2 ;;
    esac
done
builddir=${LL_BUILD_DIR:-build}
if [ "${LL_NO_BUILD:-0}" != 1 ]; then
    cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$builddir" -j"$(nproc)" --target labsim labloopd labloop -- --no-print-directory >/dev/null
fi
labsim=${LABSIM:-$builddir/simulators/labsim}
labloopd=${LABLOOPD:-$builddir/daemon/labloopd}
labloop=${LABLOOP:-$builddir/daemon/labloop}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/labloop-dry-run.XXXXXX")
sim_pid=""
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
    if [ "$keep" = 1 ]; then echo "kept: $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# the embedded default lab, with a free robot port and a free stations port
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e 's/port = 15020;/port = 0;/' -e "s#tcp://127.0.0.1:5555#tcp://127.0.0.1:$port#" \
    config/lab.conf >"$tmp/lab.conf"
cp "$campaign" "$tmp/campaign.conf"
[ -n "$budget" ] && sed -i "s/budget = [0-9]*;/budget = $budget;/" "$tmp/campaign.conf"
[ -n "$initial" ] && sed -i "s/initial = [0-9]*;/initial = $initial;/" "$tmp/campaign.conf"
[ -n "$batch" ] && sed -i "s/batch = [0-9]*;/batch = $batch;/" "$tmp/campaign.conf"
mkdir -p "$tmp/sim" "$tmp/run"

start=$(date +%s.%N)
"$labsim" --lab "$tmp/lab.conf" --runtime-dir "$tmp/sim" --speed "$speed" ${faults:+--faults "$faults"} \
    2>"$tmp/labsim.log" &
sim_pid=$!
for _ in $(seq 200); do [ -f "$tmp/sim/ready" ] && break; sleep 0.05; done
[ -f "$tmp/sim/ready" ] || { echo "labsim did not start:" >&2; tail "$tmp/labsim.log" >&2; exit 1; }

"$labloopd" --lab "$tmp/sim/lab.conf" --db "$tmp/labloop.db" --run-dir "$tmp/run" \
    --time-scale "$speed" --poll-ms 5 2>"$tmp/labloopd.log" &
daemon_pid=$!
export LABLOOP_RUN_DIR="$tmp/run"
for _ in $(seq 200); do "$labloop" status >/dev/null 2>&1 && break; sleep 0.05; done
"$labloop" campaign start "$tmp/campaign.conf"

# wait for the campaign to end (completed, failed or aborted)
state=running
while :; do
    state=$("$labloop" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["campaigns"][-1]["state"])')
    case "$state" in running|paused) sleep 0.5 ;; *) break ;; esac
    if ! kill -0 "$daemon_pid" 2>/dev/null; then echo "labloopd died:" >&2; tail "$tmp/labloopd.log" >&2; exit 1; fi
done
end=$(date +%s.%N)
"$labloop" status
echo
"$labloop" pareto
"$labloop" pareto --json >"$tmp/pareto.json"
[ -n "${LL_DRY_RUN_STATUS:-}" ] && "$labloop" status --json >"$LL_DRY_RUN_STATUS"
[ -n "${LL_DRY_RUN_PARETO:-}" ] && cp "$tmp/pareto.json" "$LL_DRY_RUN_PARETO"
echo
python3 - "$start" "$end" <<'PY'
import sys
print(f"dry run wall time: {float(sys.argv[2]) - float(sys.argv[1]):.1f} s")
PY
rss=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
echo "labloopd peak resident memory: $((rss / 1024)) MB"
kill "$daemon_pid"; wait "$daemon_pid" || { echo "labloopd did not stop cleanly" >&2; exit 1; }
daemon_pid=""
kill "$sim_pid"; wait "$sim_pid" || true
sim_pid=""
grep -q "stopped cleanly" "$tmp/labloopd.log" && echo "labloopd and labsim stopped cleanly"
[ "$state" = completed ] || { echo "campaign ended $state" >&2; exit 1; }

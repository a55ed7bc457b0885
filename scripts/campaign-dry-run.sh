#!/usr/bin/env bash
# The full dry run: labsim (the embedded simulated lab) and labloopd run the perovskite
# campaign (config/perovskite.conf: 14 initial + 10 rounds of 4 = 54 experiments) over real
# sockets and pseudo-terminals at high simulated speed, then print the Pareto front and the
# hypervolume and stop both cleanly.
#
#   scripts/campaign-dry-run.sh [--speed N] [--campaign FILE] [--budget N] [--initial N]
#                               [--batch N] [--faults SPEC] [--keep] [--profile]
#
# Environment: LL_BUILD_DIR (default build), LL_NO_BUILD=1 to use existing binaries,
# LL_DRY_RUN_PARETO / LL_DRY_RUN_STATUS = files to receive `labloop pareto/status --json`,
# LABSIM / LABLOOPD / LABLOOP to point at other binaries. --keep leaves the temporary
# directory (store, logs) in place and prints its path. --profile prints, from the steps'
# start and end times in the store, the whole-campaign makespan against the lower bound (the
# busiest instrument's total step time) and where that instrument idled between its steps.
set -euo pipefail
cd "$(dirname "$0")/.."
speed=2000
campaign=config/perovskite.conf
budget=""
initial=""
batch=""
keep=0
faults=""
profile=0
while [ $# -gt 0 ]; do
    case "$1" in
    --speed) speed=$2; shift 2 ;;
    --campaign) campaign=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --initial) initial=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --profile) profile=1; shift ;;
    *) echo "usage: $0 [--speed N] [--campaign FILE] [--budget N] [--initial N] [--batch N] [--faults SPEC] [--keep] [--profile]" >&2; exit 2 ;;
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
if [ -n "${LL_DRY_RUN_COUNTS:-}" ]; then  # labsim's accounting, for the tests' invariants
    /usr/bin/python3 - "$tmp/sim/control" "$LL_DRY_RUN_COUNTS" <<'PY'
import json, sys, zmq
s = zmq.Context().socket(zmq.REQ)
s.setsockopt(zmq.RCVTIMEO, 5000)
s.connect("ipc://" + sys.argv[1])
s.send_json({"cmd": "counts"})
json.dump(s.recv_json(), open(sys.argv[2], "w"))
PY
fi
kill "$sim_pid"; wait "$sim_pid" || true
sim_pid=""
grep -q "stopped cleanly" "$tmp/labloopd.log" && echo "labloopd and labsim stopped cleanly"
if [ "$profile" = 1 ]; then
    python3 - "$tmp/labloop.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT instrument, action, started_at, finished_at FROM steps "
                  "WHERE state = 'done' ORDER BY started_at").fetchall()
t0, t1 = min(r[2] for r in rows), max(r[3] for r in rows)
busy = {}
for inst, _, a, b in rows:
    busy[inst] = busy.get(inst, 0) + b - a
top = max(busy, key=busy.get)
print(f"makespan {(t1 - t0) / 1e3:.2f} s, lower bound {busy[top] / 1e3:.2f} s ({top}), "
      f"ratio {(t1 - t0) / busy[top]:.3f}")
mine = [r for r in rows if r[0] == top]
gaps = [mine[i + 1][2] - mine[i][3] for i in range(len(mine) - 1)]
print(f"{top} idle: {mine[0][2] - t0} ms before its first step, {t1 - mine[-1][3]} ms after its "
      f"last; between steps {sum(gaps)} ms in {len(gaps)} gaps (mean {sum(gaps) / max(len(gaps), 1):.1f} ms)")
# inside each gap: the other steps that ran, and the hand-offs between them (the time from
# one step's recorded end to the next step's recorded start is labloopd's own share)
hand, inner, n = 0, 0, 0
for i in range(len(mine) - 1):
    a, b = mine[i][3], mine[i + 1][2]
    seq = [r for r in rows if r[0] != top and r[2] >= a and r[3] <= b and r[0] in busy
           and not r[1] == "measure"]
    if not seq:
        continue
    seq.sort(key=lambda r: r[2])
    if any(seq[k + 1][2] < seq[k][3] for k in range(len(seq) - 1)):
        continue  # overlapping steps: not a chain of hand-offs
    ends = [a] + [x for r in seq for x in (r[2], r[3])] + [b]
    hand += sum(ends[k + 1] - ends[k] for k in range(0, len(ends), 2))
    inner += sum(r[3] - r[2] for r in seq)
    n += 1
if n:
    print(f"in {n} gaps filled by a chain of steps: those steps {inner / n:.1f} ms, hand-offs "
          f"(one step's end to the next one's start) {hand / n:.1f} ms per gap")
PY
fi
[ "$state" = completed ] || { echo "campaign ended $state" >&2; exit 1; }

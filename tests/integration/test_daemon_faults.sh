#!/usr/bin/env bash
# The closed loop with labsim injecting faults: lost replies from the robot, the furnace and
# the coater (the daemon must settle each start by asking, never by re-sending blindly), and
# stations that drop, duplicate and corrupt their messages (duplicates answered `duplicate`,
# corrupt copies `rejected`, the measurement still arrives). Every experiment must be
# measured and no step may be left started or unknown. (Exactly-once execution is checked
# against labsim's counts by test_daemon_crash.py.)
set -euo pipefail
src=${LL_SOURCE_DIR:?}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
LL_NO_BUILD=1 LL_DRY_RUN_PARETO="$out/pareto.json" LL_DRY_RUN_STATUS="$out/status.json" \
    "$src/scripts/campaign-dry-run.sh" --budget 4 --initial 4 --batch 2 --speed 1000 --keep \
    --faults "robot.no_reply=0.05,coater.no_reply=0.05,furnace.no_reply=0.05,station.duplicate=0.3,station.drop=0.2,station.corrupt=0.1" \
    | tee "$out/log"
kept=$(sed -n 's/^kept: //p' "$out/log")
/usr/bin/python3 - "$out/pareto.json" "$out/status.json" "$kept" <<'PY'
import json, sqlite3, sys, glob, os
p = json.load(open(sys.argv[1]))
st = json.load(open(sys.argv[2]))
assert p["state"] == "completed" and p["n_measured"] == 4, (p["state"], p["n_measured"])
dups = sum(s["duplicates"] for s in st["stations"])
print(f"duplicates answered: {dups}, rejected: {st['measurements']['rejected']}")
db = sqlite3.connect(os.path.join(sys.argv[3], "labloop.db"))
assert db.execute("SELECT count(*) FROM steps WHERE state IN ('started','unknown')").fetchone()[0] == 0
print("ok")
PY
rm -rf "$kept"

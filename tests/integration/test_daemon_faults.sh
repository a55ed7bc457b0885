#!/usr/bin/env bash
# The closed loop with labsim injecting faults: lost replies from the robot, the furnace and
# the coater (the daemon must settle each start by asking, never by re-sending blindly), and
# stations that drop, duplicate and corrupt their messages (duplicates answered `duplicate`,
# corrupt copies `rejected`, the measurement still arrives). Every experiment must be
# measured and no step may be left started or unknown, and the crash tests' invariants hold
# (daemon_helpers.check_invariants: every job exactly once by labsim's counts, every acked
# measurement stored byte-exact, every station message acked, every stored number re-derived
# from its raw text, a sound store).
set -euo pipefail
src=${LL_SOURCE_DIR:?}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
LL_NO_BUILD=1 LL_DRY_RUN_PARETO="$out/pareto.json" LL_DRY_RUN_STATUS="$out/status.json" \
    LL_DRY_RUN_COUNTS="$out/counts.json" \
    "$src/scripts/campaign-dry-run.sh" --budget 4 --initial 4 --batch 2 --speed 1000 --keep \
    --faults "robot.no_reply=0.05,coater.no_reply=0.05,furnace.no_reply=0.05,station.duplicate=0.3,station.drop=0.2,station.corrupt=0.1" \
    | tee "$out/log"
kept=$(sed -n 's/^kept: //p' "$out/log")
/usr/bin/python3 - "$out/pareto.json" "$out/status.json" "$kept" "$out/counts.json" <<'PY'
import json, sqlite3, sys, glob, os
sys.path.insert(0, os.path.join(os.environ["LL_SOURCE_DIR"], "tests", "integration"))
from daemon_helpers import check_invariants
p = json.load(open(sys.argv[1]))
st = json.load(open(sys.argv[2]))
assert p["state"] == "completed" and p["n_measured"] == 4, (p["state"], p["n_measured"])
dups = sum(s["duplicates"] for s in st["stations"])
print(f"duplicates answered: {dups}, rejected: {st['measurements']['rejected']}")
db = sqlite3.connect(os.path.join(sys.argv[3], "labloop.db"))
assert db.execute("SELECT count(*) FROM steps WHERE state IN ('started','unknown')").fetchone()[0] == 0
db.close()
check_invariants(sys.argv[3], json.load(open(sys.argv[4])), db_path=os.path.join(sys.argv[3], "labloop.db"))
print("ok")
PY
rm -rf "$kept"

#!/usr/bin/env bash
# The closed loop over real sockets and pseudo-terminals, small: labsim + labloopd run the
# perovskite recipe for 6 experiments (4 initial + 1 round of 2) through
# scripts/campaign-dry-run.sh; the campaign must complete with every experiment measured,
# and the Pareto front and hypervolume must be printed; within every round the samples go to
# the furnace coolest anneal first (daemon/engine.c round_order), so it never waits to cool
# between the samples of one round.
set -euo pipefail
src=${LL_SOURCE_DIR:?}
out=$(mktemp -d)
kept=""
trap 'rm -rf "$out" $kept' EXIT
LL_NO_BUILD=1 LL_DRY_RUN_PARETO="$out/pareto.json" \
    "$src/scripts/campaign-dry-run.sh" --budget 6 --initial 4 --batch 2 --speed 1000 --keep | tee "$out/log"
kept=$(sed -n 's/^kept: //p' "$out/log")
grep -q "hypervolume:" "$out/log"
grep -q "stopped cleanly" "$out/log"
/usr/bin/python3 - "$out/pareto.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["state"] == "completed", p["state"]
assert p["n_experiments"] == 6, p["n_experiments"]
assert p["n_measured"] == 6, f"only {p['n_measured']} of 6 experiments were measured"
assert len(p["front"]) >= 1 and p["hypervolume"] >= 0.0
print("ok")
PY
/usr/bin/python3 - "$kept/labloop.db" <<'PY'
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT round, id, params FROM experiments ORDER BY round, id").fetchall()
assert len(rows) == 6, rows
rounds = {}
for rnd, _, params in rows:
    rounds.setdefault(rnd, []).append(json.loads(params)["anneal_c"])
for rnd, temps in rounds.items():
    assert temps == sorted(temps), f"round {rnd}: anneals in the order {temps}, not coolest first"
print("rounds coolest first:", rounds)
PY

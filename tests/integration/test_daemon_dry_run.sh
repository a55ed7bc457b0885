#!/usr/bin/env bash
# The closed loop over real sockets and pseudo-terminals, small: labsim + labloopd run the
# perovskite recipe for 6 experiments (4 initial + 1 round of 2) through
# scripts/campaign-dry-run.sh; the campaign must complete with every experiment measured,
# and the Pareto front and hypervolume must be printed.
set -euo pipefail
src=${LL_SOURCE_DIR:?}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
LL_NO_BUILD=1 LL_DRY_RUN_PARETO="$out/pareto.json" \
    "$src/scripts/campaign-dry-run.sh" --budget 6 --initial 4 --batch 2 --speed 1000 | tee "$out/log"
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

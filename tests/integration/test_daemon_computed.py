#!/usr/bin/env python3
"""A campaign with an objective computed from the parameters (`expr`, planner/campaign.h), run
for real (labsim + labloopd): the daemon needs no station for it, stores its value when the
experiment's measurements are in (no measurement id, the expression as its provenance), the
model round predicts it exactly (sd 0) and records the expression instead of a GP in the fit
record, `labloop pareto`'s model check leaves it out, and the event log shows its value.
"""
import json
import os
import re
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import finish, labloop, run_killing, start_labloopd, start_labsim, wait_for, write_campaign, write_lab  # noqa: E402

procs = []
EXPR = "1 + 40 * ${cs} + 0.05 * ${anneal_min}"


def cost(p):
    return 1 + 40 * p["cs"] + 0.05 * p["anneal_min"]


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_computed.")
    write_lab(tmp)
    path = write_campaign(tmp, "c.conf", initial=2, batch=2, budget=4, approval="auto", schedule="sync")
    text = open(path).read()
    t80 = re.search(r'\{ name = "log10_t80_h";[^}]*\}', text).group(0)
    text = text.replace(t80, f'{{ name = "cost"; goal = "min"; ref = 10.0; expr = "{EXPR}"; }}')
    open(path, "w").write(text)
    run = os.path.join(tmp, "run")
    start_labsim(tmp, os.path.join(tmp, "lab.conf"), 300, procs)
    daemon = start_labloopd(tmp, run, 300, procs)
    r = labloop(run, "campaign", "start", path)
    assert r.returncode == 0, r.stderr

    def finished():
        st = json.loads(labloop(run, "status", "--json").stdout)
        return st if st["campaigns"][0]["state"] == "completed" else None

    st = wait_for("completion", finished, timeout=180)
    assert st["campaigns"][0]["experiments"] == {"measured": 4}, st["campaigns"][0]

    out = os.path.join(tmp, "e.json")
    assert labloop(run, "export", "--format", "json", "--campaign", "1", "--output", out).returncode == 0
    doc = json.load(open(out))
    exps = {x["id"]: x for x in doc["experiments"]}
    for x in exps.values():
        assert abs(x["objectives"]["cost"] - cost(x["params"])) < 1e-7 * cost(x["params"]), x  # export: 10 digits
        assert x["objectives"]["pce_pct"] > 0, x
    # provenance: no measurement, the expression as the "analysis"
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    rows = db.execute("SELECT measurement_id, analysis_version FROM objectives WHERE name = 'cost'").fetchall()
    db.close()
    assert len(rows) == 4 and all(r == (None, "expr: " + EXPR) for r in rows), rows
    fits = doc["model_fits"]
    assert [f["round"] for f in fits] == [0, 1], fits
    model = fits[1]["fit"]
    assert model["model_fitted"], model
    hyp = {h["objective"]: h for h in model["hyperparameters"]}
    assert hyp["cost"] == {"objective": "cost", "expr": EXPR}, hyp
    assert hyp["pce_pct"]["signal_var"] > 0, hyp
    for ch in model["chosen"]:
        pred = ch["predicted"]["cost"]
        assert abs(pred["mean"] - cost(ch["params"])) < 1e-7 * pred["mean"] and pred["sd"] == 0, (ch, pred)
        assert ch["predicted"]["pce_pct"]["sd"] > 0, ch
    mc = json.loads(labloop(run, "pareto", "--json").stdout)["model_check"]
    assert mc["n"] == 2 and set(mc["objectives"]) == {"pce_pct"}, mc
    ev = labloop(run, "events", "--limit", "500").stdout
    costs = re.findall(r"measured: pce_pct \S+(?: \(predicted [^)]*\))?, cost (\S+)\n", ev)
    assert len(costs) == 4, ev
    want = sorted(cost(x["params"]) for x in exps.values())
    assert all(abs(float(c) - w) < 1e-3 * w for c, w in zip(sorted(map(float, costs)), want)), (costs, want)  # %.4g

    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

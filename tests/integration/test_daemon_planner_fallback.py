#!/usr/bin/env python3
"""Planner failure (reliability.md F19; docs/daemon.md "When the planner fails") with labsim and
labloopd running for real. labloopd runs with LABLOOP_PLANNER_ERROR=EDOM:1,ERANGE:2 (test builds
only: planner_ask of rounds 1 and 2 counts as failed with -EDOM, then -ERANGE) on a synchronous
campaign of 4 initial experiments and rounds of 2 (budget 10: rounds 0-3):

  1. the campaign completes (budget spent) instead of failing at round 1;
  2. one `planner.fallback` warning event for each of rounds 1 and 2 (and none for 0 and 3),
     naming the round and the planner's error, also in labloopd's log;
  3. the fit records of rounds 1 and 2 say "fallback": true with the planner's error, no model,
     every chosen entry marked; rounds 0 and 3 are not marked and round 3 fitted its models;
  4. the experiments of rounds 1 and 2 are the campaign's space-filling design at indices 4-5
     and 6-7: the points `labloop plan` gives for the same campaign with acquisition "random"
     and 4 (6) pending rows (spin_rpm integral, every parameter in its bounds);
  5. `labloop status` lists rounds 1 and 2 as planner fallbacks (JSON and text);
  6. the crash tests' invariants hold (every experiment in its round's stored proposal, every
     job exactly once, acked measurements stored ...).
The same on real degenerate data (objectives all 1e308), without labsim:
tests/unit/test_engine_planner_fallback.c.
"""
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOP, check_invariants, finish, labloop, labsim_counts,  # noqa: E402
                            run_killing, start_labloopd, start_labsim, status_json, wait_for,
                            write_campaign, write_lab)

SPEED = 1000
INJECT = "EDOM:1,ERANGE:2"
FALLBACK = {1: (4, "injected planner error"), 2: (6, "injected planner error")}  # round: first index
procs = []


def design_points(tmp, conf, first, count):
    """The campaign's design points at indices first .. first+count-1, from `labloop plan` on
    the same file with acquisition "random" (every point a design point at index n_obs +
    n_pending) and `first` pending rows."""
    text = open(conf).read().replace('acquisition = "ehvi";', 'acquisition = "random";')
    path = os.path.join(tmp, "random.conf")
    open(path, "w").write(text)
    names = ["fa", "cs", "iodide", "anneal_c", "anneal_min", "spin_rpm"]
    pend = os.path.join(tmp, "pending.csv")
    with open(pend, "w") as f:
        f.write(",".join(names) + "\n")
        for _ in range(first):
            f.write("0.5,0.05,0.75,100,10,3000\n")
    r = subprocess.run([LABLOOP, "plan", path, "--pending", pend, "--batch", str(count)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(r.stdout))]


def same_point(a, b):
    """Same parameters to labloop plan's 10 significant digits."""
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(b[k])) for k in a)


def main():
    if os.environ.get("LL_FAILPOINTS", "OFF").upper() not in ("ON", "1", "TRUE", "YES"):
        print("skipped: labloopd built without -DLL_FAILPOINTS=ON (scripts/test.sh builds with it)")
        sys.exit(77)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="test_daemon_planner_fallback.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    run = os.path.join(tmp, "run")
    daemon = start_labloopd(tmp, run, SPEED, procs, env=dict(os.environ, LABLOOP_PLANNER_ERROR=INJECT))
    conf = write_campaign(tmp, "c.conf", initial=4, batch=2, budget=10, schedule="sync")
    r = labloop(run, "campaign", "start", conf)
    assert r.returncode == 0, r.stderr

    # 1: completed, not failed
    st = wait_for("the campaign to end", lambda: (lambda s: s if s["campaigns"][0]["state"] not in
                                                  ("running",) else None)(status_json(run)), timeout=120, every=0.2)
    camp = st["campaigns"][0]
    assert camp["state"] == "completed" and camp["reason"] == "budget spent", camp
    assert camp["experiments"] == {"measured": 10}, camp

    # 5: status says which rounds came from the fallback
    assert [(f["round"], FALLBACK[f["round"]][1] in f["planner_error"]) for f in camp["planner_fallback_rounds"]] \
        == [(1, True), (2, True)], camp["planner_fallback_rounds"]
    text = labloop(run, "status").stdout
    for rnd in FALLBACK:
        assert f"PLANNER FALLBACK in round {rnd}: proposals from the space-filling design" in text, text
    assert "PLANNER FALLBACK in round 3" not in text and "PLANNER FALLBACK in round 0" not in text, text

    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    # 2: one warning event per fallback round
    evs = db.execute("SELECT level, message FROM events WHERE kind = 'planner.fallback' ORDER BY id").fetchall()
    assert len(evs) == len(FALLBACK), evs
    for (level, msg), (rnd, (first, why)) in zip(evs, sorted(FALLBACK.items())):
        assert level == 4 and msg.startswith(f"round {rnd}: the planner failed (") and why in msg, msg
        assert f"design indices {first}-{first + 1}" in msg, msg
    log = open(os.path.join(tmp, "labloopd.log")).read().splitlines()
    assert sum(ln.startswith("<4>planner.fallback ") for ln in log) == len(FALLBACK), log[-40:]

    # 3: fit records
    fits = {rnd: json.loads(f) for rnd, f in db.execute("SELECT round, fit FROM model_fits WHERE campaign_id = 1")}
    assert sorted(fits) == [0, 1, 2, 3], sorted(fits)
    for rnd, fit in fits.items():
        if rnd in FALLBACK:
            assert fit.get("fallback") is True and FALLBACK[rnd][1] in fit["planner_error"], fit
            assert fit["model_fitted"] is False and "hyperparameters" not in fit, fit
            assert all(e.get("fallback") is True and "predicted" not in e for e in fit["chosen"]), fit["chosen"]
        else:
            assert "fallback" not in fit and "planner_error" not in fit, fit
            assert all("fallback" not in e for e in fit["chosen"]), fit["chosen"]
    assert fits[3]["model_fitted"] is True and all("predicted" in e for e in fits[3]["chosen"]), fits[3]

    # 4: the fallback rounds' experiments are the design's points at their indices
    for rnd, (first, _) in FALLBACK.items():
        want = design_points(tmp, conf, first, 2)
        got = [json.loads(p) for (p,) in db.execute(
            "SELECT params FROM experiments WHERE round = ? ORDER BY idx", (rnd,))]
        assert len(got) == 2, got
        for g in got:
            assert any(same_point(g, w) for w in want), (rnd, g, want)
            assert g["spin_rpm"] == int(g["spin_rpm"]) and 2000 <= g["spin_rpm"] <= 6000, g
        idx = [i for (i,) in db.execute("SELECT idx FROM experiments WHERE round = ? ORDER BY idx", (rnd,))]
        assert idx == [first, first + 1], idx
    db.close()

    # 6
    check_invariants(tmp, labsim_counts(tmp))
    print(f"completed with {len(FALLBACK)} fallback rounds in {time.time() - t0:.1f} s")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""Operator control of a running campaign over real sockets (labsim + labloopd): a request
whose error message cannot be quoted back as UTF-8 is still answered;
approval "batch" (pending approval, deny -> abandoned and proposed again without spending
budget, approve), pause at a step boundary (nothing new starts; labsim's job count stays
put) and resume, then export (CSV and JSON with model fits), experiments and events; a second
campaign: software e-stop (stopped, latched), resume, abort (experiments abandoned, final).
"""
import csv
import io
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOPD, finish, labloop, request, run_killing, start_labsim, wait_for, write_campaign, write_lab  # noqa: E402

procs = []


def status(run_dir):
    r = labloop(run_dir, "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def robot_jobs(tmp):
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect("ipc://" + os.path.join(tmp, "sim", "control"))
    s.send_json({"cmd": "counts"})
    c = s.recv_json()
    ctx.destroy(linger=0)
    return sum(c.get("robot_jobs", {}).values())


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_control.")
    write_lab(tmp)
    write_campaign(tmp, "c.conf", initial=2, batch=2, budget=4, approval="batch", schedule="sync")
    run = os.path.join(tmp, "run")
    start_labsim(tmp, os.path.join(tmp, "lab.conf"), 300, procs)
    daemon = subprocess.Popen([LABLOOPD, "--lab", os.path.join(tmp, "sim", "lab.conf"), "--db",
                               os.path.join(tmp, "l.db"), "--run-dir", run, "--time-scale", "300",
                               "--poll-ms", "5"], stderr=open(os.path.join(tmp, "labloopd.log"), "w"))
    procs.append(daemon)
    wait_for("labloopd", lambda: labloop(run, "status").returncode == 0)
    # an unknown command quoted back cut inside a multibyte character is still answered (as
    # an error), and the control socket keeps answering after it
    r = request("ipc://" + os.path.join(run, "control"), {"cmd": "a" + "\u00e9" * 40})
    assert r is not None and r["ok"] is False and "unknown command" in r["error"], r
    assert labloop(run, "status").returncode == 0
    assert labloop(run, "campaign", "start", os.path.join(tmp, "c.conf")).returncode == 0

    # the first batch waits for approval; nothing moves
    st = wait_for("approval", lambda: (lambda s: s if s["campaigns"][0].get("approval_pending_round") == 0 else None)(status(run)))
    assert st["campaigns"][0]["experiments"] == {"awaiting_approval": 2}, st["campaigns"][0]
    assert "labloop approve" in labloop(run, "status").stdout
    time.sleep(0.3)
    assert robot_jobs(tmp) == 0
    # deny: abandoned, and a new batch is proposed without spending the budget
    r = labloop(run, "deny")
    assert r.returncode == 0, r.stderr
    st = wait_for("second proposal", lambda: (lambda s: s if s["campaigns"][0].get("approval_pending_round") == 1 else None)(status(run)))
    assert st["campaigns"][0]["experiments"] == {"abandoned": 2, "awaiting_approval": 2}, st
    assert labloop(run, "approve", "1").returncode == 0
    assert labloop(run, "approve").returncode == 1  # nothing is waiting any more

    # pause once the robot has started: running steps finish, nothing new starts
    wait_for("robot work", lambda: robot_jobs(tmp) >= 2)
    r = labloop(run, "campaign", "pause")
    assert r.returncode == 0 and "no new step starts" in r.stdout, r
    wait_for("in-flight steps to end", lambda: not status(run)["in_flight"], timeout=120)
    n = robot_jobs(tmp)
    time.sleep(1.0)
    assert robot_jobs(tmp) == n, "a step started while paused"
    assert status(run)["campaigns"][0]["state"] == "paused"
    assert labloop(run, "campaign", "resume").returncode == 0

    # round 2 (the model round) needs approval too
    wait_for("round 2 approval", lambda: status(run)["campaigns"][0].get("approval_pending_round") == 2, timeout=180)
    assert labloop(run, "approve").returncode == 0
    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] == "completed" else None)(status(run)), timeout=180)
    assert st["campaigns"][0]["experiments"] == {"abandoned": 2, "measured": 4}, st["campaigns"][0]

    r = labloop(run, "export")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 6 and {"fa", "spin_rpm", "pce_pct", "log10_t80_h"} <= set(rows[0]), rows[0].keys()
    assert sum(1 for x in rows if x["state"] == "measured" and float(x["pce_pct"]) > 0) == 4
    assert all(x["reason"] == "denied by operator" for x in rows if x["state"] == "abandoned")
    out = os.path.join(tmp, "e.json")
    assert labloop(run, "export", "--format", "json", "--campaign", "1", "--output", out).returncode == 0
    doc = json.load(open(out))
    fits = doc["model_fits"]
    assert [f["round"] for f in fits] == [0, 1, 2], fits
    assert fits[2]["fit"]["model_fitted"] and len(fits[2]["fit"]["hyperparameters"]) == 2
    for h in fits[2]["fit"]["hyperparameters"]:  # enough to rebuild each model and its exploration
        assert h["additive_var"] >= 0 and h["explore_signal_var"] >= 0 and h["signal_var"] > 0, h
        assert h["explore_signal_var"] == 0 or h["explore_signal_var"] > h["signal_var"], h
    assert len(fits[2]["fit"]["chosen"]) == 2 and len(fits[2]["fit"]["training"]) == 2
    # the model round records what the models expected of each proposal; design rounds do not
    assert all("predicted" not in ch for f in fits[:2] for ch in f["fit"]["chosen"]), fits[:2]
    for ch in fits[2]["fit"]["chosen"]:
        pred = ch["predicted"]
        assert set(pred) == {"pce_pct", "log10_t80_h"}, pred
        assert all(math.isfinite(v["mean"]) and v["sd"] >= 0 and v["noise_sd"] > 0 for v in pred.values()), pred
    # the model check of `labloop pareto`: z of each measured model-round proposal, recomputed
    # here from the export
    mc = json.loads(labloop(run, "pareto", "--campaign", "1", "--json").stdout)["model_check"]
    exps = {x["id"]: x for x in doc["experiments"]}
    zs = {"pce_pct": [], "log10_t80_h": []}
    for f in fits:
        for ch in f["fit"]["chosen"]:
            x = exps.get(ch["experiment"])
            if "predicted" not in ch or x is None or x["state"] != "measured":
                continue
            for name, p in ch["predicted"].items():
                zs[name].append((x["objectives"][name] - p["mean"]) / math.hypot(p["sd"], p["noise_sd"]))
    assert mc["n"] == 2 == len(zs["pce_pct"]), (mc, zs)
    for name, z in zs.items():
        o = mc["objectives"][name]
        assert abs(o["mean_z"] - sum(z) / len(z)) < 1e-6, (name, o, z)
        assert abs(o["rms_z"] - math.sqrt(sum(v * v for v in z) / len(z))) < 1e-6, (name, o, z)
        assert o["within_2sd"] == sum(abs(v) <= 2 for v in z), (name, o, z)
    txt = labloop(run, "pareto", "--campaign", "1").stdout
    assert "model check: 2 measured experiments proposed by the models" in txt, txt
    # a stored fit record that is no longer JSON: the check says it cannot read the
    # predictions instead of reporting none; the rest of the answer stands
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    good = db.execute("SELECT fit FROM model_fits WHERE campaign_id = 1 AND round = 2").fetchone()[0]
    db.execute("UPDATE model_fits SET fit = '{broken' WHERE campaign_id = 1 AND round = 2")
    db.commit()
    r = labloop(run, "pareto", "--campaign", "1")
    assert r.returncode == 0 and "model check: unavailable: " in r.stdout and "hypervolume" in r.stdout, r
    mc = json.loads(labloop(run, "pareto", "--campaign", "1", "--json").stdout)["model_check"]
    assert mc["n"] == 0 and mc["error"], mc
    db.execute("UPDATE model_fits SET fit = ? WHERE campaign_id = 1 AND round = 2", (good,))
    db.commit()
    db.close()
    ev = labloop(run, "events", "--limit", "500").stdout
    assert "batch denied" in ev and "batch approved" in ev and "operator pause" in ev, ev
    # each measurement in the event log, beside the prediction where there was one
    measured = re.findall(r"measured: pce_pct (\S+)( \(predicted \S+ \+- \S+, z [-+][0-9.]+\))?, log10_t80_h (\S+)", ev)
    assert len(measured) == 4 and sum(1 for m in measured if m[1]) == 2, (measured, ev)
    # a second campaign: software e-stop while it runs, resume, then abort
    write_campaign(tmp, "c2.conf", initial=2, batch=2, budget=4, approval="auto", schedule="sync")
    assert labloop(run, "campaign", "start", os.path.join(tmp, "c2.conf")).returncode == 0
    sim = lambda: request("ipc://" + os.path.join(tmp, "sim", "control"), {"cmd": "status"})  # noqa: E731
    wait_for("campaign 2's first anneal", lambda: sim()["furnace_program"] == 1, every=0.01)
    r = labloop(run, "e-stop")
    t_stop = time.time()
    assert r.returncode == 0 and "SOFTWARE STOP" in r.stdout, r
    st = status(run)
    assert st["estop"] and st["campaigns"][1]["state"] == "stopped", st["campaigns"][1]
    # X4: within 2 s every instrument is in its safe state: the furnace's running program reset
    # by the command (not ended by itself), the coater neither armed nor spinning, the robot not
    # moving (not busy or paused)
    s = wait_for("every instrument safe within 2 s of the e-stop",
                 lambda: (lambda s: s if s["furnace_program"] != 1 and s["coater_state"] not in ("ARMED", "RUNNING")
                          and s["robot_state"] not in (2, 5) else None)(sim()), timeout=2, every=0.02)
    assert s["furnace_program"] == 0 and not s["furnace_program_ended"], s
    print(f"e-stop: every instrument safe {time.time() - t_stop:.2f} s after the command")
    # and nothing new starts while the stop is latched
    jobs = robot_jobs(tmp)
    time.sleep(1.0)
    assert robot_jobs(tmp) == jobs and status(run)["campaigns"][1]["state"] == "stopped"
    r = labloop(run, "campaign", "resume")
    assert r.returncode == 0, r.stderr
    st = status(run)
    assert not st["estop"] and st["campaigns"][1]["state"] == "running"
    assert labloop(run, "campaign", "abort", "2").returncode == 0
    st = status(run)
    assert st["campaigns"][1]["state"] == "aborted", st["campaigns"][1]
    # steps the e-stop aborted on the instruments end failed; the rest are abandoned
    assert set(st["campaigns"][1]["experiments"]) <= {"abandoned", "failed"}, st["campaigns"][1]
    assert labloop(run, "campaign", "resume", "2").returncode == 1  # aborted is final
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

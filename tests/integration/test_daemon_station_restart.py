#!/usr/bin/env python3
"""Stations restarting against a running labloopd (reliability.md F11, F12; docs/protocol.md).

A small perovskite campaign on labsim and labloopd. Its J-V station jv-1 is restarted twice
through labsim's control socket (`station_restart`):
  F11 mid-campaign, keeping what it persisted: the new DEALER with the same identity is let in
      (ROUTER_HANDOVER), whatever it had not got an ack for is resent, and the daemon answers
      a copy of a stored message `duplicate`;
  F12 with the campaign paused and every measurement acked, losing everything it persisted
      (seq back to 0, a new epoch), as after a disk replacement: its next measurements start
      at seq 1 again and are stored as new ones — no `rejected: conflict`, no false
      `duplicate` — and one `ingest.epoch` event says the station started a new epoch.
Then the campaign completes with every experiment measured, nothing is rejected, and the crash
tests' invariants hold (check_invariants). On a daemon without epochs the seq-1 measurements
after F12 collide with the stored ones and are rejected as conflicts, so the campaign fails to
measure them. Environment: LABSIM, LABLOOPD, LABLOOP, LL_SOURCE_DIR.
"""
import glob
import json
import os
import re
import sqlite3
import sys

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, request,  # noqa: E402
                            run_killing, start_campaign, status_json, unacked, wait_for)

procs = []


def sim(tmp, req):
    rep = request("ipc://" + os.path.join(tmp, "sim", "control"), req)
    assert rep is not None and rep.get("ok"), rep
    return rep


def stored(db_path, station="jv-1"):
    """[(epoch, seq)] of the station's stored measurements, in arrival order."""
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT epoch, seq FROM measurements WHERE station = ? ORDER BY id",
                          (station,)).fetchall()
    finally:
        db.close()


def started_steps(db_path):
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT count(*) FROM steps WHERE state = 'started'").fetchone()[0]
    finally:
        db.close()


def remeasure(tmp, db):
    """A second measurement of a request that already gave its experiment's objective (a
    station that measures a request again, e.g. after losing the answer it had sent; here a
    Python DEALER, so as not to take jv-1's identity from labsim) is stored with its derived
    numbers, but the objective stays the first one's, and a warning event says so."""
    msg = json.load(open(glob.glob(os.path.join(tmp, "sim", "stations", "jv-1", "req-*.json"))[0]))
    c = sqlite3.connect(db)
    # acked means stored; the objective follows from the analysis, which runs after the ack
    exp_id, first_pce = wait_for("the first measurement's objective", lambda: c.execute(
        "SELECT o.experiment_id, o.value FROM objectives o JOIN measurements m ON m.id = o.measurement_id "
        "WHERE m.request = ? AND o.name = 'pce_pct'", (msg["request"],)).fetchone(), timeout=30)
    c.close()
    msg.update(station="jv-1x", epoch="again1", seq=1)
    for sweep in msg["data"]["sweeps"]:
        sweep["current_ma_cm2"] = [0.8 * j for j in sweep["current_ma_cm2"]]
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"jv-1x")
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 10000)
    dealer.connect(re.search(r'stations_endpoint = "([^"]+)"', open(os.path.join(tmp, "lab.conf")).read()).group(1))
    dealer.send(json.dumps(msg).encode())
    ack = json.loads(dealer.recv())
    while ack.get("type") != "ack":
        ack = json.loads(dealer.recv())
    assert ack["status"] == "stored" and ack["epoch"] == "again1", ack
    dealer.close()
    c = sqlite3.connect(db)
    unused = wait_for("the measurement.unused event", lambda: c.execute(
        "SELECT message FROM events WHERE kind = 'measurement.unused'").fetchall())
    now = c.execute("SELECT value FROM objectives WHERE experiment_id = ? AND name = 'pce_pct'", (exp_id,)).fetchone()[0]
    derived = c.execute("SELECT d.value FROM derived d JOIN measurements m ON m.id = d.measurement_id "
                        "WHERE m.epoch = 'again1' AND d.name = 'pce_pct'").fetchone()
    c.close()
    assert now == first_pce, f"objective replaced: {first_pce} -> {now}"
    assert derived is not None and derived[0] < 0.9 * first_pce, derived
    assert len(unused) == 1 and "kept, not used" in unused[0][0], unused
    print(f"a second measurement of {msg['request']} (PCE {derived[0]:.2f} %) kept; the objective "
          f"stays {first_pce:.2f} %")


def main():
    tmp, run, daemon = start_campaign("test_daemon_station_restart", procs, initial=4, batch=2, budget=8)
    db = os.path.join(tmp, "l.db")
    old_epoch = open(os.path.join(tmp, "sim", "stations", "jv-1", "epoch")).read().strip()

    # F11: restart while the campaign runs, state kept
    wait_for("a first J-V measurement", lambda: len(stored(db)) >= 1, timeout=120, every=0.02)
    rep = sim(tmp, {"cmd": "station_restart", "name": "jv-1"})
    assert rep["epoch"] == old_epoch and rep["seq"] >= 1, rep
    print(f"F11: jv-1 restarted keeping its state (seq {rep['seq']}, epoch {rep['epoch']})")

    # F12: pause, let every running step finish and every message be acked, then lose the state
    wait_for("three J-V measurements", lambda: len(stored(db)) >= 3, timeout=180, every=0.02)
    r = labloop(run, "campaign", "pause")
    assert r.returncode == 0, r.stderr
    wait_for("no step running", lambda: started_steps(db) == 0, timeout=120)
    wait_for("every station message acked", lambda: not unacked(tmp), timeout=10)
    remeasure(tmp, db)
    before = stored(db)
    last_seq = max(seq for _, seq in before)
    rep = sim(tmp, {"cmd": "station_restart", "name": "jv-1", "lose_state": True})
    assert rep["seq"] == 0 and rep["epoch"] != old_epoch, rep
    new_epoch = rep["epoch"]
    print(f"F12: jv-1 lost its state after seq {last_seq} (epoch {old_epoch}); now epoch {new_epoch}")
    # the station's hello already names its new epoch in the daemon's status
    wait_for("the new epoch in status", lambda: {x["name"]: x["epoch"] for x in status_json(run)["stations"]}
             .get("jv-1") == new_epoch, timeout=10)
    r = labloop(run, "campaign", "resume")
    assert r.returncode == 0, r.stderr

    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] in ("completed", "failed")
                                         else None)(status_json(run)), timeout=240)
    camp = st["campaigns"][0]
    assert camp["state"] == "completed" and camp["experiments"] == {"measured": 8}, camp

    after = stored(db)
    fresh = [seq for epoch, seq in after if epoch == new_epoch]
    assert fresh and fresh[0] == 1, f"the new epoch's first stored seq: {fresh}"
    assert min(fresh) <= last_seq, "the test never reused a seq of the old epoch"
    assert all(epoch == old_epoch for epoch, _ in before), before
    c = sqlite3.connect(db)
    rejected = c.execute("SELECT reason FROM rejections").fetchall()
    assert not rejected, f"rejections: {rejected}"
    epochs = c.execute("SELECT message FROM events WHERE kind = 'ingest.epoch'").fetchall()
    conflicts = c.execute("SELECT count(*) FROM events WHERE kind = 'ingest.conflict'").fetchone()[0]
    c.close()
    assert len(epochs) == 1 and f"new sequence epoch '{new_epoch}' at seq 1" in epochs[0][0] and \
        f"'{old_epoch}' ended at seq {last_seq}" in epochs[0][0], epochs
    assert conflicts == 0
    # `labloop measurements`: each stored measurement with its origin and analysis status
    rows = json.loads(labloop(run, "measurements", "--limit", "1000", "--json").stdout)["measurements"]
    assert len(rows) == len(after) + 1 + sum(1 for x in rows if x["station"] not in ("jv-1", "jv-1x"))
    assert all(x["status"] == "ok" for x in rows), [x for x in rows if x["status"] != "ok"]
    again = [x for x in rows if x["station"] == "jv-1x"]
    assert len(again) == 1 and again[0]["objectives"] == [] and again[0]["epoch"] == "again1", again
    assert {x["epoch"] for x in rows if x["station"] == "jv-1"} == {old_epoch, new_epoch}
    text = labloop(run, "measurements", "--limit", "1000").stdout
    print("labloop measurements:\n" + "\n".join(text.splitlines()[:4]))
    assert "again1:1" in text and "(not used for an objective)" in text and f"{new_epoch}:1 " in text, text
    measured, acked = check_invariants(tmp, labsim_counts(tmp))
    assert measured == 8
    print(f"completed: 8 measured, jv-1 stored {len(after)} measurements "
          f"({len(before)} in epoch {old_epoch}, {len(fresh)} in {new_epoch}), no rejections")

    finish(daemon, procs, tmp)


if __name__ == "__main__":
    run_killing(main, procs)

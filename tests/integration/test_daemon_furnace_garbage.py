#!/usr/bin/env python3
"""Garbage from instruments (reliability.md B8) with labsim and labloopd running for real: the
furnace on the Omega/Delta-style map `vendorb` answers every read of its PV with the error code
0x8002 (labsim's `furnace.pv_error`, armed for good over its control socket) before the
campaign's first sample goes in.

  1. the reading at the furnace's door is garbage, never a temperature: no sample is loaded,
     no furnace program starts, and the campaign pauses for an instrument fault whose reason
     names the code (`labloop status --json`, the events table);
  2. the code gone and `labloop campaign resume`: the sample goes in and its anneal runs.
"""
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (finish, labloop, labsim_counts, request, start_labloopd, start_labsim,  # noqa: E402
                            status_json, wait_for, write_campaign, write_lab)

SPEED = 1000
procs = []


def paused(run):
    st = status_json(run)
    return st if st["campaigns"][0]["state"] == "paused" else None


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_furnace_garbage.")
    lab, _ = write_lab(tmp)
    text = open(lab).read()
    assert 'map = "eurotherm3216";' in text
    open(lab, "w").write(text.replace('map = "eurotherm3216";', 'map = "vendorb";'))
    start_labsim(tmp, lab, SPEED, procs)
    sim_ep = "ipc://" + os.path.join(tmp, "sim", "control")
    assert request(sim_ep, {"cmd": "fault", "name": "furnace.pv_error", "count": 1 << 40})["ok"]
    run = os.path.join(tmp, "run")
    daemon = start_labloopd(tmp, run, SPEED, procs)
    r = labloop(run, "campaign", "start", write_campaign(tmp, "c.conf", initial=2, batch=2, budget=2))
    assert r.returncode == 0, r.stderr

    # 1: paused at the door, the code named, nothing loaded
    st = wait_for("the campaign to pause for the garbage", lambda: paused(run), timeout=30)
    reason = st["campaigns"][0]["reason"]
    assert "instrument fault on furnace" in reason and "PV error code 0x8002" in reason, reason
    assert "not loaded" in reason, reason
    counts = labsim_counts(tmp)
    assert counts.get("furnace_programs", 0) == 0, counts
    assert counts["faults"]["furnace.pv_error"] >= 1, counts
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    ev = db.execute("SELECT message FROM events WHERE kind = 'fault'").fetchall()
    db.close()
    assert any("PV error code 0x8002" in m for (m,) in ev), ev
    # never a temperature: no "cooled to -3276.6" or "waiting for furnace to cool" event
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    ev = db.execute("SELECT message FROM events WHERE kind = 'furnace'").fetchall()
    db.close()
    assert not any("-3276" in m or "cool" in m for (m,) in ev), ev

    # 2: the code gone, resumed: the anneal runs
    assert request(sim_ep, {"cmd": "fault", "name": "furnace.pv_error", "count": 0})["ok"]
    assert labloop(run, "campaign", "resume").returncode == 0
    wait_for("a furnace program", lambda: labsim_counts(tmp).get("furnace_programs", 0) >= 1, timeout=60)
    finish(daemon, procs, tmp)
    print("ok test_daemon_furnace_garbage")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

#!/usr/bin/env python3
"""The coater's cable pulled between spins (reliability.md F9 for the SPN/1 coater; the furnace
case is test_daemon_serial_replug.py). labsim and labloopd run for real; once the campaign's
first spin is done, labsim's control "unplug" takes the coater's pty away for UNPLUG_S seconds
(longer than one start's call budget, 8 x 300 ms + 1 s), so the next spin's start meets a dead
line:

  1. the start's outcome is unknown (link lost): labloopd asks the coater (query) with back-off
     instead of sending RUN again or failing the step; a warning event `instrument.link` names
     the coater, and a notice says when it answers again;
  2. after the replug (a new pty behind the same symlink) the driver reopens the line; the spin
     runs once (labsim's coater runs: each job exactly once);
  3. no instrument fault and no pause (a 6 s outage is well inside the 5 failed calls the
     engine allows), the campaign completes with the crash tests' invariants.
"""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labsim_counts, request, run_killing,  # noqa: E402
                            start_campaign, status_json, wait_for)

UNPLUG_S = 6.0
procs = []


def events(tmp, kind):
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    rows = db.execute("SELECT level, message FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    db.close()
    return rows


def main():
    t0 = time.time()
    tmp, run, daemon = start_campaign("test_daemon_coater_replug", procs, initial=2, batch=2, budget=4)
    sim_ep = "ipc://" + os.path.join(tmp, "sim", "control")
    sim = lambda: request(sim_ep, {"cmd": "status"})  # noqa: E731
    link = sim()["coater_link"]
    old_dev = os.readlink(link)
    wait_for("the first spin", lambda: sum(labsim_counts(tmp).get("coater_runs", {}).values()) >= 1,
             timeout=60, every=0.005)
    runs_before = sum(labsim_counts(tmp).get("coater_runs", {}).values())
    r = request(sim_ep, {"cmd": "unplug", "name": "coater", "seconds": UNPLUG_S})
    t_unplug = time.time()
    assert r["ok"] and r["device"] == old_dev, r
    assert not sim()["coater_plugged"]

    # 1: the next spin meets the dead line: a warning, the step kept in flight
    ev = wait_for("the coater's link-lost event", lambda: events(tmp, "instrument.link"), timeout=UNPLUG_S + 10,
                  every=0.05)
    assert ev[0][0] == 4 and ev[0][1].startswith("coater: "), ev
    assert sum(labsim_counts(tmp).get("coater_runs", {}).values()) == runs_before, "a spin ran with the cable out"

    # 2: replugged; the spin runs, once
    wait_for("the replug", lambda: sim()["coater_plugged"], timeout=UNPLUG_S + 5)
    t_replug = time.time()
    assert os.readlink(link) != old_dev
    wait_for("the coater answering again", lambda: len(events(tmp, "instrument.link")) >= 2, timeout=20, every=0.05)
    ev = events(tmp, "instrument.link")
    assert ev[1][0] == 5 and ev[1][1].startswith("coater answers again after"), ev
    t_back = time.time()

    # 3: no fault, no pause; completed; every coater run once
    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] in ("completed", "paused", "failed")
                                         else None)(status_json(run)), timeout=90)
    camp = st["campaigns"][0]
    assert camp["state"] == "completed" and camp["experiments"] == {"measured": 4}, camp
    assert not events(tmp, "fault"), events(tmp, "fault")
    counts = labsim_counts(tmp)
    assert all(n == 1 for n in counts["coater_runs"].values()) and len(counts["coater_runs"]) == 4, counts
    check_invariants(tmp, counts)
    print(f"coater unplugged {t_replug - t_unplug:.1f} s; answering again {t_back - t_replug:.2f} s after the "
          f"replug; 4 measured, each spin once; test {time.time() - t0:.1f} s")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

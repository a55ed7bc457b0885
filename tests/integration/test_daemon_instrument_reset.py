#!/usr/bin/env python3
"""Clearing a latched instrument fault while labloopd runs (docs/daemon.md "Instrument faults":
`labloop instrument NAME reset` through the daemon's worker for the instrument), with labsim
and labloopd running for real:

  1. the coater's lid is opened (labsim's control socket) while it spins: the coater stops
     with E05 and latches ERROR; the spin step fails and the campaign pauses for the fault
     (status JSON and text: INSTRUMENT FAULT);
  2. a reset of an unknown instrument is refused (nonzero exit, a message naming it and the
     instruments there are);
  3. the lid closed, `labloop instrument coater reset` against the running labloopd exits 0
     and prints the outcome; an `instrument.reset` event (notice) names the coater; labsim's
     coater is no longer in ERROR; status no longer shows the fault, but the campaign is
     still paused (the operator resumes it); labloopd restarted before the resume still
     shows no fault (the stored reason says it was reset) and the campaign stays paused;
  4. `labloop campaign resume`: the campaign completes (the faulted experiment failed, the
     others measured) and the crash tests' invariants hold;
  5. meanwhile, a reset of the furnace while its anneal is in flight is refused (exit 1,
     "in flight") and changes nothing.
"""
import os
import sqlite3
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, run_killing,  # noqa: E402
                            start_campaign, start_labloopd, status_json, wait_for)

procs = []


class Sim:
    """labsim's control socket on one REQ socket (fast enough to catch a 40 ms spin)."""

    def __init__(self, tmp):
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 5000)
        self.sock.connect("ipc://" + os.path.join(tmp, "sim", "control"))

    def __call__(self, req):
        self.sock.send_json(req)
        return self.sock.recv_json()


def paused(run):
    st = status_json(run)
    return st if st["campaigns"][0]["state"] == "paused" else None


def coater_fault(st):
    return next(i for i in st["instruments"] if i["name"] == "coater").get("fault")


def main():
    t0 = time.time()
    tmp, run, daemon = start_campaign("test_daemon_instrument_reset", procs, initial=4, batch=2, budget=6)
    sim = Sim(tmp)

    # 1: open the lid while the coater spins (a spin lasts 40 ms at speed 1000)
    deadline = time.time() + 30
    while sim({"cmd": "status"})["coater_state"] != "RUNNING":
        assert time.time() < deadline, "the coater never spun"
    assert sim({"cmd": "set", "what": "lid", "value": 1})["ok"]
    st = wait_for("the campaign to pause for the coater's fault", lambda: paused(run), timeout=15)
    assert "instrument fault on coater" in st["campaigns"][0]["reason"], st["campaigns"][0]
    assert coater_fault(st), st["instruments"]
    assert sim({"cmd": "status"})["coater_state"] == "ERROR"
    text = labloop(run, "status").stdout
    assert "INSTRUMENT FAULT: coater" in text, text
    wait_for("in-flight steps to finish", lambda: not status_json(run)["in_flight"], timeout=30)

    # 2: an unknown instrument
    r = labloop(run, "instrument", "nosuch", "reset")
    assert r.returncode != 0, r
    assert "no instrument 'nosuch'" in r.stderr and "coater" in r.stderr, r.stderr

    # 3: the lid closed, the reset through labloopd
    assert sim({"cmd": "set", "what": "lid", "value": 0})["ok"]
    r = labloop(run, "instrument", "coater", "reset")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "coater: fault cleared" in r.stdout and "labloopd" in r.stdout, r.stdout
    assert sim({"cmd": "status"})["coater_state"] != "ERROR"
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    ev = db.execute("SELECT level, message FROM events WHERE kind = 'instrument.reset'").fetchall()
    db.close()
    assert len(ev) == 1 and ev[0][0] == 5 and ev[0][1].startswith("coater: "), ev
    st = status_json(run)
    assert coater_fault(st) is None, st["instruments"]
    assert st["campaigns"][0]["state"] == "paused", st["campaigns"][0]
    assert "INSTRUMENT FAULT" not in labloop(run, "status").stdout

    # 3b: a restart before the resume does not bring the fault back
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0
    procs.remove(daemon)
    daemon = start_labloopd(tmp, run, 1000, procs)
    st = status_json(run)
    assert st["campaigns"][0]["state"] == "paused", st["campaigns"][0]
    assert "reset" in st["campaigns"][0]["reason"], st["campaigns"][0]
    assert coater_fault(st) is None, st["instruments"]
    assert "INSTRUMENT FAULT" not in labloop(run, "status").stdout

    # 4 + 5: resume; while the furnace anneals, a reset of it is refused
    assert labloop(run, "campaign", "resume").returncode == 0
    refused = None
    deadline = time.time() + 60
    while time.time() < deadline:
        st = status_json(run)
        if st["campaigns"][0]["state"] == "completed":
            break
        if refused is None and any(f["instrument"] == "furnace" for f in st["in_flight"]):
            r = labloop(run, "instrument", "furnace", "reset")
            if r.returncode != 0:
                refused = r
        time.sleep(0.01)
    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] == "completed" else None)(
        status_json(run)), timeout=60)
    assert refused is not None, "never refused a reset of the furnace in flight"
    assert refused.returncode == 1 and "in flight" in refused.stderr, (refused.returncode, refused.stderr)
    assert st["campaigns"][0]["experiments"] == {"failed": 1, "measured": 5}, st["campaigns"][0]
    check_invariants(tmp, labsim_counts(tmp))
    print(f"completed {time.time() - t0:.1f} s after the start")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""Rack wells are a tracked resource (labsim + labloopd, docs/daemon.md "The rack").

A lab whose rack has 4 wells and a campaign of 6 experiments (sync, short anneals): labloopd
creates only 4 experiments (wells 0-3), runs them to the end and then stops creating: status
(JSON and text) says "rack full", the systemd STATUS= line says so, and one event is stored.
A SIGKILL + restart while the rack is full keeps it full (no new experiment, no second
event). The test then empties labsim's rack (`rack_unload`, the operator's hands) and runs
`labloop rack unloaded`: the daemon goes on, and all 6 experiments end measured. No two
samples were ever in one well at the same time: from the store (a well is reused only after
the unload that freed it) and from labsim, which refuses a dispense into a well that holds a
sample (robot error 14: the experiment would fail). Without the rack rule experiment 5 is
dispensed into well 4, which a 4-well rack does not have, or (with the old mod-96 rule and 96
wells) into an occupied well after 96.
"""
import json
import os
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (SRC, daemon_status, finish, labloop, request, run_killing,  # noqa: E402
                            start_labloopd, start_labsim, wait_for, write_lab)

SPEED = 400
WELLS = 4
BUDGET = 6
procs = []


def campaign(tmp):
    """config/perovskite.conf: 6 experiments, sync, anneals of 80-85 C for 5-6 min."""
    text = open(os.path.join(SRC, "config/perovskite.conf")).read()
    for key, value in (("batch", 2), ("initial", BUDGET), ("budget", BUDGET)):
        text, n = re.subn(rf"{key} = \d+;", f"{key} = {value};", text)
        assert n == 1, key
    text = re.sub(r'schedule = "[^"]*";', 'schedule = "sync";', text)
    text, n = re.subn(r'\{ name = "anneal_c";\s+low = [0-9.]+; high = [0-9.]+;',
                      '{ name = "anneal_c"; low = 80.0; high = 85.0;', text)
    assert n == 1, "anneal_c parameter not found in config/perovskite.conf"
    text, n = re.subn(r'\{ name = "anneal_min"; low = [0-9.]+;\s+high = [0-9.]+;',
                      '{ name = "anneal_min"; low = 5.0; high = 6.0;', text)
    assert n == 1, "anneal_min parameter not found in config/perovskite.conf"
    path = os.path.join(tmp, "rack.conf")
    open(path, "w").write(text)
    return path


class Notify:
    """A NOTIFY_SOCKET as systemd gives one: collects the STATUS= lines."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.path = path
        self.status = []

    def drain(self):
        while True:
            try:
                msg = self.sock.recv(4096).decode()
            except BlockingIOError:
                return
            for line in msg.splitlines():
                if line.startswith("STATUS="):
                    self.status.append(line[7:])


def start_daemon(tmp, run, notify):
    return start_labloopd(tmp, run, SPEED, procs, env=dict(os.environ, NOTIFY_SOCKET=notify.path))


status = daemon_status


def n_experiments(db_path):
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT count(*) FROM experiments").fetchone()[0]
    finally:
        db.close()


def rack_full_events(db_path):
    db = sqlite3.connect(db_path)
    try:
        return [m for (m,) in db.execute("SELECT message FROM events WHERE kind = 'rack' AND message "
                                         "LIKE 'rack full:%' ORDER BY id")]
    finally:
        db.close()


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_rack.")
    lab, _ = write_lab(tmp)
    text = open(lab).read()
    text, n = re.subn(r"wells = 96;", f"wells = {WELLS};", text)
    assert n == 1, "config/lab.conf has no robot 'wells = 96;'"
    open(lab, "w").write(text)
    camp = campaign(tmp)
    os.makedirs(os.path.join(tmp, "sim"))
    run = os.path.join(tmp, "run")
    db_path = os.path.join(tmp, "l.db")
    notify = Notify(os.path.join(tmp, "notify"))
    start_labsim(tmp, lab, SPEED, procs)
    sim = "ipc://" + os.path.join(tmp, "sim", "control")
    daemon = start_daemon(tmp, run, notify)
    r = labloop(run, "campaign", "start", camp)
    assert r.returncode == 0, r.stderr

    # only 4 experiments fit; once they have ended the rack is full
    def full():
        st = status(run)
        return st if st and st.get("rack", {}).get("full") else None
    st = wait_for("rack full in status", full, timeout=90, every=0.05)
    rack = st["rack"]
    assert rack["wells"] == WELLS and rack["occupied"] == WELLS and rack["free"] == 0, rack
    assert rack["occupied_wells"] == [0, 1, 2, 3], rack
    assert "rack full" in rack["message"], rack
    assert st["campaigns"][0]["state"] == "running", st["campaigns"]
    assert st["campaigns"][0]["experiments"] == {"measured": WELLS}, st["campaigns"]
    assert n_experiments(db_path) == WELLS
    out = labloop(run, "status").stdout
    assert f"RACK FULL: all {WELLS} wells hold samples" in out and "labloop rack unloaded" in out, out
    out = labloop(run, "rack").stdout
    assert f"rack: {WELLS} of {WELLS} wells hold samples, 0 free; occupied:0,1,2,3" in out, out
    ev = rack_full_events(db_path)
    assert ev == [f"rack full: all {WELLS} wells hold samples; unload the rack and run "
                  "`labloop rack unloaded`"], ev

    def status_line_full():
        notify.drain()
        status(run)  # wakes the loop, which sends STATUS= at most every 2 s when it changed
        return any("rack full" in s for s in notify.status)
    wait_for("STATUS= saying rack full", status_line_full, timeout=10, every=0.2)

    # a crash while the rack is full: the restarted daemon still knows (nothing forgotten)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    daemon = start_daemon(tmp, run, notify)
    st = wait_for("rack full after the restart", full, timeout=10)
    assert st["rack"]["occupied"] == WELLS, st["rack"]
    time.sleep(1.0)  # several passes of the restarted engine (it ticks on every request too)
    for _ in range(5):
        status(run)
    assert n_experiments(db_path) == WELLS, "an experiment was created while the rack was full"
    assert len(rack_full_events(db_path)) == 1, rack_full_events(db_path)

    # the operator empties the rack (labsim: the samples on the rack are gone), then says so
    rep = request(sim, {"cmd": "rack_unload"})
    assert rep["ok"] and rep["removed"] == WELLS, rep
    r = labloop(run, "rack", "unloaded")
    assert r.returncode == 0, r.stderr
    assert f"rack unloaded: {WELLS} finished samples' wells are free again" in r.stdout, r.stdout

    def completed():
        st = status(run)
        return st if st and st["campaigns"][0]["state"] == "completed" else None
    st = wait_for("the campaign to complete", completed, timeout=90, every=0.1)
    assert st["campaigns"][0]["experiments"] == {"measured": BUDGET}, st["campaigns"]
    assert st["rack"]["occupied"] == BUDGET - WELLS and not st["rack"]["full"], st["rack"]

    # no two samples in one well at the same time: a well is reused only after the unload
    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT id, well, created_at, unloaded_at, state FROM experiments ORDER BY id").fetchall()
    assert len(rows) == BUDGET and all(r[4] == "measured" for r in rows), rows
    assert all(0 <= r[1] < WELLS for r in rows), rows
    for a in rows:
        for b in rows:
            if a[0] < b[0] and a[1] == b[1]:
                assert a[3] is not None and b[2] >= a[3], f"experiments {a[0]} and {b[0]} shared well {a[1]}"
    assert [r[1] for r in rows] == [0, 1, 2, 3, 0, 1], rows
    failed = db.execute("SELECT count(*) FROM steps WHERE state = 'failed'").fetchone()[0]
    assert failed == 0, "a step failed (labsim refuses a dispense into an occupied well)"
    unload_ev = db.execute("SELECT message FROM events WHERE kind = 'rack' AND message LIKE 'rack unloaded:%'").fetchall()
    assert len(unload_ev) == 1 and unload_ev[0][0].startswith(f"rack unloaded: {WELLS} samples taken out"), unload_ev
    assert len(rack_full_events(db_path)) == 1
    # a campaign held back by the rack writes nothing at its passes (each round ends once)
    ends = [m for (m,) in db.execute("SELECT message FROM events WHERE kind = 'round' AND message LIKE "
                                     "'round % finished:%'")]
    rounds = [m.split(":")[0] for m in ends]
    assert len(rounds) == len(set(rounds)) and len(rounds) >= 1, ends
    db.close()
    # labsim: the two samples made after the unload, in wells 0 and 1, each measured
    samples = request(sim, {"cmd": "samples"})["samples"]
    assert sorted(s["well"] for s in samples) == [0, 1], samples
    assert all(s["measurements"] == 2 for s in samples), samples

    finish(daemon, procs, tmp)
    print("ok: 4 wells, 6 experiments, wells " + json.dumps([r[1] for r in rows]))


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""A furnace still hot from a hotter anneal waits before it takes the next sample (labsim +
labloopd, docs/daemon.md "A hot furnace waits before loading").

Two campaigns force a hot anneal followed by a cool one: campaign 1 anneals two samples at
145-150 C; once its first anneal runs, campaign 2 starts with one sample at 40-42 C. Its move
into the furnace must wait until the furnace has cooled to <= setpoint + load_tolerance_c
(5 C); the lab here sets load_wait_warn_min = 1, so the wait (~8 instrument minutes) also
gives the warning. During the wait the test checks `status` (the furnace's `cooling`), kills
labloopd with SIGKILL, checks that the move is still pending in the store (no intent was
written), restarts it and checks that it waits again. At the end, from labsim's record of
each sample (`samples`: furnace_profile, the true temperature while the sample was inside):
no sample saw more than its setpoint + tolerance + 2 C (control overshoot); and the events
are stored. Without the wait the cool sample enters the furnace at ~145 C and the test fails.
"""
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (SRC, daemon_status, finish, labloop, request, run_killing,  # noqa: E402
                            start_labloopd, start_labsim, wait_for, write_lab)

SPEED = 250
TOLERANCE = 5.0
OVERSHOOT = 2.0
procs = []


def campaign(tmp, name, budget, anneal_low, anneal_high):
    """config/perovskite.conf as a one-round campaign with the anneal temperature in
    [anneal_low, anneal_high] and 5-6 min dwells."""
    text = open(os.path.join(SRC, "config/perovskite.conf")).read()
    text = re.sub(r'name = "perovskite-pce-t80";', f'name = "{name}";', text)
    for key, value in (("batch", 1), ("initial", budget), ("budget", budget)):
        text = re.sub(rf"{key} = \d+;", f"{key} = {value};", text)
    text = re.sub(r'schedule = "[^"]*";', 'schedule = "sync";', text)
    text, n = re.subn(r'\{ name = "anneal_c";\s+low = [0-9.]+; high = [0-9.]+;',
                      f'{{ name = "anneal_c"; low = {anneal_low:.1f}; high = {anneal_high:.1f};', text)
    assert n == 1, "anneal_c parameter not found in config/perovskite.conf"
    text, n = re.subn(r'\{ name = "anneal_min"; low = [0-9.]+;\s+high = [0-9.]+;',
                      '{ name = "anneal_min"; low = 5.0; high = 6.0;', text)
    assert n == 1, "anneal_min parameter not found in config/perovskite.conf"
    path = os.path.join(tmp, name + ".conf")
    open(path, "w").write(text)
    return path


def start_daemon(tmp, run):
    return start_labloopd(tmp, run, SPEED, procs)


status = daemon_status


def furnace_cooling(run):
    """The furnace's wait for the cool sample, from status (a hot sample may wait briefly
    for the other hot one too; that one is not it)."""
    st = status(run)
    if st is None:
        return None
    for ins in st.get("instruments", []):
        if ins["name"] == "furnace" and ins.get("cooling", {}).get("setpoint_c", 1e9) < 100.0:
            return ins["cooling"]
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_furnace_cool.")
    lab, _ = write_lab(tmp)
    text = open(lab).read()
    text, n = re.subn(r"load_wait_warn_min = [0-9.]+;", "load_wait_warn_min = 1.0;", text)
    assert n == 1, "config/lab.conf has no load_wait_warn_min"
    open(lab, "w").write(text)
    hot = campaign(tmp, "hot", 2, 145.0, 150.0)
    cool = campaign(tmp, "cool", 1, 40.0, 42.0)
    run = os.path.join(tmp, "run")
    start_labsim(tmp, lab, SPEED, procs)
    sim = "ipc://" + os.path.join(tmp, "sim", "control")
    daemon = start_daemon(tmp, run)
    assert labloop(run, "campaign", "start", hot).returncode == 0

    # the cool campaign once the first hot anneal runs, so that its sample comes after a hot one
    def hot_anneal_running():
        st = status(run)
        return st and any(f["instrument"] == "furnace" for f in st["in_flight"])
    wait_for("the first hot anneal", hot_anneal_running, timeout=60, every=0.01)
    r = labloop(run, "campaign", "start", cool)
    assert r.returncode == 0, r.stderr

    # the cool sample waits at the furnace's door: status shows it
    cooling = wait_for("the furnace wait in status", lambda: furnace_cooling(run), timeout=60, every=0.01)
    assert cooling["limit_c"] == cooling["setpoint_c"] + TOLERANCE, cooling
    assert 40.0 <= cooling["setpoint_c"] <= 42.0, cooling
    assert cooling["pv_c"] is None or cooling["pv_c"] > cooling["limit_c"], cooling
    exp = cooling["experiment"]
    move = cooling["move_step"]

    # a crash while it waits: nothing was moved, the move is still pending; a restart waits again
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    db = sqlite3.connect(os.path.join(tmp, "l.db"))
    row = db.execute("SELECT experiment_id, action, state, params FROM steps WHERE id = ?", (move,)).fetchone()
    assert row[0] == exp and row[1] == "move" and json.loads(row[3])["to"] == "furnace", row
    assert row[2] == "pending", f"the move into the furnace is {row[2]} after a crash during the wait"
    db.close()
    daemon = start_daemon(tmp, run)
    # the restarted daemon waits again, and the plain `labloop status` says so
    def text_shows_wait():
        out = labloop(run, "status").stdout
        return out if f"experiment {exp} waits for it to cool to <= " in out else None
    text = wait_for("the wait in `labloop status`", text_shows_wait, timeout=30, every=0.01)
    assert "furnace: experiment" in text, text

    # both campaigns complete
    def completed():
        st = status(run)
        return st if st and [c["state"] for c in st["campaigns"]] == ["completed", "completed"] else None
    st = wait_for("both campaigns to complete", completed, timeout=120, every=0.1)
    assert [c["experiments"] for c in st["campaigns"]] == [{"measured": 2}, {"measured": 1}], st["campaigns"]

    # every sample's furnace history, as labsim recorded it
    samples = request(sim, {"cmd": "samples"})["samples"]
    db = sqlite3.connect(os.path.join(tmp, "l.db"))
    asked = {w: json.loads(p)["anneal_c"] for w, p in db.execute("SELECT well, params FROM experiments")}
    assert len(samples) == 3 and all(s["furnace_profile"] for s in samples), samples
    for s in samples:
        sp = asked[s["well"]]
        hottest = max(t for _, t in s["furnace_profile"])
        assert hottest <= sp + TOLERANCE + OVERSHOOT, \
            f"sample in well {s['well']} (anneal at {sp:.1f} C) saw {hottest:.1f} C in the furnace"
    # the cool sample did come after a hot anneal (what this test is about)
    anneals = db.execute("SELECT s.experiment_id, s.params FROM steps s WHERE s.action = 'anneal' "
                         "AND s.state = 'done' ORDER BY s.started_at").fetchall()
    sps = [(e, json.loads(p)["setpoint_c"]) for e, p in anneals]
    assert sps[-1][0] == exp and sps[-2][1] > sps[-1][1] + 100, sps
    sp = sps[-1][1]

    # the events: waiting (before and after the restart: the wait is ~2 s of real time and the
    # restart takes well under one), the warning, and the end of the wait with its length
    ev = db.execute("SELECT level, message FROM events WHERE kind = 'furnace' AND experiment_id = ? "
                    "ORDER BY id", (exp,)).fetchall()
    waits = [m for _, m in ev if m.startswith("waiting for furnace to cool from ")]
    for m in waits:
        x, y = map(float, re.search(r"from ([0-9.]+) °C to <= ([0-9.]+) °C before loading experiment "
                                    + str(exp) + r"\b", m).groups())
        assert x > y and abs(y - sp - TOLERANCE) < 0.051, m
    assert len(waits) == 2, ev
    done = [m for _, m in ev if m.startswith("furnace cooled to ")]
    assert len(done) == 1, ev
    waited = float(re.search(r"after waiting ([0-9.]+) min", done[0]).group(1))
    assert waited > 0.5, done
    warned = [(lvl, m) for lvl, m in ev if m.startswith("furnace still at ")]
    assert warned and warned[0][0] == 4 and "keeps waiting" in warned[0][1], ev
    db.close()

    finish(daemon, procs, tmp)
    print("ok: waited %.1f min, %d wait event(s), samples at most setpoint + %.0f C" % (waited, len(waits), TOLERANCE))


if __name__ == "__main__":
    run_killing(main, procs)

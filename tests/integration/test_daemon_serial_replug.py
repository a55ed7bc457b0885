#!/usr/bin/env python3
"""Serial unplug and replug (reliability.md §4.2 F9) with labsim and labloopd running for real:
the furnace's cable is pulled for 10 s while it anneals the campaign's first sample (labsim's
control "unplug": its pty master closes, so labloopd's side of the line sees a hang-up / EIO,
and the symlink lab.conf names disappears), then a new pty appears under another /dev/pts
name behind the same symlink.

  1. the link loss is seen: at the first failed poll labloopd stores and logs a warning event
     `instrument.link` ("furnace: link lost: …"), and a notice one when the furnace answers
     again, with the length of the outage;
  2. labloopd does not spin while the line is gone: its CPU time (utime + stime of
     /proc/PID/stat) over the unplug stays below 20 % of one core;
  3. the driver reopens the symlink with back-off and finds the new pty: the anneal step in
     flight is settled within RECONNECT_MAX_S of the replug;
  4. the in-flight step is reconciled: the furnace program kept running inside labsim while
     the cable was out and ended by itself (program-end bit), and the step is recorded done
     (not failed, not started again: one furnace program per anneal step);
  5. a 10 s unplug rides through: no instrument fault, no pause (the engine counts an
     instrument unusable after ENGINE_LINK_FAULT_CALLS = 5 failed polls in a row, each
     retried by the driver for its call budget, 8 x 500 ms + 1 s for the furnace: about 25 s
     of a dead line; docs/daemon.md "Instrument faults"), and the campaign completes with the
     crash tests' invariants (each robot job and coater run once, each anneal once).
"""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, request, run_killing,  # noqa: E402
                            start_campaign, status_json, wait_for)

SPEED = 1000
UNPLUG_S = 10.0
CPU_MAX = 0.20          # of one core, over the unplug
RECONNECT_MAX_S = 6.0   # replug -> step settled (reconnect back-off <= 4 s, plus a poll)
procs = []


def cpu_s(pid):
    """utime + stime of pid in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def furnace_steps(tmp):
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    rows = db.execute("SELECT id, state, result FROM steps WHERE instrument = 'furnace' ORDER BY id").fetchall()
    db.close()
    return rows


def link_events(tmp):
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    rows = db.execute("SELECT level, message FROM events WHERE kind = 'instrument.link' ORDER BY id").fetchall()
    db.close()
    return rows


def fault_events(tmp):
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    rows = db.execute("SELECT message FROM events WHERE kind = 'fault'").fetchall()
    db.close()
    return rows


def main():
    t0 = time.time()
    tmp, run, daemon = start_campaign("test_daemon_serial_replug", procs, SPEED, initial=2, batch=2, budget=2)
    sim_ep = "ipc://" + os.path.join(tmp, "sim", "control")
    sim = lambda: request(sim_ep, {"cmd": "status"})  # noqa: E731
    link = sim()["furnace_link"]
    conf = open(os.path.join(tmp, "sim", "lab.conf")).read()
    assert f'device = "{link}";' in conf, "lab.conf does not name the furnace's symlink"
    old_dev = os.readlink(link)

    wait_for("the first anneal", lambda: sim()["furnace_program"] == 1, timeout=60, every=0.005)
    # the answer to "run" crosses the line ~16 ms after labsim applied it (9600 baud, labsim's
    # line timing): pull the cable once the driver has sent its next request (the first poll),
    # so the cable goes while the anneal runs, not while its start waits for that answer
    frames = sim()["lines"][0]["frames"]
    wait_for("the first poll", lambda: sim()["lines"][0]["frames"] > frames, timeout=10, every=0.002)
    started = [sid for sid, state, _ in furnace_steps(tmp) if state == "started"]
    assert len(started) == 1, furnace_steps(tmp)
    step_id = started[0]
    step = lambda: next(row for row in furnace_steps(tmp) if row[0] == step_id)  # noqa: E731
    cpu0, t_unplug = cpu_s(daemon.pid), time.time()
    r = request(sim_ep, {"cmd": "unplug", "name": "furnace", "seconds": UNPLUG_S})
    assert r["ok"] and r["device"] == old_dev, r
    s = sim()
    assert not s["furnace_plugged"] and not os.path.lexists(link), s
    assert s["furnace_program"] == 1, "the anneal was not running when the cable was pulled"

    # 1: labloopd notices at the first failed poll: a warning event (and log line) names the
    # furnace and the lost link; the step stays in flight
    link_ev = wait_for("the link-lost event", lambda: link_events(tmp), timeout=UNPLUG_S - 1, every=0.1)
    assert link_ev[0][0] == 4 and link_ev[0][1].startswith("furnace: link lost"), link_ev
    assert "instrument.link" in open(os.path.join(tmp, "labloopd.log")).read()
    assert "instrument=furnace event=unplugged" in open(os.path.join(tmp, "labsim.log")).read()
    # the controller goes on without its cable: the program ends by itself
    wait_for("the anneal to end inside labsim", lambda: sim()["furnace_program_ended"], timeout=UNPLUG_S)
    assert step()[1] == "started", "the step was settled with the cable out"

    # 2: the replug; labloopd's CPU time meanwhile
    s = wait_for("the replug", lambda: (lambda s: s if s["furnace_plugged"] else None)(sim()), timeout=UNPLUG_S + 5)
    t_replug = time.time()
    cpu = (cpu_s(daemon.pid) - cpu0) / (t_replug - t_unplug)
    new_dev = os.readlink(link)
    assert new_dev == s["furnace_device"] and new_dev != old_dev, (old_dev, new_dev, s)

    # 3 + 4: reconnected through the symlink; the step in flight is reconciled as done
    wait_for("the anneal step to be settled", lambda: step()[1] != "started", timeout=RECONNECT_MAX_S + 10,
             every=0.02)
    t_settled = time.time()
    _, state, result = step()
    assert state == "done", (step_id, state, result)
    reconnect_s = t_settled - t_replug
    assert reconnect_s <= RECONNECT_MAX_S, f"the step was settled {reconnect_s:.1f} s after the replug"
    assert cpu < CPU_MAX, f"labloopd used {100 * cpu:.0f} % of a core while the furnace was unplugged"

    # the end of the outage is said once too, with its length
    ev = link_events(tmp)
    assert len(ev) == 2 and ev[1][0] == 5 and ev[1][1].startswith("furnace answers again after"), ev

    # 5: no fault, no pause; the campaign completes; everything ran once
    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] in ("completed", "paused")
                                         else None)(status_json(run)), timeout=60)
    assert st["campaigns"][0]["state"] == "completed", st["campaigns"][0]
    assert not fault_events(tmp), fault_events(tmp)
    fur = next(i for i in st["instruments"] if i["name"] == "furnace")
    assert not fur.get("fault"), fur
    steps = furnace_steps(tmp)
    counts = labsim_counts(tmp)
    assert all(state == "done" for _, state, _ in steps), steps
    assert counts["furnace_programs"] == len(steps), (counts["furnace_programs"], steps)
    check_invariants(tmp, counts)
    text = labloop(run, "status").stdout
    assert "completed" in text, text
    print(f"unplugged {t_replug - t_unplug:.1f} s: labloopd CPU {100 * cpu:.1f} % of a core; "
          f"anneal step settled {reconnect_s:.2f} s after the replug ({old_dev} -> {new_dev}); "
          f"test {time.time() - t0:.1f} s")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

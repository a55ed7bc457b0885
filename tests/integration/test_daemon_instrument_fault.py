#!/usr/bin/env python3
"""Fault means safe state (reliability.md §4.5 X5, F21) with labsim and labloopd running for
real: a persistent furnace sensor break (labsim's `furnace.sensor_break`, armed for good over
its control socket) while the furnace anneals the campaign's first sample.

  1. the anneal step fails with the fault and the furnace is in its safe state (labsim: program
     reset by a command, not ended by itself; the safe setpoint 25 °C active);
  2. the campaign pauses with a reason naming the furnace and the sensor break: `labloop
     status` (JSON and text), the events table (kind `fault`), labloopd's log and its systemd
     STATUS= line say so, also after a restart of labloopd;
  3. the other instruments finish their current step and no new step starts anywhere: once
     nothing is in flight, labsim's robot jobs, coater runs and furnace programs stay put;
  4. `labloop campaign resume` with the fault still there: the sample waiting to go into the
     furnace is not loaded, the campaign pauses again at once (no furnace program started):
     a resume costs no sample on a broken instrument;
  5. the fault cleared and `resume`: the campaign completes, the faulted experiment recorded
     failed with the fault as its reason, and the crash tests' invariants hold.
"""
import os
import socket
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, jobs_run, labloop, labsim_counts, request,  # noqa: E402
                            run_killing, start_labloopd, start_labsim, status_json, wait_for, write_campaign,
                            write_lab)

SPEED = 1000
SAFE_C = 25.0
procs = []


class Notify:
    """A NOTIFY_SOCKET as systemd gives one: the STATUS= lines labloopd sends."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.path = path

    def status_lines(self):
        out = []
        while True:
            try:
                msg = self.sock.recv(4096).decode()
            except BlockingIOError:
                return out
            out += [ln[7:] for ln in msg.splitlines() if ln.startswith("STATUS=")]


def wait_status_line(run, notify, part):
    """Waits for a STATUS= line containing part (labloopd sends one at most every 2 s, when the
    summary changed; a status request wakes its loop)."""
    def seen():
        status_json(run)
        return any(part in ln for ln in notify.status_lines())
    wait_for(f"STATUS= saying '{part}'", seen, timeout=10, every=0.2)


def work_done(tmp):
    """Robot jobs + coater runs + furnace programs that labsim executed."""
    c = labsim_counts(tmp)
    return jobs_run(c) + c.get("furnace_programs", 0)


def paused(run):
    st = status_json(run)
    return st if st["campaigns"][0]["state"] == "paused" else None


def fault_pauses(tmp):
    """Events that paused the campaign for an instrument fault."""
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    n = db.execute("SELECT count(*) FROM events WHERE kind = 'fault' AND message LIKE '%paused%'").fetchone()[0]
    db.close()
    return n


def settle_and_hold(tmp, run):
    """Waits until nothing is in flight (the other instruments finished their step), then
    asserts that no instrument starts anything for 1 s."""
    wait_for("in-flight steps to finish", lambda: not status_json(run)["in_flight"], timeout=30)
    n = work_done(tmp)
    time.sleep(1.0)  # 1000 simulated seconds: a robot job takes 2-5, a spin 40
    assert work_done(tmp) == n, "a step started while the campaign was paused for the fault"
    assert status_json(run)["campaigns"][0]["state"] == "paused"


def broke(text):
    """Whether text names the sensor break. A poll can catch the break between its status and
    its PV read: then the status bit is still clear and the PV already at full scale (raw
    0x7FFF, 3276.7 C), which the driver reports as an INVALID PV outside the map's range
    instead; both are the same fault."""
    return "sensor break" in text or "0x7FFF (3276.7 C) is outside the range" in text


def main():
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="test_daemon_instrument_fault.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    run = os.path.join(tmp, "run")
    notify = Notify(os.path.join(tmp, "notify"))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    daemon = start_labloopd(tmp, run, SPEED, procs, env=env)
    r = labloop(run, "campaign", "start", write_campaign(tmp, "c.conf", initial=4, batch=4, budget=4))
    assert r.returncode == 0, r.stderr
    sim_ep = "ipc://" + os.path.join(tmp, "sim", "control")
    sim = lambda: request(sim_ep, {"cmd": "status"})  # noqa: E731
    wait_for("the first anneal", lambda: sim()["furnace_program"] == 1, timeout=60, every=0.005)
    assert request(sim_ep, {"cmd": "fault", "name": "furnace.sensor_break", "count": 1 << 40})["ok"]

    # 1 + 2: the step fails, the furnace is safe, the campaign pauses and says why
    st = wait_for("the campaign to pause for the fault", lambda: paused(run), timeout=15)
    camp = st["campaigns"][0]
    assert "instrument fault on furnace" in camp["reason"] and broke(camp["reason"]), camp
    fur = next(i for i in st["instruments"] if i["name"] == "furnace")
    assert broke(fur.get("fault", "")), fur
    s = sim()
    assert s["furnace_program"] == 0 and not s["furnace_program_ended"], s  # reset by the driver
    assert abs(s["furnace_sp_active_c"] - SAFE_C) < 1e-6, s
    text = labloop(run, "status").stdout
    assert "paused" in text and "instrument fault on furnace" in text, text
    assert "INSTRUMENT FAULT" in text and "labloop campaign resume" in text, text
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    step = db.execute("SELECT experiment_id, result FROM steps WHERE instrument = 'furnace' AND "
                      "state = 'failed'").fetchall()
    assert len(step) == 1 and broke(step[0][1]) and "safe state commanded" in step[0][1], step
    faulted_exp = step[0][0]
    ev = db.execute("SELECT message FROM events WHERE kind = 'fault'").fetchall()
    assert any("furnace" in m and broke(m) and "paused" in m for (m,) in ev), ev
    db.close()
    log = open(os.path.join(tmp, "labloopd.log")).read()
    assert any(ln.startswith("<3>") and "fault" in ln and "furnace" in ln for ln in log.splitlines()), log[-2000:]

    wait_status_line(run, notify, "PAUSED by a fault of furnace")

    # 3: the others finish their step, nothing new starts
    settle_and_hold(tmp, run)
    programs = labsim_counts(tmp)["furnace_programs"]

    # the pause and its reason survive a restart of labloopd
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0
    procs.remove(daemon)
    daemon = start_labloopd(tmp, run, SPEED, procs, env=env)
    st = status_json(run)
    assert st["campaigns"][0]["state"] == "paused", st["campaigns"][0]
    assert "instrument fault on furnace" in st["campaigns"][0]["reason"], st["campaigns"][0]
    fur = next(i for i in st["instruments"] if i["name"] == "furnace")
    assert broke(fur.get("fault", "")), fur
    wait_status_line(run, notify, "PAUSED by a fault of furnace")
    settle_and_hold(tmp, run)
    t_first = time.time() - t0

    # 4: resumed with the fault still there: paused again before any sample goes in
    n_pauses = fault_pauses(tmp)
    assert labloop(run, "campaign", "resume").returncode == 0
    st = wait_for("the second pause", lambda: fault_pauses(tmp) > n_pauses and paused(run), timeout=15)
    assert "instrument fault on furnace" in st["campaigns"][0]["reason"], st["campaigns"][0]
    settle_and_hold(tmp, run)
    assert labsim_counts(tmp)["furnace_programs"] == programs, "a sample went into the faulted furnace"

    # 5: the operator fixes it (the break stops; the last one lasts 30 simulated seconds)
    assert request(sim_ep, {"cmd": "fault", "name": "furnace.sensor_break", "count": 0})["ok"]
    t_fix = sim()["sim_time_s"]
    wait_for("the sensor break to end", lambda: sim()["sim_time_s"] > t_fix + 31.0, timeout=10)
    assert labloop(run, "campaign", "resume").returncode == 0
    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] == "completed" else None)(
        status_json(run)), timeout=60)
    assert st["campaigns"][0]["experiments"] == {"failed": 1, "measured": 3}, st["campaigns"][0]
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    state, reason = db.execute("SELECT state, reason FROM experiments WHERE id = ?", (faulted_exp,)).fetchone()
    db.close()
    assert state == "failed" and "furnace anneal" in reason and broke(reason), (state, reason)
    check_invariants(tmp, labsim_counts(tmp))
    print(f"paused and held {t_first:.1f} s after the start; completed {time.time() - t0:.1f} s after it")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""The robot's Modbus TCP link dropped and stalled mid-job (reliability.md §4.2 F10) with
labsim and labloopd running for real. Two outages of OUTAGE_S in one campaign, each begun by
labsim right after it has answered a job START (a fault rule armed through the control
socket, `@fc=16`: the robot driver's only FC16 is the job block), so that the job is
accepted, the step is in flight, and the job runs and ends inside labsim while labloopd
cannot see it:

  A. drop (`robot.unplug:MS`): labsim closes the connection and its listener, so that
     reconnects are refused until the replug;
  B. stall, a half-open connection (`robot.stall:MS`): labsim keeps the connection open but
     never answers on it again, and new connections wait unserved in the listener's backlog
     until MS is over; then new connections are served. Only a client that gives up the
     mute connection and opens a new one gets an answer again.

For each:
  1. the outage is seen at the first failed poll: a warning event `instrument.link`
     ("robot: link lost: …" / "robot: no answer: …"), and a notice one when the robot answers
     again, with the outage's length;
  2. labloopd does not spin meanwhile: its CPU time (utime + stime of /proc/PID/stat) over
     the outage stays below 20 % of one core;
  3. the job is reconciled through the job-id registers: the step is settled done within
     RECONNECT_MAX_S of the link's return (LAST_DONE_JOB_ID is its job id), and the job is not
     sent again (labsim ran it once);
  4. an outage of OUTAGE_S rides through: no instrument fault, no pause (5 failed polls in a
     row make one, about 25 s; docs/daemon.md "Instrument faults"); the campaign completes
     with the crash tests' invariants (each robot job and coater run once).
"""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, request, run_killing,  # noqa: E402
                            start_campaign, status_json, wait_for)

SPEED = 1000
OUTAGE_S = 8.0
CPU_MAX = 0.20          # of one core, over the outage
RECONNECT_MAX_S = 6.0   # link back -> step settled (reconnect back-off <= 4 s, plus a call)
procs = []


def cpu_s(pid):
    """utime + stime of pid in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def query(tmp, sql, args=()):
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    rows = db.execute(sql, args).fetchall()
    db.close()
    return rows


def outage(tmp, daemon, sim_ep, kind):
    """One outage of kind "unplug" or "stall" begun right after the next job START; returns
    (outage s, settle s after the link's return, CPU share, job id)."""
    sim = lambda: request(sim_ep, {"cmd": "status"})  # noqa: E731
    counter = "robot_unplugs" if kind == "unplug" else "robot_stalls"
    before = sim()[counter]
    n_events = len(query(tmp, "SELECT id FROM events WHERE kind = 'instrument.link'"))
    r = request(sim_ep, {"cmd": "fault", "rule": f"robot.{kind}:{int(OUTAGE_S * 1000)}@fc=16"})
    assert r and r["ok"], r
    s = wait_for(f"the robot {kind} at a job start", lambda: (lambda s: s if s[counter] > before else None)(sim()),
                 timeout=60, every=0.002)
    t_down, cpu0 = time.time(), cpu_s(daemon.pid)
    job = s["robot_accepted_job"]
    assert job > 0, s
    step = lambda: query(tmp, "SELECT id, state, result FROM steps WHERE instrument = 'robot' AND job = ?",  # noqa: E731
                         (job,))
    assert len(step()) == 1, (job, step())
    assert kind == "stall" or not s["robot_plugged"], s

    # 1: seen at the first failed poll; the step stays in flight
    ev = wait_for(f"the {kind} event", lambda: query(
        tmp, "SELECT level, message FROM events WHERE kind = 'instrument.link' ORDER BY id")[n_events:],
        timeout=OUTAGE_S - 1, every=0.05)
    want = "robot: link lost" if kind == "unplug" else "robot: no answer"
    assert ev[0][0] == 4 and ev[0][1].startswith(want), ev
    # the robot goes on without its link: the job ends inside labsim
    wait_for("the job to end inside labsim", lambda: sim()["robot_last_done_job"] == job, timeout=OUTAGE_S - 1)
    assert step()[0][1] == "started", f"the step was settled during the {kind}: {step()}"

    # 2: the link returns; labloopd's CPU time meanwhile
    if kind == "unplug":
        wait_for("the replug", lambda: sim()["robot_plugged"], timeout=OUTAGE_S + 5, every=0.01)
    else:
        wait_for("the stall's end", lambda: not sim()["robot_stalled"], timeout=OUTAGE_S + 5, every=0.01)
    t_up = time.time()
    cpu = (cpu_s(daemon.pid) - cpu0) / (t_up - t_down)

    # 3: the step is settled from the job-id registers, the job not sent again
    wait_for(f"the step of job {job} to be settled", lambda: step()[0][1] != "started",
             timeout=RECONNECT_MAX_S + 20, every=0.02)
    settle = time.time() - t_up
    assert step()[0][1] == "done", step()
    assert settle <= RECONNECT_MAX_S, f"the step was settled {settle:.1f} s after the link came back"
    assert cpu < CPU_MAX, f"labloopd used {100 * cpu:.0f} % of a core during the {kind}"
    assert labsim_counts(tmp)["robot_jobs"].get(str(job)) == 1, (job, labsim_counts(tmp)["robot_jobs"])
    ev = query(tmp, "SELECT level, message FROM events WHERE kind = 'instrument.link' ORDER BY id")[n_events:]
    assert len(ev) == 2 and ev[1][0] == 5 and ev[1][1].startswith("robot answers again after"), ev
    return t_up - t_down, settle, cpu, job


def main():
    t0 = time.time()
    tmp, run, daemon = start_campaign("test_daemon_robot_link", procs, SPEED, initial=2, batch=2, budget=4)
    sim_ep = "ipc://" + os.path.join(tmp, "sim", "control")
    results = {kind: outage(tmp, daemon, sim_ep, kind) for kind in ("unplug", "stall")}
    log = open(os.path.join(tmp, "labsim.log")).read()
    assert "instrument=robot event=unplugged" in log and "instrument=robot event=stalled" in log

    # 4: no fault, no pause; the campaign completes; every job ran once
    st = wait_for("completion", lambda: (lambda s: s if s["campaigns"][0]["state"] in ("completed", "paused")
                                         else None)(status_json(run)), timeout=120)
    assert st["campaigns"][0]["state"] == "completed", st["campaigns"][0]
    faults = query(tmp, "SELECT message FROM events WHERE kind = 'fault'")
    assert not faults, faults
    robot = next(i for i in st["instruments"] if i["name"] == "robot")
    assert not robot.get("fault"), robot
    check_invariants(tmp, labsim_counts(tmp))
    assert "completed" in labloop(run, "status").stdout
    for kind, (down, settle, cpu, job) in results.items():
        print(f"{kind}: job {job}, robot link out {down:.1f} s, labloopd CPU {100 * cpu:.1f} % of a core, "
              f"step settled done {settle:.2f} s after the link came back")
    print(f"test {time.time() - t0:.1f} s")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

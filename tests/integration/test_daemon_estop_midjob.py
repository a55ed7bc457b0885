#!/usr/bin/env python3
"""Software e-stop with the robot and the coater mid-job (reliability.md X4; test_daemon_control
stops a campaign while the furnace anneals and the others are idle). labsim and labloopd run
for real; labsim is slowed to speed 20 so that a robot job lasts about a second and a spin a
few seconds, long enough to be caught running:

  1. the robot busy with a job: `labloop e-stop`; within 2 s the robot is neither busy nor
     paused (ABORT reached it), the campaign is stopped and latched, nothing new starts for 1 s;
  2. the ABORT leaves the robot in ERROR: resumed, the next experiment's first step is refused;
     it goes back to pending (the robot never accepted the job, its sample is untouched), so
     only the experiment the stop cut off has failed, and the campaign pauses for the robot's
     fault until `labloop instrument robot reset` and a resume (before 2026-11-26 the refused
     experiment failed too);
  3. the coater spinning: `labloop e-stop`; within 2 s the coater is neither armed nor running
     (ABORT), the robot idle; the spin's experiment fails, and its clean-up move, refused while
     the robot is latched, also goes back to pending and brings the sample back after the
     reset (before, it failed and left the sample on the coater, where the next experiment's
     move collided with it: robot error 14);
  4. resumed at full speed (instruments left latched reset as their pauses ask), the campaign
     completes: every failed experiment is one whose step a stop aborted, no step failed
     because a latched instrument refused it, at least one experiment measured; the crash
     tests' invariants hold (every robot job and coater run executed once).
Prints how long each instrument took to reach its safe state.
"""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, request, run_killing,  # noqa: E402
                            start_campaign, status_json, wait_for)

procs = []
ROBOT_MOVING = (2, 5)  # busy, paused


def stop_while(run, sim, what, caught, safe):
    """Waits until caught(labsim status), e-stops, and waits up to 2 s for safe(status); returns
    the seconds it took."""
    wait_for(what, lambda: caught(sim()), timeout=60, every=0.005)
    r = labloop(run, "e-stop")
    t = time.time()
    assert r.returncode == 0 and "SOFTWARE STOP" in r.stdout, r
    s = wait_for(f"safe state within 2 s of the e-stop ({what})", lambda: (lambda s: s if safe(s) else None)(sim()),
                 timeout=2, every=0.01)
    took = time.time() - t
    st = status_json(run)
    assert st["estop"] and st["campaigns"][0]["state"] == "stopped", st["campaigns"][0]
    return took, s


def reset_and_resume(run, instrument):
    r = labloop(run, "instrument", instrument, "reset")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert labloop(run, "campaign", "resume").returncode == 0


def main():
    tmp, run, daemon = start_campaign("test_daemon_estop_midjob", procs, initial=4, batch=2, budget=4,
                                      approval="auto")
    sim = lambda: request("ipc://" + os.path.join(tmp, "sim", "control"), {"cmd": "status"})  # noqa: E731
    simset = lambda v: request("ipc://" + os.path.join(tmp, "sim", "control"),  # noqa: E731
                               {"cmd": "set", "what": "speed", "value": v})
    assert simset(20)["ok"]

    took, s = stop_while(run, sim, "the robot busy with a job", lambda s: s["robot_state"] == 2,
                         lambda s: s["robot_state"] not in ROBOT_MOVING)
    print(f"e-stop with the robot mid-job: robot safe after {took:.2f} s (state {s['robot_state']})")
    jobs = labsim_counts(tmp).get("robot_jobs", {})
    time.sleep(1.0)
    assert labsim_counts(tmp).get("robot_jobs", {}) == jobs, "a robot job started while the stop was latched"
    # the ABORT left the robot in ERROR (error 40, aborted): after the resume the next
    # experiment's first step is refused; its sample is untouched, so that experiment is not
    # lost: the step goes back to pending (the robot never accepted the job) and the campaign
    # pauses for the fault until the robot is reset
    assert labloop(run, "campaign", "resume").returncode == 0
    st = wait_for("the pause for the robot's fault", lambda: (lambda s: s if s["campaigns"][0]["state"] == "paused"
                                                              else None)(status_json(run)), timeout=10)
    camp = st["campaigns"][0]
    assert "instrument fault on robot" in camp["reason"] and "ERROR" in camp["reason"], camp
    wait_for("the refused step to be settled", lambda: not status_json(run)["in_flight"], timeout=10)
    camp = status_json(run)["campaigns"][0]
    assert camp["experiments"].get("failed", 0) == 1, f"the refused first step cost an experiment: {camp}"
    reset_and_resume(run, "robot")

    took, s = stop_while(run, sim, "the coater spinning", lambda s: s["coater_state"] == "RUNNING",
                         lambda s: s["coater_state"] not in ("ARMED", "RUNNING") and s["robot_state"] not in ROBOT_MOVING)
    print(f"e-stop with the coater mid-spin: coater safe after {took:.2f} s (state {s['coater_state']})")
    assert labloop(run, "campaign", "resume").returncode == 0
    assert simset(1000)["ok"]

    # until the end: an instrument the stops left latched in a fault is reset, then resumed
    deadline = time.time() + 120
    while True:
        camp = status_json(run)["campaigns"][0]
        if camp["state"] in ("completed", "failed"):
            break
        assert time.time() < deadline, camp
        if camp["state"] == "paused" and not status_json(run)["in_flight"]:
            instr = camp["reason"].split("instrument fault on ")[1].split(":")[0]
            print(f"paused for {instr}: reset, resume")
            reset_and_resume(run, instr)
        time.sleep(0.05)
    st = status_json(run)
    camp = st["campaigns"][0]
    assert camp["state"] == "completed", camp
    assert set(camp["experiments"]) <= {"measured", "failed"} and camp["experiments"].get("failed", 0) >= 1, camp
    check_invariants(tmp, labsim_counts(tmp))
    # every failed experiment was cut off by a stop (its step aborted on the instrument), none
    # failed because a latched instrument refused a step (those went back to pending)
    db = sqlite3.connect(os.path.join(tmp, "l.db"), timeout=10)
    failed = db.execute("SELECT s.experiment_id, s.result FROM steps s JOIN experiments x ON x.id = s.experiment_id "
                        "WHERE x.state = 'failed' AND s.state = 'failed'").fetchall()
    refused = db.execute("SELECT count(*) FROM steps WHERE state = 'failed' AND result LIKE '%not sent%'").fetchone()[0]
    db.close()
    assert refused == 0, f"{refused} steps failed because a latched instrument refused them"
    for exp, result in failed:
        assert "ABORTED" in result or "aborted" in result, (exp, result)
    assert camp["experiments"].get("measured", 0) >= 1, camp
    print(f"completed: {camp['experiments']}; every failure an aborted step, none a refused one")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""Kill points (reliability.md §4.2 F2): labloopd dies with _exit(137) at named places between
two durable steps, chosen by LABLOOP_FAILPOINT=name:n (common/ll_failpoint.h; compiled only
with -DLL_FAILPOINTS=ON, which scripts/test.sh sets; other builds skip this test with 77).
Each death is checked to have happened at its point (the daemon's exit status and its log);
a point the run never reaches fails the test.

1. migration: a fresh store dies in the middle of migration 2; the store keeps version 1
   (migration 1 committed, 2 rolled back) and the next start brings it to the current one.
2. One perovskite campaign on labsim, run through kills at: a step's intent committed
   (before the instrument is told), the instrument's start accepted (before the first poll),
   a finished step before its result is committed, a measurement inside the ingest batch's
   transaction, a measurement committed before its ack, a planner round written but not
   committed, a write of a WAL checkpoint (checkpoints every 8 pages), and the start-up
   recovery itself (the start after a kill dies while recovering; the next one recovers).
   The campaign must complete.
3. estop_latched: a second campaign (at a tenth of the speed, so that an anneal outlasts a
   restart), e-stop while the furnace runs a program; the daemon dies after latching the stop
   and before telling any instrument (labsim shows the furnace still running). The next start
   must find the stop latched and reset the furnace's program (its safe state) within 2 s, by a
   command, not by the program's own end; the stop holds, also across one more restart, until
   an operator resumes the campaign.
After each death of part 2, before the next start recovers anything, the invariants that hold
at any moment (daemon_helpers.check_midway): the store is sound, no job or coater run executed
twice or unknown to the store, every acked measurement stored with its exact bytes.
Afterwards the invariants of daemon_helpers.check_invariants hold: every job and coater run
exactly once and known to the store, every acked measurement stored with its exact bytes, no
step left started, every experiment ended, integrity_check ok, event ids without gaps.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOP, answer_questions, check_invariants, check_midway, finish,  # noqa: E402
                            labloop, labsim_counts, request, run_killing, spawn_labloopd, start_labsim,
                            status_or_none, wait_for, wait_up, write_campaign, write_lab)

SPEED = 1000
procs = []


def start_daemon(tmp, run, failpoint=None, speed=SPEED):
    env = dict(os.environ, LABLOOP_WAL_AUTOCHECKPOINT="8")
    if failpoint:
        env["LABLOOP_FAILPOINT"] = failpoint
    return spawn_labloopd(tmp, run, speed, procs, env)


def expect_death(tmp, run, p, name, n, timeout=120):
    """Waits until p dies at failpoint name:n, answering operator questions meanwhile."""
    deadline = time.time() + timeout
    while p.poll() is None:
        assert time.time() < deadline, f"failpoint {name}:{n} not reached within {timeout} s"
        st = answer_questions(run, p)
        if st and st["campaigns"] and st["campaigns"][-1]["state"] not in ("running", "paused"):
            # the campaign ended before the point was reached: give the daemon a moment
            # (it may be dying right now), then fail
            time.sleep(1)
            assert p.poll() is not None, f"campaign ended before failpoint {name}:{n} was reached"
        time.sleep(0.02)
    assert p.returncode == 137, f"labloopd exited with {p.returncode}, not at failpoint {name}:{n}"
    log = open(os.path.join(tmp, "labloopd.log")).read()
    assert f"failpoint {name} hit {n}: exiting 137" in log, f"no failpoint message for {name}:{n}"


def sim_request(tmp, req):
    rep = request("ipc://" + os.path.join(tmp, "sim", "control"), req)
    assert rep is not None and rep.get("ok"), (req, rep)
    return rep


def sim_status(tmp):
    return sim_request(tmp, {"cmd": "status"})


def main():
    if os.environ.get("LL_FAILPOINTS", "OFF").upper() not in ("ON", "1", "TRUE", "YES"):
        print("skipped: labloopd built without -DLL_FAILPOINTS=ON (scripts/test.sh builds with it)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="test_daemon_killpoints.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    run = os.path.join(tmp, "run")

    # 1. a migration cut short
    p = start_daemon(tmp, run, "migration:2")
    expect_death(tmp, run, p, "migration", 2, timeout=30)
    db = sqlite3.connect(os.path.join(tmp, "l.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1, "migration 2 was not rolled back"
    db.close()
    p = start_daemon(tmp, run)
    wait_up(run, p)
    db = sqlite3.connect(os.path.join(tmp, "l.db"))
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert version >= 2, version
    print(f"migration: killed in migration 2, store at version 1; restarted: version {version}")

    # 2. one campaign through kills at each point
    conf = write_campaign(tmp, "c1.conf", initial=4, batch=2, budget=10)
    r = labloop(run, "campaign", "start", conf)
    assert r.returncode == 0, r.stderr
    p.terminate()
    assert p.wait(timeout=30) == 0
    points = [("intent_committed", 3), ("start_accepted", 2), ("group_commit", 1),
              ("before_result_commit", 4), ("measurement_committed", 1), ("round_write", 1),
              ("checkpoint_write", 2), ("recovery", 1), ("intent_committed", 2), ("group_commit", 2),
              ("measurement_committed", 2)]
    t_start = time.time()
    for name, n in points:
        p = start_daemon(tmp, run, f"{name}:{n}")
        expect_death(tmp, run, p, name, n)
        acked = check_midway(tmp)  # I7, I4/I5, I1 right after the death, before any recovery
        print(f"{time.time() - t_start:6.1f} s: killed at {name}:{n}; store sound, nothing ran twice, "
              f"all {acked} acked measurements stored")
    p = start_daemon(tmp, run)
    wait_up(run, p)
    print(f"{time.time() - t_start:6.1f} s: every point reached")
    wait_for("campaign 1 to complete",
             lambda: (answer_questions(run, p) or {"campaigns": [{}]})["campaigns"][0].get("state") == "completed",
             timeout=240)

    print(f"{time.time() - t_start:6.1f} s: campaign 1 completed")
    # 3. e-stop latched, daemon dead before any instrument was told; at a tenth of the speed
    # so that an anneal program lasts longer than the restart (at least 4 s)
    p.terminate()
    assert p.wait(timeout=30) == 0
    sim_request(tmp, {"cmd": "set", "what": "speed", "value": SPEED // 10})
    p = start_daemon(tmp, run, "estop_latched:1", speed=SPEED // 10)
    wait_up(run, p)
    conf2 = write_campaign(tmp, "c2.conf", initial=2, batch=2, budget=2)
    assert labloop(run, "campaign", "start", conf2).returncode == 0
    wait_for("the furnace to run a program", lambda: sim_status(tmp)["furnace_program"] == 1, timeout=120,
             every=0.01)
    # no answer comes: the daemon dies on the way
    cli = subprocess.Popen([LABLOOP, "e-stop", "--timeout", "3000", "--run-dir", run], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    procs.append(cli)
    p.wait(timeout=30)
    assert sim_status(tmp)["furnace_program"] == 1, "the furnace was told before the kill point"
    expect_death(tmp, run, p, "estop_latched", 1)
    p = start_daemon(tmp, run, speed=SPEED // 10)
    t0 = time.time()
    wait_up(run, p)
    # reset by a command (program_ended is set only when a program reaches its end by itself)
    fur = wait_for("the furnace's safe state after the restart",
                   lambda: (lambda s: s if s["furnace_program"] != 1 else None)(sim_status(tmp)), timeout=2, every=0.01)
    assert fur["furnace_program"] == 0 and not fur["furnace_program_ended"], fur
    print(f"{time.time() - t_start:6.1f} s: e-stop latched before the kill; furnace program reset "
          f"{time.time() - t0:.2f} s after the restart")
    st = status_or_none(run)
    assert st["estop"] and st["campaigns"][1]["state"] == "stopped", st["campaigns"][1]
    time.sleep(0.5)
    assert status_or_none(run)["campaigns"][1]["state"] == "stopped", "the stop did not hold"
    p.terminate()
    assert p.wait(timeout=30) == 0
    sim_request(tmp, {"cmd": "set", "what": "speed", "value": SPEED})
    p = start_daemon(tmp, run)
    wait_up(run, p)
    st = status_or_none(run)
    assert st["estop"] and st["campaigns"][1]["state"] == "stopped", "the stop did not survive a restart"
    assert labloop(run, "campaign", "resume").returncode == 0
    wait_for("campaign 2 to end", lambda: (answer_questions(run, p) or {"campaigns": [{}, {}]})["campaigns"][1].get(
        "state") in ("completed", "aborted", "failed"), timeout=240)
    print(f"{time.time() - t_start:6.1f} s: campaign 2 ended")
    counts = labsim_counts(tmp)
    measured, acked = check_invariants(tmp, counts)
    assert measured >= 4 and acked >= 8, f"too little was measured to test much: {measured}, {acked}"
    finish(p, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

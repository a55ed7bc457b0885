#!/usr/bin/env python3
"""Crash test: a small perovskite campaign on labsim, labloopd killed with SIGKILL at >= 20
random moments and restarted each time. Afterwards:
  - the campaign completes (every experiment ends: measured, failed or abandoned);
  - labsim's counts: every robot job and coater run executed exactly once, and each of
    them belongs to a step the store records as done or failed (nothing ran that the store
    does not know about; nothing ran twice);
  - no step is left started; a step whose fate the instrument cannot tell becomes an operator
    question (the test answers it "failed", as a cautious operator would) and is never
    settled on its own;
  - every measurement a station had acked (RUNTIME/stations/NAME/ack-SEQ) is in the store
    with the station's exact bytes (SHA-256 of its stored message);
  - PRAGMA integrity_check is ok and the event ids have no gaps;
  - and right after every kill, before the restart recovers: the store is sound, nothing ran
    twice or unknown to the store, every acked measurement is stored (check_midway).
Environment: LABSIM, LABLOOPD, LABLOOP, LL_SOURCE_DIR; LL_CRASH_KILLS (default 20),
LL_CRASH_SEED.
"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOPD, LABSIM, check_invariants, check_midway, labloop, labsim_counts,  # noqa: E402
                            write_campaign, write_lab)

KILLS = int(os.environ.get("LL_CRASH_KILLS", "20"))
SPEED = int(os.environ.get("LL_CRASH_SPEED", "1000"))
rng = random.Random(int(os.environ.get("LL_CRASH_SEED", str(int(time.time())))))

procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def status(run_dir):
    r = labloop(run_dir, "status", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def start_daemon(tmp, run_dir):
    log = open(os.path.join(tmp, "labloopd.log"), "a")
    p = subprocess.Popen([LABLOOPD, "--lab", os.path.join(tmp, "sim", "lab.conf"), "--db",
                          os.path.join(tmp, "l.db"), "--run-dir", run_dir, "--time-scale", str(SPEED),
                          "--poll-ms", "5"], stderr=log)
    procs.append(p)
    return p


def wait_up(run_dir, p, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if status(run_dir) is not None:
            return
        if p.poll() is not None:
            raise AssertionError(f"labloopd exited with {p.returncode}")
        time.sleep(0.02)
    raise AssertionError("labloopd did not come up")


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_crash.")
    write_lab(tmp)
    write_campaign(tmp, "campaign.conf", initial=4, batch=2, budget=8)
    os.makedirs(os.path.join(tmp, "sim"))
    run_dir = os.path.join(tmp, "run")
    sim = subprocess.Popen([LABSIM, "--lab", os.path.join(tmp, "lab.conf"), "--runtime-dir",
                            os.path.join(tmp, "sim"), "--speed", str(SPEED)],
                           stderr=open(os.path.join(tmp, "labsim.log"), "w"))
    procs.append(sim)
    for _ in range(400):
        if os.path.exists(os.path.join(tmp, "sim", "ready")):
            break
        time.sleep(0.025)
    assert os.path.exists(os.path.join(tmp, "sim", "ready")), "labsim did not start"

    daemon = start_daemon(tmp, run_dir)
    wait_up(run_dir, daemon)
    r = labloop(run_dir, "campaign", "start", os.path.join(tmp, "campaign.conf"))
    assert r.returncode == 0, r.stderr

    kills = 0
    questions = 0
    t_end = time.time() + 240
    state = "running"
    while time.time() < t_end:
        st = status(run_dir)
        state = st["campaigns"][-1]["state"] if st and st["campaigns"] else state
        if state not in ("running", "paused"):
            break
        # act as the operator: a step whose fate cannot be known is answered "failed"
        # (conservative: its experiment is abandoned, nothing is re-run)
        for q in (st or {}).get("questions", []):
            r = labloop(run_dir, "resolve", str(q["id"]), "failed")
            assert r.returncode == 0, r.stderr
            questions += 1
        if kills < KILLS:
            time.sleep(rng.uniform(0.05, 0.8))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            kills += 1
            check_midway(tmp)  # I7, I4/I5, I1 hold right after the kill, before recovery
            daemon = start_daemon(tmp, run_dir)
            wait_up(run_dir, daemon)
        else:
            time.sleep(0.3)
    st = status(run_dir)
    print(f"kills: {kills}; campaign: {st['campaigns'][-1]['state']}; "
          f"experiments: {st['campaigns'][-1]['experiments']}; operator questions answered: {questions}")
    assert kills >= KILLS or st["campaigns"][-1]["state"] == "completed", "campaign ended before enough kills"
    assert st["campaigns"][-1]["state"] == "completed", st["campaigns"][-1]
    counts = labsim_counts(tmp)
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0
    measured, acked = check_invariants(tmp, counts)
    assert measured >= 2 and acked >= 4, f"too little was measured to test much: {measured}, {acked}"
    log = open(os.path.join(tmp, "labloopd.log")).read()
    print(f"recovery: {log.count('asking the instrument whether it ran')} steps settled by query, "
          f"{log.count('re-sent to')} measure requests re-sent, "
          f"{log.count('not started (the instrument never accepted it)')} found never started")
    cleanup()
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()

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
  - PRAGMA integrity_check is ok and the event ids have no gaps.
Environment: LABSIM, LABLOOPD, LABLOOP, LL_SOURCE_DIR; LL_CRASH_KILLS (default 20),
LL_CRASH_SEED.
"""
import glob
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOPD, LABSIM, labloop, write_campaign, write_lab  # noqa: E402

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
            daemon = start_daemon(tmp, run_dir)
            wait_up(run_dir, daemon)
        else:
            time.sleep(0.3)
    st = status(run_dir)
    print(f"kills: {kills}; campaign: {st['campaigns'][-1]['state']}; "
          f"experiments: {st['campaigns'][-1]['experiments']}; operator questions answered: {questions}")
    assert kills >= KILLS or st["campaigns"][-1]["state"] == "completed", "campaign ended before enough kills"
    assert st["campaigns"][-1]["state"] == "completed", st["campaigns"][-1]
    counts = None
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect("ipc://" + os.path.join(tmp, "sim", "control"))
    s.send_json({"cmd": "counts"})
    counts = s.recv_json()
    ctx.destroy(linger=0)
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0

    db = sqlite3.connect(os.path.join(tmp, "l.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(1, len(ids) + 1)), "event ids have gaps"
    left = db.execute("SELECT count(*) FROM steps WHERE state = 'started'").fetchone()[0]
    assert left == 0, f"{left} steps left started"
    open_exp = db.execute("SELECT count(*) FROM experiments WHERE state NOT IN "
                          "('measured','failed','abandoned')").fetchone()[0]
    assert open_exp == 0, f"{open_exp} experiments not ended"
    jobs = {str(j): (st_, instr) for j, st_, instr in
            db.execute("SELECT job, state, instrument FROM steps WHERE job IS NOT NULL")}
    for kind, instr in (("robot_jobs", "robot"), ("coater_runs", "coater")):
        for job, n in counts.get(kind, {}).items():
            key = re.sub(r"\D", "", job).lstrip("0") or "0"
            assert n == 1, f"{kind}: job {job} executed {n} times"
            assert key in jobs, f"{kind}: job {job} ran but no step has that job number"
            assert jobs[key][0] in ("done", "failed") and jobs[key][1] == instr, (job, jobs[key])
    done_robot = db.execute("SELECT count(*) FROM steps WHERE instrument='robot' AND state='done'").fetchone()[0]
    assert done_robot == len(counts.get("robot_jobs", {})) or done_robot <= len(counts["robot_jobs"]), done_robot
    for req, n in counts.get("measurements", {}).items():
        assert n == 1, f"request {req} measured {n} times"
    acked = 0
    for ack in glob.glob(os.path.join(tmp, "sim", "stations", "*", "ack-*")):
        station = os.path.basename(os.path.dirname(ack))
        seq = int(ack.rsplit("-", 1)[1])
        if open(ack).read().strip() not in ("stored", "duplicate"):
            continue
        acked += 1
        msgs = [m for m in glob.glob(os.path.join(os.path.dirname(ack), "req-*.json"))
                if json.load(open(m)).get("seq") == seq]
        assert msgs, f"{station} seq {seq}: acked but the station has no message"
        h = hashlib.sha256(open(msgs[0], "rb").read()).hexdigest()
        row = db.execute("SELECT hash FROM measurements WHERE station=? AND seq=?", (station, seq)).fetchone()
        assert row is not None, f"{station} seq {seq}: acked but not stored"
        assert row[0] == h, f"{station} seq {seq}: stored bytes differ from the station's"
    measured = db.execute("SELECT count(*) FROM experiments WHERE state = 'measured'").fetchone()[0]
    assert measured >= 2 and acked >= 4, f"too little was measured to test much: {measured}, {acked}"
    print(f"robot jobs {len(counts.get('robot_jobs', {}))}, coater runs {len(counts.get('coater_runs', {}))}, "
          f"acked measurements {acked}, all exactly once and stored")
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

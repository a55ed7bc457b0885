#!/usr/bin/env python3
"""Disk full (reliability.md §4.2 F14) on a real file system: labloopd's database lives on a
16 MiB tmpfs (so the test needs root and mount; otherwise it is skipped with 77). A campaign
runs on labsim; the test fills the tmpfs to the last byte with a file while steps are running,
then removes the file after 6 s. Checked:
  - while full, `labloop status` answers and reports the failing store (store_error and the
    STORE WRITES FAILING text); no new robot job or coater run starts (labsim's counts stay
    put), and a step whose outcome could not be stored keeps it (no step is lost: nothing is
    left started at the end);
  - while full, nothing is acked that did not commit: a station message that is answered after
    a store write (here a measurement from a station the lab does not have: its rejection is
    stored, then acked) gets no answer while the disk is full, and the same message sent again
    after the space is freed gets its answer;
  - after the file is removed the daemon notices by itself (no restart) within 5 s, writes one
    event "writes failed for N s (...); working again", and the campaign completes;
  - the crash tests' invariants (daemon_helpers.check_invariants): every acked measurement
    stored with its exact bytes, every job exactly once, integrity_check ok.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOPD, ProbeStation, check_invariants, labloop, jobs_run, labsim_counts, run_killing, status_json,  # noqa: E402
                            start_labsim, wait_for, write_campaign, write_lab)

SPEED = 1000
procs = []
mounted = []


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_disk_full.")
    disk = os.path.join(tmp, "disk")
    os.makedirs(disk)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk],
                                           capture_output=True).returncode != 0:
        print("skipped: needs root and mount -t tmpfs")
        subprocess.run(["rm", "-rf", tmp])
        sys.exit(77)
    mounted.append(disk)
    lab, port = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    run = os.path.join(tmp, "run")
    db = os.path.join(disk, "l.db")
    daemon = subprocess.Popen([LABLOOPD, "--lab", os.path.join(tmp, "sim", "lab.conf"), "--db", db, "--run-dir",
                               run, "--time-scale", str(SPEED), "--poll-ms", "5"],
                              stderr=open(os.path.join(tmp, "labloopd.log"), "w"))
    procs.append(daemon)
    wait_for("labloopd", lambda: labloop(run, "status").returncode == 0)
    conf = write_campaign(tmp, "c.conf", initial=4, batch=2, budget=8)
    assert labloop(run, "campaign", "start", conf).returncode == 0
    wait_for("the first measurements", lambda: status_json(run)["campaigns"][0]["experiments"].get("measured", 0) >= 1)

    fill = os.path.join(disk, "fill")
    subprocess.run(["dd", "if=/dev/zero", "of=" + fill, "bs=64k"], capture_output=True)
    t_full = time.time()
    st = wait_for("status to report the failing store", lambda: (lambda s: s if s["store_error"] else None)(status_json(run)),
                  timeout=20)
    print(f"store error reported {time.time() - t_full:.1f} s after the disk filled: {st['store_error']['message']}")
    text = labloop(run, "status", "--timeout", "3000")
    assert text.returncode == 0 and "STORE WRITES FAILING" in text.stdout, text.stdout
    time.sleep(0.5)  # a step submitted just before the failure may still start
    before = jobs_run(labsim_counts(tmp))
    time.sleep(max(0.0, 6 - (time.time() - t_full)))
    after = jobs_run(labsim_counts(tmp))
    assert after == before, f"{after - before} jobs started while the store could not take writes"
    assert status_json(run)["store_error"], "the trouble ended while the disk was still full"
    # acks stop: a message whose answer needs a committed write gets none while full
    probe = ProbeStation(port)
    probe.send()
    a = probe.answer(2000)
    assert a is None, f"answered while the store could not commit: {a}"
    assert status_json(run)["store_error"], "the trouble ended while the disk was still full"

    os.remove(fill)
    t_free = time.time()
    wait_for("the store to work again", lambda: status_json(run)["store_error"] is None, timeout=5)
    print(f"store working again {time.time() - t_free:.1f} s after the file was removed")
    probe.send()  # a station resends what was not acked
    a = probe.answer(5000)
    assert a and a["type"] == "ack" and a["seq"] == 1 and a["status"] == "rejected", a
    probe.close()
    wait_for("the campaign to complete", lambda: status_json(run)["campaigns"][0]["state"] == "completed", timeout=120)

    counts = labsim_counts(tmp)
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0
    measured, acked = check_invariants(tmp, counts, db_path=db)
    assert measured >= 4, measured
    con = sqlite3.connect(db)
    ev = [m for (m,) in con.execute("SELECT message FROM events WHERE kind = 'store'")]
    con.close()
    assert len(ev) == 1 and "working again" in ev[0], ev
    print("event:", ev[0])
    subprocess.run(["umount", disk])
    mounted.clear()
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    try:
        run_killing(main, procs)
    finally:
        for d in mounted:
            subprocess.run(["umount", "-l", d])

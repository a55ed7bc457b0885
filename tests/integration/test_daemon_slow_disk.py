#!/usr/bin/env python3
"""Slow disk (reliability.md §4.1 L9): in a test build (-DLL_FAILPOINTS=ON; otherwise skipped
with 77) the store's test VFS sleeps LABLOOP_SYNC_DELAY_MS = 200 ms in every fsync, so every
durable commit costs at least 200 ms. labloopd runs as systemd would start it with a 4 s
watchdog (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID). A small campaign on labsim must still:
  - complete, with the crash tests' invariants (daemon_helpers.check_invariants);
  - keep `labloop status` answering (every answer within 2 s);
  - keep the watchdog fed: WATCHDOG=1 at least every 4 s from READY=1 to the end, and no
    "pings stopped" in the log.
It prints the campaign's wall time, slowest status answer and longest gap between watchdog
pings beside the same campaign's without the delay: acks and steps slow down, nothing else.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOPD, check_invariants, finish, labloop, labsim_counts,  # noqa: E402
                            run_killing, start_labsim, wait_for, write_campaign, write_lab)

SPEED = 1000
procs = []


WATCHDOG_S = 4.0  # the shipped unit has WatchdogSec=30; 4 s still catches a loop blocked for seconds


def listen(sock, got, stop):
    """Collects (time, message) from the notify socket until stop is set."""
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            got.append((time.time(), sock.recv(4096).decode()))
        except socket.timeout:
            pass


def campaign(delay_ms):
    """Runs one 4-experiment campaign with the given fsync delay; returns (seconds, slowest
    status answer, longest gap between watchdog pings, in seconds)."""
    tmp = tempfile.mkdtemp(prefix="test_daemon_slow_disk.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    run = os.path.join(tmp, "run")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(tmp, "notify"))
    got, stop = [], threading.Event()
    listener = threading.Thread(target=listen, args=(notify, got, stop))
    listener.start()
    env = dict(os.environ, LABLOOP_SYNC_DELAY_MS=str(delay_ms), NOTIFY_SOCKET=os.path.join(tmp, "notify"),
               WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)))
    # WATCHDOG_PID: the shell's pid, which exec keeps (as systemd sets it)
    daemon = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", LABLOOPD, "--lab",
                               os.path.join(tmp, "sim", "lab.conf"), "--db", os.path.join(tmp, "l.db"), "--run-dir",
                               run, "--time-scale", str(SPEED), "--poll-ms", "5"],
                              stderr=open(os.path.join(tmp, "labloopd.log"), "a"), env=env)
    procs.append(daemon)
    wait_for("labloopd", lambda: labloop(run, "status").returncode == 0)
    conf = write_campaign(tmp, "c.conf", initial=2, batch=2, budget=4)
    assert labloop(run, "campaign", "start", conf).returncode == 0
    t0 = time.time()
    slowest = 0.0
    while True:
        assert time.time() - t0 < 180, "the campaign did not complete within 180 s"
        t = time.time()
        r = labloop(run, "status", "--json", "--timeout", "2000")
        assert r.returncode == 0, f"status did not answer within 2 s (fsync delay {delay_ms} ms): {r.stderr}"
        slowest = max(slowest, time.time() - t)
        st = json.loads(r.stdout)
        if st["campaigns"][0]["state"] != "running":
            break
        time.sleep(0.2)
    took = time.time() - t0
    assert st["campaigns"][0]["state"] == "completed", st["campaigns"][0]
    assert daemon.poll() is None, "labloopd died"
    measured, _ = check_invariants(tmp, labsim_counts(tmp))
    assert measured >= 2, measured
    log = open(os.path.join(tmp, "labloopd.log")).read()
    assert "pings stopped" not in log, "the watchdog would have fired"
    stop.set()
    listener.join()
    notify.close()
    ready = [t for t, m in got if "READY=1" in m]
    pings = [t for t, m in got if "WATCHDOG=1" in m]
    assert ready and len(pings) >= 2, f"no READY=1 or too few watchdog pings: {got[:5]}"
    gaps = [b - a for a, b in zip([ready[0]] + pings, pings + [time.time()])]
    assert max(gaps) < WATCHDOG_S, f"{max(gaps):.2f} s without a watchdog ping (interval {WATCHDOG_S} s)"
    finish(daemon, procs, tmp)
    procs.clear()
    return took, slowest, max(gaps)


def main():
    if os.environ.get("LL_FAILPOINTS", "OFF").upper() not in ("ON", "1", "TRUE", "YES"):
        print("skipped: labloopd built without -DLL_FAILPOINTS=ON (scripts/test.sh builds with it)")
        sys.exit(77)
    fast, fast_status, fast_gap = campaign(0)
    slow, slow_status, slow_gap = campaign(200)
    print(f"campaign of 4 experiments: {fast:.1f} s without delay (slowest status {fast_status:.2f} s, longest "
          f"watchdog gap {fast_gap:.2f} s), {slow:.1f} s with 200 ms per fsync (slowest status {slow_status:.2f} s, "
          f"longest watchdog gap {slow_gap:.2f} s)")
    assert slow > fast, "the delay did not reach the store (is the test VFS in use?)"
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

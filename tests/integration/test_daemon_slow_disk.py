#!/usr/bin/env python3
"""Slow disk (reliability.md §4.1 L9): in a test build (-DLL_FAILPOINTS=ON; otherwise skipped
with 77) the store's test VFS sleeps LABLOOP_SYNC_DELAY_MS = 100 ms in every fsync, so every
durable commit costs at least 100 ms. A small campaign on labsim must still:
  - complete, with the crash tests' invariants (daemon_helpers.check_invariants);
  - keep `labloop status` answering (every answer within 2 s);
  - keep the watchdog's conditions (no "pings stopped" in the log).
It prints the campaign's wall time beside the same campaign's without the delay, so the cost
of a slow disk is visible: acks and steps slow down, and nothing else changes.
"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, run_killing,  # noqa: E402
                            start_labloopd, start_labsim, write_campaign, write_lab)

SPEED = 1000
procs = []


def campaign(delay_ms):
    """Runs one 6-experiment campaign with the given fsync delay; returns (seconds, slowest
    status answer in seconds)."""
    tmp = tempfile.mkdtemp(prefix="test_daemon_slow_disk.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    run = os.path.join(tmp, "run")
    daemon = start_labloopd(tmp, run, SPEED, procs, env=dict(os.environ, LABLOOP_SYNC_DELAY_MS=str(delay_ms)))
    conf = write_campaign(tmp, "c.conf", initial=4, batch=2, budget=6)
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
    assert measured >= 4, measured
    log = open(os.path.join(tmp, "labloopd.log")).read()
    assert "pings stopped" not in log, "the watchdog would have fired"
    finish(daemon, procs, tmp)
    procs.clear()
    return took, slowest


def main():
    if os.environ.get("LL_FAILPOINTS", "OFF").upper() not in ("ON", "1", "TRUE", "YES"):
        print("skipped: labloopd built without -DLL_FAILPOINTS=ON (scripts/test.sh builds with it)")
        sys.exit(77)
    fast, fast_status = campaign(0)
    slow, slow_status = campaign(100)
    print(f"campaign of 6 experiments: {fast:.1f} s without delay (slowest status {fast_status:.2f} s), "
          f"{slow:.1f} s with 100 ms per fsync (slowest status {slow_status:.2f} s)")
    assert slow > fast, "the delay did not reach the store (is the test VFS in use?)"
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

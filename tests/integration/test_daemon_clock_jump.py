#!/usr/bin/env python3
"""Wall-clock jumps (reliability.md §4.2 F17): labloopd runs under libfaketime (Debian package
faketime; skipped with 77 when it is missing) with the monotonic clock left alone, and its
wall clock jumps 1 h forward and then 2 h back while a campaign runs on labsim. Checked:
  - the campaign completes with no missed deadline (every timeout runs on CLOCK_MONOTONIC);
  - no stored step duration is negative (finished_at >= started_at), though the wall times
    went back;
  - events keep their order by id (their wall times need not);
  - the stations' clocks (labsim's, not jumped) now disagree with labloopd's: that is
    reported as an ingest.clock warning, and the measurements are stored anyway;
  - the crash tests' invariants (daemon_helpers.check_invariants).
"""
import json
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (check_invariants, finish, labloop, labsim_counts, run_killing,  # noqa: E402
                            start_labloopd, start_labsim, wait_for, write_campaign, write_lab)

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
procs = []


def main():
    if not os.path.exists(FAKETIME):
        print(f"skipped: {FAKETIME} missing (apt-get install faketime)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="test_daemon_clock_jump.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, 1000, procs)
    run = os.path.join(tmp, "run")
    offset = os.path.join(tmp, "faketime")
    open(offset, "w").write("+0\n")
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = dict(os.environ, LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=offset, FAKETIME_NO_CACHE="1",
               FAKETIME_DONT_FAKE_MONOTONIC="1",
               # libfaketime is preloaded ahead of a sanitizer runtime: tell ASan that is fine
               ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")
    daemon = start_labloopd(tmp, run, 1000, procs, env=env)
    conf = write_campaign(tmp, "c.conf", initial=4, batch=2, budget=8)
    assert labloop(run, "campaign", "start", conf).returncode == 0
    status = lambda: json.loads(labloop(run, "status", "--json").stdout)  # noqa: E731
    wait_for("a step to start", lambda: status()["in_flight"], every=0.01)
    time.sleep(0.5)
    open(offset, "w").write("+1h\n")
    time.sleep(1.5)
    open(offset, "w").write("-1h\n")
    st = wait_for("the campaign to end", lambda: (lambda s: s if s["campaigns"][0]["state"] != "running" else None)(
        status()), timeout=120, every=0.2)
    assert st["campaigns"][0]["state"] == "completed", st["campaigns"][0]
    assert st["missed_deadlines"] == 0, f"{st['missed_deadlines']} deadlines missed: a timeout used the wall clock"
    measured, _ = check_invariants(tmp, labsim_counts(tmp))
    assert measured == 8, measured
    db = sqlite3.connect(os.path.join(tmp, "l.db"))
    neg = db.execute("SELECT count(*) FROM steps WHERE finished_at < started_at").fetchone()[0]
    assert neg == 0, f"{neg} steps stored with a negative duration"
    ats = [a for (a,) in db.execute("SELECT at FROM events ORDER BY id")]
    back = sum(1 for a, b in zip(ats, ats[1:]) if b < a)
    assert back >= 1, "the wall clock did not go back for labloopd (is libfaketime working?)"
    clock = [m for (m,) in db.execute("SELECT message FROM events WHERE kind = 'ingest.clock'")]
    assert clock and "disagree on the time" in clock[0], clock
    db.close()
    print(f"completed, 0 missed deadlines, no negative duration; event times went back {back} time(s); "
          f"{len(clock)} clock warning(s), e.g.: {clock[0]}")
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

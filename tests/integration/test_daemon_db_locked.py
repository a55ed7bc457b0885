#!/usr/bin/env python3
"""Database locked by another process (reliability.md §4.2 F15): while a campaign runs on
labsim, a second SQLite connection holds BEGIN IMMEDIATE on labloopd's database for 8 s.
Checked:
  - labloopd does not crash, and `labloop status` keeps answering: after the first write has
    waited out the busy timeout (2 s), every status answer comes within 1 s (later writes wait
    only 100 ms while the trouble lasts), and it reports the lock (store_error);
  - no robot job or coater run starts while the lock is held;
  - acks wait: a station message whose answer needs a committed write (ProbeStation) gets no
    answer while the lock is held, and its resend is answered after the release;
  - the alarm (labloopd --store-alarm-s 3 here; 30 s by default): once the trouble has lasted
    3 s, one critical log line (<2>store: ALARM), status JSON store_error.alarm and the text
    "ALARM: STORE WRITES FAILING"; not before; the event at the end is an error (level 3) that
    says the trouble went past the alarm limit;
  - after the lock is released the daemon notices by itself within 3 s, writes one event
    "writes failed for N s (...); working again", and the campaign completes;
  - the crash tests' invariants (daemon_helpers.check_invariants).
"""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (ProbeStation, check_invariants, finish, jobs_run, labloop, labsim_counts,  # noqa: E402
                            run_killing, start_campaign, stations_port, status_json, wait_for)

SPEED = 1000
procs = []


def main():
    tmp, run, daemon = start_campaign("test_daemon_db_locked", procs, SPEED, daemon_args=("--store-alarm-s", "3"),
                                      initial=4, batch=2, budget=8)
    wait_for("the first measurement", lambda: status_json(run)["campaigns"][0]["experiments"].get("measured", 0) >= 1)

    other = sqlite3.connect(os.path.join(tmp, "l.db"), isolation_level=None, timeout=10)
    other.execute("BEGIN IMMEDIATE")
    t_lock = time.time()
    st = wait_for("status to report the lock", lambda: (lambda s: s if s["store_error"] else None)(status_json(run)),
                  timeout=10)
    print(f"lock reported {time.time() - t_lock:.1f} s after it was taken: {st['store_error']['message']}")
    time.sleep(0.3)  # a step submitted just before the lock may still start
    before = jobs_run(labsim_counts(tmp))
    probe = ProbeStation(stations_port(tmp))
    probe.send()
    slowest, alarm_after = 0.0, None
    while time.time() - t_lock < 8:
        t = time.time()
        se = status_json(run, 1000)["store_error"]
        assert se, "the trouble ended while the lock was held"
        slowest = max(slowest, time.time() - t)
        if se["alarm"] and alarm_after is None:
            alarm_after = se["for_s"]
        assert se["alarm"] == (alarm_after is not None), se
        assert probe.answer(0) is None, "a station was answered while the store could not commit"
        time.sleep(0.2)
    assert alarm_after is not None and alarm_after >= 3, f"alarm after {alarm_after} s of trouble (limit 3 s)"
    assert "ALARM: STORE WRITES FAILING" in labloop(run, "status").stdout
    log = open(os.path.join(tmp, "labloopd.log")).read()
    assert log.count("<2>store: ALARM: writes have failed") == 1, log[-2000:]
    print(f"alarm raised {alarm_after:.1f} s into the trouble")
    after = jobs_run(labsim_counts(tmp))
    assert after == before, f"{after - before} jobs started while the database was locked"
    print(f"while locked: slowest status answer {slowest:.2f} s; no job started")
    other.execute("COMMIT")
    other.close()
    t_free = time.time()
    wait_for("the store to work again", lambda: status_json(run)["store_error"] is None, timeout=3)
    print(f"store working again {time.time() - t_free:.1f} s after the lock was released")
    probe.send()  # a station resends what was not acked
    a = probe.answer(5000)
    assert a and a["status"] == "rejected" and a["seq"] == 1, a
    probe.close()
    wait_for("the campaign to complete", lambda: status_json(run)["campaigns"][0]["state"] == "completed", timeout=120)

    counts = labsim_counts(tmp)
    assert daemon.poll() is None, "labloopd died"
    measured, _ = check_invariants(tmp, counts)
    assert measured >= 4, measured
    con = sqlite3.connect(os.path.join(tmp, "l.db"))
    ev = [(lv, m) for (lv, m) in con.execute("SELECT level, message FROM events WHERE kind = 'store'")]
    con.close()
    assert len(ev) == 1 and ev[0][0] == 3, ev
    assert "locked" in ev[0][1] and "past the alarm limit" in ev[0][1] and "working again" in ev[0][1], ev
    print("event:", ev[0][1])
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""A station replays its spool after an outage (reliability.md §4.1 L2, a CI-sized version of
the nightly `tests/bench/bench_load.py l2`).

A finished campaign's started `measure` steps are written into a new database before labloopd
starts (`bench_station fixture`): the requests labloopd sent before the outage. The station
(`bench_station replay`, docs/protocol.md's resend rules) spooled N = 4,000 measurements for
them while labloopd was down; it starts first, with up to 1,000 unacked (a station that sends
its backlog as fast as it may), then labloopd starts under a systemd watchdog emulator
(NOTIFY_SOCKET, WATCHDOG_USEC 2 s: a ping is due every second). While the station replays,
`labloop status` runs every 0.2 s. Asserts:
  - every status call during the replay answers, within 1.5 s (this sanitizer build; the
    nightly release-build bar is p99 <= 200 ms);
  - no gap between WATCHDOG=1 pings (from READY=1 to the last ack) reaches WATCHDOG_USEC;
  - measurements are analysed while the replay runs (the analysis is not starved);
  - exactly once: every spooled (seq, SHA-256) is stored once, nothing else is stored or
    rejected for the station, and every message was acked `stored` or `duplicate`.
Before 2026-11-26 labloopd handled station messages for as long as any waited: no status
answer and no ping until the whole replay was in. On that tree this test fails: the status
call took the replay's length (2.8, 4.8 and 3.5 s in three runs) and pings stopped for 3.3 to
4.7 s.
"""
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOP, LABLOOPD, SRC, labloop, write_lab  # noqa: E402

STATION = os.path.join(os.environ["LL_BINARY_DIR"], "tests", "bench_station")
N = 4000
WINDOW = 1000
WATCHDOG_S = 2.0
STATUS_MAX_S = 1.5


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_replay.")
    lab, port = write_lab(tmp)
    db = os.path.join(tmp, "l.db")
    run_dir = os.path.join(tmp, "run")
    env = dict(os.environ, LL_SOURCE_DIR=SRC)
    r = subprocess.run([STATION, "fixture", db, "replay-1:jv", "64"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    reqs = os.path.join(tmp, "requests")
    open(reqs, "w").write(r.stdout)
    spool = os.path.join(tmp, "station")
    r = subprocess.run([STATION, "spool", spool, "replay-1", reqs, str(N)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    print(r.stdout.strip())
    epoch = open(os.path.join(spool, "epoch")).read().strip()

    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(0.1)
    got = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                got.append((time.time(), notify.recv(4096).decode()))
            except socket.timeout:
                pass

    station = subprocess.Popen([STATION, "replay", f"tcp://127.0.0.1:{port}", spool, str(WINDOW), "300"],
                               stdout=subprocess.PIPE, text=True, env=env)
    daemon = None
    listener = threading.Thread(target=listen)
    listener.start()
    samples = []
    try:
        time.sleep(0.5)  # the station retries its connection; labloopd is down
        denv = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)))
        daemon = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", LABLOOPD, "--lab", lab,
                                   "--db", db, "--run-dir", run_dir],
                                  stderr=open(os.path.join(tmp, "labloopd.log"), "w"), env=denv)
        t_start = time.time()
        while not os.path.exists(os.path.join(run_dir, "control")):
            assert daemon.poll() is None and time.time() - t_start < 30, "labloopd did not start"
            time.sleep(0.01)
        while station.poll() is None:
            t0 = time.time()
            rs = subprocess.run([LABLOOP, "status", "--run-dir", run_dir, "--timeout", "30000"],
                                capture_output=True, text=True)
            samples.append((t0, time.time() - t0, rs.returncode))
            time.sleep(max(0.0, 0.2 - (time.time() - t0)))
        out = station.stdout.read()
        assert station.wait() == 0, out
        t_end = time.time()
        summary = json.loads(next(x for x in out.splitlines() if x.startswith("summary "))[8:])
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        analysed_by_end = con.execute("SELECT count(*) FROM measurements WHERE analysed = 1").fetchone()[0]
        con.close()
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0
    finally:
        stop.set()
        listener.join()
        notify.close()
        for p in (station, daemon):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()

    lat = sorted(s[1] for s in samples)
    print(f"replay of {N} (window {WINDOW}): {summary['stored']} stored, {summary['duplicate']} duplicate, "
          f"{summary['resent']} resent, {N / (summary['last_ack_unix_ms'] / 1000 - t_start):.0f} acked/s from "
          f"labloopd's start; status: {len(lat)} calls, median {lat[len(lat) // 2] * 1000:.0f} ms, max "
          f"{lat[-1] * 1000:.0f} ms; {analysed_by_end} analysed by the last ack")
    ready = next((t for t, m in got if "READY=1" in m.split("\n")), None)
    assert ready is not None, "no READY=1"
    pings = [t for t, m in got if "WATCHDOG=1" in m.split("\n") and ready <= t <= t_end]
    marks = [ready] + pings + [t_end]
    gap = max(b - a for a, b in zip(marks, marks[1:]))
    print(f"watchdog: {len(pings)} pings from READY=1 to the last ack, longest gap {gap:.2f} s")
    assert samples, "no status call during the replay"
    assert all(rc == 0 for _, _, rc in samples), samples
    assert lat[-1] <= STATUS_MAX_S, f"status took {lat[-1]:.2f} s during the replay (bar {STATUS_MAX_S} s)"
    assert gap < WATCHDOG_S, f"no WATCHDOG=1 for {gap:.2f} s: systemd would have killed labloopd"
    assert analysed_by_end > 0, "nothing analysed while the station replayed"

    want = {}
    with open(os.path.join(spool, "spool.jsonl"), "rb") as f:
        for seq, line in enumerate(f, start=1):
            want[seq] = hashlib.sha256(line.rstrip(b"\n")).hexdigest()
    con = sqlite3.connect(db)
    rows = con.execute("SELECT seq, hash FROM measurements WHERE station = 'replay-1' AND epoch = ?",
                       (epoch,)).fetchall()
    others = con.execute("SELECT count(*) FROM measurements WHERE station <> 'replay-1' OR epoch <> ?",
                         (epoch,)).fetchone()[0]
    rejected = con.execute("SELECT count(*) FROM rejections").fetchone()[0]
    con.close()
    assert len(rows) == N and dict(rows) == want, f"{len(rows)} rows for {N} messages, or other bytes"
    assert others == 0 and rejected == 0, (others, rejected)
    assert summary["stored"] + summary["duplicate"] == N and summary["rejected"] == 0, summary
    acked = [int(x) for x in open(os.path.join(spool, "acked")).read().split()]
    assert sorted(acked) == list(range(1, N + 1)), "the station's ack log is not every seq once"
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`labloop export` during sustained ingest keeps the WAL bounded and labloopd responsive
(reliability.md §4.2 F16, a CI-sized version of the nightly `tests/bench/bench_load.py f16`).

The database holds a finished campaign of 5,000 measured experiments and the requests of four
stations (`bench_station fixture`). For 20 s, four stations (3 J-V, 1 EIS) each keep 32
measurements unacked (`bench_station load`, L1's generator) while `labloop export` runs back
to back and the WAL file's size is read every 0.1 s. Asserts:
  - the WAL never exceeds 8 MiB (twice SQLite's auto-checkpoint of 1000 pages): exports leave
    reader gaps. (The CLI never opens the database: labloopd reads each page of 1000
    experiments in one short statement between stations' batches.)
  - every export completes, with every experiment once, in id order, within 20 s; the paged
    CSV equals the rows read from the database afterwards (ids, states, parameters);
  - every station message is answered, none rejected;
  - the probe can see growth: then an outside connection holds one read transaction (what an
    export reading the file in one transaction would do) for 6 s of the same load, and the
    WAL passes the bound (it grows with every commit while the reader holds).
Before 2026-11-26 labloopd answered no control request while stations kept messages waiting:
the first export under this load came back only after the load ended.
"""
import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOP, LABLOOPD, SRC, write_lab  # noqa: E402

STATION = os.path.join(os.environ["LL_BINARY_DIR"], "tests", "bench_station")
FILLER = 5000
STATIONS = "st-0:jv,st-1:jv,st-2:jv,st-3:eis"
LOAD_S = 20
READER_S = 6
WAL_BOUND = 8 << 20
EXPORT_MAX_S = 20.0


def wal_size(db):
    try:
        return os.stat(db + "-wal").st_size
    except OSError:
        return 0


def run_load(endpoint, reqs, seconds, env):
    p = subprocess.Popen([STATION, "load", endpoint, reqs, "4", "32", str(seconds)], stdout=subprocess.PIPE,
                         text=True, env=env)
    return p


def load_summary(p):
    out = p.stdout.read()
    assert p.wait() == 0, out
    return json.loads(next(x for x in out.splitlines() if x.startswith("summary "))[8:])


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_export_wal.")
    lab, port = write_lab(tmp)
    endpoint = f"tcp://127.0.0.1:{port}"
    db = os.path.join(tmp, "l.db")
    run_dir = os.path.join(tmp, "run")
    env = dict(os.environ, LL_SOURCE_DIR=SRC)
    r = subprocess.run([STATION, "fixture", db, STATIONS, "8", str(FILLER)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    reqs = os.path.join(tmp, "requests")
    open(reqs, "w").write(r.stdout)
    n_exp = FILLER + 4 * 8
    daemon = subprocess.Popen([LABLOOPD, "--lab", lab, "--db", db, "--run-dir", run_dir],
                              stderr=open(os.path.join(tmp, "labloopd.log"), "w"))
    procs = [daemon]
    try:
        t0 = time.time()
        while subprocess.run([LABLOOP, "status", "--run-dir", run_dir], capture_output=True).returncode != 0:
            assert daemon.poll() is None and time.time() - t0 < 30, "labloopd did not start"
            time.sleep(0.05)

        # --- exports back to back under the load; the WAL read every 0.1 s
        wal = []
        done = threading.Event()

        def sample():
            while not done.is_set():
                wal.append(wal_size(db))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        load = run_load(endpoint, reqs, LOAD_S, env)
        procs.append(load)
        exports = []
        out = os.path.join(tmp, "export.csv")
        while load.poll() is None:
            t = time.time()
            rx = subprocess.run([LABLOOP, "export", "--run-dir", run_dir, "--timeout", "60000", "--output", out],
                                capture_output=True, text=True)
            assert rx.returncode == 0, rx.stderr
            rows = list(csv.reader(open(out)))
            ids = [int(x[0]) for x in rows[1:]]
            assert ids == sorted(set(ids)) and len(ids) == n_exp, (len(ids), n_exp)
            exports.append(time.time() - t)
        s1 = load_summary(load)
        done.set()
        sampler.join()
        wal_max = max(wal)
        print(f"{len(exports)} exports of {n_exp} experiments during {LOAD_S} s of load: "
              f"{min(exports):.2f}-{max(exports):.2f} s each; {s1['acked']} acked ({s1['acked_per_s']}/s), "
              f"ack latency p99 {s1['ack_latency_ms']['p99']} ms, max {s1['ack_latency_ms']['max']} ms; "
              f"WAL max {wal_max / 2**20:.1f} MiB over {len(wal)} samples")
        assert len(exports) >= 2, "fewer than two exports in the load"
        assert max(exports) <= EXPORT_MAX_S, f"an export took {max(exports):.1f} s under load"
        assert s1["rejected"] == 0 and s1["unanswered"] == 0, s1
        assert wal_max <= WAL_BOUND, f"WAL reached {wal_max / 2**20:.1f} MiB during exports (bound 8 MiB)"

        # the paged export equals the store (nothing written to these rows any more)
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        want = [(str(i), st) for i, st in con.execute("SELECT id, state FROM experiments ORDER BY id")]
        params = {str(i): json.loads(p) for i, p in con.execute("SELECT id, params FROM experiments")}
        con.close()
        rows = list(csv.reader(open(out)))
        head = rows[0]
        assert [(x[0], x[5]) for x in rows[1:]] == want
        for x in rows[1:]:
            for k, v in params[x[0]].items():
                assert abs(float(x[head.index(k)]) - v) <= 1e-9 * max(1.0, abs(v)), (x[0], k)

        # --- the probe sees growth: an outside read transaction held during the same load
        hold = sqlite3.connect(db, isolation_level=None)
        hold.execute("BEGIN")
        hold.execute("SELECT count(*) FROM experiments").fetchone()
        load = run_load(endpoint, reqs, READER_S, env)
        procs.append(load)
        grown = 0
        while load.poll() is None:
            grown = max(grown, wal_size(db))
            time.sleep(0.1)
        s2 = load_summary(load)
        hold.execute("COMMIT")
        hold.close()
        print(f"control: one read transaction held for {READER_S} s of load: WAL reached "
              f"{grown / 2**20:.1f} MiB ({s2['acked']} acked)")
        assert grown > WAL_BOUND, "the WAL did not pass the bound behind a held reader: the probe is blind"
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Load benchmarks against a real labloopd: reliability.md §4.1 L2 and L8, §4.2 F16.

    bench_load.py l2|l8|f16|all [--full] [--build DIR] [--check] [--keep]

Prints numbers and, per row, whether the matrix's pass criterion was met. Without --full each
row runs a short version (about a minute) for development; --full is what scripts/nightly.sh
runs. --check: exit 1 when a pass criterion was not met (the default is exit 0: a benchmark).
Programs come from --build DIR (default build-rel: a RelWithDebInfo build without sanitizers),
or from $LABLOOPD, $LABLOOP and $LL_BINARY_DIR when ctest runs it (label bench).

Every row starts from a database prepared by `bench_station fixture` (tests/bench/
bench_station.c) before labloopd starts: a finished campaign whose started `measure` steps are
the requests the stations' measurements answer (labloopd checks each against its steps), so
that no instruments or labsim are needed.

L2 (burst replay after an outage): a station (`bench_station replay`, docs/protocol.md's
resend rules) spooled N messages (50,000 with --full, 10,000 without) while labloopd was down;
it starts first (ZeroMQ keeps connecting), then labloopd starts under a systemd watchdog
emulator (NOTIFY_SOCKET, WATCHDOG_USEC 4 s: pings expected every 2 s; the unit has 30 s) and
the station replays with W unacked (--window, default 32). Meanwhile `labloop status` runs
every 100 ms (each call's wall time, as an operator sees it, including the CLI's start).
Measures replay throughput, status latency p50/p99/max during the replay, the longest gap
between WATCHDOG=1 pings, the analysis backlog's drain time, and checks exactly-once: every
spooled (seq, SHA-256) stored once, nothing else stored or rejected for the station.
Pass: all stored exactly once; status p99 <= 200 ms during the replay; no ping gap over
WATCHDOG_USEC.

L8 (planning under load): the time of one q = 4 proposal at n = 100 (perovskite world, 6
inputs, 2 objectives), idle and while L1's load (`bench_station load`: 8 stations, 6 J-V and
2 EIS, W = 32 each) runs against labloopd: `bench_planner --no-loops --timing-n 100` (planner_ask
alone, median of R) and `labloop plan` with 100 observations (the command's wall time, median
of R). Prints both, the ingest rate and ack latency during the timed window and over the whole
load. Same machine for all (2 cores): the planner competes with labloopd and the generator.
Pass: proposal time under load within 20 % of idle; ingest >= 2,000 acked/s and p99 ack
latency <= 50 ms during the load.

F16 (WAL growth from a long reader): labloopd with a large finished campaign (FILLER
experiments: 20,000, --full 100,000) under L1's load for S s (60, --full 600), while `labloop
export` runs back to back; the WAL file's size is sampled every 0.25 s. Pass: the WAL stays
bounded (<= 2 x the auto-checkpoint size, 8 MiB). `--reader` adds a control run in which an
outside SQLite connection holds one read transaction for the whole load: what an export that
held one would do (the WAL then grows with every commit).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("LL_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
os.environ["LL_SOURCE_DIR"] = SRC  # bench_station reads the example messages from there
WAL_BOUND = 8 << 20  # 2 x SQLite's auto-checkpoint (1000 pages of 4 KiB)


class Progs:
    def __init__(self, build):
        bdir = os.environ.get("LL_BINARY_DIR") if build is None else build
        bdir = os.path.abspath(bdir or os.path.join(SRC, "build-rel"))
        self.labloopd = os.environ.get("LABLOOPD") if build is None else None
        self.labloopd = self.labloopd or os.path.join(bdir, "daemon", "labloopd")
        self.labloop = (os.environ.get("LABLOOP") if build is None else None) or os.path.join(bdir, "daemon", "labloop")
        self.labsim = (os.environ.get("LABSIM") if build is None else None) or os.path.join(bdir, "simulators", "labsim")
        self.station = os.path.join(bdir, "tests", "bench_station")
        self.planner = os.path.join(bdir, "tests", "bench_planner")
        for p in (self.labloopd, self.labloop, self.station):
            if not os.access(p, os.X_OK):
                sys.exit(f"bench_load: {p} not found: build first (cmake --build {bdir})")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def write_lab(tmp):
    """config/lab.conf with a free stations port (nothing listens on the instruments' ports:
    the fixture's campaign is finished, so no step starts)."""
    port = free_port()
    text = open(os.path.join(SRC, "config/lab.conf")).read()
    text = text.replace("tcp://127.0.0.1:5555", f"tcp://127.0.0.1:{port}").replace("port = 15020;", "port = 0;")
    path = os.path.join(tmp, "lab.conf")
    open(path, "w").write(text)
    return path, f"tcp://127.0.0.1:{port}"


class Notify:
    """A systemd-like notify socket: records (time, message) of every datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.got = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                msg = self.sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            self.got.append((time.time(), msg))

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()

    def pings(self):
        return [t for t, m in self.got if "WATCHDOG=1" in m.split("\n")]

    def ready_at(self):
        return next((t for t, m in self.got if "READY=1" in m.split("\n")), None)


class Daemon:
    def __init__(self, progs, tmp, lab, watchdog_usec=None):
        self.run_dir = os.path.join(tmp, "run")
        self.db = os.path.join(tmp, "l.db")
        self.log = os.path.join(tmp, "labloopd.log")
        self.notify = None
        argv = [progs.labloopd, "--lab", lab, "--db", self.db, "--run-dir", self.run_dir]
        env = dict(os.environ)
        if watchdog_usec:
            self.notify = Notify(os.path.join(tmp, "notify"))
            env.update(NOTIFY_SOCKET=self.notify.path, WATCHDOG_USEC=str(watchdog_usec))
            argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"] + argv
        try:  # a socket file left by an earlier labloopd on this run folder
            os.unlink(os.path.join(self.run_dir, "control"))
        except OSError:
            pass
        self.started = time.time()
        self.proc = subprocess.Popen(argv, stderr=open(self.log, "a"), env=env)

    def wait_socket(self, timeout=120):
        """Until the control socket exists (labloopd opened the store and bound it)."""
        deadline = time.time() + timeout
        while not os.path.exists(os.path.join(self.run_dir, "control")):
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("labloopd did not start: " + open(self.log).read()[-2000:])
            time.sleep(0.01)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.notify:
            self.notify.close()
        return self.proc.returncode

    def rss_kb(self):
        try:
            pid = self.proc.pid
            if self.notify:  # sh exec'd labloopd: same pid
                pass
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None


class StatusSampler:
    """`labloop status` every `every` s in a thread: (start time, wall seconds, exit status)."""

    def __init__(self, progs, run_dir, every=0.1):
        self.progs, self.run_dir, self.every = progs, run_dir, every
        self.samples = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        nxt = time.time()
        while not self.stop:
            t0 = time.time()
            r = subprocess.run([self.progs.labloop, "status", "--run-dir", self.run_dir, "--timeout", "10000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.samples.append((t0, time.time() - t0, r.returncode))
            nxt += self.every
            time.sleep(max(0.0, nxt - time.time()))
            nxt = max(nxt, time.time())

    def close(self):
        self.stop = True
        self.thread.join()

    def between(self, a, b):
        return [s for s in self.samples if a <= s[0] < b]


def summarise_status(samples):
    lat = [s[1] * 1000 for s in samples]
    failed = sum(1 for s in samples if s[2] != 0)
    return {"n": len(lat), "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
            "max_ms": round(max(lat), 1) if lat else None, "failed": failed}


def run_fixture(progs, db, stations, per_station, filler=0):
    r = subprocess.run([progs.station, "fixture", db, stations, str(per_station), str(filler)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("fixture: " + r.stderr)
    path = db + ".requests"
    open(path, "w").write(r.stdout)
    return path


class Reader(threading.Thread):
    """Collects a bench_station process's 'tick' and 'summary' lines."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc, self.ticks, self.summary = proc, [], None
        self.start()

    def run(self):
        for line in self.proc.stdout:
            if line.startswith("tick "):
                _, t, n = line.split()
                self.ticks.append((int(t) / 1000.0, int(n)))
            elif line.startswith("summary "):
                self.summary = json.loads(line[8:])


# --- L2 ---------------------------------------------------------------------------------------

def row_l2(progs, args, tmp):
    n = 50000 if args.full else 10000
    wd_usec = 4000000
    lab, endpoint = write_lab(tmp)
    db = os.path.join(tmp, "l.db")
    reqs = run_fixture(progs, db, "replay-1:jv", 64)
    spool = os.path.join(tmp, "station")
    r = subprocess.run([progs.station, "spool", spool, "replay-1", reqs, str(n)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("spool: " + r.stderr)
    print("  " + r.stdout.strip())
    epoch = open(os.path.join(spool, "epoch")).read().strip()
    station = subprocess.Popen([progs.station, "replay", endpoint, spool, str(args.window), "1800"],
                               stdout=subprocess.PIPE, text=True)
    reader = Reader(station)
    time.sleep(1.0)  # the station is up and retrying; labloopd is still down
    daemon = Daemon(progs, tmp, lab, watchdog_usec=wd_usec)
    daemon.wait_socket()
    sampler = StatusSampler(progs, daemon.run_dir)
    station.wait()
    reader.join()
    t_replayed = time.time()
    # the analysis backlog: every stored measurement analysed
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    backlog_left = None
    deadline = time.time() + (1800 if args.full else 300)
    while time.time() < deadline:
        backlog_left = con.execute("SELECT count(*) FROM measurements WHERE analysed = 0").fetchone()[0]
        if backlog_left == 0:
            break
        time.sleep(0.5)
    con.close()
    t_analysed = time.time()
    sampler.close()
    rss = daemon.rss_kb()
    rc = daemon.stop()
    s = reader.summary or {}
    first_ack = s.get("first_ack_unix_ms", 0) / 1000.0
    during = summarise_status(sampler.between(daemon.started, t_replayed))
    after = summarise_status(sampler.between(t_replayed, t_analysed))
    pings = [t for t in daemon.notify.pings() if t <= t_replayed]
    ready = daemon.notify.ready_at()
    marks = ([ready] if ready else []) + pings + [t_replayed]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    max_gap = max(gaps) if gaps else float("inf")
    # exactly once: every spooled (seq, sha256) stored once, nothing else for the station
    want = {}
    with open(os.path.join(spool, "spool.jsonl"), "rb") as f:
        for seq, line in enumerate(f, start=1):
            want[seq] = hashlib.sha256(line.rstrip(b"\n")).hexdigest()
    con = sqlite3.connect(db)
    rows = con.execute("SELECT seq, hash, epoch FROM measurements WHERE station = 'replay-1'").fetchall()
    rejected = con.execute("SELECT count(*) FROM rejections WHERE station = 'replay-1'").fetchone()[0]
    con.close()
    got = {}
    dup_rows = 0
    for seq, h, e in rows:
        if e != epoch or seq in got:
            dup_rows += 1
        got[seq] = h
    missing = [q for q in want if q not in got]
    wrong = [q for q in want if q in got and got[q] != want[q]]
    exactly_once = not missing and not wrong and dup_rows == 0 and len(rows) == n and rejected == 0
    secs = s.get("last_ack_unix_ms", 0) / 1000.0 - daemon.started
    print(f"  replay: {n} messages, window {args.window}: stored {s.get('stored')}, duplicate "
          f"{s.get('duplicate')}, rejected {s.get('rejected')}, resent {s.get('resent')}; "
          f"labloopd start to last ack {secs:.1f} s ({n / secs:.0f} acked/s), first ack "
          f"{first_ack - daemon.started:.2f} s after start; ack latency p50 "
          f"{s.get('ack_latency_ms', {}).get('p50')} ms, p99 {s.get('ack_latency_ms', {}).get('p99')} ms, "
          f"max {s.get('ack_latency_ms', {}).get('max')} ms (from first send, so the outage counts)")
    print(f"  labloop status during the replay: {during['n']} calls, p50 {during['p50_ms']} ms, p99 "
          f"{during['p99_ms']} ms, max {during['max_ms']} ms, {during['failed']} failed")
    print(f"  analysis backlog drained {t_analysed - t_replayed:.1f} s after the last ack "
          f"({'all analysed' if backlog_left == 0 else f'{backlog_left} left'}); status meanwhile: "
          f"p50 {after['p50_ms']} ms, p99 {after['p99_ms']} ms, max {after['max_ms']} ms")
    print(f"  watchdog (WATCHDOG_USEC {wd_usec / 1e6:.0f} s, pings due every {wd_usec / 2e6:.0f} s): "
          f"{len(pings)} pings during the replay, longest gap {max_gap:.2f} s; labloopd peak RSS "
          f"{rss / 1024 if rss else float('nan'):.1f} MiB; exit {rc}")
    print(f"  exactly once: {len(rows)} rows for {n} messages, {len(missing)} missing, {len(wrong)} with "
          f"other bytes, {dup_rows} extra, {rejected} rejected")
    crit = {
        "all stored exactly once": exactly_once,
        f"status p99 <= 200 ms during the replay ({during['p99_ms']} ms)": during["p99_ms"] <= 200 and during["failed"] == 0,
        f"no watchdog trip (longest ping gap {max_gap:.2f} s <= {wd_usec / 1e6:.0f} s)": max_gap <= wd_usec / 1e6,
    }
    return crit


# --- L1's load (shared by L8 and F16) ------------------------------------------------------------

L1_STATIONS = ",".join([f"st-{i}:jv" for i in range(6)] + [f"st-{i}:eis" for i in (6, 7)])


class Load:
    """`bench_station load`: 8 stations (6 J-V, 2 EIS), W = 32 each, for `seconds`."""

    def __init__(self, progs, endpoint, reqs, seconds, stations=8, window=32):
        self.started = time.time()
        self.proc = subprocess.Popen([progs.station, "load", endpoint, reqs, str(stations), str(window),
                                      str(seconds)], stdout=subprocess.PIPE, text=True)
        self.reader = Reader(self.proc)

    def wait(self):
        self.proc.wait()
        self.reader.join()
        return self.reader.summary or {}

    def rate_between(self, a, b):
        """Acked per second over the seconds that overlap [a, b]."""
        ticks = [n for t, n in self.reader.ticks if t < b and t + 1.0 > a]
        return sum(ticks) / len(ticks) if ticks else float("nan")


def describe_load(s, label="L1 load"):
    lat = s.get("ack_latency_ms", {})
    return (f"{label}: {s.get('stations')} stations x W {s.get('window')}, {s.get('seconds')} s: "
            f"{s.get('acked')} acked ({s.get('acked_per_s')}/s), {s.get('rejected')} rejected, "
            f"{s.get('unanswered')} unanswered; ack latency p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, "
            f"max {lat.get('max')} ms")


# --- L8 -----------------------------------------------------------------------------------------

def planning_inputs(progs, tmp):
    """OBS.csv with 100 observations of the perovskite world (the campaign's space-filling
    design, measured by `labsim world perovskite` with its noise) for `labloop plan`."""
    camp = os.path.join(SRC, "config/problems/perovskite.conf")
    design = os.path.join(tmp, "design.conf")
    text = re.sub(r"initial = \d+;", "initial = 200;", open(camp).read())
    open(design, "w").write(re.sub(r"budget = \d+;", "budget = 300;", text))
    obs = os.path.join(tmp, "obs.csv")
    rows = []
    for batch in (64, 36):
        cmd = [progs.labloop, "plan", design, "--batch", str(batch)]
        if rows:
            cmd += ["--data", obs]
        prop = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        meas = subprocess.run([progs.labsim, "world", "perovskite", "--seed", str(len(rows) + 1)], input=prop,
                              capture_output=True, text=True, check=True).stdout.splitlines()
        rows = (rows or meas[:1]) + meas[1:]
        open(obs, "w").write("\n".join(rows) + "\n")
    assert len(rows) == 101, len(rows)
    return camp, obs


def time_planning(progs, camp, obs, reps):
    """(median s of planner_ask by bench_planner, median s of `labloop plan` wall, start, end)."""
    t0 = time.time()
    out = subprocess.run([progs.planner, "--no-loops", "--timing-n", "100", "--timing-reps", str(reps)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"n = 100: median ([0-9.]+) s", out)
    ask = float(m.group(1)) if m else float("nan")
    walls = []
    for _ in range(reps):
        a = time.time()
        subprocess.run([progs.labloop, "plan", camp, "--data", obs, "--batch", "4"], capture_output=True, check=True)
        walls.append(time.time() - a)
    return ask, statistics.median(walls), t0, time.time()


def row_l8(progs, args, tmp):
    reps = args.reps or (15 if args.full else 5)
    seconds = args.seconds or (300 if args.full else 45)
    lab, endpoint = write_lab(tmp)
    db = os.path.join(tmp, "l.db")
    reqs = run_fixture(progs, db, L1_STATIONS, 16)
    camp, obs = planning_inputs(progs, tmp)
    daemon = Daemon(progs, tmp, lab, watchdog_usec=4000000)
    daemon.wait_socket()
    idle_ask, idle_plan, _, _ = time_planning(progs, camp, obs, reps)
    load = Load(progs, endpoint, reqs, seconds)
    sampler = StatusSampler(progs, daemon.run_dir, every=1.0)
    time.sleep(min(10, seconds / 5))  # the load settles
    load_ask, load_plan, a, b = time_planning(progs, camp, obs, reps)
    s = load.wait()
    t_end = time.time()
    sampler.close()
    rss = daemon.rss_kb()
    daemon.stop()
    pings = [t for t in daemon.notify.pings() if load.started <= t <= t_end]
    marks = [load.started] + pings + [t_end]
    max_gap = max(b2 - a2 for a2, b2 in zip(marks, marks[1:]))
    during = load.rate_between(a, b)
    st = summarise_status(sampler.between(load.started, load.started + seconds))
    print(f"  one proposal of q = 4 at n = 100 (median of {reps}): planner_ask idle {idle_ask * 1000:.0f} ms, "
          f"under load {load_ask * 1000:.0f} ms ({load_ask / idle_ask:.2f} x); `labloop plan` wall idle "
          f"{idle_plan * 1000:.0f} ms, under load {load_plan * 1000:.0f} ms ({load_plan / idle_plan:.2f} x)")
    print(f"  ingest while the proposals were timed ({b - a:.1f} s): {during:.0f} acked/s")
    print("  " + describe_load(s))
    print(f"  labloop status during the load: {st['n']} calls, p50 {st['p50_ms']} ms, p99 {st['p99_ms']} ms, "
          f"max {st['max_ms']} ms, {st['failed']} failed; labloopd peak RSS "
          f"{rss / 1024 if rss else float('nan'):.1f} MiB; watchdog (WATCHDOG_USEC 4 s): {len(pings)} pings "
          f"during the load, longest gap {max_gap:.2f} s")
    p99 = s.get("ack_latency_ms", {}).get("p99", float("inf"))
    return {
        f"planner_ask under load within 20 % of idle ({load_ask / idle_ask:.2f} x)": load_ask <= 1.2 * idle_ask,
        f"ingest >= 2,000 acked/s while planning ({during:.0f}/s)": during >= 2000,
        f"L1's p99 ack latency <= 50 ms ({p99} ms)": p99 <= 50,
    }


# --- F16 ----------------------------------------------------------------------------------------

class WalSampler:
    def __init__(self, db, every=0.25):
        self.path, self.every, self.samples, self.stop = db + "-wal", every, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                self.samples.append((time.time(), os.stat(self.path).st_size))
            except OSError:
                self.samples.append((time.time(), 0))
            time.sleep(self.every)

    def close(self):
        self.stop = True
        self.thread.join()
        return max((b for _, b in self.samples), default=0)


class Exporter:
    """`labloop export` back to back: (start, seconds, exit status, rows)."""

    def __init__(self, progs, run_dir, out):
        self.progs, self.run_dir, self.out, self.runs, self.stop = progs, run_dir, out, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            t0 = time.time()
            r = subprocess.run([self.progs.labloop, "export", "--run-dir", self.run_dir, "--timeout", "120000",
                                "--format", "csv", "--output", self.out], capture_output=True)
            rows = sum(1 for _ in open(self.out)) - 1 if r.returncode == 0 else -1
            self.runs.append((t0, time.time() - t0, r.returncode, rows))

    def close(self):
        self.stop = True
        self.thread.join()


def f16_phase(progs, tmp, lab, endpoint, reqs, seconds, reader):
    daemon = Daemon(progs, tmp, lab)
    daemon.wait_socket()
    hold = None
    if reader:  # the control: one read transaction held from before the load to its end
        hold = sqlite3.connect(daemon.db, isolation_level=None)
        hold.execute("BEGIN")
        hold.execute("SELECT count(*) FROM experiments").fetchone()
    wal = WalSampler(daemon.db)
    load = Load(progs, endpoint, reqs, seconds)
    exporter = None if reader else Exporter(progs, daemon.run_dir, os.path.join(tmp, "export.csv"))
    s = load.wait()
    if exporter:
        exporter.close()
    if hold:
        hold.execute("COMMIT")
        hold.close()
    time.sleep(1.0)
    wal_max = wal.close()
    wal_end = wal.samples[-1][1] if wal.samples else 0
    daemon.stop()
    return s, wal, wal_max, wal_end, exporter


def row_f16(progs, args, tmp):
    seconds = args.seconds or (600 if args.full else 60)
    filler = 100000 if args.full else 20000
    lab, endpoint = write_lab(tmp)
    db = os.path.join(tmp, "l.db")
    reqs = run_fixture(progs, db, L1_STATIONS, 16, filler)
    # one export on the idle daemon: its size and time
    daemon = Daemon(progs, tmp, lab)
    daemon.wait_socket()
    t0 = time.time()
    out = os.path.join(tmp, "export.csv")
    r = subprocess.run([progs.labloop, "export", "--run-dir", daemon.run_dir, "--timeout", "120000", "--output", out],
                       capture_output=True, text=True)
    idle_s = time.time() - t0
    idle_rows = sum(1 for _ in open(out)) - 1 if r.returncode == 0 else -1
    daemon.stop()
    print(f"  idle export: {idle_rows} experiments, {os.path.getsize(out) / 1e6:.1f} MB CSV in {idle_s:.2f} s")
    s, wal, wal_max, wal_end, exp = f16_phase(progs, tmp, lab, endpoint, reqs, seconds, reader=False)
    durs = [d for _, d, rc, _ in exp.runs if rc == 0]
    bad = [x for x in exp.runs if x[2] != 0 or x[3] < idle_rows]
    print(f"  during {seconds} s of L1 load: {len(exp.runs)} exports back to back, {len(bad)} failed or short; "
          f"export time p50 {pct(durs, 0.5):.2f} s, max {max(durs) if durs else float('nan'):.2f} s")
    print("  " + describe_load(s))
    print(f"  WAL: max {wal_max / 2**20:.1f} MiB over {len(wal.samples)} samples (every 0.25 s), "
          f"{wal_end / 2**20:.1f} MiB at the end (bound {WAL_BOUND / 2**20:.0f} MiB)")
    crit = {f"WAL bounded during exports under load (max {wal_max / 2**20:.1f} MiB <= "
            f"{WAL_BOUND / 2**20:.0f} MiB)": wal_max <= WAL_BOUND,
            f"every export complete ({len(bad)} failed or short)": not bad and len(exp.runs) > 0}
    if args.reader:  # on a new store: the one above holds the whole load, unanalysed
        secs = min(seconds, 60)
        tmp2 = os.path.join(tmp, "control")
        os.makedirs(tmp2)
        lab2, endpoint2 = write_lab(tmp2)
        reqs2 = run_fixture(progs, os.path.join(tmp2, "l.db"), L1_STATIONS, 16)
        s2, wal2, wal2_max, wal2_end, _ = f16_phase(progs, tmp2, lab2, endpoint2, reqs2, secs, reader=True)
        print(f"  control, an outside connection holding one read transaction for {secs} s of L1 load: "
              f"WAL max {wal2_max / 2**20:.1f} MiB ({s2.get('acked')} acked); {wal2_end / 2**20:.1f} MiB "
              "after it ended (SQLite does not shrink the file)")
    return crit


# --- main ---------------------------------------------------------------------------------------

ROWS = {"l2": row_l2, "l8": row_l8, "f16": row_f16}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("row", choices=sorted(ROWS) + ["all"])
    ap.add_argument("--full", action="store_true", help="the nightly size")
    ap.add_argument("--build", help="build folder with labloopd, labloop, bench_station, bench_planner")
    ap.add_argument("--check", action="store_true", help="exit 1 when a pass criterion is not met")
    ap.add_argument("--daemon", help="another labloopd (e.g. an older tree's, to compare)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--window", type=int, default=32, help="L2: the station's unacked messages")
    ap.add_argument("--reps", type=int, default=0, help="L8: proposals timed per phase")
    ap.add_argument("--seconds", type=int, default=0, help="L8/F16: seconds of L1 load")
    ap.add_argument("--reader", action="store_true", help="F16: also the long-reader control run")
    args = ap.parse_args()
    progs = Progs(args.build)
    if args.daemon:
        progs.labloopd = os.path.abspath(args.daemon)
    ok = True
    for row in (sorted(ROWS) if args.row == "all" else [args.row]):
        tmp = tempfile.mkdtemp(prefix=f"bench_load_{row}.")
        print(f"== {row.upper()} ({'full' if args.full else 'short'}) {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
              f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores, {tmp}")
        crit = ROWS[row](progs, args, tmp)
        for what, met in crit.items():
            print(f"  {'PASS' if met else 'FAIL'}: {what}")
            ok = ok and met
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok or not args.check else 1)


if __name__ == "__main__":
    main()

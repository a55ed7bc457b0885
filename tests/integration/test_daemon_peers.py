#!/usr/bin/env python3
"""Many peers and denial of service against a real labloopd (reliability.md §4.1 L4, §4.4 S7).

labloopd runs on a lab without instruments, so the only sockets it holds are its own and the
stations'; the stations are this script's own ZeroMQ DEALERs and raw TCP sockets. Its open
descriptors are counted in /proc/PID/fd, its memory read from /proc/PID/status (VmRSS). It runs
with RLIMIT_NOFILE 1024, what systemd gives a service. One labloopd serves every part.

L4, many peers: every second 64 stations (DEALERs with the routing ids st-00 … st-63) connect,
each sends a `hello` and a measurement and waits for its `ack`, and all 64 disconnect; for
LL_PEERS_SECONDS seconds (30 in CI, 300 in scripts/nightly.sh). The names are reused, as a lab
reuses its stations': labloopd keeps per-station state (last seen, counters, the epoch it last
stored) in a table of INGEST_MAX_STATIONS (64) entries, where new names would only replace
one another (S7 d below). The measurement names a request labloopd never sent, so each is answered
`rejected` after a store commit: the whole ingest path, not only the socket.
Asserted: every ack arrives; the descriptor count never exceeds its value before the run by
more than the 64 peers and a few, and returns to it; RSS grows by at most LEAK_B_PER_CONN
(128 B) per connection over the last two thirds of the run. The first third, and a warm-up
before it (48 rejections of 60 KiB, which fill SQLite's 2 MiB page cache, and 10 rounds), let
the allocators settle. Measured on 2026-11-26 without a leak: 45–77 B per connection over 30 s
(ASan and gcc builds, 5 runs each), 9 B over 5 min; with a reachable 160-byte allocation added
per hello (a leak LeakSanitizer cannot see): 500 B (ASan) and 230 B (gcc) per connection, a
failure.

S7 (a), connection flood: for 10 s a separate process opens 1,000 TCP connections a second to
the stations port: 4 in 10 closed at once, 5 in 10 after 1–64 random bytes, 1 in 10 sends
half a ZMTP greeting and then nothing (slowloris), held until labloopd drops it. Meanwhile a
station (DEALER jv-1) sends a measurement every 20 ms and times each ack. Asserted: every
measurement acked, p99 ≤ 500 ms; at most 100 held connections a second × (5 s handshake
timeout + 1 s) descriptors above the baseline, and back to it after; RSS at most 16 KiB per
such connection above its value before; every held connection closed by labloopd.

S7 (b), slowloris: 500 connections each send half a ZMTP greeting and wait. labloopd sets
ZMQ_HANDSHAKE_IVL to INGEST_HANDSHAKE_MS (5 s; libzmq's default is 30 s): asserted that every
one is closed by labloopd 4–8 s after it opened, that the descriptor count returns to its
baseline, and that RSS grows by at most 1 MiB over its value after (a), which held as many:
the flood's memory is reused, not kept.

S7 (c), more held connections than descriptors: 1,000 connections a second, every one held,
for 3 s (3,000 against 1,024 descriptors). labloopd's connection guard (daemon/ingest.h)
closes the stations socket at 768 open descriptors and reopens it after 1 s (then 2 s ...).
Asserted: the descriptor count stays below 1,024; `labloop status` (the control socket, whose
libzmq listener aborts the process if it cannot accept) answers every time during the flood;
an `ingest.flood` event is stored; jv-1, dropped with the flood, is acked again after it.

S7 (d), made-up station names: 200 DEALERs, each with its own name, send a heartbeat; then
jv-1, the lab's station, says hello. Asserted: jv-1 is online in `labloop status` (within 5 s).
Before 2026-11-26 the 64-entry station table was first come: it filled with the made-up names,
jv-1 was never online, and the engine would never have sent it a measure request.

Memory under AddressSanitizer: see ASAN_MEASURE.
"""
import json
import os
import random
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOPD, free_port, labloop, wait_for  # noqa: E402

NOFILE = 1024  # systemd's default soft limit for a service
PEERS = 64
WARM_ROUNDS = 10
LEAK_B_PER_CONN = 128
FLOOD_S = 10
FLOOD_RATE = 1000
FLOOD_HOLD_EVERY = 10  # one connection in ten is a held partial greeting
FLOOD_P99_MAX_MS = 500
FLOOD_RSS_PER_HELD_KB = 16
SLOW_RSS_MAX_KB = 1024
SLOW_N = 500
HANDSHAKE_S = 5.0  # INGEST_HANDSHAKE_MS in daemon/ingest.h
IDENTITY_N = 200
EXHAUST_S = 3
EXHAUST_RATE = 1000  # every one held: 3,000 connections against 1,024 descriptors
GREETING_PART = b"\xff\x00\x00\x00\x00"  # 5 of the 10 signature bytes of a ZMTP 3 greeting

# AddressSanitizer, for the daemon in this test: freed memory reused at once (no quarantine), no
# allocation stacks kept (ASan's stack depot grows with every new stack it records, and the
# stacks it takes through uninstrumented libzmq are mostly new: 300 B per connection here), and
# nothing given back to the system in the middle of a measurement (RSS is the heap's high-water
# mark, as a leak-free steady state keeps it flat). Leaks are still detected at exit.
ASAN_MEASURE = ("quarantine_size_mb=0:thread_local_quarantine_size_kb=0:malloc_context_size=0:"
                "allocator_release_to_os_interval_ms=-1")

procs = []


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def start_daemon(tmp, port):
    lab = os.path.join(tmp, "lab.conf")
    open(lab, "w").write('lab: {\n  name = "peers";\n  instruments = ();\n'
                         '  stations = ( { name = "jv-1"; kinds = [ "jv" ]; place = "jv"; } );\n'
                         f'  daemon = {{ stations_endpoint = "tcp://127.0.0.1:{port}"; }};\n}};\n')
    run = os.path.join(tmp, "run")
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":" + ASAN_MEASURE
    env["GLIBC_TUNABLES"] = "glibc.malloc.trim_threshold=1073741824"  # without ASan: no trimming either

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    p = subprocess.Popen([LABLOOPD, "--lab", lab, "--db", os.path.join(tmp, "l.db"), "--run-dir", run],
                         stderr=open(os.path.join(tmp, "labloopd.log"), "a"), env=env, preexec_fn=limit)
    procs.append(p)
    wait_for("labloopd", lambda: p.poll() is not None or labloop(run, "status").returncode == 0, timeout=30)
    assert p.poll() is None, "labloopd did not start"
    return p, run


def measurement(station, seq, pad=0):
    # well-formed, for a request labloopd never sent: stored as a rejection and answered
    m = {"v": 1, "type": "measurement", "station": station, "seq": seq, "request": "r-none",
         "kind": "stability", "sample": "S1", "time": "2026-11-25T17:40:03.120Z",
         "data": {"time_h": [0, 1, 2], "normalised_pce": [1.0, 0.99, 0.98]}}
    if pad:
        m["pad"] = "x" * pad
    return json.dumps(m).encode()


def dealer(ctx, name, port):
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.ROUTING_ID, name.encode())
    d.setsockopt(zmq.LINGER, 0)
    d.connect(f"tcp://127.0.0.1:{port}")
    return d


def settle_fds(pid, want, timeout):
    """Waits until the descriptor count is back to want; returns the seconds it took."""
    t0 = time.time()
    wait_for(f"descriptor count back to {want} (now {fd_count(pid)})", lambda: fd_count(pid) <= want,
             timeout=timeout)
    return time.time() - t0


def warm_up(ctx, port):
    """Fills SQLite's page cache (2 MiB) with 48 rejections of 60 KiB, then WARM_ROUNDS rounds."""
    d = dealer(ctx, "st-00", port)
    for i in range(48):
        d.send(measurement("st-00", i + 1, pad=60 * 1024))
    for _ in range(48):
        assert d.poll(10000), "warm-up: no ack"
        d.recv()
    d.close()
    seq = 1000
    for _ in range(WARM_ROUNDS):
        seq, _, _ = peer_round(ctx, port, seq)


def peer_round(ctx, port, seq):
    """64 stations connect, send hello and a measurement, wait for the ack, disconnect.
    Returns (next seq, ack latencies in ms, seconds the round took)."""
    t0 = time.time()
    socks = [dealer(ctx, "st-%02d" % i, port) for i in range(PEERS)]
    sent = {}
    for i, d in enumerate(socks):
        name = "st-%02d" % i
        d.send(json.dumps({"v": 1, "type": "hello", "station": name, "kinds": ["stability"]}).encode())
        d.send(measurement(name, seq))
        sent[d] = (seq, time.time())
        seq += 1
    poller = zmq.Poller()
    for d in socks:
        poller.register(d, zmq.POLLIN)
    lat = []
    deadline = time.time() + 10
    while sent and time.time() < deadline:
        for d, _ in poller.poll(100):
            ack = json.loads(d.recv())
            want, at = sent.pop(d)
            assert ack["seq"] == want and ack["status"] == "rejected", ack
            lat.append(1000 * (time.time() - at))
    assert not sent, f"{len(sent)} of {PEERS} peers got no ack within 10 s"
    for d in socks:
        d.close()
    return seq, lat, time.time() - t0


def test_many_peers(ctx, port, pid, seconds):
    assert seconds >= 6, "LL_PEERS_SECONDS: at least 6"
    warm_up(ctx, port)
    time.sleep(1)  # the last round's connections closed
    base_fds, rss0 = fd_count(pid), rss_kb(pid)
    seq = 100000
    lat, max_fds, rss_series = [], base_fds, []
    t_end = time.time() + seconds
    while time.time() < t_end:
        t0 = time.time()
        seq, round_lat, took = peer_round(ctx, port, seq)
        lat += round_lat
        max_fds = max(max_fds, fd_count(pid))
        rss_series.append(rss_kb(pid))
        if os.environ.get("LL_PEERS_DEBUG"):
            print(f"round {len(rss_series)}: {took:.3f} s, fds {fd_count(pid)}, RSS {rss_series[-1]} KiB")
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))
        max_fds = max(max_fds, fd_count(pid))
    settle_fds(pid, base_fds, 10)
    rss1 = rss_kb(pid)
    rounds = len(rss_series)
    mark = rounds // 3
    window = (rounds - mark) * PEERS
    per_conn = 1024 * (rss1 - rss_series[mark - 1]) / window
    lat.sort()
    print(f"L4: {rounds} rounds of {PEERS} peers ({rounds * PEERS} connections) in {seconds} s; "
          f"ack p50 {lat[len(lat) // 2]:.1f} ms, p99 {lat[int(len(lat) * 0.99)]:.1f} ms")
    print(f"L4: fds {base_fds} before, at most {max_fds} during, {fd_count(pid)} after; RSS {rss0} KiB before, "
          f"{rss_series[mark - 1]} after round {mark}, {rss1} after the last ({rss1 - rss0:+d} KiB in all; "
          f"{rss1 - rss_series[mark - 1]:+d} KiB over the last {window} connections: {per_conn:+.0f} B each)")
    assert max_fds <= base_fds + PEERS + 8, f"{max_fds} descriptors open with {PEERS} peers (base {base_fds})"
    assert fd_count(pid) == base_fds
    assert per_conn <= LEAK_B_PER_CONN, \
        f"RSS grew {per_conn:.0f} B per connection over the last {window} connections: a per-peer leak?"


def flood(port, seconds, rate, hold_every, wait, seed):
    """The flooding process: `rate` TCP connections per second for `seconds`, one in
    `hold_every` held after a partial greeting; then, if `wait`, waits until the far end has
    closed every held connection (at most 2 × the handshake timeout + 2 s). Prints a summary."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rnd = random.Random(seed)
    held, n, kinds = [], 0, [0, 0, 0]
    t0 = time.time()
    while time.time() - t0 < seconds:
        due = int((time.time() - t0) * rate)
        while n < due:
            try:
                s = socket.socket()
            except OSError:  # out of descriptors here
                n += 1
                continue
            try:
                s.connect(("127.0.0.1", port))
                if n % hold_every == 0:
                    s.send(GREETING_PART)
                    s.setblocking(False)
                    held.append(s)
                    kinds[2] += 1
                elif n % 2:
                    s.send(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64))))
                    s.close()
                    kinds[1] += 1
                else:
                    s.close()
                    kinds[0] += 1
            except OSError:
                s.close()
            n += 1
        time.sleep(0.001)
    took = time.time() - t0
    deadline = time.time() + (2 * HANDSHAKE_S + 2 if wait else 0)
    while held and time.time() < deadline:
        for s in list(held):
            try:
                if s.recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                s.close()
                held.remove(s)
        time.sleep(0.05)
    summary = {"connections": n, "seconds": round(took, 2), "closed_at_once": kinds[0], "garbage": kinds[1],
               "held_partial_greeting": kinds[2], "refused": n - sum(kinds)}
    if wait:
        summary["still_open"] = len(held)
    print(json.dumps(summary))


def test_flood(ctx, port, pid):
    base_fds, rss0 = fd_count(pid), rss_kb(pid)
    st = dealer(ctx, "jv-1", port)
    seq = 1

    def one():
        nonlocal seq
        t = time.time()
        st.send(measurement("jv-1", seq))
        assert st.poll(5000), f"jv-1: no ack for seq {seq} within 5 s"
        ack = json.loads(st.recv())
        assert ack["seq"] == seq, ack
        seq += 1
        return 1000 * (time.time() - t)

    quiet = [one() for _ in range(50)]
    f = subprocess.Popen([sys.executable, __file__, "--flood", str(port), str(FLOOD_S), str(FLOOD_RATE),
                          str(FLOOD_HOLD_EVERY), "wait"], stdout=subprocess.PIPE, text=True)
    procs.append(f)
    lat, max_fds, max_rss, t_end = [], base_fds, rss0, time.time() + FLOOD_S
    while f.poll() is None and time.time() < t_end:
        lat.append(one())
        max_fds, max_rss = max(max_fds, fd_count(pid)), max(max_rss, rss_kb(pid))
        time.sleep(0.02)
    while f.poll() is None:  # the flooder waits for labloopd to close its held connections
        max_fds, max_rss = max(max_fds, fd_count(pid)), max(max_rss, rss_kb(pid))
        time.sleep(0.1)
    report = json.loads(f.stdout.read())
    st.close()
    back = settle_fds(pid, base_fds, 2 * HANDSHAKE_S)
    rss1 = rss_kb(pid)
    lat.sort()
    quiet.sort()
    p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99)]
    print(f"S7a: flood {report}")
    print(f"S7a: jv-1 acks during the flood: {len(lat)}, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms "
          f"(quiet: p50 {statistics.median(quiet):.1f} ms, max {quiet[-1]:.1f} ms)")
    print(f"S7a: fds {base_fds} before, at most {max_fds} during, back to {fd_count(pid)} {back:.1f} s after the flood; "
          f"RSS {rss0} KiB before, at most {max_rss} during, {rss1} after")
    assert p99 <= FLOOD_P99_MAX_MS, f"p99 ack latency {p99:.0f} ms during the flood"
    held_bound = FLOOD_RATE // FLOOD_HOLD_EVERY * (HANDSHAKE_S + 1)
    assert max_fds <= base_fds + held_bound, f"{max_fds} descriptors during the flood (bound {base_fds + held_bound})"
    assert report["still_open"] == 0, "held connections left open by labloopd"
    assert max_rss - rss0 <= held_bound * FLOOD_RSS_PER_HELD_KB, f"RSS grew by {max_rss - rss0} KiB during the flood"


def test_slowloris(pid, port):
    base_fds, rss0 = fd_count(pid), rss_kb(pid)
    socks, t0 = [], time.time()
    for _ in range(SLOW_N):
        s = socket.create_connection(("127.0.0.1", port))
        s.send(GREETING_PART)
        s.setblocking(False)
        socks.append((s, time.time()))
    opened = time.time() - t0
    peak = fd_count(pid)
    lived, errors = [], {}  # errors: how the closes were seen (recv error), for the report
    open_socks = list(socks)
    while open_socks and time.time() - t0 < opened + HANDSHAKE_S + 3:
        for s, at in list(open_socks):
            try:
                if s.recv(4096) != b"":
                    continue  # labloopd's half of the greeting
            except BlockingIOError:
                continue
            except OSError as e:
                errors[e.strerror] = errors.get(e.strerror, 0) + 1
            lived.append(time.time() - at)
            open_socks.remove((s, at))
        peak = max(peak, fd_count(pid))
        time.sleep(0.02)
    for s, _ in socks:
        s.close()
    back = settle_fds(pid, base_fds, 5)
    rss1 = rss_kb(pid)
    print(f"S7b: {SLOW_N} partial greetings opened in {opened:.2f} s; fds {base_fds} -> at most {peak}; "
          f"{len(lived)} closed by labloopd {min(lived, default=0):.2f} to {max(lived, default=0):.2f} s "
          f"after they opened {errors or ''}; fds back to {fd_count(pid)} {back:.1f} s later; "
          f"RSS {rss0} KiB before, {rss1} after")
    assert not open_socks, f"{len(open_socks)} of {SLOW_N} half-open connections still open " \
        f"{HANDSHAKE_S + 3:.0f} s after they opened (handshake timeout not applied?)"
    assert min(lived) >= HANDSHAKE_S - 1, f"a connection was dropped after {min(lived):.2f} s, before the handshake timeout"
    assert rss1 - rss0 <= SLOW_RSS_MAX_KB, f"RSS grew by {rss1 - rss0} KiB holding as many connections as the flood"


def test_exhaustion(ctx, port, daemon, run):
    """S7 (c): a flood of held connections faster than the handshake timeout sheds them:
    more than the descriptors labloopd may open."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4 * NOFILE:
        print(f"S7c: skipped: the flooding process needs {4 * NOFILE} descriptors (ulimit -Hn)")
        return
    pid = daemon.pid
    base_fds = fd_count(pid)
    st = dealer(ctx, "jv-1", port)
    st.send(measurement("jv-1", 1))
    assert st.poll(5000), "jv-1: no ack before the flood"
    st.recv()
    f = subprocess.Popen([sys.executable, __file__, "--flood", str(port), str(EXHAUST_S), str(EXHAUST_RATE), "1",
                          "nowait"], stdout=subprocess.PIPE, text=True)
    procs.append(f)
    max_fds, answered, asked = base_fds, 0, 0
    def alive():
        assert daemon.poll() is None, f"labloopd died (status {daemon.returncode}) in the flood: " + \
            open(os.path.join(os.path.dirname(run), "labloopd.log")).read()[-200:]

    while f.poll() is None:
        alive()
        max_fds = max(max_fds, fd_count(pid))
        asked += 1
        answered += labloop(run, "status", "--timeout", "2000").returncode == 0
        alive()
        max_fds = max(max_fds, fd_count(pid))
        time.sleep(0.05)
    report = json.loads(f.stdout.read())
    # jv-1 lost its connection with the flood's; it reconnects by itself once the socket is open
    t1 = time.time()
    st.send(measurement("jv-1", 2))
    assert st.poll(15000), "jv-1: no ack within 15 s of the flood"
    assert json.loads(st.recv())["seq"] == 2
    back_in = time.time() - t1
    st.close()
    settle_fds(pid, base_fds, 5)
    db = sqlite3.connect(os.path.join(os.path.dirname(run), "l.db"))
    events = [m for (m,) in db.execute("SELECT message FROM events WHERE kind = 'ingest.flood'")]
    db.close()
    print(f"S7c: {report}")
    print(f"S7c: RLIMIT_NOFILE {NOFILE}: fds {base_fds} before, at most {max_fds} during; status answered "
          f"{answered} of {asked} times; jv-1 acked again {back_in:.1f} s after the flood; "
          f"{len(events)} ingest.flood events, the first: {events[:1]}")
    assert max_fds < NOFILE, "the descriptor limit was reached"
    assert answered == asked, "labloop status went unanswered during the flood"
    assert events, "no ingest.flood event"


def station_online(run, name):
    for st in json.loads(labloop(run, "status", "--json").stdout)["stations"]:
        if st["name"] == name:
            return st["online"]
    return False


def test_identity_flood(ctx, port, run):
    """S7 (d): more station names than labloopd keeps state for; the lab's station still
    counts as online, so the engine still sends it its measure requests."""
    socks = [dealer(ctx, "x-%03d" % i, port) for i in range(IDENTITY_N)]
    for i, d in enumerate(socks):
        d.send(json.dumps({"v": 1, "type": "heartbeat", "station": "x-%03d" % i}).encode())
    wait_for("the flood's heartbeats", lambda: len(json.loads(labloop(run, "status", "--json").stdout)["stations"])
             >= 63, timeout=10)
    time.sleep(0.5)
    for d in socks:
        d.close()
    st = dealer(ctx, "jv-1", port)
    st.send(json.dumps({"v": 1, "type": "hello", "station": "jv-1", "kinds": ["jv"]}).encode())
    t0 = time.time()
    try:
        wait_for("jv-1 online", lambda: station_online(run, "jv-1"), timeout=5)
        ok = True
    except AssertionError:
        ok = False
    names = len(json.loads(labloop(run, "status", "--json").stdout)["stations"])
    st.close()
    print(f"S7d: {IDENTITY_N} station names heartbeating, then the lab's jv-1: " +
          (f"online after {time.time() - t0:.2f} s" if ok else "never online") + f"; {names} stations listed")
    assert ok, f"jv-1, a station of the lab, not online after {IDENTITY_N} other names (station table full?)"


def main():
    seconds = int(os.environ.get("LL_PEERS_SECONDS", "30"))
    tmp = tempfile.mkdtemp(prefix="test_daemon_peers.")
    port = free_port()
    daemon, run = start_daemon(tmp, port)
    ctx = zmq.Context()
    test_many_peers(ctx, port, daemon.pid, seconds)
    test_flood(ctx, port, daemon.pid)
    test_slowloris(daemon.pid, port)
    test_identity_flood(ctx, port, run)
    test_exhaustion(ctx, port, daemon, run)
    assert daemon.poll() is None, "labloopd died"
    assert labloop(run, "status").returncode == 0
    ctx.term()
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


def run():
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--flood":
        flood(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "wait", seed=1)
    else:
        run()

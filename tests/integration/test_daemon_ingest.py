#!/usr/bin/env python3
"""labloopd over real sockets: a station (a Python DEALER) sends garbage, a wrong version,
NaN, unknown requests, another station's name, a two-frame message and an oversize message;
each gets `rejected` with a reason, nothing else changes, the daemon keeps running. Also the
control CLI: status, exit 3 when the daemon is unreachable, a bad campaign file (exit 1 with
FILE:LINE), backup, e-stop latched across a restart. Under a systemd-like notify socket with a
watchdog: READY=1, then WATCHDOG=1 pings at half the interval, also after an e-stop sent
requests to every instrument worker (their completions arrive, so the workers count as alive).
"""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOP, LABLOOPD, SRC, free_port, labloop  # noqa: E402


def start_daemon(tmp, lab, run_dir, notify=None):
    log = open(os.path.join(tmp, "labloopd.log"), "a")
    argv = [LABLOOPD, "--lab", lab, "--db", os.path.join(tmp, "l.db"), "--run-dir", run_dir]
    env = None
    if notify is not None:
        # as systemd does: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the shell's pid,
        # which exec keeps)
        env = dict(os.environ, NOTIFY_SOCKET=notify, WATCHDOG_USEC="400000")
        argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"] + argv
    p = subprocess.Popen(argv, stderr=log, env=env)
    deadline = time.time() + 20
    while time.time() < deadline:
        if labloop(run_dir, "status").returncode == 0:
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    sys.exit("labloopd did not start: " + open(os.path.join(tmp, "labloopd.log")).read())


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_ingest.")
    port = free_port()
    lab_text = open(os.path.join(SRC, "config/lab.conf")).read()
    lab_text = lab_text.replace("tcp://127.0.0.1:5555", f"tcp://127.0.0.1:{port}").replace("port = 15020;", "port = 0;")
    lab = os.path.join(tmp, "lab.conf")
    open(lab, "w").write(lab_text)
    run_dir = os.path.join(tmp, "run")
    daemon = start_daemon(tmp, lab, run_dir)
    ctx = zmq.Context()
    try:
        # --- unreachable daemon: exit 3 with a clear message
        r = labloop(os.path.join(tmp, "nowhere"), "status")
        assert r.returncode == 3, r
        assert "not running" in r.stderr, r.stderr

        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, b"jv-1")
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(f"tcp://127.0.0.1:{port}")

        def ack_for(frames):
            dealer.send_multipart(frames)
            if not dealer.poll(10000):
                raise AssertionError(f"no ack for {frames[0][:60]!r}")
            return json.loads(dealer.recv())

        dealer.send(json.dumps({"v": 1, "type": "hello", "station": "jv-1", "kinds": ["jv"]}).encode())
        meas = {"v": 1, "type": "measurement", "station": "jv-1", "seq": 3, "request": "r-999-1",
                "kind": "jv", "sample": "S000001", "time": "2026-11-25T17:40:03.120Z",
                "data": {"irradiance_mw_cm2": 100.0, "area_cm2": 0.09,
                         "sweeps": [{"direction": "reverse", "voltage_v": [1.1, 0.5, 0.0],
                                     "current_ma_cm2": [-1.0, 20.0, 22.0]}]}}
        nan_text = json.dumps(meas).replace("20.0", '"NaN"').replace('"seq": 3', '"seq": 4')
        other = dict(meas, station="jv-9", seq=5)
        big = b"{" + b" " * (5 * 1024 * 1024) + b"}"
        cases = [
            ("garbage", [b"\x00\x01{{not json"], ""),
            ("version", [json.dumps({"v": 2, "type": "heartbeat", "station": "jv-1"}).encode()], "v"),
            ("NaN", [nan_text.encode()], ""),
            ("unknown request", [json.dumps(meas).encode()], "unknown request"),
            ("other station", [json.dumps(other).encode()], "station"),
            ("two frames", [b"{}", b"{}"], "one frame"),
            ("oversize", [big], "oversize"),
            # B1: an empty frame, invalid UTF-8 inside a string, JSON nested 100,000 deep
            ("empty frame", [b""], "empty"),
            ("invalid UTF-8", [json.dumps(meas).encode().replace(b"S000001", b"S\xff\xfe0001")], "invalid JSON"),
            ("deep nesting", [b"[" * 100000 + b"]" * 100000], "invalid JSON"),
        ]
        for name, frames, part in cases:
            a = ack_for(frames)
            assert a["type"] == "ack" and a["status"] == "rejected", (name, a)
            assert part in a["reason"], (name, a)
        assert ack_for([json.dumps(meas).encode()])["seq"] == 3
        # a heartbeat gets no answer
        dealer.send(json.dumps({"v": 1, "type": "heartbeat", "station": "jv-1"}).encode())
        assert not dealer.poll(300)

        st = json.loads(labloop(run_dir, "status", "--json").stdout)
        assert st["measurements"] == {"stored": 0, "rejected": len(cases) + 1}, st["measurements"]
        assert st["campaigns"] == []
        assert daemon.poll() is None
        # every rejection is listed with its reason (`labloop measurements rejected`)
        r = labloop(run_dir, "measurements", "rejected", "--limit", "100", "--json")
        rows = json.loads(r.stdout)["rejections"]
        assert r.returncode == 0 and len(rows) == len(cases) + 1, r
        assert any(x["reason"] == "oversize" and x["bytes"] > 4 << 20 for x in rows), rows
        text = labloop(run_dir, "measurements", "rejected", "--limit", "100").stdout
        assert f"{len(cases) + 1} rejected messages" in text and "oversize" in text, text
        assert labloop(run_dir, "measurements", "bogus").returncode == 2

        # --- control: bad campaign file -> exit 1, FILE:LINE
        bad = os.path.join(tmp, "bad.conf")
        open(bad, "w").write('campaign: {\n  name = "x";\n  batch = ;\n};\n')
        r = labloop(run_dir, "campaign", "start", bad)
        assert r.returncode == 1 and "bad.conf:3" in r.stderr, r
        r = labloop(run_dir, "campaign", "start", os.path.join(tmp, "missing.conf"))
        assert r.returncode == 2, r
        r = labloop(run_dir, "frobnicate")
        assert r.returncode == 2, r

        # --- B10: a huge control request (32 MiB of campaign text) is dropped unread, no
        # answer; 1 MiB is read and answered; the daemon answers status as before
        def control(req, timeout_ms):
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, timeout_ms)
            s.connect("ipc://" + os.path.join(run_dir, "control"))
            try:
                s.send(req)
                return s.recv()
            except zmq.Again:
                return None
            finally:
                s.close()
        huge = json.dumps({"cmd": "campaign", "op": "start", "text": "#" * (32 << 20)}).encode()
        assert control(huge, 3000) is None, "a 32 MiB control request was read"
        reply = json.loads(control(json.dumps({"cmd": "campaign", "op": "start", "text": "#" * (1 << 20)}).encode(), 10000))
        assert reply["ok"] is False and reply["error"], reply
        assert labloop(run_dir, "status").returncode == 0 and daemon.poll() is None

        # --- limits are static (reliability.md X8): a range that would take the furnace past its
        # max_temp_c (200) is refused at start, naming the step and the corner; nothing stored
        hot = os.path.join(tmp, "hot.conf")
        open(hot, "w").write(open(os.path.join(SRC, "config/perovskite.conf")).read().replace(
            '{ name = "anneal_c";   low = 80.0; high = 150.0;', '{ name = "anneal_c";   low = 80.0; high = 260.0;'))
        r = labloop(run_dir, "campaign", "start", hot)
        assert r.returncode == 1, r
        print("refused:", r.stderr.strip())
        for want in ("hot.conf: recipe step", "furnace anneal", "anneal_c=260", "instruments' limits"):
            assert want in r.stderr, (want, r.stderr)
        assert json.loads(labloop(run_dir, "status", "--json").stdout)["campaigns"] == []

        # --- S4: a user outside the labloop group cannot steer the lab, and is told why (as
        # root: the CLI run as nobody with no groups; the run folder is 0750, the socket 0660)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LABLOOP,
                                "e-stop", "--run-dir", run_dir, "--timeout", "2000"],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 3 and "permission denied" in r.stderr, r
            assert json.loads(labloop(run_dir, "status", "--json").stdout)["estop"] is False
        else:
            print("not root: the permission check (S4) is left out")

        # --- SQL in a name is data (reliability.md S5): stored and shown verbatim, schema intact
        evil = "x'); DROP TABLE experiments; --"
        evil_conf = os.path.join(tmp, "evil.conf")
        open(evil_conf, "w").write(open(os.path.join(SRC, "config/perovskite.conf")).read().replace(
            'name = "perovskite-pce-t80";', f'name = "{evil}";'))
        db = sqlite3.connect(os.path.join(tmp, "l.db"))
        schema = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        r = labloop(run_dir, "campaign", "start", evil_conf)
        assert r.returncode == 0, r
        st = json.loads(labloop(run_dir, "status", "--json").stdout)
        assert st["campaigns"][0]["name"] == evil, st["campaigns"]
        assert labloop(run_dir, "campaign", "abort").returncode == 0
        assert db.execute("SELECT name FROM campaigns").fetchall() == [(evil,)]
        assert db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
        db.close()

        # --- backup: a consistent copy with the rejections in it
        backup = os.path.join(tmp, "copy.db")
        r = labloop(run_dir, "backup", backup)
        assert r.returncode == 0, r
        n = sqlite3.connect(backup).execute("SELECT count(*) FROM rejections").fetchone()[0]
        assert n == len(cases) + 1, n
        assert labloop(run_dir, "backup", backup).returncode == 1  # never overwrites

        # --- e-stop is latched across a restart
        r = labloop(run_dir, "e-stop")
        assert r.returncode == 0 and "not an emergency stop" in r.stdout, r
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
        notify_path = os.path.join(tmp, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        daemon = start_daemon(tmp, lab, run_dir, notify=notify_path)
        st = json.loads(labloop(run_dir, "status", "--json").stdout)
        assert st["estop"] is True, st
        r = labloop(run_dir, "status")
        assert "E-STOP LATCHED" in r.stdout, r.stdout

        # --- the watchdog: pings while the loop and every worker are alive
        assert labloop(run_dir, "e-stop").returncode == 0
        notify.settimeout(0.5)
        got = []
        until = time.time() + 1.5
        while time.time() < until:
            try:
                got.append(notify.recv(4096).decode())
            except socket.timeout:
                pass
        notify.close()
        assert any("READY=1" in m for m in got), got
        pings = sum("WATCHDOG=1" in m for m in got)
        assert pings >= 4, got
        assert "pings stopped" not in open(os.path.join(tmp, "labloopd.log")).read()
    finally:
        ctx.destroy(linger=0)
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
    assert daemon.returncode == 0, daemon.returncode
    log = open(os.path.join(tmp, "labloopd.log")).read()
    assert "stopped cleanly" in log
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    main()

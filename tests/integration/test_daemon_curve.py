#!/usr/bin/env python3
"""labloopd with CURVE on the stations socket (DESIGN.md "ZeroMQ is configured"): a station
whose key is in daemon.station_keys is admitted and answered; a station with an unknown key
is refused at the handshake (no answer at all), and so are a station without CURVE (NULL
mechanism) and one with PLAIN user and password; a refused CURVE key is logged once with the
peer's address and the key's first characters, and counted in status (`handshakes_refused`);
a station with an admitted key that claims another station's name is rejected with a reason
naming the key's station."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOPD, labloop, write_lab  # noqa: E402


def dealer(ctx, name, server_public, keypair, port):
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.ROUTING_ID, name.encode())
    d.setsockopt(zmq.LINGER, 0)
    d.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    d.setsockopt(zmq.CURVE_PUBLICKEY, keypair[0])
    d.setsockopt(zmq.CURVE_SECRETKEY, keypair[1])
    d.setsockopt(zmq.RCVTIMEO, 3000)
    d.connect(f"tcp://127.0.0.1:{port}")
    return d


def measurement(station, seq):
    # a well-formed message for a request the daemon never sent: answered "rejected"
    return json.dumps({"v": 1, "type": "measurement", "station": station, "seq": seq,
                       "request": "r-none", "kind": "stability", "sample": "S1",
                       "time": "2026-11-25T17:40:03.120Z",
                       "data": {"time_h": [0, 1, 2], "normalised_pce": [1.0, 0.99, 0.98]}}).encode()


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_curve.")
    lab, port = write_lab(tmp)
    server = zmq.curve_keypair()
    jv = zmq.curve_keypair()
    stranger = zmq.curve_keypair()
    conf = os.path.join(tmp, "labloopd.conf")
    open(conf, "w").write(
        'daemon: {\n  curve_secret_key = "%s";\n  station_keys = ( { station = "jv-1"; public_key = "%s"; } );\n};\n'
        % (server[1].decode(), jv[0].decode()))
    run_dir = os.path.join(tmp, "run")
    log = open(os.path.join(tmp, "labloopd.log"), "a")
    # a secret every user can read: refused, naming the file (reliability.md S3)
    os.chmod(conf, 0o644)
    r = subprocess.run([LABLOOPD, "--config", conf, "--lab", lab, "--db", os.path.join(tmp, "l.db"),
                        "--run-dir", run_dir], capture_output=True, text=True, timeout=30)
    refused = r.returncode != 0 and conf in r.stderr and "readable by every user" in r.stderr
    print(("ok" if refused else "FAIL") + " - world-readable secret refused: " + r.stderr.strip()[:200])
    if not refused:
        sys.exit(1)
    os.chmod(conf, 0o640)
    p = subprocess.Popen([LABLOOPD, "--config", conf, "--lab", lab, "--db", os.path.join(tmp, "l.db"),
                          "--run-dir", run_dir], stderr=log)
    ctx = zmq.Context()
    failures = 0
    try:
        deadline = time.time() + 20
        while labloop(run_dir, "status").returncode != 0:
            if time.time() > deadline or p.poll() is not None:
                sys.exit("labloopd did not start: " + open(os.path.join(tmp, "labloopd.log")).read())
            time.sleep(0.05)

        good = dealer(ctx, "jv-1", server[0], jv, port)
        good.send(measurement("jv-1", 1))
        ack = json.loads(good.recv())
        ok = ack["status"] == "rejected" and "CURVE" not in ack.get("reason", "") and "r-none" in ack.get("reason", "")
        print(("ok" if ok else "FAIL") + " - admitted key: answered (%s: %s)" % (ack["status"], ack.get("reason")))
        failures += not ok

        bad = dealer(ctx, "jv-1", server[0], stranger, port)
        bad.send(measurement("jv-1", 2))
        try:
            bad.recv()
            print("FAIL - unknown key: got an answer")
            failures += 1
        except zmq.Again:
            print("ok - unknown key: refused at the handshake, no answer")

        # S1: other mechanisms against a CURVE server get no answer either
        plain_null = ctx.socket(zmq.DEALER)
        plain_null.setsockopt(zmq.ROUTING_ID, b"jv-1")
        plain_null.setsockopt(zmq.LINGER, 0)
        plain_null.setsockopt(zmq.RCVTIMEO, 3000)
        plain_null.connect(f"tcp://127.0.0.1:{port}")
        plain = ctx.socket(zmq.DEALER)
        plain.setsockopt(zmq.ROUTING_ID, b"jv-1")
        plain.setsockopt(zmq.LINGER, 0)
        plain.setsockopt(zmq.RCVTIMEO, 3000)
        plain.setsockopt(zmq.PLAIN_USERNAME, b"jv-1")
        plain.setsockopt(zmq.PLAIN_PASSWORD, b"secret")
        plain.connect(f"tcp://127.0.0.1:{port}")
        for name, s in (("NULL", plain_null), ("PLAIN", plain)):
            s.send(measurement("jv-1", 4))
            try:
                s.recv()
                print(f"FAIL - {name} mechanism: got an answer")
                failures += 1
            except zmq.Again:
                print(f"ok - {name} mechanism: refused at the handshake, no answer")
            s.close()
        st = json.loads(labloop(run_dir, "status", "--json").stdout)
        logs = open(os.path.join(tmp, "labloopd.log")).read()
        line = [x for x in logs.splitlines() if "CURVE handshake refused from" in x]
        ok = (st.get("handshakes_refused", 0) >= 1 and len(line) == 1 and "127.0.0.1" in line[0]
              and stranger[0].decode()[:8] in line[0])
        print(("ok" if ok else "FAIL") + " - refused key counted (%s) and logged once: %s"
              % (st.get("handshakes_refused"), line[:1]))
        failures += not ok

        liar = dealer(ctx, "stab-1", server[0], jv, port)
        liar.send(measurement("stab-1", 3))
        ack = json.loads(liar.recv())
        ok = ack["status"] == "rejected" and "CURVE key ('jv-1')" in ack.get("reason", "")
        print(("ok" if ok else "FAIL") + " - jv-1's key claiming stab-1: %s: %s" % (ack["status"], ack.get("reason")))
        failures += not ok
        for s in (good, bad, liar):
            s.close()
    finally:
        p.terminate()
        p.wait(timeout=20)
        ctx.term()
    # S10: the secret key appears in no log and nowhere in the store (events, rejections, ...)
    secret = server[1].decode()
    logs = open(os.path.join(tmp, "labloopd.log")).read()
    with open(os.path.join(tmp, "l.db"), "rb") as f:
        store_bytes = f.read()
    wal = os.path.join(tmp, "l.db-wal")
    if os.path.exists(wal):
        store_bytes += open(wal, "rb").read()
    ok = secret not in logs and secret.encode() not in store_bytes
    print(("ok" if ok else "FAIL") + " - the secret key is in no log and not in the store")
    failures += not ok
    if failures == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (8 - failures, failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

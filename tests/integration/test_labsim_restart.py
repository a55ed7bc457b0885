"""labsim's stations across restarts of labsim (kill -9) with the same runtime dir:
sequence numbers keep increasing, a repeated request is answered with the stored message
(same seq) instead of a new measurement, and a measurement that was never acked is resent
on start without being asked (docs/instruments.md §4, docs/protocol.md)."""
import json
import os
import signal
import socket
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_labsim_faults import start_job, wait_done  # noqa: E402
from test_labsim_instruments import Labsim, check  # noqa: E402


def sample_at_jv(ls, well, job0):
    s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
    start_job(s, job0, job0, action=1, well=well, vols=(120.0, 30.0, 0.0, 20.0))
    wait_done(s, job0)
    start_job(s, job0 + 1, job0 + 1, action=2, well=well, source=0, plate=3)
    assert wait_done(s, job0 + 1) == 0
    s.close()


def measure(ls, request, ack=True):
    r = ls.router
    r.setsockopt(zmq.RCVTIMEO, 10000)
    req = {"v": 1, "type": "measure", "request": request, "experiment": 1, "sample": "S-" + request,
           "kind": "jv", "protocol": {}}
    r.send_multipart([b"jv-1", json.dumps(req).encode()])
    return next_measurement(ls, ack, request)


def next_measurement(ls, ack=True, request=None):
    """The next measurement message (for `request`, if given). Delivery is at-least-once: a
    measurement whose ack a kill -9 cut off is resent at start AND answered again when its
    request is repeated, so copies of an earlier request may arrive first; they are acked
    and skipped."""
    r = ls.router
    r.setsockopt(zmq.RCVTIMEO, 10000)
    while True:
        ident, msg = r.recv_multipart()
        j = json.loads(msg)
        if j["type"] == "measurement" and request is not None and j["request"] != request:
            r.send_multipart([ident, json.dumps({"v": 1, "type": "ack", "seq": j["seq"], "status": "duplicate"}).encode()])
            continue
        if j["type"] == "measurement":
            if ack:
                r.send_multipart([ident, json.dumps({"v": 1, "type": "ack", "seq": j["seq"], "status": "stored"}).encode()])
            return j


def main():
    d = tempfile.mkdtemp(prefix="labsim-restart-")
    ls = Labsim(runtime_dir=d, speed=1000)
    try:
        ls.wait_hello("jv-1")
        sample_at_jv(ls, 1, 1)
        m1 = measure(ls, "r-1")
        check(m1["seq"] == 1, "first measurement: seq 1")
        ls.ctl(cmd="counts")
    finally:
        ls.stop(signal.SIGKILL)

    ls = Labsim(runtime_dir=d, speed=1000)
    try:
        ls.wait_hello("jv-1")
        again = measure(ls, "r-1")
        check(again == m1, "after kill -9 and restart: r-1 answered with the stored message")
        check(ls.ctl(cmd="counts")["measurements"] == {}, "nothing measured again")
        sample_at_jv(ls, 2, 10)
        m2 = measure(ls, "r-2", ack=False)
        check(m2["seq"] == 2, "the next measurement after the restart: seq 2")
    finally:
        ls.stop(signal.SIGKILL)

    ls = Labsim(runtime_dir=d, speed=1000)
    try:
        resent = next_measurement(ls)
        check(resent == m2, "unacked r-2 resent on start, unchanged")
        sample_at_jv(ls, 3, 20)
        m3 = measure(ls, "r-3")
        check(m3["seq"] == 3, "seq keeps increasing: 3")
        check(open(os.path.join(d, "stations", "jv-1", "seq")).read().strip() == "3", "seq persisted")
        # the daemon restarts: a new ROUTER on the same endpoint gets a hello from every station
        ls.router.close(linger=0)
        ls.router = ls.zctx.socket(zmq.ROUTER)
        ls.router.setsockopt(zmq.LINGER, 0)
        for _ in range(200):  # the old socket's port is released asynchronously
            try:
                ls.router.bind(ls.endpoint)
                break
            except zmq.ZMQError:
                time.sleep(0.01)
        ls.wait_hello("jv-1")
        check(True, "after a daemon restart the station says hello again")
    finally:
        rc = ls.stop()
    check(rc == 0, "labsim stops cleanly on SIGTERM")
    ls.remove()


if __name__ == "__main__":
    main()

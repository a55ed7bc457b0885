"""labsim's fault injection: scripts produce exactly the faults they name, rates are
reproducible from the seed (docs/instruments.md §6).

- Scripted: robot.no_reply@job=3 drops exactly the reply to job 3's START (the job still
  runs, once; the blind retry is a no-op), coater.err@n=2 answers the second SPN/1 frame with
  ERR E99 without executing it, station.corrupt@n=1 and station.duplicate@n=1 make the first
  send of a measurement unreadable and the resend arrive twice. The control socket counts
  exactly these faults.
- By rate: the same seed gives the same sequence of exception / garbage / normal replies over
  60 requests; another seed gives another.
"""
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_labsim_instruments import Labsim, Spn1, check  # noqa: E402


def mbap_request(tid, pdu, unit=255):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def recv_reply(s, timeout=0.5):
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        return None
    return s.recv(512)


def start_job(s, tid, job, action=3, well=0, source=0, plate=0, vols=()):
    regs = [job >> 16, job & 0xFFFF, action, 0, plate, well, source]
    regs += [int(round(v * 10)) for v in vols] + [0] * (8 - len(vols)) + [0, 0, 1]
    pdu = struct.pack(">BHHB", 16, 0, 18, 36) + struct.pack(">18H", *regs)
    s.sendall(mbap_request(tid, pdu))
    return recv_reply(s)


def read_inputs(s, tid):
    s.sendall(mbap_request(tid, struct.pack(">BHH", 4, 0, 8)))
    rep = recv_reply(s, 2.0)
    return list(struct.unpack(">8H", rep[9:25]))


def wait_done(s, job, tid=900):
    deadline = time.time() + 10
    while time.time() < deadline:
        regs = read_inputs(s, tid)
        if regs[1] in (3, 4) and (regs[4] << 16 | regs[5]) == job:
            return regs[6]
        time.sleep(0.01)
    raise AssertionError("job %d never finished" % job)


def scripted():
    ls = Labsim(["--seed", "7", "--faults",
                 "robot.no_reply@job=3,coater.err@n=2,station.corrupt@n=1,station.duplicate@n=1"])
    try:
        s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
        for job in (1, 2):
            check(start_job(s, job, job) is not None, "job %d answered" % job)
            wait_done(s, job)
        check(start_job(s, 3, 3) is None, "robot.no_reply@job=3: no reply to job 3's START")
        regs = read_inputs(s, 31)
        check((regs[2] << 16 | regs[3]) == 3, "job 3 was accepted all the same")
        check(start_job(s, 32, 3) is not None, "blind retry of job 3 answered (a no-op)")
        wait_done(s, 3)
        check(start_job(s, 4, 4) is not None, "job 4 answered")
        wait_done(s, 4)
        # a sample at the J-V place for the station faults
        start_job(s, 5, 5, action=1, well=2, vols=(100.0, 0, 0))
        wait_done(s, 5)
        start_job(s, 6, 6, action=2, well=2, source=0, plate=3)
        check(wait_done(s, 6) == 0, "sample moved to the J-V place")
        counts = ls.ctl(cmd="counts")
        check(counts["robot_jobs"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1},
              "every robot job ran exactly once")
        s.close()

        sp = Spn1(ls.coater_dev)
        check(sp.cmd("ID?").startswith("OK MODEL="), "first coater frame answered")
        sp.seq += 1
        frame = sp.frame(sp.seq, "WD 5")
        check(sp.raw(frame).startswith("%d ERR E99 INTERNAL*" % sp.seq), "coater.err@n=2: ERR E99")
        check(sp.raw(frame).startswith("%d OK WD 5*" % sp.seq), "the retry of the same frame executes")
        check(sp.cmd("WD 0") == "OK WD 0", "watchdog off again")
        sp.s.close()

        r = ls.router
        r.setsockopt(zmq_rcvtimeo(), 5000)
        req = {"v": 1, "type": "measure", "request": "r-9", "experiment": 9, "sample": "S9",
               "kind": "jv", "protocol": {}}
        r.send_multipart([b"jv-1", json.dumps(req).encode()])
        got = []
        t0 = None
        while len(got) < 3:
            ident, msg = r.recv_multipart()
            try:
                j = json.loads(msg)
            except ValueError:
                got.append(("broken", time.time()))
                t0 = time.time()
                continue
            if j["type"] == "measurement":
                got.append((j["seq"], time.time()))
        check(got[0][0] == "broken", "station.corrupt@n=1: the first send is unreadable")
        check(got[1][0] == 1 and got[2][0] == 1, "the resend arrives twice (station.duplicate@n=1)")
        check(0.7 < got[1][1] - t0 < 3.0, "the resend came after the 1 s resend interval")
        r.send_multipart([b"jv-1", json.dumps({"v": 1, "type": "ack", "seq": 1, "status": "stored"}).encode()])
        counts = ls.ctl(cmd="counts")
        check(counts["faults"] == {"robot.no_reply": 1, "coater.err": 1, "station.corrupt": 1,
                                   "station.duplicate": 1},
              "the control socket counts exactly the scripted faults: %s" % counts["faults"])
        check(counts["measurements"] == {"r-9": 1}, "one measurement made")
    except Exception:
        print(ls.logtext()[-4000:], file=sys.stderr)
        raise
    finally:
        ls.stop()
    ls.remove()


def zmq_rcvtimeo():
    import zmq
    return zmq.RCVTIMEO


def rate_run(seed):
    ls = Labsim(["--seed", str(seed), "--faults", "robot.exception=0.25,robot.garbage=0.1"])
    outcomes = []
    try:
        s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
        for i in range(60):
            tid = 1000 + i
            s.sendall(mbap_request(tid, struct.pack(">BHH", 4, 0, 2)))
            rep = recv_reply(s, 2.0)
            if rep is None:
                outcomes.append("none")
            elif rep[:2] == struct.pack(">H", tid) and rep[7] == 0x04:
                outcomes.append("ok")
            elif rep[:2] == struct.pack(">H", tid) and rep[7] == 0x84 and rep[8] == 4:
                outcomes.append("exc")
            else:
                outcomes.append("garbage")
        s.close()
        faults = ls.ctl(cmd="counts")["faults"]
    finally:
        ls.stop()
    ls.remove()
    return outcomes, faults


def rates():
    a, fa = rate_run(11)
    b, fb = rate_run(11)
    c, _ = rate_run(12)
    check(a == b, "same seed, same fault sequence: %s" % "".join(o[0] for o in a))
    check(a != c, "another seed, another sequence")
    check(fa.get("robot.exception", 0) == a.count("exc") and fa.get("robot.garbage", 0) == a.count("garbage"),
          "counted faults match the replies seen (%d exceptions, %d garbage)" % (a.count("exc"), a.count("garbage")))
    check(5 <= a.count("exc") <= 28 and 1 <= a.count("garbage") <= 15 and "none" not in a,
          "rates roughly as asked")


if __name__ == "__main__":
    scripted()
    rates()

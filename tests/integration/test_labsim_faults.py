"""labsim's fault injection: scripts produce exactly the faults they name, rates are
reproducible from the seed (docs/instruments.md §6).

- Scripted: robot.no_reply@job=3 drops exactly the reply to job 3's START (the job still
  runs, once; the blind retry is a no-op), coater.err@n=2 answers the second SPN/1 frame with
  ERR E99 without executing it, coater.no_reply@job=J7 drops exactly the reply to the RUN of
  coater job J7 (the run happens, once; the same frame again gets the cached reply), station.corrupt@n=1 and station.duplicate@n=1 make the first
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
from test_labsim_instruments import Labsim, Rtu, Spn1, check  # noqa: E402


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
                 "robot.no_reply@job=3,coater.err@n=2,coater.no_reply@job=J7,"
                 "station.corrupt@n=1,station.duplicate@n=1"])
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
        check(sp.cmd("RCP 1 STAGE 1 1000 1000 0.2") == "OK RCP 1 STAGE 1", "recipe 1 loaded")
        for job in ("J6", "J7"):
            check(sp.cmd("ARM") == "OK ARM", "armed for %s" % job)
            sp.seq += 1
            frame = sp.frame(sp.seq, "RUN 1 %s" % job)
            if job == "J7":
                sp.s.write(frame)
                got = sp.s.read_until(lambda b: b.endswith(b"\r\n"), timeout=1.0)
                check(got == b"", "coater.no_reply@job=J7: no reply to J7's RUN (got %r)" % got)
            rep = sp.raw(frame)
            check(rep.startswith("%d OK RUN 1 %s*" % (sp.seq, job)), "RUN %s answered: %r" % (job, rep))
            deadline = time.time() + 10
            while not sp.cmd("STATUS?").startswith("OK STATE=DONE JOB=%s" % job):
                if time.time() > deadline:
                    raise AssertionError("coater run %s never ended" % job)
                time.sleep(0.05)
        check(ls.ctl(cmd="counts")["coater_runs"] == {"J6": 1, "J7": 1},
              "each coater job ran exactly once")
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
        check(counts["faults"] == {"robot.no_reply": 1, "coater.err": 1, "coater.no_reply": 1,
                                   "station.corrupt": 1, "station.duplicate": 1},
              "the control socket counts exactly the scripted faults: %s" % counts["faults"])
        check(counts["measurements"] == {"r-9": 1}, "one measurement made")
    except Exception:
        print(ls.logtext()[-4000:], file=sys.stderr)
        raise
    finally:
        ls.stop()
    ls.remove()


def scripted_more():
    """robot.disconnect, furnace.no_reply / garbage / exception, station.reorder and
    station.disconnect, each by script; furnace.sensor_break armed on the control socket."""
    ls = Labsim(["--seed", "8", "--faults",
                 "robot.disconnect@job=2,furnace.no_reply@n=2,furnace.garbage@n=3,"
                 "furnace.exception@n=3,station.reorder@n=1,"
                 "station.disconnect@n=3"], speed=50)
    try:
        ls.wait_hello("jv-1")
        s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
        check(start_job(s, 1, 1) is not None, "job 1 answered")
        wait_done(s, 1)
        s.sendall(b"")
        start_job(s, 2, 2)
        check(s.recv(16) == b"", "robot.disconnect@job=2: the connection is closed")
        s.close()
        s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
        regs = read_inputs(s, 3)
        check((regs[2] << 16 | regs[3]) == 1, "job 2 was not applied")
        check(start_job(s, 4, 2) is not None, "job 2 sent again on a new connection: answered")
        wait_done(s, 2)

        rtu = Rtu(ls.furnace_dev)
        check(isinstance(rtu.read(1), list), "furnace request 1 answered")
        rtu.s.write(bytes.fromhex("01 06 00 02 03 E8 28 B4".replace(" ", "")))
        check(rtu.s.read_until(lambda b: len(b) >= 8, 0.4) == b"", "furnace.no_reply@n=2: silence")
        rtu.s.write(bytes.fromhex("010300020001 25CA".replace(" ", "")))
        junk = rtu.s.read_until(lambda b: len(b) >= 18, 0.3)
        check(len(junk) >= 3 and junk[:3] != bytes.fromhex("010302"), "furnace.garbage@n=3: noise instead of the reply")
        # the exception check is not reached when garbage fired: its 3rd opportunity is request 4
        check(rtu.read(2) == ("exception", 4), "furnace.exception@n=3: exception 04 to request 4")
        check(rtu.read(2) == [1000], "the write of request 2 was applied (TG.SP 100.0)")
        check(ls.ctl(cmd="fault", name="furnace.sensor_break", count=1)["ok"], "control: arm a sensor break")
        t_end = time.time() + 0.5
        while not rtu.read(75)[0] & (1 << 5) and time.time() < t_end:
            time.sleep(0.005)
        check(rtu.read(75)[0] & (1 << 5) and rtu.read(1)[0] == 32767,
              "furnace.sensor_break: status B5 and PV at full scale")
        time.sleep(0.8)
        check(not rtu.read(75)[0] & (1 << 5), "the sensor break ends after 30 simulated seconds")
        rtu.s.close()

        start_job(s, 5, 5, action=1, well=2, vols=(100.0,))
        wait_done(s, 5)
        start_job(s, 6, 6, action=2, well=2, source=0, plate=3)
        check(wait_done(s, 6) == 0, "sample at the J-V place")
        s.close()
        r = ls.router
        r.setsockopt(zmq_rcvtimeo(), 5000)
        for req in ("r-a", "r-b", "r-c"):
            m = {"v": 1, "type": "measure", "request": req, "experiment": 1, "sample": "S", "kind": "jv",
                 "protocol": {}}
            r.send_multipart([b"jv-1", json.dumps(m).encode()])
        order = []
        hellos = 0
        deadline = time.time() + 8
        while len(order) < 3 and time.time() < deadline:
            ident, msg = r.recv_multipart()
            j = json.loads(msg)
            if j["type"] == "hello" and ident == b"jv-1":
                hellos += 1
            elif j["type"] == "measurement":
                order.append(j["seq"])
                r.send_multipart([ident, json.dumps({"v": 1, "type": "ack", "seq": j["seq"], "status": "stored"}).encode()])
        while hellos == 0 and time.time() < deadline:
            ident, msg = r.recv_multipart()
            if ident == b"jv-1" and json.loads(msg)["type"] == "hello":
                hellos += 1
        check(order == [2, 1, 3], "station.reorder@n=1: seq 1 held back and sent after seq 2 (%s)" % order)
        check(hellos == 1, "station.disconnect@n=3: the station reconnected, said hello, resent seq 3")
        counts = ls.ctl(cmd="counts")
        check(counts["faults"] == {"robot.disconnect": 1, "furnace.no_reply": 1, "furnace.garbage": 1,
                                   "furnace.exception": 1, "furnace.sensor_break": 1, "station.reorder": 1,
                                   "station.disconnect": 1},
              "every scripted fault fired exactly once: %s" % counts["faults"])
        check(counts["robot_jobs"]["2"] == 1, "job 2 ran once")
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
    scripted_more()
    rates()

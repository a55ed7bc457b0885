#!/usr/bin/python3
"""test_drivers_labsim — every driver operation against labsim, and every instrument fault
labsim can inject (docs/instruments.md §6), through `labloop instrument`.

labsim runs with a per-test runtime folder, port 0 (it picks a free port) and --speed 20;
its control socket (ipc://DIR/control) arms faults and reports counts, which show what
reached the instruments: a job run once, a program never loaded, a coater run not started.

Checks: status/describe/safe of the three instruments; dispense, move, spin, anneal run to
done, each executed exactly once; requests above a limit send nothing (exit 2, counts
unchanged); for each fault the right kind of error or a transparent recovery, and no
duplicate execution: robot.no_reply (the job runs once), robot.exception (instrument fault),
robot.garbage / robot.disconnect / furnace.no_reply / furnace.garbage / coater.garbage /
coater.no_reply (retried: success, run once), furnace.exception (instrument fault), coater.err
(instrument fault), robot.job_error, coater.lid / coater.overspeed / coater.vacuum, lid
open before a run, furnace.sensor_break (step failed, safe state commanded). labsim is
killed at the end whatever happens.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import zmq

SRC = os.environ.get("LL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("LL_BINARY_DIR", os.path.join(SRC, "build"))
LABSIM = os.environ.get("LABSIM", os.path.join(BIN, "simulators", "labsim"))
LABLOOP = os.environ.get("LABLOOP", os.path.join(BIN, "daemon", "labloop"))

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Lab:
    def __init__(self, tmp):
        self.rt = os.path.join(tmp, "rt")
        os.mkdir(self.rt)
        src = open(os.path.join(SRC, "config", "lab.conf")).read()
        src = src.replace("port = 15020;", "port = 0;")
        # faster polling, short per-attempt time-outs: the test's own deadlines
        src = src.replace("step_timeout_s = 300;", "step_timeout_s = 60;\n      poll_ms = 100;")
        src = src.replace("byte_timeout_ms = 50;", "byte_timeout_ms = 50;\n      poll_ms = 100;")
        src = src.replace('baud = 115200;', 'baud = 115200;\n      poll_ms = 100;')
        self.src_lab = os.path.join(tmp, "lab-in.conf")
        open(self.src_lab, "w").write(src)
        self.log = open(os.path.join(tmp, "labsim.log"), "w")
        self.proc = subprocess.Popen([LABSIM, "--lab", self.src_lab, "--runtime-dir", self.rt,
                                      "--speed", "20", "--seed", "7", "--faults",
                                      "robot.no_reply@job=900,coater.no_reply@n=8"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not os.path.exists(os.path.join(self.rt, "ready")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("labsim did not become ready")
            time.sleep(0.05)
        self.lab = os.path.join(self.rt, "lab.conf")
        self.ctx = zmq.Context()

    def control(self, req):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 5000)
        s.connect("ipc://" + os.path.join(self.rt, "control"))
        s.send_string(json.dumps(req))
        rep = json.loads(s.recv_string())
        s.close()
        return rep

    def counts(self):
        return self.control({"cmd": "counts"})

    def fault(self, name, count=1):
        rep = self.control({"cmd": "fault", "name": name, "count": count})
        check(rep.get("ok") is True, "labsim armed fault %s" % name)

    def set(self, what, value):
        rep = self.control({"cmd": "set", "what": what, "value": value})
        check(rep.get("ok") is True, "labsim set %s=%s" % (what, value))

    def run(self, name, *args, timeout=60):
        p = subprocess.run([LABLOOP, "instrument", name, *args, "--lab", self.lab],
                           capture_output=True, text=True, timeout=timeout)
        out = p.stdout + p.stderr
        print("  $ labloop instrument %s %s -> %d\n    %s" %
              (name, " ".join(args), p.returncode, out.strip().replace("\n", "\n    ")), flush=True)
        return p.returncode, out

    def popen(self, name, *args):
        return subprocess.Popen([LABLOOP, "instrument", name, *args, "--lab", self.lab],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.ctx.term()
        self.log.close()


def step_id(out):
    m = re.search(r"step (\d+) started", out)
    return m.group(1) if m else None


def spin_job(out):  # "spin J000042 ..."
    m = re.search(r"spin (J\d+)", out)
    return m.group(1) if m else None


def coater_run_reply_lost(lab):
    # the first coater frames of a one-stage spin: STATUS?, RCP CLEAR, RCP STAGE, RCP?, WD,
    # ARM, STATUS?, RUN: --faults coater.no_reply@n=8 executes RUN but drops its reply
    rc, out = lab.run("coater", "run", "spin", "--stage", "2000,1000,1", "--step-id", "901")
    c = lab.counts()
    check(rc == 0 and c["coater_runs"].get("J000901") == 1 and
          c["faults"].get("coater.no_reply") == 1,
          "coater.no_reply on RUN: retransmitted with the same SEQ, ran once")
    rc, out = lab.run("coater", "query", "spin", "--stage", "1,1,1", "--step-id", "901")
    check(rc == 0 and "step 901: done" in out, "coater: query of the last spin says done")


def basics(lab):
    for name in ("robot", "furnace", "coater"):
        rc, out = lab.run(name, "status")
        check(rc == 0, name + ": status")
        rc, out = lab.run(name, "describe")
        check(rc == 0 and name in out, name + ": describe")
        rc, out = lab.run(name, "safe")
        check(rc == 0 and "safe state commanded" in out, name + ": safe")

    rc, out = lab.run("robot", "run", "dispense", "--well", "5", "--volumes", "100,50,0,0,20")
    job = step_id(out)
    check(rc == 0 and "done" in out, "robot: dispense done")
    check(lab.counts()["robot_jobs"].get(job) == 1, "robot: dispense ran once")
    rc, out = lab.run("robot", "query", "dispense", "--well", "5", "--volumes", "100",
                      "--step-id", job)
    check(rc == 0 and "done" in out, "robot: query of the finished job says done")
    rc, out = lab.run("robot", "run", "move", "--from", "rack", "--to", "coater", "--well", "5")
    check(rc == 0 and "done" in out, "robot: move rack -> coater done")

    rc, out = lab.run("coater", "run", "spin", "--stage", "1000,1000,1", "--stage", "3000,2000,2")
    job = spin_job(out)
    check(rc == 0 and "done" in out, "coater: spin done")
    check(lab.counts()["coater_runs"].get(job) == 1, "coater: spin ran once")

    rc, out = lab.run("robot", "run", "move", "--from", "coater", "--to", "furnace", "--well", "5")
    check(rc == 0, "robot: move coater -> furnace done")
    before = lab.counts()["furnace_programs"]
    rc, out = lab.run("furnace", "run", "anneal", "--setpoint", "60", "--ramp", "30", "--dwell", "1",
                      "--step-id", "55")
    check(rc == 0 and "done" in out, "furnace: anneal done")
    check(lab.counts()["furnace_programs"] == before + 1, "furnace: one program run")
    # the controller keeps no step id: a program with these parameters back in reset
    # (end type reset) cannot be told from one never started -> unknown, for the operator
    rc, out = lab.run("furnace", "query", "anneal", "--setpoint", "60", "--ramp", "30",
                      "--dwell", "1", "--step-id", "55")
    check(rc == 0 and "step 55: unknown" in out, "furnace: query after the anneal says unknown")
    rc, out = lab.run("furnace", "query", "anneal", "--setpoint", "70", "--ramp", "30",
                      "--dwell", "1", "--step-id", "56")
    check(rc == 0 and "not started" in out, "furnace: query of another anneal says not started")
    # the coater remembers only its last job: an older one's fate is unknown (never "not
    # started", which would run it twice); a newer id than anything it ran was not started
    rc, out = lab.run("coater", "query", "spin", "--stage", "1,1,1", "--step-id", "901")
    check(rc == 0 and "step 901: unknown" in out, "coater: query of an older spin says unknown")
    rc, out = lab.run("coater", "query", "spin", "--stage", "1,1,1", "--step-id", "4294967000")
    check(rc == 0 and "not started" in out, "coater: query of a newer spin says not started")
    rc, out = lab.run("robot", "run", "park")
    check(rc == 0 and "done" in out, "robot: park done")


def limits(lab):
    c0 = lab.counts()
    rc, out = lab.run("furnace", "run", "anneal", "--setpoint", "201", "--ramp", "10", "--dwell", "1")
    check(rc == 2 and "nothing was sent" in out, "furnace: setpoint above max -> exit 2")
    rc, out = lab.run("robot", "run", "dispense", "--well", "7", "--volumes", "501")
    check(rc == 2 and "nothing was sent" in out, "robot: volume above max -> exit 2")
    rc, out = lab.run("coater", "run", "spin", "--stage", "8001,1000,1")
    check(rc == 2 and "nothing was sent" in out, "coater: rpm above max -> exit 2")
    c1 = lab.counts()
    check(c1["furnace_programs"] == c0["furnace_programs"] and
          c1["furnace_eeprom_writes"] == c0["furnace_eeprom_writes"] and
          c1["robot_jobs"] == c0["robot_jobs"] and c1["coater_runs"] == c0["coater_runs"],
          "limits: nothing reached any instrument")


def robot_faults(lab):
    # the START of job 900 is applied but its reply dropped (--faults ...@job=900)
    rc, out = lab.run("robot", "run", "dispense", "--well", "10", "--volumes", "10",
                      "--step-id", "900")
    c = lab.counts()
    check(rc == 0 and c["robot_jobs"].get("900") == 1 and c["faults"].get("robot.no_reply") == 1,
          "robot.no_reply on START: reconciled from ACCEPTED_JOB_ID, the job ran exactly once")
    lab.fault("robot.no_reply")
    rc, out = lab.run("robot", "status")
    check(rc == 0, "robot.no_reply on a read: retried")
    for name in ("robot.garbage", "robot.disconnect"):
        lab.fault(name)
        rc, out = lab.run("robot", "status")
        check(rc == 0, name + ": the read is retried (reconnecting) and succeeds")
    lab.fault("robot.exception")
    rc, out = lab.run("robot", "status")
    check(rc == 1 and "instrument fault (exception 04" in out and "[instrument fault]" in out,
          "robot.exception: exception 04 is an instrument fault")
    lab.fault("robot.job_error")
    rc, out = lab.run("robot", "run", "dispense", "--well", "11", "--volumes", "10")
    check(rc == 1 and "error 20" in out and "instrument fault" in out and
          "safe state commanded" in out, "robot.job_error: step failed as an instrument fault")
    rc, out = lab.run("robot", "run", "dispense", "--well", "12", "--volumes", "10")
    check(rc == 1 and "ERROR" in out, "robot in ERROR: a new job is not sent")
    rc, out = lab.run("robot", "reset")
    check(rc == 0, "robot: reset clears the error")
    rc, out = lab.run("robot", "run", "dispense", "--well", "12", "--volumes", "10")
    check(rc == 0, "robot: runs again after reset")
    lab.set("estop", 1)
    c0 = lab.counts()["robot_jobs"]
    rc, out = lab.run("robot", "run", "dispense", "--well", "13", "--volumes", "10")
    check(rc == 1 and "ESTOP" in out and "instrument fault" in out, "robot e-stop: job not sent")
    check(lab.counts()["robot_jobs"] == c0, "robot e-stop: no job ran")
    lab.set("estop", 0)


def coater_faults(lab):
    lab.fault("coater.garbage")
    rc, out = lab.run("coater", "status")
    check(rc == 0, "coater.garbage: noise skipped")
    lab.fault("coater.err")
    rc, out = lab.run("coater", "status")
    check(rc == 1 and "E99" in out and "instrument fault" in out, "coater.err: E99 -> instrument fault")
    for name, code in (("coater.lid", "E05"), ("coater.overspeed", "E07"), ("coater.vacuum", "E06")):
        lab.fault(name)
        rc, out = lab.run("coater", "run", "spin", "--stage", "2000,1000,2")
        check(rc == 1 and code in out and "refused by the instrument" in out and
              "safe state commanded" in out, "%s: step failed, %s is a refusal" % (name, code))
        if name == "coater.lid":
            rc, out = lab.run("coater", "reset")
            check(rc == 1 and "E05" in out, "coater: CLR refused while the lid is open")
            lab.set("lid", 0)
        if name == "coater.vacuum":
            lab.set("vacuum", 1)
        rc, out = lab.run("coater", "reset")
        check(rc == 0, "coater: CLR after " + name)
    lab.set("lid", 1)
    c0 = lab.counts()["coater_runs"]
    rc, out = lab.run("coater", "run", "spin", "--stage", "2000,1000,1")
    check(rc == 1 and ("lid is open" in out or "E05" in out), "coater: lid open -> refused before RUN")
    check(lab.counts()["coater_runs"] == c0, "coater: lid open -> no run")
    lab.set("lid", 0)


def furnace_faults(lab):
    for name in ("furnace.no_reply", "furnace.garbage"):
        lab.fault(name)
        rc, out = lab.run("furnace", "status")
        check(rc == 0, name + ": the read is retried and succeeds")
    lab.fault("furnace.exception")
    rc, out = lab.run("furnace", "status")
    check(rc == 1 and "instrument fault (exception 04" in out and "[instrument fault]" in out,
          "furnace.exception: exception 04 is an instrument fault")
    p = lab.popen("furnace", "run", "anneal", "--setpoint", "150", "--ramp", "30", "--dwell", "5")
    deadline = time.monotonic() + 10
    line = ""
    while "started" not in line and time.monotonic() < deadline:
        line = p.stdout.readline()
    lab.fault("furnace.sensor_break")
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    print("    " + out.strip().replace("\n", "\n    "))
    # (a poll that reads the status just before the break and the PV just after sees the PV
    # at full scale, outside the map's range, with the bit still clear: the same fault)
    check(p.returncode == 1 and ("sensor break" in out or "0x7FFF (3276.7 C) is outside" in out)
          and "safe state commanded" in out,
          "furnace.sensor_break: anneal failed as an instrument fault, safe state commanded")
    rc, out = lab.run("furnace", "status")
    check("program=reset" in out, "furnace: program reset after the sensor break")
    time.sleep(2)  # the sensor break lasts 30 simulated seconds (1.5 s at --speed 20)

    # Ctrl-C during a run: the operator's tool leaves the furnace safe
    p = lab.popen("furnace", "run", "anneal", "--setpoint", "120", "--ramp", "30", "--dwell", "5")
    line = ""
    deadline = time.monotonic() + 10
    while "started" not in line and time.monotonic() < deadline:
        line = p.stdout.readline()
    p.send_signal(signal.SIGINT)
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    print("    " + out.strip().replace("\n", "\n    "))
    rc2, st = lab.run("furnace", "status")
    check(p.returncode == 1 and "interrupted" in out and "safe state commanded" in out and
          "program=reset" in st, "furnace: Ctrl-C during an anneal commands the safe state")


def main():
    if not os.access(LABSIM, os.X_OK) or not os.access(LABLOOP, os.X_OK):
        print("labsim or labloop not built: %s %s" % (LABSIM, LABLOOP))
        return 1
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(tmp)
        try:
            coater_run_reply_lost(lab)
            basics(lab)
            limits(lab)
            robot_faults(lab)
            coater_faults(lab)
            furnace_faults(lab)
            counts = lab.counts()
            print("labsim faults injected:", counts.get("faults"))
        finally:
            lab.close()
            if failures:
                print(open(os.path.join(tmp, "labsim.log")).read()[-3000:])
    print("took %.1f s" % (time.monotonic() - t0))
    if failures:
        print("%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

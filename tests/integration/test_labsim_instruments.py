"""labsim's instruments over the real transports, talked to by implementations that are not ours.

- robot: Debian's pymodbus 3.0 client reads and writes the documented map (docs/instruments.md
  §1) and gets the documented answers: map version, states, the job block in one FC16 write,
  the no-op replay of the same job id, exception 06 while busy, 03 for bad blocks and old job
  ids, 02 outside the map, 01 for an unsupported function; the hardware.md §3.3 example
  transaction byte for byte.
- furnace: a hand-written Modbus RTU master (CRC-16/MODBUS) on the pseudo-terminal runs a
  one-segment anneal program (eurotherm3216 map) and the sample records what it saw.
- coater: SPN/1 frames (CRC-16/CCITT-FALSE) on the second pseudo-terminal, including the
  hardware.md §2.3 examples byte for byte, the replay cache and interlocks.
- stations: a ZeroMQ ROUTER plays the daemon; the J-V station measures the sample at its
  place, resends until acked, answers a repeated request with the stored message.
- control socket: counts show each job, run, program and measurement exactly once.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import tty

import zmq
from pymodbus.client import ModbusTcpClient

SRC = os.environ.get("LL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
LABSIM = os.environ.get("LABSIM", "build/simulators/labsim")


def crc16_modbus(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc16_ccitt(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


class Labsim:
    """Starts labsim with a temporary runtime dir; always killed by stop()."""

    def __init__(self, extra=(), lab_text=None, speed=200, runtime_dir=None):
        self.dir = runtime_dir or tempfile.mkdtemp(prefix="labsim-test-")
        text = lab_text or open(os.path.join(SRC, "config", "lab.conf")).read()
        text = re.sub(r"port = \d+;", "port = 0;", text)
        self.lab_path = os.path.join(self.dir, "lab-in.conf")
        with open(self.lab_path, "w") as f:
            f.write(text)
        self.zctx = zmq.Context()
        self.router = self.zctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.log = open(os.path.join(self.dir, "labsim.log"), "a")
        if os.path.exists(os.path.join(self.dir, "ready")):  # left by a killed labsim
            os.unlink(os.path.join(self.dir, "ready"))
        self.proc = subprocess.Popen(
            [LABSIM, "--lab", self.lab_path, "--runtime-dir", self.dir, "--speed", str(speed),
             "--stations-endpoint", self.endpoint] + list(extra),
            stderr=self.log)
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(self.dir, "ready")):
            if self.proc.poll() is not None:
                raise RuntimeError("labsim exited early: " + open(self.log.name).read())
            if time.time() > deadline:
                raise RuntimeError("labsim not ready in 30 s")
            time.sleep(0.02)
        conf = open(os.path.join(self.dir, "lab.conf")).read()
        self.robot_port = int(re.search(r'name = "robot";.*?port = (\d+);', conf, re.S).group(1))
        self.furnace_dev = re.search(r'name = "furnace";.*?device = "([^"]+)";', conf, re.S).group(1)
        self.coater_dev = re.search(r'name = "coater";.*?device = "([^"]+)";', conf, re.S).group(1)
        self.control = self.zctx.socket(zmq.REQ)
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.setsockopt(zmq.RCVTIMEO, 10000)
        self.control.connect("ipc://%s/control" % self.dir)

    def wait_hello(self, station, timeout=10):
        """Waits for the station's hello on the ROUTER (messages to it are dropped before)."""
        self.router.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        while True:
            ident, msg = self.router.recv_multipart()
            if ident.decode() == station and json.loads(msg)["type"] == "hello":
                return

    def ctl(self, **req):
        self.control.send_string(json.dumps(req))
        return json.loads(self.control.recv_string())

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        else:
            rc = self.proc.returncode
        self.zctx.destroy(linger=0)
        self.log.close()
        return rc

    def remove(self):
        """Deletes the runtime dir (after stop())."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def logtext(self):
        return open(self.log.name).read()


class Serial:
    """A pty slave opened raw, with timed reads."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)

    def write(self, data):
        os.write(self.fd, data)

    def read_until(self, done, timeout=2.0):
        buf = b""
        deadline = time.time() + timeout
        while not done(buf):
            left = deadline - time.time()
            if left <= 0:
                return buf
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                buf += os.read(self.fd, 512)
        return buf

    def close(self):
        os.close(self.fd)


class Rtu:
    def __init__(self, path, slave=1):
        self.s = Serial(path)
        self.slave = slave

    def transact(self, pdu, expect_len):
        frame = bytes([self.slave]) + pdu
        c = crc16_modbus(frame)
        self.s.write(frame + bytes([c & 0xFF, c >> 8]))
        rep = self.s.read_until(lambda b: len(b) >= 5 and (b[1] & 0x80 or len(b) >= expect_len))
        assert len(rep) >= 5, "no RTU reply to %s" % pdu.hex()
        assert crc16_modbus(rep[:-2]) == rep[-2] | (rep[-1] << 8), "bad CRC in reply %s" % rep.hex()
        return rep

    def read(self, addr, n=1):
        rep = self.transact(struct.pack(">BHH", 3, addr, n), 5 + 2 * n)
        if rep[1] & 0x80:
            return ("exception", rep[2])
        return list(struct.unpack(">%dh" % n, rep[3:3 + 2 * n]))

    def write(self, addr, value):
        rep = self.transact(struct.pack(">BHh", 6, addr, value), 8)
        if rep[1] & 0x80:
            return ("exception", rep[2])
        return "ok"


class Spn1:
    def __init__(self, path):
        self.s = Serial(path)
        self.seq = 100

    def raw(self, line):
        self.s.write(line)
        return self.s.read_until(lambda b: b.endswith(b"\r\n")).decode()

    def frame(self, seq, body):
        text = "%d %s" % (seq, body)
        return ("%s*%04X\r\n" % (text, crc16_ccitt(text.encode()))).encode()

    def cmd(self, body):
        self.seq += 1
        rep = self.raw(self.frame(self.seq, body)).strip()
        text, crc = rep.rsplit("*", 1)
        assert int(crc, 16) == crc16_ccitt(text.encode()), "bad CRC in %r" % rep
        seq, rest = text.split(" ", 1)
        assert int(seq) == self.seq
        return rest


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok -", what)


def job_block(job, action, plate=0, well=0, source=0, vols=(), recipe=0, command=1):
    regs = [job >> 16, job & 0xFFFF, action, recipe, plate, well, source]
    regs += [int(round(v * 10)) for v in vols] + [0] * (8 - len(vols))
    regs += [0, 0, command]
    return regs


def wait_state(c, want, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rr = c.read_input_registers(0, 20, slave=255)
        if not rr.isError() and rr.registers[1] in want:
            return rr.registers
        time.sleep(0.01)
    raise AssertionError("robot never reached state %s" % (want,))


def robot_job(c, job, **kw):
    rr = c.write_registers(0, job_block(job, **kw), slave=255)
    assert not rr.isError(), "job %d refused: %s" % (job, rr)
    regs = wait_state(c, (3, 4))
    assert (regs[4] << 16 | regs[5]) == job
    return regs[6]


def test_robot(ls):
    c = ModbusTcpClient("127.0.0.1", port=ls.robot_port, timeout=3)
    check(c.connect(), "pymodbus connects to the robot")
    rr = c.read_input_registers(0, 20, slave=255)
    check(not rr.isError() and rr.registers[0] == 0x0100 and rr.registers[1] == 1,
          "input registers: MAP_VERSION 0x0100, STATE IDLE")
    check(rr.registers[10] == 0x3F and rr.registers[11] == 500 and rr.registers[19] == 960,
          "interlocks all OK, reservoirs 50.0 mL, 960 tips")
    hb0 = rr.registers[9]
    # job 1: dispense FA/MA/Cs iodide into well 0 — one FC16 with COMMAND last
    block = job_block(1, 1, well=0, vols=(80.0, 10.0, 10.0))
    check(not c.write_registers(0, block, slave=255).isError(), "FC16 job block with START accepted")
    rr = c.read_input_registers(0, 8, slave=255)
    check(rr.registers[1] == 2 and rr.registers[2:4] == [0, 1], "STATE BUSY, ACCEPTED_JOB_ID 1")
    hr = c.read_holding_registers(0, 18, slave=255)
    check(hr.registers[17] == 0 and hr.registers[:3] == [0, 1, 1], "COMMAND cleared to 0, block kept")
    check(not c.write_registers(0, block, slave=255).isError(), "replay of job 1 while busy: normal reply")
    rr = c.write_registers(0, job_block(2, 3), slave=255)
    check(rr.isError() and rr.exception_code == 6, "another job while busy: exception 06")
    regs = wait_state(c, (3,))
    check(regs[4:7] == [0, 1, 0], "job 1 done: LAST_DONE_JOB_ID 1, LAST_RESULT 0")
    check(regs[11] == 499 and regs[12] == 500, "reservoir levels fell by the dispensed volumes (49.92, 49.99 mL)")
    check(not c.write_registers(0, block, slave=255).isError(), "replay of job 1 after it ended: normal reply")
    check(c.read_input_registers(0, 2, slave=255).registers[1] == 3, "the replay did nothing (STATE DONE)")
    # bad blocks
    rr = c.write_registers(0, job_block(5, 1, well=1, vols=(600.0,)), slave=255)
    check(rr.isError() and rr.exception_code == 3, "volume above max_volume_ul: exception 03")
    rr = c.write_registers(0, job_block(5, 9), slave=255)
    check(rr.isError() and rr.exception_code == 3, "unknown action: exception 03")
    rr = c.write_registers(0, job_block(5, 1, well=96, vols=(10.0,)), slave=255)
    check(rr.isError() and rr.exception_code == 3, "well 96: exception 03")
    hr = c.read_holding_registers(0, 18, slave=255)
    check(hr.registers[2] == 1 and hr.registers[5] == 0, "a refused write changed no register")
    rr = c.read_input_registers(18, 5, slave=255)
    check(rr.isError() and rr.exception_code == 2, "read beyond the input map: exception 02")
    rr = c.write_register(40, 1, slave=255)
    check(rr.isError() and rr.exception_code == 2, "write outside the holding map: exception 02")
    # robot.job_error would be a fault; here a physical error: move a sample from the wrong place
    res = robot_job(c, 3, action=2, well=0, source=2, plate=1)
    check(res == 14, "MOVE from a place that does not hold the sample: error 14 (STATE ERROR)")
    rr = c.write_registers(0, job_block(4, 3), slave=255)
    check(rr.isError() and rr.exception_code == 4, "START in ERROR: exception 04")
    check(not c.write_coil(2, True, slave=255).isError(), "coil RESET_ERROR")
    check(c.read_input_registers(0, 8, slave=255).registers[1] == 1, "STATE IDLE after RESET_ERROR")
    rr = c.write_registers(0, job_block(2, 3), slave=255)
    check(rr.isError() and rr.exception_code == 3, "job id below LAST_DONE_JOB_ID: exception 03")
    di = c.read_discrete_inputs(0, 6, slave=255)
    check(not di.isError() and di.bits[0] and not di.bits[1], "discrete inputs: READY, not BUSY")
    time.sleep(0.6)
    check(c.read_input_registers(9, 1, slave=255).registers[0] != hb0, "HEARTBEAT moves")
    c.close()

    # hardware.md §3.3 example transaction, byte for byte (job 4711, recipe 3, well 37)
    s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
    req = bytes.fromhex("0001000000 2b ff 10 0000 0012 24 0000 1267 0001 0003 0000 0025 0000"
                        " 04b0 0320 0000 0000 0000 0000 0000 0000 0000 b878 0001".replace(" ", ""))
    s.sendall(req)
    check(s.recv(64) == bytes.fromhex("000100000006ff1000000012"),
          "hardware.md example FC16 (with BLOCK_CRC) answered exactly")
    s.sendall(bytes.fromhex("000200000006ff0400000012"))
    rep = s.recv(128)
    check(rep[7] == 4 and rep[8] == 36 and rep[9 + 2:9 + 4] == b"\x00\x02"
          and rep[9 + 4:9 + 8] == bytes.fromhex("00001267"),
          "poll: STATE BUSY, ACCEPTED_JOB_ID 4711")
    s.sendall(bytes.fromhex("000300000002ff18"))  # FC 0x18 read FIFO: not supported
    rep = s.recv(64)
    check(rep[7] == 0x98 and rep[8] == 1, "unsupported function: exception 01")
    s.close()
    c = ModbusTcpClient("127.0.0.1", port=ls.robot_port, timeout=3)
    c.connect()
    wait_state(c, (3,))
    c.close()


def move(c, job, well, src, dst):
    res = robot_job(c, job, action=2, well=well, source=src, plate=dst)
    assert res == 0, "move job %d failed with %d" % (job, res)


def test_flow(ls):
    """Dispense, spin, anneal, measure: the physics follows the sample."""
    c = ModbusTcpClient("127.0.0.1", port=ls.robot_port, timeout=3)
    c.connect()
    # fa 0.8, cs 0.05, iodide 0.85 in 200 µL: V·a_A·x_X
    a = {"FA": 0.95 * 0.8, "MA": 0.95 * 0.2, "Cs": 0.05}
    x = {"I": 0.85, "Br": 0.15}
    vols = [200 * a[A] * x[X] for A, X in
            (("FA", "I"), ("MA", "I"), ("Cs", "I"), ("FA", "Br"), ("MA", "Br"), ("Cs", "Br"))]
    check(robot_job(c, 5010, action=1, well=7, vols=vols) == 0, "dispense sample into well 7")
    move(c, 5011, 7, 0, 1)
    rr = c.write_registers(0, job_block(5012, 2, well=7, source=0, plate=1), slave=255)
    wait_state(c, (3, 4))
    check(c.read_input_registers(6, 1, slave=255).registers[0] == 14,
          "moving it again from the rack: error 14 (it is on the coater)")
    c.write_coil(2, True, slave=255)

    sp = Spn1(ls.coater_dev)
    check(sp.raw(b"17 RCP 3 STAGE 1 500 1000 5*8DA8\r\n") == "17 OK RCP 3 STAGE 1*F22D\r\n",
          "SPN/1 example: RCP STAGE reply byte for byte")
    check(sp.raw(b"17 RCP 3 STAGE 1 500 1000 5*8DA8\r\n") == "17 OK RCP 3 STAGE 1*F22D\r\n",
          "same SEQ and body: the cached reply")
    check(sp.raw(sp.frame(17, "ID?")).startswith("17 ERR E04 SEQ_REUSED*"), "same SEQ, other body: E04")
    check(sp.raw(b"18 RUN 3 J000042*5B78\r\n").startswith("18 ERR E01 BAD_CRC*"), "bad CRC: E01")
    check(sp.cmd("RCP 1 CLEAR") == "OK RCP 1 CLEAR", "RCP CLEAR")
    check(sp.cmd("RCP 1 STAGE 1 1000 1000 10") == "OK RCP 1 STAGE 1", "stage 1")
    check(sp.cmd("RCP 1 STAGE 2 4000 2000 150") == "OK RCP 1 STAGE 2", "stage 2")
    check(sp.cmd("RCP 1 STAGE 3 9000 2000 30") == "ERR E03 RANGE", "rpm above max_rpm: E03")
    check(sp.cmd("RCP? 1") == "OK RCP 1 N=2 S1=1000,1000,10 S2=4000,2000,150", "RCP? reads the stages back")
    check(sp.cmd("RUN 1 J000011") == "ERR E04 STATE", "RUN before ARM: E04")
    check(sp.cmd("FLY") == "ERR E02 UNKNOWN_VERB", "unknown verb: E02")
    check(sp.cmd("ARM") == "OK ARM", "ARM")
    check(sp.cmd("RUN 1 J000011") == "OK RUN 1 J000011", "RUN answers at once")
    check(sp.cmd("RUN 1 J000011") == "OK RUN 1 J000011", "RUN with the running job id: no-op OK")
    check(sp.cmd("STATUS?").startswith("OK STATE=RUNNING JOB=J000011 RCP=1"), "STATUS? while running")
    check(sp.cmd("VAC OFF") == "ERR E04 BUSY", "VAC OFF while running: E04")
    deadline = time.time() + 10
    while "STATE=DONE" not in sp.cmd("STATUS?") and time.time() < deadline:
        time.sleep(0.02)
    last = sp.cmd("LAST?")
    check(last.startswith("OK JOB=J000011 RESULT=OK PEAK=4000"), "LAST? after the run: " + last)
    check(sp.cmd("LID OPEN") == "OK LID OPEN" and sp.cmd("ARM") == "ERR E05 LID_OPEN",
          "lid open: ARM refused with E05")
    check(sp.cmd("LID CLOSE") == "OK LID CLOSE", "lid closed again")
    sp.s.close()

    move(c, 5013, 7, 1, 2)
    rtu = Rtu(ls.furnace_dev)
    check(rtu.read(1)[0] in range(240, 260), "furnace PV near 25.0 °C")
    check(rtu.write(2, 2500) == ("exception", 3), "TG.SP above max_temp_c: exception 03")
    check(rtu.read(7) == ("exception", 2), "register 7 is not in the map: exception 02")
    check(rtu.write(35, 300) == "ok", "SP.RAT 30.0 °C/min")
    for addr, value in ((1280, 100), (1281, 1000), (1282, 300), (328, 3)):
        check(rtu.write(addr, value) == "ok", "program register %d = %d" % (addr, value))
    check(rtu.write(23, 1) == "ok", "program status RUN")
    check(rtu.read(75)[0] & (1 << 13), "status B13: program running")
    deadline = time.time() + 20
    seen_max = 0
    while time.time() < deadline:
        st = rtu.read(23)[0]
        seen_max = max(seen_max, rtu.read(5)[0])
        if st == 0:
            break
        time.sleep(0.02)
    check(st == 0, "end type reset: the program ends on its own (status reset)")
    check(seen_max >= 995, "working setpoint reached 100.0 °C during the program")
    time.sleep(0.2)
    check(rtu.read(5)[0] < 990, "after the end the working setpoint heads to the safe setpoint")
    rtu.s.close()
    move(c, 5014, 7, 2, 3)
    samples = ls.ctl(cmd="samples")["samples"]
    s7 = [s for s in samples if s["well"] == 7][0]
    t = s7["truth"]
    check(abs(t["fa"] - 0.8) < 1e-6 and abs(t["cs"] - 0.05) < 1e-6 and abs(t["iodide"] - 0.85) < 1e-6,
          "composition recovered from the volumes")
    check(s7["spin_rpm"] == 4000 and s7["place"] == "jv", "spin 4000 rpm recorded, sample at jv")
    check(abs(s7["anneal_c"] - 100) < 1.5 and 9.0 < s7["anneal_min"] < 11.5,
          "anneal seen by the sample: %.2f °C for %.2f min" % (s7["anneal_c"], s7["anneal_min"]))
    prof = s7["furnace_profile"]
    check(10 <= len(prof) <= 60 and prof[0][1] < 30 and max(p[1] for p in prof) > 99
          and 12 < prof[-1][0] < 16, "the furnace profile the sample saw: %d points" % len(prof))

    # stations: the daemon's side
    r = ls.router
    r.setsockopt(zmq.RCVTIMEO, 10000)
    hellos = set()
    deadline = time.time() + 10
    while len(hellos) < 3 and time.time() < deadline:
        ident, msg = r.recv_multipart()
        m = json.loads(msg)
        if m["type"] == "hello":
            check(m["station"] == ident.decode() and m["v"] == 1, "hello from %s" % ident.decode())
            hellos.add(ident.decode())
    req = {"v": 1, "type": "measure", "request": "r-1-jv", "experiment": 1, "sample": "S0001",
           "kind": "jv", "protocol": {}}
    r.send_multipart([b"jv-1", json.dumps(req).encode()])
    m = None
    while m is None:
        ident, msg = r.recv_multipart()
        j = json.loads(msg)
        if j["type"] == "measurement":
            m = j
    check(ident == b"jv-1" and m["request"] == "r-1-jv" and m["sample"] == "S0001" and m["seq"] == 1,
          "measurement from jv-1 with seq 1 for the request")
    sw = m["data"]["sweeps"]
    check(len(sw) == 2 and sw[0]["direction"] == "reverse" and len(sw[0]["voltage_v"]) == len(sw[0]["current_ma_cm2"]) > 100,
          "two sweeps of equal-length arrays")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", m["time"]) is not None, "RFC 3339 time")
    # not acked: it comes again with the same seq
    again = None
    while again is None:
        ident, msg = r.recv_multipart()
        j = json.loads(msg)
        if j["type"] == "measurement":
            again = j
    check(again["seq"] == 1 and again == m, "unacked measurement resent unchanged")
    r.send_multipart([b"jv-1", json.dumps({"v": 1, "type": "ack", "seq": 1, "status": "stored"}).encode()])
    r.send_multipart([b"jv-1", json.dumps(req).encode()])
    stored = None
    while stored is None:
        ident, msg = r.recv_multipart()
        j = json.loads(msg)
        if j["type"] == "measurement":
            stored = j
    check(stored == m, "repeated request answered with the stored measurement (same seq)")
    r.send_multipart([b"jv-1", json.dumps({"v": 1, "type": "ack", "seq": 1, "status": "duplicate"}).encode()])
    # no sample at the stability place: nothing is sent, an error is logged
    r.send_multipart([b"stab-1", json.dumps(dict(req, request="r-1-stab", kind="stability")).encode()])
    counts = ls.ctl(cmd="counts")
    check(counts["measurements"] == {"r-1-jv": 1}, "one measurement for r-1-jv, none without a sample")
    check(counts["coater_runs"] == {"J000011": 1}, "coater ran J000011 exactly once")
    check(counts["furnace_programs"] == 1, "one furnace program")
    check(counts["robot_jobs"].get("1") == 1 and counts["robot_jobs"].get("4711") == 1
          and counts["robot_jobs"].get("5013") == 1, "robot jobs counted once each")
    check(counts["faults"] == {}, "no faults without --faults")
    c.close()
    deadline = time.time() + 5
    while "error=no_sample" not in ls.logtext() and time.time() < deadline:
        time.sleep(0.05)
    check("error=no_sample" in ls.logtext(), "measure without a sample: error logged")


def main():
    ls = Labsim()
    try:
        test_robot(ls)
        test_flow(ls)
        check(ls.ctl(cmd="shutdown")["ok"], "shutdown via the control socket")
        check(ls.proc.wait(10) == 0, "labsim exits 0")
        check(not os.path.exists(os.path.join(ls.dir, "ready")), "ready file removed at exit")
    except Exception:
        print(ls.logtext()[-4000:], file=sys.stderr)
        raise
    finally:
        ls.stop()
    ls.remove()


if __name__ == "__main__":
    main()

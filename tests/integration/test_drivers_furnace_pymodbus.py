#!/usr/bin/python3
"""test_drivers_furnace_pymodbus — the furnace driver against a Modbus RTU server that is
not ours: Debian's python3-pymodbus (3.0) serving the documented furnace map on a
pseudo-terminal, driven through `labloop instrument furnace ...`.

Wiring (no socat): two pseudo-terminals; the driver opens the slave of the first, pymodbus's
serial server the slave of the second, and a bridge thread copies bytes between the two
masters. The bridge counts every byte the driver sends and can drop, corrupt or cut the
line, so each fault kind can be provoked.

Checks, for both maps in lab.conf (eurotherm3216, vendorb: no code change between them):
  - an anneal is loaded as a one-segment program (target, rate, dwell; end type = reset),
    the rate register is set (never 0), alarm 1 is lowered to max + 10 C, program run;
    the run ends when the "controller" resets with the program-end bit (end type reset);
  - an operator's reset mid-anneal (program back in reset WITHOUT the program-end bit, which
    a program start clears) -> step failed "reset before its end", not done;
  - a setpoint above max_temp_c and a ramp above max_ramp_c_min never reach the wire
    (0 bytes from the driver) and exit 2;
  - refused (exception 02 from the server) -> exit 1 "refused", a configuration error, safe
    state commanded (program reset, safe setpoint);
  - no answer (replies dropped) -> exit 1 "no answer"; garbled replies -> "garbled answer";
  - a sensor break during the anneal -> step failed "instrument fault", safe state commanded;
  - PV above max_temp_c + 10 C with no status bit -> the same (the driver's own check);
  - anneal_end_type = "sp2": the program ends in "end";
  - query from another process: not this step's program -> not started; this step's
    parameters, ended -> unknown (the controller keeps no step id);
  - link lost (the line cut) -> "link lost".
"""
import asyncio
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
import tty

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.server import StartAsyncSerialServer

SRC = os.environ.get("LL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
LABLOOP = os.environ.get("LABLOOP", "labloop")

MAPS = {
    "eurotherm3216": dict(pv=1, target_sp=2, alarm1=13, program_status=23, sp_rate=35,
                          status=75, end_type=328, seg_dwell=1280, seg_target=1281,
                          seg_rate=1282, working_sp=5, temp_scale=0.1, rate_scale=0.1,
                          dwell_scale=0.1, ps=dict(reset=0, run=1, hold=2, end=3), end_reset=3),
    "vendorb": dict(pv=4096, target_sp=4097, alarm1=4100, program_status=4101, sp_rate=4103,
                    status=4104, end_type=4106, seg_dwell=8320, seg_target=8192, seg_rate=8448,
                    working_sp=4099, temp_scale=0.1, rate_scale=1.0, dwell_scale=1.0,
                    ps=dict(reset=1, run=2, hold=4, end=8), end_reset=3),
}
B5_SENSOR_BREAK = 1 << 5
B9_PROGRAM_END = 1 << 9

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Furnace(ModbusSequentialDataBlock):
    """A register store that behaves like the controller where the test needs it."""

    def __init__(self, m):
        super().__init__(0, [0] * 9000)
        self.m = m
        self.writes = []
        self.refuse_addr = None
        self.sensor_break_on_run = False
        self.overheat_on_run = False
        self.operator_reset_on_run = False
        self.finish_after_s = 0.6
        self.lock = threading.Lock()
        self.reset_state()

    def reset_state(self):
        m = self.m
        super().setValues(m["pv"], [250])
        super().setValues(m["target_sp"], [250])
        super().setValues(m["alarm1"], [5000])
        super().setValues(m["sp_rate"], [0])
        super().setValues(m["program_status"], [m["ps"]["reset"]])
        super().setValues(m["status"], [0])
        self.writes = []

    def reg(self, addr):
        return self.getValues(addr, 1)[0]

    def setValues(self, address, values):
        m = self.m
        with self.lock:
            for i, v in enumerate(values):
                self.writes.append((address + i, v))
        was = self.reg(m["program_status"])
        super().setValues(address, values)
        if address == m["program_status"] and values[0] == m["ps"]["run"] and \
                was != m["ps"]["hold"]:
            # a program start clears the program-end bit (docs/instruments.md §2)
            super().setValues(m["status"], [self.reg(m["status"]) & ~B9_PROGRAM_END])
        if address == m["program_status"] and values[0] == m["ps"]["run"]:
            threading.Timer(self.finish_after_s, self.finish).start()

    def pv_full_scale(self):
        if self.sensor_break_on_run:  # not once the test has moved on
            super().setValues(self.m["pv"], [32767])

    def finish(self):
        m = self.m
        if self.reg(m["program_status"]) != m["ps"]["run"]:
            return
        if self.sensor_break_on_run:
            # the status bit first, PV at full scale 0.1 s later: a poll reads status before
            # PV (one request each, 3.5 characters apart on the line), so setting both at
            # once could fall between those reads and show the full-scale PV (an INVALID PV
            # fault) without the bit that names the sensor break
            super().setValues(m["status"], [B5_SENSOR_BREAK])
            threading.Timer(0.1, self.pv_full_scale).start()
            return
        if self.overheat_on_run:  # output stuck on, no alarm configured: PV 215 C
            super().setValues(m["pv"], [2150])
            return
        if self.operator_reset_on_run:  # reset on the front panel mid-anneal: no B9
            super().setValues(m["program_status"], [m["ps"]["reset"]])
            return
        super().setValues(m["pv"], [self.reg(m["seg_target"])])
        if self.reg(m["end_type"]) == m["end_reset"]:
            # end type reset: back to reset, program-end bit set
            super().setValues(m["program_status"], [m["ps"]["reset"]])
            super().setValues(m["status"], [B9_PROGRAM_END])
        else:
            # sp2: the safe setpoint, program status end, program-end bit set
            super().setValues(m["program_status"], [m["ps"]["end"]])
            super().setValues(m["status"], [B9_PROGRAM_END])


class Context(ModbusSlaveContext):
    def validate(self, fc_as_hex, address, count=1):
        block = self.store["h"]
        if fc_as_hex in (6, 16) and block.refuse_addr is not None and \
                address <= block.refuse_addr < address + count:
            return False  # pymodbus answers exception 02
        return super().validate(fc_as_hex, address, count)


class Bridge(threading.Thread):
    """Copies bytes between the driver's pty and the server's pty, with faults."""

    def __init__(self, a, b):
        super().__init__(daemon=True)
        self.a, self.b = a, b
        self.from_driver = 0
        self.mode = "pass"  # pass | drop_replies | corrupt_replies
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                r, _, _ = select.select([self.a, self.b], [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if fd == self.a:
                    self.from_driver += len(data)
                    os.write(self.b, data)
                elif self.mode == "drop_replies":
                    pass
                elif self.mode == "corrupt_replies":
                    os.write(self.a, bytes([data[0]]) + bytes(x ^ 0x5A for x in data[1:]))
                else:
                    os.write(self.a, data)


def make_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def write_lab(path, device, map_name, slave, end_type="reset"):
    text = open(os.path.join(SRC, "config", "lab.conf")).read()
    text = text.replace('device = "/dev/ttyUSB0";',
                        'device = "%s";\n      anneal_end_type = "%s";' % (device, end_type))
    text = text.replace("slave = 1;", "slave = %d;" % slave)
    text = re.sub(r'map = "eurotherm3216";', 'map = "%s";' % map_name, text)
    text = text.replace("response_timeout_ms = 500;\n      byte_timeout_ms = 50;",
                        "response_timeout_ms = 300;\n      byte_timeout_ms = 50;\n"
                        "      poll_ms = 100;\n      step_timeout_s = 20;")
    open(path, "w").write(text)


def labloop(lab, *args, timeout=60):
    p = subprocess.run([LABLOOP, "instrument", "furnace", *args, "--lab", lab],
                       capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    print("  $ labloop instrument furnace %s -> %d\n    %s" %
          (" ".join(args), p.returncode, out.strip().replace("\n", "\n    ")), flush=True)
    return p.returncode, out


def serve(context, port, loop_box):
    loop = asyncio.new_event_loop()
    loop_box.append(loop)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(StartAsyncSerialServer(
            context=context, framer=ModbusRtuFramer, port=port, baudrate=9600,
            bytesize=8, parity="N", stopbits=1))
    except Exception as e:  # the loop is stopped at the end of the test
        print("server ended:", e)


def run_map(map_name, slave, block, bridge, pa, tmp):
    m = MAPS[map_name]
    print("== map %s (slave %d)" % (map_name, slave), flush=True)
    lab = os.path.join(tmp, "lab-%s.conf" % map_name)
    write_lab(lab, pa, map_name, slave)

    # the server is up when a status read answers
    deadline = time.monotonic() + 10
    while True:
        rc, out = labloop(lab, "status")
        if rc == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(rc == 0 and "program=reset" in out and "pv=25.0C" in out, map_name + ": status reads PV")

    # limits: nothing reaches the wire
    before = bridge.from_driver
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "250", "--ramp", "10", "--dwell", "1")
    check(rc == 2 and "above the furnace's maximum" in out, map_name + ": setpoint above max refused, exit 2")
    rc2, out2 = labloop(lab, "run", "anneal", "--setpoint", "150", "--ramp", "31", "--dwell", "1")
    check(rc2 == 2 and "ramp" in out2, map_name + ": ramp above max refused, exit 2")
    check(bridge.from_driver == before and not block.writes,
          map_name + ": no byte of a request above a limit reached the wire (%d bytes)"
          % (bridge.from_driver - before))

    # a full anneal
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "150", "--ramp", "10", "--dwell", "2",
                      "--step-id", "7")
    check(rc == 0 and "done" in out, map_name + ": anneal runs to done")
    w = dict(block.writes)
    check(w.get(m["seg_target"]) == round(150 / m["temp_scale"]), map_name + ": segment target")
    check(w.get(m["seg_rate"]) == round(10 / m["rate_scale"]), map_name + ": segment rate")
    check(w.get(m["seg_dwell"]) == round(2 / m["dwell_scale"]), map_name + ": segment dwell")
    check(w.get(m["end_type"]) == m["end_reset"], map_name + ": end type = reset")
    check(block.reg(m["sp_rate"]) == round(10 / m["rate_scale"]) and block.reg(m["sp_rate"]) != 0,
          map_name + ": setpoint rate register set, not 0")
    check(block.reg(m["alarm1"]) == round(210 / m["temp_scale"]), map_name + ": alarm 1 lowered to max+10")
    order = [a for a, _ in block.writes]
    check(order and order[-1] == m["program_status"] and
          block.writes[-1][1] == m["ps"]["run"], map_name + ": program run written last")
    check(m["target_sp"] not in order, map_name + ": no EEPROM target setpoint write in an anneal")

    # query after the fact: the loaded program is this step's and it ended
    rc, out = labloop(lab, "query", "anneal", "--setpoint", "150", "--ramp", "10", "--dwell", "2",
                      "--step-id", "7")
    check(rc == 0 and "step 7: unknown" in out and "earlier step" in out,
          map_name + ": query from a new process: unknown (no step id in the controller)")
    rc, out = labloop(lab, "query", "anneal", "--setpoint", "120", "--ramp", "10", "--dwell", "2",
                      "--step-id", "8")
    check(rc == 0 and "not started" in out, map_name + ": query of another step says not started")

    # refused: the controller rejects the segment target (exception 02)
    block.reset_state()
    block.refuse_addr = m["seg_target"]
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "150", "--ramp", "10", "--dwell", "1")
    block.refuse_addr = None
    check(rc == 1 and "refused" in out and "exception 02" in out and "[configuration error" in out,
          map_name + ": exception 02 -> refused as a configuration error")
    check("safe state commanded" in out and block.reg(m["program_status"]) == m["ps"]["reset"],
          map_name + ": refused start leaves the program in reset (safe)")
    check(block.reg(m["target_sp"]) == 250, map_name + ": safe setpoint 25.0 C in place")

    # sensor break while the anneal runs: fault, safe state commanded
    block.reset_state()
    block.sensor_break_on_run = True
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "150", "--ramp", "10", "--dwell", "1")
    block.sensor_break_on_run = False
    check(rc == 1 and "sensor break" in out and "instrument fault" in out,
          map_name + ": sensor break -> instrument fault")
    check("safe state commanded" in out and block.reg(m["program_status"]) == m["ps"]["reset"],
          map_name + ": sensor break -> program reset (safe)")
    super(Furnace, block).setValues(m["status"], [0])

    # over-temperature without any status bit: the driver's own check
    block.reset_state()
    block.overheat_on_run = True
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "150", "--ramp", "10", "--dwell", "1")
    block.overheat_on_run = False
    check(rc == 1 and "above max_temp_c" in out and "safe state commanded" in out and
          block.reg(m["program_status"]) == m["ps"]["reset"],
          map_name + ": PV above max + 10 C -> instrument fault, program reset")
    super(Furnace, block).setValues(m["pv"], [250])

    # an operator resets the program mid-anneal: a failed step, not a normal end
    block.reset_state()
    super(Furnace, block).setValues(m["status"], [B9_PROGRAM_END])  # left from an earlier end
    block.operator_reset_on_run = True
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "150", "--ramp", "10", "--dwell", "1",
                      "--step-id", "9")
    block.operator_reset_on_run = False
    check(rc == 1 and "reset before its end" in out and "done" not in out,
          map_name + ": operator reset mid-anneal -> step failed, not done: %r" % out.strip())

    # no answer
    bridge.mode = "drop_replies"
    t0 = time.monotonic()
    rc, out = labloop(lab, "status")
    took = time.monotonic() - t0
    check(rc == 1 and "no answer" in out, map_name + ": dropped replies -> no answer")
    check(took < 8, map_name + ": the call kept its deadline (%.1f s)" % took)

    # garbled
    bridge.mode = "corrupt_replies"
    rc, out = labloop(lab, "status")
    check(rc == 1 and ("garbled" in out or "no answer" in out), map_name + ": corrupted replies -> garbled answer")
    bridge.mode = "pass"
    rc, out = labloop(lab, "safe")
    check(rc == 0, map_name + ": safe after the faults")
    return lab


def run_sp2(block, pa, tmp):
    """anneal_end_type = "sp2": the program ends in "end" (safe setpoint) rather than reset."""
    m = MAPS["eurotherm3216"]
    lab = os.path.join(tmp, "lab-sp2.conf")
    write_lab(lab, pa, "eurotherm3216", 1, "sp2")
    block.reset_state()
    rc, out = labloop(lab, "run", "anneal", "--setpoint", "120", "--ramp", "20", "--dwell", "1",
                      "--step-id", "21")
    check(rc == 0 and "done" in out and "program end" in out, "sp2: anneal runs to done (program end)")
    check(dict(block.writes).get(m["end_type"]) == 2, "sp2: end type sp2 loaded")
    rc, out = labloop(lab, "query", "anneal", "--setpoint", "120", "--ramp", "20", "--dwell", "1",
                      "--step-id", "21")
    check(rc == 0 and "step 21: unknown" in out and "earlier step" in out,
          "sp2: query from a new process after the end: unknown (no step id in the controller)")


def main():
    # one pymodbus server (its module keeps global state: one event loop per process) with
    # both maps, as two slaves on one line: 1 = eurotherm3216, 2 = vendorb
    ma, sa, pa = make_pty()
    mb, sb, pb = make_pty()
    blocks = {name: Furnace(MAPS[name]) for name in MAPS}
    ctx = ModbusServerContext(slaves={1: Context(hr=blocks["eurotherm3216"], zero_mode=True),
                                      2: Context(hr=blocks["vendorb"], zero_mode=True)},
                              single=False)
    threading.Thread(target=serve, args=(ctx, pb, []), daemon=True).start()
    bridge = Bridge(ma, mb)
    bridge.start()
    with tempfile.TemporaryDirectory() as tmp:
        for slave, map_name in ((1, "eurotherm3216"), (2, "vendorb")):
            lab = run_map(map_name, slave, blocks[map_name], bridge, pa, tmp)
        run_sp2(blocks["eurotherm3216"], pa, tmp)
        # link lost: cut the line (close the driver side's master)
        bridge.stop = True
        bridge.join()
        os.close(ma)
        rc, out = labloop(lab, "status")
        check(rc == 1 and "link lost" in out, "line cut -> link lost")
    if failures:
        print("%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

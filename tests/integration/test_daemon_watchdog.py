#!/usr/bin/env python3
"""A hung instrument worker and the systemd watchdog (reliability.md §4.2 F18), end to end.

In a test build (-DLL_FAILPOINTS=ON; otherwise skipped with 77) LABLOOP_FAILPOINT_HANG=
worker_poll_furnace:1 blocks the furnace's worker thread for good at the first poll of the
first anneal (common/ll_failpoint.h): the furnace has accepted its program and runs it; the
daemon's loop runs on. labloopd runs under a watchdog emulator that does what systemd does for
systemd/labloopd.service (Type=notify, NotifyAccess=main, WatchdogSec, Restart=on-failure):
  - it passes NOTIFY_SOCKET, WATCHDOG_USEC (2 s here; 30 s in the unit) and WATCHDOG_PID (the
    pid labloopd runs as: sd_watchdog_enabled() ignores the watchdog if it differs), takes
    sd_notify datagrams only from that pid (SO_PASSCRED), and arms the watchdog at READY=1 (as
    systemd does: service_enter_start_post() resets the watchdog; before that
    TimeoutStartSec applies);
  - when no WATCHDOG=1 came within WATCHDOG_USEC it sends SIGABRT (WatchdogSignal's default),
    gives the process 10 s to die (TimeoutAbortSec; then SIGKILL, and the test fails), and
    starts it again after 0.5 s (Restart=on-failure; the unit's RestartSec is 3 s) with the same
    command line and without the hang.
The child runs with RLIMIT_CORE 0 in its own folder, so the SIGABRT leaves no core file.
The test first checks that the unit has the settings the emulator plays (Type=notify,
NotifyAccess=main, WatchdogSec=, a Restart= that restarts after a watchdog timeout, SIGABRT as
WatchdogSignal) and prints when the unit's watchdog would abort a hung furnace worker.

Scenario, on labsim at speed 10 (an anneal then lasts 7 to 34 instrument minutes, 42 s or
more, longer than hang + detection + restart), a 2-experiment campaign:
  1. pings come while all is well: at least 3 WATCHDOG=1 between READY=1 and the hang;
  2. after the hang the pings stop: the last one comes at most the worker's call budget
     (2 x DRV_CALL_BUDGET = 2 x (8 x response_timeout_ms + 1 s), 10 s for lab.conf's furnace)
     + WORKER_MARGIN_MS (5 s) + one ping interval (1 s) after it, and labloopd logs
     "watchdog: pings stopped: instrument worker furnace"; the emulator's SIGABRT follows
     within WATCHDOG_USEC of that last ping and kills labloopd (exit by signal 6: it neither
     catches nor blocks SIGABRT), and no core file is written;
  3. the restarted labloopd recovers: READY=1 comes while labsim's furnace still runs the
     program (the program ran on without the daemon); the started anneal is settled by asking
     the furnace, not by an operator (no question is ever asked), and not run again: labsim
     ran exactly one furnace program per anneal step stored done, every experiment has one
     anneal step (attempt 1), and the hung step itself is stored done. labsim then goes back
     to speed 1000 and the campaign completes; the restarted daemon keeps pinging (no second
     SIGABRT); the crash tests' invariants hold (daemon_helpers.check_invariants).
It prints the measured times: hang to last ping, hang to SIGABRT, SIGABRT to restart's READY=1.
"""
import json
import os
import re
import resource
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOPD, SRC, check_invariants, finish, labloop, labsim_counts,  # noqa: E402
                            request, run_killing, start_labsim, wait_for, write_campaign, write_lab)

SPEED = 10            # labsim and labloopd until the restart has recovered; then labsim at 1000
WATCHDOG_S = 2.0      # WATCHDOG_USEC; labloopd pings every WATCHDOG_S / 2
WORKER_MARGIN_S = 5.0  # daemon/labloopd.c WORKER_MARGIN_MS
ABORT_GRACE_S = 10.0  # the emulator's TimeoutAbortSec
RESTART_S = 0.5       # the emulator's RestartSec
HANG = "worker_poll_furnace"
procs = []


class Watchdog:
    """systemd's part for a Type=notify service with WatchdogSec= and Restart=on-failure, for
    one command line. Runs in its own thread; every datagram and action is kept in self.log as
    (time, generation, what) with what "READY", "WATCHDOG", "SIGABRT", "exit N", "SIGKILL" or
    "spawn"."""

    def __init__(self, tmp, argv, env):
        self.tmp, self.argv, self.env = tmp, argv, env
        self.path = os.path.join(tmp, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.02)
        self.log, self.gen, self.proc = [], 0, None
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.supervise)

    def note(self, what):
        with self.lock:
            self.log.append((time.time(), self.gen, what))

    def events(self, what, gen=None):
        with self.lock:
            return [t for t, g, w in self.log if w == what and (gen is None or g == gen)]

    def spawn(self, extra_env):
        env = dict(self.env, NOTIFY_SOCKET=self.path, WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)), **extra_env)
        # WATCHDOG_PID: the shell's pid, which exec keeps (systemd sets it to the main pid)
        self.proc = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *self.argv], env=env,
                                     cwd=self.tmp, stderr=open(os.path.join(self.tmp, "labloopd.log"), "a"),
                                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
        procs.append(self.proc)
        self.gen += 1
        self.note("spawn")

    def receive(self):
        """One sd_notify datagram from the main pid, as its lines; [] if none came."""
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return []
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        if pid != self.proc.pid:
            return []  # NotifyAccess=main
        return data.decode().splitlines()

    def supervise(self):
        armed_at = None  # the last READY=1 or WATCHDOG=1 of this generation
        while not self.stopping.is_set():
            for line in self.receive():
                if line in ("READY=1", "WATCHDOG=1"):
                    self.note(line.split("=")[0])
                    armed_at = time.time()
            if self.proc.poll() is not None:
                self.note(f"exit {self.proc.returncode}")
                return  # died without the watchdog: not this test's restart path
            if armed_at is not None and time.time() - armed_at > WATCHDOG_S:
                self.note("SIGABRT")
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(timeout=ABORT_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.note("SIGKILL")
                    self.proc.kill()
                    self.proc.wait()
                self.note(f"exit {self.proc.returncode}")
                armed_at = None
                time.sleep(RESTART_S)
                self.spawn({})  # Restart=on-failure, without the hang

    def start(self, extra_env):
        self.spawn(extra_env)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.sock.close()


def check_unit():
    """The emulator plays systemd/labloopd.service: the settings it stands for must be the unit's.
    Returns the unit's WatchdogSec= and RestartSec= in seconds."""
    unit = {}
    for line in open(os.path.join(SRC, "systemd", "labloopd.service")):
        if "=" in line and not line.startswith("#"):
            key, value = line.strip().split("=", 1)
            unit[key] = value
    assert unit.get("Type") == "notify" and unit.get("NotifyAccess") == "main", unit
    assert unit.get("WatchdogSignal", "SIGABRT") in ("SIGABRT", "6"), unit["WatchdogSignal"]
    # the Restart= values that restart after a watchdog timeout (systemd.service(5))
    assert unit.get("Restart") in ("on-failure", "on-watchdog", "on-abnormal", "always"), unit.get("Restart")
    watchdog_s, restart_s = float(unit["WatchdogSec"]), float(unit.get("RestartSec", "0.1"))
    assert watchdog_s > 0, unit["WatchdogSec"]
    return watchdog_s, restart_s


def furnace_budget_s(lab):
    """2 x DRV_CALL_BUDGET of the lab's furnace (drivers/driver.h), in seconds."""
    text = open(lab).read()
    block = text[text.index('name = "furnace"'):]
    timeout_ms = int(re.search(r"response_timeout_ms = (\d+);", block).group(1))
    return 2 * (8 * timeout_ms + 1000) / 1000.0


def sim(tmp, req):
    rep = request("ipc://" + os.path.join(tmp, "sim", "control"), req)
    assert rep is not None and rep.get("ok"), (req, rep)
    return rep


def status(run):
    r = labloop(run, "status", "--json", "--timeout", "2000")
    return json.loads(r.stdout) if r.returncode == 0 else None


def main():
    if os.environ.get("LL_FAILPOINTS", "OFF").upper() not in ("ON", "1", "TRUE", "YES"):
        print("skipped: labloopd built without -DLL_FAILPOINTS=ON (scripts/test.sh builds with it)")
        sys.exit(77)
    t_begin = time.time()
    unit_watchdog_s, unit_restart_s = check_unit()
    tmp = tempfile.mkdtemp(prefix="test_daemon_watchdog.")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    budget_s = furnace_budget_s(os.path.join(tmp, "sim", "lab.conf"))
    # with the unit's settings a hung furnace worker is aborted between WatchdogSec and
    # budget + margin + WatchdogSec after the hang, and restarted RestartSec later
    print(f"unit: WatchdogSec={unit_watchdog_s:g}, RestartSec={unit_restart_s:g}: a hung furnace worker is aborted "
          f"{unit_watchdog_s:g} to {budget_s + WORKER_MARGIN_S + unit_watchdog_s:g} s after the hang")
    run = os.path.join(tmp, "run")
    wd = Watchdog(tmp, [LABLOOPD, "--lab", os.path.join(tmp, "sim", "lab.conf"), "--db", os.path.join(tmp, "l.db"),
                        "--run-dir", run, "--time-scale", str(SPEED), "--poll-ms", "5"], dict(os.environ))
    try:
        wd.start({"LABLOOP_FAILPOINT_HANG": f"{HANG}:1"})
        wait_for("READY=1", lambda: wd.events("READY"), timeout=30)
        r = labloop(run, "campaign", "start", write_campaign(tmp, "c.conf", initial=2, batch=2, budget=2))
        assert r.returncode == 0, r.stderr

        # 1. healthy, then the hang
        log_path = os.path.join(tmp, "labloopd.log")
        wait_for("the furnace worker to hang", lambda: f"failpoint {HANG} hit 1: hanging forever" in
                 open(log_path).read(), timeout=60, every=0.01)
        t_hang = time.time()
        assert sim(tmp, {"cmd": "status"})["furnace_program"] == 1, "no anneal program runs at the hang"
        healthy = [t for t in wd.events("WATCHDOG", 1) if t < t_hang]
        assert len(healthy) >= 3, f"only {len(healthy)} watchdog pings before the hang"

        # 2. pings stop, SIGABRT, death
        wait_for("the emulator's SIGABRT", lambda: wd.events("SIGABRT"),
                 timeout=budget_s + WORKER_MARGIN_S + WATCHDOG_S + 10)
        t_abort = wd.events("SIGABRT")[0]
        last_ping = max(wd.events("WATCHDOG", 1))
        assert last_ping - t_hang <= budget_s + WORKER_MARGIN_S + WATCHDOG_S / 2 + 0.5, (
            f"pings went on {last_ping - t_hang:.2f} s after the hang")
        assert t_abort - last_ping <= WATCHDOG_S + 0.5, t_abort - last_ping
        wait_for("labloopd to die", lambda: wd.events(f"exit {-signal.SIGABRT}", 1) or wd.events("SIGKILL"),
                 timeout=ABORT_GRACE_S + 5)
        assert not wd.events("SIGKILL"), "labloopd survived SIGABRT for 10 s"
        t_dead = wd.events(f"exit {-signal.SIGABRT}", 1)[0]
        log = open(log_path).read()
        assert "watchdog: pings stopped: instrument worker furnace" in log, "no 'pings stopped' in the log"
        assert not [f for f in os.listdir(tmp) if f.startswith("core")], "a core file was written"
        print(f"hang: {len(healthy)} pings before it; last ping {last_ping - t_hang:.2f} s after it (budget "
              f"{budget_s:g} + margin {WORKER_MARGIN_S:g} = {budget_s + WORKER_MARGIN_S:g} s), SIGABRT "
              f"{t_abort - t_hang:.2f} s after it (+ WATCHDOG_USEC {WATCHDOG_S:g} s = "
              f"{budget_s + WORKER_MARGIN_S + WATCHDOG_S:g} s); dead {t_dead - t_abort:.2f} s after SIGABRT "
              f"(signal 6, no core file)")

        # 3. restart and reconciliation
        wait_for("READY=1 after the restart", lambda: wd.events("READY", 2), timeout=30)
        t_ready = wd.events("READY", 2)[0]
        fur = sim(tmp, {"cmd": "status"})
        assert fur["furnace_program"] == 1, f"the anneal program ended before the restart recovered: {fur}"
        db = sqlite3.connect(os.path.join(tmp, "l.db"))
        hung = db.execute("SELECT id, experiment_id, state FROM steps WHERE instrument = 'furnace' "
                          "AND state <> 'pending' ORDER BY id").fetchall()
        db.close()
        assert len(hung) == 1 and hung[0][2] == "started", f"furnace steps at the restart: {hung}"
        t_respawn = wd.events("spawn", 2)[0]
        print(f"restart {t_respawn - t_dead:.2f} s after the death; READY=1 {t_ready - t_respawn:.2f} s after the "
              f"restart ({t_ready - t_abort:.2f} s after SIGABRT); step {hung[0][0]} (furnace) started, labsim still "
              f"runs its program")
        sim(tmp, {"cmd": "set", "what": "speed", "value": 1000})

        def ended():
            st = status(run)
            assert st is None or not st.get("questions"), f"an operator was asked: {st['questions']}"
            return st and st["campaigns"][0]["state"] != "running" and st
        st = wait_for("the campaign to end", ended, timeout=60, every=0.1)
        assert st["campaigns"][0]["state"] == "completed", st["campaigns"][0]
        assert len(wd.events("SIGABRT")) == 1 and wd.proc.poll() is None, "the restarted labloopd was aborted"
        assert len(wd.events("WATCHDOG", 2)) >= 2, "the restarted labloopd does not ping"

        counts = labsim_counts(tmp)
        db = sqlite3.connect(os.path.join(tmp, "l.db"))
        anneals = db.execute("SELECT id, experiment_id, attempt, state FROM steps WHERE instrument = 'furnace'"
                             ).fetchall()
        n_exp = db.execute("SELECT count(*) FROM experiments").fetchone()[0]
        db.close()
        assert (hung[0][0], hung[0][1], 1, "done") in anneals, f"the hung step was not settled done: {anneals}"
        assert len(anneals) == n_exp and all(a[2] == 1 and a[3] == "done" for a in anneals), anneals
        assert counts["furnace_programs"] == len(anneals), (
            f"labsim ran {counts['furnace_programs']} furnace programs for {len(anneals)} anneal steps")
        measured, _ = check_invariants(tmp, counts)
        assert measured == n_exp == 2, (measured, n_exp)
        print(f"campaign completed: {n_exp} experiments, {counts['furnace_programs']} furnace programs for "
              f"{len(anneals)} anneal steps, all done; {len(wd.events('WATCHDOG', 2))} pings after the restart; "
              f"{time.time() - t_begin:.1f} s in all")
    finally:
        wd.stop()
    finish(wd.proc, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

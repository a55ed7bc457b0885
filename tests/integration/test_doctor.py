#!/usr/bin/env python3
"""labloop doctor against a real lab: labsim and labloopd running (pty devices, a live
database), then broken inputs one at a time. Checked:
  - the healthy lab: exit 0, no FAIL line; versions (SQLite, ZeroMQ, libmodbus), every
    instrument's device ok, schema current, quick_check ok, the daemon answers, the
    stations are online;
  - a lab file with a syntax error: exit 1, FAIL naming FILE:LINE;
  - a labloopd.conf with a syntax error: FAIL naming FILE:LINE;
  - a serial device that is gone: FAIL naming the device;
  - a database file of garbage, and one whose schema is newer than this labloop: FAIL;
  - a stations endpoint reachable from the network without CURVE: WARN;
  - no daemon at the run folder: WARN, not FAIL; an unknown option: exit 2.
Nothing the doctor looks at changes (the database's bytes are compared before and after).
"""
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOP, finish, run_killing, start_lab, wait_for  # noqa: E402

procs = []


def doctor(*args):
    r = subprocess.run([LABLOOP, "doctor", *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def lines(out, tag):
    return [ln for ln in out.splitlines() if ln.startswith(f"  {tag}")]


def main():
    tmp, run, daemon = start_lab("test_doctor", procs)
    simlab = os.path.join(tmp, "sim", "lab.conf")
    db = os.path.join(tmp, "l.db")
    wait_for("the stations", lambda: "0 online" not in doctor("--lab", simlab, "--db", db, "--run-dir", run)[1])

    before = hashlib.sha256(open(db, "rb").read()).hexdigest()
    rc, out, err = doctor("--lab", simlab, "--db", db, "--run-dir", run)
    print(out)
    assert rc == 0 and not lines(out, "FAIL"), out + err
    for want in ("SQLite", "ZeroMQ", "libmodbus", "schema         version", "(current)", "quick_check    ok",
                 "answers at ipc://", "0 failures"):
        assert want in out, f"'{want}' missing"
    for name in ("robot", "furnace", "coater"):
        assert any(ln.split()[1] == name for ln in lines(out, "ok")), f"{name} not ok"
    assert hashlib.sha256(open(db, "rb").read()).hexdigest() == before, "doctor changed the database"
    # S9: the Debian package of each runtime library, as dpkg-query has it, and libmodbus
    # older than 3.1.11 a warning that names the hardening it lacks
    if subprocess.run(["dpkg-query", "--version"], capture_output=True).returncode == 0:
        for pkg in ("libsqlite3-0", "libzmq5", "libmodbus5", "libgsl27", "libjansson4"):
            got = [ln for ln in lines(out, "ok") if ln.split()[1:3] == ["package", pkg]]
            want = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
            if want.returncode == 0 and want.stdout:
                assert got and got[0].split()[3] == want.stdout, (pkg, got, want.stdout)
    m = re.search(r"^\s*(ok|WARN)\s+libmodbus\s+(\d+)\.(\d+)\.(\d+)", out, re.M)
    assert m, out
    old_modbus = tuple(int(x) for x in m.group(2, 3, 4)) < (3, 1, 11)
    assert (m.group(1) == "WARN") == old_modbus, m.group(0)
    if old_modbus:
        assert "3.1.11" in [ln for ln in out.splitlines() if "libmodbus" in ln][0]

    bad_lab = os.path.join(tmp, "bad_lab.conf")
    open(bad_lab, "w").write(open(simlab).read() + "\nthis is not libconfig\n")
    rc, out, _ = doctor("--lab", bad_lab, "--db", db, "--run-dir", run)
    assert rc == 1 and any(bad_lab + ":" in ln for ln in lines(out, "FAIL")), out

    bad_conf = os.path.join(tmp, "labloopd.conf")
    open(bad_conf, "w").write("daemon: { db = ; };\n")
    rc, out, _ = doctor("--config", bad_conf, "--lab", simlab, "--db", db, "--run-dir", run)
    assert rc == 1 and any(bad_conf + ":1" in ln for ln in lines(out, "FAIL")), out

    text = open(simlab).read()
    furnace_dev = [ln.split('"')[1] for ln in text.splitlines() if 'device = "' in ln][0]
    gone = os.path.join(tmp, "gone_lab.conf")
    open(gone, "w").write(text.replace(furnace_dev, "/dev/labloop-test-no-such-tty"))
    rc, out, _ = doctor("--lab", gone, "--db", db, "--run-dir", run)
    assert rc == 1 and any("/dev/labloop-test-no-such-tty" in ln for ln in lines(out, "FAIL")), out

    garbage = os.path.join(tmp, "garbage.db")
    open(garbage, "wb").write(os.urandom(8192))
    rc, out, _ = doctor("--lab", simlab, "--db", garbage, "--run-dir", run)
    assert rc == 1 and any(ln.split()[1] == "database" for ln in lines(out, "FAIL")), out

    newer = os.path.join(tmp, "newer.db")
    con = sqlite3.connect(db)
    con.execute(f"VACUUM INTO '{newer}'")
    con.close()
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.close()
    rc, out, _ = doctor("--lab", simlab, "--db", newer, "--run-dir", run)
    assert rc == 1 and any("newer than this labloop" in ln for ln in lines(out, "FAIL")), out

    open_conf = os.path.join(tmp, "open.conf")
    open(open_conf, "w").write('daemon: { stations_endpoint = "tcp://0.0.0.0:5599"; };\n')
    rc, out, _ = doctor("--config", open_conf, "--lab", simlab, "--db", db, "--run-dir", run)
    assert rc == 0 and any("CURVE is off" in ln for ln in lines(out, "WARN")), out

    rc, out, _ = doctor("--lab", simlab, "--db", db, "--run-dir", os.path.join(tmp, "nowhere"))
    assert rc == 0 and any(ln.split()[1] == "labloopd" for ln in lines(out, "WARN")), out
    assert doctor("--bogus", "x")[0] == 2
    assert hashlib.sha256(open(db, "rb").read()).hexdigest() == before, "doctor changed the database"
    finish(daemon, procs, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

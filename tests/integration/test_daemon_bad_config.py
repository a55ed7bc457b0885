#!/usr/bin/env python3
"""labloopd started with a broken configuration (reliability.md B7): each case exits at once
with a status that tells systemd not to restart (78 = EX_CONFIG for a lab file or labloopd.conf
it cannot use, 2 for a bad command line; the unit's RestartPreventExitStatus=), an error line
naming the file and line (or the missing path) and the problem, and leaves an existing
database byte for byte as it was (the lab is read before the store is opened). Then the same
database with the good lab: labloopd starts and answers.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import LABLOOPD, SRC, labloop, run_killing, wait_for, write_lab  # noqa: E402

procs = []


def db_bytes(db):
    """SHA-256 of the database and its WAL and shared-memory files (those that exist)."""
    h = hashlib.sha256()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            h.update(suffix.encode() + open(db + suffix, "rb").read())
    return h.hexdigest()


def start(tmp, *args):
    p = subprocess.Popen([LABLOOPD, "--db", os.path.join(tmp, "l.db"), "--run-dir", os.path.join(tmp, "run"),
                          *args], stderr=subprocess.PIPE, text=True)
    procs.append(p)
    return p


def main():
    tmp = tempfile.mkdtemp(prefix="test_daemon_bad_config.")
    good, _ = write_lab(tmp)
    text = open(good).read()
    db = os.path.join(tmp, "l.db")
    # a database with something in it: one run with the good lab
    p = start(tmp, "--lab", good)
    wait_for("labloopd", lambda: labloop(os.path.join(tmp, "run"), "status").returncode == 0)
    p.terminate()
    assert p.wait(timeout=30) == 0
    before = db_bytes(db)

    def bad_lab(name, new_text):
        path = os.path.join(tmp, name)
        open(path, "w").write(new_text)
        return path

    line_of = lambda needle: text[:text.index(needle)].count("\n") + 1  # noqa: E731
    cases = [
        ("syntax error", ["--lab", bad_lab("syntax.conf", text.replace("baud = 9600;", "baud = ;", 1))], 78,
         [f"syntax.conf:{line_of('baud = 9600;')}"]),
        ("bad value", ["--lab", bad_lab("value.conf", text.replace("max_temp_c = 200.0;", "max_temp_c = -5.0;", 1))],
         78, ["value.conf:", "max_temp_c"]),
        ("missing lab", ["--lab", os.path.join(tmp, "nosuch.conf")], 78, ["nosuch.conf"]),
        ("bad labloopd.conf", ["--config", bad_lab("labloopd.conf", "daemon: {\n  poll_ms = ;\n};\n"), "--lab", good],
         78, ["labloopd.conf:2"]),
        ("unknown option", ["--lab", good, "--frobnicate", "1"], 2, ["unknown option --frobnicate"]),
    ]
    for name, args, want_status, want_text in cases:
        p = start(tmp, *args)
        try:
            status = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name}: labloopd still runs 10 s after starting with a broken configuration")
        err = p.stderr.read()
        assert status == want_status, (name, status, err)
        for part in want_text:
            assert part in err, (name, part, err)
        assert db_bytes(db) == before, f"{name}: the database changed"
        print(f"{name}: exit {status}: {err.strip().splitlines()[-1]}")

    p = start(tmp, "--lab", good)
    wait_for("labloopd with the good lab again", lambda: labloop(os.path.join(tmp, "run"), "status").returncode == 0)
    p.terminate()
    assert p.wait(timeout=30) == 0
    unit = open(os.path.join(SRC, "systemd", "labloopd.service")).read()
    assert "RestartPreventExitStatus=2 78" in unit, "the unit would restart labloopd on a broken configuration"
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

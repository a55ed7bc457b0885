#!/usr/bin/env python3
"""What a person types into the labloop CLI, against a running labloopd with a finished
campaign (reliability.md B7 for the CLI, S5(b) for every string that reaches the store):

  1. a number that is not a whole number in range (ids, --campaign, --limit, --timeout,
     --width), including SQL-looking text such as `1 OR 1=1`, is refused before anything is
     sent: exit 2 and a message naming the option or argument and what was typed (atoi
     once turned `abc` into campaign 0, "every campaign");
  2. strings that do reach labloopd (an instrument name, an operator answer, a format) with
     SQL in them are refused with a reason (exit 1 or 2), never run;
  3. the control socket itself refuses a negative or non-integer `limit` (SQLite would read
     LIMIT -1 as "everything");
  4. afterwards every table but events holds exactly the same rows, the schema is unchanged,
     and labloopd answers as before.
"""
import hashlib
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (finish, labloop, request, run_killing, start_campaign, status_json,  # noqa: E402
                            wait_for)

procs = []
SQL = "1; DROP TABLE steps; --"


def digest(db_path):
    """SHA-256 over the schema and every row of every table except events."""
    db = sqlite3.connect(db_path, timeout=10)
    h = hashlib.sha256()
    for name, sql in db.execute("SELECT name, sql FROM sqlite_master ORDER BY name"):
        h.update(f"{name}:{sql}".encode())
        if sql and sql.startswith("CREATE TABLE") and name != "events":
            for row in db.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                h.update(repr(row).encode())
    db.close()
    return h.hexdigest()


def main():
    tmp, run, daemon = start_campaign("test_daemon_cli_args", procs, initial=2, batch=2, budget=2)
    wait_for("the campaign to complete", lambda: status_json(run)["campaigns"][0]["state"] == "completed", timeout=60)
    db = os.path.join(tmp, "l.db")
    before = digest(db)

    # 1: refused by the CLI, exit 2, naming what was typed
    numbers = [
        (["events", "--limit", "abc"], "--limit"),
        (["events", "--limit", "-5"], "--limit"),
        (["measurements", "--campaign", "1 OR 1=1"], "--campaign"),
        (["experiments", "--campaign", SQL], "--campaign"),
        (["export", "--campaign", "0"], "--campaign"),
        (["status", "--timeout", "0"], "--timeout"),
        (["plot", "--width", "99999"], "--width"),
        (["campaign", "pause", "1 OR 1=1"], "campaign id"),
        (["campaign", "abort", "abc"], "campaign id"),
        (["approve", "x'--"], "campaign id"),
        (["resolve", SQL, "done"], "STEP"),
    ]
    for args, names in numbers:
        r = labloop(run, *args)
        typed = args[-1] if args[0] != "resolve" else args[1]
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert names in r.stderr and typed in r.stderr, (args, r.stderr)
    print(f"{len(numbers)} bad numbers refused by the CLI (exit 2, naming option and text)")

    # 2: strings that reach labloopd
    strings = [
        ["instrument", "furnace'; DROP TABLE steps; --", "reset"],
        ["resolve", "1", "done'; DROP TABLE steps; --"],
        ["export", "--format", "csv'; DROP TABLE steps; --"],
        ["campaign", "start", os.path.join(tmp, "no'; DROP TABLE steps; --.conf")],
    ]
    for args in strings:
        r = labloop(run, *args)
        assert r.returncode in (1, 2), (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), (args, "no reason given")
    print(f"{len(strings)} SQL-carrying strings refused with a reason")

    # 3: the control socket's limit
    ctl = "ipc://" + os.path.join(run, "control")
    for req in ({"cmd": "events", "limit": -1}, {"cmd": "measurements", "limit": "5; DROP TABLE steps"},
                {"cmd": "events", "limit": 10 ** 12}):
        rep = request(ctl, req)
        assert rep is not None and rep["ok"] is False and "limit" in rep["error"], (req, rep)
    print("control socket: bad limits refused")

    # 4: nothing changed, labloopd still answers
    assert digest(db) == before, "the store changed"
    assert labloop(run, "events", "--limit", "5").returncode == 0
    assert status_json(run)["campaigns"][0]["state"] == "completed"
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

"""Helpers shared by the labloopd integration tests (not a test itself: ctest runs only
test_*.py): program paths from the test environment, a free loopback port, the labloop CLI,
per-test copies of the embedded lab and of a campaign file, polling, and one request to a
ZeroMQ control socket (labsim's or labloopd's), and the crash tests' invariant checks."""
import glob
import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import time

import zmq

LABSIM = os.environ["LABSIM"]
LABLOOPD = os.environ["LABLOOPD"]
LABLOOP = os.environ["LABLOOP"]
SRC = os.environ["LL_SOURCE_DIR"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def labloop(run_dir, *args):
    return subprocess.run([LABLOOP, *args, "--run-dir", run_dir], capture_output=True, text=True, timeout=60)


def write_lab(tmp):
    """config/lab.conf with a free stations port and a robot port labsim picks; returns
    (path, stations port)."""
    port = free_port()
    text = open(os.path.join(SRC, "config/lab.conf")).read()
    text = text.replace("tcp://127.0.0.1:5555", f"tcp://127.0.0.1:{port}").replace("port = 15020;", "port = 0;")
    path = os.path.join(tmp, "lab.conf")
    open(path, "w").write(text)
    return path, port


def write_campaign(tmp, name, **settings):
    """config/perovskite.conf with integer settings (initial=, batch=, budget=) and string
    settings (approval=, schedule=) replaced; returns its path."""
    text = open(os.path.join(SRC, "config/perovskite.conf")).read()
    for key, value in settings.items():
        if isinstance(value, str):
            text = re.sub(rf'{key} = "[^"]*";', f'{key} = "{value}";', text)
        else:
            text = re.sub(rf"{key} = \d+;", f"{key} = {value};", text)
    path = os.path.join(tmp, name)
    open(path, "w").write(text)
    return path


def wait_for(what, pred, timeout=60, every=0.05):
    """pred()'s first true value, polled every `every` s; an AssertionError naming `what` after
    `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out waiting for " + what)


def request(endpoint, req):
    """One JSON request on a REQ socket to endpoint; the reply, or None after 5 s."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(endpoint)
    try:
        s.send_json(req)
        return s.recv_json()
    except zmq.ZMQError:
        return None
    finally:
        s.close()


def start_labsim(tmp, lab, speed, procs):
    """labsim on lab (a lab.conf) with its runtime folder tmp/sim (created) at time scale
    `speed`, stderr to tmp/labsim.log; added to procs; returns once it is ready."""
    os.makedirs(os.path.join(tmp, "sim"), exist_ok=True)
    p = subprocess.Popen([LABSIM, "--lab", lab, "--runtime-dir", os.path.join(tmp, "sim"), "--speed", str(speed)],
                         stderr=open(os.path.join(tmp, "labsim.log"), "w"))
    procs.append(p)
    wait_for("labsim", lambda: os.path.exists(os.path.join(tmp, "sim", "ready")))
    return p


def spawn_labloopd(tmp, run, speed, procs, env=None, args=()):
    """labloopd on tmp/sim/lab.conf (labsim's copy) and tmp/l.db at time scale `speed`, 5 ms
    polls, more options in args, stderr appended to tmp/labloopd.log; added to procs; returns
    at once (the crash tests expect it to die at a kill point)."""
    p = subprocess.Popen([LABLOOPD, "--lab", os.path.join(tmp, "sim", "lab.conf"), "--db",
                          os.path.join(tmp, "l.db"), "--run-dir", run, "--time-scale", str(speed),
                          "--poll-ms", "5", *args], stderr=open(os.path.join(tmp, "labloopd.log"), "a"), env=env)
    procs.append(p)
    return p


def start_labloopd(tmp, run, speed, procs, env=None, args=()):
    """spawn_labloopd, and returns once it answers."""
    p = spawn_labloopd(tmp, run, speed, procs, env, args)
    wait_for("labloopd", lambda: labloop(run, "status").returncode == 0)
    return p


def status_or_none(run):
    """labloopd's status, or None when it does not answer within 1 s (it may be dying)."""
    r = labloop(run, "status", "--json", "--timeout", "1000")
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_up(run, p):
    """Waits until labloopd (p) answers; asserts that it did not exit meanwhile."""
    wait_for("labloopd to answer", lambda: p.poll() is not None or status_or_none(run) is not None, timeout=30)
    assert p.poll() is None, f"labloopd exited with {p.returncode}"


def answer_questions(run, p):
    """Acts as the operator: a step whose fate cannot be known is answered "failed". Returns
    the status, or None when labloopd (p) does not answer (it may be dying at its point)."""
    st = status_or_none(run)
    for q in (st or {}).get("questions", []):
        r = labloop(run, "resolve", str(q["id"]), "failed", "--timeout", "1000")
        assert r.returncode == 0 or p.poll() is not None, r.stderr
    return st


def stations_port(tmp):
    """The stations port of tmp/lab.conf (write_lab)."""
    return int(re.search(r"tcp://127\.0\.0\.1:(\d+)", open(os.path.join(tmp, "lab.conf")).read()).group(1))


class ProbeStation:
    """A station the lab does not have (a DEALER named probe-1): its measurement is answered
    `rejected` only after that rejection is stored, so whether it gets an answer shows whether
    labloopd's store commits (acks only after commit)."""

    def __init__(self, port):
        import zmq
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.ROUTING_ID, b"probe-1")
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.msg = json.dumps({"v": 1, "type": "measurement", "station": "probe-1", "seq": 1, "request": "r-1-1",
                               "kind": "jv", "sample": "S000001", "time": "2026-11-26T14:00:00.000Z",
                               "data": {"irradiance_mw_cm2": 100.0, "area_cm2": 0.09,
                                        "sweeps": [{"direction": "reverse", "voltage_v": [1.1, 0.0],
                                                    "current_ma_cm2": [-1.0, 22.0]}]}}).encode()

    def send(self):
        self.sock.send(self.msg)

    def answer(self, timeout_ms):
        """The answer (a dict) within timeout_ms, or None."""
        return json.loads(self.sock.recv()) if self.sock.poll(timeout_ms) else None

    def close(self):
        self.sock.close()


def status_json(run, timeout_ms=3000):
    """labloopd's status through the CLI (`labloop status --json`); asserts that it answered
    within timeout_ms."""
    r = labloop(run, "status", "--json", "--timeout", str(timeout_ms))
    assert r.returncode == 0, f"status did not answer within {timeout_ms} ms: {r.stderr}"
    return json.loads(r.stdout)


def jobs_run(counts):
    """Robot jobs plus coater runs in labsim's counts (labsim_counts)."""
    return sum(counts.get("robot_jobs", {}).values()) + sum(counts.get("coater_runs", {}).values())


def start_lab(prefix, procs, speed=1000, daemon_args=()):
    """A new folder /tmp/PREFIX.* with labsim and labloopd (more options: daemon_args) running
    on it at time scale `speed`; returns (folder, run folder, labloopd's process)."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix=prefix + ".")
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, speed, procs)
    run = os.path.join(tmp, "run")
    return tmp, run, start_labloopd(tmp, run, speed, procs, args=daemon_args)


def start_campaign(prefix, procs, speed=1000, daemon_args=(), **settings):
    """start_lab, and config/perovskite.conf with `settings` (as write_campaign) started as a
    campaign; returns (folder, run folder, labloopd's process)."""
    tmp, run, daemon = start_lab(prefix, procs, speed, daemon_args)
    r = labloop(run, "campaign", "start", write_campaign(tmp, "c.conf", **settings))
    assert r.returncode == 0, r.stderr
    return tmp, run, daemon


def daemon_status(run):
    """labloopd's status (the control socket's JSON), or None if it does not answer."""
    return request("ipc://" + os.path.join(run, "control"), {"cmd": "status"})


def finish(daemon, procs, tmp):
    """A clean end of a test: labloopd stops on SIGTERM with status 0 (asserted), every other
    process in procs is stopped, and tmp is removed."""
    daemon.terminate()
    assert daemon.wait(timeout=30) == 0
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)
    subprocess.run(["rm", "-rf", tmp])


def run_killing(main, procs):
    """Runs main(); whatever happens, kills and reaps every process left running in procs."""
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def labsim_counts(tmp):
    """labsim's accounting (robot jobs, coater runs, measurements: how often each ran)."""
    counts = request("ipc://" + os.path.join(tmp, "sim", "control"), {"cmd": "counts"})
    assert counts is not None, "labsim did not answer 'counts'"
    return counts


def unacked(tmp):
    """The (station, seq) of station messages in labsim's spools without an ack file."""
    left = []
    for msg in glob.glob(os.path.join(tmp, "sim", "stations", "*", "req-*.json")):
        seq = json.load(open(msg)).get("seq")
        if not os.path.exists(os.path.join(os.path.dirname(msg), f"ack-{seq}")):
            left.append((os.path.basename(os.path.dirname(msg)), seq))
    return left


def check_reanalysis(db):
    """I8: each stored measurement's raw text, analysed again by `labloop analyze`, gives its
    stored derived numbers and objectives (10 significant digits, the CLI's precision) and
    analysis version."""
    field = {}  # objective name -> the measurement field it comes from (campaign "from")
    for (text,) in db.execute("SELECT file_text FROM campaigns"):
        for name, f in re.findall(r'name\s*=\s*"([^"]+)";[^}]*?from\s*=\s*"[^".]+\.([^"]+)"', text):
            field[name] = f
    n = 0
    for mid, raw in db.execute("SELECT id, raw FROM measurements"):
        derived = db.execute("SELECT name, value, analysis_version FROM derived WHERE measurement_id = ?",
                             (mid,)).fetchall()
        objectives = [(field.get(name, name), value, version) for name, value, version in db.execute(
            "SELECT name, value, analysis_version FROM objectives WHERE measurement_id = ?", (mid,))]
        if not derived and not objectives:
            continue  # analysis failed when it arrived: nothing derived to reproduce
        r = subprocess.run([LABLOOP, "analyze", "-"], input=raw, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"measurement {mid}: stored with derived values, analysis now fails: {r.stderr}"
        again = json.loads(r.stdout)
        for name, value, version in derived + objectives:
            assert version == again["analysis_version"], (mid, name, version, again["analysis_version"])
            assert name in again, f"measurement {mid}: '{name}' stored but not derived again"
            assert abs(again[name] - value) <= 1e-9 * max(1.0, abs(value)), (mid, name, value, again[name])
        n += 1
    assert n > 0 or not db.execute("SELECT count(*) FROM derived").fetchone()[0]
    return n


def check_store_sound(db):
    """I7: integrity_check ok, foreign keys hold, event ids without gaps."""
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    bad_refs = db.execute("PRAGMA foreign_key_check").fetchall()
    assert not bad_refs, f"rows pointing at rows that do not exist: {bad_refs[:5]}"
    ids = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(1, len(ids) + 1)), "event ids have gaps"


def check_exactly_once(db, counts, states):
    """I4/I5: every robot job and coater run labsim executed ran once and belongs to a step the
    store records in one of `states` for that instrument; furnace programs: at least one per
    anneal step done, at most one per anneal step started; every request measured at most once."""
    jobs = {str(j): (st, instr) for j, st, instr in
            db.execute("SELECT job, state, instrument FROM steps WHERE job IS NOT NULL")}
    for kind, instr in (("robot_jobs", "robot"), ("coater_runs", "coater")):
        for job, n in counts.get(kind, {}).items():
            key = re.sub(r"\D", "", job).lstrip("0") or "0"
            assert n == 1, f"{kind}: job {job} executed {n} times"
            assert key in jobs, f"{kind}: job {job} ran but no step has that job number"
            assert jobs[key][0] in states and jobs[key][1] == instr, (job, jobs[key])
    done_robot = db.execute("SELECT count(*) FROM steps WHERE instrument='robot' AND state='done'").fetchone()[0]
    assert done_robot <= len(counts.get("robot_jobs", {})), f"{done_robot} robot steps done, fewer jobs ran"
    # the furnace: labsim counts programs started from reset, not per step; every anneal step
    # that ended done ran one, and no step ran more than one (a resent start would be a second)
    if "furnace_programs" in counts:
        done, tried = db.execute("SELECT sum(state = 'done'), sum(state NOT IN ('pending', 'skipped')) FROM steps "
                                 "WHERE instrument = 'furnace' AND action = 'anneal'").fetchone()
        programs = counts["furnace_programs"]
        assert (done or 0) <= programs <= (tried or 0), \
            f"{programs} furnace programs ran for {done} anneal steps done and {tried} started in all"
    for req, n in counts.get("measurements", {}).items():
        assert n == 1, f"request {req} measured {n} times"


def check_acked_stored(db, tmp):
    """I1: every measurement a station had acked is stored with the station's exact bytes;
    returns how many were acked."""
    acked = 0
    for ack in glob.glob(os.path.join(tmp, "sim", "stations", "*", "ack-*")):
        station = os.path.basename(os.path.dirname(ack))
        seq = int(ack.rsplit("-", 1)[1])
        if open(ack).read().strip() not in ("stored", "duplicate"):
            continue
        acked += 1
        msgs = [m for m in glob.glob(os.path.join(os.path.dirname(ack), "req-*.json"))
                if json.load(open(m)).get("seq") == seq]
        assert msgs, f"{station} seq {seq}: acked but the station has no message"
        h = hashlib.sha256(open(msgs[0], "rb").read()).hexdigest()
        epoch = json.load(open(msgs[0])).get("epoch", "")
        row = db.execute("SELECT hash FROM measurements WHERE station=? AND epoch=? AND seq=?",
                         (station, epoch, seq)).fetchone()
        assert row is not None, f"{station} seq {seq}: acked but not stored"
        assert row[0] == h, f"{station} seq {seq}: stored bytes differ from the station's"
    return acked


def check_midway(tmp, db_path=None):
    """The invariants that hold at any moment, also right after a crash, while campaigns still
    run: I7, I4/I5 (a job that ran may belong to a step still started) and I1. db_path
    defaults to tmp/l.db (a copy leaves the files a dead daemon left for the next start)."""
    db = sqlite3.connect(db_path or os.path.join(tmp, "l.db"))
    try:
        check_store_sound(db)
        check_exactly_once(db, labsim_counts(tmp), ("started", "done", "failed"))
        return check_acked_stored(db, tmp)
    finally:
        db.close()


def check_invariants(tmp, counts, db_path=None):
    """The crash tests' invariants (reliability.md §3) on tmp/l.db after the campaigns ended,
    against labsim's counts and the stations' ack files under tmp/sim/stations:
      I7 the store is sound (integrity_check ok, foreign keys hold, event ids without gaps);
      I6 every experiment ended and no step is left started; every failed step and experiment
         has its reason (F23);
      I4/I5 every robot job and coater run executed exactly once and belongs to a step the
         store records as done or failed; every measurement request measured at most once;
      I1 every measurement a station had acked is stored with the station's exact bytes;
      I9 every experiment is in the stored proposal of its round (the model-fit record's
         "chosen" list, same parameters): no round was proposed twice or half-stored;
      I3 every message a station wrote has its ack (nothing left in a station's spool;
         waited for up to 5 s, as the last ack may still be on its way);
      I8 every stored measurement analysed again from its stored raw text (`labloop analyze`)
         gives every stored derived number and objective (to the CLI's 10 significant
         digits) with the same analysis version.
    db_path defaults to tmp/l.db. Returns (experiments measured, measurements acked)."""
    db = sqlite3.connect(db_path or os.path.join(tmp, "l.db"))
    check_store_sound(db)
    left = db.execute("SELECT count(*) FROM steps WHERE state = 'started'").fetchone()[0]
    assert left == 0, f"{left} steps left started"
    open_exp = db.execute("SELECT count(*) FROM experiments WHERE state NOT IN "
                          "('measured','failed','abandoned')").fetchone()[0]
    assert open_exp == 0, f"{open_exp} experiments not ended"
    # F23: every failure says why (a step failed or of unknown fate, a failed experiment)
    silent = db.execute("SELECT 'step', id FROM steps WHERE state IN ('failed', 'unknown') AND coalesce(result, '') = '' "
                        "UNION ALL SELECT 'experiment', id FROM experiments WHERE state = 'failed' "
                        "AND coalesce(reason, '') = ''").fetchall()
    assert not silent, f"failures without a reason: {silent}"
    check_exactly_once(db, counts, ("done", "failed"))
    acked = check_acked_stored(db, tmp)
    fits = {(c, r): json.loads(f) for c, r, f in db.execute("SELECT campaign_id, round, fit FROM model_fits")}
    for eid, c, rnd, params in db.execute("SELECT id, campaign_id, round, params FROM experiments"):
        assert (c, rnd) in fits, f"experiment {eid}: round {rnd} of campaign {c} has no stored proposal"
        chosen = {e["experiment"]: e["params"] for e in fits[(c, rnd)]["chosen"]}
        assert chosen.get(eid) == json.loads(params), f"experiment {eid} is not its round's stored proposal"
    wait_for("every station message acked (I3)", lambda: not unacked(tmp), timeout=5)
    check_reanalysis(db)
    measured = db.execute("SELECT count(*) FROM experiments WHERE state = 'measured'").fetchone()[0]
    db.close()
    print(f"robot jobs {len(counts.get('robot_jobs', {}))}, coater runs {len(counts.get('coater_runs', {}))}, "
          f"acked measurements {acked}, all exactly once and stored")
    return measured, acked

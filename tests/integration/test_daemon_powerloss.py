#!/usr/bin/env python3
"""Power loss at each kill point (reliability.md §4.2 F3). A kill point's _exit(137) alone is an
application crash: every write is still in the page cache. With LABLOOP_POWERLOSS=SEED:4 the
store's test VFS (daemon/store.c, daemon/powerloss.h; LL_FAILPOINTS builds only, others skip
with 77) also cuts the power at the point: every write to the database, its WAL or journal not
yet followed by an fsync of that file is kept, dropped, or torn (a prefix or a random subset
of its 512-byte sectors kept), in a random order; synced bytes are never touched. Each cut
makes 4 differently damaged images of the same moment (SQLite TH3 style): image 1 replaces
the files for the next start, images 2-4 go beside them; each is checked. Each cut logs what
it found and did per image; the test reads those lines after every death. In the same mode
store_check_durable() runs before every instrument command, ack, measure request and control
reply and logs "store: WHAT told while ..." when a transaction is open or a write awaits an
fsync; no such line may appear.

0. Negative control, on a lab of its own: the same cut on a store weakened to
   synchronous=NORMAL (LABLOOP_SYNCHRONOUS, test builds only) and no automatic checkpoint,
   killed at the second measurement commit: the cut finds the acked commits unsynced and
   damages them, store_check_durable reports actions told before durable, and the I1 check
   finds a measurement acked but not stored. This is what the store's synchronous=FULL
   prevents, and it shows that the checks below can see a loss.
1. migration: a fresh store loses power in the middle of migration 2; every image stays at
   version 1 and the next start brings it to the current version.
2. One perovskite campaign (WAL checkpoint every 8 pages) through power cuts at: every kill
   point of test_daemon_killpoints (intent committed, start accepted, inside the ingest
   batch, before a result commit, measurement committed before its ack, a planner round
   written, a checkpoint write, start-up recovery), and, where the cut finds most to damage,
   before the n-th WAL fsync that follows frame writes (a commit written, not durable;
   several n) and the n-th database fsync that follows page writes (a checkpoint written,
   not durable), each death with its own seed. At the points where the daemon is about to
   tell the outside world something it has committed (intent_committed,
   measurement_committed, estop_latched) the cut must find nothing unsynced. After each death
   a copy of every image is checked (daemon_helpers.check_midway: I7 integrity_check ok,
   foreign keys, event ids without gaps; I4/I5 nothing ran twice or unknown to the store; I1
   every acked measurement stored with its bytes), and the next labloopd recovers image 1
   itself. Over the VFS points the cuts must have dropped or torn at least 40 writes, or the
   test proves little. The campaign must complete.
3. estop_latched: e-stop during a second campaign, power cut after the latch and before any
   instrument is told: the next start finds the stop latched, and it holds until resumed.
Afterwards daemon_helpers.check_invariants (I1, I3, I4/I5, I6, I7, I8, I9). The damage applied
per point is printed. LL_POWERLOSS_SEED (default 1) picks the seeds.
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import (LABLOOP, answer_questions, check_acked_stored, check_invariants,  # noqa: E402
                            check_midway, finish, labloop, labsim_counts, request, run_killing,
                            spawn_labloopd, start_labsim, status_or_none, wait_for, wait_up,
                            write_campaign, write_lab)

SPEED = 1000
SEED = int(os.environ.get("LL_POWERLOSS_SEED", "1"))
IMAGES = 4  # damaged images per cut: the first is left for the next start, the others checked beside it
CUT = re.compile(r"powerloss: cut at (\w+) \(seed (\d+), image (\d+) of (\d+)\): (\d+) files, (\d+) unsynced "
                 r"writes \((\d+) kept, (\d+) dropped, (\d+) torn\), (\d+) truncates, (\d+) bytes changed")
CHECKS = re.compile(r"powerloss: cut at \w+: (\d+) durability checks since the start, (\d+) with writes")
TOLD = re.compile(r"store: (.*) told while (.*)")
KEYS = ("files", "writes", "kept", "dropped", "torn", "truncates", "changed")
# about to tell the outside world (an instrument, a station) what was just committed
AFTER_COMMIT = ("intent_committed", "measurement_committed", "estop_latched")
VFS_POINTS = ("wal_sync", "db_sync", "checkpoint_write")
procs = []
seeds_used = [0]


def next_seed():
    seeds_used[0] += 1
    return SEED * 1000 + seeds_used[0]


def start_daemon(tmp, run, failpoint=None, seed=None, speed=SPEED, **env_extra):
    env = dict(os.environ, LABLOOP_WAL_AUTOCHECKPOINT="8")
    env.update(env_extra)
    if failpoint:
        env["LABLOOP_FAILPOINT"] = failpoint
    if seed is not None:
        env["LABLOOP_POWERLOSS"] = f"{seed}:{IMAGES}"
    return spawn_labloopd(tmp, run, speed, procs, env)


def log_size(tmp):
    path = os.path.join(tmp, "labloopd.log")
    return os.path.getsize(path) if os.path.exists(path) else 0


def expect_cut(tmp, run, p, name, n, since, timeout=120):
    """Waits until p dies at failpoint name:n with a power cut (answering questions meanwhile);
    returns each image's counts from the cut's log lines."""
    deadline = time.time() + timeout
    while p.poll() is None:
        assert time.time() < deadline, f"failpoint {name}:{n} not reached within {timeout} s"
        st = answer_questions(run, p)
        if st and st["campaigns"] and st["campaigns"][-1]["state"] not in ("running", "paused"):
            time.sleep(1)
            assert p.poll() is not None, f"campaign ended before failpoint {name}:{n} was reached"
        time.sleep(0.02)
    with open(os.path.join(tmp, "labloopd.log"), "rb") as f:
        f.seek(since)
        log = f.read().decode(errors="replace")
    assert p.returncode == 137, f"labloopd exited with {p.returncode}, not at failpoint {name}:{n}: {log[-2000:]}"
    assert f"failpoint {name} hit {n}: exiting 137" in log, f"no failpoint message for {name}:{n}"
    cuts = CUT.findall(log)
    assert [(c[0], int(c[2]), int(c[3])) for c in cuts] == [(name, k, IMAGES) for k in range(1, IMAGES + 1)], \
        f"{name}:{n}: expected one power cut of {IMAGES} images, the log has {cuts}"
    checks = CHECKS.findall(log)
    assert len(checks) == 1, f"{name}:{n}: no count of durability checks in the log"
    told = TOLD.findall(log)
    return [dict(zip(KEYS, map(int, c[4:])), checks=int(checks[0][0]), told=told) for c in cuts]


def copy_store(tmp, image=1):
    """A copy of the store's files as the cut left them (image 1, in place) or of image k > 1
    (FILE.powerloss-k beside them; a file without unsynced writes has none and is its own
    image), so that checking them (SQLite's recovery, a checkpoint when the checker closes)
    leaves the originals for the next start. Removes image k's files."""
    d = os.path.join(tmp, "check")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for suffix in ("", "-wal"):
        path = os.path.join(tmp, "l.db" + suffix)
        img = f"{path}.powerloss-{image}"
        if image > 1 and os.path.exists(img):
            shutil.move(img, os.path.join(d, "l.db" + suffix))
        elif os.path.exists(path):
            shutil.copyfile(path, os.path.join(d, "l.db" + suffix))
    return os.path.join(d, "l.db")


def sim_request(tmp, req):
    rep = request("ipc://" + os.path.join(tmp, "sim", "control"), req)
    assert rep is not None and rep.get("ok"), (req, rep)
    return rep


def new_lab(prefix):
    tmp = tempfile.mkdtemp(prefix=prefix)
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, SPEED, procs)
    return tmp, os.path.join(tmp, "run")


def fmt(c):
    return (f"{c['writes']} unsynced writes: {c['kept']} kept, {c['dropped']} dropped, {c['torn']} torn; "
            f"{c['truncates']} truncates; {c['changed']} bytes changed")


def negative_control():
    """Part 0: with synchronous=NORMAL the same cut loses acked measurements, and I1 says so."""
    tmp, run = new_lab("test_daemon_powerloss.control.")
    p = start_daemon(tmp, run)
    wait_up(run, p)
    assert labloop(run, "campaign", "start", write_campaign(tmp, "c.conf", initial=4, batch=2,
                                                            budget=4)).returncode == 0
    p.terminate()
    assert p.wait(timeout=30) == 0
    since = log_size(tmp)
    seed = next_seed()
    p = start_daemon(tmp, run, "measurement_committed:2", seed, LABLOOP_SYNCHRONOUS="NORMAL",
                     LABLOOP_WAL_AUTOCHECKPOINT="100000")
    cut = expect_cut(tmp, run, p, "measurement_committed", 2, since)[0]
    print(f"control (synchronous=NORMAL, seed {seed}): cut at measurement_committed:2: {fmt(cut)}")
    assert cut["writes"] > 0 and cut["dropped"] + cut["torn"] > 0 and cut["changed"] > 0, cut
    assert cut["told"], "synchronous=NORMAL, and store_check_durable found nothing told before it was durable"
    print(f"control: {len(cut['told'])} of {cut['checks']} outward actions told before durable, e.g. "
          f"{cut['told'][0][0]} while {cut['told'][0][1]}")
    # the first batch's ack may still be on its way to the station's spool
    stations = os.path.join(tmp, "sim", "stations")
    wait_for("a stored ack", lambda: any(open(os.path.join(d, f)).read().strip() == "stored"
                                         for d, _, files in os.walk(stations) for f in files
                                         if f.startswith("ack-")), timeout=5)
    db = sqlite3.connect(copy_store(tmp))
    try:
        check_acked_stored(db, tmp)
    except AssertionError as e:
        assert "acked but not stored" in str(e), e
        print(f"control: I1 violated as expected: {e}")
    else:
        raise AssertionError("synchronous=NORMAL and a power cut lost no acked measurement: "
                             "the cut or the I1 check does not work")
    finally:
        db.close()
    for q in procs:
        if q.poll() is None:
            q.terminate()
            q.wait(timeout=30)
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    if os.environ.get("LL_FAILPOINTS", "OFF").upper() not in ("ON", "1", "TRUE", "YES"):
        print("skipped: labloopd built without -DLL_FAILPOINTS=ON (scripts/test.sh builds with it)")
        sys.exit(77)
    t_start = time.time()
    print(f"LL_POWERLOSS_SEED={SEED}")
    negative_control()
    print(f"{time.time() - t_start:6.1f} s: control done")

    tmp, run = new_lab("test_daemon_powerloss.")
    checks = [0]  # durability checks (store_check_durable) in the processes that lost power
    summary = {}  # point -> {deaths, images, and the cuts' counts (KEYS) summed over every image}

    def tally(name, cuts):
        s = summary.setdefault(name, dict.fromkeys(("deaths", "images") + KEYS, 0))
        s["deaths"] += 1
        for cut in cuts:
            s["images"] += 1
            for k in KEYS:
                s[k] += cut[k]

    def die(name, n, check):
        """A power cut at name:n; check(db_path) run on a copy of every image, image 1 left in
        place for the next start."""
        since = log_size(tmp)
        seed = next_seed()
        p = start_daemon(tmp, run, f"{name}:{n}", seed)
        cuts = expect_cut(tmp, run, p, name, n, since)
        if name in AFTER_COMMIT:
            assert cuts[0]["writes"] == 0 and cuts[0]["truncates"] == 0, \
                f"{name}:{n}: something committed is still unsynced when the outside world is told: {cuts[0]}"
        assert not cuts[0]["told"], f"{name}:{n}: told the outside world before it was durable: {cuts[0]['told'][:3]}"
        checks[0] += cuts[0]["checks"]
        tally(name, cuts)
        acked = [check(copy_store(tmp, k)) for k in range(IMAGES, 0, -1)][-1]
        d = [cut["dropped"] + cut["torn"] for cut in cuts]
        print(f"{time.time() - t_start:6.1f} s: power cut at {name}:{n} (seed {seed}): image 1: {fmt(cuts[0])}; "
              f"images 2-{IMAGES}: {', '.join(map(str, d[1:]))} writes dropped or torn; "
              f"every image sound, nothing ran twice, all {acked} acked measurements stored")

    def midway(db_path):
        return check_midway(tmp, db_path)

    def migration_rolled_back(db_path):
        db = sqlite3.connect(db_path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1, "migration 2 was not rolled back"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        return 0

    # 1. a migration cut short
    die("migration", 2, check=migration_rolled_back)
    p = start_daemon(tmp, run, seed=next_seed())
    wait_up(run, p)

    # 2. one campaign through power cuts
    conf = write_campaign(tmp, "c1.conf", initial=4, batch=2, budget=10)
    r = labloop(run, "campaign", "start", conf)
    assert r.returncode == 0, r.stderr
    p.terminate()
    assert p.wait(timeout=30) == 0
    points = [("intent_committed", 3), ("wal_sync", 1), ("start_accepted", 2), ("wal_sync", 6),
              ("group_commit", 1), ("db_sync", 1), ("before_result_commit", 4), ("wal_sync", 3),
              ("measurement_committed", 1), ("checkpoint_write", 3), ("round_write", 1), ("wal_sync", 15),
              ("checkpoint_write", 2), ("db_sync", 2), ("recovery", 1), ("wal_sync", 10),
              ("intent_committed", 2), ("group_commit", 2), ("checkpoint_write", 5),
              ("measurement_committed", 2), ("wal_sync", 25), ("db_sync", 3)]
    for name, n in points:
        die(name, n, check=midway)
    p = start_daemon(tmp, run, seed=next_seed())
    wait_up(run, p)
    print(f"{time.time() - t_start:6.1f} s: every point reached")
    wait_for("campaign 1 to complete",
             lambda: (answer_questions(run, p) or {"campaigns": [{}]})["campaigns"][0].get("state") == "completed",
             timeout=240)
    print(f"{time.time() - t_start:6.1f} s: campaign 1 completed")

    # 3. e-stop latched, then the power goes before any instrument is told
    p.terminate()
    assert p.wait(timeout=30) == 0
    sim_request(tmp, {"cmd": "set", "what": "speed", "value": SPEED // 10})
    since = log_size(tmp)
    seed = next_seed()
    p = start_daemon(tmp, run, "estop_latched:1", seed, speed=SPEED // 10)
    wait_up(run, p)
    conf2 = write_campaign(tmp, "c2.conf", initial=2, batch=2, budget=2)
    assert labloop(run, "campaign", "start", conf2).returncode == 0
    wait_for("the furnace to run a program", lambda: sim_request(tmp, {"cmd": "status"})["furnace_program"] == 1,
             timeout=120, every=0.01)
    cli = subprocess.Popen([LABLOOP, "e-stop", "--timeout", "3000", "--run-dir", run], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    procs.append(cli)
    p.wait(timeout=30)
    cuts = expect_cut(tmp, run, p, "estop_latched", 1, since)
    assert cuts[0]["writes"] == 0 and cuts[0]["truncates"] == 0, f"the latched e-stop is not durable yet: {cuts[0]}"
    assert not cuts[0]["told"], f"told the outside world before it was durable: {cuts[0]['told'][:3]}"
    checks[0] += cuts[0]["checks"]
    tally("estop_latched", cuts)
    print(f"{time.time() - t_start:6.1f} s: power cut at estop_latched:1 (seed {seed}): {fmt(cuts[0])}")
    p = start_daemon(tmp, run, seed=next_seed(), speed=SPEED // 10)
    wait_up(run, p)
    st = status_or_none(run)
    assert st["estop"] and st["campaigns"][1]["state"] == "stopped", "the e-stop did not survive the power cut"
    time.sleep(0.5)
    assert status_or_none(run)["campaigns"][1]["state"] == "stopped", "the stop did not hold"
    p.terminate()
    assert p.wait(timeout=30) == 0
    sim_request(tmp, {"cmd": "set", "what": "speed", "value": SPEED})
    p = start_daemon(tmp, run, seed=next_seed())
    wait_up(run, p)
    assert labloop(run, "campaign", "resume").returncode == 0
    wait_for("campaign 2 to end", lambda: (answer_questions(run, p) or {"campaigns": [{}, {}]})["campaigns"][1].get(
        "state") in ("completed", "aborted", "failed"), timeout=240)
    print(f"{time.time() - t_start:6.1f} s: campaign 2 ended")

    measured, acked = check_invariants(tmp, labsim_counts(tmp))
    assert measured >= 4 and acked >= 8, f"too little was measured to test much: {measured}, {acked}"
    print(f"damage per point (deaths x {IMAGES} images: unsynced writes kept/dropped/torn, truncates, bytes changed):")
    for name, s in summary.items():
        print(f"  {name:22s} {s['deaths']:2d} x {IMAGES}: {s['writes']:4d} writes {s['kept']}/{s['dropped']}/{s['torn']}, "
              f"{s['truncates']} truncates, {s['changed']} bytes")
    told = TOLD.findall(open(os.path.join(tmp, "labloopd.log"), errors="replace").read())
    assert not told, f"told the outside world before it was durable: {told[:3]}"
    print(f"{checks[0]} outward actions (instrument commands, acks, measure requests, control replies) "
          f"checked durable in the {sum(s['deaths'] for s in summary.values())} processes that lost power")
    assert checks[0] >= 100, f"only {checks[0]} durability checks ran"
    vfs = {k: sum(summary[n][k] for n in VFS_POINTS) for k in KEYS}
    assert vfs["dropped"] + vfs["torn"] >= 40 and vfs["changed"] > 0, \
        f"the cuts at {VFS_POINTS} dropped or tore only {vfs['dropped'] + vfs['torn']} writes: the test proves little"
    finish(p, procs, tmp)
    print(f"{time.time() - t_start:6.1f} s: ok")


if __name__ == "__main__":
    run_killing(main, procs)

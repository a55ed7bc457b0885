"""Helpers shared by the labloopd integration tests (not a test itself: ctest runs only
test_*.py): program paths from the test environment, a free loopback port, the labloop CLI,
per-test copies of the embedded lab and of a campaign file, polling, and one request to a
ZeroMQ control socket (labsim's or labloopd's)."""
import os
import re
import socket
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


def start_labloopd(tmp, run, speed, procs, env=None):
    """labloopd on tmp/sim/lab.conf (labsim's copy) and tmp/l.db at time scale `speed`, 5 ms
    polls, stderr appended to tmp/labloopd.log; added to procs; returns once it answers."""
    p = subprocess.Popen([LABLOOPD, "--lab", os.path.join(tmp, "sim", "lab.conf"), "--db",
                          os.path.join(tmp, "l.db"), "--run-dir", run, "--time-scale", str(speed),
                          "--poll-ms", "5"], stderr=open(os.path.join(tmp, "labloopd.log"), "a"), env=env)
    procs.append(p)
    wait_for("labloopd", lambda: labloop(run, "status").returncode == 0)
    return p


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

"""Helpers shared by the labloopd integration tests (not a test itself: ctest runs only
test_*.py): program paths from the test environment, a free loopback port, the labloop CLI,
and per-test copies of the embedded lab and of a campaign file."""
import os
import re
import socket
import subprocess

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

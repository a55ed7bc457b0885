#!/usr/bin/env python3
"""The shipped systemd unit (reliability.md §2.5, matrix row S8).

1. Exposure: `systemd-analyze security --offline=true` on systemd/labloopd.service must not be
   worse than the recorded figure (MAX_EXPOSURE; 1.6 on 2026-11-26, systemd 252).
2. Serial access kept: no PrivateDevices=yes, DeviceAllow= for ttyUSB, ttyS and ttyACM, the
   dialout group, and no PrivateUsers= (it would unmap that group).
3. The system-call filter does not break labloopd: labloopd runs a short campaign against labsim
   under `strace -f`, and every system call it makes must be in the unit's SystemCallFilter=
   (the allow list minus the deny lists, groups expanded by `systemd-analyze syscall-filter`).
   A call outside it would fail with EPERM in production (SystemCallErrorNumber=EPERM); libzmq,
   for one, aborts when its I/O threads cannot set their scheduling parameters. Excused: fchown,
   which SQLite makes only when running as root (the service runs as the user labloop). The
   sanitizer build's runtime needed no excuse (2026-11-26: 68 different calls, all allowed).

Skipped (77) without systemd-analyze or strace.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_helpers  # noqa: E402
from daemon_helpers import SRC, labloop, run_killing, start_labsim, wait_for, write_campaign, write_lab  # noqa: E402

UNIT = os.path.join(SRC, "systemd", "labloopd.service")
MAX_EXPOSURE = 1.6
# SQLite's unix VFS calls fchown on new journal and WAL files only when geteuid() == 0
ROOT_ONLY_CALLS = {"fchown"} if os.geteuid() == 0 else set()

procs = []


class Child:
    """A process by pid that is not our child (labloopd under strace), with the part of
    Popen's interface run_killing uses."""

    def __init__(self, pid):
        self.pid = pid

    def poll(self):
        return None if os.path.exists(f"/proc/{self.pid}") else 0

    def kill(self):
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass

    def wait(self, timeout=None):
        wait_for("labloopd's end", lambda: self.poll() is not None, timeout=timeout or 30)


def child_of(pid):
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                return int(stat)
    return None


def unit_settings():
    settings = {}
    for line in open(UNIT):
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def check_exposure():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", UNIT], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, f"no exposure level in systemd-analyze's output: {r.stdout[-500:]} {r.stderr}"
    exposure = float(m.group(1))
    print(f"systemd-analyze security: exposure {exposure} (recorded {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} is worse than the recorded {MAX_EXPOSURE}"


def check_serial_access(settings):
    assert "yes" not in settings.get("PrivateDevices", []), "PrivateDevices=yes hides /dev/ttyUSB*"
    assert not any(v not in ("no", "") for v in settings.get("PrivateUsers", [])), "PrivateUsers= unmaps dialout"
    allowed = " ".join(settings.get("DeviceAllow", []))
    for cls in ("char-ttyUSB", "char-ttyS", "char-ttyACM"):
        assert cls in allowed, f"DeviceAllow= lacks {cls}"
    assert "dialout" in " ".join(settings.get("SupplementaryGroups", [])), "not in the dialout group"


def syscall_groups():
    """{"@group": [members, possibly "@other" groups]} from systemd-analyze syscall-filter."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if name.startswith("@"):
            if name in seen:
                continue
            seen.add(name)
            assert name in groups, f"unknown system call group {name}"
            calls |= expand(groups[name], groups, seen)
        else:
            calls.add(name)
    return calls


def allowed_calls(settings):
    groups = syscall_groups()
    allow, deny = set(), set()
    for value in settings.get("SystemCallFilter", []):
        if value.startswith("~"):
            deny |= expand(value[1:].split(), groups)
        else:
            allow |= expand(value.split(), groups)
    assert allow, "the unit has no SystemCallFilter= allow list"
    return allow - deny


def traced_campaign(tmp):
    """Runs a 4-experiment campaign with labloopd under strace -f; returns the set of system
    calls labloopd's threads made."""
    lab, _ = write_lab(tmp)
    start_labsim(tmp, lab, 1000, procs)
    trace = os.path.join(tmp, "strace.out")
    wrapper = os.path.join(tmp, "labloopd-traced")
    with open(wrapper, "w") as f:
        # LeakSanitizer cannot run under ptrace; the other tests check for leaks
        f.write(f'#!/bin/sh\nASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" '
                f'exec strace -f -qq -o "{trace}" "{daemon_helpers.LABLOOPD}" "$@"\n')
    os.chmod(wrapper, 0o755)
    daemon_helpers.LABLOOPD = wrapper
    run = os.path.join(tmp, "run")
    tracer = daemon_helpers.start_labloopd(tmp, run, 1000, procs)
    daemon = Child(child_of(tracer.pid))
    assert daemon.pid is not None, "no labloopd under strace"
    procs.insert(0, daemon)  # killed before strace if the test fails
    r = labloop(run, "campaign", "start", write_campaign(tmp, "c.conf", initial=2, batch=2, budget=4))
    assert r.returncode == 0, r.stderr
    for args in (["status", "--json"], ["events"], ["experiments"], ["measurements"]):
        assert labloop(run, *args).returncode == 0, args

    def done():
        st = daemon_helpers.status_json(run)
        return st["campaigns"] and st["campaigns"][0]["state"] in ("completed", "failed")

    wait_for("the campaign", done, timeout=120)
    st = daemon_helpers.status_json(run)
    assert st["campaigns"][0]["state"] == "completed", st["campaigns"][0]
    os.kill(daemon.pid, 15)
    assert tracer.wait(timeout=30) == 0, "labloopd did not stop cleanly under strace"  # its status
    calls = set()
    for line in open(trace):
        m = re.match(r"\d+ +(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
        if m and m.group(1) not in ("exited", "killed"):
            calls.add(m.group(1))
    return calls


def main():
    if not shutil.which("systemd-analyze") or not shutil.which("strace"):
        print("SKIP: needs systemd-analyze and strace")
        sys.exit(77)
    if subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "true"]).returncode != 0:
        print("SKIP: strace cannot trace here (ptrace not permitted)")
        sys.exit(77)
    settings = unit_settings()
    check_exposure()
    check_serial_access(settings)
    allowed = allowed_calls(settings)
    tmp = tempfile.mkdtemp(prefix="test_systemd_unit.")
    calls = traced_campaign(tmp)
    outside = sorted(calls - allowed - ROOT_ONLY_CALLS - {"execve"})
    print(f"labloopd made {len(calls)} different system calls in a campaign; "
          f"the filter allows {len(allowed)}; outside it: {outside or 'none'}")
    assert not outside, f"labloopd calls {outside}, which the unit's SystemCallFilter= refuses (EPERM)"
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

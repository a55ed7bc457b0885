#!/usr/bin/env python3
"""Idle (reliability.md §4.1 L6): labloopd with labsim's stations connected and sending
heartbeats, no campaign, real time (speed 1). Over 10 s:
  - the daemon's CPU time (all threads, /proc/PID/stat utime + stime) is below 0.5 % of the
    wall time: nothing polls busily;
  - its threads wake (voluntary + involuntary context switches, /proc/PID/task/*/status)
    at most 2 times per second each on average: timers and heartbeats only.
Prints both figures.
"""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import finish, run_killing, start_lab  # noqa: E402

procs = []


def cpu_s(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid):
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        for line in open(status):
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def main():
    tmp, _, daemon = start_lab("test_daemon_idle", procs, speed=1)
    time.sleep(2)  # start-up done, stations connected
    c0, w0, t0 = cpu_s(daemon.pid), wakeups(daemon.pid), time.time()
    time.sleep(10)
    c1, w1, t1 = cpu_s(daemon.pid), wakeups(daemon.pid), time.time()
    threads = len(glob.glob(f"/proc/{daemon.pid}/task/*"))
    cpu_pct = 100 * (c1 - c0) / (t1 - t0)
    rate = (w1 - w0) / (t1 - t0)
    print(f"idle for {t1 - t0:.1f} s: CPU {cpu_pct:.2f} %, {rate:.1f} wake-ups/s over {threads} threads")
    assert cpu_pct < 0.5, f"CPU {cpu_pct:.2f} % while idle"
    assert rate <= 2 * threads, f"{rate:.1f} wake-ups/s over {threads} threads: something polls"
    finish(daemon, procs, tmp)
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

#!/usr/bin/env python3
"""Safe end without the host (reliability.md §4.5 X6): labloopd is killed with SIGKILL while the
furnace runs an anneal program and is not restarted. The controller must end the program by
itself at its planned time (program end type "reset": labsim's status B9 "ended by itself"
set, program back in reset) and go to its safe setpoint (25 °C in config/lab.conf), and the
furnace's temperature must then fall towards it. Nobody tells the furnace anything after
the kill.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import request, run_killing, start_campaign, wait_for  # noqa: E402

SPEED = 1000
SAFE_C = 25.0
procs = []


def main():
    tmp, run, daemon = start_campaign("test_daemon_safe_end", procs, SPEED, initial=2, batch=2, budget=2)
    sim = lambda: request("ipc://" + os.path.join(tmp, "sim", "control"), {"cmd": "status"})  # noqa: E731
    wait_for("an anneal", lambda: sim()["furnace_program"] == 1, timeout=60, every=0.01)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    t_kill = time.time()
    running = sim()
    assert running["furnace_program"] == 1, "the program ended before the kill: nothing to test"
    # the longest anneal of the campaign: ramp from 25 °C at 30 °C/min to 150 °C and 30 min
    # dwell, about 34 simulated minutes: 2 s at speed 1000; wait up to 20 s
    ended = wait_for("the program to end by itself",
                     lambda: (lambda s: s if s["furnace_program"] != 1 else None)(sim()), timeout=20, every=0.02)
    assert ended["furnace_program"] == 0 and ended["furnace_program_ended"], ended
    assert abs(ended["furnace_sp_active_c"] - SAFE_C) < 1e-6, ended
    hot = ended["furnace_pv_c"]
    time.sleep(0.5)  # 8 simulated minutes
    cooler = sim()["furnace_pv_c"]
    assert cooler < hot - 1.0, (hot, cooler)
    print(f"killed at PV {running['furnace_pv_c']:.1f} °C; the program ended by itself {time.time() - t_kill:.2f} s "
          f"later, setpoint {ended['furnace_sp_active_c']:.0f} °C, PV {hot:.1f} -> {cooler:.1f} °C half a second on")
    for p in procs:
        p.terminate()
        p.wait(timeout=30)
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    run_killing(main, procs)

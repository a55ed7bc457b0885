"""The solid-electrolyte world end to end, on the second furnace map.

labsim --world electrolyte with simulators/lab-electrolyte.conf, its furnace switched to the
"vendorb" map (PV at 4096, program registers at 8192/8320/8448, bit-mapped program status):
another controller without new code. A garnet pellet is dispensed (Ta 0.6, Li excess 0.1),
sintered by a one-segment program at 1150 °C for 10 h (at --speed 20000), moved to the
impedance station and measured: three spectra inside 1 MHz .. 0.1 Hz whose real part where
-Z'' is smallest matches the world's total resistance L/(sigma_total A) at 25 °C.
"""
import json
import os
import re
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_labsim_instruments import SRC, Labsim, Rtu, check  # noqa: E402
from test_labsim_faults import read_inputs, start_job, wait_done  # noqa: E402
import socket  # noqa: E402


def main():
    text = open(os.path.join(SRC, "simulators", "lab-electrolyte.conf")).read()
    text = text.replace('map = "eurotherm3216";', 'map = "vendorb";')
    ls = Labsim(["--world", "electrolyte", "--seed", "3"], lab_text=text, speed=20000)
    try:
        s = socket.create_connection(("127.0.0.1", ls.robot_port), timeout=3)
        start_job(s, 1, 1, action=1, well=4, vols=(100.0, 60.0, 0.0, 10.0))
        check(wait_done(s, 1) == 0, "pellet precursors dispensed into well 4")
        start_job(s, 2, 2, action=2, well=4, source=0, plate=2)
        check(wait_done(s, 2) == 0, "pellet moved into the furnace")

        rtu = Rtu(ls.furnace_dev)
        check(rtu.read(1) == ("exception", 2), "vendorb map: the 3216 PV address is not served")
        check(rtu.read(4096)[0] in range(240, 260), "vendorb PV at 4096")
        check(rtu.write(4097, 300) == "ok", "vendorb target SP 30.0 °C")
        for addr, value in ((8192, 11500), (8448, 10), (8320, 600), (4106, 3), (4103, 10)):
            check(rtu.write(addr, value) == "ok", "vendorb register %d = %d" % (addr, value))
        check(rtu.write(4101, 2) == "ok", "vendorb program status RUN (2)")
        check(rtu.read(4101)[0] == 2, "program running")
        deadline = time.time() + 30
        while rtu.read(4101)[0] != 1 and time.time() < deadline:
            time.sleep(0.05)
        check(rtu.read(4101)[0] == 1, "program ended by itself in reset (1)")
        rtu.s.close()
        start_job(s, 3, 3, action=2, well=4, source=2, plate=5)
        check(wait_done(s, 3) == 0, "pellet moved to the impedance station")
        s.close()

        sample = [x for x in ls.ctl(cmd="samples")["samples"] if x["well"] == 4][0]
        t = sample["truth"]
        check(abs(t["ta"] - 0.6) < 1e-9 and t["al"] == 0 and abs(t["li_excess"] - 0.1) < 1e-9,
              "doping recovered from the volumes")
        check(abs(t["sinter_c"] - 1150) < 3 and 590 < t["sinter_min"] < 630,
              "sintering seen by the pellet: %.1f °C for %.0f min" % (t["sinter_c"], t["sinter_min"]))
        check(t["cubic"] > 0.99 and 3e-4 < t["sigma_total_s_cm"] < 1e-3,
              "cubic garnet, sigma_total %.3g S/cm" % t["sigma_total_s_cm"])
        counts = ls.ctl(cmd="counts")
        check(counts["furnace_eeprom_writes"] == 1 and counts["furnace_programs"] == 1,
              "one EEPROM write (target SP), one program")

        r = ls.router
        r.setsockopt(zmq.RCVTIMEO, 10000)
        req = {"v": 1, "type": "measure", "request": "r-eis-1", "experiment": 1, "sample": "P1",
               "kind": "eis", "protocol": {}}
        r.send_multipart([b"eis-1", json.dumps(req).encode()])
        m = None
        while m is None:
            ident, msg = r.recv_multipart()
            j = json.loads(msg)
            if j["type"] == "measurement":
                m = j
        d = m["data"]
        check(m["kind"] == "eis" and d["thickness_cm"] == 0.1 and d["area_cm2"] == 0.785,
              "eis measurement of a 0.10 cm x 0.785 cm2 pellet")
        sp = d["spectra"]
        check([x["temperature_c"] for x in sp] == [-20, 25, 60], "spectra at -20, 25, 60 °C")
        for x in sp:
            f = x["frequency_hz"]
            check(len(f) == 71 and max(f) <= 1e6 * 1.0001 and min(f) >= 0.1 * 0.9999,
                  "%g °C: 71 points inside 1 MHz .. 0.1 Hz" % x["temperature_c"])
        x25 = sp[1]
        k = min(range(71), key=lambda i: -x25["z_imag_ohm"][i])
        r_total = 0.1 / (t["sigma_total_s_cm"] * 0.785)
        check(abs(x25["z_real_ohm"][k] / r_total - 1) < 0.15,
              "25 °C: Z' at the -Z'' minimum %.0f ohm vs L/(sigma A) %.0f ohm" % (x25["z_real_ohm"][k], r_total))
        check(x25["z_imag_ohm"][-1] < -10 * r_total, "blocking-electrode spike at low frequency")
        r.send_multipart([b"eis-1", json.dumps({"v": 1, "type": "ack", "seq": m["seq"], "status": "stored"}).encode()])
        check(ls.ctl(cmd="counts")["measurements"] == {"r-eis-1": 1}, "one impedance measurement")
    except Exception:
        print(ls.logtext()[-4000:], file=sys.stderr)
        raise
    finally:
        ls.stop()
    ls.remove()


if __name__ == "__main__":
    main()

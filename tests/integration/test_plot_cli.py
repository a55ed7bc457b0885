#!/usr/bin/env python3
"""`labloop plot` against a real campaign (labsim + labloopd; initial 4, batch 2, budget 8, a
name full of XML's special characters): the SVG parses as XML (file and standard output),
has one point marker per measured experiment (the initial design as squares, the
non-dominated ones those of `labloop pareto`), its final hypervolume and `--json`'s are
`labloop pareto --json`'s, and the progression is the hypervolume of every prefix of the
measured experiments in the order proposed (recomputed here in 2-D); while the campaign
runs the SVG is consistent too (or says that nothing is measured yet); errors: an unknown
campaign exits 1, bad usage 2, no daemon 3, an unwritable output 1.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_helpers import finish, labloop, run_killing, start_lab, wait_for, write_campaign  # noqa: E402

procs = []
SVG = "{http://www.w3.org/2000/svg}"
NAME = """plot <&> 'q' "r" """.strip()


def classes(el):
    return el.get("class", "").split()


def points(root):
    return [el for el in root.iter() if "point" in classes(el)]


def hv_2d(pts, ref):
    """Hypervolume of 2-D points (minimisation) against ref, by strips."""
    inside = sorted(p for p in pts if p[0] < ref[0] and p[1] < ref[1])
    hv, best_y = 0.0, ref[1]
    for i, (x, y) in enumerate(inside):
        best_y = min(best_y, y)
        x_next = inside[i + 1][0] if i + 1 < len(inside) else ref[0]
        hv += (x_next - x) * (ref[1] - best_y)
    return hv


def close(a, b, rel=1e-8):
    return abs(a - b) <= rel * max(1.0, abs(b))


def check_consistent(svg_text):
    """Any moment: markers match data-plotted, and an empty plot says so."""
    root = ET.fromstring(svg_text)
    assert root.tag == SVG + "svg", root.tag
    n = int(root.get("data-measured"))
    assert len(points(root)) == int(root.get("data-plotted")) == n, (len(points(root)), root.attrib)
    if n == 0:
        assert "No measured experiment yet" in svg_text
    return n


def main():
    tmp, run, daemon = start_lab("test_plot_cli", procs, speed=1000)
    path = write_campaign(tmp, "c.conf", initial=4, batch=2, budget=8)
    text = open(path).read()
    escaped = NAME.replace("\\", "\\\\").replace('"', '\\"')
    text = re.sub(r'name = "perovskite-pce-t80";', f'name = "{escaped}";', text, count=1)
    open(path, "w").write(text)
    r = labloop(run, "campaign", "start", path)
    assert r.returncode == 0, r.stderr

    # while it runs (possibly before anything is measured): a consistent SVG, exit 0
    r = labloop(run, "plot")
    assert r.returncode == 0, r.stderr
    check_consistent(r.stdout)

    def completed():
        st = json.loads(labloop(run, "status", "--json").stdout)
        return st if st["campaigns"][0]["state"] == "completed" else None

    wait_for("completion", completed, timeout=120)
    exps = json.loads(labloop(run, "experiments", "--json").stdout)["experiments"]
    measured = [x for x in exps if x["state"] == "measured"]
    assert len(measured) >= 6, [x["state"] for x in exps]
    pareto = json.loads(labloop(run, "pareto", "--json").stdout)

    out = os.path.join(tmp, "x.svg")
    r = labloop(run, "plot", "--output", out)
    assert r.returncode == 0 and r.stdout == "", r
    svg_text = open(out, encoding="utf-8").read()
    root = ET.fromstring(svg_text)
    assert check_consistent(svg_text) == len(measured)
    assert root.find(SVG + "title").text == "labloop campaign 1: " + NAME
    assert "<script" not in svg_text and "href" not in svg_text
    marks = points(root)
    assert sorted(int(m.get("data-exp")) for m in marks) == sorted(x["id"] for x in measured)
    for m in marks:
        assert ("initial" in classes(m)) == (m.get("data-round") == "0"), m.attrib
    front = sorted(int(m.get("data-exp")) for m in marks if "nondominated" in classes(m))
    assert front == sorted(x["id"] for x in pareto["front"]), (front, pareto["front"])
    assert close(float(root.get("data-hypervolume")), pareto["hypervolume"]), (root.attrib, pareto["hypervolume"])
    # both objectives are labelled with their goal
    labels = " ".join(t.text or "" for t in root.iter(SVG + "text"))
    assert "pce_pct (max" in labels and "log10_t80_h (max" in labels, labels

    # --json: the same numbers; the progression is the hypervolume of every prefix
    r = labloop(run, "plot", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["campaign"] == 1 and doc["name"] == NAME and doc["output"] is None
    assert close(doc["hypervolume"], pareto["hypervolume"]), (doc["hypervolume"], pareto["hypervolume"])
    prog = doc["progression"]
    assert [p["experiment"] for p in prog] == [x["id"] for x in measured]  # the order proposed
    ref = [-o["ref"] if o["goal"] == "max" else o["ref"] for o in pareto["objectives"]]
    names = [o["name"] for o in pareto["objectives"]]
    sign = [-1 if o["goal"] == "max" else 1 for o in pareto["objectives"]]
    pts = []
    for p, x in zip(prog, measured):
        pts.append(tuple(s * x["objectives"][n] for s, n in zip(sign, names)))
        assert close(p["hypervolume"], hv_2d(pts, ref), 1e-7), (p, hv_2d(pts, ref))
    svg_hv = {int(c.get("data-exp")): float(c.get("data-hv")) for c in root.iter(SVG + "circle")
              if "hv" in classes(c)}
    assert all(close(svg_hv[p["experiment"]], p["hypervolume"]) for p in prog), (svg_hv, prog)

    # errors, with the exit codes of the other commands
    r = labloop(run, "plot", "--campaign", "99")
    assert r.returncode == 1 and "no such campaign" in r.stderr, r
    assert labloop(run, "plot", "--width", "5").returncode == 2
    assert labloop(run, "plot", "--colour", "red").returncode == 2
    r = labloop(run, "plot", "--output", os.path.join(tmp, "missing", "x.svg"))
    assert r.returncode == 1 and "missing/x.svg" in r.stderr, r
    r = labloop(os.path.join(tmp, "no-daemon"), "plot")
    assert r.returncode == 3 and "not running" in r.stderr, r
    finish(daemon, procs, tmp)
    print(f"plot: {len(marks)} points, front {front}, hypervolume {doc['hypervolume']:.6g}")


run_killing(main, procs)

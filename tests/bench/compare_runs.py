#!/usr/bin/python3
"""Paired comparison of two planner benchmark runs, seed by seed.

    bench_planner --seeds 60 --no-timing --verbose > A.txt 2>&1   (tree or setting A)
    bench_planner --seeds 60 --no-timing --verbose > B.txt 2>&1   (tree or setting B)
    tests/bench/compare_runs.py A.txt B.txt

For every problem in both files it pairs the final hypervolume of the EHVI loop of each seed
(the last "seed S n=N hv=H" line printed with --verbose) and prints the medians of A and B as
HV fractions, the mean and standard deviation of the per-seed difference B - A, the paired t
statistic and how many seeds B improved. The per-seed spread of the noisy perovskite world is
about 0.03 in HV fraction, so a 20-seed median moves by +-0.01 to 0.02 by chance; a paired
difference with |t| < 2 over 60 seeds is noise (docs/bench-planner.md).
"""
import math
import re
import statistics
import sys

HEADER = re.compile(r"^(\S+)\s+evals\s+\d+,.*HV_max\s+([0-9.eE+-]+)")
LOOP = re.compile(r"^\s+(\S+) (\S+) seed (\d+) n=(\d+) hv=([0-9.eE+-]+)")


def final_hv(path, acq="ehvi"):
    """{problem: (hv_max, {seed: hv of the largest n})} of one verbose run. The header lines go
    to standard output and the loop lines to standard error, so their order in a file written
    with 2>&1 is not fixed: both are collected first."""
    hv_max, loops = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = HEADER.match(line)
            if m:
                hv_max[m.group(1)] = float(m.group(2))
                continue
            m = LOOP.match(line)
            if not m or m.group(2) != acq:
                continue
            prob, seed, n, hv = m.group(1), int(m.group(3)), int(m.group(4)), float(m.group(5))
            seeds = loops.setdefault(prob, {})
            if seed not in seeds or n >= seeds[seed][0]:
                seeds[seed] = (n, hv)
    missing = [p for p in loops if p not in hv_max]
    if missing:
        sys.exit(f"{path}: no header line (with HV_max) for {', '.join(missing)}")
    return {p: (hv_max[p], {s: v[1] for s, v in seeds.items()}) for p, seeds in loops.items()}


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: compare_runs.py A.txt B.txt  (outputs of bench_planner --verbose)")
    a, b = final_hv(argv[1]), final_hv(argv[2])
    common = [p for p in a if p in b]
    if not common:
        sys.exit("no problem appears in both files (were they run with --verbose?)")
    for prob in common:
        hv_max = a[prob][0]
        sa, sb = a[prob][1], b[prob][1]
        seeds = sorted(set(sa) & set(sb))
        if len(seeds) < 2:
            print(f"{prob}: fewer than two common seeds")
            continue
        fa = [sa[s] / hv_max for s in seeds]
        fb = [sb[s] / hv_max for s in seeds]
        diff = [y - x for x, y in zip(fa, fb)]
        mean, sd = statistics.mean(diff), statistics.stdev(diff)
        if sd > 0:
            t = mean / sd * math.sqrt(len(diff))
        else:
            t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        print(
            f"{prob}: {len(seeds)} seeds, HV fraction median A {statistics.median(fa):.4f} "
            f"B {statistics.median(fb):.4f}; B - A per seed: mean {mean:+.4f} sd {sd:.4f} "
            f"t {t:+.2f}, B better on {sum(d > 0 for d in diff)} of {len(diff)}"
        )


if __name__ == "__main__":
    main(sys.argv)

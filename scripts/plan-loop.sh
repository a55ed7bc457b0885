#!/usr/bin/env bash
# The planner alone, in a loop (no daemon, no instruments): a closed planning loop on
# labsim's perovskite world, driven only through the public commands. `labloop plan`
# proposes the 14-point space-filling design, then 10 rounds of 4 experiments chosen by
# the planner (GPs + exact EHVI) from everything measured so far; `labsim world perovskite`
# "measures" each batch with the default noise (0.3 % PCE, 0.05 log10 T80). At the end it
# prints the Pareto front of the measurements and the hypervolume of the evaluated points'
# noise-free truth as a share of the world's best (25.85 for reference point PCE 10 %,
# log10 T80 2.0). It shows what a script can do with `labloop plan` on any problem; the
# README's dry run (scripts/dry-run.sh) runs the full lab.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
builddir=${LL_BUILD_DIR:-build}
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$builddir" -j"$(nproc)" --target labloop labsim -- --no-print-directory >/dev/null
labloop=$builddir/daemon/labloop
labsim=$builddir/simulators/labsim
campaign=config/problems/perovskite.conf
work=$builddir/dry-run
rm -rf "$work"
mkdir -p "$work"
obs=$work/obs.csv

# measure FILE ROUND: evaluates the proposals in FILE with labsim and appends them to obs.csv
measure() {
    "$labsim" world perovskite --seed "$2" <"$1" >"$work/measured.csv"
    if [ ! -s "$obs" ]; then
        cat "$work/measured.csv" >"$obs"
    else
        tail -n +2 "$work/measured.csv" >>"$obs"
    fi
}

start=$(date +%s.%N)
"$labloop" plan "$campaign" --batch 14 >"$work/batch.csv"
measure "$work/batch.csv" 1000
for round in $(seq 1 10); do
    "$labloop" plan "$campaign" --data "$obs" >"$work/batch.csv"
    measure "$work/batch.csv" "$((1000 + round))"
done
end=$(date +%s.%N)
n=$(($(wc -l <"$obs") - 1))
echo "dry run: $n experiments (14 design + 10 rounds of 4) planned by labloop plan, measured by"
echo "labsim's perovskite world with noise; $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s in all"

# Pareto front (both objectives maximised) and hypervolume w.r.t. (10, 2.0), in awk.
# front.awk reads rows "pce,t80" and prints the non-dominated ones sorted by PCE, then "HV h".
cat >"$work/front.awk" <<'AWK'
BEGIN { FS = ","; n = 0 }
{ p[n] = $1 + 0; t[n] = $2 + 0; row[n] = $0; n++ }
END {
    m = 0
    for (i = 0; i < n; i++) {
        dom = 0
        for (j = 0; j < n && !dom; j++)
            if (p[j] >= p[i] && t[j] >= t[i] && (p[j] > p[i] || t[j] > t[i]) || (j < i && p[j] == p[i] && t[j] == t[i]))
                dom = 1
        if (!dom) { fp[m] = p[i]; ft[m] = t[i]; fr[m] = row[i]; m++ }
    }
    for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (fp[j] < fp[i]) {
        x = fp[i]; fp[i] = fp[j]; fp[j] = x; x = ft[i]; ft[i] = ft[j]; ft[j] = x
        x = fr[i]; fr[i] = fr[j]; fr[j] = x }
    hv = 0; prev = 10
    for (i = 0; i < m; i++) { if (!show_hv_only) print fr[i] }
    # sweep from the highest PCE down: strips of width (pce - previous pce) and height (t80 - 2)
    prev = 10
    for (i = 0; i < m; i++) if (fp[i] > 10 && ft[i] > 2) {
        hv += (fp[i] - prev) * (ft[i] - 2); prev = fp[i] }
    print "HV " hv
}
AWK
echo
echo "Pareto front of the measurements (pce_pct, log10_t80_h, then the recipe):"
tail -n +2 "$obs" | awk -F, '{ printf "%s,%s,%s,%s,%s,%s,%s,%s\n", $7, $8, $1, $2, $3, $4, $5, $6 }' |
    awk -v show_hv_only=0 -f "$work/front.awk" | grep -v '^HV' |
    awk -F, '{ printf "  PCE %6.2f %%  log10 T80 %5.2f   fa %.3f cs %.3f iodide %.3f  %5.1f C %5.1f min %4d rpm\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
cut -d, -f1-6 "$obs" | "$labsim" world perovskite --noise-free >"$work/truth.csv"
hv_true=$(tail -n +2 "$work/truth.csv" | awk -F, '{ print $7 "," $8 }' |
    awk -v show_hv_only=1 -f "$work/front.awk" | awk '/^HV/ { print $2 }')
echo
awk -v hv="$hv_true" 'BEGIN { printf "hypervolume of the noise-free truth of the %s: %.3f = %.1f %% of the world'"'"'s 25.85\n", "evaluated points", hv, 100 * hv / 25.85 }'
echo "observations in $obs"

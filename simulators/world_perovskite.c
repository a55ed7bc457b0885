/* world_perovskite — the perovskite world of ../shared/benchmarks/perovskite.md.
 *
 * A smooth, trade-off-rich landscape: PCE follows a detailed-balance limit in the band
 * gap, scaled by phase purity (alpha), halide segregation, precursor conversion and
 * decomposition during the anneal, grain quality, optical absorption of the film and
 * composition terms; stability rewards bromide, FA and Cs (up to a point), thick films
 * and complete conversion. The formulas are transcribed term by term; do not "improve"
 * them — campaigns and benchmarks are compared against this exact ground truth.
 */
#include "simulators/world.h"

#include <math.h>

const double world_perovskite_low[WORLD_PEROVSKITE_N_INPUTS] = {0.10, 0.00, 0.50, 80.0, 5.0, 2000};
const double world_perovskite_high[WORLD_PEROVSKITE_N_INPUTS] = {
    1.00, 0.15, 1.00, 150.0, 30.0, 6000};

static double logistic(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

void world_perovskite_eval(const double x[WORLD_PEROVSKITE_N_INPUTS],
                           struct world_perovskite_truth *ret_truth)
{
    double fa = x[WORLD_PEROVSKITE_FA];
    double cs = x[WORLD_PEROVSKITE_CS];
    double iodide = x[WORLD_PEROVSKITE_IODIDE];
    double anneal_c = x[WORLD_PEROVSKITE_ANNEAL_C];
    double anneal_min = x[WORLD_PEROVSKITE_ANNEAL_MIN];
    double spin_rpm = x[WORLD_PEROVSKITE_SPIN_RPM];

    double xe = fa * (1 - cs);
    double br = 1 - iodide;
    double eg = 1.55 - 0.07 * xe + 0.05 * cs + 0.72 * br;
    double sq = 33.7 - 8.0 * (eg - 1.34) - 12.0 * (eg - 1.34) * (eg - 1.34);
    double alpha = logistic((0.92 + 2.0 * cs - xe) / 0.03);
    double seg = logistic((br - 0.35) / 0.04);
    double k = 0.6 * exp(0.05 * (anneal_c - 100 - 15 * xe));
    double conv = 1 - exp(-k * anneal_min);
    double d = 0.008 * exp(0.09 * (anneal_c - 100));
    double dec = exp(-d * anneal_min);
    double grain = 1 - 0.3 * exp(-(anneal_c - 80) / 10);
    double thick = 480 * sqrt(4000 / spin_rpm);
    double optics = (1 - exp(-thick / 180)) * exp(-(thick / 1500) * (thick / 1500));
    double cation = 1 - 0.36 * (xe - 0.80) * (xe - 0.80);
    double cesium = 1 + 0.04 * fmin(cs, 0.05) / 0.05 - 0.6 * fmax(0, cs - 0.08);
    double halide = 1 + 0.06 * exp(-((br - 0.15) / 0.08) * ((br - 0.15) / 0.08));

    ret_truth->pce_pct = 0.9332 * sq * alpha * (1 - 0.25 * seg) * conv * dec * grain * optics *
                         cation * cesium * halide;
    ret_truth->log10_t80_h = 2.6 + 0.8 * fmin(br, 0.3) / 0.3 - 1.2 * seg + 0.5 * xe +
                             0.35 * fmin(cs, 0.10) / 0.10 - 2.0 * fmax(0, cs - 0.10) / 0.05 -
                             0.8 * (1 - alpha) + 1.0 * (conv - 1) + 0.15 * (thick - 480) / 200 -
                             0.6 * (1 - dec);
    ret_truth->eg_ev = eg;
    ret_truth->thick_nm = thick;
}

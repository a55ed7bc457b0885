/* jv — figures of merit of a solar cell from one J-V sweep (docs/analysis.md §J-V).
 *
 * From voltage (V) and current density (mA/cm²) samples — in any order, in either sign
 * convention, with noise — and the irradiance (mW/cm²):
 *   Jsc  J at V = 0, from a least-squares line through the points within ±50 mV of 0
 *        (at least the 4 points nearest 0);
 *   Voc  V at J = 0, the root of a least-squares quadratic through up to 3 points on each
 *        side of the first sign change of J (linear interpolation as fallback);
 *   Pmax the maximum of P = V·J refined between samples: a least-squares cubic (quadratic
 *        when few points) through the points within a window around the best sample;
 *   FF = Pmax / (Voc·Jsc), PCE = 100·Pmax / irradiance.
 * The sign convention is decided by the sign of J at V = 0: generator convention (J > 0 at
 * short circuit) is used for every output; load-convention input is flipped.
 * References: hardware.md §4.1; Snaith et al. 2014 and Habisreutinger et al. 2018 on the
 * hysteresis index.
 *
 * Pure functions, no allocation visible to the caller, no global state.
 * Owner: the measurement-analysis helper (issue 4).
 */
#ifndef MODELS_JV_H
#define MODELS_JV_H

#include "common/ll_error.h"

#include <stdbool.h>
#include <stddef.h>

struct jv_figures {
    double jsc_ma_cm2;  /* > 0, generator convention */
    double voc_v;       /* > 0 */
    double pmax_mw_cm2; /* > 0 */
    double vmp_v;
    double jmp_ma_cm2;
    double ff;            /* Pmax / (Voc·Jsc) */
    double pce_pct;       /* 100·Pmax / irradiance */
    bool load_convention; /* true when the input had J < 0 at short circuit */
    double noise_ma_cm2;  /* residual sd of the line fit near V = 0 (noise estimate) */
    /* the single-diode fit (see jv_figures); parameters as for n·Vt at 298.15 K */
    bool diode_fit;        /* true when Jsc, Voc and Pmax come from the fitted model */
    double fit_rms_ma_cm2; /* RMS residual of the diode fit (0 when it did not converge) */
    double diode_n;
    double diode_j0_ma_cm2;
    double diode_rs_ohm_cm2;
    double diode_rsh_ohm_cm2;
};

/* Computes the figures of merit of one sweep by jv_figures_local(), then fits the
 * single-diode model (hardware.md §4.2; Lambert-W form, Levenberg–Marquardt on all points up
 * to just beyond Voc) and, when the model describes the curve within the noise and agrees
 * with the local numbers, reports the model's Jsc, Voc and maximum power point instead
 * (ret->diode_fit). The model averages the noise of every point, where local fits see only
 * a few; curves it does not describe keep the local numbers.
 *
 * jv_figures_local() uses only the local fits described at the top of this file.
 *
 * Both compute the figures of merit of one sweep of n >= 3 points (v[i], j[i]).
 * Returns 0 and fills *ret, or -EINVAL with a sentence in reterr (no field path; the
 * caller prefixes it) when the curve never crosses V = 0 ("never crosses V = 0: voltage
 * from 0.1 to 1.2 V"), has no photocurrent at V = 0, never crosses J = 0 (no Voc), has no
 * positive power, or irradiance is not > 0; -ENOMEM. */
int jv_figures(const double *v,
               const double *j,
               size_t n,
               double irradiance_mw_cm2,
               struct jv_figures *ret,
               struct ll_error *reterr);

int jv_figures_local(const double *v,
                     const double *j,
                     size_t n,
                     double irradiance_mw_cm2,
                     struct jv_figures *ret,
                     struct ll_error *reterr);

/* Hysteresis index HI = (PCE_rev − PCE_fwd) / PCE_rev (positive for "normal" hysteresis).
 * pce_rev_pct must be > 0; returns NAN otherwise. */
double jv_hysteresis_index(double pce_rev_pct, double pce_fwd_pct);

#endif

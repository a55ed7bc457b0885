/* synth — synthetic measurement data with known ground truth.
 *
 * Used by the analysis tests (the truth is exact, so the accuracy targets of issue 4 can be
 * checked) and by labsim to turn a world model's true values into raw station data.
 *
 *  - J-V: the single-diode model J = Jph − J0·[exp((V + J·Rs)/(n·Vt)) − 1] − (V + J·Rs)/Rsh,
 *    solved explicitly with the Lambert W function (Jain & Kapoor 2004; hardware.md §4.2),
 *    overflow-safe: for a large argument w + ln w = ln(arg) is solved by Newton. Generator
 *    convention: J > 0 at short circuit; J in mA/cm², R in Ω·cm², V in volts.
 *    synth_diode_truth() gives Jsc, Voc, the maximum power point, FF and PCE to ~1e-10 by
 *    root finding on the exact model, for comparison with the analysis.
 *  - Parameters for a target band gap and PCE (hardware.md §4.2 "making simulated curves
 *    consistent"): Voc = Eg − ΔV, FF, n and Rsh from a quality figure, J0 from Voc,
 *    then Rs and Jph solved so that the exact model has the target FF and PCE.
 *  - EIS: R_b‖CPE_b + [R_gb‖CPE_gb] + CPE_el + R_lead + jωL_lead (hardware.md §5.1),
 *    Z = Z' + jZ'' (Z'' < 0 for capacitive behaviour), with proportional Gaussian noise.
 *  - Degradation: η(t) = [1 − b·(1 − exp(−t/τ_b))]·exp(−(t/τ)^β), a burn-in of depth b and
 *    time constant τ_b times a stretched exponential; τ is chosen so that η(T80) = 0.8
 *    exactly (hardware.md §6).
 *
 * No global state: every random draw comes from the caller's gsl_rng. Library code: prints
 * nothing. Owner: the measurement-analysis helper (issue 4).
 */
#ifndef MODELS_SYNTH_H
#define MODELS_SYNTH_H

#include "common/ll_error.h"

#include <gsl/gsl_rng.h>
#include <stdbool.h>
#include <stddef.h>

#define SYNTH_K_B_EV 8.617333262e-5 /* Boltzmann constant, eV/K */

/* ---- J-V ------------------------------------------------------------------------------ */

struct synth_diode {
    double jph_ma_cm2;  /* photocurrent, mA/cm² (> 0) */
    double j0_ma_cm2;   /* dark saturation current, mA/cm² (> 0); 2.7e-17 A/cm² = 2.7e-14 */
    double ideality;    /* n, 1 .. 2 */
    double rs_ohm_cm2;  /* series resistance, Ω·cm² (>= 0) */
    double rsh_ohm_cm2; /* shunt resistance, Ω·cm² (> 0; INFINITY allowed) */
    double temp_k;      /* cell temperature, K (298.15 at standard test conditions) */
};

/* Exact figures of merit of a diode at an irradiance (mW/cm²), found by root finding on
 * the exact model (tolerance ~1e-12 V). */
struct synth_jv_truth {
    double jsc_ma_cm2;
    double voc_v;
    double vmp_v;
    double jmp_ma_cm2;
    double pmax_mw_cm2;
    double ff;
    double pce_pct;
};

/* Current density (mA/cm², generator convention) of diode d at voltage v_v. */
double synth_diode_current(const struct synth_diode *d, double v_v);

/* Exact Jsc, Voc, MPP, FF and PCE of d under irradiance_mw_cm2. Returns 0, or -EINVAL
 * (in reterr) when the parameters are invalid or give no positive power. */
int synth_diode_truth(const struct synth_diode *d,
                      double irradiance_mw_cm2,
                      struct synth_jv_truth *ret,
                      struct ll_error *reterr);

/* Chooses a physically consistent diode for a band gap (eV, 1.1 .. 2.5) and a target PCE (%)
 * at irradiance_mw_cm2 and 298.15 K. quality in [0, 1] (or a negative number: derived from
 * how close pce_pct is to the practical limit of the band gap) sets ΔV = Eg − Voc
 * (0.50 → 0.35 V), n (1.8 → 1.3), Rsh (300 → 5000 Ω·cm²) and the FF target (0.65 → 0.83).
 * J0 follows from Voc; Rs and Jph are solved so that the exact PCE equals pce_pct within
 * 1e-6 % absolute. Returns 0, -EINVAL for invalid input, -ERANGE (in reterr) when the PCE
 * cannot be reached at this band gap without Jsc above 95 % of the radiative limit. */
int synth_diode_for_target(double band_gap_ev,
                           double pce_pct,
                           double irradiance_mw_cm2,
                           double quality,
                           struct synth_diode *ret,
                           struct ll_error *reterr);

/* Approximate Shockley–Queisser short-circuit current (mA/cm²) under AM1.5G, 100 mW/cm²,
 * for a band gap in eV (tabulated 1.0 .. 3.0 eV, linear interpolation; ~2 % accuracy). */
double synth_sq_jsc_ma_cm2(double band_gap_ev);

/* A diode whose maximum power is (1 − hi)·that of d (hi in [0, 0.9)): Rs·(1 + s) and
 * Rsh/(1 + s) with s solved by root finding, everything else equal. Models the lower
 * efficiency of the forward sweep of a hysteretic cell. Returns 0 or -EINVAL / -ERANGE. */
int synth_diode_hysteresis(const struct synth_diode *d,
                           double hi,
                           struct synth_diode *ret,
                           struct ll_error *reterr);

struct synth_sweep_options {
    double v_start_v;     /* first voltage of the sweep as run, e.g. 1.2 for a reverse sweep */
    double v_end_v;       /* last voltage, e.g. -0.1 */
    size_t n_points;      /* >= 2 */
    double hysteresis;    /* hysteresis index HI in [0, 0.9): the sweep is that of
                             synth_diode_hysteresis(d, HI), so its PCE is (1 − HI)·PCE(d);
                             use 0 for the reverse sweep and HI for the forward one */
    double noise_rel;     /* Gaussian current noise, sd = noise_rel · Jph (e.g. 0.005) */
    double v_quantum_v;   /* voltage rounding of the reported values (0 = none, e.g. 1e-3) */
    bool load_convention; /* report J < 0 at short circuit (source-measure-unit convention) */
};

/* Fills v[n_points] and j[n_points] (mA/cm²) with a sweep of d in the order it was run;
 * rng may be NULL only when noise_rel == 0. The current is that of the exact model at the
 * reported (quantised) voltage, plus noise. Returns 0 or -EINVAL. */
int synth_jv_sweep(const struct synth_diode *d,
                   const struct synth_sweep_options *opt,
                   gsl_rng *rng,
                   double *ret_v,
                   double *ret_j);

/* ---- impedance ------------------------------------------------------------------------ */

struct synth_eis_circuit {
    double r_bulk_ohm; /* R_b > 0 */
    double q_bulk;     /* CPE_b: Q (S·s^n) > 0 */
    double n_bulk;     /* CPE_b: n in (0, 1] */
    double r_gb_ohm;   /* R_gb; 0 = no grain-boundary element */
    double q_gb;
    double n_gb;
    double q_el; /* electrode CPE; 0 = none (non-blocking) */
    double n_el;
    double r_lead_ohm; /* series lead resistance (>= 0) */
    double l_lead_h;   /* series lead inductance (>= 0), adds +jωL */
};

/* Z = re + j·im of the circuit at f_hz. */
void synth_eis_impedance(const struct synth_eis_circuit *c,
                         double f_hz,
                         double *ret_re_ohm,
                         double *ret_im_ohm);

/* Spectrum at n frequencies; each of Z', Z'' gets Gaussian noise of sd noise_rel·|Z|.
 * rng may be NULL only when noise_rel == 0. Returns 0 or -EINVAL. */
int synth_eis_spectrum(const struct synth_eis_circuit *c,
                       const double *f_hz,
                       size_t n,
                       double noise_rel,
                       gsl_rng *rng,
                       double *ret_re_ohm,
                       double *ret_im_ohm);

/* n log-spaced frequencies from f_high_hz down to f_low_hz (both included), as analysers
 * sweep. Returns 0 or -EINVAL (n < 2, bad range). */
int synth_log_frequencies(double f_high_hz, double f_low_hz, size_t n, double *ret_f_hz);

/* A pellet circuit from physical values: R_b = L/(σ_b·A), bulk capacitance ε0·εr·A/L with
 * n_b = 0.95 (Q from C_eff = (R^(1−n)·Q)^(1/n)), R_gb = gb_ratio·R_b with a capacitance 100×
 * the bulk one and n_gb = 0.90 (gb_ratio 0 = none), a blocking electrode Q_el = 1e-6·A,
 * n_el = 0.85, no lead. Returns 0 or -EINVAL. */
int synth_eis_pellet(double sigma_bulk_s_cm,
                     double gb_ratio,
                     double thickness_cm,
                     double area_cm2,
                     double eps_r,
                     struct synth_eis_circuit *ret);

/* ---- degradation ---------------------------------------------------------------------- */

struct synth_degradation {
    double burn_in;       /* b: depth of the burn-in loss, 0 .. 0.15 */
    double burn_in_tau_h; /* τ_b, h (> 0; unused when burn_in == 0) */
    double tau_h;         /* τ of the stretched exponential, h */
    double beta;          /* β, 0.3 .. 3 */
};

/* Normalised efficiency at t_h. */
double synth_degradation_value(const struct synth_degradation *d, double t_h);

/* A degradation curve with the given exact T80: solves τ so that η(t80_h) = 0.8.
 * Returns 0, or -EINVAL when the burn-in alone reaches 0.8 or values are out of range. */
int synth_degradation_for_t80(
    double t80_h, double burn_in, double burn_in_tau_h, double beta, struct synth_degradation *ret);

/* Fills time_h[i] = i·t_end_h/(n−1) and pce[i] = η(time_h[i]) + N(0, noise_sd) for i < n
 * (n >= 2); rng may be NULL when noise_sd == 0. Returns 0 or -EINVAL. */
int synth_degradation_series(const struct synth_degradation *d,
                             double t_end_h,
                             size_t n,
                             double noise_sd,
                             gsl_rng *rng,
                             double *ret_time_h,
                             double *ret_pce);

#endif

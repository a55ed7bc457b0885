/* eis — equivalent-circuit fit of an impedance spectrum of an ion-conducting pellet, the
 * conductivities it gives, and the Arrhenius law over temperatures (docs/analysis.md §EIS).
 *
 * Circuit (hardware.md §5.1):  Z(ω) = R_b‖CPE_b + [R_gb‖CPE_gb] + CPE_el [+ jωL],
 * with Z_RQ = R / (1 + R·Q·(jω)^n) and Z_CPE = 1 / (Q·(jω)^n). Four candidate models are
 * fitted and one is selected by the Bayesian information criterion:
 *   bulk arc resolved:   R_b‖Q_b + Q_el          R_b‖Q_b + R_gb‖Q_gb + Q_el
 *   bulk arc above the window (R_b seen only as the high-frequency intercept):
 *                        R_b + Q_el              R_b + R_gb‖Q_gb + Q_el
 * A series inductance L is added to every model when Z'' > 0 at the highest frequencies.
 * Fits are complex nonlinear least squares (GSL multifit_nlinear, Levenberg–Marquardt
 * trust region, analytic Jacobian) on the 2N residuals (Z'_fit − Z')/|Z| and
 * (Z''_fit − Z'')/|Z| (modulus weighting), in parameters ln R, ln Q, logit n, ln L, from
 * automatic initial guesses: the high-frequency intercept, the apex frequencies of the arcs
 * (ω_apex·R·Q = 1 with n = 0.9), the minimum of −Z'' between arcs and spike (R_total) and the
 * slope of the low-frequency spike (n_el, Q_el).
 * R_b is "resolved" when a model with the bulk CPE wins and the fitted bulk apex frequency
 * lies inside the measured window; otherwise it is "estimated from the high-frequency
 * intercept" (hardware.md §5.4). Arcs are assigned by capacitance (see EIS_BULK_MAX_F_CM).
 * The standard error of R_b and R_gb includes the spread over the models within ΔBIC < 10
 * of the best: when the data cannot say which arc is which, the uncertainty says so.
 *
 * Pure functions, no global state. Owner: the measurement-analysis helper (issue 4).
 */
#ifndef MODELS_EIS_H
#define MODELS_EIS_H

#include "common/ll_error.h"

#include <stdbool.h>
#include <stddef.h>

#define EIS_POOR_FIT_RESIDUAL 0.05 /* fit_residual above this gets a "poor fit" warning */
/* Largest specific capacitance C·L/A (F/cm) of an arc assigned to the bulk: ε0·εr is
 * 4.4e-12 F/cm for εr = 50; grain boundaries are 1e-11 .. 1e-8 F (Irvine, Sinclair & West
 * 1990, per unit cell constant). An arc with more is not the bulk. */
#define EIS_BULK_MAX_F_CM 3e-11
#define EIS_GB_MIN_F_CM 1e-11 /* and the least of an arc assigned to grain boundaries */

struct eis_fit {
    bool bulk_resolved; /* R_b from a fitted bulk arc (true) or the HF intercept (false) */
    bool gb_fitted;     /* the selected model has a grain-boundary element */
    bool lead_fitted;   /* the selected model has a series inductance */
    const char *model;  /* static text naming the selected circuit */
    double r_bulk_ohm;
    double r_bulk_sd_ohm; /* standard error from the fit's covariance */
    double q_bulk;        /* NAN when the bulk arc was not resolved */
    double n_bulk;
    double f_apex_bulk_hz; /* (R_b·Q_b)^(−1/n_b) / 2π, NAN when not resolved */
    double c_bulk_f;       /* effective capacitance (R_b^(1−n)·Q_b)^(1/n), NAN likewise */
    double r_gb_ohm;       /* 0 when no grain-boundary element */
    double r_gb_sd_ohm;
    double q_gb;
    double n_gb;
    double q_el; /* electrode CPE */
    double n_el;
    double l_lead_h;     /* 0 when not fitted */
    double fit_residual; /* RMS of the modulus-weighted residuals (≈ relative noise) */
    double bic;          /* of the selected model */
    int iterations;      /* of the selected fit */
};

/* Fits one spectrum of n >= 5 points (any frequency order; z_imag_ohm is Z'' as measured,
 * negative for capacitive behaviour). cell_constant_cm_inv = L/A of the pellet (1/cm), or 0
 * when unknown: with it, an arc whose capacitance is above EIS_BULK_MAX_F_CM·A/L is not
 * taken for the bulk (it is a grain-boundary arc with the bulk above the window). In every
 * model the bulk arc is the one with the smaller capacitance. Returns 0 and fills *ret, or -EINVAL
 * with a sentence in reterr when the data are unusable (non-positive frequencies, no finite values,
 * every fit failed) or -ENOMEM. A poor fit is not an error: check ret->fit_residual. */
int eis_fit_spectrum(const double *frequency_hz,
                     const double *z_real_ohm,
                     const double *z_imag_ohm,
                     size_t n,
                     double cell_constant_cm_inv,
                     struct eis_fit *ret,
                     struct ll_error *reterr);

/* Lin-KK validity test (Boukamp 1995; Schönleber et al., Electrochim. Acta 131, 20 (2014)):
 * a weighted linear least-squares fit of R0 + Σ R_k/(1 + jωτ_k) + jωL + 1/(jωC), with three
 * time constants τ_k per decade log-spaced over the measured 1/ω range (at most n/3 of them),
 * which can describe any spectrum that obeys the Kramers–Kronig relations (causal, linear,
 * stable). Stores the RMS of the modulus-weighted residuals in *ret_residual: about the
 * relative noise for valid data, larger for drift or non-linearity. Returns 0, -EINVAL for
 * fewer than 5 points or invalid values, -ENOMEM. */
int eis_kk_residual(const double *frequency_hz,
                    const double *z_real_ohm,
                    const double *z_imag_ohm,
                    size_t n,
                    double *ret_residual,
                    struct ll_error *reterr);

/* Conductivity σ = L / (R·A) in S/cm for thickness L (cm), area A (cm²), resistance R (Ω);
 * NAN unless all three are > 0. */
double eis_conductivity(double thickness_cm, double area_cm2, double r_ohm);

struct eis_arrhenius {
    double ea_ev;           /* activation energy */
    double ea_sd_ev;        /* its standard error (from the residual scatter) */
    double log10_sigma0;    /* log10 of the prefactor σ0 in S/cm */
    double log10_sigma0_sd; /* its standard error */
    size_t n;               /* temperatures used */
};

/* Arrhenius fit σ = σ0·exp(−Ea/(k_B·T)) (not the σT form; docs/analysis.md says why) by
 * least squares of ln σ against 1/(k_B·T) over n >= 3 distinct temperatures (°C). Non-finite
 * or non-positive σ are an error. Returns 0, or -EINVAL with a sentence in reterr. */
int eis_arrhenius_fit(const double *temp_c,
                      const double *sigma_s_cm,
                      size_t n,
                      struct eis_arrhenius *ret,
                      struct ll_error *reterr);

#endif

/* synth — see synth.h. Units inside the diode code: A/cm² and Ω·cm² (so V = J·R); the
 * public functions take and give mA/cm².
 */
#include "models/synth.h"

#include <errno.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_min.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_roots.h>
#include <gsl/gsl_sf_lambert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MA 1e-3 /* mA/cm² -> A/cm² */

/* ---- J-V ------------------------------------------------------------------------------ */

static double thermal_voltage(double temp_k)
{
    return SYNTH_K_B_EV * temp_k;
}

/* W0(exp(log_x)) without forming exp(log_x) when it would overflow: for large L the
 * solution of w + ln w = L by Newton from w = L − ln L (Roberts & Valluri). */
static double lambert_w0_exp(double log_x)
{
    if (log_x < 600.0)
        return gsl_sf_lambert_W0(exp(log_x));
    double w = log_x - log(log_x);
    for (int i = 0; i < 50; i++) {
        double f = w + log(w) - log_x;
        double step = f / (1.0 + 1.0 / w);
        w -= step;
        if (fabs(step) <= 1e-15 * w)
            break;
    }
    return w;
}

double synth_diode_current(const struct synth_diode *d, double v_v)
{
    double a = d->ideality * thermal_voltage(d->temp_k);
    double jph = d->jph_ma_cm2 * MA, j0 = d->j0_ma_cm2 * MA;
    double rs = d->rs_ohm_cm2, rsh = d->rsh_ohm_cm2;
    double j;

    if (rs <= 0.0) {
        j = jph - j0 * expm1(v_v / a) - (isinf(rsh) ? 0.0 : v_v / rsh);
    } else if (isinf(rsh)) {
        double log_x = log(rs * j0 / a) + (rs * (jph + j0) + v_v) / a;
        j = jph + j0 - (a / rs) * lambert_w0_exp(log_x);
    } else {
        double log_x = log(rs * j0 * rsh / (a * (rs + rsh))) +
                       rsh * (rs * (jph + j0) + v_v) / (a * (rs + rsh));
        j = (rsh * (jph + j0) - v_v) / (rs + rsh) - (a / rs) * lambert_w0_exp(log_x);
    }
    return j / MA;
}

static bool diode_valid(const struct synth_diode *d)
{
    return d->jph_ma_cm2 > 0.0 && isfinite(d->jph_ma_cm2) && d->j0_ma_cm2 > 0.0 &&
           isfinite(d->j0_ma_cm2) && d->ideality > 0.0 && d->ideality < 10.0 &&
           d->rs_ohm_cm2 >= 0.0 && isfinite(d->rs_ohm_cm2) && d->rsh_ohm_cm2 > 0.0 &&
           d->temp_k > 0.0 && isfinite(d->temp_k);
}

static double current_fn(double v, void *params)
{
    return synth_diode_current(params, v);
}

static double neg_power_fn(double v, void *params)
{
    return -v * synth_diode_current(params, v);
}

/* Voc by Brent's method: J is decreasing in V, J(0) > 0. */
static int diode_voc(const struct synth_diode *d, double *ret)
{
    double a = d->ideality * thermal_voltage(d->temp_k);
    double hi = a * log1p(d->jph_ma_cm2 / d->j0_ma_cm2) + 0.05;
    gsl_function fn = {current_fn, (void *)(uintptr_t)d};
    gsl_root_fsolver *s;
    int status = GSL_CONTINUE, r = 0;

    if (!(synth_diode_current(d, 0.0) > 0.0) || !(synth_diode_current(d, hi) < 0.0))
        return -EINVAL;
    s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (s == NULL)
        return -ENOMEM;
    if (gsl_root_fsolver_set(s, &fn, 0.0, hi) != GSL_SUCCESS) {
        r = -EINVAL;
        goto out;
    }
    for (int i = 0; i < 200 && status == GSL_CONTINUE; i++) {
        if (gsl_root_fsolver_iterate(s) != GSL_SUCCESS) {
            r = -EINVAL;
            goto out;
        }
        status = gsl_root_test_interval(
            gsl_root_fsolver_x_lower(s), gsl_root_fsolver_x_upper(s), 1e-14, 0.0);
    }
    *ret = gsl_root_fsolver_root(s);
out:
    gsl_root_fsolver_free(s);
    return r;
}

/* Maximum power point in (0, voc): a grid finds a bracket, Brent's minimiser refines it. */
static int diode_mpp(const struct synth_diode *d, double voc, double *ret_v, double *ret_p)
{
    enum { GRID = 400 };
    gsl_function fn = {neg_power_fn, (void *)(uintptr_t)d};
    gsl_min_fminimizer *s;
    size_t best = 1;
    double best_p = -1.0;
    int r = 0, status = GSL_CONTINUE;

    for (size_t i = 1; i < GRID; i++) {
        double v = voc * (double)i / GRID, p = v * synth_diode_current(d, v);
        if (p > best_p) {
            best_p = p;
            best = i;
        }
    }
    if (!(best_p > 0.0))
        return -EINVAL;
    s = gsl_min_fminimizer_alloc(gsl_min_fminimizer_brent);
    if (s == NULL)
        return -ENOMEM;
    double lo = voc * (double)(best - 1) / GRID, hi = voc * (double)(best + 1) / GRID;
    double m = voc * (double)best / GRID;
    if (gsl_min_fminimizer_set_with_values(
            s, &fn, m, -best_p, lo, neg_power_fn(lo, fn.params), hi, neg_power_fn(hi, fn.params)) !=
        GSL_SUCCESS) {
        /* the grid maximum is at a grid point whose neighbours are equal: take it */
        *ret_v = m;
        *ret_p = best_p;
        goto out;
    }
    for (int i = 0; i < 200 && status == GSL_CONTINUE; i++) {
        if (gsl_min_fminimizer_iterate(s) != GSL_SUCCESS) {
            r = -EINVAL;
            goto out;
        }
        status = gsl_min_test_interval(
            gsl_min_fminimizer_x_lower(s), gsl_min_fminimizer_x_upper(s), 1e-12, 0.0);
    }
    *ret_v = gsl_min_fminimizer_x_minimum(s);
    *ret_p = -gsl_min_fminimizer_f_minimum(s);
out:
    gsl_min_fminimizer_free(s);
    return r;
}

int synth_diode_truth(const struct synth_diode *d,
                      double irradiance_mw_cm2,
                      struct synth_jv_truth *ret,
                      struct ll_error *reterr)
{
    double voc, vmp, pmax;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!diode_valid(d) || !(irradiance_mw_cm2 > 0.0))
        return ll_error_set(reterr, -EINVAL, "invalid diode parameters or irradiance");
    r = diode_voc(d, &voc);
    if (r < 0)
        return ll_error_set(reterr, r, "the diode has no open-circuit voltage");
    r = diode_mpp(d, voc, &vmp, &pmax);
    if (r < 0)
        return ll_error_set(reterr, r, "the diode gives no positive power");
    ret->jsc_ma_cm2 = synth_diode_current(d, 0.0);
    ret->voc_v = voc;
    ret->vmp_v = vmp;
    ret->pmax_mw_cm2 = pmax;
    ret->jmp_ma_cm2 = pmax / vmp;
    ret->ff = pmax / (voc * ret->jsc_ma_cm2);
    ret->pce_pct = 100.0 * pmax / irradiance_mw_cm2;
    return 0;
}

/* Shockley–Queisser short-circuit current under AM1.5G at 100 mW/cm², mA/cm². Values as
 * commonly tabulated (e.g. Rühle, Sol. Energy 130, 139 (2016)), rounded; not re-derived
 * here, accurate to a few per cent, used only as a plausibility ceiling. */
static const double sq_table[][2] = {
    {1.0, 48.0},
    {1.1, 44.0},
    {1.2, 40.0},
    {1.3, 36.3},
    {1.4, 32.5},
    {1.5, 29.0},
    {1.6, 25.8},
    {1.7, 22.8},
    {1.8, 20.0},
    {1.9, 17.4},
    {2.0, 15.0},
    {2.2, 11.0},
    {2.4, 7.8 },
    {2.6, 5.2 },
    {3.0, 1.8 },
};

double synth_sq_jsc_ma_cm2(double band_gap_ev)
{
    size_t n = sizeof(sq_table) / sizeof(sq_table[0]);

    if (!(band_gap_ev >= sq_table[0][0]) || !(band_gap_ev <= sq_table[n - 1][0]))
        return (double)NAN;
    for (size_t i = 1; i < n; i++) {
        if (band_gap_ev <= sq_table[i][0]) {
            double t = (band_gap_ev - sq_table[i - 1][0]) / (sq_table[i][0] - sq_table[i - 1][0]);
            return sq_table[i - 1][1] + t * (sq_table[i][1] - sq_table[i - 1][1]);
        }
    }
    return sq_table[n - 1][1];
}

struct ff_target {
    struct synth_diode d;
    double irradiance;
    double ff;
};

static double ff_residual(double rs, void *params)
{
    struct ff_target *t = params;
    struct synth_jv_truth truth;

    t->d.rs_ohm_cm2 = rs;
    if (synth_diode_truth(&t->d, t->irradiance, &truth, NULL) < 0)
        return -1.0;
    return truth.ff - t->ff;
}

/* Rs in [0, rs_max] that gives fill factor t->ff (FF falls with Rs); 0 when even Rs = 0
 * gives less, rs_max when even rs_max gives more. */
static double solve_rs(struct ff_target *t, double rs_max)
{
    gsl_function fn = {ff_residual, t};
    gsl_root_fsolver *s;
    double rs;
    int status = GSL_CONTINUE;

    if (ff_residual(0.0, t) <= 0.0)
        return 0.0;
    if (ff_residual(rs_max, t) >= 0.0)
        return rs_max;
    s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (s == NULL || gsl_root_fsolver_set(s, &fn, 0.0, rs_max) != GSL_SUCCESS) {
        gsl_root_fsolver_free(s);
        return 0.0;
    }
    for (int i = 0; i < 100 && status == GSL_CONTINUE; i++) {
        if (gsl_root_fsolver_iterate(s) != GSL_SUCCESS)
            break;
        status = gsl_root_test_interval(
            gsl_root_fsolver_x_lower(s), gsl_root_fsolver_x_upper(s), 1e-9, 0.0);
    }
    rs = gsl_root_fsolver_root(s);
    gsl_root_fsolver_free(s);
    return rs;
}

int synth_diode_for_target(double band_gap_ev,
                           double pce_pct,
                           double irradiance_mw_cm2,
                           double quality,
                           struct synth_diode *ret,
                           struct ll_error *reterr)
{
    const double temp_k = 298.15, rs_max = 30.0;
    double sq = synth_sq_jsc_ma_cm2(band_gap_ev);
    double q, dv, voc, ff, a;
    struct ff_target t;
    struct synth_jv_truth truth;

    memset(ret, 0, sizeof(*ret));
    if (!isfinite(sq) || !(band_gap_ev >= 1.1 && band_gap_ev <= 2.5))
        return ll_error_set(reterr, -EINVAL, "band gap %g eV outside 1.1 .. 2.5 eV", band_gap_ev);
    if (!(pce_pct > 0.0) || !isfinite(pce_pct) || !(irradiance_mw_cm2 > 0.0) ||
        !isfinite(irradiance_mw_cm2) || !(quality <= 1.0))
        return ll_error_set(reterr, -EINVAL, "PCE, irradiance must be > 0 and quality <= 1");
    sq *= irradiance_mw_cm2 / 100.0;
    q = quality;
    if (q < 0.0) {
        /* the PCE of a q = 1 cell at this band gap with Jsc at 95 % of the limit */
        double pce_best = 100.0 * 0.95 * sq * (band_gap_ev - 0.35) * 0.83 / irradiance_mw_cm2;
        q = pce_pct / pce_best;
        q = q < 0.0 ? 0.0 : (q > 1.0 ? 1.0 : q);
    }
    dv = 0.50 - 0.15 * q;
    ff = 0.65 + 0.18 * q;
    t.d.ideality = 1.8 - 0.5 * q;
    t.d.rsh_ohm_cm2 = 300.0 + 4700.0 * q;
    t.d.temp_k = temp_k;
    a = t.d.ideality * thermal_voltage(temp_k);
    voc = band_gap_ev - dv + a * log(irradiance_mw_cm2 / 100.0);
    if (!(voc > 0.1))
        return ll_error_set(reterr, -ERANGE, "no positive Voc at this band gap and irradiance");
    t.d.jph_ma_cm2 = pce_pct * irradiance_mw_cm2 / 100.0 / (voc * ff);
    t.irradiance = irradiance_mw_cm2;
    t.ff = ff;
    for (int it = 0; it < 60; it++) {
        /* J0 from Voc exactly: Jph − J0·(exp(Voc/a) − 1) − Voc/Rsh = 0 (J = 0 at Voc) */
        double j_shunt = voc / t.d.rsh_ohm_cm2 / MA;
        if (!(t.d.jph_ma_cm2 > j_shunt))
            return ll_error_set(reterr, -ERANGE, "PCE %g %% too low for a shunted cell", pce_pct);
        t.d.j0_ma_cm2 = (t.d.jph_ma_cm2 - j_shunt) / expm1(voc / a);
        t.d.rs_ohm_cm2 = solve_rs(&t, rs_max);
        if (synth_diode_truth(&t.d, irradiance_mw_cm2, &truth, reterr) < 0)
            return -ERANGE;
        if (fabs(truth.pce_pct - pce_pct) < 1e-9 * pce_pct)
            break;
        t.d.jph_ma_cm2 *= pce_pct / truth.pce_pct;
    }
    if (!(fabs(truth.pce_pct - pce_pct) < 1e-6))
        return ll_error_set(reterr, -ERANGE, "PCE %g %% could not be matched", pce_pct);
    if (truth.jsc_ma_cm2 > 0.95 * sq)
        return ll_error_set(reterr,
                            -ERANGE,
                            "PCE %g %% at band gap %g eV needs Jsc %.1f mA/cm², above 95 %% of "
                            "the radiative limit (%.1f)",
                            pce_pct,
                            band_gap_ev,
                            truth.jsc_ma_cm2,
                            sq);
    *ret = t.d;
    return 0;
}

struct hyst_target {
    struct synth_diode base, d;
    double p_target;
};

static double hyst_apply(const struct synth_diode *base, double s, struct synth_diode *ret)
{
    struct synth_jv_truth truth;

    *ret = *base;
    ret->rs_ohm_cm2 = base->rs_ohm_cm2 * (1.0 + s) + 0.5 * s; /* also when Rs = 0 */
    ret->rsh_ohm_cm2 = base->rsh_ohm_cm2 / (1.0 + s);
    if (synth_diode_truth(ret, 100.0, &truth, NULL) < 0)
        return 0.0;
    return truth.pmax_mw_cm2;
}

static double hyst_residual(double s, void *params)
{
    struct hyst_target *t = params;

    return hyst_apply(&t->base, s, &t->d) - t->p_target;
}

int synth_diode_hysteresis(const struct synth_diode *d,
                           double hi,
                           struct synth_diode *ret,
                           struct ll_error *reterr)
{
    struct hyst_target t;
    struct synth_jv_truth truth;
    gsl_function fn = {hyst_residual, &t};
    gsl_root_fsolver *s;
    double s_hi = 1.0;
    int status = GSL_CONTINUE, r;

    *ret = *d;
    if (!(hi >= 0.0 && hi < 0.9))
        return ll_error_set(reterr, -EINVAL, "hysteresis index %g outside [0, 0.9)", hi);
    r = synth_diode_truth(d, 100.0, &truth, reterr);
    if (r < 0)
        return r;
    if (hi == 0.0)
        return 0;
    t.base = *d;
    t.p_target = (1.0 - hi) * truth.pmax_mw_cm2;
    while (hyst_residual(s_hi, &t) > 0.0) {
        s_hi *= 2.0;
        if (s_hi > 1e6)
            return ll_error_set(reterr, -ERANGE, "hysteresis index %g not reachable", hi);
    }
    s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (s == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    if (gsl_root_fsolver_set(s, &fn, 0.0, s_hi) != GSL_SUCCESS) {
        gsl_root_fsolver_free(s);
        return ll_error_set(reterr, -ERANGE, "hysteresis index %g not reachable", hi);
    }
    for (int i = 0; i < 200 && status == GSL_CONTINUE; i++) {
        if (gsl_root_fsolver_iterate(s) != GSL_SUCCESS)
            break;
        status = gsl_root_test_interval(
            gsl_root_fsolver_x_lower(s), gsl_root_fsolver_x_upper(s), 1e-13, 1e-12);
    }
    hyst_apply(d, gsl_root_fsolver_root(s), ret);
    gsl_root_fsolver_free(s);
    return 0;
}

int synth_jv_sweep(const struct synth_diode *d,
                   const struct synth_sweep_options *opt,
                   gsl_rng *rng,
                   double *ret_v,
                   double *ret_j)
{
    struct synth_diode dd;
    int r;

    if (!diode_valid(d) || opt->n_points < 2 || !isfinite(opt->v_start_v) ||
        !isfinite(opt->v_end_v) || !(opt->noise_rel >= 0.0) ||
        (opt->noise_rel > 0.0 && rng == NULL) || !(opt->v_quantum_v >= 0.0))
        return -EINVAL;
    r = synth_diode_hysteresis(d, opt->hysteresis, &dd, NULL);
    if (r < 0)
        return r;
    for (size_t i = 0; i < opt->n_points; i++) {
        double v = opt->v_start_v +
                   (opt->v_end_v - opt->v_start_v) * (double)i / (double)(opt->n_points - 1);
        if (opt->v_quantum_v > 0.0)
            v = opt->v_quantum_v * nearbyint(v / opt->v_quantum_v);
        double j = synth_diode_current(&dd, v);
        if (opt->noise_rel > 0.0)
            j += gsl_ran_gaussian(rng, opt->noise_rel * d->jph_ma_cm2);
        ret_v[i] = v;
        ret_j[i] = opt->load_convention ? -j : j;
    }
    return 0;
}

/* ---- impedance ------------------------------------------------------------------------ */

/* (jω)^n = ω^n (cos(nπ/2) + j sin(nπ/2)) */
static void jw_pow(double w, double n, double *re, double *im)
{
    double m = pow(w, n);

    *re = m * cos(n * M_PI_2);
    *im = m * sin(n * M_PI_2);
}

/* R / (1 + R·Q·(jω)^n) */
static void rq_element(double r, double q, double n, double w, double *re, double *im)
{
    double pr, pi;

    jw_pow(w, n, &pr, &pi);
    double dr = 1.0 + r * q * pr, di = r * q * pi, den = dr * dr + di * di;
    *re = r * dr / den;
    *im = -r * di / den;
}

void synth_eis_impedance(const struct synth_eis_circuit *c,
                         double f_hz,
                         double *ret_re_ohm,
                         double *ret_im_ohm)
{
    double w = 2.0 * M_PI * f_hz, re, im, zr, zi;

    rq_element(c->r_bulk_ohm, c->q_bulk, c->n_bulk, w, &re, &im);
    if (c->r_gb_ohm > 0.0) {
        rq_element(c->r_gb_ohm, c->q_gb, c->n_gb, w, &zr, &zi);
        re += zr;
        im += zi;
    }
    if (c->q_el > 0.0) {
        /* 1 / (Q (jω)^n) */
        double pr, pi;
        jw_pow(w, c->n_el, &pr, &pi);
        double den = c->q_el * (pr * pr + pi * pi);
        re += pr / den;
        im += -pi / den;
    }
    re += c->r_lead_ohm;
    im += w * c->l_lead_h;
    *ret_re_ohm = re;
    *ret_im_ohm = im;
}

int synth_eis_spectrum(const struct synth_eis_circuit *c,
                       const double *f_hz,
                       size_t n,
                       double noise_rel,
                       gsl_rng *rng,
                       double *ret_re_ohm,
                       double *ret_im_ohm)
{
    if (!(c->r_bulk_ohm > 0.0) || !(c->q_bulk > 0.0) || !(c->n_bulk > 0.0 && c->n_bulk <= 1.0) ||
        !(noise_rel >= 0.0) || (noise_rel > 0.0 && rng == NULL))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!(f_hz[i] > 0.0))
            return -EINVAL;
        synth_eis_impedance(c, f_hz[i], &ret_re_ohm[i], &ret_im_ohm[i]);
        if (noise_rel > 0.0) {
            double mod = hypot(ret_re_ohm[i], ret_im_ohm[i]);
            ret_re_ohm[i] += gsl_ran_gaussian(rng, noise_rel * mod);
            ret_im_ohm[i] += gsl_ran_gaussian(rng, noise_rel * mod);
        }
    }
    return 0;
}

int synth_log_frequencies(double f_high_hz, double f_low_hz, size_t n, double *ret_f_hz)
{
    if (n < 2 || !(f_low_hz > 0.0) || !(f_high_hz > f_low_hz) || !isfinite(f_high_hz))
        return -EINVAL;
    double lh = log10(f_high_hz), ll = log10(f_low_hz);
    for (size_t i = 0; i < n; i++)
        ret_f_hz[i] = pow(10.0, lh + (ll - lh) * (double)i / (double)(n - 1));
    return 0;
}

int synth_eis_pellet(double sigma_bulk_s_cm,
                     double gb_ratio,
                     double thickness_cm,
                     double area_cm2,
                     double eps_r,
                     struct synth_eis_circuit *ret)
{
    const double eps0_f_cm = 8.8541878128e-14;

    memset(ret, 0, sizeof(*ret));
    if (!(sigma_bulk_s_cm > 0.0) || !(gb_ratio >= 0.0) || !(thickness_cm > 0.0) ||
        !(area_cm2 > 0.0) || !(eps_r > 0.0))
        return -EINVAL;
    double c_b = eps0_f_cm * eps_r * area_cm2 / thickness_cm;
    ret->r_bulk_ohm = thickness_cm / (sigma_bulk_s_cm * area_cm2);
    ret->n_bulk = 0.95;
    /* C_eff = (R^(1-n) Q)^(1/n)  =>  Q = C^n / R^(1-n) */
    ret->q_bulk = pow(c_b, ret->n_bulk) / pow(ret->r_bulk_ohm, 1.0 - ret->n_bulk);
    if (gb_ratio > 0.0) {
        ret->r_gb_ohm = gb_ratio * ret->r_bulk_ohm;
        ret->n_gb = 0.90;
        ret->q_gb = pow(100.0 * c_b, ret->n_gb) / pow(ret->r_gb_ohm, 1.0 - ret->n_gb);
    }
    ret->q_el = 1e-6 * area_cm2;
    ret->n_el = 0.85;
    return 0;
}

/* ---- degradation ---------------------------------------------------------------------- */

double synth_degradation_value(const struct synth_degradation *d, double t_h)
{
    double burn = d->burn_in > 0.0 ? d->burn_in * -expm1(-t_h / d->burn_in_tau_h) : 0.0;

    return (1.0 - burn) * exp(-pow(t_h / d->tau_h, d->beta));
}

int synth_degradation_for_t80(
    double t80_h, double burn_in, double burn_in_tau_h, double beta, struct synth_degradation *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (!(t80_h > 0.0) || !isfinite(t80_h) || !(burn_in >= 0.0 && burn_in < 0.2) ||
        (burn_in > 0.0 && !(burn_in_tau_h > 0.0)) || !(beta >= 0.3 && beta <= 3.0))
        return -EINVAL;
    ret->burn_in = burn_in;
    ret->burn_in_tau_h = burn_in_tau_h;
    ret->beta = beta;
    /* (1 − burn(T80))·exp(−(T80/τ)^β) = 0.8  =>  (T80/τ)^β = ln((1 − burn)/0.8) */
    double burn = burn_in > 0.0 ? burn_in * -expm1(-t80_h / burn_in_tau_h) : 0.0;
    double x = log((1.0 - burn) / 0.8);
    if (!(x > 0.0))
        return -EINVAL;
    ret->tau_h = t80_h / pow(x, 1.0 / beta);
    return 0;
}

int synth_degradation_series(const struct synth_degradation *d,
                             double t_end_h,
                             size_t n,
                             double noise_sd,
                             gsl_rng *rng,
                             double *ret_time_h,
                             double *ret_pce)
{
    if (n < 2 || !(t_end_h > 0.0) || !(noise_sd >= 0.0) || (noise_sd > 0.0 && rng == NULL) ||
        !(d->tau_h > 0.0))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        double t = t_end_h * (double)i / (double)(n - 1);
        ret_time_h[i] = t;
        ret_pce[i] = synth_degradation_value(d, t);
        if (noise_sd > 0.0)
            ret_pce[i] += gsl_ran_gaussian(rng, noise_sd);
    }
    return 0;
}

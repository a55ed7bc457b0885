/* jv — see jv.h. The local fits are ordinary least squares (GSL multifit_linear) in a
 * centred, scaled abscissa so that the normal equations stay well conditioned.
 */
#include "models/jv.h"

#include <errno.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_sf_lambert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef JSC_WINDOW_FRAC
#define JSC_WINDOW_FRAC 0.25 /* Jsc: points within ±25 % of Voc of V = 0 ... */
#endif
#define JSC_WINDOW_MIN_V 0.05 /* ... but at least ±50 mV ... */
#define JSC_MIN_POINTS 4      /* ... and at least the 4 nearest */
#ifndef VOC_SIDE_POINTS
#define VOC_SIDE_POINTS 5 /* Voc: up to this many points each side of the sign change */
#endif
#ifndef VOC_DEGREE
#define VOC_DEGREE 3
#endif
#ifndef MPP_WINDOW_FRAC
#define MPP_WINDOW_FRAC 0.10 /* Pmax: points within ±10 % of Voc around the best sample */
#endif
#define DIODE_FIT_MAX_POINTS 2000 /* longer sweeps are averaged into this many bins */
#ifndef MPP_DEGREE
#define MPP_DEGREE 4
#endif

struct point {
    double v, j;
};

static int point_cmp(const void *a, const void *b)
{
    const struct point *pa = a, *pb = b;

    return (pa->v > pb->v) - (pa->v < pb->v);
}

/* Least-squares polynomial of the given degree through (x[i], y[i]), i < n, with
 * x replaced by (x - x0) / scale. Coefficients in coef[0..degree]. Returns 0, or -EINVAL
 * when n <= degree or the fit is singular, -ENOMEM. */
static int poly_fit(const double *x,
                    const double *y,
                    size_t n,
                    size_t degree,
                    double x0,
                    double scale,
                    double *coef,
                    double *ret_chisq)
{
    gsl_matrix *X = NULL, *cov = NULL;
    gsl_vector *yv = NULL, *c = NULL;
    gsl_multifit_linear_workspace *w = NULL;
    double chisq;
    int r = -ENOMEM;

    if (n <= degree)
        return -EINVAL;
    X = gsl_matrix_alloc(n, degree + 1);
    cov = gsl_matrix_alloc(degree + 1, degree + 1);
    yv = gsl_vector_alloc(n);
    c = gsl_vector_alloc(degree + 1);
    w = gsl_multifit_linear_alloc(n, degree + 1);
    if (X == NULL || cov == NULL || yv == NULL || c == NULL || w == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        double t = (x[i] - x0) / scale, p = 1.0;
        for (size_t k = 0; k <= degree; k++) {
            gsl_matrix_set(X, i, k, p);
            p *= t;
        }
        gsl_vector_set(yv, i, y[i]);
    }
    if (gsl_multifit_linear(X, yv, c, cov, &chisq, w) != GSL_SUCCESS) {
        r = -EINVAL;
        goto out;
    }
    r = 0;
    if (ret_chisq != NULL)
        *ret_chisq = chisq;
    for (size_t k = 0; k <= degree; k++) {
        coef[k] = gsl_vector_get(c, k);
        if (!isfinite(coef[k]))
            r = -EINVAL;
    }
out:
    gsl_multifit_linear_free(w);
    gsl_vector_free(c);
    gsl_vector_free(yv);
    gsl_matrix_free(cov);
    gsl_matrix_free(X);
    return r;
}

static double poly_eval(const double *coef, size_t degree, double t)
{
    double y = 0.0;

    for (size_t k = degree + 1; k-- > 0;)
        y = y * t + coef[k];
    return y;
}

/* Splits the sorted points into two arrays for poly_fit. */
static void split(const struct point *p, size_t n, double *x, double *y)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = p[i].v;
        y[i] = p[i].j;
    }
}

/* Index range [*lo, *hi) of the points with |V − center| <= half_width, widened to the
 * nearest points until it holds at least min_points (or all). p sorted by v. */
static void window(const struct point *p,
                   size_t n,
                   double center,
                   double half_width,
                   size_t min_points,
                   size_t *ret_lo,
                   size_t *ret_hi)
{
    size_t lo = 0, hi;

    while (lo < n && p[lo].v < center - half_width)
        lo++;
    hi = lo;
    while (hi < n && p[hi].v <= center + half_width)
        hi++;
    while (hi - lo < min_points && (lo > 0 || hi < n)) {
        if (lo > 0 && (hi == n || center - p[lo - 1].v <= p[hi].v - center))
            lo--;
        else
            hi++;
    }
    *ret_lo = lo;
    *ret_hi = hi;
}

/* J at V = 0 from a least-squares line through the points within half_width of 0 (at least
 * the JSC_MIN_POINTS nearest). *ret_noise (may be NULL) gets the residual standard deviation,
 * an estimate of the current noise (0 when there are too few points to tell). */
static int fit_jsc(const struct point *p,
                   size_t n,
                   double half_width,
                   double *x,
                   double *y,
                   double *ret,
                   double *ret_noise)
{
    size_t lo, hi;
    double coef[2], chisq = 0.0;
    int r;

    window(p, n, 0.0, half_width, JSC_MIN_POINTS, &lo, &hi);
    split(p + lo, hi - lo, x, y);
    r = poly_fit(x, y, hi - lo, 1, 0.0, 1.0, coef, &chisq);
    if (r < 0)
        return r;
    *ret = coef[0];
    if (ret_noise != NULL)
        *ret_noise = hi - lo > 3 ? sqrt(chisq / (double)(hi - lo - 2)) : 0.0;
    return 0;
}

/* V at J = 0 around the first sign change of J at k (J[k-1] > 0 >= J[k], k >= 1): root of
 * a least-squares polynomial through up to VOC_SIDE_POINTS points on each side, found by
 * bisection inside the bracket widened by one step; linear interpolation as fallback. Returns 0,
 * or -ENOMEM (never the fallback: the result must not depend on the memory left). */
static int fit_voc(const struct point *p, size_t n, size_t k, double *x, double *y, double *ret)
{
    double v_lin, coef[6];
    size_t lo = k >= VOC_SIDE_POINTS ? k - VOC_SIDE_POINTS : 0;
    size_t hi = k + VOC_SIDE_POINTS < n ? k + VOC_SIDE_POINTS : n; /* exclusive */
    size_t degree = VOC_DEGREE;
    double dv = p[k].v - p[k - 1].v;

    v_lin = p[k - 1].v;
    if (p[k - 1].j != p[k].j)
        v_lin = p[k - 1].v + p[k - 1].j * dv / (p[k - 1].j - p[k].j);
    *ret = v_lin;
    while (degree > 1 && hi - lo < degree + 3)
        degree--;
    if (hi - lo < 3 || !(dv > 0.0))
        return 0;
    split(p + lo, hi - lo, x, y);
    double scale = p[hi - 1].v - p[lo].v;
    if (!(scale > 0.0))
        return 0;
    int r = poly_fit(x, y, hi - lo, degree, v_lin, scale, coef, NULL);
    if (r < 0)
        return r == -ENOMEM ? r : 0;
    /* the fitted J must change sign across the bracket widened by one step */
    double ta = (p[k - 1].v - dv - v_lin) / scale, tb = (p[k].v + dv - v_lin) / scale;
    double fa = poly_eval(coef, degree, ta), fb = poly_eval(coef, degree, tb);
    if (!(fa > 0.0 && fb < 0.0))
        return 0;
    for (int i = 0; i < 80; i++) {
        double tm = 0.5 * (ta + tb), fm = poly_eval(coef, degree, tm);
        if (fm > 0.0)
            ta = tm;
        else
            tb = tm;
    }
    *ret = v_lin + 0.5 * (ta + tb) * scale;
    return 0;
}

/* Maximum of P = V·J refined around the best sample b: a least-squares polynomial of P(V)
 * through the points within a window around V_b (degree lowered when there are few points),
 * maximised by a grid and golden-section search inside the window. The window starts at
 * MPP_WINDOW_FRAC·Voc and is halved while the polynomial does not describe the points within
 * the noise (RMS residual above 2·noise_p + 0.1 % of the best power), down to three points:
 * sharp features keep a small window, noise gets a wide one. Keeps the best sample when no
 * maximum lies inside the window. Returns 0, or -ENOMEM. */
static int fit_pmax(const struct point *p,
                    size_t n,
                    size_t b,
                    double voc,
                    double noise_p,
                    double *x,
                    double *y,
                    double *ret_p,
                    double *ret_v)
{
    enum { GRID = 64 };
    double coef[8], half = MPP_WINDOW_FRAC * voc, p_b = p[b].v * p[b].j, chisq = 0.0;
    size_t lo, hi, cnt, degree;

    *ret_p = p_b;
    *ret_v = p[b].v;
    for (;;) {
        window(p, n, p[b].v, half, 3, &lo, &hi);
        cnt = hi - lo;
        degree = MPP_DEGREE;
        while (degree > 2 && cnt < 2 * degree + 1)
            degree--;
        if (cnt < 3)
            return 0;
        for (size_t i = 0; i < cnt; i++) {
            x[i] = p[lo + i].v;
            y[i] = p[lo + i].v * p[lo + i].j;
        }
        double scale = p[hi - 1].v - p[lo].v;
        if (!(scale > 0.0))
            return 0;
        int r = poly_fit(x, y, cnt, degree, p[b].v, scale, coef, &chisq);
        if (r < 0)
            return r == -ENOMEM ? r : 0;
        if (cnt <= degree + 1 ||
            sqrt(chisq / (double)(cnt - degree - 1)) <= 2.0 * noise_p + 1e-3 * p_b)
            break;
        if (cnt == 3)
            break;
        half *= 0.5;
    }
    double scale = p[hi - 1].v - p[lo].v;
    double t_lo = (p[lo].v - p[b].v) / scale, t_hi = (p[hi - 1].v - p[b].v) / scale;
    size_t best = 0;
    double best_p = -(double)INFINITY;
    for (size_t i = 0; i <= GRID; i++) {
        double pv = poly_eval(coef, degree, t_lo + (t_hi - t_lo) * (double)i / GRID);
        if (pv > best_p) {
            best_p = pv;
            best = i;
        }
    }
    if (best == 0 || best == GRID) /* no maximum inside the window */
        return 0;
    /* golden-section search in the two grid cells around the best grid point */
    const double g = 0.5 * (sqrt(5.0) - 1.0);
    double a = t_lo + (t_hi - t_lo) * (double)(best - 1) / GRID;
    double c = t_lo + (t_hi - t_lo) * (double)(best + 1) / GRID;
    for (int i = 0; i < 60; i++) {
        double m1 = c - g * (c - a), m2 = a + g * (c - a);
        if (poly_eval(coef, degree, m1) > poly_eval(coef, degree, m2))
            c = m2;
        else
            a = m1;
    }
    double t = 0.5 * (a + c), pv = poly_eval(coef, degree, t);
    if (isfinite(pv) && pv > 0.0) {
        *ret_p = pv;
        *ret_v = p[b].v + t * scale;
    }
    return 0;
}

/* ---- single-diode fit --------------------------------------------------------------- */

/* Parameters of the fit, chosen so that any real value is a valid diode:
 * Jph (mA/cm²), ln J0 (J0 in mA/cm²), n, ln Rs (Ω·cm²), ln Gsh (Gsh = 1/Rsh in S/cm²). */
enum { DP_JPH, DP_LNJ0, DP_N, DP_LNRS, DP_LNGSH, DP_COUNT };

struct diode_data {
    const struct point *p;
    size_t n;
    double vt; /* thermal voltage at 298.15 K; n·Vt is what the data determine */
};

/* W0(exp(log_x)), overflow-safe (Newton on w + ln w = log_x for large arguments). */
static double lambert_w0_exp(double log_x)
{
    if (log_x < 600.0)
        return gsl_sf_lambert_W0(exp(log_x));
    double w = log_x - log(log_x);
    for (int i = 0; i < 50; i++) {
        double step = (w + log(w) - log_x) / (1.0 + 1.0 / w);
        w -= step;
        if (fabs(step) <= 1e-15 * w)
            break;
    }
    return w;
}

/* J (mA/cm²) of the diode th at v, by the Lambert-W solution (Jain & Kapoor 2004). */
static double diode_current(const double *th, double vt, double v)
{
    double jph = th[DP_JPH] * 1e-3, j0 = exp(th[DP_LNJ0]) * 1e-3, a = th[DP_N] * vt;
    double rs = exp(th[DP_LNRS]), rsh = exp(-th[DP_LNGSH]);
    double log_x =
        log(rs * j0 * rsh / (a * (rs + rsh))) + rsh * (rs * (jph + j0) + v) / (a * (rs + rsh));

    return 1e3 * ((rsh * (jph + j0) - v) / (rs + rsh) - (a / rs) * lambert_w0_exp(log_x));
}

static int diode_f(const gsl_vector *x, void *params, gsl_vector *f)
{
    const struct diode_data *d = params;

    for (size_t i = 0; i < d->n; i++) {
        double r = diode_current(x->data, d->vt, d->p[i].v) - d->p[i].j;
        if (!isfinite(r))
            return GSL_EDOM;
        gsl_vector_set(f, i, r);
    }
    return GSL_SUCCESS;
}

/* Analytic Jacobian by implicit differentiation of
 * F = Jph − J0·(e^x − 1) − (V + J·Rs)·Gsh − J = 0, x = (V + J·Rs)/(n·Vt)  (A/cm² inside). */
static int diode_df(const gsl_vector *x, void *params, gsl_matrix *jac)
{
    const struct diode_data *d = params;
    const double *th = x->data;
    double j0 = exp(th[DP_LNJ0]) * 1e-3, a = th[DP_N] * d->vt;
    double rs = exp(th[DP_LNRS]), gsh = exp(th[DP_LNGSH]);

    for (size_t i = 0; i < d->n; i++) {
        double v = d->p[i].v, jj = diode_current(th, d->vt, v) * 1e-3;
        double vd = v + jj * rs, ex = exp(vd / a);
        double dfdj = -j0 * ex * rs / a - rs * gsh - 1.0;
        double dfd[DP_COUNT];
        if (!isfinite(ex) || dfdj == 0.0)
            return GSL_EDOM;
        dfd[DP_JPH] = 1e-3; /* Jph is in mA/cm² */
        dfd[DP_LNJ0] = -j0 * (ex - 1.0);
        dfd[DP_N] = j0 * ex * (vd / a) / th[DP_N];
        dfd[DP_LNRS] = rs * jj * (-j0 * ex / a - gsh);
        dfd[DP_LNGSH] = -vd * gsh;
        for (size_t k = 0; k < DP_COUNT; k++)
            gsl_matrix_set(jac, i, k, -1e3 * dfd[k] / dfdj); /* dJ/dθ in mA/cm² */
    }
    return GSL_SUCCESS;
}

/* Fits the single-diode model to the points with V <= v_max (Levenberg–Marquardt, GSL
 * multifit_nlinear) from guesses made of the local estimates. Stores the parameters in th and
 * the RMS residual (mA/cm²) in *ret_rms. Returns 0 or a negative code when the fit fails. */
static int diode_fit(const struct point *p,
                     size_t n,
                     double jsc,
                     double voc,
                     double v_max,
                     double *th,
                     double *ret_rms)
{
    struct diode_data d = {p, 0, 8.617333262e-5 * 298.15};
    gsl_multifit_nlinear_fdf fdf;
    gsl_multifit_nlinear_parameters par = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w = NULL;
    gsl_vector_view x0;
    int info, r = -EINVAL;

    struct point *bins = NULL;

    while (d.n < n && p[d.n].v <= v_max)
        d.n++;
    if (d.n < 2 * (size_t)DP_COUNT)
        return -EINVAL;
    if (d.n > DIODE_FIT_MAX_POINTS) {
        /* long sweeps: average runs of neighbouring points, so the fit costs what a sweep of
         * DIODE_FIT_MAX_POINTS costs (a bin spans far less than the curve's features) */
        size_t nb = DIODE_FIT_MAX_POINTS;
        bins = malloc(nb * sizeof(*bins));
        if (bins == NULL)
            return -ENOMEM;
        for (size_t b = 0; b < nb; b++) {
            size_t lo = b * d.n / nb, hi = (b + 1) * d.n / nb;
            double sv = 0.0, sj = 0.0;
            for (size_t i = lo; i < hi; i++) {
                sv += p[i].v;
                sj += p[i].j;
            }
            bins[b].v = sv / (double)(hi - lo);
            bins[b].j = sj / (double)(hi - lo);
        }
        d.p = bins;
        d.n = nb;
    }
    /* guesses: n = 1.5, Rs 2 Ω·cm², Rsh 2 kΩ·cm², Jph = Jsc, J0 from Voc */
    th[DP_JPH] = jsc;
    th[DP_N] = 1.5;
    th[DP_LNRS] = log(2.0);
    th[DP_LNGSH] = log(1.0 / 2000.0);
    th[DP_LNJ0] = log(jsc) - voc / (th[DP_N] * d.vt);
    fdf.f = diode_f;
    fdf.df = diode_df;
    fdf.fvv = NULL;
    fdf.n = d.n;
    fdf.p = DP_COUNT;
    fdf.params = &d;
    par.trs = gsl_multifit_nlinear_trs_lm;
    w = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &par, d.n, DP_COUNT);
    if (w == NULL) {
        r = -ENOMEM;
        goto out;
    }
    x0 = gsl_vector_view_array(th, DP_COUNT);
    if (gsl_multifit_nlinear_init(&x0.vector, &fdf, w) != GSL_SUCCESS)
        goto out;
    if (gsl_multifit_nlinear_driver(200, 1e-12, 1e-12, 1e-14, NULL, NULL, &info, w) != GSL_SUCCESS)
        goto out;
    const gsl_vector *x = gsl_multifit_nlinear_position(w);
    for (size_t k = 0; k < DP_COUNT; k++)
        th[k] = gsl_vector_get(x, k);
    if (!(th[DP_N] > 0.3 && th[DP_N] < 10.0) || !(th[DP_JPH] > 0.0))
        goto out;
    *ret_rms = gsl_blas_dnrm2(gsl_multifit_nlinear_residual(w)) / sqrt((double)d.n);
    r = isfinite(*ret_rms) ? 0 : -EINVAL;
out:
    gsl_multifit_nlinear_free(w);
    free(bins);
    return r;
}

/* Voc and the maximum power point of the fitted diode th (bisection and golden section on
 * the model itself). Returns 0, or -EINVAL when the model has no Voc in (0, 2·voc_guess). */
static int diode_figures(
    const double *th, double vt, double voc_guess, double *ret_voc, double *ret_vmp, double *ret_p)
{
    double lo = 0.0, hi = 2.0 * voc_guess;

    if (!(diode_current(th, vt, lo) > 0.0) || !(diode_current(th, vt, hi) < 0.0))
        return -EINVAL;
    for (int i = 0; i < 100; i++) {
        double m = 0.5 * (lo + hi);
        if (diode_current(th, vt, m) > 0.0)
            lo = m;
        else
            hi = m;
    }
    *ret_voc = 0.5 * (lo + hi);
    const double g = 0.5 * (sqrt(5.0) - 1.0);
    double a = 0.0, c = *ret_voc;
    for (int i = 0; i < 100; i++) {
        double m1 = c - g * (c - a), m2 = a + g * (c - a);
        if (m1 * diode_current(th, vt, m1) > m2 * diode_current(th, vt, m2))
            c = m2;
        else
            a = m1;
    }
    *ret_vmp = 0.5 * (a + c);
    *ret_p = *ret_vmp * diode_current(th, vt, *ret_vmp);
    return isfinite(*ret_p) && *ret_p > 0.0 ? 0 : -EINVAL;
}

/* Replaces the local estimates by those of the fitted single-diode model when the model
 * describes the data: the fit converges, its RMS residual is within twice the noise seen
 * near V = 0 (plus 0.001 % of Jsc for rounding), and its Pmax and Voc agree with the local ones
 * within 2 % and 10 mV. Otherwise leaves them alone (curves the model does not describe, e.g.
 * S-shapes, keep the model-free numbers). Returns 0, or -ENOMEM (never the model-free numbers
 * for want of memory). */
static int try_diode(const struct point *p,
                     size_t n,
                     double *jsc,
                     double *voc,
                     double *pmax,
                     double *vmp,
                     double noise,
                     struct jv_figures *ret)
{
    double th[DP_COUNT], rms, vt = 8.617333262e-5 * 298.15, voc_d, vmp_d, p_d;

    int r = diode_fit(p, n, *jsc, *voc, *voc + fmax(0.05, 0.05 * *voc), th, &rms);
    if (r < 0)
        return r == -ENOMEM ? r : 0;
    ret->fit_rms_ma_cm2 = rms;
    if (!(rms <= 2.0 * noise + 1e-5 * *jsc))
        return 0;
    if (diode_figures(th, vt, *voc, &voc_d, &vmp_d, &p_d) < 0)
        return 0;
    if (!(fabs(p_d - *pmax) <= 0.02 * *pmax) || !(fabs(voc_d - *voc) <= 0.01))
        return 0;
    ret->diode_fit = true;
    ret->diode_n = th[DP_N];
    ret->diode_j0_ma_cm2 = exp(th[DP_LNJ0]);
    ret->diode_rs_ohm_cm2 = exp(th[DP_LNRS]);
    ret->diode_rsh_ohm_cm2 = exp(-th[DP_LNGSH]);
    *jsc = diode_current(th, vt, 0.0);
    *voc = voc_d;
    *pmax = p_d;
    *vmp = vmp_d;
    return 0;
}

static int figures(const double *v,
                   const double *j,
                   size_t n,
                   double irradiance_mw_cm2,
                   bool allow_diode,
                   struct jv_figures *ret,
                   struct ll_error *reterr)
{
    struct point *p = NULL;
    double *x = NULL, *y = NULL, jsc, voc, pmax, vmp, noise = 0.0;
    size_t k, b;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (n < 3)
        return ll_error_set(reterr, -EINVAL, "%zu points, need at least 3", n);
    if (!(irradiance_mw_cm2 > 0.0) || !isfinite(irradiance_mw_cm2))
        return ll_error_set(reterr, -EINVAL, "irradiance must be > 0");
    p = malloc(n * sizeof(*p));
    x = malloc(n * sizeof(*x));
    y = malloc(n * sizeof(*y));
    if (p == NULL || x == NULL || y == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || !isfinite(j[i])) {
            r = ll_error_set(reterr, -EINVAL, "point %zu: not a finite number", i);
            goto out;
        }
        p[i].v = v[i];
        p[i].j = j[i];
    }
    qsort(p, n, sizeof(*p), point_cmp);
    if (p[0].v > 0.0 || p[n - 1].v < 0.0) {
        r = ll_error_set(reterr,
                         -EINVAL,
                         "the curve never crosses V = 0 (voltage from %g to %g V), so there is "
                         "no Jsc",
                         p[0].v,
                         p[n - 1].v);
        goto out;
    }
    /* a first Jsc over ±50 mV decides the sign convention; the final one, after Voc, uses
     * a window that scales with Voc so that more points average the noise */
    r = fit_jsc(p, n, JSC_WINDOW_MIN_V, x, y, &jsc, NULL);
    if (r == -ENOMEM)
        goto out_of_memory;
    if (r < 0 || !isfinite(jsc)) {
        r = ll_error_set(reterr, -EINVAL, "no current at V = 0 could be fitted");
        goto out;
    }
    if (jsc == 0.0) {
        r = ll_error_set(reterr, -EINVAL, "no photocurrent at V = 0 (J = 0)");
        goto out;
    }
    ret->load_convention = jsc < 0.0;
    if (ret->load_convention) {
        for (size_t i = 0; i < n; i++)
            p[i].j = -p[i].j;
        jsc = -jsc;
    }
    /* first sign change of J above V = 0 */
    for (k = 1; k < n; k++)
        if (p[k].v > 0.0 && p[k].j <= 0.0 && p[k - 1].j > 0.0)
            break;
    if (k == n) {
        r = ll_error_set(reterr,
                         -EINVAL,
                         "the curve never crosses J = 0 (voltage up to %g V), so there is no Voc",
                         p[n - 1].v);
        goto out;
    }
    if (fit_voc(p, n, k, x, y, &voc) < 0)
        goto out_of_memory;
    if (!(voc > 0.0)) {
        r = ll_error_set(reterr, -EINVAL, "Voc is not positive (%g V)", voc);
        goto out;
    }
    r = fit_jsc(p, n, fmax(JSC_WINDOW_MIN_V, JSC_WINDOW_FRAC * voc), x, y, &jsc, &noise);
    if (r == -ENOMEM)
        goto out_of_memory;
    if (r < 0 || !(jsc > 0.0)) {
        r = ll_error_set(reterr, -EINVAL, "no current at V = 0 could be fitted");
        goto out;
    }
    b = n;
    for (size_t i = 0; i < k; i++)
        if (p[i].v >= 0.0 && (b == n || p[i].v * p[i].j > p[b].v * p[b].j))
            b = i;
    if (b == n || !(p[b].v * p[b].j > 0.0)) {
        r = ll_error_set(reterr, -EINVAL, "no point with positive power between 0 and Voc");
        goto out;
    }
    if (fit_pmax(p, n, b, voc, noise * p[b].v, x, y, &pmax, &vmp) < 0)
        goto out_of_memory;
    ret->noise_ma_cm2 = noise;
    if (allow_diode && try_diode(p, n, &jsc, &voc, &pmax, &vmp, noise, ret) < 0)
        goto out_of_memory;
    ret->jsc_ma_cm2 = jsc;
    ret->voc_v = voc;
    ret->pmax_mw_cm2 = pmax;
    ret->vmp_v = vmp;
    ret->jmp_ma_cm2 = vmp != 0.0 ? pmax / vmp : 0.0;
    ret->ff = pmax / (voc * jsc);
    ret->pce_pct = 100.0 * pmax / irradiance_mw_cm2;
    r = 0;
    goto out;
out_of_memory:
    r = ll_error_set(reterr, -ENOMEM, "out of memory");
out:
    free(y);
    free(x);
    free(p);
    return r;
}

int jv_figures(const double *v,
               const double *j,
               size_t n,
               double irradiance_mw_cm2,
               struct jv_figures *ret,
               struct ll_error *reterr)
{
    return figures(v, j, n, irradiance_mw_cm2, true, ret, reterr);
}

int jv_figures_local(const double *v,
                     const double *j,
                     size_t n,
                     double irradiance_mw_cm2,
                     struct jv_figures *ret,
                     struct ll_error *reterr)
{
    return figures(v, j, n, irradiance_mw_cm2, false, ret, reterr);
}

double jv_hysteresis_index(double pce_rev_pct, double pce_fwd_pct)
{
    if (!(pce_rev_pct > 0.0) || !isfinite(pce_fwd_pct))
        return (double)NAN;
    return (pce_rev_pct - pce_fwd_pct) / pce_rev_pct;
}

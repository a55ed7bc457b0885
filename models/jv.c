/* jv — see jv.h. The local fits are ordinary least squares (GSL multifit_linear) in a
 * centred, scaled abscissa so that the normal equations stay well conditioned.
 */
#include "models/jv.h"

#include <errno.h>
#include <gsl/gsl_multifit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSC_WINDOW_V 0.05    /* Jsc: points within ±50 mV of V = 0 */
#define JSC_MIN_POINTS 4     /* ... and at least the 4 nearest */
#define VOC_SIDE_POINTS 3    /* Voc: up to 3 points each side of the sign change */
#define MPP_WINDOW_FRAC 0.10 /* Pmax: points within ±10 % of Voc around the best sample */

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
                    double *coef)
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

/* J at V = 0 from a line through the points within JSC_WINDOW_V of 0 (at least the
 * JSC_MIN_POINTS nearest). p sorted by v. */
static int fit_jsc(const struct point *p, size_t n, double *x, double *y, double *ret)
{
    size_t lo = 0, hi, cnt;
    double coef[2];
    int r;

    while (lo < n && p[lo].v < -JSC_WINDOW_V)
        lo++;
    hi = lo;
    while (hi < n && p[hi].v <= JSC_WINDOW_V)
        hi++;
    /* widen to the nearest points until there are enough */
    while (hi - lo < JSC_MIN_POINTS && (lo > 0 || hi < n)) {
        if (lo == 0)
            hi++;
        else if (hi == n)
            lo--;
        else if (fabs(p[lo - 1].v) <= fabs(p[hi].v))
            lo--;
        else
            hi++;
    }
    cnt = hi - lo;
    split(p + lo, cnt, x, y);
    r = poly_fit(x, y, cnt, 1, 0.0, 1.0, coef);
    if (r < 0)
        return r;
    *ret = coef[0];
    return 0;
}

/* V at J = 0 around the first sign change of J at k (J[k-1] > 0 >= J[k], k >= 1). */
static double fit_voc(const struct point *p, size_t n, size_t k, double *x, double *y)
{
    double v_lin, coef[3];
    size_t lo = k >= VOC_SIDE_POINTS ? k - VOC_SIDE_POINTS : 0;
    size_t hi = k + VOC_SIDE_POINTS < n ? k + VOC_SIDE_POINTS : n; /* exclusive */
    double dv = p[k].v - p[k - 1].v;

    v_lin = p[k - 1].v;
    if (p[k - 1].j != p[k].j)
        v_lin = p[k - 1].v + p[k - 1].j * dv / (p[k - 1].j - p[k].j);
    if (hi - lo < 4 || !(dv > 0.0))
        return v_lin;
    split(p + lo, hi - lo, x, y);
    double scale = p[hi - 1].v - p[lo].v;
    if (!(scale > 0.0) || poly_fit(x, y, hi - lo, 2, v_lin, scale, coef) < 0)
        return v_lin;
    /* root of c0 + c1 t + c2 t^2 nearest t = 0 (i.e. nearest v_lin) */
    double t;
    if (fabs(coef[2]) < 1e-12 * (fabs(coef[1]) + 1e-300)) {
        if (coef[1] == 0.0)
            return v_lin;
        t = -coef[0] / coef[1];
    } else {
        double disc = coef[1] * coef[1] - 4.0 * coef[2] * coef[0];
        if (disc < 0.0)
            return v_lin;
        double q = -0.5 * (coef[1] + copysign(sqrt(disc), coef[1]));
        double t1 = q / coef[2], t2 = q != 0.0 ? coef[0] / q : t1;
        t = fabs(t1) < fabs(t2) ? t1 : t2;
    }
    double v = v_lin + t * scale;
    /* a root outside the bracket widened by one step means the fit is not to be trusted */
    if (!(v >= p[k - 1].v - dv && v <= p[k].v + dv))
        return v_lin;
    return v;
}

/* Maximum of P = V·J refined around the best sample b (0 <= V <= voc). */
static void fit_pmax(const struct point *p,
                     size_t n,
                     size_t b,
                     double voc,
                     double *x,
                     double *y,
                     double *ret_p,
                     double *ret_v)
{
    double w = MPP_WINDOW_FRAC * voc, coef[4], best_t = 0.0, best_p;
    size_t lo = b, hi = b + 1, cnt, degree;

    *ret_p = p[b].v * p[b].j;
    *ret_v = p[b].v;
    while (lo > 0 && p[lo - 1].v >= p[b].v - w)
        lo--;
    while (hi < n && p[hi].v <= p[b].v + w)
        hi++;
    /* at least one neighbour on each side, when there is one */
    if (lo == b && b > 0)
        lo--;
    if (hi == b + 1 && hi < n)
        hi++;
    cnt = hi - lo;
    if (cnt < 3)
        return;
    degree = cnt >= 7 ? 3 : 2;
    for (size_t i = 0; i < cnt; i++) {
        x[i] = p[lo + i].v;
        y[i] = p[lo + i].v * p[lo + i].j;
    }
    double scale = p[hi - 1].v - p[lo].v;
    if (!(scale > 0.0) || poly_fit(x, y, cnt, degree, p[b].v, scale, coef) < 0)
        return;
    if (degree == 2)
        coef[3] = 0.0;
    double t_lo = (p[lo].v - p[b].v) / scale, t_hi = (p[hi - 1].v - p[b].v) / scale;
    /* stationary points of the polynomial: c1 + 2 c2 t + 3 c3 t^2 = 0 */
    double roots[2];
    size_t n_roots = 0;
    if (fabs(coef[3]) < 1e-12 * (fabs(coef[2]) + 1e-300)) {
        if (coef[2] < 0.0)
            roots[n_roots++] = -coef[1] / (2.0 * coef[2]);
    } else {
        double a = 3.0 * coef[3], bq = 2.0 * coef[2], c = coef[1];
        double disc = bq * bq - 4.0 * a * c;
        if (disc >= 0.0) {
            double q = -0.5 * (bq + copysign(sqrt(disc), bq));
            roots[n_roots++] = q / a;
            if (q != 0.0)
                roots[n_roots++] = c / q;
        }
    }
    best_p = -(double)INFINITY;
    for (size_t i = 0; i < n_roots; i++) {
        double t = roots[i];
        /* a maximum inside the window: second derivative negative */
        if (t < t_lo || t > t_hi || 2.0 * coef[2] + 6.0 * coef[3] * t >= 0.0)
            continue;
        double pv = poly_eval(coef, 3, t);
        if (pv > best_p) {
            best_p = pv;
            best_t = t;
        }
    }
    if (isfinite(best_p) && best_p > 0.0) {
        *ret_p = best_p;
        *ret_v = p[b].v + best_t * scale;
    }
}

int jv_figures(const double *v,
               const double *j,
               size_t n,
               double irradiance_mw_cm2,
               struct jv_figures *ret,
               struct ll_error *reterr)
{
    struct point *p = NULL;
    double *x = NULL, *y = NULL, jsc, voc, pmax, vmp;
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
    r = fit_jsc(p, n, x, y, &jsc);
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
    voc = fit_voc(p, n, k, x, y);
    if (!(voc > 0.0)) {
        r = ll_error_set(reterr, -EINVAL, "Voc is not positive (%g V)", voc);
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
    fit_pmax(p, n, b, voc, x, y, &pmax, &vmp);
    ret->jsc_ma_cm2 = jsc;
    ret->voc_v = voc;
    ret->pmax_mw_cm2 = pmax;
    ret->vmp_v = vmp;
    ret->jmp_ma_cm2 = vmp != 0.0 ? pmax / vmp : 0.0;
    ret->ff = pmax / (voc * jsc);
    ret->pce_pct = 100.0 * pmax / irradiance_mw_cm2;
    r = 0;
out:
    free(y);
    free(x);
    free(p);
    return r;
}

double jv_hysteresis_index(double pce_rev_pct, double pce_fwd_pct)
{
    if (!(pce_rev_pct > 0.0) || !isfinite(pce_fwd_pct))
        return (double)NAN;
    return (pce_rev_pct - pce_fwd_pct) / pce_rev_pct;
}

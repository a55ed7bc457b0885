/* stability — see stability.h. */
#include "models/stability.h"

#include <errno.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BINS 400
#define MAX_P 5

/* ---- noise and smoothing --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_in_place(double *x, size_t n)
{
    qsort(x, n, sizeof(*x), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Point noise from the median absolute deviation of successive differences (a trend that
 * changes slowly over one step does not count). work has n entries. */
static double noise_sd(const double *y, size_t n, double *work)
{
    if (n < 3)
        return 0.0;
    for (size_t i = 0; i + 1 < n; i++)
        work[i] = y[i + 1] - y[i];
    double med = median_in_place(work, n - 1);
    for (size_t i = 0; i + 1 < n; i++)
        work[i] = fabs(work[i] - med);
    return 1.4826 * median_in_place(work, n - 1) / M_SQRT2;
}

/* Local linear regression of y on t over the points i−h .. i+h, evaluated at t_i. */
static void smooth(const double *t, const double *y, size_t n, size_t h, double *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t lo = i > h ? i - h : 0, hi = i + h + 1 < n ? i + h + 1 : n;
        double st = 0, sy = 0, m = (double)(hi - lo);
        for (size_t k = lo; k < hi; k++) {
            st += t[k];
            sy += y[k];
        }
        double tm = st / m, ym = sy / m, stt = 0, sty = 0;
        for (size_t k = lo; k < hi; k++) {
            stt += (t[k] - tm) * (t[k] - tm);
            sty += (t[k] - tm) * (y[k] - ym);
        }
        out[i] = stt > 0.0 ? ym + sty / stt * (t[i] - tm) : ym;
    }
}

/* Refines a crossing found on the smoothed series: a least-squares quadratic of the raw points
 * within `half` points of index i, solved for the threshold inside the window; keeps t_guess
 * when the quadratic does not cross there (e.g. too few points). A wider window than the
 * smoother's averages more noise; a quadratic follows the curvature of the decay. */
static double refine_crossing(const double *t,
                              const double *y,
                              size_t n,
                              size_t i,
                              size_t half,
                              double threshold,
                              double t_guess)
{
    size_t lo = i > half ? i - half : 0, hi = i + half + 1 < n ? i + half + 1 : n;
    double s[5] = {0}, b[3] = {0}, scale = t[hi - 1] - t[lo];

    if (hi - lo < 5 || !(scale > 0.0))
        return t_guess;
    /* normal equations of y = c0 + c1 u + c2 u², u = (t − t_guess)/scale, solved by Cramer */
    for (size_t k = lo; k < hi; k++) {
        double u = (t[k] - t_guess) / scale, p = 1.0;
        for (int e = 0; e < 5; e++, p *= u)
            s[e] += p;
        b[0] += y[k];
        b[1] += y[k] * u;
        b[2] += y[k] * u * u;
    }
    double m[3][3] = {
        {s[0], s[1], s[2]},
        {s[1], s[2], s[3]},
        {s[2], s[3], s[4]}
    };
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                 m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if (!(fabs(det) > 1e-300))
        return t_guess;
    double c[3];
    for (int col = 0; col < 3; col++) {
        double a[3][3];
        memcpy(a, m, sizeof(a));
        for (int r = 0; r < 3; r++)
            a[r][col] = b[r];
        c[col] = (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                  a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                  a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])) /
                 det;
    }
    /* bisection for c(u) = threshold on the window, which must bracket it */
    double ua = (t[lo] - t_guess) / scale, ub = (t[hi - 1] - t_guess) / scale;
    double fa = c[0] + c[1] * ua + c[2] * ua * ua - threshold;
    double fb = c[0] + c[1] * ub + c[2] * ub * ub - threshold;
    if (!(fa > 0.0 && fb < 0.0))
        return t_guess;
    for (int it = 0; it < 100; it++) {
        double um = 0.5 * (ua + ub), fm = c[0] + c[1] * um + c[2] * um * um - threshold;
        if (fm > 0.0)
            ua = um;
        else
            ub = um;
    }
    return t_guess + 0.5 * (ua + ub) * scale;
}

/* ---- degradation models ---------------------------------------------------------------- */

enum model_id { M_LINEAR, M_EXP, M_STRETCHED, M_BURN_EXP, M_BURN_STRETCHED, M_COUNT };

static const struct {
    const char *name;
    size_t n_params;
} model_info[M_COUNT] = {
    [M_LINEAR] = {"linear",                          2},
    [M_EXP] = {"exponential",                     2},
    [M_STRETCHED] = {"stretched exponential",           3},
    [M_BURN_EXP] = {"burn-in + exponential",           4},
    [M_BURN_STRETCHED] = {"burn-in + stretched exponential", 5},
};

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* η(t) of model m with parameters p:
 *   linear            p = (a, k):                 a − k·t
 *   exponential       p = (a, ln τ):              a·exp(−t/τ)
 *   stretched         p = (a, ln τ, ln β):        a·exp(−(t/τ)^β)
 *   burn-in + ...     p = (a, u_b, ln τ_b, ln τ [, ln β]): the above times
 *                     1 − b·(1 − exp(−t/τ_b)), b = 0.5 / (1 + exp(−u_b)) */
static double model_eval(enum model_id m, const double *p, double t)
{
    double a = p[0], burn = 1.0, tau, beta = 1.0;

    switch (m) {
    case M_LINEAR:
        return a - p[1] * t;
    case M_EXP:
    case M_STRETCHED:
        tau = exp(clampd(p[1], -50.0, 50.0));
        if (m == M_STRETCHED)
            beta = exp(clampd(p[2], log(0.2), log(5.0)));
        break;
    default: {
        double b = 0.5 / (1.0 + exp(-clampd(p[1], -40.0, 40.0)));
        double tau_b = exp(clampd(p[2], -50.0, 50.0));
        burn = 1.0 + b * expm1(-t / tau_b);
        tau = exp(clampd(p[3], -50.0, 50.0));
        if (m == M_BURN_STRETCHED)
            beta = exp(clampd(p[4], log(0.2), log(5.0)));
        break;
    }
    }
    return a * burn * exp(-pow(t / tau, beta));
}

/* T80 of model m: the first time η(t) = threshold, by closed form or bisection; INFINITY
 * when the model never gets there. */
static double model_t80(enum model_id m, const double *p, double threshold, double t_scale)
{
    if (m == M_LINEAR)
        return p[1] > 0.0 && p[0] > threshold ? (p[0] - threshold) / p[1]
                                              : (p[0] <= threshold ? 0.0 : (double)INFINITY);
    if (model_eval(m, p, 0.0) <= threshold)
        return 0.0;
    double lo = 0.0, hi = t_scale > 0.0 ? t_scale : 1.0;
    while (model_eval(m, p, hi) > threshold) {
        lo = hi;
        hi *= 2.0;
        if (hi > 1e9 * (t_scale > 0.0 ? t_scale : 1.0))
            return (double)INFINITY;
    }
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (model_eval(m, p, mid) > threshold)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

struct series {
    const double *t, *y;
    size_t n;
    enum model_id m;
};

static int model_f(const gsl_vector *x, void *params, gsl_vector *f)
{
    const struct series *s = params;

    for (size_t i = 0; i < s->n; i++) {
        double r = model_eval(s->m, x->data, s->t[i]) - s->y[i];
        if (!isfinite(r))
            return GSL_EDOM;
        gsl_vector_set(f, i, r);
    }
    return GSL_SUCCESS;
}

struct model_fit {
    double p[MAX_P];
    double cov[MAX_P * MAX_P]; /* scaled by the residual variance */
    double rss;
    bool ok;
};

/* Least-squares fit of model m (Levenberg–Marquardt, finite-difference Jacobian) from p0. */
static int fit_model(const struct series *s, const double *p0, struct model_fit *res)
{
    size_t np = model_info[s->m].n_params;
    gsl_multifit_nlinear_fdf fdf = {0};
    gsl_multifit_nlinear_parameters par = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w = NULL;
    gsl_matrix *cov = NULL;
    double p[MAX_P];
    int info, r = 0;

    res->ok = false;
    if (np == 0 || s->n <= np + 1)
        return 0;
    memcpy(p, p0, np * sizeof(double));
    fdf.f = model_f;
    fdf.n = s->n;
    fdf.p = np;
    fdf.params = (void *)(uintptr_t)s;
    par.trs = gsl_multifit_nlinear_trs_lm;
    w = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &par, s->n, np);
    cov = gsl_matrix_alloc(np, np);
    if (w == NULL || cov == NULL) {
        r = -ENOMEM;
        goto out;
    }
    gsl_vector_view x0 = gsl_vector_view_array(p, np);
    if (gsl_multifit_nlinear_init(&x0.vector, &fdf, w) != GSL_SUCCESS)
        goto out;
    (void)gsl_multifit_nlinear_driver(200, 1e-10, 1e-10, 0.0, NULL, NULL, &info, w);
    const gsl_vector *x = gsl_multifit_nlinear_position(w);
    const gsl_vector *f = gsl_multifit_nlinear_residual(w);
    gsl_blas_ddot(f, f, &res->rss);
    if (!isfinite(res->rss))
        goto out;
    for (size_t k = 0; k < np; k++)
        res->p[k] = gsl_vector_get(x, k);
    double s2 = s->n > np ? res->rss / (double)(s->n - np) : 0.0;
    if (gsl_multifit_nlinear_covar(gsl_multifit_nlinear_jac(w), 0.0, cov) == GSL_SUCCESS) {
        for (size_t k = 0; k < np * np; k++)
            res->cov[k] = cov->data[(k / np) * cov->tda + k % np] * s2;
    } else {
        for (size_t k = 0; k < np * np; k++)
            res->cov[k] = (double)NAN;
    }
    res->ok = true;
out:
    gsl_matrix_free(cov);
    gsl_multifit_nlinear_free(w);
    return r;
}

/* Standard error of T80 by the delta method: gradient by central differences. */
static double t80_sd(enum model_id m, const struct model_fit *fit, double threshold, double scale)
{
    size_t np = model_info[m].n_params;
    double g[MAX_P], p[MAX_P], var = 0.0;

    for (size_t k = 0; k < np; k++) {
        double h = 1e-5 * (fabs(fit->p[k]) + 1e-3);
        memcpy(p, fit->p, sizeof(p));
        p[k] = fit->p[k] + h;
        double up = model_t80(m, p, threshold, scale);
        p[k] = fit->p[k] - h;
        double dn = model_t80(m, p, threshold, scale);
        g[k] = (up - dn) / (2.0 * h);
        if (!isfinite(g[k]))
            return (double)NAN;
    }
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < np; k++)
            var += g[i] * fit->cov[i * np + k] * g[k];
    return var >= 0.0 ? sqrt(var) : (double)NAN;
}

/* ---- prediction ------------------------------------------------------------------------ */

/* Averages the series into at most MAX_BINS bins of equal counts. */
static size_t bin_series(const double *t, const double *y, size_t n, double *bt, double *by)
{
    size_t nb = n < MAX_BINS ? n : MAX_BINS;

    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * n / nb, hi = (b + 1) * n / nb;
        double st = 0, sy = 0;
        for (size_t i = lo; i < hi; i++) {
            st += t[i];
            sy += y[i];
        }
        bt[b] = st / (double)(hi - lo);
        by[b] = sy / (double)(hi - lo);
    }
    return nb;
}

static int
predict(const double *t, const double *y, size_t n, double threshold, struct stability_t80 *ret)
{
    double bt[MAX_BINS], by[MAX_BINS], c0, c1, cov00, cov01, cov11, sumsq;
    double t_last = t[n - 1], best_aicc = HUGE_VAL;
    double cand_aicc[8], cand_t80[8];
    struct series s;
    struct model_fit fit, best = {0};
    enum model_id best_m = M_LINEAR;
    int r;

    s.n = bin_series(t, y, n, bt, by);
    s.t = bt;
    s.y = by;
    ret->t80_sd_h = (double)NAN;
    gsl_fit_linear(bt, 1, by, 1, s.n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    if (!(c1 < 0.0) || s.n < 3) {
        ret->model = "no decay";
        ret->t80_h = t_last;
        return 0;
    }
    double k = -c1, a0 = c0, tau0 = log(a0 / k > 0.0 ? a0 / k : t_last * 100.0);
    /* starts: the line's intercept, τ from its slope, β = 1 or 0.7, burn-in b ≈ 0.06 with
     * τ_b 3 % or 10 % of the series */
    static const enum model_id start_model[8] = {M_LINEAR,
                                                 M_EXP,
                                                 M_STRETCHED,
                                                 M_STRETCHED,
                                                 M_BURN_EXP,
                                                 M_BURN_EXP,
                                                 M_BURN_STRETCHED,
                                                 M_BURN_STRETCHED};
    double starts[8][MAX_P] = {{0}};
    for (size_t i = 0; i < 8; i++) {
        starts[i][0] = a0;
        if (start_model[i] == M_LINEAR) {
            starts[i][1] = k;
        } else if (start_model[i] == M_EXP || start_model[i] == M_STRETCHED) {
            starts[i][1] = tau0;
            starts[i][2] = i == 3 ? log(0.7) : 0.0;
        } else {
            starts[i][1] = -2.0;
            starts[i][2] = log((i % 2 ? 0.1 : 0.03) * t_last);
            starts[i][3] = tau0;
            starts[i][4] = 0.0;
        }
    }
    for (size_t i = 0; i < 8; i++) {
        cand_aicc[i] = HUGE_VAL;
        s.m = start_model[i];
        r = fit_model(&s, starts[i], &fit);
        if (r < 0)
            return r;
        if (!fit.ok)
            continue;
        double nn = (double)s.n, kk = (double)model_info[s.m].n_params + 1.0; /* + σ */
        if (nn - kk - 1.0 <= 0.0)
            continue;
        double aicc = nn * log(fmax(fit.rss, 1e-300) / nn) + 2.0 * kk +
                      2.0 * kk * (kk + 1.0) / (nn - kk - 1.0);
        cand_aicc[i] = aicc;
        cand_t80[i] = model_t80(s.m, fit.p, threshold, t_last);
        if (aicc < best_aicc) {
            best_aicc = aicc;
            best = fit;
            best_m = s.m;
        }
    }
    if (!best.ok) {
        ret->model = "no decay";
        ret->t80_h = t_last;
        return 0;
    }
    double t80 = model_t80(best_m, best.p, threshold, t_last);
    ret->model = model_info[best_m].name;
    ret->n_model_params = model_info[best_m].n_params;
    memcpy(ret->model_params, best.p, sizeof(ret->model_params));
    if (!isfinite(t80)) {
        ret->model = "no decay";
        ret->t80_h = t_last;
        return 0;
    }
    ret->t80_sd_h = t80_sd(best_m, &best, threshold, t_last);
    /* models within ΔAICc < 4 are not ruled out: the largest difference of their T80 from
     * the chosen one joins the delta-method error */
    double spread = 0.0;
    for (size_t i = 0; i < 8; i++)
        if (cand_aicc[i] < best_aicc + 4.0 && isfinite(cand_t80[i]))
            spread = fmax(spread, fabs(cand_t80[i] - t80));
    ret->t80_sd_h = hypot(ret->t80_sd_h, spread);
    ret->t80_h = fmax(t80, t_last);
    ret->far_extrapolation = t80 > STABILITY_FAR_EXTRAPOLATION * t_last;
    return 0;
}

/* ---- public ---------------------------------------------------------------------------- */

int stability_t80(const double *time_h,
                  const double *pce,
                  size_t n,
                  struct stability_t80 *ret,
                  struct ll_error *reterr)
{
    double *sm = NULL, *work = NULL;
    size_t h, cross = n;
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    ret->t80_sd_h = (double)NAN;
    if (n < 2)
        return ll_error_set(reterr, -EINVAL, "%zu points, need at least 2", n);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(time_h[i]) || !isfinite(pce[i]) || time_h[i] < 0.0 ||
            (i > 0 && !(time_h[i] > time_h[i - 1])))
            return ll_error_set(
                reterr, -EINVAL, "point %zu: times must be >= 0, increasing, values finite", i);
    }
    sm = malloc(n * sizeof(double));
    work = malloc(n * sizeof(double));
    if (sm == NULL || work == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    ret->noise_sd = noise_sd(pce, n, work);
    h = n / 40;
    h = h < 2 ? 2 : (h > 25 ? 25 : h);
    smooth(time_h, pce, n, h, sm);
    /* reference: 1, or the running maximum of an initial rise that exceeds the noise */
    /* a rise counts when it exceeds 2 % and 4 standard deviations of a smoothed value at the
     * edge of the series (where the one-sided window has about h + 1 points) */
    double rise_tol = fmax(0.02, 4.0 * ret->noise_sd / sqrt((double)(h + 1))), running_max = 1.0;
    ret->reference = 1.0;
    for (size_t i = 0; i < n && cross == n; i++) {
        if (sm[i] > running_max)
            running_max = sm[i];
        double ref = running_max > 1.0 + rise_tol ? running_max : 1.0;
        double threshold = STABILITY_THRESHOLD * ref;
        if (!(sm[i] < threshold))
            continue;
        /* robust: the next STABILITY_CONFIRM_POINTS smoothed points (or all that remain, at
         * least one) stay below */
        size_t end = i + STABILITY_CONFIRM_POINTS < n - 1 ? i + STABILITY_CONFIRM_POINTS : n - 1;
        bool confirmed = end > i;
        for (size_t j = i + 1; j <= end; j++)
            confirmed &= sm[j] < threshold;
        if (!confirmed)
            continue;
        cross = i;
        ret->reference = ref;
        if (i == 0) {
            ret->t80_h = time_h[0];
        } else {
            double f = (sm[i - 1] - threshold) / (sm[i - 1] - sm[i]);
            ret->t80_h = time_h[i - 1] + clampd(f, 0.0, 1.0) * (time_h[i] - time_h[i - 1]);
            ret->t80_h = refine_crossing(time_h, pce, n, i, 5 * h, threshold, ret->t80_h);
        }
    }
    ret->last_time_h = time_h[n - 1];
    if (cross < n) {
        ret->measured = true;
        ret->model = "measured";
    } else {
        if (running_max > 1.0 + rise_tol)
            ret->reference = running_max;
        ret->lower_bound = true;
        r = predict(time_h, pce, n, STABILITY_THRESHOLD * ret->reference, ret);
        if (r < 0) {
            ll_error_set(reterr, r, "out of memory");
            goto out;
        }
    }
    ret->normalised_to_max = ret->reference > 1.0;
    ret->last_smoothed = sm[n - 1] / ret->reference;
out:
    free(work);
    free(sm);
    return r;
}

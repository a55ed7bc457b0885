/* eis — see eis.h. Complex arithmetic is written out on a small struct (C99 complex
 * division and multiplication go through slow library calls); the fit parameters are
 * unconstrained (ln R, ln Q, logit n, ln L) so every step of the trust-region solver is a
 * valid circuit.
 */
#include "models/eis.h"

#include <errno.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define K_B_EV 8.617333262e-5
#define MAX_PARAMS 9
#define KK_PER_DECADE 3.0       /* Lin-KK time constants per decade of 1/ω */
#define TRIAL_ITERATIONS 20     /* first try of the grain-boundary + bulk-arc model */
#define EIS_FIT_MAX_POINTS 1000 /* longer spectra are decimated to at most this many points */
#define MAX_ITERATIONS 60       /* per fit; a degenerate model crawls, its best point is kept */
#define LN_CLAMP 120.0          /* |ln R|, |ln Q|, |ln L| beyond this are clamped in the model */

struct cx {
    double re, im;
};

static struct cx cx_add(struct cx a, struct cx b)
{
    return (struct cx){a.re + b.re, a.im + b.im};
}

static struct cx cx_mul(struct cx a, struct cx b)
{
    return (struct cx){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

static struct cx cx_scale(struct cx a, double k)
{
    return (struct cx){a.re * k, a.im * k};
}

static struct cx cx_inv(struct cx a)
{
    double m = a.re * a.re + a.im * a.im;
    return (struct cx){a.re / m, -a.im / m};
}

/* ---- the circuit ---------------------------------------------------------------------- */

struct model {
    bool bulk_cpe; /* R_b‖Q_b (true) or R_b alone (bulk arc above the window) */
    bool gb;       /* R_gb‖Q_gb */
    bool lead;     /* series jωL */
    const char *name;
};

/* Parameter positions in the vector of a model; -1 when absent. */
struct layout {
    int rb, qb, nb, rgb, qgb, ngb, qel, nel, l, count;
};

static void layout_of(const struct model *m, struct layout *lay)
{
    int k = 0;

    lay->rb = k++;
    lay->qb = m->bulk_cpe ? k++ : -1;
    lay->nb = m->bulk_cpe ? k++ : -1;
    lay->rgb = m->gb ? k++ : -1;
    lay->qgb = m->gb ? k++ : -1;
    lay->ngb = m->gb ? k++ : -1;
    lay->qel = k++;
    lay->nel = k++;
    lay->l = m->lead ? k++ : -1;
    lay->count = k;
}

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static double ex(double ln_x)
{
    return exp(clamp(ln_x, -LN_CLAMP, LN_CLAMP));
}

static double logistic(double u)
{
    return 1.0 / (1.0 + exp(-clamp(u, -40.0, 40.0)));
}

static double logit(double n)
{
    return log(n / (1.0 - n));
}

/* A CPE's constants for one parameter vector: (jω)^n = ω^n·(cos(nπ/2) + j·sin(nπ/2)), so
 * per frequency only ω^n = exp(n·ln ω) is left to compute. */
struct cpe {
    double r, q, n, c, s, dn; /* dn = dn/du for n = logistic(u) */
};

static void cpe_prepare(const double *th, int ir, int iq, int in, struct cpe *e)
{
    e->r = ir >= 0 ? ex(th[ir]) : 0.0;
    e->q = ex(th[iq]);
    e->n = logistic(th[in]);
    e->c = cos(e->n * M_PI_2);
    e->s = sin(e->n * M_PI_2);
    e->dn = e->n * (1.0 - e->n);
}

struct prepared {
    struct cpe b, gb, el;
    double rb, l;
};

static void prepare(const struct layout *lay, const double *th, struct prepared *p)
{
    if (lay->qb >= 0)
        cpe_prepare(th, lay->rb, lay->qb, lay->nb, &p->b);
    p->rb = ex(th[lay->rb]);
    if (lay->rgb >= 0)
        cpe_prepare(th, lay->rgb, lay->qgb, lay->ngb, &p->gb);
    cpe_prepare(th, -1, lay->qel, lay->nel, &p->el);
    p->l = lay->l >= 0 ? ex(th[lay->l]) : 0.0;
}

/* R‖CPE, Z = R / (1 + R·Q·(jω)^n), with dZ/d ln R, dZ/d ln Q, dZ/du written into dz. */
static struct cx rq(const struct cpe *e, double w, double lw, int ir, int iq, int in, struct cx *dz)
{
    double m = exp(e->n * lw);
    struct cx sp = {m * e->c, m * e->s}; /* (jω)^n */
    struct cx rqs = cx_scale(sp, e->r * e->q);
    struct cx inv_d = cx_inv((struct cx){1.0 + rqs.re, rqs.im});
    struct cx z = cx_scale(inv_d, e->r);

    (void)w;
    if (dz != NULL) {
        struct cx inv_d2 = cx_mul(inv_d, inv_d);
        struct cx ljw = {lw, M_PI_2};
        struct cx t = cx_mul(cx_scale(rqs, -e->r), inv_d2); /* −R²Q s / D² */
        dz[ir] = cx_scale(inv_d2, e->r);
        dz[iq] = t;
        dz[in] = cx_scale(cx_mul(t, ljw), e->dn);
    }
    return z;
}

/* Z of the model at ω (ln ω = lw) for prepared constants p; dz (lay->count entries, or NULL)
 * gets dZ/dθ. */
static struct cx
model_z(const struct layout *lay, const struct prepared *p, double w, double lw, struct cx *dz)
{
    struct cx z;

    if (lay->qb >= 0) {
        z = rq(&p->b, w, lw, lay->rb, lay->qb, lay->nb, dz);
    } else {
        z = (struct cx){p->rb, 0.0};
        if (dz != NULL)
            dz[lay->rb] = z;
    }
    if (lay->rgb >= 0)
        z = cx_add(z, rq(&p->gb, w, lw, lay->rgb, lay->qgb, lay->ngb, dz));
    {
        double m = exp(p->el.n * lw);
        struct cx zel = cx_inv((struct cx){p->el.q * m * p->el.c, p->el.q * m * p->el.s});
        z = cx_add(z, zel);
        if (dz != NULL) {
            struct cx ljw = {lw, M_PI_2};
            dz[lay->qel] = cx_scale(zel, -1.0);
            dz[lay->nel] = cx_scale(cx_mul(zel, ljw), -p->el.dn);
        }
    }
    if (lay->l >= 0) {
        struct cx zl = {0.0, w * p->l};
        z = cx_add(z, zl);
        if (dz != NULL)
            dz[lay->l] = zl;
    }
    return z;
}

/* ---- fitting ---------------------------------------------------------------------------- */

struct spectrum {
    size_t n;
    double *w;         /* angular frequency, sorted descending */
    double *lw;        /* ln w */
    double *zr, *zi;   /* measured Z = Z' + jZ'' */
    double *inv_mod;   /* 1 / |Z| (modulus weighting) */
    struct layout lay; /* of the model being fitted */
};

static int fit_f(const gsl_vector *x, void *params, gsl_vector *f)
{
    const struct spectrum *s = params;
    struct prepared p;

    prepare(&s->lay, x->data, &p);
    for (size_t i = 0; i < s->n; i++) {
        struct cx z = model_z(&s->lay, &p, s->w[i], s->lw[i], NULL);
        double re = (z.re - s->zr[i]) * s->inv_mod[i], im = (z.im - s->zi[i]) * s->inv_mod[i];
        if (!isfinite(re) || !isfinite(im))
            return GSL_EDOM;
        gsl_vector_set(f, 2 * i, re);
        gsl_vector_set(f, 2 * i + 1, im);
    }
    return GSL_SUCCESS;
}

static int fit_df(const gsl_vector *x, void *params, gsl_matrix *jac)
{
    const struct spectrum *s = params;
    struct cx dz[MAX_PARAMS];
    struct prepared p;

    prepare(&s->lay, x->data, &p);
    for (size_t i = 0; i < s->n; i++) {
        model_z(&s->lay, &p, s->w[i], s->lw[i], dz);
        for (int k = 0; k < s->lay.count; k++) {
            double re = dz[k].re * s->inv_mod[i], im = dz[k].im * s->inv_mod[i];
            if (!isfinite(re) || !isfinite(im))
                return GSL_EDOM;
            gsl_matrix_set(jac, 2 * i, (size_t)k, re);
            gsl_matrix_set(jac, 2 * i + 1, (size_t)k, im);
        }
    }
    return GSL_SUCCESS;
}

struct fit_result {
    double th[MAX_PARAMS];
    double sd[MAX_PARAMS]; /* standard errors of th (in the fitted, log/logit, scale) */
    double chisq;
    int iterations;
    bool ok;
};

/* Fits the model laid out in s->lay from th0 with Levenberg–Marquardt. */
static int run_fit(struct spectrum *s, const double *th0, int max_iter, struct fit_result *res)
{
    gsl_multifit_nlinear_fdf fdf;
    gsl_multifit_nlinear_parameters par = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w;
    gsl_matrix *cov = NULL;
    size_t p = (size_t)s->lay.count, nr = 2 * s->n;
    double th[MAX_PARAMS];
    gsl_vector_view x0;
    int info, r = 0;

    res->ok = false;
    if (nr <= p)
        return -EINVAL;
    memcpy(th, th0, p * sizeof(double));
    fdf.f = fit_f;
    fdf.df = fit_df;
    fdf.fvv = NULL;
    fdf.n = nr;
    fdf.p = p;
    fdf.params = s;
    par.trs = gsl_multifit_nlinear_trs_lm;
    par.scale = gsl_multifit_nlinear_scale_more;
    par.solver = gsl_multifit_nlinear_solver_cholesky;
    w = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &par, nr, p);
    cov = gsl_matrix_alloc(p, p);
    if (w == NULL || cov == NULL) {
        r = -ENOMEM;
        goto out;
    }
    x0 = gsl_vector_view_array(th, p);
    if (gsl_multifit_nlinear_init(&x0.vector, &fdf, w) != GSL_SUCCESS)
        goto out;
    /* a failed step (e.g. GSL_EDOM) or the iteration limit still leaves the best point */
    (void)gsl_multifit_nlinear_driver((size_t)max_iter, 1e-7, 1e-8, 0.0, NULL, NULL, &info, w);
    {
        const gsl_vector *x = gsl_multifit_nlinear_position(w);
        const gsl_vector *f = gsl_multifit_nlinear_residual(w);
        double chisq;
        gsl_blas_ddot(f, f, &chisq);
        if (!isfinite(chisq))
            goto out;
        for (size_t k = 0; k < p; k++)
            res->th[k] = gsl_vector_get(x, k);
        res->chisq = chisq;
        res->iterations = (int)gsl_multifit_nlinear_niter(w);
        if (gsl_multifit_nlinear_covar(gsl_multifit_nlinear_jac(w), 0.0, cov) == GSL_SUCCESS) {
            double s2 = chisq / (double)(nr - p);
            for (size_t k = 0; k < p; k++)
                res->sd[k] = sqrt(fabs(gsl_matrix_get(cov, k, k)) * s2);
        } else {
            for (size_t k = 0; k < p; k++)
                res->sd[k] = (double)NAN;
        }
        res->ok = true;
    }
out:
    gsl_matrix_free(cov);
    gsl_multifit_nlinear_free(w);
    return r;
}

/* ---- initial guesses ------------------------------------------------------------------- */

struct guess {
    double r_hf;    /* Z' at the highest frequency (intercept) */
    double r_total; /* Z' at the foot of the spike (minimum of −Z'' before it) */
    double w_apex;  /* ω of the largest −Z'' before the spike */
    double w_apex2; /* ω of a second, lower-frequency arc, or NAN */
    double r_mid;   /* Z' at the minimum between the two arcs, or NAN */
    double q_el, n_el;
    double l; /* series inductance from Z'' > 0 at the top, 0 when none */
};

static void make_guess(const struct spectrum *s, struct guess *g)
{
    size_t n = s->n, m = n - 1;
    double wmin = s->w[n - 1];

    /* walk down the low-frequency spike (−Z'' falling towards higher frequency) */
    while (m > 0 && -s->zi[m - 1] < -s->zi[m])
        m--;
    bool spike = m < n - 2;
    if (!spike)
        m = n - 1;
    g->r_total = s->zr[m];
    g->r_hf = s->zr[0];
    /* apex: the largest −Z'' above the spike's foot (3-point average against noise) */
    size_t best = 0;
    double best_y = -HUGE_VAL;
    for (size_t i = 0; i < m || i == 0; i++) {
        double y = -s->zi[i];
        if (i > 0 && i + 1 < n)
            y = (-s->zi[i - 1] - s->zi[i] - s->zi[i + 1]) / 3.0;
        if (y > best_y) {
            best_y = y;
            best = i;
        }
    }
    g->w_apex = s->w[best];
    /* a second arc: a local maximum below the first, separated by a dip */
    g->w_apex2 = (double)NAN;
    g->r_mid = (double)NAN;
    {
        size_t i = best + 1, dip;
        while (i < m && -s->zi[i] <= -s->zi[i - 1])
            i++;
        dip = i - 1;
        size_t top = dip;
        for (; i < m; i++)
            if (-s->zi[i] > -s->zi[top])
                top = i;
        if (top > dip + 1 && -s->zi[top] > 1.1 * -s->zi[dip] && -s->zi[top] > 0.05 * best_y) {
            g->w_apex2 = s->w[top];
            g->r_mid = s->zr[dip];
        }
    }
    if (spike && n >= 3) {
        double y1 = -s->zi[n - 1], y3 = -s->zi[n - 3];
        double slope = (log(y1) - log(y3)) / (log(s->w[n - 1]) - log(s->w[n - 3]));
        g->n_el = clamp(-slope, 0.5, 0.98);
        g->q_el = sin(g->n_el * M_PI_2) / (y1 * pow(s->w[n - 1], g->n_el));
    } else {
        g->n_el = 0.9;
        g->q_el = 100.0 / (fmax(g->r_total, 1e-6) * pow(wmin, 0.9)); /* negligible */
    }
    if (!isfinite(g->q_el) || !(g->q_el > 0.0))
        g->q_el = 1.0 / (fmax(g->r_total, 1e-6) * wmin);
    g->l = s->zi[0] > 0.0 ? s->zi[0] / s->w[0] : 0.0;
    if (!(g->r_total > 0.0))
        g->r_total = fmax(fabs(g->r_hf), 1e-3);
    if (!(g->r_hf > 0.0))
        g->r_hf = 0.1 * g->r_total;
}

/* Parameter vector for a model from explicit element guesses. */
static void start_vector(const struct layout *lay,
                         const struct guess *g,
                         double rb,
                         double wb,
                         double rgb,
                         double wgb,
                         double *th)
{
    const double n0 = 0.9;

    th[lay->rb] = log(fmax(rb, 1e-9));
    if (lay->qb >= 0) {
        th[lay->qb] = -log(fmax(rb, 1e-9)) - n0 * log(wb);
        th[lay->nb] = logit(n0);
    }
    if (lay->rgb >= 0) {
        th[lay->rgb] = log(fmax(rgb, 1e-9));
        th[lay->qgb] = -log(fmax(rgb, 1e-9)) - n0 * log(wgb);
        th[lay->ngb] = logit(n0);
    }
    th[lay->qel] = log(g->q_el);
    th[lay->nel] = logit(g->n_el);
    if (lay->l >= 0)
        th[lay->l] = log(g->l > 0.0 ? g->l : 1e-9);
}

enum { MODEL_RQ, MODEL_RQ_GB, MODEL_R, MODEL_R_GB };

static const struct model models[] = {
    [MODEL_RQ] = {true,  false, false, "R_b|Q_b + Q_el"            },
    [MODEL_RQ_GB] = {true,  true,  false, "R_b|Q_b + R_gb|Q_gb + Q_el"},
    [MODEL_R] = {false, false, false, "R_b + Q_el"                },
    [MODEL_R_GB] = {false, true,  false, "R_b + R_gb|Q_gb + Q_el"    },
};

/* Copies the elements of a fit of model `from` into the start vector of model `to` (which
 * has every element of `from`); the caller fills the elements `from` lacks. */
static void
extend(const struct model *from, const struct fit_result *res, const struct model *to, double *th)
{
    struct layout a, b;
    struct model f = *from;

    f.lead = to->lead;
    layout_of(&f, &a);
    layout_of(to, &b);
    th[b.rb] = res->th[a.rb];
    if (a.qb >= 0) {
        th[b.qb] = res->th[a.qb];
        th[b.nb] = res->th[a.nb];
    }
    if (a.rgb >= 0) {
        th[b.rgb] = res->th[a.rgb];
        th[b.qgb] = res->th[a.qgb];
        th[b.ngb] = res->th[a.ngb];
    }
    th[b.qel] = res->th[a.qel];
    th[b.nel] = res->th[a.nel];
    if (b.l >= 0)
        th[b.l] = res->th[a.l];
}

/* ---- public ---------------------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
    const double *x = a, *y = b; /* first element of each triple: frequency */
    return (x[0] < y[0]) - (x[0] > y[0]);
}

/* Effective capacitance (Brug / Hsu–Mansfeld) of R‖Q with exponent n: (R^(1−n)·Q)^(1/n). */
static double c_eff(double r, double q, double n)
{
    return pow(pow(r, 1.0 - n) * q, 1.0 / n);
}

/* Whether a fit may be selected: the bulk arc is the one at the higher frequency (smaller
 * capacitance) and, with a known cell constant, the specific capacitances of the bulk and
 * grain-boundary arcs are in their ranges. */
static bool admissible(const struct layout *lay, const double *th, double cell_constant_cm_inv)
{
    if (lay->rgb >= 0 && cell_constant_cm_inv > 0.0 &&
        c_eff(ex(th[lay->rgb]), ex(th[lay->qgb]), logistic(th[lay->ngb])) * cell_constant_cm_inv <
            EIS_GB_MIN_F_CM)
        return false;
    if (lay->qb < 0)
        return true;
    double cb = c_eff(ex(th[lay->rb]), ex(th[lay->qb]), logistic(th[lay->nb]));
    if (lay->rgb >= 0 && !(cb < c_eff(ex(th[lay->rgb]), ex(th[lay->qgb]), logistic(th[lay->ngb]))))
        return false;
    return !(cell_constant_cm_inv > 0.0) || cb * cell_constant_cm_inv <= EIS_BULK_MAX_F_CM;
}

/* The candidate fits so far: the best overall, and per circuit the best BIC with its R_b and
 * R_gb (for the model-choice uncertainty) and its fit (to start the richer circuit from). */
struct selection {
    struct fit_result best;
    struct model best_model;
    double best_bic;
    double model_bic[4], model_rb[4], model_rgb[4];
    struct fit_result model_res[4];
};

/* Validates and copies the spectrum into s, sorted by descending frequency, decimated to at
 * most EIS_FIT_MAX_POINTS points. The arrays of s are the caller's to free. */
static int spectrum_load(const double *frequency_hz,
                         const double *z_real_ohm,
                         const double *z_imag_ohm,
                         size_t n,
                         struct spectrum *s,
                         struct ll_error *reterr)
{
    double *tri = malloc(3 * n * sizeof(double));
    int r = 0;

    s->w = malloc(n * sizeof(double));
    s->lw = malloc(n * sizeof(double));
    s->zr = malloc(n * sizeof(double));
    s->zi = malloc(n * sizeof(double));
    s->inv_mod = malloc(n * sizeof(double));
    if (tri == NULL || s->w == NULL || s->lw == NULL || s->zr == NULL || s->zi == NULL ||
        s->inv_mod == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(frequency_hz[i] > 0.0) || !isfinite(frequency_hz[i]) || !isfinite(z_real_ohm[i]) ||
            !isfinite(z_imag_ohm[i]) || (z_real_ohm[i] == 0.0 && z_imag_ohm[i] == 0.0)) {
            r = ll_error_set(
                reterr, -EINVAL, "point %zu: frequency must be > 0 and Z finite, non-zero", i);
            goto out;
        }
        tri[3 * i] = frequency_hz[i];
        tri[3 * i + 1] = z_real_ohm[i];
        tri[3 * i + 2] = z_imag_ohm[i];
    }
    qsort(tri, n, 3 * sizeof(double), cmp_desc);
    if (n > EIS_FIT_MAX_POINTS) {
        /* long spectra: every k-th point (log-spaced sweeps stay log-spaced), so one message of
         * 32 × 100 000 points cannot stall the caller */
        size_t k = (n + EIS_FIT_MAX_POINTS - 1) / EIS_FIT_MAX_POINTS, m = 0;
        for (size_t i = 0; i < n; i += k, m++)
            memmove(&tri[3 * m], &tri[3 * i], 3 * sizeof(double));
        n = m;
    }
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->w[i] = 2.0 * M_PI * tri[3 * i];
        s->lw[i] = log(s->w[i]);
        s->zr[i] = tri[3 * i + 1];
        s->zi[i] = tri[3 * i + 2];
        s->inv_mod[i] = 1.0 / hypot(s->zr[i], s->zi[i]);
    }
out:
    free(tri);
    return r;
}

/* Start vectors for circuit mi (layout in s->lay) into th0; returns how many. The
 * grain-boundary circuit with a bulk arc also starts from the fits of the two circuits it
 * extends, found earlier in sel. */
static int starts_for(size_t mi,
                      const struct model *m,
                      const struct spectrum *s,
                      const struct guess *g,
                      const struct selection *sel,
                      double th0[3][MAX_PARAMS])
{
    int n_starts = 0;

    switch (mi) {
    case MODEL_R:
        start_vector(&s->lay, g, g->r_hf, 0, 0, 0, th0[n_starts++]);
        break;
    case MODEL_R_GB:
        start_vector(&s->lay,
                     g,
                     g->r_hf,
                     0,
                     fmax(g->r_total - g->r_hf, 0.05 * g->r_total),
                     g->w_apex,
                     th0[n_starts++]);
        break;
    case MODEL_RQ:
        start_vector(&s->lay, g, g->r_total, g->w_apex, 0, 0, th0[n_starts++]);
        break;
    default: /* MODEL_RQ_GB */
        if (isfinite(g->w_apex2))
            start_vector(&s->lay,
                         g,
                         g->r_mid,
                         g->w_apex,
                         g->r_total - g->r_mid,
                         g->w_apex2,
                         th0[n_starts++]);
        /* the R_b + R_gb‖Q_gb fit with a bulk arc just above the window */
        if (sel->model_res[MODEL_R_GB].ok) {
            extend(&models[MODEL_R_GB], &sel->model_res[MODEL_R_GB], m, th0[n_starts]);
            th0[n_starts][s->lay.qb] = -th0[n_starts][s->lay.rb] - 0.9 * log(3.0 * s->w[0]);
            th0[n_starts][s->lay.nb] = logit(0.9);
            n_starts++;
        }
        /* the R_b‖Q_b fit with a small grain-boundary arc a decade and a half below it */
        if (sel->model_res[MODEL_RQ].ok) {
            const struct fit_result *q = &sel->model_res[MODEL_RQ];
            struct layout ql;
            layout_of(&models[MODEL_RQ], &ql);
            double wb = exp(-(q->th[ql.rb] + q->th[ql.qb]) / logistic(q->th[ql.nb]));
            extend(&models[MODEL_RQ], q, m, th0[n_starts]);
            th0[n_starts][s->lay.rgb] = q->th[ql.rb] + log(0.2);
            th0[n_starts][s->lay.qgb] = -th0[n_starts][s->lay.rgb] - 0.9 * log(wb / 30.0);
            th0[n_starts][s->lay.ngb] = logit(0.9);
            n_starts++;
        }
        break;
    }
    return n_starts;
}

static double bic_of(const struct spectrum *s, double chisq)
{
    double nr = 2.0 * (double)s->n;

    return nr * log(fmax(chisq, 1e-300) / nr) + s->lay.count * log(nr);
}

/* Fits every candidate circuit from its starts and records the admissible ones in sel. */
static int fit_all(struct spectrum *s,
                   const struct guess *g,
                   double cell_constant_cm_inv,
                   struct selection *sel)
{
    /* simplest first, so that the richest circuit can start from the two it extends */
    static const size_t order[] = {MODEL_R, MODEL_R_GB, MODEL_RQ, MODEL_RQ_GB};
    struct fit_result res;
    int r;

    for (size_t oi = 0; oi < 4; oi++) {
        size_t mi = order[oi];
        struct model m = models[mi];
        double th0[3][MAX_PARAMS];

        m.lead = g->l > 0.0;
        layout_of(&m, &s->lay);
        int n_starts = starts_for(mi, &m, s, g, sel, th0);
        for (int k = 0; k < n_starts; k++) {
            /* the eight-parameter circuit is tried briefly first and finished only when it
             * could compete: where it is degenerate (no second arc) it crawls, and costs most */
            bool trial = mi == MODEL_RQ_GB;
            r = run_fit(s, th0[k], trial ? TRIAL_ITERATIONS : MAX_ITERATIONS, &res);
            if (r < 0)
                return r;
            if (trial && res.ok && res.iterations >= TRIAL_ITERATIONS &&
                bic_of(s, res.chisq) < sel->best_bic + 10.0) {
                double th[MAX_PARAMS];
                int done = res.iterations;
                memcpy(th, res.th, sizeof(th));
                r = run_fit(s, th, MAX_ITERATIONS, &res);
                if (r < 0)
                    return r;
                res.iterations += done;
            }
            if (!res.ok || !admissible(&s->lay, res.th, cell_constant_cm_inv))
                continue;
            double bic = bic_of(s, res.chisq);
            if (bic < sel->model_bic[mi]) {
                sel->model_bic[mi] = bic;
                sel->model_rb[mi] = ex(res.th[s->lay.rb]);
                sel->model_rgb[mi] = m.gb ? ex(res.th[s->lay.rgb]) : 0.0;
                sel->model_res[mi] = res;
            }
            if (bic < sel->best_bic) {
                sel->best_bic = bic;
                sel->best = res;
                sel->best_model = m;
            }
        }
    }
    return 0;
}

/* The selected fit as an eis_fit. */
static void fill_result(struct spectrum *s, const struct selection *sel, struct eis_fit *ret)
{
    const struct fit_result *best = &sel->best;
    const struct model *bm = &sel->best_model;

    layout_of(bm, &s->lay);
    ret->model = bm->name;
    ret->gb_fitted = bm->gb;
    ret->lead_fitted = bm->lead;
    ret->r_bulk_ohm = ex(best->th[s->lay.rb]);
    ret->r_bulk_sd_ohm = ret->r_bulk_ohm * best->sd[s->lay.rb];
    ret->q_bulk = ret->n_bulk = ret->f_apex_bulk_hz = ret->c_bulk_f = (double)NAN;
    if (bm->bulk_cpe) {
        ret->q_bulk = ex(best->th[s->lay.qb]);
        ret->n_bulk = logistic(best->th[s->lay.nb]);
        ret->f_apex_bulk_hz = pow(ret->r_bulk_ohm * ret->q_bulk, -1.0 / ret->n_bulk) / (2.0 * M_PI);
        ret->c_bulk_f = c_eff(ret->r_bulk_ohm, ret->q_bulk, ret->n_bulk);
    }
    ret->bulk_resolved = bm->bulk_cpe && ret->f_apex_bulk_hz <= s->w[0] / (2.0 * M_PI) &&
                         ret->f_apex_bulk_hz >= s->w[s->n - 1] / (2.0 * M_PI);
    ret->q_gb = ret->n_gb = (double)NAN;
    if (bm->gb) {
        ret->r_gb_ohm = ex(best->th[s->lay.rgb]);
        ret->r_gb_sd_ohm = ret->r_gb_ohm * best->sd[s->lay.rgb];
        ret->q_gb = ex(best->th[s->lay.qgb]);
        ret->n_gb = logistic(best->th[s->lay.ngb]);
    }
    /* Circuits within ΔBIC < 10 of the best are not ruled out by the data: the largest
     * difference of their R_b (R_gb) from the selected one joins its standard error (it
     * dominates when a grain-boundary arc near the top of the window cannot be told apart
     * from the bulk's tail). */
    double spread_b = 0.0, spread_gb = 0.0;
    for (size_t mi = 0; mi < 4; mi++) {
        if (!(sel->model_bic[mi] < sel->best_bic + 10.0))
            continue;
        spread_b = fmax(spread_b, fabs(sel->model_rb[mi] - ret->r_bulk_ohm));
        spread_gb = fmax(spread_gb, fabs(sel->model_rgb[mi] - ret->r_gb_ohm));
    }
    ret->r_bulk_sd_ohm = hypot(ret->r_bulk_sd_ohm, spread_b);
    if (bm->gb)
        ret->r_gb_sd_ohm = hypot(ret->r_gb_sd_ohm, spread_gb);
    ret->q_el = ex(best->th[s->lay.qel]);
    ret->n_el = logistic(best->th[s->lay.nel]);
    ret->l_lead_h = bm->lead ? ex(best->th[s->lay.l]) : 0.0;
    ret->fit_residual = sqrt(best->chisq / (2.0 * (double)s->n));
    ret->bic = sel->best_bic;
    ret->iterations = best->iterations;
}

int eis_fit_spectrum(const double *frequency_hz,
                     const double *z_real_ohm,
                     const double *z_imag_ohm,
                     size_t n,
                     double cell_constant_cm_inv,
                     struct eis_fit *ret,
                     struct ll_error *reterr)
{
    struct spectrum s = {0};
    struct guess g;
    struct selection sel = {
        .best_bic = HUGE_VAL, .model_bic = {HUGE_VAL, HUGE_VAL, HUGE_VAL, HUGE_VAL}
    };
    int r;

    memset(ret, 0, sizeof(*ret));
    if (n < 5)
        return ll_error_set(reterr, -EINVAL, "%zu points, need at least 5", n);
    r = spectrum_load(frequency_hz, z_real_ohm, z_imag_ohm, n, &s, reterr);
    if (r < 0)
        goto out;
    if (s.n < 5) { /* cannot happen: decimation keeps at least EIS_FIT_MAX_POINTS */
        r = ll_error_set(reterr, -EINVAL, "too few points");
        goto out;
    }
    make_guess(&s, &g);
    r = fit_all(&s, &g, cell_constant_cm_inv, &sel);
    if (r < 0) {
        ll_error_set(reterr, r, "out of memory");
        goto out;
    }
    if (!sel.best.ok) {
        r = ll_error_set(reterr, -EINVAL, "no equivalent circuit could be fitted");
        goto out;
    }
    fill_result(&s, &sel, ret);
out:
    free(s.inv_mod);
    free(s.zi);
    free(s.zr);
    free(s.lw);
    free(s.w);
    return r;
}

int eis_kk_residual(const double *frequency_hz,
                    const double *z_real_ohm,
                    const double *z_imag_ohm,
                    size_t n,
                    double *ret_residual,
                    struct ll_error *reterr)
{
    gsl_matrix *X = NULL, *cov = NULL;
    gsl_vector *y = NULL, *c = NULL;
    gsl_multifit_linear_workspace *work = NULL;
    double w_min = HUGE_VAL, w_max = 0.0, chisq;
    size_t m, p;
    int r = 0;

    *ret_residual = (double)NAN;
    if (n < 5)
        return ll_error_set(reterr, -EINVAL, "%zu points, need at least 5", n);
    for (size_t i = 0; i < n; i++) {
        if (!(frequency_hz[i] > 0.0) || !isfinite(frequency_hz[i]) || !isfinite(z_real_ohm[i]) ||
            !isfinite(z_imag_ohm[i]) || (z_real_ohm[i] == 0.0 && z_imag_ohm[i] == 0.0))
            return ll_error_set(
                reterr, -EINVAL, "point %zu: frequency must be > 0 and Z finite, non-zero", i);
        w_min = fmin(w_min, 2.0 * M_PI * frequency_hz[i]);
        w_max = fmax(w_max, 2.0 * M_PI * frequency_hz[i]);
    }
    /* KK_PER_DECADE time constants per decade, at least 1, at most n/3 (unknowns: R0, R_k,
     * L, 1/C) */
    m = (size_t)ceil(KK_PER_DECADE * log10(w_max / w_min));
    m = m < 1 ? 1 : m;
    m = m > n / 3 ? (n / 3 > 0 ? n / 3 : 1) : m;
    p = m + 3;
    if (2 * n <= p)
        return ll_error_set(reterr, -EINVAL, "too few points for the Kramers-Kronig test");
    X = gsl_matrix_alloc(2 * n, p);
    cov = gsl_matrix_alloc(p, p);
    y = gsl_vector_alloc(2 * n);
    c = gsl_vector_alloc(p);
    work = gsl_multifit_linear_alloc(2 * n, p);
    if (X == NULL || cov == NULL || y == NULL || c == NULL || work == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        double w = 2.0 * M_PI * frequency_hz[i];
        double inv_mod = 1.0 / hypot(z_real_ohm[i], z_imag_ohm[i]);
        size_t re = 2 * i, im = 2 * i + 1;
        /* columns: R0, R_1..R_m, L (scaled by 1/w_max), 1/C (scaled by w_min) */
        gsl_matrix_set(X, re, 0, inv_mod);
        gsl_matrix_set(X, im, 0, 0.0);
        for (size_t k = 0; k < m; k++) {
            double tau = m > 1 ? exp(-log(w_max) + log(w_max / w_min) * (double)k / (double)(m - 1))
                               : 1.0 / sqrt(w_min * w_max);
            double wt = w * tau, den = 1.0 + wt * wt;
            gsl_matrix_set(X, re, k + 1, inv_mod / den);
            gsl_matrix_set(X, im, k + 1, -inv_mod * wt / den);
        }
        gsl_matrix_set(X, re, m + 1, 0.0);
        gsl_matrix_set(X, im, m + 1, inv_mod * w / w_max);
        gsl_matrix_set(X, re, m + 2, 0.0);
        gsl_matrix_set(X, im, m + 2, -inv_mod * w_min / w);
        gsl_vector_set(y, re, z_real_ohm[i] * inv_mod);
        gsl_vector_set(y, im, z_imag_ohm[i] * inv_mod);
    }
    if (gsl_multifit_linear(X, y, c, cov, &chisq, work) != GSL_SUCCESS || !isfinite(chisq)) {
        r = ll_error_set(reterr, -EINVAL, "the Kramers-Kronig fit failed");
        goto out;
    }
    *ret_residual = sqrt(chisq / (2.0 * (double)n));
out:
    gsl_multifit_linear_free(work);
    gsl_vector_free(c);
    gsl_vector_free(y);
    gsl_matrix_free(cov);
    gsl_matrix_free(X);
    return r;
}

double eis_conductivity(double thickness_cm, double area_cm2, double r_ohm)
{
    if (!(thickness_cm > 0.0) || !(area_cm2 > 0.0) || !(r_ohm > 0.0))
        return (double)NAN;
    return thickness_cm / (r_ohm * area_cm2);
}

int eis_arrhenius_fit(const double *temp_c,
                      const double *sigma_s_cm,
                      size_t n,
                      struct eis_arrhenius *ret,
                      struct ll_error *reterr)
{
    double *x = NULL, *y = NULL, c0, c1, cov00, cov01, cov11, sumsq;
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    if (n < 3)
        return ll_error_set(reterr, -EINVAL, "%zu temperatures, need at least 3", n);
    x = malloc(n * sizeof(double));
    y = malloc(n * sizeof(double));
    if (x == NULL || y == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(sigma_s_cm[i] > 0.0) || !isfinite(sigma_s_cm[i]) || !(temp_c[i] > -273.15)) {
            r = ll_error_set(reterr, -EINVAL, "point %zu: sigma must be > 0 and T above 0 K", i);
            goto out;
        }
        x[i] = 1.0 / (K_B_EV * (temp_c[i] + 273.15));
        y[i] = log(sigma_s_cm[i]);
    }
    /* distinct temperatures: at least 3 different values of x */
    {
        size_t distinct = 0;
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t k = 0; k < i; k++)
                seen |= fabs(x[k] - x[i]) < 1e-9 * fabs(x[i]);
            distinct += !seen;
        }
        if (distinct < 3) {
            r = ll_error_set(
                reterr, -EINVAL, "%zu distinct temperatures, need at least 3", distinct);
            goto out;
        }
    }
    /* ln σ = ln σ0 − Ea·x; gsl_fit_linear's covariance comes from the residual scatter */
    if (gsl_fit_linear(x, 1, y, 1, n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq) != GSL_SUCCESS) {
        r = ll_error_set(reterr, -EINVAL, "the Arrhenius fit failed");
        goto out;
    }
    ret->ea_ev = -c1;
    ret->ea_sd_ev = sqrt(cov11);
    ret->log10_sigma0 = c0 / M_LN10;
    ret->log10_sigma0_sd = sqrt(cov00) / M_LN10;
    ret->n = n;
out:
    free(y);
    free(x);
    return r;
}

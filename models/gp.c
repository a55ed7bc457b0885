/* gp — Gaussian-process regression (Matérn 5/2 ARD, optionally plus a first-order additive
 * Matérn 5/2 part, constant mean, Gaussian noise).
 *
 * The idea and references are in gp.h. Implementation notes:
 *
 * - Everything inside works on the standardised scale ys = (y - y_mean) / y_std; gp_predict
 *   converts back. The kernel's derivative is written through g(r^2) = dk/d(r^2) =
 *   -5/6 s_f^2 (1 + sqrt5 r) exp(-sqrt5 r), which has no singularity at r = 0.
 * - The additive part (gp_options.additive, gp_hyper.add_var > 0) adds
 *   s_a^2 / d sum_j m(|x_j - x'_j| / l'_j), m the unit-variance 1-D Matérn 5/2, so that
 *   k(x, x) = s_f^2 + s_a^2 (Duvenaud, Nickisch, Rasmussen, "Additive Gaussian processes",
 *   NIPS 2011, first order; Kandasamy et al., ICML 2015). Its 1-D exponentials are products
 *   of per-point factors (add_factors), so it costs no exponential per pair. With shared
 *   length scales (additive = 1) l'_j = l_j and the gradient with respect to log l_j is the
 *   sum of both parts'; with own ones (additive = 2) l'_j are d more parameters with the
 *   length scales' prior. s_a^2 has the prior of s_f^2; the fit can make either part small.
 * - Marginal likelihood (Rasmussen & Williams eq. 2.30, 5.9): with K = s_f^2 R + s_n^2 I,
 *   alpha = K^-1 (ys - c),
 *       lml = -1/2 (ys - c)^T alpha - sum_i log L_ii - n/2 log 2pi,
 *       d lml / d theta = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta),   d lml / dc = sum_i alpha_i.
 *   K^-1 comes from gsl_linalg_cholesky_invert; the trace is a sum over pairs.
 * - Fitting maximises lml + log prior over an unconstrained vector u: log l_j = a + (b - a)
 *   sigmoid(u_j) with [e^a, e^b] = [GP_LENGTH_SCALE_MIN, GP_LENGTH_SCALE_MAX]; log s_f^2;
 *   s_n^2 = min_noise_var + exp(u_n); c. The priors are those of BoTorch's default single-task
 *   GP (Gamma(3, 6) on each length scale, Gamma(2, 0.15) on s_f^2, Gamma(1.1, 0.05) on s_n^2)
 *   plus N(0, 1) on c; they keep a handful of noisy points from producing absurd fits.
 *   With opt->fix_mean the mean c is held at the caller's value (its gradient component and
 *   prior are dropped) and only the kernel's hyperparameters are fitted.
 *   The first start is the prior's centre (or the caller's start, gp_fit_from), the others are
 *   drawn from a gsl_rng seeded with opt->seed, so a fit is deterministic per seed. Each
 *   likelihood evaluation costs O(n^3) with GSL's reference BLAS, so the restarts are short
 *   runs on a seeded subset of at most GP_FIT_RESTART_N points, and only the best is continued
 *   on all points (on a subset of GP_FIT_POLISH_N above that size). Figures: docs/bench-math.md.
 * - Cholesky: gsl_linalg_cholesky_decomp1; if K is not numerically positive definite a jitter
 *   of 1e-10, 1e-9, ... 1e-4 times (s_f^2 + s_a^2 + s_n^2) is added to the diagonal.
 * - The model keeps L^-1, the inverse of the Cholesky factor (gsl_linalg_tri_invert once per
 *   fit), not L: prediction then needs triangular matrix-vector products (v = L^-1 k for the
 *   variance, L^-T v for its gradient) instead of triangular solves, which GSL's reference
 *   CBLAS does about 3 times slower than the plain loops here (measured: 3.3 us vs 1.1 us at
 *   n = 100); the planner predicts millions of times. L^-1 is stored row-major with a row
 *   stride `cap` > n, so that gp_add_observation appends a row in O(n^2) without refactorising:
 *   L grows by (l^T, s) and L^-1 by (-(L^-T l)^T / s, 1/s).
 */
#include "models/gp.h"

#include <assert.h>
#include <errno.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SQRT5 2.23606797749978969641
#define LOG_2PI 1.83787706640934548356

/* The search in stages (see search_hyper): restarts on at most GP_FIT_RESTART_N observations,
 * each run for at most GP_FIT_RESTART_ITER BFGS iterations; the best continued for at most
 * GP_FIT_POLISH_ITER iterations on at most GP_FIT_POLISH_N observations. A run also stops when
 * the objective improved by less than GP_FIT_FTOL over GP_FIT_STALL iterations.
 * GP_FIT_POLISH_N was 200 with the ARD kernel alone; the additive part makes a likelihood
 * evaluation about 1.7 times dearer, and at 80 a proposal at n = 100 stays within its time
 * budget while the planner's results at 134 evaluations do not change beyond seed noise
 * (docs/bench-planner.md). */
#define GP_FIT_RESTART_N 40
#define GP_FIT_RESTART_ITER 15
#define GP_FIT_POLISH_N 80
#define GP_FIT_POLISH_ITER 40
#define GP_FIT_FTOL 0.02
#define GP_FIT_STALL 2
#define GP_SPARE_ROWS 16
/* gp_predict's stack buffer: k, v, w and, for gradients, dk/dx (n x d) */
#define GP_PREDICT_STACK_DOUBLES (6 * GP_PREDICT_STACK_N)

/* priors (see the file comment) */
#define PRIOR_LS_SHAPE 3.0
#define PRIOR_LS_RATE 6.0
#define PRIOR_SF_SHAPE 2.0
#define PRIOR_SF_RATE 0.15
#define PRIOR_SN_SHAPE 1.1
#define PRIOR_SN_RATE 0.05
#define PRIOR_SA_SHAPE 2.0
#define PRIOR_SA_RATE 0.15

/* The kernel's parameters in the form its evaluation needs. */
struct kern {
    size_t d;
    double inv_ls2[GP_MAX_DIM];  /* ARD part: 1 / l_j^2 */
    double sf2;                  /* ARD part's variance */
    double inv_als2[GP_MAX_DIM]; /* additive part: 1 / l'_j^2 */
    double inv_als[GP_MAX_DIM];  /* and 1 / l'_j */
    double sa2n;                 /* additive part's variance / d (0: no additive part) */
    double kxx;                  /* k(x, x) = sf2 + add_var */
};

static void
kern_set(struct kern *kn, size_t d, const double *ls, double sf2, double sa2, const double *als)
{
    kn->d = d;
    kn->sf2 = sf2;
    kn->sa2n = sa2 > 0.0 ? sa2 / (double)d : 0.0;
    kn->kxx = sf2 + (sa2 > 0.0 ? sa2 : 0.0);
    for (size_t j = 0; j < d; j++) {
        kn->inv_ls2[j] = 1.0 / (ls[j] * ls[j]);
        kn->inv_als[j] = sa2 > 0.0 ? 1.0 / als[j] : 0.0;
        kn->inv_als2[j] = kn->inv_als[j] * kn->inv_als[j];
    }
}

struct gp {
    size_t n, d, cap;
    double *x;     /* cap rows of d */
    double *ys;    /* standardised outputs, cap */
    double *Linv;  /* inverse of the lower Cholesky factor L of K (lower triangle), stride cap */
    double *alpha; /* K^-1 (ys - c), cap */
    double diag;   /* s_n^2 + jitter: what the diagonal of K carries beyond k(x, x) */
    struct kern kn;
    double *F; /* the additive part's factors of each point (add_factors), cap rows of 2d */
    int has_F; /* F is valid for all n points (else the exponentials are taken directly) */
    struct gp_hyper h;
};

void gp_options_default(struct gp_options *ret_opt)
{
    ret_opt->seed = 1;
    ret_opt->n_restarts = 5;
    ret_opt->min_noise_var = 1e-6;
    ret_opt->fix_mean = 0;
    ret_opt->fixed_mean = 0.0;
    ret_opt->additive = 0;
}

/* Matérn 5/2 value and g = dk/d(r^2) for a squared scaled distance r2. */
static inline double matern52(double r2, double sf2, double *ret_g)
{
    double r = sqrt(r2);
    double e = exp(-SQRT5 * r);
    if (ret_g)
        *ret_g = -5.0 / 6.0 * sf2 * (1.0 + SQRT5 * r) * e;
    return sf2 * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
}

static inline double scaled_dist2(const double *a, const double *b, const double *inv_ls2, size_t d)
{
    double r2 = 0.0;
    for (size_t j = 0; j < d; j++) {
        double t = a[j] - b[j];
        r2 += t * t * inv_ls2[j];
    }
    return r2;
}

/* The additive part needs exp(-sqrt5 |a_j - b_j| / l'_j) for every input j of every pair; with
 * c_j = sqrt5 / l'_j that is exp(-c_j a_j) exp(c_j b_j) if a_j >= b_j, else exp(c_j a_j)
 * exp(-c_j b_j). The factors F(p) = (exp(-c_j p_j), exp(c_j p_j)) of each stored point are kept
 * (2d values, computed once), so a prediction needs 2d exponentials, not n d; a product of two
 * exponentials keeps their relative accuracy. Returns 0 (no factors: the exponentials are then
 * taken directly) if some |c_j p_j| > GP_ADD_EXP_MAX, where the factors could overflow. */
#define GP_ADD_EXP_MAX 300.0
static int add_factors(const struct kern *kn, const double *p, double *F)
{
    size_t d = kn->d;
    for (size_t j = 0; j < d; j++) {
        double z = SQRT5 * kn->inv_als[j] * p[j];
        if (!(fabs(z) <= GP_ADD_EXP_MAX))
            return 0;
        F[j] = exp(-z);
        F[d + j] = 1.0 / F[j];
    }
    return 1;
}

/* The additive part's sum over j of the 1-D kernels at (a, b), with the 1-D kernels in km and
 * g = dk/d(r_j^2) in ga (each d values, if not NULL); fa, fb are the points' factors
 * (add_factors) or NULL. */
static inline double add_sum(const struct kern *kn,
                             const double *a,
                             const double *b,
                             const double *fa,
                             const double *fb,
                             double *km,
                             double *ga)
{
    size_t d = kn->d;
    double ka = 0.0;
    for (size_t j = 0; j < d; j++) {
        double t = a[j] - b[j];
        double sr = SQRT5 * fabs(t) * kn->inv_als[j];
        double e;
        if (fa && fb) {
            size_t neg = t < 0.0; /* an index, not a branch: the sign is unpredictable */
            e = fa[neg * d + j] * fb[(1 - neg) * d + j];
        } else {
            e = exp(-sr);
        }
        double m = (1.0 + sr + sr * sr / 3.0) * e;
        ka += m;
        if (km)
            km[j] = m;
        if (ga)
            ga[j] = -5.0 / 6.0 * (1.0 + sr) * e;
    }
    return ka;
}

/* k(a, b) for the whole kernel (fa, fb: the points' additive factors, or NULL); *ret_g (if not
 * NULL) gets the ARD part's dk/d(r^2) and *ret_kard (if not NULL) the ARD part's value. */
static inline double kern_eval(const struct kern *kn,
                               const double *a,
                               const double *b,
                               const double *fa,
                               const double *fb,
                               double *ret_g,
                               double *ret_kard)
{
    double k = matern52(scaled_dist2(a, b, kn->inv_ls2, kn->d), kn->sf2, ret_g);
    if (ret_kard)
        *ret_kard = k;
    if (kn->sa2n > 0.0)
        k += kn->sa2n * add_sum(kn, a, b, fa, fb, NULL, NULL);
    return k;
}

/* k(a, b) and its gradient with respect to a (d values, to dk). */
static inline double kern_eval_grad(const struct kern *kn,
                                    const double *a,
                                    const double *b,
                                    const double *fa,
                                    const double *fb,
                                    double *dk)
{
    size_t d = kn->d;
    double g;
    double k = matern52(scaled_dist2(a, b, kn->inv_ls2, d), kn->sf2, &g);
    for (size_t j = 0; j < d; j++)
        dk[j] = 2.0 * g * (a[j] - b[j]) * kn->inv_ls2[j];
    if (kn->sa2n > 0.0) {
        double ga[GP_MAX_DIM];
        k += kn->sa2n * add_sum(kn, a, b, fa, fb, NULL, ga);
        for (size_t j = 0; j < d; j++)
            dk[j] += kn->sa2n * 2.0 * ga[j] * (a[j] - b[j]) * kn->inv_als2[j];
    }
    return k;
}

static int check_data(const double *x, const double *y, size_t n, size_t d, struct ll_error *reterr)
{
    if (!x || !y)
        return ll_error_set(reterr, -EINVAL, "gp: x and y must not be NULL");
    if (n == 0)
        return ll_error_set(reterr, -EINVAL, "gp: no observations (n = 0)");
    if (d == 0 || d > GP_MAX_DIM)
        return ll_error_set(
            reterr, -EINVAL, "gp: dimension %zu is outside 1..%d", d, (int)GP_MAX_DIM);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            return ll_error_set(reterr, -EINVAL, "gp: y[%zu] is not finite", i);
        for (size_t j = 0; j < d; j++)
            if (!isfinite(x[i * d + j]))
                return ll_error_set(reterr, -EINVAL, "gp: x[%zu][%zu] is not finite", i, j);
    }
    return 0;
}

static int check_hyper(const struct gp_hyper *h, size_t d, struct ll_error *reterr)
{
    if (!h || h->d != d)
        return ll_error_set(reterr, -EINVAL, "gp: hyperparameters missing or of wrong dimension");
    for (size_t j = 0; j < d; j++)
        if (!(h->length_scale[j] > 0.0) || !isfinite(h->length_scale[j]))
            return ll_error_set(reterr, -EINVAL, "gp: length scale %zu is not positive", j);
    if (!(h->add_var >= 0.0) || !isfinite(h->add_var))
        return ll_error_set(reterr, -EINVAL, "gp: add_var is not finite or negative");
    for (size_t j = 0; h->add_var > 0.0 && j < d; j++)
        if (!(h->add_length_scale[j] > 0.0) || !isfinite(h->add_length_scale[j]))
            return ll_error_set(
                reterr, -EINVAL, "gp: additive length scale %zu is not positive", j);
    if (!(h->signal_var > 0.0) || !isfinite(h->signal_var) || !(h->noise_var >= 0.0) ||
        !isfinite(h->noise_var) || !isfinite(h->const_mean) || !(h->y_std > 0.0) ||
        !isfinite(h->y_std) || !isfinite(h->y_mean))
        return ll_error_set(reterr, -EINVAL, "gp: a hyperparameter is not finite or not positive");
    return 0;
}

/* ---- likelihood workspace ------------------------------------------------------------- */

struct lml_work {
    size_t n, d;
    const double *x;  /* n rows of d */
    const double *ys; /* standardised outputs */
    gsl_matrix *K;    /* kernel matrix, then its Cholesky factor */
    gsl_matrix *W;    /* K^-1, then alpha alpha^T - K^-1 */
    gsl_matrix *G;    /* g(r^2) per pair (lower triangle) */
    double *A;        /* additive part per pair a > b (index a(a-1)/2 + b) and input j: the 1-D
                         kernel (at 2d p + j) and its g (at 2d p + d + j); allocated on first use */
    gsl_vector *r;    /* ys - c, then alpha */
    double jitter;    /* jitter used by the last factorisation */
};

static void lml_work_free(struct lml_work *w)
{
    gsl_matrix_free(w->K);
    gsl_matrix_free(w->W);
    gsl_matrix_free(w->G);
    free(w->A);
    gsl_vector_free(w->r);
    memset(w, 0, sizeof(*w));
}

static int lml_work_init(struct lml_work *w, const double *x, const double *ys, size_t n, size_t d)
{
    memset(w, 0, sizeof(*w));
    w->n = n;
    w->d = d;
    w->x = x;
    w->ys = ys;
    w->K = gsl_matrix_alloc(n, n);
    w->W = gsl_matrix_alloc(n, n);
    w->G = gsl_matrix_alloc(n, n);
    w->r = gsl_vector_alloc(n);
    if (!w->K || !w->W || !w->G || !w->r) {
        lml_work_free(w);
        return -ENOMEM;
    }
    return 0;
}

/* Fills the lower triangle of out with the kernel (+ diag on the diagonal) and, if G is not
 * NULL, G's lower triangle with the ARD part's g(r^2) and its strict upper triangle with the
 * ARD part's value. */
static void build_kernel(const double *x,
                         size_t n,
                         const struct kern *kn,
                         double diag,
                         gsl_matrix *out,
                         gsl_matrix *G,
                         double *A)
{
    size_t d = kn->d;
    /* the additive part's factors of all points (NULL: exponentials taken directly) */
    double *F = kn->sa2n > 0.0 ? malloc(n * 2 * d * sizeof(double)) : NULL;
    for (size_t a = 0; F && a < n; a++)
        if (!add_factors(kn, x + a * d, F + a * 2 * d)) {
            free(F);
            F = NULL;
        }
    for (size_t a = 0; a < n; a++) {
        double *row = gsl_matrix_ptr(out, a, 0);
        double *grow = G ? gsl_matrix_ptr(G, a, 0) : NULL;
        const double *fa = F ? F + a * 2 * d : NULL;
        for (size_t b = 0; b < a; b++) {
            double g, kard;
            if (A && kn->sa2n > 0.0) {
                /* the additive part's 1-D kernels and g kept for the gradient */
                const double *xa = x + a * d, *xb = x + b * d;
                double *ap = A + (a * (a - 1) / 2 + b) * 2 * d;
                kard = matern52(scaled_dist2(xa, xb, kn->inv_ls2, d), kn->sf2, &g);
                double ka = add_sum(kn, xa, xb, fa, F ? F + b * 2 * d : NULL, ap, ap + d);
                row[b] = kard + kn->sa2n * ka;
            } else {
                row[b] =
                    kern_eval(kn, x + a * d, x + b * d, fa, F ? F + b * 2 * d : NULL, &g, &kard);
            }
            if (grow) {
                grow[b] = g;
                gsl_matrix_set(G, b, a, kard); /* the ARD part in the upper triangle */
            }
        }
        row[a] = kn->kxx + diag;
        if (grow)
            grow[a] = -5.0 / 6.0 * kn->sf2;
    }
    free(F);
}

/* Builds K = s_f^2 R + s_n^2 I (and G) and factorises it with gsl_linalg_cholesky_decomp1,
 * adding a jitter of 1e-10, 1e-9, ... 1e-4 times (s_f^2 + s_n^2) to the diagonal while it is not
 * numerically positive definite. On success K's lower triangle holds L and *ret_jitter the
 * jitter used; -EDOM if even the largest jitter fails. */
static int factorise(const double *x,
                     size_t n,
                     const struct kern *kn,
                     double sn2,
                     gsl_matrix *K,
                     gsl_matrix *G,
                     double *A,
                     double *ret_jitter)
{
    double jitter = 0.0;
    for (int attempt = 0; attempt < 8; attempt++) {
        if (attempt > 0)
            jitter = (kn->kxx + sn2) * pow(10.0, -11 + attempt);
        build_kernel(x, n, kn, sn2 + jitter, K, attempt == 0 ? G : NULL, attempt == 0 ? A : NULL);
        if (gsl_linalg_cholesky_decomp1(K) == GSL_SUCCESS) {
            *ret_jitter = jitter;
            return 0;
        }
    }
    return -EDOM;
}

/* Log marginal likelihood of w's data under (kernel kn, sn2, c) and, if ret_grad is not NULL,
 * its gradient with respect to (log l_1..log l_d, log sf2, log sn2, c, log sa2, log l'_1..log
 * l'_d) (2d + 4 values). Leaves alpha in w->r and the factor in w->K. */
static int lml_eval(struct lml_work *w,
                    const struct kern *kn,
                    double sn2,
                    double c,
                    double *ret_lml,
                    double *ret_grad)
{
    size_t n = w->n, d = w->d;
    const double *inv_ls2 = kn->inv_ls2;
    double sf2 = kn->sf2;
    if (ret_grad && kn->sa2n > 0.0 && !w->A && n > 1) {
        w->A = malloc(n * (n - 1) / 2 * 2 * d * sizeof(double));
        if (!w->A)
            return -ENOMEM;
    }
    int ret = factorise(
        w->x, n, kn, sn2, w->K, ret_grad ? w->G : NULL, ret_grad ? w->A : NULL, &w->jitter);
    if (ret < 0)
        return ret;
    for (size_t a = 0; a < n; a++)
        gsl_vector_set(w->r, a, w->ys[a] - c);
    gsl_linalg_cholesky_svx(w->K, w->r);
    double quad = 0.0, half_logdet = 0.0, sum_alpha = 0.0;
    for (size_t a = 0; a < n; a++) {
        double al = gsl_vector_get(w->r, a);
        quad += (w->ys[a] - c) * al;
        sum_alpha += al;
        half_logdet += log(gsl_matrix_get(w->K, a, a));
    }
    *ret_lml = -0.5 * quad - half_logdet - 0.5 * (double)n * LOG_2PI;
    if (!ret_grad)
        return 0;

    gsl_matrix_memcpy(w->W, w->K);
    gsl_linalg_cholesky_invert(w->W);
    const double *alpha = w->r->data;
    double acc[GP_MAX_DIM] = {0}, acc_a[GP_MAX_DIM] = {0};
    double acc_sf = 0.0, acc_sa = 0.0, trace_w = 0.0;
    for (size_t a = 0; a < n; a++) {
        const double *wrow = gsl_matrix_const_ptr(w->W, a, 0);
        const double *grow = gsl_matrix_const_ptr(w->G, a, 0);
        const double *xa = w->x + a * d;
        trace_w += alpha[a] * alpha[a] - wrow[a];
        for (size_t b = 0; b < a; b++) {
            double wab = alpha[a] * alpha[b] - wrow[b];
            double wg = wab * grow[b];
            const double *xb = w->x + b * d;
            for (size_t j = 0; j < d; j++) {
                double t = xa[j] - xb[j];
                acc[j] += wg * t * t;
            }
            acc_sf += wab * gsl_matrix_get(w->G, b, a);
            if (kn->sa2n > 0.0) {
                const double *ap = w->A + (a * (a - 1) / 2 + b) * 2 * d;
                for (size_t j = 0; j < d; j++) {
                    double t = xa[j] - xb[j];
                    acc_sa += wab * ap[j];
                    acc_a[j] += wab * ap[d + j] * t * t;
                }
            }
        }
    }
    /* d lml/d theta = 1/2 sum_ab W_ab dK_ab; off-diagonal pairs counted once above, so x2 */
    for (size_t j = 0; j < d; j++)
        ret_grad[j] = -2.0 * inv_ls2[j] * acc[j];
    ret_grad[d] = 0.5 * sf2 * trace_w + acc_sf;
    ret_grad[d + 1] = 0.5 * sn2 * trace_w;
    ret_grad[d + 2] = sum_alpha;
    double sa2 = kn->sa2n * (double)d;
    ret_grad[d + 3] = sa2 > 0.0 ? 0.5 * sa2 * trace_w + kn->sa2n * acc_sa : 0.0;
    for (size_t j = 0; j < d; j++)
        ret_grad[d + 4 + j] = -2.0 * kn->sa2n * kn->inv_als2[j] * acc_a[j];
    return 0;
}

int gp_log_marginal_likelihood(const double *x,
                               const double *y,
                               size_t n,
                               size_t d,
                               const struct gp_hyper *hyper,
                               double *ret_lml,
                               double *ret_grad)
{
    if (!ret_lml || check_data(x, y, n, d, NULL) < 0 || check_hyper(hyper, d, NULL) < 0)
        return -EINVAL;
    double *ys = malloc(n * sizeof(*ys));
    if (!ys)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        ys[i] = (y[i] - hyper->y_mean) / hyper->y_std;
    struct lml_work w;
    int ret = lml_work_init(&w, x, ys, n, d);
    if (ret < 0)
        goto out;
    struct kern kn;
    kern_set(
        &kn, d, hyper->length_scale, hyper->signal_var, hyper->add_var, hyper->add_length_scale);
    ret = lml_eval(&w, &kn, hyper->noise_var, hyper->const_mean, ret_lml, ret_grad);
    lml_work_free(&w);
out:
    free(ys);
    return ret;
}

/* ---- hyperparameter search --------------------------------------------------------------- */

#define LOG_LS_MIN (-4.60517018598809136804) /* log 0.01 */
#define LOG_LS_MAX (2.30258509299404568402)  /* log 10 */

/* The optimiser asks for f and df at the same point separately; the last point's values are
 * kept so that a repeated request costs nothing. */
struct fit_params {
    struct lml_work *w;
    double min_noise_var;
    int fix_mean;   /* the constant mean is not fitted: it stays at fixed_c */
    double fixed_c; /* on the standardised scale */
    int additive;   /* gp_options.additive */
    int cached;     /* 0: nothing, 1: f at cache_u, 2: f and gradient at cache_u */
    double cache_u[2 * GP_MAX_DIM + 4], cache_f, cache_grad[2 * GP_MAX_DIM + 4];
};

/* number of optimised parameters: (u_ls[d], log sf2, u_sn, c[, log sa2[, u_als[d]]]) */
static size_t n_params(size_t d, int additive)
{
    return d + 3 + (additive ? 1 : 0) + (additive == 2 ? d : 0);
}

struct natural {
    double ls[GP_MAX_DIM];
    double dlogls_du[GP_MAX_DIM];
    double sf2, sn2, dsn2_du, c;
    double sa2;
    double als[GP_MAX_DIM];
    double dlogals_du[GP_MAX_DIM];
};

static void
to_natural(const gsl_vector *u, size_t d, double min_noise_var, int additive, struct natural *ret)
{
    for (size_t j = 0; j < d; j++) {
        double s = 1.0 / (1.0 + exp(-gsl_vector_get(u, j)));
        ret->ls[j] = exp(LOG_LS_MIN + (LOG_LS_MAX - LOG_LS_MIN) * s);
        ret->dlogls_du[j] = (LOG_LS_MAX - LOG_LS_MIN) * s * (1.0 - s);
    }
    ret->sf2 = exp(gsl_vector_get(u, d));
    ret->dsn2_du = exp(gsl_vector_get(u, d + 1));
    ret->sn2 = min_noise_var + ret->dsn2_du;
    ret->c = gsl_vector_get(u, d + 2);
    ret->sa2 = additive ? exp(gsl_vector_get(u, d + 3)) : 0.0;
    for (size_t j = 0; j < d; j++) {
        if (additive == 2) {
            double s = 1.0 / (1.0 + exp(-gsl_vector_get(u, d + 4 + j)));
            ret->als[j] = exp(LOG_LS_MIN + (LOG_LS_MAX - LOG_LS_MIN) * s);
            ret->dlogals_du[j] = (LOG_LS_MAX - LOG_LS_MIN) * s * (1.0 - s);
        } else {
            ret->als[j] = ret->ls[j];
            ret->dlogals_du[j] = ret->dlogls_du[j];
        }
    }
}

static double logit(double p)
{
    return log(p / (1.0 - p));
}

static double ls_to_u(double ls)
{
    double s = (log(ls) - LOG_LS_MIN) / (LOG_LS_MAX - LOG_LS_MIN);
    s = fmin(fmax(s, 1e-6), 1.0 - 1e-6);
    return logit(s);
}

static void from_natural(const struct gp_hyper *h,
                         double sn2,
                         double c,
                         size_t d,
                         double min_noise_var,
                         int additive,
                         gsl_vector *ret_u)
{
    for (size_t j = 0; j < d; j++)
        gsl_vector_set(ret_u, j, ls_to_u(h->length_scale[j]));
    gsl_vector_set(ret_u, d, log(h->signal_var));
    gsl_vector_set(ret_u, d + 1, log(fmax(sn2 - min_noise_var, 1e-12)));
    gsl_vector_set(ret_u, d + 2, c);
    if (additive)
        gsl_vector_set(ret_u, d + 3, log(fmax(h->add_var, 1e-8)));
    for (size_t j = 0; additive == 2 && j < d; j++)
        gsl_vector_set(ret_u, d + 4 + j, ls_to_u(h->add_length_scale[j]));
}

/* Negative log posterior (up to a constant) and its gradient with respect to u. */
static double neg_log_post_eval(const gsl_vector *u, struct fit_params *p, gsl_vector *ret_grad)
{
    size_t d = p->w->d;
    struct natural nat;
    to_natural(u, d, p->min_noise_var, p->additive, &nat);
    if (p->fix_mean)
        nat.c = p->fixed_c;
    double lml, g[2 * GP_MAX_DIM + 4];
    struct kern kn;
    kern_set(&kn, d, nat.ls, nat.sf2, nat.sa2, nat.als);
    /* cppcheck-suppress legacyUninitvar ; g is lml_eval's output, written before it is read */
    if (lml_eval(p->w, &kn, nat.sn2, nat.c, &lml, ret_grad ? g : NULL) < 0 || !isfinite(lml)) {
        if (ret_grad)
            gsl_vector_set_zero(ret_grad);
        return 1e30;
    }
    double lp = lml;
    for (size_t j = 0; j < d; j++)
        lp += (PRIOR_LS_SHAPE - 1.0) * log(nat.ls[j]) - PRIOR_LS_RATE * nat.ls[j];
    lp += (PRIOR_SF_SHAPE - 1.0) * log(nat.sf2) - PRIOR_SF_RATE * nat.sf2;
    lp += (PRIOR_SN_SHAPE - 1.0) * log(nat.sn2) - PRIOR_SN_RATE * nat.sn2;
    if (!p->fix_mean)
        lp += -0.5 * nat.c * nat.c;
    if (p->additive)
        lp += (PRIOR_SA_SHAPE - 1.0) * log(nat.sa2) - PRIOR_SA_RATE * nat.sa2;
    for (size_t j = 0; p->additive == 2 && j < d; j++)
        lp += (PRIOR_LS_SHAPE - 1.0) * log(nat.als[j]) - PRIOR_LS_RATE * nat.als[j];
    if (ret_grad) {
        for (size_t j = 0; j < d; j++) {
            double gl = g[j] + (PRIOR_LS_SHAPE - 1.0) - PRIOR_LS_RATE * nat.ls[j];
            if (p->additive == 1)
                gl += g[d + 4 + j]; /* shared length scales */
            gsl_vector_set(ret_grad, j, -gl * nat.dlogls_du[j]);
        }
        if (p->additive)
            gsl_vector_set(
                ret_grad, d + 3, -(g[d + 3] + (PRIOR_SA_SHAPE - 1.0) - PRIOR_SA_RATE * nat.sa2));
        for (size_t j = 0; p->additive == 2 && j < d; j++) {
            double gl = g[d + 4 + j] + (PRIOR_LS_SHAPE - 1.0) - PRIOR_LS_RATE * nat.als[j];
            gsl_vector_set(ret_grad, d + 4 + j, -gl * nat.dlogals_du[j]);
        }
        gsl_vector_set(ret_grad, d, -(g[d] + (PRIOR_SF_SHAPE - 1.0) - PRIOR_SF_RATE * nat.sf2));
        double gsn = g[d + 1] / nat.sn2 + (PRIOR_SN_SHAPE - 1.0) / nat.sn2 - PRIOR_SN_RATE;
        gsl_vector_set(ret_grad, d + 1, -gsn * nat.dsn2_du);
        gsl_vector_set(ret_grad, d + 2, p->fix_mean ? 0.0 : -(g[d + 2] - nat.c));
    }
    return -lp;
}

static double neg_log_post(const gsl_vector *u, void *params, gsl_vector *ret_grad)
{
    struct fit_params *p = params;
    size_t np = n_params(p->w->d, p->additive);
    int same = p->cached > 0;
    for (size_t i = 0; same && i < np; i++)
        same = gsl_vector_get(u, i) == p->cache_u[i];
    if (same && (!ret_grad || p->cached == 2)) {
        if (ret_grad)
            for (size_t i = 0; i < np; i++)
                gsl_vector_set(ret_grad, i, p->cache_grad[i]);
        return p->cache_f;
    }
    double f = neg_log_post_eval(u, p, ret_grad);
    p->cached = ret_grad ? 2 : 1;
    if (ret_grad)
        for (size_t i = 0; i < np; i++)
            p->cache_grad[i] = gsl_vector_get(ret_grad, i);
    for (size_t i = 0; i < np; i++)
        p->cache_u[i] = gsl_vector_get(u, i);
    p->cache_f = f;
    return f;
}

static double nlp_f(const gsl_vector *u, void *params)
{
    return neg_log_post(u, params, NULL);
}

static void nlp_df(const gsl_vector *u, void *params, gsl_vector *ret_grad)
{
    neg_log_post(u, params, ret_grad);
}

static void nlp_fdf(const gsl_vector *u, void *params, double *ret_f, gsl_vector *ret_grad)
{
    *ret_f = neg_log_post(u, params, ret_grad);
}

/* Runs BFGS from u (updated in place to the best point found); returns the objective there.
 * Stops after max_iter iterations, when the gradient is small, when the line search makes no
 * progress, or when the objective (a negative log posterior: differences of 0.01 are immaterial)
 * improved by less than GP_FIT_FTOL over the last GP_FIT_STALL iterations. */
static double
minimise(gsl_multimin_fdfminimizer *s, gsl_multimin_function_fdf *fn, gsl_vector *u, int max_iter)
{
    if (gsl_multimin_fdfminimizer_set(s, fn, u, 0.1, 0.1) != GSL_SUCCESS)
        return nlp_f(u, fn->params);
    double hist[GP_FIT_STALL + 1];
    hist[0] = gsl_multimin_fdfminimizer_minimum(s);
    for (int it = 0; it < max_iter; it++) {
        if (gsl_multimin_fdfminimizer_iterate(s) != GSL_SUCCESS)
            break;
        if (gsl_multimin_test_gradient(gsl_multimin_fdfminimizer_gradient(s), 1e-4) == GSL_SUCCESS)
            break;
        /* hist[k % (GP_FIT_STALL + 1)] is the objective after k iterations */
        int count = it + 1;
        double f = gsl_multimin_fdfminimizer_minimum(s);
        if (count >= GP_FIT_STALL &&
            hist[(count - GP_FIT_STALL) % (GP_FIT_STALL + 1)] - f < GP_FIT_FTOL)
            break;
        hist[count % (GP_FIT_STALL + 1)] = f;
    }
    double f = gsl_multimin_fdfminimizer_minimum(s);
    if (!isfinite(f))
        return 1e30;
    gsl_vector_memcpy(u, gsl_multimin_fdfminimizer_x(s));
    return f;
}

/* ---- the fitted model ----------------------------------------------------------------------- */

static struct gp *gp_alloc(size_t n, size_t d, size_t cap)
{
    struct gp *gp = calloc(1, sizeof(*gp));
    if (!gp)
        return NULL;
    gp->n = n;
    gp->d = d;
    gp->cap = cap;
    gp->x = malloc(cap * d * sizeof(double));
    gp->ys = malloc(cap * sizeof(double));
    gp->Linv = calloc(cap * cap, sizeof(double));
    gp->alpha = malloc(cap * sizeof(double));
    gp->F = malloc(cap * 2 * d * sizeof(double));
    if (!gp->x || !gp->ys || !gp->Linv || !gp->alpha || !gp->F)
        gp_free(&gp);
    return gp;
}

/* y = A x for the lower triangle of A (n x n, row stride `stride`). Four partial sums per row
 * let the compiler vectorise the dot products (it may not reorder one sum). */
static void lower_mv(const double *A, size_t stride, size_t n, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++) {
        const double *row = A + i * stride;
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        size_t j = 0;
        for (; j + 4 <= i + 1; j += 4) {
            a0 += row[j] * x[j];
            a1 += row[j + 1] * x[j + 1];
            a2 += row[j + 2] * x[j + 2];
            a3 += row[j + 3] * x[j + 3];
        }
        for (; j <= i; j++)
            a0 += row[j] * x[j];
        y[i] = (a0 + a1) + (a2 + a3);
    }
}

/* y = A^T x for the lower triangle of A, row by row (axpy form). y must not alias x. */
static void lower_tmv(const double *A, size_t stride, size_t n, const double *x, double *y)
{
    for (size_t j = 0; j < n; j++)
        y[j] = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double *row = A + i * stride;
        double xi = x[i];
        for (size_t j = 0; j <= i; j++)
            y[j] += row[j] * xi;
    }
}

/* alpha = K^-1 (ys - c) = L^-T L^-1 (ys - c), and the lml; tmp holds n doubles. */
static void gp_update_alpha(struct gp *gp, double *tmp)
{
    size_t n = gp->n;
    for (size_t i = 0; i < n; i++)
        gp->alpha[i] = gp->ys[i] - gp->h.const_mean;
    lower_mv(gp->Linv, gp->cap, n, gp->alpha, tmp);
    double quad = 0.0, half_logdet = 0.0;
    for (size_t i = 0; i < n; i++) {
        quad += tmp[i] * tmp[i];
        half_logdet -= log(gp->Linv[i * gp->cap + i]);
    }
    lower_tmv(gp->Linv, gp->cap, n, tmp, gp->alpha);
    gp->h.log_marginal_likelihood = -0.5 * quad - half_logdet - 0.5 * (double)n * LOG_2PI;
}

/* Builds the model for standardised outputs ys and hyperparameters h (copied). */
static int gp_build(const double *x,
                    const double *ys,
                    size_t n,
                    size_t d,
                    const struct gp_hyper *h,
                    struct gp **ret_gp,
                    struct ll_error *reterr)
{
    struct gp *gp = gp_alloc(n, d, n + GP_SPARE_ROWS);
    if (!gp)
        return ll_error_set(reterr, -ENOMEM, "gp: out of memory for %zu observations", n);
    memcpy(gp->x, x, n * d * sizeof(double));
    memcpy(gp->ys, ys, n * sizeof(double));
    gp->h = *h;
    gp->h.d = d;
    kern_set(&gp->kn, d, h->length_scale, h->signal_var, h->add_var, h->add_length_scale);
    gp->has_F = gp->kn.sa2n > 0.0;
    for (size_t i = 0; gp->has_F && i < n; i++)
        gp->has_F = add_factors(&gp->kn, x + i * d, gp->F + i * 2 * d);
    gsl_matrix_view L = gsl_matrix_view_array_with_tda(gp->Linv, n, n, gp->cap);
    double jitter;
    if (factorise(x, n, &gp->kn, h->noise_var, &L.matrix, NULL, NULL, &jitter) < 0 ||
        gsl_linalg_tri_invert(CblasLower, CblasNonUnit, &L.matrix) != GSL_SUCCESS) {
        gp_free(&gp);
        return ll_error_set(reterr,
                            -EDOM,
                            "gp: the covariance of %zu observations is not positive definite "
                            "even with jitter (duplicate inputs without noise?)",
                            n);
    }
    gp->diag = h->noise_var + jitter;
    double *tmp = malloc(n * sizeof(double));
    if (!tmp) {
        gp_free(&gp);
        return ll_error_set(reterr, -ENOMEM, "gp: out of memory for %zu observations", n);
    }
    gp_update_alpha(gp, tmp);
    free(tmp);
    *ret_gp = gp;
    return 0;
}

static void standardise(const double *y, size_t n, double *ret_mean, double *ret_std)
{
    double mean = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += y[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (y[i] - mean) * (y[i] - mean);
    double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
    *ret_mean = mean;
    *ret_std = (sd > 1e-12 * fmax(1.0, fabs(mean)) && isfinite(sd)) ? sd : 1.0;
}

int gp_fit_fixed(const double *x,
                 const double *y,
                 size_t n,
                 size_t d,
                 const struct gp_hyper *hyper,
                 struct gp **ret_gp,
                 struct ll_error *reterr)
{
    if (!ret_gp)
        return ll_error_set(reterr, -EINVAL, "gp: ret_gp must not be NULL");
    *ret_gp = NULL;
    int ret = check_data(x, y, n, d, reterr);
    if (ret < 0)
        return ret;
    ret = check_hyper(hyper, d, reterr);
    if (ret < 0)
        return ret;
    double *ys = malloc(n * sizeof(*ys));
    if (!ys)
        return ll_error_set(reterr, -ENOMEM, "gp: out of memory");
    for (size_t i = 0; i < n; i++)
        ys[i] = (y[i] - hyper->y_mean) / hyper->y_std;
    ret = gp_build(x, ys, n, d, hyper, ret_gp, reterr);
    free(ys);
    return ret;
}

/* Draws a random start for a restart (the first start is the prior's centre, or `start`). */
static void random_start(gsl_rng *rng,
                         size_t d,
                         int restart,
                         int additive,
                         const struct gp_hyper *start,
                         struct gp_hyper *ret)
{
    if (restart == 0 && start) {
        *ret = *start;
        for (size_t j = 0; j < d; j++) {
            ret->length_scale[j] =
                fmin(fmax(ret->length_scale[j], GP_LENGTH_SCALE_MIN), GP_LENGTH_SCALE_MAX);
            if (!(start->add_var > 0.0) || additive == 1)
                ret->add_length_scale[j] = ret->length_scale[j];
            ret->add_length_scale[j] =
                fmin(fmax(ret->add_length_scale[j], GP_LENGTH_SCALE_MIN), GP_LENGTH_SCALE_MAX);
        }
        if (!(start->add_var > 0.0))
            ret->add_var = 0.5;
        return;
    }
    for (size_t j = 0; j < d; j++)
        ret->length_scale[j] =
            restart == 0 ? 0.5 : exp(log(0.05) + gsl_rng_uniform(rng) * log(40.0));
    ret->signal_var = restart == 0 ? 1.0 : exp(log(0.2) + gsl_rng_uniform(rng) * log(25.0));
    ret->noise_var = restart == 0 ? 1e-2 : exp(log(1e-5) + gsl_rng_uniform(rng) * log(3e4));
    ret->const_mean = restart == 0 ? 0.0 : gsl_rng_uniform(rng) - 0.5;
    ret->add_var = 0.0;
    if (!additive)
        return;
    ret->add_var = restart == 0 ? 0.5 : exp(log(0.2) + gsl_rng_uniform(rng) * log(25.0));
    for (size_t j = 0; j < d; j++)
        ret->add_length_scale[j] = additive == 1 ? ret->length_scale[j]
                                   : restart == 0
                                       ? 0.5
                                       : exp(log(0.05) + gsl_rng_uniform(rng) * log(40.0));
}

/* Copies a seeded random choice of ns of the n rows (in their original order) to xs, yss. */
static void choose_subset(gsl_rng *rng,
                          const double *x,
                          const double *ys,
                          size_t n,
                          size_t d,
                          size_t ns,
                          double *xs,
                          double *yss)
{
    for (size_t i = 0, k = 0; i < n && k < ns; i++) {
        if (gsl_rng_uniform(rng) * (double)(n - i) < (double)(ns - k)) {
            memcpy(xs + k * d, x + i * d, d * sizeof(double));
            yss[k++] = ys[i];
        }
    }
}

/* Maximises the log posterior of the hyperparameters and writes the result (length scales,
 * variances, mean) to h. Each likelihood evaluation costs O(n^3), so the search runs in stages:
 * n_restarts short BFGS runs on a seeded random subset of at most GP_FIT_RESTART_N observations
 * choose the basin, and the best is continued on at most GP_FIT_POLISH_N observations (all of
 * them up to that size; a larger random subset above it — the subset-of-data estimate of the
 * hyperparameters; the model itself is then built on all observations). */
static int search_hyper(const double *x,
                        const double *ys,
                        size_t n,
                        size_t d,
                        const struct gp_options *opt,
                        const struct gp_hyper *start,
                        struct gp_hyper *h)
{
    int ret = 0;
    int additive = opt->additive == 1 || opt->additive == 2 ? opt->additive : 0;
    size_t np = n_params(d, additive);
    size_t n_restart = n < GP_FIT_RESTART_N ? n : GP_FIT_RESTART_N;
    size_t n_polish = n < GP_FIT_POLISH_N ? n : GP_FIT_POLISH_N;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    double *xs = malloc(n_polish * d * sizeof(double));
    double *yss = malloc(n_polish * sizeof(double));
    gsl_vector *u = gsl_vector_alloc(np), *best = gsl_vector_alloc(np);
    gsl_multimin_fdfminimizer *s =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, np);
    struct lml_work w = {0};
    if (!rng || !xs || !yss || !u || !best || !s) {
        ret = -ENOMEM;
        goto out;
    }
    gsl_rng_set(rng, opt->seed);
    choose_subset(rng, x, ys, n, d, n_restart, xs, yss);
    ret = lml_work_init(&w, xs, yss, n_restart, d);
    if (ret < 0)
        goto out;
    struct fit_params fp = {.w = &w,
                            .min_noise_var = opt->min_noise_var,
                            .fix_mean = opt->fix_mean,
                            .fixed_c = h->const_mean,
                            .additive = additive,
                            .cached = 0};
    gsl_multimin_function_fdf fn = {
        .f = nlp_f, .df = nlp_df, .fdf = nlp_fdf, .n = np, .params = &fp};
    double best_f = HUGE_VAL;
    int n_restarts = opt->n_restarts < 1 ? 1 : opt->n_restarts;
    int restart_iter =
        n_restart < n ? GP_FIT_RESTART_ITER : GP_FIT_RESTART_ITER + GP_FIT_POLISH_ITER;
    for (int r = 0; r < n_restarts; r++) {
        struct gp_hyper st;
        random_start(rng, d, r, additive, start, &st);
        from_natural(&st,
                     r == 0 && start ? st.noise_var : st.noise_var + opt->min_noise_var,
                     opt->fix_mean ? h->const_mean : st.const_mean,
                     d,
                     opt->min_noise_var,
                     additive,
                     u);
        double f = minimise(s, &fn, u, restart_iter);
        if (f < best_f) {
            best_f = f;
            gsl_vector_memcpy(best, u);
        }
    }
    if (n_restart < n) {
        lml_work_free(&w);
        if (n_polish == n) {
            ret = lml_work_init(&w, x, ys, n, d);
        } else {
            choose_subset(rng, x, ys, n, d, n_polish, xs, yss);
            ret = lml_work_init(&w, xs, yss, n_polish, d);
        }
        if (ret < 0)
            goto out;
        fp.cached = 0;
        minimise(s, &fn, best, GP_FIT_POLISH_ITER);
    }
    struct natural nat;
    to_natural(best, d, opt->min_noise_var, additive, &nat);
    h->add_var = nat.sa2;
    for (size_t j = 0; j < d; j++) {
        h->length_scale[j] = nat.ls[j];
        h->add_length_scale[j] = additive ? nat.als[j] : 0.0;
    }
    h->signal_var = nat.sf2;
    h->noise_var = nat.sn2;
    h->const_mean = opt->fix_mean ? h->const_mean : nat.c;
out:
    lml_work_free(&w);
    gsl_multimin_fdfminimizer_free(s);
    gsl_vector_free(u);
    gsl_vector_free(best);
    free(xs);
    free(yss);
    gsl_rng_free(rng);
    return ret;
}

int gp_fit_from(const double *x,
                const double *y,
                size_t n,
                size_t d,
                const struct gp_options *opt,
                const struct gp_hyper *start,
                struct gp **ret_gp,
                struct ll_error *reterr)
{
    if (!ret_gp)
        return ll_error_set(reterr, -EINVAL, "gp: ret_gp must not be NULL");
    *ret_gp = NULL;
    int ret = check_data(x, y, n, d, reterr);
    if (ret < 0)
        return ret;
    if (start && check_hyper(start, d, reterr) < 0)
        return -EINVAL;
    struct gp_options defaults;
    gp_options_default(&defaults);
    if (!opt)
        opt = &defaults;
    if (!(opt->min_noise_var >= 0.0) || !isfinite(opt->min_noise_var))
        return ll_error_set(reterr, -EINVAL, "gp: min_noise_var must be finite and >= 0");
    if (opt->fix_mean && !isfinite(opt->fixed_mean))
        return ll_error_set(reterr, -EINVAL, "gp: fixed_mean must be finite");
    struct gp_hyper h = {.d = d};
    standardise(y, n, &h.y_mean, &h.y_std);
    double *ys = malloc(n * sizeof(*ys));
    if (!ys)
        return ll_error_set(reterr, -ENOMEM, "gp: out of memory");
    for (size_t i = 0; i < n; i++)
        ys[i] = (y[i] - h.y_mean) / h.y_std;
    if (opt->fix_mean)
        h.const_mean = (opt->fixed_mean - h.y_mean) / h.y_std;
    ret = search_hyper(x, ys, n, d, opt, start, &h);
    if (ret < 0) {
        ll_error_set(reterr, ret, "gp: out of memory while fitting %zu observations", n);
        goto out;
    }
    ret = gp_build(x, ys, n, d, &h, ret_gp, reterr);
out:
    free(ys);
    return ret;
}

int gp_fit(const double *x,
           const double *y,
           size_t n,
           size_t d,
           const struct gp_options *opt,
           struct gp **ret_gp,
           struct ll_error *reterr)
{
    return gp_fit_from(x, y, n, d, opt, NULL, ret_gp, reterr);
}

int gp_predict(const struct gp *gp,
               const double *x,
               double *ret_mean,
               double *ret_var,
               double *ret_dmean,
               double *ret_dvar)
{
    if (!gp || !x)
        return -EINVAL;
    size_t n = gp->n, d = gp->d;
    int grad = ret_dmean || ret_dvar;
    /* k, v, w (n each) and, with gradients, dk/dx (n rows of d) */
    size_t need = 3 * n + (grad ? n * d : 0);
    double stack[GP_PREDICT_STACK_DOUBLES];
    double *buf = stack;
    if (n > GP_PREDICT_STACK_N || need > GP_PREDICT_STACK_DOUBLES) {
        buf = malloc(need * sizeof(double));
        if (!buf)
            return -ENOMEM;
    }
    double *k = buf, *v = buf + n, *w = buf + 2 * n, *dk = buf + 3 * n;
    double mean = gp->h.const_mean;
    double fx[2 * GP_MAX_DIM];
    int use_f = gp->has_F && add_factors(&gp->kn, x, fx);
    for (size_t i = 0; i < n; i++) {
        const double *fa = use_f ? fx : NULL, *fb = use_f ? gp->F + i * 2 * d : NULL;
        k[i] = grad ? kern_eval_grad(&gp->kn, x, gp->x + i * d, fa, fb, dk + i * d)
                    : kern_eval(&gp->kn, x, gp->x + i * d, fa, fb, NULL, NULL);
        mean += k[i] * gp->alpha[i];
    }
    double ystd = gp->h.y_std;
    if (ret_mean)
        *ret_mean = gp->h.y_mean + ystd * mean;
    if (ret_dmean) {
        for (size_t j = 0; j < d; j++)
            ret_dmean[j] = 0.0;
        for (size_t i = 0; i < n; i++) {
            double a = gp->alpha[i];
            const double *dki = dk + i * d;
            for (size_t j = 0; j < d; j++)
                ret_dmean[j] += a * dki[j];
        }
        for (size_t j = 0; j < d; j++)
            ret_dmean[j] *= ystd;
    }
    if (ret_var || ret_dvar) {
        /* var = k(x,x) - |L^-1 k|^2 */
        lower_mv(gp->Linv, gp->cap, n, k, v);
        double var = gp->kn.kxx;
        for (size_t i = 0; i < n; i++)
            var -= v[i] * v[i];
        int clamped = !(var > 0.0);
        if (ret_var)
            *ret_var = clamped ? 0.0 : var * ystd * ystd;
        if (ret_dvar) {
            for (size_t j = 0; j < d; j++)
                ret_dvar[j] = 0.0;
            if (!clamped) {
                /* d var / dx = -2 k^T K^-1 dk/dx, K^-1 k = L^-T (L^-1 k) */
                lower_tmv(gp->Linv, gp->cap, n, v, w);
                for (size_t i = 0; i < n; i++) {
                    double wi = -2.0 * w[i];
                    const double *dki = dk + i * d;
                    for (size_t j = 0; j < d; j++)
                        ret_dvar[j] += wi * dki[j];
                }
                for (size_t j = 0; j < d; j++)
                    ret_dvar[j] *= ystd * ystd;
            }
        }
    }
    if (buf != stack)
        free(buf);
    return 0;
}

double gp_loo_mean_z2(const struct gp *gp)
{
    if (!gp || gp->n < 2)
        return (double)NAN;
    size_t n = gp->n;
    double *kinv_diag = calloc(n, sizeof(double));
    if (!kinv_diag)
        return (double)NAN;
    for (size_t i = 0; i < n; i++) {
        const double *row = gp->Linv + i * gp->cap;
        for (size_t j = 0; j <= i; j++)
            kinv_diag[j] += row[j] * row[j];
    }
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += gp->alpha[i] * gp->alpha[i] / kinv_diag[i];
    free(kinv_diag);
    return sum / (double)n;
}

/* Grows the row capacity to at least want, copying the factor to the new stride. */
static int gp_reserve(struct gp *gp, size_t want)
{
    if (want <= gp->cap)
        return 0;
    size_t cap = want + want / 2 + GP_SPARE_ROWS, n = gp->n, d = gp->d;
    assert(d > 0); /* gp_fit rejects d == 0, so no zero-byte realloc */
    double *x = realloc(gp->x, cap * d * sizeof(double));
    if (!x)
        return -ENOMEM;
    gp->x = x;
    double *ys = realloc(gp->ys, cap * sizeof(double));
    if (!ys)
        return -ENOMEM;
    gp->ys = ys;
    double *alpha = realloc(gp->alpha, cap * sizeof(double));
    if (!alpha)
        return -ENOMEM;
    gp->alpha = alpha;
    double *F = realloc(gp->F, cap * 2 * d * sizeof(double));
    if (!F)
        return -ENOMEM;
    gp->F = F;
    double *Linv = calloc(cap * cap, sizeof(double));
    if (!Linv)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        memcpy(Linv + i * cap, gp->Linv + i * gp->cap, (i + 1) * sizeof(double));
    free(gp->Linv);
    gp->Linv = Linv;
    gp->cap = cap;
    return 0;
}

int gp_add_observation(struct gp *gp, const double *x, double y)
{
    if (!gp || !x || !isfinite(y))
        return -EINVAL;
    size_t n = gp->n, d = gp->d;
    for (size_t j = 0; j < d; j++)
        if (!isfinite(x[j]))
            return -EINVAL;
    int ret = gp_reserve(gp, n + 1);
    if (ret < 0)
        return ret;
    /* L grows by the row (l^T, s), l = L^-1 k(X, x), s = sqrt(k(x,x) + diag - l^T l); its
     * inverse by the row (-(L^-T l)^T / s, 1 / s) */
    double *kx = calloc(3 * (n + 1), sizeof(double));
    if (!kx)
        return -ENOMEM;
    double *l = kx + (n + 1), *r = kx + 2 * (n + 1);
    double fx[2 * GP_MAX_DIM];
    int use_f = gp->has_F && add_factors(&gp->kn, x, fx);
    for (size_t i = 0; i < n; i++)
        kx[i] = kern_eval(&gp->kn,
                          x,
                          gp->x + i * d,
                          use_f ? fx : NULL,
                          use_f ? gp->F + i * 2 * d : NULL,
                          NULL,
                          NULL);
    lower_mv(gp->Linv, gp->cap, n, kx, l);
    double dd = gp->kn.kxx + gp->diag;
    for (size_t i = 0; i < n; i++)
        dd -= l[i] * l[i];
    if (!(dd > 1e-12 * (gp->kn.kxx + gp->diag)) || !isfinite(dd)) {
        free(kx);
        return -EDOM;
    }
    double sd = sqrt(dd);
    lower_tmv(gp->Linv, gp->cap, n, l, r);
    double *row = gp->Linv + n * gp->cap;
    for (size_t j = 0; j < n; j++)
        row[j] = -r[j] / sd;
    row[n] = 1.0 / sd;
    memcpy(gp->x + n * d, x, d * sizeof(double));
    if (use_f)
        memcpy(gp->F + n * 2 * d, fx, 2 * d * sizeof(double));
    gp->has_F = use_f;
    gp->ys[n] = (y - gp->h.y_mean) / gp->h.y_std;
    gp->n = n + 1;
    gp_update_alpha(gp, kx);
    free(kx);
    return 0;
}

struct gp *gp_clone(const struct gp *gp)
{
    if (!gp)
        return NULL;
    struct gp *c = gp_alloc(gp->n, gp->d, gp->cap);
    if (!c)
        return NULL;
    memcpy(c->x, gp->x, gp->n * gp->d * sizeof(double));
    memcpy(c->ys, gp->ys, gp->n * sizeof(double));
    memcpy(c->alpha, gp->alpha, gp->n * sizeof(double));
    memcpy(c->Linv, gp->Linv, gp->cap * gp->cap * sizeof(double));
    memcpy(c->F, gp->F, gp->n * 2 * gp->d * sizeof(double));
    c->has_F = gp->has_F;
    c->diag = gp->diag;
    c->kn = gp->kn;
    c->h = gp->h;
    return c;
}

void gp_free(struct gp **gp)
{
    if (!gp || !*gp)
        return;
    free((*gp)->x);
    free((*gp)->ys);
    free((*gp)->Linv);
    free((*gp)->alpha);
    free((*gp)->F);
    free(*gp);
    *gp = NULL;
}

size_t gp_n_obs(const struct gp *gp)
{
    return gp ? gp->n : 0;
}

size_t gp_dim(const struct gp *gp)
{
    return gp ? gp->d : 0;
}

void gp_get_hyper(const struct gp *gp, struct gp_hyper *ret_hyper)
{
    if (gp && ret_hyper)
        *ret_hyper = gp->h;
}

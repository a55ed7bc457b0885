/* ehvi — exact expected hypervolume improvement by box decomposition; the formulas and
 * references are in ehvi.h.
 *
 * Preparation (ehvi_front_new): the front is filtered (inside ref, non-dominated) and the
 * non-dominated region A of [-inf, r] is cut into axis-aligned boxes whose corners are front
 * coordinates, -inf or r. Each box is stored as indices into per-objective coordinate tables
 * (index 0 stands for -inf), so that an evaluation is:
 *   1. psi_i(c) for every coordinate c of every objective i (O(n) normal cdf/pdf pairs),
 *   2. sum over boxes of prod_i (psi_i(hi) - psi_i(lo)) (multiplications only).
 * 2-D: the front sorted by f1 gives n+1 strips [f1_(k), f1_(k+1)] x [-inf, f2_(k)] (f1_(0) =
 * -inf, f2_(0) = r2, f1_(n+1) = r1).
 * 3-D: the front sorted by f3; in the slab between consecutive f3 values (from -inf, up to r3)
 * the points below it have a fixed 2-D front in (f1, f2), whose strips, extended over the slab,
 * are boxes. A strip that stays the same over several slabs is one box (decompose_3d), which
 * leaves at most 2n+1 boxes (each point opens two strips), so an evaluation is O(n) as in 2-D.
 *
 * sigma_i = 0: psi(a) = max(a - mu, 0), its derivatives -[a > mu] and 0.
 */
#include "planner/ehvi.h"

#include "planner/hv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EHVI_MAX_M 3
/* ehvi_front_eval keeps its per-coordinate tables on the stack for fronts up to this size and
 * allocates above it */
#define EHVI_STACK_N 256

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794

struct ehvi_front {
    size_t m;
    size_t n; /* points of the filtered front */
    double ref[EHVI_MAX_M];
    size_t n_coord[EHVI_MAX_M]; /* entries in coord[i]: -inf (unused), values, ref */
    double *coord[EHVI_MAX_M];  /* ascending; coord[i][0] is a placeholder for -inf */
    size_t n_box;
    uint32_t *box; /* n_box rows of 2m indices: lo_0, hi_0, lo_1, hi_1, ... */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_row_by(const double *x, const double *y, size_t k)
{
    return (x[k] > y[k]) - (x[k] < y[k]);
}

static int cmp_row_f1(const void *a, const void *b)
{
    return cmp_row_by(a, b, 0);
}

static int cmp_row3_f3(const void *a, const void *b)
{
    return cmp_row_by(a, b, 2);
}

/* index of v in the coordinate table c (values at 1..nc-1, exact match expected) */
static uint32_t coord_index(const double *c, size_t nc, double v)
{
    size_t lo = 1, hi = nc - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

void ehvi_front_free(struct ehvi_front **f)
{
    if (!f || !*f)
        return;
    for (size_t i = 0; i < EHVI_MAX_M; i++)
        free((*f)->coord[i]);
    free((*f)->box);
    free(*f);
    *f = NULL;
}

/* Appends box [lo, hi] (2m indices) to f, growing the array. */
static int add_box(struct ehvi_front *f, size_t *cap, const uint32_t *idx)
{
    if (f->n_box == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        uint32_t *nb = realloc(f->box, ncap * 2 * f->m * sizeof(uint32_t));
        if (!nb)
            return -1;
        f->box = nb;
        *cap = ncap;
    }
    memcpy(f->box + f->n_box * 2 * f->m, idx, 2 * f->m * sizeof(uint32_t));
    f->n_box++;
    return 0;
}

/* Strip j (0..nf) of a 2-D front (nf rows (f1, f2), f1 ascending, f2 descending): f1 from the
 * front's point j-1 (-inf for j = 0) to its point j (r1 for j = nf), f2 below point j-1's f2
 * (r2 for j = 0); added as a box over [zlo, zhi] (indices into coord[2]; ignored for m = 2).
 * Empty strips are skipped. */
static int add_strip(struct ehvi_front *f,
                     size_t *cap,
                     const double *front2,
                     size_t nf,
                     size_t j,
                     uint32_t zlo,
                     uint32_t zhi)
{
    uint32_t idx[2 * EHVI_MAX_M];
    idx[0] = j == 0 ? 0 : coord_index(f->coord[0], f->n_coord[0], front2[2 * (j - 1)]);
    idx[1] = j < nf ? coord_index(f->coord[0], f->n_coord[0], front2[2 * j])
                    : (uint32_t)(f->n_coord[0] - 1);
    if (idx[1] == idx[0] || (f->m == 3 && zhi == zlo))
        return 0;
    idx[2] = 0;
    idx[3] = j == 0 ? (uint32_t)(f->n_coord[1] - 1)
                    : coord_index(f->coord[1], f->n_coord[1], front2[2 * (j - 1) + 1]);
    idx[4] = zlo;
    idx[5] = zhi;
    return add_box(f, cap, idx);
}

/* 3-D: sweep the points in order of f3 keeping the 2-D front of the slice and, per strip of it,
 * the f3 at which the strip appeared. Inserting a point closes the strips it changes (from its
 * left neighbour's strip to the strip right of the last point it removes) as boxes up to its
 * f3, and opens two; at the end the remaining strips close at r3. Every point opens two
 * strips, so there are at most 2n + 1 boxes. pts is sorted in place. */
static int decompose_3d(struct ehvi_front *f, double *pts, size_t n)
{
    size_t cap = 0, nf = 0;
    double *front2 = malloc((n + 1) * 2 * sizeof(double));
    uint32_t *zstart = malloc((n + 2) * sizeof(uint32_t));
    int ret = -1;
    if (!front2 || !zstart)
        goto out;
    qsort(pts, n, 3 * sizeof(double), cmp_row3_f3);
    zstart[0] = 0;
    for (size_t k = 0; k < n; k++) {
        const double *p = pts + 3 * k;
        uint32_t zk = coord_index(f->coord[2], f->n_coord[2], p[2]);
        size_t lo = 0;
        while (lo < nf && front2[2 * lo] <= p[0])
            lo++;
        if (lo > 0 && front2[2 * (lo - 1) + 1] <= p[1])
            continue; /* weakly dominated in the slice: nothing changes */
        size_t end = lo;
        while (end < nf && front2[2 * end + 1] >= p[1])
            end++;
        for (size_t j = lo; j <= end; j++)
            if (add_strip(f, &cap, front2, nf, j, zstart[j], zk) < 0)
                goto out;
        memmove(zstart + lo + 2, zstart + end + 1, (nf - end) * sizeof(uint32_t));
        if (end - lo != 1)
            memmove(front2 + 2 * (lo + 1), front2 + 2 * end, 2 * (nf - end) * sizeof(double));
        front2[2 * lo] = p[0];
        front2[2 * lo + 1] = p[1];
        nf = nf - (end - lo) + 1;
        zstart[lo] = zk;
        zstart[lo + 1] = zk;
    }
    for (size_t j = 0; j <= nf; j++)
        if (add_strip(f, &cap, front2, nf, j, zstart[j], (uint32_t)(f->n_coord[2] - 1)) < 0)
            goto out;
    ret = 0;
out:
    free(front2);
    free(zstart);
    return ret;
}

/* Builds the box decomposition of f (whose filtered front pts, n rows of m, is given). */
static int decompose(struct ehvi_front *f, double *pts, size_t n)
{
    size_t m = f->m, cap = 0;
    for (size_t i = 0; i < m; i++) {
        double *c = malloc((n + 2) * sizeof(double));
        if (!c)
            return -1;
        f->coord[i] = c;
        c[0] = -HUGE_VAL;
        for (size_t k = 0; k < n; k++)
            c[1 + k] = pts[k * m + i];
        qsort(c + 1, n, sizeof(double), cmp_double);
        size_t u = 1;
        for (size_t k = 1; k <= n; k++)
            if (u == 1 || c[k] != c[u - 1])
                c[u++] = c[k];
        c[u++] = f->ref[i];
        f->n_coord[i] = u;
    }
    if (m == 3)
        return decompose_3d(f, pts, n);
    qsort(pts, n, 2 * sizeof(double), cmp_row_f1);
    for (size_t j = 0; j <= n; j++)
        if (add_strip(f, &cap, pts, n, j, 0, 0) < 0)
            return -1;
    return 0;
}

struct ehvi_front *ehvi_front_new(const double *front, size_t n, size_t m, const double *ref)
{
    if ((m != 2 && m != 3) || !ref || (n > 0 && !front) || n > UINT32_MAX / 4)
        return NULL;
    for (size_t i = 0; i < m; i++)
        if (!isfinite(ref[i]))
            return NULL;
    for (size_t i = 0; i < n * m; i++)
        if (!isfinite(front[i]))
            return NULL;
    struct ehvi_front *f = calloc(1, sizeof(*f));
    double *pts = malloc((n > 0 ? n : 1) * m * sizeof(double));
    if (!f || !pts)
        goto fail;
    f->m = m;
    memcpy(f->ref, ref, m * sizeof(double));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int inside = 1;
        for (size_t j = 0; j < m; j++)
            inside &= front[i * m + j] < ref[j];
        if (inside)
            memcpy(pts + (k++) * m, front + i * m, m * sizeof(double));
    }
    f->n = hv_nondominated(pts, k, m);
    if (decompose(f, pts, f->n) < 0)
        goto fail;
    free(pts);
    return f;
fail:
    free(pts);
    ehvi_front_free(&f);
    return NULL;
}

size_t ehvi_front_dim(const struct ehvi_front *f)
{
    return f ? f->m : 0;
}

/* Beyond these standardised distances psi is evaluated without the normal cdf/pdf: for
 * t >= PSI_T_HIGH, psi = (a - mu) + s (phi(t) - t Phi(-t)) and the bracket is below
 * phi(t)/t^2 < 1e-16 (a - mu) relative, under double rounding of psi itself; for t <= PSI_T_LOW
 * psi = s (phi(t) + t Phi(t)) underflows to 0. Coordinates are often many standard deviations
 * from the candidate's mean, so this saves most erfc/exp calls in acquisition optimisation. */
#define PSI_T_HIGH 8.5
#define PSI_T_LOW (-39.0)

/* psi(a) = integral_{-inf}^{a} Phi((z - mu)/s) dz and its derivatives in mu and s, for every
 * coordinate of one objective (index 0: -inf, all zero). */
static void
psi_table(const double *c, size_t nc, double mu, double s, double *psi, double *dmu, double *ds)
{
    psi[0] = 0.0;
    if (dmu) {
        dmu[0] = 0.0;
        ds[0] = 0.0;
    }
    for (size_t k = 1; k < nc; k++) {
        double a = c[k] - mu;
        if (s > 0.0) {
            double t = a / s;
            if (t >= PSI_T_HIGH && !dmu) {
                psi[k] = a;
                continue;
            }
            if (t <= PSI_T_LOW) {
                psi[k] = 0.0;
                if (dmu) {
                    dmu[k] = 0.0;
                    ds[k] = 0.0;
                }
                continue;
            }
            double cdf = 0.5 * erfc(-t * INV_SQRT2);
            double pdf = INV_SQRT2PI * exp(-0.5 * t * t);
            psi[k] = s * pdf + a * cdf;
            if (dmu) {
                dmu[k] = -cdf;
                ds[k] = pdf;
            }
        } else {
            psi[k] = a > 0.0 ? a : 0.0;
            if (dmu) {
                dmu[k] = a > 0.0 ? -1.0 : 0.0;
                ds[k] = 0.0;
            }
        }
    }
}

double ehvi_front_eval_grad(const struct ehvi_front *f,
                            const double *mu,
                            const double *sigma,
                            double *ret_dmu,
                            double *ret_dsigma)
{
    if (!f || !mu || !sigma)
        return (double)NAN;
    size_t m = f->m;
    for (size_t i = 0; i < m; i++)
        if (!isfinite(mu[i]) || !isfinite(sigma[i]) || sigma[i] < 0.0)
            return (double)NAN;
    int want_grad = ret_dmu || ret_dsigma;
    size_t total = 0;
    for (size_t i = 0; i < m; i++)
        total += f->n_coord[i];
    double stack[3 * EHVI_MAX_M * (EHVI_STACK_N + 2)];
    double *buf = stack;
    if (total > EHVI_MAX_M * (EHVI_STACK_N + 2)) {
        buf = malloc(3 * total * sizeof(double));
        if (!buf)
            return (double)NAN;
    }
    double *psi[EHVI_MAX_M], *dmu[EHVI_MAX_M], *ds[EHVI_MAX_M];
    for (size_t i = 0, off = 0; i < m; off += f->n_coord[i], i++) {
        psi[i] = buf + off;
        dmu[i] = buf + total + off;
        ds[i] = buf + 2 * total + off;
        psi_table(f->coord[i],
                  f->n_coord[i],
                  mu[i],
                  sigma[i],
                  psi[i],
                  want_grad ? dmu[i] : NULL,
                  want_grad ? ds[i] : NULL);
    }
    double sum = 0.0, gmu[EHVI_MAX_M] = {0}, gs[EHVI_MAX_M] = {0};
    const uint32_t *b = f->box;
    if (m == 2 && !want_grad) {
        for (size_t k = 0; k < f->n_box; k++, b += 4)
            sum += (psi[0][b[1]] - psi[0][b[0]]) * (psi[1][b[3]] - psi[1][b[2]]);
    } else {
        for (size_t k = 0; k < f->n_box; k++, b += 2 * m) {
            double w[EHVI_MAX_M], prod = 1.0;
            for (size_t i = 0; i < m; i++) {
                w[i] = psi[i][b[2 * i + 1]] - psi[i][b[2 * i]];
                prod *= w[i];
            }
            sum += prod;
            if (!want_grad)
                continue;
            for (size_t i = 0; i < m; i++) {
                double others = 1.0;
                for (size_t j = 0; j < m; j++)
                    if (j != i)
                        others *= w[j];
                gmu[i] += others * (dmu[i][b[2 * i + 1]] - dmu[i][b[2 * i]]);
                gs[i] += others * (ds[i][b[2 * i + 1]] - ds[i][b[2 * i]]);
            }
        }
    }
    for (size_t i = 0; i < m; i++) {
        if (ret_dmu)
            ret_dmu[i] = gmu[i];
        if (ret_dsigma)
            ret_dsigma[i] = gs[i];
    }
    if (buf != stack)
        free(buf);
    return sum > 0.0 ? sum : 0.0;
}

double ehvi_front_eval(const struct ehvi_front *f, const double *mu, const double *sigma)
{
    return ehvi_front_eval_grad(f, mu, sigma, NULL, NULL);
}

static double ehvi_once(const double *front,
                        size_t n,
                        size_t m,
                        const double *ref,
                        const double *mu,
                        const double *sigma)
{
    struct ehvi_front *f = ehvi_front_new(front, n, m, ref);
    if (!f)
        return (double)NAN;
    double v = ehvi_front_eval(f, mu, sigma);
    ehvi_front_free(&f);
    return v;
}

double
ehvi_2d(const double *front, size_t n, const double *ref, const double *mu, const double *sigma)
{
    return ehvi_once(front, n, 2, ref, mu, sigma);
}

double
ehvi_3d(const double *front, size_t n, const double *ref, const double *mu, const double *sigma)
{
    return ehvi_once(front, n, 3, ref, mu, sigma);
}

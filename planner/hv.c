/* hv — the hypervolume indicator (minimisation); the idea and references are in hv.h.
 *
 * Every entry point copies the points that strictly dominate the reference point into a work
 * array, reduces it to its non-dominated part and hands it to the method for its dimension:
 *
 *   2-D  sort by f1 ascending; each point that lowers the running f2 bound adds the rectangle
 *        [f1, r1] x [f2, bound]. O(n log n).
 *   3-D  dimension sweep: points in order of f3 ascending; the 2-D front of the points seen so
 *        far is kept sorted by f1 (so f2 descends) together with its area; between consecutive
 *        f3 values the slab contributes area x thickness. Inserting a point removes the points
 *        it dominates in the slice and updates the area by the exclusive area of the new point.
 *        O(n^2) worst case with the sorted array (O(n log n) with a balanced tree; the fronts of
 *        a planner are small).
 *   4-5  slicing along the last objective (HSO): sorted by f_m, each slab between consecutive
 *        f_m values contributes its thickness times the (m-1)-D hypervolume of the points below
 *        it, down to the 3-D sweep. O(n^(m-1)) — fine for planner-sized fronts.
 *   hv_improvement: vol(p, r) - hv(nd(limit(P, p))), limit(q, p) = max(q, p) componentwise
 *        (the exclusive volume of p, as in WFG), so no large hypervolumes are subtracted.
 */
#include "planner/hv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* a weakly dominates b and differs from it somewhere */
static int dominates(const double *a, const double *b, size_t m)
{
    int strict = 0;
    for (size_t i = 0; i < m; i++) {
        if (a[i] > b[i])
            return 0;
        if (a[i] < b[i])
            strict = 1;
    }
    return strict;
}

static void swap_rows(double *p, size_t i, size_t j, size_t m)
{
    for (size_t k = 0; k < m; k++) {
        double t = p[i * m + k];
        p[i * m + k] = p[j * m + k];
        p[j * m + k] = t;
    }
}

size_t hv_nondominated(double *points, size_t n, size_t m)
{
    if (!points || m == 0)
        return 0;
    /* rows [0, kept) are the kept points in their original order, rows [kept, i) the dropped
     * ones; swapping only permutes rows, so every test below still sees the whole set */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        const double *p = points + i * m;
        int drop = 0;
        for (size_t j = 0; j < kept && !drop; j++)
            drop = memcmp(points + j * m, p, m * sizeof(double)) == 0;
        for (size_t j = 0; j < n && !drop; j++)
            drop = j != i && dominates(points + j * m, p, m);
        if (!drop) {
            if (kept != i)
                swap_rows(points, kept, i, m);
            kept++;
        }
    }
    return kept;
}

static int cmp_first(const void *a, const void *b)
{
    const double *x = a, *y = b;
    if (x[0] != y[0])
        return (x[0] > y[0]) - (x[0] < y[0]);
    return (x[1] > y[1]) - (x[1] < y[1]);
}

static int cmp_third(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return (x[2] > y[2]) - (x[2] < y[2]);
}

/* 2-D on points (rows of `stride` doubles, the first two used) all strictly inside ref; sorts
 * them in place. */
static double hv2_sorted(double *pts, size_t n, size_t stride, const double *ref)
{
    if (stride == 2)
        qsort(pts, n, 2 * sizeof(double), cmp_first);
    double vol = 0.0, bound = ref[1];
    for (size_t i = 0; i < n; i++) {
        const double *p = pts + i * stride;
        if (p[1] < bound) {
            vol += (ref[0] - p[0]) * (bound - p[1]);
            bound = p[1];
        }
    }
    return vol;
}

/* Inserts p (f1, f2) into the slice front (nf rows (f1, f2): f1 ascending, f2 descending,
 * mutually non-dominated) unless a front point weakly dominates it, removing the points p
 * dominates; returns the exclusive area p adds (0 if it was dominated). */
static double slice_insert(double *front, size_t *nf_io, const double *p, const double *ref)
{
    size_t nf = *nf_io;
    /* lo: first front point with f1 > p.f1 */
    size_t lo = 0, hi = nf;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (front[2 * mid] <= p[0])
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && front[2 * (lo - 1) + 1] <= p[1])
        return 0.0;
    /* rows [lo, end) have f1 > p.f1 and f2 >= p.f2: dominated by p */
    size_t end = lo;
    while (end < nf && front[2 * end + 1] >= p[1])
        end++;
    /* exclusive area: over [p.f1, next f1) the slice was covered down to `top` */
    double top = lo > 0 ? front[2 * (lo - 1) + 1] : ref[1];
    double x = p[0], add = 0.0;
    for (size_t k = lo; k < end; k++) {
        add += (front[2 * k] - x) * (top - p[1]);
        x = front[2 * k];
        top = front[2 * k + 1];
    }
    add += ((end < nf ? front[2 * end] : ref[0]) - x) * (top - p[1]);
    if (end - lo != 1)
        memmove(front + 2 * (lo + 1), front + 2 * end, 2 * (nf - end) * sizeof(double));
    front[2 * lo] = p[0];
    front[2 * lo + 1] = p[1];
    *nf_io = nf - (end - lo) + 1;
    return add;
}

/* 3-D sweep on n points of 3 all strictly inside ref; sorts pts in place by f3. front is work
 * space of 2n doubles. */
static double hv3_sweep(double *pts, size_t n, const double *ref, double *front)
{
    qsort(pts, n, 3 * sizeof(double), cmp_third);
    size_t nf = 0;
    double area = 0.0, vol = 0.0;
    for (size_t i = 0; i < n; i++) {
        area += slice_insert(front, &nf, pts + i * 3, ref);
        double znext = i + 1 < n ? pts[(i + 1) * 3 + 2] : ref[2];
        vol += area * (znext - pts[i * 3 + 2]);
    }
    return vol;
}

static double hso(double *pts, size_t n, size_t m, const double *ref);

/* The 2-D and 3-D sweeps pass over dominated and repeated points themselves, so only the
 * slicing method (m >= 4) gains from the O(n^2) non-dominated filter first; returns the number
 * of rows to use. */
static size_t reduce(double *pts, size_t n, size_t m)
{
    return m >= 4 ? hv_nondominated(pts, n, m) : n;
}

/* hypervolume of pts (n rows of m, strictly inside ref, any order; modified) */
static double hv_dispatch(double *pts, size_t n, size_t m, const double *ref)
{
    if (n == 0)
        return 0.0;
    if (m == 1) {
        double best = pts[0];
        for (size_t i = 1; i < n; i++)
            best = fmin(best, pts[i]);
        return ref[0] - best;
    }
    if (m == 2)
        return hv2_sorted(pts, n, 2, ref);
    if (m == 3) {
        double *front = malloc(2 * n * sizeof(double));
        if (!front)
            return (double)NAN;
        double v = hv3_sweep(pts, n, ref, front);
        free(front);
        return v;
    }
    return hso(pts, n, m, ref);
}

struct zkey {
    double z;
    size_t row;
};

static int cmp_zkey(const void *a, const void *b)
{
    const struct zkey *x = a, *y = b;
    return (x->z > y->z) - (x->z < y->z);
}

/* Slicing along the last objective (HSO): between consecutive values z_i < z_{i+1} of it, the
 * dominated region's cross-section is the (m-1)-D hypervolume of the points with f_m <= z_i. */
static double hso(double *pts, size_t n, size_t m, const double *ref)
{
    struct zkey *keys = malloc(n * sizeof(*keys));
    double *slice = malloc(n * (m - 1) * sizeof(double));
    double vol = (double)NAN;
    if (!keys || !slice)
        goto out;
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct zkey){.z = pts[i * m + m - 1], .row = i};
    qsort(keys, n, sizeof(*keys), cmp_zkey);
    vol = 0.0;
    for (size_t i = 0; i < n; i++) {
        double znext = i + 1 < n ? keys[i + 1].z : ref[m - 1];
        if (!(znext > keys[i].z))
            continue;
        for (size_t k = 0; k <= i; k++)
            memcpy(slice + k * (m - 1), pts + keys[k].row * m, (m - 1) * sizeof(double));
        size_t ns = reduce(slice, i + 1, m - 1);
        vol += hv_dispatch(slice, ns, m - 1, ref) * (znext - keys[i].z);
    }
out:
    free(keys);
    free(slice);
    return vol;
}
static int bad_args(const double *points, size_t n, size_t m, const double *ref)
{
    if (m < 1 || m > HV_MAX_OBJECTIVES || !ref || (n > 0 && !points))
        return 1;
    for (size_t k = 0; k < m; k++)
        if (!isfinite(ref[k]))
            return 1;
    for (size_t i = 0; i < n * m; i++)
        if (!isfinite(points[i]))
            return 1;
    return 0;
}

/* Copies the points strictly inside ref into a new array and reduces it to its non-dominated
 * part; returns the array (caller frees) and the count in *ret_n. NULL on allocation failure
 * (n == 0 gives a valid pointer from malloc(1)). */
static double *
inside_copy(const double *points, size_t n, size_t m, const double *ref, size_t *ret_n)
{
    double *pts = malloc(n > 0 ? n * m * sizeof(double) : 1);
    if (!pts)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const double *p = points + i * m;
        int inside = 1;
        for (size_t j = 0; j < m && inside; j++)
            inside = p[j] < ref[j];
        if (inside)
            memcpy(pts + (k++) * m, p, m * sizeof(double));
    }
    *ret_n = reduce(pts, k, m);
    return pts;
}

double hv_compute(const double *points, size_t n, size_t m, const double *ref)
{
    if (bad_args(points, n, m, ref))
        return (double)NAN;
    size_t k;
    double *pts = inside_copy(points, n, m, ref, &k);
    if (!pts)
        return (double)NAN;
    double v = hv_dispatch(pts, k, m, ref);
    free(pts);
    return v;
}

double hv_compute_2d(const double *points, size_t n, const double *ref)
{
    return hv_compute(points, n, 2, ref);
}

double hv_compute_3d(const double *points, size_t n, const double *ref)
{
    return hv_compute(points, n, 3, ref);
}

double hv_improvement(const double *points, size_t n, size_t m, const double *ref, const double *p)
{
    if (bad_args(points, n, m, ref) || !p)
        return (double)NAN;
    for (size_t k = 0; k < m; k++) {
        if (!isfinite(p[k]))
            return (double)NAN;
    }
    for (size_t k = 0; k < m; k++)
        if (!(p[k] < ref[k]))
            return 0.0;
    /* exclusive volume of p: vol(p, r) - hv(limit(P, p)) */
    size_t n_values = n * m;
    double *tmp = malloc((n_values > 0 ? n_values : 1) * sizeof(double));
    if (!tmp)
        return (double)NAN;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const double *q = points + i * m;
        int inside = 1;
        for (size_t j = 0; j < m && inside; j++)
            inside = q[j] < ref[j];
        if (!inside)
            continue;
        for (size_t j = 0; j < m; j++)
            tmp[k * m + j] = fmax(q[j], p[j]);
        k++;
    }
    k = reduce(tmp, k, m);
    double incl = 1.0;
    for (size_t j = 0; j < m; j++)
        incl *= ref[j] - p[j];
    double v = incl - hv_dispatch(tmp, k, m, ref);
    free(tmp);
    return v > 0.0 ? v : 0.0;
}

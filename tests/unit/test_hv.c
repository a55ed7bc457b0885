/* test_hv — hypervolume (planner/hv.h) against an exact brute force.
 *
 * The brute force cuts the box [min, ref] into the grid of all distinct point coordinates and
 * adds the volume of every cell whose lower corner some point weakly dominates: exact (up to
 * rounding) for any dimension, O(n^(m+1) m), so used on small random sets. Coordinates are
 * random multiples of 1/16 in some cases, so that ties and duplicates occur.
 */
#include "ll_test.h"
#include "planner/hv.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double brute_force_hv(const double *pts, size_t n, size_t m, const double *ref)
{
    /* per objective: sorted distinct coordinates below ref, then ref */
    double *grid[HV_MAX_OBJECTIVES];
    size_t ng[HV_MAX_OBJECTIVES];
    for (size_t k = 0; k < m; k++) {
        grid[k] = malloc((n + 1) * sizeof(double));
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
            if (pts[i * m + k] < ref[k])
                grid[k][c++] = pts[i * m + k];
        qsort(grid[k], c, sizeof(double), cmp_double);
        size_t u = 0;
        for (size_t i = 0; i < c; i++)
            if (u == 0 || grid[k][i] != grid[k][u - 1])
                grid[k][u++] = grid[k][i];
        grid[k][u++] = ref[k];
        ng[k] = u;
    }
    size_t idx[HV_MAX_OBJECTIVES] = {0};
    double vol = 0.0;
    for (;;) {
        int ok = 1;
        for (size_t k = 0; k < m; k++)
            ok &= idx[k] + 1 < ng[k];
        if (ok) {
            int covered = 0;
            for (size_t i = 0; i < n && !covered; i++) {
                int dom = 1;
                for (size_t k = 0; k < m && dom; k++)
                    dom = pts[i * m + k] <= grid[k][idx[k]] && pts[i * m + k] < ref[k];
                covered = dom;
            }
            if (covered) {
                double cell = 1.0;
                for (size_t k = 0; k < m; k++)
                    cell *= grid[k][idx[k] + 1] - grid[k][idx[k]];
                vol += cell;
            }
        }
        size_t k = 0;
        while (k < m && ++idx[k] >= ng[k])
            idx[k++] = 0;
        if (k == m)
            break;
    }
    for (size_t k = 0; k < m; k++)
        free(grid[k]);
    return vol;
}

/* random points: continuous in [0, 1), or on a 1/16 grid (ties) when `coarse` */
static void random_points(gsl_rng *rng, double *pts, size_t n, size_t m, int coarse)
{
    for (size_t i = 0; i < n * m; i++)
        pts[i] = coarse ? floor(16.0 * gsl_rng_uniform(rng)) / 16.0 : gsl_rng_uniform(rng);
}

/* points near the simplex/sphere so that most are non-dominated */
static void front_points(gsl_rng *rng, double *pts, size_t n, size_t m)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t k = 0; k < m; k++) {
            pts[i * m + k] = gsl_rng_uniform_pos(rng);
            s += pts[i * m + k] * pts[i * m + k];
        }
        for (size_t k = 0; k < m; k++)
            pts[i * m + k] /= sqrt(s);
    }
}

static void check_against_brute_force(size_t m, size_t n_max, int n_cases)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 1000 + m);
    double pts[64 * HV_MAX_OBJECTIVES], ref[HV_MAX_OBJECTIVES];
    for (int c = 0; c < n_cases; c++) {
        size_t n = 1 + gsl_rng_uniform_int(rng, n_max);
        int kind = c % 3;
        if (kind == 2)
            front_points(rng, pts, n, m);
        else
            random_points(rng, pts, n, m, kind == 1);
        for (size_t k = 0; k < m; k++)
            ref[k] = c % 4 == 3 ? 0.8 : 1.1; /* 0.8: some points lie outside ref */
        double want = brute_force_hv(pts, n, m, ref);
        double got = hv_compute(pts, n, m, ref);
        ll_assert_close(got, want, 1e-12, 1e-14);
        if (m == 2)
            ll_assert_close(hv_compute_2d(pts, n, ref), want, 1e-12, 1e-14);
        if (m == 3)
            ll_assert_close(hv_compute_3d(pts, n, ref), want, 1e-12, 1e-14);
        /* improvement of one more point equals the difference of two brute forces */
        double extra[HV_MAX_OBJECTIVES];
        random_points(rng, extra, 1, m, kind == 1);
        memcpy(pts + n * m, extra, m * sizeof(double));
        double want_imp = brute_force_hv(pts, n + 1, m, ref) - want;
        ll_assert_close(hv_improvement(pts, n, m, ref, extra), want_imp, 1e-10, 1e-12);
    }
    gsl_rng_free(rng);
}

static void test_hv_1d_2d_match_brute_force(void **state)
{
    (void)state;
    check_against_brute_force(1, 20, 50);
    check_against_brute_force(2, 40, 300);
}

static void test_hv_3d_matches_brute_force(void **state)
{
    (void)state;
    check_against_brute_force(3, 25, 200);
}

static void test_hv_4d_5d_match_brute_force(void **state)
{
    (void)state;
    check_against_brute_force(4, 12, 80);
    check_against_brute_force(5, 7, 40);
}

static void test_hv_known_values(void **state)
{
    (void)state;
    /* 2-D staircase: (1,3), (2,2), (3,1) with ref (4,4): 3 + 2*2 ... = 1*3 + 1*2 + 1*1 + ... */
    const double p2[] = {1, 3, 2, 2, 3, 1};
    const double r2[] = {4, 4};
    ll_assert_close(hv_compute_2d(p2, 3, r2), 6.0, 1e-15, 0.0);
    /* 3-D: a single point is a box; two boxes overlapping in a unit cube */
    const double p3[] = {0, 0, 1, 1, 1, 0};
    const double r3[] = {2, 2, 2};
    ll_assert_close(hv_compute_3d(p3, 1, r3), 4.0, 1e-15, 0.0);
    ll_assert_close(hv_compute_3d(p3, 2, r3), 4.0 + 2.0 - 1.0, 1e-15, 0.0);
    /* DTLZ2-like: the quarter circle sampled densely approaches 1.1^2 - pi/4 from below */
    enum { N = 2000 };
    static double arc[2 * N];
    for (int i = 0; i < N; i++) {
        double t = (i + 0.5) / N * M_PI / 2.0;
        arc[2 * i] = cos(t);
        arc[2 * i + 1] = sin(t);
    }
    const double r11[] = {1.1, 1.1};
    double v = hv_compute_2d(arc, N, r11);
    assert_true(v < 1.21 - M_PI / 4.0);
    ll_assert_close(v, 1.21 - M_PI / 4.0, 2e-3, 0.0);
}

static void test_hv_nondominated_filter(void **state)
{
    (void)state;
    /* rows: A(1,5) B(2,2) C(3,3 dominated by B) D(2,2 duplicate of B) E(5,1) F(1,5 dup A) G(0,9) */
    double p[] = {1, 5, 2, 2, 3, 3, 2, 2, 5, 1, 1, 5, 0, 9};
    size_t k = hv_nondominated(p, 7, 2);
    assert_int_equal(k, 4);
    const double want[] = {1, 5, 2, 2, 5, 1, 0, 9};
    assert_memory_equal(p, want, sizeof(want));
    /* the dropped rows are still there (permuted) */
    int seen_c = 0;
    for (size_t i = k; i < 7; i++)
        seen_c |= p[2 * i] == 3 && p[2 * i + 1] == 3;
    assert_true(seen_c);
    /* a point equal in one objective and better in another dominates */
    double q[] = {1, 2, 1, 1};
    assert_int_equal(hv_nondominated(q, 2, 2), 1);
    assert_true(q[0] == 1 && q[1] == 1);
    assert_int_equal(hv_nondominated(q, 0, 2), 0);
}

static void test_hv_degenerate_cases(void **state)
{
    (void)state;
    const double r[] = {1, 1, 1, 1, 1};
    /* empty set */
    ll_assert_close(hv_compute(NULL, 0, 2, r), 0.0, 0.0, 0.0);
    ll_assert_close(hv_compute(NULL, 0, 5, r), 0.0, 0.0, 0.0);
    /* points on or outside the reference point contribute nothing */
    const double out[] = {1, 0.5, 0.5, 1, 2, -1, 0.5, 0.5};
    ll_assert_close(hv_compute(out, 3, 2, r), 0.0, 0.0, 0.0);
    ll_assert_close(hv_compute(out, 4, 2, r), 0.25, 1e-15, 0.0);
    /* duplicates count once */
    const double dup[] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    ll_assert_close(hv_compute(dup, 4, 3, r), 0.125, 1e-15, 0.0);
    ll_assert_close(hv_compute(dup, 3, 4, r), 0.0625, 1e-15, 0.0);
    /* bad arguments */
    assert_true(isnan(hv_compute(dup, 2, 0, r)));
    assert_true(isnan(hv_compute(dup, 1, 6, r)));
    assert_true(isnan(hv_compute(NULL, 2, 2, r)));
    const double nan_pt[] = {(double)NAN, 0.5};
    assert_true(isnan(hv_compute(nan_pt, 1, 2, r)));
    /* improvement of a point outside ref, or dominated, is 0 */
    const double front[] = {0.2, 0.2};
    const double far[] = {1.5, 0.1}, dominated[] = {0.3, 0.3};
    ll_assert_close(hv_improvement(front, 1, 2, r, far), 0.0, 0.0, 0.0);
    ll_assert_close(hv_improvement(front, 1, 2, r, dominated), 0.0, 0.0, 0.0);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hv_1d_2d_match_brute_force),
        cmocka_unit_test(test_hv_3d_matches_brute_force),
        cmocka_unit_test(test_hv_4d_5d_match_brute_force),
        cmocka_unit_test(test_hv_known_values),
        cmocka_unit_test(test_hv_nondominated_filter),
        cmocka_unit_test(test_hv_degenerate_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

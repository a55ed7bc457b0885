/* test_design — the scrambled Sobol design: deterministic per (seed, stream), different across
 * seeds, inside the open unit cube, skip == next, and space-filling (every cell of a 16x16
 * grid over each pair of coordinates holds exactly one of the first 256 points — the (0,m,2)
 * net property that scrambling preserves — and the minimum distance is far above what
 * independent uniform points reach). */
#include "ll_test.h"
#include "planner/design.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define D 6
#define N 256

/* 1 when some a[i] != b[i] (by value: memcmp would call +0 and -0 different). */
static int any_differs(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 1;
    return 0;
}

static void points(unsigned long seed, unsigned long stream, double *u, size_t n)
{
    struct design *g = NULL;
    assert_int_equal(design_new(D, seed, stream, &g), 0);
    for (size_t i = 0; i < n; i++)
        design_next(g, u + i * D);
    design_free(&g);
    assert_null(g);
}

static void test_design_deterministic_per_seed(void **state)
{
    (void)state;
    static double a[N * D], b[N * D], c[N * D], e[N * D];
    points(7, 0, a, N);
    points(7, 0, b, N);
    points(8, 0, c, N);
    points(7, 1, e, N);
    assert_memory_equal(a, b, sizeof(a));
    assert_true(any_differs(a, c, N * D));
    assert_true(any_differs(a, e, N * D));
    for (size_t i = 0; i < N * D; i++)
        assert_true(a[i] > 0 && a[i] < 1);
}

static void test_design_skip_equals_next(void **state)
{
    (void)state;
    double all[40 * D], u[D];
    points(3, 0, all, 40);
    struct design *g = NULL;
    assert_int_equal(design_new(D, 3, 0, &g), 0);
    design_skip(g, 31);
    design_next(g, u);
    assert_memory_equal(u, all + 31 * D, sizeof(u));
    design_free(&g);
}

static void test_design_is_a_net_in_every_pair_of_coordinates(void **state)
{
    (void)state;
    static double u[N * D];
    for (unsigned long seed = 1; seed <= 3; seed++) {
        /* GSL's Sobol omits the origin, so the first 255 points plus the 256th form the
         * net only up to that one point: allow one cell with 0 and one with 2 */
        points(seed, 0, u, N);
        for (int j = 0; j < 2; j++) {
            int count[16][16] = {{0}};
            for (size_t i = 0; i < N; i++)
                count[(int)(u[i * D + j] * 16)][(int)(u[i * D + j + 1] * 16)]++;
            int empty = 0, over = 0;
            for (int a = 0; a < 16; a++)
                for (int b = 0; b < 16; b++) {
                    empty += count[a][b] == 0;
                    over += count[a][b] > 1 ? count[a][b] - 1 : 0;
                }
            assert_true(empty <= 1);
            assert_true(over <= 1);
        }
        /* and each coordinate alone is stratified into 256 cells (up to the omitted point) */
        for (int j = 0; j < D; j++) {
            int cell[N] = {0}, empty = 0;
            for (size_t i = 0; i < N; i++)
                cell[(int)(u[i * D + j] * N)]++;
            for (int a = 0; a < N; a++)
                empty += cell[a] == 0;
            assert_true(empty <= 1);
        }
    }
}

static void test_design_min_distance_beats_random(void **state)
{
    (void)state;
    double u[32 * D];
    points(11, 0, u, 32);
    double dmin = 1e9;
    for (size_t i = 0; i < 32; i++)
        for (size_t k = i + 1; k < 32; k++) {
            double s = 0;
            for (size_t j = 0; j < D; j++)
                s += (u[i * D + j] - u[k * D + j]) * (u[i * D + j] - u[k * D + j]);
            dmin = fmin(dmin, sqrt(s));
        }
    /* 32 uniform points in 6-D have a median minimum distance of about 0.2 */
    assert_true(dmin > 0.25);
}

static void test_design_rejects_bad_dimension(void **state)
{
    (void)state;
    struct design *g = NULL;
    assert_int_equal(design_new(0, 1, 0, &g), -EINVAL);
    assert_int_equal(design_new(DESIGN_MAX_DIM + 1, 1, 0, &g), -EINVAL);
    assert_null(g);
    design_free(&g);
    design_free(NULL);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_deterministic_per_seed),
        cmocka_unit_test(test_design_skip_equals_next),
        cmocka_unit_test(test_design_is_a_net_in_every_pair_of_coordinates),
        cmocka_unit_test(test_design_min_distance_beats_random),
        cmocka_unit_test(test_design_rejects_bad_dimension),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

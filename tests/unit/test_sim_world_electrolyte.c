/* The garnet electrolyte world (docs/world.md §2): the documented table of values, and the
 * effects it claims — tetragonal vs cubic about three orders of magnitude, lithium excess
 * protecting against lithium loss, under-sintering hurting the grain boundaries, Arrhenius
 * temperature dependence with the stated activation energy. */
#include "ll_test.h"
#include "simulators/world.h"

#include <math.h>

static struct world_electrolyte_truth eval(double ta, double al, double li, double c, double min)
{
    double x[WORLD_ELECTROLYTE_N_INPUTS] = {ta, al, li, c, min};
    struct world_electrolyte_truth t;
    world_electrolyte_eval(x, &t);
    return t;
}

static void test_world_electrolyte_documented_values(void **state)
{
    (void)state;
    struct world_electrolyte_truth t = eval(0.6, 0, 0.10, 1150, 600);
    ll_assert_close(t.sigma_bulk_s_cm, 6.6e-4, 0.01, 0);
    ll_assert_close(t.sigma_total_s_cm, 5.3e-4, 0.01, 0);
    ll_assert_close(t.ea_bulk_ev, 0.30, 0, 0.005);
    t = eval(0.25, 0.1, 0.10, 1100, 720);
    ll_assert_close(t.sigma_bulk_s_cm, 3.7e-4, 0.01, 0);
    ll_assert_close(t.cubic, 0.92, 0, 0.005);
}

static void test_world_electrolyte_effects(void **state)
{
    (void)state;
    struct world_electrolyte_truth cubic = eval(0.6, 0, 0.10, 1150, 600);
    struct world_electrolyte_truth tetra = eval(0.0, 0, 0.10, 1150, 600);
    assert_true(tetra.cubic < 0.1 && cubic.cubic > 0.99);
    assert_true(cubic.sigma_bulk_s_cm / tetra.sigma_bulk_s_cm > 100);
    assert_true(tetra.ea_bulk_ev > 0.45);
    struct world_electrolyte_truth no_excess = eval(0.6, 0, 0.0, 1150, 600);
    assert_true(no_excess.pyrochlore > 0.9 && no_excess.sigma_total_s_cm < 1e-6);
    struct world_electrolyte_truth under = eval(0.6, 0, 0.10, 950, 60);
    assert_true(under.rel_density < 0.7 && under.gb_ratio > 3 * cubic.gb_ratio);
    double sb60, sgb60, sb25, sgb25;
    world_electrolyte_sigma_at(&cubic, 60.0, &sb60, &sgb60);
    world_electrolyte_sigma_at(&cubic, 25.0, &sb25, &sgb25);
    ll_assert_close(sb25, cubic.sigma_bulk_s_cm, 1e-12, 0);
    double ea = 8.617333262e-5 * log(sb60 / sb25) / (1 / 298.15 - 1 / 333.15);
    ll_assert_close(ea, cubic.ea_bulk_ev, 1e-9, 0);
    ll_assert_close(sb25 / sgb25, cubic.gb_ratio, 1e-12, 0);
    /* finite everywhere in the box and beyond */
    for (int i = 0; i <= 12; i++)
        for (int k = 0; k <= 4; k++)
            assert_true(
                isfinite(eval(0.25 * k, 0.4, 0.5, 800.0 + 50.0 * i, 3000).sigma_total_s_cm));
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_electrolyte_documented_values),
        cmocka_unit_test(test_world_electrolyte_effects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

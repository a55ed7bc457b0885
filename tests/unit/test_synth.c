/* test_synth — the synthetic-data generator reproduces known values: hardware.md §4.2's
 * worked single-diode sets, the implicit diode equation, target PCE/band gap matching,
 * hysteresis, impedance limits, and degradation curves with exact T80. */
#include "ll_test.h"
#include "models/synth.h"

#include <gsl/gsl_rng.h>
#include <math.h>

/* hardware.md §4.2 (J0 there in A/cm², here mA/cm²), with the tabulated results. */
static const struct {
    struct synth_diode d;
    double jsc, voc, vmp, ff, pce;
} worked[] = {
    {{24.5, 2.7e-14, 1.3, 2.5, 4000, 298.15}, 24.48, 1.150, 0.979, 0.814, 22.91},
    {{24.0, 3.5e-11, 1.6, 4.0, 1500, 298.15}, 23.94, 1.119, 0.904, 0.751, 20.12},
    {{22.0, 3.0e-9, 1.8, 8.0, 500, 298.15},   21.65, 1.046, 0.770, 0.640, 14.50},
};

static void test_synth_truth_matches_worked_sets(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(worked) / sizeof(worked[0]); i++) {
        struct synth_jv_truth t;
        assert_int_equal(synth_diode_truth(&worked[i].d, 100.0, &t, NULL), 0);
        /* the table is rounded to its last digit, and used a 1 mV grid */
        ll_assert_close(t.jsc_ma_cm2, worked[i].jsc, 0, 0.006);
        ll_assert_close(t.voc_v, worked[i].voc, 0, 0.0006);
        ll_assert_close(t.vmp_v, worked[i].vmp, 0, 0.0015);
        ll_assert_close(t.ff, worked[i].ff, 0, 0.0006);
        ll_assert_close(t.pce_pct, worked[i].pce, 0, 0.006);
    }
}

/* The explicit Lambert-W current satisfies the implicit diode equation. */
static void test_synth_current_solves_diode_equation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(worked) / sizeof(worked[0]); i++) {
        const struct synth_diode *d = &worked[i].d;
        double a = d->ideality * SYNTH_K_B_EV * d->temp_k;
        for (int k = 0; k <= 32; k++) { /* v = -0.2 ... 1.4 V */
            double v = -0.2 + 0.05 * (double)k;
            double j = synth_diode_current(d, v) * 1e-3; /* A/cm² */
            double vd = v + j * d->rs_ohm_cm2;
            double rhs =
                d->jph_ma_cm2 * 1e-3 - d->j0_ma_cm2 * 1e-3 * expm1(vd / a) - vd / d->rsh_ohm_cm2;
            ll_assert_close(j, rhs, 1e-9, 1e-12);
        }
    }
}

static void test_synth_for_target_hits_pce_and_band_gap(void **state)
{
    static const double cases[][2] = {
        {1.55, 22.8},
        {1.60, 18.0},
        {1.70, 12.0},
        {1.55, 3.0 },
        {1.80, 15.0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct synth_diode d;
        struct synth_jv_truth t;
        assert_int_equal(synth_diode_for_target(cases[i][0], cases[i][1], 100.0, -1.0, &d, NULL),
                         0);
        assert_int_equal(synth_diode_truth(&d, 100.0, &t, NULL), 0);
        ll_assert_close(t.pce_pct, cases[i][1], 0, 1e-6);
        /* Voc = Eg − ΔV with ΔV in [0.35, 0.50] */
        assert_true(t.voc_v <= cases[i][0] - 0.35 + 1e-9 && t.voc_v >= cases[i][0] - 0.5 - 1e-9);
        assert_true(t.ff >= 0.5 && t.ff <= 0.84);
        assert_true(t.jsc_ma_cm2 <= 0.95 * synth_sq_jsc_ma_cm2(cases[i][0]));
    }
}

static void test_synth_for_target_rejects_impossible_pce(void **state)
{
    struct synth_diode d;
    struct ll_error err = {0};
    (void)state;
    assert_int_equal(synth_diode_for_target(2.3, 20.0, 100.0, -1.0, &d, &err), -ERANGE);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(synth_diode_for_target(1.55, -1.0, 100.0, -1.0, &d, NULL), -EINVAL);
}

static void test_synth_hysteresis_gives_exact_pce_ratio(void **state)
{
    struct synth_diode fwd;
    struct synth_jv_truth t_rev, t_fwd;
    (void)state;
    assert_int_equal(synth_diode_hysteresis(&worked[1].d, 0.12, &fwd, NULL), 0);
    assert_int_equal(synth_diode_truth(&worked[1].d, 100.0, &t_rev, NULL), 0);
    assert_int_equal(synth_diode_truth(&fwd, 100.0, &t_fwd, NULL), 0);
    ll_assert_close((t_rev.pce_pct - t_fwd.pce_pct) / t_rev.pce_pct, 0.12, 0, 1e-9);
}

static void test_synth_sweep_order_sign_and_noise(void **state)
{
    double v[131], j[131];
    struct synth_sweep_options o = {.v_start_v = 1.2, .v_end_v = -0.1, .n_points = 131};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    (void)state;
    o.load_convention = true;
    assert_int_equal(synth_jv_sweep(&worked[0].d, &o, NULL, v, j), 0);
    ll_assert_close(v[0], 1.2, 0, 1e-12);
    ll_assert_close(v[130], -0.1, 0, 1e-12);
    ll_assert_close(j[130], -synth_diode_current(&worked[0].d, -0.1), 1e-12, 0);
    o.noise_rel = 0.005;
    assert_int_equal(synth_jv_sweep(&worked[0].d, &o, NULL, v, j), -EINVAL); /* no rng */
    assert_int_equal(synth_jv_sweep(&worked[0].d, &o, rng, v, j), 0);
    double ss = 0;
    for (size_t i = 0; i < 131; i++) {
        double e = -j[i] - synth_diode_current(&worked[0].d, v[i]);
        ss += e * e;
    }
    /* sd of the noise is 0.5 % of Jph = 0.1225 mA/cm²; 131 draws */
    ll_assert_close(sqrt(ss / 131), 0.005 * 24.5, 0.2, 0);
    gsl_rng_free(rng);
}

static void test_synth_eis_limits_and_apex(void **state)
{
    struct synth_eis_circuit c = {
        .r_bulk_ohm = 1000, .q_bulk = 1e-10, .n_bulk = 1.0, .r_lead_ohm = 5};
    double re, im;
    (void)state;
    /* R‖C: low frequency -> R + lead, apex at ω = 1/(RC) with −Z'' = R/2 */
    synth_eis_impedance(&c, 1e-3, &re, &im);
    ll_assert_close(re, 1005, 1e-6, 0);
    synth_eis_impedance(&c, 1.0 / (2 * M_PI * 1000 * 1e-10), &re, &im);
    ll_assert_close(re, 505, 1e-9, 0);
    ll_assert_close(im, -500, 1e-9, 0);
    /* a blocking electrode makes −Z'' grow at low frequency; inductance makes Z'' > 0 high */
    c.q_el = 1e-6;
    c.n_el = 0.85;
    synth_eis_impedance(&c, 0.1, &re, &im);
    assert_true(-im > 1e5);
    c.l_lead_h = 1e-6;
    synth_eis_impedance(&c, 1e9, &re, &im);
    assert_true(im > 0);
}

static void test_synth_eis_pellet_values(void **state)
{
    struct synth_eis_circuit c;
    (void)state;
    /* hardware.md §5.4: LLZO at 25 °C, σ 5e-4, L 0.1, A 0.785 -> R_b 255 Ω */
    assert_int_equal(synth_eis_pellet(5e-4, 0.5, 0.10, 0.785, 50, &c), 0);
    ll_assert_close(c.r_bulk_ohm, 254.8, 1e-3, 0);
    ll_assert_close(c.r_gb_ohm, 127.4, 1e-3, 0);
    /* C_eff of the bulk element is ε0 εr A/L = 3.5e-11 F */
    double ceff = pow(pow(c.r_bulk_ohm, 1 - c.n_bulk) * c.q_bulk, 1 / c.n_bulk);
    ll_assert_close(ceff, 3.475e-11, 1e-3, 0);
    assert_int_equal(synth_eis_pellet(-1, 0, 0.1, 0.785, 50, &c), -EINVAL);
}

static void test_synth_degradation_t80_is_exact(void **state)
{
    static const double cases[][4] = {
        {1000, 0.00, 1,  1.0},
        {500,  0.05, 20, 0.7},
        {8000, 0.10, 50, 1.5},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct synth_degradation d;
        assert_int_equal(
            synth_degradation_for_t80(cases[i][0], cases[i][1], cases[i][2], cases[i][3], &d), 0);
        ll_assert_close(synth_degradation_value(&d, cases[i][0]), 0.8, 0, 1e-12);
        ll_assert_close(synth_degradation_value(&d, 0), 1.0, 0, 1e-12);
        assert_true(synth_degradation_value(&d, 0.5 * cases[i][0]) > 0.8);
    }
    struct synth_degradation d;
    /* a burn-in that alone falls below 0.8 is refused */
    assert_int_equal(synth_degradation_for_t80(100, 0.25, 1, 1, &d), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_truth_matches_worked_sets),
        cmocka_unit_test(test_synth_current_solves_diode_equation),
        cmocka_unit_test(test_synth_for_target_hits_pce_and_band_gap),
        cmocka_unit_test(test_synth_for_target_rejects_impossible_pce),
        cmocka_unit_test(test_synth_hysteresis_gives_exact_pce_ratio),
        cmocka_unit_test(test_synth_sweep_order_sign_and_noise),
        cmocka_unit_test(test_synth_eis_limits_and_apex),
        cmocka_unit_test(test_synth_eis_pellet_values),
        cmocka_unit_test(test_synth_degradation_t80_is_exact),
    };
    ll_test_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_jv — J-V figures of merit against the exact single-diode truth (models/synth.h):
 * issue 4's targets (PCE within 0.05 % absolute without noise and 0.2 % with 0.5 % current
 * noise, Voc within 2 mV, FF within 0.005) over hardware.md's three worked sets and cells
 * made for a band gap and PCE, in both sign conventions, shuffled, and the error cases. */
#include "ll_test.h"
#include "models/jv.h"
#include "models/synth.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#define N_MAX 400

static const struct synth_diode worked[] = {
    {24.5, 2.7e-14, 1.3, 2.5, 4000, 298.15},
    {24.0, 3.5e-11, 1.6, 4.0, 1500, 298.15},
    {22.0, 3.0e-9,  1.8, 8.0, 500,  298.15},
};

static void shuffle(double *v, double *j, size_t n, gsl_rng *rng)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t k = gsl_rng_uniform_int(rng, i + 1);
        double tv = v[i], tj = j[i];
        v[i] = v[k];
        j[i] = j[k];
        v[k] = tv;
        j[k] = tj;
    }
}

/* Worst errors of jv_figures over `trials` sweeps of d. */
struct worst {
    double pce, voc, ff, jsc;
};

static void run_sweeps(const struct synth_diode *d,
                       const struct synth_sweep_options *o,
                       double irradiance,
                       int trials,
                       gsl_rng *rng,
                       bool shuffled,
                       bool local,
                       struct worst *w)
{
    double v[N_MAX], j[N_MAX];
    struct synth_jv_truth t;
    struct synth_diode dd;
    struct jv_figures f;
    struct ll_error err = {0};

    assert_int_equal(synth_diode_hysteresis(d, o->hysteresis, &dd, NULL), 0);
    assert_int_equal(synth_diode_truth(&dd, irradiance, &t, NULL), 0);
    for (int k = 0; k < trials; k++) {
        assert_int_equal(synth_jv_sweep(d, o, rng, v, j), 0);
        if (shuffled)
            shuffle(v, j, o->n_points, rng);
        int r = local ? jv_figures_local(v, j, o->n_points, irradiance, &f, &err)
                      : jv_figures(v, j, o->n_points, irradiance, &f, &err);
        if (r != 0)
            fail_msg("jv_figures: %s", err.msg);
        assert_int_equal(f.load_convention, o->load_convention);
        w->pce = fmax(w->pce, fabs(f.pce_pct - t.pce_pct));
        w->voc = fmax(w->voc, fabs(f.voc_v - t.voc_v));
        w->ff = fmax(w->ff, fabs(f.ff - t.ff));
        w->jsc = fmax(w->jsc, fabs(f.jsc_ma_cm2 - t.jsc_ma_cm2));
    }
}

static void check_targets(const char *what, const struct worst *w, double pce_tol)
{
    print_message("%s: worst |error| PCE %.4f %% (abs), Voc %.3f mV, FF %.5f, Jsc %.4f mA/cm2\n",
                  what,
                  w->pce,
                  1e3 * w->voc,
                  w->ff,
                  w->jsc);
    assert_true(w->pce <= pce_tol);
    assert_true(w->voc <= 0.002);
    assert_true(w->ff <= 0.005);
}

static const struct {
    double start, end;
    size_t n;
    bool load;
} noise_free_sweeps[] = {
    {1.3,  -0.1, 141, false}, /* 10 mV, reverse, generator convention */
    {-0.1, 1.3,  141, true }, /* 10 mV, forward, load convention */
    {1.25, -0.1, 68,  true }, /* 20 mV */
    {0.0,  1.2,  241, false}, /* 5 mV, starts at V = 0 exactly */
};

/* Both the default (diode fit) and the model-free local fits meet the noise-free targets. */
static void test_jv_noise_free_within_targets(void **state)
{
    (void)state;
    for (int local = 0; local <= 1; local++) {
        struct worst w = {0};
        for (size_t i = 0; i < sizeof(worked) / sizeof(worked[0]); i++) {
            for (size_t s = 0; s < sizeof(noise_free_sweeps) / sizeof(noise_free_sweeps[0]); s++) {
                struct synth_sweep_options o = {.v_start_v = noise_free_sweeps[s].start,
                                                .v_end_v = noise_free_sweeps[s].end,
                                                .n_points = noise_free_sweeps[s].n,
                                                .load_convention = noise_free_sweeps[s].load};
                run_sweeps(&worked[i], &o, 100.0, 1, NULL, false, local, &w);
            }
        }
        check_targets(local ? "noise-free, local fits" : "noise-free, default", &w, 0.05);
    }
}

/* 0.5 % current noise (sd = 0.5 % of Jph), 1 mV voltage quantisation, shuffled points:
 * the worst error over 100 sweeps of each worked set. */
static void test_jv_noisy_shuffled_within_targets(void **state)
{
    struct worst w = {0}, wl = {0};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    (void)state;
    gsl_rng_set(rng, 42);
    for (size_t i = 0; i < sizeof(worked) / sizeof(worked[0]); i++) {
        struct synth_sweep_options o = {.v_start_v = 1.3,
                                        .v_end_v = -0.1,
                                        .n_points = 141,
                                        .noise_rel = 0.005,
                                        .v_quantum_v = 1e-3,
                                        .load_convention = (i % 2) == 1};
        run_sweeps(&worked[i], &o, 100.0, 100, rng, true, false, &w);
        run_sweeps(&worked[i], &o, 100.0, 30, rng, true, true, &wl);
    }
    check_targets("0.5 % noise, default, 300 sweeps", &w, 0.2);
    /* the model-free fallback meets the PCE target; its FF is reported, not held to 0.005 */
    print_message("0.5 %% noise, local fits only, 90 sweeps: PCE %.4f %%, Voc %.3f mV, FF %.5f\n",
                  wl.pce,
                  1e3 * wl.voc,
                  wl.ff);
    assert_true(wl.pce <= 0.2);
    gsl_rng_free(rng);
}

/* Cells made for a band gap and PCE (as labsim makes them), half a sun, forward sweeps of a
 * hysteretic cell. */
static void test_jv_target_cells_and_irradiance(void **state)
{
    static const double cases[][3] = {
  /* Eg, PCE, irradiance */
        {1.55, 22.8, 100.0},
        {1.62, 15.0, 100.0},
        {1.70, 6.0,  100.0},
        {1.55, 20.0, 50.0 },
    };
    struct worst w = {0}, wn = {0};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    (void)state;
    gsl_rng_set(rng, 7);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct synth_diode d;
        assert_int_equal(
            synth_diode_for_target(cases[i][0], cases[i][1], cases[i][2], -1, &d, NULL), 0);
        struct synth_sweep_options o = {
            .v_start_v = -0.1, .v_end_v = 1.4, .n_points = 151, .hysteresis = 0.1};
        run_sweeps(&d, &o, cases[i][2], 1, NULL, false, false, &w);
        o.noise_rel = 0.005;
        run_sweeps(&d, &o, cases[i][2], 30, rng, true, false, &wn);
    }
    check_targets("target cells, noise-free", &w, 0.05);
    check_targets("target cells, 0.5 % noise", &wn, 0.2);
    gsl_rng_free(rng);
}

/* Two-diode cells (ideal n = 1 diffusion diode plus an n = 2 recombination diode), a model
 * the analysis does not fit: J(V) by bisection on the implicit equation, truth on a 0.01 mV
 * grid refined by golden section. Noise-free and with 0.5 % noise, both paths within the
 * targets. */
struct two_diode {
    double jph, j01, j02, rs, rsh; /* mA/cm², Ω·cm² */
};

static double two_diode_current(const struct two_diode *c, double v)
{
    const double vt = 8.617333262e-5 * 298.15;
    double lo = -1e3, hi = c->jph + 1.0;
    for (int i = 0; i < 200; i++) {
        double j = 0.5 * (lo + hi), vd = v + j * 1e-3 * c->rs;
        double f = c->jph - c->j01 * expm1(vd / vt) - c->j02 * expm1(vd / (2 * vt)) -
                   1e3 * vd / c->rsh - j;
        if (f > 0)
            lo = j;
        else
            hi = j;
    }
    return 0.5 * (lo + hi);
}

static void test_jv_two_diode_cells_within_targets(void **state)
{
    static const struct two_diode cells[] = {
        {24.0, 1e-17, 1e-9, 3.0, 3000},
        {22.0, 1e-16, 5e-8, 6.0, 800 },
    };
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    struct worst w[2] = {{0}}, wn = {0};
    (void)state;
    gsl_rng_set(rng, 23);
    for (size_t c = 0; c < 2; c++) {
        double v[141], j[141], voc, lo = 0, hi = 1.5, pmax = 0, jsc;
        for (int i = 0; i < 200; i++) {
            double m = 0.5 * (lo + hi);
            if (two_diode_current(&cells[c], m) > 0)
                lo = m;
            else
                hi = m;
        }
        voc = 0.5 * (lo + hi);
        jsc = two_diode_current(&cells[c], 0.0);
        for (size_t k = 0; 0.5 + 1e-5 * (double)k < voc; k++) {
            double x = 0.5 + 1e-5 * (double)k;
            pmax = fmax(pmax, x * two_diode_current(&cells[c], x));
        }
        for (size_t i = 0; i < 141; i++) {
            v[i] = 1.3 - 0.01 * (double)i;
            j[i] = two_diode_current(&cells[c], v[i]);
        }
        for (int local = 0; local <= 1; local++) {
            struct jv_figures f;
            assert_int_equal(local ? jv_figures_local(v, j, 141, 100, &f, NULL)
                                   : jv_figures(v, j, 141, 100, &f, NULL),
                             0);
            w[local].pce = fmax(w[local].pce, fabs(f.pce_pct - pmax));
            w[local].voc = fmax(w[local].voc, fabs(f.voc_v - voc));
            w[local].ff = fmax(w[local].ff, fabs(f.ff - pmax / (voc * jsc)));
            w[local].jsc = fmax(w[local].jsc, fabs(f.jsc_ma_cm2 - jsc));
        }
        for (int k = 0; k < 50; k++) {
            double jn[141];
            struct jv_figures f;
            for (size_t i = 0; i < 141; i++)
                jn[i] = j[i] + gsl_ran_gaussian(rng, 0.005 * cells[c].jph);
            assert_int_equal(jv_figures(v, jn, 141, 100, &f, NULL), 0);
            wn.pce = fmax(wn.pce, fabs(f.pce_pct - pmax));
            wn.voc = fmax(wn.voc, fabs(f.voc_v - voc));
            wn.ff = fmax(wn.ff, fabs(f.ff - pmax / (voc * jsc)));
            wn.jsc = fmax(wn.jsc, fabs(f.jsc_ma_cm2 - jsc));
        }
    }
    check_targets("two-diode cells, noise-free, default", &w[0], 0.05);
    check_targets("two-diode cells, noise-free, local fits", &w[1], 0.05);
    check_targets("two-diode cells, 0.5 % noise, default, 100 sweeps", &wn, 0.2);
    gsl_rng_free(rng);
}

/* A curve the single-diode model cannot describe (a kink near the maximum power point, as
 * an extraction barrier gives): the analysis must notice and keep the model-free numbers,
 * which still find the true maximum (dense-grid truth). */
static double kinked(double v)
{
    return synth_diode_current(&worked[0], v) - 1.5 * (1.0 + tanh((v - 0.9) / 0.02));
}

static void test_jv_kinked_curve_falls_back_to_local_fits(void **state)
{
    double v[141], j[141], p_true = 0.0;
    struct jv_figures f;
    (void)state;
    for (int i = 0; i <= 200000; i++) {
        double x = 1.3 * i / 200000.0;
        p_true = fmax(p_true, x * kinked(x));
    }
    for (size_t i = 0; i < 141; i++) {
        v[i] = -0.1 + 0.01 * (double)i;
        j[i] = kinked(v[i]);
    }
    assert_int_equal(jv_figures(v, j, 141, 100.0, &f, NULL), 0);
    assert_false(f.diode_fit);
    ll_assert_close(f.pce_pct, p_true, 0, 0.05);
}

static void test_jv_hysteresis_index(void **state)
{
    (void)state;
    ll_assert_close(jv_hysteresis_index(20.0, 18.0), 0.1, 0, 1e-12);
    ll_assert_close(jv_hysteresis_index(20.0, 21.0), -0.05, 0, 1e-12);
    assert_true(isnan(jv_hysteresis_index(0.0, 18.0)));
}

static void test_jv_rejects_curves_without_crossings(void **state)
{
    static const struct {
        double v[5], j[5];
        size_t n;
        const char *want;
    } cases[] = {
        {{0.1, 0.2, 0.3, 0.4, 0.5},      {20, 19, 18, 10, -5},      5, "never crosses V = 0"},
        {{-0.5, -0.4, -0.3, -0.2, -0.1}, {20, 20, 20, 20, 20},      5, "never crosses V = 0"},
        {{-0.1, 0.0, 0.3, 0.6, 0.9},     {20, 20, 19.5, 19, 18},    5, "never crosses J = 0"},
        {{-0.1, 0.0, 0.3, 0.6, 0.9},     {-20, -20, -19, -18, -17}, 5, "never crosses J = 0"},
        {{-0.1, 0.0, 0.1, 0.2, 0.3},     {0, 0, 0, 0, 0},           5, "no photocurrent"    },
        {{0.0, 1.0, 0, 0, 0},            {20, -1, 0, 0, 0},         2, "need at least 3"    },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct jv_figures f;
        struct ll_error err = {0};
        assert_int_equal(jv_figures(cases[i].v, cases[i].j, cases[i].n, 100.0, &f, &err), -EINVAL);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jv_noise_free_within_targets),
        cmocka_unit_test(test_jv_noisy_shuffled_within_targets),
        cmocka_unit_test(test_jv_target_cells_and_irradiance),
        cmocka_unit_test(test_jv_two_diode_cells_within_targets),
        cmocka_unit_test(test_jv_kinked_curve_falls_back_to_local_fits),
        cmocka_unit_test(test_jv_hysteresis_index),
        cmocka_unit_test(test_jv_rejects_curves_without_crossings),
    };
    ll_test_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_gp — Gaussian-process regression (models/gp.h).
 *
 * Checks: interpolation of noise-free data; a 2-point posterior against a hand computation of
 * the Matérn 5/2 formulas (independent of gp.c); predictive gradients and the log-marginal-
 * likelihood gradient against central finite differences; bounds on the fit of a few noisy
 * points; determinism per seed; gp_add_observation against a fixed-hyperparameter refit;
 * leave-one-out calibration against explicit refits; a fixed (not fitted) constant mean; the
 * additive kernel part; clone; bad input.
 */
#include "ll_test.h"
#include "models/gp.h"

#include <errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double smooth_fn(const double *x)
{
    return sin(3.0 * x[0]) + cos(2.0 * x[1]) + 0.5 * x[0] * x[1];
}

/* n random points in [0,1]^d and outputs f + noise_sd * N(0,1) */
static void make_data(unsigned long seed, size_t n, size_t d, double noise_sd, double *x, double *y)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = gsl_rng_uniform(rng);
        double xx[2] = {x[i * d], d > 1 ? x[i * d + 1] : 0.3};
        y[i] = 10.0 + 4.0 * smooth_fn(xx);
        /* Box-Muller keeps the test independent of gsl_randist */
        double u1 = gsl_rng_uniform_pos(rng), u2 = gsl_rng_uniform(rng);
        y[i] += noise_sd * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    }
    gsl_rng_free(rng);
}

static void test_gp_interpolates_noise_free_data(void **state)
{
    (void)state;
    enum { N = 20, D = 2 };
    double x[N * D], y[N];
    make_data(7, N, D, 0.0, x, y);
    struct gp *gp = NULL;
    struct ll_error err;
    assert_int_equal(gp_fit(x, y, N, D, NULL, &gp, &err), 0);
    assert_int_equal(gp_n_obs(gp), N);
    assert_int_equal(gp_dim(gp), D);
    struct gp_hyper h;
    gp_get_hyper(gp, &h);
    for (size_t i = 0; i < N; i++) {
        double m, v;
        assert_int_equal(gp_predict(gp, x + i * D, &m, &v, NULL, NULL), 0);
        /* the data vary by ~4 units; interpolation to 1 % of the output scale */
        ll_assert_close(m, y[i], 0.0, 0.01 * h.y_std);
        assert_true(v >= 0.0 && v < 1e-3 * h.y_std * h.y_std);
    }
    /* away from the data the mean is still close (smooth function, 20 points in 2-D) */
    double xq[2] = {0.5, 0.5};
    double m, v;
    gp_predict(gp, xq, &m, &v, NULL, NULL);
    ll_assert_close(m, 10.0 + 4.0 * smooth_fn(xq), 0.0, 0.3);
    gp_free(&gp);
    assert_null(gp);
}

/* Matérn 5/2, written out again independently of gp.c */
static double k52(double r, double sf2)
{
    return sf2 * (1.0 + sqrt(5.0) * r + 5.0 / 3.0 * r * r) * exp(-sqrt(5.0) * r);
}

static void test_gp_two_point_posterior_matches_hand_computation(void **state)
{
    (void)state;
    const double x[2] = {0.0, 0.5}, y[2] = {1.0, 3.0}, xq = 0.3;
    struct gp_hyper h = {.d = 1,
                         .length_scale = {0.4},
                         .signal_var = 1.5,
                         .noise_var = 0.1,
                         .const_mean = 0.2,
                         .y_mean = 1.0,
                         .y_std = 2.0};
    struct gp *gp = NULL;
    assert_int_equal(gp_fit_fixed(x, y, 2, 1, &h, &gp, NULL), 0);
    /* standardised data and the 2x2 system solved by hand */
    double ys0 = (y[0] - 1.0) / 2.0 - 0.2, ys1 = (y[1] - 1.0) / 2.0 - 0.2;
    double k01 = k52(0.5 / 0.4, 1.5), kd = 1.5 + 0.1;
    double det = kd * kd - k01 * k01;
    double a0 = (kd * ys0 - k01 * ys1) / det, a1 = (-k01 * ys0 + kd * ys1) / det;
    double kq0 = k52(0.3 / 0.4, 1.5), kq1 = k52(0.2 / 0.4, 1.5);
    double mean_s = 0.2 + kq0 * a0 + kq1 * a1;
    double quad = (kd * kq0 * kq0 - 2.0 * k01 * kq0 * kq1 + kd * kq1 * kq1) / det;
    double var_s = 1.5 - quad;
    double m, v;
    assert_int_equal(gp_predict(gp, &xq, &m, &v, NULL, NULL), 0);
    ll_assert_close(m, 1.0 + 2.0 * mean_s, 1e-12, 1e-12);
    ll_assert_close(v, 4.0 * var_s, 1e-12, 1e-12);
    /* log marginal likelihood of the standardised data */
    double want_lml = -0.5 * (ys0 * a0 + ys1 * a1) - 0.5 * log(det) - log(2.0 * M_PI);
    struct gp_hyper got;
    gp_get_hyper(gp, &got);
    ll_assert_close(got.log_marginal_likelihood, want_lml, 1e-12, 1e-12);
    double lml;
    assert_int_equal(gp_log_marginal_likelihood(x, y, 2, 1, &h, &lml, NULL), 0);
    ll_assert_close(lml, want_lml, 1e-12, 1e-12);
    gp_free(&gp);
}

/* gp_predict's mean and variance gradients at xq against central differences, to 1e-4 of
 * each gradient's largest component. */
static void assert_predict_gradients(const struct gp *gp, const double *xq)
{
    size_t d = gp_dim(gp);
    double dm[GP_MAX_DIM], dv[GP_MAX_DIM], m, v, scale_m = 0.0, scale_v = 0.0;
    assert_int_equal(gp_predict(gp, xq, &m, &v, dm, dv), 0);
    for (size_t j = 0; j < d; j++) {
        scale_m = fmax(scale_m, fabs(dm[j]));
        scale_v = fmax(scale_v, fabs(dv[j]));
    }
    for (size_t j = 0; j < d; j++) {
        const double step = 1e-5;
        double xp[GP_MAX_DIM], xm[GP_MAX_DIM], mp, vp, mm, vm;
        memcpy(xp, xq, d * sizeof(double));
        memcpy(xm, xq, d * sizeof(double));
        xp[j] += step;
        xm[j] -= step;
        gp_predict(gp, xp, &mp, &vp, NULL, NULL);
        gp_predict(gp, xm, &mm, &vm, NULL, NULL);
        ll_assert_close(dm[j], (mp - mm) / (2.0 * step), 0.0, 1e-4 * scale_m + 1e-9);
        ll_assert_close(dv[j], (vp - vm) / (2.0 * step), 0.0, 1e-4 * scale_v + 1e-9);
    }
}

static void test_gp_predictive_gradients_match_finite_differences(void **state)
{
    (void)state;
    enum { N = 25, D = 3 };
    double x[N * D], y[N];
    make_data(11, N, D, 0.05, x, y);
    struct gp *gp = NULL;
    assert_int_equal(gp_fit(x, y, N, D, NULL, &gp, NULL), 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    for (int trial = 0; trial < 10; trial++) {
        double xq[D];
        for (size_t j = 0; j < D; j++)
            xq[j] = 0.05 + 0.9 * gsl_rng_uniform(rng);
        assert_predict_gradients(gp, xq);
    }
    gsl_rng_free(rng);
    gp_free(&gp);
}

static void test_gp_lml_gradient_matches_finite_differences(void **state)
{
    (void)state;
    enum { N = 15, D = 3, NP = 2 * D + 4 };
    double x[N * D], y[N];
    make_data(5, N, D, 0.2, x, y);
    /* without and with the additive part */
    for (int with_add = 0; with_add < 2; with_add++) {
        struct gp_hyper h = {
            .d = D,
            .length_scale = {0.3, 0.7, 1.4},
            .signal_var = 0.8,
            .noise_var = 0.05,
            .const_mean = 0.1,
            .y_mean = 10.0,
            .y_std = 3.0,
            .add_var = with_add ? 0.6 : 0.0,
            .add_length_scale = {0.5, 0.2, 0.9}
        };
        double lml, grad[NP];
        assert_int_equal(gp_log_marginal_likelihood(x, y, N, D, &h, &lml, grad), 0);
        for (size_t p = 0; p < (with_add ? NP : D + 3); p++) {
            const double step = 1e-6;
            double f[2];
            for (int s = 0; s < 2; s++) {
                struct gp_hyper hp = h;
                double delta = s == 0 ? step : -step;
                if (p < D)
                    hp.length_scale[p] *= exp(delta);
                else if (p == D)
                    hp.signal_var *= exp(delta);
                else if (p == D + 1)
                    hp.noise_var *= exp(delta);
                else if (p == D + 2)
                    hp.const_mean += delta;
                else if (p == D + 3)
                    hp.add_var *= exp(delta);
                else
                    hp.add_length_scale[p - D - 4] *= exp(delta);
                assert_int_equal(gp_log_marginal_likelihood(x, y, N, D, &hp, &f[s], NULL), 0);
            }
            ll_assert_close(grad[p], (f[0] - f[1]) / (2.0 * step), 1e-4, 1e-6);
        }
        if (!with_add)
            for (size_t p = D + 3; p < NP; p++)
                assert_true(grad[p] == 0.0);
    }
}

static void test_gp_few_noisy_points_give_bounded_length_scales(void **state)
{
    (void)state;
    enum { N = 10, D = 4 };
    for (unsigned long seed = 1; seed <= 5; seed++) {
        double x[N * D], y[N];
        make_data(seed, N, D, 2.0, x, y);
        struct gp *gp = NULL;
        struct gp_options opt;
        gp_options_default(&opt);
        opt.seed = seed;
        assert_int_equal(gp_fit(x, y, N, D, &opt, &gp, NULL), 0);
        struct gp_hyper h;
        gp_get_hyper(gp, &h);
        for (size_t j = 0; j < D; j++) {
            assert_true(h.length_scale[j] >= GP_LENGTH_SCALE_MIN * (1 - 1e-12));
            assert_true(h.length_scale[j] <= GP_LENGTH_SCALE_MAX * (1 + 1e-12));
        }
        assert_true(h.noise_var >= opt.min_noise_var && isfinite(h.noise_var));
        assert_true(h.signal_var > 0.0 && h.signal_var < 100.0);
        assert_true(isfinite(h.log_marginal_likelihood));
        gp_free(&gp);
    }
}

static void test_gp_fit_is_deterministic_per_seed(void **state)
{
    (void)state;
    enum { N = 30, D = 3 };
    double x[N * D], y[N];
    make_data(9, N, D, 0.1, x, y);
    struct gp_options opt;
    gp_options_default(&opt);
    opt.seed = 42;
    struct gp *a = NULL, *b = NULL;
    assert_int_equal(gp_fit(x, y, N, D, &opt, &a, NULL), 0);
    assert_int_equal(gp_fit(x, y, N, D, &opt, &b, NULL), 0);
    struct gp_hyper ha, hb;
    gp_get_hyper(a, &ha);
    gp_get_hyper(b, &hb);
    assert_memory_equal(&ha, &hb, sizeof(ha));
    gp_free(&a);
    gp_free(&b);
}

static void test_gp_warm_start_stays_at_the_optimum(void **state)
{
    (void)state;
    enum { N = 60, D = 3 };
    double x[N * D], y[N];
    make_data(21, N, D, 0.05, x, y);
    struct gp *a = NULL, *b = NULL;
    assert_int_equal(gp_fit(x, y, N, D, NULL, &a, NULL), 0);
    struct gp_hyper ha, hb;
    gp_get_hyper(a, &ha);
    struct gp_options opt;
    gp_options_default(&opt);
    opt.n_restarts = 1;
    assert_int_equal(gp_fit_from(x, y, N, D, &opt, &ha, &b, NULL), 0);
    gp_get_hyper(b, &hb);
    /* started at the optimum, BFGS stays near it: likelihood within 0.5 nats */
    ll_assert_close(hb.log_marginal_likelihood, ha.log_marginal_likelihood, 0.0, 0.5);
    for (size_t j = 0; j < D; j++)
        ll_assert_close(hb.length_scale[j], ha.length_scale[j], 0.2, 0.0);
    gp_free(&a);
    gp_free(&b);
}

static void test_gp_add_observation_equals_fixed_refit(void **state)
{
    (void)state;
    enum { N = 12, D = 2 };
    double x[(N + 3) * D], y[N + 3];
    make_data(13, N + 3, D, 0.1, x, y);
    struct gp *gp = NULL, *ref = NULL;
    assert_int_equal(gp_fit(x, y, N, D, NULL, &gp, NULL), 0);
    struct gp_hyper h;
    gp_get_hyper(gp, &h);
    struct gp *copy = gp_clone(gp);
    assert_non_null(copy);
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(gp_add_observation(gp, x + (N + k) * D, y[N + k]), 0);
    assert_int_equal(gp_n_obs(gp), N + 3);
    assert_int_equal(gp_n_obs(copy), N);
    assert_int_equal(gp_fit_fixed(x, y, N + 3, D, &h, &ref, NULL), 0);
    struct gp_hyper h1, h2;
    gp_get_hyper(gp, &h1);
    gp_get_hyper(ref, &h2);
    ll_assert_close(h1.log_marginal_likelihood, h2.log_marginal_likelihood, 1e-9, 1e-9);
    for (int i = 0; i < 5; i++) {
        double xq[D] = {0.1 + 0.2 * i, 0.9 - 0.15 * i}, m1, v1, m2, v2;
        gp_predict(gp, xq, &m1, &v1, NULL, NULL);
        gp_predict(ref, xq, &m2, &v2, NULL, NULL);
        ll_assert_close(m1, m2, 1e-9, 1e-9);
        ll_assert_close(v1, v2, 1e-9, 1e-12);
    }
    /* the clone is untouched and predicts like a fixed fit on the first N points */
    gp_free(&ref);
    assert_int_equal(gp_fit_fixed(x, y, N, D, &h, &ref, NULL), 0);
    double xq[D] = {0.4, 0.6}, m1, m2, v1, v2;
    gp_predict(copy, xq, &m1, &v1, NULL, NULL);
    gp_predict(ref, xq, &m2, &v2, NULL, NULL);
    ll_assert_close(m1, m2, 1e-12, 1e-12);
    ll_assert_close(v1, v2, 1e-12, 1e-12);
    /* many fantasies grow the storage beyond its spare rows */
    for (int i = 0; i < 40; i++) {
        double xn[D] = {fmod(0.37 * i, 1.0), fmod(0.61 * i + 0.05, 1.0)};
        double mn;
        gp_predict(copy, xn, &mn, NULL, NULL, NULL);
        assert_int_equal(gp_add_observation(copy, xn, mn), 0);
    }
    assert_int_equal(gp_n_obs(copy), N + 40);
    double vq;
    gp_predict(copy, xq, NULL, &vq, NULL, NULL);
    assert_true(vq <= v1);
    gp_free(&gp);
    gp_free(&copy);
    gp_free(&ref);
}

/* gp_loo_mean_z2 against leave-one-out done by hand: a fixed-hyperparameter fit on the other
 * n - 1 points predicts x_i; z_i = (y_i - mu) / sqrt(var + noise var), all in y's units. */
static void test_gp_loo_calibration_matches_explicit_refits(void **state)
{
    (void)state;
    enum { N = 15, D = 2 };
    double x[N * D], y[N], xo[N * D], yo[N];
    make_data(21, N, D, 0.2, x, y);
    struct gp *gp = NULL;
    assert_int_equal(gp_fit(x, y, N, D, NULL, &gp, NULL), 0);
    struct gp_hyper h;
    gp_get_hyper(gp, &h);
    double sum = 0;
    for (size_t i = 0; i < N; i++) {
        size_t k = 0;
        for (size_t o = 0; o < N; o++)
            if (o != i) {
                memcpy(xo + k * D, x + o * D, D * sizeof(double));
                yo[k++] = y[o];
            }
        struct gp *loo = NULL;
        assert_int_equal(gp_fit_fixed(xo, yo, N - 1, D, &h, &loo, NULL), 0);
        double mu, var;
        assert_int_equal(gp_predict(loo, x + i * D, &mu, &var, NULL, NULL), 0);
        double z = (y[i] - mu) / sqrt(var + h.noise_var * h.y_std * h.y_std);
        sum += z * z;
        gp_free(&loo);
    }
    double got = gp_loo_mean_z2(gp);
    ll_assert_close(got, sum / N, 1e-6, 1e-9);
    assert_true(got > 0.05 && got < 20);
    /* a fantasy (gp_add_observation) is included like any observation */
    double xn[D] = {0.5, 0.5}, mn;
    assert_int_equal(gp_predict(gp, xn, &mn, NULL, NULL, NULL), 0);
    assert_int_equal(gp_add_observation(gp, xn, mn + 1.0), 0);
    assert_true(isfinite(gp_loo_mean_z2(gp)));
    assert_true(isnan(gp_loo_mean_z2(NULL)));
    gp_free(&gp);
}

/* beyond GP_PREDICT_STACK_N observations gp_predict allocates its work vectors */
static void test_gp_predict_with_many_observations(void **state)
{
    (void)state;
    enum { N = GP_PREDICT_STACK_N + 40 };
    double *x = malloc(N * sizeof(double)), *y = malloc(N * sizeof(double));
    for (size_t i = 0; i < N; i++) {
        x[i] = (double)i / (N - 1);
        y[i] = sin(6.0 * x[i]);
    }
    struct gp_hyper h = {.d = 1,
                         .length_scale = {0.2},
                         .signal_var = 1.0,
                         .noise_var = 1e-4,
                         .const_mean = 0.0,
                         .y_mean = 0.0,
                         .y_std = 1.0};
    struct gp *gp = NULL;
    assert_int_equal(gp_fit_fixed(x, y, N, 1, &h, &gp, NULL), 0);
    const double xq = 0.3337, step = 1e-5;
    double m, v, dm, dv, mp, mm, vp, vm;
    assert_int_equal(gp_predict(gp, &xq, &m, &v, &dm, &dv), 0);
    ll_assert_close(m, sin(6.0 * xq), 0.0, 1e-3);
    assert_true(v >= 0.0 && v < 1e-3);
    double xp = xq + step, xm = xq - step;
    gp_predict(gp, &xp, &mp, &vp, NULL, NULL);
    gp_predict(gp, &xm, &mm, &vm, NULL, NULL);
    ll_assert_close(dm, (mp - mm) / (2 * step), 1e-4, 1e-6);
    ll_assert_close(dv, (vp - vm) / (2 * step), 1e-3, 1e-7);
    gp_free(&gp);
    free(x);
    free(y);
}

/* With fix_mean the constant mean stays at the caller's value (worst observed here) and is
 * what the model reverts to far from the data; the free fit reverts to its fitted mean. */
static void test_gp_fixed_mean_is_kept_and_rules_far_away(void **state)
{
    (void)state;
    enum { N = 20, D = 2 };
    double x[N * D], y[N];
    make_data(11, N, D, 0.05, x, y);
    double worst = -HUGE_VAL;
    for (size_t i = 0; i < N; i++) {
        x[i * D] *= 0.3; /* all data in [0, 0.3] x [0, 1]: x0 = 1 is far away */
        worst = y[i] > worst ? y[i] : worst;
    }
    struct gp_options opt;
    gp_options_default(&opt);
    opt.fix_mean = 1;
    opt.fixed_mean = worst;
    struct gp *fixed = NULL, *free_fit = NULL;
    assert_int_equal(gp_fit(x, y, N, D, &opt, &fixed, NULL), 0);
    assert_int_equal(gp_fit(x, y, N, D, NULL, &free_fit, NULL), 0);
    struct gp_hyper hf, h0;
    gp_get_hyper(fixed, &hf);
    gp_get_hyper(free_fit, &h0);
    ll_assert_close(hf.y_mean + hf.y_std * hf.const_mean, worst, 1e-12, 1e-12);
    /* the data are still interpolated (to the noise) */
    for (size_t i = 0; i < N; i++) {
        double m, v;
        gp_predict(fixed, x + i * D, &m, &v, NULL, NULL);
        ll_assert_close(m, y[i], 0.0, 0.2);
    }
    /* far away: near the fixed mean, and clearly above the free fit's prediction */
    double far[2] = {1.0, 0.5}, mf, m0, v;
    gp_predict(fixed, far, &mf, &v, NULL, NULL);
    gp_predict(free_fit, far, &m0, &v, NULL, NULL);
    double free_mean = h0.y_mean + h0.y_std * h0.const_mean;
    assert_true(fabs(mf - worst) < fabs(m0 - worst));
    assert_true(mf > free_mean);
    /* a fixed mean must be finite */
    struct ll_error err;
    struct gp *bad = NULL;
    opt.fixed_mean = (double)NAN;
    assert_int_equal(gp_fit(x, y, N, D, &opt, &bad, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "fixed_mean"));
    assert_null(bad);
    gp_free(&fixed);
    gp_free(&free_fit);
}

/* The additive kernel part (gp_hyper.add_var > 0): a one-observation posterior against the
 * formulas written out here (also where the stored exponential factors would overflow and
 * gp.c takes the exponentials directly); fits with shared and with own length scales;
 * predictive gradients, gp_add_observation and the LOO calibration as for the plain kernel. */
static void test_gp_additive_kernel(void **state)
{
    (void)state;
    {
        const double ls[2] = {0.4, 0.7}, als[2] = {0.3, 0.05}, sf2 = 0.7, sa2 = 0.9, sn2 = 0.01;
        struct gp_hyper h = {
            .d = 2,
            .length_scale = {ls[0],  ls[1] },
            .signal_var = sf2,
            .noise_var = sn2,
            .const_mean = 0.0,
            .y_mean = 0.0,
            .y_std = 1.0,
            .add_var = sa2,
            .add_length_scale = {als[0], als[1]}
        };
        const double x0[2] = {0.2, 0.6}, y0 = 1.3;
        /* the second query is outside the box, where exp(sqrt5 x / l') would be huge */
        const double xq[2][2] = {
            {0.5, 0.63},
            {3.0, 7.5 }
        };
        struct gp *gp = NULL;
        assert_int_equal(gp_fit_fixed(x0, &y0, 1, 2, &h, &gp, NULL), 0);
        for (int q = 0; q < 2; q++) {
            double r2 = 0.0, ka = 0.0;
            for (int j = 0; j < 2; j++) {
                double t = xq[q][j] - x0[j];
                r2 += t * t / (ls[j] * ls[j]);
                ka += k52(fabs(t) / als[j], 1.0);
            }
            double k = k52(sqrt(r2), sf2) + sa2 / 2.0 * ka, kxx = sf2 + sa2;
            double m, v;
            assert_int_equal(gp_predict(gp, xq[q], &m, &v, NULL, NULL), 0);
            ll_assert_close(m, k * y0 / (kxx + sn2), 1e-12, 1e-14);
            ll_assert_close(v, kxx - k * k / (kxx + sn2), 1e-12, 1e-14);
        }
        gp_free(&gp);
    }
    enum { N = 25, D = 3 };
    double x[(N + 3) * D], y[N + 3];
    make_data(17, N + 3, D, 0.05, x, y);
    for (int mode = 1; mode <= 2; mode++) {
        struct gp_options opt;
        gp_options_default(&opt);
        opt.additive = mode;
        struct gp *gp = NULL;
        assert_int_equal(gp_fit(x, y, N, D, &opt, &gp, NULL), 0);
        struct gp_hyper h;
        gp_get_hyper(gp, &h);
        assert_true(h.add_var > 0.0 && isfinite(h.add_var));
        for (size_t j = 0; j < D; j++) {
            assert_true(h.add_length_scale[j] >= GP_LENGTH_SCALE_MIN * (1 - 1e-12));
            assert_true(h.add_length_scale[j] <= GP_LENGTH_SCALE_MAX * (1 + 1e-12));
            if (mode == 1)
                assert_true(h.add_length_scale[j] == h.length_scale[j]);
        }
        /* predictive gradients */
        for (int trial = 0; trial < 5; trial++) {
            double xq[D];
            for (size_t j = 0; j < D; j++)
                xq[j] = 0.1 + 0.17 * (double)trial + 0.05 * (double)j;
            assert_predict_gradients(gp, xq);
        }
        /* LOO calibration against explicit refits */
        double sum = 0.0, xo[N * D], yo[N];
        for (size_t i = 0; i < N; i++) {
            size_t k = 0;
            for (size_t o = 0; o < N; o++)
                if (o != i) {
                    memcpy(xo + k * D, x + o * D, D * sizeof(double));
                    yo[k++] = y[o];
                }
            struct gp *loo = NULL;
            assert_int_equal(gp_fit_fixed(xo, yo, N - 1, D, &h, &loo, NULL), 0);
            double mu, var;
            assert_int_equal(gp_predict(loo, x + i * D, &mu, &var, NULL, NULL), 0);
            double z = (y[i] - mu) / sqrt(var + h.noise_var * h.y_std * h.y_std);
            sum += z * z;
            gp_free(&loo);
        }
        ll_assert_close(gp_loo_mean_z2(gp), sum / N, 1e-6, 1e-9);
        /* gp_add_observation against a fixed-hyperparameter refit */
        struct gp *ref = NULL;
        for (size_t k = 0; k < 3; k++)
            assert_int_equal(gp_add_observation(gp, x + (N + k) * D, y[N + k]), 0);
        assert_int_equal(gp_fit_fixed(x, y, N + 3, D, &h, &ref, NULL), 0);
        struct gp_hyper h1, h2;
        gp_get_hyper(gp, &h1);
        gp_get_hyper(ref, &h2);
        ll_assert_close(h1.log_marginal_likelihood, h2.log_marginal_likelihood, 1e-9, 1e-9);
        for (int i = 0; i < 5; i++) {
            double xq[D] = {0.1 + 0.2 * i, 0.9 - 0.15 * i, 0.5}, m1, v1, m2, v2;
            gp_predict(gp, xq, &m1, &v1, NULL, NULL);
            gp_predict(ref, xq, &m2, &v2, NULL, NULL);
            ll_assert_close(m1, m2, 1e-9, 1e-9);
            ll_assert_close(v1, v2, 1e-9, 1e-12);
        }
        gp_free(&ref);
        gp_free(&gp);
    }
}

static void test_gp_rejects_bad_input(void **state)
{
    (void)state;
    double x[4] = {0.1, 0.2, 0.3, 0.4}, y[2] = {1.0, 2.0};
    struct gp *gp = NULL;
    struct ll_error err;
    ll_error_clear(&err);
    assert_int_equal(gp_fit(x, y, 0, 2, NULL, &gp, &err), -EINVAL);
    assert_true(strlen(err.msg) > 0);
    assert_null(gp);
    ll_error_clear(&err);
    assert_int_equal(gp_fit(x, y, 2, 0, NULL, &gp, &err), -EINVAL);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(gp_fit(x, y, 1, GP_MAX_DIM + 1, NULL, &gp, &err), -EINVAL);
    y[1] = (double)NAN;
    ll_error_clear(&err);
    assert_int_equal(gp_fit(x, y, 2, 2, NULL, &gp, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "y[1]"));
    y[1] = 2.0;
    x[2] = HUGE_VAL;
    assert_int_equal(gp_fit(x, y, 2, 2, NULL, &gp, &err), -EINVAL);
    assert_null(gp);
    assert_int_equal(gp_fit(NULL, y, 2, 2, NULL, &gp, &err), -EINVAL);
    x[2] = 0.3;
    /* one observation is allowed */
    assert_int_equal(gp_fit(x, y, 1, 2, NULL, &gp, &err), 0);
    double m, v;
    assert_int_equal(gp_predict(gp, x, &m, &v, NULL, NULL), 0);
    assert_true(isfinite(m) && isfinite(v));
    double bad[2] = {(double)NAN, 0.5};
    assert_int_equal(gp_add_observation(gp, bad, 1.0), -EINVAL);
    assert_int_equal(gp_predict(NULL, x, &m, &v, NULL, NULL), -EINVAL);
    gp_free(&gp);
    gp_free(&gp);
    gp_free(NULL);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gp_interpolates_noise_free_data),
        cmocka_unit_test(test_gp_two_point_posterior_matches_hand_computation),
        cmocka_unit_test(test_gp_predictive_gradients_match_finite_differences),
        cmocka_unit_test(test_gp_lml_gradient_matches_finite_differences),
        cmocka_unit_test(test_gp_few_noisy_points_give_bounded_length_scales),
        cmocka_unit_test(test_gp_fit_is_deterministic_per_seed),
        cmocka_unit_test(test_gp_warm_start_stays_at_the_optimum),
        cmocka_unit_test(test_gp_add_observation_equals_fixed_refit),
        cmocka_unit_test(test_gp_loo_calibration_matches_explicit_refits),
        cmocka_unit_test(test_gp_predict_with_many_observations),
        cmocka_unit_test(test_gp_fixed_mean_is_kept_and_rules_far_away),
        cmocka_unit_test(test_gp_additive_kernel),
        cmocka_unit_test(test_gp_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

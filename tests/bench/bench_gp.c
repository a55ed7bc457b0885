/* bench_gp — wall time of gp_fit and gp_predict at n = 20, 100, 500 observations, d = 6.
 *
 * Data: a smooth function of 6 inputs (the DTLZ2 g-function plus a sine) with 1 % noise at
 * seeded uniform random points. Prints the median fit time over several seeds, and predictions
 * per second with and without gradients. Run: build/tests/bench_gp (use a build without
 * sanitizers for meaningful figures).
 */
#include "models/gp.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define D 6

static double fn(const double *x)
{
    double g = 0.0;
    for (int j = 2; j < D; j++)
        g += (x[j] - 0.5) * (x[j] - 0.5);
    return (1.0 + g) * cos(x[0] * M_PI / 2.0) + 0.3 * sin(5.0 * x[1]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    gsl_set_error_handler_off();
    const size_t sizes[] = {20, 100, 500};
    printf("bench_gp: d = %d, 5 restarts (default options)\n", D);
    printf("%6s %12s %12s %14s %14s %14s\n",
           "n",
           "fit_ms_med",
           "fit_ms_max",
           "warm_fit_ms",
           "predict/s",
           "pred+grad/s");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        int n_seeds = n >= 500 ? 3 : 7;
        double *x = malloc(n * D * sizeof(double)), *y = malloc(n * sizeof(double));
        double times[8] = {0};
        struct gp *gp = NULL;
        for (int seed = 0; seed < n_seeds; seed++) {
            gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
            gsl_rng_set(rng, 100 + (unsigned long)seed);
            for (size_t i = 0; i < n; i++) {
                for (int j = 0; j < D; j++)
                    x[i * D + j] = gsl_rng_uniform(rng);
                y[i] = fn(x + i * D) + 0.01 * (gsl_rng_uniform(rng) - 0.5);
            }
            gsl_rng_free(rng);
            struct gp_options opt;
            gp_options_default(&opt);
            opt.seed = (unsigned long)seed + 1;
            gp_free(&gp);
            double t0 = now_s();
            if (gp_fit(x, y, n, D, &opt, &gp, NULL) < 0) {
                fprintf(stderr, "fit failed\n");
                return 1;
            }
            times[seed] = 1e3 * (now_s() - t0);
        }
        qsort(times, (size_t)n_seeds, sizeof(double), cmp_double);
        /* warm start from the fit's own hyperparameters, one restart (a refit in the next round) */
        double warm[3];
        struct gp_hyper h0;
        gp_get_hyper(gp, &h0);
        for (int r = 0; r < 3; r++) {
            struct gp_options opt;
            gp_options_default(&opt);
            opt.n_restarts = 1;
            struct gp *g2 = NULL;
            double t0 = now_s();
            gp_fit_from(x, y, n, D, &opt, &h0, &g2, NULL);
            warm[r] = 1e3 * (now_s() - t0);
            gp_free(&g2);
        }
        qsort(warm, 3, sizeof(double), cmp_double);
        double xq[D], m, v, dm[D], dv[D], sink = 0.0;
        long reps = (long)(2e7 / (double)(n * n + 50 * n)) + 10;
        double t0 = now_s();
        for (long r = 0; r < reps; r++) {
            for (int j = 0; j < D; j++)
                xq[j] = fmod(0.1234 * (double)(r + j), 1.0);
            gp_predict(gp, xq, &m, &v, NULL, NULL);
            sink += m + v;
        }
        double pps = (double)reps / (now_s() - t0);
        t0 = now_s();
        for (long r = 0; r < reps; r++) {
            for (int j = 0; j < D; j++)
                xq[j] = fmod(0.1234 * (double)(r + j), 1.0);
            gp_predict(gp, xq, &m, &v, dm, dv);
            sink += m + v + dm[0] + dv[0];
        }
        double gps = (double)reps / (now_s() - t0);
        printf("%6zu %12.2f %12.2f %14.2f %14.0f %14.0f\n",
               n,
               times[n_seeds / 2],
               times[n_seeds - 1],
               warm[1],
               pps,
               gps);
        struct gp_hyper h;
        gp_get_hyper(gp, &h);
        printf("       last fit: ls =");
        for (int j = 0; j < D; j++)
            printf(" %.3g", h.length_scale[j]);
        printf("  sf2 = %.3g  noise = %.3g  lml = %.2f  (sink %g)\n",
               h.signal_var,
               h.noise_var,
               h.log_marginal_likelihood,
               sink > 0 ? 1.0 : 0.0);
        gp_free(&gp);
        free(x);
        free(y);
    }
    return 0;
}

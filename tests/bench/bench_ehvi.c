/* bench_ehvi — evaluations per second of exact EHVI (planner/ehvi.h).
 *
 * Fronts of n points on the unit sphere's positive orthant (the DTLZ2 front), reference point
 * 1.1 in every objective, 2 and 3 objectives. For each, about 0.3 s of: a prepared front
 * evaluated at varying candidates (4096 means and sigmas in turn), without and with the
 * gradient, and the one-shot ehvi_2d/ehvi_3d (which prepare the front on every call). Then the
 * time of one hv_compute for m = 2..5 objectives. Run:
 * build/tests/bench_ehvi (use a build without sanitizers for meaningful figures).
 */
#include "planner/ehvi.h"
#include "planner/hv.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    gsl_set_error_handler_off();
    const size_t sizes[] = {5, 20, 50, 100, 500};
    enum { N_CAND = 4096 };
    static double cand_mu[N_CAND * 3], cand_sigma[N_CAND * 3];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 1);
    for (size_t i = 0; i < N_CAND * 3; i++) {
        cand_mu[i] = 0.2 + 0.9 * gsl_rng_uniform(rng);
        cand_sigma[i] = 0.01 + 0.2 * gsl_rng_uniform(rng);
    }
    printf("bench_ehvi: evaluations per second (front on the unit sphere, ref 1.1)\n");
    printf("%2s %6s %14s %14s %14s\n", "m", "n", "prepared/s", "with_grad/s", "one-shot/s");
    for (size_t m = 2; m <= 3; m++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t n = sizes[s];
            double *front = malloc(n * m * sizeof(double));
            for (size_t i = 0; i < n; i++) {
                /* evenly spread angles so that every point is non-dominated */
                double t = ((double)i + 0.5) / (double)n * M_PI / 2.0;
                double p = gsl_rng_uniform(rng) * M_PI / 2.0;
                if (m == 2) {
                    front[2 * i] = cos(t);
                    front[2 * i + 1] = sin(t);
                } else {
                    front[3 * i] = cos(t) * cos(p);
                    front[3 * i + 1] = sin(t) * cos(p);
                    front[3 * i + 2] = sin(p);
                }
            }
            const double ref[3] = {1.1, 1.1, 1.1};
            struct ehvi_front *f = ehvi_front_new(front, n, m, ref);
            if (!f) {
                fprintf(stderr, "ehvi_front_new failed\n");
                return 1;
            }
            double sink = 0.0, rates[3];
            for (int kind = 0; kind < 3; kind++) {
                /* run for about 0.3 s, checking the clock every 64 evaluations */
                long count = 0;
                double t0 = now_s(), t = t0;
                while (t - t0 < 0.3) {
                    for (int r = 0; r < 64; r++, count++) {
                        size_t c = (size_t)count % N_CAND;
                        const double *mu = cand_mu + 3 * c, *sg = cand_sigma + 3 * c;
                        double dmu[3], ds[3];
                        if (kind == 0)
                            sink += ehvi_front_eval(f, mu, sg);
                        else if (kind == 1)
                            sink += ehvi_front_eval_grad(f, mu, sg, dmu, ds);
                        else
                            sink += m == 2 ? ehvi_2d(front, n, ref, mu, sg)
                                           : ehvi_3d(front, n, ref, mu, sg);
                    }
                    t = now_s();
                }
                rates[kind] = (double)count / (t - t0);
            }
            printf("%2zu %6zu %14.0f %14.0f %14.0f%s\n",
                   m,
                   n,
                   rates[0],
                   rates[1],
                   rates[2],
                   sink > 0.0 ? "" : " (sink)");
            ehvi_front_free(&f);
            free(front);
        }
    }
    /* hypervolume itself (hv_compute), same kind of fronts, random points on the sphere */
    printf("\nhv_compute: milliseconds per call (n random points on the unit sphere, ref 1.1)\n");
    printf("%2s %10s %10s %10s %10s\n", "m", "n=20", "n=50", "n=100", "n=200");
    const size_t hv_sizes[] = {20, 50, 100, 200};
    for (size_t m = 2; m <= HV_MAX_OBJECTIVES; m++) {
        printf("%2zu", m);
        for (size_t s = 0; s < 4; s++) {
            size_t n = hv_sizes[s];
            double *pts = malloc(n * m * sizeof(double));
            for (size_t i = 0; i < n; i++) {
                double norm = 0.0;
                for (size_t k = 0; k < m; k++) {
                    pts[i * m + k] = 0.05 + gsl_rng_uniform(rng);
                    norm += pts[i * m + k] * pts[i * m + k];
                }
                for (size_t k = 0; k < m; k++)
                    pts[i * m + k] /= sqrt(norm);
            }
            const double ref[HV_MAX_OBJECTIVES] = {1.1, 1.1, 1.1, 1.1, 1.1};
            long count = 0;
            double t0 = now_s(), t = t0, sink = 0.0;
            while (t - t0 < 0.2) {
                sink += hv_compute(pts, n, m, ref);
                count++;
                t = now_s();
            }
            printf(" %10.4f%s", 1e3 * (t - t0) / (double)count, sink > 0.0 ? "" : "?");
            free(pts);
        }
        printf("\n");
    }
    gsl_rng_free(rng);
    return 0;
}

/* bench_planner — how good and how fast is the planner (issue 3's benchmark; not a test).
 *
 * For each problem of ../shared/benchmarks/problems.md — the perovskite world (noisy), and the
 * noise-free BraninCurrin, DTLZ2 (d = 6, M = 2) and DTLZ2 (d = 6, M = 3) — it runs closed loops
 * of the planner (the campaign's initial Sobol design, then rounds of q = 4 with EHVI) and of
 * Sobol random search (acquisition "random": the same design continued) on the same seeds, and
 * prints the median over seeds of the hypervolume fraction HV/HV_max and log10(HV_max - HV)
 * after the budget. Hypervolumes are computed on the NOISE-FREE objective values of the points
 * evaluated, whatever noise the planner saw. Then it times one proposal of q = 4 (GP fits +
 * acquisition optimisation) at n = 20, 100 and 500 observations of the perovskite world
 * (6 inputs, 2 objectives), median of a few repetitions.
 *
 * Usage: bench_planner [--problems LIST] [--seeds N] [--first-seed S] [--timing-reps R]
 *                      [--no-timing] [--no-loops] [--noise-free] [--noise-scale X]
 *                      [--noise-scale-objective K X] [--verbose] [--points FILE] [--budget N]
 *                      [--timing-n N]
 *   LIST: comma-separated of perovskite, branincurrin, dtlz2_2, dtlz2_3 (default all)
 *   --noise-free: the perovskite world without measurement noise (as BoTorch's noise-free row)
 *   --noise-scale X: the perovskite world with X times the specified noise
 *   --noise-scale-objective K X: objective K's noise (0-based) times X on top of that (e.g.
 *               "1 0": log10 T80 noise-free, PCE noisy), to see which objective's noise costs
 *   --budget N: N evaluations per loop instead of the problem's budget (initial design as
 *               specified, then rounds of 4; N <= 600)
 *   --timing-n N: times only the proposal at n = N (one of 20, 100, 500)
 *   --points FILE: writes every evaluated point as CSV (problem, acquisition, seed, index,
 *                  inputs, noise-free objectives in minimisation form) for diagnosis
 * Prints numbers only; never passes or fails. Figures and commands: docs/bench-planner.md.
 */
#include "planner/hv.h"
#include "planner/planner.h"
#include "simulators/world.h"

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SEEDS 100
#define MAX_EVALS 600

struct problem {
    const char *name;
    size_t d, m;
    int initial, budget;
    double ref[3]; /* minimisation form */
    double hv_max;
    double noise_sd[3]; /* on what the planner sees, per objective (own units) */
    /* noise-free objectives in minimisation form at x (the campaign's own units) */
    void (*eval)(const double *x, double *ret_f);
    void (*campaign)(struct campaign *c);
};

static void add_param(struct campaign *c, const char *name, double lo, double hi, int integer)
{
    struct campaign_param *p = &c->params[c->n_params++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->low = lo;
    p->high = hi;
    p->kind = integer ? CAMPAIGN_PARAM_INTEGER : CAMPAIGN_PARAM_CONTINUOUS;
}

static void add_objective(struct campaign *c, const char *name, int maximise, double ref)
{
    struct campaign_objective *o = &c->objectives[c->n_objectives++];
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->maximise = maximise;
    o->ref = ref;
}

/* --- perovskite world: maximise PCE and log10 T80; minimisation form negates ------------- */

static void perovskite_eval(const double *x, double *f)
{
    struct world_perovskite_truth t;
    world_perovskite_eval(x, &t);
    f[0] = -t.pce_pct;
    f[1] = -t.log10_t80_h;
}

static void perovskite_campaign(struct campaign *c)
{
    static const char *const names[] = {"fa", "cs", "iodide", "anneal_c", "anneal_min", "spin_rpm"};
    for (size_t j = 0; j < WORLD_PEROVSKITE_N_INPUTS; j++)
        add_param(c,
                  names[j],
                  world_perovskite_low[j],
                  world_perovskite_high[j],
                  j == WORLD_PEROVSKITE_SPIN_RPM);
    add_objective(c, "pce_pct", 1, 10.0);
    add_objective(c, "log10_t80_h", 1, 2.0);
}

/* --- BraninCurrin ------------------------------------------------------------------------- */

static void branincurrin_eval(const double *x, double *f)
{
    const double pi = 3.14159265358979323846;
    double u = 15 * x[0] - 5, v = 15 * x[1];
    double t = v - 5.1 / (4 * pi * pi) * u * u + 5 / pi * u - 6;
    f[0] = t * t + 10 * (1 - 1 / (8 * pi)) * cos(u) + 10;
    double e = x[1] > 0 ? 1 - exp(-1 / (2 * x[1])) : 1;
    double x0 = x[0];
    f[1] = e * (2300 * x0 * x0 * x0 + 1900 * x0 * x0 + 2092 * x0 + 60) /
           (100 * x0 * x0 * x0 + 500 * x0 * x0 + 4 * x0 + 20);
}

static void branincurrin_campaign(struct campaign *c)
{
    add_param(c, "x0", 0, 1, 0);
    add_param(c, "x1", 0, 1, 0);
    add_objective(c, "branin", 0, 18);
    add_objective(c, "currin", 0, 6);
}

/* --- DTLZ2, d = 6 ------------------------------------------------------------------------ */

static void dtlz2_eval(const double *x, double *f, size_t m)
{
    const double half_pi = 1.57079632679489661923;
    size_t d = 6;
    double g = 0;
    for (size_t i = m - 1; i < d; i++)
        g += (x[i] - 0.5) * (x[i] - 0.5);
    for (size_t k = 0; k < m; k++) { /* f_{k+1} */
        double v = 1 + g;
        for (size_t j = 0; j + 1 < m - k; j++)
            v *= cos(x[j] * half_pi);
        if (k > 0)
            v *= sin(x[m - k - 1] * half_pi);
        f[k] = v;
    }
}

static void dtlz2_2_eval(const double *x, double *f)
{
    dtlz2_eval(x, f, 2);
}

static void dtlz2_3_eval(const double *x, double *f)
{
    dtlz2_eval(x, f, 3);
}

static void dtlz2_campaign(struct campaign *c, size_t m)
{
    static const char *const names[] = {"x1", "x2", "x3", "x4", "x5", "x6"};
    for (size_t j = 0; j < 6; j++)
        add_param(c, names[j], 0, 1, 0);
    static const char *const obj[] = {"f1", "f2", "f3"};
    for (size_t k = 0; k < m; k++)
        add_objective(c, obj[k], 0, 1.1);
}

static void dtlz2_2_campaign(struct campaign *c)
{
    dtlz2_campaign(c, 2);
}

static void dtlz2_3_campaign(struct campaign *c)
{
    dtlz2_campaign(c, 3);
}

static const struct problem problems[] = {
    {"perovskite",
     6, 2,
     14, 54,
     {-10, -2, 0},
     25.85,                     {0.3, 0.05, 0},
     perovskite_eval,   perovskite_campaign  },
    {"branincurrin",
     2, 2,
     6,  46,
     {18, 6, 0},
     59.36011874867746,         {0, 0, 0},
     branincurrin_eval, branincurrin_campaign},
    {"dtlz2_2",
     6, 2,
     14, 54,
     {1.1, 1.1, 0},
     1.21 - 0.785398163397448,
     {0, 0, 0},
     dtlz2_2_eval,      dtlz2_2_campaign     },
    {"dtlz2_3",
     6, 3,
     14, 54,
     {1.1, 1.1, 1.1},
     1.331 - 0.523598775598299,
     {0, 0, 0},
     dtlz2_3_eval,      dtlz2_3_campaign     },
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double noise_scale = 1.0;                    /* --noise-free sets 0 */
static double noise_scale_obj[3] = {1.0, 1.0, 1.0}; /* --noise-scale-objective */
static FILE *points_out;    /* --points FILE: every evaluated point of every loop */
static int budget_override; /* --budget N: evaluations per loop instead of the problem's */
static size_t timing_n;     /* --timing-n N: time only n = N (20, 100 or 500) */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double gauss(uint64_t *state)
{
    double u1 = ((double)(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = ((double)(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void
make_campaign(const struct problem *pb, const char *acq, unsigned long seed, struct campaign *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", pb->name);
    c->batch = 4;
    c->initial = pb->initial;
    c->budget = pb->budget;
    c->seed = seed;
    snprintf(c->acquisition, sizeof(c->acquisition), "%s", acq);
    pb->campaign(c);
}

/* The models' calibration at the points they chose: z = (true noise-free value - predicted
 * mean) / predicted sd per objective, summed over the model-based picks of all runs. */
struct zsum {
    double sum[3], sum2[3];
    size_t n;
};

/* One closed loop; returns the noise-free hypervolume after the budget (NaN on error), adds
 * the seconds of each model-based proposal to *ret_secs / *ret_n_secs and its picks' z to *zs. */
static double run_loop(const struct problem *pb,
                       const char *acq,
                       unsigned long seed,
                       double *ret_secs,
                       size_t *ret_n_secs,
                       struct zsum *zs,
                       int verbose)
{
    struct campaign c;
    struct planner *p = NULL;
    struct ll_error err;
    double x[MAX_EVALS * 6], ftrue[MAX_EVALS * 3];
    size_t n = 0, d = pb->d, m = pb->m;
    uint64_t rng = 0xB5AD4ECEDA1CE2A9ull ^ seed;
    make_campaign(pb, acq, seed, &c);
    if (planner_new(&c, &p, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return (double)NAN;
    }
    while ((int)n < pb->budget) {
        size_t q = (int)n < pb->initial ? (size_t)pb->initial - n : 4;
        if (n + q > (size_t)pb->budget)
            q = (size_t)pb->budget - n;
        double t0 = now_s();
        struct planner_round_info info;
        struct planner_point_info pts[CAMPAIGN_MAX_BATCH];
        if (planner_ask(p, q, x + n * d, pts, &info, &err) != 0) {
            fprintf(stderr, "bench: %s seed %lu: %s\n", pb->name, seed, err.msg);
            planner_free(&p);
            return (double)NAN;
        }
        double t1 = now_s();
        if (info.model_fitted && ret_secs) {
            ret_secs[*ret_n_secs] = t1 - t0;
            (*ret_n_secs)++;
        }
        for (size_t i = n; i < n + q; i++) {
            double y[3];
            pb->eval(x + i * d, ftrue + i * m);
            const struct planner_point_info *pt = &pts[i - n];
            for (size_t k = 0; k < m && pt->predicted && !pt->from_initial_design; k++) {
                double f = c.objectives[k].maximise ? -ftrue[i * m + k] : ftrue[i * m + k];
                double z = pt->pred_sd[k] > 0 ? (f - pt->pred_mean[k]) / pt->pred_sd[k] : 0;
                zs->sum[k] += z;
                zs->sum2[k] += z * z;
                zs->n += k == 0;
            }
            for (size_t k = 0; k < m; k++) {
                double f = ftrue[i * m + k] +
                           noise_scale * noise_scale_obj[k] * pb->noise_sd[k] * gauss(&rng);
                /* the planner is told values in the campaign's own sense */
                y[k] = c.objectives[k].maximise ? -f : f;
            }
            if (planner_tell(p, x + i * d, y, &err) != 0) {
                fprintf(stderr, "bench: tell: %s\n", err.msg);
                planner_free(&p);
                return (double)NAN;
            }
        }
        n += q;
        if (verbose)
            fprintf(stderr,
                    "  %s %s seed %lu n=%zu hv=%.5g (%.0f ms)\n",
                    pb->name,
                    acq,
                    seed,
                    n,
                    hv_compute(ftrue, n, m, pb->ref),
                    1000 * (t1 - t0));
    }
    planner_free(&p);
    for (size_t i = 0; points_out && i < n; i++) {
        fprintf(points_out, "%s,%s,%lu,%zu", pb->name, acq, seed, i);
        for (size_t j = 0; j < d; j++)
            fprintf(points_out, ",%.6g", x[i * d + j]);
        for (size_t k = 0; k < m; k++)
            fprintf(points_out, ",%.6g", ftrue[i * m + k]);
        fputc('\n', points_out);
    }
    return hv_compute(ftrue, n, m, pb->ref);
}

static void
run_problem(const struct problem *pb, unsigned long first_seed, size_t n_seeds, int verbose)
{
    static const char *const acqs[] = {"ehvi", "random"};
    printf("%-13s evals %3d, %zu seeds (%lu..%lu), HV_max %.8g\n",
           pb->name,
           pb->budget,
           n_seeds,
           first_seed,
           first_seed + (unsigned long)n_seeds - 1,
           pb->hv_max);
    for (size_t a = 0; a < 2; a++) {
        double frac[MAX_SEEDS], logd[MAX_SEEDS];
        double *secs = malloc((size_t)MAX_SEEDS * 64 * sizeof(double));
        size_t n_secs = 0, ok = 0;
        struct zsum zs = {{0}, {0}, 0};
        if (secs == NULL)
            return;
        for (size_t s = 0; s < n_seeds; s++) {
            double hv = run_loop(pb, acqs[a], first_seed + s, secs, &n_secs, &zs, verbose);
            if (!isfinite(hv))
                continue;
            frac[ok] = hv / pb->hv_max;
            double diff = pb->hv_max - hv;
            logd[ok] = log10(diff > 1e-12 ? diff : 1e-12);
            ok++;
        }
        if (ok == 0) {
            printf("  %-7s no successful run\n", acqs[a]);
            free(secs);
            continue;
        }
        double fmin = frac[0], fmax = frac[0];
        for (size_t i = 1; i < ok; i++) {
            fmin = frac[i] < fmin ? frac[i] : fmin;
            fmax = frac[i] > fmax ? frac[i] : fmax;
        }
        double mf = median(frac, ok), ml = median(logd, ok);
        printf("  %-7s HV fraction median %.4f (min %.4f, max %.4f)  log10 HV diff median "
               "%+.3f",
               acqs[a],
               mf,
               fmin,
               fmax,
               ml);
        if (n_secs > 0)
            printf("  s/batch median %.3f", median(secs, n_secs));
        printf("  [%zu runs]\n", ok);
        if (zs.n > 0) {
            /* a calibrated model: mean z near 0 and rms z near 1 (negative mean: the picks
             * turn out worse than the models promised) */
            printf("          models at their %zu picks, z = (truth - predicted) / sd:", zs.n);
            for (size_t k = 0; k < pb->m; k++)
                printf(" objective %zu mean %+.2f rms %.2f;",
                       k + 1,
                       zs.sum[k] / (double)zs.n,
                       sqrt(zs.sum2[k] / (double)zs.n));
            printf("\n");
        }
        fflush(stdout);
        free(secs);
    }
}

/* Median seconds of one q = 4 proposal at n perovskite observations (Sobol inputs, noisy). */
static void run_timing(size_t n, int reps)
{
    double secs[64] = {0};
    for (int r = 0; r < reps; r++) {
        struct campaign c;
        struct planner *p = NULL, *gen = NULL;
        struct ll_error err;
        make_campaign(&problems[0], "ehvi", 100 + (unsigned long)r, &c);
        c.initial = 1;
        struct campaign cr = c;
        snprintf(cr.acquisition, sizeof(cr.acquisition), "random");
        if (planner_new(&c, &p, &err) != 0 || planner_new(&cr, &gen, &err) != 0) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return;
        }
        double *x = malloc(n * 6 * sizeof(double)), prop[4 * 6];
        uint64_t rng = 7 + (uint64_t)r;
        int ok = x != NULL;
        /* Sobol inputs in chunks (a batch is at most CAMPAIGN_MAX_BATCH), noisy outputs */
        for (size_t got = 0; ok && got < n;) {
            size_t q = n - got < CAMPAIGN_MAX_BATCH ? n - got : CAMPAIGN_MAX_BATCH;
            ok = planner_ask(gen, q, x + got * 6, NULL, NULL, &err) == 0;
            for (size_t i = got; ok && i < got + q; i++) {
                double f[2], y[2];
                perovskite_eval(x + i * 6, f);
                y[0] = -f[0] + 0.3 * gauss(&rng);
                y[1] = -f[1] + 0.05 * gauss(&rng);
                ok = planner_tell(gen, x + i * 6, y, &err) == 0 &&
                     planner_tell(p, x + i * 6, y, &err) == 0;
            }
            got += q;
        }
        if (!ok) {
            fprintf(stderr, "bench: timing setup: %s\n", err.msg);
            free(x);
            planner_free(&p);
            planner_free(&gen);
            return;
        }
        /* with the per-point information (predictions), as the daemon asks */
        struct planner_point_info pts[4];
        double t0 = now_s();
        int rc = planner_ask(p, 4, prop, pts, NULL, &err);
        double t1 = now_s();
        secs[r] = rc == 0 ? t1 - t0 : (double)NAN;
        free(x);
        planner_free(&p);
        planner_free(&gen);
    }
    double med = median(secs, (size_t)reps);
    printf("  n = %3zu: median %.3f s per proposal of q = 4 (%d repetitions, min %.3f, max "
           "%.3f)\n",
           n,
           med,
           reps,
           secs[0],
           secs[reps - 1]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    const char *list = "perovskite,branincurrin,dtlz2_2,dtlz2_3";
    unsigned long first_seed = 1;
    size_t n_seeds = 10;
    int timing = 1, loops = 1, reps = 5, verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--problems") == 0 && i + 1 < argc)
            list = argv[++i];
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            n_seeds = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--first-seed") == 0 && i + 1 < argc)
            first_seed = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--timing-reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-timing") == 0)
            timing = 0;
        else if (strcmp(argv[i], "--no-loops") == 0)
            loops = 0;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--noise-free") == 0)
            noise_scale = 0;
        else if (strcmp(argv[i], "--noise-scale") == 0 && i + 1 < argc)
            noise_scale = atof(argv[++i]);
        else if (strcmp(argv[i], "--noise-scale-objective") == 0 && i + 2 < argc) {
            int k = atoi(argv[++i]);
            double x = atof(argv[++i]);
            if (k < 0 || k > 2 || !(x >= 0)) {
                fprintf(stderr, "bench_planner: --noise-scale-objective K X: K in 0..2, X >= 0\n");
                return 2;
            }
            noise_scale_obj[k] = x;
        } else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
            budget_override = atoi(argv[++i]);
        else if (strcmp(argv[i], "--timing-n") == 0 && i + 1 < argc)
            timing_n = (size_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--points") == 0 && i + 1 < argc) {
            points_out = fopen(argv[++i], "w");
            if (points_out == NULL) {
                fprintf(stderr, "bench_planner: cannot write %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: bench_planner [--problems LIST] [--seeds N] [--first-seed S] "
                    "[--timing-reps R] [--no-timing] [--no-loops] [--noise-free] "
                    "[--noise-scale X] [--noise-scale-objective K X] [--verbose] "
                    "[--points FILE] [--budget N] [--timing-n N]\n");
            return 2;
        }
    }
    if (n_seeds < 1 || n_seeds > MAX_SEEDS || reps < 1 || reps > 64 || budget_override < 0 ||
        budget_override > MAX_EVALS) {
        fprintf(stderr,
                "bench_planner: --seeds 1..%d, --timing-reps 1..64, --budget 1..%d\n",
                MAX_SEEDS,
                MAX_EVALS);
        return 2;
    }
    if (loops)
        for (size_t i = 0; i < sizeof(problems) / sizeof(problems[0]); i++) {
            char pat[64];
            snprintf(pat, sizeof(pat), ",%s,", problems[i].name);
            char have[512];
            snprintf(have, sizeof(have), ",%s,", list);
            struct problem pb = problems[i];
            if (budget_override > 0)
                pb.budget = budget_override;
            if (strstr(have, pat))
                run_problem(&pb, first_seed, n_seeds, verbose);
        }
    if (timing) {
        printf("proposal time, perovskite world (6 inputs, 2 objectives), q = 4:\n");
        static const size_t ns[] = {20, 100, 500};
        for (size_t i = 0; i < 3; i++)
            if (timing_n == 0 || timing_n == ns[i])
                run_timing(ns[i], reps);
    }
    if (points_out)
        fclose(points_out);
    return 0;
}

/* bench_analysis — how long the measurement analyses take (never run by ctest).
 *
 * Prints, for each case, the median and 95th percentile wall time over repeated runs:
 *   - eis_fit_spectrum on 60-point spectra (1 MHz .. 1 Hz, 1 % noise) in three regimes
 *     (issue 4's target: a 60-point spectrum fits in <= 5 ms);
 *   - jv_figures on a 141-point sweep with 0.5 % noise (diode fit) and jv_figures_local;
 *   - stability_t80 predictions on 100 and 10 000 points;
 *   - measurement_parse + analysis_run + analysis_to_json of each example message.
 * Usage: [LL_BENCH_CPU=1] bench_analysis [REPEATS]   (default 200; run from the source tree
 * or set LL_SOURCE_DIR so the example messages are found). LL_BENCH_CPU=1 measures the
 * thread's CPU time instead of wall time. Results: docs/bench-analysis.md.
 */
#include "models/analysis.h"
#include "models/eis.h"
#include "models/jv.h"
#include "models/measurement.h"
#include "models/stability.h"
#include "models/synth.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall time, or with LL_BENCH_CPU=1 the thread's CPU time (robust on a loaded machine). */
static double now_ms(void)
{
    static int cpu = -1;
    struct timespec ts;

    if (cpu < 0) {
        const char *e = getenv("LL_BENCH_CPU");
        cpu = e != NULL && strcmp(e, "1") == 0;
    }
    clock_gettime(cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof(double), cmp_double);
    printf("%-58s median %8.3f ms   p95 %8.3f ms   (n=%d)\n",
           name,
           ms[n / 2],
           ms[(int)(0.95 * (n - 1))],
           n);
}

static void bench_eis(const char *name, double sigma, double gb_ratio, int repeats, gsl_rng *rng)
{
    double f[60], re[60], im[60], *ms = malloc((size_t)repeats * sizeof(double));
    struct synth_eis_circuit c;
    struct eis_fit fit;

    if (ms == NULL)
        exit(1);
    synth_eis_pellet(sigma, gb_ratio, 0.10, 0.785, 50, &c);
    synth_log_frequencies(1e6, 1.0, 60, f);
    for (int k = 0; k < repeats; k++) {
        synth_eis_spectrum(&c, f, 60, 0.01, rng, re, im);
        double t0 = now_ms();
        if (eis_fit_spectrum(f, re, im, 60, 0.10 / 0.785, &fit, NULL) != 0)
            fprintf(stderr, "%s: fit failed\n", name);
        ms[k] = now_ms() - t0;
    }
    report(name, ms, repeats);
    free(ms);
}

static void bench_jv(int repeats, gsl_rng *rng, bool local)
{
    static const struct synth_diode d = {24.5, 2.7e-14, 1.3, 2.5, 4000, 298.15};
    struct synth_sweep_options o = {
        .v_start_v = 1.3, .v_end_v = -0.1, .n_points = 141, .noise_rel = 0.005};
    double v[141], j[141], *ms = malloc((size_t)repeats * sizeof(double));
    struct jv_figures fig;

    if (ms == NULL)
        exit(1);
    for (int k = 0; k < repeats; k++) {
        synth_jv_sweep(&d, &o, rng, v, j);
        double t0 = now_ms();
        if (local)
            jv_figures_local(v, j, 141, 100.0, &fig, NULL);
        else
            jv_figures(v, j, 141, 100.0, &fig, NULL);
        ms[k] = now_ms() - t0;
    }
    report(local ? "jv_figures_local, 141 points, 0.5 % noise"
                 : "jv_figures (diode fit), 141 points, 0.5 % noise",
           ms,
           repeats);
    free(ms);
}

static void bench_stability(size_t n, int repeats, gsl_rng *rng)
{
    double *t = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double));
    double *ms = malloc((size_t)repeats * sizeof(double));
    struct synth_degradation d;
    struct stability_t80 res;
    char name[96];

    if (t == NULL || y == NULL || ms == NULL)
        exit(1);
    synth_degradation_for_t80(2000.0, 0.03, 40.0, 1.1, &d);
    for (int k = 0; k < repeats; k++) {
        synth_degradation_series(&d, 600.0, n, 0.003, rng, t, y);
        double t0 = now_ms();
        stability_t80(t, y, n, &res, NULL);
        ms[k] = now_ms() - t0;
    }
    snprintf(name, sizeof(name), "stability_t80 prediction, %zu points", n);
    report(name, ms, repeats);
    free(ms);
    free(y);
    free(t);
}

static void bench_file(const char *file, int repeats)
{
    const char *src = getenv("LL_SOURCE_DIR");
    char path[1024], name[128];
    static char buf[1 << 20];
    double *ms = malloc((size_t)repeats * sizeof(double));
    FILE *f;
    size_t len;

    snprintf(path, sizeof(path), "%s/tests/data/measurements/%s", src ? src : ".", file);
    f = fopen(path, "rb");
    if (f == NULL || ms == NULL) {
        fprintf(stderr, "cannot open %s (set LL_SOURCE_DIR)\n", path);
        if (f != NULL)
            fclose(f);
        free(ms);
        return;
    }
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (int k = 0; k < repeats; k++) {
        struct measurement *m = NULL;
        struct analysis *a = NULL;
        double t0 = now_ms();
        if (measurement_parse(buf, len, &m, NULL) == 0 && analysis_run(m, &a, NULL) == 0)
            free(analysis_to_json(a));
        ms[k] = now_ms() - t0;
        analysis_free(&a);
        measurement_free(&m);
    }
    snprintf(name, sizeof(name), "parse + analyse + JSON: %s (%zu bytes)", file, len);
    report(name, ms, repeats);
    free(ms);
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 200;
    gsl_rng *rng;

    gsl_set_error_handler_off();
    if (repeats < 1)
        repeats = 1;
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 1);
    bench_eis("eis 60 pts: LLZO 25 C, bulk above window, gb arc", 5e-4, 0.5, repeats, rng);
    bench_eis("eis 60 pts: LLZO 25 C, bulk above window, no gb", 5e-4, 0.0, repeats, rng);
    bench_eis("eis 60 pts: LLZO -40 C (sigma 6.5e-6), bulk resolved", 6.5e-6, 0.5, repeats, rng);
    bench_eis("eis 60 pts: tetragonal (sigma 1e-6), bulk resolved", 1e-6, 0.5, repeats, rng);
    bench_jv(repeats, rng, false);
    bench_jv(repeats, rng, true);
    bench_stability(100, repeats, rng);
    bench_stability(10000, repeats > 20 ? 20 : repeats, rng);
    bench_file("jv_pair.json", repeats);
    bench_file("eis_llzo_3temps.json", repeats > 50 ? 50 : repeats);
    bench_file("stability_early.json", repeats);
    gsl_rng_free(rng);
    return 0;
}

/* labsim — the simulated lab.
 *
 *   labsim world perovskite [--seed S] [--noise-free] < PARAMS.csv > RESULTS.csv
 *
 * evaluates the perovskite world (world.h) for each row of a CSV whose header names the
 * six inputs (any order; other columns are ignored) and prints the inputs followed by
 * pce_pct and log10_t80_h, with the default measurement noise of perovskite.md (0.3 %
 * absolute on PCE, 0.05 on log10 T80) unless --noise-free. Exit 2 on bad input.
 */
#include "simulators/world.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const perovskite_names[WORLD_PEROVSKITE_N_INPUTS] = {
    "fa", "cs", "iodide", "anneal_c", "anneal_min", "spin_rpm"};

#define MAX_COLUMNS 64

static int split_csv(char *line, char **fields, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

static int world_perovskite(unsigned long seed, int noise_free)
{
    char line[4096];
    char *fields[MAX_COLUMNS];
    int column_of[WORLD_PEROVSKITE_N_INPUTS];
    if (fgets(line, sizeof(line), stdin) == NULL) {
        fprintf(stderr, "labsim world: <stdin>:1: empty input, expected a CSV header\n");
        return 2;
    }
    int n_cols = split_csv(line, fields, MAX_COLUMNS);
    for (int i = 0; i < WORLD_PEROVSKITE_N_INPUTS; i++) {
        column_of[i] = -1;
        for (int c = 0; c < n_cols; c++)
            if (strcmp(fields[c], perovskite_names[i]) == 0)
                column_of[i] = c;
        if (column_of[i] < 0) {
            fprintf(stderr, "labsim world: <stdin>:1: missing column '%s'\n", perovskite_names[i]);
            return 2;
        }
    }
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    printf("fa,cs,iodide,anneal_c,anneal_min,spin_rpm,pce_pct,log10_t80_h\n");
    int rc = 0;
    for (int lineno = 2; fgets(line, sizeof(line), stdin) != NULL; lineno++) {
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        int n = split_csv(line, fields, MAX_COLUMNS);
        double x[WORLD_PEROVSKITE_N_INPUTS];
        for (int i = 0; i < WORLD_PEROVSKITE_N_INPUTS; i++) {
            char *end = NULL;
            const char *text = column_of[i] < n ? fields[column_of[i]] : "";
            x[i] = strtod(text, &end);
            if (end == text || *end != '\0' || !isfinite(x[i])) {
                fprintf(stderr,
                        "labsim world: <stdin>:%d: column '%s': '%s' is not a number\n",
                        lineno,
                        perovskite_names[i],
                        text);
                rc = 2;
                goto out;
            }
        }
        if (x[WORLD_PEROVSKITE_SPIN_RPM] <= 0) {
            fprintf(stderr, "labsim world: <stdin>:%d: spin_rpm must be positive\n", lineno);
            rc = 2;
            goto out;
        }
        struct world_perovskite_truth truth;
        world_perovskite_eval(x, &truth);
        if (!noise_free) {
            truth.pce_pct += gsl_ran_gaussian(rng, 0.3);
            truth.log10_t80_h += gsl_ran_gaussian(rng, 0.05);
        }
        printf("%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,%.6f,%.6f\n",
               x[0],
               x[1],
               x[2],
               x[3],
               x[4],
               x[5],
               truth.pce_pct,
               truth.log10_t80_h);
    }
out:
    gsl_rng_free(rng);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: labsim world perovskite [--seed S] [--noise-free] < PARAMS.csv\n");
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    if (argc >= 3 && strcmp(argv[1], "world") == 0 && strcmp(argv[2], "perovskite") == 0) {
        unsigned long seed = 1;
        int noise_free = 0;
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--noise-free") == 0) {
                noise_free = 1;
            } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
                seed = strtoul(argv[++i], NULL, 10);
            } else {
                usage(stderr);
                return 2;
            }
        }
        return world_perovskite(seed, noise_free);
    }
    usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}

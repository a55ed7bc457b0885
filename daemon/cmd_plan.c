/* cmd_plan — `labloop plan`: the planner without the daemon (DESIGN.md, "labloop plan").
 *
 *     labloop plan CAMPAIGN_FILE [--data OBS.csv] [--pending PENDING.csv] [--batch Q] [--seed S]
 *
 * Reads the campaign, the finished experiments (parameters then objectives) and the pending
 * ones (parameters only), replays them into a planner (planner/planner.h) and prints exactly
 * Q proposals as CSV: a header of parameter names, then Q rows (integers as integers, other
 * values with 10 significant digits, more if 10 would cross a bound). Q defaults to the
 * campaign's batch, S to its seed. Deterministic for a given input.
 *
 * Exit status: 0 success; 2 bad usage or bad input, with "FILE:LINE: problem" on standard
 * error; 1 when planning itself fails (a model cannot be fitted, out of memory).
 */
#include "daemon/commands.h"
#include "planner/campaign.h"
#include "planner/obs_csv.h"
#include "planner/planner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: labloop plan CAMPAIGN_FILE [--data OBS.csv] [--pending PENDING.csv]\n"
            "                    [--batch Q] [--seed S]\n"
            "Prints Q proposed experiments as CSV (header of parameter names, Q rows).\n"
            "OBS.csv: header of every parameter and objective name, one row per finished\n"
            "experiment; PENDING.csv: parameter columns only, for experiments not yet\n"
            "measured. Exit 0 on success, 2 on bad input (FILE:LINE: problem on stderr).\n");
}

/* Parses a non-negative integer option value; returns 0 or -1. */
static int parse_count(const char *s, unsigned long long max, unsigned long long *ret)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *ret = v;
    return 0;
}

/* Feeds a CSV file to the planner: observations (with_objectives) or pending points. */
static int feed(struct planner *p, const char *path, int with_objectives)
{
    const struct campaign *c = planner_campaign(p);
    const char *names[CAMPAIGN_MAX_PARAMS + CAMPAIGN_MAX_OBJECTIVES];
    size_t n = 0;
    for (size_t j = 0; j < c->n_params; j++)
        names[n++] = c->params[j].name;
    if (with_objectives)
        for (size_t k = 0; k < c->n_objectives; k++)
            names[n++] = c->objectives[k].name;
    struct obs_csv t;
    struct ll_error err;
    int r = obs_csv_read_file(path, names, n, &t, &err);
    if (r != 0) {
        fprintf(stderr, "labloop plan: %s\n", err.msg);
        return r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
    }
    int rc = CMD_EXIT_OK;
    for (size_t i = 0; i < t.n_rows && rc == CMD_EXIT_OK; i++) {
        const double *row = t.values + i * n;
        r = with_objectives ? planner_tell(p, row, row + c->n_params, &err)
                            : planner_add_pending(p, row, &err);
        if (r != 0) {
            fprintf(stderr, "labloop plan: %s:%zu: %s\n", path, t.line[i], err.msg);
            rc = r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
        }
    }
    obs_csv_free(&t);
    return rc;
}

static void print_value(const struct campaign_param *par, double v)
{
    char buf[64];
    if (par->kind == CAMPAIGN_PARAM_INTEGER) {
        printf("%.0f", v);
        return;
    }
    snprintf(buf, sizeof(buf), "%.10g", v);
    double back = strtod(buf, NULL);
    if (back < par->low || back > par->high)
        snprintf(buf, sizeof(buf), "%.17g", v);
    fputs(buf, stdout);
}

int cmd_plan(int argc, char **argv)
{
    const char *campaign_path = NULL, *data = NULL, *pending = NULL;
    unsigned long long batch = 0, seed = 0;
    int have_batch = 0, have_seed = 0, rc = CMD_EXIT_OK;
    struct campaign c;
    struct ll_error err;
    struct planner *p = NULL;
    double *x = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a == NULL)
            break;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CMD_EXIT_OK;
        } else if (strcmp(a, "--data") == 0 && v) {
            data = argv[++i];
        } else if (strcmp(a, "--pending") == 0 && v) {
            pending = argv[++i];
        } else if (strcmp(a, "--batch") == 0 && v) {
            if (parse_count(argv[++i], CAMPAIGN_MAX_BATCH, &batch) != 0 || batch < 1) {
                fprintf(stderr,
                        "labloop plan: --batch needs a number in 1 .. %d, not '%s'\n",
                        CAMPAIGN_MAX_BATCH,
                        v);
                return CMD_EXIT_USAGE;
            }
            have_batch = 1;
        } else if (strcmp(a, "--seed") == 0 && v) {
            if (parse_count(argv[++i], 4294967295ULL, &seed) != 0) {
                fprintf(stderr,
                        "labloop plan: --seed needs a number in 0 .. 4294967295, not "
                        "'%s'\n",
                        v);
                return CMD_EXIT_USAGE;
            }
            have_seed = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "labloop plan: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return CMD_EXIT_USAGE;
        } else if (campaign_path == NULL) {
            campaign_path = a;
        } else {
            fprintf(stderr, "labloop plan: more than one campaign file ('%s')\n", a);
            return CMD_EXIT_USAGE;
        }
    }
    if (campaign_path == NULL) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (campaign_load_file(campaign_path, &c, &err) != 0) {
        fprintf(stderr, "labloop plan: %s\n", err.msg);
        return CMD_EXIT_USAGE;
    }
    if (have_seed)
        c.seed = (unsigned long)seed;
    size_t q = have_batch ? (size_t)batch : (size_t)c.batch;
    if (planner_new(&c, &p, &err) != 0) {
        fprintf(stderr, "labloop plan: %s: %s\n", campaign_path, err.msg);
        return CMD_EXIT_USAGE;
    }
    if (data && (rc = feed(p, data, 1)) != CMD_EXIT_OK)
        goto out;
    if (pending && (rc = feed(p, pending, 0)) != CMD_EXIT_OK)
        goto out;
    x = malloc(q * c.n_params * sizeof(double));
    if (x == NULL) {
        fprintf(stderr, "labloop plan: out of memory\n");
        rc = CMD_EXIT_FAILED;
        goto out;
    }
    int r = planner_ask(p, q, x, NULL, NULL, &err);
    if (r != 0) {
        fprintf(stderr, "labloop plan: %s: %s\n", campaign_path, err.msg);
        rc = r == -ERANGE ? CMD_EXIT_USAGE : CMD_EXIT_FAILED;
        goto out;
    }
    for (size_t j = 0; j < c.n_params; j++)
        printf("%s%s", j ? "," : "", c.params[j].name);
    printf("\n");
    for (size_t i = 0; i < q; i++) {
        for (size_t j = 0; j < c.n_params; j++) {
            if (j)
                putchar(',');
            print_value(&c.params[j], x[i * c.n_params + j]);
        }
        putchar('\n');
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "labloop plan: cannot write the proposals: %s\n", strerror(errno));
        rc = CMD_EXIT_FAILED;
    }
out:
    free(x);
    planner_free(&p);
    return rc;
}

/* cmd_plan — `labloop plan`: the planner without the daemon (DESIGN.md, "labloop plan").
 *
 *     labloop plan CAMPAIGN_FILE [--data OBS.csv] [--pending PENDING.csv] [--batch Q] [--seed S]
 *
 * Reads the campaign, the finished experiments (parameters then objectives; a computed
 * objective's column may be left out, and where it is given it must match its expression)
 * and the pending ones (parameters only), replays them into a planner (planner/planner.h)
 * and prints exactly Q proposals as CSV: a header of parameter names, then Q rows (integers as
 * integers, other values with 10 significant digits, more if 10 would cross a bound). Q defaults to
 * the campaign's batch, S to its seed. Deterministic for a given input. --explain FILE also writes,
 * for the same Q rows in the same order, why each was proposed: the parameters, its source
 * (design or model), the acquisition value, and per objective the models' predicted value and
 * standard deviation (empty for design points without a model); standard output is unchanged.
 * The file is written only when there are proposals (a failed plan creates none).
 *
 * Exit status: 0 success; 2 bad usage or bad input, with "FILE:LINE: problem" on standard
 * error; 1 when planning itself fails (a model cannot be fitted, out of memory).
 */
#include "daemon/commands.h"
#include "planner/campaign.h"
#include "planner/obs_csv.h"
#include "planner/planner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: labloop plan CAMPAIGN_FILE [--data OBS.csv] [--pending PENDING.csv]\n"
            "                    [--batch Q] [--seed S] [--explain FILE]\n"
            "Prints Q proposed experiments as CSV (header of parameter names, Q rows).\n"
            "--explain FILE: the same rows with source, acquisition value and the models'\n"
            "predicted value and standard deviation of every objective, as CSV.\n"
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

/* A computed objective's value given in OBS.csv must match its expression to this relative
 * tolerance (of max(1, |value|); values rounded to 5 significant digits pass): the column is
 * optional, and when it is there it must not silently disagree with the campaign file (a
 * changed formula, a shifted column). */
#define COMPUTED_TOL 1e-4

/* Checks the computed objectives' values of one OBS.csv row (NaN: column absent) against
 * their expressions; returns 0 or -EINVAL with a message. */
static int
check_computed(const struct campaign *c, const double *x, const double *y, struct ll_error *err)
{
    for (size_t k = 0; k < c->n_objectives; k++) {
        double v;
        if (!campaign_objective_computed(c, k) || isnan(y[k]))
            continue;
        int r = campaign_objective_eval(c, k, x, &v, err);
        if (r != 0)
            return r;
        if (fabs(y[k] - v) > COMPUTED_TOL * fmax(1.0, fabs(v)))
            return ll_error_set(err,
                                -EINVAL,
                                "column '%s' is %.10g but its expression gives %.10g (a computed "
                                "objective is evaluated, not read: leave the column out or make "
                                "it match)",
                                c->objectives[k].name,
                                y[k],
                                v);
    }
    return 0;
}

/* Feeds a CSV file to the planner: observations (with_objectives) or pending points. The
 * observations' columns: the parameters, the measured objectives, and optionally the computed
 * ones (checked by check_computed). */
static int feed(struct planner *p, const char *path, int with_objectives)
{
    const struct campaign *c = planner_campaign(p);
    const char *names[CAMPAIGN_MAX_PARAMS + CAMPAIGN_MAX_OBJECTIVES];
    size_t col_of[CAMPAIGN_MAX_OBJECTIVES] = {0}; /* objective k's column */
    size_t n = 0, n_opt = 0;
    for (size_t j = 0; j < c->n_params; j++)
        names[n++] = c->params[j].name;
    for (int computed = 0; computed <= 1 && with_objectives; computed++)
        for (size_t k = 0; k < c->n_objectives; k++)
            if (campaign_objective_computed(c, k) == computed) {
                col_of[k] = n;
                names[n++] = c->objectives[k].name;
                n_opt += (size_t)computed;
            }
    struct obs_csv t;
    struct ll_error err;
    int r = obs_csv_read_file(path, names, n, n_opt, &t, &err);
    if (r != 0) {
        fprintf(stderr, "labloop plan: %s\n", err.msg);
        return r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
    }
    int rc = CMD_EXIT_OK;
    for (size_t i = 0; i < t.n_rows && rc == CMD_EXIT_OK; i++) {
        const double *row = t.values + i * n;
        double y[CAMPAIGN_MAX_OBJECTIVES];
        for (size_t k = 0; k < c->n_objectives && with_objectives; k++)
            y[k] = row[col_of[k]];
        if (with_objectives) {
            r = check_computed(c, row, y, &err);
            if (r == 0)
                r = planner_tell(p, row, y, &err);
        } else {
            r = planner_add_pending(p, row, &err);
        }
        if (r != 0) {
            fprintf(stderr, "labloop plan: %s:%zu: %s\n", path, t.line[i], err.msg);
            rc = r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
        }
    }
    obs_csv_free(&t);
    return rc;
}

static void print_value(FILE *out, const struct campaign_param *par, double v)
{
    char buf[64];
    if (par->kind == CAMPAIGN_PARAM_INTEGER) {
        fprintf(out, "%.0f", v);
        return;
    }
    snprintf(buf, sizeof(buf), "%.10g", v);
    double back = strtod(buf, NULL);
    if (back < par->low || back > par->high)
        snprintf(buf, sizeof(buf), "%.17g", v);
    fputs(buf, out);
}

/* The q proposals as CSV: parameters, then (with pts) source, acquisition and every
 * objective's prediction. Returns 0 or -1 when the stream reports a write error. */
static int write_rows(FILE *out,
                      const struct campaign *c,
                      const double *x,
                      size_t q,
                      const struct planner_point_info *pts)
{
    for (size_t j = 0; j < c->n_params; j++)
        fprintf(out, "%s%s", j ? "," : "", c->params[j].name);
    if (pts) {
        fprintf(out, ",source,acquisition");
        for (size_t k = 0; k < c->n_objectives; k++)
            fprintf(out, ",%s_predicted,%s_sd", c->objectives[k].name, c->objectives[k].name);
    }
    fputc('\n', out);
    for (size_t i = 0; i < q; i++) {
        for (size_t j = 0; j < c->n_params; j++) {
            if (j)
                fputc(',', out);
            print_value(out, &c->params[j], x[i * c->n_params + j]);
        }
        if (pts) {
            fprintf(out,
                    ",%s,%.6g",
                    pts[i].from_initial_design ? "design" : "model",
                    pts[i].acquisition);
            for (size_t k = 0; k < c->n_objectives; k++)
                if (pts[i].predicted)
                    fprintf(out, ",%.6g,%.4g", pts[i].pred_mean[k], pts[i].pred_sd[k]);
                else
                    fprintf(out, ",,");
        }
        fputc('\n', out);
    }
    return fflush(out) != 0 || ferror(out) ? -1 : 0;
}

int cmd_plan(int argc, char **argv)
{
    const char *campaign_path = NULL, *data = NULL, *pending = NULL, *explain = NULL;
    unsigned long long batch = 0, seed = 0;
    int have_batch = 0, have_seed = 0, rc = CMD_EXIT_OK;
    struct campaign c;
    struct ll_error err;
    struct planner *p = NULL;
    double *x = NULL;
    struct planner_point_info *pts = NULL;
    FILE *explain_out = NULL;

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
        } else if (strcmp(a, "--explain") == 0 && v) {
            explain = argv[++i];
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
    pts = calloc(q, sizeof(*pts));
    if (x == NULL || pts == NULL) {
        fprintf(stderr, "labloop plan: out of memory\n");
        rc = CMD_EXIT_FAILED;
        goto out;
    }
    int r = planner_ask(p, q, x, pts, NULL, &err);
    if (r != 0) {
        fprintf(stderr, "labloop plan: %s: %s\n", campaign_path, err.msg);
        rc = r == -ERANGE ? CMD_EXIT_USAGE : CMD_EXIT_FAILED;
        goto out;
    }
    /* opened once there are proposals to explain, before any is printed: a failed plan leaves
     * no file behind, a bad path prints nothing */
    if (explain && (explain_out = fopen(explain, "w")) == NULL) {
        fprintf(stderr, "labloop plan: %s: cannot write: %s\n", explain, strerror(errno));
        rc = CMD_EXIT_USAGE;
        goto out;
    }
    if (write_rows(stdout, &c, x, q, NULL) != 0) {
        fprintf(stderr, "labloop plan: cannot write the proposals: %s\n", strerror(errno));
        rc = CMD_EXIT_FAILED;
    }
    if (explain_out && write_rows(explain_out, &c, x, q, pts) != 0) {
        fprintf(stderr, "labloop plan: %s: cannot write: %s\n", explain, strerror(errno));
        rc = CMD_EXIT_FAILED;
    }
out:
    if (explain_out && fclose(explain_out) != 0 && rc == CMD_EXIT_OK) {
        fprintf(stderr, "labloop plan: %s: cannot write: %s\n", explain, strerror(errno));
        rc = CMD_EXIT_FAILED;
    }
    free(x);
    free(pts);
    planner_free(&p);
    return rc;
}

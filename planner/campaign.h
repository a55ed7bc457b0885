/* campaign — the campaign file: what to optimise, over which space, with what budget.
 *
 * A campaign file is libconfig syntax with one group `campaign` (DESIGN.md, "Campaign file"):
 *
 *     campaign: {
 *       name = "perovskite-pce-t80";
 *       batch = 4; initial = 14; budget = 54; seed = 1;
 *       acquisition = "ehvi";            # ehvi | ei | ucb | pi | uncertainty | random
 *       parameters = ( { name = "fa"; low = 0.10; high = 1.00; unit = "";
 *                        integer = false; levels = [ ... ]; }, ... );
 *       objectives = ( { name = "pce_pct"; goal = "max"; ref = 10.0; from = "jv.pce_pct"; },
 *                      { name = "cost"; goal = "min"; ref = 5.0;
 *                        expr = "2.0 + 30 * ${cs} + 0.05 * ${anneal_min}"; } );
 *       constraints = ( { coef = { fa = 1.0; cs = 1.0; }; le = 1.0; } );   # or eq = ...
 *       recipe = ( ... );                 # daemon only; a file without it is a pure plan
 *     };
 *
 * An objective is measured (`from` names the measurement field that feeds it; the daemon needs
 * it, `labloop plan` does not) or computed from the parameters (`expr`: an arithmetic
 * expression of ${parameter} values, common/ll_expr.h — a cost, a time, an amount of a scarce
 * material). A computed objective is known exactly for every candidate: the planner evaluates
 * it instead of modelling it (campaign_objective_eval). At least one objective must be
 * measured, and an expression must evaluate at the centre of the box.
 *
 * A parameter has either low/high (and optionally integer = true) or levels, its allowed values:
 * `levels = [ 80.0, 100.0, 150.0 ]` (a libconfig array holds one type: write all as floats or
 * all as integers) or the list `levels = ( 80, 100.5, 150 )`.
 *
 * This module only reads and validates the file into a plain struct; it knows nothing of the
 * daemon's keys (recipe, target, approval ...), which it tolerates inside `campaign` and
 * leaves to their readers. Planner keys are checked strictly: a misspelled key inside a
 * parameter, objective or constraint is an error, as are missing or inverted bounds,
 * duplicate names, unknown goals or acquisitions and out-of-range counts. Every error
 * message starts with "FILE:LINE: ".
 *
 * Known limitation: libconfig 1.5 leaks 64 bytes when a string token causes a syntax error
 * (its scanner's string buffer); harmless for a CLI, noted for a long-running daemon.
 */
#ifndef LL_CAMPAIGN_H
#define LL_CAMPAIGN_H

#include "common/ll_error.h"

#include <stddef.h>

#define CAMPAIGN_MAX_PARAMS 32
#define CAMPAIGN_MAX_OBJECTIVES 4
#define CAMPAIGN_MAX_CONSTRAINTS 8
#define CAMPAIGN_MAX_LEVELS 64
#define CAMPAIGN_NAME_MAX 64
#define CAMPAIGN_EXPR_MAX 256
#define CAMPAIGN_MAX_BATCH 64      /* batch: 1 .. this */
#define CAMPAIGN_MAX_BUDGET 100000 /* budget: 1 .. this; initial: 1 .. budget */

enum campaign_param_kind {
    CAMPAIGN_PARAM_CONTINUOUS, /* any value in [low, high] */
    CAMPAIGN_PARAM_INTEGER,    /* integers in [low, high] (integer = true) */
    CAMPAIGN_PARAM_LEVELS,     /* one of levels[] (low/high are their min and max) */
};

struct campaign_param {
    char name[CAMPAIGN_NAME_MAX];
    enum campaign_param_kind kind;
    double low, high; /* low < high, both finite (integers: integral) */
    char unit[16];    /* "" when not given */
    size_t n_levels;  /* LEVELS only: 2 .. CAMPAIGN_MAX_LEVELS, sorted ascending, distinct */
    double levels[CAMPAIGN_MAX_LEVELS];
};

struct campaign_objective {
    char name[CAMPAIGN_NAME_MAX];
    int maximise;                 /* 1 for goal = "max", 0 for "min" */
    double ref;                   /* reference point (objective's own units, finite) */
    char from[CAMPAIGN_NAME_MAX]; /* measurement field feeding it ("jv.pce_pct"), or "" */
    char expr[CAMPAIGN_EXPR_MAX]; /* computed from the parameters: the expression; "" when
                                     measured */
};

/* sum_j coef[j] * x_j  <= rhs  (equality == 0)  or  == rhs (equality == 1), in the
 * parameters' own units; coef[] is indexed like campaign.params[] (0 for absent ones). */
struct campaign_constraint {
    double coef[CAMPAIGN_MAX_PARAMS];
    double rhs;
    int equality;
};

struct campaign {
    char name[128];
    int batch;   /* experiments per round */
    int initial; /* space-filling experiments before the first model */
    int budget;  /* experiments in all */
    unsigned long seed;
    char acquisition[16]; /* "ehvi", "ei", "ucb", "pi", "uncertainty" or "random" */
    size_t n_params;
    struct campaign_param params[CAMPAIGN_MAX_PARAMS];
    size_t n_objectives;
    struct campaign_objective objectives[CAMPAIGN_MAX_OBJECTIVES];
    size_t n_constraints;
    struct campaign_constraint constraints[CAMPAIGN_MAX_CONSTRAINTS];
    int has_recipe; /* 1 when the file holds a `recipe` (a daemon campaign) */
};

/* Reads and validates the campaign file at path into *ret (a plain value; nothing to free).
 * Returns 0, -ENOENT/-EIO (cannot read), or -EINVAL with "FILE:LINE: problem" in reterr. */
int campaign_load_file(const char *path, struct campaign *ret, struct ll_error *reterr);

/* The same for campaign text held in memory (NUL-terminated); name_for_errors is the
 * "FILE" of the messages. `@include` directives are refused (text from memory must not
 * read files). Returns 0 or -EINVAL with "NAME:LINE: problem" in reterr. */
int campaign_load_string(const char *text,
                         const char *name_for_errors,
                         struct campaign *ret,
                         struct ll_error *reterr);

/* Value of computed objective k (objectives[k].expr not empty) at the parameter values x
 * (n_params values, their own units). Returns 0, or -EINVAL with "objective 'NAME': expression
 * '...': column C: problem" in reterr (not computed, division by zero, non-finite result). */
int campaign_objective_eval(const struct campaign *c,
                            size_t k,
                            const double *x,
                            double *ret_value,
                            struct ll_error *reterr);

/* 1 when objective k is computed from the parameters (has an `expr`). */
int campaign_objective_computed(const struct campaign *c, size_t k);

/* Index of the parameter or objective called name, or -1. */
int campaign_param_index(const struct campaign *c, const char *name);
int campaign_objective_index(const struct campaign *c, const char *name);

#endif

/* campaign — reading and validating campaign files (see campaign.h for the format).
 *
 * libconfig parses; this file walks the tree with the source line of every setting at hand
 * so that each complaint can say "FILE:LINE: what is wrong". Planner keys are strict, the
 * daemon's keys are tolerated, and an unknown key of `campaign` that is only a typo away
 * from a planner key ("paramters") is refused with a suggestion rather than ignored.
 */
#include "planner/campaign.h"

#include "common/ll_expr.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loader {
    const char *file; /* name used in messages */
    struct ll_error *err;
};

static const char *const campaign_keys[] = {"name",
                                            "batch",
                                            "initial",
                                            "budget",
                                            "seed",
                                            "acquisition",
                                            "parameters",
                                            "objectives",
                                            "constraints",
                                            "recipe"};
static const char *const param_keys[] = {"name", "low", "high", "unit", "integer", "levels"};
static const char *const objective_keys[] = {"name", "goal", "ref", "from", "expr"};
static const char *const constraint_keys[] = {"coef", "le", "ge", "eq"};
static const char *const acquisitions[] = {"ehvi", "ei", "ucb", "pi", "uncertainty", "random"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int fail(const struct loader *ld, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records "FILE:LINE: message" for setting s (line 1 when s is NULL). */
static int fail(const struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned line = s ? config_setting_source_line(s) : 1;
    return ll_error_set(ld->err, -EINVAL, "%s:%u: %s", ld->file, line ? line : 1, msg);
}

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

/* Levenshtein distance of two short strings, capped at 9 (enough to spot typos). */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 30 || lb > 30)
        return 9;
    int prev[32], cur[32];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb] > 9 ? 9 : prev[lb];
}

/* Checks that every member of group s is one of keys[]; strict groups refuse any other key,
 * the campaign group refuses only near-misses of its keys (typos). */
static int check_keys(const struct loader *ld,
                      const config_setting_t *s,
                      const char *what,
                      const char *const *keys,
                      size_t n_keys,
                      int strict)
{
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(m);
        if (name == NULL || in_list(name, keys, n_keys))
            continue;
        if (strict)
            return fail(ld, m, "unknown key '%s' in %s", name, what);
        for (size_t k = 0; k < n_keys; k++) {
            size_t lk = strlen(keys[k]);
            int tolerance = lk <= 4 ? 1 : 2;
            if (edit_distance(name, keys[k]) <= tolerance)
                return fail(
                    ld, m, "unknown key '%s' in %s (did you mean '%s'?)", name, what, keys[k]);
        }
    }
    return 0;
}

/* Reads an optional number member; *found tells whether it was there. */
static int get_number(const struct loader *ld,
                      const config_setting_t *group,
                      const char *key,
                      const char *what,
                      double *ret,
                      int *found)
{
    const config_setting_t *m = config_setting_get_member(group, key);
    *found = 0;
    if (m == NULL)
        return 0;
    switch (config_setting_type(m)) {
    case CONFIG_TYPE_INT:
        *ret = (double)config_setting_get_int(m);
        break;
    case CONFIG_TYPE_INT64:
        *ret = (double)config_setting_get_int64(m);
        break;
    case CONFIG_TYPE_FLOAT:
        *ret = config_setting_get_float(m);
        break;
    default:
        return fail(ld, m, "%s: '%s' must be a number", what, key);
    }
    if (!isfinite(*ret))
        return fail(ld, m, "%s: '%s' must be finite", what, key);
    *found = 1;
    return 0;
}

/* Reads an optional integer member in [lo, hi]. */
static int get_int(const struct loader *ld,
                   const config_setting_t *group,
                   const char *key,
                   long long lo,
                   long long hi,
                   long long *ret,
                   int *found)
{
    const config_setting_t *m = config_setting_get_member(group, key);
    *found = 0;
    if (m == NULL)
        return 0;
    long long v;
    if (config_setting_type(m) == CONFIG_TYPE_INT)
        v = config_setting_get_int(m);
    else if (config_setting_type(m) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(m);
    else
        return fail(ld, m, "campaign: '%s' must be an integer", key);
    if (v < lo || v > hi)
        return fail(ld, m, "campaign: '%s' = %lld is out of range (%lld .. %lld)", key, v, lo, hi);
    *ret = v;
    *found = 1;
    return 0;
}

/* Reads an optional string member into buf (size cap); refuses non-strings and overlong. */
static int get_string(const struct loader *ld,
                      const config_setting_t *group,
                      const char *key,
                      const char *what,
                      char *buf,
                      size_t cap,
                      int *found)
{
    const config_setting_t *m = config_setting_get_member(group, key);
    *found = 0;
    if (m == NULL)
        return 0;
    if (config_setting_type(m) != CONFIG_TYPE_STRING)
        return fail(ld, m, "%s: '%s' must be a string", what, key);
    const char *v = config_setting_get_string(m);
    if (strlen(v) >= cap)
        return fail(ld, m, "%s: '%s' is longer than %zu characters", what, key, cap - 1);
    memcpy(buf, v, strlen(v) + 1);
    *found = 1;
    return 0;
}

/* Names become CSV column headers: letters, digits, '_', '.', '-'; not starting with a digit. */
static int valid_name(const char *s)
{
    if (s[0] == '\0' || isdigit((unsigned char)s[0]))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int load_levels(const struct loader *ld,
                       const config_setting_t *lv,
                       const char *what,
                       struct campaign_param *p)
{
    if (!config_setting_is_array(lv) && !config_setting_is_list(lv))
        return fail(ld, lv, "%s: 'levels' must be a list of numbers", what);
    int n = config_setting_length(lv);
    if (n < 2 || n > CAMPAIGN_MAX_LEVELS)
        return fail(
            ld, lv, "%s: 'levels' needs 2 .. %d values, not %d", what, CAMPAIGN_MAX_LEVELS, n);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(lv, (unsigned)i);
        double v;
        if (config_setting_type(e) == CONFIG_TYPE_INT)
            v = config_setting_get_int(e);
        else if (config_setting_type(e) == CONFIG_TYPE_INT64)
            v = (double)config_setting_get_int64(e);
        else if (config_setting_type(e) == CONFIG_TYPE_FLOAT)
            v = config_setting_get_float(e);
        else
            return fail(ld, e, "%s: level %d is not a number", what, i + 1);
        if (!isfinite(v))
            return fail(ld, e, "%s: level %d is not finite", what, i + 1);
        p->levels[i] = v;
    }
    p->n_levels = (size_t)n;
    qsort(p->levels, p->n_levels, sizeof(double), cmp_double);
    for (size_t i = 1; i < p->n_levels; i++)
        if (p->levels[i] == p->levels[i - 1])
            return fail(ld, lv, "%s: level %.10g is listed twice", what, p->levels[i]);
    p->kind = CAMPAIGN_PARAM_LEVELS;
    p->low = p->levels[0];
    p->high = p->levels[p->n_levels - 1];
    return 0;
}

static int
load_param(const struct loader *ld, const config_setting_t *s, size_t index, struct campaign *c)
{
    struct campaign_param *p = &c->params[index];
    char what[96];
    int found, r;
    memset(p, 0, sizeof(*p));
    if (!config_setting_is_group(s))
        return fail(ld,
                    s,
                    "parameter %zu must be a group { name = ...; low = ...; high = ...; }",
                    index + 1);
    if ((r = get_string(ld, s, "name", "parameter", p->name, sizeof(p->name), &found)) != 0)
        return r;
    if (!found)
        return fail(ld, s, "parameter %zu has no 'name'", index + 1);
    snprintf(what, sizeof(what), "parameter '%s'", p->name);
    if (!valid_name(p->name))
        return fail(ld, s, "%s: a name may hold only letters, digits, '_', '.', '-'", what);
    for (size_t j = 0; j < index; j++)
        if (strcmp(c->params[j].name, p->name) == 0)
            return fail(ld, s, "%s is defined twice", what);
    if ((r = check_keys(ld, s, what, param_keys, N_OF(param_keys), 1)) != 0)
        return r;
    if ((r = get_string(ld, s, "unit", what, p->unit, sizeof(p->unit), &found)) != 0)
        return r;
    int is_integer = 0;
    const config_setting_t *im = config_setting_get_member(s, "integer");
    if (im != NULL) {
        if (config_setting_type(im) != CONFIG_TYPE_BOOL)
            return fail(ld, im, "%s: 'integer' must be true or false", what);
        is_integer = config_setting_get_bool(im);
    }
    double low = 0, high = 0;
    int has_low, has_high;
    if ((r = get_number(ld, s, "low", what, &low, &has_low)) != 0 ||
        (r = get_number(ld, s, "high", what, &high, &has_high)) != 0)
        return r;
    const config_setting_t *lv = config_setting_get_member(s, "levels");
    if (lv != NULL) {
        if (has_low || has_high || is_integer)
            return fail(ld, lv, "%s: give either 'levels' or 'low'/'high' (and 'integer')", what);
        return load_levels(ld, lv, what, p);
    }
    if (!has_low || !has_high)
        return fail(ld, s, "%s: missing '%s'", what, has_low ? "high" : "low");
    if (!(low < high))
        return fail(ld,
                    config_setting_get_member(s, "low"),
                    "%s: bounds inverted or empty (low %.10g >= high %.10g)",
                    what,
                    low,
                    high);
    p->low = low;
    p->high = high;
    p->kind = CAMPAIGN_PARAM_CONTINUOUS;
    if (is_integer) {
        if (low != floor(low) || high != floor(high) || fabs(low) > 1e15 || fabs(high) > 1e15)
            return fail(ld, s, "%s: an integer parameter needs integral bounds", what);
        p->kind = CAMPAIGN_PARAM_INTEGER;
    }
    return 0;
}

/* Objective o's expression at the parameter values x (c's parameters name the values). */
static int expr_eval(const struct campaign *c,
                     const struct campaign_objective *o,
                     const double *x,
                     double *ret_value,
                     struct ll_error *reterr)
{
    const char *names[CAMPAIGN_MAX_PARAMS];
    for (size_t j = 0; j < c->n_params; j++)
        names[j] = c->params[j].name;
    int r = ll_expr_eval(o->expr, names, x, c->n_params, ret_value, reterr);
    if (r != 0)
        ll_error_prefix(reterr, "objective '%s'", o->name);
    return r;
}

static int
load_objective(const struct loader *ld, const config_setting_t *s, size_t index, struct campaign *c)
{
    struct campaign_objective *o = &c->objectives[index];
    char what[96], goal[8];
    int found, r;
    memset(o, 0, sizeof(*o));
    if (!config_setting_is_group(s))
        return fail(ld,
                    s,
                    "objective %zu must be a group { name = ...; goal = ...; ref = ...; }",
                    index + 1);
    if ((r = get_string(ld, s, "name", "objective", o->name, sizeof(o->name), &found)) != 0)
        return r;
    if (!found)
        return fail(ld, s, "objective %zu has no 'name'", index + 1);
    snprintf(what, sizeof(what), "objective '%s'", o->name);
    if (!valid_name(o->name))
        return fail(ld, s, "%s: a name may hold only letters, digits, '_', '.', '-'", what);
    for (size_t j = 0; j < index; j++)
        if (strcmp(c->objectives[j].name, o->name) == 0)
            return fail(ld, s, "%s is defined twice", what);
    if (campaign_param_index(c, o->name) >= 0)
        return fail(ld, s, "%s has the name of a parameter", what);
    if ((r = check_keys(ld, s, what, objective_keys, N_OF(objective_keys), 1)) != 0)
        return r;
    const config_setting_t *gm = config_setting_get_member(s, "goal");
    if (gm == NULL)
        return fail(ld, s, "%s: missing 'goal' (\"max\" or \"min\")", what);
    if (get_string(ld, s, "goal", what, goal, sizeof(goal), &found) != 0)
        return fail(ld, gm, "%s: unknown goal (use \"max\" or \"min\")", what);
    if (strcmp(goal, "max") == 0)
        o->maximise = 1;
    else if (strcmp(goal, "min") == 0)
        o->maximise = 0;
    else
        return fail(ld, gm, "%s: unknown goal '%s' (use \"max\" or \"min\")", what, goal);
    if ((r = get_number(ld, s, "ref", what, &o->ref, &found)) != 0)
        return r;
    if (!found)
        return fail(ld, s, "%s: missing 'ref' (the reference point)", what);
    if ((r = get_string(ld, s, "from", what, o->from, sizeof(o->from), &found)) != 0)
        return r;
    if ((r = get_string(ld, s, "expr", what, o->expr, sizeof(o->expr), &found)) != 0)
        return r;
    if (!found)
        return 0;
    const config_setting_t *em = config_setting_get_member(s, "expr");
    if (o->expr[0] == '\0')
        return fail(ld, em, "%s: 'expr' is empty", what);
    if (o->from[0] != '\0')
        return fail(
            ld, em, "%s: give either 'from' (measured) or 'expr' (computed), not both", what);
    /* the expression must evaluate at the centre of the box (names, syntax) */
    double centre[CAMPAIGN_MAX_PARAMS], v;
    struct ll_error e;
    for (size_t j = 0; j < c->n_params; j++)
        centre[j] = 0.5 * (c->params[j].low + c->params[j].high);
    if (expr_eval(c, o, centre, &v, &e) != 0)
        return fail(ld, em, "%s (evaluated at the centre of the box)", e.msg);
    return 0;
}

static int load_constraint(const struct loader *ld,
                           const config_setting_t *s,
                           size_t index,
                           struct campaign *c)
{
    struct campaign_constraint *k = &c->constraints[index];
    char what[64];
    int r, found, n_rel = 0;
    memset(k, 0, sizeof(*k));
    snprintf(what, sizeof(what), "constraint %zu", index + 1);
    if (!config_setting_is_group(s))
        return fail(
            ld, s, "%s must be a group { coef = { NAME = NUMBER; ... }; le = NUMBER; }", what);
    if ((r = check_keys(ld, s, what, constraint_keys, N_OF(constraint_keys), 1)) != 0)
        return r;
    const config_setting_t *coef = config_setting_get_member(s, "coef");
    if (coef == NULL || !config_setting_is_group(coef))
        return fail(ld, coef ? coef : s, "%s: 'coef' must be a group { NAME = NUMBER; ... }", what);
    int n = config_setting_length(coef), nonzero = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(coef, (unsigned)i);
        const char *name = config_setting_name(m);
        int j = name ? campaign_param_index(c, name) : -1;
        if (j < 0)
            return fail(ld, m, "%s: unknown parameter '%s'", what, name ? name : "?");
        double v;
        if ((r = get_number(ld, coef, name, what, &v, &found)) != 0)
            return r;
        k->coef[j] = v;
        nonzero += v != 0;
    }
    if (nonzero == 0)
        return fail(ld, coef, "%s: all coefficients are zero", what);
    static const char *const rel[] = {"le", "ge", "eq"};
    for (int i = 0; i < 3; i++) {
        double v;
        if ((r = get_number(ld, s, rel[i], what, &v, &found)) != 0)
            return r;
        if (!found)
            continue;
        n_rel++;
        k->rhs = v;
        k->equality = i == 2;
        if (i == 1) { /* a.x >= b  <=>  -a.x <= -b */
            for (size_t j = 0; j < CAMPAIGN_MAX_PARAMS; j++)
                k->coef[j] = -k->coef[j];
            k->rhs = -v;
        }
    }
    if (n_rel != 1)
        return fail(ld, s, "%s: give exactly one of 'le', 'ge', 'eq'", what);
    return 0;
}

/* Loads one of the lists parameters / objectives / constraints. */
static int load_list(
    const struct loader *ld,
    const config_setting_t *campaign,
    const char *key,
    size_t max,
    int required,
    size_t *ret_n,
    int (*load_one)(const struct loader *, const config_setting_t *, size_t, struct campaign *),
    struct campaign *c)
{
    const config_setting_t *l = config_setting_get_member(campaign, key);
    if (l == NULL) {
        if (required)
            return fail(ld, campaign, "campaign: missing '%s'", key);
        return 0;
    }
    if (!config_setting_is_list(l) && !config_setting_is_array(l))
        return fail(ld, l, "campaign: '%s' must be a list ( { ... }, { ... } )", key);
    int n = config_setting_length(l);
    if ((required && n < 1) || (size_t)n > max)
        return fail(ld, l, "campaign: '%s' needs %d .. %zu entries, not %d", key, required, max, n);
    for (int i = 0; i < n; i++) {
        int r = load_one(ld, config_setting_get_elem(l, (unsigned)i), (size_t)i, c);
        if (r != 0)
            return r;
        *ret_n = (size_t)i + 1;
    }
    return 0;
}

static int load_counts(const struct loader *ld, const config_setting_t *g, struct campaign *c)
{
    long long v;
    int found, r;
    c->batch = 1;
    c->budget = 100;
    c->seed = 1;
    if ((r = get_int(ld, g, "batch", 1, CAMPAIGN_MAX_BATCH, &v, &found)) != 0)
        return r;
    if (found)
        c->batch = (int)v;
    if ((r = get_int(ld, g, "budget", 1, CAMPAIGN_MAX_BUDGET, &v, &found)) != 0)
        return r;
    if (found)
        c->budget = (int)v;
    long long dflt = 2 * ((long long)c->n_params + 1);
    c->initial = (int)(dflt < c->budget ? dflt : c->budget);
    if ((r = get_int(ld, g, "initial", 1, c->budget, &v, &found)) != 0)
        return r;
    if (found)
        c->initial = (int)v;
    if ((r = get_int(ld, g, "seed", 0, 4294967295LL, &v, &found)) != 0)
        return r;
    if (found)
        c->seed = (unsigned long)v;
    return 0;
}

static int load_tree(const struct loader *ld, const config_t *cfg, struct campaign *c)
{
    const config_setting_t *g = config_lookup(cfg, "campaign");
    int found, r;
    if (g == NULL)
        return fail(ld, NULL, "no 'campaign' group (campaign: { ... };)");
    if (!config_setting_is_group(g))
        return fail(ld, g, "'campaign' must be a group { ... }");
    if ((r = check_keys(ld, g, "campaign", campaign_keys, N_OF(campaign_keys), 0)) != 0)
        return r;
    snprintf(c->name, sizeof(c->name), "campaign");
    if ((r = get_string(ld, g, "name", "campaign", c->name, sizeof(c->name), &found)) != 0)
        return r;
    if ((r = load_list(ld, g, "parameters", CAMPAIGN_MAX_PARAMS, 1, &c->n_params, load_param, c)) !=
        0)
        return r;
    if ((r = load_list(ld,
                       g,
                       "objectives",
                       CAMPAIGN_MAX_OBJECTIVES,
                       1,
                       &c->n_objectives,
                       load_objective,
                       c)) != 0)
        return r;
    if ((r = load_list(ld,
                       g,
                       "constraints",
                       CAMPAIGN_MAX_CONSTRAINTS,
                       0,
                       &c->n_constraints,
                       load_constraint,
                       c)) != 0)
        return r;
    size_t n_measured = 0;
    for (size_t k = 0; k < c->n_objectives; k++)
        n_measured += !campaign_objective_computed(c, k);
    if (n_measured == 0)
        return fail(ld,
                    config_setting_get_member(g, "objectives"),
                    "campaign: every objective is computed ('expr'); at least one must be "
                    "measured");
    if ((r = load_counts(ld, g, c)) != 0)
        return r;
    snprintf(c->acquisition, sizeof(c->acquisition), "ehvi");
    const config_setting_t *am = config_setting_get_member(g, "acquisition");
    if (am != NULL) {
        const char *a =
            config_setting_type(am) == CONFIG_TYPE_STRING ? config_setting_get_string(am) : NULL;
        if (a == NULL || !in_list(a, acquisitions, N_OF(acquisitions)))
            return fail(ld,
                        am,
                        "campaign: unknown acquisition '%s' (use ehvi, ei, ucb, pi, uncertainty "
                        "or random)",
                        a ? a : "?");
        snprintf(c->acquisition, sizeof(c->acquisition), "%s", a);
    }
    c->has_recipe = config_setting_get_member(g, "recipe") != NULL;
    return 0;
}

static int
load(config_t *cfg, int read_rc, const char *file, struct campaign *ret, struct ll_error *reterr)
{
    struct loader ld = {file, reterr};
    memset(ret, 0, sizeof(*ret));
    if (read_rc != CONFIG_TRUE) {
        if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
            return ll_error_set(reterr, -ENOENT, "%s: cannot read the file", file);
        return ll_error_set(reterr,
                            -EINVAL,
                            "%s:%d: %s",
                            file,
                            config_error_line(cfg) > 0 ? config_error_line(cfg) : 1,
                            config_error_text(cfg) ? config_error_text(cfg) : "syntax error");
    }
    int r = load_tree(&ld, cfg, ret);
    if (r != 0)
        memset(ret, 0, sizeof(*ret));
    return r;
}

int campaign_load_file(const char *path, struct campaign *ret, struct ll_error *reterr)
{
    config_t cfg;
    ll_error_clear(reterr);
    config_init(&cfg);
    FILE *f = fopen(path, "r");
    int rc;
    if (f == NULL) {
        rc = ll_error_set(
            reterr, errno == ENOENT ? -ENOENT : -EIO, "%s: cannot open: %s", path, strerror(errno));
        memset(ret, 0, sizeof(*ret));
        goto out;
    }
    /* config_read (not _file) so that messages carry the path exactly as given */
    rc = load(&cfg, config_read(&cfg, f), path, ret, reterr);
    fclose(f);
out:
    config_destroy(&cfg);
    return rc;
}

int campaign_load_string(const char *text,
                         const char *name_for_errors,
                         struct campaign *ret,
                         struct ll_error *reterr)
{
    config_t cfg;
    ll_error_clear(reterr);
    memset(ret, 0, sizeof(*ret));
    const char *inc = strstr(text, "@include");
    if (inc != NULL) {
        int line = 1;
        for (const char *p = text; p < inc; p++)
            line += *p == '\n';
        return ll_error_set(
            reterr, -EINVAL, "%s:%d: @include is not allowed here", name_for_errors, line);
    }
    config_init(&cfg);
    int rc = load(&cfg, config_read_string(&cfg, text), name_for_errors, ret, reterr);
    config_destroy(&cfg);
    return rc;
}

int campaign_param_index(const struct campaign *c, const char *name)
{
    for (size_t i = 0; i < c->n_params; i++)
        if (strcmp(c->params[i].name, name) == 0)
            return (int)i;
    return -1;
}

int campaign_objective_computed(const struct campaign *c, size_t k)
{
    return k < c->n_objectives && c->objectives[k].expr[0] != '\0';
}

int campaign_objective_eval(
    const struct campaign *c, size_t k, const double *x, double *ret_value, struct ll_error *reterr)
{
    if (!campaign_objective_computed(c, k))
        return ll_error_set(reterr, -EINVAL, "objective %zu is not computed", k);
    return expr_eval(c, &c->objectives[k], x, ret_value, reterr);
}

int campaign_objective_index(const struct campaign *c, const char *name)
{
    for (size_t i = 0; i < c->n_objectives; i++)
        if (strcmp(c->objectives[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* recipe — see recipe.h. Expressions are evaluated by common/ll_expr.h. */
#include "daemon/recipe.h"

#include "common/ll_expr.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct recipe_step {
    json_t *tmpl; /* the step group as JSON, expressions not yet evaluated */
    int line;
};

struct recipe {
    char source[256];
    char approval[16];
    int async;
    int fault_continue; /* on_instrument_fault = "continue" */
    size_t n_steps;
    struct recipe_step steps[RECIPE_MAX_STEPS];
    size_t n_targets;
    char target_name[RECIPE_MAX_TARGETS][CAMPAIGN_NAME_MAX];
    double target_value[RECIPE_MAX_TARGETS];
};

/* --- loading ------------------------------------------------------------------------- */

/* Converts a libconfig setting to JSON (groups -> objects, lists/arrays -> arrays). */
static json_t *setting_json(config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return json_real((double)config_setting_get_int64(s));
    case CONFIG_TYPE_FLOAT:
        return json_real(config_setting_get_float(s));
    case CONFIG_TYPE_BOOL:
        return json_boolean(config_setting_get_bool(s));
    case CONFIG_TYPE_STRING:
        return json_string(config_setting_get_string(s));
    case CONFIG_TYPE_GROUP: {
        json_t *o = json_object();
        for (int i = 0; i < config_setting_length(s); i++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            json_object_set_new(o, config_setting_name(e), setting_json(e));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (int i = 0; i < config_setting_length(s); i++)
            json_array_append_new(a, setting_json(config_setting_get_elem(s, (unsigned)i)));
        return a;
    }
    }
}

static const char *const known_actions[][2] = {
    {"robot",   "dispense"},
    {"robot",   "move"    },
    {"coater",  "spin"    },
    {"furnace", "anneal"  },
    {"",        "measure" },
};

static int check_step(struct recipe *r, config_setting_t *s, struct ll_error *err)
{
    int line = config_setting_source_line(s);
    const char *instrument = "", *action = NULL;
    if (!config_setting_is_group(s))
        return ll_error_set(
            err, -EINVAL, "%s:%d: recipe: each step is a group { ... }", r->source, line);
    config_setting_lookup_string(s, "instrument", &instrument);
    if (!config_setting_lookup_string(s, "action", &action))
        return ll_error_set(
            err, -EINVAL, "%s:%d: recipe step: 'action' is missing", r->source, line);
    if (config_setting_lookup(s, "expected_s") == NULL)
        return ll_error_set(err,
                            -EINVAL,
                            "%s:%d: recipe step '%s': 'expected_s' is missing",
                            r->source,
                            line,
                            action);
    int known = 0;
    for (size_t i = 0; i < sizeof(known_actions) / sizeof(known_actions[0]); i++)
        if (strcmp(known_actions[i][1], action) == 0 &&
            (strcmp(action, "measure") == 0 || strcmp(known_actions[i][0], instrument) == 0))
            known = 1;
    if (!known)
        return ll_error_set(err,
                            -EINVAL,
                            "%s:%d: recipe step: unknown action '%s' for instrument '%s' (robot "
                            "dispense|move, coater spin, furnace anneal, measure)",
                            r->source,
                            line,
                            action,
                            instrument);
    return 0;
}

int recipe_parse(const char *text,
                 const char *source,
                 const struct campaign *c,
                 struct recipe **ret,
                 struct ll_error *reterr)
{
    struct recipe *r = calloc(1, sizeof(*r));
    config_t cfg;
    int res = 0;
    *ret = NULL;
    if (r == NULL)
        return ll_error_set(reterr, -ENOMEM, "recipe: out of memory");
    snprintf(r->source, sizeof(r->source), "%s", source);
    snprintf(r->approval, sizeof(r->approval), "auto");
    config_init(&cfg);
    if (!config_read_string(&cfg, text)) {
        res = ll_error_set(
            reterr, -EINVAL, "%s:%d: %s", source, config_error_line(&cfg), config_error_text(&cfg));
        goto out;
    }
    config_setting_t *camp = config_lookup(&cfg, "campaign");
    config_setting_t *steps = camp != NULL ? config_setting_lookup(camp, "recipe") : NULL;
    if (steps == NULL || !config_setting_is_list(steps) || config_setting_length(steps) == 0) {
        res = ll_error_set(reterr,
                           -EINVAL,
                           "%s:%d: campaign: 'recipe' is missing or empty (a list of steps)",
                           source,
                           camp != NULL ? config_setting_source_line(camp) : 1);
        goto out;
    }
    const char *approval = NULL;
    if (config_setting_lookup_string(camp, "approval", &approval)) {
        if (strcmp(approval, "auto") != 0 && strcmp(approval, "batch") != 0) {
            res = ll_error_set(reterr,
                               -EINVAL,
                               "%s:%d: campaign: approval '%s' is not \"auto\" or \"batch\"",
                               source,
                               config_setting_source_line(config_setting_lookup(camp, "approval")),
                               approval);
            goto out;
        }
        snprintf(r->approval, sizeof(r->approval), "%s", approval);
    }
    const char *schedule = NULL;
    if (config_setting_lookup_string(camp, "schedule", &schedule)) {
        if (strcmp(schedule, "sync") != 0 && strcmp(schedule, "async") != 0) {
            res = ll_error_set(reterr,
                               -EINVAL,
                               "%s:%d: campaign: schedule '%s' is not \"sync\" or \"async\"",
                               source,
                               config_setting_source_line(config_setting_lookup(camp, "schedule")),
                               schedule);
            goto out;
        }
        r->async = strcmp(schedule, "async") == 0;
    }
    const char *on_fault = NULL;
    if (config_setting_lookup_string(camp, "on_instrument_fault", &on_fault)) {
        if (strcmp(on_fault, "pause") != 0 && strcmp(on_fault, "continue") != 0) {
            res = ll_error_set(
                reterr,
                -EINVAL,
                "%s:%d: campaign: on_instrument_fault '%s' is not \"pause\" or \"continue\"",
                source,
                config_setting_source_line(config_setting_lookup(camp, "on_instrument_fault")),
                on_fault);
            goto out;
        }
        r->fault_continue = strcmp(on_fault, "continue") == 0;
    }
    config_setting_t *target = config_setting_lookup(camp, "target");
    if (target != NULL) {
        for (int i = 0; i < config_setting_length(target); i++) {
            config_setting_t *t = config_setting_get_elem(target, (unsigned)i);
            const char *name = config_setting_name(t);
            if (!config_setting_is_number(t) || name == NULL ||
                campaign_objective_index(c, name) < 0 || r->n_targets == RECIPE_MAX_TARGETS) {
                res = ll_error_set(reterr,
                                   -EINVAL,
                                   "%s:%d: campaign: target '%s' must be a number for an objective",
                                   source,
                                   config_setting_source_line(t),
                                   name != NULL ? name : "?");
                goto out;
            }
            snprintf(r->target_name[r->n_targets], CAMPAIGN_NAME_MAX, "%s", name);
            r->target_value[r->n_targets++] = config_setting_get_float(t) != 0.0
                                                  ? config_setting_get_float(t)
                                                  : (double)config_setting_get_int64(t);
        }
    }
    int n = config_setting_length(steps);
    if (n > RECIPE_MAX_STEPS) {
        res = ll_error_set(reterr,
                           -EINVAL,
                           "%s:%d: recipe: %d steps; at most %d",
                           source,
                           config_setting_source_line(steps),
                           n,
                           RECIPE_MAX_STEPS);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(steps, (unsigned)i);
        res = check_step(r, s, reterr);
        if (res < 0)
            goto out;
        r->steps[r->n_steps].tmpl = setting_json(s);
        r->steps[r->n_steps].line = config_setting_source_line(s);
        r->n_steps++;
    }
    /* every expression must evaluate at the centre of the space */
    double x[CAMPAIGN_MAX_PARAMS];
    for (size_t i = 0; i < c->n_params; i++)
        x[i] = 0.5 * (c->params[i].low + c->params[i].high);
    json_t *probe = NULL;
    res = recipe_expand(r, c, x, &probe, reterr);
    json_decref(probe);
out:
    config_destroy(&cfg);
    if (res < 0)
        recipe_free(&r);
    *ret = r;
    return res;
}

void recipe_free(struct recipe **r)
{
    if (r == NULL || *r == NULL)
        return;
    for (size_t i = 0; i < (*r)->n_steps; i++)
        json_decref((*r)->steps[i].tmpl);
    free(*r);
    *r = NULL;
}

size_t recipe_n_steps(const struct recipe *r)
{
    return r->n_steps;
}
const char *recipe_approval(const struct recipe *r)
{
    return r->approval;
}
int recipe_async(const struct recipe *r)
{
    return r->async;
}
int recipe_fault_pauses(const struct recipe *r)
{
    return !r->fault_continue;
}
size_t recipe_n_targets(const struct recipe *r)
{
    return r->n_targets;
}
const char *recipe_target_name(const struct recipe *r, size_t i)
{
    return r->target_name[i];
}
double recipe_target_value(const struct recipe *r, size_t i)
{
    return r->target_value[i];
}

/* --- expansion ----------------------------------------------------------------------- */

struct env {
    const char *names[CAMPAIGN_MAX_PARAMS];
    const double *values;
    size_t n;
};

/* Returns a new JSON value: v with every expression string evaluated. Strings that are not
 * expressions, and the keys listed as names, are kept. */
static json_t *resolve(json_t *v, const struct env *env, struct ll_error *err, int *failed)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strstr(s, "${") == NULL && s[0] != '=')
            return json_incref(v);
        double value = 0.0;
        if (ll_expr_eval(s, env->names, env->values, env->n, &value, err) < 0) {
            *failed = 1;
            return json_null();
        }
        return json_real(value);
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e)
        {
            json_object_set_new(o, key, resolve(e, env, err, failed));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            json_array_append_new(a, resolve(e, env, err, failed));
        }
        return a;
    }
    return json_incref(v);
}

int recipe_expand(const struct recipe *r,
                  const struct campaign *c,
                  const double *x,
                  json_t **ret_steps,
                  struct ll_error *reterr)
{
    struct env env = {.values = x, .n = c->n_params};
    for (size_t i = 0; i < c->n_params; i++)
        env.names[i] = c->params[i].name;
    json_t *out = json_array();
    int res = 0;
    for (size_t i = 0; i < r->n_steps && res == 0; i++) {
        int failed = 0;
        json_t *params = resolve(r->steps[i].tmpl, &env, reterr, &failed);
        if (failed) {
            res = ll_error_prefix(
                reterr, "%s:%d: recipe step %zu", r->source, r->steps[i].line, i + 1);
            json_decref(params);
            break;
        }
        json_t *exp = json_object_get(params, "expected_s");
        if (!json_is_number(exp) || json_number_value(exp) < 0) {
            res = ll_error_set(reterr,
                               -EINVAL,
                               "%s:%d: recipe step %zu: expected_s must be a number >= 0",
                               r->source,
                               r->steps[i].line,
                               i + 1);
            json_decref(params);
            break;
        }
        const char *instrument = json_string_value(json_object_get(params, "instrument"));
        const char *action = json_string_value(json_object_get(params, "action"));
        json_t *step = json_pack("{s:s,s:s,s:I}",
                                 "instrument",
                                 instrument != NULL ? instrument : "",
                                 "action",
                                 action,
                                 "expected_ms",
                                 (json_int_t)llround(json_number_value(exp) * 1000.0));
        json_object_del(params, "instrument");
        json_object_del(params, "action");
        json_object_del(params, "expected_s");
        json_object_set_new(step, "params", params);
        json_array_append_new(out, step);
    }
    if (res < 0) {
        json_decref(out);
        out = NULL;
    }
    *ret_steps = out;
    return res;
}

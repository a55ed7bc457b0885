/* engine, planner failure (reliability.md F19; docs/daemon.md "When the planner fails"): a round
 * whose planning fails for a reason that is not the campaign's configuration nor out of memory
 * is proposed from the campaign's space-filling design instead (planner_design at the indices
 * after the campaign's experiments), with one `planner.fallback` warning event per round and the
 * round's fit record marked; the campaign goes on. Over a real store and engine without
 * instruments (every experiment it proposes fails at its first step):
 *  - real degenerate data: six measured experiments whose objectives are all equal to 1e308
 *    (finite, but their sum overflows, so the planner's GP standardisation and then every
 *    acquisition value is not finite: planner_ask fails with -ERANGE "no feasible candidate
 *    with a finite acquisition value"; a round later, with pending points, -EDOM "the models
 *    predict a value that is not a finite number"): both later rounds fall back, the campaign
 *    completes;
 *  - the campaign's own configuration (acquisition "ei" with two objectives) still fails it;
 *  - test builds (LL_FAILPOINTS), LABLOOP_PLANNER_ERROR: out of memory still fails the campaign;
 *    a fallback that fails too fails it with both messages.
 * The same against labsim and labloopd: tests/integration/test_daemon_planner_fallback.py. */
#include "common/ll_failpoint.h"
#include "daemon/engine.h"
#include "daemon/store.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "planner/campaign.h"
#include "planner/planner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ROUND0 6

struct rig {
    struct store *store;
    struct labconf *lab;
    struct engine *engine;
    struct campaign c;
    int64_t id;
};

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    assert_non_null(t);
    assert_int_equal(fread(t, 1, (size_t)n, f), (size_t)n);
    t[n] = '\0';
    fclose(f);
    return t;
}

/* Replaces the first occurrence of from in *text by to (reallocating). */
static void replace_once(char **text, const char *from, const char *to)
{
    char *at = strstr(*text, from);
    assert_non_null(at);
    size_t head = (size_t)(at - *text), n = strlen(*text), lf = strlen(from), lt = strlen(to);
    char *out = malloc(n - lf + lt + 1);
    assert_non_null(out);
    snprintf(out, n - lf + lt + 1, "%.*s%s%s", (int)head, *text, to, at + lf);
    free(*text);
    *text = out;
}

/* config/perovskite.conf cut to 6 initial experiments and 2 rounds of 2, synchronous; with
 * acquisition acq when not NULL. Free the text. */
static char *campaign_text(const char *acq)
{
    char *text = read_all(ll_test_source_path("config/perovskite.conf"));
    replace_once(&text, "initial = 14;", "initial = 6;");
    replace_once(&text, "batch = 4;", "batch = 2;");
    replace_once(&text, "budget = 54;", "budget = 10;");
    replace_once(&text, "schedule = \"async\";", "schedule = \"sync\";");
    if (acq != NULL) {
        char line[64];
        snprintf(line, sizeof(line), "acquisition = \"%s\";", acq);
        replace_once(&text, "acquisition = \"ehvi\";", line);
    }
    return text;
}

/* A fresh store and an engine without instruments running the campaign of campaign_text(acq). */
static void rig_open(struct rig *g, const char *acq)
{
    char db[512];
    struct ll_error err;
    ll_error_clear(&err);
    memset(g, 0, sizeof(*g));
    snprintf(db, sizeof(db), "%s/fallback.db", ll_test_tmpdir());
    if (store_open(db, &g->store, &err) < 0 || labconf_load_default(&g->lab, &err) < 0)
        fail_msg("%s", err.msg);
    struct engine_options eo = {
        .store = g->store, .lab = g->lab, .time_scale = 1.0, .no_instruments = 1};
    if (engine_new(&eo, &g->engine, &err) < 0)
        fail_msg("%s", err.msg);
    char *text = campaign_text(acq);
    if (campaign_load_string(text, "perovskite.conf", &g->c, &err) < 0 ||
        engine_campaign_start(g->engine, text, "perovskite.conf", &g->id, &err) < 0)
        fail_msg("%s", err.msg);
    free(text);
}

static void rig_close(struct rig *g)
{
    engine_free(&g->engine);
    store_close(&g->store);
    labconf_free(&g->lab);
}

/* The campaign's design points at indices first .. first+count-1 (planner_design). */
static void design(const struct campaign *c, size_t first, size_t count, double *x)
{
    struct planner *p = NULL;
    struct ll_error err;
    if (planner_new(c, &p, &err) != 0 || planner_design(p, first, count, x, &err) != 0)
        fail_msg("design: %s", err.msg);
    planner_free(&p);
}

/* Round 0 as if it had run: N_ROUND0 measured experiments at the first design points, each
 * objective equal to value(k, x) (value NULL: 1e308 everywhere). */
static void measured_round0(struct rig *g, double (*value)(size_t k, const double *x))
{
    struct ll_error err;
    ll_error_clear(&err);
    size_t np = g->c.n_params;
    double x[N_ROUND0 * CAMPAIGN_MAX_PARAMS];
    design(&g->c, 0, N_ROUND0, x);
    for (int i = 0; i < N_ROUND0; i++) {
        json_t *params = json_object();
        for (size_t d = 0; d < np; d++)
            json_object_set_new(params, g->c.params[d].name, json_real(x[(size_t)i * np + d]));
        int64_t eid = 0;
        int r = store_experiment_create(g->store, g->id, i, 0, i, params, 0, &eid, &err);
        json_decref(params);
        for (int to = STORE_EXP_QUEUED; to <= STORE_EXP_MEASURED && r == 0; to++)
            r = store_experiment_set_state(g->store, eid, to, NULL, &err);
        for (size_t k = 0; k < g->c.n_objectives && r == 0; k++)
            r = store_objective_put(g->store,
                                    eid,
                                    g->c.objectives[k].name,
                                    value != NULL ? value(k, x + (size_t)i * np) : 1e308,
                                    0,
                                    "test",
                                    &err);
        if (r != 0)
            fail_msg("round 0: %s", err.msg);
    }
}

static double smooth(size_t k, const double *x)
{
    return k == 0 ? 10.0 + 5.0 * x[0] - 2.0 * x[2] : 2.0 + sin(3.0 * x[1]) + 0.01 * x[3];
}

/* One engine pass; the campaign's state after it (a pass that fails the campaign returns
 * the error, which the state shows). */
static int tick(struct rig *g)
{
    struct ll_error err;
    ll_error_clear(&err);
    int r = engine_tick(g->engine, &err);
    int state = store_campaign_get_state(g->store, g->id, &err);
    if (r < 0 && state != STORE_CAMPAIGN_FAILED)
        fail_msg("tick: %s", err.msg);
    return state;
}

/* The campaign's events of kind `kind` (a new array). */
static json_t *events_of(struct rig *g, const char *kind)
{
    struct ll_error err;
    json_t *all = store_events_json(g->store, g->id, 1000, &err), *out = json_array();
    size_t i;
    json_t *ev;
    assert_non_null(all);
    json_array_foreach(all, i, ev)
    {
        if (strcmp(json_string_value(json_object_get(ev, "kind")), kind) == 0)
            json_array_append(out, ev);
    }
    json_decref(all);
    return out;
}

/* The stored fit record of a round (a new reference), or fails. */
static json_t *fit_of(struct rig *g, int round)
{
    struct ll_error err;
    json_t *fits = store_model_fits_json(g->store, g->id, &err), *out = NULL;
    size_t i;
    json_t *f;
    assert_non_null(fits);
    json_array_foreach(fits, i, f)
    {
        if (json_integer_value(json_object_get(f, "round")) == round)
            out = json_incref(json_object_get(f, "fit"));
    }
    json_decref(fits);
    if (out == NULL)
        fail_msg("round %d has no fit record", round);
    return out;
}

/* Round `round`'s experiments are the design points at first .. first+count-1 (in any order:
 * a round is ordered by its anneals) and the round's fit record says they came from the
 * fallback, naming the planner's error (which contains `why`). */
static void
assert_fallback_round(struct rig *g, int round, size_t first, size_t count, const char *why)
{
    struct ll_error err;
    size_t np = g->c.n_params, found = 0;
    double want[CAMPAIGN_MAX_BATCH * CAMPAIGN_MAX_PARAMS];
    design(&g->c, first, count, want);
    json_t *exps = store_experiments_json(g->store, g->id, &err);
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        if (json_integer_value(json_object_get(x, "round")) != round)
            continue;
        json_t *params = json_object_get(x, "params");
        int match = 0;
        for (size_t p = 0; p < count && !match; p++) {
            match = 1;
            for (size_t d = 0; d < np; d++)
                match &= json_real_value(json_object_get(params, g->c.params[d].name)) ==
                         want[p * np + d];
        }
        if (!match)
            fail_msg("round %d: experiment %lld is not a design point at %zu..%zu",
                     round,
                     (long long)json_integer_value(json_object_get(x, "id")),
                     first,
                     first + count - 1);
        double rpm = json_real_value(json_object_get(params, "spin_rpm"));
        assert_true(rpm == floor(rpm) && rpm >= 2000 && rpm <= 6000);
        found++;
    }
    assert_int_equal(found, count);
    json_decref(exps);
    json_t *fit = fit_of(g, round);
    assert_true(json_is_true(json_object_get(fit, "fallback")));
    assert_false(json_is_true(json_object_get(fit, "model_fitted")));
    const char *msg = json_string_value(json_object_get(fit, "planner_error"));
    if (msg == NULL || strstr(msg, why) == NULL)
        fail_msg("round %d: planner_error '%s' does not name '%s'", round, msg ? msg : "", why);
    json_t *chosen = json_object_get(fit, "chosen");
    assert_int_equal(json_array_size(chosen), count);
    json_array_foreach(chosen, i, x)
    {
        assert_true(json_is_true(json_object_get(x, "fallback")));
        assert_null(json_object_get(x, "predicted"));
    }
    json_decref(fit);
}

/* All objectives 1e308: planner_ask fails for real; rounds 1 and 2 are the design's points 6-7
 * and 8-9, each with one warning event, status lists the round, and the campaign completes on
 * its budget. */
static void test_engine_degenerate_data_falls_back_to_the_design(void **state)
{
    (void)state;
    struct rig g;
    struct ll_error err;
    rig_open(&g, NULL);
    measured_round0(&g, NULL);

    /* the planner itself fails on these data (not an injected error) */
    struct planner *p = NULL;
    double x[2 * CAMPAIGN_MAX_PARAMS], y[CAMPAIGN_MAX_OBJECTIVES] = {1e308, 1e308};
    assert_int_equal(planner_new(&g.c, &p, &err), 0);
    double rows[N_ROUND0 * CAMPAIGN_MAX_PARAMS];
    design(&g.c, 0, N_ROUND0, rows);
    for (int i = 0; i < N_ROUND0; i++)
        assert_int_equal(planner_tell(p, rows + (size_t)i * g.c.n_params, y, &err), 0);
    assert_int_equal(planner_ask(p, 2, x, NULL, NULL, &err), -ERANGE);
    planner_free(&p);

    assert_int_equal(tick(&g), STORE_CAMPAIGN_RUNNING);
    assert_fallback_round(&g, 1, N_ROUND0, 2, "no feasible candidate");
    json_t *evs = events_of(&g, "planner.fallback");
    assert_int_equal(json_array_size(evs), 1);
    json_t *ev = json_array_get(evs, 0);
    const char *msg = json_string_value(json_object_get(ev, "message"));
    assert_int_equal(json_integer_value(json_object_get(ev, "level")), 4);
    if (strstr(msg, "round 1: the planner failed (") == NULL ||
        strstr(msg, "no feasible candidate") == NULL)
        fail_msg("event: %s", msg);
    json_decref(evs);
    /* status lists the round */
    json_t *st = engine_status_json(g.engine, &err);
    json_t *fb = json_object_get(json_array_get(json_object_get(st, "campaigns"), 0),
                                 "planner_fallback_rounds");
    assert_int_equal(json_array_size(fb), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(fb, 0), "round")), 1);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(fb, 0), "planner_error")),
               "no feasible candidate"));
    json_decref(st);

    int cstate = STORE_CAMPAIGN_RUNNING;
    for (int i = 0; i < 200 && cstate < STORE_CAMPAIGN_COMPLETED; i++)
        cstate = tick(&g);
    assert_int_equal(cstate, STORE_CAMPAIGN_COMPLETED);
    /* round 2 fails otherwise: the failed round-1 experiments are pending points, and the
     * models' predictions there are not finite */
    assert_fallback_round(&g, 2, N_ROUND0 + 2, 2, "not a finite number");
    /* one event per round, however many passes */
    evs = events_of(&g, "planner.fallback");
    assert_int_equal(json_array_size(evs), 2);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(evs, 1), "message")), "round 2: "));
    json_decref(evs);
    rig_close(&g);
}

/* The campaign's own configuration is not a planner failure: acquisition "ei" with two
 * objectives fails the campaign at its first round, as before, without a fallback. */
static void test_engine_configuration_error_fails_the_campaign(void **state)
{
    (void)state;
    struct rig g;
    struct ll_error err;
    rig_open(&g, "ei");
    assert_int_equal(tick(&g), STORE_CAMPAIGN_FAILED);
    json_t *camps = store_campaigns_json(g.store, 1, &err);
    const char *reason = json_string_value(json_object_get(json_array_get(camps, 0), "reason"));
    if (reason == NULL || strstr(reason, "needs exactly one objective") == NULL)
        fail_msg("reason: %s", reason ? reason : "(none)");
    json_decref(camps);
    json_t *evs = events_of(&g, "planner.fallback");
    assert_int_equal(json_array_size(evs), 0);
    json_decref(evs);
    rig_close(&g);
}

/* Test builds: LABLOOP_PLANNER_ERROR makes round 1's planning fail on healthy data. */
static void run_injected(const char *spec, int want_state, const char *want_reason)
{
    if (!ll_failpoints_compiled())
        skip();
    struct rig g;
    struct ll_error err;
    setenv("LABLOOP_PLANNER_ERROR", spec, 1);
    rig_open(&g, NULL);
    measured_round0(&g, smooth);
    int cstate = tick(&g);
    unsetenv("LABLOOP_PLANNER_ERROR");
    assert_int_equal(cstate, want_state);
    json_t *evs = events_of(&g, "planner.fallback");
    assert_int_equal(json_array_size(evs), want_state == STORE_CAMPAIGN_RUNNING);
    json_decref(evs);
    if (want_reason != NULL) {
        json_t *camps = store_campaigns_json(g.store, 1, &err);
        const char *reason = json_string_value(json_object_get(json_array_get(camps, 0), "reason"));
        if (reason == NULL || strstr(reason, want_reason) == NULL)
            fail_msg("%s: reason '%s' does not contain '%s'", spec, reason, want_reason);
        json_decref(camps);
    }
    rig_close(&g);
}

static void test_engine_injected_model_error_falls_back(void **state)
{
    (void)state;
    run_injected("EDOM:1", STORE_CAMPAIGN_RUNNING, NULL);
}

static void test_engine_out_of_memory_does_not_fall_back(void **state)
{
    (void)state;
    run_injected("ENOMEM:1", STORE_CAMPAIGN_FAILED, "planner: injected planner error");
}

static void test_engine_failed_fallback_fails_the_campaign(void **state)
{
    (void)state;
    run_injected("EDOM:1,fallback:1",
                 STORE_CAMPAIGN_FAILED,
                 "planner: injected planner error (LABLOOP_PLANNER_ERROR); the space-filling "
                 "fallback failed too: injected fallback error");
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_degenerate_data_falls_back_to_the_design),
        cmocka_unit_test(test_engine_configuration_error_fails_the_campaign),
        cmocka_unit_test(test_engine_injected_model_error_falls_back),
        cmocka_unit_test(test_engine_out_of_memory_does_not_fall_back),
        cmocka_unit_test(test_engine_failed_fallback_fails_the_campaign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

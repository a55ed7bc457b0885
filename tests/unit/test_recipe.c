/* recipe: loading the campaign's daemon keys with
 * line-numbered errors, and expanding config/perovskite.conf into steps whose dispense
 * volumes recover the composition. Also the engine's rounds when every experiment of the
 * recipe fails: failed experiments are pending points, so no point is proposed twice. And the
 * watchdog's check of the engine's instrument workers (engine_workers_alive). */
#include "common/ll_time.h"
#include "daemon/engine.h"
#include "daemon/recipe.h"
#include "daemon/store.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "planner/campaign.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    assert_int_equal(fread(t, 1, (size_t)n, f), (size_t)n);
    t[n] = '\0';
    fclose(f);
    return t;
}

static void test_recipe_perovskite_expands_to_the_composition(void **state)
{
    (void)state;
    const char *path = ll_test_source_path("config/perovskite.conf");
    struct campaign c;
    struct ll_error err;
    ll_error_clear(&err);
    if (campaign_load_file(path, &c, &err) != 0)
        fail_msg("%s", err.msg);
    assert_true(c.has_recipe);
    char *text = read_all(path);
    struct recipe *r = NULL;
    if (recipe_parse(text, path, &c, &r, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(recipe_n_steps(r), 10);
    assert_string_equal(recipe_approval(r), "auto");
    assert_int_equal(recipe_async(r), 1);
    double x[6] = {0.7, 0.1, 0.8, 120.0, 10.0, 4000};
    json_t *steps = NULL;
    assert_int_equal(recipe_expand(r, &c, x, &steps, &err), 0);
    json_t *vols =
        json_object_get(json_object_get(json_array_get(steps, 0), "params"), "volumes_ul");
    double v[6];
    for (int i = 0; i < 6; i++)
        v[i] = json_number_value(json_array_get(vols, (size_t)i));
    double fa_ = v[0] + v[3], ma = v[1] + v[4], cs = v[2] + v[5], iod = v[0] + v[1] + v[2];
    ll_assert_close(fa_ / (fa_ + ma), 0.7, 1e-12, 0);
    ll_assert_close(cs / (fa_ + ma + cs), 0.1, 1e-12, 0);
    ll_assert_close(iod / (fa_ + ma + cs), 0.8, 1e-12, 0);
    ll_assert_close(fa_ + ma + cs, 200.0, 1e-12, 0);
    json_t *spin = json_array_get(steps, 2);
    assert_string_equal(json_string_value(json_object_get(spin, "instrument")), "coater");
    json_t *stage2 = json_array_get(json_object_get(json_object_get(spin, "params"), "stages"), 1);
    ll_assert_close(json_number_value(json_object_get(stage2, "rpm")), 4000, 0, 0);
    json_t *anneal = json_array_get(steps, 4);
    assert_int_equal(json_integer_value(json_object_get(anneal, "expected_ms")),
                     (json_int_t)llround(((120.0 - 25) / 30 * 60 + 10 * 60 + 60) * 1000));
    json_t *meas = json_array_get(steps, 6);
    assert_string_equal(json_string_value(json_object_get(meas, "action")), "measure");
    assert_string_equal(json_string_value(json_object_get(meas, "instrument")), "");
    assert_string_equal(json_string_value(json_object_get(json_object_get(meas, "params"), "kind")),
                        "jv");
    json_decref(steps);
    recipe_free(&r);
    free(text);
}

static void test_recipe_electrolyte_campaign_loads(void **state)
{
    (void)state;
    const char *path = ll_test_source_path("config/electrolyte.conf");
    struct campaign c;
    struct ll_error err;
    ll_error_clear(&err);
    if (campaign_load_file(path, &c, &err) != 0)
        fail_msg("%s", err.msg);
    char *text = read_all(path);
    struct recipe *r = NULL;
    if (recipe_parse(text, path, &c, &r, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(recipe_n_steps(r), 6);
    assert_string_equal(recipe_approval(r), "batch");
    assert_int_equal(recipe_async(r), 0);
    assert_int_equal(recipe_fault_pauses(r), 1); /* the default: pause */
    double x[5] = {0.6, 0.1, 0.1, 1150.0, 600.0};
    json_t *steps = NULL;
    assert_int_equal(recipe_expand(r, &c, x, &steps, &err), 0);
    json_t *vols =
        json_object_get(json_object_get(json_array_get(steps, 0), "params"), "volumes_ul");
    ll_assert_close(json_number_value(json_array_get(vols, 0)), 100.0, 0, 1e-12);
    ll_assert_close(json_number_value(json_array_get(vols, 1)), 60.0, 1e-12, 0);
    json_decref(steps);
    recipe_free(&r);
    free(text);
}

static void test_recipe_errors_carry_file_and_line(void **state)
{
    (void)state;
    struct campaign c;
    struct ll_error err;
    const char *head = "campaign: {\n"
                       "  name = \"t\"; batch = 1; initial = 1; budget = 2; seed = 1;\n"
                       "  acquisition = \"random\";\n"
                       "  parameters = ( { name = \"x\"; low = 0.0; high = 1.0; } );\n"
                       "  objectives = ( { name = \"y\"; goal = \"max\"; ref = 0.0; } );\n"
                       "  ";
    struct {
        const char *body;
        const char *msg_part;
    } cases[] = {
        {"recipe = ( { instrument = \"robot\"; action = \"move\"; } );",
         "t.conf:6: recipe step 'move': 'expected_s'"                                                                                         },
        {"recipe = ( { instrument = \"robot\"; action = \"fly\"; expected_s = 1; } );",
         "t.conf:6: recipe step: unknown action"                                                                                              },
        {"recipe = ( { instrument = \"furnace\"; action = \"anneal\"; expected_s = 1;\n setpoint_c "
         "= \"${z} * 2\"; } );",                                                     "t.conf:6: recipe step 1: expression '${z} * 2'"},
        {"approval = \"sometimes\"; recipe = ( { action = \"measure\"; expected_s = 1; } );",
         "t.conf:6: campaign: approval"                                                                                                       },
        {"schedule = \"later\"; recipe = ( { action = \"measure\"; expected_s = 1; } );",
         "t.conf:6: campaign: schedule 'later'"                                                                                               },
        {"on_instrument_fault = \"x\"; recipe = ( { } );",
         "t.conf:6: campaign: on_instrument_fault 'x'"                                                                                        },
        {"target = { nope = 1.0; }; recipe = ( { action = \"measure\"; expected_s = 1; } );",
         "target 'nope'"                                                                                                                      },
        {"",                                                                                  "'recipe' is missing"                           },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[2048];
        snprintf(text, sizeof(text), "%s%s\n};\n", head, cases[i].body);
        ll_error_clear(&err);
        assert_int_equal(campaign_load_string(text, "t.conf", &c, &err), 0);
        struct recipe *r = NULL;
        assert_int_equal(recipe_parse(text, "t.conf", &c, &r, &err), -EINVAL);
        assert_null(r);
        if (strstr(err.msg, cases[i].msg_part) == NULL)
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].msg_part);
    }
}

/* on_instrument_fault: "pause" (also when the key is absent) or "continue". */
static void test_recipe_on_instrument_fault_values(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int pauses;
    } cases[] = {
        {"",                                    1},
        {"on_instrument_fault = \"pause\";",    1},
        {"on_instrument_fault = \"continue\";", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        snprintf(
            text,
            sizeof(text),
            "campaign: {\n  name = \"t\"; batch = 1; initial = 1; budget = 2; seed = 1;\n"
            "  acquisition = \"random\";\n"
            "  parameters = ( { name = \"x\"; low = 0.0; high = 1.0; } );\n"
            "  objectives = ( { name = \"y\"; goal = \"max\"; ref = 0.0; } );\n"
            "  %s recipe = ( { action = \"measure\"; kind = \"jv\"; expected_s = 1; } );\n};\n",
            cases[i].line);
        struct campaign c;
        struct ll_error err;
        ll_error_clear(&err);
        struct recipe *r = NULL;
        if (campaign_load_string(text, "t.conf", &c, &err) != 0 ||
            recipe_parse(text, "t.conf", &c, &r, &err) != 0)
            fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(recipe_fault_pauses(r), cases[i].pauses);
        recipe_free(&r);
    }
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

/* An engine without instruments: every recipe step is impossible, so every experiment
 * fails at its first step. The perovskite campaign cut to 8 initial + 2 batches of 4 must
 * propose 16 distinct points (a failed experiment is a pending point, so the initial
 * design's index moves past it) and end with its budget spent, every experiment failed. */
static void test_recipe_failed_experiments_are_not_proposed_again(void **state)
{
    (void)state;
    char db[512], p[600];
    snprintf(db, sizeof(db), "%s/failed-design.db", ll_test_tmpdir());
    unlink(db);
    struct ll_error err;
    ll_error_clear(&err);
    struct store *store = NULL;
    struct labconf *lab = NULL;
    struct engine *engine = NULL;
    if (store_open(db, &store, &err) < 0 || labconf_load_default(&lab, &err) < 0)
        fail_msg("%s", err.msg);
    struct engine_options eo = {.store = store, .lab = lab, .time_scale = 1.0, .no_instruments = 1};
    if (engine_new(&eo, &engine, &err) < 0)
        fail_msg("%s", err.msg);
    char *text = read_all(ll_test_source_path("config/perovskite.conf"));
    replace_once(&text, "initial = 14;", "initial = 8;");
    replace_once(&text, "budget = 54;", "budget = 16;");
    int64_t id = 0;
    if (engine_campaign_start(engine, text, "perovskite.conf", &id, &err) < 0)
        fail_msg("%s", err.msg);
    int cstate = -1;
    for (int i = 0; i < 200; i++) {
        if (engine_tick(engine, &err) < 0)
            fail_msg("tick: %s", err.msg);
        cstate = store_campaign_get_state(store, id, &err);
        if (cstate >= STORE_CAMPAIGN_COMPLETED)
            break;
    }
    assert_int_equal(cstate, STORE_CAMPAIGN_COMPLETED);
    json_t *exps = store_experiments_json(store, id, &err);
    assert_non_null(exps);
    assert_int_equal(json_array_size(exps), 16);
    size_t i, k;
    json_t *x, *y;
    json_array_foreach(exps, i, x)
    {
        assert_string_equal(json_string_value(json_object_get(x, "state")), "failed");
        json_array_foreach(exps, k, y)
        {
            if (k <= i)
                continue;
            int same = json_equal(json_object_get(x, "params"), json_object_get(y, "params"));
            if (same)
                fail_msg("experiments %zu and %zu have the same parameters", i, k);
        }
    }
    json_decref(exps);
    free(text);
    engine_free(&engine);
    store_close(&store);
    labconf_free(&lab);
    unlink(db);
    snprintf(p, sizeof(p), "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db);
    unlink(p);
}

/* Real workers on instruments that cannot answer (the robot's port is bound but not
 * listening, the serial devices do not exist): after engine_estop() each worker holds one
 * SAFE request. Alive now; not alive at a time past every call budget while a request is
 * outstanding (the sentence names the worker); alive again, at any time, once every
 * completion has been taken. */
static void test_recipe_engine_workers_alive_tracks_outstanding_requests(void **state)
{
    (void)state;
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sock >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(sock, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)&a, &al), 0);
    char port[64];
    snprintf(port, sizeof(port), "port = %d;", (int)ntohs(a.sin_port));
    char *text = strdup(labconf_default_text());
    assert_non_null(text);
    replace_once(&text, "port = 15020;", port);
    replace_once(&text, "/dev/ttyUSB0", "/nonexistent/ll-test-furnace");
    replace_once(&text, "/dev/ttyUSB1", "/nonexistent/ll-test-coater");
    char db[512], p[600];
    snprintf(db, sizeof(db), "%s/workers-alive.db", ll_test_tmpdir());
    unlink(db);
    struct ll_error err;
    ll_error_clear(&err);
    struct store *store = NULL;
    struct labconf *lab = NULL;
    struct engine *engine = NULL;
    if (store_open(db, &store, &err) < 0 || labconf_load_string(text, "test-lab", &lab, &err) < 0)
        fail_msg("%s", err.msg);
    struct engine_options eo = {.store = store, .lab = lab, .time_scale = 1.0};
    if (engine_new(&eo, &engine, &err) < 0)
        fail_msg("%s", err.msg);
    char why[256] = "";
    int64_t now = ll_monotonic_ms();
    assert_int_equal(engine_workers_alive(engine, now, 0, why, sizeof(why)), 1);
    engine_estop(engine, &err);
    now = ll_monotonic_ms();
    assert_int_equal(engine_workers_alive(engine, now, 1000, why, sizeof(why)), 1);
    int64_t later = now + 3600 * 1000;
    assert_int_equal(engine_workers_alive(engine, later, 1000, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "instrument worker"));
    assert_non_null(strstr(why, "outstanding"));
    /* take the completions as labloopd's loop does */
    int64_t until = ll_monotonic_ms() + 20000;
    int alive = 0;
    while (!alive && ll_monotonic_ms() < until) {
        int fds[LABCONF_MAX_INSTRUMENTS];
        struct pollfd pf[LABCONF_MAX_INSTRUMENTS];
        int nf = engine_fds(engine, fds, LABCONF_MAX_INSTRUMENTS);
        for (int i = 0; i < nf; i++)
            pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        poll(pf, (nfds_t)nf, 100);
        engine_on_completions(engine, &err);
        alive = engine_workers_alive(engine, later, 1000, why, sizeof(why));
    }
    assert_int_equal(alive, 1);
    engine_free(&engine);
    store_close(&store);
    labconf_free(&lab);
    free(text);
    close(sock);
    unlink(db);
    snprintf(p, sizeof(p), "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db);
    unlink(p);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe_perovskite_expands_to_the_composition),
        cmocka_unit_test(test_recipe_electrolyte_campaign_loads),
        cmocka_unit_test(test_recipe_errors_carry_file_and_line),
        cmocka_unit_test(test_recipe_on_instrument_fault_values),
        cmocka_unit_test(test_recipe_failed_experiments_are_not_proposed_again),
        cmocka_unit_test(test_recipe_engine_workers_alive_tracks_outstanding_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

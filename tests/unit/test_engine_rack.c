/* engine, rack wells as a tracked resource: the rule (engine_rack_pick_well: the lowest well
 * that holds no sample, -ENOSPC when none is free), the rule applied over a store as the
 * engine does it (a 4-well rack and 6 samples: 4 get wells 0..3, the 5th finds the rack full
 * until the unload; failed and measured samples keep their wells, a sample abandoned before
 * anything ran frees its own), and the lab definition's robot key `wells`. The engine's use
 * of it against labsim runs in tests/integration/test_daemon_rack.py. */
#include "daemon/engine.h"
#include "daemon/store.h"
#include "drivers/labconf.h"
#include "ll_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_rack_pick_lowest_free_well(void **state)
{
    (void)state;
    unsigned char occ[96];
    memset(occ, 0, sizeof(occ));
    assert_int_equal(engine_rack_pick_well(occ, 96), 0);
    occ[0] = occ[1] = occ[3] = 1;
    assert_int_equal(engine_rack_pick_well(occ, 96), 2);
    occ[2] = 1;
    assert_int_equal(engine_rack_pick_well(occ, 96), 4);
    assert_int_equal(engine_rack_pick_well(occ, 4), -ENOSPC); /* 4 wells, all occupied */
    memset(occ, 1, sizeof(occ));
    assert_int_equal(engine_rack_pick_well(occ, 96), -ENOSPC);
    occ[95] = 0;
    assert_int_equal(engine_rack_pick_well(occ, 96), 95);
    assert_int_equal(engine_rack_pick_well(occ, 0), -ENOSPC);
}

/* Creates the next experiment the way the engine does: the lowest free well, or none. */
static int create_next(struct store *s, int64_t c, int idx, int n_wells, int64_t *ret_id)
{
    struct ll_error err;
    unsigned char occ[LABCONF_MAX_WELLS];
    ll_error_clear(&err);
    int n = store_rack_occupied(s, n_wells, occ, &err);
    assert_true(n >= 0);
    int well = engine_rack_pick_well(occ, n_wells);
    if (well < 0)
        return well;
    json_t *p = json_object();
    assert_int_equal(store_experiment_create(s, c, idx, 0, well, p, 0, ret_id, &err), 0);
    json_decref(p);
    return well;
}

static void finish(struct store *s, int64_t id, int to, int dispensed)
{
    struct ll_error err;
    int64_t st = 0;
    json_t *p = json_object();
    assert_int_equal(store_experiment_set_state(s, id, STORE_EXP_QUEUED, NULL, &err), 0);
    if (to == STORE_EXP_ABANDONED && !dispensed) {
        assert_int_equal(store_experiment_set_state(s, id, to, "x", &err), 0);
        json_decref(p);
        return;
    }
    assert_int_equal(store_step_create(s, id, 0, "robot", "dispense", p, 1, NULL, &st, &err), 0);
    assert_int_equal(store_step_set_state(s, st, STORE_STEP_STARTED, 1, NULL, &err), 0);
    assert_int_equal(store_experiment_set_state(s, id, STORE_EXP_RUNNING, NULL, &err), 0);
    assert_int_equal(store_experiment_set_state(s, id, to, "x", &err), 0);
    json_decref(p);
}

static void test_rack_never_two_samples_in_one_well(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/labloop.db", ll_test_tmpdir());
    struct store *s = NULL;
    struct ll_error err;
    ll_error_clear(&err);
    assert_int_equal(store_open(path, &s, &err), 0);
    int64_t c = 0, id[8];
    assert_int_equal(store_campaign_create(s, "rack", "x", "auto", &c, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(create_next(s, c, i, 4, &id[i]), i);
    assert_int_equal(create_next(s, c, 4, 4, &id[4]), -ENOSPC); /* in progress: full */
    finish(s, id[0], STORE_EXP_MEASURED, 1);
    finish(s, id[1], STORE_EXP_FAILED, 1);
    assert_int_equal(create_next(s, c, 4, 4, &id[4]), -ENOSPC); /* finished: still there */
    finish(s, id[2], STORE_EXP_ABANDONED, 0);                   /* never dispensed */
    assert_int_equal(create_next(s, c, 4, 4, &id[4]), 2);
    assert_int_equal(create_next(s, c, 5, 4, &id[5]), -ENOSPC);
    /* a restart forgets nothing */
    store_close(&s);
    assert_int_equal(store_open(path, &s, &err), 0);
    assert_int_equal(create_next(s, c, 5, 4, &id[5]), -ENOSPC);
    int n = 0;
    assert_int_equal(store_rack_unload(s, &n, &err), 0);
    assert_int_equal(n, 3); /* wells 0 and 1, and the abandoned one (which held none) */
    /* wells 2 and 3 hold samples in progress; 0 and 1 are free again */
    assert_int_equal(create_next(s, c, 5, 4, &id[5]), 0);
    assert_int_equal(create_next(s, c, 6, 4, &id[6]), 1);
    assert_int_equal(create_next(s, c, 7, 4, &id[7]), -ENOSPC);
    store_close(&s);
}

static void test_labconf_robot_wells_key(void **state)
{
    (void)state;
    struct labconf *lab = NULL, *back = NULL;
    struct ll_error err;
    ll_error_clear(&err);
    const char *base = labconf_default_text();
    const char *at = strstr(base, "wells = 96;");
    assert_non_null(at);
    size_t cap = strlen(base) + 16;
    char *text = malloc(cap);
    assert_non_null(text);
    snprintf(text, cap, "%.*swells = 4;%s", (int)(at - base), base, at + strlen("wells = 96;"));
    assert_int_equal(labconf_load_string(text, "t.conf", &lab, &err), 0);
    assert_int_equal(labconf_find_instrument(lab, "robot")->wells, 4);
    /* written and read back */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(labconf_write(lab, f, &err), 0);
    fclose(f);
    assert_int_equal(labconf_load_string(buf, "w.conf", &back, &err), 0);
    assert_int_equal(labconf_find_instrument(back, "robot")->wells, 4);
    free(buf);
    labconf_free(&back);
    labconf_free(&lab);
    /* absent: 96 */
    snprintf(text, cap, "%.*s%s", (int)(at - base), base, at + strlen("wells = 96;"));
    assert_int_equal(labconf_load_string(text, "t.conf", &lab, &err), 0);
    assert_int_equal(labconf_find_instrument(lab, "robot")->wells, 96);
    labconf_free(&lab);
    free(text);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rack_pick_lowest_free_well),
        cmocka_unit_test(test_rack_never_two_samples_in_one_well),
        cmocka_unit_test(test_labconf_robot_wells_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

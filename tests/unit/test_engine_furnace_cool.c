/* engine, a hot furnace waits before loading: the loading rule (engine_furnace_may_load: PV
 * at most the next anneal's setpoint + tolerance, heating up from below allowed, no usable
 * reading never loads), the overdue warning in instrument time (engine_furnace_wait_overdue),
 * and the lab definition's furnace keys load_tolerance_c / load_wait_warn_min (defaults,
 * round trip through labconf_write, FILE:LINE errors). The engine's gate itself runs against
 * labsim in tests/integration/test_daemon_furnace_cool.py. */
#include "daemon/engine.h"
#include "drivers/labconf.h"
#include "ll_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_furnace_may_load_rule(void **state)
{
    (void)state;
    static const struct {
        double pv, sp, tol;
        int want;
    } cases[] = {
        {150.0,  89.0,  5.0, 0}, /* still hot from a 150 °C anneal */
        {94.0,   89.0,  5.0, 1}, /* exactly at the limit */
        {94.01,  89.0,  5.0, 0},
        {93.9,   89.0,  5.0, 1},
        {25.0,   89.0,  5.0, 1}, /* cold: heating up is the anneal's own ramp */
        {89.0,   89.0,  0.0, 1},
        {89.1,   89.0,  0.0, 0},
        {3276.7, 89.0,  5.0, 0}, /* sensor break reads full scale */
        {-5.0,   150.0, 5.0, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (engine_furnace_may_load(cases[i].pv, cases[i].sp, cases[i].tol) != cases[i].want)
            fail_msg("case %zu: pv %g sp %g tol %g: want %d",
                     i,
                     cases[i].pv,
                     cases[i].sp,
                     cases[i].tol,
                     cases[i].want);
    }
    /* no usable reading, or no usable limit: never load */
    assert_int_equal(engine_furnace_may_load((double)NAN, 89.0, 5.0), 0);
    assert_int_equal(engine_furnace_may_load((double)INFINITY, 89.0, 5.0), 0);
    assert_int_equal(engine_furnace_may_load(-(double)INFINITY, 89.0, 5.0), 0);
    assert_int_equal(engine_furnace_may_load(50.0, (double)NAN, 5.0), 0);
    assert_int_equal(engine_furnace_may_load(50.0, 89.0, (double)NAN), 0);
}

static void test_furnace_wait_overdue_in_instrument_time(void **state)
{
    (void)state;
    /* 60 min of instrument time: 3 600 000 ms at real speed, 1 800 ms at speed 2000 */
    assert_int_equal(engine_furnace_wait_overdue(3600000, 1.0, 60.0), 0);
    assert_int_equal(engine_furnace_wait_overdue(3600001, 1.0, 60.0), 1);
    assert_int_equal(engine_furnace_wait_overdue(1800, 2000.0, 60.0), 0);
    assert_int_equal(engine_furnace_wait_overdue(1801, 2000.0, 60.0), 1);
    assert_int_equal(engine_furnace_wait_overdue(0, 2000.0, 0.5), 0);
    assert_int_equal(engine_furnace_wait_overdue(16, 2000.0, 0.5), 1); /* 32 s > 30 s */
}

/* base with the first occurrence of from replaced by to (a new string). */
static char *replaced(const char *base, const char *from, const char *to)
{
    const char *at = strstr(base, from);
    assert_non_null(at);
    size_t cap = strlen(base) + strlen(to) + 1;
    char *out = malloc(cap);
    assert_non_null(out);
    snprintf(out, cap, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return out;
}

/* The default lab with the first occurrence of from replaced by to. */
static char *default_with(const char *from, const char *to)
{
    return replaced(labconf_default_text(), from, to);
}

/* The default lab without its two furnace loading keys. */
static char *default_without_load_keys(void)
{
    char *t1 = default_with("      load_tolerance_c = 5.0;", "");
    char *t2 = replaced(t1, "      load_wait_warn_min = 60.0;", "");
    free(t1);
    return t2;
}

static void test_labconf_furnace_load_keys(void **state)
{
    (void)state;
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    assert_int_equal(labconf_load_default(&lab, &err), 0);
    const struct labconf_instrument *f = labconf_find_instrument(lab, "furnace");
    ll_assert_close(f->load_tolerance_c, 5.0, 0, 0);
    ll_assert_close(f->load_wait_warn_min, 60.0, 0, 0);
    labconf_free(&lab);

    /* absent: the defaults */
    char *absent = default_without_load_keys();
    if (labconf_load_string(absent, "t.conf", &lab, &err) != 0)
        fail_msg("%s", err.msg);
    f = labconf_find_instrument(lab, "furnace");
    ll_assert_close(f->load_tolerance_c, 5.0, 0, 0);
    ll_assert_close(f->load_wait_warn_min, 60.0, 0, 0);
    labconf_free(&lab);
    /* given: kept through a write and a load */
    char *text =
        replaced(absent,
                 "      limits = { max_temp_c",
                 "load_tolerance_c = 2.5; load_wait_warn_min = 7;\n      limits = { max_temp_c");
    char *written = NULL;
    size_t n = 0;
    if (labconf_load_string(text, "t.conf", &lab, &err) != 0)
        fail_msg("%s", err.msg);
    f = labconf_find_instrument(lab, "furnace");
    ll_assert_close(f->load_tolerance_c, 2.5, 0, 0);
    ll_assert_close(f->load_wait_warn_min, 7.0, 0, 0);
    FILE *mem = open_memstream(&written, &n);
    assert_non_null(mem);
    assert_int_equal(labconf_write(lab, mem, &err), 0);
    fclose(mem);
    labconf_free(&lab);
    if (labconf_load_string(written, "written.conf", &lab, &err) != 0)
        fail_msg("%s", err.msg);
    f = labconf_find_instrument(lab, "furnace");
    ll_assert_close(f->load_tolerance_c, 2.5, 0, 0);
    ll_assert_close(f->load_wait_warn_min, 7.0, 0, 0);
    labconf_free(&lab);
    free(written);
    free(absent);
    free(text);
}

static void test_labconf_furnace_load_keys_errors(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"load_tolerance_c = 5.0;",
         "load_tolerance_c = -1.0;",                         "t.conf:44: instrument 'furnace': 'load_tolerance_c' = -1 is outside [0, 500]" },
        {"load_tolerance_c = 5.0;",
         "load_tolerance_c = 600;",                          "t.conf:44: instrument 'furnace': 'load_tolerance_c' = 600 is outside [0, 500]"},
        {"load_tolerance_c = 5.0;",
         "load_tolerance_c = \"hot\";",                      "t.conf:44: instrument 'furnace': 'load_tolerance_c' must be a number"         },
        {"load_wait_warn_min = 60.0;",
         "load_wait_warn_min = 0;",                          "t.conf:45: instrument 'furnace': 'load_wait_warn_min' must be above 0"        },
        {"load_wait_warn_min = 60.0;",
         "load_wait_warn_min = -3.0;",                       "t.conf:45: instrument 'furnace': 'load_wait_warn_min' = -3 is outside"        },
        {"max_rpm = 8000;",
         "max_rpm = 8000; }; load_tolerance_c = 5.0; x = {", "instrument 'coater': unknown key 'load_tolerance_c'"                          },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct labconf *lab = NULL;
        struct ll_error err = {0};
        char *text = default_with(cases[i].from, cases[i].to);
        int r = labconf_load_string(text, "t.conf", &lab, &err);
        if (r != -EINVAL || strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: r=%d msg='%s', want '%s'", i, r, err.msg, cases[i].want);
        assert_null(lab);
        free(text);
    }
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_furnace_may_load_rule),
        cmocka_unit_test(test_furnace_wait_overdue_in_instrument_time),
        cmocka_unit_test(test_labconf_furnace_load_keys),
        cmocka_unit_test(test_labconf_furnace_load_keys_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_drivers_furnace_garbage_labsim — reliability.md B8, garbage from instruments,
 * through the furnace driver (Modbus RTU on a pseudo-terminal) against labsim serving the
 * Omega/Delta-style map `vendorb` (PV error codes 0x8002-0x8006, hardware.md §1.2):
 *
 *   - each PV error code in the PV register (`furnace.pv_error:CODE@reg=PV`): drv_status()
 *     is an instrument fault naming the code, with no temperature (NAN), so labloopd's
 *     "may the next sample go in" check has no reading; during an anneal the poll fails the
 *     step naming the code and commands the safe state;
 *   - a PV below / above the map's temp_range_c (`furnace.pv_raw:RAW`): the same, naming
 *     the range (above the range is not mistaken for a plain over-temperature);
 *   - a program status the map does not define (`furnace.bad_state:9`): the poll fails the
 *     step naming it, a start refuses, a query says unknown;
 *   - after the garbage, good readings are used again unchanged.
 *
 * labsim (port 0, --speed 20, per-test runtime folder) runs for the whole group; faults are
 * scripted over its control socket just before each action, and its counts show they fired.
 */
#include "common/ll_time.h"
#include "drivers/driver.h"
#include "drivers/driver_internal.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "ll_test_labsim.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

static pid_t labsim_pid;
static struct labconf *lab;
static void *zctx;

static char labsim_rt[4096]; /* labsim's runtime folder */

static int start_labsim(void **state)
{
    (void)state;
    labsim_pid = ll_test_labsim_start(20, 0, "vendorb", labsim_rt, sizeof(labsim_rt), &lab);
    zctx = zmq_ctx_new();
    return labsim_pid > 0 && zctx ? 0 : -1;
}

static int stop_labsim(void **state)
{
    (void)state;
    ll_test_labsim_stop(labsim_pid);
    labsim_pid = 0;
    if (zctx)
        zmq_ctx_term(zctx);
    labconf_free(&lab);
    return 0;
}

/* Adds fault rules to labsim (docs/instruments.md §6). */
static void fault_rule(const char *rule)
{
    ll_test_labsim_fault_rule(zctx, labsim_rt, rule);
}

/* counts: faults.NAME (how often it fired), robot_jobs.ID, or a top-level integer. */
static long count_of(const char *group, const char *key)
{
    return ll_test_labsim_count(zctx, labsim_rt, group, key);
}

static int furnace_program(void)
{
    return (int)ll_test_labsim_status_int(zctx, labsim_rt, "furnace_program");
}

static struct drv *open_instrument(const char *name)
{
    return ll_test_open_instrument(lab, name);
}

static struct drv_step anneal(uint32_t id, double setpoint_c)
{
    struct drv_step s;

    memset(&s, 0, sizeof(s));
    s.id = id;
    s.kind = DRV_STEP_ANNEAL;
    s.anneal.setpoint_c = setpoint_c;
    s.anneal.ramp_c_min = 30;
    s.anneal.dwell_min = 5;
    return s;
}

static const struct labconf_furnace_map *fmap(void)
{
    return &labconf_find_instrument(lab, "furnace")->map;
}

/* A status read with garbage in the PV: an error naming why, never a temperature. */
static void status_is_invalid(struct drv *fur, const char *rule, const char *want)
{
    struct drv_status st;
    struct ll_error err = {0};

    fault_rule(rule);
    assert_int_equal(drv_status(fur, &st, &err), DRV_EFAULT);
    if (!strstr(err.msg, want) || !strstr(err.msg, "INVALID PV"))
        fail_msg("%s: status error '%s', want '%s'", rule, err.msg, want);
    assert_true(isnan(st.temp_c));
    assert_non_null(strstr(st.text, "pv=INVALID"));
}

static void status_is_good(struct drv *fur)
{
    struct drv_status st;
    struct ll_error err = {0};

    if (drv_status(fur, &st, &err) != 0)
        fail_msg("status after the garbage: %s", err.msg);
    assert_true(isfinite(st.temp_c) && st.temp_c > 0.0 && st.temp_c < 210.0);
}

static void test_b8_pv_error_codes_are_invalid_never_a_temperature(void **state)
{
    struct drv *fur = open_instrument("furnace");
    char rule[96], want[64];
    long before = count_of("faults", "furnace.pv_error");
    (void)state;

    assert_string_equal(fmap()->name, "vendorb");
    for (unsigned code = 0x8002; code <= 0x8006; code++) {
        snprintf(rule, sizeof(rule), "furnace.pv_error:0x%04X@reg=%d", code, fmap()->pv);
        snprintf(want, sizeof(want), "PV error code 0x%04X", code);
        status_is_invalid(fur, rule, want);
        status_is_good(fur);
    }
    assert_int_equal(count_of("faults", "furnace.pv_error") - before, 5);
    drv_close(&fur);
}

static void test_b8_pv_error_code_during_an_anneal_fails_the_step(void **state)
{
    struct drv *fur = open_instrument("furnace");
    struct drv_step s = anneal(801, 100);
    struct drv_status st;
    struct ll_error err = {0};
    char rule[96];
    (void)state;

    assert_int_equal(drv_step_start(fur, &s, &err), 0);
    assert_int_equal(furnace_program(), 1); /* run */
    snprintf(rule, sizeof(rule), "furnace.pv_error:0x8003@reg=%d", fmap()->pv);
    fault_rule(rule);
    assert_int_equal(drv_step_poll(fur, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EFAULT);
    if (!strstr(st.reason, "INVALID PV: PV error code 0x8003 (map 'vendorb')"))
        fail_msg("reason '%s'", st.reason);
    assert_null(strstr(st.reason, "-3276")); /* the code as a number: never */
    assert_true(isnan(st.temp_c));
    assert_true(st.safe_commanded);
    assert_int_equal(furnace_program(), 0); /* reset: the safe state */
    drv_close(&fur);
}

static void test_b8_pv_outside_the_range_is_invalid(void **state)
{
    struct drv *fur = open_instrument("furnace");
    struct drv_step s = anneal(802, 100);
    struct drv_status st;
    struct ll_error err = {0};
    char rule[96];
    (void)state;

    /* -200.1 C: a number the old code would have called cool enough to load */
    snprintf(rule, sizeof(rule), "furnace.pv_raw:0xF82F@reg=%d", fmap()->pv);
    status_is_invalid(fur, rule, "raw 0xF82F (-200.1 C) is outside the range -200.0..1372.0 C");
    status_is_good(fur);
    snprintf(rule, sizeof(rule), "furnace.pv_raw:13721@reg=%d", fmap()->pv);
    status_is_invalid(fur, rule, "(1372.1 C) is outside the range");
    status_is_good(fur);

    assert_int_equal(drv_step_start(fur, &s, &err), 0);
    snprintf(rule, sizeof(rule), "furnace.pv_raw:30000@reg=%d", fmap()->pv);
    fault_rule(rule);
    assert_int_equal(drv_step_poll(fur, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EFAULT);
    if (!strstr(st.reason, "INVALID PV: PV raw 0x7530 (3000.0 C) is outside the range"))
        fail_msg("reason '%s'", st.reason);
    assert_true(st.safe_commanded);
    assert_int_equal(furnace_program(), 0);
    drv_close(&fur);
}

static void test_b8_undefined_program_state_is_invalid(void **state)
{
    struct drv *fur = open_instrument("furnace");
    struct drv_step s = anneal(803, 100);
    struct drv_status st;
    struct ll_error err = {0};
    char rule[96];
    (void)state;

    /* at a start: refused, nothing loaded, safe state */
    snprintf(rule, sizeof(rule), "furnace.bad_state:9@reg=%d", fmap()->program_status);
    fault_rule(rule);
    assert_int_equal(drv_step_start(fur, &s, &err), DRV_EFAULT);
    if (!strstr(err.msg,
                "INVALID program status: program status 9 is not a state of map "
                "'vendorb' (reset 1, run 2, hold 4, end 8); not started"))
        fail_msg("start: '%s'", err.msg);
    assert_int_equal(furnace_program(), 0);

    /* during the anneal: the step fails naming it */
    assert_int_equal(drv_step_start(fur, &s, &err), 0);
    assert_int_equal(furnace_program(), 1);
    snprintf(rule, sizeof(rule), "furnace.bad_state:0@reg=%d", fmap()->program_status);
    fault_rule(rule);
    assert_int_equal(drv_step_query(fur, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_UNKNOWN);
    assert_non_null(strstr(st.reason, "program status 0 is not a state of map 'vendorb'"));
    fault_rule(rule);
    assert_int_equal(drv_step_poll(fur, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EFAULT);
    if (!strstr(st.reason, "INVALID program status: program status 0 is not a state"))
        fail_msg("poll: '%s'", st.reason);
    assert_true(isfinite(st.temp_c)); /* the PV itself was good */
    assert_true(st.safe_commanded);
    assert_int_equal(furnace_program(), 0);
    status_is_good(fur);
    drv_close(&fur);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b8_pv_error_codes_are_invalid_never_a_temperature),
        cmocka_unit_test(test_b8_pv_error_code_during_an_anneal_fails_the_step),
        cmocka_unit_test(test_b8_pv_outside_the_range_is_invalid),
        cmocka_unit_test(test_b8_undefined_program_state_is_invalid),
    };
    return cmocka_run_group_tests(tests, start_labsim, stop_labsim);
}

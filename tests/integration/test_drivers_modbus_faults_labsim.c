/* test_drivers_modbus_faults_labsim — the Modbus rows of reliability.md §4 against labsim,
 * through the furnace (Modbus RTU on a pseudo-terminal) and robot (Modbus TCP) drivers:
 *
 *   F6  each exception code scripted on one function and register (`furnace.exception:CODE
 *       @fc=F@reg=R`, `robot.exception:CODE@fc=F`): 01/02 a configuration error, fatal for
 *       the instrument (later starts fail without I/O); 03 refused, the step fails naming the
 *       code; 04 an instrument fault with the safe state commanded (start and poll); 05 the
 *       request was taken and is polled, never sent again; 06 backed off and sent again; 0A/0B
 *       link problems, retried like no answer.
 *   F7  garbage on RTU: another slave's id, an echo of the request, a truncated frame and
 *       noise are classified (garbled / no answer) when they persist, and when they pass
 *       the value the driver returns is the register's true value.
 *   F5  a lost answer to a write of the furnace's start (each program register and RUN): labsim
 *       applies the write and drops the reply; the driver reads the register back instead of
 *       writing it again (the same rule given twice: the second stays armed until the test's
 *       own write of that register), and the program runs exactly once.
 *   F8  a late answer: the furnace answers a read of register A after the response time-out
 *       (and, as a serial device does, answers later requests in order behind it); the
 *       next read, of register B, returns B's value, not A's. The same for the robot over
 *       TCP, where libmodbus's transaction ids already reject the late answer.
 *
 * labsim (port 0, --speed 20, per-test runtime folder) is started in the group setup and
 * stopped in the teardown; faults are scripted over its control socket just before each
 * action, and its counts show what reached the instruments.
 */
#include "common/ll_time.h"
#include "drivers/driver.h"
#include "drivers/driver_internal.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "ll_test_labsim.h"

#include <jansson.h>
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
    labsim_pid = ll_test_labsim_start(20, 0, NULL, labsim_rt, sizeof(labsim_rt), &lab);
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

/* One request on labsim's control socket; returns the parsed answer (json_decref it). */
static json_t *control(json_t *req)
{
    return ll_test_labsim_control(zctx, labsim_rt, req);
}

/* Adds fault rules to labsim (docs/instruments.md §6). */
static void fault_rule(const char *rule)
{
    ll_test_labsim_fault_rule(zctx, labsim_rt, rule);
}

/* Arms fault name for the next count opportunities (0 disarms). */
static void fault_arm(const char *name, int count)
{
    json_t *rep = control(json_pack("{s:s,s:s,s:i}", "cmd", "fault", "name", name, "count", count));
    assert_true(json_is_true(json_object_get(rep, "ok")));
    json_decref(rep);
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

static int64_t budget(const struct drv *drv)
{
    return ll_monotonic_ms() + DRV_CALL_BUDGET(&drv->inst);
}

/* Reads one holding register of the furnace through mb.c; returns the DRV_E* code. */
static int read_reg(struct drv *drv, int addr, int64_t deadline_ms, uint16_t *v, struct ll_error *e)
{
    return drv__mb_read(drv, false, addr, 1, v, deadline_ms, e);
}

static void write_reg(struct drv *drv, int addr, uint16_t v)
{
    struct ll_error err = {0};
    if (drv__mb_write_reg(drv, addr, v, budget(drv), &err) != 0)
        fail_msg("writing furnace register %d: %s", addr, err.msg);
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

static struct drv_step dispense(uint32_t id)
{
    struct drv_step s;

    memset(&s, 0, sizeof(s));
    s.id = id;
    s.kind = DRV_STEP_DISPENSE;
    s.dispense.well = (int)(id % 96);
    s.dispense.volumes_ul[0] = 10;
    return s;
}

/* Runs a robot step to its end (the robot's jobs take a few hundred ms at --speed 20). */
static enum drv_step_state robot_wait(struct drv *drv, const struct drv_step *s)
{
    struct drv_status st;
    struct ll_error err = {0};
    int64_t deadline = ll_monotonic_ms() + 30000;

    while (ll_monotonic_ms() < deadline) {
        if (drv_step_poll(drv, s, &st, &err) == 0 && st.state != DRV_STEP_RUNNING)
            return st.state;
        usleep(50000);
    }
    return DRV_STEP_UNKNOWN;
}

static void test_f6_exceptions_01_02_are_configuration_errors_fatal_for_the_instrument(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace"), *rob = open_instrument("robot");
    struct drv_step s = anneal(601, 90);
    struct drv_status st;
    struct ll_error err = {0};
    long programs = count_of(NULL, "furnace_programs");
    char rule[96];
    (void)state;

    snprintf(rule, sizeof(rule), "furnace.exception:02@fc=3@reg=%d", m->status);
    fault_rule(rule);
    assert_int_equal(drv_status(fur, &st, &err), DRV_ECONFIG);
    assert_non_null(strstr(err.msg, "exception 02: illegal data address"));
    assert_non_null(strstr(err.msg, "a configuration error"));
    assert_non_null(strstr(err.msg, "register map"));
    /* fatal: the next start is refused before anything is sent */
    assert_int_equal(drv_step_start(fur, &s, &err), DRV_ECONFIG);
    assert_non_null(strstr(err.msg, "nothing sent"));
    assert_int_equal(count_of(NULL, "furnace_programs"), programs);
    /* ... until the driver is opened again (the lab definition fixed) */
    drv_close(&fur);
    fur = open_instrument("furnace");
    assert_int_equal(drv_status(fur, &st, &err), 0);

    fault_rule("robot.exception:01@fc=4");
    assert_int_equal(drv_status(rob, &st, &err), DRV_ECONFIG);
    assert_non_null(strstr(err.msg, "exception 01: illegal function"));
    assert_non_null(strstr(err.msg, "a configuration error"));
    s = dispense(601);
    assert_int_equal(drv_step_start(rob, &s, &err), DRV_ECONFIG);
    assert_int_equal(count_of("robot_jobs", "601"), 0);
    drv_close(&fur);
    drv_close(&rob);
}

static void test_f6_exception_03_is_refused_and_the_step_fails_naming_it(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace"), *rob = open_instrument("robot");
    struct drv_step s = anneal(602, 95);
    struct ll_error err = {0};
    long programs = count_of(NULL, "furnace_programs");
    char rule[96];
    (void)state;

    snprintf(rule, sizeof(rule), "furnace.exception:03@fc=6@reg=%d", m->seg_target);
    fault_rule(rule);
    assert_int_equal(drv_step_start(fur, &s, &err), DRV_EREFUSED);
    assert_non_null(strstr(err.msg, "refused (exception 03: illegal data value)"));
    assert_int_equal(count_of(NULL, "furnace_programs"), programs);

    fault_rule("robot.exception:03@fc=16");
    s = dispense(602);
    assert_int_equal(drv_step_start(rob, &s, &err), DRV_EREFUSED);
    assert_non_null(strstr(err.msg, "refused (exception 03: illegal data value)"));
    assert_int_equal(count_of("robot_jobs", "602"), 0);
    drv_close(&fur);
    drv_close(&rob);
}

static void test_f6_exception_04_is_an_instrument_fault_and_commands_the_safe_state(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace"), *rob = open_instrument("robot");
    struct drv_step s = anneal(603, 100);
    struct drv_status st;
    struct ll_error err = {0};
    char rule[96];
    (void)state;

    /* during an anneal: the poll's read of the status word is answered 04 */
    assert_int_equal(drv_step_start(fur, &s, &err), 0);
    assert_int_equal(furnace_program(), 1); /* run */
    snprintf(rule, sizeof(rule), "furnace.exception:04@fc=3@reg=%d", m->status);
    fault_rule(rule);
    assert_int_equal(drv_step_poll(fur, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EFAULT);
    assert_non_null(strstr(st.reason, "instrument fault (exception 04: server device failure)"));
    assert_true(st.safe_commanded);
    assert_int_equal(furnace_program(), 0); /* reset: the safe state */

    /* at a start: the job block is answered 04 */
    fault_rule("robot.exception:04@fc=16");
    s = dispense(603);
    assert_int_equal(drv_step_start(rob, &s, &err), DRV_EFAULT);
    assert_non_null(strstr(err.msg, "instrument fault (exception 04"));
    assert_non_null(strstr(err.msg, "safe state commanded"));
    assert_int_equal(count_of("robot_jobs", "603"), 0);
    drv_close(&fur);
    drv_close(&rob);
}

static void test_f6_exception_05_is_polled_and_06_backed_off_and_resent(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace"), *rob = open_instrument("robot");
    struct drv_step s = anneal(604, 105);
    struct ll_error err = {0};
    long programs = count_of(NULL, "furnace_programs");
    long hits = count_of("faults", "furnace.exception");
    long robot_hits = count_of("faults", "robot.exception");
    char rule[160];
    (void)state;

    /* 05 on the target (applied by the controller, answered "acknowledge"), 06 on the rate
     * (not applied, answered "busy") */
    snprintf(rule,
             sizeof(rule),
             "furnace.exception:05@fc=6@reg=%d,furnace.exception:06@fc=6@reg=%d",
             m->seg_target,
             m->seg_rate);
    fault_rule(rule);
    if (drv_step_start(fur, &s, &err) != 0)
        fail_msg("anneal with 05 and 06: %s", err.msg);
    assert_int_equal(count_of("faults", "furnace.exception"), hits + 2);
    assert_int_equal(count_of(NULL, "furnace_programs"), programs + 1);
    assert_int_equal(furnace_program(), 1);
    assert_int_equal(drv_safe(fur, &err), 0);

    /* robot: 06 to the job block, then 05 to the next one; each job runs once */
    fault_rule("robot.exception:06@fc=16");
    s = dispense(604);
    if (drv_step_start(rob, &s, &err) != 0)
        fail_msg("job with 06: %s", err.msg);
    assert_int_equal(robot_wait(rob, &s), DRV_STEP_DONE);
    assert_int_equal(count_of("robot_jobs", "604"), 1);
    fault_rule("robot.exception:05@fc=16");
    s = dispense(605);
    if (drv_step_start(rob, &s, &err) != 0)
        fail_msg("job with 05: %s", err.msg);
    assert_int_equal(robot_wait(rob, &s), DRV_STEP_DONE);
    assert_int_equal(count_of("robot_jobs", "605"), 1);
    assert_int_equal(count_of("faults", "robot.exception"), robot_hits + 2);
    drv_close(&fur);
    drv_close(&rob);
}

static void test_f6_exceptions_0A_0B_are_link_problems_and_retried(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace"), *rob = open_instrument("robot");
    struct drv_status st;
    struct ll_error err = {0};
    long hits = count_of("faults", "furnace.exception");
    long robot_hits = count_of("faults", "robot.exception");
    char rule[160];
    (void)state;

    snprintf(rule,
             sizeof(rule),
             "furnace.exception:0A@fc=3@reg=%d,furnace.exception:0B@fc=3@reg=%d",
             m->pv,
             m->pv);
    fault_rule(rule);
    if (drv_status(fur, &st, &err) != 0)
        fail_msg("furnace status with 0A and 0B: %s", err.msg);
    assert_int_equal(count_of("faults", "furnace.exception"), hits + 2);
    fault_rule("robot.exception:0A@fc=4,robot.exception:0B@fc=4");
    if (drv_status(rob, &st, &err) != 0)
        fail_msg("robot status with 0A and 0B: %s", err.msg);
    assert_int_equal(count_of("faults", "robot.exception"), robot_hits + 2);
    drv_close(&fur);
    drv_close(&rob);
}

static void test_f7_garbage_on_rtu_is_classified_and_never_used(void **state)
{
    static const struct {
        const char *fault;
        int kind; /* when it persists */
    } faults[] = {
        {"furnace.wrong_slave", DRV_EPROTO   },
        {"furnace.echo",        DRV_EPROTO   },
        {"furnace.truncated",   DRV_ETIMEDOUT},
        {"furnace.garbage",     0            }, /* random bytes: garbled or too short */
    };
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace");
    struct ll_error err = {0};
    uint16_t v = 0;
    char rule[96];
    (void)state;

    write_reg(fur, m->sp_rate, 123);
    write_reg(fur, m->alarm1, 2050);
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
        long hits = count_of("faults", faults[i].fault);
        /* persisting for 0.8 s: classified */
        fault_arm(faults[i].fault, 1000);
        int r = read_reg(fur, m->sp_rate, ll_monotonic_ms() + 800, &v, &err);
        fault_arm(faults[i].fault, 0);
        if (faults[i].kind ? r != faults[i].kind : r != DRV_EPROTO && r != DRV_ETIMEDOUT)
            fail_msg("%s persisting: %d (%s)", faults[i].fault, r, err.msg);
        assert_true(count_of("faults", faults[i].fault) > hits);
        /* once, on one read: retried, and the value read is the register's */
        snprintf(rule, sizeof(rule), "%s@fc=3@reg=%d", faults[i].fault, m->sp_rate);
        fault_rule(rule);
        hits = count_of("faults", faults[i].fault);
        v = 0;
        if (read_reg(fur, m->sp_rate, budget(fur), &v, &err) != 0)
            fail_msg("%s once: %s", faults[i].fault, err.msg);
        assert_int_equal(v, 123);
        assert_int_equal(count_of("faults", faults[i].fault), hits + 1);
        /* and the next transaction gets its own answer */
        assert_int_equal(read_reg(fur, m->alarm1, budget(fur), &v, &err), 0);
        assert_int_equal(v, 2050);
    }
    drv_close(&fur);
}

static void test_f5_lost_answer_to_a_start_write_is_read_back_never_resent(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace");
    const struct {
        const char *name;
        int reg;
    } regs[] = {
        {"setpoint rate",        m->sp_rate       },
        {"segment target",       m->seg_target    },
        {"segment rate",         m->seg_rate      },
        {"segment dwell",        m->seg_dwell     },
        {"end type",             m->end_type      },
        {"program status (RUN)", m->program_status}
    };
    (void)state;

    for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
        struct drv_step s = anneal(550 + (uint32_t)i, 100 + (double)i);
        struct ll_error err = {0};
        long programs = count_of(NULL, "furnace_programs");
        long lost = count_of("faults", "furnace.no_reply");
        char rule[160];
        uint16_t v = 0;

        snprintf(rule,
                 sizeof(rule),
                 "furnace.no_reply@fc=6@reg=%d,furnace.no_reply@fc=6@reg=%d",
                 regs[i].reg,
                 regs[i].reg);
        fault_rule(rule);
        if (drv_step_start(fur, &s, &err) != 0)
            fail_msg("start with the answer to the %s write lost: %s", regs[i].name, err.msg);
        assert_int_equal(count_of("faults", "furnace.no_reply"), lost + 1);
        assert_int_equal(count_of(NULL, "furnace_programs"), programs + 1);
        assert_int_equal(furnace_program(), 1); /* run */
        /* never written again: the second rule is still armed, and the test's own write of
         * the same value (its answer lost too, read back) uses it up */
        assert_int_equal(read_reg(fur, regs[i].reg, budget(fur), &v, &err), 0);
        assert_int_equal(drv__mb_write_reg(fur, regs[i].reg, v, budget(fur), &err), 0);
        assert_int_equal(count_of("faults", "furnace.no_reply"), lost + 2);
        assert_int_equal(drv_safe(fur, &err), 0);
        assert_int_equal(furnace_program(), 0); /* reset */
    }
    drv_close(&fur);
}

static void test_f8_late_answer_to_a_is_never_read_as_b_rtu(void **state)
{
    const struct labconf_furnace_map *m = &labconf_find_instrument(lab, "furnace")->map;
    struct drv *fur = open_instrument("furnace");
    struct ll_error err = {0};
    uint16_t v = 0;
    int a = m->sp_rate, b = m->alarm1;
    int timeout_ms = fur->inst.response_timeout_ms;
    char rule[96];
    (void)state;

    write_reg(fur, a, 111);
    write_reg(fur, b, 1999);
    /* the answer to A comes 400 ms after the driver gave up on it, while it waits for B's */
    snprintf(rule, sizeof(rule), "furnace.late:%d@fc=3@reg=%d", timeout_ms + 400, a);
    fault_rule(rule);
    int r = read_reg(fur, a, ll_monotonic_ms() + timeout_ms + 50, &v, &err);
    if (r != DRV_ETIMEDOUT)
        fail_msg("read of A with a late answer: %d (%s)", r, err.msg);
    v = 0;
    if (read_reg(fur, b, budget(fur), &v, &err) != 0)
        fail_msg("read of B after A's late answer: %s", err.msg);
    assert_int_equal(v, 1999); /* A holds 111 */
    assert_int_equal(read_reg(fur, a, budget(fur), &v, &err), 0);
    assert_int_equal(v, 111);
    assert_int_equal(count_of("faults", "furnace.late"), 1);
    drv_close(&fur);
}

static void test_f8_late_answer_to_a_is_never_read_as_b_tcp(void **state)
{
    struct drv *rob = open_instrument("robot");
    struct ll_error err = {0};
    int base = rob->inst.base, timeout_ms = rob->inst.response_timeout_ms;
    uint16_t a[8], b[8], want_b[8];
    char rule[96];
    (void)state;

    /* A = input registers 0..7 (state, job ids), B = 11..18 (reservoir levels): one function,
     * one length, different values */
    assert_int_equal(drv__mb_read(rob, true, base + 0, 8, a, budget(rob), &err), 0);
    assert_int_equal(drv__mb_read(rob, true, base + 11, 8, want_b, budget(rob), &err), 0);
    assert_memory_not_equal(a, want_b, sizeof(a));
    snprintf(rule, sizeof(rule), "robot.late:%d@fc=4@reg=%d", timeout_ms + 400, base + 0);
    fault_rule(rule);
    int r = drv__mb_read(rob, true, base + 0, 8, a, ll_monotonic_ms() + timeout_ms + 50, &err);
    if (r != DRV_ETIMEDOUT)
        fail_msg("read of A with a late answer: %d (%s)", r, err.msg);
    memset(b, 0, sizeof(b));
    if (drv__mb_read(rob, true, base + 11, 8, b, budget(rob), &err) != 0)
        fail_msg("read of B after A's late answer: %s", err.msg);
    assert_memory_equal(b, want_b, sizeof(b));
    assert_int_equal(count_of("faults", "robot.late"), 1);
    drv_close(&rob);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_f6_exceptions_01_02_are_configuration_errors_fatal_for_the_instrument),
        cmocka_unit_test(test_f6_exception_03_is_refused_and_the_step_fails_naming_it),
        cmocka_unit_test(test_f6_exception_04_is_an_instrument_fault_and_commands_the_safe_state),
        cmocka_unit_test(test_f6_exception_05_is_polled_and_06_backed_off_and_resent),
        cmocka_unit_test(test_f6_exceptions_0A_0B_are_link_problems_and_retried),
        cmocka_unit_test(test_f7_garbage_on_rtu_is_classified_and_never_used),
        cmocka_unit_test(test_f5_lost_answer_to_a_start_write_is_read_back_never_resent),
        cmocka_unit_test(test_f8_late_answer_to_a_is_never_read_as_b_rtu),
        cmocka_unit_test(test_f8_late_answer_to_a_is_never_read_as_b_tcp),
    };
    return cmocka_run_group_tests(tests, start_labsim, stop_labsim);
}

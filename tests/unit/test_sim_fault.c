/* sim_fault: fault specs parse strictly, scripts fire exactly where they say (@n, @job, and
 * for Modbus requests @fc and @reg, combined), with their argument (an exception code, a
 * delay); rates are reproducible from the seed and independent per fault name. */
#include "ll_test.h"
#include "simulators/sim_fault.h"

#include <errno.h>
#include <string.h>

static void test_sim_fault_spec_errors_name_the_rule(void **state)
{
    (void)state;
    struct sim_faults f;
    struct ll_error err = {0};
    assert_int_equal(
        sim_faults_init(&f, "robot.no_reply=0.1,coater.err@n=3,robot.exception@job=7", 1, &err), 0);
    assert_int_equal(f.n_rules, 3);
    assert_int_equal(sim_faults_init(&f, "", 1, &err), 0);
    assert_int_equal(sim_faults_init(&f, NULL, 1, &err), 0);
    assert_int_equal(sim_faults_init(&f, "robot.sneeze=0.1", 1, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "unknown fault 'robot.sneeze'"));
    assert_int_equal(sim_faults_init(&f, "robot.no_reply=1.5", 1, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not in [0, 1]"));
    assert_int_equal(sim_faults_init(&f, "robot.no_reply", 1, &err), -EINVAL);
    assert_int_equal(sim_faults_init(&f, "robot.no_reply@n=0", 1, &err), -EINVAL);
    assert_int_equal(sim_faults_init(&f, "robot.no_reply@when=3", 1, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "unknown trigger"));
}

static void test_sim_fault_scripts_fire_exactly_once(void **state)
{
    (void)state;
    struct sim_faults f;
    assert_int_equal(sim_faults_init(&f, "robot.no_reply@n=3,robot.exception@job=42", 9, NULL), 0);
    int fired[10];
    for (int i = 0; i < 10; i++)
        fired[i] = sim_fault_check(&f, "robot.no_reply", NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(fired[i], i == 2);
    assert_int_equal(sim_fault_check(&f, "robot.exception", "41"), 0);
    assert_int_equal(sim_fault_check(&f, "robot.exception", NULL), 0);
    assert_int_equal(sim_fault_check(&f, "robot.exception", "42"), 1);
    assert_int_equal(sim_fault_check(&f, "robot.exception", "42"), 0); /* the retry passes */
    assert_int_equal(sim_fault_arm(&f, "coater.err", 2), 0);
    assert_int_equal(sim_fault_check(&f, "coater.err", NULL), 1);
    assert_int_equal(sim_fault_check(&f, "coater.err", NULL), 1);
    assert_int_equal(sim_fault_check(&f, "coater.err", NULL), 0);
    assert_int_equal(sim_fault_arm(&f, "nope", 1), -EINVAL);
}

static void test_sim_fault_rates_reproducible_per_name(void **state)
{
    (void)state;
    struct sim_faults a, b, c;
    const char *spec = "robot.no_reply=0.3,station.drop=0.5";
    assert_int_equal(sim_faults_init(&a, spec, 5, NULL), 0);
    assert_int_equal(sim_faults_init(&b, spec, 5, NULL), 0);
    assert_int_equal(sim_faults_init(&c, spec, 6, NULL), 0);
    int hits = 0, same_c = 1;
    for (int i = 0; i < 1000; i++) {
        /* b sees extra station traffic: robot faults must not shift */
        if (i % 3 == 0)
            sim_fault_check(&b, "station.drop", NULL);
        int x = sim_fault_check(&a, "robot.no_reply", NULL);
        assert_int_equal(sim_fault_check(&b, "robot.no_reply", NULL), x);
        if (sim_fault_check(&c, "robot.no_reply", NULL) != x)
            same_c = 0;
        hits += x;
    }
    assert_false(same_c);
    assert_true(hits > 250 && hits < 350); /* 0.3 of 1000, about 5 sd either side */
    assert_int_equal(a.names[1].hits + a.names[0].hits >= hits, 1);
}

static void test_sim_fault_modbus_triggers_and_arguments(void **state)
{
    (void)state;
    struct sim_faults f;
    struct ll_error err = {0};
    long arg = 0;
    struct sim_fault_at read75 = {.fc = 3, .addr = 75, .count = 1};
    struct sim_fault_at read70_80 = {.fc = 3, .addr = 70, .count = 10};
    struct sim_fault_at write75 = {.fc = 6, .addr = 75, .count = 1};
    struct sim_fault_at read2 = {.fc = 3, .addr = 2, .count = 1};

    assert_int_equal(sim_faults_init(&f,
                                     "furnace.exception:02@fc=3@reg=75,furnace.exception:0B@reg=75,"
                                     "furnace.late:800@fc=3,furnace.exception=0",
                                     3,
                                     &err),
                     0);
    /* a write of 75 is not a read: only the @reg rule without @fc fires, with its code */
    assert_int_equal(sim_fault_check_at(&f, "furnace.exception", &write75, &arg), 1);
    assert_int_equal(arg, 0x0B);
    assert_int_equal(sim_fault_check_at(&f, "furnace.exception", &read2, &arg), 0);
    assert_int_equal(arg, -1);
    /* a read of 70..79 covers 75 */
    assert_int_equal(sim_fault_check_at(&f, "furnace.exception", &read70_80, &arg), 1);
    assert_int_equal(arg, 0x02);
    assert_int_equal(sim_fault_check_at(&f, "furnace.exception", &read75, &arg), 0);
    assert_int_equal(sim_fault_check_at(&f, "furnace.late", &read75, &arg), 1);
    assert_int_equal(arg, 800);
    assert_int_equal(sim_fault_check(&f, "furnace.late", NULL), 0);

    /* a rule given twice fires at two matching opportunities, one each */
    assert_int_equal(
        sim_faults_init(&f, "robot.exception:06@fc=16,robot.exception:06@fc=16", 3, &err), 0);
    struct sim_fault_at fc16 = {.fc = 16, .addr = 0, .count = 18};
    assert_int_equal(sim_fault_check_at(&f, "robot.exception", &fc16, &arg), 1);
    assert_int_equal(arg, 6);
    assert_int_equal(sim_fault_check_at(&f, "robot.exception", &fc16, &arg), 1);
    assert_int_equal(sim_fault_check_at(&f, "robot.exception", &fc16, &arg), 0);

    /* added at run time (the control socket), errors keep nothing */
    assert_int_equal(sim_faults_add(&f, "furnace.echo@reg=1", &err), 0);
    assert_int_equal(f.n_rules, 3);
    assert_int_equal(sim_faults_add(&f, "furnace.echo@reg=1,furnace.echo:5@n=1", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "furnace.echo takes no argument"));
    assert_int_equal(f.n_rules, 3);
    assert_int_equal(sim_faults_add(&f, "furnace.exception:2@n=1", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "two hex digits"));
    assert_int_equal(sim_faults_add(&f, "furnace.exception:XY@n=1", &err), -EINVAL);
    assert_int_equal(sim_faults_add(&f, "furnace.late:abc@n=1", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "delay in ms"));
    assert_int_equal(sim_faults_add(&f, "furnace.late@reg=70000", &err), -EINVAL);
    assert_int_equal(sim_faults_add(&f, "furnace.late@fc=0", &err), -EINVAL);
    assert_int_equal(sim_faults_add(&f, "furnace.late@fc", &err), -EINVAL);
    assert_int_equal(sim_faults_add(&f, "furnace.late=0.5@n=1", &err), -EINVAL);
    assert_int_equal(f.n_rules, 3);
}

/* The garbage faults of the furnace (reliability.md B8) take a register value, decimal or
 * 0x hex, 0..65535. */
static void test_sim_fault_register_value_arguments(void **state)
{
    (void)state;
    struct sim_faults f;
    struct ll_error err = {0};
    long arg = 0;
    struct sim_fault_at read_pv = {.fc = 3, .addr = 4096, .count = 1};

    assert_int_equal(sim_faults_init(&f,
                                     "furnace.pv_error:0x8003@reg=4096,furnace.pv_raw:65535@n=1,"
                                     "furnace.bad_state@reg=4101",
                                     3,
                                     &err),
                     0);
    assert_int_equal(sim_fault_check_at(&f, "furnace.pv_error", &read_pv, &arg), 1);
    assert_int_equal(arg, 0x8003);
    assert_int_equal(sim_fault_check_at(&f, "furnace.pv_raw", &read_pv, &arg), 1);
    assert_int_equal(arg, 65535);
    assert_int_equal(sim_fault_check_at(&f, "furnace.bad_state", &read_pv, &arg), 0);
    read_pv.addr = 4101;
    assert_int_equal(sim_fault_check_at(&f, "furnace.bad_state", &read_pv, &arg), 1);
    assert_int_equal(arg, -1); /* labsim's default: 9 */
    assert_int_equal(sim_faults_add(&f, "furnace.pv_error:0x10000@n=1", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "is not a register value"));
    assert_int_equal(sim_faults_add(&f, "furnace.bad_state:-1@n=1", &err), -EINVAL);
    assert_int_equal(sim_faults_add(&f, "furnace.pv_raw:12x@n=1", &err), -EINVAL);
    assert_int_equal(sim_faults_add(&f, "furnace.pv_error:0x8006=1", &err), 0);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_fault_spec_errors_name_the_rule),
        cmocka_unit_test(test_sim_fault_scripts_fire_exactly_once),
        cmocka_unit_test(test_sim_fault_rates_reproducible_per_name),
        cmocka_unit_test(test_sim_fault_modbus_triggers_and_arguments),
        cmocka_unit_test(test_sim_fault_register_value_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

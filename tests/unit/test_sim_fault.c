/* sim_fault: fault specs parse strictly, scripts fire exactly where they say, rates are
 * reproducible from the seed and independent per fault name. */
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

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_fault_spec_errors_name_the_rule),
        cmocka_unit_test(test_sim_fault_scripts_fire_exactly_once),
        cmocka_unit_test(test_sim_fault_rates_reproducible_per_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* sim_robot: the job state machine of hardware.md §3.3 as labsim implements it — block CRC,
 * replay, pause/resume/abort, coils, dry run, reservoir levels, sample moves. (The same map
 * over the network, with pymodbus, is tests/integration/test_labsim_instruments.py.) */
#include "common/ll_crc.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "simulators/sim_robot.h"

#include <string.h>

static struct labconf *lab;
static struct sim_lab slab;
static struct sim_robot r;
static uint16_t next_flags; /* FLAGS of the next start() */

static int setup(void **state)
{
    (void)state;
    if (labconf_load_default(&lab, NULL) != 0)
        return -1;
    sim_lab_init(&slab, SIM_WORLD_PEROVSKITE, labconf_find_instrument(lab, "robot"));
    sim_robot_init(&r, 500.0, 1000.0, &slab, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sim_robot_free(&r);
    sim_lab_free(&slab);
    labconf_free(&lab);
    return 0;
}

static int
start(uint32_t job, int action, int plate, int well, int source, double vol1, int with_crc)
{
    uint16_t b[SIM_ROBOT_N_HOLDING] = {(uint16_t)(job >> 16),
                                       (uint16_t)job,
                                       (uint16_t)action,
                                       0,
                                       (uint16_t)plate,
                                       (uint16_t)well,
                                       (uint16_t)source,
                                       (uint16_t)(vol1 * 10)};
    b[SIM_ROBOT_REG_FLAGS] = next_flags;
    if (with_crc) {
        uint8_t bytes[32];
        for (int i = 0; i < 16; i++) {
            bytes[2 * i] = (uint8_t)(b[i] >> 8);
            bytes[2 * i + 1] = (uint8_t)b[i];
        }
        b[SIM_ROBOT_REG_CRC] = (uint16_t)(ll_crc16_modbus(bytes, 32) ^ (with_crc == 2 ? 1 : 0));
    }
    b[SIM_ROBOT_REG_COMMAND] = 1;
    return sim_robot_write_registers(&r, 0, b, SIM_ROBOT_N_HOLDING);
}

static int command(int cmd)
{
    uint16_t v = (uint16_t)cmd;
    return sim_robot_write_registers(&r, SIM_ROBOT_REG_COMMAND, &v, 1);
}

static void test_sim_robot_jobs_and_states(void **state)
{
    (void)state;
    assert_int_equal(start(1, 1, 0, 10, 0, 100.0, 2), 3); /* CRC mismatch */
    assert_int_equal(r.state, SIM_ROBOT_IDLE);
    assert_int_equal(start(1, 1, 0, 10, 0, 100.0, 1), 0);
    assert_int_equal(r.state, SIM_ROBOT_BUSY);
    assert_int_equal(command(4), 0); /* PAUSE: the clock stops */
    sim_robot_advance(&r, 100.0);
    assert_int_equal(r.state, SIM_ROBOT_PAUSED);
    assert_int_equal(start(2, 3, 0, 0, 0, 0, 0), 6);
    assert_int_equal(command(5), 0);
    sim_robot_advance(&r, 3.0);
    assert_int_equal(r.state, SIM_ROBOT_DONE);
    assert_non_null(slab.samples[10]);
    ll_assert_close(r.level_ml[0], 49.9, 1e-12, 0);
    /* dispensing into the same well again: error 14 */
    assert_int_equal(start(2, 1, 0, 10, 0, 10.0, 0), 0);
    sim_robot_advance(&r, 10.0);
    assert_int_equal(r.state, SIM_ROBOT_ERROR);
    assert_int_equal(r.last_result, 14);
    assert_int_equal(start(3, 3, 0, 0, 0, 0, 0), 4);
    assert_int_equal(sim_robot_write_coil(&r, 2, 1), 0); /* RESET_ERROR */
    assert_int_equal(r.state, SIM_ROBOT_IDLE);
    /* abort: ends with 40, the move does not happen */
    assert_int_equal(start(3, 2, 1, 10, 0, 0, 0), 0);
    assert_int_equal(sim_robot_write_coil(&r, 1, 1), 0);
    assert_int_equal(r.last_result, 40);
    assert_int_equal(slab.samples[10]->slot, 0);
    assert_int_equal(command(3), 0);
    /* coil PARK_SAFE runs a PARK_SAFE job with the current job id (3 was accepted: no-op) */
    assert_int_equal(sim_robot_write_coil(&r, 5, 1), 0);
    assert_int_equal(r.accepted_job, 3);
    assert_int_equal(start(4, 2, 1, 10, 0, 0, 0), 0);
    sim_robot_advance(&r, 3.0);
    assert_int_equal(r.last_result, 0);
    assert_int_equal(slab.samples[10]->slot, 1);
    /* the coater is occupied now */
    assert_int_equal(sim_lab_dispense(&slab, 11, (double[8]){10}), 0);
    assert_int_equal(start(5, 2, 1, 11, 0, 0, 0), 0);
    sim_robot_advance(&r, 3.0);
    assert_int_equal(r.last_result, 14);
    assert_int_equal(command(3), 0);
    /* a dry run changes nothing */
    next_flags = 4;
    assert_int_equal(start(6, 2, 0, 10, 1, 0, 0), 0);
    next_flags = 0;
    sim_robot_advance(&r, 3.0);
    assert_int_equal(r.last_result, 0);
    assert_int_equal(slab.samples[10]->slot, 1);
    /* the job table counted each accepted job once */
    assert_int_equal(r.n_jobs, 6);
    for (int i = 0; i < r.n_jobs; i++)
        assert_int_equal(r.jobs[i].n, 1);
}

static void test_sim_robot_reservoir_runs_dry(void **state)
{
    (void)state;
    r.level_ml[0] = 0.05;
    assert_int_equal(start(100, 1, 0, 20, 0, 100.0, 0), 0);
    sim_robot_advance(&r, 5.0);
    assert_int_equal(r.last_result, 11);
    assert_null(slab.samples[20]);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_robot_jobs_and_states),
        cmocka_unit_test(test_sim_robot_reservoir_runs_dry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

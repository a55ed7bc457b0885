/* test_drv_furnace — the furnace driver against labsim's own controller (sim_furnace) served
 * on a pseudo-terminal pair by a thread of this test, simulated time running at SPEED times
 * real time. It checks that the two agree on the program-end status bit (B9 on a 3200,
 * docs/instruments.md §2):
 *   - an anneal with end type reset that is already over (back in reset, B9 set) before the
 *     driver's first poll is done, on both maps of lab.conf;
 *   - an operator's reset mid-anneal (program back in reset, B9 clear because the start of the
 *     program cleared it) is a failed step with that reason, safe state commanded, even when
 *     B9 was left set by an earlier program; query then says unknown, not done.
 */
#include "common/ll_crc.h"
#include "common/ll_time.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "simulators/sim_furnace.h"

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define SPEED 100.0 /* simulated seconds per real second */

struct server {
    int master;
    char slave_path[64];
    pthread_t thread;
    pthread_mutex_t lock;
    bool stop;
    struct sim_furnace sim;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    int64_t last = ll_monotonic_ms();

    for (;;) {
        struct pollfd p = {.fd = s->master, .events = POLLIN};
        uint8_t in[512], out[2048];
        ssize_t n = 0;
        size_t nout = 0;
        int pr = poll(&p, 1, 10);

        if (pr > 0 && (p.revents & POLLIN))
            n = read(s->master, in, sizeof(in));
        pthread_mutex_lock(&s->lock);
        if (s->stop) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        int64_t now = ll_monotonic_ms();
        if (now > last) {
            sim_furnace_step(&s->sim, (double)(now - last) / 1000.0 * SPEED);
            last = now;
        }
        if (n > 0)
            nout = sim_furnace_feed(&s->sim, in, (size_t)n, out, sizeof(out));
        pthread_mutex_unlock(&s->lock);
        if (nout > 0 && write(s->master, out, nout) != (ssize_t)nout)
            return NULL;
    }
}

static struct labconf_instrument furnace_inst(const char *map)
{
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    struct labconf_instrument in;

    assert_int_equal(labconf_load_default(&lab, &err), 0);
    in = *labconf_find_instrument(lab, "furnace");
    const struct labconf_furnace_map *m = labconf_find_map(lab, map);
    assert_non_null(m);
    in.map = *m;
    labconf_free(&lab);
    in.response_timeout_ms = 200;
    in.poll_ms = 20;
    return in;
}

static struct server *server_start(const struct labconf_instrument *inst)
{
    struct server *s = calloc(1, sizeof(*s));
    struct termios t;

    assert_non_null(s);
    s->master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(s->master >= 0);
    assert_int_equal(grantpt(s->master), 0);
    assert_int_equal(unlockpt(s->master), 0);
    snprintf(s->slave_path, sizeof(s->slave_path), "%s", ptsname(s->master));
    tcgetattr(s->master, &t);
    cfmakeraw(&t);
    tcsetattr(s->master, TCSANOW, &t);
    sim_furnace_init(&s->sim, inst, 3, NULL);
    pthread_mutex_init(&s->lock, NULL);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return s;
}

static void server_stop(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    close(s->master);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Writes register addr on the controller's "front panel" (an FC06 frame handed to the
 * simulated controller directly, not over the driver's line). */
static void panel_write(struct server *s, int addr, int value)
{
    uint8_t frame[8] = {(uint8_t)s->sim.slave,
                        6,
                        (uint8_t)(addr >> 8),
                        (uint8_t)addr,
                        (uint8_t)(value >> 8),
                        (uint8_t)value},
            out[300];
    uint16_t crc = ll_crc16_modbus(frame, 6);

    frame[6] = (uint8_t)(crc & 0xFF);
    frame[7] = (uint8_t)(crc >> 8);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(sim_furnace_handle(&s->sim, frame, sizeof(frame), out, sizeof(out)), 8);
    pthread_mutex_unlock(&s->lock);
}

static uint16_t sim_status(struct server *s, int *program)
{
    pthread_mutex_lock(&s->lock);
    uint16_t st = sim_furnace_status(&s->sim);
    if (program)
        *program = (int)s->sim.program;
    pthread_mutex_unlock(&s->lock);
    return st;
}

static struct drv_step anneal_step(uint32_t id, double dwell_min)
{
    struct drv_step st;

    memset(&st, 0, sizeof(st));
    st.id = id;
    st.kind = DRV_STEP_ANNEAL;
    st.anneal.setpoint_c = 60.0;
    st.anneal.ramp_c_min = 30.0;
    st.anneal.dwell_min = dwell_min;
    return st;
}

static enum drv_step_state
wait_end(struct drv *drv, const struct drv_step *step, struct drv_status *st)
{
    struct ll_error err = {0};
    int64_t deadline = ll_monotonic_ms() + 10000;

    while (ll_monotonic_ms() < deadline) {
        assert_int_equal(drv_step_poll(drv, step, st, &err), 0);
        if (st->state != DRV_STEP_RUNNING)
            return st->state;
        usleep(20000);
    }
    fail_msg("step %u did not end", (unsigned)step->id);
    return DRV_STEP_UNKNOWN;
}

static void test_furnace_program_end_bit_marks_done(void **state)
{
    (void)state;
    const char *maps[] = {"eurotherm3216", "vendorb"};

    for (int k = 0; k < 2; k++) {
        struct labconf_instrument in = furnace_inst(maps[k]);
        struct server *s = server_start(&in);
        struct drv *drv = NULL;
        struct drv_status st;
        struct ll_error err = {0};
        struct drv_step step = anneal_step(5, 0.1); /* 70 s ramp + 6 s dwell, simulated */
        int program = -1;

        snprintf(in.device, sizeof(in.device), "%s", s->slave_path);
        assert_int_equal(drv_open(&in, &drv, &err), 0);
        assert_int_equal(drv_step_start(drv, &step, &err), 0);
        assert_false(sim_status(s, NULL) & (1u << in.map.status_bits.program_end));
        /* the program is over before the driver's first poll */
        int64_t deadline = ll_monotonic_ms() + 10000;
        while (!(sim_status(s, &program) & (1u << in.map.status_bits.program_end))) {
            assert_true(ll_monotonic_ms() < deadline);
            usleep(20000);
        }
        assert_int_equal(program, SIM_PROG_RESET); /* end type reset */
        assert_int_equal(wait_end(drv, &step, &st), DRV_STEP_DONE);
        assert_non_null(strstr(st.reason, "ended"));
        assert_int_equal(drv_step_query(drv, &step, &st, &err), 0);
        assert_int_equal(st.state, DRV_STEP_DONE);
        drv_close(&drv);
        pthread_mutex_lock(&s->lock);
        long runs = s->sim.programs_run;
        pthread_mutex_unlock(&s->lock);
        assert_int_equal(runs, 1);
        server_stop(s);
    }
}

/* X2: a ramp of 0 ("at once": the rate register's 0 means unlimited), below one raw unit,
 * negative, above the limit or not a number is refused before any byte is sent: the
 * controller's rate register and program stay as they were. */
static void test_furnace_ramp_at_once_refused_nothing_sent(void **state)
{
    (void)state;
    struct labconf_instrument in = furnace_inst("eurotherm3216");
    struct server *s = server_start(&in);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    const double ramps[] = {0.0, 0.01, -5.0, 1000.0, (double)NAN};

    snprintf(in.device, sizeof(in.device), "%s", s->slave_path);
    assert_int_equal(drv_open(&in, &drv, &err), 0);
    pthread_mutex_lock(&s->lock);
    double rate_before = s->sim.sp_rate_c_min, seg_rate_before = s->sim.seg_rate_c_min;
    long runs = s->sim.programs_run;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < sizeof(ramps) / sizeof(ramps[0]); i++) {
        struct drv_step step = anneal_step(40 + (uint32_t)i, 1.0);
        step.anneal.ramp_c_min = ramps[i];
        assert_int_equal(drv_step_check(&in, &step, &err), DRV_ELIMIT);
        assert_int_equal(drv_step_start(drv, &step, &err), DRV_ELIMIT);
        pthread_mutex_lock(&s->lock);
        assert_true(s->sim.sp_rate_c_min == rate_before);
        assert_true(s->sim.seg_rate_c_min == seg_rate_before);
        assert_int_equal(s->sim.programs_run, runs);
        assert_int_equal(s->sim.program, SIM_PROG_RESET);
        pthread_mutex_unlock(&s->lock);
    }
    drv_close(&drv);
    server_stop(s);
}

static void test_furnace_operator_reset_mid_anneal_fails(void **state)
{
    (void)state;
    struct labconf_instrument in = furnace_inst("eurotherm3216");
    struct server *s = server_start(&in);
    struct drv *drv = NULL;
    struct drv_status st;
    struct ll_error err = {0};
    struct drv_step first = anneal_step(10, 0.0), step = anneal_step(11, 30.0);
    const struct labconf_furnace_map *m = &in.map;

    snprintf(in.device, sizeof(in.device), "%s", s->slave_path);
    assert_int_equal(drv_open(&in, &drv, &err), 0);
    /* an earlier anneal ends normally and leaves B9 set */
    assert_int_equal(drv_step_start(drv, &first, &err), 0);
    assert_int_equal(wait_end(drv, &first, &st), DRV_STEP_DONE);
    assert_true(sim_status(s, NULL) & (1u << m->status_bits.program_end));

    assert_int_equal(drv_step_start(drv, &step, &err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(drv_step_poll(drv, &step, &st, &err), 0);
        assert_int_equal(st.state, DRV_STEP_RUNNING);
        usleep(20000);
    }
    panel_write(s, m->program_status, m->program_status_values.reset);
    assert_int_equal(wait_end(drv, &step, &st), DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EFAULT);
    assert_non_null(strstr(st.reason, "reset before its end"));
    assert_true(st.safe_commanded);
    assert_int_equal(drv_step_query(drv, &step, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_UNKNOWN);
    drv_close(&drv);
    server_stop(s);
}

/* F21: the heater cut off mid-anneal (the simulator's loop break: the loop drives 100 %
 * output, the temperature does not follow); after the loop-break time the controller's status
 * bit B6 fails the step as an instrument fault naming the loop break, with the safe state
 * commanded (the program reset). */
static void test_furnace_loop_break_fails_the_step(void **state)
{
    (void)state;
    struct labconf_instrument in = furnace_inst("eurotherm3216");
    struct server *s = server_start(&in);
    struct drv *drv = NULL;
    struct drv_status st;
    struct ll_error err = {0};
    struct drv_step step = anneal_step(60, 30.0); /* 30 min dwell: it runs long enough */
    int program = -1;

    snprintf(in.device, sizeof(in.device), "%s", s->slave_path);
    assert_int_equal(drv_open(&in, &drv, &err), 0);
    assert_int_equal(drv_step_start(drv, &step, &err), 0);
    assert_int_equal(drv_step_poll(drv, &step, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_RUNNING);
    pthread_mutex_lock(&s->lock);
    s->sim.heater_broken_s = 3600.0;
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(wait_end(drv, &step, &st), DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EFAULT);
    if (!strstr(st.reason, "loop break (status bit)"))
        fail_msg("reason: %s", st.reason);
    assert_true(st.safe_commanded);
    sim_status(s, &program);
    assert_int_equal(program, SIM_PROG_RESET);
    drv_close(&drv);
    server_stop(s);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_furnace_program_end_bit_marks_done),
        cmocka_unit_test(test_furnace_operator_reset_mid_anneal_fails),
        cmocka_unit_test(test_furnace_ramp_at_once_refused_nothing_sent),
        cmocka_unit_test(test_furnace_loop_break_fails_the_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

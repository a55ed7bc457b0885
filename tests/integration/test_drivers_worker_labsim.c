/* test_drivers_worker_labsim — the worker layer as the daemon uses it, against labsim: three
 * workers (robot, coater, furnace) driven from one poll() loop over their eventfds, never
 * blocking on I/O, taking one sample through dispense -> move -> spin -> move -> anneal ->
 * park, with status requests to the other instruments interleaved while a step runs; then
 * SAFE to all three. labsim (port 0, --speed 20, per-test runtime folder) is started here and
 * stopped in the group teardown whatever happens.
 */
#include "common/ll_time.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"
#include "drivers/worker.h"
#include "ll_test.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t labsim_pid;
static struct labconf *lab;

static int start_labsim(void **state)
{
    const char *labsim = getenv("LABSIM");
    const char *tmp = ll_test_tmpdir();
    char in_path[4096], rt[4096], ready[4200], out_path[4200], cmd_err[4200];
    struct labconf *src = NULL;
    struct ll_error err = {0};
    int64_t deadline;
    int ri;
    (void)state;

    if (!labsim || access(labsim, X_OK) != 0) {
        fprintf(stderr, "LABSIM not set or not built\n");
        return -1;
    }
    snprintf(in_path, sizeof(in_path), "%s/lab-in.conf", tmp);
    snprintf(rt, sizeof(rt), "%s/rt", tmp);
    snprintf(ready, sizeof(ready), "%s/ready", rt);
    snprintf(out_path, sizeof(out_path), "%s/lab.conf", rt);
    snprintf(cmd_err, sizeof(cmd_err), "%s/labsim.log", tmp);
    if (labconf_load_default(&src, &err) != 0)
        return -1;
    ri = labconf_instrument_index(src, "robot");
    src->instruments[ri].port = 0; /* labsim picks a free port */
    for (int i = 0; i < src->n_instruments; i++)
        src->instruments[i].poll_ms = 50;
    if (labconf_write_file(src, in_path, &err) != 0 || mkdir(rt, 0700) != 0) {
        labconf_free(&src);
        return -1;
    }
    labconf_free(&src);
    labsim_pid = fork();
    if (labsim_pid == 0) {
        FILE *log = freopen(cmd_err, "w", stderr);
        (void)log;
        execl(labsim, labsim, "--lab", in_path, "--runtime-dir", rt, "--speed", "20", (char *)NULL);
        _exit(127);
    }
    deadline = ll_monotonic_ms() + 15000;
    while (access(ready, F_OK) != 0) {
        if (ll_monotonic_ms() > deadline || waitpid(labsim_pid, NULL, WNOHANG) != 0)
            return -1;
        usleep(20000);
    }
    return labconf_load_file(out_path, &lab, &err) == 0 ? 0 : -1;
}

static int stop_labsim(void **state)
{
    (void)state;
    if (labsim_pid > 0) {
        kill(labsim_pid, SIGTERM);
        waitpid(labsim_pid, NULL, 0);
        labsim_pid = 0;
    }
    labconf_free(&lab);
    return 0;
}

struct loop {
    struct drv_worker *w[3]; /* robot, coater, furnace */
    int n_status;            /* status completions seen while a step ran */
};

/* Runs one step on worker wi: START, then POLL every 50 ms, answering the other workers'
 * STATUS requests in between; returns the final state. The loop only ever blocks in poll(). */
static enum drv_step_state run_step(struct loop *L, int wi, const struct drv_step *step)
{
    struct ll_error err = {0};
    struct drv_request req = {.op = DRV_REQ_START, .cookie = step->id, .step = *step};
    int64_t deadline = ll_monotonic_ms() + 60000, next_poll = 0;
    bool polling = false, poll_out = false;

    assert_int_equal(drv_worker_submit(L->w[wi], &req, &err), 0);
    for (int k = 0; k < 3; k++)
        if (k != wi) {
            struct drv_request st = {.op = DRV_REQ_STATUS, .cookie = 0};
            assert_int_equal(drv_worker_submit(L->w[k], &st, &err), 0);
        }
    while (ll_monotonic_ms() < deadline) {
        struct pollfd fds[3];
        int64_t t0;
        for (int k = 0; k < 3; k++) {
            fds[k].fd = drv_worker_fd(L->w[k]);
            fds[k].events = POLLIN;
        }
        if (polling && !poll_out && ll_monotonic_ms() >= next_poll) {
            req.op = DRV_REQ_POLL;
            assert_int_equal(drv_worker_submit(L->w[wi], &req, &err), 0);
            poll_out = true;
        }
        t0 = ll_monotonic_ms();
        assert_true(poll(fds, 3, 50) >= 0);
        assert_true(ll_monotonic_ms() - t0 < 500); /* the loop itself never stalls */
        for (int k = 0; k < 3; k++) {
            struct drv_completion c;
            while (drv_worker_next(L->w[k], &c) == 1) {
                if (c.op == DRV_REQ_STATUS) {
                    assert_int_equal(c.rc, 0);
                    L->n_status++;
                    continue;
                }
                assert_int_equal(k, wi);
                if (c.op == DRV_REQ_START) {
                    if (c.rc != 0)
                        fail_msg("start of step %u: %s", (unsigned)c.step_id, c.err.msg);
                    polling = true;
                    next_poll = ll_monotonic_ms() + 50;
                } else if (c.op == DRV_REQ_POLL) {
                    poll_out = false;
                    if (c.rc != 0)
                        fail_msg("poll of step %u: %s", (unsigned)c.step_id, c.err.msg);
                    if (c.status.state != DRV_STEP_RUNNING)
                        return c.status.state;
                    next_poll = ll_monotonic_ms() + 50;
                }
            }
        }
    }
    fail_msg("step %u did not end", (unsigned)step->id);
    return DRV_STEP_UNKNOWN;
}

static void test_three_workers_take_a_sample_through_the_lab(void **state)
{
    static const char *names[3] = {"robot", "coater", "furnace"};
    struct loop L = {0};
    struct ll_error err = {0};
    struct drv_step s;
    (void)state;

    for (int k = 0; k < 3; k++)
        assert_int_equal(drv_worker_start(labconf_find_instrument(lab, names[k]), &L.w[k], &err),
                         0);

    memset(&s, 0, sizeof(s));
    s.id = 1;
    s.kind = DRV_STEP_DISPENSE;
    s.dispense.well = 9;
    s.dispense.volumes_ul[0] = 120;
    s.dispense.volumes_ul[3] = 60;
    assert_int_equal(run_step(&L, 0, &s), DRV_STEP_DONE);

    memset(&s, 0, sizeof(s));
    s.id = 2;
    s.kind = DRV_STEP_MOVE;
    s.move.well = 9;
    snprintf(s.move.from_place, sizeof(s.move.from_place), "rack");
    snprintf(s.move.to_place, sizeof(s.move.to_place), "coater");
    assert_int_equal(run_step(&L, 0, &s), DRV_STEP_DONE);

    memset(&s, 0, sizeof(s));
    s.id = 3;
    s.kind = DRV_STEP_SPIN;
    s.spin.n_stages = 2;
    s.spin.stages[0] = (struct drv_spin_stage){1000, 1000, 1.0};
    s.spin.stages[1] = (struct drv_spin_stage){4000, 2000, 2.0};
    assert_int_equal(run_step(&L, 1, &s), DRV_STEP_DONE);

    memset(&s, 0, sizeof(s));
    s.id = 4;
    s.kind = DRV_STEP_MOVE;
    s.move.well = 9;
    snprintf(s.move.from_place, sizeof(s.move.from_place), "coater");
    snprintf(s.move.to_place, sizeof(s.move.to_place), "furnace");
    assert_int_equal(run_step(&L, 0, &s), DRV_STEP_DONE);

    memset(&s, 0, sizeof(s));
    s.id = 5;
    s.kind = DRV_STEP_ANNEAL;
    s.anneal.setpoint_c = 60;
    s.anneal.ramp_c_min = 30;
    s.anneal.dwell_min = 1;
    assert_int_equal(run_step(&L, 2, &s), DRV_STEP_DONE);

    memset(&s, 0, sizeof(s));
    s.id = 6;
    s.kind = DRV_STEP_PARK;
    assert_int_equal(run_step(&L, 0, &s), DRV_STEP_DONE);
    assert_true(L.n_status >= 12);

    for (int k = 0; k < 3; k++) {
        struct drv_request req = {.op = DRV_REQ_SAFE, .cookie = 42};
        struct drv_completion c;
        struct pollfd p = {.fd = drv_worker_fd(L.w[k]), .events = POLLIN};
        assert_int_equal(drv_worker_submit(L.w[k], &req, &err), 0);
        assert_int_equal(poll(&p, 1, 10000), 1);
        assert_int_equal(drv_worker_next(L.w[k], &c), 1);
        assert_int_equal(c.op, DRV_REQ_SAFE);
        if (c.rc != 0)
            fail_msg("%s safe: %s", names[k], c.err.msg);
        drv_worker_stop(&L.w[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_workers_take_a_sample_through_the_lab),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, start_labsim, stop_labsim);
}

/* test_drivers_worker_labsim — the worker layer as the daemon uses it, against labsim: three
 * workers (robot, coater, furnace) driven from one poll() loop over their eventfds, never
 * blocking on I/O, taking one sample through dispense -> move -> spin -> move -> anneal ->
 * park, with status requests to the other instruments interleaved while a step runs; then
 * SAFE to all three. Then a latched coater fault (the lid opened mid-spin through labsim's
 * control socket) cleared through the worker (DRV_REQ_CLEAR), after which the coater spins
 * again. labsim (port 0, --speed 20, per-test runtime folder) is started here and
 * stopped in the group teardown whatever happens.
 */
#include "common/ll_time.h"
#include "daemon/control.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"
#include "drivers/worker.h"
#include "ll_test.h"
#include "ll_test_labsim.h"

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

static char labsim_rt[4096]; /* labsim's runtime folder: its control socket is rt/control */

static int start_labsim(void **state)
{
    (void)state;
    labsim_pid = ll_test_labsim_start(20, 50, NULL, labsim_rt, sizeof(labsim_rt), &lab);
    return labsim_pid > 0 ? 0 : -1;
}

static int stop_labsim(void **state)
{
    (void)state;
    ll_test_labsim_stop(labsim_pid);
    labsim_pid = 0;
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
    /* the status requests submitted with the last step may still be out: a furnace status
     * is four reads at 9600 baud (~0.1 s, labsim keeps the line's time), the park 0.1 s */
    for (int64_t until = ll_monotonic_ms() + 5000; L.n_status < 12 && ll_monotonic_ms() < until;) {
        struct pollfd fds[3];
        for (int k = 0; k < 3; k++)
            fds[k] = (struct pollfd){.fd = drv_worker_fd(L.w[k]), .events = POLLIN};
        assert_true(poll(fds, 3, 50) >= 0);
        for (int k = 0; k < 3; k++) {
            struct drv_completion c;
            while (drv_worker_next(L.w[k], &c) == 1) {
                assert_int_equal(c.op, DRV_REQ_STATUS);
                assert_int_equal(c.rc, 0);
                L.n_status++;
            }
        }
    }
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

/* One request to labsim's control socket; asserts {"ok": true}. */
static void labsim_set(const char *what, int value)
{
    struct ll_error err = {0};
    json_t *reply = NULL;
    json_t *req = json_pack("{s:s,s:s,s:i}", "cmd", "set", "what", what, "value", value);
    int r = control_call(labsim_rt, req, 5000, &reply, &err);
    json_decref(req);
    if (r != 0)
        fail_msg("labsim control: %s", err.msg);
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
}

/* Submits req to w and waits (poll on its fd) for its completion. */
static void
one_request(struct drv_worker *w, const struct drv_request *req, struct drv_completion *c)
{
    struct ll_error err = {0};
    struct pollfd p = {.fd = drv_worker_fd(w), .events = POLLIN};
    assert_int_equal(drv_worker_submit(w, req, &err), 0);
    assert_int_equal(poll(&p, 1, 20000), 1);
    assert_int_equal(drv_worker_next(w, c), 1);
    assert_int_equal(c->op, req->op);
    assert_int_equal(c->cookie, req->cookie);
}

/* DRV_REQ_CLEAR: the coater latched in ERROR by its lid opened mid-spin refuses the next
 * spin (DRV_EFAULT, "clear it first") until a CLEAR request through its worker; then it spins
 * again. A CLEAR keeps its place in the queue (it does not jump ahead as SAFE does). */
static void test_clear_request_clears_a_latched_coater_fault(void **state)
{
    struct drv_worker *w = NULL;
    struct ll_error err = {0};
    struct drv_completion c;
    struct drv_request req = {.op = DRV_REQ_START, .cookie = 100};
    (void)state;

    assert_int_equal(drv_worker_start(labconf_find_instrument(lab, "coater"), &w, &err), 0);
    req.step.id = 100;
    req.step.kind = DRV_STEP_SPIN;
    req.step.spin.n_stages = 1;
    req.step.spin.stages[0] = (struct drv_spin_stage){3000, 1000, 60.0}; /* 3 s at speed 20 */
    one_request(w, &req, &c);
    if (c.rc != 0)
        fail_msg("start: %s", c.err.msg);
    labsim_set("lid", 1);
    int64_t deadline = ll_monotonic_ms() + 20000;
    do {
        req.op = DRV_REQ_POLL;
        one_request(w, &req, &c);
        assert_int_equal(c.rc, 0);
        usleep(20000);
    } while (c.status.state == DRV_STEP_RUNNING && ll_monotonic_ms() < deadline);
    assert_int_equal(c.status.state, DRV_STEP_FAILED);
    labsim_set("lid", 0);

    /* latched: the next spin is refused without a clear */
    req.op = DRV_REQ_START;
    req.step.id = req.cookie = 101;
    one_request(w, &req, &c);
    assert_int_equal(c.rc, DRV_EFAULT);
    assert_non_null(strstr(c.err.msg, "ERROR"));

    /* STATUS, CLEAR, STATUS queued at once: completed in that order */
    struct drv_request q[3] = {
        {.op = DRV_REQ_STATUS, .cookie = 1},
        {.op = DRV_REQ_CLEAR,  .cookie = 2},
        {.op = DRV_REQ_STATUS, .cookie = 3},
    };
    for (int k = 0; k < 3; k++)
        assert_int_equal(drv_worker_submit(w, &q[k], &err), 0);
    for (int k = 0; k < 3; k++) {
        struct pollfd p = {.fd = drv_worker_fd(w), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 20000), 1);
        assert_int_equal(drv_worker_next(w, &c), 1);
        assert_int_equal(c.op, q[k].op);
        assert_int_equal(c.cookie, q[k].cookie);
        if (c.rc != 0)
            fail_msg("request %d: %s", k, c.err.msg);
        if (k == 0)
            assert_non_null(strstr(c.status.text, "ERROR"));
        if (k == 2)
            assert_null(strstr(c.status.text, "ERROR"));
    }

    /* cleared: it spins again */
    req.op = DRV_REQ_START;
    req.step.id = req.cookie = 102;
    req.step.spin.stages[0].seconds = 2.0;
    one_request(w, &req, &c);
    if (c.rc != 0)
        fail_msg("start after the clear: %s", c.err.msg);
    deadline = ll_monotonic_ms() + 20000;
    do {
        req.op = DRV_REQ_POLL;
        one_request(w, &req, &c);
        assert_int_equal(c.rc, 0);
        usleep(20000);
    } while (c.status.state == DRV_STEP_RUNNING && ll_monotonic_ms() < deadline);
    assert_int_equal(c.status.state, DRV_STEP_DONE);
    drv_worker_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_workers_take_a_sample_through_the_lab),
        cmocka_unit_test(test_clear_request_clears_a_latched_coater_fault),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, start_labsim, stop_labsim);
}

/* test_bus_budget_labsim — reliability.md L7 "Bus budget": three Modbus RTU furnaces on one
 * 9600-baud line (config/lab-shared-bus.conf: slave ids 1, 2, 3 on one device; labsim serves
 * them as slaves of one pty and keeps the line's time, simulators/sim_rtu.h), driven as
 * labloopd drives them: one worker per instrument on one shared bus (drivers/bus.h), every
 * running step polled on the daemon's schedule (engine_poll_next_at() with the lab's poll_ms,
 * 250 ms). The three anneals start 1.5 s apart, so each start meets the others' polls; while
 * they run, each furnace also gets a step command every 3 s (drv_step_start() of its own
 * running step: the daemon's idempotent re-start, five reads at command priority).
 *
 * Pass (the matrix row): the line is busy at most 50 % of the time — measured by labsim from
 * the frames it carried (characters at 9600 8N1 and t3.5 after each), over the time all three
 * run, over every 1 s window of it, and over the whole run — and a step command waits at most
 * 200 ms for its first slot on the line (drv_bus_stats(): the wait of each command call before
 * its first transaction). Also: every furnace is polled (no poll fails), labsim saw no
 * collision and no frame inside another's t3.5, and each anneal ran once (labsim's program
 * count) with its own setpoint (the loaded segment target). The figures go to stderr.
 *
 * Then a silent device on the same line (a slave id nobody answers) next to the three: their
 * calls are slowed but none fails or outlasts its budget, and commands still get the line
 * within about one response time-out.
 *
 * To see what the bus prevents (not run by ctest): LL_L7_PRIVATE_LINES=1 gives each worker a
 * line of its own (three libmodbus contexts on one pty, as before drivers/bus.h);
 * LL_L7_BUDGET=1 turns the pacing off (only the inter-frame gap).
 */
#include "common/ll_time.h"
#include "daemon/engine.h"
#include "drivers/bus.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"
#include "drivers/worker.h"
#include "ll_test.h"
#include "ll_test_labsim.h"

#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zmq.h>

#define N 3
#define SPEED 20        /* labsim time scale: an anneal of ~3.5 min takes ~10 s */
#define RAMP_C_MIN 30.0 /* as config/perovskite.conf's recipe */
#define DWELL_MIN 2.0
#define STAGGER_MS 1500      /* furnace k starts k x STAGGER_MS after the first */
#define PROBE_MS 3000        /* a step command per running furnace this often */
#define PROBE_MARGIN_MS 2500 /* no probe this close to the program's end (it would restart it) */
#define MAX_UTIL 0.50        /* the matrix row */
#define MAX_COMMAND_WAIT_MS 200.0
#define RUN_LIMIT_MS 60000

static const char *const names[N] = {"furnace", "furnace2", "furnace3"};
static const double setpoints[N] = {60.0, 70.0, 80.0};

/* LL_L7_PRIVATE_LINES: errors are counted and the furnace asked again, not failed at once */
static bool count_errors;

static pid_t labsim_pid;
static struct labconf *lab;
static char rt[4096];
static void *zctx;

static int start_labsim(void **state)
{
    char path[4200];
    (void)state;
    snprintf(path, sizeof(path), "%s/config/lab-shared-bus.conf", getenv("LL_SOURCE_DIR"));
    labsim_pid = ll_test_labsim_start_lab(path, SPEED, 0, NULL, rt, sizeof(rt), &lab);
    zctx = zmq_ctx_new();
    return labsim_pid > 0 && zctx != NULL ? 0 : -1;
}

static int stop_labsim(void **state)
{
    (void)state;
    ll_test_labsim_stop(labsim_pid);
    labsim_pid = 0;
    labconf_free(&lab);
    if (zctx != NULL)
        zmq_ctx_term(zctx);
    return 0;
}

struct furnace {
    const struct labconf_instrument *inst;
    struct drv_worker *w;
    struct drv_step step;
    int64_t start_at, end_at, expected_end_at, next_poll_at, next_probe_at;
    bool started, done, outstanding;
    int polls, probes, errors;
    char last_error[LL_ERROR_MSG_MAX];
    int64_t last_poll_ms, poll_gap_total_ms, poll_gap_max_ms, start_call_ms;
};

/* labsim's view of the line: its monotonic clock and the line's busy time (ms). */
struct line_sample {
    int64_t at_ms;
    double busy_ms;
};

static json_t *labsim_status(void)
{
    return ll_test_labsim_control(zctx, rt, json_pack("{s:s}", "cmd", "status"));
}

static struct line_sample line_sample(void)
{
    json_t *st = labsim_status();
    json_t *line = json_array_get(json_object_get(st, "lines"), 0);
    struct line_sample s = {
        (int64_t)json_integer_value(json_object_get(st, "monotonic_ms")),
        json_number_value(json_object_get(line, "busy_ms")),
    };
    assert_int_equal(json_array_size(json_object_get(st, "lines")), 1); /* one line */
    json_decref(st);
    return s;
}

static double util(struct line_sample a, struct line_sample b)
{
    return b.at_ms > a.at_ms ? (b.busy_ms - a.busy_ms) / (double)(b.at_ms - a.at_ms) : 0.0;
}

/* The anneal's real duration at SPEED (ramp from 25 C, then the dwell) and the daemon's
 * expected duration (config/perovskite.conf: ramp + dwell + 60 s), in real ms. */
static int64_t anneal_ms(double setpoint_c, double margin_s)
{
    double s = (setpoint_c - 25.0) / RAMP_C_MIN * 60.0 + DWELL_MIN * 60.0 + margin_s;
    return (int64_t)(s * 1000.0 / SPEED);
}

static void submit(struct furnace *f, enum drv_request_op op, uint64_t cookie)
{
    struct ll_error err = {0};
    struct drv_request req = {.op = op, .cookie = cookie, .step = f->step};
    if (drv_worker_submit(f->w, &req, &err) != 0)
        fail_msg("%s: submit: %s", f->inst->name, err.msg);
    f->outstanding = true;
}

static void on_completion(struct furnace *f, const struct drv_completion *c, int poll_ms)
{
    int64_t now = ll_monotonic_ms();

    f->outstanding = false;
    if (c->rc != 0 && count_errors) {
        f->errors++;
        snprintf(f->last_error, sizeof(f->last_error), "%s", c->err.msg);
        if (c->op == DRV_REQ_START && c->cookie == 1)
            f->start_at = now + 100; /* ask again (its outcome is read back first) */
        else
            f->next_poll_at = now + poll_ms;
        return;
    }
    if (c->rc != 0)
        fail_msg("%s: %s (op %d) failed: %s",
                 f->inst->name,
                 c->op == DRV_REQ_POLL ? "poll" : "start",
                 (int)c->op,
                 c->err.msg);
    if (c->op == DRV_REQ_START && c->cookie == 1) { /* the anneal's start */
        f->started = true;
        f->start_call_ms = c->elapsed_ms;
        f->end_at = now + anneal_ms(f->step.anneal.setpoint_c, 0.0);
        f->expected_end_at = now + anneal_ms(f->step.anneal.setpoint_c, 60.0);
        f->next_poll_at = engine_poll_next_at(poll_ms, f->expected_end_at, now);
        f->next_probe_at = now + PROBE_MS / 2;
        return;
    }
    if (c->op == DRV_REQ_START) { /* a probe: the same step again, already running */
        f->probes++;
        return;
    }
    assert_int_equal(c->op, DRV_REQ_POLL);
    if (f->polls > 0) {
        int64_t gap = now - f->last_poll_ms;
        f->poll_gap_total_ms += gap;
        if (gap > f->poll_gap_max_ms)
            f->poll_gap_max_ms = gap;
    }
    f->polls++;
    f->last_poll_ms = now;
    if (c->status.state == DRV_STEP_FAILED || c->status.state == DRV_STEP_UNKNOWN)
        fail_msg("%s: step %s: %s",
                 f->inst->name,
                 drv_step_state_name(c->status.state),
                 c->status.reason);
    if (c->status.state == DRV_STEP_DONE) {
        f->done = true;
        return;
    }
    f->next_poll_at = engine_poll_next_at(poll_ms, f->expected_end_at, now);
}

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

/* One run: the furnaces, their bus, labsim's line at the moments that bound the windows. */
struct run {
    struct furnace fs[N];
    struct drv_bus *bus; /* NULL with LL_L7_PRIVATE_LINES */
    int poll_ms;
    struct line_sample first, all_running, first_done, last, window_start;
    double max_window; /* the busiest 1 s window while all three ran */
    int n_windows;
    long programs[N]; /* labsim: programs run, loaded segment target */
    double target_c[N];
    long collisions, gap_violations;
    double command_wait_max_ms;
    long n_commands;
};

/* The three furnaces of the lab, on one bus (or lines of their own), with their anneals. */
static void setup_run(struct run *r)
{
    struct ll_error err = {0};
    const char *budget_env = getenv("LL_L7_BUDGET");
    bool private_lines = getenv("LL_L7_PRIVATE_LINES") != NULL;

    memset(r, 0, sizeof(*r));
    count_errors = private_lines;
    for (int k = 0; k < N; k++) {
        r->fs[k].inst = labconf_find_instrument(lab, names[k]);
        assert_non_null(r->fs[k].inst);
        assert_string_equal(r->fs[k].inst->device, labconf_find_instrument(lab, names[0])->device);
        assert_int_equal(r->fs[k].inst->baud, 9600);
        r->poll_ms = r->fs[k].inst->poll_ms; /* the lab's: 250 ms */
    }
    assert_int_equal(r->poll_ms, 250);
    if (!private_lines) {
        assert_int_equal(drv_bus_new(r->fs[0].inst, &r->bus, &err), 0);
        if (budget_env != NULL)
            assert_int_equal(drv_bus_set_budget(r->bus, atof(budget_env)), 0);
    }
    for (int k = 0; k < N; k++) {
        struct furnace *f = &r->fs[k];
        if (drv_worker_start_bus(f->inst, r->bus, &f->w, &err) != 0)
            fail_msg("%s", err.msg);
        f->step.id = (uint32_t)(100 + k);
        f->step.kind = DRV_STEP_ANNEAL;
        f->step.anneal.setpoint_c = setpoints[k];
        f->step.anneal.ramp_c_min = RAMP_C_MIN;
        f->step.anneal.dwell_min = DWELL_MIN;
    }
}

/* Samples labsim's line at the edges of the windows, and every second while all three run. */
static void sample_windows(struct run *r, int64_t now, int64_t *next_sample)
{
    bool all_started = true, any_done = false;

    for (int k = 0; k < N; k++) {
        all_started = all_started && r->fs[k].started;
        any_done = any_done || r->fs[k].done;
    }
    if (all_started && r->all_running.at_ms == 0)
        r->all_running = r->window_start = line_sample();
    if (any_done && r->first_done.at_ms == 0 && r->all_running.at_ms != 0)
        r->first_done = line_sample();
    if (r->all_running.at_ms != 0 && r->first_done.at_ms == 0 && now >= *next_sample) {
        struct line_sample s = line_sample();
        if (s.at_ms - r->window_start.at_ms >= 900) {
            double u = util(r->window_start, s);
            if (u > r->max_window)
                r->max_window = u;
            r->n_windows++;
            r->window_start = s;
        }
        *next_sample = now + 1000;
    }
}

/* Asks each furnace what is due (its start, a step command, a poll), waits for completions
 * until the next poll is due, and takes them. */
static void step_loop(struct run *r, int64_t now)
{
    struct pollfd pfd[N];
    int64_t wake = now + 20;

    for (int k = 0; k < N; k++) {
        struct furnace *f = &r->fs[k];
        if (f->outstanding || f->done)
            continue;
        if (!f->started && now >= f->start_at)
            submit(f, DRV_REQ_START, 1);
        else if (f->started && now >= f->next_probe_at && now < f->end_at - PROBE_MARGIN_MS) {
            submit(f, DRV_REQ_START, 2);
            f->next_probe_at = now + PROBE_MS;
        } else if (f->started && now >= f->next_poll_at)
            submit(f, DRV_REQ_POLL, 3);
    }
    for (int k = 0; k < N; k++) {
        struct furnace *f = &r->fs[k];
        pfd[k] = (struct pollfd){.fd = drv_worker_fd(f->w), .events = POLLIN};
        if (f->started && !f->outstanding && !f->done && f->next_poll_at < wake)
            wake = f->next_poll_at;
    }
    assert_true(poll(pfd, N, wake > now ? (int)(wake - now) : 0) >= 0);
    for (int k = 0; k < N; k++) {
        struct drv_completion c;
        while (drv_worker_next(r->fs[k].w, &c) == 1)
            on_completion(&r->fs[k], &c, r->poll_ms);
    }
}

/* Starts the anneals STAGGER_MS apart and drives them to their ends. */
static void drive(struct run *r)
{
    int64_t t0 = ll_monotonic_ms(), next_sample = t0 + 1000;

    for (int k = 0; k < N; k++)
        r->fs[k].start_at = t0 + k * STAGGER_MS;
    r->first = r->window_start = line_sample();
    for (;;) {
        int64_t now = ll_monotonic_ms();
        bool all_done = true;
        for (int k = 0; k < N; k++)
            all_done = all_done && r->fs[k].done;
        if (all_done)
            break;
        if (now - t0 > RUN_LIMIT_MS)
            fail_msg("the anneals did not end within %d s", RUN_LIMIT_MS / 1000);
        sample_windows(r, now, &next_sample);
        step_loop(r, now);
    }
    r->last = line_sample();
}

/* What labsim saw (the line, every furnace's programs and loaded target), printed. */
static void report_labsim(struct run *r)
{
    json_t *st = labsim_status();
    json_t *line = json_array_get(json_object_get(st, "lines"), 0);
    json_t *furnaces = json_object_get(st, "furnaces");

    r->collisions = (long)json_integer_value(json_object_get(line, "collisions"));
    r->gap_violations = (long)json_integer_value(json_object_get(line, "gap_violations"));
    fprintf(stderr,
            "L7: line %s: %lld frames, %lld answers, %ld collisions, %ld gap violations, %lld "
            "bytes from the master, %lld from the slaves\n",
            json_string_value(json_object_get(line, "link")),
            (long long)json_integer_value(json_object_get(line, "frames")),
            (long long)json_integer_value(json_object_get(line, "replies")),
            r->collisions,
            r->gap_violations,
            (long long)json_integer_value(json_object_get(line, "bytes_rx")),
            (long long)json_integer_value(json_object_get(line, "bytes_tx")));
    for (int k = 0; k < N; k++) {
        const struct furnace *fk = &r->fs[k];
        json_t *f = NULL, *v;
        size_t i;
        json_array_foreach(furnaces, i, v)
        {
            if (strcmp(json_string_value(json_object_get(v, "name")), names[k]) == 0)
                f = v;
        }
        assert_non_null(f);
        r->programs[k] = (long)json_integer_value(json_object_get(f, "programs"));
        r->target_c[k] = json_number_value(json_object_get(f, "seg_target_c"));
        fprintf(stderr,
                "L7: %s (slave %d): %d polls, poll interval mean %.0f ms max %lld ms (the "
                "daemon asks every %d ms), %d step commands while running, start call %lld ms, "
                "programs %ld, segment target %.1f C; %d failed calls%s%s\n",
                names[k],
                fk->inst->slave,
                fk->polls,
                fk->polls > 1 ? (double)fk->poll_gap_total_ms / (fk->polls - 1) : 0.0,
                (long long)fk->poll_gap_max_ms,
                r->poll_ms,
                fk->probes,
                (long long)fk->start_call_ms,
                r->programs[k],
                r->target_c[k],
                fk->errors,
                fk->errors ? ", the last: " : "",
                fk->last_error);
    }
    json_decref(st);
    fprintf(stderr,
            "L7: line busy (labsim): %.1f %% while all three ran (%.1f s), max %.1f %% over %d "
            "windows of 1 s, %.1f %% over the whole run (%.1f s)\n",
            100.0 * util(r->all_running, r->first_done),
            (double)(r->first_done.at_ms - r->all_running.at_ms) / 1000.0,
            100.0 * r->max_window,
            r->n_windows,
            100.0 * util(r->first, r->last),
            (double)(r->last.at_ms - r->first.at_ms) / 1000.0);
}

static double mean_ms(int64_t total_us, int64_t n)
{
    return ms(total_us) / (double)(n > 0 ? n : 1);
}

/* What the bus saw (line time, waits for a slot by priority), printed. */
static void report_bus(struct run *r)
{
    struct drv_bus_stats bs;

    if (r->bus == NULL)
        return;
    drv_bus_stats(r->bus, &bs);
    fprintf(stderr,
            "L7: bus (drivers): %lld transactions, line time %.1f %% of %.1f s; step command: "
            "first slot after mean %.1f ms, max %.1f ms (%lld calls); every command "
            "transaction: mean %.1f ms, max %.1f ms (%lld); poll transactions waited mean %.1f "
            "ms, max %.1f ms (%lld)\n",
            (long long)bs.transactions,
            100.0 * (double)bs.line_us / (double)bs.elapsed_us,
            (double)bs.elapsed_us / 1e6,
            mean_ms(bs.call_wait_total_us[DRV_BUS_COMMAND], bs.calls[DRV_BUS_COMMAND]),
            ms(bs.call_wait_max_us[DRV_BUS_COMMAND]),
            (long long)bs.calls[DRV_BUS_COMMAND],
            mean_ms(bs.wait_total_us[DRV_BUS_COMMAND], bs.waits[DRV_BUS_COMMAND]),
            ms(bs.wait_max_us[DRV_BUS_COMMAND]),
            (long long)bs.waits[DRV_BUS_COMMAND],
            mean_ms(bs.wait_total_us[DRV_BUS_POLL], bs.waits[DRV_BUS_POLL]),
            ms(bs.wait_max_us[DRV_BUS_POLL]),
            (long long)bs.waits[DRV_BUS_POLL]);
    r->command_wait_max_ms = ms(bs.call_wait_max_us[DRV_BUS_COMMAND]);
    r->n_commands = (long)bs.calls[DRV_BUS_COMMAND];
}

static void test_three_furnaces_on_one_9600_line_keep_the_bus_budget(void **state)
{
    static struct run r;
    (void)state;

    setup_run(&r);
    drive(&r);
    report_labsim(&r);
    report_bus(&r);

    /* the verdict, once every figure is out */
    for (int k = 0; k < N; k++) {
        assert_int_equal(r.fs[k].errors, 0);
        assert_true(r.fs[k].polls >= 5);
        assert_int_equal(r.programs[k], 1);
        ll_assert_close(r.target_c[k], setpoints[k], 0, 0.05);
    }
    assert_int_equal(r.collisions, 0);
    assert_int_equal(r.gap_violations, 0);
    assert_non_null(r.bus);
    assert_int_equal(r.n_commands, N + r.fs[0].probes + r.fs[1].probes + r.fs[2].probes);
    assert_true(r.command_wait_max_ms <= MAX_COMMAND_WAIT_MS);
    assert_true(r.n_windows >= 3);
    assert_true(util(r.all_running, r.first_done) <= MAX_UTIL);
    assert_true(r.max_window <= MAX_UTIL);
    assert_true(util(r.first, r.last) <= MAX_UTIL);

    for (int k = 0; k < N; k++)
        drv_worker_stop(&r.fs[k].w);
    drv_bus_free(&r.bus);
}

/* ---- a silent device on the line ------------------------------------------------ */

#define GHOST_SLAVE 9 /* no controller on the line answers it */
#define SILENT_RUN_MS 8000
#define SAFE_EVERY_MS 700
#define MAX_COMMAND_WAIT_SILENT_MS 700.0 /* its time-out (500 ms) + two paced transactions */

struct client {
    struct labconf_instrument inst;
    struct drv_worker *w;
    int64_t next_at, next_safe_at;
    int64_t call_total_ms, call_max_ms;
    int calls, fails, safes;
    bool outstanding, ghost;
};

static void client_submit(struct client *c, enum drv_request_op op)
{
    struct ll_error err = {0};
    struct drv_request req = {.op = op};
    if (drv_worker_submit(c->w, &req, &err) != 0)
        fail_msg("%s: submit: %s", c->inst.name, err.msg);
    c->outstanding = true;
}

static void client_done(struct client *c, const struct drv_completion *d)
{
    int64_t now = ll_monotonic_ms();

    c->outstanding = false;
    if (d->op == DRV_REQ_SAFE) {
        if (d->rc != 0)
            fail_msg("%s: safe state: %s", c->inst.name, d->err.msg);
        c->safes++;
        return;
    }
    c->calls++;
    c->call_total_ms += d->elapsed_ms;
    if (d->elapsed_ms > c->call_max_ms)
        c->call_max_ms = d->elapsed_ms;
    if (d->rc != 0) {
        c->fails++;
        if (!c->ghost)
            fail_msg("%s: status failed next to a silent device: %s", c->inst.name, d->err.msg);
        assert_int_equal(d->rc, DRV_ETIMEDOUT);
    }
    c->next_at = now + 250; /* the daemon's poll interval */
}

/* A fourth instrument on the line whose slave id nobody answers, asked for its status every
 * 250 ms like two of the furnaces; the third gets a safe-state command every 0.7 s (when the
 * last one is over), at times that do not depend on the line. Each attempt
 * of the silent one holds the line for its response time-out (500 ms) and gives it back during
 * its back-off, so the others are slowed (each of their transactions may wait one time-out)
 * but keep working: none of their calls fails or runs out of its call budget, and a command
 * waits at most about one time-out for the line, never the silent device's whole call budget
 * (5 s). */
static void test_a_silent_device_holds_the_line_one_time_out_at_a_time(void **state)
{
    struct client cl[N + 1];
    struct drv_bus *bus = NULL;
    struct drv_bus_stats bs;
    struct ll_error err = {0};
    (void)state;

    memset(cl, 0, sizeof(cl));
    for (int k = 0; k <= N; k++) {
        cl[k].inst = *labconf_find_instrument(lab, names[k < N ? k : 0]);
        cl[k].next_safe_at = ll_monotonic_ms() + 500 + 300 * k;
    }
    cl[N].ghost = true;
    cl[N].inst.slave = GHOST_SLAVE;
    snprintf(cl[N].inst.name, sizeof(cl[N].inst.name), "silent");
    assert_int_equal(drv_bus_new(&cl[0].inst, &bus, &err), 0);
    for (int k = 0; k <= N; k++)
        if (drv_worker_start_bus(&cl[k].inst, bus, &cl[k].w, &err) != 0)
            fail_msg("%s", err.msg);
    json_t *st = labsim_status();
    long collisions0 = (long)json_integer_value(
        json_object_get(json_array_get(json_object_get(st, "lines"), 0), "collisions"));
    json_decref(st);

    int64_t end = ll_monotonic_ms() + SILENT_RUN_MS;
    for (;;) {
        int64_t now = ll_monotonic_ms();
        bool busy = false;
        struct pollfd pfd[N + 1];
        for (int k = 0; k <= N; k++) {
            struct client *c = &cl[k];
            busy = busy || c->outstanding;
            if (now >= end)
                continue;
            if (k == N - 1) {
                /* commands only, at their times (skipped when the last one still runs), so
                 * they meet the line in whatever state it is in */
                if (now >= c->next_safe_at) {
                    if (!c->outstanding)
                        client_submit(c, DRV_REQ_SAFE);
                    c->next_safe_at = now + SAFE_EVERY_MS;
                }
            } else if (!c->outstanding && now >= c->next_at)
                client_submit(c, DRV_REQ_STATUS);
        }
        if (now >= end && !busy)
            break;
        for (int k = 0; k <= N; k++)
            pfd[k] = (struct pollfd){.fd = drv_worker_fd(cl[k].w), .events = POLLIN};
        assert_true(poll(pfd, N + 1, 20) >= 0);
        for (int k = 0; k <= N; k++) {
            struct drv_completion d;
            while (drv_worker_next(cl[k].w, &d) == 1)
                client_done(&cl[k], &d);
        }
    }
    drv_bus_stats(bus, &bs);
    st = labsim_status();
    long collisions = (long)json_integer_value(json_object_get(
                          json_array_get(json_object_get(st, "lines"), 0), "collisions")) -
                      collisions0;
    json_decref(st);
    for (int k = 0; k <= N; k++)
        fprintf(stderr,
                "L7 silent: %s (slave %d): %d status calls (%d failed), call mean %.0f ms max "
                "%lld ms, %d safe-state commands\n",
                cl[k].inst.name,
                cl[k].inst.slave,
                cl[k].calls,
                cl[k].fails,
                (double)cl[k].call_total_ms / (cl[k].calls > 0 ? cl[k].calls : 1),
                (long long)cl[k].call_max_ms,
                cl[k].safes);
    fprintf(stderr,
            "L7 silent: bus: command first slot after mean %.1f ms, max %.1f ms (%lld calls); "
            "poll calls' first slot after mean %.1f ms, max %.1f ms (%lld); poll transactions "
            "waited mean %.1f ms, max %.1f ms; held %.0f %% of the time, line time %.1f %%; %ld "
            "collisions\n",
            mean_ms(bs.call_wait_total_us[DRV_BUS_COMMAND], bs.calls[DRV_BUS_COMMAND]),
            ms(bs.call_wait_max_us[DRV_BUS_COMMAND]),
            (long long)bs.calls[DRV_BUS_COMMAND],
            mean_ms(bs.call_wait_total_us[DRV_BUS_POLL], bs.calls[DRV_BUS_POLL]),
            ms(bs.call_wait_max_us[DRV_BUS_POLL]),
            (long long)bs.calls[DRV_BUS_POLL],
            mean_ms(bs.wait_total_us[DRV_BUS_POLL], bs.waits[DRV_BUS_POLL]),
            ms(bs.wait_max_us[DRV_BUS_POLL]),
            100.0 * (double)bs.held_us / (double)bs.elapsed_us,
            100.0 * (double)bs.line_us / (double)bs.elapsed_us,
            collisions);
    for (int k = 0; k < N - 1; k++) {
        assert_int_equal(cl[k].fails, 0);
        assert_true(cl[k].calls >= 2);
        assert_true(cl[k].call_max_ms < DRV_CALL_BUDGET(&cl[k].inst)); /* never starved */
    }
    assert_true(cl[N - 1].safes >= 4);
    assert_true(cl[N].calls >= 1);
    assert_int_equal(cl[N].fails, cl[N].calls);
    assert_int_equal(collisions, 0);
    assert_true(ms(bs.call_wait_max_us[DRV_BUS_COMMAND]) <= MAX_COMMAND_WAIT_SILENT_MS);
    for (int k = 0; k <= N; k++)
        drv_worker_stop(&cl[k].w);
    drv_bus_free(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_furnaces_on_one_9600_line_keep_the_bus_budget),
        cmocka_unit_test(test_a_silent_device_holds_the_line_one_time_out_at_a_time),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, start_labsim, stop_labsim);
}

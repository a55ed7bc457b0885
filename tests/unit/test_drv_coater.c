/* test_drv_coater — the SPN/1 coater driver against a scripted fake coater on a
 * pseudo-terminal pair (the driver opens the slave path with libserialport; a thread in
 * this test answers on the master side as hardware.md §2.3 says: SEQ echo, CRC, reply
 * cache of 8, states IDLE/ARMED/RUNNING/DONE/ERROR, lid interlock, WD).
 *
 * Checks: a spin runs to done with the documented command sequence; a repeated start of
 * the same step never runs it twice; a dropped reply is retransmitted with the SAME SEQ and
 * executed once; noise before replies is skipped; a step above max rpm or acceleration
 * sends nothing; lid open refuses before RUN; overspeed mid-run fails the step as a refusal
 * and commands ABORT; query answers done / not started; silence gives "no answer" within
 * the call budget; a cut line gives "link lost".
 */
#include "common/ll_crc.h"
#include "common/ll_time.h"
#include "drivers/driver.h"
#include "drivers/driver_internal.h"
#include "drivers/labconf.h"
#include "ll_test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* ---- the fake coater --------------------------------------------------------------- */

struct fake {
    int master;
    char slave_path[64];
    pthread_t thread;
    pthread_mutex_t lock;
    bool stop;
    /* device state */
    char state[16], job[40], last_job[40], last_result[16], err[8];
    int lid, n_stages, wd_s;
    double stage_s[8], stage_rpm[8], stage_acc[8];
    int64_t run_started_ms;
    struct {
        unsigned seq;
        uint16_t body_crc;
        char reply[160];
    } cache[8];
    int cache_next;
    /* observations and faults */
    int frames, run_frames, runs_executed, abort_frames;
    unsigned run_seqs[4];
    char log[4096];
    int drop_run_replies; /* execute and cache RUN, but do not answer */
    bool noise, mute, overspeed_on_run;
};

static void fake_reply(unsigned seq, const char *body, char *out, size_t size)
{
    spn1_format(seq, body, out, size);
}

/* Executes one command body; writes the reply body into rb. */
static void fake_exec(struct fake *f, const char *body, char *rb, size_t size)
{
    char verb[16] = "";
    int n = 0, i = 0;
    double rpm, acc, s;
    char job[40];

    sscanf(body, "%15s", verb);
    if (!strcmp(verb, "STATUS?")) {
        snprintf(rb,
                 size,
                 "OK STATE=%s JOB=%s RCP=1 STAGE=0 RPM=%d T=%.1f LID=%d VAC=1 ERR=%s",
                 f->state,
                 f->job,
                 strcmp(f->state, "RUNNING") ? 0 : 3000,
                 f->run_started_ms ? (double)(ll_monotonic_ms() - f->run_started_ms) / 1000.0 : 0.0,
                 f->lid,
                 f->err);
    } else if (!strcmp(verb, "ID?")) {
        snprintf(rb, size, "OK MODEL=FAKE FW=0 SN=1 PROTO=SPN/1");
    } else if (sscanf(body, "RCP %d CLEAR", &n) == 1 && strstr(body, "CLEAR")) {
        f->n_stages = 0;
        snprintf(rb, size, "OK RCP %d CLEAR", n);
    } else if (sscanf(body, "RCP %d STAGE %d %lf %lf %lf", &n, &i, &rpm, &acc, &s) == 5) {
        if (i != f->n_stages + 1 || i > 8) {
            snprintf(rb, size, "ERR E03 RANGE");
            return;
        }
        f->stage_rpm[i - 1] = rpm;
        f->stage_acc[i - 1] = acc;
        f->stage_s[i - 1] = s;
        f->n_stages = i;
        snprintf(rb, size, "OK RCP %d STAGE %d", n, i);
    } else if (sscanf(body, "RCP? %d", &n) == 1) {
        int k = snprintf(rb, size, "OK RCP %d N=%d", n, f->n_stages);
        for (int j = 0; j < f->n_stages; j++)
            k += snprintf(rb + k,
                          size - (size_t)k,
                          " S%d=%.0f,%.0f,%.1f",
                          j + 1,
                          f->stage_rpm[j],
                          f->stage_acc[j],
                          f->stage_s[j]);
    } else if (sscanf(body, "WD %d", &n) == 1) {
        f->wd_s = n;
        snprintf(rb, size, "OK WD %d", n);
    } else if (!strcmp(verb, "ARM")) {
        if (f->lid != 1)
            snprintf(rb, size, "ERR E05 LID_OPEN");
        else if (!strcmp(f->state, "ERROR") || !strcmp(f->state, "RUNNING"))
            snprintf(rb, size, "ERR E04 STATE");
        else {
            snprintf(f->state, sizeof(f->state), "ARMED");
            snprintf(rb, size, "OK ARM");
        }
    } else if (sscanf(body, "RUN %d %39s", &n, job) == 2) {
        if (!strcmp(job, f->job) || !strcmp(job, f->last_job)) {
            snprintf(rb, size, "OK RUN %d %s", n, job);
        } else if (strcmp(f->state, "ARMED") != 0) {
            snprintf(rb, size, "ERR E04 STATE");
        } else {
            snprintf(f->job, sizeof(f->job), "%s", job);
            f->runs_executed++;
            f->run_started_ms = ll_monotonic_ms();
            if (f->overspeed_on_run) {
                snprintf(f->state, sizeof(f->state), "ERROR");
                snprintf(f->err, sizeof(f->err), "E07");
                snprintf(f->last_job, sizeof(f->last_job), "%s", job);
                snprintf(f->last_result, sizeof(f->last_result), "E07");
            } else {
                snprintf(f->state, sizeof(f->state), "RUNNING");
                /* as labsim and SPN/1 devices do: LAST? names the running job */
                snprintf(f->last_job, sizeof(f->last_job), "%s", job);
                snprintf(f->last_result, sizeof(f->last_result), "RUNNING");
            }
            snprintf(rb, size, "OK RUN %d %s", n, job);
        }
    } else if (!strcmp(verb, "ABORT")) {
        f->abort_frames++;
        if (!strcmp(f->state, "RUNNING")) {
            snprintf(f->state, sizeof(f->state), "DONE");
            snprintf(f->last_job, sizeof(f->last_job), "%s", f->job);
            snprintf(f->last_result, sizeof(f->last_result), "ABORTED");
        }
        snprintf(rb, size, "OK ABORT");
    } else if (!strcmp(verb, "LAST?")) {
        snprintf(rb, size, "OK JOB=%s RESULT=%s PEAK=3000 DUR=0.3", f->last_job, f->last_result);
    } else if (!strcmp(verb, "CLR")) {
        snprintf(f->state, sizeof(f->state), "IDLE");
        snprintf(f->err, sizeof(f->err), "0");
        snprintf(rb, size, "OK CLR");
    } else {
        snprintf(rb, size, "ERR E02 SYNTAX");
    }
}

static void fake_line(struct fake *f, const char *line)
{
    char reply[160], rb[140], body[140];
    const char *star = strrchr(line, '*'), *sp = strchr(line, ' ');
    unsigned seq;
    uint16_t crc;

    if (!star || !sp || sp > star || sscanf(line, "%u", &seq) != 1)
        return;
    crc = ll_crc16_ccitt_false((const uint8_t *)line, (size_t)(star - line));
    if (strtoul(star + 1, NULL, 16) != crc) {
        fake_reply(seq, "ERR E01 BAD_CRC", reply, sizeof(reply));
        (void)!write(f->master, reply, strlen(reply));
        return;
    }
    f->frames++;
    snprintf(body, sizeof(body), "%.*s", (int)(star - sp - 1), sp + 1);
    size_t used = strlen(f->log);
    snprintf(f->log + used, sizeof(f->log) - used, "%s\n", body);
    if (!strncmp(body, "RUN ", 4)) {
        if (f->run_frames < 4)
            f->run_seqs[f->run_frames] = seq;
        f->run_frames++;
    }
    crc = ll_crc16_ccitt_false((const uint8_t *)body, strlen(body));
    for (int i = 0; i < 8; i++)
        if (f->cache[i].reply[0] && f->cache[i].seq == seq) {
            if (f->cache[i].body_crc == crc)
                snprintf(reply, sizeof(reply), "%s", f->cache[i].reply);
            else
                fake_reply(seq, "ERR E04 SEQ_REUSED", reply, sizeof(reply));
            goto send;
        }
    fake_exec(f, body, rb, sizeof(rb));
    fake_reply(seq, rb, reply, sizeof(reply));
    f->cache[f->cache_next].seq = seq;
    f->cache[f->cache_next].body_crc = crc;
    snprintf(f->cache[f->cache_next].reply, sizeof(f->cache[0].reply), "%s", reply);
    f->cache_next = (f->cache_next + 1) % 8;
    if (!strncmp(body, "RUN ", 4) && f->drop_run_replies > 0) {
        f->drop_run_replies--;
        return;
    }
send:
    if (f->mute)
        return;
    if (f->noise)
        (void)!write(f->master, "\x07#garbage*12", 12);
    (void)!write(f->master, reply, strlen(reply));
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    char buf[512];
    size_t len = 0;

    for (;;) {
        struct pollfd p = {.fd = f->master, .events = POLLIN};
        int r = poll(&p, 1, 10);
        pthread_mutex_lock(&f->lock);
        if (f->stop) {
            pthread_mutex_unlock(&f->lock);
            return NULL;
        }
        if (!strcmp(f->state, "RUNNING")) {
            double total = 0;
            for (int i = 0; i < f->n_stages; i++)
                total += f->stage_s[i];
            if (ll_monotonic_ms() - f->run_started_ms >= (int64_t)(total * 1000)) {
                snprintf(f->state, sizeof(f->state), "DONE");
                snprintf(f->last_job, sizeof(f->last_job), "%s", f->job);
                snprintf(f->last_result, sizeof(f->last_result), "OK");
            }
        }
        if (r > 0 && (p.revents & POLLIN)) {
            ssize_t n = read(f->master, buf + len, sizeof(buf) - len - 1);
            if (n > 0) {
                char *nl;
                len += (size_t)n;
                buf[len] = '\0';
                while ((nl = memchr(buf, '\n', len))) {
                    *nl = '\0';
                    if (nl > buf && nl[-1] == '\r')
                        nl[-1] = '\0';
                    fake_line(f, buf);
                    len -= (size_t)(nl + 1 - buf);
                    memmove(buf, nl + 1, len);
                }
            }
        }
        pthread_mutex_unlock(&f->lock);
    }
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    struct termios t;

    assert_non_null(f);
    f->master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(f->master >= 0);
    assert_int_equal(grantpt(f->master), 0);
    assert_int_equal(unlockpt(f->master), 0);
    snprintf(f->slave_path, sizeof(f->slave_path), "%s", ptsname(f->master));
    tcgetattr(f->master, &t);
    cfmakeraw(&t);
    tcsetattr(f->master, TCSANOW, &t);
    snprintf(f->state, sizeof(f->state), "IDLE");
    snprintf(f->job, sizeof(f->job), "-");
    snprintf(f->last_job, sizeof(f->last_job), "-");
    snprintf(f->last_result, sizeof(f->last_result), "OK");
    snprintf(f->err, sizeof(f->err), "0");
    f->lid = 1;
    pthread_mutex_init(&f->lock, NULL);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    if (f->master >= 0)
        close(f->master);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* ---- helpers -------------------------------------------------------------------------- */

static struct labconf_instrument coater_inst(const char *device)
{
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    struct labconf_instrument in;

    assert_int_equal(labconf_load_default(&lab, &err), 0);
    in = *labconf_find_instrument(lab, "coater");
    labconf_free(&lab);
    snprintf(in.device, sizeof(in.device), "%s", device);
    in.response_timeout_ms = 100;
    in.poll_ms = 50;
    return in;
}

static struct drv_step spin_step(uint32_t id, double rpm)
{
    struct drv_step s;

    memset(&s, 0, sizeof(s));
    s.id = id;
    s.kind = DRV_STEP_SPIN;
    s.spin.n_stages = 2;
    s.spin.stages[0] = (struct drv_spin_stage){1000, 1000, 0.1};
    s.spin.stages[1] = (struct drv_spin_stage){rpm, 2000, 0.2};
    return s;
}

static enum drv_step_state
wait_end(struct drv *drv, const struct drv_step *s, struct drv_status *st)
{
    struct ll_error err = {0};
    int64_t deadline = ll_monotonic_ms() + 5000;

    while (ll_monotonic_ms() < deadline) {
        assert_int_equal(drv_step_poll(drv, s, st, &err), 0);
        if (st->state != DRV_STEP_RUNNING)
            return st->state;
        usleep(20000);
    }
    fail_msg("step did not end");
    return DRV_STEP_UNKNOWN;
}

static int lock_get(struct fake *f, const int *field)
{
    int v;
    pthread_mutex_lock(&f->lock);
    v = *field;
    pthread_mutex_unlock(&f->lock);
    return v;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_coater_spin_runs_once_to_done(void **state)
{
    struct fake *f = fake_start();
    struct labconf_instrument in = coater_inst(f->slave_path);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    struct drv_step s = spin_step(42, 4000);
    struct drv_status st;
    (void)state;

    assert_int_equal(drv_open(&in, &drv, &err), 0);
    int64_t started_ms = ll_monotonic_ms();
    assert_int_equal(drv_step_start(drv, &s, &err), 0);
    /* a query while the spin runs (LAST? already names it, RESULT=RUNNING) says running; the
     * spin lasts 0.3 s, so a query answered within 0.25 s must see it running */
    assert_int_equal(drv_step_query(drv, &s, &st, &err), 0);
    if (ll_monotonic_ms() - started_ms < 250)
        assert_int_equal(st.state, DRV_STEP_RUNNING);
    else
        assert_true(st.state == DRV_STEP_RUNNING || st.state == DRV_STEP_DONE);
    assert_int_equal(drv_step_start(drv, &s, &err), 0); /* idempotent */
    assert_int_equal(wait_end(drv, &s, &st), DRV_STEP_DONE);
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->runs_executed, 1);
    assert_int_equal(f->run_frames, 1);
    assert_non_null(strstr(f->log,
                           "RCP 1 CLEAR\nRCP 1 STAGE 1 1000 1000 0.1\nRCP 1 STAGE 2 4000 2000 "
                           "0.2\nRCP? 1\nWD 2\nARM\nSTATUS?\nRUN 1 J000042\n"));
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(drv_step_query(drv, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_DONE);
    s.id = 43;
    assert_int_equal(drv_step_query(drv, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_NOT_STARTED);
    s.id = 41; /* older than the coater's last job: it may have run before it */
    assert_int_equal(drv_step_query(drv, &s, &st, &err), 0);
    assert_int_equal(st.state, DRV_STEP_UNKNOWN);
    drv_close(&drv);
    fake_stop(f);
}

static void test_coater_limits_send_nothing(void **state)
{
    struct fake *f = fake_start();
    struct labconf_instrument in = coater_inst(f->slave_path);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    struct drv_step s = spin_step(50, 8001);
    (void)state;

    assert_int_equal(drv_open(&in, &drv, &err), 0);
    assert_int_equal(drv_step_start(drv, &s, &err), DRV_ELIMIT);
    assert_non_null(strstr(err.msg, "above the limit 8000 rpm"));
    s = spin_step(51, 3000);
    s.spin.stages[0].accel_rpm_s = 5001;
    assert_int_equal(drv_step_start(drv, &s, &err), DRV_ELIMIT);
    s = spin_step(52, 3000);
    s.spin.stages[1].seconds = -1;
    assert_int_equal(drv_step_start(drv, &s, &err), DRV_ELIMIT);
    s.kind = DRV_STEP_ANNEAL;
    assert_int_equal(drv_step_start(drv, &s, &err), -EINVAL);
    usleep(50000);
    assert_int_equal(lock_get(f, &f->frames), 0);
    drv_close(&drv);
    fake_stop(f);
}

static void test_coater_lid_open_refuses_before_run(void **state)
{
    struct fake *f = fake_start();
    struct labconf_instrument in = coater_inst(f->slave_path);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    struct drv_step s = spin_step(60, 3000);
    (void)state;

    f->lid = 0;
    assert_int_equal(drv_open(&in, &drv, &err), 0);
    assert_int_equal(drv_step_start(drv, &s, &err), DRV_EREFUSED);
    assert_non_null(strstr(err.msg, "lid is open"));
    assert_int_equal(lock_get(f, &f->run_frames), 0);
    drv_close(&drv);
    fake_stop(f);
}

static void test_coater_dropped_reply_retransmits_same_seq(void **state)
{
    struct fake *f = fake_start();
    struct labconf_instrument in = coater_inst(f->slave_path);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    struct drv_step s = spin_step(70, 3000);
    struct drv_status st;
    (void)state;

    f->drop_run_replies = 1;
    f->noise = true;
    assert_int_equal(drv_open(&in, &drv, &err), 0);
    if (drv_step_start(drv, &s, &err) != 0)
        fail_msg("%s", err.msg);
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->run_frames, 2);
    assert_int_equal(f->run_seqs[0], f->run_seqs[1]);
    assert_int_equal(f->runs_executed, 1);
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(wait_end(drv, &s, &st), DRV_STEP_DONE);
    assert_int_equal(lock_get(f, &f->runs_executed), 1);
    drv_close(&drv);
    fake_stop(f);
}

static void test_coater_overspeed_fails_as_refusal_and_aborts(void **state)
{
    struct fake *f = fake_start();
    struct labconf_instrument in = coater_inst(f->slave_path);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    struct drv_step s = spin_step(80, 3000);
    struct drv_status st;
    (void)state;

    f->overspeed_on_run = true;
    assert_int_equal(drv_open(&in, &drv, &err), 0);
    assert_int_equal(drv_step_start(drv, &s, &err), 0);
    assert_int_equal(wait_end(drv, &s, &st), DRV_STEP_FAILED);
    assert_int_equal(st.error, DRV_EREFUSED);
    assert_non_null(strstr(st.reason, "E07"));
    assert_true(st.safe_commanded);
    assert_int_equal(lock_get(f, &f->abort_frames), 1);
    /* the coater is in ERROR now: a new step is refused as a fault until cleared */
    s.id = 81;
    assert_int_equal(drv_step_start(drv, &s, &err), DRV_EFAULT);
    assert_int_equal(drv_clear_fault(drv, &err), 0);
    f->overspeed_on_run = false;
    assert_int_equal(drv_step_start(drv, &s, &err), 0);
    assert_int_equal(wait_end(drv, &s, &st), DRV_STEP_DONE);
    drv_close(&drv);
    fake_stop(f);
}

static void test_coater_silence_and_cut_line(void **state)
{
    struct fake *f = fake_start();
    struct labconf_instrument in = coater_inst(f->slave_path);
    struct drv *drv = NULL;
    struct ll_error err = {0};
    struct drv_status st;
    int64_t t0;
    (void)state;

    assert_int_equal(drv_open(&in, &drv, &err), 0);
    f->mute = true;
    t0 = ll_monotonic_ms();
    assert_int_equal(drv_status(drv, &st, &err), DRV_ETIMEDOUT);
    assert_true(ll_monotonic_ms() - t0 <= DRV_CALL_BUDGET(&in) + 200);
    assert_non_null(strstr(err.msg, "no answer"));
    f->mute = false;
    assert_int_equal(drv_status(drv, &st, &err), 0);
    assert_non_null(strstr(st.text, "STATE=IDLE"));
    /* cut the line: the master side goes away */
    pthread_mutex_lock(&f->lock);
    close(f->master);
    f->master = -1;
    f->stop = true;
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(drv_status(drv, &st, &err), DRV_ELINK);
    drv_close(&drv);
    fake_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coater_spin_runs_once_to_done),
        cmocka_unit_test(test_coater_limits_send_nothing),
        cmocka_unit_test(test_coater_lid_open_refuses_before_run),
        cmocka_unit_test(test_coater_dropped_reply_retransmits_same_seq),
        cmocka_unit_test(test_coater_overspeed_fails_as_refusal_and_aborts),
        cmocka_unit_test(test_coater_silence_and_cut_line),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

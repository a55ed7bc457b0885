/* coater — the spin coater over SPN/1 on a serial line (libserialport), hardware.md §2.3
 * and docs/instruments.md §3.
 *
 * Every command gets exactly one reply, paired by SEQ. After a time-out the driver sends
 * the SAME frame again (same SEQ, same body): the device answers a repeat from its reply
 * cache without executing it twice, so even RUN may be retransmitted. Lines that do not
 * parse, fail their CRC or carry another SEQ (noise, a late or duplicated reply) are
 * skipped. The input buffer is flushed before each new command, as modbus_flush() is for
 * Modbus. A step: STATUS? (reconcile by job id; lid must be closed), RCP n CLEAR,
 * RCP n STAGE ..., RCP? n (read back and compare), WD (about 3x the poll period), ARM,
 * STATUS? (LID=1 again, ARMED), RUN n J<step id>. E05/E06/E07/E09 are refusals: the step
 * fails and is not retried. Safe state: ABORT (controlled deceleration).
 *
 * libserialport returns SP_ERR_* = -1..-4, which collide with -EPERM, -ENOENT ...; every
 * result is translated at the call (sp_error()). libserialport 0.1.1 (Debian 12) cannot open
 * a pseudo-terminal: sp_get_port_by_name() looks the name up in /sys/class/tty (no entry for
 * /dev/pts/N) and sp_open() fails on TIOCMGET (ENOTTY on a pty); sigrok's libserialport
 * PR #4 declines pty support. So a /dev/pts/ device (labsim, socat), also through a symlink,
 * is opened with plain termios (raw, 8N1, no flow control) and read with poll(); real ports
 * use libserialport.
 */
#include "common/ll_time.h"
#include "drivers/driver_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libserialport.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#define RECIPE_SLOT 1

/* Translates a libserialport result (< 0) into DRV_ELINK with a sentence. */
static int sp_error(struct drv *drv, enum sp_return r, const char *what, struct ll_error *reterr)
{
    int code = DRV_ELINK;

    drv->connected = false;
    if (r == SP_ERR_FAIL) {
        char *msg = sp_last_error_message();
        int os = sp_last_error_code();
        ll_error_set(
            reterr, code, "%s %s: %s (errno %d)", what, drv->inst.device, msg ? msg : "failed", os);
        sp_free_error_message(msg);
        return code;
    }
    if (r == SP_ERR_MEM)
        return ll_error_set(reterr, -ENOMEM, "%s %s: out of memory", what, drv->inst.device);
    return ll_error_set(reterr,
                        code,
                        "%s %s: %s",
                        what,
                        drv->inst.device,
                        r == SP_ERR_SUPP ? "not supported" : "invalid argument");
}

static int os_error(struct drv *drv, int err, const char *what, struct ll_error *reterr)
{
    drv->connected = false;
    return ll_error_set(reterr, DRV_ELINK, "%s %s: %s", what, drv->inst.device, strerror(err));
}

static void coater_disconnect(struct drv *drv)
{
    if (drv->port) {
        sp_close(drv->port);
        sp_free_port(drv->port);
        drv->port = NULL;
    }
    if (drv->fd >= 0) {
        close(drv->fd);
        drv->fd = -1;
    }
    drv->connected = false;
    drv->rxlen = 0;
}

static speed_t termios_speed(int baud)
{
    switch (baud) {
    case 1200:
        return B1200;
    case 2400:
        return B2400;
    case 4800:
        return B4800;
    case 19200:
        return B19200;
    case 38400:
        return B38400;
    case 57600:
        return B57600;
    case 115200:
        return B115200;
    case 230400:
        return B230400;
    default:
        return B9600;
    }
}

/* A pseudo-terminal through termios (see the file comment for why not libserialport). */
static int open_pty(struct drv *drv, struct ll_error *reterr)
{
    const struct labconf_instrument *in = &drv->inst;
    struct termios t;

    drv->fd = open(in->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (drv->fd < 0)
        return os_error(drv, errno, "cannot open", reterr);
    if (tcgetattr(drv->fd, &t) != 0)
        return os_error(drv, errno, "cannot configure", reterr);
    cfmakeraw(&t);
    cfsetispeed(&t, termios_speed(in->baud));
    cfsetospeed(&t, termios_speed(in->baud));
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
    t.c_cflag |= (tcflag_t)(CLOCAL | CREAD);
    t.c_cflag |= in->data_bits == 7   ? CS7
                 : in->data_bits == 6 ? CS6
                 : in->data_bits == 5 ? CS5
                                      : CS8;
    if (in->parity != 'N')
        t.c_cflag |= (tcflag_t)(PARENB | (in->parity == 'O' ? PARODD : 0));
    if (in->stop_bits == 2)
        t.c_cflag |= CSTOPB;
    t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
    if (tcsetattr(drv->fd, TCSANOW, &t) != 0)
        return os_error(drv, errno, "cannot configure", reterr);
    tcflush(drv->fd, TCIOFLUSH);
    return 0;
}

/* True when path is (or a symlink resolves to) a pseudo-terminal slave /dev/pts/N. */
static bool is_pty(const char *path)
{
    char real[PATH_MAX];

    if (!strncmp(path, "/dev/pts/", 9))
        return true;
    return realpath(path, real) != NULL && !strncmp(real, "/dev/pts/", 9);
}

static int coater_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_instrument *in = &drv->inst;
    enum sp_parity parity = in->parity == 'E'   ? SP_PARITY_EVEN
                            : in->parity == 'O' ? SP_PARITY_ODD
                                                : SP_PARITY_NONE;
    enum sp_return r;
    int pty;

    (void)deadline_ms; /* opening a tty does not wait for the device */
    coater_disconnect(drv);
    if (access(in->device, R_OK | W_OK) != 0)
        return ll_error_set(reterr, DRV_ELINK, "cannot open %s: %s", in->device, strerror(errno));
    /* by what the path resolves to: labsim names a stable symlink (DIR/coater.tty), as udev's
     * /dev/serial/by-id links name a USB adapter, and re-points it after a replug */
    pty = is_pty(in->device);
    if (pty) {
        r = open_pty(drv, reterr);
        if (r)
            return r;
    } else {
        r = sp_get_port_by_name(in->device, &drv->port);
        if (r != SP_OK)
            return sp_error(drv, r, "cannot find", reterr);
        r = sp_open(drv->port, SP_MODE_READ_WRITE);
        if (r == SP_OK)
            r = sp_set_baudrate(drv->port, in->baud);
        if (r == SP_OK)
            r = sp_set_bits(drv->port, in->data_bits);
        if (r == SP_OK)
            r = sp_set_parity(drv->port, parity);
        if (r == SP_OK)
            r = sp_set_stopbits(drv->port, in->stop_bits);
        if (r == SP_OK)
            r = sp_set_flowcontrol(drv->port, SP_FLOWCONTROL_NONE);
        if (r != SP_OK)
            return sp_error(drv, r, "cannot open", reterr);
    }
    /* a random start, so that this session's SEQs are unlikely to meet the device's cache of
     * an earlier session's last 8 frames (a same-body hit would replay a stale reply; time and
     * pid alone gave overlapping ranges for operator commands run back to back) */
    uint16_t seq0 = 0;
    if (getrandom(&seq0, sizeof(seq0), GRND_NONBLOCK) != (ssize_t)sizeof(seq0))
        seq0 = (uint16_t)((uint64_t)ll_wall_ms() ^ ((uint64_t)getpid() << 5));
    drv->seq = seq0;
    drv->rxlen = 0;
    drv->connected = true;
    return 0;
}

/* Reads what is there (waiting up to timeout_ms for the first byte) into buf: the number
 * of bytes, 0 on time-out, or DRV_ELINK. */
static int
io_read(struct drv *drv, char *buf, size_t cap, int64_t timeout_ms, struct ll_error *reterr)
{
    struct pollfd p;
    ssize_t n;

    if (drv->port) {
        enum sp_return got = sp_blocking_read_next(drv->port, buf, cap, (unsigned)timeout_ms);
        return got < 0 ? sp_error(drv, got, "reading", reterr) : (int)got;
    }
    p.fd = drv->fd;
    p.events = POLLIN;
    if (poll(&p, 1, (int)timeout_ms) < 0)
        return errno == EINTR ? 0 : os_error(drv, errno, "reading", reterr);
    if (p.revents & POLLIN) {
        n = read(drv->fd, buf, cap);
        if (n > 0)
            return (int)n;
        if (n == 0)
            return os_error(drv, EIO, "reading", reterr);
        return errno == EAGAIN || errno == EINTR ? 0 : os_error(drv, errno, "reading", reterr);
    }
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return os_error(drv, EIO, "reading", reterr);
    return 0;
}

/* Writes the whole frame before the deadline: 0, DRV_ETIMEDOUT or DRV_ELINK. */
static int
io_write(struct drv *drv, const char *buf, size_t len, int64_t deadline_ms, struct ll_error *reterr)
{
    size_t done = 0;

    if (drv->port) {
        enum sp_return r =
            sp_blocking_write(drv->port, buf, len, (unsigned)ll_ms_until(deadline_ms) + 1);
        if (r < 0)
            return sp_error(drv, r, "writing", reterr);
        done = (size_t)r;
    }
    while (!drv->port && done < len) {
        struct pollfd p = {.fd = drv->fd, .events = POLLOUT};
        ssize_t n;
        if (poll(&p, 1, (int)ll_ms_until(deadline_ms)) <= 0)
            break;
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
            return os_error(drv, EIO, "writing", reterr);
        n = write(drv->fd, buf + done, len - done);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return os_error(drv, errno, "writing", reterr);
        if (n > 0)
            done += (size_t)n;
    }
    if (done != len)
        return ll_error_set(reterr, DRV_ETIMEDOUT, "the line did not take the frame in time");
    return 0;
}

/* Drops input that arrived before this command (late or duplicated replies, noise). */
static int io_flush_input(struct drv *drv, struct ll_error *reterr)
{
    drv->rxlen = 0;
    if (drv->port) {
        enum sp_return r = sp_flush(drv->port, SP_BUF_INPUT);
        return r < 0 ? sp_error(drv, r, "flushing", reterr) : 0;
    }
    if (tcflush(drv->fd, TCIFLUSH) != 0)
        return os_error(drv, errno, "flushing", reterr);
    return 0;
}

/* Reads one line (up to '\n', without "\r\n") into line; waits at most until
 * attempt_deadline. Returns its length, 0 on time-out, or a negative code. Over-long lines
 * are discarded up to their end. */
static int read_line(
    struct drv *drv, char *line, size_t size, int64_t attempt_deadline, struct ll_error *reterr)
{
    for (;;) {
        char *nl = memchr(drv->rxbuf, '\n', drv->rxlen);
        int64_t left;
        int got;

        if (nl) {
            size_t n = (size_t)(nl - drv->rxbuf);
            size_t take = n;
            if (take > 0 && drv->rxbuf[take - 1] == '\r')
                take--;
            if (take >= size)
                take = size - 1; /* an over-long line: parse fails, skipped */
            memcpy(line, drv->rxbuf, take);
            line[take] = '\0';
            memmove(drv->rxbuf, nl + 1, drv->rxlen - n - 1);
            drv->rxlen -= n + 1;
            return take == 0 ? 1 : (int)take; /* empty lines are noise: report as length 1 */
        }
        if (drv->rxlen == sizeof(drv->rxbuf))
            drv->rxlen = 0; /* no line end in 512 bytes: noise */
        left = ll_ms_until(attempt_deadline);
        if (left <= 0)
            return 0;
        got = io_read(drv, drv->rxbuf + drv->rxlen, sizeof(drv->rxbuf) - drv->rxlen, left, reterr);
        if (got < 0)
            return got;
        drv->rxlen += (size_t)got;
    }
}

/* Parses a reply line that may start with noise (labsim injects bytes without a line end
 * before a reply, and noise may end in digits): tries the line, then every suffix that
 * starts with a digit; the CRC rules out a false match. */
static int parse_noisy(const char *line, struct spn1_reply *rep)
{
    size_t len = strlen(line);

    if (spn1_parse_reply(line, len, rep) == 0)
        return 0;
    for (size_t k = 1; k + 7 <= len; k++)
        if (line[k] >= '0' && line[k] <= '9' && spn1_parse_reply(line + k, len - k, rep) == 0)
            return 0;
    return -EPROTO;
}

/* Sends body as one SPN/1 command and waits for its reply (see the file comment).
 * Returns 0 with *rep filled for OK, the spn1_error_code() of an ERR (with a sentence),
 * DRV_ETIMEDOUT / DRV_EPROTO when no matching reply came before deadline_ms, DRV_ELINK. */
static int transact(struct drv *drv,
                    const char *body,
                    struct spn1_reply *rep,
                    int64_t deadline_ms,
                    struct ll_error *reterr)
{
    char frame[SPN1_LINE_MAX + 8], line[SPN1_LINE_MAX + 8] = "";
    int len, garbled = 0, attempts = 0;
    bool lost = false; /* the link went down during this call (then no answer = link lost) */
    unsigned seq = drv->seq++;
    int reseq = 0;
    int r = 0;

    len = spn1_format(seq, body, frame, sizeof(frame));
    if (len < 0)
        return ll_error_set(reterr, -EINVAL, "'%s' is not a valid SPN/1 command", body);
    while (ll_ms_until(deadline_ms) > 5) {
        int64_t attempt_deadline;
        /* a lost link (unplugged, hung up) is reopened with back-off within the deadline and
         * the SAME frame sent again: the device answers a repeat from its reply cache */
        r = drv__reconnect(drv, deadline_ms, reterr);
        if (r)
            break; /* still down at the deadline, or another error */
        if (attempts == 0)
            r = io_flush_input(drv, reterr);
        if (r == DRV_ELINK) {
            lost = true;
            continue;
        }
        if (r)
            return r;
        attempt_deadline = ll_monotonic_ms() + drv->inst.response_timeout_ms;
        if (attempt_deadline > deadline_ms)
            attempt_deadline = deadline_ms;
        attempts++;
        r = io_write(drv, frame, (size_t)len, deadline_ms, reterr);
        if (r == DRV_ELINK) {
            lost = true;
            continue;
        }
        if (r)
            return r;
        for (;;) {
            int n = read_line(drv, line, sizeof(line), attempt_deadline, reterr);
            if (n == DRV_ELINK) {
                lost = true;
                break;
            }
            if (n < 0)
                return n;
            if (n == 0)
                break; /* time-out: retransmit the same frame */
            if (parse_noisy(line, rep) != 0) {
                garbled++;
                continue;
            }
            if (rep->seq != (seq & 0xffffu))
                continue; /* a late or duplicated reply to an earlier command */
            if (rep->ok)
                return 0;
            if (rep->err_code == 1) {
                garbled++;
                break; /* the device saw a damaged frame and did not execute it */
            }
            if (rep->err_code == 4 && !strcmp(rep->data, "SEQ_REUSED") && attempts == 1 &&
                reseq < 3) {
                /* the device caches this SEQ from another body (an earlier session) and did
                 * not execute the command: jump past the device's cache of 8 frames (the
                 * next SEQs are likely cached too) and send it again */
                reseq++;
                drv->seq = (uint16_t)(drv->seq + 16);
                seq = drv->seq++;
                len = spn1_format(seq, body, frame, sizeof(frame));
                attempts = 0;
                break;
            }
            return ll_error_set(reterr,
                                spn1_error_code(rep->err_code),
                                "'%s': ERR E%02d %s",
                                body,
                                rep->err_code,
                                rep->data);
        }
    }
    if (!drv->connected || r == -ENOMEM)
        return r ? r : ll_error_set(reterr, DRV_ELINK, "'%s': link lost", body);
    if (lost) /* reopened at the end of the budget, but no answer since the link went down */
        return ll_error_set(reterr, DRV_ELINK, "'%s': link lost, no answer since", body);
    if (garbled)
        return ll_error_set(reterr,
                            DRV_EPROTO,
                            "'%s': no valid reply in %d attempts (%d garbled lines)",
                            body,
                            attempts,
                            garbled);
    return ll_error_set(
        reterr, DRV_ETIMEDOUT, "'%s': no answer in %d attempts (time-out)", body, attempts);
}

/* The parsed STATUS? reply. */
struct coater_status {
    char state[16], job[40], err[8];
    double rpm, t;
    int lid, vac;
    char raw[SPN1_LINE_MAX];
};

static int
read_status(struct drv *drv, struct coater_status *st, int64_t deadline_ms, struct ll_error *reterr)
{
    struct spn1_reply rep;
    char v[40];
    int r = transact(drv, "STATUS?", &rep, deadline_ms, reterr);

    if (r)
        return r;
    memset(st, 0, sizeof(*st));
    snprintf(st->raw, sizeof(st->raw), "%s", rep.data);
    if (spn1_field(rep.data, "STATE", st->state, sizeof(st->state)) ||
        spn1_field(rep.data, "JOB", st->job, sizeof(st->job)) ||
        spn1_field(rep.data, "LID", v, sizeof(v)))
        return ll_error_set(
            reterr, DRV_EPROTO, "STATUS? reply lacks STATE, JOB or LID: '%s'", rep.data);
    st->lid = atoi(v);
    st->vac = spn1_field(rep.data, "VAC", v, sizeof(v)) == 0 ? atoi(v) : -1;
    st->rpm = spn1_field(rep.data, "RPM", v, sizeof(v)) == 0 ? strtod(v, NULL) : (double)NAN;
    st->t = spn1_field(rep.data, "T", v, sizeof(v)) == 0 ? strtod(v, NULL) : (double)NAN;
    if (spn1_field(rep.data, "ERR", st->err, sizeof(st->err)))
        snprintf(st->err, sizeof(st->err), "0");
    return 0;
}

/* The parsed LAST? reply. */
struct coater_last {
    char job[40], result[16];
};

static int
read_last(struct drv *drv, struct coater_last *last, int64_t deadline_ms, struct ll_error *reterr)
{
    struct spn1_reply rep;
    int r = transact(drv, "LAST?", &rep, deadline_ms, reterr);

    if (r)
        return r;
    if (spn1_field(rep.data, "JOB", last->job, sizeof(last->job)) ||
        spn1_field(rep.data, "RESULT", last->result, sizeof(last->result)))
        return ll_error_set(reterr, DRV_EPROTO, "LAST? reply lacks JOB or RESULT: '%s'", rep.data);
    return 0;
}

static void job_name(uint32_t id, char *buf, size_t size)
{
    snprintf(buf, size, "J%06u", (unsigned)id);
}

static double total_seconds(const struct drv_step *s)
{
    double t = 0.0;

    for (int i = 0; i < s->spin.n_stages; i++)
        t += s->spin.stages[i].seconds;
    return t;
}

/* The values sent for a stage, rounded as they go on the wire (never above the limits). */
static void
stage_wire(const struct drv *drv, const struct drv_spin_stage *st, long *rpm, long *acc, double *s)
{
    *rpm = lround(st->rpm);
    if (*rpm > (long)floor(drv->inst.limits.max_rpm))
        *rpm = (long)floor(drv->inst.limits.max_rpm);
    *acc = lround(st->accel_rpm_s);
    if (*acc > (long)floor(drv->inst.limits.max_accel_rpm_s))
        *acc = (long)floor(drv->inst.limits.max_accel_rpm_s);
    if (*acc < 1)
        *acc = 1;
    *s = round(st->seconds * 10.0) / 10.0;
    if (*s < 0.1)
        *s = 0.1;
}

/* Reads recipe RECIPE_SLOT back and compares it with the step's stages. */
static int verify_recipe(struct drv *drv,
                         const struct drv_step *step,
                         int64_t deadline_ms,
                         struct ll_error *reterr)
{
    struct spn1_reply rep;
    char body[32], key[16], v[64];
    int r;

    snprintf(body, sizeof(body), "RCP? %d", RECIPE_SLOT);
    r = transact(drv, body, &rep, deadline_ms, reterr);
    if (r)
        return r;
    if (spn1_field(rep.data, "N", v, sizeof(v)) || atoi(v) != step->spin.n_stages)
        return ll_error_set(
            reterr, DRV_EREFUSED, "recipe read back has other stages than sent: '%s'", rep.data);
    for (int i = 0; i < step->spin.n_stages; i++) {
        long rpm, acc;
        double s, grpm, gacc, gs;
        stage_wire(drv, &step->spin.stages[i], &rpm, &acc, &s);
        snprintf(key, sizeof(key), "S%d", i + 1);
        if (spn1_field(rep.data, key, v, sizeof(v)) ||
            sscanf(v, "%lf,%lf,%lf", &grpm, &gacc, &gs) != 3 || fabs(grpm - (double)rpm) > 0.5 ||
            fabs(gacc - (double)acc) > 0.5 || fabs(gs - s) > 0.05)
            return ll_error_set(reterr,
                                DRV_EREFUSED,
                                "recipe stage %d read back as '%s', sent %ld,%ld,%.1f",
                                i + 1,
                                v,
                                rpm,
                                acc,
                                s);
    }
    return 0;
}

static int coater_start(struct drv *drv,
                        const struct drv_step *step,
                        int64_t deadline_ms,
                        struct ll_error *reterr)
{
    struct coater_status st;
    struct spn1_reply rep;
    char job[24], body[96];
    int r, wd_s;

    job_name(step->id, job, sizeof(job));
    r = read_status(drv, &st, deadline_ms, reterr);
    if (r)
        return r;
    if (strcmp(st.job, job) == 0 && strcmp(st.state, "IDLE") != 0 && strcmp(st.state, "ARMED") != 0)
        return 0; /* this job already runs or ran: never start it twice */
    if (!strcmp(st.state, "RUNNING") || !strcmp(st.state, "STOPPING"))
        return ll_error_set(
            reterr, DRV_EBUSY, "coater is %s job %s; not started", st.state, st.job);
    if (!strcmp(st.state, "ERROR"))
        return ll_error_set(
            reterr, DRV_EFAULT, "coater is in ERROR (%s); not started (clear it first)", st.err);
    if (st.lid != 1)
        return ll_error_set(
            reterr, DRV_EREFUSED, "coater lid is open (LID=%d); not started", st.lid);

    snprintf(body, sizeof(body), "RCP %d CLEAR", RECIPE_SLOT);
    r = transact(drv, body, &rep, deadline_ms, reterr);
    for (int i = 0; r == 0 && i < step->spin.n_stages; i++) {
        long rpm, acc;
        double s;
        stage_wire(drv, &step->spin.stages[i], &rpm, &acc, &s);
        snprintf(
            body, sizeof(body), "RCP %d STAGE %d %ld %ld %.1f", RECIPE_SLOT, i + 1, rpm, acc, s);
        r = transact(drv, body, &rep, deadline_ms, reterr);
    }
    if (r == 0)
        r = verify_recipe(drv, step, deadline_ms, reterr);
    /* host watchdog: about 3x the poll period, at least 2 s */
    wd_s = (int)ceil(3.0 * drv->inst.poll_ms / 1000.0);
    if (wd_s < 2)
        wd_s = 2;
    snprintf(body, sizeof(body), "WD %d", wd_s);
    if (r == 0)
        r = transact(drv, body, &rep, deadline_ms, reterr);
    if (r == 0)
        r = transact(drv, "ARM", &rep, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "job %s not started", job);
    /* the lid precondition, checked again right before RUN */
    r = read_status(drv, &st, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "job %s not started", job);
    if (st.lid != 1)
        return ll_error_set(
            reterr, DRV_EREFUSED, "coater lid is open (LID=%d); job %s not started", st.lid, job);
    if (strcmp(st.state, "ARMED") != 0)
        return ll_error_set(
            reterr, DRV_EBUSY, "coater is %s, not ARMED; job %s not started", st.state, job);
    snprintf(body, sizeof(body), "RUN %d %s", RECIPE_SLOT, job);
    r = transact(drv, body, &rep, deadline_ms, reterr);
    if (r == DRV_ETIMEDOUT || r == DRV_EPROTO)
        return ll_error_prefix(reterr, "job %s: outcome unknown, query before retrying", job);
    return r;
}

/* Step state from LAST? for a finished job. */
static void
from_last(const struct coater_last *last, const struct drv_step *step, struct drv_status *ret)
{
    if (!strcmp(last->result, "OK")) {
        ret->state = DRV_STEP_DONE;
        ret->progress = 1.0;
        snprintf(ret->reason, sizeof(ret->reason), "spin %s done", last->job);
        return;
    }
    ret->state = DRV_STEP_FAILED;
    if (last->result[0] == 'E' && last->result[1] >= '0' && last->result[1] <= '9')
        ret->error = spn1_error_code(atoi(last->result + 1));
    else
        ret->error = DRV_EFAULT; /* ABORTED */
    snprintf(ret->reason,
             sizeof(ret->reason),
             "spin of step %u ended with %s",
             (unsigned)step->id,
             last->result);
}

static int coater_poll(struct drv *drv,
                       const struct drv_step *step,
                       struct drv_status *ret,
                       int64_t deadline_ms,
                       struct ll_error *reterr)
{
    struct coater_status st;
    struct coater_last last;
    char job[24];
    int r = read_status(drv, &st, deadline_ms, reterr);

    if (r)
        return r;
    job_name(step->id, job, sizeof(job));
    ret->rpm = st.rpm;
    snprintf(ret->text, sizeof(ret->text), "%s", st.raw);
    if (strcmp(st.job, job) == 0 &&
        (!strcmp(st.state, "RUNNING") || !strcmp(st.state, "STOPPING"))) {
        ret->state = DRV_STEP_RUNNING;
        if (isfinite(st.t) && total_seconds(step) > 0.0)
            ret->progress = fmin(st.t / total_seconds(step), 1.0);
        snprintf(ret->reason, sizeof(ret->reason), "spin %s %s at %.0f rpm", job, st.state, st.rpm);
        return 0;
    }
    r = read_last(drv, &last, deadline_ms, reterr);
    if (r)
        return r;
    if (strcmp(last.job, job) == 0) {
        from_last(&last, step, ret);
        return 0;
    }
    ret->state = DRV_STEP_FAILED;
    ret->error = !strcmp(st.state, "ERROR") ? spn1_error_code(atoi(st.err + 1)) : DRV_EFAULT;
    snprintf(ret->reason,
             sizeof(ret->reason),
             "coater %s (job %s, ERR=%s) and does not report job %s",
             st.state,
             st.job,
             st.err,
             job);
    return 0;
}

/* True when job (as the coater reports it) cannot be step id or later: none ("-"), or
 * "J<n>" with n < id (step ids increase in start order). */
static bool older_job(const char *job, uint32_t id)
{
    char *end;
    unsigned long n;

    if (!strcmp(job, "-"))
        return true;
    if (job[0] != 'J' || job[1] < '0' || job[1] > '9')
        return false;
    n = strtoul(job + 1, &end, 10);
    return *end == '\0' && n < id;
}

static int coater_query(struct drv *drv,
                        const struct drv_step *step,
                        struct drv_status *ret,
                        int64_t deadline_ms,
                        struct ll_error *reterr)
{
    struct coater_status st;
    struct coater_last last;
    char job[24];
    bool running;
    int r = read_status(drv, &st, deadline_ms, reterr);

    if (r == 0)
        r = read_last(drv, &last, deadline_ms, reterr);
    if (r)
        return r;
    job_name(step->id, job, sizeof(job));
    snprintf(ret->text, sizeof(ret->text), "%s", st.raw);
    running = !strcmp(st.state, "RUNNING") || !strcmp(st.state, "STOPPING");
    /* running first: while a spin runs, LAST? already names it with RESULT=RUNNING */
    if (strcmp(st.job, job) == 0 && running) {
        ret->state = DRV_STEP_RUNNING;
        snprintf(ret->reason, sizeof(ret->reason), "spin %s is running", job);
    } else if (strcmp(last.job, job) == 0) {
        from_last(&last, step, ret);
    } else if (!running && strcmp(st.job, job) != 0 && older_job(last.job, step->id) &&
               older_job(st.job, step->id)) {
        ret->state = DRV_STEP_NOT_STARTED;
        snprintf(ret->reason, sizeof(ret->reason), "the coater never ran %s", job);
    } else {
        ret->state = DRV_STEP_UNKNOWN;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "cannot tell: the coater remembers only its last job (%s %s, last %s)",
                 st.state,
                 st.job,
                 last.job);
    }
    return 0;
}

static int coater_safe(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    struct spn1_reply rep;
    struct coater_status st;
    int r = transact(drv, "ABORT", &rep, deadline_ms, reterr);

    if (r)
        return ll_error_prefix(reterr, "safe state");
    r = read_status(drv, &st, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "safe state");
    if (!strcmp(st.state, "RUNNING"))
        return ll_error_set(reterr, DRV_EREFUSED, "safe state: still RUNNING after ABORT");
    return 0;
}

static int coater_describe(
    struct drv *drv, char *buf, size_t size, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_instrument *in = &drv->inst;
    struct spn1_reply id;
    struct coater_status st;
    int r = transact(drv, "ID?", &id, deadline_ms, reterr);

    if (r == 0)
        r = read_status(drv, &st, deadline_ms, reterr);
    if (r)
        return r;
    snprintf(buf,
             size,
             "coater '%s': SPN/1 on %s %d %c%d%d, %s\n"
             "  limits: %.0f rpm, %.0f rpm/s; lid must be closed to run\n  %s",
             in->name,
             in->device,
             in->baud,
             in->parity,
             in->data_bits,
             in->stop_bits,
             id.data,
             in->limits.max_rpm,
             in->limits.max_accel_rpm_s,
             st.raw);
    return 0;
}

static int
coater_status(struct drv *drv, struct drv_status *ret, int64_t deadline_ms, struct ll_error *reterr)
{
    struct coater_status st;
    int r = read_status(drv, &st, deadline_ms, reterr);

    if (r)
        return r;
    ret->rpm = st.rpm;
    snprintf(ret->text, sizeof(ret->text), "%s", st.raw);
    return 0;
}

static int coater_clear_fault(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    struct spn1_reply rep;

    return transact(drv, "CLR", &rep, deadline_ms, reterr);
}

const struct drv_ops drv__coater_ops = {
    .kind = "spn1_coater",
    .connect = coater_connect,
    .describe = coater_describe,
    .status = coater_status,
    .start = coater_start,
    .poll = coater_poll,
    .query = coater_query,
    .safe = coater_safe,
    .clear_fault = coater_clear_fault,
    .disconnect = coater_disconnect,
};

/* mb — Modbus transactions for the robot and furnace drivers: connect with deadlines,
 * flush before every request, classify every failure, retry only what may be retried.
 *
 * libmodbus reports failures as -1 + errno; protocol exceptions are MODBUS_ENOBASE + code
 * and library-level problems (bad CRC, bad data, answer from another slave) sit just above
 * them. They become the DRV_E* codes of driver.h (reliability.md §4, F6-F8): 01/02 are a
 * configuration error (the lab definition names a function or register the instrument does
 * not have), 03/07 a refusal, 04/08 an instrument fault, 05 "accepted, poll for the
 * result", 06 "busy: back off and send again", 0A/0B link problems (a gateway cannot reach
 * the device, or it did not answer); time-outs are "no answer", garbled answers (bad CRC,
 * wrong length, another slave's id, an echo of our request) are retried like no answer, and
 * anything else means the link is lost (reconnect, then retry reads). MODBUS_ERROR_RECOVERY
 * is off: libmodbus's LINK recovery loops without bound, so we own every retry and its
 * deadline.
 *
 * Stale answers. modbus_flush() runs before each request, so bytes that already arrived
 * for an earlier request are dropped. It cannot drop an answer that is still on its way:
 * a serial slave that answers after our response time-out answers in order, and its late
 * answer to "read register A" has the slave id, function and length of the answer to the
 * next "read register B", so libmodbus would take it for B's (Modbus TCP is safe: libmodbus
 * checks the transaction id). So after a request went unanswered or was answered garbled
 * on RTU, the next request is preceded by a resynchronisation: read two registers at the
 * driver's sync address, a request no driver otherwise sends, until an answer to it (data
 * or an exception) arrives. Anything older arrives before it and fails libmodbus's checks
 * (wrong length), so once it is answered no earlier answer is left to be mistaken for a
 * later one.
 *
 * Half-open TCP connections. A Modbus TCP server that lost a connection (rebooted behind a
 * dead cable, a firewall that dropped its state) or whose handler for it hangs never answers
 * on it again, and nothing tells the client: TCP sees no error. So after
 * DRV__TCP_MUTE_RECONNECT requests in a row went unanswered, the connection is given up and
 * the next request goes out on a new one (reliability.md F10).
 */
#include "common/ll_time.h"
#include "drivers/driver_internal.h"

#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *exception_name(int code)
{
    switch (code) {
    case 1:
        return "illegal function";
    case 2:
        return "illegal data address";
    case 3:
        return "illegal data value";
    case 4:
        return "server device failure";
    case 5:
        return "acknowledge";
    case 6:
        return "server device busy";
    case 7:
        return "negative acknowledge";
    case 8:
        return "memory parity error";
    case 10:
        return "gateway path unavailable";
    case 11:
        return "gateway target failed to respond";
    default:
        return "unknown exception";
    }
}

/* Sets the per-attempt response timeout: the configured one, but never past the deadline.
 * Returns false when less than 5 ms are left. */
static bool set_attempt_timeout(struct drv *drv, int64_t deadline_ms)
{
    int64_t left = ll_ms_until(deadline_ms);
    int64_t t = drv->inst.response_timeout_ms;

    if (left < 5)
        return false;
    if (t > left)
        t = left;
    modbus_set_response_timeout(drv->mb, (uint32_t)(t / 1000), (uint32_t)((t % 1000) * 1000));
    return true;
}

void drv__mb_configure(struct drv *drv)
{
    int bt = drv->inst.byte_timeout_ms;

    modbus_set_error_recovery(drv->mb, MODBUS_ERROR_RECOVERY_NONE);
    modbus_set_byte_timeout(drv->mb, (uint32_t)(bt / 1000), (uint32_t)((bt % 1000) * 1000));
    modbus_set_response_timeout(drv->mb,
                                (uint32_t)(drv->inst.response_timeout_ms / 1000),
                                (uint32_t)((drv->inst.response_timeout_ms % 1000) * 1000));
}

int drv__mb_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_instrument *in = &drv->inst;

    if (!drv->mb) {
        if (in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP) {
            char port[16];
            snprintf(port, sizeof(port), "%d", in->port);
            drv->mb = modbus_new_tcp_pi(in->host, port);
        } else {
            drv->mb =
                modbus_new_rtu(in->device, in->baud, in->parity, in->data_bits, in->stop_bits);
        }
        if (!drv->mb)
            return ll_error_set(
                reterr, -ENOMEM, "cannot create the Modbus context: %s", modbus_strerror(errno));
        if (modbus_set_slave(drv->mb,
                             in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP ? in->unit_id
                                                                           : in->slave) != 0)
            return ll_error_set(reterr, -EINVAL, "bad slave id: %s", modbus_strerror(errno));
    } else {
        modbus_close(drv->mb);
    }
    drv__mb_configure(drv);
    /* libmodbus bounds a TCP connect by the response timeout (non-blocking connect) */
    if (!set_attempt_timeout(drv, deadline_ms))
        return ll_error_set(reterr, DRV_ETIMEDOUT, "no time left to connect");
    if (modbus_connect(drv->mb) != 0) {
        int e = errno;
        if (in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP)
            return ll_error_set(reterr,
                                DRV_ELINK,
                                "cannot connect to %s:%d: %s",
                                in->host,
                                in->port,
                                modbus_strerror(e));
        return ll_error_set(
            reterr, DRV_ELINK, "cannot open %s: %s", in->device, modbus_strerror(e));
    }
    drv__mb_configure(drv);
    drv->connected = true;
    drv->mb_timeouts = 0;
    return 0;
}

int drv__mb_error(struct drv *drv, int err, const char *what, struct ll_error *reterr)
{
    bool rtu = drv->mb_sync_addr >= 0;

    if (err != ETIMEDOUT)
        drv->mb_timeouts = 0; /* an answer (or a lost link, reopened anyway) */
    if (err > MODBUS_ENOBASE && err <= MODBUS_ENOBASE + 11) {
        int code = err - MODBUS_ENOBASE;
        const char *name = exception_name(code);
        switch (code) {
        case 1:
        case 2:
            return ll_error_set(reterr,
                                DRV_ECONFIG,
                                "%s: refused (exception %02X: %s): a configuration error: the "
                                "instrument does not have this %s; check the lab definition's "
                                "register map and driver",
                                what,
                                code,
                                name,
                                code == 1 ? "function" : "register");
        case 4:
        case 8:
            return ll_error_set(
                reterr, DRV_EFAULT, "%s: instrument fault (exception %02X: %s)", what, code, name);
        case 5:
            return ll_error_set(reterr,
                                DRV__EACCEPTED,
                                "%s: accepted, not done yet (exception %02X: %s)",
                                what,
                                code,
                                name);
        case 6:
            return ll_error_set(
                reterr, DRV_EBUSY, "%s: busy (exception %02X: %s)", what, code, name);
        case 10:
            drv->connected = false;
            return ll_error_set(
                reterr, DRV_ELINK, "%s: link lost (exception %02X: %s)", what, code, name);
        case 11:
            drv->mb_unsynced = rtu;
            return ll_error_set(
                reterr, DRV_ETIMEDOUT, "%s: no answer (exception %02X: %s)", what, code, name);
        default:
            return ll_error_set(
                reterr, DRV_EREFUSED, "%s: refused (exception %02X: %s)", what, code, name);
        }
    }
    switch (err) {
    case ETIMEDOUT:
        drv->mb_unsynced = rtu;
        /* Modbus TCP: a connection that leaves requests unanswered in a row may be
         * half-open (the server lost it, or its handler hangs), and then no answer ever
         * comes on it again: the next request goes out on a new one (drv__reconnect) */
        if (!rtu && ++drv->mb_timeouts >= DRV__TCP_MUTE_RECONNECT) {
            drv->mb_timeouts = 0;
            drv->connected = false;
        }
        return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no answer (time-out)", what);
    case EMBBADCRC:
    case EMBBADDATA:
    case EMBBADEXC:
    case EMBUNKEXC:
    case EMBMDATA:
    case EMBBADSLAVE:
        drv->mb_unsynced = rtu;
        return ll_error_set(
            reterr, DRV_EPROTO, "%s: garbled answer (%s)", what, modbus_strerror(err));
    default:
        /* ECONNRESET, EPIPE, EBADF, ECONNREFUSED, EIO, ENXIO ...: the link is gone */
        drv->connected = false;
        return ll_error_set(reterr, DRV_ELINK, "%s: link lost (%s)", what, modbus_strerror(err));
    }
}

bool drv__mb_refusal(int r)
{
    return r == DRV_EREFUSED || r == DRV_ECONFIG || r == DRV_EFAULT;
}

/* Makes the link ready for a request: flushes what has arrived, and after an unanswered or
 * garbled request (RTU) reads the sync registers until an answer to that read arrives (see
 * the top of this file). Returns 0, or the kind of the sync read's last failure (no answer,
 * garbled) with a sentence when the deadline comes first. */
static int prepare(struct drv *drv, const char *what, int64_t deadline_ms, struct ll_error *reterr)
{
    uint16_t sync[2];
    int e;

    modbus_flush(drv->mb);
    if (!drv->mb_unsynced)
        return 0;
    for (int attempt = 0;; attempt++) {
        if (modbus_read_registers(drv->mb, drv->mb_sync_addr, 2, sync) == 2)
            break;
        e = errno;
        if (e > MODBUS_ENOBASE && e <= MODBUS_ENOBASE + 11)
            break; /* an exception is an answer too */
        if (e != ETIMEDOUT && e < EMBBADCRC)
            return 0; /* the link itself failed: the request will say so */
        modbus_flush(drv->mb);
        if (!drv__backoff(attempt, deadline_ms) || !set_attempt_timeout(drv, deadline_ms))
            return ll_error_set(reterr,
                                e == ETIMEDOUT ? DRV_ETIMEDOUT : DRV_EPROTO,
                                "%s: %s while resynchronising after a lost or garbled answer",
                                what,
                                e == ETIMEDOUT ? "no answer (time-out)" : modbus_strerror(e));
    }
    /* answered: every older answer has arrived before this one and was dropped */
    drv->mb_unsynced = false;
    if (!set_attempt_timeout(drv, deadline_ms))
        return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left after resynchronising", what);
    return 0;
}

bool drv__backoff(int attempt, int64_t deadline_ms)
{
    int64_t ms = 25;
    int64_t left;
    struct timespec ts;

    for (int i = 0; i < attempt && ms < 400; i++)
        ms *= 2;
    if (ms > 400)
        ms = 400;
    left = ll_ms_until(deadline_ms);
    if (left <= 5)
        return false;
    if (ms > left - 5)
        ms = left - 5;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return ll_ms_until(deadline_ms) > 5;
}

int drv__mb_read(struct drv *drv,
                 bool input,
                 int addr,
                 int n,
                 uint16_t *dest,
                 int64_t deadline_ms,
                 struct ll_error *reterr)
{
    char what[96];
    int r = 0;

    snprintf(what,
             sizeof(what),
             "reading %s registers %d-%d",
             input ? "input" : "holding",
             addr,
             addr + n - 1);
    for (int attempt = 0;; attempt++) {
        if (!drv->connected) {
            r = drv__reconnect(drv, deadline_ms, reterr);
            if (r)
                goto retry;
        }
        if (!set_attempt_timeout(drv, deadline_ms))
            break;
        r = prepare(drv, what, deadline_ms, reterr);
        if (r)
            break;
        if ((input ? modbus_read_input_registers(drv->mb, addr, n, dest)
                   : modbus_read_registers(drv->mb, addr, n, dest)) == n) {
            drv->mb_timeouts = 0;
            return 0;
        }
        /* busy (06) and accepted (05) are polled like no answer; refusals are final */
        r = drv__mb_error(drv, errno, what, reterr);
        if (drv__mb_refusal(r))
            return r;
    retry:
        if (!drv__backoff(attempt, deadline_ms))
            break;
    }
    if (r == 0) /* no attempt fitted in the time left */
        r = ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left before the deadline", what);
    if (r == DRV__EACCEPTED) /* still working on it at the deadline */
        r = ll_error_set(reterr, DRV_EBUSY, "%s: acknowledged (exception 05) but no data", what);
    return r;
}

int drv__mb_write_regs_once(struct drv *drv,
                            int addr,
                            int n,
                            const uint16_t *src,
                            int64_t deadline_ms,
                            struct ll_error *reterr)
{
    char what[96];
    int r;

    snprintf(what, sizeof(what), "writing registers %d-%d", addr, addr + n - 1);
    if (!drv->connected) {
        r = drv__reconnect(drv, deadline_ms, reterr);
        if (r)
            return r;
    }
    if (!set_attempt_timeout(drv, deadline_ms))
        return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left before the deadline", what);
    r = prepare(drv, what, deadline_ms, reterr);
    if (r)
        return r;
    if (modbus_write_registers(drv->mb, addr, n, src) == n) {
        drv->mb_timeouts = 0;
        return 0;
    }
    return drv__mb_error(drv, errno, what, reterr);
}

/* Exception 05 to a write of value at addr: the instrument carries it out; read the
 * register back until it holds value (or the deadline). */
static int await_written(struct drv *drv,
                         int addr,
                         uint16_t value,
                         const char *what,
                         int64_t deadline_ms,
                         struct ll_error *reterr)
{
    struct ll_error readerr = {0};
    uint16_t back = 0;
    int r;

    for (int attempt = 0;; attempt++) {
        r = drv__mb_read(drv, false, addr, 1, &back, deadline_ms, &readerr);
        if (r == 0 && back == value)
            return 0;
        if (r != 0 || !drv__backoff(attempt, deadline_ms))
            return ll_error_set(reterr,
                                drv__mb_refusal(r) ? r : DRV_ETIMEDOUT,
                                "%s: acknowledged (exception 05), but %s%s: outcome unknown",
                                what,
                                r ? "the read-back failed: " : "the value never showed",
                                r ? readerr.msg : "");
    }
}

int drv__mb_write_reg(
    struct drv *drv, int addr, uint16_t value, int64_t deadline_ms, struct ll_error *reterr)
{
    char what[64];
    struct ll_error readerr = {0};
    uint16_t back = 0;
    int r;

    snprintf(what, sizeof(what), "writing register %d = %u", addr, (unsigned)value);
    for (int attempt = 0, busy = 0; attempt < 2;) {
        if (!drv->connected) {
            r = drv__reconnect(drv, deadline_ms, reterr);
            if (r)
                return r;
        }
        if (!set_attempt_timeout(drv, deadline_ms))
            return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left", what);
        r = prepare(drv, what, deadline_ms, reterr);
        if (r)
            return r;
        if (modbus_write_register(drv->mb, addr, value) == 1) {
            drv->mb_timeouts = 0;
            return 0;
        }
        r = drv__mb_error(drv, errno, what, reterr);
        if (drv__mb_refusal(r))
            return r;
        if (r == DRV__EACCEPTED)
            return await_written(drv, addr, value, what, deadline_ms, reterr);
        if (r == DRV_EBUSY) {
            /* 06: not carried out; send it again after a back-off */
            if (busy == DRV__BUSY_RESENDS || !drv__backoff(busy++, deadline_ms))
                return r;
            continue;
        }
        /* outcome unknown: read back before anything else */
        r = drv__mb_read(drv, false, addr, 1, &back, deadline_ms, &readerr);
        if (r)
            return ll_error_set(reterr,
                                drv__mb_refusal(r) ? r : DRV_ETIMEDOUT,
                                "%s: no answer, and the read-back failed too (%s): outcome unknown",
                                what,
                                readerr.msg);
        if (back == value)
            return 0;
        attempt++;
    }
    return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: not confirmed after two attempts", what);
}

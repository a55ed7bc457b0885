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
 * later one. On a line shared by several slaves (drivers/bus.h), a late answer of slave A
 * that arrives during B's transaction carries A's id and fails libmodbus's slave check
 * (EMBBADSLAVE): B's read is retried after B resynchronises, and A resynchronises at its next
 * request; an answer is only ever taken from the slave that was asked.
 *
 * The line (RTU). Every transaction takes the bus's slot first (take(): by the call's
 * priority, after the inter-frame gap and the line budget's pause), points the line's one
 * context at this slave, and gives the slot back (give()) with the bytes that crossed the
 * line, so the bus can account line time; back-off sleeps happen with the line given back.
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

/* Modbus RTU: opens the bus's port, or adopts it when another instrument on the line has
 * opened it already. */
static int rtu_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    int r;

    if (drv__bus_acquire(drv->bus, drv->bus_prio, false, deadline_ms) != 0)
        return ll_error_set(reterr,
                            DRV_ETIMEDOUT,
                            "no slot on the line %s to open it before the deadline",
                            drv_bus_device(drv->bus));
    r = drv__bus_open(drv->bus, &drv->bus_gen, reterr);
    drv__bus_release(drv->bus, 0, 0);
    if (r)
        return r;
    drv->mb = drv__bus_modbus(drv->bus);
    drv->connected = true;
    drv->mb_timeouts = 0;
    return 0;
}

int drv__mb_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_instrument *in = &drv->inst;

    if (drv->bus)
        return rtu_connect(drv, deadline_ms, reterr);
    if (!drv->mb) {
        char port[16];
        snprintf(port, sizeof(port), "%d", in->port);
        drv->mb = modbus_new_tcp_pi(in->host, port);
        if (!drv->mb)
            return ll_error_set(
                reterr, -ENOMEM, "cannot create the Modbus context: %s", modbus_strerror(errno));
        if (modbus_set_slave(drv->mb, in->unit_id) != 0)
            return ll_error_set(reterr, -EINVAL, "bad unit id: %s", modbus_strerror(errno));
    } else {
        modbus_close(drv->mb);
    }
    drv__mb_configure(drv);
    /* libmodbus bounds a TCP connect by the response timeout (non-blocking connect) */
    if (!set_attempt_timeout(drv, deadline_ms))
        return ll_error_set(reterr, DRV_ETIMEDOUT, "no time left to connect");
    if (modbus_connect(drv->mb) != 0)
        return ll_error_set(reterr,
                            DRV_ELINK,
                            "cannot connect to %s:%d: %s",
                            in->host,
                            in->port,
                            modbus_strerror(errno));
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

/* Modbus RTU: waits for a slot on the line (by the call's priority, drivers/bus.h) and points
 * the line's context at this instrument (slave id, time-outs). Returns 0 with the bus held;
 * DRV_ETIMEDOUT (no slot before the deadline) or DRV_ELINK (another instrument found the
 * line lost: reconnect) with nothing held. Modbus TCP: 0, nothing to take. */
static int take(struct drv *drv, const char *what, int64_t deadline_ms, struct ll_error *reterr)
{
    if (!drv->bus)
        return 0;
    if (drv__bus_acquire(drv->bus, drv->bus_prio, drv->bus_first, deadline_ms - 5) != 0)
        return ll_error_set(reterr,
                            DRV_ETIMEDOUT,
                            "%s: no slot on the line %s before the deadline",
                            what,
                            drv_bus_device(drv->bus));
    drv->bus_first = false;
    if (!drv__bus_current(drv->bus, &drv->bus_gen)) {
        drv__bus_release(drv->bus, 0, 0);
        drv->connected = false;
        return ll_error_set(reterr,
                            DRV_ELINK,
                            "%s: link lost (the line %s is down)",
                            what,
                            drv_bus_device(drv->bus));
    }
    modbus_set_slave(drv->mb, drv->inst.slave);
    drv__mb_configure(drv);
    return 0;
}

/* Gives the line back after one transaction of tx request bytes and rx answer bytes (0:
 * none came); a lost link this transaction found is the line's. */
static void give(struct drv *drv, size_t tx, size_t rx)
{
    if (!drv->bus)
        return;
    if (!drv->connected)
        drv__bus_lost(drv->bus);
    drv__bus_release(drv->bus, tx, rx);
}

/* The answer bytes on the line of a transaction that failed with errno e, whose full answer
 * has `full` bytes: an exception answer has 5, no answer 0, a garbled one about `full`. */
static size_t answer_bytes(int e, size_t full)
{
    if (e > MODBUS_ENOBASE && e <= MODBUS_ENOBASE + 11)
        return 5;
    if (e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC || e == EMBMDATA ||
        e == EMBBADSLAVE)
        return full;
    return 0;
}

/* After an unanswered or garbled request (RTU), reads the sync registers until an answer to
 * that read arrives (see the top of this file), one slot of the line per attempt, giving the
 * line back during the back-off. Returns 0 (synchronised, or the link itself failed: the
 * request will say so), or the kind of the last failure with a sentence when the deadline
 * comes first. */
static int resync(struct drv *drv, const char *what, int64_t deadline_ms, struct ll_error *reterr)
{
    uint16_t sync[2];

    for (int attempt = 0; drv->mb_unsynced; attempt++) {
        int got, e, r = take(drv, what, deadline_ms, reterr);

        if (r)
            return r;
        if (!set_attempt_timeout(drv, deadline_ms)) {
            give(drv, 0, 0);
            return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left to resynchronise", what);
        }
        modbus_flush(drv->mb);
        got = modbus_read_registers(drv->mb, drv->mb_sync_addr, 2, sync);
        e = errno;
        give(drv, 8, got == 2 ? 9 : answer_bytes(e, 9));
        if (got == 2 || (e > MODBUS_ENOBASE && e <= MODBUS_ENOBASE + 11)) {
            /* answered (an exception is an answer too): every older answer has arrived
             * before this one and was dropped */
            drv->mb_unsynced = false;
            return 0;
        }
        if (e != ETIMEDOUT && e < EMBBADCRC)
            return 0; /* the link itself failed: the request will say so */
        if (!drv__backoff(attempt, deadline_ms))
            return ll_error_set(reterr,
                                e == ETIMEDOUT ? DRV_ETIMEDOUT : DRV_EPROTO,
                                "%s: %s while resynchronising after a lost or garbled answer",
                                what,
                                e == ETIMEDOUT ? "no answer (time-out)" : modbus_strerror(e));
    }
    return 0;
}

/* Makes the link ready for a request: resynchronised if needed, a slot on the line taken,
 * the attempt's time-out set and what has arrived flushed. Returns 0 with the bus held (RTU:
 * give it back after the request), or a DRV_E* code with a sentence and nothing held. */
static int prepare(struct drv *drv, const char *what, int64_t deadline_ms, struct ll_error *reterr)
{
    int r = resync(drv, what, deadline_ms, reterr);

    if (r == 0)
        r = take(drv, what, deadline_ms, reterr);
    if (r)
        return r;
    if (!set_attempt_timeout(drv, deadline_ms)) {
        give(drv, 0, 0);
        return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left before the deadline", what);
    }
    modbus_flush(drv->mb);
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
    size_t full = 5 + 2 * (size_t)n; /* the answer's bytes on the line */
    char what[96];
    int r = 0;

    snprintf(what,
             sizeof(what),
             "reading %s registers %d-%d",
             input ? "input" : "holding",
             addr,
             addr + n - 1);
    for (int attempt = 0;; attempt++) {
        int got, e;

        if (!drv->connected) {
            r = drv__reconnect(drv, deadline_ms, reterr);
            if (r)
                goto retry;
        }
        if (ll_ms_until(deadline_ms) < 5)
            break;
        r = prepare(drv, what, deadline_ms, reterr);
        if (r == DRV_ELINK)
            goto retry; /* the line was found lost by another instrument: reconnect */
        if (r)
            break;
        got = input ? modbus_read_input_registers(drv->mb, addr, n, dest)
                    : modbus_read_registers(drv->mb, addr, n, dest);
        e = errno;
        if (got == n) {
            give(drv, 8, full);
            drv->mb_timeouts = 0;
            return 0;
        }
        /* busy (06) and accepted (05) are polled like no answer; refusals are final */
        r = drv__mb_error(drv, e, what, reterr);
        give(drv, 8, answer_bytes(e, full));
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
    size_t tx = 9 + 2 * (size_t)n;
    char what[96];
    int r, got, e;

    snprintf(what, sizeof(what), "writing registers %d-%d", addr, addr + n - 1);
    for (int tries = 0; tries < 2; tries++) {
        if (!drv->connected) {
            r = drv__reconnect(drv, deadline_ms, reterr);
            if (r)
                return r;
        }
        r = prepare(drv, what, deadline_ms, reterr);
        if (r != DRV_ELINK || drv->connected)
            break; /* else nothing sent: the line was found lost by another instrument */
    }
    if (r)
        return r;
    got = modbus_write_registers(drv->mb, addr, n, src);
    e = errno;
    if (got == n) {
        give(drv, tx, 8);
        drv->mb_timeouts = 0;
        return 0;
    }
    r = drv__mb_error(drv, e, what, reterr);
    give(drv, tx, answer_bytes(e, 8));
    return r;
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
        int got, e;

        if (!drv->connected) {
            r = drv__reconnect(drv, deadline_ms, reterr);
            if (r)
                return r;
        }
        r = prepare(drv, what, deadline_ms, reterr);
        if (r == DRV_ELINK && !drv->connected)
            continue; /* nothing sent: the line was found lost by another instrument */
        if (r)
            return r;
        got = modbus_write_register(drv->mb, addr, value);
        e = errno;
        if (got == 1) {
            give(drv, 8, 8);
            drv->mb_timeouts = 0;
            return 0;
        }
        r = drv__mb_error(drv, e, what, reterr);
        give(drv, 8, answer_bytes(e, 8));
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

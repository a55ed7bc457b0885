/* mb — Modbus transactions for the robot and furnace drivers: connect with deadlines,
 * flush before every request, classify every failure, retry only what may be retried.
 *
 * libmodbus reports failures as -1 + errno; protocol exceptions are MODBUS_ENOBASE + code
 * and library-level problems (bad CRC, bad data, answer from another slave) sit just above
 * them. reliability.md §2.2 sorts them into four kinds, which become the DRV_E* codes of
 * driver.h: refused (exception: never retried), busy (05/06: retried by the caller later),
 * no answer (time-out, garbled: reads retried here, writes read back), link lost (reconnect,
 * then reads retried here). MODBUS_ERROR_RECOVERY is off: libmodbus's LINK recovery loops
 * without bound, so we own every retry and its deadline. modbus_flush() runs before each
 * request so that a late answer to an earlier request is never read as this one's.
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
    return 0;
}

int drv__mb_error(struct drv *drv, int err, const char *what, struct ll_error *reterr)
{
    if (err > MODBUS_ENOBASE && err <= MODBUS_ENOBASE + 11) {
        int code = err - MODBUS_ENOBASE;
        int kind = (code == 5 || code == 6) ? DRV_EBUSY : DRV_EREFUSED;
        return ll_error_set(reterr,
                            kind,
                            "%s: %s (exception %02d: %s)",
                            what,
                            kind == DRV_EBUSY ? "busy" : "refused",
                            code,
                            exception_name(code));
    }
    switch (err) {
    case ETIMEDOUT:
        return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no answer (time-out)", what);
    case EMBBADCRC:
    case EMBBADDATA:
    case EMBBADEXC:
    case EMBUNKEXC:
    case EMBMDATA:
    case EMBBADSLAVE:
        return ll_error_set(
            reterr, DRV_EPROTO, "%s: garbled answer (%s)", what, modbus_strerror(err));
    default:
        /* ECONNRESET, EPIPE, EBADF, ECONNREFUSED, EIO, ENXIO ...: the link is gone */
        drv->connected = false;
        return ll_error_set(reterr, DRV_ELINK, "%s: link lost (%s)", what, modbus_strerror(err));
    }
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
            r = drv__mb_connect(drv, deadline_ms, reterr);
            if (r)
                goto retry;
        }
        if (!set_attempt_timeout(drv, deadline_ms))
            break;
        modbus_flush(drv->mb);
        if ((input ? modbus_read_input_registers(drv->mb, addr, n, dest)
                   : modbus_read_registers(drv->mb, addr, n, dest)) == n)
            return 0;
        r = drv__mb_error(drv, errno, what, reterr);
        if (r == DRV_EREFUSED)
            return r;
    retry:
        if (!drv__backoff(attempt, deadline_ms))
            break;
    }
    if (r == 0) /* no attempt fitted in the time left */
        r = ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left before the deadline", what);
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
        r = drv__mb_connect(drv, deadline_ms, reterr);
        if (r)
            return r;
    }
    if (!set_attempt_timeout(drv, deadline_ms))
        return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left before the deadline", what);
    modbus_flush(drv->mb);
    if (modbus_write_registers(drv->mb, addr, n, src) == n)
        return 0;
    return drv__mb_error(drv, errno, what, reterr);
}

int drv__mb_write_reg(
    struct drv *drv, int addr, uint16_t value, int64_t deadline_ms, struct ll_error *reterr)
{
    char what[64];
    struct ll_error readerr = {0};
    uint16_t back = 0;
    int r;

    snprintf(what, sizeof(what), "writing register %d = %u", addr, (unsigned)value);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!drv->connected) {
            r = drv__mb_connect(drv, deadline_ms, reterr);
            if (r)
                return r;
        }
        if (!set_attempt_timeout(drv, deadline_ms))
            return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: no time left", what);
        modbus_flush(drv->mb);
        if (modbus_write_register(drv->mb, addr, value) == 1)
            return 0;
        r = drv__mb_error(drv, errno, what, reterr);
        if (r == DRV_EREFUSED || r == DRV_EBUSY)
            return r;
        /* outcome unknown: read back before anything else */
        r = drv__mb_read(drv, false, addr, 1, &back, deadline_ms, &readerr);
        if (r)
            return ll_error_set(reterr,
                                r == DRV_EREFUSED ? r : DRV_ETIMEDOUT,
                                "%s: no answer, and the read-back failed too (%s): outcome unknown",
                                what,
                                readerr.msg);
        if (back == value)
            return 0;
    }
    return ll_error_set(reterr, DRV_ETIMEDOUT, "%s: not confirmed after two attempts", what);
}

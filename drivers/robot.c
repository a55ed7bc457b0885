/* robot — the liquid-handling robot over Modbus TCP (docs/instruments.md §1,
 * hardware.md §3.3).
 *
 * A step is one job: the whole job block (JOB_ID high word first, ACTION, RECIPE = 0,
 * DEST_PLATE, DEST_WELL, SOURCE_SLOT, VOL_1..8 in 0.1 uL, FLAGS, BLOCK_CRC, COMMAND = START
 * last) goes out in ONE FC16 write, so the server sees it atomically; the step id is the
 * JOB_ID. Before a start, and after any start whose answer was lost, the driver reconciles
 * from the input registers (STATE, ACCEPTED_JOB_ID, LAST_DONE_JOB_ID): a job the robot has
 * accepted is never sent again, and one it never saw is sent at most once more (the server
 * ignores a replay of the accepted id, so even that resend cannot run a job twice).
 * Volume limits are checked in driver.c before anything is sent.
 */
#include "common/ll_crc.h"
#include "common/ll_time.h"
#include "drivers/driver_internal.h"

#include <errno.h>
#include <math.h>
#include <modbus.h>
#include <stdio.h>
#include <string.h>

enum {
    HR_JOB_ID = 0,
    HR_ACTION = 2,
    HR_RECIPE = 3,
    HR_DEST_PLATE = 4,
    HR_DEST_WELL = 5,
    HR_SOURCE_SLOT = 6,
    HR_VOL_1 = 7,
    HR_FLAGS = 15,
    HR_BLOCK_CRC = 16,
    HR_COMMAND = 17,
    HR_COUNT = 18,

    IR_MAP_VERSION = 0,
    IR_STATE = 1,
    IR_ACCEPTED = 2,
    IR_LAST_DONE = 4,
    IR_LAST_RESULT = 6,
    IR_ERROR_CODE = 7,
    IR_PROGRESS = 8,
    IR_HEARTBEAT = 9,
    IR_INTERLOCKS = 10,
    IR_LEVEL_1 = 11,
    IR_TIPS = 19,
    IR_COUNT = 20,

    COIL_ABORT = 1,
    COIL_RESET_ERROR = 2,

    ACTION_DISPENSE = 1,
    ACTION_MOVE = 2,
    ACTION_PARK = 4,
    COMMAND_START = 1,
};

enum robot_state {
    RS_NOT_READY = 0,
    RS_IDLE = 1,
    RS_BUSY = 2,
    RS_DONE = 3,
    RS_ERROR = 4,
    RS_PAUSED = 5,
    RS_ESTOP = 6,
};

/* The input registers that matter, decoded. */
struct robot_regs {
    uint16_t raw[IR_COUNT];
    int state;
    uint32_t accepted, last_done;
    int last_result, error_code, progress;
    uint16_t heartbeat, interlocks;
};

static const char *state_name(int s)
{
    static const char *const names[] = {
        "NOT_READY", "IDLE", "BUSY", "DONE", "ERROR", "PAUSED", "ESTOP"};
    return s >= 0 && s <= 6 ? names[s] : "?";
}

static const char *robot_error_name(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case 10:
        return "tip pick-up failed";
    case 11:
        return "aspiration failed or liquid level low";
    case 12:
        return "volume out of range";
    case 13:
        return "unknown recipe";
    case 14:
        return "destination invalid or occupied";
    case 20:
        return "motion fault or collision";
    case 21:
        return "door opened during the run";
    case 22:
        return "e-stop";
    case 30:
        return "gripper failed";
    case 40:
        return "internal error or aborted";
    default:
        return "unknown error code";
    }
}

static int read_regs(
    struct drv *drv, int n, struct robot_regs *rr, int64_t deadline_ms, struct ll_error *reterr)
{
    int r = drv__mb_read(drv, true, drv->inst.base + 0, n, rr->raw, deadline_ms, reterr);
    int64_t now = ll_monotonic_ms();

    if (r)
        return r;
    rr->state = rr->raw[IR_STATE];
    rr->accepted = (uint32_t)rr->raw[IR_ACCEPTED] << 16 | rr->raw[IR_ACCEPTED + 1];
    rr->last_done = (uint32_t)rr->raw[IR_LAST_DONE] << 16 | rr->raw[IR_LAST_DONE + 1];
    rr->last_result = rr->raw[IR_LAST_RESULT];
    rr->error_code = rr->raw[IR_ERROR_CODE];
    rr->progress = rr->raw[IR_PROGRESS];
    rr->heartbeat = rr->raw[IR_HEARTBEAT];
    rr->interlocks = n > IR_INTERLOCKS ? rr->raw[IR_INTERLOCKS] : 0;
    if (drv->heartbeat_seen_ms == 0 || rr->heartbeat != drv->last_heartbeat) {
        drv->last_heartbeat = rr->heartbeat;
        drv->heartbeat_seen_ms = now;
    }
    return 0;
}

/* Builds the 18-register job block of step (checked by driver.c). */
static void build_block(const struct drv *drv, const struct drv_step *step, uint16_t *b)
{
    uint8_t bytes[2 * HR_BLOCK_CRC];

    memset(b, 0, HR_COUNT * sizeof(*b));
    b[HR_JOB_ID] = (uint16_t)(step->id >> 16);
    b[HR_JOB_ID + 1] = (uint16_t)(step->id & 0xffffu);
    b[HR_RECIPE] = 0; /* volumes given explicitly */
    switch (step->kind) {
    case DRV_STEP_DISPENSE:
        b[HR_ACTION] = ACTION_DISPENSE;
        b[HR_DEST_PLATE] = 0; /* the rack */
        b[HR_DEST_WELL] = (uint16_t)step->dispense.well;
        for (int i = 0; i < DRV_N_RESERVOIRS; i++)
            b[HR_VOL_1 + i] = (uint16_t)lround(step->dispense.volumes_ul[i] * 10.0);
        break;
    case DRV_STEP_MOVE:
        b[HR_ACTION] = ACTION_MOVE;
        b[HR_SOURCE_SLOT] = (uint16_t)labconf_place_slot(&drv->inst, step->move.from_place);
        b[HR_DEST_PLATE] = (uint16_t)labconf_place_slot(&drv->inst, step->move.to_place);
        b[HR_DEST_WELL] = (uint16_t)step->move.well;
        break;
    default:
        b[HR_ACTION] = ACTION_PARK;
        break;
    }
    b[HR_FLAGS] = 0;
    for (size_t i = 0; i < HR_BLOCK_CRC; i++) {
        bytes[2 * i] = (uint8_t)(b[i] >> 8);
        bytes[2 * i + 1] = (uint8_t)(b[i] & 0xff);
    }
    b[HR_BLOCK_CRC] = ll_crc16_modbus(bytes, sizeof(bytes));
    b[HR_COMMAND] = COMMAND_START;
}

/* What the input registers say about step id (hardware.md §3.3's reconciliation, with job
 * ids increasing in start order); used by start (after a lost answer) and by query. The
 * registers hold only the last accepted and the last finished job: a step older than the
 * accepted one may have run before it, so its fate is unknown, not "never started". */
static enum drv_step_state reconcile(const struct robot_regs *rr, uint32_t id)
{
    if (rr->last_done == id)
        return rr->last_result == 0 ? DRV_STEP_DONE : DRV_STEP_FAILED;
    if (rr->accepted == id)
        return rr->state == RS_BUSY || rr->state == RS_PAUSED ? DRV_STEP_RUNNING : DRV_STEP_UNKNOWN;
    if (id > rr->accepted && id > rr->last_done && (rr->state == RS_IDLE || rr->state == RS_DONE))
        return DRV_STEP_NOT_STARTED;
    return DRV_STEP_UNKNOWN;
}

static int robot_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    drv->mb_sync_addr = -1; /* Modbus TCP: libmodbus matches answers by transaction id */
    return drv__mb_connect(drv, deadline_ms, reterr);
}

static void robot_disconnect(struct drv *drv)
{
    if (drv->mb) {
        modbus_close(drv->mb);
        modbus_free(drv->mb);
        drv->mb = NULL;
    }
    drv->connected = false;
}

/* Refusal reasons that can be read before sending. */
static int ready_for_job(const struct robot_regs *rr, struct ll_error *reterr)
{
    switch (rr->state) {
    case RS_IDLE:
    case RS_DONE:
        return 0;
    case RS_BUSY:
    case RS_PAUSED:
        return ll_error_set(reterr,
                            DRV_EBUSY,
                            "robot is %s with job %u; not sent",
                            state_name(rr->state),
                            (unsigned)rr->accepted);
    case RS_ERROR:
    case RS_ESTOP:
        return ll_error_set(reterr,
                            DRV_EFAULT,
                            "robot is in %s (error %d: %s); not sent (reset it first)",
                            state_name(rr->state),
                            rr->error_code,
                            robot_error_name(rr->error_code));
    default:
        return ll_error_set(reterr, DRV_EBUSY, "robot is NOT_READY; not sent");
    }
}

/* Exception 05 to the job block: the robot took it and works on it. Polls the input
 * registers until they report job id as accepted (or done). */
static int await_accepted(
    struct drv *drv, uint32_t id, const char *why, int64_t deadline_ms, struct ll_error *reterr)
{
    struct robot_regs rr;
    int r;

    for (int attempt = 0;; attempt++) {
        r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);
        if (r)
            return ll_error_set(reterr,
                                r == DRV_ELINK ? DRV_ELINK : DRV_ETIMEDOUT,
                                "job %u: %s; reading the robot's state back failed: outcome "
                                "unknown, query before retrying",
                                (unsigned)id,
                                why);
        if (rr.accepted == id || rr.last_done == id)
            return 0;
        if (!drv__backoff(attempt, deadline_ms))
            return ll_error_set(reterr,
                                DRV_ETIMEDOUT,
                                "job %u: %s, but the robot never reported it (accepted job %u): "
                                "outcome unknown, query before retrying",
                                (unsigned)id,
                                why,
                                (unsigned)rr.accepted);
    }
}

static int robot_start(struct drv *drv,
                       const struct drv_step *step,
                       int64_t deadline_ms,
                       struct ll_error *reterr)
{
    struct robot_regs rr;
    struct ll_error werr = {0};
    uint16_t block[HR_COUNT];
    int r;

    r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);
    if (r)
        return r;
    if (rr.accepted == step->id || rr.last_done == step->id)
        return 0; /* already accepted: never send a job twice */
    /* a wrong base or another device's map would take the job block as something else */
    if (rr.raw[IR_MAP_VERSION] >> 8 != 0x01)
        return ll_error_set(reterr,
                            DRV_EPROTO,
                            "robot reports map version 0x%04x at base %d, not 0x01xx: wrong base "
                            "or not a labloop robot map; not sent",
                            (unsigned)rr.raw[IR_MAP_VERSION],
                            drv->inst.base);
    r = ready_for_job(&rr, reterr);
    if (r)
        return r;
    build_block(drv, step, block);
    for (int attempt = 0, busy = 0; attempt < 2;) {
        r = drv__mb_write_regs_once(
            drv, drv->inst.base + HR_JOB_ID, HR_COUNT, block, deadline_ms, &werr);
        if (r == 0)
            return 0;
        if (drv__mb_refusal(r))
            return ll_error_set(reterr, r, "job %u: %s", (unsigned)step->id, werr.msg);
        if (r == DRV__EACCEPTED)
            return await_accepted(drv, step->id, werr.msg, deadline_ms, reterr);
        if (r == DRV_EBUSY) {
            /* 06: the block was not taken; send it again after a back-off */
            if (busy == DRV__BUSY_RESENDS || !drv__backoff(busy++, deadline_ms))
                return ll_error_set(reterr, r, "job %u: %s", (unsigned)step->id, werr.msg);
            continue;
        }
        /* no answer / garbled / link lost: the outcome is unknown; read back first */
        r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);
        if (r)
            return ll_error_set(reterr,
                                r == DRV_ELINK ? DRV_ELINK : DRV_ETIMEDOUT,
                                "job %u: %s; reading the robot's state back failed too: outcome "
                                "unknown, query before retrying",
                                (unsigned)step->id,
                                werr.msg);
        if (rr.accepted == step->id || rr.last_done == step->id)
            return 0;
        if (reconcile(&rr, step->id) != DRV_STEP_NOT_STARTED)
            return ll_error_set(reterr,
                                DRV_ETIMEDOUT,
                                "job %u: %s; robot now %s with job %u: outcome unknown",
                                (unsigned)step->id,
                                werr.msg,
                                state_name(rr.state),
                                (unsigned)rr.accepted);
        /* the robot never accepted it: sending once more is safe */
        attempt++;
    }
    return ll_error_set(reterr,
                        r ? r : DRV_ETIMEDOUT,
                        "job %u: not accepted after two attempts (%s)",
                        (unsigned)step->id,
                        werr.msg);
}

static void fill_common(struct drv_status *ret, const struct robot_regs *rr)
{
    ret->instrument_step_id = rr->accepted;
    snprintf(ret->text,
             sizeof(ret->text),
             "state=%s accepted_job=%u last_done_job=%u last_result=%d error=%d progress=%d "
             "heartbeat=%u interlocks=0x%02x",
             state_name(rr->state),
             (unsigned)rr->accepted,
             (unsigned)rr->last_done,
             rr->last_result,
             rr->error_code,
             rr->progress,
             (unsigned)rr->heartbeat,
             (unsigned)rr->interlocks);
}

static int robot_poll(struct drv *drv,
                      const struct drv_step *step,
                      struct drv_status *ret,
                      int64_t deadline_ms,
                      struct ll_error *reterr)
{
    struct robot_regs rr;
    int r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);

    if (r)
        return r;
    fill_common(ret, &rr);
    if (rr.last_done == step->id) {
        ret->progress = 1.0;
        if (rr.last_result == 0) {
            ret->state = DRV_STEP_DONE;
            snprintf(ret->reason, sizeof(ret->reason), "job %u done", (unsigned)step->id);
        } else {
            ret->state = DRV_STEP_FAILED;
            ret->error = DRV_EFAULT;
            snprintf(ret->reason,
                     sizeof(ret->reason),
                     "robot ended job %u with error %d (%s)",
                     (unsigned)step->id,
                     rr.last_result,
                     robot_error_name(rr.last_result));
        }
        return 0;
    }
    if (rr.accepted != step->id) {
        ret->state = DRV_STEP_FAILED;
        ret->error = DRV_EFAULT;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "robot no longer reports job %u (accepted %u, state %s)",
                 (unsigned)step->id,
                 (unsigned)rr.accepted,
                 state_name(rr.state));
        return 0;
    }
    if (rr.state == RS_ERROR || rr.state == RS_ESTOP) {
        ret->state = DRV_STEP_FAILED;
        ret->error = DRV_EFAULT;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "robot in %s during job %u (error %d: %s)",
                 state_name(rr.state),
                 (unsigned)step->id,
                 rr.error_code,
                 robot_error_name(rr.error_code));
        return 0;
    }
    /* a controller whose heartbeat stops is hung, whatever STATE says */
    if (ll_monotonic_ms() - drv->heartbeat_seen_ms > 5000 + 2 * (int64_t)drv->inst.poll_ms) {
        ret->state = DRV_STEP_FAILED;
        ret->error = DRV_EFAULT;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "robot heartbeat stopped at %u during job %u",
                 (unsigned)rr.heartbeat,
                 (unsigned)step->id);
        return 0;
    }
    ret->state = DRV_STEP_RUNNING;
    ret->progress = rr.progress > 1000 ? 1.0 : rr.progress / 1000.0;
    snprintf(ret->reason,
             sizeof(ret->reason),
             "job %u %s, %d permille",
             (unsigned)step->id,
             state_name(rr.state),
             rr.progress);
    return 0;
}

static int robot_query(struct drv *drv,
                       const struct drv_step *step,
                       struct drv_status *ret,
                       int64_t deadline_ms,
                       struct ll_error *reterr)
{
    struct robot_regs rr;
    int r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);

    if (r)
        return r;
    fill_common(ret, &rr);
    ret->state = reconcile(&rr, step->id);
    if (ret->state == DRV_STEP_FAILED) {
        ret->error = DRV_EFAULT;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "job %u finished with error %d (%s)",
                 (unsigned)step->id,
                 rr.last_result,
                 robot_error_name(rr.last_result));
    } else if (ret->state == DRV_STEP_UNKNOWN) {
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "cannot tell: robot %s, accepted job %u, last done %u",
                 state_name(rr.state),
                 (unsigned)rr.accepted,
                 (unsigned)rr.last_done);
    } else {
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "job %u %s",
                 (unsigned)step->id,
                 drv_step_state_name(ret->state));
    }
    return 0;
}

/* One coil write, read back through STATE (coils are momentary). */
static int write_coil(struct drv *drv, int coil, int64_t deadline_ms, struct ll_error *reterr)
{
    if (!drv->connected) {
        int r = drv__reconnect(drv, deadline_ms, reterr);
        if (r)
            return r;
    }
    modbus_flush(drv->mb);
    if (modbus_write_bit(drv->mb, drv->inst.base + coil, 1) == 1)
        return 0;
    /* 05: accepted; the caller reads STATE back anyway */
    int r = drv__mb_error(drv, errno, coil == COIL_ABORT ? "ABORT" : "RESET_ERROR", reterr);
    return r == DRV__EACCEPTED ? 0 : r;
}

static int robot_safe(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    struct robot_regs rr;
    int r;

    for (int attempt = 0;; attempt++) {
        r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);
        if (r)
            return r;
        if (rr.state != RS_BUSY && rr.state != RS_PAUSED)
            return 0; /* not moving: safe */
        /* ABORT is idempotent (a no-op when nothing runs), so a lost answer may be resent */
        r = write_coil(drv, COIL_ABORT, deadline_ms, reterr);
        if (r == DRV_EREFUSED || r == DRV_ECONFIG)
            return r;
        if (!drv__backoff(attempt, deadline_ms))
            return ll_error_set(
                reterr, DRV_ETIMEDOUT, "robot still %s after ABORT", state_name(rr.state));
    }
}

static int robot_describe(
    struct drv *drv, char *buf, size_t size, int64_t deadline_ms, struct ll_error *reterr)
{
    struct robot_regs rr;
    const struct labconf_instrument *in = &drv->inst;
    int r = read_regs(drv, IR_COUNT, &rr, deadline_ms, reterr);
    int n;

    if (r)
        return r;
    n = snprintf(buf,
                 size,
                 "robot '%s': Modbus TCP %s:%d unit %d base %d, map version 0x%04x\n"
                 "  limits: %.1f uL per reservoir, %.1f uL per dispense\n  reservoirs:",
                 in->name,
                 in->host,
                 in->port,
                 in->unit_id,
                 in->base,
                 (unsigned)rr.raw[IR_MAP_VERSION],
                 in->limits.max_volume_ul,
                 in->limits.max_total_volume_ul);
    for (int i = 0; i < in->n_reservoirs && n >= 0 && (size_t)n < size; i++)
        n += snprintf(buf + n,
                      size - (size_t)n,
                      " %d=%s (%.1f mL)",
                      i + 1,
                      in->reservoirs[i],
                      rr.raw[IR_LEVEL_1 + i] / 10.0);
    if (n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "\n  places:");
    for (int i = 0; i < in->n_places && n >= 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, " %s=%d", in->places[i].name, in->places[i].slot);
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "\n  tips remaining: %u", (unsigned)rr.raw[IR_TIPS]);
    return 0;
}

static int
robot_status(struct drv *drv, struct drv_status *ret, int64_t deadline_ms, struct ll_error *reterr)
{
    struct robot_regs rr;
    int r = read_regs(drv, IR_INTERLOCKS + 1, &rr, deadline_ms, reterr);

    if (r)
        return r;
    fill_common(ret, &rr);
    ret->progress = rr.progress / 1000.0;
    return 0;
}

static int robot_clear_fault(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    return write_coil(drv, COIL_RESET_ERROR, deadline_ms, reterr);
}

const struct drv_ops drv__robot_ops = {
    .kind = "modbus_tcp_robot",
    .connect = robot_connect,
    .describe = robot_describe,
    .status = robot_status,
    .start = robot_start,
    .poll = robot_poll,
    .query = robot_query,
    .safe = robot_safe,
    .clear_fault = robot_clear_fault,
    .disconnect = robot_disconnect,
};

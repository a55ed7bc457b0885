/* driver — the dispatcher of the instrument interface (see driver.h): picks the backend
 * from the instrument's driver kind, checks steps against limits before any I/O, gives
 * every call its deadline, reconnects a lost link before the next call and commands the
 * safe state when a running step fails.
 */
#include "drivers/driver.h"

#include "common/ll_time.h"
#include "drivers/driver_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t budget_deadline(const struct drv *drv, int factor)
{
    return ll_monotonic_ms() + factor * DRV_CALL_BUDGET(&drv->inst);
}

/* Puts a Modbus RTU driver on its line: bus (shared; checked to fit), or a bus of its own. */
static int join_bus(struct drv *drv, struct drv_bus *bus, struct ll_error *reterr)
{
    int r;

    if (bus) {
        r = drv_bus_check(bus, &drv->inst, reterr);
        if (r)
            return r;
        drv->bus = bus;
    } else {
        r = drv_bus_new(&drv->inst, &drv->bus, reterr);
        if (r)
            return r;
        drv->own_bus = true;
    }
    r = drv__bus_attach(drv->bus, drv->inst.slave, reterr);
    if (r && drv->own_bus)
        drv_bus_free(&drv->bus);
    if (r)
        drv->bus = NULL;
    return r;
}

/* Takes the driver off its line (and frees a bus of its own). */
static void leave_bus(struct drv *drv)
{
    if (!drv->bus)
        return;
    drv__bus_detach(drv->bus, drv->inst.slave);
    if (drv->own_bus)
        drv_bus_free(&drv->bus);
    drv->bus = NULL;
}

/* Sets the bus priority of the call that begins (Modbus RTU; nothing else uses it). */
static void call_begin(struct drv *drv, enum drv_bus_priority prio)
{
    drv->bus_prio = prio;
    drv->bus_first = true;
}

int drv_open(const struct labconf_instrument *inst, struct drv **ret_drv, struct ll_error *reterr)
{
    return drv_open_bus(inst, NULL, ret_drv, reterr);
}

int drv_open_bus(const struct labconf_instrument *inst,
                 struct drv_bus *bus,
                 struct drv **ret_drv,
                 struct ll_error *reterr)
{
    struct drv *drv;
    int r;

    *ret_drv = NULL;
    if (bus && inst->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU)
        return ll_error_set(reterr,
                            -EINVAL,
                            "instrument '%s': only a Modbus RTU instrument goes on a bus",
                            inst->name);
    drv = calloc(1, sizeof(*drv));
    if (!drv)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    drv->inst = *inst;
    switch (inst->driver) {
    case LABCONF_DRIVER_ROBOT_MODBUS_TCP:
        drv->ops = &drv__robot_ops;
        break;
    case LABCONF_DRIVER_FURNACE_MODBUS_RTU:
        drv->ops = &drv__furnace_ops;
        break;
    case LABCONF_DRIVER_COATER_SPN1:
        drv->ops = &drv__coater_ops;
        break;
    default:
        free(drv);
        return ll_error_set(reterr, -EINVAL, "instrument '%s': unknown driver kind", inst->name);
    }
    if (inst->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP && inst->port == 0) {
        free(drv);
        return ll_error_set(reterr,
                            -EINVAL,
                            "instrument '%s': port 0 (labsim picks the port: use the lab.conf "
                            "labsim writes in its runtime folder)",
                            inst->name);
    }
    drv->seq = 1;
    drv->fd = -1;
    if (inst->driver == LABCONF_DRIVER_FURNACE_MODBUS_RTU) {
        r = join_bus(drv, bus, reterr);
        if (r) {
            free(drv);
            return ll_error_prefix(reterr, "instrument '%s'", inst->name);
        }
    }
    call_begin(drv, DRV_BUS_COMMAND);
    r = drv->ops->connect(drv, budget_deadline(drv, 1), reterr);
    if (r) {
        drv->ops->disconnect(drv);
        leave_bus(drv);
        free(drv);
        return ll_error_prefix(reterr, "instrument '%s'", inst->name);
    }
    drv->connected = true;
    *ret_drv = drv;
    return 0;
}

const char *drv_name(const struct drv *drv)
{
    return drv->inst.name;
}

enum labconf_driver drv_kind(const struct drv *drv)
{
    return drv->inst.driver;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int drv__reconnect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    for (;;) {
        int64_t now = ll_monotonic_ms(), delay;
        int r;

        if (drv->connected)
            return 0;
        if (drv->link_lost_ms == 0)
            drv->link_lost_ms = now;
        if (now < drv->next_connect_ms) {
            /* back off: sleep until the next attempt, but not past the deadline */
            int64_t until =
                drv->next_connect_ms < deadline_ms - 5 ? drv->next_connect_ms : deadline_ms - 5;
            if (until > now)
                sleep_ms(until - now);
            now = ll_monotonic_ms();
            if (now < drv->next_connect_ms)
                return ll_error_set(reterr,
                                    DRV_ELINK,
                                    "link lost %.1f s ago, reconnecting with back-off (%d "
                                    "attempts failed, the next in %.1f s): %s",
                                    (double)(now - drv->link_lost_ms) / 1000.0,
                                    drv->reconnect_fails,
                                    (double)(drv->next_connect_ms - now) / 1000.0,
                                    drv->link_msg);
        }
        drv->ops->disconnect(drv);
        r = drv->ops->connect(drv, deadline_ms, reterr);
        if (r == 0) {
            /* the next reconnect no sooner than DRV_RECONNECT_FIRST_MS from now: a device
             * that opens and hangs up at once is not reopened in a loop */
            drv->connected = true;
            drv->link_lost_ms = 0;
            drv->reconnect_fails = 0;
            drv->next_connect_ms = ll_monotonic_ms() + DRV_RECONNECT_FIRST_MS;
            return 0;
        }
        if (r != DRV_ELINK)
            return r;
        snprintf(drv->link_msg, sizeof(drv->link_msg), "%s", reterr ? reterr->msg : "");
        delay = DRV_RECONNECT_FIRST_MS;
        for (int i = 0; i < drv->reconnect_fails && delay < DRV_RECONNECT_MAX_MS; i++)
            delay *= 2;
        if (delay > DRV_RECONNECT_MAX_MS)
            delay = DRV_RECONNECT_MAX_MS;
        drv->reconnect_fails++;
        drv->next_connect_ms = ll_monotonic_ms() + delay;
    }
}

/* Reconnects a lost link before a call (with back-off, within the call's deadline). */
static int ensure_connected(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    return drv__reconnect(drv, deadline_ms, reterr);
}

/* A configuration error (exception 01/02: the lab definition names a function or register
 * the instrument does not have) is fatal for the instrument: remembered, so that every later
 * start fails with it before any I/O (driver.h). */
static void note_config_error(struct drv *drv, int r, const char *msg)
{
    if (r != DRV_ECONFIG || drv->config_error)
        return;
    drv->config_error = true;
    snprintf(drv->config_msg, sizeof(drv->config_msg), "%s", msg ? msg : "configuration error");
}

/* Runs a backend call with the instrument name prefixed to any message. */
#define CALL(drv, reterr, expr)                                                                    \
    do {                                                                                           \
        int r_ = (expr);                                                                           \
        if (r_)                                                                                    \
            ll_error_prefix((reterr), "%s", (drv)->inst.name);                                     \
        if (r_)                                                                                    \
            note_config_error((drv), r_, (reterr) ? (reterr)->msg : NULL);                         \
        return r_;                                                                                 \
    } while (0)

int drv_describe(struct drv *drv, char *buf, size_t size, struct ll_error *reterr)
{
    int64_t deadline = budget_deadline(drv, 1);
    int r;

    call_begin(drv, DRV_BUS_POLL);
    r = ensure_connected(drv, deadline, reterr);

    if (r == 0)
        r = drv->ops->describe(drv, buf, size, deadline, reterr);
    CALL(drv, reterr, r);
}

static void status_init(struct drv_status *s)
{
    memset(s, 0, sizeof(*s));
    s->progress = -1.0;
    s->temp_c = (double)NAN;
    s->setpoint_c = (double)NAN;
    s->rpm = (double)NAN;
}

int drv_status(struct drv *drv, struct drv_status *ret, struct ll_error *reterr)
{
    int64_t deadline = budget_deadline(drv, 1);
    int r;

    status_init(ret);
    call_begin(drv, DRV_BUS_POLL);
    r = ensure_connected(drv, deadline, reterr);
    if (r == 0)
        r = drv->ops->status(drv, ret, deadline, reterr);
    CALL(drv, reterr, r);
}

static int
check_robot(const struct labconf_instrument *in, const struct drv_step *s, struct ll_error *reterr)
{
    double total = 0.0;

    switch (s->kind) {
    case DRV_STEP_DISPENSE:
        if (s->dispense.well < 0 || s->dispense.well > 95)
            return ll_error_set(reterr, -EINVAL, "well %d is outside 0..95", s->dispense.well);
        for (int i = 0; i < DRV_N_RESERVOIRS; i++) {
            double v = s->dispense.volumes_ul[i];
            if (!isfinite(v) || v < 0.0)
                return ll_error_set(reterr, DRV_ELIMIT, "volume %d is not a volume", i + 1);
            if (v > 0.0 && i >= in->n_reservoirs && in->n_reservoirs > 0)
                return ll_error_set(reterr,
                                    -EINVAL,
                                    "reservoir %d is not configured (%d)",
                                    i + 1,
                                    in->n_reservoirs);
            if (v > in->limits.max_volume_ul)
                return ll_error_set(reterr,
                                    DRV_ELIMIT,
                                    "volume of reservoir %d, %.1f uL, is above the limit %.1f uL;"
                                    " nothing was sent",
                                    i + 1,
                                    v,
                                    in->limits.max_volume_ul);
            total += v;
        }
        if (total > in->limits.max_total_volume_ul)
            return ll_error_set(reterr,
                                DRV_ELIMIT,
                                "total volume %.1f uL is above the limit %.1f uL; nothing was sent",
                                total,
                                in->limits.max_total_volume_ul);
        if (total <= 0.0)
            return ll_error_set(reterr, -EINVAL, "a dispense of nothing");
        return 0;
    case DRV_STEP_MOVE:
        if (labconf_place_slot(in, s->move.from_place) < 0)
            return ll_error_set(reterr, -EINVAL, "unknown place '%s'", s->move.from_place);
        if (labconf_place_slot(in, s->move.to_place) < 0)
            return ll_error_set(reterr, -EINVAL, "unknown place '%s'", s->move.to_place);
        if (s->move.well < 0 || s->move.well > 95)
            return ll_error_set(reterr, -EINVAL, "well %d is outside 0..95", s->move.well);
        return 0;
    case DRV_STEP_PARK:
        return 0;
    default:
        return ll_error_set(
            reterr, -EINVAL, "a robot cannot do a %s step", drv_step_kind_name(s->kind));
    }
}

static int
check_coater(const struct labconf_instrument *in, const struct drv_step *s, struct ll_error *reterr)
{
    if (s->kind != DRV_STEP_SPIN)
        return ll_error_set(
            reterr, -EINVAL, "a spin coater cannot do a %s step", drv_step_kind_name(s->kind));
    if (s->spin.n_stages < 1 || s->spin.n_stages > DRV_MAX_STAGES)
        return ll_error_set(
            reterr, -EINVAL, "%d stages (a recipe has 1..%d)", s->spin.n_stages, DRV_MAX_STAGES);
    for (int i = 0; i < s->spin.n_stages; i++) {
        const struct drv_spin_stage *st = &s->spin.stages[i];
        if (!isfinite(st->rpm) || !isfinite(st->accel_rpm_s) || !isfinite(st->seconds) ||
            st->rpm <= 0.0 || st->accel_rpm_s <= 0.0 || st->seconds <= 0.0 || st->seconds > 3600.0)
            return ll_error_set(reterr,
                                DRV_ELIMIT,
                                "stage %d: rpm, acceleration and seconds must be positive "
                                "(seconds <= 3600)",
                                i + 1);
        if (st->rpm > in->limits.max_rpm)
            return ll_error_set(reterr,
                                DRV_ELIMIT,
                                "stage %d: %.0f rpm is above the limit %.0f rpm; nothing was sent",
                                i + 1,
                                st->rpm,
                                in->limits.max_rpm);
        if (st->accel_rpm_s > in->limits.max_accel_rpm_s)
            return ll_error_set(reterr,
                                DRV_ELIMIT,
                                "stage %d: acceleration %.0f rpm/s is above the limit %.0f rpm/s;"
                                " nothing was sent",
                                i + 1,
                                st->accel_rpm_s,
                                in->limits.max_accel_rpm_s);
    }
    return 0;
}

static int check_furnace(const struct labconf_instrument *in,
                         const struct drv_step *s,
                         struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &in->map;

    if (s->kind != DRV_STEP_ANNEAL)
        return ll_error_set(
            reterr, -EINVAL, "a furnace cannot do a %s step", drv_step_kind_name(s->kind));
    if (!isfinite(s->anneal.setpoint_c) || !isfinite(s->anneal.ramp_c_min) ||
        !isfinite(s->anneal.dwell_min))
        return ll_error_set(reterr, DRV_ELIMIT, "anneal parameters must be finite numbers");
    if (s->anneal.setpoint_c > in->limits.max_temp_c)
        return ll_error_set(reterr,
                            DRV_ELIMIT,
                            "setpoint %.1f C is above the furnace's maximum %.1f C; nothing was "
                            "sent",
                            s->anneal.setpoint_c,
                            in->limits.max_temp_c);
    if (s->anneal.ramp_c_min > in->limits.max_ramp_c_min)
        return ll_error_set(reterr,
                            DRV_ELIMIT,
                            "ramp %.1f C/min is above the furnace's maximum %.1f C/min; nothing "
                            "was sent",
                            s->anneal.ramp_c_min,
                            in->limits.max_ramp_c_min);
    /* the rate register must never hold 0 (= unlimited): the smallest rate is one raw unit */
    if (s->anneal.ramp_c_min < m->rate_scale)
        return ll_error_set(reterr,
                            DRV_ELIMIT,
                            "ramp %.3g C/min is below the controller's resolution %.3g C/min (0 "
                            "would mean unlimited)",
                            s->anneal.ramp_c_min,
                            m->rate_scale);
    if (s->anneal.dwell_min < 0.0 || s->anneal.dwell_min / m->dwell_scale > 65535.0)
        return ll_error_set(
            reterr, DRV_ELIMIT, "dwell %.1f min does not fit the controller", s->anneal.dwell_min);
    if (s->anneal.setpoint_c / m->temp_scale < -32768.0)
        return ll_error_set(reterr, DRV_ELIMIT, "setpoint %.1f C is too low", s->anneal.setpoint_c);
    return 0;
}

int drv_step_check(const struct labconf_instrument *inst,
                   const struct drv_step *step,
                   struct ll_error *reterr)
{
    int r;

    if (step->id == 0)
        return ll_error_set(reterr, -EINVAL, "%s: step id 0 (ids start at 1)", inst->name);
    switch (inst->driver) {
    case LABCONF_DRIVER_ROBOT_MODBUS_TCP:
        r = check_robot(inst, step, reterr);
        break;
    case LABCONF_DRIVER_COATER_SPN1:
        r = check_coater(inst, step, reterr);
        break;
    case LABCONF_DRIVER_FURNACE_MODBUS_RTU:
        r = check_furnace(inst, step, reterr);
        break;
    default:
        r = ll_error_set(reterr, -EINVAL, "unknown driver kind");
    }
    if (r)
        ll_error_prefix(reterr, "%s: step %u", inst->name, (unsigned)step->id);
    return r;
}

int drv_step_start(struct drv *drv, const struct drv_step *step, struct ll_error *reterr)
{
    int64_t deadline;
    int r;

    r = drv_step_check(&drv->inst, step, reterr);
    if (r)
        return r;
    if (drv->config_error)
        return ll_error_set(
            reterr, DRV_ECONFIG, "%s (seen before; not started: nothing sent)", drv->config_msg);
    deadline = budget_deadline(drv, 2);
    call_begin(drv, DRV_BUS_COMMAND);
    r = ensure_connected(drv, deadline, reterr);
    if (r == 0)
        r = drv->ops->start(drv, step, deadline, reterr);
    if (r == 0 && drv->started_step_id != step->id) {
        drv->started_step_id = step->id;
        drv->started_ms = ll_monotonic_ms();
    }
    if (r == DRV_EFAULT) {
        /* exception 04/08 or a fault state: the instrument is not fit to run anything */
        struct ll_error safe_err = {0};
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", reterr ? reterr->msg : drv_error_kind(r));
        if (drv->ops->safe(drv, budget_deadline(drv, 1), &safe_err) == 0)
            ll_error_set(reterr, r, "%s; safe state commanded", why);
        else
            ll_error_set(reterr, r, "%s; safe state FAILED: %s", why, safe_err.msg);
    }
    CALL(drv, reterr, r);
}

int drv_step_poll(struct drv *drv,
                  const struct drv_step *step,
                  struct drv_status *ret,
                  struct ll_error *reterr)
{
    int64_t deadline = budget_deadline(drv, 1);
    int r;

    status_init(ret);
    call_begin(drv, DRV_BUS_POLL);
    r = ensure_connected(drv, deadline, reterr);
    if (r == 0)
        r = drv->ops->poll(drv, step, ret, deadline, reterr);
    if (drv->mb != NULL && drv__mb_refusal(r)) {
        /* the instrument answered one of the poll's reads with a Modbus exception (03,
         * 01/02, 04/08): that is the step's failure, not a failed poll */
        note_config_error(drv, r, reterr ? reterr->msg : NULL);
        ret->state = DRV_STEP_FAILED;
        ret->error = r;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "step %u: %s",
                 (unsigned)step->id,
                 reterr ? reterr->msg : drv_error_kind(r));
        r = 0;
    }
    if (r == 0 && ret->state == DRV_STEP_RUNNING && drv->started_step_id == step->id &&
        ll_monotonic_ms() - drv->started_ms > 1000 * (int64_t)drv->inst.step_timeout_s) {
        ret->state = DRV_STEP_FAILED;
        ret->error = DRV_ESTEPTIME;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "step %u ran longer than step_timeout_s = %d s",
                 (unsigned)step->id,
                 drv->inst.step_timeout_s);
    }
    if (r == 0 && ret->state == DRV_STEP_FAILED) {
        struct ll_error safe_err = {0};
        size_t len = strlen(ret->reason);
        call_begin(drv, DRV_BUS_COMMAND); /* the safe state is a command */
        ret->safe_commanded = drv->ops->safe(drv, budget_deadline(drv, 1), &safe_err) == 0;
        if (ret->safe_commanded)
            snprintf(ret->reason + len, sizeof(ret->reason) - len, "; safe state commanded");
        else
            snprintf(ret->reason + len,
                     sizeof(ret->reason) - len,
                     "; safe state FAILED: %s",
                     safe_err.msg);
    }
    CALL(drv, reterr, r);
}

int drv_step_query(struct drv *drv,
                   const struct drv_step *step,
                   struct drv_status *ret,
                   struct ll_error *reterr)
{
    int64_t deadline = budget_deadline(drv, 1);
    int r;

    status_init(ret);
    call_begin(drv, DRV_BUS_POLL);
    r = ensure_connected(drv, deadline, reterr);
    if (r == 0)
        r = drv->ops->query(drv, step, ret, deadline, reterr);
    CALL(drv, reterr, r);
}

int drv_safe(struct drv *drv, struct ll_error *reterr)
{
    int64_t deadline = budget_deadline(drv, 1);
    int r;

    call_begin(drv, DRV_BUS_COMMAND);
    r = ensure_connected(drv, deadline, reterr);

    if (r == 0)
        r = drv->ops->safe(drv, deadline, reterr);
    CALL(drv, reterr, r);
}

int drv_clear_fault(struct drv *drv, struct ll_error *reterr)
{
    int64_t deadline = budget_deadline(drv, 1);
    int r;

    call_begin(drv, DRV_BUS_COMMAND);
    r = ensure_connected(drv, deadline, reterr);

    if (r == 0)
        r = drv->ops->clear_fault(drv, deadline, reterr);
    CALL(drv, reterr, r);
}

void drv_close(struct drv **drv)
{
    if (!drv || !*drv)
        return;
    (*drv)->ops->disconnect(*drv);
    leave_bus(*drv);
    free(*drv);
    *drv = NULL;
}

const char *drv_error_kind(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case DRV_ELIMIT:
        return "limit violated (nothing sent)";
    case -EINVAL:
        return "invalid request (nothing sent)";
    case DRV_EREFUSED:
        return "refused by the instrument";
    case DRV_EBUSY:
        return "instrument busy";
    case DRV_ETIMEDOUT:
        return "no answer";
    case DRV_EPROTO:
        return "garbled answer";
    case DRV_ELINK:
        return "link lost";
    case DRV_EFAULT:
        return "instrument fault";
    case DRV_ESTEPTIME:
        return "step took too long";
    case DRV_ECONFIG:
        return "configuration error (fix the lab definition)";
    case -ENOMEM:
        return "out of memory";
    default:
        return "error";
    }
}

const char *drv_step_state_name(enum drv_step_state state)
{
    switch (state) {
    case DRV_STEP_NOT_STARTED:
        return "not started";
    case DRV_STEP_RUNNING:
        return "running";
    case DRV_STEP_DONE:
        return "done";
    case DRV_STEP_FAILED:
        return "failed";
    case DRV_STEP_UNKNOWN:
        return "unknown";
    }
    return "?";
}

const char *drv_step_kind_name(enum drv_step_kind kind)
{
    switch (kind) {
    case DRV_STEP_DISPENSE:
        return "dispense";
    case DRV_STEP_MOVE:
        return "move";
    case DRV_STEP_PARK:
        return "park";
    case DRV_STEP_SPIN:
        return "spin";
    case DRV_STEP_ANNEAL:
        return "anneal";
    }
    return "?";
}

/* furnace — a temperature controller over Modbus RTU (docs/instruments.md §2,
 * hardware.md §1.3), with every address, scale and enumeration taken from the map in the
 * lab definition, so a Eurotherm 3216 and the "vendorb" layout run the same code.
 *
 * An anneal is loaded as a one-segment program (target, ramp rate, dwell) with end type
 * "reset", then started with program status = run: the controller ramps, dwells and goes
 * back to its safe setpoint by itself, so the anneal ends safely even if the host dies
 * (DESIGN.md "Safe without us"). The setpoint rate register (SP.RAT) is set to the step's
 * ramp and never left at 0 (= unlimited). Limits (max temperature, max ramp) are enforced
 * in driver.c before any byte is sent; the controller's alarm 1 threshold is kept at or
 * below max_temp_c + 10 C as a second line. Each register write is FC06 and is read back
 * after a lost answer (drv__mb_write_reg); the loaded program is read back and compared
 * before RUN. Status bits come from the map's status_bits (3200 series by default: B0
 * alarm 1, B5 sensor break, B6 loop break, B9 program end, B10 PV over-range). A program back in
 * reset is done only with the program-end bit set (the controller sets it at the end, whatever the
 * end type, and clears it at a start: docs/instruments.md §2); without it, it was reset
 * before its end (an operator, a power cycle) and the step fails.
 */
#include "drivers/driver_internal.h"

#include <errno.h>
#include <math.h>
#include <modbus.h>
#include <stdio.h>
#include <string.h>

/* The status bits of the map (labconf: status_bits, Eurotherm 3200 positions by default). */
#define ST_ALARM1(m) (1u << (m)->status_bits.alarm1)
#define ST_SENSOR_BREAK(m) (1u << (m)->status_bits.sensor_break)
#define ST_LOOP_BREAK(m) (1u << (m)->status_bits.loop_break)
#define ST_PROGRAM_END(m) (1u << (m)->status_bits.program_end)
#define ST_OVER_RANGE(m) (1u << (m)->status_bits.over_range)

static uint16_t temp_raw(const struct labconf_furnace_map *m, double c)
{
    long v = lround(c / m->temp_scale);

    if (v > 32767)
        v = 32767;
    if (v < -32768)
        v = -32768;
    return (uint16_t)(int16_t)v;
}

static double temp_c(const struct labconf_furnace_map *m, uint16_t raw)
{
    return (double)(int16_t)raw * m->temp_scale;
}

static uint16_t unsigned_raw(double v, double scale)
{
    long r = lround(v / scale);

    return (uint16_t)(r < 0 ? 0 : r > 65535 ? 65535 : r);
}

static int
read1(struct drv *drv, int addr, uint16_t *v, int64_t deadline_ms, struct ll_error *reterr)
{
    return drv__mb_read(drv, false, addr, 1, v, deadline_ms, reterr);
}

static const char *program_status_name(const struct labconf_furnace_map *m, int v)
{
    if (v == m->program_status_values.reset)
        return "reset";
    if (v == m->program_status_values.run)
        return "run";
    if (v == m->program_status_values.hold)
        return "hold";
    if (v == m->program_status_values.end)
        return "end";
    return "INVALID";
}

static const char *const reg_names[] = {
    [FURNACE_REG_PV] = "PV",
    [FURNACE_REG_WORKING_SP] = "working setpoint",
    [FURNACE_REG_PROGRAM_STATUS] = "program status",
    [FURNACE_REG_STATUS] = "status word",
};

/* A temperature register (PV, working setpoint): the map's PV error codes (PV only), the
 * scaled value finite and within the map's documented range. */
static void decode_temp(const struct labconf_furnace_map *m,
                        enum furnace_reg reg,
                        uint16_t raw,
                        struct furnace_reading *ret)
{
    const char *name = reg_names[reg];
    double c = temp_c(m, raw);

    if (reg == FURNACE_REG_PV)
        for (int i = 0; i < m->n_pv_error_codes && i < LABCONF_MAX_PV_ERROR_CODES; i++)
            if (m->pv_error_codes[i] == (int)raw) {
                ret->invalid = FURNACE_INVALID_ERROR_CODE;
                snprintf(ret->reason,
                         sizeof(ret->reason),
                         "PV error code 0x%04X (map '%s'), not a temperature",
                         (unsigned)raw,
                         m->name);
                return;
            }
    if (!isfinite(c)) {
        ret->invalid = FURNACE_INVALID_NONFINITE;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "%s raw 0x%04X is not a finite temperature (temp_scale %g)",
                 name,
                 (unsigned)raw,
                 m->temp_scale);
        return;
    }
    if (m->has_temp_range && !(c >= m->temp_min_c && c <= m->temp_max_c)) {
        ret->invalid = FURNACE_INVALID_RANGE;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "%s raw 0x%04X (%.1f C) is outside the range %.1f..%.1f C of map '%s'",
                 name,
                 (unsigned)raw,
                 c,
                 m->temp_min_c,
                 m->temp_max_c,
                 m->name);
        return;
    }
    ret->value = c;
}

enum furnace_invalid furnace_decode(const struct labconf_furnace_map *m,
                                    enum furnace_reg reg,
                                    uint16_t raw,
                                    struct furnace_reading *ret)
{
    const struct labconf_program_status_values *v = &m->program_status_values;

    memset(ret, 0, sizeof(*ret));
    ret->raw = raw;
    ret->value = (double)NAN;
    switch (reg) {
    case FURNACE_REG_PV:
    case FURNACE_REG_WORKING_SP:
        decode_temp(m, reg, raw, ret);
        break;
    case FURNACE_REG_PROGRAM_STATUS:
        /* the first match, in the order program_status_name() names them */
        if (raw == v->reset)
            ret->state = FURNACE_PROGRAM_RESET;
        else if (raw == v->run)
            ret->state = FURNACE_PROGRAM_RUN;
        else if (raw == v->hold)
            ret->state = FURNACE_PROGRAM_HOLD;
        else if (raw == v->end)
            ret->state = FURNACE_PROGRAM_END;
        else {
            ret->invalid = FURNACE_INVALID_STATE;
            snprintf(ret->reason,
                     sizeof(ret->reason),
                     "program status %u is not a state of map '%s' (reset %d, run %d, hold %d, "
                     "end %d)",
                     (unsigned)raw,
                     m->name,
                     v->reset,
                     v->run,
                     v->hold,
                     v->end);
        }
        break;
    case FURNACE_REG_STATUS:
        ret->bits = raw; /* a bitmap: every value is one */
        break;
    default:
        ret->invalid = FURNACE_INVALID_STATE;
        snprintf(ret->reason, sizeof(ret->reason), "register %d is not a reading", (int)reg);
        break;
    }
    return ret->invalid;
}

/* The program registers a step loads: dwell, target, rate, end type. */
struct program {
    uint16_t dwell, target, rate, end_type;
};

static struct program program_of(const struct labconf_furnace_map *m, const struct drv_step *s)
{
    struct program p = {
        .dwell = unsigned_raw(s->anneal.dwell_min, m->dwell_scale),
        .target = temp_raw(m, s->anneal.setpoint_c),
        .rate = unsigned_raw(s->anneal.ramp_c_min, m->rate_scale),
        .end_type = (uint16_t)m->end_type_values.reset,
    };
    return p;
}

/* The program of step on this instrument (its configured anneal end type). */
static struct program program_for(const struct drv *drv, const struct drv_step *s)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    struct program p = program_of(m, s);

    if (strcmp(drv->inst.anneal_end_type, "sp2") == 0)
        p.end_type = (uint16_t)m->end_type_values.sp2;
    return p;
}

static int
read_program(struct drv *drv, struct program *p, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    int r = read1(drv, m->seg_dwell, &p->dwell, deadline_ms, reterr);

    if (r == 0)
        r = read1(drv, m->seg_target, &p->target, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->seg_rate, &p->rate, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->end_type, &p->end_type, deadline_ms, reterr);
    return r;
}

static bool same_program(const struct program *a, const struct program *b)
{
    return a->dwell == b->dwell && a->target == b->target && a->rate == b->rate &&
           a->end_type == b->end_type;
}

static int furnace_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    /* resynchronising reads PV and the register after it: every other read of this driver
     * is of one register, so no late answer to one of them can pass for this one's */
    drv->mb_sync_addr = drv->inst.map.pv;
    return drv__mb_connect(drv, deadline_ms, reterr);
}

/* The port is the bus's (drivers/bus.h): a driver only lets go of it; the bus closes it
 * when the link is lost, and when it is freed. */
static void furnace_disconnect(struct drv *drv)
{
    drv->mb = NULL;
    drv->connected = false;
}

/* Keeps alarm 1 at or below max_temp_c + 10 C (written only when higher: no EEPROM wear). */
static int check_alarm(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    uint16_t want = temp_raw(m, drv->inst.limits.max_temp_c + 10.0), have;
    int r = read1(drv, m->alarm1, &have, deadline_ms, reterr);

    if (r == 0 && (int16_t)have > (int16_t)want)
        r = drv__mb_write_reg(drv, m->alarm1, want, deadline_ms, reterr);
    return r;
}

static int furnace_start(struct drv *drv,
                         const struct drv_step *step,
                         int64_t deadline_ms,
                         struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    struct program want = program_for(drv, step), have;
    struct furnace_reading d;
    uint16_t ps;
    int r;

    r = read1(drv, m->program_status, &ps, deadline_ms, reterr);
    if (r)
        return r;
    if (furnace_decode(m, FURNACE_REG_PROGRAM_STATUS, ps, &d) != FURNACE_VALID)
        return ll_error_set(
            reterr, DRV_EFAULT, "INVALID program status: %s; not started", d.reason);
    if (ps == m->program_status_values.run || ps == m->program_status_values.hold) {
        r = read_program(drv, &have, deadline_ms, reterr);
        if (r)
            return r;
        if (same_program(&have, &want) && drv->started_step_id == step->id)
            return 0; /* this anneal is already running */
        return ll_error_set(
            reterr, DRV_EBUSY, "a program is %s; not started", program_status_name(m, ps));
    }
    r = check_alarm(drv, deadline_ms, reterr);
    /* the rate limit first: from here on the setpoint can never jump */
    if (r == 0)
        r = drv__mb_write_reg(drv, m->sp_rate, want.rate, deadline_ms, reterr);
    if (r == 0)
        r = drv__mb_write_reg(drv, m->seg_target, want.target, deadline_ms, reterr);
    if (r == 0)
        r = drv__mb_write_reg(drv, m->seg_rate, want.rate, deadline_ms, reterr);
    if (r == 0)
        r = drv__mb_write_reg(drv, m->seg_dwell, want.dwell, deadline_ms, reterr);
    if (r == 0)
        r = drv__mb_write_reg(drv, m->end_type, want.end_type, deadline_ms, reterr);
    if (r == 0)
        r = read_program(drv, &have, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "loading the anneal program");
    if (!same_program(&have, &want))
        return ll_error_set(reterr,
                            DRV_EREFUSED,
                            "the controller did not keep the anneal program (dwell %u/%u, target "
                            "%u/%u, rate %u/%u, end type %u/%u raw); not started",
                            have.dwell,
                            want.dwell,
                            have.target,
                            want.target,
                            have.rate,
                            want.rate,
                            have.end_type,
                            want.end_type);
    r = drv__mb_write_reg(
        drv, m->program_status, (uint16_t)m->program_status_values.run, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "starting the anneal program");
    /* the controller took "run" (confirmed, or read back): the program ran, even if a short
     * one is back in reset before the first poll */
    drv->program_seen_running = true;
    return 0;
}

struct readings {
    uint16_t ps, status, pv, wsp, output, sp_rate;
    struct furnace_reading d_ps, d_pv, d_wsp; /* decoded by the map (furnace_decode) */
};

static int
read_state(struct drv *drv, struct readings *rd, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    int r = read1(drv, m->program_status, &rd->ps, deadline_ms, reterr);

    if (r == 0)
        r = read1(drv, m->status, &rd->status, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->pv, &rd->pv, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->working_sp, &rd->wsp, deadline_ms, reterr);
    if (r == 0) {
        furnace_decode(m, FURNACE_REG_PROGRAM_STATUS, rd->ps, &rd->d_ps);
        furnace_decode(m, FURNACE_REG_PV, rd->pv, &rd->d_pv);
        furnace_decode(m, FURNACE_REG_WORKING_SP, rd->wsp, &rd->d_wsp);
    }
    return r;
}

/* "123.4C", or "INVALID (why)": an invalid reading is never shown as a temperature. */
static const char *
temp_text(const struct furnace_reading *d, const char *unit, char *buf, size_t size)
{
    if (d->invalid)
        snprintf(buf, size, "INVALID (%s)", d->reason);
    else
        snprintf(buf, size, "%.1f%s", d->value, unit);
    return buf;
}

static void fill_readings(const struct drv *drv, const struct readings *rd, struct drv_status *ret)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    char pv[200], wsp[200], ps[24];

    /* NAN when invalid: never a temperature */
    ret->temp_c = rd->d_pv.value;
    ret->setpoint_c = rd->d_wsp.value;
    if (rd->d_ps.invalid)
        snprintf(ps, sizeof(ps), "INVALID(%u)", (unsigned)rd->ps);
    else
        snprintf(ps, sizeof(ps), "%s", program_status_name(m, rd->ps));
    snprintf(ret->text,
             sizeof(ret->text),
             "program=%s pv=%s working_sp=%s status=0x%04x%s%s%s%s%s",
             ps,
             /* its reason goes with the error drv_status() returns for it */
             rd->d_pv.invalid ? "INVALID" : temp_text(&rd->d_pv, "C", pv, sizeof(pv)),
             temp_text(&rd->d_wsp, "C", wsp, sizeof(wsp)),
             (unsigned)rd->status,
             rd->status & ST_ALARM1(m) ? " ALARM1" : "",
             rd->status & ST_SENSOR_BREAK(m) ? " SENSOR_BREAK" : "",
             rd->status & ST_LOOP_BREAK(m) ? " LOOP_BREAK" : "",
             rd->status & ST_OVER_RANGE(m) ? " OVER_RANGE" : "",
             rd->status & ST_PROGRAM_END(m) ? " PROGRAM_END" : "");
}

/* Fault bits in the status word, as a sentence; NULL when none. */
static const char *fault_of(const struct labconf_furnace_map *m, uint16_t status)
{
    if (status & ST_SENSOR_BREAK(m))
        return "sensor break (status bit)";
    if (status & ST_LOOP_BREAK(m))
        return "loop break (status bit): full output without the temperature following (heater, "
               "its supply or the thermocouple's place)";
    if (status & ST_OVER_RANGE(m))
        return "PV over-range (status bit)";
    if (status & ST_ALARM1(m))
        return "high alarm 1 (status bit)";
    return NULL;
}

static int furnace_poll(struct drv *drv,
                        const struct drv_step *step,
                        struct drv_status *ret,
                        int64_t deadline_ms,
                        struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    struct readings rd;
    const char *fault;
    char why[240], pv[200];
    int r = read_state(drv, &rd, deadline_ms, reterr);

    if (r)
        return r;
    fill_readings(drv, &rd, ret);
    fault = fault_of(m, rd.status);
    if (!fault && rd.d_pv.invalid) {
        /* garbage in the PV register is no temperature: neither "hot" nor "cool" */
        snprintf(why, sizeof(why), "INVALID PV: %s", rd.d_pv.reason);
        fault = why;
    }
    /* the host's own over-temperature check, whatever the controller's alarm says */
    if (!fault && ret->temp_c > drv->inst.limits.max_temp_c + 10.0)
        fault = "PV more than 10 C above max_temp_c";
    if (!fault && rd.d_ps.invalid) {
        snprintf(why, sizeof(why), "INVALID program status: %s", rd.d_ps.reason);
        fault = why;
    }
    if (fault) {
        if (rd.d_pv.invalid)
            snprintf(pv, sizeof(pv), "PV INVALID (raw 0x%04X)", (unsigned)rd.pv);
        else
            snprintf(pv, sizeof(pv), "PV %.1f C", rd.d_pv.value);
        ret->state = DRV_STEP_FAILED;
        ret->error = DRV_EFAULT;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "furnace fault during anneal %u: %s, %s",
                 (unsigned)step->id,
                 fault,
                 pv);
        return 0;
    }
    if (rd.ps == m->program_status_values.run || rd.ps == m->program_status_values.hold) {
        drv->program_seen_running = true;
        ret->state = DRV_STEP_RUNNING;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "anneal %u %s: PV %.1f C, working setpoint %.1f C%s",
                 (unsigned)step->id,
                 rd.ps == m->program_status_values.run ? "running" : "held",
                 ret->temp_c,
                 ret->setpoint_c,
                 /* the end of a reset-type program is told by this bit: it must be clear */
                 rd.status & ST_PROGRAM_END(m)
                     ? " (WARNING: the program-end status bit is set while the program runs: "
                       "this controller does not clear it at a start, so an operator's reset "
                       "would pass for the end)"
                     : "");
        return 0;
    }
    /* End type reset returns the program to reset at its end; the program-end status bit
     * (B9 on a 3200) tells that end from a reset by an operator or a power cycle mid-anneal,
     * which leaves the bit clear (starting a program clears it). */
    if (rd.ps == m->program_status_values.end ||
        (rd.ps == m->program_status_values.reset && (rd.status & ST_PROGRAM_END(m)))) {
        ret->state = DRV_STEP_DONE;
        ret->progress = 1.0;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "anneal %u ended (program %s), PV %.1f C",
                 (unsigned)step->id,
                 program_status_name(m, rd.ps),
                 ret->temp_c);
        return 0;
    }
    ret->state = DRV_STEP_FAILED;
    ret->error = DRV_EFAULT;
    if (drv->program_seen_running && drv->started_step_id == step->id)
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "anneal %u was reset before its end (program %s without the program-end status "
                 "bit: an operator's reset or a controller power cycle), PV %.1f C",
                 (unsigned)step->id,
                 program_status_name(m, rd.ps),
                 ret->temp_c);
    else
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "anneal %u: the program is %s without the program-end status bit: never "
                 "started by this driver, or reset before its end",
                 (unsigned)step->id,
                 program_status_name(m, rd.ps));
    return 0;
}

static int furnace_query(struct drv *drv,
                         const struct drv_step *step,
                         struct drv_status *ret,
                         int64_t deadline_ms,
                         struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    struct program want = program_for(drv, step), have;
    struct readings rd;
    bool running;
    int r = read_state(drv, &rd, deadline_ms, reterr);

    if (r == 0)
        r = read_program(drv, &have, deadline_ms, reterr);
    if (r)
        return r;
    fill_readings(drv, &rd, ret);
    running = rd.ps == m->program_status_values.run || rd.ps == m->program_status_values.hold;
    if (rd.d_ps.invalid) {
        ret->state = DRV_STEP_UNKNOWN;
        snprintf(ret->reason, sizeof(ret->reason), "INVALID program status: %s", rd.d_ps.reason);
    } else if (!same_program(&have, &want)) {
        ret->state = running ? DRV_STEP_UNKNOWN : DRV_STEP_NOT_STARTED;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 running ? "another program is running" : "the loaded program is not this step's");
    } else if (running) {
        ret->state = DRV_STEP_RUNNING;
        snprintf(ret->reason, sizeof(ret->reason), "this step's program is running");
    } else if ((rd.ps == m->program_status_values.end || (rd.status & ST_PROGRAM_END(m))) &&
               drv->started_step_id == step->id) {
        ret->state = DRV_STEP_DONE;
        snprintf(ret->reason, sizeof(ret->reason), "this step's program ended");
    } else if (rd.ps == m->program_status_values.end || (rd.status & ST_PROGRAM_END(m))) {
        /* the controller keeps no step id: consecutive anneals often share parameters */
        ret->state = DRV_STEP_UNKNOWN;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "a program with this step's parameters ended, but the controller keeps no step "
                 "id: it may have been an earlier step with the same parameters");
    } else {
        ret->state = DRV_STEP_UNKNOWN;
        snprintf(ret->reason,
                 sizeof(ret->reason),
                 "this step's program is loaded but in reset: never started, or reset before "
                 "its end");
    }
    return 0;
}

static int furnace_safe(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    uint16_t want_sp = temp_raw(m, drv->inst.limits.safe_setpoint_c), v;
    int r;

    r = drv__mb_write_reg(
        drv, m->program_status, (uint16_t)m->program_status_values.reset, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "safe state: program reset");
    /* never leave the rate limit at 0 = unlimited */
    r = read1(drv, m->sp_rate, &v, deadline_ms, reterr);
    if (r == 0 && v == 0)
        r = drv__mb_write_reg(drv,
                              m->sp_rate,
                              unsigned_raw(drv->inst.limits.max_ramp_c_min, m->rate_scale),
                              deadline_ms,
                              reterr);
    /* the target setpoint lives in EEPROM: write it only when it differs */
    if (r == 0)
        r = read1(drv, m->target_sp, &v, deadline_ms, reterr);
    if (r == 0 && v != want_sp)
        r = drv__mb_write_reg(drv, m->target_sp, want_sp, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->program_status, &v, deadline_ms, reterr);
    if (r)
        return ll_error_prefix(reterr, "safe state");
    if (v != m->program_status_values.reset)
        return ll_error_set(reterr,
                            DRV_EREFUSED,
                            "safe state: program status reads %s after reset",
                            program_status_name(m, v));
    return 0;
}

static int furnace_describe(
    struct drv *drv, char *buf, size_t size, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_instrument *in = &drv->inst;
    const struct labconf_furnace_map *m = &in->map;
    struct readings rd;
    char pv[200], wsp[200];
    uint16_t alarm, sp_rate, tsp;
    int r = read_state(drv, &rd, deadline_ms, reterr);

    if (r == 0)
        r = read1(drv, m->alarm1, &alarm, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->sp_rate, &sp_rate, deadline_ms, reterr);
    if (r == 0)
        r = read1(drv, m->target_sp, &tsp, deadline_ms, reterr);
    if (r)
        return r;
    snprintf(buf,
             size,
             "furnace '%s': Modbus RTU %s %d %c%d%d slave %d, map '%s' (PV at %d, scale %g C)\n"
             "  limits: max %.1f C, max ramp %.1f C/min, safe setpoint %.1f C\n"
             "  PV %s, target setpoint %.1f C, working setpoint %s, rate limit %.1f "
             "C/min%s, alarm 1 at %.1f C, program %s, status 0x%04x",
             in->name,
             in->device,
             in->baud,
             in->parity,
             in->data_bits,
             in->stop_bits,
             in->slave,
             m->name,
             m->pv,
             m->temp_scale,
             in->limits.max_temp_c,
             in->limits.max_ramp_c_min,
             in->limits.safe_setpoint_c,
             temp_text(&rd.d_pv, " C", pv, sizeof(pv)),
             temp_c(m, tsp),
             temp_text(&rd.d_wsp, " C", wsp, sizeof(wsp)),
             sp_rate * m->rate_scale,
             sp_rate == 0 ? " (0 = UNLIMITED)" : "",
             temp_c(m, alarm),
             program_status_name(m, rd.ps),
             (unsigned)rd.status);
    return 0;
}

static int furnace_status(struct drv *drv,
                          struct drv_status *ret,
                          int64_t deadline_ms,
                          struct ll_error *reterr)
{
    struct readings rd;
    int r = read_state(drv, &rd, deadline_ms, reterr);

    if (r)
        return r;
    fill_readings(drv, &rd, ret);
    /* a reading without a usable PV is no reading: the daemon's "may the next sample go
     * in" check (and anyone else) gets an error naming the garbage, never a number */
    if (rd.d_pv.invalid)
        return ll_error_set(reterr, DRV_EFAULT, "INVALID PV: %s; %s", rd.d_pv.reason, ret->text);
    return 0;
}

static int furnace_clear_fault(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr)
{
    const struct labconf_furnace_map *m = &drv->inst.map;
    uint16_t v;
    int r = read1(drv, m->alarm1, &v, deadline_ms, reterr);

    if (r == 0)
        r = drv__mb_write_reg(drv, m->alarm1, v, deadline_ms, reterr);
    return r;
}

const struct drv_ops drv__furnace_ops = {
    .kind = "modbus_rtu_furnace",
    .connect = furnace_connect,
    .describe = furnace_describe,
    .status = furnace_status,
    .start = furnace_start,
    .poll = furnace_poll,
    .query = furnace_query,
    .safe = furnace_safe,
    .clear_fault = furnace_clear_fault,
    .disconnect = furnace_disconnect,
};

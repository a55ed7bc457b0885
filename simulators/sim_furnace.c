/* sim_furnace — simulated Modbus RTU temperature controller (see sim_furnace.h).
 *
 * Framing: a request's length follows from its function code (8 bytes for 01-06, 9 + byte
 * count for 15/16); any other function is found by its CRC. A frame with a bad CRC loses
 * its first byte and parsing resumes at the next one (resynchronisation after noise), as a
 * slave that never answers a corrupted frame would behave. References: Modbus over Serial
 * Line v1.02 §2.5; hardware.md §1.1-1.3 (register behaviour, thermal model assumptions).
 */
#include "simulators/sim_furnace.h"

#include "common/ll_crc.h"
#include "simulators/sim_log.h"

#include <math.h>
#include <string.h>

#define KP 0.05            /* output per °C of error */
#define KI 0.0005          /* output per °C·s */
#define NOISE_C 0.2        /* PV noise, standard deviation */
#define FAULT_STEP_S 0.5   /* simulated seconds per furnace.sensor_break opportunity */
#define LOOP_BREAK_S 600.0 /* a furnace.loop_break cuts the heater off this long */
#define LBT_S 60.0         /* loop-break time: full output this long without +LBR_RISE_C */
#define LBR_RISE_C 2.0

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double gaussian(uint64_t *state)
{
    double u1 = ((double)(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (double)(splitmix64(state) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void sim_furnace_init(struct sim_furnace *f,
                      const struct labconf_instrument *inst,
                      uint64_t seed,
                      struct sim_faults *faults)
{
    memset(f, 0, sizeof(*f));
    f->map = inst->map;
    f->slave = inst->slave;
    f->max_temp_c = inst->limits.max_temp_c > 0 ? inst->limits.max_temp_c : 200.0;
    f->safe_sp_c = inst->limits.safe_setpoint_c;
    f->amb_c = 25.0;
    f->temp_c = f->pv_c = 25.0;
    f->gain_c = fmax(600.0, 1.3 * f->max_temp_c);
    f->tau_s = 300.0;
    f->sp_target_c = f->sp_work_c = f->safe_sp_c > 0 ? f->safe_sp_c : 25.0;
    f->sp_remote_c = f->sp_target_c;
    f->alarm1_c = f->max_temp_c + 10.0;
    f->end_type = SIM_END_RESET;
    f->program = SIM_PROG_RESET;
    f->rng = seed * 0x9E3779B97F4A7C15ull + 0x46555252ull;
    f->faults = faults;
}

double sim_furnace_active_sp(const struct sim_furnace *f)
{
    if (f->use_override)
        return f->sp_override_c;
    return f->use_remote ? f->sp_remote_c : f->sp_target_c;
}

static double approach(double from, double to, double rate_c_min, double dt_s)
{
    if (rate_c_min <= 0.0)
        return to;
    double step = rate_c_min / 60.0 * dt_s;
    if (fabs(to - from) <= step)
        return to;
    return from + (to > from ? step : -step);
}

static void end_program(struct sim_furnace *f)
{
    switch (f->end_type) {
    case SIM_END_RESET:
        f->program = SIM_PROG_RESET;
        f->use_override = 1;
        f->sp_override_c = f->safe_sp_c;
        break;
    case SIM_END_SP2:
        f->program = SIM_PROG_END;
        f->use_override = 1;
        f->sp_override_c = f->safe_sp_c;
        break;
    case SIM_END_DWELL:
        f->program = SIM_PROG_END;
        f->use_override = 1;
        f->sp_override_c = f->seg_target_c;
        break;
    case SIM_END_OFF:
        f->program = SIM_PROG_END;
        f->use_override = 1;
        f->sp_override_c = f->sp_work_c;
        f->heater_off = 1;
        break;
    }
    f->in_dwell = 0;
    f->program_ended = 1; /* status B9 until the next program starts */
}

void sim_furnace_step(struct sim_furnace *f, double dt_s)
{
    /* one opportunity per FAULT_STEP_S of simulated time, however the caller slices it */
    f->fault_clock_s += dt_s;
    while (f->fault_clock_s >= FAULT_STEP_S - 1e-9) {
        f->fault_clock_s -= FAULT_STEP_S;
        if (f->faults != NULL && f->sensor_break_s <= 0.0 &&
            sim_fault_check(f->faults, "furnace.sensor_break", NULL)) {
            f->sensor_break_s = 30.0;
            sim_log(SIM_LOG_WARNING, "fault=furnace.sensor_break duration_s=30");
        }
        if (f->faults != NULL && f->heater_broken_s <= 0.0 &&
            sim_fault_check(f->faults, "furnace.loop_break", NULL)) {
            f->heater_broken_s = LOOP_BREAK_S;
            sim_log(SIM_LOG_WARNING, "fault=furnace.loop_break duration_s=%.0f", LOOP_BREAK_S);
        }
    }
    if (f->sensor_break_s > 0.0)
        f->sensor_break_s -= dt_s;
    if (f->heater_broken_s > 0.0)
        f->heater_broken_s -= dt_s;

    double sp_before = f->sp_work_c;
    if (f->program == SIM_PROG_RUN) {
        if (!f->in_dwell) {
            f->sp_work_c = approach(f->sp_work_c, f->seg_target_c, f->seg_rate_c_min, dt_s);
            if (f->sp_work_c == f->seg_target_c)
                f->in_dwell = 1;
        } else {
            f->dwell_elapsed_s += dt_s;
            if (f->dwell_elapsed_s >= f->seg_dwell_min * 60.0)
                end_program(f);
        }
    } else if (f->program != SIM_PROG_HOLD) {
        f->sp_work_c = approach(f->sp_work_c, sim_furnace_active_sp(f), f->sp_rate_c_min, dt_s);
    }
    double sp_rate_c_s = (f->sp_work_c - sp_before) / dt_s;

    /* Implicit (backward Euler) step of plant and proportional loop together, so that long
     * steps at high --speed stay stable: with u = A - KP*T' (A = feed-forward + KP*SP +
     * integral), T' = (T + h/tau*(K*A + T_amb)) / (1 + h/tau*(1 + K*KP)); when u clamps,
     * T' = (T + h/tau*(K*u + T_amb)) / (1 + h/tau). */
    double h = dt_s / f->tau_s;
    int fixed_u = 1;
    if (f->heater_off || f->alarm_latched || f->sensor_break_s > 0.0) {
        f->u = 0.0;
    } else if (!f->manual && f->heater_broken_s > 0.0) {
        /* the loop drives its output, nothing heats: the plant cools towards ambient */
        double e = f->sp_work_c - f->temp_c;
        f->integ += KI * e * dt_s;
        f->integ = fmin(0.3, fmax(-0.3, f->integ));
        double ff = (f->sp_work_c - f->amb_c + f->tau_s * sp_rate_c_s) / f->gain_c;
        f->u = fmin(1.0, fmax(0.0, ff + KP * e + f->integ));
        f->temp_c = (f->temp_c + h * f->amb_c) / (1.0 + h);
        fixed_u = 0;
    } else if (!f->manual) {
        double e = f->sp_work_c - f->temp_c;
        double ff = (f->sp_work_c - f->amb_c + f->tau_s * sp_rate_c_s) / f->gain_c;
        f->integ += KI * e * dt_s;
        f->integ = fmin(0.3, fmax(-0.3, f->integ));
        double a = ff + KP * f->sp_work_c + f->integ;
        double t_new =
            (f->temp_c + h * (f->gain_c * a + f->amb_c)) / (1.0 + h * (1.0 + f->gain_c * KP));
        double u = a - KP * t_new;
        if (u >= 0.0 && u <= 1.0) {
            f->u = u;
            f->temp_c = t_new;
            fixed_u = 0;
        } else {
            f->u = fmin(1.0, fmax(0.0, u));
        }
    }
    if (fixed_u)
        f->temp_c = (f->temp_c + h * (f->gain_c * f->u + f->amb_c)) / (1.0 + h);
    f->pv_c = f->temp_c + NOISE_C * gaussian(&f->rng);
    if (f->pv_c > f->alarm1_c)
        f->alarm_latched = 1;
    /* loop-break detection, as a controller does it */
    if (f->u >= 0.99) {
        if (f->lbr_clock_s == 0.0)
            f->lbr_pv0_c = f->temp_c;
        f->lbr_clock_s += dt_s;
        if (f->temp_c - f->lbr_pv0_c >= LBR_RISE_C) {
            f->lbr_clock_s = 0.0; /* it heats: start a new window */
        } else if (f->lbr_clock_s >= LBT_S && !f->loop_break) {
            f->loop_break = 1;
            sim_log(SIM_LOG_WARNING, "furnace: loop break (output 100 %% for %.0f s)", LBT_S);
        }
    } else {
        f->lbr_clock_s = 0.0;
        f->loop_break = 0;
    }
}

double sim_furnace_next_event_s(const struct sim_furnace *f)
{
    double due = HUGE_VAL;
    if (f->sensor_break_s > 0.0)
        due = f->sensor_break_s;
    if (f->heater_broken_s > 0.0)
        due = fmin(due, f->heater_broken_s);
    if (f->u >= 0.99 && !f->loop_break)
        due = fmin(due, LBT_S - f->lbr_clock_s);
    if (f->program == SIM_PROG_RUN) {
        if (f->in_dwell)
            due = fmin(due, f->seg_dwell_min * 60.0 - f->dwell_elapsed_s);
        else if (f->seg_rate_c_min > 0.0)
            due = fmin(due, fabs(f->seg_target_c - f->sp_work_c) / (f->seg_rate_c_min / 60.0));
        else
            due = 0.0;
    }
    return fmax(0.0, due);
}

uint16_t sim_furnace_status(const struct sim_furnace *f)
{
    uint16_t s = 0;
    const struct labconf_status_bits *b = &f->map.status_bits;
    if (f->alarm_latched)
        s |= 1u << b->alarm1;
    if (f->manual)
        s |= 1u << 4;
    if (f->sensor_break_s > 0.0)
        s |= 1u << b->sensor_break;
    if (f->loop_break)
        s |= 1u << b->loop_break;
    if (f->program_ended)
        s |= 1u << b->program_end;
    if (f->temp_c > 1.05 * f->max_temp_c)
        s |= 1u << b->over_range;
    if (f->program == SIM_PROG_RUN || f->sp_work_c != sim_furnace_active_sp(f))
        s |= 1u << 13;
    return s;
}

static uint16_t raw_of(double value, double scale)
{
    double r = round(value / scale);
    if (r > 32767.0)
        r = 32767.0;
    if (r < -32768.0)
        r = -32768.0;
    return (uint16_t)(int16_t)r;
}

static int program_value(const struct sim_furnace *f, enum sim_program p)
{
    const struct labconf_program_status_values *v = &f->map.program_status_values;
    switch (p) {
    case SIM_PROG_RUN:
        return v->run;
    case SIM_PROG_HOLD:
        return v->hold;
    case SIM_PROG_END:
        return v->end;
    default:
        return v->reset;
    }
}

static int end_type_value(const struct sim_furnace *f)
{
    const struct labconf_end_type_values *v = &f->map.end_type_values;
    switch (f->end_type) {
    case SIM_END_OFF:
        return v->off;
    case SIM_END_DWELL:
        return v->dwell;
    case SIM_END_SP2:
        return v->sp2;
    default:
        return v->reset;
    }
}

/* Reads register addr; returns 0 or exception 2 (not in the map). */
static int reg_read(const struct sim_furnace *f, int addr, uint16_t *ret)
{
    const struct labconf_furnace_map *m = &f->map;
    if (addr == m->pv)
        *ret = f->sensor_break_s > 0.0 ? 32767 : raw_of(f->pv_c, m->temp_scale);
    else if (addr == m->target_sp)
        *ret = raw_of(f->sp_target_c, m->temp_scale);
    else if (addr == m->output)
        *ret = (uint16_t)lround(f->u * 1000.0);
    else if (addr == m->working_sp)
        *ret = raw_of(f->sp_work_c, m->temp_scale);
    else if (addr == m->alarm1)
        *ret = raw_of(f->alarm1_c, m->temp_scale);
    else if (addr == m->program_status)
        *ret = (uint16_t)program_value(f, f->program);
    else if (addr == m->remote_sp)
        *ret = raw_of(f->sp_remote_c, m->temp_scale);
    else if (addr == m->sp_rate)
        *ret = raw_of(f->sp_rate_c_min, m->rate_scale);
    else if (addr == m->status)
        *ret = sim_furnace_status(f);
    else if (addr == m->auto_manual)
        *ret = (uint16_t)f->manual;
    else if (addr == m->end_type)
        *ret = (uint16_t)end_type_value(f);
    else if (addr == m->seg_dwell)
        *ret = raw_of(f->seg_dwell_min, m->dwell_scale);
    else if (addr == m->seg_target)
        *ret = raw_of(f->seg_target_c, m->temp_scale);
    else if (addr == m->seg_rate)
        *ret = raw_of(f->seg_rate_c_min, m->rate_scale);
    else
        return 2;
    return 0;
}

static int reg_mapped(const struct sim_furnace *f, int addr)
{
    uint16_t v;
    return reg_read(f, addr, &v) == 0;
}

static int write_program_status(struct sim_furnace *f, int value)
{
    const struct labconf_program_status_values *v = &f->map.program_status_values;
    if (value == v->run) {
        if (f->program == SIM_PROG_HOLD) {
            f->program = SIM_PROG_RUN;
        } else if (f->program != SIM_PROG_RUN) {
            f->program = SIM_PROG_RUN;
            f->sp_work_c = f->temp_c; /* the program starts from the PV */
            f->in_dwell = 0;
            f->dwell_elapsed_s = 0.0;
            f->heater_off = 0;
            f->use_override = 0;
            f->program_ended = 0;
            f->programs_run++;
        }
    } else if (value == v->hold) {
        if (f->program == SIM_PROG_RUN)
            f->program = SIM_PROG_HOLD;
    } else if (value == v->reset) {
        f->program = SIM_PROG_RESET;
        f->in_dwell = 0;
        f->use_override = 0;
        f->heater_off = 0;
    } else {
        return 3;
    }
    return 0;
}

/* Writes raw value to register addr; returns 0 or an exception code. */
static int reg_write(struct sim_furnace *f, int addr, uint16_t raw)
{
    const struct labconf_furnace_map *m = &f->map;
    double sv = (int16_t)raw;
    if (addr == m->target_sp) {
        double t = sv * m->temp_scale;
        if (t > f->max_temp_c)
            return 3;
        f->sp_target_c = t;
        f->use_remote = f->use_override = f->heater_off = 0;
        f->eeprom_writes++;
    } else if (addr == m->remote_sp) {
        double t = sv * m->temp_scale;
        if (t > f->max_temp_c)
            return 3;
        f->sp_remote_c = t;
        f->use_remote = 1;
        f->use_override = f->heater_off = 0;
    } else if (addr == m->alarm1) {
        f->alarm1_c = sv * m->temp_scale;
        if (f->pv_c <= f->alarm1_c)
            f->alarm_latched = 0;
    } else if (addr == m->program_status) {
        return write_program_status(f, raw);
    } else if (addr == m->sp_rate) {
        if (sv < 0)
            return 3;
        f->sp_rate_c_min = sv * m->rate_scale;
    } else if (addr == m->auto_manual) {
        if (raw > 1)
            return 3;
        f->manual = raw;
    } else if (addr == m->end_type) {
        const struct labconf_end_type_values *v = &m->end_type_values;
        if (raw == v->off)
            f->end_type = SIM_END_OFF;
        else if (raw == v->dwell)
            f->end_type = SIM_END_DWELL;
        else if (raw == v->sp2)
            f->end_type = SIM_END_SP2;
        else if (raw == v->reset)
            f->end_type = SIM_END_RESET;
        else
            return 3;
    } else if (addr == m->seg_dwell) {
        if (sv < 0)
            return 3;
        f->seg_dwell_min = sv * m->dwell_scale;
    } else if (addr == m->seg_target) {
        double t = sv * m->temp_scale;
        if (t > f->max_temp_c)
            return 3;
        f->seg_target_c = t;
    } else if (addr == m->seg_rate) {
        if (sv < 0)
            return 3;
        f->seg_rate_c_min = sv * m->rate_scale;
    } else if (reg_mapped(f, addr)) {
        return 3; /* read-only */
    } else {
        return 2;
    }
    return 0;
}

static size_t finish(uint8_t *out, size_t n)
{
    uint16_t crc = ll_crc16_modbus(out, n);
    out[n] = (uint8_t)(crc & 0xFF);
    out[n + 1] = (uint8_t)(crc >> 8);
    return n + 2;
}

static size_t exception(const uint8_t *frame, uint8_t code, uint8_t *out)
{
    out[0] = frame[0];
    out[1] = (uint8_t)(frame[1] | 0x80);
    out[2] = code;
    return finish(out, 3);
}

/* The request's function code and register range, for @fc / @reg fault scripts. */
static struct sim_fault_at request_at(const uint8_t *frame, size_t len)
{
    struct sim_fault_at at = {.fc = frame[1]};

    if (len >= 6)
        at.addr = (frame[2] << 8) | frame[3];
    at.count = 1;
    if ((frame[1] <= 4 || frame[1] == 15 || frame[1] == 16) && len >= 8)
        at.count = (frame[4] << 8) | frame[5];
    return at;
}

/* The reply faults of docs/instruments.md §6 that damage a good reply of n bytes in out (the
 * request was applied): another slave's id, the request echoed before the reply, the reply
 * cut short, or the reply sent late. Returns the new length. */
static size_t damage_reply(struct sim_furnace *f,
                           const uint8_t *frame,
                           size_t len,
                           const struct sim_fault_at *at,
                           uint8_t *out,
                           size_t n)
{
    long arg = -1;

    if (sim_fault_check_at(f->faults, "furnace.wrong_slave", at, NULL)) {
        out[0] = (uint8_t)(f->slave % 247 + 1);
        sim_log(SIM_LOG_WARNING, "fault=furnace.wrong_slave fc=%d slave=%d", frame[1], out[0]);
        return finish(out, n - 2);
    }
    if (sim_fault_check_at(f->faults, "furnace.echo", at, NULL) && len + n <= 260) {
        sim_log(SIM_LOG_WARNING, "fault=furnace.echo fc=%d bytes=%zu", frame[1], len);
        memmove(out + len, out, n);
        memcpy(out, frame, len);
        return len + n;
    }
    if (sim_fault_check_at(f->faults, "furnace.truncated", at, NULL)) {
        sim_log(SIM_LOG_WARNING, "fault=furnace.truncated fc=%d bytes=%zu/%zu", frame[1], n / 2, n);
        return n / 2;
    }
    if (sim_fault_check_at(f->faults, "furnace.late", at, &arg)) {
        int delay_ms = arg >= 0 ? (int)arg : 1000;
        sim_log(SIM_LOG_WARNING, "fault=furnace.late fc=%d delay_ms=%d", frame[1], delay_ms);
        if (delay_ms > f->reply_delay_ms)
            f->reply_delay_ms = delay_ms;
    }
    return n;
}

/* Garbage from the instrument (reliability.md B8, docs/instruments.md §6): the value v of
 * register addr in a read reply, replaced by a PV error code (furnace.pv_error, 0x8002 when
 * no argument), a raw PV (furnace.pv_raw, 32767 when none) or a program status the map does
 * not define (furnace.bad_state, 9 when none). One opportunity per read of the register. */
static uint16_t
garbage_value(struct sim_furnace *f, const struct sim_fault_at *at, int addr, uint16_t v)
{
    long arg = -1;

    if (addr == f->map.pv && sim_fault_check_at(f->faults, "furnace.pv_error", at, &arg)) {
        v = (uint16_t)(arg >= 0 ? arg : 0x8002);
        sim_log(SIM_LOG_WARNING, "fault=furnace.pv_error reg=%d value=0x%04X", addr, v);
    }
    if (addr == f->map.pv && sim_fault_check_at(f->faults, "furnace.pv_raw", at, &arg)) {
        v = (uint16_t)(arg >= 0 ? arg : 32767);
        sim_log(SIM_LOG_WARNING, "fault=furnace.pv_raw reg=%d value=0x%04X", addr, v);
    }
    if (addr == f->map.program_status &&
        sim_fault_check_at(f->faults, "furnace.bad_state", at, &arg)) {
        v = (uint16_t)(arg >= 0 ? arg : 9);
        sim_log(SIM_LOG_WARNING, "fault=furnace.bad_state reg=%d value=%u", addr, v);
    }
    return v;
}

size_t sim_furnace_handle(
    struct sim_furnace *f, const uint8_t *frame, size_t len, uint8_t *out, size_t cap)
{
    if (cap < 260 || len < 4)
        return 0;
    int broadcast = frame[0] == 0;
    if (!broadcast && frame[0] != f->slave)
        return 0;
    struct sim_fault_at at = request_at(frame, len);
    int acknowledge = 0;
    if (!broadcast && f->faults != NULL) {
        long code = -1;
        if (sim_fault_check_at(f->faults, "furnace.garbage", &at, NULL)) {
            size_t n = 3 + (size_t)(sim_fault_uniform(f->faults, "furnace.garbage") * 12);
            sim_log(SIM_LOG_WARNING, "fault=furnace.garbage fc=%d bytes=%zu", frame[1], n);
            for (size_t i = 0; i < n; i++)
                out[i] = (uint8_t)(splitmix64(&f->rng) & 0xFF);
            return n;
        }
        if (sim_fault_check_at(f->faults, "furnace.exception", &at, &code)) {
            if (code < 0)
                code = 4;
            sim_log(SIM_LOG_WARNING, "fault=furnace.exception fc=%d code=%ld", frame[1], code);
            /* 05 acknowledge: the request is accepted (applied), its result comes later */
            if (code != 5)
                return exception(frame, (uint8_t)code, out);
            acknowledge = 1;
        }
    }
    int no_reply = broadcast || (f->faults != NULL &&
                                 sim_fault_check_at(f->faults, "furnace.no_reply", &at, NULL));
    uint8_t fc = frame[1];
    int addr = len >= 6 ? (frame[2] << 8) | frame[3] : 0;
    size_t n = 0;
    int exc = 0;
    if ((fc == 3 || fc == 4) && len == 8 && !broadcast) {
        int qty = (frame[4] << 8) | frame[5];
        if (qty < 1 || qty > 125 || addr + qty > 65536) {
            exc = 3;
        } else {
            out[0] = frame[0];
            out[1] = fc;
            out[2] = (uint8_t)(2 * qty);
            for (int i = 0; i < qty && exc == 0; i++) {
                uint16_t v = 0;
                exc = reg_read(f, addr + i, &v);
                if (exc == 0 && f->faults != NULL)
                    v = garbage_value(f, &at, addr + i, v);
                out[3 + 2 * i] = (uint8_t)(v >> 8);
                out[4 + 2 * i] = (uint8_t)(v & 0xFF);
            }
            n = exc ? 0 : finish(out, 3 + 2 * (size_t)qty);
        }
    } else if (fc == 6 && len == 8) {
        exc = reg_write(f, addr, (uint16_t)((frame[4] << 8) | frame[5]));
        if (exc == 0) {
            memcpy(out, frame, 6);
            n = finish(out, 6);
        }
    } else if (fc == 16 && len >= 9) {
        int qty = (frame[4] << 8) | frame[5];
        if (qty < 1 || qty > 123 || frame[6] != 2 * qty || len != 9 + 2 * (size_t)qty) {
            exc = 3;
        } else {
            for (int i = 0; i < qty && exc == 0; i++)
                if (!reg_mapped(f, addr + i))
                    exc = 2;
            for (int i = 0; i < qty && exc == 0; i++)
                exc =
                    reg_write(f, addr + i, (uint16_t)((frame[7 + 2 * i] << 8) | frame[8 + 2 * i]));
            if (exc == 0) {
                memcpy(out, frame, 6);
                n = finish(out, 6);
            }
        }
    } else {
        exc = 1;
    }
    if (no_reply)
        return 0;
    if (exc != 0)
        return exception(frame, (uint8_t)exc, out);
    if (acknowledge)
        return exception(frame, 5, out);
    if (f->faults != NULL && n > 0)
        n = damage_reply(f, frame, len, &at, out, n);
    return n;
}

/* Length of the frame at the start of buf: >0 known, 0 need more bytes. A byte that cannot
 * start a frame for us (another address with a function we cannot size) counts as a frame
 * of length 1, which fails the CRC check and is dropped. */
static size_t frame_length(const struct sim_furnace *f, const uint8_t *buf, size_t n)
{
    if (n < 2)
        return 0;
    uint8_t fc = buf[1];
    int known = (fc >= 1 && fc <= 6) || fc == 15 || fc == 16;
    if (!known && buf[0] != f->slave && buf[0] != 0)
        return 1;
    if (fc >= 1 && fc <= 6)
        return n >= 8 ? 8 : 0;
    if (fc == 15 || fc == 16) {
        if (n < 7)
            return 0;
        size_t len = 9 + (size_t)buf[6];
        return n >= len ? len : 0;
    }
    for (size_t len = 4; len <= n; len++) {
        uint16_t crc = ll_crc16_modbus(buf, len - 2);
        if (buf[len - 2] == (crc & 0xFF) && buf[len - 1] == (crc >> 8))
            return len;
    }
    return 0;
}

size_t
sim_furnace_feed(struct sim_furnace *f, const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
    size_t written = 0;
    f->reply_delay_ms = 0;
    while (len > 0) {
        size_t take = sizeof(f->rx) - f->n_rx;
        if (take > len)
            take = len;
        memcpy(f->rx + f->n_rx, data, take);
        f->n_rx += take;
        data += take;
        len -= take;
        for (;;) {
            size_t flen = frame_length(f, f->rx, f->n_rx);
            if (flen == 0) {
                if (f->n_rx == sizeof(f->rx)) /* no frame fits: drop a byte */
                    flen = 1;
                else
                    break;
            }
            int ok = flen >= 4;
            if (ok) {
                uint16_t crc = ll_crc16_modbus(f->rx, flen - 2);
                ok = f->rx[flen - 2] == (crc & 0xFF) && f->rx[flen - 1] == (crc >> 8);
            }
            size_t consumed = ok ? flen : 1;
            if (ok && cap - written >= 260)
                written += sim_furnace_handle(f, f->rx, flen, out + written, cap - written);
            memmove(f->rx, f->rx + consumed, f->n_rx - consumed);
            f->n_rx -= consumed;
        }
    }
    return written;
}

void sim_furnace_flush_partial(struct sim_furnace *f)
{
    f->n_rx = 0;
}

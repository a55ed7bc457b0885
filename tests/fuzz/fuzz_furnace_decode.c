/* fuzz_furnace_decode — furnace_decode() (drivers/furnace.c), the decoding of the furnace's
 * Modbus register values by the map (reliability.md B8: garbage from instruments).
 *
 * Input: a map header, then register values, big-endian as in a Modbus reply.
 *   byte 0       base map: even = the Eurotherm 3216 map, odd = the Omega/Delta-style
 *                "vendorb" (as in config/lab.conf, built here: no file parsing)
 *   byte 1       temp_scale from a table (0.1, 1, 0.01, 10, 1e300, 1e-300, +inf, NAN)
 *   bytes 2-9    program_status_values reset, run, hold, end (u16 each)
 *   bytes 10-13  temp_range_c LO, HI as signed 16-bit degrees (none when LO >= HI)
 *   byte 14      number of PV error codes (mod 17), then that many u16 codes
 *   the rest     register values (u16), each decoded as PV, working setpoint, program
 *                status and status word; the bytes "FF xx" before a value pick one
 *                register only (xx mod 5; 4 is no register at all)
 * Invariants: the result is one of enum furnace_invalid and equals ret->invalid; INVALID
 * has a non-empty NUL-terminated reason and a NAN value, VALID an empty reason; a valid
 * temperature is finite, inside the range, and for PV no error code; a valid program status
 * is the map's value of the state returned, an invalid one none of them; a status word is
 * always valid with its bits unchanged.
 */
#include "drivers/driver_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void base_map(struct labconf_furnace_map *m, int vendorb)
{
    memset(m, 0, sizeof(*m));
    if (vendorb) {
        strcpy(m->name, "vendorb");
        m->pv = 4096;
        m->working_sp = 4099;
        m->program_status = 4101;
        m->status = 4104;
        m->program_status_values = (struct labconf_program_status_values){1, 2, 4, 8};
        for (int i = 0; i < 5; i++)
            m->pv_error_codes[i] = 0x8002 + i;
        m->n_pv_error_codes = 5;
    } else {
        strcpy(m->name, "eurotherm3216");
        m->pv = 1;
        m->working_sp = 5;
        m->program_status = 23;
        m->status = 75;
        m->program_status_values = (struct labconf_program_status_values){0, 1, 2, 3};
    }
    m->temp_scale = 0.1;
    m->has_temp_range = true;
    m->temp_min_c = -200.0;
    m->temp_max_c = 1372.0;
    m->status_bits = (struct labconf_status_bits){
        .alarm1 = 0, .sensor_break = 5, .loop_break = 6, .program_end = 9, .over_range = 10};
}

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void check(const struct labconf_furnace_map *m, enum furnace_reg reg, uint16_t raw)
{
    const struct labconf_program_status_values *v = &m->program_status_values;
    struct furnace_reading d;
    enum furnace_invalid r = furnace_decode(m, reg, raw, &d);

    if (r != d.invalid || (int)r < FURNACE_VALID || (int)r > FURNACE_INVALID_NONFINITE)
        abort();
    if (memchr(d.reason, '\0', sizeof(d.reason)) == NULL || d.raw != raw)
        abort();
    if (r != FURNACE_VALID) {
        if (d.reason[0] == '\0' || !isnan(d.value))
            abort();
    } else if (d.reason[0] != '\0') {
        abort();
    }
    switch ((int)reg) {
    case FURNACE_REG_PV:
    case FURNACE_REG_WORKING_SP:
        if (r == FURNACE_VALID) {
            if (!isfinite(d.value))
                abort();
            if (m->has_temp_range && (d.value < m->temp_min_c || d.value > m->temp_max_c))
                abort();
            for (int i = 0; reg == FURNACE_REG_PV && i < m->n_pv_error_codes; i++)
                if (m->pv_error_codes[i] == raw)
                    abort();
        } else if (r == FURNACE_INVALID_STATE) {
            abort();
        }
        break;
    case FURNACE_REG_PROGRAM_STATUS: {
        const int vals[4] = {v->reset, v->run, v->hold, v->end};
        bool defined = raw == v->reset || raw == v->run || raw == v->hold || raw == v->end;
        if (r == FURNACE_VALID) {
            if ((int)d.state < 0 || (int)d.state > 3 || vals[d.state] != raw)
                abort();
        } else if (r != FURNACE_INVALID_STATE || defined) {
            abort();
        }
        break;
    }
    case FURNACE_REG_STATUS:
        if (r != FURNACE_VALID || d.bits != raw)
            abort();
        break;
    default:
        if (r == FURNACE_VALID)
            abort();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double scales[] = {
        0.1, 1.0, 0.01, 10.0, 1e300, 1e-300, (double)INFINITY, (double)NAN};
    struct labconf_furnace_map m;
    size_t at = 15;
    int n;

    if (size < 15)
        return 0;
    base_map(&m, data[0] & 1);
    m.temp_scale = scales[data[1] % 8];
    m.program_status_values.reset = u16(data + 2);
    m.program_status_values.run = u16(data + 4);
    m.program_status_values.hold = u16(data + 6);
    m.program_status_values.end = u16(data + 8);
    {
        int lo = (int16_t)u16(data + 10), hi = (int16_t)u16(data + 12);
        m.has_temp_range = lo < hi;
        m.temp_min_c = m.has_temp_range ? lo : 0.0;
        m.temp_max_c = m.has_temp_range ? hi : 0.0;
    }
    n = data[14] % (LABCONF_MAX_PV_ERROR_CODES + 1);
    m.n_pv_error_codes = 0;
    for (int i = 0; i < n && at + 2 <= size; i++, at += 2)
        m.pv_error_codes[m.n_pv_error_codes++] = u16(data + at);
    while (at + 2 <= size) {
        if (data[at] == 0xFF && at + 4 <= size) {
            check(&m, (enum furnace_reg)(data[at + 1] % 5), u16(data + at + 2));
            at += 4;
            continue;
        }
        for (int r = FURNACE_REG_PV; r <= FURNACE_REG_STATUS; r++)
            check(&m, (enum furnace_reg)r, u16(data + at));
        at += 2;
    }
    return 0;
}

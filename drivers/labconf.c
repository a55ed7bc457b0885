/* labconf — loading, checking and writing the lab definition (see labconf.h).
 *
 * The loader walks the libconfig tree once, group by group, with small typed getters that
 * check the type, the range and finiteness and name the line on failure. Maps are read
 * before instruments so that an instrument can name a map defined anywhere in the file;
 * the instrument gets a copy of the map, so a driver needs nothing but its instrument.
 * The writer prints every field that the loader reads for the instrument's kind, so
 * load(write(lab)) gives back equal structs (tests/unit/test_labconf.c checks it).
 */
#include "drivers/labconf.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct parse {
    const char *source;
    struct ll_error *err;
};

__attribute__((format(printf, 3, 4))) static int
fail(struct parse *p, const config_setting_t *s, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    /* clang-tidy 14 reports ap uninitialised when it inlines this into a caller (a false
     * positive: va_start is right above) */
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    return ll_error_set(
        p->err, -EINVAL, "%s:%d: %s", p->source, s ? (int)config_setting_source_line(s) : 0, msg);
}

static const char *driver_names[] = {
    [LABCONF_DRIVER_ROBOT_MODBUS_TCP] = "modbus_tcp_robot",
    [LABCONF_DRIVER_FURNACE_MODBUS_RTU] = "modbus_rtu_furnace",
    [LABCONF_DRIVER_COATER_SPN1] = "spn1_coater",
};

const char *labconf_driver_name(enum labconf_driver driver)
{
    if ((int)driver < 1 || (int)driver > LABCONF_DRIVER_COATER_SPN1)
        return "?";
    return driver_names[driver];
}

/* A name that is also a valid libconfig key: [A-Za-z][A-Za-z0-9_-]*, so places and maps
 * can be written back as keys, and instrument names stay printable. */
static bool valid_name(const char *s)
{
    if (!s[0] || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (const char *c = s; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Every member of group must be in allowed (NULL-terminated). */
static int check_keys(struct parse *p,
                      const config_setting_t *group,
                      const char *what,
                      const char *const *allowed)
{
    int n = config_setting_length(group);

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        bool ok = false;

        for (const char *const *a = allowed; *a && name; a++)
            if (strcmp(*a, name) == 0)
                ok = true;
        if (!ok)
            return fail(p, m, "%s: unknown key '%s'", what, name ? name : "?");
    }
    return 0;
}

static int get_int(struct parse *p,
                   const config_setting_t *group,
                   const char *what,
                   const char *key,
                   bool required,
                   int dflt,
                   int min,
                   int max,
                   int *ret)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    long long v;

    if (!s) {
        if (required)
            return fail(p, group, "%s: '%s' is missing", what, key);
        *ret = dflt;
        return 0;
    }
    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(s);
    else
        return fail(p, s, "%s: '%s' must be an integer", what, key);
    if (v < min || v > max)
        return fail(p, s, "%s: '%s' = %lld is outside %d..%d", what, key, v, min, max);
    *ret = (int)v;
    return 0;
}

/* The value of a float or integer setting s (named key in what), or a FILE:LINE error. */
static int setting_number(
    struct parse *p, const config_setting_t *s, const char *what, const char *key, double *ret)
{
    if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
        *ret = config_setting_get_float(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT)
        *ret = (double)config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        *ret = (double)config_setting_get_int64(s);
    else
        return fail(p, s, "%s: '%s' must be a number", what, key);
    return 0;
}

static int get_double(struct parse *p,
                      const config_setting_t *group,
                      const char *what,
                      const char *key,
                      double min_exclusive,
                      double max,
                      double *ret)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    double v = 0.0;

    if (!s)
        return fail(p, group, "%s: '%s' is missing", what, key);
    if (setting_number(p, s, what, key, &v) < 0)
        return -EINVAL;
    if (!isfinite(v) || !(v > min_exclusive) || v > max)
        return fail(p, s, "%s: '%s' = %g is outside (%g, %g]", what, key, v, min_exclusive, max);
    *ret = v;
    return 0;
}

/* An optional number: dflt when absent, else within [min, max]. */
static int get_double_opt(struct parse *p,
                          const config_setting_t *group,
                          const char *what,
                          const char *key,
                          double dflt,
                          double min,
                          double max,
                          double *ret)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    double v = 0.0;

    if (!s) {
        *ret = dflt;
        return 0;
    }
    if (setting_number(p, s, what, key, &v) < 0)
        return -EINVAL;
    if (!isfinite(v) || v < min || v > max)
        return fail(p, s, "%s: '%s' = %g is outside [%g, %g]", what, key, v, min, max);
    *ret = v;
    return 0;
}

static int get_string(struct parse *p,
                      const config_setting_t *group,
                      const char *what,
                      const char *key,
                      bool required,
                      const char *dflt,
                      char *buf,
                      size_t size)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    const char *v;

    if (!s) {
        if (required)
            return fail(p, group, "%s: '%s' is missing", what, key);
        snprintf(buf, size, "%s", dflt);
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(p, s, "%s: '%s' must be a string", what, key);
    v = config_setting_get_string(s);
    if (!v || strlen(v) >= size)
        return fail(p, s, "%s: '%s' is longer than %zu characters", what, key, size - 1);
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail(p, s, "%s: '%s' contains a control character", what, key);
    memcpy(buf, v, strlen(v) + 1);
    return 0;
}

static const char *const map_keys[] = {"pv",
                                       "target_sp",
                                       "output",
                                       "working_sp",
                                       "alarm1",
                                       "program_status",
                                       "remote_sp",
                                       "sp_rate",
                                       "status",
                                       "auto_manual",
                                       "end_type",
                                       "seg_dwell",
                                       "seg_target",
                                       "seg_rate",
                                       "temp_scale",
                                       "rate_scale",
                                       "dwell_scale",
                                       "program_status_values",
                                       "end_type_values",
                                       "status_bits",
                                       "pv_error_codes",
                                       "temp_range_c",
                                       NULL};

static int parse_enum4(struct parse *p,
                       const config_setting_t *map,
                       const char *what,
                       const char *key,
                       const char *const names[4],
                       int *vals[4])
{
    const config_setting_t *g = config_setting_get_member(map, key);
    const char *const allowed[] = {names[0], names[1], names[2], names[3], NULL};
    char w[LABCONF_NAME_MAX + 64];
    int r;

    if (!g)
        return fail(p, map, "%s: '%s' is missing", what, key);
    if (!config_setting_is_group(g))
        return fail(p, g, "%s: '%s' must be a group", what, key);
    snprintf(w, sizeof(w), "%s %s", what, key);
    r = check_keys(p, g, w, allowed);
    for (int i = 0; i < 4 && r == 0; i++)
        r = get_int(p, g, w, names[i], true, 0, 0, 65535, vals[i]);
    return r;
}

static int parse_status_bits(struct parse *p,
                             const config_setting_t *map,
                             const char *what,
                             struct labconf_status_bits *b)
{
    static const char *const keys[] = {
        "alarm1", "sensor_break", "loop_break", "program_end", "over_range", NULL};
    const config_setting_t *g = config_setting_get_member(map, "status_bits");
    char w[LABCONF_NAME_MAX + 64];
    int r;

    b->alarm1 = 0;
    b->sensor_break = 5;
    b->loop_break = 6;
    b->program_end = 9;
    b->over_range = 10;
    if (!g)
        return 0;
    if (!config_setting_is_group(g))
        return fail(p, g, "%s: 'status_bits' must be a group", what);
    snprintf(w, sizeof(w), "%s status_bits", what);
    r = check_keys(p, g, w, keys);
    if (r == 0)
        r = get_int(p, g, w, "alarm1", false, 0, 0, 15, &b->alarm1);
    if (r == 0)
        r = get_int(p, g, w, "sensor_break", false, 5, 0, 15, &b->sensor_break);
    if (r == 0)
        r = get_int(p, g, w, "loop_break", false, 6, 0, 15, &b->loop_break);
    if (r == 0)
        r = get_int(p, g, w, "program_end", false, 9, 0, 15, &b->program_end);
    if (r == 0)
        r = get_int(p, g, w, "over_range", false, 10, 0, 15, &b->over_range);
    return r;
}

/* pv_error_codes = [ 0x8002, ... ] (optional): raw PV values that are error codes. */
static int parse_pv_error_codes(struct parse *p,
                                const config_setting_t *map,
                                const char *what,
                                struct labconf_furnace_map *m)
{
    const config_setting_t *a = config_setting_get_member(map, "pv_error_codes");
    int n;

    m->n_pv_error_codes = 0;
    if (!a)
        return 0;
    if (!config_setting_is_array(a) && !config_setting_is_list(a))
        return fail(p, a, "%s: 'pv_error_codes' must be a list of integers [ 0x8002, ... ]", what);
    n = config_setting_length(a);
    if (n > LABCONF_MAX_PV_ERROR_CODES)
        return fail(
            p, a, "%s: 'pv_error_codes': more than %d codes", what, LABCONF_MAX_PV_ERROR_CODES);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(a, (unsigned)i);
        long long v;

        if (config_setting_type(e) == CONFIG_TYPE_INT)
            v = config_setting_get_int(e);
        else if (config_setting_type(e) == CONFIG_TYPE_INT64)
            v = config_setting_get_int64(e);
        else
            return fail(p, e, "%s: 'pv_error_codes' must be a list of integers", what);
        if (v < 0 || v > 65535)
            return fail(p,
                        e,
                        "%s: 'pv_error_codes': %lld is not a 16-bit register value (0..0xFFFF)",
                        what,
                        v);
        m->pv_error_codes[m->n_pv_error_codes++] = (int)v;
    }
    return 0;
}

/* temp_range_c = [ LO, HI ] (optional): the documented range of PV and working setpoint. */
static int parse_temp_range(struct parse *p,
                            const config_setting_t *map,
                            const char *what,
                            struct labconf_furnace_map *m)
{
    const config_setting_t *a = config_setting_get_member(map, "temp_range_c");
    double v[2] = {0.0, 0.0};

    m->has_temp_range = false;
    m->temp_min_c = m->temp_max_c = 0.0;
    if (!a)
        return 0;
    if ((!config_setting_is_array(a) && !config_setting_is_list(a)) ||
        config_setting_length(a) != 2)
        return fail(p, a, "%s: 'temp_range_c' must be [ LO, HI ] (degrees C)", what);
    for (int i = 0; i < 2; i++)
        if (setting_number(
                p, config_setting_get_elem(a, (unsigned)i), what, "temp_range_c", &v[i]) < 0)
            return -EINVAL;
    if (!isfinite(v[0]) || !isfinite(v[1]) || !(v[0] < v[1]) || v[0] < -10000.0 || v[1] > 10000.0)
        return fail(p,
                    a,
                    "%s: 'temp_range_c' = [ %g, %g ] is not LO < HI within -10000..10000 C",
                    what,
                    v[0],
                    v[1]);
    m->has_temp_range = true;
    m->temp_min_c = v[0];
    m->temp_max_c = v[1];
    return 0;
}

static int parse_map(struct parse *p, const config_setting_t *g, struct labconf_furnace_map *m)
{
    static const char *const ps_names[4] = {"reset", "run", "hold", "end"};
    static const char *const et_names[4] = {"off", "dwell", "sp2", "reset"};
    char what[LABCONF_NAME_MAX + 16];
    const char *name = config_setting_name(g);
    int r;
    struct {
        const char *key;
        int *field;
    } addrs[] = {
        {"pv",             &m->pv            },
        {"target_sp",      &m->target_sp     },
        {"output",         &m->output        },
        {"working_sp",     &m->working_sp    },
        {"alarm1",         &m->alarm1        },
        {"program_status", &m->program_status},
        {"remote_sp",      &m->remote_sp     },
        {"sp_rate",        &m->sp_rate       },
        {"status",         &m->status        },
        {"auto_manual",    &m->auto_manual   },
        {"end_type",       &m->end_type      },
        {"seg_dwell",      &m->seg_dwell     },
        {"seg_target",     &m->seg_target    },
        {"seg_rate",       &m->seg_rate      },
    };

    if (!name || strlen(name) >= sizeof(m->name) || !valid_name(name))
        return fail(p, g, "map: bad name");
    if (!config_setting_is_group(g))
        return fail(p, g, "map '%s' must be a group", name);
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->line = (int)config_setting_source_line(g);
    snprintf(what, sizeof(what), "map '%s'", name);
    r = check_keys(p, g, what, map_keys);
    for (size_t i = 0; r == 0 && i < sizeof(addrs) / sizeof(addrs[0]); i++)
        r = get_int(p, g, what, addrs[i].key, true, 0, 0, 65535, addrs[i].field);
    if (r == 0)
        r = get_double(p, g, what, "temp_scale", 0.0, 1000.0, &m->temp_scale);
    if (r == 0)
        r = get_double(p, g, what, "rate_scale", 0.0, 1000.0, &m->rate_scale);
    if (r == 0)
        r = get_double(p, g, what, "dwell_scale", 0.0, 1000.0, &m->dwell_scale);
    if (r == 0) {
        int *v[4] = {&m->program_status_values.reset,
                     &m->program_status_values.run,
                     &m->program_status_values.hold,
                     &m->program_status_values.end};
        r = parse_enum4(p, g, what, "program_status_values", ps_names, v);
    }
    if (r == 0) {
        int *v[4] = {&m->end_type_values.off,
                     &m->end_type_values.dwell,
                     &m->end_type_values.sp2,
                     &m->end_type_values.reset};
        r = parse_enum4(p, g, what, "end_type_values", et_names, v);
    }
    if (r == 0)
        r = parse_status_bits(p, g, what, &m->status_bits);
    if (r == 0)
        r = parse_pv_error_codes(p, g, what, m);
    if (r == 0)
        r = parse_temp_range(p, g, what, m);
    return r;
}

static const char *const robot_keys[] = {"name",
                                         "driver",
                                         "host",
                                         "port",
                                         "unit_id",
                                         "base",
                                         "response_timeout_ms",
                                         "byte_timeout_ms",
                                         "step_timeout_s",
                                         "poll_ms",
                                         "limits",
                                         "reservoirs",
                                         "places",
                                         "wells",
                                         "sim",
                                         NULL};
static const char *const furnace_keys[] = {"name",
                                           "driver",
                                           "device",
                                           "baud",
                                           "parity",
                                           "data_bits",
                                           "stop_bits",
                                           "slave",
                                           "map",
                                           "anneal_end_type",
                                           "load_tolerance_c",
                                           "load_wait_warn_min",
                                           "response_timeout_ms",
                                           "byte_timeout_ms",
                                           "step_timeout_s",
                                           "poll_ms",
                                           "limits",
                                           "sim",
                                           NULL};
static const char *const coater_keys[] = {"name",
                                          "driver",
                                          "device",
                                          "baud",
                                          "parity",
                                          "data_bits",
                                          "stop_bits",
                                          "response_timeout_ms",
                                          "byte_timeout_ms",
                                          "step_timeout_s",
                                          "poll_ms",
                                          "limits",
                                          "sim",
                                          NULL};

static int parse_limits(struct parse *p,
                        const config_setting_t *inst,
                        const char *what,
                        struct labconf_instrument *in)
{
    const config_setting_t *g = config_setting_get_member(inst, "limits");
    char w[LABCONF_NAME_MAX + 48];
    struct labconf_limits *l = &in->limits;
    int r;

    if (!g)
        return fail(p, inst, "%s: 'limits' is missing", what);
    if (!config_setting_is_group(g))
        return fail(p, g, "%s: 'limits' must be a group", what);
    snprintf(w, sizeof(w), "%s limits", what);
    switch (in->driver) {
    case LABCONF_DRIVER_ROBOT_MODBUS_TCP: {
        static const char *const k[] = {"max_volume_ul", "max_total_volume_ul", NULL};
        r = check_keys(p, g, w, k);
        if (r == 0)
            r = get_double(p, g, w, "max_volume_ul", 0.0, 6553.5, &l->max_volume_ul);
        if (r == 0)
            r = get_double(
                p, g, w, "max_total_volume_ul", 0.0, 8 * 6553.5, &l->max_total_volume_ul);
        break;
    }
    case LABCONF_DRIVER_FURNACE_MODBUS_RTU: {
        static const char *const k[] = {"max_temp_c", "max_ramp_c_min", "safe_setpoint_c", NULL};
        r = check_keys(p, g, w, k);
        if (r == 0)
            r = get_double(p, g, w, "max_temp_c", 0.0, 2000.0, &l->max_temp_c);
        if (r == 0)
            r = get_double(p, g, w, "max_ramp_c_min", 0.0, 1000.0, &l->max_ramp_c_min);
        if (r == 0)
            r = get_double(p, g, w, "safe_setpoint_c", -1.0, 2000.0, &l->safe_setpoint_c);
        if (r == 0 && l->safe_setpoint_c > l->max_temp_c)
            r = fail(p, g, "%s: 'safe_setpoint_c' is above 'max_temp_c'", w);
        break;
    }
    case LABCONF_DRIVER_COATER_SPN1: {
        static const char *const k[] = {"max_rpm", "max_accel_rpm_s", NULL};
        r = check_keys(p, g, w, k);
        if (r == 0)
            r = get_double(p, g, w, "max_rpm", 0.0, 100000.0, &l->max_rpm);
        if (r == 0)
            r = get_double(p, g, w, "max_accel_rpm_s", 0.0, 100000.0, &l->max_accel_rpm_s);
        break;
    }
    default:
        r = fail(p, g, "%s: unknown driver", what);
    }
    return r;
}

static int parse_robot_extras(struct parse *p,
                              const config_setting_t *inst,
                              const char *what,
                              struct labconf_instrument *in)
{
    const config_setting_t *res = config_setting_get_member(inst, "reservoirs");
    const config_setting_t *pl = config_setting_get_member(inst, "places");

    if (res) {
        int n = config_setting_length(res);
        if (!config_setting_is_array(res) && !config_setting_is_list(res))
            return fail(p, res, "%s: 'reservoirs' must be a list of names", what);
        if (n > LABCONF_MAX_RESERVOIRS)
            return fail(p, res, "%s: more than %d reservoirs", what, LABCONF_MAX_RESERVOIRS);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(res, (unsigned)i);
            const char *v = config_setting_get_string(e);
            if (!v || !valid_name(v) || strlen(v) >= LABCONF_NAME_MAX)
                return fail(p, e, "%s: reservoir %d must be a name", what, i + 1);
            memcpy(in->reservoirs[i], v, strlen(v) + 1);
        }
        in->n_reservoirs = n;
    }
    if (pl) {
        int n = config_setting_length(pl);
        if (!config_setting_is_group(pl))
            return fail(p, pl, "%s: 'places' must be a group of name = slot", what);
        if (n > LABCONF_MAX_PLACES)
            return fail(p, pl, "%s: more than %d places", what, LABCONF_MAX_PLACES);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(pl, (unsigned)i);
            const char *name = config_setting_name(e);
            if (!name || strlen(name) >= LABCONF_NAME_MAX || !valid_name(name))
                return fail(p, e, "%s: bad place name", what);
            if (config_setting_type(e) != CONFIG_TYPE_INT || config_setting_get_int(e) < 0 ||
                config_setting_get_int(e) > 15)
                return fail(p, e, "%s: place '%s' must be a slot 0..15", what, name);
            memcpy(in->places[i].name, name, strlen(name) + 1);
            in->places[i].slot = config_setting_get_int(e);
        }
        in->n_places = n;
    }
    return 0;
}

static int parse_serial(struct parse *p,
                        const config_setting_t *g,
                        const char *what,
                        struct labconf_instrument *in,
                        int default_baud)
{
    char parity[4];
    int r;

    r = get_string(p, g, what, "device", true, "", in->device, sizeof(in->device));
    if (r == 0 && !in->device[0])
        r = fail(p, g, "%s: 'device' is empty", what);
    if (r == 0)
        r = get_int(p, g, what, "baud", false, default_baud, 300, 4000000, &in->baud);
    if (r == 0)
        r = get_string(p, g, what, "parity", false, "N", parity, sizeof(parity));
    if (r == 0) {
        if (strcmp(parity, "N") != 0 && strcmp(parity, "E") != 0 && strcmp(parity, "O") != 0)
            r = fail(
                p, config_setting_get_member(g, "parity"), "%s: parity must be N, E or O", what);
        in->parity = parity[0];
    }
    if (r == 0)
        r = get_int(p, g, what, "data_bits", false, 8, 5, 8, &in->data_bits);
    if (r == 0)
        r = get_int(p, g, what, "stop_bits", false, 1, 1, 2, &in->stop_bits);
    return r;
}

static int parse_instrument(struct parse *p,
                            const config_setting_t *g,
                            const struct labconf *lab,
                            struct labconf_instrument *in)
{
    char what[LABCONF_NAME_MAX + 32];
    char driver[64];
    const char *const *keys;
    int r;

    if (!config_setting_is_group(g))
        return fail(p, g, "instruments: each instrument must be a group { ... }");
    in->line = (int)config_setting_source_line(g);
    r = get_string(p, g, "instrument", "name", true, "", in->name, sizeof(in->name));
    if (r)
        return r;
    if (!valid_name(in->name))
        return fail(p, g, "instrument '%s': a name is letters, digits, '_' and '-'", in->name);
    snprintf(what, sizeof(what), "instrument '%s'", in->name);
    r = get_string(p, g, what, "driver", true, "", driver, sizeof(driver));
    if (r)
        return r;
    for (int d = LABCONF_DRIVER_ROBOT_MODBUS_TCP; d <= LABCONF_DRIVER_COATER_SPN1; d++)
        if (strcmp(driver, driver_names[d]) == 0)
            in->driver = (enum labconf_driver)d;
    if (!in->driver)
        return fail(p,
                    config_setting_get_member(g, "driver"),
                    "%s: unknown driver '%s' (modbus_tcp_robot, modbus_rtu_furnace, spn1_coater)",
                    what,
                    driver);
    keys = in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP     ? robot_keys
           : in->driver == LABCONF_DRIVER_FURNACE_MODBUS_RTU ? furnace_keys
                                                             : coater_keys;
    r = check_keys(p, g, what, keys);
    if (r == 0)
        r = get_int(
            p, g, what, "response_timeout_ms", false, 500, 1, 600000, &in->response_timeout_ms);
    if (r == 0)
        r = get_int(p, g, what, "byte_timeout_ms", false, 100, 1, 600000, &in->byte_timeout_ms);
    if (r == 0)
        r = get_int(p, g, what, "step_timeout_s", false, 300, 1, 604800, &in->step_timeout_s);
    if (r == 0)
        r = get_int(p, g, what, "poll_ms", false, 250, 10, 600000, &in->poll_ms);
    if (r)
        return r;

    switch (in->driver) {
    case LABCONF_DRIVER_ROBOT_MODBUS_TCP:
        r = get_string(p, g, what, "host", true, "", in->host, sizeof(in->host));
        if (r == 0 && !in->host[0])
            r = fail(p, g, "%s: 'host' is empty", what);
        if (r == 0)
            r = get_int(p, g, what, "port", true, 0, 0, 65535, &in->port);
        if (r == 0)
            r = get_int(p, g, what, "unit_id", false, 255, 0, 255, &in->unit_id);
        if (r == 0)
            r = get_int(p, g, what, "base", false, 0, 0, 65535 - 20, &in->base);
        if (r == 0)
            r = get_int(p, g, what, "wells", false, 96, 1, LABCONF_MAX_WELLS, &in->wells);
        if (r == 0)
            r = parse_robot_extras(p, g, what, in);
        break;
    case LABCONF_DRIVER_FURNACE_MODBUS_RTU: {
        const struct labconf_furnace_map *m;
        r = parse_serial(p, g, what, in, 9600);
        if (r == 0)
            r = get_int(p, g, what, "slave", false, 1, 1, 247, &in->slave);
        if (r == 0)
            r = get_string(p, g, what, "map", true, "", in->map_name, sizeof(in->map_name));
        if (r)
            return r;
        m = labconf_find_map(lab, in->map_name);
        if (!m)
            return fail(p,
                        config_setting_get_member(g, "map"),
                        "%s: map '%s' is not defined in lab.maps",
                        what,
                        in->map_name);
        in->map = *m;
        r = get_string(p,
                       g,
                       what,
                       "anneal_end_type",
                       false,
                       "reset",
                       in->anneal_end_type,
                       sizeof(in->anneal_end_type));
        if (r == 0 && strcmp(in->anneal_end_type, "reset") != 0 &&
            strcmp(in->anneal_end_type, "sp2") != 0)
            r = fail(p,
                     config_setting_get_member(g, "anneal_end_type"),
                     "%s: anneal_end_type must be \"reset\" or \"sp2\" (a safe end)",
                     what);
        if (r == 0)
            r = get_double_opt(
                p, g, what, "load_tolerance_c", 5.0, 0.0, 500.0, &in->load_tolerance_c);
        if (r == 0)
            r = get_double_opt(
                p, g, what, "load_wait_warn_min", 60.0, 0.0, 525600.0, &in->load_wait_warn_min);
        if (r == 0 && !(in->load_wait_warn_min > 0.0))
            r = fail(p,
                     config_setting_get_member(g, "load_wait_warn_min"),
                     "%s: 'load_wait_warn_min' must be above 0 (minutes)",
                     what);
        break;
    }
    case LABCONF_DRIVER_COATER_SPN1:
        r = parse_serial(p, g, what, in, 115200);
        break;
    }
    if (r == 0)
        r = parse_limits(p, g, what, in);
    return r;
}

static int parse_station(struct parse *p, const config_setting_t *g, struct labconf_station *st)
{
    static const char *const keys[] = {"name", "kinds", "place", NULL};
    const config_setting_t *kinds;
    char what[LABCONF_NAME_MAX + 32];
    int r, n;

    if (!config_setting_is_group(g))
        return fail(p, g, "stations: each station must be a group { ... }");
    st->line = (int)config_setting_source_line(g);
    r = get_string(p, g, "station", "name", true, "", st->name, sizeof(st->name));
    if (r)
        return r;
    if (!valid_name(st->name))
        return fail(p, g, "station '%s': a name is letters, digits, '_' and '-'", st->name);
    snprintf(what, sizeof(what), "station '%s'", st->name);
    r = check_keys(p, g, what, keys);
    if (r == 0)
        r = get_string(p, g, what, "place", true, "", st->place, sizeof(st->place));
    if (r)
        return r;
    kinds = config_setting_get_member(g, "kinds");
    if (!kinds || (!config_setting_is_array(kinds) && !config_setting_is_list(kinds)))
        return fail(p, kinds ? kinds : g, "%s: 'kinds' must be a list of names", what);
    n = config_setting_length(kinds);
    if (n < 1 || n > LABCONF_MAX_KINDS)
        return fail(p, kinds, "%s: 'kinds' must have 1..%d names", what, LABCONF_MAX_KINDS);
    for (int i = 0; i < n; i++) {
        const char *v = config_setting_get_string_elem(kinds, i);
        if (!v || !valid_name(v) || strlen(v) >= LABCONF_NAME_MAX)
            return fail(p, kinds, "%s: kind %d must be a name", what, i + 1);
        memcpy(st->kinds[i], v, strlen(v) + 1);
    }
    st->n_kinds = n;
    return 0;
}

/* Instruments whose serial `device` is the same share one line (docs/instruments.md "A
 * shared Modbus RTU line"): only Modbus RTU instruments may, with the same serial settings
 * (one line has one baud rate and framing) and distinct slave ids (a slave answers its own
 * id only). Checks instrument in, parsed from g, against the ones before it. */
static int check_shared_line(struct parse *p,
                             const config_setting_t *g,
                             const struct labconf *lab,
                             const struct labconf_instrument *in)
{
    const config_setting_t *dev = config_setting_get_member(g, "device");

    if (in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP)
        return 0;
    for (int j = 0; j < lab->n_instruments; j++) {
        const struct labconf_instrument *o = &lab->instruments[j];
        const config_setting_t *at;

        if (o->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP || strcmp(o->device, in->device) != 0)
            continue;
        if (in->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU ||
            o->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU)
            return fail(p,
                        dev ? dev : g,
                        "instrument '%s': device '%s' is also the line of instrument '%s' (line "
                        "%d); only Modbus RTU instruments share a line (%s is not)",
                        in->name,
                        in->device,
                        o->name,
                        o->line,
                        in->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU
                            ? labconf_driver_name(in->driver)
                            : labconf_driver_name(o->driver));
        if (in->baud != o->baud || in->parity != o->parity || in->data_bits != o->data_bits ||
            in->stop_bits != o->stop_bits) {
            at = config_setting_get_member(g, "baud");
            if (in->baud == o->baud)
                at = in->parity != o->parity         ? config_setting_get_member(g, "parity")
                     : in->data_bits != o->data_bits ? config_setting_get_member(g, "data_bits")
                                                     : config_setting_get_member(g, "stop_bits");
            return fail(p,
                        at ? at : g,
                        "instrument '%s': device '%s' is shared with instrument '%s' (line %d), "
                        "so its serial settings must be the same: %d %c%d%d here, %d %c%d%d "
                        "there",
                        in->name,
                        in->device,
                        o->name,
                        o->line,
                        in->baud,
                        in->parity,
                        in->data_bits,
                        in->stop_bits,
                        o->baud,
                        o->parity,
                        o->data_bits,
                        o->stop_bits);
        }
        if (in->slave == o->slave) {
            at = config_setting_get_member(g, "slave");
            return fail(p,
                        at ? at : g,
                        "instrument '%s': slave id %d on device '%s' is taken by instrument '%s' "
                        "(line %d): each instrument on a shared line needs its own slave id",
                        in->name,
                        in->slave,
                        in->device,
                        o->name,
                        o->line);
        }
    }
    return 0;
}

static int parse_lab(struct parse *p, const config_t *cfg, struct labconf *lab)
{
    static const char *const lab_keys[] = {
        "name", "instruments", "maps", "stations", "daemon", "sim", NULL};
    const config_setting_t *root = config_lookup(cfg, "lab");
    const config_setting_t *maps, *insts, *stations, *daemon;
    int r, n;

    if (!root || !config_setting_is_group(root))
        return ll_error_set(p->err, -EINVAL, "%s: no 'lab' group", p->source);
    r = check_keys(p, root, "lab", lab_keys);
    if (r == 0)
        r = get_string(p, root, "lab", "name", true, "", lab->name, sizeof(lab->name));
    if (r)
        return r;

    maps = config_setting_get_member(root, "maps");
    if (maps) {
        if (!config_setting_is_group(maps))
            return fail(p, maps, "lab: 'maps' must be a group of NAME = { ... }");
        n = config_setting_length(maps);
        if (n > LABCONF_MAX_MAPS)
            return fail(p, maps, "lab: more than %d maps", LABCONF_MAX_MAPS);
        for (int i = 0; i < n; i++) {
            r = parse_map(p, config_setting_get_elem(maps, (unsigned)i), &lab->maps[i]);
            if (r)
                return r;
            lab->n_maps = i + 1;
        }
    }

    insts = config_setting_get_member(root, "instruments");
    if (!insts || !config_setting_is_list(insts))
        return fail(p, insts ? insts : root, "lab: 'instruments' must be a list ( {...}, ... )");
    n = config_setting_length(insts);
    if (n > LABCONF_MAX_INSTRUMENTS)
        return fail(p, insts, "lab: more than %d instruments", LABCONF_MAX_INSTRUMENTS);
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(insts, (unsigned)i);
        r = parse_instrument(p, g, lab, &lab->instruments[i]);
        if (r)
            return r;
        if (labconf_find_instrument(lab, lab->instruments[i].name))
            return fail(p, g, "instrument '%s' is defined twice", lab->instruments[i].name);
        r = check_shared_line(p, g, lab, &lab->instruments[i]);
        if (r)
            return r;
        lab->n_instruments = i + 1;
    }

    stations = config_setting_get_member(root, "stations");
    if (stations) {
        if (!config_setting_is_list(stations))
            return fail(p, stations, "lab: 'stations' must be a list ( {...}, ... )");
        n = config_setting_length(stations);
        if (n > LABCONF_MAX_STATIONS)
            return fail(p, stations, "lab: more than %d stations", LABCONF_MAX_STATIONS);
        for (int i = 0; i < n; i++) {
            const config_setting_t *g = config_setting_get_elem(stations, (unsigned)i);
            const struct labconf_instrument *robot;
            r = parse_station(p, g, &lab->stations[i]);
            if (r)
                return r;
            if (labconf_find_station(lab, lab->stations[i].name))
                return fail(p, g, "station '%s' is defined twice", lab->stations[i].name);
            robot = labconf_find_driver(lab, LABCONF_DRIVER_ROBOT_MODBUS_TCP);
            if (robot && labconf_place_slot(robot, lab->stations[i].place) < 0)
                return fail(p,
                            g,
                            "station '%s': place '%s' is not a place of robot '%s'",
                            lab->stations[i].name,
                            lab->stations[i].place,
                            robot->name);
            lab->n_stations = i + 1;
        }
    }

    daemon = config_setting_get_member(root, "daemon");
    if (daemon && config_setting_is_group(daemon))
        r = get_string(p,
                       daemon,
                       "daemon",
                       "stations_endpoint",
                       false,
                       "",
                       lab->stations_endpoint,
                       sizeof(lab->stations_endpoint));
    else if (daemon)
        r = fail(p, daemon, "lab: 'daemon' must be a group");
    return r;
}

/* Loads text (is_file false) or the file at text (is_file true). */
static int load(const char *text,
                bool is_file,
                const char *source,
                struct labconf **ret_lab,
                struct ll_error *reterr)
{
    struct parse p = {source, reterr};
    struct labconf *lab = NULL;
    char *owned = NULL;
    config_t cfg;
    int r = 0;

    *ret_lab = NULL;
    if (is_file) {
        FILE *f = fopen(text, "rb");
        size_t cap = 4096, len = 0;
        if (!f)
            return ll_error_set(reterr, -errno, "%s: cannot open: %s", source, strerror(errno));
        owned = malloc(cap);
        while (owned) {
            size_t got = fread(owned + len, 1, cap - len - 1, f);
            len += got;
            if (len < cap - 1)
                break;
            if (cap >= (16u << 20)) {
                free(owned);
                owned = NULL;
                fclose(f);
                return ll_error_set(reterr, -EFBIG, "%s: larger than 16 MiB", source);
            }
            cap *= 2;
            char *bigger = realloc(owned, cap);
            if (!bigger) {
                free(owned);
                owned = NULL;
            }
            owned = bigger;
        }
        if (!owned) {
            fclose(f);
            return ll_error_set(reterr, -ENOMEM, "%s: out of memory", source);
        }
        if (ferror(f)) {
            fclose(f);
            free(owned);
            return ll_error_set(reterr, -EIO, "%s: read error", source);
        }
        fclose(f);
        owned[len] = '\0';
        text = owned;
    }
    if (strstr(text, "@include")) {
        free(owned);
        return ll_error_set(
            reterr, -EINVAL, "%s: @include is not allowed in a lab definition", source);
    }
    lab = calloc(1, sizeof(*lab));
    if (!lab) {
        free(owned);
        return ll_error_set(reterr, -ENOMEM, "%s: out of memory", source);
    }
    snprintf(lab->source, sizeof(lab->source), "%s", source);
    config_init(&cfg);
    if (config_read_string(&cfg, text) != CONFIG_TRUE) {
        r = ll_error_set(reterr,
                         -EINVAL,
                         "%s:%d: %s",
                         source,
                         config_error_line(&cfg),
                         config_error_text(&cfg) ? config_error_text(&cfg) : "syntax error");
        goto out;
    }
    r = parse_lab(&p, &cfg, lab);
out:
    config_destroy(&cfg);
    free(owned);
    if (r)
        free(lab);
    else
        *ret_lab = lab;
    return r;
}

int labconf_load_file(const char *path, struct labconf **ret_lab, struct ll_error *reterr)
{
    return load(path, true, path, ret_lab, reterr);
}

int labconf_load_string(const char *text,
                        const char *source_name,
                        struct labconf **ret_lab,
                        struct ll_error *reterr)
{
    return load(text, false, source_name ? source_name : "<string>", ret_lab, reterr);
}

int labconf_load_default(struct labconf **ret_lab, struct ll_error *reterr)
{
    return labconf_load_string(labconf_default_text(), "<default lab>", ret_lab, reterr);
}

void labconf_free(struct labconf **lab)
{
    if (!lab || !*lab)
        return;
    free(*lab);
    *lab = NULL;
}

const struct labconf_instrument *labconf_find_instrument(const struct labconf *lab,
                                                         const char *name)
{
    for (int i = 0; i < lab->n_instruments; i++)
        if (strcmp(lab->instruments[i].name, name) == 0)
            return &lab->instruments[i];
    return NULL;
}

int labconf_instrument_index(const struct labconf *lab, const char *name)
{
    for (int i = 0; i < lab->n_instruments; i++)
        if (strcmp(lab->instruments[i].name, name) == 0)
            return i;
    return -ENOENT;
}

const struct labconf_instrument *labconf_find_driver(const struct labconf *lab,
                                                     enum labconf_driver driver)
{
    for (int i = 0; i < lab->n_instruments; i++)
        if (lab->instruments[i].driver == driver)
            return &lab->instruments[i];
    return NULL;
}

const struct labconf_furnace_map *labconf_find_map(const struct labconf *lab, const char *name)
{
    for (int i = 0; i < lab->n_maps; i++)
        if (strcmp(lab->maps[i].name, name) == 0)
            return &lab->maps[i];
    return NULL;
}

const struct labconf_station *labconf_find_station(const struct labconf *lab, const char *name)
{
    for (int i = 0; i < lab->n_stations; i++)
        if (strcmp(lab->stations[i].name, name) == 0)
            return &lab->stations[i];
    return NULL;
}

int labconf_place_slot(const struct labconf_instrument *inst, const char *name)
{
    for (int i = 0; i < inst->n_places; i++)
        if (strcmp(inst->places[i].name, name) == 0)
            return inst->places[i].slot;
    return -ENOENT;
}

/* ---- writing ---------------------------------------------------------------------- */

static void put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(out, "\\x%02x", *c);
        else
            fputc(*c, out);
    }
    fputc('"', out);
}

/* Shortest "%.Ng" that reads back to the same double, always with a '.' or exponent so
 * that libconfig reads a float. */
static void put_double(FILE *out, double v)
{
    char buf[64];

    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eE"))
        fputs(".0", out);
}

static void write_map(FILE *out, const struct labconf_furnace_map *m)
{
    fprintf(out, "    %s = {\n", m->name);
    fprintf(out,
            "      pv = %d; target_sp = %d; output = %d; working_sp = %d; alarm1 = %d;\n",
            m->pv,
            m->target_sp,
            m->output,
            m->working_sp,
            m->alarm1);
    fprintf(out,
            "      program_status = %d; remote_sp = %d; sp_rate = %d; status = %d;\n",
            m->program_status,
            m->remote_sp,
            m->sp_rate,
            m->status);
    fprintf(out, "      auto_manual = %d; end_type = %d;\n", m->auto_manual, m->end_type);
    fprintf(out,
            "      seg_dwell = %d; seg_target = %d; seg_rate = %d;\n",
            m->seg_dwell,
            m->seg_target,
            m->seg_rate);
    fputs("      temp_scale = ", out);
    put_double(out, m->temp_scale);
    fputs("; rate_scale = ", out);
    put_double(out, m->rate_scale);
    fputs("; dwell_scale = ", out);
    put_double(out, m->dwell_scale);
    fputs(";\n", out);
    fprintf(out,
            "      program_status_values = { reset = %d; run = %d; hold = %d; end = %d; };\n",
            m->program_status_values.reset,
            m->program_status_values.run,
            m->program_status_values.hold,
            m->program_status_values.end);
    fprintf(out,
            "      end_type_values = { off = %d; dwell = %d; sp2 = %d; reset = %d; };\n",
            m->end_type_values.off,
            m->end_type_values.dwell,
            m->end_type_values.sp2,
            m->end_type_values.reset);
    fprintf(out,
            "      status_bits = { alarm1 = %d; sensor_break = %d; loop_break = %d; program_end = "
            "%d; over_range = %d; };\n",
            m->status_bits.alarm1,
            m->status_bits.sensor_break,
            m->status_bits.loop_break,
            m->status_bits.program_end,
            m->status_bits.over_range);
    if (m->n_pv_error_codes > 0) {
        fputs("      pv_error_codes = [", out);
        for (int i = 0; i < m->n_pv_error_codes; i++)
            fprintf(out, "%s 0x%04X", i ? "," : "", (unsigned)m->pv_error_codes[i]);
        fputs(" ];\n", out);
    }
    if (m->has_temp_range) {
        fputs("      temp_range_c = [ ", out);
        put_double(out, m->temp_min_c);
        fputs(", ", out);
        put_double(out, m->temp_max_c);
        fputs(" ];\n", out);
    }
    fputs("    };\n", out);
}

static void write_limit(FILE *out, const char *key, double v)
{
    fprintf(out, " %s = ", key);
    put_double(out, v);
    fputc(';', out);
}

static void write_instrument(FILE *out, const struct labconf_instrument *in, bool last)
{
    const struct labconf_limits *l = &in->limits;

    fputs("    {\n      name = ", out);
    put_string(out, in->name);
    fprintf(out, ";\n      driver = \"%s\";\n", labconf_driver_name(in->driver));
    if (in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP) {
        fputs("      host = ", out);
        put_string(out, in->host);
        fprintf(out,
                ";\n      port = %d;\n      unit_id = %d;\n      base = %d;\n",
                in->port,
                in->unit_id,
                in->base);
    } else {
        fputs("      device = ", out);
        put_string(out, in->device);
        fprintf(out,
                ";\n      baud = %d;\n      parity = \"%c\";\n      data_bits = %d;\n"
                "      stop_bits = %d;\n",
                in->baud,
                in->parity,
                in->data_bits,
                in->stop_bits);
        if (in->driver == LABCONF_DRIVER_FURNACE_MODBUS_RTU)
            fprintf(out,
                    "      slave = %d;\n      map = \"%s\";\n      anneal_end_type = \"%s\";\n",
                    in->slave,
                    in->map_name,
                    in->anneal_end_type);
        if (in->driver == LABCONF_DRIVER_FURNACE_MODBUS_RTU) {
            fputs("      load_tolerance_c = ", out);
            put_double(out, in->load_tolerance_c);
            fputs(";\n      load_wait_warn_min = ", out);
            put_double(out, in->load_wait_warn_min);
            fputs(";\n", out);
        }
    }
    fprintf(out,
            "      response_timeout_ms = %d;\n      byte_timeout_ms = %d;\n"
            "      step_timeout_s = %d;\n      poll_ms = %d;\n",
            in->response_timeout_ms,
            in->byte_timeout_ms,
            in->step_timeout_s,
            in->poll_ms);
    fputs("      limits = {", out);
    switch (in->driver) {
    case LABCONF_DRIVER_ROBOT_MODBUS_TCP:
        write_limit(out, "max_volume_ul", l->max_volume_ul);
        write_limit(out, "max_total_volume_ul", l->max_total_volume_ul);
        break;
    case LABCONF_DRIVER_FURNACE_MODBUS_RTU:
        write_limit(out, "max_temp_c", l->max_temp_c);
        write_limit(out, "max_ramp_c_min", l->max_ramp_c_min);
        write_limit(out, "safe_setpoint_c", l->safe_setpoint_c);
        break;
    case LABCONF_DRIVER_COATER_SPN1:
        write_limit(out, "max_rpm", l->max_rpm);
        write_limit(out, "max_accel_rpm_s", l->max_accel_rpm_s);
        break;
    }
    fputs(" };\n", out);
    if (in->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP) {
        fputs("      reservoirs = [", out);
        for (int i = 0; i < in->n_reservoirs; i++) {
            fputs(i ? ", " : " ", out);
            put_string(out, in->reservoirs[i]);
        }
        fputs(" ];\n      places = {", out);
        for (int i = 0; i < in->n_places; i++)
            fprintf(out, " %s = %d;", in->places[i].name, in->places[i].slot);
        fprintf(out, " };\n      wells = %d;\n", in->wells);
    }
    fputs(last ? "    }\n" : "    },\n", out);
}

int labconf_write(const struct labconf *lab, FILE *out, struct ll_error *reterr)
{
    fputs("# lab definition written by labloop (drivers/labconf.c); format: config/lab.conf\n",
          out);
    fputs("lab: {\n  name = ", out);
    put_string(out, lab->name);
    fputs(";\n\n  instruments = (\n", out);
    for (int i = 0; i < lab->n_instruments; i++)
        write_instrument(out, &lab->instruments[i], i == lab->n_instruments - 1);
    fputs("  );\n\n  maps = {\n", out);
    for (int i = 0; i < lab->n_maps; i++)
        write_map(out, &lab->maps[i]);
    fputs("  };\n\n  stations = (\n", out);
    for (int i = 0; i < lab->n_stations; i++) {
        const struct labconf_station *st = &lab->stations[i];
        fputs("    { name = ", out);
        put_string(out, st->name);
        fputs("; kinds = [", out);
        for (int k = 0; k < st->n_kinds; k++) {
            fputs(k ? ", " : " ", out);
            put_string(out, st->kinds[k]);
        }
        fputs(" ]; place = ", out);
        put_string(out, st->place);
        fputs(i == lab->n_stations - 1 ? "; }\n" : "; },\n", out);
    }
    fputs("  );\n\n  daemon = {\n    stations_endpoint = ", out);
    put_string(out, lab->stations_endpoint);
    fputs(";\n  };\n};\n", out);
    if (fflush(out) != 0 || ferror(out))
        return ll_error_set(reterr, -EIO, "writing the lab definition failed");
    return 0;
}

int labconf_write_file(const struct labconf *lab, const char *path, struct ll_error *reterr)
{
    char tmp[4096];
    FILE *f;
    int r;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
        return ll_error_set(reterr, -ENAMETOOLONG, "%s: path too long", path);
    f = fopen(tmp, "w");
    if (!f)
        return ll_error_set(reterr, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    r = labconf_write(lab, f, reterr);
    if (fsync(fileno(f)) != 0 && r == 0)
        r = ll_error_set(reterr, -errno, "%s: fsync: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && r == 0)
        r = ll_error_set(reterr, -EIO, "%s: close failed", tmp);
    if (r == 0 && rename(tmp, path) != 0)
        r = ll_error_set(reterr, -errno, "%s: rename: %s", path, strerror(errno));
    if (r)
        unlink(tmp);
    return r;
}

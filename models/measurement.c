/* measurement — see measurement.h. The validation rules are the ones of docs/protocol.md;
 * every check names the JSON path of the field it rejects. jansson parses the text
 * (rejecting duplicate keys, so "which value counts" never depends on the parser), then each
 * field is read with a helper that knows its path.
 */
#include "models/measurement.h"

#include "common/ll_text.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "%.*s" arguments quoting at most 32 bytes of a station's string without cutting a UTF-8
 * character (the message may go back to the station as JSON) */
#define QUOTE32(str) (int)ll_utf8_cut((str), 32), (str)

#define PATH_MAX_LEN 96

static int fail(struct ll_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets err to "PATH: message" and returns -EINVAL. */
static int fail(struct ll_error *err, const char *path, const char *fmt, ...)
{
    char text[LL_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ll_error_set(err, -EINVAL, "%s: %s", path, text);
    return -EINVAL; /* visibly negative: callers return it as their failure */
}

static const char *json_type_name(const json_t *v)
{
    if (v == NULL)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Joins parent and key into out ("data" + "area_cm2" -> "data.area_cm2"). */
static void path_join(char *out, const char *parent, const char *key)
{
    int k;

    if (parent[0] == '\0')
        k = snprintf(out, PATH_MAX_LEN, "%s", key);
    else
        k = snprintf(out, PATH_MAX_LEN, "%s.%s", parent, key);
    if (k < 0 || k >= PATH_MAX_LEN) /* paths are short by construction; truncation is safe */
        out[PATH_MAX_LEN - 1] = '\0';
}

/* Looks up a required member of obj; fails naming the path when it is missing. */
static int get_member(
    const json_t *obj, const char *parent, const char *key, json_t **ret, struct ll_error *err)
{
    char path[PATH_MAX_LEN];
    json_t *v = json_object_get(obj, key);

    *ret = v;
    if (v == NULL) {
        path_join(path, parent, key);
        return fail(err, path, "missing");
    }
    return 0;
}

/* Reads a number (integer or real) that must be finite. */
static int number_value(const json_t *v, const char *path, double *ret, struct ll_error *err)
{
    double x;

    if (json_is_integer(v))
        x = (double)json_integer_value(v);
    else if (json_is_real(v))
        x = json_real_value(v);
    else if (json_is_string(v))
        return fail(err,
                    path,
                    "not a finite number (got the string \"%.*s\")",
                    QUOTE32(json_string_value(v)));
    else
        return fail(err, path, "not a finite number (got %s)", json_type_name(v));
    if (!isfinite(x))
        return fail(err, path, "not a finite number");
    *ret = x;
    return 0;
}

static int get_positive(
    const json_t *obj, const char *parent, const char *key, double *ret, struct ll_error *err)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int r = get_member(obj, parent, key, &v, err);

    if (r < 0)
        return r;
    path_join(path, parent, key);
    r = number_value(v, path, ret, err);
    if (r < 0)
        return r;
    if (!(*ret > 0.0))
        return fail(err, path, "must be > 0 (got %g)", *ret);
    return 0;
}

/* Copies a string of 1..max bytes without control characters into out (max + 1 bytes). */
static int
string_value(const json_t *v, const char *path, size_t max, char *out, struct ll_error *err)
{
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return fail(err, path, "must be a string (got %s)", json_type_name(v));
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > max)
        return fail(err, path, "must be 1 to %zu bytes (got %zu)", max, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return fail(err, path, "control character at byte %zu", i);
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static bool station_name_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        char c = *s;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* RFC 3339 in UTC: YYYY-MM-DDTHH:MM:SS[.fraction]Z. */
static bool time_ok(const char *s)
{
    size_t n = strlen(s);
    size_t i = 19;

    if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    if (two(s + 5) < 1 || two(s + 5) > 12 || two(s + 8) < 1 || two(s + 8) > 31 ||
        two(s + 11) > 23 || two(s + 14) > 59 || two(s + 17) > 60)
        return false;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    return i + 1 == n && (s[i] == 'Z' || s[i] == 'z');
}

/* Reads a required array of finite numbers of n_min..MEASUREMENT_MAX_POINTS elements into a
 * new array (*ret, caller frees) and its length. */
static int get_number_array(const json_t *obj,
                            const char *parent,
                            const char *key,
                            size_t n_min,
                            double **ret,
                            size_t *ret_n,
                            struct ll_error *err)
{
    char path[PATH_MAX_LEN], elem[PATH_MAX_LEN + 24];
    json_t *v;
    size_t n;
    double *x;
    int r = get_member(obj, parent, key, &v, err);

    *ret = NULL;
    *ret_n = 0;
    if (r < 0)
        return r;
    path_join(path, parent, key);
    if (!json_is_array(v))
        return fail(err, path, "must be an array of numbers (got %s)", json_type_name(v));
    n = json_array_size(v);
    if (n < n_min || n > MEASUREMENT_MAX_POINTS)
        return fail(err,
                    path,
                    "%zu point%s, need %zu to %d",
                    n,
                    n == 1 ? "" : "s",
                    n_min,
                    MEASUREMENT_MAX_POINTS);
    x = malloc(n * sizeof(*x));
    if (x == NULL)
        return ll_error_set(err, -ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        double xi = json_is_integer(e) ? (double)json_integer_value(e)
                    : json_is_real(e)  ? json_real_value(e)
                                       : (double)NAN;
        if (!isfinite(xi)) { /* the element path is formatted only for a bad element */
            snprintf(elem, sizeof(elem), "%s[%zu]", path, i);
            r = number_value(e, elem, &xi, err);
            if (r < 0) {
                free(x);
                return r;
            }
        }
        x[i] = xi;
    }
    *ret = x;
    *ret_n = n;
    return 0;
}

static int check_same_length(const char *parent,
                             const char *key,
                             size_t n,
                             const char *ref_key,
                             size_t n_ref,
                             struct ll_error *err)
{
    char path[PATH_MAX_LEN];

    if (n == n_ref)
        return 0;
    path_join(path, parent, key);
    return fail(err, path, "%zu points but %s has %zu", n, ref_key, n_ref);
}

static int parse_jv_sweep(const json_t *sw,
                          const char *path,
                          struct measurement_jv_sweep *s,
                          struct ll_error *err)
{
    char dpath[PATH_MAX_LEN];
    json_t *dir;
    size_t n_i = 0;
    int r;

    if (!json_is_object(sw))
        return fail(err, path, "must be an object (got %s)", json_type_name(sw));
    r = get_member(sw, path, "direction", &dir, err);
    if (r < 0)
        return r;
    path_join(dpath, path, "direction");
    if (json_is_string(dir) && strcmp(json_string_value(dir), "forward") == 0)
        s->direction = MEASUREMENT_DIRECTION_FORWARD;
    else if (json_is_string(dir) && strcmp(json_string_value(dir), "reverse") == 0)
        s->direction = MEASUREMENT_DIRECTION_REVERSE;
    else
        return fail(err, dpath, "must be \"forward\" or \"reverse\"");
    r = get_number_array(
        sw, path, "voltage_v", MEASUREMENT_JV_MIN_POINTS, &s->voltage_v, &s->n_points, err);
    if (r < 0)
        return r;
    r = get_number_array(
        sw, path, "current_ma_cm2", MEASUREMENT_JV_MIN_POINTS, &s->current_ma_cm2, &n_i, err);
    if (r < 0)
        return r;
    return check_same_length(path, "current_ma_cm2", n_i, "voltage_v", s->n_points, err);
}

static int parse_jv(const json_t *data, struct measurement_jv *jv, struct ll_error *err)
{
    json_t *sweeps;
    char path[PATH_MAX_LEN];
    size_t n;
    int r;

    r = get_positive(data, "data", "irradiance_mw_cm2", &jv->irradiance_mw_cm2, err);
    if (r < 0)
        return r;
    r = get_positive(data, "data", "area_cm2", &jv->area_cm2, err);
    if (r < 0)
        return r;
    r = get_member(data, "data", "sweeps", &sweeps, err);
    if (r < 0)
        return r;
    if (!json_is_array(sweeps))
        return fail(err, "data.sweeps", "must be an array (got %s)", json_type_name(sweeps));
    n = json_array_size(sweeps);
    if (n < 1 || n > MEASUREMENT_JV_MAX_SWEEPS)
        return fail(err, "data.sweeps", "%zu sweeps, need 1 or 2", n);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "data.sweeps[%zu]", i);
        jv->n_sweeps = i + 1; /* so that measurement_free() releases partial sweeps */
        r = parse_jv_sweep(json_array_get(sweeps, i), path, &jv->sweeps[i], err);
        if (r < 0)
            return r;
    }
    if (n == 2 && jv->sweeps[0].direction == jv->sweeps[1].direction)
        return fail(err,
                    "data.sweeps[1].direction",
                    "both sweeps are \"%s\"; a pair needs one forward and one reverse",
                    measurement_direction_name(jv->sweeps[1].direction));
    return 0;
}

static int parse_eis_spectrum(const json_t *sp,
                              const char *path,
                              struct measurement_eis_spectrum *s,
                              struct ll_error *err)
{
    char fpath[PATH_MAX_LEN];
    json_t *t;
    size_t n_re = 0, n_im = 0;
    int r;

    if (!json_is_object(sp))
        return fail(err, path, "must be an object (got %s)", json_type_name(sp));
    r = get_member(sp, path, "temperature_c", &t, err);
    if (r < 0)
        return r;
    path_join(fpath, path, "temperature_c");
    r = number_value(t, fpath, &s->temperature_c, err);
    if (r < 0)
        return r;
    if (!(s->temperature_c > -273.15))
        return fail(err, fpath, "below absolute zero (got %g)", s->temperature_c);
    r = get_number_array(
        sp, path, "frequency_hz", MEASUREMENT_EIS_MIN_POINTS, &s->frequency_hz, &s->n_points, err);
    if (r < 0)
        return r;
    r = get_number_array(
        sp, path, "z_real_ohm", MEASUREMENT_EIS_MIN_POINTS, &s->z_real_ohm, &n_re, err);
    if (r < 0)
        return r;
    r = check_same_length(path, "z_real_ohm", n_re, "frequency_hz", s->n_points, err);
    if (r < 0)
        return r;
    r = get_number_array(
        sp, path, "z_imag_ohm", MEASUREMENT_EIS_MIN_POINTS, &s->z_imag_ohm, &n_im, err);
    if (r < 0)
        return r;
    r = check_same_length(path, "z_imag_ohm", n_im, "frequency_hz", s->n_points, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->n_points; i++) {
        if (!(s->frequency_hz[i] > 0.0)) {
            char elem[PATH_MAX_LEN + 24];
            path_join(fpath, path, "frequency_hz");
            snprintf(elem, sizeof(elem), "%s[%zu]", fpath, i);
            return fail(err, elem, "must be > 0 (got %g)", s->frequency_hz[i]);
        }
    }
    return 0;
}

static int parse_eis(const json_t *data, struct measurement_eis *eis, struct ll_error *err)
{
    json_t *spectra;
    char path[PATH_MAX_LEN];
    size_t n;
    int r;

    r = get_positive(data, "data", "thickness_cm", &eis->thickness_cm, err);
    if (r < 0)
        return r;
    r = get_positive(data, "data", "area_cm2", &eis->area_cm2, err);
    if (r < 0)
        return r;
    r = get_member(data, "data", "spectra", &spectra, err);
    if (r < 0)
        return r;
    if (!json_is_array(spectra))
        return fail(err, "data.spectra", "must be an array (got %s)", json_type_name(spectra));
    n = json_array_size(spectra);
    if (n < 1 || n > MEASUREMENT_EIS_MAX_SPECTRA)
        return fail(
            err, "data.spectra", "%zu spectra, need 1 to %d", n, MEASUREMENT_EIS_MAX_SPECTRA);
    eis->spectra = calloc(n, sizeof(*eis->spectra));
    if (eis->spectra == NULL)
        return ll_error_set(err, -ENOMEM, "data.spectra: out of memory");
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "data.spectra[%zu]", i);
        eis->n_spectra = i + 1;
        r = parse_eis_spectrum(json_array_get(spectra, i), path, &eis->spectra[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
parse_stability(const json_t *data, struct measurement_stability *st, struct ll_error *err)
{
    json_t *proto = json_object_get(data, "protocol");
    size_t n_pce = 0;
    int r;

    if (proto != NULL) {
        r = string_value(proto, "data.protocol", MEASUREMENT_NAME_MAX, st->protocol, err);
        if (r < 0)
            return r;
    }
    r = get_number_array(
        data, "data", "time_h", MEASUREMENT_STABILITY_MIN_POINTS, &st->time_h, &st->n_points, err);
    if (r < 0)
        return r;
    r = get_number_array(data,
                         "data",
                         "normalised_pce",
                         MEASUREMENT_STABILITY_MIN_POINTS,
                         &st->normalised_pce,
                         &n_pce,
                         err);
    if (r < 0)
        return r;
    r = check_same_length("data", "normalised_pce", n_pce, "time_h", st->n_points, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < st->n_points; i++) {
        if (st->time_h[i] >= 0.0 && (i == 0 || st->time_h[i] > st->time_h[i - 1]))
            continue; /* the element path is formatted only for a bad element */
        char elem[PATH_MAX_LEN];
        snprintf(elem, sizeof(elem), "data.time_h[%zu]", i);
        if (st->time_h[i] < 0.0)
            return fail(err, elem, "must be >= 0 (got %g)", st->time_h[i]);
        if (i > 0)
            return fail(err,
                        elem,
                        "must be greater than the previous time (%g <= %g)",
                        st->time_h[i],
                        st->time_h[i - 1]);
    }
    return 0;
}

static int parse_name(const json_t *root, const char *key, char *out, struct ll_error *err)
{
    json_t *v;
    int r = get_member(root, "", key, &v, err);

    if (r < 0)
        return r;
    return string_value(v, key, MEASUREMENT_NAME_MAX, out, err);
}

static int parse_hello(const json_t *root, struct measurement *m, struct ll_error *err)
{
    json_t *kinds;
    char path[PATH_MAX_LEN];
    int r = get_member(root, "", "kinds", &kinds, err);

    if (r < 0)
        return r;
    if (!json_is_array(kinds))
        return fail(err, "kinds", "must be an array of strings (got %s)", json_type_name(kinds));
    if (json_array_size(kinds) > 64)
        return fail(err, "kinds", "%zu entries, at most 64", json_array_size(kinds));
    for (size_t i = 0; i < json_array_size(kinds); i++) {
        json_t *k = json_array_get(kinds, i);
        snprintf(path, sizeof(path), "kinds[%zu]", i);
        if (!json_is_string(k))
            return fail(err, path, "must be a string (got %s)", json_type_name(k));
        enum measurement_kind kind = measurement_kind_from_name(json_string_value(k));
        if (kind != MEASUREMENT_KIND_NONE)
            m->hello_kinds |= 1u << kind;
    }
    return 0;
}

static int parse_measurement_body(const json_t *root, struct measurement *m, struct ll_error *err)
{
    json_t *v, *data;
    int r;

    r = get_member(root, "", "seq", &v, err);
    if (r < 0)
        return r;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return fail(err, "seq", "must be an integer >= 1");
    m->seq = (int64_t)json_integer_value(v);
    r = parse_name(root, "request", m->request, err);
    if (r < 0)
        return r;
    r = get_member(root, "", "kind", &v, err);
    if (r < 0)
        return r;
    if (!json_is_string(v))
        return fail(err, "kind", "must be a string (got %s)", json_type_name(v));
    m->kind = measurement_kind_from_name(json_string_value(v));
    if (m->kind == MEASUREMENT_KIND_NONE)
        return fail(err,
                    "kind",
                    "unknown kind \"%.*s\" (expected jv, eis or stability)",
                    QUOTE32(json_string_value(v)));
    r = parse_name(root, "sample", m->sample, err);
    if (r < 0)
        return r;
    r = get_member(root, "", "time", &v, err);
    if (r < 0)
        return r;
    if (!json_is_string(v) || json_string_length(v) >= sizeof(m->time) ||
        !time_ok(json_string_value(v)))
        return fail(err, "time", "must be an RFC 3339 UTC time such as \"2026-11-25T17:40:03Z\"");
    memcpy(m->time, json_string_value(v), json_string_length(v) + 1);
    r = get_member(root, "", "data", &data, err);
    if (r < 0)
        return r;
    if (!json_is_object(data))
        return fail(err, "data", "must be an object (got %s)", json_type_name(data));
    switch (m->kind) {
    case MEASUREMENT_KIND_JV:
        return parse_jv(data, &m->jv, err);
    case MEASUREMENT_KIND_EIS:
        return parse_eis(data, &m->eis, err);
    case MEASUREMENT_KIND_STABILITY:
        return parse_stability(data, &m->stability, err);
    case MEASUREMENT_KIND_NONE:
        break;
    }
    return fail(err, "kind", "unknown kind");
}

static int parse_root(const json_t *root, struct measurement *m, struct ll_error *err)
{
    json_t *v;
    int r;

    if (!json_is_object(root))
        return fail(err, "(message)", "must be a JSON object (got %s)", json_type_name(root));
    r = get_member(root, "", "v", &v, err);
    if (r < 0)
        return r;
    if (!json_is_integer(v))
        return fail(err, "v", "must be the integer 1");
    if (json_integer_value(v) != MEASUREMENT_PROTOCOL_VERSION)
        return ll_error_set(
            err, -EPROTONOSUPPORT, "v: unsupported version %lld", (long long)json_integer_value(v));
    m->version = MEASUREMENT_PROTOCOL_VERSION;
    r = get_member(root, "", "type", &v, err);
    if (r < 0)
        return r;
    if (!json_is_string(v))
        return fail(err, "type", "must be a string (got %s)", json_type_name(v));
    if (strcmp(json_string_value(v), "hello") == 0)
        m->type = MEASUREMENT_TYPE_HELLO;
    else if (strcmp(json_string_value(v), "heartbeat") == 0)
        m->type = MEASUREMENT_TYPE_HEARTBEAT;
    else if (strcmp(json_string_value(v), "measurement") == 0)
        m->type = MEASUREMENT_TYPE_MEASUREMENT;
    else
        return fail(err,
                    "type",
                    "\"%.*s\" is not a station message (expected hello, heartbeat or "
                    "measurement)",
                    QUOTE32(json_string_value(v)));
    r = parse_name(root, "station", m->station, err);
    if (r < 0)
        return r;
    if (!station_name_ok(m->station))
        return fail(err, "station", "must be made of A-Z a-z 0-9 _ . - only");
    /* optional: the station's sequence epoch (a new one whenever its seq starts again) */
    if (json_object_get(root, "epoch") != NULL) {
        r = string_value(
            json_object_get(root, "epoch"), "epoch", MEASUREMENT_NAME_MAX, m->epoch, err);
        if (r < 0)
            return r;
        if (!station_name_ok(m->epoch))
            return fail(err, "epoch", "must be made of A-Z a-z 0-9 _ . - only");
    }
    switch (m->type) {
    case MEASUREMENT_TYPE_HELLO:
        return parse_hello(root, m, err);
    case MEASUREMENT_TYPE_HEARTBEAT:
        return 0;
    case MEASUREMENT_TYPE_MEASUREMENT:
        return parse_measurement_body(root, m, err);
    }
    return fail(err, "type", "unknown type");
}

int measurement_parse(const char *json,
                      size_t len,
                      struct measurement **ret,
                      struct ll_error *reterr)
{
    json_error_t jerr;
    json_t *root = NULL;
    struct measurement *m = NULL;
    int r;

    *ret = NULL;
    if (len > MEASUREMENT_MAX_BYTES)
        return ll_error_set(reterr, -EMSGSIZE, "oversize");
    if (json == NULL || len == 0)
        return ll_error_set(reterr, -EINVAL, "(message): empty");
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        r = ll_error_set(reterr,
                         -EINVAL,
                         "(message): invalid JSON at line %d column %d: %s",
                         jerr.line,
                         jerr.column,
                         jerr.text);
        goto out;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "(message): out of memory");
        goto out;
    }
    r = parse_root(root, m, reterr);
    if (r < 0)
        goto out;
    *ret = m;
    m = NULL;
out:
    measurement_free(&m);
    json_decref(root);
    return r;
}

int64_t measurement_seq_hint(const char *json, size_t len)
{
    json_t *root, *seq;
    int64_t out = 0;

    if (json == NULL || len == 0 || len > MEASUREMENT_MAX_BYTES)
        return 0;
    root = json_loadb(json, len, 0, NULL);
    if (root == NULL)
        return 0;
    seq = json_is_object(root) ? json_object_get(root, "seq") : NULL;
    if (json_is_integer(seq) && json_integer_value(seq) >= 1)
        out = (int64_t)json_integer_value(seq);
    json_decref(root);
    return out;
}

void measurement_epoch_hint(const char *json, size_t len, char out[MEASUREMENT_NAME_MAX + 1])
{
    out[0] = '\0';
    if (json == NULL || len == 0 || len > MEASUREMENT_MAX_BYTES)
        return;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *epoch = json_is_object(root) ? json_object_get(root, "epoch") : NULL;
    if (json_is_string(epoch) && json_string_length(epoch) >= 1 &&
        json_string_length(epoch) <= MEASUREMENT_NAME_MAX &&
        strlen(json_string_value(epoch)) == json_string_length(epoch) &&
        station_name_ok(json_string_value(epoch)))
        memcpy(out, json_string_value(epoch), json_string_length(epoch) + 1);
    json_decref(root);
}

void measurement_free(struct measurement **pm)
{
    struct measurement *m;

    if (pm == NULL || *pm == NULL)
        return;
    m = *pm;
    for (size_t i = 0; i < m->jv.n_sweeps; i++) {
        free(m->jv.sweeps[i].voltage_v);
        free(m->jv.sweeps[i].current_ma_cm2);
    }
    for (size_t i = 0; i < m->eis.n_spectra; i++) {
        free(m->eis.spectra[i].frequency_hz);
        free(m->eis.spectra[i].z_real_ohm);
        free(m->eis.spectra[i].z_imag_ohm);
    }
    free(m->eis.spectra);
    free(m->stability.time_h);
    free(m->stability.normalised_pce);
    free(m);
    *pm = NULL;
}

enum measurement_type measurement_type(const struct measurement *m)
{
    return m->type;
}

const char *measurement_station(const struct measurement *m)
{
    return m->station;
}

int64_t measurement_seq(const struct measurement *m)
{
    return m->seq;
}

const char *measurement_epoch(const struct measurement *m)
{
    return m->epoch;
}

const char *measurement_request(const struct measurement *m)
{
    return m->request;
}

enum measurement_kind measurement_kind(const struct measurement *m)
{
    return m->kind;
}

const char *measurement_sample(const struct measurement *m)
{
    return m->sample;
}

const char *measurement_time(const struct measurement *m)
{
    return m->time;
}

/* Days from 1970-01-01 to year-month-day of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int64_t mo, int64_t d)
{
    y -= mo <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t measurement_time_ms(const struct measurement *m)
{
    const char *s = m->time; /* checked by time_ok() when parsed */
    int64_t y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
    int64_t ms = ((days_from_civil(y, mo, d) * 24 + two(s + 11)) * 60 + two(s + 14)) * 60000 +
                 two(s + 17) * 1000;
    if (s[19] == '.') {
        int64_t scale = 100;
        for (const char *p = s + 20; *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10)
            ms += (*p - '0') * scale;
    }
    return ms;
}

const char *measurement_type_name(enum measurement_type type)
{
    switch (type) {
    case MEASUREMENT_TYPE_HELLO:
        return "hello";
    case MEASUREMENT_TYPE_HEARTBEAT:
        return "heartbeat";
    case MEASUREMENT_TYPE_MEASUREMENT:
        return "measurement";
    }
    return "?";
}

const char *measurement_kind_name(enum measurement_kind kind)
{
    switch (kind) {
    case MEASUREMENT_KIND_JV:
        return "jv";
    case MEASUREMENT_KIND_EIS:
        return "eis";
    case MEASUREMENT_KIND_STABILITY:
        return "stability";
    case MEASUREMENT_KIND_NONE:
        break;
    }
    return "?";
}

const char *measurement_direction_name(enum measurement_direction direction)
{
    switch (direction) {
    case MEASUREMENT_DIRECTION_FORWARD:
        return "forward";
    case MEASUREMENT_DIRECTION_REVERSE:
        return "reverse";
    }
    return "?";
}

enum measurement_kind measurement_kind_from_name(const char *name)
{
    if (name == NULL)
        return MEASUREMENT_KIND_NONE;
    if (strcmp(name, "jv") == 0)
        return MEASUREMENT_KIND_JV;
    if (strcmp(name, "eis") == 0)
        return MEASUREMENT_KIND_EIS;
    if (strcmp(name, "stability") == 0)
        return MEASUREMENT_KIND_STABILITY;
    return MEASUREMENT_KIND_NONE;
}

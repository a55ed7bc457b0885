/* test_measurement — the station-message parser (docs/protocol.md) accepts the documented
 * messages and rejects every kind of bad input with a message that names the field
 * (table-driven); analysis_run/get/to_json on parsed messages, and the example files in
 * tests/data/measurements. */
#include "ll_test.h"
#include "ll_test_messages.h"
#include "models/analysis.h"
#include "models/measurement.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR "\"v\": 1, \"type\": \"measurement\", \"station\": \"jv-1\", \"seq\": 17, "
#define HDR2                                                                                       \
    "\"request\": \"r-41-2\", \"sample\": \"S0041\", \"time\": \"2026-11-25T17:40:03.120Z\", "
#define JV_DATA                                                                                    \
    "\"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, \"sweeps\": [{\"direction\": "     \
    "\"reverse\", \"voltage_v\": [1.2, 1.0, 0.8, 0.4, 0.0, -0.1], \"current_ma_cm2\": [-30, "      \
    "-2, 15, 20, 21, 21.1]}]}"
#define JV_MSG "{" HDR HDR2 "\"kind\": \"jv\", " JV_DATA "}"

static void test_measurement_parses_documented_messages(void **state)
{
    static const char hello[] =
        "{\"v\": 1, \"type\": \"hello\", \"station\": \"jv-1\", \"kinds\": [\"jv\", \"stability\", "
        "\"xrd\"]}";
    static const char heartbeat[] = "{\"v\": 1, \"type\": \"heartbeat\", \"station\": \"jv-1\"}";
    struct measurement *m = NULL;
    struct ll_error err = {0};
    (void)state;

    assert_int_equal(measurement_parse(hello, strlen(hello), &m, &err), 0);
    assert_int_equal(measurement_type(m), MEASUREMENT_TYPE_HELLO);
    assert_string_equal(measurement_station(m), "jv-1");
    assert_int_equal(m->hello_kinds,
                     (1u << MEASUREMENT_KIND_JV) | (1u << MEASUREMENT_KIND_STABILITY));
    measurement_free(&m);
    assert_null(m);

    assert_int_equal(measurement_parse(heartbeat, strlen(heartbeat), &m, &err), 0);
    assert_int_equal(measurement_type(m), MEASUREMENT_TYPE_HEARTBEAT);
    assert_int_equal(measurement_seq(m), 0);
    measurement_free(&m);

    assert_int_equal(measurement_parse(JV_MSG, strlen(JV_MSG), &m, &err), 0);
    assert_int_equal(measurement_type(m), MEASUREMENT_TYPE_MEASUREMENT);
    assert_int_equal(measurement_kind(m), MEASUREMENT_KIND_JV);
    assert_int_equal(measurement_seq(m), 17);
    assert_string_equal(measurement_request(m), "r-41-2");
    assert_string_equal(measurement_sample(m), "S0041");
    assert_string_equal(measurement_time(m), "2026-11-25T17:40:03.120Z");
    assert_int_equal(m->jv.n_sweeps, 1);
    assert_int_equal(m->jv.sweeps[0].n_points, 6);
    ll_assert_close(m->jv.sweeps[0].current_ma_cm2[5], 21.1, 0, 1e-12);
    measurement_free(&m);
    measurement_free(&m); /* NULL is a no-op */
    measurement_free(NULL);
}

static const struct {
    const char *name;
    const char *json;
    int code;
    const char *want; /* the message must contain this (the field path) */
} bad[] = {
    {"not json",                         "{\"v\": 1,",                                              -EINVAL,          "invalid JSON"            },
    {"nan literal",                      "{\"v\": NaN}",                                            -EINVAL,          "invalid JSON"            },
    {"trailing garbage",                 "{\"v\": 1} x",                                            -EINVAL,          "invalid JSON"            },
    {"duplicate key",                    "{\"v\": 1, \"v\": 1}",                                    -EINVAL,          "invalid JSON"            },
    {"huge number",                      "{\"v\": 1e400}",                                          -EINVAL,          "invalid JSON"            },
    {"array",                            "[1, 2]",                                                  -EINVAL,          "must be a JSON object"   },
    {"missing v",                        "{\"type\": \"hello\"}",                                   -EINVAL,          "v: missing"              },
    {"v as string",                      "{\"v\": \"1\"}",                                          -EINVAL,          "v: must be the integer 1"},
    {"version 2",                        "{\"v\": 2, \"type\": \"hello\"}",                         -EPROTONOSUPPORT, "v: unsupported version 2"},
    {"daemon type",                      "{\"v\": 1, \"type\": \"ack\", \"station\": \"a\"}",       -EINVAL,          "type:"                   },
    {"missing station",                  "{\"v\": 1, \"type\": \"heartbeat\"}",                     -EINVAL,          "station: missing"        },
    {"bad station",
     "{\"v\": 1, \"type\": \"heartbeat\", \"station\": \"jv 1\"}",                                  -EINVAL,
     "station:"                                                                                                                                 },
    {"long station",
     "{\"v\": 1, \"type\": \"heartbeat\", \"station\": "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",                      -EINVAL,
     "station: must be 1 to 64 bytes"                                                                                                           },
    {"hello without kinds",
     "{\"v\": 1, \"type\": \"hello\", \"station\": \"a\"}",                                         -EINVAL,
     "kinds: missing"                                                                                                                           },
    {"hello kind not string",
     "{\"v\": 1, \"type\": \"hello\", \"station\": \"a\", \"kinds\": [1]}",                         -EINVAL,
     "kinds[0]:"                                                                                                                                },
    {"seq zero",
     "{" HDR2 "\"v\": 1, \"type\": \"measurement\", \"station\": \"a\", \"seq\": 0}",
     -EINVAL,
     "seq:"                                                                                                                                     },
    {"seq real",
     "{\"v\": 1, \"type\": \"measurement\", \"station\": \"a\", \"seq\": 1.5}",                     -EINVAL,
     "seq:"                                                                                                                                     },
    {"missing request",
     "{\"v\": 1, \"type\": \"measurement\", \"station\": \"a\", \"seq\": 1}",                       -EINVAL,
     "request: missing"                                                                                                                         },
    {"wrong kind",
     "{" HDR HDR2 "\"kind\": \"xrd\", " JV_DATA "}",
     -EINVAL,
     "kind: unknown kind \"xrd\""                                                                                                               },
    {"missing kind",                     "{" HDR HDR2 JV_DATA "}",                                  -EINVAL,          "kind: missing"           },
    {"bad time",
     "{" HDR
     "\"request\": \"r\", \"sample\": \"S\", \"time\": \"yesterday\", \"kind\": \"jv\", " JV_DATA
     "}",                                                                                           -EINVAL,
     "time:"                                                                                                                                    },
    {"local time",
     "{" HDR "\"request\": \"r\", \"sample\": \"S\", \"time\": \"2026-11-25T17:40:03+01:00\", "
     "\"kind\": \"jv\", " JV_DATA "}",
     -EINVAL,
     "time:"                                                                                                                                    },
    {"missing data",                     "{" HDR HDR2 "\"kind\": \"jv\"}",                          -EINVAL,          "data: missing"           },
    {"data not object",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": [1]}",
     -EINVAL,
     "data: must be an object"                                                                                                                  },
    {"negative irradiance",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": -100, \"area_cm2\": 0.09, "
     "\"sweeps\": []}}",                                                                            -EINVAL,
     "data.irradiance_mw_cm2: must be > 0"                                                                                                      },
    {"negative area",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": -0.09, "
     "\"sweeps\": []}}",                                                                            -EINVAL,
     "data.area_cm2: must be > 0 (got -0.09)"                                                                                                   },
    {"no sweeps",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": []}}",                                                                            -EINVAL,
     "data.sweeps: 0 sweeps"                                                                                                                    },
    {"mismatched lengths",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": [1, 0.5, 0, -0.1], "
     "\"current_ma_cm2\": [-1, 10, 20]}]}}",                                                        -EINVAL,
     "data.sweeps[0].current_ma_cm2: 3 points but voltage_v has 4"                                                                              },
    {"one point",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": [1], \"current_ma_cm2\": [1]}]}}",   -EINVAL,
     "data.sweeps[0].voltage_v: 1 point, need 3"                                                                                                },
    {"NaN as text",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": [1, 0.5, \"NaN\", -0.1], "
     "\"current_ma_cm2\": [-1, 10, 20, 21]}]}}",                                                    -EINVAL,
     "data.sweeps[0].voltage_v[2]: not a finite number"                                                                                         },
    {"minus infinity as -1e999 in data",
     "{" HDR HDR2 "\"kind\": \"stability\", \"data\": {\"time_h\": [0, 1], \"normalised_pce\": "
     "[1, -1e999]}}",                                                                               -EINVAL,
     "real number overflow"                                                                                                                     },
    {"null number",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": [1, 0.5, 0, -0.1], "
     "\"current_ma_cm2\": [-1, 10, null, 21]}]}}",                                                  -EINVAL,
     "data.sweeps[0].current_ma_cm2[2]: not a finite number (got null)"                                                                         },
    {"bad direction",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": [{\"direction\": \"up\", \"voltage_v\": [1, 0, -1], \"current_ma_cm2\": [1, 2, "
     "3]}]}}",                                                                                      -EINVAL,
     "data.sweeps[0].direction"                                                                                                                 },
    {"two reverse sweeps",
     "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
     "\"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": [1, 0, -1], \"current_ma_cm2\": [1, "
     "2, 3]}, {\"direction\": \"reverse\", \"voltage_v\": [1, 0, -1], \"current_ma_cm2\": [1, 2, "
     "3]}]}}",                                                                                      -EINVAL,
     "data.sweeps[1].direction"                                                                                                                 },
    {"eis negative frequency",
     "{" HDR HDR2 "\"kind\": \"eis\", \"data\": {\"thickness_cm\": 0.1, \"area_cm2\": 0.785, "
     "\"spectra\": [{\"temperature_c\": 25, \"frequency_hz\": [5, 4, -3, 2, 1], \"z_real_ohm\": "
     "[1, "
     "2, 3, 4, 5], \"z_imag_ohm\": [-1, -2, -3, -4, -5]}]}}",                                       -EINVAL,
     "data.spectra[0].frequency_hz[2]: must be > 0"                                                                                             },
    {"eis below absolute zero",
     "{" HDR HDR2 "\"kind\": \"eis\", \"data\": {\"thickness_cm\": 0.1, \"area_cm2\": 0.785, "
     "\"spectra\": [{\"temperature_c\": -300, \"frequency_hz\": [5, 4, 3, 2, 1], \"z_real_ohm\": "
     "[1, "
     "2, 3, 4, 5], \"z_imag_ohm\": [-1, -2, -3, -4, -5]}]}}",                                       -EINVAL,
     "data.spectra[0].temperature_c"                                                                                                            },
    {"eis missing imaginary part",
     "{" HDR HDR2 "\"kind\": \"eis\", \"data\": {\"thickness_cm\": 0.1, \"area_cm2\": 0.785, "
     "\"spectra\": [{\"temperature_c\": 25, \"frequency_hz\": [5, 4, 3, 2, 1], \"z_real_ohm\": [1, "
     "2, 3, 4, 5]}]}}",                                                                             -EINVAL,
     "data.spectra[0].z_imag_ohm: missing"                                                                                                      },
    {"eis zero thickness",
     "{" HDR HDR2 "\"kind\": \"eis\", \"data\": {\"thickness_cm\": 0, \"area_cm2\": 0.785, "
     "\"spectra\": []}}",                                                                           -EINVAL,
     "data.thickness_cm: must be > 0"                                                                                                           },
    {"stability time not increasing",
     "{" HDR HDR2 "\"kind\": \"stability\", \"data\": {\"time_h\": [0, 2, 1], \"normalised_pce\": "
     "[1, 0.9, 0.8]}}",                                                                             -EINVAL,
     "data.time_h[2]: must be greater"                                                                                                          },
    {"stability negative time",
     "{" HDR HDR2 "\"kind\": \"stability\", \"data\": {\"time_h\": [-1, 2, 3], \"normalised_pce\": "
     "[1, 0.9, 0.8]}}",                                                                             -EINVAL,
     "data.time_h[0]: must be >= 0"                                                                                                             },
    {"stability missing series",
     "{" HDR HDR2 "\"kind\": \"stability\", \"data\": {\"time_h\": [0, 1, 2]}}",
     -EINVAL,
     "data.normalised_pce: missing"                                                                                                             },
    {"epoch not a string",
     "{" HDR HDR2 "\"epoch\": 7, \"kind\": \"stability\", \"data\": {\"time_h\": [0, 1], "
     "\"normalised_pce\": [1, 0.9]}}",                                                              -EINVAL,
     "epoch: must be a string (got a number)"                                                                                                   },
    {"epoch with a space",
     "{" HDR HDR2 "\"epoch\": \"a b\", \"kind\": \"stability\", \"data\": {\"time_h\": [0, 1], "
     "\"normalised_pce\": [1, 0.9]}}",                                                              -EINVAL,
     "epoch: must be made of A-Z a-z 0-9 _ . - only"                                                                                            },
    {"epoch empty",
     "{" HDR HDR2 "\"epoch\": \"\", \"kind\": \"stability\", \"data\": {\"time_h\": [0, 1], "
     "\"normalised_pce\": [1, 0.9]}}",                                                              -EINVAL,
     "epoch: must be 1 to 64 bytes (got 0)"                                                                                                     },
    {"stability one point",
     "{" HDR HDR2 "\"kind\": \"stability\", \"data\": {\"time_h\": [0], \"normalised_pce\": [1]}}",
     -EINVAL,
     "data.time_h: 1 point, need 2"                                                                                                             },
};

static void test_measurement_rejects_bad_input_naming_the_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct measurement *m = (struct measurement *)1;
        struct ll_error err = {0};
        int r = measurement_parse(bad[i].json, strlen(bad[i].json), &m, &err);
        if (r != bad[i].code || strstr(err.msg, bad[i].want) == NULL)
            fail_msg(
                "%s: got %d '%s', want %d '%s'", bad[i].name, r, err.msg, bad[i].code, bad[i].want);
        assert_null(m);
    }
}

/* A message quoting the station's string is cut at a character boundary: it goes back to
 * the station as JSON, which must be valid UTF-8 (jansson's json_string checks). */
static void test_measurement_quotes_whole_characters(void **state)
{
    (void)state;
    /* "x" then 20 x "é": the 32-byte cut falls inside one */
    const char *msg =
        "{\"v\": 1, \"type\": \"xéééééééééééééééééééé\", \"station\": \"a\", \"seq\": 1}";
    struct measurement *m = NULL;
    struct ll_error err = {0};
    assert_int_equal(measurement_parse(msg, strlen(msg), &m, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "is not a station message"));
    json_t *j = json_string(err.msg);
    if (j == NULL)
        fail_msg("not valid UTF-8: '%s'", err.msg);
    json_decref(j);
}

static void test_measurement_oversize_and_empty(void **state)
{
    size_t n = MEASUREMENT_MAX_BYTES + 1;
    char *big = malloc(n);
    struct measurement *m = NULL;
    struct ll_error err = {0};
    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    assert_int_equal(measurement_parse(big, n, &m, &err), -EMSGSIZE);
    assert_string_equal(err.msg, "oversize");
    free(big);
    assert_int_equal(measurement_parse("", 0, &m, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
}

static void test_measurement_seq_hint(void **state)
{
    static const char broken[] = "{\"v\": 1, \"seq\": 42, \"type\": \"measurement\"}";
    (void)state;
    assert_int_equal(measurement_seq_hint(broken, strlen(broken)), 42);
    assert_int_equal(measurement_seq_hint("{\"seq\": -3}", 11), 0);
    assert_int_equal(measurement_seq_hint("{\"seq\"", 6), 0);
    assert_int_equal(measurement_seq_hint("[17]", 4), 0);
}

/* B2: negative zero is a number like any other (0; a current at V = Voc may well be written
 * -0.0): accepted; only non-finite values and overflow are refused (tests above). */
static void test_measurement_negative_zero_is_zero(void **state)
{
    static const char msg[] =
        "{" HDR HDR2 "\"kind\": \"stability\", \"data\": {\"time_h\": [-0.0, 1, 2], "
        "\"normalised_pce\": [1, -0, 0.8]}}";
    struct measurement *m = NULL;
    struct ll_error err = {0};
    (void)state;
    assert_int_equal(measurement_parse(msg, strlen(msg), &m, &err), 0);
    assert_true(m->stability.time_h[0] == 0.0 && m->stability.normalised_pce[1] == 0.0);
    measurement_free(&m);
}

/* The optional epoch (docs/protocol.md): parsed when sent, "" when not; its hint is recovered
 * from a message that fails to parse, when it is a valid one. */
static void test_measurement_epoch_and_hint(void **state)
{
    static const char good[] =
        "{" HDR HDR2 "\"epoch\": \"7f3a-b2.x_9\", \"kind\": \"stability\", \"data\": "
        "{\"time_h\": [0, 1], \"normalised_pce\": [1, 0.9]}}";
    static const char hello[] = "{\"v\": 1, \"type\": \"hello\", \"station\": \"jv-1\", "
                                "\"epoch\": \"e1\", \"kinds\": []}";
    struct measurement *m = NULL;
    struct ll_error err = {0};
    char hint[MEASUREMENT_NAME_MAX + 1];
    (void)state;
    assert_int_equal(measurement_parse(good, strlen(good), &m, &err), 0);
    assert_string_equal(measurement_epoch(m), "7f3a-b2.x_9");
    measurement_free(&m);
    assert_int_equal(measurement_parse(hello, strlen(hello), &m, &err), 0);
    assert_string_equal(measurement_epoch(m), "e1");
    measurement_free(&m);
    static const char plain[] = "{\"v\": 1, \"type\": \"heartbeat\", \"station\": \"jv-1\"}";
    assert_int_equal(measurement_parse(plain, strlen(plain), &m, &err), 0);
    assert_string_equal(measurement_epoch(m), "");
    measurement_free(&m);
    static const char broken[] = "{\"v\": 1, \"epoch\": \"e9\", \"seq\": 4, \"type\": 3}";
    measurement_epoch_hint(broken, strlen(broken), hint);
    assert_string_equal(hint, "e9");
    measurement_epoch_hint("{\"epoch\": \"a b\"}", 15, hint);
    assert_string_equal(hint, "");
    measurement_epoch_hint("{\"epoch\": 5}", 12, hint);
    assert_string_equal(hint, "");
    measurement_epoch_hint("{\"epoch\"", 8, hint);
    assert_string_equal(hint, "");
}

static void test_analysis_get_to_json_and_errors(void **state)
{
    struct measurement *m = NULL;
    struct analysis *a = NULL;
    struct ll_error err = {0};
    double x;
    bool flag;
    (void)state;
    assert_int_equal(measurement_parse(JV_MSG, strlen(JV_MSG), &m, &err), 0);
    assert_int_equal(analysis_run(m, &a, &err), 0);
    assert_int_equal(analysis_kind(a), MEASUREMENT_KIND_JV);
    assert_int_equal(analysis_get(a, "pce_pct", &x), 0);
    double pce = x;
    assert_int_equal(analysis_get(a, "jv.pce_pct", &x), 0);
    ll_assert_close(x, pce, 0, 0);
    assert_true(pce > 5.0 && pce < 20.0);
    assert_int_equal(analysis_get(a, "eis.pce_pct", &x), -ENOENT);
    assert_int_equal(analysis_get(a, "hysteresis_index", &x), -ENOENT); /* one sweep */
    assert_int_equal(analysis_get_flag(a, "t80_measured", &flag), -ENOENT);
    assert_true(analysis_n_values(a) >= 5);
    assert_string_equal(analysis_value_name(a, 0), "pce_pct");
    assert_string_equal(analysis_version(), "1.0");

    char *text = analysis_to_json(a);
    assert_non_null(text);
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "analysis_version")), "1.0");
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "jv");
    ll_assert_close(json_number_value(json_object_get(o, "pce_pct")), pce, 1e-9, 0);
    assert_true(json_is_array(json_object_get(o, "warnings")));
    json_decref(o);
    free(text);
    analysis_free(&a);
    assert_null(a);
    measurement_free(&m);

    /* a curve that never reaches V = 0: the analysis names the sweep */
    static const char no_v0[] =
        "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, "
        "\"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": [1.2, 1.0, 0.5], "
        "\"current_ma_cm2\": [-3, 5, 20]}]}}";
    assert_int_equal(measurement_parse(no_v0, strlen(no_v0), &m, &err), 0);
    assert_int_equal(analysis_run(m, &a, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "data.sweeps[0]: the curve never crosses V = 0"));
    assert_null(a);
    measurement_free(&m);

    static const char hello[] =
        "{\"v\": 1, \"type\": \"hello\", \"station\": \"a\", \"kinds\": []}";
    assert_int_equal(measurement_parse(hello, strlen(hello), &m, &err), 0);
    assert_int_equal(analysis_run(m, &a, &err), -EINVAL);
    measurement_free(&m);
}

/* B5: a sweep that changes direction or repeats a voltage is analysed (sorted by voltage, the
 * same figures as the ordered sweep) with a warning that says so; an ordered sweep has none. */
static void test_analysis_warns_about_sweep_order(void **state)
{
    (void)state;
    static const char *const sweeps[] = {
        /* ordered */
        "[1.1, 0.9, 0.7, 0.5, 0.3, 0.1, 0.0, -0.1]",
        /* the same points out of order (two reversals) */
        "[1.1, 0.7, 0.9, 0.5, 0.3, 0.1, 0.0, -0.1]",
        /* a repeated voltage */
        "[1.1, 0.9, 0.7, 0.5, 0.5, 0.1, 0.0, -0.1]",
    };
    static const char *const currents[] = {
        "[-2.0, 10.0, 18.0, 20.0, 21.0, 21.5, 22.0, 22.1]",
        "[-2.0, 18.0, 10.0, 20.0, 21.0, 21.5, 22.0, 22.1]",
        "[-2.0, 10.0, 18.0, 20.0, 20.2, 21.5, 22.0, 22.1]",
    };
    static const char *const want[] = {NULL, "changes direction 2 times", "1 point repeats"};
    double pce_ordered = 0.0;
    for (size_t i = 0; i < 3; i++) {
        char text[1024];
        snprintf(text,
                 sizeof(text),
                 "{" HDR HDR2 "\"kind\": \"jv\", \"data\": {\"irradiance_mw_cm2\": 100, "
                 "\"area_cm2\": 0.09, \"sweeps\": [{\"direction\": \"reverse\", \"voltage_v\": %s, "
                 "\"current_ma_cm2\": %s}]}}",
                 sweeps[i],
                 currents[i]);
        struct measurement *m = NULL;
        struct analysis *a = NULL;
        struct ll_error err = {0};
        assert_int_equal(measurement_parse(text, strlen(text), &m, &err), 0);
        assert_int_equal(analysis_run(m, &a, &err), 0);
        double pce = 0.0;
        assert_int_equal(analysis_get(a, "pce_pct", &pce), 0);
        if (i == 0) {
            pce_ordered = pce;
            assert_int_equal(analysis_n_warnings(a), 0);
        } else {
            assert_int_equal(analysis_n_warnings(a), 1);
            assert_non_null(strstr(analysis_warning(a, 0), "data.sweeps[0]: "));
            assert_non_null(strstr(analysis_warning(a, 0), want[i]));
        }
        if (i == 1) /* the same points: the same figures */
            ll_assert_close(pce, pce_ordered, 1e-12, 0);
        analysis_free(&a);
        measurement_free(&m);
    }
}

/* The example files parse, analyse, and give the numbers their generator's truth says. */
static void test_example_files(void **state)
{
    static const struct {
        const char *file, *name;
        double want, tol_abs;
    } cases[] = {
        {"jv_pair.json",            "pce_pct",          20.0,     0.2  },
        {"jv_pair.json",            "hysteresis_index", 0.08,     0.02 },
        {"jv_load_convention.json", "pce_pct",          20.1178,  0.05 },
        {"eis_llzo_3temps.json",    "sigma_s_cm",       3.333e-4, 1e-5 },
        {"stability_measured.json", "t80_h",            420.0,    15.0 },
        {"stability_early.json",    "t80_h",            2000.0,   500.0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "tests/data/measurements/%s", cases[i].file);
        FILE *f = fopen(ll_test_source_path(rel), "rb");
        assert_non_null(f);
        static char buf[1 << 20];
        size_t len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        struct measurement *m = NULL;
        struct analysis *a = NULL;
        struct ll_error err = {0};
        double x;
        if (measurement_parse(buf, len, &m, &err) != 0 || analysis_run(m, &a, &err) != 0)
            fail_msg("%s: %s", cases[i].file, err.msg);
        assert_int_equal(analysis_get(a, cases[i].name, &x), 0);
        if (fabs(x - cases[i].want) > cases[i].tol_abs)
            fail_msg("%s: %s = %g, want %g", cases[i].file, cases[i].name, x, cases[i].want);
        analysis_free(&a);
        measurement_free(&m);
    }
}

static void test_measurement_time_in_ms(void **state)
{
    (void)state;
    static const struct {
        const char *time;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z",         0            },
        {"1970-01-02T00:00:01.5Z",       86401500     },
        {"2000-02-29T23:59:59.999z",     951868799999 }, /* leap day of a year divisible by 400 */
        {"2000-03-01T00:00:00Z",         951868800000 },
        {"2100-03-01T00:00:00Z",         4107542400000}, /* 2100 is not a leap year */
        {"2026-11-25T17:40:03.120Z",     1795628403120},
        {"1969-12-31T23:59:59Z",         -1000        },
        {"2026-11-25T17:40:03.1234567Z", 1795628403123}, /* digits past ms ignored */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *msg = ll_test_jv_message_at("jv-1", 1, "r-1", "S1", 20.0, cases[i].time);
        struct measurement *m = NULL;
        struct ll_error err;
        assert_int_equal(measurement_parse(msg, strlen(msg), &m, &err), 0);
        if (measurement_time_ms(m) != cases[i].ms)
            fail_msg("%s: %lld, want %lld",
                     cases[i].time,
                     (long long)measurement_time_ms(m),
                     (long long)cases[i].ms);
        measurement_free(&m);
        free(msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measurement_time_in_ms),
        cmocka_unit_test(test_measurement_parses_documented_messages),
        cmocka_unit_test(test_measurement_rejects_bad_input_naming_the_field),
        cmocka_unit_test(test_measurement_quotes_whole_characters),
        cmocka_unit_test(test_measurement_oversize_and_empty),
        cmocka_unit_test(test_measurement_seq_hint),
        cmocka_unit_test(test_measurement_epoch_and_hint),
        cmocka_unit_test(test_measurement_negative_zero_is_zero),
        cmocka_unit_test(test_analysis_get_to_json_and_errors),
        cmocka_unit_test(test_analysis_warns_about_sweep_order),
        cmocka_unit_test(test_example_files),
    };
    ll_test_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_furnace_decode — garbage from the furnace (reliability.md B8): furnace_decode()
 * (drivers/furnace.c) turns raw registers into readings by the map of config/lab.conf and
 * classifies them. Checks: every PV error code of the Omega/Delta family (0x8002-0x8006,
 * the `vendorb` map's pv_error_codes) is INVALID naming the code; a PV or working setpoint
 * just below / above the map's temp_range_c is INVALID, the edges are valid; a program
 * status the map does not define is INVALID on both maps; a non-finite scaled value is
 * INVALID; good values are unchanged (PV, negative PV, every state, any status word); and a
 * map without the new keys still takes every signed 16-bit value. The map keys themselves:
 * defaults, write-back, and FILE:LINE errors.
 */
#include "drivers/driver_internal.h"
#include "drivers/labconf.h"
#include "ll_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libconfig 1.5 leaks on a syntax error (see test_labconf.c) */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

static struct labconf *lab;

static int setup(void **state)
{
    struct ll_error err = {0};
    (void)state;
    return labconf_load_default(&lab, &err);
}

static int teardown(void **state)
{
    (void)state;
    labconf_free(&lab);
    return 0;
}

static const struct labconf_furnace_map *map(const char *name)
{
    const struct labconf_furnace_map *m = labconf_find_map(lab, name);
    assert_non_null(m);
    return m;
}

static void assert_invalid(const struct labconf_furnace_map *m,
                           enum furnace_reg reg,
                           uint16_t raw,
                           enum furnace_invalid want,
                           const char *reason_part)
{
    struct furnace_reading d;

    if (furnace_decode(m, reg, raw, &d) != want || d.invalid != want ||
        !strstr(d.reason, reason_part))
        fail_msg("map %s reg %d raw 0x%04X: invalid %d (want %d), reason '%s' (want '%s')",
                 m->name,
                 (int)reg,
                 (unsigned)raw,
                 (int)d.invalid,
                 (int)want,
                 d.reason,
                 reason_part);
    assert_true(isnan(d.value)); /* never a temperature */
    assert_int_equal(d.raw, raw);
}

static void
assert_temp(const struct labconf_furnace_map *m, enum furnace_reg reg, uint16_t raw, double want_c)
{
    struct furnace_reading d;

    if (furnace_decode(m, reg, raw, &d) != FURNACE_VALID)
        fail_msg(
            "map %s reg %d raw 0x%04X: INVALID: %s", m->name, (int)reg, (unsigned)raw, d.reason);
    ll_assert_close(d.value, want_c, 0, 1e-9);
    assert_string_equal(d.reason, "");
}

static void test_furnace_decode_every_pv_error_code_is_invalid_naming_it(void **state)
{
    const struct labconf_furnace_map *m = map("vendorb");
    (void)state;

    assert_int_equal(m->n_pv_error_codes, 5);
    for (unsigned code = 0x8002; code <= 0x8006; code++) {
        char want[64];
        snprintf(want, sizeof(want), "PV error code 0x%04X (map 'vendorb')", code);
        assert_invalid(m, FURNACE_REG_PV, (uint16_t)code, FURNACE_INVALID_ERROR_CODE, want);
    }
    /* the neighbours are not codes: 0x8001 and 0x8007 are raw -3276.7 / -3276.1 C, below
     * the range */
    assert_invalid(m, FURNACE_REG_PV, 0x8001, FURNACE_INVALID_RANGE, "outside the range");
    assert_invalid(m, FURNACE_REG_PV, 0x8007, FURNACE_INVALID_RANGE, "outside the range");
    /* error codes are a PV thing: in the working setpoint 0x8003 is just out of range */
    assert_invalid(
        m, FURNACE_REG_WORKING_SP, 0x8003, FURNACE_INVALID_RANGE, "working setpoint raw 0x8003");
    /* the Eurotherm map lists no codes, but its range catches them all */
    for (unsigned code = 0x8002; code <= 0x8006; code++)
        assert_invalid(map("eurotherm3216"),
                       FURNACE_REG_PV,
                       (uint16_t)code,
                       FURNACE_INVALID_RANGE,
                       "of map 'eurotherm3216'");
}

static void test_furnace_decode_temperatures_outside_the_range_are_invalid(void **state)
{
    (void)state;

    for (int k = 0; k < 2; k++) {
        const struct labconf_furnace_map *m = map(k ? "vendorb" : "eurotherm3216");
        for (int r = FURNACE_REG_PV; r <= FURNACE_REG_WORKING_SP; r++) {
            enum furnace_reg reg = (enum furnace_reg)r;
            assert_true(m->has_temp_range);
            assert_temp(m, reg, (uint16_t)(int16_t)-2000, -200.0);
            assert_temp(m, reg, 13720, 1372.0);
            assert_invalid(m,
                           reg,
                           (uint16_t)(int16_t)-2001,
                           FURNACE_INVALID_RANGE,
                           "(-200.1 C) is outside the range -200.0..1372.0 C");
            assert_invalid(m, reg, 13721, FURNACE_INVALID_RANGE, "(1372.1 C) is outside");
            /* a sensor break's full scale */
            assert_invalid(m, reg, 32767, FURNACE_INVALID_RANGE, "raw 0x7FFF (3276.7 C)");
            assert_invalid(m, reg, 0x8000, FURNACE_INVALID_RANGE, "raw 0x8000");
        }
    }
}

static void test_furnace_decode_undefined_program_states_are_invalid(void **state)
{
    const struct labconf_furnace_map *eu = map("eurotherm3216"), *vb = map("vendorb");
    static const uint16_t eu_bad[] = {4, 5, 9, 16, 0x7FFF, 0x8002, 0xFFFF};
    static const uint16_t vb_bad[] = {0, 3, 5, 6, 7, 9, 16, 0xFFFF};
    (void)state;

    for (size_t i = 0; i < sizeof(eu_bad) / sizeof(eu_bad[0]); i++)
        assert_invalid(eu,
                       FURNACE_REG_PROGRAM_STATUS,
                       eu_bad[i],
                       FURNACE_INVALID_STATE,
                       "is not a state of map 'eurotherm3216' (reset 0, run 1, hold 2, end 3)");
    for (size_t i = 0; i < sizeof(vb_bad) / sizeof(vb_bad[0]); i++)
        assert_invalid(vb,
                       FURNACE_REG_PROGRAM_STATUS,
                       vb_bad[i],
                       FURNACE_INVALID_STATE,
                       "is not a state of map 'vendorb' (reset 1, run 2, hold 4, end 8)");
    assert_invalid(eu, FURNACE_REG_PROGRAM_STATUS, 9, FURNACE_INVALID_STATE, "program status 9 ");
}

static void test_furnace_decode_good_values_are_unchanged(void **state)
{
    static const struct {
        const char *map;
        uint16_t raw[4];
    } states[] = {
        {"eurotherm3216", {0, 1, 2, 3}},
        {"vendorb",       {1, 2, 4, 8}},
    };
    struct furnace_reading d;
    (void)state;

    for (size_t k = 0; k < 2; k++) {
        const struct labconf_furnace_map *m = map(states[k].map);
        assert_temp(m, FURNACE_REG_PV, 1234, 123.4);
        assert_temp(m, FURNACE_REG_PV, 250, 25.0);
        assert_temp(m, FURNACE_REG_PV, 0, 0.0);
        assert_temp(m, FURNACE_REG_PV, 0xFFFF, -0.1);
        assert_temp(m, FURNACE_REG_WORKING_SP, 2000, 200.0);
        for (int s = 0; s < 4; s++) {
            assert_int_equal(furnace_decode(m, FURNACE_REG_PROGRAM_STATUS, states[k].raw[s], &d),
                             FURNACE_VALID);
            assert_int_equal(d.state, (enum furnace_program)s);
        }
        for (unsigned w = 0; w <= 0xFFFF; w += 0x1111) {
            assert_int_equal(furnace_decode(m, FURNACE_REG_STATUS, (uint16_t)w, &d), FURNACE_VALID);
            assert_int_equal(d.bits, w);
        }
    }
}

static void test_furnace_decode_map_without_the_keys_and_nonfinite_scale(void **state)
{
    struct labconf_furnace_map m = *map("vendorb");
    (void)state;

    m.n_pv_error_codes = 0;
    m.has_temp_range = false;
    assert_temp(&m, FURNACE_REG_PV, 0x8003, -3276.5); /* no codes, no range: a number */
    assert_temp(&m, FURNACE_REG_PV, 32767, 3276.7);
    m.temp_scale = (double)INFINITY;
    assert_invalid(&m, FURNACE_REG_PV, 10, FURNACE_INVALID_NONFINITE, "not a finite temperature");
    m.temp_scale = (double)NAN;
    assert_invalid(
        &m, FURNACE_REG_WORKING_SP, 10, FURNACE_INVALID_NONFINITE, "not a finite temperature");
    /* an error code is named as such before anything else */
    m.pv_error_codes[0] = 0x8002;
    m.n_pv_error_codes = 1;
    assert_invalid(&m, FURNACE_REG_PV, 0x8002, FURNACE_INVALID_ERROR_CODE, "PV error code 0x8002");
}

/* The map keys: written back and loaded again equal; FILE:LINE errors. */
static void test_furnace_decode_map_keys_load_write_and_errors(void **state)
{
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"pv_error_codes = [ 0x8002,",
         "pv_error_codes = [ 0x18002,",                                                           "t.conf:81: map 'vendorb': 'pv_error_codes': 98306 is not a 16-bit register value"},
        {"pv_error_codes = [ 0x8002,",                                  "pv_error_codes = [ -1,", "is not a 16-bit register value"                                                  },
        {"pv_error_codes = [ 0x8002, 0x8003, 0x8004, 0x8005, 0x8006 ]",
         "pv_error_codes = 5",                                                                    "'pv_error_codes' must be a list of integers"                                     },
        {"pv_error_codes = [ 0x8002, 0x8003, 0x8004, 0x8005, 0x8006 ]",
         "pv_error_codes = [ 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17 ]",                        "more than 16 codes"                                                              },
        {"pv_error_codes = [ 0x8002, 0x8003, 0x8004, 0x8005, 0x8006 ]",
         "pv_error_codes = [ \"x\" ]",                                                            "must be a list of integers"                                                      },
        {"temp_range_c = [ -200.0, 1372.0 ];  #",
         "temp_range_c = [ 1372.0, -200.0 ];  #",                                                 "t.conf:69: map 'eurotherm3216': 'temp_range_c' = [ 1372, -200 ] is not LO < HI"  },
        {"temp_range_c = [ -200.0, 1372.0 ];  #",
         "temp_range_c = [ 1.0 ];  #",                                                            "'temp_range_c' must be [ LO, HI ]"                                               },
        {"temp_range_c = [ -200.0, 1372.0 ];  #",
         "temp_range_c = 5.0;  #",                                                                "'temp_range_c' must be [ LO, HI ]"                                               },
        {"temp_range_c = [ -200.0, 1372.0 ];  #",
         "temp_range_c = [ \"a\", \"b\" ];  #",                                                   "'temp_range_c' must be a number"                                                 },
        {"temp_range_c = [ -200.0, 1372.0 ];  #",
         "temp_range_c = [ -200.0, 1e9 ];  #",                                                    "is not LO < HI within"                                                           },
    };
    char path[4200];
    struct labconf *back = NULL;
    struct ll_error err = {0};
    (void)state;

    snprintf(path, sizeof(path), "%s/lab.conf", ll_test_tmpdir());
    assert_int_equal(labconf_write_file(lab, path, &err), 0);
    assert_int_equal(labconf_load_file(path, &back, &err), 0);
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "vendorb" : "eurotherm3216";
        const struct labconf_furnace_map *a = map(name), *b = labconf_find_map(back, name);
        assert_int_equal(a->n_pv_error_codes, b->n_pv_error_codes);
        assert_memory_equal(a->pv_error_codes, b->pv_error_codes, sizeof(a->pv_error_codes));
        assert_int_equal(a->has_temp_range, b->has_temp_range);
        assert_true(a->temp_min_c == b->temp_min_c && a->temp_max_c == b->temp_max_c);
    }
    assert_int_equal(map("eurotherm3216")->n_pv_error_codes, 0);
    assert_int_equal(labconf_find_map(back, "vendorb")->pv_error_codes[4], 0x8006);
    labconf_free(&back);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *base = labconf_default_text();
        const char *at = strstr(base, cases[i].from);
        struct labconf *l = NULL;
        size_t cap;
        char *text;
        int r;

        assert_non_null(at);
        cap = strlen(base) + strlen(cases[i].to) + 1;
        text = malloc(cap);
        assert_non_null(text);
        snprintf(
            text, cap, "%.*s%s%s", (int)(at - base), base, cases[i].to, at + strlen(cases[i].from));
        r = labconf_load_string(text, "t.conf", &l, &err);
        if (r != -EINVAL || !strstr(err.msg, cases[i].want) || strncmp(err.msg, "t.conf:", 7) != 0)
            fail_msg("case %zu: r=%d msg='%s', want '%s'", i, r, err.msg, cases[i].want);
        assert_null(l);
        free(text);
    }
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_furnace_decode_every_pv_error_code_is_invalid_naming_it),
        cmocka_unit_test(test_furnace_decode_temperatures_outside_the_range_are_invalid),
        cmocka_unit_test(test_furnace_decode_undefined_program_states_are_invalid),
        cmocka_unit_test(test_furnace_decode_good_values_are_unchanged),
        cmocka_unit_test(test_furnace_decode_map_without_the_keys_and_nonfinite_scale),
        cmocka_unit_test(test_furnace_decode_map_keys_load_write_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

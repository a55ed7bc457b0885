/* test_labconf — the lab definition loader and writer (drivers/labconf.h).
 *
 * Checks: config/lab.conf and the embedded default load to the same structs; write then
 * load gives back equal structs (also after labsim-style edits of device and port); every
 * kind of bad input names the line and the problem (table of text substitutions on the
 * default lab); both furnace maps resolve with their addresses and scales.
 */
#include "drivers/labconf.h"
#include "ll_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libconfig 1.5 (Debian 12) leaks the string tokens it had read when it meets a syntax
 * error (no bison %destructor); that leak is in the library, not in labconf. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

/* Copy with the source-dependent fields (file name, line numbers) cleared. */
static void normalise(struct labconf *lab)
{
    memset(lab->source, 0, sizeof(lab->source));
    for (int i = 0; i < lab->n_instruments; i++) {
        lab->instruments[i].line = 0;
        lab->instruments[i].map.line = 0;
    }
    for (int i = 0; i < lab->n_maps; i++)
        lab->maps[i].line = 0;
    for (int i = 0; i < lab->n_stations; i++)
        lab->stations[i].line = 0;
}

static void assert_same_lab(struct labconf *a, struct labconf *b)
{
    normalise(a);
    normalise(b);
    assert_int_equal(a->n_instruments, b->n_instruments);
    for (int i = 0; i < a->n_instruments; i++)
        assert_memory_equal(&a->instruments[i], &b->instruments[i], sizeof(a->instruments[i]));
    assert_memory_equal(a, b, sizeof(*a));
}

static void test_labconf_file_equals_embedded_default(void **state)
{
    struct labconf *file = NULL, *dflt = NULL;
    struct ll_error err = {0};
    (void)state;

    assert_int_equal(labconf_load_file(ll_test_source_path("config/lab.conf"), &file, &err), 0);
    assert_int_equal(labconf_load_default(&dflt, &err), 0);
    assert_same_lab(file, dflt);
    labconf_free(&file);
    labconf_free(&dflt);
    assert_null(file);
    labconf_free(&file); /* no-op */
}

static void test_labconf_default_values_resolved(void **state)
{
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    const struct labconf_instrument *robot, *furnace, *coater;
    (void)state;

    assert_int_equal(labconf_load_default(&lab, &err), 0);
    assert_string_equal(lab->name, "simulated-lab");
    assert_int_equal(lab->n_instruments, 3);
    robot = labconf_find_instrument(lab, "robot");
    furnace = labconf_find_instrument(lab, "furnace");
    coater = labconf_find_instrument(lab, "coater");
    assert_non_null(robot);
    assert_non_null(furnace);
    assert_non_null(coater);
    assert_int_equal(robot->driver, LABCONF_DRIVER_ROBOT_MODBUS_TCP);
    assert_int_equal(robot->unit_id, 255);
    assert_int_equal(robot->wells, 96);
    assert_int_equal(robot->n_reservoirs, 6);
    assert_string_equal(robot->reservoirs[5], "CsPbBr3");
    assert_int_equal(labconf_place_slot(robot, "furnace"), 2);
    assert_int_equal(labconf_place_slot(robot, "nowhere"), -ENOENT);
    ll_assert_close(robot->limits.max_volume_ul, 500.0, 0, 1e-12);
    assert_int_equal(furnace->driver, LABCONF_DRIVER_FURNACE_MODBUS_RTU);
    assert_int_equal(furnace->parity, 'N');
    assert_int_equal(furnace->baud, 9600);
    assert_int_equal(furnace->slave, 1);
    assert_string_equal(furnace->map.name, "eurotherm3216");
    assert_int_equal(furnace->map.pv, 1);
    assert_int_equal(furnace->map.sp_rate, 35);
    assert_int_equal(furnace->map.end_type, 328);
    assert_int_equal(furnace->map.seg_rate, 1282);
    assert_int_equal(furnace->map.end_type_values.reset, 3);
    ll_assert_close(furnace->map.temp_scale, 0.1, 0, 1e-15);
    ll_assert_close(furnace->limits.max_temp_c, 200.0, 0, 1e-12);
    assert_int_equal(coater->driver, LABCONF_DRIVER_COATER_SPN1);
    assert_int_equal(coater->baud, 115200);
    ll_assert_close(coater->limits.max_rpm, 8000.0, 0, 1e-12);
    assert_int_equal(coater->poll_ms, 250);
    assert_non_null(labconf_find_map(lab, "vendorb"));
    assert_int_equal(labconf_find_map(lab, "vendorb")->program_status_values.end, 8);
    assert_int_equal(lab->n_stations, 3);
    assert_string_equal(labconf_find_station(lab, "eis-1")->place, "eis");
    assert_string_equal(lab->stations_endpoint, "tcp://127.0.0.1:5555");
    labconf_free(&lab);
}

/* Sets a fixed-size string field the way the loader leaves it: zero-filled after the text. */
static void set_str(char *field, size_t size, const char *value)
{
    memset(field, 0, size);
    snprintf(field, size, "%s", value);
}

static void test_labconf_write_then_load_gives_equal_structs(void **state)
{
    struct labconf *lab = NULL, *back = NULL;
    struct ll_error err = {0};
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    int fi;
    (void)state;

    assert_int_equal(labconf_load_default(&lab, &err), 0);
    /* what labsim does: real pty paths and ports, a name with a quote */
    fi = labconf_instrument_index(lab, "furnace");
    assert_true(fi >= 0);
    set_str(lab->instruments[fi].device, sizeof(lab->instruments[fi].device), "/dev/pts/17");
    lab->instruments[labconf_instrument_index(lab, "robot")].port = 40123;
    set_str(lab->name, sizeof(lab->name), "lab \"x\" \\ 1");
    lab->instruments[fi].limits.max_temp_c = 187.3;
    f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(labconf_write(lab, f, &err), 0);
    fclose(f);
    assert_int_equal(labconf_load_string(text, "written", &back, &err), 0);
    assert_string_equal(back->instruments[fi].device, "/dev/pts/17");
    assert_same_lab(lab, back);
    labconf_free(&back);

    /* and through a file */
    {
        char path[4096];
        snprintf(path, sizeof(path), "%s/lab.conf", ll_test_tmpdir());
        assert_int_equal(labconf_write_file(lab, path, &err), 0);
        assert_int_equal(labconf_load_file(path, &back, &err), 0);
        assert_same_lab(lab, back);
        labconf_free(&back);
    }
    free(text);
    labconf_free(&lab);
}

/* Replace the first occurrence of from by to in the default lab. */
static char *default_with(const char *from, const char *to)
{
    const char *base = labconf_default_text();
    const char *at = strstr(base, from);
    char *out;

    assert_non_null(at);
    size_t cap = strlen(base) + strlen(to) + 1;
    out = malloc(cap);
    assert_non_null(out);
    snprintf(out, cap, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return out;
}

/* A second furnace "f2" on device dev, on one line, with extra settings. */
#define F2_ON(dev, extra)                                                                          \
    "{ name = \"f2\"; driver = \"modbus_rtu_furnace\"; device = \"" dev "\"; " extra               \
    " map = \"vendorb\"; limits = { max_temp_c = 200.0; max_ramp_c_min = 30.0; "                   \
    "safe_setpoint_c = 25.0; }; }, "
/* ... on the furnace's device */
#define F2(extra) F2_ON("/dev/ttyUSB0", extra)

static void test_labconf_bad_input_names_line_and_problem(void **state)
{
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"max_temp_c = 200.0",
         "max_temp = 200.0",                                               "t.conf:43: instrument 'furnace' limits: unknown key 'max_temp'"},
        {"map = \"eurotherm3216\"",
         "map = \"nosuch\"",                                               "t.conf:40: instrument 'furnace': map 'nosuch' is not defined"  },
        {"driver = \"spn1_coater\"",    "driver = \"spn2\"",               "unknown driver 'spn2'"                                         },
        {"slave = 1;",                  "slave = 300;",                    "'slave' = 300 is outside 1..247"                               },
        {"parity = \"N\"",              "parity = \"X\"",                  "parity must be N, E or O"                                      },
        {"max_rpm = 8000;",             "",                                "'max_rpm' is missing"                                          },
        {"max_rpm = 8000;",             "max_rpm = \"fast\";",             "'max_rpm' must be a number"                                    },
        {"safe_setpoint_c = 25.0",      "safe_setpoint_c = 250.0",         "'safe_setpoint_c' is above"                                    },
        {"pv = 1;",                     "pv = 70000;",                     "map 'eurotherm3216': 'pv' = 70000 is outside 0..65535"         },
        {"temp_scale = 0.1;",           "temp_scale = 0.0;",               "'temp_scale' = 0 is outside"                                   },
        {"host = \"127.0.0.1\";",
         "host = \"127.0.0.1\"; device = \"/dev/x\";",                     "instrument 'robot': unknown key 'device'"                      },
        {"place = \"eis\"",             "place = \"roof\"",                "place 'roof' is not a place of robot"                          },
        {"name = \"coater\"",           "name = \"robot\"",                "instrument 'robot' is defined twice"                           },
        {"lab: {",                      "lab: { @include \"/etc/passwd\"", "@include is not allowed"                                       },
        {"lab: {",                      "lab: { x = ;",                    "syntax error"                                                  },
        {"lab: {",                      "labx: {",                         "no 'lab' group"                                                },
        {"rack = 0;",                   "rack = 16;",                      "place 'rack' must be a slot 0..15"                             },
        {"wells = 96;",
         "wells = 97;",                                                    "t.conf:28: instrument 'robot': 'wells' = 97 is outside 1..96"  },
        {"wells = 96;",
         "wells = 0;",                                                     "t.conf:28: instrument 'robot': 'wells' = 0 is outside 1..96"   },
        {"wells = 96;",
         "wells = \"many\";",                                              "t.conf:28: instrument 'robot': 'wells' must be an integer"     },
        {"end_type_values = {",
         "status_bits = { sensor_break = 16; }; end_type_values = {",      "'sensor_break' = 16 is outside 0..15"                          },
        {"end_type_values = {",
         "status_bits = { b5 = 1; }; end_type_values = {",                 "status_bits: unknown key 'b5'"                                 },
 /* a shared line: the same device means the same serial settings and distinct slave
  * ids, and only Modbus RTU instruments share one */
        {"{\n      name = \"coater\";",
         F2("slave = 1;") "{\n      name = \"coater\";",
         "t.conf:47: instrument 'f2': slave id 1 on device '/dev/ttyUSB0' is taken by "
         "instrument 'furnace' (line 31): each instrument on a shared line needs its own "
         "slave id"                                                                                                                        },
        {"{\n      name = \"coater\";",
         F2("") "{\n      name = \"coater\";",
         "t.conf:47: instrument 'f2': slave id 1 on device '/dev/ttyUSB0' is taken"                                                        },
        {"{\n      name = \"coater\";",
         F2("slave = 2; baud = 19200;") "{\n      name = \"coater\";",
         "t.conf:47: instrument 'f2': device '/dev/ttyUSB0' is shared with instrument 'furnace' "
         "(line 31), so its serial settings must be the same: 19200 N81 here, 9600 N81 there"                                              },
        {"{\n      name = \"coater\";",
         F2("slave = 2; parity = \"E\";") "{\n      name = \"coater\";",
         "its serial settings must be the same: 9600 E81 here, 9600 N81 there"                                                             },
        {"device = \"/dev/ttyUSB1\";",
         "device = \"/dev/ttyUSB0\";",                                     "t.conf:50: instrument 'coater': device '/dev/ttyUSB0' is also the line of instrument "
         "'furnace' (line 31); only Modbus RTU instruments share a line (spn1_coater is not)"        },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct labconf *lab = NULL;
        struct ll_error err = {0};
        char *text = default_with(cases[i].from, cases[i].to);
        int r = labconf_load_string(text, "t.conf", &lab, &err);

        if (r != -EINVAL || !strstr(err.msg, cases[i].want) || strncmp(err.msg, "t.conf", 6) != 0)
            print_error("case %zu: r=%d msg='%s', want '%s'\n", i, r, err.msg, cases[i].want);
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(err.msg, cases[i].want));
        assert_null(lab);
        free(text);
    }
}

static void test_labconf_sim_groups_are_ignored_and_maps_switch(void **state)
{
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    char *text = default_with("map = \"eurotherm3216\";",
                              "map = \"vendorb\"; sim = { tau_s = 300.0; faults = \"x\"; };");
    char *text2;
    (void)state;

    if (labconf_load_string(text, "t.conf", &lab, &err) != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(labconf_find_instrument(lab, "furnace")->map.name, "vendorb");
    assert_int_equal(labconf_find_instrument(lab, "furnace")->map.pv, 4096);
    ll_assert_close(labconf_find_instrument(lab, "furnace")->map.rate_scale, 1.0, 0, 0);
    labconf_free(&lab);
    text2 = default_with("lab: {", "lab: { sim = { speed = 10; };");
    assert_int_equal(labconf_load_string(text2, "t.conf", &lab, &err), 0);
    labconf_free(&lab);
    free(text2);
    free(text);
}

/* Instruments on one device with the same serial settings and distinct slave ids load (a
 * shared line); the same slave id on another device is no conflict. */
static void test_labconf_shared_line_loads(void **state)
{
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    char *text =
        default_with("{\n      name = \"coater\";", F2("slave = 2;") "{\n      name = \"coater\";");
    (void)state;

    if (labconf_load_string(text, "t.conf", &lab, &err) != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(labconf_find_instrument(lab, "f2")->device, "/dev/ttyUSB0");
    assert_int_equal(labconf_find_instrument(lab, "f2")->slave, 2);
    labconf_free(&lab);
    free(text);
    text = default_with("{\n      name = \"coater\";",
                        F2_ON("/dev/ttyUSB2", "slave = 1;") "{\n      name = \"coater\";");
    if (labconf_load_string(text, "t.conf", &lab, &err) != 0)
        fail_msg("%s", err.msg);
    labconf_free(&lab);
    free(text);
}

static void test_labconf_missing_file(void **state)
{
    struct labconf *lab = NULL;
    struct ll_error err = {0};
    (void)state;

    assert_int_equal(labconf_load_file("/nonexistent/lab.conf", &lab, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/lab.conf"));
    assert_null(lab);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labconf_file_equals_embedded_default),
        cmocka_unit_test(test_labconf_default_values_resolved),
        cmocka_unit_test(test_labconf_write_then_load_gives_equal_structs),
        cmocka_unit_test(test_labconf_bad_input_names_line_and_problem),
        cmocka_unit_test(test_labconf_sim_groups_are_ignored_and_maps_switch),
        cmocka_unit_test(test_labconf_shared_line_loads),
        cmocka_unit_test(test_labconf_missing_file),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

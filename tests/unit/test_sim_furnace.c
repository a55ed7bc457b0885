/* sim_furnace: labsim's Modbus RTU temperature controller — frames from hardware.md §1.1 byte
 * for byte, both maps of the default lab, exceptions, addressing, resynchronisation after
 * noise, thermal tracking, the anneal program and its end types, the alarm, EEPROM count. */
#include "common/ll_crc.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "simulators/sim_furnace.h"

#include <math.h>
#include <string.h>

static struct labconf *lab;

static int setup(void **state)
{
    (void)state;
    return labconf_load_default(&lab, NULL);
}

static int teardown(void **state)
{
    (void)state;
    labconf_free(&lab);
    return 0;
}

static void init_with_map(struct sim_furnace *f, const char *map)
{
    struct labconf_instrument inst = *labconf_find_instrument(lab, "furnace");
    const struct labconf_furnace_map *m = labconf_find_map(lab, map);
    assert_non_null(m);
    inst.map = *m;
    sim_furnace_init(f, &inst, 1, NULL);
}

/* Sends pdu to slave 1 with its CRC; returns the reply length (reply in out). */
static size_t transact(struct sim_furnace *f, const uint8_t *pdu, size_t n, uint8_t *out)
{
    uint8_t frame[300];
    frame[0] = 1;
    memcpy(frame + 1, pdu, n);
    uint16_t crc = ll_crc16_modbus(frame, n + 1);
    frame[n + 1] = (uint8_t)(crc & 0xFF);
    frame[n + 2] = (uint8_t)(crc >> 8);
    return sim_furnace_feed(f, frame, n + 3, out, 1024);
}

static int read_reg(struct sim_furnace *f, int addr)
{
    uint8_t pdu[5] = {3, (uint8_t)(addr >> 8), (uint8_t)addr, 0, 1}, out[1024];
    size_t n = transact(f, pdu, 5, out);
    assert_int_equal(n, 7);
    assert_int_equal(out[1], 3);
    return (int16_t)((out[3] << 8) | out[4]);
}

/* Writes one register; returns 0 or the exception code. */
static int write_reg(struct sim_furnace *f, int addr, int value)
{
    uint8_t pdu[5] = {
        6, (uint8_t)(addr >> 8), (uint8_t)addr, (uint8_t)((uint16_t)value >> 8), (uint8_t)value};
    uint8_t out[1024];
    size_t n = transact(f, pdu, 5, out);
    if (n == 5 && (out[1] & 0x80))
        return out[2];
    assert_int_equal(n, 8);
    return 0;
}

static void run_s(struct sim_furnace *f, double seconds)
{
    for (long i = 0; i < lround(seconds / 0.5); i++)
        sim_furnace_step(f, 0.5);
}

static void test_sim_furnace_frames_byte_for_byte(void **state)
{
    (void)state;
    struct sim_furnace f;
    init_with_map(&f, "eurotherm3216");
    /* write TG.SP = 100.0 °C: 01 06 00 02 03 E8 28 B4, echoed */
    const uint8_t w[] = {0x01, 0x06, 0x00, 0x02, 0x03, 0xE8, 0x28, 0xB4};
    uint8_t out[1024];
    assert_int_equal(sim_furnace_feed(&f, w, sizeof(w), out, sizeof(out)), 8);
    assert_memory_equal(out, w, 8);
    assert_int_equal(f.eeprom_writes, 1);
    /* read it back: 01 03 02 03 E8 B8 FA */
    const uint8_t r[] = {0x01, 0x03, 0x00, 0x02, 0x00, 0x01, 0x25, 0xCA};
    assert_int_equal(sim_furnace_feed(&f, r, sizeof(r), out, sizeof(out)), 7);
    const uint8_t want[] = {0x01, 0x03, 0x02, 0x03, 0xE8, 0xB8, 0xFA};
    assert_memory_equal(out, want, 7);
    /* the same frame in two pieces, after three noise bytes */
    const uint8_t pv[] = {0x13, 0x99, 0x01, 0x01, 0x03, 0x00, 0x01, 0x00, 0x01, 0xD5, 0xCA};
    size_t n = sim_furnace_feed(&f, pv, 6, out, sizeof(out));
    n += sim_furnace_feed(&f, pv + 6, sizeof(pv) - 6, out + n, sizeof(out) - n);
    assert_int_equal(n, 7);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    /* another slave, a bad CRC: silence; broadcast write: applied, silence */
    const uint8_t other[] = {0x02, 0x03, 0x00, 0x01, 0x00, 0x01, 0xD5, 0xF9};
    assert_int_equal(sim_furnace_feed(&f, other, sizeof(other), out, sizeof(out)), 0);
    const uint8_t bad[] = {0x01, 0x03, 0x00, 0x01, 0x00, 0x01, 0xD5, 0xCB};
    assert_int_equal(sim_furnace_feed(&f, bad, sizeof(bad), out, sizeof(out)), 0);
    sim_furnace_flush_partial(&f);
    uint8_t bc[8] = {0x00, 0x06, 0x00, 0x23, 0x00, 0x64};
    uint16_t crc = ll_crc16_modbus(bc, 6);
    bc[6] = (uint8_t)(crc & 0xFF);
    bc[7] = (uint8_t)(crc >> 8);
    assert_int_equal(sim_furnace_feed(&f, bc, sizeof(bc), out, sizeof(out)), 0);
    assert_int_equal(read_reg(&f, 35), 100);
}

static void test_sim_furnace_exceptions(void **state)
{
    (void)state;
    struct sim_furnace f;
    init_with_map(&f, "eurotherm3216");
    assert_int_equal(write_reg(&f, 2, 2001), 3); /* above max_temp_c 200 */
    assert_int_equal(write_reg(&f, 1, 100), 3);  /* PV is read-only */
    assert_int_equal(write_reg(&f, 7, 1), 2);    /* not in the map */
    assert_int_equal(write_reg(&f, 23, 7), 3);   /* not a program status value */
    uint8_t pdu[5] = {3, 0, 7, 0, 1}, out[1024];
    assert_int_equal(transact(&f, pdu, 5, out), 5);
    assert_int_equal(out[1], 0x83);
    assert_int_equal(out[2], 2);
    uint8_t fc8[5] = {8, 0, 0, 0, 0};
    assert_int_equal(transact(&f, fc8, 5, out), 5);
    assert_int_equal(out[2], 1);
    assert_int_equal(f.eeprom_writes, 0);
}

/* The scripted reply faults of docs/instruments.md §6 (F6-F8 of the reliability matrix). */
static void test_sim_furnace_scripted_reply_faults(void **state)
{
    (void)state;
    struct sim_furnace f;
    struct sim_faults faults;
    struct labconf_instrument inst = *labconf_find_instrument(lab, "furnace");
    uint8_t out[1024];
    uint8_t rd2[5] = {3, 0, 2, 0, 1};
    uint8_t wr2[5] = {6, 0, 2, 0x02, 0x58}; /* 60.0 C */

    inst.map = *labconf_find_map(lab, "eurotherm3216");
    assert_int_equal(sim_faults_init(&faults,
                                     "furnace.exception:05@fc=6@reg=2,furnace.exception:06@fc=6,"
                                     "furnace.wrong_slave@n=1,furnace.echo@n=1,"
                                     "furnace.truncated@n=1,furnace.late:300@n=1",
                                     1,
                                     NULL),
                     0);
    sim_furnace_init(&f, &inst, 1, &faults);
    /* 05: accepted (applied), answered "acknowledge" */
    assert_int_equal(write_reg(&f, 2, 500), 5);
    /* 06: busy, not applied */
    assert_int_equal(write_reg(&f, 2, 600), 6);
    assert_int_equal(f.eeprom_writes, 1);
    /* the reply of another slave, with a good CRC */
    assert_int_equal(transact(&f, rd2, 5, out), 7);
    assert_int_equal(out[0], 2);
    uint16_t crc = ll_crc16_modbus(out, 5);
    assert_int_equal(out[5] | out[6] << 8, crc);
    /* the request echoed, then the reply */
    assert_int_equal(transact(&f, rd2, 5, out), 8 + 7);
    assert_memory_equal(out + 1, rd2, 5);
    assert_int_equal(out[8 + 1], 3);
    assert_int_equal((out[8 + 3] << 8) | out[8 + 4], 500);
    /* the first half of the reply only */
    assert_int_equal(transact(&f, rd2, 5, out), 3);
    /* late: the reply, to be sent 300 ms later */
    assert_int_equal(transact(&f, rd2, 5, out), 7);
    assert_int_equal(f.reply_delay_ms, 300);
    assert_int_equal(read_reg(&f, 2), 500);
    assert_int_equal(f.reply_delay_ms, 0);
    assert_int_equal(transact(&f, wr2, 5, out), 8);
    assert_int_equal(read_reg(&f, 2), 600);
}

static void test_sim_furnace_tracks_ramp_and_setpoint(void **state)
{
    (void)state;
    struct sim_furnace f;
    init_with_map(&f, "eurotherm3216");
    assert_int_equal(write_reg(&f, 35, 100), 0); /* 10 °C/min */
    assert_int_equal(write_reg(&f, 2, 1500), 0);
    run_s(&f, 60);
    ll_assert_close(read_reg(&f, 5) / 10.0, 35.0, 0, 0.3);
    run_s(&f, 840);
    ll_assert_close(read_reg(&f, 5) / 10.0, 150.0, 0, 1e-9);
    ll_assert_close(f.temp_c, 150.0, 0, 2.0);
    run_s(&f, 1200);
    ll_assert_close(read_reg(&f, 1) / 10.0, 150.0, 0, 1.0); /* PV with noise sd 0.2 */
    assert_true(read_reg(&f, 4) > 0 && read_reg(&f, 4) < 1000);
    /* alarm below the temperature: latches, cuts the heater */
    assert_int_equal(write_reg(&f, 13, 1000), 0);
    run_s(&f, 1);
    assert_true(read_reg(&f, 75) & 1);
    assert_int_equal(read_reg(&f, 4), 0);
    run_s(&f, 3600);
    assert_true(f.temp_c < 100.0);
    assert_int_equal(write_reg(&f, 13, 2100), 0); /* acknowledged below the threshold */
    assert_false(read_reg(&f, 75) & 1);
}

static void run_program(struct sim_furnace *f, const struct labconf_furnace_map *m, int end_type)
{
    assert_int_equal(write_reg(f, m->seg_target, 1200), 0);
    assert_int_equal(write_reg(f, m->seg_rate, (int)(20.0 / m->rate_scale)), 0);
    assert_int_equal(write_reg(f, m->seg_dwell, (int)(5.0 / m->dwell_scale)), 0);
    assert_int_equal(write_reg(f, m->end_type, end_type), 0);
    assert_int_equal(write_reg(f, m->program_status, m->program_status_values.run), 0);
    assert_int_equal(read_reg(f, m->program_status), m->program_status_values.run);
    run_s(f, 60);
    assert_true(read_reg(f, m->status) & (1 << 13));
    ll_assert_close(read_reg(f, m->working_sp) / 10.0, 45.0, 0, 1.0); /* from PV 25 at 20 °C/min */
    run_s(f, 235 + 200); /* ramp ends at 285 s, dwell at 585 s */
    assert_int_equal(read_reg(f, m->program_status), m->program_status_values.run);
    ll_assert_close(f->temp_c, 120.0, 0, 2.0);
}

static void test_sim_furnace_program_end_types_on_both_maps(void **state)
{
    (void)state;
    const char *maps[] = {"eurotherm3216", "vendorb"};
    for (int k = 0; k < 2; k++) {
        struct sim_furnace f;
        init_with_map(&f, maps[k]);
        const struct labconf_furnace_map *m = &f.map;
        assert_false(read_reg(&f, m->status) & (1 << 9));
        run_program(&f, m, m->end_type_values.reset);
        assert_false(read_reg(&f, m->status) & (1 << 9)); /* still running */
        run_s(&f, 120);
        assert_int_equal(read_reg(&f, m->program_status), m->program_status_values.reset);
        /* end type reset: back in reset, but with the program-end bit B9 */
        assert_true(read_reg(&f, m->status) & (1 << 9));
        ll_assert_close(sim_furnace_active_sp(&f), 25.0, 0, 1e-9);
        run_s(&f, 3600);
        assert_true(f.temp_c < 35.0); /* cooled without the host */
        assert_int_equal(f.programs_run, 1);
        /* B9 survives a reset write; the next program start clears it */
        assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.reset), 0);
        assert_true(read_reg(&f, m->status) & (1 << 9));
        assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.run), 0);
        assert_false(read_reg(&f, m->status) & (1 << 9));
        run_s(&f, 60);
        /* a reset mid-program (an operator's) leaves B9 clear */
        assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.reset), 0);
        assert_int_equal(read_reg(&f, m->program_status), m->program_status_values.reset);
        assert_false(read_reg(&f, m->status) & (1 << 9));
        assert_int_equal(f.programs_run, 2);

        init_with_map(&f, maps[k]);
        run_program(&f, m, m->end_type_values.dwell);
        run_s(&f, 120);
        assert_int_equal(read_reg(&f, m->program_status), m->program_status_values.end);
        assert_true(read_reg(&f, m->status) & (1 << 9));
        run_s(&f, 600);
        ll_assert_close(f.temp_c, 120.0, 0, 1.0);

        /* hold freezes the working setpoint */
        init_with_map(&f, maps[k]);
        assert_int_equal(write_reg(&f, m->seg_target, 1200), 0);
        assert_int_equal(write_reg(&f, m->seg_rate, (int)(10.0 / m->rate_scale)), 0);
        assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.run), 0);
        run_s(&f, 60);
        assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.hold), 0);
        int held = read_reg(&f, m->working_sp);
        run_s(&f, 120);
        assert_int_equal(read_reg(&f, m->working_sp), held);
        assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.reset), 0);
        assert_int_equal(f.eeprom_writes, 0); /* programs do not wear the target setpoint */
    }
}

/* furnace.loop_break: the heater cut off while a program runs; the loop drives its output to
 * 100 %, the temperature falls, and after the loop-break time (60 s) without a 2 C rise the
 * controller sets status B6; once the output drops (program reset: the safe setpoint) B6
 * clears. A heating furnace at full output never sets it. */
static void test_sim_furnace_loop_break(void **state)
{
    (void)state;
    struct sim_furnace f;
    init_with_map(&f, "eurotherm3216");
    const struct labconf_furnace_map *m = &f.map;
    const uint16_t b6 = 1u << m->status_bits.loop_break;
    assert_int_equal(write_reg(&f, m->seg_target, 1200), 0);
    assert_int_equal(write_reg(&f, m->seg_rate, (int)(30.0 / m->rate_scale)), 0);
    assert_int_equal(write_reg(&f, m->seg_dwell, (int)(30.0 / m->dwell_scale)), 0);
    assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.run), 0);
    for (int i = 0; i < 400; i++) { /* up to 120 C, never a loop break */
        run_s(&f, 1);
        assert_false(read_reg(&f, m->status) & b6);
    }
    double before = f.temp_c;
    f.heater_broken_s = 600.0;
    double t = 0;
    while (!(read_reg(&f, m->status) & b6)) {
        run_s(&f, 1);
        t += 1;
        assert_true(t < 300);
    }
    assert_true(t >= 60 && t <= 120);
    assert_true(f.temp_c < before - 5.0);        /* no heat: cooling */
    assert_true(read_reg(&f, m->output) >= 990); /* output at 100 % (0.1 % units) */
    assert_int_equal(write_reg(&f, m->program_status, m->program_status_values.reset), 0);
    run_s(&f, 2);
    assert_false(read_reg(&f, m->status) & b6);
}

static void test_sim_furnace_long_steps_stay_stable(void **state)
{
    (void)state;
    struct sim_furnace f;
    init_with_map(&f, "eurotherm3216");
    assert_int_equal(write_reg(&f, 2, 1500), 0);
    double peak = 0;
    for (int i = 0; i < 200; i++) { /* 60 s steps: a busy machine at --speed 20000 */
        sim_furnace_step(&f, 60.0);
        peak = fmax(peak, f.temp_c);
    }
    ll_assert_close(f.temp_c, 150.0, 0, 1.0);
    assert_true(peak < 160.0);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_furnace_frames_byte_for_byte),
        cmocka_unit_test(test_sim_furnace_exceptions),
        cmocka_unit_test(test_sim_furnace_scripted_reply_faults),
        cmocka_unit_test(test_sim_furnace_tracks_ramp_and_setpoint),
        cmocka_unit_test(test_sim_furnace_program_end_types_on_both_maps),
        cmocka_unit_test(test_sim_furnace_long_steps_stay_stable),
        cmocka_unit_test(test_sim_furnace_loop_break),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* sim_rtu: labsim's Modbus RTU line — several furnaces on one line each answer only their own
 * slave id; an answer is due when its last character would have crossed the line at the
 * configured baud rate (9600 8N1: 1041.7 µs per character, t3.5 = 3645.8 µs); the line's busy
 * time counts every frame and the t3.5 after it; a frame that starts while another is on the
 * line, or two frames without a pause, collide (dropped, the answer they hit garbled); a frame
 * inside the t3.5 after an answer is served and counted as a gap violation. */
#include "common/ll_crc.h"
#include "drivers/labconf.h"
#include "ll_test.h"
#include "simulators/sim_furnace.h"
#include "simulators/sim_rtu.h"

#include <errno.h>
#include <string.h>

#define CHAR_US (1e6 * 10 / 9600) /* 8N1: start + 8 data + stop */
#define T35_US (3.5 * CHAR_US)

static struct labconf *lab;
static struct sim_furnace furnace1, furnace2;
static struct sim_rtu_line line;

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

/* Furnaces with slave ids 1 and 2 on one 9600 8N1 line. */
static void two_slaves(void)
{
    struct labconf_instrument inst = *labconf_find_instrument(lab, "furnace");
    assert_int_equal(inst.baud, 9600);
    assert_int_equal(inst.parity, 'N');
    sim_rtu_init(&line, &inst, 0.0);
    inst.slave = 1;
    sim_furnace_init(&furnace1, &inst, 1, NULL);
    assert_int_equal(sim_rtu_add_slave(&line, &furnace1), 0);
    inst.slave = 2;
    sim_furnace_init(&furnace2, &inst, 1, NULL);
    assert_int_equal(sim_rtu_add_slave(&line, &furnace2), 0);
    assert_int_equal(sim_rtu_add_slave(&line, &furnace2), -EEXIST);
    ll_assert_close(line.char_us, CHAR_US, 1e-9, 0);
    ll_assert_close(line.t35_us, T35_US, 1e-9, 0);
}

/* "read one holding register at addr" to slave, with its CRC (8 bytes). */
static size_t read_frame(int slave, int addr, uint8_t *out)
{
    out[0] = (uint8_t)slave;
    out[1] = 3;
    out[2] = (uint8_t)(addr >> 8);
    out[3] = (uint8_t)addr;
    out[4] = 0;
    out[5] = 1;
    uint16_t crc = ll_crc16_modbus(out, 6);
    out[6] = (uint8_t)(crc & 0xFF);
    out[7] = (uint8_t)(crc >> 8);
    return 8;
}

static int rx(const uint8_t *data,
              size_t len,
              int64_t now_us,
              struct sim_rtu_reply *out,
              int *ng,
              uint64_t *garbled)
{
    return sim_rtu_rx(&line, data, len, now_us, out, 2, garbled, 8, ng);
}

static void
test_sim_rtu_only_the_addressed_slave_answers_when_its_answer_has_crossed_the_line(void **state)
{
    static struct sim_rtu_reply out[2];
    uint8_t req[8];
    uint64_t garbled[8];
    int ng;
    const int64_t t0 = 1000000;
    (void)state;

    two_slaves();
    /* slave 2: 8 request characters, t3.5, 7 answer characters */
    assert_int_equal(rx(req, read_frame(2, 1, req), t0, out, &ng, garbled), 1);
    assert_int_equal(ng, 0);
    assert_int_equal(out[0].len, 7);
    assert_int_equal(out[0].bytes[0], 2);
    ll_assert_close((double)out[0].due_us, t0 + 15 * CHAR_US + T35_US, 0, 2.0);
    ll_assert_close((double)line.st.busy_us, 15 * CHAR_US + 2 * T35_US, 0, 3.0);
    /* slave 1, after that answer and its gap */
    int64_t t1 = out[0].due_us + (int64_t)T35_US + 1;
    assert_int_equal(rx(req, read_frame(1, 1, req), t1, out, &ng, garbled), 1);
    assert_int_equal(out[0].bytes[0], 1);
    /* slave 3 is not on the line: the request costs line time, nobody answers */
    int64_t t2 = out[0].due_us + (int64_t)T35_US + 1;
    assert_int_equal(rx(req, read_frame(3, 1, req), t2, out, &ng, garbled), 0);
    ll_assert_close((double)line.st.busy_us, 38 * CHAR_US + 5 * T35_US, 0, 8.0);
    assert_int_equal(line.st.frames, 3);
    assert_int_equal(line.st.replies, 2);
    assert_int_equal(line.st.bytes_rx, 24);
    assert_int_equal(line.st.bytes_tx, 14);
    assert_int_equal(line.st.collisions, 0);
    assert_int_equal(line.st.gap_violations, 0);
}

static void test_sim_rtu_a_frame_during_an_answer_collides_and_garbles_it(void **state)
{
    static struct sim_rtu_reply out[2];
    uint8_t req[8];
    uint64_t garbled[8];
    int ng;
    const int64_t t0 = 1000000;
    (void)state;

    two_slaves();
    assert_int_equal(rx(req, read_frame(1, 1, req), t0, out, &ng, garbled), 1);
    uint64_t first = out[0].id;
    int64_t due = out[0].due_us;
    /* another master talks while slave 1's answer is on the line */
    assert_int_equal(rx(req, read_frame(2, 1, req), due - 2000, out, &ng, garbled), 0);
    assert_int_equal(line.st.collisions, 1);
    assert_int_equal(line.st.frames, 1); /* the colliding request never reached a slave */
    assert_int_equal(ng, 1);
    assert_int_equal(garbled[0], first);
    /* while its own request still goes out */
    two_slaves();
    assert_int_equal(rx(req, read_frame(1, 1, req), t0, out, &ng, garbled), 1);
    assert_int_equal(rx(req, read_frame(2, 1, req), t0 + 3000, out, &ng, garbled), 0);
    assert_int_equal(line.st.collisions, 1);
    /* inside the t3.5 after the answer: served, a gap violation */
    two_slaves();
    assert_int_equal(rx(req, read_frame(1, 1, req), t0, out, &ng, garbled), 1);
    assert_int_equal(rx(req, read_frame(2, 1, req), out[0].due_us + 1000, out, &ng, garbled), 1);
    assert_int_equal(line.st.collisions, 0);
    assert_int_equal(line.st.gap_violations, 1);
}

static void test_sim_rtu_two_frames_without_a_pause_collide(void **state)
{
    static struct sim_rtu_reply out[2];
    uint8_t req[16];
    uint64_t garbled[8];
    int ng;
    (void)state;

    two_slaves();
    read_frame(1, 1, req);
    read_frame(2, 1, req + 8);
    /* the first frame reached slave 1, but its answer was hit by the second frame */
    int n = rx(req, 16, 1000000, out, &ng, garbled);
    assert_int_equal(line.st.collisions, 1);
    assert_int_equal(n, 1);
    assert_int_equal(ng, 1);
    assert_int_equal(garbled[0], out[0].id);
    /* a frame that arrives in pieces is one frame, not a collision */
    two_slaves();
    read_frame(2, 1, req);
    assert_int_equal(rx(req, 3, 2000000, out, &ng, garbled), 0);
    assert_int_equal(rx(req + 3, 5, 2000500, out, &ng, garbled), 1);
    assert_int_equal(out[0].bytes[0], 2);
    assert_int_equal(line.st.collisions, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_sim_rtu_only_the_addressed_slave_answers_when_its_answer_has_crossed_the_line),
        cmocka_unit_test(test_sim_rtu_a_frame_during_an_answer_collides_and_garbles_it),
        cmocka_unit_test(test_sim_rtu_two_frames_without_a_pause_collide),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, setup, teardown);
}

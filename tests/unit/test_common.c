/* common/: CRC check values and protocol vectors, ll_error formatting, failpoint specs. */
#include "common/ll_crc.h"
#include "common/ll_error.h"
#include "common/ll_failpoint.h"
#include "common/ll_text.h"
#include "ll_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_failpoint_spec_parse(void **state)
{
    (void)state;
    struct ll_failpoint_spec sp[3];
    assert_int_equal(ll_failpoint_parse("intent_committed:3", sp, 3), 1);
    assert_string_equal(sp[0].name, "intent_committed");
    assert_int_equal(sp[0].at, 3);
    assert_int_equal(ll_failpoint_parse("a:1,b_2:20,C:999999999", sp, 3), 3);
    assert_string_equal(sp[1].name, "b_2");
    assert_int_equal(sp[1].at, 20);
    assert_int_equal(sp[2].at, 999999999);
    assert_int_equal(ll_failpoint_parse("", sp, 3), 0);
    /* malformed: each must be refused, not half-read */
    static const char *const bad[] = {
        "a",
        "a:",
        ":1",
        "a:0",
        "a:-1",
        "a:1,",
        "a:1,,b:2",
        "a:1x",
        "a b:1",
        "a:1234567890",
        "a:1,b:1,c:1,d:1",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ll_failpoint_parse(bad[i], sp, 3) != -1)
            fail_msg("accepted '%s'", bad[i]);
    }
}

static void test_failpoint_unnamed_passes_do_nothing(void **state)
{
    (void)state;
    /* the test environment names no point: passes are counted nowhere and return */
    assert_null(getenv("LABLOOP_FAILPOINT"));
    for (int i = 0; i < 1000; i++)
        ll_failpoint_pass("intent_committed");
#ifdef LL_FAILPOINTS
    assert_int_equal(ll_failpoints_compiled(), 1);
#else
    assert_int_equal(ll_failpoints_compiled(), 0);
#endif
}

static atomic_int hang_returned;

static void *hang_second_pass(void *arg)
{
    (void)arg;
    ll_failpoint_hang("unit_hang"); /* pass 2: never returns */
    atomic_store(&hang_returned, 1);
    return NULL;
}

static void test_failpoint_hang_blocks_only_the_named_pass(void **state)
{
    (void)state;
    pthread_t t;
    /* read on the first call of ll_failpoint_hang in this process: this one */
    assert_int_equal(setenv("LABLOOP_FAILPOINT_HANG", "unit_hang:2", 1), 0);
    for (int i = 0; i < 10; i++)
        ll_failpoint_hang("other_point");
    ll_failpoint_hang("unit_hang"); /* pass 1 returns */
    assert_int_equal(pthread_create(&t, NULL, hang_second_pass, NULL), 0);
    /* what is checked is that something does NOT happen: 300 ms is far beyond a return */
    struct timespec wait = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
    nanosleep(&wait, NULL);
    assert_int_equal(atomic_load(&hang_returned), 0);
    ll_failpoint_hang("unit_hang"); /* pass 3 returns; the thread stays blocked until exit */
    pthread_detach(t);
}

static void test_parse_int_is_strict(void **state)
{
    (void)state;
    long long v = -1;
    assert_int_equal(ll_parse_int("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(ll_parse_int("-7", -10, 10, &v), 0);
    assert_int_equal(v, -7);
    const char *bad[] = {"",
                         " 4",
                         "4 ",
                         "4x",
                         "1 OR 1=1",
                         "0x10",
                         "1e3",
                         "abc",
                         "101",
                         "0",
                         "99999999999999999999",
                         "4.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 5;
        if (ll_parse_int(bad[i], 1, 100, &v) != -EINVAL)
            fail_msg("'%s' was taken", bad[i]);
        assert_int_equal(v, 5); /* untouched */
    }
    assert_int_equal(ll_parse_int(NULL, 1, 100, &v), -EINVAL);
}

static void test_host_is_loopback(void **state)
{
    (void)state;
    static const char *const yes[] = {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"};
    static const char *const no[] = {
        "0.0.0.0", "192.168.1.50", "128.0.0.1", "localhost.example", "::", "", "1.127.0.0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!ll_host_is_loopback(yes[i]))
            fail_msg("'%s' is loopback", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (ll_host_is_loopback(no[i]))
            fail_msg("'%s' is not loopback", no[i]);
}

static void test_crc16_modbus_check_value(void **state)
{
    (void)state;
    assert_int_equal(ll_crc16_modbus((const uint8_t *)"123456789", 9), 0x4B37);
    /* Modbus RTU read of 1 holding register at 1 from slave 1: 01 03 00 01 00 01 -> D5 CA */
    const uint8_t frame[] = {0x01, 0x03, 0x00, 0x01, 0x00, 0x01};
    assert_int_equal(ll_crc16_modbus(frame, sizeof(frame)), 0xCAD5);
}

static void test_crc16_ccitt_false_matches_spn1_examples(void **state)
{
    (void)state;
    assert_int_equal(ll_crc16_ccitt_false((const uint8_t *)"123456789", 9), 0x29B1);
    const char *body = "17 RCP 3 STAGE 1 500 1000 5"; /* hardware.md §2.3: *8DA8 */
    assert_int_equal(ll_crc16_ccitt_false((const uint8_t *)body, strlen(body)), 0x8DA8);
    const char *reply = "19 STATUS?";
    assert_int_equal(ll_crc16_ccitt_false((const uint8_t *)reply, strlen(reply)), 0x07EC);
}

static void test_error_set_and_prefix(void **state)
{
    (void)state;
    struct ll_error err;
    ll_error_clear(&err);
    assert_int_equal(ll_error_set(&err, -EINVAL, "column '%s': '%s' is not a number", "x", "abc"),
                     -EINVAL);
    ll_error_prefix(&err, "%s:%d", "obs.csv", 14);
    assert_string_equal(err.msg, "obs.csv:14: column 'x': 'abc' is not a number");
    assert_int_equal(err.code, -EINVAL);
    assert_int_equal(ll_error_set(NULL, -EIO, "ignored"), -EIO);
}

/* ll_utf8_cut: never splits a multibyte character, never exceeds the limit */
static void test_utf8_cut_keeps_characters_whole(void **state)
{
    (void)state;
    assert_int_equal(ll_utf8_cut("abc", 8), 3);
    assert_int_equal(ll_utf8_cut("abcdef", 4), 4);
    assert_int_equal(ll_utf8_cut("abcd", 4), 4);
    assert_int_equal(ll_utf8_cut("", 4), 0);
    /* "aé" + "€": 61 c3 a9 e2 82 ac */
    const char *s = "a\xc3\xa9\xe2\x82\xac";
    assert_int_equal(ll_utf8_cut(s, 1), 1);
    assert_int_equal(ll_utf8_cut(s, 2), 1); /* inside é */
    assert_int_equal(ll_utf8_cut(s, 3), 3);
    assert_int_equal(ll_utf8_cut(s, 4), 3); /* inside € */
    assert_int_equal(ll_utf8_cut(s, 5), 3);
    assert_int_equal(ll_utf8_cut(s, 6), 6);
    assert_int_equal(ll_utf8_cut(s, 64), 6);
    assert_int_equal(ll_utf8_cut("\xc3\xa9", 1), 0);
}

/* ll_utf8_sanitize: well-formed characters stay, every other byte becomes '?' */
static void test_utf8_sanitize_replaces_only_ill_formed_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        size_t replaced;
    } cases[] = {
        {"plain ascii",                              "plain ascii",                             0},
        {"25 \xc2\xb0"
         "C \xe2\x82\xac \xf0\x9f\x94\xa5", "25 \xc2\xb0"
         "C \xe2\x82\xac \xf0\x9f\x94\xa5", 0},
        {"cut \xc3",                                 "cut ?",                                   1},
        {"cut \xe2\x82",                             "cut ??",                                  2},
        {"lone \xa9 continuation",                   "lone ? continuation",                     1},
        {"overlong \xc0\xaf",                        "overlong ??",                             2},
        {"overlong \xe0\x80\xaf",                    "overlong ???",                            3},
        {"surrogate \xed\xa0\x80",                   "surrogate ???",                           3},
        {"too big \xf4\x90\x80\x80",                 "too big ????",                            4},
        {"\xff\xfe",                                 "??",                                      2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        size_t n = ll_utf8_sanitize(buf);
        if (n != cases[i].replaced || strcmp(buf, cases[i].out) != 0)
            fail_msg("case %zu: %zu replaced, '%s'", i, n, buf);
    }
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failpoint_spec_parse),
        cmocka_unit_test(test_failpoint_unnamed_passes_do_nothing),
        cmocka_unit_test(test_failpoint_hang_blocks_only_the_named_pass),
        cmocka_unit_test(test_parse_int_is_strict),
        cmocka_unit_test(test_host_is_loopback),
        cmocka_unit_test(test_crc16_modbus_check_value),
        cmocka_unit_test(test_crc16_ccitt_false_matches_spn1_examples),
        cmocka_unit_test(test_error_set_and_prefix),
        cmocka_unit_test(test_utf8_cut_keeps_characters_whole),
        cmocka_unit_test(test_utf8_sanitize_replaces_only_ill_formed_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

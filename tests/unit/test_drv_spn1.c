/* test_drv_spn1 — SPN/1 framing and reply parsing (drivers/spn1.c) against the worked
 * examples of hardware.md §2.3 (CRCs computed there), and the ERR code mapping the driver
 * switches on (E05/E06/E07/E09 refusals, E04 busy, E08/E99 faults).
 */
#include "drivers/driver_internal.h"
#include "ll_test.h"

#include <errno.h>
#include <string.h>

static void test_spn1_format_matches_reference_frames(void **state)
{
    static const struct {
        unsigned seq;
        const char *body, *frame;
    } cases[] = {
        {17, "RCP 3 STAGE 1 500 1000 5", "17 RCP 3 STAGE 1 500 1000 5*8DA8\r\n"},
        {18, "RUN 3 J000042",            "18 RUN 3 J000042*5B77\r\n"           },
        {19, "STATUS?",                  "19 STATUS?*07EC\r\n"                 },
        {21, "WD 30",                    "21 WD 30*1A78\r\n"                   },
    };
    char buf[160];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = spn1_format(cases[i].seq, cases[i].body, buf, sizeof(buf));
        assert_int_equal(n, (int)strlen(cases[i].frame));
        assert_string_equal(buf, cases[i].frame);
    }
    assert_int_equal(spn1_format(1, "A*B", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(spn1_format(1, "A\nB", buf, sizeof(buf)), -EINVAL);
    {
        char longbody[200];
        memset(longbody, 'X', sizeof(longbody) - 1);
        longbody[sizeof(longbody) - 1] = '\0';
        assert_int_equal(spn1_format(1, longbody, buf, sizeof(buf)), -EINVAL);
    }
}

static void test_spn1_parse_reference_replies(void **state)
{
    struct spn1_reply r;
    const char *ok =
        "19 OK STATE=RUNNING JOB=J000042 RCP=3 STAGE=2 RPM=3987 T=12.4 LID=1 VAC=1*C10E";
    const char *err = "20 ERR E05 LID_OPEN*99DE";
    char v[32];
    (void)state;

    assert_int_equal(spn1_parse_reply(ok, strlen(ok), &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.seq, 19);
    assert_int_equal(spn1_field(r.data, "JOB", v, sizeof(v)), 0);
    assert_string_equal(v, "J000042");
    assert_int_equal(spn1_field(r.data, "T", v, sizeof(v)), 0);
    assert_string_equal(v, "12.4");
    assert_int_equal(spn1_field(r.data, "RCP", v, sizeof(v)), 0);
    assert_string_equal(v, "3");
    assert_int_equal(spn1_field(r.data, "NOPE", v, sizeof(v)), -ENOENT);
    assert_int_equal(spn1_field(r.data, "JOB", v, 4), -ENOSPC);

    assert_int_equal(spn1_parse_reply(err, strlen(err), &r), 0);
    assert_false(r.ok);
    assert_int_equal(r.seq, 20);
    assert_int_equal(r.err_code, 5);
    assert_string_equal(r.data, "LID_OPEN");

    assert_int_equal(spn1_parse_reply("17 OK RCP 3 STAGE 1*F22D", 24, &r), 0);
    assert_string_equal(r.data, "RCP 3 STAGE 1");
    assert_int_equal(spn1_parse_reply("17 OK RCP 3 STAGE 1*f22d", 24, &r), 0); /* lower case */
}

static void test_spn1_parse_rejects_damage(void **state)
{
    struct spn1_reply r;
    char line[64];
    (void)state;

    /* one flipped bit in the body: CRC mismatch */
    snprintf(line, sizeof(line), "17 OK RCP 3 STAGE 2*F22D");
    assert_int_equal(spn1_parse_reply(line, strlen(line), &r), -EBADMSG);
    /* truncated, no star, bad hex, noise byte, SEQ too large */
    assert_int_equal(spn1_parse_reply("17 OK RCP 3 STAGE 1*F22", 23, &r), -EPROTO);
    assert_int_equal(spn1_parse_reply("17 OK RCP 3 STAGE 1", 19, &r), -EPROTO);
    assert_int_equal(spn1_parse_reply("17 OK RCP 3 STAGE 1*G22D", 24, &r), -EPROTO);
    snprintf(line, sizeof(line), "17 OK\x01RCP*0000");
    assert_int_equal(spn1_parse_reply(line, strlen(line), &r), -EPROTO);
    {
        char frame[64];
        int n = spn1_format(5, "X", frame, sizeof(frame)); /* a valid CRC over "5 X" */
        assert_true(n > 0);
        assert_int_equal(spn1_parse_reply(frame, (size_t)n - 2, &r), -EPROTO); /* not OK/ERR */
        n = spn1_format(99999, "OK", frame, sizeof(frame)); /* SEQ is masked to 16 bits */
        assert_int_equal(spn1_parse_reply(frame, (size_t)n - 2, &r), 0);
        assert_int_equal(r.seq, 99999u & 0xffffu);
    }
}

static void test_spn1_error_kinds(void **state)
{
    (void)state;
    assert_int_equal(spn1_error_code(5), DRV_EREFUSED);
    assert_int_equal(spn1_error_code(6), DRV_EREFUSED);
    assert_int_equal(spn1_error_code(7), DRV_EREFUSED);
    assert_int_equal(spn1_error_code(9), DRV_EREFUSED);
    assert_int_equal(spn1_error_code(3), DRV_EREFUSED);
    assert_int_equal(spn1_error_code(4), DRV_EBUSY);
    assert_int_equal(spn1_error_code(8), DRV_EFAULT);
    assert_int_equal(spn1_error_code(99), DRV_EFAULT);
    assert_int_equal(spn1_error_code(1), DRV_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spn1_format_matches_reference_frames),
        cmocka_unit_test(test_spn1_parse_reference_replies),
        cmocka_unit_test(test_spn1_parse_rejects_damage),
        cmocka_unit_test(test_spn1_error_kinds),
    };

    ll_test_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

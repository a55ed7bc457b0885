/* test_drv_mb — how drivers/mb.c classifies every libmodbus failure (reliability.md §4,
 * rows F6 and F7): each Modbus exception 01-0B and the library's own errors (bad CRC, bad
 * data, another slave's id, time-out, a lost link) map to the DRV_E* kind driver.h
 * documents, with a message that names the code; a lost link and exception 0A mark the
 * driver disconnected; on RTU a time-out or a garbled answer marks the link for
 * resynchronisation before the next request (F8), on TCP (transaction ids) it does not;
 * on TCP DRV__TCP_MUTE_RECONNECT time-outs in a row give the connection up (F10).
 */
#include "drivers/driver.h"
#include "drivers/driver_internal.h"
#include "ll_test.h"

#include <errno.h>
#include <modbus.h>
#include <string.h>

struct mb_case {
    int err;          /* errno after the failed libmodbus call */
    int want;         /* DRV_E* code */
    const char *text; /* in the message */
    bool disconnects; /* drv->connected becomes false */
    bool unsyncs_rtu; /* drv->mb_unsynced becomes true on RTU */
};

static const struct mb_case cases[] = {
    {EMBXILFUN,   DRV_ECONFIG,    "refused (exception 01: illegal function)",          false, false},
    {EMBXILADD,   DRV_ECONFIG,    "refused (exception 02: illegal data address)",      false, false},
    {EMBXILVAL,   DRV_EREFUSED,   "refused (exception 03: illegal data value)",        false, false},
    {EMBXSFAIL,   DRV_EFAULT,     "instrument fault (exception 04: server device",     false, false},
    {EMBXACK,     DRV__EACCEPTED, "accepted, not done yet (exception 05: acknowledge", false, false},
    {EMBXSBUSY,   DRV_EBUSY,      "busy (exception 06: server device busy)",           false, false},
    {EMBXNACK,    DRV_EREFUSED,   "refused (exception 07: negative acknowledge)",      false, false},
    {EMBXMEMPAR,  DRV_EFAULT,     "instrument fault (exception 08: memory parity",     false, false},
    {EMBXGPATH,   DRV_ELINK,      "link lost (exception 0A: gateway path unavailable", true,  false},
    {EMBXGTAR,    DRV_ETIMEDOUT,  "no answer (exception 0B: gateway target failed",    false, true },
    {ETIMEDOUT,   DRV_ETIMEDOUT,  "no answer (time-out)",                              false, true },
    {EMBBADCRC,   DRV_EPROTO,     "garbled answer",                                    false, true },
    {EMBBADDATA,  DRV_EPROTO,     "garbled answer",                                    false, true },
    {EMBBADSLAVE, DRV_EPROTO,     "garbled answer",                                    false, true },
    {EMBMDATA,    DRV_EPROTO,     "garbled answer",                                    false, true },
    {ECONNRESET,  DRV_ELINK,      "link lost",                                         true,  false},
    {EIO,         DRV_ELINK,      "link lost",                                         true,  false},
};

static void test_mb_error_classifies_every_exception_and_library_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct mb_case *c = &cases[i];
        for (int rtu = 0; rtu < 2; rtu++) {
            struct drv drv;
            struct ll_error err = {0};
            memset(&drv, 0, sizeof(drv));
            drv.connected = true;
            drv.mb_sync_addr = rtu ? 1 : -1;
            int r = drv__mb_error(&drv, c->err, "reading holding registers 1-1", &err);
            if (r != c->want || strstr(err.msg, c->text) == NULL)
                fail_msg("case %zu (%s): got %d '%s', want %d '%s'",
                         i,
                         rtu ? "RTU" : "TCP",
                         r,
                         err.msg,
                         c->want,
                         c->text);
            assert_int_equal(err.code, r);
            /* 01/02: the message says what to fix */
            if (r == DRV_ECONFIG)
                assert_non_null(strstr(err.msg,
                                       "a configuration error: the instrument does not "
                                       "have this"));
            assert_non_null(strstr(err.msg, "reading holding registers 1-1: "));
            assert_int_equal(drv.connected, !c->disconnects);
            assert_int_equal(drv.mb_unsynced, rtu && c->unsyncs_rtu);
        }
    }
}

/* F10: on Modbus TCP a connection that leaves DRV__TCP_MUTE_RECONNECT requests in a row
 * unanswered is given up (half-open); any answer in between starts the count again; RTU
 * keeps its line (it resynchronises instead). */
static void test_mb_tcp_timeouts_in_a_row_give_the_connection_up(void **state)
{
    struct ll_error err = {0};
    struct drv drv;
    (void)state;

    memset(&drv, 0, sizeof(drv));
    drv.connected = true;
    drv.mb_sync_addr = -1;
    for (int i = 1; i < DRV__TCP_MUTE_RECONNECT; i++) {
        assert_int_equal(drv__mb_error(&drv, ETIMEDOUT, "reading", &err), DRV_ETIMEDOUT);
        assert_true(drv.connected);
    }
    assert_int_equal(drv__mb_error(&drv, EMBXSBUSY, "reading", &err), DRV_EBUSY); /* an answer */
    for (int i = 1; i < DRV__TCP_MUTE_RECONNECT; i++)
        drv__mb_error(&drv, ETIMEDOUT, "reading", &err);
    assert_true(drv.connected);
    assert_int_equal(drv__mb_error(&drv, ETIMEDOUT, "reading", &err), DRV_ETIMEDOUT);
    assert_false(drv.connected);
    assert_int_equal(drv.mb_timeouts, 0);

    memset(&drv, 0, sizeof(drv));
    drv.connected = true;
    drv.mb_sync_addr = 1; /* RTU */
    for (int i = 0; i < 2 * DRV__TCP_MUTE_RECONNECT; i++)
        drv__mb_error(&drv, ETIMEDOUT, "reading", &err);
    assert_true(drv.connected);
}

static void test_mb_refusals_are_the_final_answers(void **state)
{
    (void)state;
    assert_true(drv__mb_refusal(DRV_EREFUSED));
    assert_true(drv__mb_refusal(DRV_ECONFIG));
    assert_true(drv__mb_refusal(DRV_EFAULT));
    assert_false(drv__mb_refusal(DRV_EBUSY));
    assert_false(drv__mb_refusal(DRV__EACCEPTED));
    assert_false(drv__mb_refusal(DRV_ETIMEDOUT));
    assert_false(drv__mb_refusal(DRV_EPROTO));
    assert_false(drv__mb_refusal(DRV_ELINK));
    assert_false(drv__mb_refusal(0));
    assert_string_equal(drv_error_kind(DRV_ECONFIG),
                        "configuration error (fix the lab definition)");
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mb_error_classifies_every_exception_and_library_error),
        cmocka_unit_test(test_mb_refusals_are_the_final_answers),
        cmocka_unit_test(test_mb_tcp_timeouts_in_a_row_give_the_connection_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

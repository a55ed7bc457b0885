/* engine, instrument faults (reliability.md X5; docs/daemon.md "Instrument faults"): the
 * table that says which failures of a step make its instrument unusable (the campaigns using
 * it pause) and which are about that step or sample alone (the campaign goes on), at the
 * start of a step and while it runs. The pause itself, the safe state and the resume run
 * against labsim in tests/integration/test_daemon_instrument_fault.py. Also the operator's
 * reset of one instrument through the engine (engine_instrument_op): what it refuses, and its
 * outcome as an instrument.reset event (the whole path against labsim:
 * tests/integration/test_daemon_instrument_reset.py). */
#include "daemon/engine.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"
#include "ll_test.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_engine_fault_unusable_table(void **state)
{
    (void)state;
    static const struct {
        int code;
        int at_start, running; /* want */
        const char *why;
    } cases[] = {
        {DRV_EFAULT,    1, 1, "the instrument reports a fault"                                        },
        {DRV_EREFUSED,  0, 1, "refused a step: the step's; stopped by an interlock: its"              },
        {DRV_ESTEPTIME, 1, 1, "ran past step_timeout_s"                                               },
        {DRV_ELINK,     1, 1, "link down through the retries"                                         },
        {DRV_ETIMEDOUT, 1, 1, "no answer through the retries"                                         },
        {DRV_EPROTO,    1, 1, "garbled answers through the retries"                                   },
        {DRV_ECONFIG,   1, 1, "Modbus 01/02: the register map does not fit the instrument"            },
        {DRV_ELIMIT,    0, 0, "nothing sent: our limit"                                               },
        {-EINVAL,       0, 0, "nothing sent: our step"                                                },
        {-ENOMEM,       0, 0, "ours"                                                                  },
        {DRV_EBUSY,     0, 1, "not listed: a start is tried again; a stopped step is the instrument's"},
        {-EPERM,        0, 1, "not listed: likewise"                                                  },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int s = engine_fault_unusable(0, cases[i].code),
            r = engine_fault_unusable(1, cases[i].code);
        if (s != cases[i].at_start || r != cases[i].running)
            fail_msg("case %zu (%s, %s): at start %d, running %d; want %d, %d",
                     i,
                     drv_error_kind(cases[i].code),
                     cases[i].why,
                     s,
                     r,
                     cases[i].at_start,
                     cases[i].running);
    }
}

/* The newest event: its kind, level and message into the buffers; 0 or -1 (none). */
static int last_event(struct store *store, char *kind, size_t nk, int *level, char *msg, size_t nm)
{
    struct ll_error err = {0};
    json_t *evs = store_events_json(store, 0, 1, &err);
    json_t *ev = json_array_get(evs, 0);
    int r = ev != NULL ? 0 : -1;
    if (ev != NULL) {
        snprintf(kind, nk, "%s", json_string_value(json_object_get(ev, "kind")));
        snprintf(msg, nm, "%s", json_string_value(json_object_get(ev, "message")));
        *level = (int)json_integer_value(json_object_get(ev, "level"));
    }
    json_decref(evs);
    return r;
}

/* engine_instrument_op: an unknown instrument or op is refused with a message naming the
 * instruments; a reset goes to the worker at once, a second one while the first is with the
 * worker is refused (-EALREADY); its completion is an instrument.reset event naming the
 * instrument and the driver's message (here an error: the coater's serial device does not
 * exist, so the worker cannot open it), after which a reset is accepted again. */
static void test_engine_instrument_reset(void **state)
{
    (void)state;
    char db[512];
    snprintf(db, sizeof(db), "%s/instrument-reset.db", ll_test_tmpdir());
    unlink(db);
    struct ll_error err = {0};
    struct store *store = NULL;
    struct labconf *lab = NULL;
    struct engine *engine = NULL;
    if (store_open(db, &store, &err) < 0 || labconf_load_default(&lab, &err) < 0)
        fail_msg("%s", err.msg);
    int ci = labconf_instrument_index(lab, "coater");
    assert_true(ci >= 0);
    snprintf(lab->instruments[ci].device,
             sizeof(lab->instruments[ci].device),
             "%s/no-such-tty",
             ll_test_tmpdir());
    struct engine_options eo = {.store = store, .lab = lab, .time_scale = 1.0};
    if (engine_new(&eo, &engine, &err) < 0)
        fail_msg("%s", err.msg);

    assert_int_equal(engine_instrument_op(engine, "nosuch", "reset", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no instrument 'nosuch'"));
    assert_non_null(strstr(err.msg, "coater"));
    assert_int_equal(engine_instrument_op(engine, NULL, "reset", &err), -ENOENT);
    assert_int_equal(engine_instrument_op(engine, "coater", "explode", &err), -EINVAL);
    assert_int_equal(engine_instrument_op(engine, "coater", NULL, &err), -EINVAL);

    ll_error_clear(&err);
    assert_int_equal(engine_instrument_op(engine, "coater", "reset", &err), 0);
    assert_int_equal(engine_instrument_op(engine, "coater", "reset", &err), -EALREADY);

    int fds[8], n = engine_fds(engine, fds, 8), level = 0;
    char kind[64] = "", msg[1024] = "";
    for (int tries = 0; tries < 200 && strcmp(kind, "instrument.reset") != 0; tries++) {
        struct pollfd p[8];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        assert_true(poll(p, (nfds_t)n, 100) >= 0);
        assert_int_equal(engine_on_completions(engine, &err), 0);
        last_event(store, kind, sizeof(kind), &level, msg, sizeof(msg));
    }
    assert_string_equal(kind, "instrument.reset");
    assert_int_equal(level, 3); /* error: the device could not be opened */
    assert_non_null(strstr(msg, "coater: reset FAILED: "));
    assert_non_null(strstr(msg, "no-such-tty"));
    /* the first one completed: another is accepted */
    assert_int_equal(engine_instrument_op(engine, "coater", "reset", &err), 0);

    engine_free(&engine);
    store_close(&store);
    labconf_free(&lab);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_fault_unusable_table),
        cmocka_unit_test(test_engine_instrument_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

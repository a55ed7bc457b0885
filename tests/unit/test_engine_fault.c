/* engine, instrument faults (reliability.md X5; docs/daemon.md "Instrument faults"): the
 * table that says which failures of a step make its instrument unusable (the campaigns using
 * it pause) and which are about that step or sample alone (the campaign goes on), at the
 * start of a step and while it runs. The pause itself, the safe state and the resume run
 * against labsim in tests/integration/test_daemon_instrument_fault.py. */
#include "daemon/engine.h"
#include "drivers/driver.h"
#include "ll_test.h"

#include <errno.h>
#include <stdio.h>

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

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_fault_unusable_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ll_test_labsim — labsim as a child process for the C integration tests: the embedded
 * default lab with a robot port labsim picks, in a runtime folder under the test's temporary
 * folder. */
#ifndef LL_TEST_LABSIM_H
#define LL_TEST_LABSIM_H

#include "drivers/labconf.h"

#include <stddef.h>
#include <sys/types.h>

/* Starts $LABSIM on the default lab (every instrument's poll_ms set to poll_ms when > 0) in
 * TMP/rt at --speed speed, its stderr in TMP/labsim.log; waits up to 15 s for it to be ready;
 * loads the lab it wrote (TMP/rt/lab.conf: real ports and pty paths) into *ret_lab and the
 * runtime folder's path into rt. Returns labsim's pid, or -1 (nothing left running). */
pid_t ll_test_labsim_start(
    int speed, int poll_ms, char *rt, size_t rt_cap, struct labconf **ret_lab);

/* Stops it (SIGTERM) and waits for it; nothing for pid <= 0. */
void ll_test_labsim_stop(pid_t pid);

#endif

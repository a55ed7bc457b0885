/* ll_test_labsim — labsim as a child process for the C integration tests: the embedded
 * default lab with a robot port labsim picks, in a runtime folder under the test's temporary
 * folder. */
#ifndef LL_TEST_LABSIM_H
#define LL_TEST_LABSIM_H

#include "drivers/driver.h"
#include "drivers/labconf.h"

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

/* Starts $LABSIM on the default lab (every instrument's poll_ms set to poll_ms when > 0; the
 * furnace on map furnace_map unless NULL) in TMP/rt at --speed speed, its stderr in
 * TMP/labsim.log; waits up to 15 s for it to be ready; loads the lab it wrote (TMP/rt/lab.conf:
 * real ports and pty paths) into *ret_lab and the runtime folder's path into rt. Returns
 * labsim's pid, or -1 (nothing left running). */
pid_t ll_test_labsim_start(int speed,
                           int poll_ms,
                           const char *furnace_map,
                           char *rt,
                           size_t rt_cap,
                           struct labconf **ret_lab);

/* The same on the lab definition in the file lab_path (NULL: the embedded default). */
pid_t ll_test_labsim_start_lab(const char *lab_path,
                               int speed,
                               int poll_ms,
                               const char *furnace_map,
                               char *rt,
                               size_t rt_cap,
                               struct labconf **ret_lab);

/* One request (consumed) on the control socket of the labsim running in rt; its parsed
 * answer (json_decref it). Fails the test when there is none within 5 s. */
json_t *ll_test_labsim_control(void *zctx, const char *rt, json_t *req);

/* Adds fault rules to that labsim (docs/instruments.md §6); fails the test if it refuses. */
void ll_test_labsim_fault_rule(void *zctx, const char *rt, const char *rule);

/* labsim's count counts[group][key] (group NULL: counts[key]); 0 when absent. */
long ll_test_labsim_count(void *zctx, const char *rt, const char *group, const char *key);

/* The integer `key` of labsim's status (e.g. "furnace_program"); 0 when absent. */
long ll_test_labsim_status_int(void *zctx, const char *rt, const char *key);

/* drv_open() of instrument `name` of lab; fails the test if it cannot be opened. */
struct drv *ll_test_open_instrument(const struct labconf *lab, const char *name);

/* Stops it (SIGTERM) and waits for it; nothing for pid <= 0. */
void ll_test_labsim_stop(pid_t pid);

#endif

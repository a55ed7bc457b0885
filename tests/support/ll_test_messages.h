/* ll_test_messages — station messages for tests and benchmarks (docs/protocol.md v1).
 *
 * Kept apart from ll_test.h so that benchmark programs, which do not use cmocka, can build
 * the same messages the tests use.
 */
#ifndef LL_TEST_MESSAGES_H
#define LL_TEST_MESSAGES_H

#include <stdint.h>

/* A `jv` measurement from `station` with sequence number seq for request and sample: a
 * reverse and a forward sweep of 131 points from -0.1 V to 1.2 V of an ideal diode
 * (n = 1.5, J0 = 1e-12 mA/cm²) with short-circuit current jsc_ma_cm2, one sun, 0.09 cm².
 * Its time is now (UTC, whole seconds). Returns compact JSON (malloc'd; the caller frees it with
 * free()) or NULL if out of memory. */
char *ll_test_jv_message(
    const char *station, int64_t seq, const char *request, const char *sample, double jsc_ma_cm2);

/* The same with the message time time_utc (RFC 3339, e.g. "2019-01-01T00:00:00Z"). */
char *ll_test_jv_message_at(const char *station,
                            int64_t seq,
                            const char *request,
                            const char *sample,
                            double jsc_ma_cm2,
                            const char *time_utc);

#endif

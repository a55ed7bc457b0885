/* fuzz_measurement — libFuzzer target for the station-message parser (models/measurement.h),
 * the parser labloopd runs on every frame a station sends. Every input that parses is also
 * analysed and serialised, so the analysis code meets odd but valid data (few points,
 * extreme values, unsorted curves) too. Must never crash, leak or hang; the return values
 * only need to be consistent: success gives a measurement, failure a message.
 */
#include "models/analysis.h"
#include "models/measurement.h"

#include <gsl/gsl_errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* libFuzzer's main calls this once: GSL's error handler off, as labloopd's main does (the
 * analysis reports a failed fit as an error; GSL's default handler would abort). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gsl_set_error_handler_off();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct measurement *m = NULL;
    struct analysis *a = NULL;
    struct ll_error err = {0};

    (void)measurement_seq_hint((const char *)data, size);
    if (measurement_parse((const char *)data, size, &m, &err) < 0) {
        if (m != NULL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (m == NULL)
        abort();
    if (measurement_type(m) == MEASUREMENT_TYPE_MEASUREMENT) {
        if (analysis_run(m, &a, &err) == 0) {
            char *text = analysis_to_json(a);
            double x;
            (void)analysis_get(a, "pce_pct", &x);
            free(text);
            analysis_free(&a);
        } else if (a != NULL || err.msg[0] == '\0') {
            abort();
        }
    }
    measurement_free(&m);
    return 0;
}

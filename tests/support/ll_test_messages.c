/* ll_test_messages — see ll_test_messages.h. */
#include "ll_test_messages.h"

#include <jansson.h>
#include <math.h>
#include <time.h>

char *ll_test_jv_message(
    const char *station, int64_t seq, const char *request, const char *sample, double jsc_ma_cm2)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    return ll_test_jv_message_at(station, seq, request, sample, jsc_ma_cm2, now);
}

char *ll_test_jv_message_at(const char *station,
                            int64_t seq,
                            const char *request,
                            const char *sample,
                            double jsc_ma_cm2,
                            const char *time_utc)
{
    json_t *v_rev = json_array(), *j_rev = json_array(), *v_fwd = json_array(),
           *j_fwd = json_array();
    for (int i = 0; i <= 130; i++) {
        double v = -0.1 + 0.01 * i;
        double j = jsc_ma_cm2 - 1e-12 * (exp(v / (1.5 * 0.025852)) - 1.0);
        json_array_append_new(v_fwd, json_real(v));
        json_array_append_new(j_fwd, json_real(j));
        json_array_insert_new(v_rev, 0, json_real(v));
        json_array_insert_new(j_rev, 0, json_real(j));
    }
    json_t *msg =
        json_pack("{s:i,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:{s:f,s:f,s:[{s:s,s:o,s:o},{s:s,s:o,s:o}]}}",
                  "v",
                  1,
                  "type",
                  "measurement",
                  "station",
                  station,
                  "seq",
                  (json_int_t)seq,
                  "request",
                  request,
                  "kind",
                  "jv",
                  "sample",
                  sample,
                  "time",
                  time_utc,
                  "data",
                  "irradiance_mw_cm2",
                  100.0,
                  "area_cm2",
                  0.09,
                  "sweeps",
                  "direction",
                  "reverse",
                  "voltage_v",
                  v_rev,
                  "current_ma_cm2",
                  j_rev,
                  "direction",
                  "forward",
                  "voltage_v",
                  v_fwd,
                  "current_ma_cm2",
                  j_fwd);
    if (msg == NULL)
        return NULL;
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    return text;
}

/* fuzz_obs_csv — the observations CSV reader on arbitrary bytes: it must return 0 or -EINVAL,
 * never crash, read out of bounds or leak, and a table it returns must hold finite numbers
 * only, except NaN in an absent optional column. The first byte picks the wanted columns
 * (parameters only, or with objectives) and whether the last objective is optional (a
 * computed objective). */
#include "planner/obs_csv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const cols[] = {
        "fa", "cs", "iodide", "anneal_c", "anneal_min", "spin_rpm", "pce_pct", "log10_t80_h"};
    size_t n_cols = size > 0 && (data[0] & 1) ? 6 : 8;
    size_t n_opt = size > 0 && (data[0] & 2) ? 1 : 0;
    struct obs_csv t;
    struct ll_error err;
    int r = obs_csv_parse((const char *)data, size, "fuzz.csv", cols, n_cols, n_opt, &t, &err);
    if (r == 0) {
        for (size_t i = 0; i < t.n_rows * t.n_cols; i++) {
            int absent = t.col_pos[i % t.n_cols] == OBS_CSV_ABSENT;
            if (absent ? !isnan(t.values[i]) : !isfinite(t.values[i]))
                abort();
        }
        if (t.n_fields + (t.col_pos[n_cols - 1] == OBS_CSV_ABSENT) != t.n_cols)
            abort();
        obs_csv_free(&t);
    } else if (t.values != NULL || err.msg[0] == '\0') {
        abort();
    }
    return 0;
}

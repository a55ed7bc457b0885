/* test_obs_csv — the observations CSV reader: good files in any column order, and every kind
 * of bad file refused with "NAME:LINE:COLUMN: problem" naming the right line and column. */
#include "ll_test.h"
#include "planner/obs_csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const cols[] = {"fa", "cs", "pce_pct"};

static void test_obs_csv_reads_any_column_order(void **state)
{
    (void)state;
    const char *text = "pce_pct, \"fa\" ,cs\r\n"
                       "18.5,0.5,0.05\r\n"
                       "\n"
                       "  1e1 ,  1 , 0\n"
                       "-0.25,0.1,1.5e-2";
    struct obs_csv t;
    struct ll_error err;
    int r = obs_csv_parse(text, strlen(text), "obs.csv", cols, 3, 0, &t, &err);
    if (r != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(t.n_rows, 3);
    ll_assert_close(t.values[0], 0.5, 0, 0);
    ll_assert_close(t.values[1], 0.05, 0, 0);
    ll_assert_close(t.values[2], 18.5, 0, 0);
    ll_assert_close(t.values[3], 1, 0, 0);
    ll_assert_close(t.values[5], 10, 0, 0);
    ll_assert_close(t.values[8], -0.25, 0, 0);
    assert_int_equal(t.line[0], 2);
    assert_int_equal(t.line[1], 4);
    assert_int_equal(t.line[2], 5);
    obs_csv_free(&t);
    obs_csv_free(&t); /* twice is harmless */
}

static void test_obs_csv_header_only_is_no_rows(void **state)
{
    (void)state;
    const char *text = "fa,cs,pce_pct\n";
    struct obs_csv t;
    assert_int_equal(obs_csv_parse(text, strlen(text), "o.csv", cols, 3, 0, &t, NULL), 0);
    assert_int_equal(t.n_rows, 0);
    obs_csv_free(&t);
}

/* The last n_optional columns (computed objectives) may be left out: NaN then; given, they are
 * read like any other; the required ones stay required. */
static void test_obs_csv_optional_columns(void **state)
{
    (void)state;
    struct obs_csv t;
    struct ll_error err;
    const char *without = "cs,fa\n0.1,0.5\n0.2,0.6\n";
    assert_int_equal(obs_csv_parse(without, strlen(without), "o.csv", cols, 3, 1, &t, &err), 0);
    assert_int_equal(t.n_rows, 2);
    assert_int_equal(t.n_fields, 2);
    assert_true(t.col_pos[2] == OBS_CSV_ABSENT);
    ll_assert_close(t.values[3], 0.6, 0, 0);
    ll_assert_close(t.values[4], 0.2, 0, 0);
    assert_true(isnan(t.values[2]) && isnan(t.values[5]));
    obs_csv_free(&t);
    const char *with = "pce_pct,cs,fa\n7.5,0.1,0.5\n";
    assert_int_equal(obs_csv_parse(with, strlen(with), "o.csv", cols, 3, 1, &t, &err), 0);
    ll_assert_close(t.values[2], 7.5, 0, 0);
    obs_csv_free(&t);
    const char *short_row = "cs,fa\n0.1,0.5,7\n";
    assert_int_equal(obs_csv_parse(short_row, strlen(short_row), "o.csv", cols, 3, 1, &t, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "o.csv:2:1: too many fields, the header has 2"));
    const char *no_fa = "cs,pce_pct\n0.1,7\n";
    assert_int_equal(obs_csv_parse(no_fa, strlen(no_fa), "o.csv", cols, 3, 1, &t, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "missing column 'fa'"));
    assert_int_equal(obs_csv_parse(no_fa, strlen(no_fa), "o.csv", cols, 3, 3, &t, &err), -EINVAL);
}

static const struct bad_case {
    const char *text;
    const char *where; /* expected message prefix after "obs.csv:" */
    const char *phrase;
    size_t len; /* bytes of text, 0 for strlen (set for embedded NULs) */
} bad_cases[] = {
    {"",                            "1:",    "empty file",                    0 },
    {"  \n\n",                      "1:",    "empty file",                    0 },
    {"fa,cs\n1,2\n",                "1:",    "missing column 'pce_pct'",      0 },
    {"fa,cs,pce_pct,extra\n",       "1:15:", "unknown column 'extra'",        0 },
    {"fa,cs,fa,pce_pct\n",          "1:7:",  "appears twice",                 0 },
    {"fa,,cs,pce_pct\n",            "1:4:",  "empty column name",             0 },
    {"fa,cs,pce_pct\n1,2,3\n1,2\n", "3:1:",  "too few fields",                0 },
    {"fa,cs,pce_pct\n1,2,3,4\n",    "2:1:",  "too many fields",               0 },
    {"fa,cs,pce_pct\n1,abc,3\n",    "2:3:",  "'abc' is not a number",         0 },
    {"fa,cs,pce_pct\n1,2,3x\n",     "2:5:",  "'3x' is not a number",          0 },
    {"fa,cs,pce_pct\n1,NaN,3\n",    "2:3:",  "not a finite number",           0 },
    {"fa,cs,pce_pct\n1,2,-inf\n",   "2:5:",  "not a finite number",           0 },
    {"fa,cs,pce_pct\n1,2,1e999\n",  "2:5:",  "not a finite number",           0 },
    {"fa,cs,pce_pct\n1, ,3\n",      "2:3:",  "empty value",                   0 },
    {"fa,cs,pce_pct\n1,2\0003,4\n", "2:3:",  "not a number",                  22},
    {"\nfa,cs,pce_pct\n",           "1:",    "first line must be the header", 0 },
};

static void test_obs_csv_bad_files_name_line_and_column(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct obs_csv t;
        struct ll_error err;
        char prefix[64];
        const char *text = bad_cases[i].text;
        size_t len = bad_cases[i].len ? bad_cases[i].len : strlen(text);
        int r = obs_csv_parse(text, len, "obs.csv", cols, 3, 0, &t, &err);
        if (r == 0)
            fail_msg("case %zu parsed but should not", i);
        assert_int_equal(r, -EINVAL);
        assert_null(t.values);
        snprintf(prefix, sizeof(prefix), "obs.csv:%s", bad_cases[i].where);
        if (strncmp(err.msg, prefix, strlen(prefix)) != 0 ||
            strstr(err.msg, bad_cases[i].phrase) == NULL)
            fail_msg("case %zu: message '%s' lacks '%s' or '%s'",
                     i,
                     err.msg,
                     prefix,
                     bad_cases[i].phrase);
    }
}

static void test_obs_csv_file_errors(void **state)
{
    (void)state;
    struct obs_csv t;
    struct ll_error err;
    assert_int_equal(obs_csv_read_file("/nonexistent/obs.csv", cols, 3, 0, &t, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/obs.csv"));
    char path[512];
    snprintf(path, sizeof(path), "%s/obs.csv", ll_test_tmpdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("fa,cs,pce_pct\n0.5,0.1,20\n0.5,0.1,zz\n", f);
    fclose(f);
    assert_int_equal(obs_csv_read_file(path, cols, 3, 0, &t, &err), -EINVAL);
    assert_non_null(strstr(err.msg, ":3:9: column 'pce_pct': 'zz' is not a number"));
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obs_csv_reads_any_column_order),
        cmocka_unit_test(test_obs_csv_header_only_is_no_rows),
        cmocka_unit_test(test_obs_csv_optional_columns),
        cmocka_unit_test(test_obs_csv_bad_files_name_line_and_column),
        cmocka_unit_test(test_obs_csv_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

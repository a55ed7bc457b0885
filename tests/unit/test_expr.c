/* ll_expr: the expression evaluator shared by recipes and computed objectives (table-driven
 * values and errors that name the column). */
#include "common/ll_expr.h"
#include "ll_test.h"

#include <errno.h>
#include <string.h>

static const char *const names[] = {"a", "b", "long_name"};
static const double values[] = {2.0, 0.5, 10.0};

static void test_expr_values(void **state)
{
    (void)state;
    struct {
        const char *text;
        double want;
    } cases[] = {
        {"1",                  1.0  },
        {"1 + 2 * 3",          7.0  },
        {"(1 + 2) * 3",        9.0  },
        {"10 / 4",             2.5  },
        {"10 - 4 - 3",         3.0  },
        {"100 / 10 / 5",       2.0  },
        {"-${a}",              -2.0 },
        {"--3",                3.0  },
        {"${a} * (1 - ${b})",  1.0  },
        {"=${long_name}/${a}", 5.0  },
        {"1.5e2 + .5",         150.5},
        {"  ( ( ${a} ) )  ",   2.0  },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double v = -1.0;
        struct ll_error err;
        ll_error_clear(&err);
        if (ll_expr_eval(cases[i].text, names, values, 3, &v, &err) != 0)
            fail_msg("'%s': %s", cases[i].text, err.msg);
        ll_assert_close(v, cases[i].want, 1e-15, 0.0);
    }
}

static void test_expr_errors_name_the_column(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *msg_part;
    } cases[] = {
        {"1 +",            "unexpected end"          },
        {"${nope} + 1",    "unknown parameter 'nope'"},
        {"(1 + 2",         "expected ')'"            },
        {"1 / (${a} - 2)", "division by zero"        },
        {"1 2",            "unexpected text"         },
        {"${a",            "missing '}'"             },
        {"$a",             "expected '{'"            },
        {"abc",            "column 1"                },
        {"",               "unexpected end"          },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double v = 0;
        struct ll_error err;
        ll_error_clear(&err);
        assert_int_equal(ll_expr_eval(cases[i].text, names, values, 3, &v, &err), -EINVAL);
        if (strstr(err.msg, cases[i].msg_part) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].text, err.msg, cases[i].msg_part);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr_values),
        cmocka_unit_test(test_expr_errors_name_the_column),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

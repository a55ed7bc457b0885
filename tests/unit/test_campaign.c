/* test_campaign — the campaign-file loader: good files load to the right values, and every
 * kind of bad file is refused with "NAME:LINE: problem" naming the right line. */
#include "ll_test.h"
#include "planner/campaign.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void test_campaign_loads_shipped_problem_files(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        size_t n_params, n_objectives;
        int initial, budget;
    } files[] = {
        {"config/problems/perovskite.conf",      6, 2, 14, 54},
        {"config/problems/branincurrin.conf",    2, 2, 6,  46},
        {"config/problems/dtlz2_2.conf",         6, 2, 14, 54},
        {"config/problems/dtlz2_3.conf",         6, 3, 14, 54},
        {"config/problems/perovskite_cost.conf", 6, 3, 14, 54},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct campaign c;
        struct ll_error err;
        int r = campaign_load_file(ll_test_source_path(files[i].file), &c, &err);
        if (r != 0)
            fail_msg("%s: %s", files[i].file, err.msg);
        assert_int_equal(c.n_params, files[i].n_params);
        assert_int_equal(c.n_objectives, files[i].n_objectives);
        assert_int_equal(c.initial, files[i].initial);
        assert_int_equal(c.budget, files[i].budget);
        assert_int_equal(c.batch, 4);
        assert_string_equal(c.acquisition, "ehvi");
        assert_int_equal(c.has_recipe, 0);
    }
}

static void test_campaign_values_of_a_full_file(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "campaign: {\n"
                       "  name = \"mix\"; batch = 3; initial = 5; budget = 20; seed = 42;\n"
                       "  acquisition = \"ei\";\n"
                       "  parameters = (\n"
                       "    { name = \"a\"; low = 0.1; high = 0.9; unit = \"frac\"; },\n"
                       "    { name = \"n\"; low = 1; high = 8; integer = true; },\n"
                       "    { name = \"t\"; levels = [ 150.0, 100.0, 120.0 ]; }\n"
                       "  );\n"
                       "  objectives = ( { name = \"cost\"; goal = \"min\"; ref = 7; from = "
                       "\"calc.cost\"; } );\n"
                       "  constraints = ( { coef = { a = 1.0; n = 0.1; }; le = 1.2; },\n"
                       "                  { coef = { a = 2.0; }; ge = 0.3; } );\n"
                       "  recipe = ( { step = \"coat\"; rpm = \"${n}\"; } );\n"
                       "  approval = true;\n"
                       "};\n";
    struct campaign c;
    struct ll_error err;
    int r = campaign_load_string(text, "mix.conf", &c, &err);
    if (r != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(c.name, "mix");
    assert_int_equal(c.batch, 3);
    assert_int_equal(c.initial, 5);
    assert_int_equal(c.budget, 20);
    assert_int_equal(c.seed, 42);
    assert_string_equal(c.acquisition, "ei");
    assert_int_equal(c.params[0].kind, CAMPAIGN_PARAM_CONTINUOUS);
    assert_string_equal(c.params[0].unit, "frac");
    assert_int_equal(c.params[1].kind, CAMPAIGN_PARAM_INTEGER);
    ll_assert_close(c.params[1].high, 8, 0, 0);
    assert_int_equal(c.params[2].kind, CAMPAIGN_PARAM_LEVELS);
    assert_int_equal(c.params[2].n_levels, 3);
    ll_assert_close(c.params[2].levels[0], 100, 0, 0); /* sorted */
    ll_assert_close(c.params[2].low, 100, 0, 0);
    ll_assert_close(c.params[2].high, 150, 0, 0);
    assert_int_equal(c.objectives[0].maximise, 0);
    ll_assert_close(c.objectives[0].ref, 7, 0, 0);
    assert_string_equal(c.objectives[0].from, "calc.cost");
    assert_int_equal(c.n_constraints, 2);
    ll_assert_close(c.constraints[0].coef[0], 1.0, 0, 0);
    ll_assert_close(c.constraints[0].coef[1], 0.1, 0, 0);
    ll_assert_close(c.constraints[0].rhs, 1.2, 0, 0);
    /* ge is stored as -a.x <= -b */
    ll_assert_close(c.constraints[1].coef[0], -2.0, 0, 0);
    ll_assert_close(c.constraints[1].rhs, -0.3, 0, 0);
    assert_int_equal(c.constraints[1].equality, 0);
    assert_int_equal(c.has_recipe, 1);
}

static void test_campaign_defaults(void **state)
{
    (void)state;
    const char *text = "campaign: { parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
                       "objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } ); };\n";
    struct campaign c;
    assert_int_equal(campaign_load_string(text, "d.conf", &c, NULL), 0);
    assert_int_equal(c.batch, 1);
    assert_int_equal(c.initial, 4); /* 2 (d + 1) */
    assert_int_equal(c.seed, 1);
    assert_string_equal(c.acquisition, "ehvi");
}

/* Each bad file: its text, the line the message must name, a phrase it must hold. */
static const struct bad_case {
    const char *text;
    int line;
    const char *phrase;
} bad_cases[] = {
    {"",                                                                                                 1, "no 'campaign'"            },
    {"campaign: {\n batch = = 4;\n};\n",                                                                 2, "syntax"                   },
    {"campaign = 3;\n",                                                                                  1, "must be a group"          },
    {"campaign: {\n paramters = ();\n};\n",                                                              2, "did you mean 'parameters'"},
    {"campaign: {\n objectives = ( { name = \"y\"; goal = \"max\"; ref = 1; } );\n};\n",
     1,                                                                                                     "missing 'parameters'"     },
    {"campaign: {\n parameters = (\n  { name = \"a\"; low = 1; high = 0; }\n );\n};\n",
     3,                                                                                                     "bounds inverted"          },
    {"campaign: {\n parameters = (\n  { name = \"a\"; low = 1; }\n );\n};\n",                            3, "missing 'high'"           },
    {"campaign: {\n parameters = (\n  { name = \"a\"; low = 0; high = 1; },\n"
     "  { name = \"a\"; low = 0; high = 2; }\n );\n};\n",                                           4,
     "defined twice"                                                                                                                   },
    {"campaign: {\n parameters = (\n  { name = \"a\"; low = 0; hihg = 1; }\n );\n};\n",
     3,                                                                                                     "unknown key 'hihg'"       },
    {"campaign: {\n parameters = (\n  { name = \"a\"; low = \"x\"; high = 1; }\n );\n};\n",
     3,                                                                                                     "must be a number"         },
    {"campaign: {\n parameters = (\n  { name = \"a\"; low = 0.5; high = 3; integer = true; }\n"
     " );\n};\n",                                                                                   3,
     "integral bounds"                                                                                                                 },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = (\n  { name = \"y\"; goal = \"maximum\"; ref = 1; }\n );\n};\n",                4,
     "unknown goal"                                                                                                                    },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = (\n  { name = \"y\"; goal = \"max\"; }\n );\n};\n",                             4,
     "missing 'ref'"                                                                                                                   },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = (\n  { name = \"a\"; goal = \"max\"; ref = 0; }\n );\n};\n",                    4,
     "name of a parameter"                                                                                                             },
    {"campaign: {\n batch = 0;\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n};\n",                         2,
     "out of range"                                                                                                                    },
    {"campaign: {\n budget = 10;\n initial = 11;\n"
     " parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n};\n",                         3,
     "out of range"                                                                                                                    },
    {"campaign: {\n acquisition = \"qehvi\";\n"
     " parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n};\n",                         2,
     "unknown acquisition"                                                                                                             },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n"
     " constraints = (\n  { coef = { b = 1.0; }; le = 1; }\n );\n};\n",                             5,
     "unknown parameter 'b'"                                                                                                           },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n"
     " constraints = (\n  { coef = { a = 1.0; }; le = 1; eq = 1; }\n );\n};\n",                     5,
     "exactly one of"                                                                                                                  },
    {"campaign: {\n parameters = (\n  { name = \"a,b\"; low = 0; high = 1; }\n );\n};\n",
     3,                                                                                                     "only letters"             },
    {"campaign: {\n parameters = (\n  { name = \"t\"; levels = [ 1.0 ]; }\n );\n};\n",                   3, "levels"                   },
    {"@include \"/etc/passwd\"\n",                                                                       1, "@include"                 },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; },\n"
     "  { name = \"c\"; goal = \"min\"; ref = 9;\n   expr = \"2 * ${b}\"; } );\n};\n",              5,
     "unknown parameter 'b'"                                                                                                           },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; },\n"
     "  { name = \"c\"; goal = \"min\"; ref = 9;\n   expr = \"1 / (${a} - 0.5)\"; } );\n};\n",      5,
     "division by zero"                                                                                                                },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; },\n"
     "  { name = \"c\"; goal = \"min\"; ref = 9; from = \"jv.x\";\n   expr = \"${a}\"; } );\n};\n", 5,
     "either 'from'"                                                                                                                   },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; },\n"
     "  { name = \"c\"; goal = \"min\"; ref = 9; expr = \"\"; } );\n};\n",                          4,
     "'expr' is empty"                                                                                                                 },
    {"campaign: {\n parameters = ( { name = \"a\"; low = 0; high = 1; } );\n"
     " objectives = ( { name = \"c\"; goal = \"min\"; ref = 9; expr = \"${a}\"; } );\n};\n",        3,
     "at least one must be measured"                                                                                                   },
};

/* A computed objective: loaded with its expression, evaluated at any point, refused for a
 * measured one; the measured objectives are unaffected. */
static void test_campaign_computed_objective(void **state)
{
    (void)state;
    const char *text = "campaign: {\n"
                       "  parameters = ( { name = \"a\"; low = 0; high = 1; },\n"
                       "                 { name = \"n\"; low = 1; high = 9; integer = true; } );\n"
                       "  objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; },\n"
                       "    { name = \"cost\"; goal = \"min\"; ref = 20;\n"
                       "      expr = \"2.5 + 3 * ${a} * ${n} - ${n} / 4\"; } );\n};\n";
    struct campaign c;
    struct ll_error err;
    if (campaign_load_string(text, "cost.conf", &c, &err) != 0)
        fail_msg("%s", err.msg);
    assert_false(campaign_objective_computed(&c, 0));
    assert_true(campaign_objective_computed(&c, 1));
    assert_false(campaign_objective_computed(&c, 2)); /* out of range */
    assert_string_equal(c.objectives[1].expr, "2.5 + 3 * ${a} * ${n} - ${n} / 4");
    double x[2] = {0.3, 7}, v = 0;
    assert_int_equal(campaign_objective_eval(&c, 1, x, &v, &err), 0);
    ll_assert_close(v, 2.5 + 3 * 0.3 * 7 - 7.0 / 4, 1e-15, 0.0);
    assert_int_equal(campaign_objective_eval(&c, 0, x, &v, &err), -EINVAL);
}

static void test_campaign_bad_files_name_the_line(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct campaign c;
        struct ll_error err;
        char prefix[64];
        int r = campaign_load_string(bad_cases[i].text, "bad.conf", &c, &err);
        if (r == 0)
            fail_msg("case %zu loaded but should not:\n%s", i, bad_cases[i].text);
        snprintf(prefix, sizeof(prefix), "bad.conf:%d: ", bad_cases[i].line);
        if (strncmp(err.msg, prefix, strlen(prefix)) != 0 ||
            strstr(err.msg, bad_cases[i].phrase) == NULL)
            fail_msg("case %zu: message '%s' lacks '%s' or '%s'",
                     i,
                     err.msg,
                     prefix,
                     bad_cases[i].phrase);
        assert_int_equal(c.n_params, 0); /* nothing half-loaded */
    }
}

static void test_campaign_missing_file(void **state)
{
    (void)state;
    struct campaign c;
    struct ll_error err;
    assert_int_equal(campaign_load_file("/nonexistent/x.conf", &c, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/x.conf"));
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_campaign_loads_shipped_problem_files),
        cmocka_unit_test(test_campaign_values_of_a_full_file),
        cmocka_unit_test(test_campaign_defaults),
        cmocka_unit_test(test_campaign_bad_files_name_the_line),
        cmocka_unit_test(test_campaign_computed_objective),
        cmocka_unit_test(test_campaign_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

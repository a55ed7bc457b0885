/* test_space — unit-cube scaling, discrete rounding and linear constraints of the search
 * space: round trips are exact, rounding gives allowed values, and feasibility repair always
 * lands inside the bounds and (within SPACE_FEAS_TOL) on the constraints. */
#include "ll_test.h"
#include "planner/campaign.h"
#include "planner/space.h"

#include <math.h>
#include <string.h>

static void load(const char *text, struct campaign *c)
{
    struct ll_error err;
    if (campaign_load_string(text, "space.conf", c, &err) != 0)
        fail_msg("%s", err.msg);
}

static const char *mixed = "campaign: {\n"
                           "  parameters = (\n"
                           "    { name = \"fa\"; low = 0.1; high = 1.0; },\n"
                           "    { name = \"cs\"; low = 0.0; high = 0.15; },\n"
                           "    { name = \"rpm\"; low = 2000; high = 6000; integer = true; },\n"
                           "    { name = \"t\"; levels = [ 80, 100, 150 ]; }\n"
                           "  );\n"
                           "  objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n"
                           "};\n";

static void test_space_unit_round_trip(void **state)
{
    (void)state;
    struct campaign c;
    struct space s;
    load(mixed, &c);
    space_init(&s, &c);
    assert_int_equal(s.d, 4);
    assert_true(s.has_discrete);
    double x[4] = {0.55, 0.075, 4000, 100}, u[4], back[4];
    space_to_unit(&s, x, u);
    ll_assert_close(u[0], 0.5, 1e-12, 1e-12);
    ll_assert_close(u[1], 0.5, 1e-12, 1e-12);
    ll_assert_close(u[2], 0.5, 1e-12, 1e-12);
    ll_assert_close(u[3], 20.0 / 70.0, 1e-12, 1e-12);
    space_from_unit(&s, u, back);
    for (int j = 0; j < 4; j++)
        ll_assert_close(back[j], x[j], 1e-12, 1e-12);
}

static void test_space_rounding_gives_allowed_values(void **state)
{
    (void)state;
    struct campaign c;
    struct space s;
    load(mixed, &c);
    space_init(&s, &c);
    unsigned long rng = 12345;
    for (int i = 0; i < 2000; i++) {
        double u[4], x[4], ur[4];
        for (int j = 0; j < 4; j++) {
            rng = rng * 6364136223846793005ul + 1442695040888963407ul;
            u[j] = -0.2 + 1.4 * (double)(rng >> 11) / 9007199254740992.0;
        }
        memcpy(ur, u, sizeof(u));
        space_round_unit(&s, ur);
        space_from_unit(&s, u, x);
        assert_true(x[0] >= 0.1 && x[0] <= 1.0);
        assert_true(x[1] >= 0.0 && x[1] <= 0.15);
        assert_true(x[2] == floor(x[2]) && x[2] >= 2000 && x[2] <= 6000);
        assert_true(x[3] == 80 || x[3] == 100 || x[3] == 150);
        for (int j = 0; j < 4; j++)
            assert_true(ur[j] >= 0 && ur[j] <= 1);
        /* rounding in the cube and in original units agree */
        double xr[4];
        space_from_unit(&s, ur, xr);
        ll_assert_close(xr[2], x[2], 0, 0);
        ll_assert_close(xr[3], x[3], 0, 0);
    }
    double x[4] = {0.1, 0.0, 2000, 80};
    size_t bad = 99;
    assert_true(space_in_bounds(&s, x, &bad));
    x[1] = 0.1500001;
    assert_false(space_in_bounds(&s, x, &bad));
    assert_int_equal(bad, 1);
}

static void test_space_constraints_repaired_randomly(void **state)
{
    (void)state;
    /* shares that sum to one, an inequality, and an integer that the repair must not move */
    const char *text = "campaign: {\n"
                       "  parameters = (\n"
                       "    { name = \"a\"; low = 0.0; high = 1.0; },\n"
                       "    { name = \"b\"; low = 0.0; high = 0.8; },\n"
                       "    { name = \"c\"; low = 0.1; high = 1.0; },\n"
                       "    { name = \"n\"; low = 1; high = 5; integer = true; }\n"
                       "  );\n"
                       "  objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n"
                       "  constraints = ( { coef = { a = 1.0; b = 1.0; c = 1.0; }; eq = 1.0; },\n"
                       "                  { coef = { a = 1.0; n = 0.1; }; le = 0.6; } );\n"
                       "};\n";
    struct campaign c;
    struct space s;
    load(text, &c);
    space_init(&s, &c);
    unsigned long rng = 99;
    int n_ok = 0;
    for (int i = 0; i < 3000; i++) {
        double u[4], x[4];
        for (int j = 0; j < 4; j++) {
            rng = rng * 6364136223846793005ul + 1442695040888963407ul;
            u[j] = (double)(rng >> 11) / 9007199254740992.0;
        }
        if (!space_make_feasible(&s, u))
            continue;
        n_ok++;
        space_from_unit(&s, u, x);
        assert_true(x[0] >= 0 && x[0] <= 1 && x[1] >= 0 && x[1] <= 0.8 && x[2] >= 0.1 && x[2] <= 1);
        assert_true(x[3] == floor(x[3]) && x[3] >= 1 && x[3] <= 5);
        ll_assert_close(x[0] + x[1] + x[2], 1.0, 0, 1e-8);
        assert_true(x[0] + 0.1 * x[3] <= 0.6 + 1e-8);
    }
    /* most random points can be repaired (n <= 5 always leaves room for a <= 0.1) */
    assert_true(n_ok > 2500);
}

static void test_space_infeasible_constraints_are_reported(void **state)
{
    (void)state;
    const char *text = "campaign: {\n"
                       "  parameters = ( { name = \"a\"; low = 0; high = 1; },\n"
                       "                 { name = \"b\"; low = 0; high = 1; } );\n"
                       "  objectives = ( { name = \"y\"; goal = \"max\"; ref = 0; } );\n"
                       "  constraints = ( { coef = { a = 1.0; b = 1.0; }; ge = 3.0; } );\n"
                       "};\n";
    struct campaign c;
    struct space s;
    load(text, &c);
    space_init(&s, &c);
    double u[2] = {0.3, 0.4};
    assert_false(space_make_feasible(&s, u));
    assert_true(space_violation(&s, u) > 0.5);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_space_unit_round_trip),
        cmocka_unit_test(test_space_rounding_gives_allowed_values),
        cmocka_unit_test(test_space_constraints_repaired_randomly),
        cmocka_unit_test(test_space_infeasible_constraints_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

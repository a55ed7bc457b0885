/* test_plot — the SVG of `labloop plot` (daemon/plot.h): nice ticks, tick labels, XML
 * escaping, the attainment staircase, the hypervolume progression against hv_compute on
 * every prefix, and whole SVGs for small known campaigns (well-formed — every tag closed in
 * order, checked by a small tag scanner —, one marker per plotted experiment, names
 * escaped, the final hypervolume) including the edge cases: no measured experiment, one
 * objective, everything worse than the reference point, three objectives, bad input.
 */
#include "daemon/plot.h"
#include "ll_test.h"
#include "planner/hv.h"

#include <errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- helpers -------------------------------------------------------------------------------- */

/* The SVG of c as a NUL-terminated string (free it); asserts that plot_svg succeeded. */
static char *svg_of(const struct plot_campaign *c, int width_px)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(plot_svg(f, c, width_px), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static char *escaped(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(plot_xml_escape(f, s), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* 1 when every element of the XML text is closed in order, the root is <svg>, and no
 * attribute value or text holds a bare '<' or an '&' that does not start an entity of
 * ours. A scanner, not a parser: enough for the SVG we write (the integration test parses
 * the command's output with python's xml.etree). */
static int well_formed(const char *s)
{
    const char *stack[64];
    size_t depth = 0, n_roots = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '&') {
            static const char *const ent[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            int ok = 0;
            for (size_t i = 0; i < 5; i++)
                ok |= strncmp(p, ent[i], strlen(ent[i])) == 0;
            if (!ok)
                return 0;
            continue;
        }
        if (*p != '<')
            continue;
        if (p[1] == '?') { /* the XML declaration */
            p = strstr(p, "?>");
            if (p == NULL)
                return 0;
            continue;
        }
        const char *end = p + 1;
        char quote = 0;
        for (; *end != '\0' && (quote != 0 || *end != '>'); end++) {
            if (quote == 0 && (*end == '"' || *end == '\''))
                quote = *end;
            else if (quote != 0 && *end == quote)
                quote = 0;
            else if (*end == '<')
                return 0;
        }
        if (*end != '>')
            return 0;
        const char *name = p[1] == '/' ? p + 2 : p + 1;
        size_t name_len = strcspn(name, " \t\n/>");
        if (name_len == 0)
            return 0;
        if (p[1] == '/') {
            if (depth == 0 || strncmp(stack[depth - 1], name, name_len) != 0 ||
                strcspn(stack[depth - 1], " \t\n/>") != name_len)
                return 0;
            depth--;
        } else if (end[-1] != '/') {
            if (depth == 0 && (n_roots++ > 0 || strncmp(name, "svg ", 4) != 0))
                return 0;
            if (depth == 64)
                return 0;
            stack[depth++] = name;
        }
        p = end;
    }
    return depth == 0 && n_roots == 1;
}

/* The number in attribute `attr="..."` of the root element. */
static double root_attr(const char *svg, const char *attr)
{
    char key[64];
    snprintf(key, sizeof(key), " %s=\"", attr);
    const char *p = strstr(svg, key);
    assert_non_null(p);
    return strtod(p + strlen(key), NULL);
}

/* --- numbers and text ----------------------------------------------------------------------- */

static void test_plot_nice_step_table(void **state)
{
    (void)state;
    static const struct {
        double span;
        int max_ticks;
        double want;
    } cases[] = {
        {10.0,        5,  2.0   },
        {10.0,        10, 1.0   },
        {7.0,         5,  2.0   },
        {1.0,         5,  0.2   },
        {0.03,        6,  0.005 },
        {3.0,         8,  0.5   },
        {1e6,         4,  5e5   },
        {123.0,       6,  50.0  },
        {0.74,        6,  0.2   },
        {1.0,         1,  1.0   },
        {0.0,         5,  1.0   }, /* not > 0: the fallback */
        {-3.0,        5,  1.0   },
        {(double)NAN, 5,  1.0   },
        {1e-300,      3,  5e-301},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double got = plot_nice_step(cases[i].span, cases[i].max_ticks);
        if (fabs(got - cases[i].want) > 1e-12 * cases[i].want)
            fail_msg("case %zu: span %g max_ticks %d: step %.17g, want %g",
                     i,
                     cases[i].span,
                     cases[i].max_ticks,
                     got,
                     cases[i].want);
    }
}

/* The step is 1, 2 or 5 times a power of ten. */
static int is_nice(double step)
{
    double p = pow(10.0, floor(log10(step) + 1e-9));
    double mant = step / p;
    return fabs(mant - 1.0) < 1e-9 || fabs(mant - 2.0) < 1e-9 || fabs(mant - 5.0) < 1e-9;
}

static void test_plot_axis_covers_range_at_nice_multiples(void **state)
{
    (void)state;
    double lo, hi, step;
    plot_axis(0.13, 0.87, 6, &lo, &hi, &step);
    ll_assert_close(lo, 0.0, 0, 1e-12);
    ll_assert_close(hi, 1.0, 1e-12, 0);
    ll_assert_close(step, 0.2, 1e-12, 0);
    plot_axis(5.0, 5.0, 6, &lo, &hi, &step); /* zero width: widened around the value */
    assert_true(lo < 5.0 && hi > 5.0 && lo >= 4.0 && hi <= 6.0);
    plot_axis(0.0, 0.0, 6, &lo, &hi, &step);
    assert_true(lo <= -1.0 && hi >= 1.0);
    plot_axis((double)NAN, 1.0, 6, &lo, &hi, &step);
    ll_assert_close(lo, 0.0, 0, 1e-12);
    ll_assert_close(hi, 1.0, 1e-12, 0);
    plot_axis(3.0, -2.0, 6, &lo, &hi, &step); /* reversed: sorted */
    assert_true(lo <= -2.0 && hi >= 3.0);
    /* random ranges: covering, ends on multiples of a nice step, at most max_ticks steps */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7);
    for (int t = 0; t < 2000; t++) {
        double scale = pow(10.0, gsl_rng_uniform(rng) * 12.0 - 6.0);
        double a = (gsl_rng_uniform(rng) - 0.5) * scale, b = a + gsl_rng_uniform(rng) * scale;
        int max_ticks = 2 + (int)gsl_rng_uniform_int(rng, 9);
        plot_axis(a, b, max_ticks, &lo, &hi, &step);
        double tol = 1e-9 * step; /* the ends are computed as multiples of step */
        if (!(lo <= a + tol && hi >= b - tol && is_nice(step) &&
              fabs(lo / step - round(lo / step)) < 1e-6 &&
              fabs(hi / step - round(hi / step)) < 1e-6 && (hi - lo) / step <= max_ticks + 1e-6))
            fail_msg("[%.17g, %.17g] max %d: axis [%.17g, %.17g] step %.17g",
                     a,
                     b,
                     max_ticks,
                     lo,
                     hi,
                     step);
    }
    gsl_rng_free(rng);
}

static void test_plot_format_tick_table(void **state)
{
    (void)state;
    static const struct {
        double v, step;
        const char *want;
    } cases[] = {
        {0.5,    0.5,   "0.5"   },
        {-1e-17, 0.2,   "0.0"   }, /* zero, not -0.0 nor 1e-17 */
        {20.0,   10.0,  "20"    },
        {1.25,   0.05,  "1.25"  },
        {-0.004, 0.002, "-0.004"},
        {2e8,    1e8,   "2e+08" },
        {3e-9,   1e-9,  "3e-09" },
    };
    char buf[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        plot_format_tick(cases[i].v, cases[i].step, buf, sizeof(buf));
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("case %zu: %g (step %g) printed '%s', want '%s'",
                     i,
                     cases[i].v,
                     cases[i].step,
                     buf,
                     cases[i].want);
    }
    plot_format_tick(123456.0, 1.0, buf, 4); /* cut, still terminated */
    assert_string_equal(buf, "123");
}

static void test_plot_xml_escape_entities_controls_and_bad_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain",                    "plain"                         },
        {"a<b&c>\"d'e",              "a&lt;b&amp;c&gt;&quot;d&apos;e"},
        {"&amp;",                    "&amp;amp;"                     }, /* not left alone */
        {"tab\tnl\nbell\x07"
         "esc\x1b",         "tab\tnl\nbell?esc?"            },
        {"caf\xc3\xa9 \xe2\x86\x92", "caf\xc3\xa9 \xe2\x86\x92"      }, /* UTF-8 kept */
        {"bad\xff\xc3",              "bad??"                         }, /* not UTF-8 */
        {"",                         ""                              },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = escaped(cases[i].in);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: '%s', want '%s'", i, got, cases[i].want);
        free(got);
    }
    char *got = escaped(NULL);
    assert_string_equal(got, "");
    free(got);
}

/* --- fronts and hypervolume ----------------------------------------------------------------- */

static void test_plot_staircase_vertices(void **state)
{
    (void)state;
    /* (3, 4) is dominated by (2, 3); (2, 3) twice; given out of order */
    const double pts[] = {4, 1, 1, 5, 3, 4, 2, 3, 2, 3};
    const double want[] = {1, 10, 1, 5, 2, 5, 2, 3, 4, 3, 4, 1, 10, 1};
    double xy[2 * (2 * 5 + 1)];
    size_t n = 99;
    assert_int_equal(plot_staircase(pts, 5, 10, 10, xy, &n), 0);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < 2 * n; i++)
        ll_assert_close(xy[i], want[i], 0, 0);
    /* one point: up from the end, the point, across to the end */
    const double one[] = {2, 3};
    assert_int_equal(plot_staircase(one, 1, 9, 8, xy, &n), 0);
    assert_int_equal(n, 3);
    const double want_one[] = {2, 8, 2, 3, 9, 3};
    for (size_t i = 0; i < 6; i++)
        ll_assert_close(xy[i], want_one[i], 0, 0);
    assert_int_equal(plot_staircase(one, 0, 9, 8, xy, &n), 0);
    assert_int_equal(n, 0);
}

static void test_plot_hv_progression_matches_hv_compute_on_prefixes(void **state)
{
    (void)state;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    enum { N = 40 };
    for (size_t m = 1; m <= 4; m++) {
        for (int trial = 0; trial < 5; trial++) {
            double pts[N * 4], ref[4], hv[N], prefix[N * 4];
            for (size_t k = 0; k < m; k++)
                ref[k] = 0.8; /* some points are worse than the reference */
            for (size_t i = 0; i < N * m; i++)
                pts[i] = gsl_rng_uniform(rng);
            pts[7 * m] = (double)NAN; /* a missing value: skipped */
            pts[13 * m + m - 1] = (double)INFINITY;
            assert_int_equal(plot_hv_progression(pts, N, m, ref, hv), 0);
            size_t n_prefix = 0;
            for (size_t i = 0; i < N; i++) {
                if (i != 7 && i != 13)
                    memcpy(&prefix[m * n_prefix++], &pts[i * m], m * sizeof(double));
                double want = hv_compute(prefix, n_prefix, m, ref);
                ll_assert_close(hv[i], want, 1e-12, 1e-15);
                if (i > 0)
                    assert_true(hv[i] >= hv[i - 1]);
            }
            assert_true(hv[N - 1] > 0.0);
        }
    }
    gsl_rng_free(rng);
    double hv[2] = {-1, -1}, ref[2] = {0, 0};
    const double worse[] = {1, 1, 0.5, 2};
    assert_int_equal(plot_hv_progression(worse, 2, 2, ref, hv), 0);
    ll_assert_close(hv[0], 0.0, 0, 0);
    ll_assert_close(hv[1], 0.0, 0, 0);
    assert_int_equal(plot_hv_progression(NULL, 0, 2, ref, hv), 0);
    assert_int_equal(plot_hv_progression(worse, 2, 0, ref, hv), -EINVAL);
    assert_int_equal(plot_hv_progression(worse, 2, 6, ref, hv), -EINVAL);
    double bad_ref[2] = {0, (double)NAN};
    assert_int_equal(plot_hv_progression(worse, 2, 2, bad_ref, hv), -EINVAL);
}

/* --- whole SVGs ----------------------------------------------------------------------------- */

/* Two objectives: "eff<&>" to maximise (ref 10), "cost \"'" to minimise (ref 5); the initial
 * design (round 0) and two model rounds; one experiment without its cost. */
static const struct plot_point known_points[] = {
    {.id = 1, .round = 0, .value = {12, 4}          }, /* dominated by 5 */
    {.id = 2, .round = 0, .value = {9, 2}           }, /* worse than the reference in eff */
    {.id = 3, .round = 0, .value = {11, 1}          }, /* front */
    {.id = 5, .round = 1, .value = {14, 3}          }, /* front */
    {.id = 6, .round = 1, .value = {13, (double)NAN}}, /* no cost: not plotted, HV unchanged */
    {.id = 8, .round = 2, .value = {16, 4.5}        }, /* front */
    {.id = 9, .round = 2, .value = {13, 3.5}        }, /* dominated by 5 */
};

static struct plot_campaign known_campaign(void)
{
    struct plot_campaign c = {
        .name = "camp <&> \"'",
        .id = 4,
        .n_objectives = 2,
        .objectives = {{"eff<&>", 1, 10.0}, {"cost \"'", 0, 5.0}},
        .points = known_points,
        .n_points = sizeof(known_points) / sizeof(known_points[0]),
        .n_left_out = 3,
    };
    return c;
}

static void test_plot_svg_known_campaign(void **state)
{
    (void)state;
    struct plot_campaign c = known_campaign();
    char *svg = svg_of(&c, 1000);
    assert_true(well_formed(svg));
    assert_null(strstr(svg, "<script"));
    assert_null(strstr(svg, "href")); /* nothing external */
    /* one marker per plotted experiment: 6 of 7 (id 6 has no cost) */
    assert_int_equal(count(svg, "class=\"point "), 6);
    assert_int_equal(count(svg, "class=\"point initial"), 3);
    assert_int_equal(count(svg, "class=\"point model"), 3);
    assert_int_equal(count(svg, "nondominated\""), 3);
    assert_non_null(strstr(svg, "data-exp=\"3\" data-round=\"0\""));
    assert_null(strstr(svg, "class=\"point model\" data-exp=\"6\""));
    assert_int_equal((int)root_attr(svg, "data-measured"), 7);
    assert_int_equal((int)root_attr(svg, "data-plotted"), 6);
    /* escaped names, never raw */
    assert_non_null(strstr(svg, "eff&lt;&amp;&gt;"));
    assert_non_null(strstr(svg, "cost &quot;&apos;"));
    assert_non_null(strstr(svg, "camp &lt;&amp;&gt; &quot;&apos;"));
    assert_null(strstr(svg, "eff<&>"));
    /* the final hypervolume: hv.h on the measured points with both values, eff negated */
    const double min[] = {-12, 4, -9, 2, -11, 1, -14, 3, -16, 4.5, -13, 3.5};
    const double ref[] = {-10, 5};
    double want = hv_compute(min, 6, 2, ref);
    /* by hand, strips along eff (negated): [-16, -14] x 0.5 + [-14, -11] x 2 + [-11, -10] x 4 */
    ll_assert_close(want, 1.0 + 6.0 + 4.0, 1e-12, 0);
    ll_assert_close(root_attr(svg, "data-hypervolume"), want, 1e-9, 0);
    /* the panels, one step of the progression per measured experiment, rounds marked */
    assert_int_equal(count(svg, "<polygon class=\"dominated\""), 1);
    assert_int_equal(count(svg, "<polyline class=\"staircase\""), 1);
    assert_int_equal(count(svg, "class=\"hv\""), 7);
    assert_int_equal(count(svg, "class=\"round-boundary\""), 2);
    assert_non_null(strstr(svg, "in the order proposed"));
    assert_non_null(strstr(svg, "3 failed or abandoned"));
    free(svg);
}

/* The staircase's vertices as drawn are plot_staircase's: the polyline has 2k + 1 points
 * for the k = 3 points of the 2-D front. */
static void test_plot_svg_staircase_has_front_vertices(void **state)
{
    (void)state;
    struct plot_campaign c = known_campaign();
    char *svg = svg_of(&c, 800);
    const char *p = strstr(svg, "<polyline class=\"staircase\"");
    assert_non_null(p);
    p = strstr(p, "points=\"");
    assert_non_null(p);
    p += strlen("points=\"");
    size_t n = 1;
    for (; *p != '"'; p++)
        n += *p == ' ';
    assert_int_equal(n, 2 * 3 + 1);
    free(svg);
}

static void test_plot_svg_no_measured_experiment(void **state)
{
    (void)state;
    struct plot_campaign c = known_campaign();
    c.n_points = 0;
    c.points = NULL;
    char *svg = svg_of(&c, 1000);
    assert_true(well_formed(svg));
    assert_non_null(strstr(svg, "No measured experiment yet (3 failed or abandoned)"));
    assert_int_equal(count(svg, "class=\"point"), 0);
    ll_assert_close(root_attr(svg, "data-hypervolume"), 0.0, 0, 0);
    free(svg);
}

static void test_plot_svg_one_objective_has_only_the_hypervolume_panel(void **state)
{
    (void)state;
    struct plot_campaign c = known_campaign();
    c.n_objectives = 1; /* eff only, to maximise, ref 10 */
    char *svg = svg_of(&c, 1000);
    assert_true(well_formed(svg));
    assert_int_equal(count(svg, "class=\"point"), 0);
    assert_int_equal(count(svg, "class=\"pareto\""), 0);
    assert_int_equal(count(svg, "class=\"hv-step\""), 1);
    ll_assert_close(root_attr(svg, "data-hypervolume"), 16.0 - 10.0, 1e-12, 0);
    free(svg);
}

static void test_plot_svg_all_worse_than_reference(void **state)
{
    (void)state;
    struct plot_campaign c = known_campaign();
    c.objectives[0].ref = 100.0; /* nobody reaches an efficiency of 100 */
    char *svg = svg_of(&c, 1000);
    assert_true(well_formed(svg));
    ll_assert_close(root_attr(svg, "data-hypervolume"), 0.0, 0, 0);
    assert_int_equal(count(svg, "class=\"dominated\""), 0);
    assert_int_equal(count(svg, "class=\"point "), 6);
    assert_non_null(strstr(svg, "no experiment is better than the reference point"));
    free(svg);
}

static void test_plot_svg_three_objectives_shows_the_first_two(void **state)
{
    (void)state;
    static const struct plot_point pts[] = {
        {.id = 1, .round = 0, .value = {1, 2, 3}  },
        {.id = 2, .round = 0, .value = {2, 1, 3}  },
        {.id = 3, .round = 1, .value = {3, 3, 0.5}}, /* dominated in the plane, not in 3-D */
    };
    struct plot_campaign c = {
        .name = "three",
        .id = 1,
        .n_objectives = 3,
        .objectives = {{"a", 0, 4}, {"b", 0, 4}, {"c", 0, 4}},
        .points = pts,
        .n_points = 3,
    };
    char *svg = svg_of(&c, 1000);
    assert_true(well_formed(svg));
    assert_non_null(strstr(svg, "objectives 1 and 2 of 3 (b vs a)"));
    assert_int_equal(count(svg, "class=\"point "), 3);
    assert_int_equal(count(svg, "nondominated\""), 3);
    /* boxes to (4, 4, 4): 6 + 6 - 4 (overlap of the first two) + 3.5 - 1 (the third's
     * overlap with them) */
    ll_assert_close(root_attr(svg, "data-hypervolume"), 10.5, 1e-9, 0);
    free(svg);
}

static void test_plot_svg_refuses_bad_input(void **state)
{
    (void)state;
    struct plot_campaign c = known_campaign();
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    assert_int_equal(plot_svg(f, &c, 100), -EINVAL);
    assert_int_equal(plot_svg(f, NULL, 1000), -EINVAL);
    c.n_objectives = 0;
    assert_int_equal(plot_svg(f, &c, 1000), -EINVAL);
    c = known_campaign();
    c.objectives[1].ref = (double)NAN;
    assert_int_equal(plot_svg(f, &c, 1000), -EINVAL);
    fclose(f);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot_nice_step_table),
        cmocka_unit_test(test_plot_axis_covers_range_at_nice_multiples),
        cmocka_unit_test(test_plot_format_tick_table),
        cmocka_unit_test(test_plot_xml_escape_entities_controls_and_bad_utf8),
        cmocka_unit_test(test_plot_staircase_vertices),
        cmocka_unit_test(test_plot_hv_progression_matches_hv_compute_on_prefixes),
        cmocka_unit_test(test_plot_svg_known_campaign),
        cmocka_unit_test(test_plot_svg_staircase_has_front_vertices),
        cmocka_unit_test(test_plot_svg_no_measured_experiment),
        cmocka_unit_test(test_plot_svg_one_objective_has_only_the_hypervolume_panel),
        cmocka_unit_test(test_plot_svg_all_worse_than_reference),
        cmocka_unit_test(test_plot_svg_three_objectives_shows_the_first_two),
        cmocka_unit_test(test_plot_svg_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

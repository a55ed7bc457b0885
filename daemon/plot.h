/* plot — one self-contained SVG of a campaign's results: the Pareto front and the
 * hypervolume over experiments (`labloop plot`, daemon/cmd_plot.c).
 *
 * The module is pure: the input is plain structs and arrays (the CLI fills them from the
 * control socket's "pareto" and "experiments" replies), the output is text written to a
 * FILE* (a file, stdout, or an open_memstream() buffer in the tests). No global state, no
 * printing anywhere else.
 *
 * The SVG has no scripts and no external resources (generic "sans-serif" font); every piece
 * of outside text is XML-escaped. Its two panels:
 *   1. the measured experiments in the plane of the first two objectives: the initial
 *      design (round 0) as grey squares, model rounds as circles coloured by round, the
 *      non-dominated experiments ringed and joined by the attainment staircase, the
 *      reference point as a red cross and the region the front dominates up to it (whose
 *      area is the 2-D hypervolume) shaded;
 *   2. the hypervolume of all objectives (planner/hv.h, against the campaign's reference
 *      point: the number `labloop pareto` prints) after each measured experiment, taken in
 *      the order the experiments were proposed (experiment id), as a step line with the
 *      round boundaries dashed.
 * With one objective only panel 2 is drawn; with no measured experiment, a note saying so.
 *
 * Elements scripts may rely on (tests/integration/test_plot_cli.py): every plotted
 * experiment is one element with class "point" (plus "initial" or "model", and
 * "nondominated"), with data-exp and data-round; the root <svg> carries data-measured,
 * data-plotted and data-hypervolume (the final hypervolume, 10 significant digits).
 */
#ifndef LL_PLOT_H
#define LL_PLOT_H

#include <stddef.h>
#include <stdio.h>

#define PLOT_MAX_OBJECTIVES 5 /* hv.h's HV_MAX_OBJECTIVES */

struct plot_objective {
    const char *name; /* any text; escaped on output */
    int maximise;     /* 1 for goal "max", 0 for "min" */
    double ref;       /* the reference point's coordinate, the objective's own units */
};

/* One measured experiment. */
struct plot_point {
    long long id; /* experiment id */
    int round;    /* 0: the initial (space-filling) design; 1, 2, ...: model rounds */
    double value[PLOT_MAX_OBJECTIVES]; /* own units, indexed like the objectives; NaN if
                                          missing (such a point is skipped where it counts) */
};

struct plot_campaign {
    const char *name; /* campaign name, any text */
    long long id;
    size_t n_objectives; /* 1..PLOT_MAX_OBJECTIVES */
    struct plot_objective objectives[PLOT_MAX_OBJECTIVES];
    const struct plot_point *points; /* the measured experiments, in the order proposed */
    size_t n_points;
    size_t n_left_out; /* failed or abandoned experiments: not plotted, said in the caption */
};

/* The "nice" tick spacing for span (> 0): the smallest s = 1, 2 or 5 times a power of ten
 * with span / s <= max_ticks (>= 1). Returns 1 for a span that is not finite and > 0. */
double plot_nice_step(double span, int max_ticks);

/* Axis for the data range [lo, hi]: widened to the multiples of a nice step around it
 * (*ret_lo <= lo, *ret_hi >= hi, at most max_ticks steps), the ticks being every multiple of
 * *ret_step from *ret_lo to *ret_hi. A range of zero width (lo == hi) is widened around the
 * value first. Non-finite input gives the axis [0, 1]. */
void plot_axis(
    double lo, double hi, int max_ticks, double *ret_lo, double *ret_hi, double *ret_step);

/* v as a tick label on an axis of spacing step: as many decimals as the step needs (0.25 ->
 * 2), no "-0", %g for very large or small magnitudes. Always NUL-terminates buf. */
void plot_format_tick(double v, double step, char *buf, size_t size);

/* Writes s to out as XML character data or attribute value: & < > " ' as entities, control
 * characters other than tab and newline and every byte outside well-formed UTF-8 as '?'.
 * Returns 0, -ENOMEM, or -EIO when out reports an error. */
int plot_xml_escape(FILE *out, const char *s);

/* The hypervolume after each of the n points (rows of m, minimisation convention, as
 * planner/hv.h) was added, against ref: ret_hv[i] = hv_compute(first i+1 rows) computed
 * with hv_compute on the non-dominated points so far. A row with a non-finite value is
 * skipped: ret_hv[i] = ret_hv[i-1] (0 for i = 0). Returns 0, -EINVAL (m not 1..5, a
 * non-finite ref, NULL arrays with n > 0) or -ENOMEM. */
int plot_hv_progression(
    const double *points, size_t n, size_t m, const double *ref, double *ret_hv);

/* The attainment staircase of the n 2-D points (x, y pairs, minimisation convention,
 * finite): the non-dominated points sorted by x, joined by steps, its ends carried to
 * end_x (right of the last point) and end_y (above the first):
 *   (x1, end_y) (x1, y1) (x2, y1) (x2, y2) ... (xk, yk) (end_x, yk)
 * ret_xy must hold 2n + 1 pairs; *ret_n gets the number of vertices (2k + 1, 0 for n = 0).
 * Returns 0 or -ENOMEM. */
int plot_staircase(
    const double *points, size_t n, double end_x, double end_y, double *ret_xy, size_t *ret_n);

/* Writes the SVG of campaign c, width_px wide (320..4000; height derived), to out. Returns
 * 0, -EINVAL (bad input: objectives out of range, non-finite reference), -ENOMEM, or -EIO
 * when out reports an error. */
int plot_svg(FILE *out, const struct plot_campaign *c, int width_px);

#endif

/* plot — the SVG of `labloop plot`; see plot.h for what it shows.
 *
 * The picture is built from a few pieces, each a function: an axis frame (nice ticks, grid,
 * labels) mapping data to pixels; the Pareto panel (shaded dominated region, staircase,
 * markers, reference cross); the hypervolume panel (step line, round boundaries); a legend
 * and a caption. Coordinates are computed in the minimisation convention of planner/hv.h
 * (a "max" objective negated) and mapped back to the objective's own values for drawing, so
 * the axes always read in the objective's units, increasing to the right and upwards.
 *
 * The hypervolume progression keeps an archive of the non-dominated points seen so far
 * (hv_nondominated) and calls hv_compute on it after each point: the same number as
 * hv_compute on the whole prefix, since dominated points add no volume, at the cost of the
 * front instead of the prefix.
 */
#include "daemon/plot.h"

#include "common/ll_text.h"
#include "planner/hv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(PLOT_MAX_OBJECTIVES == HV_MAX_OBJECTIVES, "plot follows hv.h's limit");

/* --- numbers and text ----------------------------------------------------------------------- */

double plot_nice_step(double span, int max_ticks)
{
    if (!(isfinite(span) && span > 0.0) || max_ticks < 1)
        return 1.0;
    double raw = span / max_ticks;
    double p = pow(10.0, floor(log10(raw)));
    static const double mult[] = {1.0, 2.0, 5.0};
    for (size_t i = 0; i < sizeof(mult) / sizeof(mult[0]); i++)
        if (mult[i] * p >= raw * (1.0 - 1e-9)) /* 1e-9: log10 and pow are not exact */
            return mult[i] * p;
    return 10.0 * p;
}

void plot_axis(
    double lo, double hi, int max_ticks, double *ret_lo, double *ret_hi, double *ret_step)
{
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0.0;
        hi = 1.0;
    }
    if (lo > hi) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
        double half = lo == 0.0 ? 1.0 : 0.1 * fabs(lo);
        lo -= half;
        hi += half;
    }
    if (max_ticks < 1)
        max_ticks = 1;
    double step = plot_nice_step(hi - lo, max_ticks);
    double a = 0, b = 0;
    /* rounding the ends outwards can add up to two steps; take the next nice step then */
    for (int i = 0; i < 8; i++) {
        a = floor(lo / step + 1e-9) * step;
        b = ceil(hi / step - 1e-9) * step;
        if ((b - a) / step <= max_ticks + 1e-9)
            break;
        step = plot_nice_step(step * max_ticks * 1.001, max_ticks);
    }
    *ret_lo = a;
    *ret_hi = b;
    *ret_step = step;
}

void plot_format_tick(double v, double step, char *buf, size_t size)
{
    if (size == 0)
        return;
    if (fabs(v) < 1e-9 * fabs(step))
        v = 0.0; /* no "-0" nor "1e-17" for the tick at zero */
    int decimals = step > 0.0 && isfinite(step) ? (int)-floor(log10(step) + 1e-9) : 0;
    if (decimals < 0)
        decimals = 0;
    if (fabs(v) >= 1e7 || decimals > 6)
        snprintf(buf, size, "%.4g", v);
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

int plot_xml_escape(FILE *out, const char *s)
{
    char *clean = strdup(s != NULL ? s : "");
    if (clean == NULL)
        return -ENOMEM;
    ll_utf8_sanitize(clean);
    for (const char *p = clean; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        switch (ch) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&apos;", out);
            break;
        default:
            /* XML 1.0 allows no control character but tab, newline and return */
            fputc(ch < 0x20 && ch != '\t' && ch != '\n' ? '?' : ch, out);
        }
    }
    free(clean);
    return ferror(out) ? -EIO : 0;
}

/* --- fronts and hypervolume ----------------------------------------------------------------- */

static int all_finite(const double *v, size_t m)
{
    for (size_t k = 0; k < m; k++)
        if (!isfinite(v[k]))
            return 0;
    return 1;
}

int plot_hv_progression(const double *points, size_t n, size_t m, const double *ref, double *ret_hv)
{
    if (m < 1 || m > HV_MAX_OBJECTIVES || ref == NULL || !all_finite(ref, m) ||
        (n > 0 && (points == NULL || ret_hv == NULL)))
        return -EINVAL;
    double *archive = malloc((n + 1) * m * sizeof(double));
    if (archive == NULL)
        return -ENOMEM;
    size_t n_archive = 0;
    double hv = 0.0;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        const double *row = &points[i * m];
        if (all_finite(row, m)) {
            memcpy(&archive[n_archive * m], row, m * sizeof(double));
            n_archive = hv_nondominated(archive, n_archive + 1, m);
            hv = hv_compute(archive, n_archive, m, ref);
            if (isnan(hv))
                r = -ENOMEM; /* the inputs are finite and m is in range: its allocation */
        }
        ret_hv[i] = hv;
    }
    free(archive);
    return r;
}

static int cmp_xy(const void *a, const void *b)
{
    const double *p = a, *q = b;
    if (p[0] != q[0])
        return p[0] < q[0] ? -1 : 1;
    return (p[1] > q[1]) - (p[1] < q[1]);
}

int plot_staircase(
    const double *points, size_t n, double end_x, double end_y, double *ret_xy, size_t *ret_n)
{
    *ret_n = 0;
    if (n == 0)
        return 0;
    double *p = malloc(2 * n * sizeof(double));
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, points, 2 * n * sizeof(double));
    size_t k = hv_nondominated(p, n, 2);
    qsort(p, k, 2 * sizeof(double), cmp_xy); /* x ascending, so y descending */
    size_t v = 0;
    ret_xy[2 * v] = p[0];
    ret_xy[2 * v + 1] = end_y;
    v++;
    for (size_t i = 0; i < k; i++) {
        if (i > 0) {
            ret_xy[2 * v] = p[2 * i];
            ret_xy[2 * v + 1] = p[2 * (i - 1) + 1];
            v++;
        }
        ret_xy[2 * v] = p[2 * i];
        ret_xy[2 * v + 1] = p[2 * i + 1];
        v++;
    }
    ret_xy[2 * v] = end_x;
    ret_xy[2 * v + 1] = p[2 * (k - 1) + 1];
    v++;
    free(p);
    *ret_n = v;
    return 0;
}

/* 1 for each point whose values are all finite and that no other such point dominates
 * (minimisation values in min, rows of m). O(n^2 m), as engine_pareto_json. */
static void nondominated_flags(const double *min, size_t n, size_t m, unsigned char *ret_flag)
{
    for (size_t a = 0; a < n; a++) {
        int dominated = !all_finite(&min[a * m], m);
        for (size_t b = 0; b < n && !dominated; b++) {
            if (a == b || !all_finite(&min[b * m], m))
                continue;
            int all_le = 1, one_lt = 0;
            for (size_t k = 0; k < m; k++) {
                all_le &= min[b * m + k] <= min[a * m + k];
                one_lt |= min[b * m + k] < min[a * m + k];
            }
            dominated = all_le && one_lt;
        }
        ret_flag[a] = (unsigned char)!dominated;
    }
}

/* --- drawing -------------------------------------------------------------------------------- */

#define FONT "font-family=\"sans-serif\""

/* One panel's plotting area: data [lo_x, hi_x] x [lo_y, hi_y] onto pixels [x0, x1] x [y0, y1]
 * (y0 the top). */
struct frame {
    double x0, x1, y0, y1;
    double lo_x, hi_x, step_x;
    double lo_y, hi_y, step_y;
};

static double px(const struct frame *f, double v)
{
    return f->x0 + (v - f->lo_x) / (f->hi_x - f->lo_x) * (f->x1 - f->x0);
}

static double py(const struct frame *f, double v)
{
    return f->y1 - (v - f->lo_y) / (f->hi_y - f->lo_y) * (f->y1 - f->y0);
}

/* <text ...>escaped s</text>; attrs is markup of ours (not escaped). */
static void text(FILE *out, double x, double y, const char *attrs, const char *s)
{
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" %s>", x, y, attrs);
    plot_xml_escape(out, s);
    fputs("</text>\n", out);
}

/* "name (max: better →)", the direction in which the axis improves. */
static void axis_label(const struct plot_objective *o, int vertical, char *buf, size_t size)
{
    const char *arrow = o->maximise ? (vertical ? "\xe2\x86\x91" : "\xe2\x86\x92")  /* ↑ → */
                                    : (vertical ? "\xe2\x86\x93" : "\xe2\x86\x90"); /* ↓ ← */
    snprintf(buf,
             size,
             "%s (%s: better %s)",
             o->name != NULL ? o->name : "",
             o->maximise ? "max" : "min",
             arrow);
}

/* Frame, grid lines and tick labels at every multiple of the steps, axis labels. */
static void draw_axes(FILE *out, const struct frame *f, const char *x_label, const char *y_label)
{
    char num[64];
    fprintf(out, "<g class=\"axes\" " FONT " font-size=\"11\" fill=\"#333\">\n");
    long nx = lround((f->hi_x - f->lo_x) / f->step_x), ny = lround((f->hi_y - f->lo_y) / f->step_y);
    for (long i = 0; i <= nx; i++) {
        double v = f->lo_x + (double)i * f->step_x, x = px(f, v);
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                x,
                f->y0,
                x,
                f->y1);
        plot_format_tick(v, f->step_x, num, sizeof(num));
        text(out, x, f->y1 + 15, "text-anchor=\"middle\"", num);
    }
    for (long i = 0; i <= ny; i++) {
        double v = f->lo_y + (double)i * f->step_y, y = py(f, v);
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                f->x0,
                y,
                f->x1,
                y);
        plot_format_tick(v, f->step_y, num, sizeof(num));
        text(out, f->x0 - 5, y + 4, "text-anchor=\"end\"", num);
    }
    fprintf(out,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#555\"/>\n",
            f->x0,
            f->y0,
            f->x1 - f->x0,
            f->y1 - f->y0);
    text(out, (f->x0 + f->x1) / 2, f->y1 + 34, "text-anchor=\"middle\" font-size=\"13\"", x_label);
    char attrs[160];
    double ly = (f->y0 + f->y1) / 2, lx = f->x0 - 52;
    snprintf(attrs,
             sizeof(attrs),
             "text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 %.1f %.1f)\"",
             lx,
             ly);
    text(out, lx, ly, attrs, y_label);
    fputs("</g>\n", out);
}

/* Colour of model round `round` of 1..n_rounds: a dark-blue to orange ramp (plasma's first
 * four fifths, all visible on white). */
static void round_colour(int round, int n_rounds, char *buf, size_t size)
{
    static const unsigned char ramp[][3] = {
        {0x0d, 0x08, 0x87},
        {0x7e, 0x03, 0xa8},
        {0xcc, 0x47, 0x78},
        {0xf0, 0x7f, 0x4f},
        {0xf8, 0xa0, 0x30},
    };
    const size_t n_ramp = sizeof(ramp) / sizeof(ramp[0]);
    double t = n_rounds > 1 ? (double)(round - 1) / (n_rounds - 1) : 0.0;
    t = fmin(fmax(t, 0.0), 1.0) * (double)(n_ramp - 1);
    size_t i = (size_t)t;
    if (i >= n_ramp - 1)
        i = n_ramp - 2;
    double u = t - (double)i;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(ramp[i][c] + u * (ramp[i + 1][c] - ramp[i][c]));
    snprintf(buf, size, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* What the panels need, computed once from the campaign. */
struct layout {
    const struct plot_campaign *c;
    size_t m;
    double ref_min[PLOT_MAX_OBJECTIVES]; /* reference point, minimisation convention */
    double *min;                         /* n_points rows of m, minimisation convention */
    double *hv;                          /* hypervolume after each point */
    unsigned char *front;                /* non-dominated in all objectives */
    size_t n_plotted;                    /* finite in the first two objectives */
    size_t n_missing;                    /* measured, some objective not finite */
    int n_rounds;                        /* highest round number */
    double width, height;
};

static double to_min(const struct plot_objective *o, double v)
{
    return o->maximise ? -v : v;
}

/* The experiment's values as a tooltip: "experiment 12, round 2: a 1.5, b 3". */
static void point_title(FILE *out, const struct plot_campaign *c, const struct plot_point *p)
{
    fprintf(out, "<title>experiment %lld, round %d:", p->id, p->round);
    for (size_t k = 0; k < c->n_objectives; k++) {
        fputs(k == 0 ? " " : ", ", out);
        plot_xml_escape(out, c->objectives[k].name);
        fprintf(out, " %.6g", p->value[k]);
    }
    fputs("</title>", out);
}

static void draw_marker(FILE *out, const struct layout *l, size_t i, double x, double y)
{
    const struct plot_point *p = &l->c->points[i];
    const char *nd = l->front[i] ? " nondominated" : "";
    const char *stroke =
        l->front[i] ? "stroke=\"#000\" stroke-width=\"2\"" : "stroke=\"#fff\" stroke-width=\"0.8\"";
    if (p->round <= 0) {
        fprintf(out,
                "<rect class=\"point initial%s\" data-exp=\"%lld\" data-round=\"%d\" x=\"%.1f\" "
                "y=\"%.1f\" width=\"8\" height=\"8\" fill=\"#8c8c8c\" %s>",
                nd,
                p->id,
                p->round,
                x - 4,
                y - 4,
                stroke);
        point_title(out, l->c, p);
        fputs("</rect>\n", out);
        return;
    }
    char colour[16];
    round_colour(p->round, l->n_rounds, colour, sizeof(colour));
    fprintf(out,
            "<circle class=\"point model%s\" data-exp=\"%lld\" data-round=\"%d\" cx=\"%.1f\" "
            "cy=\"%.1f\" r=\"%s\" fill=\"%s\" %s>",
            nd,
            p->id,
            p->round,
            x,
            y,
            l->front[i] ? "5.5" : "4.5",
            colour,
            stroke);
    point_title(out, l->c, p);
    fputs("</circle>\n", out);
}

/* A polyline or polygon through n (x, y) minimisation-convention pairs, drawn in the
 * objectives' own values. */
static void draw_path(FILE *out,
                      const struct layout *l,
                      const struct frame *f,
                      const double *xy,
                      size_t n,
                      const char *element_and_style)
{
    const struct plot_objective *ox = &l->c->objectives[0], *oy = &l->c->objectives[1];
    fprintf(out, "<%s points=\"", element_and_style);
    for (size_t i = 0; i < n; i++)
        fprintf(out,
                "%s%.1f,%.1f",
                i > 0 ? " " : "",
                px(f, to_min(ox, xy[2 * i])),
                py(f, to_min(oy, xy[2 * i + 1])));
    fputs("\"/>\n", out);
}

/* The shaded region the points dominate up to the reference point (2-D), and the attainment
 * staircase of all plotted points carried to the axes' worse ends. */
static int draw_front(FILE *out, const struct layout *l, const struct frame *f)
{
    const struct plot_campaign *c = l->c;
    size_t n = c->n_points, m = l->m, n_xy = 0, n_in = 0, nv = 0;
    double *xy = malloc((2 * n + 2) * sizeof(double));
    double *in = malloc((2 * n + 2) * sizeof(double));
    double *v = malloc((4 * n + 4) * sizeof(double));
    int r = xy != NULL && in != NULL && v != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && r == 0; i++) {
        const double *p = &l->min[i * m];
        if (!isfinite(p[0]) || !isfinite(p[1]))
            continue;
        xy[2 * n_xy] = p[0];
        xy[2 * n_xy++ + 1] = p[1];
        if (p[0] < l->ref_min[0] && p[1] < l->ref_min[1]) {
            in[2 * n_in] = p[0];
            in[2 * n_in++ + 1] = p[1];
        }
    }
    if (r == 0)
        r = plot_staircase(in, n_in, l->ref_min[0], l->ref_min[1], v, &nv);
    if (r == 0 && nv > 0) {
        v[2 * nv] = l->ref_min[0]; /* the corner closes the region */
        v[2 * nv + 1] = l->ref_min[1];
        draw_path(out,
                  l,
                  f,
                  v,
                  nv + 1,
                  "polygon class=\"dominated\" fill=\"#4a90d9\" fill-opacity=\"0.18\" "
                  "stroke=\"none\"");
    }
    /* the axes' worse ends, in the minimisation convention */
    double end_x = c->objectives[0].maximise ? -f->lo_x : f->hi_x;
    double end_y = c->objectives[1].maximise ? -f->lo_y : f->hi_y;
    if (r == 0)
        r = plot_staircase(xy, n_xy, end_x, end_y, v, &nv);
    if (r == 0 && nv > 0)
        draw_path(out,
                  l,
                  f,
                  v,
                  nv,
                  "polyline class=\"staircase\" fill=\"none\" stroke=\"#222\" "
                  "stroke-width=\"1.2\"");
    free(xy);
    free(in);
    free(v);
    return r;
}

static int pareto_panel(FILE *out, const struct layout *l, double left, double right)
{
    const struct plot_campaign *c = l->c;
    const struct plot_objective *ox = &c->objectives[0], *oy = &c->objectives[1];
    /* the data range of both axes, the reference point included */
    double lo[2] = {ox->ref, oy->ref};
    double hi[2] = {ox->ref, oy->ref};
    for (size_t i = 0; i < c->n_points; i++) {
        const double *v = c->points[i].value;
        if (!isfinite(v[0]) || !isfinite(v[1]))
            continue;
        for (size_t k = 0; k < 2; k++) {
            lo[k] = fmin(lo[k], v[k]);
            hi[k] = fmax(hi[k], v[k]);
        }
    }
    double pad_x = 0.04 * (hi[0] - lo[0]), pad_y = 0.04 * (hi[1] - lo[1]);
    struct frame f = {.x0 = left + 75, .x1 = right - 15, .y0 = 70, .y1 = l->height - 170};
    plot_axis(lo[0] - pad_x, hi[0] + pad_x, 6, &f.lo_x, &f.hi_x, &f.step_x);
    plot_axis(lo[1] - pad_y, hi[1] + pad_y, 6, &f.lo_y, &f.hi_y, &f.step_y);
    char xl[300], yl[300];
    axis_label(ox, 0, xl, sizeof(xl));
    axis_label(oy, 1, yl, sizeof(yl));
    fputs("<g class=\"pareto\">\n", out);
    draw_axes(out, &f, xl, yl);
    int r = draw_front(out, l, &f);
    for (size_t pass = 0; pass < 2 && r == 0; pass++) /* the front on top */
        for (size_t i = 0; i < c->n_points; i++) {
            const double *v = c->points[i].value;
            if (isfinite(v[0]) && isfinite(v[1]) && l->front[i] == pass)
                draw_marker(out, l, i, px(&f, v[0]), py(&f, v[1]));
        }
    double rx = px(&f, ox->ref), ry = py(&f, oy->ref);
    fprintf(out,
            "<path class=\"reference\" d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" "
            "stroke=\"#d62728\" stroke-width=\"2.5\"><title>reference point: %.6g, %.6g</title>"
            "</path>\n",
            rx - 6,
            ry - 6,
            rx + 6,
            ry + 6,
            rx - 6,
            ry + 6,
            rx + 6,
            ry - 6,
            ox->ref,
            oy->ref);
    text(out, rx + 8, ry - 6, FONT " font-size=\"11\" fill=\"#d62728\"", "reference");
    fputs("</g>\n", out);
    return r;
}

static void hv_panel(FILE *out, const struct layout *l, double left, double right)
{
    const struct plot_campaign *c = l->c;
    size_t n = c->n_points;
    double top = 0.0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, l->hv[i]);
    struct frame f = {.x0 = left + 75, .x1 = right - 15, .y0 = 70, .y1 = l->height - 170};
    plot_axis(0.0, (double)n, 8, &f.lo_x, &f.hi_x, &f.step_x);
    if (f.step_x < 1.0) { /* experiments are counted in whole numbers */
        f.step_x = 1.0;
        f.lo_x = 0.0;
        f.hi_x = n > 0 ? (double)n : 1.0;
    }
    plot_axis(0.0, top > 0.0 ? top * 1.05 : 1.0, 6, &f.lo_y, &f.hi_y, &f.step_y);
    char yl[160];
    snprintf(yl,
             sizeof(yl),
             "hypervolume (%zu objective%s, vs the reference point)",
             l->m,
             l->m > 1 ? "s" : "");
    fputs("<g class=\"hypervolume\">\n", out);
    draw_axes(out, &f, "measured experiments, in the order proposed (experiment id)", yl);
    for (size_t i = 1; i < n; i++) { /* round boundaries */
        if (c->points[i].round == c->points[i - 1].round)
            continue;
        double x = px(&f, (double)i + 0.5);
        fprintf(out,
                "<line class=\"round-boundary\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n",
                x,
                f.y0,
                x,
                f.y1);
        char label[32];
        snprintf(label, sizeof(label), "r%d", c->points[i].round);
        text(out, x + 2, f.y0 + 12, FONT " font-size=\"10\" fill=\"#666\"", label);
    }
    fprintf(out,
            "<path class=\"hv-step\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" "
            "d=\"M%.1f %.1f",
            px(&f, 0.0),
            py(&f, 0.0));
    for (size_t i = 0; i < n; i++)
        fprintf(out, "H%.1fV%.1f", px(&f, (double)(i + 1)), py(&f, l->hv[i]));
    fputs("\"/>\n", out);
    for (size_t i = 0; i < n; i++)
        fprintf(out,
                "<circle class=\"hv\" data-exp=\"%lld\" data-hv=\"%.10g\" cx=\"%.1f\" cy=\"%.1f\" "
                "r=\"2.5\" fill=\"#1f77b4\"><title>after experiment %lld (round %d): hypervolume "
                "%.6g</title></circle>\n",
                c->points[i].id,
                l->hv[i],
                px(&f, (double)(i + 1)),
                py(&f, l->hv[i]),
                c->points[i].id,
                c->points[i].round,
                l->hv[i]);
    char final[96];
    snprintf(final, sizeof(final), "final: %.6g", n > 0 ? l->hv[n - 1] : 0.0);
    text(out, f.x0 + 8, f.y0 + 30, FONT " font-size=\"12\" fill=\"#1f77b4\"", final);
    fputs("</g>\n", out);
}

/* Where the next legend entry goes; entries wrap to a second row at the right edge. */
struct cursor {
    double x, y, right;
};

/* One legend entry: a symbol (markup of ours, centred at the origin) and its text. */
static void legend_entry(FILE *out, struct cursor *at, const char *symbol, const char *label)
{
    double w = 24 + 6.2 * (double)strlen(label); /* 6.2 px: a sans-serif 11 px character */
    if (at->x > 20 && at->x + w > at->right) {
        at->x = 20;
        at->y += 18;
    }
    fprintf(out, "<g transform=\"translate(%.1f %.1f)\">%s</g>\n", at->x, at->y, symbol);
    text(out, at->x + 12, at->y + 4, FONT " font-size=\"11\" fill=\"#333\"", label);
    at->x += w;
}

static void legend(FILE *out, const struct layout *l, double y)
{
    char sym[256], first[16], last[16], label[64];
    struct cursor at = {.x = 20, .y = y, .right = l->width - 10};
    fputs("<g class=\"legend\">\n", out);
    legend_entry(out,
                 &at,
                 "<rect x=\"-4\" y=\"-4\" width=\"8\" height=\"8\" fill=\"#8c8c8c\"/>",
                 "initial design (round 0)");
    if (l->n_rounds >= 1) {
        round_colour(1, l->n_rounds, first, sizeof(first));
        round_colour(l->n_rounds, l->n_rounds, last, sizeof(last));
        snprintf(sym,
                 sizeof(sym),
                 "<circle cx=\"-3\" r=\"4\" fill=\"%s\"/><circle cx=\"4\" r=\"4\" fill=\"%s\"/>",
                 first,
                 last);
        if (l->n_rounds == 1)
            snprintf(label, sizeof(label), "model round 1");
        else
            snprintf(label, sizeof(label), "model rounds 1 (dark) to %d (light)", l->n_rounds);
        at.x += 4;
        legend_entry(out, &at, sym, label);
    }
    if (l->m >= 2) {
        legend_entry(out,
                     &at,
                     "<circle r=\"5\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>",
                     "non-dominated (all objectives)");
        legend_entry(out,
                     &at,
                     "<path d=\"M-6 -4V4H6\" fill=\"none\" stroke=\"#222\"/>",
                     "attainment staircase");
        legend_entry(out,
                     &at,
                     "<rect x=\"-5\" y=\"-5\" width=\"10\" height=\"10\" fill=\"#4a90d9\" "
                     "fill-opacity=\"0.3\"/>",
                     "dominated up to the reference point");
        legend_entry(out,
                     &at,
                     "<path d=\"M-4 -4L4 4M-4 4L4 -4\" stroke=\"#d62728\" stroke-width=\"2\"/>",
                     "reference point");
    }
    fputs("</g>\n", out);
}

/* Title (campaign, what is shown) and the caption (what was left out, the order). */
static void title_and_caption(FILE *out, const struct layout *l)
{
    const struct plot_campaign *c = l->c;
    char buf[1024];
    if (l->m >= 3)
        snprintf(buf,
                 sizeof(buf),
                 "Pareto front of objectives 1 and 2 of %zu (%s vs %s) and hypervolume of all %zu",
                 l->m,
                 c->objectives[1].name,
                 c->objectives[0].name,
                 l->m);
    else if (l->m == 2)
        snprintf(buf,
                 sizeof(buf),
                 "Pareto front (%s vs %s) and hypervolume over experiments",
                 c->objectives[1].name,
                 c->objectives[0].name);
    else
        snprintf(buf,
                 sizeof(buf),
                 "Hypervolume over experiments (one objective, %s: the distance from the "
                 "reference point to the best value)",
                 c->objectives[0].name);
    text(out, 20, 46, FONT " font-size=\"14\" fill=\"#333\"", buf);
    size_t n = c->n_points;
    snprintf(buf,
             sizeof(buf),
             "%zu measured experiments plotted%s; not plotted: %zu failed or abandoned%s",
             l->m >= 2 ? l->n_plotted : n,
             l->m >= 2 ? " in the front panel" : "",
             c->n_left_out,
             l->n_missing > 0 ? "; measured without every objective value: skipped where "
                                "that value is needed"
                              : "");
    double y = l->height - 62;
    text(out, 20, y, FONT " font-size=\"12\" fill=\"#333\"", buf);
    double final = n > 0 ? l->hv[n - 1] : 0.0;
    snprintf(buf,
             sizeof(buf),
             "hypervolume after each measured experiment: planner/hv.h on %s (max goals "
             "negated); final %.6g%s",
             l->m == 1   ? "the objective"
             : l->m == 2 ? "both objectives"
                         : "all objectives",
             final,
             final > 0.0 ? ""
                         : ": no experiment is better than the reference point in every "
                           "objective");
    text(out, 20, y + 17, FONT " font-size=\"12\" fill=\"#333\"", buf);
    int len = snprintf(buf, sizeof(buf), "reference point:");
    for (size_t k = 0; k < l->m && len > 0 && (size_t)len < sizeof(buf); k++)
        len += snprintf(buf + len,
                        sizeof(buf) - (size_t)len,
                        "%s %s %.6g",
                        k > 0 ? "," : "",
                        c->objectives[k].name,
                        c->objectives[k].ref);
    text(out, 20, y + 34, FONT " font-size=\"12\" fill=\"#333\"", buf);
}

static void svg_open(FILE *out, const struct layout *l, double final_hv)
{
    const struct plot_campaign *c = l->c;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
            "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" data-campaign=\"%lld\" "
            "data-measured=\"%zu\" data-plotted=\"%zu\" data-hypervolume=\"%.10g\">\n",
            l->width,
            l->height,
            l->width,
            l->height,
            c->id,
            c->n_points,
            l->m >= 2 ? l->n_plotted : 0,
            final_hv);
    fputs("<title>", out);
    fprintf(out, "labloop campaign %lld: ", c->id);
    plot_xml_escape(out, c->name);
    fputs("</title>\n", out);
    fprintf(out, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", l->width, l->height);
    char head[64];
    snprintf(head, sizeof(head), "Campaign %lld: ", c->id);
    fprintf(out, "<text x=\"20\" y=\"24\" " FONT " font-size=\"17\" font-weight=\"bold\">");
    plot_xml_escape(out, head);
    plot_xml_escape(out, c->name);
    fputs("</text>\n", out);
}

/* The minimisation-convention values, the hypervolume progression, the front, the counts. */
static int layout_init(struct layout *l, const struct plot_campaign *c, int width_px)
{
    memset(l, 0, sizeof(*l));
    l->c = c;
    l->m = c->n_objectives;
    l->width = width_px;
    l->height = fmax(320.0, (l->m >= 2 ? width_px / 2.0 : width_px * 0.45) + 130.0);
    size_t n = c->n_points, m = l->m;
    l->min = malloc((n * m + 1) * sizeof(double));
    l->hv = malloc((n + 1) * sizeof(double));
    l->front = malloc(n + 1);
    if (l->min == NULL || l->hv == NULL || l->front == NULL)
        return -ENOMEM;
    for (size_t k = 0; k < m; k++)
        l->ref_min[k] = to_min(&c->objectives[k], c->objectives[k].ref);
    for (size_t i = 0; i < n; i++) {
        const struct plot_point *p = &c->points[i];
        for (size_t k = 0; k < m; k++)
            l->min[i * m + k] = to_min(&c->objectives[k], p->value[k]);
        l->n_missing += !all_finite(p->value, m);
        l->n_plotted += m >= 2 && isfinite(p->value[0]) && isfinite(p->value[1]);
        if (p->round > l->n_rounds)
            l->n_rounds = p->round;
    }
    nondominated_flags(l->min, n, m, l->front);
    return plot_hv_progression(l->min, n, m, l->ref_min, l->hv);
}

int plot_svg(FILE *out, const struct plot_campaign *c, int width_px)
{
    if (c == NULL || c->n_objectives < 1 || c->n_objectives > PLOT_MAX_OBJECTIVES ||
        (c->n_points > 0 && c->points == NULL) || width_px < 320 || width_px > 4000)
        return -EINVAL;
    for (size_t k = 0; k < c->n_objectives; k++)
        if (!isfinite(c->objectives[k].ref))
            return -EINVAL;
    struct layout l;
    int r = layout_init(&l, c, width_px);
    if (r < 0)
        goto out;
    double final = c->n_points > 0 ? l.hv[c->n_points - 1] : 0.0;
    if (c->n_points == 0)
        l.height = 160;
    svg_open(out, &l, final);
    if (c->n_points == 0) {
        char note[128];
        snprintf(note,
                 sizeof(note),
                 "No measured experiment yet (%zu failed or abandoned): nothing to plot.",
                 c->n_left_out);
        text(out, 20, 70, FONT " font-size=\"14\" fill=\"#333\"", note);
    } else {
        title_and_caption(out, &l);
        if (l.m >= 2) {
            r = pareto_panel(out, &l, 0, l.width / 2);
            hv_panel(out, &l, l.width / 2, l.width);
        } else {
            hv_panel(out, &l, 0, l.width);
        }
        legend(out, &l, l.height - 108);
    }
    fputs("</svg>\n", out);
    if (r == 0 && ferror(out))
        r = -EIO;
out:
    free(l.min);
    free(l.hv);
    free(l.front);
    return r;
}

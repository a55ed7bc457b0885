/* planner — ask/tell Bayesian optimisation (see planner.h for the behaviour).
 *
 * One round of planner_ask, once the initial design is done:
 *   1. fit one GP per objective on all observations (unit-cube inputs, minimisation form),
 *      with its constant prior mean fixed at the WORST value observed instead of fitted:
 *      where the model has no data it then predicts "no better than anything seen", so the
 *      acquisition stops paying for the corners of the box just because they are unknown
 *      (De Ath, Fieldsend, Everson, "What do you mean? The role of the mean function in
 *      Bayesian optimisation", GECCO 2020 companion, arXiv:2004.08349: the worst observed
 *      value was the best constant mean in their comparison, more so as d grows; measured
 *      here in docs/bench-planner.md: DTLZ2 with 3 objectives from -0.56 to -0.80 log10 HV
 *      difference, DTLZ2 with 2 from -1.34 to -1.57, the others unchanged within seed noise);
 *      for EHVI, calibrate each GP's predictive variance by leave-one-out: the variance the
 *      acquisition sees is multiplied by the mean squared standardised LOO residual
 *      (gp_loo_mean_z2) when that is below 1 (clamped at CALIB_MIN), so a model more
 *      uncertain than its own errors warrant explores less (docs/bench-planner.md);
 *   2. fantasise every pending point (Kriging believer: condition each GP on its own mean);
 *   3. draw one candidate pool for the round: scrambled Sobol points plus perturbations of
 *      the non-dominated observed points, all made feasible (projected, rounded);
 *   4. for each of the q points: build the acquisition (EHVI against the non-dominated front
 *      of observed values plus fantasised means, or EI/PI/UCB/variance), score the pool
 *      (lazily after the first pick: fantasies only lower the acquisition, so a stale value
 *      bounds a fresh one), refine the best few by projected gradient ascent over the
 *      continuous coordinates (discrete ones stay at their rounded values, so every evaluated
 *      point is a point that could be returned), take the best, fantasise it, go on.
 * The GPs are cloned for the fantasies, so a round never changes what the planner was told.
 *
 * Determinism: every random choice comes from seeded Sobol streams (design.h) and a
 * splitmix64 stream keyed by (campaign seed, n_obs, n_pending), and GP fits are seeded the
 * same way; nothing depends on time or addresses.
 *
 * Cost: almost all of it is gp_predict's O(n^2) variance (a triangular solve per candidate
 * and objective); hence one pool per round, lazy re-scoring, and fewer candidates above 150
 * observations.
 */
#include "planner/planner.h"

#include "planner/acq.h"
#include "planner/design.h"
#include "planner/ehvi.h"
#include "planner/hv.h"
#include "planner/space.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Tuning, measured with tests/bench/bench_planner.c (docs/bench-planner.md): more candidates,
 * starts or steps did not change the benchmark medians beyond seed noise; no refinement
 * lowered them clearly; 20 gradient steps instead of 40 changed no problem beyond noise (paired
 * over 60 seeds) and saves 12 % of a proposal at n = 100. */
#define N_REFINE 6         /* pool points refined by gradient ascent per pick */
#define REFINE_ITERS 20    /* gradient steps per refinement */
#define LOCAL_SHARE 4      /* 1/LOCAL_SHARE of the pool perturbs good observed points */
#define LOCAL_SD 0.05      /* their spread in the unit cube (half of them at a fifth of it) */
#define MAX_MODEL_OBS 1000 /* GPs beyond this many observations use a subset (model_subset) */
#define UCB_BETA 2.0
#define PI_XI_REL 0.01        /* PI margin, share of the objective's standard deviation */
#define MAX_DESIGN_TRIES 2000 /* infeasible design points skipped per wanted point, at most */
#define CALIB_MIN 0.0625      /* smallest leave-one-out variance multiplier (sd x 0.25) */
/* exploration model (explore_model): s_f^2 at least EXPLORE_FLOOR s_a^2 for the acquisition's
 * variance when the fitted noise variance (standardised) exceeds EXPLORE_MIN_NOISE */
#define EXPLORE_FLOOR 0.05
#define EXPLORE_MIN_NOISE 3e-4

struct planner {
    struct campaign c;
    struct space s;
    enum acq_kind kind;
    size_t n_obs, cap_obs_x, cap_obs_y;
    double *obs_x; /* n_obs rows of n_params, parameters' units */
    double *obs_y; /* n_obs rows of n_objectives, objectives' units */
    size_t n_pend, cap_pend;
    double *pend_x;
};

struct cand {
    size_t index; /* row of cand_u */
    double value; /* acquisition value when last evaluated (+inf: never) */
    double var;   /* sum of scaled variances then */
};

/* Everything one model-based pick needs. */
struct round {
    const struct planner *p;
    size_t d, m;
    struct gp *gp[CAMPAIGN_MAX_OBJECTIVES]; /* fantasised clones */
    /* exploration models (round_fit): the acquisition takes its variance from gp_var[k] when
     * not NULL; same data and fantasies as gp[k] */
    struct gp *gp_var[CAMPAIGN_MAX_OBJECTIVES];
    double ref[CAMPAIGN_MAX_OBJECTIVES]; /* minimisation form */
    double var_scale[CAMPAIGN_MAX_OBJECTIVES];
    double y_std[CAMPAIGN_MAX_OBJECTIVES];
    double var_mult[CAMPAIGN_MAX_OBJECTIVES]; /* EHVI sees var * var_mult (calibration) */
    double *front; /* observed values + fantasy means, minimisation form, n_front rows */
    size_t n_front, cap_front;
    double *good_u; /* unit-cube inputs of good observed points, n_good rows */
    size_t n_good;
    struct acq_context ctx;
    struct ehvi_front *ehvi;
    int fixed[CAMPAIGN_MAX_PARAMS];
    size_t n_candidates; /* wanted */
    double *cand_u;      /* the pool: n_cand feasible points (unit cube) */
    struct cand *cand;   /* per pool point: latest acquisition value, sorted by round_pick */
    size_t n_cand;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
    return ((double)(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
}

static double std_normal(uint64_t *state)
{
    double u1 = uniform01(state), u2 = uniform01(state);
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static int grow(double **arr, size_t *cap, size_t need, size_t row)
{
    if (need <= *cap)
        return 0;
    assert(row > 0); /* rows of zero doubles would make a zero-byte realloc */
    size_t cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need)
        cap2 *= 2;
    double *a = realloc(*arr, cap2 * row * sizeof(double));
    if (a == NULL)
        return -ENOMEM;
    *arr = a;
    *cap = cap2;
    return 0;
}

int planner_new(const struct campaign *c, struct planner **ret, struct ll_error *reterr)
{
    *ret = NULL;
    enum acq_kind kind;
    if (acq_kind_from_name(c->acquisition, &kind) != 0)
        return ll_error_set(reterr, -EINVAL, "unknown acquisition '%s'", c->acquisition);
    if (c->n_params < 1 || c->n_params > CAMPAIGN_MAX_PARAMS || c->n_objectives < 1 ||
        c->n_objectives > CAMPAIGN_MAX_OBJECTIVES)
        return ll_error_set(reterr, -EINVAL, "campaign has no parameters or no objectives");
    if ((kind == ACQ_EI || kind == ACQ_PI || kind == ACQ_UCB) && c->n_objectives != 1)
        return ll_error_set(reterr,
                            -EINVAL,
                            "acquisition '%s' needs exactly one objective (this campaign has "
                            "%zu; use ehvi)",
                            c->acquisition,
                            c->n_objectives);
    size_t n_measured = 0;
    for (size_t k = 0; k < c->n_objectives; k++)
        n_measured += !campaign_objective_computed(c, k);
    if (n_measured == 0)
        return ll_error_set(
            reterr, -EINVAL, "every objective is computed from the parameters: nothing to learn");
    if (kind == ACQ_EHVI && c->n_objectives > 3)
        return ll_error_set(reterr,
                            -EINVAL,
                            "acquisition 'ehvi' handles 1 to 3 objectives, not %zu (use "
                            "uncertainty or random)",
                            c->n_objectives);
    struct planner *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    p->c = *c;
    p->kind = kind;
    space_init(&p->s, c);
    *ret = p;
    return 0;
}

void planner_free(struct planner **p)
{
    if (p == NULL || *p == NULL)
        return;
    free((*p)->obs_x);
    free((*p)->obs_y);
    free((*p)->pend_x);
    free(*p);
    *p = NULL;
}

size_t planner_n_obs(const struct planner *p)
{
    return p->n_obs;
}

size_t planner_n_pending(const struct planner *p)
{
    return p->n_pend;
}

const struct campaign *planner_campaign(const struct planner *p)
{
    return &p->c;
}

static int check_x(const struct planner *p, const double *x, struct ll_error *reterr)
{
    for (size_t j = 0; j < p->s.d; j++) {
        const struct campaign_param *par = &p->c.params[j];
        if (!isfinite(x[j]))
            return ll_error_set(
                reterr, -EINVAL, "parameter '%s' is not a finite number", par->name);
        if (x[j] < par->low || x[j] > par->high)
            return ll_error_set(reterr,
                                -EINVAL,
                                "parameter '%s' = %.10g is outside its bounds [%.10g, %.10g]",
                                par->name,
                                x[j],
                                par->low,
                                par->high);
    }
    return 0;
}

int planner_tell(struct planner *p, const double *x, const double *y, struct ll_error *reterr)
{
    size_t d = p->c.n_params, m = p->c.n_objectives;
    int r = check_x(p, x, reterr);
    if (r != 0)
        return r;
    double yc[CAMPAIGN_MAX_OBJECTIVES];
    for (size_t k = 0; k < m; k++) {
        if (campaign_objective_computed(&p->c, k)) {
            if ((r = campaign_objective_eval(&p->c, k, x, &yc[k], reterr)) != 0)
                return r;
            continue;
        }
        yc[k] = y[k];
        if (!isfinite(y[k]))
            return ll_error_set(
                reterr, -EINVAL, "objective '%s' is not a finite number", p->c.objectives[k].name);
    }
    if (grow(&p->obs_x, &p->cap_obs_x, p->n_obs + 1, d) != 0 ||
        grow(&p->obs_y, &p->cap_obs_y, p->n_obs + 1, m) != 0)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    memcpy(p->obs_x + p->n_obs * d, x, d * sizeof(double));
    memcpy(p->obs_y + p->n_obs * m, yc, m * sizeof(double));
    p->n_obs++;
    return 0;
}

int planner_add_pending(struct planner *p, const double *x, struct ll_error *reterr)
{
    size_t d = p->c.n_params;
    int r = check_x(p, x, reterr);
    if (r != 0)
        return r;
    if (grow(&p->pend_x, &p->cap_pend, p->n_pend + 1, d) != 0)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    memcpy(p->pend_x + p->n_pend * d, x, d * sizeof(double));
    p->n_pend++;
    return 0;
}

/* Computed objective k at u (unit cube), minimisation form; 0 or -EDOM where its expression
 * cannot be evaluated. */
static int computed_value(const struct planner *p, size_t k, const double *u, double *ret)
{
    double x[CAMPAIGN_MAX_PARAMS];
    space_from_unit(&p->s, u, x);
    if (campaign_objective_eval(&p->c, k, x, ret, NULL) != 0)
        return -EDOM;
    if (p->c.objectives[k].maximise)
        *ret = -*ret;
    return 0;
}

/* 1 when every computed objective can be evaluated at u (unit cube): a point where one cannot
 * (a division by zero in its expression) is treated like an infeasible one. */
static int computable(const struct planner *p, const double *u)
{
    double v;
    for (size_t k = 0; k < p->c.n_objectives; k++)
        if (campaign_objective_computed(&p->c, k) && computed_value(p, k, u, &v) != 0)
            return 0;
    return 1;
}

/* Writes the feasible design points with indices first .. first+count-1 (unit cube) of the
 * campaign's design: the scrambled Sobol sequence with infeasible points (and points where a
 * computed objective cannot be evaluated) skipped. */
static int design_points(
    const struct planner *p, size_t first, size_t count, double *ret_u, struct ll_error *reterr)
{
    struct design *g = NULL;
    size_t d = p->s.d, found = 0, tries = 0;
    int r = design_new(d, p->c.seed, 0, &g);
    if (r != 0)
        return ll_error_set(reterr, r, "cannot make the Sobol design");
    double u[CAMPAIGN_MAX_PARAMS];
    while (found < first + count) {
        if (tries++ > (first + count + 1) * MAX_DESIGN_TRIES) {
            r = ll_error_set(
                reterr, -ERANGE, "the constraints leave (almost) no feasible point in the bounds");
            break;
        }
        design_next(g, u);
        if (!space_make_feasible(&p->s, u) || !computable(p, u))
            continue;
        if (found >= first)
            memcpy(ret_u + (found - first) * d, u, d * sizeof(double));
        found++;
    }
    design_free(&g);
    return r;
}

int planner_design(
    const struct planner *p, size_t first, size_t count, double *ret_x, struct ll_error *reterr)
{
    size_t d = p->s.d;
    ll_error_clear(reterr);
    if (count < 1 || count > CAMPAIGN_MAX_BATCH)
        return ll_error_set(
            reterr, -EINVAL, "design batch size %zu is not in 1 .. %d", count, CAMPAIGN_MAX_BATCH);
    double *u = malloc(count * d * sizeof(double));
    if (u == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    int r = design_points(p, first, count, u, reterr);
    for (size_t i = 0; i < count && r == 0; i++)
        space_from_unit(&p->s, u + i * d, ret_x + i * d);
    free(u);
    return r;
}

/* The "prediction" of computed objective k: its value, variance 0, and (dmu not NULL) the
 * gradient by central differences over the continuous coordinates (one-sided at a bound;
 * 0 for the others). */
#define COMPUTED_STEP 1e-6
static int computed_predict(const struct planner *p,
                            size_t k,
                            const double *u,
                            double *ret_mean,
                            double *ret_var,
                            double *ret_dmean,
                            double *ret_dvar)
{
    size_t d = p->s.d;
    if (computed_value(p, k, u, ret_mean) != 0)
        return -EDOM;
    if (ret_var)
        *ret_var = 0;
    for (size_t j = 0; j < d && (ret_dmean || ret_dvar); j++) {
        if (ret_dvar)
            ret_dvar[j] = 0;
        if (!ret_dmean)
            continue;
        ret_dmean[j] = 0;
        if (p->s.kind[j] != CAMPAIGN_PARAM_CONTINUOUS)
            continue;
        double t[CAMPAIGN_MAX_PARAMS], lo, hi;
        memcpy(t, u, d * sizeof(double));
        double a = u[j] - COMPUTED_STEP < 0 ? 0 : u[j] - COMPUTED_STEP;
        double b = u[j] + COMPUTED_STEP > 1 ? 1 : u[j] + COMPUTED_STEP;
        t[j] = a;
        int r = computed_value(p, k, t, &lo);
        t[j] = b;
        if (r != 0 || computed_value(p, k, t, &hi) != 0)
            return -EDOM;
        ret_dmean[j] = (hi - lo) / (b - a);
    }
    return 0;
}

/* Objective k's prediction at u: the GP's (gp[k]; the variance from gp_var[k] when there is
 * an exploration model, then the fitted model's O(n^2) variance is not computed), or the
 * computed objective's value (gp[k] NULL). Returns 0 or a negative code. */
static int objective_predict(const struct planner *p,
                             struct gp *const *gp,
                             struct gp *const *gp_var,
                             size_t k,
                             const double *u,
                             double *ret_mean,
                             double *ret_var,
                             double *ret_dmean,
                             double *ret_dvar)
{
    if (gp[k] == NULL)
        return computed_predict(p, k, u, ret_mean, ret_var, ret_dmean, ret_dvar);
    const struct gp *gv = gp_var ? gp_var[k] : NULL;
    int r = gp_predict(gp[k], u, ret_mean, gv ? NULL : ret_var, ret_dmean, gv ? NULL : ret_dvar);
    if (r == 0 && gv && (ret_var || ret_dvar))
        r = gp_predict(gv, u, NULL, ret_var, NULL, ret_dvar);
    return r;
}

/* Acquisition value at u (unit cube, feasible) and, if grad is not NULL, its gradient over
 * the continuous coordinates (0 for fixed ones). *ret_var_sum gets sum_k var_k/scale_k. */
static double round_eval(const struct round *rd, const double *u, double *grad, double *ret_var_sum)
{
    double mu[CAMPAIGN_MAX_OBJECTIVES], var[CAMPAIGN_MAX_OBJECTIVES];
    double dmu[CAMPAIGN_MAX_OBJECTIVES][CAMPAIGN_MAX_PARAMS];
    double dvar[CAMPAIGN_MAX_OBJECTIVES][CAMPAIGN_MAX_PARAMS];
    double da_dmu[CAMPAIGN_MAX_OBJECTIVES], da_dvar[CAMPAIGN_MAX_OBJECTIVES];
    for (size_t k = 0; k < rd->m; k++)
        if (objective_predict(rd->p,
                              rd->gp,
                              rd->gp_var,
                              k,
                              u,
                              &mu[k],
                              &var[k],
                              grad ? &dmu[k][0] : NULL,
                              grad ? &dvar[k][0] : NULL) != 0)
            return (double)NAN;
    if (ret_var_sum) {
        *ret_var_sum = 0;
        for (size_t k = 0; k < rd->m; k++)
            *ret_var_sum += var[k] / rd->var_scale[k];
    }
    for (size_t k = 0; k < rd->m; k++)
        var[k] *= rd->var_mult[k];
    double a = acq_value(&rd->ctx, mu, var, grad ? da_dmu : NULL, grad ? da_dvar : NULL);
    if (grad) {
        for (size_t k = 0; k < rd->m; k++)
            da_dvar[k] *= rd->var_mult[k];
        for (size_t j = 0; j < rd->d; j++) {
            double g = 0;
            if (!rd->fixed[j])
                for (size_t k = 0; k < rd->m; k++)
                    g += da_dmu[k] * dmu[k][j] + da_dvar[k] * dvar[k][j];
            grad[j] = isfinite(g) ? g : 0;
        }
    }
    return a;
}

/* Projected gradient ascent from u (in place) over the continuous coordinates, with a step of
 * adaptive length h along the gradient's direction (normalised by its largest component).
 * Returns the value at the final u. */
static double refine(const struct round *rd, double *u, double f)
{
    size_t d = rd->d;
    double g[CAMPAIGN_MAX_PARAMS], gt[CAMPAIGN_MAX_PARAMS], t[CAMPAIGN_MAX_PARAMS];
    f = round_eval(rd, u, g, NULL);
    if (!isfinite(f))
        return f;
    double h = 0.05;
    for (int it = 0; it < REFINE_ITERS && h > 1e-6; it++) {
        double gmax = 0;
        for (size_t j = 0; j < d; j++)
            if (fabs(g[j]) > gmax)
                gmax = fabs(g[j]);
        if (!(gmax > 0))
            break;
        for (size_t j = 0; j < d; j++)
            t[j] = u[j] + h * g[j] / gmax;
        space_project(&rd->p->s, t, rd->fixed);
        double ft = round_eval(rd, t, gt, NULL);
        if (isfinite(ft) && ft > f) {
            memcpy(u, t, d * sizeof(double));
            memcpy(g, gt, d * sizeof(double));
            f = ft;
            h = h * 2 < 0.25 ? h * 2 : 0.25;
        } else {
            h *= 0.25;
        }
    }
    return f;
}

/* Keeps the n_best best (value, point) pairs, sorted by value descending. */
static void
keep_best(double *vals, double *pts, size_t *n, size_t cap, size_t d, double v, const double *u)
{
    if (*n == cap && !(v > vals[cap - 1]))
        return;
    size_t i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && vals[i - 1] < v) {
        vals[i] = vals[i - 1];
        memcpy(pts + i * d, pts + (i - 1) * d, d * sizeof(double));
        i--;
    }
    vals[i] = v;
    memcpy(pts + i * d, u, d * sizeof(double));
}

/* The round's candidate pool: perturbations of good observed points (a quarter, half of them
 * at LOCAL_SD, half at a fifth of it) and scrambled Sobol points, all made feasible. Drawn
 * once per round and shared by the q picks. */
static int round_make_candidates(struct round *rd, uint64_t stream, struct ll_error *reterr)
{
    size_t d = rd->d, n_local = rd->n_good ? rd->n_candidates / LOCAL_SHARE : 0;
    double u[CAMPAIGN_MAX_PARAMS];
    struct design *g = NULL;
    rd->cand_u = malloc(rd->n_candidates * d * sizeof(double));
    rd->cand = malloc(rd->n_candidates * sizeof(*rd->cand));
    if (rd->cand_u == NULL || rd->cand == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    int r = design_new(d, rd->p->c.seed, stream, &g);
    if (r != 0)
        return ll_error_set(reterr, r, "cannot make the candidate set");
    uint64_t rng = ((uint64_t)rd->p->c.seed << 32) ^ stream;
    rd->n_cand = 0;
    for (size_t i = 0; i < rd->n_candidates; i++) {
        if (i < n_local) {
            const double *c = rd->good_u + (i % rd->n_good) * d;
            double sd = LOCAL_SD * (i < n_local / 2 ? 1.0 : 0.2);
            for (size_t j = 0; j < d; j++)
                u[j] = c[j] + sd * std_normal(&rng);
        } else {
            design_next(g, u);
        }
        if (!space_make_feasible(&rd->p->s, u) || !computable(rd->p, u))
            continue;
        memcpy(rd->cand_u + rd->n_cand * d, u, d * sizeof(double));
        rd->cand[rd->n_cand].index = rd->n_cand;
        rd->cand[rd->n_cand].value = (double)INFINITY; /* not evaluated yet */
        rd->cand[rd->n_cand].var = 0;
        rd->n_cand++;
    }
    design_free(&g);
    return 0;
}

static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index); /* deterministic order */
}

/* Chooses one point (unit cube) maximising the current acquisition over the pool, then refines
 * the best few. Lazy greedy: a Kriging-believer fantasy leaves the posterior mean unchanged,
 * lowers variances and (for EI/EHVI) improves the incumbent front, so a candidate's value from
 * an earlier pick bounds its current one — exactly for EI, UCB and uncertainty; for EHVI no
 * re-scored value rose in ~21,000 re-scorings on the benchmark problems; not always for PI (a
 * smaller variance can raise PI; lazy PI is a heuristic).
 * Candidates are re-evaluated in order of their stale values until no stale value can beat the
 * N_REFINE best fresh ones. The first pick evaluates every candidate. */
static int round_pick(struct round *rd, double *ret_u, double *ret_value, struct ll_error *reterr)
{
    size_t d = rd->d;
    double best_vals[N_REFINE], best_pts[N_REFINE * CAMPAIGN_MAX_PARAMS];
    double u[CAMPAIGN_MAX_PARAMS];
    size_t n_best = 0, var_i = (size_t)-1;
    double max_var = -1;
    qsort(rd->cand, rd->n_cand, sizeof(*rd->cand), cmp_cand);
    for (size_t i = 0; i < rd->n_cand; i++) {
        struct cand *c = &rd->cand[i];
        if (n_best == N_REFINE && !(c->value > best_vals[N_REFINE - 1]))
            break; /* stale bound cannot beat what is fresh */
        const double *cu = rd->cand_u + c->index * d;
        double v = round_eval(rd, cu, NULL, &c->var);
        c->value = isfinite(v) ? v : -(double)INFINITY;
        if (!isfinite(v))
            continue;
        keep_best(best_vals, best_pts, &n_best, N_REFINE, d, v, cu);
        if (c->var > max_var) {
            max_var = c->var;
            var_i = c->index;
        }
    }
    if (n_best == 0)
        return ll_error_set(
            reterr, -ERANGE, "no feasible candidate with a finite acquisition value was found");
    double top = best_vals[0];
    memcpy(ret_u, best_pts, d * sizeof(double));
    for (size_t i = 0; i < n_best; i++) {
        memcpy(u, best_pts + i * d, d * sizeof(double));
        refine(rd, u, best_vals[i]);
        if (!space_make_feasible(&rd->p->s, u))
            continue;
        double v = round_eval(rd, u, NULL, NULL);
        if (isfinite(v) && v > top) {
            top = v;
            memcpy(ret_u, u, d * sizeof(double));
        }
    }
    if (!(top > 0) && rd->ctx.kind != ACQ_UCB && var_i != (size_t)-1) {
        /* the acquisition is flat zero wherever we looked: learn where we know least */
        memcpy(ret_u, rd->cand_u + var_i * d, d * sizeof(double));
        top = 0;
    }
    *ret_value = top;
    return 0;
}

static int front_add(struct round *rd, const double *y)
{
    if (grow(&rd->front, &rd->cap_front, rd->n_front + 1, rd->m) != 0)
        return -ENOMEM;
    memcpy(rd->front + rd->n_front * rd->m, y, rd->m * sizeof(double));
    rd->n_front++;
    return 0;
}

/* Conditions every GP on its mean at u and adds the mean vector (computed objectives: their
 * values) to the front. Returns 0 or -ENOMEM; a point where a computed objective cannot be
 * evaluated is left out of the fantasies. */
static int round_fantasise(struct round *rd, const double *u)
{
    double mu[CAMPAIGN_MAX_OBJECTIVES];
    for (size_t k = 0; k < rd->m; k++)
        if (rd->gp[k] == NULL && computed_value(rd->p, k, u, &mu[k]) != 0)
            return 0;
    for (size_t k = 0; k < rd->m; k++) {
        if (rd->gp[k] == NULL)
            continue;
        if (gp_predict(rd->gp[k], u, &mu[k], NULL, NULL, NULL) != 0)
            return -ENOMEM;
        int r = gp_add_observation(rd->gp[k], u, mu[k]);
        if (r == -ENOMEM)
            return r; /* -EDOM: numerically a duplicate; the model already knows it */
        if (rd->gp_var[k] != NULL && gp_add_observation(rd->gp_var[k], u, mu[k]) == -ENOMEM)
            return -ENOMEM;
    }
    return front_add(rd, mu);
}

/* Sets up the acquisition for the current front (after every fantasy). */
static int round_prepare_acq(struct round *rd, struct ll_error *reterr)
{
    struct acq_context *ctx = &rd->ctx;
    ehvi_front_free(&rd->ehvi);
    memset(ctx, 0, sizeof(*ctx));
    ctx->kind = rd->p->kind;
    ctx->m = rd->m;
    ctx->beta = UCB_BETA;
    ctx->xi = PI_XI_REL * rd->y_std[0];
    for (size_t k = 0; k < rd->m; k++)
        ctx->scale[k] = rd->var_scale[k];
    double best = (double)INFINITY;
    for (size_t i = 0; i < rd->n_front; i++)
        if (rd->front[i * rd->m] < best)
            best = rd->front[i * rd->m];
    ctx->best = best;
    if (ctx->kind == ACQ_EHVI && rd->m == 1 && rd->ref[0] < best)
        ctx->best = rd->ref[0];
    if (ctx->kind == ACQ_EHVI && rd->m >= 2) {
        /* ehvi_front_new refuses a non-finite value: a model that predicts one at a pending
         * point (data so degenerate that the fit is not finite) is a numerical failure, not a
         * lack of memory */
        for (size_t i = 0; i < rd->n_front * rd->m; i++)
            if (!isfinite(rd->front[i]))
                return ll_error_set(reterr,
                                    -EDOM,
                                    "the models predict a value that is not a finite number at a "
                                    "pending point: no EHVI front");
        rd->ehvi = ehvi_front_new(rd->front, rd->n_front, rd->m, rd->ref);
        if (rd->ehvi == NULL)
            return ll_error_set(reterr, -ENOMEM, "cannot prepare the EHVI front");
        ctx->front = rd->ehvi;
    }
    return 0;
}

static void round_free(struct round *rd)
{
    for (size_t k = 0; k < CAMPAIGN_MAX_OBJECTIVES; k++) {
        gp_free(&rd->gp[k]);
        gp_free(&rd->gp_var[k]);
    }
    ehvi_front_free(&rd->ehvi);
    free(rd->front);
    free(rd->good_u);
    free(rd->cand_u);
    free(rd->cand);
}

/* Number of Sobol candidates per pick: thousands while cheap, fewer when each prediction
 * costs O(n^2) with hundreds of observations (keeps a round within the time targets). */
static size_t candidate_count(size_t n, size_t d)
{
    size_t base = 1024 + 256 * d;
    if (n > 150)
        base = base * 150 / n;
    return base < 256 ? 256 : base;
}

/* Observed points that are good starting places for local candidates: the non-dominated ones
 * (minimisation form), at most 32, in order of observation. */
static int collect_good(struct round *rd, const double *u_obs, const double *y_min, size_t n)
{
    size_t m = rd->m, d = rd->d;
    rd->good_u = malloc((n < 32 ? n : 32) * d * sizeof(double) + sizeof(double));
    if (rd->good_u == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n && rd->n_good < 32; i++) {
        int dominated = 0;
        for (size_t o = 0; o < n && !dominated; o++) {
            int le = 1, lt = 0;
            for (size_t k = 0; k < m; k++) {
                le &= y_min[o * m + k] <= y_min[i * m + k];
                lt |= y_min[o * m + k] < y_min[i * m + k];
            }
            dominated = le && lt;
        }
        if (!dominated)
            memcpy(rd->good_u + rd->n_good++ * d, u_obs + i * d, d * sizeof(double));
    }
    return 0;
}

/* The exploration model of objective k (EHVI only). With noisy observations the likelihood
 * cannot tell a small interaction part of the kernel from none: a fit that is almost purely
 * additive (s_f^2 << s_a^2) then has a small posterior variance everywhere, since each 1-D
 * component is pooled over all observations, also where the additive shapes are wrong (kinks,
 * corners that interact). So when the fitted noise variance exceeds EXPLORE_MIN_NOISE and
 * s_f^2 < EXPLORE_FLOOR s_a^2, the acquisition's variance comes from a second GP on the same
 * data with s_f^2 = EXPLORE_FLOOR s_a^2 and the other hyperparameters as fitted; the mean
 * stays the fitted model's. Noise-free fits are left alone: there a small s_f^2 is what the
 * data show. Measured paired over 120 seeds (docs/bench-planner.md, stop 12): noisy perovskite
 * world +0.006 HV fraction, the noise-free problems unchanged. */
static int explore_model(struct round *rd,
                         size_t k,
                         const double *u_obs,
                         const double *yk,
                         size_t n,
                         const struct gp_hyper *h,
                         struct ll_error *reterr)
{
    if (!(h->add_var > 0 && h->noise_var > EXPLORE_MIN_NOISE &&
          h->signal_var < EXPLORE_FLOOR * h->add_var))
        return 0;
    struct gp_hyper hx = *h;
    hx.signal_var = EXPLORE_FLOOR * h->add_var;
    struct ll_error err;
    int r = gp_fit_fixed(u_obs, yk, n, rd->d, &hx, &rd->gp_var[k], &err);
    if (r == -ENOMEM)
        return ll_error_set(reterr, r, "out of memory");
    return 0; /* any other failure: the fitted model's own variance (gp_var[k] stays NULL) */
}

/* Fits the GPs and fills the round's fixed parts. u_obs: n rows (unit cube). */
static int round_fit(struct round *rd,
                     const double *u_obs,
                     const double *y_min,
                     size_t n,
                     struct planner_round_info *info,
                     struct ll_error *reterr)
{
    const struct planner *p = rd->p;
    size_t m = rd->m;
    double *yk = malloc(n * sizeof(double));
    if (yk == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    int r = 0;
    for (size_t k = 0; k < m && r == 0; k++) {
        if (campaign_objective_computed(&p->c, k)) {
            /* known exactly: no model (gp[k] stays NULL), variance 0 */
            rd->y_std[k] = rd->var_scale[k] = rd->var_mult[k] = 1.0;
            continue;
        }
        struct gp_options opt;
        gp_options_default(&opt);
        opt.seed = p->c.seed * 1000003ul + n * 31ul + k;
        if (n > 200)
            opt.n_restarts = 2;
        /* ARD + first-order additive kernel, length scales shared (see gp.h) */
        opt.additive = 1;
        /* the prior mean is the worst value observed, not fitted (see the file comment) */
        opt.fix_mean = 1;
        opt.fixed_mean = -(double)INFINITY;
        for (size_t i = 0; i < n; i++) {
            yk[i] = y_min[i * m + k];
            opt.fixed_mean = yk[i] > opt.fixed_mean ? yk[i] : opt.fixed_mean;
        }
        r = gp_fit(u_obs, yk, n, rd->d, &opt, &rd->gp[k], reterr);
        if (r != 0) {
            ll_error_prefix(reterr, "objective '%s': model fit failed", p->c.objectives[k].name);
            break;
        }
        struct gp_hyper h;
        gp_get_hyper(rd->gp[k], &h);
        rd->y_std[k] = h.y_std > 0 ? h.y_std : 1;
        rd->var_scale[k] = rd->y_std[k] * rd->y_std[k];
        rd->var_mult[k] = 1.0;
        if (p->kind == ACQ_EHVI) {
            /* leave-one-out calibration: shrink an over-dispersed posterior (mean z^2 < 1) */
            double z2 = gp_loo_mean_z2(rd->gp[k]);
            if (isfinite(z2))
                rd->var_mult[k] = z2 < CALIB_MIN ? CALIB_MIN : z2 > 1.0 ? 1.0 : z2;
            r = explore_model(rd, k, u_obs, yk, n, &h, reterr);
        }
        if (info) {
            info->hyper[k] = h;
            info->model_fitted = 1;
            if (rd->gp_var[k] != NULL) {
                struct gp_hyper hx;
                gp_get_hyper(rd->gp_var[k], &hx);
                info->explore_signal_var[k] = hx.signal_var;
            }
        }
    }
    free(yk);
    return r;
}

/* With more than MAX_MODEL_OBS observations the GPs are fitted on a deterministic subset of
 * MAX_MODEL_OBS (the cost of a fit grows as n^3 and of a prediction as n^2): the observations
 * that are non-dominated in the first pass, then the rest evenly spaced in observation order.
 * The EHVI front and the local candidates still use every observation. */
static void model_subset(size_t m,
                         size_t d,
                         const double *u_obs,
                         const double *y_min,
                         size_t n,
                         double *ret_u,
                         double *ret_y)
{
    size_t got = 0;
    unsigned char *taken = calloc(n, 1);
    for (size_t i = 0; i < n && taken && got < MAX_MODEL_OBS / 2; i++) {
        int dominated = 0;
        for (size_t o = 0; o < n && !dominated; o++) {
            int le = 1, lt = 0;
            for (size_t k = 0; k < m; k++) {
                le &= y_min[o * m + k] <= y_min[i * m + k];
                lt |= y_min[o * m + k] < y_min[i * m + k];
            }
            dominated = le && lt;
        }
        if (!dominated) {
            taken[i] = 1;
            memcpy(ret_u + got * d, u_obs + i * d, d * sizeof(double));
            memcpy(ret_y + got * m, y_min + i * m, m * sizeof(double));
            got++;
        }
    }
    size_t rest = MAX_MODEL_OBS - got, n_free = n - got;
    for (size_t t = 0; t < rest; t++) {
        /* the (t * n_free / rest)-th observation not taken yet */
        size_t want = t * n_free / rest, seen = 0, i = 0;
        for (; i < n; i++) {
            if (taken && taken[i])
                continue;
            if (seen++ == want)
                break;
        }
        if (i == n)
            i = n - 1 - t;
        memcpy(ret_u + got * d, u_obs + i * d, d * sizeof(double));
        memcpy(ret_y + got * m, y_min + i * m, m * sizeof(double));
        got++;
    }
    free(taken);
}

static void obs_min_form(const struct planner *p, double *u_obs, double *y_min)
{
    size_t d = p->s.d, m = p->c.n_objectives;
    for (size_t i = 0; i < p->n_obs; i++) {
        space_to_unit(&p->s, p->obs_x + i * d, u_obs + i * d);
        for (size_t k = 0; k < m; k++) {
            double y = p->obs_y[i * m + k];
            y_min[i * m + k] = p->c.objectives[k].maximise ? -y : y;
        }
    }
}

static double observed_hv(const struct planner *p, const double *y_min)
{
    size_t m = p->c.n_objectives;
    double ref[CAMPAIGN_MAX_OBJECTIVES];
    for (size_t k = 0; k < m; k++)
        ref[k] = p->c.objectives[k].maximise ? -p->c.objectives[k].ref : p->c.objectives[k].ref;
    if (p->n_obs == 0)
        return 0;
    return hv_compute(y_min, p->n_obs, m, ref);
}

/* The models' prediction at the q points u (unit cube) into ret_points (see planner.h), from
 * models conditioned on the finished experiments only. */
static void predict_points(const struct planner *p,
                           struct gp *const *gp,
                           const double *u,
                           size_t q,
                           struct planner_point_info *ret_points)
{
    size_t d = p->s.d, m = p->c.n_objectives;
    for (size_t i = 0; i < q; i++) {
        struct planner_point_info *pt = &ret_points[i];
        int ok = 1;
        for (size_t k = 0; k < m && ok; k++) {
            double mu, var;
            ok = objective_predict(p, gp, NULL, k, u + i * d, &mu, &var, NULL, NULL) == 0 &&
                 isfinite(mu) && isfinite(var);
            pt->pred_mean[k] = p->c.objectives[k].maximise ? -mu : mu;
            pt->pred_sd[k] = sqrt(var > 0 ? var : 0);
        }
        pt->predicted = ok;
        for (size_t k = 0; k < m && !ok; k++)
            pt->pred_mean[k] = pt->pred_sd[k] = (double)NAN;
    }
}

/* The model-based part of a round: picks points first .. q-1 of ret_u, with the points
 * before `first` (design points of this batch) fantasised like pending ones; with ret_points,
 * the models' predictions at all q points. */
static int ask_model(struct planner *p,
                     size_t first,
                     size_t q,
                     double *ret_u,
                     double *ret_value,
                     const double *u_obs,
                     const double *y_min,
                     struct planner_round_info *info,
                     struct planner_point_info *ret_points,
                     struct ll_error *reterr)
{
    struct gp *fitted[CAMPAIGN_MAX_OBJECTIVES] = {NULL};
    struct round rd;
    size_t d = p->s.d, m = p->c.n_objectives, n = p->n_obs;
    memset(&rd, 0, sizeof(rd));
    rd.p = p;
    rd.d = d;
    rd.m = m;
    rd.n_candidates = candidate_count(n, d);
    for (size_t j = 0; j < d; j++)
        rd.fixed[j] = p->s.kind[j] != CAMPAIGN_PARAM_CONTINUOUS;
    for (size_t k = 0; k < m; k++)
        rd.ref[k] = p->c.objectives[k].maximise ? -p->c.objectives[k].ref : p->c.objectives[k].ref;
    int r;
    if (n <= MAX_MODEL_OBS) {
        r = round_fit(&rd, u_obs, y_min, n, info, reterr);
    } else {
        double *u_fit = malloc(MAX_MODEL_OBS * d * sizeof(double));
        double *y_fit = malloc(MAX_MODEL_OBS * m * sizeof(double));
        r = u_fit && y_fit ? 0 : ll_error_set(reterr, -ENOMEM, "out of memory");
        if (r == 0) {
            model_subset(rd.m, d, u_obs, y_min, n, u_fit, y_fit);
            r = round_fit(&rd, u_fit, y_fit, MAX_MODEL_OBS, info, reterr);
        }
        free(u_fit);
        free(y_fit);
    }
    if (r != 0)
        goto out;
    for (size_t k = 0; k < m && ret_points; k++)
        if (rd.gp[k] != NULL && (fitted[k] = gp_clone(rd.gp[k])) == NULL) {
            r = ll_error_set(reterr, -ENOMEM, "out of memory");
            goto out;
        }
    for (size_t i = 0; i < n && r == 0; i++)
        r = front_add(&rd, y_min + i * m);
    if (r == 0)
        r = collect_good(&rd, u_obs, y_min, n);
    double u[CAMPAIGN_MAX_PARAMS];
    for (size_t i = 0; i < p->n_pend && r == 0; i++) {
        space_to_unit(&p->s, p->pend_x + i * d, u);
        r = round_fantasise(&rd, u);
    }
    for (size_t i = 0; i < first && r == 0; i++)
        r = round_fantasise(&rd, ret_u + i * d);
    if (r != 0) {
        r = ll_error_set(reterr, r, "out of memory");
        goto out;
    }
    uint64_t stream = 1 + (uint64_t)n * 1000003ull + (uint64_t)p->n_pend * 1009ull + first;
    if ((r = round_make_candidates(&rd, stream, reterr)) != 0)
        goto out;
    for (size_t i = first; i < q; i++) {
        if ((r = round_prepare_acq(&rd, reterr)) != 0)
            goto out;
        if ((r = round_pick(&rd, ret_u + i * d, &ret_value[i], reterr)) != 0)
            goto out;
        if (i + 1 < q && (r = round_fantasise(&rd, ret_u + i * d)) != 0) {
            r = ll_error_set(reterr, r, "out of memory");
            goto out;
        }
    }
    if (ret_points)
        predict_points(p, fitted, ret_u, q, ret_points);
out:
    for (size_t k = 0; k < m; k++)
        gp_free(&fitted[k]);
    round_free(&rd);
    return r;
}

int planner_ask(struct planner *p,
                size_t q,
                double *ret_x,
                struct planner_point_info *ret_points,
                struct planner_round_info *ret_round,
                struct ll_error *reterr)
{
    size_t d = p->s.d, m = p->c.n_objectives, n = p->n_obs;
    size_t known = p->n_obs + p->n_pend;
    double *u_obs = NULL, *y_min = NULL, *u = NULL, *value = NULL;
    int r = 0;
    ll_error_clear(reterr);
    if (q < 1 || q > CAMPAIGN_MAX_BATCH)
        return ll_error_set(
            reterr, -EINVAL, "batch size %zu is not in 1 .. %d", q, CAMPAIGN_MAX_BATCH);
    u_obs = malloc((n + 1) * d * sizeof(double));
    y_min = malloc((n + 1) * m * sizeof(double));
    u = malloc(q * d * sizeof(double));
    value = calloc(q, sizeof(double));
    if (u_obs == NULL || y_min == NULL || u == NULL || value == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    obs_min_form(p, u_obs, y_min);
    if (ret_round) {
        memset(ret_round, 0, sizeof(*ret_round));
        ret_round->n_obs = n;
        ret_round->n_pending = p->n_pend;
        ret_round->hv = observed_hv(p, y_min);
    }
    /* points of the batch taken from the design: the initial design's remainder, or all of
     * them for "random" or while there are too few observations for a model */
    size_t n_design = q;
    if (p->kind != ACQ_RANDOM && n >= 2)
        n_design = known >= (size_t)p->c.initial ? 0 : (size_t)p->c.initial - known;
    if (n_design > q)
        n_design = q;
    if (n_design > 0 && (r = design_points(p, known, n_design, u, reterr)) != 0)
        goto out;
    for (size_t i = 0; ret_points && i < q; i++) {
        ret_points[i].predicted = 0;
        for (size_t k = 0; k < CAMPAIGN_MAX_OBJECTIVES; k++)
            ret_points[i].pred_mean[k] = ret_points[i].pred_sd[k] = (double)NAN;
    }
    if (n_design < q &&
        (r = ask_model(p, n_design, q, u, value, u_obs, y_min, ret_round, ret_points, reterr)) != 0)
        goto out;
    for (size_t i = 0; i < q; i++) {
        space_from_unit(&p->s, u + i * d, ret_x + i * d);
        if (ret_points) {
            ret_points[i].from_initial_design = i < n_design;
            ret_points[i].acquisition = value[i];
        }
    }
out:
    free(u_obs);
    free(y_min);
    free(u);
    free(value);
    return r;
}

/* planner — the ask/tell Bayesian-optimisation planner of a campaign.
 *
 * Usage: planner_new(campaign) once; planner_tell() every finished experiment (parameters
 * and measured objectives, in their own units); planner_add_pending() every experiment that
 * was proposed but is not measured yet; planner_ask(q) for the next q points. The planner
 * is a pure function of (campaign, observations in order, pending points in order, q): the
 * same inputs give the same proposals, so a stateless caller (`labloop plan`) that replays
 * the history gets what a long-lived one (labloopd) gets.
 *
 * What ask does:
 * - While observations + pending < campaign.initial (or acquisition "random"): the next
 *   points of the campaign's space-filling design — a scrambled Sobol sequence seeded by
 *   campaign.seed, restricted to the feasible set — at indices n_obs + n_pending + i, so
 *   repeated stateless calls continue one design.
 * - Otherwise one GP per objective (models/gp.h) on all observations (inputs scaled to the
 *   unit cube, maximised objectives negated so everything is minimised), then q points by
 *   sequential greedy selection: pending points, then each chosen point, are "fantasised"
 *   (Kriging believer: the GP is conditioned on its own predicted mean, hyperparameters
 *   kept). Each point maximises the acquisition — exact EHVI (with each GP's predictive
 *   variance multiplied by its leave-one-out calibration factor when that is below 1, see
 *   gp_loo_mean_z2) against the observed
 *   non-dominated front for 2-3 objectives, EI/PI/UCB for one, posterior variance for
 *   "uncertainty" — over scrambled Sobol candidates refined by projected gradient ascent.
 *   Integer and level parameters are rounded before a value is evaluated, so the value
 *   reported is that of the point returned; bounds and linear constraints always hold.
 *
 * Computed objectives (campaign.objectives[k].expr, see campaign.h) are not modelled: the
 * planner evaluates their expression wherever a model would predict (mean = the value,
 * variance 0, gradient by central differences), so EHVI trades the measured objectives
 * against an exactly known one; planner_tell computes their values itself.
 *
 * Scale: meant for up to a few thousand observations. Beyond 1000 the GPs are fitted on a
 * deterministic subset of 1000 (the non-dominated ones first), since a fit costs O(n^3).
 *
 * Memory: the planner owns copies of everything it is told; free with planner_free().
 * A planner is not thread-safe (one caller at a time); it holds no global state.
 *
 * GSL: the program must turn GSL's default error handler off (gsl_set_error_handler_off(),
 * once in main, as labloopd and labloop do): the planner and its models treat a failed GSL
 * step as an error or fall back, and the default handler would abort the process instead.
 */
#ifndef LL_PLANNER_H
#define LL_PLANNER_H

#include "common/ll_error.h"
#include "models/gp.h"
#include "planner/campaign.h"

#include <stddef.h>

struct planner; /* opaque */

/* Makes a planner for campaign c (copied). Returns 0, or -EINVAL with a message when the
 * campaign cannot be planned (an acquisition that does not fit the number of objectives:
 * ei/pi/ucb need one objective, ehvi one to three; no measured objective), or -ENOMEM. Free
 * with planner_free(). */
int planner_new(const struct campaign *c, struct planner **ret, struct ll_error *reterr);

/* Records one finished experiment: x holds n_params values in the parameters' units, y
 * n_objectives measured values in the objectives' units. A computed objective's entry of y is
 * ignored (it may be NaN): the planner evaluates the expression at x. Returns 0, or -EINVAL
 * with a message for a non-finite value, a parameter outside its bounds (x is not rounded or
 * checked against constraints: it is what was done) or an expression that cannot be evaluated
 * at x, -ENOMEM. */
int planner_tell(struct planner *p, const double *x, const double *y, struct ll_error *reterr);

/* Records one experiment proposed but not yet measured (n_params values). Same errors. */
int planner_add_pending(struct planner *p, const double *x, struct ll_error *reterr);

/* Per proposed point. */
struct planner_point_info {
    double acquisition; /* acquisition value when chosen (fantasies included), else 0 */
    /* What the models expect the point to measure, given the finished experiments only (no
     * pending ones, no fantasies): set for every point of a batch for which models were fitted
     * (predicted = 1), else predicted = 0 and both arrays NaN. In the objectives' own units and
     * sense (a maximised objective's mean is its value, not its negation); pred_sd is the
     * latent function's standard deviation, without the measurement noise. */
    double pred_mean[CAMPAIGN_MAX_OBJECTIVES];
    double pred_sd[CAMPAIGN_MAX_OBJECTIVES];
    int predicted;
    int from_initial_design; /* 1: design point; 0: chosen by the acquisition */
};

/* Per call of planner_ask. */
struct planner_round_info {
    size_t n_obs, n_pending;
    int model_fitted; /* 1 when GPs were fitted this round (hyper[] is then valid for the
                         measured objectives; a computed objective's hyper[k] is all zero) */
    struct gp_hyper hyper[CAMPAIGN_MAX_OBJECTIVES];
    /* > 0: the acquisition's variance for objective k came from the model with this signal
     * variance (standardised; the interaction floor for noisy data, see planner.c), 0: from
     * hyper[k] itself */
    double explore_signal_var[CAMPAIGN_MAX_OBJECTIVES];
    double hv; /* hypervolume of the observed values w.r.t. the reference point (any
                * number of objectives; 1 objective: improvement of the best over ref) */
};

/* Proposes q >= 1 points (q <= CAMPAIGN_MAX_BATCH): ret_x receives q rows of n_params values
 * in the parameters' units (integers integral, levels exact, within bounds and constraints).
 * ret_points (q entries: source, acquisition value and the models' predictions; asking for
 * them costs a copy of the fitted models) and ret_round may be NULL. Does not change what the
 * planner was told. Returns 0; -EINVAL for bad q; -ERANGE with a message if no feasible point can
 * be found (constraints that leave nothing); another negative code with a message if a model cannot
 * be fitted; -ENOMEM. */
int planner_ask(struct planner *p,
                size_t q,
                double *ret_x,
                struct planner_point_info *ret_points,
                struct planner_round_info *ret_round,
                struct ll_error *reterr);

/* The campaign's space-filling design alone: writes count points (1 <= count <=
 * CAMPAIGN_MAX_BATCH) of it, those at design indices first .. first+count-1, into ret_x (count
 * rows of n_params values in the parameters' units) — the very points planner_ask proposes from
 * the design at those indices (same feasibility, rounding and constraints). Uses nothing the
 * planner was told, so it still works when a model round cannot (labloopd falls back to it
 * when planner_ask fails, docs/daemon.md). Returns 0; -EINVAL for a bad count; -ERANGE with a
 * message when the constraints leave (almost) no feasible point; -ENOMEM. */
int planner_design(
    const struct planner *p, size_t first, size_t count, double *ret_x, struct ll_error *reterr);

size_t planner_n_obs(const struct planner *p);
size_t planner_n_pending(const struct planner *p);

/* The campaign the planner was made for. */
const struct campaign *planner_campaign(const struct planner *p);

/* Frees *p and NULLs it; NULL and *p == NULL are no-ops. */
void planner_free(struct planner **p);

#endif

/* acq — acquisition functions: how much a candidate with a given prediction is worth.
 *
 * Everything is in minimisation form (the planner negates maximised objectives first) and in
 * the objectives' own units. An acquisition maps the posterior mean mu[k] and latent variance
 * var[k] of each objective at a candidate to a value to MAXIMISE, and gives its derivatives
 * with respect to mu and var so that the optimiser can chain them with the GP's input
 * gradients (gp_predict's dmean/dvar).
 *
 * - EHVI: exact expected hypervolume improvement over a prepared front (planner/ehvi.h),
 *   2-3 objectives; with one objective it is EI against min(best, ref).
 * - EI:  E[max(best - Y, 0)] = (best - mu) Phi(z) + s phi(z), z = (best - mu)/s (Jones 1998).
 * - PI:  P(Y < best - xi) = Phi((best - xi - mu)/s).
 * - UCB: the lower confidence bound, negated: -(mu - beta s) (Srinivas et al. 2010), beta 2.
 * - uncertainty: sum_k var[k] / scale[k] (active learning: sample where the model knows least).
 * - random: the planner continues the Sobol design and never calls acq_value.
 */
#ifndef LL_ACQ_H
#define LL_ACQ_H

#include "planner/campaign.h"
#include "planner/ehvi.h"

#include <stddef.h>

enum acq_kind { ACQ_EHVI, ACQ_EI, ACQ_UCB, ACQ_PI, ACQ_UNCERTAINTY, ACQ_RANDOM };

/* Parses a campaign acquisition name; returns 0 or -EINVAL. */
int acq_kind_from_name(const char *name, enum acq_kind *ret);

struct acq_context {
    enum acq_kind kind;
    size_t m;                       /* objectives */
    const struct ehvi_front *front; /* EHVI with m = 2, 3 (not owned) */
    double best;                    /* EI/PI (and EHVI with m = 1): incumbent, minimisation */
    double xi;                      /* PI margin (objective units) */
    double beta;                    /* UCB width */
    double scale[CAMPAIGN_MAX_OBJECTIVES]; /* uncertainty: variance scale per objective */
};

/* Value of the acquisition for predictions mu[m], var[m] (latent variances >= 0); if ret_dmu
 * and ret_dvar are not NULL they receive the m partial derivatives. NaN for bad input. */
double acq_value(const struct acq_context *ctx,
                 const double *mu,
                 const double *var,
                 double *ret_dmu,
                 double *ret_dvar);

#endif

/* space — the search space of a campaign: bounds, discrete parameters, linear constraints.
 *
 * The planner works in the unit cube [0,1]^d: u_j = (x_j - low_j) / (high_j - low_j). Integer
 * and level parameters stay continuous there but are snapped ("rounded") to the unit-cube
 * images of their allowed values before any point is evaluated or returned. Linear constraints
 * sum_j a_j x_j (<= or ==) b are carried over to the cube (a_j (high_j - low_j), b - a.low)
 * and normalised to |a| = 1, so a tolerance is a distance in the cube.
 *
 * Feasibility: equality constraints cannot be hit by sampling, so points are projected onto
 * the feasible set by alternating projections (onto each violated half-space or hyperplane,
 * then onto the box) — the method of projections onto convex sets, which converges to a point
 * of the intersection when it is not empty. Discrete parameters are then rounded, and the
 * point is kept only if it is still feasible within SPACE_FEAS_TOL.
 */
#ifndef LL_SPACE_H
#define LL_SPACE_H

#include "planner/campaign.h"

#include <stddef.h>

#define SPACE_FEAS_TOL 1e-9

struct space {
    size_t d;
    enum campaign_param_kind kind[CAMPAIGN_MAX_PARAMS];
    double low[CAMPAIGN_MAX_PARAMS], high[CAMPAIGN_MAX_PARAMS];
    size_t n_levels[CAMPAIGN_MAX_PARAMS];
    double levels[CAMPAIGN_MAX_PARAMS][CAMPAIGN_MAX_LEVELS];
    int has_discrete; /* some parameter is integer or levels */
    size_t n_con;
    double a[CAMPAIGN_MAX_CONSTRAINTS][CAMPAIGN_MAX_PARAMS]; /* unit-cube rows, |a| = 1 */
    double b[CAMPAIGN_MAX_CONSTRAINTS];
    int equality[CAMPAIGN_MAX_CONSTRAINTS];
};

/* Fills s from the campaign's parameters and constraints (c was validated by the loader). */
void space_init(struct space *s, const struct campaign *c);

/* x (original units) -> u (unit cube); values outside the bounds map outside [0,1]. */
void space_to_unit(const struct space *s, const double *x, double *ret_u);

/* u -> x: clamps to the bounds, rounds integers, snaps levels to the nearest level. */
void space_from_unit(const struct space *s, const double *u, double *ret_x);

/* Snaps the discrete coordinates of u (in place) to the images of their allowed values and
 * clamps every coordinate to [0,1]. */
void space_round_unit(const struct space *s, double *u);

/* Largest constraint violation of u in the cube (0 when feasible; box violations count). */
double space_violation(const struct space *s, const double *u);

/* Makes u feasible: alternating projections onto the constraints and the box, then discrete
 * rounding. Returns 1 if the result is feasible within SPACE_FEAS_TOL, else 0 (u is then the
 * best attempt and must not be proposed). */
int space_make_feasible(const struct space *s, double *u);

/* Projects u onto the continuous feasible set (no rounding); coordinates with fixed[j] != 0
 * are not moved (fixed may be NULL). For the gradient refinement. */
void space_project(const struct space *s, double *u, const int *fixed);

/* 1 if x (original units) is inside the bounds of every parameter (not rounded, not
 * constraint-checked), else 0; *ret_bad gets the first offending index. */
int space_in_bounds(const struct space *s, const double *x, size_t *ret_bad);

#endif

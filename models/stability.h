/* stability — T80 from a series of normalised efficiency, measured or predicted early
 * (docs/analysis.md §Stability; hardware.md §6; Khenkin et al., Nature Energy 5, 35 (2020)).
 *
 * T80 is the time at which the efficiency has fallen to 80 % of its initial value (or of its
 * maximum, when the series first rises above 1 by more than the noise: the consensus
 * statement's rule for burn-in gains; the flag `normalised_to_max` says so).
 *
 * Measured: the series is smoothed (local linear regression over a window that grows with the
 * number of points) and T80 is taken at the first ROBUST crossing of the threshold: the
 * smoothed series goes below it and stays below for the next STABILITY_CONFIRM_POINTS points
 * (all the remaining ones near the end), so a noise dip cannot trigger an early crossing.
 * T80 is interpolated linearly between the two smoothed points around the crossing.
 *
 * Predicted (no robust crossing yet): degradation models are fitted by nonlinear least squares
 * (GSL multifit_nlinear) to the series (averaged into at most 400 bins): linear, exponential,
 * stretched exponential, burn-in + exponential, burn-in + stretched exponential (the burn-in is
 * a saturating loss b·(1 − e^(−t/τ_b))). The model with the lowest small-sample Akaike
 * criterion (AICc) gives T80 by root finding, its standard error by the delta method from the
 * fit covariance. A prediction is a lower bound: the reported T80 is at least the last time.
 *
 * Pure functions, no global state. Owner: the measurement-analysis helper (issue 4).
 */
#ifndef MODELS_STABILITY_H
#define MODELS_STABILITY_H

#include "common/ll_error.h"

#include <stdbool.h>
#include <stddef.h>

#define STABILITY_THRESHOLD 0.8          /* T80 */
#define STABILITY_CONFIRM_POINTS 3       /* smoothed points after the crossing that must agree */
#define STABILITY_FAR_EXTRAPOLATION 10.0 /* predictions beyond 10× the last time are flagged */

struct stability_t80 {
    bool measured;          /* the series crossed the threshold robustly */
    bool lower_bound;       /* predicted: the true T80 is at least last_time_h */
    bool normalised_to_max; /* the reference is the maximum of an initial rise, not 1 */
    bool far_extrapolation; /* the prediction lies beyond STABILITY_FAR_EXTRAPOLATION×last */
    double t80_h;           /* measured or predicted (>= last_time_h when predicted) */
    double t80_sd_h;        /* standard error of a prediction; NAN when measured or unknown */
    double reference;       /* 1, or the maximum of an initial rise */
    double noise_sd;        /* point-to-point noise estimate of the series */
    double last_time_h;
    double last_smoothed;   /* smoothed value at the last time, relative to the reference */
    const char *model;      /* model of the prediction ("stretched exponential", ...), or
                               "measured" */
    double model_params[5]; /* the model's parameters (see docs/analysis.md), unused = 0 */
    size_t n_model_params;
};

/* T80 of the series (time_h[i], pce[i]), i < n, n >= 2, time strictly increasing and >= 0,
 * pce finite. Returns 0 and fills *ret, or -EINVAL with a sentence in reterr for invalid
 * input or -ENOMEM. A series that shows no decay gives a prediction equal to the last time
 * (a lower bound) with t80_sd_h NAN and model "no decay". */
int stability_t80(const double *time_h,
                  const double *pce,
                  size_t n,
                  struct stability_t80 *ret,
                  struct ll_error *reterr);

#endif

/* gp — Gaussian-process regression, the surrogate model of the planner.
 *
 * The model: y = f(x) + eps, f ~ GP(c, k), eps ~ N(0, s_n^2), on inputs already scaled to the
 * unit cube and outputs standardised to zero mean and unit variance. The kernel is Matérn 5/2
 * with one length scale per input (ARD):
 *     k(x, x') = s_f^2 (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r),  r^2 = sum_i (x_i - x'_i)^2 / l_i^2.
 * Optionally (gp_options.additive) a first-order additive part is added to it,
 *     s_a^2 / d sum_i m(|x_i - x'_i| / l'_i),  m(r) = (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r),
 * with l'_i = l_i (shared) or own length scales; it pools information along each input, which
 * suits objectives that are close to additive (Duvenaud et al., "Additive Gaussian
 * processes", NIPS 2011). s_a^2 is fitted like s_f^2, so the data can switch either part off.
 * Hyperparameters (l_1..l_d, s_f^2, s_n^2, c) are chosen by maximising the log marginal
 * likelihood plus weak log-normal priors on the length scales and variances (a MAP estimate),
 * with analytic gradients, by GSL's BFGS in log space from several seeded random starts; the
 * length scales are kept inside [GP_LENGTH_SCALE_MIN, GP_LENGTH_SCALE_MAX] so that a handful of
 * noisy points cannot give absurd ones. The restarts run on a subset of at most 40
 * observations, the best is continued on all of them (on a random subset of 80 when there are
 * more: then the hyperparameters are a subset-of-data estimate; the model uses all points). The
 * Cholesky factor of K + s_n^2 I (GSL, with jitter escalation) and alpha = (K + s_n^2 I)^-1 (y - c)
 * are kept for prediction.
 *
 * Reference: C. E. Rasmussen, C. K. I. Williams, "Gaussian Processes for Machine Learning",
 * MIT Press 2006, ch. 2 (prediction, alg. 2.1), ch. 4 (Matérn class), ch. 5 (marginal
 * likelihood and its gradient, eq. 5.9).
 *
 * Threads: a struct gp may be read (gp_predict, gp_get_hyper, gp_clone) by several threads at
 * once; gp_predict uses a stack buffer, not the struct. gp_add_observation modifies it.
 */
#ifndef LL_GP_H
#define LL_GP_H

#include "common/ll_error.h"

#include <stddef.h>

#define GP_MAX_DIM 32
/* gp_predict keeps its work vectors on the stack up to this many observations (and, with
 * gradients, up to 6 GP_PREDICT_STACK_N / (3 + d) of them) and allocates above it (never in the
 * planner's usual range). */
#define GP_PREDICT_STACK_N 1024
#define GP_LENGTH_SCALE_MIN 0.01
#define GP_LENGTH_SCALE_MAX 10.0

struct gp; /* opaque */

struct gp_options {
    unsigned long seed;   /* restarts' random starting points */
    int n_restarts;       /* >= 1; default 5 */
    double min_noise_var; /* floor of the noise variance on the standardised scale; default 1e-6 */
    int fix_mean;         /* 1: the constant mean is fixed_mean, not fitted (e.g. the worst
                             value observed, which keeps an optimiser out of unknown corners;
                             see planner.c); default 0 */
    double fixed_mean;    /* in y's units, finite (only with fix_mean) */
    int additive;         /* 0: ARD kernel only; 1: + additive part sharing the ARD length
                             scales; 2: + additive part with its own length scales */
};

/* Fills ret_opt with the defaults (seed 1, 5 restarts, noise floor 1e-6). */
void gp_options_default(struct gp_options *ret_opt);

/* Fits a GP to n observations: x is n rows of d inputs, row-major, already scaled to [0,1]^d;
 * y are n outputs in their own units (standardised internally). Copies the data.
 * Returns 0 or a negative errno code with a message in reterr. n >= 1, 1 <= d <= GP_MAX_DIM,
 * all values finite. Caller frees with gp_free(). opt may be NULL (defaults). */
int gp_fit(const double *x,
           const double *y,
           size_t n,
           size_t d,
           const struct gp_options *opt,
           struct gp **ret_gp,
           struct ll_error *reterr);

struct gp_hyper {
    size_t d;
    double length_scale[GP_MAX_DIM];          /* in unit-cube units */
    double signal_var, noise_var, const_mean; /* on the standardised scale */
    /* first-order additive part: add_var / d * sum_j M52(|x_j - x'_j| / add_length_scale[j]);
     * add_var = 0 switches it off (then add_length_scale is ignored) */
    double add_var;
    double add_length_scale[GP_MAX_DIM];
    double y_mean, y_std; /* standardisation */
    double log_marginal_likelihood;
};

/* Like gp_fit, but the first restart starts from start's length scales, variances and constant
 * mean (e.g. the previous round's fit, from gp_get_hyper; its y_mean/y_std are ignored, the
 * data are standardised afresh). With opt->n_restarts == 1 this is a pure warm start and
 * costs about half of a default gp_fit. start == NULL is gp_fit. */
int gp_fit_from(const double *x,
                const double *y,
                size_t n,
                size_t d,
                const struct gp_options *opt,
                const struct gp_hyper *start,
                struct gp **ret_gp,
                struct ll_error *reterr);

/* Like gp_fit but with fixed hyperparameters: hyper->d must equal d; hyper->y_mean and
 * hyper->y_std (> 0) are used as given for the standardisation, and log_marginal_likelihood is
 * ignored (it is computed). For tests, refits of fantasies and reproducing a model.
 * Returns 0 or a negative errno code with a message in reterr; caller frees with gp_free(). */
int gp_fit_fixed(const double *x,
                 const double *y,
                 size_t n,
                 size_t d,
                 const struct gp_hyper *hyper,
                 struct gp **ret_gp,
                 struct ll_error *reterr);

/* Posterior mean and variance of the latent function (y's units; variance excludes noise) at one
 * point x (d values). ret_dmean/ret_dvar (d values each) may be NULL; when given they receive the
 * gradients with respect to x. Returns 0, or -EINVAL for NULL arguments, -ENOMEM if n >
 * GP_PREDICT_STACK_N (see there) and the work buffer cannot be allocated. Does not modify gp. */
int gp_predict(const struct gp *gp,
               const double *x,
               double *ret_mean,
               double *ret_var,
               double *ret_dmean,
               double *ret_dvar);

/* Calibration of the predictive distribution by leave-one-out (Rasmussen & Williams eq. 5.12):
 * the mean over the observations of z_i^2, z_i = (y_i - mu_-i) / sd_-i, where mu_-i and sd_-i
 * (noise included) are the prediction at x_i from the other observations under the same
 * hyperparameters. About 1 for a well-calibrated model; below 1 the model is more uncertain
 * than its errors warrant. O(n^2). NaN for NULL or fewer than 2 observations. */
double gp_loo_mean_z2(const struct gp *gp);

/* Conditions the posterior on one more observation (x, y in y's units) WITHOUT refitting the
 * hyperparameters or the standardisation (for fantasies / Kriging believer and pending
 * experiments), by an O(n^2) update of the (inverse) Cholesky factor; the stored log marginal
 * likelihood is updated to the n+1 points. Returns 0, -EINVAL for non-finite
 * input, -ENOMEM, or -EDOM if the new point makes the covariance numerically singular (the gp is
 * then unchanged). */
int gp_add_observation(struct gp *gp, const double *x, double y);

/* Deep copy; NULL on allocation failure. Free with gp_free(). */
struct gp *gp_clone(const struct gp *gp);

/* Frees *gp and NULLs it; gp_free(NULL) and *gp == NULL are no-ops. */
void gp_free(struct gp **gp);

/* Number of observations (fitted plus added), and input dimension d; 0 for NULL. */
size_t gp_n_obs(const struct gp *gp);
size_t gp_dim(const struct gp *gp);

/* Copies the hyperparameters (and the log marginal likelihood of the data on the standardised
 * scale, without the priors) into ret_hyper. */
void gp_get_hyper(const struct gp *gp, struct gp_hyper *ret_hyper);

/* Log marginal likelihood of the standardised data (y - hyper->y_mean) / hyper->y_std under the
 * hyperparameters in hyper (no priors), and, if ret_grad is not NULL, its gradient with respect
 * to the log hyperparameters in the order log l_1..log l_d, log signal_var, log noise_var,
 * const_mean, log add_var, log add_length_scale_1..d (2d + 4 values; the last d + 1 are 0 when
 * add_var is 0). Returns 0, -EINVAL, -ENOMEM or -EDOM (not positive definite);
 * the value goes to *ret_lml. Exposed for tests of the gradient. */
int gp_log_marginal_likelihood(const double *x,
                               const double *y,
                               size_t n,
                               size_t d,
                               const struct gp_hyper *hyper,
                               double *ret_lml,
                               double *ret_grad);

#endif

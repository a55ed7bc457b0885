/* design — scrambled Sobol points: the space-filling initial design and the candidate sets of
 * the acquisition optimiser.
 *
 * GSL's Sobol generator (gsl_qrng_sobol, Bratley-Fox directions, up to 40 dimensions, 30 bits)
 * gives the base sequence. Each coordinate's 30-bit integer is then scrambled with Matousek's
 * random linear matrix scramble plus a random digital shift (y = L v xor e over GF(2), L lower
 * triangular with unit diagonal), which keeps the (t,s)-net structure — so the points stay as
 * evenly spread as Sobol's — while removing its artefacts (the first point is no longer the
 * centre; points do not sit on the dyadic grid). L and e come from a splitmix64 stream seeded
 * by (seed, stream), so a design is a pure function of its seed: the same seed gives the same
 * points on every machine, and a planner can continue a design from any index.
 *
 * Reference: J. Matousek, "On the L2-discrepancy for anchored boxes", J. Complexity 14 (1998)
 * (random linear scrambling); A. B. Owen, "Scrambling Sobol' and Niederreiter-Xing points",
 * J. Complexity 14 (1998).
 */
#ifndef LL_DESIGN_H
#define LL_DESIGN_H

#include <stddef.h>

#define DESIGN_MAX_DIM 40

struct design; /* opaque */

/* A new scrambled Sobol sequence in [0,1)^d (1 <= d <= DESIGN_MAX_DIM). stream separates
 * independent sequences of one seed (e.g. the initial design and each round's candidates).
 * Returns 0, -EINVAL for d out of range, -ENOMEM. Free with design_free(). */
int design_new(size_t d, unsigned long seed, unsigned long stream, struct design **ret);

/* Writes the next point (d values, each strictly inside (0,1)). */
void design_next(struct design *g, double *ret_u);

/* Skips n points (as if design_next had been called n times). */
void design_skip(struct design *g, size_t n);

/* Frees *g and NULLs it; NULL and *g == NULL are no-ops. */
void design_free(struct design **g);

#endif

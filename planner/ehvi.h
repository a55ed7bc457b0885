/* ehvi — exact expected hypervolume improvement (minimisation), 2 and 3 objectives.
 *
 * A candidate's objectives are independent Gaussians Y_i ~ N(mu_i, sigma_i^2). Its expected
 * hypervolume improvement over a non-dominated front P with reference point r is
 *     EHVI = E[ HV(P u {Y}) - HV(P) ] = integral over the non-dominated region A of
 *            P(Y <= z componentwise) dz,
 * since the improvement is the volume of the part of A that Y dominates. A (the part of [-inf, r]
 * dominated by no point of P) is split into axis-aligned boxes [l, u]; with independent
 * objectives each box contributes prod_i integral_{l_i}^{u_i} Phi((z - mu_i)/sigma_i) dz, and
 * with psi(a, mu, s) := integral_{-inf}^{a} Phi((z-mu)/s) dz = s*phi(t) + (a-mu)*Phi(t),
 * t = (a-mu)/s, the one-dimensional integral is psi(u) - psi(l) (for l = -inf: psi(u)).
 * In 2-D the boxes are the n+1 vertical strips between consecutive front points (O(n) per
 * evaluation after sorting, the strip form of Emmerich, Deutz, Klinkenberg 2011); in 3-D the
 * non-dominated region is cut into boxes by a sweep over the third objective (each slab between
 * consecutive third-objective values of the front has a fixed 2-D front, whose strips give the
 * boxes; a strip unchanged over several slabs is one box) — the box-decomposition approach of
 * Yang, Emmerich, Deutz, Bäck 2019, with at most 2n+1 boxes, so O(n) per evaluation too.
 * sigma_i = 0 is handled exactly (psi becomes max(a - mu, 0)), giving the plain
 * hypervolume improvement of mu.
 *
 * References: M. Emmerich, A. Deutz, J. W. Klinkenberg, "Hypervolume-based expected improvement:
 * monotonicity properties and exact computation", IEEE CEC 2011; K. Yang, M. Emmerich,
 * A. Deutz, T. Bäck, "Efficient computation of expected hypervolume improvement using box
 * decomposition algorithms", J. Global Optimization 75, 2019.
 *
 * Memory: ehvi_2d/ehvi_3d allocate work arrays and free them before returning (NaN on
 * allocation failure); a prepared front (ehvi_front_new) does all its allocation once and
 * ehvi_front_eval allocates nothing. No global state; a prepared front may be evaluated by
 * several threads at once.
 */
#ifndef LL_EHVI_H
#define LL_EHVI_H

#include <stddef.h>

/* Exact EHVI of a candidate whose objectives are independent Gaussians N(mu[i], sigma[i]^2)
 * against the front (n points, row-major, m = 2 or 3) and reference point ref. The front need
 * not be non-dominated or inside ref (it is filtered). sigma[i] >= 0. Returns NaN for NULL or
 * non-finite arguments, negative sigma, or allocation failure. */
double
ehvi_2d(const double *front, size_t n, const double *ref, const double *mu, const double *sigma);
double
ehvi_3d(const double *front, size_t n, const double *ref, const double *mu, const double *sigma);

/* Prepared front for fast repeated evaluation (the acquisition optimiser calls this ~10^5-10^6
 * times per proposal): ehvi_front_new copies, filters and sorts the front once and precomputes its
 * box decomposition. m = 2 or 3. Returns NULL for bad arguments or allocation failure. Caller frees
 * with ehvi_front_free. */
struct ehvi_front;
struct ehvi_front *ehvi_front_new(const double *front, size_t n, size_t m, const double *ref);

/* EHVI of N(mu, diag(sigma^2)) against the prepared front; allocation-free. NaN for bad mu or
 * sigma. */
double ehvi_front_eval(const struct ehvi_front *f, const double *mu, const double *sigma);

/* The same and its gradient with respect to mu and sigma (m values each; either may be NULL),
 * for gradient-based acquisition optimisation. */
double ehvi_front_eval_grad(const struct ehvi_front *f,
                            const double *mu,
                            const double *sigma,
                            double *ret_dmu,
                            double *ret_dsigma);

/* Number of objectives of the prepared front (2 or 3). */
size_t ehvi_front_dim(const struct ehvi_front *f);

/* Frees *f and NULLs it; NULL and *f == NULL are no-ops. */
void ehvi_front_free(struct ehvi_front **f);

#endif

/* hv — the hypervolume indicator (minimisation convention everywhere; m objectives).
 *
 * The hypervolume of a point set P with respect to a reference point r is the Lebesgue measure
 * of the region dominated by P and bounded by r: vol( U_{p in P} [p, r] ). Points that do not
 * strictly dominate r in every objective contribute nothing and are ignored.
 *
 * Methods: 2-D by sorting on the first objective and summing strips, O(n log n); 3-D by the
 * dimension sweep of Fonseca, Paquete, López-Ibáñez (2006) — points in order of the third
 * objective, the 2-D front of the slice kept sorted, the area updated per insertion — here with
 * a sorted array (O(n^2) worst case, fast for the front sizes of a planner); 4-5 objectives by
 * slicing along the last objective (HSO: While, Hingston, Barone, Huband 2006), bottoming out
 * in the 3-D sweep; the improvement of one point as its exclusive volume, vol(p, r) minus the
 * hypervolume of the set limited by p (the step of WFG, While, Bradstreet, Barone 2012).
 *
 * References: C. M. Fonseca, L. Paquete, M. López-Ibáñez, "An improved dimension-sweep
 * algorithm for the hypervolume indicator", IEEE CEC 2006; L. While, P. Hingston, L. Barone,
 * S. Huband, "A faster algorithm for calculating hypervolume", IEEE TEVC 10(1), 2006;
 * L. While, L. Bradstreet, L. Barone, "A fast way of calculating exact hypervolumes",
 * IEEE TEVC 16(1), 2012.
 *
 * Memory: the hv_compute* functions allocate work arrays with malloc and free them before they
 * return; they return NaN if an allocation fails. No global state; thread-safe.
 */
#ifndef LL_HV_H
#define LL_HV_H

#include <stddef.h>

#define HV_MAX_OBJECTIVES 5

/* Moves the non-dominated points of `points` (n rows of m, row-major) to the front, in place,
 * keeping their relative order; returns how many. Duplicates are kept once. The rows after the
 * returned count hold the dominated points (in unspecified order). O(n^2 m). */
size_t hv_nondominated(double *points, size_t n, size_t m);

/* Hypervolume dominated by the points and bounded by ref (minimisation). Points that do not
 * strictly dominate ref in every objective contribute nothing. m = 1..5; 2-D exact
 * O(n log n), 3-D exact by dimension sweep, 4-5 by slicing (HSO) down to the sweep. Returns NaN for
 * m out of range, NULL pointers with n > 0, non-finite values, or allocation failure; 0 for n == 0.
 */
double hv_compute(const double *points, size_t n, size_t m, const double *ref);
double hv_compute_2d(const double *points, size_t n, const double *ref);
double hv_compute_3d(const double *points, size_t n, const double *ref);

/* Hypervolume improvement of adding point p (m values) to the set: hv(P u {p}) - hv(P).
 * Same conventions and errors as hv_compute. */
double hv_improvement(const double *points, size_t n, size_t m, const double *ref, const double *p);

#endif

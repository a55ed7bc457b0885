/* world — ground-truth world models of the simulated lab.
 *
 * A world model turns what was really done to a sample into the true values of the
 * quantities the stations measure; labsim then turns those into raw data with noise.
 *
 * Perovskite world: exactly the formulas of ../shared/benchmarks/perovskite.md (a
 * Cs_c(FA_x MA_1-x)_1-c Pb(I_y Br_1-y)3 film, spin-coated and annealed). Noise-free
 * values match tests/data/perovskite_vectors.csv to 1e-9 relative.
 */
#ifndef WORLD_H
#define WORLD_H

enum {
    WORLD_PEROVSKITE_FA,
    WORLD_PEROVSKITE_CS,
    WORLD_PEROVSKITE_IODIDE,
    WORLD_PEROVSKITE_ANNEAL_C,
    WORLD_PEROVSKITE_ANNEAL_MIN,
    WORLD_PEROVSKITE_SPIN_RPM,
    WORLD_PEROVSKITE_N_INPUTS
};

/* Lower and upper bounds of the six inputs, in the order of the enum above. */
extern const double world_perovskite_low[WORLD_PEROVSKITE_N_INPUTS];
extern const double world_perovskite_high[WORLD_PEROVSKITE_N_INPUTS];

struct world_perovskite_truth {
    double pce_pct;     /* power conversion efficiency, % */
    double log10_t80_h; /* log10 of T80 in hours */
    double eg_ev;       /* band gap, eV */
    double thick_nm;    /* film thickness, nm */
};

/* Noise-free truth for inputs x (fa, cs, iodide, anneal_c, anneal_min, spin_rpm).
 * Inputs outside the bounds are evaluated as given (the formulas stay finite for any
 * spin_rpm > 0). */
void world_perovskite_eval(const double x[WORLD_PEROVSKITE_N_INPUTS],
                           struct world_perovskite_truth *ret_truth);

#endif

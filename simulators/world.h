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

/* Solid-electrolyte world (docs/world.md §2): a garnet LLZO pellet,
 * Li_(7-ta-3al) Al_al La3 Zr_(2-ta) Ta_ta O12, made with an excess of lithium precursor and
 * sintered at sinter_c for sinter_min. Lithium loss, cubic/tetragonal phase, pyrochlore,
 * densification and grain boundaries decide the conductivity. */
enum {
    WORLD_ELECTROLYTE_TA,         /* Ta per formula unit */
    WORLD_ELECTROLYTE_AL,         /* Al per formula unit */
    WORLD_ELECTROLYTE_LI_EXCESS,  /* extra Li precursor, fraction of the nominal Li */
    WORLD_ELECTROLYTE_SINTER_C,   /* sintering temperature, °C */
    WORLD_ELECTROLYTE_SINTER_MIN, /* sintering time, minutes */
    WORLD_ELECTROLYTE_N_INPUTS
};

extern const double world_electrolyte_low[WORLD_ELECTROLYTE_N_INPUTS];
extern const double world_electrolyte_high[WORLD_ELECTROLYTE_N_INPUTS];

struct world_electrolyte_truth {
    double sigma_bulk_s_cm;  /* bulk conductivity at 25 °C, S/cm (porosity included) */
    double sigma_total_s_cm; /* bulk + grain boundary at 25 °C, S/cm */
    double ea_bulk_ev;       /* activation energy of the bulk (sigma = sigma0 exp(-Ea/kT)) */
    double ea_gb_ev;         /* activation energy of the grain boundaries */
    double gb_ratio;         /* R_gb / R_bulk at 25 °C */
    double cubic;            /* share of the cubic phase, 0..1 */
    double li_lost;          /* Li per formula unit lost during sintering */
    double pyrochlore;       /* share of La2Zr2O7 decomposition product, 0..1 */
    double rel_density;      /* relative density of the pellet, 0..1 */
};

/* Noise-free truth for inputs x (ta, al, li_excess, sinter_c, sinter_min); finite for any
 * finite input. */
void world_electrolyte_eval(const double x[WORLD_ELECTROLYTE_N_INPUTS],
                            struct world_electrolyte_truth *ret_truth);

/* Bulk and grain-boundary conductivities (S/cm) of a pellet with truth t at temp_c (°C),
 * from the 25 °C values by the Arrhenius law sigma(T) = sigma(25) exp(-Ea/k (1/T - 1/T25)). */
void world_electrolyte_sigma_at(const struct world_electrolyte_truth *t,
                                double temp_c,
                                double *ret_sigma_bulk_s_cm,
                                double *ret_sigma_gb_s_cm);

#endif

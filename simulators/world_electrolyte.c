/* world_electrolyte — the garnet solid-electrolyte world (docs/world.md §2).
 *
 * Ta-doped and Al-doped Li7La3Zr2O12 (LLZO): Ta on Zr sites and Al on Li sites create
 * lithium vacancies; with at least ~0.4 vacancies per formula unit the fast-conducting cubic
 * phase is stable, without them the tetragonal phase is ~1000x slower. Sintering densifies
 * the pellet (faster when hotter, helped by Al as a sintering aid) but evaporates lithium; a
 * lithium excess in the precursor compensates, and what it does not compensate first shifts
 * the vacancy count and then decomposes the garnet into La2Zr2O7 (pyrochlore). Unreacted
 * excess lithium stays at the grain boundaries (Li2CO3) and raises their resistance.
 * Typical numbers follow ../shared/reference/hardware.md §5.3 (cubic 1e-4..1e-3 S/cm,
 * Ea 0.30-0.45 eV; tetragonal ~1e-6 S/cm, ~0.5 eV). The landscape is plausible, not a fit.
 */
#include "simulators/world.h"

#include <math.h>

const double world_electrolyte_low[WORLD_ELECTROLYTE_N_INPUTS] = {0.0, 0.0, 0.0, 900.0, 60.0};
const double world_electrolyte_high[WORLD_ELECTROLYTE_N_INPUTS] = {0.8, 0.3, 0.3, 1250.0, 1440.0};

#define K_B_EV 8.617333262e-5
#define T25_K 298.15

static double logistic(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

void world_electrolyte_eval(const double x[WORLD_ELECTROLYTE_N_INPUTS],
                            struct world_electrolyte_truth *ret_truth)
{
    double ta = fmax(0.0, x[WORLD_ELECTROLYTE_TA]);
    double al = fmax(0.0, x[WORLD_ELECTROLYTE_AL]);
    double li_excess = fmax(0.0, x[WORLD_ELECTROLYTE_LI_EXCESS]);
    double sinter_c = x[WORLD_ELECTROLYTE_SINTER_C];
    double t_h = fmax(0.0, x[WORLD_ELECTROLYTE_SINTER_MIN]) / 60.0;

    /* lithium: nominal content, evaporation during sintering, compensation by the excess */
    double li_nominal = 7.0 - ta - 3.0 * al;
    double loss_rate_h = 0.05 * exp((sinter_c - 1100.0) / 50.0);
    double li_lost = 1.2 * (1.0 - exp(-loss_rate_h * t_h));
    double deficit = li_lost - 7.0 * li_excess; /* < 0: excess lithium left over */
    double li_final = li_nominal - fmax(0.0, deficit);
    double vacancies = 7.0 - li_final;

    /* phases */
    double cubic = logistic((vacancies - 0.40) / 0.06);
    double pyrochlore = logistic((deficit - 0.45) / 0.07);

    /* densification (first order in time, Arrhenius-like in temperature, Al helps) */
    double k_dens_h = 0.4 * exp((sinter_c - 1150.0) / 60.0) * (1.0 + 3.0 * al);
    double rel_density = 0.97 - 0.37 * exp(-k_dens_h * t_h);

    /* bulk conductivity of the phases at 25 °C */
    double v_off = vacancies - 0.6;
    double log10_sigma_cubic = -3.05 - 1.8 * v_off * v_off - 1.0 * al;
    double log10_sigma_tetra = -6.0;
    double log10_sigma_phase = cubic * log10_sigma_cubic + (1.0 - cubic) * log10_sigma_tetra;
    double blocking = fmax(1e-3, (1.0 - pyrochlore) * (1.0 - pyrochlore));
    double sigma_bulk = pow(10.0, log10_sigma_phase) * pow(rel_density, 2.5) * blocking;

    /* grain boundaries: porosity, leftover lithium salts and pyrochlore films */
    double gb_ratio =
        0.15 + 2.0 * (0.97 - rel_density) / 0.37 + 3.0 * fmax(0.0, -deficit) + 2.0 * pyrochlore;

    double ea_bulk = cubic * (0.30 + 0.08 * al / 0.3 + 0.10 * v_off * v_off) + (1.0 - cubic) * 0.49;

    ret_truth->sigma_bulk_s_cm = sigma_bulk;
    ret_truth->sigma_total_s_cm = sigma_bulk / (1.0 + gb_ratio);
    ret_truth->ea_bulk_ev = ea_bulk;
    ret_truth->ea_gb_ev = ea_bulk + 0.08;
    ret_truth->gb_ratio = gb_ratio;
    ret_truth->cubic = cubic;
    ret_truth->li_lost = li_lost;
    ret_truth->pyrochlore = pyrochlore;
    ret_truth->rel_density = rel_density;
}

void world_electrolyte_sigma_at(const struct world_electrolyte_truth *t,
                                double temp_c,
                                double *ret_sigma_bulk_s_cm,
                                double *ret_sigma_gb_s_cm)
{
    double inv = 1.0 / (temp_c + 273.15) - 1.0 / T25_K;
    double sigma_gb25 = t->sigma_bulk_s_cm / t->gb_ratio;
    *ret_sigma_bulk_s_cm = t->sigma_bulk_s_cm * exp(-t->ea_bulk_ev / K_B_EV * inv);
    *ret_sigma_gb_s_cm = sigma_gb25 * exp(-t->ea_gb_ev / K_B_EV * inv);
}

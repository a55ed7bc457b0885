/* sim_measure — raw station data from the world model (see sim_measure.h; formulas and
 * noise in docs/world.md §3). */
#include "simulators/sim_measure.h"

#include "models/synth.h"

#include <errno.h>
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JV_AREA_CM2 0.09
#define JV_IRRADIANCE 100.0
#define JV_STEP_V 0.01
#define PCE_NOISE_PCT 0.3
#define LOG10_T80_NOISE 0.05
#define STAB_NOISE 0.003
#define EIS_THICKNESS_CM 0.10
#define EIS_AREA_CM2 0.785
#define EIS_EPS_R 50.0
#define EIS_NOISE 0.01
#define EIS_F_HIGH 1e6
#define EIS_F_LOW 0.1
#define EIS_POINTS 71

double sim_measure_duration_s(const char *kind, const json_t *protocol)
{
    if (strcmp(kind, "jv") == 0)
        return 20.0;
    if (strcmp(kind, "stability") == 0)
        return 60.0;
    if (strcmp(kind, "eis") == 0) {
        const json_t *temps = protocol ? json_object_get(protocol, "temperatures_c") : NULL;
        size_t n = json_is_array(temps) && json_array_size(temps) > 0 ? json_array_size(temps) : 3;
        return 60.0 * (double)n;
    }
    return 10.0;
}

static json_t *array_of(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

json_t *sim_measure_truth(const struct sim_lab *lab, const struct sim_sample *s)
{
    if (lab->world == SIM_WORLD_PEROVSKITE) {
        double x[WORLD_PEROVSKITE_N_INPUTS];
        if (sim_sample_perovskite_inputs(lab, s, x) != 0)
            return NULL;
        struct world_perovskite_truth t;
        world_perovskite_eval(x, &t);
        return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
                         "fa",
                         x[0],
                         "cs",
                         x[1],
                         "iodide",
                         x[2],
                         "anneal_c",
                         x[3],
                         "anneal_min",
                         x[4],
                         "spin_rpm",
                         x[5],
                         "pce_pct",
                         t.pce_pct,
                         "log10_t80_h",
                         t.log10_t80_h,
                         "eg_ev",
                         t.eg_ev,
                         "thick_nm",
                         t.thick_nm);
    }
    double x[WORLD_ELECTROLYTE_N_INPUTS];
    if (sim_sample_electrolyte_inputs(s, x) != 0)
        return NULL;
    struct world_electrolyte_truth t;
    world_electrolyte_eval(x, &t);
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
                     "ta",
                     x[0],
                     "al",
                     x[1],
                     "li_excess",
                     x[2],
                     "sinter_c",
                     x[3],
                     "sinter_min",
                     x[4],
                     "sigma_bulk_s_cm",
                     t.sigma_bulk_s_cm,
                     "sigma_total_s_cm",
                     t.sigma_total_s_cm,
                     "ea_bulk_ev",
                     t.ea_bulk_ev,
                     "cubic",
                     t.cubic,
                     "li_lost",
                     t.li_lost,
                     "pyrochlore",
                     t.pyrochlore,
                     "rel_density",
                     t.rel_density);
}

/* A diode with band gap eg and exact PCE pce (> 0): synth_diode_for_target, and for cells
 * too poor for its parameter ranges a 5 % cell with every current scaled down (J(V) scales
 * exactly with Jph, J0, 1/Rs, 1/Rsh). */
static int diode_for(double eg, double pce, struct synth_diode *d, struct ll_error *reterr)
{
    double target = pce < 5.0 ? 5.0 : pce;
    int rc = synth_diode_for_target(eg, target, JV_IRRADIANCE, -1.0, d, reterr);
    if (rc != 0)
        rc = synth_diode_for_target(eg, target, JV_IRRADIANCE, 1.0, d, reterr);
    if (rc != 0)
        return rc;
    if (pce < 5.0) {
        double k = pce / 5.0;
        d->jph_ma_cm2 *= k;
        d->j0_ma_cm2 *= k;
        d->rs_ohm_cm2 /= k;
        d->rsh_ohm_cm2 /= k;
    }
    return 0;
}

static int
measure_jv(double eg, double pce_true, gsl_rng *rng, json_t **ret, struct ll_error *reterr)
{
    double pce = pce_true + gsl_ran_gaussian(rng, PCE_NOISE_PCT);
    if (pce < 0.01)
        pce = 0.01;
    struct synth_diode d;
    int rc = diode_for(eg, pce, &d, reterr);
    if (rc != 0)
        return rc;
    struct synth_jv_truth truth;
    rc = synth_diode_truth(&d, JV_IRRADIANCE, &truth, reterr);
    if (rc != 0)
        return rc;
    /* hysteresis grows as the cell gets worse (docs/world.md §3) */
    double hi = 0.02 + 0.08 * fmax(0.0, 1.0 - pce / 22.8);
    double v_max = fmax(1.3, ceil((truth.voc_v + 0.1) * 10.0) / 10.0);
    size_t n = (size_t)lround((v_max + 0.1) / JV_STEP_V) + 1;
    double *v = malloc(n * sizeof(double)), *j = malloc(n * sizeof(double));
    json_t *sweeps = json_array();
    if (v == NULL || j == NULL || sweeps == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (int dir = 0; dir < 2; dir++) {
        struct synth_sweep_options opt = {
            .v_start_v = dir == 0 ? v_max : -0.1,
            .v_end_v = dir == 0 ? -0.1 : v_max,
            .n_points = n,
            .hysteresis = dir == 0 ? 0.0 : hi,
            .noise_rel = 0.005,
            .v_quantum_v = 1e-3,
            .load_convention = false,
        };
        rc = synth_jv_sweep(&d, &opt, rng, v, j);
        if (rc != 0) {
            ll_error_set(reterr, rc, "J-V sweep could not be generated");
            goto out;
        }
        json_array_append_new(sweeps,
                              json_pack("{s:s,s:o,s:o}",
                                        "direction",
                                        dir == 0 ? "reverse" : "forward",
                                        "voltage_v",
                                        array_of(v, n),
                                        "current_ma_cm2",
                                        array_of(j, n)));
    }
    *ret = json_pack("{s:f,s:f,s:o}",
                     "irradiance_mw_cm2",
                     JV_IRRADIANCE,
                     "area_cm2",
                     JV_AREA_CM2,
                     "sweeps",
                     sweeps);
    sweeps = NULL;
    rc = *ret ? 0 : -ENOMEM;
out:
    json_decref(sweeps);
    free(v);
    free(j);
    return rc;
}

static int measure_stability(
    double log10_t80, const json_t *protocol, gsl_rng *rng, json_t **ret, struct ll_error *reterr)
{
    double t80 = pow(10.0, log10_t80 + gsl_ran_gaussian(rng, LOG10_T80_NOISE));
    double t_end = 1000.0;
    const json_t *dur = protocol ? json_object_get(protocol, "duration_h") : NULL;
    if (json_is_number(dur) && json_number_value(dur) > 0 && json_number_value(dur) < 1e6)
        t_end = json_number_value(dur);
    struct synth_degradation d;
    int rc = synth_degradation_for_t80(t80, 0.02, 0.02 * t80 < 20.0 ? 0.02 * t80 : 20.0, 0.8, &d);
    if (rc != 0)
        rc = synth_degradation_for_t80(t80, 0.0, 1.0, 0.8, &d);
    if (rc != 0)
        return ll_error_set(reterr, rc, "no degradation curve for T80 %g h", t80);
    enum { N = 101 };
    double t[N], y[N];
    rc = synth_degradation_series(&d, t_end, N, STAB_NOISE, rng, t, y);
    if (rc != 0)
        return ll_error_set(reterr, rc, "stability series could not be generated");
    *ret = json_pack("{s:s,s:o,s:o}",
                     "protocol",
                     "ISOS-L-1",
                     "time_h",
                     array_of(t, N),
                     "normalised_pce",
                     array_of(y, N));
    return *ret ? 0 : -ENOMEM;
}

static int measure_eis(const struct world_electrolyte_truth *truth,
                       const json_t *protocol,
                       gsl_rng *rng,
                       json_t **ret,
                       struct ll_error *reterr)
{
    double temps[32] = {-20.0, 25.0, 60.0};
    size_t n_temps = 3;
    const json_t *jt = protocol ? json_object_get(protocol, "temperatures_c") : NULL;
    if (json_is_array(jt) && json_array_size(jt) > 0) {
        n_temps = 0;
        for (size_t i = 0; i < json_array_size(jt) && n_temps < 32; i++) {
            const json_t *e = json_array_get(jt, i);
            if (!json_is_number(e) || json_number_value(e) < -100 || json_number_value(e) > 300)
                return ll_error_set(
                    reterr,
                    -EINVAL,
                    "protocol.temperatures_c[%zu]: not a temperature in -100 .. 300 °C",
                    i);
            temps[n_temps++] = json_number_value(e);
        }
    }
    double f[EIS_POINTS], re[EIS_POINTS], im[EIS_POINTS];
    int rc = synth_log_frequencies(EIS_F_HIGH, EIS_F_LOW, EIS_POINTS, f);
    if (rc != 0)
        return ll_error_set(reterr, rc, "frequency grid");
    json_t *spectra = json_array();
    for (size_t k = 0; k < n_temps; k++) {
        double sb, sgb;
        world_electrolyte_sigma_at(truth, temps[k], &sb, &sgb);
        struct synth_eis_circuit c;
        rc = synth_eis_pellet(sb, sb / sgb, EIS_THICKNESS_CM, EIS_AREA_CM2, EIS_EPS_R, &c);
        if (rc == 0)
            rc = synth_eis_spectrum(&c, f, EIS_POINTS, EIS_NOISE, rng, re, im);
        if (rc != 0) {
            json_decref(spectra);
            return ll_error_set(
                reterr, rc, "impedance spectrum at %g °C could not be generated", temps[k]);
        }
        json_array_append_new(spectra,
                              json_pack("{s:f,s:o,s:o,s:o}",
                                        "temperature_c",
                                        temps[k],
                                        "frequency_hz",
                                        array_of(f, EIS_POINTS),
                                        "z_real_ohm",
                                        array_of(re, EIS_POINTS),
                                        "z_imag_ohm",
                                        array_of(im, EIS_POINTS)));
    }
    *ret = json_pack("{s:f,s:f,s:o}",
                     "thickness_cm",
                     EIS_THICKNESS_CM,
                     "area_cm2",
                     EIS_AREA_CM2,
                     "spectra",
                     spectra);
    return *ret ? 0 : -ENOMEM;
}

int sim_measure(const struct sim_lab *lab,
                const struct sim_sample *s,
                const char *kind,
                const json_t *protocol,
                gsl_rng *rng,
                json_t **ret_data,
                json_t **ret_truth,
                struct ll_error *reterr)
{
    *ret_data = NULL;
    if (ret_truth != NULL)
        *ret_truth = NULL;
    int rc;
    if (lab->world == SIM_WORLD_PEROVSKITE) {
        double x[WORLD_PEROVSKITE_N_INPUTS];
        if (sim_sample_perovskite_inputs(lab, s, x) != 0)
            return ll_error_set(
                reterr, -EINVAL, "sample W%d holds no perovskite precursor", s->well);
        struct world_perovskite_truth t;
        world_perovskite_eval(x, &t);
        if (strcmp(kind, "jv") == 0)
            rc = measure_jv(t.eg_ev, t.pce_pct, rng, ret_data, reterr);
        else if (strcmp(kind, "stability") == 0)
            rc = measure_stability(t.log10_t80_h, protocol, rng, ret_data, reterr);
        else
            return ll_error_set(
                reterr, -EINVAL, "the perovskite world has no '%s' measurement", kind);
    } else {
        double x[WORLD_ELECTROLYTE_N_INPUTS];
        if (sim_sample_electrolyte_inputs(s, x) != 0)
            return ll_error_set(
                reterr, -EINVAL, "sample W%d holds no garnet base precursor", s->well);
        struct world_electrolyte_truth t;
        world_electrolyte_eval(x, &t);
        if (strcmp(kind, "eis") == 0)
            rc = measure_eis(&t, protocol, rng, ret_data, reterr);
        else
            return ll_error_set(
                reterr, -EINVAL, "the electrolyte world has no '%s' measurement", kind);
    }
    if (rc == 0 && ret_truth != NULL)
        *ret_truth = sim_measure_truth(lab, s);
    return rc;
}

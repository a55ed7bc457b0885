/* analysis — see analysis.h. Each kind has one function here that calls its numeric
 * module (jv.h, eis.h, stability.h), then records the campaign-level numbers, flags,
 * warnings and a jansson "details" object with everything per sweep / spectrum / fit.
 */
#include "models/analysis.h"

#include "models/eis.h"
#include "models/jv.h"
#include "models/stability.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANALYSIS_VERSION "1.0"
#define MAX_VALUES 32
#define MAX_FLAGS 8
#define MAX_WARNINGS 16
#define NAME_LEN 40
#define WARNING_LEN 256

struct named_value {
    char name[NAME_LEN];
    double value;
};

struct named_flag {
    char name[NAME_LEN];
    bool value;
};

struct analysis {
    enum measurement_kind kind;
    char station[MEASUREMENT_NAME_MAX + 1];
    char sample[MEASUREMENT_NAME_MAX + 1];
    char request[MEASUREMENT_NAME_MAX + 1];
    int64_t seq;
    size_t n_values;
    struct named_value values[MAX_VALUES];
    size_t n_flags;
    struct named_flag flags[MAX_FLAGS];
    size_t n_warnings;
    size_t n_warnings_dropped;
    char warnings[MAX_WARNINGS][WARNING_LEN];
    json_t *details; /* object */
};

const char *analysis_version(void)
{
    return ANALYSIS_VERSION;
}

/* Records a campaign-level number (a non-finite value is left out: absent, not NaN). */
static void put_value(struct analysis *a, const char *name, double value)
{
    if (!isfinite(value) || a->n_values >= MAX_VALUES)
        return;
    snprintf(a->values[a->n_values].name, NAME_LEN, "%s", name);
    a->values[a->n_values].value = value;
    a->n_values++;
}

static void put_flag(struct analysis *a, const char *name, bool value)
{
    if (a->n_flags >= MAX_FLAGS)
        return;
    snprintf(a->flags[a->n_flags].name, NAME_LEN, "%s", name);
    a->flags[a->n_flags].value = value;
    a->n_flags++;
}

static void __attribute__((format(printf, 2, 3)))
put_warning(struct analysis *a, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (a->n_warnings < MAX_WARNINGS) {
        vsnprintf(a->warnings[a->n_warnings], WARNING_LEN, fmt, ap);
        a->n_warnings++;
    } else {
        a->n_warnings_dropped++;
    }
    va_end(ap);
}

/* Sets key to a JSON number, or null when x is not finite (JSON has no NaN). */
static int set_number(json_t *obj, const char *key, double x)
{
    return json_object_set_new(obj, key, isfinite(x) ? json_real(x) : json_null());
}

/* ---- jv ------------------------------------------------------------------------------ */

/* A sweep whose voltage does not run one way, or repeats a voltage, is analysed sorted by
 * voltage (jv_figures) with the same figures, but it says something about the source-measure
 * unit or the station: a warning names how many reversals and repeats. */
static void sweep_order_warnings(struct analysis *a, const struct measurement_jv_sweep *s, size_t i)
{
    size_t reversals = 0, repeats = 0;
    int dir = 0;
    for (size_t k = 1; k < s->n_points; k++) {
        double d = s->voltage_v[k] - s->voltage_v[k - 1];
        if (d == 0.0) {
            repeats++;
            continue;
        }
        int now = d > 0.0 ? 1 : -1;
        if (dir != 0 && now != dir)
            reversals++;
        dir = now;
    }
    if (reversals > 0)
        put_warning(a,
                    "data.sweeps[%zu]: the voltage changes direction %zu time%s (analysed sorted "
                    "by voltage; check the sweep)",
                    i,
                    reversals,
                    reversals == 1 ? "" : "s");
    if (repeats > 0)
        put_warning(a,
                    "data.sweeps[%zu]: %zu point%s repeat%s the voltage before %s (analysed "
                    "together)",
                    i,
                    repeats,
                    repeats == 1 ? "" : "s",
                    repeats == 1 ? "s" : "",
                    repeats == 1 ? "it" : "them");
}

static int analyse_jv(const struct measurement *m, struct analysis *a, struct ll_error *err)
{
    const struct measurement_jv *jv = &m->jv;
    struct jv_figures fig[MEASUREMENT_JV_MAX_SWEEPS] = {{0}};
    json_t *sweeps = json_array();
    size_t reported = 0;
    double pce_fwd = (double)NAN, pce_rev = (double)NAN;
    int r;

    if (sweeps == NULL || json_object_set_new(a->details, "sweeps", sweeps) < 0)
        return ll_error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < jv->n_sweeps; i++) {
        const struct measurement_jv_sweep *s = &jv->sweeps[i];
        json_t *o = json_object();

        r = jv_figures(
            s->voltage_v, s->current_ma_cm2, s->n_points, jv->irradiance_mw_cm2, &fig[i], err);
        if (r < 0) {
            json_decref(o);
            return ll_error_prefix(err, "data.sweeps[%zu]", i);
        }
        if (o == NULL || json_array_append_new(sweeps, o) < 0)
            return ll_error_set(err, -ENOMEM, "out of memory");
        json_object_set_new(o, "direction", json_string(measurement_direction_name(s->direction)));
        set_number(o, "pce_pct", fig[i].pce_pct);
        set_number(o, "voc_v", fig[i].voc_v);
        set_number(o, "jsc_ma_cm2", fig[i].jsc_ma_cm2);
        set_number(o, "ff", fig[i].ff);
        set_number(o, "pmax_mw_cm2", fig[i].pmax_mw_cm2);
        set_number(o, "vmp_v", fig[i].vmp_v);
        set_number(o, "jmp_ma_cm2", fig[i].jmp_ma_cm2);
        json_object_set_new(o, "load_convention", json_boolean(fig[i].load_convention));
        json_object_set_new(
            o, "method", json_string(fig[i].diode_fit ? "single-diode fit" : "local fits"));
        set_number(o, "noise_ma_cm2", fig[i].noise_ma_cm2);
        if (fig[i].diode_fit) {
            set_number(o, "diode_n", fig[i].diode_n);
            set_number(o, "diode_j0_ma_cm2", fig[i].diode_j0_ma_cm2);
            set_number(o, "diode_rs_ohm_cm2", fig[i].diode_rs_ohm_cm2);
            set_number(o, "diode_rsh_ohm_cm2", fig[i].diode_rsh_ohm_cm2);
            set_number(o, "diode_fit_rms_ma_cm2", fig[i].fit_rms_ma_cm2);
        }
        if (s->direction == MEASUREMENT_DIRECTION_REVERSE) {
            reported = i;
            pce_rev = fig[i].pce_pct;
        } else {
            pce_fwd = fig[i].pce_pct;
        }
        if (fig[i].ff > 0.9 || fig[i].ff < 0.25)
            put_warning(a,
                        "data.sweeps[%zu]: implausible fill factor %.3f (check sign convention "
                        "and units)",
                        i,
                        fig[i].ff);
        sweep_order_warnings(a, s, i);
    }
    json_object_set_new(a->details,
                        "reported_sweep",
                        json_string(measurement_direction_name(jv->sweeps[reported].direction)));
    put_value(a, "pce_pct", fig[reported].pce_pct);
    put_value(a, "voc_v", fig[reported].voc_v);
    put_value(a, "jsc_ma_cm2", fig[reported].jsc_ma_cm2);
    put_value(a, "ff", fig[reported].ff);
    put_value(a, "pmax_mw_cm2", fig[reported].pmax_mw_cm2);
    put_value(a, "vmp_v", fig[reported].vmp_v);
    put_value(a, "jmp_ma_cm2", fig[reported].jmp_ma_cm2);
    if (isfinite(pce_fwd) && isfinite(pce_rev)) {
        put_value(a, "pce_fwd_pct", pce_fwd);
        put_value(a, "pce_rev_pct", pce_rev);
        put_value(a, "hysteresis_index", jv_hysteresis_index(pce_rev, pce_fwd));
    }
    return 0;
}

/* ---- eis ----------------------------------------------------------------------------- */

static int analyse_eis(const struct measurement *m, struct analysis *a, struct ll_error *err)
{
    const struct measurement_eis *eis = &m->eis;
    double cell = eis->thickness_cm / eis->area_cm2;
    double *temps = NULL, *sig_tot = NULL, *sig_bulk = NULL;
    json_t *spectra = json_array();
    size_t nearest = 0, n_resolved = 0;
    struct eis_fit nearest_fit = {0};
    int r = 0;

    /* details owns spectra from here on, even when the call fails */
    if (spectra == NULL || json_object_set_new(a->details, "spectra", spectra) < 0)
        return ll_error_set(err, -ENOMEM, "out of memory");
    temps = malloc(eis->n_spectra * sizeof(double));
    sig_tot = malloc(eis->n_spectra * sizeof(double));
    sig_bulk = malloc(eis->n_spectra * sizeof(double));
    if (temps == NULL || sig_tot == NULL || sig_bulk == NULL) {
        r = ll_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < eis->n_spectra; i++) {
        const struct measurement_eis_spectrum *sp = &eis->spectra[i];
        struct eis_fit fit;
        json_t *o = json_object();

        r = eis_fit_spectrum(
            sp->frequency_hz, sp->z_real_ohm, sp->z_imag_ohm, sp->n_points, cell, &fit, err);
        if (r < 0) {
            json_decref(o);
            ll_error_prefix(err, "data.spectra[%zu]", i);
            goto out;
        }
        if (o == NULL || json_array_append_new(spectra, o) < 0) {
            r = ll_error_set(err, -ENOMEM, "out of memory");
            goto out;
        }
        double r_total = fit.r_bulk_ohm + fit.r_gb_ohm, kk = (double)NAN;
        /* no KK test for unusable data (kk stays NaN), but never for want of memory */
        if (eis_kk_residual(
                sp->frequency_hz, sp->z_real_ohm, sp->z_imag_ohm, sp->n_points, &kk, NULL) ==
            -ENOMEM) {
            r = ll_error_set(err, -ENOMEM, "data.spectra[%zu]: out of memory", i);
            goto out;
        }
        temps[i] = sp->temperature_c;
        sig_bulk[i] = eis_conductivity(eis->thickness_cm, eis->area_cm2, fit.r_bulk_ohm);
        sig_tot[i] = eis_conductivity(eis->thickness_cm, eis->area_cm2, r_total);
        n_resolved += fit.bulk_resolved;
        set_number(o, "temperature_c", sp->temperature_c);
        json_object_set_new(o, "model", json_string(fit.model));
        set_number(o, "r_bulk_ohm", fit.r_bulk_ohm);
        set_number(o, "r_bulk_sd_ohm", fit.r_bulk_sd_ohm);
        set_number(o, "r_gb_ohm", fit.r_gb_ohm);
        set_number(o, "r_gb_sd_ohm", fit.gb_fitted ? fit.r_gb_sd_ohm : (double)NAN);
        set_number(o, "r_total_ohm", r_total);
        set_number(o, "sigma_bulk_s_cm", sig_bulk[i]);
        set_number(o, "sigma_total_s_cm", sig_tot[i]);
        set_number(o, "fit_residual", fit.fit_residual);
        set_number(o, "kk_residual", kk);
        json_object_set_new(o, "bulk_resolved", json_boolean(fit.bulk_resolved));
        json_object_set_new(o, "gb_fitted", json_boolean(fit.gb_fitted));
        set_number(o, "f_apex_bulk_hz", fit.f_apex_bulk_hz);
        set_number(o, "c_bulk_f", fit.c_bulk_f);
        set_number(o, "n_bulk", fit.n_bulk);
        set_number(o, "q_el", fit.q_el);
        set_number(o, "n_el", fit.n_el);
        set_number(o, "l_lead_h", fit.lead_fitted ? fit.l_lead_h : (double)NAN);
        if (kk > EIS_POOR_FIT_RESIDUAL)
            put_warning(a,
                        "data.spectra[%zu]: the data fail the Kramers-Kronig test (residual %.3f "
                        "> %.2f): drift, non-linearity or a sample that changed during the sweep",
                        i,
                        kk,
                        EIS_POOR_FIT_RESIDUAL);
        else if (fit.fit_residual > EIS_POOR_FIT_RESIDUAL)
            put_warning(a,
                        "data.spectra[%zu]: poor fit (residual %.3f > %.2f; the data pass the "
                        "Kramers-Kronig test, so the circuit does not describe them): R and "
                        "sigma are doubtful",
                        i,
                        fit.fit_residual,
                        EIS_POOR_FIT_RESIDUAL);
        if (!fit.bulk_resolved)
            put_warning(a,
                        "data.spectra[%zu]: the bulk arc is not resolved in the frequency window; "
                        "R_bulk is estimated from the high-frequency intercept",
                        i);
        if (fit.r_bulk_sd_ohm > 0.1 * fit.r_bulk_ohm)
            put_warning(a,
                        "data.spectra[%zu]: R_bulk uncertain (+/- %.0f %%); sigma_total is the "
                        "reliable number",
                        i,
                        100.0 * fit.r_bulk_sd_ohm / fit.r_bulk_ohm);
        if (fabs(sp->temperature_c - 25.0) < fabs(eis->spectra[nearest].temperature_c - 25.0) ||
            i == 0) {
            nearest = i;
            nearest_fit = fit;
        }
    }
    json_object_set_new(a->details, "reported_spectrum", json_integer((json_int_t)nearest));
    put_value(a, "temperature_c", eis->spectra[nearest].temperature_c);
    put_value(a, "r_bulk_ohm", nearest_fit.r_bulk_ohm);
    put_value(a, "r_bulk_sd_ohm", nearest_fit.r_bulk_sd_ohm);
    put_value(a, "r_gb_ohm", nearest_fit.r_gb_ohm);
    put_value(a, "r_total_ohm", nearest_fit.r_bulk_ohm + nearest_fit.r_gb_ohm);
    put_value(a, "sigma_bulk_s_cm", sig_bulk[nearest]);
    put_value(a, "sigma_total_s_cm", sig_tot[nearest]);
    put_value(a, "sigma_s_cm", sig_tot[nearest]);
    put_value(a, "log10_sigma_s_cm", log10(sig_tot[nearest]));
    put_value(a, "fit_residual", nearest_fit.fit_residual);
    put_flag(a, "bulk_resolved", nearest_fit.bulk_resolved);
    put_flag(a, "gb_fitted", nearest_fit.gb_fitted);
    if (eis->n_spectra >= 3) {
        struct eis_arrhenius arr;
        struct ll_error aerr = {0};
        if (eis_arrhenius_fit(temps, sig_tot, eis->n_spectra, &arr, &aerr) == 0) {
            put_value(a, "ea_ev", arr.ea_ev);
            put_value(a, "ea_sd_ev", arr.ea_sd_ev);
            put_value(a, "log10_sigma0", arr.log10_sigma0);
            put_value(a, "log10_sigma0_sd", arr.log10_sigma0_sd);
        } else {
            put_warning(a, "data.spectra: no Arrhenius fit: %s", aerr.msg);
        }
        if (n_resolved == eis->n_spectra &&
            eis_arrhenius_fit(temps, sig_bulk, eis->n_spectra, &arr, NULL) == 0) {
            put_value(a, "ea_bulk_ev", arr.ea_ev);
            put_value(a, "ea_bulk_sd_ev", arr.ea_sd_ev);
        }
    }
    r = 0;
out:
    free(sig_bulk);
    free(sig_tot);
    free(temps);
    return r;
}

/* ---- stability ----------------------------------------------------------------------- */

static int analyse_stability(const struct measurement *m, struct analysis *a, struct ll_error *err)
{
    const struct measurement_stability *st = &m->stability;
    struct stability_t80 res;
    json_t *params = json_array();
    int r;

    if (params == NULL || json_object_set_new(a->details, "model_params", params) < 0)
        return ll_error_set(err, -ENOMEM, "out of memory");
    r = stability_t80(st->time_h, st->normalised_pce, st->n_points, &res, err);
    if (r < 0)
        return ll_error_prefix(err, "data");
    put_value(a, "t80_h", res.t80_h);
    put_value(a, "log10_t80_h", res.t80_h > 0.0 ? log10(res.t80_h) : (double)NAN);
    if (!res.measured)
        put_value(a, "t80_sd_h", res.t80_sd_h);
    put_value(a, "last_time_h", res.last_time_h);
    put_value(a, "last_pce", res.last_smoothed);
    put_flag(a, "t80_measured", res.measured);
    put_flag(a, "t80_lower_bound", res.lower_bound);
    put_flag(a, "normalised_to_max", res.normalised_to_max);
    json_object_set_new(a->details, "protocol", json_string(st->protocol));
    json_object_set_new(a->details, "model", json_string(res.model));
    for (size_t i = 0; i < res.n_model_params; i++)
        json_array_append_new(params, json_real(res.model_params[i]));
    set_number(a->details, "reference", res.reference);
    set_number(a->details, "noise_sd", res.noise_sd);
    if (!res.measured)
        put_warning(a,
                    "data: T80 not reached by %.4g h; %.4g h is predicted (%s model) and is a "
                    "lower bound",
                    res.last_time_h,
                    res.t80_h,
                    res.model);
    if (res.far_extrapolation)
        put_warning(a,
                    "data: the prediction extrapolates more than %.0f times beyond the data",
                    STABILITY_FAR_EXTRAPOLATION);
    if (res.normalised_to_max)
        put_warning(a,
                    "data: the efficiency first rose to %.3f; T80 is relative to that maximum",
                    res.reference);
    return 0;
}

/* ---- public -------------------------------------------------------------------------- */

int analysis_run(const struct measurement *m, struct analysis **ret, struct ll_error *reterr)
{
    struct analysis *a = NULL;
    int r;

    *ret = NULL;
    if (m == NULL || m->type != MEASUREMENT_TYPE_MEASUREMENT)
        return ll_error_set(reterr, -EINVAL, "type: only measurement messages can be analysed");
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    a->details = json_object();
    if (a->details == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    a->kind = m->kind;
    a->seq = m->seq;
    memcpy(a->station, m->station, sizeof(a->station));
    memcpy(a->sample, m->sample, sizeof(a->sample));
    memcpy(a->request, m->request, sizeof(a->request));
    switch (m->kind) {
    case MEASUREMENT_KIND_JV:
        r = analyse_jv(m, a, reterr);
        break;
    case MEASUREMENT_KIND_EIS:
        r = analyse_eis(m, a, reterr);
        break;
    case MEASUREMENT_KIND_STABILITY:
        r = analyse_stability(m, a, reterr);
        break;
    case MEASUREMENT_KIND_NONE:
    default:
        r = ll_error_set(reterr, -EINVAL, "kind: nothing to analyse");
        break;
    }
    if (r < 0)
        goto out;
    *ret = a;
    a = NULL;
out:
    analysis_free(&a);
    return r;
}

/* Strips "kind." from name when it names this analysis' kind; NULL when it names another. */
static const char *strip_kind(const struct analysis *a, const char *name)
{
    const char *dot = strchr(name, '.');
    const char *kind = measurement_kind_name(a->kind);
    size_t len;

    if (dot == NULL)
        return name;
    len = (size_t)(dot - name);
    if (strlen(kind) != len || strncmp(name, kind, len) != 0)
        return NULL;
    return dot + 1;
}

int analysis_get(const struct analysis *a, const char *name, double *ret_value)
{
    const char *key = strip_kind(a, name);

    if (key == NULL)
        return -ENOENT;
    for (size_t i = 0; i < a->n_values; i++) {
        if (strcmp(a->values[i].name, key) == 0) {
            *ret_value = a->values[i].value;
            return 0;
        }
    }
    return -ENOENT;
}

int analysis_get_flag(const struct analysis *a, const char *name, bool *ret_value)
{
    const char *key = strip_kind(a, name);

    if (key == NULL)
        return -ENOENT;
    for (size_t i = 0; i < a->n_flags; i++) {
        if (strcmp(a->flags[i].name, key) == 0) {
            *ret_value = a->flags[i].value;
            return 0;
        }
    }
    return -ENOENT;
}

enum measurement_kind analysis_kind(const struct analysis *a)
{
    return a->kind;
}

size_t analysis_n_values(const struct analysis *a)
{
    return a->n_values;
}

const char *analysis_value_name(const struct analysis *a, size_t i)
{
    return i < a->n_values ? a->values[i].name : NULL;
}

double analysis_value(const struct analysis *a, size_t i)
{
    return i < a->n_values ? a->values[i].value : (double)NAN;
}

size_t analysis_n_warnings(const struct analysis *a)
{
    return a->n_warnings;
}

const char *analysis_warning(const struct analysis *a, size_t i)
{
    return i < a->n_warnings ? a->warnings[i] : NULL;
}

char *analysis_to_json(const struct analysis *a)
{
    json_t *o = json_object(), *w = json_array();
    char *text = NULL;
    int bad = 0;

    if (o == NULL || w == NULL)
        goto out;
    bad |= json_object_set_new(o, "analysis_version", json_string(ANALYSIS_VERSION));
    bad |= json_object_set_new(o, "kind", json_string(measurement_kind_name(a->kind)));
    bad |= json_object_set_new(o, "station", json_string(a->station));
    bad |= json_object_set_new(o, "sample", json_string(a->sample));
    bad |= json_object_set_new(o, "request", json_string(a->request));
    bad |= json_object_set_new(o, "seq", json_integer((json_int_t)a->seq));
    for (size_t i = 0; i < a->n_values; i++)
        bad |= set_number(o, a->values[i].name, a->values[i].value);
    for (size_t i = 0; i < a->n_flags; i++)
        bad |= json_object_set_new(o, a->flags[i].name, json_boolean(a->flags[i].value));
    for (size_t i = 0; i < a->n_warnings; i++)
        bad |= json_array_append_new(w, json_string(a->warnings[i]));
    if (a->n_warnings_dropped > 0) {
        char more[64];
        snprintf(more, sizeof(more), "... and %zu more warnings", a->n_warnings_dropped);
        bad |= json_array_append_new(w, json_string(more));
    }
    bad |= json_object_set(o, "warnings", w);
    bad |= json_object_set(o, "details", a->details);
    if (bad)
        goto out;
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
out:
    json_decref(w);
    json_decref(o);
    return text;
}

void analysis_free(struct analysis **pa)
{
    if (pa == NULL || *pa == NULL)
        return;
    json_decref((*pa)->details);
    free(*pa);
    *pa = NULL;
}

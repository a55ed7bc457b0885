/* analysis — turn one parsed measurement into named numbers, flags and warnings.
 *
 * The dispatch between the kinds: `jv` goes to models/jv.h (figures of merit per sweep,
 * hysteresis), `eis` to models/eis.h (equivalent-circuit fit per spectrum, conductivity,
 * Arrhenius), `stability` to models/stability.h (T80 measured or predicted early). The
 * result is what labloopd stores as a measurement's derived objectives and what
 * `labloop analyze` prints; a campaign objective `from = "jv.pce_pct"` is looked up with
 * analysis_get(a, "jv.pce_pct", &x) (or without the kind prefix, "pce_pct").
 *
 * Names of the campaign-level values (docs/protocol.md and docs/analysis.md give units):
 *   jv:        pce_pct voc_v jsc_ma_cm2 ff pmax_mw_cm2 vmp_v jmp_ma_cm2 of the reported sweep
 *              (reverse when present); with a forward/reverse pair also pce_fwd_pct
 *              pce_rev_pct hysteresis_index
 *   eis:       temperature_c r_bulk_ohm r_bulk_sd_ohm r_gb_ohm r_total_ohm sigma_bulk_s_cm
 *              sigma_total_s_cm sigma_s_cm (= sigma_total_s_cm) log10_sigma_s_cm fit_residual
 *              of the spectrum nearest 25 °C; with >= 3 temperatures also ea_ev ea_sd_ev
 *              log10_sigma0 log10_sigma0_sd (from sigma_total) and, when every bulk arc was
 *              resolved, ea_bulk_ev ea_bulk_sd_ev
 *   stability: t80_h log10_t80_h last_time_h last_pce, and t80_sd_h for a prediction
 * Flags: eis bulk_resolved gb_fitted; stability t80_measured t80_lower_bound
 * normalised_to_max. analysis_get() says -ENOENT for a name this analysis does not have.
 *
 * An analysis is plain data owned by the caller (analysis_free()). No global state. The
 * program must turn GSL's default error handler off (gsl_set_error_handler_off() in main, as
 * labloopd does): a failed fit step is then reported or survived, not an abort (an EIS
 * spectrum found by fuzzing drives GSL's Cholesky into a non-positive-definite step).
 * Owner: the measurement-analysis helper (issue 4).
 */
#ifndef MODELS_ANALYSIS_H
#define MODELS_ANALYSIS_H

#include "common/ll_error.h"
#include "models/measurement.h"

#include <stdbool.h>
#include <stddef.h>

struct analysis;

/* The version of the analysis methods, stored with every derived number so that a change of
 * method is visible ("1.0"). Static string. */
const char *analysis_version(void);

/* Analyses a parsed `measurement` message (type MEASUREMENT_TYPE_MEASUREMENT). On success
 * stores a new analysis in *ret (free with analysis_free()) and returns 0. Errors (with one
 * sentence naming the field in reterr): -EINVAL when the data cannot give the numbers
 * (e.g. "data.sweeps[0]: the curve never crosses J = 0 (no Voc)"), a hello or heartbeat
 * message, or an impossible fit; -ENOMEM. */
int analysis_run(const struct measurement *m, struct analysis **ret, struct ll_error *reterr);

/* Looks up a campaign-level number by name, with or without the kind prefix ("pce_pct" or
 * "jv.pce_pct"). Returns 0 and stores it in *ret_value, or -ENOENT when this analysis has
 * no such number (or the prefix names another kind). */
int analysis_get(const struct analysis *a, const char *name, double *ret_value);

/* Looks up a flag ("t80_measured", "bulk_resolved", ...). 0 or -ENOENT. */
int analysis_get_flag(const struct analysis *a, const char *name, bool *ret_value);

/* The kind analysed. */
enum measurement_kind analysis_kind(const struct analysis *a);

/* Iteration over the campaign-level numbers in a stable order: i < analysis_n_values(a). */
size_t analysis_n_values(const struct analysis *a);
const char *analysis_value_name(const struct analysis *a, size_t i);
double analysis_value(const struct analysis *a, size_t i);

/* Warnings (one sentence each, e.g. "spectra[0]: poor fit (residual 0.12)"); owned by a. */
size_t analysis_n_warnings(const struct analysis *a);
const char *analysis_warning(const struct analysis *a, size_t i);

/* The analysis as one JSON object (what `labloop analyze` prints and labloopd stores):
 *   {"analysis_version": "1.0", "kind": "jv", "station": ..., "sample": ..., "seq": ...,
 *    "pce_pct": ..., ...every campaign-level number..., "t80_measured": true, ...flags...,
 *    "warnings": [...], "details": {...per sweep / per spectrum / model fit...}}
 * Returns a malloc'd NUL-terminated string (caller frees with free()), or NULL when out of
 * memory. */
char *analysis_to_json(const struct analysis *a);

/* Frees *a and sets it to NULL; NULL or *a == NULL is a no-op. */
void analysis_free(struct analysis **a);

#endif

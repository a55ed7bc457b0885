/* sim_measure — raw station data from the world model (docs/world.md §3).
 *
 * Turns the true values of a sample (perovskite: PCE, log10 T80, band gap; electrolyte:
 * conductivities, activation energies) into the `data` object of a measurement message
 * (docs/protocol.md) with measurement noise, using models/synth.h for the curves:
 * J-V sweeps from a single-diode model consistent with the band gap and the noisy PCE,
 * stability series from a degradation curve with the noisy T80, impedance spectra of a
 * pellet inside the analyser's frequency window.
 */
#ifndef SIM_MEASURE_H
#define SIM_MEASURE_H

#include "common/ll_error.h"
#include "simulators/sim_lab.h"

#include <gsl/gsl_rng.h>
#include <jansson.h>

/* Simulated duration (s) of a measurement of kind with protocol (may be NULL). */
double sim_measure_duration_s(const char *kind, const json_t *protocol);

/* Builds the data object for a measurement of kind ("jv", "stability", "eis") of sample s
 * in lab's world; protocol (may be NULL) holds optional settings (stability: duration_h;
 * eis: temperatures_c). On success *ret_data is a new reference and *ret_truth (may be NULL)
 * a new object with the noise-free truth and the inputs (for logs and the control socket).
 * Returns 0, -EINVAL (the world cannot produce this kind for this sample: reterr says why)
 * or -ENOMEM. */
int sim_measure(const struct sim_lab *lab,
                const struct sim_sample *s,
                const char *kind,
                const json_t *protocol,
                gsl_rng *rng,
                json_t **ret_data,
                json_t **ret_truth,
                struct ll_error *reterr);

/* The noise-free truth and world inputs of sample s as a new JSON object (NULL when the
 * sample holds nothing the world can evaluate). */
json_t *sim_measure_truth(const struct sim_lab *lab, const struct sim_sample *s);

#endif

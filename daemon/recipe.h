/* recipe — a campaign's `recipe`: the steps on instruments that make and measure one sample,
 * with ${parameter} values computed by small arithmetic expressions.
 *
 * The campaign file (DESIGN.md "Campaign file") holds, inside `campaign`, the daemon keys
 * this module reads (planner/campaign.h ignores them):
 *
 *   approval = "auto";        # or "batch": every batch waits for `labloop approve`
 *   schedule = "sync";        # or "async": the next batch is proposed (with the open ones as
 *                             # pending points) as soon as the busiest instrument has no
 *                             # step of the open experiments left to do, so it never idles
 *   on_instrument_fault = "pause";  # or "continue": what a fault that makes an instrument
 *                             # unusable does to the campaign (docs/daemon.md "Instrument
 *                             # faults"); the instrument is commanded safe either way
 *   target = { pce_pct = 22.0; };   # optional: stop once one experiment reaches every value
 *   recipe = (
 *     { instrument = "robot"; action = "dispense"; expected_s = 8.0;
 *       volumes_ul = [ "100 * (1 - ${cs}) * ${fa} * ${iodide}", ... ]; },
 *     { instrument = "robot"; action = "move"; from = "rack"; to = "coater"; expected_s = 3; },
 *     { instrument = "coater"; action = "spin"; expected_s = 40;
 *       stages = ( { rpm = 1000; accel_rpm_s = 1000; seconds = 5; },
 *                  { rpm = "${spin_rpm}"; accel_rpm_s = 2000; seconds = 30; } ); },
 *     { instrument = "furnace"; action = "anneal"; setpoint_c = "${anneal_c}";
 *       ramp_c_min = 30; dwell_min = "${anneal_min}";
 *       expected_s = "(${anneal_c} - 25) / 30 * 60 + ${anneal_min} * 60"; },
 *     { action = "measure"; kind = "jv"; expected_s = 20; protocol = { }; }
 *   );
 *
 * Actions: robot dispense (volumes_ul: up to 8 values, reservoir 1..8 of lab.conf) and move
 * (from, to: robot place names); coater spin (stages: 1..8 of rpm, accel_rpm_s, seconds);
 * furnace anneal (setpoint_c, ramp_c_min, dwell_min); measure (kind: jv, eis or stability;
 * the daemon sends it to the station of lab.conf that measures that kind; protocol: an
 * optional group passed to the station as given). The sample's well is the daemon's.
 * expected_s (simulated or real seconds of the instrument's work) is required.
 *
 * Values: a number, or a string that is an expression when it contains "${" or starts with
 * "=": numbers, ${name} (a campaign parameter), + - * / and parentheses, unary minus
 * (common/ll_expr.h). Other
 * strings (place names, kinds) stay strings. Every expression is checked at load by
 * expanding the recipe at the centre of the search space; errors name the file and line.
 */
#ifndef RECIPE_H
#define RECIPE_H

#include "common/ll_error.h"
#include "planner/campaign.h"

#include <jansson.h>
#include <stddef.h>

#define RECIPE_MAX_STEPS 64
#define RECIPE_MAX_TARGETS 4

struct recipe;

/* Reads the daemon keys (recipe, approval, schedule, on_instrument_fault, target) of the campaign
 * text (libconfig) and checks them against the parsed campaign c (parameter and objective names).
 * source names the text in messages ("FILE:LINE: problem"). Returns 0 and a new recipe (free with
 * recipe_free()), -EINVAL with a message, or -ENOMEM. */
int recipe_parse(const char *text,
                 const char *source,
                 const struct campaign *c,
                 struct recipe **ret,
                 struct ll_error *reterr);
void recipe_free(struct recipe **r);

/* Number of steps; "auto" or "batch"; targets (objective name and value; met when the
 * objective is >= value for a maximised objective, <= for a minimised one). */
size_t recipe_n_steps(const struct recipe *r);
const char *recipe_approval(const struct recipe *r);
int recipe_async(const struct recipe *r);        /* 1 for schedule = "async" */
int recipe_fault_pauses(const struct recipe *r); /* 0 for on_instrument_fault = "continue" */
size_t recipe_n_targets(const struct recipe *r);
const char *recipe_target_name(const struct recipe *r, size_t i);
double recipe_target_value(const struct recipe *r, size_t i);

/* Expands the recipe for the parameter values x (c->n_params values, c's order) into a new
 * array (caller json_decref()s) of {"instrument", "action", "expected_ms", "params": {...}}
 * with every expression evaluated. Measure steps get instrument "" (the daemon picks the
 * station) and params.kind. */
int recipe_expand(const struct recipe *r,
                  const struct campaign *c,
                  const double *x,
                  json_t **ret_steps,
                  struct ll_error *reterr);

#endif

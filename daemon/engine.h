/* engine — campaigns, rounds and the step scheduler of labloopd: the closed loop itself.
 *
 * The idea. The store is the truth; the engine keeps only what is in flight (the instrument
 * requests it is waiting for, timers) and rebuilds everything else from the store on every
 * pass (engine_tick()), so a restart is just a new engine on the same database plus
 * engine_recover(). Each pass, for each campaign:
 *  - experiments whose steps have all ended become measured (every objective stored) or
 *    failed (a step failed; the reason is the step's);
 *  - when a campaign has no open experiment: stop on the budget or a target, or ask the
 *    planner (planner/planner.h, rebuilt from every measured experiment: it refits on all
 *    data every round) for the next batch — `initial` space-filling points first, then
 *    `batch` per round — and commit, in one transaction, the round's model fit (training
 *    rows, scaling, hyperparameters, seed, chosen points and acquisition values), the
 *    experiments and all their steps (recipe.h expands the recipe per point); the batch is
 *    queued at once (approval "auto") or waits for `labloop approve` (approval "batch";
 *    the pending approval is a row, so it survives restarts);
 *  - steps start in experiment order when their instrument is free, the previous step of the
 *    sample is done and (for a move) the destination place is empty: so the coater spins
 *    sample 2 while the furnace anneals sample 1. Each instrument runs one step at a time.
 *
 * Starting a step: commit `started` (the intent, with its deadline), then submit it to the
 * instrument's worker (drivers/worker.h) or send the station its `measure`. Completions move
 * the step on; a start that timed out or lost the link is settled with drv_step_query(),
 * never by sending again. After a restart every `started` step is settled the same way:
 * done / failed / not started (back to pending) / running (polled on) / unknown (the step
 * becomes an operator question; `labloop resolve STEP done|failed` answers it). Measure
 * requests are re-sent with the same request id (stations answer repeats from their store).
 *
 * Deadlines: expected_s of the recipe divided by the time scale (labsim's --speed), times
 * 1.5, plus 2 s; a missed deadline is an event and is listed in status (measure requests are
 * re-sent at each miss and fail after 5). Each finished round logs its makespan and the lower
 * bound (the busiest instrument's total work in that round).
 *
 * A hot furnace: the move that takes a sample into a furnace (a move followed by that sample's
 * anneal) starts only once the furnace's PV, read through its worker (drv_status), is at
 * most the anneal's setpoint + the furnace's load_tolerance_c (lab.conf); until then the
 * furnace is read again on a timer (every poll interval, at least every 5 s of instrument
 * time), with one event when the wait begins, one when it ends, and a warning after
 * load_wait_warn_min. The move is not started while it waits (no intent), so a restart
 * simply waits again. docs/daemon.md "A hot furnace waits before loading".
 *
 * The rack: each new sample gets the lowest rack well that holds no sample (a well stays
 * occupied until `labloop rack unloaded`); with none free no experiment is created (one
 * event, status and STATUS= say "rack full") while running ones go on.
 * Pause: no step starts; running ones finish. Stop (e-stop): the same, plus DRV_REQ_SAFE to
 * every instrument, latched in the store until a resume. Abort: open experiments abandoned.
 *
 * Instrument faults (reliability.md X5): a failed step whose failure says the instrument is
 * unusable (engine_fault_unusable(); also two failed steps in a row on one instrument, a link
 * down through ENGINE_LINK_FAULT_CALLS calls in a row, a furnace reading above its max_temp_c
 * + 10 C at its door) commands that instrument's safe state (unless its driver already did)
 * and pauses every running campaign that uses it, in the transaction that records the
 * failure, with the reason "instrument fault on NAME: ..." and an event of kind `fault` —
 * unless the campaign says on_instrument_fault = "continue". The other instruments finish
 * their current step, as in any pause; a resume tries again. docs/daemon.md "Instrument
 * faults".
 */
#ifndef ENGINE_H
#define ENGINE_H

#include "common/ll_error.h"
#include "daemon/ingest.h"
#include "daemon/store.h"
#include "drivers/labconf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct engine;
struct measurement;
struct analysis;

struct engine_options {
    struct store *store;       /* borrowed */
    const struct labconf *lab; /* borrowed; instruments and stations */
    double time_scale;         /* instrument seconds per real second (labsim --speed); >= 1 */
    int poll_ms;               /* poll interval for running steps; 0: each instrument's poll_ms */
    int no_instruments;        /* 1: start no driver workers (tests of the planning side) */
    /* storage trouble lasting longer than this (real time, ms) raises the alarm: one critical
     * log line, and the event at its end is an error; 0: 30 s */
    int64_t store_alarm_ms;
};

/* Makes an engine and starts one driver worker per instrument (no I/O yet). Free with
 * engine_free(). */
int engine_new(const struct engine_options *opt, struct engine **ret, struct ll_error *reterr);

/* Stops the workers (without commanding safe states) and frees *e; NULL is a no-op. */
void engine_free(struct engine **e);

/* The ingest to send measure requests through (set once both exist). */
void engine_set_ingest(struct engine *e, struct ingest *ing);

/* The ingest hook (ingest.h ingest_measured_fn); ctx is the engine. */
int engine_on_measured(void *ctx,
                       int64_t experiment_id,
                       int64_t step_id,
                       int64_t measurement_id,
                       const struct measurement *m,
                       const struct analysis *a,
                       const char *analysis_error,
                       struct ll_error *reterr);

/* Start-up: loads every unfinished campaign from the store and settles every started step
 * (queries to the instruments, measure requests re-sent). */
int engine_recover(struct engine *e, struct ll_error *reterr);

/* 1 once every settling query of engine_recover() has been answered. */
int engine_recovered(const struct engine *e);

/* One scheduling pass (see above). Returns 0 or a negative errno (logged by the caller). */
int engine_tick(struct engine *e, struct ll_error *reterr);

/* Milliseconds until the engine wants the next tick (timers), or -1 for "only on events". */
int engine_timeout_ms(const struct engine *e);

/* The workers' completion fds (up to max) for the poll set; returns how many. */
int engine_fds(const struct engine *e, int *fds, int max);

/* Takes every waiting worker completion and acts on it. */
int engine_on_completions(struct engine *e, struct ll_error *reterr);

/* The watchdog's question: are the instrument worker threads alive? A worker holding
 * submitted requests must complete one within its longest call budget (drivers/driver.h
 * "Deadlines": 2 x DRV_CALL_BUDGET for a start) after its previous completion, or after the
 * submit that found it idle. Returns 1 when every worker is within that plus margin_ms at
 * monotonic time now (ll_monotonic_ms()); 0 when one is not, with the sentence in why (size
 * n). labloopd stops its WATCHDOG=1 pings while this is 0, so that systemd restarts it. */
int engine_workers_alive(
    const struct engine *e, int64_t now, int64_t margin_ms, char *why, size_t n);

/* The furnace-loading rule: 1 when a sample whose anneal is at setpoint_c may be moved into
 * a furnace whose PV reads pv_c, i.e. pv_c <= setpoint_c + tolerance_c (a furnace below the
 * setpoint is fine: heating up is the anneal's own ramp); 0 when the furnace is hotter, or
 * when pv_c or the limit is not a finite number (no usable reading). */
int engine_furnace_may_load(double pv_c, double setpoint_c, double tolerance_c);

/* When a running step is polled next (monotonic ms), now being when its last poll ended:
 * every poll_ms, but five times as often (at least every millisecond) from one interval
 * before its expected end (expected_end_at; 0 unknown) to ten intervals after it, so that
 * the end of a step is seen soon. The daemon's poll schedule; pure (the bus budget test,
 * reliability.md L7, polls by it). */
int64_t engine_poll_next_at(int64_t poll_ms, int64_t expected_end_at, int64_t now);

/* 1 when a wait that began waited_ms ago (real milliseconds) has lasted longer than warn_min
 * minutes of instrument time at time_scale (instrument seconds per real second). */
int engine_furnace_wait_overdue(int64_t waited_ms, double time_scale, double warn_min);

/* Consecutive poll or query calls (each already retried inside its call budget by the driver)
 * that failed for want of a link or an answer before the instrument counts as unusable. */
#define ENGINE_LINK_FAULT_CALLS 5

/* The instrument-fault table (docs/daemon.md "Instrument faults"): 1 when a step that failed
 * with the driver error code (drivers/driver.h DRV_E*) means its instrument is unusable until
 * someone looks at it, 0 when the failure is about that step or sample alone. running: 0
 * when the instrument would not take the step (drv_step_start's error), 1 when it stopped a
 * step it had taken (drv_step_poll/query said DRV_STEP_FAILED) or no longer answers. */
int engine_fault_unusable(int running, int code);

/* The rack rule (docs/daemon.md "The rack"): the lowest well below n_wells whose
 * occupied[w] is 0, or -ENOSPC when every well holds a sample. A well is occupied from its
 * experiment's creation until the operator unloads the rack (store_rack_occupied()). */
int engine_rack_pick_well(const unsigned char *occupied, int n_wells);

/* The rack for status and `labloop rack`: {wells, occupied, free, full, occupied_wells,
 * message (only while full)}; full: a campaign wanted a well and none was free, until the
 * unload (or until a well frees). Caller decrefs; NULL on a store error. */
json_t *engine_rack_json(struct engine *e, struct ll_error *reterr);

/* `labloop rack unloaded`: every measured, failed or abandoned sample's well becomes free
 * (persisted, with an event); samples in progress keep theirs; the engine makes a full pass
 * next (new experiments if a campaign waited for wells). *ret_n: samples unloaded. */
int engine_rack_unloaded(struct engine *e, int *ret_n, struct ll_error *reterr);

/* 1 while any campaign is running, paused or stopped with open experiments. */
int engine_busy(const struct engine *e);

/* --- operator commands (the control socket); each returns 0 or -errno with a message --- */
int engine_campaign_start(struct engine *e,
                          const char *text,
                          const char *source,
                          int64_t *ret_id,
                          struct ll_error *reterr);
/* op: "pause", "resume", "abort". id 0: the only active campaign. */
int engine_campaign_op(struct engine *e, int64_t id, const char *op, struct ll_error *reterr);
/* approve != 0: queue the pending batch; 0: deny it. */
int engine_approve(struct engine *e, int64_t id, int approve, struct ll_error *reterr);
/* Software stop: safe state on every instrument, every running campaign stopped, latched. */
int engine_estop(struct engine *e, struct ll_error *reterr);
/* `labloop instrument NAME reset|safe` while labloopd runs: submits a DRV_REQ_CLEAR (op
 * "reset": clear a latched fault) or a DRV_REQ_SAFE (op "safe") to that instrument's worker and
 * returns at once; the outcome becomes an event of kind instrument.reset / instrument.safe
 * (notice; error when the driver call failed, with its message). A reset that worked forgets
 * the instrument's fault (status), but the campaigns it paused stay paused until a resume.
 * Refused: -ENOENT an unknown name; -EBUSY a reset while a step of the instrument is in flight
 * (the engine holds it: from its committed start until its outcome is stored — start or poll
 * with the worker, polling, settling after a restart, outcome waiting for the store); -EALREADY
 * a reset of it already with the worker (no step of it starts until that one completed);
 * -ENODEV no workers; -EAGAIN the worker's queue is full; -EINVAL a bad op. */
int engine_instrument_op(struct engine *e,
                         const char *name,
                         const char *op,
                         struct ll_error *reterr);
/* Answers an operator question: the unknown step did run ("done") or not ("failed"). */
int engine_resolve(struct engine *e, int64_t step_id, const char *answer, struct ll_error *reterr);

/* Status for `labloop status` (campaigns, rounds with makespans, approvals, questions,
 * missed deadlines, in-flight steps, instruments, stations, e-stop). Caller decrefs. */
json_t *engine_status_json(struct engine *e, struct ll_error *reterr);

/* Pareto front of a campaign's measured experiments (objectives in their own units) and
 * the hypervolume against the campaign's reference point: {campaign, objectives, front:
 * [experiment objects], hypervolume, n_measured}. id 0: the latest campaign. */
json_t *engine_pareto_json(struct engine *e, int64_t id, struct ll_error *reterr);

/* A short one-line summary for sd_notify STATUS=. */
void engine_summary(struct engine *e, char *buf, size_t n);

#endif

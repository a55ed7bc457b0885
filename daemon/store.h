/* store — labloopd's durable memory: one SQLite database holding every campaign, experiment,
 * step attempt, raw measurement, derived number, model fit, approval and event.
 *
 * The idea. Nothing leaves the process (an instrument command, an ack to a station) before the
 * intent or the result is committed here, so after kill -9 or power loss the daemon can rebuild
 * everything it was doing from this file alone. The database runs in WAL mode with
 * synchronous=FULL (a committed transaction survives power loss on honest storage —
 * reliability.md §1), foreign_keys=ON, a 5 s busy timeout and SQLITE_DBCONFIG_DEFENSIVE.
 * `PRAGMA quick_check` runs at open; a database that fails it is refused. The schema carries
 * its version in `PRAGMA user_version` and is brought up to date by the migrations in store.c
 * (each one a transaction). Backups use the online backup API (sqlite3_backup_*), never a
 * file copy. Only one connection writes (labloopd's main thread); the CLI never opens it.
 *
 * Errors. SQLite's result codes are mapped to negative errno values here and nowhere else:
 * BUSY/LOCKED -> -EBUSY, CONSTRAINT -> -EEXIST, FULL -> -ENOSPC, NOMEM -> -ENOMEM,
 * READONLY -> -EROFS, CANTOPEN -> -ENOENT, CORRUPT/NOTADB -> -EBADMSG, anything else -> -EIO;
 * the SQLite message goes into the struct ll_error.
 *
 * Listings for the control socket and export come back as jansson values (arrays of objects
 * whose keys are column names) so that no SQL leaves this file.
 *
 * The raw payload hash is SHA-256 (daemon/sha256.h), stored as 64 hex digits.
 * The full schema is documented in docs/daemon.md.
 */
#ifndef STORE_H
#define STORE_H

#include "common/ll_error.h"

#include <jansson.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 5

struct store;

/* Campaign states.
 *
 *   state       may become                                  meaning
 *   running     paused stopped completed aborted failed     steps are scheduled
 *   paused      running stopped aborted                     no new step starts; running ones finish
 *   stopped     running aborted                             immediate stop: instruments commanded
 * safe completed   (final)                                     budget or target reached, all ended
 *   aborted     (final)                                     operator abort; open experiments
 * abandoned failed      (final)                                     the campaign cannot go on
 * (reason stored)
 */
enum store_campaign_state {
    STORE_CAMPAIGN_RUNNING,
    STORE_CAMPAIGN_PAUSED,
    STORE_CAMPAIGN_STOPPED,
    STORE_CAMPAIGN_COMPLETED,
    STORE_CAMPAIGN_ABORTED,
    STORE_CAMPAIGN_FAILED,
    STORE_CAMPAIGN_N_STATES
};

/* Experiment states (one experiment = one sample made and measured).
 *
 *   state              may become                       meaning
 *   proposed           awaiting_approval queued abandoned  written with its round's model fit
 *   awaiting_approval  queued abandoned                 batch waits for `labloop approve/deny`
 *   queued             running abandoned                approved (or policy auto); not started
 *   running            measured failed abandoned        at least one step started
 *   measured           (final)                          every objective derived and stored
 *   failed             (final)                          an instrument or analysis said no (reason)
 *   abandoned          (final)                          denied, aborted, or a step's fate unknown
 */
enum store_experiment_state {
    STORE_EXP_PROPOSED,
    STORE_EXP_AWAITING_APPROVAL,
    STORE_EXP_QUEUED,
    STORE_EXP_RUNNING,
    STORE_EXP_MEASURED,
    STORE_EXP_FAILED,
    STORE_EXP_ABANDONED,
    STORE_EXP_N_STATES
};

/* Step states (one row per attempt of one recipe step of one experiment).
 *
 *   state     may become                 meaning
 *   pending   started skipped            planned, nothing sent
 *   started   done failed unknown        intent committed; the action may have reached the
 *             pending                    instrument (this is what recovery must settle);
 *                                        back to pending only when the instrument itself says
 *                                        it never accepted the step (query: not started, or
 *                                        "busy" refusal), so starting it again is safe
 *   unknown   done failed                fate not knowable after a restart: an operator
 *                                        question, answered with `labloop resolve`
 *   done      (final)                    the instrument (or station) confirmed it
 *   failed    (final)                    the instrument said no, or the deadline ran out
 *   skipped   (final)                    its experiment ended before it started
 */
enum store_step_state {
    STORE_STEP_PENDING,
    STORE_STEP_STARTED,
    STORE_STEP_UNKNOWN,
    STORE_STEP_DONE,
    STORE_STEP_FAILED,
    STORE_STEP_SKIPPED,
    STORE_STEP_N_STATES
};

/* Names of the states as stored ("running", "awaiting_approval", ...); NULL when out of range.
 * The *_from_name functions return the state or -EINVAL. */
const char *store_campaign_state_name(int state);
const char *store_experiment_state_name(int state);
const char *store_step_state_name(int state);
int store_campaign_state_from_name(const char *name);
int store_experiment_state_from_name(const char *name);
int store_step_state_from_name(const char *name);

/* Whether the state tables above allow from -> to (1) or not (0). */
int store_campaign_transition_ok(int from, int to);
int store_experiment_transition_ok(int from, int to);
int store_step_transition_ok(int from, int to);

/* Opens (creating if needed) the database at path, applies the pragmas, migrates the schema to
 * STORE_SCHEMA_VERSION, and runs PRAGMA quick_check. Returns 0 and a new store (free with
 * store_close()), or a negative errno with a message (a database newer than this program or
 * one failing quick_check is refused with -EBADMSG / -EPROTO). */
int store_open(const char *path, struct store **ret_store, struct ll_error *reterr);

/* Closes the database and sets *s to NULL. NULL and *s == NULL are no-ops. */
void store_close(struct store **s);

/* Transactions: store_begin starts BEGIN IMMEDIATE (nested calls only count depth);
 * store_commit commits at the outermost level; store_rollback rolls back everything.
 * Return 0 or a negative errno. */
int store_begin(struct store *s, struct ll_error *reterr);
int store_commit(struct store *s, struct ll_error *reterr);
void store_rollback(struct store *s);

/* Call just before the daemon tells the outside world something (an instrument command, an
 * ack or a request to a station, a reply to the operator); `what` names it. In test builds
 * (LL_FAILPOINTS) with the power-loss simulation on (daemon/powerloss.h) it checks that
 * everything the store was told is durable by then: no transaction open, no write to the
 * database or its WAL awaiting an fsync; a violation is logged as an error line
 * "store: WHAT told while ..." that the power-loss test looks for. Otherwise it does nothing. */
void store_check_durable(struct store *s, const char *what);

/* Copies the live database into path with the online backup API (consistent snapshot while
 * labloopd keeps writing). path must not exist. */
int store_backup(struct store *s, const char *path, struct ll_error *reterr);

/* Runs PRAGMA integrity_check (full, O(N log N)); 0 when "ok", -EBADMSG with the first
 * complaint otherwise. */
int store_integrity_check(struct store *s, struct ll_error *reterr);

/* --- meta: small key/value settings that must survive restarts (e-stop latch ...) --- */
int store_meta_set(struct store *s, const char *key, const char *value, struct ll_error *reterr);

/* What `labloop doctor` reports about a database, read without changing it (it may be in
 * use by labloopd). */
struct store_info {
    int64_t schema_version;    /* PRAGMA user_version; STORE_SCHEMA_VERSION when current */
    int64_t bytes, free_bytes; /* the file's pages, and those on its free list */
    char quick_check[256];     /* "ok", or the first problem PRAGMA quick_check found */
    int64_t n_campaigns, n_experiments, n_measurements, n_events;
};

/* Opens path read-only and fills info. Returns 0, or a negative errno with reterr naming the
 * problem (the file cannot be opened, is not a database, ...). */
int store_inspect(const char *path, struct store_info *info, struct ll_error *reterr);

/* Storage trouble: when a statement or commit failed because the disk is full, on an I/O
 * error, a read-only file, a lock held past the busy timeout or no memory, returns its message
 * ("WHAT: sqlite's message") and sets *ret_since_ms (if not NULL) to when the trouble began
 * (monotonic ms); NULL (and 0) once a write has committed again. Refused statements
 * (constraints) do not count. */
const char *store_write_error(const struct store *s, int64_t *ret_since_ms);

/* Finds out whether storage trouble has cleared: at least STORE_MIN_FREE_BYTES free on the
 * database's file system (a commit can succeed in reused WAL space while the disk is full),
 * then STORE_PROBE_BYTES committed into meta "store_probe" and the wall time over it (so the
 * room is given back). Returns 0 when all of it holds. */
#define STORE_MIN_FREE_BYTES (2u * 1024 * 1024)
#define STORE_PROBE_BYTES (256 * 1024)
int store_probe_write(struct store *s, struct ll_error *reterr);
/* Copies the value into buf (size n); returns 1 when found, 0 when absent, or negative errno. */
int store_meta_get(struct store *s, const char *key, char *buf, size_t n, struct ll_error *reterr);

/* --- events: the append-only log (UPDATE and DELETE are refused by triggers) --- */
/* Appends an event. campaign/experiment/step are 0 when not applicable; level is a syslog
 * priority (3 error, 4 warning, 6 info). */
int store_event(struct store *s,
                int64_t campaign_id,
                int64_t experiment_id,
                int64_t step_id,
                int level,
                const char *kind,
                const char *message,
                struct ll_error *reterr);

/* --- campaigns --- */
/* Inserts a running campaign; file_text is the campaign file as given (kept for good). */
int store_campaign_create(struct store *s,
                          const char *name,
                          const char *file_text,
                          const char *approval,
                          int64_t *ret_id,
                          struct ll_error *reterr);
/* Moves a campaign to state `to` after checking the transition; reason may be NULL. Records an
 * event. -EINVAL for a forbidden transition, -ENOENT for an unknown campaign. */
int store_campaign_set_state(
    struct store *s, int64_t id, int to, const char *reason, struct ll_error *reterr);
int store_campaign_get_state(struct store *s, int64_t id, struct ll_error *reterr);
/* Replaces the stored reason of campaign id's current state (the state stays). */
int store_campaign_set_reason(struct store *s,
                              int64_t id,
                              const char *reason,
                              struct ll_error *reterr);
/* Returns a new array (caller json_decref()s) of campaigns whose state is not final, or all
 * campaigns when all != 0; objects: id name state approval created_at reason file_text. */
json_t *store_campaigns_json(struct store *s, int all, struct ll_error *reterr);

/* --- experiments --- */
/* Inserts a proposed experiment; params is a JSON object (borrowed); sample ids are made
 * from the id ("S%06d"); well is its rack well (the engine picks a free one, or -1 in tests
 * that never dispense). Returns its id. */
int store_experiment_create(struct store *s,
                            int64_t campaign_id,
                            int idx,
                            int round,
                            int well,
                            json_t *params,
                            double acquisition,
                            int64_t *ret_id,
                            struct ll_error *reterr);
int store_experiment_set_state(
    struct store *s, int64_t id, int to, const char *reason, struct ll_error *reterr);
int store_experiment_get_state(struct store *s, int64_t id, struct ll_error *reterr);
/* --- the rack (docs/daemon.md "The rack") --- */
/* Sets occupied[w] = 1 for every well w < n_wells that may hold a sample, 0 for the others,
 * and returns how many are occupied (or negative errno). A well is occupied from its
 * experiment's creation until `labloop rack unloaded` (experiments.unloaded_at), except for
 * a failed or abandoned experiment of which no step ever started (nothing was dispensed). */
int store_rack_occupied(struct store *s,
                        int n_wells,
                        unsigned char *occupied,
                        struct ll_error *reterr);
/* The operator emptied the rack: every measured, failed or abandoned sample's well becomes
 * free (unloaded_at = now); open experiments keep theirs. *ret_n: how many samples. */
int store_rack_unload(struct store *s, int *ret_n, struct ll_error *reterr);

/* Records why an experiment is ending (before its final state is set). */
int store_experiment_set_reason(struct store *s,
                                int64_t id,
                                const char *reason,
                                struct ll_error *reterr);
/* Experiment id for a sample id, or -ENOENT. */
int store_experiment_by_sample(struct store *s,
                               const char *sample,
                               int64_t *ret_id,
                               struct ll_error *reterr);
/* Array of experiments of a campaign (campaign_id 0: all), ordered by id; objects: id
 * campaign_id idx round well sample state reason params (object) acquisition objectives
 * (object name -> value) created_at updated_at. */
json_t *store_experiments_json(struct store *s, int64_t campaign_id, struct ll_error *reterr);
/* The same, one page: the experiments with id > after_id, at most limit of them (limit <= 0:
 * all). One statement each: a reader that pages through a large campaign (`labloop export`)
 * never holds labloopd's loop, nor a read transaction, for long (reliability.md F16). Each row
 * is read whole at one instant (state, parameters and objectives together); pages are read at
 * different instants. */
json_t *store_experiments_page_json(
    struct store *s, int64_t campaign_id, int64_t after_id, int limit, struct ll_error *reterr);
/* Count of a campaign's experiments and of those in a final state; experiments abandoned
 * with the reason "denied by operator" are not counted (they do not spend the budget). */
int store_experiment_counts(
    struct store *s, int64_t campaign_id, int *ret_total, int *ret_final, struct ll_error *reterr);

/* --- steps --- */
/* Inserts a pending step attempt; params is a JSON object (borrowed); request is the station
 * request id for measure steps (NULL otherwise). */
int store_step_create(struct store *s,
                      int64_t experiment_id,
                      int idx,
                      const char *instrument,
                      const char *action,
                      json_t *params,
                      int64_t expected_ms,
                      const char *request,
                      int64_t *ret_id,
                      struct ll_error *reterr);
/* Moves a step to `to` (transition checked). Entering `started` records started_at,
 * deadline_at = now + deadline_ms and a new job number (one more than any job so far, so job
 * numbers increase in the order steps start, as the robot requires of its JOB_ID); final
 * states record finished_at and result (may be NULL). */
int store_step_set_state(struct store *s,
                         int64_t id,
                         int to,
                         int64_t deadline_ms,
                         const char *result,
                         struct ll_error *reterr);
int store_step_get_state(struct store *s, int64_t id, struct ll_error *reterr);
/* The job number given to a step when it last started (0 if it never did). */
int store_step_get_job(struct store *s, int64_t id, int64_t *ret_job, struct ll_error *reterr);
/* Steps of one experiment (or of every non-final experiment of a campaign when experiment_id
 * is 0 and campaign_id is set), ordered by experiment then idx; objects: id experiment_id idx
 * instrument action params state expected_ms deadline_at started_at finished_at result request
 * job sample campaign_id well. */
json_t *store_steps_json(struct store *s,
                         int64_t campaign_id,
                         int64_t experiment_id,
                         struct ll_error *reterr);
/* Steps in state `unknown` (operator questions), all campaigns. */
json_t *store_questions_json(struct store *s, struct ll_error *reterr);
/* Step id for a measure request id, or -ENOENT. */
int store_step_by_request(struct store *s,
                          const char *request,
                          int64_t *ret_step_id,
                          int64_t *ret_experiment_id,
                          struct ll_error *reterr);

/* --- measurements --- */
/* The outcome of offering one station message to the store. */
enum store_measurement_outcome {
    STORE_MEAS_STORED,    /* new (station, epoch, seq): inserted */
    STORE_MEAS_DUPLICATE, /* same (station, epoch, seq) and same hash: nothing changed */
    STORE_MEAS_CONFLICT,  /* same (station, epoch, seq), other hash: nothing changed, reject */
};
/* Inserts a raw measurement unless (station, epoch, seq) exists; epoch "" or NULL for a
 * station that sends none. raw is stored exactly as received (len bytes) with its SHA-256.
 * ret_outcome says what happened; ret_id is the stored row id (of the existing row for a
 * duplicate). */
int store_measurement_put(struct store *s,
                          const char *station,
                          const char *epoch,
                          int64_t seq,
                          const char *request,
                          const char *kind,
                          const char *sample,
                          int64_t experiment_id,
                          int64_t step_id,
                          const char *time,
                          const char *raw,
                          size_t len,
                          int *ret_outcome,
                          int64_t *ret_id,
                          struct ll_error *reterr);
/* Stored measurements not analysed yet (oldest first, at most limit): array of {id, station,
 * seq, experiment_id, step_id, raw}. */
json_t *store_measurements_unanalysed(struct store *s, int limit, struct ll_error *reterr);
/* Marks a measurement analysed. */
int store_measurement_mark_analysed(struct store *s, int64_t id, struct ll_error *reterr);
/* Records a rejected message: station/epoch/seq may be NULL/""/0; keeps the first 64 KiB of
 * raw, its full length and its SHA-256. */
int store_rejection_put(struct store *s,
                        const char *station,
                        const char *epoch,
                        int64_t seq,
                        const char *reason,
                        const char *raw,
                        size_t len,
                        struct ll_error *reterr);
/* One derived number of a measurement, with the analysis version that produced it. */
int store_derived_put(struct store *s,
                      int64_t measurement_id,
                      const char *name,
                      double value,
                      const char *analysis_version,
                      struct ll_error *reterr);
/* One objective value of an experiment (from a measurement's derived number). */
int store_objective_put(struct store *s,
                        int64_t experiment_id,
                        const char *name,
                        double value,
                        int64_t measurement_id,
                        const char *analysis_version,
                        struct ll_error *reterr);
/* The newest `limit` stored measurements (of a campaign's experiments; campaign_id 0: all),
 * oldest first: [{id, station, epoch, seq, request, kind, sample, experiment_id, step_id, time
 * (the station's), received_at (ms), bytes, hash, status ("pending" before analysis, "ok" with
 * derived numbers, "failed" without), derived {name: value}, step_result, objectives [names
 * this measurement gave]}]. NULL on error. */
json_t *
store_measurements_json(struct store *s, int64_t campaign_id, int limit, struct ll_error *reterr);
/* The newest `limit` rejected messages, oldest first: [{id, received_at, station, epoch, seq,
 * reason, bytes, hash}]. NULL on error. */
json_t *store_rejections_json(struct store *s, int limit, struct ll_error *reterr);
/* The measurement an experiment's stored objective came from (0 when none is recorded):
 * 0, or -ENOENT when the objective is not stored, or a negative errno. */
int store_objective_source(struct store *s,
                           int64_t experiment_id,
                           const char *name,
                           int64_t *ret_measurement_id,
                           struct ll_error *reterr);
/* Count of stored measurements and of rejections. */
int store_measurement_counts(struct store *s,
                             int64_t *ret_stored,
                             int64_t *ret_rejected,
                             struct ll_error *reterr);
/* Whether (station, epoch, seq) is stored with the given hash: 1 yes, 0 no, negative errno. */
int store_measurement_has(struct store *s,
                          const char *station,
                          const char *epoch,
                          int64_t seq,
                          const char *hash_hex,
                          struct ll_error *reterr);
/* Whether the measurement just stored under (station, epoch) is the first of a new epoch that
 * follows another: 1 and the previous epoch (the one of the station's newest measurement under
 * another epoch; "" for none sent) in ret_prev and its highest seq in ret_prev_seq; 0 when the
 * epoch had measurements before or the station had no other; negative errno. */
int store_station_epoch_before(struct store *s,
                               const char *station,
                               const char *epoch,
                               char *ret_prev,
                               size_t prev_cap,
                               int64_t *ret_prev_seq,
                               struct ll_error *reterr);

/* --- model fits and approvals --- */
/* Stores a round's fit description (a JSON object, borrowed). -EEXIST if the round exists. */
int store_model_fit_put(
    struct store *s, int64_t campaign_id, int round, json_t *fit, struct ll_error *reterr);
json_t *store_model_fits_json(struct store *s, int64_t campaign_id, struct ll_error *reterr);
/* The rounds of a campaign whose proposals came from the space-filling fallback instead of the
 * planner (fit record "fallback": true, docs/daemon.md "When the planner fails"), in round
 * order: [{round, planner_error}]. NULL on error (reterr). */
json_t *store_fallback_rounds_json(struct store *s, int64_t campaign_id, struct ll_error *reterr);
/* The models' predictions stored with a campaign's proposals, in round order:
 * [{round, experiment, predicted}], predicted = {objective: {"mean", "sd", "noise_sd"}} from the
 * "chosen" entries of the rounds' fit records (model rounds only; fits recorded before
 * predictions were have none). round < 0: every round; exp_id 0: every experiment. NULL on
 * error (reterr). */
json_t *store_predictions_json(
    struct store *s, int64_t campaign_id, int round, int64_t exp_id, struct ll_error *reterr);
/* Approval of one batch: state "pending", "approved" or "denied". */
int store_approval_put(struct store *s,
                       int64_t campaign_id,
                       int round,
                       const char *state,
                       const char *note,
                       struct ll_error *reterr);
/* Returns the pending round of a campaign (>= 0), or -ENOENT when none is pending. */
int store_approval_pending(struct store *s, int64_t campaign_id, struct ll_error *reterr);

/* Last `limit` events (newest last), optionally of one campaign. */
json_t *store_events_json(struct store *s, int64_t campaign_id, int limit, struct ll_error *reterr);

#endif

/* engine — see engine.h. The store is read afresh on every pass; what lives only here is
 * the list of flights (steps handed to an instrument worker or a station and not yet
 * settled) and the campaigns' parsed files.
 */
#include "daemon/engine.h"

#include "common/ll_failpoint.h"
#include "common/ll_text.h"
#include "common/ll_time.h"
#include "daemon/log.h"
#include "daemon/recipe.h"
#include "drivers/bus.h"
#include "drivers/worker.h"
#include "models/analysis.h"
#include "models/measurement.h"
#include "planner/hv.h"
#include "planner/planner.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CAMPAIGNS 16
#define MAX_FLIGHTS 64
#define MEASURE_MAX_MISSES 5
#define CLEANUP_IDX_BASE 1000
#define WELLS 96
#define FAULT_REPEAT 2                     /* failed steps in a row: the instrument's fault */
#define SAFE_FOR_FAULT (UINT64_C(1) << 63) /* cookie of a DRV_REQ_SAFE after a fault */
#define FAULT_REASON_PREFIX "instrument fault on " /* a campaign paused by a fault */
#define OPERATOR_OP                                                                                \
    (UINT64_C(1) << 62) /* cookie of an operator's SAFE or CLEAR of one instrument */

struct camp {
    int64_t id;
    struct campaign c;
    struct recipe *r;
    char bottleneck[LABCONF_NAME_MAX];  /* instrument with the most expected work per sample */
    int uses[LABCONF_MAX_INSTRUMENTS];  /* its recipe (or a clean-up move) needs instrument i */
    char fault_instr[LABCONF_NAME_MAX]; /* paused by a fault of this instrument; "" not */
};

/* A furnace's gate for the next sample (furnace_may_take()): the move into the furnace that
 * waits until the furnace's PV is at most that sample's anneal setpoint + tolerance. */
struct cool_wait {
    int64_t move_step; /* the move that asked; 0 none */
    int64_t exp_id, campaign_id;
    double setpoint_c; /* the sample's anneal setpoint */
    double pv_c;       /* the last reading (NAN none) */
    int64_t pv_at;     /* when it was read (monotonic ms) */
    int reading;       /* a STATUS request is with the worker */
    int64_t next_at;   /* too hot: the next reading is due then; 0 due when asked */
    int64_t since;     /* the first reading above the limit (monotonic ms); 0 not waiting */
    int warned;        /* the wait has passed load_wait_warn_min (event written) */
    int64_t pass;      /* the full pass that last asked (one sample holds the gate per pass) */
    int faulted;       /* a reading above max_temp_c + 10 C was reported (until a resume) */
};

struct instr {
    char name[LABCONF_NAME_MAX];
    struct drv_worker *w;
    int poll_ms;
    int64_t busy_step; /* 0 when free */
    int is_furnace;
    double load_tolerance_c, load_wait_warn_min; /* furnace: lab.conf */
    struct cool_wait cool;
    /* liveness of the worker thread: requests submitted and not yet completed, and when it
     * last made progress (its last completion, or the submit that found it idle) */
    int n_outstanding;
    int64_t progress_at;
    int64_t budget_ms; /* the longest call: a start, 2 x DRV_CALL_BUDGET */
    double max_temp_c; /* furnace: lab.conf limit; a reading above it + 10 C is a fault */
    int fails_in_row;  /* steps it failed in a row, whatever the kind; a step done resets it */
    char fault[LL_ERROR_MSG_MAX]; /* the fault that made it unusable, until a resume; "" none */
    int resetting; /* an operator's reset (DRV_REQ_CLEAR) is with the worker: no step starts */
};

enum phase {
    PH_WAIT,     /* a request is with the worker */
    PH_POLL_AT,  /* poll at next_at */
    PH_QUERY_AT, /* query at next_at */
    PH_MEASURE,  /* waiting for the station's measurement */
    PH_SETTLE_AT /* the outcome is known but could not be stored: store it at next_at */
};

enum { FAULT_NONE, FAULT_KIND, FAULT_REPEATED };

struct flight {
    int used;
    int64_t step_id, exp_id, campaign_id;
    int instr; /* index into instrs, -1 for a measure step */
    char station[LABCONF_NAME_MAX];
    char request[MEASUREMENT_NAME_MAX + 1];
    char sample[MEASUREMENT_NAME_MAX + 1];
    char kind[16];
    json_t *protocol;
    struct drv_step ds;
    enum phase phase;
    int recovering; /* settling after a restart */
    int64_t next_at, deadline_at, deadline_ms;
    int64_t expected_end_at; /* monotonic ms the step should end at; 0 unknown (recovered) */
    int misses, failures;
    int sent;       /* measure: the request reached the station's queue at least once */
    int settle_to;  /* PH_SETTLE_AT: the step state and result to store */
    int fault;      /* its failure makes the instrument unusable: FAULT_KIND or FAULT_REPEATED */
    int link_fault; /* its polls failed ENGINE_LINK_FAULT_CALLS times in a row: reported */
    /* the experiment's first step (it was queued: its sample untouched) or a clean-up move (it
     * must still bring the sample back): a start refused by a latched fault is retried after
     * the reset (start_refused_retry) instead of failing */
    int retry_refused;
    int64_t failing_since; /* monotonic ms of the first of the current failed polls; 0 none */
    char settle_result[DRV_TEXT_MAX + 64];
};

struct engine {
    struct engine_options opt;
    struct store *store;
    struct ingest *ing;
    struct camp camps[MAX_CAMPAIGNS];
    int n_camps;
    struct instr instrs[LABCONF_MAX_INSTRUMENTS];
    int n_instrs;
    /* one per distinct device of the Modbus RTU instruments (drivers/bus.h): the workers of
     * the instruments on a line share it; freed after every worker has stopped */
    struct drv_bus *lines[LABCONF_MAX_INSTRUMENTS];
    int n_lines;
    struct flight flights[MAX_FLIGHTS];
    int64_t missed_deadlines;
    int estop;
    int dirty;            /* something changed: the next tick makes a full pass */
    int64_t last_pass_ms; /* when the last full pass ran (one per second at least) */
    int64_t passes;       /* full passes so far */
    int n_wells;          /* the rack's wells (lab.conf robot `wells`) */
    int rack_full;        /* a campaign wanted experiments and no well was free (meta
                           * "rack_full" keeps it across restarts, so the event is written
                           * once per full rack) */
    /* storage trouble (store_write_error): no new step starts and no round is proposed
     * until a write commits again; probed once a second */
    int64_t trouble_since, last_probe_ms;
    char trouble_msg[LL_ERROR_MSG_MAX];
    int trouble_alarm; /* the trouble outlasted opt.store_alarm_ms: the alarm was raised */
};

/* --- small helpers ------------------------------------------------------------------ */

static int64_t jint(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static struct camp *camp_get(struct engine *e, int64_t id)
{
    for (int i = 0; i < e->n_camps; i++)
        if (e->camps[i].id == id)
            return &e->camps[i];
    return NULL;
}

static int instr_index(const struct engine *e, const char *name)
{
    for (int i = 0; i < e->n_instrs; i++)
        if (strcmp(e->instrs[i].name, name) == 0)
            return i;
    return -1;
}

static struct flight *flight_get(struct engine *e, int64_t step_id)
{
    for (int i = 0; i < MAX_FLIGHTS; i++)
        if (e->flights[i].used && e->flights[i].step_id == step_id)
            return &e->flights[i];
    return NULL;
}

static struct flight *flight_new(struct engine *e)
{
    for (int i = 0; i < MAX_FLIGHTS; i++)
        if (!e->flights[i].used) {
            memset(&e->flights[i], 0, sizeof(e->flights[i]));
            e->flights[i].used = 1;
            e->flights[i].instr = -1;
            return &e->flights[i];
        }
    return NULL;
}

static void flight_drop(struct engine *e, struct flight *f)
{
    if (f->instr >= 0 && e->instrs[f->instr].busy_step == f->step_id)
        e->instrs[f->instr].busy_step = 0;
    json_decref(f->protocol);
    memset(f, 0, sizeof(*f));
}

static int station_busy(const struct engine *e, const char *station)
{
    for (int i = 0; i < MAX_FLIGHTS; i++)
        if (e->flights[i].used && e->flights[i].instr < 0 &&
            strcmp(e->flights[i].station, station) == 0)
            return 1;
    return 0;
}

static const char *station_for_kind(const struct engine *e, const char *kind)
{
    for (int i = 0; i < e->opt.lab->n_stations; i++)
        for (int k = 0; k < e->opt.lab->stations[i].n_kinds; k++)
            if (strcmp(e->opt.lab->stations[i].kinds[k], kind) == 0)
                return e->opt.lab->stations[i].name;
    return NULL;
}

static int poll_ms_of(const struct engine *e, int instr)
{
    if (e->opt.poll_ms > 0)
        return e->opt.poll_ms;
    return e->instrs[instr].poll_ms > 0 ? e->instrs[instr].poll_ms : 250;
}

/* When to poll a running step next: every poll interval, but five times as often (at least
 * every millisecond) from one interval before its expected end to ten intervals after it,
 * so that the end of a step is seen soon and the next one on that instrument (or the next
 * sample's move) starts without waiting a whole interval. */
int64_t engine_poll_next_at(int64_t poll, int64_t expected_end_at, int64_t now)
{
    int64_t fast = poll / 5 > 1 ? poll / 5 : 1;
    if (expected_end_at > 0 && now >= expected_end_at - poll && now < expected_end_at + 10 * poll)
        return now + fast;
    if (expected_end_at > now && expected_end_at - poll < now + poll)
        return expected_end_at - poll > now + fast ? expected_end_at - poll : now + fast;
    return now + poll;
}

static int64_t poll_next_at(const struct engine *e, const struct flight *f, int64_t now)
{
    return engine_poll_next_at(poll_ms_of(e, f->instr), f->expected_end_at, now);
}

static int64_t deadline_ms_of(const struct engine *e, int64_t expected_ms)
{
    return (int64_t)(1.5 * (double)expected_ms / e->opt.time_scale) + 2000;
}

static void event(struct engine *e,
                  int64_t campaign,
                  int64_t exp,
                  int64_t step,
                  int level,
                  const char *kind,
                  const char *fmt,
                  ...) __attribute__((format(printf, 7, 8)));

/* Appends an event in its own transaction (or the open one) and logs it. */
static void event(struct engine *e,
                  int64_t campaign,
                  int64_t exp,
                  int64_t step,
                  int level,
                  const char *kind,
                  const char *fmt,
                  ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_line(level,
             "%s campaign=%lld exp=%lld step=%lld %s",
             kind,
             (long long)campaign,
             (long long)exp,
             (long long)step,
             msg);
    struct ll_error err;
    if (store_event(e->store, campaign, exp, step, level, kind, msg, &err) < 0)
        log_line(LOG_LVL_ERR, "store: cannot append event: %s", err.msg);
}

/* --- life cycle ---------------------------------------------------------------------- */

/* Hands a request to instrument i's worker and counts it as outstanding. */
static int
worker_submit(struct engine *e, int i, const struct drv_request *req, struct ll_error *err)
{
    struct instr *in = &e->instrs[i];
    static const char *const ops[] = {
        "?", "start", "poll", "query", "safe", "status", "describe", "clear"};
    char what[LABCONF_NAME_MAX + 32];
    snprintf(what,
             sizeof(what),
             "%s %s",
             in->name,
             req->op >= 1 && req->op <= DRV_REQ_CLEAR ? ops[req->op] : "?");
    store_check_durable(e->store, what);
    int r = drv_worker_submit(in->w, req, err);
    if (r == 0 && in->n_outstanding++ == 0)
        in->progress_at = ll_monotonic_ms();
    return r;
}

#ifdef LL_FAILPOINTS
/* Test builds: the hang point "worker_OP_INSTRUMENT", passed in the instrument's worker
 * thread before each driver call (drv_worker_set_hook), so that LABLOOP_FAILPOINT_HANG can
 * hang one worker at a chosen request (common/ll_failpoint.h; reliability.md F18). */
static void worker_hang_point(void *ctx, const char *instrument, const struct drv_request *req)
{
    static const char *const ops[] = {[DRV_REQ_START] = "start",
                                      [DRV_REQ_POLL] = "poll",
                                      [DRV_REQ_QUERY] = "query",
                                      [DRV_REQ_SAFE] = "safe",
                                      [DRV_REQ_STATUS] = "status",
                                      [DRV_REQ_DESCRIBE] = "describe",
                                      [DRV_REQ_CLEAR] = "clear"};
    const char *op =
        req->op >= 0 && (size_t)req->op < sizeof(ops) / sizeof(ops[0]) && ops[req->op] != NULL
            ? ops[req->op]
            : "other";
    char name[LL_FAILPOINT_NAME_MAX];
    (void)ctx;
    snprintf(name, sizeof(name), "worker_%s_%s", op, instrument);
    LL_FAILPOINT_HANG(name);
}
#endif

/* Commands the safe state on every instrument (the software e-stop). */
static void estop_command_safe(struct engine *e, const char *why)
{
    for (int i = 0; i < e->n_instrs; i++)
        if (e->instrs[i].w != NULL) {
            struct drv_request req = {.op = DRV_REQ_SAFE, .cookie = 0};
            worker_submit(e, i, &req, NULL);
        }
    log_line(LOG_LVL_ERR,
             "estop: %s: safe state commanded on %d instruments (this is not a wired emergency "
             "stop)",
             why,
             e->n_instrs);
}

/* The line of a Modbus RTU instrument (NULL for the others): the bus of the first instrument
 * on its device, made on first use. lab.conf has checked that instruments on one device
 * agree on its serial settings and have distinct slave ids (drivers/labconf.c). */
static int line_of(struct engine *e,
                   const struct labconf_instrument *inst,
                   struct drv_bus **ret,
                   struct ll_error *reterr)
{
    *ret = NULL;
    if (inst->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU)
        return 0;
    for (int k = 0; k < e->n_lines; k++)
        if (strcmp(drv_bus_device(e->lines[k]), inst->device) == 0) {
            *ret = e->lines[k];
            return drv_bus_check(*ret, inst, reterr);
        }
    int r = drv_bus_new(inst, &e->lines[e->n_lines], reterr);
    if (r == 0)
        *ret = e->lines[e->n_lines++];
    return r;
}

int engine_new(const struct engine_options *opt, struct engine **ret, struct ll_error *reterr)
{
    struct engine *e = calloc(1, sizeof(*e));
    int r = 0;
    if (e == NULL)
        return ll_error_set(reterr, -ENOMEM, "engine: out of memory");
    e->opt = *opt;
    if (!(e->opt.time_scale >= 1.0))
        e->opt.time_scale = 1.0;
    e->store = opt->store;
    for (int i = 0; i < opt->lab->n_instruments; i++) {
        struct instr *in = &e->instrs[e->n_instrs];
        snprintf(in->name, sizeof(in->name), "%s", opt->lab->instruments[i].name);
        in->poll_ms = opt->lab->instruments[i].poll_ms;
        in->is_furnace = opt->lab->instruments[i].driver == LABCONF_DRIVER_FURNACE_MODBUS_RTU;
        in->load_tolerance_c = opt->lab->instruments[i].load_tolerance_c;
        in->load_wait_warn_min = opt->lab->instruments[i].load_wait_warn_min;
        in->cool.pv_c = (double)NAN;
        in->budget_ms = 2 * DRV_CALL_BUDGET(&opt->lab->instruments[i]);
        in->max_temp_c = opt->lab->instruments[i].limits.max_temp_c;
        if (!opt->no_instruments) {
            struct drv_bus *line = NULL;
            r = line_of(e, &opt->lab->instruments[i], &line, reterr);
            if (r == 0)
                r = drv_worker_start_bus(&opt->lab->instruments[i], line, &in->w, reterr);
            if (r < 0)
                goto out;
#ifdef LL_FAILPOINTS
            drv_worker_set_hook(in->w, worker_hang_point, NULL);
#endif
        }
        e->n_instrs++;
    }
    const struct labconf_instrument *robot =
        labconf_find_driver(opt->lab, LABCONF_DRIVER_ROBOT_MODBUS_TCP);
    e->n_wells = robot != NULL && robot->wells > 0 ? robot->wells : LABCONF_MAX_WELLS;
    char v[8];
    if (store_meta_get(e->store, "rack_full", v, sizeof(v), NULL) == 1 && strcmp(v, "1") == 0)
        e->rack_full = 1;
    if (store_meta_get(e->store, "estop", v, sizeof(v), NULL) == 1 && strcmp(v, "1") == 0) {
        /* a latched stop is commanded again: the daemon may have died after latching it and
         * before every instrument was told (kill point "estop_latched") */
        e->estop = 1;
        estop_command_safe(e, "latched stop found at start");
    }
out:
    if (r < 0)
        engine_free(&e);
    *ret = e;
    return r;
}

void engine_free(struct engine **e)
{
    if (e == NULL || *e == NULL)
        return;
    for (int i = 0; i < (*e)->n_instrs; i++)
        drv_worker_stop(&(*e)->instrs[i].w);
    for (int i = 0; i < (*e)->n_lines; i++)
        drv_bus_free(&(*e)->lines[i]);
    for (int i = 0; i < (*e)->n_camps; i++)
        recipe_free(&(*e)->camps[i].r);
    for (int i = 0; i < MAX_FLIGHTS; i++)
        if ((*e)->flights[i].used)
            json_decref((*e)->flights[i].protocol);
    free(*e);
    *e = NULL;
}

void engine_set_ingest(struct engine *e, struct ingest *ing)
{
    e->ing = ing;
}

/* Parses a campaign's text into a slot (planner campaign + recipe). */
/* Limits are static (reliability.md X8): the recipe expanded at the centre of the box and at
 * every corner (each parameter at its low or high end; with more than LIMIT_CORNER_DIMS
 * parameters, one parameter at a time at each end, the others at the centre) must pass
 * every instrument's limits and configuration (drv_step_check: no I/O). A campaign that
 * could ask an instrument for more than it allows is refused before any step. */
#define LIMIT_CORNER_DIMS 10
static int step_to_drv(json_t *step, struct drv_step *ds, struct ll_error *err);
static int recipe_within_limits(const struct engine *e,
                                const struct camp *c,
                                const char *source,
                                struct ll_error *err)
{
    size_t d = c->c.n_params;
    size_t n_points = d <= LIMIT_CORNER_DIMS ? ((size_t)1 << d) + 1 : 2 * d + 1;
    double x[CAMPAIGN_MAX_PARAMS];
    for (size_t p = 0; p < n_points; p++) {
        for (size_t j = 0; j < d; j++) {
            const struct campaign_param *cp = &c->c.params[j];
            int end = -1; /* -1 centre, 0 low, 1 high */
            if (p > 0 && d <= LIMIT_CORNER_DIMS)
                end = (int)(((p - 1) >> j) & 1u);
            else if (p > 0 && (p - 1) / 2 == j)
                end = (int)((p - 1) & 1u);
            x[j] = end < 0 ? 0.5 * (cp->low + cp->high) : end == 0 ? cp->low : cp->high;
        }
        json_t *steps = NULL;
        int r = recipe_expand(c->r, &c->c, x, &steps, err);
        if (r < 0)
            return r;
        size_t k;
        json_t *st;
        json_array_foreach(steps, k, st)
        {
            const char *name = jstr(st, "instrument");
            if (name[0] == '\0')
                continue; /* a measurement: the station's business */
            const struct labconf_instrument *in = labconf_find_instrument(e->opt.lab, name);
            struct drv_step ds;
            struct ll_error why;
            ll_error_clear(&why);
            if (in == NULL)
                r = ll_error_set(&why, -EINVAL, "no instrument '%s' in the lab", name);
            else if (step_to_drv(st, &ds, &why) == 0)
                r = drv_step_check(in, &ds, &why);
            else
                r = why.code;
            if (r < 0) {
                char at[512];
                size_t used = 0;
                for (size_t j = 0; j < d && used < sizeof(at); j++)
                    used += (size_t)snprintf(at + used,
                                             sizeof(at) - used,
                                             "%s%s=%g",
                                             j ? ", " : "",
                                             c->c.params[j].name,
                                             x[j]);
                ll_error_set(err,
                             r,
                             "%s: recipe step %zu (%s %s) at %s: %s (a campaign's ranges "
                             "must keep every step within the instruments' limits)",
                             source,
                             k + 1,
                             name,
                             jstr(st, "action"),
                             at,
                             why.msg);
                json_decref(steps);
                return r;
            }
        }
        json_decref(steps);
    }
    return 0;
}

static int
camp_load(struct engine *e, int64_t id, const char *text, const char *source, struct ll_error *err)
{
    if (e->n_camps == MAX_CAMPAIGNS)
        return ll_error_set(err, -ENOSPC, "at most %d open campaigns", MAX_CAMPAIGNS);
    struct camp *c = &e->camps[e->n_camps];
    memset(c, 0, sizeof(*c));
    int r = campaign_load_string(text, source, &c->c, err);
    if (r == 0 && !c->c.has_recipe)
        r = ll_error_set(
            err, -EINVAL, "%s: campaign has no 'recipe' (a pure planning problem)", source);
    if (r == 0)
        r = recipe_parse(text, source, &c->c, &c->r, err);
    if (r < 0)
        return r;
    if ((r = recipe_within_limits(e, c, source, err)) < 0) {
        recipe_free(&c->r);
        return r;
    }
    /* every measured objective must say which measurement field feeds it (a computed one
     * is evaluated from the experiment's parameters when its measurements are in) */
    for (size_t i = 0; i < c->c.n_objectives; i++) {
        if (campaign_objective_computed(&c->c, i))
            continue;
        const char *from = c->c.objectives[i].from;
        const char *dot = strchr(from, '.');
        char kind[16];
        snprintf(kind, sizeof(kind), "%.*s", dot ? (int)(dot - from) : 0, from);
        if (dot == NULL || station_for_kind(e, kind) == NULL) {
            recipe_free(&c->r);
            return ll_error_set(err,
                                -EINVAL,
                                "%s: objective '%s': from '%s' must be KIND.FIELD with a station "
                                "of the lab measuring KIND",
                                source,
                                c->c.objectives[i].name,
                                from);
        }
    }
    /* the bottleneck: the instrument (or station) with the most expected work per sample */
    double centre[CAMPAIGN_MAX_PARAMS];
    for (size_t i = 0; i < c->c.n_params; i++)
        centre[i] = 0.5 * (c->c.params[i].low + c->c.params[i].high);
    json_t *steps = NULL;
    if (recipe_expand(c->r, &c->c, centre, &steps, NULL) == 0) {
        double best = -1.0;
        size_t i, j;
        json_t *st, *other;
        json_array_foreach(steps, i, st)
        {
            const char *name = jstr(st, "instrument");
            if (instr_index(e, name) >= 0)
                c->uses[instr_index(e, name)] = 1;
            if (name[0] == '\0')
                name = station_for_kind(e, jstr(json_object_get(st, "params"), "kind"));
            double work = 0.0;
            json_array_foreach(steps, j, other)
            {
                const char *n2 = jstr(other, "instrument");
                if (n2[0] == '\0')
                    n2 = station_for_kind(e, jstr(json_object_get(other, "params"), "kind"));
                if (name != NULL && n2 != NULL && strcmp(name, n2) == 0)
                    work += (double)jint(other, "expected_ms");
            }
            if (name != NULL && work > best) {
                best = work;
                snprintf(c->bottleneck, sizeof(c->bottleneck), "%s", name);
            }
        }
    }
    json_decref(steps);
    if (instr_index(e, "robot") >= 0)
        c->uses[instr_index(e, "robot")] = 1; /* clean-up moves (exp_settle) */
    c->id = id;
    e->n_camps++;
    return 0;
}

static void camp_unload(struct engine *e, int64_t id)
{
    for (int i = 0; i < e->n_camps; i++)
        if (e->camps[i].id == id) {
            recipe_free(&e->camps[i].r);
            e->camps[i] = e->camps[e->n_camps - 1];
            memset(&e->camps[e->n_camps - 1], 0, sizeof(e->camps[0]));
            e->n_camps--;
            return;
        }
}

/* --- step → driver step --------------------------------------------------------------- */

static int step_to_drv(json_t *step, struct drv_step *ds, struct ll_error *err)
{
    memset(ds, 0, sizeof(*ds));
    /* the instrument sees the job number of the attempt (given when it started), which
     * increases in start order; before the start it is not known yet and is set later */
    int64_t id = json_is_integer(json_object_get(step, "job")) ? jint(step, "job") : 1;
    if (id <= 0 || id > (int64_t)UINT32_MAX)
        return ll_error_set(err, -ERANGE, "step id %lld does not fit a job id", (long long)id);
    ds->id = (uint32_t)id;
    const char *action = jstr(step, "action");
    json_t *p = json_object_get(step, "params");
    int well = (int)jint(step, "well");
    if (strcmp(action, "dispense") == 0) {
        ds->kind = DRV_STEP_DISPENSE;
        ds->dispense.well = well;
        json_t *v = json_object_get(p, "volumes_ul");
        if (json_array_size(v) == 0 || json_array_size(v) > DRV_N_RESERVOIRS)
            return ll_error_set(err, -EINVAL, "dispense: volumes_ul needs 1..8 values");
        for (size_t i = 0; i < json_array_size(v); i++)
            ds->dispense.volumes_ul[i] = json_number_value(json_array_get(v, i));
    } else if (strcmp(action, "move") == 0) {
        ds->kind = DRV_STEP_MOVE;
        ds->move.well = well;
        snprintf(ds->move.from_place, sizeof(ds->move.from_place), "%s", jstr(p, "from"));
        snprintf(ds->move.to_place, sizeof(ds->move.to_place), "%s", jstr(p, "to"));
    } else if (strcmp(action, "spin") == 0) {
        ds->kind = DRV_STEP_SPIN;
        json_t *st = json_object_get(p, "stages");
        if (json_array_size(st) == 0 || json_array_size(st) > DRV_MAX_STAGES)
            return ll_error_set(err, -EINVAL, "spin: stages needs 1..8 stages");
        ds->spin.n_stages = (int)json_array_size(st);
        for (size_t i = 0; i < json_array_size(st); i++) {
            json_t *s = json_array_get(st, i);
            ds->spin.stages[i].rpm = json_number_value(json_object_get(s, "rpm"));
            ds->spin.stages[i].accel_rpm_s = json_number_value(json_object_get(s, "accel_rpm_s"));
            ds->spin.stages[i].seconds = json_number_value(json_object_get(s, "seconds"));
        }
    } else if (strcmp(action, "anneal") == 0) {
        ds->kind = DRV_STEP_ANNEAL;
        ds->anneal.setpoint_c = json_number_value(json_object_get(p, "setpoint_c"));
        ds->anneal.ramp_c_min = json_number_value(json_object_get(p, "ramp_c_min"));
        ds->anneal.dwell_min = json_number_value(json_object_get(p, "dwell_min"));
    } else {
        return ll_error_set(err, -EINVAL, "no driver step for action '%s'", action);
    }
    return 0;
}

/* --- settling steps ------------------------------------------------------------------- */

/* Moves a step to a final (or pending/unknown) state in its own transaction. */
static int step_settle(struct engine *e, int64_t step_id, int to, const char *result)
{
    struct ll_error err;
    ll_error_clear(&err);
    int r = store_begin(e->store, &err);
    if (r == 0)
        r = store_step_set_state(e->store, step_id, to, 0, result, &err);
    if (r == 0)
        r = store_commit(e->store, &err);
    if (r < 0) {
        store_rollback(e->store);
        log_line(LOG_LVL_ERR, "step=%lld: cannot record state: %s", (long long)step_id, err.msg);
    }
    return r;
}

/* --- instrument faults (reliability.md X5; docs/daemon.md "Instrument faults") ------------- */

/* What a failed step says about its instrument (docs/daemon.md has the table with its
 * reasons). at_start: the instrument would not take the step (drv_step_start's error);
 * running: it stopped a step it had taken (drv_step_poll or drv_step_query said
 * DRV_STEP_FAILED), or our calls to it kept failing. 1: the instrument is unusable until
 * someone looks at it; 0: the failure is about this step or sample.
 *   DRV_EFAULT     it reports a fault (robot ERROR/ESTOP, coater E08/E99 or in ERROR, furnace
 *                  sensor break, over-range, alarm, PV above max_temp_c + 10 C)
 *   DRV_EREFUSED   at start it refused this step (a parameter; the next sample may pass);
 *                  while running an interlock stopped it (coater lid E05, vacuum E06,
 *                  overspeed E07, e-stop input E09), latched until someone clears it
 *   DRV_ESTEPTIME  "running" past step_timeout_s: it does not do what it says
 *   DRV_ELINK ...  no link or answer through the driver's retries and ENGINE_LINK_FAULT_CALLS
 *                  of our calls (at start these settle by a query, never a failure)
 *   DRV_ECONFIG    Modbus exception 01/02: the register map does not fit the instrument;
 *                  every step would fail the same way until the lab file is fixed
 *   DRV_ELIMIT ... nothing was sent: our limits or our step, not the instrument */
static const struct {
    int code;
    int at_start, running;
} fault_table[] = {
    {DRV_EFAULT,    1, 1},
    {DRV_EREFUSED,  0, 1},
    {DRV_ESTEPTIME, 1, 1},
    {DRV_ELINK,     1, 1},
    {DRV_ETIMEDOUT, 1, 1},
    {DRV_EPROTO,    1, 1},
    {DRV_ECONFIG,   1, 1},
    {DRV_ELIMIT,    0, 0},
    {-EINVAL,       0, 0},
    {-ENOMEM,       0, 0},
};

int engine_fault_unusable(int running, int code)
{
    for (size_t i = 0; i < sizeof(fault_table) / sizeof(fault_table[0]); i++)
        if (fault_table[i].code == code)
            return running ? fault_table[i].running : fault_table[i].at_start;
    /* any other failure of a step it had taken is the instrument's; at start, the step's */
    return running;
}

/* 1 when a fault of instrument fi pauses campaign c: it runs, uses fi, and its recipe pauses
 * on faults (fault_record pauses exactly these; start_refused_retry asks first). */
static int fault_pauses(struct engine *e, int fi, const struct camp *c)
{
    return c != NULL && c->uses[fi] && recipe_fault_pauses(c->r) &&
           store_campaign_get_state(e->store, c->id, NULL) == STORE_CAMPAIGN_RUNNING;
}

/* Records, inside the caller's transaction, that instrument fi is unusable because of `why`:
 * every running campaign that uses it and whose on_instrument_fault is "pause" becomes
 * paused with the reason FAULT_REASON_PREFIX NAME: why (their ids in paused[], count in
 * *ret_n), and one event of kind `fault` (its text in msg, for the log line after the
 * commit). */
static int fault_record(struct engine *e,
                        int fi,
                        int64_t campaign_id,
                        int64_t exp_id,
                        int64_t step_id,
                        const char *why,
                        int64_t *paused,
                        int *ret_n,
                        char *msg,
                        size_t msg_size,
                        struct ll_error *err)
{
    char reason[LL_ERROR_MSG_MAX], ids[MAX_CAMPAIGNS * 24] = "";
    int r = 0, n = 0;
    snprintf(reason, sizeof(reason), FAULT_REASON_PREFIX "%s: %s", e->instrs[fi].name, why);
    for (int i = 0; i < e->n_camps && r == 0; i++) {
        struct camp *c = &e->camps[i];
        if (!fault_pauses(e, fi, c))
            continue;
        r = store_campaign_set_state(e->store, c->id, STORE_CAMPAIGN_PAUSED, reason, err);
        paused[n++] = c->id;
        size_t len = strlen(ids);
        snprintf(ids + len, sizeof(ids) - len, "%s%lld", n > 1 ? ", " : "", (long long)c->id);
    }
    if (n > 0)
        snprintf(msg,
                 msg_size,
                 "%s unusable: %s; campaign %s paused: no new step starts, running steps finish; "
                 "fix the instrument, then `labloop campaign resume`",
                 e->instrs[fi].name,
                 why,
                 ids);
    else
        snprintf(msg,
                 msg_size,
                 "%s unusable: %s; no campaign paused (on_instrument_fault = \"continue\", or "
                 "already paused or stopped)",
                 e->instrs[fi].name,
                 why);
    if (r == 0)
        r = store_event(e->store, campaign_id, exp_id, step_id, LOG_LVL_ERR, "fault", msg, err);
    *ret_n = r == 0 ? n : 0;
    return r;
}

/* After fault_record's transaction committed: the log line and what status shows. */
static void fault_recorded(struct engine *e,
                           int fi,
                           int64_t campaign_id,
                           int64_t exp_id,
                           int64_t step_id,
                           const char *why,
                           const int64_t *paused,
                           int n,
                           const char *msg)
{
    e->dirty = 1;
    snprintf(e->instrs[fi].fault, sizeof(e->instrs[fi].fault), "%s", why);
    char name[LABCONF_NAME_MAX]; /* a copy: gcc cannot tell that c and e->instrs do not overlap */
    snprintf(name, sizeof(name), "%s", e->instrs[fi].name);
    for (int i = 0; i < n; i++) {
        struct camp *c = camp_get(e, paused[i]);
        if (c != NULL)
            snprintf(c->fault_instr, sizeof(c->fault_instr), "%s", name);
    }
    log_line(LOG_LVL_ERR,
             "fault campaign=%lld exp=%lld step=%lld %s",
             (long long)campaign_id,
             (long long)exp_id,
             (long long)step_id,
             msg);
}

/* fault_record in a transaction of its own (a fault that settles no step). 0 or -errno. */
static int fault_now(
    struct engine *e, int fi, int64_t campaign_id, int64_t exp_id, int64_t step_id, const char *why)
{
    int64_t paused[MAX_CAMPAIGNS];
    int n = 0;
    char msg[1024];
    struct ll_error err;
    ll_error_clear(&err);
    int r = store_begin(e->store, &err);
    if (r == 0)
        r = fault_record(
            e, fi, campaign_id, exp_id, step_id, why, paused, &n, msg, sizeof(msg), &err);
    if (r == 0)
        r = store_commit(e->store, &err);
    if (r < 0) {
        store_rollback(e->store);
        log_line(LOG_LVL_ERR,
                 "fault on %s not recorded (tried again at its next sign): %s: %s",
                 e->instrs[fi].name,
                 why,
                 err.msg);
        return r;
    }
    fault_recorded(e, fi, campaign_id, exp_id, step_id, why, paused, n, msg);
    return 0;
}

/* Commands instrument fi's safe state after a fault (its worker; the outcome becomes an event
 * in on_completion). */
static void fault_command_safe(struct engine *e, int fi, int64_t step_id)
{
    struct drv_request req = {.op = DRV_REQ_SAFE, .cookie = SAFE_FOR_FAULT | (uint64_t)step_id};
    struct ll_error err;
    ll_error_clear(&err);
    if (e->instrs[fi].w == NULL || worker_submit(e, fi, &req, &err) < 0)
        log_line(LOG_LVL_ERR,
                 "fault: cannot command the safe state of %s: %s",
                 e->instrs[fi].name,
                 err.msg[0] ? err.msg : "no worker");
}

/* Settles a flight's step and appends its event in one transaction (one durable commit). */
static void flight_finish(struct engine *e, struct flight *f, int to, const char *result)
{
    LL_FAILPOINT("before_result_commit"); /* the instrument has finished; the store not told */
    e->dirty = 1;
    int level = to == STORE_STEP_DONE ? LOG_LVL_INFO : LOG_LVL_WARNING;
    char msg[DRV_TEXT_MAX + 128];
    snprintf(msg,
             sizeof(msg),
             "%s%s%s",
             store_step_state_name(to),
             result != NULL ? ": " : "",
             result != NULL ? result : "");
    /* a failure that makes the instrument unusable pauses its campaigns in the same commit */
    char why[DRV_TEXT_MAX + 128], fault_msg[1024];
    int64_t paused[MAX_CAMPAIGNS];
    int n_paused = 0;
    snprintf(why,
             sizeof(why),
             "%s%s",
             result != NULL ? result : "",
             f->fault == FAULT_REPEATED ? " (its second failed step in a row)" : "");
    struct ll_error err;
    ll_error_clear(&err);
    int r = store_begin(e->store, &err);
    if (r == 0)
        r = store_step_set_state(e->store, f->step_id, to, 0, result, &err);
    if (r == 0)
        r = store_event(e->store, f->campaign_id, f->exp_id, f->step_id, level, "step", msg, &err);
    if (r == 0 && f->fault != FAULT_NONE)
        r = fault_record(e,
                         f->instr,
                         f->campaign_id,
                         f->exp_id,
                         f->step_id,
                         why,
                         paused,
                         &n_paused,
                         fault_msg,
                         sizeof(fault_msg),
                         &err);
    if (r == 0)
        r = store_commit(e->store, &err);
    if (r < 0) {
        /* the instrument's answer is not lost: the flight keeps it and stores it again
         * (every second, then less often) until the store takes it */
        store_rollback(e->store);
        if (f->phase != PH_SETTLE_AT || f->failures % 10 == 0)
            log_line(LOG_LVL_ERR,
                     "step=%lld: cannot record '%s' (kept; retrying): %s",
                     (long long)f->step_id,
                     msg,
                     err.msg);
        if (f->phase != PH_SETTLE_AT)
            f->failures = 0;
        f->failures++;
        f->settle_to = to;
        if (result != f->settle_result)
            snprintf(
                f->settle_result, sizeof(f->settle_result), "%s", result != NULL ? result : "");
        f->phase = PH_SETTLE_AT;
        f->next_at = ll_monotonic_ms() + (f->failures < 5 ? 1000 : 5000);
        return;
    }
    log_line(level,
             "step campaign=%lld exp=%lld step=%lld %s",
             (long long)f->campaign_id,
             (long long)f->exp_id,
             (long long)f->step_id,
             msg);
    if (f->fault != FAULT_NONE)
        fault_recorded(
            e, f->instr, f->campaign_id, f->exp_id, f->step_id, why, paused, n_paused, fault_msg);
    flight_drop(e, f);
}

/* A start refused because the instrument reports a fault (a robot left in ERROR, e.g. by an
 * e-stop's ABORT). A refused start is a step the instrument did not accept (drv_step_start):
 * nothing happened. For an experiment's first step (nothing has been done to its sample yet)
 * and for a clean-up move (the sample still has to come back) failing would lose an
 * experiment, or leave a sample where the next one collides with it, for nothing: the step
 * goes back to pending, to run again after the reset and the resume, while the fault pauses
 * the campaign in the same commit as any fault does (the driver has commanded the safe state).
 * Only when the fault does pause it: with on_instrument_fault = "continue" the step fails as
 * before, or it would be refused again at once. Other steps fail (their sample has waited
 * mid-process). Returns 1 when it settled the step. */
static int start_refused_retry(struct engine *e, struct flight *f, int code, const char *why)
{
    if (code != DRV_EFAULT || !f->retry_refused ||
        !fault_pauses(e, f->instr, camp_get(e, f->campaign_id)))
        return 0;
    char msg[DRV_TEXT_MAX + 128];
    snprintf(msg,
             sizeof(msg),
             "%s; not started: it runs again after the instrument is reset and the campaign "
             "resumed",
             why);
    e->instrs[f->instr].fails_in_row++;
    f->fault = FAULT_KIND;
    flight_finish(e, f, STORE_STEP_PENDING, msg);
    return 1;
}

/* A step that its instrument failed (at start: it would not take it; running: it stopped
 * it). Decides by the fault table and the repeat rule whether the instrument is unusable;
 * if so, commands its safe state unless the driver already did (safe_done), and has
 * flight_finish pause the campaigns that use it. */
static void step_failed(
    struct engine *e, struct flight *f, int running, int code, int safe_done, const char *why)
{
    struct instr *in = &e->instrs[f->instr];
    in->fails_in_row++;
    f->fault = engine_fault_unusable(running, code) ? FAULT_KIND
               : in->fails_in_row >= FAULT_REPEAT   ? FAULT_REPEATED
                                                    : FAULT_NONE;
    if (f->fault != FAULT_NONE && !safe_done)
        fault_command_safe(e, f->instr, f->step_id);
    flight_finish(e, f, STORE_STEP_FAILED, why);
}

static void submit(struct engine *e, struct flight *f, enum drv_request_op op)
{
    struct drv_request req = {.op = op, .cookie = (uint64_t)f->step_id, .step = f->ds};
    log_line(LOG_LVL_DEBUG,
             "submit step=%lld job=%u op=%d",
             (long long)f->step_id,
             (unsigned)f->ds.id,
             (int)op);
    struct ll_error err;
    ll_error_clear(&err);
    if (worker_submit(e, f->instr, &req, &err) < 0) {
        /* queue full: try again shortly */
        f->phase =
            op == DRV_REQ_START ? PH_QUERY_AT : (op == DRV_REQ_POLL ? PH_POLL_AT : PH_QUERY_AT);
        f->next_at = ll_monotonic_ms() + 100;
        return;
    }
    f->phase = PH_WAIT;
}

static void on_furnace_reading(struct engine *e, int fi, const struct drv_completion *c);

/* The outcome of an operator's `labloop instrument NAME reset|safe` (engine_instrument_op): an
 * event of kind instrument.reset / instrument.safe (notice, or error on failure). A reset that
 * worked forgets the instrument's fault (status no longer shows it) and its run of failed
 * steps; the campaigns it paused stay paused until the operator resumes them. */
static void on_operator_op(struct engine *e, int fi, const struct drv_completion *c)
{
    struct instr *in = &e->instrs[fi];
    const char *kind = c->op == DRV_REQ_CLEAR ? "instrument.reset" : "instrument.safe";
    if (c->op == DRV_REQ_CLEAR)
        in->resetting = 0;
    e->dirty = 1;
    if (c->rc != 0) {
        event(e,
              0,
              0,
              0,
              LOG_LVL_ERR,
              kind,
              "%s: %s FAILED: %s [%s]",
              in->name,
              c->op == DRV_REQ_CLEAR ? "reset" : "safe state",
              c->err.msg,
              drv_error_kind(c->rc));
        return;
    }
    if (c->op == DRV_REQ_SAFE) {
        event(e, 0, 0, 0, LOG_LVL_NOTICE, kind, "%s: safe state commanded (operator)", in->name);
        return;
    }
    char was[LL_ERROR_MSG_MAX + 32] = "";
    if (in->fault[0] != '\0')
        snprintf(was, sizeof(was), " (its fault was: %s)", in->fault);
    in->fault[0] = '\0';
    in->fails_in_row = 0;
    in->cool.faulted = 0;
    /* the paused campaigns' stored reason says the fault was cleared, so that a restart before
     * the resume does not bring the fault back (fault_restore reads that reason) */
    char reason[LL_ERROR_MSG_MAX];
    snprintf(reason,
             sizeof(reason),
             "paused for a fault of %s, which the operator reset: `labloop campaign resume`",
             in->name);
    struct ll_error err;
    int n_paused = 0, r = store_begin(e->store, &err);
    for (int i = 0; i < e->n_camps && r == 0; i++)
        if (strcmp(e->camps[i].fault_instr, in->name) == 0) {
            if (store_campaign_get_state(e->store, e->camps[i].id, NULL) == STORE_CAMPAIGN_PAUSED)
                r = store_campaign_set_reason(e->store, e->camps[i].id, reason, &err);
            n_paused++;
        }
    if (r == 0)
        r = store_commit(e->store, &err);
    else
        store_rollback(e->store);
    if (r != 0) /* status clears the fault now; after a restart the old reason shows it again */
        log_line(LOG_LVL_ERR, "store: cannot record the reset of %s: %s", in->name, err.msg);
    for (int i = 0; i < e->n_camps; i++)
        if (strcmp(e->camps[i].fault_instr, in->name) == 0)
            e->camps[i].fault_instr[0] = '\0';
    event(e,
          0,
          0,
          0,
          LOG_LVL_NOTICE,
          kind,
          "%s: fault cleared by the operator (%.0f ms)%s%s",
          in->name,
          (double)c->elapsed_ms,
          was,
          n_paused > 0 ? "; the campaigns it paused stay paused: `labloop campaign resume`" : "");
}

static void on_completion(struct engine *e, int instr, const struct drv_completion *c)
{
    if (c->op == DRV_REQ_STATUS) {
        on_furnace_reading(e, instr, c);
        return;
    }
    if ((c->op == DRV_REQ_CLEAR || c->op == DRV_REQ_SAFE) && (c->cookie & OPERATOR_OP) != 0) {
        on_operator_op(e, instr, c);
        return;
    }
    struct flight *f = flight_get(e, (int64_t)c->cookie);
    if (c->op == DRV_REQ_SAFE && (c->cookie & SAFE_FOR_FAULT) != 0) {
        if (c->rc == 0)
            event(e,
                  0,
                  0,
                  (int64_t)(c->cookie & ~SAFE_FOR_FAULT),
                  LOG_LVL_NOTICE,
                  "fault",
                  "safe state commanded on %s",
                  e->instrs[instr].name);
        else
            event(e,
                  0,
                  0,
                  (int64_t)(c->cookie & ~SAFE_FOR_FAULT),
                  LOG_LVL_ERR,
                  "fault",
                  "safe state FAILED on %s: %s",
                  e->instrs[instr].name,
                  c->err.msg);
        return;
    }
    if (c->op == DRV_REQ_SAFE) {
        log_line(c->rc == 0 ? LOG_LVL_NOTICE : LOG_LVL_ERR,
                 "estop: safe state %s%s%s",
                 c->rc == 0 ? "commanded" : "FAILED",
                 c->rc == 0 ? "" : ": ",
                 c->rc == 0 ? "" : c->err.msg);
        return;
    }
    if (f == NULL || f->phase != PH_WAIT)
        return;
    int64_t now = ll_monotonic_ms();
    int poll = poll_ms_of(e, f->instr);
    char why[DRV_TEXT_MAX + 64];
    switch (c->op) {
    case DRV_REQ_START:
        if (c->rc == 0) {
            LL_FAILPOINT("start_accepted"); /* the instrument runs the job; no poll yet */
            f->phase = PH_POLL_AT;
            f->next_at = poll_next_at(e, f, now);
        } else if (c->rc == DRV_EBUSY) {
            snprintf(why, sizeof(why), "instrument busy, not accepted: %s", c->err.msg);
            flight_finish(e, f, STORE_STEP_PENDING, why);
        } else if (c->rc == DRV_ETIMEDOUT || c->rc == DRV_EPROTO || c->rc == DRV_ELINK) {
            log_line(LOG_LVL_WARNING,
                     "step=%lld start outcome unknown (%s); querying the instrument",
                     (long long)f->step_id,
                     c->err.msg);
            f->phase = PH_QUERY_AT;
            f->next_at = now + poll;
        } else {
            snprintf(why, sizeof(why), "%s: %s", drv_error_kind(c->rc), c->err.msg);
            if (!start_refused_retry(e, f, c->rc, why))
                step_failed(e, f, 0, c->rc, 0, why);
        }
        break;
    case DRV_REQ_POLL:
    case DRV_REQ_QUERY:
        if (c->rc < 0) {
            f->failures++;
            if (f->failures == 1) {
                /* a pulled cable, a dead link: said at once (the pause, if it lasts, later) */
                f->failing_since = now;
                event(e,
                      f->campaign_id,
                      f->exp_id,
                      f->step_id,
                      LOG_LVL_WARNING,
                      "instrument.link",
                      "%s: %s: %s; the step stays in flight, asked again with back-off",
                      e->instrs[f->instr].name,
                      drv_error_kind(c->rc),
                      c->err.msg);
            }
            f->phase = c->op == DRV_REQ_POLL ? PH_POLL_AT : PH_QUERY_AT;
            f->next_at = now + poll * (f->failures < 5 ? (1 << f->failures) : 32);
            /* the link stays down (or the answers garbled) through the driver's retries and
             * ours: the instrument is unusable; the step stays in flight and is settled when
             * it answers again */
            if (f->failures >= ENGINE_LINK_FAULT_CALLS && !f->link_fault &&
                engine_fault_unusable(1, c->rc)) {
                snprintf(why,
                         sizeof(why),
                         "%s: %s (%d calls in a row)",
                         drv_error_kind(c->rc),
                         c->err.msg,
                         f->failures);
                f->link_fault =
                    fault_now(e, f->instr, f->campaign_id, f->exp_id, f->step_id, why) == 0;
                if (f->link_fault)
                    fault_command_safe(e, f->instr, f->step_id);
            }
            break;
        }
        if (f->failures > 0)
            event(e,
                  f->campaign_id,
                  f->exp_id,
                  f->step_id,
                  LOG_LVL_NOTICE,
                  "instrument.link",
                  "%s answers again after %d failed call%s (%.1f s)",
                  e->instrs[f->instr].name,
                  f->failures,
                  f->failures == 1 ? "" : "s",
                  (double)(now - f->failing_since) / 1000.0);
        f->failures = 0;
        switch (c->status.state) {
        case DRV_STEP_RUNNING:
            f->phase = PH_POLL_AT;
            f->next_at = poll_next_at(e, f, now);
            f->recovering = 0;
            break;
        case DRV_STEP_DONE:
            e->instrs[f->instr].fails_in_row = 0;
            e->instrs[f->instr].fault[0] = '\0'; /* it works again */
            flight_finish(e, f, STORE_STEP_DONE, f->recovering ? "done (settled by query)" : NULL);
            break;
        case DRV_STEP_FAILED:
            snprintf(why, sizeof(why), "%s", c->status.reason);
            step_failed(
                e, f, 1, c->status.error, c->op == DRV_REQ_POLL && c->status.safe_commanded, why);
            break;
        case DRV_STEP_NOT_STARTED:
            flight_finish(
                e, f, STORE_STEP_PENDING, "not started (the instrument never accepted it)");
            break;
        default:
            snprintf(why, sizeof(why), "fate unknown: %s", c->status.reason);
            flight_finish(e, f, STORE_STEP_UNKNOWN, why);
        }
        break;
    default:
        break;
    }
}

int engine_on_completions(struct engine *e, struct ll_error *reterr)
{
    (void)reterr;
    struct drv_completion c;
    for (int i = 0; i < e->n_instrs; i++)
        while (e->instrs[i].w != NULL && drv_worker_next(e->instrs[i].w, &c) == 1) {
            if (e->instrs[i].n_outstanding > 0)
                e->instrs[i].n_outstanding--;
            e->instrs[i].progress_at = ll_monotonic_ms();
            on_completion(e, i, &c);
        }
    return 0;
}

int engine_workers_alive(
    const struct engine *e, int64_t now, int64_t margin_ms, char *why, size_t n)
{
    for (int i = 0; i < e->n_instrs; i++) {
        const struct instr *in = &e->instrs[i];
        if (in->w == NULL || in->n_outstanding == 0)
            continue;
        int64_t late = now - in->progress_at - in->budget_ms;
        if (late > margin_ms) {
            if (why != NULL && n > 0)
                snprintf(why,
                         n,
                         "instrument worker %s: %d request(s) outstanding, no completion for "
                         "%lld ms (a call must end within %lld ms)",
                         in->name,
                         in->n_outstanding,
                         (long long)(now - in->progress_at),
                         (long long)in->budget_ms);
            return 0;
        }
    }
    return 1;
}

int engine_fds(const struct engine *e, int *fds, int max)
{
    int n = 0;
    for (int i = 0; i < e->n_instrs && n < max; i++)
        if (e->instrs[i].w != NULL)
            fds[n++] = drv_worker_fd(e->instrs[i].w);
    return n;
}

int engine_timeout_ms(const struct engine *e)
{
    int64_t now = ll_monotonic_ms(), best = -1;
    for (int i = 0; i < MAX_FLIGHTS; i++) {
        const struct flight *f = &e->flights[i];
        if (!f->used)
            continue;
        int64_t at = f->deadline_at;
        if (f->phase == PH_POLL_AT || f->phase == PH_QUERY_AT || f->phase == PH_SETTLE_AT ||
            (f->phase == PH_MEASURE && !f->sent))
            at = f->next_at < at ? f->next_at : at;
        int64_t wait = at > now ? at - now : 0;
        if (best < 0 || wait < best)
            best = wait;
    }
    for (int i = 0; i < e->n_instrs; i++) {
        const struct cool_wait *cw = &e->instrs[i].cool;
        if (cw->move_step == 0 || cw->reading || cw->next_at == 0)
            continue;
        int64_t wait = cw->next_at > now ? cw->next_at - now : 0;
        if (best < 0 || wait < best)
            best = wait;
    }
    return best > 60000 ? 60000 : (int)best;
}

/* --- measurements ------------------------------------------------------------------------ */

int engine_on_measured(void *ctx,
                       int64_t experiment_id,
                       int64_t step_id,
                       int64_t measurement_id,
                       const struct measurement *m,
                       const struct analysis *a,
                       const char *analysis_error,
                       struct ll_error *reterr)
{
    struct engine *e = ctx;
    e->dirty = 1;
    json_t *steps = store_steps_json(e->store, 0, experiment_id, reterr);
    if (steps == NULL)
        return reterr != NULL && reterr->code ? reterr->code : -EIO;
    int64_t campaign_id = jint(json_array_get(steps, 0), "campaign_id");
    int state = -1;
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st)
    {
        if (jint(st, "id") == step_id)
            state = store_step_state_from_name(jstr(st, "state"));
    }
    json_decref(steps);
    struct camp *c = camp_get(e, campaign_id);
    char why[LL_ERROR_MSG_MAX + 64] = "";
    int r = 0;
    if (a == NULL) {
        snprintf(why, sizeof(why), "analysis failed: %s", analysis_error);
    } else if (c != NULL) {
        const char *kind = measurement_kind_name(measurement_kind(m));
        for (size_t k = 0; k < c->c.n_objectives && r == 0; k++) {
            const char *from = c->c.objectives[k].from;
            size_t kl = strlen(kind);
            if (strncmp(from, kind, kl) != 0 || from[kl] != '.')
                continue;
            double v = 0.0;
            if (analysis_get(a, from, &v) < 0 || !isfinite(v)) {
                snprintf(why, sizeof(why), "analysis gives no '%s'", from);
                continue;
            }
            /* the first measurement that gave the objective keeps it: a second one for the
             * same experiment (a station that lost its state and measured a request again) is
             * stored with its derived numbers, but does not silently replace a value the
             * planner may already have used */
            int64_t source = 0;
            r = store_objective_source(
                e->store, experiment_id, c->c.objectives[k].name, &source, reterr);
            if (r == 0 && source != measurement_id) {
                event(e,
                      campaign_id,
                      experiment_id,
                      step_id,
                      LOG_LVL_WARNING,
                      "measurement.unused",
                      "measurement %lld (station '%s', seq %lld) gives %s = %.10g, but the "
                      "experiment's '%s' already comes from measurement %lld: kept, not used",
                      (long long)measurement_id,
                      measurement_station(m),
                      (long long)measurement_seq(m),
                      from,
                      v,
                      c->c.objectives[k].name,
                      (long long)source);
                continue;
            }
            if (r < 0 && r != -ENOENT)
                break;
            r = store_objective_put(e->store,
                                    experiment_id,
                                    c->c.objectives[k].name,
                                    v,
                                    measurement_id,
                                    analysis_version(),
                                    reterr);
        }
    }
    if (r == 0 && state == STORE_STEP_STARTED)
        r = store_step_set_state(e->store,
                                 step_id,
                                 why[0] ? STORE_STEP_FAILED : STORE_STEP_DONE,
                                 0,
                                 why[0] ? why : NULL,
                                 reterr);
    /* the flight is dropped by the next tick once the store says the step has ended */
    return r;
}

/* --- starting steps ------------------------------------------------------------------------ */

/* Commits the intent (step started, experiment running) and hands the step over. */
static int start_step(struct engine *e, json_t *step, int exp_state)
{
    e->dirty = 1;
    struct ll_error err;
    ll_error_clear(&err);
    int64_t step_id = jint(step, "id"), exp_id = jint(step, "experiment_id");
    int64_t campaign_id = jint(step, "campaign_id");
    const char *action = jstr(step, "action");
    int is_measure = strcmp(action, "measure") == 0;
    struct flight *f = flight_new(e);
    if (f == NULL)
        return -ENOSPC;
    f->step_id = step_id;
    f->exp_id = exp_id;
    f->campaign_id = campaign_id;
    f->deadline_ms = deadline_ms_of(e, jint(step, "expected_ms"));
    f->retry_refused = exp_state == STORE_EXP_QUEUED || jint(step, "idx") >= CLEANUP_IDX_BASE;
    snprintf(f->sample, sizeof(f->sample), "%s", jstr(step, "sample"));
    if (is_measure) {
        snprintf(f->station, sizeof(f->station), "%s", jstr(step, "instrument"));
        snprintf(f->request, sizeof(f->request), "%s", jstr(step, "request"));
        snprintf(f->kind, sizeof(f->kind), "%s", jstr(json_object_get(step, "params"), "kind"));
        f->protocol = json_incref(json_object_get(json_object_get(step, "params"), "protocol"));
    } else {
        f->instr = instr_index(e, jstr(step, "instrument"));
        int r = step_to_drv(step, &f->ds, &err);
        if (r < 0 || f->instr < 0 || e->instrs[f->instr].w == NULL) {
            flight_drop(e, f);
            /* an impossible step: record it as started (its experiment running) then failed,
             * so that the reason stays and the experiment ends as failed */
            char why[LL_ERROR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", r < 0 ? err.msg : "no such instrument");
            ll_error_clear(&err);
            int rr = store_begin(e->store, &err);
            if (rr == 0)
                rr = store_step_set_state(e->store, step_id, STORE_STEP_STARTED, 0, NULL, &err);
            if (rr == 0 && exp_state == STORE_EXP_QUEUED)
                rr = store_experiment_set_state(e->store, exp_id, STORE_EXP_RUNNING, NULL, &err);
            if (rr == 0)
                rr = store_commit(e->store, &err);
            if (rr < 0) {
                store_rollback(e->store);
                log_line(LOG_LVL_ERR, "step=%lld: %s", (long long)step_id, err.msg);
                return rr;
            }
            step_settle(e, step_id, STORE_STEP_FAILED, why);
            return 0;
        }
    }
    int r = store_begin(e->store, &err);
    if (r == 0)
        r = store_step_set_state(e->store, step_id, STORE_STEP_STARTED, f->deadline_ms, NULL, &err);
    if (r == 0 && exp_state == STORE_EXP_QUEUED)
        r = store_experiment_set_state(e->store, exp_id, STORE_EXP_RUNNING, NULL, &err);
    if (r == 0)
        r = store_commit(e->store, &err);
    if (r < 0) {
        store_rollback(e->store);
        flight_drop(e, f);
        log_line(LOG_LVL_ERR, "step=%lld: cannot commit intent: %s", (long long)step_id, err.msg);
        return r;
    }
    int64_t job = 0;
    if (!is_measure && (store_step_get_job(e->store, step_id, &job, &err) < 0 || job <= 0 ||
                        job > (int64_t)UINT32_MAX)) {
        log_line(LOG_LVL_ERR, "step=%lld: no job number: %s", (long long)step_id, err.msg);
        flight_drop(e, f);
        return -EIO;
    }
    f->ds.id = (uint32_t)job;
    LL_FAILPOINT("intent_committed"); /* the store says started; the instrument knows nothing */
    int64_t now = ll_monotonic_ms();
    f->deadline_at = now + f->deadline_ms;
    f->expected_end_at = now + (int64_t)((double)jint(step, "expected_ms") / e->opt.time_scale);
    log_line(LOG_LVL_DEBUG,
             "step start campaign=%lld exp=%lld step=%lld action=%s instrument=%s",
             (long long)campaign_id,
             (long long)exp_id,
             (long long)step_id,
             action,
             jstr(step, "instrument"));
    if (is_measure) {
        f->phase = PH_MEASURE;
        f->next_at = now; /* sent by the next tick (send_measure) */
    } else {
        e->instrs[f->instr].busy_step = step_id;
        submit(e, f, DRV_REQ_START);
    }
    return 0;
}

/* --- a hot furnace waits before it takes the next sample --------------------------------- */

int engine_furnace_may_load(double pv_c, double setpoint_c, double tolerance_c)
{
    double limit = setpoint_c + tolerance_c;
    return isfinite(pv_c) && isfinite(limit) && pv_c <= limit;
}

int engine_furnace_wait_overdue(int64_t waited_ms, double time_scale, double warn_min)
{
    return (double)waited_ms * time_scale > warn_min * 60000.0;
}

/* How often a furnace that is too hot is read again: every 5 s of instrument time, or every
 * poll interval if that is longer (it cools with a time constant of minutes). */
static int64_t cool_interval_ms(const struct engine *e, int fi)
{
    int64_t every = (int64_t)(5000.0 / e->opt.time_scale);
    int64_t poll = poll_ms_of(e, fi);
    return every > poll ? every : poll;
}

static double lab_minutes(const struct engine *e, int64_t real_ms)
{
    return (double)real_ms * e->opt.time_scale / 60000.0;
}

static void cool_reset(struct cool_wait *cw)
{
    memset(cw, 0, sizeof(*cw));
    cw->pv_c = (double)NAN;
}

/* The instrument index of the furnace that the step `anneal` runs on, or -1 when it is not a
 * furnace anneal. */
static int furnace_of(const struct engine *e, json_t *anneal)
{
    if (strcmp(jstr(anneal, "action"), "anneal") != 0 || jint(anneal, "idx") >= CLEANUP_IDX_BASE)
        return -1;
    int fi = instr_index(e, jstr(anneal, "instrument"));
    return fi >= 0 && e->instrs[fi].is_furnace ? fi : -1;
}

/* May the move `move` take its sample into furnace fi, whose next step for that sample is
 * `anneal`? Asked only while the furnace runs no step (so it is not heating: a program ends
 * at the safe setpoint). 1 once a recent reading of the furnace's PV (no older than one
 * reading interval) is at most the anneal's setpoint + load_tolerance_c; the caller then
 * starts the move when the robot and the place are free and calls furnace_loading().
 * Otherwise 0: a reading is asked for (a STATUS request to the furnace's worker, answered in
 * on_furnace_reading()) or, while the furnace is too hot, is due later (engine_tick() makes
 * a pass then). Nothing is committed while the sample waits, so after a restart it simply
 * waits again. */
static int furnace_may_take(struct engine *e, int fi, json_t *move, json_t *anneal, int64_t now)
{
    struct instr *in = &e->instrs[fi];
    struct cool_wait *cw = &in->cool;
    if (in->w == NULL)
        return 1; /* no instrument to read (engine without workers): nothing to wait for */
    int64_t move_id = jint(move, "id");
    double sp = json_number_value(json_object_get(json_object_get(anneal, "params"), "setpoint_c"));
    if (cw->move_step != move_id) {
        /* the sample that asked first in this pass (the oldest) holds the gate; a move that
         * asked before but did not ask again in this pass has started or cannot go now */
        if (cw->move_step != 0 && cw->pass == e->passes)
            return 0;
        cool_reset(cw);
        cw->move_step = move_id;
        cw->exp_id = jint(move, "experiment_id");
        cw->campaign_id = jint(move, "campaign_id");
        cw->setpoint_c = sp;
    }
    cw->pass = e->passes;
    if (cw->reading)
        return 0;
    if (now - cw->pv_at <= cool_interval_ms(e, fi) &&
        engine_furnace_may_load(cw->pv_c, cw->setpoint_c, in->load_tolerance_c))
        return 1;
    if (cw->next_at > now)
        return 0;
    struct drv_request req = {.op = DRV_REQ_STATUS, .cookie = (uint64_t)move_id};
    struct ll_error err;
    ll_error_clear(&err);
    if (worker_submit(e, fi, &req, &err) < 0) {
        cw->next_at = now + 100; /* queue full: ask again shortly */
        return 0;
    }
    cw->reading = 1;
    cw->next_at = 0;
    return 0;
}

/* 1 while a sample waits for furnace fi to cool: a reading was too hot, its move has not
 * started (nor been skipped by an abort) and its campaign runs (a pause or an e-stop stops
 * the waiting as it stops every step; a resume continues it). */
static int cool_active(struct engine *e, int fi)
{
    const struct cool_wait *cw = &e->instrs[fi].cool;
    return cw->since > 0 && !e->estop &&
           store_step_get_state(e->store, cw->move_step, NULL) == STORE_STEP_PENDING &&
           store_campaign_get_state(e->store, cw->campaign_id, NULL) == STORE_CAMPAIGN_RUNNING;
}

/* The move `move_id` that furnace_may_take() allowed has started: the wait (if any) ends. */
static void furnace_loading(struct engine *e, int fi, int64_t move_id)
{
    struct instr *in = &e->instrs[fi];
    struct cool_wait *cw = &in->cool;
    if (cw->move_step != move_id)
        return;
    if (cw->since > 0)
        event(e,
              cw->campaign_id,
              cw->exp_id,
              0,
              LOG_LVL_INFO,
              "furnace",
              "furnace cooled to %.1f °C (<= %.1f °C) after waiting %.1f min: loading experiment "
              "%lld (furnace '%s')",
              cw->pv_c,
              cw->setpoint_c + in->load_tolerance_c,
              lab_minutes(e, ll_monotonic_ms() - cw->since),
              (long long)cw->exp_id,
              in->name);
    cool_reset(cw);
}

/* A reading of furnace fi's PV for the sample waiting at its door. */
static void on_furnace_reading(struct engine *e, int fi, const struct drv_completion *c)
{
    struct instr *in = &e->instrs[fi];
    struct cool_wait *cw = &in->cool;
    if (cw->move_step == 0 || c->cookie != (uint64_t)cw->move_step)
        return; /* asked for a sample that no longer waits */
    cw->reading = 0;
    int64_t now = ll_monotonic_ms();
    double limit = cw->setpoint_c + in->load_tolerance_c;
    if (c->rc == DRV_EFAULT && !cw->faulted) {
        /* the driver read garbage, not a temperature (an INVALID PV: a PV error code, a value
         * outside the map's range such as a sensor break's full scale; reliability.md B8):
         * an instrument fault, as its poll says during an anneal; the sample is not loaded */
        char why[LL_ERROR_MSG_MAX + 64];
        snprintf(
            why, sizeof(why), "%s; experiment %lld not loaded", c->err.msg, (long long)cw->exp_id);
        cw->pv_c = (double)NAN;
        cw->faulted = fault_now(e, fi, cw->campaign_id, cw->exp_id, 0, why) == 0;
        if (cw->faulted) {
            fault_command_safe(e, fi, 0);
            cw->next_at = now + cool_interval_ms(e, fi);
            return;
        }
    }
    if (c->rc < 0) {
        log_line(LOG_LVL_WARNING,
                 "furnace %s: cannot read its PV before loading exp=%lld (%s); not loading, "
                 "reading again",
                 in->name,
                 (long long)cw->exp_id,
                 c->err.msg);
        cw->pv_c = (double)NAN;
        if (cw->since == 0)
            cw->since = now;
    } else {
        cw->pv_c = c->status.temp_c;
        cw->pv_at = now;
        if (engine_furnace_may_load(cw->pv_c, cw->setpoint_c, in->load_tolerance_c)) {
            e->dirty = 1; /* the next pass starts the move */
            return;
        }
        /* far above anything it may reach (a sensor break reads full scale): a fault, as the
         * driver's poll says during an anneal; the sample is not loaded */
        if (cw->pv_c > in->max_temp_c + 10.0 && !cw->faulted) {
            char why[256];
            snprintf(why,
                     sizeof(why),
                     "reads %.1f C at its door, more than 10 C above its max_temp_c %.1f C (a "
                     "sensor break reads full scale); experiment %lld not loaded",
                     cw->pv_c,
                     in->max_temp_c,
                     (long long)cw->exp_id);
            cw->faulted = fault_now(e, fi, cw->campaign_id, cw->exp_id, 0, why) == 0;
            if (cw->faulted) {
                fault_command_safe(e, fi, 0);
                cw->next_at = now + cool_interval_ms(e, fi);
                return; /* not a furnace cooling down: no "waiting" event */
            }
        }
        if (cw->since == 0) {
            cw->since = now;
            event(e,
                  cw->campaign_id,
                  cw->exp_id,
                  0,
                  LOG_LVL_NOTICE,
                  "furnace",
                  "waiting for furnace to cool from %.1f °C to <= %.1f °C before loading "
                  "experiment %lld (its anneal: %.1f °C on '%s')",
                  cw->pv_c,
                  limit,
                  (long long)cw->exp_id,
                  cw->setpoint_c,
                  in->name);
        }
    }
    if (!cw->warned &&
        engine_furnace_wait_overdue(now - cw->since, e->opt.time_scale, in->load_wait_warn_min)) {
        cw->warned = 1;
        char what[768]; /* two %.1f of any double fit */
        if (isfinite(cw->pv_c))
            snprintf(what, sizeof(what), "at %.1f °C (> %.1f °C)", cw->pv_c, limit);
        else
            snprintf(what, sizeof(what), "unreadable (limit %.1f °C)", limit);
        event(e,
              cw->campaign_id,
              cw->exp_id,
              0,
              LOG_LVL_WARNING,
              "furnace",
              "furnace still %s after %.1f min (load_wait_warn_min %g of '%s'): experiment %lld "
              "keeps waiting; its sample is not loaded",
              what,
              lab_minutes(e, now - cw->since),
              in->load_wait_warn_min,
              in->name,
              (long long)cw->exp_id);
    }
    cw->next_at = now + cool_interval_ms(e, fi);
}

/* --- the pass ---------------------------------------------------------------------------- */

static int place_is_rack(const char *place)
{
    return strcmp(place, "rack") == 0;
}

/* Per open experiment, what the pass needs. */
struct exp_view {
    int64_t id;
    int state;
    json_t *exp;        /* borrowed from the experiments array */
    json_t *steps[128]; /* borrowed, in order */
    int n_steps;
    char place[LABCONF_NAME_MAX]; /* where the sample is ("" before dispense) */
    int open, failed, has_cleanup;
    json_t *first_failed;
};

static void exp_view_build(struct exp_view *v, json_t *exp, json_t *all_steps)
{
    memset(v, 0, sizeof(*v));
    v->id = jint(exp, "id");
    v->exp = exp;
    v->state = store_experiment_state_from_name(jstr(exp, "state"));
    size_t i;
    json_t *st;
    json_array_foreach(all_steps, i, st)
    {
        if (jint(st, "experiment_id") != v->id || v->n_steps == 128)
            continue;
        v->steps[v->n_steps++] = st;
        int s = store_step_state_from_name(jstr(st, "state"));
        const char *action = jstr(st, "action");
        json_t *p = json_object_get(st, "params");
        if (s == STORE_STEP_PENDING || s == STORE_STEP_STARTED || s == STORE_STEP_UNKNOWN)
            v->open = 1;
        if (s == STORE_STEP_FAILED && !v->failed) {
            v->failed = 1;
            v->first_failed = st;
        }
        if (jint(st, "idx") >= CLEANUP_IDX_BASE)
            v->has_cleanup = 1;
        if (s == STORE_STEP_DONE && strcmp(action, "dispense") == 0)
            snprintf(v->place, sizeof(v->place), "rack");
        if (s == STORE_STEP_DONE && strcmp(action, "move") == 0)
            snprintf(v->place, sizeof(v->place), "%s", jstr(p, "to"));
    }
}

/* Marks the place occupancy of one open experiment: where it is, and where a started move
 * takes it. */
static void occupy(const struct exp_view *v, char occ[][LABCONF_NAME_MAX], int64_t *who, int *n)
{
    for (int i = 0; i <= v->n_steps; i++) {
        const char *place = NULL;
        if (i == v->n_steps) {
            place = v->place;
        } else {
            json_t *st = v->steps[i];
            int s = store_step_state_from_name(jstr(st, "state"));
            if ((s == STORE_STEP_STARTED || s == STORE_STEP_UNKNOWN) &&
                strcmp(jstr(st, "action"), "move") == 0)
                place = jstr(json_object_get(st, "params"), "to");
        }
        if (place == NULL || place[0] == '\0' || place_is_rack(place) || *n >= 64)
            continue;
        snprintf(occ[*n], LABCONF_NAME_MAX, "%s", place);
        who[*n] = v->id;
        (*n)++;
    }
}

static int
place_taken(char occ[][LABCONF_NAME_MAX], const int64_t *who, int n, const char *place, int64_t me)
{
    if (place_is_rack(place))
        return 0;
    for (int i = 0; i < n; i++)
        if (who[i] != me && strcmp(occ[i], place) == 0)
            return 1;
    return 0;
}

/* Appends to buf (size bytes, the first *used of them filled, *used < size) what fmt makes,
 * as much of it as fits; buf stays terminated and *used < size. */
static void buf_add(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void buf_add(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    if (*used + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (w > 0)
        *used += (size_t)w < size - *used ? (size_t)w : size - *used - 1;
}

/* How surprising a measured value y is against one objective's prediction {"mean", "sd",
 * "noise_sd"} (chosen_entry): z = (y - mean) / sqrt(sd^2 + noise_sd^2). Returns 0, or -1 when
 * the prediction is missing or has no spread. */
static int prediction_z(json_t *pred, double y, double *ret_z)
{
    json_t *mean = json_object_get(pred, "mean");
    double sd = json_number_value(json_object_get(pred, "sd"));
    double noise = json_number_value(json_object_get(pred, "noise_sd"));
    double spread = sqrt(sd * sd + noise * noise);
    if (!json_is_number(mean) || !(spread > 0) || !isfinite(y))
        return -1;
    *ret_z = (y - json_number_value(mean)) / spread;
    return 0;
}

/* The measured objectives of an experiment, each beside what the models predicted when it was
 * proposed (a model round) and how surprising the result is (prediction_z): "pce_pct 20.1
 * (predicted 21.3 +- 0.8, z -1.4), ...", so that the event log shows how well the models
 * anticipate the lab. */
static void
measured_summary(struct engine *e, struct camp *c, struct exp_view *v, char *buf, size_t n)
{
    struct ll_error err;
    json_t *obj = json_object_get(v->exp, "objectives");
    json_t *preds =
        store_predictions_json(e->store, c->id, (int)jint(v->exp, "round"), v->id, &err);
    if (preds == NULL) /* the values still go into the event, without the prediction */
        log_line(LOG_LVL_WARNING, "exp=%lld: stored prediction: %s", (long long)v->id, err.msg);
    json_t *pred = json_object_get(json_array_get(preds, 0), "predicted");
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < c->c.n_objectives; k++) {
        const char *name = c->c.objectives[k].name;
        json_t *p = json_object_get(pred, name);
        double y = json_number_value(json_object_get(obj, name)), z;
        buf_add(buf, n, &used, "%s%s %.4g", k > 0 ? ", " : "", name, y);
        if (prediction_z(p, y, &z) == 0)
            buf_add(buf,
                    n,
                    &used,
                    " (predicted %.4g +- %.2g, z %+.1f)",
                    json_number_value(json_object_get(p, "mean")),
                    json_number_value(json_object_get(p, "sd")),
                    z);
    }
    json_decref(preds);
}

/* An experiment's parameter values (JSON with "params") in the campaign's order. */
static void exp_params(const struct camp *c, json_t *exp, double *ret_x)
{
    json_t *params = json_object_get(exp, "params");
    for (size_t j = 0; j < c->c.n_params; j++)
        ret_x[j] = json_number_value(json_object_get(params, c->c.params[j].name));
}

/* The computed objectives' values of an experiment (JSON with "params"), evaluated from its
 * parameters (planner/campaign.h); other entries of ret are left alone. Returns 0 or -EINVAL
 * with the expression's problem in err. */
static int exp_computed(const struct camp *c, json_t *exp, double *ret, struct ll_error *err)
{
    double x[CAMPAIGN_MAX_PARAMS];
    exp_params(c, exp, x);
    for (size_t k = 0; k < c->c.n_objectives; k++)
        if (campaign_objective_computed(&c->c, k)) {
            int r = campaign_objective_eval(&c->c, k, x, &ret[k], err);
            if (r != 0)
                return r;
        }
    return 0;
}

/* An experiment whose steps have all ended: measured or failed. Also: after a failure,
 * skip the remaining steps and bring the sample back to the rack. */
static void exp_settle(struct engine *e, struct camp *c, struct exp_view *v)
{
    if (v->failed || !v->open)
        e->dirty = 1; /* it changes something below (or will on a later pass) */
    struct ll_error err;
    ll_error_clear(&err);
    if (v->failed && v->open) {
        int any_running = 0;
        for (int i = 0; i < v->n_steps; i++) {
            int s = store_step_state_from_name(jstr(v->steps[i], "state"));
            if (s == STORE_STEP_STARTED || s == STORE_STEP_UNKNOWN)
                any_running = 1;
        }
        if (any_running)
            return;
        int r = store_begin(e->store, &err);
        for (int i = 0; i < v->n_steps && r == 0; i++)
            if (store_step_state_from_name(jstr(v->steps[i], "state")) == STORE_STEP_PENDING &&
                jint(v->steps[i], "idx") < CLEANUP_IDX_BASE)
                r = store_step_set_state(
                    e->store, jint(v->steps[i], "id"), STORE_STEP_SKIPPED, 0, NULL, &err);
        if (r == 0)
            r = store_commit(e->store, &err);
        if (r < 0)
            store_rollback(e->store);
        return;
    }
    if (v->failed && !v->has_cleanup && v->place[0] != '\0' && !place_is_rack(v->place)) {
        /* bring the sample home so that its place is free for the next one */
        json_t *p = json_pack("{s:s,s:s,s:b}", "from", v->place, "to", "rack", "cleanup", 1);
        int64_t sid = 0;
        int r = store_begin(e->store, &err);
        if (r == 0)
            r = store_step_create(
                e->store, v->id, CLEANUP_IDX_BASE, "robot", "move", p, 3000, NULL, &sid, &err);
        if (r == 0)
            r = store_commit(e->store, &err);
        if (r < 0)
            store_rollback(e->store);
        json_decref(p);
        return;
    }
    if (v->open)
        return;
    if (v->state != STORE_EXP_RUNNING)
        return;
    char reason[600] = "";
    int to = STORE_EXP_MEASURED;
    if (v->failed) {
        /* a step the operator said did not run (after its fate was unknown): abandoned */
        to = strncmp(jstr(v->first_failed, "result"), "operator:", 9) == 0 ? STORE_EXP_ABANDONED
                                                                           : STORE_EXP_FAILED;
        snprintf(reason,
                 sizeof(reason),
                 "step %lld (%s %s) failed: %s",
                 (long long)jint(v->first_failed, "idx") + 1,
                 jstr(v->first_failed, "instrument"),
                 jstr(v->first_failed, "action"),
                 jstr(v->first_failed, "result"));
    } else {
        json_t *obj = json_object_get(v->exp, "objectives");
        for (size_t k = 0; k < c->c.n_objectives; k++)
            if (!campaign_objective_computed(&c->c, k) &&
                !json_is_number(json_object_get(obj, c->c.objectives[k].name))) {
                to = STORE_EXP_FAILED;
                snprintf(reason,
                         sizeof(reason),
                         "objective '%s' was not measured",
                         c->c.objectives[k].name);
                break;
            }
    }
    double computed[CAMPAIGN_MAX_OBJECTIVES] = {0};
    if (to == STORE_EXP_MEASURED && exp_computed(c, v->exp, computed, &err) != 0) {
        to = STORE_EXP_FAILED;
        snprintf(reason, sizeof(reason), "%s", err.msg);
    }
    int r = store_begin(e->store, &err);
    for (size_t k = 0; k < c->c.n_objectives && r == 0 && to == STORE_EXP_MEASURED; k++) {
        if (!campaign_objective_computed(&c->c, k))
            continue;
        /* the stored value's provenance: no measurement, the expression as its "analysis" */
        char how[CAMPAIGN_EXPR_MAX + 8];
        snprintf(how, sizeof(how), "expr: %s", c->c.objectives[k].expr);
        r = store_objective_put(
            e->store, v->id, c->c.objectives[k].name, computed[k], 0, how, &err);
    }
    if (r == 0)
        r = store_experiment_set_state(e->store, v->id, to, reason[0] ? reason : NULL, &err);
    if (r == 0)
        r = store_commit(e->store, &err);
    if (r < 0) {
        store_rollback(e->store);
        log_line(LOG_LVL_ERR, "exp=%lld: %s", (long long)v->id, err.msg);
        return;
    }
    json_t *obj = json_object_get(v->exp, "objectives");
    for (size_t k = 0; k < c->c.n_objectives && to == STORE_EXP_MEASURED && obj; k++)
        if (campaign_objective_computed(&c->c, k))
            json_object_set_new(obj, c->c.objectives[k].name, json_real(computed[k]));
    if (to == STORE_EXP_MEASURED)
        measured_summary(e, c, v, reason, sizeof(reason));
    event(e,
          c->id,
          v->id,
          0,
          to == STORE_EXP_MEASURED ? LOG_LVL_INFO : LOG_LVL_WARNING,
          "experiment",
          "%s%s%s",
          store_experiment_state_name(to),
          reason[0] ? ": " : "",
          reason);
}

/* Makespan and lower bound of a round (wall ms of its steps). Returns 0 when found. */
static int round_makespan(struct engine *e,
                          json_t *exps,
                          int round,
                          double *ret_makespan_s,
                          double *ret_bound_s,
                          char *busiest,
                          size_t n)
{
    int64_t first = INT64_MAX, last = 0;
    struct {
        char name[LABCONF_NAME_MAX];
        int64_t work;
    } per[LABCONF_MAX_INSTRUMENTS + LABCONF_MAX_STATIONS];
    int n_per = 0;
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        if (round >= 0 && jint(x, "round") != round)
            continue;
        json_t *steps = store_steps_json(e->store, 0, jint(x, "id"), NULL);
        size_t k;
        json_t *st;
        json_array_foreach(steps, k, st)
        {
            if (!json_is_integer(json_object_get(st, "started_at")) ||
                !json_is_integer(json_object_get(st, "finished_at")))
                continue;
            int64_t a = jint(st, "started_at"), b = jint(st, "finished_at");
            first = a < first ? a : first;
            last = b > last ? b : last;
            int j;
            for (j = 0; j < n_per; j++)
                if (strcmp(per[j].name, jstr(st, "instrument")) == 0)
                    break;
            if (j == n_per && n_per < (int)(sizeof(per) / sizeof(per[0]))) {
                snprintf(per[j].name, sizeof(per[j].name), "%s", jstr(st, "instrument"));
                per[j].work = 0;
                n_per++;
            }
            if (j < n_per)
                per[j].work += b - a;
        }
        json_decref(steps);
    }
    if (last == 0)
        return -ENOENT;
    int64_t bound = 0;
    busiest[0] = '\0';
    for (int j = 0; j < n_per; j++)
        if (per[j].work > bound) {
            bound = per[j].work;
            snprintf(busiest, n, "%s", per[j].name);
        }
    *ret_makespan_s = (double)(last - first) / 1000.0;
    *ret_bound_s = (double)bound / 1000.0;
    return 0;
}

static int targets_met(const struct camp *c, json_t *exps)
{
    size_t nt = recipe_n_targets(c->r);
    if (nt == 0)
        return 0;
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        if (strcmp(jstr(x, "state"), "measured") != 0)
            continue;
        int all = 1;
        for (size_t t = 0; t < nt && all; t++) {
            int k = campaign_objective_index(&c->c, recipe_target_name(c->r, t));
            json_t *v =
                json_object_get(json_object_get(x, "objectives"), recipe_target_name(c->r, t));
            if (k < 0 || !json_is_number(v))
                all = 0;
            else if (c->c.objectives[k].maximise)
                all = json_number_value(v) >= recipe_target_value(c->r, t);
            else
                all = json_number_value(v) <= recipe_target_value(c->r, t);
        }
        if (all)
            return 1;
    }
    return 0;
}

/* Tells the planner every measured experiment (recording each as a training row) and adds
 * every experiment without a measurement as a pending point. */
static int feed_planner(
    struct camp *c, json_t *exps, struct planner *p, json_t *training, struct ll_error *err)
{
    size_t np = c->c.n_params, no = c->c.n_objectives, i;
    json_t *x;
    int r = 0;
    json_array_foreach(exps, i, x)
    {
        if (r < 0 || strcmp(jstr(x, "state"), "measured") != 0)
            continue;
        double xv[CAMPAIGN_MAX_PARAMS], yv[CAMPAIGN_MAX_OBJECTIVES];
        json_t *row = json_array();
        exp_params(c, x, xv);
        for (size_t k = 0; k < np; k++)
            json_array_append_new(row, json_real(xv[k]));
        for (size_t k = 0; k < no; k++) {
            yv[k] = json_number_value(
                json_object_get(json_object_get(x, "objectives"), c->c.objectives[k].name));
            json_array_append_new(row, json_real(yv[k]));
        }
        json_array_append_new(
            training, json_pack("{s:I,s:o}", "experiment", (json_int_t)jint(x, "id"), "row", row));
        r = planner_tell(p, xv, yv, err);
    }
    /* every experiment without a measurement is a pending point: open ones (async rounds),
     * failed ones, and abandoned ones (denied, aborted, fate unknown). So the initial design's
     * index (observations + pending) moves past a failed point instead of proposing it again,
     * and the model, which fantasises its own prediction at every pending point, does not
     * come back to exactly that point either (docs/daemon.md, "Failed experiments") */
    json_array_foreach(exps, i, x)
    {
        int s = store_experiment_state_from_name(jstr(x, "state"));
        if (r < 0 || s == STORE_EXP_MEASURED)
            continue;
        double xv[CAMPAIGN_MAX_PARAMS];
        exp_params(c, x, xv);
        r = planner_add_pending(p, xv, err);
    }
    return r;
}

/* "; wider exploration for NAME, ..." for the objectives whose acquisition used the exploration
 * model (planner.c), or "" (a suffix for the round's event). */
static void
explore_note(const struct camp *c, const struct planner_round_info *ri, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < c->c.n_objectives && ri->model_fitted; k++)
        if (ri->explore_signal_var[k] > 0)
            buf_add(buf,
                    size,
                    &used,
                    "%s%s",
                    used ? ", " : "; wider exploration for ",
                    c->c.objectives[k].name);
}

/* A proposal's entry in its round's fit record: experiment id, parameters, acquisition value,
 * source ("fallback": true when the space-filling fallback proposed it, plan_round) and, in a
 * model round, the models' prediction {objective: {"mean", "sd", "noise_sd"}} (sd: of the
 * latent value; noise_sd: the measurement noise the model fitted). New reference. */
static json_t *chosen_entry(const struct camp *c,
                            const struct planner_round_info *ri,
                            int64_t exp_id,
                            json_t *params,
                            const struct planner_point_info *pt,
                            int fallback)
{
    json_t *entry = json_pack("{s:I,s:O,s:f,s:b}",
                              "experiment",
                              (json_int_t)exp_id,
                              "params",
                              params,
                              "acquisition",
                              pt->acquisition,
                              "from_initial_design",
                              pt->from_initial_design);
    if (entry != NULL && fallback)
        json_object_set_new(entry, "fallback", json_true());
    if (entry == NULL || !pt->predicted || !ri->model_fitted)
        return entry;
    json_t *o = json_object();
    for (size_t k = 0; k < c->c.n_objectives; k++) {
        double noise = sqrt(ri->hyper[k].noise_var) * ri->hyper[k].y_std;
        json_object_set_new(o,
                            c->c.objectives[k].name,
                            json_pack("{s:f,s:f,s:f}",
                                      "mean",
                                      pt->pred_mean[k],
                                      "sd",
                                      pt->pred_sd[k],
                                      "noise_sd",
                                      isfinite(noise) ? noise : 0.0));
    }
    json_object_set_new(entry, "predicted", o);
    return entry;
}

/* The model fit record of a round: everything needed to reproduce or audit it. Returns a
 * new reference. */
static json_t *
fit_record(const struct camp *c, int round, const struct planner_round_info *rip, json_t *training)
{
    size_t np = c->c.n_params, no = c->c.n_objectives;
    struct planner_round_info ri = *rip;
    json_t *fit = json_pack("{s:i,s:I,s:s,s:I,s:I,s:b,s:f,s:o}",
                            "round",
                            round,
                            "seed",
                            (json_int_t)c->c.seed,
                            "acquisition",
                            c->c.acquisition,
                            "n_obs",
                            (json_int_t)ri.n_obs,
                            "n_pending",
                            (json_int_t)ri.n_pending,
                            "model_fitted",
                            ri.model_fitted,
                            "hypervolume",
                            isfinite(ri.hv) ? ri.hv : 0.0,
                            "training",
                            json_incref(training));
    json_t *scaling = json_array();
    for (size_t k = 0; k < np; k++)
        json_array_append_new(scaling,
                              json_pack("{s:s,s:f,s:f}",
                                        "param",
                                        c->c.params[k].name,
                                        "low",
                                        c->c.params[k].low,
                                        "high",
                                        c->c.params[k].high));
    json_object_set_new(fit, "input_scaling", scaling);
    if (ri.model_fitted) {
        json_t *hyp = json_array();
        for (size_t k = 0; k < no; k++) {
            if (campaign_objective_computed(&c->c, k)) {
                /* no model: the value is the expression's */
                json_array_append_new(hyp,
                                      json_pack("{s:s,s:s}",
                                                "objective",
                                                c->c.objectives[k].name,
                                                "expr",
                                                c->c.objectives[k].expr));
                continue;
            }
            json_t *ls = json_array();
            for (size_t d = 0; d < ri.hyper[k].d; d++)
                json_array_append_new(ls, json_real(ri.hyper[k].length_scale[d]));
            json_array_append_new(hyp,
                                  json_pack("{s:s,s:o,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
                                            "objective",
                                            c->c.objectives[k].name,
                                            "length_scale",
                                            ls,
                                            "signal_var",
                                            ri.hyper[k].signal_var,
                                            "additive_var",
                                            ri.hyper[k].add_var,
                                            "explore_signal_var",
                                            ri.explore_signal_var[k],
                                            "noise_var",
                                            ri.hyper[k].noise_var,
                                            "const_mean",
                                            ri.hyper[k].const_mean,
                                            "y_mean",
                                            ri.hyper[k].y_mean,
                                            "y_std",
                                            ri.hyper[k].y_std,
                                            "log_marginal_likelihood",
                                            ri.hyper[k].log_marginal_likelihood));
        }
        json_object_set_new(fit, "hyperparameters", hyp);
    }
    return fit;
}

/* Stores the steps of a new experiment (expanded from the recipe); a measure step goes to
 * the lab's station for its kind and gets the request id the station will echo. */
static int create_steps(struct engine *e, int64_t exp_id, json_t *steps, struct ll_error *err)
{
    int r = 0;
    size_t si;
    json_t *st;
    json_array_foreach(steps, si, st)
    {
        if (r < 0)
            break;
        const char *instrument = jstr(st, "instrument");
        char request[64] = "";
        if (strcmp(jstr(st, "action"), "measure") == 0) {
            instrument = station_for_kind(e, jstr(json_object_get(st, "params"), "kind"));
            snprintf(request, sizeof(request), "r-%lld-%zu", (long long)exp_id, si + 1);
            if (instrument == NULL) {
                r = ll_error_set(err,
                                 -EINVAL,
                                 "no station of the lab measures '%s'",
                                 jstr(json_object_get(st, "params"), "kind"));
                break;
            }
        }
        int64_t sid = 0;
        r = store_step_create(e->store,
                              exp_id,
                              (int)si,
                              instrument,
                              jstr(st, "action"),
                              json_object_get(st, "params"),
                              jint(st, "expected_ms"),
                              request[0] ? request : NULL,
                              &sid,
                              err);
    }
    return r;
}

int engine_rack_pick_well(const unsigned char *occupied, int n_wells)
{
    for (int w = 0; w < n_wells; w++)
        if (!occupied[w])
            return w;
    return -ENOSPC;
}

/* No well is free: no experiment is created; one event (and the meta latch) per full rack. */
static int rack_full(struct engine *e, struct camp *c)
{
    if (e->rack_full)
        return 0;
    struct ll_error err;
    ll_error_clear(&err);
    e->rack_full = 1;
    int r = store_begin(e->store, &err);
    if (r == 0)
        r = store_meta_set(e->store, "rack_full", "1", &err);
    if (r == 0) {
        event(e,
              c->id,
              0,
              0,
              LOG_LVL_WARNING,
              "rack",
              "rack full: all %d wells hold samples; unload the rack and run `labloop rack "
              "unloaded`",
              e->n_wells);
        r = store_commit(e->store, &err);
    }
    if (r < 0) {
        store_rollback(e->store);
        log_line(LOG_LVL_ERR, "store: rack full not recorded: %s", err.msg);
    }
    return 0;
}

/* A well is free again (an unload, or an abandoned sample that was never dispensed). */
static void rack_free(struct engine *e)
{
    if (!e->rack_full)
        return;
    e->rack_full = 0;
    struct ll_error err;
    if (store_meta_set(e->store, "rack_full", "0", &err) < 0)
        log_line(LOG_LVL_ERR, "store: rack latch not cleared: %s", err.msg);
}

/* How many wells are free (occupied[] filled in); 0 when none is (the rack-full event is
 * written once), negative errno on a store error. */
static int
rack_room(struct engine *e, struct camp *c, unsigned char *occupied, struct ll_error *err)
{
    int n_occupied = store_rack_occupied(e->store, e->n_wells, occupied, err);
    if (n_occupied < 0)
        return n_occupied;
    if (n_occupied >= e->n_wells)
        return rack_full(e, c);
    rack_free(e);
    return e->n_wells - n_occupied;
}

/* Creates an experiment in the lowest free well (marked occupied in occupied[]); the well is
 * stored with the experiment, in the caller's transaction. */
static int experiment_create(struct engine *e,
                             struct camp *c,
                             int idx,
                             int round,
                             unsigned char *occupied,
                             json_t *params,
                             double acquisition,
                             int64_t *ret_id,
                             struct ll_error *err)
{
    int well = engine_rack_pick_well(occupied, e->n_wells);
    if (well < 0) /* the batch was cut to the free wells: not reached */
        return ll_error_set(err, -ENOSPC, "rack: no free well");
    occupied[well] = 1;
    return store_experiment_create(
        e->store, c->id, idx, round, well, params, acquisition, ret_id, err);
}

/* Asks the planner for the next batch and commits it with its model fit. */
/* The hottest anneal setpoint of the steps of one proposed point (-inf without an anneal). */
/* The hottest anneal setpoint among one point's expanded steps (-inf without an anneal). */
static double hottest_anneal(json_t *steps)
{
    double hot = -(double)INFINITY;
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st)
    {
        json_t *sp = json_object_get(json_object_get(st, "params"), "setpoint_c");
        const char *action = json_string_value(json_object_get(st, "action"));
        if (action != NULL && strcmp(action, "anneal") == 0 && json_is_number(sp) &&
            json_number_value(sp) > hot)
            hot = json_number_value(sp);
    }
    return hot;
}

struct round_key {
    double hot;
    int k;
};

static int cmp_round_key(const void *a, const void *b)
{
    const struct round_key *x = a, *y = b;
    if (x->hot != y->hot)
        return x->hot < y->hot ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

/* The order in which a round's q points become experiments: by their hottest anneal,
 * coolest first (ties and points without an anneal keep the planner's order), so that the
 * furnace heats up through a round instead of having to cool between its samples (a sample
 * is only loaded into a furnace at most load_tolerance_c above its setpoint). Without
 * memory for the keys the planner's order is kept. */
static void round_order(json_t *expanded, int q, int *order)
{
    struct round_key *key = calloc((size_t)q + 1, sizeof(*key));
    for (int k = 0; k < q; k++)
        order[k] = k;
    if (key == NULL)
        return;
    for (int k = 0; k < q; k++) {
        key[k].hot = hottest_anneal(json_array_get(expanded, (size_t)k));
        key[k].k = k;
    }
    qsort(key, (size_t)q, sizeof(*key), cmp_round_key);
    for (int k = 0; k < q; k++)
        order[k] = key[k].k;
    free(key);
}

/* Every point's recipe steps, expanded once (appended to expanded, q arrays: for the order
 * and for the experiments), and the order of the points (round_order). */
static int expand_round(const struct camp *c,
                        const double *xs,
                        int q,
                        size_t np,
                        json_t *expanded,
                        int *order,
                        struct ll_error *err)
{
    for (int k = 0; k < q; k++) {
        json_t *steps = NULL;
        int r = recipe_expand(c->r, &c->c, &xs[(size_t)k * np], &steps, err);
        if (r < 0)
            return r;
        json_array_append_new(expanded, steps);
    }
    round_order(expanded, q, order);
    return 0;
}

#ifdef LL_FAILPOINTS
/* Test builds only: LABLOOP_PLANNER_ERROR=WHAT:ROUND[,WHAT:ROUND...] (ll_failpoint.h's syntax;
 * ROUND >= 1) makes planning fail for real in the rounds named. WHAT ERANGE, EDOM, EINVAL or
 * ENOMEM: planner_ask counts as failed with that code, whatever it returned; `fallback`: that
 * round's space-filling fallback fails with -ERANGE. Read at every round, so a test may change
 * it. Returns the code to inject at `point` ("ask" or "fallback") of round, or 0. A malformed
 * value ends the process (status 2), as a malformed LABLOOP_FAILPOINT does. */
static int injected_planner_error(const char *point, int round)
{
    static const struct {
        const char *name;
        int code;
    } codes[] = {
        {"ERANGE", -ERANGE},
        {"EDOM",   -EDOM  },
        {"EINVAL", -EINVAL},
        {"ENOMEM", -ENOMEM},
    };
    const char *spec = getenv("LABLOOP_PLANNER_ERROR");
    struct ll_failpoint_spec items[8];
    int n = spec != NULL && spec[0] != '\0' ? ll_failpoint_parse(spec, items, 8) : 0;
    int code = 0;
    for (int i = 0; i < n; i++) {
        int item_code = strcmp(items[i].name, "fallback") == 0 ? -ERANGE : 0;
        for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]) && item_code == 0; k++)
            if (strcmp(items[i].name, codes[k].name) == 0)
                item_code = codes[k].code;
        if (item_code == 0) {
            n = -1;
            break;
        }
        if (items[i].at == (unsigned long)round &&
            (strcmp(items[i].name, "fallback") == 0) == (strcmp(point, "fallback") == 0))
            code = item_code;
    }
    if (n < 0) {
        log_line(LOG_LVL_ERR,
                 "LABLOOP_PLANNER_ERROR='%s': expected WHAT:ROUND[,...], WHAT one of ERANGE EDOM "
                 "EINVAL ENOMEM fallback",
                 spec);
        _exit(2);
    }
    return code;
}
#endif

/* Which failures of planning a round fall back to the space-filling design (docs/daemon.md
 * "When the planner fails"): every failure of telling the planner the campaign's data
 * (planner_tell, planner_add_pending: a stored row it cannot use) and of planner_ask (a model
 * fit that failed, -ERANGE "no feasible candidate with a finite acquisition value", any other
 * numerical failure), except running out of memory, which the fallback would meet as well.
 * planner_new's errors are not among them: they say the campaign itself cannot be planned (an
 * acquisition that does not fit its objectives), nor are recipe errors (expand_round): both
 * are the campaign's own configuration and fail it. */
static int planner_falls_back(int code)
{
    return code < 0 && code != -ENOMEM;
}

/* One round's plan: its points and what the fit record and the events say about them. */
struct round_plan {
    int round, q;
    double *xs;                      /* q rows of n_params values */
    struct planner_point_info *info; /* q entries */
    struct planner_round_info ri;
    json_t *training;                     /* the training rows told to the planner */
    int fallback;                         /* 1: the points are the space-filling fallback's */
    char planner_error[LL_ERROR_MSG_MAX]; /* then: the planner's message */
};

/* Plans round pl->round of campaign c: pl->q points into pl->xs, per point pl->info, the
 * round's pl->ri, the training rows told into pl->training. When the planner fails in a way
 * planner_falls_back() accepts, the points are the campaign's space-filling design at the
 * indices that follow its experiments (planner_design: deterministic for the campaign's seed
 * and the index), pl->fallback is set, the planner's message is kept in pl->planner_error, and
 * pl->ri says no model was fitted. Returns 0, or a negative errno with err (the planner's error,
 * or both when the fallback failed too). */
static int plan_round(struct camp *c, json_t *exps, struct round_plan *pl, struct ll_error *err)
{
    struct planner *p = NULL;
    size_t q = (size_t)pl->q;
    pl->fallback = 0;
    int r = planner_new(&c->c, &p, err);
    if (r < 0)
        return r; /* the campaign's configuration (or out of memory): no fallback */
    r = feed_planner(c, exps, p, pl->training, err);
    if (r == 0)
        r = planner_ask(p, q, pl->xs, pl->info, &pl->ri, err);
#ifdef LL_FAILPOINTS
    int injected = injected_planner_error("ask", pl->round);
    if (injected < 0)
        r = ll_error_set(err, injected, "injected planner error (LABLOOP_PLANNER_ERROR)");
#endif
    if (!planner_falls_back(r))
        goto out;
    snprintf(pl->planner_error, sizeof(pl->planner_error), "%s", err->msg);
    double hv = pl->ri.hv;
    memset(&pl->ri, 0, sizeof(pl->ri));
    pl->ri.n_obs = planner_n_obs(p);
    pl->ri.n_pending = planner_n_pending(p);
    pl->ri.hv = hv;
    memset(pl->info, 0, q * sizeof(*pl->info));
    struct ll_error fb;
    r = planner_design(p, json_array_size(exps), q, pl->xs, &fb);
#ifdef LL_FAILPOINTS
    if (r == 0 && injected_planner_error("fallback", pl->round) < 0)
        r = ll_error_set(&fb, -ERANGE, "injected fallback error (LABLOOP_PLANNER_ERROR)");
#endif
    if (r < 0)
        ll_error_set(
            err, r, "%s; the space-filling fallback failed too: %s", pl->planner_error, fb.msg);
    else
        pl->fallback = 1;
out:
    planner_free(&p);
    return r;
}

/* The events of a round just committed: `planner.fallback` (warning) when the fallback
 * proposed it, and the round's own. first: the design index (idx) of its first experiment. */
static void round_events(
    struct engine *e, const struct camp *c, const struct round_plan *pl, size_t first, int batch)
{
    char explore[256];
    explore_note(c, &pl->ri, explore, sizeof(explore));
    if (pl->fallback)
        event(e,
              c->id,
              0,
              0,
              LOG_LVL_WARNING,
              "planner.fallback",
              "round %d: the planner failed (%s); %d experiments proposed from the space-filling "
              "design instead (design indices %zu-%zu), not from the model",
              pl->round,
              pl->planner_error,
              pl->q,
              first,
              first + (size_t)pl->q - 1);
    event(e,
          c->id,
          0,
          0,
          LOG_LVL_INFO,
          "round",
          "round %d: %d experiments proposed (%s, %zu observations, hypervolume %.4g%s)%s",
          pl->round,
          pl->q,
          pl->fallback          ? "space-filling design, planner fallback"
          : pl->ri.model_fitted ? "model"
                                : "space-filling design",
          pl->ri.n_obs,
          pl->ri.hv,
          explore,
          batch ? "; waiting for approval" : "");
}

static int propose(struct engine *e, struct camp *c, json_t *exps, int n_open, struct ll_error *err)
{
    int total = 0, n_final = 0;
    int r = store_experiment_counts(e->store, c->id, &total, &n_final, err);
    if (r < 0)
        return r;
    int done = targets_met(c, exps) || total >= c->c.budget;
    /* every new sample needs a well that holds no sample: at most as many as are free. A full
     * rack holds the campaign back before anything is written (this runs at every pass) */
    unsigned char occupied[LABCONF_MAX_WELLS];
    int n_free = done ? 0 : rack_room(e, c, occupied, err);
    if (!done && n_free <= 0)
        return n_free;
    e->dirty = 1;
    int round = 0;
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        if (jint(x, "round") + 1 > round)
            round = (int)jint(x, "round") + 1;
    }
    if (round > 0 && n_open == 0) {
        double ms = 0, lb = 0;
        char busiest[LABCONF_NAME_MAX];
        if (round_makespan(e, exps, round - 1, &ms, &lb, busiest, sizeof(busiest)) == 0)
            event(e,
                  c->id,
                  0,
                  0,
                  LOG_LVL_INFO,
                  "round",
                  "round %d finished: makespan %.1f s, lower bound %.1f s (%s), ratio %.3f",
                  round - 1,
                  ms,
                  lb,
                  busiest,
                  lb > 0 ? ms / lb : 0.0);
    }
    if (done) {
        if (n_open > 0)
            return 0; /* async: let the open experiments finish first */
        return store_campaign_set_state(e->store,
                                        c->id,
                                        STORE_CAMPAIGN_COMPLETED,
                                        total >= c->c.budget ? "budget spent" : "target reached",
                                        err);
    }
    int q = total == 0 ? c->c.initial : c->c.batch;
    if (q > c->c.budget - total)
        q = c->c.budget - total;
    if (q > CAMPAIGN_MAX_BATCH && total > 0)
        q = CAMPAIGN_MAX_BATCH;
    if (q > n_free)
        q = n_free;
    size_t np = c->c.n_params;
    struct round_plan *pl = calloc(1, sizeof(*pl));
    int *order = calloc((size_t)q + 1, sizeof(int));
    json_t *expanded = json_array();
    if (pl != NULL) {
        pl->round = round;
        pl->q = q;
        pl->xs = calloc((size_t)q * np + 1, sizeof(double));
        pl->info = calloc((size_t)q + 1, sizeof(*pl->info));
        pl->training = json_array();
    }
    if (pl == NULL || pl->xs == NULL || pl->info == NULL || order == NULL) {
        r = ll_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    r = plan_round(c, exps, pl, err);
    if (r == 0)
        r = expand_round(c, pl->xs, q, np, expanded, order, err);
    if (r < 0)
        goto out;
    json_t *fit = fit_record(c, round, &pl->ri, pl->training);
    json_t *chosen = json_array();
    json_object_set_new(fit, "chosen", chosen);
    if (pl->fallback) {
        /* the proposals did not come from the model: status lists such rounds */
        json_object_set_new(fit, "fallback", json_true());
        json_object_set_new(fit, "planner_error", json_string(pl->planner_error));
    }
    const char *approval = recipe_approval(c->r);
    int batch = strcmp(approval, "batch") == 0;
    r = store_begin(e->store, err);
    for (int o = 0; o < q && r == 0; o++) {
        int k = order[o];
        json_t *params = json_object();
        for (size_t d = 0; d < np; d++)
            json_object_set_new(params, c->c.params[d].name, json_real(pl->xs[(size_t)k * np + d]));
        int64_t exp_id = 0;
        /* idx counts every experiment of the campaign, denied ones too */
        r = experiment_create(e,
                              c,
                              (int)json_array_size(exps) + o,
                              round,
                              occupied,
                              params,
                              pl->info[k].acquisition,
                              &exp_id,
                              err);
        json_array_append_new(chosen,
                              chosen_entry(c, &pl->ri, exp_id, params, &pl->info[k], pl->fallback));
        json_decref(params);
        if (r == 0)
            r = create_steps(e, exp_id, json_array_get(expanded, (size_t)k), err);
        if (r == 0)
            r = store_experiment_set_state(e->store,
                                           exp_id,
                                           batch ? STORE_EXP_AWAITING_APPROVAL : STORE_EXP_QUEUED,
                                           NULL,
                                           err);
    }
    if (r == 0)
        r = store_model_fit_put(e->store, c->id, round, fit, err);
    if (r == 0 && batch)
        r = store_approval_put(e->store, c->id, round, "pending", NULL, err);
    LL_FAILPOINT("round_write"); /* the round's rows written, not committed */
    if (r == 0)
        r = store_commit(e->store, err);
    else
        store_rollback(e->store);
    json_decref(fit);
    if (r == 0)
        round_events(e, c, pl, json_array_size(exps), batch);
out:
    if (pl != NULL) {
        free(pl->xs);
        free(pl->info);
        json_decref(pl->training);
    }
    free(pl);
    free(order);
    json_decref(expanded);
    return r;
}

static int camp_tick(struct engine *e,
                     struct camp *c,
                     char occ[][LABCONF_NAME_MAX],
                     int64_t *who,
                     int *n_occ,
                     int dispatch,
                     struct ll_error *err)
{
    int cstate = store_campaign_get_state(e->store, c->id, err);
    if (cstate < 0)
        return cstate;
    if (cstate >= STORE_CAMPAIGN_COMPLETED) {
        camp_unload(e, c->id);
        return 0;
    }
    json_t *exps = store_experiments_json(e->store, c->id, err);
    json_t *steps = exps != NULL ? store_steps_json(e->store, c->id, 0, err) : NULL;
    if (steps == NULL) {
        json_decref(exps);
        return err->code ? err->code : -EIO;
    }
    int n_open = 0, bottleneck_pending = 0;
    size_t i;
    json_t *x;
    struct exp_view *v = malloc(sizeof(*v));
    json_array_foreach(exps, i, x)
    {
        int s = store_experiment_state_from_name(jstr(x, "state"));
        if (s >= STORE_EXP_MEASURED)
            continue;
        n_open++;
        exp_view_build(v, x, steps);
        for (int k = 0; k < v->n_steps; k++)
            if (strcmp(jstr(v->steps[k], "state"), "pending") == 0 &&
                strcmp(jstr(v->steps[k], "instrument"), c->bottleneck) == 0)
                bottleneck_pending = 1;
        if (!dispatch) {
            occupy(v, occ, who, n_occ);
            continue;
        }
        exp_settle(e, c, v);
        if (cstate != STORE_CAMPAIGN_RUNNING || e->estop || e->trouble_since != 0 ||
            (v->state != STORE_EXP_QUEUED && v->state != STORE_EXP_RUNNING))
            continue;
        /* the next step of this sample, if every earlier one is done */
        for (int k = 0; k < v->n_steps; k++) {
            json_t *st = v->steps[k];
            int ss = store_step_state_from_name(jstr(st, "state"));
            if (ss == STORE_STEP_DONE || ss == STORE_STEP_SKIPPED ||
                (v->failed && ss == STORE_STEP_FAILED))
                continue;
            if (ss != STORE_STEP_PENDING)
                break;
            if (v->failed && jint(st, "idx") < CLEANUP_IDX_BASE)
                continue; /* about to be skipped; only the clean-up move runs */
            const char *action = jstr(st, "action");
            const char *instrument = jstr(st, "instrument");
            int fi = -1; /* a furnace the move takes the sample into */
            if (strcmp(action, "measure") == 0) {
                if (e->ing == NULL || station_busy(e, instrument) ||
                    !ingest_station_online(e->ing, instrument))
                    break;
            } else {
                /* a move that takes the sample into a furnace for its anneal: not while the
                 * furnace runs a step, nor while it is hotter than that anneal's setpoint +
                 * tolerance. Asked before the robot and the place are free, so that the
                 * furnace is read while the previous sample is taken out */
                if (strcmp(action, "move") == 0 && k + 1 < v->n_steps)
                    fi = furnace_of(e, v->steps[k + 1]);
                if (fi >= 0 && (e->instrs[fi].busy_step != 0 || e->instrs[fi].resetting ||
                                !furnace_may_take(e, fi, st, v->steps[k + 1], ll_monotonic_ms())))
                    break;
                int in = instr_index(e, instrument);
                if (in >= 0 && (e->instrs[in].busy_step != 0 || e->instrs[in].resetting))
                    break;
                if (strcmp(action, "move") == 0 &&
                    place_taken(occ, who, *n_occ, jstr(json_object_get(st, "params"), "to"), v->id))
                    break;
            }
            int started = start_step(e, st, v->state) == 0;
            if (started && fi >= 0)
                furnace_loading(e, fi, jint(st, "id"));
            if (started && strcmp(action, "move") == 0 && *n_occ < 64) {
                snprintf(
                    occ[*n_occ], LABCONF_NAME_MAX, "%s", jstr(json_object_get(st, "params"), "to"));
                who[(*n_occ)++] = v->id;
            }
            break;
        }
    }
    free(v);
    int r = 0;
    /* sync: the next batch when this one has ended; async: as soon as the bottleneck
     * instrument has nothing left to do for the open experiments (at most two batches open) */
    int want =
        n_open == 0 || (recipe_async(c->r) && !bottleneck_pending && n_open < 2 * c->c.batch);
    if (dispatch && want && cstate == STORE_CAMPAIGN_RUNNING && !e->estop &&
        e->trouble_since == 0) {
        r = propose(e, c, exps, n_open, err);
        if (r < 0 && store_write_error(e->store, NULL) != NULL) {
            /* the store, not the planner: the round is proposed again once it works */
            log_line(
                LOG_LVL_ERR, "campaign=%lld: round not stored: %s", (long long)c->id, err->msg);
            r = 0;
        } else if (r < 0) {
            char why[LL_ERROR_MSG_MAX];
            snprintf(why, sizeof(why), "planner: %s", err->msg);
            struct ll_error e2;
            store_campaign_set_state(e->store, c->id, STORE_CAMPAIGN_FAILED, why, &e2);
            event(e, c->id, 0, 0, LOG_LVL_ERR, "campaign", "failed: %s", why);
        }
    }
    json_decref(steps);
    json_decref(exps);
    return r;
}

/* Sends (or re-sends, same request id) a flight's measure request; a station that is not
 * connected yet is tried again every second. */
static void send_measure(struct engine *e, struct flight *f, int64_t now)
{
    struct ll_error err;
    ll_error_clear(&err);
    if (e->ing != NULL &&
        ingest_send_measure(
            e->ing, f->station, f->request, f->exp_id, f->sample, f->kind, f->protocol, &err) ==
            0) {
        f->sent = 1;
        return;
    }
    f->sent = 0;
    f->next_at = now + 1000;
    log_line(LOG_LVL_WARNING,
             "step=%lld: measure %s not sent: %s (retrying)",
             (long long)f->step_id,
             f->request,
             err.msg);
}

/* Follows storage trouble: logs it once when it begins and holds the campaigns until
 * store_probe_write passes (tried once a second; a small write may succeed while a measurement
 * would not, so only the probe ends the trouble), then writes an event. */
static void store_watch(struct engine *e, int64_t now)
{
    int64_t since = 0;
    const char *werr = store_write_error(e->store, &since);
    if (e->trouble_since != 0) {
        werr = e->trouble_msg;
        if (now - e->last_probe_ms >= 1000) {
            struct ll_error err;
            e->last_probe_ms = now;
            if (store_probe_write(e->store, &err) == 0)
                werr = NULL;
        }
    }
    int64_t alarm_ms = e->opt.store_alarm_ms > 0 ? e->opt.store_alarm_ms : 30000;
    if (werr != NULL && e->trouble_since != 0 && !e->trouble_alarm &&
        now - e->trouble_since >= alarm_ms) {
        e->trouble_alarm = 1;
        e->dirty = 1;
        log_line(LOG_LVL_CRIT,
                 "store: ALARM: writes have failed for %.0f s (%s): no step starts and stations "
                 "are not acked until they work again; free disk space, or find what holds the "
                 "database (`labloop doctor`)",
                 (double)(now - e->trouble_since) / 1000.0,
                 e->trouble_msg);
    }
    if (werr != NULL && e->trouble_since == 0) {
        e->trouble_since = since;
        snprintf(e->trouble_msg, sizeof(e->trouble_msg), "%s", werr);
        e->dirty = 1;
        log_line(LOG_LVL_ERR,
                 "store: writes fail (%s): no new step starts and no round is proposed until "
                 "they work again; stations keep what is not acked",
                 werr);
    } else if (werr == NULL && e->trouble_since != 0) {
        event(e,
              0,
              0,
              0,
              e->trouble_alarm ? LOG_LVL_ERR : LOG_LVL_WARNING,
              "store",
              "writes failed for %.0f s (%s)%s; working again",
              (double)(now - e->trouble_since) / 1000.0,
              e->trouble_msg,
              e->trouble_alarm ? ", past the alarm limit" : "");
        e->trouble_since = 0;
        e->trouble_alarm = 0;
        e->dirty = 1;
    }
}

int engine_tick(struct engine *e, struct ll_error *reterr)
{
    int64_t now = ll_monotonic_ms();
    store_watch(e, now);
    /* timers of the flights */
    for (int i = 0; i < MAX_FLIGHTS; i++) {
        struct flight *f = &e->flights[i];
        if (!f->used)
            continue;
        int s = store_step_get_state(e->store, f->step_id, NULL);
        if (s < 0)
            continue; /* the store cannot be read just now: keep the flight as it is */
        if (s != STORE_STEP_STARTED) {
            /* settled elsewhere (a measurement, or the operator) */
            if (f->phase != PH_WAIT)
                flight_drop(e, f);
            continue;
        }
        if (f->phase == PH_SETTLE_AT) {
            if (now >= f->next_at)
                flight_finish(
                    e, f, f->settle_to, f->settle_result[0] != '\0' ? f->settle_result : NULL);
            continue;
        }
        if (f->phase == PH_POLL_AT && now >= f->next_at)
            submit(e, f, DRV_REQ_POLL);
        else if (f->phase == PH_QUERY_AT && now >= f->next_at)
            submit(e, f, DRV_REQ_QUERY);
        else if (f->phase == PH_MEASURE && !f->sent && now >= f->next_at)
            send_measure(e, f, now);
        if (now >= f->deadline_at) {
            f->misses++;
            e->missed_deadlines++;
            f->deadline_at = now + f->deadline_ms;
            event(e,
                  f->campaign_id,
                  f->exp_id,
                  f->step_id,
                  LOG_LVL_WARNING,
                  "deadline",
                  "step missed its deadline (%lld ms) %d time(s)",
                  (long long)f->deadline_ms,
                  f->misses);
            if (f->phase == PH_MEASURE) {
                if (f->misses >= MEASURE_MAX_MISSES) {
                    flight_finish(e, f, STORE_STEP_FAILED, "no measurement from the station");
                    continue;
                }
                send_measure(e, f, now);
            }
        }
    }
    /* a furnace too hot for the next sample: its next reading is due (the pass asks for it,
     * if the sample may still go in: not while paused or stopped) */
    for (int i = 0; i < e->n_instrs; i++) {
        struct cool_wait *cw = &e->instrs[i].cool;
        if (cw->move_step != 0 && !cw->reading && cw->next_at != 0 && now >= cw->next_at) {
            cw->next_at = 0;
            e->dirty = 1;
        }
    }
    /* the full pass reads the store: only when something changed, or once a second (a
     * station coming online, a step the operator resolved from another path) */
    if (!e->dirty && now - e->last_pass_ms < 1000)
        return 0;
    e->dirty = 0;
    e->last_pass_ms = now;
    e->passes++;
    /* occupancy across every campaign first, then settle and dispatch */
    char occ[64][LABCONF_NAME_MAX];
    int64_t who[64];
    int n_occ = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = e->n_camps - 1; i >= 0; i--) {
            int r = camp_tick(e, &e->camps[i], occ, who, &n_occ, pass, reterr);
            if (r < 0)
                return r;
        }
    return 0;
}

/* --- recovery ------------------------------------------------------------------------------ */

/* A campaign found paused by an instrument fault (its stored reason) keeps saying so in
 * status and STATUS= after a restart. */
static void fault_restore(struct engine *e, json_t *stored)
{
    struct camp *c = camp_get(e, jint(stored, "id"));
    const char *reason = jstr(stored, "reason");
    size_t np = strlen(FAULT_REASON_PREFIX);
    if (c == NULL || strcmp(jstr(stored, "state"), "paused") != 0 ||
        strncmp(reason, FAULT_REASON_PREFIX, np) != 0)
        return;
    const char *colon = strchr(reason + np, ':');
    int len = colon != NULL ? (int)(colon - reason - (ptrdiff_t)np) : 0;
    snprintf(c->fault_instr, sizeof(c->fault_instr), "%.*s", len, reason + np);
    int fi = instr_index(e, c->fault_instr);
    if (fi >= 0 && colon != NULL)
        snprintf(e->instrs[fi].fault, sizeof(e->instrs[fi].fault), "%s", colon + 2);
}

int engine_recover(struct engine *e, struct ll_error *reterr)
{
    e->dirty = 1;
    json_t *camps = store_campaigns_json(e->store, 0, reterr);
    if (camps == NULL)
        return reterr->code ? reterr->code : -EIO;
    size_t i;
    json_t *c;
    json_array_foreach(camps, i, c)
    {
        struct ll_error err;
        ll_error_clear(&err);
        char source[96];
        snprintf(source, sizeof(source), "campaign %lld", (long long)jint(c, "id"));
        if (camp_load(e, jint(c, "id"), jstr(c, "file_text"), source, &err) < 0) {
            struct ll_error e2;
            store_campaign_set_state(e->store, jint(c, "id"), STORE_CAMPAIGN_FAILED, err.msg, &e2);
            log_line(LOG_LVL_ERR,
                     "campaign=%lld cannot be resumed: %s",
                     (long long)jint(c, "id"),
                     err.msg);
            continue;
        }
        event(e,
              jint(c, "id"),
              0,
              0,
              LOG_LVL_INFO,
              "recovery",
              "resuming campaign '%s' (%s)",
              jstr(c, "name"),
              jstr(c, "state"));
        fault_restore(e, c);
        LL_FAILPOINT("recovery"); /* dying while recovering: the next start recovers again */
        json_t *steps = store_steps_json(e->store, jint(c, "id"), 0, reterr);
        size_t k;
        json_t *st;
        json_array_foreach(steps, k, st)
        {
            if (strcmp(jstr(st, "state"), "started") != 0)
                continue;
            struct flight *f = flight_new(e);
            if (f == NULL)
                break;
            f->step_id = jint(st, "id");
            f->exp_id = jint(st, "experiment_id");
            f->campaign_id = jint(st, "campaign_id");
            f->deadline_ms = deadline_ms_of(e, jint(st, "expected_ms"));
            f->deadline_at = ll_monotonic_ms() + f->deadline_ms;
            f->recovering = 1;
            snprintf(f->sample, sizeof(f->sample), "%s", jstr(st, "sample"));
            if (strcmp(jstr(st, "action"), "measure") == 0) {
                snprintf(f->station, sizeof(f->station), "%s", jstr(st, "instrument"));
                snprintf(f->request, sizeof(f->request), "%s", jstr(st, "request"));
                snprintf(
                    f->kind, sizeof(f->kind), "%s", jstr(json_object_get(st, "params"), "kind"));
                f->protocol =
                    json_incref(json_object_get(json_object_get(st, "params"), "protocol"));
                f->phase = PH_MEASURE;
                /* stations answer a repeated request from their store: re-send at once */
                f->next_at = ll_monotonic_ms();
                f->sent = 0;
                log_line(LOG_LVL_INFO,
                         "recovery: step=%lld measure %s re-sent to %s",
                         (long long)f->step_id,
                         f->request,
                         f->station);
                continue;
            }
            f->instr = instr_index(e, jstr(st, "instrument"));
            struct ll_error derr;
            if (f->instr < 0 || e->instrs[f->instr].w == NULL ||
                step_to_drv(st, &f->ds, &derr) < 0) {
                flight_drop(e, f);
                step_settle(e,
                            jint(st, "id"),
                            STORE_STEP_UNKNOWN,
                            "fate unknown: the instrument is not available to ask");
                continue;
            }
            e->instrs[f->instr].busy_step = f->step_id;
            log_line(LOG_LVL_INFO,
                     "recovery: step=%lld on %s: asking the instrument whether it ran",
                     (long long)f->step_id,
                     jstr(st, "instrument"));
            submit(e, f, DRV_REQ_QUERY);
        }
        json_decref(steps);
    }
    json_decref(camps);
    return 0;
}

int engine_recovered(const struct engine *e)
{
    for (int i = 0; i < MAX_FLIGHTS; i++)
        if (e->flights[i].used && e->flights[i].recovering && e->flights[i].instr >= 0 &&
            e->flights[i].phase != PH_POLL_AT)
            return 0;
    return 1;
}

int engine_busy(const struct engine *e)
{
    return e->n_camps > 0;
}

/* --- operator commands ------------------------------------------------------------------- */

int engine_campaign_start(struct engine *e,
                          const char *text,
                          const char *source,
                          int64_t *ret_id,
                          struct ll_error *reterr)
{
    e->dirty = 1;
    struct camp probe;
    memset(&probe, 0, sizeof(probe));
    int r = campaign_load_string(text, source, &probe.c, reterr);
    if (r < 0)
        return r;
    struct recipe *rc = NULL;
    r = recipe_parse(text, source, &probe.c, &rc, reterr);
    if (r < 0)
        return r;
    const char *approval = recipe_approval(rc);
    int64_t id = 0;
    r = store_begin(e->store, reterr);
    if (r == 0)
        r = store_campaign_create(e->store, probe.c.name, text, approval, &id, reterr);
    if (r == 0)
        r = store_event(e->store, id, 0, 0, 6, "campaign", "started", reterr);
    if (r == 0)
        r = camp_load(e, id, text, source, reterr);
    if (r == 0)
        r = store_commit(e->store, reterr);
    else
        store_rollback(e->store);
    recipe_free(&rc);
    if (r < 0) {
        if (camp_get(e, id) != NULL)
            camp_unload(e, id);
        return r;
    }
    log_line(LOG_LVL_INFO,
             "campaign=%lld started name=%s budget=%d",
             (long long)id,
             probe.c.name,
             probe.c.budget);
    *ret_id = id;
    return 0;
}

static int64_t resolve_id(struct engine *e, int64_t id, struct ll_error *err)
{
    if (id > 0)
        return id;
    if (e->n_camps == 1)
        return e->camps[0].id;
    if (e->n_camps == 0)
        return ll_error_set(err, -ENOENT, "no open campaign");
    return ll_error_set(err, -EINVAL, "%d campaigns are open: give the campaign id", e->n_camps);
}

int engine_campaign_op(struct engine *e, int64_t id, const char *op, struct ll_error *reterr)
{
    e->dirty = 1;
    id = resolve_id(e, id, reterr);
    if (id < 0)
        return (int)id;
    int r = store_begin(e->store, reterr);
    if (r < 0)
        return r;
    if (strcmp(op, "pause") == 0) {
        r = store_campaign_set_state(e->store, id, STORE_CAMPAIGN_PAUSED, "operator pause", reterr);
    } else if (strcmp(op, "resume") == 0) {
        if (e->estop)
            r = store_meta_set(e->store, "estop", "0", reterr);
        if (r == 0)
            r = store_campaign_set_state(
                e->store, id, STORE_CAMPAIGN_RUNNING, "operator resume", reterr);
    } else if (strcmp(op, "abort") == 0) {
        r = store_campaign_set_state(
            e->store, id, STORE_CAMPAIGN_ABORTED, "operator abort", reterr);
        json_t *exps = r == 0 ? store_experiments_json(e->store, id, reterr) : NULL;
        size_t i;
        json_t *x;
        json_array_foreach(exps, i, x)
        {
            int s = store_experiment_state_from_name(jstr(x, "state"));
            if (r == 0 && s < STORE_EXP_MEASURED) {
                json_t *steps = store_steps_json(e->store, 0, jint(x, "id"), reterr);
                size_t k;
                json_t *st;
                json_array_foreach(steps, k, st)
                {
                    if (r == 0 && strcmp(jstr(st, "state"), "pending") == 0)
                        r = store_step_set_state(
                            e->store, jint(st, "id"), STORE_STEP_SKIPPED, 0, NULL, reterr);
                }
                json_decref(steps);
                if (r == 0)
                    r = store_experiment_set_state(
                        e->store, jint(x, "id"), STORE_EXP_ABANDONED, "campaign aborted", reterr);
            }
        }
        json_decref(exps);
    } else {
        r = ll_error_set(reterr, -EINVAL, "unknown campaign operation '%s'", op);
    }
    if (r == 0)
        r = store_commit(e->store, reterr);
    else
        store_rollback(e->store);
    if (r == 0 && strcmp(op, "resume") == 0) {
        e->estop = 0;
        /* the operator says the instrument is fixed: if it is not, its next step fails (or
         * the furnace reads too hot at its door) and the campaign pauses again */
        struct camp *c = camp_get(e, id);
        if (c != NULL)
            c->fault_instr[0] = '\0';
        for (int i = 0; i < e->n_instrs; i++) {
            e->instrs[i].fault[0] = '\0';
            e->instrs[i].cool.faulted = 0;
        }
    }
    if (r == 0)
        log_line(LOG_LVL_NOTICE, "campaign=%lld %s", (long long)id, op);
    return r;
}

int engine_approve(struct engine *e, int64_t id, int approve, struct ll_error *reterr)
{
    e->dirty = 1;
    id = resolve_id(e, id, reterr);
    if (id < 0)
        return (int)id;
    int round = store_approval_pending(e->store, id, reterr);
    if (round < 0)
        return ll_error_set(
            reterr, -ENOENT, "campaign %lld has no batch waiting for approval", (long long)id);
    json_t *exps = store_experiments_json(e->store, id, reterr);
    int r = exps != NULL ? store_begin(e->store, reterr) : -EIO;
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        if (r == 0 && jint(x, "round") == round &&
            strcmp(jstr(x, "state"), "awaiting_approval") == 0) {
            if (approve) {
                r = store_experiment_set_state(
                    e->store, jint(x, "id"), STORE_EXP_QUEUED, NULL, reterr);
            } else {
                json_t *steps = store_steps_json(e->store, 0, jint(x, "id"), reterr);
                size_t k;
                json_t *st;
                json_array_foreach(steps, k, st)
                {
                    if (r == 0)
                        r = store_step_set_state(
                            e->store, jint(st, "id"), STORE_STEP_SKIPPED, 0, NULL, reterr);
                }
                json_decref(steps);
                if (r == 0)
                    r = store_experiment_set_state(
                        e->store, jint(x, "id"), STORE_EXP_ABANDONED, "denied by operator", reterr);
            }
        }
    }
    if (r == 0)
        r = store_approval_put(e->store, id, round, approve ? "approved" : "denied", NULL, reterr);
    if (r == 0)
        r = store_event(
            e->store, id, 0, 0, 5, "approval", approve ? "batch approved" : "batch denied", reterr);
    if (r == 0)
        r = store_commit(e->store, reterr);
    else
        store_rollback(e->store);
    json_decref(exps);
    return r;
}

int engine_instrument_op(struct engine *e,
                         const char *name,
                         const char *op,
                         struct ll_error *reterr)
{
    int is_reset = op != NULL && strcmp(op, "reset") == 0;
    if (op == NULL || (!is_reset && strcmp(op, "safe") != 0))
        return ll_error_set(reterr, -EINVAL, "instrument: op must be \"reset\" or \"safe\"");
    int fi = name != NULL ? instr_index(e, name) : -1;
    if (fi < 0) {
        char names[LABCONF_MAX_INSTRUMENTS * (LABCONF_NAME_MAX + 2)] = "";
        for (int i = 0; i < e->n_instrs; i++) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", e->instrs[i].name);
        }
        return ll_error_set(reterr,
                            -ENOENT,
                            "no instrument '%.*s' in labloopd's lab (%s)",
                            name != NULL ? (int)ll_utf8_cut(name, 64) : 0,
                            name != NULL ? name : "",
                            names);
    }
    struct instr *in = &e->instrs[fi];
    if (in->w == NULL)
        return ll_error_set(
            reterr, -ENODEV, "labloopd drives no instruments (no worker for %s)", in->name);
    if (is_reset) {
        if (in->resetting)
            return ll_error_set(reterr,
                                -EALREADY,
                                "a reset of %s is already under way; wait for its event",
                                in->name);
        for (int k = 0; k < MAX_FLIGHTS; k++) {
            const struct flight *f = &e->flights[k];
            if (f->used && f->instr == fi)
                return ll_error_set(reterr,
                                    -EBUSY,
                                    "%s has step %lld (%s, experiment %lld) in flight: a reset "
                                    "under a step is unsafe; pause the campaign, wait until "
                                    "`labloop status` shows no step of %s in flight, then reset",
                                    in->name,
                                    (long long)f->step_id,
                                    f->kind,
                                    (long long)f->exp_id,
                                    in->name);
        }
        if (in->busy_step != 0)
            return ll_error_set(reterr,
                                -EBUSY,
                                "%s runs step %lld: a reset under a step is unsafe",
                                in->name,
                                (long long)in->busy_step);
    }
    struct drv_request req = {.op = is_reset ? DRV_REQ_CLEAR : DRV_REQ_SAFE, .cookie = OPERATOR_OP};
    int r = worker_submit(e, fi, &req, reterr);
    if (r < 0)
        return r;
    if (is_reset)
        in->resetting = 1;
    log_line(LOG_LVL_NOTICE,
             "instrument %s: %s requested by the operator",
             in->name,
             is_reset ? "reset (clear a latched fault)" : "safe state");
    return 0;
}

int engine_estop(struct engine *e, struct ll_error *reterr)
{
    e->dirty = 1;
    int r = store_begin(e->store, reterr);
    if (r == 0)
        r = store_meta_set(e->store, "estop", "1", reterr);
    for (int i = 0; i < e->n_camps && r == 0; i++)
        if (store_campaign_get_state(e->store, e->camps[i].id, NULL) == STORE_CAMPAIGN_RUNNING ||
            store_campaign_get_state(e->store, e->camps[i].id, NULL) == STORE_CAMPAIGN_PAUSED)
            r = store_campaign_set_state(
                e->store, e->camps[i].id, STORE_CAMPAIGN_STOPPED, "software e-stop", reterr);
    if (r == 0)
        r = store_event(e->store,
                        0,
                        0,
                        0,
                        2,
                        "estop",
                        "software stop: safe state commanded on every instrument",
                        reterr);
    if (r == 0)
        r = store_commit(e->store, reterr);
    else
        store_rollback(e->store);
    e->estop = 1;
    LL_FAILPOINT("estop_latched"); /* latched in the store; no instrument told yet */
    /* the safe state is commanded even if the store failed */
    estop_command_safe(e, "software stop");
    return r;
}

int engine_resolve(struct engine *e, int64_t step_id, const char *answer, struct ll_error *reterr)
{
    e->dirty = 1;
    int to = strcmp(answer, "done") == 0     ? STORE_STEP_DONE
             : strcmp(answer, "failed") == 0 ? STORE_STEP_FAILED
                                             : -1;
    if (to < 0)
        return ll_error_set(
            reterr, -EINVAL, "answer 'done' (the step ran) or 'failed' (it did not)");
    if (store_step_get_state(e->store, step_id, reterr) != STORE_STEP_UNKNOWN)
        return ll_error_set(
            reterr, -EINVAL, "step %lld is not an open question", (long long)step_id);
    int r = store_begin(e->store, reterr);
    if (r == 0)
        r = store_step_set_state(e->store,
                                 step_id,
                                 to,
                                 0,
                                 to == STORE_STEP_DONE ? "operator: it ran"
                                                       : "operator: it did not run",
                                 reterr);
    if (r == 0)
        r = store_event(e->store,
                        0,
                        0,
                        step_id,
                        5,
                        "question",
                        to == STORE_STEP_DONE ? "answered: done" : "answered: failed",
                        reterr);
    if (r == 0)
        r = store_commit(e->store, reterr);
    else
        store_rollback(e->store);
    return r;
}

/* --- status and results ---------------------------------------------------------------------- */

/* How well the models predicted the lab: for every measured experiment that a model round
 * proposed, z = (measured - mean) / sqrt(sd^2 + noise_sd^2) per objective (see chosen_entry),
 * summarised as {"n", "objectives": {name: {"within_2sd", "mean_z", "rms_z"}}}, plus "error"
 * (and n = 0) if the stored predictions cannot be read. A calibrated model has about 95 % of
 * |z| <= 2, mean z near 0 (no bias) and rms z near 1. New reference. */
static json_t *
model_check_json(struct engine *e, const struct campaign *c, int64_t cid, json_t *exps)
{
    size_t m = c->n_objectives, n = 0, within[CAMPAIGN_MAX_OBJECTIVES] = {0};
    double sum[CAMPAIGN_MAX_OBJECTIVES] = {0}, sum2[CAMPAIGN_MAX_OBJECTIVES] = {0};
    struct ll_error err;
    json_t *preds = store_predictions_json(e->store, cid, -1, 0, &err);
    if (preds == NULL) /* say so instead of "no prediction yet" */
        return json_pack("{s:I,s:{},s:s}", "n", (json_int_t)0, "objectives", "error", err.msg);
    json_t *measured = json_object(); /* experiment id -> objectives, measured ones */
    char key[32];
    size_t i;
    json_t *pr, *x;
    json_array_foreach(exps, i, x)
    {
        if (strcmp(jstr(x, "state"), "measured") != 0)
            continue;
        snprintf(key, sizeof(key), "%lld", (long long)jint(x, "id"));
        json_object_set(measured, key, json_object_get(x, "objectives"));
    }
    json_array_foreach(preds, i, pr)
    {
        snprintf(key, sizeof(key), "%lld", (long long)jint(pr, "experiment"));
        json_t *exp_obj = json_object_get(measured, key);
        double z[CAMPAIGN_MAX_OBJECTIVES] = {0};
        int ok = exp_obj != NULL;
        for (size_t k = 0; k < m && ok; k++) {
            if (campaign_objective_computed(c, k))
                continue; /* known exactly: nothing to check */
            const char *name = c->objectives[k].name;
            json_t *y = json_object_get(exp_obj, name);
            ok = json_is_number(y) &&
                 prediction_z(json_object_get(json_object_get(pr, "predicted"), name),
                              json_number_value(y),
                              &z[k]) == 0;
        }
        for (size_t k = 0; k < m && ok; k++) {
            within[k] += fabs(z[k]) <= 2.0;
            sum[k] += z[k];
            sum2[k] += z[k] * z[k];
        }
        n += ok;
    }
    json_decref(preds);
    json_decref(measured);
    json_t *objs = json_object();
    for (size_t k = 0; k < m && n > 0; k++)
        if (!campaign_objective_computed(c, k))
            json_object_set_new(objs,
                                c->objectives[k].name,
                                json_pack("{s:I,s:f,s:f}",
                                          "within_2sd",
                                          (json_int_t)within[k],
                                          "mean_z",
                                          sum[k] / (double)n,
                                          "rms_z",
                                          sqrt(sum2[k] / (double)n)));
    return json_pack("{s:I,s:o}", "n", (json_int_t)n, "objectives", objs);
}

json_t *engine_pareto_json(struct engine *e, int64_t id, struct ll_error *reterr)
{
    json_t *camps = store_campaigns_json(e->store, 1, reterr);
    if (camps == NULL)
        return NULL;
    json_t *camp = NULL;
    size_t i;
    json_t *x;
    json_array_foreach(camps, i, x)
    {
        if (id == 0 || jint(x, "id") == id)
            camp = x;
    }
    if (camp == NULL) {
        json_decref(camps);
        ll_error_set(reterr, -ENOENT, "no such campaign");
        return NULL;
    }
    struct campaign c;
    if (campaign_load_string(jstr(camp, "file_text"), "campaign", &c, reterr) < 0) {
        json_decref(camps);
        return NULL;
    }
    int64_t cid = jint(camp, "id");
    json_t *exps = store_experiments_json(e->store, cid, reterr);
    size_t m = c.n_objectives, n = 0;
    double *pts = calloc(json_array_size(exps) * m + 1, sizeof(double));
    json_t **rows = calloc(json_array_size(exps) + 1, sizeof(json_t *));
    json_array_foreach(exps, i, x)
    {
        if (strcmp(jstr(x, "state"), "measured") != 0)
            continue;
        for (size_t k = 0; k < m; k++) {
            double v = json_number_value(
                json_object_get(json_object_get(x, "objectives"), c.objectives[k].name));
            pts[n * m + k] = c.objectives[k].maximise ? -v : v;
        }
        rows[n++] = x;
    }
    json_t *front = json_array();
    double *fpts = calloc(n * m + 1, sizeof(double));
    size_t nf = 0;
    for (size_t a = 0; a < n; a++) {
        int dominated = 0;
        for (size_t b = 0; b < n && !dominated; b++) {
            if (a == b)
                continue;
            int all_le = 1, one_lt = 0;
            for (size_t k = 0; k < m; k++) {
                if (pts[b * m + k] > pts[a * m + k])
                    all_le = 0;
                if (pts[b * m + k] < pts[a * m + k])
                    one_lt = 1;
            }
            dominated = all_le && one_lt;
        }
        if (!dominated) {
            json_array_append(front, rows[a]);
            memcpy(&fpts[nf * m], &pts[a * m], m * sizeof(double));
            nf++;
        }
    }
    double ref[CAMPAIGN_MAX_OBJECTIVES];
    json_t *objs = json_array();
    for (size_t k = 0; k < m; k++) {
        ref[k] = c.objectives[k].maximise ? -c.objectives[k].ref : c.objectives[k].ref;
        json_array_append_new(objs,
                              json_pack("{s:s,s:s,s:f}",
                                        "name",
                                        c.objectives[k].name,
                                        "goal",
                                        c.objectives[k].maximise ? "max" : "min",
                                        "ref",
                                        c.objectives[k].ref));
    }
    double hv = nf > 0 ? hv_compute(fpts, nf, m, ref) : 0.0;
    json_t *out = json_pack("{s:I,s:s,s:s,s:o,s:o,s:f,s:I,s:I}",
                            "campaign",
                            (json_int_t)cid,
                            "name",
                            jstr(camp, "name"),
                            "state",
                            jstr(camp, "state"),
                            "objectives",
                            objs,
                            "front",
                            front,
                            "hypervolume",
                            isfinite(hv) ? hv : 0.0,
                            "n_measured",
                            (json_int_t)n,
                            "n_experiments",
                            (json_int_t)json_array_size(exps));
    json_object_set_new(out, "model_check", model_check_json(e, &c, cid, exps));
    free(pts);
    free(fpts);
    free(rows);
    json_decref(exps);
    json_decref(camps);
    return out;
}

/* One campaign's entry in the status: experiment counts by state, rounds with their makespan
 * against the lower bound, the whole campaign's, a pending approval. */
static json_t *campaign_status_json(struct engine *e, json_t *c)
{
    int64_t cid = jint(c, "id");
    json_t *exps = store_experiments_json(e->store, cid, NULL);
    json_t *counts = json_object();
    int max_round = -1;
    size_t k;
    json_t *x;
    json_array_foreach(exps, k, x)
    {
        const char *s = jstr(x, "state");
        json_object_set_new(
            counts, s, json_integer(json_integer_value(json_object_get(counts, s)) + 1));
        if (jint(x, "round") > max_round)
            max_round = (int)jint(x, "round");
    }
    json_t *rounds = json_array();
    for (int rd = 0; rd <= max_round; rd++) {
        double ms = 0, lb = 0;
        char busiest[LABCONF_NAME_MAX];
        if (round_makespan(e, exps, rd, &ms, &lb, busiest, sizeof(busiest)) == 0)
            json_array_append_new(rounds,
                                  json_pack("{s:i,s:f,s:f,s:s,s:f}",
                                            "round",
                                            rd,
                                            "makespan_s",
                                            ms,
                                            "lower_bound_s",
                                            lb,
                                            "busiest",
                                            busiest,
                                            "ratio",
                                            lb > 0 ? ms / lb : 0.0));
    }
    double all_ms = 0, all_lb = 0;
    char all_busiest[LABCONF_NAME_MAX] = "";
    json_t *whole = json_null();
    if (round_makespan(e, exps, -1, &all_ms, &all_lb, all_busiest, sizeof(all_busiest)) == 0)
        whole = json_pack("{s:f,s:f,s:s,s:f}",
                          "makespan_s",
                          all_ms,
                          "lower_bound_s",
                          all_lb,
                          "busiest",
                          all_busiest,
                          "ratio",
                          all_lb > 0 ? all_ms / all_lb : 0.0);
    int pending = store_approval_pending(e->store, cid, NULL);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:o,s:I,s:o}",
                          "id",
                          (json_int_t)cid,
                          "name",
                          jstr(c, "name"),
                          "state",
                          jstr(c, "state"),
                          "approval",
                          jstr(c, "approval"),
                          "experiments",
                          counts,
                          "n_experiments",
                          (json_int_t)json_array_size(exps),
                          "rounds",
                          rounds);
    json_object_set(o, "reason", json_object_get(c, "reason"));
    json_object_set_new(o, "whole", whole);
    /* rounds proposed by the space-filling fallback because the planner failed */
    json_t *fallback = store_fallback_rounds_json(e->store, cid, NULL);
    json_object_set_new(o, "planner_fallback_rounds", fallback != NULL ? fallback : json_array());
    if (pending >= 0)
        json_object_set_new(o, "approval_pending_round", json_integer(pending));
    json_decref(exps);
    return o;
}

/* The Modbus RTU lines (docs/daemon.md "Status"): device, instruments, share of time the
 * line carried frames since labloopd started, and how long transactions waited for it. */
static json_t *lines_json(struct engine *e)
{
    json_t *arr = json_array();
    for (int k = 0; k < e->n_lines; k++) {
        struct drv_bus_stats st;
        json_t *names = json_array();
        drv_bus_stats(e->lines[k], &st);
        for (int i = 0; i < e->opt.lab->n_instruments; i++) {
            const struct labconf_instrument *in = &e->opt.lab->instruments[i];
            if (in->driver == LABCONF_DRIVER_FURNACE_MODBUS_RTU &&
                strcmp(in->device, drv_bus_device(e->lines[k])) == 0)
                json_array_append_new(names, json_string(in->name));
        }
        double pct = st.elapsed_us > 0 ? 100.0 * (double)st.line_us / (double)st.elapsed_us : 0.0;
        json_array_append_new(arr,
                              json_pack("{s:s,s:o,s:I,s:f,s:f,s:f,s:f}",
                                        "device",
                                        drv_bus_device(e->lines[k]),
                                        "instruments",
                                        names,
                                        "transactions",
                                        (json_int_t)st.transactions,
                                        "busy_pct",
                                        pct,
                                        "command_wait_max_ms",
                                        (double)st.call_wait_max_us[DRV_BUS_COMMAND] / 1000.0,
                                        "command_wait_mean_ms",
                                        st.calls[DRV_BUS_COMMAND] > 0
                                            ? (double)st.call_wait_total_us[DRV_BUS_COMMAND] /
                                                  1000.0 / (double)st.calls[DRV_BUS_COMMAND]
                                            : 0.0,
                                        "poll_wait_max_ms",
                                        (double)st.wait_max_us[DRV_BUS_POLL] / 1000.0));
    }
    return arr;
}

json_t *engine_status_json(struct engine *e, struct ll_error *reterr)
{
    json_t *out = json_object();
    json_t *camps = store_campaigns_json(e->store, 1, reterr);
    json_t *list = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(camps, i, c)
    {
        json_array_append_new(list, campaign_status_json(e, c));
    }
    json_decref(camps);
    json_object_set_new(out, "campaigns", list);
    json_object_set_new(out, "estop", json_boolean(e->estop));
    json_object_set_new(out,
                        "store_error",
                        e->trouble_since == 0
                            ? json_null()
                            : json_pack("{s:s,s:f,s:b}",
                                        "message",
                                        e->trouble_msg,
                                        "for_s",
                                        (double)(ll_monotonic_ms() - e->trouble_since) / 1000.0,
                                        "alarm",
                                        e->trouble_alarm));
    json_t *q = store_questions_json(e->store, NULL);
    json_object_set_new(out, "questions", q != NULL ? q : json_array());
    json_t *fl = json_array();
    int64_t now = ll_monotonic_ms();
    for (int k = 0; k < MAX_FLIGHTS; k++) {
        struct flight *f = &e->flights[k];
        if (!f->used)
            continue;
        json_array_append_new(fl,
                              json_pack("{s:I,s:I,s:s,s:s,s:b,s:i}",
                                        "step",
                                        (json_int_t)f->step_id,
                                        "experiment",
                                        (json_int_t)f->exp_id,
                                        "instrument",
                                        f->instr >= 0 ? e->instrs[f->instr].name : f->station,
                                        "sample",
                                        f->sample,
                                        "overdue",
                                        f->misses > 0,
                                        "deadline_misses",
                                        f->misses > 0 ? f->misses : 0));
        (void)now;
    }
    json_object_set_new(out, "in_flight", fl);
    json_object_set_new(out, "missed_deadlines", json_integer(e->missed_deadlines));
    json_t *ins = json_array();
    for (int k = 0; k < e->n_instrs; k++) {
        json_t *o = json_pack("{s:s,s:I}",
                              "name",
                              e->instrs[k].name,
                              "busy_step",
                              (json_int_t)e->instrs[k].busy_step);
        /* the fault that made it unusable, until a resume (docs/daemon.md) */
        if (e->instrs[k].fault[0] != '\0')
            json_object_set_new(o, "fault", json_string(e->instrs[k].fault));
        /* a sample waiting for this furnace to cool */
        const struct cool_wait *cw = &e->instrs[k].cool;
        if (cool_active(e, k))
            json_object_set_new(o,
                                "cooling",
                                json_pack("{s:I,s:I,s:f,s:f,s:o,s:f,s:b}",
                                          "experiment",
                                          (json_int_t)cw->exp_id,
                                          "move_step",
                                          (json_int_t)cw->move_step,
                                          "setpoint_c",
                                          cw->setpoint_c,
                                          "limit_c",
                                          cw->setpoint_c + e->instrs[k].load_tolerance_c,
                                          "pv_c",
                                          isfinite(cw->pv_c) ? json_real(cw->pv_c) : json_null(),
                                          "waited_min",
                                          lab_minutes(e, now - cw->since),
                                          "overdue",
                                          cw->warned));
        json_array_append_new(ins, o);
    }
    json_object_set_new(out, "instruments", ins);
    json_object_set_new(out, "lines", lines_json(e));
    json_t *rack = engine_rack_json(e, NULL);
    if (rack != NULL)
        json_object_set_new(out, "rack", rack);
    json_object_set_new(
        out, "stations", e->ing != NULL ? ingest_stations_json(e->ing) : json_array());
    json_object_set_new(
        out,
        "handshakes_refused",
        json_integer(e->ing != NULL ? (json_int_t)ingest_handshakes_refused(e->ing) : 0));
    int64_t stored = 0, rejected = 0;
    store_measurement_counts(e->store, &stored, &rejected, NULL);
    json_object_set_new(
        out,
        "measurements",
        json_pack("{s:I,s:I}", "stored", (json_int_t)stored, "rejected", (json_int_t)rejected));
    json_t *ev = store_events_json(e->store, 0, 10, NULL);
    json_object_set_new(out, "recent_events", ev != NULL ? ev : json_array());
    return out;
}

json_t *engine_rack_json(struct engine *e, struct ll_error *reterr)
{
    unsigned char occupied[LABCONF_MAX_WELLS];
    int n = store_rack_occupied(e->store, e->n_wells, occupied, reterr);
    if (n < 0)
        return NULL;
    json_t *wells = json_array();
    for (int w = 0; w < e->n_wells; w++)
        if (occupied[w])
            json_array_append_new(wells, json_integer(w));
    return json_pack("{s:i,s:i,s:i,s:b,s:o,s:s*}",
                     "wells",
                     e->n_wells,
                     "occupied",
                     n,
                     "free",
                     e->n_wells - n,
                     "full",
                     e->rack_full,
                     "occupied_wells",
                     wells,
                     "message",
                     e->rack_full ? "rack full: unload the rack and run `labloop rack unloaded`"
                                  : NULL);
}

int engine_rack_unloaded(struct engine *e, int *ret_n, struct ll_error *reterr)
{
    unsigned char occupied[LABCONF_MAX_WELLS];
    int n = 0;
    e->dirty = 1;
    int r = store_begin(e->store, reterr);
    if (r == 0)
        r = store_rack_unload(e->store, &n, reterr);
    if (r == 0)
        r = store_meta_set(e->store, "rack_full", "0", reterr);
    int n_occ = r == 0 ? store_rack_occupied(e->store, e->n_wells, occupied, reterr) : r;
    if (n_occ < 0)
        r = n_occ;
    char msg[256];
    snprintf(msg,
             sizeof(msg),
             "rack unloaded: %d samples taken out; %d of %d wells free (%d hold samples still in "
             "progress)",
             n,
             e->n_wells - (n_occ > 0 ? n_occ : 0),
             e->n_wells,
             n_occ > 0 ? n_occ : 0);
    if (r == 0)
        r = store_event(e->store, 0, 0, 0, LOG_LVL_INFO, "rack", msg, reterr);
    if (r == 0)
        r = store_commit(e->store, reterr);
    else
        store_rollback(e->store);
    if (r < 0)
        return r;
    log_line(LOG_LVL_INFO, "rack %s", msg);
    e->rack_full = 0;
    *ret_n = n;
    return 0;
}

void engine_summary(struct engine *e, char *buf, size_t n)
{
    int total = 0, fin = 0;
    const char *trouble = e->trouble_since == 0 ? ""
                          : e->trouble_alarm    ? "ALARM: STORE WRITES FAILING, steps held; "
                                                : "STORE WRITES FAILING, steps held; ";
    if (e->n_camps == 0) {
        snprintf(buf, n, "%s%sidle: no open campaign", e->estop ? "E-STOP latched; " : "", trouble);
        return;
    }
    store_experiment_counts(e->store, e->camps[0].id, &total, &fin, NULL);
    char state[LABCONF_NAME_MAX + 96] = "";
    if (e->camps[0].fault_instr[0] != '\0')
        snprintf(state,
                 sizeof(state),
                 " PAUSED by a fault of %s (fix it, then `labloop campaign resume`)",
                 e->camps[0].fault_instr);
    else if (store_campaign_get_state(e->store, e->camps[0].id, NULL) == STORE_CAMPAIGN_PAUSED)
        snprintf(state, sizeof(state), " paused");
    int cooling = 0;
    for (int i = 0; i < e->n_instrs; i++)
        cooling |= cool_active(e, i);
    snprintf(buf,
             n,
             "%s%scampaign %lld '%s'%s: %d/%d experiments ended, %d in flight%s%s",
             e->estop ? "E-STOP latched; " : "",
             trouble,
             (long long)e->camps[0].id,
             e->camps[0].c.name,
             state,
             fin,
             e->camps[0].c.budget,
             total - fin,
             cooling ? "; waiting for the furnace to cool" : "",
             e->rack_full ? "; rack full: unload it and run `labloop rack unloaded`" : "");
}

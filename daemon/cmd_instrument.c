/* cmd_instrument — `labloop instrument`: an operator checks one instrument by hand, from
 * the lab definition, without the daemon (drivers/driver.h directly, in this process).
 *
 *   labloop instrument NAME status|describe [--lab FILE]
 *   labloop instrument NAME safe|reset [--timeout MS] [--run-dir DIR] [--direct] [--lab FILE]
 *   labloop instrument NAME query KIND ARGS --step-id N [--lab FILE]
 *   labloop instrument NAME run KIND ARGS [--step-id N] [--no-wait] [--lab FILE]
 *   KIND ARGS: dispense --well W --volumes V1,V2,...   (uL per reservoir, in order)
 *              move --from PLACE --to PLACE --well W
 *              park
 *              spin --stage RPM,ACCEL_RPM_S,SECONDS [--stage ...]
 *              anneal --setpoint C --ramp C_PER_MIN --dwell MIN
 *
 * The lab file is --lab FILE, else config/lab.conf when it exists in the working folder,
 * else the embedded default lab. `run` starts the step and polls it until it is done or
 * failed (Ctrl-C commands the safe state); if the start failed after something may have
 * reached the instrument, the safe state is commanded too. Limits are checked before
 * anything is sent. Exit: 0 done, 1 the instrument or the link failed (the message names
 * the kind: refused, no answer, link lost ...), 2 bad usage, bad lab file, or a step above a
 * limit (nothing sent).
 *
 * `safe` and `reset` go through labloopd when it runs — its control socket RUN_DIR/control
 * exists (--run-dir, else $LABLOOP_RUN_DIR, else /run/labloop) — because labloopd holds the
 * instrument's connection or serial line: the daemon's worker for the instrument does it
 * (control.h "instrument"), and this command waits up to --timeout MS (default 5000) for the
 * outcome event (instrument.reset / instrument.safe) and prints it. Exit: 0 done, 1 refused by
 * labloopd (unknown instrument, a step of it in flight, ...), the instrument failed, or no
 * outcome within the time-out, 3 the socket exists but labloopd does not answer (the device
 * is then NOT opened here: a hung labloopd may still hold it; --direct forces the direct way
 * for a stale socket). Without the socket they open the device directly, as the others.
 */
#include "common/ll_error.h"
#include "common/ll_text.h"
#include "common/ll_time.h"
#include "daemon/commands.h"
#include "daemon/control.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fputs("usage: labloop instrument NAME status|describe [--lab FILE]\n"
          "       labloop instrument NAME safe|reset [--timeout MS] [--run-dir DIR] [--direct] "
          "[--lab FILE]\n"
          "       labloop instrument NAME run KIND ARGS [--step-id N] [--no-wait] [--lab FILE]\n"
          "       labloop instrument NAME query KIND ARGS --step-id N [--lab FILE]\n"
          "KIND ARGS:\n"
          "  dispense --well W --volumes V1,V2,...    uL per reservoir (robot)\n"
          "  move --from PLACE --to PLACE --well W    (robot)\n"
          "  park                                     (robot)\n"
          "  spin --stage RPM,ACCEL,SECONDS [...]     up to 8 stages (coater)\n"
          "  anneal --setpoint C --ramp C_PER_MIN --dwell MIN   (furnace)\n"
          "Lab file: --lab FILE, else ./config/lab.conf, else the embedded default lab.\n"
          "safe/reset go through labloopd when its control socket exists (--run-dir, else "
          "$LABLOOP_RUN_DIR, else /run/labloop)\nand wait up to --timeout MS (5000) for the "
          "outcome; --direct opens the device even then.\n"
          "Exit: 0 ok, 1 instrument or link failure (or refused by labloopd), 2 bad usage / lab "
          "file / limit (nothing sent),\n3 labloopd's socket exists but it does not answer.\n",
          out);
}

struct args {
    const char *name, *action, *lab, *run_dir;
    struct drv_step step;
    bool have_step, have_id, no_wait, direct;
    int timeout_ms;
};

static int parse_double(const char *s, double *ret)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -EINVAL;
    *ret = v;
    return 0;
}

static int parse_int(const char *s, long min, long max, long *ret)
{
    long long v = 0;
    int r = ll_parse_int(s, min, max, &v);
    if (r == 0)
        *ret = (long)v;
    return r;
}

/* Parses KIND ARGS and the options from argv[i]; returns 0 or prints and returns -EINVAL. */
static int parse_rest(int argc, char **argv, int i, struct args *a)
{
    struct drv_step *s = &a->step;
    long l;

    for (; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : "";
        bool takes = strcmp(opt, "--no-wait") != 0 && strcmp(opt, "--direct") != 0 &&
                     strncmp(opt, "--", 2) == 0;

        if (takes && i + 1 >= argc) {
            fprintf(stderr, "labloop instrument: %s needs a value\n", opt);
            return -EINVAL;
        }
        if (!strcmp(opt, "--lab")) {
            a->lab = val;
        } else if (!strcmp(opt, "--no-wait")) {
            a->no_wait = true;
            continue;
        } else if (!strcmp(opt, "--direct") && !a->have_step) {
            a->direct = true;
            continue;
        } else if (!strcmp(opt, "--run-dir") && !a->have_step) {
            a->run_dir = val;
        } else if (!strcmp(opt, "--timeout") && !a->have_step) {
            if (parse_int(val, 1, 3600000, &l))
                goto bad;
            a->timeout_ms = (int)l;
        } else if (!strcmp(opt, "--step-id")) {
            if (parse_int(val, 1, (long)UINT32_MAX, &l))
                goto bad;
            s->id = (uint32_t)l;
            a->have_id = true;
        } else if (!strcmp(opt, "--well")) {
            if (parse_int(val, -1000000, 1000000, &l))
                goto bad;
            if (s->kind == DRV_STEP_DISPENSE)
                s->dispense.well = (int)l;
            else if (s->kind == DRV_STEP_MOVE)
                s->move.well = (int)l;
            else
                goto bad;
        } else if (!strcmp(opt, "--volumes") && s->kind == DRV_STEP_DISPENSE) {
            char buf[512], *tok, *save = NULL;
            int n = 0;
            snprintf(buf, sizeof(buf), "%s", val);
            for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n >= DRV_N_RESERVOIRS || parse_double(tok, &s->dispense.volumes_ul[n]))
                    goto bad;
                n++;
            }
        } else if (!strcmp(opt, "--from") && s->kind == DRV_STEP_MOVE) {
            snprintf(s->move.from_place, sizeof(s->move.from_place), "%s", val);
        } else if (!strcmp(opt, "--to") && s->kind == DRV_STEP_MOVE) {
            snprintf(s->move.to_place, sizeof(s->move.to_place), "%s", val);
        } else if (!strcmp(opt, "--stage") && s->kind == DRV_STEP_SPIN) {
            struct drv_spin_stage *st;
            if (s->spin.n_stages >= DRV_MAX_STAGES)
                goto bad;
            st = &s->spin.stages[s->spin.n_stages];
            if (sscanf(val, "%lf,%lf,%lf", &st->rpm, &st->accel_rpm_s, &st->seconds) != 3)
                goto bad;
            s->spin.n_stages++;
        } else if (!strcmp(opt, "--setpoint") && s->kind == DRV_STEP_ANNEAL) {
            if (parse_double(val, &s->anneal.setpoint_c))
                goto bad;
        } else if (!strcmp(opt, "--ramp") && s->kind == DRV_STEP_ANNEAL) {
            if (parse_double(val, &s->anneal.ramp_c_min))
                goto bad;
        } else if (!strcmp(opt, "--dwell") && s->kind == DRV_STEP_ANNEAL) {
            if (parse_double(val, &s->anneal.dwell_min))
                goto bad;
        } else {
            fprintf(stderr, "labloop instrument: option '%s' does not apply here\n", opt);
            return -EINVAL;
        }
        i++;
        continue;
    bad:
        fprintf(stderr, "labloop instrument: bad value for %s: '%s'\n", opt, val);
        return -EINVAL;
    }
    return 0;
}

/* Reads the action and the step kind (run/query), then the options. The step's fields share
 * a union, so an option is accepted only for the kind it belongs to. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct {
        const char *name;
        enum drv_step_kind kind;
    } kinds[] = {
        {"dispense", DRV_STEP_DISPENSE},
        {"move",     DRV_STEP_MOVE    },
        {"park",     DRV_STEP_PARK    },
        {"spin",     DRV_STEP_SPIN    },
        {"anneal",   DRV_STEP_ANNEAL  },
    };
    int i = 3;

    memset(a, 0, sizeof(*a));
    a->timeout_ms = 5000;
    if (argc < 3)
        return -EINVAL;
    a->name = argv[1];
    a->action = argv[2];
    if (!strcmp(a->action, "run") || !strcmp(a->action, "query")) {
        if (argc < 4)
            return -EINVAL;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (!strcmp(argv[3], kinds[k].name))
                a->step.kind = kinds[k].kind;
        if (!a->step.kind) {
            fprintf(stderr, "labloop instrument: unknown step kind '%s'\n", argv[3]);
            return -EINVAL;
        }
        a->have_step = true;
        i = 4;
    } else if (strcmp(a->action, "status") != 0 && strcmp(a->action, "describe") != 0 &&
               strcmp(a->action, "safe") != 0 && strcmp(a->action, "reset") != 0) {
        fprintf(stderr, "labloop instrument: unknown action '%s'\n", a->action);
        return -EINVAL;
    }
    return parse_rest(argc, argv, i, a);
}

static int load_lab(const char *path, struct labconf **ret, struct ll_error *err)
{
    if (path)
        return labconf_load_file(path, ret, err);
    if (access("config/lab.conf", R_OK) == 0)
        return labconf_load_file("config/lab.conf", ret, err);
    return labconf_load_default(ret, err);
}

static int exit_for(int rc)
{
    if (rc == 0)
        return CMD_EXIT_OK;
    if (rc == DRV_ELIMIT || rc == -EINVAL)
        return CMD_EXIT_USAGE;
    return CMD_EXIT_FAILED;
}

static int report(const char *name, int rc, const struct ll_error *err)
{
    fprintf(stderr, "labloop instrument %s: %s [%s]\n", name, err->msg, drv_error_kind(rc));
    return exit_for(rc);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void describe_step(const struct drv_step *s, char *buf, size_t size)
{
    int n;

    switch (s->kind) {
    case DRV_STEP_DISPENSE:
        n = snprintf(buf, size, "dispense into well %d:", s->dispense.well);
        for (int i = 0; i < DRV_N_RESERVOIRS && n > 0 && (size_t)n < size; i++)
            if (s->dispense.volumes_ul[i] > 0.0)
                n += snprintf(
                    buf + n, size - (size_t)n, " R%d %.1f uL", i + 1, s->dispense.volumes_ul[i]);
        break;
    case DRV_STEP_MOVE:
        snprintf(buf,
                 size,
                 "move sample of well %d from %s to %s",
                 s->move.well,
                 s->move.from_place,
                 s->move.to_place);
        break;
    case DRV_STEP_PARK:
        snprintf(buf, size, "park");
        break;
    case DRV_STEP_SPIN:
        n = snprintf(buf, size, "spin");
        for (int i = 0; i < s->spin.n_stages && n > 0 && (size_t)n < size; i++)
            n += snprintf(buf + n,
                          size - (size_t)n,
                          " [%.0f rpm, %.0f rpm/s, %.1f s]",
                          s->spin.stages[i].rpm,
                          s->spin.stages[i].accel_rpm_s,
                          s->spin.stages[i].seconds);
        break;
    case DRV_STEP_ANNEAL:
        snprintf(buf,
                 size,
                 "anneal to %.1f C at %.1f C/min, dwell %.1f min",
                 s->anneal.setpoint_c,
                 s->anneal.ramp_c_min,
                 s->anneal.dwell_min);
        break;
    }
}

/* Commands the safe state after a failure and says so. */
static void go_safe(struct drv *drv)
{
    struct ll_error err = {0};
    int r = drv_safe(drv, &err);

    if (r == 0)
        fprintf(stderr, "labloop instrument %s: safe state commanded\n", drv_name(drv));
    else
        fprintf(stderr,
                "labloop instrument %s: safe state FAILED: %s [%s]\n",
                drv_name(drv),
                err.msg,
                drv_error_kind(r));
}

static int do_run(struct drv *drv, const struct labconf_instrument *inst, struct args *a)
{
    struct ll_error err = {0};
    struct drv_status st;
    char what[512], last[DRV_TEXT_MAX] = "";
    int64_t deadline;
    int r;

    if (!a->have_id) {
        /* the robot wants increasing job ids: one above the job it accepted last */
        if (inst->driver == LABCONF_DRIVER_ROBOT_MODBUS_TCP) {
            r = drv_status(drv, &st, &err);
            if (r)
                return report(a->name, r, &err);
            a->step.id = st.instrument_step_id + 1;
        } else {
            /* unique per millisecond (wraps every 49 days): a repeated id would be taken
             * as the same step and not run again */
            a->step.id = (uint32_t)((uint64_t)ll_wall_ms() % UINT32_MAX) + 1;
        }
    }
    /* before the start, so that a Ctrl-C at any moment after it leads to the safe state */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    describe_step(&a->step, what, sizeof(what));
    r = drv_step_check(inst, &a->step, &err);
    if (r)
        return report(a->name, r, &err);
    r = drv_step_start(drv, &a->step, &err);
    if (r) {
        report(a->name, r, &err);
        go_safe(drv);
        return exit_for(r);
    }
    printf("%s: step %u started: %s\n", a->name, (unsigned)a->step.id, what);
    fflush(stdout);
    if (a->no_wait)
        return CMD_EXIT_OK;
    deadline = ll_monotonic_ms() + 1000 * (int64_t)inst->step_timeout_s + 10000;
    for (;;) {
        if (interrupted) {
            fprintf(stderr, "labloop instrument %s: interrupted\n", a->name);
            go_safe(drv);
            return CMD_EXIT_FAILED;
        }
        r = drv_step_poll(drv, &a->step, &st, &err);
        if (r) {
            /* a failed poll says nothing about the step: retry until the step deadline */
            fprintf(stderr,
                    "labloop instrument %s: poll: %s [%s]\n",
                    a->name,
                    err.msg,
                    drv_error_kind(r));
            if (ll_monotonic_ms() > deadline) {
                go_safe(drv);
                return CMD_EXIT_FAILED;
            }
        } else if (st.state == DRV_STEP_DONE) {
            printf("%s: step %u done: %s\n", a->name, (unsigned)a->step.id, st.reason);
            return CMD_EXIT_OK;
        } else if (st.state == DRV_STEP_FAILED) {
            fprintf(stderr,
                    "labloop instrument %s: step %u failed: %s [%s]\n",
                    a->name,
                    (unsigned)a->step.id,
                    st.reason,
                    drv_error_kind(st.error));
            return CMD_EXIT_FAILED;
        } else if (strcmp(st.reason, last) != 0) {
            printf("%s: running: %s\n", a->name, st.reason);
            fflush(stdout);
            snprintf(last, sizeof(last), "%s", st.reason);
        }
        sleep_ms(inst->poll_ms);
    }
}

/* An event of kind `kind` about instrument name newer than event id `after` in the daemon's
 * newest events: returns a new reference, or NULL (none yet). *ret_r: the call's exit status. */
static json_t *find_outcome(
    const struct args *a, const char *run_dir, const char *kind, json_int_t after, int *ret_r)
{
    struct ll_error err = {0};
    json_t *req = json_pack("{s:s,s:i,s:i}", "cmd", "events", "id", 0, "limit", 200);
    json_t *reply = NULL, *found = NULL;
    size_t i, n = strlen(a->name);
    json_t *x;

    *ret_r = control_call(run_dir, req, a->timeout_ms, &reply, &err);
    json_decref(req);
    if (*ret_r < 0) {
        fprintf(stderr,
                "labloop instrument %s: labloopd stopped answering; the outcome is unknown "
                "(`labloop events` later): %s\n",
                a->name,
                err.msg);
        return NULL;
    }
    json_array_foreach(json_object_get(reply, "events"), i, x)
    {
        const char *k = json_string_value(json_object_get(x, "kind"));
        const char *m = json_string_value(json_object_get(x, "message"));
        if (json_integer_value(json_object_get(x, "id")) > after && k != NULL && m != NULL &&
            strcmp(k, kind) == 0 && strncmp(m, a->name, n) == 0 && m[n] == ':') {
            found = json_incref(x);
            break;
        }
    }
    json_decref(reply);
    return found;
}

/* safe/reset through labloopd's worker for the instrument (see the top of the file). */
static int via_daemon(const struct args *a, const char *run_dir)
{
    struct ll_error err = {0};
    json_t *req = json_pack("{s:s,s:s,s:s}", "cmd", "instrument", "name", a->name, "op", a->action);
    json_t *reply = NULL, *ev = NULL;
    int r = control_call(run_dir, req, a->timeout_ms, &reply, &err);
    json_decref(req);
    if (r < 0) {
        fprintf(stderr,
                "labloop instrument %s: %s\n(labloopd's control socket exists, so it may hold "
                "the instrument: not opening it here; if labloopd is not running, remove the "
                "stale socket or use --direct)\n",
                a->name,
                err.msg);
        return r == -EHOSTUNREACH || r == -EACCES ? CMD_EXIT_UNREACHABLE : CMD_EXIT_FAILED;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        const char *msg = json_string_value(json_object_get(reply, "error"));
        fprintf(stderr, "labloop instrument %s: labloopd refused: %s\n", a->name, msg ? msg : "?");
        json_decref(reply);
        return CMD_EXIT_FAILED;
    }
    char kind[64];
    json_int_t after = json_integer_value(json_object_get(reply, "after_event"));
    const char *k = json_string_value(json_object_get(reply, "event_kind"));
    snprintf(kind, sizeof(kind), "%s", k != NULL ? k : "instrument.reset");
    json_decref(reply);
    int64_t deadline = ll_monotonic_ms() + a->timeout_ms;
    for (;;) {
        ev = find_outcome(a, run_dir, kind, after, &r);
        if (r < 0)
            return CMD_EXIT_UNREACHABLE;
        if (ev != NULL || ll_monotonic_ms() >= deadline)
            break;
        sleep_ms(50);
    }
    if (ev == NULL) {
        fprintf(stderr,
                "labloop instrument %s: no outcome within %d ms; the %s is with labloopd's "
                "worker for %s (see `labloop events`)\n",
                a->name,
                a->timeout_ms,
                a->action,
                a->name);
        return CMD_EXIT_FAILED;
    }
    const char *msg = json_string_value(json_object_get(ev, "message"));
    int failed = json_integer_value(json_object_get(ev, "level")) <= 3;
    fprintf(failed ? stderr : stdout,
            "%s%s (through labloopd)\n",
            failed ? "labloop instrument: " : "",
            msg != NULL ? msg : "");
    json_decref(ev);
    return failed ? CMD_EXIT_FAILED : CMD_EXIT_OK;
}

int cmd_instrument(int argc, char **argv)
{
    struct args a;
    struct labconf *lab = NULL;
    struct drv *drv = NULL;
    struct ll_error err = {0};
    const struct labconf_instrument *inst;
    int rc = CMD_EXIT_OK, r;

    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return CMD_EXIT_OK;
    }
    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (!strcmp(a.action, "query") && !a.have_id) {
        fprintf(stderr, "labloop instrument: query needs --step-id N\n");
        return CMD_EXIT_USAGE;
    }
    if ((!strcmp(a.action, "reset") || !strcmp(a.action, "safe")) && !a.direct) {
        /* labloopd runs (its socket is there): it holds the device, so it does the work */
        const char *run_dir = a.run_dir != NULL                   ? a.run_dir
                              : getenv("LABLOOP_RUN_DIR") != NULL ? getenv("LABLOOP_RUN_DIR")
                                                                  : "/run/labloop";
        char sock[4200];
        struct stat stt;
        snprintf(sock, sizeof(sock), "%s/control", run_dir);
        if (stat(sock, &stt) == 0 || errno == EACCES)
            return via_daemon(&a, run_dir);
    }
    r = load_lab(a.lab, &lab, &err);
    if (r) {
        fprintf(stderr, "labloop instrument: %s\n", err.msg);
        return CMD_EXIT_USAGE;
    }
    inst = labconf_find_instrument(lab, a.name);
    if (!inst) {
        fprintf(stderr, "labloop instrument: no instrument '%s' in %s (", a.name, lab->source);
        for (int i = 0; i < lab->n_instruments; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", lab->instruments[i].name);
        fprintf(stderr, ")\n");
        rc = CMD_EXIT_USAGE;
        goto out;
    }
    if (a.have_step) {
        /* limits before anything is opened or sent (the robot's default id comes later) */
        struct drv_step probe = a.step;
        if (!probe.id)
            probe.id = 1;
        r = drv_step_check(inst, &probe, &err);
        if (r) {
            rc = report(a.name, r, &err);
            goto out;
        }
    }
    r = drv_open(inst, &drv, &err);
    if (r) {
        rc = report(a.name, r, &err);
        goto out;
    }
    if (!strcmp(a.action, "describe")) {
        char buf[2048];
        r = drv_describe(drv, buf, sizeof(buf), &err);
        if (r == 0)
            printf("%s\n", buf);
    } else if (!strcmp(a.action, "status")) {
        struct drv_status st;
        r = drv_status(drv, &st, &err);
        if (r == 0)
            printf("%s: %s\n", a.name, st.text);
    } else if (!strcmp(a.action, "safe")) {
        r = drv_safe(drv, &err);
        if (r == 0)
            printf("%s: safe state commanded and confirmed (a software stop: the hardware "
                   "e-stop is the real one)\n",
                   a.name);
    } else if (!strcmp(a.action, "reset")) {
        r = drv_clear_fault(drv, &err);
        if (r == 0)
            printf("%s: fault cleared\n", a.name);
    } else if (!strcmp(a.action, "query")) {
        struct drv_status st;
        r = drv_step_query(drv, &a.step, &st, &err);
        if (r == 0)
            printf("%s: step %u: %s: %s\n",
                   a.name,
                   (unsigned)a.step.id,
                   drv_step_state_name(st.state),
                   st.reason);
    } else {
        rc = do_run(drv, inst, &a);
        goto out;
    }
    if (r)
        rc = report(a.name, r, &err);
out:
    drv_close(&drv);
    labconf_free(&lab);
    return rc;
}

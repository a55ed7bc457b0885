/* cmd_daemon — the labloop subcommands that talk to labloopd over its control socket
 * (daemon/control.h): status, campaign, approve, deny, experiments, export, pareto, plot,
 * events, backup, e-stop, resolve, rack.
 *
 * Common options: --json (print the daemon's JSON reply), --run-dir DIR (where labloopd's
 * control socket is; default $LABLOOP_RUN_DIR or /run/labloop), --timeout MS (default 10000).
 * Exit status (commands.h): 0 done, 1 the daemon refused (message on stderr), 2 usage,
 * 3 the daemon could not be reached.
 */
#include "common/ll_error.h"
#include "common/ll_text.h"
#include "daemon/commands.h"
#include "daemon/control.h"
#include "daemon/ingest.h"
#include "daemon/plot.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the largest --limit (lines of a listing) */
#define CMD_LIMIT_MAX 1000000

struct opts {
    int json;
    const char *run_dir;
    int timeout_ms;
    const char *args[8]; /* positional arguments after the subcommand */
    int n_args;
    int64_t campaign;
    const char *format, *output;
    int limit;
    int width_px; /* plot */
};

/* The number of option opt (its text s) into *ret, in [min, max]; else an error naming the
 * option and what was typed, and -EINVAL. */
static int opt_number(
    const char *cmd, const char *opt, const char *s, long long min, long long max, long long *ret)
{
    if (ll_parse_int(s, min, max, ret) == 0)
        return 0;
    fprintf(stderr,
            "labloop %s: %s wants a whole number from %lld to %lld, not '%s'\n",
            cmd,
            opt,
            min,
            max,
            s);
    return -EINVAL;
}

/* An id typed as a positional argument (campaign, step): a whole number >= 1. */
static int arg_id(const char *cmd, const char *what, const char *s, json_int_t *ret)
{
    long long v = 0;
    if (ll_parse_int(s, 1, (long long)INT64_MAX, &v) != 0) {
        fprintf(stderr, "labloop %s: %s must be a whole number >= 1, not '%s'\n", cmd, what, s);
        return -EINVAL;
    }
    *ret = (json_int_t)v;
    return 0;
}

static int parse(int argc, char **argv, struct opts *o, const char *usage)
{
    memset(o, 0, sizeof(*o));
    o->run_dir = getenv("LABLOOP_RUN_DIR") != NULL ? getenv("LABLOOP_RUN_DIR") : "/run/labloop";
    o->timeout_ms = 10000;
    o->format = "csv";
    o->limit = 30;
    o->width_px = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        /* argv[i] is never NULL for i < argc (C11 5.1.2.2.1); the analyser cannot know that */
        // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker)
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: labloop %s\n", usage);
            exit(CMD_EXIT_OK);
        } else if (next != NULL && strcmp(a, "--run-dir") == 0) {
            o->run_dir = argv[++i];
        } else if (next != NULL && strcmp(a, "--timeout") == 0) {
            long long v = 0;
            if (opt_number(argv[0], a, argv[++i], 1, 3600000, &v) != 0)
                return -EINVAL;
            o->timeout_ms = (int)v;
        } else if (next != NULL && strcmp(a, "--campaign") == 0) {
            long long v = 0;
            if (opt_number(argv[0], a, argv[++i], 1, (long long)INT64_MAX, &v) != 0)
                return -EINVAL;
            o->campaign = (int64_t)v;
        } else if (next != NULL && strcmp(a, "--format") == 0) {
            o->format = argv[++i];
        } else if (next != NULL && (strcmp(a, "--output") == 0 || strcmp(a, "-o") == 0)) {
            o->output = argv[++i];
        } else if (next != NULL && strcmp(a, "--limit") == 0) {
            long long v = 0;
            if (opt_number(argv[0], a, argv[++i], 1, CMD_LIMIT_MAX, &v) != 0)
                return -EINVAL;
            o->limit = (int)v;
        } else if (next != NULL && strcmp(a, "--width") == 0) {
            long long v = 0;
            if (opt_number(argv[0], a, argv[++i], 320, 4000, &v) != 0)
                return -EINVAL;
            o->width_px = (int)v;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(
                stderr, "labloop %s: unknown option '%s'\nusage: labloop %s\n", argv[0], a, usage);
            return -EINVAL;
        } else if (o->n_args < 8) {
            o->args[o->n_args++] = a;
        }
    }
    return 0;
}

/* Sends req (consumed) and returns the exit status; *ret_reply gets the reply when ok. */
static int call(const struct opts *o, const char *name, json_t *req, json_t **ret_reply)
{
    struct ll_error err;
    ll_error_clear(&err);
    json_t *reply = NULL;
    int r = control_call(o->run_dir, req, o->timeout_ms, &reply, &err);
    json_decref(req);
    if (r < 0) {
        fprintf(stderr, "labloop %s: %s\n", name, err.msg);
        return r == -EHOSTUNREACH || r == -EACCES ? CMD_EXIT_UNREACHABLE : CMD_EXIT_FAILED;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        fprintf(
            stderr, "labloop %s: %s\n", name, json_string_value(json_object_get(reply, "error")));
        json_decref(reply);
        return CMD_EXIT_FAILED;
    }
    if (o->json) {
        json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("\n");
    }
    *ret_reply = reply;
    return CMD_EXIT_OK;
}

static const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static long long ji(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void print_status(json_t *st)
{
    json_t *se = json_object_get(st, "store_error");
    if (json_is_object(se))
        printf("%sSTORE WRITES FAILING for %.0f s: %s\nNo new step starts and no round is proposed "
               "until the store takes writes again (free disk space?); stations keep what is not "
               "acked, running steps keep their outcome.\n",
               json_is_true(json_object_get(se, "alarm")) ? "ALARM: " : "",
               json_real_value(json_object_get(se, "for_s")),
               js(se, "message"));
    if (json_is_true(json_object_get(st, "estop")))
        printf("E-STOP LATCHED (software stop: instruments were commanded to their safe states; "
               "this is not a wired emergency stop). Resume with: labloop campaign resume ID\n");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "instruments"), i, c)
    {
        if (json_is_string(json_object_get(c, "fault")))
            printf("INSTRUMENT FAULT: %s: %s\nIts safe state was commanded; the campaigns using it "
                   "are paused (unless on_instrument_fault = \"continue\"). Fix it, then: labloop "
                   "campaign resume ID\n",
                   js(c, "name"),
                   js(c, "fault"));
    }
    json_t *camps = json_object_get(st, "campaigns");
    if (json_array_size(camps) == 0)
        printf("no campaigns\n");
    json_array_foreach(camps, i, c)
    {
        printf("campaign %lld '%s': %s (%lld experiments",
               ji(c, "id"),
               js(c, "name"),
               js(c, "state"),
               ji(c, "n_experiments"));
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(c, "experiments"), key, v)
        {
            printf(", %s %lld", key, (long long)json_integer_value(v));
        }
        printf(")");
        if (json_is_string(json_object_get(c, "reason")))
            printf(" — %s", js(c, "reason"));
        printf("\n");
        if (json_is_integer(json_object_get(c, "approval_pending_round")))
            printf("  round %lld waits for approval: labloop approve %lld (or deny)\n",
                   ji(c, "approval_pending_round"),
                   ji(c, "id"));
        size_t k;
        json_t *rd;
        json_t *w = json_object_get(c, "whole");
        if (json_is_object(w))
            printf("  whole campaign: makespan %.1f s, lower bound %.1f s (%s), ratio %.3f\n",
                   json_number_value(json_object_get(w, "makespan_s")),
                   json_number_value(json_object_get(w, "lower_bound_s")),
                   js(w, "busiest"),
                   json_number_value(json_object_get(w, "ratio")));
        json_array_foreach(json_object_get(c, "rounds"), k, rd)
        {
            printf("  round %lld: makespan %.1f s, lower bound %.1f s (%s), ratio %.3f\n",
                   ji(rd, "round"),
                   json_number_value(json_object_get(rd, "makespan_s")),
                   json_number_value(json_object_get(rd, "lower_bound_s")),
                   js(rd, "busiest"),
                   json_number_value(json_object_get(rd, "ratio")));
        }
        json_array_foreach(json_object_get(c, "planner_fallback_rounds"), k, rd)
        {
            printf("  PLANNER FALLBACK in round %lld: proposals from the space-filling design, not "
                   "the model; the planner failed: %s\n",
                   ji(rd, "round"),
                   js(rd, "planner_error"));
        }
    }
    json_t *q = json_object_get(st, "questions");
    json_array_foreach(q, i, c)
    {
        printf("QUESTION: step %lld (experiment %lld, %s %s): %s\n  answer with: labloop resolve "
               "%lld done|failed\n",
               ji(c, "id"),
               ji(c, "experiment_id"),
               js(c, "instrument"),
               js(c, "action"),
               js(c, "result"),
               ji(c, "id"));
    }
    json_t *rack = json_object_get(st, "rack");
    if (json_is_object(rack)) {
        printf("rack: %lld of %lld wells hold samples, %lld free\n",
               ji(rack, "occupied"),
               ji(rack, "wells"),
               ji(rack, "free"));
        if (json_is_true(json_object_get(rack, "full")))
            printf("RACK FULL: all %lld wells hold samples; no new experiment starts until the "
                   "rack is unloaded: unload it, then run `labloop rack unloaded`\n",
                   ji(rack, "wells"));
    }
    printf("missed deadlines so far: %lld\n", ji(st, "missed_deadlines"));
    json_array_foreach(json_object_get(st, "in_flight"), i, c)
    {
        printf("  in flight: step %lld (experiment %lld, sample %s) on %s%s\n",
               ji(c, "step"),
               ji(c, "experiment"),
               js(c, "sample"),
               js(c, "instrument"),
               json_is_true(json_object_get(c, "overdue")) ? "  OVERDUE" : "");
    }
    printf("instruments:");
    json_array_foreach(json_object_get(st, "instruments"), i, c)
    {
        if (ji(c, "busy_step"))
            printf(" %s (step %lld)", js(c, "name"), ji(c, "busy_step"));
        else
            printf(" %s (idle)", js(c, "name"));
    }
    json_array_foreach(json_object_get(st, "instruments"), i, c)
    {
        /* a sample held back until this furnace has cooled (docs/daemon.md) */
        json_t *cw = json_object_get(c, "cooling");
        if (!json_is_object(cw))
            continue;
        json_t *pv = json_object_get(cw, "pv_c");
        char now_c[32] = "not read yet";
        if (json_is_number(pv))
            snprintf(now_c, sizeof(now_c), "%.1f C", json_number_value(pv));
        printf("\n  %s: experiment %lld waits for it to cool to <= %.1f C (now %s, %.1f min "
               "so far)%s",
               js(c, "name"),
               ji(cw, "experiment"),
               json_number_value(json_object_get(cw, "limit_c")),
               now_c,
               json_number_value(json_object_get(cw, "waited_min")),
               json_is_true(json_object_get(cw, "overdue")) ? "  OVERDUE" : "");
    }
    printf("\nstations:");
    json_array_foreach(json_object_get(st, "stations"), i, c)
    {
        double skew = json_real_value(json_object_get(c, "clock_skew_s"));
        printf(" %s (%s, stored %lld, duplicates %lld, rejected %lld",
               js(c, "name"),
               json_is_true(json_object_get(c, "online")) ? "online" : "OFFLINE",
               ji(c, "stored"),
               ji(c, "duplicates"),
               ji(c, "rejected"));
        if (fabs(skew) * 1000.0 > INGEST_CLOCK_SKEW_MS)
            printf(", CLOCK %+.0f s OFF", skew);
        printf(")");
    }
    json_t *m = json_object_get(st, "measurements");
    printf("\nmeasurements: %lld stored, %lld rejected\n", ji(m, "stored"), ji(m, "rejected"));
}

int cmd_status(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o, "status [--json] [--run-dir DIR]") < 0)
        return CMD_EXIT_USAGE;
    json_t *reply = NULL;
    int r = call(&o, argv[0], json_pack("{s:s}", "cmd", "status"), &reply);
    if (r == 0 && !o.json)
        print_status(reply);
    json_decref(reply);
    return r;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    return buf;
}

int cmd_campaign(int argc, char **argv)
{
    const char *usage =
        "campaign start FILE | pause [ID] | resume [ID] | abort [ID]  [--json] [--run-dir DIR]";
    struct opts o;
    if (parse(argc, argv, &o, usage) < 0)
        return CMD_EXIT_USAGE;
    if (o.n_args < 1) {
        fprintf(stderr, "usage: labloop %s\n", usage);
        return CMD_EXIT_USAGE;
    }
    const char *op = o.args[0];
    json_t *req;
    if (strcmp(op, "start") == 0) {
        if (o.n_args < 2) {
            fprintf(stderr, "usage: labloop %s\n", usage);
            return CMD_EXIT_USAGE;
        }
        char *text = read_file(o.args[1]);
        if (text == NULL) {
            fprintf(stderr, "labloop campaign: %s: %s\n", o.args[1], strerror(errno));
            return CMD_EXIT_USAGE;
        }
        req = json_pack("{s:s,s:s,s:s,s:s}",
                        "cmd",
                        "campaign",
                        "op",
                        "start",
                        "text",
                        text,
                        "source",
                        o.args[1]);
        free(text);
    } else if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0 || strcmp(op, "abort") == 0) {
        json_int_t id = 0;
        if (o.n_args > 1 && arg_id("campaign", "the campaign id", o.args[1], &id) != 0)
            return CMD_EXIT_USAGE;
        req = json_pack("{s:s,s:s,s:I}", "cmd", "campaign", "op", op, "id", id);
    } else {
        fprintf(stderr, "labloop campaign: unknown operation '%s'\nusage: labloop %s\n", op, usage);
        return CMD_EXIT_USAGE;
    }
    json_t *reply = NULL;
    int r = call(&o, "campaign", req, &reply);
    if (r == 0 && !o.json) {
        if (strcmp(op, "start") == 0)
            printf("campaign %lld started\n", ji(reply, "id"));
        else if (strcmp(op, "pause") == 0)
            printf("paused: no new step starts; steps already running finish\n");
        else
            printf("%s: done\n", op);
    }
    json_decref(reply);
    return r;
}

static int simple(int argc, char **argv, const char *cmd, const char *usage, const char *done_msg)
{
    struct opts o;
    if (parse(argc, argv, &o, usage) < 0)
        return CMD_EXIT_USAGE;
    json_int_t id = 0;
    if (o.n_args > 0 && arg_id(argv[0], "the campaign id", o.args[0], &id) != 0)
        return CMD_EXIT_USAGE;
    json_t *reply = NULL;
    int r = call(&o, argv[0], json_pack("{s:s,s:I}", "cmd", cmd, "id", id), &reply);
    if (r == 0 && !o.json)
        printf("%s\n", done_msg);
    json_decref(reply);
    return r;
}

int cmd_approve(int argc, char **argv)
{
    return simple(argc,
                  argv,
                  "approve",
                  "approve [CAMPAIGN_ID] [--json]",
                  "batch approved: its experiments are queued");
}

int cmd_deny(int argc, char **argv)
{
    return simple(argc,
                  argv,
                  "deny",
                  "deny [CAMPAIGN_ID] [--json]",
                  "batch denied: its experiments are abandoned and the planner proposes again");
}

int cmd_estop(int argc, char **argv)
{
    return simple(argc,
                  argv,
                  "estop",
                  "e-stop [--json]",
                  "SOFTWARE STOP sent: every instrument was commanded to its safe state and "
                  "campaigns are stopped.\nThis is not an emergency stop: a real e-stop must be "
                  "wired, with no software in the path.\nResume with: labloop campaign resume ID");
}

/* Collects the parameter and objective names of the experiments, in first-seen order. */
static void columns(json_t *exps, const char *field, json_t *names)
{
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(x, field), k, v)
        {
            size_t j;
            json_t *n;
            int seen = 0;
            json_array_foreach(names, j, n)
            {
                seen |= strcmp(json_string_value(n), k) == 0;
            }
            if (!seen)
                json_array_append_new(names, json_string(k));
        }
    }
}

static void write_csv(FILE *out, json_t *exps)
{
    json_t *pn = json_array(), *on = json_array();
    columns(exps, "params", pn);
    columns(exps, "objectives", on);
    fprintf(out, "experiment,campaign,round,sample,well,state");
    size_t j;
    json_t *n;
    json_array_foreach(pn, j, n)
    {
        fprintf(out, ",%s", json_string_value(n));
    }
    json_array_foreach(on, j, n)
    {
        fprintf(out, ",%s", json_string_value(n));
    }
    fprintf(out, ",acquisition,reason\n");
    size_t i;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        fprintf(out,
                "%lld,%lld,%lld,%s,%lld,%s",
                ji(x, "id"),
                ji(x, "campaign_id"),
                ji(x, "round"),
                js(x, "sample"),
                ji(x, "well"),
                js(x, "state"));
        json_array_foreach(pn, j, n)
        {
            json_t *v = json_object_get(json_object_get(x, "params"), json_string_value(n));
            if (json_is_number(v))
                fprintf(out, ",%.10g", json_number_value(v));
            else
                fprintf(out, ",");
        }
        json_array_foreach(on, j, n)
        {
            json_t *v = json_object_get(json_object_get(x, "objectives"), json_string_value(n));
            if (json_is_number(v))
                fprintf(out, ",%.10g", json_number_value(v));
            else
                fprintf(out, ",");
        }
        json_t *acq = json_object_get(x, "acquisition");
        fprintf(out, ",%.6g,", json_is_number(acq) ? json_number_value(acq) : 0.0);
        /* reasons are free text: quote them */
        fputc('"', out);
        for (const char *p = js(x, "reason"); *p; p++) {
            if (*p == '"')
                fputc('"', out);
            fputc(*p, out);
        }
        fprintf(out, "\"\n");
    }
    json_decref(pn);
    json_decref(on);
}

int cmd_experiments(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o, "experiments [--campaign ID] [--json]") < 0)
        return CMD_EXIT_USAGE;
    json_t *reply = NULL;
    int r = call(&o,
                 argv[0],
                 json_pack("{s:s,s:I}", "cmd", "experiments", "id", (json_int_t)o.campaign),
                 &reply);
    if (r == 0 && !o.json)
        write_csv(stdout, json_object_get(reply, "experiments"));
    json_decref(reply);
    return r;
}

/* Experiments per request of `labloop export`: one page takes labloopd a few tens of
 * milliseconds, so stations' acks and status requests are served between pages however large
 * the campaign (reliability.md F16). */
#define EXPORT_PAGE 1000

/* The experiments of campaign (0: all) page by page, as one reply {"ok": true, "experiments":
 * [...]}; the exit status. Rows come in id order, each read whole at one instant; the pages are
 * read at different instants (see store_experiments_page_json). A labloopd that does not page
 * answers everything at once, which is taken as the whole answer. */
static int export_pages(const struct opts *o, const char *name, json_t **ret_reply)
{
    struct opts quiet = *o;
    quiet.json = 0; /* the pages are printed as one reply, below */
    json_t *all = json_array();
    json_int_t after = 0;
    int r = 0;
    for (;;) {
        json_t *page = NULL;
        r = call(&quiet,
                 name,
                 json_pack("{s:s,s:I,s:I,s:i}",
                           "cmd",
                           "experiments",
                           "id",
                           (json_int_t)o->campaign,
                           "after",
                           after,
                           "limit",
                           EXPORT_PAGE),
                 &page);
        if (r != 0)
            break;
        json_t *x = json_object_get(page, "experiments");
        size_t n = json_array_size(x), added = 0, i;
        json_t *row;
        json_array_foreach(x, i, row)
        {
            if (json_integer_value(json_object_get(row, "id")) > after) {
                json_array_append(all, row);
                added++;
            }
        }
        if (added > 0)
            after = json_integer_value(
                json_object_get(json_array_get(all, json_array_size(all) - 1), "id"));
        json_decref(page);
        if (n != EXPORT_PAGE || added == 0)
            break;
    }
    json_t *reply = json_pack("{s:o,s:b}", "experiments", all, "ok", 1);
    if (r == 0 && o->json) {
        json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("\n");
    }
    if (r == 0)
        *ret_reply = reply;
    else
        json_decref(reply);
    return r;
}

int cmd_export(int argc, char **argv)
{
    const char *usage = "export [--campaign ID] [--format csv|json] [--output FILE]";
    struct opts o;
    if (parse(argc, argv, &o, usage) < 0)
        return CMD_EXIT_USAGE;
    if (strcmp(o.format, "csv") != 0 && strcmp(o.format, "json") != 0) {
        fprintf(stderr, "labloop export: --format must be csv or json\n");
        return CMD_EXIT_USAGE;
    }
    json_t *reply = NULL, *fits = NULL;
    int r = export_pages(&o, argv[0], &reply);
    if (r == 0 && strcmp(o.format, "json") == 0 && o.campaign > 0)
        r = call(&o,
                 argv[0],
                 json_pack("{s:s,s:I}", "cmd", "fits", "id", (json_int_t)o.campaign),
                 &fits);
    if (r == 0 && !o.json) {
        FILE *out = o.output != NULL ? fopen(o.output, "w") : stdout;
        if (out == NULL) {
            fprintf(stderr, "labloop export: %s: %s\n", o.output, strerror(errno));
            r = CMD_EXIT_FAILED;
        } else {
            if (strcmp(o.format, "csv") == 0) {
                write_csv(out, json_object_get(reply, "experiments"));
            } else {
                json_t *doc =
                    json_pack("{s:O}", "experiments", json_object_get(reply, "experiments"));
                if (fits != NULL)
                    json_object_set(doc, "model_fits", json_object_get(fits, "fits"));
                json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
                fprintf(out, "\n");
                json_decref(doc);
            }
            if (out != stdout)
                fclose(out);
        }
    }
    json_decref(reply);
    json_decref(fits);
    return r;
}

/* The model check of `labloop pareto` (engine.c, model_check_json) as text. */
static void print_model_check(json_t *mc)
{
    json_int_t n = ji(mc, "n");
    const char *error = json_string_value(json_object_get(mc, "error"));
    if (error != NULL) {
        printf("model check: unavailable: %s\n", error);
        return;
    }
    if (n == 0) {
        printf("model check: no measured experiment with a prediction yet\n");
        return;
    }
    printf("model check: %lld measured experiments proposed by the models; z = (measured - "
           "predicted) / spread\n",
           (long long)n);
    const char *name;
    json_t *o;
    json_object_foreach(json_object_get(mc, "objectives"), name, o)
    {
        printf("  %-20s %lld of %lld within 2 sd, mean z %+.2f, rms z %.2f\n",
               name,
               ji(o, "within_2sd"),
               (long long)n,
               json_number_value(json_object_get(o, "mean_z")),
               json_number_value(json_object_get(o, "rms_z")));
    }
    printf("  (a calibrated model: about 95 %% within 2 sd, mean z near 0, rms z near 1)\n");
}

int cmd_pareto(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o, "pareto [--campaign ID] [--json]") < 0)
        return CMD_EXIT_USAGE;
    json_t *reply = NULL;
    int r = call(
        &o, argv[0], json_pack("{s:s,s:I}", "cmd", "pareto", "id", (json_int_t)o.campaign), &reply);
    if (r == 0 && !o.json) {
        json_t *objs = json_object_get(reply, "objectives");
        printf("campaign %lld '%s' (%s): %lld measured of %lld experiments; Pareto front of %zu:\n",
               ji(reply, "campaign"),
               js(reply, "name"),
               js(reply, "state"),
               ji(reply, "n_measured"),
               ji(reply, "n_experiments"),
               json_array_size(json_object_get(reply, "front")));
        printf("  experiment");
        size_t k;
        json_t *ob;
        json_array_foreach(objs, k, ob)
        {
            printf("  %14s(%s)", js(ob, "name"), js(ob, "goal"));
        }
        printf("  parameters\n");
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(reply, "front"), i, x)
        {
            printf("  %10lld", ji(x, "id"));
            json_array_foreach(objs, k, ob)
            {
                printf("  %19.6g",
                       json_number_value(
                           json_object_get(json_object_get(x, "objectives"), js(ob, "name"))));
            }
            printf(" ");
            const char *pk;
            json_t *pv;
            json_object_foreach(json_object_get(x, "params"), pk, pv)
            {
                printf(" %s=%.4g", pk, json_number_value(pv));
            }
            printf("\n");
        }
        printf("hypervolume: %.6g (reference point:",
               json_number_value(json_object_get(reply, "hypervolume")));
        json_array_foreach(objs, k, ob)
        {
            printf(" %s=%g", js(ob, "name"), json_number_value(json_object_get(ob, "ref")));
        }
        printf(")\n");
        print_model_check(json_object_get(reply, "model_check"));
    }
    json_decref(reply);
    return r;
}

/* The plot's input from the "pareto" reply (objectives, reference point) and the campaign's
 * experiments: the measured ones, in the order proposed (the store lists them by id), and
 * the count of failed or abandoned ones. Points are allocated into *ret_points (the caller
 * frees). Returns 0 or -ENOMEM. */
static int
plot_input(json_t *pareto, json_t *exps, struct plot_campaign *ret, struct plot_point **ret_points)
{
    memset(ret, 0, sizeof(*ret));
    ret->name = js(pareto, "name");
    ret->id = ji(pareto, "campaign");
    size_t k;
    json_t *ob;
    json_array_foreach(json_object_get(pareto, "objectives"), k, ob)
    {
        if (k >= PLOT_MAX_OBJECTIVES)
            break;
        ret->objectives[k].name = js(ob, "name");
        ret->objectives[k].maximise = strcmp(js(ob, "goal"), "max") == 0;
        ret->objectives[k].ref = json_number_value(json_object_get(ob, "ref"));
        ret->n_objectives = k + 1;
    }
    struct plot_point *pts = calloc(json_array_size(exps) + 1, sizeof(*pts));
    if (pts == NULL)
        return -ENOMEM;
    size_t i, n = 0;
    json_t *x;
    json_array_foreach(exps, i, x)
    {
        const char *state = js(x, "state");
        if (strcmp(state, "failed") == 0 || strcmp(state, "abandoned") == 0)
            ret->n_left_out++;
        if (strcmp(state, "measured") != 0)
            continue;
        pts[n].id = ji(x, "id");
        pts[n].round = (int)ji(x, "round");
        for (k = 0; k < ret->n_objectives; k++) {
            json_t *v = json_object_get(json_object_get(x, "objectives"), ret->objectives[k].name);
            pts[n].value[k] = json_is_number(v) ? json_number_value(v) : (double)NAN;
        }
        n++;
    }
    ret->points = pts;
    ret->n_points = n;
    *ret_points = pts;
    return 0;
}

/* `labloop plot --json`: what the SVG shows, as numbers. */
static int print_plot_json(json_t *pareto, const struct plot_campaign *c, const char *output)
{
    size_t n = c->n_points, m = c->n_objectives;
    double *min = calloc(n * m + 1, sizeof(double)), *hv = calloc(n + 1, sizeof(double));
    double ref[PLOT_MAX_OBJECTIVES];
    int r = min != NULL && hv != NULL ? 0 : -ENOMEM;
    for (size_t k = 0; k < m; k++)
        ref[k] = c->objectives[k].maximise ? -c->objectives[k].ref : c->objectives[k].ref;
    for (size_t i = 0; i < n && r == 0; i++)
        for (size_t k = 0; k < m; k++)
            min[i * m + k] =
                c->objectives[k].maximise ? -c->points[i].value[k] : c->points[i].value[k];
    if (r == 0)
        r = plot_hv_progression(min, n, m, ref, hv);
    json_t *prog = json_array(), *front = json_array(), *shown = json_array();
    for (size_t i = 0; i < n && r == 0; i++)
        json_array_append_new(prog,
                              json_pack("{s:I,s:i,s:f}",
                                        "experiment",
                                        (json_int_t)c->points[i].id,
                                        "round",
                                        c->points[i].round,
                                        "hypervolume",
                                        hv[i]));
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(pareto, "front"), i, x)
    {
        json_array_append_new(front, json_integer(json_integer_value(json_object_get(x, "id"))));
    }
    for (size_t k = 0; k < m && k < 2 && m >= 2; k++)
        json_array_append_new(shown, json_string(c->objectives[k].name));
    json_t *doc = json_pack("{s:I,s:s,s:O,s:o,s:I,s:I,s:o,s:f,s:o}",
                            "campaign",
                            (json_int_t)c->id,
                            "name",
                            c->name,
                            "objectives",
                            json_object_get(pareto, "objectives"),
                            "shown",
                            shown,
                            "n_measured",
                            (json_int_t)n,
                            "n_left_out",
                            (json_int_t)c->n_left_out,
                            "progression",
                            prog,
                            "hypervolume",
                            r == 0 && n > 0 ? hv[n - 1] : 0.0,
                            "front",
                            front);
    if (doc != NULL)
        json_object_set_new(doc, "output", output != NULL ? json_string(output) : json_null());
    if (r == 0 && doc != NULL) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("\n");
    }
    json_decref(doc);
    free(min);
    free(hv);
    return r < 0 ? r : doc == NULL ? -ENOMEM : 0;
}

int cmd_plot(int argc, char **argv)
{
    const char *usage = "plot [--campaign ID] [--output FILE] [--width PX] [--json]";
    struct opts o;
    if (parse(argc, argv, &o, usage) < 0)
        return CMD_EXIT_USAGE;
    if (o.n_args > 0) { /* --width was checked by parse() */
        fprintf(
            stderr, "labloop plot: no positional argument expected\nusage: labloop %s\n", usage);
        return CMD_EXIT_USAGE;
    }
    struct opts quiet = o; /* the replies are not printed: the plot (or its summary) is */
    quiet.json = 0;
    json_t *pareto = NULL, *exps = NULL;
    struct plot_point *points = NULL;
    int r = call(&quiet,
                 argv[0],
                 json_pack("{s:s,s:I}", "cmd", "pareto", "id", (json_int_t)o.campaign),
                 &pareto);
    if (r == 0) /* the campaign "pareto" chose (the latest one without --campaign) */
        r = call(
            &quiet,
            argv[0],
            json_pack("{s:s,s:I}", "cmd", "experiments", "id", (json_int_t)ji(pareto, "campaign")),
            &exps);
    struct plot_campaign c;
    if (r == 0 && plot_input(pareto, json_object_get(exps, "experiments"), &c, &points) < 0) {
        fprintf(stderr, "labloop plot: out of memory\n");
        r = CMD_EXIT_FAILED;
    }
    if (r == 0 && (o.output != NULL || !o.json)) {
        FILE *out = o.output != NULL ? fopen(o.output, "w") : stdout;
        int e = out != NULL ? plot_svg(out, &c, o.width_px) : -errno;
        if (out != NULL && out != stdout && fclose(out) != 0 && e == 0)
            e = -errno;
        if (e < 0) {
            fprintf(stderr,
                    "labloop plot: %s: %s\n",
                    o.output != NULL ? o.output : "standard output",
                    strerror(-e));
            r = CMD_EXIT_FAILED;
        }
    }
    if (r == 0 && o.json && print_plot_json(pareto, &c, o.output) < 0) {
        fprintf(stderr, "labloop plot: out of memory\n");
        r = CMD_EXIT_FAILED;
    }
    free(points);
    json_decref(pareto);
    json_decref(exps);
    return r;
}

int cmd_events(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o, "events [--campaign ID] [--limit N] [--json]") < 0)
        return CMD_EXIT_USAGE;
    json_t *reply = NULL;
    int r = call(
        &o,
        argv[0],
        json_pack("{s:s,s:I,s:i}", "cmd", "events", "id", (json_int_t)o.campaign, "limit", o.limit),
        &reply);
    if (r == 0 && !o.json) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(reply, "events"), i, x)
        {
            printf("%lld <%lld> %s campaign=%lld exp=%lld step=%lld %s\n",
                   ji(x, "id"),
                   ji(x, "level"),
                   js(x, "kind"),
                   ji(x, "campaign_id"),
                   ji(x, "experiment_id"),
                   ji(x, "step_id"),
                   js(x, "message"));
        }
    }
    json_decref(reply);
    return r;
}

/* "2026-11-26 10:44:01" (UTC) from milliseconds since the epoch. */
static void utc_text(int64_t ms, char *out, size_t cap)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "?");
}

/* The figures worth a glance per kind (labloop analyze prints them all). */
static void print_figures(json_t *derived)
{
    static const char *const names[] = {"pce_pct",
                                        "voc_v",
                                        "jsc_ma_cm2",
                                        "ff",
                                        "hysteresis_index",
                                        "t80_h",
                                        "log10_t80_h",
                                        "sigma_s_cm",
                                        "ea_ev"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *v = json_object_get(derived, names[i]);
        if (json_is_number(v))
            printf(" %s=%.4g", names[i], json_number_value(v));
    }
}

/* station "epoch:seq", or "seq" alone for a station that sends no epoch */
static void print_origin(json_t *x)
{
    char origin[128];
    if (js(x, "epoch")[0] != '\0')
        snprintf(origin, sizeof(origin), "%s:%lld", js(x, "epoch"), ji(x, "seq"));
    else
        snprintf(origin, sizeof(origin), "%lld", ji(x, "seq"));
    printf("  %-8s %-22s", js(x, "station"), origin);
}

int cmd_measurements(int argc, char **argv)
{
    const char *usage = "measurements [--campaign ID] [--limit N] [rejected] [--json]";
    struct opts o;
    if (parse(argc, argv, &o, usage) < 0)
        return CMD_EXIT_USAGE;
    int rejected = o.n_args == 1 && strcmp(o.args[0], "rejected") == 0;
    if (o.n_args > 1 || (o.n_args == 1 && !rejected)) {
        fprintf(stderr, "usage: labloop %s\n", usage);
        return CMD_EXIT_USAGE;
    }
    json_t *reply = NULL;
    int r = call(&o,
                 argv[0],
                 json_pack("{s:s,s:I,s:i,s:b}",
                           "cmd",
                           "measurements",
                           "id",
                           (json_int_t)o.campaign,
                           "limit",
                           o.limit,
                           "rejected",
                           rejected),
                 &reply);
    if (r != 0 || o.json) {
        json_decref(reply);
        return r;
    }
    json_t *rows = json_object_get(reply, rejected ? "rejections" : "measurements");
    printf("%zu %s (the newest, oldest first; --limit N for more)\n",
           json_array_size(rows),
           rejected ? "rejected messages" : "measurements");
    size_t i;
    json_t *x;
    char when[32];
    json_array_foreach(rows, i, x)
    {
        utc_text(ji(x, "received_at"), when, sizeof(when));
        printf("%6lld  %s", ji(x, "id"), when);
        print_origin(x);
        if (rejected) {
            printf(" %8lld B  %s\n", ji(x, "bytes"), js(x, "reason"));
            continue;
        }
        printf(" %-9s %-10s exp %-5lld %-7s",
               js(x, "kind"),
               js(x, "sample"),
               ji(x, "experiment_id"),
               js(x, "status"));
        if (strcmp(js(x, "status"), "failed") == 0)
            printf(" %s", js(x, "step_result"));
        print_figures(json_object_get(x, "derived"));
        json_t *objs = json_object_get(x, "objectives");
        if (strcmp(js(x, "status"), "ok") == 0 && json_array_size(objs) == 0)
            printf("  (not used for an objective)");
        printf("\n");
    }
    json_decref(reply);
    return r;
}

int cmd_backup(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o, "backup FILE") < 0)
        return CMD_EXIT_USAGE;
    if (o.n_args != 1) {
        fprintf(stderr, "usage: labloop backup FILE\n");
        return CMD_EXIT_USAGE;
    }
    /* the daemon writes the file: give it an absolute path */
    char copy[PATH_MAX], dir[PATH_MAX], abs[PATH_MAX * 2];
    snprintf(copy, sizeof(copy), "%s", o.args[0]);
    if (realpath(dirname(copy), dir) == NULL) {
        fprintf(stderr, "labloop backup: %s: %s\n", o.args[0], strerror(errno));
        return CMD_EXIT_USAGE;
    }
    snprintf(copy, sizeof(copy), "%s", o.args[0]);
    snprintf(abs, sizeof(abs), "%s/%s", dir, basename(copy));
    json_t *reply = NULL;
    int r = call(&o, argv[0], json_pack("{s:s,s:s}", "cmd", "backup", "file", abs), &reply);
    if (r == 0 && !o.json)
        printf("backup written to %s (online backup: a consistent snapshot)\n", abs);
    json_decref(reply);
    return r;
}

int cmd_resolve(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o, "resolve STEP done|failed") < 0)
        return CMD_EXIT_USAGE;
    if (o.n_args != 2) {
        fprintf(stderr, "usage: labloop resolve STEP done|failed\n");
        return CMD_EXIT_USAGE;
    }
    json_int_t step = 0;
    if (arg_id("resolve", "STEP", o.args[0], &step) != 0)
        return CMD_EXIT_USAGE;
    json_t *reply = NULL;
    int r = call(&o,
                 argv[0],
                 json_pack("{s:s,s:I,s:s}", "cmd", "resolve", "step", step, "answer", o.args[1]),
                 &reply);
    if (r == 0 && !o.json)
        printf("step %s recorded as %s\n", o.args[0], o.args[1]);
    json_decref(reply);
    return r;
}

int cmd_rack(int argc, char **argv)
{
    struct opts o;
    const char *usage = "rack [unloaded] [--json]";
    if (parse(argc, argv, &o, usage) < 0)
        return CMD_EXIT_USAGE;
    if (o.n_args > 1 || (o.n_args == 1 && strcmp(o.args[0], "unloaded") != 0)) {
        fprintf(stderr, "usage: labloop %s\n", usage);
        return CMD_EXIT_USAGE;
    }
    int unload = o.n_args == 1;
    json_t *reply = NULL;
    int r = call(&o,
                 argv[0],
                 unload ? json_pack("{s:s,s:s}", "cmd", "rack", "op", "unloaded")
                        : json_pack("{s:s}", "cmd", "rack"),
                 &reply);
    if (r == 0 && !o.json) {
        if (unload)
            printf("rack unloaded: %lld finished samples' wells are free again\n",
                   ji(reply, "unloaded"));
        printf("rack: %lld of %lld wells hold samples, %lld free",
               ji(reply, "occupied"),
               ji(reply, "wells"),
               ji(reply, "free"));
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(reply, "occupied_wells"), i, w)
        {
            printf("%s%lld", i == 0 ? "; occupied:" : ",", (long long)json_integer_value(w));
        }
        printf("\n");
        if (json_is_true(json_object_get(reply, "full")))
            printf("RACK FULL: unload the rack, then run `labloop rack unloaded`\n");
    }
    json_decref(reply);
    return r;
}

/* sim_coater — SPN/1 spin coater (see sim_coater.h; protocol: hardware.md §2.3). */
#include "simulators/sim_coater.h"

#include "common/ll_crc.h"
#include "simulators/sim_log.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_DECEL_RPM_S 2000.0

const char *sim_coater_state_name(enum sim_coater_state s)
{
    switch (s) {
    case SIM_COATER_IDLE:
        return "IDLE";
    case SIM_COATER_ARMED:
        return "ARMED";
    case SIM_COATER_RUNNING:
        return "RUNNING";
    case SIM_COATER_STOPPING:
        return "STOPPING";
    case SIM_COATER_DONE:
        return "DONE";
    case SIM_COATER_ERROR:
        return "ERROR";
    }
    return "?";
}

void sim_coater_init(struct sim_coater *c,
                     double max_rpm,
                     double max_acc_rpm_s,
                     struct sim_faults *faults)
{
    memset(c, 0, sizeof(*c));
    c->max_rpm = max_rpm > 0 ? max_rpm : 10000;
    c->max_acc_rpm_s = max_acc_rpm_s > 0 ? max_acc_rpm_s : 10000;
    c->vac_on = 1;
    c->state = SIM_COATER_IDLE;
    c->faults = faults;
}

/* Strict decimal number (digits with an optional fraction); returns 0 on success. */
static int parse_number(const char *s, double *ret)
{
    if (s == NULL || *s == '\0' || strlen(s) > 12)
        return -1;
    int dots = 0, digits = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.')
            dots++;
        else if (isdigit((unsigned char)*p))
            digits++;
        else
            return -1;
    }
    if (dots > 1 || digits == 0)
        return -1;
    *ret = strtod(s, NULL);
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *ret)
{
    double v;
    if (parse_number(s, &v) != 0 || strchr(s, '.') != NULL)
        return -1;
    if (v < lo || v > hi)
        return -2;
    *ret = (int)v;
    return 0;
}

static int valid_job(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > SIM_COATER_JOB_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)s[i]) || s[i] == '*')
            return 0;
    return 1;
}

static double recipe_duration_s(const struct sim_coater_recipe *r)
{
    double t = 0;
    for (int i = 0; i < r->n; i++)
        t += r->stages[i].s;
    return t;
}

static void interlock_stop(struct sim_coater *c, int code)
{
    c->err = code;
    snprintf(c->last_result, sizeof(c->last_result), "E%02d", code);
    if (c->state == SIM_COATER_RUNNING)
        c->state = SIM_COATER_STOPPING;
    else if (c->state == SIM_COATER_ARMED)
        c->state = SIM_COATER_ERROR;
}

static void count_run(struct sim_coater *c, const char *job)
{
    for (int i = 0; i < c->n_runs; i++) {
        if (strcmp(c->runs[i].job, job) == 0) {
            c->runs[i].n++;
            return;
        }
    }
    if (c->n_runs < (int)(sizeof(c->runs) / sizeof(c->runs[0]))) {
        snprintf(c->runs[c->n_runs].job, sizeof(c->runs[c->n_runs].job), "%s", job);
        c->runs[c->n_runs].n = 1;
        c->n_runs++;
    }
}

#define ERR(code, token) snprintf(data, cap, "ERR E%02d %s", (code), (token))

/* RCP <n> CLEAR | RCP <n> STAGE <i> <rpm> <acc> <s> */
static void execute_rcp(struct sim_coater *c, char **tok, int n, char *data, size_t cap)
{
    int r = 0;
    int rc = parse_int(tok[1], 1, SIM_COATER_RECIPES, &r);
    if (rc == -1) {
        ERR(2, "SYNTAX");
        return;
    }
    if (rc == -2) {
        ERR(3, "RANGE");
        return;
    }
    int active = c->state == SIM_COATER_RUNNING || c->state == SIM_COATER_STOPPING;
    if (strcmp(tok[2], "CLEAR") == 0 && n == 3) {
        if (active && c->run_recipe == r) {
            ERR(4, "BUSY");
            return;
        }
        c->recipes[r - 1].n = 0;
        snprintf(data, cap, "OK RCP %d CLEAR", r);
    } else if (strcmp(tok[2], "STAGE") == 0 && n == 7) {
        int i;
        double rpm, acc, s;
        if (parse_int(tok[3], 0, 99, &i) != 0 || parse_number(tok[4], &rpm) != 0 ||
            parse_number(tok[5], &acc) != 0 || parse_number(tok[6], &s) != 0) {
            ERR(2, "SYNTAX");
            return;
        }
        struct sim_coater_recipe *rcp = &c->recipes[r - 1];
        if (i < 1 || i > SIM_COATER_STAGES || i > rcp->n + 1 || rpm > c->max_rpm || acc < 1 ||
            acc > c->max_acc_rpm_s || s < 0.1 || s > 3600) {
            ERR(3, "RANGE");
            return;
        }
        if (active && c->run_recipe == r) {
            ERR(4, "BUSY");
            return;
        }
        rcp->stages[i - 1] = (struct sim_coater_stage){rpm, acc, s};
        if (i > rcp->n)
            rcp->n = i;
        snprintf(data, cap, "OK RCP %d STAGE %d", r, i);
    } else {
        ERR(2, "SYNTAX");
    }
}

/* RUN <n> <jobid>: only from ARMED; the running or last job id again is a no-op. */
static void execute_run(struct sim_coater *c, char **tok, char *data, size_t cap)
{
    int r = 0;
    int rc = parse_int(tok[1], 1, SIM_COATER_RECIPES, &r);
    if (rc == -1 || !valid_job(tok[2])) {
        ERR(2, "SYNTAX");
        return;
    }
    if (c->job[0] != '\0' && strcmp(c->job, tok[2]) == 0) {
        snprintf(data, cap, "OK RUN %d %s", r, tok[2]); /* same job: a no-op */
        return;
    }
    if (rc == -2) {
        ERR(3, "RANGE");
    } else if (c->state != SIM_COATER_ARMED) {
        ERR(4, "STATE");
    } else if (c->recipes[r - 1].n == 0) {
        ERR(10, "RECIPE_EMPTY");
    } else if (c->lid_open) {
        ERR(5, "LID_OPEN");
    } else if (!c->vac_on) {
        ERR(6, "VACUUM_LOST");
    } else {
        snprintf(c->job, sizeof(c->job), "%s", tok[2]);
        c->state = SIM_COATER_RUNNING;
        c->run_recipe = r;
        c->stage = 0;
        c->rpm = c->t_run_s = c->t_stage_s = c->peak_rpm = c->dur_s = 0.0;
        c->err = 0;
        c->last_result[0] = '\0';
        c->pending_err = 0;
        if (c->faults != NULL) {
            if (sim_fault_check(c->faults, "coater.lid", c->job)) {
                c->pending_err = 5;
                sim_log(SIM_LOG_WARNING, "fault=coater.lid job=%s", c->job);
            }
            if (sim_fault_check(c->faults, "coater.vacuum", c->job)) {
                c->pending_err = 6;
                sim_log(SIM_LOG_WARNING, "fault=coater.vacuum job=%s", c->job);
            }
            if (sim_fault_check(c->faults, "coater.overspeed", c->job)) {
                c->pending_err = 7;
                sim_log(SIM_LOG_WARNING, "fault=coater.overspeed job=%s", c->job);
            }
            c->pending_at_s = 0.5 * recipe_duration_s(&c->recipes[r - 1]);
        }
        count_run(c, c->job);
        snprintf(data, cap, "OK RUN %d %s", r, c->job);
    }
}

/* Executes the command in tokens; writes "OK ..." or "ERR ..." to data. */
static void execute(struct sim_coater *c, char **tok, int n, char *data, size_t cap)
{
    const char *verb = tok[0];
    if (strcmp(verb, "ID?") == 0 && n == 1) {
        snprintf(data, cap, "OK MODEL=LABSIM-SPN FW=1.0 SN=0001 PROTO=SPN/1");
    } else if (strcmp(verb, "STATUS?") == 0 && n == 1) {
        char err[8] = "0";
        if (c->err)
            snprintf(err, sizeof(err), "E%02d", c->err);
        int active = c->state == SIM_COATER_RUNNING || c->state == SIM_COATER_STOPPING;
        snprintf(data,
                 cap,
                 "OK STATE=%s JOB=%s RCP=%d STAGE=%d RPM=%.0f T=%.1f LID=%d VAC=%d ERR=%s",
                 sim_coater_state_name(c->state),
                 c->job[0] ? c->job : "-",
                 active ? c->run_recipe : 0,
                 c->state == SIM_COATER_RUNNING ? c->stage + 1 : 0,
                 c->rpm,
                 active ? c->t_run_s : 0.0,
                 !c->lid_open,
                 c->vac_on,
                 err);
    } else if (strcmp(verb, "RCP") == 0 && n >= 3) {
        execute_rcp(c, tok, n, data, cap);
    } else if (strcmp(verb, "RCP?") == 0 && n == 2) {
        int r = 0;
        int rc = parse_int(tok[1], 1, SIM_COATER_RECIPES, &r);
        if (rc != 0) {
            ERR(rc == -1 ? 2 : 3, rc == -1 ? "SYNTAX" : "RANGE");
            return;
        }
        const struct sim_coater_recipe *rcp = &c->recipes[r - 1];
        size_t len = (size_t)snprintf(data, cap, "OK RCP %d N=%d", r, rcp->n);
        for (int i = 0; i < rcp->n && len < cap; i++)
            len += (size_t)snprintf(data + len,
                                    cap - len,
                                    " S%d=%g,%g,%g",
                                    i + 1,
                                    rcp->stages[i].rpm,
                                    rcp->stages[i].acc_rpm_s,
                                    rcp->stages[i].s);
    } else if (strcmp(verb, "ARM") == 0 && n == 1) {
        if (c->state != SIM_COATER_IDLE && c->state != SIM_COATER_DONE &&
            c->state != SIM_COATER_ARMED) {
            ERR(4, "STATE");
        } else if (c->lid_open) {
            ERR(5, "LID_OPEN");
        } else if (!c->vac_on) {
            ERR(6, "VACUUM_LOST");
        } else {
            c->state = SIM_COATER_ARMED;
            snprintf(data, cap, "OK ARM");
        }
    } else if (strcmp(verb, "RUN") == 0 && n == 3) {
        execute_run(c, tok, data, cap);
    } else if (strcmp(verb, "ABORT") == 0 && n == 1) {
        if (c->state == SIM_COATER_RUNNING) {
            c->state = SIM_COATER_STOPPING;
            snprintf(c->last_result, sizeof(c->last_result), "ABORTED");
        } else if (c->state == SIM_COATER_ARMED) {
            c->state = SIM_COATER_IDLE;
        }
        snprintf(data, cap, "OK ABORT");
    } else if (strcmp(verb, "VAC") == 0 && n == 2 &&
               (strcmp(tok[1], "ON") == 0 || strcmp(tok[1], "OFF") == 0)) {
        if (c->state == SIM_COATER_RUNNING || c->state == SIM_COATER_STOPPING) {
            ERR(4, "BUSY");
            return;
        }
        c->vac_on = strcmp(tok[1], "ON") == 0;
        snprintf(data, cap, "OK VAC %s", tok[1]);
    } else if (strcmp(verb, "LAST?") == 0 && n == 1) {
        int finished =
            c->state == SIM_COATER_DONE || c->state == SIM_COATER_ERROR ||
            (c->job[0] && c->state != SIM_COATER_RUNNING && c->state != SIM_COATER_STOPPING);
        snprintf(data,
                 cap,
                 "OK JOB=%s RESULT=%s PEAK=%.0f DUR=%.1f",
                 c->job[0] ? c->job : "-",
                 !c->job[0]                  ? "-"
                 : !finished                 ? "RUNNING"
                 : c->last_result[0] != '\0' ? c->last_result
                                             : "OK",
                 c->peak_rpm,
                 c->dur_s);
    } else if (strcmp(verb, "WD") == 0 && n == 2) {
        double s;
        if (parse_number(tok[1], &s) != 0) {
            ERR(2, "SYNTAX");
        } else if (s > 3600) {
            ERR(3, "RANGE");
        } else {
            c->wd_s = s;
            snprintf(data, cap, "OK WD %s", tok[1]);
        }
    } else if (strcmp(verb, "CLR") == 0 && n == 1) {
        if (c->lid_open) {
            ERR(5, "LID_OPEN");
        } else if (!c->vac_on) {
            ERR(6, "VACUUM_LOST");
        } else {
            if (c->state == SIM_COATER_ERROR) {
                c->state = SIM_COATER_IDLE;
                c->err = 0;
            }
            snprintf(data, cap, "OK CLR");
        }
    } else if (strcmp(verb, "LID") == 0 && n == 2 &&
               (strcmp(tok[1], "OPEN") == 0 || strcmp(tok[1], "CLOSE") == 0)) {
        c->lid_open = strcmp(tok[1], "OPEN") == 0;
        if (c->lid_open && (c->state == SIM_COATER_RUNNING || c->state == SIM_COATER_ARMED))
            interlock_stop(c, 5);
        snprintf(data, cap, "OK LID %s", tok[1]);
    } else if (strcmp(verb, "ID?") == 0 || strcmp(verb, "STATUS?") == 0 ||
               strcmp(verb, "RCP") == 0 || strcmp(verb, "RCP?") == 0 || strcmp(verb, "ARM") == 0 ||
               strcmp(verb, "RUN") == 0 || strcmp(verb, "ABORT") == 0 || strcmp(verb, "VAC") == 0 ||
               strcmp(verb, "LAST?") == 0 || strcmp(verb, "WD") == 0 || strcmp(verb, "CLR") == 0 ||
               strcmp(verb, "LID") == 0) {
        ERR(2, "SYNTAX");
    } else {
        ERR(2, "UNKNOWN_VERB");
    }
}

/* Writes "<seq> <body>*CRC\r\n" to out; returns its length. */
static size_t frame_reply(unsigned seq, const char *body, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%u %s", seq, body);
    if (n < 0 || (size_t)n + 8 > cap)
        return 0;
    uint16_t crc = ll_crc16_ccitt_false((const uint8_t *)out, (size_t)n);
    n += snprintf(out + n, cap - (size_t)n, "*%04X\r\n", crc);
    return (size_t)n;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* The job id of a "RUN <n> <jobid>" body (bytes from..to of line) into job (cap bytes);
 * "" for any other body. Job-scoped fault rules (NAME@job=ID) see it on every per-frame
 * opportunity of that RUN frame (docs/instruments.md §6). */
static void run_job_of(const char *line, size_t from, size_t to, char *job, size_t cap)
{
    job[0] = '\0';
    if (to < from + 4 || memcmp(line + from, "RUN ", 4) != 0)
        return;
    size_t i = from + 4;
    while (i < to && line[i] != ' ')
        i++; /* the recipe number */
    if (i >= to)
        return;
    size_t start = i + 1, end = start;
    while (end < to && line[end] != ' ')
        end++;
    if (end != to || end == start || end - start >= cap)
        return;
    memcpy(job, line + start, end - start);
    job[end - start] = '\0';
}

size_t sim_coater_line(
    struct sim_coater *c, const char *line, size_t len, int64_t now_ms, char *out, size_t cap)
{
    if (cap < 256 || len > SIM_COATER_LINE_MAX - 2)
        return 0;
    /* SEQ: 1-5 digits then a space */
    size_t i = 0;
    unsigned long seq = 0;
    while (i < len && i < 6 && isdigit((unsigned char)line[i]))
        seq = seq * 10 + (unsigned long)(line[i++] - '0');
    if (i == 0 || i > 5 || seq > 65535 || i >= len || line[i] != ' ')
        return 0;
    size_t body_start = i + 1;
    /* CRC: '*' and exactly four hex digits at the end */
    int crc_ok = 0;
    uint16_t crc = 0;
    size_t star = len >= 5 ? len - 5 : 0;
    if (len >= body_start + 5 && line[star] == '*') {
        int v = 0;
        for (size_t k = star + 1; k < len && v >= 0; k++) {
            int h = hexval(line[k]);
            v = h < 0 ? -1 : v * 16 + h;
        }
        if (v >= 0) {
            crc = ll_crc16_ccitt_false((const uint8_t *)line, star);
            crc_ok = crc == (uint16_t)v;
        }
    }
    if (!crc_ok)
        return frame_reply((unsigned)seq, "ERR E01 BAD_CRC", out, cap);
    c->last_valid_ms = now_ms;

    for (int k = 0; k < SIM_COATER_CACHE; k++) {
        struct sim_coater_cache_entry *e = &c->cache[k];
        if (!e->used || e->seq != seq)
            continue;
        if (e->crc == crc) {
            size_t n = strlen(e->reply);
            memcpy(out, e->reply, n + 1);
            return n;
        }
        return frame_reply((unsigned)seq, "ERR E04 SEQ_REUSED", out, cap);
    }
    char run_job[SIM_COATER_LINE_MAX];
    run_job_of(line, body_start, star, run_job, sizeof(run_job));
    const char *jobp = run_job[0] != '\0' ? run_job : NULL;
    if (c->faults != NULL && sim_fault_check(c->faults, "coater.err", jobp)) {
        sim_log(SIM_LOG_WARNING, "fault=coater.err seq=%lu job=%s", seq, jobp ? jobp : "-");
        return frame_reply((unsigned)seq, "ERR E99 INTERNAL", out, cap);
    }

    char body[SIM_COATER_LINE_MAX];
    size_t body_len = star - body_start;
    memcpy(body, line + body_start, body_len);
    body[body_len] = '\0';
    char *tok[12];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(body, " ", &save); t != NULL && n < 12; t = strtok_r(NULL, " ", &save))
        tok[n++] = t;
    char data[SIM_COATER_LINE_MAX + 64];
    if (n == 0 || memchr(line + body_start, '\0', body_len) != NULL)
        snprintf(data, sizeof(data), "ERR E02 SYNTAX");
    else
        execute(c, tok, n, data, sizeof(data));

    size_t rlen = frame_reply((unsigned)seq, data, out, cap);
    struct sim_coater_cache_entry *e = &c->cache[c->cache_next];
    c->cache_next = (c->cache_next + 1) % SIM_COATER_CACHE;
    e->used = 1;
    e->seq = (unsigned)seq;
    e->crc = crc;
    snprintf(e->reply, sizeof(e->reply), "%s", out);
    if (c->faults != NULL && sim_fault_check(c->faults, "coater.no_reply", jobp)) {
        sim_log(SIM_LOG_WARNING, "fault=coater.no_reply seq=%lu job=%s", seq, jobp ? jobp : "-");
        return 0;
    }
    if (c->faults != NULL && sim_fault_check(c->faults, "coater.garbage", jobp)) {
        size_t g = 1 + (size_t)(sim_fault_uniform(c->faults, "coater.garbage") * 8);
        sim_log(SIM_LOG_WARNING,
                "fault=coater.garbage seq=%lu job=%s bytes=%zu",
                seq,
                jobp ? jobp : "-",
                g);
        if (rlen + g + 1 <= cap) {
            memmove(out + g, out, rlen + 1);
            for (size_t k = 0; k < g; k++)
                out[k] = (char)('!' + (int)(sim_fault_uniform(c->faults, "coater.garbage") * 90));
            rlen += g;
        }
    }
    return rlen;
}

static void finish_run(struct sim_coater *c)
{
    c->rpm = 0.0;
    c->dur_s = c->t_run_s;
    c->state = c->err ? SIM_COATER_ERROR : SIM_COATER_DONE;
    c->run_finished = 1;
}

double sim_coater_next_event_s(const struct sim_coater *c)
{
    if (c->state == SIM_COATER_STOPPING)
        return fmax(0.0, c->rpm / STOP_DECEL_RPM_S);
    if (c->state != SIM_COATER_RUNNING)
        return HUGE_VAL;
    const struct sim_coater_stage *st = &c->recipes[c->run_recipe - 1].stages[c->stage];
    double due = st->s - c->t_stage_s;
    if (c->pending_err)
        due = fmin(due, c->pending_at_s - c->t_run_s);
    return fmax(0.0, due);
}

void sim_coater_advance(struct sim_coater *c, double dt_s, int64_t now_ms)
{
    if (c->wd_s > 0 && (c->state == SIM_COATER_ARMED || c->state == SIM_COATER_RUNNING) &&
        now_ms - c->last_valid_ms > (int64_t)(c->wd_s * 1000.0))
        interlock_stop(c, 8);
    double left = dt_s;
    while (left > 0.0 && c->state == SIM_COATER_RUNNING) {
        const struct sim_coater_recipe *r = &c->recipes[c->run_recipe - 1];
        const struct sim_coater_stage *st = &r->stages[c->stage];
        double step = fmin(left, st->s - c->t_stage_s);
        if (c->pending_err && c->t_run_s + step >= c->pending_at_s)
            step = fmax(0.0, c->pending_at_s - c->t_run_s);
        double dv = st->acc_rpm_s * step;
        if (fabs(st->rpm - c->rpm) <= dv)
            c->rpm = st->rpm;
        else
            c->rpm += st->rpm > c->rpm ? dv : -dv;
        if (c->rpm > c->peak_rpm)
            c->peak_rpm = c->rpm;
        c->t_stage_s += step;
        c->t_run_s += step;
        left -= step;
        if (c->pending_err && c->t_run_s >= c->pending_at_s) {
            int code = c->pending_err;
            c->pending_err = 0;
            if (code == 5)
                c->lid_open = 1;
            if (code == 6)
                c->vac_on = 0;
            interlock_stop(c, code);
            break;
        }
        if (c->t_stage_s >= st->s - 1e-9) {
            c->stage++;
            c->t_stage_s = 0.0;
            if (c->stage >= r->n)
                c->state = SIM_COATER_STOPPING;
        }
    }
    if (c->state == SIM_COATER_STOPPING && left > 0.0) {
        c->rpm -= STOP_DECEL_RPM_S * left;
        c->t_run_s += fmin(left, (c->rpm + STOP_DECEL_RPM_S * left) / STOP_DECEL_RPM_S);
        if (c->rpm <= 0.0)
            finish_run(c);
    }
}

/* sim_fault — reproducible fault injection (see sim_fault.h). */
#include "simulators/sim_fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every fault labsim knows, and how its argument (`NAME:ARG`) is written: none, two hex
 * digits (a Modbus exception code) or a decimal number (a delay in ms). New names go at the
 * end: the order is the order of the random streams in struct sim_faults. */
enum arg_kind {
    ARG_NONE,
    ARG_HEX,
    ARG_DEC,
    ARG_U16, /* a register value 0..65535: decimal, or hex with 0x (furnace.pv_raw) */
};
static const struct {
    const char *name;
    enum arg_kind arg;
} known_faults[] = {
    {"robot.exception",      ARG_HEX },
    {"robot.no_reply",       ARG_NONE},
    {"robot.garbage",        ARG_NONE},
    {"robot.disconnect",     ARG_NONE},
    {"robot.job_error",      ARG_NONE},
    {"furnace.no_reply",     ARG_NONE},
    {"furnace.garbage",      ARG_NONE},
    {"furnace.exception",    ARG_HEX },
    {"furnace.sensor_break", ARG_NONE},
    {"furnace.loop_break",   ARG_NONE},
    {"coater.err",           ARG_NONE},
    {"coater.no_reply",      ARG_NONE},
    {"coater.garbage",       ARG_NONE},
    {"coater.lid",           ARG_NONE},
    {"coater.vacuum",        ARG_NONE},
    {"coater.overspeed",     ARG_NONE},
    {"station.drop",         ARG_NONE},
    {"station.duplicate",    ARG_NONE},
    {"station.reorder",      ARG_NONE},
    {"station.corrupt",      ARG_NONE},
    {"station.disconnect",   ARG_NONE},
    {"furnace.wrong_slave",  ARG_NONE},
    {"furnace.echo",         ARG_NONE},
    {"furnace.truncated",    ARG_NONE},
    {"furnace.late",         ARG_DEC },
    {"robot.late",           ARG_DEC },
    {"robot.unplug",         ARG_DEC }, /* after its answer: cable out for ARG ms */
    {"robot.stall",          ARG_DEC }, /* after its answer: mute; new clients wait ARG ms */
    {"furnace.pv_error",     ARG_U16 },
    {"furnace.bad_state",    ARG_U16 },
    {"furnace.pv_raw",       ARG_U16 },
};
#define N_KNOWN (sizeof(known_faults) / sizeof(known_faults[0]))

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int known_index(const char *name)
{
    for (size_t i = 0; i < N_KNOWN; i++)
        if (strcmp(name, known_faults[i].name) == 0)
            return (int)i;
    return -1;
}

int sim_fault_known(const char *name)
{
    return known_index(name) >= 0;
}

static struct sim_fault_name *name_entry(struct sim_faults *f, const char *name)
{
    for (int i = 0; i < f->n_names; i++)
        if (strcmp(f->names[i].name, name) == 0)
            return &f->names[i];
    if (f->n_names >= SIM_FAULT_MAX_NAMES || !sim_fault_known(name))
        return NULL;
    struct sim_fault_name *e = &f->names[f->n_names++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    /* FNV-1a of the name, mixed with the seed */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    e->rng = h ^ (f->seed * 0x9E3779B97F4A7C15ull);
    return e;
}

/* Parses the argument of NAME:ARG for fault k into *ret. */
static int parse_arg(int k, const char *name, const char *text, long *ret, struct ll_error *reterr)
{
    char *end = NULL;

    if (known_faults[k].arg == ARG_NONE)
        return ll_error_set(reterr, -EINVAL, "--faults: %s takes no argument (':%s')", name, text);
    if (known_faults[k].arg == ARG_U16) {
        *ret = strtol(text, &end, 0);
        if (end == text || *end != '\0' || *ret < 0 || *ret > 65535 || text[0] == '-')
            return ll_error_set(reterr,
                                -EINVAL,
                                "--faults: %s: ':%s' is not a register value (0-65535 or "
                                "0x0000-0xFFFF)",
                                name,
                                text);
        return 0;
    }
    *ret = strtol(text, &end, known_faults[k].arg == ARG_HEX ? 16 : 10);
    if (end == text || *end != '\0' || *ret < 0 ||
        (known_faults[k].arg == ARG_HEX ? (strlen(text) != 2 || *ret < 1) : *ret > 600000))
        return ll_error_set(reterr,
                            -EINVAL,
                            known_faults[k].arg == ARG_HEX
                                ? "--faults: %s: ':%s' is not an exception code (two hex digits, "
                                  "01-FF)"
                                : "--faults: %s: ':%s' is not a delay in ms (0-600000)",
                            name,
                            text);
    return 0;
}

/* Parses one trigger KEY=VALUE of a rule into r. */
static int parse_trigger(struct sim_fault_rule *r, char *trigger, struct ll_error *reterr)
{
    char *eq = strchr(trigger, '=');
    char *end = NULL;
    const char *value;

    if (eq == NULL)
        return ll_error_set(
            reterr, -EINVAL, "--faults: %s: trigger '@%s' needs a value", r->name, trigger);
    *eq = '\0';
    value = eq + 1;
    if (strcmp(trigger, "n") == 0) {
        r->at_n = strtol(value, &end, 10);
        if (end == value || *end != '\0' || r->at_n < 1)
            return ll_error_set(
                reterr, -EINVAL, "--faults: %s@n: '%s' is not a positive count", r->name, value);
    } else if (strcmp(trigger, "job") == 0) {
        if (value[0] == '\0' || strlen(value) >= sizeof(r->at_job))
            return ll_error_set(
                reterr, -EINVAL, "--faults: %s@job: bad job id '%s'", r->name, value);
        snprintf(r->at_job, sizeof(r->at_job), "%s", value);
    } else if (strcmp(trigger, "fc") == 0) {
        long fc = strtol(value, &end, 10);
        if (end == value || *end != '\0' || fc < 1 || fc > 127)
            return ll_error_set(
                reterr, -EINVAL, "--faults: %s@fc: '%s' is not a function code", r->name, value);
        r->at_fc = (int)fc;
    } else if (strcmp(trigger, "reg") == 0) {
        r->at_reg = strtol(value, &end, 10);
        if (end == value || *end != '\0' || r->at_reg < 0 || r->at_reg > 65535)
            return ll_error_set(
                reterr, -EINVAL, "--faults: %s@reg: '%s' is not an address", r->name, value);
    } else {
        return ll_error_set(reterr,
                            -EINVAL,
                            "--faults: %s: unknown trigger '@%s' (use @n, @job, @fc or @reg)",
                            r->name,
                            trigger);
    }
    return 0;
}

/* Parses one rule NAME[:ARG]=RATE or NAME[:ARG]@KEY=VALUE[@KEY=VALUE...] (tok is modified). */
static int parse_rule(struct sim_fault_rule *r, char *tok, struct ll_error *reterr)
{
    char *at = strchr(tok, '@');
    char *eq, *colon;
    int k;

    memset(r, 0, sizeof(*r));
    r->at_reg = -1;
    r->arg = -1;
    if (at != NULL)
        *at = '\0';
    eq = strchr(tok, '=');
    if (eq != NULL)
        *eq = '\0';
    if ((at == NULL) == (eq == NULL))
        return ll_error_set(
            reterr, -EINVAL, "--faults: rule '%s': expected NAME=RATE or NAME@TRIGGER=VALUE", tok);
    colon = strchr(tok, ':');
    if (colon != NULL)
        *colon = '\0';
    k = known_index(tok);
    if (k < 0 || strlen(tok) >= sizeof(r->name))
        return ll_error_set(reterr, -EINVAL, "--faults: unknown fault '%s'", tok);
    snprintf(r->name, sizeof(r->name), "%s", tok);
    if (colon != NULL && parse_arg(k, tok, colon + 1, &r->arg, reterr) != 0)
        return -EINVAL;
    if (eq != NULL) {
        char *end = NULL;
        r->rate = strtod(eq + 1, &end);
        if (end == eq + 1 || *end != '\0' || !(r->rate >= 0.0 && r->rate <= 1.0))
            return ll_error_set(
                reterr, -EINVAL, "--faults: %s: rate '%s' is not in [0, 1]", tok, eq + 1);
        return 0;
    }
    while (at != NULL) {
        char *trigger = at + 1;
        at = strchr(trigger, '@');
        if (at != NULL)
            *at = '\0';
        if (parse_trigger(r, trigger, reterr) != 0)
            return -EINVAL;
    }
    return 0;
}

int sim_faults_add(struct sim_faults *f, const char *spec, struct ll_error *reterr)
{
    int n_rules = f->n_rules;
    char *copy, *save = NULL;
    int rc = 0;

    if (spec == NULL || spec[0] == '\0')
        return 0;
    copy = strdup(spec);
    if (copy == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (*tok == '\0')
            continue;
        if (f->n_rules >= SIM_FAULT_MAX_RULES) {
            rc = ll_error_set(reterr, -EINVAL, "--faults: more than %d rules", SIM_FAULT_MAX_RULES);
            break;
        }
        rc = parse_rule(&f->rules[f->n_rules], tok, reterr);
        if (rc != 0)
            break;
        f->n_rules++;
    }
    if (rc != 0)
        f->n_rules = n_rules;
    free(copy);
    return rc;
}

int sim_faults_init(struct sim_faults *f, const char *spec, uint64_t seed, struct ll_error *reterr)
{
    memset(f, 0, sizeof(*f));
    f->seed = seed;
    /* every known name gets its stream now, so the order of first use does not matter */
    for (size_t i = 0; i < N_KNOWN; i++)
        name_entry(f, known_faults[i].name);
    return sim_faults_add(f, spec, reterr);
}

/* Whether a scripted rule's triggers all hold at this opportunity. */
static int rule_matches(const struct sim_fault_rule *r,
                        const struct sim_fault_name *e,
                        const struct sim_fault_at *at)
{
    if (r->at_n == 0 && r->at_job[0] == '\0' && r->at_fc == 0 && r->at_reg < 0)
        return 0; /* a rate rule (NAME=0 never fires) */
    if (r->at_n > 0 && r->at_n != e->opportunities)
        return 0;
    if (r->at_job[0] != '\0' && (at == NULL || at->job == NULL || strcmp(at->job, r->at_job) != 0))
        return 0;
    if (r->at_fc > 0 && (at == NULL || at->fc != r->at_fc))
        return 0;
    if (r->at_reg >= 0 &&
        (at == NULL || at->fc == 0 || r->at_reg < at->addr || r->at_reg >= at->addr + at->count))
        return 0;
    return 1;
}

int sim_fault_check_at(struct sim_faults *f,
                       const char *name,
                       const struct sim_fault_at *at,
                       long *ret_arg)
{
    struct sim_fault_name *e = name_entry(f, name);
    int fire = 0, scripted = 0;

    if (ret_arg != NULL)
        *ret_arg = -1;
    if (e == NULL)
        return 0;
    e->opportunities++;
    /* one draw per opportunity, always, so the stream stays aligned */
    double u = (double)(splitmix64(&e->rng) >> 11) * 0x1.0p-53;
    if (e->armed > 0) {
        e->armed--;
        fire = 1;
    }
    for (int i = 0; i < f->n_rules; i++) {
        struct sim_fault_rule *r = &f->rules[i];
        if (strcmp(r->name, name) != 0)
            continue;
        if (r->rate > 0.0 && u < r->rate) {
            fire = 1;
            if (ret_arg != NULL && r->arg >= 0)
                *ret_arg = r->arg;
        }
        if (r->rate == 0.0 && !r->used && !scripted && rule_matches(r, e, at)) {
            r->used = r->at_n == 0; /* @n matches one opportunity anyway */
            scripted = fire = 1;
            if (ret_arg != NULL)
                *ret_arg = r->arg;
        }
    }
    if (fire)
        e->hits++;
    return fire;
}

int sim_fault_check(struct sim_faults *f, const char *name, const char *job)
{
    struct sim_fault_at at = {.job = job};

    return sim_fault_check_at(f, name, &at, NULL);
}

int sim_fault_arm(struct sim_faults *f, const char *name, long count)
{
    struct sim_fault_name *e = name_entry(f, name);
    if (e == NULL || count < 0)
        return -EINVAL;
    e->armed = count;
    return 0;
}

double sim_fault_uniform(struct sim_faults *f, const char *name)
{
    struct sim_fault_name *e = name_entry(f, name);
    if (e == NULL)
        return 0.0;
    return (double)(splitmix64(&e->rng) >> 11) * 0x1.0p-53;
}

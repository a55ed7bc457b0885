/* sim_fault — reproducible fault injection (see sim_fault.h). */
#include "simulators/sim_fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_faults[] = {
    "robot.exception",      "robot.no_reply",   "robot.garbage",    "robot.disconnect",
    "robot.job_error",      "furnace.no_reply", "furnace.garbage",  "furnace.exception",
    "furnace.sensor_break", "coater.err",       "coater.no_reply",  "coater.garbage",
    "coater.lid",           "coater.vacuum",    "coater.overspeed", "station.drop",
    "station.duplicate",    "station.reorder",  "station.corrupt",  "station.disconnect",
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int sim_fault_known(const char *name)
{
    for (size_t i = 0; i < sizeof(known_faults) / sizeof(known_faults[0]); i++)
        if (strcmp(name, known_faults[i]) == 0)
            return 1;
    return 0;
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

int sim_faults_init(struct sim_faults *f, const char *spec, uint64_t seed, struct ll_error *reterr)
{
    memset(f, 0, sizeof(*f));
    f->seed = seed;
    /* every known name gets its stream now, so the order of first use does not matter */
    for (size_t i = 0; i < sizeof(known_faults) / sizeof(known_faults[0]); i++)
        name_entry(f, known_faults[i]);
    if (spec == NULL || spec[0] == '\0')
        return 0;
    char *copy = strdup(spec);
    if (copy == NULL)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (*tok == '\0')
            continue;
        if (f->n_rules >= SIM_FAULT_MAX_RULES) {
            rc = ll_error_set(reterr, -EINVAL, "--faults: more than %d rules", SIM_FAULT_MAX_RULES);
            goto out;
        }
        struct sim_fault_rule *r = &f->rules[f->n_rules];
        memset(r, 0, sizeof(*r));
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            rc = ll_error_set(
                reterr, -EINVAL, "--faults: rule '%s': expected NAME=RATE or NAME@n=K", tok);
            goto out;
        }
        *eq = '\0';
        const char *value = eq + 1;
        char *at = strchr(tok, '@');
        if (at != NULL)
            *at = '\0';
        if (!sim_fault_known(tok) || strlen(tok) >= sizeof(r->name)) {
            rc = ll_error_set(reterr, -EINVAL, "--faults: unknown fault '%s'", tok);
            goto out;
        }
        snprintf(r->name, sizeof(r->name), "%s", tok);
        char *end = NULL;
        if (at == NULL) {
            r->rate = strtod(value, &end);
            if (end == value || *end != '\0' || !(r->rate >= 0.0 && r->rate <= 1.0)) {
                rc = ll_error_set(
                    reterr, -EINVAL, "--faults: %s: rate '%s' is not in [0, 1]", tok, value);
                goto out;
            }
        } else if (strcmp(at + 1, "n") == 0) {
            r->at_n = strtol(value, &end, 10);
            if (end == value || *end != '\0' || r->at_n < 1) {
                rc = ll_error_set(
                    reterr, -EINVAL, "--faults: %s@n: '%s' is not a positive count", tok, value);
                goto out;
            }
        } else if (strcmp(at + 1, "job") == 0) {
            if (value[0] == '\0' || strlen(value) >= sizeof(r->at_job)) {
                rc = ll_error_set(reterr, -EINVAL, "--faults: %s@job: bad job id '%s'", tok, value);
                goto out;
            }
            snprintf(r->at_job, sizeof(r->at_job), "%s", value);
        } else {
            rc = ll_error_set(reterr,
                              -EINVAL,
                              "--faults: %s: unknown trigger '@%s' (use @n or @job)",
                              tok,
                              at + 1);
            goto out;
        }
        f->n_rules++;
    }
out:
    free(copy);
    return rc;
}

int sim_fault_check(struct sim_faults *f, const char *name, const char *job)
{
    struct sim_fault_name *e = name_entry(f, name);
    if (e == NULL)
        return 0;
    e->opportunities++;
    /* one draw per opportunity, always, so the stream stays aligned */
    double u = (double)(splitmix64(&e->rng) >> 11) * 0x1.0p-53;
    int fire = 0;
    if (e->armed > 0) {
        e->armed--;
        fire = 1;
    }
    for (int i = 0; i < f->n_rules; i++) {
        struct sim_fault_rule *r = &f->rules[i];
        if (strcmp(r->name, name) != 0)
            continue;
        if (r->rate > 0.0 && u < r->rate)
            fire = 1;
        if (r->at_n > 0 && r->at_n == e->opportunities)
            fire = 1;
        if (r->at_job[0] != '\0' && !r->used && job != NULL && strcmp(job, r->at_job) == 0) {
            r->used = 1;
            fire = 1;
        }
    }
    if (fire)
        e->hits++;
    return fire;
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

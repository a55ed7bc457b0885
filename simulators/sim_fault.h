/* sim_fault — reproducible fault injection for labsim (docs/instruments.md §6).
 *
 * A fault spec is a comma list of rules: `NAME=RATE` fires with probability RATE at each
 * opportunity, `NAME@n=K` at the K-th opportunity (1-based), `NAME@job=ID` at the first
 * opportunity that carries job id ID (robot START, coater RUN). Modbus request faults also
 * take `@fc=F` (the first request with function code F) and `@reg=R` (the first request
 * whose registers include PDU address R); triggers combine (`@fc=3@reg=75`: all must
 * hold). Scripted rules fire once, and one opportunity uses up at most one of them, so a
 * rule given twice fires at two matching opportunities. Some faults take an argument after
 * a colon: `furnace.exception:02@reg=75` answers exception 02 (two hex digits, as the
 * Modbus specification writes them; 04 when none is given), `furnace.late:800` answers 800 ms
 * late (decimal), `furnace.pv_error:0x8003` puts that register value (0..65535, decimal or
 * 0x hex) in the PV word of a read reply (also furnace.pv_raw, furnace.bad_state: B8).
 * Every fault name draws
 * from its own splitmix64 stream seeded from the run's seed and the name, one draw per
 * opportunity whatever happens elsewhere, so the same seed and spec give the same faults
 * even when other instruments are busier in one run than in another. The control socket can
 * also arm a fault for the next N opportunities.
 */
#ifndef SIM_FAULT_H
#define SIM_FAULT_H

#include "common/ll_error.h"

#include <stdint.h>

#define SIM_FAULT_NAME_MAX 40
#define SIM_FAULT_MAX_RULES 32
#define SIM_FAULT_MAX_NAMES 32

struct sim_fault_rule {
    char name[SIM_FAULT_NAME_MAX];
    double rate;     /* probability per opportunity; 0 for scripted rules */
    long at_n;       /* fire at this opportunity number, 0 = not used */
    char at_job[40]; /* fire at the first opportunity with this job id, "" = not used */
    int at_fc;       /* ... with this Modbus function code, 0 = not used */
    long at_reg;     /* ... touching this PDU address, -1 = not used */
    long arg;        /* the rule's argument (exception code, delay in ms), -1 = none */
    int used;        /* scripted rule already fired */
};

/* What a request fault sees of the request. */
struct sim_fault_at {
    const char *job; /* the job id it carries (robot START, coater RUN), or NULL */
    int fc;          /* Modbus function code, 0 when not a Modbus request */
    int addr;        /* first PDU address, as on the wire */
    int count;       /* registers or bits it touches (1 for FC05/FC06) */
};

/* Per fault name: its random stream, how often it was asked and how often it fired. */
struct sim_fault_name {
    char name[SIM_FAULT_NAME_MAX];
    uint64_t rng;
    long opportunities;
    long hits;
    long armed; /* fire at the next `armed` opportunities (control socket) */
};

struct sim_faults {
    struct sim_fault_rule rules[SIM_FAULT_MAX_RULES];
    int n_rules;
    struct sim_fault_name names[SIM_FAULT_MAX_NAMES];
    int n_names;
    uint64_t seed;
};

/* Initialises f from spec (NULL or "" = no faults) and seed. Unknown fault names, rates
 * outside [0, 1] and malformed rules are errors (-EINVAL, reterr names the rule). */
int sim_faults_init(struct sim_faults *f, const char *spec, uint64_t seed, struct ll_error *reterr);

/* Adds the rules of spec (same syntax as for init) to f: the control socket's way to
 * script a fault mid-run. Errors as for init; on an error no rule of spec is kept. */
int sim_faults_add(struct sim_faults *f, const char *spec, struct ll_error *reterr);

/* One opportunity for fault `name` (which must be a known name); job is the job id the
 * opportunity carries, or NULL. Returns 1 when the fault fires, 0 otherwise. */
int sim_fault_check(struct sim_faults *f, const char *name, const char *job);

/* The same for a request that at describes (NULL: nothing known). When it fires,
 * *ret_arg (if not NULL) is the argument of the rule that fired, or -1 (a rate, an armed
 * fault, a rule without argument). */
int sim_fault_check_at(struct sim_faults *f,
                       const char *name,
                       const struct sim_fault_at *at,
                       long *ret_arg);

/* Arms fault name for the next count opportunities. Returns 0 or -EINVAL (unknown name). */
int sim_fault_arm(struct sim_faults *f, const char *name, long count);

/* 1 when name is a fault labsim knows. */
int sim_fault_known(const char *name);

/* A uniform double in [0, 1) from the stream of name (for the fault's details, e.g. how
 * many garbage bytes); deterministic like the checks. */
double sim_fault_uniform(struct sim_faults *f, const char *name);

#endif

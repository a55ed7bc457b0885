/* sim_coater — the simulated spin coater speaking SPN/1 (hardware.md §2.3,
 * docs/instruments.md §3).
 *
 * Transport-free: sim_coater_line() takes one received line (without its terminator) and
 * writes the reply line; sim_coater_advance() moves the spin on in simulated time.
 *
 * State machine:
 *
 *   IDLE/DONE --ARM (lid closed, vacuum on)--> ARMED --RUN--> RUNNING
 *   RUNNING --last stage over / ABORT--> STOPPING --rpm 0--> DONE
 *   RUNNING --lid, vacuum, overspeed, watchdog--> STOPPING --rpm 0--> ERROR (latched Enn)
 *   ARMED --watchdog--> ERROR;  ERROR --CLR (interlocks closed)--> IDLE
 *
 * The watchdog counts real time (the host polls in real time); spins count simulated time.
 */
#ifndef SIM_COATER_H
#define SIM_COATER_H

#include "simulators/sim_fault.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_COATER_RECIPES 16
#define SIM_COATER_STAGES 8
#define SIM_COATER_LINE_MAX 128
#define SIM_COATER_CACHE 8
#define SIM_COATER_JOB_MAX 32

enum sim_coater_state {
    SIM_COATER_IDLE,
    SIM_COATER_ARMED,
    SIM_COATER_RUNNING,
    SIM_COATER_STOPPING,
    SIM_COATER_DONE,
    SIM_COATER_ERROR,
};

struct sim_coater_stage {
    double rpm, acc_rpm_s, s;
};

struct sim_coater_recipe {
    int n;
    struct sim_coater_stage stages[SIM_COATER_STAGES];
};

struct sim_coater_cache_entry {
    int used;
    unsigned seq;
    uint16_t crc;
    char reply[SIM_COATER_LINE_MAX + 64];
};

struct sim_coater {
    struct sim_coater_recipe recipes[SIM_COATER_RECIPES];
    enum sim_coater_state state;
    double max_rpm, max_acc_rpm_s;
    int lid_open, vac_on;
    int err;                          /* latched error code (E05 ... E08), 0 none */
    char job[SIM_COATER_JOB_MAX + 1]; /* running or last job */
    char last_result[8];              /* OK, ABORTED or Enn */
    int run_recipe, stage;            /* stage 0-based while running */
    double rpm, t_run_s, t_stage_s, peak_rpm, dur_s;
    int pending_err; /* interlock fault to trigger during this run */
    double pending_at_s;
    double wd_s;           /* watchdog, real seconds, 0 = off */
    int64_t last_valid_ms; /* real time of the last valid frame */
    int run_finished;      /* set when a run ends; cleared by the owner */
    struct sim_coater_cache_entry cache[SIM_COATER_CACHE];
    int cache_next;
    struct sim_faults *faults;
    /* accounting: runs per job id */
    struct {
        char job[SIM_COATER_JOB_MAX + 1];
        long n;
    } runs[256];
    int n_runs;
};

/* Sets c up with the device limits; faults may be NULL. */
void sim_coater_init(struct sim_coater *c,
                     double max_rpm,
                     double max_acc_rpm_s,
                     struct sim_faults *faults);

/* Handles one received line (terminator removed; any bytes). Writes the reply, terminated by
 * "\r\n" and NUL, to out (cap >= 256) and returns its length; 0 means no reply. now_ms is
 * real monotonic time (watchdog). */
size_t sim_coater_line(
    struct sim_coater *c, const char *line, size_t len, int64_t now_ms, char *out, size_t cap);

/* Moves the spin on by dt_s simulated seconds and checks the watchdog at real time now_ms. */
void sim_coater_advance(struct sim_coater *c, double dt_s, int64_t now_ms);

/* Simulated seconds until the spin's next scheduled change (stage end, injected interlock
 * fault, spin-down reaching 0 rpm; 0 when due now), or HUGE_VAL when no spin is running.
 * The real-time watchdog is not included. */
double sim_coater_next_event_s(const struct sim_coater *c);
/* Name of a state as STATUS? reports it. */
const char *sim_coater_state_name(enum sim_coater_state s);

#endif

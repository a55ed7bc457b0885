/* sim_robot — the simulated robot's register map and job state machine (hardware.md §3.3,
 * docs/instruments.md §1), independent of the transport: labsim.c feeds it the decoded
 * Modbus writes and serves its registers over libmodbus.
 *
 * State machine (STATE input register):
 *
 *   IDLE/DONE --START(valid, new job id)--> BUSY --job ends ok--> DONE
 *                                           BUSY --job ends with code--> ERROR
 *   BUSY <--PAUSE/RESUME--> PAUSED;  BUSY/PAUSED --ABORT--> ERROR (result 40)
 *   ERROR --RESET_ERROR--> IDLE
 *
 * START with the accepted job id is a no-op in every state. Physical effects (samples
 * created and moved) happen when a job ends, through sim_lab.
 */
#ifndef SIM_ROBOT_H
#define SIM_ROBOT_H

#include "simulators/sim_fault.h"
#include "simulators/sim_lab.h"

#include <stdint.h>

#define SIM_ROBOT_N_HOLDING 18
#define SIM_ROBOT_N_INPUT 20
#define SIM_ROBOT_N_COILS 6
#define SIM_ROBOT_N_DISCRETE 6

enum sim_robot_state {
    SIM_ROBOT_NOT_READY = 0,
    SIM_ROBOT_IDLE = 1,
    SIM_ROBOT_BUSY = 2,
    SIM_ROBOT_DONE = 3,
    SIM_ROBOT_ERROR = 4,
    SIM_ROBOT_PAUSED = 5,
    SIM_ROBOT_ESTOP = 6,
};

/* Holding register offsets */
enum {
    SIM_ROBOT_REG_JOB_HI = 0,
    SIM_ROBOT_REG_JOB_LO = 1,
    SIM_ROBOT_REG_ACTION = 2,
    SIM_ROBOT_REG_RECIPE = 3,
    SIM_ROBOT_REG_DEST_PLATE = 4,
    SIM_ROBOT_REG_DEST_WELL = 5,
    SIM_ROBOT_REG_SOURCE_SLOT = 6,
    SIM_ROBOT_REG_VOL1 = 7,
    SIM_ROBOT_REG_FLAGS = 15,
    SIM_ROBOT_REG_CRC = 16,
    SIM_ROBOT_REG_COMMAND = 17,
};

/* Jobs executed, counted per job id (the control socket's robot_jobs). */
struct sim_count {
    char key[72];
    long n;
};

struct sim_robot {
    uint16_t holding[SIM_ROBOT_N_HOLDING];
    enum sim_robot_state state;
    uint32_t accepted_job, last_done_job;
    int last_result, error_code;
    /* the running job */
    uint16_t job[SIM_ROBOT_N_HOLDING];
    double job_elapsed_s, job_duration_s;
    int job_fault_code; /* a result forced by a fault, 0 = none */
    int interlocks;     /* bits as INTERLOCKS */
    double level_ml[SIM_LAB_RESERVOIRS];
    int tips;
    double max_volume_ul, max_total_volume_ul;
    struct sim_lab *lab;
    struct sim_faults *faults;
    struct sim_count *jobs;
    int n_jobs, cap_jobs;
};

/* Sets r up with the robot's limits; lab and faults (may be NULL) are borrowed. */
void sim_robot_init(struct sim_robot *r,
                    double max_volume_ul,
                    double max_total_volume_ul,
                    struct sim_lab *lab,
                    struct sim_faults *faults);

/* Frees the job counts. */
void sim_robot_free(struct sim_robot *r);

/* Applies a write of n holding registers at relative address addr (the range must lie in
 * the map; the caller checks). Returns 0 or a Modbus exception code (3, 4, 6); on an
 * exception nothing changes. */
int sim_robot_write_registers(struct sim_robot *r, int addr, const uint16_t *values, int n);

/* Applies a coil write (value 0/1) at relative coil address addr. Returns 0 or an exception
 * code. */
int sim_robot_write_coil(struct sim_robot *r, int addr, int value);

/* Fills the input registers; real_ms is a monotonic real-time clock (heartbeat). */
void sim_robot_inputs(const struct sim_robot *r, int64_t real_ms, uint16_t out[SIM_ROBOT_N_INPUT]);

/* Fills the discrete inputs (0/1 each). */
void sim_robot_discrete(const struct sim_robot *r, uint8_t out[SIM_ROBOT_N_DISCRETE]);

/* Advances the running job by dt_s simulated seconds; a job that ends takes effect. */
void sim_robot_advance(struct sim_robot *r, double dt_s);

/* Simulated seconds until the running job ends (0 when it is due now), or HUGE_VAL when no
 * job is running (nothing scheduled). */
double sim_robot_next_event_s(const struct sim_robot *r);
/* Increments the count of key in a count table (grows it). */
void sim_count_add(struct sim_count **table, int *n, int *cap, const char *key);

#endif

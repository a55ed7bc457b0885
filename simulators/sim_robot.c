/* sim_robot — register map and job state machine of the simulated robot (see sim_robot.h). */
#include "simulators/sim_robot.h"

#include "common/ll_crc.h"
#include "simulators/sim_log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CMD_NONE, CMD_START, CMD_ABORT, CMD_RESET_ERROR, CMD_PAUSE, CMD_RESUME };
enum { ACT_DISPENSE = 1, ACT_MOVE, ACT_HOME, ACT_PARK_SAFE, ACT_TIP_CHANGE };

void sim_count_add(struct sim_count **table, int *n, int *cap, const char *key)
{
    for (int i = 0; i < *n; i++) {
        if (strcmp((*table)[i].key, key) == 0) {
            (*table)[i].n++;
            return;
        }
    }
    if (*n == *cap) {
        int grown = *cap ? 2 * *cap : 32;
        struct sim_count *t = realloc(*table, (size_t)grown * sizeof(**table));
        if (t == NULL)
            return;
        *table = t;
        *cap = grown;
    }
    snprintf((*table)[*n].key, sizeof((*table)[*n].key), "%s", key);
    (*table)[*n].n = 1;
    (*n)++;
}

void sim_robot_init(struct sim_robot *r,
                    double max_volume_ul,
                    double max_total_volume_ul,
                    struct sim_lab *lab,
                    struct sim_faults *faults)
{
    memset(r, 0, sizeof(*r));
    r->state = SIM_ROBOT_IDLE;
    r->interlocks = 0x3F;
    for (int i = 0; i < SIM_LAB_RESERVOIRS; i++)
        r->level_ml[i] = lab != NULL && i < lab->n_reservoirs ? 50.0 : 0.0;
    r->tips = 960;
    r->max_volume_ul = max_volume_ul;
    r->max_total_volume_ul = max_total_volume_ul;
    r->lab = lab;
    r->faults = faults;
}

void sim_robot_free(struct sim_robot *r)
{
    free(r->jobs);
    r->jobs = NULL;
    r->n_jobs = r->cap_jobs = 0;
}

static uint32_t block_job_id(const uint16_t *b)
{
    return ((uint32_t)b[SIM_ROBOT_REG_JOB_HI] << 16) | b[SIM_ROBOT_REG_JOB_LO];
}

/* Exception code (3) when the job block b cannot be accepted, else 0. */
static int validate_block(const struct sim_robot *r, const uint16_t *b)
{
    uint32_t id = block_job_id(b);
    int action = b[SIM_ROBOT_REG_ACTION];
    if (id == 0 || id < r->last_done_job)
        return 3;
    if (action < ACT_DISPENSE || action > ACT_TIP_CHANGE)
        return 3;
    if (b[SIM_ROBOT_REG_RECIPE] > 999 || b[SIM_ROBOT_REG_DEST_PLATE] > 15 ||
        b[SIM_ROBOT_REG_DEST_WELL] > 95 || b[SIM_ROBOT_REG_SOURCE_SLOT] > 15)
        return 3;
    double total = 0.0;
    int n_res = r->lab != NULL ? r->lab->n_reservoirs : SIM_LAB_RESERVOIRS;
    for (int i = 0; i < 8; i++) {
        double v = b[SIM_ROBOT_REG_VOL1 + i] / 10.0;
        if (v > 0.0 && i >= n_res)
            return 3;
        if (r->max_volume_ul > 0.0 && v > r->max_volume_ul)
            return 3;
        total += v;
    }
    if (r->max_total_volume_ul > 0.0 && total > r->max_total_volume_ul)
        return 3;
    if (action == ACT_DISPENSE && total <= 0.0)
        return 3;
    if (b[SIM_ROBOT_REG_CRC] != 0) {
        uint8_t bytes[32];
        for (size_t i = 0; i < 16; i++) {
            bytes[2 * i] = (uint8_t)(b[i] >> 8);
            bytes[2 * i + 1] = (uint8_t)(b[i] & 0xFF);
        }
        if (ll_crc16_modbus(bytes, sizeof(bytes)) != b[SIM_ROBOT_REG_CRC])
            return 3;
    }
    return 0;
}

static double job_duration_s(const uint16_t *b)
{
    switch (b[SIM_ROBOT_REG_ACTION]) {
    case ACT_DISPENSE: {
        int used = 0;
        for (int i = 0; i < 8; i++)
            used += b[SIM_ROBOT_REG_VOL1 + i] != 0;
        return 2.0 + used;
    }
    case ACT_MOVE:
        return 3.0;
    default:
        return 2.0;
    }
}

static int start_job(struct sim_robot *r, const uint16_t *b)
{
    uint32_t id = block_job_id(b);
    if (id != 0 && id == r->accepted_job)
        return 0; /* replay of the accepted job: a no-op */
    if (r->state == SIM_ROBOT_ERROR || r->state == SIM_ROBOT_ESTOP)
        return 4;
    if (r->state == SIM_ROBOT_BUSY || r->state == SIM_ROBOT_PAUSED)
        return 6;
    int exc = validate_block(r, b);
    if (exc != 0)
        return exc;
    if ((r->interlocks & 0x3F) != 0x3F)
        return 4;
    memcpy(r->job, b, sizeof(r->job));
    r->accepted_job = id;
    r->state = SIM_ROBOT_BUSY;
    r->job_elapsed_s = 0.0;
    r->job_duration_s = job_duration_s(b);
    char key[16];
    snprintf(key, sizeof(key), "%u", id);
    r->job_fault_code =
        r->faults != NULL && sim_fault_check(r->faults, "robot.job_error", key) ? 20 : 0;
    if (r->job_fault_code)
        sim_log(SIM_LOG_WARNING, "fault=robot.job_error job=%s code=20", key);
    sim_count_add(&r->jobs, &r->n_jobs, &r->cap_jobs, key);
    return 0;
}

static void end_job(struct sim_robot *r, int result)
{
    r->last_done_job = r->accepted_job;
    r->last_result = result;
    if (result == 0) {
        r->state = SIM_ROBOT_DONE;
        r->error_code = 0;
    } else {
        r->state = SIM_ROBOT_ERROR;
        r->error_code = result;
    }
}

/* The physical effect of the finished job; returns its result code. */
static int execute_job(struct sim_robot *r)
{
    const uint16_t *b = r->job;
    if (r->job_fault_code != 0)
        return r->job_fault_code;
    if (b[SIM_ROBOT_REG_FLAGS] & 0x4)
        return 0; /* dry run */
    switch (b[SIM_ROBOT_REG_ACTION]) {
    case ACT_DISPENSE: {
        double vol[SIM_LAB_RESERVOIRS] = {0};
        for (int i = 0; i < SIM_LAB_RESERVOIRS; i++) {
            vol[i] = b[SIM_ROBOT_REG_VOL1 + i] / 10.0;
            if (vol[i] / 1000.0 > r->level_ml[i])
                return SIM_LAB_ERR_LEVEL;
        }
        if (b[SIM_ROBOT_REG_DEST_PLATE] != 0 || r->lab == NULL)
            return SIM_LAB_ERR_DEST;
        int rc = sim_lab_dispense(r->lab, b[SIM_ROBOT_REG_DEST_WELL], vol);
        if (rc != 0)
            return rc;
        for (int i = 0; i < SIM_LAB_RESERVOIRS; i++)
            r->level_ml[i] -= vol[i] / 1000.0;
        if (r->tips > 0)
            r->tips--;
        return 0;
    }
    case ACT_MOVE:
        if (r->lab == NULL)
            return SIM_LAB_ERR_DEST;
        return sim_lab_move(r->lab,
                            b[SIM_ROBOT_REG_DEST_WELL],
                            b[SIM_ROBOT_REG_SOURCE_SLOT],
                            b[SIM_ROBOT_REG_DEST_PLATE]);
    case ACT_TIP_CHANGE:
        if (r->tips > 0)
            r->tips--;
        return 0;
    default:
        return 0;
    }
}

static int do_command(struct sim_robot *r, int command, const uint16_t *block)
{
    switch (command) {
    case CMD_START:
        return start_job(r, block);
    case CMD_ABORT:
        if (r->state == SIM_ROBOT_BUSY || r->state == SIM_ROBOT_PAUSED)
            end_job(r, 40);
        return 0;
    case CMD_RESET_ERROR:
        if (r->state == SIM_ROBOT_ERROR) {
            r->state = SIM_ROBOT_IDLE;
            r->error_code = 0;
        }
        return 0;
    case CMD_PAUSE:
        if (r->state == SIM_ROBOT_BUSY)
            r->state = SIM_ROBOT_PAUSED;
        return 0;
    case CMD_RESUME:
        if (r->state == SIM_ROBOT_PAUSED)
            r->state = SIM_ROBOT_BUSY;
        return 0;
    default:
        return 3;
    }
}

int sim_robot_write_registers(struct sim_robot *r, int addr, const uint16_t *values, int n)
{
    if (addr < 0 || n < 1 || addr + n > SIM_ROBOT_N_HOLDING)
        return 2;
    uint16_t block[SIM_ROBOT_N_HOLDING];
    memcpy(block, r->holding, sizeof(block));
    memcpy(block + addr, values, (size_t)n * sizeof(uint16_t));
    int covers_command = addr + n > SIM_ROBOT_REG_COMMAND;
    if (covers_command && block[SIM_ROBOT_REG_COMMAND] != CMD_NONE) {
        int exc = do_command(r, block[SIM_ROBOT_REG_COMMAND], block);
        if (exc != 0)
            return exc;
        block[SIM_ROBOT_REG_COMMAND] = CMD_NONE;
    }
    memcpy(r->holding, block, sizeof(block));
    return 0;
}

int sim_robot_write_coil(struct sim_robot *r, int addr, int value)
{
    if (addr < 0 || addr >= SIM_ROBOT_N_COILS)
        return 2;
    if (!value)
        return 0;
    static const int coil_command[] = {
        CMD_START, CMD_ABORT, CMD_RESET_ERROR, CMD_PAUSE, CMD_RESUME};
    if (addr < 5)
        return do_command(r, coil_command[addr], r->holding);
    uint16_t block[SIM_ROBOT_N_HOLDING];
    memcpy(block, r->holding, sizeof(block));
    block[SIM_ROBOT_REG_ACTION] = ACT_PARK_SAFE;
    block[SIM_ROBOT_REG_CRC] = 0;
    return start_job(r, block);
}

void sim_robot_inputs(const struct sim_robot *r, int64_t real_ms, uint16_t out[SIM_ROBOT_N_INPUT])
{
    memset(out, 0, SIM_ROBOT_N_INPUT * sizeof(uint16_t));
    out[0] = 0x0100;
    out[1] = (uint16_t)r->state;
    out[2] = (uint16_t)(r->accepted_job >> 16);
    out[3] = (uint16_t)(r->accepted_job & 0xFFFF);
    out[4] = (uint16_t)(r->last_done_job >> 16);
    out[5] = (uint16_t)(r->last_done_job & 0xFFFF);
    out[6] = (uint16_t)r->last_result;
    out[7] = (uint16_t)r->error_code;
    if (r->state == SIM_ROBOT_BUSY || r->state == SIM_ROBOT_PAUSED) {
        double p = r->job_duration_s > 0 ? r->job_elapsed_s / r->job_duration_s : 0.0;
        out[8] = (uint16_t)(p >= 1.0 ? 999 : 1000.0 * p);
    } else if (r->last_done_job != 0) {
        out[8] = 1000;
    }
    out[9] = (uint16_t)((real_ms / 500) & 0xFFFF);
    out[10] = (uint16_t)(r->interlocks & 0x3F);
    for (int i = 0; i < 8; i++) {
        double level = r->level_ml[i] * 10.0;
        out[11 + i] = (uint16_t)(level < 0 ? 0 : level > 65535 ? 65535 : level + 0.5);
    }
    out[19] = (uint16_t)r->tips;
}

void sim_robot_discrete(const struct sim_robot *r, uint8_t out[SIM_ROBOT_N_DISCRETE])
{
    out[0] = r->state == SIM_ROBOT_IDLE || r->state == SIM_ROBOT_DONE;
    out[1] = r->state == SIM_ROBOT_BUSY;
    out[2] = r->state == SIM_ROBOT_DONE;
    out[3] = r->state == SIM_ROBOT_ERROR;
    out[4] = r->state == SIM_ROBOT_ESTOP;
    out[5] = !(r->interlocks & 0x1);
}

double sim_robot_next_event_s(const struct sim_robot *r)
{
    if (r->state != SIM_ROBOT_BUSY)
        return HUGE_VAL;
    return fmax(0.0, r->job_duration_s - r->job_elapsed_s);
}

void sim_robot_advance(struct sim_robot *r, double dt_s)
{
    if (r->state != SIM_ROBOT_BUSY)
        return;
    r->job_elapsed_s += dt_s;
    if (r->job_elapsed_s >= r->job_duration_s)
        end_job(r, execute_job(r));
}

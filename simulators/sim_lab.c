/* sim_lab — samples, places and what was done to each sample (see sim_lab.h). */
#include "simulators/sim_lab.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_lab_init(struct sim_lab *lab, enum sim_world world, const struct labconf_instrument *robot)
{
    memset(lab, 0, sizeof(*lab));
    lab->world = world;
    lab->rack_slot = lab->coater_slot = lab->furnace_slot = -1;
    for (int i = 0; i < SIM_LAB_SLOTS; i++)
        lab->occupant[i] = -1;
    lab->n_reservoirs =
        robot->n_reservoirs < SIM_LAB_RESERVOIRS ? robot->n_reservoirs : SIM_LAB_RESERVOIRS;
    for (int i = 0; i < lab->n_reservoirs; i++) {
        const char *n = robot->reservoirs[i];
        lab->cation[i] = strncmp(n, "FA", 2) == 0   ? 0
                         : strncmp(n, "MA", 2) == 0 ? 1
                         : strncmp(n, "Cs", 2) == 0 ? 2
                                                    : -1;
        lab->halide[i] = strstr(n, "Br") != NULL ? 1 : strstr(n, "I") != NULL ? 0 : -1;
    }
    for (int i = 0; i < robot->n_places; i++) {
        int slot = robot->places[i].slot;
        if (slot < 0 || slot >= SIM_LAB_SLOTS)
            continue;
        lab->slot_valid[slot] = 1;
        snprintf(lab->slot_name[slot], sizeof(lab->slot_name[slot]), "%s", robot->places[i].name);
        if (strcmp(robot->places[i].name, "rack") == 0)
            lab->rack_slot = slot;
        else if (strcmp(robot->places[i].name, "coater") == 0)
            lab->coater_slot = slot;
        else if (strcmp(robot->places[i].name, "furnace") == 0)
            lab->furnace_slot = slot;
    }
}

static void sample_free(struct sim_lab *lab, int well)
{
    struct sim_sample *s = lab->samples[well];
    if (s == NULL)
        return;
    free(s->hist_t_c);
    free(s->hist_sp_c);
    free(s->hist_dt_s);
    free(s);
    lab->samples[well] = NULL;
}

void sim_lab_free(struct sim_lab *lab)
{
    for (int i = 0; i < SIM_LAB_WELLS; i++)
        sample_free(lab, i);
}

int sim_lab_rack_unload(struct sim_lab *lab)
{
    int n = 0;
    for (int i = 0; i < SIM_LAB_WELLS; i++)
        if (lab->samples[i] != NULL && lab->samples[i]->slot == lab->rack_slot) {
            sample_free(lab, i);
            n++;
        }
    return n;
}

const char *sim_lab_slot_name(const struct sim_lab *lab, int slot)
{
    static char buf[16];
    if (slot >= 0 && slot < SIM_LAB_SLOTS && lab->slot_name[slot][0] != '\0')
        return lab->slot_name[slot];
    snprintf(buf, sizeof(buf), "slot%d", slot);
    return buf;
}

int sim_lab_dispense(struct sim_lab *lab, int well, const double *vol_ul)
{
    if (well < 0 || well >= SIM_LAB_WELLS || lab->samples[well] != NULL || lab->rack_slot < 0)
        return SIM_LAB_ERR_DEST;
    struct sim_sample *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return 40;
    s->well = well;
    s->slot = lab->rack_slot;
    for (int i = 0; i < lab->n_reservoirs; i++)
        s->vol_ul[i] = vol_ul[i];
    lab->samples[well] = s;
    return SIM_LAB_OK;
}

int sim_lab_move(struct sim_lab *lab, int well, int from, int to)
{
    if (well < 0 || well >= SIM_LAB_WELLS || lab->samples[well] == NULL)
        return SIM_LAB_ERR_DEST;
    if (from < 0 || from >= SIM_LAB_SLOTS || to < 0 || to >= SIM_LAB_SLOTS ||
        !lab->slot_valid[from] || !lab->slot_valid[to])
        return SIM_LAB_ERR_DEST;
    struct sim_sample *s = lab->samples[well];
    if (s->slot != from)
        return SIM_LAB_ERR_DEST;
    if (to != lab->rack_slot && lab->occupant[to] >= 0)
        return SIM_LAB_ERR_DEST;
    if (from != lab->rack_slot)
        lab->occupant[from] = -1;
    if (to != lab->rack_slot)
        lab->occupant[to] = well;
    s->slot = to;
    return SIM_LAB_OK;
}

struct sim_sample *sim_lab_at(struct sim_lab *lab, int slot)
{
    if (slot < 0 || slot >= SIM_LAB_SLOTS || slot == lab->rack_slot || lab->occupant[slot] < 0)
        return NULL;
    return lab->samples[lab->occupant[slot]];
}

void sim_lab_spun(struct sim_lab *lab, double peak_rpm)
{
    struct sim_sample *s = sim_lab_at(lab, lab->coater_slot);
    if (s == NULL)
        return;
    s->n_spins++;
    if (peak_rpm > s->spin_rpm)
        s->spin_rpm = peak_rpm;
}

void sim_lab_furnace_step(struct sim_lab *lab, double temp_c, double sp_c, double dt_s)
{
    sim_lab_furnace_step_at(lab, lab->furnace_slot, temp_c, sp_c, dt_s);
}

void sim_lab_furnace_step_at(struct sim_lab *lab, int slot, double temp_c, double sp_c, double dt_s)
{
    struct sim_sample *s = sim_lab_at(lab, slot);
    if (s == NULL)
        return;
    if (s->n_hist == s->cap_hist) {
        if (s->cap_hist >= 4000000)
            return; /* ~46 simulated days at 1 s: enough for any anneal */
        int cap = s->cap_hist ? 2 * s->cap_hist : 1024;
        double *t = realloc(s->hist_t_c, (size_t)cap * sizeof(double));
        if (t == NULL)
            return;
        s->hist_t_c = t;
        double *sp = realloc(s->hist_sp_c, (size_t)cap * sizeof(double));
        if (sp == NULL)
            return;
        s->hist_sp_c = sp;
        double *dt = realloc(s->hist_dt_s, (size_t)cap * sizeof(double));
        if (dt == NULL)
            return;
        s->hist_dt_s = dt;
        s->cap_hist = cap;
    }
    s->hist_t_c[s->n_hist] = temp_c;
    s->hist_sp_c[s->n_hist] = sp_c;
    s->hist_dt_s[s->n_hist] = dt_s;
    s->n_hist++;
}

/* an anneal's dwell is above this; the safe setpoint (25 °C) is below it */
#define SIM_ANNEAL_MIN_SP_C 50.0

struct sp_time {
    double sp_c, dt_s;
};

static int cmp_sp(const void *a, const void *b)
{
    double x = ((const struct sp_time *)a)->sp_c, y = ((const struct sp_time *)b)->sp_c;
    return (x > y) - (x < y);
}

/* The setpoint the sample spent the longest time at (the program's dwell target), with
 * setpoints taken to 0.1 °C; -1e300 when there is no history. A ramp passes through many
 * setpoints briefly, a dwell holds one: so a sample loaded into a furnace still hot from a
 * hotter anneal is credited with its own dwell, not with the ramp down from the last one. */
static double dwell_setpoint(const struct sim_sample *s)
{
    if (s->n_hist == 0)
        return -1e300;
    struct sp_time *v = malloc((size_t)s->n_hist * sizeof(*v));
    if (v == NULL)
        return -1e300;
    /* setpoints at or below SIM_ANNEAL_MIN_SP_C (the safe setpoint a sample waits at before
     * or after its program) never count as the dwell, however long the wait */
    int n = 0;
    double sp_max = -1e300;
    for (int i = 0; i < s->n_hist; i++) {
        sp_max = fmax(sp_max, s->hist_sp_c[i]);
        if (s->hist_sp_c[i] > SIM_ANNEAL_MIN_SP_C)
            v[n++] = (struct sp_time){round(s->hist_sp_c[i] * 10.0) / 10.0, s->hist_dt_s[i]};
    }
    if (n == 0) {
        free(v);
        return sp_max;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_sp);
    double best = v[0].sp_c, best_t = -1.0;
    for (int i = 0; i < n;) {
        double t = 0.0;
        int j = i;
        for (; j < n && v[j].sp_c == v[i].sp_c; j++)
            t += v[j].dt_s;
        if (t > best_t) {
            best_t = t;
            best = v[i].sp_c;
        }
        i = j;
    }
    free(v);
    return best;
}

void sim_sample_anneal(const struct sim_sample *s, double *ret_anneal_c, double *ret_anneal_min)
{
    double sp_dwell = dwell_setpoint(s);
    double time_s = 0.0, sum = 0.0;
    for (int i = 0; i < s->n_hist; i++) {
        if (s->hist_t_c[i] >= sp_dwell - 5.0) {
            time_s += s->hist_dt_s[i];
            sum += (double)s->hist_t_c[i] * s->hist_dt_s[i];
        }
    }
    if (time_s <= 0.0) {
        *ret_anneal_c = 25.0;
        *ret_anneal_min = 0.0;
        return;
    }
    *ret_anneal_c = sum / time_s;
    *ret_anneal_min = time_s / 60.0;
}

int sim_sample_perovskite_inputs(const struct sim_lab *lab,
                                 const struct sim_sample *s,
                                 double x[WORLD_PEROVSKITE_N_INPUTS])
{
    double a[3] = {0, 0, 0}, h[2] = {0, 0};
    for (int i = 0; i < lab->n_reservoirs; i++) {
        if (lab->cation[i] >= 0)
            a[lab->cation[i]] += s->vol_ul[i];
        if (lab->halide[i] >= 0)
            h[lab->halide[i]] += s->vol_ul[i];
    }
    double a_sum = a[0] + a[1] + a[2];
    if (a_sum <= 0.0 || h[0] + h[1] <= 0.0)
        return -EINVAL;
    x[WORLD_PEROVSKITE_FA] = a[0] + a[1] > 0.0 ? a[0] / (a[0] + a[1]) : 0.0;
    x[WORLD_PEROVSKITE_CS] = a[2] / a_sum;
    x[WORLD_PEROVSKITE_IODIDE] = h[0] / (h[0] + h[1]);
    sim_sample_anneal(s, &x[WORLD_PEROVSKITE_ANNEAL_C], &x[WORLD_PEROVSKITE_ANNEAL_MIN]);
    x[WORLD_PEROVSKITE_SPIN_RPM] = s->spin_rpm > 0.0 ? s->spin_rpm : 500.0;
    return 0;
}

int sim_sample_electrolyte_inputs(const struct sim_sample *s, double x[WORLD_ELECTROLYTE_N_INPUTS])
{
    double base = s->vol_ul[0];
    if (!(base > 0.0))
        return -EINVAL;
    x[WORLD_ELECTROLYTE_TA] = s->vol_ul[1] / base;
    x[WORLD_ELECTROLYTE_AL] = s->vol_ul[2] / base;
    x[WORLD_ELECTROLYTE_LI_EXCESS] = s->vol_ul[3] / base;
    sim_sample_anneal(s, &x[WORLD_ELECTROLYTE_SINTER_C], &x[WORLD_ELECTROLYTE_SINTER_MIN]);
    return 0;
}

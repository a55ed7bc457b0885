/* sim_lab — the physical samples of the simulated lab and where they are.
 *
 * A sample is created by a robot dispense in a rack well (its "home well", which names it)
 * and carries what was really done to it: the dispensed volumes, the peak spin speed the
 * coater reached while it sat on the chuck, and the temperature history the furnace PV
 * followed while it sat in the furnace. Places are the robot's slots (lab.conf `places`);
 * the rack holds any number of samples, every other place at most one. The world model
 * (perovskite or electrolyte) turns a sample's history into the true values that the
 * stations measure (docs/world.md).
 */
#ifndef SIM_LAB_H
#define SIM_LAB_H

#include "drivers/labconf.h"
#include "simulators/world.h"

#define SIM_LAB_WELLS 96
#define SIM_LAB_SLOTS 16
#define SIM_LAB_RESERVOIRS 8

enum sim_world { SIM_WORLD_PEROVSKITE, SIM_WORLD_ELECTROLYTE };

/* Result codes of robot actions (hardware.md §3.3 error codes). */
enum {
    SIM_LAB_OK = 0,
    SIM_LAB_ERR_LEVEL = 11,
    SIM_LAB_ERR_DEST = 14,
};

struct sim_sample {
    int well;                          /* home well 0..95: the sample's name */
    int slot;                          /* where it is now */
    double vol_ul[SIM_LAB_RESERVOIRS]; /* dispensed volumes */
    double spin_rpm;                   /* highest rpm reached on the coater, 0 = never spun */
    int n_spins;
    /* furnace history while inside: PV (°C), working setpoint, duration of each step (s) */
    double *hist_t_c;
    double *hist_sp_c;
    double *hist_dt_s;
    int n_hist, cap_hist;
    int n_measurements;
};

struct sim_lab {
    enum sim_world world;
    int n_reservoirs;
    int cation[SIM_LAB_RESERVOIRS]; /* perovskite: 0 FA, 1 MA, 2 Cs, -1 unknown */
    int halide[SIM_LAB_RESERVOIRS]; /* perovskite: 0 I, 1 Br, -1 unknown */
    int rack_slot, coater_slot, furnace_slot;
    int slot_valid[SIM_LAB_SLOTS];
    char slot_name[SIM_LAB_SLOTS][LABCONF_NAME_MAX];
    int occupant[SIM_LAB_SLOTS]; /* well of the sample at a non-rack slot, -1 = empty */
    struct sim_sample *samples[SIM_LAB_WELLS];
};

/* Sets lab up for world from the robot's definition: reservoir names (perovskite:
 * "FAPbI3" ... parsed into cation and halide) and places ("rack", "coater", "furnace" and
 * the station places). */
void sim_lab_init(struct sim_lab *lab,
                  enum sim_world world,
                  const struct labconf_instrument *robot);

/* Frees every sample. */
void sim_lab_free(struct sim_lab *lab);

/* Creates sample `well` in the rack from vol_ul[0..n_reservoirs-1]. Returns SIM_LAB_OK or
 * SIM_LAB_ERR_DEST (bad well, well already used). */
int sim_lab_dispense(struct sim_lab *lab, int well, const double *vol_ul);

/* The operator took every sample on the rack away (labsim control `rack_unload`): those
 * wells are empty again; samples at other places stay. Returns how many were removed. */
int sim_lab_rack_unload(struct sim_lab *lab);

/* Moves sample `well` from slot `from` to slot `to`. SIM_LAB_ERR_DEST when the sample is not
 * at `from`, `to` is not a place or is occupied. */
int sim_lab_move(struct sim_lab *lab, int well, int from, int to);

/* The sample at a non-rack slot, or NULL. */
struct sim_sample *sim_lab_at(struct sim_lab *lab, int slot);

/* The coater spun whatever sits on the chuck up to peak_rpm. */
void sim_lab_spun(struct sim_lab *lab, double peak_rpm);

/* One furnace step of dt_s seconds at temperature temp_c with working setpoint sp_c, for the
 * sample at the place "furnace". */
void sim_lab_furnace_step(struct sim_lab *lab, double temp_c, double sp_c, double dt_s);

/* The same for the sample at slot (a lab with several furnaces: each is the place named
 * like it); nothing for a slot < 0 or without a sample. */
void sim_lab_furnace_step_at(
    struct sim_lab *lab, int slot, double temp_c, double sp_c, double dt_s);

/* The anneal the sample really got: setpoint = the working setpoint it spent the longest
 * time at (the program's dwell target), anneal_min = time with T >= setpoint - 5 °C (hotter
 * periods included, e.g. a furnace still cooling from a hotter anneal), anneal_c = mean T
 * over that time (25 °C / 0 min if none). */
void sim_sample_anneal(const struct sim_sample *s, double *ret_anneal_c, double *ret_anneal_min);

/* Perovskite world inputs of sample s (composition from the volumes, spin, anneal). A
 * sample never spun is evaluated at 500 rpm (a drop-cast film). Returns 0, or -EINVAL when
 * the volumes hold no perovskite (no A cation or no halide). */
int sim_sample_perovskite_inputs(const struct sim_lab *lab,
                                 const struct sim_sample *s,
                                 double x[WORLD_PEROVSKITE_N_INPUTS]);

/* Electrolyte world inputs: ta = V2/V1, al = V3/V1, li_excess = V4/V1, the anneal as the
 * sintering. Returns -EINVAL without base precursor (V1 = 0). */
int sim_sample_electrolyte_inputs(const struct sim_sample *s, double x[WORLD_ELECTROLYTE_N_INPUTS]);

/* Name of the place at slot (for logs and the control socket), "slotN" if unnamed. */
const char *sim_lab_slot_name(const struct sim_lab *lab, int slot);

#endif

/* sim_furnace — a simulated furnace temperature controller (docs/instruments.md §2):
 * a Modbus RTU slave that serves any register map of the lab definition (Eurotherm
 * 3216-like, or another vendor's), with the controller's behaviour — ramp-limited working
 * setpoint, PI control with feed-forward of a first-order thermal plant, PV noise, a
 * one-segment program with run/hold/reset and end types, a latching over-temperature alarm
 * that cuts the heater, and an EEPROM write counter on the target setpoint.
 *
 * Transport-free: sim_furnace_feed() takes the bytes that arrive on the serial line and
 * returns the bytes to send back, so the same code serves a pseudo-terminal and a test.
 */
#ifndef SIM_FURNACE_H
#define SIM_FURNACE_H

#include "drivers/labconf.h"
#include "simulators/sim_fault.h"

#include <stddef.h>
#include <stdint.h>

enum sim_program { SIM_PROG_RESET, SIM_PROG_RUN, SIM_PROG_HOLD, SIM_PROG_END };
enum sim_end_type { SIM_END_OFF, SIM_END_DWELL, SIM_END_SP2, SIM_END_RESET };

struct sim_furnace {
    struct labconf_furnace_map map;
    int slave;
    double max_temp_c, safe_sp_c;
    /* plant and controller */
    double temp_c, amb_c, gain_c, tau_s;
    double u;     /* output 0..1 */
    double integ; /* integral term */
    double pv_c;  /* last measured PV (with noise) */
    double sp_target_c, sp_remote_c, sp_override_c;
    int use_remote, use_override, heater_off;
    double sp_work_c, sp_rate_c_min;
    double alarm1_c;
    int alarm_latched, manual;
    /* program */
    enum sim_program program;
    double seg_target_c, seg_rate_c_min, seg_dwell_min, dwell_elapsed_s;
    int in_dwell;
    enum sim_end_type end_type;
    int program_ended;     /* status B9: set when a program reaches its end (any end type, also
                              reset), cleared when a new program is started */
    double sensor_break_s; /* remaining simulated seconds of a sensor break */
    /* furnace.loop_break: the heater is cut off (element or supply) for heater_broken_s more
     * simulated seconds; the loop keeps driving its output. The controller's loop-break
     * detection: output at 100 % for SIM_FURNACE_LBT_S without the PV rising 2 C sets
     * loop_break (status B6) until the output drops. */
    double heater_broken_s;
    double lbr_clock_s, lbr_pv0_c; /* time at full output, and the PV when it began */
    int loop_break;
    double fault_clock_s; /* simulated seconds towards the next sensor-break opportunity */
    /* accounting */
    long eeprom_writes, programs_run;
    uint64_t rng;
    struct sim_faults *faults;
    int reply_delay_ms; /* furnace.late: send the last feed's replies this late (0 = now) */
    /* receive buffer */
    uint8_t rx[512];
    size_t n_rx;
};

/* Sets f up for instrument inst (map, slave id, limits); faults may be NULL. */
void sim_furnace_init(struct sim_furnace *f,
                      const struct labconf_instrument *inst,
                      uint64_t seed,
                      struct sim_faults *faults);

/* Advances the plant and controller by dt_s simulated seconds. */
void sim_furnace_step(struct sim_furnace *f, double dt_s);

/* Appends received bytes; every complete frame in the buffer is handled and its reply (if
 * any) appended to out (capacity cap). Returns the number of reply bytes written; the
 * transport sends them f->reply_delay_ms later (furnace.late), and any reply after them. */
size_t
sim_furnace_feed(struct sim_furnace *f, const uint8_t *data, size_t len, uint8_t *out, size_t cap);

/* Drops a partial frame (called when the line has been quiet longer than a frame gap). */
void sim_furnace_flush_partial(struct sim_furnace *f);

/* Handles one complete frame with a valid CRC; writes the reply (with CRC) to out and
 * returns its length, 0 for no reply. */
size_t sim_furnace_handle(
    struct sim_furnace *f, const uint8_t *frame, size_t len, uint8_t *out, size_t cap);

/* Simulated seconds until the program's next change (ramp reaches the segment target, dwell
 * ends) or a sensor break ends (0 when due now), or HUGE_VAL when nothing is scheduled. */
double sim_furnace_next_event_s(const struct sim_furnace *f);
/* The status bitmap (register `status`). */
uint16_t sim_furnace_status(const struct sim_furnace *f);

/* The active (non-program) setpoint. */
double sim_furnace_active_sp(const struct sim_furnace *f);

#endif

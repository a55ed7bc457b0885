/* driver — one interface for every instrument (robot, furnace, spin coater).
 *
 * A driver is opened from a lab-definition instrument (drivers/labconf.h) and offers the
 * same seven operations whatever the instrument: open, describe/status, start a step, poll
 * it, query it after a restart ("did step N run?"), go to the safe state, close. The
 * backends (robot over Modbus TCP, furnace over Modbus RTU, coater over SPN/1 on a serial
 * line) sit behind a vtable in driver_internal.h, as libmodbus keeps its backends.
 *
 * Calls BLOCK on network or serial I/O, each for at most its deadline (below); the daemon
 * never calls them from its event loop but through drivers/worker.h (one thread per
 * instrument). A struct drv is used by one thread at a time; drivers of instruments that
 * share a Modbus RTU line share a struct drv_bus (drivers/bus.h), which serialises their
 * transactions and may be used from any number of threads.
 *
 * Deadlines. Every call is bounded on CLOCK_MONOTONIC: a read or a command gets
 * the instrument's response_timeout_ms per attempt, and a whole call gets
 * DRV_CALL_BUDGET(inst) = 8 x response_timeout_ms + 1 s (a start, which writes several
 * registers or commands, gets twice that). Idempotent reads are retried with back-off
 * (25, 50, 100 ... ms) inside the budget; a non-idempotent write is never resent blindly:
 * after a time-out its outcome is read back first (robot: ACCEPTED_JOB_ID; furnace: the
 * register; coater: SPN/1 retransmission with the same SEQ, which the device answers from
 * its reply cache without executing twice). A lost link is reopened at the next call.
 *
 * Errors: every fallible call returns 0 or one of these negative codes, with a sentence in
 * reterr. The daemon switches on the code:
 *   DRV_ELIMIT    (-ERANGE)     a parameter is above a configured limit; nothing was sent
 *   -EINVAL                     a malformed step (wrong kind for the instrument, unknown
 *                               place, no stage ...); nothing was sent
 *   DRV_EREFUSED  (-EREMOTEIO)  the instrument said no: Modbus exception 03 (illegal data
 *                               value), 07 or an undefined code, SPN/1 ERR (E02, E03, E05,
 *                               E06, E07, E09, E10), or a precondition read from it (lid
 *                               open). Do not retry; the step fails.
 *   DRV_ECONFIG   (-ENOTSUP)    the instrument does not have the function or register the
 *                               lab definition told us to use: Modbus exception 01 (illegal
 *                               function) or 02 (illegal data address), a wrong register map.
 *                               Fatal for the instrument: the driver remembers it, and every
 *                               later drv_step_start() fails with it without any I/O until
 *                               the driver is closed and opened again (lab definition fixed).
 *   DRV_EBUSY     (-EBUSY)      the instrument is busy (exception 06, SPN/1 E04, a program
 *                               already running) and stayed busy through the back-off and
 *                               retries within the call: retry later. Exception 05
 *                               (acknowledge: accepted, not done yet) never leaves the
 *                               driver: it polls (reads back) until the result shows.
 *   DRV_ETIMEDOUT (-ETIMEDOUT)  no answer within the deadline (also exception 0B: a gateway's
 *                               target did not answer); for a start this means the outcome
 *                               is unknown: query before anything is retried
 *   DRV_EPROTO    (-EPROTO)     answers kept arriving garbled (bad CRC, wrong length, another
 *                               slave's id, an echo of the request, unparsable): treat like no
 *                               answer. A garbled answer is never used: reads are retried
 *   DRV_ELINK     (-ENOTCONN)   the link is down (connection refused/reset, serial port
 *                               gone, exception 0A: no path through a gateway): the next call
 *                               reconnects; reconcile with query
 *   DRV_EFAULT    (-EIO)        the instrument reports a fault (robot ERROR/ESTOP, coater
 *                               E08/E99, furnace sensor or loop break, Modbus exception 04
 *                               server device failure or 08 memory parity error). A start or
 *                               a poll that meets one commands the safe state
 *   DRV_ESTEPTIME (-ETIME)      a step ran longer than the instrument's step_timeout_s
 *   -ENOMEM                     out of memory
 * A step that fails while running is reported by drv_step_poll() as DRV_STEP_FAILED with
 * one of these codes in status.error; the driver has then already commanded the safe state
 * (status.safe_commanded says whether that succeeded). An exception answered to one of the
 * poll's reads (03, 01/02, 04/08) is such a failure of the step, not of the poll.
 */
#ifndef DRIVER_H
#define DRIVER_H

#include "common/ll_error.h"
#include "drivers/bus.h"
#include "drivers/labconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRV_ELIMIT (-ERANGE)
#define DRV_EREFUSED (-EREMOTEIO)
#define DRV_EBUSY (-EBUSY)
#define DRV_ETIMEDOUT (-ETIMEDOUT)
#define DRV_EPROTO (-EPROTO)
#define DRV_ELINK (-ENOTCONN)
#define DRV_EFAULT (-EIO)
#define DRV_ESTEPTIME (-ETIME)
#define DRV_ECONFIG (-ENOTSUP)

/* Whole-call budget of an instrument in ms (see "Deadlines" above). */
#define DRV_CALL_BUDGET(inst) (8 * (int64_t)(inst)->response_timeout_ms + 1000)

#define DRV_N_RESERVOIRS 8
#define DRV_MAX_STAGES 8
#define DRV_TEXT_MAX 512

/* What a step asks for. A robot takes DISPENSE, MOVE and PARK; the coater SPIN; the furnace
 * ANNEAL. */
enum drv_step_kind {
    DRV_STEP_DISPENSE = 1, /* robot: volumes of reservoir 1..8 into a well of the rack */
    DRV_STEP_MOVE,         /* robot: move the sample from one place to another */
    DRV_STEP_PARK,         /* robot: park safe */
    DRV_STEP_SPIN,         /* coater: run a recipe of up to 8 stages */
    DRV_STEP_ANNEAL,       /* furnace: ramp to setpoint, dwell, end (program end type reset) */
};

struct drv_spin_stage {
    double rpm;         /* > 0, <= limits.max_rpm */
    double accel_rpm_s; /* > 0, <= limits.max_accel_rpm_s */
    double seconds;     /* > 0 */
};

/* One step. id is the step id the daemon committed (1..UINT32_MAX); the robot and the
 * coater echo it (JOB_ID, RUN job id "J%06u"), so query() can answer for it. */
struct drv_step {
    uint32_t id;
    enum drv_step_kind kind;
    union {
        struct {
            int well;                            /* 0..95, row-major (A1 = 0, H12 = 95) */
            double volumes_ul[DRV_N_RESERVOIRS]; /* per reservoir, 0 = none */
        } dispense;
        struct {
            char from_place[LABCONF_NAME_MAX]; /* robot place names (lab.conf places) */
            char to_place[LABCONF_NAME_MAX];
            int well; /* 0..95 */
        } move;
        struct {
            int n_stages; /* 1..DRV_MAX_STAGES */
            struct drv_spin_stage stages[DRV_MAX_STAGES];
        } spin;
        struct {
            double setpoint_c; /* <= limits.max_temp_c */
            double ramp_c_min; /* > 0, <= limits.max_ramp_c_min */
            double dwell_min;  /* >= 0 */
        } anneal;
    };
};

/* State of a step as poll() and query() see it. */
enum drv_step_state {
    DRV_STEP_NOT_STARTED = 1, /* query: the instrument never accepted it; safe to start */
    DRV_STEP_RUNNING,
    DRV_STEP_DONE,
    DRV_STEP_FAILED,  /* error and reason say why */
    DRV_STEP_UNKNOWN, /* query: cannot tell from the instrument; ask the operator */
};

/* Result of poll() / query(), and live readings for status(). */
struct drv_status {
    enum drv_step_state state; /* poll/query only */
    int error;                 /* FAILED: one of the DRV_E* codes */
    bool safe_commanded;       /* FAILED: the driver commanded the safe state successfully */
    double progress;           /* 0..1, or -1 when the instrument does not say */
    char reason[DRV_TEXT_MAX]; /* FAILED/UNKNOWN: one sentence; else a short summary */
    /* live readings (NAN / 0 when not applicable) */
    double temp_c;               /* furnace PV */
    double setpoint_c;           /* furnace working setpoint */
    double rpm;                  /* coater */
    uint32_t instrument_step_id; /* the job the instrument reports (robot ACCEPTED_JOB_ID) */
    char text[DRV_TEXT_MAX];     /* status(): "state=BUSY job=4711 ..." for people */
};

struct drv;

/* Opens a driver for inst (copied; inst may be freed afterwards) and connects (TCP
 * connect / opens the serial device) within the call budget. On success *ret_drv is a new
 * driver; free with drv_close(). Errors: -EINVAL (inst is not usable: port 0 ...),
 * DRV_ELINK (cannot connect / open the device), -ENOMEM. */
int drv_open(const struct labconf_instrument *inst, struct drv **ret_drv, struct ll_error *reterr);

/* drv_open() on a shared Modbus RTU line: bus (NULL: a line of its own, as drv_open()) must
 * have the instrument's device and serial settings, no other open driver on it may have the
 * same slave id, and it must outlive the driver (drivers/bus.h). Every transaction of the
 * driver then takes the bus's slot: commands (start, safe, clear fault) before polls, the
 * inter-frame gap and the line budget kept. Errors: as drv_open(); -EINVAL (bus given for an
 * instrument that is not Modbus RTU, or settings that differ), -EEXIST (slave id taken). */
int drv_open_bus(const struct labconf_instrument *inst,
                 struct drv_bus *bus,
                 struct drv **ret_drv,
                 struct ll_error *reterr);

/* Instrument name and driver kind (no I/O). */
const char *drv_name(const struct drv *drv);
enum labconf_driver drv_kind(const struct drv *drv);

/* Describes the instrument into buf (NUL-terminated): its configuration and limits and
 * what it says about itself (robot MAP_VERSION, coater ID?, furnace PV and map). */
int drv_describe(struct drv *drv, char *buf, size_t size, struct ll_error *reterr);

/* Reads the instrument's live state into *ret (text, readings); state/error unused. */
int drv_status(struct drv *drv, struct drv_status *ret, struct ll_error *reterr);

/* Checks step against inst's limits and configuration without any I/O: 0, DRV_ELIMIT or
 * -EINVAL. drv_step_start() calls it first; the daemon may call it before committing an
 * intent, and without an open driver. */
int drv_step_check(const struct labconf_instrument *inst,
                   const struct drv_step *step,
                   struct ll_error *reterr);

/* Starts step (after drv_step_check). Returns 0 once the instrument has accepted it (it is
 * running), also when the instrument already runs or ran this step id (idempotent: the
 * robot and coater reconcile by id before sending). A DRV_ETIMEDOUT or DRV_ELINK result
 * leaves the outcome unknown: call drv_step_query() before retrying (DRV_EPROTO too); any
 * other error means the instrument did not accept the step. A DRV_EFAULT result
 * has commanded the safe state (the message says whether that worked); DRV_ECONFIG, once
 * seen by any call of this driver, is returned at once from then on. */
int drv_step_start(struct drv *drv, const struct drv_step *step, struct ll_error *reterr);

/* Polls a started step: *ret->state is RUNNING, DONE or FAILED. A failure of the poll
 * itself (no answer after the retries, link lost) is returned as a negative code and says
 * nothing about the step. */
int drv_step_poll(struct drv *drv,
                  const struct drv_step *step,
                  struct drv_status *ret,
                  struct ll_error *reterr);

/* After a restart: did step run? *ret->state is DONE, FAILED (finished with an error),
 * RUNNING, NOT_STARTED or UNKNOWN. Only reads. The robot and the coater echo the step id
 * (job ids increase in start order: a step older than the instrument's last job is UNKNOWN,
 * a newer one NOT_STARTED). The furnace keeps no id: it compares the loaded program with the
 * step's — not loaded: NOT_STARTED (the daemon uses a furnace for one step at a time);
 * loaded and running: RUNNING; loaded and ended or in reset: UNKNOWN, unless this driver
 * started the step itself (then DONE), since an earlier anneal with the same parameters
 * looks the same. */
int drv_step_query(struct drv *drv,
                   const struct drv_step *step,
                   struct drv_status *ret,
                   struct ll_error *reterr);

/* Commands the safe state (robot: ABORT; furnace: program reset + safe setpoint, rate
 * limit kept non-zero; coater: ABORT) and verifies it by reading back where the protocol
 * allows. Safe to call at any time, any number of times. */
int drv_safe(struct drv *drv, struct ll_error *reterr);

/* Clears a latched fault so that the instrument takes steps again (robot RESET_ERROR,
 * coater CLR, furnace: writes alarm 1's threshold again, which acknowledges a latched
 * alarm once PV is below it). For an operator (`labloop instrument NAME reset`); the
 * daemon does not clear faults on its own. */
int drv_clear_fault(struct drv *drv, struct ll_error *reterr);

/* Closes the connection and frees *drv; sets *drv to NULL. NULL is a no-op. Does not
 * command the safe state (call drv_safe() first when that is wanted). */
void drv_close(struct drv **drv);

/* Human names: "refused by the instrument", "no answer", ... for a DRV_E* code; and
 * "running", "done", ... for a step state. */
const char *drv_error_kind(int code);
const char *drv_step_state_name(enum drv_step_state state);
const char *drv_step_kind_name(enum drv_step_kind kind);

#endif

/* sim_rtu — a simulated Modbus RTU line (an RS-485 segment): framing, the slaves on it,
 * and its timing at the configured baud rate.
 *
 * Every slave on a real multi-drop line hears every frame and answers only its own id; the
 * line carries one frame at a time, each character taking (start + data + parity + stop
 * bits) / baud, and frames are told apart by at least 3.5 characters of silence (t3.5;
 * 1750 µs above 19200 baud). A pseudo-terminal ignores the baud rate, so this module keeps
 * the time: a request that arrives at t occupies the line for its length in characters, the
 * answering slave starts after t3.5 (plus its turnaround, and a furnace.late delay), and the
 * answer is due when its last character would have arrived; an answer never starts before
 * the previous one (and its t3.5) is over, so a serial line answers in order.
 *
 * Collisions. A frame from the master that starts while the line carries a frame (a request
 * still going out, an answer's characters) or that follows another frame without any pause
 * (two frames in one read) collides: on RS-485 both are garbled. One that starts inside the
 * t3.5 after a frame is counted as a gap violation and served. The colliding request
 * is dropped (no slave sees a valid CRC) and an answer it hit is garbled (its bytes replaced
 * by noise): sim_rtu_rx() says which. A single master that keeps the gaps never collides.
 *
 * Accounting: busy time (every frame's characters plus the t3.5 after it), bytes each way,
 * frames, answers, collisions and bad frames, so a test can measure the line's utilisation
 * from the simulator's side. Transport-free: labsim feeds it the bytes read from a pty.
 */
#ifndef SIM_RTU_H
#define SIM_RTU_H

#include "drivers/labconf.h"
#include "simulators/sim_furnace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_RTU_MAX_SLAVES 16
#define SIM_RTU_MAX_PENDING 32
#define SIM_RTU_ADU_MAX 260

/* An answer on its way: due (monotonic µs) when its last character has arrived. */
struct sim_rtu_reply {
    int64_t due_us;
    uint64_t id; /* names it in a later sim_rtu_rx()'s garbled list */
    size_t len;
    uint8_t bytes[2 * SIM_RTU_ADU_MAX]; /* an echo fault sends the request too */
};

struct sim_rtu_stats {
    int64_t busy_us;            /* frames on the line, with the t3.5 after each */
    int64_t bytes_rx, bytes_tx; /* from the master, from the slaves */
    int64_t frames;             /* requests with a valid CRC that reached the slaves */
    int64_t replies;            /* answers scheduled */
    int64_t collisions;         /* master frames that hit another frame */
    int64_t gap_violations;     /* master frames that began less than t3.5 after a frame */
    int64_t bad_frames;         /* bytes dropped for a bad CRC or noise */
};

struct sim_rtu_window {
    int64_t start_us, end_us; /* an answer's characters on the line */
    uint64_t id;
};

struct sim_rtu_line {
    double char_us, t35_us, turnaround_us;
    struct sim_furnace *slaves[SIM_RTU_MAX_SLAVES];
    int n_slaves;
    uint8_t rx[512]; /* bytes of a frame not yet complete */
    size_t n_rx;
    int64_t rx_start_us;   /* when the first of them arrived */
    bool rx_hit;           /* they started while the line was busy: a collision */
    int64_t req_end_us;    /* the last request's end */
    int64_t reply_free_us; /* the last scheduled answer's end + t3.5 */
    struct sim_rtu_window win[SIM_RTU_MAX_PENDING];
    int n_win;
    uint64_t next_id;
    struct sim_rtu_stats st;
};

/* Sets up line l with the character time of inst's serial settings (baud, parity, data and
 * stop bits) and no slaves. turnaround_us: how long a slave thinks before it answers. */
void sim_rtu_init(struct sim_rtu_line *l,
                  const struct labconf_instrument *inst,
                  double turnaround_us);

/* Makes l an instant line: no character time, no t3.5 and no turnaround (answers due at once,
 * still in order, still after a furnace.late delay); its accounting counts frames and bytes
 * but no busy time. */
void sim_rtu_untimed(struct sim_rtu_line *l);

/* Puts slave f (its own slave id) on the line; -ENOSPC when full, -EEXIST for an id taken. */
int sim_rtu_add_slave(struct sim_rtu_line *l, struct sim_furnace *f);

/* Bytes written by the master, read at now_us. Complete frames with a valid CRC go to every
 * slave (the one with their id answers); each answer is appended to out (at most max_out;
 * returns how many), with its due time. *n_garbled ids (of earlier answers, at most
 * max_garbled) were hit by a collision: the caller replaces their bytes with noise. */
int sim_rtu_rx(struct sim_rtu_line *l,
               const uint8_t *data,
               size_t len,
               int64_t now_us,
               struct sim_rtu_reply *out,
               int max_out,
               uint64_t *garbled,
               int max_garbled,
               int *n_garbled);

/* Drops a partial frame (the line was quiet longer than a frame can pause). */
void sim_rtu_flush_partial(struct sim_rtu_line *l);

/* The cable was pulled: the partial frame and the answers on their way are gone (the caller
 * drops their bytes); the counters stay. */
void sim_rtu_cut(struct sim_rtu_line *l);

#endif

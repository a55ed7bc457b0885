/* bus — one Modbus RTU line (an RS-485 segment) shared by the instruments on it.
 *
 * Several controllers often share one RS-485 line, each with its own slave id: two or three
 * furnaces, or a furnace and a hotplate. The line is half duplex with one master: one
 * request and its answer at a time, and at least 3.5 character times of silence (t3.5)
 * between frames (MODBUS over Serial Line V1.02 §2.5; hardware.md §1.1). Two libmodbus
 * contexts on one port would interleave their frames and read each other's answers, so a
 * line has one owner: a struct drv_bus holds the port's one libmodbus context and lends it
 * to one transaction at a time.
 *
 * Who owns it. The caller (labloopd: one bus per distinct `device` of its Modbus RTU
 * instruments) creates the bus, passes it to every driver on the line (drv_open_bus(),
 * drv_worker_start_bus()) and frees it after the last of them is closed. drivers/ keeps no
 * global state: the bus is an object like any other, with a mutex inside. A driver opened
 * without a bus (drv_open()) makes a private one, so every Modbus RTU transaction takes the
 * same path.
 *
 * Slots. Each transaction (one request and its answer, or its time-out) takes the bus
 * alone. Waiters are served by priority, then in the order they came:
 *   - DRV_BUS_COMMAND: drv_step_start(), drv_safe(), drv_clear_fault() (and the safe state
 *     a failed poll commands) — a step command never waits behind a queue of polls, only
 *     behind the transaction on the line and the commands that came before it;
 *   - DRV_BUS_POLL: polls, status, query, describe.
 * A slot starts no sooner than t3.5 after the previous transaction ended (libmodbus sends
 * back to back and keeps no gap), and no sooner than the line budget allows: every
 * transaction of L µs of line time (its frames at the line's character time plus t3.5 after
 * each) pushes the next slot at least L / budget µs after its start, so the line is busy at
 * most `budget` of the time (DRV_BUS_BUDGET, 45 %: reliability.md L7 asks for at most 50 %,
 * so that half the line stays free for retries, resynchronisation and growth) — while two or more
 * drivers are on it; a line with one instrument is only kept to the gap. Line time, not wall time:
 * a device that does not answer holds the bus for its response time-out, but its silence costs the
 * others no extra pause. An instrument gives the bus back between its transactions (and during
 * every back-off), so a slow or failing device delays the others by at most one of its response
 * time-outs per turn, never by its whole call budget.
 *
 * The link (the port's file descriptor) is the bus's: when any instrument finds it lost
 * (a pulled cable: EIO, hang-up), the port is closed and every instrument on the line sees
 * the link down at its next transaction; the first one whose reconnect comes reopens the
 * port by its configured path, the others adopt it.
 */
#ifndef BUS_H
#define BUS_H

#include "common/ll_error.h"
#include "drivers/labconf.h"

#include <stdint.h>

/* The default share of time the line may carry frames: under reliability.md L7's bar of
 * 50 % with room for a window's edge (pacing spaces slot starts, so a window that ends
 * inside a transaction holds that whole transaction: 23 ms at 9600 baud). */
#define DRV_BUS_BUDGET 0.45

enum drv_bus_priority {
    DRV_BUS_POLL = 0,    /* reads for polls, status, query, describe */
    DRV_BUS_COMMAND = 1, /* start, safe, clear fault: served first */
};

struct drv_bus;

/* What a bus has seen since it was created (all times in µs). */
struct drv_bus_stats {
    int64_t elapsed_us;   /* since drv_bus_new() */
    int64_t transactions; /* requests sent */
    int64_t line_us;      /* the line time of every transaction: frames + t3.5 after each */
    int64_t held_us;      /* wall time the bus was held (includes turnaround, time-outs) */
    int64_t bytes_tx, bytes_rx;
    /* waits for a slot, per priority (index: enum drv_bus_priority): every transaction's,
     * and separately the first transaction of each driver call (the wait before a step
     * command gets the line at all) */
    int64_t waits[2], wait_total_us[2], wait_max_us[2];
    int64_t calls[2], call_wait_total_us[2], call_wait_max_us[2];
    double char_us, t35_us; /* the line's character time and inter-frame gap */
};

/* Makes a bus for the serial line of inst (a Modbus RTU instrument: device, baud, parity,
 * data and stop bits), with the default budget. No I/O: the port is opened by the first
 * driver that connects. *ret_bus: free with drv_bus_free() after every driver on it is
 * closed. Errors: -EINVAL (not a Modbus RTU instrument), -ENOMEM. */
int drv_bus_new(const struct labconf_instrument *inst,
                struct drv_bus **ret_bus,
                struct ll_error *reterr);

/* 0 when inst may join the bus (a Modbus RTU instrument with the bus's device and serial
 * settings); else -EINVAL with a sentence naming the difference. No I/O. */
int drv_bus_check(const struct drv_bus *bus,
                  const struct labconf_instrument *inst,
                  struct ll_error *reterr);

/* Sets the share of time the line may be busy, 0 < budget <= 1 (1: no pacing, only the
 * inter-frame gap). Returns 0 or -EINVAL. */
int drv_bus_set_budget(struct drv_bus *bus, double budget);

/* The configured device path. */
const char *drv_bus_device(const struct drv_bus *bus);

/* Copies the bus's counters into *ret (thread-safe). */
void drv_bus_stats(struct drv_bus *bus, struct drv_bus_stats *ret);

/* Closes the port and frees *bus; sets *bus to NULL. NULL is a no-op. No driver may use it
 * any more. */
void drv_bus_free(struct drv_bus **bus);

#endif

/* driver_internal — the backend vtable behind drivers/driver.h and helpers shared by the
 * backends (Modbus transactions with classification and retries; SPN/1 framing). Nothing
 * outside drivers/ includes this, except the drivers' own tests and the SPN/1 fuzz target.
 */
#ifndef DRIVER_INTERNAL_H
#define DRIVER_INTERNAL_H

#include "common/ll_error.h"
#include "drivers/bus.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"

#include <modbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One backend. Every function gets the deadline of the whole call (monotonic ms). */
struct drv_ops {
    const char *kind;
    int (*connect)(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr);
    int (*describe)(
        struct drv *drv, char *buf, size_t size, int64_t deadline_ms, struct ll_error *reterr);
    int (*status)(struct drv *drv,
                  struct drv_status *ret,
                  int64_t deadline_ms,
                  struct ll_error *reterr);
    int (*start)(struct drv *drv,
                 const struct drv_step *step,
                 int64_t deadline_ms,
                 struct ll_error *reterr);
    int (*poll)(struct drv *drv,
                const struct drv_step *step,
                struct drv_status *ret,
                int64_t deadline_ms,
                struct ll_error *reterr);
    int (*query)(struct drv *drv,
                 const struct drv_step *step,
                 struct drv_status *ret,
                 int64_t deadline_ms,
                 struct ll_error *reterr);
    int (*safe)(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr);
    int (*clear_fault)(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr);
    void (*disconnect)(struct drv *drv);
};

struct drv {
    const struct drv_ops *ops;
    struct labconf_instrument inst;
    bool connected;
    bool own_bus;   /* Modbus RTU: the bus is this driver's alone (below) */
    bool bus_first; /* the call in progress has not had a slot on the line yet */
    /* the step this driver started last (0 none) and when (monotonic ms) */
    uint32_t started_step_id;
    int64_t started_ms;
    /* backend state */
    modbus_t *mb; /* robot; furnace: the bus's context while connected (borrowed) */
    /* Modbus RTU: the line (drivers/bus.h), shared or made for this driver alone (own_bus);
     * the port generation this driver last used; the priority of the call in progress
     * (driver.c sets it and bus_first at each call) */
    struct drv_bus *bus;
    unsigned bus_gen;
    enum drv_bus_priority bus_prio;
    struct sp_port *port; /* coater on a real serial port (libserialport) */
    int fd;               /* coater on a pseudo-terminal (termios), else -1 */
    uint16_t seq;         /* coater: next SPN/1 sequence number */
    char rxbuf[512];      /* coater: bytes received but not yet consumed */
    size_t rxlen;
    uint16_t last_heartbeat;   /* robot */
    int64_t heartbeat_seen_ms; /* robot: when HEARTBEAT last changed (0 unknown) */
    bool program_seen_running; /* furnace: the started program was set running */
    /* Modbus RTU: a request went unanswered or its answer was garbled, so an answer to it
     * may still arrive: resynchronise before the next request (mb.c) */
    bool mb_unsynced;
    int mb_sync_addr; /* RTU: the holding registers sync_addr, sync_addr + 1 are read to
                         resynchronise; -1 = never (Modbus TCP: transaction ids) */
    /* Modbus TCP: requests in a row that got no answer; at DRV__TCP_MUTE_RECONNECT the
     * connection is given up as half-open (mb.c) */
    int mb_timeouts;
    /* reconnecting a lost link (drv__reconnect): when it was found lost (monotonic ms, 0 =
     * up), the attempts that failed since, when the next may be made, the last one's error */
    int64_t link_lost_ms;
    int reconnect_fails;
    int64_t next_connect_ms;
    char link_msg[LL_ERROR_MSG_MAX];
    /* a configuration error (DRV_ECONFIG) seen by any call: later starts fail with it */
    bool config_error;
    char config_msg[LL_ERROR_MSG_MAX];
};

extern const struct drv_ops drv__robot_ops;
extern const struct drv_ops drv__furnace_ops;
extern const struct drv_ops drv__coater_ops;

/* ---- The Modbus RTU line (drivers/bus.c) ------------------------------------------ */

/* Waits until this caller may use the line: the next by priority (prio, an enum
 * drv_bus_priority) and order of arrival, nobody holding it, the inter-frame gap and the
 * budget's pause over. Returns 0 with the bus held, or -ETIMEDOUT at deadline_ms (monotonic)
 * with nothing held. first_of_call: count the wait as the call's wait for its first slot. */
int drv__bus_acquire(struct drv_bus *bus,
                     enum drv_bus_priority prio,
                     bool first_of_call,
                     int64_t deadline_ms);

/* Gives the bus back after one transaction of tx_bytes request bytes and rx_bytes answer
 * bytes (0: no answer), which it accounts as line time; tx_bytes 0: no transaction (no gap,
 * no accounting). */
void drv__bus_release(struct drv_bus *bus, size_t tx_bytes, size_t rx_bytes);

/* With the bus held: its libmodbus context (the same pointer for the bus's whole life). */
modbus_t *drv__bus_modbus(struct drv_bus *bus);

/* With the bus held: opens the port unless it is open (DRV_ELINK with the OS's reason when it
 * cannot be), and sets *gen to the port's generation. */
int drv__bus_open(struct drv_bus *bus, unsigned *gen, struct ll_error *reterr);

/* With the bus held: false when the port is closed (lost); else true, and *gen is set to the
 * current generation (another instrument may have reopened it). */
bool drv__bus_current(struct drv_bus *bus, unsigned *gen);

/* With the bus held: the link is lost; the port is closed until someone reopens it. */
void drv__bus_lost(struct drv_bus *bus);

/* Registers a driver for slave id `slave` on the bus: -EEXIST when another driver already
 * has that id (two drivers would each take the other's answers). detach undoes it. */
int drv__bus_attach(struct drv_bus *bus, int slave, struct ll_error *reterr);
void drv__bus_detach(struct drv_bus *bus, int slave);

/* ---- Modbus helpers (drivers/mb.c) ----------------------------------------------- */

/* Sets timeouts, turns error recovery off. */
void drv__mb_configure(struct drv *drv);

/* How often a request answered "busy" (exception 06: not carried out) is sent again,
 * after back-offs of 25, 50, 100, 200 ms, before DRV_EBUSY goes to the caller, who retries
 * later (the daemon: the step stays pending). Reads are retried until the deadline. */
#define DRV__BUSY_RESENDS 4

/* Exception 05 (acknowledge): the instrument accepted the request and works on it; the
 * caller polls for the result. Internal to drivers/: no public call returns it. */
#define DRV__EACCEPTED (-EINPROGRESS)

/* Maps errno after a failed libmodbus call to a DRV_E* code, with a sentence naming what
 * (e.g. "reading input registers 0-9") and the exception code and name in reterr:
 *   01, 02       DRV_ECONFIG   (the register map or function does not fit the instrument)
 *   03, 07, 09+  DRV_EREFUSED
 *   04, 08       DRV_EFAULT
 *   05           DRV__EACCEPTED (poll for the result)
 *   06           DRV_EBUSY     (back off, send again)
 *   0A           DRV_ELINK     (no path through the gateway; drv->connected = false)
 *   0B           DRV_ETIMEDOUT (the gateway's target did not answer)
 * time-out DRV_ETIMEDOUT; bad CRC, bad data, another slave's id DRV_EPROTO; anything else
 * DRV_ELINK (and drv->connected = false). After a time-out or a garbled answer on RTU, the
 * next request resynchronises first (drv->mb_unsynced); on Modbus TCP, after
 * DRV__TCP_MUTE_RECONNECT time-outs in a row it goes out on a new connection
 * (drv->connected = false: a half-open one never answers again). */
int drv__mb_error(struct drv *drv, int err, const char *what, struct ll_error *reterr);

/* True for the codes that mean the instrument answered "no" to the request: never resent,
 * the request was not carried out (DRV_EREFUSED, DRV_ECONFIG, DRV_EFAULT). */
bool drv__mb_refusal(int r);

/* Reads n holding (input = false) or input (input = true) registers at addr, retrying
 * time-outs, garbled answers, lost links (reconnecting), busy (06) and acknowledge (05)
 * with back-off until deadline_ms. Refusals (drv__mb_refusal) are returned at once. A
 * value is returned only from an answer to this request: before each attempt the link is
 * flushed, and resynchronised after an earlier unanswered or garbled request (RTU). */
int drv__mb_read(struct drv *drv,
                 bool input,
                 int addr,
                 int n,
                 uint16_t *dest,
                 int64_t deadline_ms,
                 struct ll_error *reterr);

/* Writes one holding register (FC06). Never resent blindly: after a time-out or a lost
 * link the register is read back; equal means written, different means written once
 * more (setting a register to a value is idempotent), unreadable means DRV_ETIMEDOUT.
 * Busy (06: not carried out) is sent again DRV__BUSY_RESENDS times at most; acknowledge
 * (05: accepted) is followed by reading the register back until it holds the value. */
int drv__mb_write_reg(
    struct drv *drv, int addr, uint16_t value, int64_t deadline_ms, struct ll_error *reterr);

/* One attempt of FC16 (flush, and resynchronise if needed, first); no retry. Returns 0,
 * a DRV_E* code or DRV__EACCEPTED. */
int drv__mb_write_regs_once(struct drv *drv,
                            int addr,
                            int n,
                            const uint16_t *src,
                            int64_t deadline_ms,
                            struct ll_error *reterr);

/* Reconnect back-off: after a failed attempt to reopen a lost link (open the device path
 * again, or connect), the next waits DRV_RECONNECT_FIRST_MS, doubling up to
 * DRV_RECONNECT_MAX_MS. An attempt is one open() or connect(), so a short cap costs nothing
 * and lets a replugged instrument be found within seconds. */
#define DRV_RECONNECT_FIRST_MS 500

/* Modbus TCP requests in a row without an answer after which the connection is taken for
 * half-open (the server lost it, or its handler hangs) and opened anew: 2, so that one late
 * answer keeps the connection (libmodbus drops it by its transaction id) and a mute one costs
 * about two response time-outs before the reconnect. */
#define DRV__TCP_MUTE_RECONNECT 2
#define DRV_RECONNECT_MAX_MS 4000

/* Makes sure the link is up before I/O: 0 at once when connected; else reopens it (the
 * backend's disconnect + connect: a serial device is opened again by its path, so a
 * re-pointed symlink is followed) at the times of the reconnect back-off above, which
 * persists across calls, sleeping in between but never past deadline_ms. Returns 0 once
 * connected, DRV_ELINK (with the last attempt's error and how long the link has been down)
 * when the deadline comes first, or the backend's other errors. */
int drv__reconnect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr);

/* Connects (or reconnects) drv->mb within deadline: Modbus TCP opens a connection; Modbus
 * RTU opens the bus's port, or adopts it when it is open (another instrument on the line
 * opened it). */
int drv__mb_connect(struct drv *drv, int64_t deadline_ms, struct ll_error *reterr);

/* Back-off sleep for attempt k (25 ms doubling, capped at 400 ms and at the deadline).
 * Returns false when the deadline has passed. */
bool drv__backoff(int attempt, int64_t deadline_ms);

/* ---- Furnace readings (drivers/furnace.c) ----------------------------------------- */

/* The registers a furnace reading is decoded from. */
enum furnace_reg {
    FURNACE_REG_PV,
    FURNACE_REG_WORKING_SP,
    FURNACE_REG_PROGRAM_STATUS,
    FURNACE_REG_STATUS,
};

/* Why a raw register value is not a reading (reliability.md B8: garbage from instruments). */
enum furnace_invalid {
    FURNACE_VALID = 0,
    FURNACE_INVALID_ERROR_CODE, /* PV: one of the map's pv_error_codes (Omega 0x8002-0x8006) */
    FURNACE_INVALID_RANGE,      /* PV, working SP: outside the map's temp_range_c */
    FURNACE_INVALID_STATE,      /* program status: no state of program_status_values */
    FURNACE_INVALID_NONFINITE,  /* PV, working SP: raw * temp_scale is not finite */
};

/* The programmer states, whatever numbers the map gives them. */
enum furnace_program {
    FURNACE_PROGRAM_RESET,
    FURNACE_PROGRAM_RUN,
    FURNACE_PROGRAM_HOLD,
    FURNACE_PROGRAM_END,
};

struct furnace_reading {
    enum furnace_invalid invalid; /* FURNACE_VALID, or why the value is garbage */
    uint16_t raw;
    double value;               /* PV, working SP: degrees C; NAN when invalid */
    enum furnace_program state; /* program status, when valid */
    uint16_t bits;              /* status word (every 16-bit value is a valid bitmap) */
    char reason[160];           /* when invalid: one phrase naming the raw value and the rule */
};

/* Decodes the raw value of register reg by map m and classifies it: a reading, or INVALID
 * with a reason. Pure (no I/O, no state): the one place a furnace reading is made, unit
 * tested and fuzzed (tests/fuzz/fuzz_furnace_decode.c). Returns ret->invalid. */
enum furnace_invalid furnace_decode(const struct labconf_furnace_map *m,
                                    enum furnace_reg reg,
                                    uint16_t raw,
                                    struct furnace_reading *ret);

/* ---- SPN/1 framing (drivers/spn1.c) ---------------------------------------------- */

#define SPN1_LINE_MAX 128

struct spn1_reply {
    unsigned seq;
    bool ok;                  /* OK or ERR */
    int err_code;             /* ERR: nn of Enn */
    char data[SPN1_LINE_MAX]; /* OK: the data after "OK " ("" if none); ERR: the token */
};

/* Formats "<seq> <body>*<CRC>\r\n" into buf; returns the length, or -EINVAL when body has
 * characters outside printable ASCII or the frame would exceed SPN1_LINE_MAX. */
int spn1_format(unsigned seq, const char *body, char *buf, size_t size);

/* Parses one reply line (without "\r\n"; len bytes, not NUL-terminated). Returns 0, or
 * -EBADMSG (bad CRC), -EPROTO (malformed). Outside input: fuzzed by fuzz_spn1_reply. */
int spn1_parse_reply(const char *line, size_t len, struct spn1_reply *ret);

/* The value of KEY=VALUE in a space-separated data string, copied into buf; -ENOENT. */
int spn1_field(const char *data, const char *key, char *buf, size_t size);

/* Maps an SPN/1 ERR code to a DRV_E* code (E05/E06/E07/E09 refusals, E04 busy ...). */
int spn1_error_code(int err_code);

#endif

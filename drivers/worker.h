/* worker — drivers for an event loop: one thread per instrument, a request queue, and
 * completions signalled on a pollable file descriptor.
 *
 * libmodbus and serial I/O block (a Modbus RTU read at 9600 baud takes 30-50 ms, a dead
 * link up to the call budget). The daemon therefore never calls drivers/driver.h itself:
 * it starts one worker per instrument, submits requests, and adds drv_worker_fd() to its
 * poll set; when the fd is readable it takes completions with drv_worker_next().
 *
 * Threading contract:
 *   - The worker thread alone owns the struct drv; it opens it at the first request (and
 *     again after an open failure or a lost link), so starting a worker does no I/O.
 *   - drv_worker_submit(), drv_worker_next() and drv_worker_fd() may be called from any one
 *     thread (the daemon's loop); submit and next are mutex-protected against the worker.
 *   - Requests run one at a time, in order, except DRV_REQ_SAFE, which goes to the head of
 *     the queue (an e-stop must not wait behind polls). A request that is running is not
 *     interrupted; it ends within its call budget (driver.h "Deadlines"). DRV_REQ_CLEAR
 *     (the operator's reset of a latched fault) keeps its place: it runs after whatever was
 *     queued before it, so it never runs under a start or a poll submitted earlier; the
 *     caller decides whether a reset is safe at all (the daemon refuses one while a step of
 *     the instrument is in flight).
 *   - The completion fd is an eventfd in semaphore mode: it is readable exactly while at
 *     least one completion is waiting; each drv_worker_next() consumes one. Level-
 *     triggered, so poll()/epoll without EPOLLET both work.
 *   - drv_worker_stop() waits for the running request to end (bounded by its budget),
 *     drops the queued ones, closes the driver and frees everything. It does NOT command
 *     the safe state: submit DRV_REQ_SAFE and wait for its completion first if wanted.
 * Ownership: requests and completions are copied in and out; the worker keeps no pointer
 * to the caller's memory.
 */
#ifndef WORKER_H
#define WORKER_H

#include "common/ll_error.h"
#include "drivers/driver.h"
#include "drivers/labconf.h"

#include <stdint.h>

#define DRV_WORKER_QUEUE_MAX 64

enum drv_request_op {
    DRV_REQ_START = 1, /* drv_step_start(step) */
    DRV_REQ_POLL,      /* drv_step_poll(step) -> status */
    DRV_REQ_QUERY,     /* drv_step_query(step) -> status */
    DRV_REQ_SAFE,      /* drv_safe(); jumps the queue */
    DRV_REQ_STATUS,    /* drv_status() -> status */
    DRV_REQ_DESCRIBE,  /* drv_describe() -> status.text */
    DRV_REQ_CLEAR,     /* drv_clear_fault(): clears a latched fault; in order, like the others */
};

struct drv_request {
    enum drv_request_op op;
    uint64_t cookie;      /* the caller's tag, returned in the completion */
    struct drv_step step; /* START, POLL, QUERY */
};

struct drv_completion {
    enum drv_request_op op;
    uint64_t cookie;
    uint32_t step_id;         /* request.step.id */
    int rc;                   /* the driver call's result: 0 or a DRV_E* code */
    struct drv_status status; /* POLL, QUERY, STATUS; DESCRIBE puts its text in status.text */
    struct ll_error err;      /* rc != 0: the sentence */
    int64_t elapsed_ms;       /* how long the driver call took */
};

struct drv_worker;

/* Starts a worker thread for inst (copied). No I/O happens before the first request.
 * *ret_worker: free with drv_worker_stop(). Errors: -ENOMEM, -EMFILE (eventfd), -EAGAIN
 * (thread). */
int drv_worker_start(const struct labconf_instrument *inst,
                     struct drv_worker **ret_worker,
                     struct ll_error *reterr);

/* drv_worker_start() for an instrument on a shared Modbus RTU line: the worker's driver is
 * opened with drv_open_bus(inst, bus) (bus NULL: as drv_worker_start()). bus stays the
 * caller's and must outlive the worker (drivers/bus.h). The workers of one line run their
 * requests in parallel threads; the bus serialises their transactions, commands (START,
 * SAFE, CLEAR) before polls (POLL, QUERY, STATUS, DESCRIBE). */
int drv_worker_start_bus(const struct labconf_instrument *inst,
                         struct drv_bus *bus,
                         struct drv_worker **ret_worker,
                         struct ll_error *reterr);

/* The completion fd to poll for POLLIN (owned by the worker; do not close or read it). */
int drv_worker_fd(const struct drv_worker *worker);

/* Queues a copy of req. Returns 0; -EAGAIN when DRV_WORKER_QUEUE_MAX requests and untaken
 * completions are already waiting (a SAFE request has 8 more places reserved); -ESHUTDOWN
 * after stop began. */
int drv_worker_submit(struct drv_worker *worker,
                      const struct drv_request *req,
                      struct ll_error *reterr);

/* Takes one completion: returns 1 and fills *ret, or 0 when none is waiting. Never blocks. */
int drv_worker_next(struct drv_worker *worker, struct drv_completion *ret);

/* Stops the thread (see the contract above), frees *worker and sets it to NULL. NULL is a
 * no-op. */
void drv_worker_stop(struct drv_worker **worker);

/* Installs fn (NULL: none) to run in the worker thread before each request's driver call,
 * with ctx, the instrument's name and the request. A test hook: labloopd installs one only in
 * test builds (-DLL_FAILPOINTS=ON), where it may block the thread for good to stand for a
 * hung driver (reliability.md F18). Call it from the thread that submits; it takes effect from
 * the next request the worker takes from its queue. ctx stays the caller's. */
void drv_worker_set_hook(struct drv_worker *worker,
                         void (*fn)(void *ctx,
                                    const char *instrument,
                                    const struct drv_request *req),
                         void *ctx);

/* The instrument this worker drives. */
const char *drv_worker_name(const struct drv_worker *worker);

#endif

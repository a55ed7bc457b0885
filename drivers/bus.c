/* bus — one owner for a Modbus RTU line (contract in bus.h).
 *
 * A mutex guards the bus; one condition variable (on CLOCK_MONOTONIC) wakes every waiter on
 * any change, and each waiter checks whether it is next: the head of the command queue if
 * there is one, else the head of the poll queue, once nobody holds the bus and the line's
 * next free moment has come. Waiters are nodes on the waiters' own stacks, linked into one
 * FIFO list per priority, so a waiter that gives up at its deadline simply unlinks itself.
 * With a handful of instruments per line, waking everyone is cheaper than being clever.
 *
 * Timing: the character time is (1 start + data + parity + stop bits) / baud; t3.5 is 3.5
 * characters, fixed at 1750 µs above 19200 baud as the serial-line spec recommends
 * (hardware.md §1.1). A transaction's line time is (request + answer bytes) x character time
 * + t3.5 after each frame (one frame when no answer came). The next slot opens at
 * max(end of the last transaction + t3.5, start of the last transaction + its line time /
 * budget); the second term only while two or more drivers are on the line: with one,
 * nobody else waits for it (its requests run one at a time in its worker), so a pause would
 * only slow it down.
 */
#include "drivers/bus.h"

#include "common/ll_time.h"
#include "drivers/driver_internal.h"

#include <errno.h>
#include <modbus.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLAVE 247

struct bus_waiter {
    struct bus_waiter *next;
};

struct drv_bus {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    modbus_t *mb;        /* the port's one context */
    char device[LABCONF_TEXT_MAX];
    int baud, data_bits, stop_bits;
    char parity;
    double char_us, t35_us, budget;
    bool open;    /* the port is open */
    unsigned gen; /* incremented at every open */
    bool held;
    int64_t held_since_us;
    int64_t free_at_us;  /* end of the last transaction + t3.5 */
    int64_t paced_at_us; /* start of the last transaction + its line time / budget */
    struct bus_waiter *queue[2];
    int slave_users[MAX_SLAVE + 1];
    int n_attached; /* drivers on the line: the budget paces it only from 2 on */
    int64_t created_us;
    struct drv_bus_stats st;
};

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int drv_bus_new(const struct labconf_instrument *inst,
                struct drv_bus **ret_bus,
                struct ll_error *reterr)
{
    struct drv_bus *bus;
    pthread_condattr_t ca;
    int bits;

    *ret_bus = NULL;
    if (inst->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU)
        return ll_error_set(reterr,
                            -EINVAL,
                            "instrument '%s' is not on a Modbus RTU line (%s)",
                            inst->name,
                            labconf_driver_name(inst->driver));
    bus = calloc(1, sizeof(*bus));
    if (!bus)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    snprintf(bus->device, sizeof(bus->device), "%s", inst->device);
    bus->baud = inst->baud > 0 ? inst->baud : 9600;
    bus->parity = inst->parity;
    if (!bus->parity)
        bus->parity = 'N';
    bus->data_bits = inst->data_bits > 0 ? inst->data_bits : 8;
    bus->stop_bits = inst->stop_bits > 0 ? inst->stop_bits : 1;
    bits = 1 + bus->data_bits + (bus->parity == 'N' ? 0 : 1) + bus->stop_bits;
    bus->char_us = 1e6 * bits / bus->baud;
    bus->t35_us = bus->baud > 19200 ? 1750.0 : 3.5 * bus->char_us;
    bus->budget = DRV_BUS_BUDGET;
    bus->mb = modbus_new_rtu(bus->device, bus->baud, bus->parity, bus->data_bits, bus->stop_bits);
    if (!bus->mb) {
        int e = errno;
        free(bus);
        return ll_error_set(
            reterr, -ENOMEM, "cannot create the Modbus context: %s", modbus_strerror(e));
    }
    modbus_set_error_recovery(bus->mb, MODBUS_ERROR_RECOVERY_NONE);
    pthread_mutex_init(&bus->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&bus->cond, &ca);
    pthread_condattr_destroy(&ca);
    bus->created_us = now_us();
    bus->st.char_us = bus->char_us;
    bus->st.t35_us = bus->t35_us;
    *ret_bus = bus;
    return 0;
}

int drv_bus_check(const struct drv_bus *bus,
                  const struct labconf_instrument *inst,
                  struct ll_error *reterr)
{
    if (inst->driver != LABCONF_DRIVER_FURNACE_MODBUS_RTU)
        return ll_error_set(
            reterr, -EINVAL, "instrument '%s' is not a Modbus RTU instrument", inst->name);
    if (strcmp(inst->device, bus->device) != 0)
        return ll_error_set(reterr,
                            -EINVAL,
                            "instrument '%s' is on %s, not on the line %s",
                            inst->name,
                            inst->device,
                            bus->device);
    if (inst->baud != bus->baud || inst->parity != bus->parity ||
        inst->data_bits != bus->data_bits || inst->stop_bits != bus->stop_bits)
        return ll_error_set(reterr,
                            -EINVAL,
                            "instrument '%s': %d %c%d%d differs from the line %s (%d %c%d%d)",
                            inst->name,
                            inst->baud,
                            inst->parity,
                            inst->data_bits,
                            inst->stop_bits,
                            bus->device,
                            bus->baud,
                            bus->parity,
                            bus->data_bits,
                            bus->stop_bits);
    return 0;
}

int drv_bus_set_budget(struct drv_bus *bus, double budget)
{
    if (!(budget > 0.0 && budget <= 1.0))
        return -EINVAL;
    pthread_mutex_lock(&bus->lock);
    bus->budget = budget;
    pthread_mutex_unlock(&bus->lock);
    return 0;
}

const char *drv_bus_device(const struct drv_bus *bus)
{
    return bus->device;
}

void drv_bus_stats(struct drv_bus *bus, struct drv_bus_stats *ret)
{
    pthread_mutex_lock(&bus->lock);
    *ret = bus->st;
    ret->elapsed_us = now_us() - bus->created_us;
    pthread_mutex_unlock(&bus->lock);
}

void drv_bus_free(struct drv_bus **bus)
{
    struct drv_bus *b;

    if (!bus || !*bus)
        return;
    b = *bus;
    if (b->open)
        modbus_close(b->mb);
    modbus_free(b->mb);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
    *bus = NULL;
}

/* ---- internal (driver_internal.h) ------------------------------------------------ */

static void unlink_waiter(struct drv_bus *bus, enum drv_bus_priority prio, struct bus_waiter *w)
{
    for (struct bus_waiter **p = &bus->queue[prio]; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

static void record_wait(int64_t *n, int64_t *total, int64_t *max, int64_t us)
{
    (*n)++;
    *total += us;
    if (us > *max)
        *max = us;
}

int drv__bus_acquire(struct drv_bus *bus,
                     enum drv_bus_priority prio,
                     bool first_of_call,
                     int64_t deadline_ms)
{
    struct bus_waiter me = {NULL};
    int64_t t0 = now_us(), deadline_us = deadline_ms * 1000;
    struct bus_waiter **tail;
    int r = 0;

    if (prio != DRV_BUS_COMMAND)
        prio = DRV_BUS_POLL;
    pthread_mutex_lock(&bus->lock);
    for (tail = &bus->queue[prio]; *tail; tail = &(*tail)->next)
        ;
    *tail = &me;
    for (;;) {
        struct bus_waiter *next =
            bus->queue[DRV_BUS_COMMAND] ? bus->queue[DRV_BUS_COMMAND] : bus->queue[DRV_BUS_POLL];
        int64_t gate = bus->free_at_us;
        int64_t now = now_us(), wake = deadline_us;
        struct timespec ts;

        if (bus->n_attached >= 2 && bus->paced_at_us > gate)
            gate = bus->paced_at_us;
        if (next == &me && !bus->held && now >= gate)
            break;
        if (now >= deadline_us) {
            r = -ETIMEDOUT;
            break;
        }
        if (next == &me && !bus->held && gate < wake)
            wake = gate;
        ts.tv_sec = (time_t)(wake / 1000000);
        ts.tv_nsec = (long)(wake % 1000000) * 1000L;
        pthread_cond_timedwait(&bus->cond, &bus->lock, &ts);
    }
    unlink_waiter(bus, prio, &me);
    if (r == 0) {
        int64_t now = now_us();
        bus->held = true;
        bus->held_since_us = now;
        record_wait(&bus->st.waits[prio],
                    &bus->st.wait_total_us[prio],
                    &bus->st.wait_max_us[prio],
                    now - t0);
        if (first_of_call)
            record_wait(&bus->st.calls[prio],
                        &bus->st.call_wait_total_us[prio],
                        &bus->st.call_wait_max_us[prio],
                        now - t0);
    }
    /* the head may have changed: let the others look again */
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->lock);
    return r;
}

void drv__bus_release(struct drv_bus *bus, size_t tx_bytes, size_t rx_bytes)
{
    int64_t now;

    pthread_mutex_lock(&bus->lock);
    now = now_us();
    if (tx_bytes > 0) {
        double line =
            (double)(tx_bytes + rx_bytes) * bus->char_us + (rx_bytes ? 2.0 : 1.0) * bus->t35_us;
        bus->st.transactions++;
        bus->st.line_us += (int64_t)line;
        bus->st.bytes_tx += (int64_t)tx_bytes;
        bus->st.bytes_rx += (int64_t)rx_bytes;
        bus->free_at_us = now + (int64_t)bus->t35_us;
        bus->paced_at_us = bus->held_since_us + (int64_t)(line / bus->budget);
    }
    bus->st.held_us += now - bus->held_since_us;
    bus->held = false;
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->lock);
}

modbus_t *drv__bus_modbus(struct drv_bus *bus)
{
    return bus->mb;
}

int drv__bus_open(struct drv_bus *bus, unsigned *gen, struct ll_error *reterr)
{
    if (!bus->open) {
        if (modbus_connect(bus->mb) != 0)
            return ll_error_set(
                reterr, DRV_ELINK, "cannot open %s: %s", bus->device, modbus_strerror(errno));
        bus->open = true;
        bus->gen++;
    }
    *gen = bus->gen;
    return 0;
}

bool drv__bus_current(struct drv_bus *bus, unsigned *gen)
{
    if (!bus->open)
        return false;
    *gen = bus->gen; /* reopened by another instrument since: the same context */
    return true;
}

void drv__bus_lost(struct drv_bus *bus)
{
    if (bus->open) {
        modbus_close(bus->mb);
        bus->open = false;
    }
}

int drv__bus_attach(struct drv_bus *bus, int slave, struct ll_error *reterr)
{
    int r = 0;

    if (slave < 1 || slave > MAX_SLAVE)
        return ll_error_set(reterr, -EINVAL, "slave id %d is outside 1..%d", slave, MAX_SLAVE);
    pthread_mutex_lock(&bus->lock);
    if (bus->slave_users[slave] > 0)
        r = ll_error_set(reterr,
                         -EEXIST,
                         "slave id %d on %s is already driven by another instrument",
                         slave,
                         bus->device);
    else {
        bus->slave_users[slave]++;
        bus->n_attached++;
    }
    pthread_mutex_unlock(&bus->lock);
    return r;
}

void drv__bus_detach(struct drv_bus *bus, int slave)
{
    if (slave < 1 || slave > MAX_SLAVE)
        return;
    pthread_mutex_lock(&bus->lock);
    if (bus->slave_users[slave] > 0) {
        bus->slave_users[slave]--;
        bus->n_attached--;
    }
    pthread_mutex_unlock(&bus->lock);
}

/* labsim — the simulated lab.
 *
 *   labsim [--lab FILE] --runtime-dir DIR [--speed N] [--seed S] [--faults SPEC]
 *          [--world perovskite|electrolyte] [--stations-endpoint EP] [--verbose]
 *
 * serves every instrument and station of a lab definition from one process: the robot as a
 * Modbus TCP server (libmodbus), the furnace as a Modbus RTU slave and the spin coater as an
 * SPN/1 device on two pseudo-terminals, and the measurement stations as ZeroMQ DEALERs that
 * connect to the daemon. A world model turns what was really done to each sample into the
 * stations' raw data. Time runs N times faster than real time (--speed); faults come by
 * rate or script from a seed (--faults). DIR receives lab.conf (the lab with the real pty
 * paths and ports), labsim.pid and, last, `ready`; ipc://DIR/control answers JSON requests
 * for tests (counts, samples, fault, set, status, unplug, stall, shutdown). Contract:
 * docs/instruments.md.
 *
 * One thread, one poll() loop: the Modbus listener and clients, the two pty masters, the
 * ZeroMQ sockets (ZMQ_FD is edge-triggered, so every socket is drained after every wake-up)
 * and a physics tick at least every 50 ms, earlier when a simulated event (a robot job, a
 * spin stage, a furnace segment, a measurement) is due, so that it ends on time; every
 * wake-up first brings the world up to the present. Idle, it wakes 20 times a second and
 * does almost nothing.
 *
 *   labsim world perovskite [--seed S] [--noise-free] < PARAMS.csv > RESULTS.csv
 *
 * evaluates the perovskite world (world.h) for each row of a CSV whose header names the
 * six inputs (any order; other columns are ignored) and prints the inputs followed by
 * pce_pct and log10_t80_h, with the default measurement noise of perovskite.md (0.3 %
 * absolute on PCE, 0.05 on log10 T80) unless --noise-free. Exit 2 on bad input.
 */
#include "common/ll_signal.h"
#include "common/ll_text.h"
#include "common/ll_time.h"
#include "drivers/labconf.h"
#include "simulators/sim_coater.h"
#include "simulators/sim_fault.h"
#include "simulators/sim_furnace.h"
#include "simulators/sim_lab.h"
#include "simulators/sim_log.h"
#include "simulators/sim_measure.h"
#include "simulators/sim_robot.h"
#include "simulators/sim_rtu.h"
#include "simulators/sim_station.h"
#include "simulators/world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static const char *const perovskite_names[WORLD_PEROVSKITE_N_INPUTS] = {
    "fa", "cs", "iodide", "anneal_c", "anneal_min", "spin_rpm"};

#define MAX_COLUMNS 64

static int split_csv(char *line, char **fields, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

static int world_perovskite(unsigned long seed, int noise_free)
{
    char line[4096];
    char *fields[MAX_COLUMNS];
    int column_of[WORLD_PEROVSKITE_N_INPUTS];
    if (fgets(line, sizeof(line), stdin) == NULL) {
        fprintf(stderr, "labsim world: <stdin>:1: empty input, expected a CSV header\n");
        return 2;
    }
    int n_cols = split_csv(line, fields, MAX_COLUMNS);
    for (int i = 0; i < WORLD_PEROVSKITE_N_INPUTS; i++) {
        column_of[i] = -1;
        for (int c = 0; c < n_cols; c++)
            if (strcmp(fields[c], perovskite_names[i]) == 0)
                column_of[i] = c;
        if (column_of[i] < 0) {
            fprintf(stderr, "labsim world: <stdin>:1: missing column '%s'\n", perovskite_names[i]);
            return 2;
        }
    }
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    printf("fa,cs,iodide,anneal_c,anneal_min,spin_rpm,pce_pct,log10_t80_h\n");
    int rc = 0;
    for (int lineno = 2; fgets(line, sizeof(line), stdin) != NULL; lineno++) {
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        int n = split_csv(line, fields, MAX_COLUMNS);
        double x[WORLD_PEROVSKITE_N_INPUTS];
        for (int i = 0; i < WORLD_PEROVSKITE_N_INPUTS; i++) {
            char *end = NULL;
            const char *text = column_of[i] < n ? fields[column_of[i]] : "";
            x[i] = strtod(text, &end);
            if (end == text || *end != '\0' || !isfinite(x[i])) {
                fprintf(stderr,
                        "labsim world: <stdin>:%d: column '%s': '%s' is not a number\n",
                        lineno,
                        perovskite_names[i],
                        text);
                rc = 2;
                goto out;
            }
        }
        if (x[WORLD_PEROVSKITE_SPIN_RPM] <= 0) {
            fprintf(stderr, "labsim world: <stdin>:%d: spin_rpm must be positive\n", lineno);
            rc = 2;
            goto out;
        }
        struct world_perovskite_truth truth;
        world_perovskite_eval(x, &truth);
        if (!noise_free) {
            truth.pce_pct += gsl_ran_gaussian(rng, 0.3);
            truth.log10_t80_h += gsl_ran_gaussian(rng, 0.05);
        }
        printf("%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,%.6f,%.6f\n",
               x[0],
               x[1],
               x[2],
               x[3],
               x[4],
               x[5],
               truth.pce_pct,
               truth.log10_t80_h);
    }
out:
    gsl_rng_free(rng);
    return rc;
}

#define MAX_CLIENTS 16
#define MAX_STATIONS LABCONF_MAX_STATIONS
#define TICK_MS 50
#define FURNACE_STEP_S 0.5
#define FURNACE_MAX_STEPS 5000
#define MAX_LATE 64
#define MAX_FURNACES SIM_RTU_MAX_SLAVES
#define MAX_PORTS 8
#define RTU_TURNAROUND_US 0.0 /* labsim's controllers answer at once (an assumption) */

/* A reply held back (a late-reply fault, or a serial answer still on the wire): sent on fd
 * at due_ms. id: the Modbus RTU line's name for it (sim_rtu.h), 0 for others. */
struct late_reply {
    int fd;
    int64_t due_ms;
    uint64_t id;
    size_t len;
    uint8_t bytes[MODBUS_TCP_MAX_ADU_LENGTH];
};

/* A serial instrument's pseudo-terminal: the master labsim serves, the slave labsim keeps
 * open itself, and the stable symlink DIR/NAME.tty that lab.conf names (as udev's
 * /dev/serial/by-id links name a USB adapter). Unplugged (control "unplug"): master = -1,
 * no symlink, and replug_ms says when a new pty appears behind the symlink. */
struct sim_tty {
    int master, slave;
    char path[PATH_MAX]; /* /dev/pts/N now ("" while unplugged) */
    char link[PATH_MAX]; /* DIR/NAME.tty */
    int64_t replug_ms;   /* monotonic ms of the replug; 0 = plugged in */
    int unplugs;         /* how often it was unplugged */
};

/* A Modbus RTU line on a pseudo-terminal: the furnaces whose lab.conf `device` is the same
 * share it (a multi-drop RS-485 line), and the pty and its symlink are named after the first
 * of them. */
struct sim_rtu_port {
    struct sim_tty tty;
    struct sim_rtu_line line;
    char device[LABCONF_TEXT_MAX]; /* the configured device that groups the furnaces */
    int64_t last_rx_ms;
    int first_inst; /* instrument index the pty is named after */
};

struct labsim_options {
    const char *lab_path;
    const char *runtime_dir;
    const char *faults;
    const char *endpoint;
    double speed;
    unsigned long seed;
    enum sim_world world;
    int allow_remote;    /* --allow-remote: the robot's Modbus server may bind beyond loopback */
    int line_timing_all; /* --line-timing all: also a Modbus RTU line with one slave is timed */
};

struct labsim {
    struct labsim_options opt;
    struct labconf *lab;
    int robot_i, furnace_i, coater_i; /* instrument indexes, -1 = none */
    struct sim_faults faults;
    struct sim_lab slab;
    gsl_rng *rng;
    uint64_t noise_rng;
    /* robot */
    struct sim_robot robot;
    modbus_t *mb;
    modbus_mapping_t *map;
    int listen_fd;
    int capture[2]; /* socketpair: libmodbus writes a reply into [0] that is sent late */
    int clients[MAX_CLIENTS];
    int n_clients;
    int robot_port;
    /* robot link faults (control "unplug"/"stall", faults robot.unplug/robot.stall) */
    struct sockaddr_storage robot_addr; /* the listener's address, to listen there again */
    socklen_t robot_addrlen;
    int64_t robot_replug_ms;     /* unplugged: listener closed until then; 0 = plugged in */
    int64_t robot_stall_ms;      /* stalled: new connections wait unaccepted until then */
    long robot_unplug_pending;   /* a robot.unplug fault fired: ms, applied after the loop */
    long robot_stall_pending;    /* the same for robot.stall; -1 = none */
    int robot_mute[MAX_CLIENTS]; /* connections stalled for good: read, never answered */
    int robot_unplugs, robot_stalls;
    /* furnaces (furnace_i: the first, whose state status reports at the top level), each on
     * a port (one per distinct device) and at a place of the robot */
    struct sim_furnace furnaces[MAX_FURNACES];
    int furnace_inst[MAX_FURNACES];
    int furnace_port[MAX_FURNACES];
    int furnace_slot[MAX_FURNACES];
    int n_furnaces, n_ports;
    struct sim_rtu_port ports[MAX_PORTS];
    /* coater */
    struct sim_coater coater;
    struct sim_tty coat;
    char line[SIM_COATER_LINE_MAX + 1];
    size_t n_line;
    int discarding;
    /* replies sent late (robot.late, furnace.late), in order */
    struct late_reply late[MAX_LATE];
    int n_late;
    /* stations and control */
    void *zctx;
    void *control;
    struct sim_station stations[MAX_STATIONS];
    int n_stations;
    struct sim_station_env env;
    /* time */
    double sim_s;
    int64_t last_ms, start_ms;
    int sigfd;
    int stop;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            sim_log(SIM_LOG_WARNING, "event=write_failed fd=%d error=\"%s\"", fd, strerror(errno));
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

/* ---- late replies ------------------------------------------------------------------ */

/* Sends a reply on fd at due (monotonic ms). A device answers in order: while an earlier
 * reply on fd is held back, this one waits behind it (so a late answer to one request
 * arrives before the answer to the next, as on a real serial line). */
static void
send_reply_at(struct labsim *ls, int fd, const uint8_t *bytes, size_t len, int64_t due, uint64_t id)
{
    int64_t now = ll_monotonic_ms();
    int queued = 0;
    for (int i = 0; i < ls->n_late; i++)
        if (ls->late[i].fd == fd) {
            queued = 1;
            if (ls->late[i].due_ms > due)
                due = ls->late[i].due_ms;
        }
    if ((!queued && due <= now) || len > sizeof(ls->late[0].bytes) || ls->n_late == MAX_LATE) {
        write_all(fd, bytes, len);
        return;
    }
    struct late_reply *l = &ls->late[ls->n_late++];
    l->fd = fd;
    l->due_ms = due;
    l->id = id;
    l->len = len;
    memcpy(l->bytes, bytes, len);
}

/* Sends a reply on fd delay_ms from now (in order, as send_reply_at). */
static void send_reply(struct labsim *ls, int fd, const uint8_t *bytes, size_t len, int delay_ms)
{
    send_reply_at(ls, fd, bytes, len, ll_monotonic_ms() + delay_ms, 0);
}

/* A collision on a Modbus RTU line hit the answer `id` still held for fd: it arrives as
 * noise (its length kept), as a garbled frame on RS-485 does. */
static void garble_reply(struct labsim *ls, int fd, uint64_t id)
{
    for (int i = 0; i < ls->n_late; i++)
        if (ls->late[i].fd == fd && ls->late[i].id == id)
            for (size_t k = 0; k < ls->late[i].len; k++)
                ls->late[i].bytes[k] = (uint8_t)(splitmix64(&ls->noise_rng) & 0xFF);
}

/* Sends the held-back replies that are due, in the order they were queued. */
static void send_due_replies(struct labsim *ls)
{
    int64_t now = ll_monotonic_ms();
    int k = 0;
    for (int i = 0; i < ls->n_late; i++) {
        if (ls->late[i].due_ms <= now)
            write_all(ls->late[i].fd, ls->late[i].bytes, ls->late[i].len);
        else
            ls->late[k++] = ls->late[i];
    }
    ls->n_late = k;
}

/* Drops the replies held back for fd (its connection closed). */
static void drop_replies(struct labsim *ls, int fd)
{
    int k = 0;
    for (int i = 0; i < ls->n_late; i++)
        if (ls->late[i].fd != fd)
            ls->late[k++] = ls->late[i];
    ls->n_late = k;
}

static int64_t next_late_ms(const struct labsim *ls)
{
    int64_t due = INT64_MAX;
    for (int i = 0; i < ls->n_late; i++)
        if (ls->late[i].due_ms < due)
            due = ls->late[i].due_ms;
    return due;
}

/* ---- robot (Modbus TCP) ------------------------------------------------------------- */

static int robot_open(struct labsim *ls, struct ll_error *err)
{
    struct labconf_instrument *inst = &ls->lab->instruments[ls->robot_i];
    const char *host = inst->host[0] ? inst->host : "127.0.0.1";
    if (!ls->opt.allow_remote && !ll_host_is_loopback(host))
        return ll_error_set(err,
                            -EPERM,
                            "robot: host '%s' is not a loopback address: labsim's Modbus TCP "
                            "server has no authentication, so it binds 127.0.0.1 or ::1 only "
                            "(--allow-remote binds it anyway)",
                            host);
    ls->mb = modbus_new_tcp(host, inst->port);
    if (ls->mb == NULL)
        return ll_error_set(err, -ENOMEM, "robot: modbus_new_tcp: %s", modbus_strerror(errno));
    modbus_set_byte_timeout(ls->mb, 0, 200000);
    ls->listen_fd = modbus_tcp_listen(ls->mb, 8);
    if (ls->listen_fd < 0)
        return ll_error_set(
            err, -errno, "robot: listen on %s:%d: %s", host, inst->port, modbus_strerror(errno));
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);
    if (getsockname(ls->listen_fd, (struct sockaddr *)&sa, &sl) != 0)
        return ll_error_set(err, -errno, "robot: getsockname: %s", strerror(errno));
    ls->robot_port = ntohs(sa.sin_port);
    ls->robot_addrlen = sizeof(ls->robot_addr);
    if (getsockname(ls->listen_fd, (struct sockaddr *)&ls->robot_addr, &ls->robot_addrlen) != 0)
        return ll_error_set(err, -errno, "robot: getsockname: %s", strerror(errno));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, ls->capture) != 0)
        return ll_error_set(err, -errno, "robot: socketpair: %s", strerror(errno));
    inst->port = ls->robot_port;
    ls->map = modbus_mapping_new_start_address((unsigned)inst->base,
                                               SIM_ROBOT_N_COILS,
                                               (unsigned)inst->base,
                                               SIM_ROBOT_N_DISCRETE,
                                               (unsigned)inst->base,
                                               SIM_ROBOT_N_HOLDING,
                                               (unsigned)inst->base,
                                               SIM_ROBOT_N_INPUT);
    if (ls->map == NULL)
        return ll_error_set(err, -ENOMEM, "robot: modbus mapping: %s", modbus_strerror(errno));
    sim_log(SIM_LOG_INFO,
            "instrument=robot event=listening host=%s port=%d base=%d",
            host,
            ls->robot_port,
            inst->base);
    return 0;
}

static void robot_refresh_map(struct labsim *ls)
{
    memcpy(ls->map->tab_registers, ls->robot.holding, sizeof(ls->robot.holding));
    sim_robot_inputs(&ls->robot, ll_monotonic_ms() - ls->start_ms, ls->map->tab_input_registers);
    memset(ls->map->tab_bits, 0, SIM_ROBOT_N_COILS);
    sim_robot_discrete(&ls->robot, ls->map->tab_input_bits);
}

static void robot_close_client(struct labsim *ls, int i)
{
    drop_replies(ls, ls->clients[i]);
    close(ls->clients[i]);
    ls->robot_mute[i] = ls->robot_mute[ls->n_clients - 1];
    ls->clients[i] = ls->clients[--ls->n_clients];
}

/* The job id of a START in this request ("" when it is none), for @job fault scripts. */
static void request_job(
    const struct labsim *ls, const uint8_t *req, int hl, int len, int base, char *out, size_t cap)
{
    out[0] = '\0';
    uint8_t fc = req[hl];
    int rel = ((req[hl + 1] << 8) | req[hl + 2]) - base;
    uint16_t block[SIM_ROBOT_N_HOLDING];
    memcpy(block, ls->robot.holding, sizeof(block));
    int start = 0;
    if (fc == 16 && len >= hl + 6) {
        int qty = (req[hl + 3] << 8) | req[hl + 4];
        if (rel < 0 || qty < 1 || rel + qty > SIM_ROBOT_N_HOLDING || len < hl + 6 + 2 * qty)
            return;
        for (int i = 0; i < qty; i++)
            block[rel + i] = (uint16_t)((req[hl + 6 + 2 * i] << 8) | req[hl + 7 + 2 * i]);
        start = rel + qty > SIM_ROBOT_REG_COMMAND && block[SIM_ROBOT_REG_COMMAND] == 1;
    } else if (fc == 6 && rel == SIM_ROBOT_REG_COMMAND) {
        start = ((req[hl + 3] << 8) | req[hl + 4]) == 1;
    } else if (fc == 5 && rel == 0) {
        start = req[hl + 3] == 0xFF;
    }
    if (start)
        snprintf(out, cap, "%u", ((unsigned)block[0] << 16) | block[1]);
}

/* Answers req on fd: exception exc (0 = the normal reply: reads, and writes already
 * applied, for which libmodbus builds the answer and the exceptions 02/03 for bad addresses
 * and quantities; the map is refreshed before every request, so what it writes into the
 * mapping does not matter). The answer goes out delay_ms late, or behind a late one still
 * held for fd: libmodbus then writes it into the capture socket, from where it is queued. */
static void
robot_reply(struct labsim *ls, int fd, const uint8_t *req, int len, int exc, int delay_ms)
{
    int queued = delay_ms > 0;
    for (int k = 0; k < ls->n_late && !queued; k++)
        queued = ls->late[k].fd == fd;
    modbus_set_socket(ls->mb, queued ? ls->capture[0] : fd);
    if (exc != 0)
        modbus_reply_exception(ls->mb, req, (unsigned)exc);
    else
        modbus_reply(ls->mb, req, len, ls->map);
    modbus_set_socket(ls->mb, fd);
    if (queued) {
        uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH];
        ssize_t n = read(ls->capture[1], buf, sizeof(buf));
        if (n > 0)
            send_reply(ls, fd, buf, (size_t)n, delay_ms);
    }
}

/* The link faults of an answered request (a job it started runs on): applied after the
 * clients' loop (robot_link_tick), which they change. */
static void robot_link_faults(struct labsim *ls, const struct sim_fault_at *at)
{
    long down_ms = -1;
    if (sim_fault_check_at(&ls->faults, "robot.unplug", at, &down_ms))
        ls->robot_unplug_pending = down_ms < 0 ? 10000 : down_ms;
    if (sim_fault_check_at(&ls->faults, "robot.stall", at, &down_ms))
        ls->robot_stall_pending = down_ms < 0 ? 10000 : down_ms;
}

static void robot_request(struct labsim *ls, int i)
{
    int fd = ls->clients[i];
    int base = ls->lab->instruments[ls->robot_i].base;
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    modbus_set_socket(ls->mb, fd);
    int len = modbus_receive(ls->mb, req);
    if (len < 0) {
        sim_log(SIM_LOG_DEBUG,
                "instrument=robot event=client_closed fd=%d reason=\"%s\"",
                fd,
                modbus_strerror(errno));
        robot_close_client(ls, i);
        return;
    }
    if (len == 0)
        return;
    if (ls->robot_mute[i]) {
        /* stalled for good (control "stall"): the request goes nowhere */
        sim_log(SIM_LOG_DEBUG, "instrument=robot event=stalled_request fd=%d", fd);
        return;
    }
    int hl = modbus_get_header_length(ls->mb);
    if (len < hl + 1)
        return;
    modbus_set_slave(ls->mb, req[hl - 1]);
    char job[16];
    request_job(ls, req, hl, len, base, job, sizeof(job));
    const char *jobp = job[0] ? job : NULL;
    struct sim_fault_at at = {.job = jobp, .fc = req[hl], .count = 1};
    if (len >= hl + 3)
        at.addr = (req[hl + 1] << 8) | req[hl + 2];
    if (req[hl] <= 4 || req[hl] == 15 || req[hl] == 16)
        at.count = len >= hl + 5 ? (req[hl + 3] << 8) | req[hl + 4] : 0;
    if (sim_fault_check_at(&ls->faults, "robot.disconnect", &at, NULL)) {
        sim_log(
            SIM_LOG_WARNING, "fault=robot.disconnect fc=%d job=%s", req[hl], job[0] ? job : "-");
        robot_close_client(ls, i);
        return;
    }
    if (sim_fault_check_at(&ls->faults, "robot.garbage", &at, NULL)) {
        uint8_t g[20];
        size_t n = 7 + (size_t)(sim_fault_uniform(&ls->faults, "robot.garbage") * 13);
        for (size_t k = 0; k < n; k++)
            g[k] = (uint8_t)(splitmix64(&ls->noise_rng) & 0xFF);
        sim_log(SIM_LOG_WARNING,
                "fault=robot.garbage fc=%d job=%s bytes=%zu",
                req[hl],
                job[0] ? job : "-",
                n);
        write_all(fd, g, n);
        return;
    }
    long code = -1;
    int acknowledge = 0;
    if (sim_fault_check_at(&ls->faults, "robot.exception", &at, &code)) {
        if (code < 0)
            code = MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE;
        sim_log(SIM_LOG_WARNING,
                "fault=robot.exception fc=%d job=%s code=%ld",
                req[hl],
                job[0] ? job : "-",
                code);
        /* 05 acknowledge: the request is accepted (applied), its result comes later */
        if (code != MODBUS_EXCEPTION_ACKNOWLEDGE) {
            robot_reply(ls, fd, req, len, (int)code, 0);
            return;
        }
        acknowledge = 1;
    }
    int no_reply = sim_fault_check_at(&ls->faults, "robot.no_reply", &at, NULL);
    if (no_reply)
        sim_log(SIM_LOG_WARNING, "fault=robot.no_reply fc=%d job=%s", req[hl], job[0] ? job : "-");
    long late = -1;
    if (!no_reply && sim_fault_check_at(&ls->faults, "robot.late", &at, &late)) {
        if (late < 0)
            late = 1000;
        sim_log(SIM_LOG_WARNING,
                "fault=robot.late fc=%d job=%s delay_ms=%ld",
                req[hl],
                job[0] ? job : "-",
                late);
    }

    uint8_t fc = req[hl];
    int rel = len >= hl + 3 ? ((req[hl + 1] << 8) | req[hl + 2]) - base : -1;
    int exc = 0;
    uint32_t accepted_before = ls->robot.accepted_job;
    robot_refresh_map(ls);
    switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4:
        break;
    case 5: {
        int value = len >= hl + 5 ? (req[hl + 3] << 8) | req[hl + 4] : -1;
        if (rel >= 0 && rel < SIM_ROBOT_N_COILS && (value == 0xFF00 || value == 0))
            exc = sim_robot_write_coil(&ls->robot, rel, value == 0xFF00);
        break;
    }
    case 15: {
        int qty = len >= hl + 5 ? (req[hl + 3] << 8) | req[hl + 4] : 0;
        if (rel >= 0 && qty >= 1 && rel + qty <= SIM_ROBOT_N_COILS && len >= hl + 7 &&
            req[hl + 5] == (qty + 7) / 8)
            for (int k = 0; k < qty && exc == 0; k++)
                exc =
                    sim_robot_write_coil(&ls->robot, rel + k, (req[hl + 6 + k / 8] >> (k % 8)) & 1);
        break;
    }
    case 6:
        if (rel >= 0 && rel < SIM_ROBOT_N_HOLDING && len >= hl + 5) {
            uint16_t v = (uint16_t)((req[hl + 3] << 8) | req[hl + 4]);
            exc = sim_robot_write_registers(&ls->robot, rel, &v, 1);
        }
        break;
    case 16: {
        int qty = len >= hl + 5 ? (req[hl + 3] << 8) | req[hl + 4] : 0;
        if (rel >= 0 && qty >= 1 && qty <= 123 && rel + qty <= SIM_ROBOT_N_HOLDING &&
            len >= hl + 6 + 2 * qty && req[hl + 5] == 2 * qty) {
            uint16_t v[SIM_ROBOT_N_HOLDING];
            for (int k = 0; k < qty; k++)
                v[k] = (uint16_t)((req[hl + 6 + 2 * k] << 8) | req[hl + 7 + 2 * k]);
            exc = sim_robot_write_registers(&ls->robot, rel, v, qty);
        }
        break;
    }
    default:
        exc = MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
        break;
    }
    sim_log(SIM_LOG_DEBUG,
            "instrument=robot fc=%d addr=%d exception=%d state=%d",
            fc,
            rel,
            exc,
            ls->robot.state);
    if (exc == 0 && job[0])
        sim_log(SIM_LOG_INFO,
                "instrument=robot job=%s event=%s",
                job,
                ls->robot.accepted_job != accepted_before ? "start" : "replay_ignored");
    if (no_reply)
        return;
    if (exc == 0 && acknowledge)
        exc = MODBUS_EXCEPTION_ACKNOWLEDGE;
    robot_reply(ls, fd, req, len, exc, late < 0 ? 0 : (int)late);
    robot_refresh_map(ls);
    robot_link_faults(ls, &at);
}

/* The robot's network cable is pulled for ms (control "unplug", fault robot.unplug): its
 * connections close (the client reads end of file or a reset) and the listener closes, so
 * that a new connection is refused until the replug (robot_link_tick). The robot itself
 * goes on: a job it runs ends meanwhile. */
static void robot_unplug(struct labsim *ls, long ms)
{
    while (ls->n_clients > 0)
        robot_close_client(ls, ls->n_clients - 1);
    if (ls->listen_fd >= 0) {
        close(ls->listen_fd);
        ls->listen_fd = -1;
        ls->robot_unplugs++;
    }
    ls->robot_replug_ms = ll_monotonic_ms() + ms;
    if (ls->robot_replug_ms == 0)
        ls->robot_replug_ms = 1;
    sim_log(SIM_LOG_WARNING,
            "instrument=robot event=unplugged port=%d replug_in_s=%.1f",
            ls->robot_port,
            (double)ms / 1000.0);
}

/* The robot stops answering with its sockets open (control "stall", fault robot.stall): the
 * connections open now are read and never answered again, as a half-open connection is
 * (they close when the client closes them), and for ms new connections wait in the
 * listener's backlog, connected but not served; after that new connections are served. */
static void robot_stall(struct labsim *ls, long ms)
{
    for (int i = 0; i < ls->n_clients; i++) {
        drop_replies(ls, ls->clients[i]);
        ls->robot_mute[i] = 1;
    }
    ls->robot_stall_ms = ll_monotonic_ms() + ms;
    ls->robot_stalls++;
    sim_log(SIM_LOG_WARNING,
            "instrument=robot event=stalled connections=%d serving_new_in_s=%.1f",
            ls->n_clients,
            (double)ms / 1000.0);
}

/* Applies robot link faults that fired during a request, and plugs the robot in again once
 * its time has come (listening on the same address); a failure is retried at the next tick. */
static void robot_link_tick(struct labsim *ls)
{
    if (ls->robot_unplug_pending >= 0) {
        robot_unplug(ls, ls->robot_unplug_pending);
        ls->robot_unplug_pending = -1;
    }
    if (ls->robot_stall_pending >= 0) {
        robot_stall(ls, ls->robot_stall_pending);
        ls->robot_stall_pending = -1;
    }
    if (ls->robot_replug_ms == 0 || ll_monotonic_ms() < ls->robot_replug_ms)
        return;
    int one = 1;
    int fd = socket(ls->robot_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ls->robot_addr, ls->robot_addrlen) != 0 ||
        listen(fd, 8) != 0) {
        sim_log(SIM_LOG_WARNING,
                "instrument=robot event=replug_failed port=%d error=\"%s\"",
                ls->robot_port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    ls->listen_fd = fd;
    ls->robot_replug_ms = 0;
    sim_log(SIM_LOG_WARNING, "instrument=robot event=plugged port=%d", ls->robot_port);
}

static void robot_accept(struct labsim *ls)
{
    int fd = accept4(ls->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (ls->n_clients == MAX_CLIENTS) {
        sim_log(SIM_LOG_WARNING, "instrument=robot event=too_many_clients");
        close(fd);
        return;
    }
    ls->robot_mute[ls->n_clients] = 0; /* a stall mutes only the connections it found */
    ls->clients[ls->n_clients++] = fd;
    sim_log(SIM_LOG_DEBUG, "instrument=robot event=client fd=%d", fd);
}

/* ---- pseudo-terminals -------------------------------------------------------------- */

static int open_pty(char *path, size_t cap, int *ret_slave, struct ll_error *err)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return ll_error_set(err, -errno, "posix_openpt: %s", strerror(errno));
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, path, cap) != 0) {
        int e = errno;
        close(m);
        return ll_error_set(err, -e, "pseudo-terminal: %s", strerror(e));
    }
    /* keep the slave open ourselves, so the master never sees a hang-up between clients */
    int s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int e = errno;
        close(m);
        return ll_error_set(err, -e, "%s: %s", path, strerror(e));
    }
    struct termios t;
    if (tcgetattr(s, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(s, TCSANOW, &t);
    }
    fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
    *ret_slave = s;
    return m;
}

/* Points t->link at t->path: a new symlink renamed over the old one (atomic). */
static int tty_link(struct sim_tty *t, struct ll_error *err)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.new", t->link);
    unlink(tmp);
    if (symlink(t->path, tmp) != 0 || rename(tmp, t->link) != 0) {
        int e = errno;
        unlink(tmp);
        return ll_error_set(err, -e, "%s -> %s: %s", t->link, t->path, strerror(e));
    }
    return 0;
}

/* Creates t's pseudo-terminal and points its symlink at it. A replug (old_path set) gets a
 * pty of another name than old_path, as a USB adapter plugged in again often gets another
 * ttyUSBn: only the symlink stays the same. */
static int tty_plug(struct sim_tty *t, const char *old_path, struct ll_error *err)
{
    int slave = -1;
    int m = open_pty(t->path, sizeof(t->path), &slave, err);
    if (m >= 0 && old_path != NULL && strcmp(t->path, old_path) == 0) {
        /* the kernel reused the number: take the next one, then free this one */
        char again[PATH_MAX];
        int slave2 = -1;
        int m2 = open_pty(again, sizeof(again), &slave2, err);
        close(m);
        close(slave);
        m = m2;
        slave = slave2;
        if (m >= 0)
            snprintf(t->path, sizeof(t->path), "%s", again);
    }
    if (m < 0) {
        t->path[0] = '\0';
        return m;
    }
    t->master = m;
    t->slave = slave;
    t->replug_ms = 0;
    int rc = tty_link(t, err);
    if (rc != 0) {
        close(t->master);
        close(t->slave);
        t->master = t->slave = -1;
        t->path[0] = '\0';
    }
    return rc;
}

/* The cable is pulled: the master closes (the client's slave sees a hang-up, EIO) and the
 * symlink goes away (as udev removes /dev/serial/by-id links); the device itself keeps
 * running inside labsim. A new pty appears behind the symlink seconds (real) from now. */
static void tty_unplug(struct labsim *ls, struct sim_tty *t, const char *name, double seconds)
{
    if (t->master >= 0) {
        drop_replies(ls, t->master);
        close(t->master);
        close(t->slave);
        t->master = t->slave = -1;
        unlink(t->link);
        t->unplugs++;
    }
    t->replug_ms = ll_monotonic_ms() + (int64_t)llround(seconds * 1000.0);
    if (t->replug_ms == 0)
        t->replug_ms = 1;
    sim_log(SIM_LOG_WARNING,
            "instrument=%s event=unplugged device=%s link=%s replug_in_s=%.1f",
            name,
            t->path,
            t->link,
            seconds);
}

/* Plugs t in again once its time has come; 1 when it did. A failure is logged and retried
 * at the next tick. */
static int tty_replug_due(struct sim_tty *t, const char *name, int64_t now)
{
    if (t->replug_ms == 0 || now < t->replug_ms)
        return 0;
    char old[PATH_MAX];
    snprintf(old, sizeof(old), "%s", t->path);
    struct ll_error err = {0};
    if (tty_plug(t, old, &err) != 0) {
        sim_log(SIM_LOG_ERR, "instrument=%s event=replug_failed error=\"%s\"", name, err.msg);
        t->replug_ms = now + TICK_MS;
        return 0;
    }
    sim_log(SIM_LOG_WARNING,
            "instrument=%s event=replugged device=%s link=%s old_device=%s",
            name,
            t->path,
            t->link,
            old);
    return 1;
}

static int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Bytes from the master on a Modbus RTU line: every furnace on it hears them, the one
 * addressed answers when its answer would have crossed the line (sim_rtu.h); a frame that
 * collided garbles the answers it hit. */
static void port_readable(struct labsim *ls, struct sim_rtu_port *p)
{
    uint8_t buf[512];
    static struct sim_rtu_reply out[4]; /* large; one thread */
    uint64_t garbled[SIM_RTU_MAX_PENDING];
    int n_garbled = 0;
    ssize_t n = read(p->tty.master, buf, sizeof(buf));
    if (n <= 0)
        return;
    p->last_rx_ms = ll_monotonic_ms();
    int64_t collisions = p->line.st.collisions;
    int k = sim_rtu_rx(
        &p->line, buf, (size_t)n, monotonic_us(), out, 4, garbled, SIM_RTU_MAX_PENDING, &n_garbled);
    if (p->line.st.collisions != collisions)
        sim_log(SIM_LOG_WARNING,
                "line=%s event=collision bytes=%zd garbled_answers=%d collisions=%lld",
                p->tty.link,
                n,
                n_garbled,
                (long long)p->line.st.collisions);
    for (int i = 0; i < n_garbled; i++)
        garble_reply(ls, p->tty.master, garbled[i]);
    for (int i = 0; i < k; i++)
        send_reply_at(
            ls, p->tty.master, out[i].bytes, out[i].len, (out[i].due_us + 999) / 1000, out[i].id);
}

static void coater_readable(struct labsim *ls)
{
    char buf[512], out[512];
    ssize_t n = read(ls->coat.master, buf, sizeof(buf));
    if (n <= 0)
        return;
    int64_t now = ll_monotonic_ms();
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            if (!ls->discarding) {
                size_t len = ls->n_line;
                if (len > 0 && ls->line[len - 1] == '\r')
                    len--;
                ls->line[len] = '\0';
                size_t r = sim_coater_line(&ls->coater, ls->line, len, now, out, sizeof(out));
                sim_log(SIM_LOG_DEBUG,
                        "instrument=coater rx=\"%.*s\" reply_bytes=%zu",
                        (int)len,
                        ls->line,
                        r);
                if (r > 0)
                    write_all(ls->coat.master, out, r);
            }
            ls->n_line = 0;
            ls->discarding = 0;
        } else if (!ls->discarding) {
            if (ls->n_line >= SIM_COATER_LINE_MAX - 1) {
                ls->discarding = 1; /* over 128 bytes with its terminator: drop the line */
                ls->n_line = 0;
            } else {
                ls->line[ls->n_line++] = ch;
            }
        }
    }
}

/* ---- control socket ---------------------------------------------------------------- */

static json_t *counts_object(const struct sim_count *c, int n)
{
    json_t *o = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(o, c[i].key, json_integer(c[i].n));
    return o;
}

static json_t *control_counts(struct labsim *ls)
{
    json_t *coater = json_object();
    for (int i = 0; i < ls->coater.n_runs; i++)
        json_object_set_new(coater, ls->coater.runs[i].job, json_integer(ls->coater.runs[i].n));
    json_t *faults = json_object();
    for (int i = 0; i < ls->faults.n_names; i++)
        if (ls->faults.names[i].hits > 0)
            json_object_set_new(
                faults, ls->faults.names[i].name, json_integer(ls->faults.names[i].hits));
    /* every furnace by name; the top-level keys are the first furnace's */
    json_t *furnaces = json_object();
    for (int i = 0; i < ls->n_furnaces; i++)
        json_object_set_new(furnaces,
                            ls->lab->instruments[ls->furnace_inst[i]].name,
                            json_pack("{s:I,s:I}",
                                      "programs",
                                      (json_int_t)ls->furnaces[i].programs_run,
                                      "eeprom_writes",
                                      (json_int_t)ls->furnaces[i].eeprom_writes));
    return json_pack("{s:b,s:o,s:o,s:I,s:I,s:o,s:o,s:o,s:f}",
                     "ok",
                     1,
                     "robot_jobs",
                     counts_object(ls->robot.jobs, ls->robot.n_jobs),
                     "coater_runs",
                     coater,
                     "furnace_programs",
                     (json_int_t)(ls->n_furnaces > 0 ? ls->furnaces[0].programs_run : 0),
                     "furnace_eeprom_writes",
                     (json_int_t)(ls->n_furnaces > 0 ? ls->furnaces[0].eeprom_writes : 0),
                     "furnaces",
                     furnaces,
                     "measurements",
                     counts_object(ls->env.measurements, ls->env.n_measurements),
                     "faults",
                     faults,
                     "sim_time_s",
                     ls->sim_s);
}

static json_t *control_samples(struct labsim *ls)
{
    json_t *arr = json_array();
    for (int w = 0; w < SIM_LAB_WELLS; w++) {
        const struct sim_sample *s = ls->slab.samples[w];
        if (s == NULL)
            continue;
        json_t *vol = json_array();
        for (int i = 0; i < ls->slab.n_reservoirs; i++)
            json_array_append_new(vol, json_real(s->vol_ul[i]));
        double ac, am;
        sim_sample_anneal(s, &ac, &am);
        json_t *truth = sim_measure_truth(&ls->slab, s);
        /* the furnace history, coarsened to at most 60 points [minutes since entry, °C] */
        json_t *profile = json_array();
        double t_total = 0.0;
        for (int i = 0; i < s->n_hist; i++)
            t_total += s->hist_dt_s[i];
        double t = 0.0, next = 0.0;
        for (int i = 0; i < s->n_hist; i++) {
            if (t >= next || i == s->n_hist - 1) {
                json_array_append_new(profile, json_pack("[f,f]", t / 60.0, s->hist_t_c[i]));
                next += t_total / 59.0;
            }
            t += s->hist_dt_s[i];
        }
        json_array_append_new(arr,
                              json_pack("{s:i,s:s,s:i,s:o,s:f,s:i,s:f,s:f,s:o,s:i,s:o}",
                                        "well",
                                        w,
                                        "place",
                                        sim_lab_slot_name(&ls->slab, s->slot),
                                        "slot",
                                        s->slot,
                                        "vol_ul",
                                        vol,
                                        "spin_rpm",
                                        s->spin_rpm,
                                        "spins",
                                        s->n_spins,
                                        "anneal_c",
                                        ac,
                                        "anneal_min",
                                        am,
                                        "furnace_profile",
                                        profile,
                                        "measurements",
                                        s->n_measurements,
                                        "truth",
                                        truth ? truth : json_null()));
    }
    return json_pack("{s:b,s:o}", "ok", 1, "samples", arr);
}

/* One furnace's state for status (the top-level furnace_* keys are the first furnace's). */
static json_t *furnace_json(const struct labsim *ls, int i)
{
    const struct sim_furnace *f = &ls->furnaces[i];
    const struct sim_rtu_port *p = &ls->ports[ls->furnace_port[i]];
    return json_pack("{s:s,s:i,s:s,s:b,s:f,s:f,s:f,s:i,s:b,s:f,s:f,s:f,s:I}",
                     "name",
                     ls->lab->instruments[ls->furnace_inst[i]].name,
                     "slave",
                     f->slave,
                     "link",
                     p->tty.link,
                     "plugged",
                     p->tty.master >= 0,
                     "pv_c",
                     f->pv_c,
                     "sp_work_c",
                     f->sp_work_c,
                     "sp_active_c",
                     sim_furnace_active_sp(f),
                     "program",
                     (int)f->program,
                     "program_ended",
                     f->program_ended != 0,
                     "seg_target_c",
                     f->seg_target_c,
                     "seg_rate_c_min",
                     f->seg_rate_c_min,
                     "seg_dwell_min",
                     f->seg_dwell_min,
                     "programs",
                     (json_int_t)f->programs_run);
}

/* One Modbus RTU line's accounting (sim_rtu.h): busy_ms over labsim's monotonic clock is
 * the line's utilisation. */
static json_t *port_json(const struct labsim *ls, const struct sim_rtu_port *p)
{
    const struct sim_rtu_stats *st = &p->line.st;
    json_t *names = json_array();
    for (int i = 0; i < ls->n_furnaces; i++)
        if (&ls->ports[ls->furnace_port[i]] == p)
            json_array_append_new(names,
                                  json_string(ls->lab->instruments[ls->furnace_inst[i]].name));
    return json_pack("{s:s,s:s,s:o,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                     "link",
                     p->tty.link,
                     "device",
                     p->tty.master >= 0 ? p->tty.path : "",
                     "instruments",
                     names,
                     "char_us",
                     p->line.char_us,
                     "t35_us",
                     p->line.t35_us,
                     "busy_ms",
                     (double)st->busy_us / 1000.0,
                     "bytes_rx",
                     (json_int_t)st->bytes_rx,
                     "bytes_tx",
                     (json_int_t)st->bytes_tx,
                     "frames",
                     (json_int_t)st->frames,
                     "replies",
                     (json_int_t)st->replies,
                     "collisions",
                     (json_int_t)st->collisions,
                     "gap_violations",
                     (json_int_t)st->gap_violations,
                     "bad_frames",
                     (json_int_t)st->bad_frames);
}

static json_t *control_status(struct labsim *ls)
{
    const struct sim_furnace *f0 = ls->n_furnaces > 0 ? &ls->furnaces[0] : NULL;
    const struct sim_tty *fur = ls->n_furnaces > 0 ? &ls->ports[ls->furnace_port[0]].tty : NULL;
    json_t *rep = json_pack("{s:b,s:i,s:s,s:s,s:f,s:f,s:i,s:f,s:f,s:f,s:i,s:b,s:s,s:I}",
                            "ok",
                            1,
                            "robot_port",
                            ls->robot_port,
                            "furnace_device",
                            fur && fur->master >= 0 ? fur->path : "",
                            "coater_device",
                            ls->coat.master >= 0 ? ls->coat.path : "",
                            "sim_time_s",
                            ls->sim_s,
                            "speed",
                            ls->opt.speed,
                            "robot_state",
                            (int)ls->robot.state,
                            "furnace_pv_c",
                            f0 ? f0->pv_c : 0.0,
                            "furnace_sp_work_c",
                            f0 ? f0->sp_work_c : 0.0,
                            "furnace_sp_active_c",
                            f0 ? sim_furnace_active_sp(f0) : 0.0,
                            "furnace_program",
                            f0 ? (int)f0->program : 0,
                            "furnace_program_ended",
                            f0 && f0->program_ended != 0,
                            "coater_state",
                            sim_coater_state_name(ls->coater.state),
                            "monotonic_ms",
                            (json_int_t)ll_monotonic_ms());
    json_t *furnaces = json_array(), *lines = json_array();
    for (int i = 0; i < ls->n_furnaces; i++)
        json_array_append_new(furnaces, furnace_json(ls, i));
    for (int i = 0; i < ls->n_ports; i++)
        json_array_append_new(lines, port_json(ls, &ls->ports[i]));
    json_object_set_new(rep, "furnaces", furnaces);
    json_object_set_new(rep, "lines", lines);
    /* the stable symlinks lab.conf names, and whether their cable is in (control "unplug") */
    json_object_set_new(rep, "furnace_link", json_string(fur ? fur->link : ""));
    json_object_set_new(rep, "coater_link", json_string(ls->coat.link));
    json_object_set_new(rep, "furnace_plugged", json_boolean(fur && fur->master >= 0));
    json_object_set_new(
        rep, "coater_plugged", json_boolean(ls->coater_i >= 0 && ls->coat.master >= 0));
    json_object_set_new(rep, "furnace_unplugs", json_integer(fur ? fur->unplugs : 0));
    json_object_set_new(rep, "coater_unplugs", json_integer(ls->coat.unplugs));
    /* the robot's link (control "unplug"/"stall") and its job-id registers */
    json_object_set_new(rep, "robot_plugged", json_boolean(ls->listen_fd >= 0));
    json_object_set_new(rep, "robot_stalled", json_boolean(ll_monotonic_ms() < ls->robot_stall_ms));
    json_object_set_new(rep, "robot_unplugs", json_integer(ls->robot_unplugs));
    json_object_set_new(rep, "robot_stalls", json_integer(ls->robot_stalls));
    json_object_set_new(rep, "robot_accepted_job", json_integer(ls->robot.accepted_job));
    json_object_set_new(rep, "robot_last_done_job", json_integer(ls->robot.last_done_job));
    return rep;
}

static json_t *control_error(const char *msg)
{
    return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

/* {"cmd": "station_restart", "name": N, "lose_state": bool}: station N stops as if its process
 * died (unsent work is lost, what it persisted stays) and starts again; with lose_state it
 * starts with nothing persisted (seq 0, a new epoch), as after a disk replacement. */
static json_t *control_station_restart(struct labsim *ls, json_t *req)
{
    const char *name = json_string_value(json_object_get(req, "name"));
    int lose = json_is_true(json_object_get(req, "lose_state"));
    for (int i = 0; name != NULL && i < ls->n_stations; i++) {
        struct sim_station *st = &ls->stations[i];
        if (strcmp(st->name, name) != 0)
            continue;
        const struct labconf_station *def = &ls->lab->stations[i];
        sim_station_close(st);
        int rc = lose ? sim_station_forget(st) : 0;
        struct ll_error err;
        ll_error_clear(&err);
        if (rc == 0)
            rc = sim_station_open(st, def, st->slot, &ls->env, ll_monotonic_ms(), &err);
        else
            ll_error_set(&err, rc, "cannot delete the station's state: %s", strerror(-rc));
        sim_log(rc == 0 ? SIM_LOG_WARNING : SIM_LOG_ERR,
                "station=%s event=restarted lose_state=%d seq=%llu epoch=%s%s%s",
                name,
                lose,
                (unsigned long long)st->seq,
                st->epoch,
                rc == 0 ? "" : " error=",
                rc == 0 ? "" : err.msg);
        if (rc != 0)
            return control_error(err.msg);
        return json_pack("{s:b,s:I,s:s}", "ok", 1, "seq", (json_int_t)st->seq, "epoch", st->epoch);
    }
    return control_error("station_restart: unknown station \"name\"");
}

/* {"cmd": "unplug", "name": N, "seconds": S}: the serial cable of instrument N (the furnace's
 * or the coater's) is pulled for S real seconds (0..3600), then plugged in again: a new pty
 * behind the same symlink. The device keeps running meanwhile. Again while unplugged: the
 * replug time is set anew. */
static json_t *control_unplug(struct labsim *ls, json_t *req)
{
    const char *name = json_string_value(json_object_get(req, "name"));
    json_t *js = json_object_get(req, "seconds");
    double seconds = json_is_number(js) ? json_number_value(js) : -1.0;
    if (!(seconds >= 0.0 && seconds <= 3600.0))
        return control_error("unplug: \"seconds\" must be a number 0..3600");
    struct sim_tty *t = NULL;
    if (name != NULL && ls->robot_i >= 0 &&
        strcmp(name, ls->lab->instruments[ls->robot_i].name) == 0) {
        robot_unplug(ls, llround(seconds * 1000.0));
        return json_pack("{s:b,s:i}", "ok", 1, "port", ls->robot_port);
    }
    int fi = -1;
    for (int i = 0; name != NULL && i < ls->n_furnaces; i++)
        if (strcmp(name, ls->lab->instruments[ls->furnace_inst[i]].name) == 0)
            fi = i;
    if (fi >= 0) {
        /* a furnace on a shared line: the line's cable, every furnace on it */
        struct sim_rtu_port *p = &ls->ports[ls->furnace_port[fi]];
        t = &p->tty;
        sim_rtu_cut(&p->line);
    } else if (name != NULL && ls->coater_i >= 0 &&
               strcmp(name, ls->lab->instruments[ls->coater_i].name) == 0) {
        t = &ls->coat;
        ls->n_line = 0;
        ls->discarding = 0;
    } else {
        return control_error("unplug: \"name\" is not an instrument (robot, furnace, coater)");
    }
    char was[PATH_MAX];
    snprintf(was, sizeof(was), "%s", t->master >= 0 ? t->path : "");
    tty_unplug(ls, t, name, seconds);
    return json_pack("{s:b,s:s,s:s}", "ok", 1, "device", was, "link", t->link);
}

/* {"cmd": "stall", "name": N, "seconds": S}: the robot (N its name) stops answering with
 * its sockets open: see robot_stall. */
static json_t *control_stall(struct labsim *ls, json_t *req)
{
    const char *name = json_string_value(json_object_get(req, "name"));
    json_t *js = json_object_get(req, "seconds");
    double seconds = json_is_number(js) ? json_number_value(js) : -1.0;
    if (!(seconds >= 0.0 && seconds <= 3600.0))
        return control_error("stall: \"seconds\" must be a number 0..3600");
    if (name == NULL || ls->robot_i < 0 ||
        strcmp(name, ls->lab->instruments[ls->robot_i].name) != 0)
        return control_error("stall: \"name\" is not the robot");
    robot_stall(ls, llround(seconds * 1000.0));
    return json_pack("{s:b}", "ok", 1);
}

static json_t *control_handle(struct labsim *ls, const char *data, size_t len)
{
    json_t *req = json_loadb(data, len, 0, NULL);
    const char *cmd = req ? json_string_value(json_object_get(req, "cmd")) : NULL;
    json_t *rep = NULL;
    if (cmd == NULL) {
        rep = control_error("expected a JSON object with \"cmd\"");
    } else if (strcmp(cmd, "counts") == 0) {
        rep = control_counts(ls);
    } else if (strcmp(cmd, "samples") == 0) {
        rep = control_samples(ls);
    } else if (strcmp(cmd, "status") == 0) {
        rep = control_status(ls);
    } else if (strcmp(cmd, "rack_unload") == 0) {
        int n = sim_lab_rack_unload(&ls->slab);
        sim_log(SIM_LOG_INFO, "event=rack_unload removed=%d", n);
        rep = json_pack("{s:b,s:i}", "ok", 1, "removed", n);
    } else if (strcmp(cmd, "fault") == 0) {
        const char *name = json_string_value(json_object_get(req, "name"));
        const char *rule = json_string_value(json_object_get(req, "rule"));
        json_t *jc = json_object_get(req, "count");
        long count = json_is_integer(jc) ? (long)json_integer_value(jc) : 1;
        struct ll_error ferr = {0};
        if (rule != NULL && sim_faults_add(&ls->faults, rule, &ferr) != 0)
            rep = control_error(ferr.msg);
        else if (rule == NULL && (name == NULL || sim_fault_arm(&ls->faults, name, count) != 0))
            rep = control_error("fault: unknown \"name\"");
        else
            rep = json_pack("{s:b}", "ok", 1);
    } else if (strcmp(cmd, "set") == 0) {
        const char *what = json_string_value(json_object_get(req, "what"));
        int value = (int)json_integer_value(json_object_get(req, "value"));
        rep = json_pack("{s:b}", "ok", 1);
        if (what != NULL && strcmp(what, "lid") == 0) {
            ls->coater.lid_open = value != 0;
            if (value &&
                (ls->coater.state == SIM_COATER_RUNNING || ls->coater.state == SIM_COATER_ARMED)) {
                ls->coater.err = 5;
                snprintf(ls->coater.last_result, sizeof(ls->coater.last_result), "E05");
                ls->coater.state =
                    ls->coater.state == SIM_COATER_RUNNING ? SIM_COATER_STOPPING : SIM_COATER_ERROR;
            }
        } else if (what != NULL && strcmp(what, "vacuum") == 0) {
            ls->coater.vac_on = value != 0;
        } else if (what != NULL && strcmp(what, "door") == 0) {
            ls->robot.interlocks = value ? ls->robot.interlocks & ~1 : ls->robot.interlocks | 1;
        } else if (what != NULL && strcmp(what, "estop") == 0) {
            if (value) {
                ls->robot.state = SIM_ROBOT_ESTOP;
                ls->robot.interlocks &= ~2;
            } else {
                ls->robot.state = SIM_ROBOT_IDLE;
                ls->robot.interlocks |= 2;
            }
        } else if (what != NULL && strcmp(what, "speed") == 0 && value >= 1) {
            ls->opt.speed = value; /* from now on; the time already run stays */
        } else {
            json_decref(rep);
            rep = control_error("set: \"what\" must be lid, vacuum, door, estop or speed (>= 1)");
        }
    } else if (strcmp(cmd, "unplug") == 0) {
        rep = control_unplug(ls, req);
    } else if (strcmp(cmd, "stall") == 0) {
        rep = control_stall(ls, req);
    } else if (strcmp(cmd, "station_restart") == 0) {
        rep = control_station_restart(ls, req);
    } else if (strcmp(cmd, "shutdown") == 0) {
        ls->stop = 1;
        rep = json_pack("{s:b}", "ok", 1);
    } else {
        rep = control_error("unknown cmd");
    }
    json_decref(req);
    return rep;
}

static void control_drain(struct labsim *ls)
{
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, ls->control, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        json_t *rep = control_handle(ls, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
        char *text = rep ? json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(rep);
        const char *t = text ? text : "{\"ok\":false,\"error\":\"out of memory\"}";
        zmq_send(ls->control, t, strlen(t), 0);
        free(text);
    }
}

/* ---- the loop ------------------------------------------------------------------------ */

static void tick(struct labsim *ls)
{
    int64_t now = ll_monotonic_ms();
    double dt = (double)(now - ls->last_ms) / 1000.0 * ls->opt.speed;
    ls->last_ms = now;
    if (dt <= 0.0)
        return;
    ls->sim_s += dt;
    if (ls->robot_i >= 0) {
        int before = ls->robot.state;
        sim_robot_advance(&ls->robot, dt);
        if (before != (int)ls->robot.state && ls->robot.state != SIM_ROBOT_BUSY)
            sim_log(SIM_LOG_INFO,
                    "instrument=robot job=%u event=job_end result=%d",
                    ls->robot.last_done_job,
                    ls->robot.last_result);
    }
    if (ls->coater_i >= 0) {
        sim_coater_advance(&ls->coater, dt, now);
        if (ls->coater.run_finished) {
            ls->coater.run_finished = 0;
            struct sim_sample *s = sim_lab_at(&ls->slab, ls->slab.coater_slot);
            sim_log(SIM_LOG_INFO,
                    "instrument=coater job=%s event=run_end result=%s peak_rpm=%.0f well=%d",
                    ls->coater.job,
                    ls->coater.last_result[0] ? ls->coater.last_result : "OK",
                    ls->coater.peak_rpm,
                    s ? s->well : -1);
            sim_lab_spun(&ls->slab, ls->coater.peak_rpm);
        }
    }
    if (ls->n_furnaces > 0) {
        int steps = (int)ceil(dt / FURNACE_STEP_S);
        if (steps > FURNACE_MAX_STEPS)
            steps = FURNACE_MAX_STEPS;
        double h = dt / steps;
        for (int f = 0; f < ls->n_furnaces; f++) {
            struct sim_furnace *fu = &ls->furnaces[f];
            for (int i = 0; i < steps; i++) {
                sim_furnace_step(fu, h);
                sim_lab_furnace_step_at(
                    &ls->slab, ls->furnace_slot[f], fu->temp_c, fu->sp_work_c, h);
            }
        }
        for (int p = 0; p < ls->n_ports; p++)
            if (ls->ports[p].line.n_rx > 0 && now - ls->ports[p].last_rx_ms > 50)
                sim_rtu_flush_partial(&ls->ports[p].line);
    }
    for (int i = 0; i < ls->n_stations; i++)
        sim_station_tick(&ls->stations[i], &ls->env, dt, now);
}

static void drain_zmq(struct labsim *ls)
{
    int64_t now = ll_monotonic_ms();
    control_drain(ls);
    for (int i = 0; i < ls->n_stations; i++)
        sim_station_drain(&ls->stations[i], &ls->env, now);
}

/* Real monotonic ms at which the earliest scheduled simulated event is due (a job, a spin
 * stage, a furnace segment, a measurement), or INT64_MAX when nothing is scheduled. Rounded
 * up, so that a tick at that time has advanced the world past the event. */
static int64_t next_due_ms(const struct labsim *ls)
{
    double due_s = HUGE_VAL;
    if (ls->robot_i >= 0)
        due_s = fmin(due_s, sim_robot_next_event_s(&ls->robot));
    if (ls->coater_i >= 0)
        due_s = fmin(due_s, sim_coater_next_event_s(&ls->coater));
    for (int i = 0; i < ls->n_furnaces; i++)
        due_s = fmin(due_s, sim_furnace_next_event_s(&ls->furnaces[i]));
    for (int i = 0; i < ls->n_stations; i++)
        due_s = fmin(due_s, sim_station_next_event_s(&ls->stations[i]));
    double real_ms = due_s / ls->opt.speed * 1000.0;
    if (!(real_ms < (double)TICK_MS))
        return INT64_MAX;
    return ls->last_ms + (int64_t)ceil(real_ms + 1e-6);
}

/* Plugs the serial instruments whose unplug time is over in again (control "unplug"). */
static void replug_due(struct labsim *ls)
{
    int64_t now = ll_monotonic_ms();
    for (int i = 0; i < ls->n_ports; i++) {
        struct sim_rtu_port *p = &ls->ports[i];
        if (tty_replug_due(&p->tty, ls->lab->instruments[p->first_inst].name, now))
            sim_rtu_cut(&p->line);
    }
    if (ls->coater_i >= 0 &&
        tty_replug_due(&ls->coat, ls->lab->instruments[ls->coater_i].name, now))
        ls->n_line = 0, ls->discarding = 0;
}

static int run_loop(struct labsim *ls)
{
    struct pollfd pfd[8 + MAX_PORTS + MAX_CLIENTS + 2 * MAX_STATIONS];
    while (!ls->stop) {
        int n = 0;
        int i_sig = -1, i_listen = -1, i_coat = -1, i_clients = -1;
        int i_port[MAX_PORTS];
        pfd[n] = (struct pollfd){.fd = ls->sigfd, .events = POLLIN};
        i_sig = n++;
        if (ls->robot_i >= 0) {
            if (ls->listen_fd >= 0 && ll_monotonic_ms() >= ls->robot_stall_ms) {
                pfd[n] = (struct pollfd){.fd = ls->listen_fd, .events = POLLIN};
                i_listen = n++;
            }
            i_clients = n;
            for (int c = 0; c < ls->n_clients; c++)
                pfd[n++] = (struct pollfd){.fd = ls->clients[c], .events = POLLIN};
        }
        for (int p = 0; p < ls->n_ports; p++) {
            i_port[p] = -1;
            if (ls->ports[p].tty.master >= 0) {
                pfd[n] = (struct pollfd){.fd = ls->ports[p].tty.master, .events = POLLIN};
                i_port[p] = n++;
            }
        }
        if (ls->coater_i >= 0 && ls->coat.master >= 0) {
            pfd[n] = (struct pollfd){.fd = ls->coat.master, .events = POLLIN};
            i_coat = n++;
        }
        int zfd = -1;
        size_t sz = sizeof(zfd);
        if (zmq_getsockopt(ls->control, ZMQ_FD, &zfd, &sz) == 0)
            pfd[n++] = (struct pollfd){.fd = zfd, .events = POLLIN};
        for (int s = 0; s < ls->n_stations; s++) {
            int fds[2];
            sim_station_fds(&ls->stations[s], fds);
            for (int k = 0; k < 2; k++)
                if (fds[k] >= 0)
                    pfd[n++] = (struct pollfd){.fd = fds[k], .events = POLLIN};
        }
        /* wake at the next tick or when the next simulated event is due, whichever comes
         * first; an event already due still waits 1 ms (no busy loop) */
        int64_t now = ll_monotonic_ms();
        int64_t wait = TICK_MS - (now - ls->last_ms);
        int64_t due = next_due_ms(ls);
        if (due != INT64_MAX && due - now < wait)
            wait = due - now < 1 ? 1 : due - now;
        int64_t late_due = next_late_ms(ls);
        if (late_due != INT64_MAX && late_due - now < wait)
            wait = late_due - now < 0 ? 0 : late_due - now;
        int rc = poll(pfd, (nfds_t)n, wait < 0 ? 0 : (int)wait);
        if (rc < 0 && errno != EINTR) {
            sim_log(SIM_LOG_ERR, "event=poll_failed error=\"%s\"", strerror(errno));
            return -errno;
        }
        /* bring the world up to now on every wake-up: scheduled events end on time, and a
         * job started by the request handled below starts now */
        tick(ls);
        replug_due(ls);
        if (rc > 0) {
            if (pfd[i_sig].revents & POLLIN) {
                struct signalfd_siginfo si;
                if (read(ls->sigfd, &si, sizeof(si)) > 0)
                    sim_log(SIM_LOG_INFO, "event=signal signo=%u", si.ssi_signo);
                ls->stop = 1;
            }
            if (i_clients >= 0) {
                /* clients from the back, so closing one does not skip another */
                for (int c = ls->n_clients - 1; c >= 0; c--) {
                    short re = pfd[i_clients + c].revents;
                    if (re & (POLLIN | POLLHUP | POLLERR))
                        robot_request(ls, c);
                }
            }
            if (i_listen >= 0 && (pfd[i_listen].revents & POLLIN))
                robot_accept(ls);
            for (int p = 0; p < ls->n_ports; p++)
                if (i_port[p] >= 0 && (pfd[i_port[p]].revents & POLLIN))
                    port_readable(ls, &ls->ports[p]);
            if (i_coat >= 0 && (pfd[i_coat].revents & POLLIN))
                coater_readable(ls);
        }
        send_due_replies(ls);
        drain_zmq(ls);
        if (ls->robot_i >= 0)
            robot_link_tick(ls);
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------------- */

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -errno;
    fputs(text, f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return -EIO;
    }
    fclose(f);
    return rename(tmp, path) == 0 ? 0 : -errno;
}

/* Creates inst's pty and its symlink DIR/NAME.tty, and names the symlink in inst->device
 * (the lab.conf labsim writes), so that a pty recreated after an unplug is found there. */
static int tty_setup(struct labsim *ls,
                     struct sim_tty *t,
                     struct labconf_instrument *inst,
                     struct ll_error *err)
{
    char dir[PATH_MAX];
    if (realpath(ls->opt.runtime_dir, dir) == NULL)
        return ll_error_set(err, -errno, "%s: %s", ls->opt.runtime_dir, strerror(errno));
    int len = snprintf(t->link, sizeof(t->link), "%s/%s.tty", dir, inst->name);
    if (len < 0 || (size_t)len >= sizeof(inst->device))
        return ll_error_set(err, -ENAMETOOLONG, "%s/%s.tty: path too long", dir, inst->name);
    int rc = tty_plug(t, NULL, err);
    if (rc != 0)
        return rc;
    snprintf(inst->device, sizeof(inst->device), "%s", t->link);
    return 0;
}

/* Every furnace on its Modbus RTU line: one pty per distinct configured device (furnaces
 * with the same device share it as slaves of one RS-485 line, each answering its own id),
 * named after the first furnace on it; the lab.conf labsim writes names the pty's symlink
 * as the device of each. A furnace's samples are those at the robot's place of its name
 * (the first furnace also takes the place "furnace"). */
static int
furnaces_setup(struct labsim *ls, const struct labconf_instrument *robot, struct ll_error *err)
{
    for (int f = 0; f < ls->n_furnaces; f++) {
        struct labconf_instrument *inst = &ls->lab->instruments[ls->furnace_inst[f]];
        struct sim_rtu_port *port = NULL;
        int p, rc;

        for (p = 0; p < ls->n_ports && port == NULL; p++)
            if (strcmp(ls->ports[p].device, inst->device) == 0)
                port = &ls->ports[p];
        /* the first furnace keeps the seed, so a one-furnace lab runs as before */
        sim_furnace_init(&ls->furnaces[f],
                         inst,
                         ls->opt.seed + 0x9E3779B97F4A7C15ull * (uint64_t)f,
                         &ls->faults);
        if (port == NULL) {
            if (ls->n_ports == MAX_PORTS)
                return ll_error_set(
                    err, -ENOSPC, "%s: more than %d Modbus RTU lines", inst->name, MAX_PORTS);
            port = &ls->ports[ls->n_ports++];
            snprintf(port->device, sizeof(port->device), "%s", inst->device);
            port->first_inst = ls->furnace_inst[f];
            sim_rtu_init(&port->line, inst, RTU_TURNAROUND_US);
            rc = tty_setup(ls, &port->tty, inst, err);
            if (rc != 0)
                return rc;
        } else {
            snprintf(inst->device, sizeof(inst->device), "%s", port->tty.link);
        }
        ls->furnace_port[f] = (int)(port - ls->ports);
        rc = sim_rtu_add_slave(&port->line, &ls->furnaces[f]);
        if (rc != 0)
            return ll_error_set(err,
                                rc,
                                "%s: slave id %d: %s on its line",
                                inst->name,
                                inst->slave,
                                rc == -EEXIST ? "taken" : "too many slaves");
        ls->furnace_slot[f] = labconf_place_slot(robot, inst->name);
        if (ls->furnace_slot[f] < 0 && f == 0)
            ls->furnace_slot[f] = ls->slab.furnace_slot;
        sim_log(SIM_LOG_INFO,
                "instrument=%s event=listening device=%s link=%s map=%s slave=%d baud=%d "
                "char_us=%.1f",
                inst->name,
                port->tty.path,
                port->tty.link,
                inst->map.name,
                inst->slave,
                inst->baud,
                port->line.char_us);
    }
    /* A line of its own keeps no line timing unless asked (--line-timing all): its only master
     * keeps the gaps, so nothing can collide, and at a dry run's --speed the real-time cost of
     * 9600 baud (about 19 ms a read, 12 transactions to load a program) would stretch every
     * compressed anneal (the 54-experiment dry run took 60 s instead of 30, and its makespan
     * ratio went from 1.04 to 1.13). Shared lines keep it: there the timing is the point. */
    for (int p = 0; p < ls->n_ports; p++)
        if (ls->ports[p].line.n_slaves == 1 && !ls->opt.line_timing_all) {
            sim_rtu_untimed(&ls->ports[p].line);
            sim_log(SIM_LOG_INFO,
                    "line=%s event=untimed (one slave; --line-timing all times it)",
                    ls->ports[p].tty.link);
        }
    return 0;
}

static int setup(struct labsim *ls, struct ll_error *err)
{
    int rc;
    if (ls->opt.lab_path != NULL)
        rc = labconf_load_file(ls->opt.lab_path, &ls->lab, err);
    else
        rc = labconf_load_default(&ls->lab, err);
    if (rc != 0)
        return rc;
    rc = sim_faults_init(&ls->faults, ls->opt.faults, ls->opt.seed, err);
    if (rc != 0)
        return rc;
    ls->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (ls->rng == NULL)
        return ll_error_set(err, -ENOMEM, "out of memory");
    gsl_rng_set(ls->rng, ls->opt.seed);
    ls->noise_rng = ls->opt.seed ^ 0x5A5A5A5A12345678ull;
    ls->robot_i = ls->furnace_i = ls->coater_i = -1;
    ls->robot_unplug_pending = ls->robot_stall_pending = -1;
    for (int i = 0; i < ls->lab->n_instruments; i++) {
        enum labconf_driver d = ls->lab->instruments[i].driver;
        if (d == LABCONF_DRIVER_ROBOT_MODBUS_TCP && ls->robot_i < 0)
            ls->robot_i = i;
        else if (d == LABCONF_DRIVER_FURNACE_MODBUS_RTU && ls->n_furnaces < MAX_FURNACES)
            ls->furnace_inst[ls->n_furnaces++] = i;
        else if (d == LABCONF_DRIVER_COATER_SPN1 && ls->coater_i < 0)
            ls->coater_i = i;
        else
            sim_log(SIM_LOG_WARNING,
                    "instrument=%s event=not_simulated reason=\"one robot, one coater, %d "
                    "furnaces at most\"",
                    ls->lab->instruments[i].name,
                    MAX_FURNACES);
    }
    if (ls->robot_i < 0)
        return ll_error_set(err,
                            -EINVAL,
                            "%s: the lab has no robot (modbus_tcp_robot): samples cannot be made",
                            ls->lab->source);
    const struct labconf_instrument *robot = &ls->lab->instruments[ls->robot_i];
    sim_lab_init(&ls->slab, ls->opt.world, robot);
    sim_robot_init(&ls->robot,
                   robot->limits.max_volume_ul,
                   robot->limits.max_total_volume_ul,
                   &ls->slab,
                   &ls->faults);
    rc = robot_open(ls, err);
    if (rc != 0)
        return rc;
    ls->furnace_i = ls->n_furnaces > 0 ? ls->furnace_inst[0] : -1;
    rc = furnaces_setup(ls, robot, err);
    if (rc != 0)
        return rc;
    if (ls->coater_i >= 0) {
        struct labconf_instrument *inst = &ls->lab->instruments[ls->coater_i];
        sim_coater_init(
            &ls->coater, inst->limits.max_rpm, inst->limits.max_accel_rpm_s, &ls->faults);
        rc = tty_setup(ls, &ls->coat, inst, err);
        if (rc != 0)
            return rc;
        sim_log(SIM_LOG_INFO,
                "instrument=%s event=listening device=%s link=%s",
                inst->name,
                ls->coat.path,
                ls->coat.link);
    }
    ls->zctx = zmq_ctx_new();
    if (ls->zctx == NULL)
        return ll_error_set(err, -ENOMEM, "zmq_ctx_new: %s", zmq_strerror(errno));
    ls->control = zmq_socket(ls->zctx, ZMQ_REP);
    char ep[PATH_MAX + 16];
    snprintf(ep, sizeof(ep), "ipc://%s/control", ls->opt.runtime_dir);
    int linger = 0;
    zmq_setsockopt(ls->control, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(ls->control, ep) != 0)
        return ll_error_set(err, -errno, "control socket %s: %s", ep, zmq_strerror(errno));
    if (ls->opt.endpoint != NULL)
        snprintf(
            ls->lab->stations_endpoint, sizeof(ls->lab->stations_endpoint), "%s", ls->opt.endpoint);
    ls->env.lab = &ls->slab;
    ls->env.rng = ls->rng;
    ls->env.faults = &ls->faults;
    ls->env.zmq_ctx = ls->zctx;
    ls->env.endpoint = ls->lab->stations_endpoint;
    snprintf(ls->env.runtime_dir, sizeof(ls->env.runtime_dir), "%s", ls->opt.runtime_dir);
    int64_t now = ll_monotonic_ms();
    for (int i = 0; i < ls->lab->n_stations && i < MAX_STATIONS; i++) {
        const struct labconf_station *def = &ls->lab->stations[i];
        int slot = labconf_place_slot(robot, def->place);
        if (slot < 0)
            sim_log(
                SIM_LOG_WARNING, "station=%s place=%s event=no_such_place", def->name, def->place);
        rc = sim_station_open(&ls->stations[i], def, slot, &ls->env, now, err);
        ls->n_stations = i + 1;
        if (rc != 0)
            return rc;
        sim_log(SIM_LOG_INFO,
                "station=%s event=connecting endpoint=%s place=%s seq=%llu",
                def->name,
                ls->env.endpoint,
                def->place,
                (unsigned long long)ls->stations[i].seq);
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/lab.conf", ls->opt.runtime_dir);
    rc = labconf_write_file(ls->lab, path, err);
    if (rc != 0)
        return rc;
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    rc = write_text(ls->opt.runtime_dir, "labsim.pid", pid);
    if (rc == 0)
        rc = write_text(ls->opt.runtime_dir, "ready", "ready\n");
    if (rc != 0)
        return ll_error_set(err, rc, "%s: %s", ls->opt.runtime_dir, strerror(-rc));
    sim_log(SIM_LOG_INFO,
            "event=ready runtime_dir=%s speed=%g seed=%lu world=%s",
            ls->opt.runtime_dir,
            ls->opt.speed,
            ls->opt.seed,
            ls->opt.world == SIM_WORLD_PEROVSKITE ? "perovskite" : "electrolyte");
    return 0;
}

static void teardown(struct labsim *ls)
{
    for (int i = 0; i < ls->n_stations; i++)
        sim_station_close(&ls->stations[i]);
    free(ls->env.measurements);
    if (ls->control != NULL)
        zmq_close(ls->control);
    if (ls->zctx != NULL)
        zmq_ctx_term(ls->zctx);
    for (int i = 0; i < ls->n_clients; i++)
        close(ls->clients[i]);
    if (ls->listen_fd > 0)
        close(ls->listen_fd);
    if (ls->capture[0] > 0) {
        close(ls->capture[0]);
        close(ls->capture[1]);
    }
    if (ls->map != NULL)
        modbus_mapping_free(ls->map);
    if (ls->mb != NULL)
        modbus_free(ls->mb);
    for (int i = 0; i < ls->n_ports; i++)
        if (ls->ports[i].tty.master > 0) {
            close(ls->ports[i].tty.master);
            close(ls->ports[i].tty.slave);
        }
    if (ls->coat.master > 0) {
        close(ls->coat.master);
        close(ls->coat.slave);
    }
    for (int i = 0; i < ls->n_ports; i++)
        if (ls->ports[i].tty.link[0] != '\0')
            unlink(ls->ports[i].tty.link);
    if (ls->coat.link[0] != '\0')
        unlink(ls->coat.link);
    sim_robot_free(&ls->robot);
    sim_lab_free(&ls->slab);
    if (ls->rng != NULL)
        gsl_rng_free(ls->rng);
    labconf_free(&ls->lab);
    if (ls->sigfd > 0)
        close(ls->sigfd);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: labsim [--lab FILE] --runtime-dir DIR [--speed N] [--seed S] [--faults SPEC]\n"
            "              [--world perovskite|electrolyte] [--stations-endpoint EP] [--verbose]\n"
            "              [--allow-remote] [--line-timing shared|all]\n"
            "       labsim world perovskite [--seed S] [--noise-free] < PARAMS.csv\n");
}

static int labsim_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"lab",               required_argument, NULL, 'l'},
        {"runtime-dir",       required_argument, NULL, 'd'},
        {"speed",             required_argument, NULL, 's'},
        {"seed",              required_argument, NULL, 'S'},
        {"faults",            required_argument, NULL, 'f'},
        {"world",             required_argument, NULL, 'w'},
        {"stations-endpoint", required_argument, NULL, 'e'},
        {"verbose",           no_argument,       NULL, 'v'},
        {"allow-remote",      no_argument,       NULL, 'r'},
        {"line-timing",       required_argument, NULL, 't'},
        {"help",              no_argument,       NULL, 'h'},
        {NULL,                0,                 NULL, 0  },
    };
    static struct labsim ls; /* large; one per process */
    memset(&ls, 0, sizeof(ls));
    ls.opt.speed = 1.0;
    ls.opt.seed = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'l':
            ls.opt.lab_path = optarg;
            break;
        case 'd':
            ls.opt.runtime_dir = optarg;
            break;
        case 's':
            ls.opt.speed = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(ls.opt.speed > 0.0) || !isfinite(ls.opt.speed)) {
                fprintf(stderr, "labsim: --speed: '%s' is not a positive number\n", optarg);
                return 2;
            }
            break;
        case 'S':
            ls.opt.seed = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0') {
                fprintf(stderr, "labsim: --seed: '%s' is not a number\n", optarg);
                return 2;
            }
            break;
        case 'f':
            ls.opt.faults = optarg;
            break;
        case 't':
            if (strcmp(optarg, "all") != 0 && strcmp(optarg, "shared") != 0) {
                fprintf(stderr, "labsim: --line-timing: '%s' is not all or shared\n", optarg);
                return 2;
            }
            ls.opt.line_timing_all = strcmp(optarg, "all") == 0;
            break;
        case 'w':
            if (strcmp(optarg, "perovskite") == 0) {
                ls.opt.world = SIM_WORLD_PEROVSKITE;
            } else if (strcmp(optarg, "electrolyte") == 0) {
                ls.opt.world = SIM_WORLD_ELECTROLYTE;
            } else {
                fprintf(stderr, "labsim: --world: '%s' is not perovskite or electrolyte\n", optarg);
                return 2;
            }
            break;
        case 'e':
            ls.opt.endpoint = optarg;
            break;
        case 'v':
            sim_log_verbose = 1;
            break;
        case 'r':
            ls.opt.allow_remote = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (ls.opt.runtime_dir == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    ls.sigfd = ll_signalfd_term(0);
    char stale[PATH_MAX + 16];
    snprintf(stale, sizeof(stale), "%s/ready", ls.opt.runtime_dir);
    unlink(stale); /* left by a labsim that was killed */
    struct ll_error err = {0};
    int rc = setup(&ls, &err);
    if (rc != 0) {
        sim_log(SIM_LOG_ERR,
                "event=startup_failed reason=\"%s\"",
                err.msg[0] ? err.msg : strerror(-rc));
        teardown(&ls);
        return 1;
    }
    ls.start_ms = ls.last_ms = ll_monotonic_ms();
    rc = run_loop(&ls);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/ready", ls.opt.runtime_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/labsim.pid", ls.opt.runtime_dir);
    unlink(path);
    sim_log(SIM_LOG_INFO, "event=stopped sim_time_s=%.1f", ls.sim_s);
    teardown(&ls);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    if (argc >= 3 && strcmp(argv[1], "world") == 0 && strcmp(argv[2], "perovskite") == 0) {
        unsigned long seed = 1;
        int noise_free = 0;
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--noise-free") == 0) {
                noise_free = 1;
            } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
                seed = strtoul(argv[++i], NULL, 10);
            } else {
                usage(stderr);
                return 2;
            }
        }
        return world_perovskite(seed, noise_free);
    }
    return labsim_main(argc, argv);
}

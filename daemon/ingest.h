/* ingest — the stations' side of labloopd: one ZeroMQ ROUTER socket (docs/protocol.md).
 *
 * The idea. Stations connect DEALERs whose routing id is their name and send hello,
 * heartbeat and measurement messages; labloopd sends them `measure` requests and an `ack`
 * for every measurement. An ack means "durably committed": ingest drains every waiting
 * message (up to INGEST_BATCH_MAX), waits a few milliseconds for more (group commit,
 * reliability.md §0.1), processes the whole batch inside one store transaction, commits, and
 * only then sends the acks. If the commit fails no ack is sent, and the stations resend.
 *
 * Per measurement, inside the transaction: parse with measurement_parse() (which enforces the
 * 4 MiB limit: the socket's own ceiling, ZMQ_MAXMSGSIZE, is 64 MiB so that an oversize message
 * still reaches us and can be answered `rejected: oversize`); the `station` field must equal
 * the routing id; the request must be a measure step we sent, for that sample and kind;
 * (station, seq) already stored with the same SHA-256 -> `duplicate`, with another hash ->
 * `rejected` (conflict; an event is logged); otherwise the raw text is stored (not yet
 * analysed) and acked `stored`. Anything wrong is stored in `rejections` with its reason and
 * answered `rejected`; nothing stops the daemon. Out of memory is never the message's fault:
 * it fails the batch (-ENOMEM, rolled back, nothing acked), also when jansson hid it
 * (daemon/jsonmem.h).
 *
 * Analysis is a second phase (ingest_analyse()): every stored measurement not yet analysed
 * is parsed again from its raw text, analysed with analysis_run(), every derived number
 * stored with analysis_version(), the hook called (the campaign engine turns numbers into
 * objectives and moves the step on) and the row marked analysed, in one transaction; out of
 * memory rolls it back (the measurement is not "failed" for it). So an ack costs one fsync
 * shared by the batch, never an analysis (a J-V fit takes milliseconds), and a crash between
 * the phases loses nothing: the next call (at start-up too) finds the measurement still
 * unanalysed.
 *
 * Socket options: ZMQ_ROUTER_MANDATORY=1 (an unroutable send fails instead of vanishing),
 * ZMQ_ROUTER_HANDOVER=1 (a restarted station takes over its name), ZMTP heartbeats
 * 5 s / 15 s, high-water marks 10000, ZMQ_LINGER 0, ZMQ_HANDSHAKE_IVL INGEST_HANDSHAKE_MS.
 */
#ifndef INGEST_H
#define INGEST_H

#include "common/ll_error.h"
#include "daemon/store.h"

#include <jansson.h>
#include <stdint.h>

#define INGEST_BATCH_MAX 64
#define INGEST_MAX_STATIONS 64
/* A connection that has not finished its ZMTP handshake (greeting, and with CURVE the key
 * exchange and ZAP) this long after it was accepted is closed (ZMQ_HANDSHAKE_IVL; libzmq's
 * default is 30 s). A station on a LAN needs milliseconds; a peer that connects and sends
 * nothing, or half a greeting (slowloris), holds a descriptor and a few KiB only this long, so
 * n such connections a second hold at most n x 5 descriptors. */
#define INGEST_HANDSHAKE_MS 5000
/* a station's message time this far from the receipt time gets a warning event (the
 * measurement is stored anyway; times are never used for ordering) */
#define INGEST_CLOCK_SKEW_MS (5 * 60 * 1000)

struct ingest;
struct measurement;
struct analysis;

/* Called inside the analysis transaction (ingest_analyse()) for every stored measurement of
 * a known measure step. a is NULL when the analysis failed (why is in analysis_error). A
 * negative return rolls that analysis batch back (it is retried by the next call). */
typedef int (*ingest_measured_fn)(void *ctx,
                                  int64_t experiment_id,
                                  int64_t step_id,
                                  int64_t measurement_id,
                                  const struct measurement *m,
                                  const struct analysis *a,
                                  const char *analysis_error,
                                  struct ll_error *reterr);

/* A station allowed to connect when CURVE is on: its name and its public key (Z85 text). */
struct ingest_station_key {
    char station[65];
    char public_z85[41];
};

struct ingest_options {
    const char *endpoint; /* e.g. "tcp://127.0.0.1:5555" */
    /* CURVE: the daemon's secret key (Z85, 40 characters), or NULL / "" for plain TCP. With
     * it, a ZAP handler thread admits only the stations listed in keys (others are refused
     * at the handshake) and every message's station must be the name bound to its key. */
    const char *curve_secret_z85;
    const struct ingest_station_key *keys;
    size_t n_keys;
    /* the lab's station names: their state is kept whatever other names connect (at most
     * INGEST_MAX_STATIONS are used) */
    const char *const *lab_stations;
    size_t n_lab_stations;
    int group_commit_ms; /* how long to wait for more messages before a commit (default 2) */
    ingest_measured_fn on_measured;
    void *ctx;
};

/* Binds the ROUTER socket in zmq context zctx. Returns 0 and a new ingest (free with
 * ingest_free()), or a negative errno with the endpoint in the message. */
int ingest_new(void *zctx,
               struct store *store,
               const struct ingest_options *opt,
               struct ingest **ret,
               struct ll_error *reterr);
void ingest_free(struct ingest **ing);

/* The ZeroMQ socket, for zmq_poll (ZMQ_POLLIN). */
void *ingest_socket(struct ingest *ing);

/* The connection guard. libzmq accepts every TCP connection to the stations socket and offers
 * no limit on how many a listener holds (ZMQ_MAX_SOCKETS counts sockets of a context, not
 * connections). Each costs a descriptor, so a flood of connections could take every
 * descriptor labloopd may open: then new instrument connections fail, and libzmq aborts the
 * whole process when the control socket cannot accept (its ipc listener asserts on EMFILE).
 * So ingest watches: every accepted connection wakes the loop through a socket monitor
 * (ingest_monitor_socket(), ZMQ_POLLIN), and ingest_guard() then counts the open descriptors
 * (/proc/self/fd, at most every 10 ms). At three quarters of the budget, min(RLIMIT_NOFILE,
 * FD_SETSIZE) (768 of systemd's 1024; FD_SETSIZE because libmodbus waits with select(), which
 * cannot take a descriptor above it), it unbinds the stations socket, which ends every
 * station connection, logs a warning and an `ingest.flood` event, and binds it again after
 * 1 s (doubling to 30 s while the flood goes on). Stations reconnect on their own and resend
 * what was not acked. The ROUTER's monitor events are only a wake-up; the count is exact. */
void *ingest_monitor_socket(struct ingest *ing);

/* Drains the monitor and acts as described above; call after every wake-up of the loop with
 * the monotonic time. */
void ingest_guard(struct ingest *ing, int64_t now_ms);

/* Milliseconds until ingest_guard() must run again (the stations socket reopens), or -1. */
long ingest_guard_timeout_ms(const struct ingest *ing, int64_t now_ms);

/* Processes every waiting message as described above. Returns the number of messages
 * handled (0 when none was waiting) or a negative errno when the store failed (nothing was
 * acked; the daemon logs it and carries on). */
int ingest_process(struct ingest *ing, struct ll_error *reterr);

/* Analyses up to max stored measurements that are not analysed yet (phase 2 above), in one
 * transaction. Returns how many (0: none waiting) or a negative errno (rolled back; they
 * stay unanalysed for the next call). */
int ingest_analyse(struct ingest *ing, int max, struct ll_error *reterr);

/* The same, but stops before the next measurement once budget_ms have passed since the call
 * or a station's message is waiting (at least one is analysed; budget_ms <= 0: neither
 * limit), so that a caller's event loop bounds the time it spends here and acks never wait
 * for a backlog of analyses: a J-V analysis takes milliseconds, and after an outage thousands
 * may wait (reliability.md L2). */
int ingest_analyse_for(struct ingest *ing, int max, int64_t budget_ms, struct ll_error *reterr);

/* Sends a `measure` request to station. protocol may be NULL (an empty object is sent).
 * -EHOSTUNREACH when the station is not connected, -EAGAIN when its queue is full. */
int ingest_send_measure(struct ingest *ing,
                        const char *station,
                        const char *request,
                        int64_t experiment_id,
                        const char *sample,
                        const char *kind,
                        json_t *protocol,
                        struct ll_error *reterr);

/* 1 when a hello or any message came from station within the last 15 s, else 0. */
int ingest_station_online(const struct ingest *ing, const char *station);

/* Stations seen so far (at most INGEST_MAX_STATIONS: the lab's, and of the other names those
 * seen most recently): array of {name, kinds, online, last_seen_ms_ago, stored, duplicates,
 * rejected}. Caller json_decref()s. */
json_t *ingest_stations_json(const struct ingest *ing);

/* CURVE handshakes the ZAP handler refused since start (0 without CURVE). */
long ingest_handshakes_refused(const struct ingest *ing);

/* Totals since start: messages acked stored / duplicate / rejected. */
void ingest_counts(const struct ingest *ing,
                   int64_t *ret_stored,
                   int64_t *ret_duplicate,
                   int64_t *ret_rejected);

#endif

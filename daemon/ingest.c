/* ingest — see ingest.h. */
#include "daemon/ingest.h"

#include "common/ll_failpoint.h"
#include "common/ll_text.h"
#include "common/ll_time.h"
#include "daemon/jsonmem.h"
#include "daemon/log.h"
#include "models/analysis.h"
#include "models/measurement.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <zmq.h>

#define IDENTITY_MAX 255
#define STATION_OFFLINE_MS 15000
#define SOCKET_CEILING_BYTES (64LL * 1024 * 1024)
#define GUARD_COUNT_EVERY_MS 10  /* at most this often a count of the open descriptors */
#define GUARD_PAUSE_MIN_MS 1000  /* the stations socket stays closed this long ... */
#define GUARD_PAUSE_MAX_MS 30000 /* ... doubling up to this while the flood goes on */
#define GUARD_CALM_MS 10000      /* a trip this long after reopening starts again at 1 s */
#define GUARD_MONITOR_HWM 100000 /* accept events queued for the loop (2 frames each) */

struct station_info {
    char name[MEASUREMENT_NAME_MAX + 1];
    unsigned kinds; /* bit set of (1u << enum measurement_kind) */
    int64_t last_seen_ms;
    int64_t stored, duplicates, rejected;
    int64_t clock_skew_ms;  /* message time minus receipt, of the last stored measurement */
    int64_t skew_warned_ms; /* monotonic ms of the last clock warning (one per hour) */
    char epoch[MEASUREMENT_NAME_MAX + 1];      /* of its last stored measurement */
    int epoch_known;                           /* epoch is set */
    char seen_epoch[MEASUREMENT_NAME_MAX + 1]; /* of its last message that had one (status) */
    int reserved;                              /* a station of the lab: never replaced */
};

/* One received message waiting for the batch commit, and its ack once processed. */
struct pending {
    uint8_t identity[IDENTITY_MAX];
    size_t identity_len;
    char user_id[80]; /* the station bound to the connection's CURVE key ("" without CURVE) */
    zmq_msg_t body;
    int n_frames; /* frames after the identity */
    char *ack;    /* JSON text to send after the commit, or NULL (hello/heartbeat) */
};

struct ingest {
    void *sock;
    /* the connection guard (ingest.h): the ROUTER's accept events, the endpoint as bound (for
     * unbinding and binding again), and its state */
    void *mon;
    char bound[256];
    int fd_high; /* open descriptors at which the stations socket closes; 0: no guard */
    int closed;
    int count_due; /* connections were accepted since the last count */
    int64_t reopen_at_ms, pause_ms, opened_at_ms, counted_at_ms;
    /* CURVE: the ZAP handler thread and its REP socket (owned by the thread after start) */
    int curve;
    void *zap;
    pthread_t zap_thread;
    int zap_started;
    atomic_int zap_stop;
    atomic_long zap_refused; /* CURVE handshakes refused since start */
    struct ingest_station_key keys[INGEST_MAX_STATIONS];
    uint8_t key_bin[INGEST_MAX_STATIONS][32]; /* the keys decoded once, at start */
    size_t n_keys;
    struct store *store;
    struct ingest_options opt;
    struct station_info stations[INGEST_MAX_STATIONS];
    int n_stations;
    struct station_info saved[INGEST_MAX_STATIONS]; /* stations before the batch (rollback) */
    int n_saved;
    int64_t n_stored, n_duplicate, n_rejected;
    struct pending batch[INGEST_BATCH_MAX];
};

/* The state of station `name`, created if new. The table is bounded (INGEST_MAX_STATIONS):
 * the lab's stations have their entries from the start (reserved) and keep them; any other
 * name takes a free entry, or that of the other name seen least recently. So names a peer makes
 * up (a flood of them, without CURVE) can neither grow the table nor take a lab station's
 * place, and a lab station is always known online or not (the engine sends measure requests
 * only to a station online). NULL only when every entry is reserved. */
static struct station_info *station_get(struct ingest *ing, const char *name)
{
    struct station_info *s = NULL;
    for (int i = 0; i < ing->n_stations; i++) {
        if (strcmp(ing->stations[i].name, name) == 0)
            return &ing->stations[i];
        if (!ing->stations[i].reserved &&
            (s == NULL || ing->stations[i].last_seen_ms < s->last_seen_ms))
            s = &ing->stations[i];
    }
    if (ing->n_stations < INGEST_MAX_STATIONS)
        s = &ing->stations[ing->n_stations++];
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    return s;
}

/* What the stations' counters and epochs say about the store, before a batch that may be rolled
 * back: a batch that is not committed must not count (nor remember an epoch, nor a clock
 * warning) — it is not in the store, and the stations will send it again. */
static void stations_save(struct ingest *ing)
{
    memcpy(ing->saved, ing->stations, (size_t)ing->n_stations * sizeof(ing->stations[0]));
    ing->n_saved = ing->n_stations;
}

/* After a rollback. Stations first seen in the batch stay known (they did talk to us), with
 * nothing counted. */
static void stations_restore(struct ingest *ing)
{
    static const struct station_info none;
    for (int i = 0; i < ing->n_stations; i++) {
        struct station_info *s = &ing->stations[i];
        const struct station_info *b = i < ing->n_saved ? &ing->saved[i] : &none;
        s->stored = b->stored;
        s->duplicates = b->duplicates;
        s->rejected = b->rejected;
        s->skew_warned_ms = b->skew_warned_ms;
        memcpy(s->epoch, b->epoch, sizeof(s->epoch));
        s->epoch_known = b->epoch_known;
    }
}

static int zmq_err(struct ll_error *err, const char *what)
{
    int e = errno;
    return ll_error_set(err, -e, "%s: %s", what, zmq_strerror(e));
}

/* A refused handshake: counted, and logged with the peer's address and the key's first Z85
 * characters, at most one line per ZAP_LOG_EVERY_MS, which also says how many it left out
 * (a flood of strangers must not flood the journal). */
#define ZAP_LOG_EVERY_MS 10000
static void zap_refused(
    struct ingest *ing, zmq_msg_t *address, zmq_msg_t *key, int64_t *last_log_ms, long *quiet)
{
    atomic_fetch_add(&ing->zap_refused, 1);
    int64_t now = ll_monotonic_ms();
    if (*last_log_ms != 0 && now - *last_log_ms < ZAP_LOG_EVERY_MS) {
        (*quiet)++;
        return;
    }
    char z85[41] = "?";
    if (key != NULL && zmq_msg_size(key) == 32)
        zmq_z85_encode(z85, zmq_msg_data(key), 32);
    int alen = (int)zmq_msg_size(address);
    char more[96] = "";
    if (*quiet > 0)
        snprintf(more, sizeof(more), " (and %ld more since the last such line)", *quiet);
    log_line(LOG_LVL_WARNING,
             "ingest: CURVE handshake refused from %.*s: public key %.8s... is not in "
             "daemon.station_keys%s",
             alen > 64 ? 64 : alen,
             (const char *)zmq_msg_data(address),
             z85,
             more);
    *last_log_ms = now;
    *quiet = 0;
}

long ingest_handshakes_refused(const struct ingest *ing)
{
    return atomic_load(&ing->zap_refused);
}

/* The ZAP handler (ZeroMQ RFC 27): answers each CURVE handshake with 200 and the station's
 * name as User-Id when the client's public key is in the allowed list, 400 otherwise (counted
 * and logged, zap_refused). libzmq's CURVE server admits ANY key when no handler is bound,
 * hence this thread. */
static void *zap_main(void *arg)
{
    struct ingest *ing = arg;
    int64_t last_log_ms = 0;
    long quiet = 0;
    while (!atomic_load(&ing->zap_stop)) {
        zmq_msg_t part[8];
        int n = 0, more = 1;
        while (more && n < 8) {
            zmq_msg_init(&part[n]);
            if (zmq_msg_recv(&part[n], ing->zap, 0) < 0) {
                zmq_msg_close(&part[n]);
                break;
            }
            more = zmq_msg_more(&part[n]);
            n++;
        }
        if (n == 0)
            continue; /* time-out: look at zap_stop again */
        const char *status = "400", *text = "unknown key", *user = "";
        if (n >= 7 && zmq_msg_size(&part[5]) == 5 &&
            memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 && zmq_msg_size(&part[6]) == 32) {
            for (size_t k = 0; k < ing->n_keys; k++) {
                if (memcmp(ing->key_bin[k], zmq_msg_data(&part[6]), 32) == 0) {
                    status = "200";
                    text = "OK";
                    user = ing->keys[k].station;
                    break;
                }
            }
        }
        if (n >= 4 && strcmp(status, "200") != 0)
            zap_refused(ing, &part[3], n >= 7 ? &part[6] : NULL, &last_log_ms, &quiet);
        if (n >= 2) {
            zmq_send(ing->zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(ing->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
            zmq_send(ing->zap, status, 3, ZMQ_SNDMORE);
            zmq_send(ing->zap, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(ing->zap, user, strlen(user), ZMQ_SNDMORE);
            zmq_send(ing->zap, "", 0, 0);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
    zmq_close(ing->zap);
    return NULL;
}

/* CURVE server keys and the ZAP handler, before the ROUTER binds. */
static int curve_setup(struct ingest *ing,
                       void *zctx,
                       const struct ingest_options *opt,
                       struct ll_error *reterr)
{
    if (strlen(opt->curve_secret_z85) != 40)
        return ll_error_set(reterr, -EINVAL, "ingest: curve_secret_key must be 40 Z85 characters");
    if (opt->n_keys > INGEST_MAX_STATIONS)
        return ll_error_set(
            reterr, -EINVAL, "ingest: more than %d station keys", INGEST_MAX_STATIONS);
    for (size_t k = 0; k < opt->n_keys; k++) {
        if (strlen(opt->keys[k].public_z85) != 40 ||
            zmq_z85_decode(ing->key_bin[k], opt->keys[k].public_z85) == NULL)
            return ll_error_set(reterr,
                                -EINVAL,
                                "ingest: station '%s': public_key is not 40 Z85 characters",
                                opt->keys[k].station);
        ing->keys[k] = opt->keys[k];
    }
    ing->n_keys = opt->n_keys;
    int one = 1, timeout_ms = 100;
    ing->zap = zmq_socket(zctx, ZMQ_REP);
    if (ing->zap == NULL ||
        zmq_setsockopt(ing->zap, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms)) != 0 ||
        zmq_bind(ing->zap, "inproc://zeromq.zap.01") != 0)
        return zmq_err(reterr, "ingest: ZAP handler socket");
    if (zmq_setsockopt(ing->sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_CURVE_SECRETKEY, opt->curve_secret_z85, 41) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_ZAP_DOMAIN, "labloop", 7) != 0)
        return zmq_err(reterr, "ingest: CURVE options");
    if (pthread_create(&ing->zap_thread, NULL, zap_main, ing) != 0)
        return ll_error_set(reterr, -EAGAIN, "ingest: cannot start the ZAP handler thread");
    ing->zap_started = 1;
    ing->curve = 1;
    return 0;
}

/* The number of descriptors this process has open (/proc/self/fd, less the one that reads
 * it), or a negative errno. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* The guard's threshold from RLIMIT_NOFILE, and a monitor of the ROUTER's accepted
 * connections that wakes the loop (ingest_guard()). No guard (fd_high 0, logged) where
 * /proc/self/fd cannot be read. */
static int guard_setup(struct ingest *ing, void *zctx, struct ll_error *reterr)
{
    size_t n = sizeof(ing->bound);
    if (zmq_getsockopt(ing->sock, ZMQ_LAST_ENDPOINT, ing->bound, &n) != 0)
        return zmq_err(reterr, "ingest: ZMQ_LAST_ENDPOINT");
    struct rlimit rl;
    long budget = FD_SETSIZE;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)budget)
        budget = (long)rl.rlim_cur;
    if (open_fds() < 0) {
        log_line(LOG_LVL_WARNING,
                 "ingest: /proc/self/fd unreadable: no guard against connection floods");
        return 0;
    }
    ing->fd_high = (int)(budget - budget / 4);
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://labloop-ingest-monitor-%p", (void *)ing);
    int hwm = GUARD_MONITOR_HWM;
    if (zmq_socket_monitor(ing->sock, ep, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_ACCEPT_FAILED) != 0 ||
        (ing->mon = zmq_socket(zctx, ZMQ_PAIR)) == NULL ||
        zmq_setsockopt(ing->mon, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_connect(ing->mon, ep) != 0)
        return zmq_err(reterr, "ingest: socket monitor");
    ing->opened_at_ms = ll_monotonic_ms();
    return 0;
}

/* Closes the stations socket: libzmq ends every connection its listener accepted. */
static void guard_close(struct ingest *ing, int n_fds, int64_t now)
{
    if (zmq_unbind(ing->sock, ing->bound) != 0) {
        log_line(LOG_LVL_ERR, "ingest: cannot unbind %s: %s", ing->bound, zmq_strerror(errno));
        return;
    }
    if (ing->pause_ms == 0 || now - ing->opened_at_ms > GUARD_CALM_MS)
        ing->pause_ms = GUARD_PAUSE_MIN_MS;
    else if (ing->pause_ms < GUARD_PAUSE_MAX_MS)
        ing->pause_ms =
            ing->pause_ms * 2 < GUARD_PAUSE_MAX_MS ? ing->pause_ms * 2 : GUARD_PAUSE_MAX_MS;
    ing->closed = 1;
    ing->reopen_at_ms = now + ing->pause_ms;
    char msg[300];
    snprintf(msg,
             sizeof(msg),
             "%d descriptors open (limit %d): the stations socket %s is closed for %.0f s and "
             "every station connection dropped (a connection flood?); stations reconnect and "
             "resend what was not acked",
             n_fds,
             ing->fd_high,
             ing->bound,
             (double)ing->pause_ms / 1000.0);
    log_line(LOG_LVL_WARNING, "ingest: %s", msg);
    struct ll_error err;
    if (store_event(ing->store, 0, 0, 0, 4, "ingest.flood", msg, &err) < 0)
        log_line(LOG_LVL_ERR, "ingest: event not stored: %s", err.msg);
}

static void guard_reopen(struct ingest *ing, int64_t now)
{
    if (zmq_bind(ing->sock, ing->bound) != 0) {
        /* the old listener may not be closed yet (libzmq closes it in its I/O thread) */
        int e = errno;
        ing->reopen_at_ms = now + (e == EADDRINUSE ? 100 : ing->pause_ms);
        if (e != EADDRINUSE)
            log_line(LOG_LVL_ERR, "ingest: cannot bind %s again: %s", ing->bound, zmq_strerror(e));
        return;
    }
    ing->closed = 0;
    ing->opened_at_ms = now;
    log_line(LOG_LVL_NOTICE, "ingest: the stations socket %s is open again", ing->bound);
}

void *ingest_monitor_socket(struct ingest *ing)
{
    return ing->mon;
}

void ingest_guard(struct ingest *ing, int64_t now)
{
    if (ing->mon == NULL)
        return;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, ing->mon, ZMQ_DONTWAIT) >= 0)
        ing->count_due = 1;
    zmq_msg_close(&m);
    if (ing->closed) {
        ing->count_due = 0;
        if (now >= ing->reopen_at_ms)
            guard_reopen(ing, now);
        return;
    }
    if (!ing->count_due || now - ing->counted_at_ms < GUARD_COUNT_EVERY_MS)
        return; /* a count due waits (ingest_guard_timeout_ms()) */
    ing->count_due = 0;
    ing->counted_at_ms = now;
    int n = open_fds();
    if (n >= ing->fd_high)
        guard_close(ing, n, now);
}

long ingest_guard_timeout_ms(const struct ingest *ing, int64_t now)
{
    int64_t at;
    if (ing->closed)
        at = ing->reopen_at_ms;
    else if (ing->count_due)
        at = ing->counted_at_ms + GUARD_COUNT_EVERY_MS;
    else
        return -1;
    return at > now ? (long)(at - now) : 0;
}

int ingest_new(void *zctx,
               struct store *store,
               const struct ingest_options *opt,
               struct ingest **ret,
               struct ll_error *reterr)
{
    jsonmem_install();
    struct ingest *ing = calloc(1, sizeof(*ing));
    int r = 0;
    if (ing == NULL)
        return ll_error_set(reterr, -ENOMEM, "ingest: out of memory");
    ing->store = store;
    ing->opt = *opt;
    for (size_t i = 0; i < opt->n_lab_stations && i < INGEST_MAX_STATIONS; i++) {
        struct station_info *si = station_get(ing, opt->lab_stations[i]);
        if (si != NULL)
            si->reserved = 1;
    }
    if (ing->opt.group_commit_ms < 0)
        ing->opt.group_commit_ms = 0;
    ing->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (ing->sock == NULL) {
        r = zmq_err(reterr, "ingest: zmq_socket");
        goto out;
    }
    int one = 1, zero = 0, hwm = 10000, hb_ivl = 5000, hb_timeout = 15000;
    int handshake_ms = INGEST_HANDSHAKE_MS;
    int64_t ceiling = SOCKET_CEILING_BYTES;
    if (zmq_setsockopt(ing->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof(hb_ivl)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof(hb_timeout)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_HEARTBEAT_TTL, &hb_timeout, sizeof(hb_timeout)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof(handshake_ms)) != 0 ||
        zmq_setsockopt(ing->sock, ZMQ_MAXMSGSIZE, &ceiling, sizeof(ceiling)) != 0) {
        r = zmq_err(reterr, "ingest: zmq_setsockopt");
        goto out;
    }
    if (opt->curve_secret_z85 != NULL && opt->curve_secret_z85[0] != '\0') {
        r = curve_setup(ing, zctx, opt, reterr);
        if (r < 0)
            goto out;
    }
    if (zmq_bind(ing->sock, opt->endpoint) != 0) {
        int e = errno;
        r = ll_error_set(reterr, -e, "ingest: cannot bind %s: %s", opt->endpoint, zmq_strerror(e));
        goto out;
    }
    r = guard_setup(ing, zctx, reterr);
out:
    if (r < 0)
        ingest_free(&ing);
    *ret = ing;
    return r;
}

void ingest_free(struct ingest **ing)
{
    if (ing == NULL || *ing == NULL)
        return;
    if ((*ing)->mon != NULL) {
        zmq_socket_monitor((*ing)->sock, NULL, 0);
        zmq_close((*ing)->mon);
    }
    if ((*ing)->sock != NULL)
        zmq_close((*ing)->sock);
    if ((*ing)->zap_started) {
        atomic_store(&(*ing)->zap_stop, 1);
        pthread_join((*ing)->zap_thread, NULL); /* it closes its socket */
    } else if ((*ing)->zap != NULL) {
        zmq_close((*ing)->zap);
    }
    free(*ing);
    *ing = NULL;
}

void *ingest_socket(struct ingest *ing)
{
    return ing->sock;
}

static char *ack_text(int64_t seq, const char *epoch, const char *status, const char *reason)
{
    json_t *o = json_pack(
        "{s:i,s:s,s:I,s:s}", "v", 1, "type", "ack", "seq", (json_int_t)seq, "status", status);
    if (o != NULL && epoch != NULL && epoch[0] != '\0')
        json_object_set_new(o, "epoch", json_string(epoch));
    if (o != NULL && reason != NULL)
        json_object_set_new(o, "reason", json_string(reason));
    char *t = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return t;
}

/* Records a rejection in the store (inside the batch transaction) and prepares its ack. */
static int reject(struct ingest *ing,
                  struct pending *p,
                  const char *station,
                  const char *epoch,
                  int64_t seq,
                  const char *reason,
                  struct ll_error *err)
{
    const char *raw = zmq_msg_data(&p->body);
    size_t len = zmq_msg_size(&p->body);
    /* a connection's identity (and so a station name here) or a reason quoting the message
     * can be any bytes: stored and shown as UTF-8, the bad bytes as '?' (JSON, and the
     * store's readers, take nothing else) */
    char name[IDENTITY_MAX + 1], why[LL_ERROR_MSG_MAX];
    if (station != NULL) {
        snprintf(name, sizeof(name), "%s", station);
        ll_utf8_sanitize(name);
        station = name;
    }
    snprintf(why, sizeof(why), "%s", reason);
    ll_utf8_sanitize(why);
    reason = why;
    int r = store_rejection_put(ing->store, station, epoch, seq, reason, raw, len, err);
    if (r < 0)
        return r;
    log_line(LOG_LVL_WARNING,
             "ingest: rejected station=%s seq=%lld bytes=%zu reason=\"%s\"",
             station != NULL ? station : "?",
             (long long)seq,
             len,
             reason);
    if (station != NULL) {
        struct station_info *si = station_get(ing, station);
        if (si != NULL)
            si->rejected++;
    }
    ing->n_rejected++;
    p->ack = ack_text(seq, epoch, "rejected", reason);
    return 0;
}

/* A station whose clock is more than INGEST_CLOCK_SKEW_MS off: its measurements are stored
 * anyway (with the receipt time beside the station's; order is by receipt), and a warning event
 * says so, at most once an hour per station. Inside the batch's transaction. */
static int clock_check(struct ingest *ing,
                       struct station_info *si,
                       const struct measurement *m,
                       int64_t exp_id,
                       int64_t step_id,
                       struct ll_error *err)
{
    int64_t now = ll_monotonic_ms();
    si->clock_skew_ms = measurement_time_ms(m) - ll_wall_ms();
    if (llabs(si->clock_skew_ms) <= INGEST_CLOCK_SKEW_MS ||
        (si->skew_warned_ms != 0 && now - si->skew_warned_ms < 3600 * 1000))
        return 0;
    si->skew_warned_ms = now;
    char msg[256];
    snprintf(msg,
             sizeof(msg),
             "station '%s' and labloopd disagree on the time by %+.0f s (message time %s): "
             "its measurements are stored with the receipt time beside it and ordered by "
             "receipt; check both clocks (NTP)",
             si->name,
             (double)si->clock_skew_ms / 1000.0,
             measurement_time(m));
    log_line(LOG_LVL_WARNING, "ingest: %s", msg);
    return store_event(ing->store, 0, exp_id, step_id, 4, "ingest.clock", msg, err);
}

/* A station whose first measurement of a new sequence epoch was just stored (it lost its seq
 * state, or was replaced): an event says so, since its seq numbering starts again. Inside the
 * batch's transaction; one store lookup per change of a station's epoch (a batch that rolls
 * back restores the cache, stations_restore). */
static int epoch_check(struct ingest *ing,
                       struct station_info *si,
                       const char *epoch,
                       int64_t seq,
                       int64_t exp_id,
                       int64_t step_id,
                       struct ll_error *err)
{
    if (si->epoch_known && strcmp(si->epoch, epoch) == 0)
        return 0;
    char prev[MEASUREMENT_NAME_MAX + 1];
    int64_t prev_seq = 0;
    int r =
        store_station_epoch_before(ing->store, si->name, epoch, prev, sizeof(prev), &prev_seq, err);
    if (r < 0)
        return r;
    snprintf(si->epoch, sizeof(si->epoch), "%s", epoch);
    si->epoch_known = 1;
    if (r == 0)
        return 0;
    char msg[400];
    snprintf(msg,
             sizeof(msg),
             "station '%s' started a new sequence epoch '%s' at seq %lld (its previous epoch "
             "'%s' ended at seq %lld): it lost its sequence state or was replaced",
             si->name,
             epoch,
             (long long)seq,
             prev,
             (long long)prev_seq);
    log_line(LOG_LVL_NOTICE, "ingest: %s", msg);
    return store_event(ing->store, 0, exp_id, step_id, 5, "ingest.epoch", msg, err);
}

/* Checks the request against the store and stores the measurement; fills p->ack. */
static int handle_measurement(struct ingest *ing,
                              struct pending *p,
                              const struct measurement *m,
                              struct ll_error *err)
{
    const char *station = measurement_station(m);
    const char *epoch = measurement_epoch(m);
    int64_t seq = measurement_seq(m);
    const char *raw = zmq_msg_data(&p->body);
    size_t len = zmq_msg_size(&p->body);
    char reason[LL_ERROR_MSG_MAX + 64];
    int64_t step_id = 0, exp_id = 0;
    struct ll_error lookup;
    ll_error_clear(&lookup);
    int r = store_step_by_request(ing->store, measurement_request(m), &step_id, &exp_id, &lookup);
    if (r == -ENOENT) {
        snprintf(reason, sizeof(reason), "request: unknown request '%s'", measurement_request(m));
        return reject(ing, p, station, epoch, seq, reason, err);
    }
    if (r < 0)
        return ll_error_set(err, r, "%s", lookup.msg);
    json_t *steps = store_steps_json(ing->store, 0, exp_id, err);
    if (steps == NULL)
        return err != NULL ? err->code : -EIO;
    const char *want_sample = NULL, *want_kind = NULL;
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st)
    {
        if (json_integer_value(json_object_get(st, "id")) == step_id) {
            want_sample = json_string_value(json_object_get(st, "sample"));
            want_kind = json_string_value(json_object_get(json_object_get(st, "params"), "kind"));
        }
    }
    const char *kind = measurement_kind_name(measurement_kind(m));
    int bad = 0;
    if (want_sample == NULL || strcmp(want_sample, measurement_sample(m)) != 0) {
        snprintf(reason,
                 sizeof(reason),
                 "sample: '%s' is not the sample of request '%s'",
                 measurement_sample(m),
                 measurement_request(m));
        bad = 1;
    } else if (want_kind != NULL && strcmp(want_kind, kind) != 0) {
        snprintf(reason,
                 sizeof(reason),
                 "kind: request '%s' asked for '%s', not '%s'",
                 measurement_request(m),
                 want_kind,
                 kind);
        bad = 1;
    }
    json_decref(steps);
    if (bad)
        return reject(ing, p, station, epoch, seq, reason, err);

    int outcome = 0;
    int64_t meas_id = 0;
    r = store_measurement_put(ing->store,
                              station,
                              epoch,
                              seq,
                              measurement_request(m),
                              kind,
                              measurement_sample(m),
                              exp_id,
                              step_id,
                              measurement_time(m),
                              raw,
                              len,
                              &outcome,
                              &meas_id,
                              err);
    if (r < 0)
        return r;
    struct station_info *si = station_get(ing, station);
    if (outcome == STORE_MEAS_DUPLICATE) {
        if (si != NULL)
            si->duplicates++;
        ing->n_duplicate++;
        p->ack = ack_text(seq, epoch, "duplicate", NULL);
        return 0;
    }
    if (outcome == STORE_MEAS_CONFLICT) {
        snprintf(reason,
                 sizeof(reason),
                 "seq: conflict: seq %lld of station '%s'%s%s%s was stored with a different "
                 "payload (a station that starts its seq again must send a new epoch)",
                 (long long)seq,
                 station,
                 epoch[0] ? " (epoch '" : "",
                 epoch,
                 epoch[0] ? "')" : "");
        r = store_event(ing->store, 0, exp_id, step_id, 3, "ingest.conflict", reason, err);
        if (r < 0)
            return r;
        return reject(ing, p, station, epoch, seq, reason, err);
    }
    /* stored: acked after the commit; analysed afterwards by ingest_analyse() */
    if (si != NULL) {
        si->stored++;
        r = clock_check(ing, si, m, exp_id, step_id, err);
        if (r == 0)
            r = epoch_check(ing, si, epoch, seq, exp_id, step_id, err);
        if (r < 0)
            return r;
    }
    ing->n_stored++;
    p->ack = ack_text(seq, epoch, "stored", NULL);
    LL_FAILPOINT("group_commit"); /* a measurement in the batch's transaction, not committed */
    return 0;
}

/* Analyses one stored measurement (raw text), stores its derived numbers, calls the hook and
 * marks it analysed; inside the caller's transaction. */
static int analyse_one(struct ingest *ing, json_t *row, struct ll_error *err)
{
    int64_t meas_id = (int64_t)json_integer_value(json_object_get(row, "id"));
    int64_t exp_id = (int64_t)json_integer_value(json_object_get(row, "experiment_id"));
    int64_t step_id = (int64_t)json_integer_value(json_object_get(row, "step_id"));
    const char *raw = json_string_value(json_object_get(row, "raw"));
    struct measurement *m = NULL;
    struct analysis *a = NULL;
    struct ll_error aerr;
    ll_error_clear(&aerr);
    int r = 0;
    if (raw == NULL)
        return ll_error_set(err, -EIO, "ingest: measurement %lld: no raw text", (long long)meas_id);
    uint64_t json_failures = jsonmem_failures();
    int ar = measurement_parse(raw, strlen(raw), &m, &aerr);
    if (ar == 0)
        ar = analysis_run(m, &a, &aerr);
    if (ar == -ENOMEM || jsonmem_failures() != json_failures) {
        /* not the measurement's fault: the batch is rolled back and analysed again later */
        r = ll_error_set(err,
                         -ENOMEM,
                         "ingest: analysing measurement %lld: %s",
                         (long long)meas_id,
                         ar == -ENOMEM ? aerr.msg : "out of memory in jansson");
    } else if (ar == 0) {
        for (size_t k = 0; k < analysis_n_values(a) && r == 0; k++)
            r = store_derived_put(ing->store,
                                  meas_id,
                                  analysis_value_name(a, k),
                                  analysis_value(a, k),
                                  analysis_version(),
                                  err);
        /* what the analysis found doubtful (an implausible fill factor, a sweep out of order,
         * a T80 that is an extrapolated lower bound) is kept beside the numbers: a notice
         * event per warning (notice, not warning: most stability runs end before T80) */
        for (size_t k = 0; k < analysis_n_warnings(a) && r == 0; k++) {
            char msg[600];
            snprintf(msg,
                     sizeof(msg),
                     "measurement %lld (%s, sample %s): %s",
                     (long long)meas_id,
                     measurement_kind_name(measurement_kind(m)),
                     measurement_sample(m),
                     analysis_warning(a, k));
            log_line(LOG_LVL_NOTICE, "ingest: analysis: %s", msg);
            r = store_event(
                ing->store, 0, exp_id, step_id, LOG_LVL_NOTICE, "analysis.warning", msg, err);
        }
    } else {
        log_line(LOG_LVL_WARNING,
                 "ingest: analysis failed measurement=%lld exp=%lld reason=\"%s\"",
                 (long long)meas_id,
                 (long long)exp_id,
                 aerr.msg);
    }
    if (r == 0 && m != NULL && ing->opt.on_measured != NULL)
        r = ing->opt.on_measured(
            ing->opt.ctx, exp_id, step_id, meas_id, m, ar == 0 ? a : NULL, aerr.msg, err);
    if (r == 0)
        r = store_measurement_mark_analysed(ing->store, meas_id, err);
    analysis_free(&a);
    measurement_free(&m);
    return r;
}

int ingest_analyse(struct ingest *ing, int max, struct ll_error *reterr)
{
    return ingest_analyse_for(ing, max, 0, reterr);
}

/* Whether a station's message waits on the ROUTER socket. */
static int stations_waiting(struct ingest *ing)
{
    int events = 0;
    size_t len = sizeof(events);
    return zmq_getsockopt(ing->sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

int ingest_analyse_for(struct ingest *ing, int max, int64_t budget_ms, struct ll_error *reterr)
{
    int64_t start = ll_monotonic_ms();
    json_t *rows = store_measurements_unanalysed(ing->store, max, reterr);
    if (rows == NULL)
        return reterr != NULL && reterr->code ? reterr->code : -EIO;
    int n = (int)json_array_size(rows), done = 0;
    int r = 0;
    if (n > 0) {
        r = store_begin(ing->store, reterr);
        /* with a budget, stations' messages come first: an ack waits for no more than one
         * analysis, and the analysis still gets one measurement per call */
        while (done < n && r == 0 &&
               (done == 0 || budget_ms <= 0 ||
                (ll_monotonic_ms() - start < budget_ms && !stations_waiting(ing))))
            r = analyse_one(ing, json_array_get(rows, (size_t)done++), reterr);
        if (r == 0)
            r = store_commit(ing->store, reterr);
        else
            store_rollback(ing->store);
    }
    json_decref(rows);
    return r < 0 ? r : done;
}

/* Processes one received message inside the batch transaction. */
static int handle_message(struct ingest *ing, struct pending *p, struct ll_error *err)
{
    const char *raw = zmq_msg_data(&p->body);
    size_t len = zmq_msg_size(&p->body);
    char identity[IDENTITY_MAX + 1];
    memcpy(identity, p->identity, p->identity_len);
    identity[p->identity_len] = '\0';
    const char *who = strlen(identity) == p->identity_len ? identity : NULL;
    if (p->n_frames != 1)
        return reject(ing, p, who, NULL, 0, "message: a station message is exactly one frame", err);
    struct measurement *m = NULL;
    struct ll_error perr;
    ll_error_clear(&perr);
    int r = measurement_parse(raw, len, &m, &perr);
    if (r < 0) {
        if (r == -ENOMEM)
            return ll_error_set(
                err, r, "ingest: message from '%s': %s", who != NULL ? who : "?", perr.msg);
        char epoch[MEASUREMENT_NAME_MAX + 1];
        measurement_epoch_hint(raw, len, epoch);
        return reject(ing,
                      p,
                      who,
                      epoch,
                      len > MEASUREMENT_MAX_BYTES ? 0 : measurement_seq_hint(raw, len),
                      perr.msg,
                      err);
    }
    if (who == NULL || strcmp(measurement_station(m), who) != 0) {
        char reason[256];
        snprintf(reason,
                 sizeof(reason),
                 "station: '%s' is not the connection's routing id",
                 measurement_station(m));
        r = reject(ing, p, who, measurement_epoch(m), measurement_seq(m), reason, err);
        measurement_free(&m);
        return r;
    }
    if (ing->curve && strcmp(p->user_id, who) != 0) {
        char reason[256];
        snprintf(reason,
                 sizeof(reason),
                 "station: '%s' is not the station of the connection's CURVE key ('%s')",
                 who,
                 p->user_id);
        r = reject(ing, p, who, measurement_epoch(m), measurement_seq(m), reason, err);
        measurement_free(&m);
        return r;
    }
    struct station_info *si = station_get(ing, who);
    if (si != NULL) {
        si->last_seen_ms = ll_monotonic_ms();
        if (measurement_epoch(m)[0] != '\0')
            snprintf(si->seen_epoch, sizeof(si->seen_epoch), "%s", measurement_epoch(m));
    }
    switch (measurement_type(m)) {
    case MEASUREMENT_TYPE_HELLO:
        if (si != NULL)
            si->kinds = m->hello_kinds;
        log_line(LOG_LVL_INFO, "ingest: hello station=%s", who);
        r = 0;
        break;
    case MEASUREMENT_TYPE_HEARTBEAT:
        r = 0;
        break;
    default:
        r = handle_measurement(ing, p, m, err);
    }
    measurement_free(&m);
    return r;
}

/* handle_message(), except that a jansson allocation that failed meanwhile fails it, whatever
 * jansson returned (jsonmem.h): the batch is rolled back, nothing is acked, the station resends.
 * An out-of-memory is never the message's fault, so it is never a rejection. */
static int handle(struct ingest *ing, struct pending *p, struct ll_error *err)
{
    uint64_t json_failures = jsonmem_failures();
    int r = handle_message(ing, p, err);
    if (r == 0 && jsonmem_failures() != json_failures) {
        char who[IDENTITY_MAX + 1];
        memcpy(who, p->identity, p->identity_len);
        who[p->identity_len] = '\0';
        ll_utf8_sanitize(who);
        r = ll_error_set(err, -ENOMEM, "ingest: message from '%s': out of memory in jansson", who);
    }
    return r;
}

/* Receives one whole message (identity + frames) without blocking. 1 received, 0 none. */
static int receive_one(struct ingest *ing, struct pending *p)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, ing->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return 0;
    }
    p->identity_len = zmq_msg_size(&frame) < IDENTITY_MAX ? zmq_msg_size(&frame) : IDENTITY_MAX;
    memcpy(p->identity, zmq_msg_data(&frame), p->identity_len);
    p->user_id[0] = '\0';
    p->n_frames = 0;
    p->ack = NULL;
    zmq_msg_init(&p->body);
    while (zmq_msg_more(&frame)) {
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, ing->sock, 0) < 0)
            break;
        if (p->n_frames++ == 0) {
            /* the ZAP handler's User-Id travels with the frames the peer sent, not with the
             * identity frame the ROUTER adds */
            const char *uid = ing->curve ? zmq_msg_gets(&frame, "User-Id") : NULL;
            snprintf(p->user_id, sizeof(p->user_id), "%s", uid ? uid : "");
            zmq_msg_copy(&p->body, &frame);
        }
    }
    zmq_msg_close(&frame);
    return 1;
}

static void send_ack(struct ingest *ing, struct pending *p)
{
    if (p->ack == NULL)
        return;
    store_check_durable(ing->store, "ack");
    if (zmq_send(ing->sock, p->identity, p->identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(ing->sock, p->ack, strlen(p->ack), ZMQ_DONTWAIT) < 0)
        /* the station is gone or its queue is full; it resends and gets `duplicate` */
        log_line(LOG_LVL_DEBUG, "ingest: ack not delivered: %s", zmq_strerror(errno));
}

int ingest_process(struct ingest *ing, struct ll_error *reterr)
{
    int n = 0;
    while (n < INGEST_BATCH_MAX && receive_one(ing, &ing->batch[n]))
        n++;
    if (n == 0)
        return 0;
    if (n < INGEST_BATCH_MAX && ing->opt.group_commit_ms > 0) {
        /* group commit: give the stations a moment to fill the batch */
        zmq_pollitem_t item = {.socket = ing->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, ing->opt.group_commit_ms) > 0)
            while (n < INGEST_BATCH_MAX && receive_one(ing, &ing->batch[n]))
                n++;
    }
    int64_t before[3] = {ing->n_stored, ing->n_duplicate, ing->n_rejected};
    stations_save(ing);
    int r = store_begin(ing->store, reterr);
    for (int i = 0; i < n && r == 0; i++)
        r = handle(ing, &ing->batch[i], reterr);
    if (r == 0)
        r = store_commit(ing->store, reterr);
    else
        store_rollback(ing->store);
    if (r < 0) {
        ing->n_stored = before[0];
        ing->n_duplicate = before[1];
        ing->n_rejected = before[2];
        stations_restore(ing);
    }
    if (r == 0 && ing->n_stored > before[0])
        LL_FAILPOINT("measurement_committed"); /* committed; no ack sent yet */
    for (int i = 0; i < n; i++) {
        if (r == 0)
            send_ack(ing, &ing->batch[i]);
        free(ing->batch[i].ack);
        ing->batch[i].ack = NULL;
        zmq_msg_close(&ing->batch[i].body);
    }
    return r < 0 ? r : n;
}

int ingest_send_measure(struct ingest *ing,
                        const char *station,
                        const char *request,
                        int64_t experiment_id,
                        const char *sample,
                        const char *kind,
                        json_t *protocol,
                        struct ll_error *reterr)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:I,s:s,s:s}",
                          "v",
                          1,
                          "type",
                          "measure",
                          "request",
                          request,
                          "experiment",
                          (json_int_t)experiment_id,
                          "sample",
                          sample,
                          "kind",
                          kind);
    if (o == NULL)
        return ll_error_set(reterr, -ENOMEM, "ingest: out of memory");
    json_object_set(o, "protocol", protocol != NULL ? protocol : json_object());
    if (protocol == NULL)
        json_decref(json_object_get(o, "protocol"));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return ll_error_set(reterr, -ENOMEM, "ingest: out of memory");
    int r = 0;
    store_check_durable(ing->store, "measure request");
    if (zmq_send(ing->sock, station, strlen(station), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(ing->sock, text, strlen(text), ZMQ_DONTWAIT) < 0) {
        int e = errno;
        r = ll_error_set(reterr, -e, "measure to station '%s': %s", station, zmq_strerror(e));
    }
    free(text);
    return r;
}

int ingest_station_online(const struct ingest *ing, const char *station)
{
    for (int i = 0; i < ing->n_stations; i++)
        if (strcmp(ing->stations[i].name, station) == 0)
            return ing->stations[i].last_seen_ms != 0 &&
                   ll_monotonic_ms() - ing->stations[i].last_seen_ms < STATION_OFFLINE_MS;
    return 0;
}

json_t *ingest_stations_json(const struct ingest *ing)
{
    json_t *arr = json_array();
    int64_t now = ll_monotonic_ms();
    for (int i = 0; i < ing->n_stations; i++) {
        const struct station_info *s = &ing->stations[i];
        if (s->last_seen_ms == 0 && s->stored + s->duplicates + s->rejected == 0)
            continue; /* a lab station not heard from yet */
        json_t *kinds = json_array();
        for (int k = MEASUREMENT_KIND_JV; k <= MEASUREMENT_KIND_STABILITY; k++)
            if (s->kinds & (1u << k))
                json_array_append_new(kinds, json_string(measurement_kind_name(k)));
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:o,s:b,s:I,s:I,s:I,s:I,s:f}",
                                        "name",
                                        s->name,
                                        "epoch",
                                        s->seen_epoch,
                                        "kinds",
                                        kinds,
                                        "online",
                                        ingest_station_online(ing, s->name),
                                        "last_seen_ms_ago",
                                        (json_int_t)(s->last_seen_ms ? now - s->last_seen_ms : -1),
                                        "stored",
                                        (json_int_t)s->stored,
                                        "duplicates",
                                        (json_int_t)s->duplicates,
                                        "rejected",
                                        (json_int_t)s->rejected,
                                        "clock_skew_s",
                                        (double)s->clock_skew_ms / 1000.0));
    }
    return arr;
}

void ingest_counts(const struct ingest *ing,
                   int64_t *ret_stored,
                   int64_t *ret_duplicate,
                   int64_t *ret_rejected)
{
    *ret_stored = ing->n_stored;
    *ret_duplicate = ing->n_duplicate;
    *ret_rejected = ing->n_rejected;
}

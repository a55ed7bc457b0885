/* sim_station — a simulated measurement station on ZeroMQ (see sim_station.h). */
#include "simulators/sim_station.h"

#include "common/ll_time.h"
#include "simulators/sim_log.h"
#include "simulators/sim_measure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define HEARTBEAT_MS 2000
#define RESEND_FIRST_MS 1000
#define RESEND_MAX_MS 30000

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Writes text to path atomically and durably (temporary file, fsync, rename). */
static int write_file_durable(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0)
        return -errno;
    if (rename(tmp, path) != 0)
        return -errno;
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *g = realloc(buf, cap);
            if (g == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = g;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* File name of the stored measurement for request: req-<request>.json when the request is
 * a safe file name, else req-x<hex>.json. */
static void request_path(const struct sim_station *st, const char *request, char *out, size_t cap)
{
    int safe = request[0] != '.' && request[0] != '\0';
    for (const char *p = request; *p && safe; p++)
        safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '_' || *p == '-' || *p == '.';
    if (safe) {
        snprintf(out, cap, "%s/req-%s.json", st->dir, request);
        return;
    }
    char hex[2 * 64 + 1];
    size_t n = 0;
    for (const char *p = request; *p && n + 2 < sizeof(hex); p++)
        n += (size_t)snprintf(hex + n, sizeof(hex) - n, "%02x", (unsigned char)*p);
    snprintf(out, cap, "%s/req-x%s.json", st->dir, hex);
}

static void ack_path(const struct sim_station *st, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/ack-%" PRIu64, st->dir, seq);
}

static void raw_send(struct sim_station *st, const char *msg, size_t len)
{
    if (st->sock == NULL)
        return;
    if (zmq_send(st->sock, msg, len, ZMQ_DONTWAIT) < 0)
        sim_log(SIM_LOG_DEBUG,
                "station=%s event=send_failed error=\"%s\"",
                st->name,
                zmq_strerror(errno));
}

/* Sends msg, then a message held back by station.reorder (so the two arrive swapped). */
static void send_plain(struct sim_station *st, const char *msg)
{
    raw_send(st, msg, strlen(msg));
    if (st->held != NULL) {
        raw_send(st, st->held, strlen(st->held));
        free(st->held);
        st->held = NULL;
    }
}

static int open_socket(struct sim_station *st, struct sim_station_env *env, struct ll_error *reterr)
{
    char mon[128];
    st->generation = ++env->sockets_opened; /* unique also across a station_restart */
    snprintf(mon, sizeof(mon), "inproc://labsim-monitor-%s-%d", st->name, st->generation);
    st->sock = zmq_socket(env->zmq_ctx, ZMQ_DEALER);
    if (st->sock == NULL)
        return ll_error_set(
            reterr, -errno, "station %s: zmq_socket: %s", st->name, zmq_strerror(errno));
    int linger = 0, ivl = 100, ivl_max = 2000;
    zmq_setsockopt(st->sock, ZMQ_ROUTING_ID, st->name, strlen(st->name));
    zmq_setsockopt(st->sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(st->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    zmq_setsockopt(st->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
    if (zmq_socket_monitor(st->sock, mon, ZMQ_EVENT_CONNECTED) != 0)
        return ll_error_set(
            reterr, -errno, "station %s: zmq_socket_monitor: %s", st->name, zmq_strerror(errno));
    st->monitor = zmq_socket(env->zmq_ctx, ZMQ_PAIR);
    if (st->monitor == NULL ||
        zmq_setsockopt(st->monitor, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_connect(st->monitor, mon) != 0)
        return ll_error_set(reterr, -EIO, "station %s: monitor: %s", st->name, zmq_strerror(errno));
    if (zmq_connect(st->sock, env->endpoint) != 0)
        return ll_error_set(reterr,
                            -EINVAL,
                            "station %s: connect %s: %s",
                            st->name,
                            env->endpoint,
                            zmq_strerror(errno));
    return 0;
}

static void close_socket(struct sim_station *st)
{
    if (st->sock != NULL) {
        zmq_socket_monitor(st->sock, NULL, 0);
        zmq_close(st->sock);
        st->sock = NULL;
    }
    if (st->monitor != NULL) {
        zmq_close(st->monitor);
        st->monitor = NULL;
    }
}

static struct sim_station_out *outbox_find(struct sim_station *st, uint64_t seq)
{
    for (int i = 0; i < st->n_out; i++)
        if (st->out[i].seq == seq)
            return &st->out[i];
    return NULL;
}

static struct sim_station_out *
outbox_add(struct sim_station *st, uint64_t seq, const char *msg, int64_t now_ms)
{
    struct sim_station_out *o = outbox_find(st, seq);
    if (o != NULL) {
        o->next_ms = now_ms;
        return o;
    }
    if (st->n_out == SIM_STATION_OUTBOX) {
        sim_log(SIM_LOG_ERR,
                "station=%s event=outbox_full dropped_seq=%" PRIu64,
                st->name,
                st->out[0].seq);
        free(st->out[0].msg);
        memmove(&st->out[0], &st->out[1], (size_t)(st->n_out - 1) * sizeof(st->out[0]));
        st->n_out--;
    }
    o = &st->out[st->n_out];
    o->seq = seq;
    o->msg = strdup(msg);
    o->next_ms = now_ms;
    o->interval_ms = RESEND_FIRST_MS;
    if (o->msg == NULL)
        return NULL;
    st->n_out++;
    return o;
}

static void outbox_remove(struct sim_station *st, uint64_t seq)
{
    for (int i = 0; i < st->n_out; i++) {
        if (st->out[i].seq != seq)
            continue;
        free(st->out[i].msg);
        memmove(&st->out[i], &st->out[i + 1], (size_t)(st->n_out - i - 1) * sizeof(st->out[0]));
        st->n_out--;
        return;
    }
}

/* One send of a measurement, through the station faults. */
static void send_measurement(struct sim_station *st,
                             struct sim_station_env *env,
                             struct sim_station_out *o,
                             int64_t now_ms)
{
    struct sim_faults *f = env->faults;
    if (f != NULL && sim_fault_check(f, "station.drop", NULL)) {
        sim_log(SIM_LOG_WARNING, "fault=station.drop station=%s seq=%" PRIu64, st->name, o->seq);
        return;
    }
    if (f != NULL && sim_fault_check(f, "station.corrupt", NULL)) {
        sim_log(SIM_LOG_WARNING, "fault=station.corrupt station=%s seq=%" PRIu64, st->name, o->seq);
        raw_send(st, o->msg, strlen(o->msg) / 2);
        return;
    }
    if (f != NULL && sim_fault_check(f, "station.disconnect", NULL)) {
        sim_log(
            SIM_LOG_WARNING, "fault=station.disconnect station=%s seq=%" PRIu64, st->name, o->seq);
        close_socket(st);
        st->reconnect_ms = now_ms + 1000;
        return;
    }
    if (f != NULL && st->held == NULL && sim_fault_check(f, "station.reorder", NULL)) {
        sim_log(SIM_LOG_WARNING, "fault=station.reorder station=%s seq=%" PRIu64, st->name, o->seq);
        st->held = strdup(o->msg);
        st->held_since_ms = now_ms;
        return;
    }
    send_plain(st, o->msg);
    if (f != NULL && sim_fault_check(f, "station.duplicate", NULL)) {
        sim_log(
            SIM_LOG_WARNING, "fault=station.duplicate station=%s seq=%" PRIu64, st->name, o->seq);
        raw_send(st, o->msg, strlen(o->msg));
    }
}

static void send_hello(struct sim_station *st)
{
    json_t *kinds = json_array();
    for (int i = 0; i < st->n_kinds; i++)
        json_array_append_new(kinds, json_string(st->kinds[i]));
    json_t *m = json_pack("{s:i,s:s,s:s,s:s,s:o}",
                          "v",
                          1,
                          "type",
                          "hello",
                          "station",
                          st->name,
                          "epoch",
                          st->epoch,
                          "kinds",
                          kinds);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    if (text != NULL)
        send_plain(st, text);
    free(text);
    json_decref(m);
    sim_log(SIM_LOG_INFO, "station=%s event=hello", st->name);
}

static void rfc3339_now(char *out, size_t cap)
{
    int64_t ms = ll_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", base, (int)(ms % 1000));
}

static int persist_seq(struct sim_station *st)
{
    char path[PATH_MAX + 8], text[32];
    snprintf(path, sizeof(path), "%s/seq", st->dir);
    snprintf(text, sizeof(text), "%" PRIu64 "\n", st->seq);
    return write_file_durable(path, text);
}

static void free_req(struct sim_station_req *r)
{
    json_decref(r->protocol);
    r->protocol = NULL;
}

static void queue_pop(struct sim_station *st)
{
    free_req(&st->queue[0]);
    memmove(&st->queue[0], &st->queue[1], (size_t)(st->n_queue - 1) * sizeof(st->queue[0]));
    st->n_queue--;
    st->measuring = 0;
    json_decref(st->pending_data);
    st->pending_data = NULL;
}

/* The measurement at the head of the queue is over: number, persist, send. */
static void finish_measurement(struct sim_station *st, struct sim_station_env *env, int64_t now_ms)
{
    struct sim_station_req *r = &st->queue[0];
    char when[40];
    rfc3339_now(when, sizeof(when));
    st->seq++;
    int rc = persist_seq(st);
    if (rc != 0) {
        sim_log(SIM_LOG_ERR,
                "station=%s event=persist_failed file=seq error=\"%s\"",
                st->name,
                strerror(-rc));
        st->seq--;
        queue_pop(st);
        return;
    }
    json_t *m = json_pack("{s:i,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:O}",
                          "v",
                          1,
                          "type",
                          "measurement",
                          "station",
                          st->name,
                          "epoch",
                          st->epoch,
                          "seq",
                          (json_int_t)st->seq,
                          "request",
                          r->request,
                          "kind",
                          r->kind,
                          "sample",
                          r->sample,
                          "time",
                          when,
                          "data",
                          st->pending_data);
    char *text = m ? json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(m);
    if (text == NULL) {
        sim_log(SIM_LOG_ERR, "station=%s request=%s event=encode_failed", st->name, r->request);
        queue_pop(st);
        return;
    }
    char path[PATH_MAX + 200];
    request_path(st, r->request, path, sizeof(path));
    rc = write_file_durable(path, text);
    if (rc != 0)
        sim_log(SIM_LOG_ERR,
                "station=%s event=persist_failed file=%s error=\"%s\"",
                st->name,
                path,
                strerror(-rc));
    sim_count_add(&env->measurements, &env->n_measurements, &env->cap_measurements, r->request);
    sim_log(SIM_LOG_INFO,
            "station=%s request=%s sample=%s kind=%s seq=%" PRIu64 " event=measured bytes=%zu",
            st->name,
            r->request,
            r->sample,
            r->kind,
            st->seq,
            strlen(text));
    struct sim_station_out *o = outbox_add(st, st->seq, text, now_ms);
    free(text);
    queue_pop(st);
    if (o != NULL) {
        send_measurement(st, env, o, now_ms);
        o->next_ms = now_ms + o->interval_ms;
    }
}

static void start_measurement(struct sim_station *st, struct sim_station_env *env)
{
    while (st->n_queue > 0 && !st->measuring) {
        struct sim_station_req *r = &st->queue[0];
        struct sim_sample *s = sim_lab_at(env->lab, st->slot);
        if (s == NULL) {
            sim_log(SIM_LOG_ERR,
                    "station=%s request=%s sample=%s error=no_sample place=%s",
                    st->name,
                    r->request,
                    r->sample,
                    sim_lab_slot_name(env->lab, st->slot));
            queue_pop(st);
            continue;
        }
        struct ll_error err = {0};
        json_t *truth = NULL;
        int rc = sim_measure(
            env->lab, s, r->kind, r->protocol, env->rng, &st->pending_data, &truth, &err);
        if (rc != 0) {
            sim_log(SIM_LOG_ERR,
                    "station=%s request=%s sample=%s error=cannot_measure reason=\"%s\"",
                    st->name,
                    r->request,
                    r->sample,
                    err.msg);
            queue_pop(st);
            continue;
        }
        char *t = truth ? json_dumps(truth, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        sim_log(SIM_LOG_INFO,
                "station=%s request=%s well=%d event=measuring truth=%s",
                st->name,
                r->request,
                s->well,
                t ? t : "{}");
        free(t);
        json_decref(truth);
        s->n_measurements++;
        st->measuring = 1;
        st->remaining_s = sim_measure_duration_s(r->kind, r->protocol);
    }
}

static int station_has_kind(const struct sim_station *st, const char *kind)
{
    for (int i = 0; i < st->n_kinds; i++)
        if (strcmp(st->kinds[i], kind) == 0)
            return 1;
    return 0;
}

static void
handle_measure(struct sim_station *st, struct sim_station_env *env, json_t *m, int64_t now_ms)
{
    const char *request = json_string_value(json_object_get(m, "request"));
    const char *sample = json_string_value(json_object_get(m, "sample"));
    const char *kind = json_string_value(json_object_get(m, "kind"));
    if (request == NULL || sample == NULL || kind == NULL || strlen(request) < 1 ||
        strlen(request) > 64 || strlen(sample) < 1 || strlen(sample) > 64) {
        sim_log(SIM_LOG_ERR,
                "station=%s error=bad_measure reason=\"request, sample and kind must be strings of "
                "1-64 bytes\"",
                st->name);
        return;
    }
    if (!station_has_kind(st, kind)) {
        sim_log(
            SIM_LOG_ERR, "station=%s request=%s error=wrong_kind kind=%s", st->name, request, kind);
        return;
    }
    char path[PATH_MAX + 200];
    request_path(st, request, path, sizeof(path));
    char *stored = read_file(path);
    if (stored != NULL) {
        json_t *sm = json_loads(stored, 0, NULL);
        json_int_t seq = sm ? json_integer_value(json_object_get(sm, "seq")) : 0;
        json_decref(sm);
        if (seq > 0) {
            sim_log(SIM_LOG_INFO,
                    "station=%s request=%s seq=%lld event=resend_stored",
                    st->name,
                    request,
                    (long long)seq);
            struct sim_station_out *o = outbox_add(st, (uint64_t)seq, stored, now_ms);
            if (o != NULL) {
                o->interval_ms = RESEND_FIRST_MS;
                send_measurement(st, env, o, now_ms);
                o->next_ms = now_ms + o->interval_ms;
            }
            free(stored);
            return;
        }
        free(stored);
    }
    for (int i = 0; i < st->n_queue; i++) {
        if (strcmp(st->queue[i].request, request) == 0) {
            sim_log(SIM_LOG_DEBUG, "station=%s request=%s event=already_queued", st->name, request);
            return;
        }
    }
    if (st->n_queue == SIM_STATION_QUEUE) {
        sim_log(SIM_LOG_ERR, "station=%s request=%s error=queue_full", st->name, request);
        return;
    }
    struct sim_station_req *r = &st->queue[st->n_queue++];
    memset(r, 0, sizeof(*r));
    snprintf(r->request, sizeof(r->request), "%s", request);
    snprintf(r->sample, sizeof(r->sample), "%s", sample);
    snprintf(r->kind, sizeof(r->kind), "%s", kind);
    json_t *p = json_object_get(m, "protocol");
    r->protocol = json_is_object(p) ? json_incref(p) : NULL;
    sim_log(SIM_LOG_INFO,
            "station=%s request=%s sample=%s kind=%s event=measure_requested",
            st->name,
            request,
            sample,
            kind);
    start_measurement(st, env);
}

/* Whether an ack with epoch ack_epoch (NULL when it has none) answers the message msg: an ack
 * without an epoch matches by seq alone (a daemon that does not know epochs). */
static int same_epoch(const char *msg, const char *ack_epoch)
{
    if (ack_epoch == NULL)
        return 1;
    json_t *j = json_loads(msg, 0, NULL);
    const char *e = json_string_value(json_object_get(j, "epoch"));
    int same = strcmp(e != NULL ? e : "", ack_epoch) == 0;
    json_decref(j);
    return same;
}

static void handle_ack(struct sim_station *st, json_t *m)
{
    json_int_t seq = json_integer_value(json_object_get(m, "seq"));
    const char *status = json_string_value(json_object_get(m, "status"));
    if (seq <= 0 || status == NULL) {
        sim_log(SIM_LOG_WARNING,
                "station=%s event=ack_unusable seq=%lld status=%s reason=\"%s\"",
                st->name,
                (long long)seq,
                status ? status : "-",
                json_string_value(json_object_get(m, "reason"))
                    ? json_string_value(json_object_get(m, "reason"))
                    : "");
        return;
    }
    struct sim_station_out *o = outbox_find(st, (uint64_t)seq);
    if (o == NULL || !same_epoch(o->msg, json_string_value(json_object_get(m, "epoch"))))
        return;
    outbox_remove(st, (uint64_t)seq);
    char path[PATH_MAX + 32];
    ack_path(st, (uint64_t)seq, path, sizeof(path));
    write_file_durable(path, status);
    sim_log(strcmp(status, "rejected") == 0 ? SIM_LOG_WARNING : SIM_LOG_INFO,
            "station=%s seq=%lld event=ack status=%s%s%s",
            st->name,
            (long long)seq,
            status,
            json_string_value(json_object_get(m, "reason")) ? " reason=" : "",
            json_string_value(json_object_get(m, "reason"))
                ? json_string_value(json_object_get(m, "reason"))
                : "");
}

static void handle_message(struct sim_station *st,
                           struct sim_station_env *env,
                           const char *data,
                           size_t len,
                           int64_t now_ms)
{
    json_error_t jerr;
    json_t *m = json_loadb(data, len, 0, &jerr);
    const char *type = m ? json_string_value(json_object_get(m, "type")) : NULL;
    if (m == NULL || !json_is_object(m) || type == NULL ||
        json_integer_value(json_object_get(m, "v")) != 1) {
        sim_log(SIM_LOG_WARNING, "station=%s event=bad_message bytes=%zu", st->name, len);
    } else if (strcmp(type, "measure") == 0) {
        handle_measure(st, env, m, now_ms);
    } else if (strcmp(type, "ack") == 0) {
        handle_ack(st, m);
    } else {
        sim_log(SIM_LOG_WARNING, "station=%s event=unknown_type type=%s", st->name, type);
    }
    json_decref(m);
}

int sim_station_fds(const struct sim_station *st, int fds[2])
{
    int n = 0;
    size_t sz = sizeof(int);
    fds[0] = fds[1] = -1;
    if (st->sock != NULL && zmq_getsockopt(st->sock, ZMQ_FD, &fds[0], &sz) == 0)
        n++;
    sz = sizeof(int);
    if (st->monitor != NULL && zmq_getsockopt(st->monitor, ZMQ_FD, &fds[1], &sz) == 0)
        n++;
    return n;
}

void sim_station_drain(struct sim_station *st, struct sim_station_env *env, int64_t now_ms)
{
    zmq_msg_t msg;
    while (st->monitor != NULL) {
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, st->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&msg) >= 2)
            memcpy(&event, zmq_msg_data(&msg), 2);
        int more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, st->monitor, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                break;
            }
            more = zmq_msg_more(&msg);
            zmq_msg_close(&msg);
        }
        if (event == ZMQ_EVENT_CONNECTED)
            send_hello(st);
    }
    while (st->sock != NULL) {
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, st->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        handle_message(st, env, zmq_msg_data(&msg), zmq_msg_size(&msg), now_ms);
        zmq_msg_close(&msg);
    }
}

double sim_station_next_event_s(const struct sim_station *st)
{
    if (st->measuring)
        return fmax(0.0, st->remaining_s);
    return st->n_queue > 0 ? 0.0 : HUGE_VAL;
}

void sim_station_tick(struct sim_station *st,
                      struct sim_station_env *env,
                      double dt_s,
                      int64_t now_ms)
{
    if (st->reconnect_ms > 0 && now_ms >= st->reconnect_ms) {
        struct ll_error err = {0};
        st->reconnect_ms = 0;
        if (open_socket(st, env, &err) != 0)
            sim_log(
                SIM_LOG_ERR, "station=%s event=reconnect_failed reason=\"%s\"", st->name, err.msg);
    }
    if (st->measuring) {
        st->remaining_s -= dt_s;
        if (st->remaining_s <= 0.0)
            finish_measurement(st, env, now_ms);
    }
    start_measurement(st, env);
    for (int i = 0; i < st->n_out; i++) {
        struct sim_station_out *o = &st->out[i];
        if (now_ms < o->next_ms || st->sock == NULL)
            continue;
        send_measurement(st, env, o, now_ms);
        o->interval_ms = o->interval_ms * 2 > RESEND_MAX_MS ? RESEND_MAX_MS : o->interval_ms * 2;
        o->next_ms = now_ms + o->interval_ms;
    }
    if (now_ms >= st->next_heartbeat_ms && st->sock != NULL) {
        char hb[160];
        snprintf(hb, sizeof(hb), "{\"v\":1,\"type\":\"heartbeat\",\"station\":\"%s\"}", st->name);
        send_plain(st, hb);
        st->next_heartbeat_ms = now_ms + HEARTBEAT_MS;
    }
    if (st->held != NULL && now_ms - st->held_since_ms > 2000) {
        raw_send(st, st->held, strlen(st->held));
        free(st->held);
        st->held = NULL;
    }
}

static void load_stored(struct sim_station *st, int64_t now_ms)
{
    DIR *d = opendir(st->dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, "req-", 4) != 0 || n < 9 ||
            strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
        char *text = read_file(path);
        json_t *m = text ? json_loads(text, 0, NULL) : NULL;
        json_int_t seq = m ? json_integer_value(json_object_get(m, "seq")) : 0;
        json_decref(m);
        if (seq > 0) {
            if ((uint64_t)seq > st->seq)
                st->seq = (uint64_t)seq;
            char ack[PATH_MAX + 32];
            ack_path(st, (uint64_t)seq, ack, sizeof(ack));
            if (access(ack, F_OK) != 0) {
                outbox_add(st, (uint64_t)seq, text, now_ms);
                sim_log(SIM_LOG_INFO,
                        "station=%s seq=%lld event=unacked_after_restart",
                        st->name,
                        (long long)seq);
            }
        }
        free(text);
    }
    closedir(d);
}

/* The station's sequence epoch (docs/protocol.md): read from DIR/epoch, or, when that is
 * missing (first start, or the station's state was lost), a new random one persisted before
 * any message uses it. */
static int load_epoch(struct sim_station *st)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/epoch", st->dir);
    char *text = read_file(path);
    if (text != NULL) {
        size_t n = strcspn(text, "\n");
        if (n >= 1 && n < sizeof(st->epoch)) {
            memcpy(st->epoch, text, n);
            st->epoch[n] = '\0';
            free(text);
            return 0;
        }
        free(text);
    }
    unsigned char b[8];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -EIO;
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(st->epoch + 2 * i, 3, "%02x", b[i]);
    char line[sizeof(st->epoch) + 1];
    snprintf(line, sizeof(line), "%s\n", st->epoch);
    sim_log(SIM_LOG_INFO,
            "station=%s event=new_epoch epoch=%s seq=%" PRIu64,
            st->name,
            st->epoch,
            st->seq);
    return write_file_durable(path, line);
}

int sim_station_forget(const struct sim_station *st)
{
    DIR *d = opendir(st->dir);
    if (d == NULL)
        return -errno;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
        if (unlink(path) != 0 && rc == 0)
            rc = -errno;
    }
    closedir(d);
    return rc;
}

int sim_station_open(struct sim_station *st,
                     const struct labconf_station *def,
                     int slot,
                     struct sim_station_env *env,
                     int64_t now_ms,
                     struct ll_error *reterr)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", def->name);
    st->n_kinds = def->n_kinds;
    for (int i = 0; i < def->n_kinds; i++)
        snprintf(st->kinds[i], sizeof(st->kinds[i]), "%s", def->kinds[i]);
    st->slot = slot;
    snprintf(st->dir, sizeof(st->dir), "%s/stations/%s", env->runtime_dir, def->name);
    int rc = mkdir_p(st->dir);
    if (rc != 0)
        return ll_error_set(reterr, rc, "%s: %s", st->dir, strerror(-rc));
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/seq", st->dir);
    char *text = read_file(path);
    if (text != NULL) {
        st->seq = strtoull(text, NULL, 10);
        free(text);
    }
    rc = load_epoch(st);
    if (rc != 0)
        return ll_error_set(reterr, rc, "%s/epoch: %s", st->dir, strerror(-rc));
    load_stored(st, now_ms);
    st->next_heartbeat_ms = now_ms + HEARTBEAT_MS;
    return open_socket(st, env, reterr);
}

void sim_station_close(struct sim_station *st)
{
    close_socket(st);
    for (int i = 0; i < st->n_out; i++)
        free(st->out[i].msg);
    st->n_out = 0;
    while (st->n_queue > 0)
        queue_pop(st);
    json_decref(st->pending_data);
    st->pending_data = NULL;
    free(st->held);
    st->held = NULL;
}

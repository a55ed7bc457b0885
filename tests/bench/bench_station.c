/* bench_station — measurement stations against a running labloopd, for the load rows of
 * reliability.md §4.1 (L1 against the real daemon, L2, L8) and F16. Driven by
 * tests/bench/bench_load.py; prints numbers, never passes or fails.
 *
 *   bench_station fixture DB STATION:KIND[,STATION:KIND...] REQUESTS [FILLER]
 *       Creates (or adds to) labloopd's database DB, before labloopd starts: a campaign
 *       "bench-fixture" (aborted, so labloopd never resumes it) with REQUESTS experiments per
 *       station, each with one started `measure` step for that station and kind (jv or eis):
 *       the requests labloopd sent before an outage, which the stations' measurements answer.
 *       FILLER > 0 adds a completed campaign "bench-filler" of FILLER measured experiments (six
 *       parameters, two objectives each) so that `labloop export` has something large to
 *       read. Prints one line per request: STATION REQUEST SAMPLE KIND.
 *   bench_station spool DIR STATION REQUESTS_FILE N
 *       A station's spool written while labloopd is down: N measurements (seq 1..N, a new
 *       epoch) answering STATION's requests of REQUESTS_FILE in turn, one message per line in
 *       DIR/spool.jsonl (fsync'd every 1000 lines and at the end), DIR/epoch, DIR/station.
 *   bench_station replay ENDPOINT DIR [WINDOW] [TIMEOUT_S]
 *       The station of DIR comes back: connects (also before labloopd listens: ZeroMQ keeps
 *       the messages until it can connect), sends hello, then every spooled message not yet in
 *       DIR/acked with at most WINDOW (default 32) unacked, resending each unacked one after
 *       1 s, doubling up to 30 s (docs/protocol.md); `stored` and `duplicate` acks are appended
 *       to DIR/acked. Prints per second "tick UNIX_MS ACKED" and a summary line "summary
 *       {json}". Exit 0 when every message was answered within TIMEOUT_S (default 900), 1 if
 *       not.
 *   bench_station load ENDPOINT REQUESTS_FILE STATIONS WINDOW SECONDS
 *       L1's load generator: the first STATIONS stations of REQUESTS_FILE, one thread and
 *       DEALER each, send measurements for their requests in turn, each keeping WINDOW
 *       unacked, for SECONDS; then waits up to 10 s for the last acks. Every measurement has a
 *       new (station, epoch, seq), so repeated runs against one database store everything.
 *       Prints "tick UNIX_MS ACKED" per second and "summary {json}": acked/s, ack latency
 *       p50/p99/max (send to ack), rejected, unanswered.
 *
 * Messages are the protocol's examples in $LL_SOURCE_DIR/tests/data/measurements (default
 * "."): jv_pair.json (two sweeps of 141 points with hysteresis, 4.9 KB; about 3 ms to analyse)
 * and the 25 °C spectrum of eis_llzo_3temps.json (71 points, 2.1 KB), with the station,
 * request, sample, time, seq and epoch of each message, and the currents (or impedances)
 * scaled a little per request so that the derived numbers differ. (tests/support's
 * ll_test_jv_message, an ideal diode, takes about 12 ms to analyse against jv_pair.json's 3 ms:
 * `labloop analyze` user time, 2026-11-26.)
 */
#include "common/ll_time.h"
#include "daemon/store.h"

#include <errno.h>
#include <fcntl.h>
#include <gsl/gsl_errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_REQUESTS 200000
#define MAX_STATIONS 64
#define SEQ_MARK "987654321"
#define TIMELINE_S 7200

struct request {
    char station[65], request[65], sample[65], kind[16];
};

/* --- shared helpers ---------------------------------------------------------------------- */

static void new_epoch(char out[17])
{
    unsigned char b[8] = {0};
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        uint64_t t = (uint64_t)ll_wall_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(b, &t, sizeof(b));
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void rfc3339_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

/* Reads REQUESTS_FILE (lines "station request sample kind"); returns how many, or -1. */
static int read_requests(const char *path, struct request *out, int cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_station: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int n = 0;
    while (
        n < cap &&
        fscanf(
            f, "%64s %64s %64s %15s", out[n].station, out[n].request, out[n].sample, out[n].kind) ==
            4)
        n++;
    fclose(f);
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return 0.0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* A growable array of latencies (ms). */
struct lat {
    double *v;
    size_t n, cap;
};

static void lat_add(struct lat *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 65536;
        double *g = realloc(l->v, cap * sizeof(double));
        if (g == NULL)
            return;
        l->v = g;
        l->cap = cap;
    }
    l->v[l->n++] = ms;
}

/* Parses an ack's seq and status ("stored", "duplicate", "rejected"); 0 or -1. */
static int parse_ack(const char *buf, size_t len, int64_t *ret_seq, char *status, size_t cap)
{
    json_t *a = json_loadb(buf, len, 0, NULL);
    if (a == NULL)
        return -1;
    const char *st = json_string_value(json_object_get(a, "status"));
    *ret_seq = (int64_t)json_integer_value(json_object_get(a, "seq"));
    snprintf(status, cap, "%s", st != NULL ? st : "?");
    json_decref(a);
    return st != NULL ? 0 : -1;
}

static void *dealer_new(void *zctx, const char *station, const char *endpoint)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0, hwm = 200000, ivl = 100;
    zmq_setsockopt(s, ZMQ_ROUTING_ID, station, strlen(station));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "bench_station: connect %s: %s\n", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static void send_hello(void *s, const char *station, const char *epoch, const char *kind)
{
    char hello[256];
    int n = snprintf(hello,
                     sizeof(hello),
                     "{\"v\":1,\"type\":\"hello\",\"station\":\"%s\",\"epoch\":\"%s\",\"kinds\":"
                     "[\"%s\"]}",
                     station,
                     epoch,
                     kind);
    zmq_send(s, hello, (size_t)n, 0);
}

/* The example messages (see the top of the file); 0 or -1. */
struct templates {
    json_t *jv, *eis;
};

static int templates_load(struct templates *t)
{
    const char *src = getenv("LL_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/data/measurements/jv_pair.json", src ? src : ".");
    t->jv = json_load_file(path, 0, NULL);
    snprintf(
        path, sizeof(path), "%s/tests/data/measurements/eis_llzo_3temps.json", src ? src : ".");
    t->eis = json_load_file(path, 0, NULL);
    json_t *spectra = json_object_get(json_object_get(t->eis, "data"), "spectra");
    while (json_array_size(spectra) > 1) /* keep the last spectrum, 25 °C */
        json_array_remove(spectra, 0);
    if (t->jv == NULL || t->eis == NULL) {
        fprintf(stderr, "bench_station: no example messages in %s (set LL_SOURCE_DIR)\n", path);
        return -1;
    }
    return 0;
}

static void scale_array(json_t *a, double k)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        json_real_set(v, json_number_value(v) * k);
    }
}

/* A message for request q with seq SEQ_MARK (replaced when sent), the time now, the epoch
 * first, its currents or impedances times scale, and every real with 12 significant digits.
 * Returns a malloc'd text or NULL. */
static char *
message_text(const struct templates *t, const struct request *q, const char *epoch, double scale)
{
    int eis = strcmp(q->kind, "eis") == 0;
    json_t *o = json_deep_copy(eis ? t->eis : t->jv), *v;
    json_t *parts = json_object_get(json_object_get(o, "data"), eis ? "spectra" : "sweeps");
    size_t i;
    json_array_foreach(parts, i, v)
    {
        if (eis) {
            scale_array(json_object_get(v, "z_real_ohm"), scale);
            scale_array(json_object_get(v, "z_imag_ohm"), scale);
        } else {
            scale_array(json_object_get(v, "current_ma_cm2"), scale);
        }
    }
    char when[32];
    rfc3339_now(when, sizeof(when));
    json_object_set_new(o, "station", json_string(q->station));
    json_object_set_new(o, "request", json_string(q->request));
    json_object_set_new(o, "sample", json_string(q->sample));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "seq", json_integer(987654321));
    char *body = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(o);
    if (body == NULL)
        return NULL;
    size_t len = strlen(body) + strlen(epoch) + 16;
    char *out = malloc(len);
    if (out != NULL)
        snprintf(out, len, "{\"epoch\":\"%s\",%s", epoch, body + 1);
    free(body);
    return out;
}

/* --- fixture ------------------------------------------------------------------------------ */

static int fixture_filler(struct store *st, int n, struct ll_error *err)
{
    int64_t c = 0;
    int r = store_campaign_create(
        st, "bench-filler", "# bench_station filler: no campaign file\n", "auto", &c, err);
    static const char *const names[6] = {
        "fa", "cs", "iodide", "anneal_c", "anneal_min", "spin_rpm"};
    for (int i = 0; i < n && r == 0; i++) {
        json_t *p = json_object();
        for (int k = 0; k < 6; k++)
            json_object_set_new(p, names[k], json_real(0.1 * k + 1e-5 * i));
        int64_t e = 0;
        r = store_experiment_create(st, c, i, i / 4, -1, p, 0.5, &e, err);
        json_decref(p);
        if (r == 0)
            r = store_experiment_set_state(st, e, STORE_EXP_QUEUED, NULL, err);
        if (r == 0)
            r = store_experiment_set_state(st, e, STORE_EXP_RUNNING, NULL, err);
        if (r == 0)
            r = store_objective_put(st, e, "pce_pct", 15.0 + 1e-4 * i, 0, "1.0", err);
        if (r == 0)
            r = store_objective_put(st, e, "log10_t80_h", 2.5 + 1e-5 * i, 0, "1.0", err);
        if (r == 0)
            r = store_experiment_set_state(st, e, STORE_EXP_MEASURED, NULL, err);
    }
    if (r == 0)
        r = store_campaign_set_state(st, c, STORE_CAMPAIGN_COMPLETED, NULL, err);
    return r;
}

static int
fixture_station(struct store *st, int64_t c, const char *station, const char *kind, int n, int *idx)
{
    struct ll_error err;
    int r = 0;
    for (int k = 0; k < n && r == 0; k++) {
        json_t *p = json_pack("{s:i}", "fixture", k), *sp = json_pack("{s:s}", "kind", kind);
        int64_t e = 0, step = 0;
        char request[80];
        snprintf(request, sizeof(request), "%s-r%d", station, k);
        r = store_experiment_create(st, c, (*idx)++, 0, -1, p, 0.0, &e, &err);
        if (r == 0)
            r = store_experiment_set_state(st, e, STORE_EXP_QUEUED, NULL, &err);
        if (r == 0)
            r = store_experiment_set_state(st, e, STORE_EXP_RUNNING, NULL, &err);
        if (r == 0)
            r = store_step_create(st, e, 0, station, "measure", sp, 600000, request, &step, &err);
        if (r == 0)
            r = store_step_set_state(st, step, STORE_STEP_STARTED, 600000, NULL, &err);
        json_decref(p);
        json_decref(sp);
        if (r == 0)
            printf("%s %s S%06lld %s\n", station, request, (long long)e, kind);
    }
    if (r < 0)
        fprintf(stderr, "bench_station: fixture: %s\n", err.msg);
    return r;
}

static int cmd_fixture(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_station fixture DB STATION:KIND[,...] REQUESTS [FILLER]\n");
        return 2;
    }
    int n = atoi(argv[4]), filler = argc > 5 ? atoi(argv[5]) : 0;
    struct ll_error err;
    struct store *st = NULL;
    if (store_open(argv[2], &st, &err) < 0) {
        fprintf(stderr, "bench_station: %s\n", err.msg);
        return 1;
    }
    int64_t c = 0;
    int r = store_begin(st, &err);
    if (r == 0)
        r = store_campaign_create(
            st, "bench-fixture", "# bench_station fixture: no campaign file\n", "auto", &c, &err);
    char list[4096];
    snprintf(list, sizeof(list), "%s", argv[3]);
    int idx = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL && r == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        const char *kind = colon != NULL ? colon + 1 : "jv";
        if (colon != NULL)
            *colon = '\0';
        r = fixture_station(st, c, tok, kind, n, &idx);
    }
    if (r == 0)
        r = store_campaign_set_state(
            st, c, STORE_CAMPAIGN_ABORTED, "bench fixture: never resumed", &err);
    if (r == 0 && filler > 0)
        r = fixture_filler(st, filler, &err);
    if (r == 0)
        r = store_commit(st, &err);
    else
        store_rollback(st);
    if (r < 0)
        fprintf(stderr, "bench_station: fixture: %s\n", err.msg);
    store_close(&st);
    return r < 0 ? 1 : 0;
}

/* --- spool --------------------------------------------------------------------------------- */

static int write_small(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    fflush(f);
    fsync(fileno(f));
    fclose(f);
    return 0;
}

static int cmd_spool(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_station spool DIR STATION REQUESTS_FILE N\n");
        return 2;
    }
    const char *dir = argv[2], *station = argv[3];
    long n = atol(argv[5]);
    static struct request reqs[MAX_REQUESTS];
    int nr = read_requests(argv[4], reqs, MAX_REQUESTS), mine[4096], nm = 0;
    for (int i = 0; i < nr && nm < 4096; i++)
        if (strcmp(reqs[i].station, station) == 0)
            mine[nm++] = i;
    if (nm == 0 || n <= 0) {
        fprintf(stderr, "bench_station: no request of station '%s' (or N <= 0)\n", station);
        return 2;
    }
    struct templates tp;
    if (templates_load(&tp) < 0)
        return 2;
    mkdir(dir, 0755);
    char epoch[17], path[4096], line[64];
    new_epoch(epoch);
    if (write_small(dir, "epoch", epoch) < 0 || write_small(dir, "station", station) < 0)
        return 1;
    snprintf(path, sizeof(path), "%s/spool.jsonl", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench_station: %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* one text per request with SEQ_MARK where the seq goes (different currents per
     * request), so that spooling 50,000 messages takes seconds */
    static char *tmpl[4096];
    for (int k = 0; k < nm; k++) {
        tmpl[k] = message_text(&tp, &reqs[mine[k]], epoch, 1.0 + 0.002 * k);
        if (tmpl[k] == NULL) {
            fprintf(stderr, "bench_station: out of memory\n");
            fclose(f);
            return 1;
        }
    }
    int64_t t0 = ll_monotonic_ms();
    size_t bytes = 0;
    for (long seq = 1; seq <= n; seq++) {
        const char *t = tmpl[(seq - 1) % nm], *mark = strstr(t, SEQ_MARK);
        int len = fprintf(f, "%.*s%ld%s\n", (int)(mark - t), t, seq, mark + strlen(SEQ_MARK));
        bytes += len > 0 ? (size_t)len - 1 : 0;
        if (seq % 1000 == 0) {
            fflush(f);
            fsync(fileno(f));
        }
    }
    for (int k = 0; k < nm; k++)
        free(tmpl[k]);
    json_decref(tp.jv);
    json_decref(tp.eis);
    fflush(f);
    fsync(fileno(f));
    fclose(f);
    snprintf(line, sizeof(line), "%ld\n", n);
    write_small(dir, "seq", line);
    snprintf(path, sizeof(path), "%s/acked", dir);
    unlink(path);
    printf("spooled %ld messages (%.1f MB, %.0f bytes each) for station %s epoch %s in %.1f s\n",
           n,
           (double)bytes / 1e6,
           (double)bytes / (double)n,
           station,
           epoch,
           (double)(ll_monotonic_ms() - t0) / 1000.0);
    return 0;
}

/* --- replay -------------------------------------------------------------------------------- */

struct inflight {
    int64_t seq; /* 0: free slot */
    int64_t first_ms, next_ms, interval_ms;
};

struct spool {
    char station[65], epoch[65];
    char *text; /* mapped read-only */
    size_t text_len;
    size_t *off; /* off[i]: start of the message with seq i + 1; off[n] one past the end */
    int64_t n;
    unsigned char *done; /* done[seq - 1]: answered (acked or rejected) */
};

static int read_small(const char *dir, const char *name, char *out, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return ok ? 0 : -1;
}

static void spool_close(struct spool *sp)
{
    free(sp->off);
    free(sp->done);
    if (sp->text != NULL)
        munmap(sp->text, sp->text_len);
    memset(sp, 0, sizeof(*sp));
}

/* Maps DIR/spool.jsonl and reads DIR/acked; 0, or -1 (release with spool_close() either way). */
static int spool_open(const char *dir, struct spool *sp)
{
    memset(sp, 0, sizeof(*sp));
    if (read_small(dir, "station", sp->station, sizeof(sp->station)) < 0 ||
        read_small(dir, "epoch", sp->epoch, sizeof(sp->epoch)) < 0)
        return -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/spool.jsonl", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size == 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    sp->text = m;
    sp->text_len = (size_t)sb.st_size;
    for (size_t i = 0; i < sp->text_len; i++)
        if (sp->text[i] == '\n')
            sp->n++;
    sp->off = malloc((size_t)(sp->n + 1) * sizeof(size_t));
    sp->done = calloc((size_t)sp->n + 1, 1);
    if (sp->off == NULL || sp->done == NULL)
        return -1;
    int64_t k = 0;
    sp->off[0] = 0;
    for (size_t i = 0; i < sp->text_len; i++)
        if (sp->text[i] == '\n')
            sp->off[++k] = i + 1;
    snprintf(path, sizeof(path), "%s/acked", dir);
    FILE *f = fopen(path, "r");
    long long seq;
    while (f != NULL && fscanf(f, "%lld", &seq) == 1)
        if (seq >= 1 && seq <= sp->n)
            sp->done[seq - 1] = 1;
    if (f != NULL)
        fclose(f);
    return 0;
}

static void spool_send(void *s, const struct spool *sp, int64_t seq)
{
    size_t a = sp->off[seq - 1], b = sp->off[seq] - 1; /* without the newline */
    zmq_send(s, sp->text + a, b - a, 0);
}

struct replay_counts {
    int64_t stored, duplicate, rejected, resent, answered, first_ack_ms, last_ack_ms;
};

/* Handles every ack waiting on s; returns how many slots it freed. */
static int replay_acks(void *s,
                       struct spool *sp,
                       struct inflight *fl,
                       int window,
                       FILE *acked,
                       struct lat *lat,
                       struct replay_counts *c)
{
    int freed = 0;
    char buf[1024], status[32];
    int n;
    while ((n = zmq_recv(s, buf, sizeof(buf) - 1, ZMQ_DONTWAIT)) >= 0) {
        int64_t seq = 0, now = ll_monotonic_ms();
        if (parse_ack(buf,
                      (size_t)(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1),
                      &seq,
                      status,
                      sizeof(status)) < 0 ||
            seq < 1 || seq > sp->n || sp->done[seq - 1])
            continue;
        for (int i = 0; i < window; i++) {
            if (fl[i].seq != seq)
                continue;
            lat_add(lat, (double)(now - fl[i].first_ms));
            fl[i].seq = 0;
            freed++;
            break;
        }
        sp->done[seq - 1] = 1;
        c->answered++;
        if (c->first_ack_ms == 0)
            c->first_ack_ms = ll_wall_ms();
        c->last_ack_ms = ll_wall_ms();
        if (strcmp(status, "stored") == 0)
            c->stored++;
        else if (strcmp(status, "duplicate") == 0)
            c->duplicate++;
        else
            c->rejected++;
        if (strcmp(status, "rejected") != 0)
            fprintf(acked, "%lld\n", (long long)seq);
    }
    return freed;
}

static void replay_summary(const struct spool *sp,
                           const struct replay_counts *c,
                           struct lat *lat,
                           int window,
                           int64_t already)
{
    if (lat->n > 0)
        qsort(lat->v, lat->n, sizeof(double), cmp_double);
    double secs = (double)(c->last_ack_ms - c->first_ack_ms) / 1000.0;
    printf("summary {\"station\":\"%s\",\"spooled\":%lld,\"already_acked\":%lld,\"window\":%d,"
           "\"stored\":%lld,\"duplicate\":%lld,\"rejected\":%lld,\"resent\":%lld,"
           "\"first_ack_unix_ms\":%lld,\"last_ack_unix_ms\":%lld,\"acked_per_s\":%.0f,"
           "\"ack_latency_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
           sp->station,
           (long long)sp->n,
           (long long)already,
           window,
           (long long)c->stored,
           (long long)c->duplicate,
           (long long)c->rejected,
           (long long)c->resent,
           (long long)c->first_ack_ms,
           (long long)c->last_ack_ms,
           secs > 0 ? (double)c->answered / secs : 0.0,
           quantile(lat->v, lat->n, 0.5),
           quantile(lat->v, lat->n, 0.99),
           lat->n ? lat->v[lat->n - 1] : 0.0);
    fflush(stdout);
}

/* The replay loop of cmd_replay: 1 when every spooled message was answered in time. */
static int replay_run(
    void *s, struct spool *sp, struct inflight *fl, int window, int64_t timeout_ms, FILE *acked)
{
    int64_t already = 0;
    for (int64_t i = 0; i < sp->n; i++)
        already += sp->done[i];
    send_hello(s, sp->station, sp->epoch, "jv");
    struct replay_counts c = {0};
    struct lat lat = {0};
    int64_t next = 1, start = ll_monotonic_ms(), tick = start + 1000;
    while (c.answered + already < sp->n && ll_monotonic_ms() - start < timeout_ms) {
        int64_t now = ll_monotonic_ms();
        for (int i = 0; i < window; i++) {
            if (fl[i].seq == 0) {
                while (next <= sp->n && sp->done[next - 1])
                    next++;
                if (next > sp->n)
                    continue;
                fl[i] = (struct inflight){next, now, now + 1000, 1000};
                spool_send(s, sp, next++);
            } else if (now >= fl[i].next_ms) {
                spool_send(s, sp, fl[i].seq);
                fl[i].interval_ms = fl[i].interval_ms * 2 > 30000 ? 30000 : fl[i].interval_ms * 2;
                fl[i].next_ms = now + fl[i].interval_ms;
                c.resent++;
            }
        }
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 50);
        replay_acks(s, sp, fl, window, acked, &lat, &c);
        if (ll_monotonic_ms() >= tick) {
            int64_t total = c.answered + already;
            printf("tick %" PRId64 " %" PRId64 "\n", ll_wall_ms(), total);
            fflush(stdout);
            fflush(acked);
            tick += 1000;
        }
    }
    replay_summary(sp, &c, &lat, window, already);
    free(lat.v);
    return c.answered + already == sp->n;
}

static int cmd_replay(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_station replay ENDPOINT DIR [WINDOW] [TIMEOUT_S]\n");
        return 2;
    }
    int window = argc > 4 ? atoi(argv[4]) : 32;
    int64_t timeout_ms = (argc > 5 ? atoll(argv[5]) : 900) * 1000;
    if (window < 1 || window > 4096)
        window = 32;
    struct spool sp;
    if (spool_open(argv[3], &sp) < 0) {
        fprintf(stderr, "bench_station: %s: no readable spool\n", argv[3]);
        spool_close(&sp);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/acked", argv[3]);
    FILE *acked = fopen(path, "a");
    struct inflight *fl = calloc((size_t)window, sizeof(*fl));
    void *zctx = zmq_ctx_new();
    void *s = acked != NULL && fl != NULL ? dealer_new(zctx, sp.station, argv[2]) : NULL;
    int ok = s != NULL && replay_run(s, &sp, fl, window, timeout_ms, acked);
    if (s != NULL)
        zmq_close(s);
    zmq_ctx_term(zctx);
    if (acked != NULL) {
        fflush(acked);
        fsync(fileno(acked));
        fclose(acked);
    }
    free(fl);
    spool_close(&sp);
    return ok ? 0 : 1;
}

/* --- load ---------------------------------------------------------------------------------- */

struct loadgen {
    const char *endpoint;
    void *zctx;
    const struct request *reqs[1024];
    const struct templates *tp;
    _Atomic int64_t *timeline;
    int64_t stop_ms; /* monotonic: no new message after this */
    int64_t t0_ms;
    int64_t acked, rejected, unanswered;
    struct lat lat;
    int n_reqs, window;
    char station[65], kind[16], epoch[17];
};

static void load_send(void *s, const char *tmpl, int64_t seq, char *buf, size_t cap)
{
    const char *mark = strstr(tmpl, SEQ_MARK);
    int n = snprintf(
        buf, cap, "%.*s%lld%s", (int)(mark - tmpl), tmpl, (long long)seq, mark + strlen(SEQ_MARK));
    zmq_send(s, buf, (size_t)n, 0);
}

#define LOAD_RING 8192

static void *load_thread(void *arg)
{
    struct loadgen *g = arg;
    void *s = dealer_new(g->zctx, g->station, g->endpoint);
    char *tmpl[1024] = {0};
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    int64_t *sent_ms = calloc(LOAD_RING, sizeof(int64_t)), made = 0;
    if (s == NULL || buf == NULL || sent_ms == NULL)
        goto out;
    send_hello(s, g->station, g->epoch, g->kind);
    int64_t seq = 0, answered = 0;
    for (;;) {
        int64_t now = ll_monotonic_ms();
        int sending = now < g->stop_ms;
        if (!sending && (answered == seq || now > g->stop_ms + 10000))
            break;
        if (now - made > 60000) {
            /* made again every minute, so that the message time stays near the receipt
             * time (no clock-skew warnings) */
            for (int i = 0; i < g->n_reqs; i++) {
                free(tmpl[i]);
                tmpl[i] = message_text(g->tp, g->reqs[i], g->epoch, 1.0 + 0.002 * i);
            }
            made = now;
        }
        while (sending && seq - answered < g->window) {
            seq++;
            const char *t = tmpl[seq % g->n_reqs];
            if (t == NULL)
                goto out;
            sent_ms[seq % LOAD_RING] = ll_monotonic_ms();
            load_send(s, t, seq, buf, cap);
        }
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 100);
        char ack[1024], status[32];
        int n;
        while ((n = zmq_recv(s, ack, sizeof(ack) - 1, ZMQ_DONTWAIT)) >= 0) {
            int64_t aseq = 0, t = ll_monotonic_ms();
            if (parse_ack(ack,
                          (size_t)(n < (int)sizeof(ack) ? n : (int)sizeof(ack) - 1),
                          &aseq,
                          status,
                          sizeof(status)) < 0)
                continue;
            answered++;
            if (strcmp(status, "rejected") == 0) {
                g->rejected++;
                continue;
            }
            g->acked++;
            if (aseq > seq - LOAD_RING && aseq <= seq)
                lat_add(&g->lat, (double)(t - sent_ms[aseq % LOAD_RING]));
            int64_t sec = (t - g->t0_ms) / 1000;
            if (sec >= 0 && sec < TIMELINE_S)
                atomic_fetch_add(&g->timeline[sec], 1);
        }
    }
    g->unanswered = seq - answered;
out:
    for (int i = 0; i < 1024; i++)
        free(tmpl[i]);
    free(buf);
    free(sent_ms);
    if (s != NULL)
        zmq_close(s);
    return NULL;
}

static void
load_report(struct loadgen *gens, int n_st, _Atomic int64_t *timeline, int64_t t0, int seconds)
{
    int64_t acked = 0, rejected = 0, unanswered = 0;
    struct lat all = {0};
    for (int i = 0; i < n_st; i++) {
        acked += gens[i].acked;
        rejected += gens[i].rejected;
        unanswered += gens[i].unanswered;
        for (size_t k = 0; k < gens[i].lat.n; k++)
            lat_add(&all, gens[i].lat.v[k]);
        free(gens[i].lat.v);
    }
    int64_t last = (ll_monotonic_ms() - t0) / 1000;
    int64_t wall_t0 = ll_wall_ms() - (ll_monotonic_ms() - t0);
    for (int64_t s = 0; s <= last && s < TIMELINE_S; s++) {
        int64_t at = wall_t0 + s * 1000, n = atomic_load(&timeline[s]);
        printf("tick %" PRId64 " %" PRId64 "\n", at, n);
    }
    if (all.n > 0)
        qsort(all.v, all.n, sizeof(double), cmp_double);
    printf("summary {\"stations\":%d,\"window\":%d,\"seconds\":%d,\"acked\":%lld,"
           "\"rejected\":%lld,\"unanswered\":%lld,\"acked_per_s\":%.0f,"
           "\"ack_latency_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
           n_st,
           gens[0].window,
           seconds,
           (long long)acked,
           (long long)rejected,
           (long long)unanswered,
           (double)acked / (double)seconds,
           quantile(all.v, all.n, 0.5),
           quantile(all.v, all.n, 0.99),
           all.n ? all.v[all.n - 1] : 0.0);
    free(all.v);
}

static int cmd_load(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr,
                "usage: bench_station load ENDPOINT REQUESTS_FILE STATIONS WINDOW SECONDS\n");
        return 2;
    }
    static struct request reqs[MAX_REQUESTS];
    static struct loadgen gens[MAX_STATIONS];
    static _Atomic int64_t timeline[TIMELINE_S];
    int nr = read_requests(argv[3], reqs, MAX_REQUESTS);
    int want = atoi(argv[4]), window = atoi(argv[5]), seconds = atoi(argv[6]), n_st = 0;
    static struct templates tp;
    if (templates_load(&tp) < 0)
        return 2;
    void *zctx = zmq_ctx_new();
    int64_t t0 = ll_monotonic_ms();
    for (int i = 0; i < nr; i++) {
        int k = 0;
        while (k < n_st && strcmp(gens[k].station, reqs[i].station) != 0)
            k++;
        if (k == n_st) {
            if (n_st == want || n_st == MAX_STATIONS)
                continue;
            struct loadgen *g = &gens[n_st++];
            memset(g, 0, sizeof(*g));
            g->endpoint = argv[2];
            g->zctx = zctx;
            snprintf(g->station, sizeof(g->station), "%s", reqs[i].station);
            snprintf(g->kind, sizeof(g->kind), "%s", reqs[i].kind);
            new_epoch(g->epoch);
            g->tp = &tp;
            g->window = window;
            g->stop_ms = t0 + 1000LL * seconds;
            g->timeline = timeline;
            g->t0_ms = t0;
        }
        if (gens[k].n_reqs < 1024)
            gens[k].reqs[gens[k].n_reqs++] = &reqs[i];
    }
    if (n_st == 0 || window < 1 || seconds < 1) {
        fprintf(stderr, "bench_station: no stations in %s (or WINDOW/SECONDS < 1)\n", argv[3]);
        return 2;
    }
    pthread_t th[MAX_STATIONS];
    for (int i = 0; i < n_st; i++)
        pthread_create(&th[i], NULL, load_thread, &gens[i]);
    for (int i = 0; i < n_st; i++)
        pthread_join(th[i], NULL);
    load_report(gens, n_st, timeline, t0, seconds);
    json_decref(tp.jv);
    json_decref(tp.eis);
    zmq_ctx_term(zctx);
    return 0;
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "fixture") == 0)
        return cmd_fixture(argc, argv);
    if (strcmp(cmd, "spool") == 0)
        return cmd_spool(argc, argv);
    if (strcmp(cmd, "replay") == 0)
        return cmd_replay(argc, argv);
    if (strcmp(cmd, "load") == 0)
        return cmd_load(argc, argv);
    fprintf(stderr, "usage: bench_station fixture|spool|replay|load ... (see the file's header)\n");
    return 2;
}

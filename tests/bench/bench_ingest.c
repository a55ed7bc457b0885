/* bench_ingest — acked measurements per second through daemon/ingest.c.
 *
 *   bench_ingest [N_MEASUREMENTS] [N_STATIONS] [WINDOW] [DB_DIR]
 *
 * A load generator in this process: N_STATIONS DEALER threads (stations "st-0" ...) each
 * send their share of N_MEASUREMENTS real `jv` measurement messages (two sweeps of 131
 * points, ~5 KB) with at most WINDOW unacked at a time, over tcp://127.0.0.1. The main thread
 * runs ingest exactly as labloopd does (group commit into a WAL store with synchronous=FULL,
 * SHA-256 of every payload, analysis_run() and every derived number stored, then the acks).
 * Prints acked measurements per second, mean commit batch size and the store size.
 * DB_DIR (default: a temp dir) decides the disk the fsyncs go to.
 */
#include "common/ll_time.h"
#include "daemon/ingest.h"
#include "daemon/store.h"
#include "ll_test_messages.h"

#include <gsl/gsl_errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

struct gen {
    void *zctx;
    char endpoint[64];
    int station, n, window;
    int acked, rejected;
};

static void *generator(void *arg)
{
    struct gen *g = arg;
    char name[16];
    snprintf(name, sizeof(name), "st-%d", g->station);
    void *s = zmq_socket(g->zctx, ZMQ_DEALER);
    int zero = 0, hwm = 100000;
    zmq_setsockopt(s, ZMQ_ROUTING_ID, name, strlen(name));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_connect(s, g->endpoint);
    int sent = 0, answered = 0;
    /* the message is made once; only its seq changes (so the generator costs little) */
    char *tmpl = ll_test_jv_message(name, 987654321, "r-1", "S000001", 22.0);
    char *mark = strstr(tmpl, "987654321");
    size_t len = strlen(tmpl);
    char *buf_msg = malloc(len + 32);
    while (answered < g->n) {
        while (sent < g->n && sent - answered < g->window) {
            int head = (int)(mark - tmpl);
            int n = snprintf(buf_msg, len + 32, "%.*s%d%s", head, tmpl, sent + 1, mark + 9);
            zmq_send(s, buf_msg, (size_t)n, 0);
            sent++;
        }
        char buf[512];
        int n = zmq_recv(s, buf, sizeof(buf) - 1, 0);
        if (n < 0)
            break;
        buf[n < (int)sizeof(buf) - 1 ? n : (int)sizeof(buf) - 1] = '\0';
        answered++;
        if (strstr(buf, "\"stored\"") != NULL)
            g->acked++;
        else
            g->rejected++;
    }
    free(tmpl);
    free(buf_msg);
    zmq_close(s);
    return NULL;
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    int total = argc > 1 ? atoi(argv[1]) : 20000;
    int n_st = argc > 2 ? atoi(argv[2]) : 4;
    int window = argc > 3 ? atoi(argv[3]) : 200;
    char dir[256];
    if (argc > 4)
        snprintf(dir, sizeof(dir), "%s", argv[4]);
    else {
        snprintf(dir, sizeof(dir), "/tmp/bench_ingest.XXXXXX");
        if (mkdtemp(dir) == NULL)
            return 1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/bench.db", dir);
    remove(path);
    struct ll_error err;
    struct store *st = NULL;
    if (store_open(path, &st, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t c = 0, e = 0, step = 0;
    json_t *p = json_object(), *sp = json_pack("{s:s}", "kind", "jv");
    store_campaign_create(st, "bench", "x", "auto", &c, &err);
    store_experiment_create(st, c, 0, 0, -1, p, 0, &e, &err);
    store_step_create(st, e, 0, "st-0", "measure", sp, 1000, "r-1", &step, &err);
    json_decref(p);
    json_decref(sp);
    void *zctx = zmq_ctx_new();
    struct ingest *ing = NULL;
    struct gen gens[64];
    pthread_t th[64];
    struct ingest_options opt = {.endpoint = "tcp://127.0.0.1:*", .group_commit_ms = 2};
    if (ingest_new(zctx, st, &opt, &ing, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char ep[64];
    size_t eplen = sizeof(ep);
    zmq_getsockopt(ingest_socket(ing), ZMQ_LAST_ENDPOINT, ep, &eplen);
    if (n_st > 64)
        n_st = 64;
    int64_t t0 = ll_monotonic_ms();
    for (int i = 0; i < n_st; i++) {
        gens[i] = (struct gen){.zctx = zctx, .station = i, .n = total / n_st, .window = window};
        snprintf(gens[i].endpoint, sizeof(gens[i].endpoint), "%s", ep);
        pthread_create(&th[i], NULL, generator, &gens[i]);
    }
    int64_t batches = 0, handled = 0;
    int want = (total / n_st) * n_st;
    while (handled < want) {
        zmq_pollitem_t it = {.socket = ingest_socket(ing), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 1000);
        int n = ingest_process(ing, &err);
        if (n < 0) {
            fprintf(stderr, "ingest: %s\n", err.msg);
            break;
        }
        if (n > 0) {
            batches++;
            handled += n;
        }
    }
    int acked = 0, rejected = 0;
    for (int i = 0; i < n_st; i++) {
        pthread_join(th[i], NULL);
        acked += gens[i].acked;
        rejected += gens[i].rejected;
    }
    int64_t ms = ll_monotonic_ms() - t0;
    struct stat sb;
    stat(path, &sb);
    printf("bench_ingest: %d measurements from %d stations (window %d), %d stored, %d other\n",
           want,
           n_st,
           window,
           acked,
           rejected);
    printf("  %.0f acked measurements/s (%.2f s), %lld commits, %.1f messages per commit, db %.1f "
           "MB\n",
           1000.0 * acked / (double)(ms > 0 ? ms : 1),
           (double)ms / 1000.0,
           (long long)batches,
           batches ? (double)handled / (double)batches : 0.0,
           (double)sb.st_size / 1e6);
    ingest_free(&ing);
    zmq_ctx_term(zctx);
    store_close(&st);
    return 0;
}

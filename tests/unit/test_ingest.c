/* ingest: a station DEALER (in this process, over ipc) sends good, duplicate, conflicting and
 * bad messages; each gets the documented ack and only good ones change the store. */
#include "common/ll_text.h"
#include "common/ll_time.h"
#include "daemon/ingest.h"
#include "daemon/sha256.h"
#include "daemon/store.h"
#include "ll_test.h"
#include "ll_test_messages.h"
#include "models/analysis.h"
#include "models/measurement.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct fixture {
    int skip_analysis; /* exchange() leaves the analysis phase to the test */
    void *zctx;
    struct store *store;
    struct ingest *ing;
    void *dealer;
    int64_t exp_id, step_id;
    int hook_calls;
    double last_pce;
    char last_error[256]; /* the analysis error the hook was given, "" when none */
    char db_path[600];
};

static int on_measured(void *ctx,
                       int64_t experiment_id,
                       int64_t step_id,
                       int64_t measurement_id,
                       const struct measurement *m,
                       const struct analysis *a,
                       const char *analysis_error,
                       struct ll_error *reterr)
{
    (void)experiment_id, (void)step_id, (void)measurement_id, (void)m, (void)reterr;
    struct fixture *f = ctx;
    f->hook_calls++;
    snprintf(f->last_error, sizeof(f->last_error), "%s", analysis_error ? analysis_error : "");
    if (a != NULL)
        analysis_get(a, "jv.pce_pct", &f->last_pce);
    return 0;
}

static char *jv_message(int64_t seq, const char *request, const char *sample, double jsc)
{
    char *t = ll_test_jv_message("jv-1", seq, request, sample, jsc);
    assert_non_null(t);
    return t;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *dir = ll_test_tmpdir();
    char path[600], ep[600];
    snprintf(path, sizeof(path), "%s/ingest.db", dir);
    snprintf(f->db_path, sizeof(f->db_path), "%s", path);
    struct ll_error err;
    ll_error_clear(&err);
    assert_int_equal(store_open(path, &f->store, &err), 0);
    int64_t c = 0;
    assert_int_equal(store_campaign_create(f->store, "t", "x", "auto", &c, &err), 0);
    json_t *p = json_object();
    assert_int_equal(store_experiment_create(f->store, c, 0, 0, 0, p, 0, &f->exp_id, &err), 0);
    json_t *sp = json_pack("{s:s}", "kind", "jv");
    assert_int_equal(
        store_step_create(
            f->store, f->exp_id, 0, "jv-1", "measure", sp, 20000, "r-1", &f->step_id, &err),
        0);
    json_decref(sp);
    json_decref(p);
    f->zctx = zmq_ctx_new();
    snprintf(ep, sizeof(ep), "ipc://%s/stations", dir);
    struct ingest_options opt = {
        .endpoint = ep, .group_commit_ms = 2, .on_measured = on_measured, .ctx = f};
    if (ingest_new(f->zctx, f->store, &opt, &f->ing, &err) != 0)
        fail_msg("ingest_new: %s", err.msg);
    f->dealer = zmq_socket(f->zctx, ZMQ_DEALER);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(f->dealer, ZMQ_ROUTING_ID, "jv-1", 4);
    zmq_setsockopt(f->dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(f->dealer, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    assert_int_equal(zmq_connect(f->dealer, ep), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    zmq_close(f->dealer);
    ingest_free(&f->ing);
    zmq_ctx_term(f->zctx);
    store_close(&f->store);
    free(f);
    return 0;
}

/* Sends one frame, runs ingest until it has handled it, and returns the parsed ack (or NULL
 * when expect_ack is 0 and nothing came). */
static json_t *exchange(struct fixture *f, const void *data, size_t len, int expect_ack)
{
    assert_true(zmq_send(f->dealer, data, len, 0) >= 0);
    struct ll_error err;
    int handled = 0;
    for (int tries = 0; tries < 500 && handled == 0; tries++) {
        zmq_pollitem_t it = {.socket = ingest_socket(f->ing), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 10);
        handled = ingest_process(f->ing, &err);
        assert_true(handled >= 0);
    }
    assert_int_equal(handled, 1);
    while (!f->skip_analysis && ingest_analyse(f->ing, 16, &err) > 0)
        ;
    if (!expect_ack) {
        zmq_pollitem_t it = {.socket = f->dealer, .events = ZMQ_POLLIN};
        assert_int_equal(zmq_poll(&it, 1, 50), 0);
        return NULL;
    }
    char buf[4096];
    int n = zmq_recv(f->dealer, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    json_t *ack = json_loads(buf, 0, NULL);
    assert_non_null(ack);
    assert_string_equal(json_string_value(json_object_get(ack, "type")), "ack");
    return ack;
}

static const char *status_of(json_t *ack)
{
    return json_string_value(json_object_get(ack, "status"));
}

static void counts(struct fixture *f, int64_t *stored, int64_t *rejected)
{
    struct ll_error err;
    assert_int_equal(store_measurement_counts(f->store, stored, rejected, &err), 0);
}

/* Adds a measure step (index idx, request `request`, kind) to the fixture's experiment. */
static void measure_step(struct fixture *f, int idx, const char *kind, const char *request)
{
    struct ll_error err;
    int64_t id = 0;
    json_t *sp = json_pack("{s:s}", "kind", kind);
    assert_int_equal(
        store_step_create(
            f->store, f->exp_id, idx, "jv-1", "measure", sp, 20000, request, &id, &err),
        0);
    json_decref(sp);
}

static void test_ingest_stores_once_and_answers_duplicate(void **state)
{
    struct fixture *f = *state;
    const char *hello = "{\"v\":1,\"type\":\"hello\",\"station\":\"jv-1\",\"kinds\":[\"jv\"]}";
    exchange(f, hello, strlen(hello), 0);
    char *msg = jv_message(1, "r-1", "S000001", 22.0);
    json_t *ack = exchange(f, msg, strlen(msg), 1);
    assert_string_equal(status_of(ack), "stored");
    assert_int_equal(json_integer_value(json_object_get(ack, "seq")), 1);
    json_decref(ack);
    assert_int_equal(f->hook_calls, 1);
    assert_true(f->last_pce > 10.0 && f->last_pce < 30.0);
    ack = exchange(f, msg, strlen(msg), 1);
    assert_string_equal(status_of(ack), "duplicate");
    json_decref(ack);
    assert_int_equal(f->hook_calls, 1);
    free(msg);
    /* same seq, different payload: conflict, rejected, nothing replaced */
    msg = jv_message(1, "r-1", "S000001", 18.0);
    ack = exchange(f, msg, strlen(msg), 1);
    assert_string_equal(status_of(ack), "rejected");
    assert_non_null(strstr(json_string_value(json_object_get(ack, "reason")), "conflict"));
    json_decref(ack);
    free(msg);
    int64_t stored, rejected;
    counts(f, &stored, &rejected);
    assert_int_equal(stored, 1);
    assert_int_equal(rejected, 1);
    struct ll_error err;
    json_t *ex = store_experiments_json(f->store, 0, &err);
    json_t *st = ingest_stations_json(f->ing);
    assert_int_equal(json_array_size(st), 1);
    assert_true(json_is_true(json_object_get(json_array_get(st, 0), "online")));
    json_decref(st);
    json_decref(ex);
}

/* B12: a station whose clock is years off is stored anyway, with one warning event (not one
 * per message) and its skew in the station list. */
static void test_ingest_warns_once_about_a_skewed_station_clock(void **state)
{
    struct fixture *f = *state;
    struct ll_error err;
    ll_error_clear(&err);
    measure_step(f, 1, "jv", "r-2");
    measure_step(f, 2, "jv", "r-3");
    const char *reqs[] = {"r-1", "r-2"};
    for (int i = 0; i < 2; i++) {
        char *msg =
            ll_test_jv_message_at("jv-1", i + 1, reqs[i], "S000001", 22.0, "2019-01-01T00:00:00Z");
        assert_non_null(msg);
        json_t *ack = exchange(f, msg, strlen(msg), 1);
        assert_string_equal(status_of(ack), "stored");
        json_decref(ack);
        free(msg);
    }
    json_t *ev = store_events_json(f->store, 0, 100, &err);
    assert_non_null(ev);
    int warnings = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "kind")), "ingest.clock") == 0) {
            warnings++;
            assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "2019-01-01"));
        }
    }
    json_decref(ev);
    assert_int_equal(warnings, 1);
    json_t *st = ingest_stations_json(f->ing);
    double skew = json_real_value(json_object_get(json_array_get(st, 0), "clock_skew_s"));
    assert_true(skew < -7.0 * 365 * 86400 && skew > -9.0 * 365 * 86400);
    json_decref(st);
    /* a message with the right time: no warning, skew near 0 */
    char *msg = ll_test_jv_message("jv-1", 3, "r-3", "S000001", 22.0);
    json_decref(exchange(f, msg, strlen(msg), 1));
    free(msg);
    st = ingest_stations_json(f->ing);
    assert_true(fabs(json_real_value(json_object_get(json_array_get(st, 0), "clock_skew_s"))) <
                5.0);
    json_decref(st);
}

/* msg with "epoch": epoch added (a new string; msg is freed). */
static char *with_epoch(char *msg, const char *epoch)
{
    json_t *o = json_loads(msg, 0, NULL);
    assert_non_null(o);
    json_object_set_new(o, "epoch", json_string(epoch));
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(msg);
    return t;
}

/* How many events of a kind, and whether one of them holds the text. */
static int events_of(struct fixture *f, const char *kind, const char *text)
{
    struct ll_error err;
    json_t *ev = store_events_json(f->store, 0, 100, &err);
    assert_non_null(ev);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "kind")), kind) == 0 &&
            (text == NULL || strstr(json_string_value(json_object_get(e, "message")), text)))
            n++;
    }
    json_decref(ev);
    return n;
}

/* F12 / B6: a station that lost its sequence state starts at seq 1 again. Under a new epoch its
 * measurements are new (stored, not a false conflict or duplicate), with one event saying so;
 * without one the same seq with another payload stays a conflict, with an alarm event. Acks
 * carry the epoch of the message they answer. */
static void test_ingest_new_epoch_restarts_seq_without_conflict(void **state)
{
    struct fixture *f = *state;
    measure_step(f, 1, "jv", "r-2");
    char *old = jv_message(1, "r-1", "S000001", 22.0);
    json_t *ack = exchange(f, old, strlen(old), 1);
    assert_string_equal(status_of(ack), "stored");
    assert_null(json_object_get(ack, "epoch")); /* none sent, none answered */
    json_decref(ack);
    /* the station lost its state: seq 1 again, another request, a new epoch */
    char *fresh = with_epoch(jv_message(1, "r-2", "S000001", 18.0), "b1");
    ack = exchange(f, fresh, strlen(fresh), 1);
    assert_string_equal(status_of(ack), "stored");
    assert_string_equal(json_string_value(json_object_get(ack, "epoch")), "b1");
    assert_int_equal(json_integer_value(json_object_get(ack, "seq")), 1);
    json_decref(ack);
    assert_int_equal(events_of(f, "ingest.epoch", "new sequence epoch 'b1' at seq 1"), 1);
    assert_int_equal(events_of(f, "ingest.epoch", "ended at seq 1"), 1);
    /* resent: a duplicate of its own epoch, and no second epoch event */
    ack = exchange(f, fresh, strlen(fresh), 1);
    assert_string_equal(status_of(ack), "duplicate");
    assert_string_equal(json_string_value(json_object_get(ack, "epoch")), "b1");
    json_decref(ack);
    /* the old epoch's message resent late is still its duplicate */
    ack = exchange(f, old, strlen(old), 1);
    assert_string_equal(status_of(ack), "duplicate");
    json_decref(ack);
    assert_int_equal(f->hook_calls, 2);
    /* within an epoch, the same seq with another payload is a conflict, with an alarm */
    assert_int_equal(events_of(f, "ingest.conflict", NULL), 0);
    char *clash = with_epoch(jv_message(1, "r-2", "S000001", 15.0), "b1");
    ack = exchange(f, clash, strlen(clash), 1);
    assert_string_equal(status_of(ack), "rejected");
    assert_string_equal(json_string_value(json_object_get(ack, "epoch")), "b1");
    assert_non_null(strstr(json_string_value(json_object_get(ack, "reason")), "epoch 'b1'"));
    json_decref(ack);
    free(clash);
    /* and so is a station without epochs that starts again at seq 1 */
    clash = jv_message(1, "r-2", "S000001", 15.0);
    ack = exchange(f, clash, strlen(clash), 1);
    assert_string_equal(status_of(ack), "rejected");
    assert_non_null(strstr(json_string_value(json_object_get(ack, "reason")), "conflict"));
    json_decref(ack);
    free(clash);
    assert_int_equal(events_of(f, "ingest.conflict", "jv-1"), 2);
    /* an epoch that is not a name is rejected, naming the field */
    clash = with_epoch(jv_message(2, "r-2", "S000001", 15.0), "b 1");
    ack = exchange(f, clash, strlen(clash), 1);
    assert_string_equal(status_of(ack), "rejected");
    assert_non_null(strstr(json_string_value(json_object_get(ack, "reason")), "epoch:"));
    assert_null(json_object_get(ack, "epoch"));
    json_decref(ack);
    free(clash);
    int64_t stored, rejected;
    counts(f, &stored, &rejected);
    assert_int_equal(stored, 2);
    assert_int_equal(rejected, 3);
    free(old);
    free(fresh);
}

/* Heap bytes in use, from the allocator (ASan's when the test runs under it). */
#if defined(__SANITIZE_ADDRESS__)
#define LL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LL_TEST_ASAN 1
#endif
#endif
#ifdef LL_TEST_ASAN
#include <sanitizer/allocator_interface.h>
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

/* The "data" object of a stability series of n points (malloc'd). */
static char *stability_data(size_t n)
{
    size_t cap = 64 + n * 32, len = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    len += (size_t)snprintf(b + len, cap - len, "{\"time_h\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(b + len, cap - len, "%s%.4f", i ? "," : "", 0.02 * (double)i);
    len += (size_t)snprintf(b + len, cap - len, "],\"normalised_pce\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(
            b + len, cap - len, "%s%.6f", i ? "," : "", exp(-0.02 * (double)i / 1500.0));
    snprintf(b + len, cap - len, "]}");
    return b;
}

/* A stability message (seq N + 1) for request r-sN with the given data, padded with spaces to
 * pad_to bytes (0: no padding); malloc'd, its length in *ret_len. */
static char *stability_message(int seq, const char *data, size_t pad_to, size_t *ret_len)
{
    size_t cap = 256 + strlen(data) + pad_to;
    char *b = malloc(cap);
    assert_non_null(b);
    size_t len = (size_t)snprintf(b,
                                  cap,
                                  "{\"v\":1,\"type\":\"measurement\",\"station\":\"jv-1\","
                                  "\"seq\":%d,\"request\":\"r-s%d\",\"kind\":\"stability\","
                                  "\"sample\":\"S000001\",\"time\":\"2026-11-26T10:00:00Z\","
                                  "\"data\":%s",
                                  seq + 1,
                                  seq,
                                  data);
    while (len + 1 < pad_to)
        b[len++] = ' ';
    b[len++] = '}';
    b[len] = '\0';
    *ret_len = len;
    return b;
}

/* L3: large payloads. 100 stability series of about 1 MiB each, and one message of exactly the
 * documented limit, are stored and analysed; one byte more is `rejected: oversize`; afterwards
 * the heap in use is back at its level before the series (nothing held per message). Under
 * ASan, whose allocator makes jansson's one allocation per number slow, 25 series (30 s for
 * 100; the gcc unit run in CI does all 100). */
#ifdef LL_TEST_ASAN
#define L3_SERIES 25
#else
#define L3_SERIES 100
#endif
static void test_ingest_large_series_stored_and_memory_returns(void **state)
{
    struct fixture *f = *state;
    struct ll_error err;
    for (int i = 0; i <= 102; i++) {
        char req[32];
        snprintf(req, sizeof(req), "r-s%d", i);
        measure_step(f, 10 + i, "stability", req);
    }
    /* warm up (caches, the socket's buffers) with one series, then take the baseline */
    size_t len = 0;
    char *series = stability_data(59000), *longest = stability_data(100000);
    char *msg = stability_message(0, series, 0, &len);
    json_t *ack = exchange(f, msg, len, 1);
    assert_string_equal(status_of(ack), "stored");
    json_decref(ack);
    free(msg);
    size_t held = strlen(series) + strlen(longest) + 2; /* freed before the second reading */
    size_t base = heap_in_use() - held;
    int64_t t0 = ll_monotonic_ms();
    size_t bytes = 0;
    for (int i = 1; i <= L3_SERIES; i++) {
        msg = stability_message(i, series, 0, &len);
        assert_true(len > 1048576 && len < 1100000);
        bytes += len;
        ack = exchange(f, msg, len, 1);
        assert_string_equal(status_of(ack), "stored");
        json_decref(ack);
        free(msg);
    }
    int64_t t1 = ll_monotonic_ms();
    msg = stability_message(101, longest, MEASUREMENT_MAX_BYTES, &len);
    assert_int_equal(len, MEASUREMENT_MAX_BYTES);
    ack = exchange(f, msg, len, 1);
    assert_string_equal(status_of(ack), "stored");
    json_decref(ack);
    free(msg);
    msg = stability_message(102, longest, MEASUREMENT_MAX_BYTES + 1, &len);
    ack = exchange(f, msg, len, 1);
    assert_string_equal(status_of(ack), "rejected");
    assert_string_equal(json_string_value(json_object_get(ack, "reason")), "oversize");
    json_decref(ack);
    free(msg);
    free(series);
    free(longest);
    size_t after = heap_in_use();
    json_t *rows = store_measurements_json(f->store, 0, 200, &err);
    assert_int_equal(json_array_size(rows), L3_SERIES + 2);
    size_t i;
    json_t *x;
    json_array_foreach(rows, i, x)
    {
        assert_string_equal(json_string_value(json_object_get(x, "status")), "ok");
        assert_non_null(json_object_get(json_object_get(x, "derived"), "t80_h"));
    }
    json_decref(rows);
    printf("L3: %d series, %.1f MiB, stored and analysed in %.2f s (%.1f MiB/s); heap in use "
           "%.2f MiB before, %.2f MiB after\n",
           L3_SERIES,
           (double)bytes / 1048576.0,
           (double)(t1 - t0) / 1000.0,
           (double)bytes / 1048576.0 / ((double)(t1 - t0 + 1) / 1000.0),
           (double)base / 1048576.0,
           (double)after / 1048576.0);
    assert_true(after < base + 2 * 1048576);
}

/* B5: a well-formed measurement the analysis cannot use (a J-V curve that never crosses V = 0)
 * is acked `stored` and kept raw, byte for byte; the analysis error reaches the hook, and the
 * measurement lists with status "failed" and nothing derived. */
/* An analysis warning (here a sweep that repeats a voltage) is kept beside the numbers: an
 * analysis.warning event names the measurement, its sample and the warning. */
static void test_ingest_records_analysis_warnings(void **state)
{
    struct fixture *f = *state;
    static const char msg[] =
        "{\"v\": 1, \"type\": \"measurement\", \"station\": \"jv-1\", \"seq\": 4, \"request\": "
        "\"r-1\", \"kind\": \"jv\", \"sample\": \"S000001\", \"time\": \"2026-11-26T10:00:00Z\", "
        "\"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, \"sweeps\": [{\"direction\": "
        "\"reverse\", \"voltage_v\": [1.1, 0.9, 0.7, 0.5, 0.5, 0.1, 0.0, -0.1], "
        "\"current_ma_cm2\": [-2, 10, 18, 20, 20.2, 21.5, 22, 22.1]}]}}";
    json_t *ack = exchange(f, msg, strlen(msg), 1);
    assert_string_equal(status_of(ack), "stored");
    json_decref(ack);
    assert_int_equal(f->hook_calls, 1);
    assert_true(f->last_pce > 5.0);
    struct ll_error err;
    json_t *ev = store_events_json(f->store, 0, 50, &err);
    int found = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        const char *kind = json_string_value(json_object_get(e, "kind"));
        const char *text = json_string_value(json_object_get(e, "message"));
        if (kind != NULL && strcmp(kind, "analysis.warning") == 0) {
            found++;
            assert_non_null(strstr(text, "(jv, sample S000001): data.sweeps[0]: 1 point repeats"));
        }
    }
    json_decref(ev);
    assert_int_equal(found, 1);
}

static void test_ingest_keeps_unanalysable_measurement_raw(void **state)
{
    struct fixture *f = *state;
    static const char msg[] =
        "{\"v\": 1, \"type\": \"measurement\", \"station\": \"jv-1\", \"seq\": 4, \"request\": "
        "\"r-1\", \"kind\": \"jv\", \"sample\": \"S000001\", \"time\": \"2026-11-26T10:00:00Z\", "
        "\"data\": {\"irradiance_mw_cm2\": 100, \"area_cm2\": 0.09, \"sweeps\": [{\"direction\": "
        "\"reverse\", \"voltage_v\": [1.2, 1.0, 0.5], \"current_ma_cm2\": [-3, 5, 20]}]}}";
    json_t *ack = exchange(f, msg, strlen(msg), 1);
    assert_string_equal(status_of(ack), "stored");
    json_decref(ack);
    assert_int_equal(f->hook_calls, 1);
    assert_non_null(strstr(f->last_error, "never crosses V = 0"));
    struct ll_error err;
    json_t *rows = store_measurements_json(f->store, 0, 10, &err);
    assert_int_equal(json_array_size(rows), 1);
    json_t *x = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(x, "status")), "failed");
    assert_int_equal(json_object_size(json_object_get(x, "derived")), 0);
    char hex[SHA256_HEX_LEN];
    sha256_hex(msg, strlen(msg), hex);
    assert_string_equal(json_string_value(json_object_get(x, "hash")), hex);
    assert_int_equal(json_integer_value(json_object_get(x, "bytes")), (json_int_t)strlen(msg));
    json_decref(rows);
}

/* A connection whose identity is not UTF-8 (any bytes are allowed by ZeroMQ) sends garbage:
 * the rejection is stored with the station name made UTF-8 ('?' for the bad bytes), so the
 * listing (JSON) and every reader of the store can show it. */
static void test_ingest_rejection_from_non_utf8_identity_is_readable(void **state)
{
    struct fixture *f = *state;
    void *odd = zmq_socket(f->zctx, ZMQ_DEALER);
    int zero = 0, timeout = 5000;
    static const char id[] = "st\xff\xfe-1";
    zmq_setsockopt(odd, ZMQ_ROUTING_ID, id, sizeof(id) - 1);
    zmq_setsockopt(odd, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(odd, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    char ep[600];
    size_t eplen = sizeof(ep);
    assert_int_equal(zmq_getsockopt(ingest_socket(f->ing), ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
    assert_int_equal(zmq_connect(odd, ep), 0);
    assert_true(zmq_send(odd, "\x01 not json", 10, 0) >= 0);
    struct ll_error err;
    int handled = 0;
    for (int tries = 0; tries < 500 && handled == 0; tries++) {
        zmq_pollitem_t it = {.socket = ingest_socket(f->ing), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 10);
        handled = ingest_process(f->ing, &err);
        assert_true(handled >= 0);
    }
    assert_int_equal(handled, 1);
    char buf[1024];
    assert_true(zmq_recv(odd, buf, sizeof(buf), 0) > 0); /* answered rejected */
    zmq_close(odd);
    json_t *rows = store_rejections_json(f->store, 10, &err);
    assert_non_null(rows);
    assert_int_equal(json_array_size(rows), 1);
    const char *station = json_string_value(json_object_get(json_array_get(rows, 0), "station"));
    assert_non_null(station);
    assert_string_equal(station, "st?\?-1");
    json_decref(rows);
    /* the stored bytes themselves, as any reader of the database sees them */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT station, reason FROM rejections", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "st?\?-1");
    char reason[512];
    snprintf(reason, sizeof(reason), "%s", (const char *)sqlite3_column_text(st, 1));
    assert_int_equal(ll_utf8_sanitize(reason), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_ingest_rejects_bad_input_and_changes_nothing_else(void **state)
{
    struct fixture *f = *state;
    struct {
        const char *what;
        const char *text;
        const char *reason_part;
        int64_t seq;
    } cases[] = {
        {"garbage",            "\x01\x02not json{{",                                    "",                0},
        {"wrong version",      "{\"v\":2,\"type\":\"heartbeat\",\"station\":\"jv-1\"}", "v",               0},
        {"NaN text",           NULL,                                                    "",                5},
        {"unknown request",    NULL,                                                    "unknown request", 6},
        {"wrong sample",       NULL,                                                    "sample",          7},
        {"other station name", NULL,                                                    "station",         8},
    };
    char *generated[4];
    generated[0] = jv_message(5, "r-1", "S000001", 22.0);
    char *nan_at = strstr(generated[0], "\"current_ma_cm2\":[") + strlen("\"current_ma_cm2\":[");
    char *comma = strchr(nan_at, ',');
    size_t head = (size_t)(nan_at - generated[0]);
    size_t with_nan_cap = strlen(generated[0]) + 8;
    char *with_nan = malloc(with_nan_cap);
    assert_non_null(with_nan);
    snprintf(with_nan, with_nan_cap, "%.*s\"NaN\"%s", (int)head, generated[0], comma);
    free(generated[0]);
    generated[0] = with_nan;
    cases[2].text = generated[0];
    generated[1] = jv_message(6, "r-999", "S000001", 22.0);
    cases[3].text = generated[1];
    generated[2] = jv_message(7, "r-1", "S999999", 22.0);
    cases[4].text = generated[2];
    char *other = jv_message(8, "r-1", "S000001", 22.0);
    char *pos = strstr(other, "\"jv-1\"");
    /* overwrites 6 bytes inside the string: the terminator stays where it was */
    memcpy(pos, "\"jv-9\"", 6); // NOLINT(bugprone-not-null-terminated-result)
    generated[3] = other;
    cases[5].text = other;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *ack = exchange(f, cases[i].text, strlen(cases[i].text), 1);
        if (strcmp(status_of(ack), "rejected") != 0)
            fail_msg("%s: got %s", cases[i].what, status_of(ack));
        const char *reason = json_string_value(json_object_get(ack, "reason"));
        assert_non_null(reason);
        if (strstr(reason, cases[i].reason_part) == NULL)
            fail_msg("%s: reason '%s'", cases[i].what, reason);
        assert_int_equal(json_integer_value(json_object_get(ack, "seq")), cases[i].seq);
        json_decref(ack);
    }
    for (int i = 0; i < 4; i++)
        free(generated[i]);
    /* oversize: 5 MiB of spaces around a valid message */
    size_t big = 5u * 1024 * 1024;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    /* a frame with an explicit length, not a C string: no terminator wanted */
    memcpy(huge, "{\"v\":1,", 7); // NOLINT(bugprone-not-null-terminated-result)
    huge[big - 1] = '}';
    json_t *ack = exchange(f, huge, big, 1);
    assert_string_equal(status_of(ack), "rejected");
    assert_string_equal(json_string_value(json_object_get(ack, "reason")), "oversize");
    json_decref(ack);
    free(huge);
    /* a two-frame message */
    zmq_send(f->dealer, "{}", 2, ZMQ_SNDMORE);
    ack = exchange(f, "{}", 2, 1);
    assert_string_equal(status_of(ack), "rejected");
    json_decref(ack);
    int64_t stored, rejected;
    counts(f, &stored, &rejected);
    assert_int_equal(stored, 0);
    assert_int_equal(rejected, 8);
    assert_int_equal(f->hook_calls, 0);
    struct ll_error err;
    assert_int_equal(store_step_get_state(f->store, f->step_id, &err), STORE_STEP_PENDING);
}

static void test_ingest_sends_measure_and_refuses_unknown_station(void **state)
{
    struct fixture *f = *state;
    const char *hb = "{\"v\":1,\"type\":\"heartbeat\",\"station\":\"jv-1\"}";
    exchange(f, hb, strlen(hb), 0);
    struct ll_error err;
    assert_int_equal(
        ingest_send_measure(f->ing, "jv-1", "r-1", f->exp_id, "S000001", "jv", NULL, &err), 0);
    char buf[1024];
    int n = zmq_recv(f->dealer, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    json_t *m = json_loads(buf, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(m, "type")), "measure");
    assert_string_equal(json_string_value(json_object_get(m, "request")), "r-1");
    assert_true(json_is_object(json_object_get(m, "protocol")));
    json_decref(m);
    assert_int_equal(
        ingest_send_measure(f->ing, "nobody", "r-2", f->exp_id, "S000001", "jv", NULL, &err),
        -EHOSTUNREACH);
}

static void test_ingest_acked_but_unanalysed_survives_a_restart(void **state)
{
    struct fixture *f = *state;
    f->skip_analysis = 1;
    char *msg = jv_message(1, "r-1", "S000001", 22.0);
    json_t *ack = exchange(f, msg, strlen(msg), 1);
    assert_string_equal(status_of(ack), "stored");
    json_decref(ack);
    free(msg);
    assert_int_equal(f->hook_calls, 0); /* acked before any analysis */
    /* "crash": the ingest goes away before its analysis phase ran */
    ingest_free(&f->ing);
    struct ll_error err;
    char ep[600];
    snprintf(ep, sizeof(ep), "ipc://%s/stations2", ll_test_tmpdir());
    struct ingest_options opt = {
        .endpoint = ep, .group_commit_ms = 2, .on_measured = on_measured, .ctx = f};
    assert_int_equal(ingest_new(f->zctx, f->store, &opt, &f->ing, &err), 0);
    assert_int_equal(ingest_analyse(f->ing, 16, &err), 1);
    assert_int_equal(f->hook_calls, 1);
    assert_true(f->last_pce > 10.0);
    assert_int_equal(ingest_analyse(f->ing, 16, &err), 0); /* exactly once */
    assert_int_equal(f->hook_calls, 1);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_ingest_stores_once_and_answers_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_new_epoch_restarts_seq_without_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_records_analysis_warnings, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_keeps_unanalysable_measurement_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_large_series_stored_and_memory_returns, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_rejects_bad_input_and_changes_nothing_else, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_rejection_from_non_utf8_identity_is_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_warns_once_about_a_skewed_station_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_acked_but_unanalysed_survives_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ingest_sends_measure_and_refuses_unknown_station, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_oom — F20: out of memory along the path of a station's measurement (reliability.md).
 *
 * The idea is SQLite's own "OOM loop": run one operation with its nth allocation failing, for
 * n = 1, 2, 3 ... until the operation completes without reaching an nth allocation, and check
 * after every run that nothing broke. The operation is what labloopd does with one measurement:
 * ingest_process() (receive it over ZeroMQ, parse it with measurement_parse(), look its request
 * up, store the raw text, commit, ack) and then ingest_analyse() (parse the stored text again,
 * analysis_run() with the J-V, impedance or stability model, store every derived number, call
 * the hook, commit).
 *
 * One counter numbers every allocation of the operation, whoever asks for it:
 *   - our code's malloc, calloc, realloc and strdup, and the GSL matrices, vectors and
 *     workspaces models/ asks for: this program is linked with -Wl,--wrap=... for each
 *     (tests/CMakeLists.txt), which sends the calls to the __wrap_ functions below and leaves
 *     ASan's allocator underneath;
 *   - jansson's, through json_set_alloc_funcs() (daemon/jsonmem.c chains its own in front);
 *   - SQLite's, through SQLITE_CONFIG_MALLOC around SQLite's default allocator.
 * Not counted: libzmq's allocations, and those GSL makes inside its own routines.
 *
 * After each run, whether the failure was absorbed or not:
 *   - no crash; ASan's leak checker stays quiet at exit (the test runs under ASan in CI);
 *   - a call that failed returned -ENOMEM with a message naming what failed ("ingest: analysing
 *     measurement 7: data.sweeps[0]: out of memory"), not a bare "out of memory";
 *   - no partial rows: the measurement is not stored at all (the batch failed), or stored and
 *     not analysed with no derived number (the analysis failed), or stored and analysed with
 *     exactly the derived numbers of a run without failures (bit for bit); an out-of-memory is
 *     never a rejection, never an "analysis failed" and never a different number; nothing is
 *     left in a transaction; PRAGMA integrity_check is ok;
 *   - acks: a batch that failed sent none; the station's resend is acked `stored` once;
 *   - the same measurement resent with allocations working is stored and analysed, every
 *     measurement stored before is still there with its numbers, and ingest's counters per
 *     station agree with the store.
 * One small measurement of each kind (J-V, impedance, stability), numbers written with 17
 * significant digits as stations write them, each in a fresh store.
 *
 * LL_OOM_TRACE=1 prints the stack of every injected failure (ASan builds); LL_OOM_SITES=1 lists
 * the call sites as offsets for `addr2line -f -e test_oom`.
 */
#include "common/ll_time.h"
#include "daemon/commands.h"
#include "daemon/ingest.h"
#include "daemon/log.h"
#include "daemon/store.h"
#include "ll_test.h"
#include "models/synth.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_vector.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ---- the failing allocator ------------------------------------------------------------------ */

enum oom_source { SRC_OURS, SRC_GSL, SRC_JANSSON, SRC_SQLITE, SRC_N };
static const char *const source_names[SRC_N] = {"labloop", "GSL", "jansson", "SQLite"};

#define MAX_SITES 1024
#define MAX_FRAMES 32

/* The test program's own state; the code under test keeps none. */
static struct {
    int armed;      /* count allocations, and fail the fail_at-th */
    long count;     /* allocations since arming */
    long fail_at;   /* 0: none fails */
    int failed;     /* the fail_at-th allocation came (and failed) */
    int in_capture; /* inside backtrace(): its own allocations go through */
    int trace;      /* LL_OOM_TRACE: print the stack of each injected failure */
    long allocations[SRC_N];
    long failures[SRC_N];
    /* the distinct places in our code whose allocation was failed */
    const void *sites[MAX_SITES];
    enum oom_source site_source[MAX_SITES];
    size_t n_sites;
} oom;

/* the bounds of this program's code, from the linker (which gives the name) */
// NOLINTNEXTLINE(bugprone-reserved-identifier)
extern char __executable_start[], etext[];

static int in_program(const void *pc)
{
    return (const char *)pc >= __executable_start && (const char *)pc < etext;
}

#if defined(__SANITIZE_ADDRESS__)
#define OOM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OOM_ASAN 1
#endif
#endif
#ifdef OOM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* Where our code asked a library for what failed: the first frame of this program under the
 * library's frames (the call into jansson or SQLite). */
static const void *library_caller(void)
{
    void *frames[MAX_FRAMES];
    int n = backtrace(frames, MAX_FRAMES);
    int seen_library = 0;
    for (int i = 0; i < n; i++) {
        if (!in_program(frames[i]))
            seen_library = 1;
        else if (seen_library)
            return frames[i];
    }
    return NULL;
}

static void record_failure(enum oom_source src, const void *site)
{
    oom.in_capture = 1;
    if (site == NULL)
        site = library_caller();
    oom.failures[src]++;
    size_t i = 0;
    while (i < oom.n_sites && !(oom.sites[i] == site && oom.site_source[i] == src))
        i++;
    if (i == oom.n_sites && i < MAX_SITES) {
        oom.sites[i] = site;
        oom.site_source[i] = src;
        oom.n_sites++;
    }
#ifdef OOM_ASAN
    if (oom.trace) {
        fprintf(
            stderr, "injected failure of allocation %ld (%s):\n", oom.fail_at, source_names[src]);
        __sanitizer_print_stack_trace();
    }
#endif
    oom.in_capture = 0;
}

/* Counts one allocation; 1 when it is the one to fail. site: the caller for our code's own
 * allocations, NULL for those made inside a library. */
static int should_fail(enum oom_source src, const void *site)
{
    if (!oom.armed || oom.in_capture)
        return 0;
    oom.allocations[src]++;
    if (++oom.count != oom.fail_at)
        return 0;
    oom.failed = 1;
    record_failure(src, site);
    return 1;
}

static void arm(long fail_at)
{
    oom.count = 0;
    oom.fail_at = fail_at;
    oom.failed = 0;
    oom.armed = 1;
}

static void disarm(void)
{
    oom.armed = 0;
}

#define CALLER __builtin_return_address(0)

/* -Wl,--wrap=NAME sends this program's calls of NAME to __wrap_NAME; __real_NAME is the real
 * one (ASan's malloc under the sanitizer). The linker gives these names. */
// NOLINTBEGIN(bugprone-reserved-identifier)
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
gsl_matrix *__real_gsl_matrix_alloc(size_t n1, size_t n2);
gsl_vector *__real_gsl_vector_alloc(size_t n);
gsl_multifit_linear_workspace *__real_gsl_multifit_linear_alloc(size_t n, size_t p);
gsl_multifit_nlinear_workspace *
__real_gsl_multifit_nlinear_alloc(const gsl_multifit_nlinear_type *type,
                                  const gsl_multifit_nlinear_parameters *params,
                                  size_t n,
                                  size_t p);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);
gsl_matrix *__wrap_gsl_matrix_alloc(size_t n1, size_t n2);
gsl_vector *__wrap_gsl_vector_alloc(size_t n);
gsl_multifit_linear_workspace *__wrap_gsl_multifit_linear_alloc(size_t n, size_t p);
gsl_multifit_nlinear_workspace *
__wrap_gsl_multifit_nlinear_alloc(const gsl_multifit_nlinear_type *type,
                                  const gsl_multifit_nlinear_parameters *params,
                                  size_t n,
                                  size_t p);

// NOLINTEND(bugprone-reserved-identifier)

void *__wrap_malloc(size_t size)
{
    return should_fail(SRC_OURS, CALLER) ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail(SRC_OURS, CALLER) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return should_fail(SRC_OURS, CALLER) ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
    return should_fail(SRC_OURS, CALLER) ? NULL : __real_strdup(s);
}

gsl_matrix *__wrap_gsl_matrix_alloc(size_t n1, size_t n2)
{
    return should_fail(SRC_GSL, CALLER) ? NULL : __real_gsl_matrix_alloc(n1, n2);
}

gsl_vector *__wrap_gsl_vector_alloc(size_t n)
{
    return should_fail(SRC_GSL, CALLER) ? NULL : __real_gsl_vector_alloc(n);
}

gsl_multifit_linear_workspace *__wrap_gsl_multifit_linear_alloc(size_t n, size_t p)
{
    return should_fail(SRC_GSL, CALLER) ? NULL : __real_gsl_multifit_linear_alloc(n, p);
}

gsl_multifit_nlinear_workspace *
__wrap_gsl_multifit_nlinear_alloc(const gsl_multifit_nlinear_type *type,
                                  const gsl_multifit_nlinear_parameters *params,
                                  size_t n,
                                  size_t p)
{
    return should_fail(SRC_GSL, CALLER) ? NULL
                                        : __real_gsl_multifit_nlinear_alloc(type, params, n, p);
}

static void *jansson_malloc(size_t size)
{
    return should_fail(SRC_JANSSON, NULL) ? NULL : __real_malloc(size);
}

static void jansson_free(void *p)
{
    free(p);
}

static sqlite3_mem_methods sqlite_default;

static void *sqlite_malloc(int size)
{
    return should_fail(SRC_SQLITE, NULL) ? NULL : sqlite_default.xMalloc(size);
}

static void *sqlite_realloc(void *p, int size)
{
    return should_fail(SRC_SQLITE, NULL) ? NULL : sqlite_default.xRealloc(p, size);
}

/* Before anything uses jansson or SQLite. */
static void install_allocators(void)
{
    void *frames[4];
    backtrace(frames, 4); /* loads the unwinder now, not during a counted allocation */
    json_set_alloc_funcs(jansson_malloc, jansson_free);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_default), SQLITE_OK);
    sqlite3_mem_methods m = sqlite_default;
    m.xMalloc = sqlite_malloc;
    m.xRealloc = sqlite_realloc;
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &m), SQLITE_OK);
}

/* ---- one small measurement of each kind ------------------------------------------------------ */

/* The "data" of a J-V measurement: one reverse sweep of a 18 % cell, 15 points. */
static json_t *jv_data(void)
{
    struct synth_diode d;
    struct ll_error err;
    assert_int_equal(synth_diode_for_target(1.6, 18.0, 100.0, 0.8, &d, &err), 0);
    enum { N = 15 };
    double v[N], j[N];
    struct synth_sweep_options opt = {.v_start_v = 1.4, .v_end_v = -0.1, .n_points = N};
    assert_int_equal(synth_jv_sweep(&d, &opt, NULL, v, j), 0);
    json_t *vv = json_array(), *jj = json_array();
    for (int i = 0; i < N; i++) {
        json_array_append_new(vv, json_real(v[i]));
        json_array_append_new(jj, json_real(j[i]));
    }
    return json_pack("{s:f,s:f,s:[{s:s,s:o,s:o}]}",
                     "irradiance_mw_cm2",
                     100.0,
                     "area_cm2",
                     0.09,
                     "sweeps",
                     "direction",
                     "reverse",
                     "voltage_v",
                     vv,
                     "current_ma_cm2",
                     jj);
}

/* An impedance spectrum of a pellet with grain boundaries, 10 frequencies, 0.2 % noise. */
static json_t *eis_data(void)
{
    struct synth_eis_circuit c;
    assert_int_equal(synth_eis_pellet(1e-6, 0.5, 0.1, 0.785, 30.0, &c), 0);
    enum { N = 10 };
    double f[N], re[N], im[N];
    assert_int_equal(synth_log_frequencies(1e6, 1.0, N, f), 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    assert_int_equal(synth_eis_spectrum(&c, f, N, 0.002, rng, re, im), 0);
    gsl_rng_free(rng);
    json_t *ff = json_array(), *rr = json_array(), *ii = json_array();
    for (int i = 0; i < N; i++) {
        json_array_append_new(ff, json_real(f[i]));
        json_array_append_new(rr, json_real(re[i]));
        json_array_append_new(ii, json_real(im[i]));
    }
    return json_pack("{s:f,s:f,s:[{s:f,s:o,s:o,s:o}]}",
                     "thickness_cm",
                     0.1,
                     "area_cm2",
                     0.785,
                     "spectra",
                     "temperature_c",
                     25.0,
                     "frequency_hz",
                     ff,
                     "z_real_ohm",
                     rr,
                     "z_imag_ohm",
                     ii);
}

/* A stability series of 8 points that stops before T80 (the prediction path). */
static json_t *stability_data(void)
{
    struct synth_degradation d;
    assert_int_equal(synth_degradation_for_t80(400.0, 0.0, 1.0, 1.0, &d), 0);
    enum { N = 8 };
    double t[N], pce[N];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    assert_int_equal(synth_degradation_series(&d, 250.0, N, 0.002, rng, t, pce), 0);
    gsl_rng_free(rng);
    json_t *tt = json_array(), *pp = json_array();
    for (int i = 0; i < N; i++) {
        json_array_append_new(tt, json_real(t[i]));
        json_array_append_new(pp, json_real(pce[i]));
    }
    return json_pack("{s:s,s:o,s:o}", "protocol", "ISOS-L-1", "time_h", tt, "normalised_pce", pp);
}

struct kind {
    const char *name;
    json_t *data;
    char time[32];        /* the messages' time: now, so that no clock warning is due */
    char reference[4096]; /* the derived numbers of a run without failures (derived_text()) */
};

/* The text (malloc'd) of a measurement message of kind k, numbers with 17 digits. */
static char *message(const struct kind *k, int64_t seq, const char *request, const char *sample)
{
    /* "data" before "time": the first token longer than 16 bytes is a number, so that the one
     * time jansson grows its token buffer, the token is a number (jsonmem.h) */
    json_t *m = json_pack("{s:i,s:s,s:s,s:I,s:s,s:s,s:s,s:O,s:s}",
                          "v",
                          1,
                          "type",
                          "measurement",
                          "station",
                          "st-1",
                          "seq",
                          (json_int_t)seq,
                          "request",
                          request,
                          "kind",
                          k->name,
                          "sample",
                          sample,
                          "data",
                          k->data,
                          "time",
                          k->time);
    assert_non_null(m);
    char *text = json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(m);
    assert_non_null(text);
    return text;
}

/* ---- fixture: a store, ingest on it, a station ------------------------------------------------
 */

struct fixture {
    struct kind *kind;
    char dir[256];
    char db_path[300];
    void *zctx;
    struct store *store;
    struct ingest *ing;
    void *dealer;  /* the station */
    sqlite3 *view; /* a second, read-only connection: what is committed */
    int64_t campaign_id;
    int n_experiments;
    int64_t seq;       /* the station's last seq */
    int64_t n_stored;  /* measurements the store must hold */
    int64_t n_derived; /* and derived numbers */
    char *first;       /* the first measurement stored, and its seq */
    int64_t first_seq;
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
    (void)ctx, (void)experiment_id, (void)step_id, (void)measurement_id, (void)m, (void)reterr;
    /* every message here is analysable: a failure can only be an injected one, and that must
     * never reach the campaign as "the analysis failed" */
    if (a == NULL)
        fail_msg("allocation %ld failed: the hook was told the analysis failed: %s",
                 oom.fail_at,
                 analysis_error);
    return 0;
}

/* A new experiment with one measure step of the fixture's kind; its request and sample ids
 * (32 bytes each). */
static void new_request(struct fixture *f, char *request, char *sample)
{
    struct ll_error err;
    int64_t exp_id = 0, step_id = 0;
    json_t *p = json_object();
    assert_int_equal(store_experiment_create(
                         f->store, f->campaign_id, f->n_experiments++, 0, -1, p, 0, &exp_id, &err),
                     0);
    json_decref(p);
    json_t *sp = json_pack("{s:s}", "kind", f->kind->name);
    snprintf(request, 32, "r-%lld", (long long)exp_id);
    snprintf(sample, 32, "S%06lld", (long long)exp_id);
    assert_int_equal(
        store_step_create(
            f->store, exp_id, 0, "st-1", "measure", sp, 20000, request, &step_id, &err),
        0);
    json_decref(sp);
}

/* The station sends text; returns once ingest's socket has it. */
static void send_text(struct fixture *f, const char *text)
{
    assert_true(zmq_send(f->dealer, text, strlen(text), 0) >= 0);
    zmq_pollitem_t it = {.socket = ingest_socket(f->ing), .events = ZMQ_POLLIN};
    assert_int_equal(zmq_poll(&it, 1, 5000), 1);
}

/* Sends text and has ingest process it, allocations working. */
static void deliver(struct fixture *f, const char *text)
{
    struct ll_error err;
    ll_error_clear(&err);
    send_text(f, text);
    int r = ingest_process(f->ing, &err);
    if (r != 1)
        fail_msg("ingest_process: %d %s", r, err.msg);
}

static void analyse_all(struct fixture *f)
{
    struct ll_error err;
    ll_error_clear(&err);
    int r;
    while ((r = ingest_analyse(f->ing, 16, &err)) > 0)
        ;
    if (r < 0)
        fail_msg("ingest_analyse: %d %s", r, err.msg);
}

/* The station's next ack: its seq and status ("stored" ...; 16 bytes). */
static void next_ack(struct fixture *f, int64_t *ret_seq, char *ret_status)
{
    char buf[4096];
    int n = zmq_recv(f->dealer, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    json_t *ack = json_loads(buf, 0, NULL);
    assert_non_null(ack);
    *ret_seq = json_integer_value(json_object_get(ack, "seq"));
    snprintf(ret_status, 16, "%s", json_string_value(json_object_get(ack, "status")));
    json_decref(ack);
}

static int64_t query_int(struct fixture *f, const char *sql, int64_t arg)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->view, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, arg);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A fresh store for one kind, ingest on it and a station: in /dev/shm when there is one (the
 * test is about memory, and a commit there costs no fsync), else in TMPDIR. */
static void fixture_open(struct fixture *f, struct kind *k)
{
    memset(f, 0, sizeof(*f));
    f->kind = k;
    snprintf(f->dir, sizeof(f->dir), "/dev/shm/labloop-oom-XXXXXX");
    if (access("/dev/shm", W_OK) != 0 || mkdtemp(f->dir) == NULL)
        snprintf(f->dir, sizeof(f->dir), "%s", ll_test_tmpdir());
    snprintf(f->db_path, sizeof(f->db_path), "%s/oom.db", f->dir);
    struct ll_error err;
    ll_error_clear(&err);
    assert_int_equal(store_open(f->db_path, &f->store, &err), 0);
    assert_int_equal(store_campaign_create(f->store, "oom", "x", "auto", &f->campaign_id, &err), 0);
    assert_int_equal(sqlite3_open_v2(f->db_path, &f->view, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    f->zctx = zmq_ctx_new();
    struct ingest_options opt = {
        .endpoint = "inproc://oom", .group_commit_ms = 0, .on_measured = on_measured, .ctx = f};
    if (ingest_new(f->zctx, f->store, &opt, &f->ing, &err) != 0)
        fail_msg("ingest_new: %s", err.msg);
    f->dealer = zmq_socket(f->zctx, ZMQ_DEALER);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(f->dealer, ZMQ_ROUTING_ID, "st-1", 4);
    zmq_setsockopt(f->dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(f->dealer, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    assert_int_equal(zmq_connect(f->dealer, "inproc://oom"), 0);
}

static void fixture_close(struct fixture *f)
{
    free(f->first);
    f->first = NULL;
    sqlite3_close(f->view);
    zmq_close(f->dealer);
    ingest_free(&f->ing);
    zmq_ctx_term(f->zctx);
    store_close(&f->store);
    static const char *const files[] = {"oom.db", "oom.db-wal", "oom.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
}

static struct kind kinds[3];

static int setup(void **state, struct kind *k)
{
    struct fixture *f = malloc(sizeof(*f));
    assert_non_null(f);
    fixture_open(f, k);
    *state = f;
    return 0;
}

static int setup_jv(void **state)
{
    return setup(state, &kinds[0]);
}

static int setup_eis(void **state)
{
    return setup(state, &kinds[1]);
}

static int setup_stability(void **state)
{
    return setup(state, &kinds[2]);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fixture_close(f);
    free(f);
    return 0;
}

/* ---- what the store holds -------------------------------------------------------------------- */

/* The measurement of seq: its id (0 when not stored) and whether it is analysed. */
static int64_t measurement_of(struct fixture *f, int64_t seq, int *ret_analysed)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->view,
                                        "SELECT id, analysed FROM measurements WHERE station = "
                                        "'st-1' AND epoch = '' AND seq = ?",
                                        -1,
                                        &st,
                                        NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    int64_t id = 0;
    *ret_analysed = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        *ret_analysed = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    return id;
}

/* Every derived number of a measurement, exactly ("name=value-in-hex version;" ...). */
static void derived_text(struct fixture *f, int64_t measurement_id, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->view,
                                        "SELECT name, value, analysis_version FROM derived WHERE "
                                        "measurement_id = ? ORDER BY name",
                                        -1,
                                        &st,
                                        NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, measurement_id);
    size_t len = 0;
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW && len < cap)
        len += (size_t)snprintf(out + len,
                                cap - len,
                                "%s=%a %s;",
                                (const char *)sqlite3_column_text(st, 0),
                                sqlite3_column_double(st, 1),
                                (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    assert_true(len < cap);
}

/* ingest's counters for the station agree with the store: a batch that was rolled back
 * counts nothing. */
static void check_station_counts(struct fixture *f, long n)
{
    json_t *st = ingest_stations_json(f->ing);
    json_t *s = json_array_get(st, 0);
    assert_non_null(s);
    json_int_t stored = json_integer_value(json_object_get(s, "stored"));
    json_int_t rejected = json_integer_value(json_object_get(s, "rejected"));
    json_decref(st);
    int64_t total_stored = 0, duplicate = 0, total_rejected = 0;
    ingest_counts(f->ing, &total_stored, &duplicate, &total_rejected);
    if (stored != f->n_stored || total_stored != f->n_stored || rejected != 0 ||
        total_rejected != 0)
        fail_msg("%s, allocation %ld failed: ingest counts %lld stored (station: %lld) and %lld "
                 "rejected (station: %lld); the store holds %lld and no rejection",
                 f->kind->name,
                 n,
                 (long long)total_stored,
                 (long long)stored,
                 (long long)total_rejected,
                 (long long)rejected,
                 (long long)f->n_stored);
}

/* ---- the loop -------------------------------------------------------------------------------- */

/* An out-of-memory is never the message's fault: nothing is rejected. */
static void check_no_rejection(struct fixture *f, long n)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->view, "SELECT reason FROM rejections", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        char reason[512];
        snprintf(reason, sizeof(reason), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        fail_msg("%s, allocation %ld failed: the measurement was rejected: %s",
                 f->kind->name,
                 n,
                 reason);
    }
    sqlite3_finalize(st);
}

/* A call that failed: -ENOMEM, and a message naming what ran out ("WHAT: ... out of memory"),
 * not a bare "out of memory". */
static void
check_error(struct fixture *f, long n, const char *call, int r, const struct ll_error *e)
{
    if (getenv("LL_OOM_MESSAGES") != NULL)
        printf("message %s: %s\n", call, e->msg);
    if (r != -ENOMEM || e->code != r || strstr(e->msg, "out of memory") == NULL ||
        strncmp(e->msg, "out of memory", 13) == 0)
        fail_msg("%s, allocation %ld failed: %s returned %d (%s) with \"%s\"",
                 f->kind->name,
                 n,
                 call,
                 r,
                 strerror(-r),
                 e->msg);
}

struct tally {
    long runs, failed_calls, absorbed, acks_not_sent;
    long allocations[SRC_N]; /* of the last run (the one that completed) */
};

/* The acks of a run, in order, after the station's resend: a batch that failed sent none, so
 * the resend is acked `stored`; one that committed sent `stored` (or nothing, when it could not
 * make its ack) before the resend's `duplicate`. An ack sent wrongly shows as one ack too many:
 * the next run (or check_no_ack_left()) gets an ack of another seq. */
static void check_acks(struct fixture *f, long n, int64_t seq, int committed, struct tally *t)
{
    int64_t aseq = 0;
    char first[16], second[16] = "";
    next_ack(f, &aseq, first);
    int ok = aseq == seq;
    if (ok && committed && strcmp(first, "stored") == 0) {
        next_ack(f, &aseq, second);
        ok = aseq == seq && strcmp(second, "duplicate") == 0;
    } else if (ok) {
        ok = strcmp(first, committed ? "duplicate" : "stored") == 0;
        t->acks_not_sent += committed;
    }
    if (!ok)
        fail_msg("%s, allocation %ld failed (the batch %s): acks '%s' '%s' (seq %lld, not %lld)",
                 f->kind->name,
                 n,
                 committed ? "committed" : "failed",
                 first,
                 second,
                 (long long)aseq,
                 (long long)seq);
}

/* No ack is left over: the first measurement, resent, is the next ack (`duplicate`). */
static void check_no_ack_left(struct fixture *f)
{
    deliver(f, f->first);
    int64_t aseq = 0;
    char st[16];
    next_ack(f, &aseq, st);
    assert_int_equal(aseq, f->first_seq);
    assert_string_equal(st, "duplicate");
}

/* One measurement with allocation n failing (0: none); returns whether n was reached. */
static int run_once(struct fixture *f, long n, struct tally *t)
{
    struct kind *k = f->kind;
    char request[32], sample[32];
    new_request(f, request, sample);
    int64_t seq = ++f->seq;
    char *text = message(k, seq, request, sample);
    send_text(f, text);

    struct ll_error perr, aerr;
    ll_error_clear(&perr);
    ll_error_clear(&aerr);
    long before[SRC_N];
    memcpy(before, oom.allocations, sizeof(before));
    arm(n);
    int rp = ingest_process(f->ing, &perr);
    int ra = rp > 0 ? ingest_analyse(f->ing, 16, &aerr) : 0;
    int hit = oom.failed;
    disarm();
    t->runs++;
    for (int i = 0; i < SRC_N; i++)
        t->allocations[i] = oom.allocations[i] - before[i];

    /* the calls: success, or -ENOMEM naming what failed */
    if (rp < 0)
        check_error(f, n, "ingest_process", rp, &perr);
    else if (rp != 1)
        fail_msg("%s, allocation %ld failed: ingest_process returned %d", k->name, n, rp);
    if (ra < 0)
        check_error(f, n, "ingest_analyse", ra, &aerr);
    check_no_rejection(f, n);
    if (rp > 0 && ra >= 0 && ra != 1)
        fail_msg("%s, allocation %ld failed: ingest_analyse returned %d (the measurement was "
                 "not found)",
                 k->name,
                 n,
                 ra);
    if (!hit && (rp < 0 || ra < 0))
        fail_msg("%s: a call failed with no allocation failing", k->name);
    t->failed_calls += rp < 0 || ra < 0;
    t->absorbed += hit && rp > 0 && ra > 0;

    /* the store: nothing of it, the raw text alone, or all of it exactly */
    int analysed = 0;
    int64_t id = measurement_of(f, seq, &analysed);
    char got[4096] = "";
    if (id != 0)
        derived_text(f, id, got, sizeof(got));
    if (rp < 0 && id != 0)
        fail_msg("%s, allocation %ld failed: the batch failed, yet it is stored", k->name, n);
    if (rp > 0 && id == 0)
        fail_msg(
            "%s, allocation %ld failed: the batch committed, yet nothing is stored", k->name, n);
    if (id != 0 && !analysed && got[0] != '\0')
        fail_msg(
            "%s, allocation %ld failed: not analysed, yet derived numbers: %s", k->name, n, got);
    if (ra < 0 && analysed)
        fail_msg("%s, allocation %ld failed: the analysis failed, yet it is marked analysed",
                 k->name,
                 n);
    if (n != 0 && id != 0 && analysed && strcmp(got, k->reference) != 0)
        fail_msg("%s, allocation %ld failed: analysed to\n  %s\nnot\n  %s",
                 k->name,
                 n,
                 got,
                 k->reference);
    struct ll_error err;
    ll_error_clear(&err);
    if (store_integrity_check(f->store, &err) != 0)
        fail_msg("%s, allocation %ld failed: %s", k->name, n, err.msg);
    /* nothing left inside a transaction: a new one can begin */
    if (store_begin(f->store, &err) != 0 || store_commit(f->store, &err) != 0)
        fail_msg("%s, allocation %ld failed: the store is stuck: %s", k->name, n, err.msg);

    /* the station resends (it got no ack, or it does not know): stored once, analysed */
    deliver(f, text);
    analyse_all(f);
    id = measurement_of(f, seq, &analysed);
    assert_true(id != 0 && analysed);
    derived_text(f, id, got, sizeof(got));
    if (n == 0 && k->reference[0] == '\0')
        snprintf(k->reference, sizeof(k->reference), "%s", got);
    else if (strcmp(got, k->reference) != 0)
        fail_msg("%s, allocation %ld failed: the resend analysed to\n  %s\nnot\n  %s",
                 k->name,
                 n,
                 got,
                 k->reference);
    f->n_stored++;
    f->n_derived += query_int(f, "SELECT count(*) FROM derived WHERE measurement_id = ?", id);
    check_acks(f, n, seq, rp > 0, t);
    if (f->first == NULL) {
        f->first = text;
        f->first_seq = seq;
    } else {
        free(text);
    }

    /* nothing stored before is lost, and the counters agree */
    assert_int_equal(query_int(f, "SELECT count(*) FROM measurements", 0), f->n_stored);
    assert_int_equal(query_int(f, "SELECT count(*) FROM derived", 0), f->n_derived);
    check_station_counts(f, n);
    return hit;
}

/* Every measurement of the store, the probe's included, still has exactly the reference
 * numbers. */
static void check_all_unchanged(struct fixture *f)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(
            f->view, "SELECT id, analysed FROM measurements ORDER BY id", -1, &st, NULL),
        SQLITE_OK);
    int64_t rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char got[4096];
        assert_int_equal(sqlite3_column_int(st, 1), 1);
        derived_text(f, sqlite3_column_int64(st, 0), got, sizeof(got));
        assert_string_equal(got, f->kind->reference);
        rows++;
    }
    sqlite3_finalize(st);
    assert_int_equal(rows, f->n_stored);
}

/* Runs in one store before a fresh one: integrity_check after every run reads the whole file,
 * so the file is kept small. */
#define RUNS_PER_STORE 64

static void oom_loop(struct fixture *f)
{
    struct kind *k = f->kind;
    log_set_level(LOG_LVL_ERR - 1); /* every failure is expected: keep the output short */
    struct tally t = {0};
    size_t sites_before = oom.n_sites;
    int64_t t0 = ll_monotonic_ms();
    k->reference[0] = '\0';
    long n = 0;
    int reached = 1;
    while (reached) {
        if (t.runs > 0 && t.runs % RUNS_PER_STORE == 0) {
            check_no_ack_left(f);
            check_all_unchanged(f);
            fixture_close(f);
            fixture_open(f, k);
        }
        if (f->n_stored == 0)
            run_once(f, 0, &t); /* a reference in each store: nothing fails */
        reached = run_once(f, ++n, &t);
    }
    check_no_ack_left(f);
    check_all_unchanged(f);
    log_set_level(LOG_LVL_INFO);

    long total = 0;
    for (int i = 0; i < SRC_N; i++)
        total += t.allocations[i];
    printf("F20 %s: %ld allocations in a measurement (labloop %ld, GSL %ld, jansson %ld, SQLite "
           "%ld), each failed once: %ld runs, %ld calls failed with -ENOMEM, %ld failures "
           "absorbed, %ld acks not sent after a commit; %zu new call sites; %.2f s\n",
           k->name,
           total,
           t.allocations[SRC_OURS],
           t.allocations[SRC_GSL],
           t.allocations[SRC_JANSSON],
           t.allocations[SRC_SQLITE],
           t.runs,
           t.failed_calls,
           t.absorbed,
           t.acks_not_sent,
           oom.n_sites - sites_before,
           (double)(ll_monotonic_ms() - t0) / 1000.0);
    /* every hook was live (a --wrap lost from the link would show here) */
    for (int i = 0; i < SRC_N; i++)
        if (t.allocations[i] == 0)
            fail_msg("%s: no %s allocation was counted", k->name, source_names[i]);
    assert_true(n > total);
}

static void test_oom_jv_all_or_nothing(void **state)
{
    oom_loop(*state);
}

static void test_oom_eis_all_or_nothing(void **state)
{
    oom_loop(*state);
}

static void test_oom_stability_all_or_nothing(void **state)
{
    oom_loop(*state);
}

/* Runs `labloop analyze path` with allocation n failing (0: none): its exit status, and what it
 * wrote on standard output and standard error (each cap bytes). */
static int analyze_cli(char *path, long n, char *out, char *err, size_t cap)
{
    char name[] = "analyze";
    char *argv[] = {name, path, NULL};
    FILE *o = tmpfile(), *e = tmpfile();
    assert_true(o != NULL && e != NULL);
    fflush(stdout);
    int saved_out = dup(1), saved_err = dup(2);
    assert_true(saved_out >= 0 && saved_err >= 0);
    assert_true(dup2(fileno(o), 1) >= 0 && dup2(fileno(e), 2) >= 0);
    arm(n);
    int status = cmd_analyze(2, argv);
    int hit = oom.failed;
    disarm();
    fflush(stdout);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    FILE *files[2] = {o, e};
    char *bufs[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        rewind(files[i]);
        size_t len = fread(bufs[i], 1, cap - 1, files[i]);
        bufs[i][len] = '\0';
        fclose(files[i]);
    }
    return hit ? status : -1 - status; /* negative: n was not reached */
}

/* `labloop analyze` (the re-analysis the invariant I8 relies on): every allocation of one run
 * fails once; each run prints exactly the numbers of a run without failures (exit 0), or says
 * "out of memory" and exits 1 — never "invalid input" (2), never other numbers. */
static void test_oom_analyze_cli_same_numbers_or_out_of_memory(void **state)
{
    (void)state;
    char dir[300], path[400];
    snprintf(dir, sizeof(dir), "%s", ll_test_tmpdir());
    snprintf(path, sizeof(path), "%s/eis.json", dir);
    char *text = message(&kinds[1], 1, "r-1", "S000001");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(text);
    enum { CAP = 16384 };
    char *ref = malloc(CAP), *out = malloc(CAP), *err = malloc(CAP);
    assert_true(ref != NULL && out != NULL && err != NULL);
    assert_int_equal(analyze_cli(path, 0, ref, err, CAP), -1 - CMD_EXIT_OK);
    assert_non_null(strstr(ref, "sigma_s_cm"));
    long n = 1, failed = 0;
    for (;; n++) {
        int status = analyze_cli(path, n, out, err, CAP);
        if (status < 0) {
            assert_int_equal(status, -1 - CMD_EXIT_OK);
            break;
        }
        if (status == CMD_EXIT_FAILED && strstr(err, "out of memory") != NULL && out[0] == '\0')
            failed++;
        else if (status != CMD_EXIT_OK || strcmp(out, ref) != 0)
            fail_msg("allocation %ld failed: labloop analyze exited %d, printing\n%s\nand\n%s",
                     n,
                     status,
                     out,
                     err);
    }
    printf("F20 labloop analyze (eis): %ld allocations, %ld runs said out of memory, the others "
           "printed the reference\n",
           n - 1,
           failed);
    free(ref);
    free(out);
    free(err);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    ll_test_init();
    oom.trace = getenv("LL_OOM_TRACE") != NULL;
    install_allocators();
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    kinds[0] = (struct kind){.name = "jv", .data = jv_data()};
    kinds[1] = (struct kind){.name = "eis", .data = eis_data()};
    kinds[2] = (struct kind){.name = "stability", .data = stability_data()};
    for (int i = 0; i < 3; i++)
        snprintf(kinds[i].time, sizeof(kinds[i].time), "%s", now);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_oom_jv_all_or_nothing, setup_jv, teardown),
        cmocka_unit_test_setup_teardown(test_oom_eis_all_or_nothing, setup_eis, teardown),
        cmocka_unit_test_setup_teardown(
            test_oom_stability_all_or_nothing, setup_stability, teardown),
        cmocka_unit_test(test_oom_analyze_cli_same_numbers_or_out_of_memory),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    size_t per_source[SRC_N] = {0};
    for (size_t i = 0; i < oom.n_sites; i++)
        per_source[oom.site_source[i]]++;
    printf("F20: %zu distinct call sites in labloop's code saw an allocation fail (direct: "
           "labloop %zu, GSL %zu; through jansson %zu, SQLite %zu)\n",
           oom.n_sites,
           per_source[SRC_OURS],
           per_source[SRC_GSL],
           per_source[SRC_JANSSON],
           per_source[SRC_SQLITE]);
    if (getenv("LL_OOM_SITES") != NULL)
        for (size_t i = 0; i < oom.n_sites; i++)
            printf("site %s 0x%lx\n",
                   source_names[oom.site_source[i]],
                   (unsigned long)((const char *)oom.sites[i] - __executable_start));
    for (int i = 0; i < 3; i++)
        json_decref(kinds[i].data);
    return r;
}

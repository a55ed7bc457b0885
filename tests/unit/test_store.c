/* store: schema and migrations, transactions, state machines, de-duplication, append-only
 * events, integrity check, online backup; and the SHA-256 used for raw payload hashes. */
#include "daemon/sha256.h"
#include "daemon/store.h"
#include "ll_test.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static char db_path[512];

static struct store *open_fresh(void)
{
    snprintf(db_path, sizeof(db_path), "%s/labloop.db", ll_test_tmpdir());
    struct store *s = NULL;
    struct ll_error err;
    ll_error_clear(&err);
    int r = store_open(db_path, &s, &err);
    if (r != 0)
        fail_msg("store_open: %s", err.msg);
    return s;
}

static int64_t user_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    sqlite3_open(path, &db);
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_sha256_matches_fips_vectors(void **state)
{
    (void)state;
    char hex[SHA256_HEX_LEN];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static char million[1000000];
    memset(million, 'a', sizeof(million));
    sha256_hex(million, sizeof(million), hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* 55 and 56 bytes straddle the one-block / two-block padding boundary */
    sha256_hex(million, 55, hex);
    assert_string_equal(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    sha256_hex(million, 56, hex);
    assert_string_equal(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}

static void test_store_open_migrates_and_reopens(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    store_close(&s);
    assert_null(s);
    assert_int_equal(user_version(db_path), STORE_SCHEMA_VERSION);
    struct ll_error err;
    assert_int_equal(store_open(db_path, &s, &err), 0);
    store_close(&s);
}

static void test_store_migrates_version_1_to_current(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c = 0;
    assert_int_equal(store_campaign_create(s, "old", "x", "auto", &c, &err), 0);
    store_close(&s);
    /* make it a version-1 database: no steps.job, no measurements.analysed */
    sqlite3 *db = NULL;
    sqlite3_open(db_path, &db);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP INDEX steps_by_job; ALTER TABLE steps DROP COLUMN job; "
                                  "DROP INDEX measurements_unanalysed; ALTER TABLE measurements "
                                  "DROP COLUMN analysed; ALTER TABLE experiments DROP COLUMN "
                                  "unloaded_at; ALTER TABLE rejections DROP COLUMN epoch; PRAGMA "
                                  "user_version=1;",
                                  NULL,
                                  NULL,
                                  NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(user_version(db_path), 1);
    ll_error_clear(&err);
    if (store_open(db_path, &s, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(user_version(db_path), STORE_SCHEMA_VERSION);
    json_t *camps = store_campaigns_json(s, 1, &err);
    assert_int_equal(json_array_size(camps), 1); /* the data survived */
    json_decref(camps);
    /* and the new column works: jobs increase in start order */
    json_t *p = json_object();
    int64_t e = 0, st1 = 0, st2 = 0, j1 = 0, j2 = 0;
    assert_int_equal(store_experiment_create(s, c, 0, 0, -1, p, 0, &e, &err), 0);
    assert_int_equal(store_step_create(s, e, 0, "robot", "move", p, 1, NULL, &st1, &err), 0);
    assert_int_equal(store_step_create(s, e, 1, "robot", "move", p, 1, NULL, &st2, &err), 0);
    json_decref(p);
    assert_int_equal(store_step_set_state(s, st2, STORE_STEP_STARTED, 1, NULL, &err), 0);
    assert_int_equal(store_step_set_state(s, st1, STORE_STEP_STARTED, 1, NULL, &err), 0);
    assert_int_equal(store_step_get_job(s, st2, &j2, &err), 0);
    assert_int_equal(store_step_get_job(s, st1, &j1, &err), 0);
    assert_int_equal(j2, 1);
    assert_int_equal(j1, 2);
    store_close(&s);
}

/* Wells: occupied from creation until the rack is unloaded; a failed/abandoned experiment
 * that never started a step holds none; open experiments keep theirs across an unload; the
 * state survives a reopen and a migration from schema 3 (whose experiments all count). */
static void test_store_rack_wells_occupied_until_unloaded(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c = 0, e[4], st = 0;
    unsigned char occ[8];
    int n = 0;
    json_t *p = json_object();
    assert_int_equal(store_campaign_create(s, "rack", "x", "auto", &c, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_experiment_create(s, c, i, 0, i, p, 0, &e[i], &err), 0);
    assert_int_equal(store_rack_occupied(s, 8, occ, &err), 4);
    /* 0 measured, 1 abandoned before any step, 2 failed after its dispense, 3 running */
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_experiment_set_state(s, e[i], STORE_EXP_QUEUED, NULL, &err), 0);
    assert_int_equal(store_experiment_set_state(s, e[1], STORE_EXP_ABANDONED, "x", &err), 0);
    assert_int_equal(store_step_create(s, e[2], 0, "robot", "dispense", p, 1, NULL, &st, &err), 0);
    assert_int_equal(store_step_set_state(s, st, STORE_STEP_STARTED, 1, NULL, &err), 0);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            assert_int_equal(store_experiment_set_state(s, e[i], STORE_EXP_RUNNING, NULL, &err), 0);
    assert_int_equal(store_experiment_set_state(s, e[0], STORE_EXP_MEASURED, NULL, &err), 0);
    assert_int_equal(store_experiment_set_state(s, e[2], STORE_EXP_FAILED, "x", &err), 0);
    assert_int_equal(store_rack_occupied(s, 8, occ, &err), 3);
    assert_int_equal(occ[0], 1);
    assert_int_equal(occ[1], 0);
    assert_int_equal(occ[2], 1);
    assert_int_equal(occ[3], 1);
    assert_int_equal(store_rack_occupied(s, 2, occ, &err), 1); /* a smaller rack */
    /* reopen: nothing forgotten */
    store_close(&s);
    assert_int_equal(store_open(db_path, &s, &err), 0);
    assert_int_equal(store_rack_occupied(s, 8, occ, &err), 3);
    assert_int_equal(store_rack_unload(s, &n, &err), 0);
    assert_int_equal(n, 3); /* measured, abandoned, failed */
    assert_int_equal(store_rack_occupied(s, 8, occ, &err), 1);
    assert_int_equal(occ[3], 1);
    assert_int_equal(store_rack_unload(s, &n, &err), 0);
    assert_int_equal(n, 0);
    /* a new sample in well 0 occupies it again */
    int64_t e4 = 0;
    assert_int_equal(store_experiment_create(s, c, 4, 1, 0, p, 0, &e4, &err), 0);
    assert_int_equal(store_rack_occupied(s, 8, occ, &err), 2);
    assert_int_equal(occ[0], 1);
    json_decref(p);
    store_close(&s);
    /* schema 3 -> 4: existing experiments keep their wells occupied */
    sqlite3 *db = NULL;
    sqlite3_open(db_path, &db);
    assert_int_equal(sqlite3_exec(db,
                                  "ALTER TABLE experiments DROP COLUMN unloaded_at; ALTER TABLE "
                                  "rejections DROP COLUMN epoch; PRAGMA user_version=3;",
                                  NULL,
                                  NULL,
                                  NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(db_path, &s, &err), 0);
    assert_int_equal(user_version(db_path), STORE_SCHEMA_VERSION);
    assert_int_equal(store_rack_occupied(s, 8, occ, &err), 3); /* 0, 2, 3 (1 never started) */
    assert_int_equal(occ[1], 0);
    store_close(&s);
}

static int64_t make_experiment(struct store *s, int64_t *ret_campaign);

/* Schema 4 -> 5 rebuilds the measurements table (UNIQUE (station, seq) becomes (station,
 * epoch, seq)): rows keep their ids, their derived numbers and objectives still point at them,
 * foreign keys are enforced again afterwards, and a station's seq can start again under a new
 * epoch. */
static void test_store_migrates_version_4_measurements_to_epochs(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c = 0, e = make_experiment(s, &c), id = 0;
    int outcome = -1;
    assert_int_equal(
        store_measurement_put(
            s, "jv-1", NULL, 3, "r-1", "jv", "S1", e, 0, "t", "{}", 2, &outcome, &id, &err),
        0);
    assert_int_equal(store_derived_put(s, id, "pce_pct", 17.5, "1.0", &err), 0);
    assert_int_equal(store_objective_put(s, e, "pce_pct", 17.5, id, "1.0", &err), 0);
    store_close(&s);
    /* make it a version-4 database: the measurements table as schema 4 had it */
    sqlite3 *db = NULL;
    sqlite3_open(db_path, &db);
    char *msg = NULL;
    int rc = sqlite3_exec(
        db,
        "CREATE TABLE m4 ("
        "  id INTEGER PRIMARY KEY, station TEXT NOT NULL, seq INTEGER NOT NULL,"
        "  request TEXT NOT NULL, kind TEXT NOT NULL, sample TEXT NOT NULL,"
        "  experiment_id INTEGER REFERENCES experiments(id), step_id INTEGER REFERENCES steps(id),"
        "  time TEXT, received_at INTEGER NOT NULL, raw TEXT NOT NULL, hash TEXT NOT NULL,"
        "  analysed INTEGER NOT NULL DEFAULT 1, UNIQUE (station, seq));"
        "INSERT INTO m4 SELECT id, station, seq, request, kind, sample, experiment_id, step_id,"
        "  time, received_at, raw, hash, analysed FROM measurements;"
        "DROP TABLE measurements; ALTER TABLE m4 RENAME TO measurements;"
        "CREATE INDEX measurements_unanalysed ON measurements(analysed) WHERE analysed = 0;"
        "ALTER TABLE rejections DROP COLUMN epoch; PRAGMA user_version=4;",
        NULL,
        NULL,
        &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s", msg);
    sqlite3_close(db);
    assert_int_equal(user_version(db_path), 4);
    ll_error_clear(&err);
    if (store_open(db_path, &s, &err) != 0)
        fail_msg("%s", err.msg);
    store_close(&s);
    assert_int_equal(user_version(db_path), STORE_SCHEMA_VERSION);
    sqlite3_open(db_path, &db);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db,
                       "SELECT m.id, m.epoch, m.seq, d.value, o.value FROM measurements m "
                       "JOIN derived d ON d.measurement_id = m.id JOIN objectives o ON "
                       "o.measurement_id = m.id",
                       -1,
                       &st,
                       NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), id);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "");
    assert_int_equal(sqlite3_column_int64(st, 2), 3);
    assert_true(sqlite3_column_double(st, 3) == 17.5 && sqlite3_column_double(st, 4) == 17.5);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* foreign keys are on again: a derived number of a missing measurement is refused */
    assert_int_equal(store_open(db_path, &s, &err), 0);
    assert_true(store_derived_put(s, id + 100, "pce_pct", 1.0, "1.0", &err) < 0);
    int64_t id2 = 0;
    assert_int_equal(
        store_measurement_put(
            s, "jv-1", "new", 3, "r-1", "jv", "S1", e, 0, "t", "[]", 2, &outcome, &id2, &err),
        0);
    assert_int_equal(outcome, STORE_MEAS_STORED);
    assert_int_equal(
        store_measurement_put(
            s, "jv-1", "", 3, "r-1", "jv", "S1", e, 0, "t", "[]", 2, &outcome, &id2, &err),
        0);
    assert_int_equal(outcome, STORE_MEAS_CONFLICT);
    assert_int_equal(store_rejection_put(s, "jv-1", "new", 4, "why", "x", 1, &err), 0);
    store_close(&s);
}

static void test_store_refuses_newer_schema_and_garbage(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    store_close(&s);
    sqlite3 *db = NULL;
    sqlite3_open(db_path, &db);
    sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL);
    sqlite3_close(db);
    struct ll_error err;
    ll_error_clear(&err);
    assert_int_equal(store_open(db_path, &s, &err), -EPROTO);
    assert_null(s);
    assert_non_null(strstr(err.msg, "newer"));

    char garbage[512];
    snprintf(garbage, sizeof(garbage), "%s/garbage.db", ll_test_tmpdir());
    FILE *f = fopen(garbage, "w");
    for (int i = 0; i < 2000; i++)
        fputs("not a database ", f);
    fclose(f);
    ll_error_clear(&err);
    assert_true(store_open(garbage, &s, &err) < 0);
    assert_null(s);
    assert_true(strlen(err.msg) > 0);
}

static void test_store_state_tables(void **state)
{
    (void)state;
    assert_true(store_experiment_transition_ok(STORE_EXP_PROPOSED, STORE_EXP_QUEUED));
    assert_true(store_experiment_transition_ok(STORE_EXP_RUNNING, STORE_EXP_MEASURED));
    assert_false(store_experiment_transition_ok(STORE_EXP_MEASURED, STORE_EXP_RUNNING));
    assert_false(store_experiment_transition_ok(STORE_EXP_QUEUED, STORE_EXP_MEASURED));
    assert_false(store_experiment_transition_ok(STORE_EXP_ABANDONED, STORE_EXP_QUEUED));
    assert_true(store_step_transition_ok(STORE_STEP_STARTED, STORE_STEP_UNKNOWN));
    assert_true(store_step_transition_ok(STORE_STEP_UNKNOWN, STORE_STEP_DONE));
    assert_false(store_step_transition_ok(STORE_STEP_PENDING, STORE_STEP_DONE));
    assert_false(store_step_transition_ok(STORE_STEP_DONE, STORE_STEP_STARTED));
    assert_true(store_campaign_transition_ok(STORE_CAMPAIGN_PAUSED, STORE_CAMPAIGN_RUNNING));
    assert_false(store_campaign_transition_ok(STORE_CAMPAIGN_COMPLETED, STORE_CAMPAIGN_RUNNING));
    assert_false(store_campaign_transition_ok(-1, 0));
    for (int i = 0; i < STORE_EXP_N_STATES; i++)
        assert_int_equal(store_experiment_state_from_name(store_experiment_state_name(i)), i);
    for (int i = 0; i < STORE_STEP_N_STATES; i++)
        assert_int_equal(store_step_state_from_name(store_step_state_name(i)), i);
    assert_int_equal(store_campaign_state_from_name("nonsense"), -EINVAL);
}

static int64_t make_experiment(struct store *s, int64_t *ret_campaign)
{
    struct ll_error err;
    int64_t c = 0, e = 0;
    assert_int_equal(store_campaign_create(s, "t", "campaign: {};", "auto", &c, &err), 0);
    json_t *p = json_pack("{s:f,s:f}", "fa", 0.5, "cs", 0.1);
    assert_int_equal(store_experiment_create(s, c, 0, 0, 0, p, 0.0, &e, &err), 0);
    json_decref(p);
    *ret_campaign = c;
    return e;
}

static void test_store_transitions_are_checked_in_the_database(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c;
    int64_t e = make_experiment(s, &c);
    assert_int_equal(store_experiment_get_state(s, e, &err), STORE_EXP_PROPOSED);
    assert_int_equal(store_experiment_set_state(s, e, STORE_EXP_MEASURED, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "proposed"));
    assert_int_equal(store_experiment_set_state(s, e, STORE_EXP_QUEUED, NULL, &err), 0);
    assert_int_equal(store_experiment_set_state(s, e, STORE_EXP_RUNNING, NULL, &err), 0);
    int64_t st = 0;
    json_t *p = json_object();
    assert_int_equal(store_step_create(s, e, 0, "robot", "dispense", p, 1000, NULL, &st, &err), 0);
    json_decref(p);
    assert_int_equal(store_step_set_state(s, st, STORE_STEP_DONE, 0, "x", &err), -EINVAL);
    assert_int_equal(store_step_set_state(s, st, STORE_STEP_STARTED, 5000, NULL, &err), 0);
    assert_int_equal(store_step_set_state(s, st, STORE_STEP_UNKNOWN, 0, "lost", &err), 0);
    json_t *q = store_questions_json(s, &err);
    assert_int_equal(json_array_size(q), 1);
    json_decref(q);
    assert_int_equal(store_step_set_state(s, st, STORE_STEP_DONE, 0, "operator", &err), 0);
    assert_int_equal(store_step_get_state(s, st, &err), STORE_STEP_DONE);
    assert_int_equal(store_campaign_set_state(s, c, STORE_CAMPAIGN_PAUSED, "op", &err), 0);
    assert_int_equal(store_campaign_set_state(s, c, STORE_CAMPAIGN_COMPLETED, NULL, &err), -EINVAL);
    assert_int_equal(store_campaign_get_state(s, 999, &err), -ENOENT);
    store_close(&s);
}

static void test_store_rollback_discards_everything(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c;
    make_experiment(s, &c);
    assert_int_equal(store_begin(s, &err), 0);
    assert_int_equal(store_begin(s, &err), 0); /* nested: counts only */
    assert_int_equal(store_event(s, c, 0, 0, 6, "t", "inside", &err), 0);
    assert_int_equal(store_commit(s, &err), 0); /* inner commit: still open */
    store_rollback(s);
    json_t *ev = store_events_json(s, c, 100, &err);
    for (size_t i = 0; i < json_array_size(ev); i++)
        assert_string_not_equal(
            json_string_value(json_object_get(json_array_get(ev, i), "message")), "inside");
    json_decref(ev);
    assert_int_equal(store_commit(s, &err), -EINVAL);
    store_close(&s);
}

/* Offers raw from (station, epoch, seq) for request r-1 of experiment e; returns the outcome
 * (STORE_MEAS_*), the row id in *ret_id. */
static int put(struct store *s,
               const char *station,
               const char *epoch,
               int64_t seq,
               const char *raw,
               int64_t e,
               int64_t *ret_id)
{
    struct ll_error err;
    int outcome = -1;
    assert_int_equal(store_measurement_put(s,
                                           station,
                                           epoch,
                                           seq,
                                           "r-1",
                                           "jv",
                                           "S1",
                                           e,
                                           0,
                                           "t",
                                           raw,
                                           strlen(raw),
                                           &outcome,
                                           ret_id,
                                           &err),
                     0);
    return outcome;
}

static void test_store_measurement_dedup_and_conflict(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c;
    int64_t e = make_experiment(s, &c);
    const char *raw = "{\"v\":1}";
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(put(s, "jv-1", NULL, 7, raw, e, &id1), STORE_MEAS_STORED);
    assert_int_equal(put(s, "jv-1", NULL, 7, raw, e, &id2), STORE_MEAS_DUPLICATE);
    assert_int_equal(id1, id2);
    assert_int_equal(put(s, "jv-1", NULL, 7, "{}", e, &id2), STORE_MEAS_CONFLICT);
    /* the same seq from another station is a different measurement */
    assert_int_equal(put(s, "jv-2", NULL, 7, raw, e, &id2), STORE_MEAS_STORED);
    char hex[SHA256_HEX_LEN];
    sha256_hex(raw, strlen(raw), hex);
    assert_int_equal(store_measurement_has(s, "jv-1", NULL, 7, hex, &err), 1);
    assert_int_equal(store_measurement_has(s, "jv-1", "", 8, hex, &err), 0);
    assert_int_equal(store_rejection_put(s, NULL, NULL, 0, "malformed JSON", "\xff\xfe", 2, &err),
                     0);
    int64_t n_stored = 0, n_rej = 0;
    assert_int_equal(store_measurement_counts(s, &n_stored, &n_rej, &err), 0);
    assert_int_equal(n_stored, 2);
    assert_int_equal(n_rej, 1);
    assert_int_equal(store_derived_put(s, id1, "pce_pct", 17.5, "jv-1", &err), 0);
    assert_int_equal(store_objective_put(s, e, "pce_pct", 17.5, id1, "jv-1", &err), 0);
    json_t *ex = store_experiments_json(s, c, &err);
    json_t *obj = json_object_get(json_array_get(ex, 0), "objectives");
    ll_assert_close(json_number_value(json_object_get(obj, "pce_pct")), 17.5, 0, 1e-12);
    ll_assert_close(
        json_number_value(json_object_get(json_object_get(json_array_get(ex, 0), "params"), "fa")),
        0.5,
        0,
        1e-15);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ex, 0), "sample")),
                        "S000001");
    json_decref(ex);
    store_close(&s);
}

/* Sequence epochs: seq 7 of a station again under a new epoch is a new measurement; within an
 * epoch the usual duplicate and conflict; store_station_epoch_before names the epoch before. */
static void test_store_measurement_epochs(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c;
    int64_t e = make_experiment(s, &c);
    const char *raw = "{\"v\":1}";
    int64_t id1 = 0, id3 = 0, id4 = 0;
    assert_int_equal(put(s, "jv-1", NULL, 7, raw, e, &id1), STORE_MEAS_STORED);
    assert_int_equal(put(s, "jv-2", NULL, 7, raw, e, &id4), STORE_MEAS_STORED);
    /* seq 7 again under a new epoch (the station started its numbering again) */
    assert_int_equal(put(s, "jv-1", "b2", 7, "{}", e, &id3), STORE_MEAS_STORED);
    assert_true(id3 != id1);
    char prev[65] = "";
    int64_t prev_seq = 0;
    assert_int_equal(
        store_station_epoch_before(s, "jv-1", "b2", prev, sizeof(prev), &prev_seq, &err), 1);
    assert_string_equal(prev, "");
    assert_int_equal(prev_seq, 7);
    /* within the new epoch: duplicate, conflict, next seq */
    assert_int_equal(put(s, "jv-1", "b2", 7, "{}", e, &id4), STORE_MEAS_DUPLICATE);
    assert_int_equal(id4, id3);
    assert_int_equal(put(s, "jv-1", "b2", 7, raw, e, &id4), STORE_MEAS_CONFLICT);
    assert_int_equal(put(s, "jv-1", "b2", 8, raw, e, &id4), STORE_MEAS_STORED);
    /* not the first of its epoch any more; a station with one epoch has none before it */
    assert_int_equal(
        store_station_epoch_before(s, "jv-1", "b2", prev, sizeof(prev), &prev_seq, &err), 0);
    assert_int_equal(store_station_epoch_before(s, "jv-2", "", prev, sizeof(prev), &prev_seq, &err),
                     0);
    char hex[SHA256_HEX_LEN];
    sha256_hex(raw, strlen(raw), hex);
    assert_int_equal(store_measurement_has(s, "jv-1", "b2", 8, hex, &err), 1);
    assert_int_equal(store_measurement_has(s, "jv-1", "b2", 7, hex, &err), 0);
    store_close(&s);
}

static void test_store_events_are_append_only(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    assert_int_equal(store_event(s, 0, 0, 0, 6, "t", "one", &err), 0);
    store_close(&s);
    sqlite3 *db = NULL;
    sqlite3_open(db_path, &db);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE events SET message='x'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Text that is not well-formed UTF-8 (a message cut inside a character) still comes back as
 * JSON, with the ill-formed bytes as '?', instead of losing the field. */
static void test_store_events_with_cut_utf8_keep_their_text(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    assert_int_equal(store_event(s,
                                 0,
                                 0,
                                 0,
                                 6,
                                 "t",
                                 "25 \xc2\xb0"
                                 "C, cut \xc3",
                                 &err),
                     0);
    json_t *ev = store_events_json(s, 0, 10, &err);
    assert_non_null(ev);
    const char *msg = NULL;
    for (size_t i = 0; i < json_array_size(ev) && msg == NULL; i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(ev, i), "kind")), "t") == 0)
            msg = json_string_value(json_object_get(json_array_get(ev, i), "message"));
    if (msg == NULL || strcmp(msg,
                              "25 \xc2\xb0"
                              "C, cut ?") != 0)
        fail_msg("message '%s'", msg ? msg : "(missing)");
    json_decref(ev);
    store_close(&s);
}

static void test_store_backup_is_a_consistent_copy(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c;
    make_experiment(s, &c);
    assert_int_equal(store_meta_set(s, "estop", "1", &err), 0);
    char copy[600];
    snprintf(copy, sizeof(copy), "%s.bak", db_path);
    assert_int_equal(store_backup(s, copy, &err), 0);
    assert_int_equal(store_backup(s, copy, &err), -EEXIST);
    assert_int_equal(store_integrity_check(s, &err), 0);
    store_close(&s);
    struct store *b = NULL;
    assert_int_equal(store_open(copy, &b, &err), 0);
    char v[16];
    assert_int_equal(store_meta_get(b, "estop", v, sizeof(v), &err), 1);
    assert_string_equal(v, "1");
    assert_int_equal(store_meta_get(b, "absent", v, sizeof(v), &err), 0);
    json_t *ex = store_experiments_json(b, 0, &err);
    assert_int_equal(json_array_size(ex), 1);
    json_decref(ex);
    store_close(&b);
}

static void test_store_approvals_survive_reopen(void **state)
{
    (void)state;
    struct store *s = open_fresh();
    struct ll_error err;
    int64_t c;
    make_experiment(s, &c);
    assert_int_equal(store_approval_pending(s, c, &err), -ENOENT);
    assert_int_equal(store_approval_put(s, c, 2, "pending", NULL, &err), 0);
    store_close(&s);
    assert_int_equal(store_open(db_path, &s, &err), 0);
    assert_int_equal(store_approval_pending(s, c, &err), 2);
    assert_int_equal(store_approval_put(s, c, 2, "approved", "ok", &err), 0);
    assert_int_equal(store_approval_pending(s, c, &err), -ENOENT);
    json_t *fit = json_pack("{s:i}", "seed", 1);
    assert_int_equal(store_model_fit_put(s, c, 1, fit, &err), 0);
    assert_int_equal(store_model_fit_put(s, c, 1, fit, &err), -EEXIST);
    json_decref(fit);
    store_close(&s);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_matches_fips_vectors),
        cmocka_unit_test(test_store_open_migrates_and_reopens),
        cmocka_unit_test(test_store_migrates_version_1_to_current),
        cmocka_unit_test(test_store_migrates_version_4_measurements_to_epochs),
        cmocka_unit_test(test_store_rack_wells_occupied_until_unloaded),
        cmocka_unit_test(test_store_refuses_newer_schema_and_garbage),
        cmocka_unit_test(test_store_state_tables),
        cmocka_unit_test(test_store_transitions_are_checked_in_the_database),
        cmocka_unit_test(test_store_rollback_discards_everything),
        cmocka_unit_test(test_store_measurement_dedup_and_conflict),
        cmocka_unit_test(test_store_measurement_epochs),
        cmocka_unit_test(test_store_events_are_append_only),
        cmocka_unit_test(test_store_events_with_cut_utf8_keep_their_text),
        cmocka_unit_test(test_store_backup_is_a_consistent_copy),
        cmocka_unit_test(test_store_approvals_survive_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

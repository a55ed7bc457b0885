/* store — see store.h. Every SQL statement of labloopd lives in this file.
 *
 * A tiny binding helper (prep()) takes a type string — i int64, n int64 or NULL when 0,
 * d double, s text or NULL, b text with explicit length — so that each operation is one
 * statement and a handful of lines. SQLite result codes become negative errno values in
 * map_rc() and nowhere else.
 */
#include "daemon/store.h"

#include "common/ll_failpoint.h"
#include "common/ll_text.h"
#include "common/ll_time.h"
#include "daemon/jsonmem.h"
#include "daemon/log.h"
#include "daemon/powerloss.h"
#include "daemon/sha256.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define STMT_CACHE 48
/* how long a write waits for a lock another connection holds; once one has waited in vain
 * (storage trouble), later ones wait only BUSY_TROUBLE_MS until a write commits again, so
 * that the daemon's loop (status, e-stop) is not held up again and again */
#define BUSY_MS 2000
#define BUSY_TROUBLE_MS 100

struct store {
    sqlite3 *db;
    int tx_depth;
    /* prepared statements kept for reuse, keyed by their SQL text */
    struct {
        char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    int n_cache, next_evict;
    /* storage trouble (store_write_error): the last failure and since when, until a write
     * commits again */
    char werr[LL_ERROR_MSG_MAX];
    int64_t werr_since;
    char dir[4096];           /* the folder of the database file (free space, store_probe_write) */
    int64_t changes_at_begin; /* sqlite3_total_changes64 when the transaction began */
};

#define REJECTION_KEEP_BYTES (64 * 1024)

static const char *const campaign_names[] = {
    "running", "paused", "stopped", "completed", "aborted", "failed"};
static const char *const experiment_names[] = {
    "proposed", "awaiting_approval", "queued", "running", "measured", "failed", "abandoned"};
static const char *const step_names[] = {
    "pending", "started", "unknown", "done", "failed", "skipped"};

/* allowed[from] is a bit set of the states `from` may become (tables in store.h) */
#define B(x) (1u << (x))
static const unsigned campaign_allowed[STORE_CAMPAIGN_N_STATES] = {
    [STORE_CAMPAIGN_RUNNING] = B(STORE_CAMPAIGN_PAUSED) | B(STORE_CAMPAIGN_STOPPED) |
                               B(STORE_CAMPAIGN_COMPLETED) | B(STORE_CAMPAIGN_ABORTED) |
                               B(STORE_CAMPAIGN_FAILED),
    [STORE_CAMPAIGN_PAUSED] =
        B(STORE_CAMPAIGN_RUNNING) | B(STORE_CAMPAIGN_STOPPED) | B(STORE_CAMPAIGN_ABORTED),
    [STORE_CAMPAIGN_STOPPED] = B(STORE_CAMPAIGN_RUNNING) | B(STORE_CAMPAIGN_ABORTED),
};
static const unsigned experiment_allowed[STORE_EXP_N_STATES] = {
    [STORE_EXP_PROPOSED] =
        B(STORE_EXP_AWAITING_APPROVAL) | B(STORE_EXP_QUEUED) | B(STORE_EXP_ABANDONED),
    [STORE_EXP_AWAITING_APPROVAL] = B(STORE_EXP_QUEUED) | B(STORE_EXP_ABANDONED),
    [STORE_EXP_QUEUED] = B(STORE_EXP_RUNNING) | B(STORE_EXP_ABANDONED),
    [STORE_EXP_RUNNING] = B(STORE_EXP_MEASURED) | B(STORE_EXP_FAILED) | B(STORE_EXP_ABANDONED),
};
static const unsigned step_allowed[STORE_STEP_N_STATES] = {
    [STORE_STEP_PENDING] = B(STORE_STEP_STARTED) | B(STORE_STEP_SKIPPED),
    [STORE_STEP_STARTED] =
        B(STORE_STEP_DONE) | B(STORE_STEP_FAILED) | B(STORE_STEP_UNKNOWN) | B(STORE_STEP_PENDING),
    [STORE_STEP_UNKNOWN] = B(STORE_STEP_DONE) | B(STORE_STEP_FAILED),
};
#undef B

static const char *name_of(const char *const *names, int n, int state)
{
    return state >= 0 && state < n ? names[state] : NULL;
}

static int from_name(const char *const *names, int n, const char *name)
{
    for (int i = 0; name != NULL && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -EINVAL;
}

const char *store_campaign_state_name(int state)
{
    return name_of(campaign_names, STORE_CAMPAIGN_N_STATES, state);
}
const char *store_experiment_state_name(int state)
{
    return name_of(experiment_names, STORE_EXP_N_STATES, state);
}
const char *store_step_state_name(int state)
{
    return name_of(step_names, STORE_STEP_N_STATES, state);
}
int store_campaign_state_from_name(const char *name)
{
    return from_name(campaign_names, STORE_CAMPAIGN_N_STATES, name);
}
int store_experiment_state_from_name(const char *name)
{
    return from_name(experiment_names, STORE_EXP_N_STATES, name);
}
int store_step_state_from_name(const char *name)
{
    return from_name(step_names, STORE_STEP_N_STATES, name);
}

static int transition_ok(const unsigned *allowed, int n, int from, int to)
{
    if (from < 0 || from >= n || to < 0 || to >= n)
        return 0;
    return (int)((allowed[from] >> to) & 1u);
}
int store_campaign_transition_ok(int from, int to)
{
    return transition_ok(campaign_allowed, STORE_CAMPAIGN_N_STATES, from, to);
}
int store_experiment_transition_ok(int from, int to)
{
    return transition_ok(experiment_allowed, STORE_EXP_N_STATES, from, to);
}
int store_step_transition_ok(int from, int to)
{
    return transition_ok(step_allowed, STORE_STEP_N_STATES, from, to);
}

/* --- SQLite boundary ------------------------------------------------------------------ */

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    default:
        return -EIO;
    }
}

/* Remembers a failure that means the storage itself is in trouble — full, an I/O error,
 * read-only, locked past the busy timeout, out of memory — as opposed to a refused statement
 * (a constraint, a bug). */
static void note_trouble(struct store *s, int rc, const char *what, const char *msg)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
        if (s->werr_since == 0) {
            s->werr_since = ll_monotonic_ms();
            sqlite3_busy_timeout(s->db, BUSY_TROUBLE_MS);
        }
        snprintf(s->werr, sizeof(s->werr), "%s: %s", what, msg);
        break;
    default:
        break;
    }
}

/* A write committed: the storage works (again). */
static void note_ok(struct store *s)
{
    if (s->werr_since != 0)
        sqlite3_busy_timeout(s->db, BUSY_MS);
    s->werr_since = 0;
    s->werr[0] = '\0';
}

/* "WHAT 'the start of the statement'", for a message that names the statement that failed. */
static const char *statement_what(char *buf, size_t n, const char *what, const char *sql)
{
    snprintf(buf,
             n,
             "%s '%.48s%s'",
             what,
             sql != NULL ? sql : "?",
             sql != NULL && strlen(sql) > 48 ? "..." : "");
    return buf;
}

static int fail(struct store *s, int rc, struct ll_error *err, const char *what)
{
    note_trouble(s, rc, what, sqlite3_errmsg(s->db));
    return ll_error_set(err, map_rc(rc), "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Gives a statement back: a cached one is reset for its next use, others are finalized. */
static void release(struct store *s, sqlite3_stmt *st)
{
    for (int i = 0; i < s->n_cache; i++)
        if (s->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

/* Prepares sql and binds the arguments described by types (see the file comment).
 * Returns the statement or NULL (err filled). */
static sqlite3_stmt *
prep(struct store *s, struct ll_error *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    for (int i = 0; i < s->n_cache && st == NULL; i++)
        if (strcmp(s->cache[i].sql, sql) == 0)
            st = s->cache[i].st;
    if (st == NULL) {
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK) {
            char what[96];
            fail(s, rc, err, statement_what(what, sizeof(what), "prepare", sql));
            return NULL;
        }
        char *copy = strdup(sql);
        if (copy != NULL) {
            int slot = s->n_cache < STMT_CACHE ? s->n_cache++ : s->next_evict++ % STMT_CACHE;
            if (s->cache[slot].st != NULL) {
                sqlite3_finalize(s->cache[slot].st);
                free(s->cache[slot].sql);
            }
            s->cache[slot].sql = copy;
            s->cache[slot].st = st;
        }
    }
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
        int col = i + 1;
        switch (types[i]) {
        case 'i':
            rc = sqlite3_bind_int64(st, col, va_arg(ap, int64_t));
            break;
        case 'n': {
            int64_t v = va_arg(ap, int64_t);
            rc = v == 0 ? sqlite3_bind_null(st, col) : sqlite3_bind_int64(st, col, v);
            break;
        }
        case 'd':
            rc = sqlite3_bind_double(st, col, va_arg(ap, double));
            break;
        case 's': {
            const char *v = va_arg(ap, const char *);
            rc = v == NULL ? sqlite3_bind_null(st, col)
                           : sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT);
            break;
        }
        case 'b': {
            const char *v = va_arg(ap, const char *);
            size_t len = va_arg(ap, size_t);
            rc = sqlite3_bind_text64(st, col, v, len, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        }
        default:
            rc = SQLITE_MISUSE;
        }
    }
    va_end(ap);
    if (rc != SQLITE_OK) {
        char what[96];
        fail(s, rc, err, statement_what(what, sizeof(what), "bind", sql));
        release(s, st);
        return NULL;
    }
    return st;
}

/* Runs a statement that returns no rows and finalizes it. */
static int run(struct store *s, sqlite3_stmt *st, struct ll_error *err, const char *what)
{
    if (st == NULL)
        return err != NULL && err->code != 0 ? err->code : -EIO;
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = fail(s, rc, err, what);
    else if (!sqlite3_stmt_readonly(st) && sqlite3_get_autocommit(s->db) &&
             sqlite3_changes(s->db) > 0)
        note_ok(s); /* a write outside a transaction committed */
    release(s, st);
    return r;
}

static int exec(struct store *s, const char *sql, struct ll_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    int r = 0;
    if (rc != SQLITE_OK) {
        const char *why = msg != NULL ? msg : sqlite3_errstr(rc);
        char what[96];
        statement_what(what, sizeof(what), "exec", sql);
        note_trouble(s, rc, what, why);
        r = ll_error_set(err, map_rc(rc), "store: %s: %s", what, why);
    }
    sqlite3_free(msg);
    return r;
}

/* A text column as a JSON string; text that is not well-formed UTF-8 (a message cut inside a
 * character, bytes a device sent) keeps its readable part, the rest as '?', instead of
 * dropping the field. */
static json_t *text_json(const char *t)
{
    json_t *v = json_string(t);
    if (v != NULL || t == NULL)
        return v;
    char *copy = strdup(t);
    if (copy == NULL)
        return NULL;
    ll_utf8_sanitize(copy);
    v = json_string(copy);
    free(copy);
    return v;
}

/* Turns every row of st into an object (column name -> value) in a new array; finalizes st.
 * Columns whose name ends in "_json" are parsed and stored without the suffix. Out of memory
 * anywhere (jansson's included, jsonmem.h) fails the whole listing with -ENOMEM: a row or a
 * field silently left out would be read as "not there" (an unknown request, no raw text). */
static json_t *rows_json(struct store *s, sqlite3_stmt *st, struct ll_error *err)
{
    if (st == NULL)
        return NULL;
    uint64_t json_failures = jsonmem_failures();
    json_t *arr = json_array();
    int rc = SQLITE_ROW, bad = arr == NULL;
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *obj = json_object();
        bad = obj == NULL || json_array_append_new(arr, obj) != 0;
        int n = sqlite3_column_count(st);
        for (int c = 0; c < n && !bad; c++) {
            const char *name = sqlite3_column_name(st, c);
            json_t *v;
            size_t nl = name != NULL ? strlen(name) : 0;
            int is_json = nl > 5 && strcmp(name + nl - 5, "_json") == 0;
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                v = json_integer(sqlite3_column_int64(st, c));
                break;
            case SQLITE_FLOAT:
                v = json_real(sqlite3_column_double(st, c));
                break;
            case SQLITE_NULL:
                v = json_null();
                break;
            default: {
                const char *text = (const char *)sqlite3_column_text(st, c);
                if (text == NULL) { /* SQLite could not make the text (out of memory) */
                    v = NULL;
                } else if (is_json) {
                    v = json_loads(text, 0, NULL);
                    if (v == NULL)
                        v = json_null();
                } else {
                    v = text_json(text);
                }
            }
            }
            if (name == NULL || v == NULL) {
                json_decref(v);
                bad = 1;
            } else if (is_json) {
                char key[128];
                snprintf(key, sizeof(key), "%.*s", (int)(nl - 5), name);
                bad = json_object_set_new(obj, key, v) != 0;
            } else {
                bad = json_object_set_new(obj, name, v) != 0;
            }
        }
    }
    if (!bad && jsonmem_failures() != json_failures)
        bad = 1;
    if (bad || rc != SQLITE_DONE) {
        char what[96];
        statement_what(what, sizeof(what), "query", sqlite3_sql(st));
        if (bad) {
            note_trouble(s, SQLITE_NOMEM, what, "out of memory");
            ll_error_set(err, -ENOMEM, "store: %s: out of memory", what);
        } else {
            fail(s, rc, err, what);
        }
        json_decref(arr);
        arr = NULL;
    }
    release(s, st);
    return arr;
}

/* Runs st expecting one row and returns its first column as int64 in *ret; -ENOENT when no
 * row. Finalizes st. */
static int one_int(struct store *s, sqlite3_stmt *st, int64_t *ret, struct ll_error *err)
{
    if (st == NULL)
        return err != NULL && err->code != 0 ? err->code : -EIO;
    int rc = sqlite3_step(st);
    int r = 0;
    char what[96];
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        r = -ENOENT;
    else
        r = fail(s, rc, err, statement_what(what, sizeof(what), "query", sqlite3_sql(st)));
    release(s, st);
    return r;
}

/* --- schema and migrations ------------------------------------------------------------- */

/* migrations[v] brings the schema from version v to v+1; each runs in one transaction. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE campaigns ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,"
    "  approval TEXT NOT NULL DEFAULT 'auto', file_text TEXT NOT NULL,"
    "  reason TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE experiments ("
    "  id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id),"
    "  idx INTEGER NOT NULL, round INTEGER NOT NULL, well INTEGER NOT NULL,"
    "  sample TEXT UNIQUE, state TEXT NOT NULL, reason TEXT, params TEXT NOT NULL,"
    "  acquisition REAL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  UNIQUE (campaign_id, idx));"
    "CREATE TABLE steps ("
    "  id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id),"
    "  idx INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 1, instrument TEXT NOT NULL,"
    "  action TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL,"
    "  expected_ms INTEGER NOT NULL, deadline_at INTEGER, started_at INTEGER,"
    "  finished_at INTEGER, result TEXT, request TEXT UNIQUE,"
    "  UNIQUE (experiment_id, idx, attempt));"
    "CREATE TABLE measurements ("
    "  id INTEGER PRIMARY KEY, station TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  request TEXT NOT NULL, kind TEXT NOT NULL, sample TEXT NOT NULL,"
    "  experiment_id INTEGER REFERENCES experiments(id), step_id INTEGER REFERENCES steps(id),"
    "  time TEXT, received_at INTEGER NOT NULL, raw TEXT NOT NULL, hash TEXT NOT NULL,"
    "  UNIQUE (station, seq));"
    "CREATE TABLE rejections ("
    "  id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, station TEXT, seq INTEGER,"
    "  reason TEXT NOT NULL, raw_len INTEGER NOT NULL, raw_head TEXT, hash TEXT NOT NULL);"
    "CREATE TABLE derived ("
    "  measurement_id INTEGER NOT NULL REFERENCES measurements(id), name TEXT NOT NULL,"
    "  value REAL NOT NULL, analysis_version TEXT NOT NULL,"
    "  PRIMARY KEY (measurement_id, name));"
    "CREATE TABLE objectives ("
    "  experiment_id INTEGER NOT NULL REFERENCES experiments(id), name TEXT NOT NULL,"
    "  value REAL NOT NULL, measurement_id INTEGER REFERENCES measurements(id),"
    "  analysis_version TEXT NOT NULL, PRIMARY KEY (experiment_id, name));"
    "CREATE TABLE model_fits ("
    "  id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id),"
    "  round INTEGER NOT NULL, created_at INTEGER NOT NULL, fit TEXT NOT NULL,"
    "  UNIQUE (campaign_id, round));"
    "CREATE TABLE approvals ("
    "  campaign_id INTEGER NOT NULL REFERENCES campaigns(id), round INTEGER NOT NULL,"
    "  state TEXT NOT NULL, note TEXT, created_at INTEGER NOT NULL, decided_at INTEGER,"
    "  PRIMARY KEY (campaign_id, round));"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, level INTEGER NOT NULL,"
    "  campaign_id INTEGER, experiment_id INTEGER, step_id INTEGER, kind TEXT NOT NULL,"
    "  message TEXT NOT NULL);"
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
    "  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    "  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
    "CREATE INDEX experiments_by_campaign ON experiments(campaign_id, state);"
    "CREATE INDEX steps_by_experiment ON steps(experiment_id, idx);"
    "CREATE INDEX steps_by_state ON steps(state);",
    /* 1 -> 2: the job number an instrument sees (increasing in start order; the robot
     * refuses a JOB_ID below its last finished one) */
    "ALTER TABLE steps ADD COLUMN job INTEGER;"
    "CREATE UNIQUE INDEX steps_by_job ON steps(job);",
    /* 2 -> 3: analysis runs after the ack (ingest.h); rows waiting for it are marked */
    "ALTER TABLE measurements ADD COLUMN analysed INTEGER NOT NULL DEFAULT 1;"
    "CREATE INDEX measurements_unanalysed ON measurements(analysed) WHERE analysed = 0;",
    /* 3 -> 4: rack wells are reused once the operator has unloaded the rack (`labloop rack
     * unloaded`): a finished sample's well is free again from unloaded_at on */
    "ALTER TABLE experiments ADD COLUMN unloaded_at INTEGER;",
    /* 4 -> 5: stations' sequence epochs (docs/protocol.md): seq is unique per (station, epoch),
     * '' for a station that sends none. SQLite cannot change a UNIQUE constraint in place, so
     * the table is rebuilt under the same name and ids (migrate() turns foreign keys off around
     * the migrations and checks them before each commit) */
    "CREATE TABLE measurements_v5 ("
    "  id INTEGER PRIMARY KEY, station TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  request TEXT NOT NULL, kind TEXT NOT NULL, sample TEXT NOT NULL,"
    "  experiment_id INTEGER REFERENCES experiments(id), step_id INTEGER REFERENCES steps(id),"
    "  time TEXT, received_at INTEGER NOT NULL, raw TEXT NOT NULL, hash TEXT NOT NULL,"
    "  analysed INTEGER NOT NULL DEFAULT 1, epoch TEXT NOT NULL DEFAULT '',"
    "  UNIQUE (station, epoch, seq));"
    "INSERT INTO measurements_v5(id, station, seq, request, kind, sample, experiment_id,"
    "  step_id, time, received_at, raw, hash, analysed, epoch)"
    "  SELECT id, station, seq, request, kind, sample, experiment_id, step_id, time,"
    "  received_at, raw, hash, analysed, '' FROM measurements;"
    "DROP TABLE measurements;"
    "ALTER TABLE measurements_v5 RENAME TO measurements;"
    "CREATE INDEX measurements_unanalysed ON measurements(analysed) WHERE analysed = 0;"
    "ALTER TABLE rejections ADD COLUMN epoch TEXT;",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* 0 when PRAGMA foreign_key_check finds nothing, else -EPROTO naming the first broken row. */
static int foreign_keys_intact(struct store *s, struct ll_error *err)
{
    sqlite3_stmt *st = prep(s, err, "PRAGMA foreign_key_check", "");
    if (st == NULL)
        return err != NULL ? err->code : -EIO;
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW)
        r = ll_error_set(err,
                         -EPROTO,
                         "store: row %lld of table %s refers to a missing row of %s",
                         (long long)sqlite3_column_int64(st, 1),
                         (const char *)sqlite3_column_text(st, 0),
                         (const char *)sqlite3_column_text(st, 2));
    else if (rc != SQLITE_DONE)
        r = fail(s, rc, err, "foreign key check");
    release(s, st);
    return r;
}

static int migrate(struct store *s, struct ll_error *err)
{
    int64_t version = 0;
    int r = one_int(s, prep(s, err, "PRAGMA user_version", ""), &version, err);
    if (r < 0)
        return r;
    if (version > STORE_SCHEMA_VERSION)
        return ll_error_set(err,
                            -EPROTO,
                            "store: database schema version %lld is newer than this labloopd "
                            "(%d); refusing to touch it",
                            (long long)version,
                            STORE_SCHEMA_VERSION);
    /* a migration may rebuild a table that others reference (4 -> 5): foreign keys are
     * enforced again after the migrations, and checked inside each one before it commits */
    if (version < STORE_SCHEMA_VERSION) {
        r = exec(s, "PRAGMA foreign_keys=OFF", err);
        if (r < 0)
            return r;
    }
    for (int64_t v = version; v < STORE_SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma,
                 sizeof(pragma),
                 "PRAGMA user_version=%lld",
                 (long long)v + 1); /* sql-lint: constant */
        r = store_begin(s, err);
        if (r == 0)
            r = exec(s, migrations[v], err);
        LL_FAILPOINT("migration"); /* version v+1's tables made, not committed */
        if (r == 0)
            r = foreign_keys_intact(s, err);
        if (r == 0)
            r = exec(s, pragma, err);
        if (r == 0)
            r = store_commit(s, err);
        if (r < 0) {
            store_rollback(s);
            exec(s, "PRAGMA foreign_keys=ON", NULL);
            return ll_error_prefix(err, "migration %lld -> %lld", (long long)v, (long long)v + 1);
        }
    }
    return version < STORE_SCHEMA_VERSION ? exec(s, "PRAGMA foreign_keys=ON", err) : 0;
}

static int check_quick(struct store *s, const char *pragma, struct ll_error *err)
{
    sqlite3_stmt *st = prep(s, err, pragma, "");
    if (st == NULL)
        return err != NULL ? err->code : -EIO;
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc != SQLITE_ROW)
        r = fail(s, rc, err, pragma);
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
        r = ll_error_set(
            err, -EBADMSG, "store: %s: %s", pragma, (const char *)sqlite3_column_text(st, 0));
    release(s, st);
    return r;
}

/* --- test builds: kill points inside WAL checkpoints and syncs; power loss --------------- */
#ifdef LL_FAILPOINTS
/* In WAL mode only a checkpoint writes the main database file (besides the one header write
 * that turns WAL mode on), so a VFS that passes the failpoint "checkpoint_write" before every
 * write to a main database file lets a test kill labloopd in the middle of a checkpoint;
 * "wal_sync" is passed before an xSync of the WAL that follows frame writes (a commit's frames
 * written, not yet durable; not the syncs of a header alone or of nothing new), and "db_sync"
 * before an xSync of the database file that follows page writes (a checkpoint's pages
 * written, not yet durable).
 * The VFS wraps the default one and becomes the default; every other call goes straight
 * through. LABLOOP_WAL_AUTOCHECKPOINT=pages makes checkpoints frequent enough for a small test.
 * With LABLOOP_POWERLOSS=SEED the VFS also reports every write and truncate of the database,
 * its WAL and its journal, with the bytes they replace, and every sync, to daemon/powerloss.h,
 * which damages whatever is unsynced when a kill point fires: a power cut, not just a crash. */
struct fp_file {
    sqlite3_file base;
    sqlite3_file *real; /* the wrapped VFS's file, allocated right after this struct */
    const char *path;   /* SQLite's name for it (valid until xClose); NULL for temp files */
    int main_db, wal;
    int written; /* since its last sync: WAL frames (not just its header) or database pages */
    int track;   /* power loss simulated: writes and syncs reported to powerloss */
};

static sqlite3_vfs fp_vfs;
static sqlite3_vfs *fp_real;
static sqlite3_io_methods fp_io;
static int fp_powerloss;                 /* powerloss_start's result: 1 on, 0 off, < 0 error */
static struct ll_error fp_powerloss_err; /* its message when < 0 */

#define FP_REAL(f) (((struct fp_file *)(f))->real)

static int fp_close(sqlite3_file *f)
{
    return FP_REAL(f)->pMethods->xClose(FP_REAL(f));
}
static int fp_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return FP_REAL(f)->pMethods->xRead(FP_REAL(f), buf, n, off);
}
/* Reads n bytes at off of real into buf, zeros beyond the end of the file. */
static int fp_read_old(sqlite3_file *real, void *buf, int n, sqlite3_int64 off)
{
    int rc = real->pMethods->xRead(real, buf, n, off);
    return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_OK : rc; /* (the VFS zero-fills the rest) */
}
static int fp_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    struct fp_file *p = (struct fp_file *)f;
    if (p->main_db)
        LL_FAILPOINT("checkpoint_write");
    if (p->main_db || (p->wal && off >= 32)) /* (a WAL's header is its first 32 bytes) */
        p->written = 1;
    if (!p->track || n <= 0)
        return p->real->pMethods->xWrite(p->real, buf, n, off);
    unsigned char *old = malloc((size_t)n);
    if (old == NULL)
        return SQLITE_IOERR_NOMEM;
    powerloss_lock(); /* the old bytes, the write and its note as one, for a cut */
    sqlite3_int64 size = 0;
    int rc = p->real->pMethods->xFileSize(p->real, &size);
    if (rc == SQLITE_OK)
        rc = fp_read_old(p->real, old, n, off);
    if (rc == SQLITE_OK)
        rc = p->real->pMethods->xWrite(p->real, buf, n, off);
    if (rc == SQLITE_OK)
        powerloss_note_write(p->path, off, old, buf, (size_t)n, size);
    powerloss_unlock();
    free(old);
    return rc;
}
static int fp_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct fp_file *p = (struct fp_file *)f;
    if (!p->track)
        return p->real->pMethods->xTruncate(p->real, size);
    unsigned char *tail = NULL;
    powerloss_lock();
    sqlite3_int64 old_size = 0;
    int rc = p->real->pMethods->xFileSize(p->real, &old_size);
    if (rc == SQLITE_OK && old_size > size) {
        tail = malloc((size_t)(old_size - size));
        rc = tail == NULL ? SQLITE_IOERR_NOMEM
                          : fp_read_old(p->real, tail, (int)(old_size - size), size);
    }
    if (rc == SQLITE_OK)
        rc = p->real->pMethods->xTruncate(p->real, size);
    if (rc == SQLITE_OK)
        powerloss_note_truncate(p->path, size, old_size, tail);
    powerloss_unlock();
    free(tail);
    return rc;
}
static int fp_sync_delay_ms = -1; /* LABLOOP_SYNC_DELAY_MS: a slow disk */

static int fp_sync(sqlite3_file *f, int flags)
{
    struct fp_file *p = (struct fp_file *)f;
    if (p->main_db && p->written)
        LL_FAILPOINT("db_sync");
    else if (p->wal && p->written)
        LL_FAILPOINT("wal_sync");
    p->written = 0;
    if (fp_sync_delay_ms > 0)
        usleep((useconds_t)fp_sync_delay_ms * 1000u);
    /* what was written before the sync began is durable once it returns; not what came during */
    uint64_t ticket = p->track ? powerloss_ticket() : 0;
    int rc = p->real->pMethods->xSync(p->real, flags);
    if (rc == SQLITE_OK && p->track)
        powerloss_synced(p->path, ticket);
    return rc;
}
static int fp_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return FP_REAL(f)->pMethods->xFileSize(FP_REAL(f), size);
}
static int fp_lock(sqlite3_file *f, int level)
{
    return FP_REAL(f)->pMethods->xLock(FP_REAL(f), level);
}
static int fp_unlock(sqlite3_file *f, int level)
{
    return FP_REAL(f)->pMethods->xUnlock(FP_REAL(f), level);
}
static int fp_check_reserved(sqlite3_file *f, int *out)
{
    return FP_REAL(f)->pMethods->xCheckReservedLock(FP_REAL(f), out);
}
static int fp_file_control(sqlite3_file *f, int op, void *arg)
{
    return FP_REAL(f)->pMethods->xFileControl(FP_REAL(f), op, arg);
}
static int fp_sector_size(sqlite3_file *f)
{
    return FP_REAL(f)->pMethods->xSectorSize(FP_REAL(f));
}
static int fp_device_characteristics(sqlite3_file *f)
{
    return FP_REAL(f)->pMethods->xDeviceCharacteristics(FP_REAL(f));
}
static int fp_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return FP_REAL(f)->pMethods->xShmMap(FP_REAL(f), region, size, extend, out);
}
static int fp_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return FP_REAL(f)->pMethods->xShmLock(FP_REAL(f), offset, n, flags);
}
static void fp_shm_barrier(sqlite3_file *f)
{
    FP_REAL(f)->pMethods->xShmBarrier(FP_REAL(f));
}
static int fp_shm_unmap(sqlite3_file *f, int del)
{
    return FP_REAL(f)->pMethods->xShmUnmap(FP_REAL(f), del);
}
static int fp_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return FP_REAL(f)->pMethods->xFetch(FP_REAL(f), off, n, out);
}
static int fp_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return FP_REAL(f)->pMethods->xUnfetch(FP_REAL(f), off, p);
}

static int fp_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    struct fp_file *p = (struct fp_file *)file;
    p->real = (sqlite3_file *)(p + 1);
    p->path = name;
    p->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    p->wal = (flags & SQLITE_OPEN_WAL) != 0;
    p->track = name != NULL && fp_powerloss > 0 &&
               (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0;
    int rc = fp_real->xOpen(fp_real, name, p->real, flags, out);
    p->base.pMethods = rc == SQLITE_OK && p->real->pMethods != NULL ? &fp_io : NULL;
    return rc;
}

static int fp_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    int rc = fp_real->xDelete(fp_real, name, sync_dir);
    if (rc == SQLITE_OK && fp_powerloss > 0)
        powerloss_forget(name);
    return rc;
}

static void fp_register(void)
{
    fp_real = sqlite3_vfs_find(NULL);
    if (fp_real == NULL || fp_real->iVersion < 2)
        return;
    const char *delay = getenv("LABLOOP_SYNC_DELAY_MS");
    fp_sync_delay_ms = delay != NULL ? atoi(delay) : 0;
    fp_powerloss = powerloss_start(getenv("LABLOOP_POWERLOSS"), &fp_powerloss_err);
    fp_vfs = *fp_real; /* the other methods and pAppData are the wrapped VFS's */
    fp_vfs.zName = "ll_failpoint";
    fp_vfs.szOsFile = (int)sizeof(struct fp_file) + fp_real->szOsFile;
    fp_vfs.xOpen = fp_open;
    fp_vfs.xDelete = fp_delete;
    fp_vfs.pNext = NULL;
    fp_io = (sqlite3_io_methods){3,
                                 fp_close,
                                 fp_read,
                                 fp_write,
                                 fp_truncate,
                                 fp_sync,
                                 fp_file_size,
                                 fp_lock,
                                 fp_unlock,
                                 fp_check_reserved,
                                 fp_file_control,
                                 fp_sector_size,
                                 fp_device_characteristics,
                                 fp_shm_map,
                                 fp_shm_lock,
                                 fp_shm_barrier,
                                 fp_shm_unmap,
                                 fp_fetch,
                                 fp_unfetch};
    sqlite3_vfs_register(&fp_vfs, 1);
}

static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

/* LABLOOP_WAL_AUTOCHECKPOINT=pages; and LABLOOP_SYNCHRONOUS=NORMAL (or OFF; FULL is the
 * store's own), which weakens the store on purpose so that the power-loss test can show that
 * it notices acked data lost. */
static int fp_setup(struct store *s, struct ll_error *err)
{
    const char *pages = getenv("LABLOOP_WAL_AUTOCHECKPOINT");
    const char *sync = getenv("LABLOOP_SYNCHRONOUS");
    int r = 0;
    if (pages != NULL) {
        char pragma[64];
        snprintf(pragma,
                 sizeof(pragma),
                 "PRAGMA wal_autocheckpoint=%d",
                 atoi(pages)); /* sql-lint: constant */
        r = exec(s, pragma, err);
    }
    if (r == 0 && sync != NULL && strcmp(sync, "NORMAL") == 0)
        r = exec(s, "PRAGMA synchronous=NORMAL", err);
    else if (r == 0 && sync != NULL && strcmp(sync, "OFF") == 0)
        r = exec(s, "PRAGMA synchronous=OFF", err);
    else if (r == 0 && sync != NULL && *sync != '\0' && strcmp(sync, "FULL") != 0)
        r = ll_error_set(
            err, -EINVAL, "LABLOOP_SYNCHRONOUS='%s': expected FULL, NORMAL or OFF", sync);
    return r;
}
#endif

/* Finalizes the cached statements and closes s->db (s itself stays). */
static void close_db(struct store *s)
{
    for (int i = 0; i < s->n_cache; i++) {
        sqlite3_finalize(s->cache[i].st);
        free(s->cache[i].sql);
    }
    s->n_cache = 0;
    sqlite3_close_v2(s->db);
    s->db = NULL;
}

/* Opens s->db on path with flags; "how" says which way, in the message. */
static int
open_db(struct store *s, const char *path, int flags, const char *how, struct ll_error *err)
{
    int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        return 0;
    return ll_error_set(err,
                        map_rc(rc),
                        "store: cannot open %s%s: %s",
                        path,
                        how,
                        s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

int store_open(const char *path, struct store **ret_store, struct ll_error *reterr)
{
    jsonmem_install();
    struct store *s = calloc(1, sizeof(*s));
    int r = 0;
    if (s == NULL)
        return ll_error_set(reterr, -ENOMEM, "store: out of memory");
#ifdef LL_FAILPOINTS
    pthread_once(&fp_once, fp_register);
    if (fp_powerloss < 0) {
        r = ll_error_set(reterr, fp_powerloss, "%s", fp_powerloss_err.msg);
        goto out;
    }
#endif
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(s->dir, sizeof(s->dir), ".");
    else
        snprintf(s->dir, sizeof(s->dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    r = open_db(s, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "", reterr);
    if (r < 0)
        goto out;
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_busy_timeout(s->db, BUSY_MS);
    r = exec(
        s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", reterr);
#ifdef LL_FAILPOINTS
    if (r == 0)
        r = fp_setup(s, reterr);
#endif
    if (r == 0)
        r = check_quick(s, "PRAGMA quick_check", reterr);
    if (r == 0)
        r = migrate(s, reterr);
    if (r < 0)
        ll_error_prefix(reterr, "%s", path);
out:
    if (r < 0)
        store_close(&s);
    *ret_store = s;
    return r;
}

int store_inspect(const char *path, struct store_info *info, struct ll_error *reterr)
{
    memset(info, 0, sizeof(*info));
    struct store tmp, *s = &tmp;
    memset(s, 0, sizeof(*s));
    int r = open_db(s, path, SQLITE_OPEN_READONLY, " read-only", reterr);
    if (r < 0)
        goto out;
    sqlite3_busy_timeout(s->db, BUSY_MS);
    int64_t page_size = 0, pages = 0, freelist = 0;
    r = one_int(s, prep(s, reterr, "PRAGMA user_version", ""), &info->schema_version, reterr);
    if (r == 0)
        r = one_int(s, prep(s, reterr, "PRAGMA page_size", ""), &page_size, reterr);
    if (r == 0)
        r = one_int(s, prep(s, reterr, "PRAGMA page_count", ""), &pages, reterr);
    if (r == 0)
        r = one_int(s, prep(s, reterr, "PRAGMA freelist_count", ""), &freelist, reterr);
    if (r < 0)
        goto out;
    info->bytes = page_size * pages;
    info->free_bytes = page_size * freelist;
    sqlite3_stmt *st = prep(s, reterr, "PRAGMA quick_check", "");
    if (st == NULL) {
        r = reterr != NULL && reterr->code ? reterr->code : -EIO;
        goto out;
    }
    int rc = sqlite3_step(st);
    snprintf(info->quick_check,
             sizeof(info->quick_check),
             "%s",
             rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : sqlite3_errmsg(s->db));
    release(s, st);
    if (info->schema_version >= 1) {
        static const char *const tables[] = {"campaigns", "experiments", "measurements", "events"};
        int64_t *counts[] = {
            &info->n_campaigns, &info->n_experiments, &info->n_measurements, &info->n_events};
        for (int i = 0; i < 4 && r == 0; i++) {
            char sql[64];
            snprintf(
                sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]); /* sql-lint: constant */
            r = one_int(s, prep(s, reterr, sql, ""), counts[i], reterr);
        }
    }
out:
    close_db(s);
    return r;
}

void store_close(struct store **s)
{
    if (s == NULL || *s == NULL)
        return;
    close_db(*s);
    free(*s);
    *s = NULL;
}

void store_check_durable(struct store *s, const char *what)
{
#ifdef LL_FAILPOINTS
    if (fp_powerloss <= 0 || s == NULL || s->db == NULL)
        return;
    int in_tx = !sqlite3_get_autocommit(s->db);
    long unsynced = powerloss_check();
    if (in_tx || unsynced > 0)
        log_line(LOG_LVL_ERR,
                 "store: %s told while %s%ld writes await an fsync",
                 what,
                 in_tx ? "a transaction is open and " : "",
                 unsynced);
#else
    (void)s;
    (void)what;
#endif
}

int store_begin(struct store *s, struct ll_error *reterr)
{
    if (s->tx_depth++ > 0)
        return 0;
    s->changes_at_begin = sqlite3_total_changes64(s->db);
    int r = exec(s, "BEGIN IMMEDIATE", reterr);
    if (r < 0)
        s->tx_depth = 0;
    return r;
}

int store_commit(struct store *s, struct ll_error *reterr)
{
    if (s->tx_depth == 0)
        return ll_error_set(reterr, -EINVAL, "store: commit without a transaction");
    if (--s->tx_depth > 0)
        return 0;
    int r = exec(s, "COMMIT", reterr);
    if (r < 0)
        store_rollback(s);
    else if (sqlite3_total_changes64(s->db) > s->changes_at_begin)
        note_ok(s); /* (an empty transaction commits on a full disk too) */
    return r;
}

const char *store_write_error(const struct store *s, int64_t *ret_since_ms)
{
    if (ret_since_ms != NULL)
        *ret_since_ms = s->werr_since;
    return s->werr_since != 0 ? s->werr : NULL;
}

int store_probe_write(struct store *s, struct ll_error *reterr)
{
    struct statvfs fs;
    if (statvfs(s->dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < STORE_MIN_FREE_BYTES)
        return ll_error_set(reterr,
                            -ENOSPC,
                            "store: only %llu KiB free in %s",
                            (unsigned long long)fs.f_bavail * fs.f_frsize / 1024,
                            s->dir);
    /* room for STORE_PROBE_BYTES more: a tiny write can succeed in reused WAL space while a
     * measurement would not */
    int r = store_begin(s, reterr);
    if (r == 0)
        r = run(s,
                prep(s,
                     reterr,
                     "INSERT INTO meta(key, value) VALUES ('store_probe', zeroblob(?)) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     "i",
                     (int64_t)STORE_PROBE_BYTES),
                reterr,
                "probe");
    if (r == 0)
        r = store_commit(s, reterr);
    else
        store_rollback(s);
    char now[32];
    snprintf(now, sizeof(now), "%lld", (long long)ll_wall_ms());
    if (r == 0)
        r = store_meta_set(s, "store_probe", now, reterr); /* the room back */
    return r;
}

void store_rollback(struct store *s)
{
    s->tx_depth = 0;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_backup(struct store *s, const char *path, struct ll_error *reterr)
{
    sqlite3 *dst = NULL;
    int r = 0;
    FILE *probe = fopen(path, "r");
    if (probe != NULL) {
        fclose(probe);
        return ll_error_set(reterr, -EEXIST, "backup: %s exists; choose a new file", path);
    }
    int rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        r = ll_error_set(reterr, map_rc(rc), "backup: cannot create %s", path);
        goto out;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", s->db, "main");
    if (b == NULL) {
        r = ll_error_set(reterr, map_rc(sqlite3_errcode(dst)), "backup: %s", sqlite3_errmsg(dst));
        goto out;
    }
    /* all pages in one step: the source connection is ours, so nothing else writes meanwhile */
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        r = ll_error_set(reterr, map_rc(rc), "backup to %s: %s", path, sqlite3_errstr(rc));
out:
    sqlite3_close_v2(dst);
    return r;
}

int store_integrity_check(struct store *s, struct ll_error *reterr)
{
    return check_quick(s, "PRAGMA integrity_check", reterr);
}

/* --- meta and events --------------------------------------------------------------------- */

int store_meta_set(struct store *s, const char *key, const char *value, struct ll_error *reterr)
{
    return run(s,
               prep(s,
                    reterr,
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    "ss",
                    key,
                    value),
               reterr,
               "meta");
}

int store_meta_get(struct store *s, const char *key, char *buf, size_t n, struct ll_error *reterr)
{
    sqlite3_stmt *st = prep(s, reterr, "SELECT value FROM meta WHERE key = ?", "s", key);
    if (st == NULL)
        return reterr != NULL ? reterr->code : -EIO;
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW) {
        snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
        r = 1;
    } else if (rc != SQLITE_DONE) {
        r = fail(s, rc, reterr, "meta");
    }
    release(s, st);
    return r;
}

int store_event(struct store *s,
                int64_t campaign_id,
                int64_t experiment_id,
                int64_t step_id,
                int level,
                const char *kind,
                const char *message,
                struct ll_error *reterr)
{
    return run(s,
               prep(s,
                    reterr,
                    "INSERT INTO events(at, level, campaign_id, experiment_id, step_id, kind, "
                    "message) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    "iinnnss",
                    ll_wall_ms(),
                    (int64_t)level,
                    campaign_id,
                    experiment_id,
                    step_id,
                    kind,
                    message),
               reterr,
               "event");
}

json_t *store_events_json(struct store *s, int64_t campaign_id, int limit, struct ll_error *reterr)
{
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT * FROM (SELECT id, at, level, campaign_id, experiment_id, "
                          "step_id, kind, message FROM events WHERE (?1 = 0 OR campaign_id = ?1) "
                          "ORDER BY id DESC LIMIT ?2) ORDER BY id",
                          "ii",
                          campaign_id,
                          (int64_t)limit),
                     reterr);
}

/* --- state changes --------------------------------------------------------------------- */

/* Reads the state of row id in table (names: the state names) into *ret_state. */
static int get_state(struct store *s,
                     const char *table,
                     const char *const *names,
                     int n,
                     int64_t id,
                     struct ll_error *err)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT state FROM %s WHERE id = ?", table); /* sql-lint: constant */
    sqlite3_stmt *st = prep(s, err, sql, "i", id);
    if (st == NULL)
        return err != NULL ? err->code : -EIO;
    int rc = sqlite3_step(st);
    int r;
    if (rc == SQLITE_ROW)
        r = from_name(names, n, (const char *)sqlite3_column_text(st, 0));
    else if (rc == SQLITE_DONE)
        r = ll_error_set(err, -ENOENT, "store: no row %lld in %s", (long long)id, table);
    else
        r = fail(s, rc, err, table);
    release(s, st);
    return r;
}

int store_campaign_get_state(struct store *s, int64_t id, struct ll_error *reterr)
{
    return get_state(s, "campaigns", campaign_names, STORE_CAMPAIGN_N_STATES, id, reterr);
}
int store_experiment_get_state(struct store *s, int64_t id, struct ll_error *reterr)
{
    return get_state(s, "experiments", experiment_names, STORE_EXP_N_STATES, id, reterr);
}
int store_step_get_state(struct store *s, int64_t id, struct ll_error *reterr)
{
    return get_state(s, "steps", step_names, STORE_STEP_N_STATES, id, reterr);
}

int store_campaign_create(struct store *s,
                          const char *name,
                          const char *file_text,
                          const char *approval,
                          int64_t *ret_id,
                          struct ll_error *reterr)
{
    int64_t now = ll_wall_ms();
    int r = run(s,
                prep(s,
                     reterr,
                     "INSERT INTO campaigns(name, state, approval, file_text, created_at, "
                     "updated_at) VALUES (?, 'running', ?, ?, ?, ?)",
                     "sssii",
                     name,
                     approval,
                     file_text,
                     now,
                     now),
                reterr,
                "campaign");
    if (r == 0)
        *ret_id = sqlite3_last_insert_rowid(s->db);
    return r;
}

int store_campaign_set_reason(struct store *s,
                              int64_t id,
                              const char *reason,
                              struct ll_error *reterr)
{
    return run(s,
               prep(s,
                    reterr,
                    "UPDATE campaigns SET reason = ?, updated_at = ? WHERE id = ?",
                    "sii",
                    reason,
                    ll_wall_ms(),
                    id),
               reterr,
               "campaign reason");
}

int store_campaign_set_state(
    struct store *s, int64_t id, int to, const char *reason, struct ll_error *reterr)
{
    int from = store_campaign_get_state(s, id, reterr);
    if (from < 0)
        return from;
    if (!store_campaign_transition_ok(from, to))
        return ll_error_set(reterr,
                            -EINVAL,
                            "campaign %lld is %s; it cannot become %s",
                            (long long)id,
                            campaign_names[from],
                            store_campaign_state_name(to) ? store_campaign_state_name(to) : "?");
    int r = run(s,
                prep(s,
                     reterr,
                     "UPDATE campaigns SET state = ?, reason = coalesce(?, reason), updated_at = ? "
                     "WHERE id = ?",
                     "ssii",
                     campaign_names[to],
                     reason,
                     ll_wall_ms(),
                     id),
                reterr,
                "campaign state");
    if (r == 0) {
        char msg[256];
        snprintf(msg,
                 sizeof(msg),
                 "%s -> %s%s%s",
                 campaign_names[from],
                 campaign_names[to],
                 reason ? ": " : "",
                 reason ? reason : "");
        r = store_event(s, id, 0, 0, 6, "campaign", msg, reterr);
    }
    return r;
}

json_t *store_campaigns_json(struct store *s, int all, struct ll_error *reterr)
{
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT id, name, state, approval, created_at, updated_at, reason, "
                          "file_text FROM campaigns WHERE ?1 OR state IN ('running', 'paused', "
                          "'stopped') ORDER BY id",
                          "i",
                          (int64_t)(all != 0)),
                     reterr);
}

int store_experiment_create(struct store *s,
                            int64_t campaign_id,
                            int idx,
                            int round,
                            int well,
                            json_t *params,
                            double acquisition,
                            int64_t *ret_id,
                            struct ll_error *reterr)
{
    char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (text == NULL)
        return ll_error_set(reterr, -ENOMEM, "store: cannot encode parameters");
    int64_t now = ll_wall_ms();
    int r = run(s,
                prep(s,
                     reterr,
                     "INSERT INTO experiments(campaign_id, idx, round, well, state, params, "
                     "acquisition, created_at, updated_at) VALUES (?, ?, ?, ?, 'proposed', ?, "
                     "?, ?, ?)",
                     "iiiisdii",
                     campaign_id,
                     (int64_t)idx,
                     (int64_t)round,
                     (int64_t)well,
                     text,
                     acquisition,
                     now,
                     now),
                reterr,
                "experiment");
    free(text);
    if (r < 0)
        return r;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    char sample[32];
    snprintf(sample, sizeof(sample), "S%06lld", (long long)id);
    r = run(s,
            prep(s, reterr, "UPDATE experiments SET sample = ? WHERE id = ?", "si", sample, id),
            reterr,
            "experiment sample");
    if (r == 0)
        *ret_id = id;
    return r;
}

int store_experiment_set_state(
    struct store *s, int64_t id, int to, const char *reason, struct ll_error *reterr)
{
    int from = store_experiment_get_state(s, id, reterr);
    if (from < 0)
        return from;
    if (!store_experiment_transition_ok(from, to))
        return ll_error_set(reterr,
                            -EINVAL,
                            "experiment %lld is %s; it cannot become %s",
                            (long long)id,
                            experiment_names[from],
                            store_experiment_state_name(to) ? store_experiment_state_name(to)
                                                            : "?");
    return run(s,
               prep(s,
                    reterr,
                    "UPDATE experiments SET state = ?, reason = coalesce(?, reason), "
                    "updated_at = ? WHERE id = ?",
                    "ssii",
                    experiment_names[to],
                    reason,
                    ll_wall_ms(),
                    id),
               reterr,
               "experiment state");
}

int store_experiment_set_reason(struct store *s,
                                int64_t id,
                                const char *reason,
                                struct ll_error *reterr)
{
    return run(s,
               prep(s,
                    reterr,
                    "UPDATE experiments SET reason = ?, updated_at = ? WHERE id = ?",
                    "sii",
                    reason,
                    ll_wall_ms(),
                    id),
               reterr,
               "experiment reason");
}

int store_experiment_by_sample(struct store *s,
                               const char *sample,
                               int64_t *ret_id,
                               struct ll_error *reterr)
{
    return one_int(s,
                   prep(s, reterr, "SELECT id FROM experiments WHERE sample = ?", "s", sample),
                   ret_id,
                   reterr);
}

json_t *store_experiments_json(struct store *s, int64_t campaign_id, struct ll_error *reterr)
{
    return store_experiments_page_json(s, campaign_id, 0, 0, reterr);
}

json_t *store_experiments_page_json(
    struct store *s, int64_t campaign_id, int64_t after_id, int limit, struct ll_error *reterr)
{
    return rows_json(
        s,
        prep(s,
             reterr,
             "SELECT e.id, e.campaign_id, e.idx, e.round, e.well, e.sample, e.state, e.reason, "
             "e.params AS params_json, e.acquisition, "
             "(SELECT json_group_object(o.name, o.value) FROM objectives o "
             " WHERE o.experiment_id = e.id) AS objectives_json, e.created_at, e.updated_at "
             "FROM experiments e WHERE (?1 = 0 OR e.campaign_id = ?1) AND e.id > ?2 "
             "ORDER BY e.id LIMIT ?3",
             "iii",
             campaign_id,
             after_id,
             (int64_t)(limit > 0 ? limit : -1)),
        reterr);
}

int store_rack_occupied(struct store *s,
                        int n_wells,
                        unsigned char *occupied,
                        struct ll_error *reterr)
{
    for (int w = 0; w < n_wells; w++)
        occupied[w] = 0;
    sqlite3_stmt *st = prep(s,
                            reterr,
                            "SELECT DISTINCT well FROM experiments e WHERE unloaded_at IS NULL "
                            "AND well >= 0 AND well < ? AND (state NOT IN ('failed', 'abandoned') "
                            "OR EXISTS (SELECT 1 FROM steps t WHERE t.experiment_id = e.id AND "
                            "t.started_at IS NOT NULL))",
                            "i",
                            (int64_t)n_wells);
    if (st == NULL)
        return reterr != NULL && reterr->code != 0 ? reterr->code : -EIO;
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int w = sqlite3_column_int(st, 0);
        if (w >= 0 && w < n_wells && !occupied[w]) {
            occupied[w] = 1;
            n++;
        }
    }
    int r = rc == SQLITE_DONE ? n : fail(s, rc, reterr, "rack wells");
    release(s, st);
    return r;
}

int store_rack_unload(struct store *s, int *ret_n, struct ll_error *reterr)
{
    int r = run(s,
                prep(s,
                     reterr,
                     "UPDATE experiments SET unloaded_at = ? WHERE unloaded_at IS NULL AND state "
                     "IN ('measured', 'failed', 'abandoned')",
                     "i",
                     ll_wall_ms()),
                reterr,
                "rack unload");
    if (r == 0)
        *ret_n = sqlite3_changes(s->db);
    return r;
}

int store_experiment_counts(
    struct store *s, int64_t campaign_id, int *ret_total, int *ret_final, struct ll_error *reterr)
{
    sqlite3_stmt *st = prep(s,
                            reterr,
                            "SELECT count(*), coalesce(sum(state IN ('measured', 'failed', "
                            "'abandoned')), 0) FROM experiments WHERE campaign_id = ? AND NOT "
                            "(state = 'abandoned' AND reason = 'denied by operator')",
                            "i",
                            campaign_id);
    if (st == NULL)
        return reterr != NULL ? reterr->code : -EIO;
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW) {
        *ret_total = sqlite3_column_int(st, 0);
        *ret_final = sqlite3_column_int(st, 1);
    } else {
        r = fail(s, rc, reterr, "experiment counts");
    }
    release(s, st);
    return r;
}

int store_step_create(struct store *s,
                      int64_t experiment_id,
                      int idx,
                      const char *instrument,
                      const char *action,
                      json_t *params,
                      int64_t expected_ms,
                      const char *request,
                      int64_t *ret_id,
                      struct ll_error *reterr)
{
    char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (text == NULL)
        return ll_error_set(reterr, -ENOMEM, "store: cannot encode step parameters");
    int r = run(s,
                prep(s,
                     reterr,
                     "INSERT INTO steps(experiment_id, idx, instrument, action, params, state, "
                     "expected_ms, request) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                     "iisssis",
                     experiment_id,
                     (int64_t)idx,
                     instrument,
                     action,
                     text,
                     expected_ms,
                     request),
                reterr,
                "step");
    free(text);
    if (r == 0)
        *ret_id = sqlite3_last_insert_rowid(s->db);
    return r;
}

int store_step_set_state(struct store *s,
                         int64_t id,
                         int to,
                         int64_t deadline_ms,
                         const char *result,
                         struct ll_error *reterr)
{
    int from = store_step_get_state(s, id, reterr);
    if (from < 0)
        return from;
    if (!store_step_transition_ok(from, to))
        return ll_error_set(reterr,
                            -EINVAL,
                            "step %lld is %s; it cannot become %s",
                            (long long)id,
                            step_names[from],
                            store_step_state_name(to) ? store_step_state_name(to) : "?");
    int64_t now = ll_wall_ms();
    if (to == STORE_STEP_STARTED)
        return run(s,
                   prep(s,
                        reterr,
                        "UPDATE steps SET state = 'started', started_at = ?, deadline_at = ?, "
                        "job = (SELECT coalesce(max(job), 0) + 1 FROM steps) WHERE id = ?",
                        "iii",
                        now,
                        now + deadline_ms,
                        id),
                   reterr,
                   "step state");
    if (to == STORE_STEP_PENDING)
        return run(
            s,
            prep(s,
                 reterr,
                 "UPDATE steps SET state = 'pending', started_at = NULL, deadline_at = NULL, "
                 "result = ? WHERE id = ?",
                 "si",
                 result,
                 id),
            reterr,
            "step state");
    if (to == STORE_STEP_UNKNOWN)
        return run(s,
                   prep(s,
                        reterr,
                        "UPDATE steps SET state = 'unknown', result = ? WHERE id = ?",
                        "si",
                        result,
                        id),
                   reterr,
                   "step state");
    return run(s,
               prep(s,
                    reterr,
                    /* wall time, never before the start: a clock set back during a step
                     * shortens its stored duration instead of making it negative */
                    "UPDATE steps SET state = ?, finished_at = max(?2, coalesce(started_at, ?2)), "
                    "result = ? WHERE id = ?",
                    "sisi",
                    step_names[to],
                    now,
                    result,
                    id),
               reterr,
               "step state");
}

static const char steps_columns[] =
    "SELECT s.id, s.experiment_id, s.idx, s.attempt, s.instrument, s.action, "
    "s.params AS params_json, s.state, s.expected_ms, s.deadline_at, s.started_at, "
    "s.finished_at, s.result, s.request, s.job, e.sample, e.campaign_id, e.well "
    "FROM steps s JOIN experiments e ON e.id = s.experiment_id ";

json_t *store_steps_json(struct store *s,
                         int64_t campaign_id,
                         int64_t experiment_id,
                         struct ll_error *reterr)
{
    char sql[1024];
    snprintf(sql,
             sizeof(sql),
             "%s WHERE (?1 <> 0 AND s.experiment_id = ?1) OR (?1 = 0 AND e.campaign_id = ?2 AND "
             "e.state NOT IN ('measured', 'failed', 'abandoned')) ORDER BY s.experiment_id, "
             "s.idx, s.attempt",
             steps_columns);
    return rows_json(s, prep(s, reterr, sql, "ii", experiment_id, campaign_id), reterr);
}

json_t *store_questions_json(struct store *s, struct ll_error *reterr)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), "%s WHERE s.state = 'unknown' ORDER BY s.id", steps_columns);
    return rows_json(s, prep(s, reterr, sql, ""), reterr);
}

int store_step_get_job(struct store *s, int64_t id, int64_t *ret_job, struct ll_error *reterr)
{
    int r = one_int(s,
                    prep(s, reterr, "SELECT coalesce(job, 0) FROM steps WHERE id = ?", "i", id),
                    ret_job,
                    reterr);
    return r;
}

int store_step_by_request(struct store *s,
                          const char *request,
                          int64_t *ret_step_id,
                          int64_t *ret_experiment_id,
                          struct ll_error *reterr)
{
    int r = one_int(s,
                    prep(s, reterr, "SELECT id FROM steps WHERE request = ?", "s", request),
                    ret_step_id,
                    reterr);
    if (r == 0)
        r = one_int(
            s,
            prep(s, reterr, "SELECT experiment_id FROM steps WHERE id = ?", "i", *ret_step_id),
            ret_experiment_id,
            reterr);
    return r;
}

/* --- measurements ------------------------------------------------------------------------ */

int store_measurement_put(struct store *s,
                          const char *station,
                          const char *epoch,
                          int64_t seq,
                          const char *request,
                          const char *kind,
                          const char *sample,
                          int64_t experiment_id,
                          int64_t step_id,
                          const char *time,
                          const char *raw,
                          size_t len,
                          int *ret_outcome,
                          int64_t *ret_id,
                          struct ll_error *reterr)
{
    char hash[SHA256_HEX_LEN];
    sha256_hex(raw, len, hash);
    epoch = epoch != NULL ? epoch : "";
    sqlite3_stmt *st =
        prep(s,
             reterr,
             "SELECT id, hash FROM measurements WHERE station = ? AND epoch = ? AND seq = ?",
             "ssi",
             station,
             epoch,
             seq);
    if (st == NULL)
        return reterr != NULL ? reterr->code : -EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(st, 0);
        *ret_outcome = strcmp((const char *)sqlite3_column_text(st, 1), hash) == 0
                           ? STORE_MEAS_DUPLICATE
                           : STORE_MEAS_CONFLICT;
        release(s, st);
        return 0;
    }
    release(s, st);
    if (rc != SQLITE_DONE)
        return fail(s, rc, reterr, "measurement lookup");
    int r = run(s,
                prep(s,
                     reterr,
                     "INSERT INTO measurements(station, epoch, seq, request, kind, sample, "
                     "experiment_id, step_id, time, received_at, raw, hash, analysed) VALUES (?, "
                     "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                     "ssisssnnsibs",
                     station,
                     epoch,
                     seq,
                     request,
                     kind,
                     sample,
                     experiment_id,
                     step_id,
                     time,
                     ll_wall_ms(),
                     raw,
                     len,
                     hash),
                reterr,
                "measurement");
    if (r == 0) {
        *ret_id = sqlite3_last_insert_rowid(s->db);
        *ret_outcome = STORE_MEAS_STORED;
    }
    return r;
}

json_t *store_measurements_unanalysed(struct store *s, int limit, struct ll_error *reterr)
{
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT id, station, seq, experiment_id, step_id, raw FROM measurements "
                          "WHERE analysed = 0 ORDER BY id LIMIT ?",
                          "i",
                          (int64_t)limit),
                     reterr);
}

int store_measurement_mark_analysed(struct store *s, int64_t id, struct ll_error *reterr)
{
    return run(s,
               prep(s, reterr, "UPDATE measurements SET analysed = 1 WHERE id = ?", "i", id),
               reterr,
               "measurement analysed");
}

int store_rejection_put(struct store *s,
                        const char *station,
                        const char *epoch,
                        int64_t seq,
                        const char *reason,
                        const char *raw,
                        size_t len,
                        struct ll_error *reterr)
{
    char hash[SHA256_HEX_LEN];
    sha256_hex(raw, len, hash);
    size_t keep = len < REJECTION_KEEP_BYTES ? len : REJECTION_KEEP_BYTES;
    /* raw_head is stored as a blob-safe text prefix; invalid UTF-8 is kept byte for byte */
    return run(s,
               prep(s,
                    reterr,
                    "INSERT INTO rejections(received_at, station, epoch, seq, reason, raw_len, "
                    "raw_head, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    "issnsibs",
                    ll_wall_ms(),
                    station,
                    epoch != NULL && epoch[0] != '\0' ? epoch : NULL,
                    seq,
                    reason,
                    (int64_t)len,
                    raw,
                    keep,
                    hash),
               reterr,
               "rejection");
}

int store_derived_put(struct store *s,
                      int64_t measurement_id,
                      const char *name,
                      double value,
                      const char *analysis_version,
                      struct ll_error *reterr)
{
    return run(s,
               prep(s,
                    reterr,
                    "INSERT OR REPLACE INTO derived(measurement_id, name, value, analysis_version) "
                    "VALUES (?, ?, ?, ?)",
                    "isds",
                    measurement_id,
                    name,
                    value,
                    analysis_version),
               reterr,
               "derived");
}

int store_objective_put(struct store *s,
                        int64_t experiment_id,
                        const char *name,
                        double value,
                        int64_t measurement_id,
                        const char *analysis_version,
                        struct ll_error *reterr)
{
    return run(s,
               prep(s,
                    reterr,
                    "INSERT OR REPLACE INTO objectives(experiment_id, name, value, "
                    "measurement_id, analysis_version) VALUES (?, ?, ?, ?, ?)",
                    "isdns",
                    experiment_id,
                    name,
                    value,
                    measurement_id,
                    analysis_version),
               reterr,
               "objective");
}

json_t *
store_measurements_json(struct store *s, int64_t campaign_id, int limit, struct ll_error *reterr)
{
    /* the newest `limit`, listed oldest first; status: pending (not analysed yet), ok (derived
     * numbers stored), failed (analysed, nothing derived: the step's result says why) */
    return rows_json(
        s,
        prep(s,
             reterr,
             "SELECT * FROM (SELECT m.id, m.station, m.epoch, m.seq, m.request, m.kind, m.sample, "
             "m.experiment_id, m.step_id, m.time, m.received_at, length(CAST(m.raw AS BLOB)) AS "
             "bytes, m.hash, CASE WHEN m.analysed = 0 THEN 'pending' WHEN EXISTS (SELECT 1 FROM "
             "derived d WHERE d.measurement_id = m.id) THEN 'ok' ELSE 'failed' END AS status, "
             "(SELECT json_group_object(d.name, d.value) FROM derived d WHERE d.measurement_id = "
             "m.id) AS derived_json, (SELECT t.result FROM steps t WHERE t.id = m.step_id) AS "
             "step_result, (SELECT json_group_array(o.name) FROM objectives o WHERE "
             "o.measurement_id = m.id) AS objectives_json FROM measurements m LEFT JOIN "
             "experiments e ON e.id = m.experiment_id WHERE (?1 = 0 OR e.campaign_id = ?1) "
             "ORDER BY m.id DESC LIMIT ?2) ORDER BY id",
             "ii",
             campaign_id,
             (int64_t)limit),
        reterr);
}

json_t *store_rejections_json(struct store *s, int limit, struct ll_error *reterr)
{
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT * FROM (SELECT id, received_at, station, epoch, seq, reason, "
                          "raw_len AS bytes, hash FROM rejections ORDER BY id DESC LIMIT ?) "
                          "ORDER BY id",
                          "i",
                          (int64_t)limit),
                     reterr);
}

int store_objective_source(struct store *s,
                           int64_t experiment_id,
                           const char *name,
                           int64_t *ret_measurement_id,
                           struct ll_error *reterr)
{
    *ret_measurement_id = 0;
    return one_int(
        s,
        prep(s,
             reterr,
             "SELECT coalesce(measurement_id, 0) FROM objectives WHERE experiment_id = ? "
             "AND name = ?",
             "is",
             experiment_id,
             name),
        ret_measurement_id,
        reterr);
}

int store_measurement_counts(struct store *s,
                             int64_t *ret_stored,
                             int64_t *ret_rejected,
                             struct ll_error *reterr)
{
    int r =
        one_int(s, prep(s, reterr, "SELECT count(*) FROM measurements", ""), ret_stored, reterr);
    if (r == 0)
        r = one_int(
            s, prep(s, reterr, "SELECT count(*) FROM rejections", ""), ret_rejected, reterr);
    return r;
}

int store_measurement_has(struct store *s,
                          const char *station,
                          const char *epoch,
                          int64_t seq,
                          const char *hash_hex,
                          struct ll_error *reterr)
{
    int64_t n = 0;
    int r = one_int(s,
                    prep(s,
                         reterr,
                         "SELECT count(*) FROM measurements WHERE station = ? AND epoch = ? AND "
                         "seq = ? AND hash = ?",
                         "ssis",
                         station,
                         epoch != NULL ? epoch : "",
                         seq,
                         hash_hex),
                    &n,
                    reterr);
    return r < 0 ? r : n > 0;
}

int store_station_epoch_before(struct store *s,
                               const char *station,
                               const char *epoch,
                               char *ret_prev,
                               size_t prev_cap,
                               int64_t *ret_prev_seq,
                               struct ll_error *reterr)
{
    epoch = epoch != NULL ? epoch : "";
    int64_t n = 0;
    int r = one_int(s,
                    prep(s,
                         reterr,
                         "SELECT count(*) FROM measurements WHERE station = ? AND epoch = ?",
                         "ss",
                         station,
                         epoch),
                    &n,
                    reterr);
    if (r < 0 || n != 1)
        return r < 0 ? r : 0;
    /* the newest measurement of the station under another epoch, and the last seq there */
    sqlite3_stmt *st = prep(s,
                            reterr,
                            "SELECT epoch, max(seq) FROM measurements WHERE station = ? AND "
                            "epoch = (SELECT epoch FROM measurements WHERE station = ? AND "
                            "epoch <> ? ORDER BY id DESC LIMIT 1)",
                            "sss",
                            station,
                            station,
                            epoch);
    if (st == NULL)
        return reterr != NULL ? reterr->code : -EIO;
    int rc = sqlite3_step(st);
    r = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        snprintf(ret_prev, prev_cap, "%s", (const char *)sqlite3_column_text(st, 0));
        *ret_prev_seq = sqlite3_column_int64(st, 1);
        r = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        r = fail(s, rc, reterr, "epoch lookup");
    }
    release(s, st);
    return r;
}

/* --- model fits and approvals -------------------------------------------------------------- */

int store_model_fit_put(
    struct store *s, int64_t campaign_id, int round, json_t *fit, struct ll_error *reterr)
{
    char *text = json_dumps(fit, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (text == NULL)
        return ll_error_set(reterr, -ENOMEM, "store: cannot encode the model fit");
    int r = run(s,
                prep(s,
                     reterr,
                     "INSERT INTO model_fits(campaign_id, round, created_at, fit) VALUES (?, ?, "
                     "?, ?)",
                     "iiis",
                     campaign_id,
                     (int64_t)round,
                     ll_wall_ms(),
                     text),
                reterr,
                "model fit");
    free(text);
    return r;
}

json_t *store_model_fits_json(struct store *s, int64_t campaign_id, struct ll_error *reterr)
{
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT campaign_id, round, created_at, fit AS fit_json FROM model_fits "
                          "WHERE campaign_id = ? ORDER BY round",
                          "i",
                          campaign_id),
                     reterr);
}

json_t *store_fallback_rounds_json(struct store *s, int64_t campaign_id, struct ll_error *reterr)
{
    /* parses every fit record of the campaign: 36 ms for the 23 MB of 250 rounds of a
     * 1000-experiment campaign (docs/daemon.md "When the planner fails") */
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT round, json_extract(fit, '$.planner_error') AS planner_error "
                          "FROM model_fits WHERE campaign_id = ? AND json_extract(fit, "
                          "'$.fallback') = 1 ORDER BY round",
                          "i",
                          campaign_id),
                     reterr);
}

json_t *store_predictions_json(
    struct store *s, int64_t campaign_id, int round, int64_t exp_id, struct ll_error *reterr)
{
    return rows_json(s,
                     prep(s,
                          reterr,
                          "SELECT f.round AS round, json_extract(c.value, '$.experiment') AS "
                          "experiment, json_extract(c.value, '$.predicted') AS predicted_json "
                          "FROM model_fits AS f, json_each(f.fit, '$.chosen') AS c "
                          "WHERE f.campaign_id = ?1 AND (?2 < 0 OR f.round = ?2) AND "
                          "(?3 = 0 OR json_extract(c.value, '$.experiment') = ?3) AND "
                          "json_extract(c.value, '$.predicted') IS NOT NULL ORDER BY f.round",
                          "iii",
                          campaign_id,
                          (int64_t)round,
                          exp_id),
                     reterr);
}

int store_approval_put(struct store *s,
                       int64_t campaign_id,
                       int round,
                       const char *state,
                       const char *note,
                       struct ll_error *reterr)
{
    int64_t now = ll_wall_ms();
    return run(s,
               prep(s,
                    reterr,
                    "INSERT INTO approvals(campaign_id, round, state, note, created_at) VALUES "
                    "(?1, ?2, ?3, ?4, ?5) ON CONFLICT(campaign_id, round) DO UPDATE SET state = "
                    "?3, note = coalesce(?4, note), decided_at = ?5",
                    "iissi",
                    campaign_id,
                    (int64_t)round,
                    state,
                    note,
                    now),
               reterr,
               "approval");
}

int store_approval_pending(struct store *s, int64_t campaign_id, struct ll_error *reterr)
{
    int64_t round = 0;
    int r = one_int(s,
                    prep(s,
                         reterr,
                         "SELECT round FROM approvals WHERE campaign_id = ? AND state = "
                         "'pending' ORDER BY round LIMIT 1",
                         "i",
                         campaign_id),
                    &round,
                    reterr);
    return r < 0 ? r : (int)round;
}

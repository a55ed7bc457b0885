/* labloop doctor — checks what a lab engineer would check first, without changing anything:
 * library and package versions, labloopd's configuration and lab file, every instrument's
 * device, the database (schema, quick_check, size, free space), and the running daemon.
 *
 *   labloop doctor [--config FILE] [--lab FILE] [--db FILE] [--run-dir DIR]
 *
 * --config: labloopd.conf (default /etc/labloop/labloopd.conf when it exists); the other
 * options override its keys, as for labloopd. Each finding is one line: "ok", "WARN" or
 * "FAIL", what and why. Exit 0 when nothing failed (warnings allowed), 1 when something did,
 * 2 for bad usage.
 */
#include "common/ll_error.h"
#include "common/ll_text.h"
#include "daemon/commands.h"
#include "daemon/control.h"
#include "daemon/settings.h"
#include "daemon/store.h"
#include "drivers/labconf.h"

#include <errno.h>
#include <gsl/gsl_version.h>
#include <jansson.h>
#include <libconfig.h>
#include <libserialport.h>
#include <modbus/modbus.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zmq.h>

enum finding { OK, WARN, FAIL };

struct report {
    int n[3];
};

static void say(struct report *r, enum finding f, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(struct report *r, enum finding f, const char *what, const char *fmt, ...)
{
    static const char *const tag[] = {"ok  ", "WARN", "FAIL"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("  %s  %-14s %s\n", tag[f], what, msg);
    r->n[f]++;
}

/* Debian's package versions of the shared libraries labloop runs on (reliability.md S9). */
static void packages(struct report *r)
{
    FILE *p = popen("dpkg-query -W -f='${Package} ${Version}\\n' libmodbus5 libzmq5 libsqlite3-0 "
                    "libgsl27 libjansson4 libconfig9 libserialport0 2>/dev/null",
                    "r");
    char line[256];
    int n = 0;
    while (p != NULL && fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strchr(line, ' ') != NULL && line[strlen(line) - 1] != ' ') {
            say(r, OK, "package", "%s", line);
            n++;
        }
    }
    if (p != NULL)
        pclose(p);
    if (n == 0)
        say(r, WARN, "package", "dpkg-query gave no versions (not a Debian system?)");
}

static void versions(struct report *r)
{
    printf("versions\n");
    say(r,
        OK,
        "labloop",
        "0.1.0%s",
#ifdef LL_FAILPOINTS
        " (TEST BUILD with kill points: not for a real lab)"
#else
        ""
#endif
    );
    say(r, OK, "SQLite", "%s (built against %s)", sqlite3_libversion(), SQLITE_VERSION);
    int zmaj = 0, zmin = 0, zpat = 0;
    zmq_version(&zmaj, &zmin, &zpat);
    say(r, OK, "ZeroMQ", "%d.%d.%d", zmaj, zmin, zpat);
    unsigned mb =
        libmodbus_version_major * 10000 + libmodbus_version_minor * 100 + libmodbus_version_micro;
    if (mb < 30111)
        say(r,
            WARN,
            "libmodbus",
            "%u.%u.%u: upstream hardened its server side (modbus_reply) in 3.1.7 and 3.1.11 "
            "and fixed an FD_SET overflow in 3.1.12; Debian may carry the fixes (package "
            "below). labloopd is a client only; keep labsim, a server, on loopback",
            libmodbus_version_major,
            libmodbus_version_minor,
            libmodbus_version_micro);
    else
        say(r,
            OK,
            "libmodbus",
            "%u.%u.%u",
            libmodbus_version_major,
            libmodbus_version_minor,
            libmodbus_version_micro);
    say(r, OK, "GSL", "%s", gsl_version);
    say(r, OK, "jansson", "%s", jansson_version_str());
    say(r,
        OK,
        "libconfig",
        "%d.%d.%d (built against)",
        LIBCONFIG_VER_MAJOR,
        LIBCONFIG_VER_MINOR,
        LIBCONFIG_VER_REVISION);
    say(r, OK, "libserialport", "%s", sp_get_package_version_string());
    packages(r);
}

/* An endpoint only this machine can reach: ipc://, inproc://, or tcp:// on a loopback host. */
static int is_loopback_endpoint(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return 1;
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;
    char host[256];
    const char *colon = strrchr(ep + 6, ':');
    snprintf(
        host, sizeof(host), "%.*s", colon ? (int)(colon - ep - 6) : (int)strlen(ep + 6), ep + 6);
    return ll_host_is_loopback(host);
}

static void device(struct report *r, const struct labconf_instrument *in)
{
    struct stat st;
    if (stat(in->device, &st) != 0)
        say(r, FAIL, in->name, "serial device %s: %s", in->device, strerror(errno));
    else if (!S_ISCHR(st.st_mode))
        say(r, FAIL, in->name, "serial device %s is not a character device", in->device);
    else if (access(in->device, R_OK | W_OK) != 0)
        say(r,
            FAIL,
            in->name,
            "serial device %s: no read/write permission for this user (group dialout?)",
            in->device);
    else
        say(r, OK, in->name, "serial device %s, %d baud", in->device, in->baud);
}

/* The lab file and each instrument's device; the lab is returned for the stations check. */
static struct labconf *lab_check(struct report *r, const struct settings *set)
{
    printf("lab\n");
    struct labconf *lab = NULL;
    struct ll_error err;
    int rc =
        set->lab[0] ? labconf_load_file(set->lab, &lab, &err) : labconf_load_default(&lab, &err);
    if (rc < 0) {
        say(r, FAIL, "lab file", "%s", err.msg);
        return NULL;
    }
    say(r,
        OK,
        "lab file",
        "%s: '%s', %d instruments",
        set->lab[0] ? set->lab : "(embedded simulated lab)",
        lab->name,
        lab->n_instruments);
    for (int i = 0; i < lab->n_instruments; i++) {
        const struct labconf_instrument *in = &lab->instruments[i];
        if (in->device[0] != '\0')
            device(r, in);
        else if (in->port == 0)
            say(r, WARN, in->name, "Modbus TCP %s, port 0 (only labsim fills that in)", in->host);
        else
            say(r, OK, in->name, "Modbus TCP %s:%d (not connected by doctor)", in->host, in->port);
    }
    const char *ep = set->endpoint[0] ? set->endpoint : lab->stations_endpoint;
    if (set->curve_secret[0] != '\0')
        say(r, OK, "stations", "%s, CURVE on, %zu station keys", ep, set->n_keys);
    else if (!is_loopback_endpoint(ep))
        say(r,
            WARN,
            "stations",
            "%s is reachable from the network and CURVE is off: anyone there can post "
            "measurements (set curve_secret_key and station_keys)",
            ep);
    else
        say(r, OK, "stations", "%s (loopback; CURVE off)", ep);
    return lab;
}

static void free_space(struct report *r, const char *dir)
{
    struct statvfs fs;
    if (statvfs(dir, &fs) != 0) {
        say(r, FAIL, "free space", "%s: %s", dir, strerror(errno));
        return;
    }
    double mib = (double)fs.f_bavail * (double)fs.f_frsize / (1024.0 * 1024.0);
    if (mib * 1024 * 1024 < STORE_MIN_FREE_BYTES)
        say(r,
            FAIL,
            "free space",
            "%.1f MiB in %s: labloopd holds every campaign at this",
            mib,
            dir);
    else if (mib < 1024)
        say(r, WARN, "free space", "%.0f MiB in %s (less than 1 GiB)", mib, dir);
    else
        say(r, OK, "free space", "%.1f GiB in %s", mib / 1024, dir);
}

static void database(struct report *r, const char *db)
{
    printf("database\n");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", db);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        *(slash == dir ? slash + 1 : slash) = '\0';
    struct stat st;
    if (stat(db, &st) != 0) {
        if (access(dir, W_OK) != 0)
            say(r,
                FAIL,
                "database",
                "%s does not exist and %s is not writable: %s",
                db,
                dir,
                strerror(errno));
        else
            say(r, WARN, "database", "%s does not exist yet (labloopd creates it)", db);
        free_space(r, dir);
        return;
    }
    struct store_info info;
    struct ll_error err;
    if (store_inspect(db, &info, &err) < 0) {
        say(r, FAIL, "database", "%s", err.msg);
        return;
    }
    if (info.schema_version > STORE_SCHEMA_VERSION)
        say(r,
            FAIL,
            "schema",
            "version %lld is newer than this labloop (%d)",
            (long long)info.schema_version,
            STORE_SCHEMA_VERSION);
    else if (info.schema_version < STORE_SCHEMA_VERSION)
        say(r,
            OK,
            "schema",
            "version %lld (labloopd migrates it to %d at start)",
            (long long)info.schema_version,
            STORE_SCHEMA_VERSION);
    else
        say(r, OK, "schema", "version %lld (current)", (long long)info.schema_version);
    say(r, strcmp(info.quick_check, "ok") == 0 ? OK : FAIL, "quick_check", "%s", info.quick_check);
    char wal[600];
    snprintf(wal, sizeof(wal), "%s-wal", db);
    long long wal_bytes = stat(wal, &st) == 0 ? (long long)st.st_size : 0;
    say(r,
        OK,
        "size",
        "%.1f MiB (%.1f MiB free pages), WAL %.1f MiB; %lld campaigns, %lld "
        "experiments, %lld measurements, %lld events",
        (double)info.bytes / 1048576.0,
        (double)info.free_bytes / 1048576.0,
        (double)wal_bytes / 1048576.0,
        (long long)info.n_campaigns,
        (long long)info.n_experiments,
        (long long)info.n_measurements,
        (long long)info.n_events);
    free_space(r, dir);
}

static void daemon_check(struct report *r, const char *run_dir)
{
    printf("daemon\n");
    json_t *req = json_pack("{s:s}", "cmd", "status"), *st = NULL;
    struct ll_error err;
    int rc = control_call(run_dir, req, 3000, &st, &err);
    json_decref(req);
    if (rc < 0) {
        say(r, WARN, "labloopd", "%s", err.msg);
        return;
    }
    size_t i, running = 0, offline = 0;
    json_t *x;
    json_array_foreach(json_object_get(st, "campaigns"), i, x)
    {
        running += strcmp(json_string_value(json_object_get(x, "state")), "running") == 0;
    }
    say(r, OK, "labloopd", "answers at ipc://%s/control; %zu campaigns running", run_dir, running);
    json_t *se = json_object_get(st, "store_error");
    if (json_is_object(se))
        say(r,
            FAIL,
            "store",
            "writes failing for %.0f s: %s",
            json_real_value(json_object_get(se, "for_s")),
            json_string_value(json_object_get(se, "message")));
    if (json_is_true(json_object_get(st, "estop")))
        say(r, WARN, "e-stop", "latched (labloop campaign resume ID clears it)");
    size_t nq = json_array_size(json_object_get(st, "questions"));
    if (nq > 0)
        say(r, WARN, "questions", "%zu operator questions wait (labloop status)", nq);
    json_array_foreach(json_object_get(st, "stations"), i, x)
    {
        if (!json_is_true(json_object_get(x, "online"))) {
            say(r, WARN, "station", "%s is offline", json_string_value(json_object_get(x, "name")));
            offline++;
        }
    }
    if (offline == 0)
        say(r, OK, "stations", "%zu online", json_array_size(json_object_get(st, "stations")));
    json_decref(st);
}

static void doctor_usage(FILE *out)
{
    fprintf(out,
            "usage: labloop doctor [--config FILE] [--lab FILE] [--db FILE] [--run-dir DIR]\n"
            "Checks versions, labloopd's configuration and lab file, the instruments' devices,\n"
            "the database and the running daemon, changing nothing. One line per finding\n"
            "(ok, WARN, FAIL). Exit 0 when nothing failed, 1 when something did.\n");
}

int cmd_doctor(int argc, char **argv)
{
    struct settings set;
    settings_defaults(&set);
    const char *config = NULL, *lab = NULL, *db = NULL, *run_dir = getenv("LABLOOP_RUN_DIR");
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            doctor_usage(stdout);
            return CMD_EXIT_OK;
        }
        const char **to = strcmp(a, "--config") == 0    ? &config
                          : strcmp(a, "--lab") == 0     ? &lab
                          : strcmp(a, "--db") == 0      ? &db
                          : strcmp(a, "--run-dir") == 0 ? &run_dir
                                                        : NULL;
        if (to == NULL || v == NULL) {
            fprintf(stderr,
                    "labloop doctor: %s: %s\n",
                    a,
                    to == NULL ? "unknown option" : "needs a value");
            doctor_usage(stderr);
            return CMD_EXIT_USAGE;
        }
        *to = v;
    }
    struct report r = {
        {0, 0, 0}
    };
    printf("configuration\n");
    if (config == NULL && access(SETTINGS_DEFAULT_CONFIG, F_OK) == 0)
        config = SETTINGS_DEFAULT_CONFIG;
    struct ll_error err;
    if (config == NULL)
        say(&r,
            OK,
            "labloopd.conf",
            "none (%s does not exist): built-in defaults",
            SETTINGS_DEFAULT_CONFIG);
    else if (settings_load(config, &set, &err) < 0)
        say(&r, FAIL, "labloopd.conf", "%s", err.msg);
    else
        say(&r, OK, "labloopd.conf", "%s", config);
    if (lab != NULL)
        snprintf(set.lab, sizeof(set.lab), "%s", lab);
    if (db != NULL)
        snprintf(set.db, sizeof(set.db), "%s", db);
    if (run_dir != NULL)
        snprintf(set.run_dir, sizeof(set.run_dir), "%s", run_dir);
    versions(&r);
    struct labconf *lc = lab_check(&r, &set);
    labconf_free(&lc);
    database(&r, set.db);
    daemon_check(&r, set.run_dir);
    printf("%d ok, %d warnings, %d failures\n", r.n[OK], r.n[WARN], r.n[FAIL]);
    return r.n[FAIL] > 0 ? CMD_EXIT_FAILED : CMD_EXIT_OK;
}

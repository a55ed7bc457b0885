/* settings — labloopd's configuration (config/labloopd.conf, libconfig syntax), shared by
 * labloopd and `labloop doctor`. Command-line options override what the file says; that
 * part stays with each program. */
#ifndef SETTINGS_H
#define SETTINGS_H

#include "common/ll_error.h"
#include "daemon/ingest.h"

#include <stddef.h>

#define SETTINGS_DEFAULT_DB "/var/lib/labloop/labloop.db"
#define SETTINGS_DEFAULT_RUN_DIR "/run/labloop"
#define SETTINGS_DEFAULT_CONFIG "/etc/labloop/labloopd.conf"

struct settings {
    char db[512], run_dir[512], lab[512], endpoint[256];
    char curve_secret[64]; /* Z85; "" = CURVE off */
    struct ingest_station_key keys[INGEST_MAX_STATIONS];
    size_t n_keys;
    double time_scale;
    int poll_ms, group_commit_ms, log_level;
    int store_alarm_s; /* storage trouble longer than this raises the alarm (critical log) */
};

/* The defaults: db SETTINGS_DEFAULT_DB, run_dir SETTINGS_DEFAULT_RUN_DIR, lab "" (the
 * embedded simulated lab), endpoint "" (the lab's), time scale 1, poll 0 (each instrument's),
 * group commit 2 ms, log level 6, store alarm after 30 s, CURVE off. */
void settings_defaults(struct settings *s);

/* Reads the keys of the daemon group of a labloopd.conf into s (keys not given stay as they
 * are). Returns 0, -EINVAL with "FILE:LINE: problem" in reterr, or -EACCES when the file holds
 * curve_secret_key and every user may read it (ssh-style: group read is fine, other is not). */
int settings_load(const char *path, struct settings *s, struct ll_error *reterr);

#endif

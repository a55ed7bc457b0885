/* settings — see settings.h. */
#include "daemon/settings.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void settings_defaults(struct settings *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->db, sizeof(s->db), "%s", SETTINGS_DEFAULT_DB);
    snprintf(s->run_dir, sizeof(s->run_dir), "%s", SETTINGS_DEFAULT_RUN_DIR);
    s->time_scale = 1.0;
    s->group_commit_ms = 2;
    s->store_alarm_s = 30;
    s->log_level = 6;
}

static void lookup_text(config_t *cfg, const char *key, char *buf, size_t size)
{
    const char *str;
    if (config_lookup_string(cfg, key, &str))
        snprintf(buf, size, "%s", str);
}

static int load_keys(config_t *cfg, const char *path, struct settings *s, struct ll_error *err)
{
    config_setting_t *keys = config_lookup(cfg, "daemon.station_keys");
    int n = keys ? config_setting_length(keys) : 0;
    for (int k = 0; k < n; k++) {
        config_setting_t *e = config_setting_get_elem(keys, (unsigned)k);
        const char *name = NULL, *key = NULL;
        if (!config_setting_lookup_string(e, "station", &name) ||
            !config_setting_lookup_string(e, "public_key", &key) ||
            (size_t)k >= INGEST_MAX_STATIONS)
            return ll_error_set(err,
                                -EINVAL,
                                "%s:%d: station_keys entries need station and public_key (at "
                                "most %d)",
                                path,
                                config_setting_source_line(e),
                                INGEST_MAX_STATIONS);
        snprintf(s->keys[k].station, sizeof(s->keys[k].station), "%s", name);
        snprintf(s->keys[k].public_z85, sizeof(s->keys[k].public_z85), "%s", key);
        s->n_keys = (size_t)k + 1;
    }
    return 0;
}

int settings_load(const char *path, struct settings *s, struct ll_error *reterr)
{
    config_t cfg;
    config_init(&cfg);
    if (!config_read_file(&cfg, path)) {
        int r = ll_error_set(reterr,
                             -EINVAL,
                             "%s:%d: %s",
                             config_error_file(&cfg) ? config_error_file(&cfg) : path,
                             config_error_line(&cfg),
                             config_error_text(&cfg));
        config_destroy(&cfg);
        return r;
    }
    double d;
    int i;
    lookup_text(&cfg, "daemon.db", s->db, sizeof(s->db));
    lookup_text(&cfg, "daemon.run_dir", s->run_dir, sizeof(s->run_dir));
    lookup_text(&cfg, "daemon.lab", s->lab, sizeof(s->lab));
    lookup_text(&cfg, "daemon.stations_endpoint", s->endpoint, sizeof(s->endpoint));
    lookup_text(&cfg, "daemon.curve_secret_key", s->curve_secret, sizeof(s->curve_secret));
    if (config_lookup_float(&cfg, "daemon.time_scale", &d))
        s->time_scale = d;
    else if (config_lookup_int(&cfg, "daemon.time_scale", &i))
        s->time_scale = i;
    if (config_lookup_int(&cfg, "daemon.poll_ms", &i))
        s->poll_ms = i;
    if (config_lookup_int(&cfg, "daemon.group_commit_ms", &i))
        s->group_commit_ms = i;
    if (config_lookup_int(&cfg, "daemon.store_alarm_s", &i))
        s->store_alarm_s = i;
    if (config_lookup_int(&cfg, "daemon.log_level", &i))
        s->log_level = i;
    int r = load_keys(&cfg, path, s, reterr);
    config_destroy(&cfg);
    struct stat st;
    if (r == 0 && s->curve_secret[0] != '\0' && stat(path, &st) == 0 && (st.st_mode & 0007) != 0)
        r = ll_error_set(reterr,
                         -EACCES,
                         "%s: holds curve_secret_key and is readable by every user (mode %04o): "
                         "chmod o-rwx %s (labloopd refuses to use a secret others can read)",
                         path,
                         (unsigned)(st.st_mode & 07777),
                         path);
    return r;
}

/* fuzz_control — labloopd's control requests (daemon/control.c control_dispatch()).
 *
 * Every input is read as one control request (JSON, as the REP socket receives it) and
 * answered by a real engine on a real store (a temporary database, the embedded default
 * lab, no instrument workers). Whatever arrives, the reply must be a JSON object with a
 * boolean "ok", and an error reply must carry a message. Requests that would write files
 * (backup) are left out: the fuzzer must not create files at arbitrary paths.
 *
 * libconfig 1.5 leaks the buffer of a string token that ends in a syntax error (campaign
 * text inside a request goes through it): suppressed by name, as in fuzz_campaign.c.
 */
#include "daemon/control.h"
#include "daemon/engine.h"
#include "daemon/store.h"
#include "drivers/labconf.h"

#include <gsl/gsl_errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static struct store *store;
static struct engine *engine;
static struct labconf *lab;

static char db_path[64];

static void teardown(void)
{
    char p[80];
    engine_free(&engine);
    store_close(&store);
    labconf_free(&lab);
    unlink(db_path);
    snprintf(p, sizeof(p), "%s-wal", db_path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db_path);
    unlink(p);
}

static void setup(void)
{
    gsl_set_error_handler_off();
    snprintf(db_path, sizeof(db_path), "/tmp/fuzz_control.%d.db", (int)getpid());
    unlink(db_path);
    struct ll_error err;
    if (store_open(db_path, &store, &err) < 0 || labconf_load_default(&lab, &err) < 0)
        abort();
    atexit(teardown);
    struct engine_options eo = {.store = store, .lab = lab, .time_scale = 1.0, .no_instruments = 1};
    if (engine_new(&eo, &engine, &err) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (store == NULL)
        setup();
    json_t *req = json_loadb((const char *)data, size, 0, NULL);
    if (req == NULL)
        return 0;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (cmd != NULL && strcmp(cmd, "backup") == 0) {
        json_decref(req);
        return 0;
    }
    json_t *reply = control_dispatch(engine, store, req);
    if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok")))
        abort();
    if (json_is_false(json_object_get(reply, "ok")) &&
        !json_is_string(json_object_get(reply, "error")))
        abort();
    struct ll_error err;
    engine_tick(engine, &err); /* whatever was started must not break a pass */
    json_decref(reply);
    json_decref(req);
    return 0;
}

/* control — see control.h. */
#include "daemon/control.h"

#include "common/ll_text.h"
#include "daemon/engine.h"
#include "daemon/log.h"
#include "daemon/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

struct control {
    void *sock;
    char path[512];
};

int control_new(void *zctx, const char *run_dir, struct control **ret, struct ll_error *reterr)
{
    struct control *c = calloc(1, sizeof(*c));
    int r = 0;
    if (c == NULL)
        return ll_error_set(reterr, -ENOMEM, "control: out of memory");
    snprintf(c->path, sizeof(c->path), "%s/control", run_dir);
    char ep[600];
    snprintf(ep, sizeof(ep), "ipc://%s", c->path);
    c->sock = zmq_socket(zctx, ZMQ_REP);
    int zero = 0;
    /* a request far above any campaign file: the peer is disconnected, never buffered */
    int64_t ceiling = CONTROL_MAX_REQUEST;
    if (c->sock == NULL || zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &ceiling, sizeof(ceiling)) != 0) {
        r = ll_error_set(reterr, -errno, "control: %s", zmq_strerror(errno));
        goto out;
    }
    if (zmq_bind(c->sock, ep) != 0) {
        int e = errno;
        r = ll_error_set(reterr, -e, "control: cannot bind %s: %s", ep, zmq_strerror(e));
        goto out;
    }
    chmod(c->path, 0660);
out:
    if (r < 0)
        control_free(&c);
    *ret = c;
    return r;
}

void control_free(struct control **c)
{
    if (c == NULL || *c == NULL)
        return;
    if ((*c)->sock != NULL)
        zmq_close((*c)->sock);
    free(*c);
    *c = NULL;
}

void *control_socket(struct control *c)
{
    return c->sock;
}

/* {"ok": false, "error": msg}. Never NULL: an error message may quote outside text (a file
 * name, what a client sent) cut at a byte limit, and JSON strings must be UTF-8, so a message
 * jansson refuses is sent with its ill-formed bytes as '?' (ll_utf8_sanitize). */
static json_t *fail(const char *msg)
{
    json_t *o = json_pack("{s:b,s:s}", "ok", 0, "error", msg);
    if (o != NULL)
        return o;
    char clean[LL_ERROR_MSG_MAX];
    snprintf(clean, sizeof(clean), "%s", msg);
    ll_utf8_sanitize(clean);
    o = json_pack("{s:b,s:s}", "ok", 0, "error", clean);
    return o != NULL ? o : json_pack("{s:b,s:s}", "ok", 0, "error", "failed");
}

/* The request's "limit" into *n when present: a JSON integer in 1..1000000 (0), else -EINVAL
 * (a negative LIMIT would mean "everything" to SQLite). */
static int limit_of(json_t *req, int *n)
{
    json_t *lim = json_object_get(req, "limit");
    if (lim == NULL)
        return 0;
    if (!json_is_integer(lim) || json_integer_value(lim) < 1 || json_integer_value(lim) > 1000000)
        return -EINVAL;
    *n = (int)json_integer_value(lim);
    return 0;
}

static json_t *ok_with(json_t *o)
{
    if (o == NULL)
        o = json_object();
    json_object_set_new(o, "ok", json_true());
    return o;
}

json_t *control_dispatch(struct engine *e, struct store *s, json_t *req)
{
    struct ll_error err;
    ll_error_clear(&err);
    if (!json_is_object(req))
        return fail("request: not a JSON object");
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *jid = json_object_get(req, "id");
    int64_t id = json_is_integer(jid) ? (int64_t)json_integer_value(jid) : 0;
    if (cmd == NULL)
        return fail("cmd: missing");
    int r = 0;
    json_t *out = NULL;
    if (strcmp(cmd, "status") == 0) {
        out = engine_status_json(e, &err);
    } else if (strcmp(cmd, "campaign") == 0) {
        const char *op = json_string_value(json_object_get(req, "op"));
        if (op == NULL)
            return fail("op: missing (start, pause, resume, abort)");
        if (strcmp(op, "start") == 0) {
            const char *text = json_string_value(json_object_get(req, "text"));
            const char *source = json_string_value(json_object_get(req, "source"));
            int64_t cid = 0;
            if (text == NULL)
                return fail("text: missing (the campaign file's contents)");
            r = engine_campaign_start(e, text, source != NULL ? source : "campaign", &cid, &err);
            if (r == 0)
                out = json_pack("{s:I}", "id", (json_int_t)cid);
        } else {
            r = engine_campaign_op(e, id, op, &err);
        }
    } else if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "deny") == 0) {
        r = engine_approve(e, id, strcmp(cmd, "approve") == 0, &err);
    } else if (strcmp(cmd, "experiments") == 0) {
        /* optional paging (`labloop export`): "after" an experiment id, at most "limit" */
        json_t *after = json_object_get(req, "after"), *limit = json_object_get(req, "limit");
        json_t *x = store_experiments_page_json(
            s,
            id,
            json_is_integer(after) ? (int64_t)json_integer_value(after) : 0,
            json_is_integer(limit) && json_integer_value(limit) > 0 &&
                    json_integer_value(limit) <= INT32_MAX
                ? (int)json_integer_value(limit)
                : 0,
            &err);
        r = x == NULL ? -EIO : 0;
        if (x != NULL)
            out = json_pack("{s:o}", "experiments", x);
    } else if (strcmp(cmd, "measurements") == 0) {
        int n = 200;
        if (limit_of(req, &n) != 0)
            return fail("limit: a whole number from 1 to 1000000 is required");
        json_t *x = json_is_true(json_object_get(req, "rejected"))
                        ? store_rejections_json(s, n, &err)
                        : store_measurements_json(s, id, n, &err);
        r = x == NULL ? -EIO : 0;
        if (x != NULL)
            out = json_pack("{s:o}",
                            json_is_true(json_object_get(req, "rejected")) ? "rejections"
                                                                           : "measurements",
                            x);
    } else if (strcmp(cmd, "fits") == 0) {
        json_t *x = store_model_fits_json(s, id, &err);
        r = x == NULL ? -EIO : 0;
        if (x != NULL)
            out = json_pack("{s:o}", "fits", x);
    } else if (strcmp(cmd, "events") == 0) {
        int n = 50;
        if (limit_of(req, &n) != 0)
            return fail("limit: a whole number from 1 to 1000000 is required");
        json_t *x = store_events_json(s, id, n, &err);
        r = x == NULL ? -EIO : 0;
        if (x != NULL)
            out = json_pack("{s:o}", "events", x);
    } else if (strcmp(cmd, "pareto") == 0) {
        out = engine_pareto_json(e, id, &err);
        r = out == NULL ? -EIO : 0;
    } else if (strcmp(cmd, "backup") == 0) {
        const char *file = json_string_value(json_object_get(req, "file"));
        if (file == NULL || file[0] != '/')
            return fail("file: an absolute path is required");
        r = store_backup(s, file, &err);
    } else if (strcmp(cmd, "estop") == 0) {
        r = engine_estop(e, &err);
        out = json_pack("{s:s}",
                        "note",
                        "software stop: safe states commanded; this is not a wired emergency stop");
    } else if (strcmp(cmd, "instrument") == 0) {
        /* the newest event before the request: the outcome comes as a newer one */
        const char *name = json_string_value(json_object_get(req, "name"));
        const char *op = json_string_value(json_object_get(req, "op"));
        json_t *last = store_events_json(s, 0, 1, &err);
        json_t *ev = json_array_get(last, json_array_size(last) - 1);
        json_int_t after = json_integer_value(json_object_get(ev, "id"));
        json_decref(last);
        ll_error_clear(&err);
        r = engine_instrument_op(e, name, op, &err);
        if (r == 0)
            out = json_pack("{s:s,s:s,s:I,s:s}",
                            "instrument",
                            name,
                            "op",
                            op,
                            "after_event",
                            after,
                            "event_kind",
                            strcmp(op, "reset") == 0 ? "instrument.reset" : "instrument.safe");
    } else if (strcmp(cmd, "rack") == 0) {
        const char *op = json_string_value(json_object_get(req, "op"));
        int n = 0;
        if (op != NULL && strcmp(op, "unloaded") != 0)
            return fail("rack: op must be \"unloaded\" (or absent, to list the wells)");
        if (op != NULL)
            r = engine_rack_unloaded(e, &n, &err);
        if (r == 0)
            out = engine_rack_json(e, &err);
        if (out != NULL && op != NULL)
            json_object_set_new(out, "unloaded", json_integer(n));
        if (r == 0 && out == NULL)
            r = -EIO;
    } else if (strcmp(cmd, "resolve") == 0) {
        json_t *step = json_object_get(req, "step");
        const char *answer = json_string_value(json_object_get(req, "answer"));
        if (!json_is_integer(step) || answer == NULL)
            return fail("resolve: needs step (integer) and answer (done or failed)");
        r = engine_resolve(e, (int64_t)json_integer_value(step), answer, &err);
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "cmd: unknown command '%.*s'", (int)ll_utf8_cut(cmd, 64), cmd);
        return fail(msg);
    }
    if (r < 0 || (out == NULL && err.code != 0)) {
        json_decref(out);
        return fail(err.msg[0] ? err.msg : "failed");
    }
    return ok_with(out);
}

int control_process(struct control *c, struct engine *e, struct store *s)
{
    int n = 0;
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        /* drain any further frames: REP answers the whole request */
        int more = zmq_msg_more(&msg);
        json_t *req =
            json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), JSON_REJECT_DUPLICATES, NULL);
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, c->sock, 0);
            more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
        }
        zmq_msg_close(&msg);
        json_t *reply = req != NULL ? control_dispatch(e, s, req) : fail("request: not valid JSON");
        char *text = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(10));
        /* a REP socket must answer every request, or it takes no further one */
        static const char no_reply[] = "{\"ok\":false,\"error\":\"reply could not be encoded\"}";
        const char *send = text != NULL ? text : no_reply;
        if (text == NULL)
            log_line(LOG_LVL_WARNING, "control: reply could not be encoded");
        store_check_durable(s, "control reply");
        if (zmq_send(c->sock, send, strlen(send), 0) < 0)
            log_line(LOG_LVL_WARNING, "control: reply not sent");
        free(text);
        json_decref(reply);
        json_decref(req);
        n++;
    }
    return n;
}

int control_call(
    const char *run_dir, json_t *req, int timeout_ms, json_t **ret_reply, struct ll_error *reterr)
{
    char path[600], ep[620];
    snprintf(path, sizeof(path), "%s/control", run_dir);
    snprintf(ep, sizeof(ep), "ipc://%s", path);
    *ret_reply = NULL;
    struct stat stt;
    int found = stat(path, &stt) == 0;
    if (!found && errno != EACCES)
        return ll_error_set(reterr,
                            -EHOSTUNREACH,
                            "labloopd is not running (no control socket %s; see --run-dir or "
                            "LABLOOP_RUN_DIR)",
                            path);
    if (!found || access(path, R_OK | W_OK) != 0)
        return ll_error_set(reterr,
                            -EACCES,
                            "cannot reach labloopd: permission denied for %s (the run folder and "
                            "its socket are for the labloop group: add this user to it, then log "
                            "in again)",
                            path);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0, r = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    char *text = json_dumps(req, JSON_COMPACT);
    if (text == NULL) {
        r = ll_error_set(reterr, -ENOMEM, "out of memory");
        goto out;
    }
    if (zmq_connect(sock, ep) != 0 || zmq_send(sock, text, strlen(text), 0) < 0) {
        r = ll_error_set(reterr, -EHOSTUNREACH, "labloopd at %s: %s", path, zmq_strerror(errno));
        goto out;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, sock, 0) < 0) {
        zmq_msg_close(&msg);
        r = ll_error_set(reterr,
                         -EHOSTUNREACH,
                         "labloopd did not answer within %d ms at %s (not running, or not "
                         "permitted to use its socket)",
                         timeout_ms,
                         path);
        goto out;
    }
    *ret_reply = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, NULL);
    zmq_msg_close(&msg);
    if (*ret_reply == NULL)
        r = ll_error_set(reterr, -EPROTO, "labloopd sent an unreadable reply");
out:
    free(text);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return r;
}

/* control — the operator's socket: labloop <-> labloopd.
 *
 * labloopd binds a ZeroMQ REP socket at ipc://RUN_DIR/control; the socket file gets mode
 * 0660 and lives in RUN_DIR (0750 under systemd), so the file system decides who may steer
 * the lab (reliability.md §2.1: IPC filters are deprecated in favour of permissions). One
 * request, one reply, each a JSON object:
 *
 *   {"cmd": "status"}                                  -> {"ok": true, ...engine status...}
 *   {"cmd": "campaign", "op": "start", "text": "...", "source": "perovskite.conf"}
 *   {"cmd": "campaign", "op": "pause"|"resume"|"abort", "id": 3}     (id 0: the open one)
 *   {"cmd": "approve", "id": 3} / {"cmd": "deny", "id": 3}
 *   {"cmd": "experiments", "id": 3}  /  {"cmd": "pareto", "id": 3}
 *   {"cmd": "fits", "id": 3}  /  {"cmd": "events", "id": 3, "limit": 50}
 *   {"cmd": "backup", "file": "/abs/path.db"}
 *   {"cmd": "estop"}   {"cmd": "resolve", "step": 17, "answer": "done"|"failed"}
 *   {"cmd": "instrument", "name": "coater", "op": "reset"|"safe"} -> {instrument, op,
 *       after_event: the newest event id before the request, event_kind}: the request goes to
 *       the instrument's worker and the reply comes at once; the outcome is a later event of
 *       kind event_kind ("instrument.reset" / "instrument.safe") whose message starts with
 *       "NAME: " (engine_instrument_op: refused for an unknown name, a reset under a step)
 *   {"cmd": "rack"} -> {wells, occupied, free, full, occupied_wells}
 *   {"cmd": "rack", "op": "unloaded"} -> the same after the unload, plus "unloaded": n
 * Errors: {"ok": false, "error": "one sentence"}. A request that is not a JSON object, or
 * names no known command, gets such an error; nothing a client sends stops the daemon.
 */
#ifndef CONTROL_H
#define CONTROL_H

/* The largest control request labloopd reads (bytes); a larger one makes ZeroMQ drop the
 * connection, so the sender gets no answer and the daemon allocates nothing for it. */
#define CONTROL_MAX_REQUEST (16 * 1024 * 1024)

#include "common/ll_error.h"

#include <jansson.h>

struct control;
struct engine;
struct store;

/* Binds ipc://run_dir/control in zmq context zctx. Free with control_free(). */
int control_new(void *zctx, const char *run_dir, struct control **ret, struct ll_error *reterr);
void control_free(struct control **c);
void *control_socket(struct control *c);

/* Answers every waiting request (never blocks). Returns how many. */
int control_process(struct control *c, struct engine *e, struct store *s);

/* The reply to one request (a new object; caller json_decref()s). Exposed for tests and the
 * fuzz target: req may be any JSON value. */
json_t *control_dispatch(struct engine *e, struct store *s, json_t *req);

/* Client side: sends req to the daemon of run_dir and waits up to timeout_ms for the reply.
 * Returns 0 and a new reply, -EHOSTUNREACH when no daemon answers (message says why), -EACCES
 * when this user may not use the socket (the message says so), or -ENOMEM. */
int control_call(
    const char *run_dir, json_t *req, int timeout_ms, json_t **ret_reply, struct ll_error *reterr);

#endif

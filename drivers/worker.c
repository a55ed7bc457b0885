/* worker — one thread per instrument between the daemon's event loop and a blocking
 * driver (contract in worker.h).
 *
 * The request queue and the completion queue are fixed-size rings under one mutex; the
 * worker sleeps on a condition variable until a request or the stop flag arrives. Each
 * completion adds 1 to an eventfd in semaphore mode, and each drv_worker_next() takes 1
 * back, so the fd is readable exactly while completions wait. A SAFE request is put at the
 * head of the request ring. The completion ring holds as many entries as the request ring
 * plus one running request, so the worker can never block on a full completion ring.
 */
#include "drivers/worker.h"

#include "common/ll_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Non-SAFE requests are accepted while queued + waiting completions < DRV_WORKER_QUEUE_MAX;
 * SAFE ones while they are < REQ_CAP. With at most one request running, completions never
 * exceed REQ_CAP + 1, so none is ever dropped. */
#define REQ_CAP (DRV_WORKER_QUEUE_MAX + 8)
#define COMPLETION_MAX (REQ_CAP + 1)

struct drv_worker {
    struct labconf_instrument inst;
    struct drv_bus *bus; /* the caller's (shared Modbus RTU line), or NULL */
    struct drv *drv;     /* owned by the thread */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    int efd;
    struct drv_request req[REQ_CAP];
    int req_head, req_count;
    struct drv_completion done[COMPLETION_MAX];
    int done_head, done_count;
    void (*hook)(void *ctx, const char *instrument, const struct drv_request *req);
    void *hook_ctx;
};

static void
run_request(struct drv_worker *w, const struct drv_request *req, struct drv_completion *c)
{
    int64_t t0 = ll_monotonic_ms();

    memset(c, 0, sizeof(*c));
    c->op = req->op;
    c->cookie = req->cookie;
    c->step_id = req->step.id;
    if (!w->drv) {
        c->rc = drv_open_bus(&w->inst, w->bus, &w->drv, &c->err);
        if (c->rc)
            goto out;
    }
    switch (req->op) {
    case DRV_REQ_START:
        c->rc = drv_step_start(w->drv, &req->step, &c->err);
        break;
    case DRV_REQ_POLL:
        c->rc = drv_step_poll(w->drv, &req->step, &c->status, &c->err);
        break;
    case DRV_REQ_QUERY:
        c->rc = drv_step_query(w->drv, &req->step, &c->status, &c->err);
        break;
    case DRV_REQ_SAFE:
        c->rc = drv_safe(w->drv, &c->err);
        break;
    case DRV_REQ_STATUS:
        c->rc = drv_status(w->drv, &c->status, &c->err);
        break;
    case DRV_REQ_DESCRIBE:
        c->rc = drv_describe(w->drv, c->status.text, sizeof(c->status.text), &c->err);
        break;
    case DRV_REQ_CLEAR:
        c->rc = drv_clear_fault(w->drv, &c->err);
        break;
    default:
        c->rc = ll_error_set(&c->err, -EINVAL, "unknown request %d", (int)req->op);
    }
out:
    c->elapsed_ms = ll_monotonic_ms() - t0;
}

static void *worker_main(void *arg)
{
    struct drv_worker *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct drv_request req;
        struct drv_completion c;
        uint64_t one = 1;

        while (!w->stopping && w->req_count == 0)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->stopping)
            break;
        req = w->req[w->req_head];
        w->req_head = (w->req_head + 1) % REQ_CAP;
        w->req_count--;
        void (*hook)(void *, const char *, const struct drv_request *) = w->hook;
        void *hook_ctx = w->hook_ctx;
        pthread_mutex_unlock(&w->lock);

        if (hook != NULL)
            hook(hook_ctx, w->inst.name, &req);
        run_request(w, &req, &c);

        pthread_mutex_lock(&w->lock);
        w->done[(w->done_head + w->done_count) % COMPLETION_MAX] = c;
        w->done_count++;
        while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock(&w->lock);
    drv_close(&w->drv);
    return NULL;
}

int drv_worker_start(const struct labconf_instrument *inst,
                     struct drv_worker **ret_worker,
                     struct ll_error *reterr)
{
    return drv_worker_start_bus(inst, NULL, ret_worker, reterr);
}

int drv_worker_start_bus(const struct labconf_instrument *inst,
                         struct drv_bus *bus,
                         struct drv_worker **ret_worker,
                         struct ll_error *reterr)
{
    struct drv_worker *w;
    int r;

    *ret_worker = NULL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return ll_error_set(reterr, -ENOMEM, "out of memory");
    w->inst = *inst;
    w->bus = bus;
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    if (w->efd < 0) {
        r = -errno;
        free(w);
        return ll_error_set(reterr, r, "%s: eventfd: %s", inst->name, strerror(-r));
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    r = pthread_create(&w->thread, NULL, worker_main, w);
    if (r != 0) {
        close(w->efd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        return ll_error_set(reterr, -r, "%s: cannot start the worker thread", inst->name);
    }
    *ret_worker = w;
    return 0;
}

int drv_worker_fd(const struct drv_worker *worker)
{
    return worker->efd;
}

const char *drv_worker_name(const struct drv_worker *worker)
{
    return worker->inst.name;
}

void drv_worker_set_hook(struct drv_worker *w,
                         void (*fn)(void *ctx,
                                    const char *instrument,
                                    const struct drv_request *req),
                         void *ctx)
{
    pthread_mutex_lock(&w->lock);
    w->hook = fn;
    w->hook_ctx = ctx;
    pthread_mutex_unlock(&w->lock);
}

int drv_worker_submit(struct drv_worker *w, const struct drv_request *req, struct ll_error *reterr)
{
    int r = 0;

    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        r = ll_error_set(reterr, -ESHUTDOWN, "%s: worker is stopping", w->inst.name);
    } else if (w->req_count + w->done_count >=
               (req->op == DRV_REQ_SAFE ? REQ_CAP : DRV_WORKER_QUEUE_MAX)) {
        r = ll_error_set(reterr,
                         -EAGAIN,
                         "%s: %d requests and completions already waiting",
                         w->inst.name,
                         w->req_count + w->done_count);
    } else if (req->op == DRV_REQ_SAFE) {
        w->req_head = (w->req_head + REQ_CAP - 1) % REQ_CAP;
        w->req[w->req_head] = *req;
        w->req_count++;
    } else {
        w->req[(w->req_head + w->req_count) % REQ_CAP] = *req;
        w->req_count++;
    }
    if (r == 0)
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return r;
}

int drv_worker_next(struct drv_worker *w, struct drv_completion *ret)
{
    uint64_t v;
    int got = 0;

    pthread_mutex_lock(&w->lock);
    if (w->done_count > 0) {
        *ret = w->done[w->done_head];
        w->done_head = (w->done_head + 1) % COMPLETION_MAX;
        w->done_count--;
        /* semaphore mode: takes exactly one count (written under the same lock) */
        while (read(w->efd, &v, sizeof(v)) < 0 && errno == EINTR)
            ;
        got = 1;
    }
    pthread_mutex_unlock(&w->lock);
    return got;
}

void drv_worker_stop(struct drv_worker **worker)
{
    struct drv_worker *w;

    if (!worker || !*worker)
        return;
    w = *worker;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    close(w->efd);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    *worker = NULL;
}

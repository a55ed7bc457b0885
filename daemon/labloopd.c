/* labloopd — the self-driving-lab daemon: the event loop that ties the store, the campaign
 * engine, the stations' ingest and the operator's control socket together.
 *
 *   labloopd [--config FILE] [--lab FILE] [--db FILE] [--run-dir DIR]
 *            [--stations-endpoint EP] [--time-scale N] [--poll-ms MS] [--log-level N]
 *            [--foreground]
 *
 * --config: labloopd.conf (config/labloopd.conf documents every key); options given on the
 * command line win. --lab: the lab definition (default: the embedded simulated lab).
 * labloopd never forks (systemd Type=notify; --foreground is accepted for clarity).
 *
 * The loop: zmq_poll over the stations' ROUTER, the control REP, a signalfd (SIGTERM,
 * SIGINT) and every driver worker's completion eventfd, with a timeout from the engine's
 * timers; nothing polls busily, so an idle daemon uses no CPU. After every wake-up the engine
 * makes one pass. Start-up is recovery: every unfinished campaign is resumed from the store,
 * every started step settled by asking its instrument; READY=1 goes to systemd once the
 * instruments have answered (or after 30 s). STATUS= carries a one-line summary; WATCHDOG=1
 * is sent at half the watchdog interval from the loop itself, so a stuck loop is noticed.
 */
#include "common/ll_failpoint.h"
#include "common/ll_signal.h"
#include "common/ll_time.h"
#include "daemon/control.h"
#include "daemon/engine.h"
#include "daemon/ingest.h"
#include "daemon/log.h"
#include "daemon/settings.h"
#include "daemon/store.h"
#include "drivers/labconf.h"

#include <errno.h>
#include <gsl/gsl_errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_POLL 32
/* exit statuses besides 0 and 1 (sysexits.h values; the unit's RestartPreventExitStatus= lists
 * them, since restarting cannot mend a command line or a configuration file) */
#define EXIT_USAGE 2
#define EXIT_CONFIG 78        /* EX_CONFIG: labloopd.conf or the lab file cannot be used */
#define WORKER_MARGIN_MS 5000 /* beyond a worker's call budget before the watchdog pings stop */
/* Time one pass of the loop gives at most to the stations' messages and to the analysis of
 * stored ones; a control request waits at most about their sum (the status target is 200 ms,
 * reliability.md L2). The analysis also stops when a station's message waits (acks first),
 * but analyses one measurement per pass whatever comes, so that it never starves. */
#define INGEST_SLICE_MS 50
#define ANALYSIS_SLICE_MS 50

static void usage(FILE *out)
{
    fprintf(out,
            "usage: labloopd [--config FILE] [--lab FILE] [--db FILE] [--run-dir DIR]\n"
            "                [--stations-endpoint EP] [--time-scale N] [--poll-ms MS]\n"
            "                [--log-level N] [--store-alarm-s S] [--foreground]\n");
}

/* 0, or the exit status: EXIT_USAGE for a bad command line, EXIT_CONFIG for a labloopd.conf
 * that cannot be read. */
static int parse_args(int argc, char **argv, struct settings *s)
{
    settings_defaults(s);
    /* the configuration file first, so that options override it */
    for (int i = 1; i + 1 < argc; i++) {
        struct ll_error err;
        if (strcmp(argv[i], "--config") == 0 && settings_load(argv[i + 1], s, &err) < 0) {
            fprintf(stderr, "<3>labloopd: %s\n", err.msg);
            return EXIT_CONFIG;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--foreground") == 0)
            continue;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            fprintf(stderr, "<3>labloopd: option %s needs a value\n", a);
            return EXIT_USAGE;
        }
        i++;
        if (strcmp(a, "--config") == 0)
            continue;
        else if (strcmp(a, "--lab") == 0)
            snprintf(s->lab, sizeof(s->lab), "%s", v);
        else if (strcmp(a, "--db") == 0)
            snprintf(s->db, sizeof(s->db), "%s", v);
        else if (strcmp(a, "--run-dir") == 0)
            snprintf(s->run_dir, sizeof(s->run_dir), "%s", v);
        else if (strcmp(a, "--stations-endpoint") == 0)
            snprintf(s->endpoint, sizeof(s->endpoint), "%s", v);
        else if (strcmp(a, "--time-scale") == 0)
            s->time_scale = atof(v);
        else if (strcmp(a, "--poll-ms") == 0)
            s->poll_ms = atoi(v);
        else if (strcmp(a, "--log-level") == 0)
            s->log_level = atoi(v);
        else if (strcmp(a, "--store-alarm-s") == 0)
            s->store_alarm_s = atoi(v);
        else {
            fprintf(stderr, "<3>labloopd: unknown option %s\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* systemd notifications from the main loop: STATUS (when the summary changes) and the
 * watchdog ping */
struct notifier {
    int watchdog, wd_withheld;
    int64_t wd_every_ms, wd_last, status_last;
    char last_summary[256];
};

static void notifier_init(struct notifier *nt)
{
    uint64_t wd_usec = 0;
    memset(nt, 0, sizeof(*nt));
    nt->watchdog = sd_watchdog_enabled(0, &wd_usec) > 0;
    nt->wd_every_ms = nt->watchdog ? (int64_t)(wd_usec / 2000) : 0;
}

static void notifier_tick(struct notifier *nt, struct engine *engine, int64_t now)
{
    if (now - nt->status_last > 2000) {
        char summary[256];
        engine_summary(engine, summary, sizeof(summary));
        if (strcmp(summary, nt->last_summary) != 0) {
            sd_notifyf(0, "STATUS=%s", summary);
            snprintf(nt->last_summary, sizeof(nt->last_summary), "%s", summary);
        }
        nt->status_last = now;
    }
    /* the ping says the main loop AND every instrument worker thread are alive: a worker
     * that holds a request past its call budget + WORKER_MARGIN_MS stops the pings, so
     * that systemd restarts labloopd (recovery then settles its steps) */
    if (nt->watchdog && now - nt->wd_last >= nt->wd_every_ms) {
        char why[256];
        int alive = engine_workers_alive(engine, now, WORKER_MARGIN_MS, why, sizeof(why));
        if (alive) {
            sd_notify(0, "WATCHDOG=1");
            if (nt->wd_withheld)
                log_line(LOG_LVL_NOTICE, "watchdog: pings resumed (every worker answered)");
        } else if (!nt->wd_withheld) {
            log_line(LOG_LVL_ERR, "watchdog: pings stopped: %s", why);
        }
        nt->wd_withheld = !alive;
        nt->wd_last = now;
    }
}

/* The loop's poll timeout in ms (-1: none): the engine's next timer, at most 1 s while a
 * campaign runs (stations coming online, approvals ...), 200 ms until recovery is done, 0 while
 * analyses wait, and no later than the watchdog ping and the connection guard's next action. */
static long poll_timeout_ms(const struct engine *engine,
                            const struct ingest *ing,
                            const struct notifier *nt,
                            int ready,
                            int more_analysis)
{
    long timeout = engine_timeout_ms(engine);
    if (engine_busy(engine) && (timeout < 0 || timeout > 1000))
        timeout = 1000;
    if (!ready && (timeout < 0 || timeout > 200))
        timeout = 200;
    if (more_analysis)
        timeout = 0;
    if (nt->watchdog && (timeout < 0 || timeout > nt->wd_every_ms))
        timeout = nt->wd_every_ms;
    long guard_ms = ingest_guard_timeout_ms(ing, ll_monotonic_ms());
    if (guard_ms >= 0 && (timeout < 0 || timeout > guard_ms))
        timeout = guard_ms;
    return timeout;
}

/* Everything labloopd holds while it runs. */
struct daemon {
    struct store *store;
    struct labconf *lab;
    struct engine *engine;
    struct ingest *ing;
    struct control *ctl;
    void *zctx;
    int sfd;
};

/* Opens the lab, the store, the engine and the sockets, and recovers. Returns 0, or the exit
 * status (EXIT_CONFIG for a lab that cannot be used, 1 otherwise) after logging why. */
static int daemon_start(struct daemon *d, struct settings *set)
{
    struct ll_error err;
    ll_error_clear(&err);
    d->sfd = ll_signalfd_term(SFD_NONBLOCK);
    if (mkdir(set->run_dir, 0750) != 0 && errno != EEXIST) {
        log_line(
            LOG_LVL_ERR, "labloopd: cannot create run dir %s: %s", set->run_dir, strerror(errno));
        return 1;
    }
    if (ll_failpoints_compiled())
        log_line(LOG_LVL_WARNING,
                 "labloopd: test build with kill and hang points (LABLOOP_FAILPOINT, "
                 "LABLOOP_FAILPOINT_HANG); not for a real lab");
    /* the lab first: a broken lab file never touches the database (no open, no migration) */
    int r = set->lab[0] ? labconf_load_file(set->lab, &d->lab, &err)
                        : labconf_load_default(&d->lab, &err);
    if (r < 0) {
        log_line(LOG_LVL_ERR, "labloopd: %s", err.msg);
        return r == -ENOMEM ? 1 : EXIT_CONFIG;
    }
    if (store_open(set->db, &d->store, &err) < 0) {
        log_line(LOG_LVL_ERR, "labloopd: %s", err.msg);
        return 1;
    }
    if (set->endpoint[0] == '\0')
        snprintf(set->endpoint, sizeof(set->endpoint), "%s", d->lab->stations_endpoint);
    struct engine_options eo = {.store = d->store,
                                .lab = d->lab,
                                .time_scale = set->time_scale,
                                .poll_ms = set->poll_ms,
                                .store_alarm_ms = (int64_t)set->store_alarm_s * 1000};
    if (engine_new(&eo, &d->engine, &err) < 0) {
        log_line(LOG_LVL_ERR, "labloopd: %s", err.msg);
        return 1;
    }
    d->zctx = zmq_ctx_new();
    const char *lab_stations[LABCONF_MAX_STATIONS];
    for (int i = 0; i < d->lab->n_stations; i++)
        lab_stations[i] = d->lab->stations[i].name;
    struct ingest_options io = {.endpoint = set->endpoint,
                                .lab_stations = lab_stations,
                                .n_lab_stations = (size_t)d->lab->n_stations,
                                .curve_secret_z85 = set->curve_secret,
                                .keys = set->keys,
                                .n_keys = set->n_keys,
                                .group_commit_ms = set->group_commit_ms,
                                .on_measured = engine_on_measured,
                                .ctx = d->engine};
    if (ingest_new(d->zctx, d->store, &io, &d->ing, &err) < 0 ||
        control_new(d->zctx, set->run_dir, &d->ctl, &err) < 0) {
        log_line(LOG_LVL_ERR, "labloopd: %s", err.msg);
        return 1;
    }
    engine_set_ingest(d->engine, d->ing);
    log_line(LOG_LVL_INFO,
             "labloopd: started db=%s lab=%s stations=%s control=ipc://%s/control time_scale=%g",
             set->db,
             d->lab->source,
             set->endpoint,
             set->run_dir,
             set->time_scale);
    if (engine_recover(d->engine, &err) < 0) {
        log_line(LOG_LVL_ERR, "labloopd: recovery: %s", err.msg);
        return 1;
    }
    return 0;
}

static void daemon_stop(struct daemon *d)
{
    engine_free(&d->engine);
    ingest_free(&d->ing);
    control_free(&d->ctl);
    if (d->zctx != NULL)
        zmq_ctx_term(d->zctx);
    store_close(&d->store);
    labconf_free(&d->lab);
    if (d->sfd >= 0)
        close(d->sfd);
}

/* The event loop, until a signal (0) or a failed zmq_poll (1). */
static int daemon_run(struct daemon *d)
{
    struct ll_error err;
    ll_error_clear(&err);
    struct engine *engine = d->engine;
    struct ingest *ing = d->ing;
    struct notifier nt;
    notifier_init(&nt);
    int64_t started = ll_monotonic_ms();
    int ready = 0, stop = 0, more_analysis = 1;
    while (!stop) {
        zmq_pollitem_t items[MAX_POLL];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.socket = ingest_socket(ing), .events = ZMQ_POLLIN};
        items[n++] = (zmq_pollitem_t){.socket = control_socket(d->ctl), .events = ZMQ_POLLIN};
        items[n++] = (zmq_pollitem_t){.fd = d->sfd, .events = ZMQ_POLLIN};
        if (ingest_monitor_socket(ing) != NULL)
            items[n++] =
                (zmq_pollitem_t){.socket = ingest_monitor_socket(ing), .events = ZMQ_POLLIN};
        int fds[LABCONF_MAX_INSTRUMENTS];
        int nf = engine_fds(engine, fds, LABCONF_MAX_INSTRUMENTS);
        for (int i = 0; i < nf && n < MAX_POLL; i++)
            items[n++] = (zmq_pollitem_t){.fd = fds[i], .events = ZMQ_POLLIN};
        long timeout = poll_timeout_ms(engine, ing, &nt, ready, more_analysis);
        if (zmq_poll(items, n, timeout) < 0 && errno != EINTR) {
            log_line(LOG_LVL_ERR, "labloopd: zmq_poll: %s", zmq_strerror(errno));
            return 1;
        }
        if (items[2].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo si;
            if (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                log_line(LOG_LVL_INFO, "labloopd: signal %u: shutting down", si.ssi_signo);
                stop = 1;
            }
        }
        ingest_guard(ing, ll_monotonic_ms());
        if (items[0].revents & ZMQ_POLLIN) {
            /* batches for at most INGEST_SLICE_MS per pass: a station replaying its spool
             * after an outage keeps messages waiting for minutes, and the operator, the
             * watchdog and the engine cannot wait that long (reliability.md L2). What is
             * left makes the next zmq_poll return at once. */
            int64_t until = ll_monotonic_ms() + INGEST_SLICE_MS;
            int got;
            while ((got = ingest_process(ing, &err)) > 0 && ll_monotonic_ms() < until)
                ;
            if (got < 0)
                log_line(LOG_LVL_ERR, "ingest: batch not committed, nothing acked: %s", err.msg);
        }
        /* phase 2 of ingest: analyse what was acked, for at most ANALYSIS_SLICE_MS per pass
         * and not while stations' messages wait (a J-V fit takes milliseconds and a backlog
         * can hold thousands); at start-up this also picks up what a crash left unanalysed */
        int analysed = ingest_analyse_for(ing, 16, ANALYSIS_SLICE_MS, &err);
        if (analysed < 0)
            log_line(LOG_LVL_ERR, "ingest: analysis batch not committed: %s", err.msg);
        more_analysis = analysed > 0;
        engine_on_completions(engine, &err);
        /* not only when zmq_poll saw a request: one that came while the stations' messages
         * or the analysis were handled is answered in this pass, not after the next one */
        control_process(d->ctl, engine, d->store);
        if (engine_tick(engine, &err) < 0)
            log_line(LOG_LVL_ERR, "engine: %s", err.msg);
        int64_t now = ll_monotonic_ms();
        if (!ready && (engine_recovered(engine) || now - started > 30000)) {
            ready = 1;
            sd_notify(0, "READY=1");
            log_line(LOG_LVL_INFO, "labloopd: ready (recovery finished)");
        }
        notifier_tick(&nt, engine, now);
    }
    sd_notify(0, "STOPPING=1");
    return 0;
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    struct settings set;
    memset(&set, 0, sizeof(set));
    int status = parse_args(argc, argv, &set);
    if (status != 0)
        return status;
    log_set_level(set.log_level);
    struct daemon d = {.sfd = -1};
    status = daemon_start(&d, &set);
    if (status == 0)
        status = daemon_run(&d);
    daemon_stop(&d);
    if (status == 0)
        log_line(LOG_LVL_INFO, "labloopd: stopped cleanly");
    return status;
}

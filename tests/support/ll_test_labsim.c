/* ll_test_labsim — see ll_test_labsim.h. */
#include "ll_test_labsim.h"

#include "common/ll_time.h"
#include "ll_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

pid_t ll_test_labsim_start(int speed,
                           int poll_ms,
                           const char *furnace_map,
                           char *rt,
                           size_t rt_cap,
                           struct labconf **ret_lab)
{
    return ll_test_labsim_start_lab(NULL, speed, poll_ms, furnace_map, rt, rt_cap, ret_lab);
}

pid_t ll_test_labsim_start_lab(const char *lab_path,
                               int speed,
                               int poll_ms,
                               const char *furnace_map,
                               char *rt,
                               size_t rt_cap,
                               struct labconf **ret_lab)
{
    const char *labsim = getenv("LABSIM");
    const char *tmp = ll_test_tmpdir();
    char in_path[4200], ready[4200], out_path[4200], log_path[4200], speed_text[16];
    struct labconf *src = NULL;
    struct ll_error err = {0};

    *ret_lab = NULL;
    if (!labsim || access(labsim, X_OK) != 0) {
        fprintf(stderr, "LABSIM not set or not built\n");
        return -1;
    }
    snprintf(in_path, sizeof(in_path), "%s/lab-in.conf", tmp);
    snprintf(rt, rt_cap, "%s/rt", tmp);
    snprintf(ready, sizeof(ready), "%s/ready", rt);
    snprintf(out_path, sizeof(out_path), "%s/lab.conf", rt);
    snprintf(log_path, sizeof(log_path), "%s/labsim.log", tmp);
    snprintf(speed_text, sizeof(speed_text), "%d", speed);
    if ((lab_path != NULL ? labconf_load_file(lab_path, &src, &err)
                          : labconf_load_default(&src, &err)) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    src->instruments[labconf_instrument_index(src, "robot")].port = 0; /* labsim picks one */
    for (int i = 0; i < src->n_instruments && poll_ms > 0; i++)
        src->instruments[i].poll_ms = poll_ms;
    int fi = labconf_instrument_index(src, "furnace");
    if (furnace_map != NULL && fi >= 0) {
        const struct labconf_furnace_map *map = labconf_find_map(src, furnace_map);
        if (map == NULL) {
            labconf_free(&src);
            return -1;
        }
        snprintf(src->instruments[fi].map_name,
                 sizeof(src->instruments[fi].map_name),
                 "%s",
                 furnace_map);
        src->instruments[fi].map = *map;
    }
    if (labconf_write_file(src, in_path, &err) != 0 || mkdir(rt, 0700) != 0) {
        labconf_free(&src);
        return -1;
    }
    labconf_free(&src);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *log = freopen(log_path, "w", stderr);
        (void)log;
        execl(labsim,
              labsim,
              "--lab",
              in_path,
              "--runtime-dir",
              rt,
              "--speed",
              speed_text,
              (char *)NULL);
        _exit(127);
    }
    int64_t deadline = ll_monotonic_ms() + 15000;
    while (access(ready, F_OK) != 0) {
        if (ll_monotonic_ms() > deadline || waitpid(pid, NULL, WNOHANG) != 0) {
            ll_test_labsim_stop(pid);
            return -1;
        }
        usleep(20000);
    }
    if (labconf_load_file(out_path, ret_lab, &err) != 0) {
        ll_test_labsim_stop(pid);
        return -1;
    }
    return pid;
}

void ll_test_labsim_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

json_t *ll_test_labsim_control(void *zctx, const char *rt, json_t *req)
{
    char ep[4200];
    void *s = zmq_socket(zctx, ZMQ_REQ);
    int linger = 0, timeout_ms = 5000;
    char *text = json_dumps(req, JSON_COMPACT);
    char buf[65536];

    snprintf(ep, sizeof(ep), "ipc://%s/control", rt);
    assert_non_null(s);
    assert_non_null(text);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    assert_int_equal(zmq_connect(s, ep), 0);
    assert_true(zmq_send(s, text, strlen(text), 0) >= 0);
    int n = zmq_recv(s, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0 && n < (int)sizeof(buf));
    buf[n] = '\0';
    zmq_close(s);
    free(text);
    json_decref(req);
    json_t *rep = json_loads(buf, 0, NULL);
    assert_non_null(rep);
    return rep;
}

void ll_test_labsim_fault_rule(void *zctx, const char *rt, const char *rule)
{
    json_t *rep =
        ll_test_labsim_control(zctx, rt, json_pack("{s:s,s:s}", "cmd", "fault", "rule", rule));
    if (!json_is_true(json_object_get(rep, "ok")))
        fail_msg(
            "labsim refused rule %s: %s", rule, json_string_value(json_object_get(rep, "error")));
    json_decref(rep);
}

long ll_test_labsim_count(void *zctx, const char *rt, const char *group, const char *key)
{
    json_t *rep = ll_test_labsim_control(zctx, rt, json_pack("{s:s}", "cmd", "counts"));
    json_t *v =
        group ? json_object_get(json_object_get(rep, group), key) : json_object_get(rep, key);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    json_decref(rep);
    return n;
}

long ll_test_labsim_status_int(void *zctx, const char *rt, const char *key)
{
    json_t *rep = ll_test_labsim_control(zctx, rt, json_pack("{s:s}", "cmd", "status"));
    long v = (long)json_integer_value(json_object_get(rep, key));
    json_decref(rep);
    return v;
}

struct drv *ll_test_open_instrument(const struct labconf *lab, const char *name)
{
    struct drv *drv = NULL;
    struct ll_error err = {0};

    if (drv_open(labconf_find_instrument(lab, name), &drv, &err) != 0)
        fail_msg("opening %s: %s", name, err.msg);
    return drv;
}

/* ll_test_labsim — see ll_test_labsim.h. */
#include "ll_test_labsim.h"

#include "common/ll_time.h"
#include "ll_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t ll_test_labsim_start(
    int speed, int poll_ms, char *rt, size_t rt_cap, struct labconf **ret_lab)
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
    if (labconf_load_default(&src, &err) != 0)
        return -1;
    src->instruments[labconf_instrument_index(src, "robot")].port = 0; /* labsim picks one */
    for (int i = 0; i < src->n_instruments && poll_ms > 0; i++)
        src->instruments[i].poll_ms = poll_ms;
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

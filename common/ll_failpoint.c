/* ll_failpoint — see ll_failpoint.h.
 *
 * Two tables of the same shape, one per environment variable: kill points
 * (LABLOOP_FAILPOINT) and hang points (LABLOOP_FAILPOINT_HANG). Each is parsed once, on its
 * first use, and counts the passes of each named point with an atomic counter. */
#include "common/ll_failpoint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POINTS 8

struct table {
    const char *env;
    struct ll_failpoint_spec points[MAX_POINTS];
    atomic_ulong passes[MAX_POINTS];
    int n_points;
};

static struct table kills = {.env = "LABLOOP_FAILPOINT"};
static struct table hangs = {.env = "LABLOOP_FAILPOINT_HANG"};
static pthread_once_t kills_once = PTHREAD_ONCE_INIT;
static pthread_once_t hangs_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static ll_failpoint_hook *hook_fn;
static void *hook_arg;

void ll_failpoint_set_exit_hook(ll_failpoint_hook *fn, void *arg)
{
    pthread_mutex_lock(&hook_lock);
    hook_fn = fn;
    hook_arg = arg;
    pthread_mutex_unlock(&hook_lock);
}

int ll_failpoint_parse(const char *text, struct ll_failpoint_spec *ret, int max)
{
    int n = 0;
    const char *p = text;
    while (*p != '\0') {
        if (n == max)
            return -1;
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (len == 0 || len >= LL_FAILPOINT_NAME_MAX || p[len] != ':')
            return -1;
        memcpy(ret[n].name, p, len);
        ret[n].name[len] = '\0';
        p += len + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 9 || (p[digits] != ',' && p[digits] != '\0'))
            return -1;
        ret[n].at = strtoul(p, NULL, 10);
        if (ret[n].at == 0)
            return -1;
        p += digits;
        n++;
        if (*p == ',' && *++p == '\0')
            return -1;
    }
    return n;
}

static void load(struct table *t)
{
    const char *spec = getenv(t->env);
    if (spec == NULL || *spec == '\0')
        return;
    int n = ll_failpoint_parse(spec, t->points, MAX_POINTS);
    if (n < 0) {
        /* a test that sets a point it cannot have must not pass quietly */
        fprintf(stderr, "%s='%s': expected name:n[,name:n...]\n", t->env, spec);
        _exit(2);
    }
    t->n_points = n;
}

static void load_kills(void)
{
    load(&kills);
}

static void load_hangs(void)
{
    load(&hangs);
}

/* Counts a pass of `name` in t; returns the pass number when it is the one t names, else 0. */
static unsigned long count_pass(struct table *t, const char *name)
{
    for (int i = 0; i < t->n_points; i++) {
        if (strcmp(t->points[i].name, name) != 0)
            continue;
        unsigned long k = atomic_fetch_add(&t->passes[i], 1) + 1;
        if (k == t->points[i].at)
            return k;
    }
    return 0;
}

static void say(const char *name, unsigned long k, const char *what)
{
    char msg[LL_FAILPOINT_NAME_MAX + 64];
    int len = snprintf(msg, sizeof(msg), "failpoint %s hit %lu: %s\n", name, k, what);
    if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0)
        msg[0] = '\0';
}

void ll_failpoint_pass(const char *name)
{
    pthread_once(&kills_once, load_kills);
    unsigned long k = count_pass(&kills, name);
    if (k > 0) {
        say(name, k, "exiting 137");
        pthread_mutex_lock(&hook_lock);
        ll_failpoint_hook *fn = hook_fn;
        void *arg = hook_arg;
        pthread_mutex_unlock(&hook_lock);
        if (fn != NULL)
            fn(name, arg);
        _exit(137);
    }
}

void ll_failpoint_hang(const char *name)
{
    pthread_once(&hangs_once, load_hangs);
    unsigned long k = count_pass(&hangs, name);
    if (k > 0) {
        say(name, k, "hanging forever");
        for (;;)
            pause(); /* returns only after a signal handler ran; there is nothing to resume */
    }
}

int ll_failpoints_compiled(void)
{
#ifdef LL_FAILPOINTS
    return 1;
#else
    return 0;
#endif
}

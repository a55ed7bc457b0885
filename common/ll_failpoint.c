/* ll_failpoint — see ll_failpoint.h. */
#include "common/ll_failpoint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POINTS 8

static struct ll_failpoint_spec points[MAX_POINTS];
static atomic_ulong passes[MAX_POINTS];
static int n_points;
static pthread_once_t once = PTHREAD_ONCE_INIT;

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

static void load(void)
{
    const char *spec = getenv("LABLOOP_FAILPOINT");
    if (spec == NULL || *spec == '\0')
        return;
    int n = ll_failpoint_parse(spec, points, MAX_POINTS);
    if (n < 0) {
        /* a test that sets a point it cannot have must not pass quietly */
        fprintf(stderr, "LABLOOP_FAILPOINT='%s': expected name:n[,name:n...]\n", spec);
        _exit(2);
    }
    n_points = n;
}

void ll_failpoint_pass(const char *name)
{
    pthread_once(&once, load);
    for (int i = 0; i < n_points; i++) {
        if (strcmp(points[i].name, name) != 0)
            continue;
        unsigned long k = atomic_fetch_add(&passes[i], 1) + 1;
        if (k == points[i].at) {
            char msg[LL_FAILPOINT_NAME_MAX + 64];
            int len = snprintf(msg, sizeof(msg), "failpoint %s hit %lu: exiting 137\n", name, k);
            if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0)
                msg[0] = '\0';
            _exit(137);
        }
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

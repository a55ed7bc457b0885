/* powerloss — see powerloss.h.
 *
 * Each file has a list of events (writes and truncates since its last sync), oldest first,
 * each with a sequence number from one process-wide counter. The cut rebuilds a file's image
 * in memory: it reads the file as it is now (every event applied), undoes the events newest
 * first (their old bytes back, their old size back), which leaves exactly what the last sync
 * made durable, and then replays the surviving sectors of the events in a random order, once
 * per image with a PRNG stream of its own. */
#include "daemon/powerloss.h"

#include "common/ll_failpoint.h"
#include "daemon/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum pl_kind { PL_WRITE, PL_TRUNCATE };

struct pl_event {
    enum pl_kind kind;
    uint64_t seq;
    int64_t off;         /* write: where; truncate: the new size */
    size_t n;            /* write: length; truncate: bytes cut off (old_size - size, or 0) */
    int64_t old_size;    /* the file's size before the event */
    unsigned char *old;  /* n bytes the region held before (zeros beyond old_size) */
    unsigned char *data; /* write: the n bytes written; truncate: NULL */
};

struct pl_file {
    char *path;
    struct pl_event *ev;
    size_t n_ev, cap_ev;
};

static pthread_mutex_t pl_mutex = PTHREAD_MUTEX_INITIALIZER;
static int pl_on;
static int pl_lost_track;
static int pl_images = 1; /* damaged images per cut (the first in place) */
static uint64_t pl_seed, pl_rng, pl_seq;
static long pl_checks, pl_checks_failed; /* powerloss_check calls, and those with writes pending */
static struct pl_file *pl_files;
static size_t pl_n_files, pl_cap_files;

/* splitmix64: small, seedable, good enough to pick fates */
static uint64_t rnd(void)
{
    uint64_t z = (pl_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, n), n > 0 */
static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % (uint64_t)n);
}

static void event_free(struct pl_event *e)
{
    free(e->old);
    free(e->data);
    memset(e, 0, sizeof(*e));
}

static struct pl_file *file_get(const char *path, int create)
{
    for (size_t i = 0; i < pl_n_files; i++)
        if (strcmp(pl_files[i].path, path) == 0)
            return &pl_files[i];
    if (!create)
        return NULL;
    if (pl_n_files == pl_cap_files) {
        size_t cap = pl_cap_files ? 2 * pl_cap_files : 4;
        struct pl_file *f = realloc(pl_files, cap * sizeof(*f));
        if (f == NULL)
            return NULL;
        pl_files = f;
        pl_cap_files = cap;
    }
    struct pl_file *f = &pl_files[pl_n_files];
    memset(f, 0, sizeof(*f));
    f->path = strdup(path);
    if (f->path == NULL)
        return NULL;
    pl_n_files++;
    return f;
}

/* Appends an event to path's list, taking ownership of e's buffers; on failure frees them
 * and remembers that the table lost track. */
static void file_add(const char *path, struct pl_event *e)
{
    struct pl_file *f = file_get(path, 1);
    if (f != NULL && f->n_ev == f->cap_ev) {
        size_t cap = f->cap_ev ? 2 * f->cap_ev : 16;
        struct pl_event *ev = realloc(f->ev, cap * sizeof(*ev));
        if (ev == NULL) {
            f = NULL;
        } else {
            f->ev = ev;
            f->cap_ev = cap;
        }
    }
    if (f == NULL) {
        pl_lost_track = 1;
        event_free(e);
        return;
    }
    e->seq = ++pl_seq;
    f->ev[f->n_ev++] = *e;
}

/* The failpoint exit hook: the power goes just as the process dies. Takes the table's lock
 * and keeps it, so that no other thread writes after the cut. */
static void on_kill(const char *name, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pl_mutex);
    if (!pl_on)
        return;
    struct powerloss_stats st[POWERLOSS_MAX_IMAGES];
    int r = powerloss_cut(st, pl_images);
    if (r < 0) {
        log_line(LOG_LVL_ERR, "powerloss: cut at %s failed: %s", name, strerror(-r));
        _exit(2); /* not 137: the test must not take this for a simulated power cut */
    }
    log_line(LOG_LVL_WARNING,
             "powerloss: cut at %s: %ld durability checks since the start, %ld with writes "
             "awaiting an fsync",
             name,
             pl_checks,
             pl_checks_failed);
    for (int k = 0; k < pl_images; k++)
        log_line(LOG_LVL_WARNING,
                 "powerloss: cut at %s (seed %llu, image %d of %d): %ld files, %ld unsynced "
                 "writes (%ld kept, %ld dropped, %ld torn), %ld truncates, %lld bytes changed",
                 name,
                 (unsigned long long)pl_seed,
                 k + 1,
                 pl_images,
                 st[k].files,
                 st[k].writes,
                 st[k].kept,
                 st[k].dropped,
                 st[k].torn,
                 st[k].truncates,
                 st[k].changed);
}

int powerloss_start(const char *spec, struct ll_error *reterr)
{
    if (spec == NULL || *spec == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long seed = strtoull(spec, &end, 10);
    long images = 1;
    int ok = errno == 0 && end != spec && spec[0] >= '0' && spec[0] <= '9';
    if (ok && *end == ':') {
        const char *p = end + 1;
        images = strtol(p, &end, 10);
        ok = errno == 0 && end != p && p[0] >= '0' && p[0] <= '9' && images >= 1 &&
             images <= POWERLOSS_MAX_IMAGES;
    }
    if (!ok || *end != '\0')
        return ll_error_set(reterr,
                            -EINVAL,
                            "LABLOOP_POWERLOSS='%s': expected SEED[:IMAGES] (decimal numbers, "
                            "1 <= IMAGES <= %d)",
                            spec,
                            POWERLOSS_MAX_IMAGES);
    pthread_mutex_lock(&pl_mutex);
    pl_seed = seed;
    pl_rng = seed;
    pl_images = (int)images;
    pl_on = 1;
    pthread_mutex_unlock(&pl_mutex);
    ll_failpoint_set_exit_hook(on_kill, NULL);
    log_line(LOG_LVL_WARNING,
             "powerloss: simulating a power cut at every kill point (seed %llu, %ld images)",
             seed,
             images);
    return 1;
}

int powerloss_active(void)
{
    pthread_mutex_lock(&pl_mutex);
    int on = pl_on;
    pthread_mutex_unlock(&pl_mutex);
    return on;
}

void powerloss_lock(void)
{
    pthread_mutex_lock(&pl_mutex);
}

void powerloss_unlock(void)
{
    pthread_mutex_unlock(&pl_mutex);
}

void powerloss_note_write(
    const char *path, int64_t off, const void *old, const void *data, size_t n, int64_t old_size)
{
    if (n == 0)
        return;
    struct pl_event e = {.kind = PL_WRITE, .off = off, .n = n, .old_size = old_size};
    e.old = malloc(n);
    e.data = malloc(n);
    if (e.old != NULL && e.data != NULL) {
        memcpy(e.old, old, n);
        memcpy(e.data, data, n);
    } else {
        pl_lost_track = 1;
        event_free(&e);
        return;
    }
    file_add(path, &e);
}

void powerloss_note_truncate(const char *path, int64_t size, int64_t old_size, const void *old_tail)
{
    struct pl_event e = {.kind = PL_TRUNCATE, .off = size, .old_size = old_size};
    if (old_size > size) {
        e.n = (size_t)(old_size - size);
        e.old = malloc(e.n);
        if (e.old == NULL) {
            pl_lost_track = 1;
            return;
        }
        memcpy(e.old, old_tail, e.n);
    }
    file_add(path, &e);
}

uint64_t powerloss_ticket(void)
{
    pthread_mutex_lock(&pl_mutex);
    uint64_t t = pl_seq;
    pthread_mutex_unlock(&pl_mutex);
    return t;
}

void powerloss_synced(const char *path, uint64_t ticket)
{
    pthread_mutex_lock(&pl_mutex);
    struct pl_file *f = file_get(path, 0);
    if (f != NULL) {
        size_t k = 0;
        while (k < f->n_ev && f->ev[k].seq <= ticket)
            event_free(&f->ev[k++]);
        memmove(f->ev, f->ev + k, (f->n_ev - k) * sizeof(*f->ev));
        f->n_ev -= k;
    }
    pthread_mutex_unlock(&pl_mutex);
}

long powerloss_check(void)
{
    pthread_mutex_lock(&pl_mutex);
    long n = 0;
    for (size_t i = 0; i < pl_n_files; i++)
        n += (long)pl_files[i].n_ev;
    pl_checks++;
    if (n > 0)
        pl_checks_failed++;
    pthread_mutex_unlock(&pl_mutex);
    return n;
}

void powerloss_forget(const char *path)
{
    pthread_mutex_lock(&pl_mutex);
    struct pl_file *f = file_get(path, 0);
    if (f != NULL) {
        for (size_t i = 0; i < f->n_ev; i++)
            event_free(&f->ev[i]);
        f->n_ev = 0;
    }
    pthread_mutex_unlock(&pl_mutex);
}

/* Grows buf's meaningful part from *size to end, the new bytes zero (a hole). */
static void extend(unsigned char *buf, int64_t *size, int64_t end)
{
    if (end > *size) {
        memset(buf + *size, 0, (size_t)(end - *size));
        *size = end;
    }
}

/* Replays the surviving sectors of write e onto buf (size *size); counts its fate. */
static void replay_write(const struct pl_event *e,
                         unsigned char *buf,
                         int64_t *size,
                         struct powerloss_stats *st)
{
    /* the sectors it covers, split at absolute multiples of POWERLOSS_SECTOR */
    int64_t first = e->off / POWERLOSS_SECTOR;
    int64_t last = (e->off + (int64_t)e->n - 1) / POWERLOSS_SECTOR;
    size_t n_sec = (size_t)(last - first + 1);
    /* fate: 0 kept, 1 dropped, 2 a prefix of its sectors, 3 a random subset of them */
    unsigned fate = (unsigned)rnd_below(4);
    if (n_sec == 1 && fate >= 2)
        fate = (unsigned)rnd_below(2);
    size_t prefix = fate == 2 ? 1 + rnd_below(n_sec - 1) : 0;
    size_t n_kept = 0;
    for (size_t i = 0; i < n_sec; i++) {
        int keep = fate == 0 || (fate == 2 && i < prefix) || (fate == 3 && (rnd() & 1));
        if (!keep)
            continue;
        int64_t a = (first + (int64_t)i) * POWERLOSS_SECTOR;
        int64_t b = a + POWERLOSS_SECTOR;
        a = a < e->off ? e->off : a;
        b = b > e->off + (int64_t)e->n ? e->off + (int64_t)e->n : b;
        extend(buf, size, a);
        memcpy(buf + a, e->data + (a - e->off), (size_t)(b - a));
        if (b > *size)
            *size = b;
        n_kept++;
    }
    st->writes++;
    if (n_kept == n_sec)
        st->kept++;
    else if (n_kept == 0)
        st->dropped++;
    else
        st->torn++;
}

/* One file being cut: its bytes now, what its last sync made durable, a work buffer. */
struct pl_cut {
    struct pl_file *f;
    int fd;
    int64_t now_size, synced_size, cap;
    unsigned char *now, *synced, *buf;
    size_t *order;
};

static void cut_free(struct pl_cut *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->now);
    free(c->synced);
    free(c->buf);
    free(c->order);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Opens f's file and rebuilds what its last sync made durable by undoing the events newest
 * first. Returns 0, 1 when the file is gone (nothing left to damage), or a negative errno. */
static int cut_prepare(struct pl_file *f, struct pl_cut *c)
{
    memset(c, 0, sizeof(*c));
    c->f = f;
    c->fd = open(f->path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0)
        return errno == ENOENT ? 1 : -errno;
    struct stat sb;
    if (fstat(c->fd, &sb) < 0)
        return -errno;
    c->now_size = c->cap = sb.st_size;
    for (size_t i = 0; i < f->n_ev; i++) {
        const struct pl_event *e = &f->ev[i];
        int64_t end = e->kind == PL_WRITE ? e->off + (int64_t)e->n : e->off;
        c->cap = end > c->cap ? end : c->cap;
        c->cap = e->old_size > c->cap ? e->old_size : c->cap;
    }
    c->now = calloc((size_t)c->now_size + 1, 1);
    c->synced = calloc((size_t)c->cap + 1, 1);
    c->buf = calloc((size_t)c->cap + 1, 1);
    c->order = calloc(f->n_ev + 1, sizeof(*c->order));
    if (c->now == NULL || c->synced == NULL || c->buf == NULL || c->order == NULL)
        return -ENOMEM;
    if (pread(c->fd, c->now, (size_t)c->now_size, 0) != (ssize_t)c->now_size)
        return -EIO;
    memcpy(c->synced, c->now, (size_t)c->now_size);
    int64_t size = c->now_size;
    for (size_t i = f->n_ev; i-- > 0;) {
        const struct pl_event *e = &f->ev[i];
        if (e->kind == PL_WRITE) {
            extend(c->synced, &size, e->off + (int64_t)e->n);
            memcpy(c->synced + e->off, e->old, e->n);
        } else {
            extend(c->synced, &size, e->old_size);
            if (e->n > 0)
                memcpy(c->synced + e->off, e->old, e->n);
        }
        size = e->old_size;
    }
    c->synced_size = size;
    return 0;
}

/* One damaged image of c's file in c->buf: the synced bytes, then the surviving sectors of
 * the events in a random order (Fisher-Yates). Returns its size; counts the fates in *st. */
static int64_t cut_replay(struct pl_cut *c, struct powerloss_stats *st)
{
    const struct pl_file *f = c->f;
    int64_t size = c->synced_size;
    memcpy(c->buf, c->synced, (size_t)size);
    for (size_t i = 0; i < f->n_ev; i++)
        c->order[i] = i;
    for (size_t i = f->n_ev; i > 1; i--) {
        size_t j = rnd_below(i), t = c->order[i - 1];
        c->order[i - 1] = c->order[j];
        c->order[j] = t;
    }
    for (size_t k = 0; k < f->n_ev; k++) {
        const struct pl_event *e = &f->ev[c->order[k]];
        if (e->kind == PL_WRITE) {
            replay_write(e, c->buf, &size, st);
            continue;
        }
        st->truncates++;
        if (rnd() & 1) {
            if (e->off < size)
                size = e->off;
            else
                extend(c->buf, &size, e->off);
        }
    }
    return size;
}

/* Writes image `image` (size bytes in c->buf) of c's file: image 1 over the file itself,
 * image k > 1 to PATH.powerloss-k; counts the bytes that differ from the file now. */
static int cut_write(struct pl_cut *c, int64_t size, int image, struct powerloss_stats *st)
{
    int64_t common = size < c->now_size ? size : c->now_size;
    long long changed = (long long)(size > c->now_size ? size - c->now_size : c->now_size - size);
    for (int64_t i = 0; i < common; i++)
        changed += c->buf[i] != c->now[i];
    int fd = c->fd;
    if (image > 1) {
        char path[4096];
        snprintf(path, sizeof(path), "%s.powerloss-%d", c->f->path, image);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
    }
    int r = 0;
    if (pwrite(fd, c->buf, (size_t)size, 0) != (ssize_t)size || ftruncate(fd, size) < 0)
        r = -EIO;
    if (fd != c->fd)
        close(fd);
    st->files++;
    st->changed += changed;
    log_line(LOG_LVL_INFO,
             "powerloss: image %d: %s: %zu unsynced events, %lld -> %lld bytes, %lld changed",
             image,
             c->f->path,
             c->f->n_ev,
             (long long)c->now_size,
             (long long)size,
             changed);
    return r;
}

int powerloss_cut(struct powerloss_stats *ret, int n_images)
{
    memset(ret, 0, (size_t)n_images * sizeof(*ret));
    if (pl_lost_track)
        return -ENOMEM;
    int r = 0;
    struct pl_cut *cuts = calloc(pl_n_files + 1, sizeof(*cuts));
    size_t n_cuts = 0;
    if (cuts == NULL)
        r = -ENOMEM;
    for (size_t i = 0; i < pl_n_files && r == 0; i++) {
        if (pl_files[i].n_ev == 0)
            continue;
        r = cut_prepare(&pl_files[i], &cuts[n_cuts]);
        if (r == 1) {
            cut_free(&cuts[n_cuts]);
            r = 0;
        } else {
            n_cuts++;
        }
    }
    /* each image its own PRNG stream; image 1's is the seed itself */
    for (int k = 0; k < n_images && r == 0; k++) {
        pl_rng = pl_seed + (uint64_t)k * 0xD1B54A32D192ED03ull;
        for (size_t i = 0; i < n_cuts && r == 0; i++)
            r = cut_write(&cuts[i], cut_replay(&cuts[i], &ret[k]), k + 1, &ret[k]);
    }
    for (size_t i = 0; i < n_cuts; i++)
        cut_free(&cuts[i]);
    free(cuts);
    for (size_t i = 0; i < pl_n_files; i++) {
        for (size_t k = 0; k < pl_files[i].n_ev; k++)
            event_free(&pl_files[i].ev[k]);
        pl_files[i].n_ev = 0;
    }
    return r;
}

void powerloss_reset(void)
{
    pthread_mutex_lock(&pl_mutex);
    for (size_t i = 0; i < pl_n_files; i++) {
        for (size_t k = 0; k < pl_files[i].n_ev; k++)
            event_free(&pl_files[i].ev[k]);
        free(pl_files[i].ev);
        free(pl_files[i].path);
    }
    free(pl_files);
    pl_files = NULL;
    pl_n_files = pl_cap_files = 0;
    pl_on = pl_lost_track = 0;
    pl_seq = 0;
    pl_images = 1;
    pl_checks = pl_checks_failed = 0;
    pthread_mutex_unlock(&pl_mutex);
    ll_failpoint_set_exit_hook(NULL, NULL);
}

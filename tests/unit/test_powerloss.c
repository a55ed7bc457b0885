/* daemon/powerloss: the simulated power cut keeps every synced byte, and leaves each unsynced
 * write's sectors either as they were or as written, with every fate (kept, dropped, torn)
 * actually happening over a range of seeds. The writes here go through plain pwrite, noted the
 * way the store's test VFS notes them (old bytes read first). */
#include "daemon/powerloss.h"
#include "ll_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_BYTES 16384

struct fixture {
    char dir[64];
    char path[96];
    int fd;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_powerloss.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/f", fx->dir);
    fx->fd = open(fx->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fx->fd >= 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    powerloss_reset();
    close(fx->fd);
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static int64_t file_size(int fd)
{
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    return sb.st_size;
}

/* Writes n bytes at off and notes the write as the store's VFS does. */
static void pl_write(struct fixture *fx, int64_t off, const unsigned char *data, size_t n)
{
    unsigned char *old = calloc(n, 1);
    assert_non_null(old);
    powerloss_lock();
    int64_t size = file_size(fx->fd);
    assert_true(pread(fx->fd, old, n, off) >= 0); /* short beyond the end: zeros stay */
    assert_int_equal(pwrite(fx->fd, data, n, off), (ssize_t)n);
    powerloss_note_write(fx->path, off, old, data, n, size);
    powerloss_unlock();
    free(old);
}

static void pl_sync(struct fixture *fx)
{
    uint64_t ticket = powerloss_ticket();
    assert_int_equal(fsync(fx->fd), 0);
    powerloss_synced(fx->path, ticket);
}

static int cut(struct powerloss_stats *st)
{
    powerloss_lock();
    int r = powerloss_cut(st, 1);
    powerloss_unlock();
    return r;
}

static void read_all(struct fixture *fx, unsigned char *buf, int64_t size)
{
    assert_int_equal(pread(fx->fd, buf, (size_t)size, 0), (ssize_t)size);
}

static void test_powerloss_seed_must_be_a_number(void **state)
{
    (void)state;
    struct ll_error err;
    assert_int_equal(powerloss_start(NULL, &err), 0);
    assert_int_equal(powerloss_start("", &err), 0);
    assert_int_equal(powerloss_active(), 0);
    static const char *const bad[] = {
        "abc", "-1", "1x", " 7", "99999999999999999999999", "1:", "1:0", "1:17", "1:x", "1:2:3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(powerloss_start(bad[i], &err), -EINVAL);
        assert_non_null(strstr(err.msg, "LABLOOP_POWERLOSS"));
        assert_int_equal(powerloss_active(), 0);
    }
    assert_int_equal(powerloss_start("42", &err), 1);
    assert_int_equal(powerloss_active(), 1);
    powerloss_reset();
    assert_int_equal(powerloss_start("42:16", &err), 1);
    powerloss_reset();
    assert_int_equal(powerloss_active(), 0);
}

/* A write that a sync covered is never damaged; nor is one noted before the ticket of a sync
 * that was still running when it came. */
static void test_powerloss_synced_writes_survive(void **state)
{
    struct fixture *fx = *state;
    unsigned char a[FILE_BYTES], b[4096], got[FILE_BYTES];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    assert_int_equal(powerloss_start("1", NULL), 1);
    pl_write(fx, 0, a, sizeof(a));
    uint64_t ticket = powerloss_ticket(); /* a sync begins ... */
    pl_write(fx, 4096, b, sizeof(b));     /* ... a write comes while it runs ... */
    powerloss_synced(fx->path, ticket);   /* ... it ends: only the first write is durable */
    struct powerloss_stats st;
    assert_int_equal(cut(&st), 0);
    assert_int_equal(st.writes, 1);
    assert_int_equal(file_size(fx->fd), FILE_BYTES);
    read_all(fx, got, FILE_BYTES);
    for (int i = 0; i < FILE_BYTES; i++)
        if (got[i] != 'a' && !(i >= 4096 && i < 8192 && got[i] == 'b'))
            fail_msg("byte %d is '%c'", i, got[i]);
    /* everything synced: the cut changes nothing */
    pl_write(fx, 100, b, 3000);
    pl_sync(fx);
    read_all(fx, a, FILE_BYTES);
    assert_int_equal(cut(&st), 0);
    assert_int_equal(st.writes, 0);
    assert_int_equal(st.changed, 0);
    read_all(fx, got, FILE_BYTES);
    assert_memory_equal(got, a, FILE_BYTES);
}

/* Over 200 seeds: a synced image, then unsynced writes (unaligned, one extending the file)
 * and a truncate that is undone before the cut; after the cut every byte outside the
 * unsynced writes is the synced one, every 512-byte sector piece of a write is wholly old or
 * wholly new, the size is the synced one or reaches the end of a kept extending piece, and
 * each fate happens. */
static void test_powerloss_cut_keeps_sectors_whole_and_every_fate_happens(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        int64_t off;
        size_t n;
    } w[] = {
        {32,    4120},
        {4152,  4120},
        {9000,  700 },
        {12800, 1   },
        {16000, 2000}
    };
    const size_t n_w = sizeof(w) / sizeof(w[0]);
    unsigned char synced[FILE_BYTES], data[4120], got[FILE_BYTES + 2048];
    long kept = 0, dropped = 0, torn = 0, changed_runs = 0;
    for (unsigned seed = 1; seed <= 200; seed++) {
        char spec[16];
        snprintf(spec, sizeof(spec), "%u", seed);
        assert_int_equal(powerloss_start(spec, NULL), 1);
        assert_int_equal(ftruncate(fx->fd, 0), 0);
        for (int i = 0; i < FILE_BYTES; i++)
            synced[i] = (unsigned char)(0x80 | ((i * 7 + (int)seed) & 0x7f)); /* never new */
        pl_write(fx, 0, synced, FILE_BYTES);
        pl_sync(fx);
        for (size_t k = 0; k < n_w; k++) {
            memset(data, 'A' + (int)k, w[k].n);
            pl_write(fx, w[k].off, data, w[k].n);
        }
        struct powerloss_stats st;
        assert_int_equal(cut(&st), 0);
        assert_int_equal(st.writes, (long)n_w);
        assert_int_equal(st.kept + st.dropped + st.torn, st.writes);
        kept += st.kept;
        dropped += st.dropped;
        torn += st.torn;
        changed_runs += st.changed > 0;
        int64_t size = file_size(fx->fd);
        assert_true(size == FILE_BYTES || (size > FILE_BYTES && size <= 18000));
        memset(got, 0, sizeof(got));
        read_all(fx, got, size);
        /* outside the unsynced writes: the synced bytes */
        for (int64_t i = 0; i < size; i++) {
            int in = 0;
            for (size_t k = 0; k < n_w; k++)
                in |= i >= w[k].off && i < w[k].off + (int64_t)w[k].n;
            if (!in && got[i] != (i < FILE_BYTES ? synced[i] : 0))
                fail_msg("seed %u: synced byte %lld changed", seed, (long long)i);
        }
        /* each write's sector pieces: wholly old or wholly new; the fates as counted */
        long fates[3] = {0, 0, 0}; /* kept, dropped, torn */
        for (size_t k = 0; k < n_w; k++) {
            size_t n_new = 0, n_pieces = 0;
            for (int64_t a = w[k].off; a < w[k].off + (int64_t)w[k].n; n_pieces++) {
                int64_t b = (a / POWERLOSS_SECTOR + 1) * POWERLOSS_SECTOR;
                b = b > w[k].off + (int64_t)w[k].n ? w[k].off + (int64_t)w[k].n : b;
                size_t n_here = 0;
                for (int64_t j = a; j < b; j++)
                    n_here += j < size && got[j] == 'A' + (int)k;
                for (int64_t j = a; j < b && n_here == 0; j++)
                    if (got[j] != (j < FILE_BYTES ? synced[j] : 0))
                        fail_msg("seed %u: byte %lld neither old nor new", seed, (long long)j);
                if (n_here != 0 && n_here != (size_t)(b - a))
                    fail_msg("seed %u: sector piece at %lld torn inside", seed, (long long)a);
                n_new += n_here != 0;
                a = b;
            }
            fates[n_new == n_pieces ? 0 : n_new == 0 ? 1 : 2]++;
        }
        assert_int_equal(fates[0], st.kept);
        assert_int_equal(fates[1], st.dropped);
        assert_int_equal(fates[2], st.torn);
        powerloss_reset();
    }
    print_message("200 cuts: %ld writes kept, %ld dropped, %ld torn; %ld cuts changed bytes\n",
                  kept,
                  dropped,
                  torn,
                  changed_runs);
    assert_true(kept > 50 && dropped > 50 && torn > 50);
    assert_true(changed_runs > 150);
}

/* An unsynced truncate is either done or undone, with the bytes it cut off back. */
static void test_powerloss_truncate_kept_or_undone(void **state)
{
    struct fixture *fx = *state;
    unsigned char a[FILE_BYTES], got[FILE_BYTES];
    int undone = 0, done = 0;
    for (unsigned seed = 1; seed <= 40; seed++) {
        char spec[16];
        snprintf(spec, sizeof(spec), "%u", seed);
        assert_int_equal(powerloss_start(spec, NULL), 1);
        for (int i = 0; i < FILE_BYTES; i++)
            a[i] = (unsigned char)(i ^ seed);
        pl_write(fx, 0, a, FILE_BYTES);
        pl_sync(fx);
        powerloss_lock();
        assert_int_equal(ftruncate(fx->fd, 4096), 0);
        powerloss_note_truncate(fx->path, 4096, FILE_BYTES, a + 4096);
        powerloss_unlock();
        struct powerloss_stats st;
        assert_int_equal(cut(&st), 0);
        assert_int_equal(st.truncates, 1);
        int64_t size = file_size(fx->fd);
        assert_true(size == 4096 || size == FILE_BYTES);
        read_all(fx, got, size);
        assert_memory_equal(got, a, (size_t)size);
        undone += size == FILE_BYTES;
        done += size == 4096;
        powerloss_reset();
    }
    assert_true(undone > 5 && done > 5);
}

/* Several images of one snapshot: image 1 in place, image k beside it as PATH.powerloss-k,
 * each damaged on its own (they differ), none touching a synced byte. */
static void test_powerloss_images_each_damaged_on_their_own(void **state)
{
    struct fixture *fx = *state;
    unsigned char a[FILE_BYTES], b[FILE_BYTES], got[FILE_BYTES];
    int differ = 0;
    for (unsigned seed = 1; seed <= 20; seed++) {
        char spec[16], path[3][128];
        snprintf(spec, sizeof(spec), "%u:3", seed);
        assert_int_equal(powerloss_start(spec, NULL), 1);
        memset(a, 'a', sizeof(a));
        memset(b, 'b', sizeof(b));
        pl_write(fx, 0, a, FILE_BYTES);
        pl_sync(fx);
        for (int k = 0; k < 8; k++)
            pl_write(fx, 32 + k * 2048, b, 1500);
        struct powerloss_stats st[3];
        powerloss_lock();
        assert_int_equal(powerloss_cut(st, 3), 0);
        powerloss_unlock();
        unsigned char img[3][FILE_BYTES];
        for (int k = 0; k < 3; k++) {
            assert_int_equal(st[k].writes, 8);
            snprintf(path[k], sizeof(path[k]), "%s.powerloss-%d", fx->path, k + 1);
            int fd = k == 0 ? fx->fd : open(path[k], O_RDONLY);
            assert_true(fd >= 0);
            assert_int_equal(file_size(fd), FILE_BYTES);
            assert_int_equal(pread(fd, img[k], FILE_BYTES, 0), FILE_BYTES);
            for (int i = 0; i < FILE_BYTES; i++)
                if (img[k][i] != 'a' && !(img[k][i] == 'b' && (i - 32) % 2048 < 1500))
                    fail_msg("seed %u image %d: byte %d is '%c'", seed, k + 1, i, img[k][i]);
            if (k > 0) {
                differ += memcmp(img[k], img[0], FILE_BYTES) != 0;
                assert_int_equal(unlink(path[k]), 0);
            }
        }
        read_all(fx, got, FILE_BYTES);
        assert_memory_equal(got, img[0], FILE_BYTES);
        powerloss_reset();
    }
    assert_true(differ > 30);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_powerloss_seed_must_be_a_number),
        cmocka_unit_test_setup_teardown(test_powerloss_synced_writes_survive, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_powerloss_cut_keeps_sectors_whole_and_every_fate_happens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_powerloss_truncate_kept_or_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_powerloss_images_each_damaged_on_their_own, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* powerloss — test builds: a simulated power cut for the store's files (reliability.md §4.2 F3,
 * §1 "make SQLite's crash technique our own").
 *
 * The idea. kill -9 (and a failpoint's _exit) only tests an application crash: every write the
 * process made is in the kernel's page cache and the next process reads it, synced or not. A
 * power cut loses what the disk had not yet been told to keep. So, as SQLite's own crash tests
 * do with a special VFS, the store's test VFS (daemon/store.c, LL_FAILPOINTS builds) reports
 * every write and truncate of the database, its WAL and its journal here, with the bytes the
 * region held before, and every completed xSync; a sync makes the file's earlier writes
 * durable and they are forgotten. When a kill point fires (common/ll_failpoint.h exit hook),
 * powerloss_cut damages what is still unsynced before the process exits: each write, by a
 * seeded PRNG, is kept, dropped (its old bytes back), or torn (only a prefix of its 512-byte
 * sectors, or a random subset of them, reached the disk), and the surviving writes land in a
 * random order, as a disk with a volatile cache that reorders writes may leave them. Synced
 * bytes are never changed. The result stays in the page cache for the next process to find.
 * As SQLite's TH3 repeats each snapshot with different damage, a cut can make several
 * images from one snapshot, each with a PRNG stream of its own: image 1 replaces the file
 * (the next start recovers it), image k > 1 goes to PATH.powerloss-k beside it for a test to
 * check (files without unsynced writes get none: the file itself is every image of them).
 *
 *     LABLOOP_POWERLOSS=SEED[:IMAGES]   (decimal, 0 <= SEED < 2^64, 1 <= IMAGES <= 16,
 *                                        default 1; empty or unset: off)
 *
 * The cut logs one line per image, which the tests read:
 *     <4>powerloss: cut at NAME (seed S, image K of N): F files, W unsynced writes (K kept,
 *     D dropped, T torn), X truncates, B bytes changed
 * and one <6> line per damaged file and image.
 *
 * Not modelled: directory entries (a file created or deleted since the last directory sync
 * stays created or deleted), the WAL-index (-shm, which SQLite rebuilds after the last
 * connection goes) and writes made by other processes.
 *
 * State: one process-wide table (it stands for the process's open files), guarded by one mutex
 * that the store's VFS takes around each write so that a cut never sees half a write.
 */
#ifndef POWERLOSS_H
#define POWERLOSS_H

#include "common/ll_error.h"

#include <stddef.h>
#include <stdint.h>

#define POWERLOSS_SECTOR 512 /* a torn write keeps whole sectors of this size (file offsets) */
#define POWERLOSS_MAX_IMAGES 16

/* What a cut did, summed over the files. */
struct powerloss_stats {
    long files;        /* files with unsynced writes or truncates */
    long writes;       /* unsynced writes */
    long kept;         /* ... of which every sector reached the disk */
    long dropped;      /* ... of which none did */
    long torn;         /* ... of which some did */
    long truncates;    /* unsynced truncates (each kept or dropped) */
    long long changed; /* bytes that differ from the file before the cut (size changes count) */
};

/* Turns the simulation on with the seed in `spec` ("SEED[:IMAGES]") and registers the cut as
 * the failpoint exit hook; NULL or "" leaves it off. Returns 1 when on, 0 when off, -EINVAL
 * (message in reterr) for a malformed seed. */
int powerloss_start(const char *spec, struct ll_error *reterr);

/* 1 if powerloss_start turned the simulation on. */
int powerloss_active(void);

/* The table's mutex: held by the caller around reading a region's old bytes, writing it and
 * powerloss_note_*, so that a cut on another thread sees each write whole or not at all. */
void powerloss_lock(void);
void powerloss_unlock(void);

/* With the lock held: `n` bytes `data` were written at `off` of file `path` (an absolute
 * path: the file's key), which held `old` (zeros beyond the end) and was old_size bytes long
 * before. Copies what it keeps. Out of memory is remembered and reported by the cut, which
 * then exits 2: a test must not pass on a simulation that lost track. */
void powerloss_note_write(
    const char *path, int64_t off, const void *old, const void *data, size_t n, int64_t old_size);

/* With the lock held: `path` was truncated from old_size to size bytes; old_tail holds the
 * old_size - size bytes cut off (NULL when size >= old_size). */
void powerloss_note_truncate(const char *path,
                             int64_t size,
                             int64_t old_size,
                             const void *old_tail);

/* A ticket to pass to powerloss_synced: taken (lock held or not) before an xSync starts. */
uint64_t powerloss_ticket(void);

/* After a successful xSync of `path` that began at `ticket`: every write and truncate noted
 * before the ticket is durable and forgotten (those noted during the sync are not). */
void powerloss_synced(const char *path, uint64_t ticket);

/* Counts one durability check (store_check_durable) and returns how many writes and
 * truncates await an fsync now. The cut logs how many checks ran since the start. */
long powerloss_check(void);

/* `path` was deleted: its unsynced writes go with it. */
void powerloss_forget(const char *path);

/* The cut: with the lock held, makes n_images (1..POWERLOSS_MAX_IMAGES) damaged images of
 * every file's unsynced writes as described above (through file descriptors of its own:
 * opened, rewritten and closed), fills ret[0..n_images-1] and forgets everything. Returns 0,
 * -ENOMEM when the table lost track, or a negative errno for a file it could not read or
 * write. Exposed for the unit tests. */
int powerloss_cut(struct powerloss_stats *ret, int n_images);

/* Forgets everything and turns the simulation off (the unit tests run several cuts in one
 * process; the seed of the next powerloss_start starts the PRNG again). */
void powerloss_reset(void);

#endif

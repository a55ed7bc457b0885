/* replay_main — runs a libFuzzer target without libFuzzer, so the fuzz targets are part
 * of every build and every test run (gcc or clang, with sanitizers when enabled).
 *
 * Usage: fuzz_NAME_replay [CORPUS_DIR_OR_FILE ...]
 * Feeds every corpus file to LLVMFuzzerTestOneInput, then a fixed number of deterministic
 * mutations of each (bit flips, truncations, byte insertions, splices), so that even
 * without a coverage-guided run the parser meets broken input on every change. The
 * mutation stream is seeded from LL_FUZZ_SEED (default 1) and its length from
 * LL_FUZZ_MUTATIONS (default 200 per file). A crash aborts with the sanitizer's report.
 */
#include <dirent.h>
#include <gsl/gsl_errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: tiny, deterministic, good enough to pick mutations */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void run_one(const uint8_t *data, size_t size)
{
    /* a private copy, so a target that reads past the end is caught by ASan */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

static void mutate_and_run(const uint8_t *data, size_t size, long n_mutations)
{
    static const uint8_t interesting[] = {0,    0xff, '"', '\\', '{', '}', '[', ']',  ',', ':',
                                          '\n', '-',  '.', 'e',  'N', '9', ' ', 0x80, ';', '='};
    size_t cap = size * 2 + 64;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        abort();
    for (long m = 0; m < n_mutations; m++) {
        size_t n = size;
        memcpy(buf, data, size);
        int edits = 1 + (int)(rng_next() % 4);
        for (int e = 0; e < edits; e++) {
            uint64_t r = rng_next();
            size_t pos = n ? (size_t)(r >> 8) % n : 0;
            switch (r % 5) {
            case 0: /* flip a bit */
                if (n)
                    buf[pos] ^= (uint8_t)(1u << ((r >> 40) % 8));
                break;
            case 1: /* truncate */
                n = pos;
                break;
            case 2: /* insert an interesting byte */
                if (n + 1 < cap) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = interesting[(r >> 40) % sizeof(interesting)];
                    n++;
                }
                break;
            case 3: /* delete a byte */
                if (n) {
                    memmove(buf + pos, buf + pos + 1, n - pos - 1);
                    n--;
                }
                break;
            default: /* duplicate a chunk */
                if (n && n + 16 < cap) {
                    size_t len = 1 + (r >> 32) % 16;
                    if (pos + len > n)
                        len = n - pos;
                    memmove(buf + pos + len, buf + pos, n - pos);
                    n += len;
                }
                break;
            }
        }
        run_one(buf, n);
    }
    free(buf);
}

static int replay_file(const char *path, long n_mutations)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *grown = realloc(data, cap);
            if (grown == NULL)
                abort();
            data = grown;
        }
        size_t got = fread(data + size, 1, cap - size, f);
        if (got == 0)
            break;
        size += got;
    }
    fclose(f);
    run_one(data, size);
    mutate_and_run(data, size, n_mutations);
    free(data);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_path(const char *path, long n_mutations, int *n_files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*n_files)++;
        return replay_file(path, n_mutations);
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char **grown = realloc(names, (n + 1) * sizeof(*names));
        if (grown == NULL)
            abort();
        names = grown;
        names[n] = strdup(de->d_name);
        if (names[n] == NULL)
            abort();
        n++;
    }
    closedir(dir);
    if (n > 0) /* qsort's array must not be NULL, even for 0 elements */
        qsort(names, n, sizeof(*names), cmp_names); /* same order on every machine */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, names[i]);
        if (replay_path(full, n_mutations, n_files) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off(); /* as every main() of ours (docs/DEVELOPMENT.md) */
    const char *seed = getenv("LL_FUZZ_SEED");
    const char *muts = getenv("LL_FUZZ_MUTATIONS");
    rng_state = seed ? strtoull(seed, NULL, 10) : 1;
    long n_mutations = muts ? strtol(muts, NULL, 10) : 200;
    int n_files = 0, rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], n_mutations, &n_files) != 0)
            rc = 1;
    if (n_files == 0) {
        fprintf(stderr, "replay: no corpus files given\n");
        return 1;
    }
    printf("replayed %d corpus files with %ld mutations each\n", n_files, n_mutations);
    return rc;
}

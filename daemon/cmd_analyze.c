/* cmd_analyze — `labloop analyze MEASUREMENT.json`: the measurement models without the daemon.
 *
 * Reads one station message from a file (or standard input for "-") exactly as a station
 * sends it, validates it with the daemon's parser (models/measurement.h), analyses it
 * (models/analysis.h) and prints the derived numbers as JSON on standard output. Exit 0 on
 * success; 2 with one line on standard error naming the file and the bad field for unreadable,
 * empty or invalid input or data the analysis cannot use; 1 when out of memory.
 */
#include "daemon/commands.h"
#include "daemon/jsonmem.h"
#include "models/analysis.h"
#include "models/measurement.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: labloop analyze MEASUREMENT.json\n"
            "\n"
            "Reads one station measurement message (docs/protocol.md; \"-\" reads standard\n"
            "input) and prints the derived numbers as JSON (docs/analysis.md).\n"
            "Exit status: 0 success, 2 invalid input (the message names the field).\n");
}

/* Reads at most limit + 1 bytes of f into a new buffer (*ret, caller frees). */
static int read_all(FILE *f, size_t limit, char **ret, size_t *ret_len)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            char *bigger;
            if (cap > limit) /* already read more than the limit: stop, it is oversize */
                break;
            cap *= 2;
            bigger = realloc(buf, cap);
            if (bigger == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = bigger;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return -EIO;
            }
            break;
        }
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

int cmd_analyze(int argc, char **argv)
{
    const char *path;
    FILE *f;
    char *text = NULL, *out = NULL;
    size_t len = 0;
    struct measurement *m = NULL;
    struct analysis *a = NULL;
    struct ll_error err = {0};
    int status = CMD_EXIT_USAGE, r;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return CMD_EXIT_OK;
    }
    if (argc != 2) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    path = argv[1];
    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "labloop analyze: %s: cannot open: %s\n", path, strerror(errno));
        return CMD_EXIT_USAGE;
    }
    r = read_all(f, MEASUREMENT_MAX_BYTES, &text, &len);
    if (f != stdin)
        fclose(f);
    if (r < 0) {
        fprintf(stderr,
                "labloop analyze: %s: %s%s\n",
                path,
                r == -ENOMEM ? "" : "cannot read: ",
                r == -ENOMEM ? "out of memory" : strerror(-r));
        status = r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
        goto out;
    }
    if (len == 0) {
        fprintf(stderr, "labloop analyze: %s: empty file\n", path);
        goto out;
    }
    /* jansson does not always say when it ran out of memory (jsonmem.h) */
    jsonmem_install();
    uint64_t json_failures = jsonmem_failures();
    r = measurement_parse(text, len, &m, &err);
    if (r < 0 && jsonmem_failures() != json_failures) {
        fprintf(stderr, "labloop analyze: %s: out of memory\n", path);
        status = CMD_EXIT_FAILED;
        goto out;
    }
    if (r < 0) {
        fprintf(stderr, "labloop analyze: %s: %s\n", path, err.msg);
        status = r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
        goto out;
    }
    if (measurement_type(m) != MEASUREMENT_TYPE_MEASUREMENT) {
        fprintf(stderr,
                "labloop analyze: %s: type: a \"%s\" message has no data to analyse\n",
                path,
                measurement_type_name(measurement_type(m)));
        goto out;
    }
    r = analysis_run(m, &a, &err);
    if (r < 0) {
        fprintf(stderr, "labloop analyze: %s: %s\n", path, err.msg);
        status = r == -ENOMEM ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
        goto out;
    }
    out = analysis_to_json(a);
    if (out == NULL || jsonmem_failures() != json_failures) {
        fprintf(stderr, "labloop analyze: %s: out of memory\n", path);
        status = CMD_EXIT_FAILED;
        goto out;
    }
    printf("%s\n", out);
    status = fflush(stdout) == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
out:
    free(out);
    analysis_free(&a);
    measurement_free(&m);
    free(text);
    return status;
}

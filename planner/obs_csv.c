/* obs_csv — a strict reader of small numeric CSV files (see obs_csv.h). */
#include "planner/obs_csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct field {
    const char *start; /* trimmed */
    size_t len;
    size_t col; /* 1-based byte column of the untrimmed field start */
};

/* Splits one line (without its '\n') into fields; returns how many, or (size_t)-1 when there
 * are more than max. */
static size_t split(const char *line, size_t len, struct field *f, size_t max)
{
    size_t n = 0, pos = 0;
    for (;;) {
        size_t end = pos;
        while (end < len && line[end] != ',')
            end++;
        if (n == max)
            return (size_t)-1;
        size_t a = pos, b = end;
        while (a < b && (line[a] == ' ' || line[a] == '\t'))
            a++;
        while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t'))
            b--;
        f[n].start = line + a;
        f[n].len = b - a;
        f[n].col = pos + 1;
        n++;
        if (end >= len)
            return n;
        pos = end + 1;
    }
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

/* Prints a field for a message: at most 40 bytes, non-printable bytes as '?'. */
static void show(const struct field *f, char *buf, size_t cap)
{
    size_t n = f->len < 40 ? f->len : 40, o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)f->start[i];
        char shown = '?';
        if (ch >= 32 && ch < 127)
            shown = (char)ch;
        buf[o++] = shown;
    }
    buf[o] = '\0';
    if (f->len > 40 && o + 4 < cap)
        memcpy(buf + o, "...", 4);
}

static int parse_header(const char *line,
                        size_t len,
                        const char *name,
                        const char *const *columns,
                        size_t n_columns,
                        size_t n_optional,
                        struct obs_csv *t,
                        struct ll_error *reterr)
{
    struct field f[OBS_CSV_MAX_COLUMNS];
    int seen[OBS_CSV_MAX_COLUMNS] = {0};
    size_t n = split(line, len, f, OBS_CSV_MAX_COLUMNS);
    char buf[64];
    if (n == (size_t)-1)
        return ll_error_set(
            reterr, -EINVAL, "%s:1:1: more than %d columns", name, OBS_CSV_MAX_COLUMNS);
    for (size_t i = 0; i < n; i++) {
        const char *s = f[i].start;
        size_t l = f[i].len;
        if (l >= 2 && s[0] == '"' && s[l - 1] == '"') {
            s++;
            l -= 2;
        }
        size_t j = 0;
        while (j < n_columns && !(strlen(columns[j]) == l && memcmp(columns[j], s, l) == 0))
            j++;
        show(&f[i], buf, sizeof(buf));
        if (l == 0)
            return ll_error_set(reterr, -EINVAL, "%s:1:%zu: empty column name", name, f[i].col);
        if (j == n_columns)
            return ll_error_set(
                reterr, -EINVAL, "%s:1:%zu: unknown column '%s'", name, f[i].col, buf);
        if (seen[j])
            return ll_error_set(
                reterr, -EINVAL, "%s:1:%zu: column '%s' appears twice", name, f[i].col, buf);
        seen[j] = 1;
        t->col_pos[j] = i;
    }
    for (size_t j = 0; j < n_columns; j++) {
        if (!seen[j] && j < n_columns - n_optional)
            return ll_error_set(reterr, -EINVAL, "%s:1: missing column '%s'", name, columns[j]);
        if (!seen[j])
            t->col_pos[j] = OBS_CSV_ABSENT;
    }
    t->n_fields = n;
    return 0;
}

static int parse_row(const char *line,
                     size_t len,
                     size_t lineno,
                     const char *name,
                     const char *const *columns,
                     struct obs_csv *t,
                     double *row,
                     struct ll_error *reterr)
{
    struct field f[OBS_CSV_MAX_COLUMNS];
    size_t n = split(line, len, f, t->n_fields);
    char buf[64], num[OBS_CSV_MAX_FIELD + 1];
    if (n == (size_t)-1 || n != t->n_fields)
        return ll_error_set(reterr,
                            -EINVAL,
                            "%s:%zu:1: %s fields, the header has %zu",
                            name,
                            lineno,
                            n == (size_t)-1   ? "too many"
                            : n < t->n_fields ? "too few"
                                              : "",
                            t->n_fields);
    for (size_t j = 0; j < t->n_cols; j++) {
        if (t->col_pos[j] == OBS_CSV_ABSENT) {
            row[j] = (double)NAN;
            continue;
        }
        const struct field *fj = &f[t->col_pos[j]];
        show(fj, buf, sizeof(buf));
        if (fj->len == 0)
            return ll_error_set(reterr,
                                -EINVAL,
                                "%s:%zu:%zu: column '%s': empty value",
                                name,
                                lineno,
                                fj->col,
                                columns[j]);
        if (fj->len > OBS_CSV_MAX_FIELD)
            return ll_error_set(reterr,
                                -EINVAL,
                                "%s:%zu:%zu: column '%s': value too long",
                                name,
                                lineno,
                                fj->col,
                                columns[j]);
        memcpy(num, fj->start, fj->len);
        num[fj->len] = '\0';
        char *end = NULL;
        errno = 0;
        double v = strtod(num, &end);
        if (end == num || *end != '\0' || memchr(fj->start, '\0', fj->len) != NULL)
            return ll_error_set(reterr,
                                -EINVAL,
                                "%s:%zu:%zu: column '%s': '%s' is not a number",
                                name,
                                lineno,
                                fj->col,
                                columns[j],
                                buf);
        if (!isfinite(v))
            return ll_error_set(reterr,
                                -EINVAL,
                                "%s:%zu:%zu: column '%s': '%s' is not a finite number",
                                name,
                                lineno,
                                fj->col,
                                columns[j],
                                buf);
        row[j] = v;
    }
    return 0;
}

int obs_csv_parse(const char *text,
                  size_t len,
                  const char *name,
                  const char *const *columns,
                  size_t n_columns,
                  size_t n_optional,
                  struct obs_csv *ret,
                  struct ll_error *reterr)
{
    struct obs_csv t;
    size_t cap = 0, pos = 0, lineno = 0;
    int r = 0, have_header = 0;
    memset(&t, 0, sizeof(t));
    memset(ret, 0, sizeof(*ret));
    ll_error_clear(reterr);
    if (n_columns < 1 || n_columns > OBS_CSV_MAX_COLUMNS || n_optional >= n_columns)
        return ll_error_set(reterr, -EINVAL, "%s: bad number of columns", name);
    t.n_cols = n_columns;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t l = end - pos;
        const char *line = text + pos;
        lineno++;
        pos = end + 1;
        if (l > 0 && line[l - 1] == '\r')
            l--;
        if (is_blank(line, l))
            continue;
        if (!have_header) {
            if (lineno != 1)
                return ll_error_set(
                    reterr, -EINVAL, "%s:1: the first line must be the header", name);
            if ((r = parse_header(line, l, name, columns, n_columns, n_optional, &t, reterr)) != 0)
                goto fail;
            have_header = 1;
            continue;
        }
        if (t.n_rows == cap) {
            size_t cap2 = cap ? cap * 2 : 64;
            double *v = realloc(t.values, cap2 * n_columns * sizeof(double));
            if (v == NULL) {
                r = ll_error_set(reterr, -ENOMEM, "%s: out of memory", name);
                goto fail;
            }
            t.values = v;
            size_t *ln = realloc(t.line, cap2 * sizeof(size_t));
            if (ln == NULL) {
                r = ll_error_set(reterr, -ENOMEM, "%s: out of memory", name);
                goto fail;
            }
            t.line = ln;
            cap = cap2;
        }
        r = parse_row(line, l, lineno, name, columns, &t, t.values + t.n_rows * n_columns, reterr);
        if (r != 0)
            goto fail;
        t.line[t.n_rows++] = lineno;
    }
    if (!have_header)
        return ll_error_set(reterr, -EINVAL, "%s:1: empty file, expected a header row", name);
    *ret = t;
    return 0;
fail:
    obs_csv_free(&t);
    return r;
}

int obs_csv_read_file(const char *path,
                      const char *const *columns,
                      size_t n_columns,
                      size_t n_optional,
                      struct obs_csv *ret,
                      struct ll_error *reterr)
{
    memset(ret, 0, sizeof(*ret));
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ll_error_set(
            reterr, errno == ENOENT ? -ENOENT : -EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int r = 0;
    for (;;) {
        if (len == cap) {
            size_t cap2 = cap ? cap * 2 : 65536;
            char *b = realloc(buf, cap2);
            if (b == NULL) {
                r = ll_error_set(reterr, -ENOMEM, "%s: out of memory", path);
                goto out;
            }
            buf = b;
            cap = cap2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        if (got == 0)
            break;
        len += got;
    }
    if (ferror(f)) {
        r = ll_error_set(reterr, -EIO, "%s: read error", path);
        goto out;
    }
    r = obs_csv_parse(buf ? buf : "", len, path, columns, n_columns, n_optional, ret, reterr);
out:
    free(buf);
    fclose(f);
    return r;
}

void obs_csv_free(struct obs_csv *t)
{
    free(t->values);
    free(t->line);
    t->values = NULL;
    t->line = NULL;
    t->n_rows = 0;
}

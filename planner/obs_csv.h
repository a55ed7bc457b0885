/* obs_csv — the observation and pending-experiment CSV files of `labloop plan`.
 *
 * Format (DESIGN.md, "labloop plan"): a header row naming every wanted column exactly once, in
 * any order (optional columns at most once: a computed objective's value may be given or
 * not), then one row of numbers per experiment. Fields are separated by commas; spaces
 * around a field and a final '\r' are ignored; header names may be in double quotes; blank
 * lines are skipped. Every value must be a finite decimal number. Anything else — an empty
 * file, a missing, unknown or repeated column, a row with too few or too many fields, an empty
 * field, text, NaN or infinity — is refused with "FILE:LINE:COLUMN: problem" (LINE and COLUMN
 * counted from 1, COLUMN in bytes) and nothing is returned.
 */
#ifndef LL_OBS_CSV_H
#define LL_OBS_CSV_H

#include "common/ll_error.h"

#include <stddef.h>

#define OBS_CSV_MAX_COLUMNS 128
#define OBS_CSV_MAX_FIELD 256       /* bytes of one field */
#define OBS_CSV_ABSENT ((size_t)-1) /* col_pos of an optional column the file does not have */

struct obs_csv {
    size_t n_rows, n_cols; /* n_cols: the wanted columns */
    size_t n_fields;       /* columns of the file (n_cols minus the absent optional ones) */
    double *values;        /* n_rows rows of n_cols, in the order of the wanted columns; NaN in an
                              absent optional column */
    size_t *line;          /* source line of each row */
    size_t col_pos[OBS_CSV_MAX_COLUMNS]; /* position (0-based) of wanted column j in the file,
                                            or OBS_CSV_ABSENT */
};

/* Parses len bytes of CSV text (NUL bytes are an error, not an end) whose header must hold
 * exactly the n_columns names in columns[], of which the last n_optional may be missing.
 * name is the FILE of messages. On success fills
 * *ret (free with obs_csv_free) and returns 0; on bad input returns -EINVAL with the message
 * in reterr and leaves *ret empty; -ENOMEM. */
int obs_csv_parse(const char *text,
                  size_t len,
                  const char *name,
                  const char *const *columns,
                  size_t n_columns,
                  size_t n_optional,
                  struct obs_csv *ret,
                  struct ll_error *reterr);

/* The same for a file; -ENOENT/-EIO with "PATH: cannot open: reason" if it cannot be read. */
int obs_csv_read_file(const char *path,
                      const char *const *columns,
                      size_t n_columns,
                      size_t n_optional,
                      struct obs_csv *ret,
                      struct ll_error *reterr);

/* Frees the arrays of t and empties it; safe on an empty or freed table. */
void obs_csv_free(struct obs_csv *t);

#endif

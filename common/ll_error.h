/* ll_error — the one error type of labloop.
 *
 * Fallible functions return int: 0 on success, a negative errno-style code on failure
 * (-EINVAL, -ENOMEM, -ETIMEDOUT ...). Where a person needs more than a code — parsers,
 * configuration, measurement validation, instrument replies — the caller passes a
 * struct ll_error that the callee fills with one sentence naming what was wrong, e.g.
 * "obs.csv:14: column 'anneal_c': 'abc' is not a number". Every function that takes a
 * struct ll_error * accepts NULL there.
 */
#ifndef LL_ERROR_H
#define LL_ERROR_H

#include <stddef.h>

#define LL_ERROR_MSG_MAX 512

struct ll_error {
    int code;                   /* negative errno-style code, 0 when no error */
    char msg[LL_ERROR_MSG_MAX]; /* one sentence, no trailing newline */
};

/* Records code (negative) and a printf-style message in err (if err is not NULL) and
 * returns code, so that a callee can write `return ll_error_set(err, -EINVAL, "...")`. */
int ll_error_set(struct ll_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with a printf-style context followed by ": "
 * (e.g. the file name), keeping the code. Returns err->code (or 0 for a NULL err). */
int ll_error_prefix(struct ll_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears err (code 0, empty message). NULL is a no-op. */
void ll_error_clear(struct ll_error *err);

#endif

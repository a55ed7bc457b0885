/* ll_error — see ll_error.h. */
#include "common/ll_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ll_error_set(struct ll_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int ll_error_prefix(struct ll_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return 0;
    char prefix[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* prefix + ": " + old message, truncated to the buffer */
    size_t n_prefix = strlen(prefix);
    size_t n_old = strlen(err->msg);
    size_t room = sizeof(err->msg) - 1;
    size_t head = n_prefix + 2 < room ? n_prefix + 2 : room;
    size_t tail = n_old < room - head ? n_old : room - head;
    memmove(err->msg + head, err->msg, tail);
    memcpy(err->msg, prefix, head < n_prefix ? head : n_prefix);
    if (head == n_prefix + 2)
        memcpy(err->msg + n_prefix, ": ", 2);
    err->msg[head + tail] = '\0';
    return err->code;
}

void ll_error_clear(struct ll_error *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

/* log — see log.h. */
#include "daemon/log.h"

#include <stdarg.h>
#include <stdio.h>

static int log_level = LOG_LVL_INFO;

void log_set_level(int level)
{
    log_level = level;
}

void log_line(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* one fprintf per line so that concurrent writers do not interleave within a line */
    fprintf(stderr, "<%d>%s\n", level, line);
}

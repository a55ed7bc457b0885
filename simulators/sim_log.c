/* sim_log — labsim's stderr log (see sim_log.h). */
#include "simulators/sim_log.h"

#include <stdarg.h>
#include <stdio.h>

int sim_log_verbose;

void sim_log(int prio, const char *fmt, ...)
{
    if (prio >= SIM_LOG_DEBUG && !sim_log_verbose)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "<%d>labsim: %s\n", prio, line);
}

/* ll_signal — see ll_signal.h. */
#include "common/ll_signal.h"

#include <signal.h>
#include <sys/signalfd.h>

int ll_signalfd_term(int flags)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &mask, SFD_CLOEXEC | flags);
}

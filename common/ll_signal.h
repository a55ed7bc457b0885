/* ll_signal — the programs' shared signal setup. */
#ifndef LL_SIGNAL_H
#define LL_SIGNAL_H

/* Blocks SIGTERM and SIGINT and returns a signalfd that reads them (close-on-exec, plus
 * flags, e.g. SFD_NONBLOCK), so that a main loop polls them with everything else; SIGPIPE is
 * ignored (a peer that went away is an error return, not a death). Returns -1 with errno on
 * failure. */
int ll_signalfd_term(int flags);

#endif

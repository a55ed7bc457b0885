/* ll_failpoint — named kill points and hang points for crash tests (reliability.md §4.2 F2,
 * F18, §5).
 *
 * A test build (cmake -DLL_FAILPOINTS=ON; scripts/test.sh builds that way) compiles
 * LL_FAILPOINT("name") into the places where labloopd could die between two durable steps:
 * after a step's intent is committed and before the instrument is told, in the middle of a
 * group commit, during a migration, and so on (docs/DEVELOPMENT.md lists them). With
 *
 *     LABLOOP_FAILPOINT=name:n[,name:n...]
 *
 * in its environment, the n-th time the process passes point `name` it writes
 * "failpoint NAME hit N: exiting 137" to stderr and calls _exit(137): no atexit handlers,
 * no buffers flushed, no SQLite connection closed — the same as SIGKILL at that moment,
 * but at a chosen point instead of a random one. Unnamed points cost one relaxed atomic load.
 *
 * Hang points (F18: a hung instrument worker thread) work the same way with
 *
 *     LABLOOP_FAILPOINT_HANG=name:n[,name:n...]
 *
 * and LL_FAILPOINT_HANG("name"): the n-th pass writes "failpoint NAME hit N: hanging forever"
 * to stderr and blocks the calling thread for good (pause() in a loop), while the rest of the
 * process runs on. Only a signal that ends the process (systemd's watchdog SIGABRT, SIGKILL)
 * ends it. labloopd passes "worker_OP_INSTRUMENT" in each instrument worker's thread before
 * every driver call (OP: start, poll, query, safe, status, describe, clear; daemon/engine.c),
 * so LABLOOP_FAILPOINT_HANG=worker_poll_furnace:1 hangs the furnace's worker at its first poll.
 *
 * In other builds LL_FAILPOINT and LL_FAILPOINT_HANG expand to nothing and the environment
 * variables are ignored, so a deployed daemon cannot be stopped or hung this way.
 *
 * State: the parsed specifications and the hit counters are process-wide (they stand for the
 * process's environment); they are safe to use from several threads.
 */
#ifndef LL_FAILPOINT_H
#define LL_FAILPOINT_H

#ifdef LL_FAILPOINTS
#define LL_FAILPOINT(name) ll_failpoint_pass(name)
#define LL_FAILPOINT_HANG(name) ll_failpoint_hang(name)
#else
#define LL_FAILPOINT(name) ((void)0)
#define LL_FAILPOINT_HANG(name) ((void)0)
#endif

/* Counts a pass of point `name` and exits the process as described above when this is the
 * pass the environment names. Reads LABLOOP_FAILPOINT once, on the first call. */
void ll_failpoint_pass(const char *name);

/* Counts a pass of hang point `name` and blocks the calling thread forever when this is the
 * pass LABLOOP_FAILPOINT_HANG names (read once, on the first call). */
void ll_failpoint_hang(const char *name);

/* A function run on the thread that hit a point, after the "failpoint ... exiting 137" line and
 * just before _exit(137), with the point's name. labloopd's store uses it to simulate a power
 * cut at the kill point (daemon/powerloss.h); common/ knows nothing of what it does. It may
 * block for ever (other threads that hit a point meanwhile then wait in it until the exit),
 * and it must not return to the point's caller: ll_failpoint_pass exits right after it. One
 * hook per process; a later call replaces it, NULL removes it. */
typedef void ll_failpoint_hook(const char *name, void *arg);
void ll_failpoint_set_exit_hook(ll_failpoint_hook *fn, void *arg);

/* 1 if this build compiles failpoints in (LL_FAILPOINTS), else 0. */
int ll_failpoints_compiled(void);

/* Parses a specification "name:n[,name:n...]" (names of letters, digits and '_', at most
 * LL_FAILPOINT_NAME_MAX - 1 bytes; 1 <= n <= 1e9) into at most max entries. Returns the
 * number of entries, or -1 for a malformed specification. Exposed for the unit tests. */
#define LL_FAILPOINT_NAME_MAX 48
struct ll_failpoint_spec {
    char name[LL_FAILPOINT_NAME_MAX];
    unsigned long at;
};
int ll_failpoint_parse(const char *text, struct ll_failpoint_spec *ret, int max);

#endif

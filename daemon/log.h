/* log — labloopd's log lines: one line per event on standard error, with systemd's priority
 * prefix (<2> critical, <3> error, <4> warning, <6> info, <7> debug) so journald files each line at
 * its level, and key=value fields for ids (`campaign=3 exp=41 step=2`). Lines above the threshold
 * set with log_set_level() are dropped. Program code only (daemon/), never the libraries.
 */
#ifndef DAEMON_LOG_H
#define DAEMON_LOG_H

enum {
    LOG_LVL_CRIT = 2, /* an alarm: a person must act (e.g. storage trouble that lasts) */
    LOG_LVL_ERR = 3,
    LOG_LVL_WARNING = 4,
    LOG_LVL_NOTICE = 5,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7
};

/* Lines with a priority number above level are not written (default 6, info). */
void log_set_level(int level);

/* Writes "<level>" followed by the formatted text and a newline to stderr. */
void log_line(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

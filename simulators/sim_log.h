/* sim_log — labsim's log: one line per event on stderr with systemd priority prefixes
 * (<3> error, <4> warning, <6> info, <7> debug) and key=value fields. Debug lines are
 * printed only when sim_log_verbose is set. */
#ifndef SIM_LOG_H
#define SIM_LOG_H

#define SIM_LOG_ERR 3
#define SIM_LOG_WARNING 4
#define SIM_LOG_INFO 6
#define SIM_LOG_DEBUG 7

extern int sim_log_verbose;

/* Prints "<prio>labsim: " + the formatted text + newline to stderr. */
void sim_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

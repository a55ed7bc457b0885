/* commands — the subcommands of the labloop CLI, one file each (daemon/cmd_NAME.c).
 *
 * Each takes the arguments after its name (argv[0] is the subcommand name) and returns
 * the process exit status: 0 success, 1 failure of the operation, 2 bad usage or bad
 * input (with a message on standard error naming file, line and problem), 3 the daemon
 * could not be reached (not running, not answering, or this user may not use its socket).
 * They may print: they are program code, not library code.
 */
#ifndef COMMANDS_H
#define COMMANDS_H

enum {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAILED = 1,
    CMD_EXIT_USAGE = 2,
    CMD_EXIT_UNREACHABLE = 3,
};

int cmd_plan(int argc, char **argv);       /* planner without the daemon (cmd_plan.c) */
int cmd_analyze(int argc, char **argv);    /* measurement models without the daemon */
int cmd_instrument(int argc, char **argv); /* operator checks of one instrument */
int cmd_doctor(int argc, char **argv);     /* versions, configuration, devices, store, daemon */

/* Commands that talk to labloopd over its control socket (cmd_daemon.c). */
int cmd_status(int argc, char **argv);
int cmd_campaign(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_deny(int argc, char **argv);
int cmd_experiments(int argc, char **argv);
int cmd_measurements(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_pareto(int argc, char **argv);
int cmd_plot(int argc, char **argv); /* SVG of the Pareto front and the hypervolume */
int cmd_events(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_estop(int argc, char **argv);
int cmd_resolve(int argc, char **argv);
int cmd_rack(int argc, char **argv); /* `labloop rack [unloaded]` */

#endif

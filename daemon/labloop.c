/* labloop — the operator's command-line tool.
 *
 * Subcommands that work without the daemon (plan, analyze, instrument) run in this
 * process; the others (cmd_daemon.c) talk to labloopd over its control socket (exit 3 when
 * it cannot be reached). Each subcommand lives in
 * daemon/cmd_NAME.c; this file only dispatches. See commands.h for exit statuses.
 */
#include "daemon/commands.h"

#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"plan",         cmd_plan,         "propose experiments from a campaign file and observations"         },
    {"analyze",      cmd_analyze,      "derive figures of merit from one measurement message"              },
    {"instrument",   cmd_instrument,   "check one instrument by hand: status, one step, safe state"        },
    {"status",       cmd_status,       "the daemon's campaigns, rounds, questions, instruments, stations"  },
    {"campaign",     cmd_campaign,     "campaign start FILE | pause | resume | abort [ID]"                 },
    {"approve",      cmd_approve,      "approve the batch a campaign is waiting on"                        },
    {"deny",         cmd_deny,         "deny it (its experiments are abandoned)"                           },
    {"experiments",  cmd_experiments,  "list experiments (CSV; --json for everything)"                     },
    {"measurements", cmd_measurements, "stored measurements, or the rejected ones"                         },
    {"export",       cmd_export,       "export experiments as CSV or JSON (with model fits)"               },
    {"pareto",       cmd_pareto,       "Pareto front and hypervolume of a campaign"                        },
    {"plot",         cmd_plot,         "SVG of the Pareto front and of the hypervolume over experiments"   },
    {"events",       cmd_events,       "the daemon's event log"                                            },
    {"backup",       cmd_backup,       "online backup of the store to FILE"                                },
    {"e-stop",       cmd_estop,        "SOFTWARE stop: safe state on every instrument (not a wired e-stop)"},
    {"resolve",      cmd_resolve,      "answer an operator question: STEP done|failed"                     },
    {"rack",         cmd_rack,         "rack wells in use; `rack unloaded` after emptying the rack"        },
    {"doctor",       cmd_doctor,       "check versions, configuration, devices, database and daemon"       },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: labloop COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nlabloop COMMAND --help shows the options of one command.\n");
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    if (argc < 2) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CMD_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("labloop 0.1.0\n");
        return CMD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "labloop: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CMD_EXIT_USAGE;
}

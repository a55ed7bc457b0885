/* labloop — the operator's command-line tool.
 *
 * Subcommands that work without the daemon (plan, analyze, instrument) run in this
 * process; the others talk to labloopd over its control socket. Each subcommand lives in
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
    {"plan",       cmd_plan,       "propose experiments from a campaign file and observations" },
    {"analyze",    cmd_analyze,    "derive figures of merit from one measurement message"      },
    {"instrument", cmd_instrument, "check one instrument by hand: status, one step, safe state"},
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

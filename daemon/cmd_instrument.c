/* cmd_instrument — placeholder until its module lands; prints why and fails. */
#include "daemon/commands.h"

#include <stdio.h>

int cmd_instrument(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "labloop %s: not available in this build yet\n", argv[0]);
    return CMD_EXIT_FAILED;
}

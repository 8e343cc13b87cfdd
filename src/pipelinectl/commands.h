/*
 * commands.h: the commands of pipelinectl, one file each (cmd_NAME.c), and
 * what main.c needs to dispatch to them.  Every command returns its exit
 * code: 0 done, 1 what it reports on did not succeed, 2 usage, connection,
 * privilege or setup error (SPEC §12).
 *
 * Locking: none.
 */
#ifndef PCTL_COMMANDS_H
#define PCTL_COMMANDS_H

#include "lib/pctl.h"

/* conninfo: the -d given before the command, or NULL (a -d after it wins) */
int cmd_runner(int argc, char **argv, const char *conninfo);
int cmd_hookd(int argc, char **argv, const char *conninfo);
int cmd_watch(int argc, char **argv, const char *conninfo);
int cmd_logs(int argc, char **argv, const char *conninfo);
int cmd_graph(int argc, char **argv, const char *conninfo);
int cmd_sign(int argc, char **argv, const char *conninfo);
int cmd_serve(int argc, char **argv, const char *conninfo);
int cmd_selftest(int argc, char **argv, const char *conninfo);

#endif

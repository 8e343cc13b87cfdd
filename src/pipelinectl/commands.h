/*
 * commands.h: the commands of pipelinectl, one file each (cmd_NAME.c), and
 * what main.c needs to dispatch to them.  Close relatives share a file:
 * cmd_apply.c (apply, lint), cmd_ls.c (ls, status), cmd_control.c (cancel,
 * retry, approve, deny, play); cmd_runlogs.c prints "logs --run" and
 * "logs --json" for cmd_logs.c.  Every command returns its exit
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
int cmd_apply(int argc, char **argv, const char *conninfo);
int cmd_lint(int argc, char **argv, const char *conninfo);
int cmd_run(int argc, char **argv, const char *conninfo);
int cmd_ls(int argc, char **argv, const char *conninfo);
int cmd_status(int argc, char **argv, const char *conninfo);
int cmd_cancel(int argc, char **argv, const char *conninfo);
int cmd_retry(int argc, char **argv, const char *conninfo);
int cmd_approve(int argc, char **argv, const char *conninfo);
int cmd_deny(int argc, char **argv, const char *conninfo);
int cmd_play(int argc, char **argv, const char *conninfo);
int cmd_triggerd(int argc, char **argv, const char *conninfo);

/* logs --run RUN, or logs JOB_TASK --json (cmd_runlogs.c) */
int logs_run(const char *run, const char *task, bool json, const char *conninfo);

#endif

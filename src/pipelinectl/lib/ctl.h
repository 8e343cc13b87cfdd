/*
 * lib/ctl.h: what the one-shot control commands (apply, lint, run, ls,
 * status, cancel, retry, approve, deny, play, logs --run) share: connecting
 * with the set-up checked, and turning a database error into one line on
 * stderr and an exit status (SPEC §12: 1 refused or did not succeed, 2 usage,
 * connection, privilege or set-up).  No locking: single-threaded.
 */
#ifndef PIPELINECTL_CTL_H
#define PIPELINECTL_CTL_H

#include "pctl.h"

/* interactive command: warnings and errors only on stderr, tagged with cmd */
void ctl_quiet_logs(const char *cmd);

/*
 * Connects and checks that the pipeline extension is installed; on failure
 * prints one line saying what to do and returns false (exit 2).
 */
bool ctl_connect(db_conn *db, const char *conninfo);

/* prints "pipelinectl CMD: MESSAGE" (plus a hint) and returns 1 or 2 */
int ctl_report_error(const db_error *err, const char *cmd);

/* whether an error is a usage/connection/privilege/set-up one (exit 2) */
bool ctl_error_is_setup(const db_error *err);

#endif

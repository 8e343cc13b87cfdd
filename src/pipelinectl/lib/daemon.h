/*
 * lib/daemon.h: what the long-running commands (runner, hookd) share: their
 * common settings, the options that set them, the checks of their arguments
 * and their default name (HOST-PID).
 *
 * Locking: none.
 */
#ifndef PCTL_DAEMON_H
#define PCTL_DAEMON_H

#include "base.h"
#include "opts.h"

typedef struct daemon_opts
{
	char *name;
	int concurrency;
	bool exit_when_idle;
	double retry_for;			/* --exit-when-idle: give up after this long without the database */
	bool setup_checked;			/* the extension and the grants were checked */
	double poll_interval;
} daemon_opts;

/*
 * The option table rows of the settings above (in a command's opt_spec table):
 * --name (into *NAME_PTR, a const char *), --concurrency (1 to MAX_CONC),
 * --poll-interval, --exit-when-idle, --retry-for.
 */
#define DAEMON_OPT_SPECS(D, NAME_PTR, MAX_CONC) \
	{"name", 'n', OPT_STRING, (NAME_PTR), 0, 0, NULL}, \
	{"concurrency", 'c', OPT_INT, &(D)->concurrency, 1, (MAX_CONC), NULL}, \
	{"poll-interval", 0, OPT_SECONDS, &(D)->poll_interval, 0.05, 86400, NULL}, \
	{"exit-when-idle", 0, OPT_FLAG, &(D)->exit_when_idle, 0, 0, NULL}, \
	{"retry-for", 0, OPT_SECONDS, &(D)->retry_for, 1, 86400, NULL}

/* the defaults: CONCURRENCY at a time, poll every 2 s, --retry-for 30 s */
void daemon_defaults(daemon_opts *d, int concurrency);

/* no positional argument and no empty --name: -1 when fine, else 2 after a message */
int daemon_check_args(opt_cmd *cmd, int argc, char **argv, const char *name);

/* the given --name, or HOST-PID (FALLBACK-PID without a host name); caller frees */
char *daemon_name(const char *given, const char *fallback);

#endif

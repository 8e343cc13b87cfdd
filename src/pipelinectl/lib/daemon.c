/*
 * lib/daemon.c: the argument checks and the default name of the long-running
 * commands (runner, hookd); see daemon.h.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "daemon.h"

#include <stdio.h>
#include <unistd.h>

void
daemon_defaults(daemon_opts *d, int concurrency)
{
	d->concurrency = concurrency;
	d->poll_interval = 2.0;
	d->retry_for = 30.0;
}

int
daemon_check_args(opt_cmd *cmd, int argc, char **argv, const char *name)
{
	if (cmd->first_arg < argc)
		return usage_error(cmd, "unexpected argument \"%s\"", argv[cmd->first_arg]);
	if (name && !*name)
		return usage_error(cmd, "--name must not be empty");
	return -1;
}

char *
daemon_name(const char *given, const char *fallback)
{
	char host[256];

	if (given)
		return xstrdup(given);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "%s", fallback);
	host[sizeof(host) - 1] = '\0';
	return xasprintf("%s-%ld", host, (long) getpid());
}

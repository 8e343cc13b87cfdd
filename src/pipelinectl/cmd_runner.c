/*
 * cmd_runner.c: "pipelinectl runner": options, then the event loop of
 * runner/loop.c.  What the runner does is described in runner/runner.h.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "commands.h"
#include "runner/runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
runner_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl runner [OPTION]...\n"
			"Claim job tasks and run their shell commands.\n"
			"\n"
			"  -n, --name NAME           runner name recorded on claimed tasks (default: HOST-PID)\n"
			"  -l, --labels K=V,...      labels offered to jobs (default: none)\n"
			"  -c, --concurrency N       run up to N tasks at once (default: 1)\n"
			"      --poll-interval S     claim at least every S seconds (default: 2)\n"
			"      --heartbeat S         heartbeat every S seconds (default: 10)\n"
			"      --exit-when-idle      exit once nothing runs and nothing can be claimed\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -v, --verbose             debug logging\n"
			"  -h, --help                show this help\n"
			"\n"
			"Each command runs as /bin/sh -c in a fresh directory under $TMPDIR (removed\n"
			"afterwards), with the task's params in the environment and PIPELINE_OUTPUT\n"
			"naming a file where NAME=value lines become the task's runtime envs.\n"
			"SIGTERM/SIGINT: claim nothing more and let running commands finish; a second\n"
			"signal stops them (reported failed), a third kills them and exits.\n");
}

int
cmd_runner(int argc, char **argv, const char *conninfo)
{
	runner r;
	strbuf labels;
	char err[256];
	const char *labels_spec = "";
	const char *name = NULL;
	bool verbose = false;
	opt_cmd cmd = {"runner", runner_usage, conninfo, 0};
	int rc;

	memset(&r, 0, sizeof(r));
	r.concurrency = 1;
	r.poll_interval = 2.0;
	r.heartbeat = 10.0;
	{
		const opt_spec specs[] = {
			{"name", 'n', OPT_STRING, &name, 0, 0, NULL},
			{"labels", 'l', OPT_STRING, &labels_spec, 0, 0, NULL},
			{"concurrency", 'c', OPT_INT, &r.concurrency, 1, 1024, NULL},
			{"poll-interval", 0, OPT_SECONDS, &r.poll_interval, 0.05, 86400, NULL},
			{"heartbeat", 0, OPT_SECONDS, &r.heartbeat, 0.1, 86400, NULL},
			{"exit-when-idle", 0, OPT_FLAG, &r.exit_when_idle, 0, 0, NULL},
			{"verbose", 'v', OPT_FLAG, &verbose, 0, 0, NULL},
			{NULL, 0, 0, NULL, 0, 0, NULL}
		};

		if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
			return rc;
	}
	if (cmd.first_arg < argc)
		return usage_error(&cmd, "unexpected argument \"%s\"", argv[cmd.first_arg]);
	if (name && !*name)
		return usage_error(&cmd, "--name must not be empty");
	sb_init(&labels);
	if (!labels_to_json(labels_spec, &labels, err, sizeof(err)))
	{
		sb_free(&labels);
		return usage_error(&cmd, "--labels: %s", err);
	}
	log_set_verbose(verbose);
	if (name)
		r.name = xstrdup(name);
	else
	{
		char host[256];

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "runner");
		host[sizeof(host) - 1] = '\0';
		r.name = xasprintf("%s-%ld", host, (long) getpid());
	}
	r.labels_json = sb_steal(&labels);

	log_init("runner");
	if (signals_install(true, false, true) != 0)
	{
		log_error("cannot set up signal handling: %s", strerror(errno));
		free(r.name);
		free(r.labels_json);
		return 1;
	}
	db_init(&r.db, cmd.conninfo, "pipeline_events");
	log_info("runner \"%s\" starting: labels %s, concurrency %d, poll every %.1f s, heartbeat every %.1f s",
			 r.name, r.labels_json, r.concurrency, r.poll_interval, r.heartbeat);

	rc = runner_run(&r);
	runner_free(&r);
	return rc;
}

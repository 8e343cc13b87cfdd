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
#include <sys/prctl.h>
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
			"      --job-user USER       run commands as this OS user (the runner must be root)\n"
			"      --work-dir DIR        make work directories in DIR (default: $TMPDIR or /tmp)\n"
			"      --exit-when-idle      exit once nothing runs and nothing can be claimed\n"
			"      --retry-for S         with --exit-when-idle: give up (exit 2) after S seconds\n"
			"                            without a database connection (default: 30)\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -v, --verbose             debug logging\n"
			"  -h, --help                show this help\n"
			"\n"
			"Each command runs as /bin/sh -c in a fresh directory under the work directory\n"
			"(removed afterwards), with the task's params in the environment (the runner's\n"
			"PG* settings left out) and PIPELINE_OUTPUT naming a file where NAME=value lines\n"
			"become the task's runtime envs.\n"
			"SIGTERM/SIGINT: claim nothing more and let running commands finish; a second\n"
			"signal stops them (reported failed), a third kills them and exits.\n"
			"\n"
			"Exit status: 0 stopped or idle; 1 killed by a third signal; 2 usage or setup\n"
			"error (the extension missing, a grant missing, the role or password refused),\n"
			"or stopped or given up without a database connection.\n");
}

int
cmd_runner(int argc, char **argv, const char *conninfo)
{
	runner r;
	strbuf labels;
	char err[256];
	const char *labels_spec = "";
	const char *name = NULL;
	const char *job_user_spec = NULL;
	const char *work_root = NULL;
	bool verbose = false;
	opt_cmd cmd = {"runner", runner_usage, conninfo, 0};
	int rc;

	memset(&r, 0, sizeof(r));
	r.concurrency = 1;
	r.poll_interval = 2.0;
	r.retry_for = 30.0;
	r.heartbeat = 10.0;
	{
		const opt_spec specs[] = {
			{"name", 'n', OPT_STRING, &name, 0, 0, NULL},
			{"labels", 'l', OPT_STRING, &labels_spec, 0, 0, NULL},
			{"concurrency", 'c', OPT_INT, &r.concurrency, 1, 1024, NULL},
			{"poll-interval", 0, OPT_SECONDS, &r.poll_interval, 0.05, 86400, NULL},
			{"heartbeat", 0, OPT_SECONDS, &r.heartbeat, 0.1, 86400, NULL},
			{"exit-when-idle", 0, OPT_FLAG, &r.exit_when_idle, 0, 0, NULL},
			{"retry-for", 0, OPT_SECONDS, &r.retry_for, 1, 86400, NULL},
			{"job-user", 0, OPT_STRING, &job_user_spec, 0, 0, NULL},
			{"work-dir", 0, OPT_STRING, &work_root, 0, 0, NULL},
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
	if (work_root && *work_root != '/')
		return usage_error(&cmd, "--work-dir must be an absolute path");
	if (job_user_spec)
	{
		if (geteuid() != 0)
			return usage_error(&cmd, "--job-user needs the runner to run as root (it switches to that user for each command)");
		if (!job_user_lookup(job_user_spec, &r.ju, err, sizeof(err)))
			return usage_error(&cmd, "--job-user: %s", err);
	}
	sb_init(&labels);
	if (!labels_to_json(labels_spec, &labels, err, sizeof(err)))
	{
		sb_free(&labels);
		job_user_free(&r.ju);
		return usage_error(&cmd, "--labels: %s", err);
	}
	if (!work_root)
		work_root = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	r.work_root = xstrdup(work_root);
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
		free(r.work_root);
		job_user_free(&r.ju);
		return 1;
	}
	/* what a runner that died left in the work directory: its commands, its directories */
	workdir_cleanup_dead(&r);
	db_init(&r.db, cmd.conninfo, "pipeline_events");
	/* the conninfo may hold a password: not in /proc/PID/cmdline for a job to read */
	if (cmd.conninfo)
		memset((char *) cmd.conninfo, '*', strlen(cmd.conninfo));
	/* nor the runner's memory and environment for a job of the same user (execve resets it) */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	log_info("runner \"%s\" starting: labels %s, concurrency %d, poll every %.1f s, heartbeat every %.1f s",
			 r.name, r.labels_json, r.concurrency, r.poll_interval, r.heartbeat);

	rc = runner_run(&r);
	runner_free(&r);
	return rc;
}

/*
 * main.c: pipelinectl, the command-line program of the pipeline extension.
 *
 *   pipelinectl [-d CONNINFO] COMMAND [ARGS...]
 *
 * Dispatches to one file per command (cmd_NAME.c, declared in commands.h);
 * the client library they share is lib/ (see lib/pctl.h), the runner's and
 * hookd's insides are runner/ and hookd/.
 *
 * Connection: -d CONNINFO (before or after the command), otherwise libpq's
 * defaults from the PG* environment, like psql.
 * Exit codes (SPEC §12): 0 done, 1 what the command reports on did not
 * succeed, 2 usage, connection, privilege or setup errors.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "commands.h"

#include <stdio.h>
#include <string.h>

typedef struct command
{
	const char *name;
	int (*fn) (int argc, char **argv, const char *conninfo);
	const char *summary;
} command;

static const command commands[] = {
	{"apply", cmd_apply, "define the jobs and pipelines of YAML files (one transaction)"},
	{"lint", cmd_lint, "check YAML definitions without storing them"},
	{"run", cmd_run, "start a run of a pipeline (and --watch it)"},
	{"ls", cmd_ls, "list runs"},
	{"status", cmd_status, "show a run and its job tasks"},
	{"cancel", cmd_cancel, "cancel a run"},
	{"retry", cmd_retry, "re-open a failed or canceled job task"},
	{"approve", cmd_approve, "pass the audit or confirm gate a job task waits at"},
	{"deny", cmd_deny, "deny the audit or confirm gate a job task waits at"},
	{"play", cmd_play, "start a manual job task"},
	{"runner", cmd_runner, "claim job tasks and run their shell commands"},
	{"hookd", cmd_hookd, "send webhooks and IM robot messages"},
	{"watch", cmd_watch, "follow a run live until it ends"},
	{"logs", cmd_logs, "print (or follow) a job task's output"},
	{"graph", cmd_graph, "print a run as a Mermaid or Graphviz graph"},
	{"triggerd", cmd_triggerd, "receive git webhooks and start the matching pipelines"},
	{"sign", cmd_sign, "print the X-Pipeline-Signature of a body (for receivers)"},
	{"serve", cmd_serve, "serve the web dashboard, /metrics and /healthz"},
	{"selftest", cmd_selftest, "check the built-in parsers and signatures (no database)"},
};

static void
usage(FILE *f)
{
	fprintf(f,
			"pipelinectl " PCTL_VERSION ": command-line program of the pipeline PostgreSQL extension\n"
			"\n"
			"Usage: pipelinectl [-d CONNINFO] COMMAND [OPTION]... [ARG]...\n"
			"\n"
			"Commands:\n");
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
			"\n"
			"  apply  -f FILE|DIR|- [-f ...]\n"
			"  lint   [-f] FILE|DIR|- [...] [--offline]\n"
			"  run    PIPELINE [-p NAME=VALUE]... [--label K=V]... [--dry-run] [--queue] [--watch]\n"
			"  ls     [--pipeline P] [--stage S] [--limit N] [--json]\n"
			"  status RUN [--json]\n"
			"  cancel RUN [--reason R]      retry JOB_TASK      play JOB_TASK\n"
			"  approve JOB_TASK [--comment C]      deny JOB_TASK --comment C\n"
			"  runner [--name N] [--labels k=v,...] [--concurrency N] [--job-user U] [--exit-when-idle]\n"
			"  hookd  [--name N] [--concurrency N] [--exit-when-idle]\n"
			"  triggerd [--listen ADDR:PORT] [--max-body BYTES]\n"
			"  watch  PIPELINE_TASK_ID\n"
			"  logs   JOB_TASK_ID [--follow | --json]      logs --run RUN [--json]\n"
			"  graph  PIPELINE_TASK_ID [--format mermaid|dot]\n"
			"  serve  [--listen 127.0.0.1:8080] [--read-only-role ROLE] [--login]\n"
			"\n"
			"Options:\n"
			"  -d, --dbname CONNINFO   connection string or database name; without it the\n"
			"                          PG* environment (PGHOST, PGDATABASE, ...) is used\n"
			"  -h, --help              show this help (COMMAND --help: help of a command)\n"
			"  -V, --version           show the version\n"
			"\n"
			"Long-running commands log one line per event on stderr and stop cleanly on\n"
			"SIGTERM or SIGINT.\n"
			"\n"
			"Exit status: 0 done; 1 the run or task reported on did not succeed; 2 a usage,\n"
			"connection, privilege or setup error (the message says what to do).\n");
}

int
main(int argc, char **argv)
{
	const char *conninfo = NULL;
	int i = 1;

	/* options before the command */
	while (i < argc && argv[i][0] == '-')
	{
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)
		{
			printf("pipelinectl " PCTL_VERSION "\n");
			return 0;
		}
		if (strcmp(a, "-d") == 0 || strcmp(a, "--dbname") == 0)
		{
			if (i + 1 >= argc)
			{
				fprintf(stderr, "pipelinectl: option %s needs a value\n", a);
				return EXIT_USAGE;
			}
			conninfo = argv[i + 1];
			i += 2;
			continue;
		}
		if (strncmp(a, "--dbname=", 9) == 0)
		{
			conninfo = a + 9;
			i++;
			continue;
		}
		if (strncmp(a, "-d", 2) == 0 && a[2])
		{
			conninfo = a + 2;
			i++;
			continue;
		}
		fprintf(stderr, "pipelinectl: unknown option \"%s\"\n", a);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (i >= argc)
	{
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0)
	{
		if (i + 1 < argc)
		{
			for (size_t k = 0; k < ARRAY_LEN(commands); k++)
				if (strcmp(argv[i + 1], commands[k].name) == 0)
				{
					char *hargv[3] = {argv[i + 1], "--help", NULL};

					return commands[k].fn(2, hargv, conninfo);
				}
		}
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[i], "version") == 0)
	{
		printf("pipelinectl " PCTL_VERSION "\n");
		return 0;
	}
	for (size_t k = 0; k < ARRAY_LEN(commands); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
		{
			int rc = commands[k].fn(argc - i, argv + i, conninfo);

			signals_close();
			return rc;
		}

	fprintf(stderr, "pipelinectl: unknown command \"%s\"\n", argv[i]);
	usage(stderr);
	return EXIT_USAGE;
}

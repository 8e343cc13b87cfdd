/*
 * cmd_control.c: the commands that act on a run or a job task.
 *
 *   pipelinectl cancel RUN [--reason R]         pipeline.cancel_pipeline_task
 *   pipelinectl retry JOB_TASK                  pipeline.retry_job_task
 *   pipelinectl approve JOB_TASK [--comment C]  audit_job_task / confirm_job_task (pass)
 *   pipelinectl deny JOB_TASK --comment C       the same, deny (a comment is required)
 *   pipelinectl play JOB_TASK                   pipeline.play_job_task (manual tasks, SPEC §13)
 *
 * approve and deny act on the gate the task waits at (the "gate" column of
 * pipeline.job_tasks: audit before it runs, confirm after); the engine checks
 * that current_user is one of its auditors or checkers.  play needs
 * pipeline.play_job_task(bigint); an extension without it gives exit 2.
 *
 * Each prints one line saying what happened ("job task 12: approved (audit
 * gate); now scheduling").  Exit status: 0 done; 1 the engine refused (unknown
 * id, not waiting at a gate, already finished ...); 2 usage, connection,
 * privilege (not an auditor or checker, no grant) or set-up error.
 *
 * Locks: those of the engine functions (the job task's or run's row).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ACT_CANCEL, ACT_RETRY, ACT_APPROVE, ACT_DENY, ACT_PLAY } action;

typedef struct act_spec
{
	const char *name;
	const char *what;			/* RUN or JOB_TASK */
	const char *text_opt;		/* "reason", "comment" or NULL */
	bool		text_required;
	const char *summary;
} act_spec;

static const act_spec specs[] = {
	[ACT_CANCEL] = {"cancel", "RUN", "reason", false,
	"Cancel a run: its waiting tasks are canceled, running ones stopped by their runner."},
	[ACT_RETRY] = {"retry", "JOB_TASK", NULL, false,
	"Re-open a failed or canceled task of a finished run (and the run, and the tasks after it)."},
	[ACT_APPROVE] = {"approve", "JOB_TASK", "comment", false,
	"Pass the audit gate (before the task runs) or confirm gate (after) the task waits at."},
	[ACT_DENY] = {"deny", "JOB_TASK", "comment", true,
	"Deny the audit or confirm gate the task waits at: the task fails (a comment is required)."},
	[ACT_PLAY] = {"play", "JOB_TASK", NULL, false,
	"Start a manual task (when: manual) whose turn has come."},
};

static void
act_usage(FILE *f, const act_spec *s)
{
	fprintf(f, "Usage: pipelinectl %s %s", s->name, s->what);
	if (s->text_opt)
		fprintf(f, s->text_required ? " --%s TEXT" : " [--%s TEXT]", s->text_opt);
	fprintf(f, "\n%s\n\n", s->summary);
	if (s->text_opt)
		fprintf(f, "  -%c, --%s TEXT       %s\n", s->text_opt[0], s->text_opt,
				strcmp(s->text_opt, "reason") == 0 ? "why (stored as the run's message)" :
				"stored with the gate's result");
	fprintf(f,
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -h, --help                show this help\n"
			"\n"
			"Exit status: 0 done; 1 refused by the engine (unknown id, wrong state); 2 usage,\n"
			"connection, privilege or set-up error.\n");
}

/* approve / deny: the gate the task waits at, then the gate's function */
static int
act_gate(db_conn *db, const char *id, bool pass, const char *comment, const char *cmd)
{
	const char *qp[3] = {id, pass ? "true" : "false", comment};
	db_error	err;
	PGresult   *res;
	char	   *gate;
	int			rc = 0;

	res = db_query(db, "SELECT t.gate, t.stage FROM pipeline.job_tasks t WHERE t.id = $1::bigint",
				   1, qp, &err);
	if (!res)
		return db_fail(cmd, &err);
	if (PQntuples(res) == 0)
	{
		fprintf(stderr, "pipelinectl %s: job task %s does not exist\n", cmd, id);
		PQclear(res);
		return 1;
	}
	if (!db_value(res, 0, 0))
	{
		fprintf(stderr, "pipelinectl %s: job task %s is not waiting at a gate (it is %s)\n",
				cmd, id, db_value(res, 0, 1));
		PQclear(res);
		return 1;
	}
	gate = xstrdup(db_value(res, 0, 0));
	PQclear(res);
	res = db_query(db, strcmp(gate, "audit") == 0 ?
				   "SELECT stage FROM pipeline.audit_job_task($1::bigint, $2::boolean, $3)" :
				   "SELECT stage FROM pipeline.confirm_job_task($1::bigint, $2::boolean, $3)",
				   3, qp, &err);
	if (!res)
		rc = db_fail(cmd, &err);
	else
		printf("job task %s: %s (%s gate); now %s\n", id, pass ? "approved" : "denied", gate,
			   db_value(res, 0, 0));
	PQclear(res);
	free(gate);
	return rc;
}

static int
act_play(db_conn *db, const char *id)
{
	const char *qp[1] = {id};
	db_error	err;
	PGresult   *res;
	int			rc = 0;

	res = db_query(db, "SELECT to_regprocedure('pipeline.play_job_task(bigint)') IS NOT NULL,"
				   " (SELECT extversion FROM pg_extension WHERE extname = 'pipeline')", 0, NULL, &err);
	if (!res)
		return db_fail("play", &err);
	if (strcmp(db_value(res, 0, 0), "t") != 0)
	{
		fprintf(stderr, "pipelinectl play: the pipeline extension (version %s) has no "
				"pipeline.play_job_task(bigint): manual tasks need a version that has them "
				"(ALTER EXTENSION pipeline UPDATE)\n", db_value(res, 0, 1));
		PQclear(res);
		return EXIT_USAGE;
	}
	PQclear(res);
	res = db_query(db, "SELECT pipeline.play_job_task($1::bigint)", 1, qp, &err);
	if (!res)
		return db_fail("play", &err);
	PQclear(res);
	res = db_query(db, "SELECT stage FROM pipeline.job_tasks WHERE id = $1::bigint", 1, qp, &err);
	if (!res)
		return db_fail("play", &err);
	printf("job task %s: played; now %s\n", id, PQntuples(res) ? db_value(res, 0, 0) : "?");
	PQclear(res);
	return rc;
}

static int
act_run(db_conn *db, action a, const char *id, const char *text)
{
	const act_spec *s = &specs[a];
	const char *qp[2] = {id, text};
	db_error	err;
	PGresult   *res = NULL;
	int			rc = 0;

	switch (a)
	{
		case ACT_CANCEL:
			res = db_query(db, "SELECT stage FROM pipeline.cancel_pipeline_task($1::bigint, $2)",
						   2, qp, &err);
			if (res)
				printf("run %s: %s\n", id, db_value(res, 0, 0));
			break;
		case ACT_RETRY:
			res = db_query(db, "SELECT stage, attempt FROM pipeline.retry_job_task($1::bigint)",
						   1, qp, &err);
			if (res)
				printf("job task %s: %s (attempt %s)\n", id, db_value(res, 0, 0), db_value(res, 0, 1));
			break;
		case ACT_APPROVE:
		case ACT_DENY:
			return act_gate(db, id, a == ACT_APPROVE, text, s->name);
		case ACT_PLAY:
			return act_play(db, id);
	}
	if (!res)
		rc = db_fail(s->name, &err);
	PQclear(res);
	return rc;
}

/* opt_cmd's usage callback has no argument: the command being parsed */
static const act_spec *current;

static void
act_help(FILE *f)
{
	act_usage(f, current);
}

static int
act_main(action a, int argc, char **argv, const char *conninfo)
{
	const act_spec *s = &specs[a];
	const char *text = NULL;
	int64_t		id;
	int			rc;
	db_conn		db;
	opt_spec	opts[2] = {
		{NULL, 0, 0, NULL, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};
	opt_cmd		cmd = {s->name, act_help, conninfo, 0};

	current = s;
	if (s->text_opt)
	{
		opts[0].name = s->text_opt;
		opts[0].short_name = s->text_opt[0];
		opts[0].kind = OPT_STRING;
		opts[0].target = &text;
	}
	if ((rc = opts_parse(&cmd, argc, argv, opts)) >= 0)
		return rc;
	if ((rc = opts_one_id(&cmd, argc, argv, s->what, strcmp(s->what, "RUN") == 0 ? "run" : "job task",
						  &id)) >= 0)
		return rc;
	if (s->text_required && (!text || !*text))
		return usage_error(&cmd, "--%s TEXT is required (say why)", s->text_opt);
	log_init(s->name);
	log_set_min_level(LOG_WARN);
	if ((rc = db_open_checked(&db, cmd.conninfo, s->name)) >= 0)
		return rc;
	rc = act_run(&db, a, argv[cmd.first_arg], text);
	db_close(&db);
	return rc;
}
int
cmd_cancel(int argc, char **argv, const char *conninfo)
{
	return act_main(ACT_CANCEL, argc, argv, conninfo);
}

int
cmd_retry(int argc, char **argv, const char *conninfo)
{
	return act_main(ACT_RETRY, argc, argv, conninfo);
}

int
cmd_approve(int argc, char **argv, const char *conninfo)
{
	return act_main(ACT_APPROVE, argc, argv, conninfo);
}

int
cmd_deny(int argc, char **argv, const char *conninfo)
{
	return act_main(ACT_DENY, argc, argv, conninfo);
}

int
cmd_play(int argc, char **argv, const char *conninfo)
{
	return act_main(ACT_PLAY, argc, argv, conninfo);
}

/*
 * cmd_ls.c: the read commands about runs.
 *
 *   pipelinectl ls [--pipeline P] [--stage S] [--limit N] [--json]
 *   pipelinectl status RUN [--json]
 *
 * ls lists runs, newest first (default 20).  status shows one run and its job
 * tasks: ids, stages, attempts, durations, and for a task waiting at a gate
 * who must act (its auditors or checkers); a failed run names the task that
 * failed it, and a run whose end chained runs (next_pipelines) lists them or
 * why they did not start (text output only).  Both read the views pipeline.pipeline_tasks and
 * pipeline.job_tasks (sensitive params masked).  With --json the output is
 * one JSON document, built by the server with json_build_object so that its
 * keys keep a stable order:
 *   ls:     {"runs": [RUN, ...]}
 *   status: {"run": RUN, "failed_task": TASK-REF|null, "tasks": [TASK, ...]}
 * (RUN and TASK as documented in the README, "pipelinectl ls / status").
 *
 * Exit status: ls 0; status 0 when the run succeeded or is unfinished, 1
 * when it failed or was canceled or does not exist; 2 usage, connection,
 * privilege or set-up error.
 *
 * Locks: none (plain reads).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one run as JSON: shared by ls --json and status --json ("p" is pipeline.pipeline_tasks) */
#define RUN_JSON \
	"json_build_object('id', p.id, 'pipeline', p.pipeline_name, 'version', p.pipeline_version," \
	" 'stage', p.stage, 'message', p.message, 'params', p.params, 'labels', p.labels," \
	" 'dry_run', p.dry_run, 'run_by', p.run_by, 'created_at', p.created_at," \
	" 'start_at', p.start_at, 'end_at', p.end_at," \
	" 'duration_s', round(extract(epoch FROM p.duration)::numeric, 3)," \
	" 'tasks_done', p.tasks_done, 'tasks_total', p.tasks_total)"

/* who must act on a task's waiting gate, as a JSON array or NULL ("t" is pipeline.job_tasks) */
#define WAITING_FOR \
	"CASE t.gate WHEN 'audit' THEN coalesce(t.audit->'auditors', '[]')" \
	" WHEN 'confirm' THEN coalesce(t.confirm->'checkers', '[]') END"

static const char *const stages[] = {
	"pending", "scheduling", "creating", "active", "canceling",
	"canceled", "failed", "succeeded", "skipped"
};

static void
ls_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl ls [OPTION]...\n"
			"List runs, newest first.\n"
			"\n"
			"  -p, --pipeline NAME       only runs of this pipeline\n"
			"  -s, --stage STAGE         only runs in this stage (pending, active, canceling,\n"
			"                            canceled, failed, succeeded)\n"
			"  -n, --limit N             at most N runs (default 20, 1 to 10000)\n"
			"      --json                one JSON document: {\"runs\": [...]}\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -h, --help                show this help\n");
}

static void
status_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl status RUN [--json]\n"
			"Show a run and its job tasks (ids, stages, attempts, gates and who must act).\n"
			"\n"
			"      --json                one JSON document: {\"run\": ..., \"failed_task\": ..., \"tasks\": [...]}\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -h, --help                show this help\n"
			"\n"
			"Exit status: 0 the run succeeded or is unfinished; 1 it failed, was canceled or does\n"
			"not exist; 2 usage, connection, privilege or set-up error.\n");
}

static void
duration_cell(char *buf, size_t n, const char *secs)
{
	if (!secs)
		buf[0] = '\0';
	else
		fmt_duration(buf, n, strtod(secs, NULL));
}

/* ---------------------------------------------------------------- ls */

int
cmd_ls(int argc, char **argv, const char *conninfo)
{
	const char *pipeline = NULL,
			   *stage = NULL;
	char		limit[16];
	int			n = 20;
	bool		json = false;
	int			rc;
	db_conn		db;
	db_error	err;
	PGresult   *res;
	const char *qp[3];
	const opt_spec specs[] = {
		{"pipeline", 'p', OPT_STRING, &pipeline, 0, 0, NULL},
		{"stage", 's', OPT_STRING, &stage, 0, 0, NULL},
		{"limit", 'n', OPT_INT, &n, 1, 10000, NULL},
		{"json", 0, OPT_FLAG, &json, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};
	opt_cmd		cmd = {"ls", ls_usage, conninfo, 0};

	if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
		return rc;
	rc = 0;
	conninfo = cmd.conninfo;
	if (cmd.first_arg < argc)
		return usage_error(&cmd, "unexpected argument \"%s\"", argv[cmd.first_arg]);
	snprintf(limit, sizeof(limit), "%d", n);
	if (stage)
	{
		bool		known = false;

		for (size_t i = 0; i < ARRAY_LEN(stages); i++)
			known |= strcmp(stage, stages[i]) == 0;
		if (!known)
		{
			return usage_error(&cmd, "--stage must be one of pending, scheduling, creating, active, "
							   "canceling, canceled, failed, succeeded, skipped; not \"%s\"", stage);
		}
	}

	log_init("ls");
	log_set_min_level(LOG_WARN);
	if ((rc = db_open_checked(&db, conninfo, "ls")) >= 0)
		return rc;
	rc = 0;
	qp[0] = pipeline;
	qp[1] = stage;
	qp[2] = limit;
	if (json)
		res = db_query(&db,
					   "SELECT json_build_object('runs', coalesce(json_agg(" RUN_JSON " ORDER BY p.id DESC), '[]'))"
					   "  FROM (SELECT * FROM pipeline.pipeline_tasks p"
					   "         WHERE ($1::text IS NULL OR p.pipeline_name = $1)"
					   "           AND ($2::text IS NULL OR p.stage = $2::pipeline.task_stage)"
					   "         ORDER BY p.id DESC LIMIT $3::int) p",
					   3, qp, &err);
	else
		res = db_query(&db,
					   "SELECT p.id, p.pipeline_name || ' v' || p.pipeline_version, p.stage,"
					   "       p.tasks_done || '/' || p.tasks_total,"
					   "       to_char(p.created_at, 'YYYY-MM-DD HH24:MI:SS'),"
					   "       extract(epoch FROM coalesce(p.end_at, now()) - p.start_at),"
					   "       p.run_by, coalesce(p.message, '')"
					   "  FROM pipeline.pipeline_tasks p"
					   " WHERE ($1::text IS NULL OR p.pipeline_name = $1)"
					   "   AND ($2::text IS NULL OR p.stage = $2::pipeline.task_stage)"
					   " ORDER BY p.id DESC LIMIT $3::int",
					   3, qp, &err);
	if (!res)
		rc = db_fail("ls", &err);
	else if (json)
		printf("%s\n", db_value(res, 0, 0));
	else
	{
		static const char *const hdr[] = {"RUN", "PIPELINE", "STAGE", "TASKS", "CREATED", "DURATION", "BY", "MESSAGE"};
		out_table  *t = out_table_new(8, hdr);

		for (int r = 0; r < PQntuples(res); r++)
		{
			char		dur[32];
			const char *cells[8];

			duration_cell(dur, sizeof(dur), db_value(res, r, 5));
			for (int k = 0; k < 8; k++)
				cells[k] = db_value(res, r, k);
			cells[5] = dur;
			out_table_add(t, cells);
		}
		if (PQntuples(res) > 0)
			out_table_print(t, stdout);
		else
			fprintf(stderr, "pipelinectl ls: no runs\n");
		out_table_free(t);
	}
	PQclear(res);
	db_close(&db);
	return rc;
}

/* ---------------------------------------------------------------- status */

static int
status_json(db_conn *db, const char *id)
{
	const char *qp[1] = {id};
	db_error	err;
	PGresult   *res = db_query(db,
							   "SELECT json_build_object('run', " RUN_JSON ","
							   "  'failed_task', (SELECT json_build_object('id', t.id, 'stage_name', t.stage_name,"
							   "                     'task_name', t.task_name, 'message', t.message)"
							   "                   FROM pipeline.job_tasks t"
							   "                  WHERE t.pipeline_task_id = p.id AND p.stage = 'failed'"
							   "                    AND t.stage = 'failed' AND NOT t.ignore_failed"
							   "                  ORDER BY t.end_at NULLS LAST, t.id LIMIT 1),"
							   "  'tasks', (SELECT coalesce(json_agg(json_build_object("
							   "      'id', t.id, 'stage_index', t.stage_index, 'stage_name', t.stage_name,"
							   "      'task_index', t.task_index, 'task_name', t.task_name, 'job_name', t.job_name,"
							   "      'stage', t.stage, 'attempt', t.attempt, 'message', t.message,"
							   "      'runner', t.runner, 'gate', t.gate, 'waiting_for', " WAITING_FOR ","
							   "      'ignore_failed', t.ignore_failed, 'dry_run', t.dry_run,"
							   "      'created_at', t.created_at, 'start_at', t.start_at, 'end_at', t.end_at,"
							   "      'duration_s', round(extract(epoch FROM t.duration)::numeric, 3))"
							   "      ORDER BY t.stage_index, t.task_index, t.id), '[]')"
							   "    FROM pipeline.job_tasks t WHERE t.pipeline_task_id = p.id)),"
							   "  p.stage"
							   "  FROM pipeline.pipeline_tasks p WHERE p.id = $1::bigint",
							   1, qp, &err);
	int			rc;

	if (!res)
		return db_fail("status", &err);
	if (PQntuples(res) == 0)
	{
		fprintf(stderr, "pipelinectl status: run %s does not exist\n", id);
		PQclear(res);
		return 1;
	}
	printf("%s\n", db_value(res, 0, 0));
	rc = strcmp(db_value(res, 0, 1), "failed") == 0 || strcmp(db_value(res, 0, 1), "canceled") == 0;
	PQclear(res);
	return rc;
}

static int
status_text(db_conn *db, const char *id)
{
	static const char *const hdr[] = {"JOB TASK", "TASK", "STAGE", "ATTEMPT", "DURATION", "NOTE"};
	const char *qp[1] = {id};
	db_error	err;
	PGresult   *run,
			   *tasks;
	out_table  *t;
	char		dur[32];
	int			rc;
	const char *failed_id = NULL,
			   *failed_name = NULL;

	run = db_query(db,
				   "SELECT p.pipeline_name, p.pipeline_version, p.stage, p.tasks_done, p.tasks_total,"
				   "       extract(epoch FROM coalesce(p.end_at, now()) - p.start_at), p.message, p.run_by,"
				   "       p.dry_run,"
				   "       (SELECT string_agg(CASE WHEN e ? 'run'"
				   "                THEN format('chained: %s run %s (on %s)', e->>'pipeline', e->>'run', e->>'on')"
				   "                ELSE format('chained: %s not started (on %s): %s', e->>'pipeline', e->>'on',"
				   "                            e->>'error') END, E'\n' ORDER BY o)"
				   "          FROM jsonb_array_elements(p.chained) WITH ORDINALITY x(e, o))"
				   "  FROM pipeline.pipeline_tasks p WHERE p.id = $1::bigint", 1, qp, &err);
	if (!run)
		return db_fail("status", &err);
	if (PQntuples(run) == 0)
	{
		fprintf(stderr, "pipelinectl status: run %s does not exist\n", id);
		PQclear(run);
		return 1;
	}
	tasks = db_query(db,
					 "SELECT t.id, t.stage_name || '.' || t.task_name, t.stage, t.attempt,"
					 "       extract(epoch FROM coalesce(t.end_at, now()) - t.start_at),"
					 "       t.gate, (SELECT string_agg(x, ', ') FROM json_array_elements_text((" WAITING_FOR ")::json) x),"
					 "       t.message, t.ignore_failed"
					 "  FROM pipeline.job_tasks t WHERE t.pipeline_task_id = $1::bigint"
					 " ORDER BY t.stage_index, t.task_index, t.id", 1, qp, &err);
	if (!tasks)
	{
		PQclear(run);
		return db_fail("status", &err);
	}
	duration_cell(dur, sizeof(dur), db_value(run, 0, 5));
	printf("run %s: %s v%s  %s%s  (%s/%s tasks done%s%s, by %s)\n", id, db_value(run, 0, 0),
		   db_value(run, 0, 1), db_value(run, 0, 2),
		   strcmp(db_value(run, 0, 8), "t") == 0 ? " (dry run)" : "",
		   db_value(run, 0, 3), db_value(run, 0, 4), dur[0] ? ", " : "", dur, db_value(run, 0, 7));

	t = out_table_new(6, hdr);
	for (int r = 0; r < PQntuples(tasks); r++)
	{
		const char *cells[6];
		char	   *note;
		const char *gate = db_value(tasks, r, 5);

		duration_cell(dur, sizeof(dur), db_value(tasks, r, 4));
		if (gate)
			note = xasprintf("waiting for %s (%s gate) by: %s",
							 strcmp(gate, "audit") == 0 ? "approval" : "confirmation", gate,
							 db_value(tasks, r, 6) ? db_value(tasks, r, 6) : "(nobody listed)");
		else
			note = xstrdup(db_value(tasks, r, 7) ? db_value(tasks, r, 7) : "");
		if (!failed_id && strcmp(db_value(run, 0, 2), "failed") == 0 &&
			strcmp(db_value(tasks, r, 2), "failed") == 0 && strcmp(db_value(tasks, r, 8), "f") == 0)
		{
			failed_id = db_value(tasks, r, 0);
			failed_name = db_value(tasks, r, 1);
		}
		cells[0] = db_value(tasks, r, 0);
		cells[1] = db_value(tasks, r, 1);
		cells[2] = db_value(tasks, r, 2);
		cells[3] = db_value(tasks, r, 3);
		cells[4] = dur;
		cells[5] = note;
		out_table_add(t, cells);
		free(note);
	}
	out_table_print(t, stdout);
	out_table_free(t);
	if (failed_id)
		printf("failed by %s (job task %s): pipelinectl logs %s\n", failed_name, failed_id, failed_id);
	else if (db_value(run, 0, 6))
		printf("message: %s\n", db_value(run, 0, 6));
	if (db_value(run, 0, 9))
		printf("%s\n", db_value(run, 0, 9));	/* the runs its end started (next_pipelines) */
	rc = strcmp(db_value(run, 0, 2), "failed") == 0 || strcmp(db_value(run, 0, 2), "canceled") == 0;
	PQclear(tasks);
	PQclear(run);
	return rc;
}

int
cmd_status(int argc, char **argv, const char *conninfo)
{
	bool		json = false;
	int			rc;
	int64_t		id;
	db_conn		db;
	const opt_spec specs[] = {
		{"json", 0, OPT_FLAG, &json, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};
	opt_cmd		cmd = {"status", status_usage, conninfo, 0};

	if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
		return rc;
	if ((rc = opts_one_id(&cmd, argc, argv, "RUN", "run", &id)) >= 0)
		return rc;
	conninfo = cmd.conninfo;
	log_init("status");
	log_set_min_level(LOG_WARN);
	if ((rc = db_open_checked(&db, conninfo, "status")) >= 0)
		return rc;
	rc = json ? status_json(&db, argv[cmd.first_arg]) : status_text(&db, argv[cmd.first_arg]);
	db_close(&db);
	return rc;
}

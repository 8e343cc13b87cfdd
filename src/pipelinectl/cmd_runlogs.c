/*
 * cmd_runlogs.c: "pipelinectl logs --run RUN" (every task's output of a run)
 * and "pipelinectl logs JOB_TASK --json".
 *
 * Text: one header per job task, in stage and task order,
 *     == build.compile (job task 12, attempt 2) ==
 * then its output; a task that ran more than once has a marker before each
 * attempt's output ("-- attempt 1 --").  job_task_log does not record the
 * attempt of a chunk, so the boundaries come from the task's events: attempt
 * N begins when a runner claimed it (the event from "scheduling" to
 * "creating", or to "active" for a claim with start => true, whose payload
 * says attempt N); a chunk belongs to the last attempt claimed at or before
 * it was stored.  A runner's stale token cannot append once the task has been
 * re-claimed, so the split is exact except for an append that commits while
 * the next claim is in progress.  A role that may not read pipeline.event
 * (a table, closed by default) gets the output without attempt markers and
 * a note on stderr.
 *
 * JSON (one document): {"run": ID, "tasks": [{"id", "stage_name",
 * "task_name", "stage", "attempt", "attempts": [{"attempt": N, "output":
 * TEXT}]}]}; for one task (logs JOB_TASK --json) the same with "run" the
 * task's run and only that task.
 *
 * Exit status: 0; 1 the run or task does not exist; 2 connection, privilege
 * or set-up error.  Locks: none (reads).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * $1 the run, $2 one job task of it or NULL.  Columns: id, stage_name,
 * task_name, stage, attempt (the task's), seq, chunk, chunk_attempt.
 */
#define RUNLOG_TASKS \
	"WITH tasks AS (" \
	"  SELECT t.id, t.stage_name, t.task_name, t.stage, t.attempt, t.stage_index, t.task_index" \
	"    FROM pipeline.job_tasks t" \
	"   WHERE t.pipeline_task_id = $1::bigint AND ($2::bigint IS NULL OR t.id = $2::bigint)),"
#define RUNLOG_SELECT \
	" SELECT t.id, t.stage_name, t.task_name, t.stage, t.attempt, l.seq, l.chunk," \
	"        coalesce((SELECT max(c.attempt) FROM claims c" \
	"                   WHERE c.object_id = t.id AND c.since <= l.at), 1)" \
	"   FROM tasks t LEFT JOIN LATERAL pipeline.job_task_log(t.id) l ON true" \
	"  ORDER BY t.stage_index, t.task_index, t.id, l.seq"

/* with SELECT on pipeline.event: attempts from the claim events */
static const char runlog_sql[] =
	RUNLOG_TASKS
	" claims AS ("
	"  SELECT e.object_id, (e.payload->>'attempt')::int AS attempt, min(e.at) AS since"
	"    FROM pipeline.event e"
	"   WHERE e.pipeline_task_id = $1::bigint AND e.kind = 'job_task'"
	"     AND e.old_stage = 'scheduling' AND e.new_stage IN ('creating', 'active')"
	"     AND e.object_id IN (SELECT id FROM tasks)"
	"   GROUP BY 1, 2)"
	RUNLOG_SELECT;

/* without it (the table is closed to most roles): every chunk counts as attempt 1 */
static const char runlog_sql_noevents[] =
	RUNLOG_TASKS
	" claims AS (SELECT NULL::bigint AS object_id, NULL::int AS attempt, NULL::timestamptz AS since"
	"             WHERE false)"
	RUNLOG_SELECT;

/* whether the connected role may read pipeline.event */
static bool
can_read_events(db_conn *db)
{
	db_error	err;
	PGresult   *res = db_query(db, "SELECT has_table_privilege('pipeline.event', 'SELECT')", 0, NULL, &err);
	bool		yes = res && db_value(res, 0, 0) && strcmp(db_value(res, 0, 0), "t") == 0;

	PQclear(res);
	return yes;
}

/* the run of a job task; NULL (message printed, *rc set) when it does not exist */
static char *
task_run(db_conn *db, const char *task, int *rc)
{
	const char *qp[1] = {task};
	db_error	err;
	PGresult   *res = db_query(db, "SELECT pipeline_task_id FROM pipeline.job_tasks WHERE id = $1::bigint",
							   1, qp, &err);
	char	   *run = NULL;

	if (!res)
		*rc = db_fail("logs", &err);
	else if (PQntuples(res) == 0 || !db_value(res, 0, 0))
	{
		fprintf(stderr, "pipelinectl logs: job task %s does not exist\n", task);
		*rc = 1;
	}
	else
		run = xstrdup(db_value(res, 0, 0));
	PQclear(res);
	return run;
}

static bool
run_exists(db_conn *db, const char *run, int *rc)
{
	const char *qp[1] = {run};
	db_error	err;
	PGresult   *res = db_query(db, "SELECT 1 FROM pipeline.pipeline_tasks WHERE id = $1::bigint",
							   1, qp, &err);
	bool		found;

	if (!res)
	{
		*rc = db_fail("logs", &err);
		return false;
	}
	found = PQntuples(res) > 0;
	PQclear(res);
	if (!found)
	{
		fprintf(stderr, "pipelinectl logs: run %s does not exist\n", run);
		*rc = 1;
	}
	return found;
}

/* text: headers, attempt markers (when the attempts are known), output */
static void
print_text(PGresult *res, bool markers)
{
	const char *cur = NULL;
	int			shown_attempt = 0;
	int			task_attempts = 1;
	bool		any = false;
	bool		at_bol = true;

	for (int r = 0; r <= PQntuples(res); r++)
	{
		const char *id = r < PQntuples(res) ? db_value(res, r, 0) : NULL;
		const char *chunk;
		int			a;

		if (!id || !cur || strcmp(id, cur) != 0)
		{
			/* the previous task ends */
			if (cur && !at_bol)
				putchar('\n');
			if (cur && !any)
				printf("(no output)\n");
			for (int k = shown_attempt + 1; cur && any && task_attempts > 1 && k <= task_attempts; k++)
				printf("-- attempt %d --\n(no output)\n", k);
			if (!id)
				break;
			cur = id;
			any = false;
			at_bol = true;
			shown_attempt = 0;
			task_attempts = atoi(db_value(res, r, 4));
			printf("== %s.%s (job task %s, attempt %d) ==\n", db_value(res, r, 1), db_value(res, r, 2),
				   id, task_attempts);
			if (!markers)
				task_attempts = 1;	/* no markers */
		}
		chunk = db_value(res, r, 6);
		if (!chunk)
			continue;
		a = atoi(db_value(res, r, 7));
		if (task_attempts > 1 && a != shown_attempt)
		{
			if (!at_bol)
				putchar('\n');
			for (int k = shown_attempt + 1; k < a; k++)
				printf("-- attempt %d --\n(no output)\n", k);
			printf("-- attempt %d --\n", a);
			shown_attempt = a;
			at_bol = true;
		}
		fwrite(chunk, 1, (size_t) PQgetlength(res, r, 6), stdout);
		if (PQgetlength(res, r, 6) > 0)
			at_bol = chunk[PQgetlength(res, r, 6) - 1] == '\n';
		any = true;
	}
}

static void
print_json(PGresult *res, const char *run)
{
	json_t	   *doc = json_pack("{s:I,s:[]}", "run", (json_int_t) strtoll(run, NULL, 10), "tasks");
	json_t	   *tasks = json_object_get(doc, "tasks");
	json_t	   *task = NULL;
	json_t	   *attempt = NULL;
	const char *cur = NULL;
	char	   *text;

	for (int r = 0; r < PQntuples(res); r++)
	{
		const char *id = db_value(res, r, 0);
		const char *chunk = db_value(res, r, 6);
		int			a;

		if (!cur || strcmp(id, cur) != 0)
		{
			cur = id;
			task = json_pack("{s:I,s:s,s:s,s:s,s:i,s:[]}",
							 "id", (json_int_t) strtoll(id, NULL, 10),
							 "stage_name", db_value(res, r, 1), "task_name", db_value(res, r, 2),
							 "stage", db_value(res, r, 3), "attempt", atoi(db_value(res, r, 4)),
							 "attempts");
			json_array_append_new(tasks, task);
			attempt = NULL;
		}
		if (!chunk)
			continue;
		a = atoi(db_value(res, r, 7));
		if (!attempt || json_integer_value(json_object_get(attempt, "attempt")) != a)
		{
			attempt = json_pack("{s:i,s:s}", "attempt", a, "output", "");
			json_array_append_new(json_object_get(task, "attempts"), attempt);
		}
		{
			const char *old = json_string_value(json_object_get(attempt, "output"));
			size_t		olen = json_string_length(json_object_get(attempt, "output"));
			size_t		clen = (size_t) PQgetlength(res, r, 6);
			char	   *joined = xmalloc(olen + clen + 1);

			memcpy(joined, old, olen);
			memcpy(joined + olen, chunk, clen);
			joined[olen + clen] = '\0';
			json_object_set_new(attempt, "output", json_stringn(joined, olen + clen));
			free(joined);
		}
	}
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", text);
	free(text);
	json_decref(doc);
}

int
logs_run(const char *run_arg, const char *task_arg, bool json, const char *conninfo)
{
	db_conn		db;
	db_error	err;
	PGresult   *res;
	char	   *run = NULL;
	const char *qp[2];
	int			rc = 0;
	bool		events;

	log_init("logs");
	log_set_min_level(LOG_WARN);
	if ((rc = db_open_checked(&db, conninfo, "logs")) >= 0)
		return rc;
	rc = 0;
	if (task_arg)
		run = task_run(&db, task_arg, &rc);
	else if (run_exists(&db, run_arg, &rc))
		run = xstrdup(run_arg);
	if (!run)
	{
		db_close(&db);
		return rc;
	}
	qp[0] = run;
	qp[1] = task_arg;
	if ((events = can_read_events(&db)))
		res = db_query(&db, runlog_sql, 2, qp, &err);
	else
	{
		fprintf(stderr, "pipelinectl logs: this role may not read pipeline.event: the attempts of a "
				"retried task are not told apart (GRANT SELECT ON pipeline.event to show them)\n");
		res = db_query(&db, runlog_sql_noevents, 2, qp, &err);
	}
	if (!res)
		rc = db_fail("logs", &err);
	else if (json)
		print_json(res, run);
	else
		print_text(res, events);
	PQclear(res);
	free(run);
	db_close(&db);
	return rc;
}

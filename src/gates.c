/*
 * gates.c: decisions people and the reaper take on job tasks: the audit gate
 * (before running), the confirm gate (after running), retry_job_task(),
 * automatic retries with backoff, reap() of timed-out and silent tasks, and
 * the task log a runner appends to.
 *
 * Locks: every decision here rewrites task state that advancing depends on,
 * so it takes the run's advisory lock A(P) exclusively first (see advance.c),
 * then the task row(s) by id, then the run row.  reap() is the exception: it
 * acts like a runner's completing report, A(P) shared then the task row, and
 * skips rows another session holds (the runner's own final report wins).
 *
 * Fencing: a retried or reaped task loses its token digest, so the runner
 * that held it gets 28000 on its next report; only the next claim issues a
 * new token.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "pipeline.h"

int			pl_retry_backoff = 10;

static char *
outer_user(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

/* pipeline_task_id of a job task, or ERROR P0002 */
static int64
run_of_task(int64 id)
{
	static PlStmt q = {
		"SELECT pipeline_task_id FROM pipeline.job_task WHERE id = $1", 1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job task " INT64_FORMAT " does not exist", id)));
	return pl_col_int64(0, 1);
}

/*
 * A failed task that has retries left goes back to scheduling after a
 * backoff of pipeline.retry_backoff * 2^(attempt-1) seconds (capped at one
 * hour), attempt + 1, token revoked -- while its run is active: a canceled
 * or failed run starts nothing new.  Returns true if it did.  Caller holds
 * the row lock and has already written the failed state and its event.
 */
bool
pl_retry_if_left(int64 id, int64 pipeline_task_id)
{
	static PlStmt q = {
		"UPDATE pipeline.job_task SET stage = 'scheduling', attempt = attempt + 1,"
		"  message = NULL, detail = NULL,"	/* the failed attempt's, kept in its event */
		"  token_digest = NULL, runner = NULL, start_at = NULL, end_at = NULL,"
		"  retry_at = now() + pg_catalog.make_interval(secs => LEAST(3600,"
		"     $2 * pg_catalog.power(2, attempt - 1))),"
		"  updated_at = now()"
		" WHERE id = $1 AND stage = 'failed'"
		"   AND attempt <= retries"
		"   AND (SELECT p.stage FROM pipeline.pipeline_task p WHERE p.id = $3) = 'active'"
		" RETURNING attempt",
		3, {INT8OID, INT4OID, INT8OID}
	};
	Datum		v[3];

	v[0] = Int64GetDatum(id);
	v[1] = Int32GetDatum(pl_retry_backoff);
	v[2] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		return false;
	pl_event_job_task(id, pipeline_task_id, PL_FAILED, PL_SCHEDULING);
	return true;
}

/* Is the current user listed in the gate's array (auditors/checkers)? */
static void
check_listed(int64 id, Jsonb *gate, const char *list_key, const char *what)
{
	JsonbValue *lst = gate ? pl_jb_get(&gate->root, list_key) : NULL;
	char	   *me = outer_user();
	JsonbValue	probe;

	probe.type = jbvString;
	probe.val.string.val = me;
	probe.val.string.len = strlen(me);
	if (lst == NULL || lst->type != jbvBinary ||
		findJsonbValueFromContainer(lst->val.binary.data, JB_FARRAY, &probe) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("job task " INT64_FORMAT ": user \"%s\" is not one of its %s", id, me, what)));
}

/*
 * Record a gate decision in gate_result.<gate> = {pass, by, at, comment} and
 * clear the waiting gate.
 */
static void
record_decision(int64 id, const char *gate, bool pass, const char *comment)
{
	static PlStmt q = {
		"UPDATE pipeline.job_task SET gate = NULL, updated_at = now(),"
		"  gate_result = gate_result || pg_catalog.jsonb_build_object($2::text,"
		"     pg_catalog.jsonb_build_object('pass', $3, 'by', $4::text, 'at', now(), 'comment', $5::text))"
		" WHERE id = $1",
		5, {INT8OID, TEXTOID, BOOLOID, TEXTOID, TEXTOID}
	};
	Datum		v[5];
	bool		n[5] = {false, false, false, false, comment == NULL};

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(gate);
	v[2] = BoolGetDatum(pass);
	v[3] = CStringGetTextDatum(outer_user());
	v[4] = comment ? CStringGetTextDatum(comment) : (Datum) 0;
	pl_exec(&q, v, n, 0);
}

/*
 * audit_job_task(id bigint, pass boolean, comment text DEFAULT NULL) RETURNS job_task
 * confirm_job_task(id bigint, pass boolean, comment text DEFAULT NULL) RETURNS job_task
 * Locks: A(P) exclusive, the task row, then (advancing) the run row.
 */
static Datum
decide(FunctionCallInfo fcinfo, bool audit)
{
	static PlStmt lock_q = {
		"SELECT stage, gate, audit, confirm, stage_index FROM pipeline.job_task WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	};
	const char *fn = audit ? "audit_job_task" : "confirm_job_task";
	const char *gate = audit ? "audit" : "confirm";
	int64		id;
	bool		pass;
	char	   *comment;
	int64		pt;
	PlStage		stage;
	char	   *waiting;
	Jsonb	   *spec;
	Datum		v[1];
	MemoryContext outer;
	Datum		result;
	int			stage_index;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: %s must not be null", fn, PG_ARGISNULL(0) ? "id" : "pass")));
	id = PG_GETARG_INT64(0);
	pass = PG_GETARG_BOOL(1);
	comment = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!pass && (comment == NULL || comment[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job task " INT64_FORMAT ": a denial needs a comment", id),
				 errhint("Say why, so the people who run the pipeline know.")));
	pl_require_read_committed(fn);

	outer = pl_spi_connect();
	pt = run_of_task(id);
	pl_lock_run_exclusive(pt);
	v[0] = Int64GetDatum(id);
	pl_exec(&lock_q, v, NULL, 1);
	stage = pl_col_stage(0, 1);
	waiting = pl_col_text(0, 2);
	spec = pl_col_jsonb(0, audit ? 3 : 4);
	stage_index = pl_col_int32(0, 5);

	if (waiting == NULL || strcmp(waiting, gate) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is not waiting at its %s gate", id, gate),
				 errdetail("The task is %s%s%s.", pl_stage_names[stage],
						   waiting ? ", waiting at its " : "", waiting ? waiting : "")));
	check_listed(id, spec, audit ? "auditors" : "checkers", audit ? "auditors" : "checkers");

	record_decision(id, gate, pass, comment);
	if (audit)
	{
		if (pass)
			pl_set_job_task_stage(id, pt, PL_PENDING, PL_SCHEDULING, NULL);
		else
		{
			pl_set_job_task_stage(id, pt, PL_PENDING, PL_FAILED,
								  psprintf("audit denied by %s: %s", outer_user(), comment));
			pl_advance_after(id, pt, stage_index, PL_FAILED, false);
		}
	}
	else
	{
		if (pass)
		{
			/* the decision is an event even though the stage stays */
			pl_event_job_task(id, pt, stage, stage);
			pl_advance_continue(id, pt);
		}
		else
		{
			pl_set_job_task_stage(id, pt, stage, PL_FAILED,
								  psprintf("confirm denied by %s: %s", outer_user(), comment));
			if (stage == PL_FAILED)
				pl_event_job_task(id, pt, stage, stage);
			pl_advance_after(id, pt, stage_index, PL_FAILED, false);
		}
	}
	result = pl_job_task_datum(id, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(pl_audit_job_task);
Datum
pl_audit_job_task(PG_FUNCTION_ARGS)
{
	return decide(fcinfo, true);
}

PG_FUNCTION_INFO_V1(pl_confirm_job_task);
Datum
pl_confirm_job_task(PG_FUNCTION_ARGS)
{
	return decide(fcinfo, false);
}

/*
 * retry_job_task(id bigint) RETURNS job_task
 *
 * Re-opens a failed or canceled task of a finished run: the task, and every
 * task that is not succeeded and comes after it (later stages; in its own
 * stage, later tasks of a serial stage or all siblings of a parallel one),
 * go back to pending with gates re-armed; the run becomes active again and
 * the next set starts.  Tokens are revoked (the old runner gets 28000).
 * Locks: A(P) exclusive, the run's task rows by id, the run row, and the
 * sequence lock of a serialized pipeline.
 */
PG_FUNCTION_INFO_V1(pl_retry_job_task);
Datum
pl_retry_job_task(PG_FUNCTION_ARGS)
{
	static PlStmt tasks_q = {
		"SELECT id, stage, stage_index, task_index, is_parallel FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 ORDER BY id FOR UPDATE",
		1, {INT8OID}
	};
	static PlStmt run_q = {
		"SELECT stage, pipeline_name, sequence_key FROM pipeline.pipeline_task WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	};
	static PlStmt holder_q = {
		"SELECT id FROM pipeline.pipeline_task WHERE pipeline_name = $1 AND sequence_key = $2"
		"  AND stage < 'canceled' AND id <> $3 LIMIT 1",
		3, {TEXTOID, TEXTOID, INT8OID}
	};
	static PlStmt reopen_q = {
		"UPDATE pipeline.job_task SET stage = 'pending',"
		"  attempt = attempt + CASE WHEN stage IN ('failed', 'canceled') THEN 1 ELSE 0 END,"
		"  message = NULL, detail = NULL, runner = NULL, token_digest = NULL, gate = NULL,"
		"  gate_result = '{}', start_at = NULL, end_at = NULL, claimed_at = NULL,"
		"  heartbeat_at = NULL, retry_at = NULL, updated_at = now()"
		" WHERE id = $1",
		1, {INT8OID}
	};
	static PlStmt reactivate_q = {
		"UPDATE pipeline.pipeline_task SET stage = 'active', message = NULL, end_at = NULL"
		" WHERE id = $1",
		1, {INT8OID}
	};
	int64		id;
	int64		pt;
	Datum		v[3];
	int			n;
	int64	   *ids;
	PlStage    *stages;
	int		   *sidx;
	int		   *tidx;
	int			me = -1;
	bool		par = false;
	PlStage		run_stage;
	char	   *pname;
	char	   *seqkey;
	MemoryContext outer;
	Datum		result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("retry_job_task: id must not be null")));
	id = PG_GETARG_INT64(0);
	pl_require_read_committed("retry_job_task");

	outer = pl_spi_connect();
	pt = run_of_task(id);
	pl_lock_run_exclusive(pt);

	v[0] = Int64GetDatum(pt);
	pl_exec(&tasks_q, v, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * n);
	stages = palloc(sizeof(PlStage) * n);
	sidx = palloc(sizeof(int) * n);
	tidx = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		ids[i] = pl_col_int64(i, 1);
		stages[i] = pl_col_stage(i, 2);
		sidx[i] = pl_col_int32(i, 3);
		tidx[i] = pl_col_int32(i, 4);
		if (ids[i] == id)
		{
			me = i;
			par = pl_col_bool(i, 5);
		}
	}
	if (me < 0)
		elog(ERROR, "job task " INT64_FORMAT " not found in its run", id);
	if (stages[me] != PL_FAILED && stages[me] != PL_CANCELED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is %s; only a failed or canceled task can be retried",
						id, pl_stage_names[stages[me]])));

	pl_exec(&run_q, v, NULL, 1);
	run_stage = pl_col_stage(0, 1);
	pname = pl_col_text(0, 2);
	seqkey = pl_col_text(0, 3);
	if (!pl_stage_complete(run_stage))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT ": its pipeline task " INT64_FORMAT " is still %s",
						id, pt, pl_stage_names[run_stage]),
				 errdetail("Only a task of a finished run can be retried.")));
	if (seqkey)
	{
		Datum		hv[3];

		hv[0] = CStringGetTextDatum(pname);
		hv[1] = CStringGetTextDatum(seqkey);
		hv[2] = Int64GetDatum(pt);
		pl_exec(&holder_q, hv, NULL, 1);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("pipeline \"%s\": run " INT64_FORMAT " is unfinished, so run " INT64_FORMAT " cannot be re-opened",
							pname, pl_col_int64(0, 1), pt),
					 errdetail("Runs of this pipeline are serialized.")));
	}

	/* re-open the run, then the tasks, then start */
	pl_exec(&reactivate_q, v, NULL, 0);
	pl_event_pipeline_task(pt, (int) run_stage, PL_ACTIVE);
	for (int i = 0; i < n; i++)
	{
		bool		after;

		if (stages[i] == PL_SUCCEEDED && i != me)
			continue;
		after = (i == me) || sidx[i] > sidx[me] ||
			(sidx[i] == sidx[me] && (par || tidx[i] > tidx[me]));
		if (!after || stages[i] == PL_PENDING)
			continue;
		v[0] = Int64GetDatum(ids[i]);
		pl_exec(&reopen_q, v, NULL, 0);
		pl_event_job_task(ids[i], pt, stages[i], PL_PENDING);
	}
	pl_start_next(pt);
	result = pl_job_task_datum(id, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * reap() RETURNS int
 *
 * Fails running tasks past their job's timeout (counted from start_at, or
 * claimed_at while creating) or silent longer than pipeline.heartbeat_timeout
 * (no heartbeat or update); canceling tasks that went silent become canceled.
 * Each reaped task loses its token (its runner can no longer report), then
 * retries if it has retries left, else advances like any failure.
 * Locks, per task: A(P) shared, the task row FOR UPDATE SKIP LOCKED (a runner
 * reporting right now wins), then what advancing takes.
 */
PG_FUNCTION_INFO_V1(pl_reap);
Datum
pl_reap(PG_FUNCTION_ARGS)
{
	static PlStmt cand_q = {
		"SELECT id, pipeline_task_id, stage = 'canceling' FROM pipeline.job_task"
		" WHERE (stage < 'canceled' OR gate IS NOT NULL)"	/* job_task_open_idx */
		"   AND stage IN ('creating', 'active', 'canceling')"
		"   AND ((timeout > 0"
		"         AND COALESCE(start_at, claimed_at) + pg_catalog.make_interval(secs => timeout) < now())"
		"     OR ($1 > 0 AND COALESCE(heartbeat_at, claimed_at) + pg_catalog.make_interval(secs => $1) < now()))"
		" ORDER BY id LIMIT 1000",
		1, {INT4OID}
	};
	static PlStmt lock_q = {
		"SELECT stage, stage_index,"
		"  CASE WHEN timeout > 0"
		"        AND COALESCE(start_at, claimed_at) + pg_catalog.make_interval(secs => timeout) < now()"
		"       THEN 'timeout after ' || timeout || ' s'"
		"       WHEN $2 > 0 AND COALESCE(heartbeat_at, claimed_at) + pg_catalog.make_interval(secs => $2) < now()"
		"       THEN 'no heartbeat for ' || $2 || ' s'"
		"  END"
		" FROM pipeline.job_task WHERE id = $1 AND stage IN ('creating', 'active', 'canceling')"
		" FOR UPDATE SKIP LOCKED",
		2, {INT8OID, INT4OID}
	};
	static PlStmt revoke_q = {
		"UPDATE pipeline.job_task SET token_digest = NULL WHERE id = $1", 1, {INT8OID}
	};
	int			n;
	int64	   *ids;
	int64	   *pts;
	bool	   *cancels;
	int			reaped = 0;
	Datum		v[2];

	pl_require_read_committed("reap");
	pl_spi_connect();
	v[0] = Int32GetDatum(pl_heartbeat_timeout);
	pl_exec(&cand_q, v, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	pts = palloc(sizeof(int64) * (n + 1));
	cancels = palloc(sizeof(bool) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		ids[i] = pl_col_int64(i, 1);
		pts[i] = pl_col_int64(i, 2);
		cancels[i] = pl_col_bool(i, 3);
	}
	for (int i = 0; i < n; i++)
	{
		PlStage		stage;
		PlStage		target;
		int			stage_index;
		char	   *why;

		/* a canceling task that goes canceled cancels the run: exclusive */
		if (cancels[i])
			pl_lock_run_exclusive(pts[i]);
		else
			pl_lock_run_shared(pts[i]);
		v[0] = Int64GetDatum(ids[i]);
		v[1] = Int32GetDatum(pl_heartbeat_timeout);
		pl_exec(&lock_q, v, NULL, 1);
		if (SPI_processed == 0)
			continue;			/* finished or being reported meanwhile */
		stage = pl_col_stage(0, 1);
		stage_index = pl_col_int32(0, 2);
		why = pl_col_text(0, 3);
		if (why == NULL)
			continue;			/* heard from since we looked */
		target = (stage == PL_CANCELING) ? PL_CANCELED : PL_FAILED;
		pl_exec(&revoke_q, v, NULL, 0);
		pl_set_job_task_stage(ids[i], pts[i], stage, target, why);
		if (target == PL_FAILED && pl_retry_if_left(ids[i], pts[i]))
		{
			reaped++;
			continue;
		}
		if (target == PL_CANCELED && !cancels[i])
			continue;			/* went canceling after we looked; next reap */
		pl_advance_after(ids[i], pts[i], stage_index, target, false);
		reaped++;
	}
	pl_spi_finish();
	PG_RETURN_INT32(reaped);
}

/*
 * append_job_task_log(id bigint, update_token text, chunk text) RETURNS bigint
 * Appends output to a task's log, with the task's sensitive values and the
 * token masked; returns the chunk's seq.  The token guards it like a status
 * update; a finished task takes no more output (55000, as heartbeat()).
 * Locks: none beyond the insert.
 */
PG_FUNCTION_INFO_V1(pl_append_job_task_log);
Datum
pl_append_job_task_log(PG_FUNCTION_ARGS)
{
	/* the chunk is stored with the task's secrets masked (secrets.c) */
	static PlStmt ins = {
		"INSERT INTO pipeline.job_task_log (job_task_id, chunk)"
		" SELECT t.id, pipeline.mask_secrets($2, CASE WHEN pg_catalog.cardinality(t.sensitive) > 0"
		"   THEN " PL_SECRETS_SQL("t") " END, t.sensitive, $3)"
		" FROM pipeline.job_task t WHERE t.id = $1 RETURNING seq",
		3, {INT8OID, TEXTOID, TEXTOID}
	};
	int64		id;
	char	   *token;
	Datum		v[3];
	bool		n[3] = {false, false, false};
	int64		seq;
	PlStage		stage;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("append_job_task_log: %s must not be null",
						PG_ARGISNULL(0) ? "id" : "chunk")));
	id = PG_GETARG_INT64(0);
	token = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	pl_spi_connect();
	stage = pl_require_token(id, token, false);
	if (pl_stage_complete(stage))	/* as heartbeat(): the runner ships output first */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is already %s", id, pl_stage_names[stage]),
				 errdetail("A finished task takes no more output.")));
	v[0] = Int64GetDatum(id);
	v[1] = PG_GETARG_DATUM(2);
	v[2] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	n[2] = PG_ARGISNULL(1);
	pl_exec(&ins, v, n, 1);
	seq = pl_col_int64(0, 1);
	pl_spi_finish();
	PG_RETURN_INT64(seq);
}

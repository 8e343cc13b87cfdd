/*
 * claim.c: claim_job_tasks(), how runners take work.
 *
 * Picks the oldest `scheduling` tasks whose job labels are all among the
 * runner's labels (jsonb containment), FOR NO KEY UPDATE SKIP LOCKED (not
 * blocked by the witness locks of advance.c, which only completions honour), so concurrent
 * runners never wait for each other and never get the same task.  Each
 * claimed task becomes `creating`, records the runner, gets a fresh token
 * (returned once, stored as a digest) and an event.  The params handed to the
 * runner are the task's params fixed at run start, overlaid with the run's
 * runtime envs as they are now and the system params.
 *
 * Locks: the claimed job task rows only.  No run-level lock: a concurrent
 * cancel locks the same rows and sees the claim's result after it commits.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"

#include "pipeline.h"

PG_FUNCTION_INFO_V1(pl_claim_job_tasks);
Datum
pl_claim_job_tasks(PG_FUNCTION_ARGS)
{
	static PlStmt pick = {
		"SELECT id, pipeline_task_id FROM pipeline.job_task"
		" WHERE stage = 'scheduling' AND labels <@ $1"
		"   AND (retry_at IS NULL OR retry_at <= now())"
		" ORDER BY id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
		2, {JSONBOID, INT4OID}
	};
	/* claim one task and write its event, in one statement */
	static PlStmt take = {
		"WITH u AS ("
		" UPDATE pipeline.job_task t SET stage = 'creating', runner = $2, token_digest = $3,"
		"  claimed_at = now(), heartbeat_at = now(), updated_at = now(), retry_at = NULL"
		" WHERE t.id = $1 RETURNING t.*),"
		" p AS (SELECT p.runtime_envs FROM pipeline.pipeline_task p, u"
		"        WHERE p.id = u.pipeline_task_id),"
		" e AS ("
		" INSERT INTO pipeline.event (kind, object_id, pipeline_task_id, old_stage, new_stage, payload)"
		" SELECT 'job_task', u.id, u.pipeline_task_id, 'scheduling', u.stage,"
		" " PL_TASK_PAYLOAD_SQL("u", "'scheduling'")
		"  FROM u RETURNING id)"
		" SELECT u.pipeline_task_id,"
		"  (SELECT s.job FROM pipeline.job_task_spec s WHERE s.job_task_id = u.id),"
		"  u.params || COALESCE((SELECT p.runtime_envs FROM p), '{}') || pg_catalog.jsonb_build_object("
		"    'JOB_TASK_ID', u.id::text, 'PIPELINE_TASK_ID', u.pipeline_task_id::text,"
		"    'JOB_TASK_UPDATE_TOKEN', $4::text),"
		"  u.dry_run, (SELECT e.id FROM e),"
		"  " PL_HOOKS_IF_ANY_SQL("u")
		" FROM u",
		4, {INT8OID, TEXTOID, BYTEAOID, TEXTOID}
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *runner;
	int32		max;
	Jsonb	   *labels;
	int			n;
	int64	   *ids;
	int64	   *runs;
	Datum		v[4];
	MemoryContext outer;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("claim_job_tasks: runner name must not be null")));
	runner = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (runner[0] == '\0' || strlen(runner) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("claim_job_tasks: runner name must be 1 to 200 characters")));
	max = PG_ARGISNULL(1) ? 1 : PG_GETARG_INT32(1);
	if (max < 1 || max > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("runner \"%s\": max must be between 1 and 1000, not %d", pl_clip(runner), max)));
	labels = PG_ARGISNULL(2) ? pl_jsonb_from_cstring("{}") : PG_GETARG_JSONB_P(2);
	if (!pl_jb_is_object(labels))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("runner \"%s\": labels must be a JSON object", pl_clip(runner))));

	InitMaterializedSRF(fcinfo, 0);
	outer = pl_spi_connect();

	v[0] = JsonbPGetDatum(labels);
	v[1] = Int32GetDatum(max);
	pl_exec(&pick, v, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	runs = palloc(sizeof(int64) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		ids[i] = pl_col_int64(i, 1);
		runs[i] = pl_col_int64(i, 2);
	}

	for (int i = 0; i < n; i++)
	{
		char	   *token = pl_token_new(runs[i]);
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		bool		isnull;
		int64		pt;
		MemoryContext old;

		v[0] = Int64GetDatum(ids[i]);
		v[1] = CStringGetTextDatum(runner);
		v[2] = PointerGetDatum(pl_token_digest(token));
		v[3] = CStringGetTextDatum(token);
		pl_exec(&take, v, NULL, 0);
		if (SPI_processed != 1)
			elog(ERROR, "job task " INT64_FORMAT " vanished while being claimed", ids[i]);
		pt = pl_col_int64(0, 1);

		old = MemoryContextSwitchTo(outer);
		values[0] = Int64GetDatum(ids[i]);
		values[1] = CStringGetTextDatum(token);
		values[2] = Int64GetDatum(pt);
		values[3] = datumCopy(pl_col(0, 2, &isnull), false, -1);
		values[4] = datumCopy(pl_col(0, 3, &isnull), false, -1);
		values[5] = pl_col(0, 4, &isnull);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);

		{
			int64		event_id = pl_col_int64(0, 5);
			Jsonb	   *hooks = pl_col_jsonb(0, 6);

			pl_announce_event(event_id, pt, ids[i], hooks, PL_CREATING);
		}
	}
	pl_spi_finish();
	return (Datum) 0;
}

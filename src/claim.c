/*
 * claim.c: claim_job_tasks(), how runners take work.
 *
 * Layer: api
 *
 * Picks the oldest `scheduling` tasks whose job labels are all among the
 * runner's labels (jsonb containment), FOR NO KEY UPDATE SKIP LOCKED (not
 * blocked by the witness locks of schedule.c, which only completions honour), so concurrent
 * runners never wait for each other and never get the same task.  Each
 * claimed task becomes `creating` (or, with start => true, `active` at once,
 * SPEC §16: one event, start_at set), records the runner, gets a fresh token
 * (returned once, stored as a digest) and an event (transition.c).  The params handed to the
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

#include "defcheck.h"
#include "token.h"
#include "transition.h"
#include "util.h"

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
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *runner;
	int32		max;
	Jsonb	   *labels;
	bool		start;
	int			n;
	int64	   *ids;
	int64	   *runs;
	Datum		v[2];
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

	/* start (SPEC §16): claimed tasks go straight to active */
	start = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);

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
		PlClaimed	got;
		MemoryContext old;

		/* the change, its event and its announcement: transition.c */
		pl_tr_claim(ids[i], runner, token, start, &got, outer);
		old = MemoryContextSwitchTo(outer);
		values[0] = Int64GetDatum(ids[i]);
		values[1] = CStringGetTextDatum(token);
		values[2] = Int64GetDatum(got.pipeline_task_id);
		values[3] = got.job;
		values[4] = got.params;
		values[5] = BoolGetDatum(got.dry_run);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	pl_spi_finish();
	return (Datum) 0;
}

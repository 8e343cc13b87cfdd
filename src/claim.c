/*
 * claim.c: claim_job_tasks(), how runners take work.
 *
 * Layer: api
 *
 * Reads the runners' queue, pipeline.job_queue (one row per scheduling task,
 * kept by transition.c), highest priority first, then oldest (by id), keeping
 * the tasks whose job labels are all among the runner's labels (jsonb
 * containment), whose retry backoff is over and whose concurrency key (SPEC
 * §14) has a free slot as far as this snapshot sees, and locks their job_task
 * rows FOR NO KEY UPDATE SKIP LOCKED (not blocked by the witness locks of
 * schedule.c, which only completions honour), so concurrent runners never
 * wait for each other and never get the same task.  Each task is then
 * claimed by transition.c (pl_tr_claim: `creating`, or with start => true
 * `active` at once with start_at set (SPEC §16), the runner recorded, a
 * fresh token returned once and stored as a digest, the queue row deleted,
 * the slot taken, an event), which may refuse a task with a key: its slots
 * are all taken, or another runner is taking one right now.  Such a task is
 * left scheduling and the pick is repeated, without it, for the rest of max
 * (at most PICK_ROUNDS picks).  A claim of one task uses a generic plan
 * (a custom plan per claim was a fifth of the unbatched lifecycle's CPU);
 * see pick_one below.  The params handed to the runner are the
 * task's params fixed at run start, overlaid with the run's runtime envs as
 * they are now and the system params.
 *
 * Locks: the picked job task rows (T), and C(key) of the keys claimed, try
 * only (lock.c).  No run-level lock: a concurrent cancel locks the same rows
 * and sees the claim's result after it commits.  READ COMMITTED only: the
 * slot count must see slots taken by claims that committed before C(key).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"

#include "defcheck.h"
#include "token.h"
#include "transition.h"
#include "util.h"

#define PICK_ROUNDS 3

/* the pick: $1 the runner's labels, $2 the ids refused so far, LIMIT as given */
#define PICK_SQL(LIMIT) \
	"SELECT t.id, t.pipeline_task_id, q.concurrency_key" \
	" FROM pipeline.job_queue q JOIN pipeline.job_task t ON t.id = q.job_task_id" \
	" WHERE q.labels <@ $1 AND q.job_task_id <> ALL ($2)" \
	"   AND (q.concurrency_key IS NULL" \
	"        OR (SELECT count(*) FROM pipeline.concurrency_slot s" \
	"             JOIN pipeline.job_task h ON h.id = s.job_task_id" \
	"             WHERE s.key = q.concurrency_key) < q.concurrency_limit)" \
	"   AND t.stage = 'scheduling' AND (t.retry_at IS NULL OR t.retry_at <= now())" \
	" ORDER BY q.priority DESC, q.job_task_id LIMIT " LIMIT \
	" FOR NO KEY UPDATE OF t SKIP LOCKED"

PG_FUNCTION_INFO_V1(pl_claim_job_tasks);
Datum
pl_claim_job_tasks(PG_FUNCTION_ARGS)
{
	/*
	 * Two plans of the pick.  One task (a runner with one free slot, the
	 * common claim): LIMIT 1 and the generic plan, which walks the pick index
	 * for any queue long enough to matter, planned once.  Several: LIMIT $3,
	 * planned for each call by the plan cache with the actual limit (a
	 * generic plan cannot know it and may sort the whole queue instead), a
	 * cost shared by the tasks the call claims.
	 */
	static PlStmt pick_one = {
		PICK_SQL("1"), 2, {JSONBOID, INT8ARRAYOID}, PL_GENERIC
	};
	static PlStmt pick_many = {
		PICK_SQL("$3"), 3, {JSONBOID, INT8ARRAYOID, INT4OID}
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *runner;
	int32		max;
	Jsonb	   *labels;
	bool		start;
	int			claimed = 0;
	int			nrefused = 0;
	Datum	   *refused;
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
	pl_require_read_committed("claim_job_tasks");

	/* start (SPEC §16): claimed tasks go straight to active */
	start = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);

	InitMaterializedSRF(fcinfo, 0);
	outer = pl_spi_connect();
	refused = palloc(sizeof(Datum) * max * PICK_ROUNDS);

	for (int round = 0; round < PICK_ROUNDS && claimed < max; round++)
	{
		Datum		v[3];
		int			n;
		int			refused_now = 0;
		int64	   *ids;
		int64	   *runs;
		char	  **keys;

		v[0] = JsonbPGetDatum(labels);
		v[1] = PointerGetDatum(construct_array(refused, nrefused, INT8OID, 8, FLOAT8PASSBYVAL,
											   TYPALIGN_DOUBLE));
		v[2] = Int32GetDatum(max - claimed);
		pl_exec(max - claimed == 1 ? &pick_one : &pick_many, v, NULL, 0);
		n = (int) SPI_processed;
		if (n == 0)
			break;
		ids = palloc(sizeof(int64) * n);
		runs = palloc(sizeof(int64) * n);
		keys = palloc(sizeof(char *) * n);
		for (int i = 0; i < n; i++)
		{
			ids[i] = pl_col_int64(i, 1);
			runs[i] = pl_col_int64(i, 2);
			keys[i] = pl_col_text(i, 3);
		}

		for (int i = 0; i < n; i++)
		{
			char	   *token = pl_token_new(runs[i]);
			Datum		values[6];
			bool		nulls[6] = {false, false, false, false, false, false};
			PlClaimed	got;
			MemoryContext old;

			/* the change, its slot, its event and its announcement: transition.c */
			if (!pl_tr_claim(ids[i], runner, token, keys[i], start, &got, outer))
			{
				refused[nrefused++] = Int64GetDatum(ids[i]);
				refused_now++;
				continue;
			}
			claimed++;
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
		/* fewer than asked and none refused: the queue has nothing more for us */
		if (refused_now == 0)
			break;
	}
	pl_spi_finish();
	return (Datum) 0;
}

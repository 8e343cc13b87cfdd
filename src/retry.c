/*
 * retry.c: retry_job_task(), re-opening a failed or canceled task of a
 * finished run.  (Automatic retries of a failed task with retries left are a
 * transition: pl_tr_retry_if_left() in transition.c.)
 *
 * Layer: api
 *
 * Locks: A(P) exclusive, the run's task rows by id, the run row R(P), and
 * the sequence lock of a serialized pipeline (lock.c).
 *
 * Fencing: a re-opened task loses its token digest, so the runner that held
 * it gets 28000 on its next report; only the next claim issues a new token.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "jobrow.h"
#include "dagsched.h"
#include "lock.h"
#include "schedule.h"
#include "transition.h"
#include "util.h"

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
	pt = pl_run_of_task(id);
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
		int64		holder = pl_sched_sequence_holder(pname, seqkey, pt);

		if (holder != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("pipeline \"%s\": run " INT64_FORMAT " is unfinished, so run " INT64_FORMAT " cannot be re-opened",
							pname, holder, pt),
					 errdetail("Runs of this pipeline are serialized.")));
	}

	/* re-open the run, then the tasks, then start */
	pl_tr_run(pt, (int) run_stage, PL_ACTIVE, NULL, true, NULL, NULL);
	if (pl_dag_is_run(pt))
	{
		pl_dag_reopen(pt, id);	/* the needs graph says what re-opens (dagsched.c) */
		n = 0;
	}
	for (int i = 0; i < n; i++)
	{
		bool		after;

		if (stages[i] == PL_SUCCEEDED && i != me)
			continue;
		after = (i == me) || sidx[i] > sidx[me] ||
			(sidx[i] == sidx[me] && (par || tidx[i] > tidx[me]));
		if (!after || stages[i] == PL_PENDING)
			continue;
		pl_tr_reopen(ids[i], pt, stages[i]);
	}
	pl_sched_start_next(pt);
	result = pl_job_task_datum(id, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}


/*
 * runctl.c: the SQL surfaces over a run's schedule: next_run() (which tasks'
 * turn has come) and cancel_pipeline_task().
 *
 * Layer: api
 *
 * Locks: next_run() none beyond a plain SELECT's; cancel_pipeline_task()
 * A(P) exclusive, then what schedule.c's cancel takes (open task rows by id,
 * R(P)).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "jobrow.h"
#include "lock.h"
#include "schedule.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * SQL: next_run(pipeline_task_id bigint) RETURNS SETOF pipeline.job_task
 * Read-only; takes no locks beyond those of a plain SELECT.
 */
PG_FUNCTION_INFO_V1(pl_next_run);
Datum
pl_next_run(PG_FUNCTION_ARGS)
{
	static PlStmt run_q = {
		"SELECT stage FROM pipeline.pipeline_task WHERE id = $1", 1, {INT8OID}
	};
	int64		pt;
	Datum		v[1];
	int			n;
	int64	   *ids;
	MemoryContext outer;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("next_run: pipeline_task_id must not be null")));
	pt = PG_GETARG_INT64(0);
	InitMaterializedSRF(fcinfo, 0);
	outer = pl_spi_connect();

	v[0] = Int64GetDatum(pt);
	pl_exec(&run_q, v, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("pipeline task " INT64_FORMAT " does not exist", pt)));
	if (pl_col_stage(0, 1) == PL_ACTIVE)
	{
		n = pl_sched_next_set(pt, &ids);
		for (int i = 0; i < n; i++)
			pl_put_job_task(fcinfo, ids[i], outer);
	}
	pl_spi_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------------
 * SQL: cancel_pipeline_task(id bigint, reason text DEFAULT NULL) RETURNS pipeline_task
 * Locks: A(P) exclusive, then the open task rows by id, then R(P).
 */
PG_FUNCTION_INFO_V1(pl_cancel_pipeline_task);
Datum
pl_cancel_pipeline_task(PG_FUNCTION_ARGS)
{
	static PlStmt row_q = {
		"SELECT pipeline.redact_run(p) FROM pipeline.pipeline_task p WHERE id = $1", 1, {INT8OID}
	};
	int64		pt;
	char	   *reason;
	Datum		v[1];
	Datum		result;
	bool		isnull;
	MemoryContext outer;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("cancel_pipeline_task: id must not be null")));
	pl_require_read_committed("cancel_pipeline_task");
	pt = PG_GETARG_INT64(0);
	reason = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	outer = pl_spi_connect();
	if (reason == NULL)
		reason = psprintf("canceled by %s", GetUserNameFromId(GetOuterUserId(), false));
	pl_lock_run_exclusive(pt);
	pl_sched_cancel_run(pt, reason, true);

	v[0] = Int64GetDatum(pt);
	pl_exec(&row_q, v, NULL, 1);
	result = pl_col(0, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);
	pl_spi_finish();
	(void) outer;
	PG_RETURN_DATUM(result);
}

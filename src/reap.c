/*
 * reap.c: reap(), failing job tasks whose runner went silent or ran past the
 * job's timeout.
 *
 * Layer: api
 *
 * Locks: reap() acts like a runner's completing report: A(P) shared (or
 * exclusive for a canceling task, whose cancel rewrites the run), then the
 * task row FOR UPDATE SKIP LOCKED (a runner reporting right now wins), then
 * what advancing takes (schedule.c).
 *
 * Fencing: a reaped task loses its token digest, so the runner that held it
 * gets 28000 on its next report.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "lock.h"
#include "schedule.h"
#include "transition.h"
#include "util.h"

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
		" WHERE is_open"	/* job_task_open_idx */
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
		pl_tr_job(ids[i], pts[i], stage, target, why);
		if (target == PL_FAILED && pl_tr_retry_if_left(ids[i], pts[i]))
		{
			reaped++;
			continue;
		}
		if (target == PL_CANCELED && !cancels[i])
			continue;			/* went canceling after we looked; next reap */
		pl_sched_after(ids[i], pts[i], stage_index, target, false);
		reaped++;
	}
	pl_spi_finish();
	PG_RETURN_INT32(reaped);
}


/*
 * play.c: play_job_task(), starting a manual task of a dag run (SPEC §13,
 * `when: manual`) whose turn has come.
 *
 * Layer: api
 *
 * Who may play: whoever may execute play_job_task (nothing to PUBLIC; README
 * "Privileges" grants it beside the gate decisions).
 *
 * Locks: like a gate decision, A(P) exclusively first, then the task row,
 * then R(P) (lock.c's order).  The task then goes to scheduling (or, with an
 * audit gate, waits there) as any task whose turn has come.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "jobrow.h"
#include "lock.h"
#include "transition.h"
#include "util.h"

PG_FUNCTION_INFO_V1(pl_play_job_task);
Datum
pl_play_job_task(PG_FUNCTION_ARGS)
{
	static PlStmt lock_q = {
		"SELECT stage, run_when, needs_left, gate,"
		"  COALESCE((audit->>'enable')::boolean, false) AND NOT (gate_result ? 'audit')"
		" FROM pipeline.job_task WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	};
	int64		id;
	int64		pt;
	Datum		v[1];
	bool		isnull;
	PlStage		stage;
	char	   *when;
	int			needs_left;
	bool		gate;
	bool		audit;
	int			run_stage;
	MemoryContext outer;
	Datum		result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("play_job_task: id must not be null")));
	id = PG_GETARG_INT64(0);
	pl_require_read_committed("play_job_task");

	outer = pl_spi_connect();
	pt = pl_run_of_task(id);	/* P0002 if there is no such task */
	if (pt != 0)
		pl_lock_run_exclusive(pt);
	v[0] = Int64GetDatum(id);
	pl_exec(&lock_q, v, NULL, 1);
	stage = pl_col_stage(0, 1);
	when = pl_col_text(0, 2);
	(void) pl_col(0, 3, &isnull);
	needs_left = isnull ? -2 : pl_col_int32(0, 3);
	(void) pl_col(0, 4, &gate);
	gate = !gate;
	audit = pl_col_bool(0, 5);

	if (pt == 0 || when == NULL || strcmp(when, "manual") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is not a manual task", id),
				 errdetail("Only a task with \"when\": \"manual\" is played.")));
	if (stage != PL_PENDING || gate)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is %s; only a manual task waiting to be played can be played",
						id, gate ? "waiting at its audit gate" : pl_stage_names[stage])));
	if (needs_left > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is not waiting to be played: %d of the tasks it needs %s not done",
						id, needs_left, needs_left == 1 ? "is" : "are")));
	run_stage = pl_lock_run_row(pt);
	if (run_stage != PL_ACTIVE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT ": its pipeline task " INT64_FORMAT " is %s",
						id, pt, pl_stage_names[run_stage]),
				 errdetail("Only a task of an active run can be played.")));

	if (audit)
		pl_tr_open_audit_gate(id, pt);
	else
		pl_tr_job(id, pt, PL_PENDING, PL_SCHEDULING, NULL);
	result = pl_job_task_datum(id, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * advance.c: advancing a pipeline task, next-task selection, cancel.
 *
 * ----------------------------------------------------------------------------
 * Locking design
 * ----------------------------------------------------------------------------
 * Three kinds of lock guard a run (pipeline task P):
 *
 *   A(P)  a heavyweight advisory lock on P (pg_locks: advisory, objsubid 20564),
 *         SHARE for runner reports that complete a task, EXCLUSIVE for
 *         operations that rewrite many tasks of the run (cancel, retry, gate
 *         decisions, forced updates, a task reporting "canceled").
 *   T     the row lock of a job task (FOR UPDATE / the UPDATE itself).
 *   R(P)  the row lock of P's pipeline_task row, FOR UPDATE: taken by whoever
 *         may start the next set, fail or finish the run.
 *
 * Lock order, everywhere: A(P) -> T (by id when several) -> R(P).  Nobody
 * takes A after T or R, so these three never form a cycle among themselves.
 * Paths that lock other tasks' rows while holding R (failing a run skips its
 * pending/scheduling tasks; starting the next set) touch only rows whose
 * other lockers never wait for R: claimers (they lock scheduling rows and
 * then only write), witnesses (below) and exclusive-A holders (excluded by
 * our shared A).
 *
 * Fan-in: "the next stage starts exactly once".  The naive rule -- after
 * completing my task, start the next stage if no sibling is incomplete -- is
 * wrong under READ COMMITTED: two siblings completing at once each see the
 * other still running (its change is uncommitted) and nobody advances.  The
 * textbook fix, taking R for every completion, is correct but holds R from
 * the first completion through commit and fsync, so completions of one run
 * are serialized (measured in DESIGN-NOTES.md as the lifecycle bottleneck).
 *
 * Here a completion of task X in stage S does:
 *   0. Lock X's row FOR UPDATE (every completing report does; reports that
 *      do not complete a task, heartbeats and claims lock FOR NO KEY UPDATE).
 *   1. Look for a *witness*: a sibling W in S that is still open and started
 *      (scheduling .. canceling, or waiting at a gate) and that no one is
 *      completing right now, and lock it FOR KEY SHARE:
 *        SELECT .. FOR KEY SHARE SKIP LOCKED LIMIT 1
 *      KEY SHARE conflicts only with FOR UPDATE, i.e. only with W's own
 *      completion: rows being completed are skipped, and W's other reports
 *      (active, heartbeats) never wait for us.  If there is a witness, X is
 *      certainly not the last: W's completion must lock W FOR UPDATE, which
 *      waits for our commit, and will then see X complete.  Return without
 *      touching R.
 *   2. Otherwise every open started sibling is being completed by a
 *      concurrent transaction, or there are none.  Take R, then re-read the
 *      stage with a fresh snapshot: if an open started task is still visible,
 *      its transaction is in flight; it will take R after us (it found no
 *      witness either, since our row is locked FOR UPDATE) and see our
 *      commit.  Else start the next set (or finish the run).
 * The run lock is therefore taken only by completions that may be last, so
 * completions inside a wide parallel stage proceed in parallel, and the last
 * ones are serialized exactly where it matters.  SKIP LOCKED never waits and
 * READ COMMITTED re-reads the newest row version after a lock wait, so there
 * is neither deadlock nor serialization failure.  The isolation spec
 * test/isolation/specs/fan_in.spec runs three siblings completing at once in
 * every interleaving.  Callers must use READ COMMITTED (the default); under
 * REPEATABLE READ the functions refuse to run.
 *
 * Next-set selection reads only the open tasks of the run through the partial
 * index job_task_open_idx (stage < 'canceled' OR gate IS NOT NULL), so its cost
 * does not grow with finished stages or tasks.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"

#include "pipeline.h"

#define PL_LOCK_FIELD4 20564	/* 'PT' */

static void
lock_run(int64 pipeline_task_id, LOCKMODE mode)
{
	LOCKTAG		tag;

#ifdef PIPELINE_TEST_NO_LOCKS
	return;						/* see test/isolation/README.md */
#endif
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId,
						 (uint32) (((uint64) pipeline_task_id) >> 32),
						 (uint32) pipeline_task_id,
						 PL_LOCK_FIELD4);
	(void) LockAcquire(&tag, mode, false, false);
}

void
pl_lock_run_shared(int64 pipeline_task_id)
{
	lock_run(pipeline_task_id, ShareLock);
}

void
pl_lock_run_exclusive(int64 pipeline_task_id)
{
	lock_run(pipeline_task_id, ExclusiveLock);
}

/* R(P): lock the pipeline_task row, return its stage (-1 if it does not exist) */
static int
lock_run_row(int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT stage FROM pipeline.pipeline_task WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		return -1;
	return (int) pl_col_stage(0, 1);
}

/* Set the stage of a pipeline task (row already locked) and write its event. */
static void
set_run_stage(int64 pipeline_task_id, PlStage old_stage, PlStage new_stage, const char *message)
{
	static PlStmt upd = {
		"UPDATE pipeline.pipeline_task SET stage = $2::pipeline.task_stage,"
		" message = COALESCE($3, message),"
		" start_at = CASE WHEN $2 = 'active' THEN COALESCE(start_at, now()) ELSE start_at END,"
		" end_at = CASE WHEN $2::pipeline.task_stage >= 'canceled' THEN COALESCE(end_at, now())"
		"          ELSE NULL END"
		" WHERE id = $1 RETURNING pipeline_name, sequence_key",
		3, {INT8OID, TEXTOID, TEXTOID}
	};
	Datum		v[3];
	bool		n[3] = {false, false, message == NULL};
	char	   *pipeline_name;
	char	   *seqkey;

	v[0] = Int64GetDatum(pipeline_task_id);
	v[1] = CStringGetTextDatum(pl_stage_names[new_stage]);
	v[2] = message ? CStringGetTextDatum(message) : (Datum) 0;
	pl_exec(&upd, v, n, 0);
	pipeline_name = pl_col_text(0, 1);
	seqkey = pl_col_text(0, 2);
	if (old_stage != new_stage)
		pl_event_pipeline_task(pipeline_task_id, (int) old_stage, new_stage);
	/* a serialized run that finishes lets the next queued one start */
	if (seqkey && pl_stage_complete(new_stage) && !pl_stage_complete(old_stage))
		pl_start_queued(pipeline_name, seqkey);
}

/*
 * Change the stage of a job task whose row the caller has locked, and write
 * the event.  message NULL keeps the old message.
 */
void
pl_set_job_task_stage(int64 id, int64 pipeline_task_id, PlStage old_stage,
					  PlStage new_stage, const char *message)
{
	/* the change and its event in one statement ($4: the old stage) */
	static PlStmt upd = {
		"WITH u AS ("
		" UPDATE pipeline.job_task SET stage = $2::pipeline.task_stage,"
		"  message = COALESCE($3, message), updated_at = now(),"
		"  gate = CASE WHEN $2::pipeline.task_stage >= 'canceled' THEN NULL ELSE gate END,"
		"  start_at = CASE WHEN $2 = 'active' THEN COALESCE(start_at, now()) ELSE start_at END,"
		"  end_at = CASE WHEN $2::pipeline.task_stage >= 'canceled' THEN COALESCE(end_at, now())"
		"           ELSE end_at END"
		" WHERE id = $1 RETURNING *),"
		" e AS ("
		" INSERT INTO pipeline.event (kind, object_id, pipeline_task_id, old_stage, new_stage, payload)"
		" SELECT 'job_task', u.id, u.pipeline_task_id, $4::pipeline.task_stage, u.stage,"
		" " PL_TASK_PAYLOAD_SQL("u", "$4")
		"  FROM u WHERE u.stage <> $4::pipeline.task_stage"
		" RETURNING id)"
		" SELECT (SELECT e.id FROM e), " PL_HOOKS_IF_ANY_SQL("u")
		" FROM u",
		4, {INT8OID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		v[4];
	bool		n[4] = {false, false, message == NULL, false};
	bool		isnull;

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(pl_stage_names[new_stage]);
	v[2] = message ? CStringGetTextDatum(message) : (Datum) 0;
	v[3] = CStringGetTextDatum(pl_stage_names[old_stage]);
	pl_exec(&upd, v, n, 1);
	if (SPI_processed == 1)
	{
		(void) pl_col(0, 1, &isnull);
		if (!isnull)
		{
			int64		event_id = pl_col_int64(0, 1);
			Jsonb	   *hooks = pl_col_jsonb(0, 2);

			pl_announce_event(event_id, pipeline_task_id, id, hooks, new_stage);
		}
	}
}

/* Open an audit gate on a pending task: it stays pending, gate = 'audit'. */
static void
open_audit_gate(int64 id, int64 pipeline_task_id)
{
	static PlStmt upd = {
		"UPDATE pipeline.job_task SET gate = 'audit', updated_at = now() WHERE id = $1",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	pl_exec(&upd, v, NULL, 0);
	/* not a stage change, but listeners must learn that a gate waits */
	pl_event_job_task(id, pipeline_task_id, PL_PENDING, PL_PENDING);
}

/*
 * The open tasks of the first open stage of the run, in task order.
 * Columns: id, stage, gate, is_parallel, audit gate enabled and not yet passed.
 */
static void
read_first_open_stage(int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT id, stage, gate, is_parallel,"
		"  COALESCE((audit->>'enable')::boolean, false) AND NOT (gate_result ? 'audit')"
		" FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 AND (stage < 'canceled' OR gate IS NOT NULL)"
		"   AND stage_index = (SELECT min(stage_index) FROM pipeline.job_task"
		"                       WHERE pipeline_task_id = $1"
		"                         AND (stage < 'canceled' OR gate IS NOT NULL))"
		" ORDER BY task_index",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 0);
}

/*
 * From the rows of read_first_open_stage(): how many of the first rows make
 * up the next set.  0 if something in the stage is started or waits at a
 * gate, or there is no open stage.
 */
static int
next_set_size(void)
{
	uint64		n = SPI_processed;
	bool		isnull;

	if (n == 0)
		return 0;
	for (uint64 i = 0; i < n; i++)
	{
		PlStage		s = pl_col_stage(i, 2);

		(void) pl_col(i, 3, &isnull);
		if (pl_stage_started(s) || !isnull || s != PL_PENDING)
			return 0;
	}
	return pl_col_bool(0, 4) ? (int) n : 1;
}

/*
 * Start the next set of the run, or finish it.  Caller holds R(P) and the
 * run is active.
 */
void
pl_start_next(int64 pipeline_task_id)
{
	int			n;
	int64	   *ids;
	bool	   *gated;

	read_first_open_stage(pipeline_task_id);
	if (SPI_processed == 0)
	{
		set_run_stage(pipeline_task_id, PL_ACTIVE, PL_SUCCEEDED, NULL);
		return;
	}
	n = next_set_size();
	if (n == 0)
		return;
	/* copy out: the updates below replace SPI_tuptable */
	ids = palloc(sizeof(int64) * n);
	gated = palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		ids[i] = pl_col_int64(i, 1);
		gated[i] = pl_col_bool(i, 5);
	}
	for (int i = 0; i < n; i++)
	{
		if (gated[i])
			open_audit_gate(ids[i], pipeline_task_id);
		else
			pl_set_job_task_stage(ids[i], pipeline_task_id, PL_PENDING, PL_SCHEDULING, NULL);
	}
	pfree(ids);
	pfree(gated);
}

/*
 * Fail the run after a task failed: the run takes the task's message, tasks
 * not started yet are skipped, running ones may finish.  Caller holds A(P)
 * (shared or exclusive).  Takes R(P), then the rows of the skipped tasks.
 */
static void
fail_run(int64 pipeline_task_id, const char *message)
{
	static PlStmt q = {
		"SELECT id, stage FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 AND (stage IN ('pending', 'scheduling') OR gate IS NOT NULL)"
		" ORDER BY id FOR UPDATE",
		1, {INT8OID}
	};
	static PlStmt clear_gate = {
		"UPDATE pipeline.job_task SET gate = NULL, updated_at = now() WHERE id = $1",
		1, {INT8OID}
	};
	int			run_stage = lock_run_row(pipeline_task_id);
	Datum		v[1];
	int			n;
	int64	   *ids;
	PlStage    *stages;

	if (run_stage < 0 || pl_stage_complete((PlStage) run_stage))
		return;
	set_run_stage(pipeline_task_id, (PlStage) run_stage, PL_FAILED, message);

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	stages = palloc(sizeof(PlStage) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		ids[i] = pl_col_int64(i, 1);
		stages[i] = pl_col_stage(i, 2);
	}
	for (int i = 0; i < n; i++)
	{
		if (stages[i] == PL_PENDING || stages[i] == PL_SCHEDULING)
			pl_set_job_task_stage(ids[i], pipeline_task_id, stages[i], PL_SKIPPED, NULL);
		else
		{
			/* a finished task waiting at its confirm gate: moot now */
			v[0] = Int64GetDatum(ids[i]);
			pl_exec(&clear_gate, v, NULL, 0);
		}
	}
}

/*
 * Cancel a run: pending/scheduling tasks become canceled, creating/active
 * ones canceling (their runners stop them and report canceled).  Caller holds
 * A(P) exclusively.  Takes R(P) and the rows of the open tasks, by id.
 * from_user: refuse (55000) if the run is already finished; otherwise (a task
 * reported canceled) a finished run is left alone.
 */
void
pl_cancel_run(int64 pipeline_task_id, const char *reason, bool from_user)
{
	static PlStmt q = {
		"SELECT id, stage FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 AND (stage < 'canceled' OR gate IS NOT NULL)"
#ifdef PIPELINE_TEST_NO_LOCKS
		" ORDER BY id",			/* the naive read the isolation specs must catch */
#else
		" ORDER BY id FOR UPDATE",
#endif
		1, {INT8OID}
	};
	static PlStmt clear_gate = {
		"UPDATE pipeline.job_task SET gate = NULL, updated_at = now() WHERE id = $1",
		1, {INT8OID}
	};
	int			run_stage = lock_run_row(pipeline_task_id);
	Datum		v[1];
	int			n;
	int64	   *ids;
	PlStage    *stages;

	if (run_stage < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("pipeline task " INT64_FORMAT " does not exist", pipeline_task_id)));
	if (pl_stage_complete((PlStage) run_stage))
	{
		if (from_user)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pipeline task " INT64_FORMAT " is already %s",
							pipeline_task_id, pl_stage_names[run_stage]),
					 errdetail("Only an unfinished run can be canceled.")));
		return;
	}
	set_run_stage(pipeline_task_id, (PlStage) run_stage, PL_CANCELED, reason);

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	stages = palloc(sizeof(PlStage) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		ids[i] = pl_col_int64(i, 1);
		stages[i] = pl_col_stage(i, 2);
	}
	for (int i = 0; i < n; i++)
	{
		switch (stages[i])
		{
			case PL_PENDING:
			case PL_SCHEDULING:
				pl_set_job_task_stage(ids[i], pipeline_task_id, stages[i], PL_CANCELED, reason);
				break;
			case PL_CREATING:
			case PL_ACTIVE:
				pl_set_job_task_stage(ids[i], pipeline_task_id, stages[i], PL_CANCELING, reason);
				break;
			case PL_CANCELING:
				break;
			default:
				v[0] = Int64GetDatum(ids[i]);
				pl_exec(&clear_gate, v, NULL, 0);
				break;
		}
	}
}

/*
 * Step 1 of the fan-in protocol: share-lock an open, started sibling that no
 * one else has locked.  True if one was found.
 */
static bool
lock_witness(int64 pipeline_task_id, int stage_index, int64 self_id)
{
	static PlStmt q = {
		"SELECT 1 FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 AND stage_index = $2 AND id <> $3"
		"   AND (stage < 'canceled' OR gate IS NOT NULL)"
		"   AND (stage > 'pending' OR gate IS NOT NULL)"
		" LIMIT 1 FOR KEY SHARE SKIP LOCKED",
		3, {INT8OID, INT4OID, INT8OID}
	};
	Datum		v[3];

	v[0] = Int64GetDatum(pipeline_task_id);
	v[1] = Int32GetDatum(stage_index);
	v[2] = Int64GetDatum(self_id);
	pl_exec(&q, v, NULL, 1);
	return SPI_processed > 0;
}

static void advance_continue(int64 job_task_id, int64 pipeline_task_id, int stage_index,
							 bool force_trigger);

/* A confirm gate passed: continue as if the task succeeded. */
void
pl_advance_continue(int64 job_task_id, int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT stage_index FROM pipeline.job_task WHERE id = $1", 1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(job_task_id);
	pl_exec(&q, v, NULL, 1);
	advance_continue(job_task_id, pipeline_task_id, pl_col_int32(0, 1), false);
}

/*
 * React to a job task of run P having reached new_stage (its row is updated
 * and locked by us; A(P) is held, exclusively if new_stage is canceled).
 *
 * gate_waiting: the task now waits at its confirm gate: nothing moves.
 */
void
pl_advance_after(int64 job_task_id, int64 pipeline_task_id, int stage_index,
				 PlStage new_stage, bool force_trigger)
{
	static PlStmt q = {
		"SELECT ignore_failed, gate, message FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}
	};
	Datum		v[1];
	bool		ignore_failed;
	bool		gate_waiting;
	char	   *message;

	v[0] = Int64GetDatum(job_task_id);
	pl_exec(&q, v, NULL, 1);
	ignore_failed = pl_col_bool(0, 1);
	(void) pl_col(0, 2, &gate_waiting);
	gate_waiting = !gate_waiting;
	message = pl_col_text(0, 3);
	pl_advance_after_known(job_task_id, pipeline_task_id, stage_index, new_stage,
						   force_trigger, ignore_failed, gate_waiting, message);
}

/*
 * The message of a run failed by a task: "stage.task: <the task's message>",
 * e.g. "build.compile: exit code 1" (README "Notes on the contract").  Read
 * only on this path, so status updates that do not fail a run pay nothing.
 */
static char *
failed_run_message(int64 job_task_id, const char *message)
{
	static PlStmt q = {
		"SELECT stage_name || '.' || task_name FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}
	};
	Datum		v[1];
	char	   *task;

	v[0] = Int64GetDatum(job_task_id);
	pl_exec(&q, v, NULL, 1);
	task = SPI_processed > 0 ? pl_col_text(0, 1) : psprintf("job task " INT64_FORMAT, job_task_id);
	if (message)
		return psprintf("%s: %s", task, message);
	return psprintf("%s: job task " INT64_FORMAT " failed", task, job_task_id);
}

/* pl_advance_after() when the caller already read the task's row. */
void
pl_advance_after_known(int64 job_task_id, int64 pipeline_task_id, int stage_index,
					   PlStage new_stage, bool force_trigger, bool ignore_failed,
					   bool gate_waiting, const char *message)
{
	if (gate_waiting && pl_stage_complete(new_stage))
		return;					/* a waiting confirm gate waits */

	if (new_stage == PL_CANCELED)
	{
		pl_cancel_run(pipeline_task_id,
					  message ? message : psprintf("job task " INT64_FORMAT " was canceled",
												   job_task_id),
					  false);
		return;
	}
	if (new_stage == PL_FAILED && !ignore_failed)
	{
		fail_run(pipeline_task_id, failed_run_message(job_task_id, message));
		return;
	}
	if (!pl_stage_complete(new_stage) && !force_trigger)
		return;
	advance_continue(job_task_id, pipeline_task_id, stage_index, force_trigger);
}

/*
 * The task no longer holds its stage back (it succeeded, was skipped, failed
 * with ignore_failed, or its confirm gate passed): start the next set if this
 * was the last open task of the stage.  See the fan-in protocol above.
 */
static void
advance_continue(int64 job_task_id, int64 pipeline_task_id, int stage_index, bool force_trigger)
{
	int			run_stage;


#ifdef PIPELINE_TEST_NO_LOCKS
	/* the naive rule the isolation specs must catch: no witness, no R(P) */
	{
		static PlStmt q_run = {
			"SELECT stage FROM pipeline.pipeline_task WHERE id = $1", 1, {INT8OID}
		};
		Datum		rv[1];

		rv[0] = Int64GetDatum(pipeline_task_id);
		pl_exec(&q_run, rv, NULL, 1);
		if (SPI_processed == 0 || pl_col_stage(0, 1) != PL_ACTIVE)
			return;
		pl_start_next(pipeline_task_id);
		return;
	}
#endif
	if (!force_trigger && lock_witness(pipeline_task_id, stage_index, job_task_id))
		return;

	run_stage = lock_run_row(pipeline_task_id);
	if (run_stage != PL_ACTIVE)
		return;					/* failed, canceled or queued: nothing new starts */
	pl_start_next(pipeline_task_id);
}

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
		read_first_open_stage(pt);
		n = next_set_size();
		ids = palloc(sizeof(int64) * (n + 1));
		for (int i = 0; i < n; i++)
			ids[i] = pl_col_int64(i, 1);
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
	pl_cancel_run(pt, reason, true);

	v[0] = Int64GetDatum(pt);
	pl_exec(&row_q, v, NULL, 1);
	result = pl_col(0, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);
	pl_spi_finish();
	(void) outer;
	PG_RETURN_DATUM(result);
}

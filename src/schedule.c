/*
 * schedule.c: what runs next.  Starting the next set of a run, failing,
 * canceling and finishing runs, the fan-in protocol, next-set selection for
 * next_run(), and serialized runs (a finishing run starts the next queued
 * one).  A run that ends calls pl_sched_run_ended_hook (chain.c starts the
 * run's next pipelines through it: schedule.h says why it is a hook).
 *
 * Layer: scheduling (called by the API files; calls transitions and storage
 * helpers only: every stage change goes through transition.c)
 *
 * Locks: A(P), T and R(P) as lock.c describes, in its order.
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
 * index job_task_open_idx, so its cost does not grow with finished stages or
 * tasks.  Its predicate is the stored generated column is_open (stage <
 * 'canceled' OR gate IS NOT NULL), so that status updates that keep a task
 * open change no indexed column and stay HOT; queries name is_open for the
 * planner to use the index.
 *
 * Runs of pipelines that use SPEC §13 (pipeline_task.dag) are scheduled by
 * dagsched.c on unfinished-needs counters instead; this file dispatches to it
 * (dag_after: R(P), the counters, and finishing the run when it has ended)
 * and keeps the run ends (finish_run, serialized runs) for both kinds.  A
 * completing report tells which kind its task is (PlReported.dag), so stage
 * runs pay no extra query.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "dagsched.h"
#include "lock.h"
#include "schedule.h"
#include "transition.h"
#include "util.h"

/* The unfinished run holding a serialized pipeline's sequence (other than except), or 0. */
int64
pl_sched_sequence_holder(const char *pipeline, const char *key, int64 except)
{
	static PlStmt q = {
		"SELECT id FROM pipeline.pipeline_task"
		" WHERE pipeline_name = $1 AND sequence_key = $2 AND stage < 'canceled' AND id <> $3"
		" ORDER BY id LIMIT 1", 3, {TEXTOID, TEXTOID, INT8OID}
	};
	Datum		v[3];

	v[0] = CStringGetTextDatum(pipeline);
	v[1] = CStringGetTextDatum(key);
	v[2] = Int64GetDatum(except);
	pl_exec(&q, v, NULL, 1);
	return SPI_processed ? pl_col_int64(0, 1) : 0;
}

/*
 * A serialized run finished: start the oldest queued run of the same
 * sequence, if any.  Called with R of the finished run held; takes
 * S(pipeline, key), then the queued run's row (its R).
 */
static void
start_queued(const char *pipeline, const char *key)
{
	static PlStmt q = {
		"SELECT id, stage FROM pipeline.pipeline_task"
		" WHERE pipeline_name = $1 AND sequence_key = $2 AND stage < 'canceled'"
		" ORDER BY id LIMIT 1 FOR UPDATE", 2, {TEXTOID, TEXTOID}
	};
	Datum		v[2];
	int64		next;

	pl_lock_sequence(pipeline, key);
	v[0] = CStringGetTextDatum(pipeline);
	v[1] = CStringGetTextDatum(key);
	pl_exec(&q, v, NULL, 1);
	/* runs start in id order: the oldest unfinished one is either running or next */
	if (SPI_processed == 0 || pl_col_stage(0, 2) != PL_PENDING)
		return;
	next = pl_col_int64(0, 1);
	pl_tr_run(next, PL_PENDING, PL_ACTIVE, NULL, false, NULL, NULL);
	pl_sched_start_next(next);
}

/* set by chain.c at load time: see pl_sched_run_ended_hook in schedule.h */
PlRunEndedHook pl_sched_run_ended_hook = NULL;

/*
 * A run leaves an open stage for a complete one (caller holds R(P)); a
 * serialized run that finishes lets the next queued one start, then the
 * run-ended hook starts its next pipelines (SPEC §15), in this transaction.
 */
static void
finish_run(int64 pipeline_task_id, PlStage old_stage, PlStage new_stage, const char *message)
{
	char	   *pipeline_name;
	char	   *seqkey;

	pl_tr_run(pipeline_task_id, (int) old_stage, new_stage, message, false,
			  &pipeline_name, &seqkey);
	if (!pl_stage_complete(new_stage) || pl_stage_complete(old_stage))
		return;
	if (seqkey)
		start_queued(pipeline_name, seqkey);
	if (pl_sched_run_ended_hook)
		pl_sched_run_ended_hook(pipeline_task_id, new_stage);
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
		" WHERE pipeline_task_id = $1 AND is_open"
		"   AND stage_index = (SELECT min(stage_index) FROM pipeline.job_task"
		"                       WHERE pipeline_task_id = $1"
		"                         AND is_open)"
		" ORDER BY task_index",
		1, {INT8OID}, PL_GENERIC
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

static void dag_after(int64 pipeline_task_id, int64 job_task_id, bool fail, const char *message);
static bool dag_failure_allowed(int64 job_task_id);

/*
 * Start the next set of a stage run, or finish it.  Caller holds R(P) and
 * the run is active.
 */
static void
start_next_stage(int64 pipeline_task_id)
{
	int			n;
	int64	   *ids;
	bool	   *gated;

	read_first_open_stage(pipeline_task_id);
	if (SPI_processed == 0)
	{
		finish_run(pipeline_task_id, PL_ACTIVE, PL_SUCCEEDED, NULL);
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
			pl_tr_open_audit_gate(ids[i], pipeline_task_id);
		else
			pl_tr_job(ids[i], pipeline_task_id, PL_PENDING, PL_SCHEDULING, NULL);
	}
	pfree(ids);
	pfree(gated);
}

/*
 * Start the next set of the run, or finish it (a dag run: give every ready
 * task its turn, dagsched.c).  Caller holds R(P) and the run is active.
 */
void
pl_sched_start_next(int64 pipeline_task_id)
{
	if (pl_dag_is_run(pipeline_task_id))
		dag_after(pipeline_task_id, 0, false, NULL);
	else
		start_next_stage(pipeline_task_id);
}

/*
 * Run q (a SELECT id, stage ... WHERE pipeline_task_id = $1) and copy its rows
 * out of SPI_tuptable, so the caller may run other statements while it walks
 * them.  Returns the number of rows.  Locks: whatever q takes.
 */
static int
read_run_tasks(PlStmt *q, int64 pipeline_task_id, int64 **ids, PlStage **stages)
{
	Datum		v[1];
	int			n;

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(q, v, NULL, 0);
	n = (int) SPI_processed;
	*ids = palloc(sizeof(int64) * (n + 1));
	*stages = palloc(sizeof(PlStage) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		(*ids)[i] = pl_col_int64(i, 1);
		(*stages)[i] = pl_col_stage(i, 2);
	}
	return n;
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
		" WHERE pipeline_task_id = $1 AND is_open AND (stage IN ('pending', 'scheduling') OR gate IS NOT NULL)"
		" ORDER BY id FOR UPDATE",
		1, {INT8OID}
	};
	int			run_stage = pl_lock_run_row(pipeline_task_id);
	int			n;
	int64	   *ids;
	PlStage    *stages;

	if (run_stage < 0 || pl_stage_complete((PlStage) run_stage))
		return;
	finish_run(pipeline_task_id, (PlStage) run_stage, PL_FAILED, message);

	n = read_run_tasks(&q, pipeline_task_id, &ids, &stages);
	for (int i = 0; i < n; i++)
	{
		if (stages[i] == PL_PENDING || stages[i] == PL_SCHEDULING)
			pl_tr_job(ids[i], pipeline_task_id, stages[i], PL_SKIPPED, NULL);
		else
		{
			/* a finished task waiting at its confirm gate: moot now */
			pl_tr_clear_gate(ids[i]);
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
pl_sched_cancel_run(int64 pipeline_task_id, const char *reason, bool from_user)
{
	static PlStmt q = {
		"SELECT id, stage FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 AND is_open"
#ifdef PIPELINE_TEST_NO_LOCKS
		" ORDER BY id",			/* the naive read the isolation specs must catch */
#else
		" ORDER BY id FOR UPDATE",
#endif
		1, {INT8OID}
	};
	int			run_stage = pl_lock_run_row(pipeline_task_id);
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
	finish_run(pipeline_task_id, (PlStage) run_stage, PL_CANCELED, reason);

	n = read_run_tasks(&q, pipeline_task_id, &ids, &stages);
	for (int i = 0; i < n; i++)
	{
		switch (stages[i])
		{
			case PL_PENDING:
			case PL_SCHEDULING:
				pl_tr_job(ids[i], pipeline_task_id, stages[i], PL_CANCELED, reason);
				break;
			case PL_CREATING:
			case PL_ACTIVE:
				pl_tr_job(ids[i], pipeline_task_id, stages[i], PL_CANCELING, reason);
				break;
			case PL_CANCELING:
				break;
			default:
				pl_tr_clear_gate(ids[i]);
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
		"   AND is_open"
		"   AND (stage > 'pending' OR gate IS NOT NULL)"
		" LIMIT 1 FOR KEY SHARE SKIP LOCKED",
		3, {INT8OID, INT4OID, INT8OID}, PL_GENERIC
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
pl_sched_continue(int64 job_task_id, int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT stage_index, needs_left IS NOT NULL FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}, PL_GENERIC
	};
	Datum		v[1];

	v[0] = Int64GetDatum(job_task_id);
	pl_exec(&q, v, NULL, 1);
	if (pl_col_bool(0, 2))
		dag_after(pipeline_task_id, job_task_id, false, NULL);
	else
		advance_continue(job_task_id, pipeline_task_id, pl_col_int32(0, 1), false);
}

/*
 * React to a job task of run P having reached new_stage (its row is updated
 * and locked by us; A(P) is held, exclusively if new_stage is canceled).
 *
 * gate_waiting: the task now waits at its confirm gate: nothing moves.
 */
void
pl_sched_after(int64 job_task_id, int64 pipeline_task_id, int stage_index,
				 PlStage new_stage, bool force_trigger)
{
	static PlStmt q = {
		"SELECT ignore_failed, gate, message, needs_left IS NOT NULL FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}, PL_GENERIC
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
	pl_sched_after_known(job_task_id, pipeline_task_id, stage_index, new_stage,
						 force_trigger, ignore_failed, gate_waiting, message, pl_col_bool(0, 4));
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

/* pl_sched_after() when the caller already read the task's row. */
void
pl_sched_after_known(int64 job_task_id, int64 pipeline_task_id, int stage_index,
					 PlStage new_stage, bool force_trigger, bool ignore_failed,
					 bool gate_waiting, const char *message, bool dag)
{
	if (gate_waiting && pl_stage_complete(new_stage))
		return;					/* a waiting confirm gate waits */

	if (new_stage == PL_CANCELED)
	{
		pl_sched_cancel_run(pipeline_task_id,
					  message ? message : psprintf("job task " INT64_FORMAT " was canceled",
												   job_task_id),
					  false);
		return;
	}
	if (dag)
	{
		bool		fail = new_stage == PL_FAILED && !ignore_failed &&
			!dag_failure_allowed(job_task_id);

		if (fail || pl_stage_complete(new_stage))
			dag_after(pipeline_task_id, job_task_id, fail, message);
		else if (force_trigger)
			dag_after(pipeline_task_id, 0, false, NULL);
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
		start_next_stage(pipeline_task_id);
		return;
	}
#endif
	if (!force_trigger && lock_witness(pipeline_task_id, stage_index, job_task_id))
		return;

	run_stage = pl_lock_run_row(pipeline_task_id);
	if (run_stage != PL_ACTIVE)
		return;					/* failed, canceled or queued: nothing new starts */
	start_next_stage(pipeline_task_id);
}

/*
 * A dag run after task job_task_id (0: none) completed, failed (fail) or its
 * gate passed: take R(P), let dagsched.c move the counters, and finish the
 * run if it has ended.  Caller holds A(P) and the task's row (lock.c order).
 */
static void
dag_after(int64 pipeline_task_id, int64 job_task_id, bool fail, const char *message)
{
	int			run_stage;
	char	   *failed_message;
	bool		end;

#ifdef PIPELINE_TEST_NO_LOCKS
	{
		static PlStmt q_run = {
			"SELECT stage FROM pipeline.pipeline_task WHERE id = $1", 1, {INT8OID}
		};
		Datum		rv[1];

		rv[0] = Int64GetDatum(pipeline_task_id);
		pl_exec(&q_run, rv, NULL, 1);
		run_stage = SPI_processed ? (int) pl_col_stage(0, 1) : -1;
	}
#else
	run_stage = pl_lock_run_row(pipeline_task_id);
#endif
	if (run_stage != PL_ACTIVE)
		return;					/* canceled, finished or queued: nothing new starts */
	if (fail)
		end = pl_dag_fail(pipeline_task_id, job_task_id,
						  failed_run_message(job_task_id, message), &failed_message);
	else
		end = pl_dag_advance(pipeline_task_id, job_task_id, &failed_message);
	if (end)
		finish_run(pipeline_task_id, PL_ACTIVE, failed_message ? PL_FAILED : PL_SUCCEEDED,
				   failed_message);
}

/* A failed task of a dag run that does not fail it: a non-blocking manual task (allow_failure). */
static bool
dag_failure_allowed(int64 job_task_id)
{
	static PlStmt q = {
		"SELECT run_when = 'manual' AND NOT blocking FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(job_task_id);
	pl_exec(&q, v, NULL, 1);
	return SPI_processed > 0 && pl_col_bool(0, 1);
}


/*
 * The next set of an active run, for next_run(): the ids of the tasks whose
 * turn has come, in *ids (palloc'd).  Read-only; no locks beyond a plain
 * SELECT's.  Returns how many.
 */
int
pl_sched_next_set(int64 pipeline_task_id, int64 **ids)
{
	int			n;

	if (pl_dag_is_run(pipeline_task_id))
		return pl_dag_next_set(pipeline_task_id, ids);
	read_first_open_stage(pipeline_task_id);
	n = next_set_size();
	*ids = palloc(sizeof(int64) * (n + 1));
	for (int i = 0; i < n; i++)
		(*ids)[i] = pl_col_int64(i, 1);
	return n;
}

/*
 * dagsched.c: scheduling a dag run (a run of a pipeline that uses SPEC §13
 * needs/matrix/when/if; pipeline_task.dag): unfinished-needs counters, whose
 * turn has come, `when`, failing with always/on_failure, the end of the run.
 * Stage runs never come here (schedule.c keeps their witness protocol).
 *
 * Layer: scheduling (called by schedule.c, which owns run ends, and by the
 * API files for play and retry; calls transitions and storage helpers only)
 *
 * Counters.  Each job task of a dag run carries needs (ids it needs),
 * downstream (ids that need it) and needs_left, set at creation (dag.c).
 * When a task is resolved -- it succeeded, was skipped, failed with
 * ignore_failed, its confirm gate passed, or a failure swept it -- its own
 * needs_left becomes -1 (so resolving twice, e.g. a forced re-report, does
 * nothing) and each downstream task's needs_left is decremented by one
 * UPDATE.  The task brought to 0 is the one whose turn has come: started
 * (scheduling, or its audit gate opened), left waiting or skipped.  A
 * blocking manual task waits for play_job_task() holding its dependents and
 * the run.  A non-blocking manual task, and an on_failure task of a healthy
 * run, are "parked": they wait (for a play, for a failure) without holding
 * anything back -- they are resolved at once (needs_left -1, stage pending),
 * so their dependents go on.  In a failing run anything but always and
 * on_failure is skipped.  Cost: O(out-edges) per completion.
 *
 * Locks.  Every path here runs with R(P) held (the caller took it after
 * A(P) and the completing task's row T: lock.c's order), and only then locks
 * the dependents' rows (the decrement UPDATE, the sweep's FOR UPDATE).  So
 * the completions of one dag run are serialized on R(P) from the decrement
 * to commit: two needed tasks completing at the same instant decrement one
 * after the other, the second (after its lock wait, READ COMMITTED re-reads
 * the committed counter) brings it to 0 and starts the dependent exactly
 * once; nobody waits for R(P) while holding a dependent's row (claimers lock
 * only scheduling rows and never take R), so there is no deadlock, and no
 * serialization error under READ COMMITTED.  test/isolation/specs/
 * dag_fan_in.spec and dag_diamond.spec run it in every interleaving.
 *
 * End of the run.  After its changes, a path asks whether anything is still
 * live: a task started (scheduling .. canceling), at a gate, or pending with
 * its turn come and not parked (needs_left 0: a blocking manual task).  If
 * nothing is, the run ends: what is
 * still pending (parked tasks, their dependents) is skipped and the caller
 * (schedule.c) finishes the run succeeded, or failed with the message of the
 * failure if the run was failing.  This reads the run's open tasks only
 * (job_task_open_idx), O(open tasks).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "dagsched.h"
#include "transition.h"
#include "util.h"

/* Is P a dag run?  Read-only. */
bool
pl_dag_is_run(int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT dag FROM pipeline.pipeline_task WHERE id = $1", 1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 1);
	return SPI_processed > 0 && pl_col_bool(0, 1);
}

/*
 * The failure message of a failing dag run (kept as the run's message while
 * its always/on_failure tasks run), or NULL if it is healthy.
 */
static char *
failing_message(int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT failing, COALESCE(message, 'failed') FROM pipeline.pipeline_task WHERE id = $1",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 1);
	return (SPI_processed > 0 && pl_col_bool(0, 1)) ? pl_col_text(0, 2) : NULL;
}

/* A growable list of ids (the work list of resolved tasks). */
typedef struct IdList
{
	int			n;
	int			cap;
	int64	   *ids;
} IdList;

static void
push(IdList *l, int64 id)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->ids = l->ids ? repalloc(l->ids, sizeof(int64) * l->cap) : palloc(sizeof(int64) * l->cap);
	}
	l->ids[l->n++] = id;
}

/*
 * The turn of pending task id has come (its needs are resolved).  Caller
 * holds R(P).  failing: the run is failing.  A skipped task goes on the work
 * list (its dependents are told).
 */
static void
turn_comes(int64 pipeline_task_id, int64 id, const char *when, bool audit_pending, bool blocking,
		   bool failing, IdList *work)
{
	bool		runs_now;

	if (failing)
		runs_now = strcmp(when, "always") == 0 || strcmp(when, "on_failure") == 0;
	else
		runs_now = strcmp(when, "on_success") == 0 || strcmp(when, "always") == 0;
	if (runs_now)
	{
		if (audit_pending)
			pl_tr_open_audit_gate(id, pipeline_task_id);
		else
			pl_tr_job(id, pipeline_task_id, PL_PENDING, PL_SCHEDULING, NULL);
	}
	else if (failing)
	{
		pl_tr_job(id, pipeline_task_id, PL_PENDING, PL_SKIPPED, NULL);
		push(work, id);
	}
	else if (strcmp(when, "on_failure") == 0 || (strcmp(when, "manual") == 0 && !blocking))
	{
		/*
		 * Parked: it waits (for a failure, for a play) without holding
		 * anything back, so the tasks that need it are told now.
		 */
		push(work, id);
	}
	/* else: a blocking manual task waits for play_job_task, holding its dependents and the run */
}

/*
 * Columns of a task whose turn may have come: id, needs_left, stage, gate,
 * run_when, audit pending, blocking.  needs_left -1 and pending: a parked
 * task (it told its dependents already).
 */
#define DAG_TURN_COLS \
	" t.id, t.needs_left, t.stage, t.gate IS NOT NULL, COALESCE(t.run_when, 'on_success')," \
	" COALESCE((t.audit->>'enable')::boolean, false) AND NOT (t.gate_result ? 'audit'), t.blocking"

/* Walk the rows of a DAG_TURN_COLS query: the pending ones at 0 get their turn. */
static void
turns_of_rows(int64 pipeline_task_id, bool failing, IdList *work)
{
	int			n = (int) SPI_processed;
	int64	   *ids = palloc(sizeof(int64) * (n + 1));
	char	  **whens = palloc(sizeof(char *) * (n + 1));
	bool	   *audit = palloc(sizeof(bool) * (n + 1));
	bool	   *blocking = palloc(sizeof(bool) * (n + 1));
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		if (pl_col_int32(i, 2) > 0 || pl_col_stage(i, 3) != PL_PENDING || pl_col_bool(i, 4))
			continue;
		ids[k] = pl_col_int64(i, 1);
		whens[k] = pl_col_text(i, 5);
		audit[k] = pl_col_bool(i, 6);
		blocking[k] = pl_col_bool(i, 7);
		k++;
	}
	for (int i = 0; i < k; i++)
		turn_comes(pipeline_task_id, ids[i], whens[i], audit[i], blocking[i], failing, work);
}

/*
 * Resolve task id: mark it resolved and decrement its dependents' counters;
 * those brought to 0 get their turn.  Caller holds R(P).
 */
static void
resolve_one(int64 pipeline_task_id, int64 id, bool failing, IdList *work)
{
	static PlStmt mark = {
		"UPDATE pipeline.job_task SET needs_left = -1"
		" WHERE id = $1 AND needs_left IS DISTINCT FROM -1 RETURNING downstream",
		1, {INT8OID}
	};
#ifndef PIPELINE_TEST_NO_LOCKS
	static PlStmt dec = {
		"UPDATE pipeline.job_task t SET needs_left = t.needs_left - 1"
		" WHERE t.id = ANY ($1) AND t.needs_left > 0 RETURNING" DAG_TURN_COLS,
		1, {INT8ARRAYOID}
	};
#else
	/* the naive rule the isolation specs must catch: "are all my needs complete?", read */
	static PlStmt dec = {
		"SELECT" DAG_TURN_COLS " FROM (SELECT t.id,"
		"   (SELECT count(*) FROM pipeline.job_task n WHERE n.id = ANY (t.needs)"
		"     AND n.stage < 'canceled')::int AS needs_left,"
		"   t.stage, t.gate, t.run_when, t.audit, t.gate_result, t.blocking FROM pipeline.job_task t"
		"  WHERE t.id = ANY ($1)) t",
		1, {INT8ARRAYOID}
	};
#endif
	Datum		v[1];
	bool		isnull;
	Datum		down;

	v[0] = Int64GetDatum(id);
	pl_exec(&mark, v, NULL, 1);
	if (SPI_processed == 0)
		return;					/* resolved already */
	down = pl_col(0, 1, &isnull);
	if (isnull)
		return;
	v[0] = down;
	pl_exec(&dec, v, NULL, 0);
	turns_of_rows(pipeline_task_id, failing, work);
}

/* Resolve the tasks of the work list, and those they skip in turn. */
static void
drain(int64 pipeline_task_id, bool failing, IdList *work)
{
	while (work->n > 0)
	{
		int64		id = work->ids[--work->n];

		resolve_one(pipeline_task_id, id, failing, work);
	}
}

/* Give their turn to every pending task whose needs are resolved. */
static void
start_ready(int64 pipeline_task_id, bool failing, IdList *work)
{
	static PlStmt q = {
		"SELECT" DAG_TURN_COLS " FROM pipeline.job_task t"
		" WHERE t.pipeline_task_id = $1 AND t.stage = 'pending' AND t.needs_left <= 0"
		"   AND t.gate IS NULL ORDER BY t.id",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 0);
	turns_of_rows(pipeline_task_id, failing, work);
	drain(pipeline_task_id, failing, work);
}

/*
 * Anything still live in the run?  If not, skip what is still pending and
 * return true: the caller finishes the run.  Caller holds R(P).
 */
static bool
ended(int64 pipeline_task_id, bool failing)
{
	static PlStmt live = {
		"SELECT 1 FROM pipeline.job_task t"
		" WHERE t.pipeline_task_id = $1 AND t.is_open"
		"   AND (t.stage > 'pending' OR t.gate IS NOT NULL"
		"        OR (t.needs_left = 0"
		"            AND (COALESCE(t.run_when, 'on_success') <> 'manual' OR t.blocking)"
		"            AND (COALESCE(t.run_when, 'on_success') <> 'on_failure' OR $2)))"
		" LIMIT 1",
		2, {INT8OID, BOOLOID}
	};
	static PlStmt left = {
		"SELECT id FROM pipeline.job_task WHERE pipeline_task_id = $1 AND stage = 'pending'"
		" ORDER BY id FOR UPDATE",
		1, {INT8OID}
	};
	Datum		v[2];
	int			n;
	int64	   *ids;

	v[0] = Int64GetDatum(pipeline_task_id);
	v[1] = BoolGetDatum(failing);
	pl_exec(&live, v, NULL, 1);
	if (SPI_processed > 0)
		return false;
	pl_exec(&left, v, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	for (int i = 0; i < n; i++)
		ids[i] = pl_col_int64(i, 1);
	for (int i = 0; i < n; i++)
		pl_tr_job(ids[i], pipeline_task_id, PL_PENDING, PL_SKIPPED, NULL);
	return true;
}

/*
 * Advance a dag run after task id (0: none; at the start, a forced trigger,
 * a retry) no longer holds its dependents back.  Caller holds R(P) and the
 * run is active.  Returns true if the run has ended; *failed_message is then
 * the failure's message, or NULL if it succeeded.
 */
bool
pl_dag_advance(int64 pipeline_task_id, int64 id, char **failed_message)
{
	char	   *failing = failing_message(pipeline_task_id);
	IdList		work = {0};

	if (id != 0)
	{
		push(&work, id);
		drain(pipeline_task_id, failing != NULL, &work);
	}
	else
		start_ready(pipeline_task_id, failing != NULL, &work);
	*failed_message = failing;
	return ended(pipeline_task_id, failing != NULL);
}

/*
 * Task id failed (not ignored): the run is failing.  Tasks not started yet
 * are skipped, except always/on_failure ones, which get their turn when their
 * needs are resolved; running tasks may finish.  Caller holds R(P), the run
 * is active.  Returns as pl_dag_advance().
 */
bool
pl_dag_fail(int64 pipeline_task_id, int64 id, const char *message, char **failed_message)
{
	static PlStmt set = {
		"UPDATE pipeline.pipeline_task"
		" SET message = CASE WHEN failing THEN message ELSE $2 END, failing = true WHERE id = $1"
		" RETURNING message",
		2, {INT8OID, TEXTOID}
	};
	static PlStmt sweep = {
		"SELECT id, stage FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1 AND is_open AND (stage IN ('pending', 'scheduling') OR gate IS NOT NULL)"
		"   AND COALESCE(run_when, 'on_success') NOT IN ('always', 'on_failure')"
		" ORDER BY id FOR UPDATE",
		1, {INT8OID}
	};
	Datum		v[2];
	IdList		work = {0};
	int			n;
	int64	   *ids;
	PlStage    *stages;

	v[0] = Int64GetDatum(pipeline_task_id);
	v[1] = CStringGetTextDatum(message);
	pl_exec(&set, v, NULL, 1);
	*failed_message = pl_col_text(0, 1);

	pl_exec(&sweep, v, NULL, 0);
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
			pl_tr_job(ids[i], pipeline_task_id, stages[i], PL_SKIPPED, NULL);
		else
			pl_tr_clear_gate(ids[i]);	/* a finished task at its confirm gate: moot now */
		push(&work, ids[i]);
	}
	push(&work, id);
	drain(pipeline_task_id, true, &work);
	start_ready(pipeline_task_id, true, &work);	/* on_failure tasks that were waiting */
	return ended(pipeline_task_id, true);
}

/*
 * next_run() of a dag run: the pending tasks whose turn has come and that
 * would start now (not a manual task waiting for a play, not an on_failure
 * task of a healthy run).  Read-only.  Usually empty: a dag run starts a task
 * as soon as its turn comes.
 */
int
pl_dag_next_set(int64 pipeline_task_id, int64 **ids)
{
	static PlStmt q = {
		"SELECT t.id FROM pipeline.job_task t, pipeline.pipeline_task p"
		" WHERE p.id = $1 AND p.stage = 'active' AND t.pipeline_task_id = p.id"
		"   AND t.stage = 'pending' AND t.gate IS NULL AND t.needs_left <= 0"
		"   AND CASE COALESCE(t.run_when, 'on_success')"
		"        WHEN 'manual' THEN false WHEN 'on_failure' THEN p.failing"
		"        WHEN 'always' THEN true ELSE NOT p.failing END"
		" ORDER BY t.id",
		1, {INT8OID}
	};
	Datum		v[1];
	int			n;

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 0);
	n = (int) SPI_processed;
	*ids = palloc(sizeof(int64) * (n + 1));
	for (int i = 0; i < n; i++)
		(*ids)[i] = pl_col_int64(i, 1);
	return n;
}

/*
 * retry_job_task() in a dag run: re-open the task, and every task the run
 * swept (skipped by the failure: resolved at run time, unlike tasks created
 * skipped), failed or canceled; then count the needs again.  Caller holds
 * A(P) exclusively and has re-opened the run (R(P) held by its UPDATE).
 */
void
pl_dag_reopen(int64 pipeline_task_id, int64 id)
{
	static PlStmt q = {
		"SELECT id, stage FROM pipeline.job_task"
		" WHERE pipeline_task_id = $1"
		"   AND (id = $2 OR stage IN ('failed', 'canceled') OR (stage = 'skipped' AND needs_left = -1))"
		" ORDER BY id FOR UPDATE",
		2, {INT8OID, INT8OID}
	};
	static PlStmt recount = {
		"UPDATE pipeline.job_task t SET needs_left ="
		"  (SELECT count(*) FROM pipeline.job_task n WHERE n.id = ANY (t.needs)"
		"     AND n.stage NOT IN ('succeeded', 'skipped'))"
		" WHERE t.pipeline_task_id = $1 AND t.stage = 'pending'",
		1, {INT8OID}
	};
	static PlStmt clear = {
		"UPDATE pipeline.pipeline_task SET failing = false WHERE id = $1", 1, {INT8OID}
	};
	Datum		v[2];
	int			n;
	int64	   *ids;
	PlStage    *stages;

	v[0] = Int64GetDatum(pipeline_task_id);
	v[1] = Int64GetDatum(id);
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
		pl_tr_reopen(ids[i], pipeline_task_id, stages[i]);
	pl_exec(&recount, v, NULL, 0);
	pl_exec(&clear, v, NULL, 0);
}

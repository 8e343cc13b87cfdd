/*
 * lock.c: the locks that guard a run, in one place, and the order in which
 * every path takes them.  Each function that takes a lock says which.
 *
 * Layer: storage
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
 * then only write), witnesses (schedule.c) and exclusive-A holders (excluded by
 * our shared A).
 *
 * The fan-in protocol built on these locks (who takes R(P) and when, the
 * witness locks FOR KEY SHARE SKIP LOCKED) is described at the top of
 * schedule.c.  Runs on a needs graph (SPEC §13, dagsched.c) take R(P) at
 * every completion, still after A(P) and the completing task's row, and lock
 * the dependents' rows (counter decrements, the failure sweep) only while
 * holding R(P): the same "rows locked under R" rule as starting the next set.
 * play_job_task() locks like a gate decision: A(P) exclusive, T, R(P).
 *
 *   S(pipeline, key)  a transaction-level advisory lock on the sequence of a
 *         serialized pipeline (pg_advisory_xact_lock of a hash), taken by
 *         run_pipeline() before it looks for the run holding the sequence,
 *         and by a finishing run (holding R(P)) before it starts the next
 *         queued one.  Never taken before A(P) or T.
 *
 *   C(key)  a transaction-level advisory lock on a concurrency key (SPEC §14;
 *         pg_locks: advisory, objsubid 17227, the key's 64-bit hash), taken
 *         only by a claim, after T of the task it claims, and only with
 *         "try": a claimer that cannot have it at once skips the task (it
 *         stays scheduling for the next claim).  Holding C(key), the claimer
 *         counts the key's rows in pipeline.concurrency_slot with a fresh
 *         snapshot and inserts its own if fewer than the limit exist, so two
 *         claimers never both take the last slot.  Nobody waits for C, so it
 *         cannot close a cycle.  A slot is given back by deleting the task's
 *         own concurrency_slot row in the statement that moves the task out of
 *         creating/active/canceling (its holder has T): no lock on the key,
 *         so releases never wait for claims nor for each other.
 *
 * A run that ends starts its next pipelines (chain.c) still holding A(P) and
 * R(P): each start takes S of the chained pipeline (if serialized), then the
 * rows of the new run, which no other transaction can see yet.  Holders of S
 * wait only for rows of that pipeline's runs, never for P's locks (a
 * pipeline cannot chain itself: chain.c refuses cycles at definition), so
 * this adds no cycle to the order above.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "storage/lock.h"
#include "utils/builtins.h"

#include "lock.h"
#include "util.h"

#define PL_LOCK_FIELD4 20564	/* 'PT' */
#define PL_LOCK_KEY_FIELD4 17227	/* 'CK' */

/* A(P) in the given mode, held to the end of the transaction */
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

/* A(P) SHARE: reports that may complete a task of the run. */
void
pl_lock_run_shared(int64 pipeline_task_id)
{
	lock_run(pipeline_task_id, ShareLock);
}

/* A(P) EXCLUSIVE: operations that rewrite many tasks of the run. */
void
pl_lock_run_exclusive(int64 pipeline_task_id)
{
	lock_run(pipeline_task_id, ExclusiveLock);
}

/* R(P): lock the pipeline_task row, return its stage (-1 if it does not exist) */
int
pl_lock_run_row(int64 pipeline_task_id)
{
	static PlStmt q = {
		"SELECT stage FROM pipeline.pipeline_task WHERE id = $1 FOR UPDATE",
		1, {INT8OID}, PL_GENERIC
	};
	Datum		v[1];

	v[0] = Int64GetDatum(pipeline_task_id);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		return -1;
	return (int) pl_col_stage(0, 1);
}

/* S(pipeline, key): the sequence lock of a serialized pipeline */
void
pl_lock_sequence(const char *pipeline, const char *key)
{
	static PlStmt q = {
		"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.seq:' || $1 || ':' || $2))",
		2, {TEXTOID, TEXTOID}
	};
	Datum		v[2];

	v[0] = CStringGetTextDatum(pipeline);
	v[1] = CStringGetTextDatum(key);
	pl_exec(&q, v, NULL, 1);
}

/*
 * C(key): try to take the concurrency key's lock, held to the end of the
 * transaction; false (at once, without waiting) if another transaction holds it.
 */
bool
pl_lock_key_try(const char *key)
{
	LOCKTAG		tag;
	uint64		h;

#ifdef PIPELINE_TEST_NO_LOCKS
	return true;				/* see test/isolation/README.md */
#endif
	h = DatumGetUInt64(hash_any_extended((const unsigned char *) key, (int) strlen(key), 0));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, PL_LOCK_KEY_FIELD4);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

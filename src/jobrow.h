/*
 * jobrow.h: a job task row as callers get it back (redacted), and the
 * update-token check (jobrow.c).
 *
 * Layer: storage
 */
#ifndef PL_JOBROW_H
#define PL_JOBROW_H

#include "postgres.h"

#include "fmgr.h"

#include "pipeline.h"

/* One redacted job task row as a composite Datum allocated in outer. */
extern Datum pl_job_task_datum(int64 id, MemoryContext outer);

/* Row `row` of a "SELECT t, masked params, masked envs" result, redacted, in outer. */
extern Datum pl_jobrow_datum(int row, MemoryContext outer);

/* Append one redacted job task row to a materialized SRF's tuplestore. */
extern void pl_put_job_task(FunctionCallInfo fcinfo, int64 id, MemoryContext outer);

/* SQLSTATE 28000 after counting the refusal.  Nothing has been written. */
extern void pl_reject_token(int64 id) pg_attribute_noreturn();

/*
 * The caller must hold job task id's current token: P0002 if there is no such
 * task, 28000 (counted) if it does not match.  Returns the task's stage.
 * lock: take the row lock (FOR NO KEY UPDATE) first.
 */
extern PlStage pl_require_token(int64 id, const char *token, bool lock);

/* pipeline_task_id of a job task, or ERROR P0002 */
extern int64 pl_run_of_task(int64 id);

#endif							/* PL_JOBROW_H */

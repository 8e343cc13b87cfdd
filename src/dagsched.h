/*
 * dagsched.h: scheduling a dag run (dagsched.c): counters, turns, `when`,
 * failing with always/on_failure, the end of the run.  Each function says
 * which locks its caller holds.
 *
 * Layer: scheduling
 */
#ifndef PL_DAGSCHED_H
#define PL_DAGSCHED_H

#include "postgres.h"

#include "pipeline.h"

/* Is P a dag run (pipeline_task.dag)?  Read-only. */
extern bool pl_dag_is_run(int64 pipeline_task_id);

/*
 * Caller holds R(P), the run is active.  Task id (0: none) no longer holds
 * its dependents back: tell them; with 0, give every ready task its turn.
 * True if the run has ended (*failed_message: NULL = succeeded).
 */
extern bool pl_dag_advance(int64 pipeline_task_id, int64 id, char **failed_message);

/* Caller holds R(P), the run is active: task id failed; the run is failing.  As above. */
extern bool pl_dag_fail(int64 pipeline_task_id, int64 id, const char *message,
						char **failed_message);

/* next_run() of a dag run.  Read-only. */
extern int	pl_dag_next_set(int64 pipeline_task_id, int64 **ids);

/* retry_job_task() of a dag run: re-open and count again (A(P) exclusive, run re-opened). */
extern void pl_dag_reopen(int64 pipeline_task_id, int64 id);

#endif							/* PL_DAGSCHED_H */

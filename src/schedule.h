/*
 * schedule.h: what runs next (schedule.c): starting the next set, failing,
 * canceling and finishing runs, the fan-in protocol, serialized runs.
 * Each function says which locks its caller holds and which it takes.
 *
 * Layer: scheduling
 */
#ifndef PL_SCHEDULE_H
#define PL_SCHEDULE_H

#include "postgres.h"

#include "pipeline.h"

/* Start the next set of the run, or finish it.  Caller holds R(P); the run is active. */
extern void pl_sched_start_next(int64 pipeline_task_id);

/*
 * Cancel a run.  Caller holds A(P) exclusively; takes R(P) and the open task
 * rows by id.  from_user: 55000 if the run is already finished.
 */
extern void pl_sched_cancel_run(int64 pipeline_task_id, const char *reason, bool from_user);

/*
 * React to a job task of run P having reached new_stage (its row is updated
 * and locked by the caller; A(P) is held, exclusively if new_stage is
 * canceled): cancel or fail the run, or start the next set (fan-in).
 */
extern void pl_sched_after(int64 job_task_id, int64 pipeline_task_id, int stage_index,
						   PlStage new_stage, bool force_trigger);
/* pl_sched_after() when the caller already read the task's row (dag: it is a dag run's task) */
extern void pl_sched_after_known(int64 job_task_id, int64 pipeline_task_id, int stage_index,
								 PlStage new_stage, bool force_trigger, bool ignore_failed,
								 bool gate_waiting, const char *message, bool dag);
/* A confirm gate passed: continue as if the task succeeded (same locks). */
extern void pl_sched_continue(int64 job_task_id, int64 pipeline_task_id);

/* next_run(): the ids of the tasks whose turn has come.  Read-only. */
extern int	pl_sched_next_set(int64 pipeline_task_id, int64 **ids);

/* The unfinished run holding a serialized pipeline's sequence (not except), or 0. */
extern int64 pl_sched_sequence_holder(const char *pipeline, const char *key, int64 except);

/*
 * Called once each time a run ends (its stage becomes succeeded, failed or
 * canceled), in the transaction that ends it, with R(P) held, after a queued
 * run of its sequence was started.  chain.c sets it at load time to start the
 * run's next pipelines (SPEC §15).
 *
 * Why a hook: starting a run is run creation (run.c, an API file), which
 * itself starts the run's first set here; schedule.c calling run.c directly
 * would make the two call each other (test/check_layers.sh refuses the
 * circle).  The recursion is real -- a chained run whose tasks are all
 * skipped ends at once and starts its own next pipelines -- and bounded by
 * pipeline.max_chain_depth.  The hook must not raise an error for a run it
 * fails to start (chain.c catches them in a subtransaction): the ending run
 * ends regardless.
 */
typedef void (*PlRunEndedHook) (int64 pipeline_task_id, PlStage stage);
extern PGDLLIMPORT PlRunEndedHook pl_sched_run_ended_hook;

#endif							/* PL_SCHEDULE_H */

/*
 * transition.h: the only writer of a stage (transition.c).  Every change of
 * a job task's or a run's stage, its timestamps, its event row and its
 * announcement (NOTIFY, hook deliveries) goes through these functions.
 * Each says which row lock the caller must hold; none takes A(P) or R(P).
 *
 * Layer: transitions
 */
#ifndef PL_TRANSITION_H
#define PL_TRANSITION_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

#include "pipeline.h"

/*
 * The timestamp rules, written once, as SQL over the new stage NS and the
 * current value CUR: start_at is set the first time the stage becomes
 * active and kept after; end_at is set the first time the stage becomes
 * complete and cleared when it is open again.  (A new attempt -- automatic
 * retry, retry_job_task -- clears both, transition.c.)  Exported for the
 * INSERT of a run's job tasks (run.c), which creates some of them skipped.
 */
#define PL_TR_START_AT_SQL(NS, CUR) \
	"CASE WHEN " NS " = 'active' THEN COALESCE(" CUR ", now()) ELSE " CUR " END"
#define PL_TR_END_AT_SQL(NS, CUR) \
	"CASE WHEN " NS " >= 'canceled' THEN COALESCE(" CUR ", now()) END"

/* ---- job tasks (the caller holds the task's row lock T) ---- */

/* Move the task from old_stage to new_stage; message NULL keeps the old one. */
extern void pl_tr_job(int64 id, int64 pipeline_task_id, PlStage old_stage,
					  PlStage new_stage, const char *message);

/* An event without a stage change (a confirm gate waits or was decided). */
extern void pl_tr_job_note(int64 id, int64 pipeline_task_id, PlStage stage);

/* A pending task's audit gate opens: it stays pending, gate = 'audit', event. */
extern void pl_tr_open_audit_gate(int64 id, int64 pipeline_task_id);

/* A finished task's waiting confirm gate is moot (its run failed or was canceled). */
extern void pl_tr_clear_gate(int64 id);

/*
 * Automatic retry: a failed task with retries left, whose run is active,
 * goes back to scheduling after its backoff (a new attempt).  True if it did.
 */
extern bool pl_tr_retry_if_left(int64 id, int64 pipeline_task_id);

/* retry_job_task(): the task goes back to pending, gates re-armed (a new attempt). */
extern void pl_tr_reopen(int64 id, int64 pipeline_task_id, PlStage old_stage);

/* A runner's report (update_job_task_status), as one statement. */
typedef struct PlReport
{
	int64		id;
	PlStage		stage;			/* requested */
	Datum		message;		/* text, or 0 */
	Jsonb	   *detail;
	Jsonb	   *extension;
	Jsonb	   *runtime_envs;
	const char *token;			/* presented, may be NULL */
	Datum		token_text;		/* the same as text, or 0 */
	bool		force_update;
} PlReport;

typedef struct PlReported
{
	Datum		row;			/* the redacted row, in the caller's outer context */
	bool		ignore_failed;
	bool		gate_waiting;
	char	   *message;
	PlStage		old_stage;
	PlStage		new_stage;
	bool		will_retry;
	int64		pipeline_task_id;	/* 0 when the task belongs to no run */
	int			stage_index;
	bool		dag;			/* a task of a dag run (SPEC §13, dagsched.c) */
} PlReported;

/*
 * Lock the task (FOR UPDATE when completing or forced, else FOR NO KEY
 * UPDATE), check token and state, apply, write the event, announce.  False
 * if the statement changed nothing (the caller diagnoses why).
 */
extern bool pl_tr_report(const PlReport *in, PlReported *out, MemoryContext outer);

/* A claim: scheduling -> creating for runner, with a new token (its digest stored). */
typedef struct PlClaimed
{
	int64		pipeline_task_id;
	Datum		job;			/* jsonb, in outer */
	Datum		params;			/* jsonb, in outer */
	bool		dry_run;
} PlClaimed;

/* The caller has locked the task row (FOR NO KEY UPDATE SKIP LOCKED). */
extern void pl_tr_claim(int64 id, const char *runner, const char *token,
						PlClaimed *out, MemoryContext outer);

/* ---- runs (the caller holds R(P), or created the run in this transaction) ---- */

/*
 * Move run pipeline_task_id from old_stage (-1: just created, the event says
 * so) to new_stage.  message NULL keeps the old one unless clear_message.
 * Returns the pipeline's name and the run's sequence key (NULL if none) in
 * *pipeline_name and *seqkey when those are not NULL.
 */
extern void pl_tr_run(int64 pipeline_task_id, int old_stage, PlStage new_stage,
					  const char *message, bool clear_message,
					  char **pipeline_name, char **seqkey);

#endif							/* PL_TRANSITION_H */

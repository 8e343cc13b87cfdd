/*
 * status.h: one runner report applied as update_job_task_status applies it
 * (status.c), shared with the batched update_job_task_statuses (statuses.c).
 * Locks: those of status.c's header (A(P), the task row, then R(P)).
 *
 * Layer: api
 */
#ifndef PL_STATUS_H
#define PL_STATUS_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "pipeline.h"

typedef struct PlStatusCall
{
	int64		id;
	PlStage		stage;
	const char *token;			/* presented, may be NULL */
	Datum		token_text;		/* the same as text, or 0 */
	Datum		message;		/* text, or 0 */
	Jsonb	   *detail;
	Jsonb	   *runtime_envs;
	Jsonb	   *extension;
	bool		force_update;
	bool		force_trigger;
} PlStatusCall;

/*
 * Apply one report (SPEC §4 steps 1-7).  The caller is SPI-connected (outer:
 * its context before SPI_connect) and has checked READ COMMITTED.  Returns
 * the updated row, redacted, in outer; every refusal is raised.
 */
extern Datum pl_status_apply(const PlStatusCall *c, MemoryContext outer);

#endif							/* PL_STATUS_H */

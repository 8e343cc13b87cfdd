/*
 * pipeline.h: the small common header of the engine: the stage enum as C
 * sees it and the GUCs (defined in guc.c).  Every module has its own
 * header besides (README "Design notes": the layers).  No locking here.
 *
 * Layer: storage
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include "postgres.h"

#include "fmgr.h"

/* ---- stages, in the order of the SQL enum pipeline.task_stage ---- */
typedef enum PlStage
{
	PL_PENDING = 0,
	PL_SCHEDULING,
	PL_CREATING,
	PL_ACTIVE,
	PL_CANCELING,
	PL_CANCELED,
	PL_FAILED,
	PL_SUCCEEDED,
	PL_SKIPPED,
	PL_NSTAGES
} PlStage;

extern const char *const pl_stage_names[PL_NSTAGES];

static inline bool
pl_stage_complete(PlStage s)
{
	return s >= PL_CANCELED;
}

/* started = handed to runners and not finished: scheduling .. canceling */
static inline bool
pl_stage_started(PlStage s)
{
	return s >= PL_SCHEDULING && s <= PL_CANCELING;
}

extern PlStage pl_stage_from_name(const char *name);	/* ERROR if unknown */
extern PlStage pl_stage_from_datum(Datum d);	/* enum value -> PlStage */

/* ---- GUCs (guc.c; notify_interval: notifier.c) ---- */
extern int	pl_heartbeat_timeout;	/* seconds, 0 = off */
extern int	pl_retry_backoff;	/* seconds, first automatic retry delay */
extern int	pl_max_chain_depth; /* chained runs deeper than this are not started */
typedef enum PlNotifyMode
{
	PL_NOTIFY_IMMEDIATE,
	PL_NOTIFY_COALESCED,
	PL_NOTIFY_OFF
} PlNotifyMode;
extern int	pl_notify;			/* PlNotifyMode */
extern int	pl_notify_interval; /* ms, coalesced mode */

#endif							/* PIPELINE_H */

/*
 * announce.h: after an event row is written: NOTIFY and hook deliveries
 * (announce.c).  Called by transition.c only.
 *
 * Layer: storage
 */
#ifndef PL_ANNOUNCE_H
#define PL_ANNOUNCE_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "pipeline.h"

/* hooks NULL: the object has none (no deliveries to write) */
extern void pl_announce_event(int64 event_id, int64 pipeline_task_id, int64 job_task_id,
							  Jsonb *hooks, PlStage new_stage);

#endif							/* PL_ANNOUNCE_H */

/*
 * run.h: starting a run from C (run.c), for the API files that start runs on
 * someone's behalf (chain.c: the next pipelines of a run that ended).
 *
 * Layer: api
 */
#ifndef PL_RUN_H
#define PL_RUN_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/*
 * Start a run of the latest version of pipeline `name`, as run_pipeline()
 * does (same refusals, same locks).  extra_sensitive: names (char *) to mask
 * in the run besides those its jobs declare sensitive.  priority: of every
 * job task of the run (SPEC §14).  Returns the run id.
 */
extern int64 pl_run_start(const char *name, Jsonb *params, bool dry_run, const char *run_by,
						  Jsonb *labels, const char *on_busy, int32 priority,
						  List *extra_sensitive);

#endif							/* PL_RUN_H */

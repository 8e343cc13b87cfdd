/*
 * chain.h: chained pipelines (chain.c): next_pipelines checked at definition,
 * started when a run ends.  Locking notes are in chain.c.
 *
 * Layer: api
 */
#ifndef PL_CHAIN_H
#define PL_CHAIN_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "defcheck.h"

/* define_pipeline: validate next_pipelines of pipeline self, append it normalized */
extern void pl_chain_emit_definition(DefCtx *ctx, const char *self, JsonbContainer *root,
									 StringInfo out, bool *first);

/* _PG_init: register the run-ended hook with schedule.c */
extern void pl_chain_init(void);

#endif							/* PL_CHAIN_H */

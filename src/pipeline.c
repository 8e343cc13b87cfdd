/*
 * pipeline.c: module entry point.
 *
 * Layer: api
 *
 * _PG_init defines the GUCs (guc.c) and registers chain.c's run-ended hook
 * with schedule.c; every other module is stateless apart from its saved
 * plans, which are prepared on first use (util.c).
 */
#include "postgres.h"

#include "fmgr.h"

#include "chain.h"
#include "guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	pl_guc_init();
	pl_chain_init();
}

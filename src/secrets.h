/*
 * secrets.h: masking secrets in what runners send, and the runtime env
 * deny-list (secrets.c).  Pure functions: no SPI, no locks.
 *
 * Layer: storage
 */
#ifndef PL_SECRETS_H
#define PL_SECRETS_H

#include "postgres.h"

/*
 * SQL: where job task row T's secrets are: its params, its runtime envs and
 * its run's runtime envs, which may override them.  Callers evaluate it only
 * when T.sensitive is not empty, and pass it with T.sensitive and the
 * presented token to pipeline.mask_secrets().
 */
#define PL_SECRETS_SQL(T) \
	"pg_catalog.jsonb_build_array(" T ".params, " T ".runtime_envs," \
	" (SELECT pp.runtime_envs FROM pipeline.pipeline_task pp WHERE pp.id = " T ".pipeline_task_id))"
extern bool pl_runtime_env_name_allowed(const char *name);
extern const char *const pl_runtime_env_rule;	/* the deny-list, as a sentence */

#endif							/* PL_SECRETS_H */

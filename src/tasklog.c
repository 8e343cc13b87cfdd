/*
 * tasklog.c: append_job_task_log(), the output a runner ships.
 *
 * Layer: api
 *
 * Locks: none beyond the insert.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "jobrow.h"
#include "secrets.h"
#include "util.h"

/*
 * append_job_task_log(id bigint, update_token text, chunk text) RETURNS bigint
 * Appends output to a task's log, with the task's sensitive values and the
 * token masked; returns the chunk's seq.  The token guards it like a status
 * update; a finished task takes no more output (55000, as heartbeat()).
 * Locks: none beyond the insert.
 */
PG_FUNCTION_INFO_V1(pl_append_job_task_log);
Datum
pl_append_job_task_log(PG_FUNCTION_ARGS)
{
	/* the chunk is stored with the task's secrets masked (secrets.c) */
	static PlStmt ins = {
		"INSERT INTO pipeline.job_task_log (job_task_id, chunk)"
		" SELECT t.id, pipeline.mask_secrets($2, CASE WHEN pg_catalog.cardinality(t.sensitive) > 0"
		"   THEN " PL_SECRETS_SQL("t") " END, t.sensitive, $3)"
		" FROM pipeline.job_task t WHERE t.id = $1 RETURNING seq",
		3, {INT8OID, TEXTOID, TEXTOID}
	};
	int64		id;
	char	   *token;
	Datum		v[3];
	bool		n[3] = {false, false, false};
	int64		seq;
	PlStage		stage;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("append_job_task_log: %s must not be null",
						PG_ARGISNULL(0) ? "id" : "chunk")));
	id = PG_GETARG_INT64(0);
	token = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	pl_spi_connect();
	stage = pl_require_token(id, token, false);
	if (pl_stage_complete(stage))	/* as heartbeat(): the runner ships output first */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is already %s", id, pl_stage_names[stage]),
				 errdetail("A finished task takes no more output.")));
	v[0] = Int64GetDatum(id);
	v[1] = PG_GETARG_DATUM(2);
	v[2] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	n[2] = PG_ARGISNULL(1);
	pl_exec(&ins, v, n, 1);
	seq = pl_col_int64(0, 1);
	pl_spi_finish();
	PG_RETURN_INT64(seq);
}

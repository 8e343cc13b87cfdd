/*
 * jobrow.c: a job task row as callers get it back, and the token check.
 *
 * Layer: storage
 *
 * The row a caller may see: token digest removed, sensitive params masked,
 * hook targets redacted (redact.c).  The token check: the caller must hold
 * the task's current update token (digests compared in constant time,
 * token.c); a refusal bumps pipeline.rejected_token_seq, which survives the
 * rollback.
 *
 * Locks: pl_require_token() with lock = true locks the task row FOR NO KEY
 * UPDATE; nothing else here locks.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "jobrow.h"
#include "redact.h"
#include "token.h"
#include "util.h"

static void
count_rejection(void)
{
	/* looked up each time: rare, and the extension may have been re-created */
	Oid			seq = get_relname_relid("rejected_token_seq",
										get_namespace_oid("pipeline", false));

	(void) nextval_internal(seq, false);
}

/* SQLSTATE 28000 after counting.  Nothing has been written. */
void
pl_reject_token(int64 id)
{
	count_rejection();
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("job task " INT64_FORMAT ": update token does not match", id),
			 errdetail("Tokens are issued by claim_job_tasks() and change at every claim and retry.")));
}

/*
 * The job task row as a caller may see it: token digest removed, sensitive
 * params masked, hook targets redacted (secrets, header values, URL
 * tokens: redact.c).  Produced from "SELECT t, masked params, masked envs".
 */
static void
redacted_values(int row, TupleDesc *descp, Datum **valuesp, bool **nullsp)
{
	static int	att_digest = 0,
				att_params = 0,
				att_envs = 0,
				att_hooks = 0;
	bool		isnull;
	Datum		d = pl_col(row, 1, &isnull);
	HeapTupleHeader th = DatumGetHeapTupleHeader(d);
	TupleDesc	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(th),
											  HeapTupleHeaderGetTypMod(th));
	HeapTupleData tmp;
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);

	if (att_digest == 0)
	{
		for (int i = 0; i < desc->natts; i++)
		{
			const char *an = NameStr(TupleDescAttr(desc, i)->attname);

			if (strcmp(an, "token_digest") == 0)
				att_digest = i + 1;
			else if (strcmp(an, "params") == 0)
				att_params = i + 1;
			else if (strcmp(an, "runtime_envs") == 0)
				att_envs = i + 1;
			else if (strcmp(an, "hooks") == 0)
				att_hooks = i + 1;
		}
		if (!att_digest || !att_params || !att_envs || !att_hooks)
			elog(ERROR, "pipeline.job_task lacks an expected column");
	}
	tmp.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tmp.t_self);
	tmp.t_tableOid = InvalidOid;
	tmp.t_data = th;
	heap_deform_tuple(&tmp, desc, values, nulls);
	nulls[att_digest - 1] = true;
	values[att_params - 1] = pl_col(row, 2, &nulls[att_params - 1]);
	values[att_envs - 1] = pl_col(row, 3, &nulls[att_envs - 1]);
	if (!nulls[att_hooks - 1])
		values[att_hooks - 1] =
			JsonbPGetDatum(pl_redact_hooks(DatumGetJsonbP(values[att_hooks - 1])));
	*descp = desc;
	*valuesp = values;
	*nullsp = nulls;
}

static PlStmt redacted_q = {
	"SELECT t, pipeline.mask_params(t.params, t.sensitive),"
	" pipeline.mask_params(t.runtime_envs, t.sensitive)"
	" FROM pipeline.job_task t WHERE t.id = $1",
	1, {INT8OID}, PL_GENERIC
};

/* Row `row` of a "SELECT t, masked params, masked envs" result, redacted, in outer. */
Datum
pl_jobrow_datum(int row, MemoryContext outer)
{
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	HeapTuple	tup;
	MemoryContext old;
	Datum		result;

	redacted_values(row, &desc, &values, &nulls);
	old = MemoryContextSwitchTo(outer);
	tup = heap_form_tuple(desc, values, nulls);
	result = HeapTupleGetDatum(tup);
	MemoryContextSwitchTo(old);
	ReleaseTupleDesc(desc);
	return result;
}

/* One redacted job task row as a composite Datum allocated in outer. */
Datum
pl_job_task_datum(int64 id, MemoryContext outer)
{
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	pl_exec(&redacted_q, v, NULL, 1);
	return pl_jobrow_datum(0, outer);
}

/* Append one redacted job task row to a materialized SRF's tuplestore. */
void
pl_put_job_task(FunctionCallInfo fcinfo, int64 id, MemoryContext outer)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		v[1];
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	MemoryContext old;

	v[0] = Int64GetDatum(id);
	pl_exec(&redacted_q, v, NULL, 1);
	redacted_values(0, &desc, &values, &nulls);
	old = MemoryContextSwitchTo(outer);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
	ReleaseTupleDesc(desc);
}

/*
 * The caller must hold job task `id`'s current token: P0002 if there is no
 * such task, 28000 (counted) if the token does not match.  Returns the
 * task's stage.  lock: take the row lock (FOR NO KEY UPDATE) first.
 */
PlStage
pl_require_token(int64 id, const char *token, bool lock)
{
	static PlStmt q_lock = {
		"SELECT stage, token_digest FROM pipeline.job_task WHERE id = $1 FOR NO KEY UPDATE",
		1, {INT8OID}, PL_GENERIC
	};
	static PlStmt q_read = {
		"SELECT stage, token_digest FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}, PL_GENERIC
	};
	Datum		v[1];
	bool		isnull;
	bytea	   *digest;

	v[0] = Int64GetDatum(id);
	pl_exec(lock ? &q_lock : &q_read, v, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job task " INT64_FORMAT " does not exist", id)));
	digest = (bytea *) DatumGetPointer(pl_col(0, 2, &isnull));
	if (isnull || !pl_token_matches(token, digest))
		pl_reject_token(id);
	return pl_col_stage(0, 1);
}


/* pipeline_task_id of a job task, or ERROR P0002 */
int64
pl_run_of_task(int64 id)
{
	static PlStmt q = {
		"SELECT pipeline_task_id FROM pipeline.job_task WHERE id = $1", 1, {INT8OID}, PL_GENERIC
	};
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job task " INT64_FORMAT " does not exist", id)));
	return pl_col_int64(0, 1);
}

/*
 * status.c: update_job_task_status() and heartbeat(), the runners' reports.
 *
 * update_job_task_status, in one transaction (SPEC §4):
 *   1. A(P) -- shared when the new stage is complete (the report may finish
 *      the stage), exclusive when it is "canceled" or forced (it rewrites the
 *      run), none otherwise -- then the job task row, FOR UPDATE.
 *   2. token check (SHA-256 digests, constant time; force does not bypass it);
 *      a refusal bumps pipeline.rejected_token_seq, which survives rollback.
 *   3. a complete task changes only with force_update_status.
 *   4. one UPDATE applies stage, message, detail, extension and runtime envs;
 *      runtime envs named [A-Z_]... are merged into the run too.
 *   5. if the stage changed: event + NOTIFY (event.c).
 *   6. advance (advance.c) when changed or forced.
 * Every refusal is raised before the first write.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "pipeline.h"

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
 * Validate runtime envs: an object whose values are strings, named like
 * params, none of them on the deny-list (secrets.c).  Returns the part to
 * merge into the run (names starting with an upper-case letter or '_') as
 * JSON text, or NULL if there is none.  A problem is returned in *problem,
 * and a denied name also in *denied (nothing is raised here, so the caller
 * can first check that the caller holds the task).
 */
static char *
check_runtime_envs(Jsonb *envs, char **problem, char **denied)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	StringInfoData run;
	bool		first = true;

	*problem = NULL;
	*denied = NULL;
	if (envs == NULL)
		return NULL;
	if (!pl_jb_is_object(envs))
	{
		*problem = pstrdup("runtime_envs must be a JSON object");
		return NULL;
	}
	initStringInfo(&run);
	appendStringInfoChar(&run, '{');
	it = JsonbIteratorInit(&envs->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvString)
		{
			*problem = psprintf("runtime_envs.%s must be a string", name);
			return NULL;
		}
		if (!pl_valid_param_name(name))
		{
			*problem = psprintf("runtime_envs: \"%s\" is not a valid name", name);
			return NULL;
		}
		if (!pl_runtime_env_name_allowed(name))
		{
			*problem = psprintf("runtime env \"%s\" may not be set", name);
			*denied = name;
			return NULL;
		}
		if ((name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_')
			pl_json_kv_str(&run, &first, name, pnstrdup(v.val.string.val, v.val.string.len));
	}
	appendStringInfoChar(&run, '}');
	return first ? NULL : run.data;
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
	1, {INT8OID}
};

/* Row `row` of a "SELECT t, masked params, masked envs" result, redacted, in outer. */
static Datum
redacted_datum(int row, MemoryContext outer)
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
	return redacted_datum(0, outer);
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
 * Why would this report be refused?  The cold path, run only when the fused
 * statement below changed nothing, or when an argument is bad (a caller
 * must hold the task before it learns what is wrong with its arguments).
 * Raises P0002, 28000 (counted) or 55000; returns if none applies.
 */
static void
diagnose_refusal(int64 id, const char *token, bool force_update)
{
	PlStage		stage = pl_require_token(id, token, true);

	if (pl_stage_complete(stage) && !force_update)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is already %s", id, pl_stage_names[stage]),
				 errhint("Pass force_update_status => true to change a finished task.")));
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
		1, {INT8OID}
	};
	static PlStmt q_read = {
		"SELECT stage, token_digest FROM pipeline.job_task WHERE id = $1",
		1, {INT8OID}
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

/*
 * The fused status update: lock (LOCK is the row lock clause), check the
 * token and the state, apply, write the event, read back.
 * $1 id, $2 stage, $3 message, $4 detail, $5 extension, $6 runtime envs,
 * $7 digest of the presented token, $8 force_update_status, $9 the token
 * (message, detail and extension are stored with the task's secrets masked,
 * secrets.c; the secrets are looked up only for a task with sensitive params
 * that reports one of them)
 */
#define PL_STATUS_UPDATE_SQL(LOCK) \
	"WITH o AS (" \
	" SELECT t.id, t.stage AS old_stage, t.token_digest," \
	"  CASE WHEN t.stage = 'canceling' AND $2::pipeline.task_stage < 'canceled' AND NOT $8" \
	"       THEN 'canceling'::pipeline.task_stage ELSE $2::pipeline.task_stage END AS ns," \
	"  COALESCE((t.confirm->>'enable')::boolean, false) AND NOT (t.gate_result ? 'confirm')" \
	"    AS confirm_pending," \
	"  t.attempt <= t.retries AND t.pipeline_task_id IS NOT NULL" \
	"  AND (SELECT p.stage FROM pipeline.pipeline_task p WHERE p.id = t.pipeline_task_id) = 'active'" \
	"    AS retries_left," \
	"  CASE WHEN ($3 IS NOT NULL OR $4 IS NOT NULL OR $5 IS NOT NULL)" \
	"        AND pg_catalog.cardinality(t.sensitive) > 0" \
	"       THEN " PL_SECRETS_SQL("t") " END AS secrets, t.sensitive" \
	" FROM pipeline.job_task t WHERE t.id = $1 " LOCK ")," \
	" k AS (" \
	" SELECT o.id, o.old_stage, o.ns, o.secrets, o.sensitive," \
	"  (o.ns = 'failed' AND o.retries_left AND NOT $8) AS will_retry," \
	"  (o.confirm_pending AND o.ns > 'canceled'" \
	"   AND NOT (o.ns = 'failed' AND o.retries_left AND NOT $8)) AS gate_now" \
	" FROM o" \
	" WHERE pipeline.digest_ok(o.token_digest, $7) AND (o.old_stage < 'canceled' OR $8))," \
	" u AS (" \
	" UPDATE pipeline.job_task t SET" \
	"  stage = k.ns," \
	"  message = CASE WHEN $3 IS NULL THEN t.message" \
	"            ELSE pipeline.mask_secrets($3, k.secrets, k.sensitive, $9) END," \
	"  detail = CASE WHEN $4 IS NULL THEN t.detail" \
	"           ELSE pipeline.mask_secrets($4, k.secrets, k.sensitive, $9) END," \
	"  extension = CASE WHEN $5 IS NULL THEN t.extension" \
	"              ELSE t.extension || pipeline.mask_secrets($5, k.secrets, k.sensitive, $9) END," \
	"  runtime_envs = t.runtime_envs || COALESCE($6, '{}')," \
	"  start_at = CASE WHEN k.ns = 'active' THEN COALESCE(t.start_at, now()) ELSE t.start_at END," \
	"  end_at = CASE WHEN k.ns >= 'canceled' THEN COALESCE(t.end_at, now()) ELSE NULL END," \
	"  gate = CASE WHEN k.gate_now THEN 'confirm' WHEN k.ns < 'canceled' THEN t.gate ELSE NULL END," \
	"  heartbeat_at = now(), updated_at = now()," \
	"  token_digest = CASE WHEN k.ns <= 'scheduling' THEN NULL ELSE t.token_digest END" \
	" FROM k WHERE t.id = k.id" \
	" RETURNING t AS r, k.old_stage, k.will_retry, k.gate_now)," \
	" e AS (" \
	" INSERT INTO pipeline.event (kind, object_id, pipeline_task_id, old_stage, new_stage, payload)" \
	" SELECT 'job_task', (u.r).id, (u.r).pipeline_task_id, u.old_stage, (u.r).stage," \
	" " PL_TASK_PAYLOAD_SQL("(u.r)", "u.old_stage") \
	"  FROM u WHERE u.old_stage <> (u.r).stage OR u.gate_now" \
	" RETURNING id)" \
	" SELECT u.r, pipeline.mask_params((u.r).params, (u.r).sensitive)," \
	"  pipeline.mask_params((u.r).runtime_envs, (u.r).sensitive)," \
	"  (SELECT e.id FROM e)," \
	"  " PL_HOOKS_IF_ANY_SQL("(u.r)") "," \
	"  (u.r).ignore_failed, (u.r).gate IS NOT NULL, (u.r).message," \
	"  u.old_stage, (u.r).stage, u.will_retry, (u.r).pipeline_task_id, (u.r).stage_index" \
	" FROM u"

/*
 * update_job_task_status(id, stage, update_token, message, detail,
 *                        runtime_envs, extension, force_update_status,
 *                        force_trigger_pipeline) RETURNS pipeline.job_task
 *
 * Hot path: one statement locks the row, checks the token (constant-time,
 * pipeline.digest_ok) and the state, applies the report, writes the event and
 * returns what the caller and the advancing need.  If it changes nothing,
 * diagnose_refusal() says why.  A report that may advance the run first takes
 * A(P) on the run named in its token (see advance.c); a forged token names
 * some run, takes a harmless shared lock on it and is then refused.
 */
PG_FUNCTION_INFO_V1(pl_update_job_task_status);
Datum
pl_update_job_task_status(PG_FUNCTION_ARGS)
{
	/*
	 * $1 id, $2 stage, $3 message, $4 detail, $5 extension, $6 runtime envs,
	 * $7 digest of the presented token, $8 force_update_status, $9 the token
	 */
	/*
	 * The statement comes in two lock strengths: a report that completes the
	 * task locks it FOR UPDATE (so it waits for siblings' witness locks, see
	 * advance.c); any other report locks FOR NO KEY UPDATE and never waits
	 * for them.
	 */
	static PlStmt upd_completing = {
		PL_STATUS_UPDATE_SQL("FOR UPDATE"),
		9, {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, BYTEAOID, BOOLOID, TEXTOID}
	};
	static PlStmt upd_open = {
		PL_STATUS_UPDATE_SQL("FOR NO KEY UPDATE"),
		9, {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, BYTEAOID, BOOLOID, TEXTOID}
	};
	static PlStmt merge_run = {
		"UPDATE pipeline.pipeline_task SET runtime_envs = runtime_envs || $2::jsonb WHERE id = $1",
		2, {INT8OID, TEXTOID}
	};
	int64		id;
	PlStage		req_stage;
	PlStage		old_stage;
	PlStage		new_stage;
	char	   *token;
	Jsonb	   *detail = NULL;
	Jsonb	   *envs = NULL;
	Jsonb	   *ext = NULL;
	bool		force_update;
	bool		force_trigger;
	char	   *run_envs = NULL;
	char	   *problem;
	char	   *denied;
	int64		pt;
	int64		pt_hint;
	int			stage_index;
	bool		isnull;
	bool		will_retry;
	bool		ignore_failed;
	bool		gate_waiting;
	char	   *message;
	Datum		v[9];
	bool		n[9];
	MemoryContext outer;
	Datum		result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("update_job_task_status: id must not be null")));
	id = PG_GETARG_INT64(0);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job task " INT64_FORMAT ": stage must not be null", id)));
	req_stage = pl_stage_from_datum(PG_GETARG_DATUM(1));
	token = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(4))
		detail = PG_GETARG_JSONB_P(4);
	if (!PG_ARGISNULL(5))
		envs = PG_GETARG_JSONB_P(5);
	if (!PG_ARGISNULL(6))
		ext = PG_GETARG_JSONB_P(6);
	force_update = PG_ARGISNULL(7) ? false : PG_GETARG_BOOL(7);
	force_trigger = PG_ARGISNULL(8) ? false : PG_GETARG_BOOL(8);
	pl_require_read_committed("update_job_task_status");

	outer = pl_spi_connect();

	/* 1. A(P) when this report may advance the run, before any row lock */
	pt_hint = pl_token_run(token);
	if (pt_hint != 0 && (pl_stage_complete(req_stage) || force_update || force_trigger))
	{
		if (req_stage == PL_CANCELED || force_update)
			pl_lock_run_exclusive(pt_hint);
		else
			pl_lock_run_shared(pt_hint);
	}

	/* bad arguments are reported only to the holder of the task */
	run_envs = check_runtime_envs(envs, &problem, &denied);
	if (problem == NULL && ext && !pl_jb_is_object(ext))
		problem = pstrdup("extension must be a JSON object");
	if (problem)
	{
		diagnose_refusal(id, token, force_update);
		if (denied)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("job task " INT64_FORMAT ": %s", id, problem),
					 errdetail("%s", pl_runtime_env_rule),
					 errhint("Runtime envs reach later jobs' environments; pass such settings as params of the job instead.")));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job task " INT64_FORMAT ": %s", id, problem)));
	}

	/* 2.-5. lock, token, state, apply, event: one statement */
	memset(n, 0, sizeof(n));
	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(pl_stage_names[req_stage]);
	if (PG_ARGISNULL(3))
		n[2] = true;
	else
		v[2] = PG_GETARG_DATUM(3);
	v[3] = detail ? JsonbPGetDatum(detail) : (Datum) 0;
	n[3] = (detail == NULL);
	v[4] = ext ? JsonbPGetDatum(ext) : (Datum) 0;
	n[4] = (ext == NULL);
	v[5] = envs ? JsonbPGetDatum(envs) : (Datum) 0;
	n[5] = (envs == NULL);
	if (token)
	{
		v[6] = PointerGetDatum(pl_token_digest(token));
		v[8] = PG_GETARG_DATUM(2);
	}
	else
		n[6] = n[8] = true;
	v[7] = BoolGetDatum(force_update);
	pl_exec((pl_stage_complete(req_stage) || force_update) ? &upd_completing : &upd_open,
			v, n, 1);
	if (SPI_processed != 1)
	{
		diagnose_refusal(id, token, force_update);
		elog(ERROR, "job task " INT64_FORMAT ": update changed nothing", id);
	}

	/* the row the caller gets: digest removed, params masked */
	result = redacted_datum(0, outer);
	ignore_failed = pl_col_bool(0, 6);
	gate_waiting = pl_col_bool(0, 7);
	message = pl_col_text(0, 8);
	old_stage = pl_col_stage(0, 9);
	new_stage = pl_col_stage(0, 10);
	will_retry = pl_col_bool(0, 11);
	pt = pl_col_int64(0, 12);	/* 0 when the task belongs to no run */
	stage_index = pl_col_int32(0, 13);
	(void) pl_col(0, 4, &isnull);
	if (!isnull)
	{
		int64		event_id = pl_col_int64(0, 4);
		Jsonb	   *hooks = pl_col_jsonb(0, 5);

		pl_announce_event(event_id, pt, id, hooks, new_stage);
	}

	if (run_envs && pt != 0)
	{
		Datum		mv[2];

		mv[0] = Int64GetDatum(pt);
		mv[1] = CStringGetTextDatum(run_envs);
		pl_exec(&merge_run, mv, NULL, 0);
	}

	/* 6. advance, unless an automatic retry takes the task back */
	if (will_retry && old_stage != new_stage && pl_retry_if_left(id, pt))
		result = pl_job_task_datum(id, outer);	/* scheduling again */
	else if (pt != 0 && (old_stage != new_stage || force_trigger) &&
			 (pl_stage_complete(new_stage) || force_trigger))
		pl_advance_after_known(id, pt, stage_index, new_stage, force_trigger,
							   ignore_failed, gate_waiting, message);

	/*
	 * 7. the row, as read back by the update.  Advancing after a completion
	 * touches other tasks and the run only; a forced trigger on an open task
	 * may have started the task itself, so read it again then.
	 */
	if (force_trigger && !pl_stage_complete(new_stage) && pt != 0)
		result = pl_job_task_datum(id, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * heartbeat(id bigint, update_token text) RETURNS void
 * Locks: the job task row (FOR NO KEY UPDATE via UPDATE).
 */
PG_FUNCTION_INFO_V1(pl_heartbeat);
Datum
pl_heartbeat(PG_FUNCTION_ARGS)
{
	static PlStmt upd = {
		"UPDATE pipeline.job_task SET heartbeat_at = now() WHERE id = $1", 1, {INT8OID}
	};
	int64		id;
	char	   *token;
	Datum		v[1];
	PlStage		stage;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("heartbeat: id must not be null")));
	id = PG_GETARG_INT64(0);
	token = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	pl_spi_connect();
	stage = pl_require_token(id, token, true);
	if (pl_stage_complete(stage))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is already %s", id, pl_stage_names[stage]),
				 errdetail("A finished task takes no heartbeats.")));
	v[0] = Int64GetDatum(id);
	pl_exec(&upd, v, NULL, 0);
	pl_spi_finish();
	PG_RETURN_VOID();
}

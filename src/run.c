/*
 * run.c: run_pipeline() and plan(): resolve a pipeline version into its job
 * tasks and their params, then (run_pipeline) store them and start the first
 * set.
 *
 * Layer: api
 *
 * Resolving (the version, its jobs, params, matrix and `if`) is resolve.c's;
 * the needs graph of a dag run is dag.c's.
 *
 * Serialized pipelines (is_parallel false): at most one unfinished run per
 * value of the sequence label (or per pipeline without a label).  The check
 * and the insert run under a transaction advisory lock on (pipeline, value);
 * a finishing run takes the same lock before starting the next queued run.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "dag.h"
#include "defcheck.h"
#include "resolve.h"
#include "lock.h"
#include "run.h"
#include "schedule.h"
#include "transition.h"
#include "util.h"


/* Check that labels is an object of strings. */
static void
check_labels(const char *pipeline, Jsonb *labels)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (!pl_jb_is_object(labels))
		pl_run_error(pipeline, "labels must be a JSON object");
	it = JsonbIteratorInit(&labels->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvString)
			pl_run_error(pipeline, "labels.%s must be a string",
					  pl_clip(pnstrdup(k.val.string.val, k.val.string.len)));
	}
}

/*
 * For a serialized pipeline: the sequence key of a run, or NULL if runs of
 * this pipeline may overlap.
 */
static char *
sequence_key(PlResolved *r, Jsonb *labels)
{
	JsonbValue *par = pl_jb_get(&r->def->root, "is_parallel");
	char	   *label = pl_jbv_string(pl_jb_get(&r->def->root, "sequence_label"));
	JsonbValue *lv;

	if (par->val.boolean)
		return NULL;
	if (label == NULL)
		return pstrdup("");
	lv = pl_jb_get(&labels->root, label);
	if (lv == NULL || lv->type != jbvString)
		pl_run_error(r->name, "runs are serialized by label \"%s\": labels must give it a string value",
				  label);
	return psprintf("%s=%.*s", label, lv->val.string.len, lv->val.string.val);
}

/*
 * Names the caller knows are secret (a chained run: its parent's sensitive
 * runtime envs, chain.c) added to the new run's and its tasks' sensitive
 * names, before its first event is written.  Locks: the new rows only.
 */
static void
add_sensitive(int64 pt, List *names)
{
	static PlStmt upd_run = {
		"UPDATE pipeline.pipeline_task SET sensitive = ARRAY(SELECT DISTINCT s FROM"
		"  pg_catalog.unnest(sensitive || $2::text[]) s ORDER BY s) WHERE id = $1",
		2, {INT8OID, TEXTOID}
	};
	static PlStmt upd_tasks = {
		"UPDATE pipeline.job_task SET sensitive = ARRAY(SELECT DISTINCT s FROM"
		"  pg_catalog.unnest(sensitive || $2::text[]) s ORDER BY s) WHERE pipeline_task_id = $1",
		2, {INT8OID, TEXTOID}
	};
	StringInfoData lit;
	ListCell   *lc;
	Datum		v[2];

	initStringInfo(&lit);
	appendStringInfoChar(&lit, '{');
	foreach(lc, names)
		appendStringInfo(&lit, "%s\"%s\"", lc == list_head(names) ? "" : ",",
						 (char *) lfirst(lc));	/* param names need no escaping */
	appendStringInfoChar(&lit, '}');
	v[0] = Int64GetDatum(pt);
	v[1] = CStringGetTextDatum(lit.data);
	pl_exec(&upd_run, v, NULL, 0);
	pl_exec(&upd_tasks, v, NULL, 0);
}

/*
 * Start a run (run.h): resolve, store the run and its tasks (each carrying
 * priority: claims take higher first, SPEC §14), start the first set (or
 * queue it).  Raises the refusals of run_pipeline().
 * Locks: advisory lock on the sequence key for serialized pipelines, then the
 * new run's rows.
 */
int64
pl_run_start(const char *name, Jsonb *params, bool dry_run, const char *run_by,
			 Jsonb *labels, const char *on_busy, int32 priority, List *extra_sensitive)
{
	static PlStmt ins_run = {
		"INSERT INTO pipeline.pipeline_task (pipeline_name, pipeline_version, stage, params,"
		"  dry_run, run_by, labels, start_at, sequence_key, hooks, sensitive, stage_count, dag)"
		" VALUES ($1, $2, $3::pipeline.task_stage, $4, $5, $6, $7,"
		"  NULL, $8, $9::jsonb, $10::text[], $11, $12)"
		" RETURNING id",
		12, {TEXTOID, INT4OID, TEXTOID, JSONBOID, BOOLOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID,
		TEXTOID, INT4OID, BOOLOID}
	};
	static PlStmt ins_specs = {
		"INSERT INTO pipeline.job_task_spec (job_task_id, job)"
		" SELECT t.id, x.job || pg_catalog.jsonb_build_object('version', x.job_version)"
		" FROM pg_catalog.jsonb_to_recordset($2::jsonb) AS x(stage_index int, task_index int,"
		"   task_name text, job jsonb, job_version int)"
		" JOIN pipeline.job_task t ON t.pipeline_task_id = $1"
		"  AND t.stage_index = x.stage_index AND t.task_index = x.task_index"
		"  AND t.task_name = x.task_name",	/* matrix job tasks share their task_index */
		2, {INT8OID, TEXTOID}
	};
	static PlStmt ins_tasks = {
		"INSERT INTO pipeline.job_task (pipeline_task_id, stage_index, stage_name, task_index,"
		"  task_name, job_name, job_version, stage, params, sensitive, labels, is_parallel,"
		"  ignore_failed, audit, confirm, hooks, dry_run, end_at, retries, timeout,"
		"  priority, concurrency_key, concurrency_limit)"
		" SELECT $1, x.stage_index, x.stage_name, x.task_index, x.task_name, x.job_name,"
		"  x.job_version, x.stage,"
		"  x.params, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.sensitive)),"
		"  x.labels, x.is_parallel, x.ignore_failed,"
		"  CASE WHEN (x.audit->>'enable')::boolean THEN x.audit END,"
		"  CASE WHEN (x.confirm->>'enable')::boolean THEN x.confirm END,"
		"  x.hooks, x.dry_run, " PL_TR_END_AT_SQL("x.stage", "NULL::timestamptz") ","
		"  COALESCE((x.job->>'retries')::int, 0), COALESCE((x.job->>'timeout')::int, 0),"
		"  $3, x.concurrency_key, x.concurrency_limit"
		" FROM pg_catalog.jsonb_to_recordset($2::jsonb) AS x(stage_index int, stage_name text,"
		"  task_index int, task_name text, job_name text, job_version int,"
		"  stage pipeline.task_stage, job jsonb, params jsonb, sensitive jsonb, labels jsonb,"
		"  is_parallel boolean, ignore_failed boolean, audit jsonb, confirm jsonb, hooks jsonb,"
		"  dry_run boolean, concurrency_key text, concurrency_limit int)"
		" ORDER BY x.stage_index, x.task_index",
		3, {INT8OID, TEXTOID, INT4OID}
	};
	static PlStmt ins_tasks_dag = {	/* ins_tasks with the ids and the needs graph */
		"INSERT INTO pipeline.job_task (id, needs, downstream, needs_left, run_when, blocking,"
		"  pipeline_task_id, stage_index, stage_name, task_index,"
		"  task_name, job_name, job_version, stage, params, sensitive, labels, is_parallel,"
		"  ignore_failed, audit, confirm, hooks, dry_run, end_at, retries, timeout,"
		"  priority, concurrency_key, concurrency_limit)"
		" OVERRIDING SYSTEM VALUE"
		" SELECT x.id, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.needs))::bigint[],"
		"  ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.downstream))::bigint[],"
		"  x.needs_left, x.run_when, x.blocking, $1, x.stage_index, x.stage_name, x.task_index, x.task_name, x.job_name,"
		"  x.job_version, x.stage,"
		"  x.params, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.sensitive)),"
		"  x.labels, x.is_parallel, x.ignore_failed,"
		"  CASE WHEN (x.audit->>'enable')::boolean THEN x.audit END,"
		"  CASE WHEN (x.confirm->>'enable')::boolean THEN x.confirm END,"
		"  x.hooks, x.dry_run, " PL_TR_END_AT_SQL("x.stage", "NULL::timestamptz") ","
		"  COALESCE((x.job->>'retries')::int, 0), COALESCE((x.job->>'timeout')::int, 0),"
		"  $3, x.concurrency_key, x.concurrency_limit"
		" FROM pg_catalog.jsonb_to_recordset($2::jsonb) AS x(stage_index int, stage_name text,"
		"  task_index int, task_name text, job_name text, job_version int,"
		"  stage pipeline.task_stage, job jsonb, params jsonb, sensitive jsonb, labels jsonb,"
		"  is_parallel boolean, ignore_failed boolean, audit jsonb, confirm jsonb, hooks jsonb,"
		"  dry_run boolean, id bigint, needs jsonb, downstream jsonb, needs_left int, run_when text,"
		"  blocking boolean, concurrency_key text, concurrency_limit int)"
		" ORDER BY x.stage_index, x.task_index",
		3, {INT8OID, TEXTOID, INT4OID}
	};
	PlResolved	r;
	char	   *seqkey;
	bool		queued = false;
	int64		pt;
	Datum		v[12];
	bool		n[12];
	StringInfoData hooks;

	if (strcmp(on_busy, "error") != 0 && strcmp(on_busy, "queue") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\": on_busy must be 'error' or 'queue', not '%s'",
						pl_clip(name), pl_clip(on_busy))));
	check_labels(name, labels);

	pl_spi_connect();
	pl_resolve(&r, name, params);

	seqkey = sequence_key(&r, labels);
	if (seqkey)
	{
		int64		holder;

		pl_lock_sequence(name, seqkey);
		holder = pl_sched_sequence_holder(name, seqkey, 0);
		if (holder != 0)
		{
			if (strcmp(on_busy, "queue") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg("pipeline \"%s\": run " INT64_FORMAT " is still unfinished%s%s",
								name, holder, seqkey[0] ? " for " : "", seqkey),
						 errdetail("Runs of this pipeline are serialized."),
						 errhint("Pass on_busy => 'queue' to start this run when that one finishes.")));
			queued = true;
		}
	}

	initStringInfo(&hooks);
	appendStringInfo(&hooks, "{\"webhooks\": %s, \"im_robot_notify\": %s, \"mention_users\": %s}",
					 pl_jbv_to_cstring(pl_jb_get(&r.def->root, "webhooks")),
					 pl_jbv_to_cstring(pl_jb_get(&r.def->root, "im_robot_notify")),
					 pl_jbv_to_cstring(pl_jb_get(&r.def->root, "mention_users")));

	memset(n, 0, sizeof(n));
	v[0] = CStringGetTextDatum(name);
	v[1] = Int32GetDatum(r.version);
	v[2] = CStringGetTextDatum("pending");	/* its stage is set below (transition.c) */
	v[3] = JsonbPGetDatum(params);
	v[4] = BoolGetDatum(dry_run);
	v[5] = CStringGetTextDatum(run_by);
	v[6] = JsonbPGetDatum(labels);
	if (seqkey)
		v[7] = CStringGetTextDatum(seqkey);
	else
		n[7] = true;
	v[8] = CStringGetTextDatum(hooks.data);
	v[9] = CStringGetTextDatum(pl_resolve_sensitive_literal(&r.sensitive));
	v[10] = Int32GetDatum(r.nstages);
	v[11] = BoolGetDatum(r.dag);
	pl_exec(&ins_run, v, n, 1);
	pt = pl_col_int64(0, 1);

	if (r.dag)
		pl_resolve_link(&r, true);
	v[0] = Int64GetDatum(pt);
	v[1] = CStringGetTextDatum(pl_resolve_tasks_json(&r, dry_run));
	v[2] = Int32GetDatum(priority);
	pl_exec(r.dag ? &ins_tasks_dag : &ins_tasks, v, NULL, 0);
	pl_exec(&ins_specs, v, NULL, 0);

	if (extra_sensitive != NIL)
		add_sensitive(pt, extra_sensitive);

	pl_tr_run(pt, -1, queued ? PL_PENDING : PL_ACTIVE, NULL, false, NULL, NULL);
	if (!queued)
		pl_sched_start_next(pt);

	pl_spi_finish();
	return pt;
}

/*
 * run_pipeline(pipeline, params, dry_run, run_by, labels, on_busy, priority) RETURNS bigint
 * priority is the last argument since 0.3; NULL means the default 0.
 * Locks: as pl_run_start().
 */
PG_FUNCTION_INFO_V1(pl_run_pipeline);
Datum
pl_run_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run_pipeline: pipeline name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pl_require_read_committed("run_pipeline");
	PG_RETURN_INT64(pl_run_start(name,
								 PG_ARGISNULL(1) ? pl_jsonb_from_cstring("{}") : PG_GETARG_JSONB_P(1),
								 PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2),
								 PG_ARGISNULL(3) ? GetUserNameFromId(GetOuterUserId(), false)
								 : text_to_cstring(PG_GETARG_TEXT_PP(3)),
								 PG_ARGISNULL(4) ? pl_jsonb_from_cstring("{}") : PG_GETARG_JSONB_P(4),
								 PG_ARGISNULL(5) ? "error" : text_to_cstring(PG_GETARG_TEXT_PP(5)),
								 (PG_NARGS() > 6 && !PG_ARGISNULL(6)) ? PG_GETARG_INT32(6) : 0,
								 NIL));
}

/*
 * plan() of a dag pipeline: the SPEC §13 keys added to a job task's "gates"
 * object (its needs as "stage.task" names, matrix expansion, when).
 */
static char *
plan_dag_keys(PlResolved *r, PlTask *t)
{
	StringInfoData b;
	Jsonb	   *needs = pl_jsonb_from_cstring(t->needs);
	int			n = JsonContainerSize(&needs->root);

	initStringInfo(&b);
	appendStringInfoString(&b, ", \"needs\": [");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&needs->root, i);
		int64		id = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(e->val.numeric)));

		if (i > 0)
			appendStringInfoString(&b, ", ");
		escape_json(&b, psprintf("%s.%s", r->tasks[id - 1].stage_name, r->tasks[id - 1].task_name));
	}
	appendStringInfo(&b, "], \"when\": \"%s\", \"blocking\": %s, \"matrix\": %s, \"if_skipped\": %s",
					 t->run_when, t->blocking ? "true" : "false", t->matrix ? t->matrix : "null",
					 t->if_skipped ? "true" : "false");
	return b.data;
}

/*
 * plan(pipeline text, params jsonb) RETURNS TABLE(stage_index, stage_name,
 *   task_index, task_name, job_name, params, gates).  Stores nothing.
 * Params are shown masked.  A dag pipeline's job tasks (one per matrix
 * combination) show needs, when, blocking, matrix and if_skipped in gates.
 */
PG_FUNCTION_INFO_V1(pl_plan);
Datum
pl_plan(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	Jsonb	   *params;
	PlResolved	r;
	MemoryContext outer;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("plan: pipeline name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	params = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);

	InitMaterializedSRF(fcinfo, 0);
	outer = pl_spi_connect();
	pl_resolve(&r, name, params);
	if (r.dag)
		pl_resolve_link(&r, false);

	for (int i = 0; i < r.ntasks; i++)
	{
		PlTask	   *t = &r.tasks[i];
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};
		Jsonb	   *pj = pl_jsonb_from_cstring(t->params);
		Jsonb	   *sens = pl_jsonb_from_cstring(t->sensitive);
		StringInfoData masked;
		JsonbIterator *it = JsonbIteratorInit(&pj->root);
		JsonbValue	k,
					v;
		JsonbIteratorToken tok;
		bool		first = true;
		MemoryContext old;

		initStringInfo(&masked);
		appendStringInfoChar(&masked, '{');
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;
			JsonbValue	probe;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &v, true);
			probe.type = jbvString;
			probe.val.string.val = key;
			probe.val.string.len = strlen(key);
			if (findJsonbValueFromContainer(&sens->root, JB_FARRAY, &probe))
				pl_json_kv_str(&masked, &first, key, "******");
			else
				pl_json_kv_str(&masked, &first, key, pl_jbv_scalar_text(&v));
		}
		appendStringInfoChar(&masked, '}');

		old = MemoryContextSwitchTo(outer);
		values[0] = Int32GetDatum(t->stage_index);
		values[1] = CStringGetTextDatum(t->stage_name);
		values[2] = Int32GetDatum(t->task_index);
		values[3] = CStringGetTextDatum(t->task_name);
		if (t->job_name)
			values[4] = CStringGetTextDatum(t->job_name);
		else
			nulls[4] = true;
		values[5] = JsonbPGetDatum(pl_jsonb_from_cstring(masked.data));
		values[6] = JsonbPGetDatum(pl_jsonb_from_cstring(
														 psprintf("{\"audit\": %s, \"confirm\": %s, \"skip_run\": %s, \"ignore_failed\": %s%s}",
																  t->audit, t->confirm,
																  t->skip_run ? "true" : "false",
																  t->ignore_failed ? "true" : "false",
																  r.dag ? plan_dag_keys(&r, t) : "")));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	pl_spi_finish();
	return (Datum) 0;
}

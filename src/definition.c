/*
 * definition.c: define_job() and define_pipeline().
 *
 * Layer: api
 *
 * A definition is validated completely in C before anything is written; the
 * first problem found raises SQLSTATE 22023 with the JSON path of the
 * offending value, e.g.
 *     pipeline "release": stages[1].tasks[0].job: job "build" does not exist
 * Unknown keys are refused too (a misspelt "timout" would otherwise be
 * silently ignored).  What is stored is a normalized copy: every key present,
 * defaults filled in, hook event names lower-cased.  A new version is
 * numbered max(version)+1 under a transaction advisory lock on the name, so
 * two sessions defining the same name get distinct versions.
 *
 * The checks and typed getters are in defcheck.c, hooks, mentions and gates in
 * defhooks.c; this file walks jobs and pipelines and stores them.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "util.h"
#include "chain.h"
#include "concurrency.h"
#include "defcheck.h"
#include "defdag.h"
#include "defhooks.h"

/*
 * Validate a job body at path (the whole job document, or an inline job of a
 * task) and append its normalized JSON to out.
 */
static void
emit_job(DefCtx *ctx, const char *path, JsonbContainer *job, StringInfo out, bool inline_job)
{
	static const char *const job_keys[] = {"name", "runner", "command", "params", "timeout",
	"retries", "labels", "description", "concurrency", NULL};
	static const char *const param_keys[] = {"name", "default", "required", "sensitive",
	"description", NULL};
	bool		f = true;
	char	   *name;
	char	   *runner;
	JsonbValue *params;

	def_check_keys(ctx, path, job, job_keys);
	name = def_get_string(ctx, path, job, "name", !inline_job, NULL);
	if (name && !pl_valid_name(name, true))
		def_error(ctx, def_path_key(path, "name"),
				  "\"%s\" is not a valid name (1-128 letters, digits, '_', '-', '.', starting with a letter or digit)",
				  pl_clip(name));
	runner = def_get_string(ctx, path, job, "runner", false, "shell");
	if (runner[0] == '\0')
		def_error(ctx, def_path_key(path, "runner"), "must not be empty");

	appendStringInfoChar(out, '{');
	pl_json_kv_str(out, &f, "name", name);
	pl_json_kv_str(out, &f, "runner", runner);
	pl_json_kv_str(out, &f, "command", def_get_string(ctx, path, job, "command", false, ""));
	pl_json_kv_str(out, &f, "description", def_get_string(ctx, path, job, "description", false, ""));

	/* params */
	params = pl_jb_get(job, "params");
	appendStringInfoString(out, ", \"params\": [");
	if (params != NULL && params->type != jbvNull)
	{
		int			n;
		char	  **seen;

		if (!def_is_array(params))
			def_error(ctx, def_path_key(path, "params"), "must be an array, not %s",
					  def_type_name(params));
		n = JsonContainerSize(params->val.binary.data);
		seen = palloc0(sizeof(char *) * (n + 1));
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(params->val.binary.data, i);
			char	   *pp = def_path_idx(path, "params", i);
			JsonbContainer *p;
			char	   *pname;
			JsonbValue *dv;
			char	   *dflt = NULL;
			bool		pf = true;

			if (!def_is_object(e))
				def_error(ctx, pp, "must be an object, not %s", def_type_name(e));
			p = e->val.binary.data;
			def_check_keys(ctx, pp, p, param_keys);
			pname = def_get_string(ctx, pp, p, "name", true, NULL);
			if (!pl_valid_param_name(pname))
				def_error(ctx, def_path_key(pp, "name"),
						  "\"%s\" is not a valid parameter name (letters, digits and _, not starting with a digit)",
						  pl_clip(pname));
			if (strncmp(pname, "JOB_TASK_", 9) == 0 || strcmp(pname, "PIPELINE_TASK_ID") == 0 ||
				strcmp(pname, "PIPELINE_OUTPUT") == 0)
				def_error(ctx, def_path_key(pp, "name"), "\"%s\" is a reserved system parameter",
						  pname);
			for (int j = 0; j < i; j++)
				if (strcmp(seen[j], pname) == 0)
					def_error(ctx, def_path_key(pp, "name"), "duplicate parameter \"%s\"", pname);
			seen[i] = pname;
			dv = pl_jb_get(p, "default");
			if (dv != NULL && dv->type == jbvBinary)
				def_error(ctx, def_path_key(pp, "default"),
						  "must be a string, number or boolean, not %s", def_type_name(dv));
			if (dv != NULL)
				dflt = pl_jbv_scalar_text(dv);
			def_check_size(ctx, def_path_key(pp, "default"), dflt, dflt ? strlen(dflt) : 0,
					   PL_MAX_VALUE, "64 KiB");
			if (i > 0)
				appendStringInfoString(out, ", ");
			appendStringInfoChar(out, '{');
			pl_json_kv_str(out, &pf, "name", pname);
			pl_json_kv_str(out, &pf, "default", dflt);
			pl_json_kv_bool(out, &pf, "required", def_get_bool(ctx, pp, p, "required", false));
			pl_json_kv_bool(out, &pf, "sensitive", def_get_bool(ctx, pp, p, "sensitive", false));
			pl_json_kv_str(out, &pf, "description",
						   def_get_string(ctx, pp, p, "description", false, ""));
			appendStringInfoChar(out, '}');
		}
	}
	appendStringInfoChar(out, ']');
	pl_json_kv_int(out, &f, "timeout", def_get_int(ctx, path, job, "timeout", 0, 7 * 24 * 3600));
	pl_json_kv_int(out, &f, "retries", def_get_int(ctx, path, job, "retries", 0, 100));
	def_emit_string_map(ctx, path, job, "labels", out, &f, false);
	def_emit_concurrency(ctx, path, job, out, &f);
	appendStringInfoChar(out, '}');
}

/* Next version number for name in table, under an advisory lock on the name. */
static int
store_version(const char *table, const char *name, const char *normalized)
{
	static PlStmt next_job = {
		"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.job:' || $1)),"
		" (SELECT COALESCE(max(version), 0) + 1 FROM pipeline.job WHERE name = $1)",
		1, {TEXTOID}
	};
	static PlStmt next_pipe = {
		"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.pipeline:' || $1)),"
		" (SELECT COALESCE(max(version), 0) + 1 FROM pipeline.pipeline WHERE name = $1)",
		1, {TEXTOID}
	};
	static PlStmt ins_job = {
		"INSERT INTO pipeline.job (name, version, definition, created_by)"
		" VALUES ($1, $2, $3::jsonb, $4)", 4, {TEXTOID, INT4OID, TEXTOID, TEXTOID}
	};
	static PlStmt ins_pipe = {
		"INSERT INTO pipeline.pipeline (name, version, definition, created_by)"
		" VALUES ($1, $2, $3::jsonb, $4)", 4, {TEXTOID, INT4OID, TEXTOID, TEXTOID}
	};
	bool		is_job = strcmp(table, "job") == 0;
	Datum		v[4];
	int			version;

	v[0] = CStringGetTextDatum(name);
	pl_exec(is_job ? &next_job : &next_pipe, v, NULL, 1);
	version = pl_col_int32(0, 2);
	v[1] = Int32GetDatum(version);
	v[2] = CStringGetTextDatum(normalized);
	v[3] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	pl_exec(is_job ? &ins_job : &ins_pipe, v, NULL, 0);
	return version;
}

static bool
job_exists(const char *name)
{
	static PlStmt q = {
		"SELECT 1 FROM pipeline.job WHERE name = $1 LIMIT 1", 1, {TEXTOID}
	};
	Datum		v[1];

	v[0] = CStringGetTextDatum(name);
	pl_exec(&q, v, NULL, 1);
	return SPI_processed > 0;
}

static Jsonb *
require_object_arg(FunctionCallInfo fcinfo, const char *kind)
{
	Jsonb	   *jb;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("define_%s: definition must not be null", kind)));
	jb = PG_GETARG_JSONB_P(0);
	if (!pl_jb_is_object(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s definition must be a JSON object", kind)));
	return jb;
}

/* The whole document (path "$") is at most PL_MAX_DOCUMENT bytes as jsonb. */
static void
check_document_size(DefCtx *ctx, Jsonb *jb)
{
	size_t		size = VARSIZE_ANY_EXHDR(jb);

	if (size > PL_MAX_DOCUMENT)
		def_error(ctx, "$", "the definition is %zu bytes (as jsonb); at most 1 MiB is allowed", size);
}

/*
 * define_job(definition jsonb) RETURNS int
 * Locks: advisory transaction lock on the job name.
 */
PG_FUNCTION_INFO_V1(pl_define_job);
Datum
pl_define_job(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = require_object_arg(fcinfo, "job");
	DefCtx		ctx = {"job", NULL};
	StringInfoData out;
	int			version;
	JsonbValue *nv = pl_jb_get(&jb->root, "name");

	if (nv && nv->type == jbvString)
		ctx.name = pnstrdup(nv->val.string.val, nv->val.string.len);
	check_document_size(&ctx, jb);
	initStringInfo(&out);
	emit_job(&ctx, "", &jb->root, &out, false);

	pl_spi_connect();
	version = store_version("job", ctx.name, out.data);
	pl_spi_finish();
	PG_RETURN_INT32(version);
}

/*
 * define_pipeline(definition jsonb) RETURNS int
 * Locks: advisory transaction lock on the pipeline name.
 */
PG_FUNCTION_INFO_V1(pl_define_pipeline);
Datum
pl_define_pipeline(PG_FUNCTION_ARGS)
{
	static const char *const pipe_keys[] = {"name", "is_parallel", "sequence_label", "webhooks",
	"im_robot_notify", "mention_users", "stages", "description", "next_pipelines", NULL};
	static const char *const stage_keys[] = {"name", "is_parallel", "tasks", NULL};
	static const char *const task_keys[] = {"name", "job", "run_params", "ignore_failed",
		"skip_run", "audit", "confirm", "webhooks", "im_robot_notify", "mention_users",
		"needs", "matrix", "when", "blocking", "if", "concurrency",
	NULL};
	Jsonb	   *jb = require_object_arg(fcinfo, "pipeline");
	JsonbContainer *root = &jb->root;
	DefCtx		ctx = {"pipeline", NULL};
	StringInfoData out;
	bool		f = true;
	JsonbValue *stages;
	char	   *name;
	char	   *seq;
	int			nstages;
	char	  **stage_names;
	int			total_tasks = 0;
	int			version;
	JsonbValue *nv = pl_jb_get(root, "name");
	DefDagTask *dag = palloc0(sizeof(DefDagTask) * (PL_MAX_TASKS + 1));
	int			ndag = 0;
	bool		uses_dag = false;

	if (nv && nv->type == jbvString)
		ctx.name = pnstrdup(nv->val.string.val, nv->val.string.len);
	check_document_size(&ctx, jb);

	pl_spi_connect();			/* job lookups */

	def_check_keys(&ctx, "", root, pipe_keys);
	name = def_get_string(&ctx, "", root, "name", true, NULL);
	if (!pl_valid_name(name, true))
		def_error(&ctx, "name",
				  "\"%s\" is not a valid name (1-128 letters, digits, '_', '-', '.', starting with a letter or digit)",
				  pl_clip(name));

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	pl_json_kv_str(&out, &f, "name", name);
	pl_json_kv_str(&out, &f, "description", def_get_string(&ctx, "", root, "description", false, ""));
	pl_json_kv_bool(&out, &f, "is_parallel", def_get_bool(&ctx, "", root, "is_parallel", true));
	seq = def_get_string(&ctx, "", root, "sequence_label", false, NULL);
	if (seq && !pl_valid_name(seq, true))
		def_error(&ctx, "sequence_label", "\"%s\" is not a valid label name", pl_clip(seq));
	pl_json_kv_str(&out, &f, "sequence_label", seq);
	def_emit_hooks(&ctx, "", root, "webhooks", &out, &f, false);
	def_emit_hooks(&ctx, "", root, "im_robot_notify", &out, &f, true);
	def_emit_mentions(&ctx, "", root, &out, &f);
	pl_chain_emit_definition(&ctx, name, root, &out, &f);

	stages = pl_jb_get(root, "stages");
	if (stages == NULL || stages->type == jbvNull)
		def_error(&ctx, "stages", "is required");
	if (!def_is_array(stages))
		def_error(&ctx, "stages", "must be an array, not %s", def_type_name(stages));
	nstages = JsonContainerSize(stages->val.binary.data);
	if (nstages == 0)
		def_error(&ctx, "stages", "must hold at least one stage");
	if (nstages > PL_MAX_STAGES)
		def_error(&ctx, "stages", "holds %d stages; at most %d are allowed", nstages,
				  PL_MAX_STAGES);
	stage_names = palloc0(sizeof(char *) * nstages);

	appendStringInfoString(&out, ", \"stages\": [");
	for (int si = 0; si < nstages; si++)
	{
		JsonbValue *sv = getIthJsonbValueFromContainer(stages->val.binary.data, si);
		char	   *sp = psprintf("stages[%d]", si);
		JsonbContainer *st;
		char	   *sname;
		JsonbValue *tasks;
		int			ntasks;
		char	  **task_names;
		bool		sf = true;

		if (!def_is_object(sv))
			def_error(&ctx, sp, "must be an object, not %s", def_type_name(sv));
		st = sv->val.binary.data;
		def_check_keys(&ctx, sp, st, stage_keys);
		sname = def_get_string(&ctx, sp, st, "name", true, NULL);
		if (!pl_valid_name(sname, false))
			def_error(&ctx, def_path_key(sp, "name"),
					  "\"%s\" is not a valid stage name (1-128 letters, digits, '_', '-', starting with a letter or digit)",
					  pl_clip(sname));
		for (int j = 0; j < si; j++)
			if (strcmp(stage_names[j], sname) == 0)
				def_error(&ctx, def_path_key(sp, "name"), "duplicate stage name \"%s\" (also stages[%d])",
						  sname, j);
		stage_names[si] = sname;

		if (si > 0)
			appendStringInfoString(&out, ", ");
		appendStringInfoChar(&out, '{');
		pl_json_kv_str(&out, &sf, "name", sname);
		pl_json_kv_bool(&out, &sf, "is_parallel", def_get_bool(&ctx, sp, st, "is_parallel", false));

		tasks = pl_jb_get(st, "tasks");
		if (tasks == NULL || tasks->type == jbvNull)
			def_error(&ctx, def_path_key(sp, "tasks"), "is required");
		if (!def_is_array(tasks))
			def_error(&ctx, def_path_key(sp, "tasks"), "must be an array, not %s",
					  def_type_name(tasks));
		ntasks = JsonContainerSize(tasks->val.binary.data);
		if (ntasks == 0)
			def_error(&ctx, def_path_key(sp, "tasks"), "must hold at least one task");
		if (ntasks > PL_MAX_STAGE_TASKS)
			def_error(&ctx, def_path_key(sp, "tasks"), "holds %d tasks; at most %d are allowed",
					  ntasks, PL_MAX_STAGE_TASKS);
		total_tasks += ntasks;
		if (total_tasks > PL_MAX_TASKS)
			def_error(&ctx, def_path_key(sp, "tasks"),
					  "brings the pipeline to %d tasks; at most %d are allowed in all stages",
					  total_tasks, PL_MAX_TASKS);
		task_names = palloc0(sizeof(char *) * ntasks);

		appendStringInfoString(&out, ", \"tasks\": [");
		for (int ti = 0; ti < ntasks; ti++)
		{
			JsonbValue *tv = getIthJsonbValueFromContainer(tasks->val.binary.data, ti);
			char	   *tp = psprintf("%s.tasks[%d]", sp, ti);
			JsonbContainer *t;
			char	   *tname;
			JsonbValue *jobv;
			bool		tf = true;

			if (!def_is_object(tv))
				def_error(&ctx, tp, "must be an object, not %s", def_type_name(tv));
			t = tv->val.binary.data;
			def_check_keys(&ctx, tp, t, task_keys);
			tname = def_get_string(&ctx, tp, t, "name", true, NULL);
			if (!pl_valid_name(tname, false))
				def_error(&ctx, def_path_key(tp, "name"),
						  "\"%s\" is not a valid task name (1-128 letters, digits, '_', '-', starting with a letter or digit)",
						  pl_clip(tname));
			for (int j = 0; j < ti; j++)
				if (strcmp(task_names[j], tname) == 0)
					def_error(&ctx, def_path_key(tp, "name"),
							  "duplicate task name \"%s\" in stage \"%s\" (also tasks[%d])",
							  tname, sname, j);
			task_names[ti] = tname;

			if (ti > 0)
				appendStringInfoString(&out, ", ");
			appendStringInfoChar(&out, '{');
			pl_json_kv_str(&out, &tf, "name", tname);

			jobv = pl_jb_get(t, "job");
			if (jobv == NULL || jobv->type == jbvNull)
				def_error(&ctx, def_path_key(tp, "job"), "is required");
			if (jobv->type == jbvString)
			{
				char	   *jname = pnstrdup(jobv->val.string.val, jobv->val.string.len);

				if (!job_exists(jname))
					def_error(&ctx, def_path_key(tp, "job"), "job \"%s\" does not exist", pl_clip(jname));
				pl_json_kv_str(&out, &tf, "job", jname);
			}
			else if (def_is_object(jobv))
			{
				appendStringInfoString(&out, ", \"job\": ");
				emit_job(&ctx, def_path_key(tp, "job"), jobv->val.binary.data, &out, true);
			}
			else
				def_error(&ctx, def_path_key(tp, "job"),
						  "must be a job name or an inline job object, not %s",
						  def_type_name(jobv));

			def_emit_string_map(&ctx, tp, t, "run_params", &out, &tf, true);
			pl_json_kv_bool(&out, &tf, "ignore_failed", def_get_bool(&ctx, tp, t, "ignore_failed", false));
			pl_json_kv_bool(&out, &tf, "skip_run", def_get_bool(&ctx, tp, t, "skip_run", false));
			def_emit_gate(&ctx, tp, t, "audit", "auditors", &out, &tf);
			def_emit_gate(&ctx, tp, t, "confirm", "checkers", &out, &tf);
			def_emit_hooks(&ctx, tp, t, "webhooks", &out, &tf, false);
			def_emit_hooks(&ctx, tp, t, "im_robot_notify", &out, &tf, true);
			def_emit_mentions(&ctx, tp, t, &out, &tf);
			def_emit_concurrency(&ctx, tp, t, &out, &tf);
			def_emit_dag_fields(&ctx, tp, t, &out, &tf);
			uses_dag |= def_task_uses_dag(t);
			dag[ndag].si = si;
			dag[ndag].ti = ti;
			dag[ndag].stage = sname;
			dag[ndag].name = tname;
			dag[ndag].serial = !def_get_bool(&ctx, sp, st, "is_parallel", false);
			dag[ndag].needs = pl_jb_get(t, "needs") ? pl_jb_get(t, "needs")->val.binary.data : NULL;
			ndag++;
			appendStringInfoChar(&out, '}');
		}
		appendStringInfoString(&out, "]}");
	}
	appendStringInfoString(&out, "]}");
	if (uses_dag)
		def_check_needs(&ctx, dag, ndag);

	version = store_version("pipeline", name, out.data);
	pl_spi_finish();
	PG_RETURN_INT32(version);
}

/*
 * run.c: run_pipeline() and plan(): resolve a pipeline version into its job
 * tasks and their params, then (run_pipeline) store them and start the first
 * set.
 *
 * Layer: api
 *
 * Params (SPEC §7), lowest precedence first, fixed when the run starts:
 *   job's declared defaults -> task's run_params -> run params (unscoped keys)
 *   -> run params "stage.task.NAME" (scoped to one task)
 * The run's runtime envs and the system params are layered on top when a
 * runner claims the task (claim.c), so they reflect what earlier jobs
 * reported.  Values are stored as strings: they become environment variables.
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

#include "defcheck.h"
#include "lock.h"
#include "run.h"
#include "schedule.h"
#include "transition.h"
#include "util.h"

typedef struct KV
{
	char	   *key;
	char	   *val;
} KV;

typedef struct KVList
{
	int			n;
	int			cap;
	KV		   *items;
} KVList;

static KV *
kv_find(KVList *l, const char *key)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->items[i].key, key) == 0)
			return &l->items[i];
	return NULL;
}

static void
kv_set(KVList *l, const char *key, const char *val)
{
	KV		   *e = kv_find(l, key);

	if (e)
	{
		e->val = pstrdup(val);
		return;
	}
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 8;
		l->items = l->items ? repalloc(l->items, sizeof(KV) * l->cap) : palloc(sizeof(KV) * l->cap);
	}
	l->items[l->n].key = pstrdup(key);
	l->items[l->n].val = pstrdup(val);
	l->n++;
}

static char *
kv_to_json(KVList *l)
{
	StringInfoData b;
	bool		first = true;

	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	for (int i = 0; i < l->n; i++)
		pl_json_kv_str(&b, &first, l->items[i].key, l->items[i].val);
	appendStringInfoChar(&b, '}');
	return b.data;
}

/* One resolved task. */
typedef struct PlTask
{
	int			stage_index;
	char	   *stage_name;
	bool		is_parallel;
	int			task_index;
	char	   *task_name;
	char	   *job_name;		/* NULL = inline */
	int			job_version;
	char	   *job;			/* normalized job JSON */
	JsonbContainer *jobc;		/* the same, parsed (the definition's memory) */
	KVList		plist;			/* params while they are resolved */
	char	   *labels;			/* job labels JSON */
	char	   *params;			/* JSON object of strings */
	char	   *sensitive;		/* JSON array of names */
	bool		ignore_failed;
	bool		skip_run;
	char	   *audit;
	char	   *confirm;
	char	   *hooks;
} PlTask;

typedef struct PlResolved
{
	char	   *name;
	int			version;
	Jsonb	   *def;
	int			nstages;
	int			ntasks;
	PlTask	   *tasks;
	KVList		sensitive;		/* union, for masking the run's params */
} PlResolved;

typedef struct JobCacheEnt
{
	char	   *name;
	int			version;
	Jsonb	   *def;
} JobCacheEnt;

static void
run_error(const char *pipeline, const char *fmt,...) pg_attribute_printf(2, 3);

static void
run_error(const char *pipeline, const char *fmt,...)
{
	va_list		ap;
	char	   *msg;

	va_start(ap, fmt);
	msg = pl_vformat(fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("pipeline \"%s\": %s", pl_clip(pipeline), msg)));
}

static JobCacheEnt *
lookup_job(List **cache, const char *name)
{
	static PlStmt q = {
		"SELECT version, definition FROM pipeline.job WHERE name = $1"
		" ORDER BY version DESC LIMIT 1", 1, {TEXTOID}
	};
	ListCell   *lc;
	Datum		v[1];
	JobCacheEnt *e;

	foreach(lc, *cache)
	{
		e = lfirst(lc);
		if (strcmp(e->name, name) == 0)
			return e;
	}
	v[0] = CStringGetTextDatum(name);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		return NULL;
	e = palloc(sizeof(JobCacheEnt));
	e->name = pstrdup(name);
	e->version = pl_col_int32(0, 1);
	e->def = pl_col_jsonb(0, 2);
	*cache = lappend(*cache, e);
	return e;
}

static char *
jbv_string(JsonbValue *v)
{
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Add the string pairs of a JSON object container to a KVList. */
static void
kv_add_object(KVList *l, JsonbContainer *obj)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (obj == NULL)
		return;
	it = JsonbIteratorInit(obj);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		char	   *val;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		val = pl_jbv_scalar_text(&v);
		if (val != NULL)
			kv_set(l, key, val);
	}
}

/*
 * Validate the run params: an object of scalars; scoped keys name an existing
 * stage and task.  Splits them into unscoped and scoped lists.
 */
static void
split_run_params(PlResolved *r, Jsonb *params, KVList *unscoped, KVList *scoped)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (params == NULL)
		return;
	if (!pl_jb_is_object(params))
		run_error(r->name, "params must be a JSON object");
	it = JsonbIteratorInit(&params->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		char	   *val;
		char	   *dot1;
		char	   *dot2;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (v.type == jbvBinary)
			run_error(r->name, "params.%s must be a string, number or boolean", pl_clip(key));
		val = pl_jbv_scalar_text(&v);
		dot1 = strchr(key, '.');
		if (dot1 == NULL)
		{
			if (!pl_valid_param_name(key))
				run_error(r->name, "params: \"%s\" is not a valid parameter name", pl_clip(key));
			if (val)
				kv_set(unscoped, key, val);
			continue;
		}
		dot2 = strchr(dot1 + 1, '.');
		if (dot2 == NULL || !pl_valid_param_name(dot2 + 1))
			run_error(r->name,
					  "params: \"%s\" is neither a parameter name nor \"stage.task.NAME\"", pl_clip(key));
		{
			bool		found = false;
			char	   *sname = pnstrdup(key, dot1 - key);
			char	   *tname = pnstrdup(dot1 + 1, dot2 - dot1 - 1);

			for (int i = 0; i < r->ntasks; i++)
				if (strcmp(r->tasks[i].stage_name, sname) == 0 &&
					strcmp(r->tasks[i].task_name, tname) == 0)
					found = true;
			if (!found)
				run_error(r->name, "params: \"%s\" names no task (no task \"%s\" in a stage \"%s\")",
						  pl_clip(key), pl_clip(tname), pl_clip(sname));
		}
		if (val)
			kv_set(scoped, key, val);
	}
}

static char *
gate_json(JsonbContainer *task, const char *key)
{
	JsonbValue *g = pl_jb_get(task, key);

	return g ? pl_jbv_to_cstring(g) : pstrdup("null");
}

/*
 * Resolve the latest version of pipeline `name` with run params `params`.
 * Raises 42704 if there is no such pipeline, 22023 on bad params or a
 * missing required param.  Caller is connected to SPI.
 */
static void
resolve(PlResolved *r, const char *name, Jsonb *params)
{
	static PlStmt q = {
		"SELECT version, definition FROM pipeline.pipeline WHERE name = $1"
		" ORDER BY version DESC LIMIT 1", 1, {TEXTOID}
	};
	Datum		v[1];
	JsonbValue *stages;
	List	   *jobcache = NIL;
	KVList		unscoped = {0};
	KVList		scoped = {0};
	int			k;

	memset(r, 0, sizeof(*r));
	r->name = pstrdup(name);
	v[0] = CStringGetTextDatum(name);
	pl_exec(&q, v, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", pl_clip(name)),
				 errhint("Define it with pipeline.define_pipeline().")));
	r->version = pl_col_int32(0, 1);
	r->def = pl_col_jsonb(0, 2);

	stages = pl_jb_get(&r->def->root, "stages");
	r->nstages = JsonContainerSize(stages->val.binary.data);
	for (int si = 0; si < r->nstages; si++)
	{
		JsonbValue *st = getIthJsonbValueFromContainer(stages->val.binary.data, si);
		JsonbValue *tasks = pl_jb_get(st->val.binary.data, "tasks");

		r->ntasks += JsonContainerSize(tasks->val.binary.data);
	}
	r->tasks = palloc0(sizeof(PlTask) * r->ntasks);

	k = 0;
	for (int si = 0; si < r->nstages; si++)
	{
		JsonbValue *st = getIthJsonbValueFromContainer(stages->val.binary.data, si);
		JsonbContainer *sc = st->val.binary.data;
		JsonbValue *tasks = pl_jb_get(sc, "tasks");
		int			nt = JsonContainerSize(tasks->val.binary.data);
		char	   *sname = jbv_string(pl_jb_get(sc, "name"));
		bool		par = pl_jb_get(sc, "is_parallel")->val.boolean;

		for (int ti = 0; ti < nt; ti++, k++)
		{
			JsonbValue *tv = getIthJsonbValueFromContainer(tasks->val.binary.data, ti);
			JsonbContainer *tc = tv->val.binary.data;
			PlTask	   *t = &r->tasks[k];
			JsonbValue *jobv = pl_jb_get(tc, "job");
			JsonbContainer *job;
			StringInfoData hooks;

			t->stage_index = si;
			t->stage_name = sname;
			t->is_parallel = par;
			t->task_index = ti;
			t->task_name = jbv_string(pl_jb_get(tc, "name"));
			t->ignore_failed = pl_jb_get(tc, "ignore_failed")->val.boolean;
			t->skip_run = pl_jb_get(tc, "skip_run")->val.boolean;
			t->audit = gate_json(tc, "audit");
			t->confirm = gate_json(tc, "confirm");
			/* no hooks: "{}", so the row (rewritten at every stage change) stays narrow */
			if (JsonContainerSize(pl_jb_get(tc, "webhooks")->val.binary.data) == 0 &&
				JsonContainerSize(pl_jb_get(tc, "im_robot_notify")->val.binary.data) == 0 &&
				JsonContainerSize(pl_jb_get(tc, "mention_users")->val.binary.data) == 0)
				t->hooks = pstrdup("{}");
			else
			{
				initStringInfo(&hooks);
				appendStringInfo(&hooks, "{\"webhooks\": %s, \"im_robot_notify\": %s, \"mention_users\": %s}",
								 pl_jbv_to_cstring(pl_jb_get(tc, "webhooks")),
								 pl_jbv_to_cstring(pl_jb_get(tc, "im_robot_notify")),
								 pl_jbv_to_cstring(pl_jb_get(tc, "mention_users")));
				t->hooks = hooks.data;
			}

			if (jobv->type == jbvString)
			{
				JobCacheEnt *je;

				t->job_name = jbv_string(jobv);
				je = lookup_job(&jobcache, t->job_name);
				if (je == NULL)
					run_error(name, "stages[%d].tasks[%d].job: job \"%s\" does not exist",
							  si, ti, t->job_name);
				t->job_version = je->version;
				job = &je->def->root;
				t->job = pl_jsonb_to_cstring(je->def);
			}
			else
			{
				job = jobv->val.binary.data;
				t->job = pl_jbv_to_cstring(jobv);
			}
			t->jobc = job;
			t->labels = pl_jbv_to_cstring(pl_jb_get(job, "labels"));
			/* declared defaults now; sensitive names */
			{
				KVList		p = {0};
				JsonbValue *decl = pl_jb_get(job, "params");
				int			nd = JsonContainerSize(decl->val.binary.data);
				StringInfoData sens;
				bool		sfirst = true;

				initStringInfo(&sens);
				appendStringInfoChar(&sens, '[');
				for (int d = 0; d < nd; d++)
				{
					JsonbValue *dv = getIthJsonbValueFromContainer(decl->val.binary.data, d);
					char	   *pname = jbv_string(pl_jb_get(dv->val.binary.data, "name"));
					char	   *dflt = jbv_string(pl_jb_get(dv->val.binary.data, "default"));

					if (dflt)
						kv_set(&p, pname, dflt);
					if (pl_jb_get(dv->val.binary.data, "sensitive")->val.boolean)
					{
						if (!sfirst)
							appendStringInfoString(&sens, ", ");
						sfirst = false;
						escape_json(&sens, pname);
						kv_set(&r->sensitive, pname, "");
					}
				}
				appendStringInfoChar(&sens, ']');
				t->sensitive = sens.data;
				kv_add_object(&p, pl_jb_get(tc, "run_params")->val.binary.data);
				t->plist = p;	/* finished below, once the run params are known */
			}
		}
	}

	split_run_params(r, params, &unscoped, &scoped);

	/*
	 * A run param reaches every task, so a name one job declares sensitive
	 * is masked on every task of the run.
	 */
	{
		StringInfoData all;
		bool		first = true;

		initStringInfo(&all);
		appendStringInfoChar(&all, '[');
		for (int i = 0; i < r->sensitive.n; i++)
		{
			if (!first)
				appendStringInfoString(&all, ", ");
			first = false;
			escape_json(&all, r->sensitive.items[i].key);
		}
		appendStringInfoChar(&all, ']');
		for (int i = 0; i < r->ntasks; i++)
			r->tasks[i].sensitive = all.data;
	}

	/* finish params: run params, scoped params, required check */
	for (int i = 0; i < r->ntasks; i++)
	{
		PlTask	   *t = &r->tasks[i];
		KVList	   *p = &t->plist;
		char	   *prefix = psprintf("%s.%s.", t->stage_name, t->task_name);
		size_t		plen = strlen(prefix);
		JsonbValue *decl = pl_jb_get(t->jobc, "params");
		int			nd = JsonContainerSize(decl->val.binary.data);

		for (int u = 0; u < unscoped.n; u++)
			kv_set(p, unscoped.items[u].key, unscoped.items[u].val);
		for (int s = 0; s < scoped.n; s++)
			if (strncmp(scoped.items[s].key, prefix, plen) == 0)
				kv_set(p, scoped.items[s].key + plen, scoped.items[s].val);
		for (int d = 0; d < nd; d++)
		{
			JsonbValue *dv = getIthJsonbValueFromContainer(decl->val.binary.data, d);
			char	   *pname = jbv_string(pl_jb_get(dv->val.binary.data, "name"));
			KV		   *e;

			if (!pl_jb_get(dv->val.binary.data, "required")->val.boolean || t->skip_run)
				continue;
			e = kv_find(p, pname);
			if (e == NULL || e->val[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("pipeline \"%s\": stages[%d].tasks[%d] (%s.%s): required param \"%s\" has no value",
								name, t->stage_index, t->task_index, t->stage_name, t->task_name, pname),
						 errhint("Pass it in params, as \"%s\" or \"%s.%s.%s\".",
								 pname, t->stage_name, t->task_name, pname)));
		}
		t->params = kv_to_json(p);
	}
}

/* JSON array of the resolved tasks, for jsonb_to_recordset */
static char *
tasks_json(PlResolved *r, bool dry_run)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoChar(&b, '[');
	for (int i = 0; i < r->ntasks; i++)
	{
		PlTask	   *t = &r->tasks[i];
		bool		f = true;

		if (i > 0)
			appendStringInfoString(&b, ", ");
		appendStringInfoChar(&b, '{');
		pl_json_kv_int(&b, &f, "stage_index", t->stage_index);
		pl_json_kv_str(&b, &f, "stage_name", t->stage_name);
		pl_json_kv_int(&b, &f, "task_index", t->task_index);
		pl_json_kv_str(&b, &f, "task_name", t->task_name);
		pl_json_kv_str(&b, &f, "job_name", t->job_name);
		if (t->job_name)
			pl_json_kv_int(&b, &f, "job_version", t->job_version);
		pl_json_kv_str(&b, &f, "stage", t->skip_run ? "skipped" : "pending");
		pl_json_kv_raw(&b, &f, "job", t->job);
		pl_json_kv_raw(&b, &f, "params", t->params);
		pl_json_kv_raw(&b, &f, "sensitive", t->sensitive);
		pl_json_kv_raw(&b, &f, "labels", t->labels);
		pl_json_kv_bool(&b, &f, "is_parallel", t->is_parallel);
		pl_json_kv_bool(&b, &f, "ignore_failed", t->ignore_failed);
		pl_json_kv_raw(&b, &f, "audit", t->audit);
		pl_json_kv_raw(&b, &f, "confirm", t->confirm);
		pl_json_kv_raw(&b, &f, "hooks", t->hooks);
		pl_json_kv_bool(&b, &f, "dry_run", dry_run);
		appendStringInfoChar(&b, '}');
	}
	appendStringInfoChar(&b, ']');
	return b.data;
}

static char *
sensitive_array_literal(KVList *l)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	for (int i = 0; i < l->n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&b, ',');
		appendStringInfoChar(&b, '"');
		appendStringInfoString(&b, l->items[i].key);	/* param names need no escaping */
		appendStringInfoChar(&b, '"');
	}
	appendStringInfoChar(&b, '}');
	return b.data;
}

/* Check that labels is an object of strings. */
static void
check_labels(const char *pipeline, Jsonb *labels)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (!pl_jb_is_object(labels))
		run_error(pipeline, "labels must be a JSON object");
	it = JsonbIteratorInit(&labels->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvString)
			run_error(pipeline, "labels.%s must be a string",
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
	char	   *label = jbv_string(pl_jb_get(&r->def->root, "sequence_label"));
	JsonbValue *lv;

	if (par->val.boolean)
		return NULL;
	if (label == NULL)
		return pstrdup("");
	lv = pl_jb_get(&labels->root, label);
	if (lv == NULL || lv->type != jbvString)
		run_error(r->name, "runs are serialized by label \"%s\": labels must give it a string value",
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
	KVList		l = {0};
	ListCell   *lc;
	Datum		v[2];

	foreach(lc, names)
		kv_set(&l, (char *) lfirst(lc), "");
	v[0] = Int64GetDatum(pt);
	v[1] = CStringGetTextDatum(sensitive_array_literal(&l));
	pl_exec(&upd_run, v, NULL, 0);
	pl_exec(&upd_tasks, v, NULL, 0);
}

/*
 * Start a run (run.h): resolve, store the run and its tasks, start the first
 * set (or queue it).  Raises the refusals of run_pipeline().
 * Locks: advisory lock on the sequence key for serialized pipelines, then the
 * new run's rows.
 */
int64
pl_run_start(const char *name, Jsonb *params, bool dry_run, const char *run_by,
			 Jsonb *labels, const char *on_busy, List *extra_sensitive)
{
	static PlStmt ins_run = {
		"INSERT INTO pipeline.pipeline_task (pipeline_name, pipeline_version, stage, params,"
		"  dry_run, run_by, labels, start_at, sequence_key, hooks, sensitive, stage_count)"
		" VALUES ($1, $2, $3::pipeline.task_stage, $4, $5, $6, $7,"
		"  NULL, $8, $9::jsonb, $10::text[], $11)"
		" RETURNING id",
		11, {TEXTOID, INT4OID, TEXTOID, JSONBOID, BOOLOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID,
		TEXTOID, INT4OID}
	};
	static PlStmt ins_specs = {
		"INSERT INTO pipeline.job_task_spec (job_task_id, job)"
		" SELECT t.id, x.job || pg_catalog.jsonb_build_object('version', x.job_version)"
		" FROM pg_catalog.jsonb_to_recordset($2::jsonb) AS x(stage_index int, task_index int,"
		"   job jsonb, job_version int)"
		" JOIN pipeline.job_task t ON t.pipeline_task_id = $1"
		"  AND t.stage_index = x.stage_index AND t.task_index = x.task_index",
		2, {INT8OID, TEXTOID}
	};
	static PlStmt ins_tasks = {
		"INSERT INTO pipeline.job_task (pipeline_task_id, stage_index, stage_name, task_index,"
		"  task_name, job_name, job_version, stage, params, sensitive, labels, is_parallel,"
		"  ignore_failed, audit, confirm, hooks, dry_run, end_at, retries, timeout)"
		" SELECT $1, x.stage_index, x.stage_name, x.task_index, x.task_name, x.job_name,"
		"  x.job_version, x.stage,"
		"  x.params, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.sensitive)),"
		"  x.labels, x.is_parallel, x.ignore_failed,"
		"  CASE WHEN (x.audit->>'enable')::boolean THEN x.audit END,"
		"  CASE WHEN (x.confirm->>'enable')::boolean THEN x.confirm END,"
		"  x.hooks, x.dry_run, " PL_TR_END_AT_SQL("x.stage", "NULL::timestamptz") ","
		"  COALESCE((x.job->>'retries')::int, 0), COALESCE((x.job->>'timeout')::int, 0)"
		" FROM pg_catalog.jsonb_to_recordset($2::jsonb) AS x(stage_index int, stage_name text,"
		"  task_index int, task_name text, job_name text, job_version int,"
		"  stage pipeline.task_stage, job jsonb, params jsonb, sensitive jsonb, labels jsonb,"
		"  is_parallel boolean, ignore_failed boolean, audit jsonb, confirm jsonb, hooks jsonb,"
		"  dry_run boolean)"
		" ORDER BY x.stage_index, x.task_index",
		2, {INT8OID, TEXTOID}
	};
	PlResolved	r;
	char	   *seqkey;
	bool		queued = false;
	int64		pt;
	Datum		v[11];
	bool		n[11];
	StringInfoData hooks;

	if (strcmp(on_busy, "error") != 0 && strcmp(on_busy, "queue") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\": on_busy must be 'error' or 'queue', not '%s'",
						pl_clip(name), pl_clip(on_busy))));
	check_labels(name, labels);

	pl_spi_connect();
	resolve(&r, name, params);

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
	v[9] = CStringGetTextDatum(sensitive_array_literal(&r.sensitive));
	v[10] = Int32GetDatum(r.nstages);
	pl_exec(&ins_run, v, n, 1);
	pt = pl_col_int64(0, 1);

	v[0] = Int64GetDatum(pt);
	v[1] = CStringGetTextDatum(tasks_json(&r, dry_run));
	pl_exec(&ins_tasks, v, NULL, 0);
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
 * run_pipeline(pipeline, params, dry_run, run_by, labels, on_busy) RETURNS bigint
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
								 NIL));
}

/*
 * plan(pipeline text, params jsonb) RETURNS TABLE(stage_index, stage_name,
 *   task_index, task_name, job_name, params, gates).  Stores nothing.
 * Params are shown masked.
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
	resolve(&r, name, params);

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
														 psprintf("{\"audit\": %s, \"confirm\": %s, \"skip_run\": %s, \"ignore_failed\": %s}",
																  t->audit, t->confirm,
																  t->skip_run ? "true" : "false",
																  t->ignore_failed ? "true" : "false")));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	pl_spi_finish();
	return (Datum) 0;
}

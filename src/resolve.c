/*
 * resolve.c: resolve the latest version of a pipeline into its job tasks and
 * their params, for run_pipeline() and plan() (run.c).
 *
 * Layer: api
 *
 * Params (SPEC §7), lowest precedence first, fixed when the run starts:
 *   job's declared defaults -> task's run_params -> matrix values (SPEC §13)
 *   -> run params (unscoped keys) -> run params "stage.task.NAME" (scoped to
 *   one task of the definition: all its matrix job tasks)
 * The run's runtime envs and the system params are layered on top when a
 * runner claims the task (claim.c), so they reflect what earlier jobs
 * reported.  Values are stored as strings: they become environment variables.
 *
 * A pipeline whose tasks use needs/matrix/when/blocking/if (SPEC §13) is a
 * "dag" run: each task becomes one job task per matrix combination, its `if`
 * is evaluated on its effective params, and dag.c links the job tasks.
 *
 * Locks: none (plain SELECTs of definitions).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "dag.h"
#include "defcheck.h"
#include "defdag.h"
#include "resolve.h"
#include "util.h"

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

typedef struct JobCacheEnt
{
	char	   *name;
	int			version;
	Jsonb	   *def;
} JobCacheEnt;

void
pl_run_error(const char *pipeline, const char *fmt,...)
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

char *
pl_jbv_string(JsonbValue *v)
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
		pl_run_error(r->name, "params must be a JSON object");
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
			pl_run_error(r->name, "params.%s must be a string, number or boolean", pl_clip(key));
		val = pl_jbv_scalar_text(&v);
		dot1 = strchr(key, '.');
		if (dot1 == NULL)
		{
			if (!pl_valid_param_name(key))
				pl_run_error(r->name, "params: \"%s\" is not a valid parameter name", pl_clip(key));
			if (val)
				kv_set(unscoped, key, val);
			continue;
		}
		dot2 = strchr(dot1 + 1, '.');
		if (dot2 == NULL || !pl_valid_param_name(dot2 + 1))
			pl_run_error(r->name,
					  "params: \"%s\" is neither a parameter name nor \"stage.task.NAME\"", pl_clip(key));
		{
			bool		found = false;
			char	   *sname = pnstrdup(key, dot1 - key);
			char	   *tname = pnstrdup(dot1 + 1, dot2 - dot1 - 1);

			for (int i = 0; i < r->ntasks; i++)
				if (strcmp(r->tasks[i].stage_name, sname) == 0 &&
					strcmp(r->tasks[i].base_name, tname) == 0)
					found = true;
			if (!found)
				pl_run_error(r->name, "params: \"%s\" names no task (no task \"%s\" in a stage \"%s\")",
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
void
pl_resolve(PlResolved *r, const char *name, Jsonb *params)
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

		for (int ti = 0; ti < (int) JsonContainerSize(tasks->val.binary.data); ti++)
		{
			JsonbContainer *tc = getIthJsonbValueFromContainer(tasks->val.binary.data, ti)->val.binary.data;

			r->ntasks += pl_dag_matrix_size(tc);
			r->dag |= def_task_uses_dag(tc);
		}
	}
	if (r->ntasks > PL_MAX_RUN_TASKS)
		pl_run_error(name, "its matrices make %d job tasks; at most %d are allowed in a run",
					 r->ntasks, PL_MAX_RUN_TASKS);
	r->tasks = palloc0(sizeof(PlTask) * r->ntasks);

	k = 0;
	for (int si = 0; si < r->nstages; si++)
	{
		JsonbValue *st = getIthJsonbValueFromContainer(stages->val.binary.data, si);
		JsonbContainer *sc = st->val.binary.data;
		JsonbValue *tasks = pl_jb_get(sc, "tasks");
		int			nt = JsonContainerSize(tasks->val.binary.data);
		char	   *sname = pl_jbv_string(pl_jb_get(sc, "name"));
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
			t->task_name = pl_jbv_string(pl_jb_get(tc, "name"));
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

				t->job_name = pl_jbv_string(jobv);
				je = lookup_job(&jobcache, t->job_name);
				if (je == NULL)
					pl_run_error(name, "stages[%d].tasks[%d].job: job \"%s\" does not exist",
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
					char	   *pname = pl_jbv_string(pl_jb_get(dv->val.binary.data, "name"));
					char	   *dflt = pl_jbv_string(pl_jb_get(dv->val.binary.data, "default"));

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
			t->base_name = t->task_name;
			t->tc = tc;
			t->run_when = pl_jb_get(tc, "when") ? pl_jbv_string(pl_jb_get(tc, "when")) : "on_success";
			t->blocking = pl_jb_get(tc, "blocking") && pl_jb_get(tc, "blocking")->val.boolean;
			if (pl_jb_get(tc, "matrix"))
			{
				/* one job task per combination, the matrix values above run_params */
				PlTask		tmpl = *t;
				int			msize = pl_dag_matrix_size(tc);

				for (int c = 0; c < msize; c++)
				{
					PlTask	   *x = &r->tasks[k + c];
					KVList		copy = {0};
					char	   *suffix;
					char	  **keys;
					char	  **vals;
					int			nk;

					*x = tmpl;
					for (int i = 0; i < tmpl.plist.n; i++)
						kv_set(&copy, tmpl.plist.items[i].key, tmpl.plist.items[i].val);
					pl_dag_matrix_combo(tc, c, &suffix, &keys, &vals, &nk, &x->matrix);
					x->plist = copy;
					x->mn = nk;
					x->mkeys = keys;
					x->mvals = vals;
					x->task_name = psprintf("%s%s", tmpl.base_name, suffix);
				}
				k += msize - 1;
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
		char	   *prefix = psprintf("%s.%s.", t->stage_name, t->base_name);
		size_t		plen = strlen(prefix);
		JsonbValue *decl = pl_jb_get(t->jobc, "params");
		int			nd = JsonContainerSize(decl->val.binary.data);

		for (int u = 0; u < unscoped.n; u++)
			kv_set(p, unscoped.items[u].key, unscoped.items[u].val);
		for (int s = 0; s < scoped.n; s++)
			if (strncmp(scoped.items[s].key, prefix, plen) == 0)
				kv_set(p, scoped.items[s].key + plen, scoped.items[s].val);
		for (int m = 0; m < t->mn; m++)
			kv_set(p, t->mkeys[m], t->mvals[m]);	/* the job task's name tells its values */
		{
			char	  **keys = palloc(sizeof(char *) * (p->n + 1));
			char	  **vals = palloc(sizeof(char *) * (p->n + 1));

			for (int j = 0; j < p->n; j++)
			{
				keys[j] = p->items[j].key;
				vals[j] = p->items[j].val;
			}
			t->if_skipped = !pl_dag_if_holds(t->tc, keys, vals, p->n);
		}
		for (int d = 0; d < nd; d++)
		{
			JsonbValue *dv = getIthJsonbValueFromContainer(decl->val.binary.data, d);
			char	   *pname = pl_jbv_string(pl_jb_get(dv->val.binary.data, "name"));
			KV		   *e;

			if (!pl_jb_get(dv->val.binary.data, "required")->val.boolean || t->skip_run ||
				t->if_skipped)
				continue;
			e = kv_find(p, pname);
			if (e == NULL || e->val[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("pipeline \"%s\": stages[%d].tasks[%d] (%s.%s): required param \"%s\" has no value",
								name, t->stage_index, t->task_index, t->stage_name, t->task_name, pname),
						 errhint("Pass it in params, as \"%s\" or \"%s.%s.%s\".",
								 pname, t->stage_name, t->base_name, pname)));
		}
		t->params = kv_to_json(p);
	}
}

/* JSON array of the resolved tasks, for jsonb_to_recordset */
char *
pl_resolve_tasks_json(PlResolved *r, bool dry_run)
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
		pl_json_kv_str(&b, &f, "stage", (t->skip_run || t->if_skipped) ? "skipped" : "pending");
		if (r->dag)
		{
			pl_json_kv_int(&b, &f, "id", t->id);
			pl_json_kv_raw(&b, &f, "needs", t->needs);
			pl_json_kv_raw(&b, &f, "downstream", t->downstream);
			pl_json_kv_int(&b, &f, "needs_left", t->needs_left);
			pl_json_kv_str(&b, &f, "run_when", t->run_when);
			pl_json_kv_bool(&b, &f, "blocking", t->blocking);
		}
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

char *
pl_resolve_sensitive_literal(KVList *l)
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

/*
 * A dag run: allocate the job tasks' ids (so that needs can name them in the
 * one insert) and link them (dag.c).  plan() stores nothing: alloc_ids false
 * numbers them 1..n instead.  Caller is connected to SPI.
 */
void
pl_resolve_link(PlResolved *r, bool alloc_ids)
{
	static PlStmt ids = {
		"SELECT pg_catalog.nextval('pipeline.job_task_id_seq'::regclass)"
		" FROM pg_catalog.generate_series(1, $1)", 1, {INT4OID}
	};
	Datum		v[1];
	PlDagNode  *nodes = palloc0(sizeof(PlDagNode) * (r->ntasks + 1));

	v[0] = Int32GetDatum(r->ntasks);
	if (alloc_ids)
		pl_exec(&ids, v, NULL, 0);
	for (int i = 0; i < r->ntasks; i++)
	{
		PlTask	   *t = &r->tasks[i];
		JsonbValue *nv = pl_jb_get(t->tc, "needs");

		t->id = alloc_ids ? pl_col_int64(i, 1) : i + 1;
		nodes[i].si = t->stage_index;
		nodes[i].ti = t->task_index;
		nodes[i].stage = t->stage_name;
		nodes[i].base = t->base_name;
		nodes[i].serial = !t->is_parallel;
		nodes[i].needs = nv ? nv->val.binary.data : NULL;
		nodes[i].done = t->skip_run || t->if_skipped;
		nodes[i].id = t->id;
	}
	pl_dag_link(nodes, r->ntasks);
	for (int i = 0; i < r->ntasks; i++)
	{
		PlTask	   *t = &r->tasks[i];

		t->needs = pl_dag_ids_json(nodes[i].needs_ids, nodes[i].nneeds);
		t->downstream = pl_dag_ids_json(nodes[i].down_ids, nodes[i].ndown);
		t->needs_left = nodes[i].needs_left;
	}
}

/*
 * chain.c: chained pipelines (SPEC §15): the pipeline field next_pipelines,
 * checked when a pipeline is defined, and the runs it starts when a run ends.
 *
 * Layer: api (it starts runs, through run.c; schedule.c calls it back through
 * pl_sched_run_ended_hook, set by pl_chain_init: schedule.h says why)
 *
 *   next_pipelines: [{"pipeline": "deploy", "on": ["succeeded"],
 *                     "params": {...}, "labels": {...}, "on_busy": "queue"}]
 *
 * Definition (pl_chain_emit_definition, from define_pipeline): every named
 * pipeline must exist already (so the cycle check below sees every edge; a
 * chain is defined from its last pipeline back to its first), "on" lists
 * run end stages (succeeded, failed, canceled; default ["succeeded"]),
 * params and labels are objects of scalars, shown as strings (labels:
 * strings; parent_run and chain_depth are the engine's), on_busy is "queue"
 * (default: like a trigger, a busy serialized pipeline queues the run) or
 * "error".  A cycle through the latest versions of the pipelines the new
 * definition reaches -- a -> b -> a, or a -> a -- is refused with its path.
 * The check runs under one transaction advisory lock ("pipeline
 * next_pipelines") taken by every definition that chains, so two sessions
 * cannot close a cycle between them.
 *
 * Run end (chain_run_ended, called by schedule.c with R(P) of the ending run
 * held, in the transaction that ends it): for each entry listing the end
 * stage, in order, start the named pipeline's latest version with
 *   params   = the ending run's runtime envs, then the entry's params (the
 *              entry wins: it is what the definition's author asked for),
 *   labels   = the entry's labels + parent_run (the ending run's id) and
 *              chain_depth (the ending run's + 1; 0 for a run no chain
 *              started),
 *   run_by   = "pipeline:<ending run id>", dry_run and priority (SPEC §14) as
 *              the ending run,
 *   and every runtime env name the ending run masks masked in the new run.
 * A chained run deeper than pipeline.max_chain_depth is not started.  Each
 * start runs in its own subtransaction: a refusal (a required param without a
 * value, a busy sequence with on_busy "error", a pipeline dropped since) is
 * rolled back alone and the ending run still ends.  What happened to each
 * entry is appended to the ending run's `chained` column:
 *   [{"pipeline": "deploy", "on": "succeeded", "run": 43},
 *    {"pipeline": "notify", "on": "succeeded", "sqlstate": "22023",
 *     "error": "pipeline \"notify\": ... required param \"TO\" has no value"}]
 *
 * Locks: the ending run's row (held by the caller) is updated once; each
 * start takes run_pipeline's locks (its sequence's advisory lock, the new
 * run's rows).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "chain.h"
#include "defcheck.h"
#include "run.h"
#include "schedule.h"
#include "util.h"

#define PL_MAX_NEXT 100			/* entries of next_pipelines */

/* ================================================================ definition */

/* The pipelines the latest version of `name` chains to (char *), or NIL. */
static List *
chained_names(const char *name)
{
	static PlStmt q = {
		"SELECT DISTINCT e->>'pipeline'"
		" FROM (SELECT definition FROM pipeline.pipeline WHERE name = $1"
		"        ORDER BY version DESC LIMIT 1) d,"
		"      pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof("
		"          d.definition->'next_pipelines') = 'array'"
		"        THEN d.definition->'next_pipelines' ELSE '[]' END) e"
		" ORDER BY 1",
		1, {TEXTOID}
	};
	Datum		v[1];
	List	   *out = NIL;

	v[0] = CStringGetTextDatum(name);
	pl_exec(&q, v, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *s = pl_col_text((int) i, 1);

		if (s)
			out = lappend(out, s);
	}
	return out;
}

static bool
name_in(List *l, const char *name)
{
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * Depth-first from `from` over the latest versions: true if `target` is
 * reached; *path then holds the names from `from` to `target`.
 */
static bool
reaches(const char *from, const char *target, List **visited, List **path)
{
	List	   *next;
	ListCell   *lc;

	check_stack_depth();
	if (strcmp(from, target) == 0)
	{
		*path = list_make1(pstrdup(from));
		return true;
	}
	if (name_in(*visited, from))
		return false;
	*visited = lappend(*visited, pstrdup(from));
	next = chained_names(from);
	foreach(lc, next)
	{
		if (reaches((char *) lfirst(lc), target, visited, path))
		{
			*path = lcons(pstrdup(from), *path);
			return true;
		}
	}
	return false;
}

/* "on": a non-empty array of run end stages; appends the normalized list */
static void
emit_on(DefCtx *ctx, const char *ep, JsonbContainer *entry, StringInfo out)
{
	JsonbValue *on = pl_jb_get(entry, "on");
	char	   *path = def_path_key(ep, "on");
	int			n;

	appendStringInfoString(out, ", \"on\": [");
	if (on == NULL || on->type == jbvNull)
	{
		appendStringInfoString(out, "\"succeeded\"]");
		return;
	}
	if (!def_is_array(on))
		def_error(ctx, path, "must be an array of run stages (succeeded, failed, canceled), not %s",
				  def_type_name(on));
	n = JsonContainerSize(on->val.binary.data);
	if (n == 0)
		def_error(ctx, path, "must list at least one of succeeded, failed, canceled");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *s = getIthJsonbValueFromContainer(on->val.binary.data, i);
		char	   *ip = psprintf("%s[%d]", path, i);
		char	   *stage;

		if (s->type != jbvString)
			def_error(ctx, ip, "must be a string, not %s", def_type_name(s));
		stage = pnstrdup(s->val.string.val, s->val.string.len);
		if (strcmp(stage, "succeeded") != 0 && strcmp(stage, "failed") != 0 &&
			strcmp(stage, "canceled") != 0)
			def_error(ctx, ip, "\"%s\" is not a stage a run ends in (succeeded, failed, canceled)",
					  pl_clip(stage));
		if (i > 0)
			appendStringInfoString(out, ", ");
		escape_json(out, stage);
	}
	appendStringInfoChar(out, ']');
}

/*
 * Validate the definition's next_pipelines (pipeline `self`) and append the
 * normalized list to out; nothing when the key is absent or null.  Caller is
 * connected to SPI.  Locks: the advisory lock named above, when it chains.
 */
void
pl_chain_emit_definition(DefCtx *ctx, const char *self, JsonbContainer *root,
						 StringInfo out, bool *first)
{
	static const char *const entry_keys[] = {"pipeline", "on", "params", "labels", "on_busy", NULL};
	static PlStmt lock = {
		"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline next_pipelines'))",
		0, {InvalidOid}
	};
	JsonbValue *given = pl_jb_get(root, "next_pipelines");
	JsonbContainer *arr;
	int			n;

	if (given == NULL || given->type == jbvNull)
		return;					/* stored without the key: chains nothing */
	arr = def_emit_array_start(ctx, "", root, "next_pipelines", out, first);
	n = JsonContainerSize(arr);
	if (n > PL_MAX_NEXT)
		def_error(ctx, "next_pipelines", "holds %d pipelines; at most %d are allowed", n, PL_MAX_NEXT);
	if (n > 0)
		pl_exec(&lock, NULL, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *ev = getIthJsonbValueFromContainer(arr, i);
		char	   *ep = psprintf("next_pipelines[%d]", i);
		JsonbContainer *e;
		char	   *target;
		char	   *on_busy;
		bool		f = true;
		List	   *visited = NIL;
		List	   *path = NIL;

		if (!def_is_object(ev))
			def_error(ctx, ep, "must be an object, not %s", def_type_name(ev));
		e = ev->val.binary.data;
		def_check_keys(ctx, ep, e, entry_keys);
		target = def_get_string(ctx, ep, e, "pipeline", true, NULL);
		if (!pl_valid_name(target, true))
			def_error(ctx, def_path_key(ep, "pipeline"), "\"%s\" is not a valid pipeline name",
					  pl_clip(target));
		if (strcmp(target, self) != 0 && !pl_pipeline_exists(target))
			def_error(ctx, def_path_key(ep, "pipeline"),
					  "pipeline \"%s\" does not exist (define the pipelines a chain starts before the ones that start them)",
					  pl_clip(target));
		if (reaches(target, self, &visited, &path))
		{
			StringInfoData cyc;
			ListCell   *lc;

			initStringInfo(&cyc);
			appendStringInfoString(&cyc, self);
			foreach(lc, path)
				appendStringInfo(&cyc, " -> %s", (char *) lfirst(lc));
			def_error(ctx, def_path_key(ep, "pipeline"),
					  "chaining \"%s\" makes a cycle: %s", pl_clip(target), cyc.data);
		}
		on_busy = def_get_string(ctx, ep, e, "on_busy", false, "queue");
		if (strcmp(on_busy, "queue") != 0 && strcmp(on_busy, "error") != 0)
			def_error(ctx, def_path_key(ep, "on_busy"), "must be \"queue\" or \"error\", not \"%s\"",
					  pl_clip(on_busy));
		{
			JsonbValue *labels = pl_jb_get(e, "labels");

			if (labels && def_is_object(labels))
			{
				if (pl_jb_get(labels->val.binary.data, "parent_run"))
					def_error(ctx, def_path_key(def_path_key(ep, "labels"), "parent_run"),
							  "is set by the engine (the id of the run that started this one)");
				if (pl_jb_get(labels->val.binary.data, "chain_depth"))
					def_error(ctx, def_path_key(def_path_key(ep, "labels"), "chain_depth"),
							  "is set by the engine (how many chained runs led to this one)");
			}
		}

		if (i > 0)
			appendStringInfoString(out, ", ");
		appendStringInfoChar(out, '{');
		pl_json_kv_str(out, &f, "pipeline", target);
		emit_on(ctx, ep, e, out);
		def_emit_string_map(ctx, ep, e, "params", out, &f, true);
		def_emit_string_map(ctx, ep, e, "labels", out, &f, false);
		pl_json_kv_str(out, &f, "on_busy", on_busy);
		appendStringInfoChar(out, '}');
	}
	appendStringInfoChar(out, ']');
}

/* ================================================================ run end */

/* one entry of the ending run's next_pipelines that lists its end stage */
typedef struct ChainStart
{
	char	   *pipeline;
	Jsonb	   *params;
	Jsonb	   *labels;
	char	   *on_busy;
	List	   *sensitive;		/* char * */
	int			depth;
	bool		dry_run;
	int32		priority;		/* the ending run's (SPEC §14): a chain keeps its urgency */
} ChainStart;

typedef struct StartOne
{
	ChainStart *c;
	const char *run_by;
	int64		run;
} StartOne;

static void
start_one_body(void *arg)
{
	StartOne   *s = (StartOne *) arg;
	ChainStart *c = s->c;

	s->run = pl_run_start(c->pipeline, c->params, c->dry_run, s->run_by, c->labels, c->on_busy,
						  c->priority, c->sensitive);
}

/* pl_run_start in a subtransaction: the run id, or 0 with *sqlstate and *why set */
static int64
start_one(ChainStart *c, const char *run_by, char **sqlstate, char **why)
{
	StartOne	s = {c, run_by, 0};
	ErrorData  *e = pl_subxact_try(start_one_body, &s, pl_error_is_refusal);

	if (e == NULL)
		return s.run;
	*sqlstate = pstrdup(unpack_sql_state(e->sqlerrcode));
	*why = pstrdup(e->message);
	FreeErrorData(e);
	return 0;
}

/*
 * The entries of the ending run's next_pipelines that list `stage`, with
 * what each start needs.  Returns how many; *starts palloc'd.
 */
static int
read_starts(int64 run_id, PlStage stage, ChainStart **starts)
{
	static PlStmt q = {
		"SELECT e.v->>'pipeline',"
		"  p.runtime_envs || COALESCE(e.v->'params', '{}'),"
		"  COALESCE(e.v->'labels', '{}') || pg_catalog.jsonb_build_object("
		"    'parent_run', p.id::text, 'chain_depth', (x.depth + 1)::text),"
		"  COALESCE(e.v->>'on_busy', 'queue'),"
		"  ARRAY(SELECT s FROM pg_catalog.unnest(p.sensitive) s"
		"         WHERE p.runtime_envs ? s AND NOT COALESCE(e.v->'params', '{}') ? s),"
		"  x.depth + 1, p.dry_run,"
		"  COALESCE((SELECT max(t.priority) FROM pipeline.job_task t WHERE t.pipeline_task_id = p.id), 0)"
		" FROM pipeline.pipeline_task p"
		" JOIN pipeline.pipeline d ON d.name = p.pipeline_name AND d.version = p.pipeline_version"
		" CROSS JOIN LATERAL (SELECT CASE WHEN p.labels->>'chain_depth' ~ '^[0-9]{1,6}$'"
		"    THEN (p.labels->>'chain_depth')::int ELSE 0 END AS depth) x"
		" CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(d.definition->'next_pipelines')"
		"   WITH ORDINALITY e(v, ord)"
		" WHERE p.id = $1 AND pg_catalog.jsonb_typeof(d.definition->'next_pipelines') = 'array'"
		"   AND e.v->'on' ? $2"
		" ORDER BY e.ord",
		2, {INT8OID, TEXTOID}
	};
	Datum		v[2];
	int			n;

	v[0] = Int64GetDatum(run_id);
	v[1] = CStringGetTextDatum(pl_stage_names[stage]);
	pl_exec(&q, v, NULL, 0);
	n = (int) SPI_processed;
	*starts = palloc0(sizeof(ChainStart) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		ChainStart *c = &(*starts)[i];
		bool		isnull;
		Datum		arr = pl_col(i, 5, &isnull);

		c->pipeline = pl_col_text(i, 1);
		c->params = pl_col_jsonb(i, 2);
		c->labels = pl_col_jsonb(i, 3);
		c->on_busy = pl_col_text(i, 4);
		c->depth = pl_col_int32(i, 6);
		c->dry_run = pl_col_bool(i, 7);
		c->priority = pl_col_int32(i, 8);
		if (!isnull)
		{
			Datum	   *names;
			int			nn;

			deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
							  &names, NULL, &nn);
			for (int k = 0; k < nn; k++)
				c->sensitive = lappend(c->sensitive, TextDatumGetCString(names[k]));
		}
	}
	return n;
}

/*
 * schedule.c's run-ended hook: start the next pipelines of run_id, which has
 * just ended in `stage`, and record the outcome on it.  Never raises an error
 * for a run it cannot start (see the file comment).
 */
static void
chain_run_ended(int64 run_id, PlStage stage)
{
	static PlStmt rec = {
		"UPDATE pipeline.pipeline_task SET chained = chained || $2::jsonb"
		" WHERE id = $1",
		2, {INT8OID, TEXTOID}
	};
	ChainStart *starts;
	int			n = read_starts(run_id, stage, &starts);
	char	   *run_by;
	StringInfoData outcome;
	Datum		v[2];

	if (n == 0)
		return;
	run_by = psprintf("pipeline:" INT64_FORMAT, run_id);
	initStringInfo(&outcome);
	appendStringInfoChar(&outcome, '[');
	for (int i = 0; i < n; i++)
	{
		ChainStart *c = &starts[i];
		bool		f = true;
		char	   *sqlstate = NULL;
		char	   *why = NULL;
		int64		run = 0;

		if (c->depth > pl_max_chain_depth)
		{
			sqlstate = pstrdup("54000");
			why = psprintf("not started: it would be chained run number %d in a row, and "
						   "pipeline.max_chain_depth is %d", c->depth, pl_max_chain_depth);
		}
		else
			run = start_one(c, run_by, &sqlstate, &why);
		if (i > 0)
			appendStringInfoString(&outcome, ", ");
		appendStringInfoChar(&outcome, '{');
		pl_json_kv_str(&outcome, &f, "pipeline", c->pipeline);
		pl_json_kv_str(&outcome, &f, "on", pl_stage_names[stage]);
		if (run > 0)
			pl_json_kv_int(&outcome, &f, "run", run);
		else
		{
			pl_json_kv_str(&outcome, &f, "sqlstate", sqlstate);
			pl_json_kv_str(&outcome, &f, "error", why);
		}
		appendStringInfoChar(&outcome, '}');
	}
	appendStringInfoChar(&outcome, ']');
	v[0] = Int64GetDatum(run_id);
	v[1] = CStringGetTextDatum(outcome.data);
	pl_exec(&rec, v, NULL, 0);
}

/* Called from _PG_init. */
void
pl_chain_init(void)
{
	pl_sched_run_ended_hook = chain_run_ended;
}

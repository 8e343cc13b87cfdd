/*
 * defdag.c: the SPEC §13 task fields of a pipeline definition -- needs,
 * matrix, when, blocking, if -- validated and written in normalized form, and
 * the needs graph checked once every stage is read (missing task, the task
 * itself, a later stage's task, a cycle named with its path).  Every refusal
 * is def_error (22023, the JSON path).  No locking: it reads only the
 * document.
 *
 * Layer: storage
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "mb/pg_wchar.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "defcheck.h"
#include "defdag.h"
#include "util.h"

/* Does the task use a §13 field?  Such a pipeline runs on the needs graph. */
bool
def_task_uses_dag(JsonbContainer *t)
{
	return pl_jb_get(t, "needs") || pl_jb_get(t, "matrix") || pl_jb_get(t, "when") ||
		pl_jb_get(t, "blocking") || pl_jb_get(t, "if");
}

/* Compile a POSIX regex as PostgreSQL's ~ does; NULL if it compiles, else the reason. */
static char *
regex_problem(const char *pattern)
{
	int			len = strlen(pattern);
	pg_wchar   *w = palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(pattern, w, len);
	regex_t		re;
	int			rc = pg_regcomp(&re, w, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID);
	char		buf[256];

	pfree(w);
	if (rc == REG_OKAY)
	{
		pg_regfree(&re);
		return NULL;
	}
	pg_regerror(rc, &re, buf, sizeof(buf));
	return pstrdup(buf);
}

static void
emit_needs(DefCtx *ctx, const char *tp, JsonbContainer *t, StringInfo out, bool *first)
{
	JsonbValue *nv = pl_jb_get(t, "needs");
	char	   *p = def_path_key(tp, "needs");
	int			n;

	if (nv == NULL)
		return;
	if (!def_is_array(nv))
		def_error(ctx, p, "must be an array of task references, not %s", def_type_name(nv));
	n = JsonContainerSize(nv->val.binary.data);
	if (n > PL_MAX_TASKS)
		def_error(ctx, p, "holds %d references; at most %d are allowed", n, PL_MAX_TASKS);
	appendStringInfo(out, "%s\"needs\": [", *first ? "" : ", ");
	*first = false;
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(nv->val.binary.data, i);
		char	   *s;

		if (e->type != jbvString)
			def_error(ctx, def_path_idx(tp, "needs", i),
					  "must be a \"task\" or \"stage.task\" reference, not %s", def_type_name(e));
		s = pnstrdup(e->val.string.val, e->val.string.len);
		for (int j = 0; j < i; j++)
		{
			JsonbValue *o = getIthJsonbValueFromContainer(nv->val.binary.data, j);

			if (o->type == jbvString && o->val.string.len == e->val.string.len &&
				memcmp(o->val.string.val, e->val.string.val, o->val.string.len) == 0)
				def_error(ctx, def_path_idx(tp, "needs", i), "\"%s\" is named twice (also needs[%d])",
						  pl_clip(s), j);
		}
		if (i > 0)
			appendStringInfoString(out, ", ");
		escape_json(out, s);
	}
	appendStringInfoChar(out, ']');
}

/* matrix: an object of non-empty lists of scalars, at most PL_MAX_MATRIX combinations */
static void
emit_matrix(DefCtx *ctx, const char *tp, JsonbContainer *t, StringInfo out, bool *first)
{
	JsonbValue *mv = pl_jb_get(t, "matrix");
	char	   *p = def_path_key(tp, "matrix");
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	int64		combos = 1;
	int			nkeys = 0;
	bool		kf = true;

	if (mv == NULL)
		return;
	if (!def_is_object(mv))
		def_error(ctx, p, "must be an object of lists, not %s", def_type_name(mv));
	appendStringInfo(out, "%s\"matrix\": {", *first ? "" : ", ");
	*first = false;
	it = JsonbIteratorInit(mv->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		char	   *kp;
		int			n;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		kp = def_path_key(p, key);
		(void) JsonbIteratorNext(&it, &v, true);
		if (!pl_valid_param_name(key))
			def_error(ctx, kp, "\"%s\" is not a valid parameter name", pl_clip(key));
		if (!def_is_array(&v))
			def_error(ctx, kp, "must be a list of values, not %s", def_type_name(&v));
		n = JsonContainerSize(v.val.binary.data);
		if (n == 0)
			def_error(ctx, kp, "must hold at least one value");
		combos *= n;
		if (combos > PL_MAX_MATRIX)
			def_error(ctx, p, "makes more than %d combinations", PL_MAX_MATRIX);
		if (!kf)
			appendStringInfoString(out, ", ");
		kf = false;
		escape_json(out, key);
		appendStringInfoString(out, ": [");
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(v.val.binary.data, i);
			char	   *s;

			if (e->type != jbvString && e->type != jbvNumeric && e->type != jbvBool)
				def_error(ctx, def_path_idx(p, key, i), "must be a string, number or boolean, not %s",
						  def_type_name(e));
			s = pl_jbv_scalar_text(e);
			if (s[0] == '\0' || strlen(s) > PL_MAX_NAME || strpbrk(s, ",=[]") != NULL)
				def_error(ctx, def_path_idx(p, key, i),
						  "\"%s\" is not a valid matrix value (1-%d characters, none of , = [ ])",
						  pl_clip(s), PL_MAX_NAME);
			for (int j = 0; j < i; j++)
				if (strcmp(pl_jbv_scalar_text(getIthJsonbValueFromContainer(v.val.binary.data, j)), s) == 0)
					def_error(ctx, def_path_idx(p, key, i), "\"%s\" is listed twice", pl_clip(s));
			if (i > 0)
				appendStringInfoString(out, ", ");
			escape_json(out, s);
		}
		appendStringInfoChar(out, ']');
		nkeys++;
	}
	if (nkeys == 0)
		def_error(ctx, p, "must name at least one param");
	appendStringInfoChar(out, '}');
}

/*
 * Validate and emit the §13 fields of task t (path tp).  Emitted only when
 * given, so that a pipeline that uses none stores the same document as before.
 */
void
def_emit_dag_fields(DefCtx *ctx, const char *tp, JsonbContainer *t, StringInfo out, bool *first)
{
	JsonbValue *wv = pl_jb_get(t, "when");
	JsonbValue *bv = pl_jb_get(t, "blocking");
	JsonbValue *iv = pl_jb_get(t, "if");
	char	   *when = NULL;

	emit_needs(ctx, tp, t, out, first);
	emit_matrix(ctx, tp, t, out, first);
	if (wv)
	{
		when = def_get_string(ctx, tp, t, "when", false, NULL);
		if (when == NULL || (strcmp(when, "on_success") != 0 && strcmp(when, "manual") != 0 &&
							 strcmp(when, "always") != 0 && strcmp(when, "on_failure") != 0))
			def_error(ctx, def_path_key(tp, "when"),
					  "must be one of on_success, manual, always, on_failure, not %s",
					  when ? psprintf("\"%s\"", pl_clip(when)) : def_type_name(wv));
		pl_json_kv_str(out, first, "when", when);
	}
	if (bv)
	{
		bool		b = def_get_bool(ctx, tp, t, "blocking", false);

		if (when == NULL || strcmp(when, "manual") != 0)
			def_error(ctx, def_path_key(tp, "blocking"),
					  "applies only to a task with \"when\": \"manual\"");
		pl_json_kv_bool(out, first, "blocking", b);
	}
	if (iv)
	{
		char	   *p = def_path_key(tp, "if");
		JsonbIterator *it;
		JsonbValue	k,
					v;
		JsonbIteratorToken tok;
		bool		f = true;
		int			n = 0;

		if (!def_is_object(iv))
			def_error(ctx, p, "must be an object of \"PARAM\": \"regex\", not %s", def_type_name(iv));
		appendStringInfo(out, "%s\"if\": {", *first ? "" : ", ");
		*first = false;
		it = JsonbIteratorInit(iv->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;
			char	   *re;
			char	   *why;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &v, true);
			if (!pl_valid_param_name(key))
				def_error(ctx, def_path_key(p, key), "\"%s\" is not a valid parameter name", pl_clip(key));
			if (v.type != jbvString)
				def_error(ctx, def_path_key(p, key), "must be a regular expression string, not %s",
						  def_type_name(&v));
			re = pnstrdup(v.val.string.val, v.val.string.len);
			def_check_size(ctx, def_path_key(p, key), re, strlen(re), PL_MAX_STRING, "16 kB");
			why = regex_problem(re);
			if (why)
				def_error(ctx, def_path_key(p, key), "invalid regular expression \"%s\": %s",
						  pl_clip(re), why);
			pl_json_kv_str(out, &f, key, re);
			n++;
		}
		if (n == 0)
			def_error(ctx, p, "must name at least one param");
		appendStringInfoChar(out, '}');
	}
}

/* Index of the task named name in stage si, or -1. */
static int
find_task(DefDagTask *tasks, int n, int si, const char *name, int len)
{
	for (int i = 0; i < n; i++)
		if (tasks[i].si == si && (int) strlen(tasks[i].name) == len &&
			memcmp(tasks[i].name, name, len) == 0)
			return i;
	return -1;
}

/* Edges inside one stage: explicit same-stage needs, and the serial chain of tasks without needs. */
typedef struct DagEdges
{
	int			n;
	int		   *to;
} DagEdges;

static bool
dfs(DefDagTask *tasks, DagEdges *adj, int *color, int *stack, int depth, int v, int *cyc_from,
	int *cyc_depth)
{
	color[v] = 1;
	stack[depth] = v;
	for (int e = 0; e < adj[v].n; e++)
	{
		int			w = adj[v].to[e];

		if (color[w] == 1)
		{
			for (int d = 0; d <= depth; d++)
				if (stack[d] == w)
					*cyc_from = d;
			*cyc_depth = depth;
			return true;
		}
		if (color[w] == 0 && dfs(tasks, adj, color, stack, depth + 1, w, cyc_from, cyc_depth))
			return true;
	}
	color[v] = 2;
	return false;
}

/*
 * The needs graph of the whole pipeline: every reference exists, is not the
 * task itself, is not in a later stage, and no cycle (named with its path,
 * reported at the first task of the cycle that has explicit needs).
 */
void
def_check_needs(DefCtx *ctx, DefDagTask *tasks, int n)
{
	DagEdges   *adj = palloc0(sizeof(DagEdges) * n);
	int		   *color = palloc0(sizeof(int) * n);
	int		   *stack = palloc(sizeof(int) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		DefDagTask *t = &tasks[i];
		char	   *tp = psprintf("stages[%d].tasks[%d]", t->si, t->ti);
		int			nn = t->needs ? JsonContainerSize(t->needs) : 0;

		adj[i].to = palloc(sizeof(int) * (nn + 1));
		if (t->needs == NULL && t->serial && t->ti > 0)
			adj[i].to[adj[i].n++] = i - 1;	/* tasks of a stage are listed in order */
		for (int j = 0; j < nn; j++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(t->needs, j);
			const char *s = e->val.string.val;
			int			len = e->val.string.len;
			const char *dot = memchr(s, '.', len);
			int			si = t->si;
			int			target;
			char	   *ref = pnstrdup(s, len);
			const char *sname = t->stage;

			if (dot)
			{
				sname = pnstrdup(s, dot - s);
				si = -1;
				for (int k = 0; k < n && si < 0; k++)
					if ((int) strlen(tasks[k].stage) == dot - s &&
						memcmp(tasks[k].stage, s, dot - s) == 0)
						si = tasks[k].si;
				if (si < 0)
					def_error(ctx, def_path_idx(tp, "needs", j), "\"%s\": there is no stage \"%s\"",
							  pl_clip(ref), pl_clip(sname));
				len -= (dot + 1 - s);
				s = dot + 1;
			}
			target = find_task(tasks, n, si, s, len);
			if (target < 0)
				def_error(ctx, def_path_idx(tp, "needs", j), "\"%s\": there is no task \"%s\" in stage \"%s\"",
						  pl_clip(ref), pl_clip(pnstrdup(s, len)), pl_clip(sname));
			if (target == i)
				def_error(ctx, def_path_idx(tp, "needs", j), "\"%s\": a task cannot need itself",
						  pl_clip(ref));
			if (si > t->si)
				def_error(ctx, def_path_idx(tp, "needs", j),
						  "\"%s\" is in a later stage (stages[%d]); a task can need only tasks of its own or an earlier stage",
						  pl_clip(ref), si);
			if (si == t->si)
				adj[i].to[adj[i].n++] = target;
		}
	}
	for (int i = 0; i < n; i++)
	{
		int			from = 0,
					depth = 0;

		if (color[i] != 0 || !dfs(tasks, adj, color, stack, 0, i, &from, &depth))
			continue;
		{
			/* the cycle is stack[from..depth] -> stack[from]; name it from a task with needs */
			int			len = depth - from + 1;
			int			start = 0;
			StringInfoData c;

			for (int k = 0; k < len; k++)
				if (tasks[stack[from + k]].needs)
				{
					start = k;
					break;
				}
			initStringInfo(&c);
			for (int k = 0; k <= len; k++)
				appendStringInfo(&c, "%s%s", k ? " -> " : "",
								 tasks[stack[from + (start + k) % len]].name);
			def_error(ctx, psprintf("stages[%d].tasks[%d].needs", tasks[stack[from + start]].si,
									tasks[stack[from + start]].ti),
					  "cycle %s", c.data);
		}
	}
}

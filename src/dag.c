/*
 * dag.c: run creation for pipelines that use SPEC §13: matrix expansion,
 * `if` conditions, and the needs graph of the run's job tasks.
 *
 * Layer: api (called by run.c for run_pipeline() and plan(); calls storage
 * helpers only).  No locking: it computes on the resolved run in memory.
 *
 * Stages become generated needs.  A task without `needs` needs the frontier
 * F(s) of the stages before its own: F(0) is empty; F(s+1) is every job task
 * of stage s, plus F(s) again when no task of stage s has generated needs
 * (such a task needs all of F(s), so F(s) is behind stage s already).  In a
 * serial stage a task without `needs` after the first needs the task before
 * it (all its matrix job tasks), and F(s) too unless every task before it in
 * the stage has generated needs.  So "a task without needs waits for every
 * earlier stage" holds with edges only between neighbouring stages in the
 * usual case.  A `needs` naming a task means all of its matrix job tasks.
 *
 * Each job task then gets: needs (ids it needs, for the surfaces), needs_left
 * (how many of them are not complete at creation: skip_run and `if` make a
 * task complete at once, so a task whose needs were all skipped starts with
 * the run) and downstream (ids that need it; only tasks that are open at
 * creation have any): the counters dagsched.c decrements.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "dag.h"
#include "util.h"

/* The matrix's keys, sorted, with their value lists. */
typedef struct MatrixKeys
{
	int			n;
	char	  **keys;
	JsonbContainer **lists;
} MatrixKeys;

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
matrix_keys(JsonbContainer *task, MatrixKeys *m)
{
	JsonbValue *mv = pl_jb_get(task, "matrix");
	int			n;
	char	  **sorted;

	memset(m, 0, sizeof(*m));
	if (mv == NULL || mv->type != jbvBinary)
		return;
	n = JsonContainerSize(mv->val.binary.data);
	sorted = palloc(sizeof(char *) * n);
	{
		JsonbIterator *it = JsonbIteratorInit(mv->val.binary.data);
		JsonbValue	k;
		JsonbIteratorToken tok;
		int			i = 0;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
			if (tok == WJB_KEY)
				sorted[i++] = pnstrdup(k.val.string.val, k.val.string.len);
		n = i;
	}
	qsort(sorted, n, sizeof(char *), cmp_str);
	m->n = n;
	m->keys = sorted;
	m->lists = palloc(sizeof(JsonbContainer *) * n);
	for (int i = 0; i < n; i++)
		m->lists[i] = pl_jb_get(mv->val.binary.data, sorted[i])->val.binary.data;
}

int
pl_dag_matrix_size(JsonbContainer *task)
{
	MatrixKeys	m;
	int			size = 1;

	matrix_keys(task, &m);
	for (int i = 0; i < m.n; i++)
		size *= JsonContainerSize(m.lists[i]);
	return size;
}

void
pl_dag_matrix_combo(JsonbContainer *task, int k, char **suffix, char ***keys, char ***vals,
					int *nkeys, char **json)
{
	MatrixKeys	m;
	StringInfoData s;
	StringInfoData j;
	bool		first = true;
	int		   *pick;

	matrix_keys(task, &m);
	pick = palloc(sizeof(int) * (m.n + 1));
	for (int i = m.n - 1; i >= 0; i--)
	{
		int			len = JsonContainerSize(m.lists[i]);

		pick[i] = k % len;
		k /= len;
	}
	*nkeys = m.n;
	*keys = m.keys;
	*vals = palloc(sizeof(char *) * (m.n + 1));
	initStringInfo(&s);
	initStringInfo(&j);
	appendStringInfoChar(&s, '[');
	appendStringInfoChar(&j, '{');
	for (int i = 0; i < m.n; i++)
	{
		(*vals)[i] = pl_jbv_scalar_text(getIthJsonbValueFromContainer(m.lists[i], pick[i]));
		appendStringInfo(&s, "%s%s=%s", i ? "," : "", m.keys[i], (*vals)[i]);
		pl_json_kv_str(&j, &first, m.keys[i], (*vals)[i]);
	}
	appendStringInfoChar(&s, ']');
	appendStringInfoChar(&j, '}');
	*suffix = s.data;
	*json = j.data;
}

bool
pl_dag_if_holds(JsonbContainer *task, char **keys, char **vals, int n)
{
	JsonbValue *iv = pl_jb_get(task, "if");
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (iv == NULL || iv->type != jbvBinary)
		return true;
	it = JsonbIteratorInit(iv->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		const char *val = "";

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		for (int i = 0; i < n; i++)
			if (strcmp(keys[i], key) == 0)
				val = vals[i];
		if (!DatumGetBool(DirectFunctionCall2Coll(textregexeq, DEFAULT_COLLATION_OID,
												  CStringGetTextDatum(val),
												  PointerGetDatum(cstring_to_text_with_len(v.val.string.val,
																						   v.val.string.len)))))
			return false;
	}
	return true;
}

/* A task of the definition: its job tasks are nodes[start .. start+count-1]. */
typedef struct DagGroup
{
	int			start;
	int			count;
} DagGroup;

/* Index of the group (stage si, task base) or -1 */
static int
find_group(PlDagNode *nodes, DagGroup *g, int ng, int si, const char *base, int len)
{
	for (int i = 0; i < ng; i++)
	{
		PlDagNode  *x = &nodes[g[i].start];

		if (x->si == si && (int) strlen(x->base) == len && memcmp(x->base, base, len) == 0)
			return i;
	}
	return -1;
}

/* Append the nodes of group gi to list (indices), skipping those already marked with stamp. */
static void
add_group(DagGroup *g, int gi, int *list, int *len, int *mark, int stamp)
{
	for (int k = 0; k < g[gi].count; k++)
	{
		int			x = g[gi].start + k;

		if (mark[x] != stamp)
		{
			mark[x] = stamp;
			list[(*len)++] = x;
		}
	}
}

void
pl_dag_link(PlDagNode *nodes, int n)
{
	DagGroup	   *g = palloc(sizeof(DagGroup) * (n + 1));
	int			ng = 0;
	int		  **need = palloc0(sizeof(int *) * (n + 1));
	int		   *nneed = palloc0(sizeof(int) * (n + 1));
	int		   *mark = palloc0(sizeof(int) * (n + 1));
	int		   *front = palloc(sizeof(int) * (n + 1));	/* F(s) */
	int			nfront = 0;
	int		   *next = palloc(sizeof(int) * (n + 1));	/* F(s+1) being built */
	int			nnext = 0;
	bool		stage_generated = false;	/* a task of this stage has generated needs */
	bool		all_generated = true;	/* every task so far in this serial stage too */
	int			stamp = 0;
	int		   *scratch = palloc(sizeof(int) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		if (ng > 0 && nodes[g[ng - 1].start].si == nodes[i].si &&
			nodes[g[ng - 1].start].ti == nodes[i].ti)
			g[ng - 1].count++;
		else
		{
			g[ng].start = i;
			g[ng].count = 1;
			ng++;
		}
	}

	for (int gi = 0; gi < ng; gi++)
	{
		PlDagNode  *t = &nodes[g[gi].start];
		int		   *list = scratch;	/* copied out below: O(edges) memory in all */
		int			len = 0;

		if (gi > 0 && nodes[g[gi - 1].start].si != t->si)
		{
			/* a new stage: F(s) := stage s-1's job tasks (+ F(s-1) if nothing there covered it) */
			if (!stage_generated)
				for (int k = 0; k < nfront; k++)
					next[nnext++] = front[k];
			memcpy(front, next, sizeof(int) * nnext);
			nfront = nnext;
			nnext = 0;
			stage_generated = false;
			all_generated = true;
		}
		stamp++;
		if (t->needs == NULL)
		{
			bool		first_in_stage = (gi == 0 || nodes[g[gi - 1].start].si != t->si);

			if (t->serial && !first_in_stage)
				add_group(g, gi - 1, list, &len, mark, stamp);
			if (!t->serial || first_in_stage || !all_generated)
				for (int k = 0; k < nfront; k++)
					if (mark[front[k]] != stamp)
					{
						mark[front[k]] = stamp;
						list[len++] = front[k];
					}
			stage_generated = true;
		}
		else
		{
			int			nn = JsonContainerSize(t->needs);

			all_generated = false;
			for (int j = 0; j < nn; j++)
			{
				JsonbValue *e = getIthJsonbValueFromContainer(t->needs, j);
				const char *s = e->val.string.val;
				int			slen = e->val.string.len;
				const char *dot = memchr(s, '.', slen);
				int			si = t->si;
				int			target;

				if (dot)
				{
					si = -1;
					for (int k = 0; k < n && si < 0; k++)
						if ((int) strlen(nodes[k].stage) == dot - s &&
							memcmp(nodes[k].stage, s, dot - s) == 0)
							si = nodes[k].si;
					slen -= (dot + 1 - s);
					s = dot + 1;
				}
				target = find_group(nodes, g, ng, si, s, slen);
				if (target < 0 || target == gi)
					elog(ERROR, "needs reference \"%.*s\" of task \"%s\" does not resolve",
						 e->val.string.len, e->val.string.val, t->base);	/* refused at definition */
				add_group(g, target, list, &len, mark, stamp);
			}
		}
		list = palloc(sizeof(int) * (len + 1));
		memcpy(list, scratch, sizeof(int) * len);
		for (int k = 0; k < g[gi].count; k++)
		{
			need[g[gi].start + k] = list;
			nneed[g[gi].start + k] = len;
			next[nnext++] = g[gi].start + k;
		}
	}

	/* ids, counters and downstream lists */
	for (int i = 0; i < n; i++)
	{
		nodes[i].nneeds = nneed[i];
		nodes[i].needs_ids = palloc(sizeof(int64) * (nneed[i] + 1));
		nodes[i].needs_left = 0;
		nodes[i].ndown = 0;
		for (int k = 0; k < nneed[i]; k++)
		{
			PlDagNode  *u = &nodes[need[i][k]];

			nodes[i].needs_ids[k] = u->id;
			if (!u->done)
			{
				nodes[i].needs_left++;
				u->ndown++;
			}
		}
	}
	for (int i = 0; i < n; i++)
	{
		nodes[i].down_ids = palloc(sizeof(int64) * (nodes[i].ndown + 1));
		nodes[i].ndown = 0;
	}
	for (int i = 0; i < n; i++)
		for (int k = 0; k < nneed[i]; k++)
		{
			PlDagNode  *u = &nodes[need[i][k]];

			if (!u->done)
				u->down_ids[u->ndown++] = nodes[i].id;
		}
}

char *
pl_dag_ids_json(const int64 *ids, int n)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoChar(&b, '[');
	for (int i = 0; i < n; i++)
		appendStringInfo(&b, "%s" INT64_FORMAT, i ? ", " : "", ids[i]);
	appendStringInfoChar(&b, ']');
	return b.data;
}

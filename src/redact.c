/*
 * redact.c: what people may see of definitions and hooks.
 *
 * Layer: storage
 *
 * Redaction by position, each rule implemented once and called from SQL
 * (the views, redact_run) and from C (the rows the API returns):
 *   redact_target    a hook target's secret, header values (an object, or an
 *                    array of "Name: value" strings), and the URL's query
 *                    string (robot access tokens), user info and, for
 *                    Feishu/Lark, Slack and Discord, its path token;
 *   redact_hooks     the targets of an object's webhooks / im_robot_notify;
 *   redact_job       the defaults of a job's sensitive params;
 *   redact_pipeline  all of those inside a pipeline definition, and the
 *                    tasks' run_params whose names are sensitive.
 * mask_params (util.c) masks params by name; secrets.c masks sensitive
 * values inside free text (logs, messages, details).
 *
 * Pure functions of their arguments: no SPI, no locks.  Results are palloc'd
 * in the caller's context; pl_redact_hooks returns its input when there is
 * nothing to redact (the rows of update_job_task_status pay one check).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "redact.h"
#include "util.h"

#define MASK "******"
#define MASK_LEN 6

/* ================================================================ by position */

static void
push_key(JsonbParseState **st, JsonbValue *k)
{
	(void) pushJsonbValue(st, WJB_KEY, k);
}

static void
push_string(JsonbParseState **st, JsonbIteratorToken tok, const char *s, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = len;
	(void) pushJsonbValue(st, tok, &v);
}

static bool
key_is(JsonbValue *k, const char *name)
{
	return k->val.string.len == (int) strlen(name) &&
		memcmp(k->val.string.val, name, k->val.string.len) == 0;
}

static bool
jbv_is_container(JsonbValue *v, bool object)
{
	return v->type == jbvBinary &&
		(object ? JsonContainerIsObject(v->val.binary.data)
		 : JsonContainerIsArray(v->val.binary.data));
}

/*
 * Robot and chat webhooks whose token is the URL's path, not its query
 * string: everything after these prefixes (host and path) is masked.
 */
static const char *const path_token_prefixes[] = {
	"open.feishu.cn/open-apis/bot/v2/hook/",
	"open.larksuite.com/open-apis/bot/v2/hook/",
	"hooks.slack.com/services/",
	"discord.com/api/webhooks/",
	"discordapp.com/api/webhooks/",
	NULL
};

/*
 * A URL as people may see it: the user info (https://user:password@host),
 * the query string (robot access tokens) and the path token of the robots
 * above replaced by ******.  NULL if nothing needs masking.
 */
static char *
redact_url(const char *url, int len)
{
	StringInfoData b;
	const char *end = url + len;
	const char *host = url;
	const char *at = NULL;
	const char *cut = memchr(url, '?', len);	/* mask from here on */

	for (const char *p = url; p + 2 < end; p++)
		if (p[0] == ':' && p[1] == '/' && p[2] == '/')
		{
			host = p + 3;
			break;
		}
	for (const char *p = host; p < end && *p != '/' && *p != '?' && *p != '#'; p++)
		if (*p == '@')
			at = p;
	for (int i = 0; path_token_prefixes[i]; i++)
	{
		const char *h = at ? at + 1 : host;
		int			n = strlen(path_token_prefixes[i]);

		if (end - h > n && pg_strncasecmp(h, path_token_prefixes[i], n) == 0 &&
			(cut == NULL || h + n < cut))
			cut = h + n - 1;	/* keep the '/' */
	}
	if (cut == NULL && at == NULL)
		return NULL;
	initStringInfo(&b);
	if (at)
	{
		appendBinaryStringInfo(&b, url, host - url);
		appendStringInfoString(&b, MASK);
		host = at;
	}
	else
		host = url;
	if (cut)
	{
		appendBinaryStringInfo(&b, host, cut + 1 - host);
		appendStringInfoString(&b, MASK);
	}
	else
		appendBinaryStringInfo(&b, host, end - host);
	return b.data;
}

/*
 * Push hook target `c` (an object) redacted: secret, header values (an
 * object of name -> value, or an array of "Name: value" strings), URL.
 */
static JsonbValue *
push_target(JsonbParseState **st, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_END_OBJECT)
		{
			res = pushJsonbValue(st, tok, NULL);
			continue;
		}
		Assert(tok == WJB_KEY);
		(void) JsonbIteratorNext(&it, &v, true);
		push_key(st, &k);
		if ((key_is(&k, "secret") && v.type != jbvNull) ||
			(key_is(&k, "headers") && v.type == jbvString))
			push_string(st, WJB_VALUE, MASK, MASK_LEN);
		else if (key_is(&k, "headers") && v.type == jbvBinary)
		{
			bool		obj = JsonContainerIsObject(v.val.binary.data);
			JsonbIterator *hi = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	hv;
			JsonbIteratorToken ht;

			while ((ht = JsonbIteratorNext(&hi, &hv, true)) != WJB_DONE)
			{
				if (ht == WJB_KEY)
					push_key(st, &hv);
				else if (ht == WJB_VALUE)
					push_string(st, WJB_VALUE, MASK, MASK_LEN);
				else if (ht == WJB_ELEM && !obj && hv.type == jbvString &&
						 memchr(hv.val.string.val, ':', hv.val.string.len))
				{
					/* "Authorization: Bearer x" -> "Authorization: ******" */
					int			n = (char *) memchr(hv.val.string.val, ':', hv.val.string.len)
						- hv.val.string.val;

					push_string(st, WJB_ELEM, psprintf("%.*s: " MASK, n, hv.val.string.val),
								n + 2 + MASK_LEN);
				}
				else if (ht == WJB_ELEM)
					push_string(st, WJB_ELEM, MASK, MASK_LEN);
				else
					(void) pushJsonbValue(st, ht, NULL);
			}
		}
		else if (key_is(&k, "url") && v.type == jbvString)
		{
			char	   *u = redact_url(v.val.string.val, v.val.string.len);

			if (u)
				push_string(st, WJB_VALUE, u, strlen(u));
			else
				(void) pushJsonbValue(st, WJB_VALUE, &v);
		}
		else
			(void) pushJsonbValue(st, WJB_VALUE, &v);
	}
	return res;
}

/* Push an array of hook targets, each redacted (other elements as they are). */
static void
push_target_array(JsonbParseState **st, JsonbContainer *arr)
{
	int			n = JsonContainerSize(arr);

	(void) pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(arr, i);

		if (jbv_is_container(e, true))
			push_target(st, e->val.binary.data);
		else
			(void) pushJsonbValue(st, WJB_ELEM, e);
	}
	(void) pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/* Is this key/value a list of hook targets (webhooks or IM robots)? */
static bool
is_target_list(JsonbValue *k, JsonbValue *v)
{
	return (key_is(k, "webhooks") || key_is(k, "im_robot_notify")) && jbv_is_container(v, false);
}

/*
 * Push a job definition with the defaults of its sensitive params masked.
 * Returns the value pushJsonbValue returned last (the job, at the top level).
 */
static JsonbValue *
push_job(JsonbParseState **st, JsonbContainer *job)
{
	JsonbIterator *it = JsonbIteratorInit(job);
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		int			n;

		if (tok != WJB_KEY)
		{
			res = pushJsonbValue(st, tok, NULL);
			continue;
		}
		(void) JsonbIteratorNext(&it, &v, true);
		push_key(st, &k);
		if (!key_is(&k, "params") || !jbv_is_container(&v, false))
		{
			(void) pushJsonbValue(st, WJB_VALUE, &v);
			continue;
		}
		n = JsonContainerSize(v.val.binary.data);
		(void) pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
		for (int i = 0; i < n; i++)
		{
			JsonbValue *p = getIthJsonbValueFromContainer(v.val.binary.data, i);
			JsonbValue *sens = jbv_is_container(p, true) ?
				pl_jb_get(p->val.binary.data, "sensitive") : NULL;
			JsonbValue *dflt = sens ? pl_jb_get(p->val.binary.data, "default") : NULL;
			JsonbIterator *pi;
			JsonbValue	pv;
			JsonbIteratorToken pt;

			if (sens == NULL || sens->type != jbvBool || !sens->val.boolean ||
				dflt == NULL || dflt->type == jbvNull)
			{
				(void) pushJsonbValue(st, WJB_ELEM, p);
				continue;
			}
			pi = JsonbIteratorInit(p->val.binary.data);
			while ((pt = JsonbIteratorNext(&pi, &pv, true)) != WJB_DONE)
			{
				if (pt == WJB_KEY)
				{
					bool		is_default = key_is(&pv, "default");

					push_key(st, &pv);
					(void) JsonbIteratorNext(&pi, &pv, true);
					if (is_default)
						push_string(st, WJB_VALUE, MASK, MASK_LEN);
					else
						(void) pushJsonbValue(st, WJB_VALUE, &pv);
				}
				else
					(void) pushJsonbValue(st, pt, NULL);
			}
		}
		(void) pushJsonbValue(st, WJB_END_ARRAY, NULL);
	}
	return res;
}

/* Is hooks free of hook targets (nothing to redact)? */
static bool
hooks_empty(Jsonb *hooks)
{
	static const char *const keys[] = {"webhooks", "im_robot_notify"};

	if (!pl_jb_is_object(hooks) || JB_ROOT_COUNT(hooks) == 0)
		return true;
	for (int i = 0; i < (int) lengthof(keys); i++)
	{
		JsonbValue *v = pl_jb_get(&hooks->root, keys[i]);

		if (v && jbv_is_container(v, false) && JsonContainerSize(v->val.binary.data) > 0)
			return false;
	}
	return true;
}

struct SensNames;
static Jsonb *redact_object(Jsonb *doc, struct SensNames *sens);

/* An object with its hook target lists (webhooks, im_robot_notify) redacted. */
Jsonb *
pl_redact_hooks(Jsonb *hooks)
{
	if (hooks_empty(hooks))
		return hooks;
	return redact_object(hooks, NULL);
}

/* Is name in the (deconstructed) text array? */
static bool
name_listed(const char *name, int len, Datum *names, bool *nulls, int n)
{
	for (int i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(names[i]);
		if (VARSIZE_ANY_EXHDR(t) == (Size) len && memcmp(VARDATA_ANY(t), name, len) == 0)
			return true;
	}
	return false;
}

typedef struct SensNames
{
	Datum	   *names;			/* the caller's list ... */
	bool	   *nulls;
	int			n;
	List	   *inline_names;	/* ... and names inline jobs declare sensitive (char *) */
} SensNames;

static bool
sens_listed(SensNames *s, const char *name, int len)
{
	ListCell   *lc;

	if (name_listed(name, len, s->names, s->nulls, s->n))
		return true;
	foreach(lc, s->inline_names)
	{
		const char *in = lfirst(lc);

		if ((int) strlen(in) == len && memcmp(in, name, len) == 0)
			return true;
	}
	return false;
}

/* Push a task of a pipeline definition redacted. */
static void
push_task(JsonbParseState **st, JsonbContainer *task, SensNames *sens)
{
	JsonbIterator *it = JsonbIteratorInit(task);
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
		{
			(void) pushJsonbValue(st, tok, NULL);
			continue;
		}
		(void) JsonbIteratorNext(&it, &v, true);
		push_key(st, &k);
		if (is_target_list(&k, &v))
			push_target_array(st, v.val.binary.data);
		else if (key_is(&k, "job") && jbv_is_container(&v, true))
			push_job(st, v.val.binary.data);
		else if (key_is(&k, "run_params") && jbv_is_container(&v, true))
		{
			JsonbIterator *pi = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	pk,
						pv;
			JsonbIteratorToken pt;

			while ((pt = JsonbIteratorNext(&pi, &pk, true)) != WJB_DONE)
			{
				bool		hit;

				if (pt != WJB_KEY)
				{
					(void) pushJsonbValue(st, pt, NULL);
					continue;
				}
				hit = sens_listed(sens, pk.val.string.val, pk.val.string.len);
				push_key(st, &pk);
				(void) JsonbIteratorNext(&pi, &pv, true);
				if (hit && pv.type != jbvNull)
					push_string(st, WJB_VALUE, MASK, MASK_LEN);
				else
					(void) pushJsonbValue(st, WJB_VALUE, &pv);
			}
		}
		else
			(void) pushJsonbValue(st, WJB_VALUE, &v);
	}
}

/* Call fn on every task object of a pipeline definition's stages. */
static void
for_each_task(JsonbContainer *stages, void (*fn) (JsonbContainer *task, void *arg), void *arg)
{
	int			ns = JsonContainerSize(stages);

	for (int si = 0; si < ns; si++)
	{
		JsonbValue *s = getIthJsonbValueFromContainer(stages, si);
		JsonbValue *tasks = jbv_is_container(s, true) ? pl_jb_get(s->val.binary.data, "tasks") : NULL;

		if (tasks == NULL || !jbv_is_container(tasks, false))
			continue;
		for (int ti = 0; ti < (int) JsonContainerSize(tasks->val.binary.data); ti++)
		{
			JsonbValue *t = getIthJsonbValueFromContainer(tasks->val.binary.data, ti);

			if (jbv_is_container(t, true))
				fn(t->val.binary.data, arg);
		}
	}
}

/* Collect the names an inline job of this task declares sensitive. */
static void
collect_inline_sensitive(JsonbContainer *task, void *arg)
{
	SensNames  *sens = arg;
	JsonbValue *job = pl_jb_get(task, "job");
	JsonbValue *params = job && jbv_is_container(job, true) ? pl_jb_get(job->val.binary.data, "params") : NULL;

	if (params == NULL || !jbv_is_container(params, false))
		return;
	for (int i = 0; i < (int) JsonContainerSize(params->val.binary.data); i++)
	{
		JsonbValue *p = getIthJsonbValueFromContainer(params->val.binary.data, i);
		JsonbValue *s = jbv_is_container(p, true) ? pl_jb_get(p->val.binary.data, "sensitive") : NULL;
		JsonbValue *n = s ? pl_jb_get(p->val.binary.data, "name") : NULL;

		if (s && s->type == jbvBool && s->val.boolean && n && n->type == jbvString)
			sens->inline_names = lappend(sens->inline_names,
										 pnstrdup(n->val.string.val, n->val.string.len));
	}
}

/* a pipeline's "stages" array, each task redacted by push_task */
static void
push_stages(JsonbParseState **st, JsonbContainer *stages, SensNames *sens)
{
	int			ns = JsonContainerSize(stages);

	(void) pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int si = 0; si < ns; si++)
	{
		JsonbValue *s = getIthJsonbValueFromContainer(stages, si);
		JsonbIterator *sit;
		JsonbValue	sk,
					sv;
		JsonbIteratorToken stok;

		if (!jbv_is_container(s, true))
		{
			(void) pushJsonbValue(st, WJB_ELEM, s);
			continue;
		}
		sit = JsonbIteratorInit(s->val.binary.data);
		while ((stok = JsonbIteratorNext(&sit, &sk, true)) != WJB_DONE)
		{
			if (stok != WJB_KEY)
			{
				(void) pushJsonbValue(st, stok, NULL);
				continue;
			}
			(void) JsonbIteratorNext(&sit, &sv, true);
			push_key(st, &sk);
			if (key_is(&sk, "tasks") && jbv_is_container(&sv, false))
			{
				int			nt = JsonContainerSize(sv.val.binary.data);

				(void) pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
				for (int ti = 0; ti < nt; ti++)
				{
					JsonbValue *t = getIthJsonbValueFromContainer(sv.val.binary.data, ti);

					if (jbv_is_container(t, true))
						push_task(st, t->val.binary.data, sens);
					else
						(void) pushJsonbValue(st, WJB_ELEM, t);
				}
				(void) pushJsonbValue(st, WJB_END_ARRAY, NULL);
			}
			else
				(void) pushJsonbValue(st, WJB_VALUE, &sv);
		}
	}
	(void) pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/*
 * The object doc copied with its hook target lists redacted (is_target_list)
 * and, when sens is given (a pipeline), its "stages" by push_stages: the one
 * copy of the top level of hooks and pipeline definitions.
 */
static Jsonb *
redact_object(Jsonb *doc, SensNames *sens)
{
	JsonbParseState *st = NULL;
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	JsonbValue *res = NULL;

	it = JsonbIteratorInit(&doc->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
		{
			res = pushJsonbValue(&st, tok, NULL);
			continue;
		}
		(void) JsonbIteratorNext(&it, &v, true);
		push_key(&st, &k);
		if (is_target_list(&k, &v))
			push_target_array(&st, v.val.binary.data);
		else if (sens && key_is(&k, "stages") && jbv_is_container(&v, false))
			push_stages(&st, v.val.binary.data, sens);
		else
			(void) pushJsonbValue(&st, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(res);
}

/*
 * A pipeline definition as people may see it: hook targets (pipeline- and
 * task-level) redacted, inline jobs' sensitive defaults masked, and every
 * task's run_params masked when named sensitive -- by `sensitive` (the
 * caller passes the names the referenced jobs declare sensitive) or by any
 * inline job of the pipeline (a run param reaches every task of a run, see
 * run.c, so one declaration masks the name everywhere).
 */
static Jsonb *
redact_pipeline(Jsonb *def, SensNames *sens)
{
	JsonbValue *stages;

	if (!pl_jb_is_object(def))
		return def;
	stages = pl_jb_get(&def->root, "stages");
	if (stages && jbv_is_container(stages, false))
		for_each_task(stages->val.binary.data, collect_inline_sensitive, sens);
	return redact_object(def, sens);
}

/* redact_target(target jsonb) RETURNS jsonb */
PG_FUNCTION_INFO_V1(pl_redact_target);
Datum
pl_redact_target(PG_FUNCTION_ARGS)
{
	Jsonb	   *t = PG_GETARG_JSONB_P(0);
	JsonbParseState *st = NULL;

	if (!pl_jb_is_object(t))
		PG_RETURN_JSONB_P(t);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(push_target(&st, &t->root)));
}

/* redact_hooks(hooks jsonb) RETURNS jsonb */
PG_FUNCTION_INFO_V1(pl_redact_hooks_sql);
Datum
pl_redact_hooks_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(pl_redact_hooks(PG_GETARG_JSONB_P(0)));
}

/* redact_job(definition jsonb) RETURNS jsonb */
PG_FUNCTION_INFO_V1(pl_redact_job);
Datum
pl_redact_job(PG_FUNCTION_ARGS)
{
	Jsonb	   *j = PG_GETARG_JSONB_P(0);
	JsonbParseState *st = NULL;
	JsonbValue *params;

	if (!pl_jb_is_object(j))
		PG_RETURN_JSONB_P(j);
	params = pl_jb_get(&j->root, "params");
	if (params == NULL || !jbv_is_container(params, false))
		PG_RETURN_JSONB_P(j);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(push_job(&st, &j->root)));
}

/* redact_pipeline(definition jsonb, sensitive text[]) RETURNS jsonb */
PG_FUNCTION_INFO_V1(pl_redact_pipeline);
Datum
pl_redact_pipeline(PG_FUNCTION_ARGS)
{
	Jsonb	   *def;
	SensNames	sens = {NULL, NULL, 0, NIL};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	def = PG_GETARG_JSONB_P(0);
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
						  &sens.names, &sens.nulls, &sens.n);
	}
	PG_RETURN_JSONB_P(redact_pipeline(def, &sens));
}

/*
 * concurrency.c: the `concurrency` field of jobs and tasks (SPEC §14).
 *
 * Layer: storage
 *
 *   "concurrency": {"key": "deploy-$ENV", "limit": 1}
 *
 * on a job (inline or named) or on a task of a pipeline (the task's wins).
 * At definition time (definition.c) it is checked here and stored
 * normalized: key a non-empty string of at most 200 bytes whose `$` are
 * `$NAME`, `${NAME}` or `$$`; limit an integer from 1 to 100000, 1 when left
 * out; no other field.  At run creation (run.c) the key is expanded from the
 * task's params as they are fixed then (job defaults, run_params, the run's
 * params, SPEC §7) and stored on the job task with its limit.
 *
 * No locking: this file reads only its arguments.  Slots are taken and given
 * back by transition.c; the key's lock is C(key) in lock.c.
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "concurrency.h"
#include "util.h"

/* length of the parameter name starting at s (letters, digits, _; not a digit first) */
static int
name_len(const char *s)
{
	int			n = 0;

	if (!(isalpha((unsigned char) s[0]) || s[0] == '_'))
		return 0;
	while (isalnum((unsigned char) s[n]) || s[n] == '_')
		n++;
	return n;
}

/*
 * Walk tmpl: call emit for each literal run and each name.  Returns NULL if
 * the template is well formed, else what is wrong with it.
 */
typedef void (*PartFn) (void *arg, const char *s, int len, bool is_name);

static const char *
walk(const char *tmpl, PartFn fn, void *arg)
{
	const char *p = tmpl;

	while (*p)
	{
		const char *d = strchr(p, '$');
		int			n;

		if (d == NULL)
		{
			if (fn)
				fn(arg, p, (int) strlen(p), false);
			break;
		}
		if (d > p && fn)
			fn(arg, p, (int) (d - p), false);
		if (d[1] == '$')
		{
			if (fn)
				fn(arg, "$", 1, false);
			p = d + 2;
		}
		else if (d[1] == '{')
		{
			n = name_len(d + 2);
			if (n == 0 || d[2 + n] != '}')
				return "\"${\" must be followed by a parameter name and \"}\"";
			if (fn)
				fn(arg, d + 2, n, true);
			p = d + 3 + n;
		}
		else
		{
			n = name_len(d + 1);
			if (n == 0)
				return "\"$\" must be followed by a parameter name, \"{NAME}\" or \"$\" (\"$$\" is a literal \"$\")";
			if (fn)
				fn(arg, d + 1, n, true);
			p = d + 1 + n;
		}
	}
	return NULL;
}

void
def_emit_concurrency(DefCtx *ctx, const char *path, JsonbContainer *obj,
					 StringInfo out, bool *first)
{
	static const char *const keys[] = {"key", "limit", NULL};
	JsonbValue *v = pl_jb_get(obj, "concurrency");
	char	   *cpath = def_path_key(path, "concurrency");
	JsonbContainer *c;
	JsonbValue *kv;
	JsonbValue *lv;
	char	   *key;
	const char *bad;
	int64		limit = 1;
	bool		f = true;
	StringInfoData cobj;

	if (v == NULL || v->type == jbvNull)
		return;
	if (!def_is_object(v))
		def_error(ctx, cpath, "must be an object {\"key\": ..., \"limit\": ...}, not %s",
				  def_type_name(v));
	c = v->val.binary.data;
	def_check_keys(ctx, cpath, c, keys);
	kv = pl_jb_get(c, "key");
	if (kv == NULL || kv->type == jbvNull)
		def_error(ctx, def_path_key(cpath, "key"), "is required");
	if (kv->type != jbvString)
		def_error(ctx, def_path_key(cpath, "key"), "must be a string, not %s", def_type_name(kv));
	key = pnstrdup(kv->val.string.val, kv->val.string.len);
	if (key[0] == '\0')
		def_error(ctx, def_path_key(cpath, "key"), "must not be empty");
	def_check_size(ctx, def_path_key(cpath, "key"), key, strlen(key), PL_MAX_CONC_KEY, "200 bytes");
	if ((bad = walk(key, NULL, NULL)) != NULL)
		def_error(ctx, def_path_key(cpath, "key"), "\"%s\": %s", pl_clip(key), bad);

	lv = pl_jb_get(c, "limit");
	if (lv != NULL && lv->type != jbvNull)
	{
		char	   *txt = pl_jbv_scalar_text(lv);
		char	   *end;
		long		n;

		errno = 0;
		n = (lv->type == jbvNumeric) ? strtol(txt, &end, 10) : 0;
		if (lv->type != jbvNumeric || errno != 0 || *end != '\0' || n < 1 || n > PL_MAX_CONC_LIMIT)
			def_error(ctx, def_path_key(cpath, "limit"), "must be an integer from 1 to %d, not %s",
					  PL_MAX_CONC_LIMIT,
					  lv->type == jbvNumeric || lv->type == jbvString ? pl_clip(txt) : def_type_name(lv));
		limit = n;
	}

	initStringInfo(&cobj);
	appendStringInfoChar(&cobj, '{');
	pl_json_kv_str(&cobj, &f, "key", key);
	pl_json_kv_int(&cobj, &f, "limit", limit);
	appendStringInfoChar(&cobj, '}');
	pl_json_kv_raw(out, first, "concurrency", cobj.data);
}

typedef struct Expand
{
	StringInfoData buf;
	PlParamLookup lookup;
	void	   *arg;
	char	   *missing;
	List	   *names;
} Expand;

static void
expand_part(void *arg, const char *s, int len, bool is_name)
{
	Expand	   *e = (Expand *) arg;
	char	   *name;
	const char *val;

	if (!is_name)
	{
		appendBinaryStringInfo(&e->buf, s, len);
		return;
	}
	name = pnstrdup(s, len);
	e->names = lappend(e->names, name);
	val = e->lookup(e->arg, name);
	if (val == NULL)
	{
		if (e->missing == NULL)
			e->missing = name;
		return;
	}
	appendStringInfoString(&e->buf, val);
}

char *
pl_conc_expand(const char *tmpl, PlParamLookup lookup, void *arg, char **missing,
			   char ***used_names)
{
	Expand		e;
	ListCell   *lc;
	int			i = 0;

	memset(&e, 0, sizeof(e));
	initStringInfo(&e.buf);
	e.lookup = lookup;
	e.arg = arg;
	if (walk(tmpl, expand_part, &e) != NULL)
		elog(ERROR, "concurrency key \"%s\" was stored malformed", tmpl);
	if (used_names)
	{
		*used_names = palloc0(sizeof(char *) * (list_length(e.names) + 1));
		foreach(lc, e.names)
			(*used_names)[i++] = lfirst(lc);
	}
	*missing = e.missing;
	return e.missing ? NULL : e.buf.data;
}

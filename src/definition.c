/*
 * definition.c: define_job() and define_pipeline().
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
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "pipeline.h"

/* Definition-time limits (README "Definitions"); each refusal is 22023 with the path. */
#define PL_MAX_DOCUMENT (1024 * 1024)	/* a definition, as jsonb */
#define PL_MAX_COMMAND (64 * 1024)	/* a job's command */
#define PL_MAX_VALUE (64 * 1024)	/* a param default, a run_params value */
#define PL_MAX_STRING (16 * 1024)	/* any other string (descriptions, urls, labels, ...) */
#define PL_MAX_HEADER 8192		/* a hook header's value (what hookd sends) */
#define PL_MAX_STAGES 1000		/* stages of a pipeline */
#define PL_MAX_STAGE_TASKS 1000	/* tasks of one stage */
#define PL_MAX_TASKS 2000		/* tasks of a pipeline, all stages together */

typedef struct DefCtx
{
	const char *kind;			/* "job" or "pipeline" */
	const char *name;			/* known name or NULL */
} DefCtx;

static void def_error(DefCtx *ctx, const char *path, const char *fmt,...) pg_attribute_printf(3, 4);

static void
def_error(DefCtx *ctx, const char *path, const char *fmt,...)
{
	StringInfoData msg;

	/* formatted in full (no fixed buffer: a cut could fall inside a character) */
	initStringInfo(&msg);
	for (;;)
	{
		va_list		ap;
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&msg, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&msg, needed);
	}
	if (ctx->name)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\": %s: %s", ctx->kind, pl_clip(ctx->name), pl_clip_n(path, 256),
						msg.data)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s definition: %s: %s", ctx->kind, pl_clip_n(path, 256), msg.data)));
}

/*
 * A user's value as quoted in an error message: at most max bytes, cut at a
 * character boundary (pg_mbcliplen), "..." appended when cut.
 */
char *
pl_clip_n(const char *s, int max)
{
	int			len;

	if (s == NULL)
		return "(null)";
	len = strlen(s);
	if (len <= max)
		return (char *) s;
	return psprintf("%.*s...", pg_mbcliplen(s, len, max), s);
}

char *
pl_clip(const char *s)
{
	return pl_clip_n(s, PL_CLIP_BYTES);
}

static char *
path_key(const char *base, const char *key)
{
	return base[0] ? psprintf("%s.%s", base, key) : pstrdup(key);
}

static char *
path_idx(const char *base, const char *key, int i)
{
	return base[0] ? psprintf("%s.%s[%d]", base, key, i) : psprintf("%s[%d]", key, i);
}

/* A string no longer than max bytes (command, description, defaults, ...). */
static void
check_size(DefCtx *ctx, const char *path, const char *s, size_t len, size_t max,
		   const char *max_text)
{
	if (s != NULL && len > max)
		def_error(ctx, path, "is %zu bytes long; at most %s are allowed", len, max_text);
}

/* names: letters, digits, '_', '-', and (if allowed) '.'; starts with a letter or digit */
bool
pl_valid_name(const char *s, bool allow_dot)
{
	size_t		len = strlen(s);

	if (len == 0 || len > 128)
		return false;
	if (!isalnum((unsigned char) s[0]))
		return false;
	for (const char *p = s; *p; p++)
	{
		if (isalnum((unsigned char) *p) || *p == '_' || *p == '-')
			continue;
		if (allow_dot && *p == '.')
			continue;
		return false;
	}
	return true;
}

/* params become environment variables: [A-Za-z_][A-Za-z0-9_]* */
bool
pl_valid_param_name(const char *s)
{
	size_t		len = strlen(s);

	if (len == 0 || len > 128)
		return false;
	if (!(isalpha((unsigned char) s[0]) || s[0] == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_'))
			return false;
	return true;
}

static const char *
jbv_type_name(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "something else";
	}
}

static bool
jbv_is_object(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
jbv_is_array(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* Refuse keys not in the allowed list (NULL-terminated). */
static void
check_keys(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *const *allowed)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT)
			depth++;
		else if (tok == WJB_END_OBJECT)
			depth--;
		else if (tok == WJB_KEY && depth == 1)
		{
			char	   *k = pnstrdup(v.val.string.val, v.val.string.len);
			bool		ok = false;

			for (const char *const *a = allowed; *a; a++)
				if (strcmp(*a, k) == 0)
					ok = true;
			if (!ok)
			{
				StringInfoData list;

				initStringInfo(&list);
				for (const char *const *a = allowed; *a; a++)
					appendStringInfo(&list, "%s%s", a == allowed ? "" : ", ", *a);
				def_error(ctx, path_key(path, k), "unknown key (allowed keys: %s)", list.data);
			}
		}
	}
}

/* Optional string; returns default if absent or null. */
static char *
get_string(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
		   bool required, const char *dflt)
{
	JsonbValue *v = pl_jb_get(obj, key);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			def_error(ctx, path_key(path, key), "is required");
		return dflt ? pstrdup(dflt) : NULL;
	}
	if (v->type != jbvString)
		def_error(ctx, path_key(path, key), "must be a string, not %s", jbv_type_name(v));
	if (strcmp(key, "command") == 0)
		check_size(ctx, path_key(path, key), v->val.string.val, v->val.string.len,
				   PL_MAX_COMMAND, "64 KiB");
	else
		check_size(ctx, path_key(path, key), v->val.string.val, v->val.string.len,
				   PL_MAX_STRING, "16 KiB");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
get_bool(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key, bool dflt)
{
	JsonbValue *v = pl_jb_get(obj, key);

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvBool)
		def_error(ctx, path_key(path, key), "must be a boolean, not %s", jbv_type_name(v));
	return v->val.boolean;
}

/*
 * A non-negative integer: any JSON number with an integral value (1, 1.0, 1e2),
 * between 0 and maxval.
 */
static int
get_nonneg_int(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
			   int dflt, int maxval)
{
	JsonbValue *v = pl_jb_get(obj, key);
	Datum		num;
	Datum		whole;

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvNumeric)
		def_error(ctx, path_key(path, key), "must be a non-negative integer, not %s",
				  jbv_type_name(v));
	num = NumericGetDatum(v->val.numeric);
	whole = DirectFunctionCall2(numeric_trunc, num, Int32GetDatum(0));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, num, whole)) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, num,
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, num,
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(maxval)))))
		def_error(ctx, path_key(path, key), "must be an integer between 0 and %d, not %s",
				  maxval, pl_clip(pl_jbv_scalar_text(v)));
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, num));
}

/* An object whose values are all strings (labels, headers). */
static void
emit_string_map(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
				StringInfo out, bool *first, bool names_are_params)
{
	JsonbValue *v = pl_jb_get(obj, key);
	JsonbIterator *it;
	JsonbValue	k,
				val;
	JsonbIteratorToken tok;
	bool		f = true;

	if (!first)
		elog(ERROR, "emit_string_map: no output position");
	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": {");
	if (v != NULL && v->type != jbvNull)
	{
		if (!jbv_is_object(v))
			def_error(ctx, path_key(path, key), "must be an object, not %s", jbv_type_name(v));
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *kname;
			char	   *sval;

			if (tok != WJB_KEY)
				continue;
			kname = pnstrdup(k.val.string.val, k.val.string.len);
			tok = JsonbIteratorNext(&it, &val, true);
			if (names_are_params && !pl_valid_param_name(kname))
				def_error(ctx, path_key(path_key(path, key), kname),
						  "is not a valid parameter name (letters, digits and _, not starting with a digit)");
			if (val.type == jbvBinary)
				def_error(ctx, path_key(path_key(path, key), kname),
						  "must be a string, number or boolean, not %s", jbv_type_name(&val));
			if (!names_are_params && val.type != jbvString)
				def_error(ctx, path_key(path_key(path, key), kname),
						  "must be a string, not %s", jbv_type_name(&val));
			sval = pl_jbv_scalar_text(&val);
			if (sval == NULL)
				continue;		/* null: no value */
			if (names_are_params)
				check_size(ctx, path_key(path_key(path, key), kname), sval, strlen(sval),
						   PL_MAX_VALUE, "64 KiB");
			else
				check_size(ctx, path_key(path_key(path, key), kname), sval, strlen(sval),
						   PL_MAX_STRING, "16 KiB");
			pl_json_kv_str(out, &f, kname, sval);
		}
	}
	appendStringInfoChar(out, '}');
}

/* A hook header as hookd sends it: a visible-ASCII name without ':', one line of value. */
static void
check_header(DefCtx *ctx, const char *path, const char *name, const char *value)
{
	if (name[0] == '\0')
		def_error(ctx, path, "header name must not be empty");
	for (const char *p = name; *p; p++)
		if ((unsigned char) *p <= 32 || (unsigned char) *p >= 127 || *p == ':')
			def_error(ctx, path, "\"%s\" is not a valid header name (visible ASCII, no ':')",
					  pl_clip(name));
	if (strchr(value, '\r') || strchr(value, '\n'))
		def_error(ctx, path, "header value must be one line (no CR or LF)");
	check_size(ctx, path, value, strlen(value), PL_MAX_HEADER, "8 KiB");
}

/*
 * headers of a hook: an object {"Name": "value"}, or an array whose items are
 * "Name: value" strings or {"name": .., "value": ..} objects.  Stored as the
 * object form (what hook senders read); a name given twice in an array is refused.
 */
static void
emit_headers(DefCtx *ctx, const char *path, JsonbContainer *obj, StringInfo out, bool *first)
{
	static const char *const h_keys[] = {"name", "value", NULL};
	JsonbValue *v = pl_jb_get(obj, "headers");
	char	   *hp = path_key(path, "headers");
	char	  **names;
	int			n;
	bool		f = true;

	if (v == NULL || v->type == jbvNull || !jbv_is_array(v))
	{
		JsonbIterator *it;
		JsonbValue	k;
		JsonbIteratorToken tok;

		emit_string_map(ctx, path, obj, "headers", out, first, false);
		if (v == NULL || v->type == jbvNull)
			return;
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			JsonbValue	val;
			char	   *kname;

			if (tok != WJB_KEY)
				continue;
			kname = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &val, true);
			check_header(ctx, path_key(hp, kname), kname, pl_jbv_scalar_text(&val));
		}
		return;
	}
	n = JsonContainerSize(v->val.binary.data);
	names = palloc0(sizeof(char *) * (n + 1));
	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	appendStringInfoString(out, "\"headers\": {");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *ep = path_idx(path, "headers", i);
		char	   *name;
		char	   *value;

		if (e->type == jbvString)
		{
			char	   *line = pnstrdup(e->val.string.val, e->val.string.len);
			char	   *colon = strchr(line, ':');

			if (colon == NULL)
				def_error(ctx, ep, "must be \"Name: value\" (no ':' found)");
			name = pnstrdup(line, colon - line);
			value = colon + 1;
			while (*value == ' ' || *value == '\t')
				value++;
		}
		else if (jbv_is_object(e))
		{
			check_keys(ctx, ep, e->val.binary.data, h_keys);
			name = get_string(ctx, ep, e->val.binary.data, "name", true, NULL);
			value = get_string(ctx, ep, e->val.binary.data, "value", true, NULL);
		}
		else
			def_error(ctx, ep, "must be a \"Name: value\" string or a {\"name\", \"value\"} object, not %s",
					  jbv_type_name(e));
		check_header(ctx, ep, name, value);
		for (int j = 0; j < i; j++)
			if (pg_strcasecmp(names[j], name) == 0)
				def_error(ctx, ep, "header \"%s\" is given twice (also headers[%d])",
						  pl_clip(name), j);
		names[i] = name;
		pl_json_kv_str(out, &f, name, value);
	}
	appendStringInfoChar(out, '}');
}

/* array of strings */
static void
emit_string_array(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
				  StringInfo out, bool *first, bool stage_names)
{
	JsonbValue *v = pl_jb_get(obj, key);

	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": [");
	if (v != NULL && v->type != jbvNull)
	{
		int			n;

		if (!jbv_is_array(v))
			def_error(ctx, path_key(path, key), "must be an array, not %s", jbv_type_name(v));
		n = JsonContainerSize(v->val.binary.data);
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
			char	   *s;

			if (e->type != jbvString)
				def_error(ctx, path_idx(path, key, i), "must be a string, not %s",
						  jbv_type_name(e));
			s = pnstrdup(e->val.string.val, e->val.string.len);
			check_size(ctx, path_idx(path, key, i), s, strlen(s), PL_MAX_STRING, "16 KiB");
			if (stage_names)
			{
				bool		found = false;

				for (char *p = s; *p; p++)
					*p = pg_tolower((unsigned char) *p);
				for (int st = 0; st < PL_NSTAGES; st++)
					if (strcmp(pl_stage_names[st], s) == 0)
						found = true;
				if (!found)
					def_error(ctx, path_idx(path, key, i),
							  "\"%s\" is not a stage (pending, scheduling, creating, active, canceling, canceled, failed, succeeded, skipped)",
							  pl_clip(s));
			}
			if (i > 0)
				appendStringInfoString(out, ", ");
			escape_json(out, s);
		}
	}
	appendStringInfoChar(out, ']');
}

/* webhooks / im_robot_notify: [{url, headers, events, secret, description}] */
static void
emit_hooks(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
		   StringInfo out, bool *first, bool robot)
{
	static const char *const hook_keys[] = {"url", "headers", "events", "secret", "description",
	"robot", NULL};
	JsonbValue *v = pl_jb_get(obj, key);

	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": [");
	if (v != NULL && v->type != jbvNull)
	{
		int			n;

		if (!jbv_is_array(v))
			def_error(ctx, path_key(path, key), "must be an array, not %s", jbv_type_name(v));
		n = JsonContainerSize(v->val.binary.data);
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
			char	   *hp = path_idx(path, key, i);
			JsonbContainer *h;
			char	   *url;
			char	   *s;
			bool		f = true;

			if (!jbv_is_object(e))
				def_error(ctx, hp, "must be an object, not %s", jbv_type_name(e));
			h = e->val.binary.data;
			check_keys(ctx, hp, h, hook_keys);
			url = get_string(ctx, hp, h, "url", true, NULL);
			if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
				def_error(ctx, path_key(hp, "url"), "must start with http:// or https://");
			if (i > 0)
				appendStringInfoString(out, ", ");
			appendStringInfoChar(out, '{');
			pl_json_kv_str(out, &f, "url", url);
			emit_headers(ctx, hp, h, out, &f);
			emit_string_array(ctx, hp, h, "events", out, &f, true);
			s = get_string(ctx, hp, h, "secret", false, NULL);
			pl_json_kv_str(out, &f, "secret", s);
			s = get_string(ctx, hp, h, "description", false, "");
			pl_json_kv_str(out, &f, "description", s);
			s = get_string(ctx, hp, h, "robot", false, NULL);
			if (s && strcmp(s, "feishu") != 0 && strcmp(s, "dingtalk") != 0 &&
				strcmp(s, "wecom") != 0 && strcmp(s, "generic") != 0)
				def_error(ctx, path_key(hp, "robot"),
						  "must be one of feishu, dingtalk, wecom, generic");
			if (robot || s)
				pl_json_kv_str(out, &f, "robot", s);
			appendStringInfoChar(out, '}');
		}
	}
	appendStringInfoChar(out, ']');
}

/* mention_users: [{user, notify_types, events}] */
static void
emit_mentions(DefCtx *ctx, const char *path, JsonbContainer *obj, StringInfo out, bool *first)
{
	static const char *const m_keys[] = {"user", "notify_types", "events", NULL};
	JsonbValue *v = pl_jb_get(obj, "mention_users");

	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	appendStringInfoString(out, "\"mention_users\": [");
	if (v != NULL && v->type != jbvNull)
	{
		int			n;

		if (!jbv_is_array(v))
			def_error(ctx, path_key(path, "mention_users"), "must be an array, not %s",
					  jbv_type_name(v));
		n = JsonContainerSize(v->val.binary.data);
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
			char	   *mp = path_idx(path, "mention_users", i);
			bool		f = true;

			if (!jbv_is_object(e))
				def_error(ctx, mp, "must be an object, not %s", jbv_type_name(e));
			check_keys(ctx, mp, e->val.binary.data, m_keys);
			if (i > 0)
				appendStringInfoString(out, ", ");
			appendStringInfoChar(out, '{');
			pl_json_kv_str(out, &f, "user",
						   get_string(ctx, mp, e->val.binary.data, "user", true, NULL));
			emit_string_array(ctx, mp, e->val.binary.data, "notify_types", out, &f, false);
			emit_string_array(ctx, mp, e->val.binary.data, "events", out, &f, true);
			appendStringInfoChar(out, '}');
		}
	}
	appendStringInfoChar(out, ']');
}

/* audit / confirm gate: {enable, auditors|checkers} */
static void
emit_gate(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
		  const char *list_key, StringInfo out, bool *first)
{
	const char *keys[3] = {"enable", list_key, NULL};
	JsonbValue *v = pl_jb_get(obj, key);
	char	   *gp = path_key(path, key);
	bool		f = true;
	bool		enable = false;
	JsonbContainer *g = NULL;

	if (v != NULL && v->type != jbvNull)
	{
		JsonbValue *lst;

		if (!jbv_is_object(v))
			def_error(ctx, gp, "must be an object, not %s", jbv_type_name(v));
		g = v->val.binary.data;
		check_keys(ctx, gp, g, keys);
		enable = get_bool(ctx, gp, g, "enable", false);
		lst = pl_jb_get(g, list_key);
		if (enable && (lst == NULL || !jbv_is_array(lst) ||
					   JsonContainerSize(lst->val.binary.data) == 0))
			def_error(ctx, path_key(gp, list_key),
					  "must list at least one user when the gate is enabled");
	}
	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": {");
	pl_json_kv_bool(out, &f, "enable", enable);
	if (g)
		emit_string_array(ctx, gp, g, list_key, out, &f, false);
	else
		pl_json_kv_raw(out, &f, list_key, "[]");
	appendStringInfoChar(out, '}');
}

/*
 * Validate a job body at path (the whole job document, or an inline job of a
 * task) and append its normalized JSON to out.
 */
static void
emit_job(DefCtx *ctx, const char *path, JsonbContainer *job, StringInfo out, bool inline_job)
{
	static const char *const job_keys[] = {"name", "runner", "command", "params", "timeout",
	"retries", "labels", "description", NULL};
	static const char *const param_keys[] = {"name", "default", "required", "sensitive",
	"description", NULL};
	bool		f = true;
	char	   *name;
	char	   *runner;
	JsonbValue *params;

	check_keys(ctx, path, job, job_keys);
	name = get_string(ctx, path, job, "name", !inline_job, NULL);
	if (name && !pl_valid_name(name, true))
		def_error(ctx, path_key(path, "name"),
				  "\"%s\" is not a valid name (1-128 letters, digits, '_', '-', '.', starting with a letter or digit)",
				  pl_clip(name));
	runner = get_string(ctx, path, job, "runner", false, "shell");
	if (runner[0] == '\0')
		def_error(ctx, path_key(path, "runner"), "must not be empty");

	appendStringInfoChar(out, '{');
	pl_json_kv_str(out, &f, "name", name);
	pl_json_kv_str(out, &f, "runner", runner);
	pl_json_kv_str(out, &f, "command", get_string(ctx, path, job, "command", false, ""));
	pl_json_kv_str(out, &f, "description", get_string(ctx, path, job, "description", false, ""));

	/* params */
	params = pl_jb_get(job, "params");
	appendStringInfoString(out, ", \"params\": [");
	if (params != NULL && params->type != jbvNull)
	{
		int			n;
		char	  **seen;

		if (!jbv_is_array(params))
			def_error(ctx, path_key(path, "params"), "must be an array, not %s",
					  jbv_type_name(params));
		n = JsonContainerSize(params->val.binary.data);
		seen = palloc0(sizeof(char *) * (n + 1));
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(params->val.binary.data, i);
			char	   *pp = path_idx(path, "params", i);
			JsonbContainer *p;
			char	   *pname;
			JsonbValue *dv;
			char	   *dflt = NULL;
			bool		pf = true;

			if (!jbv_is_object(e))
				def_error(ctx, pp, "must be an object, not %s", jbv_type_name(e));
			p = e->val.binary.data;
			check_keys(ctx, pp, p, param_keys);
			pname = get_string(ctx, pp, p, "name", true, NULL);
			if (!pl_valid_param_name(pname))
				def_error(ctx, path_key(pp, "name"),
						  "\"%s\" is not a valid parameter name (letters, digits and _, not starting with a digit)",
						  pl_clip(pname));
			if (strncmp(pname, "JOB_TASK_", 9) == 0 || strcmp(pname, "PIPELINE_TASK_ID") == 0 ||
				strcmp(pname, "PIPELINE_OUTPUT") == 0)
				def_error(ctx, path_key(pp, "name"), "\"%s\" is a reserved system parameter",
						  pname);
			for (int j = 0; j < i; j++)
				if (strcmp(seen[j], pname) == 0)
					def_error(ctx, path_key(pp, "name"), "duplicate parameter \"%s\"", pname);
			seen[i] = pname;
			dv = pl_jb_get(p, "default");
			if (dv != NULL && dv->type == jbvBinary)
				def_error(ctx, path_key(pp, "default"),
						  "must be a string, number or boolean, not %s", jbv_type_name(dv));
			if (dv != NULL)
				dflt = pl_jbv_scalar_text(dv);
			check_size(ctx, path_key(pp, "default"), dflt, dflt ? strlen(dflt) : 0,
					   PL_MAX_VALUE, "64 KiB");
			if (i > 0)
				appendStringInfoString(out, ", ");
			appendStringInfoChar(out, '{');
			pl_json_kv_str(out, &pf, "name", pname);
			pl_json_kv_str(out, &pf, "default", dflt);
			pl_json_kv_bool(out, &pf, "required", get_bool(ctx, pp, p, "required", false));
			pl_json_kv_bool(out, &pf, "sensitive", get_bool(ctx, pp, p, "sensitive", false));
			pl_json_kv_str(out, &pf, "description",
						   get_string(ctx, pp, p, "description", false, ""));
			appendStringInfoChar(out, '}');
		}
	}
	appendStringInfoChar(out, ']');
	pl_json_kv_int(out, &f, "timeout", get_nonneg_int(ctx, path, job, "timeout", 0, 7 * 24 * 3600));
	pl_json_kv_int(out, &f, "retries", get_nonneg_int(ctx, path, job, "retries", 0, 100));
	emit_string_map(ctx, path, job, "labels", out, &f, false);
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
	"im_robot_notify", "mention_users", "stages", "description", NULL};
	static const char *const stage_keys[] = {"name", "is_parallel", "tasks", NULL};
	static const char *const task_keys[] = {"name", "job", "run_params", "ignore_failed",
		"skip_run", "audit", "confirm", "webhooks", "im_robot_notify", "mention_users",
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

	if (nv && nv->type == jbvString)
		ctx.name = pnstrdup(nv->val.string.val, nv->val.string.len);
	check_document_size(&ctx, jb);

	pl_spi_connect();			/* job lookups */

	check_keys(&ctx, "", root, pipe_keys);
	name = get_string(&ctx, "", root, "name", true, NULL);
	if (!pl_valid_name(name, true))
		def_error(&ctx, "name",
				  "\"%s\" is not a valid name (1-128 letters, digits, '_', '-', '.', starting with a letter or digit)",
				  pl_clip(name));

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	pl_json_kv_str(&out, &f, "name", name);
	pl_json_kv_str(&out, &f, "description", get_string(&ctx, "", root, "description", false, ""));
	pl_json_kv_bool(&out, &f, "is_parallel", get_bool(&ctx, "", root, "is_parallel", true));
	seq = get_string(&ctx, "", root, "sequence_label", false, NULL);
	if (seq && !pl_valid_name(seq, true))
		def_error(&ctx, "sequence_label", "\"%s\" is not a valid label name", pl_clip(seq));
	pl_json_kv_str(&out, &f, "sequence_label", seq);
	emit_hooks(&ctx, "", root, "webhooks", &out, &f, false);
	emit_hooks(&ctx, "", root, "im_robot_notify", &out, &f, true);
	emit_mentions(&ctx, "", root, &out, &f);

	stages = pl_jb_get(root, "stages");
	if (stages == NULL || stages->type == jbvNull)
		def_error(&ctx, "stages", "is required");
	if (!jbv_is_array(stages))
		def_error(&ctx, "stages", "must be an array, not %s", jbv_type_name(stages));
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

		if (!jbv_is_object(sv))
			def_error(&ctx, sp, "must be an object, not %s", jbv_type_name(sv));
		st = sv->val.binary.data;
		check_keys(&ctx, sp, st, stage_keys);
		sname = get_string(&ctx, sp, st, "name", true, NULL);
		if (!pl_valid_name(sname, false))
			def_error(&ctx, path_key(sp, "name"),
					  "\"%s\" is not a valid stage name (1-128 letters, digits, '_', '-', starting with a letter or digit)",
					  pl_clip(sname));
		for (int j = 0; j < si; j++)
			if (strcmp(stage_names[j], sname) == 0)
				def_error(&ctx, path_key(sp, "name"), "duplicate stage name \"%s\" (also stages[%d])",
						  sname, j);
		stage_names[si] = sname;

		if (si > 0)
			appendStringInfoString(&out, ", ");
		appendStringInfoChar(&out, '{');
		pl_json_kv_str(&out, &sf, "name", sname);
		pl_json_kv_bool(&out, &sf, "is_parallel", get_bool(&ctx, sp, st, "is_parallel", false));

		tasks = pl_jb_get(st, "tasks");
		if (tasks == NULL || tasks->type == jbvNull)
			def_error(&ctx, path_key(sp, "tasks"), "is required");
		if (!jbv_is_array(tasks))
			def_error(&ctx, path_key(sp, "tasks"), "must be an array, not %s",
					  jbv_type_name(tasks));
		ntasks = JsonContainerSize(tasks->val.binary.data);
		if (ntasks == 0)
			def_error(&ctx, path_key(sp, "tasks"), "must hold at least one task");
		if (ntasks > PL_MAX_STAGE_TASKS)
			def_error(&ctx, path_key(sp, "tasks"), "holds %d tasks; at most %d are allowed",
					  ntasks, PL_MAX_STAGE_TASKS);
		total_tasks += ntasks;
		if (total_tasks > PL_MAX_TASKS)
			def_error(&ctx, path_key(sp, "tasks"),
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

			if (!jbv_is_object(tv))
				def_error(&ctx, tp, "must be an object, not %s", jbv_type_name(tv));
			t = tv->val.binary.data;
			check_keys(&ctx, tp, t, task_keys);
			tname = get_string(&ctx, tp, t, "name", true, NULL);
			if (!pl_valid_name(tname, false))
				def_error(&ctx, path_key(tp, "name"),
						  "\"%s\" is not a valid task name (1-128 letters, digits, '_', '-', starting with a letter or digit)",
						  pl_clip(tname));
			for (int j = 0; j < ti; j++)
				if (strcmp(task_names[j], tname) == 0)
					def_error(&ctx, path_key(tp, "name"),
							  "duplicate task name \"%s\" in stage \"%s\" (also tasks[%d])",
							  tname, sname, j);
			task_names[ti] = tname;

			if (ti > 0)
				appendStringInfoString(&out, ", ");
			appendStringInfoChar(&out, '{');
			pl_json_kv_str(&out, &tf, "name", tname);

			jobv = pl_jb_get(t, "job");
			if (jobv == NULL || jobv->type == jbvNull)
				def_error(&ctx, path_key(tp, "job"), "is required");
			if (jobv->type == jbvString)
			{
				char	   *jname = pnstrdup(jobv->val.string.val, jobv->val.string.len);

				if (!job_exists(jname))
					def_error(&ctx, path_key(tp, "job"), "job \"%s\" does not exist", pl_clip(jname));
				pl_json_kv_str(&out, &tf, "job", jname);
			}
			else if (jbv_is_object(jobv))
			{
				appendStringInfoString(&out, ", \"job\": ");
				emit_job(&ctx, path_key(tp, "job"), jobv->val.binary.data, &out, true);
			}
			else
				def_error(&ctx, path_key(tp, "job"),
						  "must be a job name or an inline job object, not %s",
						  jbv_type_name(jobv));

			emit_string_map(&ctx, tp, t, "run_params", &out, &tf, true);
			pl_json_kv_bool(&out, &tf, "ignore_failed", get_bool(&ctx, tp, t, "ignore_failed", false));
			pl_json_kv_bool(&out, &tf, "skip_run", get_bool(&ctx, tp, t, "skip_run", false));
			emit_gate(&ctx, tp, t, "audit", "auditors", &out, &tf);
			emit_gate(&ctx, tp, t, "confirm", "checkers", &out, &tf);
			emit_hooks(&ctx, tp, t, "webhooks", &out, &tf, false);
			emit_hooks(&ctx, tp, t, "im_robot_notify", &out, &tf, true);
			emit_mentions(&ctx, tp, t, &out, &tf);
			appendStringInfoChar(&out, '}');
		}
		appendStringInfoString(&out, "]}");
	}
	appendStringInfoString(&out, "]}");

	version = store_version("pipeline", name, out.data);
	pl_spi_finish();
	PG_RETURN_INT32(version);
}

/*
 * defcheck.c: the checks every part of a definition goes through: the
 * refusal (def_error, 22023 naming the document and the JSON path, user
 * values cut at a character boundary), names, sizes, unknown keys, and typed
 * getters that write the normalized JSON.  Used by definition.c (jobs,
 * pipelines) and defhooks.c (hooks, mentions, gates).  No locking: it reads
 * only the document.
 *
 * Layer: storage
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "util.h"
#include "defcheck.h"

/*
 * fmt and its arguments formatted in full, palloc'd (no fixed buffer: a cut
 * could fall inside a character).  For the refusals of def_error and run.c.
 */
char *
pl_vformat(const char *fmt, va_list args)
{
	StringInfoData msg;

	initStringInfo(&msg);
	for (;;)
	{
		va_list		ap;
		int			needed;

		va_copy(ap, args);
		needed = appendStringInfoVA(&msg, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&msg, needed);
	}
	return msg.data;
}

void
def_error(DefCtx *ctx, const char *path, const char *fmt,...)
{
	va_list		ap;
	char	   *msg;

	va_start(ap, fmt);
	msg = pl_vformat(fmt, ap);
	va_end(ap);
	if (ctx->name)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\": %s: %s", ctx->kind, pl_clip(ctx->name), pl_clip_n(path, 256),
						msg)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s definition: %s: %s", ctx->kind, pl_clip_n(path, 256), msg)));
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

char *
def_path_key(const char *base, const char *key)
{
	return base[0] ? psprintf("%s.%s", base, key) : pstrdup(key);
}

char *
def_path_idx(const char *base, const char *key, int i)
{
	return base[0] ? psprintf("%s.%s[%d]", base, key, i) : psprintf("%s[%d]", key, i);
}

/* A string no longer than max bytes (command, description, defaults, ...). */
void
def_check_size(DefCtx *ctx, const char *path, const char *s, size_t len, size_t max,
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

const char *
def_type_name(JsonbValue *v)
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

bool
def_is_object(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

bool
def_is_array(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* Refuse keys not in the allowed list (NULL-terminated). */
void
def_check_keys(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *const *allowed)
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
				def_error(ctx, def_path_key(path, k), "unknown key (allowed keys: %s)", list.data);
			}
		}
	}
}

/* Optional string; returns default if absent or null. */
char *
def_get_string(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
		   bool required, const char *dflt)
{
	JsonbValue *v = pl_jb_get(obj, key);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			def_error(ctx, def_path_key(path, key), "is required");
		return dflt ? pstrdup(dflt) : NULL;
	}
	if (v->type != jbvString)
		def_error(ctx, def_path_key(path, key), "must be a string, not %s", def_type_name(v));
	if (strcmp(key, "command") == 0)
		def_check_size(ctx, def_path_key(path, key), v->val.string.val, v->val.string.len,
				   PL_MAX_COMMAND, "64 KiB");
	else
		def_check_size(ctx, def_path_key(path, key), v->val.string.val, v->val.string.len,
				   PL_MAX_STRING, "16 KiB");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

bool
def_get_bool(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key, bool dflt)
{
	JsonbValue *v = pl_jb_get(obj, key);

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvBool)
		def_error(ctx, def_path_key(path, key), "must be a boolean, not %s", def_type_name(v));
	return v->val.boolean;
}

/*
 * A non-negative integer: any JSON number with an integral value (1, 1.0, 1e2),
 * between 0 and maxval.
 */
int
def_get_int(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
			   int dflt, int maxval)
{
	JsonbValue *v = pl_jb_get(obj, key);
	Datum		num;
	Datum		whole;

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvNumeric)
		def_error(ctx, def_path_key(path, key), "must be a non-negative integer, not %s",
				  def_type_name(v));
	num = NumericGetDatum(v->val.numeric);
	whole = DirectFunctionCall2(numeric_trunc, num, Int32GetDatum(0));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, num, whole)) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, num,
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, num,
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(maxval)))))
		def_error(ctx, def_path_key(path, key), "must be an integer between 0 and %d, not %s",
				  maxval, pl_clip(pl_jbv_scalar_text(v)));
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, num));
}

/* An object whose values are all strings (labels, headers). */
void
def_emit_string_map(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
				StringInfo out, bool *first, bool names_are_params)
{
	JsonbValue *v = pl_jb_get(obj, key);
	JsonbIterator *it;
	JsonbValue	k,
				val;
	JsonbIteratorToken tok;
	bool		f = true;

	if (!first)
		elog(ERROR, "def_emit_string_map: no output position");
	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": {");
	if (v != NULL && v->type != jbvNull)
	{
		if (!def_is_object(v))
			def_error(ctx, def_path_key(path, key), "must be an object, not %s", def_type_name(v));
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
				def_error(ctx, def_path_key(def_path_key(path, key), kname),
						  "is not a valid parameter name (letters, digits and _, not starting with a digit)");
			if (strlen(kname) > PL_MAX_NAME)
				def_error(ctx, def_path_key(def_path_key(path, key), kname),
						  "name is %zu bytes long; at most %d are allowed", strlen(kname), PL_MAX_NAME);
			if (val.type == jbvBinary)
				def_error(ctx, def_path_key(def_path_key(path, key), kname),
						  "must be a string, number or boolean, not %s", def_type_name(&val));
			if (!names_are_params && val.type != jbvString)
				def_error(ctx, def_path_key(def_path_key(path, key), kname),
						  "must be a string, not %s", def_type_name(&val));
			sval = pl_jbv_scalar_text(&val);
			if (sval == NULL)
				continue;		/* null: no value */
			if (names_are_params)
				def_check_size(ctx, def_path_key(def_path_key(path, key), kname), sval, strlen(sval),
						   PL_MAX_VALUE, "64 KiB");
			else
				def_check_size(ctx, def_path_key(def_path_key(path, key), kname), sval, strlen(sval),
						   PL_MAX_STRING, "16 KiB");
			pl_json_kv_str(out, &f, kname, sval);
		}
	}
	appendStringInfoChar(out, '}');
}

/*
 * Writes the start of the array at key ("key": [, after ", " unless *first)
 * and returns the array, refusing another type; NULL when it is missing or
 * null (no elements).  The caller writes the elements and the ']'.
 */
JsonbContainer *
def_emit_array_start(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
					 StringInfo out, bool *first)
{
	JsonbValue *v = pl_jb_get(obj, key);

	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": [");
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (!def_is_array(v))
		def_error(ctx, def_path_key(path, key), "must be an array, not %s", def_type_name(v));
	return v->val.binary.data;
}

/* array of strings */
void
def_emit_string_array(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
				  StringInfo out, bool *first, bool stage_names)
{
	JsonbContainer *arr = def_emit_array_start(ctx, path, obj, key, out, first);

	if (arr != NULL)
	{
		int			n = JsonContainerSize(arr);

		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(arr, i);
			char	   *s;

			if (e->type != jbvString)
				def_error(ctx, def_path_idx(path, key, i), "must be a string, not %s",
						  def_type_name(e));
			s = pnstrdup(e->val.string.val, e->val.string.len);
			def_check_size(ctx, def_path_idx(path, key, i), s, strlen(s), PL_MAX_STRING, "16 KiB");
			if (stage_names)
			{
				bool		found = false;

				for (char *p = s; *p; p++)
					*p = pg_tolower((unsigned char) *p);
				for (int st = 0; st < PL_NSTAGES; st++)
					if (strcmp(pl_stage_names[st], s) == 0)
						found = true;
				if (!found)
					def_error(ctx, def_path_idx(path, key, i),
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

/* pl_pipeline_exists (defcheck.h): chain.c and trigger.c check their references with it */
bool
pl_pipeline_exists(const char *name)
{
	static PlStmt q = {
		"SELECT 1 FROM pipeline.pipeline WHERE name = $1 LIMIT 1", 1, {TEXTOID}
	};
	Datum		v[1];

	v[0] = CStringGetTextDatum(name);
	pl_exec(&q, v, NULL, 1);
	return SPI_processed > 0;
}

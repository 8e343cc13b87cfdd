/*
 * defhooks.c: the notification parts of a pipeline definition: webhooks and
 * IM robots (url, headers in either form, events, secret, robot kind),
 * mention_users, and the audit / confirm gates.  Validated and written in
 * normalized form (headers as an object, event names lower-cased) for
 * definition.c.  No locking: it reads only the document.
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
#include "defhooks.h"

/* A hook header as hookd sends it: a visible-ASCII name without ':', one line of value. */
static void
check_header(DefCtx *ctx, const char *path, const char *name, const char *value)
{
	if (name[0] == '\0')
		def_error(ctx, path, "header name must not be empty");
	if (strlen(name) > PL_MAX_NAME)
		def_error(ctx, path, "header name is %zu bytes long; at most %d are allowed",
				  strlen(name), PL_MAX_NAME);
	for (const char *p = name; *p; p++)
		if ((unsigned char) *p <= 32 || (unsigned char) *p >= 127 || *p == ':')
			def_error(ctx, path, "\"%s\" is not a valid header name (visible ASCII, no ':')",
					  pl_clip(name));
	if (strchr(value, '\r') || strchr(value, '\n'))
		def_error(ctx, path, "header value must be one line (no CR or LF)");
	def_check_size(ctx, path, value, strlen(value), PL_MAX_HEADER, "8 KiB");
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
	char	   *hp = def_path_key(path, "headers");
	char	  **names;
	int			n;
	bool		f = true;

	if (v == NULL || v->type == jbvNull || !def_is_array(v))
	{
		JsonbIterator *it;
		JsonbValue	k;
		JsonbIteratorToken tok;

		def_emit_string_map(ctx, path, obj, "headers", out, first, false);
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
			check_header(ctx, def_path_key(hp, kname), kname, pl_jbv_scalar_text(&val));
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
		char	   *ep = def_path_idx(path, "headers", i);
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
		else if (def_is_object(e))
		{
			def_check_keys(ctx, ep, e->val.binary.data, h_keys);
			name = def_get_string(ctx, ep, e->val.binary.data, "name", true, NULL);
			value = def_get_string(ctx, ep, e->val.binary.data, "value", true, NULL);
		}
		else
			def_error(ctx, ep, "must be a \"Name: value\" string or a {\"name\", \"value\"} object, not %s",
					  def_type_name(e));
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

/* webhooks / im_robot_notify: [{url, headers, events, secret, description}] */
void
def_emit_hooks(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
		   StringInfo out, bool *first, bool robot)
{
	static const char *const hook_keys[] = {"url", "headers", "events", "secret", "description",
	"robot", NULL};
	JsonbContainer *arr = def_emit_array_start(ctx, path, obj, key, out, first);

	if (arr != NULL)
	{
		int			n = JsonContainerSize(arr);

		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(arr, i);
			char	   *hp = def_path_idx(path, key, i);
			JsonbContainer *h;
			char	   *url;
			char	   *s;
			bool		f = true;

			if (!def_is_object(e))
				def_error(ctx, hp, "must be an object, not %s", def_type_name(e));
			h = e->val.binary.data;
			def_check_keys(ctx, hp, h, hook_keys);
			url = def_get_string(ctx, hp, h, "url", true, NULL);
			if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
				def_error(ctx, def_path_key(hp, "url"), "must start with http:// or https://");
			if (i > 0)
				appendStringInfoString(out, ", ");
			appendStringInfoChar(out, '{');
			pl_json_kv_str(out, &f, "url", url);
			emit_headers(ctx, hp, h, out, &f);
			def_emit_string_array(ctx, hp, h, "events", out, &f, true);
			s = def_get_string(ctx, hp, h, "secret", false, NULL);
			pl_json_kv_str(out, &f, "secret", s);
			s = def_get_string(ctx, hp, h, "description", false, "");
			pl_json_kv_str(out, &f, "description", s);
			s = def_get_string(ctx, hp, h, "robot", false, NULL);
			if (s && strcmp(s, "feishu") != 0 && strcmp(s, "dingtalk") != 0 &&
				strcmp(s, "wecom") != 0 && strcmp(s, "generic") != 0)
				def_error(ctx, def_path_key(hp, "robot"),
						  "must be one of feishu, dingtalk, wecom, generic");
			if (robot || s)
				pl_json_kv_str(out, &f, "robot", s);
			appendStringInfoChar(out, '}');
		}
	}
	appendStringInfoChar(out, ']');
}

/* mention_users: [{user, notify_types, events}] */
void
def_emit_mentions(DefCtx *ctx, const char *path, JsonbContainer *obj, StringInfo out, bool *first)
{
	static const char *const m_keys[] = {"user", "notify_types", "events", NULL};
	JsonbContainer *arr = def_emit_array_start(ctx, path, obj, "mention_users", out, first);

	if (arr != NULL)
	{
		int			n = JsonContainerSize(arr);

		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(arr, i);
			char	   *mp = def_path_idx(path, "mention_users", i);
			bool		f = true;

			if (!def_is_object(e))
				def_error(ctx, mp, "must be an object, not %s", def_type_name(e));
			def_check_keys(ctx, mp, e->val.binary.data, m_keys);
			if (i > 0)
				appendStringInfoString(out, ", ");
			appendStringInfoChar(out, '{');
			pl_json_kv_str(out, &f, "user",
						   def_get_string(ctx, mp, e->val.binary.data, "user", true, NULL));
			def_emit_string_array(ctx, mp, e->val.binary.data, "notify_types", out, &f, false);
			def_emit_string_array(ctx, mp, e->val.binary.data, "events", out, &f, true);
			appendStringInfoChar(out, '}');
		}
	}
	appendStringInfoChar(out, ']');
}

/* audit / confirm gate: {enable, auditors|checkers} */
void
def_emit_gate(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
		  const char *list_key, StringInfo out, bool *first)
{
	const char *keys[3] = {"enable", list_key, NULL};
	JsonbValue *v = pl_jb_get(obj, key);
	char	   *gp = def_path_key(path, key);
	bool		f = true;
	bool		enable = false;
	JsonbContainer *g = NULL;

	if (v != NULL && v->type != jbvNull)
	{
		JsonbValue *lst;

		if (!def_is_object(v))
			def_error(ctx, gp, "must be an object, not %s", def_type_name(v));
		g = v->val.binary.data;
		def_check_keys(ctx, gp, g, keys);
		enable = def_get_bool(ctx, gp, g, "enable", false);
		lst = pl_jb_get(g, list_key);
		if (enable && (lst == NULL || !def_is_array(lst) ||
					   JsonContainerSize(lst->val.binary.data) == 0))
			def_error(ctx, def_path_key(gp, list_key),
					  "must list at least one user when the gate is enabled");
	}
	if (!*first)
		appendStringInfoString(out, ", ");
	*first = false;
	escape_json(out, key);
	appendStringInfoString(out, ": {");
	pl_json_kv_bool(out, &f, "enable", enable);
	if (g)
		def_emit_string_array(ctx, gp, g, list_key, out, &f, false);
	else
		pl_json_kv_raw(out, &f, list_key, "[]");
	appendStringInfoChar(out, '}');
}

/*
 * trigger_payload.c: reading what a git provider sent (SPEC §15): the raw
 * body checked and parsed (UTF-8, nesting, JSON object), the event type from
 * the provider's header or inferred from the payload, and the GIT_* fields
 * from each provider's own keys (README "Triggers" has the table).  A payload
 * the engine cannot use gets a reason (recorded by trigger_fire.c as a
 * non-match), never an error; only an unreadable body is refused (22023).
 *
 * Locking: none; it reads only its arguments.
 *
 * Layer: api (engine layers: README "Design notes")
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "defcheck.h"
#include "util.h"
#include "trigger.h"

/* ------------------------------------------------------------------ reading the payload */

/* the string at root.k1.k2... or NULL when missing or not a string */
static char *
str_at(JsonbContainer *root, const char *k1, const char *k2, const char *k3)
{
	const char *keys[3] = {k1, k2, k3};
	JsonbContainer *c = root;
	JsonbValue *v = NULL;

	for (int i = 0; i < 3 && keys[i]; i++)
	{
		if (c == NULL)
			return NULL;
		v = pl_jb_get(c, keys[i]);
		if (v == NULL)
			return NULL;
		c = (v->type == jbvBinary) ? v->val.binary.data : NULL;
	}
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
has_key(JsonbContainer *root, const char *key)
{
	JsonbValue *v = pl_jb_get(root, key);

	return v != NULL && v->type != jbvNull;
}

bool
pl_trigger_plausible(const char *s, size_t max)
{
	if (strlen(s) > max)
		return false;
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* a field, or "" when missing; a reason is set when the value is not plausible */
static char *
field(PlGitEvent *ev, const char *what, char *value, size_t max)
{
	if (value == NULL)
		return pstrdup("");
	if (!pl_trigger_plausible(value, max))
	{
		if (ev->reason == NULL)
			ev->reason = psprintf("the payload's %s is too long or holds control characters", what);
		return pstrdup("");
	}
	return value;
}

static char *
first_of(char *a, char *b)
{
	return (a != NULL && a[0] != '\0') ? a : b;
}

static bool
all_zeros(const char *sha)
{
	if (sha == NULL || sha[0] == '\0')
		return false;
	for (const char *p = sha; *p; p++)
		if (*p != '0')
			return false;
	return true;
}

/* the event type from the provider's header, or from the payload */
static void
infer_type(PlGitEvent *ev, JsonbContainer *root)
{
	const char *p = ev->provider;
	char	   *h = ev->header;

	if (strcmp(p, "gitlab") == 0)
	{
		if (h == NULL)
			h = str_at(root, "object_kind", NULL, NULL);
		if (h == NULL)
			return;
		if (strcmp(h, "Push Hook") == 0 || strcmp(h, "push") == 0)
			ev->type = "push";
		else if (strcmp(h, "Tag Push Hook") == 0 || strcmp(h, "tag_push") == 0 ||
				 strcmp(h, "tag") == 0)
			ev->type = "tag";
		else if (strcmp(h, "Merge Request Hook") == 0 || strcmp(h, "merge_request") == 0)
			ev->type = "merge_request";
		else
			ev->type = h;
		return;
	}
	if (h == NULL && strcmp(p, "generic") == 0)
		h = str_at(root, "event", NULL, NULL);
	if (h == NULL)
	{
		/* github, gitea, generic without a header: the shape of the payload */
		if (pl_jb_get(root, "pull_request") != NULL &&
			pl_jb_get(root, "pull_request")->type == jbvBinary)
			ev->type = "merge_request";
		else if (str_at(root, "ref", NULL, NULL) != NULL &&
				 (has_key(root, "commits") || has_key(root, "head_commit") ||
				  has_key(root, "after") || has_key(root, "sha")))
			ev->type = "push";
		return;
	}
	if (strcmp(h, "push") == 0 || strcmp(h, "tag") == 0)
		ev->type = h;
	else if (strcmp(h, "pull_request") == 0 || strcmp(h, "merge_request") == 0)
		ev->type = "merge_request";
	else
		ev->type = h;
}

/* GIT_* of a push, a tag or a merge request, by provider */
static void
read_fields(PlGitEvent *ev, JsonbContainer *root)
{
	bool		gitlab = strcmp(ev->provider, "gitlab") == 0;
	bool		generic = strcmp(ev->provider, "generic") == 0;
	bool		mr = strcmp(ev->type, "merge_request") == 0;
	char	   *ref,
			   *sha,
			   *repo,
			   *author;

	if (gitlab && mr)
	{
		ref = str_at(root, "object_attributes", "source_branch", NULL);
		sha = str_at(root, "object_attributes", "last_commit", "id");
		repo = str_at(root, "project", "path_with_namespace", NULL);
		author = str_at(root, "user", "username", NULL);
	}
	else if (gitlab)
	{
		ref = str_at(root, "ref", NULL, NULL);
		sha = first_of(str_at(root, "checkout_sha", NULL, NULL), str_at(root, "after", NULL, NULL));
		repo = str_at(root, "project", "path_with_namespace", NULL);
		author = first_of(str_at(root, "user_username", NULL, NULL),
						  str_at(root, "user_name", NULL, NULL));
	}
	else if (mr)
	{
		ref = str_at(root, "pull_request", "head", "ref");
		sha = str_at(root, "pull_request", "head", "sha");
		repo = str_at(root, "repository", "full_name", NULL);
		author = first_of(str_at(root, "pull_request", "user", "login"),
						  str_at(root, "sender", "login", NULL));
	}
	else
	{
		ref = str_at(root, "ref", NULL, NULL);
		sha = first_of(str_at(root, "after", NULL, NULL),
					   first_of(str_at(root, "head_commit", "id", NULL), str_at(root, "sha", NULL, NULL)));
		repo = generic ? first_of(str_at(root, "repo", NULL, NULL),
								  str_at(root, "repository", "full_name", NULL))
			: str_at(root, "repository", "full_name", NULL);
		author = generic ? str_at(root, "author", NULL, NULL)
			: first_of(first_of(str_at(root, "pusher", "name", NULL), str_at(root, "pusher", "login", NULL)),
					   str_at(root, "sender", "login", NULL));
	}
	/* a merge request's ref is its source branch, written as a full ref */
	if (mr && ref != NULL && strncmp(ref, "refs/", 5) != 0)
		ref = psprintf("refs/heads/%s", ref);

	ev->ref = field(ev, "ref", ref, PL_TRIGGER_MAX_REF);
	ev->sha = field(ev, "commit sha", sha, PL_TRIGGER_MAX_FIELD);
	ev->repo = field(ev, "repository", repo, PL_TRIGGER_MAX_FIELD);
	ev->author = field(ev, "author", author, PL_TRIGGER_MAX_FIELD);
	if (ev->reason)
		return;
	if (ev->ref[0] == '\0')
	{
		ev->reason = psprintf("the payload has no ref (a string) for a %s event", ev->type);
		return;
	}
	if (strcmp(ev->type, "push") == 0 && strncmp(ev->ref, "refs/tags/", 10) == 0)
		ev->type = "tag";
	if (!mr)
	{
		JsonbValue *deleted = pl_jb_get(root, "deleted");

		if ((deleted && deleted->type == jbvBool && deleted->val.boolean) || all_zeros(ev->sha))
			ev->reason = psprintf("the push deleted %s: nothing to build", pl_clip(ev->ref));
	}
}

void
pl_trigger_read_event(PlGitEvent *ev, JsonbContainer *root)
{
	infer_type(ev, root);
	ev->repo = ev->ref = ev->sha = ev->author = "";
	if (ev->type == NULL)
	{
		ev->reason = pstrdup("the event type could not be inferred from the payload (pass the provider's event header)");
		return;
	}
	if (!pl_trigger_plausible(ev->type, PL_TRIGGER_MAX_FIELD))
	{
		ev->type = "";
		ev->reason = pstrdup("the payload's event type is too long or holds control characters");
		return;
	}
	if (strcmp(ev->type, "push") != 0 && strcmp(ev->type, "tag") != 0 &&
		strcmp(ev->type, "merge_request") != 0)
	{
		ev->reason = psprintf("event type \"%s\" starts no trigger (push, tag and merge_request do)",
							  pl_clip(ev->type));
		return;
	}
	read_fields(ev, root);
}

/* nesting depth of JSON text, counted outside strings; stops past limit */
static int
json_depth(const char *s, size_t len, int limit)
{
	int			depth = 0,
				max = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		ch = s[i];

		if (in_string)
		{
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
		}
		else if (ch == '"')
			in_string = true;
		else if (ch == '{' || ch == '[')
		{
			if (++depth > max)
				max = depth;
			if (max > limit)
				return max;
		}
		else if (ch == '}' || ch == ']')
			depth--;
	}
	return max;
}

/* the raw body as a JSON object, or 22023 saying what is wrong with it */
Jsonb *
pl_trigger_parse_body(const char *provider, bytea *body)
{
	int			len = VARSIZE_ANY_EXHDR(body);
	char	   *s = palloc(len + 1);
	JsonLexContext *lex;
	JsonParseErrorType rc;
	Jsonb	   *jb;

	memcpy(s, VARDATA_ANY(body), len);
	s[len] = '\0';
	if (memchr(s, '\0', len) != NULL || !pg_verify_mbstr(GetDatabaseEncoding(), s, len, true))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s webhook: the body is not valid %s text", provider,
						GetDatabaseEncodingName())));
	if (json_depth(s, len, PL_TRIGGER_MAX_DEPTH) > PL_TRIGGER_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s webhook: the body is nested deeper than %d levels", provider,
						PL_TRIGGER_MAX_DEPTH)));
	lex = makeJsonLexContextCstringLen(s, len, GetDatabaseEncoding(), true);
	rc = pg_parse_json(lex, &nullSemAction);
	if (rc != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s webhook: the body is not valid JSON: %s", provider,
						pl_clip(json_errdetail(rc, lex)))));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
	if (!pl_jb_is_object(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s webhook: the body must be a JSON object", provider)));
	return jb;
}


/*
 * secrets.c: secrets in what runners send, and names runners may not set.
 *
 * Layer: storage
 *
 * mask_secrets (SPEC §12): every occurrence of a sensitive param's value, and
 * of the caller's update token, in free text a runner sends -- log chunks
 * (append_job_task_log), message and every string of detail
 * (update_job_task_status) -- becomes "******" before it is stored, so the
 * events and hook bodies built from the stored row never see it either.
 * The statements that store the text call pipeline.mask_secrets() with the
 * task's params, its sensitive names and the presented token; a task with
 * no sensitive params pays a scan for the token only.
 *
 *   - Values shorter than PL_SECRET_MIN_LEN bytes are not searched for: a
 *     "1" or "on" marked sensitive would otherwise wipe every digit or word
 *     from the logs while protecting nothing (GitLab refuses to mask short
 *     variables for the same reason).  Views still show them as ******.
 *   - Longer values are replaced first, so a value that contains another is
 *     masked whole.
 *   - Each chunk is masked on its own: a value split across two chunks is
 *     not found.  pipelinectl runner sends whole lines and masks them itself
 *     first; a runner of your own should do the same.
 *   - Only the literal value is found, not an encoding of it (base64, URL
 *     escapes): as in GitLab and GitHub Actions.
 *
 * runtime_env_name_allowed: the one deny-list of runtime env names (see
 * pl_runtime_env_name_allowed), used by update_job_task_status and offered
 * to runners as SQL.
 *
 * Pure functions: no SPI, no locks; results in the caller's context.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "secrets.h"
#include "util.h"

#define PL_SECRET_MIN_LEN 4

#define MASK "******"
#define MASK_LEN 6

typedef struct Secret
{
	const char *val;
	int			len;
} Secret;

typedef struct Secrets
{
	int			n;
	int			cap;
	Secret	   *items;			/* longest first */
} Secrets;

static int
secret_cmp(const void *a, const void *b)
{
	return ((const Secret *) b)->len - ((const Secret *) a)->len;
}

/* Add one secret. */
static void
add_secret(Secrets *s, const char *val, int len)
{
	if (s->items == NULL)
	{
		s->cap = 4;
		s->items = palloc(sizeof(Secret) * s->cap);
	}
	else if (s->n == s->cap)
	{
		s->cap *= 2;
		s->items = repalloc(s->items, sizeof(Secret) * s->cap);
	}
	s->items[s->n].val = val;
	s->items[s->n].len = len;
	s->n++;
}

/* Add the string values of params (an object) whose key or its last segment is named. */
static void
add_from_object(Secrets *s, JsonbContainer *params, Datum *names, bool *nulls, int nnames)
{
	JsonbIterator *it = JsonbIteratorInit(params);
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		const char *last;
		int			lastlen;
		bool		hit = false;

		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvString || v.val.string.len < PL_SECRET_MIN_LEN)
			continue;
		last = k.val.string.val;
		for (int i = 0; i < k.val.string.len; i++)
			if (k.val.string.val[i] == '.')
				last = k.val.string.val + i + 1;
		lastlen = k.val.string.len - (int) (last - k.val.string.val);
		for (int i = 0; i < nnames && !hit; i++)
		{
			text	   *t;

			if (nulls[i])
				continue;
			t = DatumGetTextPP(names[i]);
			hit = VARSIZE_ANY_EXHDR(t) == (Size) lastlen &&
				memcmp(VARDATA_ANY(t), last, lastlen) == 0;
		}
		if (hit)
			add_secret(s, v.val.string.val, v.val.string.len);
	}
}

/*
 * The values to search for (arguments 1-3 of mask_secrets): the string
 * values of params -- an object, or an array of objects (params, then
 * runtime envs that may override them) -- whose key (or the key's last
 * dot-separated segment) is in sensitive, and the token.  Returns false
 * when there is nothing to search for.
 */
static bool
collect_secrets(FunctionCallInfo fcinfo, Secrets *s)
{
	s->n = 0;
	s->cap = 0;
	s->items = NULL;
	if (!PG_ARGISNULL(3))
	{
		text	   *tok = PG_GETARG_TEXT_PP(3);

		if (VARSIZE_ANY_EXHDR(tok) >= PL_SECRET_MIN_LEN)
			add_secret(s, VARDATA_ANY(tok), VARSIZE_ANY_EXHDR(tok));
	}
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		Jsonb	   *params = PG_GETARG_JSONB_P(1);
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
		Datum	   *names;
		bool	   *nulls;
		int			nnames;

		if (ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) > 0 && !JB_ROOT_IS_SCALAR(params))
		{
			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &nnames);
			if (JB_ROOT_IS_OBJECT(params))
				add_from_object(s, &params->root, names, nulls, nnames);
			else
				for (int i = 0; i < (int) JB_ROOT_COUNT(params); i++)
				{
					JsonbValue *e = getIthJsonbValueFromContainer(&params->root, i);

					if (e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data))
						add_from_object(s, e->val.binary.data, names, nulls, nnames);
				}
		}
	}
	if (s->n > 1)
		qsort(s->items, s->n, sizeof(Secret), secret_cmp);
	return s->n > 0;
}

/*
 * s[0..len) with every occurrence of a secret replaced by ******, or NULL
 * if none occurs (the common case costs one memmem per secret).
 */
static char *
mask_string(const char *str, int len, Secrets *s, int *outlen)
{
	StringInfoData b;
	bool		any = false;
	int			i = 0;

	for (int j = 0; j < s->n && !any; j++)
		any = memmem(str, len, s->items[j].val, s->items[j].len) != NULL;
	if (!any)
		return NULL;
	initStringInfo(&b);
	while (i < len)
	{
		bool		hit = false;

		for (int j = 0; j < s->n; j++)
		{
			const Secret *e = &s->items[j];

			if (e->len <= len - i && str[i] == e->val[0] && memcmp(str + i, e->val, e->len) == 0)
			{
				appendBinaryStringInfo(&b, MASK, MASK_LEN);
				i += e->len;
				hit = true;
				break;
			}
		}
		if (!hit)
			appendStringInfoChar(&b, str[i++]);
	}
	*outlen = b.len;
	return b.data;
}

/*
 * mask_secrets(value text, params jsonb, sensitive text[], token text) RETURNS text
 * The value with the secrets (see collect_secrets) masked.
 */
PG_FUNCTION_INFO_V1(pl_mask_secrets_text);
Datum
pl_mask_secrets_text(PG_FUNCTION_ARGS)
{
	text	   *val;
	Secrets		s;
	char	   *masked;
	int			mlen;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	val = PG_GETARG_TEXT_PP(0);
	if (!collect_secrets(fcinfo, &s))
		PG_RETURN_TEXT_P(val);
	masked = mask_string(VARDATA_ANY(val), VARSIZE_ANY_EXHDR(val), &s, &mlen);
	if (masked == NULL)
		PG_RETURN_TEXT_P(val);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(masked, mlen));
}

/*
 * mask_secrets(value jsonb, params jsonb, sensitive text[], token text) RETURNS jsonb
 * Every string in the document (keys, values and array elements, at any
 * depth) with the secrets masked.  Two keys that become equal keep the
 * last value, as in any JSON object with a duplicate key.
 */
/* pl_jsonb_rewrite callback: a string (key, value or element) with the secrets masked */
static bool
mask_jsonb_string(JsonbIteratorToken tok, JsonbValue *v, const JsonbValue *key, void *arg)
{
	int			mlen;
	char	   *m;

	if (v->type != jbvString)
		return false;
	m = mask_string(v->val.string.val, v->val.string.len, (Secrets *) arg, &mlen);
	if (!m)
		return false;
	v->val.string.val = m;
	v->val.string.len = mlen;
	return true;
}

PG_FUNCTION_INFO_V1(pl_mask_secrets_jsonb);
Datum
pl_mask_secrets_jsonb(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc;
	Secrets		s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	doc = PG_GETARG_JSONB_P(0);
	if (!collect_secrets(fcinfo, &s))
		PG_RETURN_JSONB_P(doc);
	PG_RETURN_JSONB_P(pl_jsonb_rewrite(doc, false, mask_jsonb_string, &s));
}

/* ================================================================ runtime env names */

/*
 * Names a job may not report as runtime envs: they would reach later jobs'
 * environments (layer 4 of the params) and change what those jobs run --
 * which programs (PATH), which libraries (LD_PRELOAD, DYLD_*), which startup
 * code the shell or an interpreter runs (BASH_ENV, ENV, PYTHONSTARTUP,
 * NODE_OPTIONS, ...), where temporary files go, which database they reach
 * (PG*), or they would forge the engine's own system params (JOB_TASK_*,
 * PIPELINE_*).  glibc's own list of variables it ignores in setuid programs
 * (GCONV_PATH, LOCPATH, HOSTALIASES, ...) and GLIBC_TUNABLES are in too.
 * Ordinary names (VERSION, IMAGE, GIT_COMMIT, ...) stay allowed.  Names are
 * compared as they are, case-sensitively, like the environment itself.
 */
static const char *const denied_names[] = {
	"PATH", "HOME", "SHELL", "IFS", "ENV", "BASH_ENV", "CDPATH", "PS4", "PWD", "OLDPWD",
	"TMPDIR", "SHELLOPTS", "BASHOPTS", "PROMPT_COMMAND",
	"GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF",
	"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5LIB", "PERLLIB", "PERL5OPT", "PERL5DB",
	"RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
	"GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_ASKPASS", "SSH_ASKPASS",
	NULL
};
static const char *const denied_prefixes[] = {
	"LD_", "DYLD_", "PG", "PIPELINE_", "JOB_TASK_", "BASH_FUNC_", "GIT_CONFIG",
	NULL
};

/* The rule, for error details and the README. */
const char *const pl_runtime_env_rule =
"Runtime envs may not be named PATH, HOME, SHELL, IFS, ENV, BASH_ENV, CDPATH, PS4, PWD, OLDPWD, "
"TMPDIR, SHELLOPTS, BASHOPTS, PROMPT_COMMAND, GCONV_PATH, GLIBC_TUNABLES, LOCPATH, NLSPATH, "
"HOSTALIASES, RESOLV_HOST_CONF, PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PERL5LIB, PERLLIB, "
"PERL5OPT, PERL5DB, RUBYOPT, RUBYLIB, NODE_OPTIONS, NODE_PATH, JAVA_TOOL_OPTIONS, _JAVA_OPTIONS, "
"GIT_SSH, GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_ASKPASS or SSH_ASKPASS, nor start with LD_, DYLD_, "
"PG, PIPELINE_, JOB_TASK_, BASH_FUNC_ or GIT_CONFIG.";

bool
pl_runtime_env_name_allowed(const char *name)
{
	for (int i = 0; denied_names[i]; i++)
		if (strcmp(name, denied_names[i]) == 0)
			return false;
	for (int i = 0; denied_prefixes[i]; i++)
		if (strncmp(name, denied_prefixes[i], strlen(denied_prefixes[i])) == 0)
			return false;
	return true;
}

/* runtime_env_name_allowed(name text) RETURNS boolean */
PG_FUNCTION_INFO_V1(pl_runtime_env_name_allowed_sql);
Datum
pl_runtime_env_name_allowed_sql(PG_FUNCTION_ARGS)
{
	char	   *name;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("runtime_env_name_allowed: name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PG_RETURN_BOOL(pl_runtime_env_name_allowed(name));
}

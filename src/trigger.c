/*
 * trigger.c: define_trigger() and the webhook signature checks (SPEC §15).
 *
 * A trigger says which pushes, tags or merge requests of a git provider start
 * which pipeline.  Its definition is validated completely before anything is
 * written (22023 with the JSON path, like define_job); the normalized copy
 * stored in pipeline.trigger.definition never holds the secret, which is kept
 * in its own column, read only by the SECURITY DEFINER fire functions, and
 * never quoted in an error, a view, an event or a returned row.
 *
 * Signatures are checked inside the server (pg_hmac from src/common), so a
 * receiver such as "pipelinectl triggerd" never sees a secret: it passes the
 * raw body and the header to fire_signed_trigger() (trigger_fire.c).
 *
 * Locking: a new version is numbered max(version)+1 under a transaction
 * advisory lock on the trigger's name (as define_job does for jobs).
 *
 * Layer: api (engine layers: README "Design notes")
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "token.h"
#include "util.h"
#include "defcheck.h"
#include "trigger.h"

static const char *const providers[] = {"github", "gitlab", "gitea", "generic", NULL};
const char *const pl_trigger_providers_text = "github, gitlab, gitea or generic";
static const char *const event_types[] = {"push", "tag", "merge_request", NULL};

bool
pl_trigger_provider_known(const char *provider)
{
	for (int i = 0; providers[i]; i++)
		if (strcmp(provider, providers[i]) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------ digests */

char *
pl_trigger_sha256_hex(const char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		d[PL_DIGEST_BYTES];
	char	   *out = palloc(2 * PL_DIGEST_BYTES + 1);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, d, sizeof(d)) < 0)
		elog(ERROR, "could not compute SHA-256 digest: %s",
			 ctx ? pg_cryptohash_error(ctx) : "out of memory");
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PL_DIGEST_BYTES; i++)
	{
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * PL_DIGEST_BYTES] = '\0';
	return out;
}

static void
sha256(const char *data, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, out, PL_DIGEST_BYTES) < 0)
		elog(ERROR, "could not compute SHA-256 digest: %s",
			 ctx ? pg_cryptohash_error(ctx) : "out of memory");
	pg_cryptohash_free(ctx);
}

static void
hmac_sha256(const char *key, const char *data, size_t len, uint8 *out)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL || pg_hmac_init(ctx, (const uint8 *) key, strlen(key)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_hmac_final(ctx, out, PL_DIGEST_BYTES) < 0)
		elog(ERROR, "could not compute HMAC-SHA256: %s",
			 ctx ? pg_hmac_error(ctx) : "out of memory");
	pg_hmac_free(ctx);
}

/* 64 hex digits (either case) into 32 bytes; false when it is not that */
static bool
unhex_digest(const char *s, uint8 *out)
{
	if (strlen(s) != 2 * PL_DIGEST_BYTES)
		return false;
	for (int i = 0; i < 2 * PL_DIGEST_BYTES; i++)
	{
		char		c = s[i];
		int			d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		if (i % 2 == 0)
			out[i / 2] = (uint8) (d << 4);
		else
			out[i / 2] |= (uint8) d;
	}
	return true;
}

static bool
equal_const_time(const uint8 *a, const uint8 *b, size_t n)
{
	uint8		diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

bool
pl_trigger_signature_ok(const char *provider, const char *secret,
						const char *body, size_t body_len, const char *signature)
{
	uint8		want[PL_DIGEST_BYTES];
	uint8		got[PL_DIGEST_BYTES];
	const char *hex = signature;

	if (secret == NULL || signature == NULL)
		return false;
	if (strcmp(provider, "gitlab") == 0)
	{
		/* a shared token: compare digests, so the time does not depend on where they differ */
		sha256(secret, strlen(secret), want);
		sha256(signature, strlen(signature), got);
		return equal_const_time(want, got, PL_DIGEST_BYTES);
	}
	if (strcmp(provider, "github") == 0 || strcmp(provider, "generic") == 0)
	{
		if (strncmp(signature, "sha256=", 7) != 0)
			return false;
		hex = signature + 7;
	}
	if (!unhex_digest(hex, got))
		return false;
	hmac_sha256(secret, body, body_len, want);
	return equal_const_time(want, got, PL_DIGEST_BYTES);
}

/* ------------------------------------------------------------------ define_trigger */

/* the refs regex compiles as the ~ operator will run it (advanced regex, default collation) */
static void
check_regex(DefCtx *ctx, const char *path, const char *re)
{
	int			len = strlen(re);
	pg_wchar   *w = palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(re, w, len);
	regex_t		compiled;
	int			rc;

	rc = pg_regcomp(&compiled, w, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID);
	if (rc != REG_OKAY)
	{
		char		msg[256];

		pg_regerror(rc, &compiled, msg, sizeof(msg));
		def_error(ctx, path, "is not a valid regular expression: %s", msg);
	}
	pg_regfree(&compiled);
	pfree(w);
}

/* the secret: a string of 8 to 1024 printable ASCII characters; never quoted */
static char *
get_secret(DefCtx *ctx, JsonbContainer *doc)
{
	JsonbValue *v = pl_jb_get(doc, "secret");

	if (v == NULL || v->type == jbvNull)
		def_error(ctx, "secret", "is required (the webhook's secret or token)");
	if (v->type != jbvString)
		def_error(ctx, "secret", "must be a string, not %s", def_type_name(v));
	if (v->val.string.len < PL_TRIGGER_MIN_SECRET || v->val.string.len > PL_TRIGGER_MAX_SECRET)
		def_error(ctx, "secret", "must be %d to %d characters long", PL_TRIGGER_MIN_SECRET,
				  PL_TRIGGER_MAX_SECRET);
	for (int i = 0; i < v->val.string.len; i++)
	{
		unsigned char c = (unsigned char) v->val.string.val[i];

		if (c < 0x20 || c > 0x7e)
			def_error(ctx, "secret", "must be printable ASCII (it travels in an HTTP header)");
	}
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* events: a non-empty array of distinct known event types; default ["push"] */
static void
emit_events(DefCtx *ctx, JsonbContainer *doc, StringInfo out, bool *first)
{
	JsonbValue *v = pl_jb_get(doc, "events");
	bool		seen[3] = {false, false, false};
	bool		f = true;
	int			n;

	appendStringInfoString(out, ", \"events\": [");
	if (v == NULL || v->type == jbvNull)
	{
		appendStringInfoString(out, "\"push\"]");
		return;
	}
	if (!def_is_array(v))
		def_error(ctx, "events", "must be an array, not %s", def_type_name(v));
	n = JsonContainerSize(v->val.binary.data);
	if (n == 0)
		def_error(ctx, "events", "must name at least one of push, tag, merge_request");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *p = def_path_idx("", "events", i);
		char	   *s;
		int			k;

		if (e->type != jbvString)
			def_error(ctx, p, "must be a string, not %s", def_type_name(e));
		s = pnstrdup(e->val.string.val, e->val.string.len);
		for (k = 0; event_types[k]; k++)
			if (strcmp(s, event_types[k]) == 0)
				break;
		if (event_types[k] == NULL)
			def_error(ctx, p, "\"%s\" is not an event type (push, tag, merge_request)", pl_clip(s));
		if (seen[k])
			def_error(ctx, p, "duplicate event type \"%s\"", s);
		seen[k] = true;
		if (!f)
			appendStringInfoString(out, ", ");
		f = false;
		escape_json(out, s);
	}
	appendStringInfoChar(out, ']');
}

static int
store_trigger(const char *name, const char *normalized, const char *secret)
{
	static PlStmt next = {
		"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.trigger:' || $1)),"
		" (SELECT COALESCE(max(version), 0) + 1 FROM pipeline.trigger WHERE name = $1)",
		1, {TEXTOID}
	};
	static PlStmt ins = {
		"INSERT INTO pipeline.trigger (name, version, definition, secret, created_by)"
		" VALUES ($1, $2, $3::jsonb, $4, $5)", 5, {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		v[5];
	int			version;

	v[0] = CStringGetTextDatum(name);
	pl_exec(&next, v, NULL, 1);
	version = pl_col_int32(0, 2);
	v[1] = Int32GetDatum(version);
	v[2] = CStringGetTextDatum(normalized);
	v[3] = CStringGetTextDatum(secret);
	v[4] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	pl_exec(&ins, v, NULL, 0);
	return version;
}

/*
 * define_trigger(definition jsonb) RETURNS int: the new version's number.
 * Locks: advisory transaction lock on the trigger's name.
 */
PG_FUNCTION_INFO_V1(pl_define_trigger);
Datum
pl_define_trigger(PG_FUNCTION_ARGS)
{
	static const char *const keys[] = {"name", "pipeline", "provider", "events", "refs",
	"secret", "params", "enabled", "description", NULL};
	Jsonb	   *jb;
	JsonbContainer *doc;
	DefCtx		ctx = {"trigger", NULL};
	JsonbValue *nv;
	StringInfoData out;
	bool		f = true;
	char	   *name,
			   *pipeline,
			   *provider,
			   *refs,
			   *secret;
	JsonbValue *params;
	int			version;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("define_trigger: definition must not be null")));
	jb = PG_GETARG_JSONB_P(0);
	if (!pl_jb_is_object(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger definition must be a JSON object")));
	doc = &jb->root;
	nv = pl_jb_get(doc, "name");
	if (nv && nv->type == jbvString)
		ctx.name = pnstrdup(nv->val.string.val, nv->val.string.len);
	if (VARSIZE_ANY_EXHDR(jb) > PL_MAX_DOCUMENT)
		def_error(&ctx, "$", "the definition is %zu bytes (as jsonb); at most 1 MiB is allowed",
				  (size_t) VARSIZE_ANY_EXHDR(jb));

	def_check_keys(&ctx, "", doc, keys);
	name = def_get_string(&ctx, "", doc, "name", true, NULL);
	if (!pl_valid_name(name, true))
		def_error(&ctx, "name",
				  "\"%s\" is not a valid name (1-128 letters, digits, '_', '-', '.', starting with a letter or digit)",
				  pl_clip(name));
	pipeline = def_get_string(&ctx, "", doc, "pipeline", true, NULL);
	if (!pl_valid_name(pipeline, true))
		def_error(&ctx, "pipeline", "\"%s\" is not a valid pipeline name", pl_clip(pipeline));
	provider = def_get_string(&ctx, "", doc, "provider", true, NULL);
	if (!pl_trigger_provider_known(provider))
		def_error(&ctx, "provider", "\"%s\" is not a provider (%s)", pl_clip(provider),
				  pl_trigger_providers_text);
	refs = def_get_string(&ctx, "", doc, "refs", false, NULL);
	if (refs != NULL)
	{
		if (strlen(refs) > PL_TRIGGER_MAX_REFS)
			def_error(&ctx, "refs", "is %zu bytes long; at most 1024 are allowed", strlen(refs));
		check_regex(&ctx, "refs", refs);
	}
	secret = get_secret(&ctx, doc);

	/* params: a string map of parameter names; GIT_* come from the event */
	params = pl_jb_get(doc, "params");
	if (params != NULL && def_is_object(params))
	{
		JsonbIterator *it = JsonbIteratorInit(params->val.binary.data);
		JsonbValue	k;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
			if (tok == WJB_KEY && k.val.string.len >= 4 && strncmp(k.val.string.val, "GIT_", 4) == 0)
				def_error(&ctx, def_path_key("params", pnstrdup(k.val.string.val, k.val.string.len)),
						  "GIT_* params are set from the event; a trigger cannot set them");
	}

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	pl_json_kv_str(&out, &f, "name", name);
	pl_json_kv_str(&out, &f, "pipeline", pipeline);
	pl_json_kv_str(&out, &f, "provider", provider);
	emit_events(&ctx, doc, &out, &f);
	pl_json_kv_str(&out, &f, "refs", refs);
	def_emit_string_map(&ctx, "", doc, "params", &out, &f, true);
	pl_json_kv_bool(&out, &f, "enabled", def_get_bool(&ctx, "", doc, "enabled", true));
	pl_json_kv_str(&out, &f, "description", def_get_string(&ctx, "", doc, "description", false, ""));
	appendStringInfoChar(&out, '}');

	pl_spi_connect();
	if (!pl_pipeline_exists(pipeline))
		def_error(&ctx, "pipeline", "pipeline \"%s\" does not exist", pl_clip(pipeline));
	version = store_trigger(name, out.data, secret);
	pl_spi_finish();
	PG_RETURN_INT32(version);
}

/*
 * trigger_fire.c: fire_trigger() and fire_signed_trigger() (SPEC §15): start
 * every matching pipeline for what a git provider sent (read by
 * trigger_payload.c), record the event.
 *
 *   fire_trigger(provider, event jsonb, event_type)     trusted SQL callers
 *   fire_signed_trigger(provider, body bytea, signature, event_type)
 *                                                       webhook receivers
 *
 * The signed form checks the signature against the secrets of the provider's
 * enabled triggers before reading the body (28000 and nothing written when no
 * secret verifies it) and then considers only the triggers whose secret did.
 * The event type is the provider's header (X-GitHub-Event: push, X-Gitlab-Event:
 * Push Hook, ...) or, when NULL, inferred from the payload; a push of
 * refs/tags/... is a "tag".  GIT_PROVIDER, GIT_EVENT, GIT_REPO, GIT_REF,
 * GIT_SHA and GIT_AUTHOR are read from the provider's own fields.  Whatever
 * arrives is recorded in pipeline.trigger_event: the fields, a SHA-256 of the
 * payload (never the payload: it may carry e-mails and tokens), the runs
 * started and, per trigger, why it did not start one.  A payload the engine
 * cannot use (missing ref, a deleted branch, an event type no trigger listens
 * to) is a recorded non-match, not an error.
 *
 * Each run is started through the SQL entry point pipeline.run_pipeline(...,
 * on_busy => 'queue') in its own subtransaction, so one trigger's refusal
 * (a required param without a value, say) is recorded as that trigger's
 * reason and does not keep the others from starting.
 *
 * Locking: none of its own; run_pipeline takes its usual locks.
 *
 * Layer: api (engine layers: README "Design notes")
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "defcheck.h"
#include "util.h"
#include "trigger.h"

/* a trigger that may fire: the latest, enabled version */
typedef struct Candidate
{
	char	   *name;
	int32		version;
	char	   *pipeline;
	char	   *params;			/* JSON text */
	char	   *events;			/* JSON text */
	char	   *events_list;	/* "push, tag" for messages */
	char	   *refs;			/* regex or NULL */
	char	   *secret;
	bool		verified;
} Candidate;

/* ------------------------------------------------------------------ the triggers */

static Candidate *
load_candidates(const char *provider, int *n)
{
	static PlStmt q = {
		"SELECT t.name, t.version, t.definition->>'pipeline', (t.definition->'params')::text,"
		"       (t.definition->'events')::text, t.definition->>'refs', t.secret,"
		"       pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.jsonb_array_elements_text("
		"           t.definition->'events')), ', ')"
		"  FROM (SELECT DISTINCT ON (name) * FROM pipeline.trigger"
		"         ORDER BY name, version DESC) t"
		" WHERE t.definition->>'provider' = $1 AND (t.definition->>'enabled')::boolean"
		" ORDER BY t.name",
		1, {TEXTOID}
	};
	Datum		v[1];
	Candidate  *c;

	v[0] = CStringGetTextDatum(provider);
	pl_exec(&q, v, NULL, 0);
	*n = (int) SPI_processed;
	c = palloc0(sizeof(Candidate) * (*n + 1));
	for (int i = 0; i < *n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;

		c[i].name = SPI_getvalue(t, d, 1);
		c[i].version = pl_col_int32(i, 2);
		c[i].pipeline = SPI_getvalue(t, d, 3);
		c[i].params = SPI_getvalue(t, d, 4);
		c[i].events = SPI_getvalue(t, d, 5);
		c[i].refs = SPI_getvalue(t, d, 6);
		c[i].secret = SPI_getvalue(t, d, 7);
		c[i].events_list = SPI_getvalue(t, d, 8);
		c[i].verified = true;
	}
	return c;
}

/* why this trigger does not fire for ev, or NULL when it does */
static char *
mismatch(Candidate *c, PlGitEvent *ev)
{
	static PlStmt q = {
		"SELECT $1::jsonb ? $2, $4 IS NULL OR $3 ~ $4", 4, {TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		v[4];
	bool		nulls[4] = {false, false, false, c->refs == NULL};

	v[0] = CStringGetTextDatum(c->events);
	v[1] = CStringGetTextDatum(ev->type);
	v[2] = CStringGetTextDatum(ev->ref);
	v[3] = c->refs ? CStringGetTextDatum(c->refs) : (Datum) 0;
	pl_exec(&q, v, nulls, 1);
	if (!pl_col_bool(0, 1))
		return psprintf("listens to %s events, not to %s", c->events_list, ev->type);
	if (!pl_col_bool(0, 2))
		return psprintf("ref %s does not match refs \"%s\"", pl_clip(ev->ref), pl_clip(c->refs));
	return NULL;
}

typedef struct StartRun
{
	Datum	   *v;				/* run_pipeline's arguments */
	int64		run;
} StartRun;

static void
start_run_body(void *arg)
{
	StartRun   *s = (StartRun *) arg;
	static PlStmt q = {
		"SELECT pipeline.run_pipeline($1, $2::jsonb || pg_catalog.jsonb_build_object("
		"  'GIT_PROVIDER', $3, 'GIT_EVENT', $4, 'GIT_REPO', $5, 'GIT_REF', $6,"
		"  'GIT_SHA', $7, 'GIT_AUTHOR', $8), false, $9, $10::jsonb, 'queue')",
		10, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};

	pl_exec(&q, s->v, NULL, 1);
	s->run = pl_col_int64(0, 1);
}

/* run_pipeline in a subtransaction: the run id, or 0 with *why set */
static int64
start_run(Candidate *c, PlGitEvent *ev, int64 event_id, char **why)
{
	StringInfoData labels;
	bool		f = true;
	Datum		v[10];
	StartRun	s = {v, 0};
	ErrorData  *e;

	initStringInfo(&labels);
	appendStringInfoChar(&labels, '{');
	pl_json_kv_str(&labels, &f, "trigger", c->name);
	pl_json_kv_str(&labels, &f, "trigger_event", psprintf(INT64_FORMAT, event_id));
	appendStringInfoChar(&labels, '}');
	v[0] = CStringGetTextDatum(c->pipeline);
	v[1] = CStringGetTextDatum(c->params);
	v[2] = CStringGetTextDatum(ev->provider);
	v[3] = CStringGetTextDatum(ev->type);
	v[4] = CStringGetTextDatum(ev->repo);
	v[5] = CStringGetTextDatum(ev->ref);
	v[6] = CStringGetTextDatum(ev->sha);
	v[7] = CStringGetTextDatum(ev->author);
	v[8] = CStringGetTextDatum(psprintf("trigger:%s", c->name));
	v[9] = CStringGetTextDatum(labels.data);

	/* a cancel, a shutdown, no memory: not a refusal of this trigger's run */
	e = pl_subxact_try(start_run_body, &s, pl_error_is_refusal);
	if (e == NULL)
		return s.run;
	*why = psprintf("run_pipeline refused: %s", e->message);
	FreeErrorData(e);
	return 0;
}

/*
 * Record the event, start the matching runs, record what happened.  Returns
 * the run ids (palloc'd in outer), *nruns their number.  Inside SPI.
 */
static int64 *
fire(PlGitEvent *ev, Candidate *c, int nc, MemoryContext outer, int *nruns)
{
	static PlStmt ins = {
		"INSERT INTO pipeline.trigger_event (provider, provider_event, event_type, repo, ref, sha,"
		" author, payload_sha256, payload_bytes, received_by)"
		" VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''), NULLIF($7, ''), $8, $9, $10)"
		" RETURNING id",
		10, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID}
	};
	static PlStmt upd = {
		"UPDATE pipeline.trigger_event SET runs = $2::bigint[], triggers = $3::jsonb, reason = $4"
		" WHERE id = $1",
		4, {INT8OID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		v[10];
	bool		nulls[10] = {false};
	int64		event_id;
	int64	   *runs = MemoryContextAllocZero(outer, sizeof(int64) * (nc + 1));
	int			n = 0;
	int			considered = 0;
	StringInfoData outcome,
				ids;
	bool		first = true;
	char	   *reason = ev->reason;

	v[0] = CStringGetTextDatum(ev->provider);
	nulls[1] = ev->header == NULL;
	v[1] = ev->header ? CStringGetTextDatum(ev->header) : (Datum) 0;
	nulls[2] = ev->type == NULL || ev->type[0] == '\0';
	v[2] = nulls[2] ? (Datum) 0 : CStringGetTextDatum(ev->type);
	v[3] = CStringGetTextDatum(ev->repo);
	v[4] = CStringGetTextDatum(ev->ref);
	v[5] = CStringGetTextDatum(ev->sha);
	v[6] = CStringGetTextDatum(ev->author);
	v[7] = CStringGetTextDatum(ev->digest);
	v[8] = Int64GetDatum(ev->bytes);
	v[9] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	pl_exec(&ins, v, nulls, 1);
	event_id = pl_col_int64(0, 1);

	initStringInfo(&outcome);
	initStringInfo(&ids);
	appendStringInfoChar(&outcome, '[');
	appendStringInfoChar(&ids, '{');
	for (int i = 0; reason == NULL && i < nc; i++)
	{
		char	   *why;
		bool		f = true;
		int64		run = 0;

		if (!c[i].verified)
			continue;
		considered++;
		why = mismatch(&c[i], ev);
		if (why == NULL)
			run = start_run(&c[i], ev, event_id, &why);
		if (!first)
			appendStringInfoString(&outcome, ", ");
		first = false;
		appendStringInfoChar(&outcome, '{');
		pl_json_kv_str(&outcome, &f, "trigger", c[i].name);
		pl_json_kv_int(&outcome, &f, "version", c[i].version);
		if (run > 0)
		{
			pl_json_kv_int(&outcome, &f, "run", run);
			if (n > 0)
				appendStringInfoChar(&ids, ',');
			appendStringInfo(&ids, INT64_FORMAT, run);
			runs[n++] = run;
		}
		else
			pl_json_kv_str(&outcome, &f, "reason", why);
		appendStringInfoChar(&outcome, '}');
	}
	appendStringInfoChar(&outcome, ']');
	appendStringInfoChar(&ids, '}');
	if (reason == NULL && considered == 0)
		reason = psprintf("no enabled %s trigger", ev->provider);
	else if (reason == NULL && n == 0)
		reason = pstrdup("no trigger matched");

	v[0] = Int64GetDatum(event_id);
	v[1] = CStringGetTextDatum(ids.data);
	v[2] = CStringGetTextDatum(outcome.data);
	memset(nulls, 0, sizeof(nulls));
	nulls[3] = reason == NULL;
	v[3] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	pl_exec(&upd, v, nulls, 0);
	*nruns = n;
	return runs;
}

/* ------------------------------------------------------------------ SQL entry points */

static const char *
provider_arg(FunctionCallInfo fcinfo, const char *fn)
{
	char	   *p;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: provider must not be null", fn)));
	p = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!pl_trigger_provider_known(p))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: \"%s\" is not a provider (%s)", fn, pl_clip(p), pl_trigger_providers_text)));
	return p;
}

static char *
event_type_arg(FunctionCallInfo fcinfo, int argno, const char *fn)
{
	char	   *h;

	if (PG_ARGISNULL(argno))
		return NULL;
	h = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (h[0] == '\0')
		return NULL;
	if (!pl_trigger_plausible(h, PL_TRIGGER_MAX_FIELD))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: event_type is longer than %d bytes or holds control characters",
						fn, PL_TRIGGER_MAX_FIELD)));
	return h;
}

static void
return_runs(FunctionCallInfo fcinfo, int64 *runs, int n)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	for (int i = 0; i < n; i++)
	{
		Datum		d = Int64GetDatum(runs[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &d, &isnull);
	}
}

/*
 * fire_trigger(provider text, event jsonb, event_type text DEFAULT NULL)
 * RETURNS SETOF bigint
 */
PG_FUNCTION_INFO_V1(pl_fire_trigger);
Datum
pl_fire_trigger(PG_FUNCTION_ARGS)
{
	PlGitEvent	ev = {0};
	Jsonb	   *jb;
	char	   *text;
	Candidate  *c;
	int			nc,
				n;
	int64	   *runs;
	MemoryContext outer;

	ev.provider = provider_arg(fcinfo, "fire_trigger");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("fire_trigger: event must not be null")));
	jb = PG_GETARG_JSONB_P(1);
	if (VARSIZE_ANY_EXHDR(jb) > PL_TRIGGER_MAX_EVENT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fire_trigger: the %s event is %zu bytes (as jsonb); at most 4 MiB is allowed",
						ev.provider, (size_t) VARSIZE_ANY_EXHDR(jb))));
	if (!pl_jb_is_object(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fire_trigger: the %s event must be a JSON object", ev.provider)));
	ev.header = event_type_arg(fcinfo, 2, "fire_trigger");
	text = pl_jsonb_to_cstring(jb);
	ev.digest = pl_trigger_sha256_hex(text, strlen(text));
	ev.bytes = strlen(text);
	pfree(text);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	outer = pl_spi_connect();
	pl_trigger_read_event(&ev, &jb->root);
	c = load_candidates(ev.provider, &nc);
	runs = fire(&ev, c, nc, outer, &n);
	pl_spi_finish();
	return_runs(fcinfo, runs, n);
	return (Datum) 0;
}

/*
 * fire_signed_trigger(provider text, body bytea, signature text,
 *                     event_type text DEFAULT NULL) RETURNS SETOF bigint
 * 28000 when the signature verifies against no enabled trigger's secret
 * (nothing is written); 22023 for a body that is not a JSON object.
 */
PG_FUNCTION_INFO_V1(pl_fire_signed_trigger);
Datum
pl_fire_signed_trigger(PG_FUNCTION_ARGS)
{
	PlGitEvent	ev = {0};
	bytea	   *body;
	char	   *signature;
	Candidate  *c;
	int			nc,
				n,
				verified = 0;
	int64	   *runs;
	Jsonb	   *jb;
	MemoryContext outer;

	ev.provider = provider_arg(fcinfo, "fire_signed_trigger");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("fire_signed_trigger: body must not be null")));
	body = PG_GETARG_BYTEA_PP(1);
	if (VARSIZE_ANY_EXHDR(body) > PL_TRIGGER_MAX_EVENT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s webhook: the body is %zu bytes; at most 4 MiB is allowed",
						ev.provider, (size_t) VARSIZE_ANY_EXHDR(body))));
	signature = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	ev.header = event_type_arg(fcinfo, 3, "fire_signed_trigger");

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	outer = pl_spi_connect();
	c = load_candidates(ev.provider, &nc);
	for (int i = 0; i < nc; i++)
	{
		c[i].verified = pl_trigger_signature_ok(ev.provider, c[i].secret, VARDATA_ANY(body),
												VARSIZE_ANY_EXHDR(body), signature);
		if (c[i].verified)
			verified++;
	}
	if (verified == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("%s webhook: %s", ev.provider,
						signature == NULL || signature[0] == '\0' ? "the signature is missing"
						: nc == 0 ? "there is no enabled trigger for this provider"
						: "the signature matches no enabled trigger's secret")));
	jb = pl_trigger_parse_body(ev.provider, body);
	ev.digest = pl_trigger_sha256_hex(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	ev.bytes = VARSIZE_ANY_EXHDR(body);
	pl_trigger_read_event(&ev, &jb->root);
	runs = fire(&ev, c, nc, outer, &n);
	pl_spi_finish();
	return_runs(fcinfo, runs, n);
	return (Datum) 0;
}

/*
 * util.c: small helpers shared by the engine: stage names, SPI with saved
 * plans, and reading and writing JSON.
 *
 * Layer: storage
 *
 * Saved plans: each call site owns a static PlStmt; the first pl_exec()
 * prepares it and keeps it (SPI_keepplan), so the hot paths never re-parse.
 * The plan cache revalidates a kept plan after DDL on the tables.  A kept plan
 * with parameters is still re-planned for each call while the plan cache
 * prefers custom plans, which it does for most of our statements (their
 * constant-folded custom plans look cheaper): planning was a fifth of a
 * status update's CPU (issue 12, perf).  Statements marked PL_GENERIC
 * (util.h) -- lookups by key on the hot paths -- always use the generic
 * plan; the others (queue picks with LIMIT $n, where a generic plan would
 * sort the whole queue) keep the plan cache's choice.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "util.h"

const char *const pl_stage_names[PL_NSTAGES] = {
	"pending", "scheduling", "creating", "active", "canceling",
	"canceled", "failed", "succeeded", "skipped"
};

PlStage
pl_stage_from_name(const char *name)
{
	for (int i = 0; i < PL_NSTAGES; i++)
		if (strcmp(pl_stage_names[i], name) == 0)
			return (PlStage) i;
	elog(ERROR, "unknown task stage \"%s\"", name);
	return PL_PENDING;			/* keep compiler quiet */
}

/*
 * Enum datum -> PlStage.  Enum OIDs differ per database (and change when the
 * extension is re-created), labels do not: a miss falls back to enum_out and
 * refreshes the slot.  OIDs are not reused before wraparound, so a stale slot
 * can only ever miss, never answer wrongly.
 */
PlStage
pl_stage_from_datum(Datum d)
{
	static Oid	cached_oid[PL_NSTAGES];
	static bool cached = false;
	Oid			oid = DatumGetObjectId(d);
	char	   *label;
	PlStage		s;

	if (cached)
	{
		for (int i = 0; i < PL_NSTAGES; i++)
			if (cached_oid[i] == oid)
				return (PlStage) i;
	}
	label = DatumGetCString(DirectFunctionCall1(enum_out, d));
	s = pl_stage_from_name(label);
	pfree(label);
	cached_oid[s] = oid;
	/* mark cached once every slot is filled */
	cached = true;
	for (int i = 0; i < PL_NSTAGES; i++)
		if (cached_oid[i] == InvalidOid)
			cached = false;
	return s;
}

/*
 * The engine re-reads rows after waiting for locks (advance.c) and reads
 * events with a fresh snapshot (event.c): a transaction snapshot would hide
 * what committed meanwhile.  SQLSTATE 25001 under REPEATABLE READ or
 * SERIALIZABLE.
 */
void
pl_require_read_committed(const char *fn)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s must run in a READ COMMITTED transaction", fn),
				 errdetail("It re-reads rows after waiting for locks; a transaction snapshot would hide what committed meanwhile.")));
}

/* ---------------------------------------------------------------- SPI */

static MemoryContext pl_outer_context = NULL;

MemoryContext
pl_spi_connect(void)
{
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pl_outer_context = outer;
	return outer;
}

void
pl_spi_finish(void)
{
	SPI_finish();
}

int
pl_exec(PlStmt *stmt, Datum *values, const bool *isnull, long tcount)
{
	char		nulls[12];
	int			rc;

	/*
	 * A generic plan is made once, with the table sizes of that moment, and
	 * is re-made by the plan cache only when the tables' statistics change
	 * (ANALYZE, VACUUM).  One made on a fresh install, on tables of a few
	 * rows, can be the wrong shape for the same tables grown large (a claim's
	 * pick sorting the whole queue) until autovacuum gets to them.  So it is
	 * prepared again after 10, 100 and 1,000 executions, then every 10,000:
	 * the planner reads the tables' current size, statistics or not.
	 */
	if (stmt->plan != NULL && stmt->generic)
	{
		uint32		n = ++stmt->runs;

		if (n == 10 || n == 100 || n == 1000 || n % 10000 == 0)
		{
			SPI_freeplan(stmt->plan);
			stmt->plan = NULL;
		}
	}
	if (stmt->plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(stmt->sql, stmt->nargs, stmt->argtypes,
										   stmt->generic ? CURSOR_OPT_GENERIC_PLAN : 0);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", stmt->sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		stmt->plan = p;
	}
	for (int i = 0; i < stmt->nargs; i++)
		nulls[i] = (isnull && isnull[i]) ? 'n' : ' ';
	rc = SPI_execute_plan(stmt->plan, values, nulls, false, tcount);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed (%s): %s",
			 SPI_result_code_string(rc), stmt->sql);
	return rc;
}

Datum
pl_col(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

int64
pl_col_int64(int row, int col)
{
	bool		isnull;
	Datum		d = pl_col(row, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

int32
pl_col_int32(int row, int col)
{
	bool		isnull;
	Datum		d = pl_col(row, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

bool
pl_col_bool(int row, int col)
{
	bool		isnull;
	Datum		d = pl_col(row, col, &isnull);

	return isnull ? false : DatumGetBool(d);
}

char *
pl_col_text(int row, int col)
{
	bool		isnull;
	Datum		d = pl_col(row, col, &isnull);
	MemoryContext old;
	char	   *s;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(pl_outer_context ? pl_outer_context : CurrentMemoryContext);
	s = TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	return s;
}

Jsonb *
pl_col_jsonb(int row, int col)
{
	bool		isnull;
	Datum		d = pl_col(row, col, &isnull);
	MemoryContext old;
	Jsonb	   *j;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(pl_outer_context ? pl_outer_context : CurrentMemoryContext);
	j = DatumGetJsonbPCopy(d);
	MemoryContextSwitchTo(old);
	return j;
}

PlStage
pl_col_stage(int row, int col)
{
	bool		isnull;
	Datum		d = pl_col(row, col, &isnull);

	if (isnull)
		elog(ERROR, "unexpected null stage");
	return pl_stage_from_datum(d);
}

/* ---------------------------------------------------------------- JSON */

JsonbValue *
pl_jb_get(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;

	if (obj == NULL || !JsonContainerIsObject(obj))
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
}

Jsonb *
pl_jsonb_from_cstring(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

char *
pl_jsonb_to_cstring(Jsonb *jb)
{
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

char *
pl_jbv_to_cstring(JsonbValue *v)
{
	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	else
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);

		return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
}

char *
pl_jbv_scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvNull:
			return NULL;
		default:
			return pl_jbv_to_cstring(v);
	}
}

bool
pl_jb_is_object(Jsonb *jb)
{
	return jb != NULL && JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb);
}

static void
kv_key(StringInfo buf, bool *first, const char *key)
{
	if (!*first)
		appendStringInfoString(buf, ", ");
	*first = false;
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
}

void
pl_json_kv_str(StringInfo buf, bool *first, const char *key, const char *val)
{
	kv_key(buf, first, key);
	if (val)
		escape_json(buf, val);
	else
		appendStringInfoString(buf, "null");
}

void
pl_json_kv_raw(StringInfo buf, bool *first, const char *key, const char *raw)
{
	kv_key(buf, first, key);
	appendStringInfoString(buf, raw ? raw : "null");
}

void
pl_json_kv_int(StringInfo buf, bool *first, const char *key, int64 val)
{
	kv_key(buf, first, key);
	appendStringInfo(buf, INT64_FORMAT, val);
}

void
pl_json_kv_bool(StringInfo buf, bool *first, const char *key, bool val)
{
	kv_key(buf, first, key);
	appendStringInfoString(buf, val ? "true" : "false");
}

/* ---------------------------------------------------------------- masking */

/*
 * mask_params(params jsonb, sensitive text[]) RETURNS jsonb
 *
 * The values of the named keys (or of "stage.task.NAME" keys whose last
 * segment is named) replaced by "******".  Returns params itself when
 * nothing needs masking, so the common case costs one array check.
 */
typedef struct MaskNames
{
	Datum	   *names;
	bool	   *nulls;
	int			nnames;
} MaskNames;

/* pl_jsonb_rewrite callback of mask_params: a value whose key names a sensitive param */
static bool
mask_named_value(JsonbIteratorToken tok, JsonbValue *v, const JsonbValue *key, void *arg)
{
	MaskNames  *mn = arg;
	const char *k;
	int			klen;
	const char *last;
	int			lastlen;
	bool		hit = false;

	if (tok != WJB_VALUE || key == NULL)
		return false;
	k = key->val.string.val;
	klen = key->val.string.len;
	last = k;
	for (int i = 0; i < klen; i++)
		if (k[i] == '.')
			last = k + i + 1;
	lastlen = klen - (int) (last - k);
	for (int i = 0; i < mn->nnames && !hit; i++)
	{
		text	   *t;

		if (mn->nulls[i])
			continue;
		t = DatumGetTextPP(mn->names[i]);
		hit = VARSIZE_ANY_EXHDR(t) == (Size) lastlen &&
			memcmp(VARDATA_ANY(t), last, lastlen) == 0;
	}
	if (!hit)
		return false;
	v->type = jbvString;
	v->val.string.val = "******";
	v->val.string.len = 6;
	return true;
}

/*
 * doc rebuilt with fn's replacements, or doc itself when fn changed nothing:
 * the one copy loop of the masking functions (mask_params, mask_secrets).
 * fn sees every key (key NULL), then every value under it (with its key)
 * and every array element (key NULL), and may change the JsonbValue in
 * place, returning true when it did.  shallow: the values of the top-level
 * object are passed whole (a container as jbvBinary), not opened.
 */
Jsonb *
pl_jsonb_rewrite(Jsonb *doc, bool shallow, PlJsonbRewriteFn fn, void *arg)
{
	JsonbIterator *it;
	JsonbValue	v,
				key;
	JsonbIteratorToken tok;
	JsonbParseState *st = NULL;
	JsonbValue *res = NULL;
	bool		changed = false;

	it = JsonbIteratorInit(&doc->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = v;
			if (fn(tok, &v, NULL, arg))
				changed = true;
			res = pushJsonbValue(&st, tok, &v);
			if (!shallow)
				continue;
			tok = JsonbIteratorNext(&it, &v, true);
			if (fn(tok, &v, &key, arg))
				changed = true;
			res = pushJsonbValue(&st, WJB_VALUE, &v);
		}
		else if (tok == WJB_VALUE || tok == WJB_ELEM)
		{
			if (fn(tok, &v, NULL, arg))
				changed = true;
			res = pushJsonbValue(&st, tok, &v);
		}
		else if (tok == WJB_BEGIN_ARRAY && v.val.array.rawScalar)
			res = pushJsonbValue(&st, tok, &v);
		else
			res = pushJsonbValue(&st, tok, NULL);
	}
	return changed ? JsonbValueToJsonb(res) : doc;
}

PG_FUNCTION_INFO_V1(pl_mask_params);
Datum
pl_mask_params(PG_FUNCTION_ARGS)
{
	Jsonb	   *params;
	ArrayType  *arr;
	MaskNames	mn;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	params = PG_GETARG_JSONB_P(0);
	if (PG_ARGISNULL(1) || !JB_ROOT_IS_OBJECT(params) || JB_ROOT_IS_SCALAR(params))
		PG_RETURN_JSONB_P(params);
	arr = PG_GETARG_ARRAYTYPE_P(1);
	if (ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) == 0)
		PG_RETURN_JSONB_P(params);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &mn.names, &mn.nulls, &mn.nnames);
	PG_RETURN_JSONB_P(pl_jsonb_rewrite(params, true, mask_named_value, &mn));
}

/*
 * Is this error a refusal of what was asked (a bad argument, a busy
 * sequence, a missing object: worth recording and going on), rather than the
 * statement being canceled or the server in trouble (to be re-thrown)?  For
 * callers that catch errors of a subtransaction (pl_subxact_try: trigger_fire.c,
 * chain.c).
 */
bool
pl_error_is_refusal(ErrorData *e)
{
	switch (ERRCODE_TO_CATEGORY(e->sqlerrcode))
	{
		case ERRCODE_TO_CATEGORY(ERRCODE_OPERATOR_INTERVENTION):	/* 57: canceled, shutdown */
		case ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES):	/* 53 */
		case ERRCODE_TO_CATEGORY(ERRCODE_PROGRAM_LIMIT_EXCEEDED):	/* 54 */
		case ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR):	/* 58 */
		case ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR):	/* XX */
		case ERRCODE_TO_CATEGORY(ERRCODE_T_R_SERIALIZATION_FAILURE):	/* 40: deadlock */
			return false;
		default:
			return true;
	}
}

/* pl_subxact_try (util.h) */
ErrorData *
pl_subxact_try(PlSubxactBody body, void *arg, bool (*is_refusal) (ErrorData *e))
{
	MemoryContext mcx = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext spi_outer = pl_spi_outer();
	ErrorData  *volatile refused = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcx);
	PG_TRY();
	{
		body(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcx);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(mcx);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcx);
		CurrentResourceOwner = owner;
		pl_spi_set_outer(spi_outer);
		if (!is_refusal(e))
			ReThrowError(e);
		refused = e;
	}
	PG_END_TRY();
	pl_spi_set_outer(spi_outer);
	return refused;
}

/* The context pl_col_text() and pl_col_jsonb() copy into (see pl_spi_connect). */
MemoryContext
pl_spi_outer(void)
{
	return pl_outer_context;
}

/*
 * Put back what pl_spi_outer() returned, after a nested pl_spi_connect()
 * (a run started from inside another SPI-connected function) replaced it.
 */
void
pl_spi_set_outer(MemoryContext cxt)
{
	pl_outer_context = cxt;
}

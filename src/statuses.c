/*
 * statuses.c: update_job_task_statuses(reports jsonb), the batched runner
 * report (SPEC §16).
 *
 * Layer: api
 *
 * Each report {"id", "stage", "update_token", "message", "detail",
 * "runtime_envs", "extension"} is applied by pl_status_apply() (status.c),
 * the code path of update_job_task_status, in id order (ties: array order),
 * in the caller's transaction, each inside a subtransaction: a refused
 * report rolls back what it did itself (its row change, event, deliveries,
 * NOTIFY) and gets a row with its SQLSTATE and message; the others go on.
 * The messages are the engine's refusals (they name the task, never a token
 * or a value).  A rejected token bumps pipeline.rejected_token_seq, which
 * survives the subtransaction's rollback, so it is counted in
 * pipeline.stats like a single call's.
 *
 * Malformed input: a NULL `reports` is 22004; not an array, more than 1000
 * reports, an element that is not an object or whose "id" is not a positive
 * integer are one 22023 error for the whole call (nothing is applied: the
 * caller's code is wrong, and there is no id to answer for).  Once the id is
 * known, a report's own faults -- "stage" missing or not a stage name,
 * "update_token" missing or not a string, "message" not a string, an unknown
 * key -- refuse that report alone with 22023 (nothing looked up or counted).
 *
 * Errors that are not about the report (query canceled, out of memory,
 * internal errors: SQLSTATE classes 53, 57, 58, XX) are re-raised and end
 * the whole call.  A deadlock or serialization failure (40P01, 40001) of one
 * report is that report's row: nothing of it stays, and it may be sent again.
 *
 * Locks, in lock.c's order A(P) -> T -> R(P), for the whole batch: first A(P)
 * of every run named by a completing report's token, in run id order
 * (exclusive when a report of that run says "canceled"), then the rows of
 * the completing reports FOR UPDATE in id order, then the reports one by one
 * (each re-takes what it already holds, and R(P) when it may be last).  So a
 * batch never waits for a row lock while holding a fan-in witness lock on a
 * row another batch is about to complete.  Two batches that each complete
 * the last task of two runs' stages can still wait for each other's R(P);
 * PostgreSQL breaks that cycle and one of the two reports gets 40P01.
 * Subtransaction cost: one subtransaction id per applied report (the commit
 * record lists them); 64 or fewer per call keep PostgreSQL's per-backend
 * subtransaction cache from overflowing (the runner sends at most 50).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "defcheck.h"
#include "lock.h"
#include "status.h"
#include "token.h"
#include "util.h"

#define PL_STATUSES_MAX 1000

typedef struct BatchReport
{
	int			ord;			/* position in the array */
	PlStatusCall call;
	const char *refusal;		/* the report's own fault (22023), or NULL */
} BatchReport;

static int
report_cmp(const void *a, const void *b)
{
	const BatchReport *x = a;
	const BatchReport *y = b;

	if (x->call.id != y->call.id)
		return x->call.id < y->call.id ? -1 : 1;
	return x->ord - y->ord;
}

/* A whole-call refusal: the array itself is malformed. */
static void
bad_batch(int ord, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("update_job_task_statuses: report %d %s", ord + 1, what),
			 errhint("reports is a JSON array of objects {\"id\", \"stage\", \"update_token\", \"message\", \"detail\", \"runtime_envs\", \"extension\"}.")));
}

static bool
stage_by_name(const char *name, PlStage *out)
{
	for (int i = 0; i < PL_NSTAGES; i++)
		if (strcmp(pl_stage_names[i], name) == 0)
		{
			*out = (PlStage) i;
			return true;
		}
	return false;
}

/* a jsonb value of the report (NULL for JSON null) */
static Jsonb *
value_jsonb(JsonbValue *v)
{
	if (v == NULL || v->type == jbvNull)
		return NULL;
	return JsonbValueToJsonb(v);
}

/* Read one element into r (its own faults go to r->refusal). */
static void
read_report(JsonbValue *elem, int ord, BatchReport *r)
{
	static const char *const keys[] = {"id", "stage", "update_token", "message", "detail",
	"runtime_envs", "extension", NULL};
	JsonbContainer *obj;
	JsonbValue *v;
	JsonbIterator *it;
	JsonbValue	k;
	JsonbIteratorToken tok;
	char	   *name;

	memset(r, 0, sizeof(*r));
	r->ord = ord;
	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		bad_batch(ord, "is not a JSON object");
	obj = elem->val.binary.data;

	v = pl_jb_get(obj, "id");
	if (v == NULL || v->type != jbvNumeric)
		bad_batch(ord, "has no numeric \"id\"");
	{
		char	   *num = DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(v->val.numeric)));
		char	   *end;
		long long	id;

		errno = 0;
		id = strtoll(num, &end, 10);
		if (*end != '\0' || errno != 0 || id <= 0)
			bad_batch(ord, "has an \"id\" that is not a positive integer");
		r->call.id = (int64) id;
	}

	/* unknown keys: a misspelt "mesage" must not be dropped silently */
	it = JsonbIteratorInit(obj);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		for (int i = 0; keys[i]; i++)
			known |= strcmp(keys[i], name) == 0;
		if (!known && r->refusal == NULL)
			r->refusal = psprintf("job task " INT64_FORMAT ": unknown report key \"%s\"",
								  r->call.id, pl_clip(name));
	}

	v = pl_jb_get(obj, "stage");
	if (v == NULL || v->type != jbvString)
	{
		if (r->refusal == NULL)
			r->refusal = psprintf("job task " INT64_FORMAT ": report has no \"stage\"", r->call.id);
	}
	else
	{
		name = pnstrdup(v->val.string.val, v->val.string.len);
		if (!stage_by_name(name, &r->call.stage) && r->refusal == NULL)
			r->refusal = psprintf("job task " INT64_FORMAT ": \"%s\" is not a stage",
								  r->call.id, pl_clip(name));
	}

	v = pl_jb_get(obj, "update_token");
	if (v == NULL || v->type != jbvString)
	{
		if (r->refusal == NULL)
			r->refusal = psprintf("job task " INT64_FORMAT ": report has no \"update_token\" string", r->call.id);
	}
	else
	{
		r->call.token = pnstrdup(v->val.string.val, v->val.string.len);
		r->call.token_text = CStringGetTextDatum(r->call.token);
	}

	v = pl_jb_get(obj, "message");
	if (v != NULL && v->type == jbvString)
		r->call.message = PointerGetDatum(cstring_to_text_with_len(v->val.string.val,
																   v->val.string.len));
	else if (v != NULL && v->type != jbvNull && r->refusal == NULL)
		r->refusal = psprintf("job task " INT64_FORMAT ": \"message\" must be a string", r->call.id);

	r->call.detail = value_jsonb(pl_jb_get(obj, "detail"));
	r->call.runtime_envs = value_jsonb(pl_jb_get(obj, "runtime_envs"));
	r->call.extension = value_jsonb(pl_jb_get(obj, "extension"));
}

/* the run ids of completing reports, with the lock mode, sorted */
typedef struct RunLock
{
	int64		run;
	bool		exclusive;
} RunLock;

static int
runlock_cmp(const void *a, const void *b)
{
	const RunLock *x = a;
	const RunLock *y = b;

	if (x->run != y->run)
		return x->run < y->run ? -1 : 1;
	return (int) y->exclusive - (int) x->exclusive;	/* exclusive first */
}

/* A(P) of every run a completing report names, in run order; then their rows, in id order. */
static void
lock_batch(BatchReport *reps, int n)
{
	static PlStmt rows = {
		"SELECT t.id FROM pipeline.job_task t WHERE t.id = ANY($1) ORDER BY t.id FOR UPDATE",
		1, {INT8ARRAYOID}
	};
	RunLock    *locks = palloc(sizeof(RunLock) * (n + 1));
	Datum	   *ids = palloc(sizeof(Datum) * (n + 1));
	int			nl = 0;
	int			ni = 0;

	for (int i = 0; i < n; i++)
	{
		int64		run;

		if (reps[i].refusal || !pl_stage_complete(reps[i].call.stage))
			continue;
		ids[ni++] = Int64GetDatum(reps[i].call.id);
		run = pl_token_run(reps[i].call.token);
		if (run != 0)
		{
			locks[nl].run = run;
			locks[nl].exclusive = reps[i].call.stage == PL_CANCELED;
			nl++;
		}
	}
	qsort(locks, nl, sizeof(RunLock), runlock_cmp);
	for (int i = 0; i < nl; i++)
	{
		if (i > 0 && locks[i].run == locks[i - 1].run)
			continue;			/* the first of a run has the strongest mode */
		if (locks[i].exclusive)
			pl_lock_run_exclusive(locks[i].run);
		else
			pl_lock_run_shared(locks[i].run);
	}
	if (ni > 0)
	{
		Datum		v[1];

		v[0] = PointerGetDatum(construct_array(ids, ni, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		pl_exec(&rows, v, NULL, 0);
	}
}

/* A refused report (its row says why) rather than an error that ends the whole call. */
static bool
refuses_one_report(ErrorData *e)
{
	int			cls = ERRCODE_TO_CATEGORY(e->sqlerrcode);

	return !(e->elevel > ERROR ||
			 cls == ERRCODE_INSUFFICIENT_RESOURCES ||
			 cls == ERRCODE_OPERATOR_INTERVENTION ||
			 cls == ERRCODE_SYSTEM_ERROR ||
			 cls == ERRCODE_INTERNAL_ERROR);
}

typedef struct ApplyOne
{
	BatchReport *r;
	MemoryContext cxt;
	Datum		row;
} ApplyOne;

static void
apply_one_body(void *arg)
{
	ApplyOne   *a = (ApplyOne *) arg;
	MemoryContext here = MemoryContextSwitchTo(a->cxt);

	a->row = pl_status_apply(&a->r->call, a->cxt);
	MemoryContextSwitchTo(here);
}

/*
 * Apply one report in a subtransaction: its row (in cxt), or 0 with its
 * SQLSTATE and message when refused.  Errors that are no refusal re-raised.
 */
static Datum
apply_one(BatchReport *r, MemoryContext cxt, char **sqlstate, char **message)
{
	ApplyOne	a = {r, cxt, (Datum) 0};
	ErrorData  *e = pl_subxact_try(apply_one_body, &a, refuses_one_report);

	if (e == NULL)
		return a.row;
	*sqlstate = pstrdup(unpack_sql_state(e->sqlerrcode));
	*message = e->message ? e->message : pstrdup("refused");
	return (Datum) 0;
}

/*
 * update_job_task_statuses(reports jsonb)
 *   RETURNS TABLE(id bigint, stage pipeline.task_stage, sqlstate text, message text)
 * stage: the task's stage after the report (NULL when refused).
 */
PG_FUNCTION_INFO_V1(pl_update_job_task_statuses);
Datum
pl_update_job_task_statuses(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *reports;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	BatchReport *reps;
	int			n = 0;
	int			cap;
	MemoryContext outer;
	MemoryContext per_report;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("update_job_task_statuses: reports must not be null")));
	reports = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(reports) || JB_ROOT_IS_SCALAR(reports))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("update_job_task_statuses: reports must be a JSON array")));
	cap = JB_ROOT_COUNT(reports);
	if (cap > PL_STATUSES_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("update_job_task_statuses: at most %d reports per call, not %d",
						PL_STATUSES_MAX, cap)));
	pl_require_read_committed("update_job_task_statuses");

	reps = palloc0(sizeof(BatchReport) * (cap + 1));
	it = JsonbIteratorInit(&reports->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		read_report(&v, n, &reps[n]);
		n++;
	}
	qsort(reps, n, sizeof(BatchReport), report_cmp);

	InitMaterializedSRF(fcinfo, 0);
	outer = pl_spi_connect();
	lock_batch(reps, n);

	per_report = AllocSetContextCreate(CurrentMemoryContext, "update_job_task_statuses",
									   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < n; i++)
	{
		BatchReport *r = &reps[i];
		Datum		values[4];
		bool		nulls[4] = {false, true, true, true};
		char	   *sqlstate = NULL;
		char	   *message = NULL;
		Datum		row = (Datum) 0;
		MemoryContext old;

		values[0] = Int64GetDatum(r->call.id);
		if (r->refusal)
		{
			sqlstate = "22023";
			message = (char *) r->refusal;
		}
		else
			row = apply_one(r, per_report, &sqlstate, &message);
		if (row != (Datum) 0)
		{
			HeapTupleHeader th = DatumGetHeapTupleHeader(row);
			bool		isnull;
			Datum		st = GetAttributeByName(th, "stage", &isnull);

			if (!isnull)
			{
				values[1] = st;
				nulls[1] = false;
			}
		}
		old = MemoryContextSwitchTo(outer);
		if (sqlstate)
		{
			values[2] = CStringGetTextDatum(sqlstate);
			values[3] = CStringGetTextDatum(message);
			nulls[2] = nulls[3] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(per_report);
	}
	pl_spi_finish();
	return (Datum) 0;
}

/*
 * gate.c: the decisions people take at a job task's gates: audit_job_task()
 * (before running) and confirm_job_task() (after running).
 *
 * Layer: api
 *
 * Locks: a decision rewrites task state that advancing depends on, so it
 * takes the run's advisory lock A(P) exclusively first (lock.c), then the
 * task row, then (advancing, schedule.c) the run row.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "jobrow.h"
#include "lock.h"
#include "schedule.h"
#include "transition.h"
#include "util.h"

static char *
outer_user(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

/* Is the current user listed in the gate's array (auditors/checkers)? */
static void
check_listed(int64 id, Jsonb *gate, const char *list_key, const char *what)
{
	JsonbValue *lst = gate ? pl_jb_get(&gate->root, list_key) : NULL;
	char	   *me = outer_user();
	JsonbValue	probe;

	probe.type = jbvString;
	probe.val.string.val = me;
	probe.val.string.len = strlen(me);
	if (lst == NULL || lst->type != jbvBinary ||
		findJsonbValueFromContainer(lst->val.binary.data, JB_FARRAY, &probe) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("job task " INT64_FORMAT ": user \"%s\" is not one of its %s", id, me, what)));
}

/*
 * Record a gate decision in gate_result.<gate> = {pass, by, at, comment} and
 * clear the waiting gate.
 */
static void
record_decision(int64 id, const char *gate, bool pass, const char *comment)
{
	static PlStmt q = {
		"UPDATE pipeline.job_task SET gate = NULL, updated_at = now(),"
		"  gate_result = gate_result || pg_catalog.jsonb_build_object($2::text,"
		"     pg_catalog.jsonb_build_object('pass', $3, 'by', $4::text, 'at', now(), 'comment', $5::text))"
		" WHERE id = $1",
		5, {INT8OID, TEXTOID, BOOLOID, TEXTOID, TEXTOID}
	};
	Datum		v[5];
	bool		n[5] = {false, false, false, false, comment == NULL};

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(gate);
	v[2] = BoolGetDatum(pass);
	v[3] = CStringGetTextDatum(outer_user());
	v[4] = comment ? CStringGetTextDatum(comment) : (Datum) 0;
	pl_exec(&q, v, n, 0);
}

/*
 * audit_job_task(id bigint, pass boolean, comment text DEFAULT NULL) RETURNS job_task
 * confirm_job_task(id bigint, pass boolean, comment text DEFAULT NULL) RETURNS job_task
 * Locks: A(P) exclusive, the task row, then (advancing) the run row.
 */
static Datum
decide(FunctionCallInfo fcinfo, bool audit)
{
	static PlStmt lock_q = {
		"SELECT stage, gate, audit, confirm, stage_index FROM pipeline.job_task WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	};
	const char *fn = audit ? "audit_job_task" : "confirm_job_task";
	const char *gate = audit ? "audit" : "confirm";
	int64		id;
	bool		pass;
	char	   *comment;
	int64		pt;
	PlStage		stage;
	char	   *waiting;
	Jsonb	   *spec;
	Datum		v[1];
	MemoryContext outer;
	Datum		result;
	int			stage_index;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: %s must not be null", fn, PG_ARGISNULL(0) ? "id" : "pass")));
	id = PG_GETARG_INT64(0);
	pass = PG_GETARG_BOOL(1);
	comment = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!pass && (comment == NULL || comment[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job task " INT64_FORMAT ": a denial needs a comment", id),
				 errhint("Say why, so the people who run the pipeline know.")));
	pl_require_read_committed(fn);

	outer = pl_spi_connect();
	pt = pl_run_of_task(id);
	pl_lock_run_exclusive(pt);
	v[0] = Int64GetDatum(id);
	pl_exec(&lock_q, v, NULL, 1);
	stage = pl_col_stage(0, 1);
	waiting = pl_col_text(0, 2);
	spec = pl_col_jsonb(0, audit ? 3 : 4);
	stage_index = pl_col_int32(0, 5);

	if (waiting == NULL || strcmp(waiting, gate) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is not waiting at its %s gate", id, gate),
				 errdetail("The task is %s%s%s.", pl_stage_names[stage],
						   waiting ? ", waiting at its " : "", waiting ? waiting : "")));
	check_listed(id, spec, audit ? "auditors" : "checkers", audit ? "auditors" : "checkers");

	record_decision(id, gate, pass, comment);
	if (audit)
	{
		if (pass)
			pl_tr_job(id, pt, PL_PENDING, PL_SCHEDULING, NULL);
		else
		{
			pl_tr_job(id, pt, PL_PENDING, PL_FAILED,
								  psprintf("audit denied by %s: %s", outer_user(), comment));
			pl_sched_after(id, pt, stage_index, PL_FAILED, false);
		}
	}
	else
	{
		if (pass)
		{
			/* the decision is an event even though the stage stays */
			pl_tr_job_note(id, pt, stage);
			pl_sched_continue(id, pt);
		}
		else
		{
			pl_tr_job(id, pt, stage, PL_FAILED,
								  psprintf("confirm denied by %s: %s", outer_user(), comment));
			if (stage == PL_FAILED)
				pl_tr_job_note(id, pt, stage);
			pl_sched_after(id, pt, stage_index, PL_FAILED, false);
		}
	}
	result = pl_job_task_datum(id, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(pl_audit_job_task);
Datum
pl_audit_job_task(PG_FUNCTION_ARGS)
{
	return decide(fcinfo, true);
}

PG_FUNCTION_INFO_V1(pl_confirm_job_task);
Datum
pl_confirm_job_task(PG_FUNCTION_ARGS)
{
	return decide(fcinfo, false);
}


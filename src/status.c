/*
 * status.c: update_job_task_status() and heartbeat(), the runners' reports.
 *
 * Layer: api
 *
 * update_job_task_status, in one transaction (SPEC §4), through
 * pl_status_apply(), which update_job_task_statuses (statuses.c) shares:
 *   1. A(P) -- shared when the new stage is complete (the report may finish
 *      the stage), exclusive when it is "canceled" or forced (it rewrites the
 *      run), none otherwise -- then the job task row, FOR UPDATE.
 *   2. token check (SHA-256 digests, constant time; force does not bypass it);
 *      a refusal bumps pipeline.rejected_token_seq, which survives rollback.
 *   3. a complete task changes only with force_update_status.
 *   4. one UPDATE applies stage, message, detail, extension and runtime envs;
 *      runtime envs named [A-Z_]... are merged into the run too.
 *   5. if the stage changed: event + NOTIFY (transition.c does 1.-5. for the
 *      task row in one statement).
 *   6. advance (schedule.c) when changed or forced.
 * Every refusal is raised before the first write.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "defcheck.h"
#include "jobrow.h"
#include "lock.h"
#include "schedule.h"
#include "secrets.h"
#include "status.h"
#include "token.h"
#include "transition.h"
#include "util.h"

/*
 * Validate runtime envs: an object whose values are strings, named like
 * params, none of them on the deny-list (secrets.c).  Returns the part to
 * merge into the run (names starting with an upper-case letter or '_') as
 * JSON text, or NULL if there is none.  A problem is returned in *problem,
 * and a denied name also in *denied (nothing is raised here, so the caller
 * can first check that the caller holds the task).
 */
static char *
check_runtime_envs(Jsonb *envs, char **problem, char **denied)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	StringInfoData run;
	bool		first = true;

	*problem = NULL;
	*denied = NULL;
	if (envs == NULL)
		return NULL;
	if (!pl_jb_is_object(envs))
	{
		*problem = pstrdup("runtime_envs must be a JSON object");
		return NULL;
	}
	initStringInfo(&run);
	appendStringInfoChar(&run, '{');
	it = JsonbIteratorInit(&envs->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvString)
		{
			*problem = psprintf("runtime_envs.%s must be a string", name);
			return NULL;
		}
		if (!pl_valid_param_name(name))
		{
			*problem = psprintf("runtime_envs: \"%s\" is not a valid name", name);
			return NULL;
		}
		if (!pl_runtime_env_name_allowed(name))
		{
			*problem = psprintf("runtime env \"%s\" may not be set", name);
			*denied = name;
			return NULL;
		}
		if ((name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_')
			pl_json_kv_str(&run, &first, name, pnstrdup(v.val.string.val, v.val.string.len));
	}
	appendStringInfoChar(&run, '}');
	return first ? NULL : run.data;
}

/*
 * Why would this report be refused?  The cold path, run only when the fused
 * statement below changed nothing, or when an argument is bad (a caller
 * must hold the task before it learns what is wrong with its arguments).
 * Raises P0002, 28000 (counted) or 55000; returns if none applies.
 */
static void
diagnose_refusal(int64 id, const char *token, bool force_update)
{
	PlStage		stage = pl_require_token(id, token, true);

	if (pl_stage_complete(stage) && !force_update)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is already %s", id, pl_stage_names[stage]),
				 errhint("Pass force_update_status => true to change a finished task.")));
}

/*
 * One report, as update_job_task_status applies it (SPEC §4): the one code
 * path of update_job_task_status and update_job_task_statuses (statuses.c).
 * The caller is SPI-connected (outer: its context before) and has checked
 * READ COMMITTED.  Returns the row, redacted, in outer; raises every refusal.
 *
 * Hot path: one statement locks the row, checks the token (constant-time,
 * pipeline.digest_ok) and the state, applies the report, writes the event and
 * returns what the caller and the advancing need.  If it changes nothing,
 * diagnose_refusal() says why.  A report that may advance the run first takes
 * A(P) on the run named in its token (lock.c, schedule.c); a forged token names
 * some run, takes a harmless shared lock on it and is then refused.
 */
Datum
pl_status_apply(const PlStatusCall *c, MemoryContext outer)
{
	static PlStmt merge_run = {
		"UPDATE pipeline.pipeline_task SET runtime_envs = runtime_envs || $2::jsonb WHERE id = $1",
		2, {INT8OID, TEXTOID}, PL_GENERIC
	};
	int64		id = c->id;
	PlStage		req_stage = c->stage;
	const char *token = c->token;
	bool		force_update = c->force_update;
	bool		force_trigger = c->force_trigger;
	char	   *run_envs = NULL;
	char	   *problem;
	char	   *denied;
	int64		pt;
	int64		pt_hint;
	Datum		result;
	PlReport	rep;
	PlReported	done;

	/* 1. A(P) when this report may advance the run, before any row lock */
	pt_hint = pl_token_run(token);
	if (pt_hint != 0 && (pl_stage_complete(req_stage) || force_update || force_trigger))
	{
		if (req_stage == PL_CANCELED || force_update)
			pl_lock_run_exclusive(pt_hint);
		else
			pl_lock_run_shared(pt_hint);
	}

	/* bad arguments are reported only to the holder of the task */
	run_envs = check_runtime_envs(c->runtime_envs, &problem, &denied);
	if (problem == NULL && c->extension && !pl_jb_is_object(c->extension))
		problem = pstrdup("extension must be a JSON object");
	if (problem)
	{
		diagnose_refusal(id, token, force_update);
		if (denied)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("job task " INT64_FORMAT ": %s", id, problem),
					 errdetail("%s", pl_runtime_env_rule),
					 errhint("Runtime envs reach later jobs' environments; pass such settings as params of the job instead.")));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job task " INT64_FORMAT ": %s", id, problem)));
	}

	/* 2.-5. lock, token, state, apply, event: one statement (transition.c) */
	rep.id = id;
	rep.stage = req_stage;
	rep.message = c->message;
	rep.detail = c->detail;
	rep.extension = c->extension;
	rep.runtime_envs = c->runtime_envs;
	rep.token = token;
	rep.token_text = token ? c->token_text : (Datum) 0;
	rep.force_update = force_update;
	if (!pl_tr_report(&rep, &done, outer))
	{
		diagnose_refusal(id, token, force_update);
		elog(ERROR, "job task " INT64_FORMAT ": update changed nothing", id);
	}
	result = done.row;
	pt = done.pipeline_task_id;

	if (run_envs && pt != 0)
	{
		Datum		mv[2];

		mv[0] = Int64GetDatum(pt);
		mv[1] = CStringGetTextDatum(run_envs);
		pl_exec(&merge_run, mv, NULL, 0);
	}

	/* 6. advance, unless an automatic retry takes the task back */
	if (done.will_retry && done.old_stage != done.new_stage && pl_tr_retry_if_left(id, pt))
		result = pl_job_task_datum(id, outer);	/* scheduling again */
	else if (pt != 0 && (done.old_stage != done.new_stage || force_trigger) &&
			 (pl_stage_complete(done.new_stage) || force_trigger))
		pl_sched_after_known(id, pt, done.stage_index, done.new_stage, force_trigger,
							 done.ignore_failed, done.gate_waiting, done.message, done.dag);

	/*
	 * 7. the row, as read back by the update.  Advancing after a completion
	 * touches other tasks and the run only; a forced trigger on an open task
	 * may have started the task itself, so read it again then.
	 */
	if (force_trigger && !pl_stage_complete(done.new_stage) && pt != 0)
		result = pl_job_task_datum(id, outer);
	return result;
}

/*
 * update_job_task_status(id, stage, update_token, message, detail,
 *                        runtime_envs, extension, force_update_status,
 *                        force_trigger_pipeline) RETURNS pipeline.job_task
 */
PG_FUNCTION_INFO_V1(pl_update_job_task_status);
Datum
pl_update_job_task_status(PG_FUNCTION_ARGS)
{
	PlStatusCall c;
	MemoryContext outer;
	Datum		result;

	memset(&c, 0, sizeof(c));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("update_job_task_status: id must not be null")));
	c.id = PG_GETARG_INT64(0);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job task " INT64_FORMAT ": stage must not be null", c.id)));
	c.stage = pl_stage_from_datum(PG_GETARG_DATUM(1));
	if (!PG_ARGISNULL(2))
	{
		c.token = text_to_cstring(PG_GETARG_TEXT_PP(2));
		c.token_text = PG_GETARG_DATUM(2);
	}
	c.message = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	if (!PG_ARGISNULL(4))
		c.detail = PG_GETARG_JSONB_P(4);
	if (!PG_ARGISNULL(5))
		c.runtime_envs = PG_GETARG_JSONB_P(5);
	if (!PG_ARGISNULL(6))
		c.extension = PG_GETARG_JSONB_P(6);
	c.force_update = PG_ARGISNULL(7) ? false : PG_GETARG_BOOL(7);
	c.force_trigger = PG_ARGISNULL(8) ? false : PG_GETARG_BOOL(8);
	pl_require_read_committed("update_job_task_status");

	outer = pl_spi_connect();
	result = pl_status_apply(&c, outer);
	pl_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * heartbeat(id bigint, update_token text) RETURNS void
 * Locks: the job task row (FOR NO KEY UPDATE via UPDATE).
 */
PG_FUNCTION_INFO_V1(pl_heartbeat);
Datum
pl_heartbeat(PG_FUNCTION_ARGS)
{
	static PlStmt upd = {
		"UPDATE pipeline.job_task SET heartbeat_at = now() WHERE id = $1", 1, {INT8OID}, PL_GENERIC
	};
	int64		id;
	char	   *token;
	Datum		v[1];
	PlStage		stage;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("heartbeat: id must not be null")));
	id = PG_GETARG_INT64(0);
	token = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	pl_spi_connect();
	stage = pl_require_token(id, token, true);
	if (pl_stage_complete(stage))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job task " INT64_FORMAT " is already %s", id, pl_stage_names[stage]),
				 errdetail("A finished task takes no heartbeats.")));
	v[0] = Int64GetDatum(id);
	pl_exec(&upd, v, NULL, 0);
	pl_spi_finish();
	PG_RETURN_VOID();
}

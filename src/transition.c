/*
 * transition.c: the one owner of state changes.
 *
 * Layer: transitions (called by the scheduling layer and the API files; calls
 * only storage helpers: util.c, announce.c, jobrow.c, secrets.h, lock.c)
 *
 * Every change of a job task's or a run's stage happens in a statement of
 * this file, and each such statement
 *   - applies the timestamp rules (PL_TR_START_AT_SQL / PL_TR_END_AT_SQL in
 *     transition.h; a new attempt clears both: TR_NEW_ATTEMPT);
 *   - writes the event row in the same statement, through the one INSERT
 *     into pipeline.event_store of the C code (TR_INSERT_EVENT, fed by a CTE "x"
 *     that has the same columns for job task and run events);
 *   - returns what announcing needs, and the function then announces the
 *     event (announce.c: NOTIFY, hook deliveries);
 *   - keeps the runners' queue (pipeline.job_queue) and the concurrency
 *     slots (pipeline.concurrency_slot) in step with the stage, in the same
 *     transaction (queue_and_slots(), and the claiming statement; SPEC §14).
 * The retries-left test is written once too (TR_RETRIES_LEFT), for the
 * runner's report (which decides whether a failure retries) and for the
 * automatic retry itself.
 *
 * Locks: none of these functions takes A(P) or R(P); each says which row lock
 * its caller must hold (lock.c has the order).  The UPDATEs lock the rows
 * they change, as any UPDATE does.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"

#include "announce.h"
#include "jobrow.h"
#include "lock.h"
#include "secrets.h"
#include "token.h"
#include "transition.h"
#include "util.h"

/*
 * SQL of a job task event's stored payload, for a row expression T: only the
 * fields that may change during the task's life (the snapshot "as of the
 * event"), nulls left out, attempt only when not 1, gate_result only when not
 * empty.  The view pipeline.event adds the fields fixed at the task's
 * creation (names, indexes, job_name, dry_run, the run's name) and the
 * stages, which are columns (pipeline--0.4.sql).  Never params (they may hold
 * secrets) nor the token digest.
 */
#define TR_TASK_PAYLOAD(T) \
	"(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(" \
	" 'message', " T ".message, 'attempt', NULLIF(" T ".attempt, 1), 'runner', " T ".runner," \
	" 'gate', " T ".gate, 'start_at', " T ".start_at, 'end_at', " T ".end_at))" \
	" || CASE WHEN " T ".gate_result = '{}' THEN '{}'::jsonb" \
	"    ELSE pg_catalog.jsonb_build_object('gate_result', " T ".gate_result) END)"

/* A run event's payload: params masked by name. */
#define TR_RUN_PAYLOAD(T, OLD) \
	"pg_catalog.jsonb_build_object(" \
	"  'id', " T ".id, 'pipeline_name', " T ".pipeline_name," \
	"  'pipeline_version', " T ".pipeline_version, 'stage', " T ".stage," \
	"  'old_stage', " OLD ", 'message', " T ".message, 'run_by', " T ".run_by," \
	"  'labels', " T ".labels, 'dry_run', " T ".dry_run," \
	"  'params', pipeline.mask_params(" T ".params, " T ".sensitive)," \
	"  'start_at', " T ".start_at, 'end_at', " T ".end_at)"

/* The row's hooks if it has any, else NULL (no deliveries to write) */
#define TR_HOOKS_IF_ANY(T) \
	"CASE WHEN pg_catalog.jsonb_array_length(" T ".hooks->'webhooks')" \
	"        + pg_catalog.jsonb_array_length(" T ".hooks->'im_robot_notify')" \
	"        + pg_catalog.jsonb_array_length(" T ".hooks->'mention_users') > 0" \
	"     THEN " T ".hooks END"

/*
 * The event rows "x" of a statement whose CTE "u" returns the changed row as
 * r and the stage before as old_stage; COND says when there is an event.
 */
#define TR_JOB_EVENT_ROWS(COND) \
	" x AS (SELECT 'job_task'::text AS kind, (u.r).id AS object_id," \
	"  (u.r).pipeline_task_id AS pipeline_task_id, u.old_stage, (u.r).stage AS new_stage," \
	"  " TR_TASK_PAYLOAD("(u.r)") " AS payload," \
	"  " TR_HOOKS_IF_ANY("(u.r)") " AS hooks, (u.r).id AS job_task_id" \
	"  FROM u WHERE " COND "),"
#define TR_RUN_EVENT_ROWS(COND) \
	" x AS (SELECT 'pipeline_task'::text AS kind, (u.r).id AS object_id," \
	"  (u.r).id AS pipeline_task_id, u.old_stage, (u.r).stage AS new_stage," \
	"  " TR_RUN_PAYLOAD("(u.r)", "u.old_stage") " AS payload," \
	"  " TR_HOOKS_IF_ANY("(u.r)") " AS hooks, NULL::bigint AS job_task_id" \
	"  FROM u WHERE " COND "),"

/* The one insert into pipeline.event_store of the C code (read through the view pipeline.event). */
#define TR_INSERT_EVENT \
	" e AS (INSERT INTO pipeline.event_store (kind, object_id, pipeline_task_id, old_stage, new_stage, payload)" \
	" SELECT x.kind, x.object_id, x.pipeline_task_id, x.old_stage, x.new_stage, x.payload FROM x" \
	" RETURNING id)"

/* What announcing needs: five columns, read by ann_read() */
#define TR_ANNOUNCE_COLS \
	" (SELECT e.id FROM e), (SELECT x.hooks FROM x), (SELECT x.pipeline_task_id FROM x)," \
	" (SELECT x.new_stage FROM x), (SELECT x.job_task_id FROM x)"

/*
 * The claim's part of the runners' queue and the concurrency slots (SPEC
 * §14), as CTEs of the claiming statement whose CTE "u" is the claimed row:
 * its queue row goes, and (keyed claims only) its slot row comes.
 */
#define TR_CLAIM_LEAVES_QUEUE \
	" qd AS (DELETE FROM pipeline.job_queue q USING u WHERE q.job_task_id = (u.r).id),"
#define TR_CLAIM_TAKES_SLOT \
	" si AS (INSERT INTO pipeline.concurrency_slot (job_task_id, key)" \
	"  SELECT (u.r).id, (u.r).concurrency_key FROM u ON CONFLICT (job_task_id) DO NOTHING),"

/* A new attempt: the last attempt's traces are in its events. */
#define TR_NEW_ATTEMPT \
	" message = NULL, detail = NULL, runner = NULL, token_digest = NULL," \
	" start_at = NULL, end_at = NULL"

/* May a failed task T retry automatically: attempts left, and its run active */
#define TR_RETRIES_LEFT(T) \
	"(" T ".attempt <= " T ".retries AND " T ".pipeline_task_id IS NOT NULL" \
	" AND (SELECT p.stage FROM pipeline.pipeline_task p WHERE p.id = " T ".pipeline_task_id)" \
	"     = 'active')"

typedef struct TrAnn
{
	bool		any;
	int64		event_id;
	Jsonb	   *hooks;
	int64		pipeline_task_id;
	int64		job_task_id;
	PlStage		stage;
} TrAnn;

/* Read the TR_ANNOUNCE_COLS starting at column col of row 0. */
static void
ann_read(int col, TrAnn *a)
{
	bool		isnull;

	memset(a, 0, sizeof(*a));
	if (SPI_processed < 1)
		return;
	(void) pl_col(0, col, &isnull);
	if (isnull)
		return;
	a->any = true;
	a->event_id = pl_col_int64(0, col);
	a->hooks = pl_col_jsonb(0, col + 1);
	(void) pl_col(0, col + 2, &isnull);
	a->pipeline_task_id = isnull ? 0 : pl_col_int64(0, col + 2);
	a->stage = pl_col_stage(0, col + 3);
	(void) pl_col(0, col + 4, &isnull);
	a->job_task_id = isnull ? 0 : pl_col_int64(0, col + 4);
}

/* Announce what ann_read() found (this replaces SPI_tuptable). */
static void
ann_do(TrAnn *a)
{
	if (a->any)
		pl_announce_event(a->event_id, a->pipeline_task_id, a->job_task_id,
						  a->hooks, a->stage);
}

/* Run a statement whose result is TR_ANNOUNCE_COLS only, and announce. */
static void
exec_and_announce(PlStmt *stmt, Datum *v, const bool *n)
{
	TrAnn		a;

	pl_exec(stmt, v, n, 1);
	ann_read(1, &a);
	ann_do(&a);
}

/* Does a task in this stage hold a slot of its concurrency key (SPEC §14)? */
static bool
holds_slot(PlStage s)
{
	return s == PL_CREATING || s == PL_ACTIVE || s == PL_CANCELING;
}

/*
 * The runners' queue (pipeline.job_queue) and the concurrency slots
 * (pipeline.concurrency_slot) follow a job task's change from old_stage to
 * new_stage, in the same transaction: a task that becomes scheduling enters
 * the queue (with its priority, labels and key), one that stops being
 * scheduling leaves it; a task with a key (keyed) that stops holding a slot
 * gives it back, and one that starts holding one without a claim (a forced
 * report) takes it, the limit not checked.  Each statement runs only when
 * needed, so a change that touches neither costs nothing.  Caller holds the
 * task's row lock T: both tables' rows of a task are written only by the
 * holder of its T, so these statements never wait.  Replaces SPI_tuptable.
 */
static void
queue_and_slots(int64 id, PlStage old_stage, PlStage new_stage, bool keyed)
{
	static PlStmt enter = {
		"INSERT INTO pipeline.job_queue (job_task_id, priority, labels, concurrency_key,"
		"  concurrency_limit)"
		" SELECT t.id, t.priority, t.labels, t.concurrency_key, t.concurrency_limit"
		" FROM pipeline.job_task t WHERE t.id = $1 ON CONFLICT (job_task_id) DO NOTHING",
		1, {INT8OID}, PL_GENERIC
	};
	static PlStmt leave = {
		"DELETE FROM pipeline.job_queue WHERE job_task_id = $1", 1, {INT8OID}, PL_GENERIC
	};
	static PlStmt take = {
		"INSERT INTO pipeline.concurrency_slot (job_task_id, key)"
		" SELECT t.id, t.concurrency_key FROM pipeline.job_task t"
		" WHERE t.id = $1 AND t.concurrency_key IS NOT NULL ON CONFLICT (job_task_id) DO NOTHING",
		1, {INT8OID}, PL_GENERIC
	};
	static PlStmt give = {
		"DELETE FROM pipeline.concurrency_slot WHERE job_task_id = $1", 1, {INT8OID}, PL_GENERIC
	};
	Datum		v[1];

	if (old_stage == new_stage)
		return;
	v[0] = Int64GetDatum(id);
	if (new_stage == PL_SCHEDULING)
		pl_exec(&enter, v, NULL, 0);
	else if (old_stage == PL_SCHEDULING)
		pl_exec(&leave, v, NULL, 0);
	if (keyed && holds_slot(old_stage) && !holds_slot(new_stage))
		pl_exec(&give, v, NULL, 0);
	else if (keyed && !holds_slot(old_stage) && holds_slot(new_stage))
		pl_exec(&take, v, NULL, 0);
}

/*
 * Change a job task's stage.  Caller holds the task's row lock (or is about
 * to change a row nobody else may lock, see lock.c).  The gate clears when
 * the task completes.
 */
void
pl_tr_job(int64 id, int64 pipeline_task_id, PlStage old_stage,
		  PlStage new_stage, const char *message)
{
	static PlStmt upd = {
		"WITH u AS ("
		" UPDATE pipeline.job_task t SET stage = $2::pipeline.task_stage,"
		"  message = COALESCE($3, t.message), updated_at = now(),"
		"  gate = CASE WHEN $2::pipeline.task_stage >= 'canceled' THEN NULL ELSE t.gate END,"
		"  start_at = " PL_TR_START_AT_SQL("$2::pipeline.task_stage", "t.start_at") ","
		"  end_at = " PL_TR_END_AT_SQL("$2::pipeline.task_stage", "t.end_at")
		" WHERE t.id = $1 RETURNING t AS r, $4::pipeline.task_stage AS old_stage),"
		TR_JOB_EVENT_ROWS("u.old_stage <> (u.r).stage")
		TR_INSERT_EVENT
		" SELECT" TR_ANNOUNCE_COLS ", (SELECT (u.r).concurrency_key IS NOT NULL FROM u)",
		4, {INT8OID, TEXTOID, TEXTOID, TEXTOID}, PL_GENERIC
	};
	Datum		v[4];
	bool		n[4] = {false, false, message == NULL, false};
	bool		keyed;
	bool		isnull;
	Datum		d;
	TrAnn		a;

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(pl_stage_names[new_stage]);
	v[2] = message ? CStringGetTextDatum(message) : (Datum) 0;
	v[3] = CStringGetTextDatum(pl_stage_names[old_stage]);
	pl_exec(&upd, v, n, 1);
	ann_read(1, &a);
	d = pl_col(0, 6, &isnull);
	keyed = !isnull && DatumGetBool(d);
	queue_and_slots(id, old_stage, new_stage, keyed);
	ann_do(&a);
}

/* An event for a task whose stage stays.  Caller holds the task's row lock. */
void
pl_tr_job_note(int64 id, int64 pipeline_task_id, PlStage stage)
{
	static PlStmt q = {
		"WITH u AS (SELECT t AS r, t.stage AS old_stage FROM pipeline.job_task t WHERE t.id = $1),"
		TR_JOB_EVENT_ROWS("true")
		TR_INSERT_EVENT
		" SELECT" TR_ANNOUNCE_COLS,
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	exec_and_announce(&q, v, NULL);
}

/* Open the audit gate of a pending task.  Caller holds R(P) (starting the next set). */
void
pl_tr_open_audit_gate(int64 id, int64 pipeline_task_id)
{
	static PlStmt q = {
		"WITH u AS ("
		" UPDATE pipeline.job_task t SET gate = 'audit', updated_at = now() WHERE t.id = $1"
		" RETURNING t AS r, t.stage AS old_stage),"
		TR_JOB_EVENT_ROWS("true")	/* not a stage change, but a gate waits */
		TR_INSERT_EVENT
		" SELECT" TR_ANNOUNCE_COLS,
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	exec_and_announce(&q, v, NULL);
}

/* Clear a moot waiting gate (no event).  Caller holds the task's row lock. */
void
pl_tr_clear_gate(int64 id)
{
	static PlStmt q = {
		"UPDATE pipeline.job_task SET gate = NULL, updated_at = now() WHERE id = $1",
		1, {INT8OID}
	};
	Datum		v[1];

	v[0] = Int64GetDatum(id);
	pl_exec(&q, v, NULL, 0);
}

/*
 * A failed task that has retries left goes back to scheduling after a
 * backoff of pipeline.retry_backoff * 2^(attempt-1) seconds (capped at one
 * hour), attempt + 1, token revoked -- while its run is active: a canceled
 * or failed run starts nothing new.  Returns true if it did.  Caller holds
 * the row lock and has already written the failed state and its event.
 */
bool
pl_tr_retry_if_left(int64 id, int64 pipeline_task_id)
{
	static PlStmt q = {
		"WITH u AS ("
		" UPDATE pipeline.job_task t SET stage = 'scheduling', attempt = t.attempt + 1,"
		TR_NEW_ATTEMPT ","
		"  retry_at = now() + pg_catalog.make_interval(secs => LEAST(3600,"
		"     $2 * pg_catalog.power(2, t.attempt - 1))),"
		"  updated_at = now()"
		" WHERE t.id = $1 AND t.stage = 'failed' AND " TR_RETRIES_LEFT("t")
		" RETURNING t AS r, 'failed'::pipeline.task_stage AS old_stage),"
		TR_JOB_EVENT_ROWS("true")
		TR_INSERT_EVENT
		" SELECT" TR_ANNOUNCE_COLS,
		2, {INT8OID, INT4OID}
	};
	Datum		v[2];
	TrAnn		a;

	v[0] = Int64GetDatum(id);
	v[1] = Int32GetDatum(pl_retry_backoff);
	pl_exec(&q, v, NULL, 1);
	ann_read(1, &a);
	if (!a.any)
		return false;
	queue_and_slots(id, PL_FAILED, PL_SCHEDULING, false);	/* a failed task holds no slot */
	ann_do(&a);
	return true;
}

/*
 * retry_job_task(): the task goes back to pending with its gates re-armed, a
 * new attempt if it had failed or was canceled.  Caller holds A(P)
 * exclusively and the task's row lock.
 */
void
pl_tr_reopen(int64 id, int64 pipeline_task_id, PlStage old_stage)
{
	static PlStmt q = {
		"WITH u AS ("
		" UPDATE pipeline.job_task t SET stage = 'pending',"
		"  attempt = t.attempt + CASE WHEN t.stage IN ('failed', 'canceled') THEN 1 ELSE 0 END,"
		TR_NEW_ATTEMPT ", gate = NULL, gate_result = '{}', claimed_at = NULL,"
		"  heartbeat_at = NULL, retry_at = NULL, updated_at = now()"
		" WHERE t.id = $1 RETURNING t AS r, $2::pipeline.task_stage AS old_stage),"
		TR_JOB_EVENT_ROWS("true")
		TR_INSERT_EVENT
		" SELECT" TR_ANNOUNCE_COLS,
		2, {INT8OID, TEXTOID}
	};
	Datum		v[2];
	TrAnn		a;

	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(pl_stage_names[old_stage]);
	pl_exec(&q, v, NULL, 1);
	ann_read(1, &a);
	/* from a finished stage (it holds no slot) back to pending */
	queue_and_slots(id, old_stage, PL_PENDING, false);
	ann_do(&a);
}

/*
 * The runner's report, fused: lock (LOCK is the row lock clause), check the
 * token and the state, apply, write the event, read back.
 * $1 id, $2 stage, $3 message, $4 detail, $5 extension, $6 runtime envs,
 * $7 digest of the presented token, $8 force_update_status, $9 the token
 * (message, detail and extension are stored with the task's secrets masked,
 * secrets.c; the secrets are looked up only for a task with sensitive params
 * that reports one of them).  A task that reports "canceling" stays
 * canceling until it reports a complete stage (unless forced); a completion
 * of a task with an unpassed confirm gate opens the gate (an event, even if
 * the stage stays); a failure with retries left is marked will_retry.
 */
#define TR_REPORT_SQL(LOCK, GUARD) \
	"WITH o AS (" \
	" SELECT t.id, t.stage AS old_stage, t.token_digest, t.xmin AS row_xmin," \
	"  CASE WHEN t.stage = 'canceling' AND $2::pipeline.task_stage < 'canceled' AND NOT $8" \
	"       THEN 'canceling'::pipeline.task_stage ELSE $2::pipeline.task_stage END AS ns," \
	"  COALESCE((t.confirm->>'enable')::boolean, false) AND NOT (t.gate_result ? 'confirm')" \
	"    AS confirm_pending," \
	"  " TR_RETRIES_LEFT("t") " AS retries_left," \
	"  CASE WHEN ($3 IS NOT NULL OR $4 IS NOT NULL OR $5 IS NOT NULL)" \
	"        AND pg_catalog.cardinality(t.sensitive) > 0" \
	"       THEN " PL_SECRETS_SQL("t") " END AS secrets, t.sensitive" \
	" FROM pipeline.job_task t WHERE t.id = $1 " LOCK ")," \
	" k AS (" \
	" SELECT o.id, o.old_stage, o.ns, o.secrets, o.sensitive, o.row_xmin," \
	"  (o.ns = 'failed' AND o.retries_left AND NOT $8) AS will_retry," \
	"  (o.confirm_pending AND o.ns > 'canceled'" \
	"   AND NOT (o.ns = 'failed' AND o.retries_left AND NOT $8)) AS gate_now" \
	" FROM o" \
	" WHERE pipeline.digest_ok(o.token_digest, $7) AND (o.old_stage < 'canceled' OR $8))," \
	" u AS (" \
	" UPDATE pipeline.job_task t SET" \
	"  stage = k.ns," \
	"  message = CASE WHEN $3 IS NULL THEN t.message" \
	"            ELSE pipeline.mask_secrets($3, k.secrets, k.sensitive, $9) END," \
	"  detail = CASE WHEN $4 IS NULL THEN t.detail" \
	"           ELSE pipeline.mask_secrets($4, k.secrets, k.sensitive, $9) END," \
	"  extension = CASE WHEN $5 IS NULL THEN t.extension" \
	"              ELSE t.extension || pipeline.mask_secrets($5, k.secrets, k.sensitive, $9) END," \
	"  runtime_envs = t.runtime_envs || COALESCE($6, '{}')," \
	"  start_at = " PL_TR_START_AT_SQL("k.ns", "t.start_at") "," \
	"  end_at = " PL_TR_END_AT_SQL("k.ns", "t.end_at") "," \
	"  gate = CASE WHEN k.gate_now THEN 'confirm' WHEN k.ns < 'canceled' THEN t.gate ELSE NULL END," \
	"  heartbeat_at = now(), updated_at = now()," \
	"  token_digest = CASE WHEN k.ns <= 'scheduling' THEN NULL ELSE t.token_digest END" \
	" FROM k WHERE t.id = k.id" GUARD \
	" RETURNING t AS r, k.old_stage, k.will_retry, k.gate_now)," \
	TR_JOB_EVENT_ROWS("u.old_stage <> (u.r).stage OR u.gate_now") \
	TR_INSERT_EVENT \
	" SELECT u.r, pipeline.mask_params((u.r).params, (u.r).sensitive)," \
	"  pipeline.mask_params((u.r).runtime_envs, (u.r).sensitive)," \
	TR_ANNOUNCE_COLS "," \
	"  (u.r).ignore_failed, (u.r).gate IS NOT NULL, (u.r).message," \
	"  u.old_stage, (u.r).stage, u.will_retry, (u.r).pipeline_task_id, (u.r).stage_index," \
	"  (u.r).needs_left IS NOT NULL, (u.r).concurrency_key IS NOT NULL" \
	" FROM u"

/*
 * A runner's report.  The statement comes in two lock strengths: a report
 * that completes the task (or is forced) locks it FOR UPDATE, so it waits for
 * siblings' witness locks (schedule.c); any other report locks FOR NO KEY
 * UPDATE (the UPDATE's own lock: see below) and never waits for them.  The
 * caller holds A(P) as status.c says.
 */
bool
pl_tr_report(const PlReport *in, PlReported *out, MemoryContext outer)
{
	static PlStmt upd_completing = {
		TR_REPORT_SQL("FOR UPDATE", ""),
		9, {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, BYTEAOID, BOOLOID, TEXTOID}, PL_GENERIC
	};
	static PlStmt upd_open = {
		TR_REPORT_SQL("FOR NO KEY UPDATE", ""),
		9, {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, BYTEAOID, BOOLOID, TEXTOID}, PL_GENERIC
	};
	static PlStmt upd_open_unlocked = {
		TR_REPORT_SQL("", " AND t.xmin = k.row_xmin"),
		9, {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, BYTEAOID, BOOLOID, TEXTOID}, PL_GENERIC
	};
	bool		completing = pl_stage_complete(in->stage) || in->force_update;
	Datum		v[9];
	bool		n[9];
	bool		isnull;
	TrAnn		a;

	memset(n, 0, sizeof(n));
	v[0] = Int64GetDatum(in->id);
	v[1] = CStringGetTextDatum(pl_stage_names[in->stage]);
	v[2] = in->message;
	n[2] = (in->message == (Datum) 0);
	v[3] = in->detail ? JsonbPGetDatum(in->detail) : (Datum) 0;
	n[3] = (in->detail == NULL);
	v[4] = in->extension ? JsonbPGetDatum(in->extension) : (Datum) 0;
	n[4] = (in->extension == NULL);
	v[5] = in->runtime_envs ? JsonbPGetDatum(in->runtime_envs) : (Datum) 0;
	n[5] = (in->runtime_envs == NULL);
	if (in->token)
	{
		v[6] = PointerGetDatum(pl_token_digest(in->token));
		v[8] = in->token_text;
	}
	else
		n[6] = n[8] = true;
	v[7] = BoolGetDatum(in->force_update);
	if (completing)
		pl_exec(&upd_completing, v, n, 1);
	else
	{
		/*
		 * An open report first tries without the lock clause: the UPDATE
		 * applies only to the row version the checks read (same xmin); a row
		 * changed since (a concurrent report, a cancel) or a refusal changes
		 * nothing, and the locking statement decides.  The UPDATE takes the
		 * same row lock either way; this saves the lock's WAL record.
		 * Isolation spec open_report_vs_cancel.
		 */
		pl_exec(&upd_open_unlocked, v, n, 1);
		if (SPI_processed != 1)
			pl_exec(&upd_open, v, n, 1);
	}
	if (SPI_processed != 1)
		return false;

	/* the row the caller gets: digest removed, params masked */
	out->row = pl_jobrow_datum(0, outer);
	ann_read(4, &a);
	out->ignore_failed = pl_col_bool(0, 9);
	out->gate_waiting = pl_col_bool(0, 10);
	out->message = pl_col_text(0, 11);
	out->old_stage = pl_col_stage(0, 12);
	out->new_stage = pl_col_stage(0, 13);
	out->will_retry = pl_col_bool(0, 14);
	(void) pl_col(0, 15, &isnull);
	out->pipeline_task_id = isnull ? 0 : pl_col_int64(0, 15);
	out->stage_index = pl_col_int32(0, 16);
	out->dag = pl_col_bool(0, 17);
	queue_and_slots(in->id, out->old_stage, out->new_stage, pl_col_bool(0, 18));
	ann_do(&a);
	return true;
}

/*
 * The claiming statement; LIMIT_SQL (the keyed claim's limit check, in the
 * UPDATE's WHERE) and SLOT_CTE (its slot row) are empty for a task without a
 * key.
 */
#define TR_CLAIM_SQL(LIMIT_SQL, SLOT_CTE) \
	"WITH u AS (" \
	" UPDATE pipeline.job_task t SET stage = $5::pipeline.task_stage, runner = $2, token_digest = $3," \
	"  claimed_at = now(), heartbeat_at = now(), updated_at = now(), retry_at = NULL," \
	"  start_at = " PL_TR_START_AT_SQL("$5::pipeline.task_stage", "t.start_at") \
	" WHERE t.id = $1 AND t.stage = 'scheduling'" LIMIT_SQL \
	" RETURNING t AS r, 'scheduling'::pipeline.task_stage AS old_stage)," \
	TR_CLAIM_LEAVES_QUEUE \
	SLOT_CTE \
	" p AS (SELECT p.runtime_envs FROM pipeline.pipeline_task p, u" \
	"        WHERE p.id = (u.r).pipeline_task_id)," \
	TR_JOB_EVENT_ROWS("true") \
	TR_INSERT_EVENT \
	" SELECT (u.r).pipeline_task_id," \
	"  (SELECT s.job FROM pipeline.job_task_spec s WHERE s.job_task_id = (u.r).id)," \
	"  (u.r).params || COALESCE((SELECT p.runtime_envs FROM p), '{}') || pg_catalog.jsonb_build_object(" \
	"    'JOB_TASK_ID', (u.r).id::text, 'PIPELINE_TASK_ID', (u.r).pipeline_task_id::text," \
	"    'JOB_TASK_UPDATE_TOKEN', $4::text)," \
	"  (u.r).dry_run," TR_ANNOUNCE_COLS \
	" FROM u"

/*
 * Claim one task for a runner: scheduling -> creating (start: straight to
 * active, start_at set, SPEC §16), runner recorded, the new token's digest
 * stored, the queue row deleted, one event.  Returns the run,
 * the job, the params handed to the runner (the task's params fixed at run
 * start, overlaid with the run's runtime envs as they are now and the system
 * params) and dry_run, copied into outer.  Caller holds the task's row lock
 * (claim.c) and passes the task's concurrency key (NULL if none).
 *
 * A task with a key is claimed only if its slot can be taken: C(key) at once
 * (lock.c; else false: another claimer is taking a slot of that key right
 * now) and then, in the claiming statement, whose snapshot is taken after
 * C(key), fewer than its limit of concurrency_slot rows for the key (else
 * false: the key is full).  False changes nothing; the task stays scheduling.
 */
bool
pl_tr_claim(int64 id, const char *runner, const char *token, const char *key,
			bool start, PlClaimed *out, MemoryContext outer)
{
	static PlStmt take = {
		TR_CLAIM_SQL("", ""),
		5, {INT8OID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID}, PL_GENERIC
	};
	static PlStmt take_keyed = {
		TR_CLAIM_SQL("   AND (SELECT count(*) FROM pipeline.concurrency_slot s"
					 "        JOIN pipeline.job_task h ON h.id = s.job_task_id"
					 "        WHERE s.key = t.concurrency_key) < t.concurrency_limit",
					 TR_CLAIM_TAKES_SLOT),
		5, {INT8OID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID}, PL_GENERIC
	};
	Datum		v[5];
	bool		isnull;
	TrAnn		a;
	MemoryContext old;

	if (key != NULL && !pl_lock_key_try(key))
		return false;
	v[0] = Int64GetDatum(id);
	v[1] = CStringGetTextDatum(runner);
	v[2] = PointerGetDatum(pl_token_digest(token));
	v[3] = CStringGetTextDatum(token);
	v[4] = CStringGetTextDatum(start ? "active" : "creating");
	pl_exec(key ? &take_keyed : &take, v, NULL, 0);
	if (SPI_processed != 1)
	{
		if (key != NULL)
			return false;		/* the key is full */
		elog(ERROR, "job task " INT64_FORMAT " vanished while being claimed", id);
	}
	out->pipeline_task_id = pl_col_int64(0, 1);
	old = MemoryContextSwitchTo(outer);
	out->job = datumCopy(pl_col(0, 2, &isnull), false, -1);
	out->params = datumCopy(pl_col(0, 3, &isnull), false, -1);
	MemoryContextSwitchTo(old);
	out->dry_run = pl_col_bool(0, 4);
	ann_read(5, &a);
	ann_do(&a);
	return true;
}

/*
 * Change a run's stage (old_stage -1: the run was just created; the event
 * says "created" with old_stage null).  Caller holds R(P) or created the
 * run in this transaction.
 */
void
pl_tr_run(int64 pipeline_task_id, int old_stage, PlStage new_stage,
		  const char *message, bool clear_message,
		  char **pipeline_name, char **seqkey)
{
	static PlStmt upd = {
		"WITH u AS ("
		" UPDATE pipeline.pipeline_task p SET stage = $2::pipeline.task_stage,"
		"  message = CASE WHEN $5 THEN NULL ELSE COALESCE($3, p.message) END,"
		"  start_at = " PL_TR_START_AT_SQL("$2::pipeline.task_stage", "p.start_at") ","
		"  end_at = " PL_TR_END_AT_SQL("$2::pipeline.task_stage", "p.end_at")
		" WHERE p.id = $1 RETURNING p AS r, $4::pipeline.task_stage AS old_stage),"
		TR_RUN_EVENT_ROWS("u.old_stage IS DISTINCT FROM (u.r).stage")
		TR_INSERT_EVENT
		" SELECT (u.r).pipeline_name, (u.r).sequence_key," TR_ANNOUNCE_COLS
		" FROM u",
		5, {INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID}, PL_GENERIC
	};
	Datum		v[5];
	bool		n[5] = {false, false, message == NULL, old_stage < 0, false};
	TrAnn		a;

	v[0] = Int64GetDatum(pipeline_task_id);
	v[1] = CStringGetTextDatum(pl_stage_names[new_stage]);
	v[2] = message ? CStringGetTextDatum(message) : (Datum) 0;
	v[3] = old_stage < 0 ? (Datum) 0 : CStringGetTextDatum(pl_stage_names[old_stage]);
	v[4] = BoolGetDatum(clear_message);
	pl_exec(&upd, v, n, 1);
	if (SPI_processed != 1)
		elog(ERROR, "pipeline task " INT64_FORMAT " vanished while changing its stage",
			 pipeline_task_id);
	if (pipeline_name)
		*pipeline_name = pl_col_text(0, 1);
	if (seqkey)
		*seqkey = pl_col_text(0, 2);
	ann_read(3, &a);
	ann_do(&a);
}

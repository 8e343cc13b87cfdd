/*
 * event.c: the outbox.  One pipeline.event row per stage change, written in
 * the changing transaction, then NOTIFY pipeline_events with the event id.
 *
 * Gap-free catch-up (events_since).  Event ids come from an identity sequence
 * at INSERT time, so id order is not commit order: a reader could see event
 * 11 committed while event 10 is still in flight, remember 11 and never see
 * 10.  events_since() therefore
 *   1. reads the sequence's last value B: every id <= B was handed out to a
 *      transaction that already held RowExclusiveLock on pipeline.event (the
 *      INSERT takes the table lock before it evaluates the default);
 *   2. waits, with WaitForLockers(), until every transaction that holds a lock
 *      on pipeline.event conflicting with ShareLock has ended -- exactly the
 *      in-flight event writers.  This takes no lock and so never blocks new
 *      writers (the same wait CREATE INDEX CONCURRENTLY uses);
 *   3. reads, with a fresh snapshot, the events with after_id < id <= B.
 * Every id <= B now belongs to a committed event or to none (rolled back), so
 * a listener that remembers the last id it saw never misses one.  Writers pay
 * nothing extra.  The wait lasts as long as the longest transaction that has
 * written an event and not yet committed.
 *
 * Hook deliveries for an event are written here too, in the same transaction
 * (hooks.c decides which hooks match).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/async.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "pipeline.h"

/* NOTIFY pipeline_events, '<id>': a wake-up for listeners. */
static void
notify_event(int64 event_id)
{
	char		idbuf[32];

	switch ((PlNotifyMode) pl_notify)
	{
		case PL_NOTIFY_IMMEDIATE:
			snprintf(idbuf, sizeof(idbuf), INT64_FORMAT, event_id);
			Async_Notify("pipeline_events", idbuf);
			break;
		case PL_NOTIFY_COALESCED:
			pl_notifier_ensure(event_id);
			break;
		case PL_NOTIFY_OFF:
			break;
	}
}

/*
 * Insert the event row and notify.  payload is JSON text.  Returns the id.
 * Caller is connected to SPI.
 */
static int64
write_event(const char *kind, int64 object_id, int64 pipeline_task_id,
			int old_stage, PlStage new_stage, const char *payload)
{
	static PlStmt ins = {
		"INSERT INTO pipeline.event (kind, object_id, pipeline_task_id, old_stage, new_stage, payload)"
		" VALUES ($1, $2, $3, $4::pipeline.task_stage, $5::pipeline.task_stage, $6::jsonb)"
		" RETURNING id",
		6, {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		v[6];
	bool		n[6] = {false, false, false, false, false, false};
	v[0] = CStringGetTextDatum(kind);
	v[1] = Int64GetDatum(object_id);
	v[2] = Int64GetDatum(pipeline_task_id);
	n[2] = (pipeline_task_id == 0);
	if (old_stage < 0)
	{
		v[3] = (Datum) 0;
		n[3] = true;
	}
	else
		v[3] = CStringGetTextDatum(pl_stage_names[old_stage]);
	v[4] = CStringGetTextDatum(pl_stage_names[new_stage]);
	v[5] = CStringGetTextDatum(payload);
	pl_exec(&ins, v, n, 1);
	return pl_col_int64(0, 1);
}

/*
 * One hook_delivery row per hook that matches the new stage: webhooks,
 * IM robots (kind recognised by URL unless the hook names it) and mentions.
 * A hook with an empty "events" list matches every stage; names compare
 * case-insensitively (definition.c stores them lower-cased).  Hooks that do
 * not match stay in the definition for the next event.
 */
static void
write_deliveries(int64 event_id, int64 pipeline_task_id, int64 job_task_id,
				 Jsonb *hooks, PlStage new_stage)
{
	static PlStmt ins = {
		"INSERT INTO pipeline.hook_delivery (event_id, pipeline_task_id, job_task_id, kind, target)"
		" SELECT $1, $2, $3, k.kind,"
		"   CASE WHEN k.kind = 'im_robot' THEN h.value || pg_catalog.jsonb_build_object('robot',"
		"     COALESCE(h.value->>'robot', CASE"
		"       WHEN h.value->>'url' ~ '^https?://open\\.(feishu\\.cn|larksuite\\.com)/' THEN 'feishu'"
		"       WHEN h.value->>'url' ~ '^https?://oapi\\.dingtalk\\.com/' THEN 'dingtalk'"
		"       WHEN h.value->>'url' ~ '^https?://qyapi\\.weixin\\.qq\\.com/' THEN 'wecom'"
		"       ELSE 'generic' END))"
		"   ELSE h.value END"
		" FROM (VALUES (1, 'webhook', 'webhooks'), (2, 'im_robot', 'im_robot_notify'),"
		"              (3, 'mention', 'mention_users')) AS k(ord, kind, key),"
		"      LATERAL pg_catalog.jsonb_array_elements($4->k.key) WITH ORDINALITY AS h(value, n)"
		" WHERE pg_catalog.jsonb_array_length(COALESCE(h.value->'events', '[]')) = 0"
		"    OR (h.value->'events') ? $5"
		" ORDER BY k.ord, h.n",
		5, {INT8OID, INT8OID, INT8OID, JSONBOID, TEXTOID}
	};
	Datum		v[5];
	bool		n[5] = {false, pipeline_task_id == 0, job_task_id == 0, false, false};

	v[0] = Int64GetDatum(event_id);
	v[1] = Int64GetDatum(pipeline_task_id);
	v[2] = Int64GetDatum(job_task_id);
	v[3] = JsonbPGetDatum(hooks);
	v[4] = CStringGetTextDatum(pl_stage_names[new_stage]);
	pl_exec(&ins, v, n, 0);
}

/*
 * An event row was written (by write_event() or by a fused statement that
 * wrote it together with its change): wake the listeners and write the
 * deliveries of the hooks, if the object has any (hooks NULL: none).
 */
void
pl_announce_event(int64 event_id, int64 pipeline_task_id, int64 job_task_id,
				  Jsonb *hooks, PlStage new_stage)
{
	notify_event(event_id);
	if (hooks)
		write_deliveries(event_id, pipeline_task_id, job_task_id, hooks, new_stage);
}

/*
 * Event for a job task whose stage changed from old_stage to new_stage (the
 * row already holds the new stage).  The payload is a snapshot of the task
 * without params (which may hold secrets) and without the token digest.
 */
int64
pl_event_job_task(int64 job_task_id, int64 pipeline_task_id,
				  PlStage old_stage, PlStage new_stage)
{
	static PlStmt snap = {
		"SELECT " PL_TASK_PAYLOAD_SQL("t", "$2::text") "::text,"
		"  " PL_HOOKS_IF_ANY_SQL("t")
		" FROM pipeline.job_task t"
		" WHERE t.id = $1",
		2, {INT8OID, TEXTOID}
	};
	Datum		v[2];
	char	   *payload;
	Jsonb	   *hooks;
	int64		event_id;

	v[0] = Int64GetDatum(job_task_id);
	v[1] = CStringGetTextDatum(pl_stage_names[old_stage]);
	pl_exec(&snap, v, NULL, 1);
	if (SPI_processed != 1)
		elog(ERROR, "job task " INT64_FORMAT " vanished while writing its event", job_task_id);
	payload = pl_col_text(0, 1);
	hooks = pl_col_jsonb(0, 2);
	event_id = write_event("job_task", job_task_id, pipeline_task_id,
						   (int) old_stage, new_stage, payload);
	pl_announce_event(event_id, pipeline_task_id, job_task_id, hooks, new_stage);
	return event_id;
}

/* Event for a pipeline task; old_stage -1 means "created". */
int64
pl_event_pipeline_task(int64 pipeline_task_id, int old_stage, PlStage new_stage)
{
	static PlStmt snap = {
		"SELECT pg_catalog.jsonb_build_object("
		"  'id', p.id, 'pipeline_name', p.pipeline_name,"
		"  'pipeline_version', p.pipeline_version, 'stage', p.stage,"
		"  'old_stage', $2::text, 'message', p.message, 'run_by', p.run_by,"
		"  'labels', p.labels, 'dry_run', p.dry_run,"
		"  'params', pipeline.mask_params(p.params, p.sensitive),"
		"  'start_at', p.start_at, 'end_at', p.end_at)::text,"
		"  " PL_HOOKS_IF_ANY_SQL("p")
		" FROM pipeline.pipeline_task p WHERE p.id = $1",
		2, {INT8OID, TEXTOID}
	};
	Datum		v[2];
	bool		n[2] = {false, false};
	char	   *payload;
	Jsonb	   *hooks;
	int64		event_id;

	v[0] = Int64GetDatum(pipeline_task_id);
	if (old_stage < 0)
		n[1] = true;
	else
		v[1] = CStringGetTextDatum(pl_stage_names[old_stage]);
	pl_exec(&snap, v, n, 1);
	if (SPI_processed != 1)
		elog(ERROR, "pipeline task " INT64_FORMAT " vanished while writing its event",
			 pipeline_task_id);
	payload = pl_col_text(0, 1);
	hooks = pl_col_jsonb(0, 2);
	event_id = write_event("pipeline_task", pipeline_task_id, pipeline_task_id,
						   old_stage, new_stage, payload);
	pl_announce_event(event_id, pipeline_task_id, 0, hooks, new_stage);
	return event_id;
}

/*
 * events_since(after_id bigint, max int DEFAULT 1000) RETURNS SETOF event
 *
 * Locks: none taken; waits for in-flight event writers (see file header).
 */
PG_FUNCTION_INFO_V1(pl_events_since);
Datum
pl_events_since(PG_FUNCTION_ARGS)
{
	static PlStmt bound_q = {
		"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END"
		" FROM pipeline.event_id_seq", 0, {0}
	};
	static PlStmt read_q = {
		"SELECT * FROM pipeline.event WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3",
		3, {INT8OID, INT8OID, INT4OID}
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		after = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	int32		max = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
	int64		bound;
	Oid			relid;
	LOCKTAG		tag;
	Datum		v[3];
	MemoryContext outer;

	if (max < 1 || max > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events_since: max must be between 1 and 100000, not %d", max)));
	pl_require_read_committed("events_since");

	InitMaterializedSRF(fcinfo, 0);
	outer = pl_spi_connect();

	pl_exec(&bound_q, NULL, NULL, 1);
	bound = pl_col_int64(0, 1);

	if (bound > after)
	{
		relid = get_relname_relid("event", get_namespace_oid("pipeline", false));
		SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
		WaitForLockers(tag, ShareLock, false);

		v[0] = Int64GetDatum(after);
		v[1] = Int64GetDatum(bound);
		v[2] = Int32GetDatum(max);
		pl_exec(&read_q, v, NULL, max);

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(outer);

			tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
			MemoryContextSwitchTo(old);
		}
	}
	pl_spi_finish();
	return (Datum) 0;
}

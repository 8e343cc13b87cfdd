/*
 * announce.c: telling the world that an event row was written: NOTIFY
 * pipeline_events (immediately, or through the coalesced notifier), and one
 * pipeline.hook_delivery row per hook that matches the new stage, in the
 * same transaction as the event.  The event row itself is written only by
 * transition.c, which calls pl_announce_event() after every write.
 *
 * Layer: storage
 *
 * Locks: none beyond the inserts (RowExclusiveLock on hook_delivery).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "utils/builtins.h"

#include "announce.h"
#include "notifier.h"
#include "util.h"

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
		5, {INT8OID, INT8OID, INT8OID, JSONBOID, TEXTOID}, PL_GENERIC
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
 * An event row was written (by transition.c, together with its change): wake the listeners and write the
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


/*
 * event.c: events_since(), reading the outbox.  One pipeline.event_store row
 * per stage change is written in the changing transaction by transition.c
 * (the only writer), then announced (announce.c: NOTIFY pipeline_events with
 * the event id, hook deliveries).  Readers see the view pipeline.event: a job
 * task event's slim stored payload completed with the task's and run's
 * creation-time fields (pipeline--0.4.sql says which); events_since returns
 * its rows.
 *
 * Layer: api
 *
 * Gap-free catch-up (events_since).  Event ids come from an identity sequence
 * at INSERT time, so id order is not commit order: a reader could see event
 * 11 committed while event 10 is still in flight, remember 11 and never see
 * 10.  events_since() therefore
 *   1. reads the sequence's last value B: every id <= B was handed out to a
 *      transaction that already held RowExclusiveLock on pipeline.event_store (the
 *      INSERT takes the table lock before it evaluates the default);
 *   2. waits, with WaitForLockers(), until every transaction that holds a lock
 *      on pipeline.event_store conflicting with ShareLock has ended -- exactly the
 *      in-flight event writers.  This takes no lock and so never blocks new
 *      writers (the same wait CREATE INDEX CONCURRENTLY uses);
 *   3. reads, with a fresh snapshot, the events with after_id < id <= B.
 * Every id <= B now belongs to a committed event or to none (rolled back), so
 * a listener that remembers the last id it saw never misses one.  Writers pay
 * nothing extra.  The wait lasts as long as the longest transaction that has
 * written an event and not yet committed.
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

#include "util.h"

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
		relid = get_relname_relid("event_store", get_namespace_oid("pipeline", false));
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

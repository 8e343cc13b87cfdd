/*
 * notifier.c: coalesced NOTIFY (pipeline.notify = coalesced).
 *
 * Layer: storage
 *
 * Why: PostgreSQL serializes the commits of transactions that NOTIFY (a
 * global lock taken in PreCommit_Notify is held through the WAL flush), so a
 * NOTIFY in every status update caps the whole engine at one notifying commit
 * per fsync -- measured here as roughly half the throughput (README,
 * Performance).  In coalesced mode a status update sends no NOTIFY; instead
 * one background worker per database wakes every pipeline.notify_interval
 * milliseconds, and if the event id sequence moved it sends one
 * NOTIFY pipeline_events, '<newest id>'.  Listeners already treat NOTIFY as a
 * wake-up and catch up with events_since(last_seen), which is gap-free, so
 * nothing is missed; a wake-up arrives at most one interval later.
 *
 * The worker is a dynamic background worker: no shared_preload_libraries.
 * An event writer checks, with a conditional lock (no waiting, no shared
 * memory), whether a notifier holds its advisory lock in this database, and
 * registers one if not.  Two writers may race to register; the loser's worker
 * finds the lock taken and exits.  The worker exits after two idle seconds
 * (so DROP DATABASE, which waits five seconds for other sessions, is not
 * blocked), when the extension is dropped, and on SIGTERM.  If no worker slot
 * is free the writer falls back to an immediate NOTIFY.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "notifier.h"
#include "util.h"

#define PL_NOTIFIER_FIELD4 20565	/* advisory lock: the database's notifier */
#define PL_NOTIFIER_IDLE_MS 2000

int			pl_notify_interval = 10;

PGDLLEXPORT void pl_notifier_main(Datum main_arg);

static void
notifier_tag(LOCKTAG *tag, Oid dboid)
{
	SET_LOCKTAG_ADVISORY(*tag, dboid, 0, 0, PL_NOTIFIER_FIELD4);
}

/*
 * Called by event writers in coalesced mode.  Cheap when a notifier runs: one
 * conditional lock request that fails at once.
 */
void
pl_notifier_ensure(int64 event_id)
{
	static TimestampTz registered_at = 0;
	LOCKTAG		tag;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	TimestampTz now;

	notifier_tag(&tag, MyDatabaseId);
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return;					/* a notifier holds it: it will announce us */
	LockRelease(&tag, ShareLock, false);

	/* none runs; one we registered a moment ago may still be starting */
	now = GetCurrentTimestamp();
	if (registered_at != 0 && !TimestampDifferenceExceeds(registered_at, now, 1000))
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pipeline");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pl_notifier_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pipeline notifier for database %u", MyDatabaseId);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pipeline notifier");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = 0;

	if (RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		registered_at = now;
		return;
	}
	/* no free worker slot: do not lose the wake-up */
	ereport(DEBUG1,
			(errmsg("pipeline: no background worker slot for the notifier; notifying at once")));
	{
		char		idbuf[32];

		snprintf(idbuf, sizeof(idbuf), INT64_FORMAT, event_id);
		Async_Notify("pipeline_events", idbuf);
	}
}

/* The newest id handed out by pipeline.event's sequence; -1 if the extension is gone. */
static int64
newest_event_id(void)
{
	Oid			nsp = get_namespace_oid("pipeline", true);
	int64		result = -1;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("event_id_seq", nsp)))
		return -1;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
					" FROM pipeline.event_id_seq", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		result = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	return result;
}

void
pl_notifier_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	LOCKTAG		tag;
	int64		announced = -1;
	int			idle_ms = 0;

	/*
	 * SIGTERM (pg_terminate_backend, DROP DATABASE) ends the worker at its
	 * next CHECK_FOR_INTERRUPTS.  The default handler of a background worker
	 * raises FATAL inside the signal handler, which becomes a PANIC -- and a
	 * restart of the whole server -- when the signal lands in a critical
	 * section of the commit that sends the NOTIFY (seen in the suite's
	 * events test).
	 */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pipeline notifier");

	/* one notifier per database: the loser of a registration race leaves */
	notifier_tag(&tag, dboid);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		proc_exit(0);

	for (;;)
	{
		int64		newest;
		int			interval = pl_notify_interval > 0 ? pl_notify_interval : 10;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		newest = newest_event_id();
		if (newest > 0 && newest > announced)
		{
			char		idbuf[32];

			snprintf(idbuf, sizeof(idbuf), INT64_FORMAT, newest);
			Async_Notify("pipeline_events", idbuf);
		}
		PopActiveSnapshot();
		CommitTransactionCommand();	/* sends the NOTIFY */

		if (newest < 0)
			break;				/* the extension was dropped */
		idle_ms = (newest == announced) ? idle_ms + interval : 0;
		announced = newest;
		if (idle_ms >= PL_NOTIFIER_IDLE_MS)
			break;
	}
	LockRelease(&tag, ExclusiveLock, true);
	proc_exit(0);
}

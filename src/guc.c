/*
 * guc.c: the extension's settings (pipeline.*): their variables and their
 * definitions.  pipeline.notify_interval's variable lives in notifier.c,
 * which reads it.  No locking here.
 *
 * Layer: storage
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "guc.h"


int			pl_heartbeat_timeout = 300;
int			pl_retry_backoff = 10;
int			pl_max_chain_depth = 10;
static int	pl_hook_max_attempts = 5;
static int	pl_hook_backoff = 10;
int			pl_notify = PL_NOTIFY_COALESCED;

static const struct config_enum_entry notify_options[] = {
	{"immediate", PL_NOTIFY_IMMEDIATE, false},
	{"coalesced", PL_NOTIFY_COALESCED, false},
	{"off", PL_NOTIFY_OFF, false},
	{"on", PL_NOTIFY_IMMEDIATE, true},
	{"true", PL_NOTIFY_IMMEDIATE, true},
	{"false", PL_NOTIFY_OFF, true},
	{NULL, 0, false}
};

/* Define the GUCs (called once, from _PG_init). */
void
pl_guc_init(void)
{
	DefineCustomIntVariable("pipeline.heartbeat_timeout",
							"Seconds a running job task may stay silent before pipeline.reap() fails it.",
							"0 disables the check.  Any heartbeat or status update counts as a sign of life.",
							&pl_heartbeat_timeout,
							300, 0, INT_MAX / 1000,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pipeline.retry_backoff",
							"Seconds before the first automatic retry of a failed task.",
							"Each further retry waits twice as long, at most one hour.",
							&pl_retry_backoff,
							10, 0, 3600,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* chain.c: a safety limit, so only a superuser may change it */
	DefineCustomIntVariable("pipeline.max_chain_depth",
							"How many generations of chained runs (next_pipelines) may start from one run.",
							"A run started by a user or a trigger has depth 0, a run it chains depth 1, and "
							"so on; a chained run deeper than this is not started, and the ending run "
							"records why (pipeline_task.chained).  0 starts no chained run.",
							&pl_max_chain_depth,
							10, 0, 1000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/* read by complete_hook_delivery() (SQL) with current_setting() */
	DefineCustomIntVariable("pipeline.hook_max_attempts",
							"Attempts before a hook delivery is marked failed.",
							NULL,
							&pl_hook_max_attempts,
							5, 1, 100,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.hook_backoff",
							"Seconds before the second attempt of a failed hook delivery.",
							"Each further attempt waits twice as long, at most one hour.",
							&pl_hook_backoff,
							10, 0, 3600,
							PGC_USERSET,
							0,			/* plain seconds: read as an integer by SQL */
							NULL, NULL, NULL);

	DefineCustomEnumVariable("pipeline.notify",
							 "How events wake up LISTENers on pipeline_events.",
							 "immediate: a NOTIFY in every changing transaction; coalesced: a "
							 "background worker sends one NOTIFY per pipeline.notify_interval with "
							 "the newest event id; off: none (listeners poll events_since()).",
							 &pl_notify,
							 PL_NOTIFY_COALESCED,
							 notify_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.notify_interval",
							"Milliseconds between the coalesced notifier's looks at new events.",
							NULL,
							&pl_notify_interval,
							10, 1, 10000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("pipeline");
}

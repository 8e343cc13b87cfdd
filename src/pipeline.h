/*
 * pipeline.h: shared declarations of the pipeline extension.
 *
 * One header for the whole engine: the stage enum as C sees it, the lock
 * helpers that encode the locking protocol (see advance.c), the SPI helpers
 * (saved plans), the JSON helpers and the entry points each module offers to
 * the others.
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* ---- stages, in the order of the SQL enum pipeline.task_stage ---- */
typedef enum PlStage
{
	PL_PENDING = 0,
	PL_SCHEDULING,
	PL_CREATING,
	PL_ACTIVE,
	PL_CANCELING,
	PL_CANCELED,
	PL_FAILED,
	PL_SUCCEEDED,
	PL_SKIPPED,
	PL_NSTAGES
} PlStage;

extern const char *const pl_stage_names[PL_NSTAGES];

static inline bool
pl_stage_complete(PlStage s)
{
	return s >= PL_CANCELED;
}

/* started = handed to runners and not finished: scheduling .. canceling */
static inline bool
pl_stage_started(PlStage s)
{
	return s >= PL_SCHEDULING && s <= PL_CANCELING;
}

extern PlStage pl_stage_from_name(const char *name);	/* ERROR if unknown */
extern PlStage pl_stage_from_datum(Datum d);	/* enum value -> PlStage */

/* ---- GUCs (pipeline.c) ---- */
extern int	pl_heartbeat_timeout;	/* seconds, 0 = off */
extern int	pl_retry_backoff;	/* seconds, first automatic retry delay */
typedef enum PlNotifyMode
{
	PL_NOTIFY_IMMEDIATE,
	PL_NOTIFY_COALESCED,
	PL_NOTIFY_OFF
} PlNotifyMode;
extern int	pl_notify;			/* PlNotifyMode */
extern int	pl_notify_interval; /* ms, coalesced mode */

extern void pl_require_read_committed(const char *fn);	/* 25001 otherwise */

/* ---- SPI helpers (util.c) ---- */

/*
 * A statement prepared once per backend and kept (SPI_keepplan).  Declare one
 * static PlStmt per call site; pl_exec() prepares it on first use.
 */
typedef struct PlStmt
{
	const char *sql;
	int			nargs;
	Oid			argtypes[12];
	SPIPlanPtr	plan;
} PlStmt;

extern int	pl_exec(PlStmt *stmt, Datum *values, const bool *isnull, long tcount);

/* read column (1-based) of row i of SPI_tuptable */
extern Datum pl_col(int row, int col, bool *isnull);
extern int64 pl_col_int64(int row, int col);
extern int32 pl_col_int32(int row, int col);
extern bool pl_col_bool(int row, int col);
extern char *pl_col_text(int row, int col);	/* palloc'd in caller's context, or NULL */
extern Jsonb *pl_col_jsonb(int row, int col);	/* copied into caller's context, or NULL */
extern PlStage pl_col_stage(int row, int col);

/* Memory context that was current when SPI_connect was called */
extern MemoryContext pl_spi_connect(void);
extern void pl_spi_finish(void);

/* ---- JSON helpers (util.c) ---- */
extern JsonbValue *pl_jb_get(JsonbContainer *obj, const char *key);
extern Jsonb *pl_jsonb_from_cstring(const char *json);
extern char *pl_jsonb_to_cstring(Jsonb *jb);
extern char *pl_jbv_to_cstring(JsonbValue *v);	/* any value as JSON text */
extern char *pl_jbv_scalar_text(JsonbValue *v); /* scalar as plain text (strings unquoted) */
extern bool pl_jb_is_object(Jsonb *jb);
extern void pl_json_kv_str(StringInfo buf, bool *first, const char *key, const char *val);
extern void pl_json_kv_raw(StringInfo buf, bool *first, const char *key, const char *raw);
extern void pl_json_kv_int(StringInfo buf, bool *first, const char *key, int64 val);
extern void pl_json_kv_bool(StringInfo buf, bool *first, const char *key, bool val);

/* ---- tokens (token.c) ---- */
#define PL_TOKEN_RANDOM_BYTES 16
#define PL_TOKEN_LEN (16 + 2 * PL_TOKEN_RANDOM_BYTES)	/* 48 hex digits */
#define PL_DIGEST_BYTES 32
extern char *pl_token_new(int64 pipeline_task_id);	/* palloc'd hex string */
extern int64 pl_token_run(const char *token);
extern bytea *pl_token_digest(const char *token);
extern bool pl_token_matches(const char *token, bytea *digest);

/* ---- locks (advance.c) ---- */
extern void pl_lock_run_shared(int64 pipeline_task_id);
extern void pl_lock_run_exclusive(int64 pipeline_task_id);

/* ---- events (event.c) ---- */

/*
 * SQL of a job task event's payload, for a row alias T (e.g. "u" or "(u.r)")
 * and the old stage's SQL expression OLD: a snapshot without params (they may
 * hold secrets) and without the token digest.  One definition, used by every
 * statement that writes a job task event, so payloads never differ.
 */
#define PL_TASK_PAYLOAD_SQL(T, OLD) \
	"pg_catalog.jsonb_build_object(" \
	" 'id', " T ".id, 'pipeline_task_id', " T ".pipeline_task_id," \
	" 'pipeline_name', (SELECT pp.pipeline_name FROM pipeline.pipeline_task pp" \
	"                    WHERE pp.id = " T ".pipeline_task_id)," \
	" 'stage_index', " T ".stage_index, 'stage_name', " T ".stage_name," \
	" 'task_index', " T ".task_index, 'task_name', " T ".task_name," \
	" 'job_name', " T ".job_name, 'stage', " T ".stage, 'old_stage', " OLD "," \
	" 'message', " T ".message, 'attempt', " T ".attempt, 'runner', " T ".runner," \
	" 'dry_run', " T ".dry_run, 'gate', " T ".gate, 'gate_result', " T ".gate_result," \
	" 'start_at', " T ".start_at, 'end_at', " T ".end_at)"

/* SQL: the row's hooks if it has any, else NULL (no deliveries to write) */
#define PL_HOOKS_IF_ANY_SQL(T) \
	"CASE WHEN pg_catalog.jsonb_array_length(" T ".hooks->'webhooks')" \
	"        + pg_catalog.jsonb_array_length(" T ".hooks->'im_robot_notify')" \
	"        + pg_catalog.jsonb_array_length(" T ".hooks->'mention_users') > 0" \
	"     THEN " T ".hooks END"

extern int64 pl_event_job_task(int64 job_task_id, int64 pipeline_task_id,
							   PlStage old_stage, PlStage new_stage);
extern int64 pl_event_pipeline_task(int64 pipeline_task_id,
									int old_stage, PlStage new_stage);
extern void pl_notifier_ensure(int64 event_id);	/* notifier.c */
extern void pl_announce_event(int64 event_id, int64 pipeline_task_id, int64 job_task_id,
							  Jsonb *hooks, PlStage new_stage);

/* ---- advancing (advance.c) ---- */
extern void pl_advance_after(int64 job_task_id, int64 pipeline_task_id, int stage_index,
							 PlStage new_stage, bool force_trigger);
extern void pl_advance_after_known(int64 job_task_id, int64 pipeline_task_id, int stage_index,
								   PlStage new_stage, bool force_trigger, bool ignore_failed,
								   bool gate_waiting, const char *message);
extern void pl_advance_continue(int64 job_task_id, int64 pipeline_task_id);
extern void pl_start_next(int64 pipeline_task_id);
extern void pl_cancel_run(int64 pipeline_task_id, const char *reason, bool from_user);
extern void pl_set_job_task_stage(int64 id, int64 pipeline_task_id, PlStage old_stage,
								  PlStage new_stage, const char *message);

/* ---- runs (run.c) ---- */
extern void pl_start_queued(const char *pipeline, const char *key);

/* ---- status (status.c) ---- */
extern void pl_put_job_task(FunctionCallInfo fcinfo, int64 id, MemoryContext outer);
extern Datum pl_job_task_datum(int64 id, MemoryContext outer);
extern void pl_reject_token(int64 id) pg_attribute_noreturn();
extern PlStage pl_require_token(int64 id, const char *token, bool lock);

/* ---- gates, retries, reaping (gates.c) ---- */
extern bool pl_retry_if_left(int64 id, int64 pipeline_task_id);

/* ---- redaction (redact.c) and secrets (secrets.c) ---- */
extern Jsonb *pl_redact_hooks(Jsonb *hooks);	/* hook targets redacted */

/*
 * SQL: where job task row T's secrets are (secrets.c): its params, its
 * runtime envs and its run's runtime envs, which may override them.  Callers
 * evaluate it only when T.sensitive is not empty, and pass it with
 * T.sensitive and the presented token to pipeline.mask_secrets().
 */
#define PL_SECRETS_SQL(T) \
	"pg_catalog.jsonb_build_array(" T ".params, " T ".runtime_envs," \
	" (SELECT pp.runtime_envs FROM pipeline.pipeline_task pp WHERE pp.id = " T ".pipeline_task_id))"
extern bool pl_runtime_env_name_allowed(const char *name);
extern const char *const pl_runtime_env_rule;	/* the deny-list, as a sentence */

/* ---- definitions (definition.c) ---- */
extern bool pl_valid_name(const char *s, bool allow_dot);
extern bool pl_valid_param_name(const char *s);
#define PL_CLIP_BYTES 64		/* user values quoted in messages: at most this many bytes */
/* pl_jsonb_rewrite (util.c): a callback that may change v in place, true if it did */
typedef bool (*PlJsonbRewriteFn) (JsonbIteratorToken tok, JsonbValue *v, const JsonbValue *key, void *arg);
extern Jsonb *pl_jsonb_rewrite(Jsonb *doc, bool shallow, PlJsonbRewriteFn fn, void *arg);
extern char *pl_vformat(const char *fmt, va_list args) pg_attribute_printf(1, 0);
extern char *pl_clip(const char *s);	/* cut at a character boundary, "..." added */
extern char *pl_clip_n(const char *s, int max);

#endif							/* PIPELINE_H */

/*
 * util.h: SPI with saved plans, reading result columns, JSON helpers and the
 * isolation-level check (util.c).  No locking here.
 *
 * Layer: storage
 */
#ifndef PL_UTIL_H
#define PL_UTIL_H

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "pipeline.h"

extern void pl_require_read_committed(const char *fn);	/* 25001 otherwise */

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
	bool		generic;		/* PL_GENERIC: always the generic plan (util.c) */
	uint32		runs;			/* executions of a generic plan (util.c: re-planning) */
} PlStmt;

/*
 * Ends the initializer of a hot-path PlStmt whose statement looks its rows up
 * by key (id = $1 and the like), so that its generic plan is as good as a
 * custom one: pl_exec() then never re-plans it (util.c says why).
 */
#define PL_GENERIC NULL, true

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
/* the context pl_col_text/pl_col_jsonb copy into; restore it after a nested connect */
extern MemoryContext pl_spi_outer(void);
extern void pl_spi_set_outer(MemoryContext cxt);

/* an error caught in a subtransaction: a refusal to record (true), or to re-throw */
extern bool pl_error_is_refusal(ErrorData *e);

/*
 * Run body(arg) in an internal subtransaction.  NULL when it committed; when
 * it raised an error that is_refusal() accepts, the subtransaction is rolled
 * back and the error (copied into the caller's context) returned; any other
 * error is re-thrown.  The caller's memory context, resource owner and
 * pl_spi_outer() are the same afterwards either way.
 */
typedef void (*PlSubxactBody) (void *arg);
extern ErrorData *pl_subxact_try(PlSubxactBody body, void *arg, bool (*is_refusal) (ErrorData *e));

/* ---- JSON helpers ---- */
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

/* pl_jsonb_rewrite: a copy of doc in which fn may change each value in place (true if it did) */
typedef bool (*PlJsonbRewriteFn) (JsonbIteratorToken tok, JsonbValue *v, const JsonbValue *key, void *arg);
extern Jsonb *pl_jsonb_rewrite(Jsonb *doc, bool shallow, PlJsonbRewriteFn fn, void *arg);

#endif							/* PL_UTIL_H */

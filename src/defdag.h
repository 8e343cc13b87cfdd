/*
 * defdag.h: validation of the SPEC §13 task fields of a pipeline definition
 * (defdag.c): needs, matrix, when, blocking, if; the needs graph check.
 * No locking: validation reads only the document.
 *
 * Layer: storage
 */
#ifndef DEFDAG_H
#define DEFDAG_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "defcheck.h"

#define PL_MAX_MATRIX 256		/* job tasks one matrix task may become */

/* One task of the definition, for the needs graph check. */
typedef struct DefDagTask
{
	int			si;				/* stage index */
	int			ti;				/* task index */
	const char *stage;			/* stage name */
	const char *name;			/* task name */
	bool		serial;			/* its stage is serial */
	JsonbContainer *needs;		/* its needs array (validated), NULL if absent */
} DefDagTask;

extern bool def_task_uses_dag(JsonbContainer *t);
extern void def_emit_dag_fields(DefCtx *ctx, const char *tp, JsonbContainer *t, StringInfo out,
								bool *first);
extern void def_check_needs(DefCtx *ctx, DefDagTask *tasks, int n);

#endif							/* DEFDAG_H */

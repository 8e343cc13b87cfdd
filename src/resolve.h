/*
 * resolve.h: resolving a pipeline version into its job tasks and their
 * params (resolve.c), for run_pipeline() and plan() (run.c).
 * No locking: reads definitions with plain SELECTs.
 *
 * Layer: api
 */
#ifndef PL_RESOLVE_H
#define PL_RESOLVE_H

#include "postgres.h"

#include "utils/jsonb.h"

typedef struct KV
{
	char	   *key;
	char	   *val;
} KV;

typedef struct KVList
{
	int			n;
	int			cap;
	KV		   *items;
} KVList;

/* One resolved task. */
typedef struct PlTask
{
	int			stage_index;
	char	   *stage_name;
	bool		is_parallel;
	int			task_index;
	char	   *task_name;
	char	   *job_name;		/* NULL = inline */
	int			job_version;
	char	   *job;			/* normalized job JSON */
	JsonbContainer *jobc;		/* the same, parsed (the definition's memory) */
	KVList		plist;			/* params while they are resolved */
	char	   *labels;			/* job labels JSON */
	char	   *params;			/* JSON object of strings */
	char	   *sensitive;		/* JSON array of names */
	bool		ignore_failed;
	bool		skip_run;
	char	   *audit;
	char	   *confirm;
	char	   *hooks;
	/* SPEC §13 */
	const char *base_name;		/* the task's name in the definition (task_name adds the matrix) */
	JsonbContainer *tc;			/* the task in the definition */
	char	   *matrix;			/* JSON of its matrix combination, NULL without a matrix */
	int			mn;				/* the combination: mn keys and values */
	char	  **mkeys;
	char	  **mvals;
	char	   *run_when;		/* on_success, manual, always, on_failure */
	bool		blocking;
	bool		if_skipped;		/* its `if` does not hold: created skipped */
	int64		id;				/* dag runs: its id, allocated before the insert */
	char	   *needs;			/* dag runs: JSON arrays of ids, and the counter */
	char	   *downstream;
	int			needs_left;
} PlTask;

typedef struct PlResolved
{
	char	   *name;
	int			version;
	Jsonb	   *def;
	int			nstages;
	int			ntasks;
	PlTask	   *tasks;
	KVList		sensitive;		/* union, for masking the run's params */
	bool		dag;			/* a task uses needs/matrix/when/blocking/if (SPEC §13) */
} PlResolved;

extern void pl_run_error(const char *pipeline, const char *fmt,...) pg_attribute_printf(2, 3) pg_attribute_noreturn();
extern char *pl_jbv_string(JsonbValue *v);
extern void pl_resolve(PlResolved *r, const char *name, Jsonb *params);
extern char *pl_resolve_tasks_json(PlResolved *r, bool dry_run);
extern char *pl_resolve_sensitive_literal(KVList *l);
extern void pl_resolve_link(PlResolved *r, bool alloc_ids);

#endif							/* PL_RESOLVE_H */

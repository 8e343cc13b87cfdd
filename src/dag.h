/*
 * dag.h: run creation for pipelines that use SPEC §13 (dag.c): matrix
 * expansion, `if` conditions, and the needs graph of a run's job tasks
 * (explicit needs resolved to job task ids, stages turned into generated
 * needs, downstream lists and unfinished-needs counters).
 * No locking: pure computation on the resolved run (run.c stores it).
 *
 * Layer: api
 */
#ifndef PL_DAG_H
#define PL_DAG_H

#include "postgres.h"

#include "utils/jsonb.h"

/* a run of pipelines that use matrix may not exceed this many job tasks */
#define PL_MAX_RUN_TASKS 10000

/* One job task of a run, as dag.c links it. */
typedef struct PlDagNode
{
	/* filled by the caller, in (stage_index, task_index, combination) order */
	int			si;				/* stage index */
	int			ti;				/* task index in the definition */
	const char *stage;			/* stage name */
	const char *base;			/* task name in the definition */
	bool		serial;			/* its stage is serial */
	JsonbContainer *needs;		/* the task's needs array, NULL if absent */
	bool		done;			/* created complete (skip_run, or skipped by if) */
	int64		id;				/* its job task id, allocated before the insert */
	/* filled by pl_dag_link */
	int			nneeds;
	int64	   *needs_ids;
	int			ndown;
	int64	   *down_ids;
	int			needs_left;
} PlDagNode;

/* How many job tasks the task's matrix makes (1 without a matrix). */
extern int	pl_dag_matrix_size(JsonbContainer *task);

/*
 * The k-th combination of the task's matrix (keys sorted, the last key
 * varying fastest): *suffix "[K=v,...]", keys/vals (palloc'd arrays of
 * *nkeys), *json '{"K": "v", ...}'.
 */
extern void pl_dag_matrix_combo(JsonbContainer *task, int k, char **suffix, char ***keys,
								char ***vals, int *nkeys, char **json);

/*
 * Does the task's `if` hold for these effective params (every named param
 * matches its regex with ~; an absent param is the empty string)?  True
 * without `if`.
 */
extern bool pl_dag_if_holds(JsonbContainer *task, char **keys, char **vals, int n);

/* Needs, downstream lists and counters of the run's job tasks (see dag.c). */
extern void pl_dag_link(PlDagNode *nodes, int n);

/* JSON array of ids, for the insert */
extern char *pl_dag_ids_json(const int64 *ids, int n);

#endif							/* PL_DAG_H */

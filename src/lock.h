/*
 * lock.h: the locks that guard a run, and the lock order (lock.c).
 *
 * Layer: storage
 */
#ifndef PL_LOCK_H
#define PL_LOCK_H

#include "postgres.h"

/* A(P): the run's advisory lock, SHARE or EXCLUSIVE (no-op under PIPELINE_TEST_NO_LOCKS) */
extern void pl_lock_run_shared(int64 pipeline_task_id);
extern void pl_lock_run_exclusive(int64 pipeline_task_id);

/* R(P): the run's row, FOR UPDATE; returns its stage, -1 if there is no such run */
extern int	pl_lock_run_row(int64 pipeline_task_id);

/* S(pipeline, key): the transaction-level advisory lock of a serialized pipeline's sequence */
extern void pl_lock_sequence(const char *pipeline, const char *key);

/* C(key): a concurrency key's lock, try only (true if taken; always true under PIPELINE_TEST_NO_LOCKS) */
extern bool pl_lock_key_try(const char *key);

#endif							/* PL_LOCK_H */

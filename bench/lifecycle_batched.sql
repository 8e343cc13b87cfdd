-- bench/lifecycle_batched.sql: fifty tasks' lives as a batching runner lives them (SPEC §16),
-- two autocommit transactions: claim 50 with start => true (each task -> active, one event),
-- then one update_job_task_statuses call with their 50 'succeeded' reports (each advances
-- its run).  An empty claim (nothing claimable at this instant) is a no-op, not an error.
SELECT count(*) AS n, coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'stage', 'succeeded',
       'update_token', c.update_token)), '[]') AS reps
  FROM pipeline.claim_job_tasks('bench', 50, '{}', start => true) c \gset
\if :n
SELECT count(*) FILTER (WHERE sqlstate IS NOT NULL) AS refused FROM pipeline.update_job_task_statuses(:reps::jsonb);
\endif

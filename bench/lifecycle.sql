-- bench/lifecycle.sql: one task's life as a runner lives it, three autocommit transactions:
-- claim (-> creating, fresh token), report 'active', report 'succeeded' (which advances the
-- run: the next serial stage is scheduled, or the run finishes).  An empty claim (nothing
-- claimable at this instant) is a no-op, not an error.
SELECT coalesce(max(c.id), 0) AS tid, coalesce(max(c.update_token), '') AS tok FROM pipeline.claim_job_tasks('bench', 1) c \gset
\if :tid > 0
SELECT id FROM pipeline.update_job_task_status(:tid, 'active', :tok);
SELECT id FROM pipeline.update_job_task_status(:tid, 'succeeded', :tok);
\endif

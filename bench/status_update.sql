-- bench/status_update.sql: one status update per transaction, each a real stage change.
--
-- Client c owns the :m tasks base + c*m .. base + c*m + m - 1 (disjoint ranges: no row
-- contention between clients).  They start 'creating'; the client walks its tasks round
-- robin and flips each one to 'active' on even passes and back to 'creating' on odd ones.
-- Both stages are incomplete, so every call changes the stage (event + NOTIFY) and
-- advances nothing.  Variables (bench/run passes them with -D): base, m, k = -1.
\set k :k + 1
\set task :base + :client_id * :m + (:k % :m)
\if (:k / :m) % 2 = 0
SELECT id FROM pipeline.update_job_task_status(:task, 'active', 'bench');
\else
SELECT id FROM pipeline.update_job_task_status(:task, 'creating', 'bench');
\endif

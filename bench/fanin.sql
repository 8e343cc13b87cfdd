-- bench/fanin.sql: the :n active tasks base .. base + n - 1 of one parallel stage, completed
-- by :nc sessions at once.  Client c completes tasks c, c + nc, c + 2*nc, ... (one per
-- transaction), so every client finishes its last task at about the same moment: the
-- siblings' completions race exactly where the fan-in rule (next stage starts once) matters.
-- Variables (bench/run passes them with -D): base, n, nc, i = 0.
\set k :client_id + :nc * :i
\set i :i + 1
\set task :base + :k
\if :k < :n
SELECT id FROM pipeline.update_job_task_status(:task, 'succeeded', 'bench');
\endif

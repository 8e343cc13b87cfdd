--
-- cancel: cancel_pipeline_task() (SPEC §5, §9).
--
-- The run becomes canceled at once; its pending and scheduling tasks become
-- canceled, its creating and active ones canceling (their runners stop them
-- and report canceled); complete tasks are left alone.  Each change is one
-- event.  A finished run cannot be canceled (55000), an unknown one not
-- found (P0002); a refusal changes nothing.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "ca_job"}') AS version;
SELECT pipeline.define_pipeline('{"name": "ca_pipe", "stages": [
  {"name": "work", "is_parallel": true, "tasks": [
     {"name": "a", "job": "ca_job"}, {"name": "b", "job": "ca_job"},
     {"name": "c", "job": "ca_job"}, {"name": "d", "job": "ca_job"}]},
  {"name": "after", "tasks": [{"name": "e", "job": "ca_job"}]}]}') AS version;

-- ---------------------------------------------------------------- a run in every stage
SELECT pipeline.run_pipeline('ca_pipe') AS run \gset
SELECT * FROM regress.claim('ca-runner', 3);
SELECT regress.report(:run, 'work.b', 'active');
SELECT regress.report(:run, 'work.c', 'succeeded');
-- a creating, b active, c succeeded, d scheduling, e pending
SELECT task, stage FROM regress.tasks(:run);

SELECT regress.last_event() AS ev0 \gset
SELECT stage, message, end_at IS NOT NULL AS ended
  FROM pipeline.cancel_pipeline_task(:run, 'release aborted');
SELECT * FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev0);
-- the canceled tasks ended, the canceling ones not yet
SELECT task_name, end_at IS NOT NULL AS ended FROM pipeline.job_task
 WHERE pipeline_task_id = :run ORDER BY stage_index, task_index;
-- nothing of it is handed to runners any more
SELECT regress.next(:run);
SELECT * FROM regress.claim('ca-runner', 10);

-- the runners stop their tasks and report; the run stays canceled
SELECT regress.report(:run, 'work.a', 'canceled', 'stopped');
-- (b finished before it could be stopped)
SELECT regress.report(:run, 'work.b', 'succeeded');
SELECT * FROM regress.tasks(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.events(:run, :ev0);
SELECT tasks_total, tasks_done FROM pipeline.pipeline_tasks WHERE id = :run;

-- ---------------------------------------------------------------- refusals
SELECT regress.state() AS before \gset
-- a finished run: canceled, succeeded or failed
SELECT pipeline.cancel_pipeline_task(:run);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'run', 'R');
SELECT regress.state() = :'before' AS unchanged;
SELECT pipeline.define_pipeline('{"name": "ca_short", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ca_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('ca_short') AS done_run \gset
SELECT * FROM regress.claim('ca-runner');
SELECT regress.report(:done_run, 's.t', 'succeeded');
SELECT regress.state() AS before \gset
SELECT pipeline.cancel_pipeline_task(:done_run, 'too late');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'done_run', 'R');
SELECT regress.state() = :'before' AS unchanged;
SELECT pipeline.run_pipeline('ca_short') AS failed_run \gset
SELECT * FROM regress.claim('ca-runner');
SELECT regress.report(:failed_run, 's.t', 'failed', 'broken');
SELECT regress.state() AS before \gset
SELECT pipeline.cancel_pipeline_task(:failed_run);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'failed_run', 'R');
-- an unknown run, or none
SELECT pipeline.cancel_pipeline_task(-1);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.cancel_pipeline_task(NULL);
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;
-- READ COMMITTED only
SELECT pipeline.run_pipeline('ca_short') AS open_run \gset
SELECT regress.state() AS before \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.cancel_pipeline_task(:open_run);
\echo :LAST_ERROR_MESSAGE
ROLLBACK;
SELECT regress.state() = :'before' AS unchanged;
SELECT CASE id WHEN :done_run THEN 'done' WHEN :failed_run THEN 'failed' ELSE 'open' END AS run, stage, message
  FROM pipeline.pipeline_task WHERE id IN (:done_run, :failed_run, :open_run) ORDER BY id;

-- ---------------------------------------------------------------- the default reason
SELECT stage, message = 'canceled by ' || current_user AS default_reason
  FROM pipeline.cancel_pipeline_task(:open_run);
SELECT task, stage, message = 'canceled by ' || current_user AS default_reason FROM regress.tasks(:open_run);

-- ---------------------------------------------------------------- a canceling task that fails
SELECT pipeline.run_pipeline('ca_short') AS run \gset
SELECT * FROM regress.claim('ca-runner');
SELECT regress.report(:run, 's.t', 'active');
SELECT (pipeline.cancel_pipeline_task(:run, 'abort')).stage;
SELECT regress.report(:run, 's.t', 'failed', 'killed: exit code 143');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.tasks(:run);

SELECT regress.cancel_all();
SELECT count(*) AS claimable_left FROM pipeline.job_task WHERE stage = 'scheduling';

--
-- api_contract: what the API promises at its edges (issue 9 item 10, issue 10
-- items 2 and 5).
--
--   * a run failed by a task names it: "stage.task: <the task's message>";
--   * a new attempt (automatic retry) starts without the previous attempt's
--     message and detail (they stay in the failed event);
--   * heartbeat() and append_job_task_log() agree: a finished task takes
--     neither (55000);
--   * a NULL where a value is required is 22004 naming the argument, for every
--     function of the SQL reference; NULL for an argument with a default means
--     that default where the README says so.
-- Uses regress.refusal() from def_limits.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "ac_flaky", "command": "./test", "retries": 1}') AS v \gset
SELECT pipeline.define_pipeline('{"name": "ac_pipe", "stages": [
    {"name": "build", "is_parallel": true, "tasks": [
        {"name": "compile", "job": {"command": "make"}},
        {"name": "lint", "job": {"command": "lint"}, "ignore_failed": true}]},
    {"name": "test", "tasks": [{"name": "unit", "job": "ac_flaky"}]}]}') AS v \gset

-- ---------------------------------------------------------------- the run names the failed task
SELECT pipeline.run_pipeline('ac_pipe') AS run \gset
SELECT * FROM regress.claim('ac-runner', 2);
-- an ignored failure does not fail the run
SELECT regress.report(:run, 'build.lint', 'failed', 'lint: 3 warnings');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT regress.report(:run, 'build.compile', 'failed', 'exit code 1');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
-- the same in the run's events and in pipeline_tasks
SELECT e.payload->>'message' AS event_message FROM pipeline.event e
 WHERE e.kind = 'pipeline_task' AND e.object_id = :run AND e.new_stage = 'failed';
SELECT message FROM pipeline.pipeline_tasks WHERE id = :run;
-- without a message of its own: "stage.task: job task N failed"
SELECT pipeline.run_pipeline('ac_pipe') AS run2 \gset
SELECT * FROM regress.claim('ac-runner', 2);
SELECT regress.report(:run2, 'build.compile', 'failed');
SELECT regress.err(message, regress.jt(:run2, 'build.compile')::text, 'ID') AS message
  FROM pipeline.pipeline_task WHERE id = :run2;
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- a retry starts clean
SET pipeline.retry_backoff = 0;
SELECT pipeline.run_pipeline('ac_pipe') AS run3 \gset
SELECT * FROM regress.claim('ac-runner', 2);
SELECT regress.report(:run3, 'build.compile', 'succeeded');
SELECT regress.report(:run3, 'build.lint', 'succeeded');
SELECT * FROM regress.claim('ac-runner');
SELECT (pipeline.update_job_task_status(id, 'failed', update_token, message => 'flaky: exit code 1',
                                        detail => '{"exit_code": 1, "output_tail": "boom"}')).stage
  FROM regress.tok WHERE id = regress.jt(:run3, 'test.unit');
-- the automatic retry: attempt 2, scheduling, nothing left of attempt 1 but its event
SELECT stage, attempt, message, detail FROM pipeline.job_task WHERE id = regress.jt(:run3, 'test.unit');
SELECT e.payload->>'message' AS failed_event_message FROM pipeline.event e
 WHERE e.kind = 'job_task' AND e.object_id = regress.jt(:run3, 'test.unit') AND e.new_stage = 'failed';
SELECT * FROM regress.claim('ac-runner');
SELECT regress.report(:run3, 'test.unit', 'succeeded');
SELECT stage, attempt, message, detail FROM pipeline.job_task WHERE id = regress.jt(:run3, 'test.unit');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run3;
RESET pipeline.retry_backoff;

-- ---------------------------------------------------------------- finished tasks: heartbeat and log agree
SELECT id AS unit, update_token AS unit_tok FROM regress.tok WHERE id = regress.jt(:run3, 'test.unit') \gset
SELECT regress.state() AS before \gset
SELECT * FROM regress.refusal(format('SELECT pipeline.heartbeat(%s, %L)', :unit, :'unit_tok'))
  \gset hb_
SELECT * FROM regress.refusal(format('SELECT pipeline.append_job_task_log(%s, %L, %L)', :unit, :'unit_tok', 'late'))
  \gset log_
SELECT :'hb_sqlstate' AS heartbeat, :'log_sqlstate' AS append_log,
       regress.err(:'hb_message', :'unit', 'ID') AS heartbeat_message,
       regress.err(:'log_message', :'unit', 'ID') AS append_message;
SELECT regress.state() = :'before' AS unchanged;

-- ---------------------------------------------------------------- NULL arguments
SELECT regress.state() AS before \gset
SELECT s AS call, r.sqlstate, r.message
  FROM unnest(ARRAY[
    'SELECT pipeline.define_job(NULL)',
    'SELECT pipeline.define_pipeline(NULL)',
    'SELECT pipeline.run_pipeline(NULL)',
    'SELECT pipeline.plan(NULL)',
    'SELECT pipeline.update_job_task_status(NULL, ''active'', ''x'')',
    'SELECT pipeline.update_job_task_status(1, NULL, ''x'')',
    'SELECT pipeline.heartbeat(NULL, ''x'')',
    'SELECT pipeline.next_run(NULL)',
    'SELECT pipeline.cancel_pipeline_task(NULL)',
    'SELECT pipeline.claim_job_tasks(NULL)',
    'SELECT pipeline.audit_job_task(NULL, true)',
    'SELECT pipeline.audit_job_task(1, NULL)',
    'SELECT pipeline.confirm_job_task(NULL, true)',
    'SELECT pipeline.confirm_job_task(1, NULL)',
    'SELECT pipeline.retry_job_task(NULL)',
    'SELECT pipeline.append_job_task_log(NULL, ''x'', ''c'')',
    'SELECT pipeline.append_job_task_log(1, ''x'', NULL)',
    'SELECT pipeline.job_task_log(NULL)',
    'SELECT pipeline.claim_hook_deliveries(NULL)',
    'SELECT pipeline.claim_hook_deliveries(''s'', NULL)',
    'SELECT pipeline.claim_hook_deliveries(''s'', 1, NULL)',
    'SELECT pipeline.complete_hook_delivery(NULL, true, 200, ''ok'', 1)',
    'SELECT pipeline.complete_hook_delivery(1, NULL, 200, ''ok'', 1)',
    'SELECT pipeline.purge(NULL)',
    'SELECT pipeline.graph(NULL)',
    'SELECT pipeline.graph(1, NULL)',
    'SELECT pipeline.schedule(NULL, ''0 3 * * *'', ''ac_pipe'')',
    'SELECT pipeline.schedule(''n'', NULL, ''ac_pipe'')',
    'SELECT pipeline.schedule(''n'', ''0 3 * * *'', NULL)',
    'SELECT pipeline.schedule(''n'', ''0 3 * * *'', ''ac_pipe'', NULL)',
    'SELECT pipeline.unschedule(NULL)'
  ]) WITH ORDINALITY AS c(s, n), regress.refusal(s) r
 ORDER BY n;
-- a NULL token is a token that does not match (28000, counted)
SELECT c.fn, r.sqlstate
  FROM (VALUES (1, 'update_job_task_status', format('SELECT pipeline.update_job_task_status(%s, ''active'', NULL)', :unit)),
               (2, 'heartbeat', format('SELECT pipeline.heartbeat(%s, NULL)', :unit)),
               (3, 'append_job_task_log', format('SELECT pipeline.append_job_task_log(%s, NULL, ''c'')', :unit))
       ) AS c(n, fn, s), regress.refusal(c.s) r
 ORDER BY c.n;
-- optional arguments: NULL means the default
SELECT count(*) AS claimed FROM pipeline.claim_job_tasks('ac-nobody', NULL, NULL);
SELECT count(*) > 0 AS from_the_start FROM pipeline.events_since(NULL, NULL);
SELECT count(*) AS planned FROM pipeline.plan('ac_pipe', NULL);
SELECT count(*) AS deliveries FROM pipeline.job_task_deliveries(NULL);
-- none of this stored anything but the counted tokens
SELECT regress.state() = :'before' AS unchanged;
SELECT regress.cancel_all();

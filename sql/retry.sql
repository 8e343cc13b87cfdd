--
-- retry: automatic retries and retry_job_task() (SPEC §9).
--
-- A job with "retries": N gets N more attempts: a failed report puts the task
-- back to scheduling with attempt + 1 and its token revoked, not claimable
-- before retry_at (pipeline.retry_backoff * 2^(attempt-1) seconds, 0 = at
-- once), each step an event; once the retries are used up the failure
-- reaches the run.
-- retry_job_task() re-opens a failed or canceled task of a finished run: the
-- run becomes active again, the task and the not succeeded tasks after it go
-- back to pending and are scheduled as their turn comes, attempt + 1, old
-- tokens refused.  Refusals (nothing changed): task not failed/canceled or
-- run not finished 55000, unknown P0002, serialized pipeline busy 55006.
\set VERBOSITY sqlstate

-- The tasks of a run with their attempts
CREATE FUNCTION pg_temp.attempts(run bigint)
RETURNS TABLE (task text, stage pipeline.task_stage, attempt int, runner text, message text)
LANGUAGE sql AS $$
SELECT stage_name || '.' || task_name, stage, attempt, runner, message
  FROM pipeline.job_tasks WHERE pipeline_task_id = run ORDER BY stage_index, task_index
$$;

SELECT pipeline.define_job('{"name": "rt_flaky", "retries": 2}') AS version;
SELECT pipeline.define_job('{"name": "rt_plain"}') AS version;
SELECT pipeline.define_pipeline('{"name": "rt_pipe", "stages": [
  {"name": "one", "tasks": [{"name": "a", "job": "rt_flaky"}]},
  {"name": "two", "tasks": [{"name": "b", "job": "rt_plain"}]}]}') AS version;

-- ================================================================ automatic retries
SHOW pipeline.retry_backoff;
SELECT pipeline.run_pipeline('rt_pipe') AS run \gset
SELECT regress.jt(:run, 'one.a') AS a \gset
SELECT * FROM regress.claim('rt-runner');
SELECT update_token AS tok1 FROM regress.tok WHERE id = :a \gset
SELECT regress.report(:run, 'one.a', 'active');
SELECT regress.last_event() AS ev0 \gset
-- the first failure: the report answers with the task back in scheduling
SELECT regress.report(:run, 'one.a', 'failed', 'boom 1');
SELECT * FROM pg_temp.attempts(:run);
-- an event for the failure, one for the retry; the run is not touched
SELECT * FROM regress.events(:run, :ev0);
SELECT regress.run_stage(:run);
-- the token is revoked, the retry waits its backoff (10 s for the first)
SELECT token_digest IS NULL AS token_revoked, start_at IS NULL AS start_reset, end_at IS NULL AS end_reset,
       retry_at > now() AS retry_later, retry_at - updated_at AS backoff
  FROM pipeline.job_task WHERE id = :a;
-- the runner that held it can no longer report, nor heartbeat
SELECT regress.state() AS before \gset
SELECT pipeline.update_job_task_status(:a, 'succeeded', :'tok1');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.heartbeat(:a, :'tok1');
\echo :LAST_ERROR_SQLSTATE
-- and nobody claims it before retry_at
SELECT * FROM regress.claim('rt-runner', 10);
SELECT regress.state() = :'before' AS unchanged;

-- time passes
UPDATE pipeline.job_task SET retry_at = now() WHERE id = :a;
SELECT * FROM regress.claim('rt-runner-2');
SELECT update_token <> :'tok1' AS new_token FROM regress.tok WHERE id = :a;
SELECT * FROM pg_temp.attempts(:run);
SELECT regress.last_event() AS ev1 \gset
-- the second failure waits twice as long
SELECT regress.report(:run, 'one.a', 'failed', 'boom 2');
SELECT attempt, retry_at - updated_at AS backoff FROM pipeline.job_task WHERE id = :a;
UPDATE pipeline.job_task SET retry_at = now() WHERE id = :a;
SELECT * FROM regress.claim('rt-runner');
-- the third failure: no retry left, the run fails
SELECT regress.report(:run, 'one.a', 'failed', 'boom 3');
SELECT * FROM pg_temp.attempts(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.events(:run, :ev1);
SELECT retry_at IS NULL AS no_retry_due FROM pipeline.job_task WHERE id = :a;

-- ---------------------------------------------------------------- no backoff; a retry that succeeds
SET pipeline.retry_backoff = 0;
SELECT pipeline.run_pipeline('rt_pipe') AS run \gset
SELECT regress.jt(:run, 'one.a') AS a \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'one.a', 'failed', 'flaky');
SELECT retry_at - updated_at AS backoff FROM pipeline.job_task WHERE id = :a;
-- claimable at once
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'one.a', 'succeeded');
SELECT * FROM pg_temp.attempts(:run);
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'two.b', 'succeeded');
SELECT regress.run_stage(:run);
RESET pipeline.retry_backoff;

-- ---------------------------------------------------------------- no retry once the run is over
-- A retry is new work: a run that is canceled or failed starts nothing new,
-- so a failure reported after that is final.
SET pipeline.retry_backoff = 0;
SELECT pipeline.define_pipeline('{"name": "rt_par", "stages": [{"name": "s", "is_parallel": true, "tasks": [
  {"name": "flaky", "job": "rt_flaky"}, {"name": "plain", "job": "rt_plain"}]}]}') AS version;
-- the run was canceled; the task being stopped reports failed
SELECT pipeline.run_pipeline('rt_par') AS run \gset
SELECT * FROM regress.claim('rt-runner', 2);
SELECT regress.report(:run, 's.flaky', 'active');
SELECT (pipeline.cancel_pipeline_task(:run, 'stop')).stage;
SELECT regress.report(:run, 's.flaky', 'failed', 'killed');
SELECT * FROM pg_temp.attempts(:run);
SELECT regress.run_stage(:run);
SELECT * FROM regress.claim('rt-runner', 10);
-- (should change nothing: keeps a task wrongly handed back from reaching later tests)
UPDATE pipeline.job_task SET stage = 'canceled' WHERE pipeline_task_id = :run AND stage IN ('scheduling', 'creating');
-- the run failed (a sibling failed); then the task fails too
SELECT pipeline.run_pipeline('rt_par') AS run \gset
SELECT * FROM regress.claim('rt-runner', 2);
SELECT regress.report(:run, 's.plain', 'failed', 'broken');
SELECT regress.run_stage(:run);
SELECT regress.report(:run, 's.flaky', 'failed', 'also broken');
SELECT * FROM pg_temp.attempts(:run);
SELECT * FROM regress.claim('rt-runner', 10);
UPDATE pipeline.job_task SET stage = 'canceled' WHERE pipeline_task_id = :run AND stage IN ('scheduling', 'creating');
RESET pipeline.retry_backoff;

-- ---------------------------------------------------------------- a job without retries fails at once
SELECT pipeline.run_pipeline('rt_pipe') AS run \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'one.a', 'succeeded');
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'two.b', 'failed', 'no second chance');
SELECT * FROM pg_temp.attempts(:run);
SELECT regress.run_stage(:run);

-- ================================================================ retry_job_task
SELECT pipeline.define_pipeline('{"name": "rt_manual", "stages": [
  {"name": "build", "tasks": [{"name": "compile", "job": "rt_plain"}, {"name": "package", "job": "rt_plain"}]},
  {"name": "test", "is_parallel": true, "tasks": [{"name": "unit", "job": "rt_plain"}, {"name": "lint", "job": "rt_plain"}]},
  {"name": "deploy", "tasks": [{"name": "ship", "job": "rt_plain"}]}]}') AS version;

-- ---------------------------------------------------------------- a failed task
SELECT pipeline.run_pipeline('rt_manual') AS run \gset
SELECT regress.jt(:run, 'test.unit') AS unit, regress.jt(:run, 'build.compile') AS compile,
       regress.jt(:run, 'deploy.ship') AS ship \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'build.compile', 'succeeded');
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'build.package', 'succeeded');
SELECT * FROM regress.claim('rt-runner', 2);
SELECT update_token AS unit_tok FROM regress.tok WHERE id = :unit \gset
SELECT regress.report(:run, 'test.lint', 'active');

-- a task that has not failed cannot be retried
SELECT regress.state() AS before \gset
SELECT pipeline.retry_job_task(:unit);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'unit', 'UNIT');
SELECT regress.state() = :'before' AS unchanged;
SELECT regress.report(:run, 'test.unit', 'failed', 'unit tests failed');
-- lint still runs: the run failed, but lint is allowed to finish
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT regress.report(:run, 'test.lint', 'succeeded');
SELECT * FROM pg_temp.attempts(:run);

-- refusals: a task that did not fail (succeeded, or skipped), an unknown
-- one; nothing changes
SELECT regress.state() AS before \gset
SELECT pipeline.retry_job_task(:compile);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'compile', 'COMPILE');
SELECT pipeline.retry_job_task(:ship);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'ship', 'SHIP');
SELECT pipeline.retry_job_task(-1);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.retry_job_task(NULL);
\echo :LAST_ERROR_MESSAGE
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.retry_job_task(:unit);
\echo :LAST_ERROR_MESSAGE
ROLLBACK;
SELECT regress.state() = :'before' AS unchanged;

-- re-open it: the run is active again, unit is scheduled with its next
-- attempt, the skipped ship waits for its turn, lint (succeeded) stays
SELECT regress.last_event() AS ev2 \gset
SELECT stage, attempt, runner, message FROM pipeline.retry_job_task(:unit);
SELECT stage, message, end_at IS NULL AS end_reset FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM pg_temp.attempts(:run);
SELECT * FROM regress.events(:run, :ev2);
SELECT token_digest IS NULL AS token_revoked, end_at IS NULL AS end_reset FROM pipeline.job_task WHERE id = :unit;
-- the old token is refused
SELECT pipeline.update_job_task_status(:unit, 'active', :'unit_tok');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'unit', 'UNIT');
-- the run goes on to the end
SELECT * FROM regress.claim('rt-runner');
SELECT update_token <> :'unit_tok' AS new_token FROM regress.tok WHERE id = :unit;
SELECT regress.report(:run, 'test.unit', 'succeeded');
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'deploy.ship', 'succeeded');
SELECT * FROM pg_temp.attempts(:run);
SELECT regress.run_stage(:run);
-- a succeeded run has nothing to retry
SELECT pipeline.retry_job_task(:unit);
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- a failed task of an unfinished run
SELECT pipeline.define_pipeline('{"name": "rt_ignore", "stages": [
  {"name": "s", "tasks": [{"name": "optional", "job": "rt_plain", "ignore_failed": true},
                          {"name": "next", "job": "rt_plain"}]}]}') AS version;
SELECT pipeline.run_pipeline('rt_ignore') AS run \gset
SELECT regress.jt(:run, 's.optional') AS optional \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 's.optional', 'failed', 'optional failed');
SELECT * FROM pg_temp.attempts(:run);
SELECT regress.state() AS before \gset
SELECT pipeline.retry_job_task(:optional);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'optional', 'OPTIONAL', :'run', 'RUN');
SELECT regress.state() = :'before' AS unchanged;
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- siblings of a parallel stage
SELECT pipeline.run_pipeline('rt_manual') AS run \gset
SELECT regress.jt(:run, 'test.lint') AS lint \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'build.compile', 'succeeded');
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'build.package', 'succeeded');
SELECT * FROM regress.claim('rt-runner', 2);
SELECT regress.report(:run, 'test.unit', 'failed', 'unit failed');
SELECT regress.report(:run, 'test.lint', 'failed', 'lint failed');
SELECT * FROM pg_temp.attempts(:run);
-- retrying lint re-opens its failed sibling too (the stage runs again as a
-- whole); both are scheduled at once
SELECT stage FROM pipeline.retry_job_task(:lint);
SELECT * FROM pg_temp.attempts(:run);
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- a canceled run
SELECT pipeline.run_pipeline('rt_manual') AS run \gset
SELECT regress.jt(:run, 'build.compile') AS compile, regress.jt(:run, 'build.package') AS package \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:run, 'build.compile', 'succeeded');
SELECT (pipeline.cancel_pipeline_task(:run, 'stop it')).stage;
SELECT * FROM pg_temp.attempts(:run);
-- a canceled task is retried like a failed one: in a serial stage the task
-- and everything after it re-open, what succeeded before it stays
SELECT regress.last_event() AS ev3 \gset
SELECT stage, attempt FROM pipeline.retry_job_task(:package);
SELECT * FROM pg_temp.attempts(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.events(:run, :ev3);
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- a serialized pipeline
SELECT pipeline.define_pipeline('{"name": "rt_serial", "is_parallel": false, "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "rt_plain"}]}]}') AS version;
SELECT pipeline.run_pipeline('rt_serial') AS first_run \gset
SELECT regress.jt(:first_run, 's.t') AS first_t \gset
SELECT * FROM regress.claim('rt-runner');
SELECT regress.report(:first_run, 's.t', 'failed', 'bad');
-- the first run is finished, so a second one may start
SELECT pipeline.run_pipeline('rt_serial') AS second_run \gset
SELECT regress.run_stage(:second_run);
-- while it is unfinished, the first cannot be re-opened
SELECT regress.state() AS before \gset
SELECT pipeline.retry_job_task(:first_t);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'first_run', 'FIRST', :'second_run', 'SECOND');
SELECT regress.state() = :'before' AS unchanged;
-- once it is finished, it can
SELECT (pipeline.cancel_pipeline_task(:second_run)).stage;
SELECT stage, attempt FROM pipeline.retry_job_task(:first_t);
SELECT regress.run_stage(:first_run);
-- and now it holds the sequence: a new run is refused
SELECT pipeline.run_pipeline('rt_serial');
\echo :LAST_ERROR_SQLSTATE

SELECT regress.cancel_all();

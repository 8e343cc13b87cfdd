--
-- reap: pipeline.reap() fails running tasks that ran out of time (SPEC §9).
--
-- A task past its job's timeout (counted from start_at, or from claimed_at
-- while creating) is failed with "timeout after N s"; one silent (no
-- heartbeat or update) longer than pipeline.heartbeat_timeout is failed with
-- "no heartbeat for N s"; a canceling task that went silent becomes canceled.
-- The reaped task's token is revoked, retries apply, the run reacts as to any
-- failure.  reap() returns how many tasks it reaped.
--
-- Time is moved by setting start_at / heartbeat_at back (as the superuser).
-- heartbeat_timeout is set to an hour so that tasks left canceling by the
-- earlier tests (all a few seconds old) are never reaped here.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "rp_slow", "timeout": 60}') AS version;
SELECT pipeline.define_job('{"name": "rp_plain"}') AS version;
SELECT pipeline.define_job('{"name": "rp_retry", "timeout": 60, "retries": 1}') AS version;
SELECT pipeline.define_pipeline('{"name": "rp_pipe", "stages": [
  {"name": "one", "tasks": [{"name": "slow", "job": "rp_slow"}]},
  {"name": "two", "tasks": [{"name": "next", "job": "rp_plain"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "rp_quiet", "stages": [
  {"name": "s", "is_parallel": true, "tasks": [{"name": "x", "job": "rp_plain"}, {"name": "y", "job": "rp_plain"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "rp_again", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "rp_retry"}]}]}') AS version;

SHOW pipeline.heartbeat_timeout;
SET pipeline.heartbeat_timeout = '1h';
SHOW pipeline.heartbeat_timeout;

-- nothing to reap: 0, nothing changed
SELECT regress.state() AS before \gset
SELECT pipeline.reap();
SELECT regress.state() = :'before' AS unchanged;

-- ================================================================ timeout
SELECT pipeline.run_pipeline('rp_pipe') AS run \gset
SELECT regress.jt(:run, 'one.slow') AS slow \gset
SELECT * FROM regress.claim('rp-runner');
SELECT regress.report(:run, 'one.slow', 'active');
-- not yet past its timeout
UPDATE pipeline.job_task SET start_at = now() - interval '59 seconds' WHERE id = :slow;
SELECT pipeline.reap();
SELECT task, stage FROM regress.tasks(:run);
-- past it
UPDATE pipeline.job_task SET start_at = now() - interval '61 seconds' WHERE id = :slow;
SELECT regress.last_event() AS ev0 \gset
SELECT pipeline.reap();
SELECT * FROM regress.tasks(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.events(:run, :ev0);
SELECT token_digest IS NULL AS token_revoked, end_at IS NOT NULL AS ended FROM pipeline.job_task WHERE id = :slow;
-- the runner's late report is refused, the task stays failed
SELECT regress.state() AS before \gset
SELECT regress.report(:run, 'one.slow', 'succeeded');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'slow', 'SLOW');
SELECT pipeline.heartbeat(:slow, (SELECT update_token FROM regress.tok WHERE id = :slow));
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;
-- reaped once only
SELECT pipeline.reap();

-- a task claimed but never started: its timeout runs from the claim
SELECT pipeline.run_pipeline('rp_pipe') AS run \gset
SELECT regress.jt(:run, 'one.slow') AS slow \gset
SELECT * FROM regress.claim('rp-runner');
UPDATE pipeline.job_task SET claimed_at = now() - interval '2 minutes' WHERE id = :slow;
SELECT pipeline.reap();
SELECT * FROM regress.tasks(:run);

-- ================================================================ no heartbeat
SELECT pipeline.run_pipeline('rp_quiet') AS run \gset
SELECT regress.jt(:run, 's.x') AS x, regress.jt(:run, 's.y') AS y \gset
SELECT * FROM regress.claim('rp-runner', 2);
SELECT regress.report(:run, 's.x', 'active');
SELECT regress.report(:run, 's.y', 'active');
-- both silent for two hours, but y sends a heartbeat now: it stays alive
UPDATE pipeline.job_task SET heartbeat_at = now() - interval '2 hours' WHERE id IN (:x, :y);
SELECT pipeline.heartbeat(:y, (SELECT update_token FROM regress.tok WHERE id = :y));
SELECT regress.last_event() AS ev1 \gset
SELECT pipeline.reap();
SELECT * FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev1);
-- a status update counts as a sign of life too
SELECT pipeline.run_pipeline('rp_quiet') AS run \gset
SELECT regress.jt(:run, 's.x') AS x, regress.jt(:run, 's.y') AS y \gset
SELECT * FROM regress.claim('rp-runner', 2);
UPDATE pipeline.job_task SET heartbeat_at = now() - interval '2 hours' WHERE id IN (:x, :y);
SELECT regress.report(:run, 's.x', 'active');
SELECT pipeline.reap();
SELECT task, stage, message FROM regress.tasks(:run);
-- 0 disables the heartbeat check
SET pipeline.heartbeat_timeout = 0;
UPDATE pipeline.job_task SET heartbeat_at = now() - interval '2 days' WHERE id = :x;
SELECT pipeline.reap();
SELECT task, stage FROM regress.tasks(:run);
SET pipeline.heartbeat_timeout = '1h';
-- (x finishes: the run failed, nothing of it is left running)
SELECT regress.report(:run, 's.x', 'succeeded');
SELECT regress.cancel_all();

-- ================================================================ canceling and silent
SELECT pipeline.run_pipeline('rp_quiet') AS run \gset
SELECT regress.jt(:run, 's.x') AS x \gset
SELECT * FROM regress.claim('rp-runner', 2);
SELECT regress.report(:run, 's.x', 'active');
SELECT (pipeline.cancel_pipeline_task(:run, 'stop')).stage;
SELECT task, stage FROM regress.tasks(:run);
-- the runner of x never answers the cancel: x becomes canceled
UPDATE pipeline.job_task SET heartbeat_at = now() - interval '2 hours' WHERE id = :x;
SELECT regress.last_event() AS ev2 \gset
SELECT pipeline.reap();
SELECT * FROM regress.tasks(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.events(:run, :ev2);
SELECT token_digest IS NULL AS token_revoked FROM pipeline.job_task WHERE id = :x;
SELECT regress.report(:run, 's.x', 'canceled');
\echo :LAST_ERROR_SQLSTATE

-- ================================================================ retries apply
SELECT pipeline.run_pipeline('rp_again') AS run \gset
SELECT regress.jt(:run, 's.t') AS t \gset
SELECT * FROM regress.claim('rp-runner');
SELECT update_token AS tok1 FROM regress.tok WHERE id = :t \gset
SELECT regress.report(:run, 's.t', 'active');
UPDATE pipeline.job_task SET start_at = now() - interval '5 minutes' WHERE id = :t;
SELECT regress.last_event() AS ev3 \gset
SELECT pipeline.reap();
-- failed, then back to scheduling for its second attempt, the run goes on
SELECT stage, attempt, runner, message, token_digest IS NULL AS token_revoked, retry_at > now() AS retry_later
  FROM pipeline.job_task WHERE id = :t;
SELECT * FROM regress.events(:run, :ev3);
SELECT regress.run_stage(:run);
SELECT pipeline.update_job_task_status(:t, 'succeeded', :'tok1');
\echo :LAST_ERROR_SQLSTATE
-- the second attempt times out too: no retry left, the run fails
UPDATE pipeline.job_task SET retry_at = now() WHERE id = :t;
SELECT * FROM regress.claim('rp-runner');
SELECT regress.report(:run, 's.t', 'active');
UPDATE pipeline.job_task SET start_at = now() - interval '5 minutes' WHERE id = :t;
SELECT pipeline.reap();
SELECT stage, attempt, message FROM pipeline.job_task WHERE id = :t;
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;

-- ---------------------------------------------------------------- no retry once the run is over
SELECT pipeline.define_pipeline('{"name": "rp_par", "stages": [{"name": "s", "is_parallel": true, "tasks": [
  {"name": "t", "job": "rp_retry"}, {"name": "u", "job": "rp_plain"}]}]}') AS version;
SELECT pipeline.run_pipeline('rp_par') AS run \gset
SELECT regress.jt(:run, 's.t') AS t \gset
SELECT * FROM regress.claim('rp-runner', 2);
SELECT regress.report(:run, 's.t', 'active');
SELECT regress.report(:run, 's.u', 'failed', 'u broke');
SELECT regress.run_stage(:run);
UPDATE pipeline.job_task SET start_at = now() - interval '5 minutes' WHERE id = :t;
SELECT pipeline.reap();
-- the run is over: t's failure is final, not retried
SELECT * FROM regress.tasks(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
-- (should change nothing: keeps a task wrongly handed back from reaching later tests)
UPDATE pipeline.job_task SET stage = 'canceled' WHERE pipeline_task_id = :run AND stage IN ('scheduling', 'creating');

-- ================================================================ several at once
SELECT pipeline.run_pipeline('rp_quiet') AS run1 \gset
SELECT pipeline.run_pipeline('rp_quiet') AS run2 \gset
SELECT count(*) AS claimed FROM regress.claim('rp-runner', 4);
UPDATE pipeline.job_task SET heartbeat_at = now() - interval '2 hours'
 WHERE pipeline_task_id IN (:run1, :run2);
SELECT pipeline.reap() AS reaped;
SELECT CASE pipeline_task_id WHEN :run1 THEN 'run1' ELSE 'run2' END AS run, task_name, stage, message
  FROM pipeline.job_task WHERE pipeline_task_id IN (:run1, :run2) ORDER BY pipeline_task_id, task_index;
SELECT stage, count(*) FROM pipeline.pipeline_task WHERE id IN (:run1, :run2) GROUP BY stage;
SELECT pipeline.reap() AS reaped_again;

-- READ COMMITTED only
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.reap();
\echo :LAST_ERROR_MESSAGE
ROLLBACK;

RESET pipeline.heartbeat_timeout;
SELECT regress.cancel_all();

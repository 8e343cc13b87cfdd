--
-- status: update_job_task_status() and heartbeat(), the runners' reports
-- (SPEC §4, §7).
--
-- The order of the checks: unknown id (P0002), then the token (28000, counted
-- in pipeline.rejected_token_seq, never bypassed by force), then the state
-- (55000 for a complete task unless forced; a canceling task reported as
-- running stays canceling).  Every refusal changes nothing.
\set VERBOSITY sqlstate

-- rejections counted so far (the sequence starts unused)
CREATE FUNCTION pg_temp.rejections() RETURNS bigint LANGUAGE sql AS $$
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pipeline.rejected_token_seq
$$;

SELECT pipeline.define_job('{"name": "st_job", "params": [
  {"name": "SECRET", "sensitive": true, "default": "hunter2"}, {"name": "MODE", "default": "fast"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "st_pipe", "stages": [
  {"name": "first", "tasks": [{"name": "a", "job": "st_job"}]},
  {"name": "second", "tasks": [{"name": "b", "job": "st_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('st_pipe') AS run \gset
SELECT regress.jt(:run, 'first.a') AS a, regress.jt(:run, 'second.b') AS b \gset
SELECT id = :a AS claimed_a, update_token AS tok
  FROM pipeline.claim_job_tasks('st-runner') \gset
SELECT :'claimed_a' AS claimed_a;
SELECT task, stage, runner FROM regress.tasks(:run);

-- ---------------------------------------------------------------- refusals before any change
SELECT regress.state() AS before \gset
SELECT pg_temp.rejections() AS rej0 \gset
-- unknown id
SELECT pipeline.update_job_task_status(-1, 'active', :'tok');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.heartbeat(-1, :'tok');
\echo :LAST_ERROR_MESSAGE
-- null id or stage
SELECT pipeline.update_job_task_status(NULL, 'active', :'tok');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.update_job_task_status(:a, NULL, :'tok');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
-- a wrong token, a missing one, another task's
SELECT pipeline.update_job_task_status(:a, 'active', 'not-the-token');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', NULL);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', upper(:'tok'));
\echo :LAST_ERROR_SQLSTATE
-- b was never claimed: it has no token at all
SELECT pipeline.update_job_task_status(:b, 'active', :'tok');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'b', 'B');
-- force does not bypass the token
SELECT pipeline.update_job_task_status(:a, 'succeeded', 'not-the-token',
                                       force_update_status => true, force_trigger_pipeline => true);
\echo :LAST_ERROR_SQLSTATE
-- heartbeats are guarded the same way
SELECT pipeline.heartbeat(:a, 'not-the-token');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.heartbeat(:a, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.heartbeat(NULL, :'tok');
\echo :LAST_ERROR_MESSAGE
-- bad arguments, even with the right token
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', extension => '[1]');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', runtime_envs => '["X"]');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', runtime_envs => '{"VERSION": 2}');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', runtime_envs => '{"OK": "1", "NESTED": {"x": "1"}}');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', runtime_envs => '{"1BAD": "x"}');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', runtime_envs => '{"bad-name": "x"}');
\echo :LAST_ERROR_SQLSTATE
-- reports re-read rows after lock waits: READ COMMITTED only
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.update_job_task_status(:a, 'active', :'tok');
\echo :LAST_ERROR_MESSAGE
ROLLBACK;
-- nothing changed; each token refusal was counted (7 of them), the others were not
SELECT regress.state() = :'before' AS unchanged, pg_temp.rejections() - :rej0 AS rejections_counted;
SELECT task, stage FROM regress.tasks(:run);

-- ---------------------------------------------------------------- active
SELECT regress.last_event() AS ev0 \gset
-- the returned row is the updated task: no token digest, sensitive params masked
SELECT stage, message, detail, extension, runtime_envs, params, token_digest IS NULL AS no_digest,
       start_at IS NOT NULL AS started, end_at IS NULL AS not_ended
  FROM pipeline.update_job_task_status(:a, 'active', :'tok', message => 'running',
                                       detail => '{"step": 1}', extension => '{"pid": 42}');
SELECT start_at AS a_start FROM pipeline.job_task WHERE id = :a \gset
-- a report of the same stage changes no stage: message, detail and extension
-- apply, extension keys are merged, start_at stays, no event
SELECT stage, message, detail, extension
  FROM pipeline.update_job_task_status(:a, 'active', :'tok', message => 'still running',
                                       detail => '{"step": 2}', extension => '{"host": "h1", "pid": 43}');
-- NULL message and detail keep the old ones
SELECT stage, message, detail, extension
  FROM pipeline.update_job_task_status(:a, 'active', :'tok');
SELECT start_at = :'a_start' AS start_at_kept FROM pipeline.job_task WHERE id = :a;
SELECT * FROM regress.events(:run, :ev0);

-- heartbeat: records liveness, nothing else
SELECT heartbeat_at AS hb0, regress.last_event() AS ev_hb FROM pipeline.job_task WHERE id = :a \gset
SELECT pipeline.heartbeat(:a, :'tok');
SELECT heartbeat_at > :'hb0' AS heartbeat_moved, stage, message FROM pipeline.job_task WHERE id = :a;
SELECT regress.last_event() = :ev_hb AS no_event;

-- ---------------------------------------------------------------- runtime envs
-- Names starting with an upper-case letter or '_' go to the run and so reach
-- every later job; the others stay on the job task as its output.
SELECT runtime_envs
  FROM pipeline.update_job_task_status(:a, 'active', :'tok',
       runtime_envs => '{"VERSION": "1.2.3", "_BUILD": "7", "artifact": "app.tgz", "lowerCase": "x"}');
-- reports merge: a later report adds and overrides keys
SELECT runtime_envs
  FROM pipeline.update_job_task_status(:a, 'active', :'tok', runtime_envs => '{"VERSION": "1.2.4", "Z": ""}');
SELECT runtime_envs AS run_envs FROM pipeline.pipeline_tasks WHERE id = :run;

-- ---------------------------------------------------------------- complete
SELECT stage, message, end_at IS NOT NULL AS ended
  FROM pipeline.update_job_task_status(:a, 'succeeded', :'tok', message => 'done');
SELECT end_at AS a_end FROM pipeline.job_task WHERE id = :a \gset
SELECT task, stage, message FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev0);

-- a complete task changes only with force_update_status
SELECT regress.state() AS before \gset
SELECT pg_temp.rejections() AS rej0 \gset
SELECT pipeline.update_job_task_status(:a, 'failed', :'tok', message => 'late failure');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT pipeline.update_job_task_status(:a, 'succeeded', :'tok', message => 'again');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.update_job_task_status(:a, 'active', :'tok', force_trigger_pipeline => true);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.heartbeat(:a, :'tok');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'a', 'A');
SELECT regress.state() = :'before' AS unchanged, pg_temp.rejections() - :rej0 AS rejections_counted;

-- the next job gets the run's runtime envs (upper-case and '_' names only)
-- on top of its params, and the system params; a runner gets the real value
-- of a sensitive param
SELECT id = :b AS claimed_b, update_token AS tok_b, params AS b_params
  FROM pipeline.claim_job_tasks('st-runner') \gset
SELECT :'claimed_b' AS claimed_b;
SELECT key, CASE WHEN key IN ('JOB_TASK_ID', 'PIPELINE_TASK_ID', 'JOB_TASK_UPDATE_TOKEN') THEN '(system)' ELSE value END AS value
  FROM jsonb_each_text(:'b_params') ORDER BY key;
SELECT (:'b_params'::jsonb)->>'JOB_TASK_ID' = :'b' AS job_task_id_ok,
       (:'b_params'::jsonb)->>'PIPELINE_TASK_ID' = :'run' AS pipeline_task_id_ok,
       (:'b_params'::jsonb)->>'JOB_TASK_UPDATE_TOKEN' = :'tok_b' AS token_ok;

-- a's token no longer drives b, and b's does not drive a
SELECT pipeline.update_job_task_status(:b, 'active', :'tok');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.update_job_task_status(:a, 'succeeded', :'tok_b', force_update_status => true);
\echo :LAST_ERROR_SQLSTATE
SELECT stage FROM pipeline.update_job_task_status(:b, 'active', :'tok_b');
SELECT stage FROM pipeline.update_job_task_status(:b, 'succeeded', :'tok_b');
SELECT regress.run_stage(:run) AS run_stage;

-- force_update_status changes a complete task, with the right token:
-- the stage change is an event; end_at keeps the time it first completed
SELECT regress.last_event() AS ev1 \gset
SELECT stage, message FROM pipeline.update_job_task_status(:a, 'failed', :'tok', message => 'found broken later',
                                                          force_update_status => true);
SELECT end_at = :'a_end' AS end_at_kept FROM pipeline.job_task WHERE id = :a;
SELECT * FROM regress.events(:run, :ev1);
-- the finished run is not reopened (that is what retry is for)
SELECT regress.run_stage(:run) AS run_stage;

-- ---------------------------------------------------------------- canceling
-- A canceling task stays canceling until it is reported finished: a late
-- "active" (a claim racing the cancel) gets the row back, still canceling,
-- with no event, so the runner knows to stop the command.
SELECT pipeline.run_pipeline('st_pipe') AS run2 \gset
SELECT regress.jt(:run2, 'first.a') AS a2 \gset
SELECT update_token AS tok2 FROM pipeline.claim_job_tasks('st-runner') \gset
SELECT stage FROM pipeline.update_job_task_status(:a2, 'active', :'tok2');
SELECT (pipeline.cancel_pipeline_task(:run2, 'stop it')).stage AS run_stage;
SELECT task, stage, message FROM regress.tasks(:run2);
SELECT regress.last_event() AS ev_c \gset
SELECT stage, message FROM pipeline.update_job_task_status(:a2, 'active', :'tok2');
SELECT stage, message FROM pipeline.update_job_task_status(:a2, 'creating', :'tok2');
SELECT count(*) AS events_written FROM pipeline.event WHERE id > :ev_c;
-- heartbeats still count while it stops
SELECT pipeline.heartbeat(:a2, :'tok2');
SELECT stage, message FROM pipeline.update_job_task_status(:a2, 'canceled', :'tok2', message => 'stopped');
SELECT task, stage, message FROM regress.tasks(:run2);
SELECT regress.run_stage(:run2) AS run_stage;

SELECT regress.cancel_all();

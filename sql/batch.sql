--
-- batch: the batched runner protocol (SPEC §16, issue 12 item 3):
-- claim_job_tasks(..., start => true) and update_job_task_statuses(reports).
--
\set VERBOSITY sqlstate
-- runs earlier tests left open hold tasks any runner may claim: cancel them
SELECT regress.cancel_all() IS NOT NULL AS clean_start;

-- the job asks for label bt, so these claims take this test's tasks only
SELECT pipeline.define_job('{"name": "bt_job", "command": "true", "labels": {"bt": "1"}}') AS version;
SELECT pipeline.define_pipeline('{"name": "bt_par", "stages": [
  {"name": "a", "is_parallel": true, "tasks": [{"name": "t1", "job": "bt_job"}, {"name": "t2", "job": "bt_job"},
                                              {"name": "t3", "job": "bt_job"}]},
  {"name": "b", "tasks": [{"name": "u", "job": "bt_job"}]}]}') AS version;

-- ---------------------------------------------------------------- start => true
SELECT pipeline.run_pipeline('bt_par') AS run \gset
SELECT regress.last_event() AS ev0 \gset
WITH c AS (SELECT * FROM pipeline.claim_job_tasks('bt-runner', 10, '{"bt": "1"}', start => true)),
     kept AS (INSERT INTO regress.tok SELECT c.id, c.update_token FROM c RETURNING id)
SELECT count(*) AS claimed FROM kept;
-- straight to active, start_at set, the runner recorded: one event each, scheduling -> active
SELECT task, stage, runner FROM regress.tasks(:run);
SELECT count(*) FILTER (WHERE start_at IS NOT NULL AND claimed_at IS NOT NULL) AS started
  FROM pipeline.job_task WHERE pipeline_task_id = :run AND stage_name = 'a';
SELECT * FROM regress.events(:run, :ev0);
-- the default (and start => false) still claims into creating
SELECT pipeline.run_pipeline('bt_par') AS run_b \gset
SELECT count(*) AS claimed FROM regress.claim('bt-runner', 1, '{"bt": "1"}');
SELECT count(*) AS claimed_false FROM pipeline.claim_job_tasks('bt-runner', 1, '{"bt": "1"}', false);
SELECT task, stage FROM regress.tasks(:run_b) WHERE stage <> 'pending';
-- NULL start means false
SELECT count(*) AS claimed_null FROM pipeline.claim_job_tasks('bt-runner', 1, '{"bt": "1"}', NULL);
SELECT task, stage FROM regress.tasks(:run_b) WHERE stage <> 'pending';

-- ---------------------------------------------------------------- one batch, good and refused reports
SELECT rejected_tokens AS rejected0 FROM pipeline.stats \gset
SELECT regress.last_event() AS ev1 \gset
SELECT regress.jt(:run, 'a.t1') AS t1, regress.jt(:run, 'a.t2') AS t2, regress.jt(:run, 'a.t3') AS t3 \gset
SELECT update_token AS tok1 FROM regress.tok WHERE id = :t1 \gset
SELECT update_token AS tok2 FROM regress.tok WHERE id = :t2 \gset
SELECT update_token AS tok3 FROM regress.tok WHERE id = :t3 \gset
-- t1 finished earlier (a complete task refuses: 55000)
SELECT regress.report(:run, 'a.t1', 'succeeded');
-- in array order: t3 succeeds; an unknown id; t2 with a wrong token; t1 again;
-- a stage that is no stage; an unknown key; no token.  Answered in id order.
SELECT regress.err(coalesce(b.id::text, '-') || ' ' || coalesce(b.stage::text, '-') || ' ' ||
                   coalesce(b.sqlstate, '-') || ' ' || coalesce(b.message, '-'),
                   :t1::text, 'T1', :t2::text, 'T2', :t3::text, 'T3') AS result
  FROM pipeline.update_job_task_statuses(jsonb_build_array(
    jsonb_build_object('id', :t3, 'stage', 'succeeded', 'update_token', :'tok3', 'message', 'fine'),
    jsonb_build_object('id', 999999999, 'stage', 'succeeded', 'update_token', :'tok3'),
    jsonb_build_object('id', :t2, 'stage', 'failed', 'update_token', repeat('0', 48)),
    jsonb_build_object('id', :t1, 'stage', 'failed', 'update_token', :'tok1'),
    jsonb_build_object('id', :t2, 'stage', 'done', 'update_token', :'tok2'),
    jsonb_build_object('id', :t2, 'stage', 'failed', 'update_token', :'tok2', 'mesage', 'typo'),
    jsonb_build_object('id', :t2, 'stage', 'failed'))) b;
-- the wrong token is counted like a single call's; only t3 changed
SELECT rejected_tokens - :rejected0 AS more_rejected FROM pipeline.stats;
SELECT task, stage, message FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev1);

-- ---------------------------------------------------------------- a batch finishes the stage: the next one starts once
SELECT regress.last_event() AS ev2 \gset
SELECT b.id = :t2 AS is_t2, b.stage, b.sqlstate, b.message
  FROM pipeline.update_job_task_statuses(jsonb_build_array(
    jsonb_build_object('id', :t2, 'stage', 'active', 'update_token', :'tok2'),
    jsonb_build_object('id', :t2, 'stage', 'succeeded', 'update_token', :'tok2',
                       'detail', '{"exit": 0}'::jsonb, 'runtime_envs', '{"VERSION": "1.2", "out": "x"}'::jsonb,
                       'extension', '{"k": "v"}'::jsonb))) b;
-- same id twice: both applied, in array order; the run's envs got VERSION only
SELECT * FROM regress.events(:run, :ev2);
SELECT detail, runtime_envs, extension FROM pipeline.job_task WHERE id = :t2;
SELECT runtime_envs FROM pipeline.pipeline_task WHERE id = :run;
SELECT task, stage FROM regress.tasks(:run);

-- ---------------------------------------------------------------- a refused runtime env refuses that report only
SELECT regress.claim('bt-runner', 1, '{"bt": "1"}') AS claimed;
SELECT regress.jt(:run, 'b.u') AS u \gset
SELECT update_token AS toku FROM regress.tok WHERE id = :u \gset
SELECT regress.state() AS before \gset
SELECT b.id = :u AS is_u, b.stage, b.sqlstate, regress.err(b.message, :u::text, 'U') AS message
  FROM pipeline.update_job_task_statuses(jsonb_build_array(
    jsonb_build_object('id', :u, 'stage', 'succeeded', 'update_token', :'toku',
                       'runtime_envs', '{"PATH": "/evil"}'::jsonb),
    jsonb_build_object('id', :u, 'stage', 'succeeded', 'update_token', :'toku',
                       'extension', '[1]'::jsonb))) b;
SELECT regress.state() = :'before' AS unchanged;
-- reported for real: the run succeeds
SELECT b.stage, b.sqlstate FROM pipeline.update_job_task_statuses(jsonb_build_array(
    jsonb_build_object('id', :u, 'stage', 'succeeded', 'update_token', :'toku', 'message', null))) b;
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- malformed calls: one error, nothing applied
SELECT pipeline.update_job_task_statuses(NULL);
SELECT pipeline.update_job_task_statuses('{"id": 1}');
SELECT pipeline.update_job_task_statuses('[1]');
SELECT pipeline.update_job_task_statuses('[{"stage": "failed"}]');
SELECT pipeline.update_job_task_statuses('[{"id": 1.5, "stage": "failed"}]');
SELECT pipeline.update_job_task_statuses('[{"id": -3, "stage": "failed"}]');
SELECT pipeline.update_job_task_statuses((SELECT jsonb_agg(jsonb_build_object('id', i)) FROM generate_series(1, 1001) i));
SELECT count(*) AS empty_batch FROM pipeline.update_job_task_statuses('[]');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.update_job_task_statuses('[]');
ROLLBACK;

-- ---------------------------------------------------------------- the caller's transaction
SELECT pipeline.run_pipeline('bt_par') AS run2 \gset
WITH c AS (SELECT * FROM pipeline.claim_job_tasks('bt-runner', 3, '{"bt": "1"}', start => true)),
     kept AS (INSERT INTO regress.tok SELECT c.id, c.update_token FROM c
              ON CONFLICT (id) DO UPDATE SET update_token = excluded.update_token RETURNING id)
SELECT count(*) AS claimed FROM kept;
BEGIN;
SELECT count(*) FILTER (WHERE b.sqlstate IS NULL) AS applied
  FROM pipeline.update_job_task_statuses((
    SELECT jsonb_agg(jsonb_build_object('id', k.id, 'stage', 'succeeded', 'update_token', k.update_token))
      FROM regress.tok k JOIN pipeline.job_task t USING (id) WHERE t.pipeline_task_id = :run2)) b;
SELECT task, stage FROM regress.tasks(:run2);
ROLLBACK;
SELECT task, stage FROM regress.tasks(:run2);
SELECT regress.cancel_all() IS NOT NULL AS cleaned_up;

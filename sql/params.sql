--
-- params: sensitive params (SPEC §7): "shown as ****** in every view, event
-- payload and hook body".  A runner gets the real value from
-- claim_job_tasks(); nobody else ever sees it: not in pipeline.job_tasks,
-- pipeline.pipeline_tasks, the rows the functions return, plan(), or
-- pipeline.event.
--
-- Each secret below is a distinct string, so a leak anywhere is found by a
-- plain text search of what is shown (pg_temp.leaks()).
\set VERBOSITY sqlstate

-- Where a secret shows: every place people or listeners read
CREATE FUNCTION pg_temp.leaks(secret text) RETURNS TABLE (place text, rows bigint) LANGUAGE sql AS $$
SELECT 'pipeline.job_tasks', count(*) FROM pipeline.job_tasks v WHERE strpos(v::text, secret) > 0
UNION ALL
SELECT 'pipeline.pipeline_tasks', count(*) FROM pipeline.pipeline_tasks v WHERE strpos(v::text, secret) > 0
UNION ALL
SELECT 'pipeline.event', count(*) FROM pipeline.event v WHERE strpos(v::text, secret) > 0
$$;

SELECT pipeline.define_job('{"name": "pa_deploy", "command": "./deploy", "params": [
  {"name": "PASSWORD", "required": true, "sensitive": true},
  {"name": "API_KEY", "sensitive": true, "default": "default-key-111"},
  {"name": "TARGET", "default": "prod"}]}') AS version;
SELECT pipeline.define_job('{"name": "pa_notify", "command": "./notify", "params": [{"name": "CHANNEL", "default": "#ci"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "pa_pipe", "stages": [
  {"name": "ship", "tasks": [{"name": "deploy", "job": "pa_deploy"}]},
  {"name": "tell", "tasks": [{"name": "notify", "job": "pa_notify"}]}]}') AS version;

-- ---------------------------------------------------------------- declared sensitive, given for the run
SELECT pipeline.run_pipeline('pa_pipe', '{"PASSWORD": "pw-run-222", "CHANNEL": "#deploys"}') AS run \gset
-- stored in plain for the runner, shown masked
SELECT params->>'PASSWORD' = 'pw-run-222' AS stored_plain, sensitive @> '{PASSWORD,API_KEY}' AS names_kept
  FROM pipeline.job_task WHERE id = regress.jt(:run, 'ship.deploy');
SELECT stage_name || '.' || task_name AS task, params
  FROM pipeline.job_tasks WHERE pipeline_task_id = :run ORDER BY stage_index, task_index;
SELECT params FROM pipeline.pipeline_tasks WHERE id = :run;
-- next_run() and update_job_task_status() return masked rows
SELECT update_token AS tok, params AS claimed FROM pipeline.claim_job_tasks('pa-runner') \gset
SELECT (:'claimed'::jsonb)->>'PASSWORD' AS runner_gets_password, (:'claimed'::jsonb)->>'API_KEY' AS runner_gets_key;
SELECT params FROM pipeline.update_job_task_status(regress.jt(:run, 'ship.deploy'), 'active', :'tok');
-- runtime envs named like a sensitive param are masked too
SELECT runtime_envs FROM pipeline.update_job_task_status(regress.jt(:run, 'ship.deploy'), 'active', :'tok',
    runtime_envs => '{"API_KEY": "rotated-key-333", "URL": "https://app"}');
SELECT runtime_envs FROM pipeline.job_tasks WHERE id = regress.jt(:run, 'ship.deploy');
SELECT runtime_envs FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT stage FROM pipeline.update_job_task_status(regress.jt(:run, 'ship.deploy'), 'succeeded', :'tok');
-- the run param PASSWORD reaches the notify task too (run params go to every
-- task): it is the same secret there, although pa_notify does not declare it
SELECT params->>'PASSWORD' = 'pw-run-222' AS notify_gets_it
  FROM pipeline.job_task WHERE id = regress.jt(:run, 'tell.notify');
SELECT strpos(params::text, 'pw-run-222') = 0 AS masked_on_notify
  FROM pipeline.job_tasks WHERE id = regress.jt(:run, 'tell.notify');
-- (its runner hands it back, so that next_run() shows it)
SELECT update_token AS tok FROM pipeline.claim_job_tasks('pa-runner') \gset
SELECT stage, strpos(r::text, 'pw-run-222') = 0 AS masked_in_returned_row
  FROM pipeline.update_job_task_status(regress.jt(:run, 'tell.notify'), 'pending', :'tok') r;
SELECT task_name, strpos(r::text, 'pw-run-222') = 0 AS masked_in_next_run FROM pipeline.next_run(:run) r;
-- nowhere to be seen
SELECT * FROM pg_temp.leaks('pw-run-222');
SELECT * FROM pg_temp.leaks('default-key-111');
SELECT * FROM pg_temp.leaks('rotated-key-333');
-- not in the row cancel_pipeline_task() returns either
SELECT strpos(p::text, 'pw-run-222') = 0 AS masked_in_cancel_result,
       strpos(p::text, 'rotated-key-333') = 0 AS envs_masked_in_cancel_result
  FROM pipeline.cancel_pipeline_task(:run) p;

-- ---------------------------------------------------------------- given for one task, as "stage.task.NAME"
SELECT pipeline.run_pipeline('pa_pipe', '{"ship.deploy.PASSWORD": "pw-scoped-444"}') AS run \gset
SELECT params FROM pipeline.job_tasks WHERE id = regress.jt(:run, 'ship.deploy');
SELECT strpos(params::text, 'pw-scoped-444') = 0 AS masked_on_run FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT count(*) AS payloads_with_secret FROM pipeline.event
 WHERE pipeline_task_id = :run AND strpos(payload::text, 'pw-scoped-444') > 0;
SELECT * FROM pg_temp.leaks('pw-scoped-444');
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- plan()
SELECT task_name, params FROM pipeline.plan('pa_pipe', '{"ship.deploy.PASSWORD": "pw-plan-555"}');
SELECT count(*) AS plan_rows_with_secret FROM pipeline.plan('pa_pipe', '{"PASSWORD": "pw-plan-666"}') p
 WHERE strpos(p::text, 'pw-plan-666') > 0;

-- ---------------------------------------------------------------- definitions
-- The default of a sensitive param is a secret too.  The table keeps it (runs
-- need it); the view people read, pipeline.jobs, must not show it.
SELECT definition->'params'->1->>'default' = 'default-key-111' AS stored
  FROM pipeline.job WHERE name = 'pa_deploy';
SELECT strpos(definition::text, 'default-key-111') = 0 AS masked_in_jobs_view
  FROM pipeline.jobs WHERE name = 'pa_deploy';

-- ---------------------------------------------------------------- mask_params()
SELECT pipeline.mask_params('{"A": "1", "B": "2"}', '{B}') AS one,
       pipeline.mask_params('{"A": "1"}', '{}') AS none,
       pipeline.mask_params('{"A": "1"}', '{C}') AS absent,
       pipeline.mask_params(NULL, '{A}') AS null_params;

-- ---------------------------------------------------------------- all secrets of this test, everywhere
SELECT s.secret, l.place, l.rows
  FROM unnest(ARRAY['pw-run-222', 'default-key-111', 'rotated-key-333', 'pw-scoped-444']) AS s(secret),
       pg_temp.leaks(s.secret) l
 WHERE l.rows > 0;
SELECT regress.cancel_all();

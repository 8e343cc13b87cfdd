--
-- redaction: secrets in the rows the API returns and in the views (issue 9
-- items 3 and 4; SPEC §7 "sensitive params are shown as ****** in every
-- view").  Hook secrets, header values (Authorization), URL tokens (query
-- string, user info), sensitive run_params and inline jobs' sensitive
-- defaults never reach a row returned by update_job_task_status,
-- audit_job_task, confirm_job_task, retry_job_task, next_run or
-- cancel_pipeline_task, nor any view.
--
-- Each secret is a distinct string, so pg_temp.leaked() finds a leak by a
-- plain text search of whatever is shown.
\set VERBOSITY sqlstate

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_red_auditor;
RESET client_min_messages;
CREATE ROLE regress_red_auditor;
GRANT USAGE ON SCHEMA pipeline TO regress_red_auditor;
GRANT EXECUTE ON FUNCTION pipeline.audit_job_task(bigint, boolean, text),
                          pipeline.confirm_job_task(bigint, boolean, text)
   TO regress_red_auditor;

-- Which of the secrets below a text shows
CREATE FUNCTION pg_temp.leaked(shown text) RETURNS text LANGUAGE sql AS $$
SELECT coalesce(string_agg(s, ', ' ORDER BY s), 'none')
  FROM unnest(ARRAY['hook-secret-AAA', 'auth-BBB', 'qs-token-CCC', 'task-secret-DDD',
                    'task-auth-EEE', 'robot-token-FFF', 'userpw-GGG', 'runparam-key-555',
                    'inline-default-666', 'inline-run-777', 'job-default-888']) AS s
 WHERE strpos(shown, s) > 0
$$;

SELECT pipeline.define_job('{"name": "red_deploy", "command": "./deploy", "params": [
  {"name": "DEPLOY_KEY", "sensitive": true, "default": "job-default-888"},
  {"name": "TARGET", "default": "prod"}]}') AS version;
SELECT pipeline.define_pipeline($${"name": "red_pipe",
  "webhooks": [{"url": "https://hooks.example.com/ci?token=qs-token-CCC", "secret": "hook-secret-AAA",
                "headers": {"Authorization": "Bearer auth-BBB", "X-Team": "core"}},
               {"url": "https://ci:userpw-GGG@hooks.example.com/plain"}],
  "im_robot_notify": [{"url": "https://oapi.dingtalk.com/robot/send?access_token=robot-token-FFF"}],
  "stages": [
    {"name": "ship", "tasks": [
      {"name": "deploy", "job": "red_deploy", "run_params": {"DEPLOY_KEY": "runparam-key-555", "TARGET": "eu"},
       "audit": {"enable": true, "auditors": ["regress_red_auditor"]},
       "confirm": {"enable": true, "checkers": ["regress_red_auditor"]},
       "webhooks": [{"url": "https://hooks.example.com/task", "secret": "task-secret-DDD",
                     "headers": {"Authorization": "task-auth-EEE"}}]}]},
    {"name": "check", "tasks": [
      {"name": "smoke", "job": {"command": "./smoke", "params": [
          {"name": "SMOKE_PW", "sensitive": true, "default": "inline-default-666"}]},
       "run_params": {"SMOKE_PW": "inline-run-777"},
       "webhooks": [{"url": "https://hooks.example.com/smoke?sig=task-secret-DDD"}]}]}]}$$) AS version;

-- ---------------------------------------------------------------- the views
-- pipeline.pipelines: hook targets redacted, sensitive run_params (named by
-- the referenced job or by an inline job) and inline defaults masked;
-- the rest is shown as defined
SELECT pg_temp.leaked(v::text) AS leaked_by_pipelines FROM pipeline.pipelines v WHERE name = 'red_pipe';
SELECT jsonb_pretty(jsonb_build_object(
         'webhooks', definition->'webhooks', 'im_robot_notify', definition->'im_robot_notify',
         'deploy_run_params', definition#>'{stages,0,tasks,0,run_params}',
         'deploy_webhooks', definition#>'{stages,0,tasks,0,webhooks}',
         'smoke_job_params', definition#>'{stages,1,tasks,0,job,params}',
         'smoke_run_params', definition#>'{stages,1,tasks,0,run_params}',
         'smoke_webhooks', definition#>'{stages,1,tasks,0,webhooks}')) AS shown
  FROM pipeline.pipelines WHERE name = 'red_pipe';
-- the stored definition keeps them all (the engine needs them)
SELECT pg_temp.leaked(definition::text) AS kept_in_table FROM pipeline.pipeline WHERE name = 'red_pipe';
SELECT pg_temp.leaked(v::text) AS leaked_by_jobs FROM pipeline.jobs v WHERE name = 'red_deploy';

-- ---------------------------------------------------------------- rows the API returns
SELECT pipeline.run_pipeline('red_pipe') AS run \gset
SELECT regress.jt(:run, 'ship.deploy') AS deploy, regress.jt(:run, 'check.smoke') AS smoke \gset
-- the tables hold the hooks in clear, for the hook sender
SELECT pg_temp.leaked(t.hooks::text) AS task_hooks_stored FROM pipeline.job_task t WHERE id = :deploy;
SELECT pg_temp.leaked(p.hooks::text) AS run_hooks_stored FROM pipeline.pipeline_task p WHERE id = :run;
-- audit_job_task
SET ROLE regress_red_auditor;
SELECT stage, gate, pg_temp.leaked(r::text) AS leaked_by_audit FROM pipeline.audit_job_task(:deploy, true) r;
RESET ROLE;
-- update_job_task_status (its hooks column held the webhook secret)
SELECT update_token AS tok FROM pipeline.claim_job_tasks('red-runner') \gset
SELECT stage, pg_temp.leaked(r::text) AS leaked_by_update, hooks->'webhooks'->0 AS hook
  FROM pipeline.update_job_task_status(:deploy, 'active', :'tok') r;
SELECT stage, gate, pg_temp.leaked(r::text) AS leaked_by_update
  FROM pipeline.update_job_task_status(:deploy, 'failed', :'tok', message => 'boom') r;
-- confirm_job_task (deny: the run fails)
SET ROLE regress_red_auditor;
SELECT stage, pg_temp.leaked(r::text) AS leaked_by_confirm
  FROM pipeline.confirm_job_task(:deploy, false, 'not good') r;
RESET ROLE;
SELECT regress.run_stage(:run);
-- retry_job_task
SELECT stage, pg_temp.leaked(r::text) AS leaked_by_retry FROM pipeline.retry_job_task(:deploy) r;
-- next_run
SET ROLE regress_red_auditor;
SELECT stage, gate, pg_temp.leaked(r::text) AS leaked_by_audit FROM pipeline.audit_job_task(:deploy, true) r;
RESET ROLE;
SELECT update_token AS tok FROM pipeline.claim_job_tasks('red-runner') \gset
SELECT stage FROM pipeline.update_job_task_status(:deploy, 'succeeded', :'tok');
SET ROLE regress_red_auditor;
SELECT stage, pg_temp.leaked(r::text) AS leaked_by_confirm FROM pipeline.confirm_job_task(:deploy, true) r;
RESET ROLE;
SELECT update_token AS tok FROM pipeline.claim_job_tasks('red-runner') \gset
SELECT stage FROM pipeline.update_job_task_status(:smoke, 'pending', :'tok');
SELECT task_name, pg_temp.leaked(r::text) AS leaked_by_next_run FROM pipeline.next_run(:run) r;
-- cancel_pipeline_task (its hooks column held the pipeline's hooks)
SELECT stage, pg_temp.leaked(r::text) AS leaked_by_cancel, hooks->'webhooks'->1->>'url' AS url
  FROM pipeline.cancel_pipeline_task(:run, 'enough') r;

-- every view, after all that (deliveries were written for the hooks)
SELECT 'job_tasks' AS view, pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.job_tasks v WHERE pipeline_task_id = :run
UNION ALL
SELECT 'pipeline_tasks', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.pipeline_tasks v WHERE id = :run
UNION ALL
SELECT 'deliveries', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.deliveries v WHERE pipeline_task_id = :run
UNION ALL
SELECT 'job_task_deliveries', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.job_task_deliveries(:deploy) v
UNION ALL
SELECT 'jobs', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.jobs v
UNION ALL
SELECT 'pipelines', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.pipelines v
UNION ALL
SELECT 'stats', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.stats v
UNION ALL
SELECT 'event', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.event v WHERE pipeline_task_id = :run;
SELECT count(*) > 0 AS deliveries_written FROM pipeline.deliveries WHERE pipeline_task_id = :run;
SELECT DISTINCT target->>'url' AS delivery_url FROM pipeline.deliveries WHERE pipeline_task_id = :run ORDER BY 1;

-- ---------------------------------------------------------------- the helpers themselves
-- redact_target: secret, header values (object, or "Name: value" strings), URL query and user info
SELECT pipeline.redact_target('{"url": "https://u:p@h.example/x?a=1", "secret": "s", "headers": {"A": "b"}}');
SELECT pipeline.redact_target('{"url": "https://h.example/x", "headers": ["Authorization: Bearer x", "odd"]}');
SELECT pipeline.redact_target('{"headers": "Authorization: Bearer x"}') AS headers_as_one_string;
SELECT pipeline.redact_target('{"url": "https://h.example/x", "secret": null, "description": "kept"}');
-- robots whose token is the URL's path
SELECT pipeline.redact_target(jsonb_build_object('url', u)) ->> 'url' AS url
  FROM unnest(ARRAY['https://open.feishu.cn/open-apis/bot/v2/hook/0f1e-robot-token?x=1',
                    'https://hooks.slack.com/services/T000/B000/XXXXsecret',
                    'https://discord.com/api/webhooks/123/tok',
                    'https://example.com/open-apis/bot/v2/hook/kept']) AS u;
SELECT pipeline.redact_target(NULL) IS NULL AS null_in_null_out, pipeline.redact_target('[1]') AS not_an_object;
-- redact_hooks leaves mentions and unknown keys alone
SELECT pipeline.redact_hooks('{"webhooks": [{"url": "https://h?k=1", "secret": "s"}], "mention_users": [{"user": "ann"}], "x": 1}');
SELECT pipeline.redact_hooks('{}') AS empty;
-- redact_pipeline with the caller's sensitive names (what the view passes)
SELECT pipeline.redact_pipeline('{"stages": [{"tasks": [{"run_params": {"A": "1", "B": "2"}}]}]}', '{B}');
SELECT pipeline.redact_pipeline(NULL, '{}') IS NULL AS null_in_null_out;

SELECT regress.cancel_all();

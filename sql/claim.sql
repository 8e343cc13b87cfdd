--
-- claim: claim_job_tasks(), how runners take work (SPEC §9).
--
-- Only scheduling tasks whose job labels are all among the runner's labels,
-- oldest first, at most max; each becomes creating with the runner recorded
-- and a fresh token, returned once and stored only as a SHA-256 digest; the
-- params handed over carry the system params and the run's runtime envs.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "cl_any"}') AS version;
SELECT pipeline.define_job('{"name": "cl_linux", "labels": {"os": "linux"}}') AS version;
SELECT pipeline.define_job('{"name": "cl_arm", "labels": {"os": "linux", "arch": "arm64"}}') AS version;
SELECT pipeline.define_job('{"name": "cl_params", "command": "echo $GREETING",
  "params": [{"name": "GREETING", "default": "hello"}, {"name": "PASSWORD", "sensitive": true, "default": "pw"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "cl_labels", "stages": [{"name": "s", "is_parallel": true, "tasks": [
  {"name": "any", "job": "cl_any"}, {"name": "linux", "job": "cl_linux"}, {"name": "arm", "job": "cl_arm"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "cl_one", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "cl_params"}]},
  {"name": "next", "tasks": [{"name": "u", "job": "cl_params"}]}]}') AS version;

-- nothing to claim: nothing returned, nothing changed
SELECT regress.state() AS before \gset
SELECT * FROM pipeline.claim_job_tasks('cl-runner', 10, '{"os": "linux", "arch": "arm64"}');
SELECT regress.state() = :'before' AS unchanged;

-- ---------------------------------------------------------------- labels
SELECT pipeline.run_pipeline('cl_labels') AS run \gset
SELECT task, stage FROM regress.tasks(:run);
-- a runner with other labels, or with a different value, takes only the
-- task whose job asks for no label
SELECT * FROM regress.claim('cl-mac', 10, '{"os": "mac"}');
SELECT * FROM regress.claim('cl-windows', 10, '{"os": "windows", "arch": "arm64"}');
-- a linux runner without arch takes the linux task, not the arm one
SELECT * FROM regress.claim('cl-linux', 10, '{"os": "linux", "region": "eu"}');
-- a runner with more labels than asked takes the arm task
SELECT * FROM regress.claim('cl-arm', 10, '{"os": "linux", "arch": "arm64", "gpu": "yes"}');
SELECT task, stage, runner FROM regress.tasks(:run);
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- oldest first, max
SELECT pipeline.run_pipeline('cl_one') AS run1 \gset
SELECT pipeline.run_pipeline('cl_one') AS run2 \gset
SELECT pipeline.run_pipeline('cl_one') AS run3 \gset
SELECT id = regress.jt(:run1, 's.t') AS oldest FROM pipeline.claim_job_tasks('cl-runner');
SELECT array_agg(CASE pipeline_task_id WHEN :run2 THEN 'run2' WHEN :run3 THEN 'run3' END ORDER BY id) AS claimed
  FROM pipeline.claim_job_tasks('cl-runner', 5);
SELECT count(*) AS claimed FROM pipeline.claim_job_tasks('cl-runner', 5);
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- what a claim returns and records
SELECT pipeline.run_pipeline('cl_one', '{"GREETING": "hi"}') AS run \gset
SELECT regress.jt(:run, 's.t') AS t \gset
SELECT regress.last_event() AS ev0 \gset
SELECT id = :t AS is_t, pipeline_task_id = :run AS is_run, update_token AS tok, params AS t_params,
       job AS t_job, dry_run
  FROM pipeline.claim_job_tasks('cl-runner') \gset
SELECT :'is_t' AS is_t, :'is_run' AS is_run, :'dry_run' AS dry_run;
-- the job as resolved at run start, with its version
SELECT :'t_job'::jsonb - 'params' AS job;
-- the params: declared defaults, run params (sensitive ones in plain: the
-- runner needs them), and the system params
SELECT key, CASE WHEN key IN ('JOB_TASK_ID', 'PIPELINE_TASK_ID', 'JOB_TASK_UPDATE_TOKEN') THEN '(system)' ELSE value END AS value
  FROM jsonb_each_text(:'t_params') ORDER BY key;
SELECT (:'t_params'::jsonb)->>'JOB_TASK_ID' = :'t' AS job_task_id_ok,
       (:'t_params'::jsonb)->>'PIPELINE_TASK_ID' = :'run' AS pipeline_task_id_ok,
       (:'t_params'::jsonb)->>'JOB_TASK_UPDATE_TOKEN' = :'tok' AS token_ok;
-- the token: 48 hex digits, stored only as its SHA-256 digest
SELECT length(:'tok') AS token_length, :'tok' ~ '^[0-9a-f]+$' AS hex;
SELECT token_digest = sha256(convert_to(:'tok', 'UTF8')) AS digest_stored,
       strpos(t::text, :'tok') = 0 AS token_not_stored,
       strpos(t::text, encode(convert_to(:'tok', 'UTF8'), 'hex')) = 0 AS token_not_stored_hex
  FROM pipeline.job_task t WHERE id = :t;
-- nor shown in the views
SELECT count(*) AS rows_showing_token FROM pipeline.job_tasks v WHERE strpos(v::text, :'tok') > 0;
SELECT count(*) AS columns_named_token FROM information_schema.columns
 WHERE table_schema = 'pipeline' AND table_name = 'job_tasks' AND column_name LIKE '%token%';
-- the task: creating, claimed by this runner, one event
SELECT stage, runner, claimed_at IS NOT NULL AS claimed_at_set, start_at IS NULL AS not_started
  FROM pipeline.job_task WHERE id = :t;
SELECT * FROM regress.events(:run, :ev0);
-- the payload of that event names the runner, not the token
SELECT payload->>'runner' AS runner, strpos(payload::text, :'tok') = 0 AS no_token
  FROM pipeline.event WHERE id > :ev0 AND pipeline_task_id = :run;

-- a claimed task is not claimed again
SELECT count(*) AS claimed_again FROM pipeline.claim_job_tasks('cl-other', 10);
-- the claimed token works
SELECT stage FROM pipeline.update_job_task_status(:t, 'active', :'tok');

-- a task handed back and scheduled again gets a new token at its next claim;
-- the old one is refused from then on
SELECT stage FROM pipeline.update_job_task_status(:t, 'pending', :'tok', force_trigger_pipeline => true);
SELECT update_token AS tok2, params->>'JOB_TASK_UPDATE_TOKEN' AS tok2_param
  FROM pipeline.claim_job_tasks('cl-other') \gset
SELECT :'tok2' <> :'tok' AS rotated, :'tok2' = :'tok2_param' AS param_is_new_token;
SELECT runner FROM pipeline.job_task WHERE id = :t;
SELECT regress.state() AS before \gset
SELECT pipeline.update_job_task_status(:t, 'active', :'tok');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'t', 'T');
SELECT pipeline.heartbeat(:t, :'tok');
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;
SELECT stage FROM pipeline.update_job_task_status(:t, 'active', :'tok2');

-- the run's runtime envs reach the next claim
SELECT stage FROM pipeline.update_job_task_status(:t, 'succeeded', :'tok2',
    runtime_envs => '{"IMAGE": "app:1.0", "GREETING": "from t", "note": "kept on t"}');
SELECT params - 'JOB_TASK_ID' - 'PIPELINE_TASK_ID' - 'JOB_TASK_UPDATE_TOKEN' AS params
  FROM pipeline.claim_job_tasks('cl-runner');
SELECT regress.cancel_all();

-- dry-run tasks are claimed like the others, and say so
SELECT pipeline.run_pipeline('cl_one', dry_run => true) AS run \gset
SELECT dry_run, pipeline_task_id = :run AS is_run FROM pipeline.claim_job_tasks('cl-runner');
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- refusals
SELECT pipeline.run_pipeline('cl_one') AS run \gset
SELECT regress.state() AS before \gset
SELECT * FROM pipeline.claim_job_tasks('cl-runner', 0);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_job_tasks('cl-runner', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_job_tasks('cl-runner', 1001);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_job_tasks('cl-runner', 1, '["linux"]');
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_job_tasks('cl-runner', 1, '"os=linux"');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_job_tasks('', 1);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_job_tasks(repeat('r', 201), 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_job_tasks(NULL, 1);
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;
SELECT task, stage FROM regress.tasks(:run);
-- null max and labels mean the defaults (1, no labels)
SELECT count(*) AS claimed FROM pipeline.claim_job_tasks('cl-runner', NULL, NULL);

SELECT regress.cancel_all();

--
-- runs: run_pipeline() and plan() (SPEC §2, §7, §9).
--
-- A run stores the pipeline task and all its job tasks and starts the first
-- set; params are fixed at run start with the precedence of §7; a run keeps
-- the pipeline version and the job versions it started with; plan() resolves
-- the same way and stores nothing; serialized pipelines allow one unfinished
-- run per sequence value.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "r_build", "command": "make",
  "params": [{"name": "A", "default": "job"}, {"name": "B", "default": "job"},
             {"name": "C", "default": "job"}, {"name": "D", "default": "job"}]}') AS version;
SELECT pipeline.define_job('{"name": "r_deploy", "command": "./deploy",
  "params": [{"name": "ENV", "required": true},
             {"name": "TOKEN", "required": true, "sensitive": true},
             {"name": "REGION", "default": "eu"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "r_app", "stages": [
  {"name": "build", "is_parallel": true, "tasks": [
     {"name": "linux", "job": "r_build", "run_params": {"B": "task", "C": "task", "D": "task"}},
     {"name": "mac", "job": "r_build", "run_params": {"B": "task", "C": "task", "D": "task"}}]},
  {"name": "check", "tasks": [
     {"name": "lint", "job": {"command": "lint"}, "skip_run": true},
     {"name": "unit", "job": {"command": "test", "params": [{"name": "A", "default": "inline"}]}}]},
  {"name": "deploy", "tasks": [{"name": "prod", "job": "r_deploy", "run_params": {"ENV": "prod"}}]}]}') AS version;

-- ---------------------------------------------------------------- a run
SELECT regress.last_event() AS ev0 \gset
SELECT pipeline.run_pipeline('r_app', '{"C": "run", "D": "run", "TOKEN": "tok-1", "build.linux.D": "scoped"}',
                             labels => '{"branch": "main"}') AS run \gset

-- the pipeline task: version 1, active, started, not ended
SELECT pipeline_name, pipeline_version, stage, dry_run, run_by = current_user AS run_by_me,
       labels, start_at IS NOT NULL AS started, end_at IS NULL AS not_ended
  FROM pipeline.pipeline_task WHERE id = :run;
-- every job task is created at once, in stage/task order; the first set
-- (the parallel "build" stage) is handed to runners; skip_run is created skipped
SELECT stage_index, stage_name, task_index, task_name, job_name, job_version, stage, attempt, dry_run
  FROM pipeline.job_task WHERE pipeline_task_id = :run ORDER BY stage_index, task_index;
-- ids follow that order (runners claim oldest first)
SELECT count(*) = 5 AS ids_in_order FROM (
  SELECT id, row_number() OVER (ORDER BY id) AS rn, row_number() OVER (ORDER BY stage_index, task_index) AS rs
    FROM pipeline.job_task WHERE pipeline_task_id = :run) s WHERE rn = rs;
-- params, lowest precedence first: job default -> task run_params -> run params
-- -> "stage.task.NAME" scoped to one task (build.linux only)
SELECT stage_name || '.' || task_name AS task, params->>'A' AS a, params->>'B' AS b,
       params->>'C' AS c, params->>'D' AS d
  FROM pipeline.job_tasks WHERE pipeline_task_id = :run ORDER BY stage_index, task_index;
-- run params reach every task; the required ones of r_deploy are satisfied
SELECT params FROM pipeline.job_tasks WHERE pipeline_task_id = :run AND task_name = 'prod';
-- one event: the run became active (job tasks are created pending, not changed),
-- and one per task handed to runners
SELECT * FROM regress.events(:run, :ev0);

-- ---------------------------------------------------------------- refusals
SELECT regress.state() AS before \gset
SELECT pipeline.run_pipeline('r_nope');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline(NULL);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '["C"]');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '"C=1"');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "C": {"v": 1}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "1C": "x"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "build.linux": "x"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "build.linux.my-var": "x"}');
\echo :LAST_ERROR_MESSAGE
-- a scoped key must name a task of the pipeline
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "build.windows.D": "x"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "deploy.linux.D": "x"}');
\echo :LAST_ERROR_MESSAGE
-- a required param with no value (or an empty one)
SELECT pipeline.run_pipeline('r_app');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": ""}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t", "deploy.prod.ENV": ""}');
\echo :LAST_ERROR_MESSAGE
-- labels and on_busy
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t"}', labels => '["main"]');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t"}', labels => '{"branch": 1}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t"}', on_busy => 'wait');
\echo :LAST_ERROR_MESSAGE
-- runs advance by re-reading rows after lock waits: READ COMMITTED only
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t"}');
\echo :LAST_ERROR_MESSAGE
ROLLBACK;
-- nothing was stored by any refusal
SELECT regress.state() = :'before' AS unchanged;

-- a required param given for one task only, as "stage.task.NAME"
SELECT pipeline.run_pipeline('r_app', '{"deploy.prod.TOKEN": "tok-2"}') AS run2 \gset
SELECT params->>'TOKEN' IS NOT NULL AS prod_has_token FROM pipeline.job_task
 WHERE pipeline_task_id = :run2 AND task_name = 'prod';
SELECT count(*) AS others_with_token FROM pipeline.job_task
 WHERE pipeline_task_id = :run2 AND params ? 'TOKEN';
-- numbers and booleans become strings (params are environment variables);
-- a null value overrides nothing (B keeps the task's value)
SELECT pipeline.run_pipeline('r_app', '{"deploy.prod.TOKEN": "t", "C": 8, "D": true, "B": null}') AS run5 \gset
SELECT params FROM pipeline.job_tasks WHERE pipeline_task_id = :run5 AND task_name = 'linux';
-- run_by and dry_run; dry_run is inherited by every job task
SELECT pipeline.run_pipeline('r_app', '{"TOKEN": "t"}', dry_run => true, run_by => 'ci-bot') AS run3 \gset
SELECT run_by, dry_run FROM pipeline.pipeline_task WHERE id = :run3;
SELECT count(*) AS tasks, count(*) FILTER (WHERE dry_run) AS dry_run_tasks
  FROM pipeline.job_task WHERE pipeline_task_id = :run3;
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- skip_run
SELECT pipeline.define_job('{"name": "r_step"}') AS version;
SELECT pipeline.define_pipeline('{"name": "r_skips", "stages": [
  {"name": "one", "tasks": [{"name": "a", "job": "r_step", "skip_run": true}]},
  {"name": "two", "tasks": [{"name": "b", "job": "r_step", "skip_run": true},
                            {"name": "c", "job": "r_step"}]}]}') AS version;
SELECT pipeline.run_pipeline('r_skips') AS run \gset
-- skipped tasks are created skipped (and ended); the first stage holding an
-- incomplete task runs
SELECT task, stage FROM regress.tasks(:run);
SELECT count(*) FILTER (WHERE end_at IS NOT NULL) AS ended FROM pipeline.job_task
 WHERE pipeline_task_id = :run AND stage = 'skipped';
-- a run whose tasks are all skipped succeeds at once
SELECT pipeline.define_pipeline('{"name": "r_all_skipped", "stages": [
  {"name": "one", "tasks": [{"name": "a", "job": "r_deploy", "skip_run": true}]}]}') AS version;
-- (a skipped task needs no value for its required params)
SELECT pipeline.run_pipeline('r_all_skipped') AS run \gset
SELECT stage, end_at IS NOT NULL AS ended FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.events(:run);
-- null arguments (but the name) mean the defaults
SELECT pipeline.run_pipeline('r_skips', NULL, NULL, NULL, NULL, NULL) AS run \gset
SELECT params, dry_run, run_by = current_user AS run_by_me, labels, stage
  FROM pipeline.pipeline_task WHERE id = :run;
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- versions
-- A run keeps the pipeline version it started with, and each task the job
-- version that was the latest when the run started.
SELECT pipeline.define_job('{"name": "r_tool", "command": "tool v1"}') AS version;
SELECT pipeline.define_pipeline('{"name": "r_versions", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "r_tool"}]}]}') AS version;
SELECT pipeline.run_pipeline('r_versions') AS run_v1 \gset
SELECT pipeline.define_job('{"name": "r_tool", "command": "tool v2"}') AS version;
SELECT pipeline.define_pipeline('{"name": "r_versions", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "r_tool"}]},
  {"name": "extra", "tasks": [{"name": "u", "job": "r_tool"}]}]}') AS version;
SELECT pipeline.run_pipeline('r_versions') AS run_v2 \gset
SELECT CASE id WHEN :run_v1 THEN 'first' ELSE 'second' END AS run, pipeline_version,
       stage_count, (SELECT count(*) FROM pipeline.job_task t WHERE t.pipeline_task_id = p.id) AS tasks
  FROM pipeline.pipeline_task p WHERE id IN (:run_v1, :run_v2) ORDER BY id;
SELECT CASE pipeline_task_id WHEN :run_v1 THEN 'first' ELSE 'second' END AS run,
       stage_name || '.' || task_name AS task, job_version, s.job->>'command' AS command
  FROM pipeline.job_task JOIN pipeline.job_task_spec s ON s.job_task_id = id
 WHERE pipeline_task_id IN (:run_v1, :run_v2) ORDER BY id;
-- the first run goes on with version 1: finishing its only task finishes it
SELECT * FROM regress.claim('r-versions');
SELECT regress.report(:run_v1, 's.t', 'succeeded');
SELECT regress.run_stage(:run_v1) AS first_run;
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- plan
SELECT regress.state() AS before \gset
-- the params each task would get, sensitive ones masked
SELECT * FROM pipeline.plan('r_app', '{"C": "run", "deploy.prod.TOKEN": "tok-3", "build.mac.D": "scoped"}');
-- plan refuses what run_pipeline refuses
SELECT * FROM pipeline.plan('r_nope');
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.plan('r_app');
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.plan('r_app', '{"TOKEN": "t", "x.y.Z": "1"}');
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.plan(NULL);
\echo :LAST_ERROR_MESSAGE
-- and stores nothing
SELECT regress.state() = :'before' AS unchanged;
-- the same masking with a gate and skip_run shown
SELECT pipeline.define_pipeline('{"name": "r_gated", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "r_step", "audit": {"enable": true, "auditors": ["bob"]},
                           "ignore_failed": true},
                          {"name": "u", "job": "r_step", "skip_run": true,
                           "confirm": {"enable": true, "checkers": ["carol"]}}]}]}') AS version;
SELECT task_name, gates FROM pipeline.plan('r_gated');

-- ---------------------------------------------------------------- serialized runs
-- is_parallel false without a sequence label: one unfinished run per pipeline
SELECT pipeline.define_pipeline('{"name": "r_serial", "is_parallel": false, "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "r_step"}]}]}') AS version;
SELECT pipeline.run_pipeline('r_serial') AS s1 \gset
SELECT regress.state() AS before \gset
SELECT pipeline.run_pipeline('r_serial');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'s1', '<first run>');
SELECT pipeline.run_pipeline('r_serial', on_busy => 'error');
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;
-- once it is finished, the next run may start
SELECT pipeline.cancel_pipeline_task(:s1) IS NOT NULL AS canceled;
SELECT pipeline.run_pipeline('r_serial') AS s2 \gset
SELECT regress.run_stage(:s2);
SELECT regress.cancel_all();

-- with a sequence label: one unfinished run per value of that label
SELECT pipeline.define_pipeline('{"name": "r_seq", "is_parallel": false, "sequence_label": "env",
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "r_step"}]}]}') AS version;
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": "prod"}') AS prod1 \gset
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": "dev"}') AS dev1 \gset
SELECT regress.state() AS before \gset
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": "prod"}');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'prod1', '<prod run>');
-- the label must be given, as a string
SELECT pipeline.run_pipeline('r_seq');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": ["prod"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;

-- on_busy => 'queue': the run waits pending, its tasks too, and nothing is
-- handed to runners
SELECT regress.last_event() AS ev0 \gset
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": "prod"}', on_busy => 'queue') AS prod2 \gset
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": "prod"}', on_busy => 'queue') AS prod3 \gset
SELECT CASE id WHEN :prod1 THEN 'prod1' WHEN :dev1 THEN 'dev1' WHEN :prod2 THEN 'prod2' ELSE 'prod3' END AS run,
       stage, start_at IS NOT NULL AS started
  FROM pipeline.pipeline_task WHERE id IN (:prod1, :dev1, :prod2, :prod3) ORDER BY id;
SELECT task, stage FROM regress.tasks(:prod2);
SELECT regress.next(:prod2) AS next_of_queued;
SELECT * FROM regress.events(:prod2, :ev0);
-- the first prod run finishes: the oldest queued one starts, in the same transaction
SELECT * FROM regress.claim('r-seq', 2);
SELECT regress.report(:prod1, 's.t', 'succeeded');
SELECT CASE id WHEN :prod1 THEN 'prod1' WHEN :dev1 THEN 'dev1' WHEN :prod2 THEN 'prod2' ELSE 'prod3' END AS run,
       stage, start_at IS NOT NULL AS started
  FROM pipeline.pipeline_task WHERE id IN (:prod1, :dev1, :prod2, :prod3) ORDER BY id;
SELECT * FROM regress.events(:prod2, :ev0);
SELECT task, stage FROM regress.tasks(:prod2);
-- a canceled run releases the sequence too: prod3 starts
SELECT pipeline.cancel_pipeline_task(:prod2) IS NOT NULL AS canceled;
SELECT CASE id WHEN :prod2 THEN 'prod2' ELSE 'prod3' END AS run, stage
  FROM pipeline.pipeline_task WHERE id IN (:prod2, :prod3) ORDER BY id;
SELECT task, stage FROM regress.tasks(:prod3);
-- canceling a queued run leaves the running one alone
SELECT pipeline.run_pipeline('r_seq', labels => '{"env": "prod"}', on_busy => 'queue') AS prod4 \gset
SELECT (pipeline.cancel_pipeline_task(:prod4)).stage AS prod4;
SELECT task, stage FROM regress.tasks(:prod4);
SELECT regress.run_stage(:prod3) AS prod3;

SELECT regress.cancel_all();
SELECT count(*) AS claimable_left FROM pipeline.job_task WHERE stage = 'scheduling';

--
-- chain: the pipeline field next_pipelines (SPEC §15, README "Chaining").
--
-- At definition: every refusal is 22023 naming the path and stores nothing;
-- a chained pipeline must exist; a cycle through the latest versions is
-- refused with its path.  At a run's end, in the same transaction: each entry
-- listing the end stage starts its pipeline with the run's runtime envs and
-- the entry's params (the entry wins), run_by pipeline:<id>, labels
-- parent_run and chain_depth, dry_run inherited, the parent's sensitive names
-- kept masked; past pipeline.max_chain_depth nothing starts; a start that is
-- refused is rolled back alone, the ending run still ends, and its `chained`
-- column says what happened to each entry.
\set VERBOSITY sqlstate

-- claims below must see only this file's runs (triggers leaves one scheduled)
SELECT regress.cancel_all() IS NOT NULL AS clean_start;

SELECT pipeline.define_job('{"name": "ch_job", "command": "true",
  "params": [{"name": "VERSION", "default": "none"}]}') AS version;
SELECT pipeline.define_job('{"name": "ch_secret_job", "command": "true",
  "params": [{"name": "TOKEN", "sensitive": true}]}') AS version;
SELECT pipeline.define_job('{"name": "ch_strict_job", "command": "true",
  "params": [{"name": "APPROVER", "required": true}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_deploy", "stages": [
  {"name": "deploy", "tasks": [{"name": "ship", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_notify", "stages": [
  {"name": "notify", "tasks": [{"name": "mail", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_strict", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "ch_strict_job"}]}]}') AS version;

SELECT regress.state() AS s0 \gset

-- ---------------------------------------------------------------- refusals at definition
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": {"pipeline": "ch_deploy"},
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": ["ch_deploy"],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "when": "always"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"on": ["succeeded"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": 7}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy"}, {"pipeline": "ch_later"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "on": "succeeded"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "on": []}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "on": ["failed", "active"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "on": [true]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "params": ["A=1"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "params": {"A": {"b": 1}}}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "params": {"not-a-name": "1"}}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "labels": {"env": 1}}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "labels": {"parent_run": "1"}}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_x", "next_pipelines": [{"pipeline": "ch_deploy", "on_busy": "wait"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
-- a pipeline that chains itself, before it exists and after
SELECT pipeline.define_pipeline('{"name": "ch_self", "next_pipelines": [{"pipeline": "ch_self", "on": ["failed"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_deploy", "next_pipelines": [{"pipeline": "ch_deploy"}],
  "stages": [{"name": "deploy", "tasks": [{"name": "ship", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'s0' AS nothing_stored;

-- cycles through the latest versions: a -> b -> a, and a -> b -> c -> a
SELECT pipeline.define_pipeline('{"name": "ch_c", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_b", "next_pipelines": [{"pipeline": "ch_c"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_a", "next_pipelines": [{"pipeline": "ch_deploy"}, {"pipeline": "ch_b", "on": ["failed"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;
SELECT regress.state() AS s1 \gset
SELECT pipeline.define_pipeline('{"name": "ch_b", "next_pipelines": [{"pipeline": "ch_a", "on": ["canceled"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "ch_c", "next_pipelines": [{"pipeline": "ch_notify"}, {"pipeline": "ch_a"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'s1' AS nothing_stored;
-- a later version of ch_b that no longer chains ch_c: now ch_c may chain ch_a
SELECT pipeline.define_pipeline('{"name": "ch_b", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_c", "next_pipelines": [{"pipeline": "ch_a"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;

-- what is stored: every key of an entry, defaults filled in; no key, no chain
SELECT jsonb_pretty(definition->'next_pipelines') FROM pipeline.pipelines WHERE name = 'ch_a';
SELECT definition ? 'next_pipelines' AS has_key FROM pipeline.pipelines WHERE name = 'ch_deploy';

-- ---------------------------------------------------------------- a run that succeeds
SELECT pipeline.define_pipeline('{"name": "ch_build", "next_pipelines": [
    {"pipeline": "ch_deploy", "params": {"TARGET_ENV": "staging"}, "labels": {"env": "staging"}},
    {"pipeline": "ch_notify", "on": ["failed", "canceled"], "params": {"WHY": "broken"}}],
  "stages": [{"name": "build", "tasks": [{"name": "make", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('ch_build', '{"VERSION": "0.0.0"}', run_by => 'alice') AS run \gset
SELECT * FROM regress.claim('r1');
SELECT regress.report(:run, 'build.make', 'active');
-- lower-case names stay the task's output; upper-case ones are the run's runtime envs
SELECT regress.report(:run, 'build.make', 'succeeded',
                      runtime_envs => '{"VERSION": "1.2.3", "TARGET_ENV": "prod", "out": "x"}');
SELECT id AS child FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'run' \gset
-- the parent ended, the child is running, both in that one statement's transaction
SELECT regress.run_stage(:run) AS parent, regress.run_stage(:child) AS child;
SELECT pipeline_name, params, run_by = 'pipeline:' || :'run' AS run_by_parent,
       labels = jsonb_build_object('env', 'staging', 'parent_run', :'run', 'chain_depth', '1') AS labels_ok,
       dry_run
  FROM pipeline.pipeline_tasks WHERE id = :child;
SELECT * FROM regress.tasks(:child);
-- the runtime envs reach the child's task as params (the entry's TARGET_ENV wins)
SELECT params FROM pipeline.job_tasks WHERE pipeline_task_id = :child;
-- the parent says what it started; ch_notify (on failed, canceled) did not start
SELECT regress.err(chained::text, :'child', 'CHILD') AS chained FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT count(*) AS notify_runs FROM pipeline.pipeline_task WHERE pipeline_name = 'ch_notify';
SELECT * FROM regress.claim('r1');
SELECT regress.report(:child, 'deploy.ship', 'succeeded');
-- ch_deploy chains nothing: its end records nothing
SELECT regress.run_stage(:child) AS child, chained = '[]' AS chained_nothing
  FROM pipeline.pipeline_task WHERE id = :child;

-- ---------------------------------------------------------------- a run that fails, one canceled
SELECT pipeline.run_pipeline('ch_build') AS run \gset
SELECT * FROM regress.claim('r1');
SELECT regress.report(:run, 'build.make', 'failed', message => 'exit code 2');
SELECT p.pipeline_name, p.stage, p.params, p.run_by = 'pipeline:' || :'run' AS run_by_parent
  FROM pipeline.pipeline_task p WHERE p.labels->>'parent_run' = :'run';
SELECT regress.err(chained::text, (SELECT id::text FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'run'), 'CHILD') AS chained
  FROM pipeline.pipeline_task WHERE id = :run;
SELECT pipeline.run_pipeline('ch_build', dry_run => true) AS run \gset
SELECT stage FROM pipeline.cancel_pipeline_task(:run, 'not today');
-- a dry run chains dry runs
SELECT p.pipeline_name, p.stage, p.dry_run, p.params->>'WHY' AS why
  FROM pipeline.pipeline_task p WHERE p.labels->>'parent_run' = :'run';
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- sensitive runtime envs stay masked
SELECT pipeline.define_pipeline('{"name": "ch_secretive", "next_pipelines": [{"pipeline": "ch_deploy"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_secret_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('ch_secretive', '{"TOKEN": "tok-123"}') AS run \gset
SELECT * FROM regress.claim('r1');
SELECT regress.report(:run, 's.t', 'succeeded', runtime_envs => '{"TOKEN": "tok-456", "VERSION": "2"}');
SELECT id AS child FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'run' \gset
SELECT p.params AS view_params, t.sensitive AS run_sensitive
  FROM pipeline.pipeline_tasks p JOIN pipeline.pipeline_task t USING (id) WHERE p.id = :child;
SELECT params, (SELECT sensitive FROM pipeline.job_task WHERE pipeline_task_id = :child) AS task_sensitive
  FROM pipeline.job_tasks WHERE pipeline_task_id = :child;
-- the runner still gets the value
SELECT c.params->>'TOKEN' AS token FROM pipeline.claim_job_tasks('r1') c;
-- no event of the child carries it
SELECT count(*) AS leaks FROM pipeline.event WHERE pipeline_task_id = :child AND payload::text LIKE '%tok-456%';
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- depth cap
-- ch_d1 -> ch_d2 -> ch_d3: every task skip_run, so each run ends as it starts
-- and chains the next one in the same statement
SELECT pipeline.define_pipeline('{"name": "ch_d3", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job", "skip_run": true}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_d2", "next_pipelines": [{"pipeline": "ch_d3"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job", "skip_run": true}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_d1", "next_pipelines": [{"pipeline": "ch_d2"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job", "skip_run": true}]}]}') AS version;
SHOW pipeline.max_chain_depth;
SELECT pipeline.run_pipeline('ch_d1') AS run \gset
SELECT pipeline_name, stage, labels->>'chain_depth' AS depth, run_by LIKE 'pipeline:%' AS chained
  FROM pipeline.pipeline_task WHERE id >= :run ORDER BY id;
SET pipeline.max_chain_depth = 1;
SELECT pipeline.run_pipeline('ch_d1') AS run \gset
SELECT pipeline_name, stage, labels->>'chain_depth' AS depth,
       regexp_replace(chained::text, '"run": [0-9]+', '"run": N') AS chained
  FROM pipeline.pipeline_task WHERE id >= :run ORDER BY id;
SET pipeline.max_chain_depth = 0;
SELECT pipeline.run_pipeline('ch_d1') AS run \gset
SELECT pipeline_name, chained FROM pipeline.pipeline_task WHERE id >= :run ORDER BY id;
RESET pipeline.max_chain_depth;
-- only a superuser may change the cap
CREATE ROLE regress_chain_nobody;
SET ROLE regress_chain_nobody;
SET pipeline.max_chain_depth = 100;
RESET ROLE;
DROP ROLE regress_chain_nobody;

-- ---------------------------------------------------------------- a chained start that is refused
-- ch_strict needs APPROVER: its start is rolled back alone; the parent still
-- succeeds and the entry after it still starts.  A serialized pipeline busy
-- with on_busy "error" is refused the same way; with "queue" (the default) the
-- chained run waits.
SELECT pipeline.define_pipeline('{"name": "ch_serial", "is_parallel": false,
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ch_fragile", "next_pipelines": [
    {"pipeline": "ch_strict"}, {"pipeline": "ch_serial", "on_busy": "error"},
    {"pipeline": "ch_serial"}, {"pipeline": "ch_deploy"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('ch_serial') AS busy \gset
SELECT pipeline.run_pipeline('ch_fragile') AS run \gset
SELECT * FROM regress.claim('r1', 5);
SELECT regress.report(:run, 's.t', 'succeeded');
SELECT regress.run_stage(:run) AS parent;
SELECT pipeline_name, stage FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'run' ORDER BY id;
SELECT count(*) AS strict_runs FROM pipeline.pipeline_task WHERE pipeline_name = 'ch_strict';
SELECT jsonb_pretty(regress.err(chained::text, :'busy', 'BUSY')::jsonb #- '{2,run}' #- '{3,run}')
  FROM pipeline.pipeline_task WHERE id = :run;
-- the busy one finishes: the queued chained run starts
SELECT * FROM regress.claim('r1');
SELECT regress.report(:busy, 's.t', 'succeeded');
SELECT pipeline_name, stage FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'run' ORDER BY id;
SELECT regress.cancel_all();

-- a pipeline the chain names is always there (no DROP of pipelines), and the
-- entries are read from the version the run started with
SELECT pipeline.define_pipeline('{"name": "ch_build", "stages": [{"name": "build", "tasks": [{"name": "make", "job": "ch_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('ch_build') AS run \gset
SELECT * FROM regress.claim('r1');
SELECT regress.report(:run, 'build.make', 'succeeded');
SELECT count(*) AS children, (SELECT chained FROM pipeline.pipeline_task WHERE id = :run) AS chained
  FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'run';
SELECT regress.cancel_all();
SELECT count(*) AS locks_left FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

--
-- dag: SPEC §13 -- needs (a DAG across stages), matrix, when (manual, always,
-- on_failure, blocking) and if, driven only by what runners and people do:
-- claim_job_tasks(), update_job_task_status(), play_job_task().
--
-- A pipeline that uses any of these fields runs on the needs graph: a task
-- starts as soon as every task it needs is done, whatever its stage; a task
-- without needs waits for every earlier stage, as before.
\set VERBOSITY sqlstate

-- runs left by earlier tests would be claimed below
SELECT regress.cancel_all() IS NOT NULL AS cleaned;

-- the tasks of a run in creation order (matrix job tasks share a task_index)
CREATE FUNCTION regress.dtasks(run bigint)
RETURNS TABLE (task text, stage pipeline.task_stage, needs_left int) LANGUAGE sql AS $$
SELECT stage_name || '.' || task_name, stage, needs_left
  FROM pipeline.job_tasks WHERE pipeline_task_id = run ORDER BY id
$$;

SELECT pipeline.define_job('{"name": "dag_job", "params": [{"name": "ENV", "default": "dev"}]}') AS version;

-- ---------------------------------------------------------------- a needs chain skips ahead of a slow stage
SELECT pipeline.define_pipeline('{"name": "dag_chain", "stages": [
  {"name": "build", "is_parallel": true, "tasks": [
     {"name": "slow", "job": "dag_job"}, {"name": "fast", "job": "dag_job"}]},
  {"name": "test", "tasks": [{"name": "quick", "job": "dag_job", "needs": ["build.fast"]}]},
  {"name": "deploy", "tasks": [{"name": "all", "job": "dag_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('dag_chain') AS run \gset
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.slow', 'active');
SELECT regress.report(:run, 'build.fast', 'succeeded');
-- fast is done: test.quick starts while build.slow still runs
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'test.quick', 'succeeded');
-- deploy.all has no needs: it waits for every earlier stage, slow included
SELECT * FROM regress.dtasks(:run);
SELECT regress.next(:run);
SELECT regress.report(:run, 'build.slow', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.all', 'succeeded');
SELECT regress.run_stage(:run);
-- one event per stage change, in order
SELECT * FROM regress.events(:run);

-- ---------------------------------------------------------------- needs: [] starts with the run
SELECT pipeline.define_pipeline('{"name": "dag_free", "stages": [
  {"name": "one", "tasks": [{"name": "a", "job": "dag_job"}]},
  {"name": "two", "tasks": [{"name": "b", "job": "dag_job", "needs": []}, {"name": "c", "job": "dag_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('dag_free') AS run \gset
-- b needs nothing; c (serial, no needs) waits for b and for stage one
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'two.b', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT regress.report(:run, 'one.a', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'two.c', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- a failed needed task skips its dependents
SELECT pipeline.define_pipeline('{"name": "dag_fail", "stages": [
  {"name": "build", "is_parallel": true, "tasks": [
     {"name": "a", "job": "dag_job"}, {"name": "side", "job": "dag_job"}]},
  {"name": "test", "is_parallel": true, "tasks": [
     {"name": "after_a", "job": "dag_job", "needs": ["build.a"]},
     {"name": "cleanup", "job": "dag_job", "needs": ["build.a"], "when": "always"},
     {"name": "report", "job": "dag_job", "when": "on_failure"}]},
  {"name": "ship", "tasks": [{"name": "s", "job": "dag_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('dag_fail') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.side', 'active');
SELECT regress.report(:run, 'build.a', 'failed', 'exit code 2');
-- after_a and ship.s are skipped; cleanup (always) starts; report (on_failure)
-- still waits for build.side, which runs on; the run is not over yet, its
-- message says why it will fail
SELECT * FROM regress.dtasks(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.side', 'succeeded');
-- side done: report, on_failure, starts now that the run has failed
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'test.cleanup', 'succeeded');
SELECT regress.run_stage(:run);
SELECT regress.report(:run, 'test.report', 'succeeded');
-- the run ends failed, with the failure's message, after always/on_failure
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;

-- ---------------------------------------------------------------- always runs, on_failure is skipped, when the run succeeds
SELECT pipeline.run_pipeline('dag_fail') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.a', 'succeeded');
SELECT regress.report(:run, 'build.side', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'test.after_a', 'succeeded');
SELECT regress.report(:run, 'test.cleanup', 'succeeded');
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'ship.s', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;

-- ---------------------------------------------------------------- ignore_failed counts as done
SELECT pipeline.define_pipeline('{"name": "dag_ignore", "stages": [
  {"name": "s", "is_parallel": true, "tasks": [
     {"name": "flaky", "job": "dag_job", "ignore_failed": true},
     {"name": "next", "job": "dag_job", "needs": ["flaky"]}]}]}') AS version;
SELECT pipeline.run_pipeline('dag_ignore') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 's.flaky', 'failed');
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 's.next', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- manual: non-blocking, never played
SELECT pipeline.define_pipeline('{"name": "dag_manual", "stages": [
  {"name": "build", "tasks": [{"name": "b", "job": "dag_job"}]},
  {"name": "deploy", "is_parallel": true, "tasks": [
     {"name": "staging", "job": "dag_job"},
     {"name": "prod", "job": "dag_job", "when": "manual"},
     {"name": "notify", "job": "dag_job", "needs": ["prod"]}]}]}') AS version;
SELECT pipeline.run_pipeline('dag_manual') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
-- prod's turn has come: it waits, pending, for a play, and next_run does not
-- offer it; not blocking, it holds nothing back: notify, which needs it, goes on
SELECT * FROM regress.dtasks(:run);
SELECT regress.next(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.staging', 'succeeded');
SELECT regress.report(:run, 'deploy.notify', 'succeeded');
-- never played and not blocking: the run succeeds; prod is skipped
SELECT * FROM regress.dtasks(:run);
SELECT regress.run_stage(:run);
-- a task of a finished run is not played
SELECT pipeline.play_job_task(regress.jt(:run, 'deploy.prod'));
SELECT regress.err(:'LAST_ERROR_MESSAGE', regress.jt(:run, 'deploy.prod')::text, 'PROD');

-- ---------------------------------------------------------------- manual: non-blocking, played
SELECT pipeline.run_pipeline('dag_manual') AS run \gset
-- not its turn yet (build.b runs): 55000, nothing changes
SELECT regress.state() AS before \gset
SELECT pipeline.play_job_task(regress.jt(:run, 'deploy.prod'));
SELECT regress.err(:'LAST_ERROR_MESSAGE', regress.jt(:run, 'deploy.prod')::text, 'PROD');
SELECT regress.state() = :'before' AS unchanged;
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
SELECT stage FROM pipeline.play_job_task(regress.jt(:run, 'deploy.prod'));
-- played twice: 55000
SELECT pipeline.play_job_task(regress.jt(:run, 'deploy.prod'));
SELECT regress.err(:'LAST_ERROR_MESSAGE', regress.jt(:run, 'deploy.prod')::text, 'PROD');
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.staging', 'succeeded');
SELECT regress.report(:run, 'deploy.notify', 'succeeded');
-- a played task holds the run until it completes
SELECT * FROM regress.dtasks(:run);
SELECT regress.run_stage(:run);
SELECT regress.report(:run, 'deploy.prod', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- manual, non-blocking, played and failed: allowed to fail
SELECT pipeline.run_pipeline('dag_manual') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
SELECT stage FROM pipeline.play_job_task(regress.jt(:run, 'deploy.prod'));
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.prod', 'failed');
SELECT regress.report(:run, 'deploy.staging', 'succeeded');
SELECT regress.report(:run, 'deploy.notify', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- manual, blocking
SELECT pipeline.define_pipeline('{"name": "dag_gate", "stages": [
  {"name": "build", "tasks": [{"name": "b", "job": "dag_job"}]},
  {"name": "release", "tasks": [{"name": "go", "job": "dag_job", "when": "manual", "blocking": true},
                                {"name": "after", "job": "dag_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('dag_gate') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
-- a blocking manual task holds its dependents and the run until it is played
SELECT * FROM regress.dtasks(:run);
SELECT regress.run_stage(:run);
SELECT stage FROM pipeline.play_job_task(regress.jt(:run, 'release.go'));
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'release.go', 'succeeded');
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'release.after', 'succeeded');
SELECT regress.run_stage(:run);
-- unplayed, the run stays active until canceled
SELECT pipeline.run_pipeline('dag_gate') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
SELECT regress.run_stage(:run);
SELECT stage FROM pipeline.cancel_pipeline_task(:run, 'not today');
SELECT * FROM regress.dtasks(:run);

-- ---------------------------------------------------------------- play refusals
SELECT pipeline.play_job_task(-1);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.play_job_task(regress.jt(:run, 'build.b'));
SELECT regress.err(:'LAST_ERROR_MESSAGE', regress.jt(:run, 'build.b')::text, 'B');
SELECT pipeline.play_job_task(NULL);
\echo :LAST_ERROR_MESSAGE

-- ---------------------------------------------------------------- if: skipped by param
SELECT pipeline.define_pipeline('{"name": "dag_if", "stages": [
  {"name": "build", "tasks": [{"name": "b", "job": "dag_job"}]},
  {"name": "deploy", "is_parallel": true, "tasks": [
     {"name": "prod", "job": "dag_job", "if": {"ENV": "^prod$"}},
     {"name": "smoke", "job": "dag_job", "needs": ["prod"]}]}]}') AS version;
-- ENV is "dev" (the job's default): prod is created skipped; smoke, whose
-- only need was skipped by if, starts with the run
SELECT pipeline.run_pipeline('dag_if') AS run \gset
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
SELECT regress.report(:run, 'deploy.smoke', 'succeeded');
SELECT regress.run_stage(:run);
-- ENV=prod: prod runs after build, smoke after prod
SELECT pipeline.run_pipeline('dag_if', '{"ENV": "prod"}') AS run \gset
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b', 'succeeded');
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.prod', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.smoke', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- matrix
SELECT pipeline.define_pipeline('{"name": "dag_matrix", "stages": [
  {"name": "build", "is_parallel": true, "tasks": [
     {"name": "b", "job": "dag_job", "run_params": {"OS": "plan9", "X": "1"},
      "matrix": {"OS": ["linux", "mac"], "ARCH": ["amd64", "arm64"]}}]},
  {"name": "ship", "tasks": [{"name": "s", "job": "dag_job", "needs": ["build.b"]}]}]}') AS version;
-- one job task per combination, keys sorted in the name, values above run_params
SELECT task_name, params, gates->'matrix' AS matrix, gates->'needs' AS needs
  FROM pipeline.plan('dag_matrix');
SELECT pipeline.run_pipeline('dag_matrix') AS run \gset
SELECT * FROM regress.dtasks(:run);
SELECT count(*) AS claimed FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.b[ARCH=amd64,OS=linux]', 'succeeded');
SELECT regress.report(:run, 'build.b[ARCH=amd64,OS=mac]', 'succeeded');
SELECT regress.report(:run, 'build.b[ARCH=arm64,OS=linux]', 'succeeded');
-- needing a matrix task means all of its job tasks
SELECT * FROM regress.dtasks(:run) WHERE task = 'ship.s';
SELECT regress.report(:run, 'build.b[ARCH=arm64,OS=mac]', 'succeeded');
SELECT * FROM regress.dtasks(:run) WHERE task = 'ship.s';
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'ship.s', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- retry in a dag run
SELECT pipeline.run_pipeline('dag_chain') AS run \gset
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.fast', 'failed');
SELECT regress.report(:run, 'build.slow', 'succeeded');
SELECT * FROM regress.dtasks(:run);
SELECT regress.run_stage(:run);
SELECT stage FROM pipeline.retry_job_task(regress.jt(:run, 'build.fast'));
SELECT * FROM regress.dtasks(:run);
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'build.fast', 'succeeded');
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'test.quick', 'succeeded');
SELECT * FROM regress.claim('dag-runner', 10);
SELECT regress.report(:run, 'deploy.all', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- the surfaces: job_tasks, graph
SELECT task_name, run_when, blocking, needs_left,
       (SELECT array_agg(n.task_name ORDER BY n.id) FROM pipeline.job_tasks n WHERE n.id = ANY (t.needs)) AS needs
  FROM pipeline.job_tasks t WHERE t.pipeline_task_id = :run ORDER BY t.id;
-- edges are the needs (node ids shown as task names, the run id as RUN)
CREATE FUNCTION regress.named_graph(run bigint, fmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g text := pipeline.graph(run, fmt);
    t record;
BEGIN
    FOR t IN SELECT id, task_name FROM pipeline.job_task WHERE pipeline_task_id = run LOOP
        g := regexp_replace(g, '\mt' || t.id || '\M', 't_' || t.task_name, 'g');
    END LOOP;
    RETURN regexp_replace(regexp_replace(g, '#' || run || '\M', '#RUN'), '_' || run || '\M', '_RUN');
END $$;
SELECT regress.named_graph(:run, 'mermaid') AS mermaid;
SELECT regress.named_graph(:run, 'dot') AS dot;

SELECT regress.cancel_all();

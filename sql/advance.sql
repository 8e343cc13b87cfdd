--
-- advance: how a run moves from stage to stage (SPEC §5, §6), driven only by
-- what runners do: claim_job_tasks() and update_job_task_status().
--
-- A stage is finished only when every task in it is complete; a serial stage
-- runs its tasks one after another, a parallel stage all at once; a failure
-- fails the run (unless ignore_failed) and skips what has not started; a
-- canceled report cancels the run.  next_run() shows, at each point, what
-- would be started now.  Every stage change is exactly one event.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "adv_job"}') AS version;
SELECT pipeline.define_pipeline('{"name": "adv_main", "stages": [
  {"name": "prepare", "tasks": [{"name": "p1", "job": "adv_job"}, {"name": "p2", "job": "adv_job"}]},
  {"name": "build", "is_parallel": true, "tasks": [
     {"name": "b1", "job": "adv_job"}, {"name": "b2", "job": "adv_job"}, {"name": "b3", "job": "adv_job"}]},
  {"name": "ship", "tasks": [{"name": "s1", "job": "adv_job"}]}]}') AS version;

-- ---------------------------------------------------------------- a run from start to success
SELECT pipeline.run_pipeline('adv_main') AS run \gset
-- the first task of the serial stage is handed to runners; next_run shows
-- nothing while a task of the current stage is started
SELECT task, stage FROM regress.tasks(:run);
SELECT regress.next(:run);
-- a runner asking for many gets only what is scheduling: p1
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 'prepare.p1', 'active');
SELECT regress.next(:run);
SELECT task, stage FROM regress.tasks(:run);
-- p1 done: the serial stage goes on with p2, still nothing from "build"
SELECT regress.report(:run, 'prepare.p1', 'succeeded');
SELECT task, stage FROM regress.tasks(:run);
SELECT regress.next(:run);
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 'prepare.p2', 'active');
SELECT regress.report(:run, 'prepare.p2', 'succeeded');
-- "prepare" done: the parallel stage starts all its tasks at once
SELECT task, stage FROM regress.tasks(:run);
SELECT * FROM regress.claim('adv-runner', 2);
SELECT regress.report(:run, 'build.b1', 'active');
SELECT regress.report(:run, 'build.b2', 'active');
-- b1 and b2 complete while b3 still waits for a runner: the stage is not
-- finished, nothing new starts
SELECT regress.report(:run, 'build.b1', 'succeeded');
SELECT regress.report(:run, 'build.b2', 'succeeded');
SELECT task, stage FROM regress.tasks(:run);
SELECT regress.next(:run);
-- b3 runs: still nothing new while it is active
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 'build.b3', 'active');
SELECT task, stage FROM regress.tasks(:run) WHERE task LIKE 'ship.%';
-- the last one of the stage completes: "ship" starts
SELECT regress.report(:run, 'build.b3', 'succeeded');
SELECT task, stage FROM regress.tasks(:run);
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 'ship.s1', 'active');
SELECT regress.run_stage(:run), regress.next(:run);
-- the last task completes: the run succeeds, and there is nothing left to run
SELECT regress.report(:run, 'ship.s1', 'succeeded');
SELECT stage, message, end_at IS NOT NULL AS ended FROM pipeline.pipeline_task WHERE id = :run;
SELECT regress.next(:run);
SELECT * FROM regress.claim('adv-runner', 10);
SELECT tasks_total, tasks_done FROM pipeline.pipeline_tasks WHERE id = :run;
-- exactly one event per stage change, in order
SELECT * FROM regress.events(:run);
SELECT count(*) AS events,
       count(DISTINCT (object_id, kind, old_stage, new_stage)) AS distinct_changes,
       count(*) FILTER (WHERE old_stage IS NOT DISTINCT FROM new_stage) AS non_changes
  FROM pipeline.event WHERE pipeline_task_id = :run;

-- next_run() of an unknown run, or of none
SELECT * FROM pipeline.next_run(-1);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.next_run(NULL);
\echo :LAST_ERROR_MESSAGE

-- ---------------------------------------------------------------- failure
SELECT pipeline.define_pipeline('{"name": "adv_fail", "stages": [
  {"name": "test", "is_parallel": true, "tasks": [
     {"name": "x", "job": "adv_job"}, {"name": "y", "job": "adv_job"}, {"name": "z", "job": "adv_job"}]},
  {"name": "ship", "tasks": [{"name": "w", "job": "adv_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('adv_fail') AS run \gset
SELECT regress.last_event() AS ev0 \gset
-- x and y are taken by runners, z is still waiting for one
SELECT * FROM regress.claim('adv-runner', 2);
SELECT regress.report(:run, 'test.x', 'active');
SELECT regress.report(:run, 'test.y', 'active');
-- x fails: the run fails with x's message; what has not started (z, w) is
-- skipped; y, running, is left to finish
SELECT regress.report(:run, 'test.x', 'failed', 'exit code 2');
SELECT stage, message, end_at IS NOT NULL AS ended FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.tasks(:run);
SELECT regress.next(:run);
SELECT * FROM regress.claim('adv-runner', 10);
-- y may still report, and finish; nothing new starts, the run stays failed
-- with the first failure's message
SELECT regress.report(:run, 'test.y', 'succeeded');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev0);

-- a later failure of a running sibling does not change the failed run
SELECT pipeline.run_pipeline('adv_fail') AS run \gset
SELECT * FROM regress.claim('adv-runner', 3);
SELECT regress.report(:run, 'test.x', 'failed', 'x broke');
SELECT regress.report(:run, 'test.y', 'failed', 'y broke too');
SELECT regress.report(:run, 'test.z', 'canceled', 'z stopped');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.tasks(:run);

-- a failure with no message: the run says which task failed
SELECT pipeline.run_pipeline('adv_fail') AS run \gset
SELECT * FROM regress.claim('adv-runner', 1);
SELECT regress.report(:run, 'test.x', 'failed');
SELECT regress.err(message, regress.jt(:run, 'test.x')::text, 'X') AS message
  FROM pipeline.pipeline_task WHERE id = :run;
SELECT regress.cancel_all();

-- ---------------------------------------------------------------- ignore_failed
SELECT pipeline.define_pipeline('{"name": "adv_ignore", "stages": [
  {"name": "test", "is_parallel": true, "tasks": [
     {"name": "flaky", "job": "adv_job", "ignore_failed": true}, {"name": "solid", "job": "adv_job"}]},
  {"name": "ship", "tasks": [{"name": "w", "job": "adv_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('adv_ignore') AS run \gset
SELECT * FROM regress.claim('adv-runner', 2);
-- flaky fails but may: the run goes on, and still waits for solid
SELECT regress.report(:run, 'test.flaky', 'failed', 'flaked');
SELECT regress.run_stage(:run), regress.next(:run);
SELECT * FROM regress.tasks(:run);
SELECT regress.report(:run, 'test.solid', 'succeeded');
SELECT * FROM regress.tasks(:run);
SELECT * FROM regress.claim('adv-runner', 1);
SELECT regress.report(:run, 'ship.w', 'succeeded');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;

-- ---------------------------------------------------------------- a canceled report
SELECT pipeline.run_pipeline('adv_fail') AS run \gset
SELECT regress.last_event() AS ev0 \gset
SELECT * FROM regress.claim('adv-runner', 2);
SELECT regress.report(:run, 'test.x', 'active');
-- x is canceled on its runner: the run is canceled with x's message; z
-- (scheduling) and w (pending) are canceled, y (claimed) must stop
SELECT regress.report(:run, 'test.x', 'canceled', 'killed on the runner');
SELECT stage, message, end_at IS NOT NULL AS ended FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM regress.tasks(:run);
SELECT regress.next(:run);
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 'test.y', 'canceled');
SELECT * FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev0);

-- ---------------------------------------------------------------- next_run while a set is held back
-- A runner may hand a claimed task back (report it pending).  Then nothing of
-- its stage is started, and next_run() shows the set that would start now:
-- all pending tasks of a parallel stage, the first of a serial one.
-- force_trigger_pipeline makes the engine start it.
SELECT pipeline.define_pipeline('{"name": "adv_next", "stages": [
  {"name": "par", "is_parallel": true, "tasks": [{"name": "a", "job": "adv_job"}, {"name": "b", "job": "adv_job"}]},
  {"name": "ser", "tasks": [{"name": "c", "job": "adv_job"}, {"name": "d", "job": "adv_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('adv_next') AS run \gset
SELECT * FROM regress.claim('adv-runner', 2);
SELECT regress.report(:run, 'par.a', 'pending');
-- b is still started: nothing
SELECT regress.next(:run);
-- handing a task back revokes its token: that runner has let go of it
SELECT regress.report(:run, 'par.a', 'scheduling');
SELECT * FROM regress.tasks(:run);
-- next_run() is read-only
SELECT regress.state() AS before \gset
SELECT count(*) FROM pipeline.next_run(:run);
SELECT regress.state() = :'before' AS unchanged;
-- b handed back with force_trigger_pipeline: the set starts again at once
SELECT regress.last_event() AS ev0 \gset
SELECT stage FROM pipeline.update_job_task_status(regress.jt(:run, 'par.b'), 'pending',
    (SELECT update_token FROM regress.tok WHERE id = regress.jt(:run, 'par.b')),
    force_trigger_pipeline => true);
SELECT * FROM regress.tasks(:run);
SELECT * FROM regress.events(:run, :ev0);
SELECT regress.next(:run);
SELECT * FROM regress.claim('adv-runner', 2);
SELECT regress.report(:run, 'par.a', 'succeeded');
SELECT regress.report(:run, 'par.b', 'succeeded');
SELECT * FROM regress.claim('adv-runner', 2);
SELECT regress.report(:run, 'ser.c', 'pending');
SELECT regress.next(:run);
SELECT * FROM regress.tasks(:run);

SELECT regress.cancel_all();

-- ---------------------------------------------------------------- gates hold a stage open
-- the tasks of a run with their gates; the job task events with the gate they show
CREATE FUNCTION pg_temp.gates(run bigint)
RETURNS TABLE (task text, stage pipeline.task_stage, gate text) LANGUAGE sql AS $$
SELECT stage_name || '.' || task_name, stage, gate FROM pipeline.job_tasks
 WHERE pipeline_task_id = run ORDER BY stage_index, task_index
$$;
CREATE FUNCTION pg_temp.gate_events(run bigint, after bigint)
RETURNS TABLE (task text, old_stage pipeline.task_stage, new_stage pipeline.task_stage, gate text)
LANGUAGE sql AS $$
SELECT t.stage_name || '.' || t.task_name, e.old_stage, e.new_stage, e.payload->>'gate'
  FROM pipeline.event e JOIN pipeline.job_task t ON e.kind = 'job_task' AND t.id = e.object_id
 WHERE e.pipeline_task_id = run AND e.id > after ORDER BY e.id
$$;
-- An audit gate opens when the task's turn comes: the task stays pending with
-- gate "audit", nothing of its stage may start for it (its siblings run), and
-- listeners get an event (pending -> pending) that says a gate waits.
SELECT pipeline.define_pipeline('{"name": "adv_gates", "stages": [
  {"name": "s", "is_parallel": true, "tasks": [
     {"name": "audited", "job": "adv_job", "audit": {"enable": true, "auditors": ["bob"]}},
     {"name": "free", "job": "adv_job"}]},
  {"name": "t", "tasks": [{"name": "later", "job": "adv_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('adv_gates') AS run \gset
SELECT * FROM pg_temp.gates(:run);
SELECT * FROM regress.events(:run);
SELECT * FROM pg_temp.gate_events(:run, 0);
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 's.free', 'succeeded');
-- the sibling is done, but the stage waits for the gate
SELECT * FROM pg_temp.gates(:run);
SELECT regress.next(:run);
SELECT regress.cancel_all();

-- A confirm gate holds a finished task: succeeded or failed, the run waits
-- for the decision (the failure does not fail the run yet), and the next
-- stage does not start.
SELECT pipeline.define_pipeline('{"name": "adv_confirm", "stages": [
  {"name": "s", "is_parallel": true, "tasks": [
     {"name": "ok", "job": "adv_job", "confirm": {"enable": true, "checkers": ["carol"]}},
     {"name": "bad", "job": "adv_job", "confirm": {"enable": true, "checkers": ["carol"]}}]},
  {"name": "t", "tasks": [{"name": "later", "job": "adv_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('adv_confirm') AS run \gset
SELECT regress.last_event() AS ev0 \gset
SELECT * FROM regress.claim('adv-runner', 10);
SELECT regress.report(:run, 's.ok', 'succeeded');
SELECT regress.report(:run, 's.bad', 'failed', 'tests failed');
SELECT * FROM pg_temp.gates(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT tasks_done FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT regress.next(:run);
SELECT * FROM pg_temp.gate_events(:run, :ev0);
-- canceling the run drops the waiting gates
SELECT (pipeline.cancel_pipeline_task(:run)).stage;
SELECT * FROM pg_temp.gates(:run);
SELECT regress.cancel_all();

-- every lock the engine takes is a transaction lock: none is left behind
SELECT count(*) AS advisory_locks_left FROM pg_locks
 WHERE pid = pg_backend_pid() AND locktype = 'advisory';

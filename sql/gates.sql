--
-- gates: audit and confirm gates (SPEC §5, §9).
--
-- Audit (before running): when its turn comes the task waits pending with
-- gate "audit" until audit_job_task() by a listed auditor (current_user):
-- pass -> scheduling, deny (a comment is required) -> failed, and the run
-- reacts as to any failure (fails, or continues with ignore_failed).
-- Confirm (after running): the finished task waits with gate "confirm" and
-- its stage does not finish until confirm_job_task() by a listed checker:
-- pass -> continue (even for a failed task), deny -> failed -> the run reacts.
-- Every decision is stored in gate_result (pass, by, at, comment) and written
-- as an event.  Refusals: not listed 42501, not waiting 55000, deny without
-- comment 22023, unknown task P0002; none changes anything.
\set VERBOSITY sqlstate

-- the people at the gates, and one who is not listed anywhere
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_gate_auditor;
DROP ROLE IF EXISTS regress_gate_checker;
DROP ROLE IF EXISTS regress_gate_stranger;
RESET client_min_messages;
CREATE ROLE regress_gate_auditor;
CREATE ROLE regress_gate_checker;
CREATE ROLE regress_gate_stranger;
GRANT USAGE ON SCHEMA pipeline TO regress_gate_auditor, regress_gate_checker, regress_gate_stranger;
GRANT EXECUTE ON FUNCTION pipeline.audit_job_task(bigint, boolean, text),
                          pipeline.confirm_job_task(bigint, boolean, text)
   TO regress_gate_auditor, regress_gate_checker, regress_gate_stranger;

-- The gates of the tasks of a run
CREATE FUNCTION pg_temp.gates(run bigint)
RETURNS TABLE (task text, stage pipeline.task_stage, gate text, decided text, message text)
LANGUAGE sql AS $$
SELECT stage_name || '.' || task_name, stage, gate,
       (SELECT string_agg(k || ':' || CASE WHEN (v->>'pass')::boolean THEN 'pass' ELSE 'deny' END
                          || ' by ' || (v->>'by'), ', ' ORDER BY k)
          FROM jsonb_each(gate_result) AS g(k, v)),
       message
  FROM pipeline.job_tasks WHERE pipeline_task_id = run ORDER BY stage_index, task_index
$$;
-- The events of a run after `after`, with the gate and the decisions they carry
CREATE FUNCTION pg_temp.gate_events(run bigint, after bigint)
RETURNS TABLE (object text, old_stage pipeline.task_stage, new_stage pipeline.task_stage,
               gate text, audit text, confirm text)
LANGUAGE sql AS $$
SELECT CASE e.kind WHEN 'pipeline_task' THEN 'run' ELSE t.stage_name || '.' || t.task_name END,
       e.old_stage, e.new_stage, e.payload->>'gate',
       (e.payload->'gate_result'->'audit'->>'pass') || ' by ' || (e.payload->'gate_result'->'audit'->>'by'),
       (e.payload->'gate_result'->'confirm'->>'pass') || ' by ' || (e.payload->'gate_result'->'confirm'->>'by')
  FROM pipeline.event e LEFT JOIN pipeline.job_task t ON e.kind = 'job_task' AND t.id = e.object_id
 WHERE e.pipeline_task_id = run AND e.id > after ORDER BY e.id
$$;

SELECT pipeline.define_job('{"name": "gt_job"}') AS version;
SELECT pipeline.define_pipeline('{"name": "gt_audit", "stages": [
  {"name": "build", "tasks": [{"name": "compile", "job": "gt_job"}]},
  {"name": "deploy", "is_parallel": true, "tasks": [
     {"name": "prod", "job": "gt_job",
      "audit": {"enable": true, "auditors": ["regress_gate_auditor", "regress_gate_lead"]}},
     {"name": "docs", "job": "gt_job"}]},
  {"name": "notify", "tasks": [{"name": "mail", "job": "gt_job"}]}]}') AS version;

-- ================================================================ audit: pass
SELECT pipeline.run_pipeline('gt_audit') AS run \gset
SELECT regress.jt(:run, 'deploy.prod') AS prod, regress.jt(:run, 'deploy.docs') AS docs \gset
-- not its turn yet: plain pending, no gate
SELECT * FROM pg_temp.gates(:run);
SELECT * FROM regress.claim('gt-runner');
SELECT regress.last_event() AS ev0 \gset
SELECT regress.report(:run, 'build.compile', 'succeeded');
-- its turn: prod waits pending at its audit gate, its sibling is scheduled
SELECT * FROM pg_temp.gates(:run);
-- the gate opening is an event (pending -> pending, gate audit)
SELECT * FROM pg_temp.gate_events(:run, :ev0);
-- a task at its audit gate is not handed to runners; the stage waits for it
SELECT * FROM regress.claim('gt-runner', 10);
SELECT regress.report(:run, 'deploy.docs', 'succeeded');
SELECT regress.next(:run);
SELECT * FROM pg_temp.gates(:run);
SELECT tasks_at_gates >= 1 AS counted_at_gates FROM pipeline.stats;

-- refusals, none of which changes anything
SELECT regress.state() AS before \gset
-- a user who is not one of its auditors (the superuser is not either)
SET ROLE regress_gate_stranger;
SELECT pipeline.audit_job_task(:prod, true, 'looks fine');
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'prod', 'PROD');
SET ROLE regress_gate_checker;
SELECT pipeline.audit_job_task(:prod, false, 'no');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT pipeline.audit_job_task(:prod, true);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'prod', 'PROD');
-- a denial needs a comment
SET ROLE regress_gate_auditor;
SELECT pipeline.audit_job_task(:prod, false);
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'prod', 'PROD');
SET ROLE regress_gate_auditor;
SELECT pipeline.audit_job_task(:prod, false, '');
\echo :LAST_ERROR_SQLSTATE
-- a task that is not waiting at an audit gate
SELECT pipeline.audit_job_task(:docs, true);
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'docs', 'DOCS');
SET ROLE regress_gate_auditor;
-- the wrong gate: prod waits at its audit gate, not a confirm gate
SELECT pipeline.confirm_job_task(:prod, true);
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'prod', 'PROD');
-- unknown or null
SELECT pipeline.audit_job_task(-1, true);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.audit_job_task(NULL, true);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.audit_job_task(:prod, NULL);
\echo :LAST_ERROR_SQLSTATE
-- READ COMMITTED only
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pipeline.audit_job_task(:prod, true);
\echo :LAST_ERROR_MESSAGE
ROLLBACK;
SELECT regress.state() = :'before' AS unchanged;
SELECT * FROM pg_temp.gates(:run);

-- a listed auditor passes it: scheduling, the decision stored and sent as an event
SELECT regress.last_event() AS ev1 \gset
SET ROLE regress_gate_auditor;
SELECT stage, gate FROM pipeline.audit_job_task(:prod, true, 'change approved');
RESET ROLE;
SELECT gate_result->'audit'->>'by' AS by, gate_result->'audit'->'pass' AS pass,
       gate_result->'audit'->>'comment' AS comment,
       (gate_result->'audit'->>'at')::timestamptz <= now() AS at_recorded
  FROM pipeline.job_tasks WHERE id = :prod;
SELECT * FROM pg_temp.gate_events(:run, :ev1);
-- a decision is taken once
SET ROLE regress_gate_auditor;
SELECT pipeline.audit_job_task(:prod, true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- the gate passed, the task runs like any other and the run goes on
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'deploy.prod', 'succeeded');
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'notify.mail', 'succeeded');
SELECT regress.run_stage(:run);
SELECT * FROM pg_temp.gates(:run);

-- ================================================================ audit: deny
SELECT pipeline.run_pipeline('gt_audit') AS run \gset
SELECT regress.jt(:run, 'deploy.prod') AS prod \gset
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'build.compile', 'succeeded');
SELECT regress.last_event() AS ev2 \gset
SET ROLE regress_gate_auditor;
SELECT stage, gate, message FROM pipeline.audit_job_task(:prod, false, 'freeze week');
RESET ROLE;
-- the task failed with the comment; the run fails: its sibling that was
-- waiting for a runner and the tasks after it are skipped
SELECT * FROM pg_temp.gates(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT gate_result->'audit'->>'by' AS by, gate_result->'audit'->'pass' AS pass,
       gate_result->'audit'->>'comment' AS comment
  FROM pipeline.job_tasks WHERE id = :prod;
SELECT * FROM pg_temp.gate_events(:run, :ev2);
SELECT * FROM regress.claim('gt-runner', 10);
-- retried, the task must pass its gate again: the old decision is cleared
SELECT stage, gate, gate_result FROM pipeline.retry_job_task(:prod);
SELECT * FROM pg_temp.gates(:run);
SET ROLE regress_gate_auditor;
SELECT stage FROM pipeline.audit_job_task(:prod, true, 'after the freeze');
RESET ROLE;
SELECT * FROM pg_temp.gates(:run);
SELECT regress.cancel_all();

-- ================================================================ audit: the run fails while the gate waits
SELECT pipeline.run_pipeline('gt_audit') AS run \gset
SELECT regress.jt(:run, 'deploy.prod') AS prod \gset
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'build.compile', 'succeeded');
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'deploy.docs', 'failed', 'docs broken');
-- the waiting gate is moot: the task is skipped, the gate closed
SELECT * FROM pg_temp.gates(:run);
SELECT regress.run_stage(:run);
SET ROLE regress_gate_auditor;
SELECT pipeline.audit_job_task(:prod, true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- ================================================================ audit: deny with ignore_failed
SELECT pipeline.define_pipeline('{"name": "gt_audit_ignore", "stages": [
  {"name": "maybe", "tasks": [
     {"name": "risky", "job": "gt_job", "ignore_failed": true,
      "audit": {"enable": true, "auditors": ["regress_gate_auditor"]}}]},
  {"name": "after", "tasks": [{"name": "always", "job": "gt_job"}]}]}') AS version;
SELECT pipeline.run_pipeline('gt_audit_ignore') AS run \gset
SELECT regress.jt(:run, 'maybe.risky') AS risky \gset
-- the first task of the run waits at its gate right away
SELECT * FROM pg_temp.gates(:run);
SET ROLE regress_gate_auditor;
SELECT stage FROM pipeline.audit_job_task(:risky, false, 'not needed');
RESET ROLE;
-- denied and failed, but ignored: the run goes on
SELECT * FROM pg_temp.gates(:run);
SELECT regress.run_stage(:run);
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'after.always', 'succeeded');
SELECT regress.run_stage(:run);

-- ================================================================ confirm
SELECT pipeline.define_pipeline('{"name": "gt_confirm", "stages": [
  {"name": "test", "is_parallel": true, "tasks": [
     {"name": "unit", "job": "gt_job", "confirm": {"enable": true, "checkers": ["regress_gate_checker"]}},
     {"name": "lint", "job": "gt_job"}]},
  {"name": "ship", "tasks": [{"name": "upload", "job": "gt_job"}]}]}') AS version;

-- ---------------------------------------------------------------- pass
SELECT pipeline.run_pipeline('gt_confirm') AS run \gset
SELECT regress.jt(:run, 'test.unit') AS unit, regress.jt(:run, 'test.lint') AS lint \gset
SELECT * FROM regress.claim('gt-runner', 2);
SELECT regress.last_event() AS ev3 \gset
SELECT regress.report(:run, 'test.unit', 'succeeded');
SELECT regress.report(:run, 'test.lint', 'succeeded');
-- unit finished and waits at its confirm gate: the stage is not finished,
-- nothing of the next stage starts
SELECT * FROM pg_temp.gates(:run);
SELECT regress.run_stage(:run), regress.next(:run);
SELECT tasks_done, tasks_total FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT * FROM regress.claim('gt-runner', 10);
SELECT * FROM pg_temp.gate_events(:run, :ev3);

-- refusals, none of which changes anything
SELECT regress.state() AS before \gset
SET ROLE regress_gate_stranger;
SELECT pipeline.confirm_job_task(:unit, true);
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'unit', 'UNIT');
-- an auditor is not a checker
SET ROLE regress_gate_auditor;
SELECT pipeline.confirm_job_task(:unit, true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_gate_checker;
SELECT pipeline.confirm_job_task(:unit, false);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.confirm_job_task(:unit, false, '');
\echo :LAST_ERROR_SQLSTATE
-- the wrong gate, and a task without a waiting gate
SELECT pipeline.audit_job_task(:unit, true);
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'unit', 'UNIT');
SET ROLE regress_gate_checker;
SELECT pipeline.confirm_job_task(:lint, true);
RESET ROLE;
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'lint', 'LINT');
SELECT pipeline.confirm_job_task(-1, true);
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;

-- the checker passes it: the stage is finished, the next one starts
SELECT regress.last_event() AS ev4 \gset
SET ROLE regress_gate_checker;
SELECT stage, gate FROM pipeline.confirm_job_task(:unit, true, 'release notes checked');
RESET ROLE;
SELECT * FROM pg_temp.gates(:run);
SELECT gate_result->'confirm'->>'by' AS by, gate_result->'confirm'->'pass' AS pass,
       gate_result->'confirm'->>'comment' AS comment
  FROM pipeline.job_tasks WHERE id = :unit;
-- the decision is an event even though the stage stays succeeded
SELECT * FROM pg_temp.gate_events(:run, :ev4);
SET ROLE regress_gate_checker;
SELECT pipeline.confirm_job_task(:unit, true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'ship.upload', 'succeeded');
SELECT regress.run_stage(:run);

-- ---------------------------------------------------------------- a failed task waits too; deny
SELECT pipeline.run_pipeline('gt_confirm') AS run \gset
SELECT regress.jt(:run, 'test.unit') AS unit \gset
SELECT * FROM regress.claim('gt-runner', 2);
SELECT regress.report(:run, 'test.unit', 'failed', 'tests failed');
SELECT regress.report(:run, 'test.lint', 'succeeded');
-- the failure does not fail the run while the gate waits
SELECT * FROM pg_temp.gates(:run);
SELECT regress.run_stage(:run);
SELECT regress.last_event() AS ev5 \gset
SET ROLE regress_gate_checker;
SELECT stage, message FROM pipeline.confirm_job_task(:unit, false, 'real failure');
RESET ROLE;
-- denied: the task stays failed, and now the run fails
SELECT * FROM pg_temp.gates(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM pg_temp.gate_events(:run, :ev5);

-- ---------------------------------------------------------------- a failed task passed: continue
SELECT pipeline.run_pipeline('gt_confirm') AS run \gset
SELECT regress.jt(:run, 'test.unit') AS unit \gset
SELECT * FROM regress.claim('gt-runner', 2);
SELECT regress.report(:run, 'test.unit', 'failed', 'known flaky test');
SELECT regress.report(:run, 'test.lint', 'succeeded');
SET ROLE regress_gate_checker;
SELECT stage, gate FROM pipeline.confirm_job_task(:unit, true, 'accepted: flaky');
RESET ROLE;
-- the failure is accepted: unit stays failed, the run goes on
SELECT * FROM pg_temp.gates(:run);
SELECT regress.run_stage(:run);
SELECT * FROM regress.claim('gt-runner');
SELECT regress.report(:run, 'ship.upload', 'succeeded');
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;

-- ---------------------------------------------------------------- a succeeded task denied
SELECT pipeline.run_pipeline('gt_confirm') AS run \gset
SELECT regress.jt(:run, 'test.unit') AS unit \gset
SELECT * FROM regress.claim('gt-runner', 2);
SELECT regress.report(:run, 'test.unit', 'succeeded');
SELECT regress.report(:run, 'test.lint', 'succeeded');
SELECT regress.last_event() AS ev6 \gset
SET ROLE regress_gate_checker;
SELECT stage, gate, message FROM pipeline.confirm_job_task(:unit, false, 'wrong artifact');
RESET ROLE;
SELECT * FROM pg_temp.gates(:run);
SELECT stage, message FROM pipeline.pipeline_task WHERE id = :run;
SELECT * FROM pg_temp.gate_events(:run, :ev6);

-- ---------------------------------------------------------------- denied while a sibling still runs
SELECT pipeline.run_pipeline('gt_confirm') AS run \gset
SELECT regress.jt(:run, 'test.unit') AS unit \gset
SELECT * FROM regress.claim('gt-runner', 2);
SELECT regress.report(:run, 'test.unit', 'succeeded');
SELECT regress.report(:run, 'test.lint', 'active');
SET ROLE regress_gate_checker;
SELECT stage FROM pipeline.confirm_job_task(:unit, false, 'bad build');
RESET ROLE;
-- the run failed; the running sibling may finish, nothing new starts
SELECT * FROM pg_temp.gates(:run);
SELECT regress.run_stage(:run);
SELECT regress.report(:run, 'test.lint', 'succeeded');
SELECT * FROM pg_temp.gates(:run);
SELECT * FROM regress.claim('gt-runner', 10);

SELECT regress.cancel_all();
DROP OWNED BY regress_gate_auditor, regress_gate_checker, regress_gate_stranger;
DROP ROLE regress_gate_auditor, regress_gate_checker, regress_gate_stranger;

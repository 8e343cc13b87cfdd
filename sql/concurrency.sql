--
-- concurrency: concurrency keys and priorities (SPEC §14, issue 13).
--
-- A job or task field concurrency {"key", "limit"} is checked at definition
-- time; the key's $NAME / ${NAME} are expanded from the task's params when
-- the run is created; at most `limit` tasks with one key are creating, active
-- or canceling at once, across runs.  A claim skips a task whose key is full
-- (it stays scheduling) and takes it once a slot frees: when the holder
-- finishes, fails, is canceled, reaped, retried or handed back.  Claims take
-- higher priority first (run_pipeline(..., priority)), then the oldest.
-- pipeline.stats shows the waiting tasks per priority and per key.
\set VERBOSITY sqlstate

-- runs earlier tests left unfinished would be claimed here too
SELECT regress.cancel_all() IS NOT NULL AS clean_start;

-- The queue and the slots agree with the stages: every scheduling task has
-- its queue row and no other task has one; every task with a key that is
-- creating/active/canceling has its slot row and no other task has one.
CREATE FUNCTION regress.queue_and_slots_ok() RETURNS boolean LANGUAGE sql AS $$
SELECT NOT EXISTS (SELECT 1 FROM pipeline.job_task t
                    WHERE (t.stage = 'scheduling') <>
                          EXISTS (SELECT 1 FROM pipeline.job_queue q WHERE q.job_task_id = t.id))
   AND NOT EXISTS (SELECT 1 FROM pipeline.job_task t
                    WHERE (t.concurrency_key IS NOT NULL AND t.stage IN ('creating', 'active', 'canceling')) <>
                          EXISTS (SELECT 1 FROM pipeline.concurrency_slot s
                                   WHERE s.job_task_id = t.id AND s.key = t.concurrency_key))
$$;

-- the slots in use and the tasks waiting (pipeline.stats), per key LIKE pattern
CREATE FUNCTION regress.keys(pattern text) RETURNS TABLE (key text, running bigint, waiting bigint)
LANGUAGE sql AS $$
SELECT k.key, coalesce((s.running_by_concurrency_key ->> k.key)::bigint, 0),
       coalesce((s.waiting_by_concurrency_key ->> k.key)::bigint, 0)
  FROM pipeline.stats s,
       LATERAL (SELECT jsonb_object_keys(s.running_by_concurrency_key || s.waiting_by_concurrency_key)) k(key)
 WHERE k.key LIKE pattern
 ORDER BY 1
$$;

-- ================================================================ definitions
SELECT pipeline.define_job('{"name": "cc_deploy", "command": "deploy",
  "params": [{"name": "ENV", "default": "dev"}, {"name": "TOKEN", "sensitive": true, "default": "t0k"}],
  "concurrency": {"key": "cc-deploy-$ENV"}}') AS version;
-- stored normalized: the limit defaults to 1
SELECT definition -> 'concurrency' AS concurrency FROM pipeline.jobs WHERE name = 'cc_deploy';
SELECT pipeline.define_job('{"name": "cc_build", "command": "make"}') AS version;
SELECT definition ? 'concurrency' AS has_concurrency FROM pipeline.jobs WHERE name = 'cc_build';
SELECT pipeline.define_job('{"name": "cc_pair", "concurrency": {"key": "cc-pair", "limit": 2}, "retries": 1}') AS version;
SELECT pipeline.define_job('{"name": "cc_null", "concurrency": null}') AS version;

-- refusals name the path, and store nothing
SELECT regress.state() AS before \gset
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": "deploy"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "k", "limit": 1, "scope": "all"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"limit": 1}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": 7}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": ""}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job(jsonb_build_object('name', 'cc_bad', 'concurrency', jsonb_build_object('key', repeat('k', 201))));
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "deploy-$"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "deploy-$1"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "deploy-${ENV"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "k", "limit": 0}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "k", "limit": -1}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "k", "limit": 1.5}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "k", "limit": "2"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "cc_bad", "concurrency": {"key": "k", "limit": 100001}}');
\echo :LAST_ERROR_MESSAGE
-- on a task, and in an inline job
SELECT pipeline.define_pipeline('{"name": "cc_bad", "stages": [{"name": "s", "tasks": [
  {"name": "t", "job": "cc_build", "concurrency": {"key": "k", "limit": true}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "cc_bad", "stages": [{"name": "s", "tasks": [
  {"name": "t", "job": {"command": "x", "concurrency": {"key": "k", "max": 2}}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;

-- $$ is a literal $, ${NAME} a name followed by letters
SELECT pipeline.define_pipeline('{"name": "cc_names", "stages": [{"name": "s", "is_parallel": true, "tasks": [
  {"name": "braces", "job": "cc_deploy", "concurrency": {"key": "cc-${ENV}x-$$", "limit": 3}},
  {"name": "plain", "job": "cc_deploy"},
  {"name": "none", "job": "cc_build"}]}]}') AS version;
SELECT definition #> '{stages,0,tasks,0,concurrency}' AS task_concurrency FROM pipeline.pipelines WHERE name = 'cc_names';

-- ================================================================ keys at run creation
-- the task's params: job default, run param, scoped run param; the task's field wins
SELECT pipeline.run_pipeline('cc_names') AS run \gset
SELECT task_name, concurrency_key, concurrency_limit, priority FROM pipeline.job_task
 WHERE pipeline_task_id = :run ORDER BY task_index;
SELECT regress.cancel_all();
SELECT pipeline.run_pipeline('cc_names', '{"ENV": "qa", "s.plain.ENV": "prod"}') AS run \gset
SELECT task_name, concurrency_key, concurrency_limit FROM pipeline.job_task
 WHERE pipeline_task_id = :run ORDER BY task_index;
SELECT regress.cancel_all();

-- a name without a value, or a sensitive one: refused naming the task, nothing stored
SELECT pipeline.define_pipeline('{"name": "cc_missing", "stages": [{"name": "s", "tasks": [
  {"name": "t", "job": "cc_build", "concurrency": {"key": "cc-$REGION"}}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "cc_secret", "stages": [{"name": "s", "tasks": [
  {"name": "t", "job": "cc_deploy", "concurrency": {"key": "cc-$TOKEN"}}]}]}') AS version;
SELECT regress.state() AS before \gset
SELECT pipeline.run_pipeline('cc_missing');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.plan('cc_missing');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('cc_secret');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.run_pipeline('cc_missing', jsonb_build_object('REGION', repeat('x', 600)));
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;
-- with a value it runs; an empty value is a value
SELECT pipeline.run_pipeline('cc_missing', '{"REGION": ""}') AS run \gset
SELECT concurrency_key FROM pipeline.job_task WHERE pipeline_task_id = :run;
SELECT regress.cancel_all();

-- ================================================================ the limit, across runs
SELECT pipeline.define_pipeline('{"name": "cc_one", "stages": [{"name": "s", "tasks": [
  {"name": "deploy", "job": "cc_deploy"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "cc_build1", "stages": [{"name": "s", "tasks": [
  {"name": "build", "job": "cc_build"}]}]}') AS version;
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "prod"}') AS p1 \gset
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "prod"}') AS p2 \gset
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "staging"}') AS s1 \gset
SELECT pipeline.run_pipeline('cc_build1') AS b1 \gset
SELECT * FROM regress.keys('cc-deploy-%');
-- one prod deploy at a time: p2 is skipped, staging and the build are taken
SELECT * FROM regress.claim('cc-runner', 10);
SELECT regress.tasks(:p1) AS p1, regress.tasks(:p2) AS p2;
SELECT * FROM regress.keys('cc-deploy-%');
SELECT regress.queue_and_slots_ok();
-- nothing more while p1 holds the slot
SELECT * FROM regress.claim('cc-runner', 10);
-- p1 finishes: its slot frees, p2 is taken
SELECT regress.report(:p1, 's.deploy', 'active');
SELECT * FROM regress.claim('cc-runner', 10);
SELECT regress.report(:p1, 's.deploy', 'succeeded');
SELECT * FROM regress.keys('cc-deploy-%');
SELECT * FROM regress.claim('cc-runner', 10);
SELECT regress.tasks(:p2) AS p2;
SELECT * FROM regress.keys('cc-deploy-%');
SELECT regress.queue_and_slots_ok();
SELECT regress.cancel_all();

-- ================================================================ skipping: the oldest claimable first
-- a full key does not hold up younger tasks behind it, even with max 1
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "skip"}') AS a \gset
SELECT * FROM regress.claim('cc-runner');
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "skip"}') AS b \gset
SELECT pipeline.run_pipeline('cc_build1') AS c \gset
SELECT * FROM regress.claim('cc-runner');
SELECT regress.tasks(:b) AS b, regress.tasks(:c) AS c;
-- several tasks of one full key in one claim: one taken, the others stay waiting
SELECT count(pipeline.run_pipeline('cc_one', '{"ENV": "batch"}')) AS runs FROM generate_series(1, 3);
SELECT pipeline.run_pipeline('cc_build1') AS d \gset
SELECT * FROM regress.claim('cc-runner', 10);
SELECT * FROM regress.keys('cc-deploy-batch');
SELECT regress.cancel_all();

-- ================================================================ limit 2
SELECT pipeline.define_pipeline('{"name": "cc_pairs", "stages": [{"name": "s", "tasks": [
  {"name": "p", "job": "cc_pair"}]}]}') AS version;
SELECT count(pipeline.run_pipeline('cc_pairs')) AS runs FROM generate_series(1, 3);
SELECT count(*) AS claimed FROM regress.claim('cc-runner', 10);
SELECT * FROM regress.keys('cc-pair');
SELECT regress.cancel_all();

-- ================================================================ cancel gives the slot back
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "cancel"}') AS holder \gset
SELECT * FROM regress.claim('cc-runner');
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "cancel"}') AS waiter \gset
SELECT regress.report(:holder, 's.deploy', 'active');
-- canceling still holds the slot: the runner has not stopped the job yet
SELECT stage FROM pipeline.cancel_pipeline_task(:holder);
SELECT regress.tasks(:holder) AS holder;
SELECT * FROM regress.claim('cc-runner');
SELECT * FROM regress.keys('cc-deploy-cancel');
-- the runner reports canceled: the slot is free and used once
SELECT regress.report(:holder, 's.deploy', 'canceled');
SELECT * FROM regress.keys('cc-deploy-cancel');
SELECT * FROM regress.claim('cc-runner', 10);
SELECT * FROM regress.claim('cc-runner', 10);
SELECT * FROM regress.keys('cc-deploy-cancel');
-- a waiting task canceled leaves the queue
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "cancel"}') AS waiter2 \gset
SELECT stage FROM pipeline.cancel_pipeline_task(:waiter2);
SELECT * FROM regress.keys('cc-deploy-cancel');
SELECT regress.queue_and_slots_ok();
SELECT regress.cancel_all();

-- ================================================================ failure, retry, hand-back
-- a holder that fails gives the slot back
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "fail"}') AS holder \gset
SELECT * FROM regress.claim('cc-runner');
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "fail"}') AS waiter \gset
SELECT regress.report(:holder, 's.deploy', 'failed', 'boom');
SELECT * FROM regress.claim('cc-runner');
SELECT * FROM regress.keys('cc-deploy-fail');
SELECT regress.cancel_all();
-- a runner handing a task back (reporting scheduling) gives the slot back and requeues it
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "back"}') AS t1 \gset
SELECT * FROM regress.claim('cc-runner');
SELECT regress.report(:t1, 's.deploy', 'scheduling');
SELECT * FROM regress.keys('cc-deploy-back');
SELECT * FROM regress.claim('cc-runner');
SELECT * FROM regress.keys('cc-deploy-back');
SELECT regress.cancel_all();
-- automatic retry: the failed attempt gives the slot back; it waits its backoff, a
-- younger task takes the slot meanwhile, and the retry re-takes it when that one is done
SELECT pipeline.define_pipeline('{"name": "cc_retry", "stages": [{"name": "s", "tasks": [
  {"name": "r", "job": "cc_pair", "concurrency": {"key": "cc-retry"}}]}]}') AS version;
SELECT pipeline.run_pipeline('cc_retry') AS r1 \gset
SELECT * FROM regress.claim('cc-runner');
SELECT pipeline.run_pipeline('cc_retry') AS r2 \gset
SELECT regress.report(:r1, 's.r', 'failed', 'flaky');
SELECT task, stage FROM regress.tasks(:r1);
SELECT * FROM regress.keys('cc-retry');
SELECT * FROM regress.claim('cc-runner');
UPDATE pipeline.job_task SET retry_at = now() WHERE id = regress.jt(:r1, 's.r');
SELECT * FROM regress.claim('cc-runner');
SELECT * FROM regress.keys('cc-retry');
SELECT regress.report(:r2, 's.r', 'succeeded');
SELECT * FROM regress.claim('cc-runner');
SELECT attempt, stage FROM pipeline.job_task WHERE id = regress.jt(:r1, 's.r');
SELECT * FROM regress.keys('cc-retry');
SELECT regress.queue_and_slots_ok();
SELECT regress.cancel_all();

-- ================================================================ reap gives the slot back
SET pipeline.heartbeat_timeout = '1h';
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "reap"}') AS holder \gset
SELECT * FROM regress.claim('cc-runner');
SELECT regress.report(:holder, 's.deploy', 'active');
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "reap"}') AS waiter \gset
SELECT * FROM regress.claim('cc-runner');
-- the holder's runner died: no heartbeat for two hours
UPDATE pipeline.job_task SET heartbeat_at = now() - interval '2 hours' WHERE id = regress.jt(:holder, 's.deploy');
SELECT pipeline.reap() >= 1 AS reaped;
SELECT stage, message FROM pipeline.job_task WHERE id = regress.jt(:holder, 's.deploy');
SELECT * FROM regress.keys('cc-deploy-reap');
SELECT * FROM regress.claim('cc-runner');
SELECT * FROM regress.keys('cc-deploy-reap');
RESET pipeline.heartbeat_timeout;
-- retry_job_task re-opens the reaped task: it waits for the slot again
SELECT stage FROM pipeline.retry_job_task(regress.jt(:holder, 's.deploy'));
SELECT regress.tasks(:holder) AS holder;
SELECT * FROM regress.claim('cc-runner');
SELECT regress.report(:waiter, 's.deploy', 'succeeded');
SELECT * FROM regress.claim('cc-runner');
SELECT * FROM regress.keys('cc-deploy-reap');
SELECT regress.queue_and_slots_ok();
SELECT regress.cancel_all();

-- ================================================================ priorities
SELECT pipeline.run_pipeline('cc_build1', priority => 0) AS low \gset
SELECT pipeline.run_pipeline('cc_build1', priority => 10) AS high \gset
SELECT pipeline.run_pipeline('cc_build1', priority => -5) AS lowest \gset
SELECT pipeline.run_pipeline('cc_build1', priority => 10) AS high2 \gset
SELECT pipeline.run_pipeline('cc_build1', '{}', false, NULL, '{}', 'error', NULL) AS dflt \gset
SELECT priority FROM pipeline.job_task WHERE pipeline_task_id = :dflt;
SELECT waiting_by_priority FROM pipeline.stats;
-- higher first, then the oldest
SELECT (SELECT c.id FROM pipeline.claim_job_tasks('cc-runner') c) = regress.jt(:high, 's.build') AS high_first;
SELECT (SELECT c.id FROM pipeline.claim_job_tasks('cc-runner') c) = regress.jt(:high2, 's.build') AS then_high2;
SELECT (SELECT c.id FROM pipeline.claim_job_tasks('cc-runner') c) = regress.jt(:low, 's.build') AS then_low;
SELECT (SELECT c.id FROM pipeline.claim_job_tasks('cc-runner') c) = regress.jt(:dflt, 's.build') AS then_default;
SELECT (SELECT c.id FROM pipeline.claim_job_tasks('cc-runner') c) = regress.jt(:lowest, 's.build') AS lowest_last;
SELECT waiting_by_priority FROM pipeline.stats;
SELECT regress.cancel_all();
-- a high-priority task over its key's limit does not hold up lower ones
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "prio"}', priority => 5) AS h1 \gset
SELECT * FROM regress.claim('cc-runner');
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "prio"}', priority => 5) AS h2 \gset
SELECT pipeline.run_pipeline('cc_build1', priority => 1) AS l1 \gset
SELECT * FROM regress.claim('cc-runner');
SELECT waiting_by_priority, waiting_by_concurrency_key ->> 'cc-deploy-prio' AS waiting_prio_key FROM pipeline.stats;
-- the later tasks of a run keep the run's priority
SELECT pipeline.define_pipeline('{"name": "cc_two_stages", "stages": [
  {"name": "a", "tasks": [{"name": "t", "job": "cc_build"}]},
  {"name": "b", "tasks": [{"name": "t", "job": "cc_build"}]}]}') AS version;
SELECT pipeline.run_pipeline('cc_two_stages', priority => 7) AS two \gset
SELECT task_name, stage_name, priority, concurrency_key FROM pipeline.job_tasks WHERE pipeline_task_id = :two ORDER BY stage_index;
SELECT regress.cancel_all();
SELECT regress.queue_and_slots_ok();

-- ================================================================ rows of deleted tasks
-- job_queue and concurrency_slot have no foreign key (it would lock the job_task row at
-- every insert): a slot row whose task is gone counts for nothing ...
SELECT pipeline.run_pipeline('cc_one', '{"ENV": "orphan"}') AS o \gset
INSERT INTO pipeline.concurrency_slot (job_task_id, key) VALUES (-1, 'cc-deploy-orphan');
SELECT * FROM regress.claim('cc-runner');
DELETE FROM pipeline.concurrency_slot WHERE job_task_id = -1;
SELECT regress.cancel_all();
-- ... and purge() deletes the slot rows of the canceled runs' tasks still canceling
SELECT count(*) > 0 AS slots_of_finished_runs FROM pipeline.concurrency_slot s
  JOIN pipeline.job_task t ON t.id = s.job_task_id JOIN pipeline.pipeline_task p ON p.id = t.pipeline_task_id
 WHERE p.stage >= 'canceled';
SELECT pg_sleep(0.01);
SELECT pipeline.purge('0') > 0 AS purged;
SELECT count(*) AS slot_rows_left FROM pipeline.concurrency_slot s
 WHERE NOT EXISTS (SELECT 1 FROM pipeline.job_task t WHERE t.id = s.job_task_id);
SELECT count(*) AS queue_rows_left FROM pipeline.job_queue q
 WHERE NOT EXISTS (SELECT 1 FROM pipeline.job_task t WHERE t.id = q.job_task_id);

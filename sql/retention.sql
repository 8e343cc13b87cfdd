--
-- retention: purge(), the stats view, and schedule()/unschedule() without
-- pg_cron (SPEC §9, §10).
--
-- purge(older_than) deletes the finished runs that ended longer ago than
-- older_than, with their job tasks, events, hook deliveries and logs; it
-- keeps unfinished and younger runs and returns how many runs it deleted.
-- Runs are made old by setting end_at back (as the superuser).
-- pg_cron cannot be created in the regression database (cron.database_name
-- names another one), so schedule() and unschedule() refuse with 0A000 here;
-- test/pgtap/schedule.sql tests them with pg_cron.
\set VERBOSITY sqlstate

-- What is stored for a set of runs
CREATE FUNCTION pg_temp.stored(runs bigint[])
RETURNS TABLE (runs bigint, job_tasks bigint, events bigint, deliveries bigint, log_chunks bigint)
LANGUAGE sql AS $$
SELECT (SELECT count(*) FROM pipeline.pipeline_task WHERE id = ANY (runs)),
       (SELECT count(*) FROM pipeline.job_task WHERE pipeline_task_id = ANY (runs)),
       (SELECT count(*) FROM pipeline.event WHERE pipeline_task_id = ANY (runs)),
       (SELECT count(*) FROM pipeline.hook_delivery WHERE pipeline_task_id = ANY (runs)),
       (SELECT count(*) FROM pipeline.job_task_log l JOIN pipeline.job_task t ON t.id = l.job_task_id
         WHERE t.pipeline_task_id = ANY (runs))
$$;

SELECT pipeline.define_job('{"name": "rn_job"}') AS version;
SELECT pipeline.define_pipeline('{"name": "rn_pipe",
  "webhooks": [{"url": "https://hooks.example.com/rn"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": "rn_job",
                                      "mention_users": [{"user": "dave"}]}]}]}') AS version;

-- ================================================================ purge
-- four runs: two finished long ago (succeeded, failed), one finished just
-- now, one unfinished (its end_at set back too: only finished runs go)
CREATE TEMP TABLE runs (name text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.finish(name text, stage pipeline.task_stage) RETURNS pipeline.task_stage
LANGUAGE sql AS $$
INSERT INTO runs VALUES (name, pipeline.run_pipeline('rn_pipe'));
SELECT count(*) FROM regress.claim('rn-runner');
SELECT pipeline.append_job_task_log(k.id, k.update_token, 'output of ' || name)
  FROM regress.tok k WHERE k.id = regress.jt((SELECT id FROM runs r WHERE r.name = finish.name), 's.t');
SELECT regress.report((SELECT id FROM runs r WHERE r.name = finish.name), 's.t', stage);
$$;
SELECT pg_temp.finish('old_ok', 'succeeded');
SELECT pg_temp.finish('old_failed', 'failed');
SELECT pg_temp.finish('young', 'succeeded');
SELECT pg_temp.finish('open', 'active');
SELECT name, regress.run_stage(id) FROM runs ORDER BY name;
UPDATE pipeline.pipeline_task SET end_at = now() - interval '40 days'
 WHERE id IN (SELECT id FROM runs WHERE name IN ('old_ok', 'old_failed'));
UPDATE pipeline.pipeline_task SET end_at = now() - interval '40 days', start_at = now() - interval '41 days'
 WHERE id = (SELECT id FROM runs WHERE name = 'open');
SELECT array_agg(id) FILTER (WHERE name LIKE 'old%') AS old_runs,
       array_agg(id) FILTER (WHERE name NOT LIKE 'old%') AS kept_runs FROM runs \gset
SELECT * FROM pg_temp.stored(:'old_runs');
SELECT * FROM pg_temp.stored(:'kept_runs');

-- refusals: nothing deleted
SELECT regress.state() AS before \gset
SELECT pipeline.purge('-1 day');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.purge(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;

-- nothing that old yet
SELECT pipeline.purge('1 year') AS purged;
SELECT regress.state() = :'before' AS unchanged;
-- the two old runs go, with everything that belongs to them
SELECT pipeline.purge('30 days') AS purged;
SELECT * FROM pg_temp.stored(:'old_runs');
SELECT * FROM pg_temp.stored(:'kept_runs');
SELECT name, regress.run_stage(id) FROM runs ORDER BY name;
-- nothing else was deleted: the other tests' runs are all younger
SELECT pipeline.purge('30 days') AS purged_again;
-- definitions are kept
SELECT count(*) AS versions FROM pipeline.pipeline WHERE name = 'rn_pipe';
SELECT regress.cancel_all();

-- ================================================================ stats
SELECT (SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
         WHERE table_schema = 'pipeline' AND table_name = 'stats') AS stats_columns;
SELECT count(*) AS rows FROM pipeline.stats;
-- the counts agree with the tables
SELECT runs_by_stage = (SELECT jsonb_object_agg(stage, n) FROM
                          (SELECT stage, count(*) AS n FROM pipeline.pipeline_task GROUP BY stage) x) AS runs_ok,
       tasks_by_stage = (SELECT jsonb_object_agg(stage, n) FROM
                          (SELECT stage, count(*) AS n FROM pipeline.job_task GROUP BY stage) x) AS tasks_ok,
       deliveries_by_status = (SELECT jsonb_object_agg(status, n) FROM
                          (SELECT status, count(*) AS n FROM pipeline.hook_delivery GROUP BY status) x) AS deliveries_ok
  FROM pipeline.stats;
-- nothing waits for a runner after the other tests
SELECT oldest_waiting_task_age, tasks_at_gates FROM pipeline.stats;
SELECT coalesce((runs_by_stage->>'active')::int, 0) AS active0,
       coalesce((tasks_by_stage->>'scheduling')::int, 0) AS scheduling0,
       coalesce((deliveries_by_status->>'pending')::int, 0) AS pending0,
       rejected_tokens AS rejected0, tasks_at_gates AS gates0
  FROM pipeline.stats \gset

-- a run starts: one more active run, one more waiting task, its deliveries pending
SELECT pipeline.run_pipeline('rn_pipe') AS run \gset
SELECT (runs_by_stage->>'active')::int - :active0 AS more_active,
       (tasks_by_stage->>'scheduling')::int - :scheduling0 AS more_scheduling,
       (deliveries_by_status->>'pending')::int - :pending0 AS more_pending,
       oldest_waiting_task_age >= interval '0' AS waiting_age_known
  FROM pipeline.stats;
-- the age of the oldest waiting task
UPDATE pipeline.job_task SET updated_at = now() - interval '2 hours' WHERE id = regress.jt(:run, 's.t');
SELECT oldest_waiting_task_age >= interval '2 hours' AS two_hours_old FROM pipeline.stats;
-- rejected tokens are counted (the refusal rolls back, the count stays)
SELECT pipeline.update_job_task_status(regress.jt(:run, 's.t'), 'active', 'wrong-token');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.heartbeat(regress.jt(:run, 's.t'), 'wrong-token');
\echo :LAST_ERROR_SQLSTATE
SELECT rejected_tokens - :rejected0 AS more_rejected FROM pipeline.stats;
SELECT regress.cancel_all();
-- tasks at gates
SELECT pipeline.define_pipeline('{"name": "rn_gated", "stages": [{"name": "s", "is_parallel": true, "tasks": [
  {"name": "a", "job": "rn_job", "audit": {"enable": true, "auditors": ["nobody"]}},
  {"name": "b", "job": "rn_job", "audit": {"enable": true, "auditors": ["nobody"]}}]}]}') AS version;
SELECT pipeline.run_pipeline('rn_gated') AS run \gset
SELECT tasks_at_gates - :gates0 AS more_at_gates FROM pipeline.stats;
SELECT regress.cancel_all();
SELECT tasks_at_gates - :gates0 AS more_at_gates FROM pipeline.stats;

-- ================================================================ schedules without pg_cron
SELECT count(*) AS pg_cron_installed FROM pg_extension WHERE extname = 'pg_cron';
SELECT regress.state() AS before \gset
SELECT pipeline.schedule('nightly', '0 3 * * *', 'rn_pipe');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.schedule('nightly', '0 3 * * *', 'no_such_pipeline', '{"X": "1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.unschedule('nightly');
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;
SELECT count(*) AS schedules FROM pipeline.schedule;

-- leave no delivery due for later tests
UPDATE pipeline.hook_delivery SET status = 'succeeded', finished_at = now() WHERE status IN ('pending', 'sending');

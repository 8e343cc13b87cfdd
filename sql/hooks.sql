--
-- hooks: hook deliveries (SPEC §8).
--
-- Each stage change writes, with its event and in the same transaction, one
-- hook_delivery per matching hook: pipeline-level hooks on the run's changes,
-- task-level hooks on that task's.  "events" match stage names
-- case-insensitively, empty matches every stage; hooks that do not match are
-- kept for later events.  IM robots are recognised by URL (an explicit
-- "robot" wins).  A hook sender claims due deliveries
-- (claim_hook_deliveries: leased, attempts + 1, SKIP LOCKED) and records each
-- result (complete_hook_delivery): success -> succeeded; failure -> pending
-- again after a backoff, until pipeline.hook_max_attempts -> failed.  Every
-- attempt's result is kept; an expired lease makes a delivery due again.
\set VERBOSITY sqlstate

-- The deliveries of a run after event `after`: which event, which hook
CREATE FUNCTION pg_temp.deliveries(run bigint, after bigint DEFAULT 0)
RETURNS TABLE (object text, new_stage pipeline.task_stage, kind text, target text, robot text, status text)
LANGUAGE sql AS $$
SELECT CASE e.kind WHEN 'pipeline_task' THEN 'run' ELSE t.stage_name || '.' || t.task_name END,
       e.new_stage, d.kind, coalesce(d.target->>'url', d.target->>'user'), d.target->>'robot', d.status
  FROM pipeline.hook_delivery d JOIN pipeline.event e ON e.id = d.event_id
       LEFT JOIN pipeline.job_task t ON t.id = d.job_task_id
 WHERE d.pipeline_task_id = run AND e.id > after
 ORDER BY d.id
$$;

SELECT count(*) AS deliveries_before FROM pipeline.hook_delivery;

SELECT pipeline.define_job('{"name": "hk_job"}') AS version;
SELECT pipeline.define_pipeline('{"name": "hk_pipe",
  "webhooks": [
    {"url": "https://hooks.example.com/all", "secret": "s3cr3t-hook", "headers": {"X-Team": "core"}},
    {"url": "https://hooks.example.com/done", "events": ["Succeeded", "FAILED"]}],
  "im_robot_notify": [
    {"url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc", "events": ["failed"]},
    {"url": "https://oapi.dingtalk.com/robot/send?access_token=abc", "events": ["succeeded"]},
    {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", "events": ["active"]},
    {"url": "https://chat.example.com/robot", "events": ["active"]},
    {"url": "https://chat.example.com/feishu-proxy", "robot": "feishu", "events": ["active"]}],
  "mention_users": [{"user": "alice", "events": ["failed"]}, {"user": "bob"}],
  "stages": [
    {"name": "one", "tasks": [{"name": "a", "job": "hk_job",
       "webhooks": [{"url": "https://hooks.example.com/task-a", "events": ["ACTIVE"]}],
       "mention_users": [{"user": "carol", "notify_types": ["email"], "events": ["failed", "Succeeded"]}]}]},
    {"name": "two", "tasks": [{"name": "b", "job": "hk_job"}]}]}') AS version;

-- ================================================================ which hooks fire
SELECT regress.last_event() AS ev0 \gset
SELECT pipeline.run_pipeline('hk_pipe') AS run \gset
SELECT regress.jt(:run, 'one.a') AS a \gset
-- the run became active: the pipeline hooks that match "active" (no events =
-- all); the first task was scheduled: none of its hooks matches
SELECT * FROM pg_temp.deliveries(:run);
SELECT * FROM regress.claim('hk-runner');
SELECT regress.last_event() AS ev1 \gset
SELECT regress.report(:run, 'one.a', 'active');
SELECT regress.report(:run, 'one.a', 'succeeded');
SELECT * FROM regress.claim('hk-runner');
SELECT regress.report(:run, 'two.b', 'succeeded');
-- task-level hooks on the task's own changes ("ACTIVE", "Succeeded" match),
-- nothing for b; the run succeeded: the hooks that did not match before are
-- still there and match now
SELECT * FROM pg_temp.deliveries(:run, :ev1);
-- one delivery per matching hook per event, each tied to its event and task
SELECT count(*) AS deliveries, count(DISTINCT (event_id, target)) AS distinct_event_hook,
       count(*) FILTER (WHERE job_task_id IS NOT NULL) AS task_level,
       bool_and(status = 'pending' AND attempts = 0) AS all_pending
  FROM pipeline.hook_delivery WHERE pipeline_task_id = :run;
-- the target is the hook as defined (robot kind added for IM robots)
SELECT d.target FROM pipeline.hook_delivery d JOIN pipeline.event e ON e.id = d.event_id
 WHERE d.pipeline_task_id = :run AND e.kind = 'pipeline_task' AND e.new_stage = 'succeeded'
 ORDER BY d.id;

-- ---------------------------------------------------------------- a failing run
SELECT pipeline.run_pipeline('hk_pipe') AS run2 \gset
SELECT * FROM regress.claim('hk-runner');
SELECT regress.last_event() AS ev2 \gset
SELECT regress.report(:run2, 'one.a', 'failed', 'broken');
SELECT * FROM pg_temp.deliveries(:run2, :ev2);

-- ---------------------------------------------------------------- written in the same transaction
SELECT count(*) AS all_deliveries FROM pipeline.hook_delivery \gset
BEGIN;
SELECT pipeline.run_pipeline('hk_pipe') AS rolled_back_run \gset
SELECT count(*) > 0 AS deliveries_inside FROM pipeline.hook_delivery WHERE pipeline_task_id = :rolled_back_run;
ROLLBACK;
SELECT count(*) AS deliveries_after_rollback FROM pipeline.hook_delivery WHERE pipeline_task_id = :rolled_back_run;
-- a rolled-back status change leaves none either
SELECT pipeline.run_pipeline('hk_pipe') AS run3 \gset
SELECT * FROM regress.claim('hk-runner');
SELECT count(*) AS all_deliveries FROM pipeline.hook_delivery \gset
BEGIN;
SELECT regress.report(:run3, 'one.a', 'active');
SELECT count(*) - :all_deliveries AS new_inside FROM pipeline.hook_delivery;
ROLLBACK;
SELECT count(*) - :all_deliveries AS new_after_rollback FROM pipeline.hook_delivery;
-- nor does a refused one
SELECT pipeline.update_job_task_status(regress.jt(:run3, 'one.a'), 'active', 'wrong-token');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) - :all_deliveries AS new_after_refusal FROM pipeline.hook_delivery;
SELECT regress.cancel_all();

-- ================================================================ claiming
-- the deliveries view shows them with secrets masked
SELECT count(*) AS deliveries_with_secret FROM pipeline.hook_delivery WHERE target->>'secret' = 's3cr3t-hook';
SELECT count(*) AS view_rows_with_secret FROM pipeline.deliveries v WHERE strpos(v::text, 's3cr3t-hook') > 0;
SELECT DISTINCT target->>'secret' AS secret_shown FROM pipeline.deliveries
 WHERE target->>'url' = 'https://hooks.example.com/all';
-- nor do events carry hooks or their secrets
SELECT count(*) AS events_with_secret FROM pipeline.event WHERE strpos(payload::text, 's3cr3t-hook') > 0;

-- bad arguments: nothing claimed
SELECT regress.state() AS before \gset
SELECT * FROM pipeline.claim_hook_deliveries('', 1);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_hook_deliveries(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', 0);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', 1001);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', 1, '0 seconds');
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', 1, '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;

-- the first three, oldest first
SELECT count(*) AS due FROM pipeline.hook_delivery WHERE status = 'pending' AND next_attempt_at <= now() \gset
CREATE TEMP TABLE claimed AS
SELECT * FROM pipeline.claim_hook_deliveries('hk-sender', 3, '10 minutes');
SELECT kind, attempts, target->>'url' AS url, event->>'new_stage' AS event_stage,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(body) k) AS body_keys,
       body->>'delivery_id' = id::text AS body_names_it, body->'event' = event AS body_has_event
  FROM claimed ORDER BY id;
SELECT array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM
         (SELECT id FROM pipeline.hook_delivery ORDER BY id LIMIT 3) x) AS oldest_first
  FROM claimed;
-- leased to the sender: sending, one attempt, due again when the lease ends
SELECT d.status, d.sender, d.attempts,
       d.lease_until BETWEEN now() + interval '9 minutes' AND now() + interval '10 minutes' AS leased_10_min,
       d.next_attempt_at = d.lease_until AS due_at_lease_end
  FROM pipeline.hook_delivery d JOIN claimed c USING (id) ORDER BY d.id;
-- another sender gets the rest, not these
CREATE TEMP TABLE claimed2 AS SELECT * FROM pipeline.claim_hook_deliveries('hk-sender-2', 1000);
SELECT count(*) = :due - 3 AS got_the_rest, bool_and(id NOT IN (SELECT id FROM claimed)) AS none_of_the_first
  FROM claimed2;
SELECT count(*) AS left_to_claim FROM pipeline.claim_hook_deliveries('hk-sender-3', 1000);
-- a mention's body names the user, other bodies mention nobody
SELECT kind, array_agg(DISTINCT coalesce(body->>'mention', '-')) AS mentions FROM claimed2 GROUP BY kind ORDER BY kind;

-- ================================================================ results
SELECT id AS d1 FROM claimed ORDER BY id LIMIT 1 \gset
SELECT id AS d2 FROM claimed ORDER BY id LIMIT 1 OFFSET 1 \gset
SELECT id AS d3 FROM claimed ORDER BY id LIMIT 1 OFFSET 2 \gset
-- success
SELECT status, attempts, http_code, response, cost_ms, finished_at IS NOT NULL AS finished, lease_until
  FROM pipeline.complete_hook_delivery(:d1, true, 200, 'ok', 35);
SELECT jsonb_array_length(results) AS results, (results->0) - 'at' AS result FROM pipeline.hook_delivery WHERE id = :d1;
-- failure: pending again after a backoff (10 s after the first attempt)
SELECT status, attempts, http_code, response, finished_at IS NULL AS not_finished
  FROM pipeline.complete_hook_delivery(:d2, false, 503, 'unavailable', 120);
SELECT next_attempt_at > now() AS later,
       next_attempt_at - (results->0->>'at')::timestamptz AS backoff,
       (results->0) - 'at' AS result
  FROM pipeline.hook_delivery WHERE id = :d2;
-- not due yet: nobody claims it
SELECT count(*) AS claimed FROM pipeline.claim_hook_deliveries('hk-sender', 1000);
-- refusals: a delivery that is not being sent, an unknown one
SELECT regress.state() AS before \gset
SELECT pipeline.complete_hook_delivery(:d1, true, 200, 'again', 1);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'d1', 'D1');
SELECT pipeline.complete_hook_delivery(:d2, true, 200, 'early', 1);
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'d2', 'D2');
SELECT pipeline.complete_hook_delivery(-1, true, 200, 'x', 1);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.complete_hook_delivery(NULL, true, 200, 'x', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.complete_hook_delivery(:d3, NULL, 200, 'x', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;

-- at most pipeline.hook_max_attempts attempts, then failed
SET pipeline.hook_max_attempts = 2;
UPDATE pipeline.hook_delivery SET next_attempt_at = now() WHERE id = :d2;
SELECT id = :d2 AS is_d2, attempts FROM pipeline.claim_hook_deliveries('hk-sender', 1000);
SELECT status, attempts, finished_at IS NOT NULL AS finished
  FROM pipeline.complete_hook_delivery(:d2, false, 500, 'still broken', 80);
-- every attempt's result is kept
SELECT r->>'attempt' AS attempt, r->>'sender' AS sender, r->>'success' AS success,
       r->>'http_code' AS http_code, r->>'response' AS response, r->>'cost_ms' AS cost_ms
  FROM pipeline.hook_delivery d, jsonb_array_elements(d.results) r WHERE d.id = :d2;
-- a failed delivery is not claimed again
UPDATE pipeline.hook_delivery SET next_attempt_at = now() - interval '1 second' WHERE id = :d2;
SELECT count(*) AS claimed FROM pipeline.claim_hook_deliveries('hk-sender', 1000);
RESET pipeline.hook_max_attempts;

-- ================================================================ an expired lease
-- d3's sender died mid-send: once its lease ends another sender gets it
SELECT count(*) AS claimed_while_leased FROM pipeline.claim_hook_deliveries('hk-sender-2', 1000);
UPDATE pipeline.hook_delivery SET next_attempt_at = now() - interval '1 second' WHERE id = :d3;
SELECT id = :d3 AS is_d3, attempts FROM pipeline.claim_hook_deliveries('hk-sender-2', 1000);
SELECT status, sender, attempts FROM pipeline.hook_delivery WHERE id = :d3;
SELECT status, attempts, jsonb_array_length(results) AS results
  FROM pipeline.complete_hook_delivery(:d3, true, 204, NULL, 12);
SELECT results->0->>'sender' AS sender, results->0->>'attempt' AS attempt FROM pipeline.hook_delivery WHERE id = :d3;

-- ================================================================ locked rows are skipped
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
    CASE WHEN current_setting('unix_socket_directories') <> ''
         THEN split_part(current_setting('unix_socket_directories'), ',', 1) ELSE 'localhost' END,
    current_setting('port'), current_database(), current_user));
-- make two deliveries due again; another session holds the first
SELECT min(id) AS locked, max(id) AS free FROM (SELECT id FROM claimed2 ORDER BY id LIMIT 2) x \gset
UPDATE pipeline.hook_delivery SET status = 'pending', next_attempt_at = now() - interval '1 second'
 WHERE id IN (:locked, :free);
SELECT dblink_exec('other', 'BEGIN');
SELECT count(*) AS locked_elsewhere
  FROM dblink('other', format('SELECT id FROM pipeline.hook_delivery WHERE id = %s FOR UPDATE', :locked)) AS t(id bigint);
SELECT id = :free AS is_free_one FROM pipeline.claim_hook_deliveries('hk-sender', 1000);
SELECT dblink_exec('other', 'COMMIT');
SELECT id = :locked AS is_locked_one FROM pipeline.claim_hook_deliveries('hk-sender', 1000);
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;

-- ================================================================ a task's deliveries
-- (the sender of a's deliveries reports: the webhook failed, the mention was sent)
SELECT c.status FROM pipeline.hook_delivery d,
       LATERAL pipeline.complete_hook_delivery(d.id, d.kind = 'mention',
                                               CASE d.kind WHEN 'mention' THEN 200 ELSE 502 END, 'r', 5) c
 WHERE d.job_task_id = :a ORDER BY d.id;
SELECT new_stage, kind, target->>'url' AS url, target->>'user' AS "user", status, attempts,
       jsonb_array_length(results) AS results, results->0->>'http_code' AS http_code
  FROM pipeline.job_task_deliveries(:a);
-- with every attempt's result, secrets masked: the rows of the deliveries view
SELECT count(*) AS rows, bool_and(d.job_task_id = :a) AS all_of_a
  FROM pipeline.job_task_deliveries(:a) d;
SELECT (SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
         WHERE table_schema = 'pipeline' AND table_name = 'deliveries') AS deliveries_columns;
SELECT count(*) AS rows FROM pipeline.job_task_deliveries(-1);

-- leave nothing due for later tests' senders
UPDATE pipeline.hook_delivery SET status = 'succeeded', finished_at = now() WHERE status IN ('pending', 'sending');
SELECT regress.cancel_all();

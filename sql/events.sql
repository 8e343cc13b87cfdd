--
-- events: the outbox (SPEC §8): one pipeline.event row per stage change,
-- written in the changing transaction; events_since() to catch up in id
-- order; NOTIFY pipeline_events with the event id, sent at commit.
--
-- NOTIFY is observed from a second session (dblink), so that no
-- "Asynchronous notification ... from server process with PID ..." line with
-- its varying PID reaches the output.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "ev_job", "params": [{"name": "EV_SECRET", "sensitive": true, "default": "d3fault-secret"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "ev_pipe", "stages": [
  {"name": "one", "tasks": [{"name": "a", "job": "ev_job"}]},
  {"name": "two", "is_parallel": true, "tasks": [{"name": "b", "job": "ev_job"}, {"name": "c", "job": "ev_job"}]}]}') AS version;

-- ---------------------------------------------------------------- a run's events
SELECT regress.last_event() AS ev0 \gset
SELECT pipeline.run_pipeline('ev_pipe', '{"EV_SECRET": "s3cr3t-run-value"}', labels => '{"team": "core"}') AS run \gset
SELECT * FROM regress.claim('ev-runner');
SELECT regress.report(:run, 'one.a', 'active');
SELECT regress.report(:run, 'one.a', 'succeeded');
SELECT * FROM regress.claim('ev-runner', 2);
SELECT regress.report(:run, 'two.b', 'succeeded');
-- a report that changes no stage writes no event
SELECT regress.last_event() AS ev_mid \gset
SELECT regress.report(:run, 'two.c', 'creating', 'still creating');
SELECT regress.last_event() = :ev_mid AS no_event;
SELECT regress.report(:run, 'two.c', 'succeeded');

-- events_since() returns them in id order, all of them by default
SELECT e.kind, CASE e.kind WHEN 'pipeline_task' THEN 'run' ELSE t.stage_name || '.' || t.task_name END AS object,
       e.old_stage, e.new_stage, e.pipeline_task_id = :run AS of_run
  FROM pipeline.events_since(:ev0) e LEFT JOIN pipeline.job_task t ON e.kind = 'job_task' AND t.id = e.object_id
 ORDER BY e.id;
SELECT count(*) AS events, bool_and(id > :ev0) AS all_after,
       array_agg(id ORDER BY id) = array_agg(id) AS in_id_order
  FROM pipeline.events_since(:ev0);
-- it returns the same rows as the table
SELECT (SELECT array_agg(e ORDER BY id) FROM pipeline.events_since(:ev0) e)
     = (SELECT array_agg(e ORDER BY id) FROM pipeline.event e WHERE id > :ev0) AS same_rows;

-- max pages through them; a listener remembering the last id it saw gets
-- every event exactly once
SELECT count(*) AS page1 FROM pipeline.events_since(:ev0, 5);
SELECT max(id) AS last_seen FROM pipeline.events_since(:ev0, 5) \gset
SELECT count(*) AS page2 FROM pipeline.events_since(:last_seen, 5);
SELECT max(id) AS last_seen FROM pipeline.events_since(:last_seen, 5) \gset
SELECT count(*) AS page3 FROM pipeline.events_since(:last_seen, 5);
SELECT max(id) AS last_seen FROM pipeline.events_since(:last_seen, 5) \gset
SELECT count(*) AS page4 FROM pipeline.events_since(:last_seen, 5);
SELECT :last_seen = regress.last_event() AS caught_up;
-- after the last event: nothing
SELECT count(*) AS after_last FROM pipeline.events_since(regress.last_event());
-- null after_id means from the start, null max means the default (1000)
SELECT (SELECT count(*) FROM pipeline.events_since(NULL, 100000)) = (SELECT count(*) FROM pipeline.event) AS all_from_start;
SELECT count(*) AS with_null_max FROM pipeline.events_since(:ev0, NULL);

-- refusals
SELECT * FROM pipeline.events_since(:ev0, 0);
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.events_since(:ev0, 100001);
\echo :LAST_ERROR_MESSAGE
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM pipeline.events_since(:ev0);
\echo :LAST_ERROR_MESSAGE
ROLLBACK;

-- ---------------------------------------------------------------- payloads
-- A snapshot of the object without secrets: no params on job tasks, masked
-- params on runs, never a token.
SELECT kind, array_agg(DISTINCT k ORDER BY k) AS payload_keys
  FROM pipeline.event e, jsonb_object_keys(e.payload) k
 WHERE e.id > :ev0 GROUP BY kind ORDER BY kind;
-- the payload agrees with the row: object, stages, names
SELECT count(*) FILTER (WHERE (payload->>'id')::bigint <> object_id) AS wrong_id,
       count(*) FILTER (WHERE payload->>'stage' <> new_stage::text) AS wrong_stage,
       count(*) FILTER (WHERE payload->>'old_stage' IS DISTINCT FROM old_stage::text) AS wrong_old_stage,
       count(*) FILTER (WHERE payload->>'pipeline_name' <> 'ev_pipe') AS wrong_pipeline
  FROM pipeline.event WHERE id > :ev0;
SELECT payload->>'task_name' AS task, payload->>'stage' AS stage, payload->>'runner' AS runner,
       payload->>'message' AS message, payload->>'attempt' AS attempt, payload->>'dry_run' AS dry_run,
       payload->>'start_at' IS NOT NULL AS has_start, payload->>'end_at' IS NOT NULL AS has_end
  FROM pipeline.event WHERE id > :ev0 AND kind = 'job_task' AND object_id = regress.jt(:run, 'two.c')
 ORDER BY id;
SELECT payload->>'stage' AS stage, payload->>'old_stage' AS old_stage, payload->'params' AS params,
       payload->'labels' AS labels, payload->>'pipeline_version' AS version,
       payload->>'run_by' = current_user AS run_by_me
  FROM pipeline.event WHERE id > :ev0 AND kind = 'pipeline_task' ORDER BY id;
-- the secret (given for the run, and the job's default) is in no payload
SELECT count(*) AS payloads_with_secret FROM pipeline.event
 WHERE strpos(payload::text, 's3cr3t-run-value') > 0 OR strpos(payload::text, 'd3fault-secret') > 0;

-- ---------------------------------------------------------------- refusals write no event
SELECT regress.last_event() AS ev1 \gset
SELECT pipeline.update_job_task_status(regress.jt(:run, 'one.a'), 'failed', 'wrong-token');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.cancel_pipeline_task(:run);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.run_pipeline('ev_pipe', '{"x.y.EV_SECRET": "1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT regress.last_event() = :ev1 AS no_event;
-- and an event rolled back with its change is gone (ids may skip, never repeat)
BEGIN;
SELECT pipeline.run_pipeline('ev_pipe') AS rolled_back_run \gset
SELECT count(*) > 0 AS events_inside FROM pipeline.event WHERE pipeline_task_id = :rolled_back_run;
ROLLBACK;
SELECT count(*) AS events_after_rollback FROM pipeline.event WHERE pipeline_task_id = :rolled_back_run;
SELECT count(*) AS events_since_ev1 FROM pipeline.events_since(:ev1);

-- ---------------------------------------------------------------- NOTIFY
-- the writer's own NOTIFY, one per event (immediate); the default, coalesced
-- (issue 12), is tested by test/cli/notify_coalesced.sh.  The coalesced
-- notifier the earlier tests started would announce our events too: stop it
-- (a writer in immediate mode starts none) before the listener listens.
SET pipeline.notify = immediate;
DO $$
BEGIN
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
     WHERE backend_type = 'pipeline notifier' AND datname = current_database();
    FOR i IN 1 .. 200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
                               WHERE backend_type = 'pipeline notifier' AND datname = current_database());
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT count(*) AS notifiers FROM pg_stat_activity
 WHERE backend_type = 'pipeline notifier' AND datname = current_database();
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('listener', format('host=%s port=%s dbname=%s user=%s',
    CASE WHEN current_setting('unix_socket_directories') <> ''
         THEN split_part(current_setting('unix_socket_directories'), ',', 1) ELSE 'localhost' END,
    current_setting('port'), current_database(), current_user));
SELECT dblink_exec('listener', 'LISTEN pipeline_events');
CREATE TEMP TABLE heard (channel text, event_id bigint);
-- collect what the listener heard, waiting up to 10 s for `want` notifications
-- (a short wait when none is expected)
CREATE FUNCTION pg_temp.listen(want int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    FOR i IN 1 .. CASE WHEN want = 0 THEN 5 ELSE 100 END LOOP
        INSERT INTO heard SELECT notify_name, extra::bigint FROM dblink_get_notify('listener');
        SELECT count(*) INTO n FROM heard;
        EXIT WHEN want > 0 AND n >= want;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN n;
END $$;

-- a run writes two events (run active, first task scheduling): two
-- notifications, their payloads the event ids
SELECT regress.last_event() AS ev2 \gset
SELECT pipeline.run_pipeline('ev_pipe') AS run2 \gset
SELECT pg_temp.listen(2) AS heard;
SELECT channel, count(*) AS notifications,
       array_agg(event_id ORDER BY event_id) = (SELECT array_agg(id ORDER BY id) FROM pipeline.event WHERE id > :ev2) AS payloads_are_event_ids
  FROM heard GROUP BY channel;
TRUNCATE heard;
-- nothing is sent before commit, nor for a refusal
SELECT regress.last_event() AS ev3 \gset
BEGIN;
SELECT * FROM regress.claim('ev-runner');
SELECT pg_temp.listen(0) AS heard_before_commit;
COMMIT;
SELECT pg_temp.listen(1) AS heard_after_commit;
SELECT array_agg(event_id) = (SELECT array_agg(id) FROM pipeline.event WHERE id > :ev3) AS payload_is_event_id FROM heard;
TRUNCATE heard;
SELECT pipeline.update_job_task_status(regress.jt(:run2, 'one.a'), 'active', 'wrong-token');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.listen(0) AS heard_after_refusal;
SELECT dblink_disconnect('listener');
DROP EXTENSION dblink;

SELECT regress.cancel_all();

--
-- schedule: pipeline.schedule() / pipeline.unschedule() with pg_cron (SPEC §9).
--
-- Runs in the shared test database, where pg_cron is loadable
-- (cron.database_name).  Not in a transaction: pg_cron reads committed jobs,
-- and the last test waits for pg_cron itself to start a run.  pg_cron 1.4
-- schedules by the minute at best ('5 seconds' needs 1.5), so that test waits
-- up to 90 s for the next minute to begin.  Everything made here is named
-- tap_sched_* and removed at the end (and at the start, after an aborted
-- run), so that no scheduled run is left for the CLI tests' runners.
--
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS pipeline;
CREATE EXTENSION IF NOT EXISTS pgtap;
RESET client_min_messages;

-- Leftovers of an aborted earlier run: schedules, runs
CREATE FUNCTION pg_temp.clean_up() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT name FROM pipeline.schedule WHERE name LIKE 'tap_sched_%' LOOP
        PERFORM pipeline.unschedule(r.name);
    END LOOP;
    FOR r IN SELECT jobname FROM cron.job WHERE jobname LIKE 'pipeline:tap_sched_%' LOOP
        PERFORM cron.unschedule(r.jobname);
    END LOOP;
    FOR r IN SELECT id FROM pipeline.pipeline_task
              WHERE stage < 'canceled' AND (run_by LIKE 'schedule:tap_sched_%' OR pipeline_name LIKE 'tap_sched_%') LOOP
        PERFORM pipeline.cancel_pipeline_task(r.id, 'schedule test cleanup');
    END LOOP;
END $$;
SELECT pg_temp.clean_up() AS v \gset

-- Run a cron job's command as pg_cron would; returns what it returned (the run id)
CREATE FUNCTION pg_temp.run_command(job_name text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cmd text := (SELECT command FROM cron.job WHERE jobname = job_name);
    result bigint;
BEGIN
    EXECUTE cmd INTO result;
    RETURN result;
END $$;

-- Wait up to max_seconds for a run started by `who` after run `after`; its id, or NULL
CREATE FUNCTION pg_temp.wait_for_run(who text, after bigint, max_seconds int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    found bigint;
BEGIN
    FOR i IN 1 .. max_seconds * 2 LOOP
        SELECT min(id) INTO found FROM pipeline.pipeline_task WHERE run_by = who AND id > after;
        EXIT WHEN found IS NOT NULL;
        PERFORM pg_sleep(0.5);
    END LOOP;
    RETURN found;
END $$;

-- Wait up to max_seconds until no run of a cron job is in flight
CREATE FUNCTION pg_temp.wait_cron_idle(job bigint, max_seconds int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. max_seconds * 2 LOOP
        IF NOT EXISTS (SELECT 1 FROM cron.job_run_details
                        WHERE jobid = job AND status IN ('starting', 'connecting', 'sending', 'running')) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.5);
    END LOOP;
    RETURN false;
END $$;

SELECT pipeline.define_job('{"name": "tap_sched_job", "params": [{"name": "GREETING", "default": "hello"}]}') AS v \gset
SELECT pipeline.define_pipeline('{"name": "tap_sched_pipe", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "tap_sched_job"}]}]}') AS v \gset
SELECT pipeline.define_pipeline('{"name": "tap_sched_other", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "tap_sched_job"}]}]}') AS v \gset

SELECT plan(35);

SELECT has_extension('pg_cron', 'pg_cron is installed in this database');

-- ---------------------------------------------------------------- schedule
SELECT pipeline.schedule('tap_sched_nightly', '0 3 * * *', 'tap_sched_pipe', '{"GREETING": "hi"}') AS jobid \gset
SELECT is(:jobid::bigint, (SELECT jobid FROM cron.job WHERE jobname = 'pipeline:tap_sched_nightly'),
          'schedule() returns the id of the cron job it made, named pipeline:NAME');
SELECT is((SELECT schedule FROM cron.job WHERE jobid = :jobid), '0 3 * * *',
          'the cron job has the schedule');
SELECT is((SELECT command FROM cron.job WHERE jobid = :jobid),
          $$SELECT pipeline.run_pipeline('tap_sched_pipe', '{"GREETING": "hi"}'::jsonb, run_by => 'schedule:tap_sched_nightly')$$,
          'the cron job runs the pipeline with the params, run_by schedule:NAME');
SELECT is((SELECT database FROM cron.job WHERE jobid = :jobid), current_database()::text,
          'the cron job runs in this database');
SELECT ok((SELECT active FROM cron.job WHERE jobid = :jobid), 'the cron job is active');
SELECT results_eq(
    $$SELECT name, cron, pipeline, params, cron_job_id FROM pipeline.schedule WHERE name = 'tap_sched_nightly'$$,
    format($$VALUES ('tap_sched_nightly'::text, '0 3 * * *'::text, 'tap_sched_pipe'::text, '{"GREETING": "hi"}'::jsonb, %s::bigint)$$, :jobid),
    'pipeline.schedule records it');

-- what pg_cron will run starts the pipeline
SELECT pg_temp.run_command('pipeline:tap_sched_nightly') AS cmd_run \gset
SELECT results_eq(
    format($$SELECT pipeline_name, run_by, stage::text, params FROM pipeline.pipeline_tasks WHERE id = %s$$, :cmd_run),
    $$VALUES ('tap_sched_pipe'::text, 'schedule:tap_sched_nightly'::text, 'active'::text, '{"GREETING": "hi"}'::jsonb)$$,
    'the command starts a run of the pipeline, by schedule:NAME, with the params');

-- ---------------------------------------------------------------- the same name again: updated
SELECT pipeline.schedule('tap_sched_nightly', '30 4 * * 1', 'tap_sched_other') AS jobid2 \gset
SELECT is(:jobid2::bigint, :jobid::bigint, 're-scheduling a name keeps its cron job');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'pipeline:tap_sched_nightly'), 1::bigint,
          'there is still one cron job for the name');
SELECT is((SELECT schedule FROM cron.job WHERE jobid = :jobid), '30 4 * * 1', 'its schedule is updated');
SELECT is((SELECT command FROM cron.job WHERE jobid = :jobid),
          $$SELECT pipeline.run_pipeline('tap_sched_other', '{}'::jsonb, run_by => 'schedule:tap_sched_nightly')$$,
          'its command is updated (other pipeline, default params)');
SELECT results_eq(
    $$SELECT cron, pipeline, params FROM pipeline.schedule WHERE name = 'tap_sched_nightly'$$,
    $$VALUES ('30 4 * * 1'::text, 'tap_sched_other'::text, '{}'::jsonb)$$,
    'pipeline.schedule is updated, one row');

-- ---------------------------------------------------------------- refusals: nothing stored
SELECT throws_ok($$SELECT pipeline.schedule('tap_sched_bad', '* * * * *', 'tap_sched_no_such_pipeline')$$,
                 '42704', 'schedule "tap_sched_bad": pipeline "tap_sched_no_such_pipeline" does not exist',
                 'an unknown pipeline is refused (42704)');
SELECT throws_ok($$SELECT pipeline.schedule('tap_sched_bad', 'every now and then', 'tap_sched_pipe')$$,
                 '22023', NULL, 'a bad cron expression is refused (22023, from pg_cron)');
SELECT throws_ok($$SELECT pipeline.schedule('', '* * * * *', 'tap_sched_pipe')$$,
                 '22023', NULL, 'an empty name is refused (22023)');
SELECT throws_ok($$SELECT pipeline.schedule('tap_sched_bad', '* * * * *', 'tap_sched_pipe', '[1]')$$,
                 '22023', 'schedule "tap_sched_bad": params must be a JSON object', 'params that are not an object are refused (22023)');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'pipeline:tap_sched_bad'), 0::bigint,
          'no cron job was made by a refusal');
SELECT is((SELECT count(*) FROM pipeline.schedule WHERE name IN ('tap_sched_bad', '')), 0::bigint,
          'no schedule was recorded by a refusal');
-- a refused re-schedule keeps the old one
SELECT throws_ok($$SELECT pipeline.schedule('tap_sched_nightly', 'bad cron', 'tap_sched_pipe')$$,
                 '22023', NULL, 're-scheduling with a bad cron expression is refused');
SELECT is((SELECT schedule FROM cron.job WHERE jobid = :jobid), '30 4 * * 1', 'and the schedule stays as it was');

-- ---------------------------------------------------------------- unschedule
SELECT throws_ok($$SELECT pipeline.unschedule('tap_sched_no_such_schedule')$$,
                 '42704', 'schedule "tap_sched_no_such_schedule" does not exist',
                 'unscheduling an unknown name is refused (42704)');
SELECT is(pipeline.unschedule('tap_sched_nightly'), true, 'unschedule() returns true');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'pipeline:tap_sched_nightly'), 0::bigint,
          'the cron job is gone');
SELECT is((SELECT count(*) FROM pipeline.schedule WHERE name = 'tap_sched_nightly'), 0::bigint,
          'the schedule is gone');
SELECT throws_ok($$SELECT pipeline.unschedule('tap_sched_nightly')$$, '42704', NULL,
                 'unscheduling it again is refused (42704)');

-- ---------------------------------------------------------------- pg_cron runs it
SELECT coalesce(max(id), 0) AS last_run FROM pipeline.pipeline_task \gset
SELECT pipeline.schedule('tap_sched_minutely', '* * * * *', 'tap_sched_pipe', '{"GREETING": "from cron"}') AS cron_job \gset
SELECT isnt(:cron_job::bigint, NULL, 'a schedule every minute is made');
SELECT pg_temp.wait_for_run('schedule:tap_sched_minutely', :last_run, 90) AS cron_run \gset
SELECT isnt(:'cron_run'::text, ''::text, 'pg_cron started a run of the pipeline (within 90 s)');
SELECT results_eq(
    format($$SELECT pipeline_name, stage::text, params FROM pipeline.pipeline_tasks WHERE id = %s$$, coalesce(nullif(:'cron_run', ''), '0')),
    $$VALUES ('tap_sched_pipe'::text, 'active'::text, '{"GREETING": "from cron"}'::jsonb)$$,
    'the scheduled run is active, with the schedule''s params');
SELECT is((SELECT count(*) FROM pipeline.job_tasks WHERE pipeline_task_id = nullif(:'cron_run', '')::bigint AND stage = 'scheduling'),
          1::bigint, 'its first task waits for a runner');
SELECT is(pipeline.unschedule('tap_sched_minutely'), true, 'the every-minute schedule is removed');
SELECT ok(pg_temp.wait_cron_idle(:cron_job, 30), 'no run of it is in flight any more');
SELECT ok(EXISTS (SELECT 1 FROM cron.job_run_details WHERE jobid = :cron_job AND status = 'succeeded'),
          'pg_cron recorded the run as succeeded');

-- ---------------------------------------------------------------- clean up
SELECT pg_temp.clean_up() AS v \gset
SELECT is((SELECT count(*) FROM pipeline.pipeline_task
            WHERE stage < 'canceled' AND pipeline_name LIKE 'tap_sched_%'), 0::bigint,
          'no run of this test is left unfinished');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname LIKE 'pipeline:tap_sched_%'), 0::bigint,
          'no cron job of this test is left');

SELECT * FROM finish();

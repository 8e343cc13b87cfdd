-- bench/setup.sql: what bench/run installs in its throwaway database (public schema) before
-- each section: the extension, a no-op job, and helpers that build states directly as
-- superuser (positioning runs, bulk-loading finished rows) and time calls from PL/pgSQL.
-- Nothing here is part of the extension.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pipeline;

SELECT pipeline.define_job('{"name": "noop", "runner": "shell", "command": "true"}');

-- Define a pipeline whose stage i holds tasks[i] tasks of job noop.
CREATE FUNCTION bench_define(name text, tasks int[], parallel boolean) RETURNS int
LANGUAGE sql AS $$
    SELECT pipeline.define_pipeline(jsonb_build_object(
        'name', name,
        'stages', (SELECT jsonb_agg(jsonb_build_object(
                            'name', 's' || s, 'is_parallel', parallel,
                            'tasks', (SELECT jsonb_agg(jsonb_build_object('name', 't' || t, 'job', 'noop')
                                                       ORDER BY t)
                                        FROM generate_series(0, tasks[s + 1] - 1) t))
                            ORDER BY s)
                     FROM generate_series(0, cardinality(tasks) - 1) s)))
$$;

-- Define a pipeline of one parallel stage of `tasks` tasks of job noop, task t with the
-- concurrency key 'bench-' || (t % keys) and the given limit (SPEC §14).
CREATE FUNCTION bench_define_keyed(name text, tasks int, keys int, lim int) RETURNS int
LANGUAGE sql AS $$
    SELECT pipeline.define_pipeline(jsonb_build_object(
        'name', name,
        'stages', jsonb_build_array(jsonb_build_object(
            'name', 's0', 'is_parallel', true,
            'tasks', (SELECT jsonb_agg(jsonb_build_object(
                                'name', 't' || t, 'job', 'noop',
                                'concurrency', jsonb_build_object('key', 'bench-' || (t % keys), 'limit', lim))
                              ORDER BY t)
                        FROM generate_series(0, tasks - 1) t)))))
$$;

-- Put a serial run (one task per stage) at "k stages finished": stages < k succeeded,
-- stage k scheduling, the rest pending.  Direct writes: no events.
CREATE FUNCTION bench_position(p bigint, k int) RETURNS void
LANGUAGE sql AS $$
    UPDATE pipeline.job_task
       SET stage = 'succeeded', runner = 'bench', claimed_at = now(), start_at = now(),
           end_at = now(), heartbeat_at = now(), updated_at = now()
     WHERE pipeline_task_id = p AND stage_index < k;
    UPDATE pipeline.job_task SET stage = 'scheduling', updated_at = now()
     WHERE pipeline_task_id = p AND stage_index = k;
    UPDATE pipeline.job_task SET stage = 'pending', updated_at = now()
     WHERE pipeline_task_id = p AND stage_index > k AND stage <> 'pending';
$$;

-- Give a serial run n more stages in front of its own, all succeeded (bulk rows copied from
-- the run's first task).  Pipelines are limited to 1,000 stages, so this is how a run gets
-- 10,000 finished stages and still has stages left to advance through.
CREATE FUNCTION bench_prepend_finished(p bigint, n int) RETURNS void
LANGUAGE sql AS $$
    UPDATE pipeline.job_task SET stage_index = stage_index + n WHERE pipeline_task_id = p;
    INSERT INTO pipeline.job_task
           (pipeline_task_id, stage_index, stage_name, task_index, task_name, job_name, stage,
            runner, claimed_at, start_at, end_at, heartbeat_at, job_version, params,
            sensitive, labels, is_parallel)
    SELECT p, g, 'f' || g, 0, t.task_name, t.job_name, 'succeeded',
           'bench', now(), now(), now(), now(), t.job_version, t.params,
           t.sensitive, t.labels, t.is_parallel
      FROM (SELECT * FROM pipeline.job_task WHERE pipeline_task_id = p
             ORDER BY stage_index LIMIT 1) t,
           generate_series(0, n - 1) g;
    UPDATE pipeline.pipeline_task SET stage_count = stage_count + n WHERE id = p;
$$;

-- Bulk-load about n finished job tasks: succeeded runs of `per_run` tasks in one parallel
-- stage, finished a day ago, copied from an existing job task (same job snapshot and size).
-- Returns the number of job tasks inserted.
CREATE FUNCTION bench_load_finished(n bigint, per_run int DEFAULT 100) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    runs bigint := greatest(1, ceil(n::numeric / per_run));
    done bigint;
BEGIN
    WITH tmpl AS (SELECT t.*, p.pipeline_name, p.pipeline_version
                    FROM pipeline.job_task t JOIN pipeline.pipeline_task p ON p.id = t.pipeline_task_id
                   ORDER BY t.id LIMIT 1),
    r AS (INSERT INTO pipeline.pipeline_task
                 (pipeline_name, pipeline_version, stage, stage_count, created_at, start_at, end_at)
          SELECT tmpl.pipeline_name, tmpl.pipeline_version, 'succeeded', 1,
                 now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
            FROM tmpl, generate_series(1, runs)
          RETURNING id)
    INSERT INTO pipeline.job_task
           (pipeline_task_id, stage_index, stage_name, task_index, task_name, job_name, stage,
            runner, created_at, claimed_at, start_at, end_at, heartbeat_at, updated_at,
            job_version, params, sensitive, labels, is_parallel)
    SELECT r.id, 0, 'load', g, 't' || g, tmpl.job_name, 'succeeded',
           'bench', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day',
           now() - interval '1 day', now() - interval '1 day', now() - interval '1 day',
           tmpl.job_version, tmpl.params, tmpl.sensitive, tmpl.labels, true
      FROM r, tmpl, generate_series(0, per_run - 1) g;
    GET DIAGNOSTICS done = ROW_COUNT;
    RETURN done;
END
$$;

-- Latency samples in milliseconds, by label.
CREATE TABLE bench_lat (label text NOT NULL, ms float8 NOT NULL);

-- n times: take the run's scheduling task, make it active with token 'bench' (direct write,
-- committed), then time update_job_task_status(.., 'succeeded', ..) -- the update plus the
-- advance it triggers (next serial stage scheduled, with its event and NOTIFY).  The clock
-- stops before COMMIT, so the commit's fsync (constant, noisy) is not in the sample.
CREATE PROCEDURE bench_advance_latency(p bigint, n int, label text)
LANGUAGE plpgsql AS $$
DECLARE
    tid bigint;
    t0 timestamptz;
    t1 timestamptz;
    next_stage pipeline.task_stage;
BEGIN
    FOR i IN 1..n LOOP
        SELECT id INTO tid FROM pipeline.job_task
         WHERE pipeline_task_id = p AND stage = 'scheduling' AND stage < 'canceled';
        IF tid IS NULL THEN
            RAISE EXCEPTION 'bench: run % has no scheduling task at sample %', p, i;
        END IF;
        UPDATE pipeline.job_task
           SET stage = 'active', token_digest = sha256('bench'::bytea), runner = 'bench',
               claimed_at = now(), start_at = now(), heartbeat_at = now()
         WHERE id = tid;
        COMMIT;
        t0 := clock_timestamp();
        PERFORM pipeline.update_job_task_status(tid, 'succeeded', 'bench');
        t1 := clock_timestamp();
        COMMIT;
        INSERT INTO bench_lat VALUES (label, extract(epoch FROM t1 - t0) * 1000);
        -- it must have advanced: the next stage's task is scheduled
        SELECT n.stage INTO next_stage FROM pipeline.job_task n, pipeline.job_task t
         WHERE t.id = tid AND n.pipeline_task_id = p AND n.stage_index = t.stage_index + 1;
        IF next_stage IS DISTINCT FROM 'scheduling' THEN
            RAISE EXCEPTION 'bench: completing job task % did not schedule the next stage (%)',
                tid, next_stage;
        END IF;
    END LOOP;
    COMMIT;
END
$$;

-- n times: time next_run(p) on a run whose first open stage is pending (its scheduling task
-- is set back to pending for the duration), so each call returns that one task.
CREATE PROCEDURE bench_next_run_latency(p bigint, n int, label text)
LANGUAGE plpgsql AS $$
DECLARE
    tid bigint;
    got bigint;
    cnt bigint;
    t0 timestamptz;
    t1 timestamptz;
    lat float8[] := '{}';
BEGIN
    SELECT id INTO tid FROM pipeline.job_task
     WHERE pipeline_task_id = p AND stage = 'scheduling' AND stage < 'canceled';
    IF tid IS NULL THEN
        RAISE EXCEPTION 'bench: run % has no scheduling task', p;
    END IF;
    UPDATE pipeline.job_task SET stage = 'pending' WHERE id = tid;
    COMMIT;
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        SELECT count(*), max(id) INTO cnt, got FROM pipeline.next_run(p);
        t1 := clock_timestamp();
        IF cnt <> 1 OR got <> tid THEN
            RAISE EXCEPTION 'bench: next_run(%) returned % rows (max id %), expected job task %',
                p, cnt, got, tid;
        END IF;
        lat := lat || (extract(epoch FROM t1 - t0) * 1000)::float8;
    END LOOP;
    INSERT INTO bench_lat SELECT label, unnest(lat);
    UPDATE pipeline.job_task SET stage = 'scheduling' WHERE id = tid;
    COMMIT;
END
$$;

-- Status updates in one session for the memory figure: calls start .. start + n - 1 flip the
-- m tasks base .. base + m - 1 round robin between 'active' (even passes) and 'creating'
-- (odd passes), as bench/status_update.sql does; COMMIT every 1,000 calls.
CREATE PROCEDURE bench_status_loop(base bigint, m int, start bigint, n bigint)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN start..start + n - 1 LOOP
        IF (i / m) % 2 = 0 THEN
            PERFORM pipeline.update_job_task_status(base + i % m, 'active', 'bench');
        ELSE
            PERFORM pipeline.update_job_task_status(base + i % m, 'creating', 'bench');
        END IF;
        IF i % 1000 = 999 THEN
            COMMIT;
        END IF;
    END LOOP;
    COMMIT;
END
$$;

-- Private (RssAnon) and total (VmRSS) resident memory of this backend, in kB.
CREATE FUNCTION bench_rss(OUT anon_kb bigint, OUT rss_kb bigint) LANGUAGE sql AS $$
    SELECT substring(s FROM 'RssAnon:\s+(\d+)')::bigint, substring(s FROM 'VmRSS:\s+(\d+)')::bigint
      FROM pg_read_file('/proc/self/status') s
$$;

-- Runs of `runs` x pipeline `name`, all their tasks claimed (creating) with token 'bench'.
-- Returns the smallest job task id; the ids are checked to be contiguous.
CREATE FUNCTION bench_claimed_tasks(name text, runs int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    lo bigint;
    hi bigint;
    cnt bigint;
BEGIN
    PERFORM pipeline.run_pipeline(name) FROM generate_series(1, runs);
    PERFORM count(*) FROM pipeline.claim_job_tasks('bench', 1000);
    UPDATE pipeline.job_task SET token_digest = sha256('bench'::bytea) WHERE stage = 'creating';
    SELECT min(id), max(id), count(*) INTO lo, hi, cnt FROM pipeline.job_task WHERE stage = 'creating';
    IF cnt IS DISTINCT FROM hi - lo + 1 THEN
        RAISE EXCEPTION 'bench: claimed job task ids are not contiguous (% .. %, % rows)', lo, hi, cnt;
    END IF;
    RETURN lo;
END
$$;

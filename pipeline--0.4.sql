/*
 * pipeline--0.4.sql: install script of the pipeline extension (version 0.4).
 *
 * Tables, the stage enum, views that mask secrets, and the SQL declarations
 * of the C functions.  The engine (definition validation, run creation,
 * status update, advancing, next-task selection, claiming, events) is C code
 * in src/; see the comments at the top of src/advance.c for the locking design.
 *
 * Everything is created in schema "pipeline".  Nothing is granted to PUBLIC.
 */

\echo Use "CREATE EXTENSION pipeline" to load this file. \quit

CREATE TYPE task_stage AS ENUM (
    'pending', 'scheduling', 'creating', 'active', 'canceling',
    'canceled', 'failed', 'succeeded', 'skipped'
);

-- Job definitions: one row per (name, version); definition is normalized
-- (every key present, defaults filled in) by define_job().
CREATE TABLE job (
    name        text        NOT NULL,
    version     int         NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version)
);

-- Pipeline definitions, versioned like jobs.
CREATE TABLE pipeline (
    name        text        NOT NULL,
    version     int         NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version)
);

-- One run of a pipeline version.
CREATE TABLE pipeline_task (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_name    text        NOT NULL,
    pipeline_version int         NOT NULL,
    stage            task_stage  NOT NULL DEFAULT 'pending',
    message          text,
    params           jsonb       NOT NULL DEFAULT '{}',
    runtime_envs     jsonb       NOT NULL DEFAULT '{}',
    dry_run          boolean     NOT NULL DEFAULT false,
    run_by           text        NOT NULL DEFAULT current_user,
    labels           jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    start_at         timestamptz,
    end_at           timestamptz,
    -- not in the fixed column list of the SPEC:
    sequence_key     text,                       -- set when runs of this pipeline are serialized
    hooks            jsonb       NOT NULL DEFAULT '{}',  -- pipeline-level hooks of the definition
    sensitive        text[]      NOT NULL DEFAULT '{}',  -- names of params shown as ******
    stage_count      int         NOT NULL,
    -- issue #11 (SPEC §13): runs of pipelines that use needs/matrix/when/if
    dag              boolean     NOT NULL DEFAULT false,  -- scheduled on the needs graph
    failing          boolean     NOT NULL DEFAULT false,  -- dag run failed (message says why); always/on_failure still run
    chained          jsonb       NOT NULL DEFAULT '[]',  -- runs its end started (next_pipelines), or why not
    FOREIGN KEY (pipeline_name, pipeline_version) REFERENCES pipeline (name, version)
);
CREATE INDEX pipeline_task_open_idx ON pipeline_task (pipeline_name, id)
    WHERE stage < 'canceled';
CREATE INDEX pipeline_task_end_idx ON pipeline_task (end_at) WHERE end_at IS NOT NULL;

-- One run of one task of a pipeline task.
CREATE TABLE job_task (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_task_id bigint      REFERENCES pipeline_task (id) ON DELETE CASCADE,
    stage_index      int         NOT NULL,
    stage_name       text        NOT NULL,
    task_index       int         NOT NULL,
    task_name        text        NOT NULL,
    job_name         text,                        -- NULL for an inline job
    stage            task_stage  NOT NULL DEFAULT 'pending',
    message          text,
    detail           jsonb,
    extension        jsonb       NOT NULL DEFAULT '{}',
    runtime_envs     jsonb       NOT NULL DEFAULT '{}',
    runner           text,
    attempt          int         NOT NULL DEFAULT 1,
    dry_run          boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    start_at         timestamptz,
    end_at           timestamptz,
    -- not in the fixed column list of the SPEC:
    job_version      int,                         -- version of job_name used by this run
    params           jsonb       NOT NULL DEFAULT '{}',  -- params fixed at run start (plain)
    sensitive        text[]      NOT NULL DEFAULT '{}',  -- names of params shown as ******
    labels           jsonb       NOT NULL DEFAULT '{}',  -- labels a runner must have
    is_parallel      boolean     NOT NULL DEFAULT false, -- the stage's mode
    ignore_failed    boolean     NOT NULL DEFAULT false,
    audit            jsonb,                       -- {"enable":..,"auditors":[..]} or NULL
    confirm          jsonb,                       -- {"enable":..,"checkers":[..]} or NULL
    gate             text        CHECK (gate IN ('audit', 'confirm')),  -- gate now waiting
    gate_result      jsonb       NOT NULL DEFAULT '{}',  -- decisions taken at the gates
    hooks            jsonb       NOT NULL DEFAULT '{}',  -- task-level hooks
    token_digest     bytea,                       -- SHA-256 of the update token
    claimed_at       timestamptz,
    heartbeat_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    retry_at         timestamptz,                 -- automatic retry not before
    retries          int         NOT NULL DEFAULT 0,  -- the job's retries (read on every report)
    timeout          int         NOT NULL DEFAULT 0,  -- the job's timeout in seconds (read by reap)
    -- issue #11 (SPEC §13), set only in runs of pipelines that use needs/matrix/when/if
    -- (pipeline_task.dag); NULL in stage runs.  None of them is indexed (HOT).
    needs            bigint[],                    -- ids of the job tasks it needs
    downstream       bigint[],                    -- ids of the job tasks that need it
    needs_left       int,                         -- needed tasks not resolved yet; -1: resolved itself
    run_when         text        CHECK (run_when IN ('on_success', 'manual', 'always', 'on_failure')),
    blocking         boolean     NOT NULL DEFAULT false, -- a manual task that holds its run
    -- SPEC §14 (issue 13), fixed when the run starts: the run's priority, the task's
    -- concurrency key (after $NAME substitution) and its limit, NULL without one
    priority         int         NOT NULL DEFAULT 0,
    concurrency_key  text,
    concurrency_limit int,
    -- 0.4 (issue 12): true while the task holds its stage open (not finished, or waiting
    -- at a gate).  The partial index job_task_open_idx below has this column, and only
    -- this one, in its predicate: a status update that keeps the task open (claim,
    -- active, canceling, heartbeat) changes no indexed column and can be HOT.
    is_open          boolean     GENERATED ALWAYS AS (stage < 'canceled' OR gate IS NOT NULL) STORED
) WITH (fillfactor = 80);
-- fillfactor 80 (issue 12): room on each page for the new versions of its rows,
-- so that an update whose changed columns are in no index key or predicate
-- (heartbeats; every status update once no index predicate holds a per-update
-- column) can be HOT: no index insert, pruned within the page.
-- The resolved job of each job task (runner, command, timeout, retries, labels,
-- declared params, version): written once when the run starts, read by
-- claim_job_tasks.  Kept out of job_task, whose row is rewritten at every
-- stage change: a narrower row is less WAL per status update.
CREATE TABLE job_task_spec (
    job_task_id      bigint      PRIMARY KEY REFERENCES job_task (id) ON DELETE CASCADE,
    job              jsonb       NOT NULL
);

-- all tasks of a run, in order
CREATE INDEX job_task_run_idx ON job_task (pipeline_task_id, stage_index, task_index);
-- tasks that still hold their stage open: next_run and advancing read only this
CREATE INDEX job_task_open_idx ON job_task (pipeline_task_id, stage_index, task_index)
    WHERE is_open;
-- (the runners' queue is the table job_queue below, not an index on job_task: an index
-- whose predicate names stage would make every status update of job_task non-HOT)
-- (reap() finds running tasks through job_task_open_idx: one index fewer to
-- maintain on every stage change, and open tasks are few)

-- The runners' queue (SPEC §9, §14; src/claim.c): one row per job task whose stage is
-- 'scheduling', inserted by the transition that makes it scheduling and deleted by the one
-- that ends it (claim, cancel, skip), in the same statement (src/transition.c, the only
-- writer).  Claims read it in (priority DESC, job_task_id) order and lock the job_task row
-- (job_task.stage stays the truth: a claim takes a row only if its task is scheduling).
CREATE TABLE job_queue (
    job_task_id       bigint      PRIMARY KEY,         -- no foreign key: see below
    priority          int         NOT NULL,
    labels            jsonb       NOT NULL,            -- labels a runner must have
    concurrency_key   text,
    concurrency_limit int
);
CREATE INDEX job_queue_pick_idx ON job_queue (priority DESC, job_task_id);

-- Concurrency slots in use (SPEC §14): one row per job task with a concurrency key that is
-- creating, active or canceling.  A claim inserts it (src/transition.c, under the key's lock,
-- src/lock.c) if fewer than the limit exist; the transition that takes the task out of those
-- stages deletes it in the same statement.
CREATE TABLE concurrency_slot (
    job_task_id       bigint      PRIMARY KEY,         -- no foreign key: see below
    key               text        NOT NULL
);
CREATE INDEX concurrency_slot_key_idx ON concurrency_slot (key);
-- Neither table has a foreign key to job_task: its check would lock the job_task row just
-- written (FOR KEY SHARE: one more WAL record and lock per task, measured at about a third
-- of the keyed lifecycle's throughput).  Readers join job_task (a row of a deleted task
-- counts for nothing), and purge() deletes the rows of the tasks it deletes.

-- The outbox: one row per stage change, written in the changing transaction
-- (src/transition.c).  Issue 12: a job task event's row is slim: its
-- payload holds only what is "as of the event" and not already a column --
-- message, attempt (when not 1), runner, gate, gate_result (when not {}),
-- start_at, end_at, null keys left out -- about 60 bytes instead of 400; the
-- rest of the snapshot (the run's name, the task's stage and task index and
-- name, job_name, dry_run) never changes after the task is created and is
-- read from the task's and the run's rows by the view "event" below.  A run
-- event (a few per run) keeps its full snapshot.  Events written before 0.3
-- keep their full payload, which the view returns unchanged (the stored keys
-- win).  The constraints, the index and the sequence keep the names of the
-- 0.2 table "event" (the upgrade renames that table).
CREATE TABLE event_store (
    id               bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME event_id_seq),
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind             text        NOT NULL CONSTRAINT event_kind_check
                                 CHECK (kind IN ('job_task', 'pipeline_task')),
    object_id        bigint      NOT NULL,
    pipeline_task_id bigint,
    old_stage        task_stage,
    new_stage        task_stage  NOT NULL,
    payload          jsonb       NOT NULL,
    CONSTRAINT event_pkey PRIMARY KEY (id)
);
-- BRIN: events arrive in id order, runs roughly so; purge() and per-run reads
-- find their pages without a B-tree insert on every event
CREATE INDEX event_run_idx ON event_store USING brin (pipeline_task_id);

-- The events as readers see them (events_since, hook deliveries, SELECT): a
-- job task event's stored delta over the snapshot fields read from the task
-- and run rows (a key the delta leaves out is null, attempt 1, gate_result
-- {}); a run event's payload as stored.  Only built-in functions: a role
-- granted SELECT on the view needs no EXECUTE on helpers.
CREATE VIEW event AS
SELECT e.id, e.at, e.kind, e.object_id, e.pipeline_task_id, e.old_stage, e.new_stage,
       CASE WHEN e.kind = 'job_task' THEN
           jsonb_build_object(
               'id', e.object_id, 'pipeline_task_id', e.pipeline_task_id,
               'pipeline_name', p.pipeline_name,
               'stage_index', t.stage_index, 'stage_name', t.stage_name,
               'task_index', t.task_index, 'task_name', t.task_name,
               'job_name', t.job_name, 'stage', e.new_stage, 'old_stage', e.old_stage,
               'message', NULL::text, 'attempt', 1, 'runner', NULL::text,
               'dry_run', t.dry_run, 'gate', NULL::text, 'gate_result', '{}'::jsonb,
               'start_at', NULL::timestamptz, 'end_at', NULL::timestamptz) || e.payload
       ELSE e.payload
       END AS payload
  FROM event_store e
  LEFT JOIN job_task t ON e.kind = 'job_task' AND t.id = e.object_id
  LEFT JOIN pipeline_task p ON e.kind = 'job_task' AND p.id = e.pipeline_task_id;

-- What a hook sender must deliver: one row per (event, matching hook).
CREATE TABLE hook_delivery (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint      NOT NULL,
    pipeline_task_id bigint,
    job_task_id      bigint,
    kind             text        NOT NULL CHECK (kind IN ('webhook', 'im_robot', 'mention')),
    target           jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'succeeded', 'failed')),
    attempts         int         NOT NULL DEFAULT 0,
    http_code        int,
    response         text,
    cost_ms          int,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    sender           text,
    lease_until      timestamptz,
    finished_at      timestamptz,
    results          jsonb       NOT NULL DEFAULT '[]'   -- every attempt's result, oldest first
);
CREATE INDEX hook_delivery_due_idx ON hook_delivery (next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX hook_delivery_run_idx ON hook_delivery (pipeline_task_id, id);
CREATE INDEX hook_delivery_task_idx ON hook_delivery (job_task_id, id) WHERE job_task_id IS NOT NULL;

-- Schedules registered with pg_cron by pipeline.schedule().
CREATE TABLE schedule (
    name         text        PRIMARY KEY,
    cron         text        NOT NULL,
    pipeline     text        NOT NULL,
    params       jsonb       NOT NULL DEFAULT '{}',
    cron_job_id  bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL DEFAULT current_user
);

-- Output of job tasks, appended by runners.
CREATE TABLE job_task_log (
    job_task_id      bigint      NOT NULL,
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    chunk            text        NOT NULL,
    PRIMARY KEY (job_task_id, seq)
);

-- Rejected update tokens.  A sequence, because the rejecting transaction rolls
-- back and nextval() is the one counter a rolled-back transaction keeps.
CREATE SEQUENCE rejected_token_seq;

-- ---------------------------------------------------------------------------
-- Backup and restore (SPEC §18): pg_dump dumps the rows of an extension's
-- tables only when they are registered here, and the values of its
-- sequences likewise.  Every table and sequence holding user data is, with
-- the sequences behind the identity columns, so that a restored database
-- goes on numbering runs, tasks, events, deliveries and log chunks after the
-- dumped ones.  (pg_dump orders the tables' data by their foreign keys.)
SELECT pg_catalog.pg_extension_config_dump('job', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline_task', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline_task_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_task', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_spec', '');
SELECT pg_catalog.pg_extension_config_dump('event_store', '');
SELECT pg_catalog.pg_extension_config_dump('event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('hook_delivery', '');
SELECT pg_catalog.pg_extension_config_dump('hook_delivery_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('schedule', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_log', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_log_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('rejected_token_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_queue', '');
SELECT pg_catalog.pg_extension_config_dump('concurrency_slot', '');

-- ---------------------------------------------------------------------------
-- Definitions (src/definition.c)
CREATE FUNCTION define_job(definition jsonb) RETURNS int
    AS 'MODULE_PATHNAME', 'pl_define_job' LANGUAGE C VOLATILE;

CREATE FUNCTION define_pipeline(definition jsonb) RETURNS int
    AS 'MODULE_PATHNAME', 'pl_define_pipeline' LANGUAGE C VOLATILE;

-- Runs (src/run.c)
CREATE FUNCTION run_pipeline(pipeline text, params jsonb DEFAULT '{}',
                             dry_run boolean DEFAULT false,
                             run_by text DEFAULT current_user,
                             labels jsonb DEFAULT '{}',
                             on_busy text DEFAULT 'error',
                             priority int DEFAULT 0)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pl_run_pipeline' LANGUAGE C VOLATILE;

CREATE FUNCTION plan(pipeline text, params jsonb DEFAULT '{}')
    RETURNS TABLE (stage_index int, stage_name text, task_index int, task_name text,
                   job_name text, params jsonb, gates jsonb)
    AS 'MODULE_PATHNAME', 'pl_plan' LANGUAGE C STABLE;

-- Status updates (src/status.c)
CREATE FUNCTION update_job_task_status(id bigint, stage task_stage, update_token text,
                                       message text DEFAULT NULL, detail jsonb DEFAULT NULL,
                                       runtime_envs jsonb DEFAULT NULL,
                                       extension jsonb DEFAULT NULL,
                                       force_update_status boolean DEFAULT false,
                                       force_trigger_pipeline boolean DEFAULT false)
    RETURNS job_task
    AS 'MODULE_PATHNAME', 'pl_update_job_task_status' LANGUAGE C VOLATILE;

-- Batched reports (issue 12, SPEC §16; src/statuses.c)
CREATE FUNCTION update_job_task_statuses(reports jsonb)
    RETURNS TABLE (id bigint, stage task_stage, sqlstate text, message text)
    AS 'MODULE_PATHNAME', 'pl_update_job_task_statuses' LANGUAGE C VOLATILE;

CREATE FUNCTION heartbeat(id bigint, update_token text) RETURNS void
    AS 'MODULE_PATHNAME', 'pl_heartbeat' LANGUAGE C VOLATILE;

-- Next-task selection (src/advance.c)
CREATE FUNCTION next_run(pipeline_task_id bigint) RETURNS SETOF job_task
    AS 'MODULE_PATHNAME', 'pl_next_run' LANGUAGE C STABLE;

CREATE FUNCTION cancel_pipeline_task(id bigint, reason text DEFAULT NULL)
    RETURNS pipeline_task
    AS 'MODULE_PATHNAME', 'pl_cancel_pipeline_task' LANGUAGE C VOLATILE;

-- Claiming (src/claim.c)
-- start (issue 12, SPEC §16): the claimed tasks go straight to active
CREATE FUNCTION claim_job_tasks(runner text, max int DEFAULT 1, labels jsonb DEFAULT '{}',
                                start boolean DEFAULT false)
    RETURNS TABLE (id bigint, update_token text, pipeline_task_id bigint, job jsonb,
                   params jsonb, dry_run boolean)
    AS 'MODULE_PATHNAME', 'pl_claim_job_tasks' LANGUAGE C VOLATILE;

-- Events (src/event.c)
CREATE FUNCTION events_since(after_id bigint, max int DEFAULT 1000) RETURNS SETOF event
    AS 'MODULE_PATHNAME', 'pl_events_since' LANGUAGE C VOLATILE;

-- Gates, retries, reaping, logs (src/gates.c)
CREATE FUNCTION audit_job_task(id bigint, pass boolean, comment text DEFAULT NULL)
    RETURNS job_task
    AS 'MODULE_PATHNAME', 'pl_audit_job_task' LANGUAGE C VOLATILE;

CREATE FUNCTION confirm_job_task(id bigint, pass boolean, comment text DEFAULT NULL)
    RETURNS job_task
    AS 'MODULE_PATHNAME', 'pl_confirm_job_task' LANGUAGE C VOLATILE;

CREATE FUNCTION retry_job_task(id bigint) RETURNS job_task
    AS 'MODULE_PATHNAME', 'pl_retry_job_task' LANGUAGE C VOLATILE;

-- Manual tasks (SPEC §13, src/play.c)
CREATE FUNCTION play_job_task(id bigint) RETURNS job_task
    AS 'MODULE_PATHNAME', 'pl_play_job_task' LANGUAGE C VOLATILE;

CREATE FUNCTION reap() RETURNS int
    AS 'MODULE_PATHNAME', 'pl_reap' LANGUAGE C VOLATILE;

CREATE FUNCTION append_job_task_log(id bigint, update_token text, chunk text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pl_append_job_task_log' LANGUAGE C VOLATILE;

CREATE FUNCTION job_task_log(id bigint)
    RETURNS TABLE (seq bigint, at timestamptz, chunk text)
    LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF job_task_log.id IS NULL THEN
        RAISE EXCEPTION 'job_task_log: id must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pipeline.job_task t WHERE t.id = job_task_log.id) THEN
        RAISE EXCEPTION 'job task % does not exist', job_task_log.id USING ERRCODE = 'P0002';
    END IF;
    RETURN QUERY SELECT l.seq, l.at, l.chunk FROM pipeline.job_task_log l
                  WHERE l.job_task_id = job_task_log.id ORDER BY l.seq;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Hook deliveries: written with each event (src/event.c), sent by a hook
-- sender such as `pipelinectl hookd`.

-- Claims due deliveries (pending, or sending with an expired lease), oldest
-- first, skipping rows other senders hold.  Each claim is an attempt; the
-- lease makes a dead sender's delivery due again (at-least-once).
CREATE FUNCTION claim_hook_deliveries(sender text, max int DEFAULT 10,
                                      lease interval DEFAULT '1 minute')
    RETURNS TABLE (id bigint, event_id bigint, pipeline_task_id bigint, job_task_id bigint,
                   kind text, target jsonb, attempts int, event jsonb, body jsonb)
    LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF sender IS NULL THEN
        RAISE EXCEPTION 'claim_hook_deliveries: sender must not be null' USING ERRCODE = '22004';
    END IF;
    IF sender = '' THEN
        RAISE EXCEPTION 'claim_hook_deliveries: sender name must not be empty'
            USING ERRCODE = '22023';
    END IF;
    IF max IS NULL OR lease IS NULL THEN
        RAISE EXCEPTION 'hook sender "%": % must not be null', sender,
            CASE WHEN max IS NULL THEN 'max' ELSE 'lease' END USING ERRCODE = '22004';
    END IF;
    IF max < 1 OR max > 1000 THEN
        RAISE EXCEPTION 'hook sender "%": max must be between 1 and 1000, not %', sender, max
            USING ERRCODE = '22023';
    END IF;
    IF lease <= interval '0' THEN
        RAISE EXCEPTION 'hook sender "%": lease must be positive', sender USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH c AS (
        SELECT d.id FROM pipeline.hook_delivery d
         WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()
         ORDER BY d.next_attempt_at, d.id
         LIMIT max FOR UPDATE SKIP LOCKED),
    u AS (
        UPDATE pipeline.hook_delivery d
           SET status = 'sending', sender = claim_hook_deliveries.sender,
               attempts = d.attempts + 1, lease_until = now() + lease,
               next_attempt_at = now() + lease
          FROM c WHERE d.id = c.id
        RETURNING d.*)
    SELECT u.id, u.event_id, u.pipeline_task_id, u.job_task_id, u.kind, u.target, u.attempts,
           to_jsonb(e),
           jsonb_build_object('delivery_id', u.id, 'kind', u.kind, 'attempt', u.attempts,
                              'event', to_jsonb(e),
                              'mention', CASE WHEN u.kind = 'mention' THEN u.target->'user' END)
      FROM u JOIN pipeline.event e ON e.id = u.event_id
     ORDER BY u.id;
END
$fn$;

-- Records the result of one attempt.  A failure is retried after
-- pipeline.hook_backoff * 2^(attempts-1) seconds (at most an hour) until
-- pipeline.hook_max_attempts attempts were made; then the delivery is failed.
CREATE FUNCTION complete_hook_delivery(id bigint, success boolean, http_code int,
                                       response text, cost_ms int)
    RETURNS hook_delivery
    LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    d pipeline.hook_delivery;
    max_attempts int := COALESCE(NULLIF(current_setting('pipeline.hook_max_attempts', true), '')::int, 5);
    backoff int := COALESCE(NULLIF(current_setting('pipeline.hook_backoff', true), '')::int, 10);
BEGIN
    IF id IS NULL OR success IS NULL THEN
        RAISE EXCEPTION 'complete_hook_delivery: id and success must not be null'
            USING ERRCODE = '22004';
    END IF;
    SELECT * INTO d FROM pipeline.hook_delivery h WHERE h.id = complete_hook_delivery.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hook delivery % does not exist', id USING ERRCODE = 'P0002';
    END IF;
    IF d.status <> 'sending' THEN
        RAISE EXCEPTION 'hook delivery % is %, not being sent', id, d.status
            USING ERRCODE = '55000', HINT = 'Claim it with claim_hook_deliveries() first.';
    END IF;
    UPDATE pipeline.hook_delivery h SET
        http_code = complete_hook_delivery.http_code,
        response = left(complete_hook_delivery.response, 4096),
        cost_ms = complete_hook_delivery.cost_ms,
        results = h.results || jsonb_build_array(jsonb_build_object(
            'attempt', h.attempts, 'at', now(), 'sender', h.sender, 'success', success,
            'http_code', complete_hook_delivery.http_code,
            'response', left(complete_hook_delivery.response, 1024),
            'cost_ms', complete_hook_delivery.cost_ms)),
        status = CASE WHEN success THEN 'succeeded'
                      WHEN h.attempts >= max_attempts THEN 'failed'
                      ELSE 'pending' END,
        next_attempt_at = CASE WHEN success OR h.attempts >= max_attempts THEN h.next_attempt_at
                               ELSE now() + make_interval(secs => LEAST(3600,
                                        backoff * power(2, h.attempts - 1))) END,
        finished_at = CASE WHEN success OR h.attempts >= max_attempts THEN now() END,
        lease_until = NULL
     WHERE h.id = complete_hook_delivery.id
    RETURNING h.* INTO d;
    RETURN d;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Schedules (pg_cron)

CREATE FUNCTION schedule(name text, cron text, pipeline text, params jsonb DEFAULT '{}')
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    job_id bigint;
BEGIN
    IF name IS NULL OR cron IS NULL OR pipeline IS NULL OR params IS NULL THEN
        RAISE EXCEPTION 'schedule: % must not be null',
            CASE WHEN name IS NULL THEN 'name' WHEN cron IS NULL THEN 'cron'
                 WHEN pipeline IS NULL THEN 'pipeline' ELSE 'params' END
            USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pipeline.schedule needs the pg_cron extension, which is not installed'
            USING ERRCODE = '0A000',
                  HINT = 'Add pg_cron to shared_preload_libraries, restart, then CREATE EXTENSION pg_cron.';
    END IF;
    IF name = '' THEN
        RAISE EXCEPTION 'schedule: name must not be empty' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'schedule "%": params must be a JSON object', name USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pipeline.pipeline p WHERE p.name = schedule.pipeline) THEN
        RAISE EXCEPTION 'schedule "%": pipeline "%" does not exist', name, pipeline
            USING ERRCODE = '42704';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job_id
      USING 'pipeline:' || name, cron,
            format('SELECT pipeline.run_pipeline(%L, %L::jsonb, run_by => %L)',
                   pipeline, params::text, 'schedule:' || name);
    INSERT INTO pipeline.schedule AS s (name, cron, pipeline, params, cron_job_id, created_by)
    VALUES (name, cron, pipeline, params, job_id, session_user)
    ON CONFLICT ON CONSTRAINT schedule_pkey DO UPDATE
       SET cron = EXCLUDED.cron, pipeline = EXCLUDED.pipeline, params = EXCLUDED.params,
           cron_job_id = EXCLUDED.cron_job_id;
    RETURN job_id;
END
$fn$;

CREATE FUNCTION unschedule(name text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'unschedule: name must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pipeline.unschedule needs the pg_cron extension, which is not installed'
            USING ERRCODE = '0A000';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pipeline.schedule s WHERE s.name = unschedule.name) THEN
        RAISE EXCEPTION 'schedule "%" does not exist', name USING ERRCODE = '42704';
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' USING 'pipeline:' || name;
    DELETE FROM pipeline.schedule s WHERE s.name = unschedule.name;
    RETURN true;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Retention

CREATE FUNCTION purge(older_than interval) RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
    doomed bigint[];
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'purge: older_than must not be null' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'purge: older_than must be a non-negative interval' USING ERRCODE = '22023';
    END IF;
    doomed := ARRAY(SELECT p.id FROM pipeline.pipeline_task p
                     WHERE p.stage >= 'canceled' AND p.end_at < now() - older_than
                     ORDER BY p.id FOR UPDATE SKIP LOCKED);
    n := cardinality(doomed);
    DELETE FROM pipeline.hook_delivery d WHERE d.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.event_store e WHERE e.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_task_log l USING pipeline.job_task t
     WHERE l.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    -- (a canceled run's task may still be canceling and hold its concurrency slot)
    DELETE FROM pipeline.concurrency_slot s USING pipeline.job_task t
     WHERE s.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_queue q USING pipeline.job_task t
     WHERE q.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.pipeline_task p WHERE p.id = ANY (doomed);
    -- trigger events as old, once none of their runs is left (issue 13)
    DELETE FROM pipeline.trigger_event e
     WHERE e.received_at < now() - older_than
       AND NOT EXISTS (SELECT 1 FROM pipeline.pipeline_task p WHERE p.id = ANY (e.runs));
    RETURN n;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Pictures of a run

CREATE FUNCTION graph(pipeline_task_id bigint, format text DEFAULT 'mermaid') RETURNS text
    LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    run record;
    st record;
    t record;
    out text;
    prev_first text;
    prev_cluster int;
    colour jsonb := '{"pending": "#d0d7de", "scheduling": "#bf8700", "creating": "#bf8700",
                      "active": "#0969da", "canceling": "#8250df", "canceled": "#6e7781",
                      "failed": "#cf222e", "succeeded": "#1a7f37", "skipped": "#eaeef2"}';
BEGIN
    IF graph.pipeline_task_id IS NULL THEN
        RAISE EXCEPTION 'graph: pipeline_task_id must not be null' USING ERRCODE = '22004';
    END IF;
    IF format IS NULL THEN
        RAISE EXCEPTION 'graph: format must not be null' USING ERRCODE = '22004';
    END IF;
    IF format NOT IN ('mermaid', 'dot') THEN
        RAISE EXCEPTION 'graph: format must be mermaid or dot, not %', format
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO run FROM pipeline.pipeline_task p WHERE p.id = graph.pipeline_task_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pipeline task % does not exist', graph.pipeline_task_id USING ERRCODE = 'P0002';
    END IF;
    IF format = 'mermaid' THEN
        out := format(E'flowchart LR
  %%%% %s #%s: %s
', run.pipeline_name, run.id, run.stage);
        FOR st IN SELECT stage_index, stage_name, bool_or(is_parallel) AS par
                    FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                   GROUP BY stage_index, stage_name ORDER BY stage_index LOOP
            out := out || format(E'  subgraph s%s["%s%s"]
', st.stage_index, st.stage_name,
                                 CASE WHEN st.par THEN ' (parallel)' ELSE '' END);
            FOR t IN SELECT * FROM pipeline.job_task j
                      WHERE j.pipeline_task_id = run.id AND j.stage_index = st.stage_index
                      ORDER BY task_index LOOP
                out := out || format(E'    t%s["%s<br/>%s%s"]:::%s
', t.id,
                                     replace(t.task_name, '"', ''), t.stage,
                                     CASE WHEN t.end_at IS NOT NULL AND t.start_at IS NOT NULL
                                          THEN ' ' || round(extract(epoch FROM t.end_at - t.start_at)::numeric, 1) || 's'
                                          ELSE '' END,
                                     t.stage);
                IF NOT st.par AND t.task_index > 0 AND NOT run.dag THEN
                    out := out || format(E'    t%s --> t%s
',
                        (SELECT j.id FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                            AND j.stage_index = st.stage_index AND j.task_index = t.task_index - 1), t.id);
                END IF;
            END LOOP;
            out := out || E'  end
';
            IF st.stage_index > 0 AND NOT run.dag THEN
                out := out || format(E'  s%s --> s%s
', st.stage_index - 1, st.stage_index);
            END IF;
        END LOOP;
        -- a dag run (SPEC §13): one edge per need, after the subgraphs that hold the nodes
        FOR t IN SELECT n.need, j.id FROM pipeline.job_task j, unnest(j.needs) AS n(need)
                  WHERE j.pipeline_task_id = run.id AND run.dag ORDER BY j.id, n.need LOOP
            out := out || format(E'  t%s --> t%s
', t.need, t.id);
        END LOOP;
        FOR t IN SELECT key, value FROM jsonb_each_text(colour) LOOP
            out := out || format(E'  classDef %s fill:%s,color:%s
', t.key, t.value,
                                 CASE WHEN t.key IN ('pending', 'skipped') THEN '#24292f' ELSE '#ffffff' END);
        END LOOP;
        RETURN out;
    END IF;
    -- dot
    out := format(E'digraph pipeline_task_%s {
  label="%s #%s: %s"; labelloc=t; rankdir=LR; compound=true; fontname="Helvetica";
'
                  '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontcolor="white"];
',
                  run.id, run.pipeline_name, run.id, run.stage);
    FOR st IN SELECT stage_index, stage_name, bool_or(is_parallel) AS par, min(id) AS first_id
                FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
               GROUP BY stage_index, stage_name ORDER BY stage_index LOOP
        out := out || format(E'  subgraph cluster_%s {
    label="%s%s"; style=rounded; color="#8c959f"; fontname="Helvetica";
',
                             st.stage_index, st.stage_name, CASE WHEN st.par THEN ' (parallel)' ELSE '' END);
        FOR t IN SELECT * FROM pipeline.job_task j
                  WHERE j.pipeline_task_id = run.id AND j.stage_index = st.stage_index
                  ORDER BY task_index LOOP
            out := out || format(E'    t%s [label="%s\\n%s%s", fillcolor="%s"%s];
', t.id,
                                 replace(t.task_name, '"', ''), t.stage,
                                 CASE WHEN t.end_at IS NOT NULL AND t.start_at IS NOT NULL
                                      THEN ' ' || round(extract(epoch FROM t.end_at - t.start_at)::numeric, 1) || 's'
                                      ELSE '' END,
                                 colour->>t.stage::text,
                                 CASE WHEN t.stage IN ('pending', 'skipped') THEN ', fontcolor="#24292f"' ELSE '' END);
            IF NOT st.par AND t.task_index > 0 AND NOT run.dag THEN
                out := out || format(E'    t%s -> t%s;
',
                    (SELECT j.id FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                        AND j.stage_index = st.stage_index AND j.task_index = t.task_index - 1), t.id);
            END IF;
        END LOOP;
        out := out || E'  }
';
        IF prev_first IS NOT NULL AND NOT run.dag THEN
            out := out || format(E'  %s -> t%s [ltail=cluster_%s, lhead=cluster_%s];
',
                                 prev_first, st.first_id, prev_cluster, st.stage_index);
        END IF;
        prev_first := 't' || st.first_id;
        prev_cluster := st.stage_index;
    END LOOP;
    FOR t IN SELECT n.need, j.id FROM pipeline.job_task j, unnest(j.needs) AS n(need)
              WHERE j.pipeline_task_id = run.id AND run.dag ORDER BY j.id, n.need LOOP
        out := out || format(E'  t%s -> t%s;
', t.need, t.id);
    END LOOP;
    RETURN out || E'}
';
END
$fn$;

-- Constant-time comparison of two SHA-256 digests (used by the status update).
CREATE FUNCTION digest_ok(stored bytea, presented bytea) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pl_digest_ok' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Masks the values of the named params: {"A":"x","B":"y"} with {B} -> {"A":"x","B":"******"}.
-- A run param scoped to one task ("stage.task.B") is masked when B is.
CREATE FUNCTION mask_params(params jsonb, sensitive text[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_mask_params' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- A pipeline_task row as callers may see it: params and runtime envs masked,
-- hook targets redacted.
CREATE FUNCTION redact_run(r pipeline_task) RETURNS pipeline_task
    LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    r.params := pipeline.mask_params(r.params, r.sensitive);
    r.runtime_envs := pipeline.mask_params(r.runtime_envs, r.sensitive);
    r.hooks := pipeline.redact_hooks(r.hooks);
    RETURN r;
END
$fn$;

-- A job definition as people may see it: defaults of sensitive params masked.
CREATE FUNCTION redact_job(definition jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_job' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A hook target as people may see it: the secret, header values (think
-- Authorization) and the URL's query string (robot access tokens) and user
-- info masked.
CREATE FUNCTION redact_target(target jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_target' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- An object's hook targets (its "webhooks" and "im_robot_notify") redacted.
CREATE FUNCTION redact_hooks(hooks jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_hooks_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A pipeline definition as people may see it: hook targets redacted, inline
-- jobs' sensitive defaults masked, run_params masked when named in sensitive
-- (the referenced jobs' sensitive params) or by an inline job.
CREATE FUNCTION redact_pipeline(definition jsonb, sensitive text[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_pipeline' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Free text a runner sends (log chunks, message, detail) with the values of
-- the sensitive params (params: an object or an array of objects) and the
-- token masked as ******.  Used by update_job_task_status and
-- append_job_task_log.
CREATE FUNCTION mask_secrets(value text, params jsonb, sensitive text[], token text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pl_mask_secrets_text' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION mask_secrets(value jsonb, params jsonb, sensitive text[], token text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_mask_secrets_jsonb' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- May a job report a runtime env of this name?  (The deny-list: README, Params.)
CREATE FUNCTION runtime_env_name_allowed(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pl_runtime_env_name_allowed_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- ---------------------------------------------------------------------------
-- Views: what people and dashboards read.  Secrets are masked, digests hidden.

CREATE VIEW job_tasks AS
SELECT t.id, t.pipeline_task_id, t.stage_index, t.stage_name, t.task_index, t.task_name,
       t.job_name, t.job_version, t.stage, t.message, t.detail, t.extension,
       mask_params(t.runtime_envs, t.sensitive) AS runtime_envs,
       t.runner, t.attempt, t.dry_run, t.created_at, t.start_at, t.end_at,
       mask_params(t.params, t.sensitive) AS params,
       t.labels, t.is_parallel, t.ignore_failed, t.audit, t.confirm, t.gate, t.gate_result,
       t.heartbeat_at, t.updated_at,
       t.end_at - t.start_at AS duration,
       t.needs, t.needs_left, COALESCE(t.run_when, 'on_success') AS run_when, t.blocking,
       t.priority, t.concurrency_key
  FROM job_task t;

CREATE VIEW pipeline_tasks AS
SELECT p.id, p.pipeline_name, p.pipeline_version, p.stage, p.message,
       mask_params(p.params, p.sensitive) AS params,
       mask_params(p.runtime_envs, p.sensitive) AS runtime_envs,
       p.dry_run, p.run_by, p.labels, p.created_at, p.start_at, p.end_at,
       p.end_at - p.start_at AS duration,
       (SELECT count(*) FROM job_task t WHERE t.pipeline_task_id = p.id) AS tasks_total,
       (SELECT count(*) FROM job_task t WHERE t.pipeline_task_id = p.id
                                          AND t.stage >= 'canceled' AND t.gate IS NULL) AS tasks_done,
       p.chained
  FROM pipeline_task p;

-- Hook deliveries with secrets masked, one row per (event, hook).
CREATE VIEW deliveries AS
SELECT d.id, d.event_id, d.pipeline_task_id, d.job_task_id, e.kind AS event_kind,
       e.old_stage, e.new_stage, d.kind,
       redact_target(d.target) AS target,
       d.status, d.attempts, d.http_code, d.response, d.cost_ms, d.next_attempt_at,
       d.results, d.created_at, d.finished_at
  FROM hook_delivery d JOIN event_store e ON e.id = d.event_id;

-- Every delivery a job task's events caused, with every attempt's result.
CREATE FUNCTION job_task_deliveries(id bigint) RETURNS SETOF deliveries
    LANGUAGE sql STABLE
    AS $fn$ SELECT * FROM pipeline.deliveries d WHERE d.job_task_id = $1 ORDER BY d.id $fn$;

-- Health of the engine at a glance.
CREATE VIEW stats AS
SELECT
    (SELECT COALESCE(jsonb_object_agg(stage, n), '{}') FROM
        (SELECT stage, count(*) AS n FROM pipeline_task GROUP BY stage) r) AS runs_by_stage,
    (SELECT COALESCE(jsonb_object_agg(stage, n), '{}') FROM
        (SELECT stage, count(*) AS n FROM job_task GROUP BY stage) t) AS tasks_by_stage,
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM rejected_token_seq) AS rejected_tokens,
    (SELECT COALESCE(jsonb_object_agg(status, n), '{}') FROM
        (SELECT status, count(*) AS n FROM hook_delivery GROUP BY status) d) AS deliveries_by_status,
    (SELECT now() - min(t.updated_at) FROM job_queue q JOIN job_task t ON t.id = q.job_task_id
      WHERE t.stage = 'scheduling') AS oldest_waiting_task_age,
    (SELECT count(*) FROM job_task WHERE gate IS NOT NULL) AS tasks_at_gates,
    -- event ids handed out so far (a counter for /metrics; purge() does not lower it)
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_id_seq) AS events_written,
    -- SPEC §14: tasks waiting for a runner per priority and per concurrency key, and the
    -- concurrency slots in use per key
    (SELECT COALESCE(jsonb_object_agg(priority, n), '{}') FROM
        (SELECT q.priority, count(*) AS n FROM job_queue q JOIN job_task t ON t.id = q.job_task_id
          WHERE t.stage = 'scheduling' GROUP BY q.priority) w) AS waiting_by_priority,
    (SELECT COALESCE(jsonb_object_agg(concurrency_key, n), '{}') FROM
        (SELECT q.concurrency_key, count(*) AS n FROM job_queue q JOIN job_task t ON t.id = q.job_task_id
          WHERE t.stage = 'scheduling' AND q.concurrency_key IS NOT NULL
          GROUP BY q.concurrency_key) w) AS waiting_by_concurrency_key,
    (SELECT COALESCE(jsonb_object_agg(key, n), '{}') FROM
        (SELECT s.key, count(*) AS n FROM concurrency_slot s JOIN job_task t ON t.id = s.job_task_id
          GROUP BY s.key) s) AS running_by_concurrency_key;

-- Latest version of each definition.
CREATE VIEW jobs AS
SELECT DISTINCT ON (name) name, version, redact_job(definition) AS definition, created_at, created_by
  FROM job ORDER BY name, version DESC;

-- Sensitive run_params are masked by the names any version of a referenced
-- job declares sensitive (and by inline jobs', see redact_pipeline).
CREATE VIEW pipelines AS
SELECT l.name, l.version,
       redact_pipeline(l.definition, ARRAY(
           SELECT DISTINCT p.value ->> 'name'
             FROM jsonb_array_elements(l.definition -> 'stages') s,
                  jsonb_array_elements(s.value -> 'tasks') t,
                  job j, jsonb_array_elements(j.definition -> 'params') p
            WHERE jsonb_typeof(t.value -> 'job') = 'string' AND j.name = t.value ->> 'job'
              AND (p.value ->> 'sensitive')::boolean)) AS definition,
       l.created_at, l.created_by
  FROM (SELECT DISTINCT ON (name) name, version, definition, created_at, created_by
          FROM pipeline ORDER BY name, version DESC) l;

-- ---------------------------------------------------------------------------
-- Git triggers (SPEC §15; src/trigger.c, src/trigger_payload.c, src/trigger_fire.c;
-- README "Triggers").

-- Trigger definitions, versioned like jobs.  definition is normalized by
-- define_trigger() and never holds the secret; the secret is kept apart, read
-- only by the fire functions and never shown in a view.
CREATE TABLE trigger (
    name        text        NOT NULL,
    version     int         NOT NULL,
    definition  jsonb       NOT NULL,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version)
);

-- What arrived from a git provider and what it started: one row per call of
-- fire_trigger() or accepted fire_signed_trigger().  The payload itself is
-- not kept (it may hold e-mails and tokens), only its SHA-256 and size.
-- triggers: per considered trigger {"trigger", "version", "run"} or
-- {"trigger", "version", "reason"}; reason: why nothing started (NULL when
-- something did).
CREATE TABLE trigger_event (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    provider        text        NOT NULL,
    provider_event  text,
    event_type      text,
    repo            text,
    ref             text,
    sha             text,
    author          text,
    payload_sha256  text        NOT NULL,
    payload_bytes   bigint      NOT NULL,
    runs            bigint[]    NOT NULL DEFAULT '{}',
    triggers        jsonb       NOT NULL DEFAULT '[]',
    reason          text,
    received_by     text        NOT NULL DEFAULT current_user
);
CREATE INDEX trigger_event_received_idx ON trigger_event (received_at);

SELECT pg_catalog.pg_extension_config_dump('trigger', '');
SELECT pg_catalog.pg_extension_config_dump('trigger_event', '');
SELECT pg_catalog.pg_extension_config_dump('trigger_event_id_seq', '');

CREATE FUNCTION define_trigger(definition jsonb) RETURNS int
    AS 'MODULE_PATHNAME', 'pl_define_trigger' LANGUAGE C VOLATILE;

CREATE FUNCTION fire_trigger(provider text, event jsonb, event_type text DEFAULT NULL)
    RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'pl_fire_trigger' LANGUAGE C VOLATILE;

CREATE FUNCTION fire_signed_trigger(provider text, body bytea, signature text,
                                    event_type text DEFAULT NULL)
    RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'pl_fire_signed_trigger' LANGUAGE C VOLATILE;

-- Latest version of each trigger, without its secret.
CREATE VIEW triggers AS
SELECT DISTINCT ON (name) name, version, definition, created_at, created_by
  FROM trigger ORDER BY name, version DESC;

CREATE VIEW trigger_events AS
SELECT id, received_at, provider, provider_event, event_type, repo, ref, sha, author,
       payload_sha256, payload_bytes, runs, triggers, reason, received_by
  FROM trigger_event;

-- ---------------------------------------------------------------------------
-- Privileges: nothing to PUBLIC.  See README "Privileges" for role grants.
--
-- The API functions run as the extension owner (SECURITY DEFINER) with a
-- pinned search_path, so a role needs only EXECUTE on the functions it may
-- call and SELECT on the views it may read -- never the tables, which hold
-- token digests, hook secrets and unmasked params.  They also run with JIT
-- off (0.4, issue 12): their statements are short lookups by key, but a
-- generic plan's cost estimate (a claim's queue scan, up to 1,000 rows) can
-- pass jit_above_cost, and compiling it took longer than running it a
-- hundred times.
DO $do$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'pipeline'::regnamespace
                AND p.proname NOT IN ('mask_params', 'redact_run', 'redact_job', 'redact_target', 'digest_ok',
                                      'redact_hooks', 'redact_pipeline', 'mask_secrets',
                                      'runtime_env_name_allowed')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off', f);
    END LOOP;
END
$do$;
REVOKE ALL ON ALL TABLES IN SCHEMA pipeline FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pipeline FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pipeline FROM PUBLIC;
REVOKE ALL ON SCHEMA pipeline FROM PUBLIC;

/*
 * pipeline--0.1.sql: install script of the pipeline extension.
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
    job              jsonb       NOT NULL,        -- resolved job definition (snapshot)
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
    retry_at         timestamptz                  -- automatic retry not before
);
-- all tasks of a run, in order
CREATE INDEX job_task_run_idx ON job_task (pipeline_task_id, stage_index, task_index);
-- tasks that still hold their stage open: next_run and advancing read only this
CREATE INDEX job_task_open_idx ON job_task (pipeline_task_id, stage_index, task_index)
    WHERE stage < 'canceled' OR gate IS NOT NULL;
-- the runners' queue
CREATE INDEX job_task_queue_idx ON job_task (id) WHERE stage = 'scheduling';
-- tasks a reaper has to look at
CREATE INDEX job_task_running_idx ON job_task (id)
    WHERE stage IN ('creating', 'active', 'canceling');

-- The outbox: one row per stage change, written in the changing transaction.
CREATE TABLE event (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind             text        NOT NULL CHECK (kind IN ('job_task', 'pipeline_task')),
    object_id        bigint      NOT NULL,
    pipeline_task_id bigint,
    old_stage        task_stage,
    new_stage        task_stage  NOT NULL,
    payload          jsonb       NOT NULL
);
CREATE INDEX event_run_idx ON event (pipeline_task_id, id);

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
    finished_at      timestamptz
);
CREATE INDEX hook_delivery_due_idx ON hook_delivery (next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX hook_delivery_run_idx ON hook_delivery (pipeline_task_id, id);

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
                             on_busy text DEFAULT 'error')
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

CREATE FUNCTION heartbeat(id bigint, update_token text) RETURNS void
    AS 'MODULE_PATHNAME', 'pl_heartbeat' LANGUAGE C VOLATILE;

-- Next-task selection (src/advance.c)
CREATE FUNCTION next_run(pipeline_task_id bigint) RETURNS SETOF job_task
    AS 'MODULE_PATHNAME', 'pl_next_run' LANGUAGE C STABLE;

CREATE FUNCTION cancel_pipeline_task(id bigint, reason text DEFAULT NULL)
    RETURNS pipeline_task
    AS 'MODULE_PATHNAME', 'pl_cancel_pipeline_task' LANGUAGE C VOLATILE;

-- Claiming (src/claim.c)
CREATE FUNCTION claim_job_tasks(runner text, max int DEFAULT 1, labels jsonb DEFAULT '{}')
    RETURNS TABLE (id bigint, update_token text, pipeline_task_id bigint, job jsonb,
                   params jsonb, dry_run boolean)
    AS 'MODULE_PATHNAME', 'pl_claim_job_tasks' LANGUAGE C VOLATILE;

-- Events (src/event.c)
CREATE FUNCTION events_since(after_id bigint, max int DEFAULT 1000) RETURNS SETOF event
    AS 'MODULE_PATHNAME', 'pl_events_since' LANGUAGE C VOLATILE;

-- Masks the values of the named params: {"A":"x","B":"y"} with {B} -> {"A":"x","B":"******"}
CREATE FUNCTION mask_params(params jsonb, sensitive text[]) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN sensitive = '{}' OR params IS NULL THEN params
           ELSE params OPERATOR(pg_catalog.||) COALESCE(
               (SELECT pg_catalog.jsonb_object_agg(k, '******')
                  FROM pg_catalog.jsonb_object_keys(params) AS k
                 WHERE k OPERATOR(pg_catalog.=) ANY (sensitive)), '{}') END;

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
       t.end_at - t.start_at AS duration
  FROM job_task t;

CREATE VIEW pipeline_tasks AS
SELECT p.id, p.pipeline_name, p.pipeline_version, p.stage, p.message,
       mask_params(p.params, p.sensitive) AS params,
       mask_params(p.runtime_envs, p.sensitive) AS runtime_envs,
       p.dry_run, p.run_by, p.labels, p.created_at, p.start_at, p.end_at,
       p.end_at - p.start_at AS duration,
       (SELECT count(*) FROM job_task t WHERE t.pipeline_task_id = p.id) AS tasks_total,
       (SELECT count(*) FROM job_task t WHERE t.pipeline_task_id = p.id
                                          AND t.stage >= 'canceled' AND t.gate IS NULL) AS tasks_done
  FROM pipeline_task p;

-- Latest version of each definition.
CREATE VIEW jobs AS
SELECT DISTINCT ON (name) name, version, definition, created_at, created_by
  FROM job ORDER BY name, version DESC;

CREATE VIEW pipelines AS
SELECT DISTINCT ON (name) name, version, definition, created_at, created_by
  FROM pipeline ORDER BY name, version DESC;

-- ---------------------------------------------------------------------------
-- Privileges: nothing to PUBLIC.  See README "Privileges" for role grants.
REVOKE ALL ON ALL TABLES IN SCHEMA pipeline FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pipeline FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pipeline FROM PUBLIC;
REVOKE ALL ON SCHEMA pipeline FROM PUBLIC;

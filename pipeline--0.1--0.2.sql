/*
 * pipeline--0.1--0.2.sql: upgrade of the pipeline extension from 0.1 to 0.2.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects).  Each change below names the issue it comes from.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 9 item 9, backup and restore (SPEC §18): pg_dump dumps the rows of an extension's
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
SELECT pg_catalog.pg_extension_config_dump('event', '');
SELECT pg_catalog.pg_extension_config_dump('event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('hook_delivery', '');
SELECT pg_catalog.pg_extension_config_dump('hook_delivery_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('schedule', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_log', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_log_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('rejected_token_seq', '');

-- ---------------------------------------------------------------------------
-- Issue 10 item 5, NULL arguments: a NULL where a value is required is 22004
-- naming the argument (README "SQL reference"); job_task_log, claim_hook_deliveries,
-- schedule, unschedule, purge and graph checked it with 22023 or not at all.
-- CREATE OR REPLACE resets SECURITY DEFINER and the pinned search_path: set again below.
CREATE OR REPLACE FUNCTION job_task_log(id bigint)
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

CREATE OR REPLACE FUNCTION claim_hook_deliveries(sender text, max int DEFAULT 10,
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

CREATE OR REPLACE FUNCTION schedule(name text, cron text, pipeline text, params jsonb DEFAULT '{}')
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

CREATE OR REPLACE FUNCTION unschedule(name text) RETURNS boolean
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

CREATE OR REPLACE FUNCTION purge(older_than interval) RETURNS bigint
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
    DELETE FROM pipeline.event e WHERE e.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_task_log l USING pipeline.job_task t
     WHERE l.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.pipeline_task p WHERE p.id = ANY (doomed);
    RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION graph(pipeline_task_id bigint, format text DEFAULT 'mermaid') RETURNS text
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
                IF NOT st.par AND t.task_index > 0 THEN
                    out := out || format(E'    t%s --> t%s
',
                        (SELECT j.id FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                            AND j.stage_index = st.stage_index AND j.task_index = t.task_index - 1), t.id);
                END IF;
            END LOOP;
            out := out || E'  end
';
            IF st.stage_index > 0 THEN
                out := out || format(E'  s%s --> s%s
', st.stage_index - 1, st.stage_index);
            END IF;
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
            IF NOT st.par AND t.task_index > 0 THEN
                out := out || format(E'    t%s -> t%s;
',
                    (SELECT j.id FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                        AND j.stage_index = st.stage_index AND j.task_index = t.task_index - 1), t.id);
            END IF;
        END LOOP;
        out := out || E'  }
';
        IF prev_first IS NOT NULL THEN
            out := out || format(E'  %s -> t%s [ltail=cluster_%s, lhead=cluster_%s];
',
                                 prev_first, st.first_id, prev_cluster, st.stage_index);
        END IF;
        prev_first := 't' || st.first_id;
        prev_cluster := st.stage_index;
    END LOOP;
    RETURN out || E'}
';
END
$fn$;

DO $do$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'pipeline'::regnamespace
                AND p.proname IN ('job_task_log', 'claim_hook_deliveries', 'schedule', 'unschedule',
                                  'purge', 'graph')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END
$do$;

-- ---------------------------------------------------------------------------
-- Issue 9 items 3-6 (secrets in returned rows and views, runtime env deny-list,
-- sensitive values masked in logs, message and detail): redaction helpers in C
-- (src/redact.c, src/secrets.c), redact_run also redacts hooks, pipelines view
-- redacted.  Helpers are pure functions: not SECURITY DEFINER (see the install
-- script's privileges block).

CREATE OR REPLACE FUNCTION redact_job(definition jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_job' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION redact_target(target jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_target' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION redact_hooks(hooks jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_hooks_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION redact_pipeline(definition jsonb, sensitive text[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_redact_pipeline' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION mask_secrets(value text, params jsonb, sensitive text[], token text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pl_mask_secrets_text' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION mask_secrets(value jsonb, params jsonb, sensitive text[], token text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pl_mask_secrets_jsonb' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION runtime_env_name_allowed(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pl_runtime_env_name_allowed_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION redact_run(r pipeline_task) RETURNS pipeline_task
    LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    r.params := pipeline.mask_params(r.params, r.sensitive);
    r.runtime_envs := pipeline.mask_params(r.runtime_envs, r.sensitive);
    r.hooks := pipeline.redact_hooks(r.hooks);
    RETURN r;
END
$fn$;

CREATE OR REPLACE VIEW pipelines AS
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

REVOKE ALL ON FUNCTION redact_hooks(jsonb), redact_pipeline(jsonb, text[]),
    mask_secrets(text, jsonb, text[], text), mask_secrets(jsonb, jsonb, text[], text),
    runtime_env_name_allowed(text) FROM PUBLIC;

-- issue 14 (dashboard and metrics): pipeline.stats gains events_written, the event ids handed
-- out so far (pipelinectl serve's pipeline_events_written_total).  A new last column:
-- CREATE OR REPLACE VIEW keeps the view's grants.
CREATE OR REPLACE VIEW @extschema@.stats AS
SELECT
    (SELECT COALESCE(jsonb_object_agg(stage, n), '{}') FROM
        (SELECT stage, count(*) AS n FROM @extschema@.pipeline_task GROUP BY stage) r) AS runs_by_stage,
    (SELECT COALESCE(jsonb_object_agg(stage, n), '{}') FROM
        (SELECT stage, count(*) AS n FROM @extschema@.job_task GROUP BY stage) t) AS tasks_by_stage,
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM @extschema@.rejected_token_seq) AS rejected_tokens,
    (SELECT COALESCE(jsonb_object_agg(status, n), '{}') FROM
        (SELECT status, count(*) AS n FROM @extschema@.hook_delivery GROUP BY status) d) AS deliveries_by_status,
    (SELECT now() - min(updated_at) FROM @extschema@.job_task WHERE stage = 'scheduling') AS oldest_waiting_task_age,
    (SELECT count(*) FROM @extschema@.job_task WHERE gate IS NOT NULL) AS tasks_at_gates,
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM @extschema@.event_id_seq) AS events_written;

-- ---------------------------------------------------------------------------
-- Issue 13 item 4, git triggers (SPEC §15; src/trigger.c, src/trigger_payload.c,
-- src/trigger_fire.c; README "Triggers").

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

ALTER FUNCTION define_trigger(jsonb) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION fire_trigger(text, jsonb, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION fire_signed_trigger(text, bytea, text, text)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON TABLE trigger, trigger_event, triggers, trigger_events FROM PUBLIC;
REVOKE ALL ON SEQUENCE trigger_event_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION define_trigger(jsonb), fire_trigger(text, jsonb, text),
    fire_signed_trigger(text, bytea, text, text) FROM PUBLIC;

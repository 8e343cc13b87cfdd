/*
 * pipeline--0.1--0.2.sql: upgrade of the pipeline extension from 0.1 to 0.2.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects).  Each change below names the issue it comes from.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit

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

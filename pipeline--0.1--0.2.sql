/*
 * pipeline--0.1--0.2.sql: upgrade of the pipeline extension from 0.1 to 0.2.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects).  Each change below names the issue it comes from.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit

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

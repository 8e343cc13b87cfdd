/*
 * pipeline--0.2--0.3.sql: upgrade of the pipeline extension from 0.2 to 0.3.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects, backfills of new columns from existing rows).  Every change made to
 * pipeline--0.3.sql is written here too, in a section naming the issue it comes from;
 * test/t/021_upgrade.pl checks that 0.1 -> 0.2 -> 0.3 and 0.2 -> 0.3 give the same catalog
 * as a fresh 0.3 install.  New tables and sequences are registered with
 * pg_extension_config_dump, as in the install script.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.3'" to load this file. \quit


-- ---------------------------------------------------------------------------
-- Issue 13 item 3 (chain): chained pipelines (SPEC §15).  A pipeline definition may
-- carry next_pipelines (checked in C, stored in the definition: no schema change for
-- it); a run that ends records the runs it chained, or why one did not start, in
-- pipeline_task.chained ('[]' for runs that chained nothing, as every run before 0.3),
-- also shown by the pipeline_tasks view.
ALTER TABLE pipeline.pipeline_task ADD COLUMN chained jsonb NOT NULL DEFAULT '[]';
CREATE OR REPLACE VIEW pipeline_tasks AS
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


-- ---------------------------------------------------------------------------
-- Issue 13 (chain, a leftover of item 4): purge(older_than) also deletes the trigger
-- events received before the horizon whose runs are all gone.  CREATE OR REPLACE resets
-- SECURITY DEFINER and the pinned search_path: set again after it.
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
    -- trigger events as old, once none of their runs is left (issue 13)
    DELETE FROM pipeline.trigger_event e
     WHERE e.received_at < now() - older_than
       AND NOT EXISTS (SELECT 1 FROM pipeline.pipeline_task p WHERE p.id = ANY (e.runs));
    RETURN n;
END
$fn$;
ALTER FUNCTION purge(interval) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

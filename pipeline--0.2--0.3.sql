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
-- Issue 12 item 3: the batched runner protocol (SPEC §16).
-- claim_job_tasks gains "start boolean DEFAULT false" (a new signature: drop and create;
-- the EXECUTE grants the old function had are given to the new one), and
-- update_job_task_statuses(reports jsonb) is new (granted to whoever may execute
-- update_job_task_status).  Both run as the extension owner with the pinned search_path,
-- nothing to PUBLIC, like every API function.
SELECT pg_catalog.set_config('pl_upgrade_0_3.claim_grants', pg_catalog.jsonb_build_object(
    'claim', (SELECT COALESCE(pg_catalog.jsonb_agg(a.grantee::regrole::text), '[]') FROM pg_catalog.pg_proc p,
                     LATERAL pg_catalog.aclexplode(p.proacl) a
               WHERE p.oid = 'pipeline.claim_job_tasks(text, int, jsonb)'::regprocedure
                 AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner),
    'status', (SELECT COALESCE(pg_catalog.jsonb_agg(a.grantee::regrole::text), '[]') FROM pg_catalog.pg_proc p,
                      LATERAL pg_catalog.aclexplode(p.proacl) a
                WHERE p.oid = 'pipeline.update_job_task_status(bigint, pipeline.task_stage, text, text, jsonb, jsonb, jsonb, boolean, boolean)'::regprocedure
                  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner))::text,
    true);
DROP FUNCTION claim_job_tasks(text, int, jsonb);
CREATE FUNCTION claim_job_tasks(runner text, max int DEFAULT 1, labels jsonb DEFAULT '{}',
                                start boolean DEFAULT false)
    RETURNS TABLE (id bigint, update_token text, pipeline_task_id bigint, job jsonb,
                   params jsonb, dry_run boolean)
    AS 'MODULE_PATHNAME', 'pl_claim_job_tasks' LANGUAGE C VOLATILE;
CREATE FUNCTION update_job_task_statuses(reports jsonb)
    RETURNS TABLE (id bigint, stage task_stage, sqlstate text, message text)
    AS 'MODULE_PATHNAME', 'pl_update_job_task_statuses' LANGUAGE C VOLATILE;
ALTER FUNCTION claim_job_tasks(text, int, jsonb, boolean)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION update_job_task_statuses(jsonb)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION claim_job_tasks(text, int, jsonb, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION update_job_task_statuses(jsonb) FROM PUBLIC;
DO $do$
DECLARE
    g jsonb := pg_catalog.current_setting('pl_upgrade_0_3.claim_grants')::jsonb;
    r text;
BEGIN
    FOR r IN SELECT pg_catalog.jsonb_array_elements_text(g->'claim') LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION pipeline.claim_job_tasks(text, int, jsonb, boolean) TO %s', r);
    END LOOP;
    FOR r IN SELECT pg_catalog.jsonb_array_elements_text(g->'status') LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION pipeline.update_job_task_statuses(jsonb) TO %s', r);
    END LOOP;
END
$do$;

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
-- issue #11 steps 2-3 (SPEC §13): needs, matrix, when, blocking, if.
-- Runs created before the upgrade are stage runs (dag false, the new job_task
-- columns NULL/false): they advance and finish exactly as under 0.2.

ALTER TABLE pipeline_task
    ADD COLUMN dag              boolean     NOT NULL DEFAULT false,
    ADD COLUMN failing          text;

ALTER TABLE job_task
    ADD COLUMN needs            bigint[],
    ADD COLUMN downstream       bigint[],
    ADD COLUMN needs_left       int,
    ADD COLUMN run_when         text        CHECK (run_when IN ('on_success', 'manual', 'always', 'on_failure')),
    ADD COLUMN blocking         boolean     NOT NULL DEFAULT false;

-- Manual tasks (SPEC §13, src/play.c)
CREATE FUNCTION play_job_task(id bigint) RETURNS job_task
    AS 'MODULE_PATHNAME', 'pl_play_job_task' LANGUAGE C VOLATILE;
ALTER FUNCTION play_job_task(bigint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION play_job_task(bigint) FROM PUBLIC;

CREATE OR REPLACE VIEW job_tasks AS
SELECT t.id, t.pipeline_task_id, t.stage_index, t.stage_name, t.task_index, t.task_name,
       t.job_name, t.job_version, t.stage, t.message, t.detail, t.extension,
       mask_params(t.runtime_envs, t.sensitive) AS runtime_envs,
       t.runner, t.attempt, t.dry_run, t.created_at, t.start_at, t.end_at,
       mask_params(t.params, t.sensitive) AS params,
       t.labels, t.is_parallel, t.ignore_failed, t.audit, t.confirm, t.gate, t.gate_result,
       t.heartbeat_at, t.updated_at,
       t.end_at - t.start_at AS duration,
       t.needs, t.needs_left, COALESCE(t.run_when, 'on_success') AS run_when, t.blocking
  FROM job_task t;

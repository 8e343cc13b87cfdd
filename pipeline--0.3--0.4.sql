/*
 * pipeline--0.3--0.4.sql: upgrade of the pipeline extension from 0.3 to 0.4.
 *
 * Users' data survives: only additive or in-place changes.  Every change made to
 * pipeline--0.4.sql is written here too, in a section naming the issue it comes from;
 * test/t/021_upgrade.pl checks that 0.1 -> 0.2 -> 0.3 -> 0.4 and 0.3 -> 0.4 give the same
 * catalog as a fresh 0.4 install.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.4'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- issue #12: HOT status updates.  job_task_open_idx named stage and gate in its
-- predicate, so every stage change of a task was a non-HOT update (a new entry
-- in each of job_task's three indexes).  The predicate is now the stored
-- generated column is_open, which changes only when a task finishes or a gate
-- opens or closes.  ADD COLUMN ... STORED computes it for every existing row
-- (the table is rewritten once).

ALTER TABLE job_task
    ADD COLUMN is_open boolean GENERATED ALWAYS AS (stage < 'canceled' OR gate IS NOT NULL) STORED;
DROP INDEX job_task_open_idx;
CREATE INDEX job_task_open_idx ON job_task (pipeline_task_id, stage_index, task_index)
    WHERE is_open;

-- ---------------------------------------------------------------------------
-- issue #12: the API functions (every SECURITY DEFINER one) run with JIT off,
-- as the install script sets them: a generic plan's cost estimate can pass
-- jit_above_cost, and compiling took longer than running the statement.
DO $do$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'pipeline'::regnamespace AND p.prosecdef
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET jit = off', f);
    END LOOP;
END
$do$;

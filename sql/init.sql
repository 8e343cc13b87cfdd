--
-- init: helpers the other tests share (schema regress), and the privileges
-- the extension grants (none to PUBLIC).
--
-- Tests run in one database, in the order of REGRESS, so ids go on from file
-- to file: no test hard-codes an id or prints one.  Ids are captured with
-- \gset, tokens go to regress.tok, and error messages that name an id are
-- shown through regress.err(), which replaces the id by a name.
--
-- Refusals print their SQLSTATE (VERBOSITY sqlstate); the message follows
-- from psql's LAST_ERROR_MESSAGE.
\set VERBOSITY sqlstate

CREATE SCHEMA regress;

-- tokens returned by claim_job_tasks(), by job task id (never printed)
CREATE TABLE regress.tok (id bigint PRIMARY KEY, update_token text NOT NULL);

-- A fingerprint of everything the engine stores: equal before and after a
-- refusal means the refusal changed nothing (no row, no event, no timestamp).
CREATE FUNCTION regress.state() RETURNS text LANGUAGE sql AS $$
SELECT md5(concat_ws(' | ',
    (SELECT string_agg(x::text, ',' ORDER BY name, version) FROM pipeline.job x),
    (SELECT string_agg(x::text, ',' ORDER BY name, version) FROM pipeline.pipeline x),
    (SELECT string_agg(x::text, ',' ORDER BY id) FROM pipeline.pipeline_task x),
    (SELECT string_agg(x::text, ',' ORDER BY id) FROM pipeline.job_task x),
    (SELECT string_agg(x::text, ',' ORDER BY job_task_id) FROM pipeline.job_task_spec x),
    (SELECT string_agg(x::text, ',' ORDER BY id) FROM pipeline.event x),
    (SELECT string_agg(x::text, ',' ORDER BY id) FROM pipeline.hook_delivery x),
    (SELECT string_agg(x::text, ',' ORDER BY job_task_id, seq) FROM pipeline.job_task_log x),
    (SELECT string_agg(x::text, ',' ORDER BY job_task_id) FROM pipeline.job_queue x),
    (SELECT string_agg(x::text, ',' ORDER BY job_task_id) FROM pipeline.concurrency_slot x)))
$$;

-- An error message with ids replaced by names: err(msg, id1, 'NAME1', id2, 'NAME2', ...)
CREATE FUNCTION regress.err(msg text, VARIADIC ids text[] DEFAULT '{}') RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) / 2 LOOP
        msg := regexp_replace(msg, '\m' || ids[2 * i - 1] || '\M', ids[2 * i], 'g');
    END LOOP;
    RETURN msg;
END $$;

-- The id of a task of a run, by "stage.task"
CREATE FUNCTION regress.jt(run bigint, task text) RETURNS bigint LANGUAGE sql AS $$
SELECT id FROM pipeline.job_task
 WHERE pipeline_task_id = run AND stage_name || '.' || task_name = task
$$;

-- The tasks of a run, in order, as people see them (pipeline.job_tasks)
CREATE FUNCTION regress.tasks(run bigint)
RETURNS TABLE (task text, stage pipeline.task_stage, runner text, message text)
LANGUAGE sql AS $$
SELECT stage_name || '.' || task_name, stage, runner, message
  FROM pipeline.job_tasks WHERE pipeline_task_id = run
 ORDER BY stage_index, task_index
$$;

-- The stage of a run
CREATE FUNCTION regress.run_stage(run bigint) RETURNS pipeline.task_stage LANGUAGE sql AS $$
SELECT stage FROM pipeline.pipeline_task WHERE id = run
$$;

-- next_run() of a run as "stage.task" names
CREATE FUNCTION regress.next(run bigint) RETURNS text LANGUAGE sql AS $$
SELECT coalesce(string_agg(stage_name || '.' || task_name, ', ' ORDER BY stage_index, task_index), '(nothing)')
  FROM pipeline.next_run(run)
$$;

-- The events of a run after event id `after`, in order; object is "run" or "stage.task"
CREATE FUNCTION regress.events(run bigint, after bigint DEFAULT 0)
RETURNS TABLE (kind text, object text, old_stage pipeline.task_stage, new_stage pipeline.task_stage)
LANGUAGE sql AS $$
SELECT e.kind,
       CASE e.kind WHEN 'pipeline_task' THEN 'run' ELSE t.stage_name || '.' || t.task_name END,
       e.old_stage, e.new_stage
  FROM pipeline.event e LEFT JOIN pipeline.job_task t ON e.kind = 'job_task' AND t.id = e.object_id
 WHERE e.pipeline_task_id = run AND e.id > after
 ORDER BY e.id
$$;

-- The last event id so far
CREATE FUNCTION regress.last_event() RETURNS bigint LANGUAGE sql AS $$
SELECT coalesce(max(id), 0) FROM pipeline.event
$$;

-- Claim like a runner: keep the tokens in regress.tok, show what was claimed
-- as "pipeline: stage.task", oldest first.
CREATE FUNCTION regress.claim(runner text, max int DEFAULT 1, labels jsonb DEFAULT '{}')
RETURNS TABLE (claimed text) LANGUAGE sql AS $$
WITH c AS (
    SELECT * FROM pipeline.claim_job_tasks(runner, max, labels)
), kept AS (
    INSERT INTO regress.tok SELECT c.id, c.update_token FROM c
    ON CONFLICT (id) DO UPDATE SET update_token = excluded.update_token
    RETURNING id
)
SELECT p.pipeline_name || ': ' || t.stage_name || '.' || t.task_name
  FROM c JOIN pipeline.job_task t ON t.id = c.id
         JOIN pipeline.pipeline_task p ON p.id = t.pipeline_task_id
 WHERE c.id IN (SELECT id FROM kept)
 ORDER BY c.id
$$;

-- Report a stage like a runner, with the token from the last claim; returns the new stage
CREATE FUNCTION regress.report(run bigint, task text, stage pipeline.task_stage,
                               message text DEFAULT NULL, runtime_envs jsonb DEFAULT NULL)
RETURNS pipeline.task_stage LANGUAGE sql AS $$
SELECT (pipeline.update_job_task_status(k.id, stage, k.update_token,
                                        message => message, runtime_envs => runtime_envs)).stage
  FROM regress.tok k WHERE k.id = regress.jt(run, task)
$$;

-- Cancel every unfinished run: each test leaves nothing for the next one to claim
CREATE FUNCTION regress.cancel_all() RETURNS text LANGUAGE sql AS $$
SELECT count(pipeline.cancel_pipeline_task(id, 'end of test'))::text || ' run(s) canceled'
  FROM pipeline.pipeline_task WHERE stage < 'canceled'
$$;

-- A fresh database: nothing stored yet
SELECT (SELECT count(*) FROM pipeline.job) AS jobs,
       (SELECT count(*) FROM pipeline.pipeline) AS pipelines,
       (SELECT count(*) FROM pipeline.pipeline_task) AS runs,
       (SELECT count(*) FROM pipeline.event) AS events;

-- The stage enum, in the order of SPEC §3
SELECT enum_range(NULL::pipeline.task_stage);

-- Privileges: nothing is granted to PUBLIC.  A role with no grants can use
-- neither the schema nor any function or table in it.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_pipeline_nobody;
RESET client_min_messages;
CREATE ROLE regress_pipeline_nobody;
SELECT count(*) AS public_function_grants
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'pipeline'
   AND has_function_privilege('regress_pipeline_nobody', p.oid, 'EXECUTE');
SELECT count(*) AS public_table_grants
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'pipeline' AND c.relkind IN ('r', 'v', 'S')
   AND (has_table_privilege('regress_pipeline_nobody', c.oid, 'SELECT')
        OR has_table_privilege('regress_pipeline_nobody', c.oid, 'INSERT'));
SELECT has_schema_privilege('regress_pipeline_nobody', 'pipeline', 'USAGE') AS schema_usage;
SET ROLE regress_pipeline_nobody;
SELECT pipeline.claim_job_tasks('intruder');
\echo :LAST_ERROR_MESSAGE
SELECT * FROM pipeline.job_task;
\echo :LAST_ERROR_MESSAGE
RESET ROLE;
DROP ROLE regress_pipeline_nobody;

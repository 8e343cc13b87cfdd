--
-- privileges: the roles of the README and what they can do (SPEC §10).
--
-- Nothing is granted to PUBLIC.  The API functions run as the extension
-- owner (SECURITY DEFINER, pinned search_path), so a role needs USAGE on the
-- schema, EXECUTE on the functions it may call and SELECT on the views it may
-- read, never the tables (token digests, hook secrets, unmasked params).
-- The views call pipeline.mask_params() (and pipeline.jobs redact_job()),
-- which a reader must be allowed to execute too.
--
--   runner    claims, reports, heartbeats, appends logs; reads job_tasks
--             (pipelinectl runner watches its tasks there for "canceling")
--   auditor   decides at audit and confirm gates; reads the views
--   operator  defines, runs, plans, cancels and retries; reads everything
--             that is masked (views, logs, graphs, events, deliveries)
\set VERBOSITY sqlstate

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_runner;
DROP ROLE IF EXISTS regress_auditor;
DROP ROLE IF EXISTS regress_operator;
DROP ROLE IF EXISTS regress_nobody;
RESET client_min_messages;
CREATE ROLE regress_runner;
CREATE ROLE regress_auditor;
CREATE ROLE regress_operator;
CREATE ROLE regress_nobody;

-- ---------------------------------------------------------------- the grants (as in the README)
GRANT USAGE ON SCHEMA pipeline TO regress_runner, regress_auditor, regress_operator;

GRANT EXECUTE ON FUNCTION
    pipeline.claim_job_tasks(text, int, jsonb, boolean),
    pipeline.update_job_task_statuses(jsonb),
    pipeline.update_job_task_status(bigint, pipeline.task_stage, text, text, jsonb, jsonb, jsonb, boolean, boolean),
    pipeline.heartbeat(bigint, text),
    pipeline.append_job_task_log(bigint, text, text),
    pipeline.runtime_env_name_allowed(text),
    pipeline.mask_params(jsonb, text[])
  TO regress_runner;
GRANT SELECT ON pipeline.job_tasks TO regress_runner;

GRANT EXECUTE ON FUNCTION
    pipeline.audit_job_task(bigint, boolean, text),
    pipeline.confirm_job_task(bigint, boolean, text),
    pipeline.job_task_log(bigint),
    pipeline.graph(bigint, text),
    pipeline.mask_params(jsonb, text[])
  TO regress_auditor;
GRANT SELECT ON pipeline.job_tasks, pipeline.pipeline_tasks TO regress_auditor;

GRANT EXECUTE ON FUNCTION
    pipeline.define_job(jsonb),
    pipeline.define_pipeline(jsonb),
    pipeline.run_pipeline(text, jsonb, boolean, text, jsonb, text, int),
    pipeline.plan(text, jsonb),
    pipeline.next_run(bigint),
    pipeline.cancel_pipeline_task(bigint, text),
    pipeline.retry_job_task(bigint),
    pipeline.events_since(bigint, int),
    pipeline.job_task_log(bigint),
    pipeline.job_task_deliveries(bigint),
    pipeline.graph(bigint, text),
    pipeline.mask_params(jsonb, text[]),
    pipeline.redact_job(jsonb),
    pipeline.redact_pipeline(jsonb, text[])
  TO regress_operator;
GRANT SELECT ON pipeline.job_tasks, pipeline.pipeline_tasks, pipeline.deliveries, pipeline.stats,
                pipeline.jobs, pipeline.pipelines
  TO regress_operator;

-- What a role may do in schema pipeline
CREATE FUNCTION pg_temp.may(who name)
RETURNS TABLE (what text, name text) LANGUAGE sql AS $$
SELECT 'execute', p.proname::text FROM pg_proc p
 WHERE p.pronamespace = 'pipeline'::regnamespace AND has_function_privilege(who, p.oid, 'EXECUTE')
UNION ALL
SELECT 'select', c.relname::text FROM pg_class c
 WHERE c.relnamespace = 'pipeline'::regnamespace AND c.relkind IN ('r', 'v', 'S')
   AND has_table_privilege(who, c.oid, 'SELECT')
UNION ALL
SELECT 'write', c.relname::text FROM pg_class c
 WHERE c.relnamespace = 'pipeline'::regnamespace AND c.relkind IN ('r', 'v', 'S')
   AND (has_table_privilege(who, c.oid, 'INSERT') OR has_table_privilege(who, c.oid, 'UPDATE')
        OR has_table_privilege(who, c.oid, 'DELETE') OR has_table_privilege(who, c.oid, 'TRUNCATE'))
ORDER BY 1, 2
$$;
SELECT * FROM pg_temp.may('regress_runner');
SELECT * FROM pg_temp.may('regress_auditor');
SELECT * FROM pg_temp.may('regress_operator');
SELECT * FROM pg_temp.may('regress_nobody');

-- ================================================================ nothing for PUBLIC
SELECT count(*) > 20 AS functions_checked, count(*) FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE')) AS public_execute
  FROM pg_proc p WHERE p.pronamespace = 'pipeline'::regnamespace;
SELECT count(*) > 10 AS relations_checked,
       count(*) FILTER (WHERE has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')) AS public_privileges
  FROM pg_class c WHERE c.relnamespace = 'pipeline'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'm', 'f', 'p');
SELECT has_schema_privilege('public', 'pipeline', 'USAGE') AS public_usage,
       has_schema_privilege('public', 'pipeline', 'CREATE') AS public_create;
-- no PUBLIC entry in any ACL of the schema's objects (an empty ACL would mean the defaults)
SELECT count(*) AS default_acls FROM pg_proc p
 WHERE p.pronamespace = 'pipeline'::regnamespace AND p.proacl IS NULL;
SELECT count(*) AS public_acl_entries FROM (
    SELECT a.grantee FROM pg_proc p, aclexplode(p.proacl) a WHERE p.pronamespace = 'pipeline'::regnamespace
    UNION ALL
    SELECT a.grantee FROM pg_class c, aclexplode(c.relacl) a WHERE c.relnamespace = 'pipeline'::regnamespace
    UNION ALL
    SELECT a.grantee FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'pipeline') x
 WHERE grantee = 0;
-- every function but the view helpers runs as the owner with a pinned search_path
SELECT p.proname, p.prosecdef AS security_definer, p.proconfig
  FROM pg_proc p WHERE p.pronamespace = 'pipeline'::regnamespace
   AND (NOT p.prosecdef OR p.proconfig IS NULL
        OR NOT ('search_path=pg_catalog, pg_temp' = ANY (p.proconfig)))
 ORDER BY 1;

-- a role with no grants gets 42501 for every function and every relation
SET ROLE regress_nobody;
CREATE FUNCTION pg_temp.try_everything() RETURNS TABLE (sqlstate text, all_refused boolean)
LANGUAGE plpgsql AS $$
DECLARE
    f record;
    states text[] := '{}';
BEGIN
    FOR f IN SELECT p.oid, p.proname,
                    (SELECT string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY n)
                       FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n)) AS args
               FROM pg_proc p WHERE p.pronamespace = 'pipeline'::regnamespace LOOP
        BEGIN
            EXECUTE format('SELECT pipeline.%I(%s)', f.proname, coalesce(f.args, ''));
            states := states || 'no error'::text;
        EXCEPTION WHEN OTHERS THEN
            states := states || SQLSTATE;
        END;
    END LOOP;
    FOR f IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = 'pipeline'::regnamespace AND c.relkind IN ('r', 'v', 'S') LOOP
        BEGIN
            EXECUTE format('SELECT 1 FROM pipeline.%I LIMIT 0', f.relname);
            states := states || 'no error'::text;
        EXCEPTION WHEN OTHERS THEN
            states := states || SQLSTATE;
        END;
    END LOOP;
    RETURN QUERY SELECT s, count(*) = cardinality(states) FROM unnest(states) s GROUP BY s ORDER BY s;
END $$;
SELECT * FROM pg_temp.try_everything();
SELECT pipeline.run_pipeline('anything');
\echo :LAST_ERROR_MESSAGE
RESET ROLE;

-- ================================================================ the operator
SET ROLE regress_operator;
SELECT pipeline.define_job('{"name": "pv_job", "params": [{"name": "PV_SECRET", "sensitive": true, "default": "pv-s3cret"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "pv_pipe", "stages": [
  {"name": "build", "tasks": [{"name": "compile", "job": "pv_job"}]},
  {"name": "deploy", "tasks": [{"name": "prod", "job": "pv_job",
     "audit": {"enable": true, "auditors": ["regress_auditor"]},
     "confirm": {"enable": true, "checkers": ["regress_auditor"]}}]}]}') AS version;
SELECT task_name, params->>'PV_SECRET' AS secret, gates FROM pipeline.plan('pv_pipe');
SELECT pipeline.run_pipeline('pv_pipe') AS run \gset
SELECT run_by, stage, params FROM pipeline.pipeline_tasks WHERE id = :run;
-- (nothing next: the first task is already handed to runners)
SELECT stage_name || '.' || task_name AS next FROM pipeline.next_run(:run);
SELECT stage_name || '.' || task_name AS task, stage, params->>'PV_SECRET' AS secret FROM pipeline.job_tasks
 WHERE pipeline_task_id = :run ORDER BY stage_index;
SELECT name, definition->'params'->0->>'default' AS secret_default FROM pipeline.jobs WHERE name = 'pv_job';
SELECT name, definition->'stages'->1->'tasks'->0->>'name' AS second_task FROM pipeline.pipelines WHERE name = 'pv_pipe';
-- but not the tables, nor the runners' or auditors' functions
SELECT count(*) FROM pipeline.job_task;
\echo :LAST_ERROR_MESSAGE
SELECT count(*) FROM pipeline.pipeline_task;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pipeline.hook_delivery;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pipeline.claim_job_tasks('operator');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.reap();
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.purge('1 day');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT regress.run_stage(:run);
SELECT regress.jt(:run, 'build.compile') AS compile, regress.jt(:run, 'deploy.prod') AS prod \gset

-- ================================================================ the runner
SET ROLE regress_runner;
SELECT id = :compile AS is_compile, update_token AS tok, params->>'PV_SECRET' AS secret
  FROM pipeline.claim_job_tasks('regress-runner') \gset
SELECT :'is_compile' AS is_compile, :'secret' AS secret_for_the_runner;
SELECT stage FROM pipeline.update_job_task_status(:compile, 'active', :'tok');
SELECT pipeline.heartbeat(:compile, :'tok');
SELECT pipeline.append_job_task_log(:compile, :'tok', 'compiling') > 0 AS logged;
-- it may ask the engine which runtime env names it may report
SELECT pipeline.runtime_env_name_allowed('PATH') AS path_allowed, pipeline.runtime_env_name_allowed('VERSION') AS version_allowed;
-- it sees its task's stage (and nothing secret)
SELECT stage, params->>'PV_SECRET' AS secret FROM pipeline.job_tasks WHERE id = :compile;
SELECT stage, message FROM pipeline.update_job_task_status(:compile, 'succeeded', :'tok', 'built');
-- it cannot define, run, decide, or read the tables
SELECT pipeline.define_job('{"name": "pv_evil"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "pv_evil", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "pv_job"}]}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.run_pipeline('pv_pipe');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.cancel_pipeline_task(:run);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.audit_job_task(:prod, true);
\echo :LAST_ERROR_SQLSTATE
SELECT token_digest FROM pipeline.job_task WHERE id = :compile;
\echo :LAST_ERROR_MESSAGE
SELECT target FROM pipeline.hook_delivery;
\echo :LAST_ERROR_MESSAGE
SELECT params FROM pipeline.pipeline_task;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pipeline.pipeline_tasks;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pipeline.claim_hook_deliveries('runner');
\echo :LAST_ERROR_SQLSTATE
-- nor read logs (it writes them)
SELECT count(*) FROM pipeline.job_task_log(:compile);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT task, stage, runner, message FROM regress.tasks(:run);

-- ================================================================ the auditor
SET ROLE regress_auditor;
SELECT stage_name || '.' || task_name AS task, stage, gate FROM pipeline.job_tasks
 WHERE pipeline_task_id = :run ORDER BY stage_index;
SELECT stage FROM pipeline.audit_job_task(:prod, true, 'ok to deploy');
SELECT gate_result->'audit'->>'by' AS audited_by FROM pipeline.job_tasks WHERE id = :prod;
-- but it cannot run anything or take work
SELECT pipeline.run_pipeline('pv_pipe');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pipeline.claim_job_tasks('auditor');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pipeline.job_task;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

SET ROLE regress_runner;
SELECT id = :prod AS is_prod, update_token AS tok FROM pipeline.claim_job_tasks('regress-runner') \gset
SELECT :'is_prod' AS is_prod;
SELECT stage, gate FROM pipeline.update_job_task_status(:prod, 'succeeded', :'tok');
RESET ROLE;

SET ROLE regress_auditor;
SELECT stage, gate FROM pipeline.confirm_job_task(:prod, true, 'deployed fine');
SELECT stage, run_by FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT chunk FROM pipeline.job_task_log(:compile);
SELECT pipeline.graph(:run) LIKE 'flowchart LR%' AS drawn;
RESET ROLE;

-- ================================================================ the operator again: retry, cancel, read
SET ROLE regress_operator;
SELECT pipeline.run_pipeline('pv_pipe') AS run2 \gset
SELECT (pipeline.cancel_pipeline_task(:run2, 'not today')).stage;
SELECT stage FROM pipeline.retry_job_task((SELECT id FROM pipeline.job_tasks WHERE pipeline_task_id = :run2 AND task_index = 0 AND stage_index = 0));
SELECT (pipeline.cancel_pipeline_task(:run2)).stage;
SELECT chunk FROM pipeline.job_task_log(:compile);
SELECT count(*) > 0 AS sees_events FROM pipeline.events_since(0, 10);
SELECT count(*) AS deliveries FROM pipeline.job_task_deliveries(:compile);
SELECT count(*) AS delivery_rows FROM pipeline.deliveries WHERE pipeline_task_id = :run;
SELECT (SELECT count(*) FROM pipeline.stats) AS stats_rows, (SELECT count(*) FROM pipeline.pipelines WHERE name = 'pv_pipe') AS pipelines;
RESET ROLE;

SELECT regress.cancel_all();
DROP OWNED BY regress_runner, regress_auditor, regress_operator, regress_nobody;
DROP ROLE regress_runner, regress_auditor, regress_operator, regress_nobody;

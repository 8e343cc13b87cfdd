--
-- secrets: what runners send (issue 9 items 5 and 6, SPEC §12).
--
-- Runtime envs may not use a name of the deny-list (PATH, LD_*, PG*,
-- PIPELINE_*, JOB_TASK_*, ...: they would reach later jobs' environments);
-- such a report is refused with 22023 before anything is written.
--
-- The values of a task's sensitive params (from its params, and from runtime
-- envs that override them) and its update token are replaced by ****** in
-- every log chunk, message, detail and extension (all strings, nested)
-- before they are stored, and so never reach job_task_log, the task or run
-- row, events or hook deliveries.  Values shorter than 4 bytes are not searched for.
\set VERBOSITY sqlstate

-- A call's error as "SQLSTATE: message / detail / hint"
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hint text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(E'\n  detail: ' || nullif(det, ''), '')
                             || coalesce(E'\n  hint: ' || nullif(hint, ''), '');
END $$;

-- the tasks whose tokens must not show
CREATE TEMP TABLE mine (id bigint);
-- Which of the secrets below a text shows
CREATE FUNCTION pg_temp.leaked(shown text) RETURNS text LANGUAGE sql AS $$
SELECT coalesce(string_agg(s, ', ' ORDER BY s), 'none')
  FROM (SELECT unnest(ARRAY['sign-key-0123456789', 'rotated-sign-key-4567'])
        UNION ALL SELECT update_token FROM regress.tok WHERE id IN (SELECT id FROM pg_temp.mine)) AS x(s)
 WHERE strpos(shown, s) > 0
$$;

SELECT pipeline.define_job('{"name": "sec_build", "command": "make sign", "params": [
  {"name": "SIGN_KEY", "required": true, "sensitive": true},
  {"name": "PIN", "sensitive": true, "default": "42"},
  {"name": "TARGET", "default": "linux-amd64"}]}') AS version;
SELECT pipeline.define_job('{"name": "sec_ship", "command": "./upload"}') AS version;
SELECT pipeline.define_pipeline('{"name": "sec_pipe",
  "webhooks": [{"url": "https://hooks.example.com/sec"}],
  "stages": [{"name": "build", "tasks": [{"name": "compile", "job": "sec_build"}]},
             {"name": "ship", "tasks": [{"name": "upload", "job": "sec_ship",
                                         "webhooks": [{"url": "https://hooks.example.com/upload"}]}]}]}') AS version;
SELECT pipeline.run_pipeline('sec_pipe', '{"SIGN_KEY": "sign-key-0123456789"}') AS run \gset
SELECT regress.jt(:run, 'build.compile') AS compile, regress.jt(:run, 'ship.upload') AS upload \gset
SELECT * FROM regress.claim('sec-runner');
SELECT update_token AS tok FROM regress.tok WHERE id = :compile \gset
INSERT INTO mine VALUES (:compile), (:upload);

-- ================================================================ runtime env names
-- The deny-list, as runners may ask it
SELECT n AS name, pipeline.runtime_env_name_allowed(n) AS allowed
  FROM unnest(ARRAY['PATH', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'DYLD_INSERT_LIBRARIES', 'PGPASSWORD',
                    'PGHOST', 'PIPELINE_OUTPUT', 'PIPELINE_TASK_ID', 'JOB_TASK_ID',
                    'JOB_TASK_UPDATE_TOKEN', 'BASH_ENV', 'ENV', 'IFS', 'HOME', 'TMPDIR',
                    'PYTHONPATH', 'NODE_OPTIONS', 'GLIBC_TUNABLES', 'GIT_SSH_COMMAND',
                    'GIT_CONFIG_COUNT', 'BASH_FUNC_x',
                    'VERSION', 'IMAGE', 'GIT_COMMIT', 'path', 'Path', 'PATHS', 'MY_PATH', '_BUILD']) AS n;
SELECT pipeline.runtime_env_name_allowed(NULL);
\echo :LAST_ERROR_SQLSTATE

-- A report naming one is refused whole (VERSION is not merged either) and
-- changes nothing; the refusal names the task and the env
SELECT regress.state() AS before \gset
SELECT regress.err(pg_temp.try(format(
    $q$SELECT pipeline.update_job_task_status(%s, 'active', %L, runtime_envs => '{"PATH": "/tmp/evil:/usr/bin"}')$q$,
    :compile, :'tok')), :'compile', 'COMPILE');
-- (the others: the first line only)
SELECT regress.err(split_part(pg_temp.try(format(
    $q$SELECT pipeline.update_job_task_status(%s, 'active', %L, message => 'x',
        runtime_envs => '{"VERSION": "1.0", "LD_PRELOAD": "/tmp/evil.so"}')$q$,
    :compile, :'tok')), E'\n', 1), :'compile', 'COMPILE');
SELECT regress.err(split_part(pg_temp.try(format(
    $q$SELECT pipeline.update_job_task_status(%s, 'succeeded', %L, runtime_envs => '{"PGPASSWORD": "x"}')$q$,
    :compile, :'tok')), E'\n', 1), :'compile', 'COMPILE');
SELECT regress.err(split_part(pg_temp.try(format(
    $q$SELECT pipeline.update_job_task_status(%s, 'active', %L, runtime_envs => '{"JOB_TASK_UPDATE_TOKEN": "x"}')$q$,
    :compile, :'tok')), E'\n', 1), :'compile', 'COMPILE');
-- a caller without the task's token learns nothing about the names: 28000 first
SELECT regress.err(pg_temp.try(format(
    $q$SELECT pipeline.update_job_task_status(%s, 'active', 'forged', runtime_envs => '{"PATH": "/tmp"}')$q$,
    :compile)), :'compile', 'COMPILE');
SELECT regress.state() = :'before' AS unchanged;
SELECT stage, runtime_envs FROM pipeline.job_tasks WHERE id = :compile;
SELECT runtime_envs FROM pipeline.pipeline_tasks WHERE id = :run;
-- ordinary names pass; a lower-case "path" stays on the task (it reaches no environment)
SELECT stage, runtime_envs FROM pipeline.update_job_task_status(:compile, 'active', :'tok',
    runtime_envs => '{"VERSION": "1.0", "path": "dist/app.tgz"}');
SELECT runtime_envs FROM pipeline.pipeline_tasks WHERE id = :run;

-- ================================================================ masking
SELECT regress.last_event() AS ev0 \gset
-- log chunks: the sensitive value and the token are masked; PIN ("42", under
-- 4 bytes) is not searched for, nor is TARGET (not sensitive)
SELECT pipeline.append_job_task_log(:compile, :'tok', E'signing for linux-amd64 with sign-key-0123456789, pin 42\n') > 0 AS appended;
SELECT pipeline.append_job_task_log(:compile, :'tok', 'curl -H "Token: ' || :'tok' || E'" ...\n') > 0 AS appended;
SELECT pipeline.append_job_task_log(:compile, :'tok', E'sign-key-0123456789sign-key-0123456789|sign-key-012345678\n') > 0 AS appended;
SELECT seq > 0 AS ok, chunk FROM pipeline.job_task_log(:compile);
-- message and detail (every string, keys too, at any depth)
SELECT message, jsonb_pretty(detail) AS detail
  FROM pipeline.update_job_task_status(:compile, 'active', :'tok',
       message => 'signed with sign-key-0123456789',
       detail => jsonb_build_object('output_tail', E'...\nkey=sign-key-0123456789\n',
                                    'steps', jsonb_build_array(jsonb_build_object('log', jsonb_build_array('a', 'x sign-key-0123456789 y')), 3),
                                    'sign-key-0123456789', true, 'token', :'tok'));
-- extension keys the runner adds are free text too
SELECT extension FROM pipeline.update_job_task_status(:compile, 'active', :'tok',
    extension => '{"cmdline": "make sign KEY=sign-key-0123456789", "pid": 42}');
-- a runtime env overriding the sensitive param: its new value is a secret too
SELECT runtime_envs FROM pipeline.update_job_task_status(:compile, 'active', :'tok',
    runtime_envs => '{"SIGN_KEY": "rotated-sign-key-4567"}');
SELECT message FROM pipeline.update_job_task_status(:compile, 'succeeded', :'tok',
    message => 'rotated to rotated-sign-key-4567');
-- the next task gets the run param and the rotated value (run params reach
-- every task; the run's runtime envs are layer 4): both are masked in its
-- output, and in the failure that reaches the run, its events and hooks
SELECT * FROM regress.claim('sec-runner');
SELECT update_token AS tok2 FROM regress.tok WHERE id = :upload \gset
SELECT pipeline.append_job_task_log(:upload, :'tok2', E'old sign-key-0123456789 new rotated-sign-key-4567\n') > 0 AS appended;
SELECT chunk FROM pipeline.job_task_log(:upload);
SELECT stage, message FROM pipeline.update_job_task_status(:upload, 'failed', :'tok2',
    message => 'upload refused key rotated-sign-key-4567',
    detail => '{"output_tail": "401 for rotated-sign-key-4567 (was sign-key-0123456789)"}');
SELECT stage, message FROM pipeline.pipeline_tasks WHERE id = :run;
SELECT count(*) > 0 AS events_written FROM pipeline.event WHERE pipeline_task_id = :run AND id > :ev0;
SELECT count(*) > 0 AS deliveries_written FROM pipeline.hook_delivery WHERE pipeline_task_id = :run;
-- nowhere in clear: not in the tables, not in what a hook sender is given
SELECT 'job_task_log' AS place, pg_temp.leaked(string_agg(l::text, ' ')) FROM pipeline.job_task_log l WHERE job_task_id IN (:compile, :upload)
UNION ALL
SELECT 'job_task message/detail/extension', pg_temp.leaked(string_agg(concat(t.message, t.detail, t.extension), ' ')) FROM pipeline.job_task t WHERE pipeline_task_id = :run
UNION ALL
SELECT 'pipeline_task message', pg_temp.leaked(string_agg(p.message, ' ')) FROM pipeline.pipeline_task p WHERE id = :run
UNION ALL
SELECT 'event', pg_temp.leaked(string_agg(e::text, ' ')) FROM pipeline.event e WHERE pipeline_task_id = :run
UNION ALL
SELECT 'hook_delivery', pg_temp.leaked(string_agg(d::text, ' ')) FROM pipeline.hook_delivery d WHERE pipeline_task_id = :run
UNION ALL
SELECT 'claim_hook_deliveries', pg_temp.leaked(string_agg(c::text, ' ')) FROM pipeline.claim_hook_deliveries('sec-hooks', 1000) c
UNION ALL
SELECT 'job_tasks', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.job_tasks v WHERE pipeline_task_id = :run
UNION ALL
SELECT 'pipeline_tasks', pg_temp.leaked(string_agg(v::text, ' ')) FROM pipeline.pipeline_tasks v WHERE id = :run;

-- A task with no sensitive params: its text is stored as sent (the same
-- string is no secret of its), except its own token
SELECT pipeline.define_pipeline('{"name": "sec_plain", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "sec_ship"}]}]}') AS version;
SELECT pipeline.run_pipeline('sec_plain') AS run2 \gset
SELECT * FROM regress.claim('sec-runner');
SELECT regress.jt(:run2, 's.t') AS plain \gset
SELECT update_token AS tok3 FROM regress.tok WHERE id = :plain \gset
SELECT message = 'not a secret here: sign-key-0123456789, token ******' AS stored_as_sent
  FROM pipeline.update_job_task_status(:plain, 'succeeded', :'tok3',
       message => 'not a secret here: sign-key-0123456789, token ' || :'tok3');

-- ---------------------------------------------------------------- mask_secrets itself
-- longest value first, values from an array of objects (later ones override
-- earlier ones, all are secrets), dotted run-param keys by their last segment,
-- multibyte text, short values and non-strings ignored
SELECT pipeline.mask_secrets('abcdef abcd ab ünïcødé-Ω x.y.z',
    '[{"A": "abcd", "B": "abcdef"}, {"C": "ünïcødé-Ω", "D": "ab"}, {"s.t.E": "x.y.z", "F": 1}]',
    '{A,B,C,D,E,F}', NULL);
SELECT pipeline.mask_secrets('{"k": ["abcd", {"abcd": "zabcdz"}], "n": 1}'::jsonb, '{"A": "abcd"}', '{A}', NULL);
SELECT pipeline.mask_secrets('"abcd"'::jsonb, '{"A": "abcd"}', '{A}', NULL) AS scalar;
SELECT pipeline.mask_secrets('abcd', '{"A": "abcd"}', '{}', NULL) AS nothing_sensitive,
       pipeline.mask_secrets('abcd', NULL, NULL, 'abcd') AS token_only,
       pipeline.mask_secrets(NULL::text, '{"A": "abcd"}', '{A}', NULL) IS NULL AS null_stays_null;

SELECT regress.cancel_all();

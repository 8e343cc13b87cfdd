--
-- definitions: define_job() and define_pipeline() (SPEC §2).
--
-- Versions count 1, 2, ... per name; what is stored is normalized (every key
-- present, defaults filled in); every invalid document is refused with
-- SQLSTATE 22023 and a message naming the offending JSON path, and nothing
-- is stored.
\set VERBOSITY sqlstate

-- ---------------------------------------------------------------- jobs
-- The smallest job: only the name.  Every other key gets its default.
SELECT pipeline.define_job('{"name": "compile"}') AS version;
SELECT jsonb_pretty(definition) FROM pipeline.job WHERE name = 'compile' AND version = 1;

-- Each definition of the same name is a new version; older ones are kept.
SELECT pipeline.define_job('{
  "name": "compile", "runner": "shell", "command": "make all", "description": "build it",
  "params": [{"name": "TARGET", "default": "linux", "description": "what to build"},
             {"name": "JOBS", "default": 4},
             {"name": "VERBOSE", "default": true},
             {"name": "API_KEY", "required": true, "sensitive": true}],
  "timeout": 600, "retries": 2, "labels": {"arch": "amd64", "os": "linux"}}') AS version;
SELECT pipeline.define_job('{"name": "compile", "command": "make"}') AS version;
SELECT name, version, definition->>'command' AS command FROM pipeline.job ORDER BY name, version;
-- defaults of declared params are stored as strings (they become environment variables)
SELECT jsonb_pretty(definition) FROM pipeline.job WHERE name = 'compile' AND version = 2;
-- pipeline.jobs shows the latest version of each job
SELECT name, version FROM pipeline.jobs WHERE name = 'compile';
-- names may hold letters, digits, '_', '-' and '.'
SELECT pipeline.define_job('{"name": "lint.go-v1_2", "timeout": 0, "retries": 100}') AS version;
SELECT pipeline.define_job('{"name": "test", "params": null, "labels": null, "timeout": null}') AS version;
SELECT definition FROM pipeline.job WHERE name = 'test';

-- ---------------------------------------------------------------- job refusals
SELECT regress.state() AS before \gset
SELECT count(*) AS jobs_before FROM pipeline.job \gset

SELECT pipeline.define_job(NULL);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('[]');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('"compile"');
\echo :LAST_ERROR_MESSAGE
-- name
SELECT pipeline.define_job('{"command": "make"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": null}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": 42}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": ""}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "has space"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "-dash-first"}');
\echo :LAST_ERROR_MESSAGE
-- unknown keys are refused, not ignored
SELECT pipeline.define_job('{"name": "compile", "timout": 60}');
\echo :LAST_ERROR_MESSAGE
-- types of the other keys
SELECT pipeline.define_job('{"name": "compile", "runner": 1}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "runner": ""}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "command": ["make"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "description": false}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "timeout": "10"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "timeout": -1}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "timeout": 1.5}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "timeout": 604801}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "retries": 101}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "labels": ["arch"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "labels": {"arch": 64}}');
\echo :LAST_ERROR_MESSAGE
-- params
SELECT pipeline.define_job('{"name": "compile", "params": {"TARGET": "linux"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": ["TARGET"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"default": "linux"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "OK"}, {"name": "1ST"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "MY-VAR"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "A", "dflt": "x"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "A"}, {"name": "A"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "A", "default": {"x": 1}}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "A", "required": "yes"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "A", "sensitive": 1}]}');
\echo :LAST_ERROR_MESSAGE
-- the system params are reserved
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "JOB_TASK_ID"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "JOB_TASK_UPDATE_TOKEN"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "PIPELINE_TASK_ID"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_job('{"name": "compile", "params": [{"name": "PIPELINE_OUTPUT"}]}');
\echo :LAST_ERROR_MESSAGE

-- nothing was stored by any refusal
SELECT count(*) - :jobs_before AS new_jobs, regress.state() = :'before' AS unchanged FROM pipeline.job;
SELECT max(version) AS compile_latest FROM pipeline.job WHERE name = 'compile';

-- ---------------------------------------------------------------- pipelines
-- The smallest pipeline; a task may name a job or define one inline.
SELECT pipeline.define_pipeline('{"name": "mini", "stages": [{"name": "only", "tasks": [
  {"name": "t", "job": "compile"}]}]}') AS version;
SELECT jsonb_pretty(definition) FROM pipeline.pipeline WHERE name = 'mini';

-- A full one: given values are kept, the rest is filled in, hook event names
-- are lower-cased.
SELECT pipeline.define_pipeline('{
  "name": "release", "description": "ship it", "is_parallel": false, "sequence_label": "env",
  "webhooks": [{"url": "https://hooks.example.com/ci", "headers": {"X-Team": "core"},
                "events": ["Succeeded", "FAILED"], "secret": "s", "description": "team hook"}],
  "im_robot_notify": [{"url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"}],
  "mention_users": [{"user": "alice", "notify_types": ["im"], "events": ["failed"]}],
  "stages": [
    {"name": "build", "is_parallel": true, "tasks": [
      {"name": "linux", "job": "compile", "run_params": {"TARGET": "linux", "JOBS": 8, "FAST": true},
       "ignore_failed": true, "skip_run": false,
       "audit": {"enable": true, "auditors": ["bob"]},
       "confirm": {"enable": false},
       "webhooks": [{"url": "http://localhost:8080/hook", "events": []}]},
      {"name": "mac", "job": {"runner": "shell", "command": "make mac", "timeout": 60,
                              "labels": {"os": "mac"}}}]},
    {"name": "ship", "tasks": [
      {"name": "upload", "job": {"command": "./upload.sh"}, "confirm": {"enable": true, "checkers": ["carol"]},
       "mention_users": [{"user": "dave"}]}]}]}') AS version;
SELECT jsonb_pretty(definition) FROM pipeline.pipeline WHERE name = 'release';

-- versions of pipelines count like those of jobs
SELECT pipeline.define_pipeline('{"name": "mini", "description": "v2", "stages": [{"name": "only", "tasks": [
  {"name": "t", "job": "compile"}]}]}') AS version;
SELECT name, version, definition->>'description' AS description FROM pipeline.pipeline ORDER BY name, version;
SELECT name, version FROM pipeline.pipelines ORDER BY name;

-- ---------------------------------------------------------------- pipeline refusals
SELECT regress.state() AS before \gset
SELECT count(*) AS pipelines_before FROM pipeline.pipeline \gset

SELECT pipeline.define_pipeline(NULL);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('[1]');
\echo :LAST_ERROR_MESSAGE
-- the job that does not exist (yet): the path names stage 1, task 0
SELECT pipeline.define_pipeline('{"name": "needs-build", "stages": [
  {"name": "prepare", "tasks": [{"name": "deps", "job": "compile"}]},
  {"name": "main", "tasks": [{"name": "bin", "job": "build"}]}]}');
\echo :LAST_ERROR_MESSAGE
-- name
SELECT pipeline.define_pipeline('{"stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": ["p"], "stages": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "bad/name", "stages": []}');
\echo :LAST_ERROR_MESSAGE
-- top-level keys
SELECT pipeline.define_pipeline('{"name": "p", "stage": [], "stages": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "is_parallel": "no", "stages": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "sequence_label": 1, "stages": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "sequence_label": "a b", "stages": []}');
\echo :LAST_ERROR_MESSAGE
-- stages
SELECT pipeline.define_pipeline('{"name": "p"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": {"s": {}}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": ["build"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "a.b", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "parallel": true, "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "is_parallel": 1, "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "compile"}]},
  {"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
-- tasks
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s"}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": []}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": {"name": "t"}}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [null]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [
  {"name": "t", "job": "compile"}, {"name": "u", "job": "compile"}, {"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "retry": 1}]}]}');
\echo :LAST_ERROR_MESSAGE
-- job
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": 7}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"command": "x", "timeout": "1m"}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"cmd": "x"}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"params": [{"name": "JOB_TASK_ID"}]}}]}]}');
\echo :LAST_ERROR_MESSAGE
-- run_params, flags
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "run_params": ["A"]}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "run_params": {"9LIVES": "x"}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "run_params": {"A": [1]}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "ignore_failed": "true"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "skip_run": 0}]}]}');
\echo :LAST_ERROR_MESSAGE
-- hooks
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": {"url": "https://x"}, "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": ["https://x"], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": [{"events": []}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": [{"url": "ftp://x"}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": [{"url": "https://x", "events": ["done"]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": [{"url": "https://x", "events": "failed"}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": [{"url": "https://x", "method": "PUT"}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "webhooks": [{"url": "https://x", "headers": {"X-N": 1}}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "im_robot_notify": [{"url": "https://x", "robot": "slack"}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "webhooks": [{"url": "https://x"}, {"url": "x"}]}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "im_robot_notify": [{"url": "https://x", "events": ["ok"]}]}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "mention_users": [{"notify_types": []}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile"}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "mention_users": [{"user": "a", "events": ["finished"]}]}]}]}');
\echo :LAST_ERROR_MESSAGE
-- gates: enabled with nobody to decide
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "audit": {"enable": true}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "audit": {"enable": true, "auditors": []}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "confirm": {"enable": true, "checkers": []}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "audit": true}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "audit": {"enable": true, "users": ["bob"]}}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": "compile", "audit": {"enable": true, "auditors": [1]}}]}]}');
\echo :LAST_ERROR_MESSAGE

-- nothing was stored by any refusal
SELECT count(*) - :pipelines_before AS new_pipelines, regress.state() = :'before' AS unchanged
  FROM pipeline.pipeline;

-- once the job exists, the pipeline that needed it is accepted
SELECT pipeline.define_job('{"name": "build"}') AS version;
SELECT pipeline.define_pipeline('{"name": "needs-build", "stages": [
  {"name": "prepare", "tasks": [{"name": "deps", "job": "compile"}]},
  {"name": "main", "tasks": [{"name": "bin", "job": "build"}]}]}') AS version;

-- defining stores definitions only: no run, no event
SELECT (SELECT count(*) FROM pipeline.pipeline_task) AS runs,
       (SELECT count(*) FROM pipeline.job_task) AS tasks,
       (SELECT count(*) FROM pipeline.event) AS events;

--
-- dag_refusals: SPEC §13 definitions that are refused (22023, the message
-- naming the path, nothing stored): needs to a missing task, to the task
-- itself, to a later stage's task, cycles (named with their path), matrices
-- over 256 combinations or with empty/invalid lists, a bad `when`, `blocking`
-- without `when: manual`, `if` that is not an object of valid regexes.
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "dr_job"}') AS version;
SELECT regress.state() AS before \gset

-- a pipeline with one stage of two tasks and the given fields on the first
CREATE FUNCTION regress.dr(task jsonb, par boolean DEFAULT true) RETURNS int LANGUAGE sql AS $$
SELECT pipeline.define_pipeline(jsonb_build_object('name', 'dr_pipe', 'stages', jsonb_build_array(
  jsonb_build_object('name', 'build', 'tasks', jsonb_build_array(jsonb_build_object('name', 'early', 'job', 'dr_job'))),
  jsonb_build_object('name', 'test', 'is_parallel', par, 'tasks', jsonb_build_array(
     jsonb_build_object('name', 'a', 'job', 'dr_job') || task,
     jsonb_build_object('name', 'b', 'job', 'dr_job'))),
  jsonb_build_object('name', 'ship', 'tasks', jsonb_build_array(jsonb_build_object('name', 'late', 'job', 'dr_job'))))))
$$;

-- ---------------------------------------------------------------- needs
SELECT regress.dr('{"needs": ["nope"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": ["nostage.a"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": ["build.nope"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": ["a"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": ["test.a"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": ["ship.late"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": ["b", "b"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": "b"}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"needs": [1]}');
\echo :LAST_ERROR_MESSAGE
-- cycles: two tasks needing each other; three; a serial stage's implicit order
SELECT pipeline.define_pipeline('{"name": "dr_cycle", "stages": [{"name": "s", "is_parallel": true, "tasks": [
  {"name": "build", "job": "dr_job", "needs": ["test"]}, {"name": "test", "job": "dr_job", "needs": ["build"]}]}]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_pipeline('{"name": "dr_cycle", "stages": [{"name": "one", "tasks": [{"name": "x", "job": "dr_job"}]},
  {"name": "s", "is_parallel": true, "tasks": [
  {"name": "c", "job": "dr_job"},
  {"name": "a", "job": "dr_job", "needs": ["one.x", "b"]}, {"name": "b", "job": "dr_job", "needs": ["s.c", "d"]},
  {"name": "d", "job": "dr_job", "needs": ["a"]}]}]}');
\echo :LAST_ERROR_MESSAGE
-- in a serial stage a task without needs needs the one before it
SELECT regress.dr('{"needs": ["b"]}', false);
\echo :LAST_ERROR_MESSAGE

-- ---------------------------------------------------------------- matrix
SELECT regress.dr('{"matrix": {"A": ["1","2","3","4"], "B": ["1","2","3","4"], "C": ["1","2","3","4"], "D": ["1","2","3","4","5"]}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {"OS": []}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {"OS": "linux"}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": ["linux"]}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {"OS": ["linux", {"x": 1}]}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {"OS": ["linux", "linux"]}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {"OS": ["a,b"]}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"matrix": {"bad name": ["x"]}}');
\echo :LAST_ERROR_MESSAGE

-- ---------------------------------------------------------------- when, blocking
SELECT regress.dr('{"when": "sometimes"}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"when": 1}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"blocking": true}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"when": "always", "blocking": false}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"when": "manual", "blocking": "yes"}');
\echo :LAST_ERROR_MESSAGE

-- ---------------------------------------------------------------- if
SELECT regress.dr('{"if": {"ENV": "(prod"}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"if": {"ENV": 1}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"if": "ENV"}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"if": {}}');
\echo :LAST_ERROR_MESSAGE
SELECT regress.dr('{"if": {"not a name": "x"}}');
\echo :LAST_ERROR_MESSAGE

-- nothing was stored by any of these
SELECT regress.state() = :'before' AS unchanged;

-- the same fields, valid, are stored as given (normalized), and a pipeline
-- that uses none stores no §13 key
SELECT regress.dr('{"needs": ["build.early"], "matrix": {"OS": ["linux", 2, true]}, "when": "manual",
                    "blocking": true, "if": {"ENV": "^(prod|staging)$"}}') AS version;
SELECT definition->'stages'->1->'tasks'->0 AS task FROM pipeline.pipeline WHERE name = 'dr_pipe';
SELECT regress.dr('{}') AS version;
SELECT definition->'stages'->1->'tasks'->0 AS task FROM pipeline.pipeline WHERE name = 'dr_pipe' AND version = 2;
SELECT regress.dr('{"matrix": {"A": ["1","2","3","4"], "B": ["1","2","3","4"], "C": ["1","2","3","4"], "D": ["1","2","3","4"]}}') AS version_256;

-- a run of more than 10,000 job tasks is refused when it starts (40 tasks x 256), nothing stored
SELECT pipeline.define_pipeline(jsonb_build_object('name', 'dr_huge', 'stages', jsonb_build_array(
  jsonb_build_object('name', 's', 'is_parallel', true, 'tasks', (
    SELECT jsonb_agg(jsonb_build_object('name', 't' || i, 'job', 'dr_job', 'matrix',
             '{"A": ["1","2","3","4"], "B": ["1","2","3","4"], "C": ["1","2","3","4"], "D": ["1","2","3","4"]}'::jsonb))
      FROM generate_series(1, 40) i))))) AS version;
SELECT regress.state() AS before \gset
SELECT pipeline.run_pipeline('dr_huge');
\echo :LAST_ERROR_MESSAGE
SELECT regress.state() = :'before' AS unchanged;

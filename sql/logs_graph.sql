--
-- logs_graph: task logs and pictures of a run (SPEC §11).
--
-- append_job_task_log(id, update_token, chunk) appends a chunk of output,
-- guarded by the token like a status update (28000; unknown id P0002), and
-- returns its seq; job_task_log(id) returns a task's chunks in seq order.
-- graph(run, format) draws the run as mermaid or dot; ids are part of the
-- picture (node names, title) and are replaced by names here, durations too.
\set VERBOSITY sqlstate

-- The graph of a run with ids replaced by names: the run by R, each task id
-- by stage_task; task durations by N.Ns
CREATE FUNCTION pg_temp.graph(run bigint, format text DEFAULT 'mermaid') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    g text := pipeline.graph(run, format);
    t record;
BEGIN
    FOR t IN SELECT id, stage_name, task_name FROM pipeline.job_task WHERE pipeline_task_id = run LOOP
        g := regexp_replace(g, '\mt' || t.id || '\M', t.stage_name || '_' || t.task_name, 'g');
    END LOOP;
    g := regexp_replace(g, '#' || run || '\M', '#R', 'g');
    g := regexp_replace(g, 'pipeline_task_' || run || '\M', 'pipeline_task_R', 'g');
    RETURN regexp_replace(g, ' [0-9]+\.[0-9]s', ' N.Ns', 'g');
END $$;

SELECT pipeline.define_job('{"name": "lg_job"}') AS version;
SELECT pipeline.define_pipeline('{"name": "lg_pipe", "stages": [
  {"name": "build", "is_parallel": true, "tasks": [{"name": "linux", "job": "lg_job"}, {"name": "mac", "job": "lg_job"}]},
  {"name": "ship", "tasks": [{"name": "upload", "job": "lg_job"}, {"name": "notify", "job": "lg_job"}]}]}') AS version;

-- ================================================================ logs
SELECT pipeline.run_pipeline('lg_pipe') AS run \gset
SELECT regress.jt(:run, 'build.linux') AS linux, regress.jt(:run, 'build.mac') AS mac \gset
SELECT * FROM regress.claim('lg-runner', 2);
SELECT update_token AS linux_tok FROM regress.tok WHERE id = :linux \gset
SELECT update_token AS mac_tok FROM regress.tok WHERE id = :mac \gset
-- nothing yet
SELECT count(*) AS chunks FROM pipeline.job_task_log(:linux);
-- chunks of two tasks, interleaved
SELECT pipeline.append_job_task_log(:linux, :'linux_tok', E'configure\n') AS seq1 \gset
SELECT pipeline.append_job_task_log(:mac, :'mac_tok', E'mac: start\n') AS seq_mac \gset
SELECT pipeline.append_job_task_log(:linux, :'linux_tok', E'make all\n') AS seq2 \gset
SELECT pipeline.append_job_task_log(:linux, :'linux_tok', E'done\n') AS seq3 \gset
SELECT :seq1 < :seq2 AND :seq2 < :seq3 AS seq_increases;
-- each task's own chunks, in order
SELECT seq = :seq1 AS first, chunk, at IS NOT NULL AS has_at FROM pipeline.job_task_log(:linux);
SELECT chunk FROM pipeline.job_task_log(:mac);
SELECT string_agg(chunk, '' ORDER BY seq) AS output FROM pipeline.job_task_log(:linux);
-- a chunk is text as given, empty or large
SELECT pipeline.append_job_task_log(:mac, :'mac_tok', '') > :seq_mac AS appended_empty;
SELECT pipeline.append_job_task_log(:mac, :'mac_tok', repeat('x', 100000)) > :seq_mac AS appended_large;
SELECT count(*) AS chunks, sum(length(chunk)) AS chars FROM pipeline.job_task_log(:mac);

-- refusals: nothing appended
SELECT regress.state() AS before \gset
SELECT pipeline.append_job_task_log(:linux, 'wrong-token', 'intruder');
SELECT regress.err(:'LAST_ERROR_MESSAGE', :'linux', 'LINUX');
SELECT pipeline.append_job_task_log(:linux, :'mac_tok', 'another task''s token');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.append_job_task_log(:linux, NULL, 'no token');
\echo :LAST_ERROR_SQLSTATE
-- a task never claimed has no token
SELECT pipeline.append_job_task_log(regress.jt(:run, 'ship.upload'), :'linux_tok', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.append_job_task_log(-1, :'linux_tok', 'x');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.append_job_task_log(NULL, :'linux_tok', 'x');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.append_job_task_log(:linux, :'linux_tok', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;
SELECT * FROM pipeline.job_task_log(-1);
\echo :LAST_ERROR_MESSAGE

-- a finished task keeps its log and, like heartbeat(), takes no more output
-- (55000; a runner ships its output before its final report)
SELECT regress.report(:run, 'build.linux', 'succeeded');
SELECT regress.state() AS before \gset
SELECT pipeline.append_job_task_log(:linux, :'linux_tok', E'late\n');
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.heartbeat(:linux, :'linux_tok');
\echo :LAST_ERROR_SQLSTATE
SELECT regress.state() = :'before' AS unchanged;
SELECT chunk FROM pipeline.job_task_log(:linux);
-- a task whose token was revoked (retried, reaped) can no longer write
SELECT regress.report(:run, 'build.mac', 'failed', 'mac broke');
SELECT stage FROM pipeline.retry_job_task(:mac);
SELECT pipeline.append_job_task_log(:mac, :'mac_tok', 'late output');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS chunks FROM pipeline.job_task_log(:mac);

-- ================================================================ graph
-- the run now: linux succeeded, mac scheduling again, ship pending
SELECT pg_temp.graph(:run);
SELECT pg_temp.graph(:run, 'dot');
-- the ids are in it (that is why they are replaced above)
SELECT strpos(pipeline.graph(:run), 't' || :linux) > 0 AS mermaid_names_tasks_by_id,
       strpos(pipeline.graph(:run, 'dot'), '#' || :run) > 0 AS dot_names_run_by_id;
-- a finished run (a task that reported active and finished shows its duration)
SELECT * FROM regress.claim('lg-runner');
SELECT regress.report(:run, 'build.mac', 'active');
SELECT regress.report(:run, 'build.mac', 'succeeded');
SELECT * FROM regress.claim('lg-runner');
SELECT regress.report(:run, 'ship.upload', 'failed', 'upload failed');
SELECT pg_temp.graph(:run);
SELECT pg_temp.graph(:run, 'dot');

-- refusals
SELECT pipeline.graph(:run, 'png');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.graph(:run, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pipeline.graph(-1);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.graph(-1, 'dot');
\echo :LAST_ERROR_SQLSTATE

SELECT regress.cancel_all();

--
-- def_limits: what define_job() / define_pipeline() accept at the edges
-- (issue 9 items 7 and 10, issue 10 item 5).
--
-- Every refusal is 22023 with the JSON path, its message valid UTF-8 and of
-- sane length, and stores nothing; NULL definitions are 22004.
\set VERBOSITY sqlstate

-- A refusal as (sqlstate, message): the message is checked to be valid UTF-8
-- (convert_from raises 22021 otherwise) and at most 600 bytes.
CREATE FUNCTION regress.refusal(sql text)
RETURNS TABLE (sqlstate text, valid_utf8 boolean, bytes int, message text)
LANGUAGE plpgsql AS $$
DECLARE
    m text;
    st text;
BEGIN
    BEGIN
        EXECUTE sql;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
    END;
    IF st IS NULL THEN
        RETURN QUERY SELECT 'accepted'::text, true, 0, ''::text;
        RETURN;
    END IF;
    BEGIN
        PERFORM convert_from(convert_to(m, 'UTF8'), 'UTF8');
        valid_utf8 := true;
    EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
        valid_utf8 := false;
    END;
    RETURN QUERY SELECT st, valid_utf8, octet_length(m),
                        CASE WHEN valid_utf8 AND octet_length(m) <= 600 THEN m END;
END $$;

SELECT regress.state() AS state0 \gset

-- ---------------------------------------------------------------- long values in messages
-- A name of 300 four-byte characters: refused as an invalid name, the quoted
-- value cut at a character boundary (it was cut inside a character: 22021).
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', repeat(U&'\+01F680', 300)))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', repeat(U&'\+01F680', 300), 'stages', '[]'::jsonb))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_j', repeat('é', 2000), 1))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', 'lim_p', 'stages',
    jsonb_build_array(jsonb_build_object('name', 's', 'tasks', jsonb_build_array(
        jsonb_build_object('name', 't', 'job', repeat(U&'\+01F680', 500)))))))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.run_pipeline(repeat(U&'\+01F680', 1000))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.claim_job_tasks(repeat(U&'\+01F680', 50), 0)$$);

-- ---------------------------------------------------------------- numbers
-- timeout and retries: any integral JSON number; a fraction is refused with the path
SELECT * FROM regress.refusal($$SELECT pipeline.define_job('{"name": "lim_n", "timeout": 1.5}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job('{"name": "lim_n", "retries": 0.25}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job('{"name": "lim_n", "retries": 101.0}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job('{"name": "lim_n", "timeout": -1.0}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job('{"name": "lim_n", "timeout": 1e400}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"command": "true", "retries": 1.5}}]}]}')$$);

-- ---------------------------------------------------------------- hook headers
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": ["X-Team core"]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": ["X-A: 1", {"name": "x-a", "value": "2"}]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": [{"name": "X-A"}]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": [{"name": "X-A", "value": "v", "x": 1}]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": [7]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}, "webhooks": [{"url": "https://x", "headers": ["Bad Name: v"]}]}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": {"X-A": "one\r\nX-Injected: two"}}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline('{"name": "lim_p", "webhooks": [{"url": "https://x", "headers": ["X-A: one\nX-Injected: two"]}], "stages": [{"name": "s", "tasks": [{"name": "t", "job": {}}]}]}')$$);

-- ---------------------------------------------------------------- sizes and counts
-- a 300 KB command used to be stored, then fail at run time ("Argument list too long")
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'command', repeat('x', 300 * 1024)))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'command', repeat('x', 65537)))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', 'lim_p', 'stages', jsonb_build_array(jsonb_build_object('name', 's', 'tasks',
    jsonb_build_array(jsonb_build_object('name', 't', 'job', jsonb_build_object('command', repeat('y', 65537))))))))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'description', repeat('d', 16385)))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'params', jsonb_build_array(jsonb_build_object('name', 'P', 'default', repeat('v', 65537)))))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'labels', jsonb_build_object('os', repeat('l', 16385))))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'labels', jsonb_build_object(repeat('k', 129), 'v')))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', 'lim_p', 'webhooks', jsonb_build_array(jsonb_build_object('url', 'https://x', 'headers',
    jsonb_build_array(repeat('H', 129) || ': v'))), 'stages', jsonb_build_array(jsonb_build_object('name', 's', 'tasks', jsonb_build_array(jsonb_build_object('name', 't', 'job', '{}'::jsonb))))))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', 'lim_p', 'stages', jsonb_build_array(jsonb_build_object('name', 's', 'tasks',
    jsonb_build_array(jsonb_build_object('name', 't', 'job', '{}'::jsonb, 'run_params', jsonb_build_object('P', repeat('v', 65537))))))))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', 'lim_p', 'webhooks', jsonb_build_array(jsonb_build_object('url', 'https://x', 'headers',
    jsonb_build_object('X-Big', repeat('h', 8193)))), 'stages', jsonb_build_array(jsonb_build_object('name', 's', 'tasks', jsonb_build_array(jsonb_build_object('name', 't', 'job', '{}'::jsonb))))))$$);
-- the whole document: at most 1 MiB (here 40 tasks with 30 KB commands each)
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(jsonb_build_object('name', 'lim_p', 'stages', jsonb_build_array(jsonb_build_object('name', 's', 'tasks',
    (SELECT jsonb_agg(jsonb_build_object('name', 't' || i, 'job', jsonb_build_object('command', repeat('z', 30000)))) FROM generate_series(1, 40) i)))))$$);
SELECT regress.state() = :'state0' AS nothing_stored;
-- tasks: at most 1,000 in a stage, 2,000 in a pipeline; at most 1,000 stages
SELECT pipeline.define_job('{"name": "lim_noop", "command": "true"}') AS noop_version;
SELECT regress.state() AS state1 \gset
CREATE FUNCTION regress.wide(name text, tasks int[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('name', name, 'stages', (SELECT jsonb_agg(jsonb_build_object('name', 's' || s,
        'tasks', (SELECT jsonb_agg(jsonb_build_object('name', 't' || t, 'job', 'lim_noop')) FROM generate_series(1, tasks[s]) t)) ORDER BY s)
        FROM generate_series(1, cardinality(tasks)) s))
$$;
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(regress.wide('lim_w', ARRAY[1001]))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(regress.wide('lim_w', ARRAY[1000, 1000, 1]))$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(regress.wide('lim_w', array_fill(1, ARRAY[1001])))$$);
-- NULL definitions: 22004
SELECT * FROM regress.refusal($$SELECT pipeline.define_job(NULL)$$);
SELECT * FROM regress.refusal($$SELECT pipeline.define_pipeline(NULL)$$);
-- none of the refusals stored anything
SELECT regress.state() = :'state1' AS nothing_stored;

-- ---------------------------------------------------------------- accepted at the edges
SELECT pipeline.define_job('{"name": "lim_n", "timeout": 1.0, "retries": 2.00}') AS version;
SELECT pipeline.define_job('{"name": "lim_n", "timeout": 1e2, "retries": 100}') AS version;
SELECT version, definition->'timeout' AS timeout, definition->'retries' AS retries
  FROM pipeline.job WHERE name = 'lim_n' ORDER BY version;
-- a command of exactly 64 KiB; 1,000 tasks in a stage; 2,000 in all
SELECT pipeline.define_job(jsonb_build_object('name', 'lim_big', 'command', repeat('x', 65536))) AS version;
SELECT pipeline.define_pipeline(regress.wide('lim_w', ARRAY[1000, 999, 1])) AS version;
SELECT jsonb_array_length(definition->'stages') AS stages FROM pipeline.pipeline WHERE name = 'lim_w';
-- headers as an array of "Name: value" strings and {"name", "value"} objects:
-- stored as the object form hook senders read
SELECT pipeline.define_pipeline('{"name": "lim_hdr", "webhooks": [{"url": "https://x",
    "headers": ["X-Team: core", "Authorization:Bearer abc", {"name": "X-Trace", "value": "a: b"}]}],
    "stages": [{"name": "s", "tasks": [{"name": "t", "job": "lim_noop",
        "webhooks": [{"url": "https://y", "headers": []}]}]}]}') AS version;
SELECT definition->'webhooks'->0->'headers' AS pipeline_headers,
       definition->'stages'->0->'tasks'->0->'webhooks'->0->'headers' AS task_headers
  FROM pipeline.pipeline WHERE name = 'lim_hdr';
-- the object form is unchanged
SELECT pipeline.define_pipeline('{"name": "lim_hdr", "webhooks": [{"url": "https://x", "headers": {"X-Team": "web"}}],
    "stages": [{"name": "s", "tasks": [{"name": "t", "job": "lim_noop"}]}]}') AS version;
SELECT definition->'webhooks'->0->'headers' AS headers FROM pipeline.pipeline WHERE name = 'lim_hdr' AND version = 2;

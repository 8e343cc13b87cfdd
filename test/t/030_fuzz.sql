-- 030_fuzz.sql: the generator of 030_fuzz.pl (read by it).
--
-- psql runs it with fz.n_docs and fz.seed set (SET), psql variables being no use inside a DO body.
-- Mutates valid job and pipeline documents with a seeded random generator and hands each
-- result to define_job / define_pipeline in its own subtransaction (BEGIN ... EXCEPTION):
-- wrong types, missing keys, unknown keys, huge strings, deep nesting, emoji and invalid
-- names, numbers out of range, duplicated array elements (duplicate names), hooks of every
-- shape, gates, params.  Records:
--   fz_ok(kind, name, version)               every accepted definition, as define_* returned it
--   fz_count(sqlstate, n)                    refusals by SQLSTATE, and 'bad-utf8': refusals
--                                            whose message is not valid UTF-8
--   fz_bad(sqlstate, utf8_ok, msg, doc)      up to 50 examples of each kind of bad
--                                            refusal: not 22023, or its message not valid
--                                            UTF-8 (msg as bytes)
--   fz_skipped(n, docs)                      mutations jsonb_set could not apply (no document
--                                            made: not counted) and the documents defined
-- Locking notes: none; one session, one transaction per DO block.
CREATE TABLE fz_ok (kind text, name text, version int);
CREATE TABLE fz_count (sqlstate text PRIMARY KEY, n int NOT NULL);
CREATE TABLE fz_bad (sqlstate text, utf8_ok boolean, msg bytea, doc text);
CREATE TABLE fz_skipped (n int, docs int);

-- every path of a document (not the root), each as the text form of a text[]
CREATE FUNCTION fz_paths(doc jsonb) RETURNS text[] LANGUAGE sql AS $$
    WITH RECURSIVE t(path, val) AS (
        SELECT ARRAY[]::text[], doc
        UNION ALL
        SELECT t.path || c.k, c.v FROM t, LATERAL (
            SELECT key AS k, value AS v
              FROM jsonb_each(CASE WHEN jsonb_typeof(t.val) = 'object' THEN t.val END)
            UNION ALL
            SELECT (o - 1)::text, value
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(t.val) = 'array' THEN t.val END)
                   WITH ORDINALITY AS a(value, o)) c)
    SELECT array_agg(path::text) FROM t WHERE cardinality(path) > 0
$$;

CREATE FUNCTION fz_pick(a anyarray) RETURNS anyelement LANGUAGE sql AS $$
    SELECT a[1 + floor(random() * cardinality(a))::int]
$$;

SELECT pipeline.define_job('{"name": "fz-job", "command": "true"}');

DO $fz$
DECLARE
    n_docs int := current_setting('fz.n_docs')::int;
    job_base jsonb := '{"name": "fz-j", "runner": "shell", "command": "echo hi", "timeout": 10,
        "retries": 1, "labels": {"os": "linux"}, "description": "a job",
        "params": [{"name": "P1", "default": "x", "required": false, "sensitive": true,
                    "description": "p"}, {"name": "P2", "required": true}]}';
    pipe_base jsonb := '{"name": "fz-p", "is_parallel": false, "sequence_label": "env",
        "description": "a pipeline",
        "webhooks": [{"url": "http://127.0.0.1:9/h", "headers": {"X-A": "b"}, "events": ["succeeded", "FAILED"],
                      "secret": "s3cret", "description": "d"}],
        "im_robot_notify": [{"url": "https://oapi.dingtalk.com/robot/send?access_token=t", "robot": "dingtalk"}],
        "mention_users": [{"user": "alice", "notify_types": ["email"], "events": ["failed"]}],
        "stages": [
          {"name": "build", "is_parallel": false, "tasks": [
            {"name": "compile", "job": "fz-job", "run_params": {"P1": "v"}, "ignore_failed": false,
             "skip_run": false, "audit": {"enable": true, "auditors": ["alice"]},
             "confirm": {"enable": false, "checkers": []},
             "webhooks": [{"url": "https://example.com/x", "events": []}]}]},
          {"name": "test", "is_parallel": true, "tasks": [
            {"name": "unit", "job": {"command": "true", "timeout": 5, "retries": 2,
                                     "params": [{"name": "Q", "default": "1"}]}},
            {"name": "lint", "job": {"name": "lint-inline", "command": "true", "labels": {"k": "v"}},
             "confirm": {"enable": true, "checkers": ["bob"]}, "mention_users": []}]}]}';
    job_paths text[] := fz_paths(job_base);
    pipe_paths text[] := fz_paths(pipe_base);
    name_paths text[] := ARRAY['{name}', '{stages,0,name}', '{stages,1,tasks,1,name}',
        '{stages,0,tasks,0,job}', '{stages,1,tasks,0,job,params,0,name}', '{params,0,name}',
        '{sequence_label}', '{stages,1,tasks,1,job,name}', '{labels}', '{runner}'];
    names jsonb[];
    weird jsonb[];
    deep_a text := repeat('[', 300) || repeat(']', 300);
    deep_o text := repeat('{"a": ', 200) || '1' || repeat('}', 200);
    doc jsonb;
    kind text;
    p text[];
    r float8;
    ver int;
    st text;
    msg text;
    utf8_ok boolean;
    counts jsonb := '{}';
    bad_kinds jsonb := '{}';
    defining boolean;
    skipped int := 0;
    ndocs int := 0;
BEGIN
    PERFORM setseed(current_setting('fz.seed')::float8);
    names := ARRAY['""', '" "', '"a b"', '"a.b"', '"é"', '"🚀"', to_jsonb(repeat('🚀', 300)),
        to_jsonb(repeat('é', 600)), to_jsonb(repeat('a', 129)), to_jsonb(repeat('a', 128)),
        '"tab\tx"', '"new\nline"', '"quo\"te"', '"back\\slash"', '"-lead"', '".dot"',
        '"ok_name-1.2"', '"DROP TABLE x"', '"1abc"', '"JOB_TASK_ID"', '"PIPELINE_OUTPUT"',
        '"fz-job"', '"no-such-job"', '"名前"', '"\u00e9\u0301"', '"%s%n%d"', '"\u200b"',
        to_jsonb(repeat('🚀', 40)), to_jsonb(repeat('x🚀', 200)), '5', 'null', '[]', '{}', 'true']::jsonb[];
    weird := ARRAY['null', 'true', 'false', '0', '-1', '1.5', '1.0', '1e20', '-0', '2147483648',
        '604800', '604801', '100', '101', '""', '"x"', to_jsonb(repeat('x', 20000)),
        to_jsonb(repeat('🚀', 1000)), '[]', '{}', '[1, 2]', '{"a": 1}', deep_a::jsonb, deep_o::jsonb,
        '[{"url": "ftp://x"}]', '[{"url": "http://127.0.0.1/h", "events": ["nope"]}]', '[{"url": 5}]',
        '[{"url": "http://h", "headers": ["X: y"]}]', '[{"url": "http://h", "headers": {"X": 1}}]',
        '[{"url": "http://h", "robot": "icq"}]', '[{"url": "http://h", "robot": "feishu", "secret": 1}]',
        '[{"user": "bob", "notify_types": ["email"], "events": ["failed"]}]', '[{"user": ""}]',
        '[{}]', '[null]', '["http://h"]', '{"url": "http://h"}',
        '{"enable": true, "auditors": []}', '{"enable": true}', '{"enable": "yes", "auditors": ["a"]}',
        '{"enable": true, "checkers": ["bob"]}', '{"enable": false, "auditors": [1]}',
        '[{"name": "JOB_TASK_ID"}]', '[{"name": "1x"}]', '[{"name": "P", "default": 5}]',
        '[{"name": "P"}, {"name": "P"}]', '[{"name": "P", "required": "no"}]', '[{"name": "🚀"}]',
        '{"k": 1}', '{"": "v"}', '{"🚀": "v"}', '{"P": {"x": 1}}', '{"P": null}',
        '[{"name": "s", "tasks": []}]', '[{"name": "s", "tasks": [{"name": "t"}]}]',
        '[{"name": "s", "tasks": [{"name": "t", "job": "fz-job"}, {"name": "t", "job": "fz-job"}]}]',
        '{"command": "true", "timeout": 1.0}', '{"name": "🚀"}', '{"runner": ""}',
        '"http://h"', '"https://"', '"SUCCEEDED"', '["succeeded", "bogus"]', '[[[]]]',
        to_jsonb(repeat('a', 1025)), '"\u0001\u001f"']::jsonb[];

    FOR i IN 1 .. 2 * n_docs LOOP
        EXIT WHEN ndocs >= n_docs;
        IF random() < 0.4 THEN
            kind := 'job';
            doc := jsonb_set(job_base, '{name}', to_jsonb('fz-j' || (i % 37)));
        ELSE
            kind := 'pipeline';
            doc := jsonb_set(pipe_base, '{name}', to_jsonb('fz-p' || (i % 41)));
        END IF;
        defining := false;
        BEGIN
            -- 0 to 3 mutations (about one document in ten stays valid)
            FOR m IN 1 .. floor(random() * 3.3)::int + (CASE WHEN random() < 0.9 THEN 1 ELSE 0 END) LOOP
                r := random();
                IF r < 0.2 THEN
                    p := fz_pick(name_paths)::text[];
                    doc := jsonb_set(doc, p, fz_pick(names));
                ELSE
                    p := fz_pick(CASE WHEN kind = 'job' THEN job_paths ELSE pipe_paths END)::text[];
                    IF r < 0.55 THEN
                        doc := jsonb_set(doc, p, fz_pick(weird));               -- wrong type or value
                    ELSIF r < 0.7 THEN
                        doc := doc #- p;                                        -- missing key
                    ELSIF r < 0.85 THEN                                         -- unknown key
                        IF jsonb_typeof(doc #> p) = 'object' THEN
                            doc := jsonb_set(doc, p || 'bogus_key'::text, '1');
                        ELSE
                            doc := doc || '{"timout": 5}';
                        END IF;
                    ELSIF doc #> p IS NOT NULL
                          AND jsonb_typeof(doc #> p[1:cardinality(p) - 1]) = 'array' THEN
                        doc := jsonb_insert(doc, p, doc #> p);                  -- duplicate element
                    ELSE
                        doc := jsonb_set(doc, p, fz_pick(names));
                    END IF;
                END IF;
            END LOOP;
            defining := true;
            ndocs := ndocs + 1;
            IF kind = 'job' THEN
                ver := pipeline.define_job(doc);
            ELSE
                ver := pipeline.define_pipeline(doc);
            END IF;
            INSERT INTO fz_ok VALUES (kind, doc->>'name', ver);
        EXCEPTION WHEN OTHERS THEN
            IF NOT defining THEN
                skipped := skipped + 1;     -- a mutation jsonb_set cannot apply: not a document
                CONTINUE;
            END IF;
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            BEGIN
                PERFORM convert_from(convert_to(msg, 'UTF8'), 'UTF8');
                utf8_ok := true;
            EXCEPTION WHEN OTHERS THEN
                utf8_ok := false;
            END;
            counts := jsonb_set(counts, ARRAY[st], to_jsonb(COALESCE((counts->>st)::int, 0) + 1));
            IF NOT utf8_ok THEN
                counts := jsonb_set(counts, '{bad-utf8}', to_jsonb(COALESCE((counts->>'bad-utf8')::int, 0) + 1));
            END IF;
            -- keep up to 50 examples of each kind of failure (sqlstate, valid message or not)
            IF (st <> '22023' OR NOT utf8_ok)
               AND COALESCE((bad_kinds->>(st || utf8_ok))::int, 0) < 50 THEN
                bad_kinds := jsonb_set(bad_kinds, ARRAY[st || utf8_ok],
                                       to_jsonb(COALESCE((bad_kinds->>(st || utf8_ok))::int, 0) + 1));
                INSERT INTO fz_bad VALUES (st, utf8_ok, textsend(msg), left(doc::text, 2000));
            END IF;
        END;
    END LOOP;
    INSERT INTO fz_skipped VALUES (skipped, ndocs);
    INSERT INTO fz_count SELECT key, value::int FROM jsonb_each_text(counts);
END
$fz$;

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
    ADD COLUMN failing          boolean     NOT NULL DEFAULT false;

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

-- graph(): a dag run's edges are its needs (one per need) instead of stage order.
CREATE OR REPLACE FUNCTION graph(pipeline_task_id bigint, format text DEFAULT 'mermaid') RETURNS text
    LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    run record;
    st record;
    t record;
    out text;
    prev_first text;
    prev_cluster int;
    colour jsonb := '{"pending": "#d0d7de", "scheduling": "#bf8700", "creating": "#bf8700",
                      "active": "#0969da", "canceling": "#8250df", "canceled": "#6e7781",
                      "failed": "#cf222e", "succeeded": "#1a7f37", "skipped": "#eaeef2"}';
BEGIN
    IF graph.pipeline_task_id IS NULL THEN
        RAISE EXCEPTION 'graph: pipeline_task_id must not be null' USING ERRCODE = '22004';
    END IF;
    IF format IS NULL THEN
        RAISE EXCEPTION 'graph: format must not be null' USING ERRCODE = '22004';
    END IF;
    IF format NOT IN ('mermaid', 'dot') THEN
        RAISE EXCEPTION 'graph: format must be mermaid or dot, not %', format
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO run FROM pipeline.pipeline_task p WHERE p.id = graph.pipeline_task_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pipeline task % does not exist', graph.pipeline_task_id USING ERRCODE = 'P0002';
    END IF;
    IF format = 'mermaid' THEN
        out := format(E'flowchart LR
  %%%% %s #%s: %s
', run.pipeline_name, run.id, run.stage);
        FOR st IN SELECT stage_index, stage_name, bool_or(is_parallel) AS par
                    FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                   GROUP BY stage_index, stage_name ORDER BY stage_index LOOP
            out := out || format(E'  subgraph s%s["%s%s"]
', st.stage_index, st.stage_name,
                                 CASE WHEN st.par THEN ' (parallel)' ELSE '' END);
            FOR t IN SELECT * FROM pipeline.job_task j
                      WHERE j.pipeline_task_id = run.id AND j.stage_index = st.stage_index
                      ORDER BY task_index LOOP
                out := out || format(E'    t%s["%s<br/>%s%s"]:::%s
', t.id,
                                     replace(t.task_name, '"', ''), t.stage,
                                     CASE WHEN t.end_at IS NOT NULL AND t.start_at IS NOT NULL
                                          THEN ' ' || round(extract(epoch FROM t.end_at - t.start_at)::numeric, 1) || 's'
                                          ELSE '' END,
                                     t.stage);
                IF NOT st.par AND t.task_index > 0 AND NOT run.dag THEN
                    out := out || format(E'    t%s --> t%s
',
                        (SELECT j.id FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                            AND j.stage_index = st.stage_index AND j.task_index = t.task_index - 1), t.id);
                END IF;
            END LOOP;
            out := out || E'  end
';
            IF st.stage_index > 0 AND NOT run.dag THEN
                out := out || format(E'  s%s --> s%s
', st.stage_index - 1, st.stage_index);
            END IF;
        END LOOP;
        -- a dag run (SPEC §13): one edge per need, after the subgraphs that hold the nodes
        FOR t IN SELECT n.need, j.id FROM pipeline.job_task j, unnest(j.needs) AS n(need)
                  WHERE j.pipeline_task_id = run.id AND run.dag ORDER BY j.id, n.need LOOP
            out := out || format(E'  t%s --> t%s
', t.need, t.id);
        END LOOP;
        FOR t IN SELECT key, value FROM jsonb_each_text(colour) LOOP
            out := out || format(E'  classDef %s fill:%s,color:%s
', t.key, t.value,
                                 CASE WHEN t.key IN ('pending', 'skipped') THEN '#24292f' ELSE '#ffffff' END);
        END LOOP;
        RETURN out;
    END IF;
    -- dot
    out := format(E'digraph pipeline_task_%s {
  label="%s #%s: %s"; labelloc=t; rankdir=LR; compound=true; fontname="Helvetica";
'
                  '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontcolor="white"];
',
                  run.id, run.pipeline_name, run.id, run.stage);
    FOR st IN SELECT stage_index, stage_name, bool_or(is_parallel) AS par, min(id) AS first_id
                FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
               GROUP BY stage_index, stage_name ORDER BY stage_index LOOP
        out := out || format(E'  subgraph cluster_%s {
    label="%s%s"; style=rounded; color="#8c959f"; fontname="Helvetica";
',
                             st.stage_index, st.stage_name, CASE WHEN st.par THEN ' (parallel)' ELSE '' END);
        FOR t IN SELECT * FROM pipeline.job_task j
                  WHERE j.pipeline_task_id = run.id AND j.stage_index = st.stage_index
                  ORDER BY task_index LOOP
            out := out || format(E'    t%s [label="%s\\n%s%s", fillcolor="%s"%s];
', t.id,
                                 replace(t.task_name, '"', ''), t.stage,
                                 CASE WHEN t.end_at IS NOT NULL AND t.start_at IS NOT NULL
                                      THEN ' ' || round(extract(epoch FROM t.end_at - t.start_at)::numeric, 1) || 's'
                                      ELSE '' END,
                                 colour->>t.stage::text,
                                 CASE WHEN t.stage IN ('pending', 'skipped') THEN ', fontcolor="#24292f"' ELSE '' END);
            IF NOT st.par AND t.task_index > 0 AND NOT run.dag THEN
                out := out || format(E'    t%s -> t%s;
',
                    (SELECT j.id FROM pipeline.job_task j WHERE j.pipeline_task_id = run.id
                        AND j.stage_index = st.stage_index AND j.task_index = t.task_index - 1), t.id);
            END IF;
        END LOOP;
        out := out || E'  }
';
        IF prev_first IS NOT NULL AND NOT run.dag THEN
            out := out || format(E'  %s -> t%s [ltail=cluster_%s, lhead=cluster_%s];
',
                                 prev_first, st.first_id, prev_cluster, st.stage_index);
        END IF;
        prev_first := 't' || st.first_id;
        prev_cluster := st.stage_index;
    END LOOP;
    FOR t IN SELECT n.need, j.id FROM pipeline.job_task j, unnest(j.needs) AS n(need)
              WHERE j.pipeline_task_id = run.id AND run.dag ORDER BY j.id, n.need LOOP
        out := out || format(E'  t%s -> t%s;
', t.need, t.id);
    END LOOP;
    RETURN out || E'}
';
END
$fn$;
ALTER FUNCTION graph(bigint, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------------------
-- Issue 12 item 2: slim event rows.  The table "event" becomes
-- "event_store" (its rows, constraints, index and sequence stay as they are);
-- new job task events store only their "as of the event" fields and the view
-- "event" adds the rest from the task's and the run's rows.  Events written
-- before the upgrade keep their full payload, which the view returns as it
-- was (the stored keys win over the derived ones).  events_since returns the
-- view's row type, so it is dropped and created again; purge() deletes from
-- the table.  The grants readers had keep working: what roles were granted
-- on the old events_since is granted on the new one, and on the old table
-- (which keeps its ACL) on the view; they stay the user's grants, not the
-- extension's initial privileges, so pg_dump goes on dumping them.
DO $do$
DECLARE
    fn_acl aclitem[];
    ev_acl aclitem[];
    base_fn aclitem[];
    base_ev aclitem[];
    g record;
BEGIN
    SELECT p.proacl INTO fn_acl FROM pg_catalog.pg_proc p
     WHERE p.oid = 'pipeline.events_since(bigint, int)'::regprocedure;
    SELECT c.relacl INTO ev_acl FROM pg_catalog.pg_class c WHERE c.oid = 'pipeline.event'::regclass;
    ALTER TABLE pipeline.event RENAME TO event_store;
    DROP FUNCTION pipeline.events_since(bigint, int);
    CREATE VIEW event AS
    SELECT e.id, e.at, e.kind, e.object_id, e.pipeline_task_id, e.old_stage, e.new_stage,
           CASE WHEN e.kind = 'job_task' THEN
               jsonb_build_object(
                   'id', e.object_id, 'pipeline_task_id', e.pipeline_task_id,
                   'pipeline_name', p.pipeline_name,
                   'stage_index', t.stage_index, 'stage_name', t.stage_name,
                   'task_index', t.task_index, 'task_name', t.task_name,
                   'job_name', t.job_name, 'stage', e.new_stage, 'old_stage', e.old_stage,
                   'message', NULL::text, 'attempt', 1, 'runner', NULL::text,
                   'dry_run', t.dry_run, 'gate', NULL::text, 'gate_result', '{}'::jsonb,
                   'start_at', NULL::timestamptz, 'end_at', NULL::timestamptz) || e.payload
           ELSE e.payload
           END AS payload
      FROM event_store e
      LEFT JOIN job_task t ON e.kind = 'job_task' AND t.id = e.object_id
      LEFT JOIN pipeline_task p ON e.kind = 'job_task' AND p.id = e.pipeline_task_id;
    REVOKE ALL ON pipeline.event FROM PUBLIC;
    CREATE FUNCTION pipeline.events_since(after_id bigint, max int DEFAULT 1000) RETURNS SETOF pipeline.event
        AS 'MODULE_PATHNAME', 'pl_events_since' LANGUAGE C VOLATILE
        SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
    REVOKE ALL ON FUNCTION pipeline.events_since(bigint, int) FROM PUBLIC;
    -- the readers' grants, given again by the owner; GRANT in an extension script also
    -- records them as the object's initial privileges, which they are not: those are
    -- put back to what a fresh install has (the ACL right after the REVOKEs)
    SELECT p.proacl INTO base_fn FROM pg_catalog.pg_proc p
     WHERE p.oid = 'pipeline.events_since(bigint, int)'::regprocedure;
    SELECT c.relacl INTO base_ev FROM pg_catalog.pg_class c WHERE c.oid = 'pipeline.event'::regclass;
    FOR g IN SELECT a.privilege_type, a.is_grantable,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END AS who
               FROM pg_catalog.aclexplode(fn_acl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
              WHERE a.grantee <> a.grantor AND (a.grantee = 0 OR r.oid IS NOT NULL)
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON FUNCTION pipeline.events_since(bigint, int) TO %s%s',
                                  g.privilege_type, g.who,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    FOR g IN SELECT a.privilege_type, a.is_grantable,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END AS who
               FROM pg_catalog.aclexplode(ev_acl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
              WHERE a.grantee <> a.grantor AND (a.grantee = 0 OR r.oid IS NOT NULL)
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON pipeline.event TO %s%s', g.privilege_type, g.who,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    UPDATE pg_catalog.pg_init_privs SET initprivs = base_fn
     WHERE classoid = 'pg_catalog.pg_proc'::regclass
       AND objoid = 'pipeline.events_since(bigint, int)'::regprocedure AND objsubid = 0;
    UPDATE pg_catalog.pg_init_privs SET initprivs = base_ev
     WHERE classoid = 'pg_catalog.pg_class'::regclass AND objoid = 'pipeline.event'::regclass
       AND objsubid = 0;
END
$do$;
CREATE OR REPLACE FUNCTION purge(older_than interval) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    n bigint;
    doomed bigint[];
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'purge: older_than must not be null' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'purge: older_than must be a non-negative interval' USING ERRCODE = '22023';
    END IF;
    doomed := ARRAY(SELECT p.id FROM pipeline.pipeline_task p
                     WHERE p.stage >= 'canceled' AND p.end_at < now() - older_than
                     ORDER BY p.id FOR UPDATE SKIP LOCKED);
    n := cardinality(doomed);
    DELETE FROM pipeline.hook_delivery d WHERE d.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.event_store e WHERE e.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_task_log l USING pipeline.job_task t
     WHERE l.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.pipeline_task p WHERE p.id = ANY (doomed);
    RETURN n;
END
$fn$;

-- Issue 12 item 2: room for HOT updates of job_task (new pages only;
-- existing pages get the room as VACUUM frees them).
ALTER TABLE job_task SET (fillfactor = 80);

-- Issue 12 item 3: the batched runner protocol (SPEC §16).
-- claim_job_tasks gains "start boolean DEFAULT false" (a new signature: drop and create;
-- the EXECUTE grants the old function had are given to the new one), and
-- update_job_task_statuses(reports jsonb) is new (granted to whoever may execute
-- update_job_task_status).  Both run as the extension owner with the pinned search_path,
-- nothing to PUBLIC, like every API function.
SELECT pg_catalog.set_config('pl_upgrade_0_3.claim_grants', pg_catalog.jsonb_build_object(
    'claim', (SELECT COALESCE(pg_catalog.jsonb_agg(a.grantee::regrole::text), '[]') FROM pg_catalog.pg_proc p,
                     LATERAL pg_catalog.aclexplode(p.proacl) a
               WHERE p.oid = 'pipeline.claim_job_tasks(text, int, jsonb)'::regprocedure
                 AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner),
    'status', (SELECT COALESCE(pg_catalog.jsonb_agg(a.grantee::regrole::text), '[]') FROM pg_catalog.pg_proc p,
                      LATERAL pg_catalog.aclexplode(p.proacl) a
                WHERE p.oid = 'pipeline.update_job_task_status(bigint, pipeline.task_stage, text, text, jsonb, jsonb, jsonb, boolean, boolean)'::regprocedure
                  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner))::text,
    true);
DROP FUNCTION claim_job_tasks(text, int, jsonb);
CREATE FUNCTION claim_job_tasks(runner text, max int DEFAULT 1, labels jsonb DEFAULT '{}',
                                start boolean DEFAULT false)
    RETURNS TABLE (id bigint, update_token text, pipeline_task_id bigint, job jsonb,
                   params jsonb, dry_run boolean)
    AS 'MODULE_PATHNAME', 'pl_claim_job_tasks' LANGUAGE C VOLATILE;
CREATE FUNCTION update_job_task_statuses(reports jsonb)
    RETURNS TABLE (id bigint, stage task_stage, sqlstate text, message text)
    AS 'MODULE_PATHNAME', 'pl_update_job_task_statuses' LANGUAGE C VOLATILE;
ALTER FUNCTION claim_job_tasks(text, int, jsonb, boolean)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION update_job_task_statuses(jsonb)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION claim_job_tasks(text, int, jsonb, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION update_job_task_statuses(jsonb) FROM PUBLIC;
DO $do$
DECLARE
    g jsonb := pg_catalog.current_setting('pl_upgrade_0_3.claim_grants')::jsonb;
    r text;
BEGIN
    FOR r IN SELECT pg_catalog.jsonb_array_elements_text(g->'claim') LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION pipeline.claim_job_tasks(text, int, jsonb, boolean) TO %s', r);
    END LOOP;
    FOR r IN SELECT pg_catalog.jsonb_array_elements_text(g->'status') LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION pipeline.update_job_task_statuses(jsonb) TO %s', r);
    END LOOP;
END
$do$;

-- ---------------------------------------------------------------------------
-- Issue 13 items 1-2 (SPEC §14): concurrency keys and priorities.  Job tasks carry their
-- run's priority and their concurrency key and limit; the runners' queue becomes the table
-- job_queue (its partial index job_task_queue_idx on job_task goes: its predicate named
-- stage, which made every status update non-HOT); concurrency_slot holds the slots in use;
-- run_pipeline gets a last parameter priority; stats gets three columns at its end.

ALTER TABLE job_task ADD COLUMN priority int NOT NULL DEFAULT 0;
ALTER TABLE job_task ADD COLUMN concurrency_key text;
ALTER TABLE job_task ADD COLUMN concurrency_limit int;

CREATE TABLE job_queue (
    job_task_id       bigint      PRIMARY KEY,         -- no foreign key: see below
    priority          int         NOT NULL,
    labels            jsonb       NOT NULL,            -- labels a runner must have
    concurrency_key   text,
    concurrency_limit int
);
CREATE INDEX job_queue_pick_idx ON job_queue (priority DESC, job_task_id);
-- tasks waiting for a runner at upgrade time stay claimable
INSERT INTO job_queue (job_task_id, priority, labels)
SELECT id, priority, labels FROM job_task WHERE stage = 'scheduling';

CREATE TABLE concurrency_slot (
    job_task_id       bigint      PRIMARY KEY,         -- no foreign key: see below
    key               text        NOT NULL
);
CREATE INDEX concurrency_slot_key_idx ON concurrency_slot (key);
-- Neither table has a foreign key to job_task: its check would lock the job_task row just
-- written (FOR KEY SHARE: one more WAL record and lock per task, measured at about a third
-- of the keyed lifecycle's throughput).  Readers join job_task (a row of a deleted task
-- counts for nothing), and purge() deletes the rows of the tasks it deletes.

DROP INDEX job_task_queue_idx;

-- purge() also deletes the queue and slot rows of the tasks it deletes
CREATE OR REPLACE FUNCTION purge(older_than interval) RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
    doomed bigint[];
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'purge: older_than must not be null' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'purge: older_than must be a non-negative interval' USING ERRCODE = '22023';
    END IF;
    doomed := ARRAY(SELECT p.id FROM pipeline.pipeline_task p
                     WHERE p.stage >= 'canceled' AND p.end_at < now() - older_than
                     ORDER BY p.id FOR UPDATE SKIP LOCKED);
    n := cardinality(doomed);
    DELETE FROM pipeline.hook_delivery d WHERE d.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.event_store e WHERE e.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_task_log l USING pipeline.job_task t
     WHERE l.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    -- (a canceled run's task may still be canceling and hold its concurrency slot)
    DELETE FROM pipeline.concurrency_slot s USING pipeline.job_task t
     WHERE s.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_queue q USING pipeline.job_task t
     WHERE q.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.pipeline_task p WHERE p.id = ANY (doomed);
    RETURN n;
END
$fn$;
ALTER FUNCTION purge(interval) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

SELECT pg_catalog.pg_extension_config_dump('job_queue', '');
SELECT pg_catalog.pg_extension_config_dump('concurrency_slot', '');
REVOKE ALL ON job_queue, concurrency_slot FROM PUBLIC;

-- run_pipeline(..., priority int DEFAULT 0): a new signature.  The roles that could execute
-- the old one may execute the new one (their grants would go with the old function).
CREATE TEMP TABLE pl_upgrade_run_grants AS
SELECT a.grantee::regrole::text AS grantee
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.oid = 'pipeline.run_pipeline(text, jsonb, boolean, text, jsonb, text)'::regprocedure
   AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;
DROP FUNCTION run_pipeline(text, jsonb, boolean, text, jsonb, text);
CREATE FUNCTION run_pipeline(pipeline text, params jsonb DEFAULT '{}',
                             dry_run boolean DEFAULT false,
                             run_by text DEFAULT current_user,
                             labels jsonb DEFAULT '{}',
                             on_busy text DEFAULT 'error',
                             priority int DEFAULT 0)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pl_run_pipeline' LANGUAGE C VOLATILE;
ALTER FUNCTION run_pipeline(text, jsonb, boolean, text, jsonb, text, int)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION run_pipeline(text, jsonb, boolean, text, jsonb, text, int) FROM PUBLIC;
DO $do$
DECLARE
    g text;
BEGIN
    FOR g IN SELECT grantee FROM pl_upgrade_run_grants LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION pipeline.run_pipeline(text, jsonb, boolean, text, jsonb, text, int) TO %I', g);
    END LOOP;
END
$do$;
DROP TABLE pl_upgrade_run_grants;

-- job_tasks shows each task's priority and concurrency key (last columns)
CREATE OR REPLACE VIEW job_tasks AS
SELECT t.id, t.pipeline_task_id, t.stage_index, t.stage_name, t.task_index, t.task_name,
       t.job_name, t.job_version, t.stage, t.message, t.detail, t.extension,
       mask_params(t.runtime_envs, t.sensitive) AS runtime_envs,
       t.runner, t.attempt, t.dry_run, t.created_at, t.start_at, t.end_at,
       mask_params(t.params, t.sensitive) AS params,
       t.labels, t.is_parallel, t.ignore_failed, t.audit, t.confirm, t.gate, t.gate_result,
       t.heartbeat_at, t.updated_at,
       t.end_at - t.start_at AS duration,
       t.needs, t.needs_left, COALESCE(t.run_when, 'on_success') AS run_when, t.blocking,
       t.priority, t.concurrency_key
  FROM job_task t;

CREATE OR REPLACE VIEW stats AS
SELECT
    (SELECT COALESCE(jsonb_object_agg(stage, n), '{}') FROM
        (SELECT stage, count(*) AS n FROM pipeline_task GROUP BY stage) r) AS runs_by_stage,
    (SELECT COALESCE(jsonb_object_agg(stage, n), '{}') FROM
        (SELECT stage, count(*) AS n FROM job_task GROUP BY stage) t) AS tasks_by_stage,
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM rejected_token_seq) AS rejected_tokens,
    (SELECT COALESCE(jsonb_object_agg(status, n), '{}') FROM
        (SELECT status, count(*) AS n FROM hook_delivery GROUP BY status) d) AS deliveries_by_status,
    (SELECT now() - min(t.updated_at) FROM job_queue q JOIN job_task t ON t.id = q.job_task_id
      WHERE t.stage = 'scheduling') AS oldest_waiting_task_age,
    (SELECT count(*) FROM job_task WHERE gate IS NOT NULL) AS tasks_at_gates,
    -- event ids handed out so far (a counter for /metrics; purge() does not lower it)
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_id_seq) AS events_written,
    -- SPEC §14: tasks waiting for a runner per priority and per concurrency key, and the
    -- concurrency slots in use per key
    (SELECT COALESCE(jsonb_object_agg(priority, n), '{}') FROM
        (SELECT q.priority, count(*) AS n FROM job_queue q JOIN job_task t ON t.id = q.job_task_id
          WHERE t.stage = 'scheduling' GROUP BY q.priority) w) AS waiting_by_priority,
    (SELECT COALESCE(jsonb_object_agg(concurrency_key, n), '{}') FROM
        (SELECT q.concurrency_key, count(*) AS n FROM job_queue q JOIN job_task t ON t.id = q.job_task_id
          WHERE t.stage = 'scheduling' AND q.concurrency_key IS NOT NULL
          GROUP BY q.concurrency_key) w) AS waiting_by_concurrency_key,
    (SELECT COALESCE(jsonb_object_agg(key, n), '{}') FROM
        (SELECT s.key, count(*) AS n FROM concurrency_slot s JOIN job_task t ON t.id = s.job_task_id
          GROUP BY s.key) s) AS running_by_concurrency_key;

-- ---------------------------------------------------------------------------
-- Issue 13 item 3 (chain): chained pipelines (SPEC §15).  A pipeline definition may
-- carry next_pipelines (checked in C, stored in the definition: no schema change for
-- it); a run that ends records the runs it chained, or why one did not start, in
-- pipeline_task.chained ('[]' for runs that chained nothing, as every run before 0.3),
-- also shown by the pipeline_tasks view.
ALTER TABLE pipeline.pipeline_task ADD COLUMN chained jsonb NOT NULL DEFAULT '[]';
CREATE OR REPLACE VIEW pipeline_tasks AS
SELECT p.id, p.pipeline_name, p.pipeline_version, p.stage, p.message,
       mask_params(p.params, p.sensitive) AS params,
       mask_params(p.runtime_envs, p.sensitive) AS runtime_envs,
       p.dry_run, p.run_by, p.labels, p.created_at, p.start_at, p.end_at,
       p.end_at - p.start_at AS duration,
       (SELECT count(*) FROM job_task t WHERE t.pipeline_task_id = p.id) AS tasks_total,
       (SELECT count(*) FROM job_task t WHERE t.pipeline_task_id = p.id
                                          AND t.stage >= 'canceled' AND t.gate IS NULL) AS tasks_done,
       p.chained
  FROM pipeline_task p;


-- ---------------------------------------------------------------------------
-- Issue 13 (chain, a leftover of item 4): purge(older_than) also deletes the trigger
-- events received before the horizon whose runs are all gone.  CREATE OR REPLACE resets
-- SECURITY DEFINER and the pinned search_path: set again after it.
CREATE OR REPLACE FUNCTION purge(older_than interval) RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
    doomed bigint[];
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'purge: older_than must not be null' USING ERRCODE = '22004';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'purge: older_than must be a non-negative interval' USING ERRCODE = '22023';
    END IF;
    doomed := ARRAY(SELECT p.id FROM pipeline.pipeline_task p
                     WHERE p.stage >= 'canceled' AND p.end_at < now() - older_than
                     ORDER BY p.id FOR UPDATE SKIP LOCKED);
    n := cardinality(doomed);
    DELETE FROM pipeline.hook_delivery d WHERE d.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.event_store e WHERE e.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_task_log l USING pipeline.job_task t
     WHERE l.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    -- (a canceled run's task may still be canceling and hold its concurrency slot)
    DELETE FROM pipeline.concurrency_slot s USING pipeline.job_task t
     WHERE s.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.job_queue q USING pipeline.job_task t
     WHERE q.job_task_id = t.id AND t.pipeline_task_id = ANY (doomed);
    DELETE FROM pipeline.pipeline_task p WHERE p.id = ANY (doomed);
    -- trigger events as old, once none of their runs is left (issue 13)
    DELETE FROM pipeline.trigger_event e
     WHERE e.received_at < now() - older_than
       AND NOT EXISTS (SELECT 1 FROM pipeline.pipeline_task p WHERE p.id = ANY (e.runs));
    RETURN n;
END
$fn$;
ALTER FUNCTION purge(interval) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

--
-- event_payload: issue 12 (slim event rows).  Every job task event the tests
-- before this one wrote (runs, claims, reports with messages, gates, retries,
-- cancels, reaps, hooks, secrets...) reads through the view pipeline.event
-- exactly as the full snapshot 0.2 stored (captured by event_capture's
-- trigger as of the event); the stored row holds only the fields that change
-- during a task's life.  It runs before the tests that purge every finished
-- run (concurrency: purge('0')), which would take the captured events away.
--
-- the capture saw many events, of every kind of change
SELECT count(*) > 200 AS many_events,
       count(DISTINCT e.new_stage) >= 7 AS stages,
       count(*) FILTER (WHERE e.payload ? 'gate_result') > 0 AS with_gate_result,
       count(*) FILTER (WHERE e.payload ? 'attempt') > 0 AS with_attempt,
       count(*) FILTER (WHERE e.payload ? 'message') > 0 AS with_message
  FROM regress.legacy_payload l JOIN pipeline.event_store e ON e.id = l.event_id;
-- the view returns the full snapshot, as of the event, for every one of them
-- (those purge() left: retention, privileges and triggers purge old runs)
SELECT count(*) = (SELECT count(*) FROM regress.legacy_payload l
                    JOIN pipeline.event_store s ON s.id = l.event_id) AS all_compared,
       count(*) FILTER (WHERE v.payload IS DISTINCT FROM l.payload) AS different
  FROM regress.legacy_payload l JOIN pipeline.event v ON v.id = l.event_id;
SELECT v.id, v.payload, l.payload AS legacy
  FROM regress.legacy_payload l JOIN pipeline.event v ON v.id = l.event_id
 WHERE v.payload IS DISTINCT FROM l.payload ORDER BY v.id LIMIT 3;
-- events_since returns the same rows as the view
SELECT (SELECT array_agg(e ORDER BY id) FROM pipeline.events_since(0, 100000) e)
     = (SELECT array_agg(e ORDER BY id) FROM pipeline.event e) AS events_since_same;
-- the stored payload is small: only the changing fields, none of the derived ones
-- (0.2 stored about 400 bytes per job task event)
SELECT avg(pg_column_size(e.payload)) < 100 AS slim,
       count(*) FILTER (WHERE e.payload ?| ARRAY['id', 'pipeline_task_id', 'pipeline_name', 'stage_index',
                                                 'stage_name', 'task_index', 'task_name', 'job_name',
                                                 'stage', 'old_stage', 'dry_run']) AS with_derived_keys
  FROM pipeline.event_store e WHERE e.kind = 'job_task';

DROP TRIGGER regress_capture_legacy_payload ON pipeline.event_store;
DROP FUNCTION regress.capture_legacy_payload();
DROP TABLE regress.legacy_payload;

--
-- event_capture: issue 12 (slim event rows).  From here to the last test
-- (event_payload), every job task event written by any test also gets the
-- full snapshot as 0.2 wrote it into its payload -- computed by an AFTER
-- trigger on pipeline.event_store from the task's row right after the
-- changing statement, i.e. "as of the event" -- so that event_payload can
-- compare it with what the view pipeline.event returns for the slim row.
--
CREATE TABLE regress.legacy_payload (event_id bigint PRIMARY KEY, payload jsonb NOT NULL);

CREATE FUNCTION regress.capture_legacy_payload() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'job_task' THEN
        INSERT INTO regress.legacy_payload
        SELECT NEW.id, jsonb_build_object(
            'id', t.id, 'pipeline_task_id', t.pipeline_task_id,
            'pipeline_name', (SELECT pp.pipeline_name FROM pipeline.pipeline_task pp
                               WHERE pp.id = t.pipeline_task_id),
            'stage_index', t.stage_index, 'stage_name', t.stage_name,
            'task_index', t.task_index, 'task_name', t.task_name,
            'job_name', t.job_name, 'stage', t.stage, 'old_stage', NEW.old_stage,
            'message', t.message, 'attempt', t.attempt, 'runner', t.runner,
            'dry_run', t.dry_run, 'gate', t.gate, 'gate_result', t.gate_result,
            'start_at', t.start_at, 'end_at', t.end_at)
          FROM pipeline.job_task t WHERE t.id = NEW.object_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER regress_capture_legacy_payload AFTER INSERT ON pipeline.event_store
    FOR EACH ROW EXECUTE FUNCTION regress.capture_legacy_payload();

-- How deep a run is in a chain of automations triggering automations: 1 for a run
-- started by anything but a run's own writes, else the depth of the run that wrote the
-- triggering event + 1 (the worker's max_depth bounds it: loop_detected).
ALTER TABLE ltf_automation_runs ADD COLUMN depth integer NOT NULL DEFAULT 1 CHECK (depth >= 1);

-- The events a run wrote through its record actions (create_record, update_record), so a
-- run they trigger knows its depth.
CREATE TABLE ltf_automation_effects (
    event_id   uuid PRIMARY KEY,
    run_id     uuid NOT NULL REFERENCES ltf_automation_runs (run_id),
    written_at timestamptz NOT NULL DEFAULT now()
);

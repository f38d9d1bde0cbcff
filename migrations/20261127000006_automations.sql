-- Automations: stored definitions, the runs they start and each run's steps; and the
-- per-service usage and health state the connections handler keeps.

-- A definition: `trigger` is {"event": "record-updated", "tableId": ..., "formId": ...,
-- "conditions": [...]}, `actions` an ordered array of {"id", "type", ...}; both validated
-- by the application (producers::automations) before they are stored.
CREATE TABLE ltf_automations (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    trigger    jsonb NOT NULL CHECK (jsonb_typeof(trigger) = 'object'),
    actions    jsonb NOT NULL CHECK (jsonb_typeof(actions) = 'array' AND jsonb_array_length(actions) > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The trigger evaluator looks automations up by event type and table or form.
CREATE INDEX ltf_automations_by_trigger ON ltf_automations ((trigger->>'event'), (trigger->>'tableId'), (trigger->>'formId')) WHERE enabled;

-- One run of an automation. run_id is derived (UUIDv5) from the source eventId and the
-- automation id, so a replayed trigger finds its run instead of starting another.
-- `actions` is the definition's action list as it was when the run started.
CREATE TABLE ltf_automation_runs (
    run_id          uuid PRIMARY KEY,
    automation_id   text NOT NULL,
    source_event_id uuid NOT NULL,
    correlation_id  text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    trigger_data    jsonb NOT NULL,
    actions         jsonb NOT NULL,
    error           text NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz NULL
);
CREATE INDEX ltf_automation_runs_by_automation ON ltf_automation_runs (automation_id, started_at DESC);

-- One executed action of a run.
CREATE TABLE ltf_automation_steps (
    run_id      uuid NOT NULL REFERENCES ltf_automation_runs (run_id),
    position    integer NOT NULL CHECK (position >= 0),
    action_id   text NOT NULL,
    action_type text NOT NULL,
    result      text NOT NULL CHECK (result IN ('success', 'failure')),
    data        jsonb NULL,
    error       text NULL,
    attempts    integer NOT NULL CHECK (attempts >= 1),
    executed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, position)
);

-- Per external service: how many connections were established, the last one, and the
-- health the connections handler last saw.
CREATE TABLE ltf_connection_usage (
    service             text PRIMARY KEY,
    connections         bigint NOT NULL CHECK (connections >= 0),
    last_connection_id  text NOT NULL,
    last_user_id        text NOT NULL,
    last_established_at timestamptz NOT NULL,
    health              text NOT NULL CHECK (health IN ('healthy', 'degraded', 'unknown'))
);

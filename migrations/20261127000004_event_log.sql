-- The audit worker's append-only event log: every event of every topic, once.
CREATE TABLE ltf_event_log (
    event_id           uuid PRIMARY KEY,
    event_type         text NOT NULL,
    event_version      int NOT NULL,
    aggregate_type     text NOT NULL,
    aggregate_id       text NOT NULL,
    aggregate_sequence bigint NOT NULL,
    correlation_id     text NOT NULL,
    causation_id       text NULL,
    payload            jsonb NOT NULL,
    occurred_on        timestamptz NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    topic              text NOT NULL,
    kafka_partition    int NOT NULL,
    kafka_offset       bigint NOT NULL,
    -- As the spec's EventLogger: the status of the event as the audit worker saw it.
    status             text NOT NULL DEFAULT 'received'
);
-- An aggregate's history in order, and time-range queries.
CREATE INDEX ltf_event_log_by_aggregate ON ltf_event_log (aggregate_id, aggregate_sequence, occurred_on);
CREATE INDEX ltf_event_log_by_time ON ltf_event_log (occurred_on);
-- Append-only: the log is never changed in place.
CREATE FUNCTION ltf_event_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ltf_event_log is append-only';
END
$$;
CREATE TRIGGER ltf_event_log_append_only
    BEFORE UPDATE OR DELETE ON ltf_event_log
    FOR EACH ROW EXECUTE FUNCTION ltf_event_log_append_only();

-- The consumers' durable dedup records: one row per (consumer group, handler, eventId)
-- whose side effect committed. A handler inserts its row in the transaction of its side
-- effect, so the row exists exactly when the side effect does; a redelivered event finds
-- the row and is acknowledged without running the side effect again. A dead-lettered
-- event has no row, so a replay can handle it.
CREATE TABLE ltf_processed_events (
    consumer_group text NOT NULL,
    handler        text NOT NULL,
    event_id       uuid NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, handler, event_id)
);

-- Pruning deletes rows past the retention without scanning the whole table.
CREATE INDEX ltf_processed_events_processed_at ON ltf_processed_events (processed_at);
